//! The client children of `game`: 50 players in one process
//! (`__pressure-players PORT N MILLIS`) and the flooder in another
//! (`__pressure-flood PORT`), each with its own `Network`, so the server
//! process (the parent) measures only itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tablenet::{Client, ClientId, EventKind, Network, SendError, Source, Value, table};

use super::PressureOpts;
use super::child::{hard_limit, say};

/// One command per player per tick of the game: 60 Hz.
pub const COMMAND_PERIOD: Duration = Duration::from_micros(16_667);

/// What one player saw.
#[derive(Default)]
struct Player {
    next_seq: i64,
    /// Commands sent and not yet acknowledged, by number.
    outstanding: BTreeMap<i64, Instant>,
    highest_ack: Option<i64>,
    acked: u64,
    out_of_order: u64,
    unknown: u64,
    worlds: u64,
    send_refused: u64,
    closed: bool,
}

fn parse_child(args: &[String], n_fixed: usize) -> (Vec<String>, PressureOpts) {
    let fixed: Vec<String> = args.iter().take(n_fixed).cloned().collect();
    let (opts, _) = PressureOpts::parse(&args[n_fixed.min(args.len())..]).unwrap_or_else(|e| {
        eprintln!("pressure child: {e}");
        std::process::exit(2)
    });
    (fixed, opts)
}

/// Entry point of `__pressure-players PORT N MILLIS ...`: connects N
/// players, says `GO`, sends one numbered command per player every 16.7 ms
/// (phases spread over the period) for MILLIS, waits up to 5 s for the
/// last acks, prints a `PLAYERS ...` line and exits.
pub fn players_main(args: &[String]) {
    hard_limit(Duration::from_secs(120));
    let (fixed, opts) = parse_child(args, 3);
    let num = |i: usize| {
        fixed
            .get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .expect("PORT N MILLIS")
    };
    let (port, n, millis) = (num(0) as u16, num(1) as usize, num(2));
    let net = Network::with_config(opts.config()).expect("valid config");
    let clients: Vec<Client> = (0..n)
        .map(|_| net.connect(("127.0.0.1", port), None).expect("client"))
        .collect();
    let index: HashMap<ClientId, usize> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id(), i))
        .collect();
    let mut players: Vec<Player> = (0..n).map(|_| Player::default()).collect();
    let (mut connected, mut connect_failed) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while connected + connect_failed < n && Instant::now() < deadline {
        for e in net.wait_events(Duration::from_millis(50)) {
            match e.kind {
                EventKind::Connected { result: Ok(()), .. } => connected += 1,
                EventKind::Connected { result: Err(_), .. } => connect_failed += 1,
                kind => handle(kind, e.time, &index, &mut players, &mut Vec::new()),
            }
        }
    }
    say(&format!(
        "GO connected={connected} connect_failed={connect_failed}"
    ));

    let mut latencies: Vec<f64> = Vec::new();
    let start = Instant::now();
    let end = start + Duration::from_millis(millis);
    let mut next: Vec<Instant> = (0..n)
        .map(|i| start + COMMAND_PERIOD.mul_f64(i as f64 / n as f64))
        .collect();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        for (i, p) in players.iter_mut().enumerate() {
            if next[i] > now || p.closed {
                continue;
            }
            let seq = p.next_seq;
            let sent_at = Instant::now();
            match clients[i].send(&table! { "p" => i as i64, "n" => seq }.into()) {
                Ok(()) => {
                    p.outstanding.insert(seq, sent_at);
                    p.next_seq += 1;
                }
                Err(SendError::Closed) => p.closed = true,
                Err(_) => p.send_refused += 1,
            }
            // Fixed rate; a late player does not burst to catch up.
            next[i] = (next[i] + COMMAND_PERIOD).max(now);
        }
        let first = next.iter().min().copied().unwrap_or(end).min(end);
        let wait = first.saturating_duration_since(Instant::now());
        for e in net.wait_events(wait) {
            handle(e.kind, e.time, &index, &mut players, &mut latencies);
        }
    }
    // The last acks: up to 5 s (the flood has stopped by now), until
    // nothing is outstanding; what is still missing then counts as unacked.
    let grace = Instant::now() + Duration::from_secs(5);
    while Instant::now() < grace
        && players
            .iter()
            .any(|p| !p.outstanding.is_empty() && !p.closed)
    {
        for e in net.wait_events(Duration::from_millis(20)) {
            handle(e.kind, e.time, &index, &mut players, &mut latencies);
        }
    }
    let (p50, p99, max) = super::latency_stats(&mut latencies);
    let sum = |f: fn(&Player) -> u64| players.iter().map(f).sum::<u64>();
    say(&format!(
        "PLAYERS connected={connected} joined={} sent={} acked={} unacked={} out_of_order={} unknown_acks={} send_refused={} closed_by_server={} worlds_per_player={:.0} ack_p50_ms={:.2} ack_p99_ms={:.2} ack_max_ms={:.2}",
        players.iter().filter(|p| p.highest_ack.is_some()).count(),
        sum(|p| p.next_seq as u64),
        sum(|p| p.acked),
        sum(|p| p.outstanding.len() as u64),
        sum(|p| p.out_of_order),
        sum(|p| p.unknown),
        sum(|p| p.send_refused),
        sum(|p| u64::from(p.closed)),
        sum(|p| p.worlds) as f64 / n.max(1) as f64,
        p50,
        p99,
        max,
    ));
    // Close cleanly (bounded), so the server sees closes, not errors.
    let _ = net.shutdown(Duration::from_secs(1));
    std::process::exit(0);
}

fn handle(
    kind: EventKind,
    time: Instant,
    index: &HashMap<ClientId, usize>,
    players: &mut [Player],
    latencies: &mut Vec<f64>,
) {
    match kind {
        EventKind::Receive {
            from: Source::Client(c),
            packet,
        } => {
            let Some(p) = index.get(&c).map(|&i| &mut players[i]) else {
                return;
            };
            if let Some(ack) = packet.get("ack").and_then(Value::as_i64) {
                match p.outstanding.remove(&ack) {
                    Some(sent) => {
                        latencies.push(time.saturating_duration_since(sent).as_secs_f64() * 1e3);
                        p.acked += 1;
                    }
                    None => p.unknown += 1,
                }
                if p.highest_ack.is_some_and(|h| ack < h) {
                    p.out_of_order += 1;
                }
                p.highest_ack = Some(p.highest_ack.map_or(ack, |h| h.max(ack)));
            } else if packet.get("tick").is_some() {
                p.worlds += 1;
            }
        }
        EventKind::ServerClose { client, .. } => {
            if let Some(&i) = index.get(&client) {
                players[i].closed = true;
            }
        }
        _ => {}
    }
}

/// Entry point of `__pressure-flood PORT ...`: one client that sends small
/// numbered tables as fast as it can (on `QueueFull` it waits up to 20 ms
/// for `Drained`, then retries) until stdin closes; then prints
/// `FLOOD sent=... queue_full=... drained=...` and exits.
pub fn flood_main(args: &[String]) {
    hard_limit(Duration::from_secs(120));
    let (fixed, opts) = parse_child(args, 1);
    let port: u16 = fixed.first().and_then(|s| s.parse().ok()).expect("PORT");
    let net = Network::with_config(opts.config()).expect("valid config");
    let client = net.connect(("127.0.0.1", port), None).expect("client");
    if let Err(e) = client.wait_for_connect(Duration::from_secs(10)) {
        say(&format!("FLOOD failed={}", super::sanitize(&e.to_string())));
        std::process::exit(1);
    }
    // A player that joined and then floods: wait (up to 5 s) for a first
    // world state, proof that the server's application holds this
    // connection. (Flooding at once can overwrite the flooder's own Connect
    // event under `Overwrite`, and the server then drops it.)
    let joined_by = Instant::now() + Duration::from_secs(5);
    let mut joined = false;
    while !joined && Instant::now() < joined_by {
        joined = net
            .wait_events(Duration::from_millis(50))
            .iter()
            .any(|e| matches!(e.kind, EventKind::Receive { .. }));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        stop2.store(true, Ordering::Relaxed);
    });
    say(&format!("GO joined={}", super::yes_no(joined)));
    let (mut sent, mut queue_full, mut drained, mut closed) = (0u64, 0u64, 0u64, false);
    let mut msg: Value = table! { "f" => 0, "pad" => "flood" }.into();
    let count_drained = |events: Vec<tablenet::Event>| {
        events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Drained { .. }))
            .count() as u64
    };
    while !stop.load(Ordering::Relaxed) {
        match client.send(&msg) {
            Ok(()) => {
                sent += 1;
                if let Some(t) = msg.as_table_mut() {
                    t.set("f", sent as i64);
                }
                if sent % 4096 == 0 {
                    drained += count_drained(net.poll_events());
                }
            }
            Err(SendError::QueueFull { .. }) => {
                queue_full += 1;
                drained += count_drained(net.wait_events(Duration::from_millis(20)));
            }
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    say(&format!(
        "FLOOD sent={sent} queue_full={queue_full} drained={drained} closed={}",
        super::yes_no(closed)
    ));
    // Close (bounded: what is still queued may not get through).
    let _ = net.shutdown(Duration::from_secs(1));
    std::process::exit(0);
}
