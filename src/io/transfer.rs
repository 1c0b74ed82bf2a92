//! Moving bytes: socket readiness, reads into the session, messages into
//! the ring, and writes from the link's queue.

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::driver::Driver;
use bytes::Bytes;

use super::link_io::{BATCH_MAX, Held, IO_DECODE_COST, body_bytes};
use crate::error::{Error, ProtocolError};
use crate::proto::decode_value_costed;
use crate::proto::session::Input;
use crate::shared::{EventKind, Flushed, Pending, Role, Source};

/// Bytes read from one link before the others get a turn.
const READ_BUDGET: usize = 256 * 1024;

/// Receive-buffer memory a link may hold without counting as a large
/// partial frame: together, the larger ones hold at most half the budget.
const SMALL_BUFFER: usize = 64 * 1024;

impl Driver {
    /// `closed`: the peer's end of stream (or an error) was announced, so
    /// reads must go on until they say so.
    pub(super) fn on_link_event(&mut self, t: usize, readable: bool, writable: bool, closed: bool) {
        let Some(io) = self.links.get(&t) else {
            return;
        };
        if io.connecting {
            if writable || readable {
                self.finish_connect(t);
                // Edge-triggered: the server's preamble may have come with
                // the same notification, and no new edge will announce it.
                if self.links.get(&t).is_some_and(|io| !io.connecting) {
                    self.read(t, true);
                }
            }
            return;
        }
        if writable {
            self.flush(t);
        }
        if readable {
            self.read(t, closed);
        }
    }

    /// Writes what the link has to send: the session's own bytes, then (once
    /// the session allows) the queue. Tells the session when all is written.
    pub(super) fn flush(&mut self, t: usize) {
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
        let link = io.link.clone();
        let open = io.session.can_send();
        let result = {
            let mut out = link.lock();
            io.session.poll_transmit(&mut out.control);
            let result = out.flush(open);
            let drained = matches!(result, Ok(Flushed::Empty)) && open && out.queue.is_empty();
            (result, drained && std::mem::take(&mut out.refused))
        };
        match result {
            (Err(e), _) => self.abort(t, Error::io("write", &e), true),
            (Ok(Flushed::Blocked), _) => {}
            (Ok(Flushed::Empty), report_drained) => {
                if report_drained {
                    let object = super::lifecycle::object_of(&link);
                    self.emit(EventKind::Drained { object });
                }
                // Closing: everything is out, so our end of stream may follow.
                if let Some(io) = self.links.get_mut(&t) {
                    io.session.flushed();
                    self.on_session_events(t);
                }
            }
        }
    }

    /// Reads what arrived, up to the budget, and hands it to the session.
    ///
    /// A read that fills less than the buffer emptied the socket, so unless
    /// `to_end` asks to read on until the end of stream, we stop there
    /// instead of paying a syscall to hear "would block": bytes arriving
    /// later raise a new edge-triggered event (as tokio relies on too).
    pub(super) fn read(&mut self, t: usize, to_end: bool) {
        // Frames left unhandled by a lossless pause come first: the socket
        // may have nothing new to say.
        if self
            .links
            .get(&t)
            .is_some_and(|io| io.session.buffered() > 0)
            && !self.process(t)
        {
            return;
        }
        let mut total = 0;
        loop {
            let allowance = self.growth_allowance(t);
            let Some(io) = self.links.get_mut(&t) else {
                return;
            };
            let stream = io.stream.clone();
            let Some(buf) = io.session.read_buffer_within(allowance) else {
                if self.reserve_frame(t) {
                    continue;
                }
                // No memory budget for more of this link: wait until the
                // application takes events or other links free memory.
                self.budget_waiting = true;
                self.net.ring.resume_at_next_take();
                self.pause_link(t);
                return;
            };
            let offered = buf.len();
            let result = (&*stream).read(buf);
            self.settle(t);
            let Some(io) = self.links.get_mut(&t) else {
                return;
            };
            match result {
                Ok(0) => {
                    io.session.end_of_stream();
                    self.process(t);
                    return;
                }
                Ok(n) => {
                    io.session.filled(n);
                    total += n;
                    if !self.process(t) {
                        return; // paused or closed
                    }
                    self.end_reservation(t);
                    if n < offered && !to_end {
                        self.release_idle_memory(t);
                        return;
                    }
                    if total >= READ_BUDGET {
                        self.more_to_read.push_back(t);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.release_idle_memory(t);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.abort(t, Error::io("read", &e), true);
                    return;
                }
            }
        }
    }

    /// How much the link's receive buffer may grow now: within its first
    /// 64 KiB, what the budget has free; beyond, what was reserved for the
    /// large frame now arriving (see [`reserve_frame`](Self::reserve_frame)).
    fn growth_allowance(&self, t: usize) -> usize {
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
    fn reserve_frame(&mut self, t: usize) -> bool {
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
    fn end_reservation(&mut self, t: usize) {
        if let Some(io) = self.links.get_mut(&t)
            && io.reserved > 0
            && io.session.buffered() <= SMALL_BUFFER
        {
            io.reserved = 0;
        }
        self.settle(t);
    }

    /// Frees an empty receive buffer (an idle link holds none).
    fn release_idle_memory(&mut self, t: usize) {
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
    fn within_quota(&mut self, t: usize, size: usize) -> bool {
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

    /// Lets the session handle what is buffered, putting messages into the
    /// ring. False when the link closed or was paused (stop reading it).
    fn process(&mut self, t: usize) -> bool {
        // One clock read per batch of bytes: the frames in it were all seen
        // now (stamps their events and the heartbeat's last sign of life).
        let seen = Instant::now();
        let limits = self.net.config.limits;
        // Per batch, not per frame: the link handle and who messages are from.
        let Some(link) = self.links.get(&t).map(|io| io.link.clone()) else {
            return false;
        };
        let from = match link.role {
            Role::Accepted(_) => Source::Connection(link.connection_id()),
            Role::Client(id) => Source::Client(id),
        };
        let mut received = false;
        loop {
            let Some(io) = self.links.get(&t) else {
                return false;
            };
            // Check for room before taking the frame out, so a paused link
            // keeps it buffered.
            let size = io.session.next_frame_len();
            if size > 0 {
                if !self.has_room(size) || !self.within_quota(t, size) {
                    self.pause_link(t);
                    return false;
                }
                if self.net.budget.free().saturating_sub(self.pending_bytes) < size {
                    self.budget_waiting = true;
                    self.net.ring.resume_at_next_take();
                    self.pause_link(t);
                    return false;
                }
            }
            let Some(io) = self.links.get_mut(&t) else {
                return false;
            };
            let pending = match io.session.poll_input(seen) {
                Input::Empty => return self.on_session_events(t),
                Input::Handled => {
                    if !self.on_session_events(t) {
                        return false;
                    }
                    continue;
                }
                Input::Message(body) => {
                    let size = body.len();
                    io.held.events += 1;
                    io.held.bytes += size;
                    if size <= BATCH_MAX {
                        Pending::message(from, body_bytes(body, &mut self.batch), seen, size)
                    } else {
                        match decode_value_costed(body, &limits, IO_DECODE_COST) {
                            Ok((packet, cost)) => {
                                let mut p = Pending::at(EventKind::Receive { from, packet }, seen);
                                p.bytes = size.max(cost);
                                p
                            }
                            // Dense: the application's thread decodes it,
                            // within the budget. Its buffer goes with it
                            // when large (no copy); the link gets a new one.
                            Err(Error::Protocol(ProtocolError::DecodedTooLarge { .. })) => {
                                let bytes = if size >= SMALL_BUFFER {
                                    io.session.take_message().unwrap_or_default()
                                } else {
                                    Bytes::copy_from_slice(body)
                                };
                                Pending::message(from, bytes, seen, size)
                            }
                            Err(e) => {
                                self.abort(t, e, true);
                                return false;
                            }
                        }
                    }
                }
            };
            if !received {
                // Once per batch, before any of its events can reach the
                // ring: a reply to them may write directly (see `Link::idle`).
                received = true;
                link.received.store(true, Ordering::Relaxed);
            }
            self.room = self.room.saturating_sub(1);
            self.room_bytes = self.room_bytes.saturating_sub(pending.bytes);
            self.pending_bytes += pending.bytes;
            self.pending.push(pending);
        }
    }
}
