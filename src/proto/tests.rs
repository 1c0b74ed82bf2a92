//! Unit and property tests for the sans-IO core.

use proptest::prelude::*;

use super::*;
use crate::value::{Key, Table, Value};
use crate::{Error, KeyError, ProtocolError, table};

fn limits() -> Limits {
    Limits::default()
}

fn encode(v: &Value) -> Vec<u8> {
    encode_message_to_vec(v, &limits()).unwrap()
}

/// Body of a frame produced by `encode`.
fn body(frame: &[u8]) -> &[u8] {
    &frame[LENGTH_PREFIX + 1..]
}

fn decode(bytes: &[u8]) -> Result<Value, Error> {
    decode_value(bytes, &limits())
}

/// Structural equality that compares floats by bit pattern (NaN == NaN).
pub(super) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_bits() == y.to_bits(),
        (Value::Table(x), Value::Table(y)) => {
            x.len() == y.len()
                && x.sequence_len() == y.sequence_len()
                && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn round_trips_the_seed_table() {
    let v: Value = table! { "OpCode" => 10, "Data" => "From server" }.into();
    let frame = encode(&v);
    assert_eq!(decode(body(&frame)).unwrap(), v);
}

#[test]
fn integer_and_float_subtypes_survive() {
    for v in [Value::Integer(1), Value::Number(1.0), Value::Number(-0.0)] {
        let back = decode(body(&encode(&v))).unwrap();
        assert!(same(&v, &back), "{v:?} came back as {back:?}");
    }
}

#[test]
fn byte_strings_are_one_run_not_one_element_per_byte() {
    let blob: Vec<u8> = (0..=255).collect();
    let frame = encode(&Value::from(blob.clone()));
    // tag 4, varint 256 = [251, 0, 1], then the 256 bytes themselves.
    assert_eq!(&body(&frame)[..4], &[4, 251, 0, 1]);
    assert_eq!(&body(&frame)[4..], &blob[..]);
    assert_eq!(body(&frame).len(), 4 + 256);
}

#[test]
fn sequence_with_a_nil_element_leaves_a_hole() {
    // Hand-built: table, sequence [1, nil, 3], empty hash part.
    let bytes = [5, 3, 2, 2, 0, 2, 6, 0];
    let v = decode(&bytes).unwrap();
    let t = v.as_table().unwrap();
    assert_eq!(t.sequence_len(), 1);
    assert_eq!(t.get(3), Some(&Value::Integer(3)));
    assert_eq!(t.get(2), None);
}

#[test]
fn duplicate_key_is_refused() {
    // Sequence [true], hash {1 = false}: key 1 twice.
    let bytes = [5, 1, 1, 1, 1, 2, 2, 1, 0];
    let err = decode(&bytes).unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::DuplicateKey { ref key }) if key == "1"),
        "{err}"
    );
}

#[test]
fn invalid_keys_are_refused() {
    let nan = f64::NAN.to_le_bytes();
    let mut nan_key = vec![5, 0, 1, 3];
    nan_key.extend_from_slice(&nan);
    nan_key.push(0);
    for (bytes, why) in [
        (vec![5, 0, 1, 0, 1, 1], KeyError::Nil),
        (nan_key, KeyError::NaN),
        (vec![5, 0, 1, 5, 0, 0, 1, 1], KeyError::Table),
    ] {
        let err = decode(&bytes).unwrap_err();
        assert_eq!(err, Error::Protocol(ProtocolError::InvalidKey(why)));
    }
}

#[test]
fn float_key_with_integral_value_becomes_integer_key() {
    // Hash part {[2.0] = true}: another encoder may send it; it is key 2.
    let mut bytes = vec![5, 0, 1, 3];
    bytes.extend_from_slice(&2.0f64.to_le_bytes());
    bytes.extend_from_slice(&[1, 1]);
    let v = decode(&bytes).unwrap();
    assert_eq!(v.get(2), Some(&Value::Boolean(true)));
}

#[test]
fn trailing_bytes_are_refused() {
    let err = decode(&[0, 0]).unwrap_err();
    assert_eq!(
        err,
        Error::Protocol(ProtocolError::TrailingBytes { count: 1 })
    );
}

#[test]
fn bad_tags_and_booleans_are_refused() {
    assert!(matches!(
        decode(&[6]),
        Err(Error::Protocol(ProtocolError::Malformed(_)))
    ));
    assert!(matches!(
        decode(&[1, 2]),
        Err(Error::Protocol(ProtocolError::Malformed(_)))
    ));
    assert!(matches!(
        decode(&[]),
        Err(Error::Protocol(ProtocolError::Malformed(_)))
    ));
}

/// `depth` nested tables, each the only sequence element of the one above.
fn nested_bytes(depth: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(depth * 3 + 3);
    for _ in 0..depth - 1 {
        bytes.extend_from_slice(&[5, 1]);
    }
    bytes.extend_from_slice(&[5, 0, 0]);
    bytes.resize(bytes.len() + depth - 1, 0);
    bytes
}

fn nested_value(depth: usize) -> Value {
    let mut v = Value::Table(Table::new());
    for _ in 1..depth {
        v = Value::Table(Table::from_sequence(vec![v]));
    }
    v
}

#[test]
fn one_million_nested_tables_are_refused_not_a_stack_overflow() {
    let bytes = nested_bytes(1_000_000);
    let err = decode(&bytes).unwrap_err();
    assert_eq!(err, Error::TooDeep { limit: 128 });
}

#[test]
fn depth_limit_is_exact_in_both_directions() {
    let l = Limits {
        max_depth: 5,
        ..limits()
    };
    assert!(decode_value(&nested_bytes(5), &l).is_ok());
    assert_eq!(
        decode_value(&nested_bytes(6), &l),
        Err(Error::TooDeep { limit: 5 })
    );
    assert!(encode_message_to_vec(&nested_value(5), &l).is_ok());
    assert_eq!(
        encode_message_to_vec(&nested_value(6), &l),
        Err(Error::TooDeep { limit: 5 })
    );
}

#[test]
fn deepest_allowed_value_is_safe_on_a_tiny_stack() {
    // The largest configurable depth, decoded and encoded on a 64 KiB thread.
    let l = Limits {
        max_depth: Limits::MAX_DEPTH_CAP,
        ..limits()
    };
    let bytes = nested_bytes(Limits::MAX_DEPTH_CAP);
    std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let v = decode_value(&bytes, &l).unwrap();
            let frame = encode_message_to_vec(&v, &l).unwrap();
            assert_eq!(&frame[LENGTH_PREFIX + 1..], &bytes[..]);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn length_claiming_2_pow_40_elements_fails_without_allocating() {
    // A table whose sequence part claims 2^40 elements, then nothing.
    let mut bytes = vec![5, 253];
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let err = decode(&bytes).unwrap_err();
    assert!(
        matches!(err, Error::Protocol(ProtocolError::Malformed(_))),
        "{err}"
    );
    // A string claiming 2^40 bytes.
    let mut bytes = vec![4, 253];
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(decode(&bytes).is_err());
}

#[test]
fn truncated_frame_waits_then_truncated_value_fails() {
    let frame = encode(&table! { "OpCode" => 10, "Data" => "From server" }.into());
    let mut d = FrameDecoder::new(&limits());
    d.push(&frame[..frame.len() / 2]);
    assert_eq!(d.next_frame().unwrap(), None);
    // The value bytes cut in half are an error, not a hang or a panic.
    let half = &body(&frame)[..body(&frame).len() / 2];
    assert!(matches!(
        decode(half),
        Err(Error::Protocol(ProtocolError::Malformed(_)))
    ));
}

#[test]
fn frame_one_byte_over_the_limit_is_refused_both_ways() {
    let l = Limits {
        max_frame_size: 64,
        ..limits()
    };
    // kind byte + tag + varint length + n bytes = 64 exactly when n = 61.
    let fits = Value::from(vec![7u8; 61]);
    let frame = encode_message_to_vec(&fits, &l).unwrap();
    assert_eq!(frame.len(), LENGTH_PREFIX + 64);
    let over = Value::from(vec![7u8; 62]);
    let err = encode_message_to_vec(&over, &l).unwrap_err();
    assert!(
        matches!(err, Error::FrameTooLarge { limit: 64, .. }),
        "{err}"
    );
    // The decoder refuses a 65-byte length from the prefix alone.
    let mut d = FrameDecoder::new(&l);
    d.push(&65u32.to_le_bytes());
    assert_eq!(
        d.next_frame().unwrap_err(),
        Error::FrameTooLarge {
            size: 65,
            limit: 64
        }
    );
    assert!(d.buffered() < 64);
}

#[test]
fn encoder_leaves_the_buffer_unchanged_on_error() {
    let l = Limits {
        max_frame_size: 16,
        ..limits()
    };
    let mut out = vec![1, 2, 3];
    assert!(encode_message(&Value::from("a long string over the limit"), &l, &mut out).is_err());
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn empty_and_unknown_frames_are_refused() {
    let mut d = FrameDecoder::new(&limits());
    d.push(&[0, 0, 0, 0]);
    assert_eq!(
        d.next_frame(),
        Err(Error::Protocol(ProtocolError::EmptyFrame))
    );
    let mut d = FrameDecoder::new(&limits());
    d.push(&[1, 0, 0, 0, 9]);
    assert_eq!(
        d.next_frame(),
        Err(Error::Protocol(ProtocolError::UnknownFrameKind { kind: 9 }))
    );
}

#[test]
fn preamble_round_trips_and_leaves_frames_behind() {
    let mut bytes = Vec::new();
    Preamble::plain().encode(&mut bytes).unwrap();
    assert_eq!(bytes, b"TBLN\x02\x00\x00\x00");
    encode_message(&Value::Integer(7), &limits(), &mut bytes).unwrap();
    let mut d = FrameDecoder::new(&limits());
    let mut preamble = None;
    for b in &bytes {
        d.push(std::slice::from_ref(b));
        if preamble.is_none() {
            preamble = d.next_preamble().unwrap();
        }
    }
    assert_eq!(preamble, Some(Preamble::plain()));
    let v = d
        .next_frame()
        .unwrap()
        .unwrap()
        .decode_value(&limits())
        .unwrap();
    assert_eq!(v, Value::Integer(7));
}

#[test]
fn preamble_refuses_http_at_the_first_byte() {
    let mut d = FrameDecoder::new(&limits());
    d.push(b"G");
    let err = d.next_preamble().unwrap_err();
    assert!(err.to_string().contains("HTTP"), "{err}");
    let mut d = FrameDecoder::new(&limits());
    d.push(b"GET / HTTP/1.1\r\n\r\n");
    assert!(
        d.next_preamble()
            .unwrap_err()
            .to_string()
            .contains("looks like HTTP")
    );
}

#[test]
fn preamble_refuses_other_versions_flags_and_long_extensions() {
    let mut d = FrameDecoder::new(&limits());
    d.push(b"TBLN\x01");
    assert_eq!(
        d.next_preamble(),
        Err(Error::Protocol(ProtocolError::UnsupportedVersion {
            theirs: 1,
            ours: 2
        }))
    );
    let mut d = FrameDecoder::new(&limits());
    d.push(b"TBLN\x02\x80\x00\x00");
    assert_eq!(
        d.next_preamble(),
        Err(Error::Protocol(ProtocolError::UnknownFlags { flags: 0x80 }))
    );
    // An unknown flag is refused at its own byte (the sixth), without
    // waiting for `ext_len`; known flags wait for the rest.
    let mut d = FrameDecoder::new(&limits());
    d.push(b"TBLN\x02\x06");
    assert_eq!(
        d.next_preamble(),
        Err(Error::Protocol(ProtocolError::UnknownFlags { flags: 0x06 }))
    );
    for flags in [0x00, 0x01, 0x02, 0x03] {
        let mut d = FrameDecoder::new(&limits());
        d.push(&[b'T', b'B', b'L', b'N', VERSION, flags]);
        assert_eq!(d.next_preamble(), Ok(None), "flags {flags:#04x}");
    }
    let mut d = FrameDecoder::new(&limits());
    d.push(b"TBLN\x02\x01\xff\xff");
    assert!(matches!(
        d.next_preamble(),
        Err(Error::Protocol(ProtocolError::ExtensionTooLong {
            len: 65535,
            ..
        }))
    ));
}

#[test]
fn read_buffer_and_filled_feed_the_decoder() {
    let frame = encode(&Value::from("hello"));
    let mut d = FrameDecoder::new(&limits());
    let buf = d.read_buffer();
    assert!(buf.len() >= 4096);
    buf[..frame.len()].copy_from_slice(&frame);
    d.filled(frame.len());
    let f = d.next_frame().unwrap().unwrap();
    assert_eq!(f.kind, FrameKind::Message);
    assert_eq!(f.decode_value(&limits()).unwrap(), Value::from("hello"));
    d.release_idle_memory();
    assert_eq!(d.buffered(), 0);
}

#[test]
fn limits_validate_names_the_field() {
    let bad = Limits {
        max_depth: 0,
        ..limits()
    };
    let err = bad.validate().unwrap_err();
    assert!(err.to_string().contains("max_depth"), "{err}");
    let bad = Limits {
        max_frame_size: 1,
        ..limits()
    };
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("max_frame_size")
    );
    assert!(limits().validate().is_ok());
}

// ---------------------------------------------------------------- properties

pub(super) fn arb_key() -> impl Strategy<Value = Key> {
    prop_oneof![
        any::<bool>().prop_map(Key::from),
        (-5i64..40).prop_map(Key::from),
        any::<i64>().prop_map(Key::from),
        any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(|f| Key::from_f64(f).unwrap()),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Key::from),
    ]
}

pub(super) fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::Boolean),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Number),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 256, 10, |inner| {
        (
            proptest::collection::vec(inner.clone(), 0..10),
            proptest::collection::vec((arb_key(), inner), 0..10),
        )
            .prop_map(|(seq, entries)| {
                let mut t = Table::from_sequence(seq);
                for (k, v) in entries {
                    t.set(k, v);
                }
                Value::Table(t)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_value_round_trips(v in arb_value()) {
        let frame = encode(&v);
        let back = decode(body(&frame)).unwrap();
        prop_assert!(same(&v, &back), "{:?} came back as {:?}", v, back);
        // Encoding is deterministic, and what was decoded encodes to the
        // same table again. (Not always to the same bytes: integer keys after
        // a hole come first in key order from wherever the table keeps them,
        // and a decoder may keep them elsewhere than the sender did.)
        prop_assert_eq!(encode(&v), frame);
        let again = decode(body(&encode(&back))).unwrap();
        prop_assert!(same(&v, &again), "{:?} came back as {:?} the second time", v, again);
    }

    #[test]
    fn any_chunking_yields_the_same_frames(
        values in proptest::collection::vec(arb_value(), 1..6),
        cuts in proptest::collection::vec(1usize..64, 1..200),
    ) {
        let mut stream = Vec::new();
        Preamble::plain().encode(&mut stream).unwrap();
        for v in &values {
            encode_message(v, &limits(), &mut stream).unwrap();
        }
        let mut d = FrameDecoder::new(&limits());
        let mut got = Vec::new();
        let mut preamble = None;
        let mut rest = &stream[..];
        let mut cut = cuts.iter().cycle();
        while !rest.is_empty() || d.buffered() > 0 {
            let n = (*cut.next().unwrap()).min(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            d.push(chunk);
            if preamble.is_none() {
                preamble = d.next_preamble().unwrap();
                if preamble.is_none() { continue; }
            }
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f.decode_value(&limits()).unwrap());
            }
            if rest.is_empty() { break; }
        }
        prop_assert_eq!(preamble, Some(Preamble::plain()));
        prop_assert_eq!(got.len(), values.len());
        for (a, b) in values.iter().zip(&got) {
            prop_assert!(same(a, b));
        }
        prop_assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_value_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_table_tag_never_panic(bytes in proptest::collection::vec(0u8..8, 0..512)) {
        // Small byte values hit the table/tag paths far more often.
        let mut input = vec![5];
        input.extend_from_slice(&bytes);
        let _ = decode(&input);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_stream_decoder(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        skip_preamble in any::<bool>(),
    ) {
        let mut d = FrameDecoder::new(&Limits { max_frame_size: 256, ..limits() });
        if skip_preamble {
            d.push(b"TBLN\x02\x00\x00\x00");
        }
        d.push(&bytes);
        if let Ok(Some(_)) = d.next_preamble() {
            while let Ok(Some(f)) = d.next_frame() {
                let _ = f.decode_value(&limits());
            }
        }
    }
}

/// Every vector in docs/PROTOCOL.md, checked both ways against the real codec.
#[test]
fn protocol_md_test_vectors() {
    let doc = include_str!("../../docs/PROTOCOL.md");
    let mut float_key = Table::new();
    float_key.set(Key::try_from(1.5).unwrap(), true);
    float_key.set(false, 0);
    let vectors: Vec<(&str, Value)> = vec![
        ("nil", Value::Nil),
        ("true", Value::Boolean(true)),
        ("false", Value::Boolean(false)),
        ("0", Value::Integer(0)),
        ("-1", Value::Integer(-1)),
        ("10", Value::Integer(10)),
        ("300", Value::Integer(300)),
        ("math.mininteger", Value::Integer(i64::MIN)),
        ("1.5", Value::Number(1.5)),
        ("1.0", Value::Number(1.0)),
        ("\"\"", Value::from("")),
        ("\"hi\"", Value::from("hi")),
        ("\"\\x00\\xFF\"", Value::from(vec![0u8, 255])),
        ("{}", Table::new().into()),
        ("{1, 2, \"three\"}", table![1, 2, "three"].into()),
        (
            "{OpCode = 10, Data = \"From server\"}",
            table! {"OpCode" => 10, "Data" => "From server"}.into(),
        ),
        ("{[1.5] = true, [false] = 0}", float_key.into()),
        ("{{}}", table![Table::new()].into()),
        ("{1, [3] = 3}", table![1, Value::Nil, 3].into()),
    ];
    let hex = |b: &[u8]| {
        b.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let unhex = |s: &str| -> Vec<u8> {
        s.split(' ')
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    };
    for (lua, value) in &vectors {
        // The value's Lua text is the same text the doc shows, except for
        // the integer -2^63: `Value` prints it as `-9223372036854775808`,
        // which Lua 5.3+ reads as a float, so the doc names it.
        if *lua == "math.mininteger" {
            assert_eq!(value.to_string(), "-9223372036854775808");
        } else {
            assert_eq!(&value.to_string(), lua);
        }
        let encoded = hex(body(&encode(value)));
        let row = format!("| `{lua}` ");
        let row = doc
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("docs/PROTOCOL.md lacks a row for {lua}"));
        assert!(
            row.ends_with(&format!("| `{encoded}` |")),
            "{row} should give {encoded}"
        );
        assert_eq!(&decode(&unhex(&encoded)).unwrap(), value);
    }
    let frame = hex(&encode(&vectors[15].1));
    assert!(
        doc.contains(&frame),
        "docs/PROTOCOL.md lacks the frame {frame}"
    );
    assert!(doc.contains("`54 42 4C 4E 02 00 00 00`"));
    for bad in [
        "06",
        "01 02",
        "00 00",
        "05 01 01 01 01 02 02 01 00",
        "05 00 01 00 01 01",
        "05 fd 00 00 00 00 00 01 00 00",
        "05 01 01 01 01 02 02 00",
        "05 00 02 02 04 01 01 03 00 00 00 00 00 00 00 40 01 00",
        "fd 00 00 00 00 00 00 00 00",
        "02 fe 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
        "02 ff 00 00 00 00 00 00 00 00",
    ] {
        assert!(
            doc.contains(&format!("| `{bad}` |")),
            "doc lacks refused input {bad}"
        );
        assert!(decode(&unhex(bad)).is_err(), "{bad} must be refused");
    }
    // Inputs a decoder must accept, each with the value it gives (the
    // encoder writes some of these values with other, shorter bytes).
    let key_table = |k: Key| -> Value {
        let mut t = Table::new();
        t.set(k, true);
        t.into()
    };
    let accepted: Vec<(&str, &str, Value)> = vec![
        ("04 fb 02 00 68 69", "\"hi\"", Value::from("hi")),
        ("fb 02 00 14", "10", Value::Integer(10)),
        ("05 01 00 01 02 02 01 01", "{true}", table![true].into()),
        (
            "05 00 02 02 02 00 02 02 01 01",
            "{true}",
            table![true].into(),
        ),
        (
            "05 00 01 03 00 00 00 00 00 00 00 80 01 01",
            "{[0] = true}",
            key_table(Key::from(0)),
        ),
        (
            "05 00 01 03 00 00 00 00 00 00 e0 c3 01 01",
            "{[math.mininteger] = true}",
            key_table(Key::from(i64::MIN)),
        ),
        (
            "05 00 01 03 00 00 00 00 00 00 e0 43 01 01",
            "{[2^63] = true}",
            key_table(Key::try_from(9_223_372_036_854_775_808.0).unwrap()),
        ),
        (
            "05 00 01 03 00 00 00 00 00 00 f0 7f 01 01",
            "{[1/0] = true}",
            key_table(Key::try_from(f64::INFINITY).unwrap()),
        ),
    ];
    for (input, lua, value) in &accepted {
        assert!(
            doc.contains(&format!("| `{input}` | `{lua}` |")),
            "doc lacks accepted input {input} giving {lua}"
        );
        let got = decode(&unhex(input)).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert!(same(&got, value), "{input} gave {got}, not {value}");
    }
    // Float keys: which become integer keys, which stay floats.
    assert_eq!(Key::try_from(-0.0).unwrap(), Key::from(0));
    assert_eq!(
        Key::try_from(-9_223_372_036_854_775_808.0).unwrap(),
        Key::from(i64::MIN)
    );
    for stays_float in [
        9_223_372_036_854_775_808.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.5,
    ] {
        let key = Key::try_from(stays_float).unwrap();
        assert_eq!(key.as_integer(), None, "{stays_float}");
    }
}

#[test]
fn refusal_preamble_carries_its_reason_and_matches_the_doc() {
    let mut bytes = Vec::new();
    Preamble::refusal("server full (2 connections)")
        .encode(&mut bytes)
        .unwrap();
    let hex = bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        include_str!("../../docs/PROTOCOL.md").contains(&hex),
        "doc lacks {hex}"
    );
    let mut d = FrameDecoder::new(&limits());
    d.push(&bytes);
    let p = d.next_preamble().unwrap().unwrap();
    assert_eq!(p.refused().as_deref(), Some("server full (2 connections)"));
    assert!(!p.encrypted());
    // A reason longer than the extension limit is cut at a character boundary.
    let long = "é".repeat(600);
    let p = Preamble::refusal(&long);
    assert!(p.extension.len() <= MAX_EXTENSION);
    assert!(std::str::from_utf8(&p.extension).is_ok());
}

/// What a session makes of `input` from its peer: whether it opened, and the
/// error it closed with, if any.
fn session_reads(
    mut session: session::Session,
    input: &[u8],
    now: std::time::Instant,
) -> (bool, Option<String>) {
    use session::{Input, SessionEvent};
    session.push(input);
    let (mut opened, mut error) = (false, None);
    while !matches!(session.poll_input(now), Input::Empty) {
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::Established { .. } => opened = true,
                SessionEvent::Closed { error: e, .. } => error = e.map(|e| e.to_string()),
                _ => {}
            }
        }
    }
    (opened, error)
}

/// docs/PROTOCOL.md, section 1: a plain preamble's `ext` is skipped, and a
/// preamble with the refusal bit is a refusal whatever bit 0 says.
#[test]
fn plain_preamble_ext_is_skipped_and_refusal_wins_over_the_key_bit() {
    use secure::Role;
    use session::{Session, SessionConfig};
    let now = crate::test_clock::epoch();
    let config = SessionConfig::default();
    let plain = || Session::new(Role::Server, &config, None, now);

    let mut input = b"TBLN\x02\x00\x03\x00abc".to_vec();
    encode_message(&Value::Integer(7), &limits(), &mut input).unwrap();
    let mut server = plain();
    server.push(&input);
    let mut got = None;
    while got.is_none() {
        match server.poll_input(now) {
            session::Input::Message(body) => got = Some(decode(body).unwrap()),
            session::Input::Handled => while server.poll_event().is_some() {},
            session::Input::Empty => panic!("no message after a plain preamble with an ext"),
        }
    }
    assert_eq!(got, Some(Value::Integer(7)));

    // Flags 03 from a server: a refusal, whatever bit 0 says.
    let mut client = Session::new(Role::Client, &config, None, now);
    client.connected(now);
    let (opened, error) = session_reads(client, b"TBLN\x02\x03\x02\x00no", now);
    assert!(!opened);
    assert_eq!(
        error.as_deref(),
        Some("protocol violation: the server refused the connection: no")
    );
    // Only a server refuses; a client's refusal is a violation, unrepeated.
    let (opened, error) = session_reads(plain(), b"TBLN\x02\x03\x02\x00no", now);
    assert!(!opened);
    assert_eq!(
        error.as_deref(),
        Some(
            "protocol violation: the client sent a refusal preamble, which only a server may send"
        )
    );
}

/// docs/PROTOCOL.md, section 5.4: the empty sealed frame opens, then is
/// refused as an empty frame.
#[test]
fn empty_sealed_frame_is_refused_after_it_opens() {
    use secure::{CipherSuite, ClientStatic, Handshake, Role, SecretKey};
    use session::{Input, Session, SessionConfig, SessionEvent};
    let now = crate::test_clock::epoch();
    let key = SecretKey::from_hex("0C03EA65238DD2C25EB87CE563868098").unwrap();
    let suite = CipherSuite::for_key(&key);
    let config = SessionConfig::default();
    let client_static = ClientStatic::generate().unwrap();
    let mut client = Session::new(
        Role::Client,
        &config,
        Some(Handshake::client(&key, suite, &client_static)),
        now,
    );
    let mut server = Session::new(
        Role::Server,
        &config,
        Some(Handshake::server(&key, suite)),
        now,
    );
    client.connected(now);
    // Bytes go back and forth until the client has its sealer.
    let mut sealer = None;
    for _ in 0..4 {
        let mut wire = Vec::new();
        client.poll_transmit(&mut wire);
        server.push(&wire);
        while !matches!(server.poll_input(now), Input::Empty) {}
        while server.poll_event().is_some() {}
        let mut wire = Vec::new();
        server.poll_transmit(&mut wire);
        client.push(&wire);
        while !matches!(client.poll_input(now), Input::Empty) {}
        while let Some(event) = client.poll_event() {
            if let SessionEvent::Established { sealer: s } = event {
                sealer = s;
            }
        }
    }
    let mut sealer = sealer.expect("the client opened");
    let mut empty = Vec::new();
    sealer.seal(&[], &mut empty).unwrap();
    assert_eq!(empty.get(..LENGTH_PREFIX), Some(&[16, 0, 0, 0][..]));

    let (_, error) = session_reads(server, &empty, now);
    assert_eq!(error.as_deref(), Some("protocol violation: empty frame"));
}

#[test]
fn decoding_within_a_cost_refuses_dense_values_early_and_passes_ordinary_ones() {
    use crate::proto::decode_value_within;
    let limits = Limits::default();
    // 100,000 small integers: 1-2 bytes each on the wire, a Value (tens of
    // bytes) each decoded.
    let dense = Value::Table(Table::from_sequence(
        (0..100_000).map(|i| Value::Integer(i % 50)).collect(),
    ));
    let frame = encode_message_to_vec(&dense, &limits).unwrap();
    let body = &frame[LENGTH_PREFIX + 1..];
    let decoded_floor = 100_000 * std::mem::size_of::<Value>();
    assert!(decoded_floor > 10 * body.len());
    match decode_value_within(body, &limits, 4 * body.len()) {
        Err(Error::Protocol(ProtocolError::DecodedTooLarge { limit })) => {
            assert_eq!(limit, 4 * body.len())
        }
        other => panic!("expected DecodedTooLarge, got {other:?}"),
    }
    assert_eq!(
        decode_value_within(body, &limits, decoded_floor * 2).unwrap(),
        dense
    );
    // A hole costs one empty slot, as in Lua: the values after it stay in
    // the array part, a slot each, not a hash entry each.
    let mut holey: Vec<Value> = vec![Value::Nil];
    holey.extend((1..1000).map(|_| Value::Boolean(true)));
    let holey = Value::Table(Table::from_sequence(holey));
    let frame = encode_message_to_vec(&holey, &limits).unwrap();
    let body = &frame[LENGTH_PREFIX + 1..];
    // Charged: the values, and the slots as the array grows (doubling).
    let slots = 1000 * std::mem::size_of::<Value>();
    let back = decode_value_within(body, &limits, 2 * slots + 4096).unwrap();
    assert_eq!(back, holey);
    assert!(decode_value_within(body, &limits, slots).is_err());
    let back = back.as_table().unwrap();
    back.assert_invariants();
    assert_eq!((back.array_slots(), back.hash_part().count()), (1000, 0));
    // Strings count their bytes.
    let text = Value::from("y".repeat(10_000));
    let frame = encode_message_to_vec(&text, &limits).unwrap();
    let body = &frame[LENGTH_PREFIX + 1..];
    assert!(decode_value_within(body, &limits, 9_000).is_err());
    assert_eq!(decode_value_within(body, &limits, 11_000).unwrap(), text);
}
