//! One connection's protocol as a sans-IO state machine: preamble,
//! handshake, key confirmation, open, heartbeat and idle timers, close.
//!
//! A [`Session`] is driven, in the style of quinn-proto's `Connection`, by
//! whoever owns the socket. It never touches a socket, a thread or a clock:
//! every method that depends on time takes `now`.
//!
//! ```text
//!  driver                                  Session
//!  ──────                                  ───────
//!  TCP connected ───────────────────────>  connected(now)
//!  bytes read ─────> read_buffer/filled ─> poll_input(now) ─> Input::Message(body)
//!  end of stream ──────────────────────>  end_of_stream(), then poll_input
//!  timer fired ────────────────────────>  handle_timeout(now)    (poll_timeout says when)
//!  application closes ─────────────────>  close(now, data_queued)
//!  queue written out ──────────────────>  flushed()
//!  poll_transmit(buf) <─────────────────  preamble and handshake bytes
//!  poll_event() <───────────────────────  Established / SendControl / ShutdownWrite / Closed
//! ```
//!
//! Application frames do not pass through the session: they go into a
//! [`SendQueue`](super::SendQueue), which seals them once
//! [`SessionEvent::Established`] hands over the sealer, and may be written
//! whenever [`Session::can_send`] is true. Everything the session wants sent
//! itself (its preamble, its handshake messages) comes from
//! [`Session::poll_transmit`] and goes out before anything queued; the
//! heartbeat's Ping and Pong and the closing Close frame go through the
//! queue ([`SessionEvent::SendControl`]), so they are sealed in order with
//! the rest.
//!
//! Closing (protocol version 2): the closing side queues a Close frame
//! behind its last message, shuts down writing once it is out, and reads
//! until the peer's Close or end of stream; the peer answers with its own
//! Close. [`CloseReason::ClosedByPeer`] is reported only after a Close; an
//! end of stream without one is [`ProtocolError::StreamCut`].
//!
//! ```
//! use std::time::Instant;
//! use tablenet::proto::session::{Input, Session, SessionConfig, SessionEvent};
//! use tablenet::proto::secure::Role;
//!
//! let now = Instant::now();
//! let config = SessionConfig::default();
//! let mut client = Session::new(Role::Client, &config, None, now);
//! let mut server = Session::new(Role::Server, &config, None, now);
//! client.connected(now);
//! let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
//! client.poll_transmit(&mut to_server);
//! server.poll_transmit(&mut to_client);
//! server.push(&to_server);
//! client.push(&to_client);
//! // Each side reads the other's preamble and is open.
//! assert!(matches!(server.poll_input(now), Input::Handled));
//! assert!(matches!(server.poll_event(), Some(SessionEvent::Established { sealer: None })));
//! assert!(matches!(client.poll_input(now), Input::Handled));
//! assert!(client.is_established() && server.is_established());
//! ```

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::secure::{Handshake, MAX_HANDSHAKE_FRAME, Opener, Role, Sealer, TAG_LEN};
use super::{FrameDecoder, FrameKind, Limits, MAX_CLOSE_REASON, Preamble};
use crate::error::{Error, ProtocolError};

/// The limits and timers of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// The largest frame accepted from the peer (before any encryption tag).
    pub limits: Limits,
    /// Time from creation until the handshake must have finished, plain
    /// links included.
    pub handshake_timeout: Duration,
    /// Time a local close may spend flushing before it is cut.
    pub linger: Duration,
    /// Dead-peer detection: ping after a third of this in silence, close at
    /// the whole of it. `None`: off.
    pub heartbeat: Option<Duration>,
    /// Close when no application message arrived for this long. `None`: off.
    pub idle_timeout: Option<Duration>,
    /// Close when a partial frame got no new byte for this long while the
    /// session was being read (see [`Session::pause_reading`]). `None`: off.
    pub frame_timeout: Option<Duration>,
}

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig {
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(5),
            heartbeat: None,
            idle_timeout: None,
            frame_timeout: None,
        }
    }
}

impl SessionConfig {
    /// The default limits and timers with these frame and depth limits.
    pub fn new(limits: Limits) -> SessionConfig {
        SessionConfig {
            limits,
            ..SessionConfig::default()
        }
    }

    /// Sets the handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> SessionConfig {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets the linger time of a local close.
    pub fn with_linger(mut self, linger: Duration) -> SessionConfig {
        self.linger = linger;
        self
    }

    /// Sets (or turns off) the heartbeat.
    pub fn with_heartbeat(mut self, heartbeat: Option<Duration>) -> SessionConfig {
        self.heartbeat = heartbeat;
        self
    }

    /// Sets (or turns off) the idle timeout.
    pub fn with_idle_timeout(mut self, idle: Option<Duration>) -> SessionConfig {
        self.idle_timeout = idle;
        self
    }

    /// Sets (or turns off) the partial-frame timeout.
    pub fn with_frame_timeout(mut self, timeout: Option<Duration>) -> SessionConfig {
        self.frame_timeout = timeout;
        self
    }
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the connection cleanly.
    ClosedByPeer,
    /// This side closed it: `disconnect`, dropping the last handle, or shutdown.
    ClosedLocally,
    /// An error ended it; the error says which.
    Error(Error),
    /// A time limit passed (for example the handshake timeout).
    Timeout,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::ClosedByPeer => f.write_str("closed by peer"),
            CloseReason::ClosedLocally => f.write_str("closed locally"),
            CloseReason::Error(e) => write!(f, "error: {e}"),
            CloseReason::Timeout => f.write_str("timed out"),
        }
    }
}

/// What a session asks of its driver, in order. Take them with
/// [`Session::poll_event`] after every call that feeds the session.
#[derive(Debug)]
pub enum SessionEvent {
    /// The handshake finished: the connection is usable. On a keyed link,
    /// seal every application frame from now on with `sealer`, those queued
    /// before included, in order (see [`SendQueue::start_sealing`](super::SendQueue::start_sealing)).
    Established {
        /// The sealer of the outgoing direction, on keyed links.
        sealer: Option<Sealer>,
    },
    /// Queue this control frame behind the application frames already
    /// queued (sealed like them). A full queue may skip a Ping or Pong (a
    /// peer that does not read will be noticed by its silence), never a
    /// Close, and nothing may be queued after a Close.
    SendControl(FrameKind),
    /// Closing, and everything queued, our Close included, has been
    /// written: shut down writing, then keep reading (what arrives is
    /// discarded) until the session closes: at the peer's Close or end of
    /// stream, or when the linger runs out.
    ShutdownWrite,
    /// The session is over; nothing more will come from it. `error` is the
    /// error to report for it, if any (for a timeout, which limit passed).
    Closed {
        /// Why it closed.
        reason: CloseReason,
        /// What to report as an error, when the close was not a clean one.
        error: Option<Error>,
    },
}

/// What one call of [`Session::poll_input`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// The body (an encoded value) of the peer's next application message.
    Message(&'a [u8]),
    /// A handshake step, a control frame or the end of the session was
    /// handled: take the events it produced, then call again.
    Handled,
    /// Nothing more until more bytes arrive.
    Empty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A client's TCP connect is in progress.
    Connecting,
    /// Our preamble is out; waiting for the peer's.
    Preamble,
    /// Keyed: the Noise handshake's messages and the key confirmation.
    Handshake,
    /// Usable.
    Open,
    /// Closing (ours, or answering the peer's Close): our Close is queued
    /// behind what was; flushing, then waiting for the peer's Close or end
    /// of stream. A refusal session is here from the start.
    Closing,
    /// Over.
    Closed,
}

/// One connection's protocol state. See the [module docs](self).
pub struct Session {
    role: Role,
    config: SessionConfig,
    phase: Phase,
    decoder: FrameDecoder,
    /// Boxed: it lives only until the handshake ends, and an open session
    /// (thousands may be idle) should not carry its room inline.
    handshake: Option<Box<Handshake>>,
    /// The peer is expected to be keyed (a handshake was given).
    keyed: bool,
    opener: Option<Opener>,
    /// Bytes to write before anything queued.
    transmit: Vec<u8>,
    events: VecDeque<SessionEvent>,
    /// Handshake, linger or next liveness check.
    deadline: Option<Instant>,
    last_rx: Instant,
    last_message_at: Instant,
    /// When a byte last arrived (for the partial-frame timeout), and the
    /// decoder's count of bytes then.
    last_progress: Instant,
    progress_mark: u64,
    /// Where the last message returned by `poll_input` lies in the receive
    /// buffer (for [`Session::take_message`]).
    last_message: Option<Range<usize>>,
    /// The driver stopped reading us (its own backpressure) at this time:
    /// liveness and frame timers stand still until it resumes.
    paused_since: Option<Instant>,
    /// A ping is out and unanswered.
    pinged: bool,
    established: bool,
    /// Closed locally during the handshake with data queued: close once open.
    close_when_open: bool,
    /// The peer's Close frame arrived.
    peer_closed: bool,
    /// The peer's Close started the closing (the close is then the peer's).
    closed_by_peer: bool,
    /// The peer's end of stream was seen.
    end_of_stream: bool,
    write_shut: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("phase", &self.phase)
            .field("keyed", &self.keyed)
            .field("buffered", &self.decoder.buffered())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for `role`: plain, or keyed with `handshake` (whose role
    /// must be the same). A server's session sends its preamble at once; a
    /// client's waits for [`connected`](Self::connected). The handshake
    /// timeout runs from `now`.
    pub fn new(
        role: Role,
        config: &SessionConfig,
        handshake: Option<Handshake>,
        now: Instant,
    ) -> Session {
        let keyed = handshake.is_some();
        let mut decoder = FrameDecoder::new(&config.limits);
        if keyed {
            decoder.set_max_frame_size(config.limits.max_frame_size + TAG_LEN);
        }
        let mut session = Session {
            role,
            config: *config,
            phase: Phase::Connecting,
            decoder,
            handshake: handshake.map(Box::new),
            keyed,
            opener: None,
            transmit: Vec::new(),
            events: VecDeque::new(),
            deadline: now.checked_add(config.handshake_timeout),
            last_rx: now,
            last_message_at: now,
            last_progress: now,
            progress_mark: 0,
            last_message: None,
            paused_since: None,
            pinged: false,
            established: false,
            close_when_open: false,
            peer_closed: false,
            closed_by_peer: false,
            end_of_stream: false,
            write_shut: false,
        };
        if role == Role::Server {
            session.connected(now);
        }
        session
    }

    /// A server's session that only refuses: it sends a refusal preamble
    /// with `reason`, discards what the peer sends, and closes once the
    /// peer has read it (its end of stream) or after at most 2 s.
    pub fn refusal(config: &SessionConfig, reason: &str, now: Instant) -> Session {
        let mut session = Session::new(Role::Server, config, None, now);
        session.transmit.clear();
        // A refusal's extension is cut to the limit; encoding cannot fail.
        let _ = Preamble::refusal(reason).encode(&mut session.transmit);
        session.phase = Phase::Closing;
        session.deadline = now.checked_add(config.linger.min(Duration::from_secs(2)));
        session
    }

    /// A client's TCP connection is established: its preamble goes out.
    /// Does nothing in any other state.
    pub fn connected(&mut self, _now: Instant) {
        if self.phase != Phase::Connecting {
            return;
        }
        self.phase = Phase::Preamble;
        let preamble = match &self.handshake {
            Some(handshake) => handshake.preamble(),
            None => Preamble::plain(),
        };
        // Our own preambles have short extensions; encoding cannot fail.
        let _ = preamble.encode(&mut self.transmit);
        // A client's Noise message 1 goes out with its preamble.
        if let Some(handshake) = self.handshake.as_mut() {
            match handshake.first_message() {
                Ok(message) => self.transmit.extend_from_slice(&message),
                Err(e) => {
                    self.fail(e.into());
                }
            }
        }
    }

    /// Which end of the connection this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The handshake has finished (the connection is, or was, usable).
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The session is over ([`SessionEvent::Closed`] was produced).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Still connecting or in the handshake.
    pub fn is_handshaking(&self) -> bool {
        matches!(
            self.phase,
            Phase::Connecting | Phase::Preamble | Phase::Handshake
        )
    }

    /// Closing locally (flushing, then waiting for the peer's end of stream).
    pub fn is_closing(&self) -> bool {
        self.phase == Phase::Closing
    }

    /// Everything was written, our Close included, and writing was shut
    /// down ([`SessionEvent::ShutdownWrite`] was produced).
    pub fn is_write_shut(&self) -> bool {
        self.write_shut
    }

    /// Application frames may be written now (open, or closing after
    /// having been open).
    pub fn can_send(&self) -> bool {
        self.established && matches!(self.phase, Phase::Open | Phase::Closing)
    }

    /// Appends the bytes the session itself wants sent (its preamble, its key
    /// confirmation) to `buf`; they go out before anything queued. Returns
    /// how many.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        let n = self.transmit.len();
        buf.extend_from_slice(&self.transmit);
        // Only the handshake transmits: an open session keeps no buffer.
        self.transmit = Vec::new();
        n
    }

    /// [`poll_transmit`](Self::poll_transmit) has bytes to give.
    pub fn has_transmit(&self) -> bool {
        !self.transmit.is_empty()
    }

    /// The next thing the driver must act on.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 0 {
            // Events are rare (open, a ping, the end): an idle session
            // keeps no buffer for them.
            self.events = VecDeque::new();
        }
        event
    }

    /// Events are waiting for [`poll_event`](Self::poll_event).
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    // ------------------------------------------------------------ input

    /// Free space to read the peer's bytes into; report how many arrived
    /// with [`filled`](Self::filled).
    pub fn read_buffer(&mut self) -> &mut [u8] {
        self.decoder.read_buffer()
    }

    /// [`read_buffer`](Self::read_buffer), unless that would grow the
    /// receive buffer's memory by more than `max_growth` bytes (`None`:
    /// nothing was allocated). For a driver that keeps a memory budget.
    pub fn read_buffer_within(&mut self, max_growth: usize) -> Option<&mut [u8]> {
        self.decoder.read_buffer_within(max_growth)
    }

    /// The size of the frame now arriving (length prefix included), once
    /// its prefix is in: what receiving it whole will take.
    pub fn next_frame_size(&self) -> Option<usize> {
        self.decoder.next_frame_size()
    }

    /// The body of the message the last [`poll_input`](Self::poll_input)
    /// returned, handed over without copying: the receive buffer itself
    /// becomes it (what follows moves to a fresh buffer). Worth it for large
    /// messages, which would otherwise be copied; `None` if the last call
    /// returned no message.
    pub fn take_message(&mut self) -> Option<Bytes> {
        let range = self.last_message.take()?;
        Some(self.decoder.take_range(range))
    }

    /// Bytes of memory the receive buffer holds now.
    pub fn receive_memory(&self) -> usize {
        self.decoder.capacity()
    }

    /// Marks `n` bytes of the last [`read_buffer`](Self::read_buffer) as received.
    pub fn filled(&mut self, n: usize) {
        self.decoder.filled(n);
    }

    /// The driver stops reading this session for a while (its own
    /// backpressure: no room for what would arrive). Until
    /// [`resume_reading`](Self::resume_reading), the heartbeat, idle and
    /// partial-frame timers stand still: the peer's silence is ours.
    pub fn pause_reading(&mut self, now: Instant) {
        if self.paused_since.is_none() {
            self.paused_since = Some(now);
        }
    }

    /// The driver reads this session again: the timers go on from where
    /// they stood.
    pub fn resume_reading(&mut self, now: Instant) {
        let Some(since) = self.paused_since.take() else {
            return;
        };
        let paused = now.saturating_duration_since(since);
        for t in [
            &mut self.last_rx,
            &mut self.last_message_at,
            &mut self.last_progress,
        ] {
            *t = t.checked_add(paused).unwrap_or(*t).min(now);
        }
        if self.phase == Phase::Open {
            self.deadline = self.next_liveness_check();
        }
    }

    /// How long an open session has held part of a frame with no byte of it
    /// arriving, not counting time paused by
    /// [`pause_reading`](Self::pause_reading); `None` when it holds none or
    /// is paused. A driver short of memory closes the longest-stalled large
    /// frames first.
    pub fn stalled_for(&self, now: Instant) -> Option<Duration> {
        if self.phase != Phase::Open || self.paused_since.is_some() || self.decoder.buffered() == 0
        {
            return None;
        }
        Some(now.saturating_duration_since(self.last_progress))
    }

    /// Closes a session whose partial frame has stalled for `stalled` (see
    /// [`stalled_for`](Self::stalled_for)) because others wait for the
    /// memory it holds: reason `Timeout`, as when the frame timeout passes.
    pub fn close_stalled(&mut self, stalled: Duration) {
        let error = Error::Timeout {
            operation: "a partial frame (no byte arrived while others waited for memory)",
            after: stalled,
        };
        self.close_with(CloseReason::Timeout, Some(error));
    }

    /// Reading is paused (see [`pause_reading`](Self::pause_reading)).
    pub fn is_reading_paused(&self) -> bool {
        self.paused_since.is_some()
    }

    /// Appends received bytes (a copying alternative to `read_buffer`).
    pub fn push(&mut self, bytes: &[u8]) {
        self.decoder.push(bytes);
    }

    /// Bytes received and not yet handled.
    pub fn buffered(&self) -> usize {
        self.decoder.buffered()
    }

    /// Frees the receive buffer when it holds nothing (an idle connection
    /// then holds no receive memory).
    pub fn release_idle_memory(&mut self) {
        self.decoder.release_idle_memory();
    }

    /// The wire size of the next frame if it has fully arrived and the
    /// session is open, else 0: what a driver checks against its room before
    /// taking the next message. (A closing session discards what arrives,
    /// so it never needs room.)
    pub fn next_frame_len(&self) -> usize {
        match self.phase {
            Phase::Open => self.decoder.next_frame_len().unwrap_or(0),
            _ => 0,
        }
    }

    /// Handles received bytes, one step per call: the preamble, the key
    /// confirmation, a control frame, or one application message (whose
    /// body it returns). Errors close the session
    /// ([`SessionEvent::Closed`]), and so does the peer's end of stream once
    /// everything before it has been handled.
    pub fn poll_input(&mut self, now: Instant) -> Input<'_> {
        self.last_message = None;
        if self.decoder.received() != self.progress_mark {
            self.progress_mark = self.decoder.received();
            self.last_progress = now;
        }
        match self.phase {
            Phase::Closed => Input::Empty,
            Phase::Connecting => self.input_exhausted(),
            Phase::Preamble => self.read_preamble(now),
            Phase::Handshake => self.read_handshake(now),
            Phase::Closing if !self.established => {
                // Refused or abandoned before the handshake: what the peer
                // says no longer matters; read only to see its end of stream.
                self.decoder.clear();
                self.input_exhausted()
            }
            Phase::Open | Phase::Closing => self.read_frame(now),
        }
    }

    fn read_preamble(&mut self, now: Instant) -> Input<'_> {
        let peer = self.peer_name();
        let preamble = match self.decoder.next_preamble() {
            Ok(None) => return self.input_exhausted(),
            Ok(Some(preamble)) => preamble,
            Err(e) => return self.fail(e),
        };
        self.last_rx = now;
        if preamble.refused().is_some() && self.role == Role::Server {
            return self.fail(ProtocolError::RefusalFromClient.into());
        }
        if let Some(reason) = preamble.refused() {
            return self.fail(ProtocolError::Refused { peer, reason }.into());
        }
        match (self.handshake.as_mut(), preamble.encrypted()) {
            (None, false) => self.establish(None, now),
            (None, true) => self.fail(ProtocolError::PeerRequiresKey { peer }.into()),
            (Some(_), false) => self.fail(ProtocolError::PeerHasNoKey { peer }.into()),
            (Some(handshake), true) => match handshake.receive_preamble(&preamble) {
                Ok(()) => {
                    self.phase = Phase::Handshake;
                    // Until the handshake is done, accept no frame longer
                    // than a handshake message: nobody without the key can
                    // make us buffer more than that.
                    self.decoder.set_max_frame_size(MAX_HANDSHAKE_FRAME);
                    Input::Handled
                }
                Err(e) => self.fail(e.into()),
            },
        }
    }

    fn read_handshake(&mut self, now: Instant) -> Input<'_> {
        let (prefix, range) = match self.decoder.next_raw_frame_at() {
            Ok(None) => return self.input_exhausted(),
            Ok(Some(frame)) => frame,
            Err(e) => return self.fail(e),
        };
        self.last_rx = now;
        let Some(handshake) = self.handshake.as_mut() else {
            return self.fail(Error::Closed);
        };
        let payload = self.decoder.get_mut(range);
        match handshake.receive(prefix, payload) {
            Ok(progress) => {
                self.transmit.extend_from_slice(&progress.send);
                let Some(session) = progress.session else {
                    return Input::Handled;
                };
                let (sealer, opener) = session.into_parts();
                self.opener = Some(opener);
                self.handshake = None;
                self.decoder
                    .set_max_frame_size(self.config.limits.max_frame_size + TAG_LEN);
                self.establish(Some(sealer), now)
            }
            Err(e) => self.fail(e.into()),
        }
    }

    /// Takes the next frame of an open session: opened, checked, and
    /// answered when it is a control frame.
    fn read_frame(&mut self, now: Instant) -> Input<'_> {
        let body = match self.next_frame() {
            Ok(None) => return self.input_exhausted(),
            Ok(Some(frame)) => frame,
            Err(e) => return self.fail(e),
        };
        let (kind, range) = body;
        self.last_rx = now;
        self.pinged = false;
        let closing = self.phase == Phase::Closing;
        match kind {
            FrameKind::Close if range.len() > MAX_CLOSE_REASON => self.fail(
                ProtocolError::Malformed(format!(
                    "a Close frame carries a reason of {} bytes; at most {MAX_CLOSE_REASON} are allowed",
                    range.len()
                ))
                .into(),
            ),
            FrameKind::Close => self.peer_close(now),
            FrameKind::Ping | FrameKind::Pong if !range.is_empty() => self.fail(
                ProtocolError::Malformed(format!(
                    "a {kind:?} frame carries {} bytes; it must be empty",
                    range.len()
                ))
                .into(),
            ),
            FrameKind::Ping => {
                if !closing {
                    self.events
                        .push_back(SessionEvent::SendControl(FrameKind::Pong));
                }
                Input::Handled
            }
            FrameKind::Pong => Input::Handled,
            // Closing locally: what still arrives is discarded.
            FrameKind::Message if closing => Input::Handled,
            FrameKind::Message => {
                self.last_message_at = now;
                self.last_message = Some(range.clone());
                Input::Message(self.decoder.get_mut(range))
            }
        }
    }

    /// The next complete frame's kind and where its body lies, opened in
    /// place on keyed links.
    fn next_frame(&mut self) -> Result<Option<(FrameKind, Range<usize>)>, Error> {
        let Some((prefix, range)) = self.decoder.next_raw_frame_at()? else {
            return Ok(None);
        };
        let start = range.start;
        let plain_len = match self.opener.as_mut() {
            None => range.len(),
            Some(opener) => {
                let payload = self.decoder.get_mut(range);
                opener.open_in_place(prefix, payload)?.len()
            }
        };
        if plain_len == 0 {
            return Err(ProtocolError::EmptyFrame.into());
        }
        let kind_byte = self.decoder.get_mut(start..start + 1);
        let kind = FrameKind::from_byte(kind_byte.first().copied().unwrap_or(0))?;
        Ok(Some((kind, start + 1..start + plain_len)))
    }

    /// No complete step is buffered: the end, if the peer's end of stream
    /// was seen.
    fn input_exhausted(&mut self) -> Input<'_> {
        if !self.end_of_stream {
            self.arm_frame_timeout();
            return Input::Empty;
        }
        match self.phase {
            Phase::Closed => Input::Empty,
            Phase::Closing => self.close_with(self.closing_reason(), None),
            Phase::Handshake
                if self
                    .handshake
                    .as_ref()
                    .is_some_and(|h| h.awaits_confirmation()) =>
            {
                self.fail(crate::proto::secure::SecureError::ProofRejected.into())
            }
            Phase::Connecting | Phase::Preamble | Phase::Handshake => {
                self.fail(ProtocolError::ClosedDuringHandshake.into())
            }
            Phase::Open if self.decoder.buffered() > 0 => {
                let buffered = self.decoder.buffered();
                self.fail(ProtocolError::TruncatedStream { buffered }.into())
            }
            // Without the peer's Close, an end of stream is never a clean close.
            Phase::Open => self.fail(ProtocolError::StreamCut.into()),
        }
    }

    /// The peer's end of stream arrived. The session closes once what was
    /// received before it has been handled: call
    /// [`poll_input`](Self::poll_input) until it gives [`Input::Empty`].
    pub fn end_of_stream(&mut self) {
        self.end_of_stream = true;
    }

    // ------------------------------------------------------------ output side

    /// Closes locally. During the handshake with nothing queued it is over
    /// at once. Otherwise what is queued is sent first (after the
    /// handshake, if it is still running), then the Close frame
    /// ([`SessionEvent::SendControl`]), then our end of stream
    /// ([`SessionEvent::ShutdownWrite`]); the session ends at the peer's
    /// Close or end of stream, or when the linger time runs out.
    pub fn close(&mut self, now: Instant, data_queued: bool) {
        match self.phase {
            Phase::Closing | Phase::Closed => {}
            Phase::Connecting | Phase::Preamble | Phase::Handshake => {
                if data_queued {
                    // The handshake keeps its deadline; once open, close.
                    self.close_when_open = true;
                } else {
                    self.close_with(CloseReason::ClosedLocally, None);
                }
            }
            Phase::Open => self.start_closing(now),
        }
    }

    /// Open -> Closing: our Close goes out behind what is queued, and the
    /// linger starts.
    fn start_closing(&mut self, now: Instant) {
        self.phase = Phase::Closing;
        self.deadline = now.checked_add(self.config.linger);
        self.events
            .push_back(SessionEvent::SendControl(FrameKind::Close));
    }

    /// The peer's Close arrived: it sends nothing more. If we were open, we
    /// answer with our own Close; the session ends once ours is written.
    fn peer_close(&mut self, now: Instant) -> Input<'static> {
        self.peer_closed = true;
        match self.phase {
            Phase::Open => {
                self.closed_by_peer = true;
                self.start_closing(now);
                Input::Handled
            }
            Phase::Closing if self.write_shut => self.close_with(self.closing_reason(), None),
            _ => Input::Handled,
        }
    }

    /// How a closing session ends when it ends well.
    fn closing_reason(&self) -> CloseReason {
        if self.closed_by_peer {
            CloseReason::ClosedByPeer
        } else {
            CloseReason::ClosedLocally
        }
    }

    /// Tells the session that everything queued (and transmitted) has been
    /// written. When closing, that is the moment to shut down writing.
    pub fn flushed(&mut self) {
        // The Close frame must have been handed over (and so written) first.
        let close_pending = self
            .events
            .iter()
            .any(|e| matches!(e, SessionEvent::SendControl(FrameKind::Close)));
        if self.phase == Phase::Closing
            && !self.write_shut
            && self.transmit.is_empty()
            && !close_pending
        {
            self.write_shut = true;
            self.events.push_back(SessionEvent::ShutdownWrite);
            if self.peer_closed {
                // Both Close frames are out: nothing is left to wait for.
                self.close_with(self.closing_reason(), None);
            }
        }
    }

    /// Ends the session with `error`, from outside (a message that did not
    /// decode, a socket error). `report` says whether the error still needs
    /// reporting (it goes into [`SessionEvent::Closed`]'s `error`).
    pub fn abort(&mut self, error: Error, report: bool) {
        let reported = report.then(|| error.clone());
        self.close_with(CloseReason::Error(error), reported);
    }

    // ------------------------------------------------------------ time

    /// Acts on the deadline from [`poll_timeout`](Self::poll_timeout) if it
    /// has passed: the handshake timeout, the end of the linger, or a
    /// heartbeat or idle check (which may queue a Ping or close).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.phase {
            Phase::Closed => {}
            Phase::Connecting | Phase::Preamble | Phase::Handshake => {
                let error = Error::Timeout {
                    operation: "handshake",
                    after: self.config.handshake_timeout,
                };
                self.close_with(CloseReason::Timeout, Some(error));
            }
            // Everything went out and we wait for the peer's answer: the
            // close is complete on our side.
            Phase::Closing if self.write_shut || !self.established => {
                self.close_with(self.closing_reason(), None);
            }
            // What was queued, or our Close, never got out: say so.
            Phase::Closing => {
                let error = Error::Timeout {
                    operation: "closing (the linger)",
                    after: self.config.linger,
                };
                self.close_with(CloseReason::Timeout, Some(error));
            }
            Phase::Open => self.check_liveness(now),
        }
    }

    /// Heartbeat and idle timeout of an open session: ping a quiet peer,
    /// close a silent or idle one, and schedule the next check.
    fn check_liveness(&mut self, now: Instant) {
        if self.paused_since.is_some() {
            // Our own backpressure: the timers stand still until resumed.
            self.deadline = None;
            return;
        }
        let (heartbeat, idle) = (self.config.heartbeat, self.config.idle_timeout);
        if let Some(limit) = self.config.frame_timeout
            && self.decoder.buffered() > 0
            && now.saturating_duration_since(self.last_progress) >= limit
        {
            let error = Error::Timeout {
                operation: "a partial frame (no byte arrived)",
                after: limit,
            };
            self.close_with(CloseReason::Timeout, Some(error));
            return;
        }
        let expired = match (heartbeat, idle) {
            (Some(limit), _) if now.saturating_duration_since(self.last_rx) >= limit => {
                Some(("heartbeat", limit))
            }
            (_, Some(limit)) if now.saturating_duration_since(self.last_message_at) >= limit => {
                Some(("idle timeout", limit))
            }
            _ => None,
        };
        if let Some((operation, after)) = expired {
            self.close_with(
                CloseReason::Timeout,
                Some(Error::Timeout { operation, after }),
            );
            return;
        }
        if let Some(limit) = heartbeat
            && !self.pinged
            && now.saturating_duration_since(self.last_rx) >= limit / 3
        {
            self.pinged = true;
            self.events
                .push_back(SessionEvent::SendControl(FrameKind::Ping));
        }
        self.deadline = self.next_liveness_check();
    }

    /// An open session holding part of a frame: make sure a check comes
    /// by the partial-frame deadline.
    fn arm_frame_timeout(&mut self) {
        if self.phase != Phase::Open
            || self.config.frame_timeout.is_none()
            || self.paused_since.is_some()
            || self.decoder.buffered() == 0
        {
            return;
        }
        if let Some(next) = self.next_liveness_check()
            && self.deadline.is_none_or(|d| next < d)
        {
            self.deadline = Some(next);
        }
    }

    /// When an open session's heartbeat, idle or partial-frame timeout next
    /// needs a look.
    fn next_liveness_check(&self) -> Option<Instant> {
        let heartbeat = self.config.heartbeat.and_then(|limit| {
            // Ping after a third of the limit in silence; give up at the limit.
            let wait = if self.pinged { limit } else { limit / 3 };
            self.last_rx.checked_add(wait)
        });
        let idle = self
            .config
            .idle_timeout
            .and_then(|limit| self.last_message_at.checked_add(limit));
        let frame = self
            .config
            .frame_timeout
            .filter(|_| self.decoder.buffered() > 0)
            .and_then(|limit| self.last_progress.checked_add(limit));
        [heartbeat, idle, frame].into_iter().flatten().min()
    }

    // ------------------------------------------------------------ transitions

    fn establish(&mut self, sealer: Option<Sealer>, now: Instant) -> Input<'static> {
        self.phase = Phase::Open;
        self.established = true;
        self.last_rx = now;
        self.last_message_at = now;
        self.deadline = self.next_liveness_check();
        self.events.push_back(SessionEvent::Established { sealer });
        if std::mem::take(&mut self.close_when_open) {
            // The queued data goes out first, then the Close.
            self.start_closing(now);
        }
        Input::Handled
    }

    fn fail(&mut self, error: Error) -> Input<'static> {
        self.abort(error, true);
        Input::Handled
    }

    fn close_with(&mut self, reason: CloseReason, error: Option<Error>) -> Input<'static> {
        if self.phase == Phase::Closed {
            return Input::Empty;
        }
        self.phase = Phase::Closed;
        self.deadline = None;
        self.handshake = None;
        self.decoder.clear();
        self.decoder.release_idle_memory();
        self.events
            .push_back(SessionEvent::Closed { reason, error });
        Input::Handled
    }

    fn peer_name(&self) -> &'static str {
        match self.role {
            Role::Client => "server",
            Role::Server => "client",
        }
    }
}

#[cfg(test)]
mod tests;
