#!/usr/bin/env node
'use strict';
// node-postgres (`pg`) on evdb-bench's point-select workload (PostgreSQL).
// One pg.Client per --conns (no pool), held for the whole run, one query
// in flight on each (pg queues further queries on the client; it does not
// pipeline). A named query config, so each connection prepares the
// statement once and then only binds and executes. See peer.js.
const pg = require('pg');
const { run } = require('./peer');

const SQL = 'SELECT name, price FROM items WHERE id = $1';

run('node-pg', 'postgres', {
    async open(url, o) {
        const conns = [];
        for (let i = 0; i < o.conns; i++) {
            const c = new pg.Client({ connectionString: url });
            await c.connect();
            conns.push(c);
        }
        return conns;
    },
    async point(c, id) {
        const r = await c.query({ name: 'point', text: SQL, values: [id] });
        return r.rows[0];
    },
    async close(conns) {
        await Promise.all(conns.map((c) => c.end()));
    },
});
