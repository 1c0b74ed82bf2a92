-- Exercises every call of the Lua network module's API (and the binding's
-- extensions) with a server and clients in one script, plain and encrypted.
-- Portable: Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT (subtype checks only where
-- math.type exists; no `//`; -0.0 computed at run time).
--
-- Runs two ways:
--   * embedded: tests/lua.rs installs the global `network` and runs this file;
--   * stock interpreter: LUA_CPATH="dir/?.so;;" lua5.4 tests/lua/api.lua
--     with dir holding the built module as tablenet.so (bindings/lua/ci.sh).
--
-- Loopback only. Every wait has a deadline. Prints one line per check group
-- and ends with "N passed, 0 failed"; any failure raises an error (exit 1).

local network = rawget(_G, "network") or require("tablenet")

-- Lua 5.3+ has integers; 5.1, 5.2 and LuaJIT have only doubles.
local mtype = math.type
local function is_integer(x)
  if mtype then return mtype(x) == "integer" end
  return type(x) == "number" and x == math.floor(x)
end
-- PUC Lua 5.1 folds a literal -0.0 into an earlier 0 constant.
local function negative_zero()
  local z = 0.5 - 0.5
  return -z
end

local passed = 0
local function check(cond, what, ...)
  if not cond then
    error("FAILED: " .. what .. (select("#", ...) > 0 and (": " .. table.concat({ ... }, " ")) or ""), 2)
  end
  passed = passed + 1
end

local function section(name)
  print("-- " .. name)
  io.stdout:flush()
end

local KEY128 = "0C03EA65238DD2C25EB87CE563868098"
local KEY256 = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff"
local OTHER128 = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"

---------------------------------------------------------------------------
-- Event helpers. `pending` holds events polled but not consumed yet.
---------------------------------------------------------------------------
local pending = {}

local function describe(ev)
  return string.format("{Event=%s Object=%s Errors=%q}", tostring(ev.Event), tostring(ev.Object), tostring(ev.Errors))
end

-- Waits for the first event that satisfies pred, taking new events with
-- take() (network.WaitEvents or the seed's PollEvents) until the deadline.
local function expect_with(take, pred, what, seconds)
  local deadline = os.time() + (seconds or 10)
  while true do
    for i, ev in ipairs(pending) do
      if pred(ev) then
        table.remove(pending, i)
        return ev
      end
    end
    if os.time() > deadline then
      local seen = {}
      for _, ev in ipairs(pending) do seen[#seen + 1] = describe(ev) end
      error("timed out waiting for " .. what .. "; pending: " .. table.concat(seen, ", "), 3)
    end
    local events = take()
    if type(events) ~= "table" then error("FAILED: events come as a table, got " .. type(events), 3) end
    for _, ev in ipairs(events) do
      pending[#pending + 1] = ev
    end
  end
end

local function expect(pred, what, seconds)
  return expect_with(function() return network.WaitEvents(0.05) end, pred, what, seconds)
end

-- The same with the seed's network.PollEvents() (a bounded busy loop).
local function expect_polling(pred, what, seconds)
  return expect_with(network.PollEvents, pred, what, seconds)
end

local function is(code, object)
  return function(ev)
    return ev.Event == code and (object == nil or rawequal(ev.Object, object))
  end
end

local function receive_on(object)
  return is(network.EVENT_RECEIVE, object)
end


-- Deep comparison that tells integers from floats and matches NaN.
local function same(a, b, path)
  path = path or "packet"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) == "number" then
    if mtype and mtype(a) ~= mtype(b) then return false, path .. ": " .. mtype(a) .. " vs " .. mtype(b) end
    if a ~= a then return b ~= b, path .. ": NaN" end
    return a == b, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  if type(a) ~= "table" then return a == b, path end
  for k, v in pairs(a) do
    local ok, where = same(v, b[k], path .. "[" .. tostring(k) .. "]")
    if not ok then return false, where end
  end
  for k in pairs(b) do
    if a[k] == nil then return false, path .. ": extra key " .. tostring(k) end
  end
  return true
end

local function fails(what, pattern, f, ...)
  local ok, err = pcall(f, ...)
  check(not ok, what .. " raises an error")
  local text = tostring(err)
  check(text:find(pattern, 1, true) ~= nil, what .. " error mentions '" .. pattern .. "'", text)
  return text
end

---------------------------------------------------------------------------
section("constants")
---------------------------------------------------------------------------
local codes = {}
for i, name in ipairs({ "EVENT_CONNECT", "EVENT_CONNECTED", "EVENT_RECEIVE", "EVENT_SERVER_CLOSE",
  "EVENT_CLIENT_CLOSE", "EVENT_ERROR" }) do
  check(network[name] == i, name .. " is " .. i)
  check(is_integer(network[name]), name .. " is an integer")
  codes[network[name]] = name
end
check(network.EVENT_DRAINED == 7, "EVENT_DRAINED is 7 (extension)")
for _, f in ipairs({ "Server", "Client", "PollEvents", "WaitEvents" }) do
  check(type(network[f]) == "function", "network." .. f .. " is a function")
end
if rawget(_G, "network") == nil then
  check(require("tablenet") == network, "require returns the same table twice")
end

---------------------------------------------------------------------------
section("network.Server / network.Client: bad arguments give nil, result string")
---------------------------------------------------------------------------
local function refused(what, pattern, obj, result)
  check(obj == nil, what .. " gives nil")
  check(type(result) == "string" and result:find(pattern, 1, true), what .. " result mentions '" .. pattern .. "'",
    tostring(result))
end
refused("Server port 80", "1024..=65535", network.Server("127.0.0.1", 80))
refused("Server port 70000", "port", network.Server("127.0.0.1", 70000))
refused("Server port 4096.5", "port", network.Server("127.0.0.1", 4096.5))
refused("Server port {}", "port", network.Server("127.0.0.1", {}))
refused("Server address localhost", "address", network.Server("localhost", 0))
refused("Server address nil", "address", network.Server())
refused("Server address number", "address", network.Server(127, 0))
refused("Server key of 31 digits", "key", network.Server("127.0.0.1", 0, string.rep("A", 31)))
refused("Server key not hex", "key", network.Server("127.0.0.1", 0, string.rep("G", 32)))
refused("Server key table", "invalid argument `key`", network.Server("127.0.0.1", 0, {}))
refused("Client port nil", "1024..=65535, got nil", network.Client("127.0.0.1"))
refused("Client port 0", "1024..=65535", network.Client("127.0.0.1", 0))
refused("Client port 1023", "1024..=65535", network.Client("127.0.0.1", 1023))
refused("Client address", "address", network.Client("not an address", 4096))
refused("Client key", "key", network.Client("127.0.0.1", 4096, "12345"))

---------------------------------------------------------------------------
section("the seed's own example: network.Server(\"127.0.0.1\", 4096, key)")
---------------------------------------------------------------------------
do
  local MyServer, szResult = network.Server("127.0.0.1", 4096, "0C03EA65238DD2C25EB87CE563868098")
  if MyServer then
    check(MyServer:GetPort() == 4096, "seed example listens on 4096")
    check(szResult:find("127.0.0.1:4096", 1, true), "result string names the address", szResult)
  else
    -- Something else on this machine holds 4096: the failure must say so.
    check(szResult:find("in use", 1, true), "port 4096 busy is reported", szResult)
    print("   (port 4096 is busy here: " .. szResult .. ")")
  end
end

---------------------------------------------------------------------------
section("plain server and clients (PollEvents)")
---------------------------------------------------------------------------
local server, result = network.Server("127.0.0.1") -- port nil: the OS chooses
check(server ~= nil, "plain server starts", tostring(result))
check(type(result) == "string" and result:find("listening on 127.0.0.1:", 1, true), "Server result string", result)
local port = server:GetPort()
check(is_integer(port) and port >= 1024, "server:GetPort() is the real port", tostring(port))
check(server:GetAddress() == "127.0.0.1", "server:GetAddress()")
check(is_integer(server:GetSocket()), "server:GetSocket() is an integer")
check(server:ConnectionCount() == 0, "no connections yet")
check(tostring(server):find("tablenet server", 1, true), "tostring(server)")
local server0 = network.Server("127.0.0.1", 0)
check(server0 and server0:GetPort() ~= port, "port 0 also lets the OS choose")
local server_s = network.Server("127.0.0.1", "0")
check(server_s ~= nil, "a numeric string port works as in Lua arithmetic")
server0, server_s = nil, nil

local start = os.time()
local client, cresult = network.Client("127.0.0.1", port)
check(client ~= nil, "client created", tostring(cresult))
check(type(cresult) == "string", "Client result string")
check(client:GetAddress() == "127.0.0.1", "client:GetAddress()")
check(client:GetSocket() ~= server:GetSocket(), "socket ids differ")
local ok, waited = client:WaitForConnect() -- default 2 s
check(ok == true, "WaitForConnect() succeeds", tostring(waited))
check(type(waited) == "number" and waited >= 0 and waited < 2, "WaitForConnect returns the time taken", tostring(waited))
check(client:GetPort() == port, "client:GetPort() is the server's port once connected")

local connected = expect_polling(is(network.EVENT_CONNECTED, client), "EVENT_CONNECTED")
check(connected.Result == true, "EVENT_CONNECTED .Result is true")
check(connected.Errors == "", "EVENT_CONNECTED .Errors is empty on success")
check(not mtype or mtype(connected.Timestamp) == "float", ".Timestamp is a float")
check(math.abs(connected.Timestamp - os.time()) < 5 and connected.Timestamp >= start - 1,
  ".Timestamp is seconds since the epoch", tostring(connected.Timestamp))

local ev = expect_polling(is(network.EVENT_CONNECT), "EVENT_CONNECT")
local conn = ev.Object
check(type(conn) == "userdata", "EVENT_CONNECT .Object is a ClientConnection")
check(rawequal(ev.Server, server), ".Server names the accepting server (extension)")
check(ev.Socket == conn:GetSocket(), ".Socket is the object's socket id (extension)")
check(conn:GetAddress() == "127.0.0.1", "conn:GetAddress()")
check(is_integer(conn:GetPort()) and conn:GetPort() > 0, "conn:GetPort()")
check(conn:GetSocket() ~= client:GetSocket() and conn:GetSocket() ~= server:GetSocket(), "conn:GetSocket() unique")
check(server:ConnectionCount() == 1, "server:ConnectionCount() is 1")
check(tostring(conn):find("ClientConnection", 1, true), "tostring(conn)")

local clients = {} -- the seed's advice: keep a reference to each connection
clients[conn] = "first"

---------------------------------------------------------------------------
section("tables round-trip: integers, floats, bytes, holes, mixed keys")
---------------------------------------------------------------------------
local shared = { "shared", n = 1 }
local packet = {
  -- Without integers: 2^53 is the largest exact whole number, -2^63 is exact.
  "Hello Client", 42, 4.0, -7, 0.5, math.maxinteger or 2 ^ 53, math.mininteger or -2 ^ 63, 1 / 0, -1 / 0,
  negative_zero(),
  [12] = "after a hole",
  OpCode = 10,
  Data = "From server",
  bytes = "\0\1\2\255 binary \0 end",
  utf8 = "h\195\169llo \226\156\147",
  nested = { a = { b = { c = { "deep", { 1, 2, 3 } } } } },
  flags = { [true] = "yes", [false] = "no" },
  [1.5] = "float key",
  [-3] = "negative key",
  [0] = "zero key",
  [2 ^ 63] = "huge float key",
  empty = {},
  holes = { 1, nil, 3, nil, 5 },
  nan = 0 / 0,
  big = 2 ^ 53,
  shared1 = shared,
  shared2 = shared,
}
check(client:Send(packet) == true, "client:Send(table) returns true")
ev = expect(receive_on(conn), "the packet on the server")
check(rawequal(ev.Object, conn), "EVENT_RECEIVE .Object is the same ClientConnection userdata")
check(clients[ev.Object] == "first", "ev.Object works as a table key")
local got = ev.Packet
local same_ok, where = same(packet, got)
check(same_ok, "the packet arrives unchanged", tostring(where))
check(not mtype or (mtype(got[3]) == "float" and mtype(got[2]) == "integer"), "4.0 stays a float, 42 an integer")
check(got[6] == packet[6] and got[7] == packet[7], "the largest and smallest integers arrive exactly")
check(not mtype or (mtype(got[6]) == "integer" and mtype(got[7]) == "integer"), "math.maxinteger stays an integer")
check(1 / got[10] < 0, "-0.0 keeps its sign")
check(got.holes[2] == nil and got.holes[3] == 3 and got.holes[5] == 5, "holes survive")
check(got[11] == nil and got[12] == "after a hole", "a hole in the array part survives")
check(#got.bytes == #packet.bytes and got.bytes == packet.bytes, "binary strings are bytes")
check(not rawequal(got.shared1, got.shared2) and got.shared1[1] == "shared", "a table shared twice is sent twice")
check(got.nan ~= got.nan, "NaN stays NaN")
check(ev.Errors == "", "EVENT_RECEIVE .Errors is empty")

-- Large values.
local big = {}
for i = 1, 100000 do big[i] = i end
big.blob = string.rep("\0\255", 512 * 1024) -- 1 MiB
check(client:Send(big) == true, "a 100,000-element table with a 1 MiB string is sent")
ev = expect(receive_on(conn), "the big table")
check(#ev.Packet == 100000 and ev.Packet[100000] == 100000 and ev.Packet.blob == big.blob, "the big table arrives")
big = nil

-- Non-table values are sendable too (the Rust API sends any Value).
check(client:Send("just a string") == true, "a string can be sent")
ev = expect(receive_on(conn), "a string packet")
check(ev.Packet == "just a string", "a string packet arrives as a string")

---------------------------------------------------------------------------
section("server:Send / Broadcast / Disconnect with two clients")
---------------------------------------------------------------------------
local client2 = network.Client("127.0.0.1", port)
check(client2:WaitForConnect(5), "second client connects")
ev = expect(is(network.EVENT_CONNECT), "second EVENT_CONNECT")
local conn2 = ev.Object
clients[conn2] = "second"
check(server:ConnectionCount() == 2, "server:ConnectionCount() is 2")

local n = server:Send({ "Hello Client" }, conn)
check(n == 1 and is_integer(n), "server:Send to one connection returns 1", tostring(n))
ev = expect(receive_on(client), "Hello on client 1")
check(ev.Packet[1] == "Hello Client", "client 1 receives the seed's message")
check(rawequal(ev.Object, client), "client-side EVENT_RECEIVE .Object is the client")

n = server:Send({ "Hello Client" }, conn, conn2) -- the seed's two-connection example
check(n == 2, "server:Send to two connections returns 2", tostring(n))
expect(receive_on(client), "Hello again on client 1")
expect(receive_on(client2), "Hello on client 2")

n = server:Broadcast({ OpCode = 10, Data = "From server" })
check(n == 2, "server:Broadcast returns 2", tostring(n))
ev = expect(receive_on(client), "broadcast on client 1")
check(ev.Packet.OpCode == 10 and ev.Packet.Data == "From server", "client 1 gets the broadcast")
ev = expect(receive_on(client2), "broadcast on client 2")
check(ev.Packet.OpCode == 10, "client 2 gets the broadcast")

check(client2:Send({ reply = "from 2" }), "client 2 sends")
ev = expect(receive_on(conn2), "client 2's message")
check(rawequal(ev.Object, conn2) and clients[ev.Object] == "second", "the message names connection 2")

-- Argument errors on the objects are Lua errors.
fails("server:Send to a string", "ClientConnection expected, got string", server.Send, server, {}, "x")
fails("server:Send to a client object", "ClientConnection expected, got client", server.Send, server, {}, client)
fails("server:Send with nil", "ClientConnection expected, got nil", server.Send, server, {}, nil)
fails("server:Disconnect of a number", "ClientConnection expected, got number", server.Disconnect, server, 5)
fails("server:Send() with no message", "table expected, got nil", server.Send, server)
fails("client:Send() with no message", "table expected, got nil", client.Send, client)
fails("a method called with a dot", "self", server.GetPort)
check(server:Send({}) == 0, "server:Send with no connections returns 0")

n = server:Disconnect(conn2)
check(n == 1, "server:Disconnect(conn) returns 1", tostring(n))
ev = expect(is(network.EVENT_SERVER_CLOSE, client2), "EVENT_SERVER_CLOSE on client 2")
check(type(ev.Errors) == "string" and ev.Errors ~= "", "EVENT_SERVER_CLOSE .Errors says why", ev.Errors)
ev = expect(is(network.EVENT_CLIENT_CLOSE, conn2), "EVENT_CLIENT_CLOSE for connection 2")
check(ev.Errors == "closed locally", "the server closed it", ev.Errors)
check(rawequal(ev.Server, server), "EVENT_CLIENT_CLOSE .Server (extension)")
check(server:ConnectionCount() == 1, "server:ConnectionCount() is back to 1")
check(server:Disconnect(conn2) == 0, "disconnecting a closed connection counts 0")
check(server:Send({}, conn2) == 0, "sending to a closed connection counts 0")
local sent, why = client2:Send({})
check(sent == false and why:find("closed", 1, true), "client:Send after the server closed returns false, reason", tostring(why))

---------------------------------------------------------------------------
section("unsendable values are clear errors, never a hang")
---------------------------------------------------------------------------
fails("sending a function", "cannot send a function", client.Send, client, print)
fails("a function in a table", "cannot send a function (at packet.f)", client.Send, client, { f = print })
fails("a coroutine", "cannot send a coroutine (thread) (at packet[2][2])", client.Send, client,
  { 1, { 2, coroutine.create(function() end) } })
fails("a userdata (a client object)", "cannot send a userdata (at packet[1])", client.Send, client, { client })
fails("a userdata (io.stdout)", "cannot send a userdata (at packet.out)", client.Send, client, { out = io.stdout })
fails("a table as a key", "with a table as a key", client.Send, client, { [{}] = 1 })
fails("a function as a key", "with a function as a key (at packet.inner)", client.Send, client, { inner = { [print] = 1 } })
local cyc = { name = "loop" }
cyc.me = cyc
fails("a table that contains itself", "contains itself (at packet.me)", client.Send, client, cyc)
local a, b = {}, {}
a.b, b.a = b, a
fails("a two-table cycle", "contains itself (at packet.b.a)", client.Send, client, a)
local deep = {}
local cur = deep
for _ = 1, 200 do
  cur.next = {}
  cur = cur.next
end
fails("tables nested 200 deep", "nested deeper than 128", client.Send, client, deep)
local t = {}
for _ = 1, 64 do t = { t, t } end -- 2^64 values if expanded
local t0 = os.clock()
fails("{t, t} nested 64 times", "more than 1000000 values", client.Send, client, t)
check(os.clock() - t0 < 10, "the bound is hit quickly", tostring(os.clock() - t0))
t = nil
fails("server:Send of a function", "cannot send a function", server.Send, server, { print }, conn)
fails("server:Broadcast of a cycle", "contains itself", server.Broadcast, server, cyc)
-- A table exactly 128 deep is fine; the connection still works after errors.
local ok128 = {}
cur = ok128
for _ = 2, 128 do
  cur[1] = {}
  cur = cur[1]
end
check(client:Send(ok128) == true, "tables nested 128 deep are sent")
ev = expect(receive_on(conn), "the 128-deep table")
local depth, node = 1, ev.Packet
while node[1] do depth, node = depth + 1, node[1] end
check(depth == 128, "the 128-deep table arrives whole", tostring(depth))

---------------------------------------------------------------------------
section("numbers on every Lua: BigIntegers, LuaJIT's 64-bit cdata")
---------------------------------------------------------------------------
fails("New{BigIntegers = 'round'}", "option `BigIntegers`: \"error\", \"float\" or \"string\"", network.New,
  { BigIntegers = "round" })
fails("New{BigIntegers = 1}", "option `BigIntegers`", network.New, { BigIntegers = 1 })
-- Whole-number doubles travel as integers, on every version.
check(client:Send({ w = 2 ^ 53, f = 2 ^ 63 }), "2^53 and 2^63 as doubles are sent")
ev = expect(receive_on(conn), "2^53 and 2^63")
check(ev.Packet.w == 2 ^ 53 and ev.Packet.f == 2 ^ 63, "2^53 and 2^63 arrive exactly")
check(not mtype or (mtype(ev.Packet.w) == "float" and mtype(ev.Packet.f) == "float"), "doubles stay doubles on 5.3+")
-- LuaJIT's int64_t/uint64_t cdata (`1LL`): literals PUC Lua cannot parse.
local cdata = rawget(_G, "jit") and (loadstring or load)([[
  local ffi = require("ffi")
  return { five = 5LL, neg = -5LL, boxed = ffi.new("int64_t", 7), max = 0x7fffffffffffffffLL,
    odd = 9007199254740993LL, umax = 18446744073709551615ULL, small = 5ULL, int = ffi.new("int32_t", 3) }]])
if cdata then
  local c = cdata()
  check(client:Send({ c.five, c.neg, c.boxed, c.small, [c.five] = "key" }), "int64_t and uint64_t cdata are sent")
  ev = expect(receive_on(conn), "the cdata integers")
  local p = ev.Packet
  check(p[1] == 5 and p[2] == -5 and p[3] == 7 and p[4] == 5 and p[5] == "key", "cdata integers arrive as integers")
  fails("a uint64_t above the largest integer", "cannot send 18446744073709551615ULL (at packet.u)", client.Send,
    client, { u = c.umax })
  fails("an int32_t cdata", "cannot send a cdata (at packet.i)", client.Send, client, { i = c.int })
  fails("5LL and 5 as keys", "keys ", client.Send, client, { [c.five] = 1, [5] = 2 })
  local text = fails("5LL and 5 as keys (names)", "5LL", client.Send, client, { [c.five] = 1, [5] = 2 })
  check(text:find("are the same key", 1, true), "the collision names both keys", text)
  local _, why = network.Server("127.0.0.1", 0, c.five)
  check(why:find("got cdata", 1, true), "argument errors say cdata", tostring(why))
  -- An integer a double cannot hold: EVENT_ERROR by default, not rounded.
  check(client:Send({ id = c.odd }), "2^53 + 1 as int64_t is sent")
  ev = expect(is(network.EVENT_ERROR, conn), "EVENT_ERROR for 2^53 + 1")
  check(ev.Errors:find("9007199254740993 (at packet.id)", 1, true), "the error names the integer and its path",
    ev.Errors)
  check(ev.Packet == nil, "no packet with the error")
  for _, policy in ipairs({ "float", "string" }) do
    local pnet = network.New({ BigIntegers = policy })
    local ps = assert(pnet.Server("127.0.0.1", 0))
    local pc = assert(pnet.Client("127.0.0.1", ps:GetPort()))
    check(pc:WaitForConnect(5), policy .. ": client connects")
    local got_packets, errors = {}, {}
    check(pc:Send({ id = c.odd, max = c.max }), policy .. ": sent")
    check(pc:Send({ [c.odd] = "odd", [2 ^ 53] = "even" }), policy .. ": keys sent")
    local deadline = os.time() + 10
    while #got_packets + #errors < 2 do
      check(os.time() <= deadline, policy .. ": both messages in time")
      for _, e in ipairs(pnet.WaitEvents(0.05)) do
        if e.Event == pnet.EVENT_RECEIVE then got_packets[#got_packets + 1] = e.Packet end
        if e.Event == pnet.EVENT_ERROR then errors[#errors + 1] = e.Errors end
      end
    end
    local p1 = got_packets[1]
    if policy == "float" then
      check(p1 and p1.id == 2 ^ 53 and p1.max == 2 ^ 63, "float: rounded to the nearest double")
      local e = errors[1] or ""
      check(#errors == 1 and (e:find("keys 9007199254740993 and 9007199254740992", 1, true)
        or e:find("keys 9007199254740992 and 9007199254740993", 1, true)), "float: merged keys are an error", e)
    else
      check(p1 and p1.id == "9007199254740993" and p1.max == "9223372036854775807", "string: the digits")
      local p2 = got_packets[2]
      check(p2 and p2["9007199254740993"] == "odd" and p2[2 ^ 53] == "even", "string: both keys arrive")
    end
  end
end

---------------------------------------------------------------------------
section("WaitForConnect arguments and failures")
---------------------------------------------------------------------------
fails("WaitForConnect(0.1)", "0.25 to 10 seconds", client.WaitForConnect, client, 0.1)
fails("WaitForConnect(11)", "0.25 to 10 seconds", client.WaitForConnect, client, 11)
fails("WaitForConnect('x')", "number of seconds expected", client.WaitForConnect, client, "x")
ok, waited = client:WaitForConnect(0.25)
check(ok == true and type(waited) == "number", "WaitForConnect(0.25) on a connected client")
ok, waited = client:WaitForConnect(10)
check(ok == true, "WaitForConnect(10)")

---------------------------------------------------------------------------
section("client:Disconnect")
---------------------------------------------------------------------------
check(client:Disconnect() == nil, "client:Disconnect() returns nothing")
ev = expect(is(network.EVENT_SERVER_CLOSE, client), "EVENT_SERVER_CLOSE after client:Disconnect")
check(ev.Errors == "closed locally", "closed locally", ev.Errors)
ev = expect(is(network.EVENT_CLIENT_CLOSE, conn), "EVENT_CLIENT_CLOSE on the server")
check(ev.Errors == "closed by peer", "the server sees the peer close", ev.Errors)
sent, why = client:Send({})
check(sent == false and why == "connection closed", "client:Send after Disconnect: false, 'connection closed'", tostring(why))
ok, waited, why = client:WaitForConnect(0.25)
check(ok == false and type(waited) == "number" and type(why) == "string", "WaitForConnect after close: false, time, why",
  tostring(why))
check(server:ConnectionCount() == 0, "no connections left")
clients = {}

---------------------------------------------------------------------------
section("an unreferenced ClientConnection closes when Lua collects it")
---------------------------------------------------------------------------
-- GC-sensitive steps run in functions: once a function returns, its locals
-- and temporaries are above the stack top, where the collector does not look.
local function connect_and_forget()
  local c = network.Client("127.0.0.1", port)
  check(c:WaitForConnect(5), "client 3 connects")
  local deadline, socket = os.time() + 10, nil
  while not socket do
    check(os.time() <= deadline, "EVENT_CONNECT for client 3 in time")
    for _, e in ipairs(network.WaitEvents(0.05)) do
      if e.Event == network.EVENT_CONNECT then socket = e.Socket end
      -- Not kept: the events array and its userdata become garbage.
    end
  end
  return c, socket
end
pending = {}
local client3, conn3_socket = connect_and_forget()
check(server:ConnectionCount() == 1, "client 3 is connected")
collectgarbage("collect")
collectgarbage("collect")
ev = expect(is(network.EVENT_SERVER_CLOSE, client3), "client 3 sees the server close after the GC")
ev = expect(function(e) return e.Event == network.EVENT_CLIENT_CLOSE and e.Socket == conn3_socket end,
  "EVENT_CLIENT_CLOSE for the collected connection")
check(ev.Object == nil, "the collected connection's later events have a nil .Object")
check(ev.Errors == "closed locally", "it was closed here", ev.Errors)
check(server:ConnectionCount() == 0, "the collected connection is gone")

-- A kept connection survives the same collection.
local function connect_and_keep()
  local c = network.Client("127.0.0.1", port)
  check(c:WaitForConnect(5), "client 4 connects")
  return c, expect(is(network.EVENT_CONNECT), "EVENT_CONNECT for client 4").Object
end
local client4, conn4 = connect_and_keep()
collectgarbage("collect")
collectgarbage("collect")
check(server:Send({ "still here" }, conn4) == 1, "a kept connection stays open after a GC")
local function receive4()
  local e = expect(receive_on(client4), "client 4 receives")
  check(e.Packet[1] == "still here", "client 4 got the message")
end
receive4()
-- A client the script drops closes too.
pending, ev, client4 = {}, nil, nil
collectgarbage("collect")
collectgarbage("collect")
ev = expect(is(network.EVENT_CLIENT_CLOSE, conn4), "a collected client closes its connection")
check(ev.Errors == "closed by peer", "the server sees the collected client leave", ev.Errors)
conn4 = nil

---------------------------------------------------------------------------
section("encrypted: 128-bit and 256-bit keys")
---------------------------------------------------------------------------
for _, key in ipairs({ KEY128, KEY256 }) do
  local bits = #key * 4
  local es, eresult = network.Server("127.0.0.1", nil, key)
  check(es ~= nil, bits .. "-bit server starts", tostring(eresult))
  local ec = network.Client("127.0.0.1", es:GetPort(), key)
  local eok, ewaited = ec:WaitForConnect(5)
  check(eok == true, bits .. "-bit client connects", tostring(ewaited))
  check(ec:GetPort() == es:GetPort(), bits .. "-bit client:GetPort()")
  local econn = expect(is(network.EVENT_CONNECT), bits .. "-bit EVENT_CONNECT").Object
  check(ec:Send({ secret = "over an encrypted link", bits = bits, blob = "\0\255" }), bits .. "-bit client:Send")
  ev = expect(receive_on(econn), bits .. "-bit packet on the server")
  check(ev.Packet.secret == "over an encrypted link" and ev.Packet.bits == bits and ev.Packet.blob == "\0\255",
    bits .. "-bit packet arrives")
  check(es:Send({ reply = bits }, econn) == 1, bits .. "-bit server:Send")
  ev = expect(receive_on(ec), bits .. "-bit reply on the client")
  check(ev.Packet.reply == bits, bits .. "-bit reply arrives")
  local ec2 = network.Client("127.0.0.1", es:GetPort(), key)
  check(ec2:WaitForConnect(5), bits .. "-bit second client connects")
  local econn2 = expect(is(network.EVENT_CONNECT), bits .. "-bit second EVENT_CONNECT").Object
  check(es:ConnectionCount() == 2, bits .. "-bit ConnectionCount")
  check(es:Broadcast({ all = true }) == 2, bits .. "-bit Broadcast")
  expect(receive_on(ec), bits .. "-bit broadcast")
  expect(receive_on(ec2), bits .. "-bit broadcast to the second client")
  check(es:Send({ both = true }, econn, econn2) == 2, bits .. "-bit Send to two connections")
  expect(receive_on(ec), bits .. "-bit send to both (1)")
  expect(receive_on(ec2), bits .. "-bit send to both (2)")
  check(es:Disconnect(econn, econn2) == 2, bits .. "-bit Disconnect of two connections returns 2")
  expect(is(network.EVENT_SERVER_CLOSE, ec), bits .. "-bit EVENT_SERVER_CLOSE")
  expect(is(network.EVENT_SERVER_CLOSE, ec2), bits .. "-bit EVENT_SERVER_CLOSE (2)")
  expect(is(network.EVENT_CLIENT_CLOSE, econn), bits .. "-bit EVENT_CLIENT_CLOSE")
  expect(is(network.EVENT_CLIENT_CLOSE, econn2), bits .. "-bit EVENT_CLIENT_CLOSE (2)")
  check(es:ConnectionCount() == 0, bits .. "-bit server has no connections left")
end

-- Wrong key, and a plain client meeting an encrypted server.
local es = network.Server("127.0.0.1", 0, KEY128)
local wrong = network.Client("127.0.0.1", es:GetPort(), OTHER128)
ok, waited, why = wrong:WaitForConnect(5)
check(ok == false, "a client with the wrong key does not connect")
check(type(waited) == "number" and type(why) == "string" and why ~= "", "WaitForConnect says why", tostring(why))
check(wrong:GetPort() == nil, "client:GetPort() is nil when not connected")
ev = expect(is(network.EVENT_CONNECTED, wrong), "EVENT_CONNECTED for the wrong key")
check(ev.Result == false and ev.Errors ~= "", "EVENT_CONNECTED .Result false with .Errors", ev.Errors)
ev = expect(is(network.EVENT_ERROR, wrong), "EVENT_ERROR for the wrong key")
check(ev.Errors ~= "", "EVENT_ERROR .Errors says what went wrong", ev.Errors)
local plain = network.Client("127.0.0.1", es:GetPort())
ok, waited, why = plain:WaitForConnect(5)
check(ok == false and why:find("key", 1, true), "a plain client is told the server requires a key", tostring(why))
ev = expect(is(network.EVENT_CONNECTED, plain), "EVENT_CONNECTED for the plain client")
check(ev.Result == false and ev.Errors:find("key", 1, true), "... with the reason", ev.Errors)
check(es:ConnectionCount() == 0, "the encrypted server has no connection")
-- The server reports the failed handshakes too (EVENT_ERROR, .Object nil:
-- the connection never became a ClientConnection).
ev = expect(function(e) return e.Event == network.EVENT_ERROR and e.Object == nil and e.Socket ~= nil end,
  "EVENT_ERROR on the server side of a failed handshake")
check(ev.Errors ~= "", "server-side EVENT_ERROR .Errors", ev.Errors)
wrong, plain, es = nil, nil, nil

---------------------------------------------------------------------------
section("connect failures: nobody listening")
---------------------------------------------------------------------------
do
  local function closed_port()
    local gone = network.Server("127.0.0.1")
    return gone:GetPort()
  end
  local gone_port = closed_port()
  collectgarbage("collect") -- the server closes when collected
  collectgarbage("collect")
  -- The listener closes on the IO thread: until it has, a connection may
  -- still be accepted (and then closed). Try a few times.
  local lost
  for attempt = 1, 20 do
    lost = network.Client("127.0.0.1", gone_port)
    ok, waited, why = lost:WaitForConnect(2)
    if not ok then break end
    check(attempt < 20, "the collected server stops listening")
    pending = {}
  end
  check(ok == false and type(why) == "string", "connecting to a closed port fails", tostring(why))
  ev = expect(is(network.EVENT_CONNECTED, lost), "EVENT_CONNECTED for the refused client")
  check(ev.Result == false, "refused: .Result false", ev.Errors)
  check(lost:GetPort() == nil, "refused client:GetPort() is nil")
end

---------------------------------------------------------------------------
section("IPv6 loopback")
---------------------------------------------------------------------------
do
  local s6, r6 = network.Server("::1", 0)
  if s6 then
    check(s6:GetAddress() == "::1", "IPv6 server:GetAddress()")
    local c6 = network.Client("::1", s6:GetPort())
    check(c6:WaitForConnect(5), "IPv6 client connects")
    local conn6 = expect(is(network.EVENT_CONNECT), "IPv6 EVENT_CONNECT").Object
    check(conn6:GetAddress() == "::1", "IPv6 conn:GetAddress()")
    check(c6:Send({ v = 6 }), "IPv6 send")
    check(expect(receive_on(conn6), "IPv6 packet").Packet.v == 6, "IPv6 packet arrives")
  else
    print("   (no IPv6 loopback here: " .. tostring(r6) .. ")")
  end
end

---------------------------------------------------------------------------
section("a full event queue: EVENT_ERROR with a nil .Object counts the lost events")
---------------------------------------------------------------------------
do
  pending = {}
  local qs = network.Server("127.0.0.1")
  local qc = network.Client("127.0.0.1", qs:GetPort())
  check(qc:WaitForConnect(5), "queue test client connects")
  local qconn
  local deadline = os.time() + 10
  while not qconn do
    check(os.time() <= deadline, "queue test connect in time")
    for _, e in ipairs(network.WaitEvents(0.05)) do
      if e.Event == network.EVENT_CONNECT then qconn = e.Object end
    end
  end
  local N = 2500 -- the seed's queue holds 2000 events
  for i = 1, N do check(qc:Send({ i = i }), "queued send " .. i) end
  -- Wait, without taking events, until all of them (and the Connected and
  -- Connect before) have arrived: the queue overwrote the oldest.
  deadline = os.time() + 10
  while network.PendingEvents() < N do
    if os.time() > deadline then
      check(false, "all queue test events arrive in time", tostring(network.PendingEvents()))
    end
  end
  check(network.PendingEvents() >= N, "PendingEvents counts overwritten events too")
  local lost, received, last = 0, 0, 0
  deadline = os.time() + 10
  while last < N do
    check(os.time() <= deadline, "all queue test events in time", "last " .. last)
    for _, e in ipairs(network.PollEvents()) do
      if e.Event == network.EVENT_ERROR and e.Object == nil and e.Socket == nil then
        local count = tonumber(e.Errors:match("^(%d+) events were lost"))
        check(count and count > 0, "the overflow event says how many were lost", e.Errors)
        lost = lost + count
      elseif e.Event == network.EVENT_RECEIVE and rawequal(e.Object, qconn) then
        received = received + 1
        last = e.Packet.i
      end
    end
  end
  check(lost > 0, "events were lost and reported", tostring(lost))
  check(received + lost >= N and received <= 2000, "received + lost covers every message",
    received .. " + " .. lost)
  print(string.format("   (%d received, %d reported lost)", received, lost))
end

---------------------------------------------------------------------------
section("network.New (extension): another network with its own options")
---------------------------------------------------------------------------
fails("New{Bogus = 1}", "unknown option `Bogus`", network.New, { Bogus = 1 })
fails("New{EventCapacity = 'x'}", "option `EventCapacity`: a non-negative integer expected, got string",
  network.New, { EventCapacity = "x" })
fails("New{Heartbeat = true}", "a number of seconds, or false for off", network.New, { Heartbeat = true })
fails("New{EventCapacity = 0}", "event_capacity", network.New, { EventCapacity = 0 })
fails("New(5)", "table of options expected, got number", network.New, 5)
do
  local CAPACITY, N = 100, 500
  local lnet = network.New({ Lossless = true, InlineIo = true, EventCapacity = CAPACITY, Heartbeat = false })
  check(lnet ~= network and type(lnet.Server) == "function", "New returns another network table")
  check(lnet.EVENT_RECEIVE == network.EVENT_RECEIVE, "with the same constants")
  local ls = assert(lnet.Server("127.0.0.1", 0))
  local lc = assert(lnet.Client("127.0.0.1", ls:GetPort()))
  check(lc:WaitForConnect(5), "its client connects (InlineIo: WaitForConnect drives the sockets)")
  local conn
  local deadline = os.time() + 10
  while not conn do
    check(os.time() <= deadline, "Connect on the new network in time")
    for _, e in ipairs(lnet.WaitEvents(0.05)) do
      if e.Event == lnet.EVENT_CONNECT then conn = e.Object end
    end
  end
  for i = 1, N do check(lc:Send({ i = i }), "lossless send " .. i) end
  local got, biggest, errors = 0, 0, 0
  deadline = os.time() + 10
  while got < N do
    check(os.time() <= deadline, "every lossless message in time", "got " .. got)
    local evs = lnet.WaitEvents(0.05)
    biggest = math.max(biggest, #evs)
    for _, e in ipairs(evs) do
      if e.Event == lnet.EVENT_RECEIVE and rawequal(e.Object, conn) then
        got = got + 1
        check(e.Packet.i == got, "lossless messages arrive in order", tostring(e.Packet.i), tostring(got))
      elseif e.Event == lnet.EVENT_ERROR then
        errors = errors + 1
      end
    end
  end
  check(errors == 0, "nothing lost or failed under Lossless", tostring(errors))
  check(biggest <= CAPACITY, "a poll returns at most EventCapacity events", tostring(biggest))
  print(string.format("   (%d messages through a %d-event ring, at most %d per poll)", N, CAPACITY, biggest))
end

fails("New{IoThreads = 0}", "io_threads", network.New, { IoThreads = 0 })
do
  -- Two IO threads: the server's connections are spread over them once
  -- their handshake ends; each one's messages still arrive in order.
  local N = 200
  local tnet = network.New({ IoThreads = 2 })
  local ts = assert(tnet.Server("127.0.0.1", 0))
  local clients = {}
  for k = 1, 4 do
    clients[k] = assert(tnet.Client("127.0.0.1", ts:GetPort()))
    for i = 1, N do check(clients[k]:Send({ i = i }), "send before connecting " .. i) end
  end
  local next_of, conns, done = {}, {}, 0
  local deadline = os.time() + 10
  while done < #clients do
    check(os.time() <= deadline, "every message over two IO threads in time", tostring(done))
    for _, e in ipairs(tnet.WaitEvents(0.05)) do
      if e.Event == tnet.EVENT_CONNECT then
        conns[#conns + 1] = e.Object
      elseif e.Event == tnet.EVENT_RECEIVE and e.Packet.i then
        local expected = (next_of[e.Object] or 0) + 1
        check(e.Packet.i == expected, "in order per connection", tostring(e.Packet.i), tostring(expected))
        next_of[e.Object] = expected
        if expected == N then done = done + 1 end
      end
    end
  end
  check(#conns == #clients, "every connection reported once", tostring(#conns))
  print(string.format("   (%d connections x %d messages over IoThreads = 2)", #clients, N))
end

do
  -- A client with the wrong key fails before authenticating: with
  -- FailureReportsPerSecond = 0 the server sums such failures up, once a
  -- second, as one EVENT_ERROR naming the last peer's address.
  local snet = network.New({ FailureReportsPerSecond = 0, MaxConnectionsPerAddress = 10, HandshakeBudget = 0.25 })
  local ss = assert(snet.Server("127.0.0.1", 0, string.rep("ab", 32)))
  local sc = assert(snet.Client("127.0.0.1", ss:GetPort(), string.rep("cd", 32)))
  local summary
  local deadline = os.time() + 10
  while not summary do
    check(os.time() <= deadline, "a summary of failed attempts in time")
    for _, e in ipairs(snet.WaitEvents(0.1)) do
      if e.Event == snet.EVENT_ERROR and e.Errors:find("failed before authenticating", 1, true) then
        summary = e
      end
    end
  end
  check(rawequal(summary.Object, ss), "the summary is about the server")
  check(summary.Errors:find("^1 more connections failed") ~= nil, "it counts the failure", summary.Errors)
  check(summary.Errors:find("127.0.0.1:", 1, true) ~= nil, "it names the last address", summary.Errors)
  print("   (" .. summary.Errors .. ")")
  check(sc ~= nil, "the failed client is still a handle")
end

---------------------------------------------------------------------------
section("network.WaitEvents (extension)")
---------------------------------------------------------------------------
fails("WaitEvents(-1)", "timeout must be 0 to 86400 seconds", network.WaitEvents, -1)
fails("WaitEvents('soon')", "number of seconds expected", network.WaitEvents, "soon")
local before = os.clock()
local evs = network.WaitEvents(0)
check(type(evs) == "table", "WaitEvents(0) returns at once with a table")
check(type(network.PollEvents()) == "table", "PollEvents with nothing queued returns an empty table")

print(string.format("%d passed, 0 failed", passed))
