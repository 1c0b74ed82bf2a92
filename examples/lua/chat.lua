-- A chat member in Lua, for the Rust chat server of `cargo run --example chat`.
--
--   cargo run --example chat -- serve --port 4096            # the room (Rust)
--   LUA_CPATH="dir/?.so;;" lua5.4 examples/lua/chat.lua 127.0.0.1:4096 luna
--
-- usage: chat.lua HOST:PORT NAME [--key HEX] [--say LINE]... [--listen SECONDS]
--
-- Reads lines from standard input (or the --say lines, in order, instead)
-- and sends each as a chat line; /who lists the members, /quit or the end of
-- the input leaves. --listen keeps showing what arrives for that many seconds
-- after the input ends. Prints what the room says as `<name> text` lines.
-- Wrong key, nobody listening, a name taken: one line on stderr, exit 1.
--
-- Stock Lua cannot wait for the keyboard and the network at once: while it
-- waits for a line, nothing is shown. What arrived meanwhile shows up when
-- you press Enter (an empty line just refreshes).
--
-- The protocol (examples/chat/protocol.rs) is plain tables:
--   member -> server  {type="hello", name=..} {type="say", text=..} {type="who"}
--   server -> member  {type="welcome", members={..}} {type="refused", reason=..}
--                     {type="said", name=.., text=..} {type="joined", name=..}
--                     {type="left", name=..} {type="members", names={..}}

local network = rawget(_G, "network") or require("tablenet")

local function fail(message)
  io.stderr:write("chat: ", message, "\n")
  os.exit(1, true)
end

local USAGE = "usage: chat.lua HOST:PORT NAME [--key HEX] [--say LINE]... [--listen SECONDS]"

-- Arguments.
local target, name, key, says, listen = nil, nil, nil, nil, 0
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--key" then
      key, i = arg[i + 1], i + 1
    elseif a == "--say" then
      says = says or {}
      says[#says + 1], i = arg[i + 1], i + 1
    elseif a == "--listen" then
      listen, i = tonumber(arg[i + 1]), i + 1
    elseif a == "--help" or a == "-h" then
      print(USAGE)
      os.exit(0)
    elseif not target then
      target = a
    elseif not name then
      name = a
    else
      fail("unexpected argument " .. a .. " (" .. USAGE .. ")")
    end
    if a:sub(1, 2) == "--" and arg[i] == nil then fail(a .. " needs a value") end
    i = i + 1
  end
  if not target or not name or not listen then fail(USAGE) end
end

-- HOST:PORT, or [IPv6]:PORT. network.Client wants an IP literal.
local host, port = target:match("^%[(.+)%]:(%d+)$")
if not host then host, port = target:match("^(.+):(%d+)$") end
if not host then fail("expected HOST:PORT, got " .. target) end
if host == "localhost" then host = "127.0.0.1" end

io.stdout:setvbuf("line") -- each line at once, even into a pipe

-- How a message from the server reads on screen.
local function list(t)
  local names = {}
  for i, n in ipairs(type(t) == "table" and t or {}) do names[i] = tostring(n) end
  return table.concat(names, ", ")
end

local function describe(m)
  if m.type == "welcome" then return "* welcome! members: " .. list(m.members) end
  if m.type == "said" then return "<" .. tostring(m.name) .. "> " .. tostring(m.text) end
  if m.type == "joined" then return "* " .. tostring(m.name) .. " joined" end
  if m.type == "left" then return "* " .. tostring(m.name) .. " left" end
  if m.type == "members" then return "* members: " .. list(m.names) end
  return nil -- not one of ours: ignore it
end

-- Connect and say hello.
local client, result = network.Client(host, tonumber(port), key)
if not client then fail("cannot join " .. target .. ": " .. result) end
local ok, _, why = client:WaitForConnect(5)
if not ok then
  if why:find("refused", 1, true) then
    fail("nobody is listening on " .. target .. " (is the server running?)")
  end
  fail("cannot join " .. target .. ": " .. why)
end
client:Send({ type = "hello", name = name })

local leaving = false
local welcomed = false

-- Shows what arrived, for about `seconds` (0: only what is already there);
-- returns early once `until_welcome` and the welcome came, or (true) once
-- the server confirmed that we left.
local function pump(seconds, until_welcome)
  local deadline = os.time() + seconds -- os.time() counts whole seconds
  local rounds = math.floor(seconds * 10)
  repeat
    for _, ev in ipairs(network.WaitEvents(seconds > 0 and 0.1 or 0)) do
      if ev.Event == network.EVENT_RECEIVE and type(ev.Packet) == "table" then
        local m = ev.Packet
        if m.type == "refused" then fail("the server refused you: " .. tostring(m.reason)) end
        if m.type == "welcome" then welcomed = true end
        local line = describe(m)
        if line then print(line) end
      elseif ev.Event == network.EVENT_SERVER_CLOSE and rawequal(ev.Object, client) then
        if leaving then return true end
        fail("lost the connection to the server (" .. ev.Errors .. ")")
      end
    end
    if until_welcome and welcomed then return false end
    rounds = rounds - 1
  until rounds <= 0 and (seconds < 1 or os.time() >= deadline)
  return false
end

pump(5, true)
if not welcomed then fail("no welcome from " .. target .. " within 5 seconds") end
print(string.format("* connected to %s (%s); /who lists the members, /quit leaves", target,
  key and "encrypted" or "not encrypted"))

-- The lines: --say lines, or standard input.
local next_line
if says then
  local i = 0
  next_line = function()
    i = i + 1
    return says[i]
  end
else
  next_line = io.lines()
end

for line in next_line do
  line = line:gsub("\r$", "")
  if line == "/quit" then break end
  if line == "/who" then
    client:Send({ type = "who" })
  elseif line:sub(1, 1) == "/" then
    print("* unknown command " .. line .. ": try /who or /quit")
  elseif line ~= "" then
    local sent, reason = client:Send({ type = "say", text = line })
    if not sent then print("* not sent: " .. tostring(reason)) end
  end
  pump(0.2) -- show what arrived, giving replies a moment
end
if listen > 0 then pump(listen) end

-- Leave: what was queued goes out first, then the server closes.
leaving = true
client:Disconnect()
if not pump(5) then fail("the server did not confirm that we left") end
os.exit(0, true)
