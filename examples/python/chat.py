"""A chat member in Python, for the Rust chat server of `cargo run --example chat`.

    cargo run --example chat -- serve --port 4096          # the room (Rust)
    python examples/python/chat.py 127.0.0.1:4096 pyra     # type lines; /who, /quit

usage: chat.py HOST:PORT NAME [--key HEX] [--say LINE]... [--listen SECONDS]

Every message is a table (examples/chat/protocol.rs): this member sends
{"type": "hello", "name": ...}, {"type": "say", "text": ...} and {"type": "who"},
and shows what the room sends back. --say lines replace standard input;
--listen keeps showing what arrives for that long after the input ends.
"""

import argparse
import queue
import sys
import threading
import time

import tablenet

SHOW = {
    "welcome": lambda m: "* welcome! members: " + ", ".join(m.get("members", [])),
    "said": lambda m: f"<{m.get('name')}> {m.get('text')}",
    "joined": lambda m: f"* {m.get('name')} joined",
    "left": lambda m: f"* {m.get('name')} left",
    "members": lambda m: "* members: " + ", ".join(m.get("names", [])),
}


def fail(message):
    print(f"chat: {message}", file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser(description="A member of the tablenet chat room.")
    p.add_argument("server", help="HOST:PORT, such as 127.0.0.1:4096 or [::1]:4096")
    p.add_argument("name")
    p.add_argument("--key", help="32 or 64 hex digits, the server's key")
    p.add_argument("--say", action="append", help="a line to send instead of reading stdin")
    p.add_argument("--listen", type=float, default=0.0, help="seconds to listen after the input")
    args = p.parse_args()
    host, _, port = args.server.rpartition(":")
    try:
        client = tablenet.Client(host.strip("[]"), int(port), args.key)
        client.wait_for_connect(5.0)
    except (ValueError, tablenet.Error) as e:
        fail(f"cannot join {args.server}: {e}")
    client.send({"type": "hello", "name": args.name})

    lines = queue.Queue()  # input lines; None at the end
    def read_stdin():
        for line in sys.stdin:
            lines.put(line.rstrip("\r\n"))
        lines.put(None)
    welcomed, leave_at, leaving = False, None, False
    deadline = time.monotonic() + 5.0  # for the welcome, then for the goodbye
    while True:
        for ev in tablenet.wait_events(0.1):
            if ev.event == tablenet.EVENT_RECEIVE and isinstance(ev.packet, dict):
                kind = ev.packet.get("type")
                if kind == "refused":
                    fail(f"the server refused you: {ev.packet.get('reason')}")
                if kind in SHOW:
                    print(SHOW[kind](ev.packet), flush=True)
                if kind == "welcome" and not welcomed:
                    welcomed = True
                    secure = "encrypted" if args.key else "not encrypted"
                    print(f"* connected to {args.server} ({secure}); /who lists the members, /quit leaves", flush=True)
                    for line in args.say or []:
                        lines.put(line)
                    if args.say is None:
                        threading.Thread(target=read_stdin, daemon=True).start()
                    else:
                        lines.put(None)
            elif ev.event == tablenet.EVENT_SERVER_CLOSE and ev.object is client:
                if leaving:
                    return
                fail(f"lost the connection to the server ({ev.errors})")
        if not welcomed or leaving:
            if time.monotonic() > deadline:
                fail("no welcome within 5 seconds" if not welcomed else "the server did not confirm that we left")
            continue
        if leave_at is not None:
            if time.monotonic() >= leave_at:
                leaving, deadline = True, time.monotonic() + 5.0
                client.disconnect()  # what was queued goes out first
            continue
        try:
            line = lines.get_nowait()
        except queue.Empty:
            continue
        if line is None or line == "/quit":
            leave_at = time.monotonic() + (args.listen if line is None else 0.0)
        elif line == "/who":
            client.send({"type": "who"})
        elif line.startswith("/"):
            print(f"* unknown command {line}: try /who or /quit", flush=True)
        elif line:
            client.send({"type": "say", "text": line})


if __name__ == "__main__":
    main()
