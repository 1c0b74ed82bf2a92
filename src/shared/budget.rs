//! [`Budget`]: one limit on what peers can make a network hold.
//!
//! Everything received and not yet taken by the application counts against
//! it: the receive buffers of partial frames, and the messages waiting in
//! the event ring. The IO thread is the only one that adds (so checking
//! before adding is enough); the application's thread releases as it takes
//! events.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes held for peers, against a fixed limit.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// Reactors (bit `shard`, `Config::io_threads` <= 64) with a link
    /// paused for want of budget: memory another reactor frees resumes them.
    waiting: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget {
            limit,
            used: AtomicUsize::new(0),
            waiting: AtomicU64::new(0),
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

    /// Reactor `shard` has a link waiting for budget.
    pub(crate) fn note_waiting(&self, shard: usize) {
        self.waiting.fetch_or(1 << (shard % 64), Ordering::AcqRel);
    }

    /// The reactors other than `shard` that wait for budget (bit per
    /// reactor), no longer marked as waiting: a release by `shard` may
    /// let them go on, and they are told so.
    pub(crate) fn take_waiting_except(&self, shard: usize) -> u64 {
        let own = 1u64 << (shard % 64);
        if self.waiting.load(Ordering::Acquire) & !own == 0 {
            return 0;
        }
        self.waiting.fetch_and(own, Ordering::AcqRel) & !own
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

    #[test]
    fn a_release_tells_the_other_waiting_reactors_once() {
        let b = Budget::new(100);
        b.note_waiting(0);
        b.note_waiting(2);
        assert_eq!(b.take_waiting_except(2), 0b001, "reactor 0 is told");
        assert_eq!(b.take_waiting_except(2), 0, "and only once");
        assert_eq!(b.take_waiting_except(0), 0b100, "reactor 2 still waits");
    }
}
