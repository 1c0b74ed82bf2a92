//! Unit tests for `Value`, `Table`, `Key` and their conversions and formatting.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;
use crate::error::{Error, KeyError};
use crate::table;

// ---------------------------------------------------------------------------
// 1. Key rules
// ---------------------------------------------------------------------------

/// -2^63, exactly representable: the float that is i64::MIN.
const I64_MIN_F64: f64 = i64::MIN as f64;
/// 2^63, the first float above i64::MAX.
const TWO_POW_63: f64 = -I64_MIN_F64;

#[test]
fn key_try_from_value_refuses_nil_nan_and_table() {
    assert_eq!(Key::try_from(Value::Nil), Err(KeyError::Nil));
    assert_eq!(Key::try_from(Value::Number(f64::NAN)), Err(KeyError::NaN));
    assert_eq!(Key::try_from(Value::Number(-f64::NAN)), Err(KeyError::NaN));
    assert_eq!(
        Key::try_from(Value::Table(Table::new())),
        Err(KeyError::Table)
    );
    assert_eq!(Key::try_from(f64::NAN), Err(KeyError::NaN));
    assert_eq!(Key::try_from(f32::NAN), Err(KeyError::NaN));
    assert_eq!(KeyRef::Number(f64::NAN).to_key(), Err(KeyError::NaN));
    // Accepted kinds.
    assert_eq!(Key::try_from(Value::Boolean(true)), Ok(Key::from(true)));
    assert_eq!(Key::try_from(Value::Integer(7)), Ok(Key::from(7)));
    assert_eq!(Key::try_from(Value::from("s")), Ok(Key::from("s")));
    // KeyError converts into the crate error.
    assert_eq!(Error::from(KeyError::NaN), Error::InvalidKey(KeyError::NaN));
}

#[test]
fn try_set_refuses_bad_keys_and_changes_nothing() {
    let mut t = table![1, 2];
    t.set("a", 1);
    let before = t.clone();
    assert_eq!(t.try_set(Value::Nil, 5.into()), Err(KeyError::Nil));
    assert_eq!(
        t.try_set(Value::Number(f64::NAN), 5.into()),
        Err(KeyError::NaN)
    );
    assert_eq!(
        t.try_set(Value::Table(table![1]), 5.into()),
        Err(KeyError::Table)
    );
    assert_eq!(t, before);
    assert_eq!(t.len(), 3);
    // A good key through try_set works and returns the previous value.
    assert_eq!(t.try_set(Value::Number(3.0), 9.into()), Ok(None));
    assert_eq!(t.sequence_len(), 3);
    assert_eq!(
        t.try_set(Value::Integer(3), 10.into()),
        Ok(Some(Value::Integer(9)))
    );
}

#[test]
fn nan_lookups_find_nothing() {
    let t = table![1, 2];
    assert_eq!(t.get(f64::NAN), None);
    assert!(!t.contains_key(f64::NAN));
    assert_eq!(t[f64::NAN], Value::Nil);
    let mut t = t;
    assert_eq!(t.remove(f64::NAN), None);
    assert!(t.get_table_mut(f64::NAN).is_none());
    assert_eq!(t.len(), 2);
}

#[test]
fn integral_float_and_integer_are_the_same_key() {
    let mut t = Table::new();
    // Set through the float, read through the integer.
    assert_eq!(t.set(Key::try_from(1.0).unwrap(), "one"), None);
    assert_eq!(t.get(1), Some(&Value::from("one")));
    assert_eq!(t.sequence_len(), 1);
    assert_eq!(t.hash_len(), 0);
    // Set through the integer, read through the float.
    t.set(2, "two");
    assert_eq!(t.get(2.0), Some(&Value::from("two")));
    // Overwrite through the float: same key, one entry.
    assert_eq!(
        t.set(Key::try_from(2.0).unwrap(), "deux"),
        Some(Value::from("two"))
    );
    assert_eq!(t.len(), 2);
    assert_eq!(t.get(2), Some(&Value::from("deux")));
    // Outside the sequence too.
    t.set(Key::try_from(10.0f32).unwrap(), "ten");
    assert_eq!(t.get(10), Some(&Value::from("ten")));
    assert_eq!(t.hash_len(), 1);
    // Removing through the float removes the integer key.
    assert_eq!(t.remove(10.0), Some(Value::from("ten")));
    assert_eq!(t.get(10), None);
    // The key itself is normalised.
    let k = Key::try_from(1.0).unwrap();
    assert_eq!(k, Key::from(1));
    assert_eq!(k.as_integer(), Some(1));
    assert_eq!(k.as_ref(), KeyRef::Integer(1));
    assert_eq!(Key::try_from(Value::Number(4.0)), Ok(Key::from(4)));
    // Value::get and Value indexing normalise too.
    let v = Value::Table(t);
    assert_eq!(v[1.0], Value::from("one"));
    assert_eq!(v.get(2.0), Some(&Value::from("deux")));
}

#[test]
fn negative_zero_is_key_zero() {
    let k = Key::try_from(-0.0).unwrap();
    assert_eq!(k, Key::from(0));
    assert_eq!(k.as_integer(), Some(0));
    let mut t = Table::new();
    t.set(k, "zero");
    assert_eq!(t.get(0), Some(&Value::from("zero")));
    assert_eq!(t.get(0.0), Some(&Value::from("zero")));
    assert_eq!(t.get(-0.0), Some(&Value::from("zero")));
    // Key 0 is not part of the sequence.
    assert_eq!(t.sequence_len(), 0);
    assert_eq!(t.hash_len(), 1);
    t.set(0, "again");
    assert_eq!(t.len(), 1);
    assert_eq!(t.remove(-0.0), Some(Value::from("again")));
    assert!(t.is_empty());
}

#[test]
fn fractional_float_stays_a_float_key() {
    let k = Key::try_from(1.5).unwrap();
    assert_eq!(k.as_integer(), None);
    assert_eq!(k.as_ref(), KeyRef::Number(1.5));
    assert_ne!(k, Key::from(1));
    assert_ne!(k, Key::try_from(2.0).unwrap());
    let mut t = Table::new();
    t.set(1, "int");
    t.set(k, "float");
    assert_eq!(t.len(), 2);
    assert_eq!(t.sequence_len(), 1);
    assert_eq!(t.get(1.5), Some(&Value::from("float")));
    assert_eq!(t.get(1), Some(&Value::from("int")));
    assert_eq!(t.get(2), None);
    // Tiny non-integral values stay floats too.
    let tiny = Key::try_from(5e-324).unwrap();
    assert_eq!(tiny.as_integer(), None);
    t.set(tiny, "tiny");
    assert_eq!(t.get(5e-324), Some(&Value::from("tiny")));
    assert_eq!(t.get(0), None);
    // Turning a key back into a value keeps the float subtype.
    assert_eq!(Value::from(Key::try_from(1.5).unwrap()), Value::Number(1.5));
    assert_eq!(Value::from(Key::try_from(1.0).unwrap()), Value::Integer(1));
}

#[test]
fn huge_and_infinite_floats_are_float_keys() {
    for f in [1e300, -1e300, f64::INFINITY, f64::NEG_INFINITY, TWO_POW_63] {
        let k = Key::try_from(f).unwrap();
        assert_eq!(k.as_integer(), None, "{f} must stay a float key");
        assert_eq!(k.as_ref(), KeyRef::Number(f));
        let mut t = Table::new();
        t.set(k, "x");
        assert_eq!(t.get(f), Some(&Value::from("x")));
        assert_eq!(t.hash_len(), 1);
        // 2^63 must not wrap to i64::MIN or saturate to i64::MAX.
        assert_eq!(t.get(i64::MIN), None);
        assert_eq!(t.get(i64::MAX), None);
    }
    let mut t = Table::new();
    t.set(Key::try_from(f64::INFINITY).unwrap(), "+");
    t.set(Key::try_from(f64::NEG_INFINITY).unwrap(), "-");
    assert_eq!(t.len(), 2);
    assert_eq!(t.get(f64::INFINITY), Some(&Value::from("+")));
    assert_eq!(t.get(f64::NEG_INFINITY), Some(&Value::from("-")));
}

#[test]
fn extreme_integer_keys() {
    let mut t = Table::new();
    t.set(i64::MIN, "min");
    t.set(i64::MAX, "max");
    t.set(-1, "neg");
    assert_eq!(t.get(i64::MIN), Some(&Value::from("min")));
    assert_eq!(t.get(i64::MAX), Some(&Value::from("max")));
    assert_eq!(t.get(-1), Some(&Value::from("neg")));
    assert_eq!(t.sequence_len(), 0);
    assert_eq!(t.hash_len(), 3);
    // -2^63 as a float is exactly i64::MIN, so it is the same key.
    assert_eq!(t.get(I64_MIN_F64), Some(&Value::from("min")));
    assert_eq!(Key::try_from(I64_MIN_F64), Ok(Key::from(i64::MIN)));
    assert_eq!(t.remove(i64::MIN), Some(Value::from("min")));
    assert_eq!(t.get(i64::MIN), None);
    assert_eq!(t.len(), 2);
}

#[test]
fn boolean_and_string_keys_are_distinct_from_numbers() {
    let mut t = Table::new();
    t.set(true, 1);
    t.set(false, 2);
    t.set("1", 3);
    t.set(1, 4);
    t.set(b"\xff\x00".as_slice(), 5);
    assert_eq!(t.len(), 5);
    assert_eq!(t.get(true), Some(&Value::Integer(1)));
    assert_eq!(t.get(false), Some(&Value::Integer(2)));
    assert_eq!(t.get("1"), Some(&Value::Integer(3)));
    assert_eq!(t.get(1), Some(&Value::Integer(4)));
    assert_eq!(t.get(b"\xff\x00".as_slice()), Some(&Value::Integer(5)));
    assert_eq!(t.sequence_len(), 1);
    let owned = String::from("1");
    assert_eq!(t.get(&owned), Some(&Value::Integer(3)));
    let bs = ByteString::from("1");
    assert_eq!(t.get(&bs), Some(&Value::Integer(3)));
}

// ---------------------------------------------------------------------------
// 2. Sequence part and hash part
// ---------------------------------------------------------------------------

#[test]
fn push_appends_and_nil_push_is_a_no_op() {
    let mut t = Table::new();
    assert!(t.is_empty());
    t.push(10);
    t.push("b");
    t.push(Value::Nil);
    t.push(None::<i32>);
    t.push(true);
    assert_eq!(t.sequence_len(), 3);
    assert_eq!(t.len(), 3);
    assert_eq!(t.hash_len(), 0);
    assert_eq!(
        t.sequence(),
        &[Value::Integer(10), Value::from("b"), Value::Boolean(true)]
    );
    assert_eq!(t.get(1), Some(&Value::Integer(10)));
    assert_eq!(t.get(2), Some(&Value::from("b")));
    assert_eq!(t.get(3), Some(&Value::Boolean(true)));
    assert_eq!(t.get(4), None);
    assert_eq!(t.get(0), None);
}

#[test]
fn setting_next_key_absorbs_following_keys_from_hash_part() {
    let mut t = Table::new();
    t.set(3, "c");
    t.set(4, "d");
    t.set(6, "f");
    t.set("name", "n");
    assert_eq!((t.sequence_len(), t.hash_len(), t.len()), (0, 4, 4));

    t.set(1, "a");
    assert_eq!((t.sequence_len(), t.hash_len(), t.len()), (1, 4, 5));

    // Key 2 is n + 1: it joins the sequence and pulls 3 and 4 after it.
    assert_eq!(t.set(2, "b"), None);
    assert_eq!((t.sequence_len(), t.hash_len(), t.len()), (4, 2, 6));
    assert_eq!(
        t.sequence(),
        &[
            Value::from("a"),
            Value::from("b"),
            Value::from("c"),
            Value::from("d")
        ]
    );
    for (k, v) in [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (6, "f")] {
        assert_eq!(t.get(k), Some(&Value::from(v)), "key {k}");
    }
    assert_eq!(t.get(5), None);
    assert_eq!(t.get("name"), Some(&Value::from("n")));

    // push at 5 pulls 6.
    t.push("e");
    assert_eq!((t.sequence_len(), t.hash_len(), t.len()), (6, 1, 7));
    assert_eq!(t.get(6), Some(&Value::from("f")));
    assert_eq!(t.get(7), None);
}

#[test]
fn removing_last_key_shrinks_sequence() {
    let mut t = table![1, 2, 3];
    assert_eq!(t.remove(3), Some(Value::Integer(3)));
    assert_eq!((t.sequence_len(), t.hash_len(), t.len()), (2, 0, 2));
    assert_eq!(t.get(3), None);
    assert_eq!(t.set(2, Value::Nil), Some(Value::Integer(2)));
    assert_eq!((t.sequence_len(), t.hash_len(), t.len()), (1, 0, 1));
    // Removing an absent key returns None and changes nothing.
    assert_eq!(t.remove(2), None);
    assert_eq!(t.remove("nope"), None);
    assert_eq!(t.set(99, Value::Nil), None);
    assert_eq!(t.len(), 1);
    assert_eq!(t.remove(1), Some(Value::Integer(1)));
    assert!(t.is_empty());
    assert_eq!(t.sequence_len(), 0);
}

#[test]
fn removing_middle_key_moves_tail_to_hash_part() {
    let mut t = table![10, 20, 30, 40, 50];
    t.set("x", "y");
    assert_eq!(t.remove(2), Some(Value::Integer(20)));
    assert_eq!(t.sequence_len(), 1);
    assert_eq!(t.hash_len(), 4);
    assert_eq!(t.len(), 5);
    assert_eq!(t.get(1), Some(&Value::Integer(10)));
    assert_eq!(t.get(2), None);
    assert_eq!(t.get(3), Some(&Value::Integer(30)));
    assert_eq!(t.get(4), Some(&Value::Integer(40)));
    assert_eq!(t.get(5), Some(&Value::Integer(50)));
    assert_eq!(t.get("x"), Some(&Value::from("y")));
    assert_eq!(t[2], Value::Nil);

    // Removing from the (now hash-resident) tail.
    assert_eq!(t.remove(4), Some(Value::Integer(40)));
    assert_eq!(t.get(3), Some(&Value::Integer(30)));
    assert_eq!(t.get(5), Some(&Value::Integer(50)));
    assert_eq!(t.len(), 4);

    // Filling the hole absorbs 3 but not 5 (4 is missing).
    assert_eq!(t.set(2, 21), None);
    assert_eq!(t.sequence_len(), 3);
    assert_eq!(t.hash_len(), 2);
    assert_eq!(
        t.sequence(),
        &[Value::Integer(10), Value::Integer(21), Value::Integer(30)]
    );
    t.set(4, 41);
    assert_eq!(t.sequence_len(), 5);
    assert_eq!(t.hash_len(), 1);
    assert_eq!(t.get(5), Some(&Value::Integer(50)));

    // Removing key 1 moves the whole sequence out.
    assert_eq!(t.remove(1), Some(Value::Integer(10)));
    assert_eq!(t.sequence_len(), 0);
    assert_eq!(t.len(), 5);
    for (k, v) in [(2, 21), (3, 30), (4, 41), (5, 50)] {
        assert_eq!(t.get(k), Some(&Value::Integer(v)), "key {k}");
    }
}

#[test]
fn set_returns_previous_value() {
    let mut t = Table::new();
    assert_eq!(t.set(1, "a"), None);
    assert_eq!(t.set(1, "b"), Some(Value::from("a")));
    assert_eq!(t.set("k", 1), None);
    assert_eq!(t.set("k", 2.5), Some(Value::Integer(1)));
    assert_eq!(t.get("k"), Some(&Value::Number(2.5)));
    assert_eq!(t.set("k", Value::Nil), Some(Value::Number(2.5)));
    assert_eq!(t.set("k", Value::Nil), None);
    assert_eq!(t.set(1, Value::Nil), Some(Value::from("b")));
    assert!(t.is_empty());
    assert_eq!(t.hash_len(), 0);
}

#[test]
fn indexing_returns_nil_for_missing_keys() {
    let t = table! { "a" => 1, 1 => "one" };
    assert_eq!(t["a"], Value::Integer(1));
    assert_eq!(t[1], Value::from("one"));
    assert_eq!(t["missing"], Value::Nil);
    assert_eq!(t[2], Value::Nil);
    assert_eq!(t[true], Value::Nil);
    assert_eq!(t[0.5], Value::Nil);
    let v = Value::Table(t);
    assert_eq!(v["a"], Value::Integer(1));
    assert_eq!(v["missing"], Value::Nil);
    assert_eq!(v.get("missing"), None);
    // Indexing a non-table value gives Nil.
    assert_eq!(Value::Integer(3)["a"], Value::Nil);
    assert_eq!(Value::Nil[1], Value::Nil);
    assert_eq!(Value::from("str").get(1), None);
}

#[test]
fn get_table_mut_edits_nested_tables_in_place() {
    let mut t = table! { "inner" => table![1], 1 => table! { "deep" => table![] } };
    t.get_table_mut("inner").unwrap().push(2);
    assert_eq!(t["inner"], Value::Table(table![1, 2]));

    // Through a sequence key, two levels down.
    t.get_table_mut(1)
        .unwrap()
        .get_table_mut("deep")
        .unwrap()
        .set("x", true);
    assert_eq!(t[1]["deep"]["x"], Value::Boolean(true));
    // Through an integral float key.
    t.get_table_mut(1.0).unwrap().set("y", 2);
    assert_eq!(t[1]["y"], Value::Integer(2));

    // Non-table values and missing keys give None.
    t.set("n", 5);
    assert!(t.get_table_mut("n").is_none());
    assert!(t.get_table_mut("missing").is_none());
    assert!(t.get_table_mut(2).is_none());

    // Hash-part integer keys.
    t.set(7, table![]);
    t.get_table_mut(7).unwrap().push("z");
    assert_eq!(t[7][1], Value::from("z"));

    // as_table_mut on Value.
    let mut v = Value::Table(t);
    v.as_table_mut().unwrap().set("added", 1);
    assert_eq!(v["added"], Value::Integer(1));
    assert!(Value::Integer(1).as_table_mut().is_none());
}

#[test]
fn iteration_yields_sequence_then_hash_part() {
    let mut t = table![1, 2];
    t.set("a", "x");
    t.set(10, "y");
    let items: Vec<(KeyRef<'_>, &Value)> = t.iter().collect();
    assert_eq!(t.iter().len(), 4);
    assert_eq!(
        items,
        vec![
            (KeyRef::Integer(1), &Value::Integer(1)),
            (KeyRef::Integer(2), &Value::Integer(2)),
            (KeyRef::String(b"a"), &Value::from("x")),
            (KeyRef::Integer(10), &Value::from("y")),
        ]
    );
    let owned: Vec<(Key, Value)> = t.into_iter().collect();
    assert_eq!(
        owned,
        vec![
            (Key::from(1), Value::Integer(1)),
            (Key::from(2), Value::Integer(2)),
            (Key::from("a"), Value::from("x")),
            (Key::from(10), Value::from("y")),
        ]
    );
}

#[test]
fn hash_part_removal_is_swap_remove() {
    let mut t = table! { "a" => 1, "b" => 2, "c" => 3, "d" => 4 };
    t.remove("b");
    let keys: Vec<String> = t
        .iter()
        .map(|(k, _)| match k {
            KeyRef::String(s) => String::from_utf8(s.to_vec()).unwrap(),
            other => panic!("unexpected key {other}"),
        })
        .collect();
    assert_eq!(keys, ["a", "d", "c"]);
}

#[test]
fn large_hash_part_keeps_order_lookups_and_equality() {
    // Enough keys to outgrow any small-table representation of the hash part.
    let names: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let mut big = Table::new();
    for (i, n) in (0i64..).zip(&names) {
        assert_eq!(big.set(n.as_str(), i), None);
        big.set(-1 - i, i);
    }
    assert_eq!(big.len(), 80);
    assert_eq!(big.sequence_len(), 0);
    for (i, n) in (0i64..).zip(&names) {
        assert_eq!(big.get(n.as_str()), Some(&Value::Integer(i)));
        assert_eq!(big.get(-1 - i), Some(&Value::Integer(i)));
    }
    // Swap-remove order: removing the first entry moves the last into its place.
    assert_eq!(big.remove("k0"), Some(Value::Integer(0)));
    let first = big.iter().next().map(|(k, _)| k);
    assert_eq!(first, Some(KeyRef::Integer(-40)));
    // Shrink back to a handful of entries.
    for (i, n) in (0i64..).zip(&names).skip(1) {
        if i >= 4 {
            big.remove(n.as_str());
        }
        big.remove(-1 - i);
    }
    big.remove(-1);
    assert_eq!(big.len(), 3);
    assert_eq!(big.hash_len(), 3);
    // The same entries built directly compare equal, in either direction,
    // whatever the insertion order.
    let small = table! { "k3" => 3, "k1" => 1, "k2" => 2 };
    assert_eq!(big, small);
    assert_eq!(small, big);
    let mut other = small.clone();
    other.set("k2", 20);
    assert_ne!(big, other);
    assert_ne!(other, big);
    // Float, boolean and integral-float lookups in a big hash part.
    let mut f = Table::new();
    for i in 0..30 {
        f.set(Key::try_from(f64::from(i) + 0.5).unwrap(), i);
        f.set(i + 100, -i);
    }
    f.set(true, "t");
    f.set(Key::try_from(f64::NEG_INFINITY).unwrap(), "-inf");
    assert_eq!(f.len(), 62);
    for i in 0..30 {
        assert_eq!(f.get(f64::from(i) + 0.5), Some(&Value::Integer(i.into())));
        assert_eq!(
            f.get(f64::from(i) + 100.0),
            Some(&Value::Integer((-i).into()))
        );
    }
    assert_eq!(f.get(true), Some(&Value::from("t")));
    assert_eq!(f.get(false), None);
    assert_eq!(f.get(f64::NEG_INFINITY), Some(&Value::from("-inf")));
    assert_eq!(f.remove(105.0), Some(Value::Integer(-5)));
    assert_eq!(f.get(105), None);
    // A big table and its clone.
    let mut t = Table::new();
    for i in 0..100 {
        t.set(i * 2, i);
    }
    assert_eq!(t.clone(), t);
    // Filling the odd keys pulls everything into the sequence.
    for i in 0..100 {
        t.set(i * 2 + 1, i);
    }
    assert_eq!(t.sequence_len(), 199);
    assert_eq!(t.hash_len(), 1); // key 0
    assert_eq!(t.get(0), Some(&Value::Integer(0)));
    assert_eq!(t.get(198), Some(&Value::Integer(99)));
}

#[test]
fn value_accessors() {
    assert!(Value::Nil.is_nil());
    assert!(!Value::Boolean(false).is_nil());
    assert_eq!(Value::default(), Value::Nil);
    assert_eq!(Value::Nil.type_name(), "nil");
    assert_eq!(Value::Boolean(true).type_name(), "boolean");
    assert_eq!(Value::Integer(1).type_name(), "number");
    assert_eq!(Value::Number(1.0).type_name(), "number");
    assert_eq!(Value::from("s").type_name(), "string");
    assert_eq!(Value::Table(Table::new()).type_name(), "table");
    assert_eq!(Value::Number(3.0).as_i64(), Some(3));
    assert_eq!(Value::Number(3.5).as_i64(), None);
    assert_eq!(Value::Number(TWO_POW_63).as_i64(), None);
    assert_eq!(Value::Integer(3).as_f64(), Some(3.0));
    assert_eq!(Value::Boolean(true).as_bool(), Some(true));
    assert_eq!(Value::from(vec![0xffu8]).as_str(), None);
    assert_eq!(Value::from(vec![0xffu8]).as_bytes(), Some(&[0xffu8][..]));
    assert_eq!(Value::from("hi").as_str(), Some("hi"));
    assert_eq!(Value::Table(table![1]).into_table(), Some(table![1]));
    assert_eq!(Value::Integer(1).into_table(), None);
}

// ---------------------------------------------------------------------------
// 3. Model-based property test
// ---------------------------------------------------------------------------

/// A normalised key for the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ModelKey {
    Bool(bool),
    Int(i64),
    Float(u64),
    Str(&'static str),
}

/// How a test spells a key: several spellings normalise to the same key.
#[derive(Clone, Copy, Debug)]
enum KeySpec {
    Int(i64),
    /// An integer written as a float (`3.0`), or `-0.0` for 0.
    IntAsFloat(i64),
    Float(f64),
    Str(&'static str),
    Bool(bool),
}

const STR_KEYS: [&str; 3] = ["a", "b", "end"];
const FLOAT_KEYS: [f64; 4] = [0.5, -2.25, f64::INFINITY, 1e300];

impl KeySpec {
    fn key(self) -> Key {
        match self {
            KeySpec::Int(i) => Key::from(i),
            KeySpec::IntAsFloat(0) => Key::try_from(-0.0).unwrap(),
            KeySpec::IntAsFloat(i) => Key::try_from(i as f64).unwrap(),
            KeySpec::Float(f) => Key::try_from(f).unwrap(),
            KeySpec::Str(s) => Key::from(s),
            KeySpec::Bool(b) => Key::from(b),
        }
    }

    fn key_ref(self) -> KeyRef<'static> {
        match self {
            KeySpec::Int(i) => KeyRef::Integer(i),
            KeySpec::IntAsFloat(0) => KeyRef::Number(-0.0),
            KeySpec::IntAsFloat(i) => KeyRef::Number(i as f64),
            KeySpec::Float(f) => KeyRef::Number(f),
            KeySpec::Str(s) => KeyRef::String(s.as_bytes()),
            KeySpec::Bool(b) => KeyRef::Boolean(b),
        }
    }

    fn model(self) -> ModelKey {
        match self {
            KeySpec::Int(i) | KeySpec::IntAsFloat(i) => ModelKey::Int(i),
            KeySpec::Float(f) => ModelKey::Float(f.to_bits()),
            KeySpec::Str(s) => ModelKey::Str(s),
            KeySpec::Bool(b) => ModelKey::Bool(b),
        }
    }
}

impl ModelKey {
    fn key_ref(&self) -> KeyRef<'static> {
        match *self {
            ModelKey::Bool(b) => KeyRef::Boolean(b),
            ModelKey::Int(i) => KeyRef::Integer(i),
            ModelKey::Float(bits) => KeyRef::Number(f64::from_bits(bits)),
            ModelKey::Str(s) => KeyRef::String(s.as_bytes()),
        }
    }
}

/// Every key the generator can produce, for absence checks.
fn all_model_keys() -> Vec<ModelKey> {
    // Pushes can go past the 0..20 range that keys are drawn from.
    let mut keys: Vec<ModelKey> = (0..=100).map(ModelKey::Int).collect();
    keys.extend(STR_KEYS.iter().map(|s| ModelKey::Str(s)));
    keys.extend([ModelKey::Bool(true), ModelKey::Bool(false)]);
    keys.extend(FLOAT_KEYS.iter().map(|f| ModelKey::Float(f.to_bits())));
    keys
}

#[derive(Clone, Debug)]
enum Op {
    Set(KeySpec, Option<i64>),
    TrySet(KeySpec, Option<i64>),
    Push(Option<i64>),
    Remove(KeySpec),
}

fn key_spec() -> impl Strategy<Value = KeySpec> {
    prop_oneof![
        6 => (0i64..20).prop_map(KeySpec::Int),
        2 => (0i64..20).prop_map(KeySpec::IntAsFloat),
        1 => proptest::sample::select(FLOAT_KEYS.to_vec()).prop_map(KeySpec::Float),
        1 => proptest::sample::select(STR_KEYS.to_vec()).prop_map(KeySpec::Str),
        1 => any::<bool>().prop_map(KeySpec::Bool),
    ]
}

fn opt_value() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 3 => (0i64..1000).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (key_spec(), opt_value()).prop_map(|(k, v)| Op::Set(k, v)),
        1 => (key_spec(), opt_value()).prop_map(|(k, v)| Op::TrySet(k, v)),
        3 => opt_value().prop_map(Op::Push),
        2 => key_spec().prop_map(Op::Remove),
    ]
}

fn to_value(v: Option<i64>) -> Value {
    v.map_or(Value::Nil, Value::Integer)
}

/// Lua's border for the model: the largest n with keys 1..=n all present.
fn model_border(model: &HashMap<ModelKey, i64>) -> i64 {
    let mut n = 0;
    while model.contains_key(&ModelKey::Int(n + 1)) {
        n += 1;
    }
    n
}

fn model_set(model: &mut HashMap<ModelKey, i64>, k: ModelKey, v: Option<i64>) -> Option<i64> {
    match v {
        Some(v) => model.insert(k, v),
        None => model.remove(&k),
    }
}

fn check_against_model(t: &Table, model: &HashMap<ModelKey, i64>) -> Result<(), TestCaseError> {
    t.assert_invariants();
    prop_assert_eq!(t.len(), model.len());
    prop_assert_eq!(t.is_empty(), model.is_empty());
    for k in all_model_keys() {
        let expected = model.get(&k).map(|&v| Value::Integer(v));
        prop_assert_eq!(t.get(k.key_ref()).cloned(), expected, "key {:?}", k);
    }
    // The sequence part is exactly keys 1..=n, with n the border.
    let n = t.sequence_len();
    prop_assert_eq!(n as i64, model_border(model));
    for i in 1..=n as i64 {
        prop_assert!(model.contains_key(&ModelKey::Int(i)));
    }
    prop_assert!(!model.contains_key(&ModelKey::Int(n as i64 + 1)));
    prop_assert_eq!(t.get(n as i64 + 1), None);
    prop_assert_eq!(t.hash_len(), t.len() - n);
    for (i, v) in t.sequence().iter().enumerate() {
        let expected = model.get(&ModelKey::Int(i as i64 + 1)).copied();
        prop_assert_eq!(Some(v.clone()), expected.map(Value::Integer));
    }
    // Iteration visits each entry once, matching the model.
    prop_assert_eq!(t.iter().count(), model.len());
    for (k, v) in t.iter() {
        let found = all_model_keys().into_iter().find(|mk| mk.key_ref() == k);
        let mk = found.ok_or_else(|| TestCaseError::fail(format!("unknown key {k}")))?;
        prop_assert_eq!(Some(v.clone()), model.get(&mk).map(|&x| Value::Integer(x)));
    }
    // Equality is by content: the same entries in another insertion order
    // (and a clone) compare equal.
    let mut entries: Vec<(&ModelKey, &i64)> = model.iter().collect();
    entries.sort_by_key(|(k, _)| format!("{k:?}"));
    entries.reverse();
    let mut rebuilt = Table::new();
    for (k, &v) in entries {
        rebuilt.set(k.key_ref().to_key().unwrap(), v);
    }
    prop_assert_eq!(&rebuilt, t);
    prop_assert_eq!(&t.clone(), t);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn table_matches_hashmap_model(ops in proptest::collection::vec(op(), 0..80)) {
        let mut t = Table::new();
        let mut model: HashMap<ModelKey, i64> = HashMap::new();
        for op in ops {
            match op {
                Op::Set(k, v) => {
                    let prev = t.set(k.key(), to_value(v));
                    let expected = model_set(&mut model, k.model(), v);
                    prop_assert_eq!(prev, expected.map(Value::Integer));
                }
                Op::TrySet(k, v) => {
                    let key_value = match k {
                        KeySpec::Int(i) => Value::Integer(i),
                        KeySpec::IntAsFloat(0) => Value::Number(-0.0),
                        KeySpec::IntAsFloat(i) => Value::Number(i as f64),
                        KeySpec::Float(f) => Value::Number(f),
                        KeySpec::Str(s) => Value::from(s),
                        KeySpec::Bool(b) => Value::Boolean(b),
                    };
                    let prev = t.try_set(key_value, to_value(v)).unwrap();
                    let expected = model_set(&mut model, k.model(), v);
                    prop_assert_eq!(prev, expected.map(Value::Integer));
                }
                Op::Push(v) => {
                    t.push(to_value(v));
                    if let Some(v) = v {
                        let n = model_border(&model);
                        model.insert(ModelKey::Int(n + 1), v);
                    }
                }
                Op::Remove(k) => {
                    let prev = t.remove(k.key_ref());
                    let expected = model.remove(&k.model());
                    prop_assert_eq!(prev, expected.map(Value::Integer));
                }
            }
            check_against_model(&t, &model)?;
        }
    }
}

// ---------------------------------------------------------------------------
// 4. Equality
// ---------------------------------------------------------------------------

#[test]
fn equality_ignores_hash_part_order() {
    let a = table! { "x" => 1, "y" => 2, 10 => "ten", true => false };
    let b = table! { true => false, 10 => "ten", "y" => 2, "x" => 1 };
    assert_eq!(a, b);
    assert_eq!(Value::Table(a.clone()), Value::Table(b.clone()));
    // Order of arrival of sequence keys does not matter either.
    let mut c = Table::new();
    c.set(3, "c");
    c.set(2, "b");
    c.set(1, "a");
    assert_eq!(c, table!["a", "b", "c"]);
    // A differing value or an extra key makes them unequal.
    let mut d = b.clone();
    d.set("y", 3);
    assert_ne!(a, d);
    let mut e = b.clone();
    e.set("z", 0);
    assert_ne!(a, e);
    assert_ne!(e, a);
    // Same length, different keys.
    let f = table! { "x" => 1, "y" => 2, 11 => "ten", true => false };
    assert_ne!(a, f);
    assert_ne!(table![1, 2], table! { 1 => 1, 3 => 2 });
}

#[test]
fn integer_and_float_values_differ() {
    assert_ne!(Value::Integer(1), Value::Number(1.0));
    assert_ne!(Value::Number(1.0), Value::Integer(1));
    assert_eq!(Value::Integer(1), Value::Integer(1));
    assert_eq!(Value::Number(1.0), Value::Number(1.0));
    assert_ne!(table![1], table![1.0]);
    assert_ne!(table! { "k" => 0 }, table! { "k" => 0.0 });
    // ...but an integral float key and the integer key are the same key.
    let mut t = Table::new();
    t.set(Key::try_from(1.0).unwrap(), "v");
    assert_eq!(t, table!["v"]);
}

#[test]
fn nan_is_not_equal_to_itself() {
    let nan = Value::Number(f64::NAN);
    assert_ne!(nan, nan.clone());
    let t = table![f64::NAN];
    assert_ne!(t, t.clone());
    let v = Value::Table(table! { "n" => f64::NAN });
    assert_ne!(v, v.clone());
    // Signed zeros compare equal as values (IEEE).
    assert_eq!(Value::Number(0.0), Value::Number(-0.0));
}

#[test]
fn strings_compare_by_bytes() {
    assert_eq!(Value::from("abc"), Value::from(b"abc".to_vec()));
    assert_ne!(Value::from("abc"), Value::from("abd"));
    assert_ne!(Value::from("1"), Value::Integer(1));
    assert_ne!(Value::Boolean(false), Value::Nil);
}

// ---------------------------------------------------------------------------
// 5. Conversions
// ---------------------------------------------------------------------------

#[test]
fn primitive_conversions() {
    assert_eq!(Value::from(true), Value::Boolean(true));
    assert_eq!(Value::from(-5i8), Value::Integer(-5));
    assert_eq!(Value::from(300i16), Value::Integer(300));
    assert_eq!(Value::from(7i32), Value::Integer(7));
    assert_eq!(Value::from(i64::MIN), Value::Integer(i64::MIN));
    assert_eq!(Value::from(255u8), Value::Integer(255));
    assert_eq!(Value::from(65535u16), Value::Integer(65535));
    assert_eq!(Value::from(u32::MAX), Value::Integer(i64::from(u32::MAX)));
    assert_eq!(Value::from(1.5f64), Value::Number(1.5));
    assert_eq!(Value::from(0.5f32), Value::Number(0.5));
    // A float stays a float even when integral.
    assert_eq!(Value::from(2.0), Value::Number(2.0));
    assert_eq!(Value::from(()), Value::Nil);
    assert_eq!(Value::from("s"), Value::String(ByteString::from("s")));
    assert_eq!(Value::from(String::from("s")), Value::from("s"));
    assert_eq!(Value::from(&String::from("s")), Value::from("s"));
    assert_eq!(
        Value::from(std::borrow::Cow::Borrowed("s")),
        Value::from("s")
    );
}

#[test]
fn wide_integer_conversions_check_range() {
    assert_eq!(Value::try_from(5u64).unwrap(), Value::Integer(5));
    assert_eq!(
        Value::try_from(i64::MAX as u64).unwrap(),
        Value::Integer(i64::MAX)
    );
    assert!(matches!(Value::try_from(u64::MAX), Err(Error::Convert(_))));
    assert!(matches!(
        Value::try_from(i64::MAX as u64 + 1),
        Err(Error::Convert(_))
    ));
    assert_eq!(Value::try_from(7usize).unwrap(), Value::Integer(7));
    assert!(matches!(
        Value::try_from(usize::MAX),
        Err(Error::Convert(_))
    ));
    assert_eq!(Value::try_from(-3isize).unwrap(), Value::Integer(-3));
    assert_eq!(
        Value::try_from(i128::from(i64::MIN)).unwrap(),
        Value::Integer(i64::MIN)
    );
    assert!(matches!(
        Value::try_from(i128::from(i64::MIN) - 1),
        Err(Error::Convert(_))
    ));
    assert!(matches!(Value::try_from(i128::MAX), Err(Error::Convert(_))));
    assert!(matches!(Value::try_from(u128::MAX), Err(Error::Convert(_))));
    assert_eq!(Value::try_from(9u128).unwrap(), Value::Integer(9));
}

#[test]
fn bytes_become_strings_not_tables() {
    let v = Value::from(vec![104u8, 105, 0xff]);
    assert_eq!(v.type_name(), "string");
    assert_eq!(v.as_bytes(), Some(&b"hi\xff"[..]));
    let v = Value::from(&b"hi"[..]);
    assert_eq!(v, Value::from("hi"));
    // A Vec of byte vectors is a table of strings.
    let v = Value::from(vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(v, Value::Table(table!["a", "b"]));
}

#[test]
fn vectors_become_sequences() {
    let v = Value::from(vec![1i32, 2, 3]);
    let t = v.as_table().unwrap();
    assert_eq!(t.sequence_len(), 3);
    assert_eq!(t.hash_len(), 0);
    assert_eq!(
        t.sequence(),
        &[Value::Integer(1), Value::Integer(2), Value::Integer(3)]
    );
    assert_eq!(Value::from(vec!["a", "b"]), Value::Table(table!["a", "b"]));
    assert_eq!(
        Value::from(vec![String::from("a")]),
        Value::Table(table!["a"])
    );
    assert_eq!(
        Value::from(&[1.5f64, 2.5][..]),
        Value::Table(table![1.5, 2.5])
    );
    assert_eq!(Value::from(Vec::<i32>::new()), Value::Table(Table::new()));
    assert_eq!(Table::from(vec![true, false]), table![true, false]);
}

#[test]
fn vector_of_options_leaves_holes() {
    let v = Value::from(vec![Some(1), None, Some(3), None]);
    let t = v.as_table().unwrap();
    assert_eq!(t.sequence_len(), 1);
    assert_eq!(t.len(), 2);
    assert_eq!(t.get(1), Some(&Value::Integer(1)));
    assert_eq!(t.get(2), None);
    assert_eq!(t.get(3), Some(&Value::Integer(3)));
    assert_eq!(t.get(4), None);
    assert_eq!(t, &table![1, Value::Nil, 3]);
    let all_none = Value::from(vec![None::<i32>, None]);
    assert_eq!(all_none, Value::Table(Table::new()));
}

#[test]
fn nested_vectors_become_nested_tables() {
    let v = Value::from(vec![vec![1i64, 2], vec![], vec![3]]);
    assert_eq!(
        v,
        Value::Table(table![table![1, 2], Table::new(), table![3]])
    );
    assert_eq!(v[1][2], Value::Integer(2));
    assert_eq!(v[3][1], Value::Integer(3));
    assert_eq!(v[2].as_table().map(Table::len), Some(0));
}

#[test]
fn maps_become_tables() {
    let mut hm: HashMap<&str, i32> = HashMap::new();
    hm.insert("a", 1);
    hm.insert("b", 2);
    let v = Value::from(hm);
    assert_eq!(v, Value::Table(table! { "a" => 1, "b" => 2 }));

    let mut hm2: HashMap<String, Vec<i32>> = HashMap::new();
    hm2.insert("list".into(), vec![1, 2]);
    assert_eq!(Table::from(hm2), table! { "list" => table![1, 2] });

    // Integer keys 1..=n of a map land in the sequence part.
    let bm: BTreeMap<i64, &str> = [(2, "b"), (1, "a"), (3, "c"), (5, "e")].into();
    let t = Table::from(bm);
    assert_eq!(t.sequence_len(), 3);
    assert_eq!(t.hash_len(), 1);
    assert_eq!(t, table! { 1 => "a", 2 => "b", 3 => "c", 5 => "e" });

    // Map values that are None are not stored.
    let bm: BTreeMap<&str, Option<i32>> = [("x", Some(1)), ("y", None)].into();
    let v = Value::from(bm);
    assert_eq!(v.as_table().unwrap().len(), 1);
    assert_eq!(v["x"], Value::Integer(1));
}

#[test]
fn options_convert_to_nil_or_value() {
    assert_eq!(Value::from(None::<i32>), Value::Nil);
    assert_eq!(Value::from(Some(5)), Value::Integer(5));
    assert_eq!(Value::from(Some("s")), Value::from("s"));
    assert_eq!(Value::from(Some(Some(1.5))), Value::Number(1.5));
    assert_eq!(Value::from(Some(None::<bool>)), Value::Nil);
}

#[test]
fn table_macro_forms() {
    let empty = table! {};
    assert!(empty.is_empty());

    let msg = table! { "OpCode" => 10, "Data" => "From server" };
    assert_eq!(msg.len(), 2);
    assert_eq!(msg.sequence_len(), 0);
    assert_eq!(msg["OpCode"], Value::Integer(10));
    assert_eq!(msg["Data"], Value::from("From server"));

    let list = table![1, 2, "three"];
    assert_eq!(list.sequence_len(), 3);
    assert_eq!(list.hash_len(), 0);
    assert_eq!(list[3], Value::from("three"));

    let trailing = table![1, 2,];
    assert_eq!(trailing, table![1, 2]);
    let trailing = table! { "a" => 1, };
    assert_eq!(trailing.len(), 1);

    let holes = table![1, Value::Nil, 3];
    assert_eq!(holes.len(), 2);
    assert_eq!(holes.sequence_len(), 1);
    assert_eq!(holes.get(2), None);
    assert_eq!(holes.get(3), Some(&Value::Integer(3)));

    let leading_nil = table![Value::Nil, 2];
    assert_eq!(leading_nil.sequence_len(), 0);
    assert_eq!(leading_nil.get(2), Some(&Value::Integer(2)));

    let nil_value = table! { "x" => Value::Nil, "y" => 1 };
    assert_eq!(nil_value.len(), 1);
    assert!(!nil_value.contains_key("x"));

    let int_keys = table! { 2 => "b", 1 => "a" };
    assert_eq!(int_keys.sequence_len(), 2);

    let nested = table! { "list" => table![1, 2], "ok" => true };
    assert_eq!(nested["list"][2], Value::Integer(2));
}

#[test]
fn table_from_iterator_and_extend() {
    let t: Table = vec![("a", 1), ("b", 2)].into_iter().collect();
    assert_eq!(t, table! { "a" => 1, "b" => 2 });
    let mut t = t;
    t.extend([(1, "x"), (2, "y")]);
    assert_eq!(t.sequence_len(), 2);
    assert_eq!(t.len(), 4);
    let t: Table = (1..=3).map(|i: i64| (i, i * 10)).collect();
    assert_eq!(t, table![10, 20, 30]);
}

// ---------------------------------------------------------------------------
// 6. Display / Debug
// ---------------------------------------------------------------------------

#[test]
fn display_scalars() {
    assert_eq!(Value::Nil.to_string(), "nil");
    assert_eq!(Value::Boolean(true).to_string(), "true");
    assert_eq!(Value::Integer(-5).to_string(), "-5");
    assert_eq!(Value::Integer(i64::MIN).to_string(), "-9223372036854775808");
    assert_eq!(Value::Number(1.0).to_string(), "1.0");
    assert_eq!(Value::Number(0.5).to_string(), "0.5");
    assert_eq!(Value::Number(-0.0).to_string(), "-0.0");
    assert_eq!(Value::Number(f64::INFINITY).to_string(), "1/0");
    assert_eq!(Value::Number(f64::NEG_INFINITY).to_string(), "-1/0");
    assert_eq!(Value::Number(f64::NAN).to_string(), "0/0");
    assert_eq!(Value::Number(1e300).to_string(), "1e300");
    assert_eq!(Value::from("hi").to_string(), "\"hi\"");
}

#[test]
fn display_escapes_strings() {
    let v = Value::from(b"a\"b\\c\n\r\t\x00\x1b\x7f".to_vec());
    assert_eq!(v.to_string(), r#""a\"b\\c\n\r\t\x00\x1B\x7F""#);
    // Invalid UTF-8 bytes are escaped one by one.
    let v = Value::from(vec![b'o', b'k', 0xff, 0xfe, b'!']);
    assert_eq!(v.to_string(), r#""ok\xFF\xFE!""#);
    // A truncated multi-byte sequence.
    let v = Value::from(vec![0xe2u8, 0x82]);
    assert_eq!(v.to_string(), r#""\xE2\x82""#);
    // Printable non-ASCII text stays as is; C1 controls are escaped.
    assert_eq!(Value::from("é€").to_string(), "\"é€\"");
    assert_eq!(Value::from("\u{85}").to_string(), r#""\xC2\x85""#);
    // ByteString's Debug quotes too; its Display is the lossy text.
    let bs = ByteString::from(&b"x\xff"[..]);
    assert_eq!(format!("{bs:?}"), r#""x\xFF""#);
    assert_eq!(bs.to_string(), "x\u{FFFD}");
}

#[test]
fn display_table_constructor_syntax() {
    let mut t = table![1, 2, "three"];
    t.set("OpCode", 10);
    t.set("a b", true);
    t.try_set(Value::Number(1.5), 2.into()).unwrap();
    assert_eq!(
        t.to_string(),
        r#"{1, 2, "three", OpCode = 10, ["a b"] = true, [1.5] = 2}"#
    );
    assert_eq!(format!("{t:?}"), t.to_string());
    let v = Value::Table(t);
    assert_eq!(format!("{v:?}"), v.to_string());
    assert_eq!(
        v.to_string(),
        r#"{1, 2, "three", OpCode = 10, ["a b"] = true, [1.5] = 2}"#
    );

    assert_eq!(Table::new().to_string(), "{}");
    assert_eq!(table![1.0, -0.0].to_string(), "{1.0, -0.0}");
    assert_eq!(table![1, Value::Nil, 3].to_string(), "{1, [3] = 3}");
    assert_eq!(
        table! { "list" => table![1, 2], "ok" => true }.to_string(),
        "{list = {1, 2}, ok = true}"
    );
}

#[test]
fn display_brackets_non_identifier_keys() {
    let cases: [(Key, &str); 14] = [
        (Key::from("name"), "{name = 1}"),
        (Key::from("_x1"), "{_x1 = 1}"),
        (Key::from("end"), r#"{["end"] = 1}"#),
        (Key::from("nil"), r#"{["nil"] = 1}"#),
        (Key::from("goto"), r#"{["goto"] = 1}"#),
        (Key::from("End"), "{End = 1}"),
        (Key::from("1abc"), r#"{["1abc"] = 1}"#),
        (Key::from(""), r#"{[""] = 1}"#),
        (Key::from("é"), r#"{["é"] = 1}"#),
        (Key::from(&b"\xff"[..]), r#"{["\xFF"] = 1}"#),
        (Key::from(true), "{[true] = 1}"),
        (Key::from(-1), "{[-1] = 1}"),
        (Key::try_from(f64::INFINITY).unwrap(), "{[1/0] = 1}"),
        (Key::try_from(-0.5).unwrap(), "{[-0.5] = 1}"),
    ];
    for (k, expected) in cases {
        let mut t = Table::new();
        t.set(k, 1);
        assert_eq!(t.to_string(), expected);
    }
    // Key's own Display/Debug is the literal.
    assert_eq!(Key::from("a b").to_string(), r#""a b""#);
    assert_eq!(format!("{:?}", Key::try_from(2.5).unwrap()), "2.5");
    assert_eq!(KeyRef::Number(f64::NEG_INFINITY).to_string(), "-1/0");
}

// ---------------------------------------------------------------------------
// 7. Deep values
// ---------------------------------------------------------------------------

/// A million nested tables, as the contract promises.
const DEEP: usize = 1_000_000;

/// `depth` tables, each holding the next at key 1; the innermost is empty.
fn nested_in_sequence(depth: usize) -> Value {
    let mut v = Value::Table(Table::new());
    for _ in 1..depth {
        let mut t = Table::new();
        t.push(v);
        v = Value::Table(t);
    }
    v
}

/// `depth` tables, each holding the next at key "k"; the innermost is empty.
fn nested_in_hash(depth: usize) -> Value {
    let mut v = Value::Table(Table::new());
    for _ in 1..depth {
        let mut t = Table::new();
        t.set("k", v);
        v = Value::Table(t);
    }
    v
}

fn on_small_stack(stack: usize, f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deep_sequence_clone_eq_display_drop_on_small_stack() {
    on_small_stack(256 * 1024, || {
        let v = nested_in_sequence(DEEP);
        let c = v.clone();
        assert!(v == c);
        let s = format!("{v}");
        assert_eq!(s.len(), 2 * DEEP);
        // `assert!` rather than `assert_eq!`: a failure must not print megabytes.
        assert!(s == format!("{}{}", "{".repeat(DEEP), "}".repeat(DEEP)));
        drop(s);
        // A difference at the very bottom is found.
        let mut c = c;
        let mut cur = c.as_table_mut().unwrap();
        for _ in 1..DEEP {
            cur = cur.get_table_mut(1).unwrap();
        }
        assert!(cur.is_empty());
        cur.set("bottom", true);
        assert!(v != c);
        drop(v);
        drop(c);
    });
}

#[test]
fn deep_hash_clone_eq_display_drop_on_small_stack() {
    on_small_stack(256 * 1024, || {
        let v = nested_in_hash(DEEP);
        let c = v.clone();
        assert!(v == c);
        let s = format!("{v:?}");
        // "{k = " and "}" per outer table, "{}" innermost.
        assert_eq!(s.len(), 6 * (DEEP - 1) + 2);
        let expected = format!("{}{{}}{}", "{k = ".repeat(DEEP - 1), "}".repeat(DEEP - 1));
        assert!(s == expected);
        drop(s);
        drop(c);
        drop(v);
    });
}

#[test]
fn deep_value_drops_on_64k_stack() {
    on_small_stack(64 * 1024, || {
        let v = nested_in_sequence(DEEP);
        drop(v);
        let v = nested_in_hash(DEEP);
        drop(v);
        // Mixed: alternate sequence and hash nesting, with siblings.
        let mut v = Value::Table(Table::new());
        for i in 0..DEEP {
            let mut t = table![1, "x"];
            if i % 2 == 0 {
                t.push(v);
            } else {
                t.set(true, v);
            }
            v = Value::Table(t);
        }
        drop(v);
    });
}

#[test]
fn deep_table_drops_through_into_iter_on_64k_stack() {
    on_small_stack(64 * 1024, || {
        // Dropping an owning iterator that still holds the deep content.
        let t = nested_in_sequence(DEEP).into_table().unwrap();
        drop(t.into_iter());
        // Taking the one entry out and dropping it separately.
        let t = nested_in_hash(DEEP).into_table().unwrap();
        let mut it = t.into_iter();
        let (k, inner) = it.next().unwrap();
        assert_eq!(k, Key::from("k"));
        assert!(it.next().is_none());
        drop(it);
        drop(inner);
    });
}

#[test]
fn deep_mixed_walks_on_64k_stack() {
    // Clone, compare and format on a thread whose whole stack is about the
    // size of one red zone, nesting alternately under key 1 and key "k".
    // 100,000 levels: the million-level walks are covered above on 256 KiB.
    const DEPTH: usize = 100_000;
    on_small_stack(64 * 1024, || {
        let mut v = Value::Table(Table::new());
        for i in 1..DEPTH {
            let mut t = Table::new();
            if i % 2 == 0 {
                t.push(v);
            } else {
                t.set("k", v);
            }
            v = Value::Table(t);
        }
        let c = v.clone();
        assert!(v == c);
        let s = v.to_string();
        // DEPTH - 1 wrappers, half "{k = …}" (6 bytes), half "{…}" (2 bytes).
        let hash_levels = DEPTH / 2;
        let seq_levels = DEPTH - 1 - hash_levels;
        assert_eq!(s.len(), 6 * hash_levels + 2 * seq_levels + 2);
        assert!(format!("{c:?}") == s);
    });
}

#[test]
fn values_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Value>();
    assert_send_sync::<Table>();
    assert_send_sync::<Key>();
    assert_send_sync::<ByteString>();
}

#[test]
fn short_strings_are_inline_and_sizes_stay_small() {
    use std::mem::size_of;
    // Inline storage must not make values bigger than a Vec-backed string.
    assert_eq!(size_of::<ByteString>(), size_of::<Vec<u8>>());
    // Six words: a table's array part, 32-bit counts and a two-word hash
    // part fit beside the tag.
    assert_eq!(size_of::<Value>(), 48);
    // Around the inline limit, contents and conversions are exact.
    for n in [0usize, 1, 15, 16, 17, 100] {
        let bytes: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let s = ByteString::from(bytes.clone());
        assert_eq!(s.as_bytes(), bytes.as_slice());
        assert_eq!(ByteString::from(bytes.as_slice()), s);
        assert_eq!(s.clone().into_bytes(), bytes);
    }
}

#[test]
fn sequences_with_holes_stay_in_the_array_part() {
    // {nil, true, true}: a sequence with a hole, as in Lua, not hash entries.
    let mut t = table![Value::Nil, true, true];
    t.assert_invariants();
    assert_eq!((t.sequence_len(), t.hash_len(), t.len()), (0, 2, 2));
    assert_eq!(t.array_slots(), 3);
    assert_eq!(t.get(1), None);
    assert_eq!(t.get(3), Some(&Value::Boolean(true)));
    // Filling the hole joins everything to the sequence.
    t.set(1, "one");
    t.assert_invariants();
    assert_eq!((t.sequence_len(), t.hash_len()), (3, 0));
    // Iteration is in key order, the sequence first.
    let keys: Vec<String> = t.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(keys, ["1", "2", "3"]);

    // Keys far past the array stay in the hash part.
    let mut sparse = Table::new();
    sparse.set(1000, 1);
    sparse.set(5, 1);
    sparse.assert_invariants();
    assert_eq!((sparse.array_slots(), sparse.hash_len()), (0, 2));
    // Up to half empty is fine: keys 2, 4, 6, ... all in the array.
    let mut evens = Table::new();
    for i in (2..=200).step_by(2) {
        evens.set(i, i);
        evens.assert_invariants();
    }
    assert_eq!(
        (evens.array_slots(), evens.sequence_len(), evens.len()),
        (200, 0, 100)
    );
    // Emptying most of an array moves what is left past the hole to the
    // hash part, so a big emptied array does not hold memory.
    for i in (2..=180).step_by(2) {
        evens.set(i, Value::Nil);
        evens.assert_invariants();
    }
    assert_eq!((evens.array_slots(), evens.len()), (0, 10));
    assert_eq!(evens.get(200), Some(&Value::Integer(200)));
    // Refilling brings them back into the array part, in order.
    for i in (1..=199).step_by(2) {
        evens.set(i, i);
        evens.assert_invariants();
    }
    assert_eq!(
        (evens.sequence_len(), evens.len(), evens.array_slots()),
        (1, 110, 200)
    );
    assert_eq!(evens.get(199), Some(&Value::Integer(199)));
    assert_eq!(evens, evens.clone());
}

#[test]
fn tables_that_split_their_keys_differently_are_equal() {
    // Key 4 set first goes to the hash part (the array is empty); set after
    // 1 and 2 it goes to the array part. Same entries, so equal.
    let mut a = Table::new();
    a.set(4, "d");
    a.set(1, "a");
    a.set(2, "b");
    let mut b = Table::new();
    b.set(1, "a");
    b.set(2, "b");
    b.set(4, "d");
    a.assert_invariants();
    b.assert_invariants();
    assert_ne!(a.array_slots(), b.array_slots());
    assert_eq!(a, b);
    b.set(4, "e");
    assert_ne!(a, b);
}
