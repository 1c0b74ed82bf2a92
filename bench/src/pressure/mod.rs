//! `pressure`: the measurements of issue 16 (fairness and memory under
//! hostile or greedy peers), reproducible before and after the fix.
//!
//! ```text
//! cargo run --release -p tablenet-bench -- pressure [--quick] [--max-frame BYTES] [--overwrite] [--no-flood] SCENARIO...
//! ```
//! SCENARIO: `game`, `partial`, `amplify`, `bulk`, `strangers` or `all`. Each run prints
//! one `PRESSURE scenario=... key=value ...` line (with `goal_<name>=yes|no`
//! per goal and `goal_met` for all of them) and a human summary. The
//! process exits nonzero only when a run itself failed (a child process
//! died, a deadline passed), never because a goal was missed.
//!
//! Every wait has a deadline and everything stays on 127.0.0.1. Servers
//! whose memory is measured run in a child process (this binary re-executed
//! as `__pressure-server`), players and the flooder of `game` too
//! (`__pressure-players`, `__pressure-flood`); see bench/README.md.

mod amplify;
mod bulk;
mod child;
mod game;
mod partial;
mod players;
mod procfs;
mod raw;
mod server;
mod strangers;

use std::fmt::Display;
use std::time::Instant;

use tablenet::proto::Limits;
use tablenet::{Config, OverflowPolicy};

pub use players::{flood_main, players_main};
pub use server::server_main;

const SCENARIOS: [&str; 5] = ["game", "partial", "amplify", "bulk", "strangers"];

/// Options of the `pressure` family, shared with its child processes.
#[derive(Debug, Clone, Default)]
pub struct PressureOpts {
    /// Shorter runs (3 s game, 40 MiB bulk), to check that everything runs.
    pub quick: bool,
    /// `limits.max_frame_size`; `None`: the library's default.
    pub max_frame: Option<usize>,
    /// `OverflowPolicy::Overwrite` instead of the default.
    pub overwrite: bool,
    /// `game`: only the baseline without the flooder.
    pub no_flood: bool,
}

impl PressureOpts {
    /// The maximum frame size in force.
    pub fn max_frame(&self) -> usize {
        self.max_frame.unwrap_or(Limits::DEFAULT_MAX_FRAME_SIZE)
    }

    /// `lossless` or `overwrite`, as printed.
    pub fn policy_name(&self) -> &'static str {
        if self.overwrite {
            "overwrite"
        } else {
            "lossless"
        }
    }

    /// Picks the full or the quick value.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }

    /// The configuration of every network in these scenarios: the default,
    /// with the chosen policy and maximum frame size (the event byte budget
    /// grown to hold one frame, as `Config::validate` requires).
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        if self.overwrite {
            config.overflow = OverflowPolicy::Overwrite;
        }
        if let Some(max) = self.max_frame {
            config.limits.max_frame_size = max;
            config.event_bytes = config.event_bytes.max(max);
        }
        // The memory budget stays at its default (256 MiB), but must hold
        // two frames of the largest size (`Config::validate`).
        let two_frames = 2 * (config.limits.max_frame_size + 64 * 1024);
        config.memory_budget = config.memory_budget.max(two_frames);
        config
    }

    /// The arguments that give a child process the same options.
    pub fn child_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(max) = self.max_frame {
            args.extend(["--max-frame".to_string(), max.to_string()]);
        }
        if self.overwrite {
            args.push("--overwrite".into());
        }
        args
    }

    /// Parses the options (children get them from [`child_args`](Self::child_args));
    /// returns the other arguments in order.
    pub fn parse(args: &[String]) -> Result<(PressureOpts, Vec<String>), String> {
        let mut opts = PressureOpts {
            quick: std::env::var_os("TABLENET_BENCH_QUICK").is_some_and(|v| v != "0"),
            ..PressureOpts::default()
        };
        let mut rest = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => opts.quick = true,
                "--overwrite" => opts.overwrite = true,
                "--no-flood" => opts.no_flood = true,
                "--max-frame" => {
                    let n = it
                        .next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .ok_or("--max-frame needs a number of bytes")?;
                    opts.max_frame = Some(n);
                }
                _ => rest.push(a.clone()),
            }
        }
        opts.config().validate().map_err(|e| format!("{e}"))?;
        Ok((opts, rest))
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: tablenet-bench pressure [--quick] [--max-frame BYTES] [--overwrite] [--no-flood] SCENARIO...\n\
         SCENARIO: {} or all\n\
         --quick          3 s game runs, 40 MiB bulk (also TABLENET_BENCH_QUICK=1)\n\
         --max-frame N    limits.max_frame_size of every network (event_bytes grows to match)\n\
         --overwrite      OverflowPolicy::Overwrite instead of the default Lossless\n\
         --no-flood       game: only the baseline run without the flooding client",
        SCENARIOS.join(", ")
    );
    std::process::exit(2)
}

/// Entry point of `pressure ...`: runs the scenarios, exits 1 if any failed.
pub fn main(args: &[String]) -> ! {
    let (opts, rest) = PressureOpts::parse(args).unwrap_or_else(|e| {
        eprintln!("{e}");
        usage()
    });
    let mut scenarios = Vec::new();
    for a in rest {
        match a.as_str() {
            "all" => scenarios.extend(SCENARIOS.iter().map(|s| s.to_string())),
            s if SCENARIOS.contains(&s) => scenarios.push(a),
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
    let mut failed = Vec::new();
    for s in &scenarios {
        let started = Instant::now();
        println!("# pressure {s}: load average {}", procfs::loadavg());
        let result = match s.as_str() {
            "game" => game::run(&opts),
            "partial" => partial::run(&opts),
            "amplify" => amplify::run(&opts),
            "bulk" => bulk::run(&opts),
            "strangers" => strangers::run(&opts),
            _ => unreachable!(),
        };
        if let Err(e) = result {
            println!("PRESSURE scenario={s} failed={}", sanitize(&e));
            eprintln!("# pressure {s}: FAILED: {e}");
            failed.push(s.clone());
        }
        println!("   ({s} took {:.1} s)", started.elapsed().as_secs_f64());
    }
    if failed.is_empty() {
        std::process::exit(0)
    }
    eprintln!("# pressure: failed runs: {}", failed.join(", "));
    std::process::exit(1)
}

/// One `PRESSURE` line: fixed fields first, then measurements, then goals.
pub struct Line {
    fields: Vec<(String, String)>,
    goals: Vec<(String, bool)>,
}

impl Line {
    /// Starts the line of `scenario` with the options and the load average.
    pub fn new(scenario: &str, opts: &PressureOpts) -> Line {
        let mut line = Line {
            fields: Vec::new(),
            goals: Vec::new(),
        };
        line.set("scenario", scenario);
        line.set("max_frame", opts.max_frame());
        line.set("policy", opts.policy_name());
        line.set("quick", yes_no(opts.quick));
        line.set("load1", procfs::loadavg_1());
        line
    }

    /// Adds `key=value` (whitespace in the value becomes `_`).
    pub fn set(&mut self, key: &str, value: impl Display) {
        self.fields.push((key.into(), sanitize(&value.to_string())));
    }

    /// Adds a float with three decimals at most.
    pub fn num(&mut self, key: &str, value: f64) {
        self.set(key, fmt_f(value));
    }

    /// Records whether goal `name` was met.
    pub fn goal(&mut self, name: &str, met: bool) {
        self.goals.push((name.into(), met));
    }

    /// Prints the line.
    pub fn print(&self) {
        let mut s = String::from("PRESSURE");
        for (k, v) in &self.fields {
            s.push_str(&format!(" {k}={v}"));
        }
        for (k, met) in &self.goals {
            s.push_str(&format!(" goal_{k}={}", yes_no(*met)));
        }
        if !self.goals.is_empty() {
            let all = self.goals.iter().all(|(_, m)| *m);
            s.push_str(&format!(" goal_met={}", yes_no(all)));
        }
        println!("{s}");
    }
}

/// `yes` or `no`.
pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// A float for a PRESSURE line: up to three decimals, `-` when not finite.
pub fn fmt_f(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Whitespace becomes `_`, and at most 160 characters are kept, so that a
/// value (an error text, say) stays one field of the line.
pub fn sanitize(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .take(160)
        .collect();
    if s.is_empty() { "-".into() } else { s }
}

/// The `key=value` fields of a line from a child process.
pub fn fields(line: &str) -> std::collections::HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A numeric field of a child's line; NaN when absent.
pub fn field_f(map: &std::collections::HashMap<String, String>, key: &str) -> f64 {
    map.get(key)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// Nearest-rank percentiles of latencies in ms: (p50, p99, max); NaN when empty.
pub fn latency_stats(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        crate::common::percentile(values, 50.0),
        crate::common::percentile(values, 99.0),
        values.last().copied().unwrap_or(f64::NAN),
    )
}

/// MiB from KiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
