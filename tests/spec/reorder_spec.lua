-- lunet.reorder: ordering, duplicates, gap timeouts, the window bound and
-- the datagram format. Time is an injected clock, so nothing sleeps.
local reorder = require("lunet.reorder")

-- A reorderer wired to a fake clock that records what it hands out.
local function harness(opts)
  local h = { t = 0, delivered = {}, payloads = {}, gaps = {} }
  opts = opts or {}
  opts.now = function() return h.t end
  opts.deliver = function(seq, payload)
    h.delivered[#h.delivered + 1] = seq
    h.payloads[#h.payloads + 1] = payload
  end
  opts.on_gap = function(first, last)
    h.gaps[#h.gaps + 1] = { first, last }
  end
  h.r = reorder.new(opts)
  return h
end

local function push_all(h, seqs)
  local statuses = {}
  for i, seq in ipairs(seqs) do statuses[i] = h.r:push(seq, "p" .. seq) end
  return statuses
end

local function range(a, b)
  local t = {}
  for i = a, b do t[#t + 1] = i end
  return t
end

local function stats(delivered, lost, duplicates, late, too_far, buffered)
  return { delivered = delivered, lost = lost, duplicates = duplicates,
           late = late, too_far = too_far, buffered = buffered }
end

describe("reorder.encode / decode", function()
  it("prefixes a 4-byte big-endian seq", function()
    assert.equal("\0\0\1\2hi", reorder.encode(258, "hi"))
    assert.equal("\255\255\255\255", reorder.encode(0xFFFFFFFF, ""))
  end)

  it("round-trips seq and payload, binary and empty ones too", function()
    for _, case in ipairs({ { 0, "" }, { 1, "abc" }, { 0xFFFFFFFF, "x" },
                            { 70000, "\0\1\255\n" } }) do
      local seq, payload = reorder.decode(reorder.encode(case[1], case[2]))
      assert.equal(case[1], seq)
      assert.equal(case[2], payload)
    end
  end)

  it("decodes a bare 4-byte datagram to an empty payload", function()
    local seq, payload = reorder.decode("\0\0\0\7")
    assert.equal(7, seq)
    assert.equal("", payload)
  end)

  it("rejects datagrams shorter than 4 bytes with nil, err", function()
    for n = 0, 3 do
      local seq, err = reorder.decode(string.rep("a", n))
      assert.is_nil(seq)
      assert.equal(string.format("short datagram (%d bytes, need 4)", n), err)
    end
  end)

  it("raises on a seq beyond 32 bits or a non-string payload", function()
    assert.has_error(function() reorder.encode(0x100000000, "") end)
    assert.has_error(function() reorder.encode(-1, "") end)
    assert.has_error(function() reorder.encode(1, nil) end,
      "reorder.encode: payload must be a string")
  end)
end)

describe("reorder.new", function()
  it("delivers in-order input at once, each push 'delivered'", function()
    local h = harness()
    local statuses = push_all(h, range(0, 99))
    for i = 1, 100 do assert.equal("delivered", statuses[i]) end
    assert.same(range(0, 99), h.delivered)
    assert.equal("p0", h.payloads[1])
    assert.equal("p99", h.payloads[100])
    assert.same({}, h.gaps)
    assert.same(stats(100, 0, 0, 0, 0, 0), h.r.stats)
    assert.equal(100, h.r:expected())
  end)

  it("starts at `first`; anything before it is late", function()
    local h = harness({ first = 10 })
    assert.same({ "buffered", "delivered", "late" }, push_all(h, { 11, 10, 5 }))
    assert.same({ 10, 11 }, h.delivered)
    assert.same(stats(2, 0, 0, 1, 0, 0), h.r.stats)
  end)

  for _, seed in ipairs({ 1, 42, 2024 }) do
    it("delivers 1000 seqs shuffled within blocks of 16 exactly once, in "
       .. "order (seed " .. seed .. ")", function()
      math.randomseed(seed)
      local seqs = range(0, 999)
      for base = 0, 999, 16 do -- Fisher-Yates inside each block
        local last = math.min(base + 16, 1000)
        for i = last, base + 2, -1 do
          local j = math.random(base + 1, i)
          seqs[i], seqs[j] = seqs[j], seqs[i]
        end
      end
      assert.not_same(range(0, 999), seqs) -- the shuffle did something
      local h = harness({ window = 64 })
      local most = 0
      for _, seq in ipairs(seqs) do
        h.r:push(seq, "p" .. seq)
        most = math.max(most, h.r.stats.buffered)
      end
      assert.same(range(0, 999), h.delivered)
      for i = 1, 1000 do assert.equal("p" .. (i - 1), h.payloads[i]) end
      assert.same({}, h.gaps)
      assert.same(stats(1000, 0, 0, 0, 0, 0), h.r.stats)
      assert.is_true(most > 0 and most <= 15) -- a block holds back <= 15
    end)
  end

  it("drops and counts duplicates of delivered and buffered seqs", function()
    local h = harness()
    local statuses = push_all(h, { 0, 0, 2, 2, 1, 2, 1, 0 })
    assert.same({ "delivered", "duplicate", "buffered", "duplicate",
                  "delivered", "duplicate", "duplicate", "duplicate" },
                 statuses)
    assert.same({ 0, 1, 2 }, h.delivered)
    assert.same(stats(3, 0, 5, 0, 0, 0), h.r.stats)
  end)
end)

describe("reorder gap timeout", function()
  it("reports a gap once it waited gap_timeout, then moves on", function()
    local h = harness({ gap_timeout = 200 })
    h.r:push(0, "p0")
    h.t = 10
    assert.equal("buffered", h.r:push(3, "p3"))
    h.t = 60
    assert.equal("buffered", h.r:push(4, "p4"))
    h.t = 209
    h.r:tick()
    assert.same({}, h.gaps)
    assert.same({ 0 }, h.delivered)
    assert.same(stats(1, 0, 0, 0, 0, 2), h.r.stats)
    h.t = 210 -- 200 ms after 3 arrived, when 1..2 were first known missing
    h.r:tick()
    assert.same({ { 1, 2 } }, h.gaps)
    assert.same({ 0, 3, 4 }, h.delivered)
    assert.same(stats(3, 2, 0, 0, 0, 0), h.r.stats)
    h.t = 1000
    h.r:tick() -- nothing left to give up on
    assert.same({ { 1, 2 } }, h.gaps)
  end)

  it("judges an expired gap at the next push when nobody ticked", function()
    local h = harness({ gap_timeout = 200 })
    push_all(h, { 0, 2 })
    h.t = 200
    assert.equal("delivered", h.r:push(3, "p3"))
    assert.same({ { 1, 1 } }, h.gaps)
    assert.same({ 0, 2, 3 }, h.delivered)
    assert.same(stats(3, 1, 0, 0, 0, 0), h.r.stats)
  end)

  it("does not report a gap filled before the timeout", function()
    local h = harness({ gap_timeout = 200 })
    push_all(h, { 0, 2, 3 })
    h.t = 199
    assert.equal("delivered", h.r:push(1, "p1"))
    h.t = 10000
    h.r:tick()
    assert.same({}, h.gaps)
    assert.same({ 0, 1, 2, 3 }, h.delivered)
    assert.same(stats(4, 0, 0, 0, 0, 0), h.r.stats)
  end)

  it("gives up on several gaps known equally long in one tick", function()
    local h = harness({ gap_timeout = 200 })
    push_all(h, { 0, 2, 4, 7 })
    h.t = 200
    h.r:tick()
    assert.same({ { 1, 1 }, { 3, 3 }, { 5, 6 } }, h.gaps)
    assert.same({ 0, 2, 4, 7 }, h.delivered)
    assert.same(stats(4, 4, 0, 0, 0, 0), h.r.stats)
  end)

  it("times each gap from the first arrival beyond it", function()
    local h = harness({ gap_timeout = 200 })
    h.r:push(2, "p2")        -- t=0: 0..1 missing
    h.t = 150
    h.r:push(5, "p5")        -- 3..4 missing, but known only since t=150
    h.t = 160
    h.r:push(0, "p0")        -- 1 is still missing since t=0
    h.t = 200
    h.r:tick()
    assert.same({ { 1, 1 } }, h.gaps)
    assert.same({ 0, 2 }, h.delivered)
    h.t = 349
    h.r:tick()
    assert.same({ { 1, 1 } }, h.gaps)
    h.t = 350
    h.r:tick()
    assert.same({ { 1, 1 }, { 3, 4 } }, h.gaps)
    assert.same({ 0, 2, 5 }, h.delivered)
    assert.same(stats(3, 3, 0, 0, 0, 0), h.r.stats)
  end)

  it("counts a seq arriving after it was declared lost as late", function()
    local h = harness({ gap_timeout = 200 })
    push_all(h, { 0, 3 })
    h.t = 200
    h.r:tick()
    assert.same({ { 1, 2 } }, h.gaps)
    assert.same({ "late", "late", "duplicate", "duplicate", "delivered" },
                push_all(h, { 2, 1, 0, 3, 4 }))
    assert.same({ 0, 3, 4 }, h.delivered)
    assert.same(stats(3, 2, 2, 2, 0, 0), h.r.stats)
  end)

  it("counts a seq arriving just as its gap expires as late", function()
    local h = harness({ gap_timeout = 200 })
    push_all(h, { 0, 2 })
    h.t = 200 -- no tick ran, yet the outcome is the same as if one had
    assert.equal("late", h.r:push(1, "p1"))
    assert.same({ { 1, 1 } }, h.gaps)
    assert.same({ 0, 2 }, h.delivered)
    assert.same(stats(2, 1, 0, 1, 0, 0), h.r.stats)
  end)

  it("forgets lost seqs further back than `history`: those are late", function()
    local h = harness({ gap_timeout = 200, history = 8 })
    push_all(h, { 0, 2 })
    h.t = 200
    h.r:tick()
    push_all(h, range(3, 20))
    assert.equal(21, h.r:expected())
    assert.equal("late", h.r:push(1, "p1"))     -- lost, and 20 back
    assert.equal("late", h.r:push(5, "p5"))     -- delivered, but 16 back
    assert.equal("duplicate", h.r:push(13, "p13")) -- within 8: known
    assert.same(stats(20, 1, 1, 2, 0, 0), h.r.stats)
  end)

  it("remembers lost seqs only `history` back (bounded memory)", function()
    local h = harness({ window = 4, history = 8 })
    for seq = 1, 10001, 2 do h.r:push(seq, "p" .. seq) end -- evens lost
    h.r:flush()
    assert.same(stats(5001, 5001, 0, 0, 4999, 0), h.r.stats)
    -- White-box: the lost ranges are the only state that grows with loss.
    -- 8 behind the next expected (10002) hold 9994..10000: four ranges,
    -- plus at most the one that just slid out of reach.
    assert.is_true(#h.r.lost_ranges <= 5)
    assert.equal("late", h.r:push(10000, "x"))
    assert.equal("late", h.r:push(2, "x"))
  end)
end)

describe("reorder window", function()
  it("buffers up to `window` ahead, never more", function()
    local h = harness({ window = 8 })
    local statuses = push_all(h, range(1, 8))
    for i = 1, 8 do assert.equal("buffered", statuses[i]) end
    assert.equal(8, h.r.stats.buffered)
    assert.same({}, h.delivered)
  end)

  it("forces the window forward for a seq beyond it", function()
    local h = harness({ window = 4, gap_timeout = 200 })
    assert.same({ "buffered", "buffered", "too_far" }, push_all(h, { 2, 3, 7 }))
    -- 7 sits at the far end of a window that now starts at 3: 0..1 gave
    -- way at once, 2..3 went out, 7 waits for 4..6.
    assert.same({ { 0, 1 } }, h.gaps)
    assert.same({ 2, 3 }, h.delivered)
    assert.same(stats(2, 2, 0, 0, 1, 1), h.r.stats)
    assert.equal(4, h.r:expected())
    assert.equal("late", h.r:push(1, "p1"))
    h.t = 200
    h.r:tick()
    assert.same({ { 0, 1 }, { 4, 6 } }, h.gaps)
    assert.same({ 2, 3, 7 }, h.delivered)
    assert.same(stats(3, 5, 0, 1, 1, 0), h.r.stats)
  end)

  it("delivers a too-far seq at once if the forced window allows", function()
    local h = harness({ window = 8 })
    push_all(h, range(1, 8))
    assert.equal("too_far", h.r:push(9, "p9"))
    assert.same({ { 0, 0 } }, h.gaps)
    assert.same(range(1, 9), h.delivered)
    assert.same(stats(9, 1, 0, 0, 1, 0), h.r.stats)
  end)

  it("jumps far ahead without walking every skipped seq", function()
    local h = harness({ window = 64 })
    push_all(h, { 0, 5 })
    assert.equal("too_far", h.r:push(2000000000, "far"))
    assert.same({ { 1, 4 }, { 6, 2000000000 - 65 } }, h.gaps)
    assert.same({ 0, 5 }, h.delivered)
    assert.same(stats(2, 4 + (2000000000 - 70), 0, 0, 1, 1), h.r.stats)
  end)

  it("keeps exact accounts and a bounded buffer on random input", function()
    -- A lossy stream: 5% never sent, 10% held back 1..30 places, 5% sent
    -- twice, 0..2 ms between datagrams. Losses stall the head long enough
    -- for the window to fill and be forced forward; held-back ones that
    -- come after that are late.
    math.randomseed(7)
    local h = harness({ window = 16, gap_timeout = 50, history = 4096 })
    local held, pushes, most = {}, 0, 0
    local function push(seq)
      pushes = pushes + 1
      h.t = h.t + math.random(0, 2)
      h.r:push(seq, "p" .. seq)
      most = math.max(most, h.r.stats.buffered)
      assert.is_true(h.r.stats.buffered <= 16)
    end
    for seq = 0, 1999 do
      local x = math.random()
      if x >= 0.15 then
        push(seq)
        if x >= 0.95 then push(seq) end
      elseif x >= 0.05 then
        held[#held + 1] = { seq, seq + math.random(1, 30) }
      end
      for i = #held, 1, -1 do
        if held[i][2] <= seq then push(table.remove(held, i)[1]) end
      end
    end
    for _, late in ipairs(held) do push(late[1]) end
    h.r:flush(2000)
    local s = h.r.stats
    assert.equal(16, most)
    assert.is_true(s.too_far > 0 and s.late > 0 and s.duplicates > 0)
    -- Every seq of the stream was delivered or lost, exactly once, and
    -- every push was delivered, dropped as a duplicate, or late.
    assert.equal(2000, s.delivered + s.lost)
    assert.equal(pushes, s.delivered + s.duplicates + s.late)
    assert.equal(0, s.buffered)
    local seen = {}
    for i, seq in ipairs(h.delivered) do
      assert.is_nil(seen[seq])
      seen[seq] = true
      if i > 1 then assert.is_true(seq > h.delivered[i - 1]) end
    end
    for _, g in ipairs(h.gaps) do -- lost ones: reported, never delivered
      for seq = g[1], g[2] do
        assert.is_nil(seen[seq])
        seen[seq] = true
      end
    end
    for seq = 0, 1999 do assert.is_true(seen[seq]) end
  end)
end)

describe("reorder:flush", function()
  it("delivers everything buffered and declares every gap lost", function()
    local h = harness()
    push_all(h, { 0, 2, 3, 6 })
    h.r:flush()
    assert.same({ { 1, 1 }, { 4, 5 } }, h.gaps)
    assert.same({ 0, 2, 3, 6 }, h.delivered)
    assert.same(stats(4, 3, 0, 0, 0, 0), h.r.stats)
    assert.equal(7, h.r:expected())
    h.r:flush() -- nothing left: a no-op
    assert.same(stats(4, 3, 0, 0, 0, 0), h.r.stats)
  end)

  it("with end_seq also declares a missing tail lost", function()
    local h = harness()
    push_all(h, { 0, 2 })
    h.r:flush(10)
    assert.same({ { 1, 1 }, { 3, 9 } }, h.gaps)
    assert.same(stats(2, 8, 0, 0, 0, 0), h.r.stats)
    assert.equal("late", h.r:push(9, "p9"))
    assert.equal("delivered", h.r:push(10, "p10"))
  end)

  it("ignores an end_seq behind what is already delivered", function()
    local h = harness()
    push_all(h, range(0, 5))
    h.r:flush(3)
    assert.same({}, h.gaps)
    assert.same(stats(6, 0, 0, 0, 0, 0), h.r.stats)
  end)
end)

describe("reorder across the 32-bit wrap", function()
  it("orders 0xFFFFFFFE, 0xFFFFFFFF, 0, 1 however they arrive", function()
    local h = harness({ first = 0xFFFFFFFE })
    assert.same({ "buffered", "buffered", "buffered", "delivered" },
                push_all(h, { 1, 0, 0xFFFFFFFF, 0xFFFFFFFE }))
    assert.same({ 0xFFFFFFFE, 0xFFFFFFFF, 0, 1 }, h.delivered)
    assert.equal(2, h.r:expected())
    assert.equal("duplicate", h.r:push(0xFFFFFFFF, "again"))
  end)

  it("reports a gap spanning the wrap with last < first", function()
    local h = harness({ first = 0xFFFFFFFE, gap_timeout = 200 })
    h.r:push(1, "p1")
    h.t = 200
    h.r:tick()
    assert.same({ { 0xFFFFFFFE, 0 } }, h.gaps)
    assert.same({ 1 }, h.delivered)
    assert.same(stats(1, 3, 0, 0, 0, 0), h.r.stats)
  end)
end)

describe("reorder misuse", function()
  it("raises on bad options, seqs and payloads", function()
    assert.has_error(function() reorder.new({}) end,
      "reorder.new: deliver must be a function")
    assert.has_error(function()
      reorder.new({ deliver = print, window = 0 })
    end, "reorder.new: window must be a positive integer")
    local r = reorder.new({ deliver = function() end, now = os.time })
    for _, bad in ipairs({ -1, 0x100000000, 1.5, "7" }) do
      assert.has_error(function() r:push(bad, "x") end)
    end
    assert.has_error(function() r:push(0, nil) end,
      "reorder: push needs a payload")
  end)

  it("uses lunet.now as its clock when running under lunet", function()
    local t = 0
    _G.lunet = { now = function() return t end }
    local gaps = 0
    local ok, err = pcall(function()
      local r = reorder.new({ deliver = function() end, gap_timeout = 100,
        on_gap = function() gaps = gaps + 1 end })
      r:push(1, "p1")
      t = 100
      r:tick()
    end)
    _G.lunet = nil
    assert(ok, err)
    assert.equal(1, gaps)
  end)
end)
