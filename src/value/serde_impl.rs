//! The natural serde representation of [`Value`] and [`Table`], like
//! `serde_json::Value`'s: nil is unit, strings are `str` (or bytes when not
//! UTF-8), and a table is a sequence when it has only keys `1..n`, else a map.
//!
//! This lets a `Value` pass through any self-describing serde format (JSON,
//! for instance) and be embedded in other `Serialize` types.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{Key, KeyRef, Table, Value};
use crate::stack::guarded;

/// A string as `str` when it is UTF-8, else as bytes.
fn serialize_string<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serializer.serialize_str(text),
        Err(_) => serializer.serialize_bytes(bytes),
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => serializer.serialize_unit(),
            Value::Boolean(b) => serializer.serialize_bool(*b),
            Value::Integer(i) => serializer.serialize_i64(*i),
            Value::Number(f) => serializer.serialize_f64(*f),
            Value::String(s) => serialize_string(s.as_bytes(), serializer),
            Value::Table(t) => t.serialize(serializer),
        }
    }
}

/// A table key, serialized like the equal [`Value`].
struct KeySer<'a>(KeyRef<'a>);

impl Serialize for KeySer<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            KeyRef::Boolean(b) => serializer.serialize_bool(b),
            KeyRef::Integer(i) => serializer.serialize_i64(i),
            KeyRef::Number(f) => serializer.serialize_f64(f),
            KeyRef::String(s) => serialize_string(s, serializer),
        }
    }
}

impl Serialize for Table {
    /// A sequence when every key is in the sequence part (an empty table
    /// included), else a map of all entries, the sequence part first.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // One function per form keeps each recursive step's frame small.
        guarded(|| {
            if self.hash_len() == 0 {
                serialize_sequence(self.sequence(), serializer)
            } else {
                serialize_entries(self, serializer)
            }
        })
    }
}

fn serialize_sequence<S: Serializer>(values: &[Value], serializer: S) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(values.len()))?;
    for v in values {
        seq.serialize_element(v)?;
    }
    seq.end()
}

fn serialize_entries<S: Serializer>(table: &Table, serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(table.len()))?;
    for (k, v) in table {
        map.serialize_entry(&KeySer(k), v)?;
    }
    map.end()
}

/// Reads a sequence into a table: elements get keys 1, 2, ...; a nil
/// element leaves a hole.
fn table_from_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Table, A::Error> {
    guarded(|| {
        // The hint comes from the input, so a hostile one must not reserve much.
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element::<Value>()? {
            values.push(v);
        }
        Ok(Table::from_sequence(values))
    })
}

/// Reads a map into a table with Lua's key rules: nil, NaN and table keys
/// are errors, a nil value leaves the key absent, and a repeated key keeps
/// the last value.
fn table_from_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<Table, A::Error> {
    guarded(|| {
        let mut table = Table::new();
        while let Some((k, v)) = map.next_entry::<Value, Value>()? {
            let key = Key::try_from(k)
                .map_err(|e| de::Error::custom(format_args!("invalid table key: {e}")))?;
            table.set(key, v);
        }
        Ok(table)
    })
}

/// The error for an integer outside Lua's 64-bit signed range.
fn too_wide<E: de::Error>(v: impl fmt::Display) -> E {
    E::custom(format_args!(
        "integer {v} does not fit a 64-bit signed integer"
    ))
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a nil, boolean, number, string or table")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Boolean(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| too_wide(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| too_wide(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| too_wide(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Number(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        table_from_seq(seq).map(Value::Table)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        table_from_map(map).map(Value::Table)
    }
}

impl<'de> Deserialize<'de> for Value {
    /// Accepts anything a self-describing format holds. Fails on integers
    /// outside `i64` and on map keys that cannot be table keys.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct TableVisitor;

impl<'de> Visitor<'de> for TableVisitor {
    type Value = Table;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table (a sequence or a map)")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Table, A::Error> {
        table_from_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Table, A::Error> {
        table_from_map(map)
    }
}

impl<'de> Deserialize<'de> for Table {
    /// Accepts a sequence or a map.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Table, D::Error> {
        deserializer.deserialize_any(TableVisitor)
    }
}

#[cfg(test)]
mod tests {
    //! The natural form, checked with a serializer that renders which serde
    //! calls were made, and with serde's own simple deserializers.

    use serde::de::IntoDeserializer;
    use serde::de::value::{
        BytesDeserializer, F64Deserializer, I64Deserializer, I128Deserializer, MapDeserializer,
        SeqDeserializer, StrDeserializer, U64Deserializer, U128Deserializer, UnitDeserializer,
    };
    use serde::ser::{self, Impossible};

    use super::*;
    use crate::{Error, table};

    /// Renders the serde calls as text: `unit`, `i64 5`, `str "a"`,
    /// `bytes [255]`, `[..]` for a sequence and `{k: v, ..}` for a map.
    struct Render;

    struct Compound {
        map: bool,
        items: Vec<String>,
    }

    type Unused = Impossible<String, Error>;

    impl Serializer for Render {
        type Ok = String;
        type Error = Error;
        type SerializeSeq = Compound;
        type SerializeTuple = Unused;
        type SerializeTupleStruct = Unused;
        type SerializeTupleVariant = Unused;
        type SerializeMap = Compound;
        type SerializeStruct = Unused;
        type SerializeStructVariant = Unused;

        fn serialize_bool(self, v: bool) -> Result<String, Error> {
            Ok(format!("bool {v}"))
        }
        fn serialize_i8(self, _: i8) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_i16(self, _: i16) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_i32(self, _: i32) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_i64(self, v: i64) -> Result<String, Error> {
            Ok(format!("i64 {v}"))
        }
        fn serialize_u8(self, _: u8) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_u16(self, _: u16) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_u32(self, _: u32) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_u64(self, _: u64) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_f32(self, _: f32) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_f64(self, v: f64) -> Result<String, Error> {
            Ok(format!("f64 {v:?}"))
        }
        fn serialize_char(self, _: char) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_str(self, v: &str) -> Result<String, Error> {
            Ok(format!("str {v:?}"))
        }
        fn serialize_bytes(self, v: &[u8]) -> Result<String, Error> {
            Ok(format!("bytes {v:?}"))
        }
        fn serialize_none(self) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_unit(self) -> Result<String, Error> {
            Ok("unit".into())
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
        ) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: &T,
        ) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<String, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_seq(self, len: Option<usize>) -> Result<Compound, Error> {
            assert!(len.is_some());
            Ok(Compound {
                map: false,
                items: Vec::new(),
            })
        }
        fn serialize_tuple(self, _: usize) -> Result<Unused, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Unused, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Unused, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_map(self, len: Option<usize>) -> Result<Compound, Error> {
            assert!(len.is_some());
            Ok(Compound {
                map: true,
                items: Vec::new(),
            })
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Unused, Error> {
            unreachable!("these tests never serialize this type")
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Unused, Error> {
            unreachable!("these tests never serialize this type")
        }
    }

    impl ser::SerializeSeq for Compound {
        type Ok = String;
        type Error = Error;
        fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
            self.items.push(v.serialize(Render)?);
            Ok(())
        }
        fn end(self) -> Result<String, Error> {
            Ok(format!("[{}]", self.items.join(", ")))
        }
    }

    impl ser::SerializeMap for Compound {
        type Ok = String;
        type Error = Error;
        fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Error> {
            self.items.push(k.serialize(Render)?);
            Ok(())
        }
        fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
            let key = self.items.pop().unwrap();
            self.items.push(format!("{key}: {}", v.serialize(Render)?));
            Ok(())
        }
        fn end(self) -> Result<String, Error> {
            assert!(self.map);
            Ok(format!("{{{}}}", self.items.join(", ")))
        }
    }

    fn render(v: impl Into<Value>) -> String {
        v.into().serialize(Render).unwrap()
    }

    #[test]
    fn serializes_naturally() {
        assert_eq!(render(Value::Nil), "unit");
        assert_eq!(render(true), "bool true");
        assert_eq!(render(-3), "i64 -3");
        assert_eq!(render(2.0), "f64 2.0");
        assert_eq!(render("hé"), r#"str "hé""#);
        assert_eq!(render(vec![0xffu8, 0]), "bytes [255, 0]");
        assert_eq!(render(Table::new()), "[]");
        assert_eq!(
            render(table![1, "a", table![true]]),
            r#"[i64 1, str "a", [bool true]]"#
        );
        // Any key outside 1..n makes a map of every entry, sequence first.
        assert_eq!(
            render(table![10, 20].tap_set("x", 1.5)),
            r#"{i64 1: i64 10, i64 2: i64 20, str "x": f64 1.5}"#
        );
        assert_eq!(
            render(table![1, Value::Nil, 3]),
            "{i64 1: i64 1, i64 3: i64 3}"
        );
        let mut keys = Table::new();
        keys.set(false, 1);
        keys.set(vec![0xffu8], 2);
        keys.try_set(Value::Number(0.5), 3.into()).unwrap();
        assert_eq!(
            render(keys),
            "{bool false: i64 1, bytes [255]: i64 2, f64 0.5: i64 3}"
        );
    }

    trait TapSet {
        fn tap_set(self, k: &str, v: f64) -> Table;
    }

    impl TapSet for Table {
        fn tap_set(mut self, k: &str, v: f64) -> Table {
            self.set(k, v);
            self
        }
    }

    /// An integer or nil, as a self-describing input would hold it.
    struct Opt(Option<i64>);

    impl<'de> Deserializer<'de> for Opt {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Some(i) => visitor.visit_i64(i),
                None => visitor.visit_unit(),
            }
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
            struct enum identifier ignored_any
        }
    }

    impl IntoDeserializer<'_, Error> for Opt {
        type Deserializer = Opt;
        fn into_deserializer(self) -> Opt {
            self
        }
    }

    fn de<'de, D: Deserializer<'de, Error = Error>>(d: D) -> Result<Value, Error> {
        Value::deserialize(d)
    }

    #[test]
    fn deserializes_scalars() {
        assert_eq!(de(UnitDeserializer::<Error>::new()).unwrap(), Value::Nil);
        assert_eq!(de(true.into_deserializer()).unwrap(), Value::Boolean(true));
        assert_eq!(
            de(I64Deserializer::<Error>::new(-4)).unwrap(),
            Value::Integer(-4)
        );
        assert_eq!(de(3u8.into_deserializer()).unwrap(), Value::Integer(3));
        assert_eq!(de((-3i16).into_deserializer()).unwrap(), Value::Integer(-3));
        let max = i64::MAX as u64;
        assert_eq!(
            de(U64Deserializer::<Error>::new(max)).unwrap(),
            Value::Integer(i64::MAX)
        );
        assert_eq!(
            de(I128Deserializer::<Error>::new(-9)).unwrap(),
            Value::Integer(-9)
        );
        assert_eq!(
            de(U128Deserializer::<Error>::new(9)).unwrap(),
            Value::Integer(9)
        );
        assert_eq!(
            de(F64Deserializer::<Error>::new(0.5)).unwrap(),
            Value::Number(0.5)
        );
        assert_eq!(de(1.5f32.into_deserializer()).unwrap(), Value::Number(1.5));
        assert_eq!(
            de(StrDeserializer::<Error>::new("s")).unwrap(),
            Value::from("s")
        );
        assert_eq!(
            de(String::from("o").into_deserializer()).unwrap(),
            Value::from("o")
        );
        assert_eq!(de('c'.into_deserializer()).unwrap(), Value::from("c"));
        let bytes = BytesDeserializer::<Error>::new(&[0xff, 1]);
        assert_eq!(de(bytes).unwrap(), Value::from(vec![0xffu8, 1]));
        // Options and newtypes unwrap.
        assert_eq!(ValueVisitor.visit_none::<Error>().unwrap(), Value::Nil);
        let some = ValueVisitor.visit_some(I64Deserializer::<Error>::new(5));
        assert_eq!(some.unwrap(), Value::Integer(5));
        let newtype = ValueVisitor.visit_newtype_struct(StrDeserializer::<Error>::new("n"));
        assert_eq!(newtype.unwrap(), Value::from("n"));
        let buf = ValueVisitor.visit_byte_buf::<Error>(vec![0xfe]);
        assert_eq!(buf.unwrap(), Value::from(vec![0xfeu8]));
    }

    #[test]
    fn wide_integers_must_fit() {
        let too_big = i64::MAX as u64 + 1;
        let err = de(U64Deserializer::<Error>::new(too_big)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conversion failed: integer 9223372036854775808 does not fit a 64-bit signed integer"
        );
        let err = de(I128Deserializer::<Error>::new(i128::MIN)).unwrap_err();
        assert!(err.to_string().contains(&i128::MIN.to_string()));
        let err = de(U128Deserializer::<Error>::new(u128::MAX)).unwrap_err();
        assert!(err.to_string().contains(&u128::MAX.to_string()));
    }

    #[test]
    fn deserializes_tables() {
        let seq =
            SeqDeserializer::<_, Error>::new([Opt(Some(1)), Opt(None), Opt(Some(3))].into_iter());
        assert_eq!(de(seq).unwrap(), table![1, Value::Nil, 3].into());
        let seq = SeqDeserializer::<_, Error>::new(Vec::<i32>::new().into_iter());
        assert_eq!(de(seq).unwrap(), Table::new().into());
        let entries = [("a", Opt(Some(1))), ("b", Opt(None)), ("a", Opt(Some(2)))];
        let map = MapDeserializer::<_, Error>::new(entries.into_iter());
        assert_eq!(de(map).unwrap(), table! { "a" => 2 }.into());
        // Integral float keys are integers, so these fill the sequence part.
        let map = MapDeserializer::<_, Error>::new(vec![(2.0, "b"), (1.0, "a")].into_iter());
        let v = de(map).unwrap();
        assert_eq!(v.as_table().unwrap().sequence_len(), 2);

        let map = MapDeserializer::<_, Error>::new(vec![((), 1)].into_iter());
        assert_eq!(
            de(map).unwrap_err().to_string(),
            "conversion failed: invalid table key: nil cannot be a table key"
        );
        let map = MapDeserializer::<_, Error>::new(vec![(f64::NAN, 1)].into_iter());
        assert!(
            de(map)
                .unwrap_err()
                .to_string()
                .contains("NaN cannot be a table key")
        );
        let map = MapDeserializer::<_, Error>::new(vec![(vec![1], 1)].into_iter());
        assert!(
            de(map)
                .unwrap_err()
                .to_string()
                .contains("a table cannot be a table key")
        );
    }

    #[test]
    fn table_serde() {
        let t = table! { "a" => 1, 1 => "x" };
        assert_eq!(
            t.serialize(Render).unwrap(),
            r#"{i64 1: str "x", str "a": i64 1}"#
        );
        let seq = SeqDeserializer::<_, Error>::new(vec![1, 2].into_iter());
        assert_eq!(Table::deserialize(seq).unwrap(), table![1, 2]);
        let map = MapDeserializer::<_, Error>::new(vec![("k", true)].into_iter());
        assert_eq!(Table::deserialize(map).unwrap(), table! { "k" => true });
        let err = Table::deserialize(I64Deserializer::<Error>::new(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "conversion failed: invalid type: integer `1`, expected a table (a sequence or a map)"
        );
        // Through the bridge too.
        assert_eq!(crate::to_value(&t).unwrap(), Value::Table(t.clone()));
        assert_eq!(crate::from_value::<Table>(t.clone().into()).unwrap(), t);
    }

    #[test]
    fn non_utf8_string_survives_the_bridge() {
        let v = Value::from(vec![b'a', 0xff]);
        assert_eq!(crate::to_value(&v).unwrap(), v);
        assert_eq!(crate::from_value::<Value>(v.clone()).unwrap(), v);
    }
}
