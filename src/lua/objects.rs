//! The Lua network module's three dynamic objects as Lua userdata: server, client and
//! ClientConnection.

use std::time::{Duration, Instant};

use mlua::{IntoLuaMulti, UserData, UserDataMethods, Variadic};

use super::convert::{ConvertLimits, value_from_lua};
use crate::net::{self, Connection, ConnectionId};

/// `network.Server(...)`'s object.
pub(crate) struct Server {
    pub(crate) server: net::Server,
    pub(crate) limits: ConvertLimits,
}

/// `network.Client(...)`'s object.
pub(crate) struct Client {
    pub(crate) client: net::Client,
    pub(crate) limits: ConvertLimits,
}

/// A `ClientConnection`: handed out by `EVENT_CONNECT`; owns its connection,
/// which closes when Lua collects the object.
pub(crate) struct ClientConnection {
    pub(crate) connection: Connection,
}

/// The message argument of the `Send` methods: any basic value but nil.
fn message(
    value: &mlua::Value,
    limits: &ConvertLimits,
    method: &str,
) -> mlua::Result<crate::Value> {
    if value.is_nil() {
        return Err(mlua::Error::RuntimeError(format!(
            "bad argument #1 to '{method}' (table expected, got nil)"
        )));
    }
    value_from_lua(value, limits)
}

/// The `ClientConnection` arguments of `server:Send` and `server:Disconnect`.
fn connection_ids(
    args: &[mlua::Value],
    first_position: usize,
    method: &str,
) -> mlua::Result<Vec<ConnectionId>> {
    args.iter()
        .enumerate()
        .map(|(i, arg)| {
            let found = match arg {
                mlua::Value::UserData(ud) => ud
                    .borrow::<ClientConnection>()
                    .ok()
                    .map(|c| c.connection.id()),
                _ => None,
            };
            found.ok_or_else(|| {
                let got = match arg {
                    mlua::Value::UserData(ud) if ud.is::<Server>() => "server",
                    mlua::Value::UserData(ud) if ud.is::<Client>() => "client",
                    other => super::convert::lua_type_name(other),
                };
                mlua::Error::RuntimeError(format!(
                    "bad argument #{} to '{method}' (ClientConnection expected, got {got})",
                    first_position + i
                ))
            })
        })
        .collect()
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl UserData for Server {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method(
            "Send",
            |_, this, (value, conns): (mlua::Value, Variadic<mlua::Value>)| {
                let value = message(&value, &this.limits, "Send")?;
                let ids = connection_ids(&conns, 2, "Send")?;
                Ok(count(this.server.send(&value, &ids)))
            },
        );
        methods.add_method("Broadcast", |_, this, value: mlua::Value| {
            let value = message(&value, &this.limits, "Broadcast")?;
            Ok(count(this.server.broadcast(&value)))
        });
        methods.add_method("Disconnect", |_, this, conns: Variadic<mlua::Value>| {
            let ids = connection_ids(&conns, 1, "Disconnect")?;
            Ok(count(this.server.disconnect(&ids)))
        });
        methods.add_method("ConnectionCount", |_, this, ()| {
            Ok(count(this.server.connection_count()))
        });
        methods.add_method("GetSocket", |_, this, ()| {
            Ok(socket(this.server.socket_id()))
        });
        methods.add_method("GetPort", |_, this, ()| Ok(this.server.port()));
        methods.add_method("GetAddress", |_, this, ()| Ok(this.server.address()));
        methods.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!(
                "tablenet server on {} (socket {})",
                this.server.local_addr(),
                this.server.socket_id()
            ))
        });
    }
}

/// Socket ids count up from 1; as a Lua integer.
fn socket(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// `WaitForConnect`'s timeout argument: nil means the Lua network module's 2 s.
fn timeout_arg(value: &mlua::Value) -> mlua::Result<Duration> {
    if value.is_nil() {
        return Ok(Duration::from_secs(2));
    }
    super::seconds(value, 0.25..=10.0).map_err(|e| {
        mlua::Error::RuntimeError(match e {
            super::BadSeconds::NotANumber(got) => format!(
                "bad argument #1 to 'WaitForConnect' (number of seconds expected, got {got})"
            ),
            super::BadSeconds::OutOfRange(got) => format!(
                "bad argument #1 to 'WaitForConnect' (timeout must be 0.25 to 10 seconds, got {got})"
            ),
        })
    })
}

impl UserData for Client {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("Send", |lua, this, value: mlua::Value| {
            let value = message(&value, &this.limits, "Send")?;
            match this.client.send(&value) {
                Ok(()) => (true,).into_lua_multi(lua),
                Err(e) => (false, e.to_string()).into_lua_multi(lua),
            }
        });
        methods.add_method("WaitForConnect", |lua, this, timeout: mlua::Value| {
            let timeout = timeout_arg(&timeout)?;
            let start = Instant::now();
            match this.client.wait_for_connect(timeout) {
                // Rust's wait_for_connect reports a connection that has
                // since closed as connected; the script wants to know now.
                Ok(_) if !this.client.is_connected() => {
                    (false, start.elapsed().as_secs_f64(), "connection closed").into_lua_multi(lua)
                }
                Ok(took) => (true, took.as_secs_f64()).into_lua_multi(lua),
                Err(e) => (false, start.elapsed().as_secs_f64(), e.to_string()).into_lua_multi(lua),
            }
        });
        methods.add_method("Disconnect", |_, this, ()| {
            this.client.disconnect();
            Ok(())
        });
        methods.add_method("GetSocket", |_, this, ()| {
            Ok(socket(this.client.socket_id()))
        });
        methods.add_method("GetPort", |_, this, ()| Ok(this.client.port()));
        methods.add_method("GetAddress", |_, this, ()| Ok(this.client.address()));
        methods.add_meta_method("__tostring", |_, this, ()| {
            Ok(match this.client.port() {
                Some(port) => format!(
                    "tablenet client to {} port {port} (socket {})",
                    this.client.address(),
                    this.client.socket_id()
                ),
                None => format!(
                    "tablenet client to {}, not connected (socket {})",
                    this.client.address(),
                    this.client.socket_id()
                ),
            })
        });
    }
}

impl UserData for ClientConnection {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("GetSocket", |_, this, ()| {
            Ok(socket(this.connection.socket_id()))
        });
        methods.add_method("GetPort", |_, this, ()| Ok(this.connection.port()));
        methods.add_method("GetAddress", |_, this, ()| Ok(this.connection.address()));
        methods.add_meta_method("__tostring", |_, this, ()| {
            Ok(format!(
                "tablenet ClientConnection from {} port {} (socket {})",
                this.connection.address(),
                this.connection.port(),
                this.connection.socket_id()
            ))
        });
    }
}
