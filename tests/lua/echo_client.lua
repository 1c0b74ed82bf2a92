-- Talks to examples/lua/echo_server.lua: echo, broadcast, join and leave.
-- usage: echo_client.lua PORT [KEY]   (bindings/lua/ci.sh runs it)

local network = rawget(_G, "network") or require("tablenet")
local port, key = assert(tonumber(arg[1]), "usage: echo_client.lua PORT [KEY]"), arg[2]

local passed = 0
local function check(cond, what, detail)
  if not cond then error("FAILED: " .. what .. (detail and (": " .. tostring(detail)) or ""), 2) end
  passed = passed + 1
end

local pending = {}
local function expect(pred, what)
  local deadline = os.time() + 10
  while true do
    for i, ev in ipairs(pending) do
      if pred(ev) then
        table.remove(pending, i)
        return ev
      end
    end
    check(os.time() <= deadline, "in time: " .. what)
    for _, ev in ipairs(network.WaitEvents(0.05)) do pending[#pending + 1] = ev end
  end
end

local function packet_on(client, pred)
  return function(ev)
    return ev.Event == network.EVENT_RECEIVE and rawequal(ev.Object, client) and pred(ev.Packet)
  end
end

local a = assert(network.Client("127.0.0.1", port, key))
check(a:WaitForConnect(5), "client a connects")
expect(packet_on(a, function(p) return p.Event == "joined" and p.Count == 1 end), "a's own join notice")

local b = assert(network.Client("127.0.0.1", port, key))
check(b:WaitForConnect(5), "client b connects")
local joined = expect(packet_on(a, function(p) return p.Event == "joined" and p.Count == 2 end), "a hears b join")
expect(packet_on(b, function(p) return p.Event == "joined" and p.Count == 2 end), "b's own join notice")

local sent = { text = "echo me", n = 1, f = 1.5, bytes = "\0\255", list = { 1, nil, 3 } }
check(a:Send(sent), "a sends")
local echo = expect(packet_on(a, function(p) return p.text == "echo me" end), "the echo").Packet
check(echo.n == 1 and (not math.type or math.type(echo.n) == "integer") and echo.f == 1.5 and echo.bytes == "\0\255", "the echo is unchanged")
check(echo.list[1] == 1 and echo.list[2] == nil and echo.list[3] == 3, "holes survive the echo")

check(b:Send({ Broadcast = true, text = "to all" }), "b sends a broadcast")
expect(packet_on(a, function(p) return p.text == "to all" end), "a gets b's broadcast")
expect(packet_on(b, function(p) return p.text == "to all" end), "b gets its own broadcast")
for _, ev in ipairs(pending) do
  check(not (rawequal(ev.Object, b) and ev.Event == network.EVENT_RECEIVE and ev.Packet.text == "echo me"),
    "b never sees a's echo")
end

local b_socket = joined.Packet.Socket
b:Disconnect()
expect(function(ev) return ev.Event == network.EVENT_SERVER_CLOSE and rawequal(ev.Object, b) end, "b leaves")
expect(packet_on(a, function(p) return p.Event == "left" and p.Socket == b_socket and p.Count == 1 end),
  "a hears b leave")
a:Disconnect()
expect(function(ev) return ev.Event == network.EVENT_SERVER_CLOSE and rawequal(ev.Object, a) end, "a leaves")

print(string.format("echo_client: %d passed, 0 failed", passed))
