//! [`Server`]: accepts connections and sends to them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::send_report::SendReport;
use crate::error::Error;
use crate::proto::OutFrame;
use crate::shared::{Command, ConnectionId, Link, NetShared, SendError, ServerId, ServerShared};
use crate::value::Value;

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
    /// [`send_to`](Self::send_to)) gets nothing and is not counted;
    /// [`send_each`](Self::send_each) says which refused and why.
    ///
    /// **Where the writing happens.** With one id this is
    /// [`send_to`](Self::send_to), which may write from the calling thread
    /// when the connection is idle (a reply costs no thread hop). With
    /// several it never writes from the calling thread: the encoded frame
    /// is shared by all of them (not copied), queued on each connection
    /// unsealed, and one command hands the burst to the IO thread, which
    /// seals it per connection when encrypted and writes each connection's
    /// share in few large writes. The call costs well under a microsecond
    /// per recipient, however many there are.
    pub fn send(&self, value: &Value, to: &[ConnectionId]) -> usize {
        if let [id] = to {
            return usize::from(self.send_to(*id, value).is_ok());
        }
        let mut accepted = 0;
        let conns = self.shared.conns.lock();
        let links = to.iter().filter_map(|id| conns.get(id));
        self.fan_out(value, links, |_, _, r| accepted += usize::from(r.is_ok()));
        accepted
    }

    /// [`send`](Self::send), reporting each listed connection's result in
    /// the order listed: which ones refused, and why (an unknown or closed
    /// id gives [`SendError::Closed`]; a value that cannot be encoded gives
    /// every recipient its error). The same rule on where the writing
    /// happens applies.
    pub fn send_each(&self, value: &Value, to: &[ConnectionId]) -> SendReport {
        let mut report = SendReport::with_capacity(to.len());
        if let [id] = to {
            report.push(*id, self.send_to(*id, value));
            return report;
        }
        let conns = self.shared.conns.lock();
        // Results come back in listing order, with the unknown ids in place.
        let mut results: Vec<Result<(), SendError>> = vec![Err(SendError::Closed); to.len()];
        let found: Vec<(usize, &Arc<Link>)> = to
            .iter()
            .enumerate()
            .filter_map(|(i, id)| conns.get(id).map(|l| (i, l)))
            .collect();
        self.fan_out(value, found.iter().map(|(_, l)| *l), |n, _, r| {
            if let Some(slot) = found.get(n).and_then(|(i, _)| results.get_mut(*i)) {
                *slot = r;
            }
        });
        drop(conns);
        for (id, r) in to.iter().zip(results) {
            report.push(*id, r);
        }
        report
    }

    /// Sends `value` to every open connection; returns how many accepted it
    /// (the Lua network module's `server:Broadcast`). Connections that refuse
    /// (closing, or their queue full) get nothing and are not counted;
    /// [`broadcast_each`](Self::broadcast_each) says which.
    ///
    /// It never writes from the calling thread: the value is encoded once,
    /// the frame is queued, shared and unsealed, on every connection, and the
    /// IO thread seals (when encrypted) and writes each connection's share in
    /// few large writes. The call costs a fraction of a microsecond per
    /// connection and makes no system call but one wake-up of the IO thread
    /// (about 0.1 ms of the caller's CPU for 500 connections): one tick of a
    /// game server is not held up by its clients.
    pub fn broadcast(&self, value: &Value) -> usize {
        let mut accepted = 0;
        let conns = self.shared.conns.lock();
        self.fan_out(value, conns.values(), |_, _, r| {
            accepted += usize::from(r.is_ok())
        });
        accepted
    }

    /// [`broadcast`](Self::broadcast), reporting each connection's result,
    /// so the caller sees which connections refused (for example, whose
    /// queue is full) and why.
    pub fn broadcast_each(&self, value: &Value) -> SendReport {
        let conns = self.shared.conns.lock();
        let mut report = SendReport::with_capacity(conns.len());
        self.fan_out(value, conns.values(), |_, link, r| {
            report.push(link.connection_id(), r)
        });
        report
    }

    /// One encoding, many links, no writes: the frame is shared by every
    /// link (one allocation), queued unsealed on each
    /// ([`Link::queue_shared`]), and one command wakes the IO thread for all
    /// the links whose queue was empty. `each` hears every link's result
    /// with its position in `links` (not always in that order).
    fn fan_out<'a>(
        &self,
        value: &Value,
        links: impl Iterator<Item = &'a Arc<Link>>,
        each: impl FnMut(usize, &Link, Result<(), SendError>),
    ) {
        let frame = self.net.with_frame(value, shared_frame);
        self.fan_out_frame(frame, links, each);
    }

    /// Hands the links a fan-out made non-empty (reactor, id) to their
    /// reactors: one command per reactor.
    fn wake_reactors(&self, wake: Vec<(usize, u64)>) {
        if wake.is_empty() {
            return;
        }
        if self.net.reactors() == 1 {
            let ids = wake.into_iter().map(|(_, id)| id).collect();
            self.net.command(0, Command::FlushMany(ids));
            return;
        }
        let mut by_reactor = vec![Vec::new(); self.net.reactors()];
        for (shard, id) in wake {
            if let Some(ids) = by_reactor.get_mut(shard) {
                ids.push(id);
            }
        }
        for (shard, ids) in by_reactor.into_iter().enumerate() {
            if !ids.is_empty() {
                self.net.command(shard, Command::FlushMany(ids));
            }
        }
    }

    /// [`fan_out`](Self::fan_out) of a frame already encoded (or the error
    /// that encoding gave).
    fn fan_out_frame<'a>(
        &self,
        frame: Result<Bytes, Error>,
        links: impl Iterator<Item = &'a Arc<Link>>,
        mut each: impl FnMut(usize, &Link, Result<(), SendError>),
    ) {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                let e = SendError::from(e);
                links
                    .enumerate()
                    .for_each(|(i, link)| each(i, link, Err(e.clone())));
                return;
            }
        };
        let mut wake = Vec::new();
        let mut busy = Vec::new();
        let mut settle = |i: usize, link: &Link, result: Result<bool, SendError>| {
            let result = result.map(|flush| {
                if flush {
                    wake.push((link.shard(), link.id));
                }
            });
            each(i, link, result);
        };
        for (i, link) in links.enumerate() {
            // A link the IO thread is writing (its lock held for a syscall)
            // is done after the others: waiting for each such write would
            // pace this loop to the IO thread's.
            match link.try_queue_shared(&frame) {
                Some(result) => settle(i, link, result),
                None => busy.push((i, link)),
            }
        }
        for (i, link) in busy {
            settle(i, link, link.queue_shared(&frame));
        }
        self.wake_reactors(wake);
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
    /// straight into the frame, and fanned out the same way. Returns how
    /// many connections accepted it; 0 also when the value cannot be sent.
    pub fn send_many_serialized<T: serde::Serialize + ?Sized>(
        &self,
        message: &T,
        to: &[ConnectionId],
    ) -> usize {
        if let [id] = to {
            return usize::from(self.send_serialized(*id, message).is_ok());
        }
        let frame = self.net.with_typed_frame(message, shared_frame);
        let mut accepted = 0;
        let conns = self.shared.conns.lock();
        let links = to.iter().filter_map(|id| conns.get(id));
        self.fan_out_frame(frame, links, |_, _, r| accepted += usize::from(r.is_ok()));
        accepted
    }

    /// [`broadcast`](Self::broadcast) for any `Serialize` type, encoded
    /// once, straight into the frame, and fanned out the same way. Returns
    /// how many connections accepted it; 0 also when the value cannot be
    /// sent.
    pub fn broadcast_serialized<T: serde::Serialize + ?Sized>(&self, message: &T) -> usize {
        let frame = self.net.with_typed_frame(message, shared_frame);
        let mut accepted = 0;
        let conns = self.shared.conns.lock();
        self.fan_out_frame(frame, conns.values(), |_, _, r| {
            accepted += usize::from(r.is_ok())
        });
        accepted
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

    /// Blocks until connection `id` can take more: until its queued bytes
    /// are at or below the low-water mark
    /// ([`Config::send_queue_low_water`](crate::Config::send_queue_low_water),
    /// a quarter of the queue limit by default), returning at once if they
    /// already are. Takes no events: other threads keep polling theirs.
    ///
    /// Errors: [`Error::Closed`] when the connection is gone, closing or
    /// closes meanwhile; [`Error::Timeout`] when `timeout` passes first.
    pub fn wait_writable(&self, id: ConnectionId, timeout: Duration) -> Result<(), Error> {
        self.link(id).ok_or(Error::Closed)?.wait_writable(timeout)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Its connections may live on any reactor.
        let id = self.shared.id;
        self.net.command_all(|| Command::CloseServer(id));
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

/// An encoded frame as bytes that every link of a fan-out can share.
fn shared_frame(frame: OutFrame<'_>) -> Bytes {
    match frame {
        OutFrame::Borrowed(bytes) => Bytes::copy_from_slice(bytes),
        OutFrame::Shared(bytes) => bytes,
    }
}
