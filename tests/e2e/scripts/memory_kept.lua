-- Conns kept by the script after they closed: their C side is freed at
-- close and their boxes have no finalizer, so after a full collection
-- every kept one must still be safe to use and say it is closed.
local kept = {}

local function check()
  collectgarbage("collect")
  collectgarbage("collect")
  local ok = 0
  for _, c in ipairs(kept) do
    local r, err = c:write("late")
    if r == nil and err == "closed" and c:close() == nil and c.peer == nil
        and tostring(c):match("%(closed%)$") and c.data.mark == "m" .. c.id then
      ok = ok + 1
    end
  end
  lunet.log.info("kept", { ok = ok, of = #kept })
  kept = {}
end

return {
  keep = {
    tcp = "127.0.0.1:0",
    on_connect = function(conn) conn.data.mark = "m" .. conn.id end,
    on_close = function(conn)
      kept[#kept + 1] = conn
      if #kept == 20 then lunet.after(10, check) end -- once on_close is over
    end,
  },
}
