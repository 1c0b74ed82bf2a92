//! Server CPU per keyed handshake attempt (the Noise XNpsk3 handshake, sans
//! IO, in memory), timing only the server's calls:
//!
//! - `message 1 only`: a stranger's first message, answered with message 2
//!   (what each connection of a flood costs; it needs no key);
//! - `wrong key`: messages 1 and 3 from a client with another key, refused;
//! - `with the key`: the whole handshake, key confirmation and session
//!   included.
//!
//! The time is the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so other
//! work on the machine does not count. Each case runs in repetitions of
//! about a second, alternated, and the medians are printed.
//! Run: `cargo bench --bench handshake`

use std::hint::black_box;
use std::time::{Duration, Instant};

use tablenet::proto::secure::{CipherSuite, ClientStatic, Handshake, SecretKey};
use tablenet::proto::{FrameDecoder, Limits, Preamble};

const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const OTHER: &str = "703deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const REPS: usize = 5;
const REP_TIME: Duration = Duration::from_secs(1);

/// This thread's CPU time so far.
fn cpu_now() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

#[derive(Clone, Copy)]
enum Case {
    Message1Only,
    WrongKey,
    WithKey,
}

fn split(frame: &[u8]) -> ([u8; 4], &[u8]) {
    let (prefix, payload) = frame.split_first_chunk::<4>().expect("a frame");
    (*prefix, payload)
}

fn decode(preamble: &Preamble) -> Preamble {
    let mut bytes = Vec::new();
    preamble.encode(&mut bytes).expect("encodes");
    let mut decoder = FrameDecoder::new(&Limits::default());
    decoder.push(&bytes);
    decoder.next_preamble().expect("decodes").expect("whole")
}

/// One attempt; returns the CPU time the server's calls took.
fn attempt(case: Case, suite: CipherSuite, client_static: &ClientStatic) -> Duration {
    let server_key = SecretKey::from_hex(KEY).expect("key");
    let client_key = match case {
        Case::WrongKey => SecretKey::from_hex(OTHER).expect("key"),
        _ => server_key.clone(),
    };
    let mut client = Handshake::client(&client_key, suite, client_static);
    let client_preamble = decode(&client.preamble());
    let message1 = client.first_message().expect("message 1");

    let started = cpu_now();
    let mut server = Handshake::server(&server_key, suite);
    let server_preamble = server.preamble();
    server.receive_preamble(&client_preamble).expect("preamble");
    let (p, m) = split(&message1);
    let message2 = server.receive(p, m).expect("message 2").send;
    let mut spent = cpu_now() - started;
    if let Case::Message1Only = case {
        return spent;
    }

    client.receive_preamble(&server_preamble).expect("preamble");
    let (p, m) = split(&message2);
    let message3 = client.receive(p, m).expect("message 3").send;

    let started = cpu_now();
    let (p, m) = split(&message3);
    let result = server.receive(p, m);
    black_box(&result);
    spent += cpu_now() - started;
    match case {
        Case::WrongKey => assert!(result.is_err()),
        _ => assert!(result.expect("accepted").session.is_some()),
    }
    spent
}

/// Microseconds of server CPU per attempt over one repetition.
fn rep(case: Case, suite: CipherSuite, client_static: &ClientStatic) -> f64 {
    let started = Instant::now();
    let (mut n, mut spent) = (0u32, Duration::ZERO);
    while started.elapsed() < REP_TIME {
        spent += attempt(case, suite, client_static);
        n += 1;
    }
    spent.as_secs_f64() * 1e6 / f64::from(n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let client_static = ClientStatic::generate().expect("random");
    let cases = [
        ("message 1 only (no key needed)", Case::Message1Only),
        ("wrong key (messages 1 and 3)", Case::WrongKey),
        ("with the key (whole handshake)", Case::WithKey),
    ];
    for suite in [CipherSuite::Aes256Gcm, CipherSuite::ChaCha20Poly1305] {
        let mut results = vec![Vec::new(); cases.len()];
        for _ in 0..REPS {
            for (i, (_, case)) in cases.iter().enumerate() {
                results[i].push(rep(*case, suite, &client_static));
            }
        }
        for ((name, _), r) in cases.iter().zip(results) {
            let runs: Vec<String> = r.iter().map(|x| format!("{x:.1}")).collect();
            println!(
                "{suite}: server CPU per attempt, {name}: median {:.1} us (runs: {})",
                median(r.clone()),
                runs.join(", ")
            );
        }
    }
}
