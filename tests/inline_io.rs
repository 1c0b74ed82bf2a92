//! `Config::inline_io`: the application's thread drives the sockets inside
//! `poll_events`/`wait_events`/`wait_for_connect`; no IO thread exists.
//!
//! One test function (its steps in order) so that the thread check sees only
//! this test's threads.

mod util;

use std::time::{Duration, Instant};

use tablenet::{CloseReason, Config, EventKind, Network, OverflowPolicy, Value, table};

fn inline_network() -> Network {
    let mut config = Config::default();
    config.inline_io = true;
    Network::with_config(config).unwrap()
}

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn inline_io_works_on_the_callers_thread() {
    single_thread_round_trips_without_an_io_thread();
    two_threads_ping_pong_in_order();
    dropping_the_network_still_flushes_what_was_queued();
}

/// One thread, one network: `wait_for_connect` drives both ends of the
/// connection, `wait_events` the messages.
fn single_thread_round_trips_without_an_io_thread() {
    let net = inline_network();
    let server = util::listen(&net);
    let client = net.client("127.0.0.1", server.port(), None).unwrap();
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let conn = util::accept(&net);
    let names = thread_names();
    assert!(
        !names.iter().any(|n| n.starts_with("tablenet-io")),
        "no IO thread with inline IO: {names:?}"
    );
    for i in 0..50i64 {
        client.send(&table! { "OpCode" => i }.into()).unwrap();
        let (_, packet) = util::receive(&net);
        assert_eq!(packet["OpCode"], Value::Integer(i));
        conn.send(&table! { "Reply" => i }.into()).unwrap();
        let (_, packet) = util::receive(&net);
        assert_eq!(packet["Reply"], Value::Integer(i));
    }
    drop(client);
    let (_, reason) = util::client_close(&net, conn.id());
    assert_eq!(reason, CloseReason::ClosedByPeer);
    // poll_events drives too, and never blocks.
    let start = Instant::now();
    for _ in 0..10 {
        net.poll_events();
    }
    assert!(start.elapsed() < Duration::from_secs(1));
    net.shutdown(Duration::from_secs(2));
}

/// Two networks on two threads, strict request/reply, as a game client and
/// its server would.
fn two_threads_ping_pong_in_order() {
    const TRIPS: i64 = 2000;
    let server_net = inline_network();
    let server = util::listen(&server_net);
    let port = server.port();
    let echo = std::thread::spawn(move || {
        let _server = server;
        let conn = util::accept(&server_net);
        for _ in 0..TRIPS {
            let (_, packet) = util::receive(&server_net);
            conn.send(&packet).unwrap();
        }
        let (_, reason) = util::client_close(&server_net, conn.id());
        assert_eq!(reason, CloseReason::ClosedByPeer);
    });
    let net = inline_network();
    let client = net.client("127.0.0.1", port, None).unwrap();
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    util::wait_for(&net, |e| matches!(e.kind, EventKind::Connected { .. }));
    for i in 0..TRIPS {
        client
            .send(&table! { "OpCode" => i, "Data" => "From client" }.into())
            .unwrap();
        let (_, packet) = util::receive(&net);
        assert_eq!(packet["OpCode"], Value::Integer(i));
    }
    drop(client);
    net.shutdown(Duration::from_secs(2));
    echo.join().unwrap();
}

/// Nobody drives a dropped network: a thread of its own flushes what was
/// queued, so the peer still receives everything, then the close.
fn dropping_the_network_still_flushes_what_was_queued() {
    const COUNT: i64 = 20_000;
    // A background-IO peer that keeps every event.
    let mut config = Config::default();
    config.overflow = OverflowPolicy::Lossless;
    let receiver = Network::with_config(config).unwrap();
    let server = util::listen(&receiver);
    let net = inline_network();
    let client = net.client("127.0.0.1", server.port(), None).unwrap();
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let conn = util::accept(&receiver);
    for i in 0..COUNT {
        // Nobody drives between sends: large bursts stay queued.
        client.send(&table! { "Seq" => i }.into()).unwrap();
    }
    // Dropping the last handle waits until the queue is out, and this
    // receiver reads only while this thread takes its events: drop there.
    let dropper = std::thread::spawn(move || {
        drop(client);
        drop(net);
    });
    let packets = util::collect(&receiver, COUNT as usize, |e| {
        matches!(e.kind, EventKind::Receive { .. })
    });
    for (i, event) in (0..).zip(packets) {
        let EventKind::Receive { packet, .. } = event.kind else {
            unreachable!()
        };
        assert_eq!(packet["Seq"], Value::Integer(i));
    }
    let (_, reason) = util::client_close(&receiver, conn.id());
    assert_eq!(reason, CloseReason::ClosedByPeer);
    dropper.join().unwrap();
}
