-- A strict reader of the Prometheus text exposition format (0.0.4): every
-- line must be a well-formed HELP/TYPE comment or sample, families must
-- be contiguous with their TYPE first, histogram buckets cumulative with
-- +Inf equal to _count. Returns families[name] = { type, samples = {...} }
-- or raises with the offending line.
local M = {}

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*"

local function parse_labels(s, line)
  local labels, pos = {}, 1
  while pos <= #s do
    local name, rest = s:match("^([a-zA-Z_][a-zA-Z0-9_]*)=\"()", pos)
    assert(name, "bad label in: " .. line)
    local value, i = {}, rest
    while true do
      local ch = s:sub(i, i)
      assert(ch ~= "", "unterminated label value in: " .. line)
      if ch == "\\" then
        local nx = s:sub(i + 1, i + 1)
        assert(nx == "\\" or nx == '"' or nx == "n", "bad escape in: " .. line)
        value[#value + 1] = nx == "n" and "\n" or nx
        i = i + 2
      elseif ch == '"' then
        i = i + 1
        break
      else
        value[#value + 1] = ch
        i = i + 1
      end
    end
    assert(labels[name] == nil, "repeated label in: " .. line)
    labels[name] = table.concat(value)
    if s:sub(i, i) == "," then i = i + 1 end
    pos = i
  end
  return labels
end

local function parse_value(v, line)
  if v == "+Inf" then return math.huge end
  if v == "-Inf" then return -math.huge end
  if v == "NaN" then return 0 / 0 end
  local n = tonumber(v)
  assert(n and v:match("^[-+]?[%d.eE+-]+$"), "bad value in: " .. line)
  return n
end

local function family_of(name, families)
  if families[name] then return name end
  for _, suffix in ipairs({ "_bucket", "_sum", "_count" }) do
    local base = name:sub(1, -#suffix - 1)
    if name:sub(-#suffix) == suffix and families[base]
        and families[base].type == "histogram" then
      return base
    end
  end
end

local function check_histogram(name, fam)
  local series = {}
  for _, s in ipairs(fam.samples) do
    local key = {}
    for k, v in pairs(s.labels) do if k ~= "le" then key[#key + 1] = k .. "=" .. v end end
    table.sort(key)
    key = table.concat(key, ",")
    series[key] = series[key] or { buckets = {} }
    if s.name == name .. "_bucket" then
      local le = assert(s.labels.le, name .. ": bucket without le")
      table.insert(series[key].buckets, { le = parse_value(le, le), n = s.value })
    elseif s.name == name .. "_count" then
      series[key].count = s.value
    end
  end
  for key, s in pairs(series) do
    local last_le, last_n = -math.huge, 0
    for _, b in ipairs(s.buckets) do
      assert(b.le > last_le, name .. "{" .. key .. "}: le not increasing")
      assert(b.n >= last_n, name .. "{" .. key .. "}: buckets not cumulative")
      last_le, last_n = b.le, b.n
    end
    assert(last_le == math.huge, name .. ": no +Inf bucket")
    assert(last_n == s.count, name .. ": +Inf bucket ~= _count")
  end
end

function M.parse(text)
  local families, order, current = {}, {}, nil
  assert(text:sub(-1) == "\n", "exposition must end with a newline")
  for line in text:gmatch("([^\n]*)\n") do
    if line:match("^# HELP ") then
      local name = line:match("^# HELP (" .. NAME:sub(2) .. ") .+$")
      assert(name, "bad HELP: " .. line)
    elseif line:match("^# TYPE ") then
      local name, t = line:match("^# TYPE (" .. NAME:sub(2) .. ") (%a+)$")
      assert(name and (t == "counter" or t == "gauge" or t == "histogram"
        or t == "summary" or t == "untyped"), "bad TYPE: " .. line)
      assert(not families[name], "family typed twice: " .. name)
      families[name] = { type = t, samples = {} }
      order[#order + 1] = name
      current = name
    elseif line:match("^#") or line == "" then
      -- other comments and blank lines are allowed
    else
      local name, rest = line:match("^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$")
      assert(name, "bad sample: " .. line)
      local labels = {}
      local body, value = rest:match("^{(.*)} (%S+)$")
      if body then labels = parse_labels(body, line) else value = rest:match("^ (%S+)$") end
      assert(value, "bad sample: " .. line)
      local fam = family_of(name, families)
      assert(fam, "sample before its TYPE: " .. line)
      assert(fam == current, "family not contiguous: " .. line)
      table.insert(families[fam].samples, { name = name, labels = labels,
        value = parse_value(value, line) })
    end
  end
  for name, fam in pairs(families) do
    if fam.type == "histogram" then check_histogram(name, fam) end
  end
  return families
end

-- The value of the sample `name` whose labels include all of `want`.
function M.value(families, name, want)
  for _, fam in pairs(families) do
    for _, s in ipairs(fam.samples) do
      local ok = s.name == name
      for k, v in pairs(want or {}) do ok = ok and s.labels[k] == v end
      if ok then return s.value end
    end
  end
end

return M
