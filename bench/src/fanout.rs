//! `fanout`: a server broadcasts the seed's table to 1,000 connected
//! clients; deliveries per second counted at the clients (from the first
//! broadcast to the last client receiving the end marker).

use std::io::BufReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use message_io::network::{Endpoint, NetEvent, Transport};
use message_io::node::{self, NodeEvent};
use tablenet::{EventKind, Source};

use crate::common::*;
use crate::sides::*;

#[derive(Clone, Copy)]
struct Plan {
    clients: usize,
    messages: usize,
    /// The broadcaster stops after this long (then sends the end marker).
    cap: Duration,
}

/// Deliveries counted at the clients, and the time from the first broadcast
/// to the last end marker.
#[derive(Debug, Clone, Copy)]
pub struct Fanout {
    deliveries: u64,
    secs: f64,
    messages: usize,
}

impl Fanout {
    fn per_sec(&self) -> f64 {
        self.deliveries as f64 / self.secs
    }
}

/// tablenet: one server network, one client network holding all clients
/// (one IO thread each); `Server::broadcast` encodes once per message; the
/// client application counts `Receive` events.
fn tablenet_fanout(p: Plan) -> Fanout {
    let server_net = lossless_network();
    let client_net = lossless_network();
    let server = server_net.server("127.0.0.1", 0, None).expect("server");
    let clients: Vec<_> = (0..p.clients)
        .map(|_| {
            client_net
                .client("127.0.0.1", server.port(), None)
                .expect("client")
        })
        .collect();
    let conns = accept(&server_net, p.clients, Duration::from_secs(20));
    for c in &clients {
        c.wait_for_connect(Duration::from_secs(10))
            .expect("connect");
    }
    assert_eq!(server.connection_count(), p.clients);

    let counter = {
        let net = client_net.clone();
        let n = p.clients;
        thread::spawn(move || {
            let (mut deliveries, mut ends) = (0u64, 0usize);
            loop {
                let events = net.wait_events(Duration::from_secs(10));
                assert!(!events.is_empty(), "tablenet fanout stalled");
                for event in events {
                    if let EventKind::Receive {
                        packet,
                        from: Source::Client(_),
                    } = event.kind
                    {
                        if is_end_value(&packet) {
                            ends += 1;
                            if ends == n {
                                return (Instant::now(), deliveries);
                            }
                        } else {
                            std::hint::black_box(&packet);
                            deliveries += 1;
                        }
                    }
                }
            }
        })
    };

    let message = seed_value();
    let start = Instant::now();
    let mut messages = 0;
    while messages < p.messages && start.elapsed() < p.cap {
        let accepted = server.broadcast(&message);
        assert_eq!(accepted, p.clients, "broadcast refused");
        messages += 1;
    }
    assert_eq!(server.broadcast(&end_value()), p.clients);
    let (end, deliveries) = counter.join().expect("counter");
    assert_eq!(deliveries, (messages * p.clients) as u64);
    drop(clients);
    drop(conns);
    drop(server);
    client_net.shutdown(Duration::from_secs(2));
    server_net.shutdown(Duration::from_secs(2));
    Fanout {
        deliveries,
        secs: (end - start).as_secs_f64(),
        messages,
    }
}

/// Raw TCP as a user would write it with blocking std sockets: one reader
/// thread per client (BufReader, decode every frame), and a broadcaster that
/// encodes each message once and writes it to each client with one
/// `write_all` (TCP_NODELAY on both ends).
fn raw_fanout(p: Plan) -> Fanout {
    let listener = raw_listener(4096);
    let addr = listener.local_addr().expect("addr");
    let deliveries = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..p.clients)
        .map(|_| {
            let deliveries = deliveries.clone();
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let stream = raw_connect(addr);
                    let mut reader = BufReader::new(stream);
                    let mut buf = Vec::new();
                    let mut n = 0u64;
                    while let Some(v) = read_frame(&mut reader, &mut buf).expect("read") {
                        if v.is_end() {
                            deliveries.fetch_add(n, Ordering::Relaxed);
                            return Instant::now();
                        }
                        std::hint::black_box(&v);
                        n += 1;
                    }
                    panic!("EOF before the end marker");
                })
                .expect("spawn reader")
        })
        .collect();
    let mut streams: Vec<_> = (0..p.clients)
        .map(|_| {
            let (s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            s
        })
        .collect();

    let message = seed_plain();
    let mut frame = Vec::new();
    let start = Instant::now();
    let mut messages = 0;
    while messages < p.messages && start.elapsed() < p.cap {
        encode_frame(&message, &mut frame);
        for s in &mut streams {
            std::io::Write::write_all(s, &frame).expect("write");
        }
        messages += 1;
    }
    encode_frame(&end_plain(), &mut frame);
    for s in &mut streams {
        std::io::Write::write_all(s, &frame).expect("write");
    }
    let end = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .max()
        .expect("clients");
    let deliveries = deliveries.load(Ordering::Relaxed);
    assert_eq!(deliveries, (messages * p.clients) as u64);
    Fanout {
        deliveries,
        secs: (end - start).as_secs_f64(),
        messages,
    }
}

/// message-io 0.19 FramedTcp as shipped: one server node, one client node
/// holding all connections; the server encodes once and sends to each
/// endpoint; the client callback decodes and counts.
fn message_io_fanout(p: Plan) -> Fanout {
    let (server_handler, server_listener) = node::split::<()>();
    let (_, addr) = server_handler
        .network()
        .listen(Transport::FramedTcp, "127.0.0.1:0")
        .expect("listen");
    let accepted: Arc<Mutex<Vec<Endpoint>>> = Arc::default();
    let server_task = {
        let accepted = accepted.clone();
        server_listener.for_each_async(move |event| {
            if let NodeEvent::Network(NetEvent::Accepted(endpoint, _)) = event {
                accepted.lock().expect("lock").push(endpoint);
            }
        })
    };
    let server = MioNode::new(server_handler, server_task);

    let (client_handler, client_listener) = node::split::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let n = p.clients;
    let (mut connected, mut ends, mut deliveries) = (0usize, 0usize, 0u64);
    let client_task = client_listener.for_each_async(move |event| match event {
        NodeEvent::Network(NetEvent::Connected(_, ok)) => {
            assert!(ok, "message-io connect failed");
            connected += 1;
        }
        NodeEvent::Network(NetEvent::Message(_, data)) => {
            let v = decode_body(data);
            if v.is_end() {
                ends += 1;
                if ends == n {
                    let _ = done_tx.send((Instant::now(), deliveries, connected));
                }
            } else {
                std::hint::black_box(&v);
                deliveries += 1;
            }
        }
        _ => {}
    });
    let client = MioNode::new(client_handler, client_task);
    for _ in 0..p.clients {
        client
            .handler
            .network()
            .connect(Transport::FramedTcp, addr)
            .expect("connect");
    }
    wait_until("message-io accepts", Duration::from_secs(20), || {
        accepted.lock().expect("lock").len() == p.clients
    });
    let endpoints = accepted.lock().expect("lock").clone();
    // The Accepted side can be ahead of the client's Connected events; data
    // sent now is buffered by the kernel either way.

    let message = seed_plain();
    let mut body = Vec::new();
    let start = Instant::now();
    let mut messages = 0;
    while messages < p.messages && start.elapsed() < p.cap {
        encode_body(&message, &mut body);
        for e in &endpoints {
            server.send(*e, &body);
        }
        messages += 1;
    }
    encode_body(&end_plain(), &mut body);
    for e in &endpoints {
        server.send(*e, &body);
    }
    let (end, deliveries, _) = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("message-io fanout finished");
    assert_eq!(deliveries, (messages * p.clients) as u64);
    drop(client);
    drop(server);
    Fanout {
        deliveries,
        secs: (end - start).as_secs_f64(),
        messages,
    }
}

fn describe(f: &Fanout) -> String {
    format!(
        "{} deliveries/s ({} messages x clients = {} in {:.2} s)",
        fmt_si(f.per_sec()),
        f.messages,
        f.deliveries,
        f.secs
    )
}

/// The `fanout` scenario.
pub fn run(opts: &Opts) -> Vec<Figure> {
    let p = Plan {
        clients: 1000,
        messages: opts.pick(1000, 300),
        cap: opts.pick(Duration::from_secs(3), Duration::from_secs(1)),
    };
    let mut sides = [
        Side::new("tablenet", || tablenet_fanout(p)),
        Side::new("raw", || raw_fanout(p)),
        Side::new("message_io", || message_io_fanout(p)),
    ];
    let r = alternate("fanout", opts, &mut sides, describe);
    let rates: Vec<Vec<f64>> = r
        .iter()
        .map(|v| v.iter().map(Fanout::per_sec).collect())
        .collect();
    let msgs: Vec<String> = sides
        .iter()
        .zip(&r)
        .map(|(s, v)| {
            let min = v.iter().map(|f| f.messages).min().unwrap_or(0);
            format!("{}>={min}", s.name)
        })
        .collect();
    let figures = vec![Figure::new(
        "fanout",
        "deliveries",
        "deliveries_per_s",
        Some(median(&rates[0])),
        Some(median(&rates[1])),
        Some(median(&rates[2])),
    )];
    let notes = vec![
        format!(
            "{} clients, up to {} broadcast tables per rep (the broadcaster stops after {:?}); {} reps each, alternating; deliveries counted at the clients",
            p.clients, p.messages, p.cap, opts.reps
        ),
        format!("tables broadcast per rep: {}", msgs.join(", ")),
        "raw: one reader thread per client (blocking std), one write_all per message per client; message-io: one node per side, no TCP_NODELAY".into(),
        reps_line("tablenet", &rates[0], "deliveries/s"),
        reps_line("raw", &rates[1], "deliveries/s"),
        reps_line("message_io", &rates[2], "deliveries/s"),
    ];
    report(
        "fanout: deliveries/s at the clients (higher is better; goal >= 10 x raw)",
        &notes,
        &figures,
    );
    figures
}
