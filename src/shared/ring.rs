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
//!
//! Small received messages are stored undecoded ([`Content::Message`]) and
//! decoded by the thread that takes them, outside the lock: the IO thread
//! then only frames, the application's thread allocates and frees the values
//! (no cross-thread frees in the allocator), and both cores share the work.
//! So are large ones too dense for the IO thread to decode cheaply; each is
//! decoded within what the network's memory budget has free (packets are
//! charged to it while they wait here). A message that does not decode
//! becomes an `Error` event in its place; the IO thread is asked (through
//! the fail hook) to close its link, and the link's later messages are
//! dropped until its close event is taken.
//!
//! Every take empties the ring and starts a new *epoch*: what a connection
//! added since the epoch began is what it holds, which the IO thread checks
//! against its share ([`Ring::quota_pause`]).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use super::budget::Budget;
use super::config::OverflowPolicy;
use super::event::{Event, EventKind, Source};
use super::ids::ObjectId;
use super::message::Message;
use crate::error::Error;
use crate::proto::{Limits, decode_value_within};

/// A callback run (on the IO thread) when events become available.
pub(crate) type Hook = Arc<dyn Fn() + Send + Sync>;

/// Asks the IO thread to close the link with this socket id for this error
/// (a message from it did not decode).
pub(crate) type FailHook = Arc<dyn Fn(u64, Error) + Send + Sync>;

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
    /// Closes a link whose message did not decode.
    fail: Mutex<Option<FailHook>>,
    /// Limits for decoding the messages taken out.
    limits: Limits,
    /// Socket ids of links whose message did not decode: their later
    /// messages are dropped until their close event has been taken.
    failed: Mutex<HashSet<u64>>,
    /// An empty queue with capacity, swapped in when events are taken, so
    /// taking allocates only the returned vector.
    spare: Mutex<Slots>,
    /// The network's memory budget: packets are charged while they wait
    /// here, and a message decodes only if its decoded size fits what is free.
    budget: Arc<Budget>,
    /// Counts the times events were taken (mirrors `State::epoch`, for the
    /// IO thread's per-connection quota without taking the lock).
    epoch: AtomicU64,
    /// Messages are handed out undecoded (`Config::raw_messages`).
    raw_messages: bool,
    /// Minor events held at most (see [`Ring::push_minor`]).
    minor_capacity: usize,
    /// Reactors pushing into it (`Config::io_threads`): each is told at
    /// most its share of the free room at a time.
    producers: usize,
}

type Slots = VecDeque<(Instant, Content, usize)>;

/// Failed links remembered at most (see [`Ring::finish`]).
const MAX_FAILED: usize = 4096;

/// Events about connections that never authenticated held at least, in a
/// queue of their own beside the ring's capacity (see [`Ring::push_minor`]):
/// three seconds of the default 20 reports a second, with summaries.
const MINOR_CAPACITY: usize = 64;

/// What [`Ring::drain`] took out.
struct Taken {
    dropped: u64,
    slots: Slots,
    minor: Vec<(Instant, EventKind)>,
}

/// The socket id of a message's link.
fn source_id(from: Source) -> u64 {
    match from {
        Source::Connection(c) => c.socket_id(),
        Source::Client(c) => c.socket_id(),
    }
}

/// A failed link's close event ends the dropping of its messages (none
/// follow it: the IO thread removed the link).
fn forget_closed(failed: &mut HashSet<u64>, kind: &EventKind) {
    let id = match kind {
        EventKind::ClientClose { connection, .. } => connection.socket_id(),
        EventKind::ServerClose { client, .. } => client.socket_id(),
        _ => return,
    };
    failed.remove(&id);
}

/// What an event slot holds.
pub(crate) enum Content {
    /// A finished event.
    Event(EventKind),
    /// A received message, decoded by the thread that takes it out (so the
    /// IO thread only frames, and the value is allocated and freed on the
    /// application's thread).
    Message {
        /// Who sent it.
        from: Source,
        /// Its body: the encoded value.
        body: Bytes,
    },
}

struct State {
    events: Slots,
    /// Events about connections that never authenticated: never counted
    /// against the ring's capacity, never overwriting or overwritten.
    minor: Vec<(Instant, EventKind)>,
    bytes: usize,
    /// Events overwritten since the application last took events.
    dropped: u64,
    /// The IO thread stopped reading because the ring was full.
    paused: bool,
    /// Threads blocked in `wait`.
    waiting: usize,
    /// Tasks waiting for events (the async event stream): woken with the
    /// wake hook, under the same lock, so none misses an event.
    wakers: Vec<std::task::Waker>,
    /// Counts the times events were taken: every take empties the ring, so
    /// what a connection holds is what it added in the current epoch.
    epoch: u64,
}

impl State {
    /// Nothing to take: no event, minor event or count of dropped ones.
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.minor.is_empty() && self.dropped == 0
    }
}

/// One event as the IO thread produces it.
pub(crate) struct Pending {
    pub(crate) content: Content,
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
            content: Content::Event(kind),
            time,
            bytes: 0,
        }
    }

    /// A message still to decode, seen at `time`, `size` bytes on the wire.
    pub(crate) fn message(from: Source, body: Bytes, time: Instant, size: usize) -> Pending {
        Pending {
            content: Content::Message { from, body },
            time,
            bytes: size,
        }
    }
}

impl Ring {
    pub(crate) fn new(
        capacity: usize,
        byte_budget: usize,
        policy: OverflowPolicy,
        limits: Limits,
        budget: Arc<Budget>,
    ) -> Ring {
        Ring {
            state: Mutex::new(State {
                events: VecDeque::with_capacity(capacity.min(4096)),
                minor: Vec::new(),
                bytes: 0,
                dropped: 0,
                paused: false,
                waiting: 0,
                wakers: Vec::new(),
                epoch: 0,
            }),
            ready: Condvar::new(),
            capacity,
            byte_budget,
            policy,
            anchor: (Instant::now(), SystemTime::now()),
            hook: Mutex::new(None),
            resume: Mutex::new(None),
            fail: Mutex::new(None),
            limits,
            failed: Mutex::new(HashSet::new()),
            spare: Mutex::new(VecDeque::new()),
            budget,
            epoch: AtomicU64::new(0),
            raw_messages: false,
            minor_capacity: MINOR_CAPACITY,
            producers: 1,
        }
    }

    /// Shared by `n` reactors, each caching the room it was told.
    pub(crate) fn with_producers(mut self, n: usize) -> Ring {
        self.producers = n.max(1);
        self
    }

    /// Holds up to `per_second` minor events (a second of reports at the
    /// configured rate), at least [`MINOR_CAPACITY`] and at most the ring's
    /// capacity.
    pub(crate) fn with_minor_rate(mut self, per_second: u32) -> Ring {
        let wanted = usize::try_from(per_second).unwrap_or(usize::MAX);
        self.minor_capacity = wanted.min(self.capacity).max(MINOR_CAPACITY);
        self
    }

    /// Hands messages out undecoded, as [`EventKind::Message`].
    pub(crate) fn with_raw_messages(mut self, on: bool) -> Ring {
        self.raw_messages = on;
        self
    }

    /// How many times events were taken so far (see [`Ring::quota_pause`]).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A connection holds its share of the ring (what it added since
    /// `epoch`): true, and the IO thread is resumed at the next take, when
    /// the ring is contended (at least three quarters full, in events or
    /// bytes, so a quarter stays for everyone else) and
    /// no take has happened since `epoch`. False when it may go on adding:
    /// the ring has room to spare, or was emptied meanwhile.
    pub(crate) fn quota_pause(&self, epoch: u64) -> bool {
        let mut st = self.state.lock();
        let contended = st.events.len().saturating_mul(4) >= self.capacity.saturating_mul(3)
            || st.bytes.saturating_mul(4) >= self.byte_budget.saturating_mul(3);
        if st.epoch != epoch || !contended {
            return false;
        }
        st.paused = true;
        true
    }

    /// Resume the IO thread at the next take (it paused a link for want of
    /// memory budget, which takes free).
    pub(crate) fn resume_at_next_take(&self) {
        self.state.lock().paused = true;
    }

    pub(crate) fn set_hook(&self, hook: Option<Hook>) {
        *self.hook.lock() = hook;
    }

    pub(crate) fn set_resume(&self, resume: Option<Hook>) {
        *self.resume.lock() = resume;
    }

    pub(crate) fn set_fail(&self, fail: Option<FailHook>) {
        *self.fail.lock() = fail;
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
        let mut tasks = Vec::new();
        // The hook to call, read under the state lock: a hook set after the
        // application took these events (which needs that lock) must not be
        // called for them.
        let wake = {
            let mut st = self.state.lock();
            let was_empty = st.is_empty();
            for p in batch {
                if self.policy == OverflowPolicy::Overwrite {
                    while !st.events.is_empty()
                        && (st.events.len() >= self.capacity
                            || st.bytes + p.bytes > self.byte_budget)
                    {
                        if let Some((_, old, bytes)) = st.events.pop_front() {
                            st.bytes -= bytes;
                            st.dropped += 1;
                            self.budget.release(bytes);
                            overwritten.push(old);
                        }
                    }
                }
                st.bytes += p.bytes;
                self.budget.charge(p.bytes);
                st.events.push_back((p.time, p.content, p.bytes));
            }
            let ready = was_empty && !st.events.is_empty();
            self.ready_to_wake(&mut st, ready, &mut tasks)
        };
        // Dropped outside the lock: an overwritten Connect event's handle
        // closes its connection, and a large packet takes time to free.
        drop(overwritten);
        Self::wake(tasks, wake);
    }

    /// Adds an event about a connection that never authenticated (a
    /// handshake failure, a refusal) to a small queue of its own, so that
    /// strangers' failures never take the ring's room from established
    /// connections, nor overwrite their events, nor pause reading. Taking
    /// events merges it in by time. Gives the event back when that queue
    /// is full (see [`with_minor_rate`](Self::with_minor_rate)).
    pub(crate) fn push_minor(&self, time: Instant, kind: EventKind) -> Result<(), EventKind> {
        let mut tasks = Vec::new();
        let wake = {
            let mut st = self.state.lock();
            if st.minor.len() >= self.minor_capacity {
                return Err(kind);
            }
            let ready = st.is_empty();
            st.minor.push((time, kind));
            self.ready_to_wake(&mut st, ready, &mut tasks)
        };
        Self::wake(tasks, wake);
        Ok(())
    }

    /// Events just became available (`ready`): wakes the threads waiting
    /// under the lock, takes the tasks to wake, and returns the hook to call
    /// (read under the lock, so a hook set after the application took these
    /// events is not called for them).
    fn ready_to_wake(
        &self,
        st: &mut State,
        ready: bool,
        tasks: &mut Vec<std::task::Waker>,
    ) -> Option<Hook> {
        if !ready {
            return None;
        }
        if st.waiting > 0 {
            self.ready.notify_all();
        }
        *tasks = std::mem::take(&mut st.wakers);
        // Cloned: the hook may itself set or clear the hook.
        self.hook.lock().clone()
    }

    /// Wakes, outside the lock, what [`ready_to_wake`](Self::ready_to_wake) found.
    fn wake(tasks: Vec<std::task::Waker>, hook: Option<Hook>) {
        for task in tasks {
            task.wake();
        }
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Lossless policy: how many more events, and packet bytes, the
    /// asking reactor may add before it asks again: its share of what fits
    /// now (all of it with one reactor). When an event of `bytes` does not
    /// fit, also remembers to resume the reactors once the application makes
    /// room. An empty ring always takes one event (a frame is never larger
    /// than the budget), and so does one with room for it beyond the share,
    /// so a large frame never waits for a share smaller than itself.
    /// Unlimited under Overwrite.
    pub(crate) fn room_or_pause(&self, bytes: usize) -> (usize, usize) {
        if self.policy == OverflowPolicy::Overwrite {
            return (usize::MAX, usize::MAX);
        }
        let mut st = self.state.lock();
        let free = self.capacity.saturating_sub(st.events.len());
        let free_bytes = if st.events.is_empty() {
            self.byte_budget.max(bytes)
        } else {
            self.byte_budget.saturating_sub(st.bytes)
        };
        let (events, room_bytes) = if self.producers == 1 {
            (free, free_bytes)
        } else {
            // Each reactor takes at most its share, so together they go
            // past the free room by at most an event and a frame each.
            let events = if free == 0 {
                0
            } else {
                (free / self.producers).max(1)
            };
            let share = free_bytes / self.producers;
            (
                events,
                if bytes > share && bytes <= free_bytes {
                    bytes
                } else {
                    share
                },
            )
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

    /// Events produced since events were last taken: those queued plus
    /// those a full ring overwrote.
    pub(crate) fn pending(&self) -> usize {
        let st = self.state.lock();
        st.events
            .len()
            .saturating_add(st.minor.len())
            .saturating_add(usize::try_from(st.dropped).unwrap_or(usize::MAX))
    }

    /// Takes every queued event, oldest first, without blocking.
    pub(crate) fn take(&self) -> Vec<Event> {
        let mut out = Vec::new();
        self.take_into(&mut out);
        out
    }

    /// [`take`](Self::take), appending to `out` (whose memory a caller
    /// reuses batch after batch). Returns how many events it appended.
    pub(crate) fn take_into(&self, out: &mut Vec<Event>) -> usize {
        let taken = self.drain(&mut self.state.lock());
        self.finish_into(taken, out)
    }

    /// Takes every queued event, or (none queued) registers `waker` to be
    /// woken when events arrive or the network shuts down: the async form of
    /// [`wait`](Self::wait).
    #[cfg_attr(not(feature = "futures"), allow(dead_code))]
    pub(crate) fn take_or_register(&self, waker: &std::task::Waker) -> Vec<Event> {
        let mut st = self.state.lock();
        if st.is_empty() {
            if !st.wakers.iter().any(|w| w.will_wake(waker)) {
                st.wakers.push(waker.clone());
            }
            return Vec::new();
        }
        let taken = self.drain(&mut st);
        drop(st);
        let mut out = Vec::new();
        self.finish_into(taken, &mut out);
        out
    }

    /// Takes every queued event, waiting up to `timeout` for the first.
    pub(crate) fn wait(&self, timeout: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        self.wait_into(&mut out, timeout);
        out
    }

    /// [`wait`](Self::wait), appending to `out`; how many it appended.
    pub(crate) fn wait_into(&self, out: &mut Vec<Event>, timeout: Duration) -> usize {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.state.lock();
        while st.is_empty() {
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
        let taken = self.drain(&mut st);
        drop(st);
        self.finish_into(taken, out)
    }

    /// Takes everything queued, under the lock; [`finish`](Self::finish)
    /// turns it into events outside it.
    fn drain(&self, st: &mut parking_lot::MutexGuard<'_, State>) -> Taken {
        let dropped = std::mem::take(&mut st.dropped);
        let spare = std::mem::take(&mut *self.spare.lock());
        let slots = std::mem::replace(&mut st.events, spare);
        let minor = std::mem::take(&mut st.minor);
        self.budget.release(std::mem::take(&mut st.bytes));
        st.epoch += 1;
        self.epoch.store(st.epoch, Ordering::Release);
        if std::mem::take(&mut st.paused) {
            let resume = self.resume.lock().clone();
            if let Some(resume) = resume {
                resume();
            }
        }
        Taken {
            dropped,
            slots,
            minor,
        }
    }

    /// Turns taken slots into events, decoding messages on this (the
    /// application's) thread. A message that does not decode becomes an
    /// `Error` event in its place; its link is closed with that error and
    /// its later messages are dropped.
    /// Appends them to `out`; returns how many.
    fn finish_into(&self, taken: Taken, out: &mut Vec<Event>) -> usize {
        let Taken {
            dropped,
            mut slots,
            minor,
        } = taken;
        let base = out.len();
        out.reserve(slots.len() + 1);
        if dropped > 0 {
            let now = Instant::now();
            out.push(Event {
                time: now,
                wall_time: self.wall(now),
                kind: EventKind::Dropped { count: dropped },
            });
        }
        let mut failures = Vec::new();
        let mut failed = self.failed.lock();
        for (time, content, _) in slots.drain(..) {
            let kind = match content {
                Content::Event(kind) => {
                    if !failed.is_empty() {
                        // A large message, decoded by the IO thread, from
                        // a link whose earlier message failed: dropped too.
                        if let EventKind::Receive { from, .. } = &kind
                            && failed.contains(&source_id(*from))
                        {
                            continue;
                        }
                        forget_closed(&mut failed, &kind);
                    }
                    kind
                }
                Content::Message { from, body } => {
                    let id = source_id(from);
                    if !failed.is_empty() && failed.contains(&id) {
                        continue;
                    }
                    if self.raw_messages {
                        let max_cost = self.decode_limit(body.len());
                        let fail = self.fail.lock().clone();
                        let message = Message::new(from, body, self.limits, max_cost, fail);
                        out.push(Event {
                            time,
                            wall_time: self.wall(time),
                            kind: EventKind::Message { from, message },
                        });
                        continue;
                    }
                    match decode_value_within(&body, &self.limits, self.decode_limit(body.len())) {
                        Ok(packet) => EventKind::Receive { from, packet },
                        Err(error) => {
                            // Bounded: an entry whose close event was
                            // overwritten would otherwise stay forever (ids
                            // are never reused, so forgetting is harmless).
                            if failed.len() >= MAX_FAILED {
                                failed.clear();
                            }
                            failed.insert(id);
                            failures.push((id, error.clone()));
                            EventKind::Error {
                                object: match from {
                                    Source::Connection(c) => ObjectId::Connection(c),
                                    Source::Client(c) => ObjectId::Client(c),
                                },
                                error,
                                // The ring does not know it; the link's
                                // close event follows.
                                peer: None,
                            }
                        }
                    }
                }
            };
            out.push(Event {
                time,
                wall_time: self.wall(time),
                kind,
            });
        }
        drop(failed);
        *self.spare.lock() = slots;
        if !minor.is_empty() {
            let batch = out.split_off(base);
            out.extend(self.merge_minor(batch, minor));
        }
        if !failures.is_empty() {
            let fail = self.fail.lock().clone();
            if let Some(fail) = fail {
                for (id, error) in failures {
                    fail(id, error);
                }
            }
        }
        out.len() - base
    }

    /// Merges the minor events into the others by time (both are in the
    /// order the IO thread saw them; on a tie the other event comes first).
    fn merge_minor(&self, out: Vec<Event>, minor: Vec<(Instant, EventKind)>) -> Vec<Event> {
        let mut merged = Vec::with_capacity(out.len() + minor.len());
        let mut minor = minor.into_iter().peekable();
        for event in out {
            if matches!(event.kind, EventKind::Dropped { .. }) {
                merged.push(event); // always leads the batch
                continue;
            }
            while let Some((time, kind)) = minor.next_if(|(t, _)| *t < event.time) {
                merged.push(Event {
                    time,
                    wall_time: self.wall(time),
                    kind,
                });
            }
            merged.push(event);
        }
        for (time, kind) in minor {
            merged.push(Event {
                time,
                wall_time: self.wall(time),
                kind,
            });
        }
        merged
    }

    /// The most memory a message of `size` bytes may take once decoded, as
    /// the decoder estimates it: half of what the budget has free beside the
    /// message itself (a growing table briefly holds its old and new
    /// storage, up to twice the estimate), but at least 32 times its size
    /// plus 1 MiB (so ordinary messages always decode, whatever partial
    /// frames hold), and never more than half the budget. A dense frame of
    /// tiny elements would otherwise decode to dozens of times its size.
    fn decode_limit(&self, size: usize) -> usize {
        let half = self.budget.limit() / 2;
        let floor = size.saturating_mul(32).saturating_add(1 << 20).min(half);
        (self.budget.free().saturating_sub(size) / 2).max(floor)
    }

    /// Wakes every thread blocked in `wait` (used at shutdown).
    pub(crate) fn wake_waiters(&self) {
        let tasks = {
            let mut st = self.state.lock();
            self.ready.notify_all();
            std::mem::take(&mut st.wakers)
        };
        for task in tasks {
            task.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::ids::ObjectId;
    use crate::shared::ids::ServerId;

    fn unlimited() -> Arc<Budget> {
        Arc::new(Budget::new(usize::MAX))
    }

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
    fn minor_events_take_no_room_and_are_merged_by_time() {
        let ring = Ring::new(
            3,
            1 << 20,
            OverflowPolicy::Overwrite,
            Limits::default(),
            unlimited(),
        );
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let drained = |n: u64| EventKind::Drained {
            object: ObjectId::Server(ServerId(n)),
        };
        let stranger = |n: u64| EventKind::Error {
            object: ObjectId::Server(ServerId(n)),
            error: Error::Closed,
            peer: None,
        };
        ring.push((1..=3).map(|n| Pending::at(drained(n), at(n * 10))));
        ring.push_minor(at(25), stranger(100)).unwrap();
        ring.push_minor(at(50), stranger(101)).unwrap();
        // The ring is full of established events: a fourth overwrites the
        // oldest of them, never a minor one.
        ring.push([Pending::at(drained(4), at(40))]);
        let got: Vec<String> = ring
            .take()
            .iter()
            .map(|e| match &e.kind {
                EventKind::Dropped { count } => format!("dropped {count}"),
                EventKind::Drained { object } => format!("event {}", object.socket_id()),
                EventKind::Error { object, .. } => format!("minor {}", object.socket_id()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [
                "dropped 1",
                "event 2",
                "minor 100",
                "event 3",
                "event 4",
                "minor 101"
            ]
        );
        // The minor queue is bounded by itself.
        for n in 0..MINOR_CAPACITY as u64 {
            ring.push_minor(at(60), stranger(n)).unwrap();
        }
        assert!(ring.push_minor(at(60), stranger(0)).is_err());
        assert_eq!(ring.pending(), MINOR_CAPACITY);
    }

    #[test]
    fn lossless_room_ignores_minor_events() {
        let ring = Ring::new(
            2,
            1 << 20,
            OverflowPolicy::Lossless,
            Limits::default(),
            unlimited(),
        )
        .with_minor_rate(20);
        for n in 0..MINOR_CAPACITY as u64 {
            let kind = EventKind::Error {
                object: ObjectId::Server(ServerId(n)),
                error: Error::Closed,
                peer: None,
            };
            ring.push_minor(Instant::now(), kind).unwrap();
        }
        assert_eq!(
            ring.room_or_pause(0).0,
            2,
            "three seconds of reports took no room"
        );
        assert_eq!(ring.take().len(), MINOR_CAPACITY);
    }

    #[test]
    fn overwrite_drops_exactly_the_oldest_and_counts_them() {
        let ring = Ring::new(
            3,
            1 << 20,
            OverflowPolicy::Overwrite,
            Limits::default(),
            unlimited(),
        );
        ring.push((1..=5).map(ev));
        let got = ring.take();
        // A Dropped{2} first, then the three newest.
        assert_eq!(counts(&got), [2, 3, 4, 5]);
        assert!(ring.take().is_empty());
    }

    #[test]
    fn byte_budget_overwrites_too() {
        let ring = Ring::new(
            100,
            10,
            OverflowPolicy::Overwrite,
            Limits::default(),
            unlimited(),
        );
        for n in 1..=3 {
            let mut p = ev(n);
            p.bytes = 4;
            ring.push([p]);
        }
        assert_eq!(counts(&ring.take()), [1, 2, 3]);
    }

    #[test]
    fn lossless_keeps_everything_and_pauses_when_full() {
        let ring = Ring::new(
            2,
            1 << 20,
            OverflowPolicy::Lossless,
            Limits::default(),
            unlimited(),
        );
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
        let ring = Ring::new(
            4,
            1 << 20,
            OverflowPolicy::Overwrite,
            Limits::default(),
            unlimited(),
        );
        let start = Instant::now();
        assert!(ring.wait(Duration::from_millis(30)).is_empty());
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn wait_wakes_when_an_event_arrives_and_hook_runs() {
        let ring = Arc::new(Ring::new(
            4,
            1 << 20,
            OverflowPolicy::Overwrite,
            Limits::default(),
            unlimited(),
        ));
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

    #[test]
    fn messages_decode_on_take_and_a_bad_one_fails_its_link_only() {
        use crate::proto::encode_message_to_vec;
        use crate::shared::CloseReason;
        use crate::shared::ids::{ConnectionId, ServerId};
        use crate::value::Value;

        let ring = Ring::new(
            100,
            1 << 20,
            OverflowPolicy::Lossless,
            Limits::default(),
            unlimited(),
        );
        let failed = Arc::new(Mutex::new(Vec::new()));
        let f = failed.clone();
        ring.set_fail(Some(Arc::new(move |id, error| f.lock().push((id, error)))));
        let (a, b) = (ConnectionId(7), ConnectionId(8));
        let body = |n: i64| {
            let frame = encode_message_to_vec(&Value::Integer(n), &Limits::default()).unwrap();
            Bytes::from(frame[crate::proto::LENGTH_PREFIX + 1..].to_vec())
        };
        let msg = |from, body: Bytes| {
            let size = body.len();
            Pending::message(Source::Connection(from), body, Instant::now(), size)
        };
        let close = |c| {
            Pending::new(EventKind::ClientClose {
                connection: c,
                server: ServerId(1),
                reason: CloseReason::ClosedByPeer,
            })
        };
        // A large message, which the IO thread decodes itself.
        let large = |from, n: i64| {
            Pending::new(EventKind::Receive {
                from: Source::Connection(from),
                packet: Value::Integer(n),
            })
        };
        // a: good, bad (an unknown value tag), good and large (both dropped);
        // b: good, large; a's close.
        ring.push([
            msg(a, body(1)),
            msg(a, Bytes::from_static(&[0xEE])),
            msg(a, body(2)),
            large(a, 4),
            msg(b, body(3)),
            large(b, 5),
            close(a),
        ]);
        let got = ring.take();
        let summary: Vec<String> = got
            .iter()
            .map(|e| match &e.kind {
                EventKind::Receive { from, packet } => format!("{from:?} {packet:?}"),
                EventKind::Error { object, .. } => format!("error {object:?}"),
                EventKind::ClientClose { connection, .. } => format!("close {connection:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        let expected = [
            format!("{:?} {:?}", Source::Connection(a), Value::Integer(1)),
            format!("error {:?}", ObjectId::Connection(a)),
            format!("{:?} {:?}", Source::Connection(b), Value::Integer(3)),
            format!("{:?} {:?}", Source::Connection(b), Value::Integer(5)),
            format!("close {a:?}"),
        ];
        assert_eq!(summary, expected);
        let failed = failed.lock();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, a.socket_id());
        // Its close ended the dropping: nothing is remembered.
        assert!(ring.failed.lock().is_empty());
    }
}
