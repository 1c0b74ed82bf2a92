//! Typed messages over loopback: `send_serialized` (straight into the
//! frame) and `Event::decode` / `Message::decode` (straight from the bytes
//! with `Config::raw_messages`).

mod util;

use std::io::Write;

use serde::{Deserialize, Serialize};
use tablenet::{Config, Error, EventKind, Network, Value, to_value};
use util::{accept, connect, listen, raw_plain, wait_for};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Move {
    player: String,
    to: (i32, i32),
    items: Vec<u16>,
    note: Option<String>,
}

fn sample() -> Move {
    Move {
        player: "ada".into(),
        to: (3, -4),
        items: vec![1, 2, 300],
        note: None,
    }
}

fn raw_network() -> Network {
    let mut config = Config::default();
    config.raw_messages = true;
    Network::with_config(config).unwrap()
}

/// With `raw_messages`, a message arrives as its bytes and decodes straight
/// into the type; the table it stands for is still there.
#[test]
fn raw_messages_decode_straight_into_a_type() {
    let server_net = raw_network();
    let client_net = Network::new();
    let server = listen(&server_net);
    let (client, _conn) = connect(&server_net, &client_net, &server);
    client.send_serialized(&sample()).unwrap();
    let (ev, _) = wait_for(&server_net, |e| matches!(e.kind, EventKind::Message { .. }));
    assert_eq!(ev.decode::<Move>().unwrap().unwrap(), sample());
    let EventKind::Message { message, .. } = &ev.kind else {
        unreachable!()
    };
    assert_eq!(message.decode::<Move>().unwrap(), sample());
    assert_eq!(message.value().unwrap(), to_value(&sample()).unwrap());
    // A type that does not fit: an error naming the field, the link stays.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        items: Vec<String>,
    }
    let e = ev.decode::<Wrong>().unwrap().unwrap_err();
    assert!(
        matches!(&e, Error::AtPath { path, .. } if path == "items[0]"),
        "{e}"
    );
    client.send_serialized(&sample()).unwrap();
    let (ev, _) = wait_for(&server_net, |e| matches!(e.kind, EventKind::Message { .. }));
    assert_eq!(ev.decode::<Move>().unwrap().unwrap(), sample());
}

/// Without it, `Event::decode` reads the decoded `Receive` the same way,
/// and the server's typed sends reach the client.
#[test]
fn event_decode_reads_a_received_value() {
    let server_net = Network::new();
    let client_net = Network::new();
    let server = listen(&server_net);
    let (_client, conn) = connect(&server_net, &client_net, &server);
    server.send_serialized(conn.id(), &sample()).unwrap();
    assert_eq!(server.broadcast_serialized(&sample()), 1);
    assert_eq!(server.send_many_serialized(&sample(), &[conn.id()]), 1);
    for _ in 0..3 {
        let (ev, _) = wait_for(&client_net, |e| matches!(e.kind, EventKind::Receive { .. }));
        assert_eq!(ev.decode::<Move>().unwrap().unwrap(), sample());
    }
    // What cannot round-trip is refused before anything is queued.
    let e = conn.send_serialized(&vec![Some(1), None]).unwrap_err();
    assert!(e.to_string().contains("at [1]"), "{e}");
    assert_eq!(server.broadcast_serialized(&vec![Some(1), None]), 0);
    assert!(conn.is_open());
}

/// A message that breaks the protocol closes its connection when decoded,
/// as it would have when decoded on taking it.
#[test]
fn a_malformed_raw_message_closes_its_connection_when_decoded() {
    let net = raw_network();
    let server = listen(&net);
    let mut peer = raw_plain(server.port());
    let conn = accept(&net);
    // A Message frame whose body is the unknown tag 06.
    peer.write_all(&[2, 0, 0, 0, 1, 6]).unwrap();
    let (ev, _) = wait_for(&net, |e| matches!(e.kind, EventKind::Message { .. }));
    let e = ev.decode::<Value>().unwrap().unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e}");
    let id = conn.id();
    wait_for(
        &net,
        |e| matches!(&e.kind, EventKind::ClientClose { connection, .. } if *connection == id),
    );
}
