//! [`Budget`]: one limit on what peers can make a network hold.
//!
//! Everything received and not yet taken by the application counts against
//! it: the receive buffers of partial frames, and the messages waiting in
//! the event ring. The IO thread is the only one that adds (so checking
//! before adding is enough); the application's thread releases as it takes
//! events.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes held for peers, against a fixed limit.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// The configured limit.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes that can still be taken on.
    pub(crate) fn free(&self) -> usize {
        self.limit.saturating_sub(self.used())
    }

    /// Counts `n` more bytes as held (the caller checked [`free`](Self::free)).
    pub(crate) fn charge(&self, n: usize) {
        if n > 0 {
            self.used.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts `n` bytes as no longer held.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            // Saturating: a release never takes the count below zero.
            let _ = self
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                    Some(u.saturating_sub(n))
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_and_releases_against_the_limit() {
        let b = Budget::new(100);
        b.charge(60);
        assert_eq!((b.used(), b.free()), (60, 40));
        b.charge(50); // over: the caller should have checked
        assert_eq!(b.free(), 0);
        b.release(200);
        assert_eq!((b.used(), b.free()), (0, 100));
    }
}
