//! The public entry points: [`Network`], [`Server`] and [`Client`], with
//! the types they hand out (re-exported from the shared layer).

mod addr;
mod client;
#[cfg(feature = "futures")]
mod events;
mod network;
mod send_report;
mod server;

#[cfg(feature = "futures")]
pub use crate::shared::Writable;
pub use crate::shared::{
    Abandoned, AcceptFilter, ClientId, CloseReason, Config, Connection, ConnectionId, Event,
    EventKind, Message, ObjectId, OverflowPolicy, SendError, ServerId, ShutdownReport, Source,
};
pub use client::Client;
#[cfg(feature = "futures")]
pub use events::EventStream;
pub use network::Network;
pub use send_report::SendReport;
pub use server::Server;

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
    }
}
