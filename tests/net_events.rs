mod util;

use util::{CONNECT_TIMEOUT, client_close, closed_port, connect, listen, receive, server_close};

// Loopback tests of the network's events: each kind, ordering, selective
// sends, the frame size limit, timestamps and IPv6.

use std::collections::HashSet;
use std::io::ErrorKind;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tablenet::proto::{LENGTH_PREFIX, Limits, encode_message_to_vec};
use tablenet::{
    Client, ClientId, CloseReason, Config, Connection, ConnectionId, Error, Event, EventKind,
    Network, ObjectId, SendError, Server, Source, Value, table,
};

/// A network whose ring holds `capacity` events.
fn net_with_capacity(capacity: usize) -> Network {
    let mut cfg = Config::default();
    cfg.event_capacity = capacity;
    Network::with_config(cfg).unwrap()
}

fn seq_of(packet: &Value) -> i64 {
    packet["seq"].as_i64().expect("packet has an integer seq")
}

// ------------------------------------------------------------ each kind

#[test]
fn connect_and_connected_events_name_the_objects() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let client = net_c.client("127.0.0.1", server.port(), None).unwrap();

    let (ev, _) = util::wait_for(&net_c, |e| matches!(e.kind, EventKind::Connected { .. }));
    let EventKind::Connected { client: id, result } = ev.kind else {
        unreachable!()
    };
    assert_eq!(id, client.id());
    assert_eq!(result, Ok(()));
    assert!(client.is_connected());

    let (ev, _) = util::wait_for(&net_s, |e| matches!(e.kind, EventKind::Connect { .. }));
    let EventKind::Connect {
        connection,
        server: sid,
    } = ev.kind
    else {
        unreachable!()
    };
    assert_eq!(sid, server.id());
    assert_eq!(connection.server_id(), server.id());
    assert!(connection.is_open());
    assert_eq!(server.connections(), vec![connection.id()]);
}

#[test]
fn refused_connect_gives_error_then_failed_connected() {
    let net = Network::new();
    let port = closed_port();
    let client = net.client("127.0.0.1", port, None).unwrap();

    let (ev, seen) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Connected { .. }));
    let EventKind::Connected { client: id, result } = ev.kind else {
        unreachable!()
    };
    assert_eq!(id, client.id());
    let err = result.expect_err("connecting to a closed port must fail");
    assert!(
        matches!(
            &err,
            Error::Io {
                operation: "connect",
                kind: ErrorKind::ConnectionRefused,
                ..
            }
        ),
        "unexpected failure: {err:?}"
    );

    // The Error event comes first and carries the same error.
    let errors: Vec<&Event> = seen
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Error { .. }))
        .collect();
    assert_eq!(errors.len(), 1, "events before Connected: {seen:#?}");
    let EventKind::Error { object, error, .. } = &errors[0].kind else {
        unreachable!()
    };
    assert_eq!(*object, ObjectId::Client(client.id()));
    assert_eq!(*error, err);
    assert!(!error.to_string().is_empty());
    assert!(!client.is_connected());
    assert_eq!(client.port(), None);
}

#[test]
fn receive_events_in_both_directions() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (client, conn) = connect(&net_s, &net_c, &server);

    let up: Value =
        table! { "OpCode" => 10, "Data" => "From client", "bin" => vec![0u8, 255, 1] }.into();
    client.send(&up).unwrap();
    let (from, packet) = receive(&net_s);
    assert_eq!(from, Source::Connection(conn.id()));
    assert_eq!(packet, up);

    let down: Value = table![1, 2.5, "three", true, table! { "nested" => -7 }].into();
    conn.send(&down).unwrap();
    let (from, packet) = receive(&net_c);
    assert_eq!(from, Source::Client(client.id()));
    assert_eq!(packet, down);
}

#[test]
fn dropping_the_connection_gives_server_close_by_peer() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (client, conn) = connect(&net_s, &net_c, &server);
    let id = conn.id();

    drop(conn);
    assert_eq!(server_close(&net_c, client.id()), CloseReason::ClosedByPeer);
    let (sid, reason) = client_close(&net_s, id);
    assert_eq!(sid, server.id());
    assert_eq!(reason, CloseReason::ClosedLocally);
    assert!(!client.is_connected());
}

#[test]
fn server_disconnect_gives_server_close_by_peer_and_client_close_locally() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (client, conn) = connect(&net_s, &net_c, &server);

    assert_eq!(server.disconnect(&[conn.id()]), 1);
    assert_eq!(server_close(&net_c, client.id()), CloseReason::ClosedByPeer);
    let (sid, reason) = client_close(&net_s, conn.id());
    assert_eq!(sid, server.id());
    assert_eq!(reason, CloseReason::ClosedLocally);
    assert!(!conn.is_open());
}

#[test]
fn client_disconnect_gives_client_close_by_peer_and_server_close_locally() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (client, conn) = connect(&net_s, &net_c, &server);

    client.disconnect();
    let (sid, reason) = client_close(&net_s, conn.id());
    assert_eq!(sid, server.id());
    assert_eq!(reason, CloseReason::ClosedByPeer);
    assert_eq!(
        server_close(&net_c, client.id()),
        CloseReason::ClosedLocally
    );
    assert!(!conn.is_open());
    assert!(!client.is_connected());
}

#[test]
fn one_network_sees_both_sides_of_a_close() {
    // Client and server in the same network: the ring gets both close events.
    let net = Network::new();
    let server = listen(&net);
    let (client, conn) = connect(&net, &net, &server);
    let (cid, conn_id) = (client.id(), conn.id());
    drop(client);
    let mut client_reason = None;
    let mut server_reason = None;
    util::collect(&net, 2, |e| match &e.kind {
        EventKind::ServerClose { client, reason } if *client == cid => {
            server_reason = Some(reason.clone());
            true
        }
        EventKind::ClientClose {
            connection, reason, ..
        } if *connection == conn_id => {
            client_reason = Some(reason.clone());
            true
        }
        _ => false,
    });
    assert_eq!(client_reason, Some(CloseReason::ClosedByPeer));
    assert_eq!(server_reason, Some(CloseReason::ClosedLocally));
}

// ------------------------------------------------------------ ordering

#[test]
fn ten_thousand_messages_keep_their_order_both_ways() {
    const N: i64 = 10_000;
    // Rings large enough that nothing is overwritten while we collect.
    let net_s = net_with_capacity(100_000);
    let net_c = net_with_capacity(100_000);
    let server = listen(&net_s);
    let (client, conn) = connect(&net_s, &net_c, &server);

    // Both directions at once, from two threads.
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..N {
                client
                    .send(&table! { "seq" => i, "dir" => "up" }.into())
                    .unwrap();
            }
        });
        for i in 0..N {
            conn.send(&table! { "seq" => i, "dir" => "down" }.into())
                .unwrap();
        }
    });

    let no_loss = |e: &Event| {
        assert!(
            !matches!(e.kind, EventKind::Dropped { .. }),
            "events were dropped: {e:?}"
        );
        matches!(e.kind, EventKind::Receive { .. })
    };
    for (net, dir, from) in [
        (&net_s, "up", Source::Connection(conn.id())),
        (&net_c, "down", Source::Client(client.id())),
    ] {
        let got = util::collect(net, N as usize, no_loss);
        assert_eq!(got.len(), N as usize);
        for (i, ev) in got.iter().enumerate() {
            let EventKind::Receive { from: f, packet } = &ev.kind else {
                unreachable!()
            };
            assert_eq!(*f, from);
            assert_eq!(packet["dir"].as_str(), Some(dir));
            assert_eq!(seq_of(packet), i as i64, "{dir}: message {i} out of order");
        }
    }
}

// ------------------------------------------------------------ selective sends

/// Five clients connected to one server; returns the clients and, for each
/// client (same index), its server-side connection.
fn five_clients(
    net_s: &Network,
    net_c: &Network,
    server: &Server,
) -> (Vec<Client>, Vec<Connection>) {
    let clients: Vec<Client> = (0..5)
        .map(|_| net_c.client("127.0.0.1", server.port(), None).unwrap())
        .collect();
    for c in &clients {
        c.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    }
    // Collect (never drop) all five owning handles.
    let mut conns: Vec<Connection> =
        util::collect(net_s, 5, |e| matches!(e.kind, EventKind::Connect { .. }))
            .into_iter()
            .map(|e| match e.kind {
                EventKind::Connect { connection, .. } => connection,
                _ => unreachable!(),
            })
            .collect();
    assert_eq!(conns.len(), 5);
    // Pair them up: each client says who it is.
    for (i, c) in clients.iter().enumerate() {
        c.send(&table! { "hello" => i as i64 }.into()).unwrap();
    }
    let mut index_of = std::collections::HashMap::new();
    for ev in util::collect(net_s, 5, |e| matches!(e.kind, EventKind::Receive { .. })) {
        let EventKind::Receive {
            from: Source::Connection(id),
            packet,
        } = ev.kind
        else {
            panic!("unexpected receive {ev:?}")
        };
        index_of.insert(id, packet["hello"].as_i64().unwrap() as usize);
    }
    assert_eq!(index_of.len(), 5);
    conns.sort_by_key(|c| index_of[&c.id()]);
    (clients, conns)
}

#[test]
fn server_send_to_a_subset_reaches_exactly_that_subset() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (clients, conns) = five_clients(&net_s, &net_c, &server);
    assert_eq!(server.connection_count(), 5);

    let chosen = [0usize, 2, 4];
    let ids: Vec<ConnectionId> = chosen.iter().map(|&i| conns[i].id()).collect();
    assert_eq!(server.send(&table! { "kind" => "subset" }.into(), &ids), 3);
    // A marker to everyone afterwards: per-connection order means every
    // subset message that will ever arrive has arrived before its marker.
    assert_eq!(server.broadcast(&table! { "kind" => "marker" }.into()), 5);

    let mut got_subset = Vec::new();
    let mut got_marker = HashSet::new();
    util::collect(&net_c, 5, |e| match &e.kind {
        EventKind::Receive {
            from: Source::Client(c),
            packet,
        } => match packet["kind"].as_str() {
            Some("subset") => {
                assert!(!got_marker.contains(c), "subset after marker for {c:?}");
                got_subset.push(*c);
                false
            }
            Some("marker") => {
                assert!(got_marker.insert(*c), "two markers for {c:?}");
                true
            }
            _ => panic!("unexpected packet {packet:?}"),
        },
        _ => false,
    });
    let expected: HashSet<ClientId> = chosen.iter().map(|&i| clients[i].id()).collect();
    assert_eq!(got_subset.len(), 3, "subset deliveries: {got_subset:?}");
    assert_eq!(got_subset.into_iter().collect::<HashSet<_>>(), expected);
}

#[test]
fn broadcast_reaches_all_five_once() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (clients, _conns) = five_clients(&net_s, &net_c, &server);

    assert_eq!(server.broadcast(&table! { "kind" => "all" }.into()), 5);
    let got = util::collect(&net_c, 5, |e| matches!(e.kind, EventKind::Receive { .. }));
    let from: Vec<Source> = got
        .iter()
        .map(|e| match &e.kind {
            EventKind::Receive { from, packet } => {
                assert_eq!(packet["kind"].as_str(), Some("all"));
                *from
            }
            _ => unreachable!(),
        })
        .collect();
    let expected: HashSet<Source> = clients.iter().map(|c| Source::Client(c.id())).collect();
    assert_eq!(from.len(), 5);
    assert_eq!(from.into_iter().collect::<HashSet<_>>(), expected);
    // Nothing more arrives (a second copy would be a bug).
    assert!(
        !net_c
            .wait_events(Duration::from_millis(100))
            .iter()
            .any(|e| matches!(e.kind, EventKind::Receive { .. }))
    );
}

// ------------------------------------------------------------ frame size limit

fn blob(n: usize) -> Value {
    let bytes: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
    table! { "blob" => bytes }.into()
}

#[test]
fn frame_just_under_the_limit_arrives_and_just_over_is_refused() {
    const MAX: usize = 64 * 1024;
    let mut cfg = Config::default();
    cfg.limits.max_frame_size = MAX;
    let net_s = Network::with_config(cfg.clone()).unwrap();
    let net_c = Network::with_config(cfg.clone()).unwrap();

    // The frame size (kind byte + body, not the prefix) for an n-byte blob.
    let unlimited = Limits::default();
    let frame_len =
        |n: usize| encode_message_to_vec(&blob(n), &unlimited).unwrap().len() - LENGTH_PREFIX;
    let mut n = MAX;
    while frame_len(n) > MAX {
        n -= 1;
    }
    let fits = frame_len(n);
    assert!(
        fits <= MAX && fits > MAX - 8,
        "largest fitting frame is {fits}"
    );
    assert!(frame_len(n + 1) > MAX);
    // The codec agrees with the configured limit.
    assert!(encode_message_to_vec(&blob(n), &cfg.limits).is_ok());
    assert!(matches!(
        encode_message_to_vec(&blob(n + 1), &cfg.limits),
        Err(Error::FrameTooLarge { limit: MAX, .. })
    ));

    let server = listen(&net_s);
    let (client, conn) = connect(&net_s, &net_c, &server);

    // Just under: arrives intact, both directions.
    let under = blob(n);
    client.send(&under).unwrap();
    let (from, packet) = receive(&net_s);
    assert_eq!(from, Source::Connection(conn.id()));
    assert_eq!(packet, under);
    conn.send(&under).unwrap();
    assert_eq!(receive(&net_c).1, under);

    // Just over: refused by every sender, without harming the connection.
    let over = blob(n + 1);
    for result in [
        client.send(&over),
        conn.send(&over),
        server.send_to(conn.id(), &over),
    ] {
        match result {
            Err(SendError::TooLarge { size, limit }) => {
                assert_eq!(limit, MAX);
                assert!(size > MAX as u64);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
    assert_eq!(server.send(&over, &[conn.id()]), 0);
    assert_eq!(server.broadcast(&over), 0);
    assert!(client.is_connected() && conn.is_open());
    client.send(&table! { "after" => true }.into()).unwrap();
    let (_, packet) = receive(&net_s);
    assert_eq!(packet["after"], true.into());
}

// ------------------------------------------------------------ timestamps

#[test]
fn timestamps_are_monotone_and_near_the_wall_clock() {
    let before = SystemTime::now();
    let net = Network::new();
    let server = listen(&net);
    let (client, conn) = connect(&net, &net, &server);
    for i in 0..50 {
        client.send(&table! { "seq" => i }.into()).unwrap();
        conn.send(&table! { "seq" => i }.into()).unwrap();
    }
    // The times of every event, in the order the ring gave them.
    let mut times: Vec<(Instant, SystemTime, f64)> = Vec::new();
    let mut record = |e: &Event| times.push((e.time, e.wall_time, e.timestamp()));
    util::collect(&net, 100, |e| {
        record(e);
        matches!(e.kind, EventKind::Receive { .. })
    });
    drop(client);
    util::collect(&net, 2, |e| {
        record(e);
        matches!(
            e.kind,
            EventKind::ClientClose { .. } | EventKind::ServerClose { .. }
        )
    });
    let after = SystemTime::now();

    assert!(times.len() >= 102);
    for pair in times.windows(2) {
        let ((t0, w0, s0), (t1, w1, s1)) = (pair[0], pair[1]);
        assert!(t0 <= t1, "time went back: {pair:?}");
        assert!(w0 <= w1, "wall time went back: {pair:?}");
        assert!(s0 <= s1, "timestamp went back: {pair:?}");
    }
    let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let slack = 0.5;
    for &(_, wall, ts) in &times {
        assert!(
            ts >= secs(before) - slack && ts <= secs(after) + slack,
            "timestamp {ts} outside [{}, {}]",
            secs(before),
            secs(after)
        );
        assert!((ts - secs(wall)).abs() < 1e-6);
    }
    // The last event happened just now.
    let (last_time, _, last_ts) = *times.last().unwrap();
    assert!((secs(SystemTime::now()) - last_ts).abs() < 2.0);
    assert!(Instant::now() >= last_time);
    // `time` (Instant) and `timestamp()` agree on elapsed time.
    let (first_time, _, first_ts) = times[0];
    let by_instant = last_time.duration_since(first_time).as_secs_f64();
    let by_wall = last_ts - first_ts;
    assert!(
        (by_instant - by_wall).abs() < 0.01,
        "{by_instant} vs {by_wall}"
    );
}

// ------------------------------------------------------------ IPv6

#[test]
fn ipv6_loopback_works() {
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        println!("NOTE: skipping the IPv6 test: cannot bind [::1]: {e}");
        return;
    }
    let net_s = Network::new();
    let net_c = Network::new();
    let server = net_s.server("::1", 0, None).unwrap();
    assert_eq!(server.address(), "::1");
    assert_ne!(server.port(), 0);
    let client = net_c.client("::1", server.port(), None).unwrap();
    assert_eq!(client.address(), "::1");
    client.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    assert_eq!(client.port(), Some(server.port()));
    let conn = util::accept(&net_s);
    assert_eq!(conn.address(), "::1");
    assert_ne!(conn.port(), 0);

    client.send(&table! { "v6" => "up" }.into()).unwrap();
    let (from, packet) = receive(&net_s);
    assert_eq!(from, Source::Connection(conn.id()));
    assert_eq!(packet["v6"].as_str(), Some("up"));
    conn.send(&table! { "v6" => "down" }.into()).unwrap();
    let (from, packet) = receive(&net_c);
    assert_eq!(from, Source::Client(client.id()));
    assert_eq!(packet["v6"].as_str(), Some("down"));

    drop(conn);
    assert_eq!(server_close(&net_c, client.id()), CloseReason::ClosedByPeer);
}

// ------------------------------------------------------------ reused batches

/// `poll_events_into` / `wait_events_into` append after what the vector
/// holds, return how many they appended, keep every message in order, and
/// reuse the vector's memory; with the IO thread and with inline IO.
#[test]
fn events_into_a_reused_vector_append_in_order() {
    for inline in [false, true] {
        const N: i64 = 3_000;
        // Under inline IO the server's sockets move only while this thread
        // takes events, so the client keeps its IO thread.
        let mut cfg = Config::default();
        cfg.event_capacity = 100_000;
        let net_c = Network::with_config(cfg.clone()).unwrap();
        cfg.inline_io = inline;
        let net_s = Network::with_config(cfg).unwrap();
        let server = listen(&net_s);
        let client = net_c.client("127.0.0.1", server.port(), None).unwrap();
        let (ev, _) = util::wait_for(&net_s, |e| matches!(e.kind, EventKind::Connect { .. }));
        let EventKind::Connect {
            connection: conn, ..
        } = ev.kind
        else {
            unreachable!()
        };
        client.wait_for_connect(CONNECT_TIMEOUT).unwrap();

        // Nothing queued: a wait times out with nothing appended.
        let mut events = Vec::with_capacity(4096);
        let started = Instant::now();
        assert_eq!(
            net_s.wait_events_into(&mut events, Duration::from_millis(30)),
            0
        );
        assert!(started.elapsed() >= Duration::from_millis(25));
        assert!(events.is_empty());
        assert_eq!(net_s.poll_events_into(&mut events), 0);

        for i in 0..N {
            client.send(&table! { "seq" => i }.into()).unwrap();
        }
        // What the vector already held stays in front.
        let marker = || Event {
            time: Instant::now(),
            wall_time: SystemTime::now(),
            kind: EventKind::Dropped { count: 0 },
        };
        let buffer = events.as_ptr();
        let mut next = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while next < N {
            assert!(Instant::now() < deadline, "inline={inline}: {next} of {N}");
            events.clear();
            events.push(marker());
            let n = if next % 2 == 0 {
                net_s.wait_events_into(&mut events, Duration::from_millis(100))
            } else {
                net_s.poll_events_into(&mut events)
            };
            assert_eq!(events.len(), n + 1, "inline={inline}: the count appended");
            assert!(matches!(events[0].kind, EventKind::Dropped { count: 0 }));
            for ev in &events[1..] {
                let EventKind::Receive { from, packet } = &ev.kind else {
                    panic!("inline={inline}: unexpected {ev:?}")
                };
                assert_eq!(*from, Source::Connection(conn.id()));
                assert_eq!(seq_of(packet), next, "inline={inline}: order");
                next += 1;
            }
        }
        // Every batch (at most N + 1 events) fit: the same memory throughout.
        assert_eq!(events.capacity(), 4096, "inline={inline}");
        assert_eq!(events.as_ptr(), buffer, "inline={inline}");
    }
}
