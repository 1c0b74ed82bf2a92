//! `broadcast`: the caller-thread time of one `Server::broadcast` to 500
//! loopback clients (the game-server case: one broadcast per tick), as
//! p50/p99/max over many calls. Two patterns: isolated broadcasts (2 ms
//! apart, longer than any burst detection) and back-to-back ones. The
//! clients live in a second network of the same process, whose application
//! thread takes every event so nothing backs up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tablenet::{EventKind, Source};

use crate::common::*;
use crate::sides::*;

/// The `broadcast` subcommand: `broadcast [--clients N] [--calls N] [--gap-ms G]`.
pub fn main(args: &[String]) {
    let mut clients = 500usize;
    let mut calls = 2000usize;
    let mut gap = Duration::from_millis(2);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = || -> u64 {
            it.next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{a} needs a number"))
        };
        match a.as_str() {
            "--clients" => clients = num() as usize,
            "--calls" => calls = num() as usize,
            "--gap-ms" => gap = Duration::from_millis(num()),
            _ => panic!("unknown argument {a}: broadcast [--clients N] [--calls N] [--gap-ms G]"),
        }
    }
    let server_net = lossless_network();
    let client_net = lossless_network();
    let server = server_net.server("127.0.0.1", 0, None).expect("server");
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            client_net
                .client("127.0.0.1", server.port(), None)
                .expect("client")
        })
        .collect();
    let conns = accept(&server_net, clients, Duration::from_secs(30));
    for c in &handles {
        c.wait_for_connect(Duration::from_secs(10))
            .expect("connect");
    }
    // The clients' application: takes every event, counts deliveries.
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (net, delivered, stop) = (client_net.clone(), delivered.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for e in net.wait_events(Duration::from_millis(50)) {
                    if let EventKind::Receive {
                        from: Source::Client(_),
                        ..
                    } = e.kind
                    {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let server_events = {
        let (net, stop) = (server_net.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                drop(net.wait_events(Duration::from_millis(50)));
            }
        })
    };
    let message = seed_value();
    println!(
        "broadcast: caller-thread time of Server::broadcast to {clients} loopback clients, {calls} calls per pattern"
    );
    for (name, pause) in [("isolated", gap), ("back-to-back", Duration::ZERO)] {
        let before = delivered.load(Ordering::Relaxed);
        let mut us = Vec::with_capacity(calls);
        let mut cpu_us = Vec::with_capacity(calls);
        let (mut blocked, mut preempted) = (0u64, 0u64);
        // Wall time of the calls that were neither preempted nor blocked:
        // the call's own cost, apart from waits for a CPU or a lock.
        let mut undisturbed_us = Vec::with_capacity(calls);
        for _ in 0..calls {
            let switches = thread_switches();
            let c = thread_cpu();
            let t = Instant::now();
            let accepted = server.broadcast(&message);
            let wall = t.elapsed().as_secs_f64() * 1e6;
            us.push(wall);
            cpu_us.push((thread_cpu() - c).as_secs_f64() * 1e6);
            let after = thread_switches();
            blocked += u64::from(after.0 > switches.0);
            preempted += u64::from(after.1 > switches.1);
            if after == switches {
                undisturbed_us.push(wall);
            }
            assert_eq!(accepted, clients, "broadcast refused");
            if !pause.is_zero() {
                thread::sleep(pause);
            }
        }
        let want = before + (calls * clients) as u64;
        wait_until("every delivery", Duration::from_secs(60), || {
            delivered.load(Ordering::Relaxed) >= want
        });
        us.sort_by(f64::total_cmp);
        cpu_us.sort_by(f64::total_cmp);
        undisturbed_us.sort_by(f64::total_cmp);
        println!(
            "broadcast {name} (gap {:?}): wall p50 {:.1} us, p99 {:.1} us, max {:.1} us; thread CPU p50 {:.1} us, p99 {:.1} us; calls that blocked {blocked}, were preempted {preempted}; the other {} calls: wall p99 {:.1} us, max {:.1} us",
            pause,
            percentile(&us, 50.0),
            percentile(&us, 99.0),
            us.last().copied().unwrap_or(0.0),
            percentile(&cpu_us, 50.0),
            percentile(&cpu_us, 99.0),
            undisturbed_us.len(),
            percentile(&undisturbed_us, 99.0),
            undisturbed_us.last().copied().unwrap_or(0.0),
        );
    }
    stop.store(true, Ordering::Relaxed);
    counter.join().expect("counter");
    server_events.join().expect("server events");
    drop(handles);
    drop(conns);
    drop(server);
    client_net.shutdown(Duration::from_secs(2));
    server_net.shutdown(Duration::from_secs(2));
}

/// CPU time of the calling thread: the wall time minus the time it waited
/// (for a lock, or for a CPU on a busy machine).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The calling thread's voluntary (it blocked, for example on a lock) and
/// involuntary (it was preempted) context switches so far.
fn thread_switches() -> (i64, i64) {
    // SAFETY: all-zero is a valid rusage, which getrusage fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    (usage.ru_nvcsw, usage.ru_nivcsw)
}
