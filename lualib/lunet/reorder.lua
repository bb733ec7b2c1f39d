-- lunet.reorder: in-order delivery on top of UDP datagrams that carry a
-- sequence number. The receiver pushes what arrives; the helper hands
-- payloads to `deliver` in sequence order, buffers what came early, drops
-- duplicates, and gives up on a missing one after a while so one lost
-- datagram cannot stall the stream. Pure Lua; no runtime needed.
--
--   local reorder = require("lunet.reorder")
--   local dgram = reorder.encode(seq, payload)  -- ">I4" seq, then payload
--   local seq, payload = reorder.decode(dgram)  -- nil, err if < 4 bytes
--   local r = reorder.new{
--     deliver = function(seq, payload) end,     -- required; in seq order
--     on_gap = function(first, last) end,       -- missing seqs given up on
--     window = 64,        -- how far ahead of the next expected we buffer
--     gap_timeout = 200,  -- ms a gap may wait (math.huge: never time out)
--     now = lunet.now,    -- ms clock; see below
--     first = 0,          -- the first seq of the stream
--     history = 1024,     -- how far back lost seqs are remembered
--   }
--   r:push(seq, payload) --> "delivered" | "buffered" | "duplicate" |
--                        --  "late" | "too_far"
--   r:tick()             -- give up on gaps that waited gap_timeout
--   r:flush([end_seq])   -- end of stream: deliver all, the rest is lost
--   r:expected()         -- the next seq to deliver
--   r.stats              -- delivered, lost, duplicates, late, too_far,
--                        -- buffered (how many are held right now)
--
-- Semantics:
-- * A gap is the run of missing seqs before the lowest buffered one. It
--   has been waiting since the earliest arrival among the buffered
--   payloads (that is when we first knew something was missing). Once it
--   has waited `gap_timeout` ms, judged at `tick()` or at the start of the
--   next `push()`, it is reported through `on_gap(first, last)`, its seqs
--   count as lost, and what was buffered after it is delivered. Judging
--   at the start of `push` means a seq arriving after its gap expired is
--   "late" whether or not a tick ran in between: the outcome depends on
--   arrival times, not on how often the caller ticks.
-- * "duplicate": already delivered, or already buffered. "late": declared
--   lost before it arrived, or before `first`, or more than `history`
--   behind the next expected seq (too old to tell which). Neither is
--   delivered.
-- * Beyond the window (more than `window` ahead of the next expected): the
--   window is forced forward so the newcomer fits at its far end. Buffered
--   payloads it passes are delivered, the missing ones it passes are lost
--   at once (reported through `on_gap`, without waiting for
--   `gap_timeout`), and the newcomer is kept. `push` returns "too_far" and
--   counts it in `stats.too_far`. This is what a live stream wants: fresh
--   data beats waiting for old data. The price: a single rogue seq far
--   ahead declares everything before it lost.
-- * Memory is bounded: at most `window` payloads are buffered (seqs
--   next+1 .. next+window), and lost seqs are remembered as ranges only
--   for `history` seqs behind the next expected.
-- * Sequence numbers are 32-bit and wrap around (0xFFFFFFFF is followed by
--   0): an incoming seq is read as the one nearest the next expected, so
--   up to 2^31 - 1 ahead or 2^31 behind. `deliver` and `on_gap` get 32-bit
--   seqs; across a wrap `on_gap`'s last is smaller than its first.
-- * `now` defaults to `lunet.now` under the lunet runtime and to
--   `os.time() * 1000` (whole seconds) elsewhere; tests pass their own.
-- * Callbacks run inside `push`, `tick` and `flush`. They must not call
--   back into the same reorderer. An error they raise propagates to the
--   caller; the state stays consistent and the next call carries on.
local reorder = {}

local MASK = 0xFFFFFFFF
local HALF = 0x80000000
local SPAN = 0x100000000

local Reorder = {}
Reorder.__index = Reorder

-- {==================================================================
-- Datagram format
-- ===================================================================

function reorder.encode(seq, payload)
  if type(payload) ~= "string" then
    error("reorder.encode: payload must be a string", 2)
  end
  return string.pack(">I4", seq) .. payload
end

function reorder.decode(datagram)
  if type(datagram) ~= "string" or #datagram < 4 then
    local n = type(datagram) == "string" and #datagram or 0
    return nil, string.format("short datagram (%d bytes, need 4)", n)
  end
  return string.unpack(">I4", datagram), datagram:sub(5)
end

-- }==================================================================

-- {==================================================================
-- Internals. Seqs inside are "extended": plain Lua integers that keep
-- counting past 2^32, so comparisons never have to think about the wrap.
-- ===================================================================

local function check_seq(seq, what)
  local n = type(seq) == "number" and math.tointeger(seq)
  if not n or n < 0 or n > MASK then
    error(string.format("reorder: %s must be an integer in 0..%d, got %s",
      what, MASK, tostring(seq)), 3)
  end
  return n
end

-- The extended seq nearest to the next expected one that has these 32 bits.
local function unwrap(self, seq)
  local d = (seq - self.next) & MASK
  if d >= HALF then d = d - SPAN end
  return self.next + d
end

local function take(self, ext)
  local payload = self.buf[ext]
  self.buf[ext], self.arrived[ext] = nil, nil
  self.stats.buffered = self.stats.buffered - 1
  return payload
end

local function hand_over(self, ext, payload)
  self.stats.delivered = self.stats.delivered + 1
  self.deliver(ext & MASK, payload)
end

-- The head gap has been waiting since the earliest buffered arrival: all
-- buffered seqs lie beyond it. Recomputed only when payloads leave.
local function refresh_gap(self)
  local oldest
  for _, t in pairs(self.arrived) do
    if oldest == nil or t < oldest then oldest = t end
  end
  self.gap_since = oldest
end

-- Delivers the run of buffered payloads that starts at the next expected
-- seq. `next` moves before each callback so a failing one leaves the
-- state consistent.
local function drain(self)
  local moved = false
  while self.buf[self.next] ~= nil do
    local ext = self.next
    self.next = ext + 1
    hand_over(self, ext, take(self, ext))
    moved = true
  end
  if moved then refresh_gap(self) end
end

-- Lost seqs are kept as ranges so a late arrival can be told from a
-- duplicate; ranges further back than `history` are forgotten, which
-- bounds the list (two ranges are always apart by a delivered seq).
local function remember_lost(self, a, b)
  local ranges = self.lost_ranges
  local last = ranges[#ranges]
  if last and last[2] + 1 == a then
    last[2] = b
  else
    ranges[#ranges + 1] = { a, b }
  end
  local horizon = self.next - self.history
  while ranges[1] and ranges[1][2] < horizon do table.remove(ranges, 1) end
end

local function declare_lost(self, a, b)
  self.stats.lost = self.stats.lost + (b - a + 1)
  remember_lost(self, a, b)
  if self.on_gap then self.on_gap(a & MASK, b & MASK) end
end

local function was_lost(self, ext)
  local ranges = self.lost_ranges
  for i = #ranges, 1, -1 do
    local r = ranges[i]
    if ext >= r[1] and ext <= r[2] then return true end
    if r[2] < ext then return false end -- ranges ascend: no hit further back
  end
  return false
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- Moves the window so that `target` is (at least) the next expected seq:
-- buffered payloads below it are delivered and missing seqs below it are
-- lost, in order; then whatever follows in the buffer is delivered too.
local function advance_to(self, target)
  for _, ext in ipairs(sorted_keys(self.buf)) do
    if ext >= target then break end
    local missing = self.next
    self.next = ext + 1
    if ext > missing then declare_lost(self, missing, ext - 1) end
    hand_over(self, ext, take(self, ext))
  end
  if self.next < target then
    local missing = self.next
    self.next = target
    declare_lost(self, missing, target - 1)
  end
  drain(self)
  refresh_gap(self)
end

local function lowest_buffered(self)
  local low
  for ext in pairs(self.buf) do
    if low == nil or ext < low then low = ext end
  end
  return low
end

-- Gives up on every gap that has waited gap_timeout by `now`. One expired
-- gap may uncover another whose wait began just as early, hence the loop.
local function expire(self, now)
  drain(self)
  while self.gap_since ~= nil and now - self.gap_since >= self.gap_timeout do
    advance_to(self, lowest_buffered(self))
  end
end

local function store(self, ext, payload, now)
  self.buf[ext], self.arrived[ext] = payload, now
  self.stats.buffered = self.stats.buffered + 1
  if self.gap_since == nil then self.gap_since = now end
end

-- A seq behind the next expected: never delivered, only classified.
local function classify_old(self, ext)
  if ext < self.start or ext < self.next - self.history
      or was_lost(self, ext) then
    self.stats.late = self.stats.late + 1
    return "late"
  end
  self.stats.duplicates = self.stats.duplicates + 1
  return "duplicate"
end

-- Makes room for a seq beyond the window by sliding the window so the seq
-- sits at its far end.
local function force_forward(self, ext)
  self.stats.too_far = self.stats.too_far + 1
  advance_to(self, ext - self.window)
end

-- }==================================================================

-- {==================================================================
-- The reorderer
-- ===================================================================

local function default_now()
  local rt = rawget(_G, "lunet")
  if type(rt) == "table" and type(rt.now) == "function" then return rt.now end
  return function() return os.time() * 1000 end
end

local function check_opts(opts)
  if type(opts) ~= "table" then
    error("reorder.new: options table expected", 3)
  end
  if type(opts.deliver) ~= "function" then
    error("reorder.new: deliver must be a function", 3)
  end
  if opts.on_gap ~= nil and type(opts.on_gap) ~= "function" then
    error("reorder.new: on_gap must be a function", 3)
  end
  local window = math.tointeger(opts.window or 64)
  if window == nil or window < 1 then
    error("reorder.new: window must be a positive integer", 3)
  end
  local history = math.tointeger(opts.history or 1024)
  if history == nil or history < 0 then
    error("reorder.new: history must be a non-negative integer", 3)
  end
  local timeout = opts.gap_timeout or 200
  if type(timeout) ~= "number" or timeout < 0 then
    error("reorder.new: gap_timeout must be a number of ms >= 0", 3)
  end
  return window, history, timeout
end

function reorder.new(opts)
  local window, history, timeout = check_opts(opts)
  local first = check_seq(opts.first or 0, "first")
  return setmetatable({
    window = window, history = history, gap_timeout = timeout,
    now = opts.now or default_now(),
    deliver = opts.deliver, on_gap = opts.on_gap,
    start = first, next = first,
    buf = {}, arrived = {}, lost_ranges = {}, gap_since = nil,
    stats = { delivered = 0, lost = 0, duplicates = 0, late = 0,
              too_far = 0, buffered = 0 },
  }, Reorder)
end

function Reorder:push(seq, payload)
  seq = check_seq(seq, "seq")
  if payload == nil then error("reorder: push needs a payload", 2) end
  local now = self.now()
  expire(self, now)
  local ext = unwrap(self, seq)
  if ext < self.next then return classify_old(self, ext) end
  if self.buf[ext] ~= nil then
    self.stats.duplicates = self.stats.duplicates + 1
    return "duplicate"
  end
  local status
  if ext - self.next > self.window then
    force_forward(self, ext)
    status = "too_far"
  end
  if ext == self.next then
    self.next = ext + 1
    hand_over(self, ext, payload)
    drain(self)
    return status or "delivered"
  end
  store(self, ext, payload, now)
  return status or "buffered"
end

function Reorder:tick()
  expire(self, self.now())
end

-- End of stream: everything buffered is delivered and every gap before it
-- is lost. `end_seq` (one past the sender's last seq, e.g. the count when
-- the stream started at 0) also declares a missing tail lost, which the
-- receiver could not otherwise know about.
function Reorder:flush(end_seq)
  local target = self.next
  for ext in pairs(self.buf) do
    if ext + 1 > target then target = ext + 1 end
  end
  if end_seq ~= nil then
    local e = unwrap(self, check_seq(end_seq, "end_seq"))
    if e > target then target = e end
  end
  advance_to(self, target)
end

function Reorder:expected()
  return self.next & MASK
end

-- }==================================================================

return reorder
