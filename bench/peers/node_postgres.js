#!/usr/bin/env node
'use strict';
// Postgres.js (`postgres`) on evdb-bench's point-select workload
// (PostgreSQL). One `sql` instance with max: --conns connections; it
// spreads the queries over them itself and pipelines when more are in
// flight than there are connections (--inflight 64 on 8 connections).
// Tagged-template queries, prepared on each connection (its default).
// See peer.js.
const postgres = require('postgres');
const { run } = require('./peer');

run('node-postgres', 'postgres', {
    pipelines: true,
    async open(url, o) {
        const sql = postgres(url, { max: o.conns, prepare: true, onnotice: () => {} });
        // Open every connection before the warm-up: one query per
        // connection, all at once.
        await Promise.all(Array.from({ length: o.conns }, () => sql`SELECT 1`));
        return [sql];
    },
    async point(sql, id) {
        const rows = await sql`SELECT name, price FROM items WHERE id = ${id}`;
        return rows[0];
    },
    async close(conns) {
        await conns[0].end({ timeout: 5 });
    },
});
