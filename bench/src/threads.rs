//! `threads`: cost against the number of IO threads (`Config::io_threads`),
//! as two sweeps over 1, 2 and 4 threads.
//!
//! - fanout, 1,000 clients: `fanout`'s workload with both networks at N
//!   IO threads: the server's 1,000 connections are spread over its
//!   network's N threads after their handshakes, the 1,000 clients over the
//!   client network's N. tokio (multi-thread, one worker per core) runs
//!   beside each point as the baseline.
//! - setting up 10,000 connections: `connections`' tablenet side, with both
//!   processes at N IO threads (the server accepts and runs handshakes on
//!   its server's thread, then spreads the connections; the clients spread
//!   over the clients process's N), time until the server application has
//!   seen every connection.
//!
//! Every point is its own alternating run.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use crate::common::*;
use crate::connections::{self, ConnRep};
use crate::fanout::{self, Fanout, Plan};
use crate::tokio_side::Flavor;

/// The thread counts swept.
pub const THREADS: [usize; 3] = [1, 2, 4];

/// A side's name for `threads` IO threads (`tablenet@2`), kept for the
/// process's life as the harness's names are.
fn side_name(threads: usize) -> &'static str {
    Box::leak(format!("tablenet@{threads}").into_boxed_str())
}

/// CPU seconds (user + system) each thread of this process whose name
/// starts with `tablenet-io` used while `run` ran, sampled every 20 ms
/// from /proc (a thread's last sample counts once it has gone), largest
/// first.
fn io_thread_cpu<T>(run: impl FnOnce() -> T) -> (T, Vec<f64>) {
    fn sample(seen: &mut HashMap<u64, f64>) {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return;
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ... : the name is between the parentheses,
            // utime and stime are fields 14 and 15.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            if !stat[open + 1..close].starts_with("tablenet-io") {
                continue;
            }
            let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
            let (Some(user), Some(sys)) = (ticks(11), ticks(12)) else {
                continue;
            };
            let Ok(tid) = task.file_name().to_string_lossy().parse::<u64>() else {
                continue;
            };
            seen.insert(tid, (user + sys) / hz);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut seen = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                sample(&mut seen);
                thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    let out = run();
    stop.store(true, Ordering::Relaxed);
    let mut cpu: Vec<f64> = sampler
        .join()
        .map(|seen| seen.into_values().collect())
        .unwrap_or_default();
    cpu.sort_by(|a, b| b.total_cmp(a));
    (out, cpu)
}

/// The `threads` sweeps.
pub fn run(opts: &Opts) -> Vec<Figure> {
    let load_before = load_average();
    let clients = 1_000;
    let p = Plan {
        clients,
        messages: opts.pick(3_000, 1_000),
        cap: opts.pick(Duration::from_secs(1), Duration::from_millis(400)),
    };
    let mut figures = Vec::new();
    let mut notes = vec![format!(
        "fanout: {clients} clients, up to {} broadcasts of the seed's table per rep (the broadcaster stops after {:?}); both tablenet networks at N IO threads (server connections and clients spread over them), tokio multi-thread beside each point; {} reps per side, alternating",
        p.messages, p.cap, opts.reps
    )];
    for threads in THREADS {
        let name = side_name(threads);
        let mut io_cpu = Vec::new();
        let mut sides = [
            Side::new(name, || {
                let (f, cpu) = io_thread_cpu(|| fanout::tablenet_fanout_on(p, false, threads));
                io_cpu.push(cpu);
                f
            }),
            Side::new("tokio", move || fanout::tokio_fanout(p, Flavor::Multi)),
        ];
        let r = alternate(
            &format!("threads fanout {threads}"),
            opts,
            &mut sides,
            fanout::describe,
        );
        let rates: Vec<Vec<f64>> = r
            .iter()
            .map(|v| v.iter().map(Fanout::per_sec).collect())
            .collect();
        let m = |i: usize| Some(median(&rates[i])).filter(|x| x.is_finite());
        figures.push(
            Figure::new(
                "threads",
                &format!("deliveries_{threads}threads"),
                "deliveries_per_s",
                m(0),
                None,
                None,
            )
            .with_tokio(m(1), None),
        );
        for (i, side) in sides.iter().enumerate() {
            notes.push(reps_line(
                &format!("{} (point {threads})", side.name),
                &rates[i],
                "deliveries/s",
            ));
        }
        drop(sides);
        for (rep, cpu) in io_cpu.iter().enumerate() {
            let list: Vec<String> = cpu.iter().map(|s| format!("{s:.2}")).collect();
            notes.push(format!(
                "{name} rep {}: CPU s of each IO thread (both networks, largest first): {}",
                rep + 1,
                list.join(" ")
            ));
        }
    }

    let n = 10_000;
    notes.push(format!(
        "setup: {n} connections to one server, server and clients processes at N IO threads (waves of 600, fresh processes per rep); ms until the server application saw every Connect"
    ));
    for threads in THREADS {
        let name = side_name(threads);
        let mut sides = [Side::new(name, move || connections::one_rep(name, n, 600))];
        let r = alternate(
            &format!("threads setup {threads}"),
            opts,
            &mut sides,
            ConnRep::describe,
        );
        let setup: Vec<f64> = r[0].iter().map(|c| c.setup_ms).collect();
        figures.push(Figure::new(
            "threads",
            &format!("setup_ms_{threads}threads"),
            "ms",
            Some(median(&setup)).filter(|x| x.is_finite()),
            None,
            None,
        ));
        notes.push(reps_line(name, &setup, "setup ms"));
    }
    notes.push(format!(
        "load average (1, 5, 15 min) before: {load_before}; after: {}",
        load_average()
    ));
    report(
        "threads: fanout deliveries/s (higher is better) and connection setup ms (lower is better) against IO threads",
        &notes,
        &figures,
    );
    figures
}
