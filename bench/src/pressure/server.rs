//! The server child `__pressure-server MODE [--max-frame N] [--overwrite]`
//! of `partial`, `amplify` and `bulk`, in its own process so that its
//! memory is its own.
//!
//! It prints `PORT p`, then serves; on the command `report` it prints a
//! `STATE key=value ...` line; at EOF on stdin it exits at once. Modes:
//! - `sink`: counts numbered messages `{seq=n}` (loss and order);
//! - `echo`: the same, and sends each one straight back; a table of more
//!   than 1,000 entries (the amplification frame) is recorded, not echoed;
//! - `slow`: a slow application: sleeps 50 ms, then takes all events.
//!
//! Error and close events are counted, with the first texts.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use tablenet::{Connection, ConnectionId, EventKind, Network, Source, Value};

use super::PressureOpts;
use super::child::{hard_limit, say, stdin_commands};

/// Microseconds since the Unix epoch (to compare times across processes).
pub fn wall_us(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[derive(Default)]
struct Stats {
    connects: u64,
    received: u64,
    in_order: u64,
    out_of_order: u64,
    gaps: u64,
    next_seq: i64,
    payload_bytes: u64,
    other: u64,
    echoed: u64,
    echo_refused: u64,
    errors: u64,
    first_errors: Vec<String>,
    closes: u64,
    first_close: Option<String>,
    dropped: u64,
    big: Option<String>,
}

impl Stats {
    fn line(&self) -> String {
        let errors = if self.first_errors.is_empty() {
            "-".to_string()
        } else {
            super::sanitize(&self.first_errors.join(" | "))
        };
        format!(
            "STATE connects={} received={} in_order={} out_of_order={} gaps={} payload_bytes={} other={} echoed={} echo_refused={} errors={} closes={} dropped={} first_close={} {} first_errors={}",
            self.connects,
            self.received,
            self.in_order,
            self.out_of_order,
            self.gaps,
            self.payload_bytes,
            self.other,
            self.echoed,
            self.echo_refused,
            self.errors,
            self.closes,
            self.dropped,
            super::sanitize(self.first_close.as_deref().unwrap_or("-")),
            self.big.as_deref().unwrap_or("big=none"),
            errors,
        )
    }

    /// Loss and order of a numbered message.
    fn numbered(&mut self, seq: i64) {
        self.received += 1;
        if seq == self.next_seq {
            self.in_order += 1;
            self.next_seq += 1;
        } else if seq > self.next_seq {
            self.gaps += (seq - self.next_seq) as u64;
            self.next_seq = seq + 1;
        } else {
            self.out_of_order += 1;
        }
    }

    fn error(&mut self, text: String, at: SystemTime, echo: bool) {
        self.errors += 1;
        if self.first_errors.len() < 3 && !self.first_errors.contains(&text) {
            self.first_errors.push(text.clone());
        }
        if echo && self.big.is_none() {
            // In `echo` mode the only connection that can fail is the attacker's.
            self.big_seen("error", at, 0, &text);
        }
    }

    fn big_seen(&mut self, kind: &str, io_time: SystemTime, entries: usize, error: &str) {
        self.big = Some(format!(
            "big={kind} big_io_wall_us={} big_app_wall_us={} big_entries={entries} big_error={}",
            wall_us(io_time),
            wall_us(SystemTime::now()),
            super::sanitize(error),
        ));
    }
}

/// Entry point of `__pressure-server MODE ...`.
pub fn server_main(args: &[String]) {
    hard_limit(Duration::from_secs(180));
    let mode = args.first().cloned().unwrap_or_default();
    let (opts, _) = PressureOpts::parse(&args[1.min(args.len())..]).unwrap_or_else(|e| {
        eprintln!("__pressure-server: {e}");
        std::process::exit(2)
    });
    assert!(
        ["sink", "echo", "slow"].contains(&mode.as_str()),
        "unknown mode {mode}"
    );
    let net = Network::with_config(opts.config()).expect("valid config");
    let server = net.bind("127.0.0.1:0", None).expect("bind on loopback");
    let commands = stdin_commands();
    say(&format!("PORT {}", server.port()));

    let mut stats = Stats::default();
    let mut conns: HashMap<ConnectionId, Connection> = HashMap::new();
    loop {
        let events = if mode == "slow" {
            std::thread::sleep(Duration::from_millis(50));
            net.poll_events()
        } else {
            net.wait_events(Duration::from_millis(5))
        };
        for event in events {
            match event.kind {
                EventKind::Connect { connection, .. } => {
                    stats.connects += 1;
                    conns.insert(connection.id(), connection);
                }
                EventKind::Receive {
                    from: Source::Connection(id),
                    packet,
                } => receive(&mode, &mut stats, &conns, id, packet, event.wall_time),
                EventKind::Error { error, .. } => {
                    stats.error(error.to_string(), event.wall_time, mode == "echo")
                }
                EventKind::ClientClose {
                    connection, reason, ..
                } => {
                    stats.closes += 1;
                    stats.first_close.get_or_insert_with(|| reason.to_string());
                    conns.remove(&connection);
                }
                EventKind::Dropped { count } => stats.dropped += count,
                _ => {}
            }
        }
        while let Ok(cmd) = commands.try_recv() {
            if cmd.trim() == "report" {
                say(&stats.line());
            }
        }
    }
}

fn receive(
    mode: &str,
    stats: &mut Stats,
    conns: &HashMap<ConnectionId, Connection>,
    id: ConnectionId,
    packet: Value,
    io_time: SystemTime,
) {
    if let Some(seq) = packet.get("seq").and_then(Value::as_i64) {
        stats.numbered(seq);
        if let Some(data) = packet.get("data").and_then(Value::as_bytes) {
            stats.payload_bytes += data.len() as u64;
        }
        if mode == "echo" {
            match conns.get(&id).map(|c| c.send(&packet)) {
                Some(Ok(())) => stats.echoed += 1,
                _ => stats.echo_refused += 1,
            }
        }
        return;
    }
    let entries = packet.as_table().map_or(0, |t| t.len());
    if entries > 1000 && stats.big.is_none() {
        stats.big_seen("receive", io_time, entries, "-");
        // Freeing it is the application's cost too: time it.
        let started = Instant::now();
        drop(packet);
        if let Some(big) = stats.big.as_mut() {
            big.push_str(&format!(
                " big_drop_ms={:.1}",
                started.elapsed().as_secs_f64() * 1e3
            ));
        }
        return;
    }
    stats.other += 1;
}
