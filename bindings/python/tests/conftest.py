"""Shared helpers: a fresh network per test and waits with deadlines.

Every wait has a deadline; events that a wait does not want are kept for the
next one (a Connect event carries the connection's owning object).
"""

import os
import shutil
import time
from pathlib import Path

import pytest

import tablenet

ROOT = Path(__file__).resolve().parents[3]
DEADLINE = 10.0
KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
OTHER_KEY = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"


class Events:
    """Takes events from one network; `expect` returns the first that matches."""

    def __init__(self, net):
        self.net = net
        self.backlog = []

    def expect(self, kind, where=None, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.backlog):
                if ev.event == kind and (where is None or where(ev)):
                    return self.backlog.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no event {kind} within {timeout}s; saw {self.backlog!r}"
                )
            self.backlog.extend(self.net.wait_events(min(left, 0.5)))

    def packets(self, count, where=None, timeout=DEADLINE):
        return [self.expect(tablenet.EVENT_RECEIVE, where, timeout).packet for _ in range(count)]


@pytest.fixture
def net():
    network = tablenet.Network()
    yield network
    network.shutdown(2.0)


@pytest.fixture
def events(net):
    return Events(net)


def connect_pair(net, events, key=None, address="127.0.0.1"):
    """A server, a connected client, and the server's Connection object."""
    server = net.server(address, 0, key)
    client = net.client(address, server.port, key)
    client.wait_for_connect(5.0)
    conn = events.expect(tablenet.EVENT_CONNECT).object
    return server, client, conn


@pytest.fixture
def pair(net, events):
    return connect_pair(net, events)


def require_interop():
    """CI sets TABLENET_REQUIRE_INTEROP=1: a missing tool fails instead of skipping."""
    return os.environ.get("TABLENET_REQUIRE_INTEROP") == "1"


def missing(what):
    if require_interop():
        pytest.fail(f"{what} (TABLENET_REQUIRE_INTEROP=1)")
    pytest.skip(what)


def target_dirs():
    dirs = []
    if os.environ.get("CARGO_TARGET_DIR"):
        dirs.append(Path(os.environ["CARGO_TARGET_DIR"]))
    dirs.append(ROOT / "target")
    return dirs


@pytest.fixture
def lua54():
    exe = shutil.which("lua5.4")
    if not exe:
        missing("lua5.4 is not installed (apt-get install lua5.4)")
    return exe


@pytest.fixture
def lua_cpath(tmp_path):
    """A LUA_CPATH under which `require "tablenet"` loads the Lua module."""
    candidates = []
    if os.environ.get("TABLENET_LUA_MODULE"):
        candidates.append(Path(os.environ["TABLENET_LUA_MODULE"]))
    candidates.append(ROOT / "bindings/lua/target/debug/libtablenet_lua.so")
    candidates += [d / "debug/libtablenet_lua.so" for d in target_dirs()]
    for lib in candidates:
        if lib.is_file():
            (tmp_path / "tablenet.so").symlink_to(lib)
            return f"{tmp_path}/?.so;;"
    missing(
        "the Lua module is not built: cargo build --manifest-path bindings/lua/Cargo.toml"
    )


@pytest.fixture
def chat_binary():
    candidates = []
    if os.environ.get("TABLENET_CHAT"):
        candidates.append(Path(os.environ["TABLENET_CHAT"]))
    candidates += [d / "debug/examples/chat" for d in target_dirs()]
    for exe in candidates:
        if exe.is_file():
            return str(exe)
    missing("the Rust chat example is not built: cargo build --example chat")
