//! A server's connections still in their handshake, oldest first, and how
//! many each peer address holds: when there are `Config::max_handshaking`
//! of them, one is closed to make room, preferably the oldest of an address
//! that holds more than its share.
//!
//! Oldest-first alone lets one address flooding first messages close an
//! honest peer's handshake as soon as it becomes the oldest; preferring the
//! heavy address keeps the flood's cost on the flood.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// An address holding more than this fraction of the half-open slots (one
/// eighth) is heavy: its connections are closed first.
const HEAVY_SHARE: usize = 8;

/// The half-open connections of one server.
#[derive(Debug, Default)]
pub(super) struct HalfOpen {
    /// Tokens and peer addresses, oldest first. Entries of connections that
    /// finished their handshake or closed stay until [`prune`](Self::prune).
    order: VecDeque<(usize, IpAddr)>,
    per_address: HashMap<IpAddr, usize>,
}

impl HalfOpen {
    /// Entries held (some may be stale until pruned).
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// A new connection `t` from `ip` began its handshake.
    pub(super) fn push(&mut self, t: usize, ip: IpAddr) {
        self.order.push_back((t, ip));
        *self.per_address.entry(ip).or_default() += 1;
    }

    /// Forgets the entries whose connection is no longer half-open.
    pub(super) fn prune(&mut self, mut half_open: impl FnMut(usize) -> bool) {
        let per_address = &mut self.per_address;
        self.order.retain(|&(t, ip)| {
            let keep = half_open(t);
            if !keep {
                forget(per_address, ip);
            }
            keep
        });
    }

    /// Removes and returns the connection to close to make room under
    /// `limit`: the oldest of a heavy address if there is one, else the
    /// oldest.
    pub(super) fn evict(&mut self, limit: usize) -> Option<usize> {
        let heavy = (limit / HEAVY_SHARE).max(1);
        let per_address = &self.per_address;
        let index = self
            .order
            .iter()
            .position(|(_, ip)| per_address.get(ip).is_some_and(|n| *n > heavy))
            .unwrap_or(0);
        let (t, ip) = self.order.remove(index)?;
        forget(&mut self.per_address, ip);
        Some(t)
    }
}

fn forget(per_address: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = per_address.get_mut(&ip) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_address.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn a_heavy_address_is_evicted_before_an_older_light_one() {
        let mut h = HalfOpen::default();
        h.push(1, ip(1)); // honest, oldest
        for t in 2..=16 {
            h.push(t, ip(2)); // a flood from one address
        }
        // 16 slots: an eighth is 2; 127.0.0.2 holds 15.
        assert_eq!(h.evict(16), Some(2));
        assert_eq!(h.evict(16), Some(3));
        // Pruned entries no longer count.
        h.prune(|t| t != 4 && t != 5);
        assert_eq!(h.len(), 12);
        assert_eq!(h.evict(16), Some(6));
    }

    #[test]
    fn without_a_heavy_address_the_oldest_goes() {
        let mut h = HalfOpen::default();
        for t in 1..=16 {
            h.push(t, ip(t as u8)); // all different
        }
        assert_eq!(h.evict(16), Some(1));
        assert_eq!(h.evict(16), Some(2));
        assert!(h.per_address.len() == 14 && h.len() == 14);
    }
}
