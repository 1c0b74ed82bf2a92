//! Configured limits, seen from outside: the per-server connection limit.

mod util;

use std::time::Duration;

use tablenet::{Config, Error, EventKind, Network, ObjectId, ProtocolError};

#[test]
fn connections_over_the_limit_are_refused_with_a_reason() {
    let mut cfg = Config::default();
    cfg.max_connections = 2;
    let server_net = Network::with_config(cfg).unwrap();
    let client_net = Network::new();
    let server = server_net.server("127.0.0.1", 0, None).unwrap();
    let a = client_net.client("127.0.0.1", server.port(), None).unwrap();
    let b = client_net.client("127.0.0.1", server.port(), None).unwrap();
    a.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    b.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let mut kept = util::collect(&server_net, 2, |e| {
        matches!(e.kind, EventKind::Connect { .. })
    });

    // The third is told why, at once.
    let c = client_net.client("127.0.0.1", server.port(), None).unwrap();
    let err = c.wait_for_connect(util::CONNECT_TIMEOUT).unwrap_err();
    match &err {
        Error::Protocol(ProtocolError::Refused { peer, reason }) => {
            assert_eq!(*peer, "server");
            assert!(reason.contains("server full (2 connections)"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The server reports it, naming the limit, and nothing else.
    let (ev, _) = util::wait_for(&server_net, |e| matches!(e.kind, EventKind::Error { .. }));
    let EventKind::Error { object, error, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(object, ObjectId::Server(server.id()));
    assert!(
        matches!(error, Error::ConnectionLimit { limit: 2, .. }),
        "{error}"
    );
    assert_eq!(server.connection_count(), 2);

    // Room again once one leaves.
    drop(a);
    util::wait_for(&server_net, |e| {
        matches!(e.kind, EventKind::ClientClose { .. })
    });
    let d = client_net.client("127.0.0.1", server.port(), None).unwrap();
    d.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    kept.extend(util::collect(&server_net, 1, |e| {
        matches!(e.kind, EventKind::Connect { .. })
    }));
    assert_eq!(server.connection_count(), 2);
    // The survivors still talk.
    b.send(&tablenet::Value::from("still here")).unwrap();
    let (_, packet) = util::receive(&server_net);
    assert_eq!(packet.as_str(), Some("still here"));
    drop(kept);
    server_net.shutdown(Duration::from_secs(1));
}
