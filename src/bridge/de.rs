//! [`from_value`] and [`from_value_ref`]: a serde `Deserializer` that reads a
//! [`Value`].

use std::fmt;

use serde::de::value::SeqDeserializer;
use serde::de::{self, Deserialize, DeserializeOwned, DeserializeSeed, Visitor};

use super::path::{Step, at};
use crate::error::Error;
use crate::stack::guarded;
use crate::value::{ByteString, Key, KeyRef, Table, Value, float_to_integer};

/// Converts a [`Value`] into any `T: Deserialize`, consuming it (strings
/// move into the result without copying).
///
/// Integer fields accept integral floats (`10.0`), a `Vec<u8>` accepts a
/// string, and a missing key reads as nil, so `Option` fields may be absent.
///
/// ```
/// use tablenet::{from_value, table};
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Msg { op_code: u8, data: String, extra: Option<i32> }
/// let msg: Msg = from_value(table! { "op_code" => 10.0, "data" => "hi" }.into()).unwrap();
/// assert_eq!(msg, Msg { op_code: 10, data: "hi".into(), extra: None });
/// ```
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    T::deserialize(Input::from(value))
}

/// Converts a borrowed [`Value`] into any `T: Deserialize<'de>`; `&str` and
/// `&[u8]` fields borrow from `value`. Otherwise the same as [`from_value`].
// lib.rs re-exports only `from_value` and `to_value` so far; until it also
// re-exports this, non-test builds do not use it.
pub fn from_value_ref<'de, T: Deserialize<'de>>(value: &'de Value) -> Result<T, Error> {
    T::deserialize(Input::from(value))
}

/// What the deserializer reads: a value, owned or borrowed. Only strings and
/// tables differ between the two, so only they carry the distinction.
pub(super) enum Input<'de> {
    Nil,
    Boolean(bool),
    Integer(i64),
    Number(f64),
    String(Str<'de>),
    Table(Tab<'de>),
}

pub(super) enum Str<'de> {
    Owned(ByteString),
    Borrowed(&'de [u8]),
}

pub(super) enum Tab<'de> {
    Owned(Table),
    Borrowed(&'de Table),
}

impl From<Value> for Input<'_> {
    fn from(v: Value) -> Self {
        match v {
            Value::Nil => Input::Nil,
            Value::Boolean(b) => Input::Boolean(b),
            Value::Integer(i) => Input::Integer(i),
            Value::Number(f) => Input::Number(f),
            Value::String(s) => Input::String(Str::Owned(s)),
            Value::Table(t) => Input::Table(Tab::Owned(t)),
        }
    }
}

impl<'de> From<&'de Value> for Input<'de> {
    fn from(v: &'de Value) -> Self {
        match v {
            Value::Nil => Input::Nil,
            Value::Boolean(b) => Input::Boolean(*b),
            Value::Integer(i) => Input::Integer(*i),
            Value::Number(f) => Input::Number(*f),
            Value::String(s) => Input::String(Str::Borrowed(s.as_bytes())),
            Value::Table(t) => Input::Table(Tab::Borrowed(t)),
        }
    }
}

impl From<Key> for Input<'_> {
    fn from(k: Key) -> Self {
        Input::from(Value::from(k))
    }
}

impl<'de> From<KeyRef<'de>> for Input<'de> {
    fn from(k: KeyRef<'de>) -> Self {
        match k {
            KeyRef::Boolean(b) => Input::Boolean(b),
            KeyRef::Integer(i) => Input::Integer(i),
            KeyRef::Number(f) => Input::Number(f),
            KeyRef::String(s) => Input::String(Str::Borrowed(s)),
        }
    }
}

impl fmt::Display for Input<'_> {
    /// What was found, for error messages: the Lua type name, with the value
    /// when it is short.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Nil => f.write_str("nil"),
            Input::Boolean(b) => write!(f, "boolean {b}"),
            Input::Integer(i) => write!(f, "number {i}"),
            Input::Number(x) => write!(f, "number {}", Value::Number(*x)),
            Input::String(s) if s.bytes().len() <= 40 => {
                write!(f, "string {:?}", ByteString::from(s.bytes()))
            }
            Input::String(s) => write!(f, "string of {} bytes", s.bytes().len()),
            Input::Table(t) => write!(f, "table with {} entries", t.table().len()),
        }
    }
}

/// "expected X, found Y".
fn mismatch(expected: &str, found: &Input<'_>) -> Error {
    Error::Convert(format!("expected {expected}, found {found}"))
}

impl<'de> Str<'de> {
    fn bytes(&self) -> &[u8] {
        match self {
            Str::Owned(s) => s.as_bytes(),
            Str::Borrowed(b) => b,
        }
    }

    /// Visits as text when the bytes are UTF-8, else as bytes.
    fn visit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Str::Owned(s) => match String::from_utf8(s.into_bytes()) {
                Ok(text) => visitor.visit_string(text),
                Err(e) => visitor.visit_byte_buf(e.into_bytes()),
            },
            Str::Borrowed(b) => match std::str::from_utf8(b) {
                Ok(text) => visitor.visit_borrowed_str(text),
                Err(_) => visitor.visit_borrowed_bytes(b),
            },
        }
    }

    fn visit_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Str::Owned(s) => visitor.visit_byte_buf(s.into_bytes()),
            Str::Borrowed(b) => visitor.visit_borrowed_bytes(b),
        }
    }

    /// Visits the bytes as a sequence of `u8`, so `Vec<u8>` and `[u8; N]`
    /// read strings without `serde_bytes`.
    fn visit_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let mut seq = SeqDeserializer::<_, Error>::new(self.bytes().iter().copied());
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }
}

impl<'de> Tab<'de> {
    fn table(&self) -> &Table {
        match self {
            Tab::Owned(t) => t,
            Tab::Borrowed(t) => t,
        }
    }

    /// Visits the sequence part; the caller has checked there is no hash part.
    fn visit_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Tab::Owned(t) => Elements::new(t.into_iter().map(|(_, v)| v.into())).visit(visitor),
            Tab::Borrowed(t) => Elements::new(t.sequence().iter().map(Input::from)).visit(visitor),
        }
    }

    /// Visits every entry as a map, the sequence part first. `fields`: the
    /// keys are a struct's field names (for error paths).
    fn visit_map<V: Visitor<'de>>(self, fields: bool, visitor: V) -> Result<V::Value, Error> {
        match self {
            Tab::Owned(t) => visitor.visit_map(Entries::new(
                t.into_iter().map(|(k, v)| (k.into(), v.into())),
                fields,
            )),
            Tab::Borrowed(t) => visitor.visit_map(Entries::new(
                t.iter().map(|(k, v)| (k.into(), v.into())),
                fields,
            )),
        }
    }

    /// Visits as a tuple of `len` elements: keys `1..=len`, where a missing
    /// key reads as nil. A tuple with `None` elements is serialized with
    /// holes (`{nil, 2}` is `{[2] = 2}`), so this is what reads it back.
    fn visit_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let table = self.table();
        if table.hash_len() == 0 && table.sequence_len() == len {
            return self.visit_seq(visitor);
        }
        if let Some((key, _)) = table.iter().find(|(k, _)| tuple_slot(*k, len).is_none()) {
            return Err(Error::Convert(format!(
                "expected a tuple of {len} elements (keys 1 to {len}), found a table with the key {key}"
            )));
        }
        let mut slots: Vec<Input<'de>> = std::iter::repeat_with(|| Input::Nil).take(len).collect();
        let mut place = |key: KeyRef<'_>, value: Input<'de>| {
            // Every key has a slot: checked above.
            if let Some(slot) = tuple_slot(key, len).and_then(|i| slots.get_mut(i)) {
                *slot = value;
            }
        };
        match self {
            Tab::Owned(t) => t.into_iter().for_each(|(k, v)| place(k.as_ref(), v.into())),
            Tab::Borrowed(t) => t.iter().for_each(|(k, v)| place(k, v.into())),
        }
        Elements::new(slots.into_iter()).visit(visitor)
    }

    /// The first entry, such as the `(name, payload)` of an enum written as
    /// `{name = payload}`.
    fn into_first_entry(self) -> Option<(Input<'de>, Input<'de>)> {
        match self {
            Tab::Owned(t) => t.into_iter().next().map(|(k, v)| (k.into(), v.into())),
            Tab::Borrowed(t) => t.iter().next().map(|(k, v)| (k.into(), v.into())),
        }
    }
}

/// The zero-based position of `key` in a tuple of `len` elements: keys are
/// the integers `1..=len`.
fn tuple_slot(key: KeyRef<'_>, len: usize) -> Option<usize> {
    let KeyRef::Integer(i) = key else {
        return None;
    };
    let i = usize::try_from(i).ok()?.checked_sub(1)?;
    (i < len).then_some(i)
}

impl<'de> Input<'de> {
    /// Integer targets take integers, and floats with an exact integral
    /// value (Lua scripts often send `10.0`). The visitor checks the range.
    fn visit_integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        /// 2^63 and 2^64: integral floats in between fit only a `u64`.
        const I64_END: f64 = 9_223_372_036_854_775_808.0;
        const U64_END: f64 = 18_446_744_073_709_551_616.0;
        match self {
            Input::Integer(i) => visitor.visit_i64(i),
            Input::Number(f) => match float_to_integer(f) {
                Some(i) => visitor.visit_i64(i),
                None if f.fract() == 0.0 && (I64_END..U64_END).contains(&f) => {
                    // Integral and in range, so the cast is exact.
                    visitor.visit_u64(f as u64)
                }
                None => Err(mismatch("an integer", &self)),
            },
            other => Err(mismatch("an integer", &other)),
        }
    }

    fn visit_float<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::Integer(i) => visitor.visit_f64(i as f64),
            Input::Number(f) => visitor.visit_f64(f),
            other => Err(mismatch("a number", &other)),
        }
    }

    fn visit_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::String(s) => s.visit(visitor),
            other => Err(mismatch("a string", &other)),
        }
    }

    /// Bytes: a string, or a sequence of integers 0 to 255.
    fn visit_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        const EXPECTED: &str = "bytes (a string, or a sequence of integers 0 to 255)";
        match self {
            Input::String(s) => s.visit_bytes(visitor),
            Input::Table(t) if t.table().hash_len() == 0 => {
                let seq = t.table().sequence();
                let byte = |v: &Value| v.as_i64().and_then(|i| u8::try_from(i).ok());
                if let Some((n, bad)) = (1..).zip(seq).find(|(_, v)| byte(v).is_none()) {
                    return Err(Error::Convert(format!(
                        "expected {EXPECTED}, found a table whose element {n} is {}",
                        Input::from(bad)
                    )));
                }
                visitor.visit_byte_buf(seq.iter().filter_map(byte).collect())
            }
            other => Err(mismatch(EXPECTED, &other)),
        }
    }

    fn visit_sequence<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::Table(t) if t.table().hash_len() == 0 => t.visit_seq(visitor),
            Input::Table(t) => {
                let key = t.table().hash_entries().next().map(|(k, _)| k.to_string());
                Err(Error::Convert(format!(
                    "expected a sequence (a table with keys 1 to n only), found a table with the key {}",
                    key.unwrap_or_default()
                )))
            }
            Input::String(s) => s.visit_seq(visitor),
            other => Err(mismatch("a sequence (a table)", &other)),
        }
    }

    fn visit_table<V: Visitor<'de>>(self, fields: bool, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::Table(t) => t.visit_map(fields, visitor),
            other => Err(mismatch("a table", &other)),
        }
    }
}

impl<'de> de::Deserializer<'de> for Input<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::Nil => visitor.visit_unit(),
            Input::Boolean(b) => visitor.visit_bool(b),
            Input::Integer(i) => visitor.visit_i64(i),
            Input::Number(f) => visitor.visit_f64(f),
            Input::String(s) => s.visit(visitor),
            Input::Table(t) if t.table().hash_len() == 0 => t.visit_seq(visitor),
            Input::Table(t) => t.visit_map(false, visitor),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::Boolean(b) => visitor.visit_bool(b),
            other => Err(mismatch("a boolean", &other)),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_integer(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_float(visitor)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_float(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_string(visitor)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_string(visitor)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_string(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_bytes(visitor)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::Nil => visitor.visit_none(),
            other => visitor.visit_some(other),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::Nil => visitor.visit_unit(),
            other => Err(mismatch("nil", &other)),
        }
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_sequence(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::Table(t) => t.visit_tuple(len, visitor),
            Input::String(s) => s.visit_seq(visitor),
            other => Err(mismatch(
                &format!("a tuple of {len} elements (a table)"),
                &other,
            )),
        }
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.visit_table(false, visitor)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.visit_table(true, visitor)
    }

    /// A unit variant is its name; any other variant is `{name = payload}`
    /// (or the bare name when the payload is nil).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        const EXPECTED: &str =
            "an enum variant (a variant name, or a table with one entry {name = payload})";
        match self {
            Input::String(s) => visitor.visit_enum(Variant {
                name: Input::String(s),
                payload: None,
            }),
            Input::Table(t) if t.table().len() == 1 => {
                let (name, payload) = t.into_first_entry().ok_or_else(|| {
                    Error::Convert("a table of one entry yielded none".to_owned())
                })?;
                visitor.visit_enum(Variant {
                    name,
                    payload: Some(payload),
                })
            }
            other => Err(mismatch(EXPECTED, &other)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Input::String(s) => s.visit(visitor),
            other => Err(mismatch("a string (a field or variant name)", &other)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Nothing to walk: dropping the input is enough.
        visitor.visit_unit()
    }
}

/// A table's elements as a serde sequence.
struct Elements<I> {
    iter: I,
    /// Elements handed out so far, to report the length when some are left.
    taken: usize,
}

impl<'de, I: Iterator<Item = Input<'de>>> Elements<I> {
    fn new(iter: I) -> Self {
        Elements { iter, taken: 0 }
    }

    /// Lets `visitor` read the elements, then checks it read them all, so
    /// that a table longer than a fixed-size target is an error.
    fn visit<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        let value = visitor.visit_seq(&mut self)?;
        let left = self.iter.count();
        if left > 0 {
            return Err(de::Error::invalid_length(
                self.taken + left,
                &ExpectedFewer(self.taken),
            ));
        }
        Ok(value)
    }
}

/// "a sequence of n elements", for a visitor that stopped after `n` of them.
struct ExpectedFewer(usize);

impl de::Expected for ExpectedFewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a sequence of {} elements", self.0)
    }
}

impl<'de, I: Iterator<Item = Input<'de>>> de::SeqAccess<'de> for Elements<I> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.iter.next() {
            Some(input) => {
                let index = self.taken;
                self.taken += 1;
                at(guarded(|| seed.deserialize(input)), Step::Index(index)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        match self.iter.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        }
    }
}

/// A table's entries as a serde map.
struct Entries<'de, I> {
    iter: I,
    /// The value of the entry whose key was just handed out.
    value: Option<Input<'de>>,
    /// That entry's key, for error paths.
    key: PathKey,
    /// The keys are a struct's field names.
    fields: bool,
}

impl<'de, I> Entries<'de, I> {
    fn new(iter: I, fields: bool) -> Self {
        Entries {
            iter,
            value: None,
            key: PathKey::Integer(0),
            fields,
        }
    }
}

/// A map key kept for an error's path.
enum PathKey {
    Boolean(bool),
    Integer(i64),
    Number(f64),
    String(ByteString),
}

impl PathKey {
    fn of(input: &Input<'_>) -> PathKey {
        match input {
            Input::Boolean(b) => PathKey::Boolean(*b),
            Input::Integer(i) => PathKey::Integer(*i),
            Input::Number(f) => PathKey::Number(*f),
            Input::String(s) => PathKey::String(ByteString::from(s.bytes())),
            // Never a key.
            Input::Nil | Input::Table(_) => PathKey::Integer(0),
        }
    }

    fn step(&self, fields: bool) -> Step<'_> {
        match self {
            PathKey::Boolean(b) => Step::Key(KeyRef::Boolean(*b)),
            PathKey::Integer(i) => Step::Key(KeyRef::Integer(*i)),
            PathKey::Number(f) => Step::Key(KeyRef::Number(*f)),
            PathKey::String(s) => match s.to_str() {
                Some(name) if fields => Step::Field(name),
                _ => Step::Key(KeyRef::String(s.as_bytes())),
            },
        }
    }
}

impl<'de, I: Iterator<Item = (Input<'de>, Input<'de>)>> de::MapAccess<'de> for Entries<'de, I> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.iter.next() {
            Some((key, value)) => {
                self.value = Some(value);
                self.key = PathKey::of(&key);
                seed.deserialize(key).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        let value = self
            .value
            .take()
            .ok_or_else(|| Error::Convert("map value requested before its key".to_owned()))?;
        at(
            guarded(|| seed.deserialize(value)),
            self.key.step(self.fields),
        )
    }

    fn size_hint(&self) -> Option<usize> {
        match self.iter.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        }
    }
}

/// An enum: its variant name, and the payload unless it was the bare name.
struct Variant<'de> {
    name: Input<'de>,
    payload: Option<Input<'de>>,
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = Error;
    type Variant = Payload<'de>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Payload<'de>), Error> {
        let name = PathKey::of(&self.name);
        let variant = seed.deserialize(self.name)?;
        Ok((variant, Payload(self.payload, name)))
    }
}

/// A variant's payload; `None` when the variant was written as its bare
/// name. Then the variant's name, for error paths.
struct Payload<'de>(Option<Input<'de>>, PathKey);

impl<'de> de::VariantAccess<'de> for Payload<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.0 {
            None => Ok(()),
            Some(payload) => Err(Error::Convert(format!(
                "expected a unit variant (a bare variant name), found a variant with a payload: {payload}"
            ))),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        // A bare name is the variant with a nil payload (`Variant(None)`).
        at(
            guarded(|| seed.deserialize(self.0.unwrap_or(Input::Nil))),
            self.1.step(true),
        )
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Some(payload) => at(
                guarded(|| de::Deserializer::deserialize_tuple(payload, len, visitor)),
                self.1.step(true),
            ),
            None => Err(Error::Convert(format!(
                "expected a tuple variant's {len} elements in {{name = {{...}}}}, found a bare variant name"
            ))),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Some(payload) => at(
                guarded(|| payload.visit_table(true, visitor)),
                self.1.step(true),
            ),
            None => Err(Error::Convert(
                "expected a struct variant's fields in {name = {...}}, found a bare variant name"
                    .to_owned(),
            )),
        }
    }
}
