#!/usr/bin/env bash
# CI for the Python binding:
#   1. formatting and clippy of the binding (its own cargo workspace);
#   2. installs lua5.4 with apt-get if it is missing, builds the Lua module
#      (bindings/lua) and the Rust chat example, for the interop tests;
#   3. a fresh virtual environment: pip install ./bindings/python pytest
#      (maturin builds the abi3 wheel), the way the README installs it;
#   4. the pytest tests (bindings/python/tests), interop included: a Python
#      server driving a stock lua5.4 client, the Python chat member in the
#      Rust chat room, plain and encrypted. Missing tools fail here, never skip.
# Loopback only; every wait has a deadline. Exits non-zero on the first failure.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
export CARGO_TERM_COLOR=never

step() { printf '\n==> %s\n' "$*"; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step "python3 (3.9 or later)"
python3 -c 'import sys; assert sys.version_info >= (3, 9), sys.version; print(sys.version)'

step "the binding: cargo fmt --check and cargo clippy (bindings/python)"
(cd bindings/python && cargo fmt -- --check && cargo clippy --all-targets -- -D warnings)

step "lua5.4 (Debian's stock interpreter)"
if ! command -v lua5.4 >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lua5.4 >/dev/null
fi
lua5.4 -v

step "the Lua module (bindings/lua) and the Rust chat example"
# The Lua 5.4 module, in the folder bindings/lua/ci.sh builds every version
# in (after that script this only relinks it), copied at once: a later build
# of another version there overwrites the file.
module_target="${CARGO_TARGET_DIR:-$root/target}/lua-module"
CARGO_TARGET_DIR="$module_target" cargo build --manifest-path bindings/lua/Cargo.toml \
  --no-default-features --features lua54
cp "$module_target/debug/libtablenet_lua.so" "$work/libtablenet_lua.so"
export TABLENET_LUA_MODULE="$work/libtablenet_lua.so"
cargo build --example chat
export TABLENET_CHAT="${CARGO_TARGET_DIR:-$root/target}/debug/examples/chat"
[ -x "$TABLENET_CHAT" ] || { echo "no chat binary at $TABLENET_CHAT" >&2; exit 1; }

step "a fresh venv: pip install ./bindings/python pytest"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet ./bindings/python pytest
"$work/venv/bin/python" - <<'PY'
import pathlib, tablenet
package = pathlib.Path(tablenet.__file__).parent
for name in ("py.typed", "__init__.pyi"):
    assert (package / name).is_file(), f"the wheel lacks {name}: {sorted(p.name for p in package.iterdir())}"
print("tablenet", tablenet.__version__, "from", package)
PY

step "pytest bindings/python/tests (interop included)"
(cd "$work" && TABLENET_REQUIRE_INTEROP=1 timeout 900 "$work/venv/bin/python" -m pytest -q -p no:cacheprovider "$root/bindings/python/tests")

echo
echo "Python binding CI passed"
