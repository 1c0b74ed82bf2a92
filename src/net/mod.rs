//! The network: [`Network`], [`Server`], [`Client`], [`Connection`] and
//! their [`Event`]s.

mod args;
mod client;
mod config;
mod connection;
mod event;
mod ids;
pub(crate) mod link;
mod network;
pub(crate) mod ring;
mod send_error;
pub(crate) mod server;
pub(crate) mod shared;

pub use client::Client;
pub use config::{Config, OverflowPolicy};
pub use connection::Connection;
pub use event::{CloseReason, Event, EventKind, Source};
pub use ids::{ClientId, ConnectionId, ObjectId, ServerId};
pub use network::Network;
pub use send_error::SendError;
pub use server::Server;

pub(crate) use ids::next_socket_id as ids_next;

#[cfg(test)]
mod tests {
    /// The contract: every handle can be shared between threads and printed.
    #[test]
    fn handles_are_send_sync_debug() {
        fn check<T: Send + Sync + std::fmt::Debug>() {}
        check::<super::Network>();
        check::<super::Server>();
        check::<super::Client>();
        check::<super::Connection>();
        check::<super::Event>();
        check::<super::Config>();
        check::<super::SendError>();
        check::<crate::Error>();
    }
}
