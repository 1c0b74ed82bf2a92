-- Headless LÖVE 11.4 (LuaJIT): no window, no audio, only what the smoke
-- test needs (bindings/lua/ci.sh runs `love tests/lua/love`).
function love.conf(t)
  t.window = false
  t.modules.audio = false
  t.modules.sound = false
  t.modules.graphics = false
  t.modules.window = false
  t.modules.joystick = false
end
