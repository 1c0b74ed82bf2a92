//! Rust's own address forms for both roles: host names, `host:port` text,
//! `(host, port)` pairs, `SocketAddr`s and lists of them, tried in order;
//! and any port, privileged ones included. Loopback only: the only names
//! resolved are in /etc/hosts.

mod util;

use std::net::{Ipv6Addr, SocketAddr, TcpListener};
use std::time::Duration;

use tablenet::{EventKind, Network, Server, Source, table};

/// Connects a client made by `connect` to `server`, exchanges one message
/// each way, and returns the address the client reports.
fn talk(net: &Network, server: &Server, client: tablenet::Client) -> SocketAddr {
    client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap();
    let conn = util::accept(net);
    assert_eq!(conn.server_id(), server.id());
    client.send(&table! { "up" => 1 }.into()).unwrap();
    let (from, packet) = util::receive(net);
    assert_eq!(from, Source::Connection(conn.id()));
    assert_eq!(packet["up"], 1.into());
    conn.send(&table! { "down" => 2 }.into()).unwrap();
    let (from, packet) = util::receive(net);
    assert_eq!(from, Source::Client(client.id()));
    assert_eq!(packet["down"], 2.into());
    assert_eq!(client.port(), Some(server.port()));
    client.peer_addr()
}

#[test]
fn host_names_text_pairs_and_socket_addrs_work_for_both_roles() {
    let net = Network::new();
    // A host name with a port, as text.
    let server = net.bind("localhost:0", None).unwrap();
    assert_eq!(server.address(), "127.0.0.1");
    let port = server.port();
    let to = talk(
        &net,
        &server,
        net.connect(format!("localhost:{port}"), None).unwrap(),
    );
    assert_eq!(to, SocketAddr::from(([127, 0, 0, 1], port)));
    // The three-argument forms take host names too.
    let to = talk(&net, &server, net.client("localhost", port, None).unwrap());
    assert_eq!(to.port(), port);
    // A SocketAddr.
    let at: SocketAddr = ([127, 0, 0, 1], 0).into();
    let server = net.bind(at, None).unwrap();
    let addr = server.local_addr();
    talk(&net, &server, net.connect(addr, None).unwrap());
    // A (host, port) pair, IPv6 loopback.
    let server = net.bind(("::1", 0), None).unwrap();
    assert_eq!(server.address(), "::1");
    let to = talk(
        &net,
        &server,
        net.connect(("::1", server.port()), None).unwrap(),
    );
    assert_eq!(to.ip(), Ipv6Addr::LOCALHOST);
    let server = net.server("::1", 0, None).unwrap();
    talk(
        &net,
        &server,
        net.client("::1", server.port(), None).unwrap(),
    );
    net.shutdown(Duration::from_secs(2));
}

#[test]
fn a_client_falls_back_to_the_next_address_when_the_first_refuses() {
    let net = Network::new();
    let server = util::listen(&net);
    let refusing = SocketAddr::from(([127, 0, 0, 1], util::closed_port()));
    let serving = server.local_addr();
    let client = net.connect(&[refusing, serving][..], None).unwrap();
    assert_eq!(client.peer_addr(), refusing, "before connecting: the first");
    let to = talk(&net, &server, client);
    assert_eq!(to, serving, "connected to the second");

    // When every address refuses, the last failure is reported.
    let client = net.connect(&[refusing, refusing][..], None).unwrap();
    let err = client.wait_for_connect(util::CONNECT_TIMEOUT).unwrap_err();
    assert!(err.to_string().contains("connect"), "{err}");
    let (event, _) = util::wait_for(&net, |e| matches!(e.kind, EventKind::Connected { .. }));
    assert!(matches!(
        event.kind,
        EventKind::Connected { result: Err(_), .. }
    ));
}

#[test]
fn ports_below_1024_are_fine_in_rust() {
    // As root a privileged port can be bound; take the first free one.
    let port = (900..1024)
        .rev()
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port below 1024 (the tests run as root)");
    let net = Network::new();
    let server = net.server("127.0.0.1", port, None).unwrap();
    assert_eq!(server.port(), port);
    talk(&net, &server, net.client("127.0.0.1", port, None).unwrap());
}
