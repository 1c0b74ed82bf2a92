//! The reactor loop: commands, socket readiness, timers, and the batch of
//! events handed to the ring each round.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::{Events, Poll, Token};

use super::WAKER;
use super::handoff::{Forwarding, Handoff};
use super::handshake_share::{HANDSHAKE_TIMER, HandshakeShare};
use super::link_io::{LinkIo, ListenerIo, TokenMap, token};
use crate::error::Error;
use crate::proto::session::SessionConfig;
use crate::shared::{CloseReason, Command, EventKind, NetShared, OverflowPolicy, Pending, Reactor};

pub(super) struct Driver {
    pub(super) poll: Poll,
    events: Option<Events>,
    pub(super) net: Arc<NetShared>,
    /// Which of the network's reactors this is (`Config::io_threads`).
    pub(super) shard: usize,
    /// Every session's limits and timers, from the network's config.
    pub(super) session_config: SessionConfig,
    pub(super) listeners: TokenMap<ListenerIo>,
    pub(super) links: TokenMap<LinkIo>,
    /// Session deadlines and accept back-offs, by token. Entries whose
    /// deadline moved are skipped when they fire (see `LinkIo::armed`).
    pub(super) timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Events produced and not yet pushed to the ring.
    pub(super) pending: Vec<Pending>,
    /// Links and listeners whose read or accept budget ran out while more
    /// remained.
    pub(super) more_to_read: VecDeque<usize>,
    /// Lossless policy: links and listeners paused while the ring is full.
    pub(super) paused_links: Vec<usize>,
    pub(super) paused_accept: bool,
    /// Lossless policy: events and packet bytes the ring can still take
    /// before we must ask it again.
    pub(super) room: usize,
    pub(super) room_bytes: usize,
    pub(super) shutdown: Option<Instant>,
    /// Received message bodies, copied back to back (see `body_bytes`).
    pub(super) batch: BytesMut,
    /// Packet bytes in `pending`: charged to the budget once in the ring.
    pub(super) pending_bytes: usize,
    /// Receive-buffer memory beyond 64 KiB per link, summed over links
    /// (at most half the budget).
    pub(super) large_buffers: usize,
    /// A link is paused for want of memory budget.
    pub(super) budget_waiting: bool,
    /// Memory was freed while a link waited for it: resume after this round.
    pub(super) resume_soon: bool,
    /// When links were last scanned for a stalled frame to close.
    pub(super) eviction_scan: Option<Instant>,
    /// Per-connection share of the ring: events and packet bytes.
    pub(super) quota: (usize, usize),
    /// The share of time handshakes may take, and those waiting for it.
    pub(super) handshakes: HandshakeShare,
    /// Connections moving between reactors, and those opened this round to
    /// be handed on, and where those that left went (`handoff`).
    pub(super) handoff: Arc<Handoff>,
    pub(super) to_spread: Vec<usize>,
    pub(super) forwarding: Forwarding,
}

impl Reactor for Driver {
    fn turn(&mut self, max_wait: Option<Duration>) -> bool {
        Driver::turn(self, max_wait)
    }
}

impl Driver {
    pub(super) fn new(
        poll: Poll,
        net: Arc<NetShared>,
        shard: usize,
        handoff: Arc<Handoff>,
    ) -> Driver {
        let config = &net.config;
        let session_config = SessionConfig::new(config.limits)
            .with_handshake_timeout(config.handshake_timeout)
            .with_linger(config.linger)
            .with_heartbeat(config.heartbeat)
            .with_idle_timeout(config.idle_timeout)
            .with_frame_timeout(config.frame_timeout);
        // The byte share is the same fraction of the ring as the event share.
        let share = config.connection_events;
        let quota_bytes = (config.event_bytes as u128 * share as u128
            / config.event_capacity.max(1) as u128)
            .min(usize::MAX as u128) as usize;
        let quota = (share, quota_bytes);
        let handshakes = HandshakeShare::new(config.handshake_budget, Instant::now());
        Driver {
            poll,
            events: Some(Events::with_capacity(1024)),
            net,
            shard,
            session_config,
            listeners: TokenMap::default(),
            links: TokenMap::default(),
            timers: BinaryHeap::new(),
            pending: Vec::new(),
            more_to_read: VecDeque::new(),
            paused_links: Vec::new(),
            paused_accept: false,
            room: 0,
            room_bytes: 0,
            shutdown: None,
            batch: BytesMut::new(),
            pending_bytes: 0,
            large_buffers: 0,
            budget_waiting: false,
            eviction_scan: None,
            resume_soon: false,
            quota,
            handshakes,
            handoff,
            to_spread: Vec::new(),
            forwarding: Forwarding::default(),
        }
    }

    /// Drives everything until the network has shut down.
    pub(super) fn run(mut self) {
        while self.turn(None) {}
    }

    /// One round: commands, then a poll that waits for the next socket
    /// event, timer or command (at most `max_wait` when given), then what it
    /// reported. The events produced are in the ring when it returns. False
    /// once the network has shut down (nothing is left to drive).
    pub(super) fn turn(&mut self, max_wait: Option<Duration>) -> bool {
        self.handle_commands();
        self.flush_events();
        if let Some(deadline) = self.shutdown
            && (self.links.is_empty() || Instant::now() >= deadline)
        {
            self.finish_shutdown(CloseReason::ClosedLocally);
            return false;
        }
        let timeout = match (self.next_timeout(), max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(1024));
        if let Err(e) = self.poll.poll(&mut events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            // The poller itself failed: nothing can be driven any more.
            self.finish_shutdown(CloseReason::Error(Error::io("poll", &e)));
            return false;
        }
        for event in events.iter() {
            match event.token() {
                WAKER => {}
                Token(t) if self.listeners.contains_key(&t) => self.accept(t),
                Token(t) => {
                    let readable =
                        event.is_readable() || event.is_read_closed() || event.is_error();
                    let writable = event.is_writable() || event.is_error();
                    let closed = event.is_read_closed() || event.is_error();
                    self.on_link_event(t, readable, writable, closed);
                }
            }
        }
        self.events = Some(events);
        self.continue_reads();
        self.fire_timers();
        if std::mem::take(&mut self.resume_soon) {
            self.resume();
        }
        self.hand_over();
        self.flush_events();
        true
    }

    fn next_timeout(&self) -> Option<Duration> {
        if !self.more_to_read.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut next = self.timers.peek().map(|Reverse((t, _))| *t);
        if let Some(deadline) = self.shutdown {
            next = Some(next.map_or(deadline, |t| t.min(deadline)));
        }
        next.map(|t| t.saturating_duration_since(Instant::now()))
    }

    pub(super) fn emit(&mut self, kind: EventKind) {
        self.pending.push(Pending::new(kind));
    }

    pub(super) fn flush_events(&mut self) {
        if !self.pending.is_empty() {
            self.net.ring.push(self.pending.drain(..));
            self.pending_bytes = 0;
        }
    }

    // ------------------------------------------------------------ commands

    fn handle_commands(&mut self) {
        for command in self.net.take_commands(self.shard) {
            match command {
                Command::Listen(server, listener) => self.add_listener(server, listener),
                Command::Connect(link) => self.connect(link),
                Command::Flush(id) => {
                    if !self.forward(token(id), || Command::Flush(id)) {
                        self.flush(token(id));
                    }
                }
                Command::FlushMany(ids) => {
                    for id in ids {
                        if !self.forward(token(id), || Command::Flush(id)) {
                            self.flush(token(id));
                        }
                    }
                }
                Command::Close(id) => {
                    if !self.forward(token(id), || Command::Close(id)) {
                        self.close_locally(token(id));
                    }
                }
                Command::CloseServer(id) => self.close_server(token(id.0)),
                Command::Resume => self.resume(),
                Command::Fail(id, error) => self.abort(token(id), error, false),
                Command::Shutdown(deadline) => self.begin_shutdown(deadline),
                Command::Adopt => self.adopt(false),
            }
        }
    }

    fn resume(&mut self) {
        self.room = 0;
        self.budget_waiting = false;
        let now = Instant::now();
        for t in std::mem::take(&mut self.paused_links) {
            if let Some(io) = self.links.get_mut(&t) {
                io.session.resume_reading(now);
                // Its timers may have moved: arm for the new deadline.
                self.arm(t);
            }
            self.more_to_read.push_back(t);
        }
        if std::mem::take(&mut self.paused_accept) {
            let ts: Vec<usize> = self.listeners.keys().copied().collect();
            for t in ts {
                self.accept(t);
            }
        }
    }

    /// Lossless policy: true when one more event holding `bytes` of packet
    /// fits in the ring. Always true under Overwrite.
    pub(super) fn has_room(&mut self, bytes: usize) -> bool {
        if self.net.ring.policy() == OverflowPolicy::Overwrite {
            return true;
        }
        if self.room > 0 && self.room_bytes >= bytes {
            return true;
        }
        // Hand over what we produced, then ask the ring how much fits.
        self.flush_events();
        (self.room, self.room_bytes) = self.net.ring.room_or_pause(bytes);
        self.room > 0 && self.room_bytes >= bytes
    }

    fn continue_reads(&mut self) {
        let n = self.more_to_read.len();
        for _ in 0..n {
            let Some(t) = self.more_to_read.pop_front() else {
                break;
            };
            if self.listeners.contains_key(&t) {
                self.accept(t);
            } else {
                // Whether an end of stream was announced is not remembered
                // here: read until the socket says it is empty.
                self.read(t, true);
            }
        }
    }

    // ------------------------------------------------------------ time

    /// Arms a timer for the session's deadline, unless one is armed for it.
    pub(super) fn arm(&mut self, t: usize) {
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
        let deadline = io.session.poll_timeout();
        if deadline != io.armed {
            io.armed = deadline;
            if let Some(deadline) = deadline {
                self.timers.push(Reverse((deadline, t)));
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((when, t))) = self.timers.peek().copied() {
            if when > now {
                break;
            }
            self.timers.pop();
            if t == HANDSHAKE_TIMER {
                self.handshake_budget_refilled();
                continue;
            }
            if self.listeners.contains_key(&t) {
                // A failure summary due, or a back-off over.
                self.report_summary(t);
                self.accept(t);
                continue;
            }
            let Some(io) = self.links.get_mut(&t) else {
                continue;
            };
            if io.armed != Some(when) {
                continue; // superseded
            }
            io.armed = None;
            io.session.handle_timeout(now);
            self.on_session_events(t);
        }
    }

    // ------------------------------------------------------------ shutdown

    fn begin_shutdown(&mut self, deadline: Instant) {
        self.shutdown = Some(deadline);
        let servers: Vec<usize> = self.listeners.keys().copied().collect();
        for t in servers {
            self.close_server(t);
        }
        let links: Vec<usize> = self.links.keys().copied().collect();
        for t in links {
            self.close_locally(t);
        }
    }

    fn finish_shutdown(&mut self, reason: CloseReason) {
        // Links handed over meanwhile end here too; no more come.
        self.adopt(true);
        let links: Vec<usize> = self.links.keys().copied().collect();
        for t in links {
            self.finish(t, reason.clone());
        }
        self.listeners.clear();
        // Clients created but never started (their Connect command arrived
        // after shutdown began) are failed by handle_commands.
        self.handle_commands();
        self.flush_events();
        self.net.ring.wake_waiters();
    }
}
