#!/usr/bin/env bash
# CI for the Lua binding, run with the stock Debian interpreter:
#   1. builds the loadable module (bindings/lua, its own cargo workspace);
#   2. installs lua5.4 with apt-get if it is missing;
#   3. runs tests/lua/api.lua against the module (every seed call, plain and
#      encrypted, a server and clients in one script);
#   4. the Lua chat member (examples/lua/chat.lua) chats with the Rust chat
#      server and a Rust member (cargo build --example chat);
#   5. the Lua echo server (examples/lua/echo_server.lua) answers a Lua client.
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

step "lua5.4 (Debian's stock interpreter)"
if ! command -v lua5.4 >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.4 >/dev/null
fi
lua5.4 -v

step "build the module: cargo build (bindings/lua)"
# Its own workspace and target directory: mlua's `module` feature must not
# meet the `vendored` feature of the root's tests.
(cd bindings/lua && env -u CARGO_TARGET_DIR cargo build)
cp bindings/lua/target/debug/libtablenet_lua.so "$work/tablenet.so"
export LUA_CPATH="$work/?.so;;"
lua5.4 -e 'local n = require "tablenet"; assert(n.EVENT_CONNECT == 1)'

step "tests/lua/api.lua with lua5.4"
timeout 300 lua5.4 tests/lua/api.lua

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

step "the Lua echo server with a Lua client"
timeout 120 lua5.4 examples/lua/echo_server.lua --port 0 --for 60 >"$work/echo.out" 2>&1 &
pids+=($!)
wait_for "$work/echo.out" "listening on "
eport="$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/echo.out" | head -n 1)"
timeout 60 lua5.4 tests/lua/echo_client.lua "$eport" || fail "the echo client failed"
wait_for "$work/echo.out" "* broadcast from"

echo
echo "Lua binding CI passed"
