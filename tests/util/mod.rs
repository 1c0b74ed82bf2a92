//! Shared helpers for the loopback tests: waiting for events with deadlines.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tablenet::{
    Client, ClientId, CloseReason, Connection, ConnectionId, Event, EventKind, Network, Server,
    ServerId, Source, Value,
};

/// Default deadline for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(10);

thread_local! {
    /// Events that came in the same batch after a `wait_for` match, per
    /// network (keyed by the address of its shared config), for the next wait.
    static BACKLOG: RefCell<HashMap<usize, VecDeque<Event>>> = RefCell::new(HashMap::new());
}

fn backlog_key(net: &Network) -> usize {
    std::ptr::from_ref(net.config()) as usize
}

/// The next events: those kept back by an earlier `wait_for`, else a wait.
fn next_batch(net: &Network, timeout: Duration) -> Vec<Event> {
    let kept = BACKLOG.with(|b| b.borrow_mut().remove(&backlog_key(net)));
    match kept {
        Some(events) if !events.is_empty() => events.into(),
        _ => net.wait_events(timeout),
    }
}

/// Collects events until `pred` matches one, or panics with what was seen at
/// the deadline. Returns the match and the events taken before it. Events
/// that came after it in the same batch are kept for the next `wait_for` or
/// `collect` on this network, so none is lost between two waits.
pub fn wait_for(net: &Network, mut pred: impl FnMut(&Event) -> bool) -> (Event, Vec<Event>) {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "deadline passed; events seen: {seen:#?}");
        let mut batch = next_batch(net, left).into_iter();
        while let Some(ev) = batch.next() {
            if pred(&ev) {
                let rest: VecDeque<Event> = batch.collect();
                if !rest.is_empty() {
                    BACKLOG.with(|b| b.borrow_mut().insert(backlog_key(net), rest));
                }
                return (ev, seen);
            }
            seen.push(ev);
        }
    }
}

/// Collects events until `n` match `pred`; others before the last match
/// are dropped, those after it in the same batch kept for the next wait.
pub fn collect(net: &Network, n: usize, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut others = 0usize;
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "deadline passed with {} of {n} events ({others} others)",
            got.len()
        );
        let mut batch = next_batch(net, left).into_iter();
        while let Some(ev) = batch.next() {
            if pred(&ev) {
                got.push(ev);
                if got.len() == n {
                    // What came after the last match is kept, as `wait_for` does.
                    let rest: VecDeque<Event> = batch.collect();
                    if !rest.is_empty() {
                        BACKLOG.with(|b| b.borrow_mut().insert(backlog_key(net), rest));
                    }
                    return got;
                }
            } else {
                others += 1;
            }
        }
    }
    got
}

/// Waits for the next `Connect` and returns its connection handle.
pub fn accept(net: &Network) -> tablenet::Connection {
    match wait_for(net, |e| matches!(e.kind, EventKind::Connect { .. }))
        .0
        .kind
    {
        EventKind::Connect { connection, .. } => connection,
        _ => unreachable!(),
    }
}

/// Polls `cond` every 2 ms until it holds, failing after `limit`. For states
/// that no event announces (a connection count, queued bytes); wait for
/// events with `wait_for` instead.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How long a send queue must keep its size, after a refusal, to count as
/// stalled (the peer or the ring stopped taking bytes).
pub const STALL: Duration = Duration::from_millis(300);

/// After a send was refused: waits until `queued()` differs from its value
/// now (true: the IO thread wrote some, sending can go on) or has kept it
/// for [`STALL`] (false: the path to the peer is full). Fails after `limit`.
pub fn queue_moved(limit: Duration, mut queued: impl FnMut() -> usize) -> bool {
    let before = queued();
    let since = Instant::now();
    let mut moved = false;
    wait_until("the send queue moves or stalls", limit, || {
        moved = queued() != before;
        moved || since.elapsed() >= STALL
    });
    moved
}

/// How long a test's client waits to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A plain server on 127.0.0.1, port chosen by the OS.
pub fn listen(net: &Network) -> Server {
    net.server("127.0.0.1", 0, None).unwrap()
}

/// Connects a plain client on `client_net` to `server` and returns it with
/// the server side's owning `Connection` (taken from `server_net`).
pub fn connect(
    server_net: &Network,
    client_net: &Network,
    server: &Server,
) -> (Client, Connection) {
    let client = client_net
        .client(&server.address(), server.port(), None)
        .unwrap();
    client.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    (client, accept(server_net))
}

/// Waits for the one `Receive` expected next and returns it.
pub fn receive(net: &Network) -> (Source, Value) {
    let (ev, _) = wait_for(net, |e| matches!(e.kind, EventKind::Receive { .. }));
    match ev.kind {
        EventKind::Receive { from, packet } => (from, packet),
        _ => unreachable!(),
    }
}

/// Waits for the `ServerClose` of `client` and returns its reason.
pub fn server_close(net: &Network, client: ClientId) -> CloseReason {
    let (ev, _) = wait_for(
        net,
        |e| matches!(&e.kind, EventKind::ServerClose { client: c, .. } if *c == client),
    );
    match ev.kind {
        EventKind::ServerClose { reason, .. } => reason,
        _ => unreachable!(),
    }
}

/// Waits for the `ClientClose` of `connection` and returns its server and reason.
pub fn client_close(net: &Network, connection: ConnectionId) -> (ServerId, CloseReason) {
    let (ev, _) = wait_for(
        net,
        |e| matches!(&e.kind, EventKind::ClientClose { connection: c, .. } if *c == connection),
    );
    match ev.kind {
        EventKind::ClientClose { server, reason, .. } => (server, reason),
        _ => unreachable!(),
    }
}

/// A loopback port that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// The field `n` of a numbered test packet.
pub fn number(packet: &Value) -> Option<usize> {
    packet
        .get("n")
        .and_then(Value::as_i64)
        .and_then(|n| usize::try_from(n).ok())
}

/// Short description of an event, for comparing event sequences:
/// `R7` for a Receive of packet `n = 7`, `Dropped(3)`, `ClientClose(reason)`.
pub fn brief(ev: &Event) -> String {
    match &ev.kind {
        EventKind::Receive { packet, .. } => match number(packet) {
            Some(n) => format!("R{n}"),
            None => format!("R{packet:?}"),
        },
        EventKind::Dropped { count } => format!("Dropped({count})"),
        EventKind::ClientClose { reason, .. } => format!("ClientClose({reason})"),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------- raw peers

/// A plain version 2 preamble, byte for byte as docs/PROTOCOL.md gives it.
pub const PLAIN_PREAMBLE: &[u8; 8] = b"TBLN\x02\x00\x00\x00";

/// A raw TCP connection to a loopback server (nothing sent yet), with
/// [`DEADLINE`] on every read and write.
pub fn raw(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// Reads the server's plain preamble.
pub fn read_preamble(stream: &mut TcpStream) {
    let mut preamble = [0u8; 8];
    stream.read_exact(&mut preamble).unwrap();
    assert_eq!(&preamble, PLAIN_PREAMBLE, "server preamble");
}

/// A raw peer that has exchanged plain preambles with the server.
pub fn raw_plain(port: u16) -> TcpStream {
    let mut stream = raw(port);
    stream.write_all(PLAIN_PREAMBLE).unwrap();
    read_preamble(&mut stream);
    stream
}
