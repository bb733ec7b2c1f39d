-- Ordered delivery over UDP with lunet.reorder: a sender that loses,
-- duplicates and reorders datagrams on purpose, and a receiver that puts
-- them back in order and reports what it saw.
--
--   lunet run examples/udp_seq.lua            (receive on 0.0.0.0:7004)
--   lunet run examples/udp_seq.lua -- receive 127.0.0.1:0
--   lunet run examples/udp_seq.lua -- send 127.0.0.1:7004 1000 10 7 swap
--
-- send ADDR COUNT [LOSS_EVERY] [DUP_EVERY] [SWAP] sends seqs 0..COUNT-1,
-- each as reorder.encode(seq, "datagram <seq>"):
-- * SWAP = "swap": adjacent pairs go out swapped: 1, 0, 3, 2, ...
-- * LOSS_EVERY = L > 0: every L-th seq is never sent (seq + 1 divisible
--   by L: 9, 19, 29, ... for 10). 0 or absent: none.
-- * DUP_EVERY = D > 0: every D-th seq that is sent goes out twice, back to
--   back (seq + 1 divisible by D, and not dropped). 0 or absent: none.
-- It sends in bursts of 32 datagrams 2 ms apart so the receiver keeps up,
-- then the end datagram (seq 0xFFFFFFFF, payload COUNT in decimal) three
-- times, 20 ms apart, since UDP may lose it. It prints
-- `sent=N dropped=X duplicated=Y` (N counts data datagrams, duplicates
-- included, end datagrams not) and exits 0, or 1 if a send failed.
--
-- The receiver (UDP service "seq") pushes each datagram into a reorderer
-- (window 64, gap timeout 200 ms, ticked every 50 ms). 100 ms after the
-- first end datagram it flushes up to COUNT (a missing tail is lost too),
-- prints `delivered=D lost=L duplicates=U late=T`, logs it, and exits 0.
-- It serves one stream per run: start it again for the next sender.
--
-- Over loopback the counts are exact: D = COUNT - X, L = X, U = Y, T = 0
-- (only adjacent seqs trade places, so nothing comes after its gap was
-- given up on), where X = floor(COUNT / L) and
-- Y = floor(COUNT / D) - floor(COUNT / lcm(L, D)). For instance:
--   send ADDR 1000 10 7 swap  -> sent=1028 dropped=100 duplicated=128
--                                delivered=900 lost=100 duplicates=128 late=0
--   send ADDR 1000 0 0 swap   -> sent=1000 dropped=0 duplicated=0
--                                delivered=1000 lost=0 duplicates=0 late=0
--   send ADDR 1000            -> the same as the line above
--   send ADDR 100 3 2         -> sent=101 dropped=33 duplicated=34
--                                delivered=67 lost=33 duplicates=34 late=0
local reorder = require("lunet.reorder")

local END_SEQ = 0xFFFFFFFF -- reserved: data seqs stay below it
local BURST, PACE_MS = 32, 2
local END_REPEATS, END_GAP_MS = 3, 20
local TICK_MS, GRACE_MS = 50, 100

local USAGE = "usage: lunet run examples/udp_seq.lua -- [receive [ADDR]]\n"
  .. "       lunet run examples/udp_seq.lua -- send ADDR COUNT "
  .. "[LOSS_EVERY] [DUP_EVERY] [swap]"

local function usage()
  io.stderr:write(USAGE, "\n")
  lunet.exit(2)
  return {}
end

local function payload_for(seq)
  return "datagram " .. seq
end

-- {==================================================================
-- Receiver
-- ===================================================================

local function receiver(addr)
  local ticker, ending, finished, from
  local r = reorder.new({
    window = 64, gap_timeout = 200, now = lunet.now,
    -- A real application would consume the payload here, in order.
    deliver = function(seq, payload)
      if payload ~= payload_for(seq) then
        lunet.log.warn("payload does not match its seq", { seq = seq })
      end
    end,
    on_gap = function(first, last)
      lunet.log.debug("gave up on a gap", { first = first, last = last })
    end,
  })

  local function finish(total)
    finished = true
    ticker:stop()
    r:flush(total)
    local s = r.stats
    print(string.format("delivered=%d lost=%d duplicates=%d late=%d",
      s.delivered, s.lost, s.duplicates, s.late))
    io.stdout:flush()
    lunet.log.info("stream ended", { peer = from, count = total,
      delivered = s.delivered, lost = s.lost, duplicates = s.duplicates,
      late = s.late, too_far = s.too_far })
    lunet.exit(0)
  end

  -- Later copies of the end datagram are ignored. The grace period lets
  -- data still in flight arrive before the flush gives up on it.
  local function on_end(payload, peer)
    local total = math.tointeger(tonumber(payload))
    if total == nil or total < 0 or total >= END_SEQ then
      lunet.log.warn("bad end datagram", { peer = peer })
      return
    end
    if ending then return end
    ending = true
    lunet.after(GRACE_MS, function() finish(total) end)
  end

  ticker = lunet.every(TICK_MS, function() r:tick() end)

  return {
    seq = {
      udp = addr,
      on_message = function(_, data, peer)
        if finished then return end
        local seq, payload = reorder.decode(data)
        if seq == nil then
          lunet.log.warn("dropped datagram", { peer = peer, err = payload })
        elseif seq == END_SEQ then
          on_end(payload, peer)
        else
          if from == nil then
            from = peer
            lunet.log.info("stream started", { peer = peer })
          end
          r:push(seq, payload)
        end
      end,
    },
  }
end

-- }==================================================================

-- {==================================================================
-- Sender
-- ===================================================================

local function every(n, seq)
  return n > 0 and (seq + 1) % n == 0
end

-- The send order, one seq at a time, without building the whole list:
-- position pos carries seq pos, or its pair partner when swapping.
local function plan(count, loss_every, dup_every, swap)
  local p = { dropped = 0, duplicated = 0 }
  local pos, again = 0, nil
  function p.next()
    if again then
      local seq = again
      again = nil
      return seq
    end
    while pos < count do
      local seq = pos
      if swap and (pos ~ 1) < count then seq = pos ~ 1 end
      pos = pos + 1
      if every(loss_every, seq) then
        p.dropped = p.dropped + 1
      else
        if every(dup_every, seq) then
          again = seq
          p.duplicated = p.duplicated + 1
        end
        return seq
      end
    end
    return nil
  end
  return p
end

local function sender(addr, count, loss_every, dup_every, swap)
  local p = plan(count, loss_every, dup_every, swap)
  local sent, failed = 0, 0
  local sock = lunet.udp({
    bind = addr:sub(1, 1) == "[" and "[::]:0" or "0.0.0.0:0",
  })

  local function send(seq, payload)
    local ok, err = sock:send(reorder.encode(seq, payload), addr)
    if ok then return true end
    failed = failed + 1
    if failed == 1 then -- one line, not one per datagram
      lunet.log.warn("send failed", { addr = addr, seq = seq, err = err })
    end
    return false
  end

  local function done()
    print(string.format("sent=%d dropped=%d duplicated=%d", sent, p.dropped,
      p.duplicated))
    io.stdout:flush()
    sock:close()
    lunet.exit(failed > 0 and 1 or 0)
  end

  local function send_end(left)
    send(END_SEQ, tostring(count))
    if left > 1 then
      lunet.after(END_GAP_MS, function() send_end(left - 1) end)
    else
      done()
    end
  end

  local function burst()
    for _ = 1, BURST do
      local seq = p.next()
      if seq == nil then return send_end(END_REPEATS) end
      if send(seq, payload_for(seq)) then sent = sent + 1 end
    end
    lunet.after(PACE_MS, burst)
  end

  burst()
  return {}
end

-- }==================================================================

local function count_arg(s, default)
  if s == nil then return default end
  local n = math.tointeger(tonumber(s))
  if n == nil or n < 0 then return nil end
  return n
end

local mode = arg[1] or "receive"
if mode == "receive" and arg[3] == nil then
  return receiver(arg[2] or "0.0.0.0:7004")
elseif mode == "send" and arg[2] and arg[7] == nil then
  local count = count_arg(arg[3])
  local loss_every, dup_every = count_arg(arg[4], 0), count_arg(arg[5], 0)
  local swap = arg[6] == "swap"
  if count and count < END_SEQ and loss_every and dup_every
      and (arg[6] == nil or swap) then
    return sender(arg[2], count, loss_every, dup_every, swap)
  end
end
return usage()
