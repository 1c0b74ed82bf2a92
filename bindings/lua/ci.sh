#!/usr/bin/env bash
# CI for the Lua binding, with Debian's stock interpreters:
#   1. installs lua5.1, lua5.2, lua5.3, lua5.4, luajit, luarocks, love and the
#      Lua headers with apt-get if any is missing;
#   2. builds the loadable module once per Lua version (debug builds, one
#      shared target folder) and runs tests/lua/api.lua under each
#      interpreter, and the Lua echo server with a Lua client;
#   3. integers beyond 2^53 from Lua 5.4 to every other version
#      (tests/lua/big_integers.lua: each BigIntegers policy);
#   4. the Lua chat member (examples/lua/chat.lua) chats with the Rust chat
#      server and a Rust member (cargo build --example chat), under lua5.4;
#   5. `luarocks make` installs the module into a temporary tree, offline,
#      and api.lua runs against that install;
#   6. a headless LÖVE 11.4 game (tests/lua/love) exchanges tables.
# Loopback only; every wait has a deadline. Exits non-zero on the first failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

work="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# fail MESSAGE: print it and the logs of the processes started here.
fail() {
  echo "FAILED: $*" >&2
  local f
  for f in "$work"/*.out; do
    [ -e "$f" ] || continue
    echo "--- $(basename "$f")" >&2
    cat "$f" >&2
  done
  exit 1
}

# wait_for FILE TEXT [SECONDS]: until FILE contains the line fragment TEXT.
wait_for() {
  local file="$1" text="$2" limit="${3:-20}" i
  for ((i = 0; i < limit * 10; i++)); do
    if grep -qF -- "$text" "$file" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  fail "no \"$text\" in $(basename "$file") after ${limit}s"
}

# nudge_until FD FILE TEXT: the Lua member shows what arrived after each input
# line, so send empty lines to it until FILE shows TEXT.
nudge_until() {
  local fd="$1" file="$2" text="$3" i
  for ((i = 0; i < 100; i++)); do
    if grep -qF -- "$text" "$file" 2>/dev/null; then return 0; fi
    echo "" >&"$fd"
    sleep 0.2
  done
  fail "no \"$text\" in $(basename "$file") after 20s"
}

# wait_exit PID NAME [SECONDS]: waits for a process started here; fails if it
# runs too long or exits non-zero.
wait_exit() {
  local pid="$1" name="$2" limit="${3:-20}" i status
  for ((i = 0; i < limit * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then fail "$name still running after ${limit}s"; fi
  status=0
  wait "$pid" || status=$?
  [ "$status" -eq 0 ] || fail "$name exited with status $status"
}

# feature:interpreter for every Lua version the module supports.
versions=(lua51:lua5.1 lua52:lua5.2 lua53:lua5.3 lua54:lua5.4 luajit:luajit)

step "the interpreters, luarocks, LÖVE and the Lua headers (Debian packages)"
packages=(lua5.1 lua5.2 lua5.3 lua5.4 luajit luarocks love
  liblua5.1-dev liblua5.2-dev liblua5.3-dev liblua5.4-dev libluajit-5.1-dev)
missing=0
for tool in lua5.1 lua5.2 lua5.3 lua5.4 luajit luarocks love; do
  command -v "$tool" >/dev/null 2>&1 || missing=1
done
for header in lua5.1 lua5.2 lua5.3 lua5.4 luajit-2.1; do
  [ -e "/usr/include/$header/lua.h" ] || missing=1
done
if [ "$missing" -eq 1 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
for v in "${versions[@]}"; do "${v#*:}" -v; done

# One target folder for every version (cargo keeps each feature set's
# artifacts apart; only the final .so is overwritten, so it is copied at
# once). Beside the root's artifacts, never mixed with them: mlua's `module`
# feature here must not meet the root tests' `vendored`.
module_target="${CARGO_TARGET_DIR:-$root/target}/lua-module"
for v in "${versions[@]}"; do
  feature="${v%%:*}"
  step "build the module for $feature (bindings/lua, debug)"
  CARGO_TARGET_DIR="$module_target" cargo build --manifest-path bindings/lua/Cargo.toml \
    --no-default-features --features "$feature"
  mkdir -p "$work/$feature"
  cp "$module_target/debug/libtablenet_lua.so" "$work/$feature/tablenet.so"
done

# with_module FEATURE COMMAND...: runs COMMAND with that module on LUA_CPATH.
with_module() {
  local feature="$1"
  shift
  LUA_CPATH="$work/$feature/?.so;;" "$@"
}

for v in "${versions[@]}"; do
  feature="${v%%:*}" lua="${v#*:}"
  step "tests/lua/api.lua with $lua"
  with_module "$feature" "$lua" -e 'local n = require "tablenet"; assert(n.EVENT_CONNECT == 1)'
  with_module "$feature" timeout 300 "$lua" tests/lua/api.lua

  step "the Lua echo server with a Lua client, under $lua"
  # Not through with_module: $! must be timeout's own pid, to stop it.
  LUA_CPATH="$work/$feature/?.so;;" timeout 120 "$lua" examples/lua/echo_server.lua --port 0 --for 60 \
    >"$work/echo-$feature.out" 2>&1 &
  echo_pid=$!
  pids+=("$echo_pid")
  wait_for "$work/echo-$feature.out" "listening on "
  eport="$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/echo-$feature.out" | head -n 1)"
  with_module "$feature" timeout 60 "$lua" tests/lua/echo_client.lua "$eport" || fail "the echo client failed"
  wait_for "$work/echo-$feature.out" "* broadcast from"
  kill "$echo_pid" 2>/dev/null || true
done

for v in "${versions[@]}"; do
  feature="${v%%:*}" lua="${v#*:}"
  [ "$feature" = lua54 ] && continue
  step "integers beyond 2^53: lua5.4 sends, $lua receives (tests/lua/big_integers.lua)"
  LUA_CPATH="$work/$feature/?.so;;" timeout 60 "$lua" tests/lua/big_integers.lua receive \
    >"$work/big-$feature.out" 2>&1 &
  receiver=$!
  pids+=("$receiver")
  wait_for "$work/big-$feature.out" "ports "
  ports="$(sed -n 's/^ports //p' "$work/big-$feature.out")"
  # shellcheck disable=SC2086 # three ports, split on purpose
  with_module lua54 timeout 60 lua5.4 tests/lua/big_integers.lua send $ports || fail "the 5.4 sender failed"
  wait_exit "$receiver" "the $lua receiver" 60
  cat "$work/big-$feature.out"
done

export LUA_CPATH="$work/lua54/?.so;;"

step "build the Rust chat example: cargo build --example chat"
cargo build --example chat
chat="${CARGO_TARGET_DIR:-$root/target}/debug/examples/chat"
[ -x "$chat" ] || fail "no chat binary at $chat"

step "the Lua chat member with the Rust chat server and a Rust member"
"$chat" serve --port 0 >"$work/server.out" 2>&1 &
pids+=($!)
wait_for "$work/server.out" "listening on "
addr="$(sed -n 's/^listening on //p' "$work/server.out" | head -n 1)"
echo "chat server at $addr"

mkfifo "$work/rusty.in" "$work/luna.in"
"$chat" join "$addr" --name rusty <"$work/rusty.in" >"$work/rusty.out" 2>&1 &
rusty=$!
pids+=("$rusty")
exec 3>"$work/rusty.in"
wait_for "$work/rusty.out" "* welcome! members: rusty"

timeout 120 lua5.4 examples/lua/chat.lua "$addr" luna <"$work/luna.in" >"$work/luna.out" 2>&1 &
luna=$!
pids+=("$luna")
exec 4>"$work/luna.in"
wait_for "$work/luna.out" "* welcome! members: rusty, luna"
wait_for "$work/luna.out" "* connected to $addr (not encrypted)"
wait_for "$work/rusty.out" "* luna joined"

echo "hello from rust" >&3
nudge_until 4 "$work/luna.out" "<rusty> hello from rust"
echo "hello from lua" >&4
wait_for "$work/rusty.out" "<luna> hello from lua"
echo "/who" >&4
nudge_until 4 "$work/luna.out" "* members: rusty, luna"

# A scripted member (--say lines instead of standard input) joins and leaves.
timeout 60 lua5.4 examples/lua/chat.lua "$addr" bot --say "scripted hello" --say /who --listen 1 \
  </dev/null >"$work/bot.out" 2>&1 || fail "the scripted member failed"
grep -qF "* members: rusty, luna, bot" "$work/bot.out" || fail "the scripted member's /who"
wait_for "$work/rusty.out" "<bot> scripted hello"
wait_for "$work/rusty.out" "* bot left"
nudge_until 4 "$work/luna.out" "<bot> scripted hello"

# A taken name: one line on stderr, non-zero exit.
if timeout 60 lua5.4 examples/lua/chat.lua "$addr" rusty --say "x" </dev/null >"$work/dup.out" 2>&1; then
  fail "joining with a taken name succeeded"
fi
grep -qF "chat: the server refused you: the name \"rusty\" is taken" "$work/dup.out" || fail "the taken-name message"

echo "/quit" >&4
exec 4>&-
wait_exit "$luna" "the Lua member"
wait_for "$work/rusty.out" "* luna left"
exec 3>&-
wait_exit "$rusty" "the Rust member"
echo "chat: the Lua member and the Rust member exchanged lines"

step "the Lua chat member, encrypted"
key="00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
"$chat" serve --port 0 --key "$key" >"$work/secure-server.out" 2>&1 &
pids+=($!)
wait_for "$work/secure-server.out" "listening on "
saddr="$(sed -n 's/^listening on //p' "$work/secure-server.out" | head -n 1)"
timeout 60 lua5.4 examples/lua/chat.lua "$saddr" sealed --key "$key" --say "over AES-256-GCM" --say /who --listen 1 \
  </dev/null >"$work/sealed.out" 2>&1 || fail "the encrypted member failed"
grep -qF "* connected to $saddr (encrypted)" "$work/sealed.out" || fail "the encrypted member did not connect"
grep -qF "* members: sealed" "$work/sealed.out" || fail "the encrypted member's /who"
wait_for "$work/secure-server.out" "<sealed> over AES-256-GCM"
if timeout 60 lua5.4 examples/lua/chat.lua "$saddr" nokey --say "x" </dev/null >"$work/nokey.out" 2>&1; then
  fail "a member without the key joined an encrypted room"
fi
grep -qF "chat: cannot join $saddr:" "$work/nokey.out" || fail "the missing-key message"
cat "$work/nokey.out"

step "luarocks make: install the module offline into a temporary tree (lua5.3), api.lua against it"
# The rockspec builds with cargo for the Lua luarocks runs for; a debug
# build here, so it reuses the lua53 build above.
tree="$work/rocks"
CARGO_TARGET_DIR="$module_target" TABLENET_CARGO_PROFILE=dev \
  luarocks --lua-version 5.3 --tree "$tree" make --deps-mode none tablenet-0.1.0-1.rockspec
rm -f tablenet.so # the build's copy: only the installed one may be found
[ -e "$tree/lib/lua/5.3/tablenet.so" ] || fail "luarocks installed no tablenet.so"
(
  unset LUA_CPATH LUA_PATH
  eval "$(luarocks --lua-version 5.3 --tree "$tree" path)"
  case "$LUA_CPATH" in *"$work/lua"*) fail "LUA_CPATH points at the build folder" ;; esac
  cd "$work" # not the checkout, whose ./?.so could hold a stray build
  found="$(lua5.3 -e 'print(package.searchpath("tablenet", package.cpath))')"
  [ "$found" = "$tree/lib/lua/5.3/tablenet.so" ] || fail "require would load $found"
  timeout 300 lua5.3 "$root/tests/lua/api.lua"
)

step "LÖVE 11.4, headless: a server and a client exchange tables inside love.update"
mkdir -p "$work/xdg"
chmod 700 "$work/xdg"
(cd "$work" && XDG_RUNTIME_DIR="$work/xdg" with_module luajit timeout 60 love "$root/tests/lua/love") \
  >"$work/love.out" 2>&1 || fail "the LÖVE smoke test failed"
cat "$work/love.out"
grep -qF "love smoke: passed" "$work/love.out" || fail "the LÖVE smoke test did not pass"

echo
echo "Lua binding CI passed"
