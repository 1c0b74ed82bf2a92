//! [`Value`] <-> Lua values.
//!
//! Lua to [`Value`] walks the table graph, so it has to defend itself:
//! a table that contains itself would loop forever, and a table that holds
//! the same subtable twice at every level (`t = {t, t}` nested 64 times)
//! stands for 2^64 values. A cycle is detected with the tables on the current
//! path (a subtable shared twice is legal and is converted twice), and the
//! total number of values, the bytes of strings and the nesting depth are
//! bounded by [`ConvertLimits`].

use std::collections::HashSet;
use std::ffi::c_void;
use std::fmt::Write as _;

use mlua::Lua;

use super::cdata::Cdata;
use crate::net::Config;
use crate::proto::Limits;
use crate::stack::guarded;
use crate::value::{Key, KeyRef, Table, Value};

/// Bounds on a Lua value converted to a [`Value`] (for sending).
///
/// The defaults match the default [`Config`]: tables nest at most 128
/// deep, strings add up to at most 16 MiB (a larger message cannot be sent
/// anyway), and one message holds at most a million values (keys count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvertLimits {
    /// Deepest nesting of tables (`{}` is depth 1).
    pub max_depth: usize,
    /// Most values (table keys, table values and the root) in one conversion.
    pub max_values: usize,
    /// Most bytes of strings (keys and values) in one conversion.
    pub max_bytes: usize,
}

impl ConvertLimits {
    /// Default for [`ConvertLimits::max_values`].
    pub const DEFAULT_MAX_VALUES: usize = 1_000_000;

    /// The limits that suit a network with `config`: its depth limit, its
    /// maximum frame size as the byte budget, and the default value count.
    pub fn for_config(config: &Config) -> ConvertLimits {
        ConvertLimits {
            max_depth: config.limits.max_depth,
            max_values: Self::DEFAULT_MAX_VALUES,
            max_bytes: config.limits.max_frame_size,
        }
    }
}

impl Default for ConvertLimits {
    fn default() -> ConvertLimits {
        ConvertLimits {
            max_depth: Limits::DEFAULT_MAX_DEPTH,
            max_values: Self::DEFAULT_MAX_VALUES,
            max_bytes: Limits::DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// Why a Lua value cannot become a [`Value`]. The text names the problem and
/// where it is (`at packet.list[3]`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// A function, userdata, coroutine (thread), light userdata or other
    /// value that only means something inside this Lua state.
    #[error(
        "cannot send a {type_name}{}: only nil, boolean, number, string and table values travel",
        at(path)
    )]
    Unsendable {
        /// The Lua type name (`function`, `userdata`, `thread`...).
        type_name: &'static str,
        /// Where it is, in Lua syntax relative to the message (`.a[2]`).
        path: String,
    },
    /// A table key that is not a boolean, number or string.
    #[error(
        "cannot send a table with a {type_name} as a key{}: keys must be booleans, numbers or strings",
        at(path)
    )]
    BadKey {
        /// The key's Lua type name.
        type_name: &'static str,
        /// The table that has the key.
        path: String,
    },
    /// A LuaJIT `uint64_t` above `i64::MAX` (integers travel as `i64`).
    #[error(
        "cannot send {value}{}: integers travel as 64-bit signed integers, at most 9223372036854775807",
        at(path)
    )]
    OutOfRange {
        /// The value as Lua prints it (`18446744073709551615ULL`).
        value: String,
        /// Where it is.
        path: String,
    },
    /// Two keys of one table that become the same key once converted
    /// (LuaJIT: `5LL` and `5` are different Lua keys, one integer key here).
    #[error(
        "cannot send a table whose keys {first} and {second} are the same key once sent{}",
        at(path)
    )]
    DuplicateKey {
        /// The first key, as Lua prints it.
        first: String,
        /// The second key, as Lua prints it.
        second: String,
        /// The table that has them.
        path: String,
    },
    /// A table that contains itself (directly or through other tables).
    #[error("cannot send a table that contains itself{}", at(path))]
    Cycle {
        /// Where the table appears again inside itself.
        path: String,
    },
    /// Tables nest deeper than the limit.
    #[error("cannot send tables nested deeper than {limit} levels{}", at(path))]
    TooDeep {
        /// [`ConvertLimits::max_depth`].
        limit: usize,
        /// The first table past the limit.
        path: String,
    },
    /// More values than the limit (a table shared many times counts each time).
    #[error(
        "cannot send more than {limit} values in one message (a table that appears several times counts each time)"
    )]
    TooManyValues {
        /// [`ConvertLimits::max_values`].
        limit: usize,
    },
    /// More bytes of strings than the limit.
    #[error("cannot send more than {limit} bytes of strings in one message")]
    TooManyBytes {
        /// [`ConvertLimits::max_bytes`].
        limit: usize,
    },
}

pub(super) fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" (at packet{path})")
    }
}

impl ConvertError {
    /// Puts `segment` in front of the path, as the error travels outwards.
    fn within(mut self, segment: &str) -> ConvertError {
        match &mut self {
            ConvertError::Unsendable { path, .. }
            | ConvertError::BadKey { path, .. }
            | ConvertError::Cycle { path }
            | ConvertError::OutOfRange { path, .. }
            | ConvertError::DuplicateKey { path, .. }
            | ConvertError::TooDeep { path, .. } => path.insert_str(0, segment),
            ConvertError::TooManyValues { .. } | ConvertError::TooManyBytes { .. } => {}
        }
        self
    }
}

impl From<ConvertError> for mlua::Error {
    fn from(e: ConvertError) -> mlua::Error {
        mlua::Error::RuntimeError(e.to_string())
    }
}

/// Either a problem with the value, or an error from Lua itself (memory).
enum Failure {
    Value(ConvertError),
    Lua(mlua::Error),
}

impl From<mlua::Error> for Failure {
    fn from(e: mlua::Error) -> Failure {
        Failure::Lua(e)
    }
}

impl From<ConvertError> for Failure {
    fn from(e: ConvertError) -> Failure {
        Failure::Value(e)
    }
}

struct Walker<'l> {
    limits: &'l ConvertLimits,
    /// Tables on the current path (their Lua pointers).
    path: HashSet<*const c_void>,
    values: usize,
    bytes: usize,
}

impl Walker<'_> {
    fn count_value(&mut self) -> Result<(), ConvertError> {
        self.values += 1;
        if self.values > self.limits.max_values {
            return Err(ConvertError::TooManyValues {
                limit: self.limits.max_values,
            });
        }
        Ok(())
    }

    fn count_bytes(&mut self, n: usize) -> Result<(), ConvertError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_bytes {
            return Err(ConvertError::TooManyBytes {
                limit: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    fn value(&mut self, value: &mlua::Value, depth: usize) -> Result<Value, Failure> {
        self.count_value()?;
        Ok(match value {
            mlua::Value::Nil => Value::Nil,
            mlua::Value::Boolean(b) => Value::Boolean(*b),
            mlua::Value::Integer(i) => Value::Integer(*i),
            mlua::Value::Number(f) => Value::Number(*f),
            mlua::Value::String(s) => {
                let bytes = s.as_bytes();
                self.count_bytes(bytes.len())?;
                Value::String(bytes.as_ref().into())
            }
            mlua::Value::Table(t) => Value::Table(self.table(t, depth + 1)?),
            mlua::Value::Other(_) => Value::Integer(cdata_integer(value)?),
            other => {
                return Err(ConvertError::Unsendable {
                    type_name: lua_type_name(other),
                    path: String::new(),
                }
                .into());
            }
        })
    }

    fn key(&mut self, key: &mlua::Value) -> Result<Key, Failure> {
        self.count_value()?;
        Ok(match key {
            mlua::Value::Boolean(b) => Key::from(*b),
            mlua::Value::Integer(i) => Key::from(*i),
            mlua::Value::Number(f) => Key::from_f64(*f).map_err(|_| ConvertError::BadKey {
                type_name: "NaN",
                path: String::new(),
            })?,
            mlua::Value::String(s) => {
                let bytes = s.as_bytes();
                self.count_bytes(bytes.len())?;
                Key::from(bytes.as_ref())
            }
            mlua::Value::Other(_) => Key::from(cdata_integer(key)?),
            other => {
                return Err(ConvertError::BadKey {
                    type_name: lua_type_name(other),
                    path: String::new(),
                }
                .into());
            }
        })
    }

    fn table(&mut self, table: &mlua::Table, depth: usize) -> Result<Table, Failure> {
        if depth > self.limits.max_depth {
            return Err(ConvertError::TooDeep {
                limit: self.limits.max_depth,
                path: String::new(),
            }
            .into());
        }
        let ptr = table.to_pointer();
        if !self.path.insert(ptr) {
            return Err(ConvertError::Cycle {
                path: String::new(),
            }
            .into());
        }
        let result = guarded(|| self.entries(table, depth));
        self.path.remove(&ptr);
        result
    }

    fn entries(&mut self, table: &mlua::Table, depth: usize) -> Result<Table, Failure> {
        let mut out = Table::with_capacity(table.raw_len(), 0);
        for pair in table.pairs::<mlua::Value, mlua::Value>() {
            let (k, v) = pair?;
            let key = self.key(&k)?;
            let value = match self.value(&v, depth) {
                Ok(value) => value,
                Err(Failure::Value(e)) => {
                    return Err(Failure::Value(e.within(&path_segment(key.as_ref()))));
                }
                Err(e) => return Err(e),
            };
            // Lua keys are unique, but LuaJIT's `5LL` and `5` both become 5.
            if out.set(key, value).is_some() {
                return Err(duplicate_key(table, &k).into());
            }
        }
        Ok(out)
    }
}

/// A LuaJIT `int64_t`/`uint64_t` cdata as an integer; any other cdata is
/// unsendable.
fn cdata_integer(value: &mlua::Value) -> Result<i64, ConvertError> {
    match super::cdata::read(value) {
        Cdata::Integer(i) => Ok(i),
        Cdata::TooLarge(text) => Err(ConvertError::OutOfRange {
            value: text,
            path: String::new(),
        }),
        Cdata::Other => Err(ConvertError::Unsendable {
            type_name: "cdata",
            path: String::new(),
        }),
    }
}

/// The error for two keys of `table` that became one, the later being `k`
/// (a rare path: it walks the table again to name them as Lua prints them).
/// Only numbers and cdata can merge: strings and booleans map one to one.
fn duplicate_key(table: &mlua::Table, k: &mlua::Value) -> ConvertError {
    let number_key = |k: &mlua::Value| match k {
        mlua::Value::Integer(i) => Some(Key::from(*i)),
        mlua::Value::Number(f) => Key::from_f64(*f).ok(),
        mlua::Value::Other(_) => cdata_integer(k).ok().map(Key::from),
        _ => None,
    };
    let key = number_key(k);
    let name = |k: &mlua::Value| k.to_string().unwrap_or_else(|_| "?".into());
    let first = table
        .pairs::<mlua::Value, mlua::Value>()
        .flatten()
        .find(|(other, _)| !same_key(other, k) && key.is_some() && number_key(other) == key)
        .map(|(other, _)| name(&other))
        .unwrap_or_else(|| "?".into());
    ConvertError::DuplicateKey {
        first,
        second: name(k),
        path: String::new(),
    }
}

/// The same Lua key (mlua's `==` never holds between two cdata).
fn same_key(a: &mlua::Value, b: &mlua::Value) -> bool {
    match (a, b) {
        (mlua::Value::Other(_), mlua::Value::Other(_)) => a.to_pointer() == b.to_pointer(),
        _ => a == b,
    }
}

/// `.name` for identifier keys, `[key]` otherwise, as Lua would write it.
pub(super) fn path_segment(key: KeyRef<'_>) -> String {
    match key {
        KeyRef::String(s) => match std::str::from_utf8(s) {
            Ok(name) if is_identifier(name) => format!(".{name}"),
            _ => {
                let mut out = String::from("[\"");
                for &b in s.iter().take(40) {
                    match b {
                        b'"' => out.push_str("\\\""),
                        b'\\' => out.push_str("\\\\"),
                        0x20..=0x7e => out.push(char::from(b)),
                        _ => {
                            let _ = write!(out, "\\x{b:02x}");
                        }
                    }
                }
                if s.len() > 40 {
                    out.push_str("...");
                }
                out.push_str("\"]");
                out
            }
        },
        KeyRef::Integer(i) => format!("[{i}]"),
        KeyRef::Number(f) => format!("[{f:?}]"),
        KeyRef::Boolean(b) => format!("[{b}]"),
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Lua's name for the type (as `type()` says it: integers are numbers),
/// with the Lua network module's words for the unsendable ones.
pub(super) fn lua_type_name(value: &mlua::Value) -> &'static str {
    match value {
        mlua::Value::Integer(_) | mlua::Value::Number(_) => "number",
        mlua::Value::Function(_) => "function",
        mlua::Value::Thread(_) => "coroutine (thread)",
        mlua::Value::UserData(_) => "userdata",
        mlua::Value::LightUserData(_) => "light userdata",
        mlua::Value::Table(_) => "table",
        mlua::Value::Error(_) => "error object (userdata)",
        // The one type mlua leaves as `Other` outside Luau: LuaJIT's FFI data.
        mlua::Value::Other(_) => "cdata",
        other => other.type_name(),
    }
}

/// Converts a Lua value into a [`Value`], within `limits`.
///
/// Integers stay integers and floats stay floats; strings are copied byte
/// for byte; tables keep both their sequence and their hash part, holes
/// included. Metatables are ignored (the raw contents are converted, no
/// metamethod runs). A function, userdata, coroutine, a table used as a key,
/// a table that contains itself, or a value over `limits` gives a
/// [`ConvertError`] (wrapped in [`mlua::Error::RuntimeError`] by `?`); use
/// [`try_value_from_lua`] to get it typed.
pub fn value_from_lua(value: &mlua::Value, limits: &ConvertLimits) -> mlua::Result<Value> {
    match convert(value, limits) {
        Ok(v) => Ok(v),
        Err(Failure::Value(e)) => Err(e.into()),
        Err(Failure::Lua(e)) => Err(e),
    }
}

/// Like [`value_from_lua`], with the problems of the value itself as a typed
/// [`ConvertError`] (the outer error is Lua's own, such as a memory error).
pub fn try_value_from_lua(
    value: &mlua::Value,
    limits: &ConvertLimits,
) -> mlua::Result<Result<Value, ConvertError>> {
    match convert(value, limits) {
        Ok(v) => Ok(Ok(v)),
        Err(Failure::Value(e)) => Ok(Err(e)),
        Err(Failure::Lua(e)) => Err(e),
    }
}

fn convert(value: &mlua::Value, limits: &ConvertLimits) -> Result<Value, Failure> {
    let mut walker = Walker {
        limits,
        path: HashSet::new(),
        values: 0,
        bytes: 0,
    };
    walker.value(value, 0)
}

impl mlua::FromLua for Value {
    /// Converts with the default [`ConvertLimits`].
    fn from_lua(value: mlua::Value, _lua: &Lua) -> mlua::Result<Value> {
        value_from_lua(&value, &ConvertLimits::default())
    }
}
