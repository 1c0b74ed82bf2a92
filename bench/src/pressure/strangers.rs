//! `strangers`: flooders send valid keyed first messages (each costs the
//! server an X25519 key generation and a Diffie-Hellman) as fast as they
//! can, from 127.0.0.2, while an established member's messages are echoed
//! by a prompt application. Measured for the default handshake budget (a
//! quarter of the IO thread) and for the whole thread (1 s a second, as
//! before the budget existed), alternating, in one process: the member's
//! round trips, the attempts the server got through, and the server IO
//! thread's CPU.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tablenet::{Error, EventKind, Network, Source, table};

use super::{Line, PressureOpts, latency_stats, procfs};

/// Flooding threads, each with one attempt in flight: it sends the first
/// message and waits for the server's answer (so the server does the key
/// exchange: a reset before it reads would spare it), then resets.
const FLOODERS: usize = 8;

/// The scenario.
pub fn run(opts: &PressureOpts) -> Result<(), String> {
    let key = "5e".repeat(32);
    let flight = Arc::new(first_flight(&key)?);
    let reps = opts.pick(3, 1);
    let window = Duration::from_secs(opts.pick(4, 2));
    for rep in 0..reps {
        for budget_ms in [250u64, 1000] {
            let r = one_run(
                opts,
                &key,
                &flight,
                Duration::from_millis(budget_ms),
                window,
            )?;
            let mut line = Line::new("strangers", opts);
            line.set("rep", rep + 1);
            line.set("handshake_budget_ms", budget_ms);
            line.set("flooders", FLOODERS);
            line.num("attempts_per_s", r.attempts as f64 / window.as_secs_f64());
            line.num("failures_per_s", r.failures as f64 / window.as_secs_f64());
            line.num("io_cpu_share", r.io_cpu / window.as_secs_f64());
            line.set("round_trips", r.rtts_ms.len());
            let (p50, p99, max) = latency_stats(&mut r.rtts_ms.clone());
            line.num("rtt_p50_ms", p50);
            line.num("rtt_p99_ms", p99);
            line.num("rtt_max_ms", max);
            line.goal("rtt_p99_under_50ms", p99 < 50.0);
            line.print();
        }
    }
    Ok(())
}

struct RunResult {
    attempts: u64,
    failures: u64,
    io_cpu: f64,
    rtts_ms: Vec<f64>,
}

fn one_run(
    opts: &PressureOpts,
    key: &str,
    flight: &Arc<Vec<u8>>,
    budget: Duration,
    window: Duration,
) -> Result<RunResult, String> {
    let mut config = opts.config();
    config.handshake_budget = budget;
    let snet = Network::with_config(config).map_err(|e| e.to_string())?;
    let server = snet
        .server("127.0.0.1", 0, Some(key))
        .map_err(|e| e.to_string())?;
    let port = server.port();
    let cnet = Network::new();
    let member = cnet
        .connect(("127.0.0.1", port), Some(key))
        .map_err(|e| e.to_string())?;
    member
        .wait_for_connect(Duration::from_secs(10))
        .map_err(|e| format!("member: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let echo = {
        let (stop, failures) = (stop.clone(), failures.clone());
        thread::spawn(move || {
            let mut handles = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for ev in snet.wait_events(Duration::from_millis(50)) {
                    match ev.kind {
                        EventKind::Connect { connection, .. } => handles.push(connection),
                        EventKind::Receive {
                            from: Source::Connection(id),
                            packet,
                        } => {
                            let _ = server.send_to(id, &packet);
                        }
                        EventKind::Error {
                            error: Error::UnauthenticatedFailures { count, .. },
                            ..
                        } => {
                            failures.fetch_add(count, Ordering::Relaxed);
                        }
                        EventKind::Error { .. } => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            }
        })
    };
    let attempts = Arc::new(AtomicU64::new(0));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|i| {
            let (stop, attempts, flight) = (stop.clone(), attempts.clone(), flight.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut s) = connect_from([127, 0, 0, 2 + (i % 4) as u8], port) {
                        let _ = s.write_all(&flight);
                        await_answer(&mut s);
                        attempts.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Let the flood reach its pace, then measure over the window.
    thread::sleep(Duration::from_millis(500));
    let pid = std::process::id();
    let cpu_before = procfs::thread_cpu(pid);
    let (attempts0, failures0) = (
        attempts.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    let start = Instant::now();
    let mut rtts_ms = Vec::new();
    let mut n = 0i64;
    while start.elapsed() < window {
        n += 1;
        let sent = Instant::now();
        member
            .send(&table! { "n" => n }.into())
            .map_err(|e| format!("member send: {e}"))?;
        let deadline = sent + Duration::from_secs(10);
        'wait: loop {
            if Instant::now() > deadline {
                return Err("an echo took over 10 s".into());
            }
            for ev in cnet.wait_events(Duration::from_millis(100)) {
                if let EventKind::Receive { packet, .. } = ev.kind
                    && packet.get("n").and_then(|v| v.as_i64()) == Some(n)
                {
                    break 'wait;
                }
            }
        }
        rtts_ms.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    let cpu_after = procfs::thread_cpu(pid);
    let attempts = attempts.load(Ordering::Relaxed) - attempts0;
    let failures = failures.load(Ordering::Relaxed) - failures0;
    // The server's IO thread is the busiest tablenet-io thread.
    let io_cpu = cpu_after
        .iter()
        .filter(|t| t.name.starts_with("tablenet-io"))
        .map(|t| {
            let was = cpu_before
                .iter()
                .find(|b| b.tid == t.tid)
                .map_or(0.0, |b| b.seconds);
            t.seconds - was
        })
        .fold(0.0, f64::max);
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.join();
    }
    let _ = echo.join();
    Ok(RunResult {
        attempts,
        failures,
        io_cpu,
        rtts_ms,
    })
}

/// Reads the server's preamble and second Noise message (at least 48
/// bytes), or gives up after a second (the server is busy, or closed).
pub(super) fn await_answer(s: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut got = 0;
    let mut buf = [0u8; 256];
    while got < 48 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got += n,
        }
    }
}

/// A TCP connection from `source`, reset when dropped (no TIME_WAIT).
fn connect_from(source: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.set_linger(Some(Duration::ZERO))?;
    socket.connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)).into(),
        Duration::from_secs(5),
    )?;
    Ok(socket.into())
}

/// The first bytes a keyed client sends (its preamble and first Noise
/// message), captured by a listener that never answers.
fn first_flight(key: &str) -> Result<Vec<u8>, String> {
    let fake = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = fake.local_addr().map_err(|e| e.to_string())?.port();
    let net = Network::new();
    let _client = net
        .connect(("127.0.0.1", port), Some(key))
        .map_err(|e| e.to_string())?;
    let (mut stream, _) = fake.accept().map_err(|e| e.to_string())?;
    let mut flight = Vec::new();
    let mut buf = [0u8; 1024];
    let mut timeout = Duration::from_secs(10);
    loop {
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => flight.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => return Err(e.to_string()),
        }
        // Nothing more follows until the server answers.
        timeout = Duration::from_millis(100);
    }
    if flight.len() < 40 {
        return Err(format!("a keyed first flight of {} bytes", flight.len()));
    }
    Ok(flight)
}
