//! [`ServerShared`]: what a server's handle and the IO thread share.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;

use super::ids::{ConnectionId, ServerId};
use super::link::Link;
use super::net_shared::Keying;
use crate::error::Error;

pub(crate) struct ServerShared {
    pub(crate) id: ServerId,
    pub(crate) local: SocketAddr,
    /// Open connections (after their handshake), by id. These references do
    /// not keep a connection open: the `Connection` handles do.
    pub(crate) conns: Mutex<HashMap<ConnectionId, Arc<Link>>>,
    /// The key its connections must use, if encrypted.
    pub(crate) keying: Option<Arc<Keying>>,
    /// The IO thread (reactor) that drives its listener and handshakes
    /// (established connections may move to others: `Link::shard`).
    pub(crate) shard: usize,
    /// Its accepted connections still alive, counted against its limits
    /// by whichever reactor accepts or closes one.
    pub(crate) admission: Mutex<Admission>,
}

/// A server's live accepted connections: the total, and per peer address
/// (kept only with `Config::max_connections_per_address`).
#[derive(Debug, Default)]
pub(crate) struct Admission {
    pub(crate) active: usize,
    pub(crate) per_address: HashMap<IpAddr, usize>,
}

impl Admission {
    /// Counts a connection from `peer` in, or says which limit it is over.
    pub(crate) fn admit(
        &mut self,
        peer: SocketAddr,
        limit: usize,
        per_address: Option<usize>,
    ) -> Result<(), Error> {
        if self.active >= limit {
            return Err(Error::ConnectionLimit { peer, limit });
        }
        if let Some(cap) = per_address {
            let n = self.per_address.entry(peer.ip()).or_default();
            if *n >= cap {
                return Err(Error::AddressLimit { peer, limit: cap });
            }
            *n += 1;
        }
        self.active += 1;
        Ok(())
    }

    /// Counts a connection from `ip` out.
    pub(crate) fn release(&mut self, ip: IpAddr) {
        self.active = self.active.saturating_sub(1);
        if let Some(n) = self.per_address.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_address.remove(&ip);
            }
        }
    }
}
