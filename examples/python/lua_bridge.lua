-- The Lua side of examples/python/lua_bridge.py: a script (say, inside an
-- emulator or a game) that a Python program drives with tables.
--
--   LUA_CPATH="dir/?.so;;" lua5.4 examples/python/lua_bridge.lua PORT [KEY]
--
-- Connects to the Python server on 127.0.0.1:PORT, says {type = "ready"},
-- then answers each command table:
--   {cmd = "sum", values = {...}}  -> {reply = "sum", result = <the sum>}
--   {cmd = "echo", value = v}      -> {reply = "echo", value = v} (v unchanged)
--   {cmd = "state"}                -> {reply = "state", frame = n, buttons = {...}}
--   {cmd = "quit"}                 -> {reply = "bye"}, then it disconnects
-- Exits 0 after "quit", 1 on an error or after 30 s without a command.

local network = require("tablenet")

local port, key = tonumber(arg[1]), arg[2]
local client, result = network.Client("127.0.0.1", port, key)
if not client then
  io.stderr:write("lua_bridge: ", result, "\n")
  os.exit(1)
end
local ok, _, why = client:WaitForConnect(5)
if not ok then
  io.stderr:write("lua_bridge: cannot connect: ", tostring(why), "\n")
  os.exit(1)
end
client:Send({ type = "ready", lua = _VERSION })

local frame = 0
local idle_until = os.time() + 30
while os.time() < idle_until do
  for _, ev in ipairs(network.WaitEvents(0.2)) do
    if ev.Event == network.EVENT_RECEIVE then
      local m = ev.Packet
      idle_until = os.time() + 30
      if m.cmd == "sum" then
        local total = 0
        for _, v in ipairs(m.values) do total = total + v end
        client:Send({ reply = "sum", result = total })
      elseif m.cmd == "echo" then
        client:Send({ reply = "echo", value = m.value })
      elseif m.cmd == "state" then
        frame = frame + 1
        client:Send({ reply = "state", frame = frame, buttons = { up = false, a = true } })
      elseif m.cmd == "quit" then
        client:Send({ reply = "bye" })
        client:Disconnect()
        network.WaitEvents(1) -- the disconnect flushes "bye" first
        os.exit(0)
      else
        client:Send({ reply = "error", what = "unknown command " .. tostring(m.cmd) })
      end
    elseif ev.Event == network.EVENT_SERVER_CLOSE then
      io.stderr:write("lua_bridge: the server closed the connection: ", ev.Errors, "\n")
      os.exit(1)
    end
  end
end
io.stderr:write("lua_bridge: no command for 30 s\n")
os.exit(1)
