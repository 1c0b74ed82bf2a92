//! /proc readings of another process (a server child): resident memory,
//! its peak and the peak's reset, CPU time per thread, the load average.

/// A `Vm*` field of /proc/PID/status, in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// (VmRSS, VmHWM) in KiB; 0 when unreadable.
pub fn rss_hwm(pid: u32) -> (u64, u64) {
    (
        status_kib(pid, "VmRSS").unwrap_or(0),
        status_kib(pid, "VmHWM").unwrap_or(0),
    )
}

/// Resets the peak (VmHWM) to the current RSS: "5" to /proc/PID/clear_refs.
pub fn reset_hwm(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// One thread's name and CPU time (user + system), in seconds.
#[derive(Debug, Clone)]
pub struct ThreadCpu {
    pub tid: u32,
    pub name: String,
    pub seconds: f64,
}

/// CPU time of every thread of `pid`.
pub fn thread_cpu(pid: u32) -> Vec<ThreadCpu> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) in "(...)":
        // state is field 3, utime 14, stime 15.
        let after = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        let name = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Some(ThreadCpu {
            tid,
            name,
            seconds: ticks as f64 / hz,
        })
    })
    .collect()
}

/// The thread that used the most CPU between two readings, and the total.
pub fn busiest(before: &[ThreadCpu], after: &[ThreadCpu]) -> (Option<ThreadCpu>, f64) {
    let mut best: Option<ThreadCpu> = None;
    let mut total = 0.0;
    for t in after {
        let was = before
            .iter()
            .find(|b| b.tid == t.tid)
            .map_or(0.0, |b| b.seconds);
        let d = ThreadCpu {
            seconds: t.seconds - was,
            ..t.clone()
        };
        total += d.seconds;
        if best.as_ref().is_none_or(|b| d.seconds > b.seconds) {
            best = Some(d);
        }
    }
    (best, total)
}

/// The three load averages, as `uptime` shows them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "-".into())
}

/// The one-minute load average.
pub fn loadavg_1() -> String {
    loadavg()
        .split_whitespace()
        .next()
        .unwrap_or("-")
        .to_string()
}
