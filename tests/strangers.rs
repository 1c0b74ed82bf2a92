//! Peers that never authenticate are second class: they cannot keep members
//! out, bury their events, slow their traffic, or go unnamed. Loopback only;
//! strangers connect from 127.0.0.2 and up (all of 127.0.0.0/8 is loopback),
//! honest members from 127.0.0.1.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tablenet::{
    AcceptFilter, Config, Error, EventKind, Network, ObjectId, OverflowPolicy, ProtocolError,
    Source, Value,
};

fn numbered(n: usize) -> Value {
    tablenet::table! { "n" => n as i64 }.into()
}

/// A TCP connection to `port` from `source` (a loopback address), closed
/// with a reset when dropped (no TIME_WAIT left behind by a flood).
fn connect_from(source: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.set_linger(Some(Duration::ZERO))?;
    socket.set_tcp_nodelay(true)?;
    socket.connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)).into(),
        Duration::from_secs(5),
    )?;
    Ok(socket.into())
}

/// What the server side of a flood test saw.
#[derive(Default, Debug)]
struct Seen {
    /// Failures reported one by one, and those summed up.
    single: u64,
    summed: u64,
    summaries: u64,
    /// The honest member's messages, in arrival order.
    numbers: Vec<usize>,
    joined: bool,
    left: bool,
    dropped: u64,
}

impl Seen {
    fn failures(&self) -> u64 {
        self.single + self.summed
    }

    fn take(&mut self, kind: EventKind, handles: &mut Vec<tablenet::Connection>) {
        match kind {
            EventKind::Connect { connection, .. } => {
                self.joined = true;
                handles.push(connection);
            }
            EventKind::Receive { packet, .. } => {
                self.numbers
                    .push(util::number(&packet).expect("a numbered message"));
            }
            EventKind::ClientClose { .. } => self.left = true,
            EventKind::Error {
                error:
                    Error::UnauthenticatedFailures {
                        count, last_peer, ..
                    },
                object: ObjectId::Server(_),
                ..
            } => {
                assert_eq!(last_peer.map(|p| p.ip()), Some([127, 0, 0, 2].into()));
                self.summed += count;
                self.summaries += 1;
            }
            EventKind::Error { peer, error, .. } => {
                assert_eq!(
                    peer.map(|p| p.ip()),
                    Some([127, 0, 0, 2].into()),
                    "a stranger's failure names its address: {error}"
                );
                self.single += 1;
            }
            EventKind::Dropped { count } => self.dropped += count,
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// Strangers fail as fast as one thread can connect (garbage on a plain
/// server, a valid first Noise message then a reset on a keyed one) while an honest member joins and talks, and the application
/// polls only once a second: the member's Connect and every message arrive,
/// in order, its connection stays open, and the failures come as at most
/// 20 events a second plus one summary a second, all counted.
fn flood_against_a_slow_application(overflow: OverflowPolicy, key: Option<&str>) {
    const FLOOD: usize = 18_000;
    const MESSAGES: usize = 20;
    let mut config = Config::default();
    config.overflow = overflow;
    let snet = Network::with_config(config).unwrap();
    let server = snet.server("127.0.0.1", 0, key).unwrap();
    let port = server.port();
    // Garbage on a plain server; a valid first Noise message on a keyed one.
    let flight = match key {
        Some(key) => keyed_first_flight(key),
        None => b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    };

    let flooded = Arc::new(AtomicUsize::new(0));
    let flood = {
        let flooded = flooded.clone();
        thread::spawn(move || {
            for _ in 0..FLOOD {
                if let Ok(mut s) = connect_from([127, 0, 0, 2], port) {
                    let _ = s.write_all(&flight);
                    flooded.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    util::wait_until("the flood to start", Duration::from_secs(10), || {
        flooded.load(Ordering::Relaxed) >= 1_000
    });
    let cnet = Network::new();
    let client = cnet.connect(("127.0.0.1", port), key).unwrap();
    for n in 0..MESSAGES {
        client.send(&numbered(n)).unwrap();
    }

    // The application: a poll a second.
    let mut seen = Seen::default();
    let mut handles = Vec::new();
    let start = Instant::now();
    let mut polls = 0;
    while start.elapsed() < Duration::from_secs(30) {
        thread::sleep(Duration::from_secs(1)); // the slow application's pace
        polls += 1;
        for ev in snet.poll_events() {
            seen.take(ev.kind, &mut handles);
        }
        let done = flood.is_finished()
            && seen.failures() >= flooded.load(Ordering::Relaxed) as u64
            && seen.numbers.len() == MESSAGES;
        if done {
            break;
        }
    }
    flood.join().unwrap();
    let flooded = flooded.load(Ordering::Relaxed) as u64;
    println!(
        "{overflow:?}, keyed {}: {flooded} failing strangers in {polls} polls a second apart: \
         {} reported one by one, {} in {} summaries; the member joined: {}, heard {} of {MESSAGES}",
        key.is_some(),
        seen.single,
        seen.summed,
        seen.summaries,
        seen.joined,
        seen.numbers.len()
    );
    assert!(seen.joined, "the member's Connect was not hidden");
    assert_eq!(
        seen.numbers,
        (0..MESSAGES).collect::<Vec<_>>(),
        "every message, in order"
    );
    assert!(!seen.left, "the member's connection stayed open");
    assert_eq!(seen.dropped, 0, "strangers' events overwrote nothing");
    assert_eq!(seen.failures(), flooded, "every failure counted once");
    assert!(
        seen.single <= 20 * (polls + 1),
        "at most 20 single reports a second: {} in {polls} s",
        seen.single
    );
    assert!(client.is_connected());
    drop(handles);
}

#[test]
fn a_flood_of_failing_strangers_hides_nothing_from_a_slow_application() {
    flood_against_a_slow_application(OverflowPolicy::Lossless, None);
}

#[test]
fn a_flood_of_failing_strangers_overwrites_nothing_under_overwrite() {
    flood_against_a_slow_application(OverflowPolicy::Overwrite, None);
}

#[test]
fn a_flood_of_keyed_first_messages_hides_nothing_from_a_slow_application() {
    flood_against_a_slow_application(OverflowPolicy::Overwrite, Some(&"3c".repeat(32)));
}

/// The first bytes a keyed client sends (its preamble and first Noise
/// message), captured by a listener that plays server and never answers.
fn keyed_first_flight(key: &str) -> Vec<u8> {
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = fake.local_addr().unwrap().port();
    let net = Network::new();
    let _client = net.connect(("127.0.0.1", port), Some(key)).unwrap();
    let (mut stream, _) = fake.accept().unwrap();
    let mut flight = Vec::new();
    let mut buf = [0u8; 1024];
    stream.set_read_timeout(Some(util::DEADLINE)).unwrap();
    let n = stream.read(&mut buf).unwrap();
    flight.extend_from_slice(&buf[..n]);
    // It may come in more than one segment; nothing more follows until the
    // server answers.
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => flight.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        flight.len() > 40,
        "a preamble and a Noise message: {flight:?}"
    );
    flight
}

/// Reads the server's preamble and second Noise message (at least 48
/// bytes), or gives up after a second: a stranger that resets before the
/// server read its first message would spare it the key exchange.
fn await_answer(s: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut got = 0;
    let mut buf = [0u8; 256];
    while got < 48 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got += n,
        }
    }
}

/// Strangers send valid first Noise messages (each costs the server a key
/// exchange) and wait for the answer, four at a time, as fast as they can,
/// while an established member's messages are echoed by a prompt
/// application: the member's round trips stay under 50 ms, because
/// handshakes get at most a quarter of the IO thread, 2 ms at a time.
#[test]
fn a_flood_of_keyed_first_messages_does_not_slow_a_member() {
    const ROUNDS: usize = 200;
    let key = "5e".repeat(32);
    let flight = keyed_first_flight(&key);
    let snet = Network::new();
    let server = snet.server("127.0.0.1", 0, Some(&key)).unwrap();
    let port = server.port();
    let cnet = Network::new();
    let client = cnet.connect(("127.0.0.1", port), Some(&key)).unwrap();
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // The server application: echoes every message at once.
    let echo = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut handles = Vec::new();
            let mut strangers = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for ev in snet.wait_events(Duration::from_millis(50)) {
                    match ev.kind {
                        EventKind::Connect { connection, .. } => handles.push(connection),
                        EventKind::Receive {
                            from: Source::Connection(id),
                            packet,
                        } => {
                            server.send_to(id, &packet).unwrap();
                        }
                        EventKind::Error {
                            error: Error::UnauthenticatedFailures { count, .. },
                            ..
                        } => strangers += count,
                        EventKind::Error { .. } => strangers += 1,
                        _ => {}
                    }
                }
            }
            strangers
        })
    };
    let flooded = Arc::new(AtomicUsize::new(0));
    let flight = Arc::new(flight);
    // Four strangers, each with one attempt in flight.
    let flooders: Vec<_> = (0..4)
        .map(|_| {
            let (stop, flooded, flight) = (stop.clone(), flooded.clone(), flight.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut s) = connect_from([127, 0, 0, 2], port) {
                        let _ = s.write_all(&flight);
                        await_answer(&mut s);
                        flooded.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    util::wait_until("the flood to start", Duration::from_secs(10), || {
        flooded.load(Ordering::Relaxed) >= 200
    });
    // Round trips for 2 s of flood, and at least ROUNDS of them.
    let mut rtts = Vec::with_capacity(ROUNDS);
    let start = Instant::now();
    for n in 0.. {
        if n >= ROUNDS && start.elapsed() >= Duration::from_secs(2) {
            break;
        }
        let sent = Instant::now();
        client.send(&numbered(n)).unwrap();
        let (_, packet) = util::receive(&cnet);
        rtts.push(sent.elapsed());
        assert_eq!(util::number(&packet), Some(n));
    }
    let flooded_during = flooded.load(Ordering::Relaxed);
    assert!(client.is_connected());
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.join().unwrap();
    }
    let strangers = echo.join().unwrap();
    rtts.sort();
    let p50 = rtts[rtts.len() / 2];
    let p99 = rtts[rtts.len() * 99 / 100];
    let max = rtts[rtts.len() - 1];
    println!(
        "{} round trips during {flooded_during} keyed first messages from strangers \
         ({strangers} failures reported so far): p50 {p50:?}, p99 {p99:?}, max {max:?}",
        rtts.len()
    );
    assert!(p99 < Duration::from_millis(50), "p99 round trip {p99:?}");
}

/// With 10,000 silent sockets open (the default `max_connections`), an
/// honest member still joins and is heard within 5 s: only the newest 1,024
/// of them are kept in their handshake, and those for 3 s at most.
#[test]
fn ten_thousand_silent_sockets_cannot_keep_a_member_out() {
    const SILENT: usize = 10_000;
    let snet = Network::new();
    let server = util::listen(&snet);
    let port = server.port();
    // Three stranger addresses, so that no source runs out of ports.
    let silent: Vec<TcpStream> = (0..SILENT)
        .map(|i| connect_from([127, 0, 0, 2 + (i % 3) as u8], port).unwrap())
        .collect();
    let start = Instant::now();
    let cnet = Network::new();
    let client = cnet.connect(("127.0.0.1", port), None).unwrap();
    client.wait_for_connect(Duration::from_secs(5)).unwrap();
    client.send(&numbered(7)).unwrap();
    let mut handles = Vec::new();
    let mut heard = false;
    while !heard && start.elapsed() < Duration::from_secs(5) {
        for ev in snet.wait_events(Duration::from_millis(20)) {
            match ev.kind {
                EventKind::Connect { connection, .. } => handles.push(connection),
                EventKind::Receive { packet, .. } => heard = util::number(&packet) == Some(7),
                _ => {}
            }
        }
    }
    println!(
        "{SILENT} silent sockets open: an honest member joined and was heard after {:?}",
        start.elapsed()
    );
    assert!(heard, "the member was heard within 5 s");
    drop(silent);
}

/// Reads what a refused or accepted raw peer gets within `limit`: the bytes,
/// and whether the server closed.
fn read_for(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (got, false);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, true),
            Err(e) => panic!("{e}"),
        }
    }
}

/// `max_connections_per_address` = 3: a fourth connection from 127.0.0.2
/// is refused with the reason and an `AddressLimit` error naming it, while
/// 127.0.0.3 and an honest member from 127.0.0.1 still get in.
#[test]
fn a_per_address_cap_refuses_one_address_only() {
    const CAP: usize = 3;
    let mut config = Config::default();
    config.max_connections_per_address = Some(CAP);
    let snet = Network::with_config(config).unwrap();
    let server = util::listen(&snet);
    let port = server.port();
    let mut kept: Vec<TcpStream> = (0..CAP)
        .map(|_| connect_from([127, 0, 0, 2], port).unwrap())
        .collect();
    for s in &mut kept {
        util::read_preamble(s);
    }
    let mut fourth = connect_from([127, 0, 0, 2], port).unwrap();
    let (refusal, closed) = read_for(&mut fourth, util::DEADLINE);
    assert!(closed, "the fourth was closed");
    let text = String::from_utf8_lossy(&refusal);
    assert!(
        text.contains("too many connections from your address"),
        "{text:?}"
    );
    let (ev, _) = util::wait_for(&snet, |ev| matches!(ev.kind, EventKind::Error { .. }));
    let EventKind::Error {
        error,
        peer,
        object,
    } = ev.kind
    else {
        unreachable!()
    };
    assert_eq!(object, ObjectId::Server(server.id()));
    assert!(
        matches!(error, Error::AddressLimit { limit: CAP, .. }),
        "{error:?}"
    );
    assert_eq!(peer.map(|p| p.ip()), Some([127, 0, 0, 2].into()));

    // Another address is not affected: it gets the preamble and is kept.
    let mut other = connect_from([127, 0, 0, 3], port).unwrap();
    util::read_preamble(&mut other);
    let (_, closed) = read_for(&mut other, Duration::from_millis(200));
    assert!(!closed, "127.0.0.3 was kept");
    let cnet = Network::new();
    let client = cnet.connect(("127.0.0.1", port), None).unwrap();
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let _member = util::accept(&snet);
    // A slot freed at 127.0.0.2 can be used again.
    drop(kept.pop());
    util::wait_until("the slot to free", util::DEADLINE, || {
        let Ok(mut again) = connect_from([127, 0, 0, 2], port) else {
            return false;
        };
        let mut preamble = [0u8; 8];
        again.set_read_timeout(Some(util::DEADLINE)).unwrap();
        again.read_exact(&mut preamble).is_ok()
            && &preamble == util::PLAIN_PREAMBLE
            && !read_for(&mut again, Duration::from_millis(100)).1
    });
}

/// An accept filter refuses 127.0.0.9 before reading or writing a byte;
/// others are taken.
#[test]
fn the_accept_filter_refuses_by_address_before_any_byte() {
    let banned: std::net::IpAddr = [127, 0, 0, 9].into();
    let mut config = Config::default();
    config.accept_filter = Some(AcceptFilter::new(move |peer| peer.ip() != banned));
    let snet = Network::with_config(config).unwrap();
    let server = util::listen(&snet);
    let port = server.port();
    let mut refused = connect_from([127, 0, 0, 9], port).unwrap();
    let (bytes, closed) = read_for(&mut refused, util::DEADLINE);
    assert!(
        closed && bytes.is_empty(),
        "closed without a byte: {bytes:?}"
    );
    let (ev, _) = util::wait_for(&snet, |ev| matches!(ev.kind, EventKind::Error { .. }));
    let EventKind::Error { error, peer, .. } = ev.kind else {
        unreachable!()
    };
    assert!(matches!(error, Error::Filtered { .. }), "{error:?}");
    assert_eq!(peer.map(|p| p.ip()), Some(banned));
    let cnet = Network::new();
    let client = cnet.connect(("127.0.0.1", port), None).unwrap();
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let _member = util::accept(&snet);
}

/// A handshake failure names its peer in the event and, for the bindings,
/// in the text (`.Errors`).
#[test]
fn a_handshake_failure_names_its_peer() {
    let snet = Network::new();
    let server = util::listen(&snet);
    let mut stranger = connect_from([127, 0, 0, 5], server.port()).unwrap();
    stranger.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap();
    let (ev, _) = util::wait_for(&snet, |ev| matches!(ev.kind, EventKind::Error { .. }));
    let EventKind::Error { error, peer, .. } = ev.kind else {
        unreachable!()
    };
    assert!(
        matches!(error, Error::Protocol(ProtocolError::BadMagic { .. })),
        "{error:?}"
    );
    assert_eq!(peer, Some(stranger.local_addr().unwrap()));
}

/// One address filling the half-open slots closes its own connections, not
/// an honest peer's older one: with `max_handshaking` = 16, a peer from
/// 127.0.0.1 that is slow to speak survives 40 silent sockets from
/// 127.0.0.2 arriving after it, then finishes its handshake.
#[test]
fn a_flooding_address_evicts_its_own_half_open_connections_first() {
    const HALF_OPEN: usize = 16;
    let mut config = Config::default();
    config.max_handshaking = HALF_OPEN;
    config.failure_reports_per_second = u32::MAX; // count each eviction
    let snet = Network::with_config(config).unwrap();
    let server = util::listen(&snet);
    let port = server.port();
    let mut honest = connect_from([127, 0, 0, 1], port).unwrap();
    util::read_preamble(&mut honest);
    let flood: Vec<TcpStream> = (0..40)
        .map(|_| connect_from([127, 0, 0, 2], port).unwrap())
        .collect();
    // 41 half-open, 16 kept: 25 evictions, all of 127.0.0.2.
    let mut evicted = 0;
    let deadline = Instant::now() + util::DEADLINE;
    while evicted < 41 - HALF_OPEN {
        assert!(Instant::now() < deadline, "{evicted} evictions seen");
        for ev in snet.wait_events(Duration::from_millis(20)) {
            if let EventKind::Error { error, peer, .. } = ev.kind {
                assert_eq!(
                    error,
                    Error::Protocol(ProtocolError::HandshakeEvicted { limit: HALF_OPEN })
                );
                assert_eq!(peer.map(|p| p.ip()), Some([127, 0, 0, 2].into()));
                evicted += 1;
            }
        }
    }
    // The honest peer speaks now, and is in.
    honest.write_all(util::PLAIN_PREAMBLE).unwrap();
    let (ev, _) = util::wait_for(&snet, |ev| matches!(ev.kind, EventKind::Connect { .. }));
    let EventKind::Connect { connection, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(connection.port(), honest.local_addr().unwrap().port());
    drop(flood);
}
