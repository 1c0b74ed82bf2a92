//! [`Key`] and [`KeyRef`]: what may index a table, with Lua's rules.

use std::fmt;
use std::hash::{Hash, Hasher};

use super::string::{ByteString, write_quoted};
use crate::error::KeyError;

/// A table key: a boolean, a number or a string (never nil, NaN or a table).
///
/// Follows Lua's rule that a float with an integral value is the same key as
/// that integer: `Key::try_from(1.0)` equals `Key::from(1)`. Keys are built
/// with `From` for booleans, integers and strings, and `TryFrom` for floats
/// and [`Value`](crate::Value)s; inspect one with [`Key::as_ref`].
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Repr);

/// Normalised key. `Number` is never NaN and never integral (those are `Integer`).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Repr {
    Boolean(bool),
    Integer(i64),
    /// Bit pattern of a finite-or-infinite, non-integral, non-NaN float.
    Number(u64),
    String(ByteString),
}

/// A borrowed view of a key, used to look keys up and to inspect them.
///
/// Lookups normalise it first, so `KeyRef::Number(2.0)` finds the key `2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeyRef<'a> {
    /// `true` or `false`.
    Boolean(bool),
    /// An integer key (including floats with an integral value).
    Integer(i64),
    /// A float key with a fractional part (or infinite).
    Number(f64),
    /// A string key.
    String(&'a [u8]),
}

/// Converts an integral float to the integer Lua would use as the key.
/// `None` when the float has a fractional part, is infinite, or does not fit.
pub(crate) fn float_to_integer(f: f64) -> Option<i64> {
    // 2^63 as f64; the float range that converts to i64 exactly is [-2^63, 2^63).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f) {
        // In range and integral, so the cast is exact.
        Some(f as i64)
    } else {
        None
    }
}

impl Key {
    /// Builds a key from a float, following Lua: integral values become
    /// integer keys, NaN is refused.
    pub fn from_f64(f: f64) -> Result<Key, KeyError> {
        if f.is_nan() {
            Err(KeyError::NaN)
        } else if let Some(i) = float_to_integer(f) {
            Ok(Key(Repr::Integer(i)))
        } else {
            Ok(Key(Repr::Number(f.to_bits())))
        }
    }

    /// A borrowed view of this key.
    pub fn as_ref(&self) -> KeyRef<'_> {
        match &self.0 {
            Repr::Boolean(b) => KeyRef::Boolean(*b),
            Repr::Integer(i) => KeyRef::Integer(*i),
            Repr::Number(bits) => KeyRef::Number(f64::from_bits(*bits)),
            Repr::String(s) => KeyRef::String(s.as_bytes()),
        }
    }

    /// The integer, if this is an integer key.
    pub fn as_integer(&self) -> Option<i64> {
        match self.0 {
            Repr::Integer(i) => Some(i),
            _ => None,
        }
    }

    /// The string, if this is a string key.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match &self.0 {
            Repr::String(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The string as UTF-8 text, if this is a string key holding UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub(crate) fn repr(&self) -> &Repr {
        &self.0
    }

    pub(crate) fn into_repr(self) -> Repr {
        self.0
    }
}

impl<'a> KeyRef<'a> {
    /// Normalises for lookup: integral floats become integers.
    /// `None` for NaN, which can never be present.
    pub(crate) fn normalize(self) -> Option<KeyRef<'a>> {
        match self {
            KeyRef::Number(f) if f.is_nan() => None,
            KeyRef::Number(f) => Some(match float_to_integer(f) {
                Some(i) => KeyRef::Integer(i),
                None => KeyRef::Number(f),
            }),
            other => Some(other),
        }
    }

    /// An owned key. Fails only for NaN.
    pub fn to_key(self) -> Result<Key, KeyError> {
        Ok(Key(match self {
            KeyRef::Boolean(b) => Repr::Boolean(b),
            KeyRef::Integer(i) => Repr::Integer(i),
            KeyRef::Number(f) => return Key::from_f64(f),
            KeyRef::String(s) => Repr::String(ByteString::from(s)),
        }))
    }
}

// Key and its (normalised) KeyRef must hash alike: both go through this.
fn hash_ref<H: Hasher>(k: &KeyRef<'_>, state: &mut H) {
    match *k {
        KeyRef::Boolean(b) => {
            state.write_u8(1);
            state.write_u8(u8::from(b));
        }
        KeyRef::Integer(i) => {
            state.write_u8(2);
            state.write_i64(i);
        }
        KeyRef::Number(f) => {
            state.write_u8(3);
            state.write_u64(f.to_bits());
        }
        KeyRef::String(s) => {
            state.write_u8(4);
            s.hash(state);
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_ref(&self.as_ref(), state)
    }
}

/// Lookup wrapper: a normalised `KeyRef` that hashes like the equal `Key`.
#[derive(Clone, Copy)]
pub(crate) struct Probe<'a>(pub(crate) KeyRef<'a>);

impl Hash for Probe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_ref(&self.0, state)
    }
}

impl Probe<'_> {
    /// True when the probed key is `key`.
    pub(crate) fn matches(&self, key: &Key) -> bool {
        match (self.0, &key.0) {
            (KeyRef::Boolean(a), Repr::Boolean(b)) => a == *b,
            (KeyRef::Integer(a), Repr::Integer(b)) => a == *b,
            (KeyRef::Number(a), Repr::Number(b)) => a.to_bits() == *b,
            (KeyRef::String(a), Repr::String(b)) => a == b.as_bytes(),
            _ => false,
        }
    }
}

impl indexmap::Equivalent<Key> for Probe<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.matches(key)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_ref(), f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_ref(), f)
    }
}

impl fmt::Display for KeyRef<'_> {
    /// Lua literal syntax: `true`, `10`, `1.5`, `"name"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KeyRef::Boolean(b) => write!(f, "{b}"),
            KeyRef::Integer(i) => write!(f, "{i}"),
            KeyRef::Number(n) => super::fmt::write_float(f, n),
            KeyRef::String(s) => write_quoted(f, s),
        }
    }
}

macro_rules! key_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Key {
            fn from(v: $t) -> Key { Key(Repr::Integer(i64::from(v))) }
        }
        impl From<$t> for KeyRef<'_> {
            fn from(v: $t) -> Self { KeyRef::Integer(i64::from(v)) }
        }
    )*};
}
key_from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<bool> for Key {
    fn from(v: bool) -> Key {
        Key(Repr::Boolean(v))
    }
}
impl From<&str> for Key {
    fn from(v: &str) -> Key {
        Key(Repr::String(v.into()))
    }
}
impl From<String> for Key {
    fn from(v: String) -> Key {
        Key(Repr::String(v.into()))
    }
}
impl From<&String> for Key {
    fn from(v: &String) -> Key {
        Key(Repr::String(v.as_str().into()))
    }
}
impl From<&[u8]> for Key {
    fn from(v: &[u8]) -> Key {
        Key(Repr::String(v.into()))
    }
}
impl From<Vec<u8>> for Key {
    fn from(v: Vec<u8>) -> Key {
        Key(Repr::String(v.into()))
    }
}
impl From<ByteString> for Key {
    fn from(v: ByteString) -> Key {
        Key(Repr::String(v))
    }
}
impl TryFrom<f64> for Key {
    type Error = KeyError;
    fn try_from(v: f64) -> Result<Key, KeyError> {
        Key::from_f64(v)
    }
}
impl TryFrom<f32> for Key {
    type Error = KeyError;
    fn try_from(v: f32) -> Result<Key, KeyError> {
        Key::from_f64(f64::from(v))
    }
}

impl From<bool> for KeyRef<'_> {
    fn from(v: bool) -> Self {
        KeyRef::Boolean(v)
    }
}
impl From<f64> for KeyRef<'_> {
    fn from(v: f64) -> Self {
        KeyRef::Number(v)
    }
}
impl<'a> From<&'a str> for KeyRef<'a> {
    fn from(v: &'a str) -> Self {
        KeyRef::String(v.as_bytes())
    }
}
impl<'a> From<&'a String> for KeyRef<'a> {
    fn from(v: &'a String) -> Self {
        KeyRef::String(v.as_bytes())
    }
}
impl<'a> From<&'a [u8]> for KeyRef<'a> {
    fn from(v: &'a [u8]) -> Self {
        KeyRef::String(v)
    }
}
impl<'a> From<&'a ByteString> for KeyRef<'a> {
    fn from(v: &'a ByteString) -> Self {
        KeyRef::String(v.as_bytes())
    }
}
impl<'a> From<&'a Key> for KeyRef<'a> {
    fn from(v: &'a Key) -> Self {
        v.as_ref()
    }
}
