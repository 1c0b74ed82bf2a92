//! Codec benchmarks, each against bincode 2 in the same run.
//!
//! 1. The seed's table `{OpCode=10, Data="From server"}`: tablenet's value
//!    codec (frame + value, with all its limits) against plain bincode on a
//!    serde-derived value type of the same shape.
//! 2. A world state of 50 players (nested structs, `Vec`s, strings,
//!    floats), sent as a Rust struct: the typed path (`encode_typed_message`
//!    / `decode_typed`, straight between the struct and the wire bytes) and
//!    the `Value` path (`to_value` + `encode_message` / `decode_value` +
//!    `from_value`) against bincode 2 on the same struct.
//! 3. 64 KiB of bytes in a struct field: a plain `Vec<u8>` (a table of
//!    integers on the wire) against `#[serde(with = "serde_bytes")]` (one
//!    string).
//!
//! Repetitions alternate A B C ... in one process and the medians are
//! compared, because these machines are noisy.
//!
//! Run: `cargo bench --bench codec`

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tablenet::proto::{Limits, decode_typed, decode_value, encode_message, encode_typed_message};
use tablenet::{Value, from_value, table, to_value};

/// What a user without tablenet would write: a derived untyped value.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
enum PlainValue {
    Nil,
    Boolean(bool),
    Integer(i64),
    Number(f64),
    String(String),
    Table(Vec<PlainValue>, Vec<(PlainValue, PlainValue)>),
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct WorldState {
    tick: u64,
    time: f64,
    map: String,
    players: Vec<Player>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Player {
    id: u32,
    name: String,
    position: Vec3,
    velocity: Vec3,
    health: f32,
    team: u8,
    alive: bool,
    inventory: Vec<Item>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Vec3 {
    x: f32,
    y: f32,
    z: f32,
}

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Item {
    kind: u16,
    count: u16,
}

fn world() -> WorldState {
    let players = (0..50u32)
        .map(|i| Player {
            id: 1000 + i,
            name: format!("player-{i}"),
            position: Vec3 {
                x: i as f32 * 1.5,
                y: -(i as f32),
                z: 0.25,
            },
            velocity: Vec3 {
                x: 0.5,
                y: 0.0,
                z: -1.25,
            },
            health: 100.0 - i as f32,
            team: (i % 4) as u8,
            alive: i % 7 != 0,
            inventory: (0..(i % 4) as u16)
                .map(|k| Item {
                    kind: k * 3 + 1,
                    count: k + 1,
                })
                .collect(),
        })
        .collect();
    WorldState {
        tick: 123_456,
        time: 4567.125,
        map: "de_dust".into(),
        players,
    }
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct PlainBlob {
    data: Vec<u8>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct ByteBlob {
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
}

const REPS: usize = 9;
const REP_TIME: Duration = Duration::from_millis(300);

/// Runs `op` repeatedly for about REP_TIME; nanoseconds per call.
fn time_rep(op: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < REP_TIME {
        for _ in 0..100 {
            op();
        }
        n += 100;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Medians of alternating repetitions of each op, in order.
fn alternate(ops: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    for op in ops.iter_mut() {
        time_rep(*op);
    }
    let mut times = vec![Vec::new(); ops.len()];
    for _ in 0..REPS {
        for (op, t) in ops.iter_mut().zip(&mut times) {
            t.push(time_rep(*op));
        }
    }
    times.into_iter().map(median).collect()
}

fn seed_table() {
    let limits = Limits::default();
    let config = bincode::config::standard();
    let value: Value = table! { "OpCode" => 10, "Data" => "From server" }.into();
    let plain = PlainValue::Table(
        vec![],
        vec![
            (PlainValue::String("OpCode".into()), PlainValue::Integer(10)),
            (
                PlainValue::String("Data".into()),
                PlainValue::String("From server".into()),
            ),
        ],
    );

    let mut buf = Vec::with_capacity(64);
    let mut tablenet_op = || {
        buf.clear();
        encode_message(black_box(&value), &limits, &mut buf).unwrap();
        black_box(decode_value(&buf[5..], &limits).unwrap());
    };
    let mut buf2 = Vec::with_capacity(64);
    let mut bincode_op = || {
        buf2.clear();
        bincode::serde::encode_into_std_write(black_box(&plain), &mut buf2, config).unwrap();
        let (v, _): (PlainValue, usize) = bincode::serde::decode_from_slice(&buf2, config).unwrap();
        black_box(v);
    };
    let t = alternate(&mut [&mut tablenet_op, &mut bincode_op]);
    println!(
        "RESULT scenario=codec metric=encode_decode_seed_table unit=ns_per_msg tablenet={:.1} plain_bincode={:.1} throughput_ratio={:.2}",
        t[0],
        t[1],
        t[1] / t[0]
    );
}

fn world_state() {
    let limits = Limits::default();
    let config = bincode::config::standard();
    let state = world();

    // The bytes each encoding takes, and a check that all three read back.
    let mut typed = Vec::new();
    encode_typed_message(&state, &limits, &mut typed).unwrap();
    let mut via_value = Vec::new();
    encode_message(&to_value(&state).unwrap(), &limits, &mut via_value).unwrap();
    assert_eq!(typed, via_value, "the two paths write the same bytes");
    let bin = bincode::serde::encode_to_vec(&state, config).unwrap();
    assert_eq!(
        decode_typed::<WorldState>(&typed[5..], &limits).unwrap(),
        state
    );
    let back: WorldState = from_value(decode_value(&typed[5..], &limits).unwrap()).unwrap();
    assert_eq!(back, state);

    let mut b1 = Vec::with_capacity(typed.len());
    let mut b2 = Vec::with_capacity(typed.len());
    let mut b3 = Vec::with_capacity(bin.len());
    let mut typed_enc = || {
        b1.clear();
        encode_typed_message(black_box(&state), &limits, &mut b1).unwrap();
    };
    let mut value_enc = || {
        b2.clear();
        let v = to_value(black_box(&state)).unwrap();
        encode_message(&v, &limits, &mut b2).unwrap();
    };
    let mut bincode_enc = || {
        b3.clear();
        bincode::serde::encode_into_std_write(black_box(&state), &mut b3, config).unwrap();
    };
    let body = &typed[5..];
    let mut typed_dec = || {
        black_box(decode_typed::<WorldState>(black_box(body), &limits).unwrap());
    };
    let mut value_dec = || {
        let v = decode_value(black_box(body), &limits).unwrap();
        black_box(from_value::<WorldState>(v).unwrap());
    };
    let mut bincode_dec = || {
        let (v, _): (WorldState, usize) =
            bincode::serde::decode_from_slice(black_box(&bin), config).unwrap();
        black_box(v);
    };
    let t = alternate(&mut [
        &mut typed_enc,
        &mut value_enc,
        &mut bincode_enc,
        &mut typed_dec,
        &mut value_dec,
        &mut bincode_dec,
    ]);
    let (typed_total, value_total, bincode_total) = (t[0] + t[3], t[1] + t[4], t[2] + t[5]);
    println!(
        "RESULT scenario=world_state_50 metric=encode unit=ns typed={:.0} value_path={:.0} bincode2={:.0}",
        t[0], t[1], t[2]
    );
    println!(
        "RESULT scenario=world_state_50 metric=decode unit=ns typed={:.0} value_path={:.0} bincode2={:.0}",
        t[3], t[4], t[5]
    );
    println!(
        "RESULT scenario=world_state_50 metric=encode_plus_decode unit=ns typed={typed_total:.0} value_path={value_total:.0} bincode2={bincode_total:.0} typed_over_bincode={:.2} value_path_over_bincode={:.2}",
        typed_total / bincode_total,
        value_total / bincode_total
    );
    println!(
        "RESULT scenario=world_state_50 metric=size unit=bytes tablenet_body={} bincode2={}",
        body.len(),
        bin.len()
    );
}

fn blob() {
    let limits = Limits::default();
    let data: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let plain = PlainBlob { data: data.clone() };
    let bytes = ByteBlob { data };
    let mut out_plain = Vec::new();
    encode_typed_message(&plain, &limits, &mut out_plain).unwrap();
    let mut out_bytes = Vec::new();
    encode_typed_message(&bytes, &limits, &mut out_bytes).unwrap();
    assert_eq!(
        decode_typed::<PlainBlob>(&out_plain[5..], &limits).unwrap(),
        plain
    );
    assert_eq!(
        decode_typed::<ByteBlob>(&out_bytes[5..], &limits).unwrap(),
        bytes
    );
    let (mut b1, mut b2) = (Vec::new(), Vec::new());
    let mut plain_enc = || {
        b1.clear();
        encode_typed_message(black_box(&plain), &limits, &mut b1).unwrap();
    };
    let mut bytes_enc = || {
        b2.clear();
        encode_typed_message(black_box(&bytes), &limits, &mut b2).unwrap();
    };
    let mut plain_dec = || {
        black_box(decode_typed::<PlainBlob>(black_box(&out_plain[5..]), &limits).unwrap());
    };
    let mut bytes_dec = || {
        black_box(decode_typed::<ByteBlob>(black_box(&out_bytes[5..]), &limits).unwrap());
    };
    let t = alternate(&mut [
        &mut plain_enc,
        &mut bytes_enc,
        &mut plain_dec,
        &mut bytes_dec,
    ]);
    println!(
        "RESULT scenario=blob_64k metric=typed_path unit=ns vec_u8_encode={:.0} serde_bytes_encode={:.0} vec_u8_decode={:.0} serde_bytes_decode={:.0} vec_u8_wire_bytes={} serde_bytes_wire_bytes={}",
        t[0],
        t[1],
        t[2],
        t[3],
        out_plain.len() - 5,
        out_bytes.len() - 5
    );
}

/// For a profiler: only the typed encode (`profile_encode`) or decode
/// (`profile_decode`) of the world state, for a few seconds.
fn profile(decode: bool) {
    let limits = Limits::default();
    let state = world();
    let mut buf = Vec::new();
    encode_typed_message(&state, &limits, &mut buf).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        for _ in 0..1000 {
            if decode {
                black_box(decode_typed::<WorldState>(black_box(&buf[5..]), &limits).unwrap());
            } else {
                buf.clear();
                encode_typed_message(black_box(&state), &limits, &mut buf).unwrap();
            }
        }
    }
}

/// For an instruction counter (callgrind): exactly `COUNTED` encodes or
/// decodes of the world state, typed (`profile_encode_n`,
/// `profile_decode_n`) or bincode 2 (`bincode_encode_n`,
/// `bincode_decode_n`), so counts repeat from run to run whatever the load.
fn counted(name: &str) {
    const COUNTED: usize = 2_000;
    let limits = Limits::default();
    let config = bincode::config::standard();
    let state = world();
    let mut typed = Vec::new();
    encode_typed_message(&state, &limits, &mut typed).unwrap();
    let bin = bincode::serde::encode_to_vec(&state, config).unwrap();
    let mut buf = Vec::with_capacity(typed.len());
    for _ in 0..COUNTED {
        match name {
            "profile_encode_n" => {
                buf.clear();
                encode_typed_message(black_box(&state), &limits, &mut buf).unwrap();
            }
            "profile_decode_n" => {
                black_box(decode_typed::<WorldState>(black_box(&typed[5..]), &limits).unwrap());
            }
            "bincode_encode_n" => {
                buf.clear();
                bincode::serde::encode_into_std_write(black_box(&state), &mut buf, config).unwrap();
            }
            _ => {
                let (v, _): (WorldState, usize) =
                    bincode::serde::decode_from_slice(black_box(&bin), config).unwrap();
                black_box(v);
            }
        }
    }
}

/// For an instruction counter (callgrind): exactly `COUNTED` decodes
/// (`seed_decode_n`) or encodes (`seed_encode_n`) of the seed's table
/// `{OpCode=10, Data="From server"}` as a [`Value`], through the same
/// functions the network uses (`decode_value` on the body, `encode_message`
/// into a reused buffer).
fn seed_counted(name: &str) {
    const COUNTED: usize = 100_000;
    let limits = Limits::default();
    let value: Value = table! { "OpCode" => 10, "Data" => "From server" }.into();
    let mut buf = Vec::with_capacity(64);
    encode_message(&value, &limits, &mut buf).unwrap();
    let body = buf[5..].to_vec();
    assert_eq!(decode_value(&body, &limits).unwrap(), value);
    for _ in 0..COUNTED {
        if name == "seed_decode_n" {
            black_box(decode_value(black_box(&body), &limits).unwrap());
        } else {
            buf.clear();
            encode_message(black_box(&value), &limits, &mut buf).unwrap();
            black_box(&buf);
        }
    }
}

fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    match only.as_deref() {
        Some("profile_encode") => return profile(false),
        Some("profile_decode") => return profile(true),
        Some(
            n @ ("profile_encode_n" | "profile_decode_n" | "bincode_encode_n" | "bincode_decode_n"),
        ) => return counted(n),
        Some(n @ ("seed_decode_n" | "seed_encode_n")) => return seed_counted(n),
        _ => {}
    }
    if run("seed_table") {
        seed_table();
    }
    if run("world_state") {
        world_state();
    }
    if run("blob") {
        blob();
    }
}
