//! [`Event`]s: what the IO threads report to the application.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use super::connection::Connection;
use super::ids::{ClientId, ConnectionId, ObjectId, ServerId};
use super::message::Message;
use crate::error::Error;
use crate::value::Value;

/// Something that happened on the network, in the order the IO thread saw it.
#[derive(Debug)]
pub struct Event {
    /// When the IO thread saw it.
    pub time: Instant,
    /// The same moment on the wall clock.
    pub wall_time: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// Seconds since the Unix epoch, with a fraction (the Lua network module's `.Timestamp`).
    pub fn timestamp(&self) -> f64 {
        self.wall_time
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64()
    }
}

impl Event {
    /// Reads a received packet as a `T`: a [`Message`](EventKind::Message)
    /// straight from its bytes, a [`Receive`](EventKind::Receive) from its
    /// decoded [`Value`] (with [`from_value_ref`](crate::from_value_ref));
    /// `None` for every other kind of event. Errors name the field
    /// ([`Error::AtPath`]).
    ///
    /// ```
    /// # fn handle(event: tablenet::Event) {
    /// #[derive(serde::Deserialize)]
    /// struct Chat<'a> { name: &'a str, text: String }
    /// if let Some(Ok(chat)) = event.decode::<Chat>() {
    ///     println!("<{}> {}", chat.name, chat.text);
    /// }
    /// # }
    /// ```
    pub fn decode<'a, T: serde::Deserialize<'a>>(&'a self) -> Option<Result<T, Error>> {
        match &self.kind {
            EventKind::Message { message, .. } => Some(message.decode()),
            EventKind::Receive { packet, .. } => Some(crate::from_value_ref(packet)),
            _ => None,
        }
    }
}

/// Who sent a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A connection accepted by one of our servers.
    Connection(ConnectionId),
    /// The server one of our clients is connected to.
    Client(ClientId),
}

pub use crate::proto::session::CloseReason;

/// The kinds of [`Event`]. The Lua network module's codes are named beside each.
#[derive(Debug)]
#[non_exhaustive]
pub enum EventKind {
    /// `EVENT_CONNECT`: a server accepted a connection and it is ready.
    /// `connection` is the owning handle: keep it (or a clone), or the
    /// connection closes when the last one is dropped.
    Connect {
        /// The owning handle of the new connection.
        connection: Connection,
        /// The server that accepted it.
        server: ServerId,
    },
    /// `EVENT_CONNECTED`: a client's connection attempt finished.
    Connected {
        /// Which client.
        client: ClientId,
        /// Success, or why it failed.
        result: Result<(), Error>,
    },
    /// `EVENT_RECEIVE`: a packet arrived.
    Receive {
        /// Where it came from.
        from: Source,
        /// The table (or other value) that was sent.
        packet: Value,
    },
    /// A packet arrived and is kept as its bytes until asked for (only with
    /// [`Config::raw_messages`](crate::Config::raw_messages)): read it with
    /// [`Message::decode`] or [`Event::decode`] as any Rust type, or with
    /// [`Message::value`] as a table.
    Message {
        /// Where it came from.
        from: Source,
        /// The message, undecoded.
        message: Message,
    },
    /// `EVENT_SERVER_CLOSE`: a client's connection to its server closed.
    ServerClose {
        /// Which client.
        client: ClientId,
        /// Why.
        reason: CloseReason,
    },
    /// `EVENT_CLIENT_CLOSE`: a connection accepted by a server closed.
    ClientClose {
        /// Which connection.
        connection: ConnectionId,
        /// The server it belonged to.
        server: ServerId,
        /// Why.
        reason: CloseReason,
    },
    /// `EVENT_ERROR`: something went wrong with an object.
    ///
    /// Failures of connections that never authenticated (a failed or
    /// timed-out handshake, a refusal, an eviction) are reported one by one
    /// up to [`Config::failure_reports_per_second`](crate::Config::failure_reports_per_second),
    /// then summed up once a second ([`Error::UnauthenticatedFailures`]);
    /// they never take the ring's room from established connections.
    Error {
        /// Which object.
        object: ObjectId,
        /// What went wrong (its `Display`, with the peer's address, is the
        /// Lua network module's `.Errors` text).
        error: Error,
        /// The peer's address, where one is known: the connection's peer,
        /// the server a client connects to, a refused peer. `None` for a
        /// server's own failures (accept) and the summary of many.
        peer: Option<SocketAddr>,
    },
    /// The ring was full and this many of the oldest events were overwritten
    /// (Lua sees `EVENT_ERROR` with a nil `.Object`).
    Dropped {
        /// How many events were lost.
        count: u64,
    },
    /// A send queue that refused a message ([`SendError::QueueFull`](crate::SendError::QueueFull))
    /// is down to its low-water mark
    /// ([`Config::send_queue_low_water`](crate::Config::send_queue_low_water),
    /// a quarter of the queue limit by default): sending can resume while the
    /// rest is still being written. Per connection; to wait for one
    /// connection without taking events, use `wait_writable`.
    Drained {
        /// Which client or connection.
        object: ObjectId,
    },
}

/// The text of an `Error` event as the bindings show it (`.Errors`): the
/// error, then the peer's address unless the error already names it.
#[cfg(feature = "lua")]
pub(crate) fn error_text(error: &Error, peer: Option<SocketAddr>) -> String {
    let text = error.to_string();
    match peer {
        Some(peer) => {
            let addr = peer.to_string();
            if text.contains(&addr) {
                text
            } else {
                format!("{text} (peer {addr})")
            }
        }
        None => text,
    }
}
