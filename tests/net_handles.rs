mod util;

use util::{CONNECT_TIMEOUT, client_close, closed_port, connect, listen, receive, server_close};

// Loopback tests of the handles: every method of Server, Client and
// Connection, closing by drop, wait_for_connect, argument checks, sends after
// close, sends before connect, and Network::shutdown.
//
// Some tests play one side with a plain std socket speaking the wire format
// (preamble, then length-prefixed frames) so that timing is in the test's
// hands: a tablenet client stays unconnected until the test sends the
// server's preamble.

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tablenet::proto::{FrameDecoder, Limits, Preamble, encode_message_to_vec};
use tablenet::{
    Client, ClientId, CloseReason, Config, Connection, ConnectionId, Error, EventKind, Network,
    ObjectId, SendError, ServerId, Source, Value, table,
};

/// Takes `n` `Connect` events, keeping every owning handle.
fn accept_n(net: &Network, n: usize) -> Vec<Connection> {
    util::collect(net, n, |e| matches!(e.kind, EventKind::Connect { .. }))
        .into_iter()
        .map(|e| match e.kind {
            EventKind::Connect { connection, .. } => connection,
            _ => unreachable!(),
        })
        .collect()
}

fn preamble() -> Vec<u8> {
    let mut out = Vec::new();
    Preamble::plain().encode(&mut out).unwrap();
    out
}

fn frame(value: &Value) -> Vec<u8> {
    encode_message_to_vec(value, &Limits::default()).unwrap()
}

/// Reads a tablenet peer's preamble and then `n` messages from a raw socket.
fn read_messages(stream: &mut TcpStream, n: usize) -> Vec<Value> {
    stream.set_read_timeout(Some(util::DEADLINE)).unwrap();
    let limits = Limits::default();
    let mut decoder = FrameDecoder::new(&limits);
    let mut seen_preamble = false;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if !seen_preamble && let Some(p) = decoder.next_preamble().unwrap() {
            assert!(!p.encrypted());
            seen_preamble = true;
        }
        while seen_preamble && out.len() < n {
            match decoder.next_frame().unwrap() {
                Some(f) => out.push(f.decode_value(&limits).unwrap()),
                None => break,
            }
        }
        if seen_preamble && out.len() == n {
            assert_eq!(decoder.buffered(), 0, "more than {n} messages arrived");
            return out;
        }
        let k = stream.read(&mut buf).unwrap();
        assert!(k > 0, "end of stream after {} of {n} messages", out.len());
        decoder.push(&buf[..k]);
    }
}

/// Reads until the peer's end of stream; returns how many bytes came first.
/// Reads until the peer's end of stream: what arrived after the last
/// message, which a clean close makes exactly one Close frame.
fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(util::DEADLINE)).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    rest
}

/// The bytes of a plain Close frame with no reason.
fn close_frame() -> Vec<u8> {
    tablenet::proto::control_frame(tablenet::proto::FrameKind::Close).to_vec()
}

fn seq_of(packet: &Value) -> i64 {
    packet["seq"].as_i64().expect("packet has an integer seq")
}

fn invalid_argument(result: Result<impl std::fmt::Debug, Error>, argument: &str, range: &str) {
    let err = result.expect_err("expected an invalid argument");
    match &err {
        Error::InvalidArgument { argument: a, .. } => assert_eq!(*a, argument, "{err}"),
        other => panic!("expected InvalidArgument({argument}), got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains(argument), "{text:?} does not name {argument}");
    assert!(
        text.contains(range),
        "{text:?} does not give the range {range}"
    );
}

// ------------------------------------------------------------ ids

#[test]
fn socket_ids_are_unique_nonzero_and_never_reused() {
    let net_s = Network::new();
    let net_c = Network::new();
    let s1 = listen(&net_s);
    let s2 = listen(&net_s);
    let clients: Vec<Client> = [&s1, &s1, &s2]
        .iter()
        .map(|s| net_c.client("127.0.0.1", s.port(), None).unwrap())
        .collect();
    for c in &clients {
        c.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    }
    let conns = accept_n(&net_s, 3);

    let mut ids = vec![s1.socket_id(), s2.socket_id()];
    ids.extend(clients.iter().map(Client::socket_id));
    ids.extend(conns.iter().map(Connection::socket_id));
    assert!(ids.iter().all(|&id| id != 0), "{ids:?}");
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate socket ids: {ids:?}");

    // The typed ids carry the same number.
    assert_eq!(s1.id().socket_id(), s1.socket_id());
    assert_eq!(ObjectId::Server(s2.id()).socket_id(), s2.socket_id());
    for c in &clients {
        assert_eq!(c.id().socket_id(), c.socket_id());
        assert_eq!(ObjectId::Client(c.id()).socket_id(), c.socket_id());
    }
    for c in &conns {
        assert_eq!(c.id().socket_id(), c.socket_id());
        assert_eq!(ObjectId::Connection(c.id()).socket_id(), c.socket_id());
    }
    let by_server: HashMap<ServerId, usize> = conns.iter().fold(HashMap::new(), |mut m, c| {
        *m.entry(c.server_id()).or_default() += 1;
        m
    });
    assert_eq!(by_server.get(&s1.id()), Some(&2));
    assert_eq!(by_server.get(&s2.id()), Some(&1));

    // Closing objects does not free their ids for reuse.
    drop(clients);
    drop(conns);
    let again = net_c.client("127.0.0.1", s1.port(), None).unwrap();
    let s3 = listen(&net_s);
    assert!(!unique.contains(&again.socket_id()));
    assert!(!unique.contains(&s3.socket_id()));
    assert_ne!(again.socket_id(), s3.socket_id());
}

// ------------------------------------------------------------ Server

#[test]
fn server_methods() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let port = server.port();
    assert_ne!(port, 0);
    assert_eq!(server.address(), "127.0.0.1");
    assert_eq!(
        server.local_addr(),
        SocketAddr::from(([127, 0, 0, 1], port))
    );
    assert_eq!(server.id().socket_id(), server.socket_id());
    // The port is really in use by the server.
    assert_eq!(
        TcpListener::bind(("127.0.0.1", port)).unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    assert_eq!(server.connection_count(), 0);
    assert!(server.connections().is_empty());

    // Up: three connections.
    let clients: Vec<Client> = (0..3)
        .map(|_| net_c.client("127.0.0.1", port, None).unwrap())
        .collect();
    for c in &clients {
        c.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    }
    let mut conns = accept_n(&net_s, 3);
    util::wait_until("3 connections", util::DEADLINE, || {
        server.connection_count() == 3
    });
    let ids: Vec<ConnectionId> = conns.iter().map(Connection::id).collect();
    assert_eq!(
        server.connections().into_iter().collect::<HashSet<_>>(),
        ids.iter().copied().collect::<HashSet<_>>()
    );
    assert!(conns.iter().all(|c| c.server_id() == server.id()));
    assert_eq!(server.queued_bytes(ids[0]), Some(0));

    // send to two, send_to the third, broadcast to all.
    assert_eq!(server.send(&table! { "m" => "a" }.into(), &ids[..2]), 2);
    server
        .send_to(ids[2], &table! { "m" => "b" }.into())
        .unwrap();
    assert_eq!(server.broadcast(&table! { "m" => "c" }.into()), 3);
    let mut per_client: HashMap<ClientId, Vec<String>> = HashMap::new();
    for ev in util::collect(&net_c, 6, |e| matches!(e.kind, EventKind::Receive { .. })) {
        let EventKind::Receive {
            from: Source::Client(c),
            packet,
        } = ev.kind
        else {
            panic!("unexpected receive {ev:?}")
        };
        per_client
            .entry(c)
            .or_default()
            .push(packet["m"].as_str().unwrap().to_owned());
    }
    assert_eq!(per_client.len(), 3);
    let mut firsts: Vec<&str> = per_client
        .values()
        .map(|got| {
            assert_eq!(got.len(), 2, "{got:?}");
            assert_eq!(got[1], "c", "broadcast comes second: {got:?}");
            got[0].as_str()
        })
        .collect();
    firsts.sort_unstable();
    assert_eq!(firsts, ["a", "a", "b"]);

    // Down: disconnect one, drop another's handle.
    assert_eq!(server.disconnect(&[ids[0]]), 1);
    assert_eq!(client_close(&net_s, ids[0]).1, CloseReason::ClosedLocally);
    assert_eq!(server.connection_count(), 2);
    assert_eq!(server.disconnect(&[ids[0]]), 0, "already closed");
    assert_eq!(server.queued_bytes(ids[0]), None);
    assert_eq!(server.send(&table! { "m" => "x" }.into(), &ids), 2);
    drop(conns.remove(1));
    assert_eq!(client_close(&net_s, ids[1]).1, CloseReason::ClosedLocally);
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.connections(), vec![ids[2]]);
    assert_eq!(server.broadcast(&table! { "m" => "y" }.into()), 1);
}

// ------------------------------------------------------------ Client

#[test]
fn client_methods_and_port_none_until_connected() {
    let net = Network::new();
    // A raw server that only speaks when the test says so.
    let raw = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = raw.local_addr().unwrap().port();
    let client = net.client("127.0.0.1", port, None).unwrap();
    assert_eq!(client.address(), "127.0.0.1");
    assert_eq!(client.id().socket_id(), client.socket_id());
    assert_ne!(client.socket_id(), 0);
    assert_eq!(client.port(), None);
    assert!(!client.is_connected());
    assert_eq!(client.queued_bytes(), 0);

    // TCP is up (the kernel accepts) but no preamble came: not connected.
    let waited = Instant::now();
    assert!(matches!(
        client.wait_for_connect(Duration::from_millis(250)),
        Err(Error::Timeout { .. })
    ));
    assert!(waited.elapsed() >= Duration::from_millis(250));
    let (mut stream, _) = raw.accept().unwrap();
    assert_eq!(client.port(), None);
    assert!(!client.is_connected());

    stream.write_all(&preamble()).unwrap();
    client.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    assert_eq!(client.port(), Some(port));
    assert!(client.is_connected());
    let (ev, _) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Connected { .. }));
    assert!(
        matches!(ev.kind, EventKind::Connected { client: c, result: Ok(()) } if c == client.id())
    );

    let up: Value = table! { "hello" => "raw server" }.into();
    client.send(&up).unwrap();
    assert_eq!(read_messages(&mut stream, 1), [up]);

    let down: Value = table! { "hello" => "client" }.into();
    stream.write_all(&frame(&down)).unwrap();
    assert_eq!(receive(&net), (Source::Client(client.id()), down));

    client.disconnect();
    assert!(!client.is_connected());
    assert_eq!(client.send(&table! {}.into()), Err(SendError::Closed));
    assert_eq!(
        read_to_eof(&mut stream),
        close_frame(),
        "a Close frame, then the end of stream, after disconnect"
    );
    drop(stream);
    assert_eq!(server_close(&net, client.id()), CloseReason::ClosedLocally);
    assert_eq!(client.address(), "127.0.0.1");
}

// ------------------------------------------------------------ Connection

#[test]
fn connection_methods() {
    let net = Network::new();
    let server = listen(&net);
    // A raw client, so its local port is known.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    raw.write_all(&preamble()).unwrap();
    let conn = util::accept(&net);

    assert_eq!(conn.port(), raw.local_addr().unwrap().port());
    assert_eq!(conn.address(), "127.0.0.1");
    assert_eq!(conn.server_id(), server.id());
    assert_eq!(conn.id().socket_id(), conn.socket_id());
    assert_ne!(conn.socket_id(), 0);
    assert_ne!(conn.socket_id(), server.socket_id());
    assert!(conn.is_open());
    assert_eq!(conn.queued_bytes(), 0);
    assert_eq!(server.connections(), vec![conn.id()]);

    let down: Value = table! { "to" => "raw client", "n" => 1.5 }.into();
    conn.send(&down).unwrap();
    assert_eq!(read_messages(&mut raw, 1), [down]);

    let up: Value = table![1, 2, 3].into();
    raw.write_all(&frame(&up)).unwrap();
    assert_eq!(receive(&net), (Source::Connection(conn.id()), up));

    conn.disconnect();
    assert!(!conn.is_open());
    assert_eq!(conn.send(&table! {}.into()), Err(SendError::Closed));
    assert_eq!(read_to_eof(&mut raw), close_frame());
    drop(raw);
    let (sid, reason) = client_close(&net, conn.id());
    assert_eq!(sid, server.id());
    assert_eq!(reason, CloseReason::ClosedLocally);
    assert_eq!(server.connection_count(), 0);
    assert_eq!(conn.queued_bytes(), 0);
}

// ------------------------------------------------------------ drop to close

#[test]
fn dropping_the_connect_events_handle_closes_the_connection() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let client = net_c.client("127.0.0.1", server.port(), None).unwrap();
    client.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    let (ev, _) = util::wait_for(&net_s, |e| matches!(e.kind, EventKind::Connect { .. }));
    let EventKind::Connect { ref connection, .. } = ev.kind else {
        unreachable!()
    };
    let id = connection.id();
    drop(ev); // the only handle
    assert_eq!(server_close(&net_c, client.id()), CloseReason::ClosedByPeer);
    assert_eq!(client_close(&net_s, id).1, CloseReason::ClosedLocally);
    assert!(!client.is_connected());
    assert_eq!(server.connection_count(), 0);
    assert_eq!(client.send(&table! {}.into()), Err(SendError::Closed));
}

#[test]
fn dropping_the_client_closes_it_after_flushing() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (client, conn) = connect(&net_s, &net_c, &server);
    for i in 0..100 {
        client.send(&table! { "seq" => i }.into()).unwrap();
    }
    drop(client);
    // One pass over the ring: the 100 messages, then the close.
    let id = conn.id();
    let got = util::collect(&net_s, 101, |e| match &e.kind {
        EventKind::Receive { .. } => true,
        EventKind::ClientClose { connection, .. } => *connection == id,
        _ => false,
    });
    assert_eq!(got.len(), 101);
    let seqs: Vec<i64> = got[..100]
        .iter()
        .map(|e| match &e.kind {
            EventKind::Receive { from, packet } => {
                assert_eq!(*from, Source::Connection(id));
                seq_of(packet)
            }
            other => panic!("close before all messages arrived: {other:?}"),
        })
        .collect();
    assert_eq!(seqs, (0..100).collect::<Vec<_>>());
    let EventKind::ClientClose {
        server: sid,
        reason,
        ..
    } = &got[100].kind
    else {
        panic!("expected the close last: {:?}", got[100])
    };
    assert_eq!(*sid, server.id());
    assert_eq!(*reason, CloseReason::ClosedByPeer);
    assert!(!conn.is_open());
    assert_eq!(server.connection_count(), 0);
}

#[test]
fn dropping_the_server_closes_its_clients_and_refuses_new_ones() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (port, sid) = (server.port(), server.id());
    let (c1, k1) = connect(&net_s, &net_c, &server);
    let (c2, k2) = connect(&net_s, &net_c, &server);

    drop(server);
    let mut closed = HashMap::new();
    util::collect(&net_c, 2, |e| match &e.kind {
        EventKind::ServerClose { client, reason } => {
            closed.insert(*client, reason.clone());
            true
        }
        _ => false,
    });
    assert_eq!(closed.len(), 2);
    assert_eq!(closed[&c1.id()], CloseReason::ClosedByPeer);
    assert_eq!(closed[&c2.id()], CloseReason::ClosedByPeer);
    let mut conn_closed = HashMap::new();
    util::collect(&net_s, 2, |e| match &e.kind {
        EventKind::ClientClose {
            connection,
            server,
            reason,
        } => {
            conn_closed.insert(*connection, (*server, reason.clone()));
            true
        }
        _ => false,
    });
    for k in [&k1, &k2] {
        assert_eq!(conn_closed[&k.id()], (sid, CloseReason::ClosedLocally));
        assert!(!k.is_open());
        assert_eq!(k.send(&table! {}.into()), Err(SendError::Closed));
    }

    let late = net_c.client("127.0.0.1", port, None).unwrap();
    let started = Instant::now();
    let err = late.wait_for_connect(CONNECT_TIMEOUT).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                kind: ErrorKind::ConnectionRefused,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn connection_clones_share_ownership() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (client, conn) = connect(&net_s, &net_c, &server);
    let clone = conn.clone();
    assert_eq!(clone.id(), conn.id());
    drop(conn);

    // Still open both ways.
    assert!(clone.is_open());
    client.send(&table! { "ping" => 1 }.into()).unwrap();
    let (from, packet) = receive(&net_s);
    assert_eq!(from, Source::Connection(clone.id()));
    assert_eq!(packet["ping"], 1.into());
    clone.send(&table! { "pong" => 2 }.into()).unwrap();
    let (from, packet) = receive(&net_c);
    assert_eq!(from, Source::Client(client.id()));
    assert_eq!(packet["pong"], 2.into());
    assert!(client.is_connected());
    assert_eq!(server.connection_count(), 1);

    // The last one closes it.
    let id = clone.id();
    let clone2 = clone.clone();
    drop(clone);
    assert!(clone2.is_open());
    drop(clone2);
    assert_eq!(server_close(&net_c, client.id()), CloseReason::ClosedByPeer);
    assert_eq!(client_close(&net_s, id).1, CloseReason::ClosedLocally);
}

// ------------------------------------------------------------ wait_for_connect

#[test]
fn wait_for_connect_returns_how_long_connecting_took() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let created = Instant::now();
    let client = net_c.client("127.0.0.1", server.port(), None).unwrap();
    let took = client.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    let elapsed = created.elapsed();
    assert!(took <= elapsed, "{took:?} > {elapsed:?}");
    assert!(took < CONNECT_TIMEOUT);
    // Asking again answers at once with the same duration.
    let again = Instant::now();
    assert_eq!(
        client.wait_for_connect(Duration::from_millis(250)).unwrap(),
        took
    );
    assert!(again.elapsed() < Duration::from_millis(250));
    assert!(client.is_connected());
}

#[test]
fn wait_for_connect_to_a_closed_port_fails_quickly() {
    let net = Network::new();
    let client = net.client("127.0.0.1", closed_port(), None).unwrap();
    let started = Instant::now();
    let err = client.wait_for_connect(CONNECT_TIMEOUT).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            &err,
            Error::Io {
                operation: "connect",
                kind: ErrorKind::ConnectionRefused,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(took < Duration::from_secs(1), "refusal took {took:?}");
    assert_eq!(client.port(), None);
    assert!(!client.is_connected());
    assert_eq!(client.send(&table! {}.into()), Err(SendError::Closed));
    // Asking again gives the same answer.
    assert_eq!(
        client.wait_for_connect(Duration::from_millis(250)),
        Err(err)
    );
}

#[test]
fn wait_for_connect_times_out_against_a_full_backlog() {
    use socket2::{Domain, Socket, Type};

    // A loopback listener with the smallest backlog that never accepts.
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();

    // Fill its accept queue with plain connections until one cannot get in.
    let mut fillers = Vec::new();
    let mut full = false;
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
                full = true;
                break;
            }
        }
    }
    // Linux keeps backlog + 1 connections and then drops SYNs, so the client
    // below never gets past its TCP connect. If a kernel accepted all 16, the
    // client would still not connect (the listener never answers the
    // preamble), so the expectations below hold either way.
    println!("backlog filled: {full} after {} connections", fillers.len());

    let mut cfg = Config::default();
    cfg.handshake_timeout = Duration::from_millis(1000);
    let net = Network::with_config(cfg).unwrap();
    let client = net.client("127.0.0.1", addr.port(), None).unwrap();
    let started = Instant::now();
    let result = client.wait_for_connect(Duration::from_millis(300));
    let took = started.elapsed();
    assert_eq!(
        result,
        Err(Error::Timeout {
            operation: "connect",
            after: Duration::from_millis(300)
        })
    );
    assert!(
        took >= Duration::from_millis(300),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(2), "returned after {took:?}");
    assert!(!client.is_connected());
    assert_eq!(client.port(), None);

    // The handshake timeout then ends the attempt with a failed Connected.
    let (ev, _) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Connected { .. }));
    let EventKind::Connected { client: id, result } = ev.kind else {
        unreachable!()
    };
    assert_eq!(id, client.id());
    assert!(
        matches!(
            result,
            Err(Error::Timeout {
                operation: "handshake",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    drop(fillers);
}

/// Regression test, deterministic: the server's preamble is already waiting
/// in the client's socket when the client's IO thread first sees the socket
/// (so one readiness edge says "writable and readable" at once). On loopback
/// with client and server on different networks this is a common race.
#[test]
fn client_connects_when_the_servers_preamble_is_already_waiting() {
    let net = Network::new();
    let raw = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = raw.local_addr().unwrap().port();

    // A wake hook that, while armed, parks the IO thread until released.
    let armed = Arc::new(AtomicBool::new(true));
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let hook_armed = armed.clone();
    net.set_wake_hook(move || {
        if hook_armed.load(Ordering::SeqCst) {
            let _ = entered_tx.send(());
            let _ = release_rx.lock().unwrap().recv_timeout(util::DEADLINE);
        }
    });
    let park_timeout = util::DEADLINE;

    // 1. Park the IO thread: a refused client produces events.
    let _refused = net.client("127.0.0.1", closed_port(), None).unwrap();
    entered.recv_timeout(park_timeout).unwrap();
    // 2. While it is parked, queue: connect the real client, then a client
    //    that is already disconnected (its failure produces an event in the
    //    same round, after the real client's socket is registered).
    let client = net.client("127.0.0.1", port, None).unwrap();
    let marker = net.client("127.0.0.1", closed_port(), None).unwrap();
    marker.disconnect();
    let _ = net.poll_events(); // empty ring, so the next events call the hook
    release.send(()).unwrap();
    entered.recv_timeout(park_timeout).unwrap();
    // 3. The IO thread is parked after registering the client's socket and
    //    before polling it. The server side answers now.
    let (mut stream, _) = raw.accept().unwrap();
    stream.write_all(&preamble()).unwrap();
    // Once the client's kernel has acknowledged the preamble, it waits in
    // the client's socket.
    util::wait_until(
        "the client's kernel acknowledges the preamble",
        park_timeout,
        || unacknowledged_bytes(&stream) == 0,
    );
    armed.store(false, Ordering::SeqCst);
    release.send(()).unwrap();

    let result = client.wait_for_connect(Duration::from_secs(2));
    assert!(
        result.is_ok(),
        "client never read the server's preamble: {result:?}"
    );
    assert_eq!(client.port(), Some(port));
}

// ------------------------------------------------------------ arguments

#[test]
fn invalid_arguments_name_the_argument_and_its_range() {
    // (The Lua API's narrower rules, IP literals and ports 1024..=65535,
    // are checked in tests/lua/api.lua.) Only malformed text here: a name
    // that is not in /etc/hosts would be looked up in the DNS.
    let net = Network::new();
    for address in ["127.0.0.1", "[::1]:99999", "127.0.0.1:port", ""] {
        invalid_argument(
            net.bind(address, None),
            "address",
            "host name or IP address",
        );
        invalid_argument(
            net.connect(address, None),
            "address",
            "host name or IP address",
        );
    }
    invalid_argument(net.client("127.0.0.1", 0, None), "port", "1..=65535");
    // Malformed keys (wrong length, a non-hex digit) are refused.
    for key in ["0C03", "0C03EA65238DD2C25EB87CE56386809G", ""] {
        invalid_argument(net.server("127.0.0.1", 0, Some(key)), "key", "key");
        invalid_argument(net.client("127.0.0.1", 5000, Some(key)), "key", "key");
    }

    // Any timeout: the Lua API's 0.25..=10 s is its own rule.
    let server = listen(&net);
    let client = net.client("127.0.0.1", server.port(), None).unwrap();
    client.wait_for_connect(Duration::from_secs(60)).unwrap();
    client.wait_for_connect(Duration::ZERO).unwrap();
    let _conn = util::accept(&net);
}

// ------------------------------------------------------------ sends and close

#[test]
fn sends_after_close_fail_with_closed() {
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let other = listen(&net_s);
    let (c1, k1) = connect(&net_s, &net_c, &server);
    let (c2, k2) = connect(&net_s, &net_c, &server);
    let (_c3, k3) = connect(&net_s, &net_c, &other);
    let msg: Value = table! { "late" => true }.into();

    // Client side, at once and after the close event.
    c1.disconnect();
    assert_eq!(c1.send(&msg), Err(SendError::Closed));
    assert_eq!(client_close(&net_s, k1.id()).1, CloseReason::ClosedByPeer);
    assert_eq!(server_close(&net_c, c1.id()), CloseReason::ClosedLocally);
    assert_eq!(c1.send(&msg), Err(SendError::Closed));
    assert_eq!(k1.send(&msg), Err(SendError::Closed));
    assert_eq!(server.send_to(k1.id(), &msg), Err(SendError::Closed));
    assert_eq!(server.send(&msg, &[k1.id()]), 0);

    // Connection side.
    k2.disconnect();
    assert_eq!(k2.send(&msg), Err(SendError::Closed));
    assert_eq!(server.send_to(k2.id(), &msg), Err(SendError::Closed));
    assert_eq!(server_close(&net_c, c2.id()), CloseReason::ClosedByPeer);
    assert_eq!(c2.send(&msg), Err(SendError::Closed));

    // An id this server never had (it belongs to another server).
    assert_eq!(server.send_to(k3.id(), &msg), Err(SendError::Closed));
    assert_eq!(server.send(&msg, &[k3.id()]), 0);
    assert_eq!(server.disconnect(&[k3.id()]), 0);
    assert!(k3.is_open(), "the other server's connection is untouched");
    other.send_to(k3.id(), &msg).unwrap();
}

#[test]
fn sends_made_before_connecting_are_delivered_in_order() {
    // Deterministic: a raw server holds back its preamble, so the client
    // cannot be connected while it sends.
    let net = Network::new();
    let raw = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = net
        .client("127.0.0.1", raw.local_addr().unwrap().port(), None)
        .unwrap();
    let messages: Vec<Value> = (0..20)
        .map(|i| table! { "seq" => i, "pad" => "x".repeat(i as usize * 10) }.into())
        .collect();
    let mut bytes = 0;
    for m in &messages {
        assert!(!client.is_connected());
        client.send(m).unwrap();
        bytes += encode_message_to_vec(m, &net.config().limits)
            .unwrap()
            .len();
    }
    assert_eq!(client.queued_bytes(), bytes);
    let (mut stream, _) = raw.accept().unwrap();
    stream.write_all(&preamble()).unwrap();
    assert_eq!(read_messages(&mut stream, messages.len()), messages);
    client.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    util::wait_until("the queue to drain", util::DEADLINE, || {
        client.queued_bytes() == 0
    });

    // The same against a tablenet server on another network: sends right
    // after creating the client.
    let net_s = Network::new();
    let server = listen(&net_s);
    let client = net.client("127.0.0.1", server.port(), None).unwrap();
    for i in 0..200 {
        client.send(&table! { "seq" => i }.into()).unwrap();
    }
    // Connect and the first messages may come in one batch: take both kinds.
    let mut conn = None;
    let got = util::collect(&net_s, 201, |e| {
        matches!(
            e.kind,
            EventKind::Connect { .. } | EventKind::Receive { .. }
        )
    });
    let mut seqs = Vec::new();
    for ev in got {
        match ev.kind {
            EventKind::Connect { connection, .. } => {
                assert!(seqs.is_empty(), "a message came before Connect");
                conn = Some(connection);
            }
            EventKind::Receive { from, packet } => {
                let conn = conn.as_ref().expect("Connect comes first");
                assert_eq!(from, Source::Connection(conn.id()));
                seqs.push(seq_of(&packet));
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
}

// ------------------------------------------------------------ shutdown

#[test]
fn shutdown_delivers_what_was_queued() {
    const N: i64 = 1000;
    let net_s = Network::new();
    let net_c = Network::new();
    let server = listen(&net_s);
    let (client, conn) = connect(&net_s, &net_c, &server);
    let pad = vec![0x5Au8; 1024];
    for i in 0..N {
        client
            .send(&table! { "seq" => i, "pad" => pad.clone() }.into())
            .unwrap();
    }
    println!("queued at shutdown: {} bytes", client.queued_bytes());
    let started = Instant::now();
    net_c.shutdown(Duration::from_secs(5));
    // The peer answers our end of stream at once, so shutdown need not wait
    // for its deadline.
    assert!(started.elapsed() < Duration::from_secs(5));

    // One pass over the ring: all N messages, then the close.
    let id = conn.id();
    let got = util::collect(&net_s, N as usize + 1, |e| match &e.kind {
        EventKind::Receive { .. } => true,
        EventKind::ClientClose { connection, .. } => *connection == id,
        _ => false,
    });
    assert_eq!(got.len(), N as usize + 1);
    for (i, ev) in got[..N as usize].iter().enumerate() {
        let EventKind::Receive { from, packet } = &ev.kind else {
            panic!("close after only {i} of {N} messages: {ev:?}")
        };
        assert_eq!(*from, Source::Connection(id));
        assert_eq!(seq_of(packet), i as i64);
        assert_eq!(packet["pad"].as_bytes(), Some(&pad[..]));
    }
    assert!(matches!(
        &got[N as usize].kind,
        EventKind::ClientClose {
            reason: CloseReason::ClosedByPeer,
            ..
        }
    ));

    // The client's own network reports the close, locally.
    assert!(!client.is_connected());
    assert_eq!(client.send(&table! {}.into()), Err(SendError::Closed));
    let closes: Vec<CloseReason> = net_c
        .poll_events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ServerClose { client: c, reason } if c == client.id() => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(closes, [CloseReason::ClosedLocally]);
}

#[test]
fn after_shutdown_new_servers_and_clients_fail() {
    let net = Network::new();
    let server = listen(&net);
    let port = server.port();
    net.shutdown(Duration::from_secs(2));
    assert!(matches!(
        net.server("127.0.0.1", 0, None),
        Err(Error::Shutdown)
    ));
    assert!(matches!(
        net.client("127.0.0.1", port, None),
        Err(Error::Shutdown)
    ));
    // The listener is gone: another network's client is refused.
    let other = Network::new();
    let client = other.client("127.0.0.1", port, None).unwrap();
    assert!(client.wait_for_connect(CONNECT_TIMEOUT).is_err());
    // Shutting down twice is harmless, and so is a network that never ran.
    net.shutdown(Duration::from_secs(1));
    let idle = Network::new();
    idle.shutdown(Duration::from_secs(1));
    assert!(matches!(
        idle.server("127.0.0.1", 0, None),
        Err(Error::Shutdown)
    ));
    drop(server);
}

/// Bytes written on `stream` that the peer's kernel has not acknowledged
/// (Linux `SIOCOUTQ`); 0 means they sit in the peer's receive buffer.
#[allow(unsafe_code)]
fn unacknowledged_bytes(stream: &TcpStream) -> usize {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one c_int through the pointer,
    // which points at a live local; the descriptor is the stream's own.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    assert_eq!(rc, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    usize::try_from(n).unwrap_or(0)
}

// ------------------------------------------------------------ a network that is gone

/// Servers and clients do not keep their network running (its events come
/// from the `Network` handle): once the last one is dropped, or after an
/// explicit shutdown, their handles say so instead of failing silently.
#[test]
fn handles_of_a_network_that_is_gone_say_so() {
    let live = Network::new();
    let target = listen(&live);

    // Temporary networks: shut down as each statement ends.
    let server = Network::new().server("127.0.0.1", 0, None).unwrap();
    assert!(!server.is_open(), "a server of a dropped network");
    assert_ne!(server.port(), 0, "its port is still reported");
    let client = Network::new()
        .client("127.0.0.1", target.port(), None)
        .unwrap();
    assert!(!client.is_open(), "a client of a dropped network");
    assert_eq!(
        client.wait_for_connect(CONNECT_TIMEOUT),
        Err(Error::Shutdown),
        "says why it cannot connect"
    );
    assert_eq!(client.send(&table! {}.into()), Err(SendError::Closed));

    // An explicit shutdown.
    let net = Network::new();
    let server = listen(&net);
    let client = net.client("127.0.0.1", target.port(), None).unwrap();
    client.wait_for_connect(CONNECT_TIMEOUT).unwrap();
    let _conn = util::accept(&live);
    assert!(server.is_open() && client.is_open());
    net.shutdown(Duration::from_secs(2));
    assert!(!server.is_open());
    assert!(!client.is_open() && !client.is_connected());
    assert_eq!(client.send(&table! {}.into()), Err(SendError::Closed));
    assert!(matches!(
        net.server("127.0.0.1", 0, None),
        Err(Error::Shutdown)
    ));
    assert!(matches!(
        net.client("127.0.0.1", target.port(), None),
        Err(Error::Shutdown)
    ));
}
