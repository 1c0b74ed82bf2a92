//! The reactor loop: accept, connect, read, flush, close, time out.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use socket2::{SockRef, TcpKeepalive};

use super::WAKER;
use super::link_io::{Incoming, LinkIo, Phase, TokenMap, token};
use crate::error::{Error, ProtocolError};
use crate::net::OverflowPolicy;
use crate::net::link::{ConnectStatus, Flushed, Link, OutFrame, Role, State};
use crate::net::ring::Pending;
use crate::net::server::ServerShared;
use crate::net::shared::{Command, Keying, NetShared};
use crate::net::{ClientId, CloseReason, Connection, EventKind, ObjectId, Source};
use crate::proto::secure::{CONFIRM_FRAME_LEN, Handshake, Role as SecureRole, Sealer, TAG_LEN};
use crate::proto::{FrameDecoder, FrameKind, Preamble, control_frame};

/// Bytes read from one link before the others get a turn.
const READ_BUDGET: usize = 256 * 1024;
/// Connections accepted from one listener before the others get a turn.
const ACCEPT_BUDGET: usize = 256;
/// Pause before accepting again after the process ran out of descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

struct ListenerIo {
    server: Arc<ServerShared>,
    listener: TcpListener,
    /// Accepting paused (out of descriptors) until then.
    backoff_until: Option<Instant>,
    /// Accepted connections still alive (handshaking or open).
    active: usize,
}

pub(crate) struct Driver {
    poll: Poll,
    net: Arc<NetShared>,
    listeners: TokenMap<ListenerIo>,
    links: TokenMap<LinkIo>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Events produced and not yet pushed to the ring.
    pending: Vec<Pending>,
    /// Links whose read budget ran out while data remained.
    more_to_read: VecDeque<usize>,
    /// Lossless policy: links and listeners paused while the ring is full.
    paused_links: Vec<usize>,
    paused_accept: bool,
    /// Lossless policy: events and packet bytes the ring can still take
    /// before we must ask it again.
    room: usize,
    room_bytes: usize,
    shutdown: Option<Instant>,
    preamble: Vec<u8>,
    /// Received message bodies, copied back to back (see `Incoming::Raw`).
    batch: BytesMut,
}

impl Driver {
    pub(crate) fn new(poll: Poll, net: Arc<NetShared>) -> Driver {
        let mut preamble = Vec::new();
        // A plain preamble has no extension; encoding it cannot fail.
        let _ = Preamble::plain().encode(&mut preamble);
        Driver {
            poll,
            net,
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
            preamble,
            batch: BytesMut::new(),
        }
    }

    /// Drives everything until the network has shut down.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        while self.turn(&mut events, None) {}
    }

    /// One round: commands, then a poll that waits for the next socket
    /// event, timer or command (at most `max_wait` when given), then what it
    /// reported. The events produced are in the ring when it returns. False
    /// once the network has shut down (nothing is left to drive).
    pub(crate) fn turn(&mut self, events: &mut Events, max_wait: Option<Duration>) -> bool {
        self.handle_commands();
        self.flush_events();
        if let Some(deadline) = self.shutdown
            && (self.links.is_empty() || Instant::now() >= deadline)
        {
            self.finish_shutdown();
            return false;
        }
        let timeout = match (self.next_timeout(), max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Err(e) = self.poll.poll(events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            // The poller itself failed: nothing can be driven any more.
            self.finish_shutdown_with(CloseReason::Error(Error::io("poll", &e)));
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
        self.continue_reads();
        self.fire_timers();
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

    fn emit(&mut self, kind: EventKind) {
        self.pending.push(Pending::new(kind));
    }

    fn flush_events(&mut self) {
        if !self.pending.is_empty() {
            self.net.ring.push(self.pending.drain(..));
        }
    }

    // ------------------------------------------------------------ commands

    fn handle_commands(&mut self) {
        for command in self.net.take_commands() {
            match command {
                Command::Listen(server, listener) => self.add_listener(server, listener),
                Command::Connect(link) => self.connect(link),
                Command::Flush(id) => self.flush(token(id)),
                Command::Close(id) => self.close_locally(token(id)),
                Command::CloseServer(id) => self.close_server(token(id.0)),
                Command::Resume => self.resume(),
                Command::Fail(id, error) => self.finish(token(id), CloseReason::Error(error)),
                Command::Shutdown(deadline) => self.begin_shutdown(deadline),
            }
        }
    }

    fn add_listener(&mut self, server: Arc<ServerShared>, mut listener: TcpListener) {
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
            });
            return;
        }
        self.listeners.insert(
            t,
            ListenerIo {
                server,
                listener,
                backoff_until: None,
                active: 0,
            },
        );
        // Connections may already wait in the backlog.
        self.accept(t);
    }

    fn resume(&mut self) {
        self.room = 0;
        for t in std::mem::take(&mut self.paused_links) {
            self.more_to_read.push_back(t);
        }
        if std::mem::take(&mut self.paused_accept) {
            let ts: Vec<usize> = self.listeners.keys().copied().collect();
            for t in ts {
                self.accept(t);
            }
        }
    }

    // ------------------------------------------------------------ lossless room

    /// Lossless policy: true when one more event holding `bytes` of packet
    /// fits in the ring. Always true under Overwrite.
    fn has_room(&mut self, bytes: usize) -> bool {
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

    // ------------------------------------------------------------ accepting

    fn accept(&mut self, t: usize) {
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
                    });
                    return;
                }
                Err(e) => self.emit(EventKind::Error {
                    object: ObjectId::Server(server.id),
                    error: Error::io("accept", &e),
                }),
            }
        }
        // Budget used up: more may wait; poll again soon via the reads list.
        self.more_to_read.push_back(t);
    }

    fn add_accepted(
        &mut self,
        server: Arc<ServerShared>,
        stream: TcpStream,
        peer: std::net::SocketAddr,
    ) {
        let limit = self.net.config.max_connections;
        let full = match self.listeners.get_mut(&token(server.id.0)) {
            Some(l) if l.active >= limit => true,
            Some(l) => {
                l.active += 1;
                false
            }
            None => false,
        };
        if full {
            self.refuse(server, stream, peer, limit);
            return;
        }
        let id = crate::net::ids_next();
        let keying = server.keying.clone();
        let link = Arc::new(Link::new(
            id,
            Role::Accepted(server.id),
            peer,
            keying.clone(),
            self.net.clone(),
        ));
        // On Linux the accepted socket inherited the listener's options.
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        self.configure(&stream);
        let stream = Arc::new(stream);
        {
            let mut out = link.lock();
            out.stream = Some(stream.clone());
            out.peer_port = Some(peer.port());
        }
        let mut io = LinkIo {
            link,
            stream,
            server: Some(server),
            decoder: self.decoder(keying.as_deref()),
            phase: Phase::Handshake,
            deadline: None,
            was_open: false,
            write_shut: false,
            handshake: None,
            opener: None,
            counted: true,
            last_rx: Instant::now(),
            last_message: Instant::now(),
            pinged: false,
        };
        let started = self.begin_handshake(&mut io, SecureRole::Server);
        let t = token(io.link.id);
        self.start(io);
        if let Err(e) = started {
            self.fail(t, e);
        }
    }

    /// Refuses a connection over the server's limit: sends a refusal preamble
    /// with the reason, then closes gracefully (so the client reads why,
    /// instead of a reset), within a short linger.
    fn refuse(
        &mut self,
        server: Arc<ServerShared>,
        stream: TcpStream,
        peer: std::net::SocketAddr,
        limit: usize,
    ) {
        let error = Error::ConnectionLimit { peer, limit };
        self.emit(EventKind::Error {
            object: ObjectId::Server(server.id),
            error,
        });
        let id = crate::net::ids_next();
        let link = Arc::new(Link::new(
            id,
            Role::Accepted(server.id),
            peer,
            None,
            self.net.clone(),
        ));
        let stream = Arc::new(stream);
        {
            let mut out = link.lock();
            out.state = State::Closing;
            out.stream = Some(stream.clone());
            let reason = format!("server full ({limit} connections)");
            // A refusal has a short extension; encoding it cannot fail.
            let _ = Preamble::refusal(&reason).encode(&mut out.control);
        }
        let t = token(id);
        let io = LinkIo {
            link,
            stream,
            server: None,
            decoder: FrameDecoder::new(&self.net.config.limits),
            phase: Phase::Closing,
            deadline: None,
            was_open: false,
            write_shut: false,
            handshake: None,
            opener: None,
            counted: false,
            last_rx: Instant::now(),
            last_message: Instant::now(),
            pinged: false,
        };
        if io.register(self.poll.registry()).is_err() {
            return; // dropping the stream closes it
        }
        let deadline = Instant::now() + self.net.config.linger.min(Duration::from_secs(2));
        self.timers.push(Reverse((deadline, t)));
        let mut io = io;
        io.deadline = Some(deadline);
        self.links.insert(t, io);
        self.flush(t);
    }

    /// A receive decoder; encrypted frames carry a tag on top of the limit.
    fn decoder(&self, keying: Option<&Keying>) -> FrameDecoder {
        let limits = self.net.config.limits;
        let mut decoder = FrameDecoder::new(&limits);
        if keying.is_some() {
            decoder.set_max_frame_size(limits.max_frame_size + TAG_LEN);
        }
        decoder
    }

    /// Queues our preamble: plain, or the encrypted handshake's with a fresh salt.
    fn begin_handshake(&self, io: &mut LinkIo, role: SecureRole) -> Result<(), Error> {
        let mut out = io.link.lock();
        match io.link.keying.as_deref() {
            None => out.control.extend_from_slice(&self.preamble),
            Some(keying) => {
                let handshake = Handshake::with_random_salt(role, &keying.key, keying.suite)?;
                handshake.preamble().encode(&mut out.control)?;
                io.handshake = Some(handshake);
            }
        }
        Ok(())
    }

    /// Sets the per-connection socket options. Failures only cost performance.
    fn configure(&self, stream: &TcpStream) {
        let config = &self.net.config;
        if config.nodelay {
            // Off is the default: no call needed.
            let _ = stream.set_nodelay(true);
        }
        if let Some(idle) = config.keepalive {
            let _ = SockRef::from(stream).set_tcp_keepalive(&TcpKeepalive::new().with_time(idle));
        }
    }

    /// Registers a new link and starts its handshake clock.
    fn start(&mut self, io: LinkIo) {
        let t = token(io.link.id);
        if let Err(e) = io.register(self.poll.registry()) {
            self.links.insert(t, io);
            self.fail(t, Error::io("register", &e));
            return;
        }
        let deadline = Instant::now() + self.net.config.handshake_timeout;
        self.timers.push(Reverse((deadline, t)));
        let mut io = io;
        io.deadline = Some(deadline);
        self.links.insert(t, io);
        // Write our preamble now; both sides send theirs at once.
        self.flush(t);
    }

    // ------------------------------------------------------------ connecting

    fn connect(&mut self, link: Arc<Link>) {
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
        let stream = match TcpStream::connect(link.peer) {
            Ok(s) => s,
            Err(e) => {
                self.fail_unstarted(&link, Error::io("connect", &e));
                return;
            }
        };
        self.configure(&stream);
        let stream = Arc::new(stream);
        link.lock().stream = Some(stream.clone());
        let decoder = self.decoder(link.keying.as_deref());
        let io = LinkIo {
            link,
            stream,
            server: None,
            decoder,
            phase: Phase::Connecting,
            deadline: None,
            was_open: false,
            write_shut: false,
            handshake: None,
            opener: None,
            counted: false,
            last_rx: Instant::now(),
            last_message: Instant::now(),
            pinged: false,
        };
        let t = token(io.link.id);
        self.start(io);
        // The TCP handshake often completes within connect (over loopback it
        // always does): send the preamble now, not after a poll round for
        // the writable edge. If still connecting, this changes nothing.
        if self
            .links
            .get(&t)
            .is_some_and(|io| io.phase == Phase::Connecting)
        {
            self.finish_connect(t);
        }
    }

    /// A client link that never got a socket: report and mark it failed.
    fn fail_unstarted(&mut self, link: &Link, error: Error) {
        let client = ClientId(link.id);
        {
            let mut out = link.lock();
            out.state = State::Closed;
            out.connect = ConnectStatus::Failed(error.clone());
            link.connect_changed.notify_all();
        }
        // Closed: the application dropped or disconnected it; no error to report.
        if error != Error::Closed {
            self.emit(EventKind::Error {
                object: ObjectId::Client(client),
                error: error.clone(),
            });
        }
        self.emit(EventKind::Connected {
            client,
            result: Err(error),
        });
    }

    /// The TCP connect finished (or failed) for a client link.
    fn finish_connect(&mut self, t: usize) {
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
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
            self.fail(t, Error::io("connect", &e));
            return;
        }
        io.phase = Phase::Handshake;
        let Some(mut io) = self.links.remove(&t) else {
            return;
        };
        let started = self.begin_handshake(&mut io, SecureRole::Client);
        self.links.insert(t, io);
        match started {
            Ok(()) => self.flush(t),
            Err(e) => self.fail(t, e),
        }
    }

    // ------------------------------------------------------------ link events

    /// `closed`: the peer's end of stream (or an error) was announced, so
    /// reads must go on until they say so.
    fn on_link_event(&mut self, t: usize, readable: bool, writable: bool, closed: bool) {
        let Some(io) = self.links.get(&t) else {
            return;
        };
        if io.phase == Phase::Connecting {
            if writable || readable {
                self.finish_connect(t);
                // Edge-triggered: the server's preamble may have come with
                // the same notification, and no new edge will announce it.
                if self
                    .links
                    .get(&t)
                    .is_some_and(|io| io.phase == Phase::Handshake)
                {
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

    /// Writes what the link has queued. Closes it on a write error.
    fn flush(&mut self, t: usize) {
        let Some(io) = self.links.get(&t) else {
            return;
        };
        let open = matches!(io.phase, Phase::Open | Phase::Closing);
        let link = io.link.clone();
        let result = {
            let mut out = link.lock();
            let result = out.flush(open);
            let drained = matches!(result, Ok(Flushed::Empty)) && open && out.queue.is_empty();
            (result, drained && std::mem::take(&mut out.refused))
        };
        match result {
            (Err(e), _) => self.fail(t, Error::io("write", &e)),
            (Ok(Flushed::Blocked), _) => {}
            (Ok(Flushed::Empty), report_drained) => {
                if report_drained {
                    let object = object_of(&link);
                    self.emit(EventKind::Drained { object });
                }
                if self
                    .links
                    .get(&t)
                    .is_some_and(|io| io.phase == Phase::Closing)
                {
                    self.shut_write(t);
                }
            }
        }
    }

    /// Reads what arrived, up to the budget, and decodes it.
    ///
    /// A read that fills less than the buffer emptied the socket, so unless
    /// `to_end` asks to read on until the end of stream, we stop there
    /// instead of paying a syscall to hear "would block": bytes arriving
    /// later raise a new edge-triggered event (as tokio relies on too).
    fn read(&mut self, t: usize, to_end: bool) {
        // Frames left undecoded by a lossless pause come first: the socket
        // may have nothing new to say.
        if self
            .links
            .get(&t)
            .is_some_and(|io| io.decoder.buffered() > 0)
            && !self.process(t)
        {
            return;
        }
        let mut total = 0;
        loop {
            let Some(io) = self.links.get_mut(&t) else {
                return;
            };
            let stream = io.stream.clone();
            let buf = io.decoder.read_buffer();
            let offered = buf.len();
            let result = (&*stream).read(buf);
            match result {
                Ok(0) => {
                    self.process(t);
                    self.end_of_stream(t);
                    return;
                }
                Ok(n) => {
                    io.decoder.filled(n);
                    total += n;
                    if !self.process(t) {
                        return; // paused or closed
                    }
                    if n < offered && !to_end {
                        if let Some(io) = self.links.get_mut(&t) {
                            io.decoder.release_idle_memory();
                        }
                        return;
                    }
                    if total >= READ_BUDGET {
                        self.more_to_read.push_back(t);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(io) = self.links.get_mut(&t) {
                        io.decoder.release_idle_memory();
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(t, Error::io("read", &e));
                    return;
                }
            }
        }
    }

    /// Decodes buffered bytes: the preamble, then frames. False when the
    /// link closed or was paused (stop reading it).
    fn process(&mut self, t: usize) -> bool {
        // One clock read per batch of bytes: the frames in it were all seen
        // now (stamps their events and the heartbeat's last sign of life).
        let seen = Instant::now();
        let Some(io) = self.links.get_mut(&t) else {
            return false;
        };
        if io.phase == Phase::Closing && !io.was_open {
            // Refused or abandoned before the handshake: what the peer says
            // no longer matters; read only to see its end of stream.
            io.decoder.clear();
            return true;
        }
        if io.phase == Phase::Handshake {
            let peer = match io.link.role {
                Role::Accepted(_) => "client",
                Role::Client(_) => "server",
            };
            let preamble = match io.decoder.next_preamble() {
                Ok(None) => return true,
                Ok(Some(preamble)) => preamble,
                Err(e) => {
                    self.fail(t, e);
                    return false;
                }
            };
            if let Some(reason) = preamble.refused() {
                self.fail(t, ProtocolError::Refused { peer, reason }.into());
                return false;
            }
            match (io.handshake.as_mut(), preamble.encrypted()) {
                (None, false) => self.open(t, None),
                (None, true) => {
                    self.fail(t, ProtocolError::PeerRequiresKey { peer }.into());
                    return false;
                }
                (Some(_), false) => {
                    self.fail(t, ProtocolError::PeerHasNoKey { peer }.into());
                    return false;
                }
                (Some(handshake), true) => match handshake.receive_preamble(&preamble) {
                    Ok(confirm) => {
                        io.link.lock().control.extend_from_slice(&confirm);
                        io.phase = Phase::Confirm;
                        // Until the peer proves it has the key, accept no frame
                        // but its key confirmation: nobody without the key can
                        // make us buffer more than 53 bytes.
                        io.decoder
                            .set_max_frame_size(CONFIRM_FRAME_LEN - crate::proto::LENGTH_PREFIX);
                        self.flush(t);
                    }
                    Err(e) => {
                        self.fail(t, e.into());
                        return false;
                    }
                },
            }
        }
        let Some(io) = self.links.get_mut(&t) else {
            return false;
        };
        if io.phase == Phase::Confirm {
            let LinkIo {
                decoder, handshake, ..
            } = io;
            let confirmed = match (decoder.next_raw_frame(), handshake.as_mut()) {
                (Ok(None), _) => return true,
                (Ok(Some((prefix, payload))), Some(handshake)) => handshake
                    .receive_confirm(prefix, payload)
                    .map_err(Error::from),
                (Ok(Some(_)), None) => Err(Error::Closed),
                (Err(e), _) => Err(e),
            };
            match confirmed {
                Ok(session) => {
                    let (sealer, opener) = session.into_parts();
                    io.opener = Some(opener);
                    io.handshake = None;
                    let limit = self.net.config.limits.max_frame_size + TAG_LEN;
                    io.decoder.set_max_frame_size(limit);
                    self.open(t, Some(sealer));
                }
                Err(e) => {
                    self.fail(t, e);
                    return false;
                }
            }
        }
        let limits = self.net.config.limits;
        // Per batch, not per frame: the link handle and who the packets are from.
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
            let size = io.decoder.next_frame_len().unwrap_or(0);
            if !self.has_room(size) {
                self.paused_links.push(t);
                return false;
            }
            let Some(io) = self.links.get_mut(&t) else {
                return false;
            };
            let closing = io.phase == Phase::Closing;
            let decoded = match io.next_incoming(&limits, &mut self.batch) {
                Ok(None) => return true,
                Ok(Some(incoming)) => {
                    io.last_rx = seen;
                    io.pinged = false;
                    if !closing && matches!(incoming, Incoming::Message(..) | Incoming::Raw(..)) {
                        io.last_message = seen;
                    }
                    Ok(incoming)
                }
                Err(e) => Err(e),
            };
            match decoded {
                Ok(_) if closing => {} // closing locally: discard
                Ok(Incoming::Ping) => send_control(&link, FrameKind::Pong),
                Ok(Incoming::Pong) => {}
                Ok(incoming @ (Incoming::Message(..) | Incoming::Raw(..))) => {
                    if !received {
                        // Once per batch, before any of its events can reach
                        // the ring: a reply to them may write directly (see
                        // `Link::idle`).
                        received = true;
                        link.received
                            .store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    let (p, size) = match incoming {
                        Incoming::Raw(body, size) => {
                            (Pending::message(from, body, seen, size), size)
                        }
                        Incoming::Message(packet, size) => {
                            let mut p = Pending::at(EventKind::Receive { from, packet }, seen);
                            p.bytes = size;
                            (p, size)
                        }
                        Incoming::Ping | Incoming::Pong => unreachable!("matched above"),
                    };
                    self.pending.push(p);
                    self.room = self.room.saturating_sub(1);
                    self.room_bytes = self.room_bytes.saturating_sub(size);
                }
                Err(e) => {
                    self.fail(t, e);
                    return false;
                }
            }
        }
    }

    /// The handshake finished: the link is usable. `sealer` is set for
    /// encrypted links.
    fn open(&mut self, t: usize, sealer: Option<Sealer>) {
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
        io.phase = Phase::Open;
        io.was_open = true;
        io.deadline = None;
        let now = Instant::now();
        io.last_rx = now;
        io.last_message = now;
        if let Some(next) = next_liveness_check(io, &self.net.config) {
            io.deadline = Some(next);
            self.timers.push(Reverse((next, t)));
        }
        let link = io.link.clone();
        let server = io.server.clone();
        let sealed = match sealer {
            Some(sealer) => link.lock().start_sealing(sealer),
            None => Ok(()),
        };
        if let Err(e) = sealed {
            let error = match e {
                crate::net::SendError::Unsendable(e) => e,
                other => Error::Convert(other.to_string()),
            };
            self.fail(t, error);
            return;
        }
        let closing = {
            let mut out = link.lock();
            let closing = out.state == State::Closing;
            if !closing {
                out.state = State::Open;
            }
            if matches!(link.role, Role::Client(_)) {
                out.peer_port = Some(link.peer.port());
                out.connect = ConnectStatus::Connected(link.created.elapsed());
                link.connect_changed.notify_all();
            }
            closing
        };
        match (link.role, server) {
            (Role::Accepted(server_id), Some(server)) => {
                server
                    .conns
                    .lock()
                    .insert(link.connection_id(), link.clone());
                self.emit(EventKind::Connect {
                    connection: Connection::new(link.clone()),
                    server: server_id,
                });
            }
            (Role::Client(client), _) => self.emit(EventKind::Connected {
                client,
                result: Ok(()),
            }),
            (Role::Accepted(_), None) => {}
        }
        if closing {
            self.close_locally(t);
        } else {
            // Send what was queued while connecting.
            self.flush(t);
        }
    }

    fn end_of_stream(&mut self, t: usize) {
        let Some(io) = self.links.get(&t) else {
            return;
        };
        match io.phase {
            Phase::Closing => self.finish(t, CloseReason::ClosedLocally),
            Phase::Connecting | Phase::Handshake | Phase::Confirm => {
                self.fail(t, ProtocolError::ClosedDuringHandshake.into());
            }
            Phase::Open if io.decoder.buffered() > 0 => {
                let buffered = io.decoder.buffered();
                self.fail(t, ProtocolError::TruncatedStream { buffered }.into());
            }
            Phase::Open => {
                // Best effort: the peer may still read what we had queued.
                self.flush(t);
                self.finish(t, CloseReason::ClosedByPeer);
            }
        }
    }

    // ------------------------------------------------------------ closing

    /// Local close: flush what is queued (within the linger time), send our
    /// end of stream, wait for the peer's, then close.
    fn close_locally(&mut self, t: usize) {
        let linger = self.net.config.linger;
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
        match io.phase {
            Phase::Connecting | Phase::Handshake | Phase::Confirm => {
                let queued = {
                    let mut out = io.link.lock();
                    out.state = State::Closing;
                    !out.queue.is_empty()
                };
                // Messages were queued before the handshake ended: they are
                // sent first (the handshake keeps its deadline; `open` sees
                // the closing state and closes after flushing).
                if !queued {
                    self.finish(t, CloseReason::ClosedLocally);
                }
            }
            Phase::Closing => {}
            Phase::Open => {
                io.phase = Phase::Closing;
                io.link.lock().state = State::Closing;
                let deadline = Instant::now() + linger;
                io.deadline = Some(deadline);
                self.timers.push(Reverse((deadline, t)));
                self.flush(t);
            }
        }
    }

    /// Everything is flushed: send our end of stream.
    fn shut_write(&mut self, t: usize) {
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
        if io.write_shut {
            return;
        }
        io.write_shut = true;
        if io.stream.shutdown(std::net::Shutdown::Write).is_err() {
            self.finish(t, CloseReason::ClosedLocally);
        }
    }

    fn close_server(&mut self, t: usize) {
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

    /// Closes a link because of `error`: an Error event, then the close.
    fn fail(&mut self, t: usize, error: Error) {
        let Some(io) = self.links.get(&t) else {
            return;
        };
        let object = object_of(&io.link);
        self.emit(EventKind::Error {
            object,
            error: error.clone(),
        });
        self.finish(t, CloseReason::Error(error));
    }

    /// Removes a link and reports its end.
    fn finish(&mut self, t: usize, reason: CloseReason) {
        let Some(io) = self.links.remove(&t) else {
            return;
        };
        io.deregister(self.poll.registry());
        let _ = io.stream.shutdown(std::net::Shutdown::Both);
        let link = io.link.clone();
        let never_connected = {
            let mut out = link.lock();
            out.state = State::Closed;
            out.stream = None;
            out.queue.clear();
            out.queued = 0;
            out.control.clear();
            let pending = matches!(out.connect, ConnectStatus::Pending);
            if pending {
                out.connect = ConnectStatus::Failed(match &reason {
                    CloseReason::Error(e) => e.clone(),
                    CloseReason::Timeout => Error::Timeout {
                        operation: "handshake",
                        after: self.net.config.handshake_timeout,
                    },
                    _ => Error::Closed,
                });
                link.connect_changed.notify_all();
            }
            pending
        };
        if let Some(server) = &io.server {
            server.conns.lock().remove(&link.connection_id());
            if io.counted
                && let Some(l) = self.listeners.get_mut(&token(server.id.0))
            {
                l.active = l.active.saturating_sub(1);
            }
        }
        match link.role {
            Role::Client(client) if io.was_open => {
                self.emit(EventKind::ServerClose { client, reason })
            }
            Role::Client(client) if never_connected => {
                let error = match reason {
                    CloseReason::Error(e) => e,
                    CloseReason::Timeout => Error::Timeout {
                        operation: "handshake",
                        after: self.net.config.handshake_timeout,
                    },
                    _ => Error::Closed,
                };
                self.emit(EventKind::Connected {
                    client,
                    result: Err(error),
                });
            }
            Role::Accepted(server) if io.was_open => self.emit(EventKind::ClientClose {
                connection: link.connection_id(),
                server,
                reason,
            }),
            _ => {}
        }
    }

    // ------------------------------------------------------------ time

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((when, t))) = self.timers.peek().copied() {
            if when > now {
                break;
            }
            self.timers.pop();
            if self.listeners.contains_key(&t) {
                self.accept(t); // back-off over
                continue;
            }
            let Some(io) = self.links.get(&t) else {
                continue;
            };
            if io.deadline != Some(when) {
                continue; // superseded
            }
            match io.phase {
                Phase::Connecting | Phase::Handshake | Phase::Confirm => {
                    let after = self.net.config.handshake_timeout;
                    let object = object_of(&io.link);
                    self.emit(EventKind::Error {
                        object,
                        error: Error::Timeout {
                            operation: "handshake",
                            after,
                        },
                    });
                    self.finish(t, CloseReason::Timeout);
                }
                Phase::Closing => self.finish(t, CloseReason::ClosedLocally),
                Phase::Open => self.check_liveness(t),
            }
        }
    }

    /// Heartbeat and idle timeout of an open link: ping a quiet peer, close a
    /// silent or idle one, and schedule the next check.
    fn check_liveness(&mut self, t: usize) {
        let config = &self.net.config;
        let (heartbeat, idle) = (config.heartbeat, config.idle_timeout);
        let Some(io) = self.links.get_mut(&t) else {
            return;
        };
        let now = Instant::now();
        let expired = match (heartbeat, idle) {
            (Some(limit), _) if now.duration_since(io.last_rx) >= limit => {
                Some(("heartbeat", limit))
            }
            (_, Some(limit)) if now.duration_since(io.last_message) >= limit => {
                Some(("idle timeout", limit))
            }
            _ => None,
        };
        if let Some((operation, after)) = expired {
            let object = object_of(&io.link);
            self.emit(EventKind::Error {
                object,
                error: Error::Timeout { operation, after },
            });
            self.finish(t, CloseReason::Timeout);
            return;
        }
        if let Some(limit) = heartbeat
            && !io.pinged
            && now.duration_since(io.last_rx) >= limit / 3
        {
            io.pinged = true;
            send_control(&io.link, FrameKind::Ping);
        }
        if let Some(next) = next_liveness_check(io, &self.net.config) {
            io.deadline = Some(next);
            self.timers.push(Reverse((next, t)));
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

    fn finish_shutdown(&mut self) {
        self.finish_shutdown_with(CloseReason::ClosedLocally);
    }

    fn finish_shutdown_with(&mut self, reason: CloseReason) {
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

/// When an open link's heartbeat or idle timeout next needs a look.
fn next_liveness_check(io: &LinkIo, config: &crate::net::Config) -> Option<Instant> {
    let heartbeat = config.heartbeat.map(|limit| {
        // Ping after a third of the limit in silence; give up at the limit.
        let wait = if io.pinged { limit } else { limit / 3 };
        io.last_rx + wait
    });
    let idle = config.idle_timeout.map(|limit| io.last_message + limit);
    match (heartbeat, idle) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Sends an empty control frame (sealed on encrypted links). A full send
/// queue skips it: that peer is not reading, and its silence will tell.
fn send_control(link: &Link, kind: FrameKind) {
    let _ = link.send_frame(OutFrame::Borrowed(&control_frame(kind)), false);
}

fn object_of(link: &Link) -> ObjectId {
    match link.role {
        Role::Accepted(_) => ObjectId::Connection(link.connection_id()),
        Role::Client(id) => ObjectId::Client(id),
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    // EMFILE (24): process limit; ENFILE (23): system limit.
    matches!(e.raw_os_error(), Some(23 | 24))
}
