//! Several IO threads (`Config::io_threads`): servers and clients spread
//! over them, every message still arrives once and in order, a slow
//! application still loses nothing, and shutdown stops them all.
//! Loopback only.

mod util;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tablenet::{
    CloseReason, Config, Connection, ConnectionId, Error, EventKind, Network, Source, table,
};
use util::{DEADLINE, number};

fn network(threads: usize, capacity: usize) -> Network {
    let mut config = Config::default();
    config.io_threads = threads;
    config.event_capacity = capacity;
    Network::with_config(config).unwrap()
}

/// This process's threads whose name starts with `prefix` (Linux).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// Takes events from `net` until `count` numbered messages have arrived
/// from each of `senders` connections, checking each connection's numbers
/// run 0, 1, 2, ... with none missing or repeated. With `slow`, pauses
/// between takes so the lossless ring fills and the IO threads wait.
/// Returns the connections' owning handles (dropping one closes it).
fn receive_in_order(net: &Network, senders: usize, count: usize, slow: bool) -> Vec<Connection> {
    let mut next: HashMap<ConnectionId, usize> = HashMap::new();
    let mut conns = Vec::new();
    let mut done = 0;
    let deadline = Instant::now() + DEADLINE * 3;
    while done < senders {
        assert!(
            Instant::now() < deadline,
            "{done} of {senders} senders complete: {next:?}"
        );
        if slow {
            std::thread::sleep(Duration::from_millis(2));
        }
        for ev in net.wait_events(Duration::from_millis(100)) {
            match ev.kind {
                EventKind::Connect { connection, .. } => conns.push(connection),
                EventKind::Receive {
                    from: Source::Connection(id),
                    packet,
                } => {
                    let expected = next.entry(id).or_default();
                    assert_eq!(number(&packet), Some(*expected), "from {id:?}");
                    *expected += 1;
                    if *expected == count {
                        done += 1;
                    }
                }
                // Closed after sending (a client shut down): its messages
                // came first; any missing would show at the deadline.
                EventKind::ClientClose { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(next.len(), senders);
    assert!(next.values().all(|n| *n == count));
    conns
}

#[test]
fn servers_and_clients_spread_over_the_threads_and_every_message_arrives_in_order() {
    const SERVERS: usize = 3;
    const PER_SERVER: usize = 3;
    const COUNT: usize = 3_000;
    let server_net = network(3, 2000);
    let client_net = network(3, 2000);
    let servers: Vec<_> = (0..SERVERS)
        .map(|_| server_net.server("127.0.0.1", 0, None).unwrap())
        .collect();
    // Sends queue before the connection is up, and go out once it is.
    let clients: Vec<_> = servers
        .iter()
        .flat_map(|s| (0..PER_SERVER).map(|_| client_net.client("127.0.0.1", s.port(), None)))
        .map(Result::unwrap)
        .collect();
    // Both networks have started their IO (other tests may add theirs);
    // a thread names itself as it starts.
    util::wait_until("three IO threads per network", DEADLINE, || {
        threads_named("tablenet-io-") >= 6
    });
    for client in &clients {
        for n in 0..COUNT {
            client.send(&table! { "n" => n as i64 }.into()).unwrap();
        }
    }
    let _conns = receive_in_order(&server_net, SERVERS * PER_SERVER, COUNT, false);
    for server in &servers {
        assert_eq!(server.connection_count(), PER_SERVER);
        assert_eq!(server.broadcast(&table! { "n" => 0 }.into()), PER_SERVER);
    }
    // Each client hears its own server's broadcast, whichever thread it is on.
    let mut heard = 0;
    let deadline = Instant::now() + DEADLINE;
    while heard < clients.len() {
        assert!(
            Instant::now() < deadline,
            "{heard} clients heard the broadcast"
        );
        for ev in client_net.wait_events(Duration::from_millis(100)) {
            match ev.kind {
                EventKind::Connected { result, .. } => result.unwrap(),
                EventKind::Receive {
                    from: Source::Client(_),
                    packet,
                } => {
                    assert_eq!(number(&packet), Some(0));
                    heard += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let report = client_net.shutdown(DEADLINE);
    assert!(report.is_clean(), "{report:?}");
    let report = server_net.shutdown(DEADLINE);
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn one_server_s_connections_spread_over_the_threads_and_echoes_come_back_in_order() {
    const CLIENTS: usize = 12;
    const COUNT: usize = 2_000;
    // One server: its connections are handed to the threads in turn once
    // their handshake ends; the server echoes each message as it arrives,
    // so sends race the move (commands sent to the old thread are passed on).
    let server_net = network(3, 2000);
    let client_net = network(1, 2000);
    let server = server_net.server("127.0.0.1", 0, None).unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| client_net.client("127.0.0.1", server.port(), None).unwrap())
        .collect();
    for client in &clients {
        for n in 0..COUNT {
            client.send(&table! { "n" => n as i64 }.into()).unwrap();
        }
    }
    let mut conns = Vec::new();
    let mut echoed = 0;
    let deadline = Instant::now() + DEADLINE * 3;
    while echoed < CLIENTS * COUNT {
        assert!(Instant::now() < deadline, "{echoed} echoed");
        for ev in server_net.wait_events(Duration::from_millis(100)) {
            match ev.kind {
                EventKind::Connect { connection, .. } => conns.push(connection),
                EventKind::Receive {
                    from: Source::Connection(id),
                    packet,
                } => {
                    server.send_to(id, &packet).unwrap();
                    echoed += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // Each client reads its echoes in order, then one broadcast.
    assert_eq!(
        server.broadcast(&table! { "n" => COUNT as i64 }.into()),
        CLIENTS
    );
    let mut next: HashMap<tablenet::ClientId, usize> = HashMap::new();
    let mut done = 0;
    let deadline = Instant::now() + DEADLINE * 3;
    while done < CLIENTS {
        assert!(
            Instant::now() < deadline,
            "{done} clients complete: {next:?}"
        );
        for ev in client_net.wait_events(Duration::from_millis(100)) {
            match ev.kind {
                EventKind::Connected { result, .. } => result.unwrap(),
                EventKind::Receive {
                    from: Source::Client(id),
                    packet,
                } => {
                    let expected = next.entry(id).or_default();
                    assert_eq!(number(&packet), Some(*expected), "to {id:?}");
                    *expected += 1;
                    if *expected == COUNT + 1 {
                        done += 1;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // Closing from the server's side reaches every client, whichever
    // thread its connection ended up on.
    drop(conns);
    let mut closed = 0;
    let deadline = Instant::now() + DEADLINE;
    while closed < CLIENTS {
        assert!(Instant::now() < deadline, "{closed} closes seen");
        for ev in client_net.wait_events(Duration::from_millis(100)) {
            match ev.kind {
                EventKind::ServerClose { reason, .. } => {
                    assert!(matches!(reason, CloseReason::ClosedByPeer), "{reason:?}");
                    closed += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    // The server counts a connection out once its close is complete, which
    // may be just after the client has seen it.
    util::wait_until("the server's connections all closed", DEADLINE, || {
        server.connection_count() == 0
    });
    server_net.shutdown(DEADLINE);
    client_net.shutdown(DEADLINE);
}

#[test]
fn a_slow_application_loses_nothing_when_several_threads_share_a_small_ring() {
    const SENDERS: usize = 4;
    const COUNT: usize = 2_000;
    // Two servers, so both threads push into a ring of 64 events.
    let server_net = network(2, 64);
    let client_net = network(1, 2000);
    let servers: Vec<_> = (0..2)
        .map(|_| server_net.server("127.0.0.1", 0, None).unwrap())
        .collect();
    let clients: Vec<_> = (0..SENDERS)
        .map(|i| {
            client_net
                .client("127.0.0.1", servers[i % 2].port(), None)
                .unwrap()
        })
        .collect();
    for client in &clients {
        for n in 0..COUNT {
            client.send(&table! { "n" => n as i64 }.into()).unwrap();
        }
    }
    receive_in_order(&server_net, SENDERS, COUNT, true);
    let report = client_net.shutdown(DEADLINE);
    assert!(report.is_clean(), "{report:?}");
    server_net.shutdown(DEADLINE);
}

#[test]
fn queued_messages_reach_the_peer_when_a_network_of_several_threads_shuts_down() {
    let server_net = network(1, 2000);
    let client_net = network(4, 2000);
    let server = server_net.server("127.0.0.1", 0, None).unwrap();
    let clients: Vec<_> = (0..8)
        .map(|_| client_net.client("127.0.0.1", server.port(), None).unwrap())
        .collect();
    for client in &clients {
        for n in 0..500 {
            client.send(&table! { "n" => n as i64 }.into()).unwrap();
        }
    }
    // Shut down at once: every thread flushes its own clients' queues.
    let report = client_net.shutdown(DEADLINE);
    assert!(report.is_clean(), "{report:?}");
    receive_in_order(&server_net, clients.len(), 500, false);
    server_net.shutdown(DEADLINE);
}

#[test]
fn io_threads_are_checked() {
    for (threads, inline) in [(0, false), (65, false), (2, true)] {
        let mut config = Config::default();
        config.io_threads = threads;
        config.inline_io = inline;
        match Network::with_config(config) {
            Err(Error::InvalidArgument { argument, .. }) => assert_eq!(argument, "io_threads"),
            other => panic!("{threads} threads, inline {inline}: {other:?}"),
        }
    }
    let mut config = Config::default();
    config.io_threads = 64;
    assert!(Network::with_config(config).is_ok());
}
