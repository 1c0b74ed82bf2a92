//! `pingpong`: strict request/reply of the seed's table between one client
//! and one server; round-trip latency, unpinned and with the whole process
//! pinned to CPU 0. Sides: tablenet (IO thread and inline IO), raw TCP +
//! bincode, message-io, tokio (multi-thread and current-thread runtimes).

use std::io::BufReader;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use message_io::network::{NetEvent, Transport};
use message_io::node::{self, NodeEvent};
use tablenet::{EventKind, Source};
use tokio_util::codec::Framed;

use crate::common::*;
use crate::sides::*;
use crate::tokio_side::{self, Flavor};

/// One repetition: round-trip times in microseconds (warm-up excluded).
#[derive(Debug, Clone)]
pub struct Latencies {
    pub sorted_us: Vec<f64>,
}

impl Latencies {
    fn new(mut us: Vec<f64>) -> Latencies {
        us.sort_by(f64::total_cmp);
        Latencies { sorted_us: us }
    }

    pub fn median(&self) -> f64 {
        percentile(&self.sorted_us, 50.0)
    }

    pub fn p99(&self) -> f64 {
        percentile(&self.sorted_us, 99.0)
    }
}

#[derive(Clone, Copy)]
struct Plan {
    warmup: usize,
    trips: usize,
    cap: Duration,
}

/// tablenet: client application and server application each with their own
/// network; both wait with `wait_events`; the server replies with the table
/// it received. `inline_io`: each network is driven by its application's
/// thread (`Config::inline_io`) instead of an IO thread.
fn tablenet_pingpong(p: Plan, inline_io: bool) -> Latencies {
    let mut config = lossless_config();
    config.inline_io = inline_io;
    let server_net = tablenet::Network::with_config(config.clone()).expect("config");
    let client_net = tablenet::Network::with_config(config).expect("config");
    let server = server_net.server("127.0.0.1", 0, None).expect("server");
    let client = client_net
        .client("127.0.0.1", server.port(), None)
        .expect("client");

    // Started before connecting: with inline IO only it drives the server.
    let server_app = {
        let net = server_net.clone();
        thread::spawn(move || {
            let mut conns = Vec::new();
            loop {
                for event in net.wait_events(Duration::from_secs(10)) {
                    match event.kind {
                        EventKind::Connect { connection, .. } => conns.push(connection),
                        EventKind::Receive {
                            packet,
                            from: Source::Connection(id),
                        } => {
                            if is_end_value(&packet) {
                                return;
                            }
                            let conn = conns.iter().find(|c| c.id() == id).expect("known");
                            conn.send(&packet).expect("reply");
                        }
                        EventKind::ClientClose { .. } => return,
                        _ => {}
                    }
                }
            }
        })
    };

    client
        .wait_for_connect(Duration::from_secs(5))
        .expect("connect");
    let message = seed_value();
    let mut samples = Vec::with_capacity(p.trips);
    let start = Instant::now();
    for i in 0..p.warmup + p.trips {
        if i >= p.warmup && start.elapsed() > p.cap {
            break;
        }
        let t0 = Instant::now();
        client.send(&message).expect("send");
        'wait: loop {
            let events = client_net.wait_events(Duration::from_secs(5));
            assert!(!events.is_empty(), "tablenet reply timed out");
            for event in events {
                if let EventKind::Receive { packet, .. } = event.kind {
                    std::hint::black_box(&packet);
                    break 'wait;
                }
            }
        }
        if i >= p.warmup {
            samples.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    client.send(&end_value()).expect("end");
    server_app.join().expect("server app");
    drop(client);
    drop(server);
    client_net.shutdown(Duration::from_secs(2));
    server_net.shutdown(Duration::from_secs(2));
    Latencies::new(samples)
}

/// Raw TCP: blocking std streams with TCP_NODELAY, one thread per side,
/// each frame written with one `write_all`; the server decodes and re-encodes.
fn raw_pingpong(p: Plan) -> Latencies {
    let listener = raw_listener(1024);
    let addr = listener.local_addr().expect("addr");
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        let (mut buf, mut scratch) = (Vec::new(), Vec::new());
        while let Some(v) = read_frame(&mut reader, &mut buf).expect("read") {
            if v.is_end() {
                return;
            }
            write_frame(&mut writer, &v, &mut scratch).expect("write");
        }
    });
    let stream = raw_connect(addr);
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let message = seed_plain();
    let (mut buf, mut scratch) = (Vec::new(), Vec::new());
    let mut samples = Vec::with_capacity(p.trips);
    let start = Instant::now();
    for i in 0..p.warmup + p.trips {
        if i >= p.warmup && start.elapsed() > p.cap {
            break;
        }
        let t0 = Instant::now();
        write_frame(&mut writer, &message, &mut scratch).expect("write");
        let reply = read_frame(&mut reader, &mut buf)
            .expect("read")
            .expect("reply");
        std::hint::black_box(&reply);
        if i >= p.warmup {
            samples.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    write_frame(&mut writer, &end_plain(), &mut scratch).expect("end");
    server.join().expect("server");
    Latencies::new(samples)
}

/// message-io 0.19 FramedTcp as shipped (Nagle on: it has no TCP_NODELAY
/// option). Both applications are its event callbacks (its idiomatic and
/// fastest form); the client sends the next request from the callback.
fn message_io_pingpong(p: Plan) -> Latencies {
    let (server_handler, server_listener) = node::split::<()>();
    let (_, addr) = server_handler
        .network()
        .listen(Transport::FramedTcp, "127.0.0.1:0")
        .expect("listen");
    let replier = server_handler.clone();
    let mut scratch = Vec::new();
    let server_task = server_listener.for_each_async(move |event| {
        if let NodeEvent::Network(NetEvent::Message(endpoint, data)) = event {
            let v = decode_body(data);
            if !v.is_end() {
                encode_body(&v, &mut scratch);
                replier.network().send(endpoint, &scratch);
            }
        }
    });
    let _server = MioNode::new(server_handler, server_task);

    let (client_handler, client_listener) = node::split::<()>();
    let (endpoint, _) = client_handler
        .network()
        .connect(Transport::FramedTcp, addr)
        .expect("connect");
    let (done_tx, done_rx) = mpsc::channel();
    let sender = client_handler.clone();
    let mut request = Vec::new();
    encode_body(&seed_plain(), &mut request);
    let mut samples = Vec::with_capacity(p.trips);
    let (mut i, mut t0, mut start) = (0usize, Instant::now(), Instant::now());
    let client_task = client_listener.for_each_async(move |event| match event {
        NodeEvent::Network(NetEvent::Connected(_, ok)) => {
            assert!(ok, "message-io connect failed");
            start = Instant::now();
            t0 = Instant::now();
            sender.network().send(endpoint, &request);
        }
        NodeEvent::Network(NetEvent::Message(_, data)) => {
            std::hint::black_box(decode_body(data));
            if i >= p.warmup {
                samples.push(t0.elapsed().as_secs_f64() * 1e6);
            }
            i += 1;
            let done = i >= p.warmup + p.trips || (i >= p.warmup && start.elapsed() > p.cap);
            if done {
                let _ = done_tx.send(std::mem::take(&mut samples));
            } else {
                t0 = Instant::now();
                sender.network().send(endpoint, &request);
            }
        }
        _ => {}
    });
    let client = MioNode::new(client_handler, client_task);
    let samples = done_rx
        .recv_timeout(p.cap + Duration::from_secs(30))
        .expect("message-io ping-pong finished");
    let mut end = Vec::new();
    encode_body(&end_plain(), &mut end);
    client.send(endpoint, &end);
    Latencies::new(samples)
}

/// tokio: the client application and the server application each with its
/// own runtime of `flavor` (as two processes would have), each working in a
/// spawned task over a `Framed` (LengthDelimitedCodec) with TCP_NODELAY. The
/// server decodes every request into a `Plain`, re-encodes it and `feed`s
/// the reply, then `flush`es once no further request is already buffered;
/// the client sends one request (`send` = feed + flush) and awaits its reply.
fn tokio_pingpong(p: Plan, flavor: Flavor) -> Latencies {
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = tokio_side::app(flavor, "tokio-server", move || async move {
        let listener = tokio_side::listen();
        addr_tx
            .send(listener.local_addr().expect("addr"))
            .expect("harness waits for the address");
        let mut framed = Framed::new(tokio_side::accept(&listener).await, tokio_side::codec());
        let mut buf = BytesMut::new();
        while let Some(frame) = framed.next().await {
            let mut next = Some(frame);
            // Reply to every request already here, then flush once.
            while let Some(frame) = next.take() {
                let v = decode_body(&frame.expect("read"));
                if v.is_end() {
                    return;
                }
                framed
                    .feed(tokio_side::encode(&v, &mut buf))
                    .await
                    .expect("write");
                if !framed.read_buffer().is_empty() {
                    next = framed.next().now_or_never().flatten();
                }
            }
            SinkExt::<Bytes>::flush(&mut framed).await.expect("flush");
        }
        panic!("EOF before the end marker");
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("tokio server listening");
    let client = tokio_side::app(flavor, "tokio-client", move || async move {
        let mut framed = Framed::new(tokio_side::connect(addr).await, tokio_side::codec());
        let message = seed_plain();
        let mut buf = BytesMut::new();
        let mut samples = Vec::with_capacity(p.trips);
        let start = Instant::now();
        for i in 0..p.warmup + p.trips {
            if i >= p.warmup && start.elapsed() > p.cap {
                break;
            }
            let t0 = Instant::now();
            framed
                .send(tokio_side::encode(&message, &mut buf))
                .await
                .expect("write");
            let reply = framed.next().await.expect("reply").expect("read");
            std::hint::black_box(decode_body(&reply));
            if i >= p.warmup {
                samples.push(t0.elapsed().as_secs_f64() * 1e6);
            }
        }
        framed
            .send(tokio_side::encode(&end_plain(), &mut buf))
            .await
            .expect("end");
        samples
    });
    let samples = client.join().expect("tokio client");
    server.join().expect("tokio server");
    Latencies::new(samples)
}

fn describe(l: &Latencies) -> String {
    format!(
        "median {:.1} us, p99 {:.1} us ({} round trips)",
        l.median(),
        l.p99(),
        l.sorted_us.len()
    )
}

fn measure(opts: &Opts, label: &str) -> (Vec<Figure>, Vec<String>) {
    let fast = Plan {
        warmup: 200,
        trips: opts.pick(20_000, 3_000),
        cap: opts.pick(Duration::from_secs(5), Duration::from_secs(1)),
    };
    // message-io's 88 ms round trips (Nagle + two writes per frame) cannot
    // do 20,000 in the time budget: it runs for `cap` instead.
    let slow = Plan {
        warmup: 1,
        trips: 20_000,
        cap: opts.pick(Duration::from_millis(1500), Duration::from_millis(700)),
    };
    let scenario = format!("pingpong_{label}");
    let mut sides = [
        Side::new("tablenet", || tablenet_pingpong(fast, false)),
        Side::new("raw", || raw_pingpong(fast)),
        Side::new("message_io", || message_io_pingpong(slow)),
        Side::new("tablenet_inline", || tablenet_pingpong(fast, true)),
        Side::new("tokio", || tokio_pingpong(fast, Flavor::Multi)),
        Side::new("tokio_ct", || tokio_pingpong(fast, Flavor::Current)),
    ];
    let r = alternate(&scenario, opts, &mut sides, describe);
    let med: Vec<f64> = r
        .iter()
        .map(|v| median(&v.iter().map(Latencies::median).collect::<Vec<_>>()))
        .collect();
    let p99: Vec<f64> = r
        .iter()
        .map(|v| median(&v.iter().map(Latencies::p99).collect::<Vec<_>>()))
        .collect();
    let trips: Vec<usize> = r
        .iter()
        .map(|v| v.iter().map(|l| l.sorted_us.len()).min().unwrap_or(0))
        .collect();
    let stats = [("median", &med), ("p99", &p99)];
    let mut figures: Vec<Figure> = stats
        .iter()
        .map(|(stat, v)| {
            let name = format!("rtt_{stat}_{label}");
            Figure::new("pingpong", &name, "us", Some(v[0]), Some(v[1]), Some(v[2]))
                .with_tokio(Some(v[4]), Some(v[5]))
        })
        .collect();
    // The same with `Config::inline_io` (no IO thread hop); tablenet's
    // column holds that mode, raw's and tokio's are the same runs.
    figures.extend(stats.iter().map(|(stat, v)| {
        let name = format!("rtt_{stat}_{label}_inline_io");
        Figure::new("pingpong", &name, "us", Some(v[3]), Some(v[1]), None)
            .with_tokio(Some(v[4]), Some(v[5]))
    }));
    let notes = vec![
        format!(
            "{label}: round trips per rep: tablenet>={}, raw>={}, message_io>={}, tablenet_inline>={}, tokio>={}, tokio_ct>={} (message-io runs {:?} per rep instead of 20,000 trips: ~88 ms each as shipped)",
            trips[0], trips[1], trips[2], trips[3], trips[4], trips[5], slow.cap
        ),
        reps_line(
            &format!("tablenet {label}"),
            &r[0].iter().map(Latencies::median).collect::<Vec<_>>(),
            "median us",
        ),
        reps_line(
            &format!("tablenet inline_io {label}"),
            &r[3].iter().map(Latencies::median).collect::<Vec<_>>(),
            "median us",
        ),
        reps_line(
            &format!("raw {label}"),
            &r[1].iter().map(Latencies::median).collect::<Vec<_>>(),
            "median us",
        ),
        reps_line(
            &format!("tokio {label}"),
            &r[4].iter().map(Latencies::median).collect::<Vec<_>>(),
            "median us",
        ),
        reps_line(
            &format!("tokio_ct {label}"),
            &r[5].iter().map(Latencies::median).collect::<Vec<_>>(),
            "median us",
        ),
    ];
    (figures, notes)
}

/// The `pingpong` scenario: unpinned, then pinned to CPU 0.
pub fn run(opts: &Opts) -> Vec<Figure> {
    let (mut figures, mut notes) = measure(opts, "unpinned");
    let old = pin_process(0);
    let (f2, n2) = measure(opts, "pinned");
    restore_affinity(&old);
    figures.extend(f2);
    notes.extend(n2);
    notes.insert(
        0,
        format!(
            "strict request/reply of {{OpCode=10, Data=\"From server\"}}, 200 warm-up trips excluded; {} reps each, alternating; median over reps of each rep's median / p99",
            opts.reps
        ),
    );
    notes.insert(
        1,
        "pinned = every thread of the process on CPU 0 (sched_setaffinity; threads created later inherit it)".into(),
    );
    notes.insert(
        2,
        "tokio / tokio_ct: client and server each on its own runtime (multi-thread with the default worker count, which is 1 when pinned / current_thread), work in spawned tasks, Framed + LengthDelimitedCodec, TCP_NODELAY".into(),
    );
    report(
        "pingpong: round-trip microseconds (lower is better; goal median <= 2 x raw, aim 1.5 x)",
        &notes,
        &figures,
    );
    figures
}
