"""The harness of the Python peers: evdb-bench's point-select workload and
its report, for a client given as three coroutines (see run()).

The workload is evdb-bench's `--workload point`: a closed loop of random
point selects on `items`, ids from the same xorshift64* generator and seed
(drawn in the order the queries are taken, like bench.c does; the ids are
drawn before the run so that the generator costs the client nothing), a
warm-up phase first, every row checked (one row, name 'item-<id>',
price id * 1.25). The report has the columns of evdb-bench's CSV and JSON.

Latency percentiles come from a sorted array of every measured latency
(evdb-bench uses a log-linear histogram; both take the value at rank
ceil(q * n)).
"""

import argparse
import asyncio
import json
import math
import os
import resource
import sys
import time

ITEMS = 10000
PRICE_STEP = 1.25
MASK64 = (1 << 64) - 1
DEFAULT_QUERIES = 100000
WARMUP_SHARE = 5
WARMUP_MAX = 20000
CDF_POINTS = 1000

CSV_HEADER = (
    "label,client,backend,workload,conns,inflight,depth,queries,errors,rows,seconds,qps,"
    "cpu_us_per_query,user_s,sys_s,lat_mean_us,lat_p50_us,lat_p90_us,lat_p99_us,lat_p999_us,"
    "lat_max_us,peak_rss_kb,bytes_per_queued,rss_bytes_per_queued,allocs_per_query\n"
)


def point_ids(seed, n):
    """The ids bench.c's make_query draws for n point selects (xorshift64*)."""
    x = (seed * 0x9E3779B97F4A7C15 + 1) & MASK64
    ids = [0] * n
    for i in range(n):
        x ^= x >> 12
        x ^= (x << 25) & MASK64
        x ^= x >> 27
        ids[i] = ((x * 0x2545F4914F6CDD1D) & MASK64) % ITEMS + 1
    return ids


def row_ok(row, want_id):
    """bench_check_name + bench_check_price: name 'item-<id>', price id * 1.25
    (a numeric is compared as the double it parses to, like strtod)."""
    return (row is not None and row[0] == "item-%d" % want_id
            and float(row[1]) == want_id * PRICE_STEP)


def parse_args(client):
    p = argparse.ArgumentParser(
        prog=client, description="%s on evdb-bench's point-select workload" % client)
    p.add_argument("--url", default=os.environ.get("EVDB_BENCH_URL"))
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--inflight", type=int, default=0,
                   help="queries in flight, all connections together [= conns]")
    p.add_argument("--queries", type=int, default=DEFAULT_QUERIES)
    p.add_argument("--warmup", type=int, default=-1,
                   help="unmeasured queries first [min(queries/5, 20000)]")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--format", choices=("text", "csv", "json"), default="text")
    p.add_argument("--csv", help="also append a CSV line here")
    p.add_argument("--json", help="also append a JSON line here")
    p.add_argument("--cdf", help="write the latency CDF (us, fraction) here")
    p.add_argument("--label", default="")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                   help="event loop (uvloop when installed) [uvloop]")
    p.add_argument("--progress", action="store_true", help="accepted, ignored")
    p.add_argument("--no-progress", action="store_true", help="accepted, ignored")
    o = p.parse_args()
    if not o.url:
        p.error("--url is required")
    if o.conns < 1 or o.queries < 1:
        p.error("--conns and --queries must be at least 1")
    if o.inflight <= 0:
        o.inflight = o.conns
    if o.inflight != o.conns:
        # These clients run one query per connection at a time.
        print("%s: one query per connection: %d in flight, not %d"
              % (client, o.conns, o.inflight), file=sys.stderr)
        o.inflight = o.conns
    if o.warmup < 0:
        o.warmup = min(o.queries // WARMUP_SHARE, WARMUP_MAX)
    if o.seed == 0:
        o.seed = 1
    return o


def cpu_now():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


class Run:
    """One phase's counters; workers take ids from it until it runs out."""

    def __init__(self, ids, start, count, measure):
        self.ids = ids
        self.next = start
        self.end = start + count
        self.measure = measure
        self.lat = []
        self.done = 0
        self.errors = 0
        self.first_error = None


async def worker(run, conn, point, client):
    ids = run.ids
    lat = run.lat
    clock = time.perf_counter_ns
    while run.next < run.end:
        want = ids[run.next]
        run.next += 1
        t0 = clock()
        try:
            row = await point(conn, want)
        except Exception as e:  # the connection is gone or the query failed
            run.done += 1
            run.errors += 1
            if run.first_error is None:
                run.first_error = "%s: %s" % (type(e).__name__, e)
                print("%s: first error: %s" % (client, run.first_error), file=sys.stderr)
            return
        t1 = clock()
        run.done += 1
        if not row_ok(row, want):
            run.errors += 1
            if run.first_error is None:
                run.first_error = "point select of id %d: wrong row %r" % (want, row)
                print("%s: first error: %s" % (client, run.first_error), file=sys.stderr)
        if run.measure:
            lat.append(t1 - t0)


def quantile(sorted_ns, q):
    if not sorted_ns:
        return 0
    rank = max(1, math.ceil(q * len(sorted_ns)))
    return sorted_ns[rank - 1]


def report(o, client, backend, run, secs, user, sys_, fmt, out):
    lat = sorted(run.lat)
    n = run.done
    rows = n - run.errors
    us = 1e-3
    m = {
        "label": o.label, "client": client, "backend": backend, "workload": "point",
        "conns": o.conns, "inflight": o.inflight, "depth": 1,
        "queries": n, "errors": run.errors, "rows": rows,
        "seconds": secs, "qps": n / secs if secs > 0 else 0.0,
        "cpu_us_per_query": (user + sys_) * 1e6 / n if n else 0.0,
        "user_s": user, "sys_s": sys_,
        "lat_mean_us": sum(lat) / len(lat) * us if lat else 0.0,
        "lat_p50_us": quantile(lat, 0.50) * us, "lat_p90_us": quantile(lat, 0.90) * us,
        "lat_p99_us": quantile(lat, 0.99) * us, "lat_p999_us": quantile(lat, 0.999) * us,
        "lat_max_us": (lat[-1] if lat else 0) * us,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "bytes_per_queued": -1.0, "rss_bytes_per_queued": -1.0, "allocs_per_query": -1.0,
    }
    csv_line = (
        "%(label)s,%(client)s,%(backend)s,%(workload)s,%(conns)d,%(inflight)d,%(depth)d,"
        "%(queries)d,%(errors)d,%(rows)d,%(seconds).4f,%(qps).1f,%(cpu_us_per_query).3f,"
        "%(user_s).4f,%(sys_s).4f,%(lat_mean_us).2f,%(lat_p50_us).2f,%(lat_p90_us).2f,"
        "%(lat_p99_us).2f,%(lat_p999_us).2f,%(lat_max_us).2f,%(peak_rss_kb)d,"
        "%(bytes_per_queued).1f,%(rss_bytes_per_queued).1f,%(allocs_per_query).3f\n" % m)
    rounded = dict(m)  # the decimals of evdb-bench's JSON
    for key, digits in (("seconds", 4), ("qps", 1), ("cpu_us_per_query", 3), ("user_s", 4),
                        ("sys_s", 4), ("lat_mean_us", 2), ("lat_p50_us", 2), ("lat_p90_us", 2),
                        ("lat_p99_us", 2), ("lat_p999_us", 2), ("lat_max_us", 2)):
        rounded[key] = round(m[key], digits)
    json_line = json.dumps(rounded, separators=(",", ":")) + "\n"
    if fmt == "csv":
        out.write(CSV_HEADER + csv_line)
    elif fmt == "json":
        out.write(json_line)
    else:
        out.write(
            "%s%s%s %s point: %d conns, %d in flight (depth 1)\n"
            "  queries     %d in %.3f s (%d errors, %d rows checked)\n"
            "  throughput  %.0f queries/s\n"
            "  client CPU  %.2f us/query (user %.3f s, sys %.3f s)\n"
            "  latency     mean %.1f us, p50 %.1f, p90 %.1f, p99 %.1f, p99.9 %.1f, max %.1f\n"
            "  memory      peak RSS %d KiB\n"
            % (o.label, ": " if o.label else "", client, backend, o.conns, o.inflight,
               n, secs, run.errors, rows, m["qps"], m["cpu_us_per_query"], user, sys_,
               m["lat_mean_us"], m["lat_p50_us"], m["lat_p90_us"], m["lat_p99_us"],
               m["lat_p999_us"], m["lat_max_us"], m["peak_rss_kb"]))
    out.flush()
    for path, line in ((o.csv, csv_line), (o.json, json_line)):
        if path:
            with open(path, "a") as f:
                if path == o.csv and f.tell() == 0:
                    f.write(CSV_HEADER)
                f.write(line)
    if o.cdf:
        with open(o.cdf, "w") as f:
            f.write("# latency_us fraction_at_or_below\n")
            step = max(1, len(lat) // CDF_POINTS)
            for i in range(step - 1, len(lat), step):
                f.write("%.3f %.7f\n" % (lat[i] * us, (i + 1) / len(lat)))
            if lat and (len(lat) - 1) % step != step - 1:
                f.write("%.3f %.7f\n" % (lat[-1] * us, 1.0))
    return 1 if run.errors or n == 0 else 0


async def phases(o, client, backend, connect, point, close):
    conns = []
    try:
        for _ in range(o.conns):
            conns.append(await connect(o.url))
        ids = point_ids(o.seed, o.warmup + o.queries)
        result = None
        for measure in (False, True):
            start, count = (o.warmup, o.queries) if measure else (0, o.warmup)
            run = Run(ids, start, count, measure)
            u0, s0 = cpu_now()
            t0 = time.perf_counter_ns()
            await asyncio.gather(*(worker(run, conns[i % o.conns], point, client)
                                   for i in range(o.inflight)))
            t1 = time.perf_counter_ns()
            u1, s1 = cpu_now()
            if run.errors and not measure:
                return report(o, client, backend, run, (t1 - t0) / 1e9, u1 - u0, s1 - s0,
                              o.format, sys.stdout)
            result = (run, (t1 - t0) / 1e9, u1 - u0, s1 - s0)
        run, secs, user, sys_ = result
        return report(o, client, backend, run, secs, user, sys_, o.format, sys.stdout)
    finally:
        for c in conns:
            try:
                await close(c)
            except Exception:
                pass


def main(client, backend, connect, point, close):
    """Run the workload: connect(url) -> a connection, point(conn, id) -> the
    row as (name, price) or None, close(conn). Exits with 1 on errors."""
    o = parse_args(client)
    if o.loop == "uvloop":
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            print("%s: uvloop is not installed: the asyncio loop" % client, file=sys.stderr)
    try:
        rc = asyncio.run(phases(o, client, backend, connect, point, close))
    except Exception as e:
        print("%s: %s: %s" % (client, type(e).__name__, e), file=sys.stderr)
        rc = 1
    sys.exit(rc)
