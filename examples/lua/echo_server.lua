-- An echo server in Lua: every table a client sends comes back to it, and a
-- table with `Broadcast = true` goes to every client instead. Joins and
-- leaves are announced to everyone.
--
--   LUA_CPATH="dir/?.so;;" lua5.4 examples/lua/echo_server.lua --port 4096
--
-- usage: echo_server.lua [--bind ADDR] [--port PORT] [--key HEX] [--for SECONDS]
--
-- Prints `listening on ADDR:PORT` once it accepts connections (the real port
-- with --port 0), then one line per event. --for stops it after that many
-- seconds (default: run until interrupted).
--
-- What clients receive:
--   their own table, unchanged                         (an echo)
--   the table, to everyone, if it has Broadcast = true (a broadcast)
--   {Event = "joined", Socket = id, Count = n}         (someone connected)
--   {Event = "left", Socket = id, Count = n}           (someone left)

local network = rawget(_G, "network") or require("tablenet")

local bind, port, key, run_for = "127.0.0.1", 4096, nil, nil
do
  local i = 1
  while i <= #arg do
    local a, v = arg[i], arg[i + 1]
    if a == "--bind" then bind = v
    elseif a == "--port" then port = tonumber(v)
    elseif a == "--key" then key = v
    elseif a == "--for" then run_for = tonumber(v)
    else
      io.stderr:write("usage: echo_server.lua [--bind ADDR] [--port PORT] [--key HEX] [--for SECONDS]\n")
      os.exit(2)
    end
    i = i + 2
  end
end

io.stdout:setvbuf("line")

local server, result = network.Server(bind, port, key)
if not server then
  io.stderr:write("echo_server: cannot listen on ", bind, " port ", tostring(port), ": ", result, "\n")
  os.exit(1)
end
local address = server:GetAddress()
if address:find(":", 1, true) then address = "[" .. address .. "]" end
print(string.format("listening on %s:%d", address, server:GetPort()))

-- The Lua network module's advice: keep every ClientConnection, or it closes when Lua
-- collects it. The userdata is the same for every event of a connection, so
-- it works as a key.
local clients = {}

local function name(conn)
  return string.format("%s:%d (socket %d)", conn:GetAddress(), conn:GetPort(), conn:GetSocket())
end

local deadline = run_for and os.time() + run_for
while not deadline or os.time() < deadline do
  for _, ev in ipairs(network.WaitEvents(0.5)) do
    local conn = ev.Object
    if ev.Event == network.EVENT_CONNECT then
      clients[conn] = true
      print("+ " .. name(conn) .. " connected; " .. server:ConnectionCount() .. " connected")
      server:Broadcast({ Event = "joined", Socket = conn:GetSocket(), Count = server:ConnectionCount() })
    elseif ev.Event == network.EVENT_RECEIVE and clients[conn] then
      if type(ev.Packet) == "table" and ev.Packet.Broadcast then
        local n = server:Broadcast(ev.Packet)
        print("* broadcast from " .. name(conn) .. " to " .. n .. " clients")
      else
        local n = server:Send(ev.Packet, conn)
        print("* echo to " .. name(conn) .. (n == 1 and "" or " failed"))
      end
    elseif ev.Event == network.EVENT_CLIENT_CLOSE then
      -- .Object is nil only if the script had dropped the connection.
      if conn then clients[conn] = nil end
      print("- socket " .. tostring(ev.Socket) .. " left (" .. ev.Errors .. ")")
      server:Broadcast({ Event = "left", Socket = ev.Socket, Count = server:ConnectionCount() })
    elseif ev.Event == network.EVENT_ERROR then
      print("! " .. ev.Errors)
    end
  end
end
print("stopping after " .. run_for .. " seconds")
