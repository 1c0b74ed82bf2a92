//! The Lua binding (cargo feature `lua`): the Lua network module's `network` table, for an
//! [mlua] state of any Lua version mlua builds (5.1, 5.2, 5.3, 5.4, LuaJIT; the
//! application's own mlua dependency chooses it).
//!
//! [`register`] installs the global `network` into a state your program
//! owns; [`create`] returns the same table without setting a global (the
//! loadable module in `bindings/lua` returns it from `require "tablenet"`).
//! Every call of the Lua network module works as written there:
//!
//! ```lua
//! local server, result = network.Server("127.0.0.1", 0)      -- port 0: the OS chooses
//! local client = network.Client("127.0.0.1", server:GetPort())
//! local ok, waited = client:WaitForConnect(2)
//! client:Send({OpCode = 10, Data = "From client"})
//! for _, ev in ipairs(network.WaitEvents(1)) do             -- or network.PollEvents()
//!   if ev.Event == network.EVENT_CONNECT then clients[ev.Object] = true end
//!   if ev.Event == network.EVENT_RECEIVE then print(ev.Packet.Data) end
//! end
//! ```
//!
//! From Rust:
//!
//! ```
//! use tablenet::lua::mlua::Lua;
//!
//! let lua = Lua::new();
//! tablenet::lua::register(&lua)?;
//! lua.load(r#"
//!     local server = assert(network.Server("127.0.0.1", 0))
//!     assert(server:GetPort() > 0)
//! "#).exec()?;
//! # Ok::<(), tablenet::lua::mlua::Error>(())
//! ```
//!
//! The pieces:
//!
//! - Values: [`value_to_lua`] and [`value_from_lua`] (also `IntoLua` for
//!   [`Value`](crate::Value) and [`Table`](crate::Table), `FromLua` for
//!   `Value`). Integers stay integers, floats floats, strings are bytes, tables
//!   keep holes and mixed keys. Functions, userdata, coroutines, tables as keys
//!   and tables that contain themselves are refused with a [`ConvertError`];
//!   [`ConvertLimits`] bounds depth, value count and string bytes. On Lua
//!   5.1, 5.2 and LuaJIT, whole doubles travel as integers, LuaJIT's
//!   `int64_t` cdata exactly, and an integer a double cannot hold follows
//!   [`BigIntegers`] when received (by default an error, never a rounding).
//! - Objects: one userdata per server, client and `ClientConnection`, so
//!   `ev.Object` is the same object every time and works as a table key. A
//!   `ClientConnection` owns its connection: when the script drops every
//!   reference and Lua collects it, the connection closes, as the Lua network module warns.
//! - Events: `network.PollEvents()` returns an array of event tables, oldest
//!   first, with the Lua network module's fields `.Event`, `.Timestamp` (seconds since the
//!   Unix epoch, fractional), `.Object`, `.Errors`, `.Result` and `.Packet`.
//!
//! `bindings/lua/README.md` documents the Lua API in full, with the
//! extensions to the Lua network module (`network.WaitEvents`, `network.New{options}` for
//! another network with its own [`Config`](crate::Config), `EVENT_DRAINED`,
//! the `.Socket` and `.Server` event fields).

mod args;
mod cdata;
mod config;
mod convert;
mod objects;
mod to_lua;

use std::ops::RangeInclusive;
use std::time::Duration;

pub use mlua;
use mlua::{AnyUserData, IntoLuaMulti, Lua, Table as LuaTable};

pub use convert::{ConvertError, ConvertLimits, try_value_from_lua, value_from_lua};
use objects::{Client, ClientConnection, Server};
pub use to_lua::{BigIntegers, ReceiveError, try_value_to_lua, value_to_lua};

use crate::net::{Event, EventKind, Network, Source};

/// `network.EVENT_CONNECT`: a server accepted a connection; `.Object` is the
/// new `ClientConnection` (keep a reference, or it closes when collected).
pub const EVENT_CONNECT: i64 = 1;
/// `network.EVENT_CONNECTED`: a client's connection attempt ended; `.Result`
/// is true on success.
pub const EVENT_CONNECTED: i64 = 2;
/// `network.EVENT_RECEIVE`: a table arrived; `.Packet` holds it.
pub const EVENT_RECEIVE: i64 = 3;
/// `network.EVENT_SERVER_CLOSE`: a client's connection to its server closed.
pub const EVENT_SERVER_CLOSE: i64 = 4;
/// `network.EVENT_CLIENT_CLOSE`: a connection accepted by a server closed.
pub const EVENT_CLIENT_CLOSE: i64 = 5;
/// `network.EVENT_ERROR`: something went wrong; `.Errors` says what. With a
/// nil `.Object`, events were lost because the queue was full.
pub const EVENT_ERROR: i64 = 6;
/// `network.EVENT_DRAINED` (not in the Lua network module): a send queue that refused a
/// message because it was full is down to its low-water mark (a quarter of its limit
/// by default); sending can resume.
pub const EVENT_DRAINED: i64 = 7;

/// Registry name of the `network` table of a state (one per state).
const NETWORK_KEY: &str = "tablenet.network";
/// Registry name of the weak-valued table: socket id -> userdata.
const OBJECTS_KEY: &str = "tablenet.objects";

/// Installs the global `network` table (see [`create`]).
pub fn register(lua: &Lua) -> mlua::Result<()> {
    let table = create(lua)?;
    lua.globals().set("network", table)
}

/// Installs the global `network` table built on `network` (see
/// [`create_with`]).
pub fn register_with(lua: &Lua, network: Network) -> mlua::Result<()> {
    let table = create_with(lua, network)?;
    lua.globals().set("network", table)
}

/// The `network` table of this state, built on a network with the Lua
/// binding's defaults (an overwriting ring: see `lua_config`) the
/// first time: later calls return the same table, so a state has one
/// network.
pub fn create(lua: &Lua) -> mlua::Result<LuaTable> {
    if let Some(table) = lua.named_registry_value::<Option<LuaTable>>(NETWORK_KEY)? {
        return Ok(table);
    }
    // A fresh default config validates.
    let network =
        Network::with_config(lua_config()).map_err(|e| mlua::Error::RuntimeError(e.to_string()))?;
    create_with(lua, network)
}

/// The Lua binding's defaults: Rust's, but the ring overwrites its oldest
/// events when full, as the Lua network module documents for
/// `network.PollEvents()` (`network.New{Lossless = true}` chooses otherwise),
/// and with no per-connection share, so that one busy peer fills and
/// overwrites the ring exactly as there. (Rust's default share pauses such a
/// peer instead, so the others' events are never overwritten by it.)
pub(crate) fn lua_config() -> crate::Config {
    crate::Config {
        overflow: crate::OverflowPolicy::Overwrite,
        connection_events: usize::MAX,
        ..crate::Config::default()
    }
}

/// Builds the `network` table on `network` (to choose its [`Config`](crate::Config),
/// for example the lossless ring). Fails if this state already has one.
pub fn create_with(lua: &Lua, network: Network) -> mlua::Result<LuaTable> {
    if lua
        .named_registry_value::<Option<LuaTable>>(NETWORK_KEY)?
        .is_some()
    {
        return Err(mlua::Error::RuntimeError(
            "this Lua state already has a tablenet network".into(),
        ));
    }
    let t = build(lua, network, BigIntegers::default())?;
    lua.set_named_registry_value(NETWORK_KEY, &t)?;
    Ok(t)
}

/// A `network` table on `network`; every table of a state shares the
/// state's object registry (socket ids are unique within the process).
fn build(lua: &Lua, network: Network, big: BigIntegers) -> mlua::Result<LuaTable> {
    if lua
        .named_registry_value::<Option<LuaTable>>(OBJECTS_KEY)?
        .is_none()
    {
        let by_socket = lua.create_table()?;
        let weak_values = lua.create_table()?;
        weak_values.raw_set("__mode", "v")?;
        by_socket.set_metatable(Some(weak_values))?;
        lua.set_named_registry_value(OBJECTS_KEY, by_socket)?;
    }

    let limits = ConvertLimits::for_config(network.config());
    let t = lua.create_table()?;
    for (name, code) in [
        ("EVENT_CONNECT", EVENT_CONNECT),
        ("EVENT_CONNECTED", EVENT_CONNECTED),
        ("EVENT_RECEIVE", EVENT_RECEIVE),
        ("EVENT_SERVER_CLOSE", EVENT_SERVER_CLOSE),
        ("EVENT_CLIENT_CLOSE", EVENT_CLIENT_CLOSE),
        ("EVENT_ERROR", EVENT_ERROR),
        ("EVENT_DRAINED", EVENT_DRAINED),
    ] {
        t.raw_set(name, code)?;
    }

    let net = network.clone();
    t.raw_set(
        "Server",
        lua.create_function(
            move |lua, (address, port, key): (mlua::Value, mlua::Value, mlua::Value)| {
                let made = arguments(lua, &address, &port, &key, true).and_then(|(a, p, k)| {
                    net.server(&a, p, k.as_deref()).map_err(|e| e.to_string())
                });
                match made {
                    Ok(server) => {
                        let id = server.socket_id();
                        let text = format!("listening on {}", server.local_addr());
                        let ud = lua.create_userdata(Server { server, limits })?;
                        objects(lua)?.raw_set(id, &ud)?;
                        (ud, text).into_lua_multi(lua)
                    }
                    Err(text) => (mlua::Value::Nil, text).into_lua_multi(lua),
                }
            },
        )?,
    )?;

    let net = network.clone();
    t.raw_set(
        "Client",
        lua.create_function(
            move |lua, (address, port, key): (mlua::Value, mlua::Value, mlua::Value)| {
                let made = arguments(lua, &address, &port, &key, false).and_then(|(a, p, k)| {
                    let client = net.client(&a, p, k.as_deref()).map_err(|e| e.to_string())?;
                    Ok((client, format!("connecting to {a} port {p}")))
                });
                match made {
                    Ok((client, text)) => {
                        let id = client.socket_id();
                        let ud = lua.create_userdata(Client { client, limits })?;
                        objects(lua)?.raw_set(id, &ud)?;
                        (ud, text).into_lua_multi(lua)
                    }
                    Err(text) => (mlua::Value::Nil, text).into_lua_multi(lua),
                }
            },
        )?,
    )?;

    let net = network.clone();
    t.raw_set(
        "PollEvents",
        lua.create_function(move |lua, ()| events_table(lua, net.poll_events(), big))?,
    )?;

    let net = network.clone();
    t.raw_set(
        "PendingEvents",
        lua.create_function(move |_, ()| Ok(net.pending_events()))?,
    )?;

    let net = network;
    t.raw_set(
        "WaitEvents",
        lua.create_function(move |lua, timeout: mlua::Value| {
            let timeout = wait_timeout(&timeout)?;
            events_table(lua, net.wait_events(timeout), big)
        })?,
    )?;

    t.raw_set(
        "New",
        lua.create_function(|lua, options: mlua::Value| {
            let (config, big) = config::from_lua(&options).map_err(mlua::Error::RuntimeError)?;
            let network = Network::with_config(config).map_err(|e| {
                mlua::Error::RuntimeError(format!("bad argument #1 to 'New' ({e})"))
            })?;
            build(lua, network, big)
        })?,
    )?;
    Ok(t)
}

fn objects(lua: &Lua) -> mlua::Result<LuaTable> {
    lua.named_registry_value(OBJECTS_KEY)
}

/// The userdata of a server, client or connection, if the script still
/// references it (the table's values are weak).
fn lookup(objects: &LuaTable, socket: u64) -> mlua::Result<Option<AnyUserData>> {
    objects.raw_get(socket_key(socket))
}

fn socket_key(socket: u64) -> i64 {
    i64::try_from(socket).unwrap_or(i64::MAX)
}

fn invalid(argument: &str, expected: &str, got: &str) -> String {
    format!("invalid argument `{argument}`: {expected}, got {got}")
}

/// `network.Server` / `network.Client` arguments. Wrong types give the
/// Lua network module's `nil, "result string"` as wrong values do.
fn arguments(
    lua: &Lua,
    address: &mlua::Value,
    port: &mlua::Value,
    key: &mlua::Value,
    server: bool,
) -> Result<(String, u16, Option<String>), String> {
    let address = match address {
        mlua::Value::String(s) => s.to_str().map(|s| s.to_owned()).map_err(|_| {
            invalid(
                "address",
                "an IPv4 or IPv6 literal such as 127.0.0.1 or ::1",
                "a string that is not UTF-8",
            )
        })?,
        other => {
            return Err(invalid(
                "address",
                "an IPv4 or IPv6 literal such as 127.0.0.1 or ::1",
                convert::lua_type_name(other),
            ));
        }
    };
    let expected_port = if server {
        "1024..=65535, or 0 or nil to let the OS choose"
    } else {
        "1024..=65535"
    };
    let port = match port {
        mlua::Value::Nil if server => 0,
        mlua::Value::Nil => return Err(invalid("port", expected_port, "nil")),
        mlua::Value::Integer(_) | mlua::Value::Number(_) | mlua::Value::String(_) => {
            let text = || {
                port.to_string()
                    .unwrap_or_else(|_| convert::lua_type_name(port).to_owned())
            };
            let n = lua
                .coerce_integer(port.clone())
                .ok()
                .flatten()
                .ok_or_else(|| invalid("port", expected_port, &text()))?;
            u16::try_from(n).map_err(|_| invalid("port", expected_port, &text()))?
        }
        other => {
            return Err(invalid(
                "port",
                expected_port,
                convert::lua_type_name(other),
            ));
        }
    };
    let expected_key = "nil, or 32 or 64 hex digits (a 128-bit or 256-bit key)";
    let key = match key {
        mlua::Value::Nil | mlua::Value::Boolean(false) => None,
        mlua::Value::String(s) => Some(
            s.to_str()
                .map(|s| s.to_owned())
                .map_err(|_| invalid("key", expected_key, "a string that is not UTF-8"))?,
        ),
        other => return Err(invalid("key", expected_key, convert::lua_type_name(other))),
    };
    // The Lua API's own rules, narrower than the Rust API's.
    args::address(&address).map_err(|e| e.to_string())?;
    let port = if server {
        args::server_port(port)
    } else {
        args::client_port(port)
    }
    .map_err(|e| e.to_string())?;
    Ok((address, port, key))
}

/// Why a Lua value is not a number of seconds in the range asked for.
enum BadSeconds {
    /// Not a number: Lua's name of its type.
    NotANumber(&'static str),
    /// A number outside the range.
    OutOfRange(f64),
}

/// A number of seconds within `range` (NaN is outside every range).
fn seconds(value: &mlua::Value, range: RangeInclusive<f64>) -> Result<Duration, BadSeconds> {
    let seconds = match value {
        mlua::Value::Integer(i) => *i as f64,
        mlua::Value::Number(f) => *f,
        other => return Err(BadSeconds::NotANumber(convert::lua_type_name(other))),
    };
    if !range.contains(&seconds) {
        return Err(BadSeconds::OutOfRange(seconds));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `network.WaitEvents`'s timeout: nil means 1 s.
fn wait_timeout(value: &mlua::Value) -> mlua::Result<Duration> {
    if value.is_nil() {
        return Ok(Duration::from_secs(1));
    }
    seconds(value, 0.0..=86_400.0).map_err(|e| {
        mlua::Error::RuntimeError(match e {
            BadSeconds::NotANumber(got) => {
                format!("bad argument #1 to 'WaitEvents' (number of seconds expected, got {got})")
            }
            BadSeconds::OutOfRange(got) => format!(
                "bad argument #1 to 'WaitEvents' (timeout must be 0 to 86400 seconds, got {got})"
            ),
        })
    })
}

/// The array `PollEvents` returns.
fn events_table(lua: &Lua, events: Vec<Event>, big: BigIntegers) -> mlua::Result<LuaTable> {
    let objects = objects(lua)?;
    let out = lua.create_table_with_capacity(events.len(), 0)?;
    for (i, event) in events.into_iter().enumerate() {
        out.raw_seti(i + 1, event_table(lua, &objects, event, big)?)?;
    }
    Ok(out)
}

/// One event as the Lua network module's example table: `.Event`, `.Timestamp`, `.Object`,
/// `.Errors`, and `.Result` or `.Packet` where they apply; `.Socket` (the
/// object's socket id) and `.Server` (for a connection's events) as well.
/// A packet this Lua cannot hold exactly (see [`BigIntegers`]) becomes an
/// `EVENT_ERROR` of its connection saying why, never an error of the whole
/// poll (which would lose the other events).
fn event_table(
    lua: &Lua,
    objects: &LuaTable,
    event: Event,
    big: BigIntegers,
) -> mlua::Result<LuaTable> {
    let t = lua.create_table_with_capacity(0, 7)?;
    t.raw_set("Timestamp", event.timestamp())?;
    let (code, socket, errors) = match event.kind {
        EventKind::Connect { connection, server } => {
            let id = connection.socket_id();
            let ud = lua.create_userdata(ClientConnection { connection })?;
            objects.raw_set(socket_key(id), &ud)?;
            t.raw_set("Object", ud)?;
            t.raw_set("Server", lookup(objects, server.socket_id())?)?;
            (EVENT_CONNECT, Some(id), String::new())
        }
        EventKind::Connected { client, result } => {
            t.raw_set("Result", result.is_ok())?;
            let errors = result.err().map(|e| e.to_string()).unwrap_or_default();
            (EVENT_CONNECTED, Some(client.socket_id()), errors)
        }
        EventKind::Receive { from, packet } => {
            let id = match from {
                Source::Connection(id) => id.socket_id(),
                Source::Client(id) => id.socket_id(),
            };
            match try_value_to_lua(lua, &packet, big)? {
                Ok(packet) => {
                    t.raw_set("Packet", packet)?;
                    (EVENT_RECEIVE, Some(id), String::new())
                }
                Err(e) => (EVENT_ERROR, Some(id), e.to_string()),
            }
        }
        // A network made with `Config::raw_messages`: decoded here.
        EventKind::Message { from, message } => {
            let id = match from {
                Source::Connection(id) => id.socket_id(),
                Source::Client(id) => id.socket_id(),
            };
            match message
                .value()
                .map(|packet| try_value_to_lua(lua, &packet, big))
            {
                Ok(converted) => match converted? {
                    Ok(packet) => {
                        t.raw_set("Packet", packet)?;
                        (EVENT_RECEIVE, Some(id), String::new())
                    }
                    Err(e) => (EVENT_ERROR, Some(id), e.to_string()),
                },
                Err(e) => (EVENT_ERROR, Some(id), e.to_string()),
            }
        }
        EventKind::ServerClose { client, reason } => (
            EVENT_SERVER_CLOSE,
            Some(client.socket_id()),
            reason.to_string(),
        ),
        EventKind::ClientClose {
            connection,
            server,
            reason,
        } => {
            t.raw_set("Server", lookup(objects, server.socket_id())?)?;
            (
                EVENT_CLIENT_CLOSE,
                Some(connection.socket_id()),
                reason.to_string(),
            )
        }
        // A connection that failed during its handshake never had an object:
        // `.Object` is nil and `.Socket` names it. The text ends with the
        // peer's address where one is known.
        EventKind::Error {
            object,
            error,
            peer,
        } => (
            EVENT_ERROR,
            Some(object.socket_id()),
            crate::shared::error_text(&error, peer),
        ),
        EventKind::Dropped { count } => (
            EVENT_ERROR,
            None,
            format!("{count} events were lost: the event queue was full (poll events more often)"),
        ),
        EventKind::Drained { object } => (EVENT_DRAINED, Some(object.socket_id()), String::new()),
    };
    t.raw_set("Event", code)?;
    t.raw_set("Errors", errors)?;
    if let Some(id) = socket {
        t.raw_set("Socket", socket_key(id))?;
        if code != EVENT_CONNECT {
            t.raw_set("Object", lookup(objects, id)?)?;
        }
    }
    Ok(t)
}
