/*
 * evdb-bench: a load generator on evdb's public API.
 *
 *   evdb-bench --url postgresql://... --conns 8 --inflight 64 --queries 100000
 *
 * API styles (--api):
 *   pool  evdb_pool_query with a callback per query (the default)
 *   conn  evdb_conn_query on `conns` connections opened with evdb_conn_open,
 *         the in-flight queries spread round-robin over them
 *   task  one task per query in flight (include/evdb/task.h), each looping
 *         over evdb_pool_query + evdb_await
 *   batch evdb_pool_batch: the queries go in explicit batches of --batch
 *         statements (default: the per-connection depth, as large as the
 *         groups the raw pg-pipeline client puts under one Sync), with
 *         --inflight / --batch batches in flight; on PostgreSQL a batch is
 *         one implicit transaction, so this is the yardstick pair of the
 *         raw grouped-Sync client
 *   conn-batch  the same with evdb_conn_batch on `conns` connections
 * Each query's callback (or task) checks every row, records the latency and
 * submits the next query (a closed loop with --inflight queries in flight).
 * A batch's callback checks every statement's rows, records each
 * statement's latency (the batch's: submit to completion) and submits the
 * next batch.
 *
 * --burst (scaling): after the warm-up, submit every measured query at
 * once through the pool, then run the loop until all have completed. The
 * report then carries the bytes evdb holds per queued query (counted by
 * allocator hooks) and the RSS growth per queued query.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>
#if defined(__has_include) && !defined(EVDB_BENCH_NO_TASK)
#if __has_include(<evdb/task.h>)
#include <evdb/task.h>
#define BENCH_HAVE_TASK 1
#endif
#endif

#include "bench.h"

#define OPEN_WAIT_S 30.0 /* the pool's connections must be up by then */
#define OPEN_POLL_S 0.005
#define ACQUIRE_TIMEOUT_S 3600.0

/* ---- counting allocator (--count-allocs, --burst) ---- */

#define HDR 16 /* keeps malloc's 16-byte alignment */

static size_t live_bytes;
static uint64_t nallocs;

static void *cnt_malloc(size_t n)
{
    char *p = malloc(n + HDR);
    if (!p)
        return NULL;
    *(size_t *)p = n;
    live_bytes += n;
    nallocs++;
    return p + HDR;
}

static void *cnt_realloc(void *ptr, size_t n)
{
    if (!ptr)
        return cnt_malloc(n);
    char *h = (char *)ptr - HDR;
    size_t old = *(size_t *)h;
    char *p = realloc(h, n + HDR);
    if (!p)
        return NULL;
    *(size_t *)p = n;
    live_bytes = live_bytes - old + n;
    nallocs++;
    return p + HDR;
}

static void cnt_free(void *ptr)
{
    if (!ptr)
        return;
    char *h = (char *)ptr - HDR;
    live_bytes -= *(size_t *)h;
    free(h);
}

/* ---- the run ---- */

typedef struct ctx ctx;

typedef struct slot {
    ctx *x;
    uint64_t t0;
    bench_query q;
    unsigned conn; /* --api conn: which connection */
} slot;

/* --api batch / conn-batch: one batch in flight. */
typedef struct bslot {
    ctx *x;
    uint64_t t0;
    unsigned n;     /* statements in the batch in flight */
    unsigned conn;  /* conn-batch: which connection */
    bench_query *q; /* o->batch of them */
} bslot;

struct ctx {
    bench b;
    const bench_opts *o;
    struct ev_loop *loop;
    bool use_pool;
    evdb_pool *pool;
    bool use_tasks;
    evdb_conn **conns;
    unsigned nconns;
    slot *slots;
    size_t nslots;
    size_t active; /* slots with a query (or a batch) in flight */
    bslot *bslots; /* batch modes: the slots, instead of slots */
    size_t nbslots;
    evdb_stmt *stmts; /* batch modes: a batch's statements being submitted ... */
    evdb_value *vals; /* ... and their parameters (evdb copies both) */
    const char *sql[BENCH_K_COUNT];
    evdb_query_opts qopts;
    ev_timer tick;
};

static bool check_result(ctx *x, const bench_query *q, const evdb_result *r, uint64_t *rows)
{
    bench *b = &x->b;
    *rows = 0;
    switch (q->kind) {
    case BENCH_K_POINT: {
        size_t len = 0;
        double price;
        const char *name;
        if (evdb_result_nrows(r) != 1 || !(name = evdb_result_text(r, 0, 0, &len)) ||
            !bench_check_name(name, len, q->id) || evdb_result_double(r, 0, 1, &price) ||
            !bench_check_price(price, q->id)) {
            bench_error(b, "point select of id %lld: wrong row", (long long)q->id);
            return false;
        }
        *rows = 1;
        return true;
    }
    case BENCH_K_INSERT:
        if (evdb_result_affected(r) != 1) {
            bench_error(b, "insert: %lld rows", (long long)evdb_result_affected(r));
            return false;
        }
        *rows = 1;
        return true;
    default: {
        size_t n = evdb_result_nrows(r);
        if (n != BENCH_FETCH_ROWS) {
            bench_error(b, "fetch from id %lld: %zu rows", (long long)q->id, n);
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            int64_t id = q->id + (int64_t)i, got;
            size_t len = 0;
            double price;
            const char *name = evdb_result_text(r, i, 1, &len);
            if (evdb_result_int(r, i, 0, &got) || got != id || !name ||
                !bench_check_name(name, len, id) || evdb_result_double(r, i, 2, &price) ||
                !bench_check_price(price, id)) {
                bench_error(b, "fetch: wrong row for id %lld", (long long)id);
                return false;
            }
        }
        *rows = n;
        return true;
    }
    }
}

static void on_done(evdb_future *f, void *arg);

/* The parameters of q into p (room for 2); returns how many. */
static size_t fill_values(const bench_query *q, evdb_value *p)
{
    switch (q->kind) {
    case BENCH_K_POINT:
        p[0] = evdb_int(q->id);
        return 1;
    case BENCH_K_FETCH:
        p[0] = evdb_int(q->id);
        p[1] = evdb_int(q->id + BENCH_FETCH_ROWS);
        return 2;
    default:
        p[0] = evdb_textn(q->name, q->name_len);
        p[1] = evdb_double(q->price);
        return 2;
    }
}

/* Put the slot's query to the pool or its connection; NULL when that
 * failed at once (counted as a failed query). */
static evdb_future *send_query(slot *s, uint64_t now)
{
    ctx *x = s->x;
    evdb_value p[2];
    size_t n = fill_values(&s->q, p);
    s->t0 = now;
    const char *sql = x->sql[s->q.kind];
    evdb_future *f = x->use_pool ? evdb_pool_query(x->pool, sql, p, n, &x->qopts)
                                 : evdb_conn_query(x->conns[s->conn], sql, p, n, &x->qopts);
    if (!f) {
        bench_error(&x->b, "submit: %s", evdb_error_message(evdb_last_error()));
        bench_complete(&x->b, now, now, false, 0);
    }
    return f;
}

/* Submit the slot's next query; false when the phase takes no more (or
 * the submission failed at once, which counts as a failed query). */
static bool submit(slot *s, uint64_t now)
{
    ctx *x = s->x;
    if (!bench_take(&x->b, &s->q, now))
        return false;
    evdb_future *f = send_query(s, now);
    if (!f)
        return false;
    if (evdb_future_on_done(f, on_done, s)) {
        bench_error(&x->b, "submit: %s", evdb_error_message(evdb_last_error()));
        bench_complete(&x->b, now, now, false, 0);
        evdb_future_unref(f);
        return false;
    }
    /* The future keeps itself alive until its callback has run. */
    evdb_future_unref(f);
    return true;
}

/* The slot's query completed with status st. */
static void completed(slot *s, evdb_future *f, int st, uint64_t now)
{
    ctx *x = s->x;
    uint64_t rows = 0;
    bool ok;
    if (st) {
        bench_error(&x->b, "%s: %s", evdb_err_name(st), evdb_error_message(evdb_future_error(f)));
        ok = false;
    } else {
        ok = check_result(x, &s->q, evdb_future_result(f), &rows);
    }
    bench_complete(&x->b, s->t0, now, ok, rows);
}

static void on_done(evdb_future *f, void *arg)
{
    slot *s = arg;
    ctx *x = s->x;
    uint64_t now = bench_now_ns();
    completed(s, f, evdb_future_status(f), now);
    if (!submit(s, now) && --x->active == 0)
        ev_break(x->loop, EVBREAK_ALL);
}

/* ---- batch modes ---- */

static void on_batch_done(evdb_future *f, void *arg);

/* Complete all n statements of the slot's batch as failed. */
static void fail_batch(bslot *s, uint64_t now)
{
    for (unsigned i = 0; i < s->n; i++)
        bench_complete(&s->x->b, s->t0, now, false, 0);
}

/* Submit the slot's next batch: as many queries as the phase still gives,
 * up to o->batch. false when it gives none, or the submission failed at
 * once (its queries then count as failed). */
static bool submit_batch(bslot *s, uint64_t now)
{
    ctx *x = s->x;
    evdb_value *v = x->vals;
    s->n = 0;
    while (s->n < x->o->batch && bench_take(&x->b, &s->q[s->n], now)) {
        const bench_query *q = &s->q[s->n];
        evdb_stmt *st = &x->stmts[s->n];
        st->sql = x->sql[q->kind];
        st->params = v;
        st->nparams = fill_values(q, v);
        v += st->nparams;
        s->n++;
    }
    if (!s->n)
        return false;
    s->t0 = now;
    evdb_future *f = x->use_pool ? evdb_pool_batch(x->pool, x->stmts, s->n, &x->qopts)
                                 : evdb_conn_batch(x->conns[s->conn], x->stmts, s->n, &x->qopts);
    if (!f || evdb_future_on_done(f, on_batch_done, s)) {
        bench_error(&x->b, "submit batch: %s", evdb_error_message(evdb_last_error()));
        fail_batch(s, now);
        evdb_future_unref(f);
        return false;
    }
    evdb_future_unref(f);
    return true;
}

/* A batch completed: one result per statement, chained in order; every
 * statement's rows are checked. A failed batch fails all its statements
 * (all or nothing). */
static void on_batch_done(evdb_future *f, void *arg)
{
    bslot *s = arg;
    ctx *x = s->x;
    uint64_t now = bench_now_ns();
    int st = evdb_future_status(f);
    if (st) {
        bench_error(&x->b, "batch: %s: %s", evdb_err_name(st),
                    evdb_error_message(evdb_future_error(f)));
        fail_batch(s, now);
    } else {
        const evdb_result *r = evdb_future_result(f);
        for (unsigned i = 0; i < s->n; i++) {
            uint64_t rows = 0;
            bool ok = false;
            if (r)
                ok = check_result(x, &s->q[i], r, &rows);
            else
                bench_error(&x->b, "batch of %u: no result for statement %u", s->n, i + 1);
            bench_complete(&x->b, s->t0, now, ok, rows);
            if (r)
                r = evdb_result_next(r);
        }
    }
    if (!submit_batch(s, now) && --x->active == 0)
        ev_break(x->loop, EVBREAK_ALL);
}

#ifdef BENCH_HAVE_TASK
/* --api task: the slot's loop, as straight-line code. */
static void *task_body(void *arg)
{
    slot *s = arg;
    ctx *x = s->x;
    uint64_t now = bench_now_ns();
    while (bench_take(&x->b, &s->q, now)) {
        evdb_future *f = send_query(s, now);
        if (!f)
            break;
        int st = evdb_await(f);
        now = bench_now_ns();
        completed(s, f, st, now);
        evdb_future_unref(f);
    }
    if (--x->active == 0)
        ev_break(x->loop, EVBREAK_ALL);
    return NULL;
}

static bool spawn_task(slot *s)
{
    evdb_future *t = evdb_task_spawn(s->x->loop, task_body, s, NULL);
    if (!t) {
        bench_error(&s->x->b, "task: %s", evdb_error_message(evdb_last_error()));
        return false;
    }
    evdb_future_unref(t);
    return true;
}
#endif

/* Start the slot's work in this phase. */
static bool start_slot(slot *s, uint64_t now)
{
#ifdef BENCH_HAVE_TASK
    if (s->x->use_tasks)
        return s->x->b.submitted < s->x->b.target && spawn_task(s);
#endif
    return submit(s, now);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bench_tick(w->data, bench_now_ns());
}

static void run_loop(ctx *x)
{
    if (!x->active)
        return;
    if (x->o->progress)
        ev_timer_start(x->loop, &x->tick);
    ev_run(x->loop, 0);
    ev_timer_stop(x->loop, &x->tick);
}

/* A closed loop: every slot keeps one query (batch modes: one batch) in
 * flight. */
static void run_phase(ctx *x, bool measure, size_t nslots)
{
    bench_phase_start(&x->b, measure);
    uint64_t a0 = nallocs;
    x->active = 0;
    uint64_t now = bench_now_ns();
    for (size_t i = 0; i < nslots; i++) {
        if (x->bslots ? !submit_batch(&x->bslots[i], now) : !start_slot(&x->slots[i], now))
            break;
        x->active++;
    }
    run_loop(x);
    bench_phase_end(&x->b);
    if (measure && x->o->count_allocs && x->b.done)
        x->b.allocs_per_query = (double)(nallocs - a0) / (double)x->b.done;
}

/* Scaling: every measured query submitted at once, then the loop runs. */
static void run_burst(ctx *x)
{
    bench_phase_start(&x->b, true);
    uint64_t a0 = nallocs;
    size_t live0 = live_bytes;
    long rss0 = bench_current_rss();
    x->active = 0;
    uint64_t now = bench_now_ns();
    for (size_t i = 0; i < x->nslots; i++) {
        if (!submit(&x->slots[i], now))
            break;
        x->active++;
    }
    size_t queued = x->active;
    if (queued) {
        x->b.bytes_per_queued = (double)(live_bytes - live0) / (double)queued;
        long rss1 = bench_current_rss();
        if (rss0 >= 0 && rss1 >= 0)
            x->b.rss_per_queued = (double)(rss1 - rss0) / (double)queued;
    }
    run_loop(x);
    bench_phase_end(&x->b);
    if (x->b.done)
        x->b.allocs_per_query = (double)(nallocs - a0) / (double)x->b.done;
}

static int open_pool(ctx *x)
{
    const bench_opts *o = x->o;
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.min_conns = o->conns;
    po.max_conns = o->conns;
    po.pipeline_depth = o->depth;
    po.acquire_timeout = ACQUIRE_TIMEOUT_S;
    po.stmt_cache_size = o->no_stmt_cache ? EVDB_STMT_CACHE_OFF : 0;
    x->pool = evdb_pool_new(x->loop, o->url, &po);
    if (!x->pool) {
        fprintf(stderr, "evdb-bench: %s\n", evdb_error_message(evdb_last_error()));
        return -1;
    }
    /* Wait until every connection is up, so that the warm-up (or the run,
     * without one) does not measure connects. */
    double waited = 0;
    for (;;) {
        evdb_pool_stats st;
        evdb_pool_stats_get(x->pool, &st);
        if (st.idle + st.busy >= o->conns)
            return 0;
        if (waited > OPEN_WAIT_S || (st.connect_failures && !st.total)) {
            fprintf(stderr, "evdb-bench: the pool has %u of %u connections after %.1f s\n",
                    st.idle + st.busy, o->conns, waited);
            return -1;
        }
        evdb_future *z = evdb_sleep(x->loop, OPEN_POLL_S);
        evdb_future_wait(z);
        evdb_future_unref(z);
        waited += OPEN_POLL_S;
    }
}

static int open_conns(ctx *x)
{
    const bench_opts *o = x->o;
    evdb_conn_opts co;
    memset(&co, 0, sizeof co);
    co.pipeline_depth = o->depth;
    co.stmt_cache_size = o->no_stmt_cache ? EVDB_STMT_CACHE_OFF : 0;
    x->conns = calloc(o->conns, sizeof *x->conns);
    if (!x->conns)
        return -1;
    for (unsigned i = 0; i < o->conns; i++) {
        evdb_future *f = evdb_conn_open(x->loop, o->url, &co);
        int st = f ? evdb_future_wait(f) : evdb_error_code(evdb_last_error());
        if (st) {
            fprintf(stderr, "evdb-bench: connect: %s\n",
                    evdb_error_message(f ? evdb_future_error(f) : evdb_last_error()));
            evdb_future_unref(f);
            return -1;
        }
        x->conns[i] = evdb_future_take_conn(f);
        evdb_future_unref(f);
        x->nconns++;
    }
    return 0;
}

static void close_all(ctx *x)
{
    if (x->pool) {
        evdb_future *f = evdb_pool_close(x->pool);
        evdb_future_wait(f);
        evdb_future_unref(f);
    }
    for (unsigned i = 0; i < x->nconns; i++) {
        evdb_future *f = evdb_conn_close(x->conns[i]);
        evdb_future_wait(f);
        evdb_future_unref(f);
    }
    free(x->conns);
}

/* ---- slowmix: quick point selects beside long statements ----
 *
 * --workload slowmix: how much a long-running statement holds up the quick
 * queries of the same pool (pool routing, docs/pool.md). Two shapes:
 *   low   one request at a time on a quiet pool (max --conns, grown to one
 *         connection): a fresh pool per round, then point selects one at a
 *         time, first alone (clean), then beside one slow statement that is
 *         restarted whenever it ends;
 *   load  --conns connections (all open), --inflight point selects in
 *         flight, first alone (clean), then beside two slow statements
 *         running all the time.
 * The slow statement is pg_sleep(S) / SLEEP(S), S = --slow-seconds. Only the
 * quick queries' latencies are reported (p50/p99/max), the clean phase's
 * beside them. Own options, parsed here: --url, --conns [8], --inflight
 * [30], --slowmix low|load|both [both], --slow-seconds [1], --duration
 * seconds per phase [5], --rounds (low) [3], --json FILE, --label TEXT. */

typedef struct smix smix;

typedef struct smix_slot {
    smix *m;
    uint64_t t0;
    int64_t id;
} smix_slot;

struct smix {
    struct ev_loop *loop;
    evdb_pool *pool;
    bench_backend be;
    const char *fast_sql;
    char slow_sql[64];
    bench_hist *h; /* the phase's histogram */
    uint64_t rng;
    uint64_t stop_ns;
    bool stop_slow;
    unsigned fast_active, slow_active;
    uint64_t done, errors, slow_done;
    char first_error[256];
};

static void smix_error(smix *m, const char *what, evdb_future *f)
{
    m->errors++;
    if (!m->first_error[0])
        snprintf(m->first_error, sizeof m->first_error, "%s: %s", what,
                 f ? evdb_error_message(evdb_future_error(f))
                   : evdb_error_message(evdb_last_error()));
}

static void smix_maybe_break(smix *m)
{
    if (!m->fast_active && !m->slow_active)
        ev_break(m->loop, EVBREAK_ALL);
}

static void smix_fast_done(evdb_future *f, void *arg);

static bool smix_fast_submit(smix_slot *s, uint64_t now)
{
    smix *m = s->m;
    if (now >= m->stop_ns)
        return false;
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    s->id = (int64_t)(m->rng % BENCH_ITEMS) + 1;
    s->t0 = now;
    evdb_value v = evdb_int(s->id);
    evdb_future *f = evdb_pool_query(m->pool, m->fast_sql, &v, 1, NULL);
    if (!f || evdb_future_on_done(f, smix_fast_done, s)) {
        smix_error(m, "point select", NULL);
        evdb_future_unref(f);
        return false;
    }
    evdb_future_unref(f);
    return true;
}

static void smix_fast_done(evdb_future *f, void *arg)
{
    smix_slot *s = arg;
    smix *m = s->m;
    uint64_t now = bench_now_ns();
    const evdb_result *r = evdb_future_status(f) ? NULL : evdb_future_result(f);
    size_t len = 0;
    const char *name = r && evdb_result_nrows(r) == 1 ? evdb_result_text(r, 0, 0, &len) : NULL;
    if (!name || !bench_check_name(name, len, s->id)) {
        smix_error(m, "point select", evdb_future_status(f) ? f : NULL);
    } else {
        m->done++;
        bench_hist_record(m->h, now - s->t0);
    }
    if (!smix_fast_submit(s, now)) {
        m->fast_active--;
        /* The quick queries are over: the slow ones end with theirs. */
        m->stop_slow = true;
        smix_maybe_break(m);
    }
}

static void smix_slow_done(evdb_future *f, void *arg);

static bool smix_slow_submit(smix *m)
{
    evdb_future *f = evdb_pool_query(m->pool, m->slow_sql, NULL, 0, NULL);
    if (!f || evdb_future_on_done(f, smix_slow_done, m)) {
        smix_error(m, "slow statement", NULL);
        evdb_future_unref(f);
        return false;
    }
    evdb_future_unref(f);
    return true;
}

static void smix_slow_done(evdb_future *f, void *arg)
{
    smix *m = arg;
    if (evdb_future_status(f))
        smix_error(m, "slow statement", f);
    else
        m->slow_done++;
    if (m->stop_slow || !smix_slow_submit(m)) {
        m->slow_active--;
        smix_maybe_break(m);
    }
}

/* One phase: nslow slow statements kept running (submitted first) and
 * nfast quick queries in flight for seconds, their latencies into h; then
 * waits for the slow ones to end. */
static void smix_phase(smix *m, smix_slot *slots, unsigned nfast, unsigned nslow, double seconds,
                       bench_hist *h)
{
    m->h = h;
    m->stop_slow = false;
    uint64_t now = bench_now_ns();
    m->stop_ns = now + (uint64_t)(seconds * 1e9);
    for (unsigned i = 0; i < nslow; i++)
        if (smix_slow_submit(m))
            m->slow_active++;
    for (unsigned i = 0; i < nfast; i++) {
        slots[i].m = m;
        if (smix_fast_submit(&slots[i], now))
            m->fast_active++;
    }
    if (!m->fast_active)
        m->stop_slow = true;
    if (m->fast_active || m->slow_active)
        ev_run(m->loop, 0);
}

static evdb_pool *smix_pool(smix *m, const char *url, unsigned conns, unsigned min)
{
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.max_conns = conns;
    po.min_conns = min;
    po.acquire_timeout = ACQUIRE_TIMEOUT_S;
    m->pool = evdb_pool_new(m->loop, url, &po);
    if (!m->pool) {
        fprintf(stderr, "evdb-bench: %s\n", evdb_error_message(evdb_last_error()));
        return NULL;
    }
    for (double waited = 0; min; waited += OPEN_POLL_S) {
        evdb_pool_stats st;
        evdb_pool_stats_get(m->pool, &st);
        if (st.idle + st.busy >= min)
            break;
        if (waited > OPEN_WAIT_S) {
            fprintf(stderr, "evdb-bench: the pool has %u of %u connections\n", st.idle + st.busy,
                    min);
            return NULL;
        }
        evdb_future *z = evdb_sleep(m->loop, OPEN_POLL_S);
        evdb_future_wait(z);
        evdb_future_unref(z);
    }
    return m->pool;
}

static uint64_t smix_close_pool(smix *m)
{
    evdb_pool_stats st;
    evdb_pool_stats_get(m->pool, &st);
    evdb_future *f = evdb_pool_close(m->pool);
    evdb_future_wait(f);
    evdb_future_unref(f);
    m->pool = NULL;
    return st.connects;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* The slowest of three connection set-ups (evdb_conn_open to ready): the
 * low-traffic target allows a quick query one of them. 0 on failure. */
static uint64_t smix_connect_ns(struct ev_loop *loop, const char *url)
{
    uint64_t worst = 0;
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = bench_now_ns();
        evdb_future *f = evdb_conn_open(loop, url, NULL);
        if (!f || evdb_future_wait(f)) {
            evdb_future_unref(f);
            return 0;
        }
        uint64_t t = bench_now_ns() - t0;
        worst = t > worst ? t : worst;
        evdb_future *c = evdb_conn_close(evdb_future_take_conn(f));
        evdb_future_wait(c);
        evdb_future_unref(c);
        evdb_future_unref(f);
    }
    return worst;
}

/* The report: one text line, and a JSON line when asked. */
static void smix_report(const char *shape, const char *backend, const char *label, const char *json,
                        unsigned conns, unsigned inflight, unsigned nslow, double slow_s,
                        const bench_hist *clean, double clean_s, const bench_hist *mix,
                        double mix_s, uint64_t connects, uint64_t connect_ns, smix *m)
{
    /* The targets (docs/pool.md, bench/README.md): at low traffic the
     * worst quick query beside a slow one within one connection set-up of
     * the clean worst; under load its p99 at most 3x the clean p99. */
    char verdict[128];
    uint64_t c99 = bench_hist_quantile(clean, 0.99), m99 = bench_hist_quantile(mix, 0.99);
    if (connect_ns)
        snprintf(verdict, sizeof verdict, "target max <= clean max + one connect (%.3f ms): %s",
                 ms(connect_ns), mix->max <= clean->max + connect_ns ? "met" : "MISSED");
    else
        snprintf(verdict, sizeof verdict, "target p99 <= 3x clean: %s",
                 m99 <= 3 * c99 ? "met" : "MISSED");
    printf("slowmix %-4s %-8s conns %u, %u quick in flight, %u x %gs slow:"
           " clean p50 %.3f p99 %.3f max %.3f ms (%.0f q/s) | beside slow p50 %.3f p99 %.3f"
           " max %.3f ms (%.0f q/s), p99 %.2fx clean, %llu connects, %llu errors; %s\n",
           shape, backend, conns, inflight, nslow, slow_s, ms(bench_hist_quantile(clean, 0.5)),
           ms(bench_hist_quantile(clean, 0.99)), ms(clean->max), (double)clean->n / clean_s,
           ms(bench_hist_quantile(mix, 0.5)), ms(bench_hist_quantile(mix, 0.99)), ms(mix->max),
           (double)mix->n / mix_s, c99 ? (double)m99 / (double)c99 : 0,
           (unsigned long long)connects, (unsigned long long)m->errors, verdict);
    if (m->first_error[0])
        printf("  first error: %s\n", m->first_error);
    if (!json)
        return;
    FILE *out = fopen(json, "a");
    if (!out)
        return;
    fprintf(out,
            "{\"label\":\"%s\",\"client\":\"evdb-pool\",\"backend\":\"%s\",\"workload\":"
            "\"slowmix-%s\",\"conns\":%u,\"inflight\":%u,\"slow\":%u,\"slow_seconds\":%g,"
            "\"clean_p50_us\":%.1f,\"clean_p99_us\":%.1f,\"clean_max_us\":%.1f,"
            "\"clean_qps\":%.0f,\"mix_p50_us\":%.1f,\"mix_p99_us\":%.1f,\"mix_max_us\":%.1f,"
            "\"mix_qps\":%.0f,\"connects\":%llu,\"connect_us\":%.1f,\"errors\":%llu}\n",
            label, backend, shape, conns, inflight, nslow, slow_s,
            bench_hist_quantile(clean, 0.5) / 1e3, bench_hist_quantile(clean, 0.99) / 1e3,
            clean->max / 1e3, (double)clean->n / clean_s, bench_hist_quantile(mix, 0.5) / 1e3,
            bench_hist_quantile(mix, 0.99) / 1e3, mix->max / 1e3, (double)mix->n / mix_s,
            (unsigned long long)connects, connect_ns / 1e3, (unsigned long long)m->errors);
    fclose(out);
}

static int slowmix_main(int argc, char **argv)
{
    const char *url = NULL, *shape = "both", *json = NULL, *label = "";
    unsigned conns = 8, inflight = 30, rounds = 3;
    double slow_s = 1, duration = 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--workload") && v) {
            i++;
        } else if (!strcmp(a, "--url") && v) {
            url = argv[++i];
        } else if (!strcmp(a, "--conns") && v) {
            conns = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(a, "--inflight") && v) {
            inflight = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(a, "--rounds") && v) {
            rounds = (unsigned)atoi(argv[++i]);
        } else if (!strcmp(a, "--slowmix") && v) {
            shape = argv[++i];
        } else if (!strcmp(a, "--slow-seconds") && v) {
            slow_s = atof(argv[++i]);
        } else if (!strcmp(a, "--duration") && v) {
            duration = atof(argv[++i]);
        } else if (!strcmp(a, "--json") && v) {
            json = argv[++i];
        } else if (!strcmp(a, "--label") && v) {
            label = argv[++i];
        } else if (!strcmp(a, "--no-progress") || !strcmp(a, "--progress")) {
            continue;
        } else {
            fprintf(stderr, "evdb-bench --workload slowmix: unknown or incomplete option '%s'\n",
                    a);
            return 2;
        }
    }
    bench_backend be;
    if (!url || !bench_backend_of(url, &be) || !conns || !inflight || !rounds || slow_s <= 0 ||
        duration <= 0) {
        fprintf(stderr, "evdb-bench --workload slowmix: --url (postgresql:// or mariadb://),"
                        " and positive --conns, --inflight, --rounds, --slow-seconds,"
                        " --duration\n");
        return 2;
    }
    bool low = !strcmp(shape, "low") || !strcmp(shape, "both");
    bool load = !strcmp(shape, "load") || !strcmp(shape, "both");
    if (!low && !load) {
        fprintf(stderr, "evdb-bench: --slowmix low|load|both\n");
        return 2;
    }
    const char *backend = be == BENCH_PG ? "postgres" : "mariadb";
    smix m;
    memset(&m, 0, sizeof m);
    m.loop = ev_loop_new(EVFLAG_AUTO);
    m.be = be;
    m.fast_sql = bench_sql(be, BENCH_K_POINT);
    m.rng = 0x9e3779b97f4a7c15ull;
    snprintf(m.slow_sql, sizeof m.slow_sql,
             be == BENCH_PG ? "SELECT pg_sleep(%g)" : "SELECT SLEEP(%g)", slow_s);
    bench_hist clean, mix;
    smix_slot *slots = calloc(inflight, sizeof *slots);
    if (!m.loop || !slots || bench_hist_init(&clean) || bench_hist_init(&mix)) {
        fprintf(stderr, "evdb-bench: out of memory\n");
        return 1;
    }
    int rc = 0;
    if (low) {
        /* A fresh quiet pool per round, grown to one connection by a
         * short warm-up; each round's phases last about one slow
         * statement. */
        bench_hist warm;
        bench_hist_init(&warm);
        uint64_t connects = 0, connect_ns = smix_connect_ns(m.loop, url);
        double phase = duration / rounds > slow_s ? duration / rounds : slow_s;
        for (unsigned r = 0; r < rounds && !rc; r++) {
            if (!smix_pool(&m, url, conns, 0)) {
                rc = 1;
                break;
            }
            smix_phase(&m, slots, 1, 0, 0.2, &warm);
            smix_phase(&m, slots, 1, 0, phase, &clean);
            uint64_t before = 0;
            evdb_pool_stats st;
            evdb_pool_stats_get(m.pool, &st);
            before = st.connects;
            smix_phase(&m, slots, 1, 1, phase, &mix);
            connects += smix_close_pool(&m) - before;
        }
        bench_hist_free(&warm);
        if (!rc)
            smix_report("low", backend, label, json, conns, 1, 1, slow_s, &clean, phase * rounds,
                        &mix, phase * rounds, connects, connect_ns, &m);
        rc = rc || m.errors;
    }
    if (load && !rc) {
        bench_hist_reset(&clean);
        bench_hist_reset(&mix);
        bench_hist warm;
        bench_hist_init(&warm);
        if (!smix_pool(&m, url, conns, conns)) {
            rc = 1;
        } else {
            smix_phase(&m, slots, inflight, 0, duration / 5 < 1 ? duration / 5 : 1, &warm);
            smix_phase(&m, slots, inflight, 0, duration, &clean);
            smix_phase(&m, slots, inflight, 2, duration, &mix);
            uint64_t connects = smix_close_pool(&m);
            smix_report("load", backend, label, json, conns, inflight, 2, slow_s, &clean, duration,
                        &mix, duration, connects, 0, &m);
            rc = m.errors != 0;
        }
        bench_hist_free(&warm);
    }
    if (m.pool)
        smix_close_pool(&m);
    bench_hist_free(&clean);
    bench_hist_free(&mix);
    free(slots);
    ev_loop_destroy(m.loop);
    return rc;
}

int main(int argc, char **argv)
{
    static const char extra[] =
        "  --api A             pool (evdb_pool_query) | conn (evdb_conn_query per connection)"
        " |\n"
        "                      task (a task per query in flight, evdb_await) |\n"
        "                      batch (evdb_pool_batch, --batch statements each) |\n"
        "                      conn-batch (evdb_conn_batch per connection) [pool]\n"
        "  --workload slowmix  quick point selects beside long statements (own options:\n"
        "                      --slowmix low|load|both, --slow-seconds S, --rounds N;\n"
        "                      see the top of its section in evdb_bench.c)\n";
    /* slowmix runs apart from the closed-loop workloads (own options). */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--workload") && !strcmp(argv[i + 1], "slowmix"))
            return slowmix_main(argc, argv);
    bench_opts o;
    bench_parse_args(&o, argc, argv, "evdb-bench", extra);
    bench_backend be;
    if (!bench_backend_of(o.url, &be)) {
        fprintf(stderr, "evdb-bench: unknown URL scheme\n");
        return 2;
    }
    const char *client;
    bool use_pool, batched = false;
    if (!strcmp(o.api, "pool")) {
        client = "evdb-pool";
        use_pool = true;
    } else if (!strcmp(o.api, "conn")) {
        client = "evdb-conn";
        use_pool = false;
    } else if (!strcmp(o.api, "batch")) {
        client = "evdb-batch";
        use_pool = true;
        batched = true;
    } else if (!strcmp(o.api, "conn-batch")) {
        client = "evdb-conn-batch";
        use_pool = false;
        batched = true;
    } else if (!strcmp(o.api, "task")) {
#ifdef BENCH_HAVE_TASK
        client = "evdb-task";
        use_pool = true;
#else
        fprintf(stderr, "evdb-bench: --api task is not built (no include/evdb/task.h)\n");
        return 2;
#endif
    } else {
        fprintf(stderr, "evdb-bench: unknown --api '%s'\n", o.api);
        return 2;
    }
    if (o.burst && strcmp(o.api, "pool")) {
        fprintf(stderr, "evdb-bench: --burst goes through the pool (--api pool)\n");
        return 2;
    }
    if (o.burst && o.duration > 0) {
        fprintf(stderr, "evdb-bench: --burst submits --queries N at once (no --duration)\n");
        return 2;
    }
    if (batched && o.batch > EVDB_BATCH_MAX) {
        fprintf(stderr, "evdb-bench: --batch is at most %u\n", EVDB_BATCH_MAX);
        return 2;
    }
    if (o.burst)
        o.count_allocs = true;
    if (o.count_allocs)
        evdb_set_allocators(cnt_malloc, cnt_realloc, cnt_free);

    ctx x;
    memset(&x, 0, sizeof x);
    x.o = &o;
    x.use_pool = use_pool;
    x.use_tasks = !strcmp(o.api, "task");
    bench_init(&x.b, &o, be, client);
    for (int k = 0; k < BENCH_K_COUNT; k++)
        x.sql[k] = bench_sql(be, (bench_kind)k);
    x.loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer_init(&x.tick, on_tick, 0.25, 0.25);
    x.tick.data = &x.b;

    /* Closed-loop slots; a burst needs one per measured query. */
    size_t closed = o.burst ? (size_t)o.conns * o.depth : o.inflight;
    x.nslots = o.burst ? (size_t)o.queries : closed;
    if (x.nslots < closed)
        x.nslots = closed;
    x.slots = calloc(x.nslots, sizeof *x.slots);
    if (!x.slots) {
        fprintf(stderr, "evdb-bench: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < x.nslots; i++) {
        x.slots[i].x = &x;
        x.slots[i].conn = (unsigned)(i % o.conns);
    }

    int rc = 1;
    /* Batch modes: inflight / batch batches in flight (at least one), each
     * of o.batch statements; the batches go to the connections
     * round-robin with conn-batch. */
    if (batched) {
        x.b.batched = true;
        x.nbslots = o.inflight / o.batch ? o.inflight / o.batch : 1;
        closed = x.nbslots;
        x.bslots = calloc(x.nbslots, sizeof *x.bslots);
        x.stmts = calloc(o.batch, sizeof *x.stmts);
        x.vals = calloc((size_t)o.batch * 2, sizeof *x.vals);
        if (!x.bslots || !x.stmts || !x.vals) {
            fprintf(stderr, "evdb-bench: out of memory\n");
            goto out;
        }
        for (size_t i = 0; i < x.nbslots; i++) {
            x.bslots[i].x = &x;
            x.bslots[i].conn = (unsigned)(i % o.conns);
            x.bslots[i].q = calloc(o.batch, sizeof *x.bslots[i].q);
            if (!x.bslots[i].q) {
                fprintf(stderr, "evdb-bench: out of memory\n");
                goto out;
            }
        }
    }
    if (use_pool ? open_pool(&x) : open_conns(&x))
        goto out;
    run_phase(&x, false, closed);
    if (o.burst) {
        /* Touch the slot array now, so its pages do not count as evdb's. */
        memset(x.slots + closed, 0, (x.nslots - closed) * sizeof *x.slots);
        for (size_t i = closed; i < x.nslots; i++)
            x.slots[i].x = &x;
        run_burst(&x);
    } else {
        run_phase(&x, true, closed);
    }
    rc = bench_report(&x.b);
out:
    close_all(&x);
    for (size_t i = 0; i < x.nbslots && x.bslots; i++)
        free(x.bslots[i].q);
    free(x.bslots);
    free(x.stmts);
    free(x.vals);
    free(x.slots);
    bench_free(&x.b);
    ev_loop_destroy(x.loop);
    return rc;
}
