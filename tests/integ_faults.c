/*
 * Network faults between evdb and the real servers (scripts/testdb),
 * injected by the fault proxy (tests/faultproxy): stalls, delays, drops in
 * the middle of a result, resets, refused connects and one-byte-at-a-time
 * delivery, on single connections and pools, for both backends.
 *
 * What every test checks: every future completes exactly once (a callback
 * counter per future), with the error the fault calls for (EVDB_ETIMEDOUT
 * from per-query timeouts under a stall, EVDB_ECONNLOST when a connection
 * is dropped or reset, EVDB_ECONNTIMEOUT / EVDB_ECONNECT when connecting
 * fails), queries that were never sent are re-routed by the pool, the pool
 * recovers once the fault clears, results are never mixed up, and nothing
 * leaks (t_loop_free).
 *
 * Server faults too: sessions of a loaded pool terminated at random by an
 * administrator (pg_terminate_backend, KILL CONNECTION) for a few seconds,
 * with the same per-future audit.
 *
 * PostgreSQL cancel requests (and MariaDB's KILL QUERY session) go to the
 * host:port of the connection, i.e. through the proxy too: under a stall
 * the cancel itself hangs. The stall tests show that the timed-out
 * futures still complete on time, and what happens to the connection.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "faultproxy.h"
#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 50.0
#define TEST_TIMEOUT_S 60
#define URL_MAX 512
#define SQL_MAX 256
#define APP_PASSWORD "evdb_secret"

static struct ev_loop *L;
static evdb_fp *FP;
static char PURL[URL_MAX]; /* the application URL, through the proxy */

/* ------------------------------------------------------------- backends */

typedef struct backend {
    const char *name;
    const char *(*url)(void);
    const char *port_var;
    const char *param_sql; /* one int parameter, returns it + 1 as "v" */
    const char *rows_sql;  /* one int parameter N: N rows (i, t) */
    const char *big_sql;   /* one row, one 200,000-byte cell */
    const char *sleep_fmt; /* sleeps %g seconds */
    const char *bytes_sql; /* returns its bytes parameter */
} backend;

static const backend backends[2] = {
    {"postgres", evdb_test_pg_url, "EVDB_TEST_PG_PORT", "SELECT $1::bigint + 1 AS v",
     "SELECT i, repeat(md5(i::text), 3) AS t FROM generate_series(1, $1::int) AS i",
     "SELECT repeat('x', 200000)", "SELECT pg_sleep(%g)", "SELECT $1::bytea"},
    {"mariadb", evdb_test_my_url, "EVDB_TEST_MY_PORT", "SELECT ? + 1 AS v",
     "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
     "SELECT i, REPEAT(MD5(i), 3) AS t FROM s",
     "SELECT REPEAT('x', 200000)", "SELECT SLEEP(%g)", "SELECT ?"},
};

static const char *need(const char *(*get)(void))
{
    const char *u = get();
    ck_assert_msg(u != NULL, "no test servers: run scripts/testdb start");
    return u;
}

/* Start the proxy in front of b's server and build PURL. */
static void proxy_up(const backend *b)
{
    const char *u = need(b->url);
    const char *pv = evdb_test_env(b->port_var);
    ck_assert_ptr_nonnull(pv);
    int port = atoi(pv);
    char err[160];
    FP = evdb_fp_new(L, 0, "127.0.0.1", port, err, sizeof err);
    ck_assert_msg(FP != NULL, "fault proxy: %s", err);
    char pat[16];
    snprintf(pat, sizeof pat, ":%d/", port);
    const char *at = strstr(u, pat);
    ck_assert_msg(at != NULL, "port %d not in the test URL", port);
    snprintf(PURL, sizeof PURL, "%.*s:%d/%s", (int)(at - u), u, evdb_fp_port(FP), at + strlen(pat));
}

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
    FP = NULL;
}

static void teardown(void)
{
    /* The proxy first: its sockets and watchers are not evdb's. */
    evdb_fp_free(FP);
    FP = NULL;
    t_loop_free(L);
}

static void set_fault(evdb_fp_mode m, double arg)
{
    ck_assert_int_eq(evdb_fp_set(FP, m, arg), 0);
}

/* ------------------------------------------------------------- helpers */

/* Counts the completions of one future. */
typedef struct track {
    int calls;
    int status;
    double at;
} track;

static void on_track(evdb_future *f, void *arg)
{
    track *t = arg;
    t->calls++;
    t->status = evdb_future_status(f);
    t->at = t_now();
}

static evdb_future *tracked(evdb_future *f, track *t)
{
    ck_assert_msg(f != NULL, "submit failed: %s", evdb_error_message(evdb_last_error()));
    memset(t, 0, sizeof *t);
    ck_assert_int_eq(evdb_future_on_done(f, on_track, t), 0);
    return f;
}

/* Run the loop until t completed (bounded). */
static void wait_track(const track *t, double seconds)
{
    double until = t_now() + seconds;
    while (t->calls == 0 && t_now() < until)
        t_run_for(L, 0.01);
    ck_assert_msg(t->calls == 1, "future completed %d times", t->calls);
}

static void sleep_loop(double s)
{
    evdb_future *f = evdb_sleep(L, s);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

static void close_conn(evdb_conn *c)
{
    evdb_future *f = evdb_conn_close(c);
    ck_assert_ptr_nonnull(f);
    double t0 = t_now();
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_msg(t_now() - t0 < 6.0, "close took %.2f s", t_now() - t0);
    evdb_future_unref(f);
}

static void close_pool(evdb_pool *p)
{
    evdb_future *f = evdb_pool_close(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

static evdb_future *query(evdb_conn *c, const char *sql, const evdb_value *params, size_t n,
                          double timeout)
{
    evdb_query_opts o = {.timeout = timeout};
    evdb_future *f = evdb_conn_query(c, sql, params, n, &o);
    ck_assert_msg(f != NULL, "%s: %s", sql, evdb_error_message(evdb_last_error()));
    return f;
}

static int64_t int_cell(evdb_future *f, size_t row, size_t col)
{
    int64_t v = -1;
    ck_assert_int_eq(evdb_result_int(evdb_future_result(f), row, col, &v), 0);
    return v;
}

/* param_sql(x) on c must give x + 1. */
static void expect_param_ok(const backend *b, evdb_conn *c, int64_t x, double timeout)
{
    evdb_value v = evdb_int(x);
    evdb_future *f = query(c, b->param_sql, &v, 1, timeout);
    int rc = t_wait(f);
    ck_assert_msg(rc == 0, "%s: %s", evdb_err_name(rc), evdb_error_message(evdb_future_error(f)));
    ck_assert_int_eq(int_cell(f, 0, 0), x + 1);
    evdb_future_unref(f);
}

static void no_password_in(const char *msg)
{
    ck_assert_msg(strstr(msg, APP_PASSWORD) == NULL, "password in a message: %s", msg);
}

/* ---------------------------------------------------- one byte at a time */

/* Variants: 0 PostgreSQL (pipelined), 1 MariaDB, 2 PostgreSQL depth 1. */
static const backend *variant(int i, evdb_conn_opts *o)
{
    memset(o, 0, sizeof *o);
    if (i == 2)
        o->pipeline_depth = 1;
    return &backends[i % 2];
}

START_TEST(trickle_gives_correct_results)
{
    evdb_conn_opts o;
    const backend *b = variant(_i, &o);
    proxy_up(b);
    enum { NROWS = 150 };
    /* The reference: the same rows over a direct connection. */
    evdb_conn *d = t_conn_open(L, need(b->url), &o);
    evdb_value n = evdb_int(NROWS);
    evdb_future *ref = query(d, b->rows_sql, &n, 1, 0);
    ck_assert_int_eq(t_wait(ref), 0);

    /* Everything from the first byte of the handshake on, one byte per
     * loop iteration: every read the drivers do is a partial one. */
    set_fault(EVDB_FP_TRICKLE, 0);
    double t0 = t_now();
    evdb_conn *c = t_conn_open(L, PURL, &o);
    fprintf(stderr, "[%s] trickled connect: %.3f s\n", b->name, t_now() - t0);
    expect_param_ok(b, c, 41, 0);

    evdb_future *rows = query(c, b->rows_sql, &n, 1, 0);
    ck_assert_int_eq(t_wait(rows), 0);
    const evdb_result *rr = evdb_future_result(ref), *rt = evdb_future_result(rows);
    ck_assert_uint_eq(evdb_result_nrows(rt), NROWS);
    ck_assert_uint_eq(evdb_result_ncols(rt), 2);
    for (size_t r = 0; r < NROWS; r++) {
        ck_assert_int_eq(int_cell(rows, r, 0), (int64_t)r + 1);
        size_t l1, l2;
        const char *t1 = evdb_result_text(rr, r, 1, &l1), *t2 = evdb_result_text(rt, r, 1, &l2);
        ck_assert_uint_eq(l1, 96);
        ck_assert_uint_eq(l1, l2);
        ck_assert_int_eq(memcmp(t1, t2, l1), 0);
    }
    evdb_future_unref(rows);

    /* The text protocol (no parameters), NULLs and a double. */
    evdb_future *f = query(c, "SELECT 'hello', NULL, 3.5", NULL, 0, 0);
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(f), 0, 0, NULL), "hello");
    ck_assert(evdb_result_isnull(evdb_future_result(f), 0, 1));
    double dv = 0;
    ck_assert_int_eq(evdb_result_double(evdb_future_result(f), 0, 2, &dv), 0);
    ck_assert(dv == 3.5);
    evdb_future_unref(f);

    /* Every byte value, both ways. */
    unsigned char blob[512];
    for (size_t i = 0; i < sizeof blob; i++)
        blob[i] = (unsigned char)(i * 7 + 3);
    evdb_value bv = evdb_bytes(blob, sizeof blob);
    f = query(c, b->bytes_sql, &bv, 1, 0);
    ck_assert_int_eq(t_wait(f), 0);
    size_t bl = 0;
    const void *bp = evdb_result_bytes(evdb_future_result(f), 0, 0, &bl);
    ck_assert_uint_eq(bl, sizeof blob);
    ck_assert_int_eq(memcmp(bp, blob, sizeof blob), 0);
    evdb_future_unref(f);

    /* Many at once (pipelined on PostgreSQL), each with its own answer. */
    enum { NQ = 24 };
    evdb_future *fs[NQ];
    track tr[NQ];
    for (int i = 0; i < NQ; i++) {
        evdb_value v = evdb_int(i * 100);
        fs[i] = tracked(query(c, b->param_sql, &v, 1, 0), &tr[i]);
    }
    evdb_future *g = evdb_gather(fs, NQ, 0);
    ck_assert_int_eq(t_wait(g), 0);
    evdb_future_unref(g);
    t_run_for(L, 0.01);
    for (int i = 0; i < NQ; i++) {
        ck_assert_int_eq(tr[i].calls, 1);
        ck_assert_int_eq(int_cell(fs[i], 0, 0), i * 100 + 1);
        evdb_future_unref(fs[i]);
    }

    /* Slower: a millisecond between bytes. */
    set_fault(EVDB_FP_TRICKLE, 1);
    expect_param_ok(b, c, 7, 10);
    evdb_fp_stats st;
    evdb_fp_stats_get(FP, &st);
    ck_assert_uint_gt(st.bytes_down, NROWS * 96);
    set_fault(EVDB_FP_PASS, 0);
    close_conn(c);
    evdb_future_unref(ref);
    close_conn(d);
}
END_TEST

/* ------------------------------------------------------------- stalls */

START_TEST(stall_times_out_queries_on_time)
{
    const backend *b = &backends[_i];
    proxy_up(b);
    evdb_conn *c = t_conn_open(L, PURL, NULL);
    expect_param_ok(b, c, 1, 5);

    set_fault(EVDB_FP_STALL, 0);
    track t1, t2, t3;
    double t0 = t_now();
    evdb_value v = evdb_int(10);
    evdb_future *q1 = tracked(query(c, b->param_sql, &v, 1, 0.4), &t1);
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, b->sleep_fmt, 0.0);
    evdb_future *q2 = tracked(query(c, sql, NULL, 0, 0.6), &t2);
    evdb_value v3 = evdb_int(30);
    evdb_future *q3 = tracked(query(c, b->param_sql, &v3, 1, 0), &t3);

    wait_track(&t1, 5);
    wait_track(&t2, 5);
    ck_assert_int_eq(t1.status, EVDB_ETIMEDOUT);
    ck_assert_int_eq(t2.status, EVDB_ETIMEDOUT);
    ck_assert_msg(t1.at - t0 >= 0.38 && t1.at - t0 < 1.0, "q1 timed out after %.3f s", t1.at - t0);
    ck_assert_msg(t2.at - t0 >= 0.58 && t2.at - t0 < 1.2, "q2 timed out after %.3f s", t2.at - t0);
    fprintf(stderr, "[%s] stall: q1 %s after %.3f s: %s\n", b->name, evdb_err_name(t1.status),
            t1.at - t0, evdb_error_message(evdb_future_error(q1)));
    fprintf(stderr, "[%s] stall: q2 %s after %.3f s: %s\n", b->name, evdb_err_name(t2.status),
            t2.at - t0, evdb_error_message(evdb_future_error(q2)));

    /* The cancel of q1 hangs in the proxy, but the loop does not: timers
     * still fire on time. q3 has no timeout and waits. */
    double s0 = t_now();
    sleep_loop(0.1);
    ck_assert_msg(t_now() - s0 < 0.5, "the loop was blocked: %.3f s", t_now() - s0);
    ck_assert_int_eq(t3.calls, 0);
    fprintf(stderr, "[%s] stall: %zu queries still on the connection, q3 waits\n", b->name,
            evdb_conn_pending(c));

    /* The stall clears: the cancel goes through, and the connection serves
     * again (q3 first, then new queries). */
    double c0 = t_now();
    set_fault(EVDB_FP_PASS, 0);
    wait_track(&t3, 15);
    ck_assert_msg(t3.status == 0, "q3: %s %s", evdb_err_name(t3.status),
                  evdb_error_message(evdb_future_error(q3)));
    ck_assert_int_eq(int_cell(q3, 0, 0), 31);
    expect_param_ok(b, c, 99, 5);
    fprintf(stderr, "[%s] stall cleared: q3 ok after %.3f s, connection usable again\n", b->name,
            t3.at - c0);
    ck_assert_int_eq(t1.calls, 1);
    ck_assert_int_eq(t2.calls, 1);
    evdb_future_unref(q1);
    evdb_future_unref(q2);
    evdb_future_unref(q3);
    close_conn(c);
}
END_TEST

/* Closing a connection while its cancel hangs in a stalled proxy: the
 * close completes at once and every queued future completes once. */
START_TEST(close_while_the_cancel_hangs)
{
    const backend *b = &backends[_i];
    proxy_up(b);
    evdb_conn *c = t_conn_open(L, PURL, NULL);
    expect_param_ok(b, c, 1, 5);
    set_fault(EVDB_FP_STALL, 0);
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, b->sleep_fmt, 5.0);
    track t1, t2;
    evdb_future *q1 = tracked(query(c, sql, NULL, 0, 0.3), &t1);
    evdb_value v = evdb_int(1);
    evdb_future *q2 = tracked(query(c, b->param_sql, &v, 1, 0), &t2);
    wait_track(&t1, 5);
    ck_assert_int_eq(t1.status, EVDB_ETIMEDOUT);
    /* The cancel is under way (and stuck); close now. */
    sleep_loop(0.1);
    double t0 = t_now();
    close_conn(c);
    ck_assert_msg(t_now() - t0 < 2.0, "close took %.3f s", t_now() - t0);
    t_run_for(L, 0.01);
    ck_assert_int_eq(t2.calls, 1);
    ck_assert_msg(t2.status == EVDB_ECLOSED || t2.status == EVDB_ECONNLOST, "q2: %s",
                  evdb_err_name(t2.status));
    ck_assert_int_eq(t1.calls, 1);
    evdb_future_unref(q1);
    evdb_future_unref(q2);
}
END_TEST

/* ------------------------------------------------------------- connects */

static void expect_connect_fails(const char *url, double timeout, int code, double max_s)
{
    evdb_conn_opts o = {.connect_timeout = timeout};
    track t;
    double t0 = t_now();
    evdb_future *f = tracked(evdb_conn_open(L, url, &o), &t);
    int rc = t_wait(f);
    double took = t_now() - t0;
    ck_assert_msg(rc == code, "expected %s, got %s: %s", evdb_err_name(code), evdb_err_name(rc),
                  evdb_error_message(evdb_future_error(f)));
    ck_assert_msg(took < max_s, "took %.3f s", took);
    no_password_in(evdb_error_message(evdb_future_error(f)));
    ck_assert_ptr_null(evdb_future_take_conn(f));
    t_run_for(L, 0.01);
    ck_assert_int_eq(t.calls, 1);
    evdb_future_unref(f);
}

START_TEST(connect_under_faults)
{
    const backend *b = &backends[_i];
    proxy_up(b);
    /* Accepted, never answered: the connect deadline. */
    set_fault(EVDB_FP_STALL, 0);
    double t0 = t_now();
    expect_connect_fails(PURL, 0.5, EVDB_ECONNTIMEOUT, 2.5);
    ck_assert(t_now() - t0 >= 0.45);
    /* Refused. */
    set_fault(EVDB_FP_REFUSE, 0);
    expect_connect_fails(PURL, 5, EVDB_ECONNECT, 2.0);
    /* Accepted and closed at once, with a FIN and with an RST. */
    set_fault(EVDB_FP_DROP, 0);
    expect_connect_fails(PURL, 5, EVDB_ECONNECT, 2.0);
    set_fault(EVDB_FP_DROP_RST, 0);
    expect_connect_fails(PURL, 5, EVDB_ECONNECT, 2.0);
    /* Cut in the middle of the handshake. */
    set_fault(EVDB_FP_DROP, 20);
    expect_connect_fails(PURL, 5, EVDB_ECONNECT, 2.0);
    /* Slow but working. */
    set_fault(EVDB_FP_DELAY, 50);
    evdb_conn *c = t_conn_open(L, PURL, NULL);
    expect_param_ok(b, c, 5, 5);
    set_fault(EVDB_FP_PASS, 0);
    expect_param_ok(b, c, 6, 5);
    close_conn(c);
}
END_TEST

/* ------------------------------------------------------ drops and resets */

START_TEST(drop_mid_result)
{
    const backend *b = &backends[_i % 2];
    bool rst = _i >= 2;
    proxy_up(b);
    evdb_conn *c = t_conn_open(L, PURL, NULL);
    expect_param_ok(b, c, 1, 5);
    set_fault(rst ? EVDB_FP_DROP_RST : EVDB_FP_DROP, 3000);
    enum { NQ = 4 };
    track tb, tq[NQ];
    evdb_future *big = tracked(query(c, b->big_sql, NULL, 0, 0), &tb);
    evdb_future *fs[NQ];
    for (int i = 0; i < NQ; i++) {
        evdb_value v = evdb_int(i);
        fs[i] = tracked(query(c, b->param_sql, &v, 1, 0), &tq[i]);
    }
    wait_track(&tb, 10);
    ck_assert_msg(tb.status == EVDB_ECONNLOST, "big: %s %s", evdb_err_name(tb.status),
                  evdb_error_message(evdb_future_error(big)));
    fprintf(stderr, "[%s] drop%s: %s\n", b->name, rst ? " rst" : "",
            evdb_error_message(evdb_future_error(big)));
    no_password_in(evdb_error_message(evdb_future_error(big)));
    for (int i = 0; i < NQ; i++) {
        wait_track(&tq[i], 5);
        ck_assert_msg(tq[i].status == EVDB_ECONNLOST, "q%d: %s", i, evdb_err_name(tq[i].status));
        evdb_future_unref(fs[i]);
    }
    /* A lost connection refuses new queries at once. */
    evdb_value v = evdb_int(1);
    ck_assert_ptr_null(evdb_conn_query(c, b->param_sql, &v, 1, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECONNLOST);
    close_conn(c);
    evdb_future_unref(big);
    evdb_fp_stats st;
    evdb_fp_stats_get(FP, &st);
    ck_assert_uint_ge(st.dropped, 1);
    /* The fault clears: a new connection works. */
    set_fault(EVDB_FP_PASS, 0);
    c = t_conn_open(L, PURL, NULL);
    expect_param_ok(b, c, 2, 5);
    close_conn(c);
}
END_TEST

START_TEST(reset_during_a_query)
{
    const backend *b = &backends[_i];
    proxy_up(b);
    evdb_conn *c = t_conn_open(L, PURL, NULL);
    expect_param_ok(b, c, 1, 5);
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, b->sleep_fmt, 1.0);
    track t1, t2;
    evdb_future *q1 = tracked(query(c, sql, NULL, 0, 0), &t1);
    evdb_value v = evdb_int(1);
    evdb_future *q2 = tracked(query(c, b->param_sql, &v, 1, 0), &t2);
    t_run_for(L, 0.15);
    double t0 = t_now();
    ck_assert_uint_eq(evdb_fp_reset_all(FP), 1);
    wait_track(&t1, 5);
    wait_track(&t2, 5);
    ck_assert_int_eq(t1.status, EVDB_ECONNLOST);
    ck_assert_int_eq(t2.status, EVDB_ECONNLOST);
    ck_assert_msg(t1.at - t0 < 1.0, "noticed after %.3f s", t1.at - t0);
    fprintf(stderr, "[%s] reset: %s\n", b->name, evdb_error_message(evdb_future_error(q1)));
    evdb_future_unref(q1);
    evdb_future_unref(q2);
    close_conn(c);

    /* An idle connection reset by the network is noticed too, and the
     * next query is refused at once rather than hanging. */
    c = t_conn_open(L, PURL, NULL);
    expect_param_ok(b, c, 3, 5);
    evdb_fp_reset_all(FP);
    t_run_for(L, 0.2);
    ck_assert_ptr_null(evdb_conn_query(c, b->param_sql, &v, 1, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECONNLOST);
    close_conn(c);
}
END_TEST

START_TEST(delay_and_timeouts)
{
    const backend *b = &backends[_i];
    proxy_up(b);
    set_fault(EVDB_FP_DELAY, 80);
    evdb_conn *c = t_conn_open(L, PURL, NULL);
    /* A round trip takes 160 ms: a generous timeout passes... */
    double t0 = t_now();
    expect_param_ok(b, c, 1, 3);
    ck_assert_msg(t_now() - t0 >= 0.15, "no delay? %.3f s", t_now() - t0);
    /* ... a short one fails on time. */
    track t;
    evdb_value v = evdb_int(2);
    t0 = t_now();
    evdb_future *f = tracked(query(c, b->param_sql, &v, 1, 0.05), &t);
    wait_track(&t, 5);
    ck_assert_int_eq(t.status, EVDB_ETIMEDOUT);
    ck_assert_msg(t.at - t0 < 0.5, "timed out after %.3f s", t.at - t0);
    evdb_future_unref(f);
    /* And the connection carries on. */
    expect_param_ok(b, c, 3, 5);
    set_fault(EVDB_FP_PASS, 0);
    expect_param_ok(b, c, 4, 5);
    close_conn(c);
}
END_TEST

/* ------------------------------------------------------------- the pool */

/* A query that was handed to a connection but never sent moves to another
 * connection when its connection breaks. On PostgreSQL (pipeline depth 2)
 * the second query sits on the connection behind a cancel that hangs in
 * the stalled proxy; on MariaDB (depth 1) it waits in the pool. Either
 * way it must succeed, exactly once, on a new connection. */
START_TEST(pool_reroutes_unsent_queries)
{
    const backend *b = &backends[_i];
    proxy_up(b);
    evdb_pool_opts po = {.max_conns = 1, .pipeline_depth = 2, .backoff_initial = 0.05};
    evdb_pool *p = evdb_pool_new(L, PURL, &po);
    ck_assert_ptr_nonnull(p);
    evdb_value v0 = evdb_int(0);
    evdb_future *w = evdb_pool_query(p, b->param_sql, &v0, 1, NULL);
    ck_assert_int_eq(t_wait(w), 0);
    evdb_future_unref(w);

    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, b->sleep_fmt, 5.0);
    evdb_query_opts qo = {.timeout = 0.3};
    track ta, tb;
    evdb_future *a = tracked(evdb_pool_query(p, sql, NULL, 0, &qo), &ta);
    t_run_for(L, 0.1); /* a reaches the server */
    set_fault(EVDB_FP_STALL, 0);
    wait_track(&ta, 5);
    ck_assert_int_eq(ta.status, EVDB_ETIMEDOUT);
    evdb_value v = evdb_int(41);
    evdb_future *bq = tracked(evdb_pool_query(p, b->param_sql, &v, 1, NULL), &tb);
    t_run_for(L, 0.2);
    ck_assert_int_eq(tb.calls, 0);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    fprintf(stderr, "[%s] before the reset: total %u busy %u waiting %zu\n", b->name, st.total,
            st.busy, st.waiting);

    /* The network kills the connection; the fault then clears. */
    evdb_fp_reset_all(FP);
    set_fault(EVDB_FP_PASS, 0);
    wait_track(&tb, 10);
    ck_assert_msg(tb.status == 0, "b: %s %s", evdb_err_name(tb.status),
                  evdb_error_message(evdb_future_error(bq)));
    ck_assert_int_eq(int_cell(bq, 0, 0), 42);
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_ge(st.broken, 1);
    ck_assert_uint_ge(st.connects, 2);
    ck_assert_int_eq(ta.calls, 1);
    evdb_future_unref(a);
    evdb_future_unref(bq);
    close_pool(p);
}
END_TEST

START_TEST(pool_connect_failures_and_recovery)
{
    const backend *b = &backends[_i];
    proxy_up(b);
    evdb_pool_opts po = {.max_conns = 2,
                         .backoff_initial = 0.05,
                         .backoff_max = 0.2,
                         .connect_timeout = 0.3,
                         .acquire_timeout = 5};
    evdb_pool *p = evdb_pool_new(L, PURL, &po);
    ck_assert_ptr_nonnull(p);
    evdb_value v = evdb_int(1);

    /* Refused: waiters fail at once with the reason. */
    set_fault(EVDB_FP_REFUSE, 0);
    track tq, ta;
    double t0 = t_now();
    evdb_future *q = tracked(evdb_pool_query(p, b->param_sql, &v, 1, NULL), &tq);
    evdb_future *a = tracked(evdb_pool_acquire(p, 5), &ta);
    wait_track(&tq, 5);
    wait_track(&ta, 5);
    ck_assert_msg(tq.status == EVDB_ECONNECT, "%s", evdb_err_name(tq.status));
    ck_assert_msg(ta.status == EVDB_ECONNECT, "%s", evdb_err_name(ta.status));
    ck_assert_msg(tq.at - t0 < 2.0, "took %.3f s", tq.at - t0);
    no_password_in(evdb_error_message(evdb_future_error(q)));
    evdb_future_unref(q);
    evdb_future_unref(a);

    /* Accepted and never answered: the connect timeout. */
    set_fault(EVDB_FP_STALL, 0);
    sleep_loop(0.3); /* let the backoff pass */
    q = tracked(evdb_pool_query(p, b->param_sql, &v, 1, NULL), &tq);
    wait_track(&tq, 5);
    ck_assert_msg(tq.status == EVDB_ECONNTIMEOUT, "%s %s", evdb_err_name(tq.status),
                  evdb_error_message(evdb_future_error(q)));
    evdb_future_unref(q);

    /* The fault clears: the pool connects again (after its backoff). */
    set_fault(EVDB_FP_PASS, 0);
    double until = t_now() + 5;
    int rc = -1;
    while (rc != 0 && t_now() < until) {
        q = evdb_pool_query(p, b->param_sql, &v, 1, NULL);
        rc = t_wait(q);
        evdb_future_unref(q);
        if (rc != 0)
            sleep_loop(0.05);
    }
    ck_assert_int_eq(rc, 0);
    close_pool(p);
}
END_TEST

/* Load through the proxy while it cycles through every fault. */
enum { WORKERS = 24, MAX_SUBMITS = 4000000 };

typedef struct load {
    const backend *b;
    evdb_pool *pool;
    bool stop;
    size_t submitted, completed, ok, wrong, lost, timedout, refused, killed, other;
    size_t ok_since_mark;
    unsigned char *calls;
} load;

typedef struct ticket {
    load *l;
    size_t n;
    int64_t x;
} ticket;

static void submit_next(load *l);

/* The server's own word that an administrator ended the session, when it
 * reaches a query as a server error: PostgreSQL 57P01, MariaDB 1927
 * (ER_CONNECTION_KILLED, SQLSTATE 70100). */
static bool killed_by_admin(const evdb_error *e)
{
    return !strcmp(evdb_error_sqlstate(e), "57P01") || !strcmp(evdb_error_sqlstate(e), "70100") ||
           evdb_error_driver_code(e) == 1927;
}

static void on_load_done(evdb_future *f, void *arg)
{
    ticket *t = arg;
    load *l = t->l;
    l->calls[t->n]++;
    l->completed++;
    int st = evdb_future_status(f);
    if (st == 0) {
        int64_t v = -1;
        if (evdb_result_int(evdb_future_result(f), 0, 0, &v) == 0 && v == t->x + 1) {
            l->ok++;
            l->ok_since_mark++;
        } else {
            l->wrong++;
        }
    } else if (st == EVDB_ECONNLOST) {
        l->lost++;
    } else if (st == EVDB_ETIMEDOUT) {
        l->timedout++;
    } else if (st == EVDB_ECONNECT || st == EVDB_ECONNTIMEOUT || st == EVDB_EPOOLTIMEOUT) {
        l->refused++;
    } else if (st == EVDB_ESERVER && killed_by_admin(evdb_future_error(f))) {
        l->killed++;
    } else {
        l->other++;
        fprintf(stderr, "unexpected: %s %s\n", evdb_err_name(st),
                evdb_error_message(evdb_future_error(f)));
    }
    free(t);
    evdb_future_unref(f);
    if (!l->stop)
        submit_next(l);
}

static void submit_next(load *l)
{
    ck_assert_uint_lt(l->submitted, MAX_SUBMITS);
    ticket *t = malloc(sizeof *t);
    ck_assert_ptr_nonnull(t);
    t->l = l;
    t->n = l->submitted++;
    t->x = (int64_t)(t->n * 7 + 1);
    evdb_value v = evdb_int(t->x);
    evdb_query_opts o = {.timeout = 0.5};
    evdb_future *f = evdb_pool_query(l->pool, l->b->param_sql, &v, 1, &o);
    ck_assert_msg(f != NULL, "%s", evdb_error_message(evdb_last_error()));
    ck_assert_int_eq(evdb_future_on_done(f, on_load_done, t), 0);
}

static void phase(load *l, const char *what, double seconds)
{
    size_t before = l->completed;
    l->ok_since_mark = 0;
    t_run_for(L, seconds);
    fprintf(stderr, "[%s] %-10s %5zu completed, %5zu ok\n", l->b->name, what, l->completed - before,
            l->ok_since_mark);
}

/* A phase that must see queries succeed: at least seconds, then longer
 * (up to RECOVER_MAX_S more, for slow machines and sanitizers) until more
 * than min_ok queries succeeded. */
#define RECOVER_MAX_S 10.0

static void recovered(load *l, const char *what, double seconds, size_t min_ok)
{
    size_t before = l->completed;
    l->ok_since_mark = 0;
    t_run_for(L, seconds);
    double until = t_now() + RECOVER_MAX_S;
    while (l->ok_since_mark <= min_ok && t_now() < until)
        t_run_for(L, 0.1);
    fprintf(stderr, "[%s] %-10s %5zu completed, %5zu ok\n", l->b->name, what, l->completed - before,
            l->ok_since_mark);
    ck_assert_msg(l->ok_since_mark > min_ok, "%s: %s: only %zu queries succeeded", l->b->name, what,
                  l->ok_since_mark);
}

START_TEST(pool_under_every_fault_audit)
{
    const backend *b = &backends[_i];
    proxy_up(b);
    evdb_pool_opts po = {.min_conns = 2,
                         .max_conns = 4,
                         .backoff_initial = 0.02,
                         .backoff_max = 0.2,
                         .connect_timeout = 0.5,
                         .acquire_timeout = 2};
    load l;
    memset(&l, 0, sizeof l);
    l.b = b;
    l.pool = evdb_pool_new(L, PURL, &po);
    ck_assert_ptr_nonnull(l.pool);
    l.calls = calloc(MAX_SUBMITS, 1);
    ck_assert_ptr_nonnull(l.calls);
    for (int i = 0; i < WORKERS; i++)
        submit_next(&l);

    recovered(&l, "pass", 0.4, 10);
    evdb_fp_reset_all(FP);
    phase(&l, "reset", 0.3);
    set_fault(EVDB_FP_REFUSE, 0);
    evdb_fp_reset_all(FP);
    phase(&l, "refuse", 0.4);
    set_fault(EVDB_FP_PASS, 0);
    recovered(&l, "pass", 0.8, 10);
    set_fault(EVDB_FP_DROP_RST, 1500);
    phase(&l, "drop", 0.4);
    set_fault(EVDB_FP_PASS, 0);
    recovered(&l, "pass", 0.8, 10);
    set_fault(EVDB_FP_DELAY, 20);
    phase(&l, "delay", 0.4);
    set_fault(EVDB_FP_TRICKLE, 0);
    phase(&l, "trickle", 0.4);
    set_fault(EVDB_FP_STALL, 0);
    phase(&l, "stall", 0.8);
    set_fault(EVDB_FP_PASS, 0);
    recovered(&l, "pass", 2.0, 10);

    l.stop = true;
    double until = t_now() + 20;
    while (l.completed < l.submitted && t_now() < until)
        t_run_for(L, 0.05);
    fprintf(stderr,
            "[%s] audit: submitted %zu ok %zu lost %zu timed out %zu refused %zu wrong %zu "
            "other %zu\n",
            b->name, l.submitted, l.ok, l.lost, l.timedout, l.refused, l.wrong, l.other);
    ck_assert_uint_eq(l.completed, l.submitted);
    for (size_t i = 0; i < l.submitted; i++)
        ck_assert_int_eq(l.calls[i], 1);
    ck_assert_uint_eq(l.ok + l.wrong + l.lost + l.timedout + l.refused + l.other, l.submitted);
    ck_assert_uint_eq(l.wrong, 0);
    ck_assert_uint_eq(l.other, 0);
    ck_assert_uint_gt(l.lost, 0);
    ck_assert_uint_gt(l.timedout, 0);
    evdb_pool_stats st;
    evdb_pool_stats_get(l.pool, &st);
    ck_assert_uint_ge(st.broken, 1);
    free(l.calls);
    close_pool(l.pool);
}
END_TEST

/* ------------------------------------------------- server-side kills */

/* Kills a random session of the application user every 20-80 ms, over an
 * admin connection straight to the server: pg_terminate_backend, or
 * KILL CONNECTION with the id from the process list. */
typedef struct killer {
    const backend *b;
    evdb_conn *admin;
    bool stop, busy;
    unsigned seed;
    size_t kills, misses;
} killer;

static void kill_next(killer *k);

static void on_killed(evdb_future *f, void *arg)
{
    killer *k = arg;
    int st = evdb_future_status(f);
    ck_assert_msg(st == 0, "kill: %s", evdb_error_message(evdb_future_error(f)));
    /* pg_terminate_backend answers one row; KILL answers none. */
    if (k->b != &backends[0] || evdb_result_nrows(evdb_future_result(f)) == 1)
        k->kills++;
    else
        k->misses++;
    evdb_future_unref(f);
    k->busy = false;
    kill_next(k);
}

static void on_victim(evdb_future *f, void *arg)
{
    killer *k = arg;
    const evdb_result *r = evdb_future_result(f);
    if (evdb_future_status(f) != 0 || evdb_result_nrows(r) == 0) {
        k->misses++;
        evdb_future_unref(f);
        k->busy = false;
        kill_next(k);
        return;
    }
    char sql[64];
    snprintf(sql, sizeof sql, "KILL CONNECTION %s", evdb_result_text(r, 0, 0, NULL));
    evdb_future_unref(f);
    evdb_future *kf = evdb_conn_query(k->admin, sql, NULL, 0, NULL);
    ck_assert_ptr_nonnull(kf);
    ck_assert_int_eq(evdb_future_on_done(kf, on_killed, k), 0);
}

static void on_kill_timer(evdb_future *f, void *arg)
{
    killer *k = arg;
    evdb_future_unref(f);
    if (k->stop) {
        k->busy = false;
        return;
    }
    evdb_future *q;
    if (k->b == &backends[0]) {
        q = evdb_conn_query(k->admin,
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE usename = 'evdb' AND backend_type = 'client backend' "
                            "ORDER BY random() LIMIT 1",
                            NULL, 0, NULL);
        ck_assert_ptr_nonnull(q);
        ck_assert_int_eq(evdb_future_on_done(q, on_killed, k), 0);
    } else {
        q = evdb_conn_query(k->admin,
                            "SELECT id FROM information_schema.processlist "
                            "WHERE user = 'evdb' AND command <> 'Killed' ORDER BY RAND() LIMIT 1",
                            NULL, 0, NULL);
        ck_assert_ptr_nonnull(q);
        ck_assert_int_eq(evdb_future_on_done(q, on_victim, k), 0);
    }
}

static void kill_next(killer *k)
{
    if (k->stop || k->busy)
        return;
    k->busy = true;
    double delay = 0.02 + (rand_r(&k->seed) % 60) / 1000.0;
    evdb_future *s = evdb_sleep(L, delay);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(evdb_future_on_done(s, on_kill_timer, k), 0);
}

START_TEST(backends_killed_at_random_under_load)
{
    const backend *b = &backends[_i];
    const char *admin_url = _i == 0 ? evdb_test_pg_admin_url() : evdb_test_my_admin_url();
    ck_assert_ptr_nonnull(admin_url);
    evdb_pool_opts po = {.min_conns = 2,
                         .max_conns = 6,
                         .backoff_initial = 0.02,
                         .backoff_max = 0.2,
                         .acquire_timeout = 5};
    load l;
    memset(&l, 0, sizeof l);
    l.b = b;
    l.pool = evdb_pool_new(L, need(b->url), &po);
    ck_assert_ptr_nonnull(l.pool);
    l.calls = calloc(MAX_SUBMITS, 1);
    ck_assert_ptr_nonnull(l.calls);
    killer k;
    memset(&k, 0, sizeof k);
    k.b = b;
    k.seed = 12345u + (unsigned)_i;
    k.admin = t_conn_open(L, admin_url, NULL);
    for (int i = 0; i < WORKERS; i++)
        submit_next(&l);
    recovered(&l, "warm-up", 0.3, 10);
    kill_next(&k);
    phase(&l, "kills", 3.0);
    k.stop = true;
    double until = t_now() + 5;
    while (k.busy && t_now() < until)
        t_run_for(L, 0.01);
    ck_assert(!k.busy);
    recovered(&l, "after", 1.0, 50);

    l.stop = true;
    until = t_now() + 20;
    while (l.completed < l.submitted && t_now() < until)
        t_run_for(L, 0.05);
    evdb_pool_stats st;
    evdb_pool_stats_get(l.pool, &st);
    fprintf(stderr,
            "[%s] %zu sessions killed (%zu misses): submitted %zu ok %zu lost %zu killed %zu "
            "timed out %zu refused %zu wrong %zu other %zu; pool broken %llu connects %llu\n",
            b->name, k.kills, k.misses, l.submitted, l.ok, l.lost, l.killed, l.timedout, l.refused,
            l.wrong, l.other, (unsigned long long)st.broken, (unsigned long long)st.connects);
    ck_assert_uint_eq(l.completed, l.submitted);
    for (size_t i = 0; i < l.submitted; i++)
        ck_assert_int_eq(l.calls[i], 1);
    ck_assert_uint_eq(l.ok + l.wrong + l.lost + l.timedout + l.refused + l.killed + l.other,
                      l.submitted);
    ck_assert_uint_eq(l.wrong, 0);
    ck_assert_uint_eq(l.other, 0);
    ck_assert_uint_ge(k.kills, 10);
    ck_assert_uint_ge(st.broken, 5);
    free(l.calls);
    close_conn(k.admin);
    close_pool(l.pool);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("faults");
    TCase *conn = tcase_create("connection");
    TCase *pool = tcase_create("pool");
    TCase *server = tcase_create("server");
    TCase *all[] = {conn, pool, server};
    for (size_t i = 0; i < 3; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], TEST_TIMEOUT_S);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_loop_test(conn, trickle_gives_correct_results, 0, 3);
    tcase_add_loop_test(conn, stall_times_out_queries_on_time, 0, 2);
    tcase_add_loop_test(conn, close_while_the_cancel_hangs, 0, 2);
    tcase_add_loop_test(conn, connect_under_faults, 0, 2);
    tcase_add_loop_test(conn, drop_mid_result, 0, 4);
    tcase_add_loop_test(conn, reset_during_a_query, 0, 2);
    tcase_add_loop_test(conn, delay_and_timeouts, 0, 2);
    tcase_add_loop_test(pool, pool_reroutes_unsent_queries, 0, 2);
    tcase_add_loop_test(pool, pool_connect_failures_and_recovery, 0, 2);
    tcase_add_loop_test(pool, pool_under_every_fault_audit, 0, 2);
    tcase_add_loop_test(server, backends_killed_at_random_under_load, 0, 2);
    return t_run_suite(s);
}
