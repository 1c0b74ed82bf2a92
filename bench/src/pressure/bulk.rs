//! `bulk`: one client streams 200 MiB (40 MiB with `--quick`) of numbered
//! 64 KiB tables to a server child whose application is slow (it sleeps
//! 50 ms, then takes all events). Counts the `QueueFull` refusals and the
//! `Drained` events the sender sees, and checks that the server received
//! every table, in order.

use std::time::{Duration, Instant};

use tablenet::{EventKind, Network, SendError, Value, table};

use super::child::Child;
use super::{Line, PressureOpts, field_f, fmt_f};

/// Size of each table's payload.
const TABLE_BYTES: usize = 64 * 1024;

/// The scenario.
pub fn run(opts: &PressureOpts) -> Result<(), String> {
    let total_mib: usize = opts.pick(200, 40);
    let count = (total_mib * 1024 * 1024 / TABLE_BYTES) as i64;
    let (mut srv, port) = Child::server("slow", opts.child_args())?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);

    let net = Network::with_config(opts.config()).map_err(|e| e.to_string())?;
    let client = net
        .connect(("127.0.0.1", port), None)
        .map_err(|e| e.to_string())?;
    client
        .wait_for_connect(Duration::from_secs(10))
        .map_err(|e| format!("sender: {e}"))?;

    let t0 = Instant::now();
    let (mut queue_full, mut drained, mut seq) = (0u64, 0u64, 0i64);
    let mut msg: Value = table! { "seq" => 0, "data" => vec![0x5Au8; TABLE_BYTES] }.into();
    let mut overrun = false;
    while seq < count {
        if Instant::now() > deadline {
            overrun = true;
            break;
        }
        if let Some(t) = msg.as_table_mut() {
            t.set("seq", seq);
        }
        match client.send(&msg) {
            Ok(()) => seq += 1,
            Err(SendError::QueueFull { .. }) => {
                queue_full += 1;
                // Wait for Drained (bounded), then retry the same table.
                let until = Instant::now() + Duration::from_secs(5);
                let mut got = false;
                while !got && Instant::now() < until {
                    let n = net
                        .wait_events(Duration::from_millis(100))
                        .iter()
                        .filter(|e| matches!(e.kind, EventKind::Drained { .. }))
                        .count() as u64;
                    drained += n;
                    got = n > 0;
                }
            }
            Err(e) => return Err(format!("sender: {e}")),
        }
    }
    let send_s = t0.elapsed().as_secs_f64();
    // Until the server has every table, or nothing moved for 3 s (a lossy
    // policy never gets there), within the deadline.
    let (mut state, mut last, mut moved) = (srv.state()?, -1.0, Instant::now());
    loop {
        let received = field_f(&state, "received");
        if received >= count as f64 || Instant::now() > deadline {
            overrun |= received < count as f64 && Instant::now() > deadline;
            break;
        }
        if received != last {
            (last, moved) = (received, Instant::now());
        } else if moved.elapsed() > Duration::from_secs(3) && client.queued_bytes() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        state = srv.state()?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let received = field_f(&state, "received");
    let in_order = field_f(&state, "in_order");
    let bytes = field_f(&state, "payload_bytes");
    let mut line = Line::new("bulk", opts);
    line.set("tables", count);
    line.set("table_bytes", TABLE_BYTES);
    line.set("sent", seq);
    line.num("delivered", received);
    line.num("in_order", in_order);
    line.num("out_of_order", field_f(&state, "out_of_order"));
    line.num("lost", count as f64 - received);
    line.num("server_dropped_events", field_f(&state, "dropped"));
    line.set("queue_full", queue_full);
    line.set("drained", drained);
    line.num("send_s", send_s);
    line.num("elapsed_s", elapsed);
    line.num("mb_per_s", bytes / 1e6 / elapsed);
    line.set("overrun", super::yes_no(overrun));
    line.goal("delivers_all_in_order", in_order == count as f64);
    line.goal("backpressure_felt", queue_full > 0 && drained > 0);
    line.print();
    println!(
        "   bulk: {received}/{count} tables delivered ({in_order} in order) in {} s, {} MB/s; sender saw {queue_full} QueueFull and {drained} Drained",
        fmt_f(elapsed),
        fmt_f(bytes / 1e6 / elapsed),
    );
    drop(srv);
    let _ = net.shutdown(Duration::from_millis(500));
    if overrun {
        return Err(format!(
            "bulk overran its 60 s deadline ({received}/{count} delivered)"
        ));
    }
    Ok(())
}
