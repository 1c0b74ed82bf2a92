//! `game`: a 60 Hz game server with 50 players, with and without one
//! client flooding it.
//!
//! The server runs here, in the parent process: each tick it takes every
//! event with `poll_events()`, acks each player command `{p, n}` with
//! `{ack = n}` to that connection, sends one world state (a table of ~50
//! entries) to every connection but the flooder's, then sleeps to the next
//! tick boundary (fixed rate; a late tick starts the next one at once, no
//! catch-up). The flooder (`__pressure-flood`) starts first; once it floods,
//! the players (`__pressure-players`) connect and play for the measured
//! window (10 s, 3 s with `--quick`). Ticks are counted in that window.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tablenet::{Connection, ConnectionId, EventKind, Network, SendError, Source, Table, Value};

use super::child::Child;
use super::players::COMMAND_PERIOD;
use super::{Line, PressureOpts, field_f, fields};

/// Players in the game.
const PLAYERS: usize = 50;

/// The scenario: a baseline run, then one with the flooder (`--no-flood`:
/// the baseline only).
pub fn run(opts: &PressureOpts) -> Result<(), String> {
    run_one(opts, false)?;
    if !opts.no_flood {
        run_one(opts, true)?;
    }
    Ok(())
}

/// The server's counters.
#[derive(Default)]
struct Server {
    conns: HashMap<ConnectionId, Connection>,
    connects: u64,
    player_conns: HashSet<ConnectionId>,
    flood_conn: Option<ConnectionId>,
    commands: u64,
    acks_sent: u64,
    acks_refused: u64,
    flood_received: u64,
    closes: u64,
    errors: u64,
    first_error: Option<String>,
    dropped: u64,
    worlds_refused: u64,
}

impl Server {
    /// One tick: every event, the acks, the world state.
    fn tick(&mut self, net: &Network, server: &tablenet::Server, tick: u64) {
        for event in net.poll_events() {
            match event.kind {
                EventKind::Connect { connection, .. } => {
                    self.connects += 1;
                    self.conns.insert(connection.id(), connection);
                }
                EventKind::Receive {
                    from: Source::Connection(id),
                    packet,
                } => self.receive(id, &packet),
                EventKind::ClientClose { connection, .. } => {
                    self.closes += 1;
                    self.conns.remove(&connection);
                }
                EventKind::Error { error, .. } => {
                    self.errors += 1;
                    self.first_error.get_or_insert_with(|| error.to_string());
                }
                EventKind::Dropped { count } => self.dropped += count,
                _ => {}
            }
        }
        let targets: Vec<ConnectionId> = self
            .conns
            .keys()
            .copied()
            .filter(|id| Some(*id) != self.flood_conn)
            .collect();
        let accepted = server.send(&world_state(tick), &targets);
        self.worlds_refused += (targets.len() - accepted) as u64;
    }

    fn receive(&mut self, id: ConnectionId, packet: &Value) {
        if let Some(n) = packet.get("n").and_then(Value::as_i64) {
            self.commands += 1;
            self.player_conns.insert(id);
            let ack: Value = tablenet::table! { "ack" => n }.into();
            match self.conns.get(&id).map(|c| c.send(&ack)) {
                Some(Ok(())) => self.acks_sent += 1,
                Some(Err(SendError::QueueFull { .. })) | Some(Err(_)) | None => {
                    self.acks_refused += 1
                }
            }
        } else if packet.get("f").is_some() {
            self.flood_received += 1;
            self.flood_conn = Some(id);
        }
    }
}

/// `{tick = t, 1, 2, ..., 49}`: about 50 entries of positions.
fn world_state(tick: u64) -> Value {
    let mut t = Table::from_sequence(
        (0..49)
            .map(|i| Value::Integer(i * 7 + tick as i64))
            .collect(),
    );
    t.set("tick", tick as i64);
    t.into()
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum Phase {
    /// Waiting for the flooder to connect and start.
    Flood,
    /// Players started; waiting for their `GO`.
    Join,
    /// The measured window, from `GO`.
    Window,
    /// Window over; waiting for the players' report.
    Report,
}

fn run_one(opts: &PressureOpts, flood: bool) -> Result<(), String> {
    let net = Network::with_config(opts.config()).map_err(|e| e.to_string())?;
    let server = net.bind("127.0.0.1:0", None).map_err(|e| e.to_string())?;
    let port = server.port().to_string();
    let window = Duration::from_secs(opts.pick(10, 3));
    let started = Instant::now();
    let deadline = started + window + Duration::from_secs(45);
    let child_args = |mut a: Vec<String>| {
        a.extend(opts.child_args());
        a
    };
    let mut flooder = if flood {
        Some(Child::spawn(&child_args(vec![
            "__pressure-flood".into(),
            port.clone(),
        ]))?)
    } else {
        None
    };
    let mut players: Option<Child> = None;
    let mut phase = Phase::Flood;
    let mut flood_go: Option<Instant> = None;
    let (mut go_line, mut report_line) = (String::new(), String::new());
    let mut flood_line: Option<String> = None;
    let mut window_start = started;
    let (mut ticks_in_window, mut late_ticks, mut worst_tick_ms) = (0u64, 0u64, 0.0f64);
    let (mut flood_at_start, mut flood_at_end) = (0, 0);
    let mut reports_at: Option<Instant> = None;
    let mut s = Server::default();
    let mut next = Instant::now();
    let mut tick = 0u64;
    loop {
        if Instant::now() > deadline {
            return Err(format!("game run did not finish in time (phase {phase:?})"));
        }
        let tick_start = Instant::now();
        s.tick(&net, &server, tick);
        tick += 1;
        if phase == Phase::Window && tick_start < window_start + window {
            ticks_in_window += 1;
            worst_tick_ms = worst_tick_ms.max(tick_start.elapsed().as_secs_f64() * 1e3);
        }
        match phase {
            Phase::Flood => {
                if let Some(f) = flooder.as_mut() {
                    if flood_go.is_none() && f.try_expect("GO").is_some() {
                        flood_go = Some(Instant::now());
                    }
                    if flood_go.is_none() && started.elapsed() > Duration::from_secs(15) {
                        return Err("the flooder did not connect in 15 s".into());
                    }
                }
                // Start the players once the flood is on (or after 1 s of it).
                let flooding = flood_go.is_some_and(|t| {
                    s.flood_received >= 1000 || t.elapsed() > Duration::from_secs(1)
                });
                if !flood || flooding {
                    let args = vec![
                        "__pressure-players".into(),
                        port.clone(),
                        PLAYERS.to_string(),
                        window.as_millis().to_string(),
                    ];
                    players = Some(Child::spawn(&child_args(args))?);
                    phase = Phase::Join;
                }
            }
            Phase::Join => {
                if let Some(line) = players.as_mut().and_then(|p| p.try_expect("GO")) {
                    go_line = line;
                    window_start = Instant::now();
                    flood_at_start = s.flood_received;
                    phase = Phase::Window;
                }
            }
            Phase::Window | Phase::Report => {
                if phase == Phase::Window && tick_start >= window_start + window {
                    // Window over: the flood stops, so the players' last
                    // commands can come through while they wait for acks.
                    phase = Phase::Report;
                    flood_at_end = s.flood_received;
                    if let Some(f) = flooder.as_mut() {
                        f.close_stdin();
                    }
                }
                if report_line.is_empty()
                    && let Some(line) = players.as_mut().and_then(|p| p.try_expect("PLAYERS"))
                {
                    report_line = line;
                }
                if phase == Phase::Report
                    && flood_line.is_none()
                    && let Some(f) = flooder.as_mut()
                {
                    flood_line = f.try_expect("FLOOD");
                }
                if !report_line.is_empty() && (flooder.is_none() || flood_line.is_some()) {
                    // Both reported: keep serving while they close cleanly
                    // (up to 3 s), so their exits are not counted as errors.
                    let at = *reports_at.get_or_insert_with(Instant::now);
                    let exited = players.as_mut().is_none_or(Child::exited)
                        && flooder.as_mut().is_none_or(Child::exited);
                    if exited || at.elapsed() > Duration::from_secs(3) {
                        break;
                    }
                }
            }
        }
        // Fixed rate without catch-up.
        next += COMMAND_PERIOD;
        let now = Instant::now();
        if next <= now {
            late_ticks += 1;
            next = now;
        } else {
            std::thread::sleep(next - now);
        }
    }
    let flood_in_window = flood_at_end - flood_at_start;
    drop(players);
    drop(flooder);
    let _ = net.shutdown(Duration::from_millis(500));
    report(
        opts,
        flood,
        window,
        &s,
        ticks_in_window,
        late_ticks,
        worst_tick_ms,
        flood_in_window,
        &go_line,
        &report_line,
        flood_line.as_deref(),
    )
}

#[allow(clippy::too_many_arguments)]
fn report(
    opts: &PressureOpts,
    flood: bool,
    window: Duration,
    s: &Server,
    ticks: u64,
    late_ticks: u64,
    worst_tick_ms: f64,
    flood_in_window: u64,
    go_line: &str,
    players_line: &str,
    flood_line: Option<&str>,
) -> Result<(), String> {
    let p = fields(players_line);
    let go = fields(go_line);
    let fl = flood_line.map(fields).unwrap_or_default();
    let hz = ticks as f64 / window.as_secs_f64();
    let joined = field_f(&p, "joined");
    let p99 = field_f(&p, "ack_p99_ms");
    let lost = field_f(&p, "unacked");
    let ooo = field_f(&p, "out_of_order");
    let mut line = Line::new("game", opts);
    line.set("flood", super::yes_no(flood));
    line.set("players", PLAYERS);
    line.num("window_s", window.as_secs_f64());
    line.set("ticks", ticks);
    line.num("hz", hz);
    line.set("late_ticks", late_ticks);
    line.num("worst_tick_ms", worst_tick_ms);
    line.set("server_connects", s.connects);
    line.set("players_seen_by_server", s.player_conns.len());
    line.set(
        "players_connected",
        go.get("connected").map_or("-", String::as_str),
    );
    line.num("players_joined", joined);
    for k in [
        "sent",
        "acked",
        "unacked",
        "out_of_order",
        "unknown_acks",
        "send_refused",
        "closed_by_server",
        "worlds_per_player",
        "ack_p50_ms",
        "ack_p99_ms",
        "ack_max_ms",
    ] {
        line.set(k, p.get(k).map_or("-", String::as_str));
    }
    line.set("server_commands", s.commands);
    line.set("server_acks_refused", s.acks_refused);
    line.set("server_worlds_refused", s.worlds_refused);
    line.set("flood_received", s.flood_received);
    line.set("flood_received_in_window", flood_in_window);
    for k in ["sent", "queue_full", "drained", "closed"] {
        line.set(&format!("flood_{k}"), fl.get(k).map_or("-", String::as_str));
    }
    line.set("server_dropped", s.dropped);
    line.set("server_errors", s.errors);
    line.set("server_closes", s.closes);
    line.set("first_error", s.first_error.as_deref().unwrap_or("-"));
    line.goal("hz54", hz >= 54.0);
    line.goal("ack_p99_50ms", p99 <= 50.0);
    line.goal("all_joined", joined >= PLAYERS as f64);
    line.goal("acks_all_in_order", lost == 0.0 && ooo == 0.0);
    line.print();
    println!(
        "   game ({}, flood {}): {ticks} ticks in {:.0} s = {hz:.1} Hz ({late_ticks} late, worst {worst_tick_ms:.0} ms); {joined} of {PLAYERS} players joined; ack p50/p99/max {}/{}/{} ms; unacked {lost}, out of order {ooo}; flood received {}",
        opts.policy_name(),
        super::yes_no(flood),
        window.as_secs_f64(),
        p.get("ack_p50_ms").map_or("-", String::as_str),
        p.get("ack_p99_ms").map_or("-", String::as_str),
        p.get("ack_max_ms").map_or("-", String::as_str),
        s.flood_received,
    );
    Ok(())
}
