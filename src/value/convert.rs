//! `From`/`TryFrom` conversions between Rust types and [`Value`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use super::{ByteString, Key, KeyRepr, Table, Value};
use crate::error::{Error, KeyError};

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::Integer(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

macro_rules! try_from_wide_int {
    ($($t:ty),*) => {$(
        impl TryFrom<$t> for Value {
            type Error = Error;
            /// Fails when the number does not fit Lua's 64-bit signed integer.
            fn try_from(v: $t) -> Result<Value, Error> {
                i64::try_from(v).map(Value::Integer).map_err(|_| {
                    Error::Convert(format!("integer {v} does not fit a 64-bit signed integer"))
                })
            }
        }
    )*};
}
try_from_wide_int!(u64, usize, isize, i128, u128);

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Boolean(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Number(v)
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Number(f64::from(v))
    }
}
impl From<()> for Value {
    fn from(_: ()) -> Value {
        Value::Nil
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v.into())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::String(v.as_str().into())
    }
}
impl From<Cow<'_, str>> for Value {
    fn from(v: Cow<'_, str>) -> Value {
        Value::String(v.into_owned().into())
    }
}
impl From<Vec<u8>> for Value {
    /// Bytes become a (binary) string, not a table of numbers.
    fn from(v: Vec<u8>) -> Value {
        Value::String(v.into())
    }
}
impl From<&[u8]> for Value {
    /// Bytes become a (binary) string, not a table of numbers.
    fn from(v: &[u8]) -> Value {
        Value::String(v.into())
    }
}
impl From<ByteString> for Value {
    fn from(v: ByteString) -> Value {
        Value::String(v)
    }
}
impl From<Table> for Value {
    fn from(v: Table) -> Value {
        Value::Table(v)
    }
}
impl From<Key> for Value {
    fn from(k: Key) -> Value {
        match k.into_repr() {
            KeyRepr::Boolean(b) => Value::Boolean(b),
            KeyRepr::Integer(i) => Value::Integer(i),
            KeyRepr::Number(bits) => Value::Number(f64::from_bits(bits)),
            KeyRepr::String(s) => Value::String(s),
        }
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    /// `None` is `Nil`.
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Nil, Into::into)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Types whose `Vec` becomes a table sequence: every type with a `Value`
/// conversion except `u8`, whose vectors and slices are byte strings.
pub trait SequenceElement: Into<Value> + sealed::Sealed {}

macro_rules! sequence_element {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl SequenceElement for $t {}
    )*};
}
sequence_element!(
    Value,
    Table,
    Key,
    ByteString,
    bool,
    i8,
    i16,
    i32,
    i64,
    u16,
    u32,
    f32,
    f64,
    String,
    Vec<u8>,
    ()
);
impl sealed::Sealed for &str {}
impl SequenceElement for &str {}
impl sealed::Sealed for &String {}
impl SequenceElement for &String {}
impl sealed::Sealed for &[u8] {}
impl SequenceElement for &[u8] {}
impl<T: Into<Value>> sealed::Sealed for Option<T> {}
impl<T: Into<Value>> SequenceElement for Option<T> {}
impl<T: SequenceElement> sealed::Sealed for Vec<T> {}
impl<T: SequenceElement> SequenceElement for Vec<T> {}
impl<K: Into<Key>, V: Into<Value>, S: BuildHasher> sealed::Sealed for HashMap<K, V, S> {}
impl<K: Into<Key>, V: Into<Value>, S: BuildHasher> SequenceElement for HashMap<K, V, S> {}
impl<K: Into<Key>, V: Into<Value>> sealed::Sealed for BTreeMap<K, V> {}
impl<K: Into<Key>, V: Into<Value>> SequenceElement for BTreeMap<K, V> {}

impl<T: SequenceElement> From<Vec<T>> for Table {
    /// The elements become keys 1, 2, ...; a `Nil` leaves a hole.
    fn from(v: Vec<T>) -> Table {
        Table::from_sequence(v.into_iter().map(Into::into).collect())
    }
}
impl<T: SequenceElement> From<Vec<T>> for Value {
    /// A table whose sequence part holds the elements.
    fn from(v: Vec<T>) -> Value {
        Value::Table(v.into())
    }
}
impl<T: SequenceElement + Clone> From<&[T]> for Value {
    /// A table whose sequence part holds the elements.
    fn from(v: &[T]) -> Value {
        Value::Table(v.to_vec().into())
    }
}

impl<K: Into<Key>, V: Into<Value>, S: BuildHasher> From<HashMap<K, V, S>> for Table {
    fn from(m: HashMap<K, V, S>) -> Table {
        m.into_iter().collect()
    }
}
impl<K: Into<Key>, V: Into<Value>, S: BuildHasher> From<HashMap<K, V, S>> for Value {
    fn from(m: HashMap<K, V, S>) -> Value {
        Value::Table(m.into())
    }
}
impl<K: Into<Key>, V: Into<Value>> From<BTreeMap<K, V>> for Table {
    fn from(m: BTreeMap<K, V>) -> Table {
        m.into_iter().collect()
    }
}
impl<K: Into<Key>, V: Into<Value>> From<BTreeMap<K, V>> for Value {
    fn from(m: BTreeMap<K, V>) -> Value {
        Value::Table(m.into())
    }
}

impl TryFrom<Value> for Key {
    type Error = KeyError;
    /// Lua's key rules: nil, NaN and tables are refused; `1.0` becomes `1`.
    fn try_from(v: Value) -> Result<Key, KeyError> {
        match v {
            Value::Nil => Err(KeyError::Nil),
            Value::Boolean(b) => Ok(Key::from(b)),
            Value::Integer(i) => Ok(Key::from(i)),
            Value::Number(f) => Key::from_f64(f),
            Value::String(s) => Ok(Key::from(s)),
            Value::Table(_) => Err(KeyError::Table),
        }
    }
}
