mod util;

use util::wait_until;

// Loopback tests of the event ring: overwrite (by slots and by bytes) and
// lossless.
//
// A deterministic look at a ring that is not being polled needs to know when
// the IO thread has pushed everything it saw. The public API has no counter,
// so these tests use a barrier built from what the IO thread visibly does:
// 1. wait until `connection_count()` drops to 0: the IO thread has read the
//    peer's end of stream, after all its data, and produced its ClientClose;
// 2. then open a raw TCP connection to the server and read the server's
//    preamble. The IO thread writes it when it accepts, which it does only
//    after it has handed every event it produced earlier to the ring. The
//    raw connection never sends a preamble, so it adds no event while open.
// Only then is the ring polled, once.

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tablenet::proto::encode_message_to_vec;
use tablenet::{
    CloseReason, Config, Event, EventKind, Network, OverflowPolicy, SendError, Server, Source,
    Value, table,
};

/// Upper bound for any one test in this file.
const TEST_BUDGET: Duration = Duration::from_secs(30);

/// The barrier described at the top: returns once every event the server's
/// IO thread produced before this call is in the ring. Keep the stream
/// until the ring has been polled (closing it produces an Error event).
fn io_barrier(server: &Server) -> TcpStream {
    let mut probe = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    probe.set_read_timeout(Some(util::DEADLINE)).unwrap();
    let mut preamble = [0u8; 8];
    probe.read_exact(&mut preamble).unwrap();
    assert_eq!(&preamble[..4], b"TBLN");
    probe
}

fn numbered(n: usize) -> Value {
    table! { "n" => n as i64 }.into()
}

fn briefs(events: &[Event]) -> Vec<String> {
    events.iter().map(util::brief).collect()
}

// ---------------------------------------------------------------- overwrite by slots

#[test]
fn overwrite_drops_exactly_the_oldest_and_reports_the_count() {
    const N: usize = 1000;
    const CAPACITY: usize = 100;
    let start = Instant::now();
    let mut cfg = Config::default();
    cfg.overflow = OverflowPolicy::Overwrite; // what is tested (Rust's default is lossless)
    cfg.connection_events = usize::MAX; // one sender may fill the ring (no share)
    cfg.event_capacity = CAPACITY;
    let snet = Network::with_config(cfg).unwrap();
    let server = snet.server("127.0.0.1", 0, None).unwrap();
    let cnet = Network::new();
    let client = cnet.client("127.0.0.1", server.port(), None).unwrap();
    client.wait_for_connect(Duration::from_secs(2)).unwrap();
    // Take the Connect first: if it were overwritten, its handle would close
    // the connection halfway through the stream (see the next test).
    let conn = util::accept(&snet);
    assert!(snet.poll_events().is_empty());

    for n in 0..N {
        client.send(&numbered(n)).unwrap();
    }
    client.disconnect(); // after flushing all N
    wait_until("the server saw the close", util::DEADLINE, || {
        server.connection_count() == 0
    });
    let _probe = io_barrier(&server);

    // Pushed since the ring was emptied: N Receives and one ClientClose,
    // counted (overwritten ones too) before they are taken.
    let total = N + 1;
    assert_eq!(snet.pending_events(), total);
    let events = snet.poll_events();
    assert_eq!(snet.pending_events(), 0);
    let lost = (total - CAPACITY) as u64;
    let mut expected: Vec<String> = vec![format!("Dropped({lost})")];
    expected.extend((N - (CAPACITY - 1)..N).map(|n| format!("R{n}")));
    expected.push(format!("ClientClose({})", CloseReason::ClosedByPeer));
    assert_eq!(briefs(&events), expected);
    for ev in &events[1..CAPACITY] {
        let EventKind::Receive { from, .. } = &ev.kind else {
            unreachable!()
        };
        assert_eq!(*from, Source::Connection(conn.id()));
    }
    let EventKind::ClientClose {
        connection,
        server: sid,
        ..
    } = &events[CAPACITY].kind
    else {
        unreachable!()
    };
    assert_eq!((*connection, *sid), (conn.id(), server.id()));
    // Nothing more is waiting.
    assert!(snet.poll_events().is_empty());
    let took = start.elapsed();
    println!("overwrite by slots: {took:?}");
    assert!(took < TEST_BUDGET);
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}

// ---------------------------------------------------------------- overwritten Connect

#[test]
fn an_overwritten_connect_closes_its_connection_and_is_counted() {
    let start = Instant::now();
    let mut cfg = Config::default();
    cfg.overflow = OverflowPolicy::Overwrite; // what is tested (Rust's default is lossless)
    cfg.connection_events = usize::MAX; // one sender may fill the ring (no share)
    cfg.event_capacity = 1;
    let snet = Network::with_config(cfg).unwrap();
    let hooks = Arc::new(AtomicUsize::new(0));
    {
        let hooks = hooks.clone();
        snet.set_wake_hook(move || {
            hooks.fetch_add(1, Ordering::SeqCst);
        });
    }
    let server = snet.server("127.0.0.1", 0, None).unwrap();
    let cnet = Network::new();

    // A's Connect fills the one slot (the hook says it is there).
    let a = cnet.client("127.0.0.1", server.port(), None).unwrap();
    wait_until("A's Connect is in the ring", util::DEADLINE, || {
        hooks.load(Ordering::SeqCst) == 1
    });
    // B's Connect overwrites it: A's handle is dropped, A closes; A's
    // ClientClose overwrites B's Connect: B closes; B's ClientClose
    // overwrites A's ClientClose. Four events, three lost, both closed.
    let b = cnet.client("127.0.0.1", server.port(), None).unwrap();
    let mut lost_server: Vec<_> = Vec::new();
    let mut connected = 0;
    let deadline = Instant::now() + util::DEADLINE;
    while lost_server.len() < 2 {
        assert!(
            Instant::now() < deadline,
            "only {lost_server:?} lost the server"
        );
        for ev in cnet.wait_events(Duration::from_millis(50)) {
            match ev.kind {
                EventKind::Connected { result, .. } => {
                    result.unwrap();
                    connected += 1;
                }
                EventKind::ServerClose { client, reason } => {
                    assert_eq!(reason, CloseReason::ClosedByPeer, "{client:?}");
                    lost_server.push(client);
                }
                other => panic!("unexpected client-side event {other:?}"),
            }
        }
    }
    lost_server.sort();
    let mut both = vec![a.id(), b.id()];
    both.sort();
    assert_eq!(lost_server, both);
    assert_eq!(connected, 2);
    wait_until("the server has no connections", util::DEADLINE, || {
        server.connection_count() == 0
    });
    let _probe = io_barrier(&server);

    assert_eq!(
        hooks.load(Ordering::SeqCst),
        1,
        "the ring never became empty"
    );
    let events = snet.poll_events();
    assert_eq!(
        briefs(&events),
        [
            "Dropped(3)".to_string(),
            format!("ClientClose({})", CloseReason::ClosedLocally)
        ]
    );
    let took = start.elapsed();
    println!("overwritten Connect: {took:?}");
    assert!(took < TEST_BUDGET);
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}

// ---------------------------------------------------------------- overwrite by bytes

#[test]
fn overwrite_by_byte_budget_keeps_the_newest_that_fit() {
    const N: usize = 50;
    const BUDGET: usize = 64 * 1024;
    const PAD: usize = 10_000;
    let start = Instant::now();
    let mut cfg = Config::default();
    cfg.overflow = OverflowPolicy::Overwrite; // what is tested (Rust's default is lossless)
    cfg.connection_events = usize::MAX; // one sender may fill the ring (no share)
    cfg.event_bytes = BUDGET;
    cfg.limits.max_frame_size = 16 * 1024;
    let limits = cfg.limits;
    let snet = Network::with_config(cfg).unwrap();
    let server = snet.server("127.0.0.1", 0, None).unwrap();
    let cnet = Network::new();
    let client = cnet.client("127.0.0.1", server.port(), None).unwrap();
    client.wait_for_connect(Duration::from_secs(2)).unwrap();
    let conn = util::accept(&snet);

    let msg = |n: usize| -> Value { table! { "n" => n as i64, "pad" => vec![b'p'; PAD] }.into() };
    // A packet's size against the budget: its frame minus the 4-byte length
    // prefix and the kind byte.
    let size = |v: &Value| encode_message_to_vec(v, &limits).unwrap().len() - 5;
    let sizes: Vec<usize> = (0..N).map(|n| size(&msg(n))).collect();
    for n in 0..N {
        client.send(&msg(n)).unwrap();
    }
    client.disconnect();
    wait_until("the server saw the close", util::DEADLINE, || {
        server.connection_count() == 0
    });
    let _probe = io_barrier(&server);

    // What a ring that overwrites the oldest must hold: the longest suffix
    // of [R0..R49, ClientClose] that fits the slots and the bytes.
    let mut kept = 0usize; // events, from the end
    let mut bytes = 0usize;
    for s in sizes.iter().rev() {
        if bytes + s > BUDGET {
            break;
        }
        bytes += s;
        kept += 1;
    }
    let first_kept = N - kept;
    let mut expected = vec![format!("Dropped({first_kept})")];
    expected.extend((first_kept..N).map(|n| format!("R{n}")));
    expected.push(format!("ClientClose({})", CloseReason::ClosedByPeer));

    let events = snet.poll_events();
    let held: usize = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Receive { packet, .. } => Some(size(packet)),
            _ => None,
        })
        .sum();
    println!(
        "byte budget: kept {kept} packets of about {} B, {held} B",
        sizes[0]
    );
    assert!(
        held <= BUDGET,
        "{held} bytes of packets held, budget {BUDGET}"
    );
    assert_eq!(briefs(&events), expected);
    for ev in &events {
        if let EventKind::Receive { from, packet } = &ev.kind {
            assert_eq!(*from, Source::Connection(conn.id()));
            assert_eq!(
                packet.get("pad").and_then(Value::as_bytes).map(<[u8]>::len),
                Some(PAD)
            );
        }
    }
    let took = start.elapsed();
    println!("overwrite by bytes: {took:?}");
    assert!(took < TEST_BUDGET);
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
}

// ---------------------------------------------------------------- lossless

/// What a lossless run saw.
#[derive(Debug)]
struct LosslessRun {
    /// Messages the client had queued when it could not send any more.
    sent_before_stall: usize,
    /// Did the sender stall while nobody polled?
    stalled: bool,
    /// Receive events and their packet bytes in each poll's batch.
    batches: Vec<(usize, usize)>,
}

impl LosslessRun {
    fn max_events(&self) -> usize {
        self.batches.iter().map(|b| b.0).max().unwrap_or(0)
    }
    fn max_bytes(&self) -> usize {
        self.batches.iter().map(|b| b.1).max().unwrap_or(0)
    }
}

/// A client sends `total` numbered messages padded to about `pad` bytes to
/// a server on a network with `cfg` (lossless). Nobody polls the server
/// until the sender is stuck (its queue full and unchanged for 300 ms: the
/// server stopped reading); then the server polls until every message has
/// arrived, checking order and that nothing was dropped, while the client
/// sends the rest.
fn lossless_run(
    cfg: Config,
    client_queue: usize,
    pad: usize,
    total: usize,
    deadline: Instant,
) -> LosslessRun {
    let limits = cfg.limits;
    let snet = Network::with_config(cfg).unwrap();
    let server = snet.server("127.0.0.1", 0, None).unwrap();
    let mut ccfg = Config::default();
    ccfg.send_queue_bytes = client_queue;
    let cnet = Network::with_config(ccfg).unwrap();
    let client = cnet.client("127.0.0.1", server.port(), None).unwrap();
    client.wait_for_connect(Duration::from_secs(2)).unwrap();
    let conn = util::accept(&snet);

    let blob = vec![b'l'; pad];
    let msg = |n: usize| -> Value { table! { "n" => n as i64, "pad" => blob.clone() }.into() };
    let size = |v: &Value| encode_message_to_vec(v, &limits).unwrap().len() - 5;

    // Phase 1: nobody polls the server.
    let mut next = 0usize;
    let stalled = loop {
        if next == total {
            break false;
        }
        assert!(
            Instant::now() < deadline,
            "phase 1 ran out of time at {next}"
        );
        match client.send(&msg(next)) {
            Ok(()) => next += 1,
            Err(SendError::QueueFull { .. }) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if !util::queue_moved(left, || client.queued_bytes()) {
                    break true;
                }
            }
            Err(e) => panic!("send {next}: {e:?}"),
        }
    };
    let sent_before_stall = next;

    // Phase 2: poll until all have arrived; keep the sender going.
    let mut expect = 0usize;
    let mut batches = Vec::new();
    while expect < total {
        assert!(
            Instant::now() < deadline,
            "ran out of time with {expect} of {total} received ({next} sent)"
        );
        let batch = snet.wait_events(Duration::from_millis(5));
        let mut events = 0;
        let mut bytes = 0;
        for ev in batch {
            match ev.kind {
                EventKind::Receive { from, packet } => {
                    assert_eq!(from, Source::Connection(conn.id()));
                    assert_eq!(util::number(&packet), Some(expect), "lost or reordered");
                    events += 1;
                    bytes += size(&packet);
                    expect += 1;
                }
                EventKind::Dropped { count } => panic!("lossless ring dropped {count} events"),
                other => panic!("unexpected event {other:?}"),
            }
        }
        if events > 0 {
            batches.push((events, bytes));
        }
        while next < total {
            match client.send(&msg(next)) {
                Ok(()) => next += 1,
                Err(SendError::QueueFull { .. }) => break,
                Err(e) => panic!("send {next}: {e:?}"),
            }
        }
    }
    assert!(snet.poll_events().is_empty());
    drop(client);
    drop(conn);
    cnet.shutdown(Duration::from_secs(2));
    snet.shutdown(Duration::from_secs(2));
    LosslessRun {
        sent_before_stall,
        stalled,
        batches,
    }
}

fn lossless_config(capacity: usize) -> Config {
    let mut cfg = Config::default();
    cfg.event_capacity = capacity;
    cfg.overflow = OverflowPolicy::Lossless;
    cfg
}

#[test]
fn lossless_delivers_every_message_in_order_and_slows_the_sender() {
    let start = Instant::now();
    // 10,000 x 8 KiB = 80 MiB: more than the client's 8 MiB queue plus what
    // the kernel buffers on loopback (tcp_rmem max 32 MiB + tcp_wmem max 4 MiB).
    let run = lossless_run(
        lossless_config(100),
        8 << 20,
        8 * 1024,
        10_000,
        start + TEST_BUDGET,
    );
    println!(
        "lossless: {} sent before the stall, {} batches, largest {} events, {:?}",
        run.sent_before_stall,
        run.batches.len(),
        run.max_events(),
        start.elapsed()
    );
    assert!(
        run.stalled,
        "the sender never stalled while nobody polled: the full ring did not stop reading"
    );
    assert!(run.sent_before_stall < 10_000);
}

#[test]
fn lossless_ring_stays_within_its_slots() {
    let start = Instant::now();
    // 12,000 x 4 KiB = 47 MiB, more than the kernel buffers and the queue.
    let run = lossless_run(
        lossless_config(100),
        64 * 1024,
        4 * 1024,
        12_000,
        start + TEST_BUDGET,
    );
    println!(
        "lossless slots: stalled {} after {}; first batches {:?}; largest {} events; {:?}",
        run.stalled,
        run.sent_before_stall,
        &run.batches[..run.batches.len().min(5)],
        run.max_events(),
        start.elapsed()
    );
    assert!(run.stalled, "the sender never stalled");
    assert!(
        run.max_events() <= 100,
        "a lossless ring of 100 slots handed out {} Receive events in one poll",
        run.max_events()
    );
}

#[test]
fn lossless_ring_stays_within_its_byte_budget() {
    const BUDGET: usize = 64 * 1024;
    const MAX_FRAME: usize = 16 * 1024;
    let start = Instant::now();
    let mut cfg = lossless_config(2000);
    cfg.event_bytes = BUDGET;
    cfg.limits.max_frame_size = MAX_FRAME;
    // 5,000 x 10 kB = 50 MB, more than the kernel buffers and the queue.
    let run = lossless_run(cfg, 64 * 1024, 10_000, 5_000, start + TEST_BUDGET);
    println!(
        "lossless bytes: stalled {} after {}; first batches {:?}; largest {} B; {:?}",
        run.stalled,
        run.sent_before_stall,
        &run.batches[..run.batches.len().min(5)],
        run.max_bytes(),
        start.elapsed()
    );
    assert!(run.stalled, "the sender never stalled");
    // Allow one frame past the budget: the frame that found the ring full.
    assert!(
        run.max_bytes() <= BUDGET + MAX_FRAME,
        "a lossless ring with a {BUDGET} B budget handed out {} B of packets in one poll",
        run.max_bytes()
    );
}
