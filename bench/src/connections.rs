//! `connections`: 10,000 concurrent connections to one server. Time until the
//! server application has seen every connection, the server process's
//! resident memory per idle connection, and the threads it added.
//!
//! Each repetition runs in fresh processes, so no allocator reuse from an
//! earlier repetition hides memory: this binary re-executes itself as
//! `__conn-server SIDE N WAVE`, which re-executes itself as
//! `__conn-clients SIDE PORT N` (the fd limit of 20,000 cannot hold both ends
//! of 10,000 connections in one process). The server paces the clients in
//! waves through the client's stdin ("go K": connect until K in total),
//! keeping fewer than `WAVE * 1.5` connections unaccepted, below every
//! side's listen backlog (1024: tablenet's default, mio's fixed value, and
//! the raw listener's).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use message_io::network::{NetEvent, Transport};
use message_io::node::{self, NodeEvent};
use tablenet::{EventKind, Network};

use crate::common::*;
use crate::sides::*;

const SIDES: [&str; 4] = ["tablenet", "tablenet_aes", "raw", "message_io"];

/// What one server process reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnRep {
    pub setup_ms: f64,
    rss_before_kib: f64,
    rss_after_kib: f64,
    threads_before: f64,
    threads_after: f64,
    n: f64,
}

impl ConnRep {
    /// One repetition as the scenarios print it.
    pub fn describe(&self) -> String {
        format!(
            "setup {:.0} ms, {:.2} KiB/conn, threads +{}",
            self.setup_ms,
            self.kib_per_conn(),
            self.threads_added()
        )
    }

    pub fn kib_per_conn(&self) -> f64 {
        (self.rss_after_kib - self.rss_before_kib) / self.n
    }

    pub fn threads_added(&self) -> f64 {
        self.threads_after - self.threads_before
    }

    fn line(&self) -> String {
        format!(
            "CONN setup_ms={} rss_before_kib={} rss_after_kib={} threads_before={} threads_after={} n={}",
            self.setup_ms,
            self.rss_before_kib,
            self.rss_after_kib,
            self.threads_before,
            self.threads_after,
            self.n
        )
    }

    fn parse(line: &str) -> Option<ConnRep> {
        let rest = line.strip_prefix("CONN ")?;
        let mut r = ConnRep::default();
        for field in rest.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            let v: f64 = v.parse().ok()?;
            match k {
                "setup_ms" => r.setup_ms = v,
                "rss_before_kib" => r.rss_before_kib = v,
                "rss_after_kib" => r.rss_after_kib = v,
                "threads_before" => r.threads_before = v,
                "threads_after" => r.threads_after = v,
                "n" => r.n = v,
                _ => {}
            }
        }
        Some(r)
    }
}

/// One repetition in fresh processes: `n` connections of `side`, the
/// clients asked for in waves of `wave`.
pub fn one_rep(side: &str, n: usize, wave: usize) -> ConnRep {
    let exe = std::env::current_exe().expect("own path");
    let out = Command::new(exe)
        .args(["__conn-server", side, &n.to_string(), &wave.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the server process");
    assert!(out.status.success(), "{side} server process failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(ConnRep::parse)
        .expect("CONN line from the server process")
}

/// The `connections` scenario.
pub fn run(opts: &Opts) -> Vec<Figure> {
    let n = opts.pick(10_000, 10_000);
    let wave = 600;
    let mut sides: Vec<Side<'_, ConnRep>> = SIDES
        .iter()
        .map(|&s| Side::new(s, move || one_rep(s, n, wave)))
        .collect();
    let r = alternate("connections", opts, &mut sides, ConnRep::describe);
    let med = |i: usize, f: fn(&ConnRep) -> f64| median(&r[i].iter().map(f).collect::<Vec<_>>());
    let setup = |i| med(i, |c| c.setup_ms);
    let kib = |i| med(i, ConnRep::kib_per_conn);
    let max_threads = |i: usize| {
        r[i].iter()
            .map(ConnRep::threads_added)
            .reduce(f64::max)
            .unwrap_or(f64::NAN)
    };
    let figures = vec![
        Figure::new(
            "connections",
            "setup_plain",
            "ms",
            Some(setup(0)),
            Some(setup(2)),
            Some(setup(3)),
        ),
        Figure::new(
            "connections",
            "setup_aes256gcm",
            "ms",
            Some(setup(1)),
            None,
            None,
        ),
        Figure::new(
            "connections",
            "rss_per_conn_plain",
            "KiB",
            Some(kib(0)),
            Some(kib(2)),
            Some(kib(3)),
        ),
        Figure::new(
            "connections",
            "rss_per_conn_aes256gcm",
            "KiB",
            Some(kib(1)),
            None,
            None,
        ),
        Figure::new(
            "connections",
            "threads_added",
            "threads",
            Some(max_threads(0).max(max_threads(1))),
            Some(max_threads(2)),
            Some(max_threads(3)),
        ),
    ];
    let notes = vec![
        format!(
            "{n} connections per rep, clients in a child process connecting in waves of {wave}; fresh server and client processes per rep; {} reps each, alternating",
            opts.reps
        ),
        "setup: from the first 'go' to the server application holding every connection (tablenet: Connect events, after the preamble/handshake; raw: accept() returned; message-io: Accepted events)".into(),
        "rss: server VmRSS after minus before, divided by the connections (kernel socket buffers are not in RSS); threads_added: most over reps (tablenet: plain and AES)".into(),
        "baselines are unencrypted, so they print '-' on the AES-256-GCM lines; raw keeps accepted TcpStreams in a Vec (one accepting thread, no thread per connection)".into(),
        reps_line(
            "tablenet",
            &r[0].iter().map(|c| c.setup_ms).collect::<Vec<_>>(),
            "setup ms",
        ),
        reps_line(
            "tablenet_aes",
            &r[1].iter().map(|c| c.setup_ms).collect::<Vec<_>>(),
            "setup ms",
        ),
        reps_line(
            "raw",
            &r[2].iter().map(|c| c.setup_ms).collect::<Vec<_>>(),
            "setup ms",
        ),
        reps_line(
            "message_io",
            &r[3].iter().map(|c| c.setup_ms).collect::<Vec<_>>(),
            "setup ms",
        ),
    ];
    report(
        "connections: 10,000 idle connections (lower is better; goal setup <= 2 x raw, <= 4 KiB/conn plain, <= 8 KiB/conn AES-256-GCM, threads unchanged)",
        &notes,
        &figures,
    );
    figures
}

// ---------------------------------------------------------------------------
// The server process.

/// A side's name and its IO threads: `tablenet@4` is the `tablenet` side
/// with `Config::io_threads = 4` in both processes (default 1).
fn side_threads(side: &str) -> (&str, usize) {
    match side.split_once('@') {
        Some((name, n)) => (name, n.parse().expect("IO threads after @")),
        None => (side, 1),
    }
}

/// Entry point of `__conn-server SIDE N WAVE`.
pub fn server_main(args: &[String]) {
    let full = args.first().expect("side").as_str();
    let (side, io_threads) = side_threads(full);
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).expect("N");
    let wave: usize = args.get(2).and_then(|s| s.parse().ok()).expect("WAVE");
    match side {
        "tablenet" | "tablenet_aes" => {
            let key = (side == "tablenet_aes").then_some(AES256_KEY);
            let mut config = lossless_config();
            config.io_threads = io_threads;
            let net = Network::with_config(config).expect("valid config");
            let server = net.server("127.0.0.1", 0, key).expect("server");
            let mut conns = Vec::with_capacity(n);
            serve(full, server.port(), n, wave, || {
                let before = conns.len();
                for event in net.wait_events(Duration::from_secs(10)) {
                    match event.kind {
                        EventKind::Connect { connection, .. } => conns.push(connection),
                        EventKind::Error { error, .. } => panic!("server error: {error}"),
                        _ => {}
                    }
                }
                conns.len() - before
            });
        }
        "raw" => {
            let listener = raw_listener(1024);
            let port = listener.local_addr().expect("addr").port();
            let mut streams = Vec::with_capacity(n);
            serve(side, port, n, wave, || {
                let (s, _) = listener.accept().expect("accept");
                streams.push(s);
                1
            });
        }
        "message_io" => {
            let (handler, listener) = node::split::<()>();
            let (_, addr) = handler
                .network()
                .listen(Transport::FramedTcp, "127.0.0.1:0")
                .expect("listen");
            let (tx, rx) = mpsc::channel();
            let task = listener.for_each_async(move |event| {
                if let NodeEvent::Network(NetEvent::Accepted(endpoint, _)) = event {
                    let _ = tx.send(endpoint);
                }
            });
            let _node = MioNode::new(handler, task);
            let mut endpoints = Vec::with_capacity(n);
            serve(side, addr.port(), n, wave, || {
                let first = rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("message-io accept");
                endpoints.push(first);
                1 + rx.try_iter().map(|e| endpoints.push(e)).count()
            });
        }
        other => panic!("unknown side {other}"),
    }
}

/// Starts the clients, paces them, measures; prints the CONN line and exits
/// the process (no teardown of 10,000 connections to wait for).
fn serve(side: &str, port: u16, n: usize, wave: usize, mut accept_some: impl FnMut() -> usize) {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["__conn-clients", side, &port.to_string(), &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the clients process");
    let mut to_child = child.stdin.take().expect("stdin");
    let mut from_child = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    from_child.read_line(&mut line).expect("ready line");
    assert_eq!(line.trim(), "ready", "clients process did not start");

    std::thread::sleep(Duration::from_millis(50));
    let (rss_before, threads_before) = rss_and_threads();
    let start = Instant::now();
    let mut requested = wave.min(n);
    writeln!(to_child, "go {requested}").expect("go");
    let mut accepted = 0;
    while accepted < n {
        accepted += accept_some();
        if requested < n && accepted + wave / 2 >= requested {
            requested = (requested + wave).min(n);
            writeln!(to_child, "go {requested}").expect("go");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{side}: only {accepted} of {n} connections in 60 s"
        );
    }
    let setup = start.elapsed();
    // Let the IO threads finish whatever follows a connection's setup.
    std::thread::sleep(Duration::from_millis(200));
    let (rss_after, threads_after) = rss_and_threads();
    let rep = ConnRep {
        setup_ms: setup.as_secs_f64() * 1e3,
        rss_before_kib: rss_before as f64,
        rss_after_kib: rss_after as f64,
        threads_before: threads_before as f64,
        threads_after: threads_after as f64,
        n: n as f64,
    };
    println!("{}", rep.line());
    std::io::stdout().flush().expect("flush");
    drop(to_child); // EOF: the clients process exits
    let _ = child.wait();
    std::process::exit(0);
}

// ---------------------------------------------------------------------------
// The clients process.

/// Grows this process's descriptor table to `n` slots while it has one
/// thread. Linux doubles the table as descriptors are opened (64, 128, ..
/// 16,384), and in a process with several threads each doubling waits for an
/// RCU grace period (`synchronize_rcu` in `expand_fdtable`, about 10 ms each
/// on the 2-vCPU VM). The clients process is only a load generator: raw's
/// single-threaded clients never paid those stalls, while tablenet's and
/// message-io's threaded ones paid six or more per repetition, which the
/// server then waited out.
fn reserve_descriptors(n: usize) {
    let min = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
    // SAFETY: duplicates stderr onto the lowest free descriptor >= `min`
    // (growing the table to cover it) and closes the duplicate at once.
    unsafe {
        let fd = libc::fcntl(2, libc::F_DUPFD_CLOEXEC, min);
        if fd >= 0 {
            libc::close(fd);
        }
    }
}

/// Entry point of `__conn-clients SIDE PORT N`.
pub fn clients_main(args: &[String]) {
    let (side, io_threads) = side_threads(args.first().expect("side"));
    let port: u16 = args.get(1).and_then(|s| s.parse().ok()).expect("PORT");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).expect("N");
    // Before any thread exists (see reserve_descriptors); a few spare slots
    // for stdio and the poller.
    reserve_descriptors(n + 64);
    let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut connect: Box<dyn FnMut()> = match side {
        "tablenet" | "tablenet_aes" => {
            let key = (side == "tablenet_aes").then_some(AES256_KEY);
            let mut config = tablenet::Config::default();
            config.io_threads = io_threads;
            let net = Network::with_config(config).expect("valid config");
            // Drain (and drop) the client-side events.
            let drain = net.clone();
            std::thread::spawn(move || {
                loop {
                    drop(drain.wait_events(Duration::from_secs(1)));
                }
            });
            let mut clients = Vec::new();
            Box::new(move || clients.push(net.client("127.0.0.1", port, key).expect("client")))
        }
        "raw" => {
            let mut streams = Vec::new();
            Box::new(move || streams.push(raw_connect(addr)))
        }
        "message_io" => {
            let (handler, listener) = node::split::<()>();
            let task = listener.for_each_async(|_| {});
            let node = MioNode::new(handler, task);
            Box::new(move || {
                node.handler
                    .network()
                    .connect(Transport::FramedTcp, addr)
                    .expect("connect");
            })
        }
        other => panic!("unknown side {other}"),
    };
    println!("ready");
    std::io::stdout().flush().expect("flush");
    let mut made = 0usize;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Some(k) = line
            .strip_prefix("go ")
            .and_then(|k| k.parse::<usize>().ok())
        else {
            break;
        };
        while made < k {
            connect();
            made += 1;
        }
    }
    std::process::exit(0);
}
