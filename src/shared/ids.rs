//! Identifiers of servers, clients and connections.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Next socket id; 0 is never handed out (the IO thread's waker uses it).
static NEXT_SOCKET_ID: AtomicU64 = AtomicU64::new(1);

/// A process-unique socket identifier, never reused (OS descriptors are).
pub(crate) fn next_socket_id() -> u64 {
    NEXT_SOCKET_ID.fetch_add(1, Ordering::Relaxed)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub(crate) u64);

        impl $name {
            /// The process-unique socket id (the Lua network module's `GetSocket()`).
            pub fn socket_id(self) -> u64 {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($label, "#{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

id_type!(
    /// Names a [`Server`](crate::Server). `Copy`, usable as a map key.
    ServerId,
    "server"
);
id_type!(
    /// Names a [`Client`](crate::Client). `Copy`, usable as a map key.
    ClientId,
    "client"
);
id_type!(
    /// Names a connection accepted by a server. `Copy`, usable as a map key,
    /// enough to reply with [`Server::send_to`](crate::Server::send_to); it
    /// never keeps the connection open (the [`Connection`](crate::Connection)
    /// handle does).
    ConnectionId,
    "connection"
);

/// Any network object an event can be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectId {
    /// A server (for example, accepting failed).
    Server(ServerId),
    /// A client.
    Client(ClientId),
    /// A connection accepted by a server.
    Connection(ConnectionId),
}

impl ObjectId {
    /// The object's process-unique socket id.
    pub fn socket_id(self) -> u64 {
        match self {
            ObjectId::Server(id) => id.0,
            ObjectId::Client(id) => id.0,
            ObjectId::Connection(id) => id.0,
        }
    }
}
