//! Sends to many connections and backpressure per connection: which
//! connection refused a fan-out, `Drained` at the low-water mark, and
//! `wait_writable`. Loopback only; a stalled peer is a raw socket that
//! stops reading.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tablenet::{
    Config, Connection, ConnectionId, Error, EventKind, Network, ObjectId, SendError, Server,
    Source, Value, table,
};
use util::{DEADLINE, PLAIN_PREAMBLE, raw_plain, read_preamble, wait_for};

const KIB: usize = 1024;
const LIMIT: usize = 256 * KIB;
const LOW: usize = 64 * KIB;

fn network() -> Network {
    network_with(LIMIT, LOW)
}

fn network_with(limit: usize, low: usize) -> Network {
    let mut config = Config::default();
    config.send_queue_bytes = limit;
    config.send_queue_low_water = Some(low);
    Network::with_config(config).unwrap()
}

fn blob(n: usize) -> Value {
    table! { "Blob" => vec![0x5Au8; n] }.into()
}

/// A raw peer whose receive buffer is small and fixed from the start (no
/// autotuning): how much the kernel holds for it stays small and steady, so
/// reading from it moves the server's queue by about as much as it reads.
fn small_window_peer(port: u16) -> TcpStream {
    use std::io::Write;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 * KIB).unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect(&addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(PLAIN_PREAMBLE).unwrap();
    read_preamble(&mut stream);
    stream
}

/// Sends 8 KiB messages to `conn` until its queue refuses and stays where
/// it is (the peer stopped reading and the kernel's buffers are full), then
/// small ones until those are refused too.
fn fill(server: &Server, conn: &Connection, limit: usize) {
    let message = blob(8 * KIB);
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "the queue never stalled");
        match conn.send(&message) {
            Ok(()) => {}
            Err(SendError::QueueFull {
                limit: queue_limit, ..
            }) => {
                assert_eq!(queue_limit, limit);
                let id = conn.id();
                if !util::queue_moved(DEADLINE, || server.queued_bytes(id).unwrap_or(0)) {
                    // Stalled: top it up so that even a small message is refused.
                    while conn.send(&table! { "n" => 0 }.into()).is_ok() {}
                    return;
                }
            }
            Err(e) => panic!("send: {e}"),
        }
    }
}

/// Reads 16 KiB at a time from the stalled peer until the server's queue
/// for `id` is down to `level` (a few reads may pass before the server
/// notices each), then stops reading.
fn read_down_to(peer: &mut TcpStream, server: &Server, id: ConnectionId, level: usize) {
    let mut buf = vec![0u8; 16 * KIB];
    let deadline = Instant::now() + DEADLINE;
    while server.queued_bytes(id).unwrap_or(0) > level {
        assert!(Instant::now() < deadline, "the queue never came down");
        let n = peer.read(&mut buf).unwrap();
        assert!(n > 0, "the server closed the stalled peer");
    }
}

#[test]
fn the_per_connection_report_names_the_refusing_connection() {
    let server_net = network();
    let client_net = Network::new();
    let server = util::listen(&server_net);
    let (good_client, good) = util::connect(&server_net, &client_net, &server);
    let _peer = raw_plain(server.port());
    let stalled = util::accept(&server_net);
    let (_gone_client, gone) = util::connect(&server_net, &client_net, &server);
    let gone_id = gone.id();
    drop(gone);
    util::client_close(&server_net, gone_id);
    fill(&server, &stalled, LIMIT);

    let report = server.broadcast_each(&table! { "n" => 1 }.into());
    assert_eq!(report.len(), 2, "{report:?}");
    assert_eq!(report.accepted(), 1);
    let refused: Vec<_> = report.refused().collect();
    assert!(
        matches!(refused.as_slice(), [(id, SendError::QueueFull { .. })] if *id == stalled.id()),
        "{report:?}"
    );
    assert!(
        report
            .results()
            .iter()
            .any(|(id, r)| *id == good.id() && r.is_ok())
    );

    // In the order listed; an id that names no open connection is `Closed`.
    let report = server.send_each(
        &table! { "n" => 2 }.into(),
        &[good.id(), stalled.id(), gone_id],
    );
    let results = report.results();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0], (good.id(), Ok(())));
    assert!(matches!(results[1], (id, Err(SendError::QueueFull { .. })) if id == stalled.id()));
    assert_eq!(results[2], (gone_id, Err(SendError::Closed)));
    assert!(!report.all_accepted());

    // The counting forms agree, and the good connection got every message.
    assert_eq!(server.broadcast(&table! { "n" => 3 }.into()), 1);
    assert_eq!(
        server.send(&table! { "n" => 4 }.into(), &[stalled.id(), good.id()]),
        1
    );
    for n in 1..=4 {
        let (from, packet) = util::receive(&client_net);
        assert_eq!(from, Source::Client(good_client.id()));
        assert_eq!(util::number(&packet), Some(n));
    }
    // A value that cannot be sent is every recipient's error.
    let deep = (0..200).fold(Value::Nil, |v, _| table! { "d" => v }.into());
    let report = server.send_each(&deep, &[good.id(), stalled.id()]);
    assert!(
        report
            .results()
            .iter()
            .all(|(_, r)| matches!(r, Err(SendError::TooDeep { .. })))
    );
}

#[test]
fn drained_fires_at_the_low_water_mark_while_the_queue_is_not_empty() {
    // The defaults: large against what one writable edge of the server's
    // socket lets through (a third of its send buffer, at most 4 MiB here).
    const LIMIT: usize = 8 * 1024 * KIB;
    const LOW: usize = LIMIT / 4;
    let net = network_with(LIMIT, LOW);
    let server = util::listen(&net);
    let mut peer = small_window_peer(server.port());
    let conn = util::accept(&net);
    let id = conn.id();
    fill(&server, &conn, LIMIT);
    assert!(server.queued_bytes(id).unwrap() > LOW);
    // While the kernel took the first bytes, the queue may have drained
    // already: only what follows the last refusal counts.
    drop(net.poll_events());
    read_down_to(&mut peer, &server, id, LOW);
    let (ev, _) = wait_for(&net, |e| matches!(e.kind, EventKind::Drained { .. }));
    assert!(matches!(ev.kind, EventKind::Drained { object } if object == ObjectId::Connection(id)));
    // The peer stopped reading: what is left stays queued. The old rule
    // (Drained only once empty) would never have fired here.
    let left = server.queued_bytes(id).unwrap();
    assert!(left > 0 && left <= LOW, "{left} bytes queued");
    assert!(conn.send(&blob(8 * KIB)).is_ok(), "room again");
}

#[test]
fn wait_writable_times_out_while_full_and_wakes_when_room_appears() {
    let net = network();
    let server = util::listen(&net);
    let mut peer = small_window_peer(server.port());
    let conn = util::accept(&net);
    let id = conn.id();
    // An empty queue is writable at once.
    conn.wait_writable(Duration::ZERO).unwrap();
    fill(&server, &conn, LIMIT);

    let t = Instant::now();
    let timeout = Duration::from_millis(100);
    match conn.wait_writable(timeout) {
        Err(Error::Timeout { operation, after }) => {
            assert_eq!(operation, "wait_writable");
            assert_eq!(after, timeout);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(t.elapsed() >= timeout);
    assert!(matches!(
        server.wait_writable(id, Duration::from_millis(10)),
        Err(Error::Timeout { .. })
    ));

    // A watcher notes when the queue reaches the mark; a reader makes room.
    let done = Arc::new(AtomicBool::new(false));
    let server = Arc::new(server);
    let watcher = {
        let (server, done) = (server.clone(), done.clone());
        thread::spawn(move || {
            loop {
                // Seen after the waiter woke, it counts as "at once".
                let over = done.load(Ordering::Relaxed);
                if server.queued_bytes(id).unwrap_or(0) <= LOW {
                    return Some(Instant::now());
                }
                if over {
                    return None;
                }
                thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let reader = {
        let server = server.clone();
        thread::spawn(move || {
            read_down_to(&mut peer, &server, id, LOW);
            peer
        })
    };
    let result = conn.wait_writable(DEADLINE);
    let woke = Instant::now();
    done.store(true, Ordering::Relaxed);
    result.unwrap();
    let room = watcher.join().unwrap().expect("the watcher saw the mark");
    let _peer = reader.join().unwrap();
    let late = woke.saturating_duration_since(room);
    println!("wait_writable returned {late:?} after the queue reached the mark");
    assert!(late < Duration::from_millis(50), "woke {late:?} late");
    assert!(server.queued_bytes(id).unwrap() <= LOW);
    server.wait_writable(id, Duration::ZERO).unwrap();

    // Closing ends the wait with `Closed`.
    conn.disconnect();
    assert!(matches!(
        conn.wait_writable(Duration::from_secs(1)),
        Err(Error::Closed)
    ));
}

#[test]
fn keyed_broadcasts_and_direct_sends_arrive_in_order() {
    const KEY: &str = "0C03EA65238DD2C25EB87CE563868098";
    let server_net = Network::new();
    let client_net = Network::new();
    let server = server_net.server("127.0.0.1", 0, Some(KEY)).unwrap();
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let c = client_net
                .client("127.0.0.1", server.port(), Some(KEY))
                .unwrap();
            c.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
            c
        })
        .collect();
    let conns: Vec<Connection> = (0..3).map(|_| util::accept(&server_net)).collect();
    // Fan-outs (sealed by the IO thread) interleaved with direct sends
    // (sealed by the caller) to one connection: one counter, wire order.
    let total = 300usize;
    for n in 0..total as i64 {
        if n % 3 == 0 {
            conns[0].send(&table! { "n" => n }.into()).unwrap();
        } else {
            assert_eq!(server.broadcast(&table! { "n" => n }.into()), 3);
        }
    }
    let want = (0..total).filter(|n| n % 3 != 0).count() * 3 + total.div_ceil(3);
    let events = util::collect(&client_net, want, |e| {
        matches!(e.kind, EventKind::Receive { .. })
    });
    let mut seen: std::collections::HashMap<_, Vec<usize>> = Default::default();
    for e in events {
        let EventKind::Receive { from, packet } = e.kind else {
            unreachable!()
        };
        seen.entry(from)
            .or_default()
            .push(util::number(&packet).unwrap());
    }
    let all: Vec<usize> = (0..total).collect();
    let broadcasts: Vec<usize> = (0..total).filter(|n| n % 3 != 0).collect();
    let mut sequences: Vec<Vec<usize>> = seen.into_values().collect();
    sequences.sort();
    // The client of `conns[0]` got everything in order, the others every
    // broadcast in order.
    assert_eq!(sequences, vec![all, broadcasts.clone(), broadcasts]);
    drop((clients, conns));
}

#[cfg(feature = "futures")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writable_future_stays_pending_while_full_and_resolves_when_room_appears() {
    let net = network();
    let server = util::listen(&net);
    let mut peer = small_window_peer(server.port());
    let conn = util::accept(&net);
    let id = conn.id();
    conn.writable().await.unwrap();
    fill(&server, &conn, LIMIT);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), conn.writable())
            .await
            .is_err(),
        "pending while the queue is above the mark"
    );
    let server = Arc::new(server);
    let reader = {
        let server = server.clone();
        thread::spawn(move || {
            read_down_to(&mut peer, &server, id, LOW);
            peer
        })
    };
    tokio::time::timeout(DEADLINE, conn.writable())
        .await
        .expect("woken when room appears")
        .unwrap();
    assert!(server.queued_bytes(id).unwrap() <= LOW);
    let _peer = reader.join().unwrap();
    conn.disconnect();
    assert!(matches!(conn.writable().await, Err(Error::Closed)));
}
