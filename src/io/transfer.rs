//! Moving bytes: socket readiness, reads into the session, messages into
//! the ring, and writes from the link's queue.

use std::cmp::Reverse;
use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use super::driver::Driver;
use super::handshake_share::HANDSHAKE_TIMER;
use super::handshake_share::Spent;
use super::link_io::{BATCH_MAX, IO_DECODE_COST, body_bytes};
use super::pressure::SMALL_BUFFER;
use crate::error::{Error, ProtocolError};
use crate::proto::decode_value_costed;
use crate::proto::session::Input;
use crate::shared::{EventKind, Flushed, Pending, Role, Source};

/// Bytes read from one link before the others get a turn.
const READ_BUDGET: usize = 256 * 1024;

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
        let (result, report_drained) = {
            let mut out = link.lock();
            io.session.poll_transmit(&mut out.control);
            let before = out.queue.len();
            let result = out.flush(open);
            // Per link, at the low-water mark: a sender waiting for this
            // link resumes while the rest of its queue is still going out.
            let low = link.low_water();
            let after = out.queue.len();
            if result.is_ok() && before > low && after <= low {
                link.notify_writable(&mut out);
            }
            let drained = result.is_ok() && open && after <= low;
            (result, drained && std::mem::take(&mut out.refused))
        };
        if report_drained {
            let object = super::lifecycle::object_of(&link);
            self.emit(EventKind::Drained { object });
        }
        match result {
            Err(e) => self.abort(t, Error::io("write", &e), true),
            Ok(Flushed::Blocked) => {}
            Ok(Flushed::Empty) => {
                // Closing: everything is out, so our end of stream may follow.
                if let Some(io) = self.links.get_mut(&t) {
                    io.session.flushed();
                    self.on_session_events(t);
                }
            }
        }
    }

    /// Reads what arrived and hands it to the session; a connection in its
    /// handshake only within the share of time handshakes may take
    /// (`Config::handshake_budget`), else it waits for the share to refill.
    pub(super) fn read(&mut self, t: usize, to_end: bool) {
        let handshaking = self
            .links
            .get(&t)
            .is_some_and(|io| io.server.is_some() && io.session.is_handshaking());
        if !handshaking {
            return self.read_now(t, to_end);
        }
        if !self.handshakes.available(Instant::now()) {
            self.handshakes.wait(t);
            self.arm_handshake_timer();
            return;
        }
        let start = Spent::start();
        self.read_now(t, true);
        self.handshakes.spend(start.elapsed());
    }

    fn arm_handshake_timer(&mut self) {
        if !self.handshakes.timer_armed {
            self.handshakes.timer_armed = true;
            let at = self.handshakes.ready_at();
            self.timers.push(Reverse((at, HANDSHAKE_TIMER)));
        }
    }

    /// The handshake share has credit again: read the waiting connections,
    /// oldest first, while it lasts.
    pub(super) fn handshake_budget_refilled(&mut self) {
        self.handshakes.timer_armed = false;
        while let Some(t) = self.handshakes.next_waiting() {
            let waiting = self
                .links
                .get(&t)
                .is_some_and(|io| io.session.is_handshaking());
            if !waiting {
                continue; // gone, or done
            }
            if !self.handshakes.available(Instant::now()) {
                self.handshakes.wait_first(t);
                self.arm_handshake_timer();
                return;
            }
            let start = Spent::start();
            self.read_now(t, true);
            self.handshakes.spend(start.elapsed());
        }
    }

    /// Reads what arrived, up to the budget, and hands it to the session.
    ///
    /// A read that fills less than the buffer emptied the socket, so unless
    /// `to_end` asks to read on until the end of stream, we stop there
    /// instead of paying a syscall to hear "would block": bytes arriving
    /// later raise a new edge-triggered event (as tokio relies on too).
    fn read_now(&mut self, t: usize, to_end: bool) {
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
                if self.reserve_frame(t) || self.evict_stalled_frame(t) {
                    continue;
                }
                // No memory budget for more of this link: wait until the
                // application takes events or other links free memory.
                self.wait_for_budget();
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
                    self.wait_for_budget();
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
