//! What keeps one peer from costing the others: the memory budget each
//! link's receive buffer draws on (large frames reserve their whole size
//! from half of it, or wait), the per-connection share of the ring, and
//! pausing a link (its session's timers stand still meanwhile).

use std::time::{Duration, Instant};

use super::driver::Driver;
use super::link_io::Held;
use crate::shared::Command;

/// Least time between two looks for a stalled frame to close, so that many
/// links waiting for memory do not each scan every link.
const EVICTION_SCAN_GAP: Duration = Duration::from_millis(100);

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

    /// There is no memory for the large frame link `t` is starting: closes
    /// the largest partial frame that has had no byte for a fifth of
    /// `Config::frame_timeout` (3 s by default), so that peers waiting for
    /// memory wait for stalled frames that long at most, not the whole
    /// timeout. True when one was closed (its memory is free again).
    pub(super) fn evict_stalled_frame(&mut self, t: usize) -> bool {
        let Some(limit) = self.net.config.frame_timeout else {
            return false;
        };
        let now = Instant::now();
        if self.large_buffers == 0
            || self
                .eviction_scan
                .is_some_and(|at| now.saturating_duration_since(at) < EVICTION_SCAN_GAP)
        {
            return false;
        }
        self.eviction_scan = Some(now);
        let grace = limit / 5;
        let victim = self
            .links
            .iter()
            .filter(|&(&u, io)| u != t && io.reserved > SMALL_BUFFER)
            .filter(|(_, io)| io.session.stalled_for(now).is_some_and(|d| d >= grace))
            .max_by_key(|(_, io)| io.reserved)
            .map(|(&u, _)| u);
        let Some(io) = victim.and_then(|u| self.links.get_mut(&u).map(|io| (u, io))) else {
            return false;
        };
        let (u, io) = io;
        io.session.close_stalled(grace);
        self.on_session_events(u);
        self.eviction_scan = None;
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
            // Links waiting for memory may fit now, here or on another
            // reactor.
            self.resume_soon |= self.budget_waiting;
            let others = self.net.budget.take_waiting_except(self.shard);
            for shard in (0..64).filter(|s| others & (1 << s) != 0) {
                self.net.command(shard, Command::Resume);
            }
        }
    }

    /// A link paused for want of memory budget: resume when the application
    /// takes events, or when this or another reactor frees memory.
    pub(super) fn wait_for_budget(&mut self) {
        self.budget_waiting = true;
        self.net.ring.resume_at_next_take();
        if self.net.reactors() > 1 {
            self.net.budget.note_waiting(self.shard);
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
