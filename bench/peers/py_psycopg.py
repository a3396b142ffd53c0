#!/usr/bin/python3
"""psycopg 3 (async) on evdb-bench's point-select workload (PostgreSQL).

One psycopg.AsyncConnection per --conns (autocommit, held for the whole
run), one query in flight on each. `conn.execute` + `fetchone`; psycopg
prepares a statement on the server after its fifth execution (the default
prepare_threshold), so the measured phase runs prepared. uvloop when
installed (--loop). See peer.py.
"""
import psycopg

import peer

SQL = "SELECT name, price FROM items WHERE id = %s"


async def connect(url):
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def point(conn, want):
    cur = await conn.execute(SQL, (want,))
    return await cur.fetchone()


async def close(conn):
    await conn.close()


if __name__ == "__main__":
    peer.main("psycopg", "postgres", connect, point, close)
