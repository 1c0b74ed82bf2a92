"""Every method, property and event of the Python API, on loopback."""

import time

import pytest

import tablenet
from conftest import DEADLINE, Events, connect_pair


def test_constants_match_the_lua_network_module():
    assert (
        tablenet.EVENT_CONNECT,
        tablenet.EVENT_CONNECTED,
        tablenet.EVENT_RECEIVE,
        tablenet.EVENT_SERVER_CLOSE,
        tablenet.EVENT_CLIENT_CLOSE,
        tablenet.EVENT_ERROR,
        tablenet.EVENT_DRAINED,
    ) == (1, 2, 3, 4, 5, 6, 7)
    assert issubclass(tablenet.ConnectTimeout, tablenet.ConnectError)
    assert issubclass(tablenet.ClosedError, tablenet.Error)
    assert issubclass(tablenet.QueueFullError, tablenet.Error)


def test_addresses_ports_and_sockets(net, events):
    server, client, conn = connect_pair(net, events)
    assert server.address == "127.0.0.1" and server.port > 0
    assert client.address == "127.0.0.1" and client.port == server.port
    assert conn.address == "127.0.0.1" and conn.port > 0 and conn.port != server.port
    assert len({server.socket, client.socket, conn.socket}) == 3
    assert conn.server is server
    assert client.is_connected and conn.is_open and server.is_open
    assert server.network is net and client.network is net
    assert "127.0.0.1" in repr(server) and "Connection" in repr(conn)


def test_host_names_and_ipv6_loopback(net, events):
    server = net.server("localhost", 0)
    client = net.client("localhost", server.port)
    assert client.wait_for_connect(5.0) >= 0.0
    events.expect(tablenet.EVENT_CONNECT)
    try:
        server6 = net.server("::1", 0)
    except tablenet.Error:
        pytest.skip("no IPv6 loopback here")
    client6 = net.client("::1", server6.port)
    client6.wait_for_connect(5.0)
    assert events.expect(tablenet.EVENT_CONNECT, lambda e: e.server is server6).object.address == "::1"


def test_events_connect_connected_receive_and_closes(net, events):
    server = net.server("127.0.0.1", 0)
    client = net.client("127.0.0.1", server.port)
    connected = events.expect(tablenet.EVENT_CONNECTED)
    assert connected.object is client and connected.result is True and connected.errors == ""
    assert connected.socket == client.socket
    before = time.time()
    connect = events.expect(tablenet.EVENT_CONNECT)
    conn = connect.object
    assert isinstance(conn, tablenet.Connection) and connect.server is server
    assert abs(connect.timestamp - before) < DEADLINE

    client.send({"OpCode": 10, "Data": "From client"})
    ev = events.expect(tablenet.EVENT_RECEIVE)
    assert ev.object is conn and ev.packet == {"OpCode": 10, "Data": "From client"}
    assert ev.result is None

    conn.send(["Hello Client"])
    ev = events.expect(tablenet.EVENT_RECEIVE, lambda e: e.object is client)
    assert ev.packet == ["Hello Client"]

    client.disconnect()
    closed = events.expect(tablenet.EVENT_CLIENT_CLOSE)
    assert closed.object is conn and closed.server is server and "closed by peer" in closed.errors
    gone = events.expect(tablenet.EVENT_SERVER_CLOSE)
    assert gone.object is client and "closed locally" in gone.errors
    assert not client.is_connected


def test_server_send_broadcast_disconnect_and_count(net, events):
    server = net.server("127.0.0.1", 0)
    clients = [net.client("127.0.0.1", server.port) for _ in range(3)]
    for c in clients:
        c.wait_for_connect(5.0)
    conns = [events.expect(tablenet.EVENT_CONNECT).object for _ in clients]
    assert server.connection_count() == 3

    assert server.send({"to": "two"}, conns[0], conns[1]) == 2
    assert server.broadcast({"to": "all"}) == 3
    got = {}
    for _ in range(5):
        ev = events.expect(tablenet.EVENT_RECEIVE)
        got.setdefault(ev.object.socket, []).append(ev.packet["to"])
    by_client = [got.get(c.socket, []) for c in clients]
    by_connection = {c.port: c for c in conns}
    assert sorted(map(len, by_client)) == [1, 2, 2]
    assert all(p[-1] == "all" for p in by_client)
    assert by_connection  # every connection was distinct

    assert server.disconnect(conns[0]) == 1
    assert server.disconnect(conns[0]) == 0  # already closing
    events.expect(tablenet.EVENT_SERVER_CLOSE)
    events.expect(tablenet.EVENT_CLIENT_CLOSE, lambda e: e.object is conns[0])
    assert server.connection_count() == 2
    with pytest.raises(TypeError, match="must be a Connection, got Client"):
        server.send({}, clients[0])


def test_send_to_a_closed_client_raises_closed(net, events):
    server, client, conn = connect_pair(net, events)
    client.disconnect()
    events.expect(tablenet.EVENT_SERVER_CLOSE)
    with pytest.raises(tablenet.ClosedError):
        client.send({"late": True})
    events.expect(tablenet.EVENT_CLIENT_CLOSE)
    with pytest.raises(tablenet.ClosedError):
        conn.send({"late": True})
    assert server.send({"late": True}, conn) == 0


def test_wait_for_connect_failures(net, events):
    # A closed loopback port refuses at once.
    server = net.server("127.0.0.1", 0)
    port = server.port
    server.close()
    client = net.client("127.0.0.1", port)
    with pytest.raises(tablenet.ConnectError) as info:
        client.wait_for_connect(5.0)
    assert "refused" in str(info.value).lower()
    ev = events.expect(tablenet.EVENT_CONNECTED)
    assert ev.result is False and ev.errors


def test_wait_for_connect_times_out_on_a_full_backlog():
    # A listener with backlog 1 that never accepts: later connects hang.
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        net = tablenet.Network(handshake_timeout=0.5)
        client = net.client("127.0.0.1", port)
        start = time.monotonic()
        with pytest.raises(tablenet.ConnectError):
            client.wait_for_connect(0.3)
        assert time.monotonic() - start < 5.0
        net.shutdown(1.0)
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_bad_arguments_raise_value_error(net):
    with pytest.raises(ValueError, match="`port`"):
        net.server("127.0.0.1", 70000)
    with pytest.raises(ValueError, match="`port`"):
        net.client("127.0.0.1", 0)
    with pytest.raises(ValueError, match="`key`"):
        net.server("127.0.0.1", 0, "abc")
    with pytest.raises(ValueError, match="`address`"):
        net.client("not an address", 4096)
    server = net.server("127.0.0.1", 0)
    client = net.client("127.0.0.1", server.port)
    with pytest.raises(ValueError, match="`timeout`"):
        client.wait_for_connect(-1)
    with pytest.raises(ValueError, match="`timeout`"):
        net.wait_events(float("nan"))
    with pytest.raises(ValueError, match="max_depth"):
        tablenet.Network(max_depth=0)
    with pytest.raises(ValueError, match="cipher"):
        tablenet.Network(cipher="rot13")
    with pytest.raises(TypeError, match="cannot send None"):
        client.send(None)


def test_pressure_limits_are_options_and_checked():
    with tablenet.Network(
        memory_budget=64 * 1024 * 1024, connection_events=10, frame_timeout=False
    ) as net:
        server = net.server("127.0.0.1", 0)
        assert server.port > 0
    with pytest.raises(ValueError, match="memory_budget"):
        tablenet.Network(memory_budget=1024)
    with pytest.raises(ValueError, match="connection_events"):
        tablenet.Network(connection_events=0)
    with pytest.raises(ValueError, match="frame_timeout"):
        tablenet.Network(frame_timeout=0.001)
    with pytest.raises(ValueError, match="max_handshaking"):
        tablenet.Network(max_handshaking=0)


def test_failures_before_authentication_are_summed_up_with_the_address():
    # A client with the wrong key fails before authenticating; with
    # failure_reports_per_second=0 the server reports one summary a second.
    with tablenet.Network(
        failure_reports_per_second=0, max_connections_per_address=10, handshake_budget=0.25
    ) as net:
        events = Events(net)
        server = net.server("127.0.0.1", 0, "ab" * 32)
        client = net.client("127.0.0.1", server.port, "cd" * 32)  # kept: a dropped one closes
        summary = events.expect(
            tablenet.EVENT_ERROR, lambda ev: "failed before authenticating" in ev.errors
        )
        assert summary.object is server
        assert summary.errors.startswith("1 more connections failed")
        assert "127.0.0.1:" in summary.errors
        assert not client.is_connected  # it had the wrong key
    with pytest.raises(ValueError, match="max_connections_per_address"):
        tablenet.Network(max_connections_per_address=0)
    with pytest.raises(ValueError, match="handshake_budget"):
        tablenet.Network(handshake_budget=2.0)


def test_address_in_use_is_a_tablenet_error(net):
    server = net.server("127.0.0.1", 0)
    with pytest.raises(tablenet.Error, match="listen"):
        net.server("127.0.0.1", server.port)


def test_context_managers_close(events, net):
    with net.server("127.0.0.1", 0) as server:
        with net.client("127.0.0.1", server.port) as client:
            client.wait_for_connect(5.0)
            conn = events.expect(tablenet.EVENT_CONNECT).object
        assert events.expect(tablenet.EVENT_SERVER_CLOSE).object is client
        events.expect(tablenet.EVENT_CLIENT_CLOSE)
        with conn:
            pass
    assert not server.is_open
    with pytest.raises(tablenet.ClosedError):
        server.broadcast({})
    with tablenet.Network() as other:
        s = other.server("127.0.0.1", 0)
    with pytest.raises(tablenet.ClosedError):
        other.server("127.0.0.1", 0)
    assert not s.is_open


def test_default_network_and_module_functions():
    server = tablenet.Server("127.0.0.1")
    client = tablenet.Client("127.0.0.1", server.port)
    assert server.network is tablenet.default_network()
    client.wait_for_connect(5.0)
    client.send({"via": "default"})
    seen = Events(tablenet.default_network())
    ev = seen.expect(tablenet.EVENT_RECEIVE)
    assert ev.packet == {"via": "default"}
    assert tablenet.poll_events() == [] or all(
        isinstance(e, tablenet.Event) for e in tablenet.poll_events()
    )
    assert tablenet.wait_events(0) == []
    server.close()


def test_pending_events_and_poll(net, events):
    server, client, conn = connect_pair(net, events)
    for i in range(5):
        client.send([i])
    deadline = time.monotonic() + DEADLINE
    while net.pending_events() < 5:
        assert time.monotonic() < deadline, "5 messages did not arrive"
        time.sleep(0.01)
    got = [e.packet for e in net.poll_events() if e.event == tablenet.EVENT_RECEIVE]
    assert got == [[0], [1], [2], [3], [4]]
    assert net.poll_events() == []


def test_shutdown_reports_clean_and_closes_everything(events):
    net = tablenet.Network()
    server = net.server("127.0.0.1", 0)
    client = net.client("127.0.0.1", server.port)
    client.wait_for_connect(5.0)
    client.send({"x": 1})
    assert net.shutdown(5.0) is True
    assert not client.is_connected and not server.is_open
    with pytest.raises(tablenet.ClosedError):
        net.client("127.0.0.1", server.port)
    with pytest.raises(tablenet.ClosedError):
        client.wait_for_connect(1.0)


def test_drained_after_queue_full():
    net = tablenet.Network(send_queue_bytes=1024)
    events = Events(net)
    server, client, conn = connect_pair(net, events)
    blob = b"x" * 4096
    full = None
    for _ in range(10_000):
        try:
            client.send([blob])
        except tablenet.QueueFullError as e:
            full = e
            break
    assert full is not None, "a 1 KiB queue never filled"
    assert client.is_connected
    drained = events.expect(tablenet.EVENT_DRAINED)
    assert drained.object is client
    client.send(["after"])
    events.expect(tablenet.EVENT_RECEIVE, lambda e: e.packet == ["after"])
    net.shutdown(2.0)


def test_the_readme_example_runs():
    import re
    import subprocess
    import sys

    from conftest import ROOT

    readme = (ROOT / "bindings/python/README.md").read_text()
    code = re.search(r"```python\n(import tablenet\n.*?)```", readme, re.S).group(1)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "{'OpCode': 10, 'Data': 'From client'}",
        "['Hello Client']",
    ]
