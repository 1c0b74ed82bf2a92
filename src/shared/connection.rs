//! [`Connection`]: the owning handle of a connection a server accepted.

use std::fmt;
use std::sync::Arc;

use super::ids::{ConnectionId, ServerId};
use super::link::{Link, Role};
use super::send_error::SendError;
use crate::value::Value;

/// A connection accepted by a server (the Lua network module's `ClientConnection`), handed
/// out once by the [`Connect`](crate::EventKind::Connect) event.
///
/// It **owns** the connection: clones share ownership, and when the last one
/// is dropped the connection closes (after flushing what was queued), as the
/// Lua network module's object closes when garbage-collected. Keep one (for example in a
/// map keyed by [`Connection::id`]) for as long as the connection should live.
#[derive(Clone)]
pub struct Connection(Arc<Owner>);

struct Owner {
    link: Arc<Link>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.link.request_close();
    }
}

impl Connection {
    pub(crate) fn new(link: Arc<Link>) -> Connection {
        Connection(Arc::new(Owner { link }))
    }

    fn link(&self) -> &Link {
        &self.0.link
    }

    /// This connection's id (events name it by this).
    pub fn id(&self) -> ConnectionId {
        self.link().connection_id()
    }

    /// The server that accepted it.
    pub fn server_id(&self) -> ServerId {
        match self.link().role {
            Role::Accepted(server) => server,
            // Connections are only made for accepted links.
            Role::Client(_) => ServerId(0),
        }
    }

    /// The process-unique socket id (the Lua network module's `GetSocket()`).
    pub fn socket_id(&self) -> u64 {
        self.link().id
    }

    /// The peer's port.
    pub fn port(&self) -> u16 {
        self.link().peer.port()
    }

    /// The peer's IP address, as text.
    pub fn address(&self) -> String {
        self.link().peer.ip().to_string()
    }

    /// Queues `value` for this connection.
    pub fn send(&self, value: &Value) -> Result<(), SendError> {
        let link = self.link();
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
        let link = self.link();
        link.net
            .with_typed_frame(message, |frame| link.send_frame(frame, true))?
    }

    /// Closes the connection after flushing what was queued (other clones
    /// then see it closed).
    pub fn disconnect(&self) {
        let _ = self.link().request_close();
    }

    /// True until the connection closes or starts closing.
    pub fn is_open(&self) -> bool {
        self.link().is_open()
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.link().queued_bytes()
    }

    /// Blocks until this connection can take more: until its queued bytes
    /// are at or below the low-water mark
    /// ([`Config::send_queue_low_water`](crate::Config::send_queue_low_water),
    /// a quarter of the queue limit by default), returning at once if they
    /// already are. This is the moment its
    /// [`Drained`](crate::EventKind::Drained) event reports, but the wait
    /// takes no events: a sender thread can use it while another thread
    /// polls the network's events. With [`Config::inline_io`](crate::Config::inline_io)
    /// the waiting thread drives the network meanwhile.
    ///
    /// Errors: [`Error::Closed`](crate::Error::Closed) when the connection is
    /// closing or closes meanwhile; [`Error::Timeout`](crate::Error::Timeout)
    /// when `timeout` passes first.
    pub fn wait_writable(&self, timeout: std::time::Duration) -> Result<(), crate::Error> {
        self.link().wait_writable(timeout)
    }

    /// The async form of [`wait_writable`](Self::wait_writable), for any
    /// executor: resolves when this connection can take more, or with
    /// [`Error::Closed`](crate::Error::Closed) once it closes. Woken by the
    /// IO thread (not with [`Config::inline_io`](crate::Config::inline_io),
    /// where nothing runs between the application's calls: see the crate's
    /// async notes).
    #[cfg(feature = "futures")]
    pub fn writable(&self) -> super::Writable {
        super::Writable::new(self.0.link.clone())
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id())
            .field("server", &self.server_id())
            .field("peer", &self.link().peer)
            .finish()
    }
}
