//! Dead-peer detection (Config::heartbeat) and the idle timeout.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tablenet::{CloseReason, Config, Error, EventKind, Network, Value};

const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";

fn network(setup: impl FnOnce(&mut Config)) -> Network {
    let mut cfg = Config::default();
    setup(&mut cfg);
    Network::with_config(cfg).unwrap()
}

/// Asserts that no close or error event arrives on `net` for `period`.
fn stays_quiet(net: &Network, period: Duration) {
    let end = Instant::now() + period;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        for ev in net.wait_events(left) {
            assert!(
                !matches!(
                    ev.kind,
                    EventKind::ClientClose { .. }
                        | EventKind::ServerClose { .. }
                        | EventKind::Error { .. }
                ),
                "unexpected {:?}",
                ev.kind
            );
        }
    }
}

#[test]
fn a_peer_that_goes_silent_is_pinged_then_closed_with_timeout() {
    let limit = Duration::from_millis(300);
    let net = network(|c| c.heartbeat = Some(limit));
    let server = net.server("127.0.0.1", 0, None).unwrap();
    // A raw peer that completes the preamble exchange and then says nothing,
    // as if its machine froze: no FIN ever comes.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    raw.write_all(b"TBLN\x02\x00\x00\x00").unwrap();
    let opened = Instant::now();
    let (ev, _) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Connect { .. }));
    let EventKind::Connect { connection, .. } = ev.kind else {
        unreachable!()
    };
    // The server's preamble, then a ping after a third of the limit.
    raw.set_read_timeout(Some(util::DEADLINE)).unwrap();
    let mut got = [0u8; 13];
    raw.read_exact(&mut got).unwrap();
    assert_eq!(&got[..8], b"TBLN\x02\x00\x00\x00");
    assert_eq!(&got[8..], &[1, 0, 0, 0, 3], "a Ping frame");
    // Unanswered, the connection is closed at the limit, reason Timeout.
    let (ev, seen) = util::wait_for(&net, |e| matches!(e.kind, EventKind::ClientClose { .. }));
    let took = opened.elapsed();
    let EventKind::ClientClose { reason, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(reason, CloseReason::Timeout);
    assert!(took >= limit, "closed after {took:?}, before the limit");
    assert!(took < limit * 4, "closed only after {took:?}");
    assert!(seen.iter().any(|e| matches!(
        &e.kind,
        EventKind::Error {
            error: Error::Timeout {
                operation: "heartbeat",
                ..
            },
            ..
        }
    )));
    assert!(!connection.is_open());
}

#[test]
fn live_peers_answer_pings_and_stay_connected_while_quiet() {
    for key in [None, Some(KEY)] {
        let limit = Duration::from_millis(200);
        // Only the server checks; the client answers pings all the same.
        let server_net = network(|c| c.heartbeat = Some(limit));
        let client_net = Network::new();
        let server = server_net.server("127.0.0.1", 0, key).unwrap();
        let client = client_net.client("127.0.0.1", server.port(), key).unwrap();
        client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
        let conn = util::accept(&server_net);
        stays_quiet(&server_net, limit * 5);
        assert!(conn.is_open() && client.is_connected(), "key {key:?}");
        client.send(&Value::from("still here")).unwrap();
        let (_, packet) = util::receive(&server_net);
        assert_eq!(packet.as_str(), Some("still here"));
    }
}

#[test]
fn idle_timeout_closes_quiet_connections_but_not_busy_ones() {
    let limit = Duration::from_millis(300);
    let server_net = network(|c| c.idle_timeout = Some(limit));
    let client_net = Network::new();
    let server = server_net.server("127.0.0.1", 0, None).unwrap();
    // Started before connecting, so it never runs ahead of the link's clock.
    let start = Instant::now();
    let (quiet, quiet_conn) = util::connect(&server_net, &client_net, &server);
    let (busy, busy_conn) = util::connect(&server_net, &client_net, &server);
    let mut closed = None;
    // The busy client sends every 50 ms; the quiet one never does.
    while start.elapsed() < limit * 3 {
        busy.send(&Value::from("tick")).unwrap();
        for ev in server_net.wait_events(Duration::from_millis(50)) {
            if let EventKind::ClientClose {
                connection, reason, ..
            } = ev.kind
            {
                assert_eq!(connection, quiet_conn.id(), "only the quiet one closes");
                assert_eq!(reason, CloseReason::Timeout);
                closed = Some(start.elapsed());
            }
        }
    }
    let took = closed.expect("the quiet connection was closed");
    assert!(took >= limit && took < limit * 3, "closed after {took:?}");
    assert!(busy_conn.is_open());
    drop(quiet);
}

#[test]
fn a_ping_with_a_body_is_refused() {
    let net = Network::new();
    let server = net.server("127.0.0.1", 0, None).unwrap();
    let mut raw = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    raw.write_all(b"TBLN\x02\x00\x00\x00").unwrap();
    let _conn = util::accept(&net);
    raw.write_all(&[2, 0, 0, 0, 3, 0xFF]).unwrap();
    let (ev, rest) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Error { .. }));
    let EventKind::Error { error, .. } = ev.kind else {
        unreachable!()
    };
    assert!(error.to_string().contains("must be empty"), "{error}");
    // The close usually comes in the same batch as the error.
    if !rest
        .iter()
        .any(|e| matches!(e.kind, EventKind::ClientClose { .. }))
    {
        util::wait_for(&net, |e| matches!(e.kind, EventKind::ClientClose { .. }));
    }
}
