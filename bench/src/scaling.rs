//! `scaling`: cost against the number of connections, as two sweeps.
//!
//! - fanout throughput at 10, 100, 1,000 and 5,000 clients: `fanout`'s
//!   sides (tablenet, tokio multi-thread; raw up to 1,000 clients, as it
//!   runs one thread per client). Both ends live in this process, two
//!   descriptors per connection, so 5,000 is the most that fits the fd
//!   limit of 20,000 with room to spare; a point that does not fit the
//!   current limit is skipped with a note.
//! - idle memory at 10, 100, 1,000 and 10,000 connections: `connections`'
//!   tablenet side (fresh server and clients processes per repetition),
//!   server VmRSS per connection.
//!
//! Every point is its own alternating run of about a second per repetition.

use std::time::Duration;

use crate::common::*;
use crate::connections::{self, ConnRep};
use crate::fanout::{self, Fanout, Plan};
use crate::tokio_side::Flavor;

/// Client counts of the fanout sweep.
pub const FANOUT_CLIENTS: [usize; 4] = [10, 100, 1_000, 5_000];
/// Raw's fanout runs one reader thread per client: not beyond this.
const RAW_MAX_CLIENTS: usize = 1_000;
/// Connection counts of the idle memory sweep.
pub const IDLE_CONNECTIONS: [usize; 4] = [10, 100, 1_000, 10_000];
/// Broadcasts per repetition at most: with few clients the broadcaster runs
/// ahead of them, and `broadcast` refuses a connection whose queue holds
/// `Config::send_queue_bytes` (8 MiB); 150,000 seed tables (about 30 bytes
/// each) stay under that even if the clients read nothing meanwhile, so the
/// run stays lossless without changing `fanout`'s sides.
const MAX_MESSAGES: usize = 150_000;

/// The soft limit on open descriptors of this process.
fn fd_limit() -> u64 {
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur
        } else {
            0
        }
    }
}

/// The `scaling` sweeps.
pub fn run(opts: &Opts) -> Vec<Figure> {
    let load_before = load_average();
    let limit = fd_limit();
    let budget: usize = opts.pick(3_000_000, 1_000_000);
    let cap = opts.pick(Duration::from_secs(1), Duration::from_millis(400));
    let mut figures = Vec::new();
    let mut notes = vec![
        format!(
            "fanout: fanout's workload (the seed's table broadcast, then an end marker) at each client count, up to {budget} deliveries per rep ({MAX_MESSAGES} broadcasts at most) and the broadcaster stops after {cap:?}; {} reps each per point, alternating; deliveries/s counted at the clients",
            opts.reps
        ),
        format!(
            "fanout sides: tablenet, tokio multi-thread, raw up to {RAW_MAX_CLIENTS} clients (one reader thread per client); clients and server in this process (2 descriptors per connection, limit {limit})"
        ),
    ];
    for clients in FANOUT_CLIENTS {
        if (clients as u64) * 2 + 256 > limit {
            notes.push(format!(
                "fanout {clients} clients: skipped, {} descriptors needed, limit {limit}",
                clients * 2 + 256
            ));
            continue;
        }
        let p = Plan {
            clients,
            messages: (budget / clients).clamp(100, MAX_MESSAGES),
            cap,
        };
        let with_raw = clients <= RAW_MAX_CLIENTS;
        let mut sides = vec![
            Side::new("tablenet", move || fanout::tablenet_fanout(p, false)),
            Side::new("tokio", move || fanout::tokio_fanout(p, Flavor::Multi)),
        ];
        if with_raw {
            sides.push(Side::new("raw", move || fanout::raw_fanout(p)));
        }
        let r = alternate(
            &format!("scaling fanout {clients}"),
            opts,
            &mut sides,
            fanout::describe,
        );
        let rates: Vec<Vec<f64>> = r
            .iter()
            .map(|v| v.iter().map(Fanout::per_sec).collect())
            .collect();
        let m = |i: usize| {
            rates
                .get(i)
                .map(|v| median(v))
                .filter(|x: &f64| x.is_finite())
        };
        figures.push(
            Figure::new(
                "scaling",
                &format!("deliveries_{clients}clients"),
                "deliveries_per_s",
                m(0),
                m(2),
                None,
            )
            .with_tokio(m(1), None),
        );
        let min = |v: &[Fanout]| v.iter().map(|f| f.messages).min().unwrap_or(0);
        notes.push(format!(
            "fanout {clients} clients: broadcasts per rep tablenet>={} tokio>={}{}",
            min(&r[0]),
            min(&r[1]),
            if with_raw {
                format!(" raw>={}", min(&r[2]))
            } else {
                " (raw not run)".into()
            }
        ));
        for (i, side) in sides.iter().enumerate() {
            notes.push(reps_line(
                &format!("{} {clients}", side.name),
                &rates[i],
                "deliveries/s",
            ));
        }
    }

    notes.push(
        "idle memory: connections' tablenet side at each count (clients in a child process, waves of 600, fresh processes per rep); server VmRSS after minus before over the connections; at 10 and 100 connections the difference is a few pages, so the per-connection figure there is mostly page and allocator granularity".into(),
    );
    for n in IDLE_CONNECTIONS {
        if n as u64 + 256 > limit {
            notes.push(format!(
                "idle {n} connections: skipped, {} descriptors needed, limit {limit}",
                n + 256
            ));
            continue;
        }
        let mut sides = [Side::new("tablenet", move || {
            connections::one_rep("tablenet", n, 600)
        })];
        let r = alternate(
            &format!("scaling idle {n}"),
            opts,
            &mut sides,
            ConnRep::describe,
        );
        let kib: Vec<f64> = r[0].iter().map(ConnRep::kib_per_conn).collect();
        let setup: Vec<f64> = r[0].iter().map(|c| c.setup_ms).collect();
        let m = |v: &[f64]| Some(median(v)).filter(|x| x.is_finite());
        figures.push(Figure::new(
            "scaling",
            &format!("rss_per_conn_{n}conns"),
            "KiB",
            m(&kib),
            None,
            None,
        ));
        notes.push(reps_line(&format!("tablenet {n}"), &kib, "KiB/conn"));
        notes.push(reps_line(&format!("tablenet {n}"), &setup, "setup ms"));
    }
    notes.push(format!(
        "load average (1, 5, 15 min) before: {load_before}; after: {}",
        load_average()
    ));
    report(
        "scaling: fanout deliveries/s (higher is better) and idle KiB per connection (lower is better) against the number of connections",
        &notes,
        &figures,
    );
    figures
}
