-- A LÖVE game that loads tablenet and has a server and a client exchange
-- tables inside love.update, the way a game would, with a deadline.
-- Exits with status 0 on success, 1 on failure (love.event.quit(code)).
local network = require("tablenet")

local net = network.New({ InlineIo = true }) -- the sockets move inside WaitEvents/PollEvents
local server, client, conn
local deadline = love.timer.getTime() + 20
local pings, pongs = 0, 0
local WANT = 10

local function finish(code, text)
  print("love smoke: " .. text)
  love.event.quit(code)
end

function love.load()
  server = assert(net.Server("127.0.0.1", 0))
  client = assert(net.Client("127.0.0.1", server:GetPort()))
  print("love smoke: " .. _VERSION .. (jit and (", " .. jit.version) or "") .. ", server on port " .. server:GetPort())
end

function love.update(dt)
  if love.timer.getTime() > deadline then
    return finish(1, string.format("FAILED: timed out (%d pings, %d pongs)", pings, pongs))
  end
  for _, ev in ipairs(net.PollEvents()) do
    if ev.Event == net.EVENT_CONNECT then
      conn = ev.Object
    elseif ev.Event == net.EVENT_CONNECTED then
      if not ev.Result then return finish(1, "FAILED: connect: " .. ev.Errors) end
      client:Send({ Ping = 1, Frame = dt, Big = 2 ^ 53, Name = "löve" })
    elseif ev.Event == net.EVENT_RECEIVE and rawequal(ev.Object, conn) then
      pings = pings + 1
      local p = ev.Packet
      if p.Ping ~= pings or p.Big ~= 2 ^ 53 or p.Name ~= "löve" then
        return finish(1, "FAILED: the server got a wrong table")
      end
      server:Send({ Pong = p.Ping, Id = 5LL }, conn) -- LuaJIT's int64_t travels as an integer
    elseif ev.Event == net.EVENT_RECEIVE and rawequal(ev.Object, client) then
      pongs = pongs + 1
      if ev.Packet.Pong ~= pongs or ev.Packet.Id ~= 5 then return finish(1, "FAILED: the client got a wrong table") end
      if pongs == WANT then return finish(0, "passed: " .. WANT .. " tables each way inside love.update") end
      client:Send({ Ping = pongs + 1, Frame = dt, Big = 2 ^ 53, Name = "löve" })
    elseif ev.Event == net.EVENT_ERROR then
      return finish(1, "FAILED: " .. ev.Errors)
    end
  end
end
