-- bench/service.lua: wrk's script for bench/service_run. Mixes the
-- service's endpoints (wrk -s bench/service.lua URL -- ITEMS TRANSFER
-- REPORT, percentages, default 90 9 1) and records the latency of every
-- response per endpoint. Run with as many threads as connections (-t N
-- -c N): each thread then has one connection, so its requests and
-- responses alternate and a response's latency is the time since its
-- thread's last request. done() prints one line per endpoint:
--   endpoint NAME count N ok N expected_errors N errors N p50_us X p99_us Y
-- (ok: 200; expected_errors: 409 from /transfer; errors: anything else).
--
-- Each thread keeps its counters and histograms in C memory (LuaJIT's
-- ffi) and publishes only its address: wrk 4.1.0's thread:get crashes now
-- and then copying tables (script_copy_value, inside lua_next), while
-- numbers copy safely.
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } svc_timespec;
int clock_gettime(int clk, svc_timespec *ts);
void *calloc(size_t n, size_t size);
]]
local ts = ffi.new("svc_timespec")
local function now_us()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

-- Per endpoint: 4 counters (count, ok, expected errors, errors), then the
-- histogram: 10 us buckets below 100 ms, 1 ms buckets up to 10 s.
local NBUCKETS = 20000
local STRIDE = 4 + NBUCKETS
local NAMES = { "items", "transfer", "report" }

local threads = {}
function setup(thread)
    thread:set("id", #threads + 1)
    table.insert(threads, thread)
end

local mix_items, mix_transfer = 90, 99
local stats -- double[3 * STRIDE] of this thread
stats_addr = 0
local current, started = 0, 0

function init(args)
    local a, b = tonumber(args[1] or 90), tonumber(args[2] or 9)
    mix_items, mix_transfer = a, a + b
    math.randomseed(os.time() * 1000 + (id or 0))
    stats = ffi.cast("double *", ffi.C.calloc(3 * STRIDE, 8))
    stats_addr = tonumber(ffi.cast("uintptr_t", stats))
end

local function bucket(us)
    local b
    if us < 100000 then b = math.floor(us / 10) else b = 10000 + math.floor((us - 100000) / 1000) end
    if b >= NBUCKETS then b = NBUCKETS - 1 end
    return b
end

function request()
    local r = math.random() * 100
    started = now_us()
    if r < mix_items then
        current = 0
        return wrk.format("GET", "/items/" .. math.random(1, 10000))
    elseif r < mix_transfer then
        current = 1
        local from = math.random(1, 1000)
        local to = math.random(1, 999)
        if to >= from then to = to + 1 end
        return wrk.format("POST", "/transfer", { ["Content-Type"] = "application/json" },
            string.format('{"from":%d,"to":%d,"amount":%d}', from, to, math.random(1, 10)))
    else
        current = 2
        return wrk.format("GET", "/report")
    end
end

function response(status, headers, body)
    local base = current * STRIDE
    local b = base + 4 + bucket(now_us() - started)
    stats[b] = stats[b] + 1
    stats[base] = stats[base] + 1
    if status == 200 then
        stats[base + 1] = stats[base + 1] + 1
    elseif status == 409 and current == 1 then
        stats[base + 2] = stats[base + 2] + 1
    else
        stats[base + 3] = stats[base + 3] + 1
    end
end

local function upper_us(b)
    if b < 10000 then return (b + 1) * 10 end
    return 100000 + (b - 10000 + 1) * 1000
end

function done(summary, latency, requests)
    local all = {}
    for _, t in ipairs(threads) do
        table.insert(all, ffi.cast("double *", ffi.cast("uintptr_t", t:get("stats_addr"))))
    end
    for i = 0, 2 do
        local base = i * STRIDE
        local c = { 0, 0, 0, 0 }
        for _, s in ipairs(all) do
            for k = 0, 3 do c[k + 1] = c[k + 1] + s[base + k] end
        end
        if c[1] > 0 then
            local p = {}
            local want = { math.ceil(c[1] * 0.50), math.ceil(c[1] * 0.99) }
            local seen, w = 0, 1
            for b = 0, NBUCKETS - 1 do
                for _, s in ipairs(all) do seen = seen + s[base + 4 + b] end
                while w <= 2 and seen >= want[w] do
                    p[w] = upper_us(b)
                    w = w + 1
                end
                if w > 2 then break end
            end
            io.write(string.format(
                "endpoint %s count %d ok %d expected_errors %d errors %d p50_us %d p99_us %d\n",
                NAMES[i + 1], c[1], c[2], c[3], c[4], p[1] or 0, p[2] or 0))
        end
    end
    local e = summary.errors
    io.write(string.format(
        "total requests %d duration_us %d socket_errors %d status_errors %d timeouts %d\n",
        summary.requests, summary.duration, e.connect + e.read + e.write, e.status, e.timeout))
end
