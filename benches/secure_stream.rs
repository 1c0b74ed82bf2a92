//! Encryption cost: streaming 64 KiB tables client -> server over loopback,
//! AES-256-GCM against the same stream without a key, alternating
//! repetitions in one process and comparing medians.
//!
//! Run: `cargo bench --bench secure_stream`

use std::time::{Duration, Instant};

use tablenet::{Config, EventKind, Network, OverflowPolicy, SendError, Value, table};

const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const PAYLOAD: usize = 64 * 1024;
const REPS: usize = 5;
const REP_TIME: Duration = Duration::from_secs(2);

/// One repetition: MB/s of table payload delivered to the server application.
fn stream(key: Option<&str>) -> f64 {
    let mut config = Config::default();
    config.overflow = OverflowPolicy::Lossless;
    let server_net = Network::with_config(config.clone()).expect("valid config");
    let client_net = Network::with_config(config).expect("valid config");
    let server = server_net.server("127.0.0.1", 0, key).expect("server");
    let client = client_net
        .client("127.0.0.1", server.port(), key)
        .expect("client");
    client
        .wait_for_connect(Duration::from_secs(5))
        .expect("connect");
    let message: Value = table! { "Blob" => vec![0xA5u8; PAYLOAD] }.into();

    let sender = std::thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < REP_TIME {
            match client.send(&message) {
                Ok(()) => sent += 1,
                // Back off until the queue has drained; never spin.
                Err(SendError::QueueFull { .. }) => loop {
                    let events = client_net.wait_events(Duration::from_secs(5));
                    if events
                        .iter()
                        .any(|e| matches!(e.kind, EventKind::Drained { .. }))
                    {
                        break;
                    }
                },
                Err(e) => panic!("send failed: {e}"),
            }
        }
        client.send(&Value::from("end")).expect("end marker");
        (sent, client, client_net)
    });

    let start = Instant::now();
    let mut connections = Vec::new();
    let mut bytes = 0u64;
    'outer: loop {
        for event in server_net.wait_events(Duration::from_secs(10)) {
            match event.kind {
                EventKind::Connect { connection, .. } => connections.push(connection),
                EventKind::Receive { packet, .. } => {
                    if packet.as_str() == Some("end") {
                        break 'outer;
                    }
                    bytes += packet["Blob"].as_bytes().map_or(0, |b| b.len() as u64);
                }
                _ => {}
            }
        }
    }
    let elapsed = start.elapsed();
    let (sent, _client, _client_net) = sender.join().expect("sender");
    assert_eq!(bytes, sent * PAYLOAD as u64, "every table arrived");
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (mut plain, mut sealed) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        plain.push(stream(None));
        sealed.push(stream(Some(KEY)));
    }
    let (p, s) = (median(plain.clone()), median(sealed.clone()));
    println!("plain MB/s per rep: {plain:.0?}");
    println!("aes-256-gcm MB/s per rep: {sealed:.0?}");
    println!(
        "RESULT scenario=secure_stream metric=throughput_64k_tables unit=MB_per_s aes256gcm={s:.0} plain={p:.0} ratio={:.2}",
        s / p
    );
}
