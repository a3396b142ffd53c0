#!/usr/bin/env node
'use strict';
// The MariaDB Node.js connector (`mariadb`) on evdb-bench's point-select
// workload (MariaDB). One connection per --conns (no pool), held for the
// whole run, one query in flight on each. `execute`: a server-side
// prepared statement from the connector's cache, binary protocol. See
// peer.js.
const mariadb = require('mariadb');
const { run, myUrl } = require('./peer');

const SQL = 'SELECT name, price FROM items WHERE id = ?';

run('node-mariadb', 'mariadb', {
    async open(url, o) {
        const conns = [];
        for (let i = 0; i < o.conns; i++) conns.push(await mariadb.createConnection(myUrl(url)));
        return conns;
    },
    async point(c, id) {
        const rows = await c.execute(SQL, [id]);
        return rows[0];
    },
    async close(conns) {
        await Promise.all(conns.map((c) => c.end()));
    },
});
