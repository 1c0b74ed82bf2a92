//! Nothing lost without being told: a process that queues messages and
//! exits delivers them all; a cut stream is reported as cut, never as a
//! clean close; `shutdown` reports what it abandoned. Loopback only; every
//! wait has a deadline.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tablenet::proto::{LENGTH_PREFIX, MAGIC, VERSION};
use tablenet::{
    CloseReason, Config, Error, EventKind, Network, OverflowPolicy, ProtocolError, SendError,
    Source, Value, table,
};

const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const CHILD_ENV: &str = "TABLENET_EXIT_CHILD";
const MESSAGES: i64 = 300;
const BODY: usize = 60 * 1024;
/// The receiver stops taking events after this many messages, until the
/// child has queued everything: the last ones then sit in the child's send
/// queue (about 3 MB, well under its 8 MiB limit) when it leaves.
const PAUSE_AT: i64 = 250;
/// How long the receiver keeps taking nothing once the child is leaving.
const LEAVE: Duration = Duration::from_millis(500);
/// What the child prints once everything is queued, just before it leaves.
const QUEUED: &str = "TABLENET-EXIT-CHILD-QUEUED";

/// The child process: connects to `PORT`, queues 300 messages of 60 KiB
/// (waiting for `Drained` whenever the queue is full), then leaves as
/// `MODE` says: `return` (its handles dropped at the end of the scope, as
/// at the end of `main`) or `drop` (the network dropped first, then the
/// client). Run by the tests below, never on its own.
#[test]
#[ignore = "the child process of exit_* tests"]
fn exit_child() {
    let spec = std::env::var(CHILD_ENV).expect("run by the exit_* tests");
    let (mode, port) = spec.split_once(':').unwrap();
    queue_and_leave(mode, port.parse().unwrap());
    // As when `main` returns: the process ends at once, IO thread or not.
    std::process::exit(0);
}

fn queue_and_leave(mode: &str, port: u16) {
    let net = Network::new();
    let client = net.client("127.0.0.1", port, None).unwrap();
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let body = Value::from(vec![0xAB_u8; BODY]);
    for seq in 0..MESSAGES {
        let message: Value = table! { "seq" => seq, "body" => body.clone() }.into();
        let deadline = Instant::now() + util::DEADLINE;
        loop {
            match client.send(&message) {
                Ok(()) => break,
                Err(SendError::QueueFull { .. }) => {
                    assert!(Instant::now() < deadline, "never drained");
                    // Wait for the queue to drain before trying again.
                    let _ = util::wait_for(&net, |e| matches!(e.kind, EventKind::Drained { .. }));
                }
                Err(e) => panic!("send {seq}: {e}"),
            }
        }
    }
    println!("\n{QUEUED}");
    match mode {
        "return" => {} // both dropped as the scope ends: client, then net
        "drop" => {
            drop(net);
            drop(client);
        }
        other => panic!("unknown mode {other}"),
    }
}

/// Runs the child in `mode` against a server here, and checks that every
/// message arrived, in order, followed by a clean close.
fn everything_arrives_when_the_child(mode: &str) {
    let mut config = Config::default();
    // A small lossless ring: while this side takes no events, it stops
    // reading, and the child's messages wait in the child.
    config.overflow = OverflowPolicy::Lossless;
    config.event_capacity = 16;
    let net = Network::with_config(config).unwrap();
    let server = util::listen(&net);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "exit_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{}", server.port()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line_tx, lines) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut connections = Vec::new();
    let mut next = 0;
    let reason = 'events: loop {
        assert!(
            Instant::now() < deadline,
            "{mode}: only {next} messages by the deadline"
        );
        for event in net.wait_events(Duration::from_millis(200)) {
            match event.kind {
                EventKind::Connect { connection, .. } => connections.push(connection),
                EventKind::Receive { packet, .. } => {
                    assert_eq!(packet["seq"], Value::from(next), "{mode}: in order");
                    assert_eq!(packet["body"].as_bytes().map(<[u8]>::len), Some(BODY));
                    next += 1;
                    if next == PAUSE_AT {
                        // Take nothing until the child has queued the rest
                        // and is about to leave.
                        loop {
                            let line = lines
                                .recv_timeout(util::DEADLINE)
                                .expect("the child queued everything");
                            if line.contains(QUEUED) {
                                break;
                            }
                        }
                        // Give it time to leave: a child that does not wait
                        // for its queue is gone by then, its messages lost.
                        // One that waits stays (its linger is 5 s).
                        let leaving = Instant::now() + LEAVE;
                        while Instant::now() < leaving && child.try_wait().unwrap().is_none() {
                            thread::sleep(Duration::from_millis(2));
                        }
                    }
                }
                EventKind::ClientClose { reason, .. } => break 'events reason,
                EventKind::Error { error, .. } => panic!("{mode}: {error}"),
                _ => {}
            }
        }
    };
    let status = child.wait().unwrap();
    assert!(status.success(), "{mode}: the child failed: {status}");
    assert_eq!(next, MESSAGES, "{mode}: messages delivered");
    assert_eq!(reason, CloseReason::ClosedByPeer, "{mode}");
    println!("{mode}: {next} messages of {BODY} bytes, then {reason}");
}

#[test]
fn exit_by_returning_from_main_delivers_everything_queued() {
    everything_arrives_when_the_child("return");
}

#[test]
fn exit_by_dropping_the_handles_delivers_everything_queued() {
    everything_arrives_when_the_child("drop");
}

// ------------------------------------------------------------ a cutting proxy

/// Reads exactly one frame (length prefix and payload) from `from`.
fn read_frame(from: &mut TcpStream) -> Vec<u8> {
    let mut frame = vec![0; LENGTH_PREFIX];
    from.read_exact(&mut frame).unwrap();
    let len = u32::from_le_bytes(frame[..LENGTH_PREFIX].try_into().unwrap()) as usize;
    frame.resize(LENGTH_PREFIX + len, 0);
    from.read_exact(&mut frame[LENGTH_PREFIX..]).unwrap();
    frame
}

/// A proxy for one connection that knows no key: it passes the client's
/// preamble (and Noise messages 1 and 3, on keyed links) and its first `pass`
/// frames to the server, drops the next frame, and ends the stream to the
/// server right there, at a frame boundary. The server's bytes flow back
/// untouched. Returns the proxy's port.
fn cutting_proxy(server_port: u16, keyed: bool, pass: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
        let (mut from_server, mut to_client) =
            (server.try_clone().unwrap(), client.try_clone().unwrap());
        thread::spawn(move || {
            let _ = std::io::copy(&mut from_server, &mut to_client);
        });
        client.set_read_timeout(Some(util::DEADLINE)).unwrap();
        let mut fixed = [0; 8];
        client.read_exact(&mut fixed).unwrap();
        let mut ext = vec![0; usize::from(u16::from_le_bytes([fixed[6], fixed[7]]))];
        client.read_exact(&mut ext).unwrap();
        server.write_all(&fixed).unwrap();
        server.write_all(&ext).unwrap();
        if keyed {
            // Noise messages 1 and 3.
            for _ in 0..2 {
                server.write_all(&read_frame(&mut client)).unwrap();
            }
        }
        for _ in 0..pass {
            server.write_all(&read_frame(&mut client)).unwrap();
        }
        let _dropped = read_frame(&mut client);
        server.shutdown(Shutdown::Write).unwrap();
        // Keep the client's side open until the test is over.
        let _ = client.read_to_end(&mut Vec::new());
    });
    port
}

#[test]
fn a_stream_cut_at_a_frame_boundary_is_reported_as_cut_not_as_a_clean_close() {
    for keyed in [false, true] {
        let key = keyed.then_some(KEY);
        let net = Network::new();
        let server = net.server("127.0.0.1", 0, key).unwrap();
        let proxy = cutting_proxy(server.port(), keyed, 3);
        let client = net.client("127.0.0.1", proxy, key).unwrap();
        client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
        for n in 0..4 {
            client.send(&table! { "n" => n }.into()).unwrap();
        }
        let mut connections = Vec::new();
        let mut received = Vec::new();
        let (connection_error, reason) = loop {
            let (event, _) = util::wait_for(&net, |e| {
                matches!(
                    e.kind,
                    EventKind::Connect { .. }
                        | EventKind::Receive {
                            from: Source::Connection(_),
                            ..
                        }
                        | EventKind::Error { .. }
                        | EventKind::ClientClose { .. }
                )
            });
            match event.kind {
                EventKind::Connect { connection, .. } => connections.push(connection),
                EventKind::Receive { packet, .. } => received.push(packet["n"].clone()),
                EventKind::Error { error, .. } => {
                    let (close, _) =
                        util::wait_for(&net, |e| matches!(e.kind, EventKind::ClientClose { .. }));
                    let EventKind::ClientClose { reason, .. } = close.kind else {
                        unreachable!()
                    };
                    break (Some(error), reason);
                }
                EventKind::ClientClose { reason, .. } => break (None, reason),
                _ => unreachable!(),
            }
        };
        assert_eq!(received, [0.into(), 1.into(), 2.into()], "keyed: {keyed}");
        let cut = Error::Protocol(ProtocolError::StreamCut);
        assert_eq!(reason, CloseReason::Error(cut.clone()), "keyed: {keyed}");
        assert_eq!(connection_error, Some(cut), "keyed: {keyed}");
        println!("keyed {keyed}: {reason}");
        net.shutdown(Duration::from_secs(1));
    }
}

// ------------------------------------------------------------ versions

#[test]
fn a_version_1_peer_is_refused_with_both_versions_named() {
    assert_eq!(VERSION, 2);
    let net = Network::new();
    let server = util::listen(&net);
    let mut old = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    old.write_all(&[MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], 1, 0, 0, 0])
        .unwrap();
    let (event, _) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Error { .. }));
    let EventKind::Error { error, .. } = event.kind else {
        unreachable!()
    };
    assert_eq!(
        error,
        Error::Protocol(ProtocolError::UnsupportedVersion { theirs: 1, ours: 2 })
    );
    assert_eq!(
        error.to_string(),
        "protocol violation: peer speaks protocol version 1, this side speaks version 2"
    );
    // The old peer, in turn, reads a version 2 preamble: enough for it to
    // say which versions differ.
    old.set_read_timeout(Some(util::DEADLINE)).unwrap();
    let mut preamble = [0; 8];
    old.read_exact(&mut preamble).unwrap();
    assert_eq!(preamble[..4], MAGIC);
    assert_eq!(preamble[4], 2);
}

// ------------------------------------------------------------ shutdown report

#[test]
fn shutdown_reports_a_clean_close() {
    let net = Network::new();
    let server = util::listen(&net);
    let (client, conn) = util::connect(&net, &net, &server);
    client.send(&table! { "hello" => 1 }.into()).unwrap();
    let _ = util::receive(&net);
    let report = net.shutdown(util::DEADLINE);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.frames(), report.bytes()), (0, 0));
    drop(conn);
}

#[test]
fn shutdown_reports_what_it_could_not_deliver() {
    // A peer that accepts and never reads: the client's queue cannot drain.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, test_over) = std::sync::mpsc::channel::<()>();
    let silent = thread::spawn(move || {
        let (mut peer, _) = listener.accept().unwrap();
        // Speak tablenet's preamble, then never read again until the test is over.
        peer.write_all(&[MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, 0, 0, 0])
            .unwrap();
        let _ = test_over.recv_timeout(util::DEADLINE);
    });
    let net = Network::new();
    let client = net.client("127.0.0.1", port, None).unwrap();
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let big = Value::from(vec![7_u8; 1024 * 1024]);
    let mut sent = 0;
    while client.send(&big).is_ok() {
        sent += 1;
        assert!(sent < 64, "the queue never filled");
    }
    let started = Instant::now();
    let report = net.shutdown(Duration::from_millis(300));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded by its timeout"
    );
    assert!(!report.is_clean());
    let [abandoned] = report.abandoned.as_slice() else {
        panic!("one connection abandoned data: {report:?}")
    };
    assert_eq!(abandoned.object, tablenet::ObjectId::Client(client.id()));
    assert_eq!(abandoned.reason, CloseReason::Timeout);
    assert!(abandoned.bytes > 1024 * 1024, "{abandoned:?}");
    assert!(
        abandoned.frames >= 2 && abandoned.frames <= sent + 1,
        "{abandoned:?}"
    );
    println!(
        "abandoned {} frames, {} bytes of {sent} sent",
        abandoned.frames, abandoned.bytes
    );
    drop(done);
    silent.join().unwrap();
}
