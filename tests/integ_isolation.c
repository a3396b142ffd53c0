/*
 * Query isolation against the real servers (scripts/testdb), written as a
 * hostile user would: every finding of issue 14 as a test, mostly through
 * the pool with default options (pipelining on).
 *
 * PostgreSQL: one Sync per query, so each pooled query is its own implicit
 * transaction: a set_config(..., true) / SET LOCAL never reaches another
 * request's query; independent single-row UPDATEs never deadlock; a failing
 * query between two writes leaves the writes in order and the callbacks in
 * submission order; deferred constraints fail their own query (23505 /
 * 23503) and the connection serves on; a timed-out query behind another is
 * cancelled on the server (pg_stat_activity), also inside a transaction
 * block, which it aborts. evdb_error_outcome_unknown tells queued from
 * running timeouts; BEGIN through evdb_pool_query is refused and a pooled
 * string that ends inside a transaction is rolled back; explicit batches
 * are all or nothing. MariaDB: ordered writes, pooled START TRANSACTION,
 * batches. Both: a known outcome (evdb_error_outcome_unknown false) means
 * the statement never took effect. And the smaller findings: pool stats
 * count every timeout, a stale borrow handle never acts on the next
 * borrower, a query refused as it is handed to its connection never
 * stalls the pool's queue.
 *
 * Every test counts its callbacks and checks each ran exactly once; the
 * loop's watchdog (testutil) fails a test that hangs. Tables are named per
 * test (iso_*) and dropped at the end.
 */
#include <check.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 60.0
#define TEST_TIMEOUT_S 90

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
}

static void teardown(void)
{
    t_loop_free(L);
}

/* ------------------------------------------------------------------ helpers */

static evdb_pool *pool_with(const char *url, unsigned max_conns, unsigned depth,
                            double acquire_timeout)
{
    evdb_pool_opts o;
    memset(&o, 0, sizeof o);
    o.max_conns = max_conns;
    o.pipeline_depth = depth;
    o.acquire_timeout = acquire_timeout;
    return t_pool_new(L, url, &o);
}

static evdb_query_opts with_timeout(double timeout)
{
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    o.timeout = timeout;
    return o;
}

/* Run the loop until *done reaches *want (the watchdog ends a hang). */
static void run_until(const size_t *done, const size_t *want)
{
    while (*done < *want)
        t_run_for(L, 0.01);
}

/* The completion audit: callbacks counted per future, every one exactly
 * once, checked after the loop has run on a little. */
typedef struct audit {
    size_t submitted, done;
} audit;

static void audit_close(audit *a)
{
    run_until(&a->done, &a->submitted);
    t_run_for(L, 0.02);
    ck_assert_uint_eq(a->done, a->submitted);
}

static void on_count(evdb_future *f, void *arg)
{
    (void)f;
    ((audit *)arg)->done++;
}

static void watch(audit *a, evdb_future *f)
{
    a->submitted++;
    ck_assert_int_eq(evdb_future_on_done(f, on_count, a), 0);
}

/* The text of a cell, "NULL" for SQL NULL. */
static const char *cell(const evdb_result *r, size_t row, size_t col)
{
    if (!r || evdb_result_isnull(r, row, col))
        return "NULL";
    const char *s = evdb_result_text(r, row, col, NULL);
    return s ? s : "NULL";
}

/* The two servers, for the tests that run on both (_i: 0 PostgreSQL, 1
 * MariaDB). */
typedef struct backend {
    const char *name;
    const char *(*url)(void);
    const char *fail_sql; /* fails at run time: fail_state */
    const char *fail_state;
    const char *fail_mid_sql; /* fails partway through its result rows (one
                                 parameter, 2: the prepared-statement path) */
    const char *fail_mid_state;
    const char *engine;      /* appended to CREATE TABLE */
    const char *update_text; /* UPDATE <table> SET v = <param 1> WHERE id = 1 */
    const char *insert_int;  /* INSERT INTO <table> VALUES (<param 1>) */
} backend;

static const backend backends[2] = {
    {"postgres", t_pg_url, "SELECT 1/0", "22012",
     "SELECT g, 1 / (g - $1::int - 1) FROM generate_series(1, 5) g", "22012", "",
     "UPDATE %s SET v = $1 WHERE id = 1", "INSERT INTO %s VALUES ($1)"},
    {"mariadb", t_my_url, "SELECT * FROM iso_no_such_table", "42S02",
     "SELECT seq, (SELECT 1 UNION SELECT seq) FROM seq_1_to_5 WHERE seq >= ? - 1", "21000",
     " ENGINE=InnoDB", "UPDATE %s SET v = ? WHERE id = 1", "INSERT INTO %s VALUES (?)"},
};

/* ------------------------------------------ 1. tenant settings never leak */

enum { TENANT_REQUESTS = 600, TENANT_INFLIGHT = 48 };

typedef struct tenant_run {
    evdb_pool *p;
    size_t started, submitted, done, reads;
    size_t leaks, set_errors, read_errors;
    char example[200];
} tenant_run;

typedef struct tenant_req {
    tenant_run *run;
    unsigned id;
    int mode; /* 0: read submitted from the set's callback; 1: right behind
                     the set; 2: set and read in one string of two statements
                     (same transaction: sees its own tenant), then a separate
                     read from its callback */
    int refs;
    char tenant[32];
} tenant_req;

static void tenant_start(tenant_run *run);

static void tenant_drop(tenant_req *q)
{
    tenant_run *run = q->run;
    if (--q->refs == 0) {
        free(q);
        tenant_start(run);
    }
}

static void on_tenant_read(evdb_future *f, void *arg)
{
    tenant_req *q = arg;
    tenant_run *run = q->run;
    run->done++;
    run->reads++;
    if (evdb_future_status(f) != 0) {
        run->read_errors++;
        if (!run->example[0])
            snprintf(run->example, sizeof run->example, "read of request %u failed: %s", q->id,
                     evdb_error_message(evdb_future_error(f)));
    } else {
        const char *v = cell(evdb_future_result(f), 0, 0);
        if (strcmp(v, "NULL") != 0 && v[0]) {
            run->leaks++;
            if (!run->example[0])
                snprintf(run->example, sizeof run->example,
                         "request %u (tenant %s) read app.tenant = '%s'", q->id, q->tenant, v);
        }
    }
    evdb_future_unref(f);
    tenant_drop(q);
}

static void tenant_read(tenant_req *q)
{
    evdb_future *f =
        t_pool_submit(q->run->p, "SELECT current_setting('app.tenant', true)", NULL, 0, 0, 0);
    q->run->submitted++;
    q->refs++;
    ck_assert_int_eq(evdb_future_on_done(f, on_tenant_read, q), 0);
}

static void on_tenant_set(evdb_future *f, void *arg)
{
    tenant_req *q = arg;
    tenant_run *run = q->run;
    run->done++;
    const evdb_result *r = evdb_future_result(f);
    bool right = evdb_future_status(f) == 0 && strcmp(cell(r, 0, 0), q->tenant) == 0;
    if (right && q->mode == 2) /* the string's own read sees its own tenant */
        right = strcmp(cell(evdb_result_next(r), 0, 0), q->tenant) == 0;
    if (!right) {
        run->set_errors++;
        if (!run->example[0])
            snprintf(run->example, sizeof run->example, "set_config of request %u: %s / %s", q->id,
                     evdb_error_message(evdb_future_error(f)), cell(evdb_future_result(f), 0, 0));
    }
    evdb_future_unref(f);
    if (q->mode != 1)
        tenant_read(q);
    tenant_drop(q);
}

static void tenant_start(tenant_run *run)
{
    if (run->started == TENANT_REQUESTS)
        return;
    tenant_req *q = calloc(1, sizeof *q);
    ck_assert_ptr_nonnull(q);
    q->run = run;
    q->id = (unsigned)run->started++;
    q->mode = (int)(q->id % 3);
    q->refs = 1;
    snprintf(q->tenant, sizeof q->tenant, "tenant-%u", q->id);
    evdb_value v = evdb_text(q->tenant);
    evdb_future *f;
    if (q->mode == 2) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT set_config('app.tenant', '%s', true); "
                 "SELECT current_setting('app.tenant', true)",
                 q->tenant);
        f = t_pool_submit(run->p, sql, NULL, 0, 0, 0);
    } else {
        f = t_pool_submit(run->p, "SELECT set_config('app.tenant', $1, true)", &v, 1, 0, 0);
    }
    run->submitted++;
    q->refs++;
    ck_assert_int_eq(evdb_future_on_done(f, on_tenant_set, q), 0);
    if (q->mode == 1)
        tenant_read(q);
    tenant_drop(q);
}

/* Requests that each set a transaction-local tenant and then read it back
 * in a separate query: a separate query is a separate implicit
 * transaction, so the read sees no tenant at all ('' or NULL), never its
 * own and never another request's. A third of the reads go out right
 * behind their set_config, the others from its callback, among other
 * requests' sets; a third of the sets are strings of two statements that
 * read their own tenant back inside their own transaction. */
START_TEST(pg_tenant_setting_never_leaks_between_pooled_queries)
{
    evdb_pool *p = pool_with(t_pg_url(), 4, 0, 0);
    tenant_run run;
    memset(&run, 0, sizeof run);
    run.p = p;
    for (int i = 0; i < TENANT_INFLIGHT; i++)
        tenant_start(&run);
    while (run.started < TENANT_REQUESTS || run.done < run.submitted)
        t_run_for(L, 0.01);
    t_run_for(L, 0.02);
    ck_assert_uint_eq(run.submitted, 2 * TENANT_REQUESTS);
    ck_assert_uint_eq(run.done, run.submitted);
    ck_assert_uint_eq(run.reads, TENANT_REQUESTS);
    ck_assert_msg(run.leaks == 0 && run.set_errors == 0 && run.read_errors == 0,
                  "%zu of %d reads saw a tenant, %zu set errors, %zu read errors; first: %s",
                  run.leaks, TENANT_REQUESTS, run.set_errors, run.read_errors, run.example);
    t_pool_close(p);
}
END_TEST

/* One query's SET LOCAL statement_timeout = 1 never reaches the queries
 * pipelined next to it: _i 0 on a pool of one connection (everything
 * pipelined on it), 1 on a pool of three (where the pool spreads them). */
START_TEST(pg_set_local_timeout_never_cancels_a_neighbour)
{
    evdb_pool *p = pool_with(t_pg_url(), _i == 0 ? 1 : 3, 0, 0);
    enum { ROUNDS = 16 };
    evdb_future *sets[ROUNDS], *sleeps[2 * ROUNDS];
    audit a = {0};
    for (int i = 0; i < ROUNDS; i++) {
        sets[i] = t_pool_submit(p, "SET LOCAL statement_timeout = 1", NULL, 0, 0, 0);
        sleeps[2 * i] = t_pool_submit(p, "SELECT pg_sleep(0.05)", NULL, 0, 0, 0);
        sleeps[2 * i + 1] = t_pool_submit(p, "SELECT pg_sleep(0.05)", NULL, 0, 0, 0);
        watch(&a, sets[i]);
        watch(&a, sleeps[2 * i]);
        watch(&a, sleeps[2 * i + 1]);
    }
    audit_close(&a);
    int cancelled = 0;
    char first[200] = "";
    for (int i = 0; i < 2 * ROUNDS; i++) {
        if (evdb_future_status(sleeps[i]) != 0) {
            cancelled++;
            if (!first[0])
                snprintf(first, sizeof first, "%s (%s)",
                         evdb_error_message(evdb_future_error(sleeps[i])),
                         evdb_error_sqlstate(evdb_future_error(sleeps[i])));
        }
        evdb_future_unref(sleeps[i]);
    }
    ck_assert_msg(cancelled == 0, "%d of %d pg_sleep(0.05) failed; first: %s", cancelled,
                  2 * ROUNDS, first);
    for (int i = 0; i < ROUNDS; i++) {
        ck_assert_msg(evdb_future_status(sets[i]) == 0, "SET LOCAL: %s",
                      evdb_error_message(evdb_future_error(sets[i])));
        evdb_future_unref(sets[i]);
    }
    t_pool_close(p);
}
END_TEST

/* --------------------------------------------- 2. hot-row UPDATE storm */

enum { HOT_ROWS = 4, HOT_UPDATES = 3000 };

typedef struct hot_run {
    audit a;
    size_t ok, deadlocks, pool_timeouts, other;
    char example[200];
} hot_run;

static void on_hot(evdb_future *f, void *arg)
{
    hot_run *h = arg;
    h->a.done++;
    int st = evdb_future_status(f);
    const evdb_error *e = evdb_future_error(f);
    if (st == 0 && evdb_result_affected(evdb_future_result(f)) == 1) {
        h->ok++;
    } else {
        if (st == EVDB_ESERVER && strcmp(evdb_error_sqlstate(e), "40P01") == 0)
            h->deadlocks++;
        else if (st == EVDB_EPOOLTIMEOUT)
            h->pool_timeouts++;
        else
            h->other++;
        if (!h->example[0])
            snprintf(h->example, sizeof h->example, "%s: %s (%s)", evdb_err_name(st),
                     evdb_error_message(e), evdb_error_sqlstate(e));
    }
    evdb_future_unref(f);
}

/* Thousands of independent single-row UPDATEs over a few hot rows, all
 * submitted at once to a pool of 8: each holds its one row lock for its
 * own statement only, so nothing deadlocks, nothing waits out the acquire
 * timeout, and every increment lands exactly once. */
START_TEST(pg_hot_row_update_storm_never_deadlocks)
{
    evdb_pool *p = pool_with(t_pg_url(), 8, 0, 10);
    t_pool_exec_ok(p, "DROP TABLE IF EXISTS iso_hot");
    t_pool_exec_ok(p, "CREATE TABLE iso_hot (id int PRIMARY KEY, v bigint NOT NULL)");
    t_pool_exec_ok(p, "INSERT INTO iso_hot SELECT g, 0 FROM generate_series(1, 4) g");
    hot_run h;
    memset(&h, 0, sizeof h);
    unsigned seed = 14;
    double t0 = t_now();
    for (int i = 0; i < HOT_UPDATES; i++) {
        evdb_value id = evdb_int(1 + rand_r(&seed) % HOT_ROWS);
        evdb_future *f =
            t_pool_submit(p, "UPDATE iso_hot SET v = v + 1 WHERE id = $1", &id, 1, 0, 0);
        h.a.submitted++;
        ck_assert_int_eq(evdb_future_on_done(f, on_hot, &h), 0);
    }
    audit_close(&h.a);
    double took = t_now() - t0;
    fprintf(stderr,
            "hot-row storm: %d updates, %zu ok, %zu deadlocks, %zu pool timeouts in %.2f s\n",
            HOT_UPDATES, h.ok, h.deadlocks, h.pool_timeouts, took);
    ck_assert_msg(h.deadlocks == 0 && h.pool_timeouts == 0 && h.other == 0,
                  "%zu deadlocks (40P01), %zu acquire timeouts, %zu other failures of %d; "
                  "first: %s",
                  h.deadlocks, h.pool_timeouts, h.other, HOT_UPDATES, h.example);
    ck_assert_uint_eq(h.ok, HOT_UPDATES);
    ck_assert_int_eq(t_pool_int(p, "SELECT sum(v) FROM iso_hot"), (int64_t)h.ok);
    t_pool_exec_ok(p, "DROP TABLE iso_hot");
    t_pool_close(p);
}
END_TEST

/* ------------------------- 3. ordered writes after a failing neighbour */

enum { ORD_MAX = 96 };
/* Far longer than any of these queries needs: a wedged connection shows as
 * EVDB_ETIMEDOUT here, not as the watchdog. */
#define ORD_PROMPT_S 5.0

typedef struct ord_run {
    const backend *b;
    evdb_conn *c;
    char update_sql[128];
    size_t n, done;
    int order[ORD_MAX];  /* submission index of each callback, in call order */
    bool fails[ORD_MAX]; /* the query is the failing one */
    int status[ORD_MAX];
    char state[ORD_MAX][6];
    int calls[ORD_MAX];
    char last_value[32];
    const char *fail_sql, *fail_state; /* the failing query of each triple */
    bool fail_param;                   /* it takes the parameter 2 */
} ord_run;

typedef struct ord_ticket {
    ord_run *run;
    int idx;
} ord_ticket;

static ord_ticket ord_tickets[ORD_MAX];

static void on_ord(evdb_future *f, void *arg)
{
    ord_ticket *t = arg;
    ord_run *run = t->run;
    run->order[run->done++] = t->idx;
    run->calls[t->idx]++;
    run->status[t->idx] = evdb_future_status(f);
    snprintf(run->state[t->idx], sizeof run->state[t->idx], "%s",
             evdb_error_sqlstate(evdb_future_error(f)));
    evdb_future_unref(f);
}

static void ord_submit(ord_run *run, bool fail)
{
    ck_assert_uint_lt(run->n, ORD_MAX);
    int idx = (int)run->n++;
    evdb_future *f;
    run->fails[idx] = fail;
    if (fail) {
        evdb_value two = evdb_int(2);
        f = t_submit(run->c, run->fail_sql, &two, run->fail_param ? 1 : 0, ORD_PROMPT_S, 0);
    } else {
        snprintf(run->last_value, sizeof run->last_value, "v%d", idx);
        evdb_value v = evdb_text(run->last_value);
        f = t_submit(run->c, run->update_sql, &v, 1, ORD_PROMPT_S, 0);
    }
    ord_tickets[idx].run = run;
    ord_tickets[idx].idx = idx;
    ck_assert_int_eq(evdb_future_on_done(f, on_ord, &ord_tickets[idx]), 0);
}

static void on_ord_delay(evdb_future *f, void *arg)
{
    evdb_future_unref(f);
    ord_submit(arg, false);
}

/* Submit `triples` times write, fail, write back to back (delay >= 0:
 * the last write of each triple is submitted that many seconds later, from
 * a timer, when the first two are already on the wire), then check: callbacks in submission order,
 * each exactly once, every write ok, every failure its own, and the last
 * write is the value that stays. */
static void ord_check(ord_run *run, const char *table, int triples, double delay)
{
    run->n = run->done = 0;
    memset(run->calls, 0, sizeof run->calls);
    for (int t = 0; t < triples; t++) {
        ord_submit(run, false);
        ord_submit(run, true);
        if (delay >= 0) {
            evdb_future *s = evdb_sleep(L, delay);
            ck_assert_ptr_nonnull(s);
            ck_assert_int_eq(evdb_future_on_done(s, on_ord_delay, run), 0);
        } else {
            ord_submit(run, false);
        }
    }
    size_t want = (size_t)triples * 3;
    run_until(&run->done, &want);
    t_run_for(L, 0.01);
    ck_assert_uint_eq(run->n, want);
    ck_assert_uint_eq(run->done, want);
    /* Everything wrong at once in one message: order, outcomes, value. */
    char got[ORD_MAX * 4] = "";
    bool in_order = true, outcomes = true;
    char bad[200] = "";
    for (size_t k = 0; k < run->done; k++) {
        snprintf(got + strlen(got), sizeof got - strlen(got), " q%d", run->order[k]);
        in_order = in_order && run->order[k] == (int)k;
    }
    for (size_t k = 0; k < want; k++) {
        ck_assert_int_eq(run->calls[k], 1);
        bool ok = run->fails[k] ? run->status[k] == EVDB_ESERVER &&
                                      strcmp(run->state[k], run->fail_state) == 0
                                : run->status[k] == 0;
        if (!ok && outcomes)
            snprintf(bad, sizeof bad, "q%zu (%s): %s '%s'", k, run->fails[k] ? "fail" : "write",
                     evdb_err_name(run->status[k]), run->state[k]);
        outcomes = outcomes && ok;
    }
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT v FROM %s WHERE id = 1", table);
    evdb_future *f = t_submit(run->c, sql, NULL, 0, ORD_PROMPT_S, 0);
    int rc = t_wait(f);
    ck_assert_msg(rc == 0, "%s: reading the value back: %s: %s", run->b->name, evdb_err_name(rc),
                  evdb_error_message(evdb_future_error(f)));
    const char *v = cell(evdb_future_result(f), 0, 0);
    ck_assert_msg(in_order && outcomes && strcmp(v, run->last_value) == 0,
                  "%s: %d triple(s)%s: callbacks in the order%s; %s%s; final value '%s', the "
                  "last write was '%s'",
                  run->b->name, triples, delay >= 0 ? " (last write delayed)" : "", got,
                  outcomes ? "outcomes right" : "wrong outcome: ", bad, v, run->last_value);
    evdb_future_unref(f);
}

START_TEST(ordered_writes_after_a_failing_neighbour)
{
    const backend *b = &backends[_i];
    const char *table = _i == 0 ? "iso_order_pg" : "iso_order_my";
    evdb_conn *c = t_conn_open(L, b->url(), NULL);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    t_exec_ok(c, sql);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int PRIMARY KEY, v varchar(32))%s", table,
             b->engine);
    t_exec_ok(c, sql);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1, 'initial')", table);
    t_exec_ok(c, sql);
    ord_run *run = calloc(1, sizeof *run);
    ck_assert_ptr_nonnull(run);
    run->b = b;
    run->c = c;
    snprintf(run->update_sql, sizeof run->update_sql, b->update_text, table);
    /* The failing query fails at once, then partway through its rows (a
     * cached statement that failed mid-result runs again each triple). */
    for (int mid = 0; mid < 2; mid++) {
        run->fail_sql = mid ? b->fail_mid_sql : b->fail_sql;
        run->fail_state = mid ? b->fail_mid_state : b->fail_state;
        run->fail_param = mid;
        for (int rep = 0; rep < 3; rep++) {
            ord_check(run, table, 1, -1);
            ord_check(run, table, 1, 0);
            ord_check(run, table, 1, 0.002);
        }
        ord_check(run, table, 5, -1);
        ord_check(run, table, 5, 0);
        ord_check(run, table, 30, -1);
    }
    free(run);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    t_exec_ok(c, sql);
    t_conn_close(c);
}
END_TEST

/* The order callbacks ran in: seq_ticket k records k when its future
 * completes. */
typedef struct seq_log {
    int n;
    int order[16];
} seq_log;

typedef struct seq_ticket {
    seq_log *log;
    int idx;
} seq_ticket;

static void on_seq(evdb_future *f, void *arg)
{
    (void)f;
    seq_ticket *t = arg;
    ck_assert_int_lt(t->log->n, 16);
    t->log->order[t->log->n++] = t->idx;
}

/* ------------------------------------------------ 4. deferred constraints */

enum { DEF_INSERTS = 200 };

static bool def_bad_unique(int i)
{
    return i % 2 == 0 && i >= 10 && i <= 90 && i % 20 == 10; /* 10 30 50 70 90 */
}

static bool def_bad_fk(int i)
{
    return i % 2 == 1 && i >= 111 && i <= 191 && i % 20 == 11; /* 111 131 ... 191 */
}

/* 200 pooled inserts into tables with a deferred unique constraint and a
 * deferred foreign key, 10 of them violating: exactly those 10 fail, each
 * with its own violation (raised at its own commit), and the connections
 * all live on. */
START_TEST(pg_deferred_constraint_violations_fail_their_own_query)
{
    evdb_pool *p = t_pool_new(L, t_pg_url(), NULL);
    t_pool_exec_ok(p, "DROP TABLE IF EXISTS iso_def_u, iso_def_child, iso_def_parent");
    t_pool_exec_ok(p,
                   "CREATE TABLE iso_def_u (id int PRIMARY KEY, k int, CONSTRAINT iso_def_u_k_key "
                   "UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)");
    t_pool_exec_ok(p, "CREATE TABLE iso_def_parent (id int PRIMARY KEY)");
    t_pool_exec_ok(p, "CREATE TABLE iso_def_child (id int PRIMARY KEY, pid int, CONSTRAINT "
                      "iso_def_child_pid_fkey FOREIGN KEY (pid) REFERENCES iso_def_parent (id) "
                      "DEFERRABLE INITIALLY DEFERRED)");
    t_pool_exec_ok(p, "INSERT INTO iso_def_parent SELECT generate_series(1, 100)");
    t_pool_exec_ok(p, "INSERT INTO iso_def_u SELECT -1 - g, 1000 + g FROM generate_series(0, 4) g");

    evdb_future *fs[DEF_INSERTS];
    audit a = {0};
    int nbad = 0;
    for (int i = 0; i < DEF_INSERTS; i++) {
        evdb_value v[2] = {evdb_int(i), evdb_int(0)};
        if (i % 2 == 0) {
            v[1] = evdb_int(def_bad_unique(i) ? 1000 + nbad++ % 5 : 5000 + i);
            fs[i] = t_pool_submit(p, "INSERT INTO iso_def_u VALUES ($1, $2)", v, 2, 0, 0);
        } else {
            nbad += def_bad_fk(i);
            v[1] = evdb_int(def_bad_fk(i) ? 9999 : 1 + i % 100);
            fs[i] = t_pool_submit(p, "INSERT INTO iso_def_child VALUES ($1, $2)", v, 2, 0, 0);
        }
        watch(&a, fs[i]);
    }
    ck_assert_int_eq(nbad, 10);
    audit_close(&a);
    int ok = 0, lost = 0;
    char first_lost[200] = "";
    for (int i = 0; i < DEF_INSERTS; i++) {
        int st = evdb_future_status(fs[i]);
        const evdb_error *e = evdb_future_error(fs[i]);
        if (st == 0)
            ok++;
        if (st == EVDB_ECONNLOST && !lost++)
            snprintf(first_lost, sizeof first_lost, "insert %d: %s", i, evdb_error_message(e));
    }
    ck_assert_msg(lost == 0, "%d of %d inserts failed with EVDB_ECONNLOST; %d ok; first: %s", lost,
                  DEF_INSERTS, ok, first_lost);
    for (int i = 0; i < DEF_INSERTS; i++) {
        int st = evdb_future_status(fs[i]);
        const evdb_error *e = evdb_future_error(fs[i]);
        if (def_bad_unique(i) || def_bad_fk(i)) {
            bool uq = def_bad_unique(i);
            ck_assert_msg(st == EVDB_ESERVER, "bad insert %d: %s: %s", i, evdb_err_name(st),
                          evdb_error_message(e));
            ck_assert_str_eq(evdb_error_sqlstate(e), uq ? "23505" : "23503");
            ck_assert_str_eq(evdb_error_constraint(e),
                             uq ? "iso_def_u_k_key" : "iso_def_child_pid_fkey");
        } else {
            ck_assert_msg(st == 0, "good insert %d: %s: %s (%s)", i, evdb_err_name(st),
                          evdb_error_message(e), evdb_error_sqlstate(e));
        }
        evdb_future_unref(fs[i]);
    }
    ck_assert_int_eq(ok, DEF_INSERTS - 10);
    ck_assert_int_eq(t_pool_int(p, "SELECT count(*) FROM iso_def_u WHERE id >= 0"), 95);
    ck_assert_int_eq(t_pool_int(p, "SELECT count(*) FROM iso_def_child"), 95);

    /* On one pipelined connection, a write, an insert whose deferred
     * constraint fails at its commit, a write: the error belongs to the
     * middle query, the callbacks run in order, the last write stays. */
    evdb_conn *one = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(one, "CREATE TEMP TABLE iso_def_v (id int PRIMARY KEY, v text)");
    t_exec_ok(one, "INSERT INTO iso_def_v VALUES (1, 'initial')");
    for (int round = 0; round < 5; round++) {
        seq_log log = {0};
        seq_ticket tk[3];
        evdb_value k = evdb_int(1000 + round % 5); /* already taken */
        evdb_future *w[3];
        w[0] = t_submit(one, "UPDATE iso_def_v SET v = 'first' WHERE id = 1", NULL, 0, 0, 0);
        w[1] = t_submit(one, "INSERT INTO iso_def_u VALUES (10000, $1)", &k, 1, 0, 0);
        w[2] = t_submit(one, "UPDATE iso_def_v SET v = 'second' WHERE id = 1", NULL, 0, 0, 0);
        for (int j = 0; j < 3; j++) {
            tk[j].log = &log;
            tk[j].idx = j;
            watch(&a, w[j]);
            ck_assert_int_eq(evdb_future_on_done(w[j], on_seq, &tk[j]), 0);
        }
        audit_close(&a);
        ck_assert_msg(log.n == 3 && log.order[0] == 0 && log.order[1] == 1 && log.order[2] == 2,
                      "callbacks in the order %d %d %d", log.order[0], log.order[1], log.order[2]);
        ck_assert_int_eq(evdb_future_status(w[0]), 0);
        t_expect_fail(w[1], EVDB_ESERVER, "23505");
        ck_assert_int_eq(evdb_future_status(w[2]), 0);
        for (int j = 0; j < 3; j++)
            evdb_future_unref(w[j]);
        evdb_future *v = t_run_ok(one, "SELECT v FROM iso_def_v WHERE id = 1", NULL, 0);
        t_expect_cell(evdb_future_result(v), 0, 0, "second");
        evdb_future_unref(v);
        t_exec_ok(one, "UPDATE iso_def_v SET v = 'initial'");
    }
    t_conn_close(one);

    /* Every connection of the pool is alive: borrow them all at once and
     * query each; none broke, none was replaced. */
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.broken, 0);
    unsigned n = st.total;
    uint64_t connects = st.connects;
    ck_assert_uint_ge(n, 1);
    evdb_future *acq[EVDB_POOL_DEFAULT_MAX];
    ck_assert_uint_le(n, EVDB_POOL_DEFAULT_MAX);
    for (unsigned i = 0; i < n; i++) {
        acq[i] = evdb_pool_acquire(p, 5);
        ck_assert_ptr_nonnull(acq[i]);
    }
    for (unsigned i = 0; i < n; i++) {
        ck_assert_msg(t_wait(acq[i]) == 0, "acquire: %s",
                      evdb_error_message(evdb_future_error(acq[i])));
        evdb_conn *c = evdb_future_take_conn(acq[i]);
        ck_assert_int_eq(evdb_conn_status(c), 0);
        ck_assert_int_eq(t_query_int(c, "SELECT 7"), 7);
        ck_assert_int_eq(evdb_conn_release(c), 0);
        evdb_future_unref(acq[i]);
    }
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.broken, 0);
    ck_assert_uint_eq(st.connects, connects);
    t_pool_exec_ok(p, "DROP TABLE iso_def_u, iso_def_child, iso_def_parent");
    t_pool_close(p);
}
END_TEST

/* --------------------------- 5. cancel of a timed-out non-head query */

/* Poll pg_stat_activity until `until` (t_now() time): the last time
 * backend pid was seen running a statement containing what, or -1 when
 * never. */
static double pg_last_seen_running(evdb_conn *admin, int64_t pid, const char *what, double until)
{
    double last = -1;
    for (;;) {
        evdb_value v[2] = {evdb_int(pid), evdb_text(what)};
        double at = t_now();
        evdb_future *f = t_run_ok(admin,
                                  "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 "
                                  "AND state = 'active' AND strpos(query, $2) > 0",
                                  v, 2);
        if (t_cell_int(evdb_future_result(f), 0, 0))
            last = at;
        evdb_future_unref(f);
        if (t_now() >= until)
            return last;
        t_sleep(L, 0.02);
    }
}

static void on_stamp(evdb_future *f, void *arg)
{
    (void)f;
    *(double *)arg = t_now();
}

/* On one pipelined connection, pg_sleep(3) with a 0.5 s timeout behind a
 * pg_sleep of head_s: it times out while running (head 0.3 s) or while
 * still waiting behind the head (0.7 s). Either way the future fails at
 * 0.5 s, the server stops it within about a second (it never runs its
 * 3 s; pg_stat_activity, watched from another session until 2 s after the
 * start), the head completes when it finishes, not when the sleep would
 * have, and the next query on the connection answers long before 3 s. */
START_TEST(pg_timed_out_query_behind_another_is_cancelled)
{
    static const double heads[2] = {0.3, 0.7};
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    int64_t pid = evdb_conn_server_id(c);
    ck_assert_int_gt(pid, 0);
    audit a = {0};
    char head_sql[64];
    snprintf(head_sql, sizeof head_sql, "SELECT pg_sleep(%.1f)", heads[_i]);
    double head_done = 0;
    double t0 = t_now();
    evdb_future *head = t_submit(c, head_sql, NULL, 0, 0, 0);
    evdb_future *slow = t_submit(c, "SELECT pg_sleep(3)", NULL, 0, 0.5, 0);
    watch(&a, head);
    watch(&a, slow);
    ck_assert_int_eq(evdb_future_on_done(head, on_stamp, &head_done), 0);
    t_expect_fail(slow, EVDB_ETIMEDOUT, NULL);
    double at = t_now() - t0;
    ck_assert_msg(at > 0.45 && at < 0.8, "timed out after %.3f s", at);
    double last = pg_last_seen_running(admin, pid, "pg_sleep(3)", t0 + 2.0);
    ck_assert_msg(last < 0 || last - t0 < at + 1.0,
                  "pg_sleep(3) still active on the server %.2f s after the start (timed out at "
                  "%.2f s)",
                  last - t0, at);
    ck_assert_msg(t_wait(head) == 0, "head: %s", evdb_error_message(evdb_future_error(head)));
    t_run_for(L, 0.01);
    ck_assert_msg(head_done > 0 && head_done - t0 < heads[_i] + 0.5,
                  "the head (pg_sleep(%.1f)) completed %.2f s after the start", heads[_i],
                  head_done - t0);
    double t1 = t_now();
    evdb_future *next = t_submit(c, "SELECT 42", NULL, 0, 0, 0);
    watch(&a, next);
    ck_assert_msg(t_wait(next) == 0, "next: %s", evdb_error_message(evdb_future_error(next)));
    ck_assert_int_eq(t_cell_int(evdb_future_result(next), 0, 0), 42);
    ck_assert_msg(t_now() - t1 < 0.3,
                  "the next query took %.2f s (answered %.2f s after the start)", t_now() - t1,
                  t_now() - t0);
    evdb_future_unref(head);
    evdb_future_unref(slow);
    evdb_future_unref(next);
    audit_close(&a);
    ck_assert_int_eq(t_query_int(c, "SELECT 5"), 5);
    t_conn_close(admin);
    t_conn_close(c);
}
END_TEST

/* The same inside a transaction block on an acquired connection: BEGIN,
 * INSERT, pg_sleep(3) with a 0.3 s timeout, COMMIT. The timed-out statement
 * is stopped, the block is aborted, COMMIT does not commit the INSERT (it
 * answers ROLLBACK, or fails). _i 0: all four pipelined back to back; 1:
 * COMMIT sent after the timeout. */
START_TEST(pg_timed_out_query_in_a_transaction_aborts_it)
{
    evdb_pool *p = pool_with(t_pg_url(), 1, 0, 0);
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    t_pool_exec_ok(p, "DROP TABLE IF EXISTS iso_txn_cancel");
    t_pool_exec_ok(p, "CREATE TABLE iso_txn_cancel (id int)");
    evdb_future *af = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(af), 0);
    evdb_conn *c = evdb_future_take_conn(af);
    evdb_future_unref(af);
    int64_t pid = evdb_conn_server_id(c);
    audit a = {0};
    double slow_done = 0, commit_done = 0;
    double t0 = t_now();
    evdb_future *begin = t_submit(c, "BEGIN", NULL, 0, 0, 0);
    evdb_future *ins = t_submit(c, "INSERT INTO iso_txn_cancel VALUES (1)", NULL, 0, 0, 0);
    evdb_future *slow = t_submit(c, "SELECT pg_sleep(3)", NULL, 0, 0.3, 0);
    watch(&a, begin);
    watch(&a, ins);
    watch(&a, slow);
    ck_assert_int_eq(evdb_future_on_done(slow, on_stamp, &slow_done), 0);
    evdb_future *commit = NULL;
    if (_i == 0) {
        commit = t_submit(c, "COMMIT", NULL, 0, 0, 0);
    } else {
        t_wait(slow);
        commit = t_submit(c, "COMMIT", NULL, 0, 0, 0);
    }
    watch(&a, commit);
    ck_assert_int_eq(evdb_future_on_done(commit, on_stamp, &commit_done), 0);
    audit_close(&a);
    /* The outcome first: the INSERT was not committed. */
    int64_t committed = t_query_int(admin, "SELECT count(*) FROM iso_txn_cancel");
    ck_assert_msg(committed == 0,
                  "the INSERT before the timed-out statement was committed (COMMIT: %s '%s')",
                  evdb_err_name(evdb_future_status(commit)),
                  evdb_future_status(commit) == 0 ? evdb_result_command(evdb_future_result(commit))
                                                  : evdb_error_message(evdb_future_error(commit)));
    int rc = evdb_future_status(commit);
    if (rc == 0)
        ck_assert_msg(strcmp(evdb_result_command(evdb_future_result(commit)), "ROLLBACK") == 0,
                      "COMMIT after the timed-out statement answered '%s'",
                      evdb_result_command(evdb_future_result(commit)));
    ck_assert_int_eq(evdb_future_status(begin), 0);
    ck_assert_msg(evdb_future_status(ins) == 0, "insert: %s",
                  evdb_error_message(evdb_future_error(ins)));
    /* Then the timing: the statement timed out at 0.3 s, was stopped on
     * the server, and COMMIT answered long before the 3 s were up. */
    ck_assert_msg(evdb_future_status(slow) == EVDB_ETIMEDOUT, "pg_sleep(3): %s: %s",
                  evdb_err_name(evdb_future_status(slow)),
                  evdb_error_message(evdb_future_error(slow)));
    double at = slow_done - t0;
    ck_assert_msg(at > 0.25 && at < 0.6, "timed out after %.3f s", at);
    ck_assert_msg(commit_done - t0 < 1.5, "COMMIT answered %.2f s after the start",
                  commit_done - t0);
    double last = pg_last_seen_running(admin, pid, "pg_sleep(3)", t0 + 1.5);
    ck_assert_msg(last < 0 || last - t0 < at + 1.0,
                  "pg_sleep(3) still active on the server %.2f s after the start (timed out at "
                  "%.2f s)",
                  last - t0, at);
    evdb_future_unref(begin);
    evdb_future_unref(ins);
    evdb_future_unref(slow);
    evdb_future_unref(commit);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    ck_assert_int_eq(t_pool_int(p, "SELECT count(*) FROM iso_txn_cancel"), 0);
    t_pool_exec_ok(p, "DROP TABLE iso_txn_cancel");
    t_conn_close(admin);
    t_pool_close(p);
}
END_TEST

/* A query that times out while it waits behind another (pipelined, not
 * yet running) must be stopped without touching its neighbours: a cancel
 * request hits whatever runs when it arrives. Rounds on one connection:
 * a head pg_sleep, a quick query whose deadline falls around the head's
 * end, then an INSERT and a short pg_sleep. The head and the two behind
 * always succeed (a neighbour is never cancelled for it), each insert
 * lands exactly once, the middle one either answers or times out. */
START_TEST(pg_timeout_of_a_waiting_query_spares_its_neighbours)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "CREATE TEMP TABLE iso_spare (i int)");
    enum { ROUNDS = 24 };
    audit a = {0};
    int timed_out = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double deadline = 0.04 + 0.002 * (r % 12);
        evdb_value v = evdb_int(r);
        evdb_future *fs[4];
        fs[0] = t_submit(c, "SELECT pg_sleep(0.05)", NULL, 0, 0, 0);
        fs[1] = t_submit(c, "SELECT 1", NULL, 0, deadline, 0);
        fs[2] = t_submit(c, "INSERT INTO iso_spare VALUES ($1)", &v, 1, 0, 0);
        fs[3] = t_submit(c, "SELECT pg_sleep(0.03), $1::int", &v, 1, 0, 0);
        for (int k = 0; k < 4; k++)
            watch(&a, fs[k]);
        audit_close(&a);
        int mid = evdb_future_status(fs[1]);
        ck_assert_msg(mid == 0 || mid == EVDB_ETIMEDOUT, "round %d: middle: %s: %s", r,
                      evdb_err_name(mid), evdb_error_message(evdb_future_error(fs[1])));
        timed_out += mid == EVDB_ETIMEDOUT;
        for (int k = 0; k < 4; k++) {
            if (k == 1)
                continue;
            ck_assert_msg(evdb_future_status(fs[k]) == 0,
                          "round %d: query %d next to a timeout: %s: %s (%s)", r, k,
                          evdb_err_name(evdb_future_status(fs[k])),
                          evdb_error_message(evdb_future_error(fs[k])),
                          evdb_error_sqlstate(evdb_future_error(fs[k])));
        }
        ck_assert_int_eq(t_cell_int(evdb_future_result(fs[3]), 0, 1), r);
        for (int k = 0; k < 4; k++)
            evdb_future_unref(fs[k]);
    }
    ck_assert_int_eq(t_query_int(c, "SELECT count(*) FROM iso_spare"), ROUNDS);
    ck_assert_int_eq(t_query_int(c, "SELECT count(DISTINCT i) FROM iso_spare"), ROUNDS);
    ck_assert_int_gt(timed_out, 0);
    t_conn_close(c);
}
END_TEST

/* ------------------------ 6. what a timeout says about the outcome */

/* Wait for f: it must fail with EVDB_ETIMEDOUT, and
 * evdb_error_outcome_unknown must say unknown. */
static void expect_timeout(evdb_future *f, bool unknown, const char *what)
{
    int rc = t_wait(f);
    const evdb_error *e = evdb_future_error(f);
    ck_assert_msg(rc == EVDB_ETIMEDOUT, "%s: wanted EVDB_ETIMEDOUT, got %s: %s", what,
                  evdb_err_name(rc), evdb_error_message(e));
    ck_assert_msg(evdb_error_outcome_unknown(e) == unknown,
                  "%s: evdb_error_outcome_unknown says %s, wanted %s (%s)", what,
                  unknown ? "false" : "true", unknown ? "true" : "false", evdb_error_message(e));
}

static int64_t count_where(evdb_conn *c, const char *table, const char *where)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE %s", table, where);
    return t_query_int(c, sql);
}

/* A query that times out before it was sent (queued behind pg_sleep on a
 * connection without pipelining, waiting for a pooled connection, queued
 * on a pool's only connection) says its outcome is known (false), and
 * indeed its INSERT never happens; one that times out while running says
 * unknown (true). On a pipelined pool of one, whatever the answer is for
 * an INSERT behind a sleep, it must be true to it: false means the row
 * never appears. */
START_TEST(pg_timeout_says_whether_the_query_may_have_run)
{
    evdb_conn *app = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(app, "DROP TABLE IF EXISTS iso_outcome");
    t_exec_ok(app, "CREATE TABLE iso_outcome (id int)");
    ck_assert(!evdb_error_outcome_unknown(NULL));
    audit a = {0};

    /* Queued on a connection without pipelining. */
    evdb_conn_opts co;
    memset(&co, 0, sizeof co);
    co.pipeline_depth = 1;
    evdb_conn *d1 = t_conn_open(L, t_pg_url(), &co);
    evdb_future *head = t_submit(d1, "SELECT pg_sleep(0.4)", NULL, 0, 0, 0);
    evdb_future *ins = t_submit(d1, "INSERT INTO iso_outcome VALUES (1)", NULL, 0, 0.1, 0);
    watch(&a, head);
    watch(&a, ins);
    expect_timeout(ins, false, "INSERT queued on a depth-1 connection");
    ck_assert_int_eq(t_wait(head), 0);
    evdb_future_unref(head);
    evdb_future_unref(ins);

    /* Waiting for a pooled connection (the only one is borrowed). */
    evdb_pool *p1 = pool_with(t_pg_url(), 1, 0, 0);
    evdb_future *af = evdb_pool_acquire(p1, 5);
    ck_assert_int_eq(t_wait(af), 0);
    evdb_conn *held = evdb_future_take_conn(af);
    evdb_future_unref(af);
    ins = t_pool_submit(p1, "INSERT INTO iso_outcome VALUES (2)", NULL, 0, 0.1, 0);
    watch(&a, ins);
    expect_timeout(ins, false, "INSERT waiting for a pooled connection");
    evdb_future_unref(ins);
    ck_assert_int_eq(evdb_conn_release(held), 0);

    /* Queued on the only connection of a pool without pipelining. */
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.max_conns = 1;
    po.pipeline_depth = 1;
    evdb_pool *pd1 = t_pool_new(L, t_pg_url(), &po);
    t_pool_exec_ok(pd1, "SELECT 1"); /* connected */
    head = t_pool_submit(pd1, "SELECT pg_sleep(0.4)", NULL, 0, 0, 0);
    ins = t_pool_submit(pd1, "INSERT INTO iso_outcome VALUES (3)", NULL, 0, 0.1, 0);
    watch(&a, head);
    watch(&a, ins);
    expect_timeout(ins, false, "INSERT queued on a depth-1 pool of one");
    ck_assert_int_eq(t_wait(head), 0);
    evdb_future_unref(head);
    evdb_future_unref(ins);

    /* Running. */
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_future *run = t_submit(c, "SELECT pg_sleep(3)", NULL, 0, 0.2, 0);
    watch(&a, run);
    expect_timeout(run, true, "pg_sleep(3) running");
    evdb_future_unref(run);
    run = t_submit(c, "INSERT INTO iso_outcome SELECT 4 FROM pg_sleep(3)", NULL, 0, 0.2, 0);
    watch(&a, run);
    expect_timeout(run, true, "INSERT ... FROM pg_sleep(3) running");
    evdb_future_unref(run);
    /* Cancelled while running: unknown too; cancelled while queued (never
     * sent): known. */
    run = t_submit(d1, "SELECT pg_sleep(3)", NULL, 0, 0, 0);
    evdb_future *queued = t_submit(d1, "INSERT INTO iso_outcome VALUES (6)", NULL, 0, 0, 0);
    watch(&a, run);
    watch(&a, queued);
    t_sleep(L, 0.1);
    ck_assert_int_eq(evdb_future_cancel(queued), 0);
    ck_assert_int_eq(evdb_future_cancel(run), 0);
    ck_assert_int_eq(t_wait(run), EVDB_ECANCELED);
    ck_assert_int_eq(t_wait(queued), EVDB_ECANCELED);
    ck_assert_msg(evdb_error_outcome_unknown(evdb_future_error(run)),
                  "a query cancelled while running says its outcome is known: %s",
                  evdb_error_message(evdb_future_error(run)));
    ck_assert_msg(!evdb_error_outcome_unknown(evdb_future_error(queued)),
                  "a query cancelled before it was sent says its outcome is unknown: %s",
                  evdb_error_message(evdb_future_error(queued)));
    evdb_future_unref(run);
    evdb_future_unref(queued);
    /* A server error is known: its own implicit transaction rolled back. */
    evdb_future *err = t_submit(c, "SELECT 1/0", NULL, 0, 0, 0);
    watch(&a, err);
    t_expect_fail(err, EVDB_ESERVER, "22012");
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(err)));
    evdb_future_unref(err);

    /* Pipelined on a pool of one: behind a sleep, sent or not; the answer
     * must hold. */
    bool said_unknown[3];
    for (int k = 0; k < 3; k++) {
        head = t_pool_submit(p1, "SELECT pg_sleep(0.3)", NULL, 0, 0, 0);
        evdb_value v = evdb_int(10 + k);
        ins = t_pool_submit(p1, "INSERT INTO iso_outcome VALUES ($1)", &v, 1, 0.1, 0);
        watch(&a, head);
        watch(&a, ins);
        ck_assert_int_eq(t_wait(ins), EVDB_ETIMEDOUT);
        said_unknown[k] = evdb_error_outcome_unknown(evdb_future_error(ins));
        ck_assert_int_eq(t_wait(head), 0);
        evdb_future_unref(head);
        evdb_future_unref(ins);
    }
    audit_close(&a);
    t_sleep(L, 0.2);
    ck_assert_int_eq(count_where(app, "iso_outcome", "id IN (1, 2, 3, 6)"), 0);
    for (int k = 0; k < 3; k++) {
        char where[32];
        snprintf(where, sizeof where, "id = %d", 10 + k);
        int64_t n = count_where(app, "iso_outcome", where);
        ck_assert_msg(said_unknown[k] || n == 0,
                      "pipelined INSERT %d timed out saying it did not run, but it did", 10 + k);
        ck_assert_int_le(n, 1);
    }
    t_exec_ok(app, "DROP TABLE iso_outcome");
    t_pool_close(p1);
    t_pool_close(pd1);
    t_conn_close(c);
    t_conn_close(d1);
    t_conn_close(app);
}
END_TEST

/* The promise behind evdb_error_outcome_unknown, as a property: a pooled
 * INSERT whose future failed saying its outcome is known (false) never
 * took effect; one that succeeded took effect exactly once; one whose
 * outcome is unknown took effect at most once. Hundreds of inserts with
 * short random timeouts, some cancelled at once, among sleeps that keep
 * the connections busy, on a pool of two. */
enum { PROP_INSERTS = 400 };

typedef struct prop_run {
    audit a;
    int status[PROP_INSERTS];
    bool unknown[PROP_INSERTS];
} prop_run;

typedef struct prop_ticket {
    prop_run *run;
    int id;
} prop_ticket;

static void on_prop(evdb_future *f, void *arg)
{
    prop_ticket *t = arg;
    t->run->a.done++;
    t->run->status[t->id] = evdb_future_status(f);
    t->run->unknown[t->id] = evdb_error_outcome_unknown(evdb_future_error(f));
    evdb_future_unref(f);
}

START_TEST(outcome_known_means_not_applied)
{
    const backend *b = &backends[_i];
    const char *table = _i == 0 ? "iso_prop_pg" : "iso_prop_my";
    evdb_pool *p = pool_with(b->url(), 2, 0, 0);
    char sql[160], ins[96];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    t_pool_exec_ok(p, sql);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int)%s", table, b->engine);
    t_pool_exec_ok(p, sql);
    snprintf(ins, sizeof ins, b->insert_int, table);
    prop_run *run = calloc(1, sizeof *run);
    prop_ticket *tk = calloc(PROP_INSERTS, sizeof *tk);
    ck_assert(run && tk);
    audit sleeps = {0};
    unsigned seed = 4242;
    for (int i = 0; i < PROP_INSERTS; i++) {
        if (i % 10 == 0) {
            evdb_future *s = t_pool_submit(
                p, _i == 0 ? "SELECT pg_sleep(0.03)" : "SELECT SLEEP(0.03)", NULL, 0, 0, 0);
            watch(&sleeps, s);
            evdb_future_unref(s);
        }
        evdb_value v = evdb_int(i);
        evdb_future *f = t_pool_submit(p, ins, &v, 1, 0.002 + 0.004 * (rand_r(&seed) % 100), 0);
        tk[i].run = run;
        tk[i].id = i;
        run->a.submitted++;
        ck_assert_int_eq(evdb_future_on_done(f, on_prop, &tk[i]), 0);
        if (i % 17 == 3)
            evdb_future_cancel(f);
        if (i % 50 == 49)
            t_sleep(L, 0.01);
    }
    audit_close(&run->a);
    audit_close(&sleeps);
    t_sleep(L, 0.3); /* cancels settled */
    evdb_conn *fresh = t_conn_open(L, b->url(), NULL);
    snprintf(sql, sizeof sql, "SELECT id, count(*) FROM %s GROUP BY id", table);
    evdb_future *f = t_run_ok(fresh, sql, NULL, 0);
    const evdb_result *r = evdb_future_result(f);
    int *seen = calloc(PROP_INSERTS, sizeof *seen);
    ck_assert_ptr_nonnull(seen);
    for (size_t row = 0; row < evdb_result_nrows(r); row++) {
        int64_t id = t_cell_int(r, row, 0);
        ck_assert(id >= 0 && id < PROP_INSERTS);
        seen[id] = (int)t_cell_int(r, row, 1);
    }
    evdb_future_unref(f);
    int ok = 0, known = 0, unknown = 0, unknown_applied = 0;
    for (int i = 0; i < PROP_INSERTS; i++) {
        int st = run->status[i];
        if (st == 0) {
            ok++;
            ck_assert_msg(seen[i] == 1, "insert %d succeeded, found %d times", i, seen[i]);
        } else if (!run->unknown[i]) {
            known++;
            ck_assert_msg(seen[i] == 0,
                          "insert %d failed with %s saying it did not take effect, found %d "
                          "times",
                          i, evdb_err_name(st), seen[i]);
        } else {
            unknown++;
            unknown_applied += seen[i];
            ck_assert_msg(seen[i] <= 1, "insert %d found %d times", i, seen[i]);
        }
        ck_assert_msg(st == 0 || st == EVDB_ETIMEDOUT || st == EVDB_ECANCELED, "insert %d: %s", i,
                      evdb_err_name(st));
    }
    fprintf(stderr,
            "%s outcome property: %d ok, %d failed and known not applied, %d unknown (%d of "
            "them applied)\n",
            b->name, ok, known, unknown, unknown_applied);
    ck_assert_int_gt(known, 0);
    free(seen);
    free(run);
    free(tk);
    t_conn_close(fresh);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    t_pool_exec_ok(p, sql);
    t_pool_close(p);
}
END_TEST

/* ------------------------------------------------- 7. pooled BEGIN */

/* evdb_pool_query refuses sql at once (NULL, EVDB_EINVAL) or fails its
 * future with EVDB_EINVAL; the message points to acquire / transaction. */
static void expect_refused(evdb_pool *p, const char *sql)
{
    evdb_future *f = evdb_pool_query(p, sql, NULL, 0, NULL);
    const evdb_error *e;
    int rc;
    if (!f) {
        e = evdb_last_error();
        rc = evdb_error_code(e);
    } else {
        rc = t_wait(f);
        e = evdb_future_error(f);
    }
    ck_assert_msg(rc == EVDB_EINVAL, "pooled '%s': wanted EVDB_EINVAL, got %s: %s", sql,
                  evdb_err_name(rc), evdb_error_message(e));
    const char *m = evdb_error_message(e);
    ck_assert_msg(strstr(m, "evdb_pool_acquire") || strstr(m, "evdb_pool_transaction"),
                  "pooled '%s': the message names neither evdb_pool_acquire nor "
                  "evdb_pool_transaction: %s",
                  sql, m);
    evdb_future_unref(f);
}

/* Pooled autocommit queries never leave their shared connection inside a
 * transaction block. On a pool of one connection: BEGIN / START
 * TRANSACTION are refused, in any spelling; a string that ends inside a
 * transaction fails and is rolled back; the queries after it run in
 * autocommit (visible from another session at once); a string that opens
 * and closes its own transaction is fine. */
START_TEST(pooled_begin_is_refused)
{
    const backend *b = &backends[_i];
    const char *table = _i == 0 ? "iso_begin_pg" : "iso_begin_my";
    evdb_pool *p = pool_with(b->url(), 1, 0, 5);
    char sql[200];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    t_pool_exec_ok(p, sql);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int)%s", table, b->engine);
    t_pool_exec_ok(p, sql);

    expect_refused(p, "BEGIN");
    expect_refused(p, "START TRANSACTION");
    expect_refused(p, "begin");
    expect_refused(p, "  Start Transaction ;");
    expect_refused(p,
                   _i == 0 ? "BEGIN ISOLATION LEVEL SERIALIZABLE" : "START TRANSACTION READ WRITE");
    if (_i == 0) {
        expect_refused(p, "BEGIN WORK");
        expect_refused(p, "START TRANSACTION READ ONLY");
    } else {
        expect_refused(p, "BEGIN WORK");
        expect_refused(p, "START TRANSACTION WITH CONSISTENT SNAPSHOT");
    }
    /* Hidden, or ending inside a transaction: refused, or run, rolled
     * back and failed. Each submitted without waiting and followed at once
     * by two pooled inserts, which must run in autocommit all the same
     * (visible at once from a fresh session), never inside a block left
     * open by their neighbour. */
    char hidden[16][128] = {
        "/* hidden */ BEGIN",
        "-- a comment\nBEGIN",
        "/**/BEGIN",
        "\t\n BEGIN\n",
        "bEgIn",
        "START/**/TRANSACTION",
        "/* a /* nested */ comment */ BEGIN",
        ";BEGIN",
        "BEGIN;;",
        "\357\273\277BEGIN" /* a byte order mark, then BEGIN */,
    };
    size_t nhidden = 10;
    snprintf(hidden[nhidden++], sizeof hidden[0], "INSERT INTO %s VALUES (-1); BEGIN", table);
    snprintf(hidden[nhidden++], sizeof hidden[0], "INSERT INTO %s VALUES (-2); START TRANSACTION",
             table);
    snprintf(hidden[nhidden++], sizeof hidden[0], "SELECT 1; %s; INSERT INTO %s VALUES (-3)",
             _i == 0 ? "BEGIN" : "START TRANSACTION", table);
    /* Commits its insert (1000) itself, then chains a new block. */
    snprintf(hidden[nhidden++], sizeof hidden[0],
             "%s; INSERT INTO %s VALUES (1000); COMMIT AND CHAIN",
             _i == 0 ? "BEGIN" : "START TRANSACTION", table);
    evdb_future *bad[16], *fs[2 * 16 + 20];
    audit a = {0};
    char ins[96];
    snprintf(ins, sizeof ins, b->insert_int, table);
    int nins = 0;
    for (size_t k = 0; k < nhidden; k++) {
        bad[k] = evdb_pool_query(p, hidden[k], NULL, 0, NULL);
        if (bad[k])
            watch(&a, bad[k]);
        for (int j = 0; j < 2; j++) {
            evdb_value v = evdb_int(nins);
            fs[nins] = t_pool_submit(p, ins, &v, 1, 0, 0);
            watch(&a, fs[nins++]);
        }
    }
    /* 20 pooled inserts afterwards, likewise. */
    for (int i = 0; i < 20; i++) {
        evdb_value v = evdb_int(nins);
        fs[nins] = t_pool_submit(p, ins, &v, 1, 0, 0);
        watch(&a, fs[nins++]);
    }
    audit_close(&a);
    for (size_t k = 0; k < nhidden; k++) {
        if (!bad[k])
            continue;
        ck_assert_msg(evdb_future_status(bad[k]) != 0,
                      "pooled '%s' succeeded (left a transaction open?)", hidden[k]);
        evdb_future_unref(bad[k]);
    }
    for (int i = 0; i < nins; i++) {
        ck_assert_msg(evdb_future_status(fs[i]) == 0, "insert %d: %s", i,
                      evdb_error_message(evdb_future_error(fs[i])));
        evdb_future_unref(fs[i]);
    }
    evdb_conn *fresh = t_conn_open(L, b->url(), NULL);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE id BETWEEN 0 AND 999", table);
    ck_assert_int_eq(t_query_int(fresh, sql), nins);
    /* Rolled back: PostgreSQL runs a string of several statements in one
     * implicit transaction, so nothing of -1, -2, -3 stays; MariaDB commits
     * each statement before the BEGIN on its own (autocommit), so only -3,
     * inserted inside the block, must be gone. */
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE id %s", table,
             _i == 0 ? "< 0" : "= -3");
    ck_assert_int_eq(t_query_int(fresh, sql), 0);

    /* A string that opens and closes its own transaction is fine. */
    snprintf(sql, sizeof sql, "%s; INSERT INTO %s VALUES (100); COMMIT",
             _i == 0 ? "BEGIN" : "START TRANSACTION", table);
    t_pool_exec_ok(p, sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE id = 100", table);
    ck_assert_int_eq(t_query_int(fresh, sql), 1);
    t_conn_close(fresh);
    /* The pool still serves, outside any transaction. */
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.broken, 0);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    t_pool_exec_ok(p, sql);
    t_pool_close(p);
}
END_TEST

/* --------------- issue 14 (8): stats, stale handles, refused queries */

/* Issue 14 (8): the pool's stats count every outcome, a query that times
 * out while queued on its connection (not yet sent) included. On a
 * pipelined pool of one: rounds of a head that times out while running,
 * then (every other round once its cancel is under way, which holds the
 * connection's queue until it settles) queries with timeouts of a few
 * milliseconds, several-statement strings and EVDB_QUERY_NO_PIPELINE among
 * them: they run out waiting, queued on the connection, pipelined or
 * running, and the stats count each. */
START_TEST(pg_pool_stats_count_every_timeout)
{
    evdb_pool *p = pool_with(t_pg_url(), 1, 0, 0);
    t_pool_exec_ok(p, "SELECT 1");
    evdb_pool_stats before, after;
    evdb_pool_stats_get(p, &before);
    enum { ROUNDS = 8, PER = 40, N = ROUNDS * (PER + 1) };
    evdb_future **fs = calloc(N, sizeof *fs);
    ck_assert_ptr_nonnull(fs);
    audit a = {0};
    unsigned seed = 8;
    int n = 0;
    for (int r = 0; r < ROUNDS; r++) {
        fs[n] = t_pool_submit(p, "SELECT pg_sleep(0.2)", NULL, 0, 0.02, 0);
        watch(&a, fs[n++]);
        if (r % 2)
            t_sleep(L, 0.02);
        for (int i = 0; i < PER; i++) {
            double timeout = 0.001 + 0.0005 * (rand_r(&seed) % 60);
            fs[n] = t_pool_submit(p, i % 5 == 2 ? "SELECT 1; SELECT 2" : "SELECT 1", NULL, 0,
                                  timeout, i % 5 == 1 ? EVDB_QUERY_NO_PIPELINE : 0);
            watch(&a, fs[n++]);
        }
        t_sleep(L, 0.03);
    }
    audit_close(&a);
    uint64_t timeouts = 0, errors = 0;
    for (int i = 0; i < n; i++) {
        int st = evdb_future_status(fs[i]);
        timeouts += st == EVDB_ETIMEDOUT;
        errors += st < 0 && st != EVDB_ECANCELED;
        evdb_future_unref(fs[i]);
    }
    free(fs);
    evdb_pool_stats_get(p, &after);
    ck_assert_uint_eq(after.queries - before.queries, (uint64_t)n);
    ck_assert_msg(after.query_timeouts - before.query_timeouts == timeouts &&
                      after.query_errors - before.query_errors == errors,
                  "%llu timed out (%llu errors); the stats count %llu timeouts, %llu errors",
                  (unsigned long long)timeouts, (unsigned long long)errors,
                  (unsigned long long)(after.query_timeouts - before.query_timeouts),
                  (unsigned long long)(after.query_errors - before.query_errors));
    ck_assert_uint_gt(timeouts, ROUNDS);
    t_pool_close(p);
}
END_TEST

/* Issue 14 (8): a connection handle released once is stale; releasing it
 * again after the connection was lent to someone else is an error and
 * never touches the new borrower's session. */
START_TEST(stale_release_never_touches_the_next_borrower)
{
    const backend *b = &backends[_i];
    const char *table = _i == 0 ? "iso_stale_pg" : "iso_stale_my";
    evdb_pool *p = pool_with(b->url(), 1, 0, 0);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", table);
    t_pool_exec_ok(p, sql);
    snprintf(sql, sizeof sql, "CREATE TABLE %s (id int)%s", table, b->engine);
    t_pool_exec_ok(p, sql);
    evdb_future *a1 = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(a1), 0);
    evdb_conn *first = evdb_future_take_conn(a1);
    evdb_future_unref(a1);
    ck_assert_int_eq(evdb_conn_release(first), 0);
    evdb_future *a2 = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(a2), 0);
    evdb_conn *second = evdb_future_take_conn(a2);
    evdb_future_unref(a2);
    t_exec_ok(second, _i == 0 ? "BEGIN" : "START TRANSACTION");
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (1)", table);
    t_exec_ok(second, sql);
    /* The stale handle: an error, whatever it points at now. */
    ck_assert_int_eq(evdb_conn_release(first), EVDB_EINVAL);
    evdb_future *f = evdb_conn_query(first, "SELECT 1", NULL, 0, NULL);
    ck_assert_msg(f == NULL, "a query on a released handle was accepted");
    /* Every other call on it refuses too, and never reaches the session. */
    evdb_stmt one = {"SELECT 1", NULL, 0};
    ck_assert_ptr_null(evdb_conn_batch(first, &one, 1, NULL));
    ck_assert_ptr_null(evdb_conn_close(first));
    ck_assert_int_ne(evdb_conn_status(first), 0);
    ck_assert_int_eq(evdb_conn_server_id(first), 0);
    ck_assert_uint_eq(evdb_conn_pending(first), 0);
    ck_assert_int_ne(evdb_conn_set_notice_hook(first, NULL, NULL), 0);
    if (_i == 0)
        ck_assert_ptr_null(evdb_conn_prepare(first, "SELECT 1", NULL, 0, NULL));
    ck_assert_int_eq(evdb_conn_release(first), EVDB_EINVAL);
    /* The borrower's transaction is intact. */
    ck_assert_int_eq(evdb_conn_status(second), 0);
    snprintf(sql, sizeof sql, "INSERT INTO %s VALUES (2)", table);
    t_exec_ok(second, sql);
    t_exec_ok(second, "COMMIT");
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    ck_assert_int_eq(t_query_int(second, sql), 2);
    ck_assert_int_eq(evdb_conn_release(second), 0);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    t_pool_exec_ok(p, sql);
    t_pool_close(p);
}
END_TEST

/* Found while writing these tests: a pooled query refused as it is handed
 * to its connection (PostgreSQL: a text parameter with a NUL byte;
 * MariaDB: a pooled BEGIN) must not stall the pool's queue behind it. On
 * a pool of one connection without pipelining, a slow query, then refused
 * and good queries alternately, all submitted at once: the refused ones
 * fail with EVDB_EINVAL, the good ones answer at once after the slow one,
 * never after the acquire timeout. */
START_TEST(refused_query_never_stalls_the_pool_queue)
{
    const backend *b = &backends[_i];
    evdb_pool *p = pool_with(b->url(), 1, 1, 3);
    t_pool_exec_ok(p, "SELECT 1");
    evdb_value nul = evdb_textn("a\0b", 3);
    enum { N = 7 };
    evdb_future *fs[N];
    audit a = {0};
    double t0 = t_now();
    fs[0] = t_pool_submit(p, _i == 0 ? "SELECT pg_sleep(0.1)" : "SELECT SLEEP(0.1)", NULL, 0, 0, 0);
    for (int k = 1; k < N; k++) {
        if (k % 2)
            fs[k] = _i == 0 ? t_pool_submit(p, "SELECT $1::text", &nul, 1, 0, 0)
                            : t_pool_submit(p, "BEGIN", NULL, 0, 0, 0);
        else
            fs[k] = t_pool_submit(p, "SELECT 2", NULL, 0, 0, 0);
    }
    for (int k = 0; k < N; k++)
        watch(&a, fs[k]);
    audit_close(&a);
    double took = t_now() - t0;
    for (int k = 0; k < N; k++) {
        int st = evdb_future_status(fs[k]);
        ck_assert_msg(st == (k % 2 ? EVDB_EINVAL : 0), "query %d: %s: %s", k, evdb_err_name(st),
                      evdb_error_message(evdb_future_error(fs[k])));
        evdb_future_unref(fs[k]);
    }
    ck_assert_msg(took < 1.0, "the queue took %.2f s", took);
    t_pool_close(p);
}
END_TEST

/* ------------------------------------------------ 8. explicit batches */

static evdb_future *pbatch(evdb_pool *p, const evdb_stmt *st, size_t n, double timeout)
{
    evdb_query_opts o = with_timeout(timeout);
    evdb_future *f = evdb_pool_batch(p, st, n, &o);
    ck_assert_msg(f != NULL, "evdb_pool_batch: %s", evdb_error_message(evdb_last_error()));
    return f;
}

static evdb_future *cbatch(evdb_conn *c, const evdb_stmt *st, size_t n, double timeout)
{
    evdb_query_opts o = with_timeout(timeout);
    evdb_future *f = evdb_conn_batch(c, st, n, &o);
    ck_assert_msg(f != NULL, "evdb_conn_batch: %s", evdb_error_message(evdb_last_error()));
    return f;
}

/* The batch failed with code/sqlstate and its message starts with prefix
 * (when not NULL). */
static void expect_batch_fail(evdb_future *f, int code, const char *sqlstate, const char *prefix)
{
    t_expect_fail(f, code, sqlstate);
    const char *m = evdb_error_message(evdb_future_error(f));
    if (prefix)
        ck_assert_msg(strncmp(m, prefix, strlen(prefix)) == 0,
                      "message '%s' does not start with '%s'", m, prefix);
}

/* A batch evdb_pool_batch must not run: refused at once (NULL) or failed. */
static void expect_batch_not_run(evdb_pool *p, const evdb_stmt *st, size_t n, const char *what)
{
    evdb_future *f = evdb_pool_batch(p, st, n, NULL);
    if (!f)
        return;
    int rc = t_wait(f);
    ck_assert_msg(rc != 0, "batch with %s succeeded", what);
    evdb_future_unref(f);
}

/* Batches on both servers: all or nothing (a failing last statement
 * leaves no row, its message says which statement), a good batch's results
 * chained in order, refusals of empty / transaction-control batches that
 * would break all-or-nothing, inside the caller's own transaction, and
 * timed out (waiting behind a slow query, or running). */
START_TEST(batch_is_all_or_nothing)
{
    const backend *b = &backends[_i];
    bool pg = _i == 0;
    const char *table = pg ? "iso_batch_pg" : "iso_batch_my";
    const char *ph = pg ? "$1" : "?";
    evdb_pool *p = t_pool_new(L, b->url(), NULL);
    evdb_conn *fresh = t_conn_open(L, b->url(), NULL);
    char sql[8][160];
    snprintf(sql[0], sizeof sql[0], "DROP TABLE IF EXISTS %s", table);
    t_pool_exec_ok(p, sql[0]);
    snprintf(sql[0], sizeof sql[0], "CREATE TABLE %s (id int PRIMARY KEY, note varchar(32))%s",
             table, b->engine);
    t_pool_exec_ok(p, sql[0]);
    audit a = {0};

    /* [INSERT 1, INSERT 2, failing] */
    snprintf(sql[0], sizeof sql[0], "INSERT INTO %s VALUES (1, 'a')", table);
    snprintf(sql[1], sizeof sql[1], "INSERT INTO %s VALUES (2, 'b')", table);
    snprintf(sql[2], sizeof sql[2], "INSERT INTO %s VALUES (1, 'dup')", table);
    evdb_stmt bad[3] = {
        {sql[0], NULL, 0}, {sql[1], NULL, 0}, {pg ? "SELECT 1/0" : sql[2], NULL, 0}};
    evdb_future *f = pbatch(p, bad, 3, 0);
    watch(&a, f);
    expect_batch_fail(f, EVDB_ESERVER, pg ? "22012" : "23000", "batch statement 3 of 3");
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(f)));
    evdb_future_unref(f);
    if (pg) {
        /* A unique violation in the middle, likewise. */
        evdb_stmt dup[3] = {{sql[0], NULL, 0}, {sql[2], NULL, 0}, {sql[1], NULL, 0}};
        f = pbatch(p, dup, 3, 0);
        watch(&a, f);
        expect_batch_fail(f, EVDB_ESERVER, "23505", "batch statement 2 of 3");
        evdb_future_unref(f);
    }
    snprintf(sql[7], sizeof sql[7], "SELECT count(*) FROM %s", table);
    ck_assert_int_eq(t_query_int(fresh, sql[7]), 0);

    /* A good batch: results chained in order. */
    snprintf(sql[0], sizeof sql[0], "INSERT INTO %s VALUES (10, 'x')", table);
    snprintf(sql[1], sizeof sql[1], "INSERT INTO %s VALUES (%s, 'y')", table, ph);
    snprintf(sql[2], sizeof sql[2], "SELECT count(*) FROM %s", table);
    snprintf(sql[3], sizeof sql[3], "SELECT note FROM %s WHERE id = %s", table, ph);
    evdb_value v11 = evdb_int(11), v10 = evdb_int(10);
    evdb_stmt good[4] = {
        {sql[0], NULL, 0}, {sql[1], &v11, 1}, {sql[2], NULL, 0}, {sql[3], &v10, 1}};
    f = pbatch(p, good, 4, 0);
    watch(&a, f);
    ck_assert_msg(t_wait(f) == 0, "good batch: %s", evdb_error_message(evdb_future_error(f)));
    const evdb_result *r = evdb_future_result(f);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(evdb_result_affected(r), 1);
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(evdb_result_affected(r), 1);
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(t_cell_int(r, 0, 0), 2);
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    t_expect_cell(r, 0, 0, "x");
    ck_assert_ptr_null(evdb_result_next(r));
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(fresh, sql[7]), 2);

    /* Refused at once: nothing, NULL or empty SQL, too many. */
    ck_assert_ptr_null(evdb_pool_batch(p, good, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_pool_batch(p, NULL, 2, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_stmt empty[2] = {{sql[0], NULL, 0}, {"", NULL, 0}};
    ck_assert_ptr_null(evdb_pool_batch(p, empty, 2, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_stmt nul[2] = {{sql[0], NULL, 0}, {NULL, NULL, 0}};
    ck_assert_ptr_null(evdb_pool_batch(p, nul, 2, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_stmt *many = calloc((size_t)EVDB_BATCH_MAX + 1, sizeof *many);
    ck_assert_ptr_nonnull(many);
    for (size_t k = 0; k <= EVDB_BATCH_MAX; k++)
        many[k].sql = "SELECT 1";
    ck_assert_ptr_null(evdb_pool_batch(p, many, (size_t)EVDB_BATCH_MAX + 1, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    free(many);

    /* Transaction control inside a batch would break all or nothing: not
     * run, and nothing of it stays. */
    snprintf(sql[0], sizeof sql[0], "INSERT INTO %s VALUES (20, 'c')", table);
    snprintf(sql[1], sizeof sql[1], "INSERT INTO %s VALUES (21, 'c'); COMMIT", table);
    evdb_stmt commit_mid[3] = {{sql[0], NULL, 0}, {"COMMIT", NULL, 0}, {b->fail_sql, NULL, 0}};
    expect_batch_not_run(p, commit_mid, 3, "COMMIT in the middle");
    evdb_stmt begin_first[2] = {{pg ? "BEGIN" : "START TRANSACTION", NULL, 0}, {sql[0], NULL, 0}};
    expect_batch_not_run(p, begin_first, 2, "BEGIN first");
    evdb_stmt multi[3] = {{sql[0], NULL, 0}, {sql[1], NULL, 0}, {b->fail_sql, NULL, 0}};
    expect_batch_not_run(p, multi, 3, "a several-statement entry");
    evdb_stmt rollback_end[2] = {{sql[0], NULL, 0}, {"ROLLBACK", NULL, 0}};
    expect_batch_not_run(p, rollback_end, 2, "ROLLBACK last");
    ck_assert_int_eq(t_query_int(fresh, sql[7]), 2);

    /* Inside the caller's own transaction: PostgreSQL aborts the block
     * (COMMIT answers ROLLBACK or fails), MariaDB rolls back to a savepoint
     * (the earlier INSERT commits, the batch's does not). */
    evdb_future *af = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(af), 0);
    evdb_conn *c = evdb_future_take_conn(af);
    evdb_future_unref(af);
    t_exec_ok(c, pg ? "BEGIN" : "START TRANSACTION");
    snprintf(sql[0], sizeof sql[0], "INSERT INTO %s VALUES (30, 'own')", table);
    t_exec_ok(c, sql[0]);
    snprintf(sql[1], sizeof sql[1], "INSERT INTO %s VALUES (31, 'batch')", table);
    snprintf(sql[2], sizeof sql[2], "INSERT INTO %s VALUES (31, 'dup')", table);
    evdb_stmt inner[2] = {{sql[1], NULL, 0}, {sql[2], NULL, 0}};
    f = cbatch(c, inner, 2, 0);
    watch(&a, f);
    expect_batch_fail(f, EVDB_ESERVER, pg ? "23505" : "23000", "batch statement 2 of 2");
    evdb_future_unref(f);
    f = t_submit(c, "COMMIT", NULL, 0, 0, 0);
    watch(&a, f);
    int rc = t_wait(f);
    if (pg && rc == 0)
        ck_assert_str_eq(evdb_result_command(evdb_future_result(f)), "ROLLBACK");
    if (!pg)
        ck_assert_msg(rc == 0, "COMMIT: %s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    ck_assert_int_eq(count_where(fresh, table, "id = 30"), pg ? 0 : 1);
    ck_assert_int_eq(count_where(fresh, table, "id = 31"), 0);

    /* Timeouts: a batch that times out while it waits behind a slow query
     * (rounds with deadlines before and after the slow one ends), and one
     * whose own last statement outlasts its deadline. All or nothing
     * still; nothing when it says it did not run; nothing at all when it
     * was stopped while running (its transaction rolled back, not
     * committed after its future failed). */
    evdb_conn *bc = t_conn_open(L, b->url(), NULL);
    snprintf(sql[0], sizeof sql[0], "INSERT INTO %s VALUES (%s, 't')", table, ph);
    for (int round = 0; round < 5; round++) {
        int id0 = 60 + 2 * round;
        evdb_value ids[2] = {evdb_int(id0), evdb_int(id0 + 1)};
        evdb_stmt two[2] = {{sql[0], &ids[0], 1}, {sql[0], &ids[1], 1}};
        evdb_future *head =
            t_submit(bc, pg ? "SELECT pg_sleep(0.2)" : "SELECT SLEEP(0.2)", NULL, 0, 0, 0);
        f = cbatch(bc, two, 2, 0.05 + 0.05 * round);
        watch(&a, head);
        watch(&a, f);
        audit_close(&a);
        ck_assert_int_eq(evdb_future_status(head), 0);
        int st = evdb_future_status(f);
        bool unknown = evdb_error_outcome_unknown(evdb_future_error(f));
        t_sleep(L, 0.05);
        char where[64];
        snprintf(where, sizeof where, "id IN (%d, %d)", id0, id0 + 1);
        int64_t n = count_where(fresh, table, where);
        ck_assert_msg(n == 0 || n == 2, "round %d: half a batch took effect (%lld rows)", round,
                      (long long)n);
        if (st == 0)
            ck_assert_int_eq(n, 2);
        else
            ck_assert_msg(st == EVDB_ETIMEDOUT && (unknown || n == 0),
                          "round %d: %s, outcome %s, %lld rows", round, evdb_err_name(st),
                          unknown ? "unknown" : "known", (long long)n);
        evdb_future_unref(head);
        evdb_future_unref(f);
    }
    evdb_value id80 = evdb_int(80);
    evdb_stmt slow[3] = {{sql[0], &id80, 1},
                         {pg ? "SELECT pg_sleep(3)" : "SELECT SLEEP(3)", NULL, 0},
                         {"SELECT 1", NULL, 0}};
    double t0 = t_now();
    f = cbatch(bc, slow, 3, 0.3);
    watch(&a, f);
    t_expect_fail(f, EVDB_ETIMEDOUT, NULL);
    ck_assert_msg(t_now() - t0 < 0.7, "the batch timed out after %.2f s", t_now() - t0);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(f)));
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(bc, "SELECT 9"), 9);
    ck_assert_msg(t_now() - t0 < 2.0, "the connection served again after %.2f s", t_now() - t0);
    t_sleep(L, 0.1);
    ck_assert_int_eq(count_where(fresh, table, "id = 80"), 0);
    t_conn_close(bc);

    audit_close(&a);
    snprintf(sql[0], sizeof sql[0], "DROP TABLE %s", table);
    t_pool_exec_ok(p, sql[0]);
    t_conn_close(fresh);
    t_pool_close(p);
}
END_TEST

/* PostgreSQL batches: a deferred constraint failing at the batch's commit
 * fails the batch and leaves nothing; SET LOCAL in a batch is seen by its
 * later statements only; batches pipelined among independent queries on
 * one connection fail alone, in submission order. */
START_TEST(pg_batch_semantics)
{
    evdb_pool *p = pool_with(t_pg_url(), 1, 0, 0);
    evdb_conn *fresh = t_conn_open(L, t_pg_url(), NULL);
    t_pool_exec_ok(p, "DROP TABLE IF EXISTS iso_batch_def, iso_batch_seq");
    t_pool_exec_ok(p, "CREATE TABLE iso_batch_def (id int, k int, CONSTRAINT iso_batch_def_k_key "
                      "UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)");
    t_pool_exec_ok(p, "CREATE TABLE iso_batch_seq (id int PRIMARY KEY)");
    audit a = {0};

    /* Deferred unique constraint: fails at the batch's commit. */
    evdb_stmt def[3] = {{"INSERT INTO iso_batch_def VALUES (1, 7)", NULL, 0},
                        {"INSERT INTO iso_batch_def VALUES (2, 7)", NULL, 0},
                        {"INSERT INTO iso_batch_def VALUES (3, 8)", NULL, 0}};
    evdb_future *f = pbatch(p, def, 3, 0);
    watch(&a, f);
    t_expect_fail(f, EVDB_ESERVER, "23505");
    ck_assert_str_eq(evdb_error_constraint(evdb_future_error(f)), "iso_batch_def_k_key");
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(fresh, "SELECT count(*) FROM iso_batch_def"), 0);

    /* SET LOCAL / set_config(..., true) in a batch: seen by the batch's
     * later statements, not by the next pooled query on that connection. */
    evdb_value tenant = evdb_text("batch-tenant");
    evdb_stmt set[4] = {{"SET LOCAL app.tenant = 'batch-local'", NULL, 0},
                        {"SELECT current_setting('app.tenant', true)", NULL, 0},
                        {"SELECT set_config('app.tenant', $1, true)", &tenant, 1},
                        {"SELECT current_setting('app.tenant', true)", NULL, 0}};
    f = pbatch(p, set, 4, 0);
    watch(&a, f);
    ck_assert_msg(t_wait(f) == 0, "SET LOCAL batch: %s", evdb_error_message(evdb_future_error(f)));
    const evdb_result *r = evdb_result_next(evdb_future_result(f));
    ck_assert_ptr_nonnull(r);
    t_expect_cell(r, 0, 0, "batch-local");
    r = evdb_result_next(evdb_result_next(r));
    ck_assert_ptr_nonnull(r);
    t_expect_cell(r, 0, 0, "batch-tenant");
    evdb_future_unref(f);
    f = t_pool_run_ok(p, "SELECT current_setting('app.tenant', true)", NULL, 0);
    const char *after = cell(evdb_future_result(f), 0, 0);
    ck_assert_msg(strcmp(after, "NULL") == 0 || !after[0],
                  "the next pooled query sees app.tenant = '%s'", after);
    evdb_future_unref(f);

    /* The same with the reads pipelined right behind the batch on the
     * pool's one connection: the batch's transaction ended at its Sync. */
    evdb_future *reads[5];
    f = pbatch(p, set, 4, 0);
    watch(&a, f);
    for (int k = 0; k < 5; k++) {
        reads[k] = t_pool_submit(p, "SELECT current_setting('app.tenant', true)", NULL, 0, 0, 0);
        watch(&a, reads[k]);
    }
    audit_close(&a);
    ck_assert_int_eq(evdb_future_status(f), 0);
    evdb_future_unref(f);
    for (int k = 0; k < 5; k++) {
        ck_assert_int_eq(evdb_future_status(reads[k]), 0);
        after = cell(evdb_future_result(reads[k]), 0, 0);
        ck_assert_msg(strcmp(after, "NULL") == 0 || !after[0],
                      "a pooled query pipelined behind the batch sees app.tenant = '%s'", after);
        evdb_future_unref(reads[k]);
    }

    /* Batches pipelined among independent queries on one connection. */
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    seq_log log = {0};
    seq_ticket tk[7];
    evdb_stmt b1[2] = {{"INSERT INTO iso_batch_seq VALUES (21)", NULL, 0}, {"SELECT 1/0", NULL, 0}};
    evdb_stmt b2[2] = {{"INSERT INTO iso_batch_seq VALUES (23)", NULL, 0},
                       {"INSERT INTO iso_batch_seq VALUES (24)", NULL, 0}};
    evdb_future *fs[7];
    fs[0] = t_submit(c, "INSERT INTO iso_batch_seq VALUES (20)", NULL, 0, 0, 0);
    fs[1] = cbatch(c, b1, 2, 0);
    fs[2] = t_submit(c, "INSERT INTO iso_batch_seq VALUES (22)", NULL, 0, 0, 0);
    fs[3] = cbatch(c, b2, 2, 0);
    fs[4] = t_submit(c, "SELECT 1/0", NULL, 0, 0, 0);
    fs[5] = t_submit(c, "INSERT INTO iso_batch_seq VALUES (25)", NULL, 0, 0, 0);
    fs[6] = cbatch(c, b2, 2, 0); /* duplicates 23, 24: fails alone */
    for (int k = 0; k < 7; k++) {
        tk[k].log = &log;
        tk[k].idx = k;
        watch(&a, fs[k]);
        ck_assert_int_eq(evdb_future_on_done(fs[k], on_seq, &tk[k]), 0);
    }
    audit_close(&a);
    static const int want_status[7] = {0, EVDB_ESERVER, 0, 0, EVDB_ESERVER, 0, EVDB_ESERVER};
    for (int k = 0; k < 7; k++) {
        ck_assert_int_eq(log.order[k], k);
        ck_assert_msg(evdb_future_status(fs[k]) == want_status[k], "query %d: %s: %s", k,
                      evdb_err_name(evdb_future_status(fs[k])),
                      evdb_error_message(evdb_future_error(fs[k])));
        evdb_future_unref(fs[k]);
    }
    ck_assert_int_eq(log.n, 7);
    f = t_run_ok(fresh, "SELECT string_agg(id::text, ',' ORDER BY id) FROM iso_batch_seq", NULL, 0);
    t_expect_cell(evdb_future_result(f), 0, 0, "20,22,23,24,25");
    evdb_future_unref(f);

    audit_close(&a);

    t_pool_exec_ok(p, "DROP TABLE iso_batch_def, iso_batch_seq");
    t_conn_close(c);
    t_conn_close(fresh);
    t_pool_close(p);
}
END_TEST

/* ------------------------------------------------------------------- suite */

int main(void)
{
    Suite *s = suite_create("isolation_integration");
    TCase *pg = tcase_create("postgres");
    TCase *both = tcase_create("both_backends");
    TCase *all[] = {pg, both};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], TEST_TIMEOUT_S);
        suite_add_tcase(s, all[i]);
    }
    /* In the order of issue 14's findings (and the brief's list). */
    tcase_add_test(pg, pg_tenant_setting_never_leaks_between_pooled_queries);
    tcase_add_loop_test(pg, pg_set_local_timeout_never_cancels_a_neighbour, 0, 2);
    tcase_add_test(pg, pg_hot_row_update_storm_never_deadlocks);
    tcase_add_loop_test(both, ordered_writes_after_a_failing_neighbour, 0, 2);
    tcase_add_test(pg, pg_deferred_constraint_violations_fail_their_own_query);
    tcase_add_loop_test(pg, pg_timed_out_query_behind_another_is_cancelled, 0, 2);
    tcase_add_loop_test(pg, pg_timed_out_query_in_a_transaction_aborts_it, 0, 2);
    tcase_add_test(pg, pg_timeout_of_a_waiting_query_spares_its_neighbours);
    tcase_add_test(pg, pg_timeout_says_whether_the_query_may_have_run);
    tcase_add_loop_test(both, outcome_known_means_not_applied, 0, 2);
    tcase_add_loop_test(both, pooled_begin_is_refused, 0, 2);
    tcase_add_test(pg, pg_pool_stats_count_every_timeout);
    tcase_add_loop_test(both, stale_release_never_touches_the_next_borrower, 0, 2);
    tcase_add_loop_test(both, refused_query_never_stalls_the_pool_queue, 0, 2);
    tcase_add_loop_test(both, batch_is_all_or_nothing, 0, 2);
    tcase_add_test(pg, pg_batch_semantics);
    return t_run_suite(s);
}
