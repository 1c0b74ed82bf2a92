//! What every scenario shares: the baselines' value type and framing, the
//! alternating repetition harness, statistics, RESULT lines, CPU pinning and
//! /proc readings.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tablenet::{Value, table};

/// Command-line options shared by all scenarios.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Short repetitions and smaller workloads, to check that everything runs.
    pub quick: bool,
    /// Repetitions per side (at least 5 for real numbers).
    pub reps: usize,
    /// Run only these sides (for profiling one of them); empty: all.
    pub only: Vec<String>,
}

impl Opts {
    /// Picks the full or the quick value.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

// ---------------------------------------------------------------------------
// The baselines' value type: what a user without tablenet would derive.

/// A plain serde-derived value of the same shape as `tablenet::Value`
/// (strings are byte strings, as in Lua; a table has an array part and a
/// hash part). Raw TCP, message-io and tokio encode and decode this with
/// bincode.
#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
pub enum Plain {
    Nil,
    Boolean(bool),
    Integer(i64),
    Number(f64),
    String(#[serde(with = "serde_bytes")] Vec<u8>),
    Table(Vec<Plain>, Vec<(Plain, Plain)>),
}

impl Plain {
    fn str(s: &str) -> Plain {
        Plain::String(s.as_bytes().to_vec())
    }

    /// True for the end-of-run marker.
    pub fn is_end(&self) -> bool {
        matches!(self, Plain::String(s) if s == b"end")
    }
}

/// The seed's table `{OpCode=10, Data="From server"}` for tablenet.
pub fn seed_value() -> Value {
    table! { "OpCode" => 10, "Data" => "From server" }.into()
}

/// The seed's table as a Rust struct, for tablenet's typed path: the same
/// table on the wire (`{OpCode=10, Data="From server"}`). The end marker is
/// `OpCode = -1`.
#[derive(Serialize, Deserialize, Debug)]
pub struct Seed {
    #[serde(rename = "OpCode")]
    pub op_code: i64,
    #[serde(rename = "Data")]
    pub data: String,
}

impl Seed {
    /// `{OpCode=10, Data="From server"}`.
    pub fn greeting() -> Seed {
        Seed {
            op_code: 10,
            data: "From server".into(),
        }
    }

    /// The end marker.
    pub fn end() -> Seed {
        Seed {
            op_code: -1,
            data: "end".into(),
        }
    }

    pub fn is_end(&self) -> bool {
        self.op_code == -1
    }
}

/// The same table for the baselines.
pub fn seed_plain() -> Plain {
    Plain::Table(
        vec![],
        vec![
            (Plain::str("OpCode"), Plain::Integer(10)),
            (Plain::str("Data"), Plain::str("From server")),
        ],
    )
}

/// `{Blob=<bytes>}` for tablenet.
pub fn blob_value(len: usize) -> Value {
    table! { "Blob" => vec![0xA5u8; len] }.into()
}

/// `{Blob=<bytes>}` for the baselines.
pub fn blob_plain(len: usize) -> Plain {
    Plain::Table(
        vec![],
        vec![(Plain::str("Blob"), Plain::String(vec![0xA5u8; len]))],
    )
}

/// The end-of-run marker, a string "end", for tablenet.
pub fn end_value() -> Value {
    Value::from("end")
}

/// True when a tablenet packet is the end marker.
pub fn is_end_value(v: &Value) -> bool {
    v.as_bytes() == Some(b"end")
}

/// The end marker for the baselines.
pub fn end_plain() -> Plain {
    Plain::str("end")
}

const BINCODE: bincode::config::Configuration = bincode::config::standard();

/// bincode body only (message-io adds its own length prefix).
pub fn encode_body(v: &Plain, out: &mut Vec<u8>) {
    out.clear();
    encode_body_into(v, out);
}

/// Appends the bincode body to `out` (the tokio sides write into a `BytesMut`).
pub fn encode_body_into(v: &Plain, out: &mut impl Write) {
    bincode::serde::encode_into_std_write(v, out, BINCODE).expect("encode into memory");
}

/// Length-prefixed frame (u32 little endian + bincode body) for raw TCP.
pub fn encode_frame(v: &Plain, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; 4]);
    bincode::serde::encode_into_std_write(v, out, BINCODE).expect("encode into a Vec");
    let len = u32::try_from(out.len() - 4).expect("frame under 4 GiB");
    out[..4].copy_from_slice(&len.to_le_bytes());
}

/// Decodes a bincode body into an owned value.
pub fn decode_body(bytes: &[u8]) -> Plain {
    let (v, _): (Plain, usize) =
        bincode::serde::decode_from_slice(bytes, BINCODE).expect("valid bincode");
    v
}

/// Reads one length-prefixed frame into `buf` and decodes it; `None` at EOF.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<Plain>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(Some(decode_body(buf)))
}

/// Writes a whole frame with one `write_all`.
pub fn write_frame(w: &mut impl Write, v: &Plain, scratch: &mut Vec<u8>) -> io::Result<()> {
    encode_frame(v, scratch);
    w.write_all(scratch)
}

/// A loopback listener with SO_REUSEADDR and the given backlog (what std
/// does, but with a backlog we choose so all sides use the same one).
pub fn raw_listener(backlog: i32) -> TcpListener {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(backlog).expect("listen");
    socket.into()
}

/// A connected stream with TCP_NODELAY, as every raw baseline uses.
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("TCP_NODELAY");
    s
}

// ---------------------------------------------------------------------------
// Statistics and the alternating harness.

/// Median (mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile of already sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One side of a comparison: a name and a closure running one repetition.
pub struct Side<'a, T> {
    pub name: &'static str,
    pub run: Box<dyn FnMut() -> T + 'a>,
}

impl<'a, T> Side<'a, T> {
    pub fn new(name: &'static str, run: impl FnMut() -> T + 'a) -> Side<'a, T> {
        Side {
            name,
            run: Box::new(run),
        }
    }
}

/// Runs the sides A B C A B C ... `reps` times; results per side, in order.
/// `describe` renders one result for the progress lines on stderr.
/// Sides not in `opts.only` (when it is not empty) are skipped: their
/// result lists stay empty and their figures print `-`.
pub fn alternate<T>(
    scenario: &str,
    opts: &Opts,
    sides: &mut [Side<'_, T>],
    describe: impl Fn(&T) -> String,
) -> Vec<Vec<T>> {
    let reps = opts.reps;
    let mut results: Vec<Vec<T>> = sides.iter().map(|_| Vec::new()).collect();
    for rep in 1..=reps {
        for (i, side) in sides.iter_mut().enumerate() {
            if !opts.only.is_empty() && !opts.only.iter().any(|s| s == side.name) {
                continue;
            }
            let started = Instant::now();
            let r = (side.run)();
            eprintln!(
                "  [{scenario}] rep {rep}/{reps} {:<16} {}  ({:.1} s)",
                side.name,
                describe(&r),
                started.elapsed().as_secs_f64()
            );
            results[i].push(r);
        }
    }
    results
}

// ---------------------------------------------------------------------------
// Figures: RESULT lines and the human-readable table.

/// One reported figure: a metric of one scenario, the median for each side.
#[derive(Debug, Clone)]
pub struct Figure {
    pub scenario: String,
    pub metric: String,
    pub unit: String,
    pub tablenet: Option<f64>,
    pub raw: Option<f64>,
    pub message_io: Option<f64>,
    /// tokio, multi-thread runtime (default worker count).
    pub tokio: Option<f64>,
    /// tokio, `current_thread` runtime.
    pub tokio_ct: Option<f64>,
}

impl Figure {
    /// A figure without tokio columns (add them with [`Figure::with_tokio`]).
    pub fn new(
        scenario: &str,
        metric: &str,
        unit: &str,
        tablenet: Option<f64>,
        raw: Option<f64>,
        message_io: Option<f64>,
    ) -> Figure {
        Figure {
            scenario: scenario.into(),
            metric: metric.into(),
            unit: unit.into(),
            tablenet,
            raw,
            message_io,
            tokio: None,
            tokio_ct: None,
        }
    }

    /// The same figure with the tokio multi-thread and current-thread columns.
    pub fn with_tokio(mut self, tokio: Option<f64>, tokio_ct: Option<f64>) -> Figure {
        self.tokio = tokio;
        self.tokio_ct = tokio_ct;
        self
    }

    /// The machine-readable line the issue specifies; the tokio keys come
    /// last, so readers of the older lines still find theirs in place.
    pub fn result_line(&self) -> String {
        format!(
            "RESULT scenario={} metric={} unit={} tablenet={} raw={} message_io={} ratio_raw={} ratio_message_io={} tokio={} tokio_ct={} ratio_tokio={} ratio_tokio_ct={}",
            self.scenario,
            self.metric,
            self.unit,
            fmt_opt(self.tablenet),
            fmt_opt(self.raw),
            fmt_opt(self.message_io),
            fmt_opt(ratio(self.tablenet, self.raw)),
            fmt_opt(ratio(self.tablenet, self.message_io)),
            fmt_opt(self.tokio),
            fmt_opt(self.tokio_ct),
            fmt_opt(ratio(self.tablenet, self.tokio)),
            fmt_opt(ratio(self.tablenet, self.tokio_ct)),
        )
    }

    /// Parses a RESULT line back (for the `chart` subcommand). Lines saved
    /// before the tokio sides existed have no `tokio` keys: those stay `None`.
    pub fn parse(line: &str) -> Option<Figure> {
        let rest = line.trim().strip_prefix("RESULT ")?;
        let mut f = Figure::new("", "", "", None, None, None);
        for field in rest.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            let num = v.parse::<f64>().ok();
            match k {
                "scenario" => f.scenario = v.into(),
                "metric" => f.metric = v.into(),
                "unit" => f.unit = v.into(),
                "tablenet" => f.tablenet = num,
                "raw" => f.raw = num,
                "message_io" => f.message_io = num,
                "tokio" => f.tokio = num,
                "tokio_ct" => f.tokio_ct = num,
                _ => {}
            }
        }
        (!f.scenario.is_empty()).then_some(f)
    }

    /// Whether a larger value is better, judged by the unit.
    pub fn higher_is_better(&self) -> bool {
        self.unit.ends_with("per_s")
    }
}

/// tablenet divided by the baseline.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

/// Three significant digits, no exponent; `-` for none.
pub fn fmt_opt(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => fmt_num(v),
        _ => "-".into(),
    }
}

pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        // Three significant digits for small ratios too (0.000150, not 0.000).
        let decimals = (-a.log10()).ceil() as usize + 2;
        format!("{v:.decimals$}")
    }
}

/// Human-friendly: 1.23M, 456k, 789.
pub fn fmt_si(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "-".into()
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else {
        fmt_num(v)
    }
}

/// Prints the human-readable table, then the RESULT lines.
pub fn report(title: &str, notes: &[String], figures: &[Figure]) {
    println!();
    println!("== {title}");
    for n in notes {
        println!("   {n}");
    }
    println!(
        "   {:<36} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "metric (unit)",
        "tablenet",
        "raw",
        "message-io",
        "tokio",
        "tokio-ct",
        "/raw",
        "/msg-io",
        "/tokio",
        "/tok-ct"
    );
    for f in figures {
        let si = |v: Option<f64>| v.map_or("-".to_string(), fmt_si);
        println!(
            "   {:<36} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>8} {:>8}",
            format!("{} ({})", f.metric, f.unit),
            si(f.tablenet),
            si(f.raw),
            si(f.message_io),
            si(f.tokio),
            si(f.tokio_ct),
            fmt_opt(ratio(f.tablenet, f.raw)),
            fmt_opt(ratio(f.tablenet, f.message_io)),
            fmt_opt(ratio(f.tablenet, f.tokio)),
            fmt_opt(ratio(f.tablenet, f.tokio_ct)),
        );
    }
    for f in figures {
        println!("{}", f.result_line());
    }
}

/// Per-repetition values of one side, for the notes.
pub fn reps_line(name: &str, values: &[f64], unit: &str) -> String {
    let v: Vec<String> = values.iter().map(|v| fmt_si(*v)).collect();
    format!("{name:<16} per rep ({unit}): {}", v.join(" "))
}

// ---------------------------------------------------------------------------
// Process facts.

/// The load averages over 1, 5 and 15 minutes, as `uptime` prints them
/// (from /proc/loadavg), for the notes of runs on a shared machine.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let v: Vec<&str> = text.split_whitespace().take(3).collect();
    if v.len() == 3 {
        v.join(", ")
    } else {
        "unknown".into()
    }
}

/// (VmRSS in KiB, thread count) of this process, from /proc/self/status.
pub fn rss_and_threads() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("Threads:"))
}

/// Pins every thread of this process to `cpu` (new threads inherit the mask
/// of the thread that creates them). Returns the previous mask of the calling
/// thread, to restore with [`restore_affinity`].
pub fn pin_process(cpu: usize) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; the libc calls get valid pointers and sizes.
    unsafe {
        let mut old: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(
            libc::sched_getaffinity(0, size, &mut old),
            0,
            "sched_getaffinity"
        );
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set_all_threads(&set);
        // Check that it took, from a new thread (which inherits our mask).
        let n = std::thread::spawn(|| {
            let mut now: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut now);
            libc::CPU_COUNT(&now)
        })
        .join()
        .expect("affinity check thread");
        assert_eq!(n, 1, "pinning to CPU {cpu} did not take");
        old
    }
}

/// Restores the mask [`pin_process`] returned, on every thread.
pub fn restore_affinity(old: &libc::cpu_set_t) {
    set_all_threads(old);
}

fn set_all_threads(set: &libc::cpu_set_t) {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    let tids: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for tid in tids {
        // SAFETY: valid pointer and size; a thread that has exited meanwhile
        // just makes the call fail, which is fine.
        unsafe {
            libc::sched_setaffinity(tid, size, set);
        }
    }
}

/// Waits for `f` to return true, polling; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The key used for encrypted runs (64 hex digits: AES-256-GCM).
pub const AES256_KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
