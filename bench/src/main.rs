//! Side-by-side benchmarks of tablenet against raw TCP + bincode,
//! message-io 0.19 and tokio (multi-thread and current-thread runtimes), in
//! one process run with alternating repetitions.
//!
//! ```text
//! cargo run --release -p tablenet-bench -- [--quick] [--reps N] [--side S] [--svg FILE] SCENARIO...
//! cargo run --release -p tablenet-bench -- chart RESULTS.txt OUT.svg
//! cargo run --release -p tablenet-bench -- broadcast [--clients N] [--calls N] [--gap-ms G]
//! cargo run --release -p tablenet-bench -- pressure [--quick] [--max-frame BYTES] [--overwrite] [--no-flood] SCENARIO...
//! ```
//! SCENARIO: stream, pingpong, fanout, connections, large, or all; or the
//! sweeps sizes, scaling and threads, which `all` leaves out.
//! See bench/README.md.

mod broadcast;
mod chart;
mod common;
mod connections;
mod fanout;
mod pingpong;
mod pressure;
mod scaling;
mod sides;
mod stream;
mod threads;
mod tokio_side;

use std::path::PathBuf;
use std::time::Instant;

use common::{Figure, Opts};

const SCENARIOS: [&str; 5] = ["stream", "pingpong", "fanout", "connections", "large"];

/// Sweeps, run only when named (not part of `all`).
const SWEEPS: [&str; 3] = ["sizes", "scaling", "threads"];

fn usage() -> ! {
    eprintln!(
        "usage: tablenet-bench [--quick] [--reps N] [--side S] [--svg FILE] SCENARIO...\n\
         \x20      tablenet-bench chart RESULTS.txt OUT.svg\n\
         \x20      tablenet-bench broadcast [--clients N] [--calls N] [--gap-ms G]\n\
         \x20      tablenet-bench pressure [--quick] [--max-frame BYTES] [--overwrite] [--no-flood] game|partial|amplify|bulk|all\n\
         SCENARIO: {} or all; or the sweeps {} (not in all)\n\
         --quick   smaller workloads and 3 reps (checks that everything runs; also TABLENET_BENCH_QUICK=1)\n\
         --reps N  repetitions per side (default 5)\n\
         --side S  run only side S (repeatable; tablenet, tablenet_typed, tablenet_aes, tablenet_inline, raw, message_io, tokio, tokio_ct), e.g. to profile it\n\
         --svg F   draw the comparison chart of this run to F",
        SCENARIOS.join(", "),
        SWEEPS.join(", ")
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("__conn-server") => return connections::server_main(&args[1..]),
        Some("__conn-clients") => return connections::clients_main(&args[1..]),
        Some("chart") => return chart_command(&args[1..]),
        Some("broadcast") => return broadcast::main(&args[1..]),
        Some("pressure") => pressure::main(&args[1..]),
        Some("__pressure-server") => return pressure::server_main(&args[1..]),
        Some("__pressure-players") => return pressure::players_main(&args[1..]),
        Some("__pressure-flood") => return pressure::flood_main(&args[1..]),
        _ => {}
    }

    let mut quick = std::env::var_os("TABLENET_BENCH_QUICK").is_some_and(|v| v != "0");
    let mut reps = None;
    let mut svg = None;
    let mut only = Vec::new();
    let mut scenarios = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--reps" => {
                reps = Some(
                    it.next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| *n >= 1)
                        .unwrap_or_else(|| usage()),
                )
            }
            "--side" => only.push(it.next().unwrap_or_else(|| usage())),
            "--svg" => svg = Some(PathBuf::from(it.next().unwrap_or_else(|| usage()))),
            "all" => scenarios.extend(SCENARIOS.iter().map(|s| s.to_string())),
            s if SCENARIOS.contains(&s) || SWEEPS.contains(&s) => scenarios.push(a),
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("unknown argument: {a}");
                usage()
            }
        }
    }
    if scenarios.is_empty() {
        usage();
    }
    let opts = Opts {
        quick,
        reps: reps.unwrap_or(if quick { 3 } else { 5 }),
        only,
    };
    if opts.quick {
        println!(
            "# quick mode: smaller workloads, {} reps: not for quoting",
            opts.reps
        );
    }

    let mut figures: Vec<Figure> = Vec::new();
    for s in &scenarios {
        let started = Instant::now();
        eprintln!("# {s}: running ({} reps per side)", opts.reps);
        let f = match s.as_str() {
            "stream" => stream::run_stream(&opts),
            "pingpong" => pingpong::run(&opts),
            "fanout" => fanout::run(&opts),
            "connections" => connections::run(&opts),
            "large" => stream::run_large(&opts),
            "sizes" => stream::run_sizes(&opts),
            "scaling" => scaling::run(&opts),
            "threads" => threads::run(&opts),
            _ => unreachable!(),
        };
        println!("   ({s} took {:.1} s)", started.elapsed().as_secs_f64());
        figures.extend(f);
    }
    if let Some(path) = svg {
        match chart::draw(&figures, &path) {
            Ok(()) => println!("chart written to {}", path.display()),
            Err(e) => eprintln!("chart not written: {e}"),
        }
    }
}

/// `chart RESULTS.txt OUT.svg`: the chart from RESULT lines saved earlier.
fn chart_command(args: &[String]) {
    let (Some(input), Some(output)) = (args.first(), args.get(1)) else {
        usage()
    };
    let text = std::fs::read_to_string(input).unwrap_or_else(|e| {
        eprintln!("cannot read {input}: {e}");
        std::process::exit(1)
    });
    let figures: Vec<Figure> = text.lines().filter_map(Figure::parse).collect();
    if let Err(e) = chart::draw(&figures, std::path::Path::new(output)) {
        eprintln!("chart not written: {e}");
        std::process::exit(1);
    }
    println!("chart of {} figures written to {output}", figures.len());
}
