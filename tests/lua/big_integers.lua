-- Integers beyond 2^53 between two Lua versions (bindings/lua/ci.sh):
--
--   receive: runs under any Lua; one server per BigIntegers policy; prints
--            "ports P1 P2 P3" and checks what arrives (exact on 5.3+, the
--            policy on 5.1, 5.2 and LuaJIT);
--   send P1 P2 P3: runs under Lua 5.3 or 5.4 (it needs integers) and sends
--            the same two messages to each server.
--
-- Loopback only; every wait has a deadline.

local network = rawget(_G, "network") or require("tablenet")
local mode = arg[1]

local function check(cond, what, detail)
  if not cond then error("FAILED: " .. what .. (detail and (": " .. tostring(detail)) or ""), 2) end
end

if mode == "send" then
  local odd = math.tointeger(2 ^ 53) + 1
  for i = 2, 4 do
    local c = assert(network.Client("127.0.0.1", tonumber(arg[i])))
    check(c:WaitForConnect(5), "sender connects to " .. arg[i])
    check(c:Send({ n = odd, max = math.maxinteger, exact = math.tointeger(2 ^ 53) }), "values sent")
    check(c:Send({ [math.tointeger(2 ^ 53)] = "a", [odd] = "b", [math.maxinteger] = "c", [2 ^ 63] = "d" }),
      "keys sent")
    c:Disconnect()
  end
  local deadline = os.time() + 10
  local closed = 0
  while closed < 3 do
    check(os.time() <= deadline, "the sender's messages go out in time")
    for _, ev in ipairs(network.WaitEvents(0.05)) do
      if ev.Event == network.EVENT_SERVER_CLOSE then closed = closed + 1 end
    end
  end
  print("big_integers: sent")
  return
end

check(mode == "receive", "usage: big_integers.lua receive | send P1 P2 P3")
io.stdout:setvbuf("line")
local integers = math.type ~= nil
local policies = { "error", "float", "string" }
local nets, servers, ports = {}, {}, {}
for i, policy in ipairs(policies) do
  nets[i] = network.New({ BigIntegers = policy })
  servers[i] = assert(nets[i].Server("127.0.0.1", 0))
  ports[i] = servers[i]:GetPort()
end
print("ports " .. table.concat(ports, " "))

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

for i, policy in ipairs(policies) do
  local net, outcomes, conns = nets[i], {}, {}
  local deadline = os.time() + 30
  while #outcomes < 2 do
    check(os.time() <= deadline, policy .. ": two messages in time")
    for _, ev in ipairs(net.WaitEvents(0.05)) do
      if ev.Event == net.EVENT_CONNECT then conns[ev.Object] = true end
      if ev.Event == net.EVENT_RECEIVE then outcomes[#outcomes + 1] = { packet = ev.Packet } end
      if ev.Event == net.EVENT_ERROR then outcomes[#outcomes + 1] = { error = ev.Errors } end
    end
  end
  local values, keys = outcomes[1], outcomes[2]
  if integers then
    -- 5.3 and 5.4 hold every integer: the policy never applies.
    local p = values.packet
    check(p and p.n == math.tointeger(2 ^ 53) + 1 and math.type(p.n) == "integer", policy .. ": 2^53 + 1 exact")
    check(p.max == math.maxinteger and math.type(p.max) == "integer", policy .. ": math.maxinteger stays an integer")
    check(keys.packet and count_keys(keys.packet) == 4, policy .. ": four keys arrive")
  elseif policy == "error" then
    check(values.error and values.error:find("cannot receive the integer ", 1, true)
      and values.error:find("(at packet.", 1, true), "error: EVENT_ERROR names the integer and where", values.error)
    check(keys.error and keys.error:find("cannot receive the integer", 1, true), "error: the keys too", keys.error)
  elseif policy == "float" then
    local p = values.packet
    check(p and p.n == 2 ^ 53 and p.max == 2 ^ 63 and p.exact == 2 ^ 53, "float: the nearest doubles")
    check(keys.error and keys.error:find("are the same key in this Lua", 1, true), "float: merged keys are an error",
      keys.error or "a packet")
  else
    local p = values.packet
    check(p and p.n == "9007199254740993" and p.max == "9223372036854775807" and p.exact == 2 ^ 53,
      "string: the digits of the inexact ones", p and tostring(p.n))
    local k = keys.packet
    check(k and count_keys(k) == 4 and k[2 ^ 53] == "a" and k["9007199254740993"] == "b"
      and k["9223372036854775807"] == "c" and k[2 ^ 63] == "d", "string: all four keys arrive")
  end
  print("big_integers: " .. policy .. " ok")
end
print("big_integers: passed (" .. _VERSION .. (rawget(_G, "jit") and ", LuaJIT" or "") .. ")")
