mod util;

use util::wait_until;

// Loopback load tests: many connections, the per-connection send queue
// limit, and the wake hook.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tablenet::proto::{FrameDecoder, Limits, encode_message_to_vec};
use tablenet::{
    Client, ClientId, CloseReason, Config, Connection, ConnectionId, Event, EventKind, Network,
    ObjectId, SendError, Server, Source, Value, table,
};

/// Upper bound for any one test in this file.
const TEST_BUDGET: Duration = Duration::from_secs(30);

/// Takes exactly `n` events from `net`, each of which must satisfy `check`
/// (which panics, naming the event, on anything unexpected).
fn take_n(net: &Network, n: usize, what: &str, mut check: impl FnMut(Event)) {
    let deadline = Instant::now() + util::DEADLINE;
    let mut got = 0;
    while got < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "deadline passed with {got} of {n} {what}");
        for ev in net.wait_events(left) {
            got += 1;
            assert!(got <= n, "more than {n} {what}: {ev:?}");
            check(ev);
        }
    }
}

fn int_field(packet: &Value, key: &str) -> Option<i64> {
    packet.get(key).and_then(Value::as_i64)
}

// ---------------------------------------------------------------- 1,000 clients

#[test]
fn a_thousand_clients_connect_send_once_and_close() {
    const CLIENTS: usize = 1000;
    const WAVE: usize = 200;
    let start = Instant::now();

    let snet = Network::new();
    let server = snet.server("127.0.0.1", 0, None).unwrap();
    let cnet = Network::new();

    let mut clients: Vec<Client> = Vec::with_capacity(CLIENTS);
    let mut conns: HashMap<ConnectionId, Connection> = HashMap::with_capacity(CLIENTS);
    for wave in 0..CLIENTS / WAVE {
        let first = clients.len();
        for _ in 0..WAVE {
            clients.push(cnet.client("127.0.0.1", server.port(), None).unwrap());
        }
        let mut waiting: HashSet<ClientId> = clients[first..].iter().map(Client::id).collect();
        take_n(&cnet, WAVE, "Connected events", |ev| match ev.kind {
            EventKind::Connected { client, result } => {
                assert!(result.is_ok(), "client {client:?} failed: {result:?}");
                assert!(waiting.remove(&client), "unexpected or repeated {client:?}");
            }
            other => panic!("wave {wave}: unexpected client-side event {other:?}"),
        });
        // Keep the owning handles, or the connections close.
        take_n(&snet, WAVE, "Connect events", |ev| match ev.kind {
            EventKind::Connect {
                connection,
                server: sid,
            } => {
                assert_eq!(sid, server.id());
                let id = connection.id();
                assert!(conns.insert(id, connection).is_none(), "{id:?} twice");
            }
            other => panic!("wave {wave}: unexpected server-side event {other:?}"),
        });
        assert_eq!(server.connection_count(), (wave + 1) * WAVE);
    }
    assert_eq!(conns.len(), CLIENTS);
    assert_eq!(server.connection_count(), CLIENTS);
    let connected_in = start.elapsed();

    for (i, client) in clients.iter().enumerate() {
        client.send(&table! { "index" => i as i64 }.into()).unwrap();
    }
    let mut seen = vec![false; CLIENTS];
    let mut senders: HashSet<ConnectionId> = HashSet::with_capacity(CLIENTS);
    take_n(&snet, CLIENTS, "Receive events", |ev| match ev.kind {
        EventKind::Receive {
            from: Source::Connection(id),
            packet,
        } => {
            assert!(conns.contains_key(&id), "packet from unknown {id:?}");
            assert!(senders.insert(id), "{id:?} delivered twice");
            let i = int_field(&packet, "index").expect("an index") as usize;
            assert!(i < CLIENTS, "index {i} out of range");
            assert!(!seen[i], "index {i} received twice");
            seen[i] = true;
        }
        other => panic!("unexpected server-side event {other:?}"),
    });
    assert!(seen.iter().all(|s| *s));
    assert_eq!(server.connection_count(), CLIENTS);
    let exchanged_in = start.elapsed();

    drop(clients);
    let mut closed: HashSet<ConnectionId> = HashSet::with_capacity(CLIENTS);
    take_n(&snet, CLIENTS, "ClientClose events", |ev| match ev.kind {
        EventKind::ClientClose {
            connection,
            server: sid,
            reason,
        } => {
            assert_eq!(sid, server.id());
            assert_eq!(reason, CloseReason::ClosedByPeer, "{connection:?}");
            assert!(conns.contains_key(&connection), "unknown {connection:?}");
            assert!(closed.insert(connection), "{connection:?} closed twice");
        }
        other => panic!("unexpected server-side event {other:?}"),
    });
    wait_until("the server has no connections", util::DEADLINE, || {
        server.connection_count() == 0
    });
    drop(conns);

    let total = start.elapsed();
    println!(
        "1000 clients: connected in {connected_in:?}, exchanged by {exchanged_in:?}, closed by {total:?}"
    );
    assert!(total < TEST_BUDGET, "took {total:?}");
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}

// ---------------------------------------------------------------- send queue limit

/// The send queue limit of the server network in the send-queue test.
const QUEUE_LIMIT: usize = 1 << 20;

/// A raw TCP peer that speaks the preamble by hand and then reads only when
/// told to.
struct RawPeer {
    stream: TcpStream,
    decoder: FrameDecoder,
}

impl RawPeer {
    fn connect(port: u16) -> RawPeer {
        // A small receive buffer, set before connecting (which turns the
        // kernel's autotuning off), so that a peer that stops reading is full
        // after a few hundred KiB rather than tens of MiB.
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket.set_recv_buffer_size(64 * 1024).unwrap();
        socket
            .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let mut stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(util::DEADLINE)).unwrap();
        stream.write_all(b"TBLN\x02\x00\x00\x00").unwrap();
        let mut preamble = [0u8; 8];
        stream.read_exact(&mut preamble).unwrap();
        assert_eq!(&preamble[..4], b"TBLN", "server preamble {preamble:?}");
        RawPeer {
            stream,
            decoder: FrameDecoder::new(&Limits::default()),
        }
    }

    /// Reads and decodes frames until one satisfies `last`; returns a
    /// summary of each (see `summary`).
    fn read_until(&mut self, last: impl Fn(&Value) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            while let Some(frame) = self.decoder.next_frame().unwrap() {
                let value = frame.decode_value(&Limits::default()).unwrap();
                out.push(summary(&value));
                if last(&value) {
                    return out;
                }
            }
            let n = self.stream.read(&mut buf).expect("raw peer read");
            assert!(n > 0, "server closed the stalled connection after {out:?}");
            self.decoder.push(&buf[..n]);
        }
    }
}

fn summary(v: &Value) -> String {
    let blob = v
        .get("blob")
        .and_then(Value::as_bytes)
        .map_or(0, <[u8]>::len);
    match (int_field(v, "n"), v.get("kind").and_then(Value::as_str)) {
        (Some(n), _) => format!("n{n}/{blob}"),
        (None, Some(kind)) => format!("{kind}/{blob}"),
        _ => format!("?{v:?}"),
    }
}

/// Sends numbered 64 KiB frames to `slow` (the peer does not read) until a
/// send is refused and then the queue has not moved for `util::STALL`, checking
/// every refusal and the queue's size. While it fills, the queue may drain
/// now and then (the IO thread moves it into the kernel's buffers): the
/// `Drained` events that reports are taken from `snet` before returning.
/// Returns the number of refusals.
fn fill_queue(
    snet: &Network,
    server: &Server,
    slow: &Connection,
    next: &mut usize,
    big: &dyn Fn(usize) -> Value,
    frame: usize,
) -> usize {
    let bound = QUEUE_LIMIT + frame;
    let mut refusals = 0usize;
    let deadline = Instant::now() + util::DEADLINE;
    loop {
        assert!(
            *next < 2000,
            "2000 frames of 64 KiB accepted for a peer that never reads"
        );
        let refused = match slow.send(&big(*next)) {
            Ok(()) => {
                *next += 1;
                false
            }
            Err(SendError::QueueFull { queued, limit }) => {
                refusals += 1;
                assert_eq!(limit, QUEUE_LIMIT);
                assert!(queued > 0, "an empty queue must accept a frame");
                assert!(
                    queued + frame > QUEUE_LIMIT,
                    "refused with room: {queued} queued"
                );
                assert!(queued <= bound, "{queued} queued, bound {bound}");
                true
            }
            Err(e) => panic!("send {next} failed: {e:?}"),
        };
        let q = slow.queued_bytes();
        assert!(
            q <= bound,
            "queued_bytes {q} over the limit plus one frame ({bound})"
        );
        let via_server = server.queued_bytes(slow.id()).expect("an open connection");
        assert!(via_server <= bound, "server.queued_bytes {via_server}");
        let left = deadline.saturating_duration_since(Instant::now());
        if refused && !util::queue_moved(left, || slow.queued_bytes()) {
            for ev in snet.poll_events() {
                assert!(
                    matches!(ev.kind, EventKind::Drained { object } if object == ObjectId::Connection(slow.id())),
                    "unexpected event while filling: {ev:?}"
                );
            }
            return refusals;
        }
    }
}

/// One ping from the good client, answered by the server; both checked.
/// The only other event allowed meanwhile is a `Drained` for the slow
/// connection, and only with its queue empty (the kernel may still take
/// more of the queue from time to time); returns how many there were.
fn ping_pong(
    snet: &Network,
    cnet: &Network,
    good_conn: ConnectionId,
    good: &Client,
    slow: &Connection,
    i: i64,
    pong: &dyn Fn(i64),
) -> usize {
    good.send(&table! { "ping" => i }.into()).unwrap();
    let (ev, others) = util::wait_for(snet, |e| matches!(e.kind, EventKind::Receive { .. }));
    let mut drained = 0;
    for other in others {
        match other.kind {
            EventKind::Drained { object } if object == ObjectId::Connection(slow.id()) => {
                assert_eq!(slow.queued_bytes(), 0, "Drained with bytes queued");
                drained += 1;
            }
            other => panic!("unexpected server event {other:?}"),
        }
    }
    let EventKind::Receive { from, packet } = ev.kind else {
        unreachable!()
    };
    assert_eq!(from, Source::Connection(good_conn));
    assert_eq!(int_field(&packet, "ping"), Some(i));
    pong(i);
    let (ev, others) = util::wait_for(cnet, |e| matches!(e.kind, EventKind::Receive { .. }));
    assert!(others.is_empty(), "unexpected client events: {others:?}");
    let EventKind::Receive { from, packet } = ev.kind else {
        unreachable!()
    };
    assert_eq!(from, Source::Client(good.id()));
    assert_eq!(int_field(&packet, "pong"), Some(i));
    drained
}

#[test]
fn send_queue_limit_refuses_without_harm_and_reports_drained() {
    let start = Instant::now();
    let mut cfg = Config::default();
    cfg.send_queue_bytes = QUEUE_LIMIT;
    let snet = Network::with_config(cfg).unwrap();
    let server = snet.server("127.0.0.1", 0, None).unwrap();

    let raw = RawPeer::connect(server.port());
    let slow = util::accept(&snet);

    let cnet = Network::new();
    let good = cnet.client("127.0.0.1", server.port(), None).unwrap();
    good.wait_for_connect(Duration::from_secs(2)).unwrap();
    let (ev, _) = util::wait_for(&cnet, |e| matches!(e.kind, EventKind::Connected { .. }));
    assert!(matches!(
        ev.kind,
        EventKind::Connected { result: Ok(()), .. }
    ));
    let good_conn = util::accept(&snet);
    let pong = |i: i64| {
        server
            .send_to(good_conn.id(), &table! { "pong" => i }.into())
            .unwrap();
    };

    let blob = vec![0xA5u8; 64 * 1024];
    let big = |n: usize| -> Value { table! { "n" => n as i64, "blob" => blob.clone() }.into() };
    let frame = encode_message_to_vec(&big(1_000_000), &Limits::default())
        .unwrap()
        .len();

    // Fill the socket and the queue until the queue stops moving.
    let mut next = 0usize;
    let refusals = fill_queue(&snet, &server, &slow, &mut next, &big, frame);
    assert!(
        slow.is_open(),
        "a refused send must not harm the connection"
    );
    assert!(slow.queued_bytes() > 0);
    assert_eq!(server.connection_count(), 2);
    println!(
        "send queue: {next} frames of {frame} B accepted, {refusals} refusals, {} B queued",
        slow.queued_bytes()
    );

    // Meanwhile a well-behaved client is served normally.
    let exchange = |range: std::ops::Range<i64>| -> usize {
        range
            .map(|i| ping_pong(&snet, &cnet, good_conn.id(), &good, &slow, i, &pong))
            .sum()
    };
    let early = exchange(0..20);
    assert!(slow.is_open());
    if early > 0 {
        // The kernel took the rest of the queue after all: refuse once more.
        println!("the queue drained without the peer reading; filling it again");
        fill_queue(&snet, &server, &slow, &mut next, &big, frame);
    }

    // The raw peer starts reading everything.
    let reader = std::thread::spawn(move || {
        let mut raw = raw;
        let got = raw.read_until(|v| v.get("kind").and_then(Value::as_str) == Some("last"));
        (raw, got) // keep the peer open
    });
    let (ev, others) = util::wait_for(&snet, |e| matches!(e.kind, EventKind::Drained { .. }));
    assert!(others.is_empty(), "unexpected events: {others:?}");
    let EventKind::Drained { object } = ev.kind else {
        unreachable!()
    };
    assert_eq!(object, ObjectId::Connection(slow.id()));
    assert_eq!(slow.queued_bytes(), 0, "Drained with bytes still queued");
    assert!(slow.is_open());

    // An empty queue accepts one message larger than the limit.
    let huge: Value = table! { "kind" => "huge", "blob" => vec![0x5Au8; 2 * QUEUE_LIMIT] }.into();
    slow.send(&huge)
        .expect("an empty queue accepts one message up to the frame limit");
    // And a later small send succeeds (after the next Drained, if the huge
    // one is still queued).
    let last: Value = table! { "kind" => "last" }.into();
    loop {
        match slow.send(&last) {
            Ok(()) => break,
            Err(SendError::QueueFull { .. }) => {
                let (ev, _) =
                    util::wait_for(&snet, |e| matches!(e.kind, EventKind::Drained { .. }));
                println!("waited for {:?} before the last send", ev.kind);
            }
            Err(e) => panic!("last send: {e:?}"),
        }
    }
    let (_raw, got) = reader.join().unwrap();
    let mut expected: Vec<String> = (0..next).map(|n| format!("n{n}/{}", 64 * 1024)).collect();
    expected.push(format!("huge/{}", 2 * QUEUE_LIMIT));
    expected.push("last/0".to_string());
    assert_eq!(got.len(), expected.len(), "frames the raw peer received");
    assert_eq!(got, expected);

    exchange(20..25);
    assert!(slow.is_open());
    assert_eq!(server.connection_count(), 2);
    let took = start.elapsed();
    println!("send queue test took {took:?}");
    assert!(took < TEST_BUDGET, "took {took:?}");
    drop(good);
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}

// ---------------------------------------------------------------- wake hook

/// Waits on the hook's condvar until it has fired `n` times.
fn wait_for_hook(state: &(Mutex<usize>, Condvar), n: usize) {
    let deadline = Instant::now() + util::DEADLINE;
    let (count, cv) = state;
    let mut fired = count.lock().unwrap();
    while *fired < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "wake hook fired {} of {n} times", *fired);
        fired = cv.wait_timeout(fired, left).unwrap().0;
    }
}

#[test]
fn wake_hook_fires_when_events_arrive_and_nobody_polls() {
    let start = Instant::now();
    let snet = Network::new();
    let server = snet.server("127.0.0.1", 0, None).unwrap();
    let cnet = Network::new();
    let client = cnet.client("127.0.0.1", server.port(), None).unwrap();
    client.wait_for_connect(Duration::from_secs(2)).unwrap();
    let conn = util::accept(&snet); // the ring is empty after this
    assert!(snet.poll_events().is_empty());

    let calls = Arc::new(AtomicUsize::new(0));
    let state = Arc::new((Mutex::new(0usize), Condvar::new()));
    {
        let calls = calls.clone();
        let state = state.clone();
        snet.set_wake_hook(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            let (count, cv) = &*state;
            *count.lock().unwrap() += 1;
            cv.notify_all();
        });
    }
    for round in 1..=3usize {
        client
            .send(&table! { "round" => round as i64 }.into())
            .unwrap();
        wait_for_hook(&state, round);
        let events = snet.poll_events();
        assert_eq!(events.len(), 1, "round {round}: {events:?}");
        let Some(Event {
            kind: EventKind::Receive { from, packet },
            ..
        }) = events.into_iter().next()
        else {
            panic!("round {round}: not a Receive")
        };
        assert_eq!(from, Source::Connection(conn.id()));
        assert_eq!(int_field(&packet, "round"), Some(round as i64));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            round,
            "one wake per empty-to-ready"
        );
    }
    snet.clear_wake_hook();
    client.send(&table! { "round" => 4 }.into()).unwrap();
    let (ev, _) = util::wait_for(&snet, |e| matches!(e.kind, EventKind::Receive { .. }));
    println!("after clearing the hook: {:?}", ev.kind);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "a cleared hook must not run"
    );
    assert!(start.elapsed() < TEST_BUDGET);
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}
