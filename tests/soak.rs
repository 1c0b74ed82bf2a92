// The soak test: ignored by default; run it alone, in release:
//
//     cargo test --release --test soak -- --ignored soak --nocapture
//
// 100 encrypted clients (on 4 client networks, one thread each) send 10,000
// messages each, of random sizes and shapes (about 1 GB in total), to one
// server whose ring is lossless, disconnecting and reconnecting at random.
// Every message is generated from (client, sequence number) and a fixed
// seed, so the server regenerates what was sent and compares every delivered
// message with it, checks that each arrives exactly once and in order on its
// connection, and that none is lost. Memory is checked through the library's
// counters (each client's queued bytes; the packet bytes and events the ring
// hands over in one poll) and the process's peak resident memory (VmHWM,
// meaningful when this test runs alone).
//
// It prints one summary line:
// SOAK messages_sent=.. delivered=.. lost=0 max_ring_bytes=.. max_queued_bytes=.. max_rss_mib=..

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tablenet::proto::{Limits, encode_message_to_vec};
use tablenet::{
    Client, CloseReason, Config, Connection, ConnectionId, EventKind, Network, OverflowPolicy,
    SendError, Source, Table, Value,
};

const CLIENTS: usize = 100;
const MESSAGES: u64 = 10_000;
/// Client networks, each driven by one thread.
const THREADS: usize = 4;
const SEED: u64 = 0x7AB1_E5EE_D50A_2026;
/// AES-256-GCM.
const KEY: &str = "00112233445566778899AABBCCDDEEFF0F1E2D3C4B5A69788796A5B4C3D2E1F0";
/// On average one disconnect and reconnect per this many messages.
const RECONNECT_ONE_IN: u64 = 1000;
/// Each client's send queue limit.
const CLIENT_QUEUE: usize = 1 << 20;
/// Largest message body the generator makes (plus a little structure).
const MAX_BLOB: u64 = 48 * 1024;
/// The whole run must finish within this.
const TIME_LIMIT: Duration = Duration::from_secs(240);
/// Peak resident memory allowed (the process's VmHWM).
const MAX_RSS_MIB: u64 = 768;

// ---------------------------------------------------------------- generator

/// splitmix64: small, fast and good enough to make test data.
struct Rng(u64);

impl Rng {
    fn for_message(client: u32, seq: u64) -> Rng {
        let mut rng = Rng(SEED ^ (u64::from(client) << 40) ^ seq.wrapping_mul(0x9E37_79B9));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    fn text(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        self.bytes(n)
            .into_iter()
            .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
            .collect()
    }

    /// A finite float (NaN is not equal to itself, so it is left out).
    fn float(&mut self) -> f64 {
        let f = f64::from_bits(self.next());
        if f.is_nan() { -0.25 } else { f }
    }
}

fn scalar(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => Value::Boolean(rng.below(2) == 1),
        1 => Value::Integer(rng.next() as i64),
        2 => Value::Integer(rng.below(1000) as i64 - 500),
        3 => Value::Number(rng.float()),
        4 => {
            let n = rng.below(24) as usize;
            rng.text(n).into()
        }
        _ => Table::new().into(),
    }
}

/// A random value of about `budget` bytes, tables nested at most 5 deep.
fn value(rng: &mut Rng, budget: usize, depth: usize) -> Value {
    if depth >= 5 || budget < 32 {
        return scalar(rng);
    }
    match rng.below(8) {
        0 => rng.bytes(budget).into(),
        1 => rng.text(budget).into(),
        _ => {
            let mut table = Table::new();
            let n = 1 + rng.below(8) as usize;
            let share = budget / n;
            for i in 0..n {
                let v = value(rng, share, depth + 1);
                match rng.below(5) {
                    0 | 1 => table.push(v),
                    2 => {
                        table.set(format!("key{i}"), v);
                    }
                    3 => {
                        table.set(100 + i as i64, v);
                    }
                    _ => {
                        table.try_set(Value::Number(i as f64 + 0.5), v).unwrap();
                    }
                }
            }
            table.into()
        }
    }
}

/// Message `seq` of client `client`: the same every time it is made.
fn message(client: u32, seq: u64) -> Value {
    let mut rng = Rng::for_message(client, seq);
    // Sizes: mostly small, some medium, a few large; about 1 KiB on average.
    let class = rng.below(100);
    let budget = if class < 80 {
        16 + rng.below(300)
    } else if class < 98 {
        512 + rng.below(3584)
    } else {
        8192 + rng.below(MAX_BLOB - 8192)
    } as usize;
    let mut table = Table::new();
    table.set("c", i64::from(client));
    table.set("s", seq as i64);
    table.set("body", value(&mut rng, budget, 1));
    table.into()
}

/// Does this client disconnect and reconnect before sending `seq`?
fn reconnects_before(client: u32, seq: u64) -> bool {
    // A stream of its own, not the message's.
    seq > 0
        && Rng::for_message(client, seq | 1 << 63)
            .next()
            .is_multiple_of(RECONNECT_ONE_IN)
}

// ---------------------------------------------------------------- clients

#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    wire_bytes: AtomicU64,
    reconnects: AtomicU64,
    refusals: AtomicU64,
    max_queued: AtomicU64,
}

struct Member {
    index: u32,
    client: Client,
    next: u64,
    /// The message before which this client last reconnected.
    reconnected_before: u64,
}

/// One client network and its share of the clients, sending until every
/// one of them has sent all its messages.
fn client_thread(first: usize, count: usize, port: u16, totals: Arc<Totals>, deadline: Instant) {
    let mut cfg = Config::default();
    cfg.send_queue_bytes = CLIENT_QUEUE;
    // Dropped clients flush what they queued; let them take their time.
    cfg.linger = Duration::from_secs(60);
    let net = Network::with_config(cfg).unwrap();
    let limits = Limits::default();
    let connect = || net.client("127.0.0.1", port, Some(KEY)).unwrap();
    let mut members: Vec<Member> = (first..first + count)
        .map(|i| Member {
            index: i as u32,
            client: connect(),
            next: 0,
            reconnected_before: 0,
        })
        .collect();
    let mut live = count;
    while live > 0 {
        assert!(Instant::now() < deadline, "clients out of time");
        let mut progressed = false;
        for m in members.iter_mut().filter(|m| m.next < MESSAGES) {
            for _ in 0..16 {
                if m.reconnected_before != m.next && reconnects_before(m.index, m.next) {
                    // Dropping a client flushes what it queued (the
                    // library's promise), then closes, even when it is still
                    // in its handshake; the next messages go on a new
                    // connection.
                    m.reconnected_before = m.next;
                    let old = std::mem::replace(&mut m.client, connect());
                    drop(old);
                    totals.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                let msg = message(m.index, m.next);
                match m.client.send(&msg) {
                    Ok(()) => {
                        let size = encode_message_to_vec(&msg, &limits).unwrap().len();
                        totals.sent.fetch_add(1, Ordering::Relaxed);
                        totals.wire_bytes.fetch_add(size as u64, Ordering::Relaxed);
                        m.next += 1;
                        progressed = true;
                        if m.next == MESSAGES {
                            live -= 1;
                            break;
                        }
                    }
                    Err(SendError::QueueFull { .. }) => {
                        totals.refusals.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => panic!("client {} message {}: {e}", m.index, m.next),
                }
                let queued = m.client.queued_bytes() as u64;
                totals.max_queued.fetch_max(queued, Ordering::Relaxed);
            }
            let queued = m.client.queued_bytes() as u64;
            totals.max_queued.fetch_max(queued, Ordering::Relaxed);
        }
        let wait = if progressed {
            Duration::ZERO
        } else {
            Duration::from_millis(1)
        };
        for ev in net.wait_events(wait) {
            match ev.kind {
                EventKind::Connected { result, client } => {
                    if let Err(e) = result {
                        panic!("{client:?} could not connect: {e}");
                    }
                }
                EventKind::ServerClose { client, reason } => {
                    // Only the clients we dropped may close.
                    assert_eq!(reason, CloseReason::ClosedLocally, "{client:?}");
                    assert!(
                        members.iter().all(|m| m.client.id() != client),
                        "a live client lost its server: {client:?}"
                    );
                }
                EventKind::Drained { .. } | EventKind::Dropped { .. } => {}
                other => panic!("unexpected client event {other:?}"),
            }
        }
    }
    // Everything sent: keep the clients until their queues are empty, then
    // shut down (which flushes and closes them).
    let flush_deadline = Instant::now() + Duration::from_secs(60);
    while members.iter().any(|m| m.client.queued_bytes() > 0) {
        assert!(Instant::now() < flush_deadline, "queues never drained");
        net.wait_events(Duration::from_millis(5));
    }
    drop(members);
    net.shutdown(Duration::from_secs(60));
}

// ---------------------------------------------------------------- memory

/// A line of /proc/self/status in KiB (VmHWM, VmRSS).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- the test

#[test]
#[ignore = "soak test: about 20 s in release; run with --ignored soak"]
fn soak() {
    let start = Instant::now();
    let deadline = start + TIME_LIMIT;
    let mut cfg = Config::default();
    cfg.overflow = OverflowPolicy::Lossless;
    let ring_slots = cfg.event_capacity;
    let ring_budget = cfg.event_bytes;
    let limits = cfg.limits;
    let snet = Network::with_config(cfg).unwrap();
    let server = snet.server("127.0.0.1", 0, Some(KEY)).unwrap();
    let port = server.port();

    let totals = Arc::new(Totals::default());
    let per_thread = CLIENTS / THREADS;
    let mut threads: Vec<Option<std::thread::JoinHandle<()>>> = (0..THREADS)
        .map(|t| {
            let totals = totals.clone();
            Some(std::thread::spawn(move || {
                client_thread(t * per_thread, per_thread, port, totals, deadline)
            }))
        })
        .collect();

    // The server: verify everything that arrives.
    let expected_total = CLIENTS as u64 * MESSAGES;
    let mut seen: Vec<Vec<bool>> = vec![vec![false; MESSAGES as usize]; CLIENTS];
    let mut last_on: HashMap<ConnectionId, (u32, u64)> = HashMap::new();
    let mut conns: HashMap<ConnectionId, Connection> = HashMap::new();
    let (mut delivered, mut connects, mut closes) = (0u64, 0u64, 0u64);
    let (mut max_ring_bytes, mut max_ring_events) = (0usize, 0usize);
    let mut next_report = Instant::now() + Duration::from_secs(10);
    while delivered < expected_total {
        assert!(
            Instant::now() < deadline,
            "out of time: {delivered} of {expected_total} delivered, {} sent",
            totals.sent.load(Ordering::Relaxed)
        );
        // A client thread that panicked: say why at once.
        for slot in &mut threads {
            if slot.as_ref().is_some_and(|t| t.is_finished())
                && let Some(Err(e)) = slot.take().map(|t| t.join())
            {
                std::panic::resume_unwind(e);
            }
        }
        let batch = snet.wait_events(Duration::from_millis(20));
        let (mut ring_bytes, mut ring_events) = (0usize, 0usize);
        for ev in batch {
            match ev.kind {
                EventKind::Receive {
                    from: Source::Connection(id),
                    packet,
                } => {
                    ring_events += 1;
                    ring_bytes += encode_message_to_vec(&packet, &limits).unwrap().len() - 5;
                    let c = packet.get("c").and_then(Value::as_i64).unwrap();
                    let s = packet.get("s").and_then(Value::as_i64).unwrap();
                    let (c, s) = (u32::try_from(c).unwrap(), u64::try_from(s).unwrap());
                    assert!((c as usize) < CLIENTS && s < MESSAGES, "c={c} s={s}");
                    assert!(
                        packet == message(c, s),
                        "client {c} message {s} arrived changed"
                    );
                    let slot = &mut seen[c as usize][s as usize];
                    assert!(!*slot, "client {c} message {s} arrived twice");
                    *slot = true;
                    if let Some(&(lc, ls)) = last_on.get(&id) {
                        assert_eq!((c, s), (lc, ls + 1), "out of order on {id:?}");
                    }
                    last_on.insert(id, (c, s));
                    delivered += 1;
                }
                EventKind::Connect { connection, .. } => {
                    connects += 1;
                    conns.insert(connection.id(), connection);
                }
                EventKind::ClientClose {
                    connection, reason, ..
                } => {
                    assert_eq!(reason, CloseReason::ClosedByPeer, "{connection:?}");
                    closes += 1;
                    conns.remove(&connection);
                    last_on.remove(&connection);
                }
                EventKind::Dropped { count } => panic!("the lossless ring dropped {count}"),
                other => panic!("unexpected server event {other:?}"),
            }
        }
        assert!(
            ring_events <= ring_slots,
            "{ring_events} packets in one poll of a {ring_slots}-slot ring"
        );
        assert!(
            ring_bytes <= ring_budget + limits.max_frame_size,
            "{ring_bytes} packet bytes in one poll, budget {ring_budget}"
        );
        max_ring_bytes = max_ring_bytes.max(ring_bytes);
        max_ring_events = max_ring_events.max(ring_events);
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(10);
            eprintln!(
                "soak: {:?}: {delivered} delivered, {} sent, {} connections, RSS {} MiB",
                start.elapsed(),
                totals.sent.load(Ordering::Relaxed),
                conns.len(),
                status_kib("VmRSS") / 1024
            );
        }
    }
    for t in threads.into_iter().flatten() {
        t.join().unwrap();
    }
    let took = start.elapsed();
    let sent = totals.sent.load(Ordering::Relaxed);
    let lost = sent - delivered;
    let max_queued = totals.max_queued.load(Ordering::Relaxed);
    let max_rss_mib = status_kib("VmHWM") / 1024;
    let wire = totals.wire_bytes.load(Ordering::Relaxed);
    let missing = seen.iter().flatten().filter(|s| !**s).count();
    println!(
        "soak: {took:?}; {:.1} MB of frames ({:.0} MB/s); {connects} connections opened, {closes} closed; \
         {} reconnects; {} QueueFull refusals (retried); largest poll {max_ring_events} events",
        wire as f64 / 1e6,
        wire as f64 / 1e6 / took.as_secs_f64(),
        totals.reconnects.load(Ordering::Relaxed),
        totals.refusals.load(Ordering::Relaxed),
    );
    println!(
        "SOAK messages_sent={sent} delivered={delivered} lost={lost} max_ring_bytes={max_ring_bytes} \
         max_queued_bytes={max_queued} max_rss_mib={max_rss_mib}"
    );
    assert_eq!(sent, expected_total);
    assert_eq!(lost, 0);
    assert_eq!(missing, 0);
    // One frame may go past the limit: an empty queue always takes one.
    let queue_bound = (CLIENT_QUEUE + MAX_BLOB as usize + 64 * 1024) as u64;
    assert!(
        max_queued <= queue_bound,
        "a client queued {max_queued} bytes, limit {CLIENT_QUEUE} + one frame"
    );
    assert!(
        max_rss_mib <= MAX_RSS_MIB,
        "peak resident memory {max_rss_mib} MiB (run this test alone for a meaningful figure)"
    );
    // Every connection closes once its client is gone.
    let close_deadline = Instant::now() + Duration::from_secs(30);
    while !conns.is_empty() {
        assert!(
            Instant::now() < close_deadline,
            "{} connections stay open",
            conns.len()
        );
        for ev in snet.wait_events(Duration::from_millis(20)) {
            match ev.kind {
                EventKind::ClientClose { connection, .. } => {
                    conns.remove(&connection);
                }
                other => panic!("unexpected server event at the end {other:?}"),
            }
        }
    }
    snet.shutdown(Duration::from_secs(5));
}
