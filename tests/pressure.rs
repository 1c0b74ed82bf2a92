//! Under pressure: what hostile or just fast peers can make a server hold,
//! and whether the others still get through. Loopback only, bounded in
//! count and time; the numbers come from the library's own counters
//! (`Network::memory_in_use`), not from the process, which other tests share.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use tablenet::{
    CloseReason, Config, Error, EventKind, Network, OverflowPolicy, ProtocolError, Source, Value,
    table,
};
use util::raw_plain;

const WAIT: Duration = Duration::from_secs(20);
const MIB: usize = 1024 * 1024;

/// Starts a message frame of `len` bytes (kind byte included) and sends
/// `sent` of them.
fn partial_frame(stream: &mut TcpStream, len: usize, sent: usize) {
    let mut bytes = Vec::with_capacity(4 + sent);
    bytes.extend_from_slice(&(len as u32).to_le_bytes());
    bytes.push(0x01);
    bytes.resize(4 + sent, 0x55);
    stream.write_all(&bytes).unwrap();
}

/// The frame of a message `{nil, true, true, ...}` of exactly `frame_len`
/// bytes (kind byte included), written by hand: a sequence part whose first
/// element is nil, two bytes a value that decodes to a 48-byte slot.
fn holey_sequence_frame(frame_len: usize) -> Vec<u8> {
    // kind, TABLE tag, count (FC + u32), nil, (BOOLEAN true) * k, empty hash.
    let k = (frame_len - 1 - 1 - 5 - 1 - 1) / 2;
    let mut f = Vec::with_capacity(4 + frame_len);
    let len = 1 + 1 + 5 + 1 + 2 * k + 1;
    f.extend_from_slice(&(len as u32).to_le_bytes());
    f.extend_from_slice(&[0x01, 0x05, 0xFC]);
    f.extend_from_slice(&((k + 1) as u32).to_le_bytes());
    f.push(0x00);
    for _ in 0..k {
        f.extend_from_slice(&[0x01, 0x01]);
    }
    f.push(0x00);
    f
}

/// After a send met `QueueFull`: waits for the network's `Drained` (its
/// queue emptied), or until `stop()`; fails after the deadline.
fn wait_drained(net: &Network, stop: impl Fn() -> bool) {
    let end = Instant::now() + WAIT;
    while !stop() {
        assert!(Instant::now() < end, "no Drained within {WAIT:?}");
        let events = net.wait_events(Duration::from_millis(20));
        if events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Drained { .. }))
        {
            return;
        }
    }
}

fn numbered(n: usize) -> Value {
    table! { "n" => n as i64 }.into()
}

/// 12 peers each hold most of a 4 MiB frame against a 16 MiB budget while
/// an honest client streams numbered messages: the server never holds more
/// than its budget, the honest stream arrives whole and in order, and each
/// stalled partial frame is closed by the frame timeout.
#[test]
fn partial_frames_stay_within_the_budget_and_stalled_ones_are_closed() {
    const ATTACKERS: usize = 12;
    const HONEST: usize = 2000;
    let mut config = Config::default();
    config.limits.max_frame_size = 4 * MIB;
    config.memory_budget = 16 * MIB;
    config.frame_timeout = Some(Duration::from_millis(500));
    let budget = config.memory_budget;
    let snet = Network::with_config(config).unwrap();
    let server = util::listen(&snet);
    let port = server.port();

    let attackers: Vec<TcpStream> = (0..ATTACKERS)
        .map(|_| {
            let mut s = raw_plain(port);
            partial_frame(&mut s, 4 * MIB, 4 * MIB - 512 * 1024);
            s
        })
        .collect();

    let cnet = Network::new();
    let client = cnet.connect(("127.0.0.1", port), None).unwrap();
    client.wait_for_connect(util::DEADLINE).unwrap();
    let sender_net = cnet.clone();
    let sender = thread::spawn(move || {
        for n in 0..HONEST {
            loop {
                match client.send(&numbered(n)) {
                    Ok(()) => break,
                    Err(tablenet::SendError::QueueFull { .. }) => {
                        wait_drained(&sender_net, || false)
                    }
                    Err(e) => panic!("honest send {n}: {e:?}"),
                }
            }
        }
        client
    });

    let start = Instant::now();
    let (mut next, mut peak, mut timed_out) = (0usize, 0usize, 0usize);
    let mut honest_source = None;
    let mut handles = Vec::new(); // a dropped Connect handle would close its connection
    while (next < HONEST || timed_out < ATTACKERS) && start.elapsed() < Duration::from_secs(60) {
        peak = peak.max(snet.memory_in_use());
        for ev in snet.wait_events(Duration::from_millis(10)) {
            match ev.kind {
                EventKind::Connect { connection, .. } => handles.push(connection),
                EventKind::Receive { from, packet } => {
                    let n = util::number(&packet).expect("a numbered message");
                    assert_eq!(n, next, "the honest stream arrives in order");
                    assert!(honest_source.is_none_or(|s| s == from));
                    honest_source = Some(from);
                    next += 1;
                }
                EventKind::ClientClose {
                    reason: CloseReason::Timeout,
                    ..
                } => timed_out += 1,
                _ => {}
            }
        }
    }
    peak = peak.max(snet.memory_in_use());
    println!(
        "{ATTACKERS} partial 4 MiB frames: peak held {:.1} MiB of a {} MiB budget; \
         {next}/{HONEST} honest messages in order; {timed_out} stalled frames closed; {:?}",
        peak as f64 / MIB as f64,
        budget / MIB,
        start.elapsed()
    );
    assert_eq!(next, HONEST, "every honest message arrived");
    assert_eq!(timed_out, ATTACKERS, "every stalled frame was closed");
    assert!(peak <= budget, "held {peak} bytes, budget {budget}");
    util::wait_until("memory is given back", util::DEADLINE, || {
        snet.memory_in_use() < MIB
    });
    drop(attackers);
    let client = sender.join().unwrap();
    drop(client);
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}

/// A peer that starts a large frame and stalls holds the memory another
/// peer's large frame needs: it is closed after a fifth of the frame timeout
/// (here 2 s of 10 s), so the waiting message arrives long before the stalled
/// frame's own timeout.
#[test]
fn a_stalled_large_frame_is_closed_early_to_make_room_for_a_waiting_one() {
    let mut config = Config::default();
    config.limits.max_frame_size = 4 * MIB;
    // Large partial frames share half of it: one 4 MiB frame at a time.
    config.memory_budget = 8 * MIB + 128 * 1024;
    config.frame_timeout = Some(Duration::from_secs(10));
    let snet = Network::with_config(config).unwrap();
    let server = util::listen(&snet);
    let port = server.port();

    let mut staller = raw_plain(port);
    partial_frame(&mut staller, 4 * MIB, 2 * MIB);
    util::wait_until("the stalled frame is reserved", util::DEADLINE, || {
        snet.memory_in_use() >= 4 * MIB
    });
    let stalled_at = Instant::now();

    let cnet = Network::new();
    let client = cnet.connect(("127.0.0.1", port), None).unwrap();
    client.wait_for_connect(util::DEADLINE).unwrap();
    let big = "x".repeat(3 * MIB);
    client.send(&Value::from(big.as_str())).unwrap();

    let mut handles = Vec::new(); // a dropped Connect handle would close its connection
    let (mut received, mut evicted) = (None, None);
    let end = Instant::now() + WAIT;
    while (received.is_none() || evicted.is_none()) && Instant::now() < end {
        for ev in snet.wait_events(Duration::from_millis(10)) {
            match ev.kind {
                EventKind::Connect { connection, .. } => handles.push(connection),
                EventKind::Receive { packet, .. } => {
                    assert_eq!(packet.as_str(), Some(big.as_str()));
                    received = Some(stalled_at.elapsed());
                }
                EventKind::Error { error, object, .. } => {
                    let text = error.to_string();
                    assert!(
                        text.contains("while others waited for memory"),
                        "{object:?}, {:?} after the stall began (waiting message \
                         received: {received:?}, memory in use {}): {text}",
                        stalled_at.elapsed(),
                        snet.memory_in_use()
                    );
                    evicted = Some(stalled_at.elapsed());
                }
                _ => {}
            }
        }
    }
    println!("stalled frame closed after {evicted:?}, waiting message received after {received:?}");
    let (evicted, received) = (
        evicted.expect("stalled frame closed"),
        received.expect("received"),
    );
    // Closed by the early rule (its own timeout is 10 s), not before it.
    assert!(evicted >= Duration::from_secs(2), "{evicted:?}");
    assert!(received < Duration::from_secs(10), "{received:?}");
    drop(staller);
    drop(client);
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}

/// One maximum-size (16 MiB) message `{nil, true, true, ...}` decodes to far
/// more than the default budget: it is refused by its decoded size, and its
/// decoding never holds up the IO thread: pings on another connection are
/// answered within 250 ms throughout (99% of them; all within 1 s).
#[test]
fn a_dense_message_is_refused_by_its_decoded_size_and_pings_go_on() {
    let mut config = Config::default();
    config.limits.max_frame_size = 16 * MIB;
    let snet = Network::with_config(config).unwrap();
    let server = util::listen(&snet);
    let port = server.port();

    let mut pinger = raw_plain(port);
    let mut attacker = raw_plain(port);
    let frame = holey_sequence_frame(16 * MIB);
    let writer = thread::spawn(move || {
        attacker.write_all(&frame).unwrap();
        attacker
    });

    // The application's thread takes events (and decodes) meanwhile, and
    // says what the dense message became.
    let (done, outcome) = std::sync::mpsc::channel();
    let app = thread::spawn(move || {
        let start = Instant::now();
        let mut handles = Vec::new(); // a dropped Connect handle would close its connection
        while start.elapsed() < Duration::from_secs(120) {
            for ev in snet.wait_events(Duration::from_millis(50)) {
                let got = match ev.kind {
                    EventKind::Connect { connection, .. } => {
                        handles.push(connection);
                        continue;
                    }
                    EventKind::Error { error, .. } => Some(error),
                    EventKind::Receive { .. } => None,
                    _ => continue,
                };
                let _ = done.send(got);
                return snet;
            }
        }
        panic!("no event for the dense message in 120 s");
    });

    // A Ping every 10 ms (the wait for the outcome paces them) until the
    // dense message has been dealt with.
    let mut answers = Vec::new();
    let error = loop {
        let sent = Instant::now();
        pinger.write_all(&[1, 0, 0, 0, 0x03]).unwrap();
        let mut pong = [0u8; 5];
        pinger.read_exact(&mut pong).unwrap();
        assert_eq!(pong, [1, 0, 0, 0, 0x04]);
        answers.push(sent.elapsed());
        match outcome.recv_timeout(Duration::from_millis(10)) {
            Ok(got) => break got,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(e) => panic!("the application thread ended without an outcome: {e}"),
        }
    };
    answers.sort();
    let pings = answers.len();
    let worst = answers.last().copied().unwrap_or_default();
    let p99 = answers.get(pings * 99 / 100).copied().unwrap_or_default();
    let snet = app.join().unwrap();
    let _attacker = writer.join().unwrap();
    println!(
        "dense 16 MiB message: {error:?}; {pings} pings, 99th percentile {p99:?}, slowest {worst:?}"
    );
    assert!(
        matches!(
            error,
            Some(Error::Protocol(ProtocolError::DecodedTooLarge { .. }))
        ),
        "{error:?}"
    );
    assert!(pings > 0);
    // The goal is 250 ms; one answer of hundreds may meet a scheduler stall
    // on a loaded 2-core machine (the decode used to block for 5 s).
    assert!(p99 < Duration::from_millis(250), "99th percentile {p99:?}");
    assert!(worst < Duration::from_secs(1), "a ping waited {worst:?}");
    snet.shutdown(Duration::from_secs(2));
}

/// Under the overwriting ring, one peer sending as fast as it can is paused
/// at its share instead of overwriting everyone: a client that joins during
/// the flood gets its Connect and every message through, and nothing is
/// dropped.
#[test]
fn a_flooder_cannot_overwrite_the_others() {
    const HONEST: usize = 200;
    let mut config = Config::default();
    config.overflow = OverflowPolicy::Overwrite;
    let snet = Network::with_config(config).unwrap();
    let server = util::listen(&snet);
    let port = server.port();

    let fnet = Network::new();
    let flooder = fnet.connect(("127.0.0.1", port), None).unwrap();
    flooder.wait_for_connect(util::DEADLINE).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        let fnet = fnet.clone();
        thread::spawn(move || {
            let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
            let mut sent = 0u64;
            while !stopped() {
                match flooder.send(&Value::from("flood")) {
                    Ok(()) => sent += 1,
                    Err(tablenet::SendError::QueueFull { .. }) => wait_drained(&fnet, stopped),
                    Err(e) => panic!("flood: {e:?}"),
                }
            }
            (flooder, sent)
        })
    };
    // Let the flood fill what it may while nobody takes events.
    util::wait_until("the flood fills its share", util::DEADLINE, || {
        snet.pending_events() >= 1500
    });

    let hnet = Network::new();
    let honest = hnet.connect(("127.0.0.1", port), None).unwrap();
    honest.wait_for_connect(util::DEADLINE).unwrap();
    for n in 0..HONEST {
        honest.send(&numbered(n)).unwrap();
    }
    // Taken slowly: only once the flood has filled its share again, so the
    // honest client competes with a full ring every time.
    let start = Instant::now();
    let (mut next, mut dropped, mut connects, mut floods) = (0usize, 0u64, 0usize, 0usize);
    let mut honest_source: Option<Source> = None;
    let mut handles = Vec::new(); // a dropped Connect handle would close its connection
    while next < HONEST && start.elapsed() < Duration::from_secs(30) {
        util::wait_until("the flood refills its share", util::DEADLINE, || {
            snet.pending_events() >= 1500
        });
        for ev in snet.poll_events() {
            match ev.kind {
                EventKind::Dropped { count } => dropped += count,
                EventKind::Connect { connection, .. } => {
                    connects += 1;
                    handles.push(connection);
                }
                EventKind::Receive { from, packet } => match util::number(&packet) {
                    Some(n) => {
                        assert_eq!(n, next, "the honest client's messages in order");
                        assert!(honest_source.is_none_or(|s| s == from));
                        honest_source = Some(from);
                        next += 1;
                    }
                    None => floods += 1,
                },
                _ => {}
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (flooder, sent) = flood.join().unwrap();
    println!(
        "flood under Overwrite: {sent} sent, {floods} taken; honest {next}/{HONEST}; \
         {connects} connects seen; {dropped} dropped"
    );
    assert_eq!(dropped, 0, "nothing was overwritten");
    assert_eq!(next, HONEST, "every honest message arrived");
    assert_eq!(
        connects, 2,
        "the flooder's and the honest client's Connect arrived"
    );
    drop(handles);
    drop(flooder);
    drop(honest);
    fnet.shutdown(Duration::from_secs(2));
    hnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}

/// Peers that connect and never speak cannot fill a server: with
/// `max_connections` = 300 and 300 silent sockets open, only the newest
/// `max_handshaking` (50) are kept, and an honest client still joins and is
/// heard. (Without the cap, the honest client was refused: "server full".)
#[test]
fn silent_sockets_cannot_hold_every_slot() {
    const SILENT: usize = 300;
    const HALF_OPEN: usize = 50;
    let mut config = Config::default();
    config.max_connections = SILENT;
    config.max_handshaking = HALF_OPEN;
    let snet = Network::with_config(config).unwrap();
    let server = util::listen(&snet);
    let port = server.port();
    let silent: Vec<TcpStream> = (0..SILENT)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // The server accepted them all: the oldest were closed as newer came.
    let mut evicted = 0;
    let start = Instant::now();
    while evicted < SILENT - HALF_OPEN && start.elapsed() < WAIT {
        for ev in snet.wait_events(Duration::from_millis(20)) {
            // Reported one by one up to 20 a second, then summed up.
            let EventKind::Error { error, .. } = ev.kind else {
                continue;
            };
            let (count, error) = match error {
                Error::UnauthenticatedFailures { count, last, .. } => (count as usize, *last),
                error => (1, error),
            };
            assert_eq!(
                error,
                Error::Protocol(ProtocolError::HandshakeEvicted { limit: HALF_OPEN })
            );
            evicted += count;
        }
    }
    assert_eq!(
        evicted,
        SILENT - HALF_OPEN,
        "the oldest silent sockets were closed"
    );

    let cnet = Network::new();
    let client = cnet.connect(("127.0.0.1", port), None).unwrap();
    client.wait_for_connect(Duration::from_secs(5)).unwrap();
    client.send(&numbered(7)).unwrap();
    let mut handles = Vec::new();
    let mut heard = false;
    let start = Instant::now();
    while !heard && start.elapsed() < WAIT {
        for ev in snet.wait_events(Duration::from_millis(20)) {
            match ev.kind {
                EventKind::Connect { connection, .. } => handles.push(connection),
                EventKind::Receive { packet, .. } => heard = util::number(&packet) == Some(7),
                _ => {}
            }
        }
    }
    println!(
        "{SILENT} silent sockets, {HALF_OPEN} kept: {evicted} closed; an honest client joined and was heard in {:?}",
        start.elapsed()
    );
    assert!(heard, "the honest client's message arrived");
    assert_eq!(
        handles.len(),
        1,
        "only the honest client finished its handshake"
    );
    drop(silent);
    drop(client);
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}
