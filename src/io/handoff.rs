//! Spreading a server's connections over the reactors
//! (`Config::io_threads` > 1).
//!
//! A connection is accepted, and its handshake run, on its server's
//! reactor: the listener's limits, the half-open cap and the handshake
//! budget stay in one place, and a stranger that never authenticates never
//! reaches another reactor. Once established, it is handed to the reactors
//! in turn:
//! 1. at the end of the round in which it opened, after the round's events
//!    are in the ring (so its `Connect` comes before anything the next
//!    reactor reports about it), the old reactor deregisters the socket,
//!    sets `Link::shard` and puts the whole `LinkIo` in the new one's inbox;
//! 2. the new one registers it (epoll reports what is already readable or
//!    writable at once), re-arms its timers, and reads and writes it.
//!
//! A command a handle sent to the old reactor just before the move is passed
//! on by it (`Driver::forward`). A reactor that has shut down closes its
//! inbox, and a link that cannot be handed over stays where it is.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;

use super::driver::Driver;
use super::link_io::{LinkIo, token};
use super::pressure::SMALL_BUFFER;
use crate::shared::{Command, Link, State};

/// Links on their way from one reactor to another: an inbox per reactor.
pub(super) struct Handoff {
    inboxes: Box<[Mutex<Inbox>]>,
}

#[derive(Default)]
struct Inbox {
    links: VecDeque<Box<Moved>>,
    /// Its reactor has stopped: it takes no more.
    closed: bool,
}

/// A link in transit, and whether its old reactor had paused reading it.
pub(super) struct Moved {
    io: LinkIo,
    paused: bool,
}

impl Handoff {
    pub(super) fn new(reactors: usize) -> Arc<Handoff> {
        Arc::new(Handoff {
            inboxes: (0..reactors).map(|_| Mutex::default()).collect(),
        })
    }

    /// Puts a link in reactor `shard`'s inbox; gives it back when that
    /// reactor has stopped.
    fn send(&self, shard: usize, moved: Box<Moved>) -> Result<(), Box<Moved>> {
        let Some(inbox) = self.inboxes.get(shard) else {
            return Err(moved);
        };
        let mut inbox = inbox.lock();
        if inbox.closed {
            return Err(moved);
        }
        inbox.links.push_back(moved);
        Ok(())
    }

    /// What waits in reactor `shard`'s inbox; with `close`, it takes no more.
    fn take(&self, shard: usize, close: bool) -> VecDeque<Box<Moved>> {
        let Some(inbox) = self.inboxes.get(shard) else {
            return VecDeque::new();
        };
        let mut inbox = inbox.lock();
        inbox.closed |= close;
        std::mem::take(&mut inbox.links)
    }
}

/// Where the links that left a reactor went, so that commands still sent
/// to it reach them.
#[derive(Default)]
pub(super) struct Forwarding {
    to: super::link_io::TokenMap<(usize, Weak<Link>)>,
    /// Prune entries of closed links when the map grows past this.
    prune_at: usize,
}

impl Forwarding {
    fn note(&mut self, t: usize, shard: usize, link: &Arc<Link>) {
        if self.to.len() >= self.prune_at {
            self.to.retain(|_, (_, link)| {
                link.upgrade()
                    .is_some_and(|l| l.lock().state != State::Closed)
            });
            self.prune_at = (self.to.len() * 2).max(64);
        }
        self.to.insert(t, (shard, Arc::downgrade(link)));
    }

    fn get(&self, t: usize) -> Option<usize> {
        self.to.get(&t).map(|(shard, _)| *shard)
    }
}

impl Driver {
    /// A server's connection just opened: with several reactors, mark it to
    /// be handed to the next one in turn at the end of this round.
    pub(super) fn spread(&mut self, t: usize) {
        if self.net.reactors() > 1 && self.shutdown.is_none() {
            self.to_spread.push(t);
        }
    }

    /// Hands the links marked this round to their new reactors (see the
    /// module's steps).
    pub(super) fn hand_over(&mut self) {
        if self.to_spread.is_empty() {
            return;
        }
        // Their Connect (and anything else of this round) first.
        self.flush_events();
        let mut woken = vec![false; self.net.reactors()];
        for t in std::mem::take(&mut self.to_spread) {
            let target = self.net.pick_reactor();
            let movable = self.links.get(&t).is_some_and(|io| {
                io.session.is_established() && io.link.lock().state == State::Open
            });
            if target == self.shard || !movable || self.shutdown.is_some() {
                continue;
            }
            let Some(io) = self.links.remove(&t) else {
                continue;
            };
            io.deregister(self.poll.registry());
            let paused = self.paused_links.contains(&t);
            self.paused_links.retain(|p| *p != t);
            let large = io.charged.saturating_sub(SMALL_BUFFER);
            let link = io.link.clone();
            link.set_shard(target);
            match self.handoff.send(target, Box::new(Moved { io, paused })) {
                Ok(()) => {
                    self.large_buffers = self.large_buffers.saturating_sub(large);
                    self.forwarding.note(t, target, &link);
                    if let Some(w) = woken.get_mut(target) {
                        *w = true;
                    }
                }
                Err(moved) => {
                    // Its new reactor has stopped: it stays here.
                    link.set_shard(self.shard);
                    self.take_back(moved.io, moved.paused);
                }
            }
        }
        for (shard, woken) in woken.into_iter().enumerate() {
            if woken {
                self.net.command(shard, Command::Adopt);
            }
        }
    }

    /// Takes in the links handed to this reactor (`close`: at shutdown's
    /// end, and no more after them).
    pub(super) fn adopt(&mut self, close: bool) {
        for moved in self.handoff.take(self.shard, close) {
            let Moved { io, paused } = *moved;
            self.large_buffers += io.charged.saturating_sub(SMALL_BUFFER);
            self.take_back(io, paused);
        }
    }

    /// Registers a link with this reactor's poller and drives it from here.
    fn take_back(&mut self, mut io: LinkIo, paused: bool) {
        let t = token(io.link.id);
        io.armed = None;
        if paused {
            // Reading it again checks for room and pauses it here if need
            // be, so a resume meant for the old reactor is not missed.
            io.session.resume_reading(Instant::now());
        }
        self.start(io);
        self.more_to_read.push_back(t);
        if self.shutdown.is_some() {
            self.close_locally(t);
        }
    }

    /// A command for a link this reactor no longer holds: passes it on to
    /// the one it went to. False when it never held it (or knows nothing).
    pub(super) fn forward(&mut self, t: usize, command: impl FnOnce() -> Command) -> bool {
        if self.links.contains_key(&t) {
            return false;
        }
        match self.forwarding.get(t) {
            Some(shard) => {
                self.net.command(shard, command());
                true
            }
            None => false,
        }
    }
}
