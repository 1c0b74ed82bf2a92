//! `network.New{...}`'s options: a Lua table read into a [`Config`], and
//! the binding's own [`BigIntegers`] policy.

use std::time::Duration;

use mlua::Value as LuaValue;

use super::BigIntegers;
use crate::net::{Config, OverflowPolicy};

/// The options `network.New` knows, as documented in bindings/lua/README.md.
const OPTIONS: &str = "Lossless, InlineIo, IoThreads, NoDelay, EventCapacity, EventBytes, \
                       SendQueueBytes, MaxConnections, MaxFrameSize, MaxDepth, HandshakeTimeout, \
                       Linger, Heartbeat, IdleTimeout, Keepalive, ConnectionEvents, MemoryBudget, \
                       FrameTimeout, MaxHandshaking, MaxConnectionsPerAddress, \
                       FailureReportsPerSecond, HandshakeBudget, BigIntegers";

/// Reads `network.New`'s argument: nil (every default) or a table of
/// options. Unknown names and wrong types are errors, so a typo never
/// silently leaves a default in place. Ranges are checked later by
/// `Network::with_config`.
pub(super) fn from_lua(options: &LuaValue) -> Result<(Config, BigIntegers), String> {
    let mut config = super::lua_config();
    let mut big = BigIntegers::default();
    let table = match options {
        LuaValue::Nil => return Ok((config, big)),
        LuaValue::Table(t) => t,
        other => {
            return Err(bad(&format!(
                "table of options expected, got {}",
                super::convert::lua_type_name(other)
            )));
        }
    };
    let mut share = None;
    for pair in table.pairs::<LuaValue, LuaValue>() {
        let (key, value) = pair.map_err(|e| bad(&e.to_string()))?;
        let name = match &key {
            LuaValue::String(s) => s.to_string_lossy(),
            other => {
                return Err(bad(&format!(
                    "option names are strings, got {}",
                    super::convert::lua_type_name(other)
                )));
            }
        };
        let read = Reader { name: &name };
        match name.as_str() {
            "Lossless" => {
                config.overflow = if read.boolean(&value)? {
                    OverflowPolicy::Lossless
                } else {
                    OverflowPolicy::Overwrite
                }
            }
            "InlineIo" => config.inline_io = read.boolean(&value)?,
            "IoThreads" => config.io_threads = read.count(&value)?,
            "NoDelay" => config.nodelay = read.boolean(&value)?,
            "EventCapacity" => config.event_capacity = read.count(&value)?,
            "EventBytes" => config.event_bytes = read.count(&value)?,
            "SendQueueBytes" => config.send_queue_bytes = read.count(&value)?,
            "MaxConnections" => config.max_connections = read.count(&value)?,
            "MaxFrameSize" => config.limits.max_frame_size = read.count(&value)?,
            "MaxDepth" => config.limits.max_depth = read.count(&value)?,
            "HandshakeTimeout" => config.handshake_timeout = read.seconds(&value)?,
            "Linger" => config.linger = read.seconds(&value)?,
            "Heartbeat" => config.heartbeat = read.optional_seconds(&value)?,
            "IdleTimeout" => config.idle_timeout = read.optional_seconds(&value)?,
            "Keepalive" => config.keepalive = read.optional_seconds(&value)?,
            "ConnectionEvents" => share = Some(read.count(&value)?),
            "MemoryBudget" => config.memory_budget = read.count(&value)?,
            "MaxHandshaking" => config.max_handshaking = read.count(&value)?,
            "MaxConnectionsPerAddress" => {
                config.max_connections_per_address = Some(read.count(&value)?);
            }
            "FailureReportsPerSecond" => {
                config.failure_reports_per_second =
                    u32::try_from(read.count(&value)?).unwrap_or(u32::MAX);
            }
            "HandshakeBudget" => config.handshake_budget = read.seconds(&value)?,
            "FrameTimeout" => config.frame_timeout = read.optional_seconds(&value)?,
            "BigIntegers" => big = read.big_integers(&value)?,
            _ => return Err(bad(&format!("unknown option `{name}`; known: {OPTIONS}"))),
        }
    }
    // The overwriting ring has no share by default (as in the Lua network
    // module); the lossless one has Rust's.
    config.connection_events = share.unwrap_or(match config.overflow {
        OverflowPolicy::Overwrite => usize::MAX,
        OverflowPolicy::Lossless => Config::default().connection_events,
    });
    Ok((config, big))
}

fn bad(what: &str) -> String {
    format!("bad argument #1 to 'New' ({what})")
}

/// Reads one option's value, naming the option in errors.
struct Reader<'a> {
    name: &'a str,
}

impl Reader<'_> {
    fn wrong(&self, expected: &str, got: &LuaValue) -> String {
        bad(&format!(
            "option `{}`: {expected} expected, got {}",
            self.name,
            super::convert::lua_type_name(got)
        ))
    }

    fn boolean(&self, value: &LuaValue) -> Result<bool, String> {
        match value {
            LuaValue::Boolean(b) => Ok(*b),
            other => Err(self.wrong("true or false", other)),
        }
    }

    fn count(&self, value: &LuaValue) -> Result<usize, String> {
        let expected = "a non-negative integer";
        match value {
            LuaValue::Integer(i) => usize::try_from(*i)
                .map_err(|_| bad(&format!("option `{}`: {expected}, got {i}", self.name))),
            // 2^53: every integer below is exact as a float.
            LuaValue::Number(f)
                if f.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(f) =>
            {
                Ok(*f as usize)
            }
            other => Err(self.wrong(expected, other)),
        }
    }

    fn seconds(&self, value: &LuaValue) -> Result<Duration, String> {
        let expected = "a number of seconds (0 to 86400)";
        super::seconds(value, 0.0..=86_400.0).map_err(|e| match e {
            super::BadSeconds::NotANumber(got) => bad(&format!(
                "option `{}`: {expected} expected, got {got}",
                self.name
            )),
            super::BadSeconds::OutOfRange(got) => {
                bad(&format!("option `{}`: {expected}, got {got}", self.name))
            }
        })
    }

    fn big_integers(&self, value: &LuaValue) -> Result<BigIntegers, String> {
        let expected = "\"error\", \"float\" or \"string\"";
        let text = match value {
            LuaValue::String(s) => s.to_string_lossy(),
            other => return Err(self.wrong(expected, other)),
        };
        [BigIntegers::Error, BigIntegers::Float, BigIntegers::String]
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| bad(&format!("option `{}`: {expected}, got {text:?}", self.name)))
    }

    /// Seconds, or `false` for off.
    fn optional_seconds(&self, value: &LuaValue) -> Result<Option<Duration>, String> {
        match value {
            LuaValue::Boolean(false) => Ok(None),
            LuaValue::Integer(_) | LuaValue::Number(_) => self.seconds(value).map(Some),
            other => Err(self.wrong("a number of seconds, or false for off", other)),
        }
    }
}
