//! `stream`: one client sends the seed's table N times; the server application
//! decodes every one. msgs/s from the first send to the last receive.
//! Also `large`: the same with 64 KiB byte strings, plain and AES-256-GCM.
//! Sides: tablenet, raw TCP + bincode, message-io, tokio (multi-thread and
//! current-thread runtimes).

use std::io::{BufReader, BufWriter, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use message_io::network::{NetEvent, Transport};
use message_io::node::{self, NodeEvent};
use tablenet::{EventKind, Value};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::common::*;
use crate::sides::*;
use crate::tokio_side::{self, Flavor};

/// One repetition's outcome: messages delivered to the receiving
/// application and the time from the first send to the last receive.
#[derive(Debug, Clone, Copy)]
pub struct Transfer {
    pub msgs: u64,
    pub secs: f64,
}

impl Transfer {
    pub fn per_sec(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
}

/// What to send: tablenet's value, the baselines' value, and how many.
#[derive(Clone)]
pub struct Workload {
    pub value: Value,
    pub plain: Plain,
    pub count: u64,
    /// A repetition stops sending at this age (then reports what it did).
    pub cap: Duration,
}

/// tablenet: two networks (client application and server application, each
/// with its IO thread), lossless ring, server drains with `wait_events_into`
/// into one reused vector.
pub fn tablenet_stream(w: &Workload, key: Option<&str>) -> Transfer {
    let server_net = lossless_network();
    let client_net = lossless_network();
    let server = server_net.server("127.0.0.1", 0, key).expect("server");
    let client = client_net
        .client("127.0.0.1", server.port(), key)
        .expect("client");
    client
        .wait_for_connect(Duration::from_secs(5))
        .expect("connect");
    let mut conns = accept(&server_net, 1, Duration::from_secs(5));

    let (value, count, cap) = (w.value.clone(), w.count, w.cap);
    let sender = thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < count {
            if sent.is_multiple_of(1024) && start.elapsed() > cap {
                break;
            }
            send_lossless(&client_net, &value, |v| client.send(v));
            sent += 1;
        }
        send_lossless(&client_net, &end_value(), |v| client.send(v));
        (start, sent, client, client_net)
    });

    let mut received = 0u64;
    // One batch vector, reused: no allocation per batch for the batch itself.
    let mut events = Vec::new();
    let end = 'outer: loop {
        let n = server_net.wait_events_into(&mut events, Duration::from_secs(10));
        assert!(n > 0, "tablenet stream stalled");
        for event in events.drain(..) {
            match event.kind {
                EventKind::Receive { packet, .. } => {
                    if is_end_value(&packet) {
                        break 'outer Instant::now();
                    }
                    std::hint::black_box(&packet);
                    received += 1;
                }
                EventKind::Connect { connection, .. } => conns.push(connection),
                EventKind::ClientClose { reason, .. } => panic!("closed early: {reason}"),
                _ => {}
            }
        }
    };
    let (start, sent, client, client_net) = sender.join().expect("sender");
    assert_eq!(received, sent, "every table arrived");
    drop(client);
    drop(conns);
    client_net.shutdown(Duration::from_secs(2));
    server_net.shutdown(Duration::from_secs(2));
    Transfer {
        msgs: received,
        secs: (end - start).as_secs_f64(),
    }
}

/// tablenet with typed messages, as a Rust user sending their own struct
/// would: `send_serialized` writes the struct straight into the frame, and
/// the server (`Config::raw_messages`) decodes each `Message` straight into
/// an owned `Seed`, with no `Value` on either side. Otherwise as
/// [`tablenet_stream`] (the same table count and timing).
pub fn tablenet_typed_stream(w: &Workload) -> Transfer {
    let mut config = lossless_config();
    config.raw_messages = true;
    let server_net = tablenet::Network::with_config(config).expect("valid config");
    let client_net = lossless_network();
    let server = server_net.server("127.0.0.1", 0, None).expect("server");
    let client = client_net
        .client("127.0.0.1", server.port(), None)
        .expect("client");
    client
        .wait_for_connect(Duration::from_secs(5))
        .expect("connect");
    let mut conns = accept(&server_net, 1, Duration::from_secs(5));

    let (count, cap) = (w.count, w.cap);
    let sender = thread::spawn(move || {
        let send = |seed: &Seed| loop {
            match client.send_serialized(seed) {
                Ok(()) => return,
                Err(tablenet::SendError::QueueFull { .. }) => wait_drained(&client_net),
                Err(e) => panic!("send failed: {e}"),
            }
        };
        let seed = Seed::greeting();
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < count {
            if sent.is_multiple_of(1024) && start.elapsed() > cap {
                break;
            }
            send(&seed);
            sent += 1;
        }
        send(&Seed::end());
        (start, sent, client, client_net)
    });

    let mut received = 0u64;
    let mut events = Vec::new();
    let end = 'outer: loop {
        let n = server_net.wait_events_into(&mut events, Duration::from_secs(10));
        assert!(n > 0, "tablenet typed stream stalled");
        for event in events.drain(..) {
            match event.kind {
                EventKind::Message { message, .. } => {
                    let seed: Seed = message.decode().expect("a Seed");
                    if seed.is_end() {
                        break 'outer Instant::now();
                    }
                    std::hint::black_box(&seed);
                    received += 1;
                }
                EventKind::Connect { connection, .. } => conns.push(connection),
                EventKind::ClientClose { reason, .. } => panic!("closed early: {reason}"),
                _ => {}
            }
        }
    };
    let (start, sent, client, client_net) = sender.join().expect("sender");
    assert_eq!(received, sent, "every table arrived");
    drop(client);
    drop(conns);
    client_net.shutdown(Duration::from_secs(2));
    server_net.shutdown(Duration::from_secs(2));
    Transfer {
        msgs: received,
        secs: (end - start).as_secs_f64(),
    }
}

/// Raw TCP: blocking std streams, TCP_NODELAY, buffered writer and reader,
/// length-prefixed bincode frames; the receiver decodes every frame.
pub fn raw_stream(w: &Workload) -> Transfer {
    let listener = raw_listener(1024);
    let addr = listener.local_addr().expect("addr");
    let receiver = thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let mut buf = Vec::new();
        let mut received = 0u64;
        loop {
            let v = read_frame(&mut reader, &mut buf)
                .expect("read")
                .expect("end marker before EOF");
            if v.is_end() {
                return (Instant::now(), received);
            }
            std::hint::black_box(&v);
            received += 1;
        }
    });
    let stream = raw_connect(addr);
    let mut writer = BufWriter::with_capacity(64 * 1024, stream);
    let mut scratch = Vec::new();
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < w.count {
        if sent.is_multiple_of(1024) && start.elapsed() > w.cap {
            break;
        }
        write_frame(&mut writer, &w.plain, &mut scratch).expect("write");
        sent += 1;
    }
    write_frame(&mut writer, &end_plain(), &mut scratch).expect("write");
    writer.flush().expect("flush");
    let (end, received) = receiver.join().expect("receiver");
    assert_eq!(received, sent);
    Transfer {
        msgs: received,
        secs: (end - start).as_secs_f64(),
    }
}

/// message-io 0.19, FramedTcp, as shipped (no TCP_NODELAY: it offers no
/// option). The server application decodes in its event callback.
pub fn message_io_stream(w: &Workload) -> Transfer {
    let (server_handler, server_listener) = node::split::<()>();
    let (_, addr) = server_handler
        .network()
        .listen(Transport::FramedTcp, "127.0.0.1:0")
        .expect("listen");
    let (done_tx, done_rx) = mpsc::channel();
    let mut received = 0u64;
    let server_task = server_listener.for_each_async(move |event| {
        if let NodeEvent::Network(NetEvent::Message(_, data)) = event {
            let v = decode_body(data);
            if v.is_end() {
                let _ = done_tx.send((Instant::now(), received));
            } else {
                std::hint::black_box(&v);
                received += 1;
            }
        }
    });
    let _server = MioNode::new(server_handler, server_task);

    let (client_handler, client_listener) = node::split::<()>();
    let (endpoint, _) = client_handler
        .network()
        .connect(Transport::FramedTcp, addr)
        .expect("connect");
    let (conn_tx, conn_rx) = mpsc::channel();
    let client_task = client_listener.for_each_async(move |event| {
        if let NodeEvent::Network(NetEvent::Connected(_, ok)) = event {
            let _ = conn_tx.send(ok);
        }
    });
    let client = MioNode::new(client_handler, client_task);
    assert!(
        conn_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("Connected event"),
        "message-io connect failed"
    );

    let mut body = Vec::new();
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < w.count {
        if sent.is_multiple_of(1024) && start.elapsed() > w.cap {
            break;
        }
        encode_body(&w.plain, &mut body);
        client.send(endpoint, &body);
        sent += 1;
    }
    encode_body(&end_plain(), &mut body);
    client.send(endpoint, &body);
    let (end, received) = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("message-io end marker");
    assert_eq!(received, sent);
    Transfer {
        msgs: received,
        secs: (end - start).as_secs_f64(),
    }
}

/// tokio: a client application and a server application, each with its own
/// runtime of `flavor`. The client task encodes every table (bincode 2, as
/// raw) and `feed`s it to a `FramedWrite` (LengthDelimitedCodec, which
/// writes whenever 64 KiB are buffered, as raw's BufWriter), then one `flush`
/// after the end marker; the server task reads with a 64 KiB `FramedRead`
/// and decodes every frame into an owned `Plain`. TCP_NODELAY on both ends.
pub fn tokio_stream(w: &Workload, flavor: Flavor) -> Transfer {
    const BUFFER: usize = 64 * 1024;
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = tokio_side::app(flavor, "tokio-server", move || async move {
        let listener = tokio_side::listen();
        addr_tx
            .send(listener.local_addr().expect("addr"))
            .expect("harness waits for the address");
        let stream = tokio_side::accept(&listener).await;
        let mut reader = FramedRead::with_capacity(stream, tokio_side::codec(), BUFFER);
        let mut received = 0u64;
        while let Some(frame) = reader.next().await {
            let v = decode_body(&frame.expect("read"));
            if v.is_end() {
                return (Instant::now(), received);
            }
            std::hint::black_box(&v);
            received += 1;
        }
        panic!("EOF before the end marker");
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("tokio server listening");
    let (plain, count, cap) = (w.plain.clone(), w.count, w.cap);
    let client = tokio_side::app(flavor, "tokio-client", move || async move {
        let stream = tokio_side::connect(addr).await;
        let mut writer = FramedWrite::new(stream, tokio_side::codec());
        writer.set_backpressure_boundary(BUFFER);
        let mut buf = BytesMut::new();
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < count {
            if sent.is_multiple_of(1024) && start.elapsed() > cap {
                break;
            }
            let frame = tokio_side::encode(&plain, &mut buf);
            writer.feed(frame).await.expect("write");
            sent += 1;
        }
        let end = tokio_side::encode(&end_plain(), &mut buf);
        writer.feed(end).await.expect("write");
        SinkExt::<Bytes>::flush(&mut writer).await.expect("flush");
        (start, sent)
    });
    let (start, sent) = client.join().expect("tokio client");
    let (end, received) = server.join().expect("tokio server");
    assert_eq!(received, sent, "every table arrived");
    Transfer {
        msgs: received,
        secs: (end - start).as_secs_f64(),
    }
}

fn describe(t: &Transfer) -> String {
    format!(
        "{} msgs/s ({} msgs in {:.2} s)",
        fmt_si(t.per_sec()),
        t.msgs,
        t.secs
    )
}

/// The `stream` scenario.
pub fn run_stream(opts: &Opts) -> Vec<Figure> {
    let w = Workload {
        value: seed_value(),
        plain: seed_plain(),
        count: opts.pick(2_000_000, 300_000),
        cap: opts.pick(Duration::from_secs(6), Duration::from_secs(2)),
    };
    let mut sides = [
        Side::new("tablenet", || tablenet_stream(&w, None)),
        Side::new("raw", || raw_stream(&w)),
        Side::new("message_io", || message_io_stream(&w)),
        Side::new("tokio", || tokio_stream(&w, Flavor::Multi)),
        Side::new("tokio_ct", || tokio_stream(&w, Flavor::Current)),
        Side::new("tablenet_typed", || tablenet_typed_stream(&w)),
    ];
    let r = alternate("stream", opts, &mut sides, describe);
    let rates: Vec<Vec<f64>> = r
        .iter()
        .map(|v| v.iter().map(Transfer::per_sec).collect())
        .collect();
    let counts: Vec<String> = sides
        .iter()
        .zip(&r)
        .map(|(s, v)| {
            let min = v.iter().map(|t| t.msgs).min().unwrap_or(0);
            format!("{}>={min}", s.name)
        })
        .collect();
    let figures = vec![
        Figure::new(
            "stream",
            "throughput",
            "msgs_per_s",
            Some(median(&rates[0])),
            Some(median(&rates[1])),
            Some(median(&rates[2])),
        )
        .with_tokio(Some(median(&rates[3])), Some(median(&rates[4]))),
        // The same table as a Rust struct through the typed path; the
        // baselines repeated.
        Figure::new(
            "stream",
            "throughput_typed",
            "msgs_per_s",
            Some(median(&rates[5])),
            Some(median(&rates[1])),
            Some(median(&rates[2])),
        )
        .with_tokio(Some(median(&rates[3])), Some(median(&rates[4]))),
    ];
    let notes = vec![
        format!(
            "one client -> server, {} tables {{OpCode=10, Data=\"From server\"}} per rep (a rep stops sending after {:?}); {} reps each, alternating; medians",
            w.count, w.cap, opts.reps
        ),
        format!("tables delivered per rep: {}", counts.join(", ")),
        "tablenet: lossless ring, server drains with wait_events_into (one reused vector); raw: std TcpStream + TCP_NODELAY + BufWriter/BufReader + bincode; message-io: FramedTcp as shipped (no TCP_NODELAY option)".into(),
        "tokio / tokio_ct: client and server each on its own runtime (multi-thread default workers / current_thread), spawned tasks, LengthDelimitedCodec, feed + one flush, 64 KiB buffers, TCP_NODELAY".into(),
        reps_line("tablenet", &rates[0], "msgs/s"),
        reps_line("raw", &rates[1], "msgs/s"),
        reps_line("message_io", &rates[2], "msgs/s"),
        reps_line("tokio", &rates[3], "msgs/s"),
        reps_line("tokio_ct", &rates[4], "msgs/s"),
        "tablenet_typed: the same table as a Rust struct, send_serialized and Config::raw_messages + Message::decode into an owned struct (throughput_typed)".into(),
        reps_line("tablenet_typed", &rates[5], "msgs/s"),
    ];
    report(
        "stream: msgs/s, first send to last receive (higher is better; goal >= 0.5 x raw, >= 4 x message-io)",
        &notes,
        &figures,
    );
    figures
}

/// Payload MB/s of a transfer of 64 KiB tables.
fn mb_per_s(t: &Transfer, payload: usize) -> f64 {
    t.msgs as f64 * payload as f64 / t.secs / 1e6
}

/// The `large` scenario: 64 KiB byte strings, plain and AES-256-GCM.
pub fn run_large(opts: &Opts) -> Vec<Figure> {
    const PAYLOAD: usize = 64 * 1024;
    let w = Workload {
        value: blob_value(PAYLOAD),
        plain: blob_plain(PAYLOAD),
        count: opts.pick(20_000, 4_000),
        cap: opts.pick(Duration::from_secs(5), Duration::from_secs(2)),
    };
    let mut sides = [
        Side::new("tablenet", || tablenet_stream(&w, None)),
        Side::new("tablenet_aes", || tablenet_stream(&w, Some(AES256_KEY))),
        Side::new("raw", || raw_stream(&w)),
        Side::new("message_io", || message_io_stream(&w)),
        Side::new("tokio", || tokio_stream(&w, Flavor::Multi)),
        Side::new("tokio_ct", || tokio_stream(&w, Flavor::Current)),
    ];
    let describe = |t: &Transfer| {
        format!(
            "{:.0} MB/s ({} tables in {:.2} s)",
            mb_per_s(t, PAYLOAD),
            t.msgs,
            t.secs
        )
    };
    let r = alternate("large", opts, &mut sides, describe);
    let mbs: Vec<Vec<f64>> = r
        .iter()
        .map(|v| v.iter().map(|t| mb_per_s(t, PAYLOAD)).collect())
        .collect();
    let m: Vec<f64> = mbs.iter().map(|v| median(v)).collect();
    let counts: Vec<String> = sides
        .iter()
        .zip(&r)
        .map(|(s, v)| {
            let min = v.iter().map(|t| t.msgs).min().unwrap_or(0);
            format!("{}>={min}", s.name)
        })
        .collect();
    let figures = vec![
        Figure::new(
            "large",
            "throughput_64k_plain",
            "MB_per_s",
            Some(m[0]),
            Some(m[2]),
            Some(m[3]),
        )
        .with_tokio(Some(m[4]), Some(m[5])),
        // The baselines have no encryption: they do not apply here.
        Figure::new(
            "large",
            "throughput_64k_aes256gcm",
            "MB_per_s",
            Some(m[1]),
            None,
            None,
        ),
        Figure::new(
            "large",
            "aes256gcm_over_plain",
            "ratio",
            ratio(Some(m[1]), Some(m[0])),
            None,
            None,
        ),
    ];
    let notes = vec![
        format!(
            "one client -> server, {} tables {{Blob=<64 KiB byte string>}} per rep (stops after {:?}); {} reps each, alternating; MB/s of Blob payload",
            w.count, w.cap, opts.reps
        ),
        format!("tables delivered per rep: {}", counts.join(", ")),
        "baselines are unencrypted, so they print '-' on the AES-256-GCM line; aes256gcm_over_plain = tablenet AES / tablenet plain (goal >= 0.5)".into(),
        reps_line("tablenet", &mbs[0], "MB/s"),
        reps_line("tablenet_aes", &mbs[1], "MB/s"),
        reps_line("raw", &mbs[2], "MB/s"),
        reps_line("message_io", &mbs[3], "MB/s"),
        reps_line("tokio", &mbs[4], "MB/s"),
        reps_line("tokio_ct", &mbs[5], "MB/s"),
    ];
    report(
        "large: MB/s of 64 KiB tables (higher is better; goal plain >= 0.5 x raw, AES-256-GCM >= 0.5 x plain)",
        &notes,
        &figures,
    );
    figures
}

/// The payload sizes of `sizes`: 64 B to 1 MiB, and their labels (the
/// suffix of the metric names, which the chart reads back as the x value).
pub const SIZES: [(usize, &str); 6] = [
    (64, "64B"),
    (1024, "1KiB"),
    (16 * 1024, "16KiB"),
    (64 * 1024, "64KiB"),
    (256 * 1024, "256KiB"),
    (1024 * 1024, "1MiB"),
];

/// The `sizes` sweep: `large`'s one-way stream of `{Blob=<bytes>}` at each
/// of [`SIZES`], for tablenet, raw and tokio (multi-thread). Each size is
/// its own alternating run; a repetition sends at most a fixed byte budget
/// and stops after about a second, so every point costs about the same.
pub fn run_sizes(opts: &Opts) -> Vec<Figure> {
    let load_before = load_average();
    let budget: usize = opts.pick(1_000_000_000, 300_000_000);
    let cap = opts.pick(Duration::from_secs(1), Duration::from_millis(400));
    let mut figures = Vec::new();
    let mut notes = vec![
        format!(
            "one client -> server, tables {{Blob=<N-byte string>}}, at most {budget} bytes of Blob per rep and sending stops after {cap:?}; {} reps each per size, alternating; MB/s of Blob payload (1 MB = 10^6 bytes) and tables/s",
            opts.reps
        ),
        "the sides are large's: tablenet (lossless ring, default Config: 16 MiB frames), raw (BufWriter/BufReader 64 KiB), tokio multi-thread (FramedWrite/FramedRead 64 KiB)".into(),
    ];
    for (size, label) in SIZES {
        let w = Workload {
            value: blob_value(size),
            plain: blob_plain(size),
            count: (budget / size).max(200) as u64,
            cap,
        };
        let mut sides = [
            Side::new("tablenet", || tablenet_stream(&w, None)),
            Side::new("raw", || raw_stream(&w)),
            Side::new("tokio", || tokio_stream(&w, Flavor::Multi)),
        ];
        let describe = |t: &Transfer| {
            format!(
                "{:.0} MB/s, {} tables/s ({} tables in {:.2} s)",
                mb_per_s(t, size),
                fmt_si(t.per_sec()),
                t.msgs,
                t.secs
            )
        };
        let r = alternate(&format!("sizes {label}"), opts, &mut sides, describe);
        let mbs: Vec<Vec<f64>> = r
            .iter()
            .map(|v| v.iter().map(|t| mb_per_s(t, size)).collect())
            .collect();
        let rates: Vec<Vec<f64>> = r
            .iter()
            .map(|v| v.iter().map(Transfer::per_sec).collect())
            .collect();
        let m = |v: &[f64]| Some(median(v)).filter(|x| x.is_finite());
        // Sides in order: tablenet, raw, tokio.
        for (metric, unit, v) in [
            ("mb_per_s", "MB_per_s", &mbs),
            ("msgs_per_s", "msgs_per_s", &rates),
        ] {
            figures.push(
                Figure::new(
                    "sizes",
                    &format!("{metric}_{label}"),
                    unit,
                    m(&v[0]),
                    m(&v[1]),
                    None,
                )
                .with_tokio(m(&v[2]), None),
            );
        }
        let min = |v: &[Transfer]| v.iter().map(|t| t.msgs).min().unwrap_or(0);
        notes.push(format!(
            "{label}: tables per rep tablenet>={} raw>={} tokio>={}",
            min(&r[0]),
            min(&r[1]),
            min(&r[2])
        ));
        for (i, name) in ["tablenet", "raw", "tokio"].iter().enumerate() {
            notes.push(reps_line(&format!("{name} {label}"), &mbs[i], "MB/s"));
        }
    }
    notes.push(format!(
        "load average (1, 5, 15 min) before: {load_before}; after: {}",
        load_average()
    ));
    report(
        "sizes: one-way MB/s and tables/s against the payload size (higher is better)",
        &notes,
        &figures,
    );
    figures
}
