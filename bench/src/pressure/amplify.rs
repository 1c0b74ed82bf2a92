//! `amplify`: one raw connection sends one frame of the maximum size whose
//! body is `{nil, true, true, ...}` (a hole at 1, so every `true` becomes a
//! hash entry when decoded). Meanwhile an honest tablenet client sends a
//! numbered table every 10 ms, which the server child echoes at once, and a
//! raw socket pings every 10 ms. Reports the worst echo and Ping round trip
//! during the attack, the server's peak memory (VmHWM, reset before), the
//! time until the server's Receive or Error for the big frame, the CPU of
//! the server's busiest thread, and what the server got.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tablenet::{EventKind, Network, Value, table};

use super::child::Child;
use super::raw::{PING, PONG, handshake, nil_true_frame, write_until};
use super::server::wall_us;
use super::{Line, PressureOpts, field_f, fmt_f, mib, procfs};

/// Round trips: (sent at, milliseconds; `None` if never answered).
type Samples = Vec<(Instant, Option<f64>)>;

/// The scenario.
pub fn run(opts: &PressureOpts) -> Result<(), String> {
    let (mut srv, port) = Child::server("echo", opts.child_args())?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let pid = srv.pid();
    let (frame, entries) = nil_true_frame(opts.max_frame());

    let stop = Arc::new(AtomicBool::new(false));
    let echo = {
        let (stop, config) = (stop.clone(), opts.config());
        std::thread::spawn(move || echo_loop(port, config, &stop))
    };
    let pinger = {
        let stop = stop.clone();
        let mut s = handshake(port, Duration::from_secs(5))?;
        std::thread::spawn(move || ping_loop(&mut s, &stop))
    };
    std::thread::sleep(Duration::from_millis(500)); // baseline samples; memory settles
    let (rss_before, _) = procfs::rss_hwm(pid);
    let hwm_reset = procfs::reset_hwm(pid);
    let cpu_before = procfs::thread_cpu(pid);

    let attack_at = Instant::now();
    let attack_wall = wall_us(SystemTime::now());
    let mut attacker = handshake(port, Duration::from_secs(5))?;
    let _ = attacker.set_write_timeout(Some(Duration::from_millis(200)));
    let written = write_until(&mut attacker, &frame, deadline);
    let written_ms = attack_at.elapsed().as_secs_f64() * 1e3;

    // Until the server reports the big frame (Receive or Error).
    let mut state = srv.state()?;
    while state.get("big").is_none_or(|b| b == "none") {
        if Instant::now() > deadline {
            stop.store(true, Ordering::Relaxed);
            return Err("the server reported nothing about the big frame in 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
        state = srv.state()?;
    }
    let seen_at = Instant::now();
    // A few more samples after it, so a stall that ends with it is measured.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let echo = echo.join().map_err(|_| "echo thread panicked")??;
    let pings = pinger.join().map_err(|_| "ping thread panicked")?;
    let (_, rss_peak) = procfs::rss_hwm(pid);
    let cpu_after = procfs::thread_cpu(pid);
    let (busiest, cpu_total) = procfs::busiest(&cpu_before, &cpu_after);
    drop(attacker);

    let worst = |samples: &Samples, after: bool| {
        samples
            .iter()
            .filter(|(t, _)| (*t >= attack_at) == after)
            .map(|(t, ms)| {
                ms.unwrap_or_else(|| seen_at.saturating_duration_since(*t).as_secs_f64() * 1e3)
            })
            .fold(f64::NAN, f64::max)
    };
    let unanswered = |s: &Samples| s.iter().filter(|(_, ms)| ms.is_none()).count();
    let since_attack = |k: &str| (field_f(&state, k) - attack_wall as f64) / 1e3;
    let delta_peak = mib(rss_peak.saturating_sub(rss_before));
    let frame_mib = opts.max_frame() as f64 / 1048576.0;
    let allowed = 32.0 * frame_mib + 32.0;
    let worst_ping = worst(&pings, true);
    let got = state.get("big").cloned().unwrap_or_default();
    let mut line = Line::new("amplify", opts);
    line.set("frame_bytes", opts.max_frame());
    line.set("entries_announced", entries);
    line.set("frame_written", written == frame.len());
    line.num("write_ms", written_ms);
    line.set("server_got", &got);
    line.set(
        "big_entries",
        state.get("big_entries").map_or("-", String::as_str),
    );
    line.set(
        "big_error",
        state.get("big_error").map_or("-", String::as_str),
    );
    line.num("event_stamp_ms", since_attack("big_io_wall_us"));
    line.num("event_delivered_ms", since_attack("big_app_wall_us"));
    line.set(
        "big_drop_ms",
        state.get("big_drop_ms").map_or("-", String::as_str),
    );
    line.num("rss_before_mib", mib(rss_before));
    line.num("rss_peak_mib", mib(rss_peak));
    line.num("delta_peak_mib", delta_peak);
    line.num("delta_per_frame", delta_peak / frame_mib);
    line.set("hwm_reset", super::yes_no(hwm_reset));
    line.num(
        "cpu_busiest_thread_s",
        busiest.as_ref().map_or(f64::NAN, |b| b.seconds),
    );
    line.set(
        "busiest_thread",
        busiest.as_ref().map_or("-", |b| b.name.as_str()),
    );
    line.num("cpu_total_s", cpu_total);
    line.num("echo_worst_before_ms", worst(&echo, false));
    line.num("echo_worst_ms", worst(&echo, true));
    line.set("echo_samples", echo.len());
    line.set("echo_unanswered", unanswered(&echo));
    line.num("ping_worst_before_ms", worst(&pings, false));
    line.num("ping_worst_ms", worst_ping);
    line.set("ping_samples", pings.len());
    line.set("ping_unanswered", unanswered(&pings));
    line.goal("mem_32x_plus_32mib", delta_peak <= allowed);
    line.goal("ping_250ms", worst_ping <= 250.0);
    line.print();
    println!(
        "   amplify: server got {got}, delivered to the application after {} ms (event stamped at {} ms); peak +{} MiB ({}x the frame, goal <= {} MiB); busiest thread {} used {} s CPU; worst ping {} ms, worst echo {} ms",
        fmt_f(since_attack("big_app_wall_us")),
        fmt_f(since_attack("big_io_wall_us")),
        fmt_f(delta_peak),
        fmt_f(delta_peak / frame_mib),
        fmt_f(allowed),
        busiest.as_ref().map_or("-", |b| b.name.as_str()),
        fmt_f(busiest.as_ref().map_or(f64::NAN, |b| b.seconds)),
        fmt_f(worst_ping),
        fmt_f(worst(&echo, true)),
    );
    Ok(())
}

/// Sends `{seq = n}` every 10 ms until `stop`; the server echoes each.
/// Round trips use the time the client's IO thread saw the echo.
fn echo_loop(port: u16, config: tablenet::Config, stop: &AtomicBool) -> Result<Samples, String> {
    let net = Network::with_config(config).map_err(|e| e.to_string())?;
    let client = net
        .connect(("127.0.0.1", port), None)
        .map_err(|e| e.to_string())?;
    client
        .wait_for_connect(Duration::from_secs(10))
        .map_err(|e| format!("echo client: {e}"))?;
    let mut sent: BTreeMap<i64, usize> = BTreeMap::new();
    let mut samples: Samples = Vec::new();
    let mut next = Instant::now();
    let mut seq = 0i64;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next {
            let at = Instant::now();
            if client.send(&table! { "seq" => seq }.into()).is_ok() {
                sent.insert(seq, samples.len());
                samples.push((at, None));
            }
            seq += 1;
            next = (next + Duration::from_millis(10)).max(Instant::now());
        }
        for e in net.wait_events(next.saturating_duration_since(Instant::now())) {
            if let EventKind::Receive { packet, .. } = e.kind
                && let Some(i) = packet
                    .get("seq")
                    .and_then(Value::as_i64)
                    .and_then(|s| sent.remove(&s))
            {
                samples[i].1 =
                    Some(e.time.saturating_duration_since(samples[i].0).as_secs_f64() * 1e3);
            }
        }
    }
    let _ = net.shutdown(Duration::from_millis(200));
    Ok(samples)
}

/// One Ping every 10 ms on a raw connection, each waiting for its Pong
/// until `stop`.
fn ping_loop(s: &mut std::net::TcpStream, stop: &AtomicBool) -> Samples {
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut samples = Vec::new();
    let mut buf = [0u8; 5];
    'outer: while !stop.load(Ordering::Relaxed) {
        let at = Instant::now();
        if s.write_all(&PING).is_err() {
            break;
        }
        let mut got = 0;
        while got < buf.len() {
            match s.read(&mut buf[got..]) {
                Ok(0) => break 'outer,
                Ok(n) => got += n,
                Err(_) if stop.load(Ordering::Relaxed) => {
                    samples.push((at, None));
                    break 'outer;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => {
                    samples.push((at, None));
                    break 'outer;
                }
            }
        }
        if buf != PONG {
            break;
        }
        samples.push((at, Some(at.elapsed().as_secs_f64() * 1e3)));
        std::thread::sleep(Duration::from_millis(10));
    }
    samples
}
