//! Codec benchmark: encode + decode of the seed's table `{OpCode=10, Data="From server"}`.
//!
//! tablenet (frame + value codec with all its limits) against plain bincode
//! on a serde-derived value type of the same shape, which does the same work
//! minus the checks. Repetitions alternate A B A B ... in one process and the
//! medians are compared, because these machines are noisy.
//!
//! Run: `cargo bench --bench codec`

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tablenet::proto::{Limits, decode_value, encode_message};
use tablenet::{Value, table};

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

const REPS: usize = 9;
const REP_TIME: Duration = Duration::from_millis(400);

/// Runs `op` repeatedly for about REP_TIME; nanoseconds per call.
fn time_rep(op: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < REP_TIME {
        for _ in 0..1000 {
            op();
        }
        n += 1000;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
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

    // Warm up, then alternate.
    time_rep(&mut tablenet_op);
    time_rep(&mut bincode_op);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..REPS {
        a.push(time_rep(&mut tablenet_op));
        b.push(time_rep(&mut bincode_op));
    }
    let (ta, tb) = (median(a), median(b));
    println!(
        "RESULT scenario=codec metric=encode_decode_seed_table unit=ns_per_msg tablenet={ta:.1} plain_bincode={tb:.1} throughput_ratio={:.2}",
        tb / ta
    );
}
