//! The event ring: a bounded queue of [`Event`]s between the IO thread and
//! the application.
//!
//! Fixed capacity in events plus a byte budget for packets. Under
//! [`OverflowPolicy::Overwrite`] a full ring drops its oldest events and
//! counts them into one [`EventKind::Dropped`] that leads the next batch (the
//! lost events were always the oldest not yet taken, so they stood exactly
//! there). Under [`OverflowPolicy::Lossless`] the IO thread asks
//! [`Ring::pause_if_full`] before reading a socket and stops while it is
//! full; control events are always accepted, so they are never lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};

use super::config::OverflowPolicy;
use super::event::{Event, EventKind};

/// A callback run (on the IO thread) when events become available.
pub(crate) type Hook = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct Ring {
    state: Mutex<State>,
    ready: Condvar,
    capacity: usize,
    byte_budget: usize,
    policy: OverflowPolicy,
    /// Converts the IO thread's `Instant`s to wall-clock time.
    anchor: (Instant, SystemTime),
    /// The application's wake hook.
    hook: Mutex<Option<Hook>>,
    /// Wakes the IO thread when a paused (lossless, full) ring has room again.
    resume: Mutex<Option<Hook>>,
}

struct State {
    events: VecDeque<(Event, usize)>,
    bytes: usize,
    /// Events overwritten since the application last took events.
    dropped: u64,
    /// The IO thread stopped reading because the ring was full.
    paused: bool,
    /// Threads blocked in `wait`.
    waiting: usize,
}

/// One event as the IO thread produces it.
pub(crate) struct Pending {
    pub(crate) kind: EventKind,
    pub(crate) time: Instant,
    /// Bytes it holds against the budget (a packet's wire size, else 0).
    pub(crate) bytes: usize,
}

impl Pending {
    pub(crate) fn new(kind: EventKind) -> Pending {
        Pending::at(kind, Instant::now())
    }

    /// An event seen at `time`.
    pub(crate) fn at(kind: EventKind, time: Instant) -> Pending {
        Pending {
            kind,
            time,
            bytes: 0,
        }
    }
}

impl Ring {
    pub(crate) fn new(capacity: usize, byte_budget: usize, policy: OverflowPolicy) -> Ring {
        Ring {
            state: Mutex::new(State {
                events: VecDeque::with_capacity(capacity.min(4096)),
                bytes: 0,
                dropped: 0,
                paused: false,
                waiting: 0,
            }),
            ready: Condvar::new(),
            capacity,
            byte_budget,
            policy,
            anchor: (Instant::now(), SystemTime::now()),
            hook: Mutex::new(None),
            resume: Mutex::new(None),
        }
    }

    pub(crate) fn set_hook(&self, hook: Option<Hook>) {
        *self.hook.lock() = hook;
    }

    pub(crate) fn set_resume(&self, resume: Option<Hook>) {
        *self.resume.lock() = resume;
    }

    pub(crate) fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    fn wall(&self, t: Instant) -> SystemTime {
        let (i0, s0) = self.anchor;
        match t.checked_duration_since(i0) {
            Some(d) => s0 + d,
            None => s0 - i0.duration_since(t),
        }
    }

    /// Adds events in order. Overwrite: drops the oldest to make room.
    /// Lossless: always adds (the IO thread has checked for room before
    /// reading data; control events may exceed the capacity).
    pub(crate) fn push(&self, batch: impl IntoIterator<Item = Pending>) {
        let mut overwritten = Vec::new();
        let became_ready = {
            let mut st = self.state.lock();
            let was_empty = st.events.is_empty() && st.dropped == 0;
            for p in batch {
                let event = Event {
                    time: p.time,
                    wall_time: self.wall(p.time),
                    kind: p.kind,
                };
                if self.policy == OverflowPolicy::Overwrite {
                    while !st.events.is_empty()
                        && (st.events.len() >= self.capacity
                            || st.bytes + p.bytes > self.byte_budget)
                    {
                        if let Some((old, bytes)) = st.events.pop_front() {
                            st.bytes -= bytes;
                            st.dropped += 1;
                            overwritten.push(old);
                        }
                    }
                }
                st.bytes += p.bytes;
                st.events.push_back((event, p.bytes));
            }
            let ready = was_empty && !st.events.is_empty();
            if ready && st.waiting > 0 {
                self.ready.notify_all();
            }
            ready
        };
        // Dropped outside the lock: an overwritten Connect event's handle
        // closes its connection, and a large packet takes time to free.
        drop(overwritten);
        if became_ready {
            // Cloned first: the hook may itself set or clear the hook.
            let hook = self.hook.lock().clone();
            if let Some(hook) = hook {
                hook();
            }
        }
    }

    /// Lossless policy: how many more events, and packet bytes, fit now.
    /// When an event of `bytes` does not fit, also remembers to resume the IO
    /// thread once the application makes room. An empty ring always takes
    /// one event (a frame is never larger than the budget). Unlimited under
    /// Overwrite.
    pub(crate) fn room_or_pause(&self, bytes: usize) -> (usize, usize) {
        if self.policy == OverflowPolicy::Overwrite {
            return (usize::MAX, usize::MAX);
        }
        let mut st = self.state.lock();
        let events = self.capacity.saturating_sub(st.events.len());
        let room_bytes = if st.events.is_empty() {
            self.byte_budget.max(bytes)
        } else {
            self.byte_budget.saturating_sub(st.bytes)
        };
        st.paused |= events == 0 || room_bytes < bytes;
        (events, room_bytes)
    }

    /// Lossless policy: true (and remembers to resume the IO thread later)
    /// when the ring has no room for more data. Always false under Overwrite.
    #[cfg(test)]
    pub(crate) fn pause_if_full(&self) -> bool {
        self.room_or_pause(0).0 == 0
    }

    /// Takes every queued event, oldest first, without blocking.
    pub(crate) fn take(&self) -> Vec<Event> {
        let mut st = self.state.lock();
        self.drain(&mut st)
    }

    /// Takes every queued event, waiting up to `timeout` for the first.
    pub(crate) fn wait(&self, timeout: Duration) -> Vec<Event> {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.state.lock();
        while st.events.is_empty() && st.dropped == 0 {
            st.waiting += 1;
            let timed_out = match deadline {
                Some(d) => self.ready.wait_until(&mut st, d).timed_out(),
                None => {
                    self.ready.wait(&mut st);
                    false
                }
            };
            st.waiting -= 1;
            if timed_out {
                break;
            }
        }
        self.drain(&mut st)
    }

    fn drain(&self, st: &mut parking_lot::MutexGuard<'_, State>) -> Vec<Event> {
        let mut out = Vec::with_capacity(st.events.len() + 1);
        if st.dropped > 0 {
            let now = Instant::now();
            out.push(Event {
                time: now,
                wall_time: self.wall(now),
                kind: EventKind::Dropped { count: st.dropped },
            });
            st.dropped = 0;
        }
        out.extend(st.events.drain(..).map(|(e, _)| e));
        st.bytes = 0;
        if std::mem::take(&mut st.paused) {
            let resume = self.resume.lock().clone();
            if let Some(resume) = resume {
                resume();
            }
        }
        out
    }

    /// Wakes every thread blocked in `wait` (used at shutdown).
    pub(crate) fn wake_waiters(&self) {
        let _guard = self.state.lock();
        self.ready.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::ids::ObjectId;
    use crate::net::ids::ServerId;

    fn ev(n: u64) -> Pending {
        Pending::new(EventKind::Dropped { count: n })
    }

    fn counts(events: &[Event]) -> Vec<u64> {
        events
            .iter()
            .map(|e| match e.kind {
                EventKind::Dropped { count } => count,
                _ => u64::MAX,
            })
            .collect()
    }

    #[test]
    fn overwrite_drops_exactly_the_oldest_and_counts_them() {
        let ring = Ring::new(3, 1 << 20, OverflowPolicy::Overwrite);
        ring.push((1..=5).map(ev));
        let got = ring.take();
        // A Dropped{2} first, then the three newest.
        assert_eq!(counts(&got), [2, 3, 4, 5]);
        assert!(ring.take().is_empty());
    }

    #[test]
    fn byte_budget_overwrites_too() {
        let ring = Ring::new(100, 10, OverflowPolicy::Overwrite);
        for n in 1..=3 {
            let mut p = ev(n);
            p.bytes = 4;
            ring.push([p]);
        }
        assert_eq!(counts(&ring.take()), [1, 2, 3]);
    }

    #[test]
    fn lossless_keeps_everything_and_pauses_when_full() {
        let ring = Ring::new(2, 1 << 20, OverflowPolicy::Lossless);
        let resumed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = resumed.clone();
        ring.set_resume(Some(Arc::new(move || {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })));
        assert!(!ring.pause_if_full());
        ring.push((1..=3).map(ev));
        assert!(ring.pause_if_full());
        assert_eq!(counts(&ring.take()), [1, 2, 3]);
        assert_eq!(resumed.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!ring.pause_if_full());
    }

    #[test]
    fn wait_returns_at_the_deadline_when_nothing_comes() {
        let ring = Ring::new(4, 1 << 20, OverflowPolicy::Overwrite);
        let start = Instant::now();
        assert!(ring.wait(Duration::from_millis(30)).is_empty());
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn wait_wakes_when_an_event_arrives_and_hook_runs() {
        let ring = Arc::new(Ring::new(4, 1 << 20, OverflowPolicy::Overwrite));
        let hooked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hooked.clone();
        ring.set_hook(Some(Arc::new(move || {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        })));
        let r = ring.clone();
        let pusher = std::thread::spawn(move || {
            r.push([Pending::new(EventKind::Drained {
                object: ObjectId::Server(ServerId(1)),
            })])
        });
        let got = ring.wait(Duration::from_secs(10));
        pusher.join().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(hooked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
