#!/usr/bin/python3
"""examples/service in Python, for comparison only (bench/run --service).

The same endpoints and semantics as the C service, on the stack Python
services use: aiohttp + asyncpg for a postgresql:// URL, aiohttp +
aiomysql for a mariadb:// URL; uvloop when installed.

  GET  /items/{id}        point select; 404 missing, 400 bad id
  GET  /report[?sleep=S]  slow aggregate (0.2 s by default)
  POST /transfer          {"from","to","amount"}: repeatable-read
                          transaction, rows locked in id order, retried on
                          serialization failures and deadlocks (10 runs);
                          409 insufficient funds, 404 missing account
  GET  /health            pool counters

With --report-pool N, /report runs in a pool of N connections of its own
(as the C service's --report-pool). Each request has a deadline (--timeout): past it the work is cancelled
(asyncpg cancels the query on the server) and the answer is 504. SIGTERM:
aiohttp stops accepting, lets requests finish for --grace seconds, the
pool is closed, exit 0.

  service.py [--host H] [--port P] [--pool N] [--report-pool N] [--timeout S]
             [--grace S] URL
"""
import argparse
import asyncio
import json
import logging
import random
import signal
import sys
from urllib.parse import unquote, urlsplit

from aiohttp import web

REPORT_SLEEP = 0.2
ATTEMPTS = 10
AMOUNT_MAX = 1000000000


class Insufficient(Exception):
    pass


class Missing(Exception):
    pass


class Retryable(Exception):
    pass


class Pg:
    """asyncpg: $n placeholders, prepared statements, server-side cancel."""

    async def open(self, url, size, report_size):
        import asyncpg
        self.errors = asyncpg.exceptions
        self.pool = await asyncpg.create_pool(url, min_size=size, max_size=size)
        self.reports = self.pool
        if report_size:
            self.reports = await asyncpg.create_pool(url, min_size=report_size,
                                                     max_size=report_size)

    async def item(self, i):
        return await self.pool.fetchrow("SELECT id, name, price FROM items WHERE id = $1", i)

    async def report(self, sleep):
        return await self.reports.fetchrow(
            "SELECT count(*), sum(balance)::bigint FROM accounts, "
            "(SELECT pg_sleep($1::float8)) AS pause", sleep)

    async def transfer(self, src, dst, amount):
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction(isolation="repeatable_read"):
                    for acct, sign in sorted([(src, -1), (dst, 1)]):
                        r = await conn.execute(
                            "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
                            sign * amount, acct)
                        if r != "UPDATE 1":
                            raise Missing("no such account (%s)" % ("from" if sign < 0 else "to"))
            except self.errors.CheckViolationError:
                raise Insufficient()
            except (self.errors.SerializationError, self.errors.DeadlockDetectedError):
                raise Retryable()

    def stats(self):
        return [{"size": p.get_size(), "idle": p.get_idle_size()} for p in self.pools()]

    def pools(self):
        return [self.pool] if self.reports is self.pool else [self.pool, self.reports]

    async def close(self):
        for p in self.pools():
            await p.close()


class My:
    """aiomysql: %s placeholders quoted on the client, text protocol."""

    async def open(self, url, size, report_size):
        import aiomysql
        import pymysql
        self.pymysql = pymysql
        u = urlsplit(url)

        def create(n):
            return aiomysql.create_pool(
                host=u.hostname or "127.0.0.1", port=u.port or 3306,
                user=unquote(u.username or ""), password=unquote(u.password or ""),
                db=unquote(u.path.lstrip("/")), autocommit=True, minsize=n, maxsize=n)
        self.pool = await create(size)
        self.reports = await create(report_size) if report_size else self.pool

    async def fetchrow(self, sql, args, pool=None):
        async with (pool or self.pool).acquire() as conn:
            async with conn.cursor() as cur:
                await cur.execute(sql, args)
                return await cur.fetchone()

    async def item(self, i):
        return await self.fetchrow("SELECT id, name, price FROM items WHERE id = %s", (i,))

    async def report(self, sleep):
        return await self.fetchrow(
            "SELECT COUNT(*), CAST(SUM(balance) AS SIGNED) FROM accounts, "
            "(SELECT SLEEP(%s) AS z) AS pause", (sleep,), self.reports)

    async def transfer(self, src, dst, amount):
        async with self.pool.acquire() as conn:
            async with conn.cursor() as cur:
                try:
                    await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    await conn.begin()
                    for acct, sign in sorted([(src, -1), (dst, 1)]):
                        n = await cur.execute(
                            "UPDATE accounts SET balance = balance + %s WHERE id = %s",
                            (sign * amount, acct))
                        if n != 1:
                            raise Missing("no such account (%s)" % ("from" if sign < 0 else "to"))
                    await conn.commit()
                except BaseException as e:
                    await conn.rollback()
                    if isinstance(e, self.pymysql.err.OperationalError) and e.args[0] in (1213, 1205):
                        raise Retryable()
                    if isinstance(e, self.pymysql.err.OperationalError) and e.args[0] == 4025:
                        raise Insufficient()
                    raise

    def stats(self):
        return [{"size": p.size, "idle": p.freesize} for p in self.pools()]

    def pools(self):
        return [self.pool] if self.reports is self.pool else [self.pool, self.reports]

    async def close(self):
        for p in self.pools():
            p.close()
            await p.wait_closed()


def error(status, message):
    return web.json_response({"error": message}, status=status)


def positive(v):
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def make_app(db, opts):
    async def deadline(coro):
        try:
            return await asyncio.wait_for(coro, opts.timeout)
        except asyncio.TimeoutError:
            raise web.HTTPGatewayTimeout(
                text=json.dumps({"error": "timed out after %.3f s" % opts.timeout}),
                content_type="application/json")

    async def items(request):
        s = request.match_info["id"]
        if not s.isdigit() or s.startswith("0") or len(s) > 15:
            return error(400, "the item id must be a positive integer")
        row = await deadline(db.item(int(s)))
        if row is None:
            return error(404, "no such item")
        return web.json_response({"id": row[0], "name": row[1], "price": float(row[2])})

    async def report(request):
        try:
            sleep = float(request.query.get("sleep", REPORT_SLEEP))
            if not 0 <= sleep <= 60:
                raise ValueError
        except ValueError:
            return error(400, "sleep must be a number of seconds between 0 and 60")
        row = await deadline(db.report(sleep))
        return web.json_response({"accounts": row[0], "total": int(row[1])})

    async def transfer(request):
        body = await request.read()
        try:
            t = json.loads(body)
        except ValueError:
            return error(400, "malformed JSON")
        if not isinstance(t, dict) or set(t) != {"from", "to", "amount"}:
            return error(400, "the body must be an object with from, to and amount")
        if not positive(t["from"]) or not positive(t["to"]):
            return error(400, "account ids must be positive integers")
        if t["from"] == t["to"]:
            return error(400, "from and to must differ")
        if not positive(t["amount"]) or t["amount"] > AMOUNT_MAX:
            return error(400, "amount must be between 1 and 1000000000")

        async def attempts():
            delay = 0.005
            for n in range(1, ATTEMPTS + 1):
                try:
                    await db.transfer(t["from"], t["to"], t["amount"])
                    return n
                except Retryable:
                    if n == ATTEMPTS:
                        raise
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, 0.5)

        try:
            n = await deadline(attempts())
        except Insufficient:
            return error(409, "insufficient funds")
        except Missing as e:
            return error(404, str(e))
        return web.json_response({"from": t["from"], "to": t["to"], "amount": t["amount"],
                                  "attempts": n})

    async def health(request):
        s = db.stats()
        return web.json_response({"status": "ok", "pool": s[0],
                                  "report_pool": s[1] if len(s) > 1 else None})

    app = web.Application(client_max_size=4096)
    app.router.add_get("/items/{id}", items)
    app.router.add_get("/report", report)
    app.router.add_post("/transfer", transfer)
    app.router.add_get("/health", health)

    async def close_pool(app):
        await db.close()
    app.on_cleanup.append(close_pool)
    return app


async def serve(opts):
    db = My() if opts.url.startswith(("mariadb:", "mysql:")) else Pg()
    await db.open(opts.url, opts.pool, opts.report_pool)
    runner = web.AppRunner(make_app(db, opts), handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, opts.host, opts.port, shutdown_timeout=opts.grace).start()
    # Printed once the socket listens: the benchmark starts wrk then.
    print("listening on %s:%d" % (opts.host, opts.port), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Stop accepting, let requests finish within the grace period, then
    # on_cleanup closes the pool.
    await runner.cleanup()


def main():
    ap = argparse.ArgumentParser(description="examples/service in Python (comparison only)")
    ap.add_argument("url")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--pool", type=int, default=8)
    ap.add_argument("--report-pool", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--grace", type=float, default=5.0)
    opts = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(serve(opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
