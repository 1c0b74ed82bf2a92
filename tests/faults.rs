mod util;

// The fault-injection suite: each fault is a real loopback test with
// deadlines, run while the server serves a well-behaved client.
//
// The harness (`Harness`) starts a server network and a well-behaved client
// on a network of its own. Two threads run for the whole test:
// - the *good client* sends `{good = n}` for n = 0, 1, 2, ... about once a
//   millisecond and checks that the server's acknowledgements come back
//   exactly once each, in order;
// - the *pump* polls the server's network: it checks that the good client's
//   messages arrive exactly once each, in order, answers each with an
//   acknowledgement, and hands every other event to the test through a
//   channel.
// `Harness::finish` then checks that the server still serves (new messages
// are acknowledged after the fault), stops the good client and checks that
// every message it sent arrived, in order, and was acknowledged.
//
// Raw peers are std `TcpStream`s on 127.0.0.1 speaking (or not) the
// protocol of docs/PROTOCOL.md by hand. The SIGKILL tests run this test
// binary again as a child process (see `sigkill_child_process`).
//
// The last test (a client dropped during its handshake must still send what
// it queued) came out of the soak test; it needs no harness.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tablenet::proto::{Limits, encode_message_to_vec};
use tablenet::{
    Client, CloseReason, Config, Connection, ConnectionId, Error, Event, EventKind, Network,
    ObjectId, OverflowPolicy, ProtocolError, SendError, Server, Source, Value, table,
};
use util::{PLAIN_PREAMBLE, raw, raw_plain, read_preamble};

/// Upper bound for any one test in this file.
const TEST_BUDGET: Duration = Duration::from_secs(15);
/// Deadline for anything one step of a test waits for.
const WAIT: Duration = Duration::from_secs(10);
/// The good client sends at least this many messages in every test.
const MIN_GOOD: u64 = 30;
/// After the fault, the server must acknowledge this many more good messages.
const PROGRESS: u64 = 10;
/// An AES-128 key for the encrypted variant.
const KEY: &str = "0C03EA65238DD2C25EB87CE563868098";

// ---------------------------------------------------------------- harness

/// State shared by the test, the pump and the good client.
#[derive(Default)]
struct Ctl {
    stop_sending: AtomicBool,
    stop_pump: AtomicBool,
    /// Lets the test stop the pump polling (lossless test).
    gate: Gate,
    /// Good messages queued by the good client.
    sent: AtomicU64,
    /// Good messages the server received, in order.
    received: AtomicU64,
    /// Acknowledgements the good client received, in order.
    acked: AtomicU64,
    failure: Mutex<Option<String>>,
}

impl Ctl {
    fn fail(&self, message: String) {
        let mut failure = self.failure.lock().unwrap();
        if failure.is_none() {
            *failure = Some(message);
        }
    }

    fn check(&self) {
        if let Some(failure) = &*self.failure.lock().unwrap() {
            panic!("well-behaved client check failed: {failure}");
        }
    }

    fn failed(&self) -> bool {
        self.failure.lock().unwrap().is_some()
    }
}

/// The test asks the pump to stop polling; the pump confirms it has stopped
/// and sleeps until asked to go on.
#[derive(Default)]
struct Gate {
    /// (the test asked for a pause, the pump is paused)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gate {
    /// Pump side: if a pause is asked for, confirms it and waits until it is
    /// lifted or `stop` is set (checked every 50 ms).
    fn hold(&self, stop: &AtomicBool) {
        let mut state = self.state.lock().unwrap();
        if !state.0 {
            return;
        }
        state.1 = true;
        self.changed.notify_all();
        while state.0 && !stop.load(Ordering::SeqCst) {
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        state.1 = false;
    }

    /// Test side: asks for a pause and waits until the pump confirms it, or
    /// `check` fails, within `limit`.
    fn pause(&self, limit: Duration, check: impl Fn()) {
        let end = Instant::now() + limit;
        let mut state = self.state.lock().unwrap();
        state.0 = true;
        while !state.1 {
            check();
            let left = end.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting until the pump pauses");
            state = self
                .changed
                .wait_timeout(state, left.min(Duration::from_millis(50)))
                .unwrap()
                .0;
        }
    }

    fn resume(&self) {
        self.state.lock().unwrap().0 = false;
        self.changed.notify_all();
    }
}

fn good_message(n: u64) -> Value {
    table! { "good" => n as i64, "text" => "a well-behaved message", "list" => table![1, 2, 3] }
        .into()
}

fn good_number(packet: &Value) -> Option<u64> {
    packet
        .get("good")
        .and_then(Value::as_i64)
        .and_then(|n| u64::try_from(n).ok())
}

fn ack_number(packet: &Value) -> Option<u64> {
    packet
        .get("ack")
        .and_then(Value::as_i64)
        .and_then(|n| u64::try_from(n).ok())
}

/// Polls the server network: checks and acknowledges the good client's
/// messages, forwards everything else to the test.
fn pump(net: Network, good: Connection, ctl: Arc<Ctl>, tx: mpsc::Sender<Event>) {
    let good_id = good.id();
    let mut expect = 0u64;
    while !ctl.stop_pump.load(Ordering::SeqCst) {
        ctl.gate.hold(&ctl.stop_pump);
        for ev in net.wait_events(Duration::from_millis(5)) {
            match &ev.kind {
                EventKind::Receive {
                    from: Source::Connection(id),
                    packet,
                } if *id == good_id => match good_number(packet) {
                    Some(n) if n == expect => {
                        expect += 1;
                        ctl.received.store(expect, Ordering::SeqCst);
                        if let Err(e) = good.send(&table! { "ack" => n as i64 }.into()) {
                            ctl.fail(format!("the server could not acknowledge {n}: {e}"));
                        }
                    }
                    other => ctl.fail(format!(
                        "the server expected good message {expect}, got {other:?}"
                    )),
                },
                EventKind::ClientClose { connection, .. } if *connection == good_id => {
                    ctl.fail(format!("the good connection closed: {:?}", ev.kind));
                }
                EventKind::Error {
                    object: ObjectId::Connection(id),
                    ..
                } if *id == good_id => {
                    ctl.fail(format!("error on the good connection: {:?}", ev.kind));
                }
                EventKind::Dropped { count } => {
                    ctl.fail(format!("the server's ring dropped {count} events"));
                }
                _ => {
                    let _ = tx.send(ev);
                }
            }
        }
    }
    drop(good);
}

/// The well-behaved client: sends numbered messages about once a
/// millisecond and checks the acknowledgements. Returns the client so that
/// it stays connected until the harness is done.
fn good_client(net: Network, client: Client, ctl: Arc<Ctl>) -> Client {
    let id = client.id();
    let mut next = 0u64;
    let mut acked = 0u64;
    let mut next_send = Instant::now();
    let mut final_deadline: Option<Instant> = None;
    while !ctl.failed() {
        let now = Instant::now();
        if ctl.stop_sending.load(Ordering::SeqCst) && next >= MIN_GOOD {
            let deadline = *final_deadline.get_or_insert(now + WAIT);
            if acked == next {
                break;
            }
            if now >= deadline {
                ctl.fail(format!(
                    "only {acked} of {next} good messages were acknowledged"
                ));
                break;
            }
        } else if now >= next_send {
            match client.send(&good_message(next)) {
                Ok(()) => {
                    next += 1;
                    ctl.sent.store(next, Ordering::SeqCst);
                }
                // A well-behaved client backs off and tries again.
                Err(SendError::QueueFull { .. }) => {}
                Err(e) => {
                    ctl.fail(format!("the good client's send {next} failed: {e}"));
                    break;
                }
            }
            next_send = now + Duration::from_millis(1);
        }
        let wait = if final_deadline.is_some() {
            Duration::from_millis(5)
        } else {
            next_send
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(5))
        };
        for ev in net.wait_events(wait) {
            match ev.kind {
                EventKind::Receive {
                    from: Source::Client(c),
                    packet,
                } if c == id => match ack_number(&packet) {
                    Some(n) if n == acked => {
                        acked += 1;
                        ctl.acked.store(acked, Ordering::SeqCst);
                    }
                    other => ctl.fail(format!(
                        "the good client expected acknowledgement {acked}, got {other:?}"
                    )),
                },
                EventKind::Connected { result: Ok(()), .. } | EventKind::Drained { .. } => {}
                other => ctl.fail(format!("the good client saw {other:?}")),
            }
        }
    }
    client
}

struct Harness {
    name: &'static str,
    start: Instant,
    snet: Network,
    server: Server,
    cnet: Network,
    good_id: ConnectionId,
    ctl: Arc<Ctl>,
    events: mpsc::Receiver<Event>,
    pump: Option<JoinHandle<()>>,
    good: Option<JoinHandle<Client>>,
}

impl Harness {
    fn new(name: &'static str, cfg: Config, key: Option<&str>) -> Harness {
        let start = Instant::now();
        let snet = Network::with_config(cfg).unwrap();
        let server = snet.server("127.0.0.1", 0, key).unwrap();
        let cnet = Network::new();
        let client = cnet.client("127.0.0.1", server.port(), key).unwrap();
        client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
        let good = util::accept(&snet);
        let good_id = good.id();
        let ctl = Arc::new(Ctl::default());
        let (tx, events) = mpsc::channel();
        let pump = {
            let (net, ctl) = (snet.clone(), ctl.clone());
            std::thread::spawn(move || pump(net, good, ctl, tx))
        };
        let good = {
            let (net, ctl) = (cnet.clone(), ctl.clone());
            std::thread::spawn(move || good_client(net, client, ctl))
        };
        Harness {
            name,
            start,
            snet,
            server,
            cnet,
            good_id,
            ctl,
            events,
            pump: Some(pump),
            good: Some(good),
        }
    }

    fn port(&self) -> u16 {
        self.server.port()
    }

    /// The next event that is not the good client's, or `None` after `timeout`.
    fn try_next(&self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            self.ctl.check();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self
                .events
                .recv_timeout(left.min(Duration::from_millis(20)))
            {
                Ok(ev) => return Some(ev),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the pump stopped"),
            }
        }
    }

    /// The next event before `deadline`; panics naming `what` after it.
    fn next_before(&self, what: &str, deadline: Instant) -> Event {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.try_next(left) {
            Some(ev) => ev,
            None => panic!("{}: deadline passed waiting for {what}", self.name),
        }
    }

    /// Events until one matches `pred` (within `WAIT`): that one, and the
    /// others seen before it.
    fn wait_for(&self, what: &str, mut pred: impl FnMut(&Event) -> bool) -> (Event, Vec<Event>) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let ev = self.next_before(what, deadline);
            if pred(&ev) {
                return (ev, seen);
            }
            seen.push(ev);
        }
    }

    /// Waits for the `Connect` of a raw peer and returns its handle.
    fn accept(&self) -> Connection {
        let (ev, others) =
            self.wait_for("a Connect", |e| matches!(e.kind, EventKind::Connect { .. }));
        assert!(
            others.is_empty(),
            "{}: before the Connect: {others:?}",
            self.name
        );
        match ev.kind {
            EventKind::Connect { connection, server } => {
                assert_eq!(server, self.server.id());
                connection
            }
            _ => unreachable!(),
        }
    }

    /// Waits until `cond` holds (polled every 2 ms), within `limit`.
    fn wait_until(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        util::wait_until(&format!("{}: {what}", self.name), limit, || {
            self.ctl.check();
            cond()
        });
    }

    /// Waits until the server has acknowledged `more` good messages beyond
    /// what it had acknowledged when called: it is still serving.
    fn assert_serving(&self, more: u64) {
        let from = self.ctl.acked.load(Ordering::SeqCst);
        let ctl = &self.ctl;
        self.wait_until(
            "the server acknowledges the good client's new messages",
            WAIT,
            || ctl.acked.load(Ordering::SeqCst) >= from + more,
        );
    }

    /// Stops the pump polling the server (the ring is left to fill) and
    /// waits until it has.
    fn pause(&self) {
        self.ctl.gate.pause(WAIT, || self.ctl.check());
    }

    fn resume(&self) {
        self.ctl.gate.resume();
    }

    /// The well-behaved client's check; returns the events not yet taken.
    fn finish(mut self) -> Vec<Event> {
        self.assert_serving(PROGRESS);
        self.ctl.stop_sending.store(true, Ordering::SeqCst);
        let client = self.good.take().unwrap().join().unwrap();
        self.ctl.check();
        let sent = self.ctl.sent.load(Ordering::SeqCst);
        let received = self.ctl.received.load(Ordering::SeqCst);
        let acked = self.ctl.acked.load(Ordering::SeqCst);
        assert_eq!(received, sent, "{}: good messages received", self.name);
        assert_eq!(acked, sent, "{}: good messages acknowledged", self.name);
        assert!(
            client.is_connected(),
            "{}: the good client lost its server",
            self.name
        );
        assert!(
            self.server.connections().contains(&self.good_id),
            "{}: the good connection is gone",
            self.name
        );
        self.ctl.stop_pump.store(true, Ordering::SeqCst);
        self.pump.take().unwrap().join().unwrap();
        self.ctl.check();
        let rest: Vec<Event> = self.events.try_iter().collect();
        drop(client);
        self.cnet.shutdown(Duration::from_secs(2));
        self.snet.shutdown(Duration::from_secs(2));
        let took = self.start.elapsed();
        println!(
            "{}: the well-behaved client sent {sent} messages, all received and acknowledged in order; {took:?}",
            self.name
        );
        assert!(took < TEST_BUDGET, "{}: took {took:?}", self.name);
        rest
    }
}

// ---------------------------------------------------------------- raw peers

/// Reads until the server closes the connection (end of stream or reset);
/// returns the bytes read. Panics if it stays open until `deadline`.
fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> usize {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the server did not close the connection");
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                return total;
            }
            Err(e) => panic!("the server did not close the connection: {e}"),
        }
    }
}

/// A frame (length prefix, kind byte, body) with `body`.
fn message_frame(body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len() + 1).unwrap();
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.push(1);
    frame.extend_from_slice(body);
    frame
}

/// xorshift64*: reproducible noise without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() >> 32) as u8).collect()
    }
}

/// Takes the `Error` about a connection that never opened, after checking
/// that nothing else happened first (no Connect for it).
fn handshake_error(h: &Harness, what: &str) -> Error {
    let (ev, others) = h.wait_for(what, |e| matches!(e.kind, EventKind::Error { .. }));
    assert!(
        others.is_empty(),
        "{}: before the error: {others:?}",
        h.name
    );
    let EventKind::Error { object, error, .. } = ev.kind else {
        unreachable!()
    };
    assert!(
        matches!(object, ObjectId::Connection(id) if id != h.good_id),
        "{}: error about {object:?}",
        h.name
    );
    error
}

/// Takes the `Error` and then the `ClientClose` of the open connection
/// `conn`; returns the error.
fn error_and_close(h: &Harness, conn: &Connection) -> Error {
    let (ev, others) = h.wait_for("an Error", |e| matches!(e.kind, EventKind::Error { .. }));
    assert!(
        others.is_empty(),
        "{}: before the error: {others:?}",
        h.name
    );
    let EventKind::Error { object, error, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(object, ObjectId::Connection(conn.id()));
    let (ev, others) = h.wait_for("the ClientClose", |e| {
        matches!(e.kind, EventKind::ClientClose { .. })
    });
    assert!(
        others.is_empty(),
        "{}: before the close: {others:?}",
        h.name
    );
    let EventKind::ClientClose {
        connection,
        server,
        reason,
    } = ev.kind
    else {
        unreachable!()
    };
    assert_eq!((connection, server), (conn.id(), h.server.id()));
    assert_eq!(reason, CloseReason::Error(error.clone()));
    assert!(!conn.is_open());
    assert_eq!(
        h.server.connection_count(),
        1,
        "only the good connection is left"
    );
    error
}

// ---------------------------------------------------------------- garbage bytes

fn garbage(key: Option<&str>, name: &'static str) {
    let h = Harness::new(name, Config::default(), key);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut junk = rng.bytes(64 * 1024);
    junk[0] = 0x00; // never 'T'
    let mut peer = raw(h.port());
    // The server may close (and reset) before it has all of it.
    let _ = peer.write_all(&junk);
    let error = handshake_error(&h, "the error about the garbage");
    assert!(
        matches!(&error, Error::Protocol(ProtocolError::BadMagic { found, .. }) if found.first() == Some(&0)),
        "{error:?}"
    );
    let read = read_until_closed(&mut peer, Instant::now() + WAIT);
    // At most the server's preamble (8 bytes, 41 with a key) before the close.
    assert!(read <= 41, "read {read} bytes");
    assert_eq!(h.server.connection_count(), 1);
    println!("{name}: {error}");
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn garbage_bytes_are_refused_and_the_connection_closed() {
    garbage(None, "garbage bytes");
}

#[test]
fn garbage_bytes_to_an_encrypted_server_are_refused() {
    garbage(Some(KEY), "garbage bytes (encrypted server)");
}

// ---------------------------------------------------------------- HTTP request

#[test]
fn an_http_request_is_refused_as_http() {
    let h = Harness::new("HTTP request", Config::default(), None);
    let mut peer = raw(h.port());
    let _ = peer.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: faults\r\nAccept: */*\r\n\r\n",
    );
    let error = handshake_error(&h, "the error about the HTTP request");
    assert!(
        matches!(&error, Error::Protocol(ProtocolError::BadMagic { .. })),
        "{error:?}"
    );
    assert!(error.to_string().contains("HTTP"), "{error}");
    read_until_closed(&mut peer, Instant::now() + WAIT);
    println!("HTTP request: {error}");
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

// ---------------------------------------------------------------- 4 GiB length

#[test]
fn a_four_gib_length_prefix_is_refused_from_the_prefix() {
    let h = Harness::new("4 GiB length prefix", Config::default(), None);
    let mut peer = raw_plain(h.port());
    let conn = h.accept();
    // The prefix alone must be enough: then a few body bytes, and the
    // connection stays open on our side.
    peer.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x05, 0x00])
        .unwrap();
    let error = error_and_close(&h, &conn);
    assert_eq!(
        error,
        Error::FrameTooLarge {
            size: u64::from(u32::MAX),
            limit: Limits::DEFAULT_MAX_FRAME_SIZE
        }
    );
    read_until_closed(&mut peer, Instant::now() + WAIT);
    println!("4 GiB length prefix: {error}");
    drop(conn);
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

// ---------------------------------------------------------------- half a frame

#[test]
fn a_frame_cut_in_half_then_closed_is_a_truncated_stream() {
    let h = Harness::new("frame cut in half", Config::default(), None);
    let mut peer = raw_plain(h.port());
    let conn = h.accept();
    let value: Value = table! { "cut" => "x".repeat(1000), "n" => 1 }.into();
    let frame = encode_message_to_vec(&value, &Limits::default()).unwrap();
    let half = frame.len() / 2;
    peer.write_all(&frame[..half]).unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let error = error_and_close(&h, &conn);
    assert_eq!(
        error,
        Error::Protocol(ProtocolError::TruncatedStream { buffered: half })
    );
    read_until_closed(&mut peer, Instant::now() + WAIT);
    println!("frame cut in half: {error}");
    drop(conn);
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

// ---------------------------------------------------------------- 1,000,000 nested tables

#[test]
fn a_million_nested_tables_are_refused_without_a_crash() {
    const DEPTH: usize = 1_000_000;
    let h = Harness::new("1,000,000 nested tables", Config::default(), None);
    let mut peer = raw_plain(h.port());
    let conn = h.accept();
    // {{{...{}...}}}: each table has a sequence of one element (the next
    // table) and an empty hash part; the innermost is empty.
    let mut body = Vec::with_capacity(3 * DEPTH);
    for _ in 0..DEPTH - 1 {
        body.extend_from_slice(&[5, 1]);
    }
    body.extend_from_slice(&[5, 0, 0]);
    body.resize(body.len() + DEPTH - 1, 0);
    let frame = message_frame(&body);
    assert!(frame.len() - 4 < Limits::DEFAULT_MAX_FRAME_SIZE);
    let sent_at = Instant::now();
    peer.write_all(&frame).unwrap();
    let error = error_and_close(&h, &conn);
    assert_eq!(
        error,
        Error::TooDeep {
            limit: Limits::DEFAULT_MAX_DEPTH
        }
    );
    println!(
        "1,000,000 nested tables ({} B frame): {error}, {:?} after sending",
        frame.len(),
        sent_at.elapsed()
    );
    read_until_closed(&mut peer, Instant::now() + WAIT);
    drop(conn);
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

// ---------------------------------------------------------------- a thousand in a burst

/// What the server reported during the burst.
#[derive(Default)]
struct Burst {
    connects: HashMap<ConnectionId, Connection>,
    closes: HashSet<ConnectionId>,
    errors: HashSet<ObjectId>,
}

impl Burst {
    fn take(&mut self, h: &Harness, ev: Event) {
        match ev.kind {
            EventKind::Connect { connection, server } => {
                assert_eq!(server, h.server.id());
                let id = connection.id();
                // Keep the handle: a dropped one would close it from our side.
                assert!(
                    self.connects.insert(id, connection).is_none(),
                    "{id:?} twice"
                );
            }
            EventKind::ClientClose {
                connection, reason, ..
            } => {
                assert_eq!(reason, CloseReason::ClosedByPeer, "{connection:?}");
                assert!(
                    self.closes.insert(connection),
                    "{connection:?} closed twice"
                );
            }
            EventKind::Error { object, error, .. } => {
                assert!(
                    matches!(
                        error,
                        Error::Protocol(ProtocolError::ClosedDuringHandshake) | Error::Io { .. }
                    ),
                    "{object:?}: {error:?}"
                );
                assert!(self.errors.insert(object), "two errors about {object:?}");
            }
            other => panic!("unexpected server event {other:?}"),
        }
    }
}

#[test]
fn a_thousand_clients_connecting_and_disconnecting_in_a_burst() {
    // Per wave: FULL tablenet clients that connect and drop at once (their
    // handshake completes: a Connect and a ClientClose each), and RAW TCP
    // connections closed at once without a byte (an Error each, no
    // Connect). 5 waves of 200: 1,000 clients, far below the fd limit.
    const WAVES: usize = 5;
    const FULL: usize = 100;
    const RAW: usize = 100;
    // Every failure reported on its own (not summed up), to check each.
    let mut cfg = Config::default();
    cfg.failure_reports_per_second = u32::MAX;
    let h = Harness::new("a thousand clients in a burst", cfg, None);
    let bnet = Network::new();
    let mut burst = Burst::default();
    let start = Instant::now();
    for _ in 0..WAVES {
        let clients: Vec<Client> = (0..FULL)
            .map(|_| bnet.client("127.0.0.1", h.port(), None).unwrap())
            .collect();
        for _ in 0..RAW {
            drop(TcpStream::connect(("127.0.0.1", h.port())).unwrap());
        }
        for client in clients {
            client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
            drop(client);
        }
        // Drain both networks between waves.
        while let Some(ev) = h.try_next(Duration::ZERO) {
            burst.take(&h, ev);
        }
        for ev in bnet.poll_events() {
            assert!(
                matches!(
                    ev.kind,
                    EventKind::Connected { result: Ok(()), .. } | EventKind::ServerClose { .. }
                ),
                "{ev:?}"
            );
        }
    }
    let burst_took = start.elapsed();
    let deadline = Instant::now() + WAIT;
    while burst.connects.len() < WAVES * FULL
        || burst.closes.len() < burst.connects.len()
        || burst.errors.len() < WAVES * RAW
    {
        let what = format!(
            "all events ({} Connect, {} ClientClose, {} Error so far)",
            burst.connects.len(),
            burst.closes.len(),
            burst.errors.len()
        );
        let ev = h.next_before(&what, deadline);
        burst.take(&h, ev);
    }
    h.wait_until(
        "the server has no connection but the good one",
        WAIT,
        || h.server.connection_count() == 1,
    );
    assert_eq!(burst.connects.len(), WAVES * FULL);
    let opened: HashSet<ConnectionId> = burst.connects.keys().copied().collect();
    assert_eq!(burst.closes, opened, "every Connect has its ClientClose");
    assert_eq!(burst.errors.len(), WAVES * RAW);
    for object in &burst.errors {
        let ObjectId::Connection(id) = object else {
            panic!("error about {object:?}")
        };
        assert!(
            !opened.contains(id),
            "an opened connection also failed: {id:?}"
        );
    }
    println!(
        "burst: {} clients in {burst_took:?}; {} Connect = {} ClientClose, {} handshake errors; all settled after {:?}",
        WAVES * (FULL + RAW),
        burst.connects.len(),
        burst.closes.len(),
        burst.errors.len(),
        start.elapsed()
    );
    drop(burst);
    bnet.shutdown(Duration::from_secs(2));
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

// ---------------------------------------------------------------- idle sockets

#[test]
fn two_hundred_idle_sockets_are_closed_after_the_handshake_timeout() {
    const IDLE: usize = 200;
    let timeout = Duration::from_millis(500);
    let mut cfg = Config::default();
    cfg.handshake_timeout = timeout;
    // Every failure reported on its own (not summed up), to check each.
    cfg.failure_reports_per_second = u32::MAX;
    let h = Harness::new("200 idle sockets", cfg, None);
    let mut peers: Vec<(TcpStream, Instant)> = (0..IDLE)
        .map(|_| {
            let stream = raw(h.port());
            (stream, Instant::now())
        })
        .collect();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(5);
    let mut lifetimes = Vec::with_capacity(IDLE);
    for (stream, connected) in &mut peers {
        let read = read_until_closed(stream, deadline);
        assert_eq!(read, 8, "an idle socket reads the preamble, then the close");
        lifetimes.push(connected.elapsed());
    }
    let all_closed = start.elapsed();
    let shortest = lifetimes.iter().min().copied().unwrap();
    assert!(
        shortest >= timeout - Duration::from_millis(5),
        "an idle socket was closed after {shortest:?}, before the {timeout:?} timeout"
    );
    let mut timed_out: HashSet<ObjectId> = HashSet::new();
    let deadline = Instant::now() + WAIT;
    while timed_out.len() < IDLE {
        let ev = h.next_before("200 handshake timeouts", deadline);
        match ev.kind {
            EventKind::Error {
                object,
                error: Error::Timeout { operation, after },
                ..
            } => {
                assert_eq!((operation, after), ("handshake", timeout));
                assert!(matches!(object, ObjectId::Connection(id) if id != h.good_id));
                assert!(timed_out.insert(object), "{object:?} timed out twice");
            }
            other => panic!("unexpected server event {other:?}"),
        }
    }
    assert_eq!(h.server.connection_count(), 1);
    println!(
        "200 idle sockets: all closed {all_closed:?} after the last connected; lifetimes {shortest:?} ..= {:?}",
        lifetimes.iter().max().unwrap()
    );
    drop(peers);
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

// ---------------------------------------------------------------- a peer that stops reading

#[test]
fn a_client_that_stops_reading_hits_the_queue_limit_and_harms_nobody() {
    const LIMIT: usize = 1 << 20;
    let mut cfg = Config::default();
    cfg.send_queue_bytes = LIMIT;
    let h = Harness::new("client that stops reading", cfg, None);
    // A small receive buffer, set before connecting, so the kernel holds
    // little of what the server sends.
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], h.port())).into())
        .unwrap();
    let mut peer: TcpStream = socket.into();
    peer.set_read_timeout(Some(WAIT)).unwrap();
    peer.write_all(PLAIN_PREAMBLE).unwrap();
    read_preamble(&mut peer);
    let slow = h.accept();
    let id = slow.id();

    let blob = vec![0xA5u8; 64 * 1024];
    let big = |n: usize| -> Value { table! { "n" => n as i64, "blob" => blob.clone() }.into() };
    let frame = encode_message_to_vec(&big(usize::MAX >> 1), &Limits::default())
        .unwrap()
        .len();
    let bound = LIMIT + frame;
    let mut accepted = 0usize;
    let mut refusals = 0usize;
    let mut max_queued = 0usize;
    let deadline = Instant::now() + WAIT;
    // Send until refused and the queue then keeps its size (util::STALL).
    loop {
        assert!(Instant::now() < deadline, "the queue never stalled");
        assert!(
            accepted < 2000,
            "2000 frames accepted for a peer that never reads"
        );
        let refused = match h.server.send_to(id, &big(accepted)) {
            Ok(()) => {
                accepted += 1;
                false
            }
            Err(SendError::QueueFull { queued, limit }) => {
                refusals += 1;
                assert_eq!(limit, LIMIT);
                assert!(queued + frame > LIMIT, "refused with room: {queued} queued");
                true
            }
            Err(e) => panic!("send {accepted}: {e:?}"),
        };
        let queued = h.server.queued_bytes(id).unwrap();
        assert!(queued <= bound, "{queued} bytes queued, bound {bound}");
        max_queued = max_queued.max(queued);
        if refused {
            let left = deadline.saturating_duration_since(Instant::now());
            if !util::queue_moved(left, || h.server.queued_bytes(id).unwrap_or(0)) {
                break;
            }
        }
    }
    // Keep trying, one round per message the good client has acknowledged
    // meanwhile: sends to the full queue report failure, the queue stays
    // bounded, and the good client is still served.
    let mut failed = 0usize;
    for _ in 0..PROGRESS {
        // The kernel may still take a little more now and then.
        match h.server.send(&big(accepted), &[id]) {
            0 => failed += 1,
            _ => accepted += 1,
        }
        match h.server.send_to(id, &big(accepted)) {
            Ok(()) => accepted += 1,
            Err(SendError::QueueFull { .. }) => failed += 1,
            Err(e) => panic!("send {accepted}: {e:?}"),
        }
        let queued = h.server.queued_bytes(id).unwrap();
        assert!(queued <= bound, "{queued} bytes queued, bound {bound}");
        max_queued = max_queued.max(queued);
        h.assert_serving(1);
    }
    assert!(failed > 0, "no send to the full queue was refused");
    assert!(slow.is_open(), "refused sends must not harm the connection");
    assert_eq!(h.server.connection_count(), 2);
    // Drained events may have come while the kernel took more of the queue.
    while let Some(ev) = h.try_next(Duration::ZERO) {
        assert!(
            matches!(ev.kind, EventKind::Drained { object } if object == ObjectId::Connection(id)),
            "{ev:?}"
        );
    }
    println!(
        "stopped reader: {accepted} frames of {frame} B accepted, {refusals} + {failed} refused, \
         queue high-water {max_queued} B (limit {LIMIT} B + one frame)"
    );
    // The peer goes away with unread data: the server closes its side and
    // frees the queue.
    drop(peer);
    let (ev, others) = h.wait_for("the stopped reader's ClientClose", |e| {
        matches!(e.kind, EventKind::ClientClose { .. })
    });
    for other in others {
        assert!(
            matches!(other.kind, EventKind::Error { object, .. } | EventKind::Drained { object } if object == ObjectId::Connection(id)),
            "{other:?}"
        );
    }
    let EventKind::ClientClose {
        connection, reason, ..
    } = ev.kind
    else {
        unreachable!()
    };
    assert_eq!(connection, id);
    println!("stopped reader closed: {reason}");
    assert_eq!(h.server.queued_bytes(id), None);
    assert_eq!(
        slow.queued_bytes(),
        0,
        "a closed connection's queue is freed"
    );
    assert!(matches!(slow.send(&big(0)), Err(SendError::Closed)));
    drop(slow);
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

// ---------------------------------------------------------------- SIGKILL

/// Set in the child process of the SIGKILL tests: `client:PORT` (a client
/// of the server on PORT) or `server` (a server that echoes).
const CHILD_ENV: &str = "TABLENET_FAULT_CHILD";
/// What the child prints once it is ready to be killed.
const CHILD_READY: &str = "TABLENET-FAULT-CHILD-READY";
const CHILD_MESSAGES: i64 = 3;

/// Not a test of its own: the SIGKILL tests run this test binary again
/// with only this test selected and `TABLENET_FAULT_CHILD` set, to act as a
/// tablenet peer in another process. Without the variable it does nothing.
#[test]
fn sigkill_child_process() {
    let Ok(role) = std::env::var(CHILD_ENV) else {
        return;
    };
    let net = Network::new();
    // Kept until the process is killed.
    let mut keep: Vec<Connection> = Vec::new();
    let _client;
    let _server;
    if let Some(port) = role.strip_prefix("client:") {
        let port: u16 = port.parse().unwrap();
        let client = net.client("127.0.0.1", port, None).unwrap();
        client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
        for i in 0..CHILD_MESSAGES {
            client.send(&table! { "child" => i }.into()).unwrap();
        }
        util::wait_until("the child has sent everything", WAIT, || {
            client.queued_bytes() == 0
        });
        println!("\n{CHILD_READY}");
        _client = client;
    } else {
        assert_eq!(role, "server");
        let server = net.server("127.0.0.1", 0, None).unwrap();
        println!("\n{CHILD_READY} {}", server.port());
        _server = server;
    }
    std::io::stdout().flush().unwrap();
    // Serve (the server echoes) until killed; bounded, in case the parent
    // is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for ev in net.wait_events(Duration::from_millis(50)) {
            match ev.kind {
                EventKind::Connect { connection, .. } => keep.push(connection),
                EventKind::Receive { from, packet } => {
                    if let Some(conn) = keep.iter().find(|c| from == Source::Connection(c.id())) {
                        conn.send(&packet).unwrap();
                    }
                }
                _ => {}
            }
        }
    }
    panic!("the child was not killed");
}

/// A child process running `sigkill_child_process` as `role`, and the
/// lines of its standard output.
fn spawn_child(role: &str) -> (std::process::Child, mpsc::Receiver<String>, JoinHandle<()>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines, reader)
}

/// Waits for the child's ready line; returns what follows the marker.
fn child_ready(lines: &mpsc::Receiver<String>, deadline: Instant) -> String {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if let Some(at) = line.find(CHILD_READY) {
                    return line[at + CHILD_READY.len()..].trim().to_string();
                }
            }
            Err(e) => panic!("the child never said it was ready: {e:?}"),
        }
    }
}

#[test]
fn a_client_killed_with_sigkill_gives_a_client_close_event() {
    let h = Harness::new("client killed with SIGKILL", Config::default(), None);
    let (mut child, lines, reader) = spawn_child(&format!("client:{}", h.port()));
    // Its connection and its messages arrive at the server...
    let deadline = Instant::now() + WAIT;
    let conn = h.accept();
    for i in 0..CHILD_MESSAGES {
        let ev = h.next_before("the child's messages", deadline);
        match ev.kind {
            EventKind::Receive {
                from: Source::Connection(from),
                packet,
            } => {
                assert_eq!(from, conn.id());
                assert_eq!(packet.get("child").and_then(Value::as_i64), Some(i));
            }
            other => panic!("unexpected server event {other:?}"),
        }
    }
    // ...and it says it is ready.
    child_ready(&lines, deadline);
    child.kill().unwrap(); // SIGKILL on Unix
    let killed = Instant::now();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    let (ev, others) = h.wait_for("the killed peer's ClientClose", |e| {
        matches!(e.kind, EventKind::ClientClose { .. })
    });
    let EventKind::ClientClose {
        connection, reason, ..
    } = ev.kind
    else {
        unreachable!()
    };
    assert_eq!(connection, conn.id());
    for other in &others {
        assert!(
            matches!(other.kind, EventKind::Error { object, .. } if object == ObjectId::Connection(conn.id())),
            "{other:?}"
        );
    }
    println!(
        "SIGKILL (client): child {status}; ClientClose ({reason}) {:?} after the kill",
        killed.elapsed()
    );
    assert!(!conn.is_open());
    assert!(matches!(
        conn.send(&table! {}.into()),
        Err(SendError::Closed)
    ));
    drop(conn);
    reader.join().unwrap();
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn a_server_killed_with_sigkill_gives_a_server_close_event() {
    // The harness's server serves the good client meanwhile; the killed
    // peer is a server in the child, and our client of it must learn.
    let h = Harness::new("server killed with SIGKILL", Config::default(), None);
    let (mut child, lines, reader) = spawn_child("server");
    let port: u16 = child_ready(&lines, Instant::now() + WAIT).parse().unwrap();
    let knet = Network::new();
    let client = knet.client("127.0.0.1", port, None).unwrap();
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let ping: Value = table! { "ping" => 1 }.into();
    client.send(&ping).unwrap();
    let (from, packet) = util::receive(&knet);
    assert_eq!((from, packet), (Source::Client(client.id()), ping));
    child.kill().unwrap(); // SIGKILL on Unix
    let killed = Instant::now();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    let reason = util::server_close(&knet, client.id());
    println!(
        "SIGKILL (server): child {status}; ServerClose ({reason}) {:?} after the kill",
        killed.elapsed()
    );
    assert!(!client.is_connected());
    assert!(matches!(
        client.send(&table! {}.into()),
        Err(SendError::Closed)
    ));
    drop(client);
    knet.shutdown(Duration::from_secs(2));
    reader.join().unwrap();
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

// ---------------------------------------------------------------- ring overflow

fn numbered(n: usize, pad: usize) -> Value {
    table! { "n" => n as i64, "pad" => vec![b'p'; pad] }.into()
}

#[test]
fn ring_overflow_overwrite_reports_the_exact_drop_count() {
    const N: usize = 1000;
    const CAPACITY: usize = 100;
    let h = Harness::new("ring overflow, overwrite", Config::default(), None);
    // The ring under test belongs to a second server network that nobody
    // polls while the flood arrives; the harness's server keeps serving the
    // good client meanwhile.
    let mut cfg = Config::default();
    cfg.event_capacity = CAPACITY;
    cfg.overflow = OverflowPolicy::Overwrite; // what is tested (Rust's default is lossless)
    // No per-connection share: the one flooder may overwrite the whole ring
    // (with a share it would be paused instead; tests/pressure.rs).
    cfg.connection_events = usize::MAX;
    let vnet = Network::with_config(cfg).unwrap();
    let victim = vnet.server("127.0.0.1", 0, None).unwrap();
    let fnet = Network::new();
    let flooder = fnet.client("127.0.0.1", victim.port(), None).unwrap();
    flooder.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let conn = util::accept(&vnet); // taken, so no handle is overwritten
    for n in 0..N {
        flooder.send(&numbered(n, 16)).unwrap();
    }
    flooder.disconnect(); // after flushing all N
    h.wait_until("the victim saw the close", WAIT, || {
        victim.connection_count() == 0
    });
    // Barrier: the victim writes a new connection's preamble only after it
    // handed every earlier event to the ring (see tests/net_ring.rs).
    let mut probe = raw(victim.port());
    read_preamble(&mut probe);
    let events = vnet.poll_events();
    let lost = (N + 1 - CAPACITY) as u64;
    let mut expected = vec![format!("Dropped({lost})")];
    expected.extend((N - (CAPACITY - 1)..N).map(|n| format!("R{n}")));
    expected.push(format!("ClientClose({})", CloseReason::ClosedByPeer));
    let got: Vec<String> = events.iter().map(util::brief).collect();
    assert_eq!(got, expected);
    println!("overwrite: {N} messages into {CAPACITY} slots: Dropped({lost}), the newest kept");
    drop(probe);
    drop(conn);
    drop(flooder);
    fnet.shutdown(Duration::from_secs(2));
    vnet.shutdown(Duration::from_secs(2));
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn ring_overflow_lossless_delivers_everything() {
    // The harness's own ring is lossless and small; the pump stops polling
    // while a flooder sends. The server must stop reading (the flooder
    // stalls) and, once polled again, deliver every message of both the
    // flooder and the good client, in order.
    const CAPACITY: usize = 64;
    const TOTAL: usize = 6000;
    const PAD: usize = 4096;
    let mut cfg = Config::default();
    cfg.event_capacity = CAPACITY;
    cfg.overflow = OverflowPolicy::Lossless;
    let h = Harness::new("ring overflow, lossless", cfg, None);
    let mut fcfg = Config::default();
    fcfg.send_queue_bytes = 64 * 1024;
    let fnet = Network::with_config(fcfg).unwrap();
    let flooder = fnet.client("127.0.0.1", h.port(), None).unwrap();
    flooder.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let conn = h.accept();
    let deadline = Instant::now() + WAIT;

    h.pause();
    let mut next = 0usize;
    let stalled = loop {
        if next == TOTAL {
            break false;
        }
        assert!(
            Instant::now() < deadline,
            "flooding ran out of time at {next}"
        );
        match flooder.send(&numbered(next, PAD)) {
            Ok(()) => next += 1,
            Err(SendError::QueueFull { .. }) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if !util::queue_moved(left, || flooder.queued_bytes()) {
                    break true;
                }
            }
            Err(e) => panic!("flood send {next}: {e:?}"),
        }
    };
    let before_stall = next;
    h.resume();

    let mut expect = 0usize;
    let mut largest_batch = 0usize;
    while expect < TOTAL {
        let mut batch = 0usize;
        while let Some(ev) = h.try_next(Duration::from_millis(2)) {
            match ev.kind {
                EventKind::Receive {
                    from: Source::Connection(from),
                    packet,
                } => {
                    assert_eq!(from, conn.id());
                    assert_eq!(util::number(&packet), Some(expect), "lost or reordered");
                    expect += 1;
                    batch += 1;
                }
                EventKind::Drained { .. } => {}
                other => panic!("unexpected server event {other:?}"),
            }
        }
        largest_batch = largest_batch.max(batch);
        while next < TOTAL {
            match flooder.send(&numbered(next, PAD)) {
                Ok(()) => next += 1,
                Err(SendError::QueueFull { .. }) => break,
                Err(e) => panic!("flood send {next}: {e:?}"),
            }
        }
        assert!(
            Instant::now() < deadline + WAIT,
            "{expect} of {TOTAL} flood messages arrived ({next} sent)"
        );
    }
    println!(
        "lossless: the flooder stalled: {stalled}, after {before_stall} messages of {PAD} B; \
         all {TOTAL} arrived in order"
    );
    assert!(
        stalled,
        "the flooder never stalled while nobody polled: the full ring did not stop reading"
    );
    drop(flooder);
    let (ev, others) = h.wait_for("the flooder's ClientClose", |e| {
        matches!(e.kind, EventKind::ClientClose { .. })
    });
    assert!(
        others
            .iter()
            .all(|e| matches!(e.kind, EventKind::Drained { .. })),
        "{others:?}"
    );
    assert!(
        matches!(ev.kind, EventKind::ClientClose { connection, reason: CloseReason::ClosedByPeer, .. } if connection == conn.id())
    );
    drop(conn);
    fnet.shutdown(Duration::from_secs(2));
    let rest = h.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

// ---------------------------------------------------------------- found by the soak test

/// The contract (shared API, section 3, "Drop and flush"): dropping a
/// `Client` closes it "after sending what was already queued", and sends
/// made before the connection is up are "queued until connected". A client
/// dropped while its handshake is still running must therefore finish the
/// handshake, send its queue, then close: here a raw server holds back its
/// preamble until after the drop.
#[test]
fn a_client_dropped_while_connecting_still_delivers_what_it_queued() {
    const QUEUED: i64 = 5;
    let start = Instant::now();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let net = Network::new();
    let client = net.client("127.0.0.1", port, None).unwrap();
    let messages: Vec<Value> = (0..QUEUED)
        .map(|i| table! { "queued" => i }.into())
        .collect();
    for m in &messages {
        client.send(m).unwrap();
    }
    let (mut stream, _) = listener.accept().unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut preamble = [0u8; 8];
    stream.read_exact(&mut preamble).unwrap();
    assert_eq!(&preamble, PLAIN_PREAMBLE);
    assert!(!client.is_connected());
    drop(client);
    // Give the client's IO thread time to act on the drop: it must not
    // close yet (the server has not answered).
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {
            // What the client network reported (a failed Connected).
            let events: Vec<String> = net
                .wait_events(Duration::from_secs(1))
                .iter()
                .map(|e| format!("{:?}", e.kind))
                .collect();
            panic!(
                "the client dropped during its handshake closed at once, discarding its \
                 {QUEUED} queued messages; its events: {events:?}"
            );
        }
        Ok(_) => panic!("the client sent a frame before the server's preamble"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Err(e) => panic!("the client dropped during its handshake reset the connection: {e}"),
    }
    stream.write_all(PLAIN_PREAMBLE).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).unwrap();
    let mut decoder = tablenet::proto::FrameDecoder::new(&Limits::default());
    decoder.push(&received);
    let mut got = Vec::new();
    let mut closed = false;
    while let Some(frame) = decoder.next_frame().unwrap() {
        assert!(!closed, "a frame after the Close");
        match frame.kind {
            tablenet::proto::FrameKind::Close => closed = true,
            _ => got.push(frame.decode_value(&Limits::default()).unwrap()),
        }
    }
    assert_eq!(got, messages, "what the dropped client sent before closing");
    assert!(closed, "the dropped client ends with a Close frame");
    println!(
        "dropped while connecting: delivered its queue; {:?}",
        start.elapsed()
    );
    net.shutdown(Duration::from_secs(2));
}
