mod util;
use std::time::Duration;
use tablenet::{EventKind, Network, Source, table};

#[test]
fn server_and_client_exchange_a_table() {
    let net = Network::new();
    let server = net.server("127.0.0.1", 0, None).unwrap();
    let client = net.client("127.0.0.1", server.port(), None).unwrap();
    client.wait_for_connect(Duration::from_secs(2)).unwrap();
    let conn = util::accept(&net);
    client
        .send(&table! { "OpCode" => 10, "Data" => "From server" }.into())
        .unwrap();
    let (ev, _) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Receive { .. }));
    let EventKind::Receive { from, packet } = ev.kind else {
        unreachable!()
    };
    assert_eq!(from, Source::Connection(conn.id()));
    assert_eq!(packet["OpCode"], 10.into());
    conn.send(&table!["reply"].into()).unwrap();
    let (ev, _) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Receive { .. }));
    let EventKind::Receive { from, packet } = ev.kind else {
        unreachable!()
    };
    assert_eq!(from, Source::Client(client.id()));
    assert_eq!(packet[1], "reply".into());
    drop(client);
    let (ev, _) = util::wait_for(&net, |e| matches!(e.kind, EventKind::ClientClose { .. }));
    println!("{ev:?}");
    net.shutdown(Duration::from_secs(2));
}
