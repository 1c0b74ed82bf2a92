//! `partial`: 60 raw connections each announce a frame of the maximum size,
//! send 90% of it and hold the connection open, silent; meanwhile an
//! honest client streams 10,000 numbered messages, which the server child
//! checks for loss and order. Reports the server's resident memory before,
//! at its peak (VmHWM, reset before the attack) and while the attackers
//! hold, and what the server did about the attackers.

use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tablenet::{EventKind, Network, SendError, Value, table};

use super::child::Child;
use super::raw::{handshake, peer_closed, string_frame, write_until};
use super::{Line, PressureOpts, field_f, fmt_f, mib, procfs};

/// Attacking connections.
const ATTACKERS: usize = 60;
/// Numbered messages of the honest client.
const HONEST: i64 = 10_000;
/// The share of the announced frame each attacker sends.
const SHARE: f64 = 0.9;

/// The scenario.
pub fn run(opts: &PressureOpts) -> Result<(), String> {
    let (mut srv, port) = Child::server("sink", opts.child_args())?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let pid = srv.pid();

    let net = Network::with_config(opts.config()).map_err(|e| e.to_string())?;
    let honest = net
        .connect(("127.0.0.1", port), None)
        .map_err(|e| e.to_string())?;
    honest
        .wait_for_connect(Duration::from_secs(10))
        .map_err(|e| format!("honest client: {e}"))?;
    std::thread::sleep(Duration::from_millis(300)); // let the server settle (memory only)
    let (rss_before, _) = procfs::rss_hwm(pid);
    let hwm_reset = procfs::reset_hwm(pid);

    // The attackers, one thread each; each returns its socket (kept open).
    let frame = std::sync::Arc::new(string_frame(opts.max_frame()));
    let share = (frame.len() as f64 * SHARE) as usize;
    let attack_deadline = Instant::now() + Duration::from_secs(25);
    let (tx, rx) = mpsc::channel::<Result<(TcpStream, usize), String>>();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    for _ in 0..ATTACKERS {
        let (tx, ready, frame) = (tx.clone(), ready_tx.clone(), frame.clone());
        std::thread::spawn(move || {
            let r = handshake(port, Duration::from_secs(5)).map(|mut s| {
                let _ = ready.send(());
                let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                let n = write_until(&mut s, &frame[..share], attack_deadline);
                (s, n)
            });
            let _ = tx.send(r);
        });
    }
    drop((tx, ready_tx));
    // The honest stream starts once every attacker has its connection (or
    // after 5 s), so that it runs while they write.
    let until = Instant::now() + Duration::from_secs(5);
    for _ in 0..ATTACKERS {
        if ready_rx
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .is_err()
        {
            break;
        }
    }

    // The honest stream, meanwhile.
    let honest_start = Instant::now();
    let (mut queue_full, mut drained) = (0u64, 0u64);
    let mut msg: Value = table! { "seq" => 0, "pad" => "honest" }.into();
    let mut seq = 0;
    while seq < HONEST {
        if Instant::now() > deadline {
            return Err(format!(
                "honest client: only {seq} of {HONEST} sent in time"
            ));
        }
        if let Some(t) = msg.as_table_mut() {
            t.set("seq", seq);
        }
        match honest.send(&msg) {
            Ok(()) => seq += 1,
            Err(SendError::QueueFull { .. }) => {
                queue_full += 1;
                drained += net
                    .wait_events(Duration::from_millis(50))
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Drained { .. }))
                    .count() as u64;
            }
            Err(e) => return Err(format!("honest client: {e}")),
        }
    }
    // Until the server has them all (or the stream stops making progress).
    let (mut state, mut honest_ms) = (srv.state()?, f64::NAN);
    let (mut last, mut moved) = (-1.0, Instant::now());
    while Instant::now() < deadline && moved.elapsed() < Duration::from_secs(10) {
        let received = field_f(&state, "received");
        if received >= HONEST as f64 {
            honest_ms = honest_start.elapsed().as_secs_f64() * 1e3;
            break;
        }
        if received != last {
            (last, moved) = (received, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(20));
        state = srv.state()?;
    }

    // Collect the attackers (each bounded by attack_deadline).
    let mut sockets = Vec::new();
    let (mut attack_bytes, mut attack_failures) = (0usize, Vec::new());
    for _ in 0..ATTACKERS {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok((s, n))) => {
                attack_bytes += n;
                sockets.push(s);
            }
            Ok(Err(e)) => attack_failures.push(e),
            Err(_) => return Err("attacker threads did not finish in time".into()),
        }
    }
    let attack_s = honest_start.elapsed().as_secs_f64();
    let honest_overlapped = honest_ms / 1e3 < attack_s;
    // Hold them silent a little, to see whether the server lets go.
    std::thread::sleep(Duration::from_secs(1));
    let (rss_holding, rss_peak) = procfs::rss_hwm(pid);
    let state_end = srv.state()?;
    let attacker_side_closed = sockets.iter().filter(|s| peer_closed(s)).count();
    drop(sockets);

    let delta_peak = mib(rss_peak.saturating_sub(rss_before));
    let received = field_f(&state_end, "received");
    let in_order = field_f(&state_end, "in_order");
    let mut line = Line::new("partial", opts);
    line.set("attackers", ATTACKERS);
    line.set("attackers_handshaken", ATTACKERS - attack_failures.len());
    line.set("frame_announced", opts.max_frame());
    line.num("attack_mib_sent", attack_bytes as f64 / 1048576.0);
    line.num("attack_s", attack_s);
    line.num("rss_before_mib", mib(rss_before));
    line.num("rss_peak_mib", mib(rss_peak));
    line.num("rss_holding_mib", mib(rss_holding));
    line.num("delta_peak_mib", delta_peak);
    line.num(
        "delta_holding_mib",
        mib(rss_holding.saturating_sub(rss_before)),
    );
    line.set("hwm_reset", super::yes_no(hwm_reset));
    line.set("honest_sent", HONEST);
    line.num("honest_received", received);
    line.num("honest_in_order", in_order);
    line.num("honest_out_of_order", field_f(&state_end, "out_of_order"));
    line.num("honest_gaps", field_f(&state_end, "gaps"));
    line.num("honest_ms", honest_ms);
    line.set("honest_during_attack", super::yes_no(honest_overlapped));
    line.set("honest_queue_full", queue_full);
    line.set("honest_drained", drained);
    line.num("server_errors", field_f(&state_end, "errors"));
    line.num("server_closes", field_f(&state_end, "closes"));
    line.set("attackers_closed_seen", attacker_side_closed);
    let text = |k: &str| state_end.get(k).cloned().unwrap_or_else(|| "-".into());
    line.set("first_close", text("first_close"));
    line.set("first_errors", text("first_errors"));
    line.set(
        "attack_failure",
        attack_failures.first().map_or("-", String::as_str),
    );
    line.goal("mem_256mib", delta_peak <= 256.0);
    line.goal(
        "honest_complete_in_order",
        in_order == HONEST as f64 && received == HONEST as f64,
    );
    line.print();
    println!(
        "   partial: server RSS {} -> peak {} MiB (+{} MiB), {} MiB while held; honest {received}/{HONEST} received, {in_order} in order, in {} ms; server closed {} of {ATTACKERS} attackers (seen closed by the attackers: {attacker_side_closed})",
        fmt_f(mib(rss_before)),
        fmt_f(mib(rss_peak)),
        fmt_f(delta_peak),
        fmt_f(mib(rss_holding)),
        fmt_f(honest_ms),
        text("closes"),
    );
    drop(srv);
    let _ = net.shutdown(Duration::from_millis(500));
    Ok(())
}
