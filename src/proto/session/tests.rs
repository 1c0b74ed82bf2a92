//! The session state machine, driven in memory with a hand-made clock.

use std::time::{Duration, Instant};

use super::*;
use crate::proto::secure::{CipherSuite, ClientStatic, SecretKey, SecureError};
use crate::proto::{OutFrame, SendQueue, control_frame, decode_value, encode_message_to_vec};
use crate::value::Value;

const KEY_A: &str = "0C03EA65238DD2C25EB87CE563868098";
const KEY_B: &str = "1C03EA65238DD2C25EB87CE563868098";

/// A session, its send queue, and what it delivered, as a driver keeps them.
struct End {
    session: Session,
    queue: SendQueue,
    received: Vec<Value>,
    closed: Option<(CloseReason, Option<Error>)>,
    shut_write: bool,
    established: bool,
}

impl End {
    fn new(role: Role, config: &SessionConfig, key: Option<&str>, now: Instant) -> End {
        let handshake = key.map(|k| {
            let key = SecretKey::from_hex(k).unwrap();
            let suite = CipherSuite::for_key(&key);
            match role {
                Role::Client => {
                    Handshake::client(&key, suite, &ClientStatic::from_private([1; 32]))
                }
                Role::Server => Handshake::server(&key, suite),
            }
        });
        End {
            session: Session::new(role, config, handshake, now),
            queue: SendQueue::new(),
            received: Vec::new(),
            closed: None,
            shut_write: false,
            established: false,
        }
    }

    fn send(&mut self, value: &Value) {
        let frame = encode_message_to_vec(value, &Limits::default()).unwrap();
        self.queue.push(OutFrame::Borrowed(&frame)).unwrap();
    }

    /// What goes on the wire now: transmit bytes, then (once it may) the queue.
    fn output(&mut self) -> Vec<u8> {
        self.events(); // a Close to queue, say
        let mut wire = Vec::new();
        self.session.poll_transmit(&mut wire);
        if self.session.can_send() {
            let n = self.queue.peek_into(&mut wire, usize::MAX);
            self.queue.advance(n);
        }
        // Everything it may write is written.
        self.session.flushed();
        self.events();
        wire
    }

    fn input(&mut self, bytes: &[u8], now: Instant) {
        self.session.push(bytes);
        self.drain(now);
    }

    fn drain(&mut self, now: Instant) {
        loop {
            match self.session.poll_input(now) {
                Input::Message(body) => self
                    .received
                    .push(decode_value(body, &Limits::default()).unwrap()),
                Input::Handled => self.events(),
                Input::Empty => break,
            }
        }
        self.events();
    }

    fn events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            match event {
                SessionEvent::Established { sealer } => {
                    self.established = true;
                    if let Some(sealer) = sealer {
                        self.queue.start_sealing(sealer).unwrap();
                    }
                }
                SessionEvent::SendControl(kind) => {
                    self.queue
                        .push(OutFrame::Borrowed(&control_frame(kind)))
                        .unwrap();
                }
                SessionEvent::ShutdownWrite => self.shut_write = true,
                SessionEvent::Closed { reason, error } => {
                    assert!(self.closed.is_none(), "closed twice");
                    self.closed = Some((reason, error));
                }
            }
        }
    }
}

/// Moves bytes both ways until neither side has anything to say.
fn exchange(a: &mut End, b: &mut End, now: Instant) {
    for _ in 0..16 {
        let (to_b, to_a) = (a.output(), b.output());
        if to_b.is_empty() && to_a.is_empty() {
            return;
        }
        b.input(&to_b, now);
        a.input(&to_a, now);
    }
    panic!("the sessions never went quiet");
}

fn pair(client_key: Option<&str>, server_key: Option<&str>) -> (End, End, Instant) {
    let now = crate::test_clock::epoch();
    let config = SessionConfig::default();
    let mut client = End::new(Role::Client, &config, client_key, now);
    let server = End::new(Role::Server, &config, server_key, now);
    client.session.connected(now);
    (client, server, now)
}

/// A client and a server session with `config`, both plain or both with
/// `key`, opened (their handshake exchanged) at the tests' epoch.
fn open_pair(config: &SessionConfig, key: Option<&str>) -> (End, End, Instant) {
    let now = crate::test_clock::epoch();
    let mut client = End::new(Role::Client, config, key, now);
    let mut server = End::new(Role::Server, config, key, now);
    client.session.connected(now);
    exchange(&mut client, &mut server, now);
    (client, server, now)
}

fn error_of(end: &End) -> Error {
    match &end.closed {
        Some((CloseReason::Error(e), Some(reported))) => {
            assert_eq!(e, reported);
            e.clone()
        }
        other => panic!("expected a close with an error, got {other:?}"),
    }
}

#[test]
fn plain_and_keyed_sessions_open_and_carry_messages_both_ways() {
    for key in [None, Some(KEY_A), Some(&*"ab".repeat(32))] {
        let (mut client, mut server, now) = pair(key, key);
        // Queued before the handshake ends: sent (and sealed) once it does.
        client.send(&Value::from("early"));
        exchange(&mut client, &mut server, now);
        assert!(client.established && server.established, "{key:?}");
        assert_eq!(client.queue.is_sealing(), key.is_some());
        for i in 0..3 {
            client.send(&Value::from(i));
            server.send(&Value::from(-i));
        }
        exchange(&mut client, &mut server, now);
        assert_eq!(
            server.received,
            ["early".into(), 0.into(), 1.into(), 2.into()]
        );
        assert_eq!(client.received, [0.into(), (-1).into(), (-2).into()]);
        assert!(client.closed.is_none() && server.closed.is_none());
    }
}

#[test]
fn mismatched_keys_and_modes_close_both_sides_with_the_reason() {
    let (mut client, mut server, now) = pair(Some(KEY_A), Some(KEY_B));
    exchange(&mut client, &mut server, now);
    assert_eq!(error_of(&server), Error::Secure(SecureError::KeyMismatch));
    // The server closes without a word; the client sees its end of stream.
    assert!(client.closed.is_none());
    client.session.end_of_stream();
    client.drain(now);
    assert_eq!(error_of(&client), Error::Secure(SecureError::ProofRejected));
    assert!(!client.established && !server.established);

    let (mut client, mut server, now) = pair(None, Some(KEY_A));
    exchange(&mut client, &mut server, now);
    assert!(matches!(
        error_of(&client),
        Error::Protocol(ProtocolError::PeerRequiresKey { peer: "server" })
    ));
    assert!(matches!(
        error_of(&server),
        Error::Protocol(ProtocolError::PeerHasNoKey { peer: "client" })
    ));
}

#[test]
fn a_refusal_reaches_the_client_and_the_refusing_side_waits_for_its_end() {
    let now = crate::test_clock::epoch();
    let config = SessionConfig::default();
    let mut client = End::new(Role::Client, &config, None, now);
    client.session.connected(now);
    let mut refusal = End {
        session: Session::refusal(&config, "server full (3 connections)", now),
        ..End::new(Role::Server, &config, None, now)
    };
    assert!(refusal.session.is_closing());
    exchange(&mut client, &mut refusal, now);
    match error_of(&client) {
        Error::Protocol(ProtocolError::Refused { peer, reason }) => {
            assert_eq!((peer, &*reason), ("server", "server full (3 connections)"));
        }
        other => panic!("{other}"),
    }
    // The refusing side wrote its preamble, shut down writing, and discards
    // what it reads until the client's end of stream.
    assert!(refusal.shut_write && refusal.closed.is_none());
    refusal.input(b"anything at all", now);
    assert!(refusal.closed.is_none());
    refusal.session.end_of_stream();
    refusal.drain(now);
    assert_eq!(refusal.closed, Some((CloseReason::ClosedLocally, None)));
}

#[test]
fn the_handshake_times_out_plain_links_included() {
    let (mut client, _server, now) = pair(None, None);
    let deadline = client.session.poll_timeout().unwrap();
    assert_eq!(deadline, now + SessionConfig::default().handshake_timeout);
    client
        .session
        .handle_timeout(deadline - Duration::from_millis(1));
    client.events();
    assert!(client.closed.is_none(), "not before the deadline");
    client.session.handle_timeout(deadline);
    client.events();
    assert_eq!(
        client.closed,
        Some((
            CloseReason::Timeout,
            Some(Error::Timeout {
                operation: "handshake",
                after: Duration::from_secs(10)
            })
        ))
    );
    assert_eq!(client.session.poll_timeout(), None);
}

#[test]
fn a_heartbeat_pings_a_quiet_peer_and_closes_a_silent_one() {
    let limit = Duration::from_secs(3);
    let config = SessionConfig::default().with_heartbeat(Some(limit));
    let (mut client, mut server, now) = open_pair(&config, Some(KEY_A));
    let check = client.session.poll_timeout().unwrap();
    assert_eq!(check, now + limit / 3);
    // A third of the limit in silence: a Ping, which the server answers.
    client.session.handle_timeout(check);
    client.events();
    exchange(&mut client, &mut server, check);
    assert!(client.closed.is_none() && server.closed.is_none());
    // The next look is when that ping would have gone unanswered (receipts
    // do not move the timer; the look finds the pong and pings again later).
    assert_eq!(client.session.poll_timeout(), Some(now + limit));
    // The server goes silent: the ping goes unanswered, and at the limit
    // after the last thing received the client gives up.
    let mut t = check;
    while client.closed.is_none() {
        t = client.session.poll_timeout().unwrap();
        client.session.handle_timeout(t);
        client.events();
        let _ = client.output(); // the ping, lost
    }
    assert_eq!(t, check + limit);
    assert!(matches!(
        client.closed,
        Some((
            CloseReason::Timeout,
            Some(Error::Timeout {
                operation: "heartbeat",
                ..
            })
        ))
    ));
}

#[test]
fn an_idle_timeout_counts_messages_not_pings() {
    let idle = Duration::from_secs(5);
    let config = SessionConfig::default().with_idle_timeout(Some(idle));
    let (mut client, mut server, now) = open_pair(&config, None);
    let later = now + Duration::from_secs(3);
    client.send(&Value::from(1));
    exchange(&mut client, &mut server, later);
    // A ping keeps nothing alive for the idle timeout.
    client
        .queue
        .push(OutFrame::Borrowed(&control_frame(FrameKind::Ping)))
        .unwrap();
    exchange(&mut client, &mut server, now + Duration::from_secs(6));
    server.session.handle_timeout(now + idle);
    server.events();
    assert!(server.closed.is_none(), "rescheduled after the message");
    assert_eq!(server.session.poll_timeout(), Some(later + idle));
    server.session.handle_timeout(later + idle);
    server.events();
    assert!(matches!(
        server.closed,
        Some((
            CloseReason::Timeout,
            Some(Error::Timeout {
                operation: "idle timeout",
                ..
            })
        ))
    ));
}

#[test]
fn a_local_close_sends_what_is_queued_then_close_and_the_peer_answers() {
    let (mut client, mut server, now) = pair(Some(KEY_A), Some(KEY_A));
    exchange(&mut client, &mut server, now);
    client.send(&Value::from("last words"));
    client.session.close(now, true);
    assert!(
        !client.shut_write,
        "not before the queue and the Close are written"
    );
    let wire = client.output();
    assert!(client.shut_write);
    // The server gets the message, then the Close: it answers with its own
    // Close, shuts down writing, and is done; so is the client once it reads it.
    server.input(&wire, now);
    assert_eq!(server.received, [Value::from("last words")]);
    let answer = server.output();
    assert!(server.shut_write);
    assert_eq!(server.closed, Some((CloseReason::ClosedByPeer, None)));
    assert!(client.closed.is_none());
    client.input(&answer, now);
    assert_eq!(client.closed, Some((CloseReason::ClosedLocally, None)));
}

#[test]
fn while_closing_what_arrives_is_discarded_until_the_peer_ends() {
    let (mut client, mut server, now) = pair(None, None);
    exchange(&mut client, &mut server, now);
    client.session.close(now, false);
    let wire = client.output();
    // A message the server had sent before it saw the Close is discarded.
    server.send(&Value::from("ignored"));
    let late = server.output();
    client.input(&late, now);
    assert!(client.received.is_empty() && client.closed.is_none());
    // A peer that vanishes without its Close still ends a local close.
    client.session.end_of_stream();
    client.drain(now);
    assert_eq!(client.closed, Some((CloseReason::ClosedLocally, None)));
    let _ = wire;
}

#[test]
fn the_linger_bounds_a_close_that_cannot_flush() {
    let (mut client, mut server, now) = pair(None, None);
    exchange(&mut client, &mut server, now);
    client.send(&Value::from(1));
    client.session.close(now, true);
    let linger = client.session.poll_timeout().unwrap();
    assert_eq!(linger, now + SessionConfig::default().linger);
    client.session.handle_timeout(linger);
    client.events();
    // The message and the Close never got out: the close timed out.
    assert_eq!(
        client.closed,
        Some((
            CloseReason::Timeout,
            Some(Error::Timeout {
                operation: "closing (the linger)",
                after: SessionConfig::default().linger
            })
        ))
    );
}

#[test]
fn a_close_during_the_handshake_sends_what_was_queued_first() {
    let (mut client, mut server, now) = pair(None, None);
    client.session.close(now, false);
    client.events();
    assert_eq!(client.closed, Some((CloseReason::ClosedLocally, None)));

    let (mut client, mut server2, now) = pair(Some(KEY_A), Some(KEY_A));
    client.send(&Value::from("queued"));
    client.session.close(now, true);
    exchange(&mut client, &mut server2, now);
    assert!(client.established && client.shut_write);
    assert_eq!(server2.received, [Value::from("queued")]);
    let _ = &mut server;
}

#[test]
fn ends_of_stream_are_told_apart() {
    // Clean: the Close, then the end of stream.
    let (mut client, mut server, now) = pair(None, None);
    exchange(&mut client, &mut server, now);
    client.send(&Value::from(7));
    client.session.close(now, true);
    let wire = client.output();
    server.session.push(&wire);
    server.session.end_of_stream();
    server.drain(now);
    assert_eq!(server.received, [Value::from(7)]);
    assert_eq!(server.closed, Some((CloseReason::ClosedByPeer, None)));

    // Cut at a frame boundary, for plain and keyed links alike: never clean.
    for key in [None, Some(KEY_A)] {
        let (mut client, mut server, now) = pair(key, key);
        exchange(&mut client, &mut server, now);
        client.send(&Value::from(7));
        let wire = client.output();
        server.session.push(&wire);
        server.session.end_of_stream();
        server.drain(now);
        assert_eq!(server.received, [Value::from(7)]);
        assert_eq!(
            error_of(&server),
            Error::Protocol(ProtocolError::StreamCut),
            "{key:?}"
        );
    }

    // In the middle of a frame.
    let (mut client, mut server, now) = pair(None, None);
    exchange(&mut client, &mut server, now);
    client.send(&Value::from("cut"));
    let wire = client.output();
    server.session.push(&wire[..wire.len() - 1]);
    server.session.end_of_stream();
    server.drain(now);
    assert!(matches!(
        error_of(&server),
        Error::Protocol(ProtocolError::TruncatedStream { .. })
    ));

    // During the handshake.
    let (_client, mut server, now) = pair(None, None);
    server.session.end_of_stream();
    server.drain(now);
    assert!(matches!(
        error_of(&server),
        Error::Protocol(ProtocolError::ClosedDuringHandshake)
    ));
}

#[test]
fn control_frames_must_be_empty() {
    let (mut client, mut server, now) = pair(None, None);
    exchange(&mut client, &mut server, now);
    // A Ping frame (kind 2) with one byte of body.
    server.input(&[2, 0, 0, 0, FrameKind::Ping.to_byte(), 9], now);
    assert!(matches!(
        error_of(&server),
        Error::Protocol(ProtocolError::Malformed(_))
    ));
}

#[test]
fn a_frame_over_the_limit_is_refused_before_it_arrives() {
    let now = crate::test_clock::epoch();
    let limits = Limits {
        max_frame_size: 100,
        ..Limits::default()
    };
    let config = SessionConfig::new(limits);
    let mut client = End::new(Role::Client, &config, None, now);
    let mut server = End::new(Role::Server, &config, None, now);
    client.session.connected(now);
    exchange(&mut client, &mut server, now);
    server.input(&101u32.to_le_bytes(), now);
    assert_eq!(
        error_of(&server),
        Error::FrameTooLarge {
            size: 101,
            limit: 100
        }
    );
}

#[test]
fn peer_text_is_inert_and_a_client_may_not_refuse() {
    // A server's refusal with escape codes and a forged second line: shown
    // escaped, never raw.
    let now = crate::test_clock::epoch();
    let config = SessionConfig::default();
    let mut client = End::new(Role::Client, &config, None, now);
    client.session.connected(now);
    let _ = client.output();
    let mut refusal = Vec::new();
    crate::proto::Preamble {
        version: crate::proto::VERSION,
        flags: crate::proto::FLAG_REFUSED,
        extension: b"full\x1b[31m\n* alice left\x07".to_vec(),
    }
    .encode(&mut refusal)
    .unwrap();
    client.input(&refusal, now);
    let text = error_of(&client).to_string();
    assert!(!text.chars().any(char::is_control), "{text:?}");
    assert!(
        text.ends_with(r"full\u{1b}[31m\n* alice left\u{7}"),
        "{text}"
    );

    // A client that sends a refusal: a protocol violation, its text unrepeated.
    let mut server = End::new(Role::Server, &config, None, now);
    server.input(&refusal, now);
    assert_eq!(
        error_of(&server),
        Error::Protocol(ProtocolError::RefusalFromClient)
    );
}

#[test]
fn peer_text_is_capped() {
    let key = vec![b'k'; 2 * 1024 * 1024];
    let shown = crate::error::inert(&key);
    assert!(shown.len() < 200, "{} bytes", shown.len());
    assert!(shown.ends_with(&format!("... ({} more bytes)", key.len() - 128)));
    // Invalid UTF-8 is escaped byte by byte, valid text kept.
    assert_eq!(
        crate::error::inert(b"ok \xff\xfe \xc3\xa9"),
        r"ok \xff\xfe é"
    );
}

#[test]
fn a_stalled_partial_frame_times_out_but_time_paused_by_us_does_not_count() {
    let limit = Duration::from_secs(2);
    let config = SessionConfig::default().with_frame_timeout(Some(limit));
    let (_client, mut server, now) = open_pair(&config, None);
    // Nothing partial: no frame deadline.
    assert_eq!(server.session.poll_timeout(), None);

    // Half of a 100-byte frame arrives: the deadline is set from it.
    let frame = encode_message_to_vec(&Value::from("x".repeat(95)), &Limits::default()).unwrap();
    let half = frame.len() / 2;
    server.input(&frame[..half], now);
    assert_eq!(server.session.poll_timeout(), Some(now + limit));

    // A byte more a second later is progress: the check moves on.
    let t1 = now + Duration::from_secs(1);
    server.input(&frame[half..half + 1], t1);
    server.session.handle_timeout(now + limit);
    server.events();
    assert!(server.closed.is_none());
    assert_eq!(server.session.poll_timeout(), Some(t1 + limit));

    // We stop reading it for 10 s (our backpressure): nothing fires, and
    // the time does not count once we read again.
    server.session.pause_reading(t1);
    server.session.handle_timeout(t1 + limit);
    server.events();
    assert!(server.closed.is_none());
    assert_eq!(server.session.poll_timeout(), None);
    let t2 = t1 + Duration::from_secs(10);
    server.session.resume_reading(t2);
    assert_eq!(server.session.poll_timeout(), Some(t2 + limit));

    // Then the peer stays silent for the whole limit: closed, and said why.
    server.session.handle_timeout(t2 + limit);
    server.events();
    assert!(matches!(
        server.closed,
        Some((
            CloseReason::Timeout,
            Some(Error::Timeout {
                operation: "a partial frame (no byte arrived)",
                ..
            })
        ))
    ));
}

#[test]
fn a_heartbeat_does_not_count_time_paused_by_us() {
    let limit = Duration::from_secs(3);
    let config = SessionConfig::default().with_heartbeat(Some(limit));
    let (mut client, _server, now) = open_pair(&config, None);
    // Paused right away for a minute: the peer's silence is ours.
    client.session.pause_reading(now);
    client.session.handle_timeout(now + limit / 3);
    client.events();
    let later = now + Duration::from_secs(60);
    client.session.resume_reading(later);
    assert!(client.closed.is_none());
    assert_eq!(client.session.poll_timeout(), Some(later + limit / 3));
}

#[test]
fn a_large_frame_gets_its_whole_buffer_only_within_the_allowance() {
    let limits = Limits::default();
    let mut d = crate::proto::FrameDecoder::new(&limits);
    // The first read needs 4 KiB.
    assert!(d.read_buffer_within(4095).is_none());
    assert_eq!(d.capacity(), 0);
    let buf = d.read_buffer_within(4096).unwrap();
    assert_eq!(buf.len(), 4096);
    // A 1 MiB frame announced and 4 KiB of it in: the buffer grows to hold
    // all of it at once, or not at all.
    let total = 4 + (1usize << 20);
    buf[..4].copy_from_slice(&(1u32 << 20).to_le_bytes());
    d.filled(4096);
    assert_eq!(d.next_frame_size(), Some(total));
    assert!(d.read_buffer_within(total - 4096 - 1).is_none());
    assert_eq!(d.capacity(), 4096);
    assert_eq!(
        d.read_buffer_within(total - 4096).unwrap().len(),
        total - 4096
    );
    assert_eq!(d.capacity(), total);
    d.filled(total - 4096);
    // Taken out without a copy: the buffer goes with the body.
    let (_, range) = d.next_raw_frame_at().unwrap().unwrap();
    assert_eq!(range.len(), 1 << 20);
    let body = d.take_range(range);
    assert_eq!(body.len(), 1 << 20);
    assert_eq!(d.capacity(), 0);
    assert_eq!(d.received(), total as u64);
}
