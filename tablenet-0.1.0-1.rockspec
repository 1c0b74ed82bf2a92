-- `luarocks make` in a checkout of this repository builds the Lua module
-- with cargo (Rust 1.88 or later) for the Lua that luarocks runs for, and
-- installs it as `tablenet`:
--
--   luarocks --lua-version 5.4 make --local    (5.1, 5.2, 5.3 or 5.4)
--
-- The build asks the interpreter which Lua it is (LuaJIT by its `jit`
-- table) and passes the matching cargo feature of bindings/lua. Set
-- TABLENET_CARGO_PROFILE=dev for a debug build (CI does, to reuse its build).
rockspec_format = "3.0"
package = "tablenet"
version = "0.1.0-1"
source = {
   -- Built from the checkout by `luarocks make`; there is no published archive.
   url = "git+file://.",
}
description = {
   summary = "Exchange Lua tables over TCP: the Lua network module's network API",
   detailed = [[
      require "tablenet" returns the Lua network module's `network` table:
      servers, clients and ClientConnections that exchange tables over TCP,
      optionally encrypted (AES-GCM), with a polling event queue.
   ]],
   license = "MIT OR Apache-2.0",
}
dependencies = {
   "lua >= 5.1, < 5.5",
}
build = {
   type = "command",
   -- luarocks replaces $(LUA) and drops any other $(...): backticks only.
   -- install.lib renames only .lua files, so the build itself makes
   -- tablenet.so (also on macOS, where Lua modules are still *.so).
   build_command = [[
set -e
feature=`"$(LUA)" -e 'if jit then print("luajit") else print((_VERSION:gsub("Lua 5%.", "lua5"))) end'`
profile="${TABLENET_CARGO_PROFILE:-release}"
target="${CARGO_TARGET_DIR:-bindings/lua/target}"
dir="$profile"; [ "$profile" = dev ] && dir=debug
echo "tablenet: building the module for $feature ($profile)"
cargo build --profile "$profile" --manifest-path bindings/lua/Cargo.toml --no-default-features --features "$feature"
lib="$target/$dir/libtablenet_lua.so"
[ "`uname`" = Darwin ] && lib="$target/$dir/libtablenet_lua.dylib"
cp "$lib" tablenet.so
]],
   install = {
      lib = { tablenet = "tablenet.so" },
   },
}
