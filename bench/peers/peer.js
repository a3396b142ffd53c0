'use strict';
// The harness of the Node.js peers: evdb-bench's point-select workload and
// its report, for a client given as open/point/close (see run()).
//
// The workload is evdb-bench's `--workload point`: a closed loop of random
// point selects on `items`, ids from the same xorshift64* generator and
// seed (drawn in the order the queries are taken, like bench.c does; the
// ids are drawn before the run so that the generator costs the client
// nothing), a warm-up phase first, every row checked (one row, name
// 'item-<id>', price id * 1.25). The report has the columns of
// evdb-bench's CSV and JSON. Client CPU is process.cpuUsage() (user +
// system of the whole process) over the measured phase; latency
// percentiles come from a sorted array of every measured latency (the
// value at rank ceil(q * n), as evdb-bench's histogram reports it).

const fs = require('node:fs');
const { parseArgs } = require('node:util');
const { performance } = require('node:perf_hooks');

const ITEMS = 10000n;
const PRICE_STEP = 1.25;
const MASK64 = (1n << 64n) - 1n;
const DEFAULT_QUERIES = 100000;
const WARMUP_SHARE = 5;
const WARMUP_MAX = 20000;
const CDF_POINTS = 1000;

const CSV_HEADER =
    'label,client,backend,workload,conns,inflight,depth,queries,errors,rows,seconds,qps,' +
    'cpu_us_per_query,user_s,sys_s,lat_mean_us,lat_p50_us,lat_p90_us,lat_p99_us,lat_p999_us,' +
    'lat_max_us,peak_rss_kb,bytes_per_queued,rss_bytes_per_queued,allocs_per_query\n';

// The ids bench.c's make_query draws for n point selects (xorshift64*).
function pointIds(seed, n) {
    let x = (BigInt(seed) * 0x9E3779B97F4A7C15n + 1n) & MASK64;
    const ids = new Int32Array(n);
    for (let i = 0; i < n; i++) {
        x ^= x >> 12n;
        x ^= (x << 25n) & MASK64;
        x ^= x >> 27n;
        ids[i] = Number(((x * 0x2545F4914F6CDD1Dn) & MASK64) % ITEMS) + 1;
    }
    return ids;
}

// bench_check_name + bench_check_price: name 'item-<id>', price id * 1.25
// (a numeric that arrives as text is compared as the double it parses to).
function rowOk(row, id) {
    return row !== undefined && row !== null && row.name === 'item-' + id &&
        Number(row.price) === id * PRICE_STEP;
}

function usage(client, pipelines) {
    return `usage: ${client} --url URL [options]
  --url URL        the server (default $EVDB_BENCH_URL)
  --conns N        connections [8]
  --inflight N     queries in flight, all connections together [= conns]${
    pipelines ? '' : '\n                   (this client: one per connection)'}
  --queries N      measured queries [${DEFAULT_QUERIES}]
  --warmup N       unmeasured queries first [min(queries/${WARMUP_SHARE}, ${WARMUP_MAX})]
  --seed N         random seed [1]
  --format F       text | csv | json [text]
  --csv FILE       also append a CSV line here
  --json FILE      also append a JSON line here
  --cdf FILE       write the latency CDF (us, fraction) here
  --label TEXT     tag copied into the report
`;
}

function options(client, pipelines) {
    let v;
    try {
        v = parseArgs({
            options: {
                url: { type: 'string' },
                conns: { type: 'string' },
                inflight: { type: 'string' },
                queries: { type: 'string' },
                warmup: { type: 'string' },
                seed: { type: 'string' },
                format: { type: 'string' },
                csv: { type: 'string' },
                json: { type: 'string' },
                cdf: { type: 'string' },
                label: { type: 'string' },
                progress: { type: 'boolean' },
                'no-progress': { type: 'boolean' },
                help: { type: 'boolean', short: 'h' },
            },
        }).values;
    } catch (e) {
        process.stderr.write(`${client}: ${e.message}\n${usage(client, pipelines)}`);
        process.exit(2);
    }
    if (v.help) {
        process.stdout.write(usage(client, pipelines));
        process.exit(0);
    }
    const num = (name, s, dflt) => {
        if (s === undefined) return dflt;
        const n = Number(s);
        if (!Number.isInteger(n) || n < 0) {
            process.stderr.write(`${client}: --${name} wants a whole number, got '${s}'\n`);
            process.exit(2);
        }
        return n;
    };
    const o = {
        url: v.url || process.env.EVDB_BENCH_URL,
        conns: num('conns', v.conns, 8),
        inflight: num('inflight', v.inflight, 0),
        queries: num('queries', v.queries, DEFAULT_QUERIES),
        warmup: num('warmup', v.warmup, -1),
        seed: num('seed', v.seed, 1) || 1,
        format: v.format || 'text',
        csv: v.csv, json: v.json, cdf: v.cdf,
        label: v.label || '',
    };
    if (!o.url || o.conns < 1 || o.queries < 1 || !['text', 'csv', 'json'].includes(o.format)) {
        process.stderr.write(`${client}: --url, --conns >= 1, --queries >= 1 and ` +
            `--format text|csv|json\n${usage(client, pipelines)}`);
        process.exit(2);
    }
    if (o.inflight === 0) o.inflight = o.conns;
    if (!pipelines && o.inflight !== o.conns) {
        process.stderr.write(`${client}: one query per connection: ${o.conns} in flight, ` +
            `not ${o.inflight}\n`);
        o.inflight = o.conns;
    }
    if (o.warmup < 0) o.warmup = Math.min(Math.floor(o.queries / WARMUP_SHARE), WARMUP_MAX);
    o.depth = Math.ceil(o.inflight / o.conns);
    return o;
}

function quantile(sorted, q) {
    if (!sorted.length) return 0;
    return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1];
}

function report(o, client, backend, ph) {
    const lat = ph.lat.subarray(0, ph.nlat).sort();
    const n = ph.done;
    const cpu = ph.cpu;
    const user = cpu.user / 1e6;
    const sys = cpu.system / 1e6;
    let sum = 0;
    for (let i = 0; i < lat.length; i++) sum += lat[i];
    const m = {
        label: o.label, client, backend, workload: 'point',
        conns: o.conns, inflight: o.inflight, depth: o.depth,
        queries: n, errors: ph.errors, rows: n - ph.errors,
        seconds: ph.secs, qps: ph.secs > 0 ? n / ph.secs : 0,
        cpu_us_per_query: n ? (cpu.user + cpu.system) / n : 0,
        user_s: user, sys_s: sys,
        lat_mean_us: lat.length ? sum / lat.length : 0,
        lat_p50_us: quantile(lat, 0.5), lat_p90_us: quantile(lat, 0.9),
        lat_p99_us: quantile(lat, 0.99), lat_p999_us: quantile(lat, 0.999),
        lat_max_us: lat.length ? lat[lat.length - 1] : 0,
        peak_rss_kb: process.resourceUsage().maxRSS,
        bytes_per_queued: -1, rss_bytes_per_queued: -1, allocs_per_query: -1,
    };
    const f = (x, d) => x.toFixed(d);
    const csvLine = [m.label, client, backend, m.workload, m.conns, m.inflight, m.depth,
        m.queries, m.errors, m.rows, f(m.seconds, 4), f(m.qps, 1), f(m.cpu_us_per_query, 3),
        f(user, 4), f(sys, 4), f(m.lat_mean_us, 2), f(m.lat_p50_us, 2), f(m.lat_p90_us, 2),
        f(m.lat_p99_us, 2), f(m.lat_p999_us, 2), f(m.lat_max_us, 2), m.peak_rss_kb,
        '-1.0', '-1.0', '-1.000'].join(',') + '\n';
    const rounded = { ...m }; // the decimals of evdb-bench's JSON
    for (const [key, digits] of [['seconds', 4], ['qps', 1], ['cpu_us_per_query', 3],
        ['user_s', 4], ['sys_s', 4], ['lat_mean_us', 2], ['lat_p50_us', 2], ['lat_p90_us', 2],
        ['lat_p99_us', 2], ['lat_p999_us', 2], ['lat_max_us', 2]])
        rounded[key] = Number(m[key].toFixed(digits));
    const jsonLine = JSON.stringify(rounded) + '\n';
    if (o.format === 'csv') {
        process.stdout.write(CSV_HEADER + csvLine);
    } else if (o.format === 'json') {
        process.stdout.write(jsonLine);
    } else {
        process.stdout.write(
            `${m.label}${m.label ? ': ' : ''}${client} ${backend} point: ${o.conns} conns, ` +
            `${o.inflight} in flight (depth ${o.depth})\n` +
            `  queries     ${n} in ${f(m.seconds, 3)} s (${m.errors} errors, ${m.rows} rows checked)\n` +
            `  throughput  ${f(m.qps, 0)} queries/s\n` +
            `  client CPU  ${f(m.cpu_us_per_query, 2)} us/query (user ${f(user, 3)} s, ` +
            `sys ${f(sys, 3)} s)\n` +
            `  latency     mean ${f(m.lat_mean_us, 1)} us, p50 ${f(m.lat_p50_us, 1)}, ` +
            `p90 ${f(m.lat_p90_us, 1)}, p99 ${f(m.lat_p99_us, 1)}, ` +
            `p99.9 ${f(m.lat_p999_us, 1)}, max ${f(m.lat_max_us, 1)}\n` +
            `  memory      peak RSS ${m.peak_rss_kb} KiB\n`);
    }
    if (o.csv) {
        const empty = !fs.existsSync(o.csv) || fs.statSync(o.csv).size === 0;
        fs.appendFileSync(o.csv, (empty ? CSV_HEADER : '') + csvLine);
    }
    if (o.json) fs.appendFileSync(o.json, jsonLine);
    if (o.cdf) {
        const out = ['# latency_us fraction_at_or_below'];
        const step = Math.max(1, Math.floor(lat.length / CDF_POINTS));
        for (let i = step - 1; i < lat.length; i += step)
            out.push(`${f(lat[i], 3)} ${f((i + 1) / lat.length, 7)}`);
        if (lat.length && (lat.length - 1) % step !== step - 1)
            out.push(`${f(lat[lat.length - 1], 3)} 1.0000000`);
        fs.writeFileSync(o.cdf, out.join('\n') + '\n');
    }
    return ph.errors || n === 0 ? 1 : 0;
}

// One phase: `inflight` workers, each on conns[i % conns.length], take ids
// until the phase's count is used up.
async function phase(client, conns, point, ids, start, count, inflight, measure) {
    const ph = {
        next: start, end: start + count, done: 0, errors: 0, firstError: null,
        lat: new Float64Array(measure ? count : 0), nlat: 0, secs: 0, cpu: null,
    };
    const fail = (msg) => {
        ph.errors++;
        if (ph.firstError === null) {
            ph.firstError = msg;
            process.stderr.write(`${client}: first error: ${msg}\n`);
        }
    };
    const worker = async (conn) => {
        while (ph.next < ph.end) {
            const id = ids[ph.next++];
            const t0 = performance.now();
            let row;
            try {
                row = await point(conn, id);
            } catch (e) { // the connection is gone or the query failed
                ph.done++;
                fail(String(e && e.message ? e.message : e));
                return;
            }
            const t1 = performance.now();
            ph.done++;
            if (!rowOk(row, id)) fail(`point select of id ${id}: wrong row ${JSON.stringify(row)}`);
            if (measure) ph.lat[ph.nlat++] = (t1 - t0) * 1000;
        }
    };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const workers = [];
    for (let i = 0; i < inflight; i++) workers.push(worker(conns[i % conns.length]));
    await Promise.all(workers);
    ph.secs = (performance.now() - t0) / 1000;
    ph.cpu = process.cpuUsage(cpu0);
    return ph;
}

// Run the workload and exit: c.open(url, o) -> an array of connections
// (one shared client object for a pool that spreads the queries itself),
// c.point(conn, id) -> the row ({name, price}) or undefined,
// c.close(conns). c.pipelines: the client may have several queries in
// flight on one connection.
async function run(client, backend, c) {
    const o = options(client, !!c.pipelines);
    let conns = null;
    let rc = 1;
    try {
        conns = await c.open(o.url, o);
        const ids = pointIds(o.seed, o.warmup + o.queries);
        const warm = await phase(client, conns, c.point, ids, 0, o.warmup, o.inflight, false);
        if (warm.errors) {
            rc = report(o, client, backend, warm);
        } else {
            const ph = await phase(client, conns, c.point, ids, o.warmup, o.queries,
                o.inflight, true);
            rc = report(o, client, backend, ph);
        }
    } catch (e) {
        process.stderr.write(`${client}: ${e && e.stack ? e.stack : e}\n`);
        rc = 1;
    }
    if (conns) {
        try {
            await c.close(conns);
        } catch (e) {
            // closing is not measured; a failure here changes nothing
        }
    }
    process.exit(rc);
}

// host, port, user, password, database of a mariadb:// or mysql:// URL.
function myUrl(url) {
    const u = new URL(url);
    return {
        host: u.hostname || '127.0.0.1',
        port: Number(u.port) || 3306,
        user: decodeURIComponent(u.username),
        password: decodeURIComponent(u.password),
        database: decodeURIComponent(u.pathname.replace(/^\//, '')),
    };
}

module.exports = { run, myUrl, pointIds };
