//! Lua-like values: [`Value`], [`Table`], [`Key`], [`ByteString`].

mod convert;
mod fmt;
mod hash_part;
mod key;
mod macros;
mod serde_impl;
mod string;
mod table;

pub use convert::SequenceElement;
pub use key::{Key, KeyRef};
pub use string::ByteString;
pub use table::{IntoIter, Iter, Table};

pub(crate) use key::{Repr as KeyRepr, float_to_integer};

/// One of the basic Lua types a message can carry: nil, boolean, number
/// (integer or float, kept apart as in Lua 5.3+), string (any bytes) and table.
///
/// `PartialEq` compares structurally: `Integer(1)` and `Number(1.0)` differ
/// (they are different subtypes, and both survive a round trip), floats compare
/// by IEEE rules (NaN differs from itself), tables by content.
#[derive(Clone, PartialEq, Default)]
pub enum Value {
    /// Lua's `nil`: absence of a value.
    #[default]
    Nil,
    /// `true` or `false`.
    Boolean(bool),
    /// A 64-bit integer (Lua's integer subtype).
    Integer(i64),
    /// A 64-bit float (Lua's float subtype).
    Number(f64),
    /// A string of bytes, not necessarily UTF-8.
    String(ByteString),
    /// A table.
    Table(Table),
}

impl Value {
    /// True for `Nil`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// Lua's `type()` name: `"nil"`, `"boolean"`, `"number"`, `"string"` or `"table"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Boolean(_) => "boolean",
            Value::Integer(_) | Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Table(_) => "table",
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Boolean(b) => Some(b),
            _ => None,
        }
    }

    /// The integer, if this is an integer or a float with an exact integer
    /// value (Lua's `math.tointeger`).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Integer(i) => Some(i),
            Value::Number(f) => float_to_integer(f),
            _ => None,
        }
    }

    /// The number as a float, for either number subtype.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Integer(i) => Some(i as f64),
            Value::Number(f) => Some(f),
            _ => None,
        }
    }

    /// The string's bytes, if this is a string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::String(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The string as text, if this is a string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => s.to_str(),
            _ => None,
        }
    }

    /// The table, if this is one.
    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The table, mutably, if this is one.
    pub fn as_table_mut(&mut self) -> Option<&mut Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The table, if this is one.
    pub fn into_table(self) -> Option<Table> {
        match self {
            Value::Table(t) => Some(t),
            _ => None,
        }
    }

    /// Looks `key` up if this is a table: `None` when this is not a table or
    /// the key is absent.
    pub fn get<'k>(&self, key: impl Into<KeyRef<'k>>) -> Option<&Value> {
        self.as_table()?.get(key)
    }
}

impl<'k, K: Into<KeyRef<'k>>> std::ops::Index<K> for Value {
    type Output = Value;
    /// `value["Data"]`: the entry, or [`Value::Nil`] when this is not a
    /// table or the key is absent.
    fn index(&self, key: K) -> &Value {
        self.get(key).unwrap_or(&Value::Nil)
    }
}

#[cfg(test)]
mod tests;
