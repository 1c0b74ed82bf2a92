//! [`Server`]: accepts connections and sends to them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::OutFrame;
use crate::shared::{Command, ConnectionId, Link, NetShared, SendError, ServerId, ServerShared};
use crate::value::Value;

/// Sends to several connections closer together than this are a burst.
const BURST_GAP: Duration = Duration::from_millis(1);

/// A listening server (the Lua network module's `network.Server`). Dropping it stops
/// accepting and closes its connections, after flushing what they had queued.
pub struct Server {
    pub(crate) shared: Arc<ServerShared>,
    pub(crate) net: Arc<NetShared>,
}

impl Server {
    /// This server's id, as events name it.
    pub fn id(&self) -> ServerId {
        self.shared.id
    }

    /// The process-unique socket id (the Lua network module's `GetSocket()`).
    pub fn socket_id(&self) -> u64 {
        self.shared.id.0
    }

    /// The port it listens on (the real one when it was created with port 0).
    pub fn port(&self) -> u16 {
        self.shared.local.port()
    }

    /// The IP address it listens on, as text.
    pub fn address(&self) -> String {
        self.shared.local.ip().to_string()
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local
    }

    /// True while the server accepts connections: false once it was
    /// dropped... or its network shut down, which happens when the last
    /// [`Network`](crate::Network) handle is dropped (a `Server` does not
    /// keep its network running: keep the `Network` for as long as you use
    /// the server, and its events come from there). Its port stays what it
    /// was; connecting to it is refused.
    pub fn is_open(&self) -> bool {
        !self.net.is_shut_down()
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.shared.conns.lock().len()
    }

    /// Ids of the open connections.
    pub fn connections(&self) -> Vec<ConnectionId> {
        self.shared.conns.lock().keys().copied().collect()
    }

    fn link(&self, id: ConnectionId) -> Option<Arc<Link>> {
        self.shared.conns.lock().get(&id).cloned()
    }

    /// Queues `value` for one connection. Success means queued, not
    /// delivered. Refused, with nothing queued, when the connection is gone
    /// or closing ([`SendError::Closed`]), its queue is full
    /// ([`SendError::QueueFull`]: wait for [`Drained`](crate::EventKind::Drained)),
    /// or the value cannot be sent (too large, too deep, not a table value).
    pub fn send_to(&self, id: ConnectionId, value: &Value) -> Result<(), SendError> {
        let link = self.link(id).ok_or(SendError::Closed)?;
        self.net
            .with_frame(value, |frame| link.send_frame(frame, true))?
    }

    /// Sends `value` to each listed connection; returns how many accepted it
    /// (the Lua network module's `server:Send`). The value is encoded once.
    /// A connection that refuses (gone, closing, or its queue full: see
    /// [`send_to`](Self::send_to)) gets nothing and is not counted; the
    /// count is all that says so.
    pub fn send(&self, value: &Value, to: &[ConnectionId]) -> usize {
        let links: Vec<Arc<Link>> = to.iter().filter_map(|id| self.link(*id)).collect();
        self.send_to_links(&links, |send| self.net.with_frame(value, send))
    }

    /// Sends `value` to every open connection; returns how many accepted it.
    /// The value is encoded once for all of them. Connections that refuse
    /// (closing, or their queue full) get nothing and are not counted.
    pub fn broadcast(&self, value: &Value) -> usize {
        let links: Vec<Arc<Link>> = self.shared.conns.lock().values().cloned().collect();
        self.send_to_links(&links, |send| self.net.with_frame(value, send))
    }

    /// One encoding, many links. An isolated send writes directly to idle
    /// links (no thread hop); in a burst (this send starts within 1 ms of
    /// the previous one's end) everything is queued, so the IO thread
    /// gathers each link's share of the burst into few writes instead of one
    /// syscall per link per message.
    fn send_to_links(
        &self,
        links: &[Arc<Link>],
        with_frame: impl FnOnce(
            Box<dyn FnOnce(OutFrame<'_>) -> usize + '_>,
        ) -> Result<usize, crate::Error>,
    ) -> usize {
        let burst = self
            .shared
            .last_multi_send
            .lock()
            .is_some_and(|end| end.elapsed() < BURST_GAP);
        let sent = with_frame(Box::new(|frame: OutFrame<'_>| {
            links
                .iter()
                .filter(|link| link.send_frame(frame.clone(), !burst).is_ok())
                .count()
        }));
        *self.shared.last_multi_send.lock() = Some(Instant::now());
        sent.unwrap_or(0)
    }

    /// Sends any `Serialize` type to one connection as a table, encoded
    /// straight into the frame: the bytes [`send_to`](Self::send_to) of
    /// [`to_value`](crate::to_value)`(message)` would send, without building
    /// the `Value`. A value that would not read back exactly is refused with
    /// [`SendError::Unsendable`] naming the field (see the
    /// [`bridge`](crate::bridge) rules).
    pub fn send_serialized<T: serde::Serialize + ?Sized>(
        &self,
        id: ConnectionId,
        message: &T,
    ) -> Result<(), SendError> {
        let link = self.link(id).ok_or(SendError::Closed)?;
        self.net
            .with_typed_frame(message, |frame| link.send_frame(frame, true))?
    }

    /// [`send`](Self::send) for any `Serialize` type, encoded once,
    /// straight into the frame. Returns how many connections accepted it;
    /// 0 also when the value cannot be sent.
    pub fn send_many_serialized<T: serde::Serialize + ?Sized>(
        &self,
        message: &T,
        to: &[ConnectionId],
    ) -> usize {
        let links: Vec<Arc<Link>> = to.iter().filter_map(|id| self.link(*id)).collect();
        self.send_to_links(&links, |send| self.net.with_typed_frame(message, send))
    }

    /// [`broadcast`](Self::broadcast) for any `Serialize` type, encoded
    /// once, straight into the frame. Returns how many connections accepted
    /// it; 0 also when the value cannot be sent.
    pub fn broadcast_serialized<T: serde::Serialize + ?Sized>(&self, message: &T) -> usize {
        let links: Vec<Arc<Link>> = self.shared.conns.lock().values().cloned().collect();
        self.send_to_links(&links, |send| self.net.with_typed_frame(message, send))
    }

    /// Closes each listed connection after flushing what it had queued;
    /// returns how many were open (not already closing).
    pub fn disconnect(&self, ids: &[ConnectionId]) -> usize {
        ids.iter()
            .filter_map(|id| self.link(*id))
            .filter(|link| link.request_close())
            .count()
    }

    /// Bytes queued for one connection and not yet written.
    pub fn queued_bytes(&self, id: ConnectionId) -> Option<usize> {
        self.link(id).map(|l| l.queued_bytes())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.net.command(Command::CloseServer(self.shared.id));
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("id", &self.shared.id)
            .field("local", &self.shared.local)
            .field("connections", &self.connection_count())
            .finish()
    }
}
