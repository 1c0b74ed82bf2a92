//! One table of tricky types through both paths: `to_value`/`from_value`
//! with the value codec, and the direct writer and reader. Both must give
//! the same bytes and the same result (a value equal to the input, or the
//! same error naming the same field).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::tests::{Bytes, Message, Pairs, Shape, Unit, sample};
use super::{decode_serialized, encode_serialized, from_value, to_value};
use crate::proto::{Limits, decode_value, encode_value};
use crate::{Error, KeyError, Value, table};

fn limits() -> Limits {
    Limits::default()
}

/// Encodes `x` both ways: the same bytes, or the same error.
fn encode_both<T: Serialize + ?Sized>(x: &T) -> Result<Vec<u8>, Error> {
    let via_value = to_value(x).and_then(|v| {
        let mut out = Vec::new();
        encode_value(&v, &limits(), &mut out, usize::MAX)?;
        Ok(out)
    });
    let mut direct = Vec::new();
    let too_large = Error::FrameTooLarge { size: 0, limit: 0 };
    let direct =
        encode_serialized(x, &limits(), &mut direct, usize::MAX, too_large).map(|()| direct);
    assert_eq!(
        via_value, direct,
        "value path (left) and direct path (right) differ"
    );
    direct
}

/// Decodes `bytes` both ways: the same value, or the same error.
fn decode_both<T: DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) -> Result<T, Error> {
    let via_value = decode_value(bytes, &limits()).and_then(from_value::<T>);
    let direct = decode_serialized::<T>(bytes, &limits());
    assert_eq!(
        via_value, direct,
        "value path (left) and direct path (right) differ"
    );
    direct
}

/// Round trip on both paths: exact, or the same error.
fn both<T: Serialize + DeserializeOwned + PartialEq + Debug>(x: &T) -> Result<(), Error> {
    let bytes = encode_both(x)?;
    let back: T = decode_both(&bytes)?;
    assert_eq!(&back, x, "not exact");
    Ok(())
}

/// The error's path, for `Error::AtPath`; "" otherwise.
fn path_of(e: &Error) -> &str {
    match e {
        Error::AtPath { path, .. } => path,
        _ => "",
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct World {
    tick: u64,
    players: Vec<Player>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Player {
    name: String,
    inventory: Vec<u64>,
    home: Option<(f32, f32)>,
}

fn world(bad: Option<(usize, usize)>) -> World {
    let players = (0..5)
        .map(|i| Player {
            name: format!("p{i}"),
            inventory: vec![1, 2, 3],
            home: (i % 2 == 0).then_some((1.5, -2.0)),
        })
        .collect();
    let mut w = World { tick: 7, players };
    if let Some((p, slot)) = bad {
        w.players[p].inventory[slot] = u64::MAX;
    }
    w
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Nested {
    V(Option<Option<i32>>),
}

#[test]
fn tricky_types_round_trip_on_both_paths() {
    both(&sample()).unwrap();
    both(&Message {
        extra: Some(-1),
        big: 0,
        ..sample()
    })
    .unwrap();
    both(&world(None)).unwrap();
    both(&vec![Some(1), Some(2)]).unwrap();
    both(&(1, None::<i32>, 3)).unwrap();
    both(&(None::<i32>, None::<String>)).unwrap();
    both(&[Some(1), None, Some(3)]).unwrap();
    both(&Some(Some(3))).unwrap();
    both(&None::<i32>).unwrap();
    both(&Unit).unwrap();
    both(&()).unwrap();
    both(&(i64::MIN, i64::MAX, i64::MAX as u64, u32::MAX, i8::MIN)).unwrap();
    both(&'é').unwrap();
    both(&String::from("text")).unwrap();
    both(&Bytes(vec![0, 0xff, 0x80])).unwrap();
    both(&Vec::<i32>::new()).unwrap();
    both(&vec![vec![vec![1.5f32]]]).unwrap();
    both(&HashMap::from([
        (2, "two".to_string()),
        (1, "one".to_string()),
    ]))
    .unwrap();
    both(&BTreeMap::from([
        (-1i32, 'a'),
        (0, 'b'),
        (1, 'c'),
        (3, 'd'),
    ]))
    .unwrap();
    both(&BTreeMap::from([(true, 1), (false, 2)])).unwrap();
    both(&HashMap::<String, Vec<Shape>>::new()).unwrap();
    for shape in sample().shapes {
        both(&shape).unwrap();
    }
    // Every varint width: long strings, long sequences, big maps.
    both(&"x".repeat(300)).unwrap();
    both(&"y".repeat(70_000)).unwrap();
    both(&(0..300).collect::<Vec<i64>>()).unwrap();
    both(&(0..70_000).map(|i| i * 1000).collect::<Vec<i64>>()).unwrap();
    let big: HashMap<String, u32> = (0..300).map(|i| (format!("k{i}"), i)).collect();
    both(&big).unwrap();
    // Values themselves, holes included.
    both(&Value::from(table![1, Value::Nil, 3])).unwrap();
    both(&Value::from(table! { "a" => 1, 5 => "five", 1 => true })).unwrap();
}

#[test]
fn serialize_only_shapes_give_the_same_bytes() {
    // A repeated key keeps the last value, on both paths.
    let bytes = encode_both(&Pairs(vec![("k", 1), ("j", 5), ("k", 2)])).unwrap();
    assert_eq!(
        decode_both::<Value>(&bytes).unwrap(),
        table! { "k" => 2, "j" => 5 }.into()
    );
    // A nil map value leaves its key out.
    let bytes = encode_both(&BTreeMap::from([("a", Some(1)), ("b", None)])).unwrap();
    assert_eq!(
        decode_both::<Value>(&bytes).unwrap(),
        table! { "a" => 1 }.into()
    );
}

#[test]
fn what_cannot_round_trip_fails_on_both_paths_naming_the_field() {
    let e = both(&vec![Some(1), None]).unwrap_err();
    assert_eq!(path_of(&e), "[1]", "{e}");
    assert!(e.to_string().contains("sequence element is None"), "{e}");

    let e = both(&vec![(), ()]).unwrap_err();
    assert_eq!(path_of(&e), "[0]", "{e}");

    let e = both(&Some(None::<i32>)).unwrap_err();
    assert!(e.to_string().contains("Some(None)"), "{e}");

    let e = both(&vec![Nested::V(Some(None))]).unwrap_err();
    assert_eq!(path_of(&e), "[0].V", "{e}");

    let e = both(&world(Some((3, 0)))).unwrap_err();
    assert_eq!(path_of(&e), "players[3].inventory[0]", "{e}");
    assert_eq!(
        e.to_string(),
        "at players[3].inventory[0]: conversion failed: integer 18446744073709551615 does not fit a 64-bit signed integer"
    );

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Keyed {
        by_pair: BTreeMap<(i32, i32), i32>,
    }
    let e = both(&Keyed {
        by_pair: BTreeMap::from([((1, 2), 3)]),
    })
    .unwrap_err();
    assert_eq!(
        e,
        Error::AtPath {
            path: "by_pair".into(),
            error: Box::new(Error::InvalidKey(KeyError::Table)),
        }
    );
}

#[test]
fn decoding_errors_name_the_field_on_both_paths() {
    // A Lua peer sends a string where a number belongs.
    let sent: Value = table! {
        "tick" => 1,
        "players" => table![table! { "name" => "a", "inventory" => table![1, "sword"] }],
    }
    .into();
    let mut bytes = Vec::new();
    encode_value(&sent, &limits(), &mut bytes, usize::MAX).unwrap();
    let e = decode_both::<World>(&bytes).unwrap_err();
    assert_eq!(path_of(&e), "players[0].inventory[1]", "{e}");
}

/// The inputs docs/PROTOCOL.md says a decoder must refuse are refused by
/// the direct reader too, whatever the target type.
#[test]
fn direct_reader_refuses_what_the_protocol_refuses() {
    let refused: &[&[u8]] = &[
        &[0x06],
        &[0x01, 0x02],
        &[0x00, 0x00],
        &[0x05, 0x00, 0x01, 0x00, 0x01, 0x01],
        &[0x05, 0xfd, 0, 0, 0, 0, 0, 1, 0, 0],
        &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x02, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        &[0x02, 0xff, 0, 0, 0, 0, 0, 0, 0, 0],
        // A string claiming more bytes than there are.
        &[0x04, 0xfc, 0xff, 0xff, 0xff, 0x7f, b'a'],
        // Key 2 twice in a map.
        &[
            0x05, 0x00, 0x02, 0x02, 0x04, 0x01, 0x01, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x01, 0x00,
        ],
    ];
    for input in refused {
        assert!(
            decode_serialized::<Value>(input, &limits()).is_err(),
            "{input:02x?} as a Value"
        );
        assert!(
            decode_serialized::<HashMap<i64, bool>>(input, &limits()).is_err(),
            "{input:02x?} as a map"
        );
        assert!(
            decode_serialized::<Vec<Option<String>>>(input, &limits()).is_err(),
            "{input:02x?} as a sequence"
        );
    }
}

/// A tiny message claiming 2^40 elements reserves nothing it cannot fill,
/// and nesting past the limit is an error, never a stack overflow (on a
/// small stack, with a limit far above what fits it unguarded).
#[test]
fn direct_path_keeps_the_decoders_limits() {
    let mut claim = vec![0x05, 0xfd];
    claim.extend_from_slice(&(1u64 << 40).to_le_bytes());
    claim.push(0x02);
    assert!(decode_serialized::<Vec<i64>>(&claim, &limits()).is_err());

    let deep = |n: usize| {
        let mut bytes = Vec::new();
        for _ in 0..n {
            bytes.extend_from_slice(&[0x05, 0x01]);
        }
        bytes.extend_from_slice(&[0x02, 0x02]);
        bytes.extend(std::iter::repeat_n(0x00, n));
        bytes
    };
    let e = decode_serialized::<Value>(&deep(200), &limits()).unwrap_err();
    assert_eq!(e, Error::TooDeep { limit: 128 });
    let e = decode_serialized::<Vec<Vec<Vec<i64>>>>(&deep(200), &limits()).unwrap_err();
    assert!(
        matches!(e, Error::AtPath { .. } | Error::TooDeep { .. }),
        "{e}"
    );

    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            const DEPTH: usize = 20_000;
            let wide = Limits {
                max_depth: DEPTH + 1,
                ..limits()
            };
            let bytes = deep(DEPTH);
            assert!(decode_serialized::<Value>(&bytes, &wide).is_ok());
            // The same depth on the way out: a recursive type.
            #[derive(Serialize, Deserialize)]
            struct Node {
                next: Option<Box<Node>>,
            }
            let mut node = Node { next: None };
            for _ in 0..DEPTH {
                node = Node {
                    next: Some(Box::new(node)),
                };
            }
            let mut out = Vec::new();
            let too_large = Error::FrameTooLarge { size: 0, limit: 0 };
            encode_serialized(&node, &wide, &mut out, usize::MAX, too_large).unwrap();
            let back: Node = decode_serialized(&out, &wide).unwrap();
            // Take both chains apart iteratively (Box's drop recurses).
            for mut n in [node, back] {
                while let Some(next) = n.next.take() {
                    n = *next;
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Struct keys in any order, renamed, aliased, unknown or not text read the
/// same on both paths (the direct reader hands a key equal to a declared
/// field name over as that name, looking where the last one was first).
#[test]
fn struct_keys_in_any_order_read_the_same_on_both_paths() {
    #[derive(Deserialize, Debug, PartialEq, Clone)]
    struct S {
        a: i32,
        #[serde(rename = "bee")]
        b: i32,
        #[serde(alias = "sea")]
        c: i32,
        d: Option<i32>,
    }
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        a: i32,
    }
    let encode = |v: Value| {
        let mut out = Vec::new();
        encode_value(&v, &limits(), &mut out, usize::MAX).unwrap();
        out
    };
    let want = S {
        a: 1,
        b: 2,
        c: 3,
        d: None,
    };
    // Declaration order, reversed order, an alias, unknown keys between.
    for v in [
        table! { "a" => 1, "bee" => 2, "c" => 3 },
        table! { "c" => 3, "bee" => 2, "a" => 1 },
        table! { "zz" => 9, "sea" => 3, "a" => 1, "b" => 7, "bee" => 2 },
    ] {
        assert_eq!(decode_both::<S>(&encode(v.into())), Ok(want.clone()));
    }
    // A key that is no text is an unknown field, not an error.
    let mut t = crate::Table::new();
    t.set("a", 1);
    t.set(vec![0xffu8, 0xfe], 5);
    t.set("bee", 2);
    t.set("c", 3);
    assert_eq!(decode_both::<S>(&encode(t.into())), Ok(want.clone()));
    // A field given twice, under its name and its alias, is refused.
    let twice = encode(table! { "a" => 1, "bee" => 2, "c" => 3, "sea" => 3 }.into());
    assert!(decode_both::<S>(&twice).is_err());
    // An unknown field named in the error where unknown fields are refused.
    let strict = encode(table! { "a" => 1, "b" => 2 }.into());
    let e = decode_both::<Strict>(&strict).unwrap_err();
    assert!(e.to_string().contains("unknown field `b`"), "{e}");
}

/// A struct's table the writer never produces reads the same on both
/// paths: nil values, keys that are not strings, a key in a longer length
/// form, a sequence part, a visitor that stops early; an error after any
/// of them names its field.
#[test]
fn struct_tables_of_any_shape_read_the_same_on_both_paths() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct S {
        a: i32,
        b: Option<String>,
    }
    // Builds a table body from its sequence part and hash entries (each
    // entry's key and value already encoded).
    let table = |seq: &[&[u8]], hash: &[(&[u8], &[u8])]| {
        let mut out = vec![0x05, seq.len() as u8];
        for v in seq {
            out.extend_from_slice(v);
        }
        out.push(hash.len() as u8);
        for (k, v) in hash {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        out
    };
    let long_name = [&[0x04, 0xfb, 1, 0][..], b"a"].concat();
    let long_a = [&[0x04, 0xfb, 0xfb, 0][..], &[b'z'; 0xfb][..]].concat();
    let cases: Vec<(Vec<u8>, Result<S, &str>)> = vec![
        // A nil value is no entry; a later entry may set the key.
        (
            table(&[], &[(b"\x04\x01a", b"\x00"), (b"\x04\x01a", b"\x02\x02")]),
            Ok(S { a: 1, b: None }),
        ),
        // A key that is not a string is refused (no field is named so).
        (
            table(
                &[],
                &[(b"\x02\x02", b"\x02\x04"), (b"\x04\x01a", b"\x02\x02")],
            ),
            Err(""),
        ),
        (
            table(
                &[],
                &[(b"\x01\x01", b"\x01\x00"), (b"\x04\x01a", b"\x02\x02")],
            ),
            Err(""),
        ),
        // A field name in the 3-byte length form, and a long unknown key.
        (
            table(&[], &[(&long_a, b"\x00"), (&long_name, b"\x02\x06")]),
            Ok(S { a: 3, b: None }),
        ),
        // So is a sequence part (keys 1..n), and a nil key.
        (
            table(&[b"\x02\x02"], &[(b"\x04\x01a", b"\x02\x02")]),
            Err(""),
        ),
        (
            table(&[], &[(b"\x04\x01a", b"\x02\x02"), (b"\x00", b"\x02\x02")]),
            Err(""),
        ),
        // Errors name the field, whichever way its key was read.
        (
            table(
                &[],
                &[(b"\x04\x01b", b"\x00"), (b"\x04\x01a", b"\x04\x01x")],
            ),
            Err("a"),
        ),
        (
            table(&[], &[(b"\x02\x02", b"\x00"), (&long_name, b"\x04\x01x")]),
            Err("a"),
        ),
        (
            table(
                &[],
                &[(b"\x04\x01a", b"\x02\x02"), (b"\x04\x01b", b"\x02\x02")],
            ),
            Err("b"),
        ),
        // A missing field, after nil and unknown entries.
        (
            table(&[], &[(b"\x04\x01a", b"\x00"), (b"\x04\x01c", b"\x02\x02")]),
            Err(""),
        ),
    ];
    for (bytes, want) in cases {
        let got = decode_both::<S>(&bytes);
        match want {
            Ok(want) => assert_eq!(got, Ok(want), "{bytes:02x?}"),
            Err(path) => {
                let e = got.expect_err("an error");
                assert_eq!(path_of(&e), path, "{bytes:02x?}: {e}");
            }
        }
    }

    // A hand-written visitor that reads one entry: the rest is checked and
    // skipped, nested tables and nil values included.
    #[derive(Debug, PartialEq)]
    struct First(String);
    impl<'de> Deserialize<'de> for First {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = First;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a struct")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<First, A::Error> {
                    let key: String = map.next_key()?.unwrap_or_default();
                    map.next_value::<serde::de::IgnoredAny>()?;
                    Ok(First(key))
                }
            }
            d.deserialize_struct("First", &["a", "b"], V)
        }
    }
    let nested = table(&[b"\x02\x02"], &[(b"\x04\x01k", b"\x00")]);
    let rest = table(
        &[],
        &[
            (b"\x04\x01b", b"\x02\x02"),
            (b"\x04\x01z", &nested),
            (b"\x02\x04", b"\x00"),
            (b"\x04\x01a", b"\x02\x02"),
        ],
    );
    assert_eq!(decode_both::<First>(&rest), Ok(First("b".into())));
    // A bad key among the skipped entries is still refused.
    let mut bad = rest.clone();
    bad[2] = 5;
    bad.extend_from_slice(b"\x00\x02\x02");
    assert!(decode_serialized::<First>(&bad, &limits()).is_err());
}
