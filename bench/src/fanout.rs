//! `fanout`: a server broadcasts the seed's table to 1,000 connected
//! clients; deliveries per second counted at the clients (from the first
//! broadcast to the last client receiving the end marker). Sides: tablenet,
//! raw TCP + bincode, message-io, tokio (multi-thread and current-thread).

use std::io::BufReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use message_io::network::{Endpoint, NetEvent, Transport};
use message_io::node::{self, NodeEvent};
use tablenet::{EventKind, Source};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::common::*;
use crate::sides::*;
use crate::tokio_side::{self, Flavor};

#[derive(Clone, Copy)]
pub struct Plan {
    pub clients: usize,
    pub messages: usize,
    /// The broadcaster stops after this long (then sends the end marker).
    pub cap: Duration,
}

/// Deliveries counted at the clients, and the time from the first broadcast
/// to the last end marker.
#[derive(Debug, Clone, Copy)]
pub struct Fanout {
    pub deliveries: u64,
    pub secs: f64,
    pub messages: usize,
}

impl Fanout {
    pub fn per_sec(&self) -> f64 {
        self.deliveries as f64 / self.secs
    }
}

/// tablenet: one server network, one client network holding all clients
/// (one IO thread each); `Server::broadcast` encodes once per message; the
/// client application counts `Receive` events. `typed`: the same table as a
/// Rust struct, `broadcast_serialized` and `Config::raw_messages` with each
/// `Message` decoded into an owned [`Seed`].
pub fn tablenet_fanout(p: Plan, typed: bool) -> Fanout {
    tablenet_fanout_on(p, typed, 1)
}

/// [`tablenet_fanout`] with `io_threads` IO threads in each network (the
/// server's connections and the clients spread over them).
pub fn tablenet_fanout_on(p: Plan, typed: bool, io_threads: usize) -> Fanout {
    let mut server_config = lossless_config();
    server_config.io_threads = io_threads;
    let server_net = tablenet::Network::with_config(server_config).expect("valid config");
    let mut client_config = lossless_config();
    client_config.raw_messages = typed;
    client_config.io_threads = io_threads;
    let client_net = tablenet::Network::with_config(client_config).expect("valid config");
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
                    let end = match event.kind {
                        EventKind::Receive {
                            packet,
                            from: Source::Client(_),
                        } => {
                            let end = is_end_value(&packet);
                            std::hint::black_box(&packet);
                            end
                        }
                        EventKind::Message {
                            message,
                            from: Source::Client(_),
                        } => {
                            let seed: Seed = message.decode().expect("a Seed");
                            std::hint::black_box(&seed);
                            seed.is_end()
                        }
                        _ => continue,
                    };
                    if end {
                        ends += 1;
                        if ends == n {
                            return (Instant::now(), deliveries);
                        }
                    } else {
                        deliveries += 1;
                    }
                }
            }
        })
    };

    let (message, seed) = (seed_value(), Seed::greeting());
    let start = Instant::now();
    let mut messages = 0;
    while messages < p.messages && start.elapsed() < p.cap {
        let accepted = if typed {
            server.broadcast_serialized(&seed)
        } else {
            server.broadcast(&message)
        };
        assert_eq!(accepted, p.clients, "broadcast refused");
        messages += 1;
    }
    let ended = if typed {
        server.broadcast_serialized(&Seed::end())
    } else {
        server.broadcast(&end_value())
    };
    assert_eq!(ended, p.clients);
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
pub fn raw_fanout(p: Plan) -> Fanout {
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

/// Frames a tokio writer task may have queued before the broadcaster waits
/// for it (a bounded queue: nothing is dropped, a slow client slows the
/// broadcast).
const TOKIO_QUEUE: usize = 256;

/// tokio: a server application and a client application, each with its own
/// runtime of `flavor`. The server accepts every client and spawns one
/// writer task per connection, fed by a bounded mpsc of `Bytes`; the
/// broadcaster task encodes each table once and sends the shared frame to
/// every queue (waiting when one is full: lossless). A writer takes what is
/// queued (`recv_many`), `feed`s it to its `FramedWrite` and flushes once.
/// The client application has one spawned task per connection that decodes
/// and counts every frame until the end marker.
pub fn tokio_fanout(p: Plan, flavor: Flavor) -> Fanout {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (accepted_tx, accepted_rx) = mpsc::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let n = p.clients;
    let server = tokio_side::app(flavor, "tokio-server", move || async move {
        let listener = tokio_side::listen();
        addr_tx
            .send(listener.local_addr().expect("addr"))
            .expect("harness waits for the address");
        let mut queues = Vec::with_capacity(n);
        let mut writers = Vec::with_capacity(n);
        for _ in 0..n {
            let stream = tokio_side::accept(&listener).await;
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(TOKIO_QUEUE);
            writers.push(tokio::spawn(tokio_writer(stream, rx)));
            queues.push(tx);
        }
        accepted_tx.send(()).expect("harness waits for the accepts");
        go_rx.await.expect("go");

        let message = seed_plain();
        let mut buf = BytesMut::new();
        let start = Instant::now();
        let mut messages = 0;
        while messages < p.messages && start.elapsed() < p.cap {
            let frame = tokio_side::encode(&message, &mut buf);
            for q in &queues {
                enqueue(q, frame.clone()).await;
            }
            messages += 1;
        }
        let end = tokio_side::encode(&end_plain(), &mut buf);
        for q in &queues {
            enqueue(q, end.clone()).await;
        }
        drop(queues);
        // Writers end once their queue is closed and written out.
        for w in writers {
            w.await.expect("writer");
        }
        (start, messages)
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("tokio server listening");
    let clients = tokio_side::app(flavor, "tokio-clients", move || async move {
        let readers: Vec<_> = (0..n)
            .map(|_| {
                tokio::spawn(async move {
                    let stream = tokio_side::connect(addr).await;
                    let mut reader = FramedRead::new(stream, tokio_side::codec());
                    let mut count = 0u64;
                    while let Some(frame) = reader.next().await {
                        let v = decode_body(&frame.expect("read"));
                        if v.is_end() {
                            return (Instant::now(), count);
                        }
                        std::hint::black_box(&v);
                        count += 1;
                    }
                    panic!("EOF before the end marker");
                })
            })
            .collect();
        let mut last = None;
        let mut deliveries = 0u64;
        for r in readers {
            let (end, count) = r.await.expect("reader");
            last = last.max(Some(end));
            deliveries += count;
        }
        (last.expect("clients"), deliveries)
    });
    accepted_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("tokio server accepted every client");
    go_tx.send(()).expect("server waits for go");
    let (start, messages) = server.join().expect("tokio server");
    let (end, deliveries) = clients.join().expect("tokio clients");
    assert_eq!(deliveries, (messages * p.clients) as u64);
    Fanout {
        deliveries,
        secs: (end - start).as_secs_f64(),
        messages,
    }
}

/// Queues a frame for one writer: `try_send` while there is room (it takes
/// no share of the task's cooperative budget, so the broadcaster does not
/// yield after every 128 queues and hand each writer a single frame to
/// write), and waits with `send` when the queue is full (lossless).
async fn enqueue(q: &tokio::sync::mpsc::Sender<Bytes>, frame: Bytes) {
    use tokio::sync::mpsc::error::TrySendError;
    match q.try_send(frame) {
        Ok(()) => {}
        Err(TrySendError::Full(frame)) => q.send(frame).await.expect("writer alive"),
        Err(TrySendError::Closed(_)) => panic!("writer gone"),
    }
}

/// One connection's writer: everything queued goes out with `feed`, then one
/// `flush`; ends when the broadcaster closes the queue.
async fn tokio_writer(stream: tokio::net::TcpStream, mut rx: tokio::sync::mpsc::Receiver<Bytes>) {
    let mut out = FramedWrite::new(stream, tokio_side::codec());
    let mut batch = Vec::with_capacity(TOKIO_QUEUE);
    while rx.recv_many(&mut batch, TOKIO_QUEUE).await > 0 {
        for frame in batch.drain(..) {
            out.feed(frame).await.expect("write");
        }
        SinkExt::<Bytes>::flush(&mut out).await.expect("flush");
    }
}

pub fn describe(f: &Fanout) -> String {
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
        Side::new("tablenet", || tablenet_fanout(p, false)),
        Side::new("raw", || raw_fanout(p)),
        Side::new("message_io", || message_io_fanout(p)),
        Side::new("tokio", || tokio_fanout(p, Flavor::Multi)),
        Side::new("tokio_ct", || tokio_fanout(p, Flavor::Current)),
        Side::new("tablenet_typed", || tablenet_fanout(p, true)),
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
    let figures = vec![
        Figure::new(
            "fanout",
            "deliveries",
            "deliveries_per_s",
            Some(median(&rates[0])),
            Some(median(&rates[1])),
            Some(median(&rates[2])),
        )
        .with_tokio(Some(median(&rates[3])), Some(median(&rates[4]))),
        // The same table as a Rust struct through the typed path; the
        // baselines repeated.
        Figure::new(
            "fanout",
            "deliveries_typed",
            "deliveries_per_s",
            Some(median(&rates[5])),
            Some(median(&rates[1])),
            Some(median(&rates[2])),
        )
        .with_tokio(Some(median(&rates[3])), Some(median(&rates[4]))),
    ];
    let notes = vec![
        format!(
            "{} clients, up to {} broadcast tables per rep (the broadcaster stops after {:?}); {} reps each, alternating; deliveries counted at the clients",
            p.clients, p.messages, p.cap, opts.reps
        ),
        format!("tables broadcast per rep: {}", msgs.join(", ")),
        "raw: one reader thread per client (blocking std), one write_all per message per client; message-io: one node per side, no TCP_NODELAY".into(),
        format!("tokio / tokio_ct: server and clients each on its own runtime (multi-thread default workers / current_thread); one writer task per connection fed by a bounded mpsc ({TOKIO_QUEUE} frames), recv_many + feed + one flush; one reader task per client"),
        reps_line("tablenet", &rates[0], "deliveries/s"),
        reps_line("raw", &rates[1], "deliveries/s"),
        reps_line("message_io", &rates[2], "deliveries/s"),
        reps_line("tokio", &rates[3], "deliveries/s"),
        reps_line("tokio_ct", &rates[4], "deliveries/s"),
        "tablenet_typed: the same table as a Rust struct, broadcast_serialized and Config::raw_messages + Message::decode into an owned struct (deliveries_typed)".into(),
        reps_line("tablenet_typed", &rates[5], "deliveries/s"),
    ];
    report(
        "fanout: deliveries/s at the clients (higher is better; goal >= 10 x raw)",
        &notes,
        &figures,
    );
    figures
}
