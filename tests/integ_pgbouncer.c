/*
 * PgBouncer transaction mode (?evdb_pgbouncer=transaction, docs/postgres.md)
 * through a real PgBouncer 1.18 in transaction mode (scripts/testdb
 * start-pgbouncer: default_pool_size 4 server connections) in front of
 * the throwaway PostgreSQL.
 *
 * - Without the mode, named statements cross between clients: with more
 *   clients than server connections, queries fail ("prepared statement
 *   ... does not exist" / "already exists") or, worse, run another
 *   client's statement. The same load in the mode is all right.
 * - Parameterized queries repeated many times, pipelined on one
 *   connection and through a pool larger than the bouncer's server pool.
 * - Transactions through evdb_pool_transaction; the release reset is
 *   accepted (no discarded connection) and rolls back a block left open.
 * - A timeout cancelled through the bouncer: gone from pg_stat_activity on
 *   the real server, the connection usable, a query pipelined behind it
 *   unharmed.
 * - What the mode refuses, with clear errors; a bad option value.
 * Every callback is counted: exactly once each.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define CLIENTS 8 /* twice the bouncer's server connections */
#define ROUNDS 40
#define MODE "evdb_pgbouncer=transaction"

static struct ev_loop *L;
static char URL[512];       /* the bouncer, in transaction mode */
static char PLAIN_URL[512]; /* the bouncer, without evdb's mode */

static void setup(void)
{
    const char *u = evdb_test_env("EVDB_TEST_PGBOUNCER_URL");
    ck_assert_msg(u != NULL, "no EVDB_TEST_PGBOUNCER_URL: run scripts/testdb start-pgbouncer");
    snprintf(PLAIN_URL, sizeof PLAIN_URL, "%s", u);
    snprintf(URL, sizeof URL, "%s?application_name=pgb_test&" MODE, u);
    L = t_loop_new(120);
}

static void teardown(void)
{
    t_loop_free(L);
}

/* ---- callbacks counted ---- */

typedef struct counted {
    unsigned calls; /* on_done calls */
    int64_t want;   /* the value the query must give */
    int status;
    bool right; /* ok and the right value */
} counted;

static void on_done(evdb_future *f, void *arg)
{
    counted *c = arg;
    c->calls++;
    c->status = evdb_future_status(f);
    const evdb_result *r = c->status == 0 ? evdb_future_result(f) : NULL;
    int64_t v = 0;
    c->right = r && evdb_result_nrows(r) == 1 && evdb_result_int(r, 0, 0, &v) == 0 && v == c->want;
}

static void watch(evdb_future *f, counted *c, int64_t want)
{
    ck_assert_ptr_nonnull(f);
    c->want = want;
    ck_assert_int_eq(evdb_future_on_done(f, on_done, c), 0);
}

/* Wait for all n futures (unreffing them), then check each callback ran
 * exactly once. Returns how many were ok and right. */
static size_t wait_all(evdb_future **fs, counted *cs, size_t n)
{
    evdb_future *g = evdb_gather(fs, n, EVDB_GATHER_ALL);
    ck_assert_ptr_nonnull(g);
    t_wait(g);
    evdb_future_unref(g);
    for (size_t i = 0; i < n; i++)
        evdb_future_unref(fs[i]);
    t_sleep(L, 0.01); /* callbacks run from the loop */
    size_t right = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(cs[i].calls == 1, "callback %zu ran %u times", i, cs[i].calls);
        right += cs[i].right;
    }
    return right;
}

static evdb_conn *open_conn(const char *url, unsigned depth)
{
    evdb_conn_opts o = {.pipeline_depth = depth};
    return t_conn_open(L, url, &o);
}

/* Each of CLIENTS connections runs its own statement text, ROUNDS times,
 * all in flight together: returns how many of the answers were right.
 * timeout (seconds, 0 = none) bounds each query. */
static size_t distinct_statements(const char *url, double timeout, size_t *total)
{
    evdb_query_opts qo = {.timeout = timeout};
    evdb_conn *cs[CLIENTS];
    for (size_t i = 0; i < CLIENTS; i++)
        cs[i] = open_conn(url, 4);
    size_t n = (size_t)CLIENTS * ROUNDS;
    evdb_future **fs = calloc(n, sizeof *fs);
    counted *cn = calloc(n, sizeof *cn);
    ck_assert(fs && cn);
    char sql[CLIENTS][64];
    for (size_t i = 0; i < CLIENTS; i++)
        snprintf(sql[i], sizeof sql[i], "SELECT $1::int8 + %zu", (i + 1) * 1000);
    size_t k = 0;
    for (size_t r = 0; r < ROUNDS; r++) {
        for (size_t i = 0; i < CLIENTS; i++, k++) {
            evdb_value p = evdb_int((int64_t)r);
            fs[k] = evdb_conn_query(cs[i], sql[i], &p, 1, &qo);
            watch(fs[k], &cn[k], (int64_t)r + (int64_t)(i + 1) * 1000);
        }
    }
    size_t right = wait_all(fs, cn, n);
    size_t timed_out = 0;
    for (size_t i = 0; i < n; i++)
        timed_out += cn[i].status == EVDB_ETIMEDOUT;
    if (timed_out)
        fprintf(stderr, "integ_pgbouncer: %zu of %zu queries timed out (%s mode)\n", timed_out, n,
                url == URL ? "with the" : "without the");
    for (size_t i = 0; i < CLIENTS; i++)
        t_conn_close(cs[i]);
    free(fs);
    free(cn);
    *total = n;
    return right;
}

/* Without the mode the bouncer passes a client's named statements to
 * whichever server connection it has. Now and then (about one run in
 * ten, with or without AddressSanitizer) the bouncer also loses answers:
 * looked at with gdb while it happened, one connection had 4 queries in
 * flight and 17 queued behind them; libpq had sent them all (PQflush 0,
 * PQisBusy 1, transaction status ACTIVE), the socket's send and receive
 * queues were empty on both sides, and every server connection of the
 * bouncer was idle outside a transaction (pg_stat_activity). PgBouncer
 * 1.18 dropped them (its log has "FIXME: query end, but query_start ==
 * 0" warnings in those runs); libpq would wait the same. Each query has a
 * timeout here, so that such a one fails like the wrong answers do and
 * says so on stderr; every callback is still counted. With the mode
 * (below) there is no timeout and nothing was ever lost. */
START_TEST(named_statements_break_without_the_mode)
{
    size_t n;
    size_t right = distinct_statements(PLAIN_URL, 10, &n);
    /* Failures (26000, 42P05) and answers from another client's statement. */
    ck_assert_msg(right < n, "all %zu right without the mode: the bouncer kept sessions?", n);
}
END_TEST

START_TEST(distinct_statements_in_the_mode)
{
    size_t n;
    size_t right = distinct_statements(URL, 0, &n);
    ck_assert_uint_eq(right, n);
}
END_TEST

/* One connection, 2,000 parameterized queries in flight through its
 * pipeline: each has its own Sync, and the bouncer keeps the server
 * connection until every Sync it forwarded has been answered. */
START_TEST(pipelined_on_one_connection)
{
    evdb_conn *c = open_conn(URL, 64);
    enum { N = 2000 };
    evdb_future **fs = calloc(N, sizeof *fs);
    counted *cn = calloc(N, sizeof *cn);
    ck_assert(fs && cn);
    for (size_t i = 0; i < N; i++) {
        evdb_value p[2] = {evdb_int((int64_t)i), evdb_text("x")};
        fs[i] = evdb_conn_query(c, "SELECT $1::int8 * 2 + length($2)", p, 2, NULL);
        watch(fs[i], &cn[i], (int64_t)i * 2 + 1);
    }
    ck_assert_uint_eq(wait_all(fs, cn, N), N);
    t_conn_close(c);
    free(fs);
    free(cn);
}
END_TEST

/* A pool of 12 connections (the bouncer has 4 to the server), 3,000
 * pooled queries at once, pipelined onto busy connections. */
START_TEST(pool_larger_than_the_bouncer_pool)
{
    evdb_pool_opts po = {.max_conns = 12, .min_conns = 12};
    evdb_pool *pool = t_pool_new(L, URL, &po);
    enum { N = 3000 };
    evdb_future **fs = calloc(N, sizeof *fs);
    counted *cn = calloc(N, sizeof *cn);
    ck_assert(fs && cn);
    for (size_t i = 0; i < N; i++) {
        evdb_value p = evdb_int((int64_t)i);
        fs[i] = evdb_pool_query(pool, "SELECT $1::int8 + 7", &p, 1, NULL);
        watch(fs[i], &cn[i], (int64_t)i + 7);
    }
    ck_assert_uint_eq(wait_all(fs, cn, N), N);
    evdb_pool_stats st;
    evdb_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.broken, 0);
    ck_assert_uint_eq(st.query_errors, 0);
    t_pool_close(pool);
    free(fs);
    free(cn);
}
END_TEST

/* ---- transactions ---- */

typedef struct txn_arg {
    int64_t id;
    bool fail; /* end with a failing statement: rolled back */
} txn_arg;

static evdb_future *txn_body(evdb_conn *c, void *arg)
{
    const txn_arg *a = arg;
    evdb_value p[2] = {evdb_int(a->id), evdb_int(a->id * 10)};
    evdb_future *f = evdb_conn_query(c, "INSERT INTO pgb_txn VALUES ($1, $2)", p, 2, NULL);
    evdb_future_unref(f);
    f = evdb_conn_query(c, "UPDATE pgb_txn SET v = v + 1 WHERE id = $1", p, 1, NULL);
    evdb_future_unref(f);
    if (a->fail)
        return evdb_conn_query(c, "SELECT 1/0", NULL, 0, NULL);
    /* Sees the block's own rows: the same server connection throughout. */
    return evdb_conn_query(c, "SELECT v FROM pgb_txn WHERE id = $1", p, 1, NULL);
}

START_TEST(transactions_through_the_pool)
{
    evdb_pool_opts po = {.max_conns = 10};
    evdb_pool *pool = t_pool_new(L, URL, &po);
    t_pool_exec_ok(pool, "DROP TABLE IF EXISTS pgb_txn");
    t_pool_exec_ok(pool, "CREATE TABLE pgb_txn (id int8 PRIMARY KEY, v int8)");
    enum { N = 40 };
    evdb_future *fs[N];
    counted cn[N];
    txn_arg args[N];
    memset(cn, 0, sizeof cn);
    for (size_t i = 0; i < N; i++) {
        args[i] = (txn_arg){.id = (int64_t)i + 1, .fail = i % 4 == 3};
        fs[i] = evdb_pool_transaction(pool, txn_body, &args[i], 10);
        watch(fs[i], &cn[i], args[i].id * 10 + 1);
    }
    size_t right = wait_all(fs, cn, N);
    size_t failed = 0;
    for (size_t i = 0; i < N; i++)
        failed += cn[i].status != 0;
    ck_assert_uint_eq(failed, N / 4);
    ck_assert_uint_eq(right, N - N / 4);
    /* The failed ones were rolled back, the others committed. */
    ck_assert_int_eq(t_pool_int(pool, "SELECT count(*) FROM pgb_txn"), N - N / 4);
    ck_assert_int_eq(t_pool_int(pool, "SELECT count(*) FROM pgb_txn WHERE id % 4 = 0"), 0);
    evdb_pool_stats st;
    evdb_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.discarded, 0);
    ck_assert_uint_ge(st.resets, N);
    t_pool_exec_ok(pool, "DROP TABLE pgb_txn");
    t_pool_close(pool);
}
END_TEST

/* A borrower leaves a block open: the reset's ROLLBACK ends it (the row is
 * gone, the bouncer's server connection free again), and the connection
 * is reused, not discarded. */
START_TEST(release_reset_accepted)
{
    evdb_pool_opts po = {.max_conns = 1};
    evdb_pool *pool = t_pool_new(L, URL, &po);
    t_pool_exec_ok(pool, "DROP TABLE IF EXISTS pgb_reset");
    t_pool_exec_ok(pool, "CREATE TABLE pgb_reset (id int8)");
    for (int round = 0; round < 20; round++) {
        evdb_future *a = evdb_pool_acquire(pool, 10);
        ck_assert_int_eq(t_wait(a), 0);
        evdb_conn *c = evdb_future_take_conn(a);
        evdb_future_unref(a);
        t_exec_ok(c, "BEGIN");
        evdb_value p = evdb_int(round);
        evdb_future_unref(t_run_ok(c, "INSERT INTO pgb_reset VALUES ($1)", &p, 1));
        ck_assert_int_eq(evdb_conn_release(c), 0);
    }
    ck_assert_int_eq(t_pool_int(pool, "SELECT count(*) FROM pgb_reset"), 0);
    evdb_pool_stats st;
    evdb_pool_stats_get(pool, &st);
    ck_assert_uint_eq(st.discarded, 0);
    ck_assert_uint_eq(st.broken, 0);
    ck_assert_uint_ge(st.resets, 20);
    t_pool_exec_ok(pool, "DROP TABLE pgb_reset");
    t_pool_close(pool);
}
END_TEST

/* ---- timeouts ---- */

static int64_t active_on_server(evdb_conn *admin, const char *tag)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE "
             "'%%%s%%' AND pid <> pg_backend_pid()",
             tag);
    return t_query_int(admin, sql);
}

START_TEST(timeout_cancelled_through_the_bouncer)
{
    evdb_conn *c = open_conn(URL, 16);
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    for (int round = 0; round < 3; round++) {
        counted slow = {0}, fast = {0};
        evdb_future *s = t_submit(c, "SELECT pg_sleep(30) /* pgb_timeout */", NULL, 0, 0.5, 0);
        watch(s, &slow, 0);
        evdb_value p = evdb_int(round);
        evdb_future *f = t_submit(c, "SELECT $1::int8", &p, 1, 0, 0);
        watch(f, &fast, round);
        double t0 = t_now();
        t_expect_fail(s, EVDB_ETIMEDOUT, NULL);
        ck_assert_msg(t_now() - t0 < 5, "the timeout took %.1f s", t_now() - t0);
        t_wait(f);
        evdb_future_unref(s);
        evdb_future_unref(f);
        t_sleep(L, 0.01);
        ck_assert_uint_eq(slow.calls, 1);
        ck_assert_uint_eq(fast.calls, 1);
        /* Behind the cancelled one, on the same connection: unharmed. */
        ck_assert_msg(fast.right, "the query behind the timeout: status %d", fast.status);
        /* The real server stopped running it. */
        int64_t left = 1;
        for (int i = 0; i < 100 && left; i++) {
            left = active_on_server(admin, "pgb_timeout");
            if (left)
                t_sleep(L, 0.05);
        }
        ck_assert_int_eq(left, 0);
        ck_assert_int_eq(t_query_int(c, "SELECT 42"), 42);
    }
    t_conn_close(admin);
    t_conn_close(c);
}
END_TEST

/* ---- refusals ---- */

static void expect_refused(evdb_future *f, int code, const char *needle)
{
    ck_assert_ptr_nonnull(f);
    counted cn = {0};
    watch(f, &cn, 0);
    t_wait(f);
    t_sleep(L, 0.01);
    ck_assert_uint_eq(cn.calls, 1);
    ck_assert_int_eq(evdb_future_status(f), code);
    const char *msg = evdb_error_message(evdb_future_error(f));
    ck_assert_msg(strstr(msg, needle) != NULL, "message: %s", msg);
    ck_assert_msg(strstr(msg, "evdb_secret") == NULL, "password in: %s", msg);
    evdb_future_unref(f);
}

START_TEST(session_state_refused)
{
    evdb_conn *c = open_conn(URL, 0);
    expect_refused(evdb_conn_prepare(c, "SELECT $1::int8", NULL, 0, NULL), EVDB_ENOTSUP,
                   "PgBouncer");
    expect_refused(evdb_conn_query(c, "LISTEN pgb_chan", NULL, 0, NULL), EVDB_ENOTSUP, "LISTEN");
    expect_refused(evdb_conn_query(c, "/* x */ prepare s AS SELECT 1", NULL, 0, NULL), EVDB_ENOTSUP,
                   "PREPARE");
    expect_refused(evdb_conn_query(c, "SELECT 1; LISTEN pgb_chan", NULL, 0, NULL), EVDB_ENOTSUP,
                   "LISTEN");
    evdb_stmt b[2] = {{"SELECT 1", NULL, 0}, {"LISTEN pgb_chan", NULL, 0}};
    expect_refused(evdb_conn_batch(c, b, 2, NULL), EVDB_ENOTSUP, "LISTEN");
    /* The connection is fine, and what merely mentions the words runs. */
    ck_assert_int_eq(t_query_int(c, "SELECT length('LISTEN; PREPARE x')"), 17);
    t_conn_close(c);
}
END_TEST

static void on_notify(evdb_listener *l, const char *channel, const char *payload, size_t len,
                      int64_t sender, void *arg)
{
    (void)l, (void)channel, (void)payload, (void)len, (void)sender;
    ck_abort_msg("a notification through the bouncer (%p)", arg);
}

/* A listener's LISTEN fails with the refusal, the listener closes. */
START_TEST(listener_refused)
{
    evdb_listener *l = evdb_listener_open(L, URL, NULL);
    ck_assert_ptr_nonnull(l);
    expect_refused(evdb_listener_listen(l, "pgb_chan", on_notify, NULL), EVDB_ENOTSUP, "LISTEN");
    evdb_future *f = evdb_listener_close(l);
    ck_assert_ptr_nonnull(f);
    t_wait(f);
    evdb_future_unref(f);
}
END_TEST

START_TEST(bad_option_value_refused)
{
    char url[600];
    snprintf(url, sizeof url, "%s?evdb_pgbouncer=session", PLAIN_URL);
    evdb_future *f = evdb_conn_open(L, url, NULL);
    if (f) {
        /* Refused at once or by the connect: either way EVDB_EURL. */
        t_wait(f);
        ck_assert_int_eq(evdb_future_status(f), EVDB_EURL);
        evdb_future_unref(f);
    } else {
        ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EURL);
        const char *msg = evdb_error_message(evdb_last_error());
        ck_assert_msg(strstr(msg, "evdb_pgbouncer") && !strstr(msg, "evdb_secret"), "%s", msg);
    }
}
END_TEST

/* The option alone, first or in the middle of the URI's query: each
 * connects in the mode (a prepare is refused) and keeps the rest. */
START_TEST(option_anywhere_in_the_query)
{
    static const char *const tails[] = {
        "?" MODE,
        "?" MODE "&application_name=pgb_first",
        "?connect_timeout=5&" MODE "&application_name=pgb_mid",
    };
    for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
        char url[600];
        snprintf(url, sizeof url, "%s%s", PLAIN_URL, tails[i]);
        evdb_conn *c = open_conn(url, 0);
        expect_refused(evdb_conn_prepare(c, "SELECT 1", NULL, 0, NULL), EVDB_ENOTSUP, "PgBouncer");
        ck_assert_int_eq(t_query_int(c, "SELECT 6"), 6);
        t_conn_close(c);
    }
}
END_TEST

/* A libpq keyword string takes the option too. */
START_TEST(keyword_string)
{
    const char *port = evdb_test_env("EVDB_TEST_PGBOUNCER_PORT");
    ck_assert_ptr_nonnull(port);
    char url[300];
    snprintf(url, sizeof url,
             "host=127.0.0.1 port=%s user=evdb password='evdb_secret' dbname=evdb_test "
             "evdb_pgbouncer = transaction application_name=pgb_kw",
             port);
    evdb_conn *c = open_conn(url, 0);
    expect_refused(evdb_conn_prepare(c, "SELECT 1", NULL, 0, NULL), EVDB_ENOTSUP, "PgBouncer");
    ck_assert_int_eq(t_query_int(c, "SELECT 5"), 5);
    t_conn_close(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("integ_pgbouncer");
    TCase *tc = tcase_create("pgbouncer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, named_statements_break_without_the_mode);
    tcase_add_test(tc, distinct_statements_in_the_mode);
    tcase_add_test(tc, pipelined_on_one_connection);
    tcase_add_test(tc, pool_larger_than_the_bouncer_pool);
    tcase_add_test(tc, transactions_through_the_pool);
    tcase_add_test(tc, release_reset_accepted);
    tcase_add_test(tc, timeout_cancelled_through_the_bouncer);
    tcase_add_test(tc, session_state_refused);
    tcase_add_test(tc, listener_refused);
    tcase_add_test(tc, bad_option_value_refused);
    tcase_add_test(tc, option_anywhere_in_the_query);
    tcase_add_test(tc, keyword_string);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
