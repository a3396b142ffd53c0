-- bench/service.lua: wrk's script for bench/service_run. Mixes the
-- service's endpoints (wrk -s bench/service.lua URL -- ITEMS TRANSFER
-- REPORT, percentages, default 90 9 1) and records the latency of every
-- response per endpoint. Run with as many threads as connections (-t N
-- -c N): each thread then has one connection, so its requests and
-- responses alternate and a response's latency is the time since its
-- thread's last request. done() prints one line per endpoint:
--   endpoint NAME count N ok N expected_errors N errors N p50_us X p99_us Y
-- (ok: 200; expected_errors: 409 from /transfer; errors: anything else).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } svc_timespec;
int clock_gettime(int clk, svc_timespec *ts);
]]
local ts = ffi.new("svc_timespec")
local function now_us()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local threads = {}
function setup(thread)
    thread:set("id", #threads + 1)
    table.insert(threads, thread)
end

-- Per thread: the mix, and per endpoint a histogram (10 us buckets below
-- 100 ms, 1 ms buckets above) and counters, in flat tables keyed by
-- endpoint number (and "i:bucket"): wrk's thread:get copies one level of
-- table only (nested tables crash it).
local mix_items, mix_transfer = 90, 99
local names = { "items", "transfer", "report" }
hist, count, ok, expected, errors = {}, {}, {}, {}, {}
local current, started = 1, 0

function init(args)
    local a, b = tonumber(args[1] or 90), tonumber(args[2] or 9)
    mix_items, mix_transfer = a, a + b
    math.randomseed(os.time() * 1000 + (id or 0))
    for i = 1, 3 do
        count[i], ok[i], expected[i], errors[i] = 0, 0, 0, 0
    end
end

local function bucket(us)
    if us < 100000 then return math.floor(us / 10) end
    return 10000 + math.floor((us - 100000) / 1000)
end

function request()
    local r = math.random() * 100
    started = now_us()
    if r < mix_items then
        current = 1
        return wrk.format("GET", "/items/" .. math.random(1, 10000))
    elseif r < mix_transfer then
        current = 2
        local from = math.random(1, 1000)
        local to = math.random(1, 999)
        if to >= from then to = to + 1 end
        return wrk.format("POST", "/transfer", { ["Content-Type"] = "application/json" },
            string.format('{"from":%d,"to":%d,"amount":%d}', from, to, math.random(1, 10)))
    else
        current = 3
        return wrk.format("GET", "/report")
    end
end

function response(status, headers, body)
    local i = current
    local b = i .. ":" .. bucket(now_us() - started)
    hist[b] = (hist[b] or 0) + 1
    count[i] = count[i] + 1
    if status == 200 then
        ok[i] = ok[i] + 1
    elseif status == 409 and i == 2 then
        expected[i] = expected[i] + 1
    else
        errors[i] = errors[i] + 1
    end
end

local function upper_us(b)
    if b < 10000 then return (b + 1) * 10 end
    return 100000 + (b - 10000 + 1) * 1000
end

local function percentile(h, n, p)
    local keys = {}
    for k in pairs(h) do table.insert(keys, k) end
    table.sort(keys)
    local want, seen = math.ceil(n * p), 0
    for _, k in ipairs(keys) do
        seen = seen + h[k]
        if seen >= want then return upper_us(k) end
    end
    return 0
end

function done(summary, latency, requests)
    for i = 1, 3 do
        local h, n, o, e, x = {}, 0, 0, 0, 0
        local prefix = i .. ":"
        for _, t in ipairs(threads) do
            for k, v in pairs(t:get("hist")) do
                if k:sub(1, #prefix) == prefix then
                    local b = tonumber(k:sub(#prefix + 1))
                    h[b] = (h[b] or 0) + v
                end
            end
            n = n + t:get("count")[i]
            o = o + t:get("ok")[i]
            e = e + t:get("expected")[i]
            x = x + t:get("errors")[i]
        end
        if n > 0 then
            io.write(string.format("endpoint %s count %d ok %d expected_errors %d errors %d p50_us %d p99_us %d\n",
                names[i], n, o, e, x, percentile(h, n, 0.50), percentile(h, n, 0.99)))
        end
    end
    local s = summary.errors
    io.write(string.format("total requests %d duration_us %d socket_errors %d status_errors %d timeouts %d\n",
        summary.requests, summary.duration, s.connect + s.read + s.write, s.status, s.timeout))
end
