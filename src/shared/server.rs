//! [`ServerShared`]: what a server's handle and the IO thread share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use super::ids::{ConnectionId, ServerId};
use super::link::Link;
use super::net_shared::Keying;

pub(crate) struct ServerShared {
    pub(crate) id: ServerId,
    pub(crate) local: SocketAddr,
    /// Open connections (after their handshake), by id. These references do
    /// not keep a connection open: the `Connection` handles do.
    pub(crate) conns: Mutex<HashMap<ConnectionId, Arc<Link>>>,
    /// The key its connections must use, if encrypted.
    pub(crate) keying: Option<Arc<Keying>>,
    /// The IO thread (reactor) that drives its listener and connections.
    pub(crate) shard: usize,
}
