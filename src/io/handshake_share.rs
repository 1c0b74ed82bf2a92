//! The IO thread's share of time for handshakes (`Config::handshake_budget`):
//! a token bucket of time, filled at the configured rate and spent by the
//! time actually taken reading and running handshakes.
//!
//! A keyed first message costs about 0.1 ms (an X25519 key generation and a
//! Diffie-Hellman), so strangers sending them as fast as they can connect
//! would take the whole thread. While the bucket is empty, connections in
//! their handshake wait (their bytes stay in the kernel) and established
//! connections go on; the bucket holds at most [`BURST`], so a burst of
//! handshakes holds up other traffic for about that long at most.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasherDefault;
use std::time::{Duration, Instant};

use super::link_io::TokenHasher;

/// The most handshake time spent in one go.
pub(super) const BURST: Duration = Duration::from_millis(2);

/// The timer token for "the bucket has refilled" (the waker's token, which
/// no link or listener uses).
pub(super) const HANDSHAKE_TIMER: usize = super::WAKER.0;

/// Time this thread spends on something: its CPU time where the system
/// gives it (Linux), else wall time. On a busy machine the thread may be
/// preempted in the middle of a handshake; that time is not the
/// handshake's, and charging it would shrink the budget just when the
/// machine is loaded (10,000 keyed clients connecting then timed out).
pub(super) struct Spent {
    wall: Instant,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    cpu: Duration,
}

impl Spent {
    pub(super) fn start() -> Spent {
        Spent {
            wall: Instant::now(),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            cpu: thread_cpu(),
        }
    }

    /// Time spent since [`start`](Self::start).
    pub(super) fn elapsed(&self) -> Duration {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // Never more than the wall time (the clocks differ in grain).
            thread_cpu()
                .saturating_sub(self.cpu)
                .min(self.wall.elapsed())
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            self.wall.elapsed()
        }
    }
}

/// This thread's CPU time.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The bucket, and the connections waiting for it.
#[derive(Debug)]
pub(super) struct HandshakeShare {
    /// Nanoseconds of handshake time per second of wall time.
    per_second: u64,
    /// Nanoseconds that may be spent now; negative after an overrun.
    credit: i64,
    updated: Instant,
    /// Links whose handshake waits for credit, in arrival order (the driver
    /// skips those gone or no longer waiting), each once.
    waiting: VecDeque<usize>,
    queued: HashSet<usize, BuildHasherDefault<TokenHasher>>,
    /// A refill timer is armed.
    pub(super) timer_armed: bool,
}

impl HandshakeShare {
    pub(super) fn new(per_second: Duration, now: Instant) -> HandshakeShare {
        HandshakeShare {
            per_second: u64::try_from(per_second.as_nanos())
                .unwrap_or(u64::MAX)
                .max(1),
            credit: burst_nanos(),
            updated: now,
            waiting: VecDeque::new(),
            queued: HashSet::default(),
            timer_armed: false,
        }
    }

    /// Credit is left at `now`.
    pub(super) fn available(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_nanos();
        self.updated = now;
        let earned = elapsed.saturating_mul(u128::from(self.per_second)) / 1_000_000_000;
        let earned = i64::try_from(earned).unwrap_or(i64::MAX);
        self.credit = self.credit.saturating_add(earned).min(burst_nanos());
        self.credit > 0
    }

    /// Link `t` waits for credit (once, however often it becomes readable).
    pub(super) fn wait(&mut self, t: usize) {
        if self.queued.insert(t) {
            self.waiting.push_back(t);
        }
    }

    /// The link that has waited longest.
    pub(super) fn next_waiting(&mut self) -> Option<usize> {
        let t = self.waiting.pop_front()?;
        self.queued.remove(&t);
        Some(t)
    }

    /// Puts `t` back at the head of the line (no credit for it after all).
    pub(super) fn wait_first(&mut self, t: usize) {
        if self.queued.insert(t) {
            self.waiting.push_front(t);
        }
    }

    /// Handshake work took `spent`.
    pub(super) fn spend(&mut self, spent: Duration) {
        let spent = i64::try_from(spent.as_nanos()).unwrap_or(i64::MAX);
        self.credit = self.credit.saturating_sub(spent);
    }

    /// When there will be credit again (at least a few microseconds from the
    /// last update, so a refill is worth waking for).
    pub(super) fn ready_at(&self) -> Instant {
        let owed = u128::try_from(self.credit.saturating_neg().max(0)).unwrap_or(0);
        let wait_ns = owed.saturating_mul(1_000_000_000) / u128::from(self.per_second);
        let wait = Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX));
        self.updated + wait.max(Duration::from_micros(50))
    }
}

fn burst_nanos() -> i64 {
    i64::try_from(BURST.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Time the thread is off the CPU (here: asleep, as when preempted) is
    /// not charged to a handshake.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn time_off_the_cpu_is_not_spent() {
        let start = Spent::start();
        std::thread::sleep(Duration::from_millis(30));
        let spent = start.elapsed();
        assert!(spent < Duration::from_millis(10), "{spent:?}");
        let start = Spent::start();
        let until = Instant::now() + Duration::from_millis(20);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        // Busy for 20 ms of wall time: nearly all of it on the CPU unless
        // the machine took it away, and never more than the wall time.
        let spent = start.elapsed();
        assert!(
            spent <= Duration::from_millis(40) && spent > Duration::ZERO,
            "{spent:?}"
        );
    }

    #[test]
    fn spends_at_most_the_share_per_second_and_the_burst_at_once() {
        let t0 = Instant::now();
        let mut share = HandshakeShare::new(Duration::from_millis(250), t0);
        assert!(share.available(t0));
        // A burst spends the bucket (and overruns it by one handshake).
        share.spend(Duration::from_micros(2100));
        assert!(!share.available(t0));
        // 0.1 ms owed at a quarter of a second per second: 0.4 ms to wait.
        assert_eq!(share.ready_at(), t0 + Duration::from_micros(400));
        assert!(!share.available(t0 + Duration::from_micros(399)));
        assert!(share.available(t0 + Duration::from_micros(401)));
        // A long quiet time refills only up to the burst.
        let later = t0 + Duration::from_secs(10);
        assert!(share.available(later));
        share.spend(BURST);
        assert!(!share.available(later));
        // Over one second of steady demand, about 250 ms is spent.
        let mut now = later;
        let mut spent = Duration::ZERO;
        while now < later + Duration::from_secs(1) {
            if share.available(now) {
                share.spend(Duration::from_micros(100));
                spent += Duration::from_micros(100);
            }
            now += Duration::from_micros(50);
        }
        let ms = spent.as_millis();
        assert!((245..=255).contains(&ms), "spent {ms} ms");
    }
}
