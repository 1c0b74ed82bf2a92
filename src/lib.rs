//! tablenet: exchange Lua-like value tables over TCP.
//!
//! The API reproduces the `network` module of a Lua scripting host, in
//! which scripts open servers and clients, send tables and poll events (the
//! docs call it the Lua network module this API reproduces, or the Lua
//! network module), in Rust's terms, and goes beyond it.
//!
//! A [`Network`] runs a background IO thread. Servers and clients made from it
//! send [`Value`]s (usually [`Table`]s: the basic Lua types with Lua's key
//! rules), and everything that happens comes back as [`Event`]s that your own
//! loop drains with [`Network::poll_events`] or [`Network::wait_events`].
//!
//! ```
//! use std::time::Duration;
//! use tablenet::{EventKind, Network, table};
//!
//! let net = Network::new();
//! let server = net.bind("localhost:0", None)?; // port 0: the OS chooses
//! // Also ("::1", port), a SocketAddr, or net.server("127.0.0.1", port, key).
//! let client = net.connect(("localhost", server.port()), None)?;
//! client.wait_for_connect(Duration::from_secs(2))?;
//! client.send(&table! { "OpCode" => 10, "Data" => "From client" }.into())?;
//!
//! // Connect hands out the owning handle of each connection: keep it, or the
//! // connection closes when the event is dropped.
//! let mut connections = Vec::new();
//! 'outer: loop {
//!     for event in net.wait_events(Duration::from_secs(5)) {
//!         match event.kind {
//!             EventKind::Connect { connection, .. } => connections.push(connection),
//!             EventKind::Receive { packet, .. } => {
//!                 assert_eq!(packet["Data"].as_str(), Some("From client"));
//!                 break 'outer;
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! // Writes what is still queued, closes every connection cleanly, and says
//! // what it could not deliver (dropping the last Network handle does the same,
//! // waiting up to Config::linger).
//! let report = net.shutdown(Duration::from_secs(1));
//! assert!(report.is_clean());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! How a message travels:
//!
//! ```text
//!  your thread                     IO thread (one per Network, any number of sockets)
//!  ───────────                     ─────────
//!  send(&value)
//!   └ encode once ──> frame ──┬──> written at once if the connection is idle
//!                             └──> queued; IO thread writes many frames per syscall
//!
//!                                  socket ──> FrameDecoder ──> message bytes
//!                                                                   │
//!  poll_events() / wait_events() <── event ring (2000 slots) <─ Receive/Connect/...
//!   └ decode_value (small messages, on your thread)
//! ```
//!
//! Messages up to 4 KiB are decoded by the thread that takes them out of the
//! ring, so the IO thread only frames and the two threads share the work;
//! larger ones are decoded on the IO thread. A message that does not decode
//! becomes an `Error` event in its place, and its connection closes with that
//! error right after.
//!
//! The protocol core in [`proto`] is pure code over byte buffers (no sockets,
//! threads or clocks: time is passed in), so it is tested, fuzzed and
//! simulated in memory. Each connection is a [`proto::session::Session`]:
//! the preamble, the handshake, heartbeats and the close are decided there,
//! and the IO thread only moves bytes, fires its timers and turns its
//! events into [`Event`]s. Untrusted bytes give an [`Error`], never a panic,
//! a stack overflow or an allocation larger than the input justifies.
//!
//! Values: build tables with [`table!`], convert your own types with
//! [`to_value`] and [`from_value`], or send and receive them directly with
//! `send_serialized` and [`Event::decode`]: the [`bridge`] page has the
//! rules between Rust types and tables. The wire format is specified in
//! `docs/PROTOCOL.md`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod bridge;
mod error;
mod io;
#[cfg(feature = "lua")]
pub mod lua;
mod net;
pub mod proto;
mod shared;
mod stack;
#[cfg(test)]
mod test_clock;
mod value;

pub use bridge::{from_value, from_value_ref, to_value};
pub use error::{Error, KeyError, ProtocolError};
pub use net::{
    Abandoned, AcceptFilter, Client, ClientId, CloseReason, Config, Connection, ConnectionId,
    Event, EventKind, Message, Network, ObjectId, OverflowPolicy, SendError, SendReport, Server,
    ServerId, ShutdownReport, Source,
};
#[cfg(feature = "futures")]
pub use net::{EventStream, Writable};
pub use value::{ByteString, IntoIter, Iter, Key, KeyRef, SequenceElement, Table, Value};
