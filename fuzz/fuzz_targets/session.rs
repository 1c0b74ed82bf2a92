//! The whole connection state machine (`tablenet::proto::session::Session`):
//! both roles, plain and every cipher suite, bytes in arbitrary chunks,
//! timers fired at arbitrary times, local closes and aborts, and a real
//! peer whose output can be delivered intact, cut or with bit flips, mixed
//! with an attacker's own bytes.
//!
//! Input layout: `[config][op, args...]*`
//!
//! ```text
//! config bit 0: the session under test is the client (else the server)
//!        bits 1-2: 0 plain, 1-3 keyed with tablenet_fuzz::SUITES[0..3]
//!        bit 3: (server) a refusal session instead
//!        bits 4-5: limits (tablenet_fuzz::limits_for)
//!        bit 6: heartbeat on; bit 7: idle timeout on
//! ```
//!
//! Invariants checked: nothing after `Closed`, which comes at most once;
//! `Established` at most once and never undone; a closed session takes no
//! input and has no deadline; the receive buffer stays within one frame
//! of the limit; and while only the real peer's bytes arrive, in order and
//! unchanged, what is delivered is exactly a prefix of what it sent.

#![no_main]

use std::hint::black_box;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tablenet::proto::secure::{Role, TAG_LEN};
use tablenet::proto::session::{Input, Session, SessionConfig, SessionEvent};
use tablenet::proto::{
    LENGTH_PREFIX, Limits, MAX_EXTENSION, OutFrame, SendQueue, control_frame, decode_value,
    encode_message_to_vec,
};
use tablenet::{Error, Value};
use tablenet_fuzz::{SUITES, handshake, limits_for, peer_of, take_byte, take_le};

/// Operations per input, at most.
const MAX_OPS: usize = 256;

struct End {
    session: Session,
    queue: SendQueue,
    /// Bytes it wrote and the other side has not read yet.
    out: Vec<u8>,
    sent: Vec<Value>,
    received: Vec<Value>,
    closed: bool,
    established: bool,
}

impl End {
    fn new(session: Session) -> End {
        End {
            session,
            queue: SendQueue::new(),
            out: Vec::new(),
            sent: Vec::new(),
            received: Vec::new(),
            closed: false,
            established: false,
        }
    }

    fn events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            assert!(!self.closed, "an event after Closed: {event:?}");
            match event {
                SessionEvent::Established { sealer } => {
                    assert!(!self.established, "established twice");
                    self.established = true;
                    if let Some(sealer) = sealer {
                        self.queue
                            .start_sealing(sealer)
                            .expect("seals what was queued");
                    }
                }
                SessionEvent::SendControl(kind) => {
                    self.queue
                        .push(OutFrame::Borrowed(&control_frame(kind)))
                        .expect("queues a control frame");
                }
                SessionEvent::ShutdownWrite => {}
                SessionEvent::Closed { reason, error } => {
                    black_box((reason, error));
                    self.closed = true;
                }
            }
        }
        assert_eq!(self.session.is_established(), self.established);
        if self.closed {
            assert!(self.session.is_closed());
            assert!(
                self.session.poll_timeout().is_none(),
                "a closed session has a deadline"
            );
        }
    }

    fn drain(&mut self, now: Instant, limits: &Limits) {
        for _ in 0..100_000 {
            match self.session.poll_input(now) {
                Input::Message(body) => {
                    assert!(!self.closed);
                    // A body may not decode (the peer sent garbage): the
                    // driver then aborts; here any value counts.
                    if let Ok(value) = decode_value(body, limits) {
                        self.received.push(value);
                    } else {
                        self.received.push(Value::Nil);
                    }
                }
                Input::Handled => self.events(),
                Input::Empty => {
                    self.events();
                    return;
                }
            }
        }
        panic!("poll_input never ran dry");
    }

    /// Writes what may be written: the session's bytes, then the queue.
    fn write(&mut self) {
        self.events();
        if self.closed {
            return;
        }
        self.session.poll_transmit(&mut self.out);
        if self.session.can_send() {
            let n = self.queue.peek_into(&mut self.out, usize::MAX);
            self.queue.advance(n);
        }
        if !self.session.can_send() || self.queue.is_empty() {
            self.session.flushed();
        }
        self.events();
    }

    fn send(&mut self, value: Value, limits: &Limits) {
        if let Ok(frame) = encode_message_to_vec(&value, limits) {
            self.queue.push(OutFrame::Borrowed(&frame)).expect("queues");
            self.sent.push(value);
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let config = take_byte(&mut data);
    let role = if config & 1 == 1 {
        Role::Client
    } else {
        Role::Server
    };
    let mode = usize::from((config >> 1) & 3);
    let limits = limits_for(config >> 4);
    let mut session_config = SessionConfig::new(limits)
        .with_handshake_timeout(Duration::from_secs(2))
        .with_linger(Duration::from_secs(1));
    if config & 0x40 != 0 {
        session_config = session_config.with_heartbeat(Some(Duration::from_millis(900)));
    }
    if config & 0x80 != 0 {
        session_config = session_config.with_idle_timeout(Some(Duration::from_secs(3)));
    }
    let handshake = |role: Role| {
        let (key_hex, suite) = SUITES[mode.checked_sub(1)?];
        Some(handshake(role, key_hex, suite))
    };
    let start = Instant::now();
    let mut now = start;
    let refusal = config & 8 != 0 && role == Role::Server;
    let ours = if refusal {
        Session::refusal(&session_config, "fuzzing", now)
    } else {
        Session::new(role, &session_config, handshake(role), now)
    };
    let mut us = End::new(ours);
    let peer_role = peer_of(role);
    let mut peer = End::new(Session::new(
        peer_role,
        &session_config,
        handshake(peer_role),
        now,
    ));
    let mut connected = role == Role::Server;
    if peer_role == Role::Client {
        peer.session.connected(now);
    }
    // Only the real peer's bytes, in order and unchanged, arrived so far.
    let mut faithful = true;
    let mut largest_push = 0;

    for _ in 0..MAX_OPS {
        if data.is_empty() {
            break;
        }
        match take_byte(&mut data) % 13 {
            0 => {
                // The attacker's own bytes.
                let n = take_le(&mut data, 2).min(data.len()).min(64 * 1024);
                let (bytes, rest) = data.split_at(n);
                data = rest;
                if connected {
                    us.session.push(bytes);
                    largest_push = largest_push.max(n);
                    faithful &= n == 0;
                    us.drain(now, &limits);
                }
            }
            1 => {
                // Part of the peer's output, perhaps with one bit flipped.
                peer.write();
                let n = take_le(&mut data, 3).min(peer.out.len());
                let flip = take_byte(&mut data);
                let mut bytes: Vec<u8> = peer.out.drain(..n).collect();
                if flip & 1 == 1 && !bytes.is_empty() {
                    let at = take_le(&mut data, 2) % bytes.len();
                    bytes[at] ^= 1 << (flip >> 5);
                    faithful = false;
                }
                if connected {
                    us.session.push(&bytes);
                    largest_push = largest_push.max(bytes.len());
                    us.drain(now, &limits);
                } else {
                    faithful &= bytes.is_empty();
                }
            }
            2 => {
                // Our output to the peer, whole.
                us.write();
                let bytes = std::mem::take(&mut us.out);
                peer.session.push(&bytes);
                peer.drain(now, &limits);
            }
            3 => {
                // Time passes; timers fire (maybe early: a no-op then).
                now += Duration::from_millis(take_le(&mut data, 2) as u64);
                us.session.handle_timeout(now);
                us.events();
                peer.session.handle_timeout(now);
                peer.events();
            }
            4 => {
                let queued = !us.queue.is_empty();
                us.session.close(now, queued);
                us.events();
            }
            5 => {
                let queued = !peer.queue.is_empty();
                peer.session.close(now, queued);
                peer.events();
            }
            6 => {
                // Our end of stream from the peer (cut, or after its Close).
                faithful &= peer.out.is_empty();
                us.session.end_of_stream();
                us.drain(now, &limits);
            }
            7 => {
                let n = take_le(&mut data, 2);
                let value = match n % 3 {
                    0 => Value::from(n as i64),
                    1 => Value::from("x".repeat(n)),
                    _ => tablenet::table! { "n" => n as i64, "s" => "y".repeat(n % 97) }.into(),
                };
                peer.send(value, &limits);
            }
            8 => {
                let n = take_le(&mut data, 2);
                us.send(Value::from("z".repeat(n)), &limits);
            }
            9 => {
                us.session
                    .abort(Error::Closed, take_byte(&mut data) & 1 == 1);
                us.events();
            }
            10 => {
                us.session.connected(now);
                connected = true;
                us.write();
            }
            11 => {
                us.session.flushed();
                us.events();
            }
            _ => {
                us.write();
            }
        }
        // Memory: a partial frame (or preamble) at most, plus one push that
        // was not looked at yet.
        let frame_limit = limits.max_frame_size + TAG_LEN + LENGTH_PREFIX;
        assert!(
            us.session.buffered() <= frame_limit.max(8 + MAX_EXTENSION) + largest_push,
            "buffered {} with a limit of {frame_limit}",
            us.session.buffered()
        );
        if faithful {
            assert!(
                us.received.len() <= peer.sent.len()
                    && us.received[..] == peer.sent[..us.received.len()],
                "a faithful stream delivered something the peer did not send"
            );
        }
    }
    if us.closed {
        assert_eq!(us.session.poll_input(now), Input::Empty);
        assert!(us.session.poll_event().is_none());
    }
    black_box((&us.received, start.elapsed()));
});
