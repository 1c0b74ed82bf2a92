"""Python <-> Lua <-> Rust on loopback: a Python server driving a stock lua5.4
client that uses the Lua module, and the Python chat member in the Rust chat
example's room, plain and encrypted."""

import os
import queue
import subprocess
import sys
import threading
import time

import pytest

import tablenet
from conftest import DEADLINE, KEY, OTHER_KEY, ROOT, Events

BRIDGE_LUA = ROOT / "examples/python/lua_bridge.lua"
BRIDGE_PY = ROOT / "examples/python/lua_bridge.py"
CHAT_PY = ROOT / "examples/python/chat.py"


class Proc:
    """A child process whose output lines are read with deadlines; killed on close."""

    def __init__(self, args, env=None, stdin=True):
        self.p = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines = []
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def expect(self, text, timeout=DEADLINE):
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} within {timeout}s in {self.lines!r}")
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"ended without {text!r}: {self.lines!r}")
            self.lines.append(line)
        return next(line for line in self.lines if text in line)

    def say(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def wait(self, timeout=DEADLINE):
        code = self.p.wait(timeout=timeout)
        while True:  # the rest of the output
            try:
                line = self.q.get(timeout=DEADLINE)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return code

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=DEADLINE)


@pytest.fixture
def procs():
    started = []
    yield lambda *a, **k: started.append(Proc(*a, **k)) or started[-1]
    for p in started:
        p.close()


def lua_env(lua_cpath):
    return dict(os.environ, LUA_CPATH=lua_cpath)


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_python_server_drives_a_stock_lua_client(lua54, lua_cpath, procs, key):
    net = tablenet.Network()
    events = Events(net)
    server = net.server("127.0.0.1", 0, key)
    lua = procs(
        [lua54, str(BRIDGE_LUA), str(server.port)] + ([key] if key else []),
        env=lua_env(lua_cpath),
        stdin=False,
    )
    conn = events.expect(tablenet.EVENT_CONNECT).object
    assert events.expect(tablenet.EVENT_RECEIVE).packet == {"type": "ready", "lua": "Lua 5.4"}

    conn.send({"cmd": "sum", "values": [1, 2, 3.5]})
    assert events.expect(tablenet.EVENT_RECEIVE).packet == {"reply": "sum", "result": 6.5}
    # Values through Lua and back: subtypes, bytes, holes, the true/1 keys.
    value = {
        "int": 7,
        "float": 7.0,
        "big": -(2**63),
        "raw": b"\x00\xff\xfe",
        "nested": [[1, 2], {"x": [True, False]}],
        "keys": {1: "one", tablenet.BoolKey(True): "true", 2.5: "float key"},
        "holes": {1: "a", 3: "c"},
    }
    conn.send({"cmd": "echo", "value": value})
    back = events.expect(tablenet.EVENT_RECEIVE).packet["value"]
    assert back == value
    assert type(back["int"]) is int and type(back["float"]) is float
    conn.send({"cmd": "state"})
    assert events.expect(tablenet.EVENT_RECEIVE).packet == {
        "reply": "state",
        "frame": 1,
        "buttons": {"up": False, "a": True},
    }
    conn.send({"cmd": "quit"})
    assert events.expect(tablenet.EVENT_RECEIVE).packet == {"reply": "bye"}
    assert "closed by peer" in events.expect(tablenet.EVENT_CLIENT_CLOSE).errors
    assert lua.wait() == 0, lua.lines
    net.shutdown(2.0)


def test_a_lua_client_with_the_wrong_key_is_refused(lua54, lua_cpath, procs):
    net = tablenet.Network()
    events = Events(net)
    server = net.server("127.0.0.1", 0, KEY)
    lua = procs(
        [lua54, str(BRIDGE_LUA), str(server.port), OTHER_KEY],
        env=lua_env(lua_cpath),
        stdin=False,
    )
    assert lua.wait(30) == 1
    assert any("keys do not match" in line for line in lua.lines), lua.lines
    assert "keys do not match" in events.expect(tablenet.EVENT_ERROR).errors
    assert server.connection_count() == 0
    net.shutdown(2.0)


@pytest.mark.parametrize("key", [None, KEY[:32]], ids=["plain", "encrypted"])
def test_the_lua_bridge_example(lua54, lua_cpath, procs, key):
    args = [sys.executable, str(BRIDGE_PY), "--lua", lua54] + (["--key", key] if key else [])
    bridge = procs(args, env=lua_env(lua_cpath), stdin=False)
    assert bridge.wait(60) == 0, bridge.lines
    assert "sum from Lua: 6.5" in bridge.lines
    assert "echo through Lua: unchanged" in bridge.lines
    assert "Lua says: bye" in bridge.lines


def start_room(procs, chat_binary, key):
    server = procs([chat_binary, "serve", "--port", "0"] + (["--key", key] if key else []))
    addr = server.expect("listening on ").split("listening on ", 1)[1]
    return server, addr


@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_the_python_chat_member_in_the_rust_room(chat_binary, procs, key):
    keyed = ["--key", key] if key else []
    server, addr = start_room(procs, chat_binary, key)
    rusty = procs([chat_binary, "join", addr, "--name", "rusty"] + keyed)
    rusty.expect("* welcome! members: rusty")
    pyra = procs([sys.executable, "-u", str(CHAT_PY), addr, "pyra"] + keyed)
    pyra.expect("* welcome! members: rusty, pyra")
    secure = "encrypted" if key else "not encrypted"
    pyra.expect(f"* connected to {addr} ({secure})")
    rusty.expect("* pyra joined")

    rusty.say("hello from rust")
    pyra.expect("<rusty> hello from rust")
    pyra.say("hello from python")
    rusty.expect("<pyra> hello from python")
    server.expect("<pyra> hello from python")
    pyra.say("/who")
    pyra.expect("* members: rusty, pyra")

    # A scripted member (--say lines), then a taken name.
    bot = procs([sys.executable, str(CHAT_PY), addr, "bot", "--say", "scripted", "--listen", "0.5"] + keyed)
    assert bot.wait(30) == 0, bot.lines
    rusty.expect("<bot> scripted")
    rusty.expect("* bot left")
    dup = procs([sys.executable, str(CHAT_PY), addr, "rusty", "--say", "x"] + keyed)
    assert dup.wait(30) == 1
    assert 'chat: the server refused you: the name "rusty" is taken' in dup.lines

    pyra.say("/quit")
    assert pyra.wait(30) == 0, pyra.lines
    rusty.expect("* pyra left")


def test_the_python_chat_member_without_the_key_is_refused(chat_binary, procs):
    server, addr = start_room(procs, chat_binary, KEY)
    nokey = procs([sys.executable, str(CHAT_PY), addr, "nokey", "--say", "x"])
    assert nokey.wait(30) == 1
    assert any(line.startswith(f"chat: cannot join {addr}:") and "requires a key" in line for line in nokey.lines), nokey.lines
    wrong = procs([sys.executable, str(CHAT_PY), addr, "wrong", "--key", OTHER_KEY, "--say", "x"])
    assert wrong.wait(30) == 1
    assert any("keys do not match" in line for line in wrong.lines), wrong.lines
