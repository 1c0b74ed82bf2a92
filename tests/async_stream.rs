//! The async API (cargo feature `futures`) under tokio: the event stream
//! delivers every event of a 10,000-message exchange, in order.

#![cfg(feature = "futures")]

use std::time::Duration;

use tablenet::{Connection, EventKind, Network, SendError, Source, Value, table};

const MESSAGES: i64 = 10_000;
const LIMIT: Duration = Duration::from_secs(60);

fn numbered(n: i64) -> Value {
    table! { "n" => n }.into()
}

fn number(packet: &Value) -> Option<i64> {
    packet.get("n").and_then(Value::as_i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_delivers_a_10000_message_exchange_in_order() {
    let server_net = Network::new();
    let server = server_net.server("127.0.0.1", 0, None).unwrap();
    let client_net = Network::new();
    let client = client_net.connect(server.local_addr(), None).unwrap();

    // The server's task: Connect, then every message in order, each echoed.
    let echo = tokio::spawn(async move {
        let mut events = server_net.events();
        let mut conn: Option<Connection> = None;
        let mut next = 0;
        while next < MESSAGES {
            let event = events.next_event().await.expect("stream ended early");
            match event.kind {
                EventKind::Connect { connection, .. } => {
                    assert!(conn.is_none(), "one Connect");
                    conn = Some(connection);
                }
                EventKind::Receive {
                    from: Source::Connection(id),
                    packet,
                } => {
                    let conn = conn.as_ref().expect("Connect comes first");
                    assert_eq!(id, conn.id());
                    assert_eq!(number(&packet), Some(next), "server: out of order");
                    next += 1;
                    loop {
                        match conn.send(&packet) {
                            Ok(()) => break,
                            Err(SendError::QueueFull { .. }) => conn.writable().await.unwrap(),
                            Err(e) => panic!("echo: {e}"),
                        }
                    }
                }
                other => panic!("server: unexpected {other:?}"),
            }
        }
        (server_net, conn)
    });

    // The client's sending task, awaiting room when the queue is full.
    let sender = tokio::spawn(async move {
        for n in 0..MESSAGES {
            loop {
                match client.send(&numbered(n)) {
                    Ok(()) => break,
                    Err(SendError::QueueFull { .. }) => client.writable().await.unwrap(),
                    Err(e) => panic!("send: {e}"),
                }
            }
        }
        client
    });

    // The client's events: Connected, then every echo in order.
    let mut events = client_net.events();
    let mut connected = false;
    let mut next = 0;
    while next < MESSAGES {
        let event = tokio::time::timeout(LIMIT, events.next_event())
            .await
            .unwrap_or_else(|_| panic!("stalled at echo {next}"))
            .expect("stream ended early");
        match event.kind {
            EventKind::Connected { result, .. } => {
                result.unwrap();
                connected = true;
            }
            EventKind::Receive { packet, .. } => {
                assert!(connected, "Connected comes first");
                assert_eq!(number(&packet), Some(next), "client: out of order");
                next += 1;
            }
            other => panic!("client: unexpected {other:?}"),
        }
    }
    let client = tokio::time::timeout(LIMIT, sender).await.unwrap().unwrap();
    let (server_net, conn) = tokio::time::timeout(LIMIT, echo).await.unwrap().unwrap();
    drop((client, conn, server));

    // After shutdown the stream ends, once its events are taken.
    server_net.shutdown(Duration::from_secs(2));
    client_net.shutdown(Duration::from_secs(2));
    let mut rest = 0;
    while let Some(_event) = tokio::time::timeout(LIMIT, events.next_event())
        .await
        .unwrap()
    {
        rest += 1;
        assert!(rest < 100, "the stream does not end");
    }
}
