#!/usr/bin/python3
"""aiomysql on evdb-bench's point-select workload (MariaDB).

One aiomysql connection per --conns (autocommit, held for the whole run)
with one cursor each, one query in flight on each. aiomysql has no
server-side prepared statements: the id is quoted into the SQL text on
the client and the text protocol carries the result. uvloop when
installed (--loop). See peer.py.
"""
from urllib.parse import unquote, urlsplit

import aiomysql

import peer

SQL = "SELECT name, price FROM items WHERE id = %s"


async def connect(url):
    u = urlsplit(url)
    conn = await aiomysql.connect(
        host=u.hostname or "127.0.0.1", port=u.port or 3306,
        user=unquote(u.username or ""), password=unquote(u.password or ""),
        db=unquote(u.path.lstrip("/")), autocommit=True)
    return conn, await conn.cursor()


async def point(held, want):
    cur = held[1]
    await cur.execute(SQL, (want,))
    return await cur.fetchone()


async def close(held):
    await held[1].close()
    held[0].close()


if __name__ == "__main__":
    peer.main("aiomysql", "mariadb", connect, point, close)
