//! Listeners: accepting, the connection limit, refusals, and back-off when
//! the process runs out of descriptors.

use std::cmp::Reverse;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};

use super::driver::Driver;
use super::failures::{FailureReports, Verdict};
use super::half_open::HalfOpen;
use super::link_io::{Held, LinkIo, ListenerIo, token};
use crate::error::{Error, ProtocolError};
use crate::proto::secure::{Handshake, Role as SecureRole};
use crate::proto::session::Session;
use crate::shared::{EventKind, Link, ObjectId, Role, ServerShared, State, next_socket_id};

/// Connections accepted from one listener before the others get a turn.
const ACCEPT_BUDGET: usize = 256;
/// Pause before accepting again after the process ran out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

impl Driver {
    pub(super) fn add_listener(&mut self, server: Arc<ServerShared>, mut listener: TcpListener) {
        let t = token(server.id.0);
        if self.shutdown.is_some() {
            return;
        }
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut listener, Token(t), Interest::READABLE)
        {
            self.emit(EventKind::Error {
                object: ObjectId::Server(server.id),
                error: Error::io("register listener", &e),
                peer: None,
            });
            return;
        }
        self.listeners.insert(
            t,
            ListenerIo {
                server,
                listener,
                backoff_until: None,
                handshaking: HalfOpen::default(),
                failures: FailureReports::new(self.net.config.failure_reports_per_second),
            },
        );
        // Connections may already wait in the backlog.
        self.accept(t);
    }

    pub(super) fn accept(&mut self, t: usize) {
        for _ in 0..ACCEPT_BUDGET {
            if !self.has_room(0) {
                self.paused_accept = true;
                return;
            }
            let Some(l) = self.listeners.get_mut(&t) else {
                return;
            };
            if l.backoff_until.is_some_and(|until| Instant::now() < until) {
                return;
            }
            l.backoff_until = None;
            let server = l.server.clone();
            match l.listener.accept() {
                Ok((stream, peer)) => self.add_accepted(server, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_out_of_descriptors(&e) => {
                    // Report once per back-off, and try again later instead
                    // of spinning: the listener stays readable meanwhile.
                    let until = Instant::now() + ACCEPT_BACKOFF;
                    if let Some(l) = self.listeners.get_mut(&t) {
                        l.backoff_until = Some(until);
                    }
                    self.timers.push(Reverse((until, t)));
                    self.emit(EventKind::Error {
                        object: ObjectId::Server(server.id),
                        error: Error::io("accept", &e),
                        peer: None,
                    });
                    return;
                }
                Err(e) => self.emit(EventKind::Error {
                    object: ObjectId::Server(server.id),
                    error: Error::io("accept", &e),
                    peer: None,
                }),
            }
        }
        // Budget used up: more may wait; poll again soon via the reads list.
        self.more_to_read.push_back(t);
    }

    fn add_accepted(&mut self, server: Arc<ServerShared>, stream: TcpStream, peer: SocketAddr) {
        let config = &self.net.config;
        let listener = token(server.id.0);
        if let Some(filter) = &config.accept_filter
            && !filter.accepts(peer)
        {
            // Closed before any byte is read or written.
            drop(stream);
            let object = ObjectId::Server(server.id);
            self.report_failure(listener, object, Error::Filtered { peer }, Some(peer));
            return;
        }
        let admitted = server.admission.lock().admit(
            peer,
            config.max_connections,
            config.max_connections_per_address,
        );
        if let Err(error) = admitted {
            self.refuse(server, stream, peer, error);
            return;
        }
        let id = next_socket_id();
        let now = Instant::now();
        let handshake = server
            .keying
            .as_deref()
            .map(|keying| Handshake::server(&keying.key, keying.suite));
        let link = Arc::new(
            Link::new(
                id,
                Role::Accepted(server.id),
                peer,
                server.keying.clone(),
                self.net.clone(),
            )
            .on_shard(self.shard),
        );
        // On Linux the accepted socket inherited the listener's options.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        self.configure(&stream);
        let stream = Arc::new(stream);
        {
            let mut out = link.lock();
            out.stream = Some(stream.clone());
            out.peer_port = Some(peer.port());
        }
        let session = Session::new(SecureRole::Server, &self.session_config, handshake, now);
        let t = token(id);
        self.make_handshake_room(token(server.id.0));
        if let Some(l) = self.listeners.get_mut(&token(server.id.0)) {
            l.handshaking.push(t, peer.ip());
        }
        self.start(LinkIo {
            link,
            stream,
            server: Some(server),
            session,
            connecting: false,
            attempt: 0,
            counted: true,
            armed: None,
            held: Held::default(),
            charged: 0,
            reserved: 0,
        });
    }

    /// Keeps a server's connections still in their handshake under
    /// `Config::max_handshaking` before another joins them: when they are
    /// that many, the oldest of an address holding more than an eighth of
    /// them is closed, else the oldest (see `HalfOpen`). Peers that connect and say nothing
    /// (or never finish the handshake) then cannot hold the server's slots,
    /// and an honest peer always gets in.
    fn make_handshake_room(&mut self, listener: usize) {
        let limit = self.net.config.max_handshaking;
        let links = &self.links;
        let Some(l) = self.listeners.get_mut(&listener) else {
            return;
        };
        if l.handshaking.len() < limit {
            return;
        }
        l.handshaking
            .prune(|t| links.get(&t).is_some_and(|io| io.session.is_handshaking()));
        let mut evict = Vec::new();
        while l.handshaking.len() >= limit {
            match l.handshaking.evict(limit) {
                Some(t) => evict.push(t),
                None => break,
            }
        }
        for t in evict {
            self.abort(t, ProtocolError::HandshakeEvicted { limit }.into(), true);
        }
    }

    /// Refuses a connection over one of the server's limits (`error` says
    /// which): a refusal preamble with the reason, then a graceful close (so
    /// the client reads why, instead of a reset), within a short linger.
    fn refuse(
        &mut self,
        server: Arc<ServerShared>,
        stream: TcpStream,
        peer: SocketAddr,
        error: Error,
    ) {
        let reason = match &error {
            Error::AddressLimit { limit, .. } => {
                format!("too many connections from your address ({limit})")
            }
            Error::ConnectionLimit { limit, .. } => format!("server full ({limit} connections)"),
            _ => "refused".to_owned(),
        };
        let object = ObjectId::Server(server.id);
        self.report_failure(token(server.id.0), object, error, Some(peer));
        let link = Arc::new(
            Link::new(
                next_socket_id(),
                Role::Accepted(server.id),
                peer,
                None,
                self.net.clone(),
            )
            .on_shard(self.shard),
        );
        let stream = Arc::new(stream);
        {
            let mut out = link.lock();
            out.state = State::Closing;
            out.stream = Some(stream.clone());
        }
        let session = Session::refusal(&self.session_config, &reason, Instant::now());
        self.start(LinkIo {
            link,
            stream,
            server: None,
            session,
            connecting: false,
            attempt: 0,
            counted: false,
            armed: None,
            held: Held::default(),
            charged: 0,
            reserved: 0,
        });
    }

    /// Stops a server: its listener, then each of its connections.
    pub(super) fn close_server(&mut self, t: usize) {
        if let Some(mut l) = self.listeners.remove(&t) {
            let _ = self.poll.registry().deregister(&mut l.listener);
        }
        let ts: Vec<usize> = self
            .links
            .iter()
            .filter(|(_, io)| io.server.as_ref().is_some_and(|s| token(s.id.0) == t))
            .map(|(t, _)| *t)
            .collect();
        for t in ts {
            self.close_locally(t);
        }
    }
}

impl Driver {
    /// A connection to server `listener` failed before it authenticated:
    /// reported as an `Error` event about `object` while the server's rate
    /// allows, else counted into its next summary. These events wait in the
    /// ring's queue for such events, never taking room from established
    /// connections; one that finds that queue full is counted too.
    pub(super) fn report_failure(
        &mut self,
        listener: usize,
        object: ObjectId,
        error: Error,
        peer: Option<SocketAddr>,
    ) {
        let now = Instant::now();
        let Some(l) = self.listeners.get_mut(&listener) else {
            return; // the server is gone: nobody to tell
        };
        let verdict = match l.failures.note(now, &error, peer) {
            Verdict::Report => {
                // Behind what was seen before it.
                self.flush_events();
                let kind = EventKind::Error {
                    object,
                    error,
                    peer,
                };
                match self.net.ring.push_minor(now, kind) {
                    Ok(()) => return,
                    Err(EventKind::Error { error, peer, .. }) => {
                        let Some(l) = self.listeners.get_mut(&listener) else {
                            return;
                        };
                        l.failures.count(1, error, peer, now)
                    }
                    Err(_) => return,
                }
            }
            counted => counted,
        };
        if let Verdict::Counted(Some(due)) = verdict {
            self.timers.push(Reverse((due, listener)));
        }
    }

    /// Emits a server's summary of unreported failures, once due.
    pub(super) fn report_summary(&mut self, listener: usize) {
        let now = Instant::now();
        let Some(l) = self.listeners.get_mut(&listener) else {
            return;
        };
        let Some(summary) = l.failures.summary(now) else {
            return;
        };
        let object = ObjectId::Server(l.server.id);
        self.flush_events();
        let kind = EventKind::Error {
            object,
            error: summary,
            peer: None,
        };
        if let Err(EventKind::Error { error, .. }) = self.net.ring.push_minor(now, kind)
            && let Some(l) = self.listeners.get_mut(&listener)
        {
            // No room: its count goes into the next one.
            let count = match &error {
                Error::UnauthenticatedFailures { count, .. } => *count,
                _ => 1,
            };
            if let Verdict::Counted(Some(due)) = l.failures.count(count, error, None, now) {
                self.timers.push(Reverse((due, listener)));
            }
        }
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    // EMFILE (24): process limit; ENFILE (23): system limit.
    matches!(e.raw_os_error(), Some(23 | 24))
}
