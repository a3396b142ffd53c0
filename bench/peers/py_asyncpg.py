#!/usr/bin/python3
"""asyncpg on evdb-bench's point-select workload (PostgreSQL).

One asyncpg connection per --conns, held for the whole run (no pool), one
query in flight on each: asyncpg runs one operation per connection at a
time. `fetchrow` with asyncpg's statement cache (prepared once per
connection, binary protocol). uvloop when installed (--loop). See peer.py.
"""
import asyncpg

import peer

SQL = "SELECT name, price FROM items WHERE id = $1"


async def connect(url):
    return await asyncpg.connect(url)


async def point(conn, want):
    return await conn.fetchrow(SQL, want)


async def close(conn):
    await conn.close()


if __name__ == "__main__":
    peer.main("asyncpg", "postgres", connect, point, close)
