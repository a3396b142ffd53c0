#!/usr/bin/python3
"""asyncpg's pool on evdb-bench's `--workload slowmix` (PostgreSQL).

The same two shapes as evdb-bench (bench/evdb_bench.c, "slowmix"), on
asyncpg.create_pool, which gives each query a connection of its own:

  low   one request at a time on a quiet pool (max --conns, min_size 1:
        grown to one connection): a fresh pool per round, point selects one
        at a time, first alone (clean), then beside one slow statement
        restarted whenever it ends;
  load  --conns connections (all open), --inflight point selects in
        flight, first alone (clean), then beside two slow statements
        running all the time.

Only the quick queries' latencies are reported (p50/p99/max, from a sorted
array), in the same line format as evdb-bench's. uvloop when installed.
"""
import argparse
import asyncio
import json
import math
import random
import sys
import time

import asyncpg

SQL = "SELECT name, price FROM items WHERE id = $1"
ITEMS = 10000


def quantile(sorted_ns, q):
    if not sorted_ns:
        return 0
    return sorted_ns[max(1, math.ceil(q * len(sorted_ns))) - 1]


class Phase:
    def __init__(self, seconds):
        self.stop = time.monotonic() + seconds
        self.lat = []
        self.errors = 0
        self.slow_done = 0
        self.slow_stop = False


async def fast_loop(pool, ph, rng):
    while time.monotonic() < ph.stop:
        want = rng.randrange(ITEMS) + 1
        t0 = time.monotonic_ns()
        try:
            row = await pool.fetchrow(SQL, want)
            if row is None or row[0] != "item-%d" % want:
                ph.errors += 1
                continue
        except Exception:  # counted, the loop goes on
            ph.errors += 1
            continue
        ph.lat.append(time.monotonic_ns() - t0)


async def slow_loop(pool, ph, slow_sql):
    while not ph.slow_stop:
        try:
            await pool.execute(slow_sql)
            ph.slow_done += 1
        except Exception:
            ph.errors += 1


async def phase(pool, nfast, nslow, seconds, slow_sql, rng):
    ph = Phase(seconds)
    slows = [asyncio.ensure_future(slow_loop(pool, ph, slow_sql)) for _ in range(nslow)]
    await asyncio.gather(*(fast_loop(pool, ph, rng) for _ in range(nfast)))
    ph.slow_stop = True
    await asyncio.gather(*slows)
    return ph


def ms(ns):
    return ns / 1e6


def report(o, shape, inflight, nslow, clean, clean_s, mix, mix_s, connect_ns, errors):
    c, m = sorted(clean), sorted(mix)
    c99, m99 = quantile(c, 0.99), quantile(m, 0.99)
    cmax, mmax = (c[-1] if c else 0), (m[-1] if m else 0)
    if connect_ns:
        verdict = "target max <= clean max + one connect (%.3f ms): %s" % (
            ms(connect_ns), "met" if mmax <= cmax + connect_ns else "MISSED")
    else:
        verdict = "target p99 <= 3x clean: %s" % ("met" if m99 <= 3 * c99 else "MISSED")
    print("slowmix %-4s %-8s conns %d, %d quick in flight, %d x %gs slow: clean p50 %.3f p99 %.3f "
          "max %.3f ms (%.0f q/s) | beside slow p50 %.3f p99 %.3f max %.3f ms (%.0f q/s), "
          "p99 %.2fx clean, %d errors; %s [asyncpg pool]"
          % (shape, "postgres", o.conns, inflight, nslow, o.slow_seconds, ms(quantile(c, 0.5)),
             ms(c99), ms(cmax), len(c) / clean_s, ms(quantile(m, 0.5)), ms(m99), ms(mmax),
             len(m) / mix_s, (m99 / c99) if c99 else 0, errors, verdict))
    if o.json:
        with open(o.json, "a") as f:
            f.write(json.dumps({
                "label": o.label, "client": "asyncpg-pool", "backend": "postgres",
                "workload": "slowmix-" + shape, "conns": o.conns, "inflight": inflight,
                "slow": nslow, "slow_seconds": o.slow_seconds,
                "clean_p50_us": quantile(c, 0.5) / 1e3, "clean_p99_us": c99 / 1e3,
                "clean_max_us": cmax / 1e3, "clean_qps": len(c) / clean_s,
                "mix_p50_us": quantile(m, 0.5) / 1e3, "mix_p99_us": m99 / 1e3,
                "mix_max_us": mmax / 1e3, "mix_qps": len(m) / mix_s,
                "connect_us": connect_ns / 1e3, "errors": errors}) + "\n")


async def main_async(o):
    rng = random.Random(1)
    slow_sql = "SELECT pg_sleep(%g)" % o.slow_seconds
    rc = 0
    if o.slowmix in ("low", "both"):
        connect_ns = 0
        for _ in range(3):
            t0 = time.monotonic_ns()
            c = await asyncpg.connect(o.url)
            connect_ns = max(connect_ns, time.monotonic_ns() - t0)
            await c.close()
        per = max(o.duration / o.rounds, o.slow_seconds)
        clean, mix, errors = [], [], 0
        for _ in range(o.rounds):
            pool = await asyncpg.create_pool(o.url, min_size=1, max_size=o.conns)
            await phase(pool, 1, 0, 0.2, slow_sql, rng)
            ph = await phase(pool, 1, 0, per, slow_sql, rng)
            clean += ph.lat
            errors += ph.errors
            ph = await phase(pool, 1, 1, per, slow_sql, rng)
            mix += ph.lat
            errors += ph.errors
            await pool.close()
        report(o, "low", 1, 1, clean, per * o.rounds, mix, per * o.rounds, connect_ns, errors)
        rc |= errors != 0
    if o.slowmix in ("load", "both"):
        pool = await asyncpg.create_pool(o.url, min_size=o.conns, max_size=o.conns)
        await phase(pool, o.inflight, 0, min(o.duration / 5, 1), slow_sql, rng)
        clean = await phase(pool, o.inflight, 0, o.duration, slow_sql, rng)
        mix = await phase(pool, o.inflight, 2, o.duration, slow_sql, rng)
        await pool.close()
        report(o, "load", o.inflight, 2, clean.lat, o.duration, mix.lat, o.duration, 0,
               clean.errors + mix.errors)
        rc |= (clean.errors + mix.errors) != 0
    return rc


def main():
    p = argparse.ArgumentParser(prog="asyncpg-slowmix",
                                description="asyncpg's pool on evdb-bench's slowmix workload")
    p.add_argument("--url", required=True)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--inflight", type=int, default=30)
    p.add_argument("--slowmix", choices=("low", "load", "both"), default="both")
    p.add_argument("--slow-seconds", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json")
    p.add_argument("--label", default="")
    p.add_argument("--workload", default="slowmix", help="accepted, ignored")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    o = p.parse_args()
    if o.loop == "uvloop":
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            print("asyncpg-slowmix: uvloop is not installed: the asyncio loop", file=sys.stderr)
    # asyncpg wants postgresql:// or postgres:// URLs, as evdb-bench takes them.
    return asyncio.run(main_async(o))


if __name__ == "__main__":
    sys.exit(main())
