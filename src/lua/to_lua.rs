//! [`Value`] -> Lua values, for every Lua version.
//!
//! Lua 5.3 and 5.4 hold every `i64` exactly. Lua 5.1, 5.2 and LuaJIT have
//! only doubles: an integer a double cannot hold (an odd one beyond 2^53,
//! `i64::MAX`) would be rounded, and two keys could become one. Nothing is
//! rounded silently here: such an integer follows [`BigIntegers`], and two
//! keys that would become one Lua key are an error naming both.

use std::collections::HashMap;

use mlua::{IntoLua, Lua};

use super::convert::path_segment;
use crate::stack::guarded;
use crate::value::{KeyRef, Table, Value};

/// What a Lua without integers (5.1, 5.2, LuaJIT) receives for an integer
/// that a double cannot hold exactly (such as 2^53 + 1 or `i64::MAX`). Other
/// integers, and every integer on Lua 5.3 and 5.4, arrive exactly whatever
/// the policy. `network.New{ BigIntegers = "error" | "float" | "string" }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BigIntegers {
    /// The message is not delivered: the script gets an `EVENT_ERROR` naming
    /// the integer and where it is (the default: nothing changes unseen).
    #[default]
    Error,
    /// The nearest double, as Lua's own `tonumber` would give.
    Float,
    /// Its decimal digits as a string (exact; arithmetic rounds it again).
    String,
}

impl BigIntegers {
    /// The option's Lua spelling (`"error"`, `"float"`, `"string"`).
    pub fn name(self) -> &'static str {
        match self {
            BigIntegers::Error => "error",
            BigIntegers::Float => "float",
            BigIntegers::String => "string",
        }
    }
}

/// Why a [`Value`] cannot become a Lua value of this state without losing
/// something. Only a Lua without integers (5.1, 5.2, LuaJIT) gives these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// An integer a double cannot hold, under [`BigIntegers::Error`].
    #[error(
        "cannot receive the integer {value}{}: this Lua's numbers are doubles, which cannot hold it \
         exactly (network.New{{BigIntegers = \"float\"}} rounds it, \"string\" gives its digits)",
        super::convert::at(path)
    )]
    InexactInteger {
        /// The integer.
        value: i64,
        /// Where it is, in Lua syntax relative to the message (`.id`).
        path: String,
    },
    /// Two keys of one table that this Lua would make one key.
    #[error(
        "cannot receive a table whose keys {first} and {second} are the same key in this Lua{}",
        super::convert::at(path)
    )]
    KeyCollision {
        /// The first key, in Lua syntax.
        first: String,
        /// The second key, in Lua syntax.
        second: String,
        /// The table that has them.
        path: String,
    },
}

impl ReceiveError {
    fn within(mut self, segment: &str) -> ReceiveError {
        match &mut self {
            ReceiveError::InexactInteger { path, .. } | ReceiveError::KeyCollision { path, .. } => {
                path.insert_str(0, segment)
            }
        }
        self
    }
}

impl From<ReceiveError> for mlua::Error {
    fn from(e: ReceiveError) -> mlua::Error {
        mlua::Error::RuntimeError(e.to_string())
    }
}

enum Failure {
    Value(ReceiveError),
    Lua(mlua::Error),
}

impl From<mlua::Error> for Failure {
    fn from(e: mlua::Error) -> Failure {
        Failure::Lua(e)
    }
}

impl From<ReceiveError> for Failure {
    fn from(e: ReceiveError) -> Failure {
        Failure::Value(e)
    }
}

/// True when a double holds `i` exactly (so every Lua can).
fn exact_in_double(i: i64) -> bool {
    // 2^63 as a double: `i64::MAX as f64` rounds up to it, and must not count.
    let f = i as f64;
    f < 9_223_372_036_854_775_808.0 && f as i64 == i
}

struct Writer<'l> {
    lua: &'l Lua,
    policy: BigIntegers,
    /// Whether this state keeps integers; asked once, when first needed.
    has_integers: Option<bool>,
}

impl Writer<'_> {
    /// Lua 5.3+ gives back 2^53 + 1 exactly; a Lua of doubles rounds it.
    fn has_integers(&mut self) -> mlua::Result<bool> {
        if let Some(known) = self.has_integers {
            return Ok(known);
        }
        let probe = self.lua.create_table()?;
        let odd = (1_i64 << 53) + 1;
        probe.raw_set(1, mlua::Value::Integer(odd))?;
        let known = matches!(probe.raw_get::<mlua::Value>(1)?, mlua::Value::Integer(i) if i == odd);
        self.has_integers = Some(known);
        Ok(known)
    }

    fn integer(&mut self, i: i64) -> Result<mlua::Value, Failure> {
        if exact_in_double(i) || self.has_integers()? {
            return Ok(mlua::Value::Integer(i));
        }
        Ok(match self.policy {
            BigIntegers::Error => {
                return Err(ReceiveError::InexactInteger {
                    value: i,
                    path: String::new(),
                }
                .into());
            }
            BigIntegers::Float => mlua::Value::Number(i as f64),
            BigIntegers::String => mlua::Value::String(self.lua.create_string(i.to_string())?),
        })
    }

    fn value(&mut self, value: &Value) -> Result<mlua::Value, Failure> {
        Ok(match value {
            Value::Nil => mlua::Value::Nil,
            Value::Boolean(b) => mlua::Value::Boolean(*b),
            Value::Integer(i) => self.integer(*i)?,
            Value::Number(f) => mlua::Value::Number(*f),
            Value::String(s) => mlua::Value::String(self.lua.create_string(s.as_bytes())?),
            Value::Table(t) => mlua::Value::Table(guarded(|| self.table(t))?),
        })
    }

    fn key(&mut self, key: KeyRef<'_>) -> Result<mlua::Value, Failure> {
        Ok(match key {
            KeyRef::Boolean(b) => mlua::Value::Boolean(b),
            KeyRef::Integer(i) => self.integer(i)?,
            KeyRef::Number(f) => mlua::Value::Number(f),
            KeyRef::String(s) => mlua::Value::String(self.lua.create_string(s)?),
        })
    }

    fn table(&mut self, table: &Table) -> Result<mlua::Table, Failure> {
        let out = self
            .lua
            .create_table_with_capacity(table.sequence_len(), table.hash_len())?;
        for (i, v) in table.sequence().iter().enumerate() {
            let v = self
                .value(v)
                .map_err(|e| in_segment(e, KeyRef::Integer(i as i64 + 1)))?;
            out.raw_seti(i + 1, v)?;
        }
        // Keys can only merge when one of them was changed (rounded, or
        // turned into digits): only then are the Lua keys compared.
        let changes_keys = self.policy != BigIntegers::Error
            && table
                .iter()
                .skip(table.sequence_len())
                .any(|(k, _)| matches!(k, KeyRef::Integer(i) if !exact_in_double(i)))
            && !self.has_integers()?;
        let mut seen: HashMap<LuaKey, KeyRef<'_>> = HashMap::new();
        for (k, v) in table.iter().skip(table.sequence_len()) {
            let key = self.key(k).map_err(|e| in_segment(e, k))?;
            let merged = changes_keys
                .then(|| LuaKey::of(&key).and_then(|lk| seen.insert(lk, k)))
                .flatten();
            if let Some(first) = merged {
                return Err(ReceiveError::KeyCollision {
                    first: first.to_string(),
                    second: k.to_string(),
                    path: String::new(),
                }
                .into());
            }
            let v = self.value(v).map_err(|e| in_segment(e, k))?;
            out.raw_set(key, v)?;
        }
        Ok(out)
    }
}

/// A Lua key as this state sees it, for finding merged keys.
#[derive(PartialEq, Eq, Hash)]
enum LuaKey {
    Number(u64),
    String(Vec<u8>),
}

impl LuaKey {
    fn of(key: &mlua::Value) -> Option<LuaKey> {
        match key {
            // Keys here are never NaN, and whole doubles come back as
            // integers, so comparing as doubles is comparing as Lua does.
            mlua::Value::Integer(i) => Some(LuaKey::Number((*i as f64).to_bits())),
            mlua::Value::Number(f) => Some(LuaKey::Number((f + 0.0).to_bits())),
            mlua::Value::String(s) => Some(LuaKey::String(s.as_bytes().to_vec())),
            _ => None,
        }
    }
}

fn in_segment(e: Failure, key: KeyRef<'_>) -> Failure {
    match e {
        Failure::Value(e) => Failure::Value(e.within(&path_segment(key))),
        other => other,
    }
}

/// Converts a [`Value`] into a Lua value of `lua`: integers become Lua
/// integers, floats Lua floats, strings Lua strings (any bytes), tables new
/// Lua tables (sequence part first, then the hash part in its order).
///
/// On a Lua without integers (5.1, 5.2, LuaJIT), an integer a double cannot
/// hold is an error ([`BigIntegers::Error`]; see [`try_value_to_lua`] for
/// the other policies), as are two keys that would become one.
pub fn value_to_lua(lua: &Lua, value: &Value) -> mlua::Result<mlua::Value> {
    match try_value_to_lua(lua, value, BigIntegers::default())? {
        Ok(v) => Ok(v),
        Err(e) => Err(e.into()),
    }
}

/// Like [`value_to_lua`] with a chosen [`BigIntegers`] policy, and what this
/// Lua cannot hold as a typed [`ReceiveError`] (the outer error is Lua's
/// own, such as a memory error).
pub fn try_value_to_lua(
    lua: &Lua,
    value: &Value,
    policy: BigIntegers,
) -> mlua::Result<Result<mlua::Value, ReceiveError>> {
    let mut writer = Writer {
        lua,
        policy,
        has_integers: None,
    };
    match writer.value(value) {
        Ok(v) => Ok(Ok(v)),
        Err(Failure::Value(e)) => Ok(Err(e)),
        Err(Failure::Lua(e)) => Err(e),
    }
}

impl IntoLua for Value {
    fn into_lua(self, lua: &Lua) -> mlua::Result<mlua::Value> {
        value_to_lua(lua, &self)
    }
}

impl IntoLua for &Value {
    fn into_lua(self, lua: &Lua) -> mlua::Result<mlua::Value> {
        value_to_lua(lua, self)
    }
}

impl IntoLua for Table {
    fn into_lua(self, lua: &Lua) -> mlua::Result<mlua::Value> {
        (&self).into_lua(lua)
    }
}

impl IntoLua for &Table {
    fn into_lua(self, lua: &Lua) -> mlua::Result<mlua::Value> {
        let mut writer = Writer {
            lua,
            policy: BigIntegers::default(),
            has_integers: None,
        };
        match guarded(|| writer.table(self)) {
            Ok(t) => Ok(mlua::Value::Table(t)),
            Err(Failure::Value(e)) => Err(e.into()),
            Err(Failure::Lua(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::exact_in_double;

    #[test]
    fn exact_in_double_is_exact() {
        assert!(exact_in_double(0));
        assert!(exact_in_double(1 << 53));
        assert!(!exact_in_double((1 << 53) + 1));
        assert!(exact_in_double((1 << 53) + 2));
        assert!(!exact_in_double(i64::MAX));
        assert!(exact_in_double(i64::MIN));
        assert!(!exact_in_double(i64::MIN + 1));
    }
}
