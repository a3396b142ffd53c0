#!/usr/bin/env node
'use strict';
// mysql2 on evdb-bench's point-select workload (MariaDB). One connection
// per --conns (mysql2/promise, no pool), held for the whole run, one
// query in flight on each. `execute`: a server-side prepared statement
// from mysql2's per-connection cache, binary protocol. See peer.js.
const mysql = require('mysql2/promise');
const { run, myUrl } = require('./peer');

const SQL = 'SELECT name, price FROM items WHERE id = ?';

run('node-mysql2', 'mariadb', {
    async open(url, o) {
        const conns = [];
        for (let i = 0; i < o.conns; i++) conns.push(await mysql.createConnection(myUrl(url)));
        return conns;
    },
    async point(c, id) {
        const [rows] = await c.execute(SQL, [id]);
        return rows[0];
    },
    async close(conns) {
        await Promise.all(conns.map((c) => c.end()));
    },
});
