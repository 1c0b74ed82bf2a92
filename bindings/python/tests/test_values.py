"""Values: what converts, what comes back, and the refusals (with paths)."""

import math

import pytest

import tablenet
from conftest import Events, connect_pair


def echo(client, events, value):
    """Sends `value` from the client; returns what the server received."""
    client.send(value)
    return events.expect(tablenet.EVENT_RECEIVE).packet


def test_round_trips(pair, events):
    server, client, conn = pair
    cases = [
        {"OpCode": 10, "Data": "From server"},
        [1, 2, "three", 4.5, True, False],
        {"nested": {"deeper": [[1], [2, [3]]]}},
        {"big": 2**63 - 1, "small": -(2**63), "float": 1.0, "neg_zero": -0.0},
        {"inf": math.inf, "tiny": 5e-324},
        {1.5: "float key", -3: "negative key", 0: "zero", True: "t", "s": b"\xfe bytes"},
        {b"\xff\x00": b"\x00\x01\xfe\xff", "text": "h\u00e9llo \u2603"},
        [[], {"empty": {}}],
        "just a string",
        42,
    ]
    for value in cases:
        got = echo(client, events, value)
        want = value
        if value == [[], {"empty": {}}]:
            want = [{}, {"empty": {}}]  # an empty table comes back as a dict
        assert got == want, value
    # Integer and float stay apart (1 and 1.0 are different subtypes).
    got = echo(client, events, [1, 1.0])
    assert type(got[0]) is int and type(got[1]) is float
    assert math.copysign(1.0, echo(client, events, [-0.0])[0]) == -1.0
    assert math.isnan(echo(client, events, [math.nan])[0])


def test_tuples_bytearrays_and_integral_float_keys(pair, events):
    server, client, conn = pair
    assert echo(client, events, (1, (2, 3))) == [1, [2, 3]]
    assert echo(client, events, [bytearray(b"a\xffb")]) == [b"a\xffb"]
    # A float key with an integral value is the integer key (Lua's rule).
    assert echo(client, events, {2.0: "two", "x": 1}) == {2: "two", "x": 1}
    # Keys 1..n make a sequence, whichever way they were written.
    assert echo(client, events, {1: "a", 2: "b"}) == ["a", "b"]


def test_none_is_a_hole_or_an_absent_key(pair, events):
    server, client, conn = pair
    assert echo(client, events, [1, None, 3]) == {1: 1, 3: 3}
    assert echo(client, events, {"a": None, "b": 2}) == {"b": 2}
    assert echo(client, events, [1, 2, None]) == [1, 2]


def test_strings_that_are_not_utf8_come_back_as_bytes(pair, events):
    server, client, conn = pair
    got = echo(client, events, {"ok": "caf\u00e9", "raw": b"caf\xe9", b"\xe9": 1})
    assert got == {"ok": "caf\u00e9", "raw": b"caf\xe9", b"\xe9": 1}
    assert type(got["ok"]) is str and type(got["raw"]) is bytes


def test_bytes_strings_option_returns_every_string_as_bytes():
    net = tablenet.Network(bytes_strings=True)
    events = Events(net)
    server, client, conn = connect_pair(net, events)
    got = echo(client, events, {"name": "caf\u00e9", "list": ["a", b"\xff"]})
    assert got == {b"name": "caf\u00e9".encode(), b"list": [b"a", b"\xff"]}
    net.shutdown(2.0)


def test_true_and_one_keep_both_entries_with_boolkey(pair, events):
    server, client, conn = pair
    # {[1] = "a", [true] = "b", [false] = "c", [0] = "d"} built with BoolKey,
    # since a Python dict cannot hold True and 1 apart.
    sent = {1: "a", tablenet.BoolKey(True): "b", tablenet.BoolKey(False): "c", 0: "d"}
    got = echo(client, events, sent)
    assert len(got) == 4
    assert got[1] == "a" and got[0] == "d"
    assert got[tablenet.BoolKey(True)] == "b" and got[tablenet.BoolKey(False)] == "c"
    assert tablenet.BoolKey(True) != True and tablenet.BoolKey(True) != 1  # noqa: E712
    assert repr(tablenet.BoolKey(True)) == "BoolKey(True)"
    # Sent back, it is the same table again.
    assert echo(client, events, got) == got
    # Without a collision, boolean keys stay plain bools.
    got = echo(client, events, {True: "yes", "n": 2})
    assert got == {True: "yes", "n": 2} and type(next(iter(got))) is bool


def test_unsupported_types_name_the_place(pair):
    server, client, conn = pair
    with pytest.raises(TypeError, match=r"cannot send a set: .*at packet\['a'\]\[1\]"):
        client.send({"a": [1, {2}]})
    with pytest.raises(TypeError, match=r"cannot send a object"):
        client.send([object()])
    with pytest.raises(TypeError, match=r"with a tuple key"):
        client.send({(1, 2): "x"})
    with pytest.raises(ValueError, match="NaN key"):
        client.send({math.nan: 1})
    # Nothing was queued by the refused sends, and the connection still works.
    assert client.is_connected


def test_integers_outside_64_bits_are_refused(pair):
    server, client, conn = pair
    with pytest.raises(ValueError, match=r"integer 9223372036854775808: .*64 bits.*at packet\[0\]"):
        client.send([2**63])
    with pytest.raises(ValueError, match="64 bits"):
        client.send({-(2**63) - 1: "key"})


def test_cycles_are_refused_and_shared_values_are_sent_twice(pair, events):
    server, client, conn = pair
    loop = {"name": "loop"}
    loop["self"] = loop
    with pytest.raises(ValueError, match=r"contains itself \(at packet\['self'\]\)"):
        client.send(loop)
    a = [1]
    a.append(a)
    with pytest.raises(ValueError, match=r"contains itself \(at packet\[1\]\)"):
        client.send(a)
    shared = [1, 2]
    assert echo(client, events, {"x": shared, "y": shared}) == {"x": [1, 2], "y": [1, 2]}


def test_depth_and_size_limits(pair, events):
    server, client, conn = pair
    deep = ok = []
    for _ in range(127):
        ok = [ok]
    got = echo(client, events, ok)  # 128 levels: the default limit
    depth = 0
    while isinstance(got, list) and got:
        got, depth = got[0], depth + 1
    assert depth == 127
    for _ in range(128):
        deep = [deep]
    with pytest.raises(ValueError, match=r"nested deeper than 128 levels \(at packet\[0\]"):
        client.send(deep)
    # A table shared at every level stands for 2^40 values: refused, not expanded.
    blow = [1]
    for _ in range(40):
        blow = [blow, blow]
    with pytest.raises(ValueError, match="more than 1000000 values"):
        client.send(blow)
    with pytest.raises(ValueError, match="same table key"):
        client.send({"a": 1, b"a": 2})


def test_message_size_limit_names_the_limit():
    net = tablenet.Network(max_frame_size=1024)
    events = Events(net)
    server, client, conn = connect_pair(net, events)
    with pytest.raises(ValueError, match="1024"):
        client.send({"blob": b"x" * 4096})
    net.shutdown(2.0)


def test_lone_surrogates_are_refused(pair):
    server, client, conn = pair
    with pytest.raises(ValueError, match="surrogate"):
        client.send({"bad": "\ud800"})
