"""Ownership, closing, many clients, the GIL, encryption and the exit flush."""

import gc
import subprocess
import sys
import threading
import time

import pytest

import tablenet
from conftest import DEADLINE, KEY, OTHER_KEY, Events, connect_pair


def test_a_connection_python_stops_referencing_closes(net, events):
    server = net.server("127.0.0.1", 0)
    client = net.client("127.0.0.1", server.port)
    client.wait_for_connect(5.0)
    ev = events.expect(tablenet.EVENT_CONNECT)
    assert server.connection_count() == 1
    del ev  # the event held the only reference to the Connection
    gc.collect()
    closed = events.expect(tablenet.EVENT_SERVER_CLOSE)
    assert closed.object is client and "closed by peer" in closed.errors
    # The server's close event has no object left to name.
    assert events.expect(tablenet.EVENT_CLIENT_CLOSE).object is None


def test_a_kept_connection_stays_open_and_is_the_same_object(net, events):
    server, client, conn = connect_pair(net, events)
    gc.collect()
    client.send(["still here"])
    ev = events.expect(tablenet.EVENT_RECEIVE)
    assert ev.object is conn and ev.packet == ["still here"]
    conns = {conn: "alice"}
    assert conns[ev.object] == "alice"


def test_many_clients(net, events):
    server = net.server("127.0.0.1", 0)
    clients = [net.client("127.0.0.1", server.port) for _ in range(100)]
    for c in clients:
        c.wait_for_connect(5.0)
    conns = [events.expect(tablenet.EVENT_CONNECT).object for _ in clients]
    assert server.connection_count() == 100
    for i, c in enumerate(clients):
        c.send({"i": i})
    got = sorted(events.expect(tablenet.EVENT_RECEIVE).packet["i"] for _ in clients)
    assert got == list(range(100))
    assert server.broadcast({"all": True}) == 100
    receivers = {events.expect(tablenet.EVENT_RECEIVE).object.socket for _ in clients}
    assert receivers == {c.socket for c in clients}
    assert len(conns) == 100


def test_waiting_releases_the_gil(net, events):
    count = 0
    stop = threading.Event()

    def spin():
        nonlocal count
        while not stop.is_set():
            count += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        time.sleep(0.05)
        before = count
        start = time.monotonic()
        assert net.wait_events(0.5) == []
        waited = time.monotonic() - start
        during = count - before
        server = net.server("127.0.0.1", 0)
        port = server.port
        server.close()
        client = net.client("127.0.0.1", port)
        with pytest.raises(tablenet.ConnectError):
            client.wait_for_connect(2.0)
    finally:
        stop.set()
        thread.join(DEADLINE)
    assert waited >= 0.45
    # Holding the GIL for 0.5 s would leave the other thread a few switch
    # intervals at most; released, it counts for the whole wait.
    assert during > 100_000, during


def test_encrypted_round_trip(net, events):
    server, client, conn = connect_pair(net, events, key=KEY)
    client.send({"secret": "over AES-256-GCM"})
    assert events.expect(tablenet.EVENT_RECEIVE).packet == {"secret": "over AES-256-GCM"}
    conn.send(["and back"])
    assert events.expect(tablenet.EVENT_RECEIVE, lambda e: e.object is client).packet == ["and back"]
    key128 = KEY[:32]
    server, client, conn = connect_pair(net, events, key=key128)
    client.send([1])
    assert events.expect(tablenet.EVENT_RECEIVE).packet == [1]


def test_chacha20_when_both_sides_choose_it():
    net = tablenet.Network(cipher="chacha20-poly1305")
    events = Events(net)
    server, client, conn = connect_pair(net, events, key=KEY)
    client.send(["chacha"])
    assert events.expect(tablenet.EVENT_RECEIVE).packet == ["chacha"]
    net.shutdown(2.0)


@pytest.mark.parametrize(
    "server_key, client_key, says",
    [
        (KEY, OTHER_KEY, "keys do not match"),
        (KEY, None, "requires a key"),
        (None, KEY, "has none"),
    ],
)
def test_wrong_keys_fail_with_the_reason(net, events, server_key, client_key, says):
    server = net.server("127.0.0.1", 0, server_key)
    client = net.client("127.0.0.1", server.port, client_key)
    with pytest.raises(tablenet.ConnectError, match=says):
        client.wait_for_connect(5.0)
    ev = events.expect(tablenet.EVENT_CONNECTED)
    assert ev.result is False and says in ev.errors
    assert server.connection_count() == 0


SENDER = r"""
import sys, tablenet
client = tablenet.Client("127.0.0.1", int(sys.argv[1]))
client.wait_for_connect(5.0)
for i in range(200):
    client.send({"i": i, "blob": "x" * 10000})
print("sent", flush=True)
# The script ends here: atexit flushes the default network.
"""


def test_a_script_that_sends_and_ends_delivers_everything(net, events):
    server = net.server("127.0.0.1", 0)
    done = subprocess.run(
        [sys.executable, "-c", SENDER, str(server.port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "sent"
    got = [events.expect(tablenet.EVENT_RECEIVE).packet["i"] for _ in range(200)]
    assert got == list(range(200))
    closed = events.expect(tablenet.EVENT_CLIENT_CLOSE)
    assert "closed by peer" in closed.errors


def test_dropping_a_network_flushes_without_holding_the_gil(events, net):
    server = net.server("127.0.0.1", 0)
    other = tablenet.Network()
    client = other.client("127.0.0.1", server.port)
    client.wait_for_connect(5.0)
    for i in range(50):
        client.send([i])
    del client, other
    gc.collect()
    got = [events.expect(tablenet.EVENT_RECEIVE).packet[0] for _ in range(50)]
    assert got == list(range(50))
    assert "closed by peer" in events.expect(tablenet.EVENT_CLIENT_CLOSE).errors
