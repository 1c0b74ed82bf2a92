//! Formatting values as Lua literals: `{1, 2, OpCode = 10, ["a b"] = true}`.

use std::fmt;

use super::string::write_quoted;
use super::{KeyRef, Table, Value};
use crate::stack::guarded;

/// Writes a float so that it reads back as a float: `1.0`, `0.5`, `1e300`,
/// and Lua's spellings of the special values.
pub(crate) fn write_float(f: &mut fmt::Formatter<'_>, x: f64) -> fmt::Result {
    if x.is_nan() {
        f.write_str("0/0")
    } else if x.is_infinite() {
        f.write_str(if x > 0.0 { "1/0" } else { "-1/0" })
    } else {
        // `{:?}` is the shortest text that reads back exactly, and keeps `.0`.
        write!(f, "{x:?}")
    }
}

/// Lua's reserved words, which cannot be written as bare field names.
const LUA_KEYWORDS: [&str; 22] = [
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
];

fn is_identifier(s: &[u8]) -> bool {
    let Some((first, rest)) = s.split_first() else {
        return false;
    };
    (first.is_ascii_alphabetic() || *first == b'_')
        && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && std::str::from_utf8(s).is_ok_and(|s| !LUA_KEYWORDS.contains(&s))
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Value {
    /// Lua constructor syntax, on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Number(x) => write_float(f, *x),
            Value::String(s) => write_quoted(f, s.as_bytes()),
            Value::Table(t) => fmt::Display::fmt(t, f),
        }
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Table {
    /// Lua constructor syntax: the sequence part positionally, then `name = v`
    /// or `[key] = v` for the rest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        guarded(|| {
            f.write_str("{")?;
            for (n, (k, v)) in self.iter().enumerate() {
                if n > 0 {
                    f.write_str(", ")?;
                }
                match k {
                    _ if n < self.sequence_len() => {}
                    KeyRef::String(s) if is_identifier(s) => {
                        // is_identifier checked that s is ASCII.
                        write!(f, "{} = ", String::from_utf8_lossy(s))?;
                    }
                    k => write!(f, "[{k}] = ")?,
                }
                fmt::Display::fmt(v, f)?;
            }
            f.write_str("}")
        })
    }
}
