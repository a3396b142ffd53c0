/*
 * Tasks against the real servers (scripts/testdb): thousands of concurrent
 * tasks doing pooled queries with evdb_await, each checking its own
 * results; transactions on an acquired connection inside a task; a task
 * opening, using and closing its own connection; server errors through
 * await; a timeout around a task that waits on a slow query.
 *
 * Each test makes its own loop in its body (Check forks every test).
 */
#include <check.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"

#define WATCHDOG_S 120.0
#define TEST_TIMEOUT_S 180
#define MANY_TASKS 2000
#define QUERIES_PER_TASK 3
#define TXN_TASKS 20
#define POOL_CONNS 8
#define SQL_MAX 256

typedef enum backend { PG, MY } backend;

static const char *url_of(backend b)
{
    const char *u = b == PG ? evdb_test_pg_url() : evdb_test_my_url();
    ck_assert_msg(u != NULL, "no test server: run scripts/testdb start");
    return u;
}

/* Placeholders differ: $1 for PostgreSQL, ? for MariaDB. */
static const char *arith_sql(backend b)
{
    return b == PG ? "SELECT $1::bigint * 1000 + $2::bigint AS v, $3::text AS tag"
                   : "SELECT CAST(? AS SIGNED) * 1000 + CAST(? AS SIGNED) AS v, "
                     "CAST(? AS CHAR) AS tag";
}

static evdb_pool *pool_for(struct ev_loop *loop, backend b)
{
    evdb_pool_opts po = {.max_conns = POOL_CONNS, .acquire_timeout = 60};
    evdb_pool *p = evdb_pool_new(loop, url_of(b), &po);
    ck_assert_msg(p != NULL, "evdb_pool_new: %s", evdb_error_message(evdb_last_error()));
    return p;
}

static void pool_close(evdb_pool *p)
{
    evdb_future *c = evdb_pool_close(p);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(t_wait(c), 0);
    evdb_future_unref(c);
}

/* A query on the pool, awaited. Returns the future (caller unrefs). */
static evdb_future *pooled(evdb_pool *p, const char *sql, const evdb_value *params, size_t n)
{
    evdb_future *q = evdb_pool_query(p, sql, params, n, NULL);
    ck_assert_msg(q != NULL, "evdb_pool_query: %s", evdb_error_message(evdb_last_error()));
    evdb_await(q);
    return q;
}

/* ---- thousands of tasks, pooled queries ---- */

typedef struct crowd {
    evdb_pool *pool;
    backend b;
    int ok;      /* tasks whose every result checked out */
    int running; /* tasks alive right now */
    int max_running;
} crowd;

typedef struct member {
    crowd *c;
    int id;
} member;

static void *crowd_task(void *arg)
{
    member *m = arg;
    crowd *c = m->c;
    if (++c->running > c->max_running)
        c->max_running = c->running;
    char tag[32];
    snprintf(tag, sizeof tag, "task-%d", m->id);
    int good = 0;
    for (int k = 0; k < QUERIES_PER_TASK; k++) {
        evdb_value params[3] = {evdb_int(m->id), evdb_int(k), evdb_text(tag)};
        evdb_future *q = evdb_pool_query(c->pool, arith_sql(c->b), params, 3, NULL);
        if (!q)
            break;
        int st = evdb_await(q);
        if (st != 0) {
            void *r = evdb_task_fail_error(evdb_future_error(q));
            evdb_future_unref(q);
            c->running--;
            return r;
        }
        evdb_result *r = evdb_future_result(q);
        int64_t v = -1;
        const char *t = evdb_result_text(r, 0, 1, NULL);
        if (evdb_result_nrows(r) == 1 && evdb_result_int(r, 0, 0, &v) == 0 &&
            v == (int64_t)m->id * 1000 + k && t && strcmp(t, tag) == 0)
            good++;
        evdb_future_unref(q);
    }
    c->running--;
    if (good == QUERIES_PER_TASK)
        c->ok++;
    return (void *)(intptr_t)good;
}

typedef struct crowd_main_arg {
    struct ev_loop *loop;
    crowd *c;
} crowd_main_arg;

static void *crowd_main(void *arg)
{
    crowd_main_arg *a = arg;
    member *ms = calloc(MANY_TASKS, sizeof *ms);
    evdb_future **ts = calloc(MANY_TASKS, sizeof *ts);
    for (int i = 0; i < MANY_TASKS; i++) {
        ms[i] = (member){a->c, i};
        ts[i] = evdb_task_spawn(a->loop, crowd_task, &ms[i], NULL);
        ck_assert_ptr_nonnull(ts[i]);
    }
    evdb_future *all = evdb_gather(ts, MANY_TASKS, EVDB_GATHER_ALL);
    int st = evdb_await(all);
    void *r = NULL;
    if (st != 0)
        r = evdb_task_fail_error(evdb_future_error(all));
    for (int i = 0; i < MANY_TASKS && st == 0; i++)
        ck_assert_int_eq((intptr_t)evdb_future_value(ts[i]), QUERIES_PER_TASK);
    evdb_future_unref(all);
    for (int i = 0; i < MANY_TASKS; i++)
        evdb_future_unref(ts[i]);
    free(ts);
    free(ms);
    return r;
}

/* Every error in these tests is looked at: the library's own futures
 * (pool internals) must not show up as unobserved failures either. */
static int unobserved;
static void count_unobserved(const evdb_error *err, const char *what, void *arg)
{
    (void)arg;
    unobserved++;
    fprintf(stderr, "unobserved %s future: %s\n", what, evdb_error_message(err));
}

static void many_tasks(backend b)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    evdb_set_unobserved_error_hook(count_unobserved, NULL);
    crowd c = {.pool = pool_for(loop, b), .b = b};
    crowd_main_arg a = {loop, &c};
    double t0 = t_now();
    int st = evdb_run(loop, crowd_main, &a, NULL);
    double dt = t_now() - t0;
    ck_assert_msg(st == 0, "%s: %s", evdb_err_name(st), evdb_error_message(evdb_last_error()));
    ck_assert_int_eq(c.ok, MANY_TASKS);
    /* They really ran concurrently: all were suspended at once. */
    ck_assert_int_ge(c.max_running, MANY_TASKS / 2);
    evdb_pool_stats ps;
    evdb_pool_stats_get(c.pool, &ps);
    ck_assert_uint_le(ps.total, POOL_CONNS);
    fprintf(stderr, "%s: %d tasks x %d queries in %.2f s (%.0f queries/s), %u connections\n",
            b == PG ? "postgres" : "mariadb", MANY_TASKS, QUERIES_PER_TASK, dt,
            MANY_TASKS * QUERIES_PER_TASK / dt, ps.total);
    pool_close(c.pool);
    t_loop_free(loop);
    ck_assert_int_eq(unobserved, 0);
}

START_TEST(pg_thousands_of_tasks)
{
    many_tasks(PG);
}
END_TEST

START_TEST(my_thousands_of_tasks)
{
    many_tasks(MY);
}
END_TEST

/* ---- transactions on an acquired connection ---- */

typedef struct txn_ctx {
    evdb_pool *pool;
    backend b;
    int id;
    bool roll_back; /* fail half-way: nothing of it may remain */
    int committed;
} txn_ctx;

static const char *txn_table(backend b)
{
    return b == PG ? "evdb_task_txn_pg" : "evdb_task_txn_my";
}

/* Run sql on c and await it; on failure record it for the task. */
static int conn_exec(evdb_conn *c, const char *sql, const evdb_value *params, size_t n,
                     int64_t *count_out)
{
    evdb_future *q = evdb_conn_query(c, sql, params, n, NULL);
    if (!q) {
        evdb_task_fail_error(evdb_last_error());
        return EVDB_EINVAL;
    }
    int st = evdb_await(q);
    if (st != 0)
        evdb_task_fail_error(evdb_future_error(q));
    else if (count_out)
        evdb_result_int(evdb_future_result(q), 0, 0, count_out);
    evdb_future_unref(q);
    return st;
}

static void *txn_task(void *arg)
{
    txn_ctx *t = arg;
    /* Wait for a connection of our own. */
    evdb_future *a = evdb_pool_acquire(t->pool, 30);
    ck_assert_ptr_nonnull(a);
    if (evdb_await(a) != 0) {
        void *r = evdb_task_fail_error(evdb_future_error(a));
        evdb_future_unref(a);
        return r;
    }
    evdb_conn *c = evdb_future_take_conn(a);
    evdb_future_unref(a);
    ck_assert_ptr_nonnull(c);

    char ins[SQL_MAX], cnt[SQL_MAX];
    snprintf(ins, sizeof ins, "INSERT INTO %s (task, n) VALUES (%s, %s)", txn_table(t->b),
             t->b == PG ? "$1" : "?", t->b == PG ? "$2" : "?");
    snprintf(cnt, sizeof cnt, "SELECT COUNT(*) FROM %s WHERE task = %s", txn_table(t->b),
             t->b == PG ? "$1" : "?");
    int64_t seen = -1;
    evdb_value id = evdb_int(t->id);
    int st = conn_exec(c, "BEGIN", NULL, 0, NULL);
    for (int n = 0; st == 0 && n < 3; n++) {
        evdb_value p[2] = {evdb_int(t->id), evdb_int(n)};
        st = conn_exec(c, ins, p, 2, NULL);
    }
    /* Inside the transaction our rows are visible to us. */
    if (st == 0)
        st = conn_exec(c, cnt, &id, 1, &seen);
    if (st == 0 && seen != 3) {
        evdb_task_fail(EVDB_EPROTO, "own rows not visible inside the transaction");
        st = EVDB_EPROTO;
    }
    if (st == 0 && t->roll_back) {
        /* A failing statement; then roll back. */
        st = conn_exec(c, t->b == PG ? "SELECT 1/0" : "SELECT * FROM no_such_table_evdb", NULL, 0,
                       NULL);
        ck_assert_int_ne(st, 0);
        conn_exec(c, "ROLLBACK", NULL, 0, NULL);
    } else if (st == 0) {
        st = conn_exec(c, "COMMIT", NULL, 0, NULL);
        if (st == 0)
            t->committed = 1;
    }
    ck_assert_int_eq(evdb_conn_release(c), 0);
    return NULL;
}

typedef struct txn_main_arg {
    struct ev_loop *loop;
    evdb_pool *pool;
    backend b;
    int64_t rows_after;
    int failed_tasks;
} txn_main_arg;

static void *txn_main(void *arg)
{
    txn_main_arg *m = arg;
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, "DROP TABLE IF EXISTS %s", txn_table(m->b));
    evdb_future_unref(pooled(m->pool, sql, NULL, 0));
    snprintf(sql, sizeof sql, "CREATE TABLE %s (task INT NOT NULL, n INT NOT NULL)",
             txn_table(m->b));
    evdb_future *q = pooled(m->pool, sql, NULL, 0);
    ck_assert_msg(evdb_future_status(q) == 0, "%s", evdb_error_message(evdb_future_error(q)));
    evdb_future_unref(q);

    txn_ctx ts[TXN_TASKS];
    evdb_future *fs[TXN_TASKS];
    for (int i = 0; i < TXN_TASKS; i++) {
        ts[i] = (txn_ctx){.pool = m->pool, .b = m->b, .id = i, .roll_back = i % 4 == 3};
        fs[i] = evdb_task_spawn(m->loop, txn_task, &ts[i], NULL);
    }
    evdb_future *g = evdb_gather(fs, TXN_TASKS, 0);
    evdb_await(g);
    for (int i = 0; i < TXN_TASKS; i++) {
        int st = evdb_future_status(fs[i]);
        if (ts[i].roll_back) {
            /* The failed statement failed the task. */
            ck_assert_int_eq(st, EVDB_ESERVER);
            m->failed_tasks++;
        } else {
            ck_assert_msg(st == 0, "task %d: %s", i, evdb_error_message(evdb_future_error(fs[i])));
            ck_assert_int_eq(ts[i].committed, 1);
        }
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);

    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s", txn_table(m->b));
    q = pooled(m->pool, sql, NULL, 0);
    ck_assert_int_eq(evdb_future_status(q), 0);
    evdb_result_int(evdb_future_result(q), 0, 0, &m->rows_after);
    evdb_future_unref(q);
    snprintf(sql, sizeof sql, "DROP TABLE %s", txn_table(m->b));
    evdb_future_unref(pooled(m->pool, sql, NULL, 0));
    return NULL;
}

static void transactions(backend b)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    evdb_set_unobserved_error_hook(count_unobserved, NULL);
    evdb_pool_opts po = {.max_conns = 4, .acquire_timeout = 30};
    evdb_pool *p = evdb_pool_new(loop, url_of(b), &po);
    ck_assert_ptr_nonnull(p);
    txn_main_arg m = {.loop = loop, .pool = p, .b = b};
    int st = evdb_run(loop, txn_main, &m, NULL);
    ck_assert_msg(st == 0, "%s", evdb_error_message(evdb_last_error()));
    ck_assert_int_eq(m.failed_tasks, TXN_TASKS / 4);
    /* Committed rows only: 3 per committing task. */
    ck_assert_int_eq(m.rows_after, 3 * (TXN_TASKS - TXN_TASKS / 4));
    pool_close(p);
    t_loop_free(loop);
    ck_assert_int_eq(unobserved, 0);
}

START_TEST(pg_transactions_in_tasks)
{
    transactions(PG);
}
END_TEST

START_TEST(my_transactions_in_tasks)
{
    transactions(MY);
}
END_TEST

/* ---- own connection: open, query, close; errors through await ---- */

typedef struct own_conn {
    struct ev_loop *loop;
    backend b;
    char sqlstate[6];
    int query_status;
    int close_status;
} own_conn;

static void *own_conn_task(void *arg)
{
    own_conn *o = arg;
    evdb_future *open = evdb_conn_open(o->loop, url_of(o->b), NULL);
    ck_assert_ptr_nonnull(open);
    ck_assert_int_eq(evdb_await(open), 0);
    evdb_conn *c = evdb_future_take_conn(open);
    evdb_future_unref(open);
    ck_assert_ptr_nonnull(c);

    evdb_future *ok = evdb_conn_query(c, "SELECT 41 + 1", NULL, 0, NULL);
    ck_assert_int_eq(evdb_await(ok), 0);
    int64_t v = 0;
    ck_assert_int_eq(evdb_result_int(evdb_future_result(ok), 0, 0, &v), 0);
    ck_assert_int_eq(v, 42);
    evdb_future_unref(ok);

    /* A server error comes back through await with its SQLSTATE. */
    evdb_future *bad = evdb_conn_query(
        c, o->b == PG ? "SELECT 1/0" : "SELECT * FROM no_such_table_evdb", NULL, 0, NULL);
    o->query_status = evdb_await(bad);
    snprintf(o->sqlstate, sizeof o->sqlstate, "%s", evdb_error_sqlstate(evdb_future_error(bad)));
    void *r = evdb_task_fail_error(evdb_future_error(bad));
    evdb_future_unref(bad);

    evdb_future *closed = evdb_conn_close(c);
    o->close_status = evdb_await(closed);
    evdb_future_unref(closed);
    return r;
}

static void own_connection(backend b)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    own_conn o = {.loop = loop, .b = b};
    int st = evdb_run(loop, own_conn_task, &o, NULL);
    ck_assert_int_eq(st, EVDB_ESERVER);
    ck_assert_int_eq(o.query_status, EVDB_ESERVER);
    const char *want = b == PG ? "22012" : "42S02";
    ck_assert_str_eq(o.sqlstate, want);
    /* The task's own error carries it too. */
    ck_assert_str_eq(evdb_error_sqlstate(evdb_last_error()), want);
    ck_assert_int_eq(o.close_status, 0);
    t_loop_free(loop);
}

START_TEST(pg_own_connection_and_errors)
{
    own_connection(PG);
}
END_TEST

START_TEST(my_own_connection_and_errors)
{
    own_connection(MY);
}
END_TEST

/* ---- a timeout around a task stuck in a slow query ---- */

typedef struct slow {
    evdb_pool *pool;
    backend b;
    int status;
    int after;
} slow;

static void *slow_task(void *arg)
{
    slow *s = arg;
    evdb_future *q = evdb_pool_query(
        s->pool, s->b == PG ? "SELECT pg_sleep(10)" : "SELECT SLEEP(10)", NULL, 0, NULL);
    s->status = evdb_await(q);
    evdb_future_unref(q);
    /* Cleanup after the cancellation may still use the pool. */
    evdb_future *again = evdb_pool_query(s->pool, "SELECT 1", NULL, 0, NULL);
    s->after = evdb_await(again);
    evdb_future_unref(again);
    return NULL;
}

static void timeout_around_task(backend b)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    evdb_set_unobserved_error_hook(count_unobserved, NULL);
    slow s = {.pool = pool_for(loop, b), .b = b, .status = 99, .after = 99};
    evdb_future *t = evdb_task_spawn(loop, slow_task, &s, NULL);
    evdb_future *to = evdb_timeout(t, 0.3);
    double t0 = t_now();
    ck_assert_int_eq(t_wait(to), EVDB_ETIMEDOUT);
    ck_assert(t_now() - t0 < 2);
    ck_assert_int_eq(evdb_future_status(t), EVDB_ECANCELED);
    /* Let the task finish its cleanup. */
    while (s.after == 99)
        t_run_for(loop, 0.05);
    ck_assert(t_now() - t0 < 5); /* the query was cancelled on the server */
    ck_assert_int_eq(s.status, EVDB_ECANCELED);
    ck_assert_int_eq(s.after, 0);
    evdb_future_unref(to);
    evdb_future_unref(t);
    pool_close(s.pool);
    t_loop_free(loop);
    ck_assert_int_eq(unobserved, 0);
}

START_TEST(pg_timeout_around_a_task)
{
    timeout_around_task(PG);
}
END_TEST

START_TEST(my_timeout_around_a_task)
{
    timeout_around_task(MY);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integ_task");
    TCase *tc = tcase_create("tasks");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_test(tc, pg_thousands_of_tasks);
    tcase_add_test(tc, my_thousands_of_tasks);
    tcase_add_test(tc, pg_transactions_in_tasks);
    tcase_add_test(tc, my_transactions_in_tasks);
    tcase_add_test(tc, pg_own_connection_and_errors);
    tcase_add_test(tc, my_own_connection_and_errors);
    tcase_add_test(tc, pg_timeout_around_a_task);
    tcase_add_test(tc, my_timeout_around_a_task);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
