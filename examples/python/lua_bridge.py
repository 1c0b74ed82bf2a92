"""Python drives a Lua script with tables: the emulator scenario.

A Python server starts examples/python/lua_bridge.lua under a stock Lua 5.4
(which loads the tablenet Lua module), then sends it commands as dicts and
reads its replies, values intact both ways: integers and floats, binary
strings, nested tables.

    cargo build --manifest-path bindings/lua/Cargo.toml
    ln -s "$PWD/bindings/lua/target/debug/libtablenet_lua.so" /tmp/tablenet.so
    LUA_CPATH="/tmp/?.so;;" python examples/python/lua_bridge.py [--key HEX]
"""

import argparse
import subprocess
import sys
from pathlib import Path

import tablenet

LUA_SCRIPT = Path(__file__).with_name("lua_bridge.lua")


def main():
    p = argparse.ArgumentParser(description="Drive a Lua script with tables.")
    p.add_argument("--lua", default="lua5.4", help="the Lua interpreter (default lua5.4)")
    p.add_argument("--key", help="32 or 64 hex digits: encrypt the link")
    args = p.parse_args()

    with tablenet.Network() as net:
        server = net.server("127.0.0.1", 0, args.key)
        command = [args.lua, str(LUA_SCRIPT), str(server.port)] + ([args.key] if args.key else [])
        lua = subprocess.Popen(command)
        lua_side = None  # keep the Connection, or it closes
        backlog = []  # events taken but not handled yet: a batch can hold several

        def reply(timeout=10.0):
            """The next table the Lua script sends."""
            nonlocal lua_side
            for _ in range(int(timeout / 0.5) + 1):
                while backlog:
                    ev = backlog.pop(0)
                    if ev.event == tablenet.EVENT_CONNECT:
                        lua_side = ev.object
                    elif ev.event == tablenet.EVENT_RECEIVE:
                        return ev.packet
                    elif ev.event in (tablenet.EVENT_CLIENT_CLOSE, tablenet.EVENT_ERROR):
                        sys.exit(f"lua_bridge: {ev.errors}")
                backlog.extend(net.wait_events(0.5))
            sys.exit("lua_bridge: no reply from the Lua script")

        ready = reply()
        print(f"* {ready['lua']} is ready ({'encrypted' if args.key else 'not encrypted'})")
        lua_side.send({"cmd": "sum", "values": [1, 2, 3.5]})
        print(f"sum from Lua: {reply()['result']}")
        sample = {"int": 7, "float": 7.0, "raw": b"\x00\xff", "list": [1, [2, 3]], "text": "h\u00e9"}
        lua_side.send({"cmd": "echo", "value": sample})
        back = reply()["value"]
        assert back == sample and type(back["int"]) is int and type(back["float"]) is float, back
        print("echo through Lua: unchanged")
        for _ in range(2):
            lua_side.send({"cmd": "state"})
        print(f"state from Lua: {reply()} {reply()}")
        lua_side.send({"cmd": "quit"})
        print(f"Lua says: {reply()['reply']}")
        code = lua.wait(timeout=10)
        if code != 0:
            sys.exit(f"lua_bridge: the Lua script exited with {code}")


if __name__ == "__main__":
    main()
