//! Regression tests from fuzzing (see fuzz/README.md).
//!
//! Every crash, hang or out-of-memory a fuzz target finds becomes a named
//! test here, with the input bytes inline, next to its fix. The committed
//! seed corpus (`fuzz/seeds/`) is also replayed, so `cargo test` checks the
//! properties the targets check on the inputs they start from, without
//! libFuzzer.

use std::fs;
use std::path::PathBuf;

use tablenet::Value;
use tablenet::proto::{FrameDecoder, Limits, decode_value, encode_message_to_vec};

/// Structural equality with floats compared by bit pattern (NaN == NaN).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_bits() == y.to_bits(),
        (Value::Table(x), Value::Table(y)) => {
            x.sequence_len() == y.sequence_len()
                && x.hash_len() == y.hash_len()
                && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (a, b) => a == b,
    }
}

/// The committed seeds of one fuzz target, by file name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

/// The `decode_value` target's checks on its seeds: a value or an error;
/// a value re-encodes to bytes that decode to the same value and re-encode
/// to the same length and value.
#[test]
fn decode_value_seed_corpus_round_trips() {
    let limits = Limits::default();
    let mut decoded = 0;
    for (name, body) in seeds("decode_value") {
        let Ok(value) = decode_value(&body, &limits) else {
            continue;
        };
        decoded += 1;
        let frame = encode_message_to_vec(&value, &limits).unwrap();
        let again = decode_value(&frame[5..], &limits).unwrap();
        assert!(same(&value, &again), "{name}: {value:?} became {again:?}");
        // The same bytes up to the order of hash entries: a table keeps
        // integer keys after a hole where its insertion order put them.
        let frame2 = encode_message_to_vec(&again, &limits).unwrap();
        assert_eq!(frame2.len(), frame.len(), "{name}");
        let third = decode_value(&frame2[5..], &limits).unwrap();
        assert!(same(&value, &third), "{name}: {value:?} became {third:?}");
    }
    assert!(decoded >= 20, "only {decoded} seeds decoded");
}

/// The `decode_frame` target's check on its seeds: fed byte by byte, the
/// decoder gives the same preamble, frames and error as fed at once.
#[test]
fn decode_frame_seed_corpus_is_chunking_independent() {
    #[derive(Debug, PartialEq)]
    enum Item {
        Preamble,
        Frame(Vec<u8>),
        Error,
    }
    fn run(stream: &[u8], with_preamble: bool, chunk: usize, limits: &Limits) -> Vec<Item> {
        let mut decoder = FrameDecoder::new(limits);
        let mut items = Vec::new();
        let mut preamble_done = !with_preamble;
        for piece in stream.chunks(chunk.max(1)) {
            decoder.push(piece);
            if !preamble_done {
                match decoder.next_preamble() {
                    Ok(Some(_)) => {
                        items.push(Item::Preamble);
                        preamble_done = true;
                    }
                    Ok(None) => continue,
                    Err(_) => {
                        items.push(Item::Error);
                        return items;
                    }
                }
            }
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => items.push(Item::Frame(frame.body.to_vec())),
                    Ok(None) => break,
                    Err(_) => {
                        items.push(Item::Error);
                        return items;
                    }
                }
            }
        }
        items
    }
    for (name, input) in seeds("decode_frame") {
        // [config][n][n chunk sizes][stream]
        let config = input[0];
        let stream = &input[2 + usize::from(input[1] & 0x0f)..];
        let limits = Limits::default();
        let whole = run(stream, config & 1 != 0, stream.len(), &limits);
        let bytewise = run(stream, config & 1 != 0, 1, &limits);
        assert_eq!(whole, bytewise, "{name}");
    }
}
