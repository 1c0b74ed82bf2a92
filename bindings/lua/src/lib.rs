//! The loadable Lua module: `local network = require "tablenet"` in a stock
//! Lua 5.4 interpreter returns the seed's `network` table (see
//! `tablenet::lua` and README.md beside this crate).
//!
//! Build with `cargo build` here, then copy or link
//! `target/debug/libtablenet_lua.so` to `tablenet.so` somewhere on
//! `LUA_CPATH` (`ci.sh` does exactly that).

use mlua::{Lua, Result, Table};

/// `luaopen_tablenet`: the same table `tablenet::lua::register` installs as
/// the global `network`, one network per Lua state.
#[mlua::lua_module(name = "tablenet")]
fn luaopen(lua: &Lua) -> Result<Table> {
    ::tablenet::lua::create(lua)
}
