//! Unit tests for the serde bridge: `to_value`, `from_value`, `from_value_ref`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{from_value, from_value_ref, to_value};
use crate::{Error, KeyError, Table, Value, table};

/// Bytes that serialize with `serialize_bytes` and read with
/// `deserialize_byte_buf`, as `serde_bytes::ByteBuf` does.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Bytes(pub(super) Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// A map that serializes the same key more than once.
pub(super) struct Pairs(pub(super) Vec<(&'static str, i64)>);

impl Serialize for Pairs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(super) struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Meters(f64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Pair(i32, Option<String>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) enum Shape {
    Empty,
    Circle(f64),
    Maybe(Option<i32>),
    Rect(i32, i32),
    Holes(Option<i32>, i32, Option<i32>),
    Labeled {
        name: String,
        sides: u8,
        note: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Message {
    pub(super) op_code: u8,
    pub(super) data: String,
    pub(super) extra: Option<i64>,
    pub(super) shapes: Vec<Shape>,
    pub(super) counts: HashMap<String, u32>,
    pub(super) by_id: BTreeMap<i64, Vec<String>>,
    pub(super) point: (i32, f64, bool),
    pub(super) pair: Pair,
    /// A nil field is absent, so a unit-typed one needs a default to read back.
    #[serde(default)]
    pub(super) unit: Unit,
    pub(super) length: Meters,
    pub(super) payload: Bytes,
    pub(super) big: u64,
}

pub(super) fn sample() -> Message {
    Message {
        op_code: 10,
        data: "From server".into(),
        extra: None,
        shapes: vec![
            Shape::Empty,
            Shape::Circle(1.5),
            Shape::Maybe(Some(3)),
            Shape::Maybe(None),
            Shape::Rect(2, 3),
            Shape::Holes(None, 2, None),
            Shape::Labeled {
                name: "tri".into(),
                sides: 3,
                note: None,
            },
        ],
        counts: HashMap::from([("a".into(), 1), ("b".into(), 2)]),
        by_id: BTreeMap::from([
            (1, vec!["one".into()]),
            (-5, vec![]),
            (7, vec!["x".into(), "y".into()]),
        ]),
        point: (-1, 0.25, true),
        pair: Pair(4, None),
        unit: Unit,
        length: Meters(2.0),
        payload: Bytes(vec![0, 159, 146, 150, 255]),
        big: i64::MAX as u64,
    }
}

/// `to_value` then `from_value` (and `from_value_ref`) give back `x`.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(x: &T) -> Value {
    let v = to_value(x).unwrap();
    assert_eq!(&from_value_ref::<T>(&v).unwrap(), x, "borrowed, from {v}");
    assert_eq!(&from_value::<T>(v.clone()).unwrap(), x, "owned, from {v}");
    v
}

/// The message of an `Error::Convert`, also one located by `Error::AtPath`.
fn convert_error<T: Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Convert(msg)) => msg,
        Err(Error::AtPath { error, .. }) => convert_error::<()>(Err(*error)),
        other => panic!("expected Error::Convert, got {other:?}"),
    }
}

fn s(text: &str) -> Value {
    Value::from(text)
}

// ---- to_value ----

#[test]
fn scalars_to_value() {
    assert_eq!(to_value(&true).unwrap(), Value::Boolean(true));
    assert_eq!(to_value(&-5i8).unwrap(), Value::Integer(-5));
    assert_eq!(to_value(&-300i16).unwrap(), Value::Integer(-300));
    assert_eq!(
        to_value(&i32::MIN).unwrap(),
        Value::Integer(i32::MIN.into())
    );
    assert_eq!(to_value(&i64::MIN).unwrap(), Value::Integer(i64::MIN));
    assert_eq!(to_value(&255u8).unwrap(), Value::Integer(255));
    assert_eq!(to_value(&65535u16).unwrap(), Value::Integer(65535));
    assert_eq!(
        to_value(&u32::MAX).unwrap(),
        Value::Integer(u32::MAX.into())
    );
    assert_eq!(to_value(&1.5f32).unwrap(), Value::Number(1.5));
    assert_eq!(to_value(&2.0f64).unwrap(), Value::Number(2.0));
    assert_eq!(to_value(&'é').unwrap(), s("é"));
    assert_eq!(to_value("text").unwrap(), s("text"));
    assert_eq!(to_value(&String::from("owned")).unwrap(), s("owned"));
    assert_eq!(to_value(&()).unwrap(), Value::Nil);
    assert_eq!(to_value(&Unit).unwrap(), Value::Nil);
    assert_eq!(to_value(&None::<i32>).unwrap(), Value::Nil);
    assert_eq!(to_value(&Some(7)).unwrap(), Value::Integer(7));
    assert_eq!(to_value(&Meters(3.0)).unwrap(), Value::Number(3.0));
}

#[test]
fn wide_integers_to_value() {
    assert_eq!(
        to_value(&(i64::MAX as u64)).unwrap(),
        Value::Integer(i64::MAX)
    );
    assert_eq!(to_value(&0u64).unwrap(), Value::Integer(0));
    assert_eq!(to_value(&-7i128).unwrap(), Value::Integer(-7));
    assert_eq!(to_value(&7u128).unwrap(), Value::Integer(7));
    let msg = convert_error(to_value(&(i64::MAX as u64 + 1)));
    assert!(msg.contains("9223372036854775808"), "{msg}");
    let msg = convert_error(to_value(&u64::MAX));
    assert!(msg.contains("18446744073709551615"), "{msg}");
    let msg = convert_error(to_value(&i128::MIN));
    assert!(msg.contains(&i128::MIN.to_string()), "{msg}");
    let msg = convert_error(to_value(&u128::MAX));
    assert!(msg.contains(&u128::MAX.to_string()), "{msg}");
}

#[test]
fn bytes_become_one_string() {
    let v = to_value(&Bytes(vec![0, 0xff, b'a'])).unwrap();
    assert_eq!(v, Value::from(vec![0u8, 0xff, b'a']));
    // A plain Vec<u8> is a sequence of numbers, as serde describes it.
    assert_eq!(to_value(&vec![1u8, 2]).unwrap(), table![1, 2].into());
}

#[test]
fn sequences_and_tuples_to_value() {
    assert_eq!(to_value(&vec![1, 2, 3]).unwrap(), table![1, 2, 3].into());
    assert_eq!(
        to_value(&(1, "a", true)).unwrap(),
        table![1, "a", true].into()
    );
    assert_eq!(
        to_value(&Pair(1, Some("x".into()))).unwrap(),
        table![1, "x"].into()
    );
    assert_eq!(to_value(&Vec::<i32>::new()).unwrap(), Table::new().into());
    // In a tuple, nil elements leave holes, as in the Lua constructor
    // {1, nil, 3}: its length is fixed, so it reads back.
    let v = to_value(&(1, None::<i32>, 3)).unwrap();
    let t = v.as_table().unwrap();
    assert_eq!((t.sequence_len(), t.len()), (1, 2));
    assert_eq!(t.get(3), Some(&Value::Integer(3)));
    assert_eq!(v, table![1, Value::Nil, 3].into());
    // In a sequence they would not read back: an error naming the element.
    let e = to_value(&vec![Some(1), None, Some(3)]).unwrap_err();
    assert!(
        matches!(&e, Error::AtPath { path, .. } if path == "[1]"),
        "{e}"
    );
}

#[test]
fn maps_to_value() {
    let m = BTreeMap::from([("a", 1), ("b", 2)]);
    assert_eq!(to_value(&m).unwrap(), table! { "a" => 1, "b" => 2 }.into());
    // Integer keys 1..n land in the sequence part.
    let m = HashMap::from([(2, "two"), (1, "one")]);
    let v = to_value(&m).unwrap();
    assert_eq!(v.as_table().unwrap().sequence_len(), 2);
    assert_eq!(v, table!["one", "two"].into());
    // Lua's key rules: an integral float key is the integer key.
    let v = to_value(
        &vec![(1.0f64, "a"), (2.5, "b")]
            .into_iter()
            .collect::<Pairsf>(),
    )
    .unwrap();
    assert_eq!(v.get(1), Some(&s("a")));
    assert_eq!(v.get(2.5), Some(&s("b")));
    // A repeated key keeps the last value.
    let v = to_value(&Pairs(vec![("k", 1), ("j", 5), ("k", 2)])).unwrap();
    assert_eq!(v, table! { "k" => 2, "j" => 5 }.into());
    // A nil value leaves the key absent.
    let v = to_value(&BTreeMap::from([("a", Some(1)), ("b", None)])).unwrap();
    assert_eq!(v, table! { "a" => 1 }.into());
}

/// Float-keyed pairs (f64 is not `Ord`, so no BTreeMap).
struct Pairsf(Vec<(f64, &'static str)>);

impl FromIterator<(f64, &'static str)> for Pairsf {
    fn from_iter<I: IntoIterator<Item = (f64, &'static str)>>(iter: I) -> Self {
        Pairsf(iter.into_iter().collect())
    }
}

impl Serialize for Pairsf {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

#[test]
fn bad_map_keys_are_errors() {
    let nil_key = HashMap::from([(None::<i32>, 1)]);
    assert_eq!(to_value(&nil_key), Err(Error::InvalidKey(KeyError::Nil)));
    let unit_key = HashMap::from([((), 1)]);
    assert_eq!(to_value(&unit_key), Err(Error::InvalidKey(KeyError::Nil)));
    let nan_key = Pairsf(vec![(f64::NAN, "x")]);
    assert_eq!(to_value(&nan_key), Err(Error::InvalidKey(KeyError::NaN)));
    let table_key = BTreeMap::from([((1, 2), "x")]);
    assert_eq!(
        to_value(&table_key),
        Err(Error::InvalidKey(KeyError::Table))
    );
    let msg = to_value(&nan_key).unwrap_err().to_string();
    assert!(msg.contains("NaN cannot be a table key"), "{msg}");
}

#[test]
fn structs_to_value() {
    #[derive(Serialize)]
    struct S {
        a: i32,
        b: Option<&'static str>,
        c: Option<&'static str>,
    }
    let v = to_value(&S {
        a: 1,
        b: None,
        c: Some("x"),
    })
    .unwrap();
    assert_eq!(v, table! { "a" => 1, "c" => "x" }.into());
    assert!(!v.as_table().unwrap().contains_key("b"));
}

#[test]
fn enums_to_value() {
    assert_eq!(to_value(&Shape::Empty).unwrap(), s("Empty"));
    assert_eq!(
        to_value(&Shape::Circle(2.0)).unwrap(),
        table! { "Circle" => 2.0 }.into()
    );
    assert_eq!(
        to_value(&Shape::Maybe(Some(1))).unwrap(),
        table! { "Maybe" => 1 }.into()
    );
    // {Maybe = nil} cannot exist, so a nil payload is the bare name.
    assert_eq!(to_value(&Shape::Maybe(None)).unwrap(), s("Maybe"));
    assert_eq!(
        to_value(&Shape::Rect(2, 3)).unwrap(),
        table! { "Rect" => table![2, 3] }.into()
    );
    assert_eq!(
        to_value(&Shape::Holes(None, 1, None)).unwrap(),
        table! { "Holes" => table! { 2 => 1 } }.into()
    );
    let v = to_value(&Shape::Labeled {
        name: "sq".into(),
        sides: 4,
        note: None,
    })
    .unwrap();
    assert_eq!(
        v,
        table! { "Labeled" => table! { "name" => "sq", "sides" => 4 } }.into()
    );
}

// ---- from_value ----

#[test]
fn any_reads_every_kind_back_as_value() {
    let values = [
        Value::Nil,
        Value::Boolean(false),
        Value::Integer(-3),
        Value::Number(0.5),
        s("text"),
        Value::from(vec![0xffu8, 0xfe]),
        table![1, 2, 3].into(),
        table! { "a" => 1, 5 => "five" }.into(),
        table![1, Value::Nil, 3].into(),
        Table::new().into(),
    ];
    for v in values {
        assert_eq!(from_value_ref::<Value>(&v).unwrap(), v);
        assert_eq!(from_value::<Value>(v.clone()).unwrap(), v);
        assert_eq!(to_value(&v).unwrap(), v);
    }
}

#[test]
fn options() {
    assert_eq!(from_value::<Option<i32>>(Value::Nil).unwrap(), None);
    assert_eq!(
        from_value::<Option<i32>>(Value::Integer(4)).unwrap(),
        Some(4)
    );
    assert_eq!(from_value::<()>(Value::Nil).unwrap(), ());
    assert_eq!(from_value::<Unit>(Value::Nil).unwrap(), Unit);
    let msg = convert_error(from_value::<()>(Value::Integer(1)));
    assert_eq!(msg, "expected nil, found number 1");
}

#[test]
fn integer_targets_accept_integral_floats() {
    assert_eq!(from_value::<u8>(Value::Integer(10)).unwrap(), 10);
    assert_eq!(from_value::<u8>(Value::Number(10.0)).unwrap(), 10);
    assert_eq!(from_value::<i64>(Value::Number(-2.0)).unwrap(), -2);
    assert_eq!(
        from_value::<i128>(Value::Integer(i64::MIN)).unwrap(),
        i64::MIN.into()
    );
    assert_eq!(from_value::<u128>(Value::Number(3.0)).unwrap(), 3);
    // Integral floats above i64::MAX still fit a u64.
    assert_eq!(
        from_value::<u64>(Value::Number(9_223_372_036_854_775_808.0)).unwrap(),
        1 << 63
    );
    assert_eq!(
        from_value::<u64>(Value::Integer(i64::MAX)).unwrap(),
        i64::MAX as u64
    );

    let msg = convert_error(from_value::<i32>(Value::Number(10.5)));
    assert_eq!(msg, "expected an integer, found number 10.5");
    let msg = convert_error(from_value::<i32>(s("10")));
    assert_eq!(msg, r#"expected an integer, found string "10""#);
    let msg = convert_error(from_value::<u8>(Value::Integer(300)));
    assert!(msg.contains("300") && msg.contains("u8"), "{msg}");
    let msg = convert_error(from_value::<u64>(Value::Integer(-1)));
    assert!(msg.contains("-1") && msg.contains("u64"), "{msg}");
    let msg = convert_error(from_value::<u64>(Value::Number(f64::INFINITY)));
    assert!(msg.contains("expected an integer"), "{msg}");
}

#[test]
fn float_and_bool_targets() {
    assert_eq!(from_value::<f64>(Value::Integer(3)).unwrap(), 3.0);
    assert_eq!(from_value::<f32>(Value::Number(0.5)).unwrap(), 0.5);
    assert!(from_value::<bool>(Value::Boolean(true)).unwrap());
    let msg = convert_error(from_value::<f64>(Value::Boolean(true)));
    assert_eq!(msg, "expected a number, found boolean true");
    let msg = convert_error(from_value::<bool>(Value::Integer(1)));
    assert_eq!(msg, "expected a boolean, found number 1");
}

#[test]
fn strings() {
    assert_eq!(from_value::<String>(s("hé")).unwrap(), "hé");
    assert_eq!(from_value::<char>(s("é")).unwrap(), 'é');
    let msg = convert_error(from_value::<String>(Value::Integer(5)));
    assert_eq!(msg, "expected a string, found number 5");
    let msg = convert_error(from_value::<String>(Value::from(vec![0xffu8])));
    assert!(msg.contains("expected a string"), "{msg}");
    let msg = convert_error(from_value::<char>(s("ab")));
    assert!(msg.contains("expected a character"), "{msg}");
    let long = "x".repeat(100);
    let msg = convert_error(from_value::<i32>(s(&long)));
    assert_eq!(msg, "expected an integer, found string of 100 bytes");
}

#[test]
fn bytes_targets() {
    let raw = vec![0u8, 0x80, 0xff];
    assert_eq!(
        from_value::<Bytes>(Value::from(raw.clone())).unwrap(),
        Bytes(raw.clone())
    );
    // A string fills a Vec<u8> (as a sequence of u8), UTF-8 or not.
    assert_eq!(
        from_value::<Vec<u8>>(Value::from(raw.clone())).unwrap(),
        raw
    );
    assert_eq!(
        from_value_ref::<Vec<u8>>(&Value::from(raw.clone())).unwrap(),
        raw
    );
    assert_eq!(
        from_value::<[u8; 3]>(Value::from(raw.clone())).unwrap(),
        [0, 0x80, 0xff]
    );
    let msg = convert_error(from_value::<[u8; 2]>(Value::from(raw.clone())));
    assert!(msg.contains("invalid length 3"), "{msg}");
    // A sequence of small integers is bytes too.
    assert_eq!(
        from_value::<Bytes>(table![1, 2, 255].into()).unwrap(),
        Bytes(vec![1, 2, 255])
    );
    assert_eq!(
        from_value::<Bytes>(Table::new().into()).unwrap(),
        Bytes(vec![])
    );
    let msg = convert_error(from_value::<Bytes>(table![1, 256].into()));
    assert_eq!(
        msg,
        "expected bytes (a string, or a sequence of integers 0 to 255), found a table whose element 2 is number 256"
    );
    let msg = convert_error(from_value::<Bytes>(table![1, table![1, 2]].into()));
    assert!(
        msg.ends_with("found a table whose element 2 is table with 2 entries"),
        "{msg}"
    );
    let msg = convert_error(from_value::<Bytes>(Value::Integer(1)));
    assert!(
        msg.starts_with("expected bytes") && msg.ends_with("found number 1"),
        "{msg}"
    );
    let msg = convert_error(from_value::<Bytes>(table! { "a" => 1 }.into()));
    assert!(
        msg.starts_with("expected bytes") && msg.ends_with("found table with 1 entries"),
        "{msg}"
    );
}

#[test]
fn borrowed_strings() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct View<'a> {
        name: &'a str,
        raw: &'a [u8],
    }
    let v: Value = table! { "name" => "abc", "raw" => vec![0u8, 0xff] }.into();
    let view: View<'_> = from_value_ref(&v).unwrap();
    assert_eq!(
        view,
        View {
            name: "abc",
            raw: &[0, 0xff]
        }
    );
    assert_eq!(view.name.as_ptr(), v["name"].as_bytes().unwrap().as_ptr());
    // Borrowed keys too.
    let v: Value = table! { "k" => 1 }.into();
    let map: HashMap<&str, i32> = from_value_ref(&v).unwrap();
    assert_eq!(map, HashMap::from([("k", 1)]));
}

#[test]
fn sequences() {
    assert_eq!(
        from_value::<Vec<i32>>(table![1, 2, 3].into()).unwrap(),
        vec![1, 2, 3]
    );
    assert_eq!(
        from_value::<Vec<i32>>(Table::new().into()).unwrap(),
        Vec::<i32>::new()
    );
    let msg = convert_error(from_value::<Vec<i32>>(table! { 1 => 1, "x" => 2 }.into()));
    assert_eq!(
        msg,
        r#"expected a sequence (a table with keys 1 to n only), found a table with the key "x""#
    );
    // A hole is not a sequence (a trailing element after it is in the hash part).
    let msg = convert_error(from_value::<Vec<Option<i32>>>(
        table![1, Value::Nil, 3].into(),
    ));
    assert!(msg.ends_with("found a table with the key 3"), "{msg}");
    let msg = convert_error(from_value::<Vec<i32>>(Value::Nil));
    assert_eq!(msg, "expected a sequence (a table), found nil");
    let msg = convert_error(from_value::<Vec<i32>>(table![1, "x"].into()));
    assert!(msg.contains("x"), "{msg}");
}

#[test]
fn tuples_with_holes_read_back() {
    round_trip(&(1, None::<i32>, 3));
    round_trip(&(None::<i32>, 2));
    round_trip(&(1, None::<i32>));
    round_trip(&(None::<i32>, None::<String>));
    round_trip(&Pair(5, None));
    round_trip(&[Some(1), None, Some(3)]);
    assert_eq!(
        from_value::<(i32, i32)>(table![1, 2].into()).unwrap(),
        (1, 2)
    );

    let msg = convert_error(from_value::<(i32, i32)>(table![1, 2, 3].into()));
    assert_eq!(
        msg,
        "expected a tuple of 2 elements (keys 1 to 2), found a table with the key 3"
    );
    let msg = convert_error(from_value::<(i32, i32)>(table! { 1 => 1, "a" => 2 }.into()));
    assert!(msg.ends_with(r#"found a table with the key "a""#), "{msg}");
    let msg = convert_error(from_value::<(i32, i32)>(table![1].into()));
    assert_eq!(msg, "expected an integer, found nil");
    let msg = convert_error(from_value::<(i32, i32)>(Value::Integer(1)));
    assert_eq!(
        msg,
        "expected a tuple of 2 elements (a table), found number 1"
    );
}

#[test]
fn maps_and_structs() {
    let m: HashMap<String, i32> = from_value(table! { "a" => 1, "b" => 2 }.into()).unwrap();
    assert_eq!(m, HashMap::from([("a".into(), 1), ("b".into(), 2)]));
    // Sequence entries are map entries with integer keys.
    let m: BTreeMap<u32, String> = from_value(table!["x", "y"].into()).unwrap();
    assert_eq!(m, BTreeMap::from([(1, "x".into()), (2, "y".into())]));
    let m: HashMap<String, f64> = from_value(Table::new().into()).unwrap();
    assert!(m.is_empty());

    #[derive(Deserialize, Debug, PartialEq)]
    struct S {
        a: i32,
        b: Option<String>,
    }
    // Missing Option fields are None; unknown keys are ignored.
    let v: S = from_value(table! { "a" => 1, "zzz" => table![1, 2] }.into()).unwrap();
    assert_eq!(v, S { a: 1, b: None });
    let msg = convert_error(from_value::<S>(table! { "b" => "x" }.into()));
    assert_eq!(msg, "missing field `a`");
    let msg = convert_error(from_value::<S>(s("x")));
    assert_eq!(msg, r#"expected a table, found string "x""#);
    // Field names must be strings.
    let msg = convert_error(from_value::<S>(table! { "a" => 1, 7 => 2 }.into()));
    assert_eq!(
        msg,
        "expected a string (a field or variant name), found number 7"
    );
    let msg = convert_error(from_value::<HashMap<String, i32>>(Value::Boolean(false)));
    assert_eq!(msg, "expected a table, found boolean false");
}

#[test]
fn enums_from_value() {
    for shape in sample().shapes {
        round_trip(&shape);
    }
    assert_eq!(from_value::<Shape>(s("Empty")).unwrap(), Shape::Empty);
    assert_eq!(from_value::<Shape>(s("Maybe")).unwrap(), Shape::Maybe(None));
    let holes: Value = table! { "Holes" => table! { 2 => 7 } }.into();
    assert_eq!(
        from_value::<Shape>(holes).unwrap(),
        Shape::Holes(None, 7, None)
    );
    let circle: Value = table! { "Circle" => 3 }.into();
    assert_eq!(from_value::<Shape>(circle).unwrap(), Shape::Circle(3.0));

    let msg = convert_error(from_value::<Shape>(s("Hexagon")));
    assert!(msg.contains("unknown variant `Hexagon`"), "{msg}");
    let msg = convert_error(from_value::<Shape>(table! { "Empty" => 1 }.into()));
    assert_eq!(
        msg,
        "expected a unit variant (a bare variant name), found a variant with a payload: number 1"
    );
    let msg = convert_error(from_value::<Shape>(s("Rect")));
    assert!(
        msg.contains("tuple variant") && msg.ends_with("found a bare variant name"),
        "{msg}"
    );
    let msg = convert_error(from_value::<Shape>(s("Labeled")));
    assert!(
        msg.contains("struct variant") && msg.ends_with("found a bare variant name"),
        "{msg}"
    );
    let two: Value = table! { "Circle" => 1, "Rect" => table![1, 2] }.into();
    let msg = convert_error(from_value::<Shape>(two));
    assert_eq!(
        msg,
        "expected an enum variant (a variant name, or a table with one entry {name = payload}), found table with 2 entries"
    );
    let msg = convert_error(from_value::<Shape>(Value::Integer(0)));
    assert!(
        msg.starts_with("expected an enum variant") && msg.ends_with("found number 0"),
        "{msg}"
    );
    let msg = convert_error(from_value::<Shape>(table! { "Labeled" => 5 }.into()));
    assert_eq!(msg, "expected a table, found number 5");
}

#[test]
fn round_trips() {
    let v = round_trip(&sample());
    assert_eq!(v["op_code"], Value::Integer(10));
    assert_eq!(v["payload"], Value::from(vec![0u8, 159, 146, 150, 255]));
    assert!(v["extra"].is_nil());
    round_trip(&Message {
        extra: Some(-1),
        big: 0,
        ..sample()
    });
    round_trip(&vec![HashMap::from([(
        1i64,
        vec![BTreeMap::from([("k".to_string(), (1u8, 'c'))])],
    )])]);
    round_trip(&(
        i64::MIN,
        i64::MAX,
        u64::MIN,
        i64::MAX as u64,
        u32::MAX,
        i8::MIN,
    ));
    round_trip(&Some(Some(3)));
    round_trip(&String::from_utf8(vec![b'a'; 3]).unwrap());
    round_trip(&Bytes(vec![0xc3, 0x28]));
    round_trip(&Bytes(vec![]));
    round_trip(&vec![vec![vec![1.5f32]]]);
    round_trip(&BTreeMap::from([(true, 1), (false, 2)]));
    round_trip(&BTreeMap::from([
        (-1i32, 'a'),
        (0, 'b'),
        (1, 'c'),
        (3, 'd'),
    ]));
    round_trip(&HashMap::<String, Vec<Shape>>::new());
}

#[test]
fn unit_fields_are_absent() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct S {
        a: (),
        b: Option<i32>,
    }
    let v = to_value(&S { a: (), b: None }).unwrap();
    assert_eq!(v, Table::new().into());
    // Like a missing non-Option field; `#[serde(default)]` makes it read back.
    assert_eq!(convert_error(from_value::<S>(v)), "missing field `a`");
}

#[test]
fn non_utf8_strings() {
    let raw = vec![b'h', 0xff, 0x00, b'i'];
    let v = Value::from(raw.clone());
    assert_eq!(from_value::<Vec<u8>>(v.clone()).unwrap(), raw);
    assert_eq!(from_value::<Bytes>(v.clone()).unwrap(), Bytes(raw.clone()));
    assert_eq!(from_value::<Value>(v.clone()).unwrap(), v);
    assert_eq!(to_value(&v).unwrap(), v);
    // As a map key, too.
    let t: Value = Table::from_iter([(raw.clone(), 1)]).into();
    let m: HashMap<Vec<u8>, i32> = from_value(t.clone()).unwrap();
    assert_eq!(m, HashMap::from([(raw.clone(), 1)]));
    assert_eq!(from_value::<Value>(t.clone()).unwrap(), t);
}

#[test]
fn ignored_values_are_not_walked() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct S {
        a: i32,
    }
    let mut deep = Value::Integer(0);
    for _ in 0..1000 {
        deep = table! { "x" => deep }.into();
    }
    let v: S = from_value(table! { "a" => 1, "skip" => deep }.into()).unwrap();
    assert_eq!(v, S { a: 1 });
}

#[test]
fn errors_implement_serde_error_traits() {
    let e = <Error as serde::ser::Error>::custom("ser failed");
    assert_eq!(e, Error::Convert("ser failed".into()));
    let e = <Error as serde::de::Error>::custom("de failed");
    assert_eq!(e, Error::Convert("de failed".into()));
    assert_eq!(e.to_string(), "conversion failed: de failed");
}

/// A value nested a million tables deep goes both ways without overflowing
/// the stack (and drops without recursing).
#[test]
fn million_deep_value() {
    on_small_stack(|| {
        const DEPTH: usize = 1_000_000;
        let mut value = Value::Integer(1);
        for _ in 0..DEPTH {
            value = Table::from_sequence(vec![value]).into();
        }
        let copy = to_value(&value).unwrap();
        drop(value);
        let back: Value = from_value(copy).unwrap();
        // Check the shape iteratively (`from_value_ref` and `==` are covered
        // at a smaller depth below, to keep this test's time down).
        let mut depth = 0;
        let mut cur = &back;
        while let Value::Table(t) = cur {
            assert_eq!(t.len(), 1);
            cur = &t[1];
            depth += 1;
        }
        assert_eq!((depth, cur), (DEPTH, &Value::Integer(1)));
    });
}

/// Runs `f` on a thread with a 256 KiB stack, so only the stack guard keeps
/// deep recursion alive.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

/// The same through the hash part (maps) and a recursive user type.
#[test]
fn deep_maps_and_recursive_types() {
    on_small_stack(|| {
        let mut value = Value::Boolean(true);
        for _ in 0..30_000 {
            value = table! { "next" => value }.into();
        }
        let back: Value = from_value(to_value(&value).unwrap()).unwrap();
        assert!(back == value);
        let back: Value = from_value_ref(&value).unwrap();
        assert!(back == value);
    });
    on_small_stack(|| {
        // Deep enough to cross many stack segments in the bridge.
        const DEPTH: usize = 20_000;
        let mut node = Node { next: None };
        let mut list = List::End;
        for i in 0..DEPTH {
            node = Node {
                next: Some(Box::new(node)),
            };
            list = List::Cons(i, Box::new(list));
        }
        let (node_value, list_value) = (to_value(&node).unwrap(), to_value(&list).unwrap());
        unlink(node, list);
        let node: Node = from_value(node_value).unwrap();
        let list: List = from_value(list_value).unwrap();
        let (mut depth, mut cur) = (0, &node);
        while let Some(next) = &cur.next {
            (depth, cur) = (depth + 1, next);
        }
        assert_eq!(depth, DEPTH);
        let (mut depth, mut cur) = (0, &list);
        while let List::Cons(i, next) = cur {
            assert_eq!(*i, DEPTH - 1 - depth);
            (depth, cur) = (depth + 1, next);
        }
        assert_eq!(depth, DEPTH);
        unlink(node, list);
    });
}

#[derive(Serialize, Deserialize)]
struct Node {
    next: Option<Box<Node>>,
}

#[derive(Serialize, Deserialize)]
enum List {
    Cons(usize, Box<List>),
    End,
}

/// Box's drop glue recurses, so take deep chains apart iteratively.
fn unlink(node: Node, list: List) {
    let mut next = node.next;
    while let Some(mut n) = next {
        next = n.next.take();
    }
    let mut next = list;
    while let List::Cons(_, tail) = next {
        next = *tail;
    }
}
