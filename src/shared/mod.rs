//! What the public handles and the IO driver share: each connection's
//! [`Link`] (its send queue and state), the event ring, the network's
//! command queue, and the types both sides exchange (events, ids, config,
//! and the [`Connection`] handle the IO thread mints for `Connect`).
//!
//! Dependencies run one way: the handles in `net` and the driver in `io`
//! both use this module; it uses neither. The driver is reached through
//! the [`Reactor`] trait and the start function a network is built
//! with.

mod budget;
mod config;
mod connection;
mod event;
mod ids;
mod link;
mod message;
mod net_shared;
mod report;
mod ring;
mod send_error;
mod server;
#[cfg(feature = "futures")]
mod writable;

pub use config::{AcceptFilter, Config, OverflowPolicy};
pub use connection::Connection;
#[cfg(feature = "lua")]
pub(crate) use event::error_text;
pub use event::{CloseReason, Event, EventKind, Source};
pub use ids::{ClientId, ConnectionId, ObjectId, ServerId};
pub use message::Message;
pub use report::{Abandoned, ShutdownReport};
pub use send_error::SendError;
#[cfg(feature = "futures")]
pub use writable::Writable;

pub(crate) use ids::next_socket_id;
pub(crate) use link::{ConnectStatus, Flushed, Link, Role, State};
pub(crate) use net_shared::{Command, Keying, NetShared, Reactor, Started};
pub(crate) use ring::Pending;
pub(crate) use server::ServerShared;

#[cfg(test)]
mod tests {
    /// The contract: every handle can be shared between threads and printed.
    #[test]
    fn shared_types_are_send_sync_debug() {
        fn check<T: Send + Sync + std::fmt::Debug>() {}
        check::<super::Connection>();
        check::<super::Event>();
        check::<super::Config>();
        check::<super::SendError>();
        check::<crate::Error>();
    }
}
