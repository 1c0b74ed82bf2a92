//! Starting links: a client's TCP connect, socket options, registration.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use mio::net::TcpStream;
use socket2::{SockRef, TcpKeepalive};

use super::driver::Driver;
use super::link_io::{Held, LinkIo, token};
use crate::error::Error;
use crate::proto::secure::{Handshake, Role as SecureRole};
use crate::proto::session::Session;
use crate::shared::{ClientId, ConnectStatus, EventKind, Link, ObjectId, State};

impl Driver {
    /// Starts a client link: the TCP connect, then (once it completes) the
    /// session's preamble.
    pub(super) fn connect(&mut self, link: Arc<Link>) {
        if self.shutdown.is_some() {
            self.fail_unstarted(&link, Error::Shutdown);
            return;
        }
        let abandoned = {
            let out = link.lock();
            out.state != State::Starting && out.queue.is_empty()
        };
        if abandoned {
            // Disconnected before the IO thread got to it, with nothing to send.
            self.fail_unstarted(&link, Error::Closed);
            return;
        }
        let handshake = match link.keying.as_deref() {
            None => None,
            Some(keying) => match self.net.client_static() {
                Ok(client_static) => {
                    Some(Handshake::client(&keying.key, keying.suite, client_static))
                }
                Err(e) => {
                    self.fail_unstarted(&link, e.into());
                    return;
                }
            },
        };
        let (stream, attempt) = match self.connect_from(&link, 0) {
            Ok(started) => started,
            Err(e) => {
                self.fail_unstarted(&link, e);
                return;
            }
        };
        let stream = Arc::new(stream);
        link.lock().stream = Some(stream.clone());
        let session = Session::new(
            SecureRole::Client,
            &self.session_config,
            handshake,
            Instant::now(),
        );
        let t = token(link.id);
        self.start(LinkIo {
            link,
            stream,
            server: None,
            session,
            connecting: true,
            attempt,
            counted: false,
            armed: None,
            held: Held::default(),
            charged: 0,
            reserved: 0,
        });
        // The TCP handshake often completes within connect (over loopback it
        // always does): send the preamble now, not after a poll round for
        // the writable edge. If still connecting, this changes nothing.
        self.finish_connect(t);
    }

    /// Starts a TCP connect to the first of the link's addresses, from the
    /// `first`-th on, that does not fail at once.
    fn connect_from(&self, link: &Link, first: usize) -> Result<(TcpStream, usize), Error> {
        let mut failure = Error::Closed;
        let mut i = first;
        while let Some(addr) = link.candidate(i) {
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    self.configure(&stream);
                    return Ok((stream, i));
                }
                Err(e) => failure = Error::io("connect", &e),
            }
            i += 1;
        }
        Err(failure)
    }

    /// A client's connect failed: tries its next address. False when none
    /// is left (or none could be started).
    fn connect_next(&mut self, t: usize) -> bool {
        let Some(io) = self.links.get(&t) else {
            return false;
        };
        let (link, next) = (io.link.clone(), io.attempt + 1);
        if link.candidate(next).is_none() {
            return false;
        }
        io.deregister(self.poll.registry());
        let Ok((stream, attempt)) = self.connect_from(&link, next) else {
            return false;
        };
        let stream = Arc::new(stream);
        link.lock().stream = Some(stream.clone());
        let Some(io) = self.links.get_mut(&t) else {
            return false;
        };
        io.stream = stream;
        io.attempt = attempt;
        if let Err(e) = io.register(self.poll.registry()) {
            self.abort(t, Error::io("register", &e), true);
            return true;
        }
        // Over loopback the connect may already have finished.
        self.finish_connect(t);
        true
    }

    /// A client link that never got a socket: report and mark it failed.
    fn fail_unstarted(&mut self, link: &Link, error: Error) {
        let client = ClientId(link.id);
        {
            let mut out = link.lock();
            out.state = State::Closed;
            link.notify_writable(&mut out);
            out.connect = ConnectStatus::Failed(error.clone());
            link.connect_changed.notify_all();
        }
        // Closed: the application dropped or disconnected it; no error to report.
        if error != Error::Closed {
            self.emit(EventKind::Error {
                object: ObjectId::Client(client),
                error: error.clone(),
                peer: Some(link.peer),
            });
        }
        self.emit(EventKind::Connected {
            client,
            result: Err(error),
        });
    }

    /// The TCP connect finished (or failed) for a client link.
    pub(super) fn finish_connect(&mut self, t: usize) {
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
        if !io.connecting {
            return;
        }
        let failure = match io.stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match io.stream.peer_addr() {
                Ok(_) => None,
                // Not connected yet: a spurious wake-up.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Some(e),
            },
        };
        if let Some(e) = failure {
            if !self.connect_next(t) {
                self.abort(t, Error::io("connect", &e), true);
            }
            return;
        }
        io.connecting = false;
        io.session.connected(Instant::now());
        self.flush(t);
    }

    /// Sets the per-connection socket options. Failures only cost performance.
    pub(super) fn configure(&self, stream: &TcpStream) {
        let config = &self.net.config;
        if config.nodelay {
            // Off is the default: no call needed.
            let _ = stream.set_nodelay(true);
        }
        if let Some(idle) = config.keepalive {
            let _ = SockRef::from(stream).set_tcp_keepalive(&TcpKeepalive::new().with_time(idle));
        }
    }

    /// Registers a new link, arms its handshake timer and writes what its
    /// session has to say (both sides send their preamble at once).
    pub(super) fn start(&mut self, io: LinkIo) {
        let t = token(io.link.id);
        let registered = io.register(self.poll.registry());
        self.links.insert(t, io);
        if let Err(e) = registered {
            self.abort(t, Error::io("register", &e), true);
            return;
        }
        self.arm(t);
        self.flush(t);
    }
}
