//! Child processes of the `pressure` scenarios: the parent's handle (spawn,
//! read lines with a deadline, kill on drop) and the child's side (commands
//! from stdin, exit when the parent goes, a hard time limit).

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// A child process running this binary with a `__pressure-*` subcommand.
/// Its stdout lines arrive through a channel, so every read has a deadline.
/// Dropping it kills the child (if still running) and reaps it.
pub struct Child {
    proc: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    name: String,
}

impl Child {
    /// Starts `args` (the first is the subcommand).
    pub fn spawn(args: &[String]) -> Result<Child, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        let mut proc = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", args.join(" ")))?;
        let stdin = proc.stdin.take();
        let stdout = proc.stdout.take().ok_or("child stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Child {
            proc,
            stdin,
            lines,
            name: args.first().cloned().unwrap_or_default(),
        })
    }

    /// The child's process id (for /proc readings).
    /// Starts a `__pressure-server MODE` child with the run's options and
    /// waits (up to 10 s) for the port it listens on.
    pub fn server(mode: &str, child_args: Vec<String>) -> Result<(Child, u16), String> {
        let mut args = vec!["__pressure-server".to_string(), mode.to_string()];
        args.extend(child_args);
        let mut srv = Child::spawn(&args)?;
        let port = srv
            .expect("PORT", Instant::now() + std::time::Duration::from_secs(10))?
            .trim_start_matches("PORT ")
            .parse()
            .map_err(|e| format!("port: {e}"))?;
        Ok((srv, port))
    }

    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// True once the child process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.proc.try_wait(), Ok(Some(_)))
    }

    /// Writes one command line to the child.
    pub fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("child stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: write to child: {e}", self.name))
    }

    /// Closes the child's stdin (children take EOF as "stop").
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The first line starting with `prefix` before `deadline`; other lines
    /// are shown on stderr and skipped.
    pub fn expect(&mut self, prefix: &str, deadline: Instant) -> Result<String, String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(line) => eprintln!("  [{}] {line}", self.name),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{}: no '{prefix}' line in time", self.name));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.proc.wait().map(|s| s.to_string());
                    return Err(format!(
                        "{}: exited before its '{prefix}' line ({})",
                        self.name,
                        status.unwrap_or_else(|e| e.to_string())
                    ));
                }
            }
        }
    }

    /// A line starting with `prefix` if one has arrived, without waiting.
    pub fn try_expect(&mut self, prefix: &str) -> Option<String> {
        while let Ok(line) = self.lines.try_recv() {
            if line.starts_with(prefix) {
                return Some(line);
            }
            eprintln!("  [{}] {line}", self.name);
        }
        None
    }

    /// Sends `report` and waits (up to 5 s) for the `STATE` answer.
    pub fn state(&mut self) -> Result<std::collections::HashMap<String, String>, String> {
        self.send("report")?;
        let line = self.expect("STATE", Instant::now() + Duration::from_secs(5))?;
        Ok(super::fields(&line))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stdin = None;
        // Our own child, by its handle: it may still be running if a run failed.
        if let Ok(None) = self.proc.try_wait() {
            let _ = self.proc.kill();
        }
        let _ = self.proc.wait();
    }
}

/// Child side: commands from stdin, one per line. At EOF (the parent is
/// gone or done) the process exits at once, without lingering.
pub fn stdin_commands() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
        std::process::exit(0);
    });
    rx
}

/// Child side: ends the process after `limit`, whatever it is doing, so a
/// child can never outlive a failed parent for long.
pub fn hard_limit(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("pressure child: hard time limit of {limit:?} reached, exiting");
        std::process::exit(3);
    });
}

/// Child side: prints a line and flushes it.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
