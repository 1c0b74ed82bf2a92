//! What keeps one peer from costing the others: the memory budget each
//! link's receive buffer draws on (large frames reserve their whole size
//! from half of it, or wait), the per-connection share of the ring, and
//! pausing a link (its session's timers stand still meanwhile).

use std::time::Instant;

use super::driver::Driver;
use super::link_io::Held;

/// Receive-buffer memory a link may hold without counting as a large
/// partial frame: together, the larger ones hold at most half the budget.
pub(super) const SMALL_BUFFER: usize = 64 * 1024;

impl Driver {
    /// How much the link's receive buffer may grow now: within its first
    /// 64 KiB, what the budget has free; beyond, what was reserved for the
    /// large frame now arriving (see [`reserve_frame`](Self::reserve_frame)).
    pub(super) fn growth_allowance(&self, t: usize) -> usize {
        let Some(io) = self.links.get(&t) else {
            return 0;
        };
        let capacity = io.session.receive_memory();
        if io.reserved > capacity {
            return io.reserved - capacity;
        }
        let small = SMALL_BUFFER.saturating_sub(capacity);
        self.net
            .budget
            .free()
            .saturating_sub(self.pending_bytes)
            .min(small)
    }

    /// A frame larger than 64 KiB is arriving: reserves the memory for all
    /// of it at once, out of the half of the budget that large partial
    /// frames share, or nothing. Whole reservations mean every admitted
    /// frame can finish (or stall and be timed out), where growing many
    /// frames bit by bit could leave them all half-grown, waiting for each
    /// other. False when there is no room (the link then waits).
    pub(super) fn reserve_frame(&mut self, t: usize) -> bool {
        let Some(io) = self.links.get(&t) else {
            return false;
        };
        let Some(size) = io.session.next_frame_size() else {
            return false;
        };
        // Room for the frame and the reads that straddle its end.
        let want = size + 4 * 1024;
        if io.reserved >= want || want <= SMALL_BUFFER {
            return false;
        }
        let large = |n: usize| n.saturating_sub(SMALL_BUFFER);
        let extra = want.saturating_sub(io.charged);
        let large_extra = large(want).saturating_sub(large(io.charged));
        let budget = &self.net.budget;
        if budget.free().saturating_sub(self.pending_bytes) < extra
            || self.large_buffers + large_extra > budget.limit() / 2
        {
            return false;
        }
        if let Some(io) = self.links.get_mut(&t) {
            io.reserved = want;
        }
        self.settle(t);
        true
    }

    /// After frames were taken out: a large one's reservation ends, and a
    /// buffer handed over with its message is no longer the link's.
    pub(super) fn end_reservation(&mut self, t: usize) {
        if let Some(io) = self.links.get_mut(&t)
            && io.reserved > 0
            && io.session.buffered() <= SMALL_BUFFER
        {
            io.reserved = 0;
        }
        self.settle(t);
    }

    /// Frees an empty receive buffer (an idle link holds none).
    pub(super) fn release_idle_memory(&mut self, t: usize) {
        if let Some(io) = self.links.get_mut(&t) {
            io.session.release_idle_memory();
            if io.session.buffered() == 0 {
                io.reserved = 0;
            }
        }
        self.settle(t);
    }

    /// Brings the budget's count of the link's receive buffer up to date.
    pub(super) fn settle(&mut self, t: usize) {
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
        let (before, after) = (io.charged, io.session.receive_memory().max(io.reserved));
        io.charged = after;
        self.account_buffer(before, after);
    }

    /// A receive buffer went from `before` to `after` bytes.
    pub(super) fn account_buffer(&mut self, before: usize, after: usize) {
        let large = |n: usize| n.saturating_sub(SMALL_BUFFER);
        self.large_buffers = (self.large_buffers + large(after)).saturating_sub(large(before));
        if after >= before {
            self.net.budget.charge(after - before);
        } else {
            self.net.budget.release(before - after);
            // Links waiting for memory may fit now.
            self.resume_soon |= self.budget_waiting;
        }
    }

    /// Stops reading a link until [`resume`](Driver::resume): its session's
    /// timers stand still meanwhile (the wait is ours, not the peer's).
    pub(super) fn pause_link(&mut self, t: usize) {
        if let Some(io) = self.links.get_mut(&t) {
            io.session.pause_reading(Instant::now());
            self.paused_links.push(t);
        }
    }

    /// True when the link may add a message of `size` bytes to the ring:
    /// within its share, or the ring has room to spare. Otherwise the ring
    /// resumes us at its next take.
    pub(super) fn within_quota(&mut self, t: usize, size: usize) -> bool {
        let epoch = self.net.ring.epoch();
        let (quota_events, quota_bytes) = self.quota;
        let Some(io) = self.links.get_mut(&t) else {
            return false;
        };
        if io.held.epoch != epoch {
            io.held = Held {
                epoch,
                ..Held::default()
            };
        }
        let held = io.held;
        if held.events == 0 || (held.events < quota_events && held.bytes + size <= quota_bytes) {
            return true;
        }
        // Over its share: the ring decides, counting what we hold back.
        self.flush_events();
        if self.net.ring.quota_pause(epoch) {
            return false;
        }
        // The ring has room to spare: another share before asking again.
        if let Some(io) = self.links.get_mut(&t) {
            io.held = Held {
                epoch,
                ..Held::default()
            };
        }
        true
    }
}
