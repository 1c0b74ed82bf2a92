mod util;
use std::time::Duration;
use tablenet::{EventKind, Network, table};

const KEY: &str = "0C03EA65238DD2C25EB87CE563868098";
const OTHER: &str = "1C03EA65238DD2C25EB87CE563868098";

#[test]
fn encrypted_exchange_works() {
    let net = Network::new();
    let server = net.server("127.0.0.1", 0, Some(KEY)).unwrap();
    let client = net.client("127.0.0.1", server.port(), Some(KEY)).unwrap();
    client.send(&table! { "Data" => "secret" }.into()).unwrap(); // queued before the handshake
    client.wait_for_connect(Duration::from_secs(2)).unwrap();
    // The message may come in the same batch as the Connect event: wait for
    // the Receive and keep the other events (the Connect's handle) alive.
    let (ev, _connect) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Receive { .. }));
    let EventKind::Receive { packet, .. } = ev.kind else {
        unreachable!()
    };
    assert_eq!(packet["Data"], "secret".into());
}

#[test]
fn wrong_key_fails_in_the_handshake() {
    let net = Network::new();
    let server = net.server("127.0.0.1", 0, Some(KEY)).unwrap();
    let client = net.client("127.0.0.1", server.port(), Some(OTHER)).unwrap();
    let err = client.wait_for_connect(Duration::from_secs(2)).unwrap_err();
    assert!(err.to_string().contains("keys do not match"), "{err}");
}

#[test]
fn plain_client_meets_encrypted_server() {
    let net = Network::new();
    let server = net.server("127.0.0.1", 0, Some(KEY)).unwrap();
    let client = net.client("127.0.0.1", server.port(), None).unwrap();
    let err = client.wait_for_connect(Duration::from_secs(2)).unwrap_err();
    assert!(err.to_string().contains("server requires a key"), "{err}");
    let (ev, _) = util::wait_for(
        &net,
        |e| matches!(&e.kind, EventKind::Error { error, .. } if error.to_string().contains("client has none")),
    );
    println!("{:?}", ev.kind);
}
