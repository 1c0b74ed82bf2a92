//! [`Client`]: a connection to a server.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::shared::{ClientId, Link, SendError};
use crate::value::Value;

/// A client connection (the Lua network module's `network.Client`). Created at once; a
/// [`Connected`](crate::EventKind::Connected) event reports how connecting
/// went. Dropping it disconnects, after flushing what was queued.
pub struct Client {
    pub(crate) link: Arc<Link>,
}

impl Client {
    /// This client's id (events name it by this).
    pub fn id(&self) -> ClientId {
        ClientId(self.link.id)
    }

    /// The process-unique socket id (the Lua network module's `GetSocket()`).
    pub fn socket_id(&self) -> u64 {
        self.link.id
    }

    /// The server's port once connected, `None` before.
    pub fn port(&self) -> Option<u16> {
        self.link.lock().peer_port
    }

    /// The server's IP address, as text: the one connected to, or before
    /// that the first of the addresses it resolved to.
    pub fn address(&self) -> String {
        self.peer_addr().ip().to_string()
    }

    /// The server's address: the one connected to, or before that the first
    /// of the addresses it resolved to (they are tried in order).
    pub fn peer_addr(&self) -> std::net::SocketAddr {
        self.link.lock().connected_to.unwrap_or(self.link.peer)
    }

    /// Queues `value` for the server. Before the connection is up, messages
    /// wait in the queue; once closed, sends fail with [`SendError::Closed`].
    pub fn send(&self, value: &Value) -> Result<(), SendError> {
        let link = &self.link;
        link.net
            .with_frame(value, |frame| link.send_frame(frame, true))?
    }

    /// Sends any `Serialize` type as a table, encoded straight into the
    /// frame: the bytes [`send`](Self::send) of
    /// [`to_value`](crate::to_value)`(message)` would send, without building
    /// the `Value`. A value that would not read back exactly is refused with
    /// [`SendError::Unsendable`] naming the field (see the
    /// [`bridge`](crate::bridge) rules).
    pub fn send_serialized<T: serde::Serialize + ?Sized>(
        &self,
        message: &T,
    ) -> Result<(), SendError> {
        let link = &self.link;
        link.net
            .with_typed_frame(message, |frame| link.send_frame(frame, true))?
    }

    /// Blocks until connected (returning roughly how long connecting took,
    /// from the client's creation), until connecting fails, or until
    /// `timeout` passes (any timeout; the Lua API keeps its 0.25 s ..= 10 s).
    /// Once the connection has closed it fails with [`Error::Closed`].
    pub fn wait_for_connect(&self, timeout: Duration) -> Result<Duration, Error> {
        self.link.wait_connected(timeout)
    }

    /// Disconnects after flushing what was queued.
    pub fn disconnect(&self) {
        let _ = self.link.request_close();
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.link.is_open()
    }

    /// True while connecting or connected: false once it was disconnected,
    /// closed, failed, or its network shut down (a `Client` does not keep its
    /// network running: when the last [`Network`](crate::Network) handle is
    /// dropped, its clients close, and `wait_for_connect` then fails with
    /// [`Error::Shutdown`]).
    pub fn is_open(&self) -> bool {
        !self.link.net.is_shut_down() && self.link.is_starting_or_open()
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.link.queued_bytes()
    }

    /// Blocks until this client can take more: until its queued bytes are
    /// at or below the low-water mark
    /// ([`Config::send_queue_low_water`](crate::Config::send_queue_low_water)),
    /// returning at once if they already are (also while still connecting).
    /// Takes no events. Errors: [`Error::Closed`] once closing or closed,
    /// [`Error::Timeout`] when `timeout` passes first.
    pub fn wait_writable(&self, timeout: Duration) -> Result<(), Error> {
        self.link.wait_writable(timeout)
    }

    /// The async form of [`wait_writable`](Self::wait_writable), for any
    /// executor (see [`Connection::writable`](crate::Connection::writable)).
    #[cfg(feature = "futures")]
    pub fn writable(&self) -> super::Writable {
        super::Writable::new(self.link.clone())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.link.request_close();
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id())
            .field("server", &self.link.peer)
            .field("connected", &self.is_connected())
            .finish()
    }
}
