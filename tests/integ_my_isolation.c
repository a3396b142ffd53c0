/*
 * Every MariaDB query keeps its own semantics (issue 14), against a real
 * MariaDB server (scripts/testdb):
 * - a cached prepared statement that failed part way through its result
 *   (a runtime error, or the KILL QUERY of a timeout) serves again, on a
 *   connection and on a pool (the statement used to wedge the connection
 *   for good);
 * - SQL larger than the server's max_allowed_packet fails that query with
 *   EVDB_ETOOBIG before it is sent, and the connection serves on;
 * - a pooled autocommit query (EVDB__QUERY_AUTOCOMMIT) never leaves its
 *   shared connection inside a transaction;
 * - explicit batches run all or nothing.
 * Every test that waits for many futures counts their callbacks, and the
 * loop's watchdog fails a test that would hang.
 */
#include <check.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <evdb.h>

#include "driver.h"    /* EVDB__QUERY_AUTOCOMMIT, as evdb_pool_query sets it */
#include "pool_conn.h" /* evdb__conn_query: the core's entry that takes it */
#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 60.0
#define TEST_TIMEOUT_S 60
#define SQL_MAX 256
/* A query that should answer at once; far longer means a wedge. */
#define PROMPT_S 5.0
/* MariaDB's "Subquery returns more than 1 row". */
#define ER_SUBQUERY_NO_1_ROW 1242
/* MariaDB's "Query execution was interrupted" (KILL QUERY). */
#define ER_QUERY_INTERRUPTED 1317
/* Rows of the outer table; the subquery fails at FAIL_AT. */
#define OUTER_ROWS 100
#define FAIL_AT 50

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
}

static void teardown(void)
{
    t_loop_free(L);
}

/* ---- helpers ---- */

static evdb_conn *open_app(void)
{
    return t_conn_open(L, t_my_url(), NULL);
}

static evdb_conn *open_admin(void)
{
    return t_conn_open(L, t_my_admin_url(), NULL);
}

/* Wait for f and assert it failed with code (and, when errnum is not 0,
 * that MariaDB error). The caller unrefs f. */
static void expect_fail(evdb_future *f, int code, int errnum)
{
    t_expect_fail(f, code, NULL);
    if (errnum)
        ck_assert_int_eq(evdb_error_driver_code(evdb_future_error(f)), errnum);
}

/* ---- the wedge after a failed result ---- */

/* my_iso_outer holds k = 1..OUTER_ROWS; my_iso_sub one v per k, and two
 * for FAIL_AT, so the scalar subquery of WEDGE_SQL fails at that outer
 * row: after the result's columns and FAIL_AT - 1 rows went out. */
static const char WEDGE_SQL[] = "SELECT o.k, (SELECT s.v FROM my_iso_sub s WHERE s.k = o.k) AS v "
                                "FROM my_iso_outer o WHERE o.k >= ? ORDER BY o.k";

static void wedge_tables(void)
{
    evdb_conn *admin = open_admin();
    t_exec_ok(admin, "DROP TABLE IF EXISTS evdb_test.my_iso_outer, evdb_test.my_iso_sub");
    t_exec_ok(admin, "CREATE TABLE evdb_test.my_iso_outer (k INT PRIMARY KEY) ENGINE=InnoDB");
    t_exec_ok(admin, "CREATE TABLE evdb_test.my_iso_sub (k INT, v INT) ENGINE=InnoDB");
    t_exec_ok(admin, "INSERT INTO evdb_test.my_iso_outer SELECT seq FROM seq_1_to_100");
    t_exec_ok(admin, "INSERT INTO evdb_test.my_iso_sub SELECT seq, seq * 10 FROM seq_1_to_100");
    t_exec_ok(admin, "INSERT INTO evdb_test.my_iso_sub VALUES (50, -1)");
    t_conn_close(admin);
}

/* WEDGE_SQL from k: fails when k <= FAIL_AT, else OUTER_ROWS - k + 1 rows. */
static void expect_wedge_query(evdb_conn *c, int64_t from)
{
    evdb_value v = evdb_int(from);
    evdb_future *f = t_submit(c, WEDGE_SQL, &v, 1, PROMPT_S, 0);
    if (from <= FAIL_AT) {
        expect_fail(f, EVDB_ESERVER, ER_SUBQUERY_NO_1_ROW);
        ck_assert_str_eq(evdb_error_sqlstate(evdb_future_error(f)), "21000");
    } else {
        int rc = t_wait(f);
        ck_assert_msg(rc == 0, "k >= %lld: %s", (long long)from,
                      evdb_error_message(evdb_future_error(f)));
        const evdb_result *r = evdb_future_result(f);
        ck_assert_uint_eq(evdb_result_nrows(r), (size_t)(OUTER_ROWS - from + 1));
        ck_assert_int_eq(t_cell_int(r, 0, 0), from);
        ck_assert_int_eq(t_cell_int(r, 0, 1), from * 10);
    }
    evdb_future_unref(f);
}

/* Other statements on the same connection, both paths. */
static void expect_serves(evdb_conn *c, int64_t n)
{
    evdb_value v = evdb_int(n);
    evdb_future *f = t_submit(c, "SELECT ? + 1", &v, 1, PROMPT_S, 0);
    ck_assert_msg(t_wait(f) == 0, "SELECT ? + 1: %s", evdb_error_message(evdb_future_error(f)));
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), n + 1);
    evdb_future_unref(f);
    f = t_submit(c, "SELECT COUNT(*) FROM my_iso_outer", NULL, 0, PROMPT_S, 0);
    ck_assert_msg(t_wait(f) == 0, "COUNT: %s", evdb_error_message(evdb_future_error(f)));
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), OUTER_ROWS);
    evdb_future_unref(f);
}

/* The runtime error of a cached statement, again and again: each run
 * fails with its own error, the same statement then succeeds, and other
 * statements run. (Before the fix, the second execution never completed.) */
START_TEST(wedge_after_runtime_error)
{
    wedge_tables();
    evdb_conn *c = open_app();
    for (int i = 0; i < 5; i++)
        expect_wedge_query(c, 1);
    expect_wedge_query(c, FAIL_AT + 1);
    expect_serves(c, 1);
    /* The text protocol (no parameters) fails the same way, and serves on. */
    for (int i = 0; i < 3; i++) {
        evdb_future *f = t_submit(c,
                                  "SELECT o.k, (SELECT s.v FROM my_iso_sub s WHERE s.k = o.k) "
                                  "FROM my_iso_outer o ORDER BY o.k",
                                  NULL, 0, PROMPT_S, 0);
        expect_fail(f, EVDB_ESERVER, ER_SUBQUERY_NO_1_ROW);
        evdb_future_unref(f);
        expect_serves(c, i);
    }
    for (int i = 0; i < 20; i++) {
        expect_wedge_query(c, i % 2 ? FAIL_AT : OUTER_ROWS - i);
        if (i % 5 == 0)
            expect_serves(c, i);
    }
    t_conn_close(c);
}
END_TEST

/* A procedure whose second result set fails part way: the statement
 * (CALL, prepared and cached) runs again, and so do others. */
START_TEST(wedge_call_second_result)
{
    wedge_tables();
    evdb_conn *admin = open_admin();
    t_exec_ok(admin, "DROP PROCEDURE IF EXISTS evdb_test.my_iso_two");
    t_exec_ok(admin, "CREATE PROCEDURE evdb_test.my_iso_two(IN f INT) BEGIN "
                     "SELECT COUNT(*) FROM evdb_test.my_iso_outer; "
                     "SELECT o.k, (SELECT s.v FROM evdb_test.my_iso_sub s WHERE s.k = o.k) "
                     "FROM evdb_test.my_iso_outer o WHERE o.k >= f ORDER BY o.k; END");
    evdb_conn *c = open_app();
    for (int i = 0; i < 4; i++) {
        evdb_value v = evdb_int(i % 2 ? OUTER_ROWS : 1);
        evdb_future *f = t_submit(c, "CALL my_iso_two(?)", &v, 1, PROMPT_S, 0);
        if (i % 2) {
            ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
            const evdb_result *r = evdb_future_result(f);
            ck_assert_int_eq(t_cell_int(r, 0, 0), OUTER_ROWS);
            ck_assert_uint_eq(evdb_result_nrows(evdb_result_next(r)), 1);
        } else {
            expect_fail(f, EVDB_ESERVER, ER_SUBQUERY_NO_1_ROW);
        }
        evdb_future_unref(f);
        expect_serves(c, i);
    }
    t_conn_close(c);
    t_exec_ok(admin, "DROP PROCEDURE evdb_test.my_iso_two");
    t_conn_close(admin);
}
END_TEST

/* The same with the statement cache off for the query: it is closed after
 * its failure and prepared afresh. */
START_TEST(wedge_uncached)
{
    wedge_tables();
    evdb_conn *c = open_app();
    evdb_value v = evdb_int(1);
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    o.timeout = PROMPT_S;
    o.flags = EVDB_QUERY_NO_CACHE;
    for (int i = 0; i < 3; i++) {
        evdb_future *f = evdb_conn_query(c, WEDGE_SQL, &v, 1, &o);
        ck_assert_ptr_nonnull(f);
        expect_fail(f, EVDB_ESERVER, ER_SUBQUERY_NO_1_ROW);
        evdb_future_unref(f);
        expect_wedge_query(c, OUTER_ROWS);
    }
    expect_serves(c, 2);
    t_conn_close(c);
}
END_TEST

/* The same under a result-size cap, where rows are fetched one at a time
 * (unbuffered) instead of stored. */
START_TEST(wedge_unbuffered)
{
    wedge_tables();
    evdb_conn_opts co;
    memset(&co, 0, sizeof co);
    co.max_result_bytes = 1 << 20;
    evdb_conn *c = t_conn_open(L, t_my_url(), &co);
    for (int i = 0; i < 3; i++) {
        expect_wedge_query(c, 1);
        expect_wedge_query(c, OUTER_ROWS - i);
    }
    expect_serves(c, 3);
    t_conn_close(c);
}
END_TEST

/* A statement killed part way through its rows (its timeout passed): the
 * same statement then runs on the same connection. The statement sleeps
 * a little per row, so the KILL lands while rows are being sent. */
START_TEST(wedge_after_kill)
{
    wedge_tables();
    evdb_conn *c = open_app();
    int64_t id = evdb_conn_server_id(c);
    static const char sql[] = "SELECT k, SLEEP(0.01) FROM my_iso_outer WHERE k >= ? ORDER BY k";
    for (int i = 0; i < 3; i++) {
        evdb_value v = evdb_int(1);
        double t0 = t_now();
        evdb_future *f = t_submit(c, sql, &v, 1, 0.3, 0);
        expect_fail(f, EVDB_ETIMEDOUT, 0);
        ck_assert_double_lt(t_now() - t0, 0.6);
        evdb_future_unref(f);
        v = evdb_int(OUTER_ROWS - 2);
        f = t_submit(c, sql, &v, 1, PROMPT_S, 0);
        ck_assert_msg(t_wait(f) == 0, "after the KILL: %s",
                      evdb_error_message(evdb_future_error(f)));
        ck_assert_uint_eq(evdb_result_nrows(evdb_future_result(f)), 3);
        evdb_future_unref(f);
        expect_serves(c, i);
    }
    ck_assert_int_eq(evdb_conn_server_id(c), id); /* the same session throughout */
    t_conn_close(c);
}
END_TEST

/* ---- the wedge on a pool ---- */

#define POOL_CONNS 4
#define POOL_QUERIES 400
/* Every FAILING_EVERY-th query fails part way through its rows. */
#define FAILING_EVERY 3

struct counted {
    int calls[POOL_QUERIES];
    int status[POOL_QUERIES];
    size_t rows[POOL_QUERIES];
    int errnum[POOL_QUERIES];
    int done;
};

struct counted_item {
    struct counted *k;
    int i;
};

static void on_counted(evdb_future *f, void *arg)
{
    struct counted_item *it = arg;
    struct counted *k = it->k;
    k->calls[it->i]++;
    k->done++;
    k->status[it->i] = evdb_future_status(f);
    if (k->status[it->i] == 0)
        k->rows[it->i] = evdb_result_nrows(evdb_future_result(f));
    else
        k->errnum[it->i] = evdb_error_driver_code(evdb_future_error(f));
}

/* Run the loop until done reaches n or seconds pass. */
static void run_until(int *done, int n, double seconds)
{
    double end = t_now() + seconds;
    while (*done < n && t_now() < end)
        ev_run(L, EVRUN_ONCE);
}

/* 400 pooled queries without timeouts over 4 connections: every third
 * one fails part way through its rows, the others are the same statement
 * succeeding and a different one. Every future completes exactly once,
 * with its own outcome. (Before the fix all 4 connections wedged and the
 * futures never completed.) */
START_TEST(wedge_pool_of_4)
{
    wedge_tables();
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.min_conns = POOL_CONNS;
    po.max_conns = POOL_CONNS;
    po.acquire_timeout = 30;
    evdb_pool *p = evdb_pool_new(L, t_my_url(), &po);
    ck_assert_ptr_nonnull(p);
    static struct counted k;
    static struct counted_item items[POOL_QUERIES];
    memset(&k, 0, sizeof k);
    for (int i = 0; i < POOL_QUERIES; i++) {
        evdb_value v = evdb_int(i % FAILING_EVERY == 0 ? 1 : FAIL_AT + 1 + i % 40);
        const char *sql = i % FAILING_EVERY == 2 ? "SELECT ? + 0 FROM my_iso_outer" : WEDGE_SQL;
        evdb_future *f = evdb_pool_query(p, sql, &v, 1, NULL);
        ck_assert_ptr_nonnull(f);
        items[i] = (struct counted_item){&k, i};
        ck_assert_int_eq(evdb_future_on_done(f, on_counted, &items[i]), 0);
        evdb_future_unref(f); /* the callback still runs */
    }
    run_until(&k.done, POOL_QUERIES, 30);
    ck_assert_msg(k.done == POOL_QUERIES, "%d of %d futures completed (wedged)", k.done,
                  POOL_QUERIES);
    for (int i = 0; i < POOL_QUERIES; i++) {
        ck_assert_int_eq(k.calls[i], 1);
        if (i % FAILING_EVERY == 0) {
            ck_assert_int_eq(k.status[i], EVDB_ESERVER);
            ck_assert_int_eq(k.errnum[i], ER_SUBQUERY_NO_1_ROW);
        } else if (i % FAILING_EVERY == 2) {
            ck_assert_int_eq(k.status[i], 0);
            ck_assert_uint_eq(k.rows[i], OUTER_ROWS);
        } else {
            ck_assert_msg(k.status[i] == 0, "query %d: %s", i, evdb_err_name(k.status[i]));
            ck_assert_uint_eq(k.rows[i], (size_t)(OUTER_ROWS - (FAIL_AT + i % 40)));
        }
    }
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.queries, POOL_QUERIES);
    evdb_future *f = evdb_pool_close(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}
END_TEST

/* ---- SQL larger than max_allowed_packet ---- */

/* "SELECT 'xxx...' AS n" of exactly len bytes (len >= 20). The caller
 * frees it. */
static char *sql_of_len(size_t len)
{
    char *q = malloc(len + 1);
    ck_assert_ptr_nonnull(q);
    memcpy(q, "SELECT '", 8);
    memset(q + 8, 'x', len - 8);
    memcpy(q + len - 6, "' AS n", 6);
    q[len] = '\0';
    return q;
}

/* The error names the size and the limit. */
static void expect_too_big(evdb_future *f, size_t limit)
{
    expect_fail(f, EVDB_ETOOBIG, 0);
    const char *msg = evdb_error_message(evdb_future_error(f));
    char lim[32];
    snprintf(lim, sizeof lim, "(%zu bytes;", limit);
    ck_assert_msg(strstr(msg, "max_allowed_packet") && strstr(msg, lim), "message: %s", msg);
}

/* A query whose SQL is one byte too large for the server fails with
 * EVDB_ETOOBIG before it is sent (the server would close the session),
 * and the connection serves on; one byte less is sent and runs. On both
 * paths. (Before: "connection lost", and the queries behind it failed.) */
START_TEST(packet_sql_too_big)
{
    evdb_conn *c = open_app();
    int64_t id = evdb_conn_server_id(c);
    size_t limit = (size_t)t_query_int(c, "SELECT @@max_allowed_packet");
    /* The command byte counts: SQL of limit - 1 bytes is a packet of
     * exactly limit bytes, which the server refuses. */
    char *big = sql_of_len(limit - 1);
    evdb_future *f = t_submit(c, big, NULL, 0, 0, 0);
    evdb_future *behind = t_submit(c, "SELECT 5", NULL, 0, 0, 0);
    expect_too_big(f, limit);
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(f))); /* never sent */
    evdb_future_unref(f);
    ck_assert_int_eq(t_wait(behind), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(behind), 0, 0), 5);
    evdb_future_unref(behind);
    /* A parameter does not make it fit: the prepare carries the SQL. */
    evdb_value one = evdb_int(1);
    f = t_submit(c, big, &one, 1, 0, 0);
    expect_too_big(f, limit);
    evdb_future_unref(f);
    /* In a batch, every statement is checked before any runs. */
    evdb_stmt s[] = {{"SELECT 1", NULL, 0}, {big, NULL, 0}};
    f = evdb_conn_batch(c, s, 2, NULL);
    ck_assert_ptr_nonnull(f);
    expect_too_big(f, limit);
    evdb_future_unref(f);
    free(big);
    big = sql_of_len(limit - 2);
    f = t_submit(c, big, NULL, 0, 0, 0);
    ck_assert_msg(t_wait(f) == 0, "limit - 2: %s", evdb_error_message(evdb_future_error(f)));
    ck_assert_uint_eq(evdb_result_nrows(evdb_future_result(f)), 1);
    evdb_future_unref(f);
    free(big);
    ck_assert_int_eq(t_query_int(c, "SELECT 6"), 6);
    ck_assert_int_eq(evdb_conn_server_id(c), id);
    t_conn_close(c);
}
END_TEST

/* A text parameter larger than the limit: refused before it is sent. A
 * parameter just under it is sent and arrives whole. */
START_TEST(packet_param_too_big)
{
    evdb_conn *c = open_app();
    int64_t id = evdb_conn_server_id(c);
    size_t limit = (size_t)t_query_int(c, "SELECT @@max_allowed_packet");
    char *buf = malloc(limit);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 'y', limit);
    evdb_value v = evdb_textn(buf, limit);
    evdb_future *f = t_submit(c, "SELECT LENGTH(?)", &v, 1, 0, 0);
    expect_too_big(f, limit);
    evdb_future_unref(f);
    /* Two parameters that fit one by one but not together. */
    evdb_value two[2] = {evdb_bytes(buf, limit / 2 + 1), evdb_bytes(buf, limit / 2 + 1)};
    f = t_submit(c, "SELECT LENGTH(?) + LENGTH(?)", two, 2, 0, 0);
    expect_too_big(f, limit);
    evdb_future_unref(f);
    size_t fits = limit - 1024;
    v = evdb_textn(buf, fits);
    f = t_submit(c, "SELECT LENGTH(?)", &v, 1, 0, 0);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), (int64_t)fits);
    evdb_future_unref(f);
    free(buf);
    ck_assert_int_eq(evdb_conn_server_id(c), id);
    t_conn_close(c);
}
END_TEST

/* On a pool: the too-big query fails alone, the others succeed, no
 * connection is lost. */
START_TEST(packet_pool_unaffected)
{
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.max_conns = 2;
    evdb_pool *p = evdb_pool_new(L, t_my_url(), &po);
    ck_assert_ptr_nonnull(p);
    evdb_future *f = evdb_pool_query(p, "SELECT @@max_allowed_packet", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(f), 0);
    size_t limit = (size_t)t_cell_int(evdb_future_result(f), 0, 0);
    evdb_future_unref(f);
    char *big = sql_of_len(limit + 10);
    enum { N = 20 };
    evdb_future *fs[N];
    for (int i = 0; i < N; i++) {
        evdb_value v = evdb_int(i);
        fs[i] = i % 5 == 2 ? evdb_pool_query(p, big, NULL, 0, NULL)
                           : evdb_pool_query(p, "SELECT ?", &v, 1, NULL);
        ck_assert_ptr_nonnull(fs[i]);
    }
    for (int i = 0; i < N; i++) {
        if (i % 5 == 2) {
            expect_too_big(fs[i], limit);
        } else {
            ck_assert_int_eq(t_wait(fs[i]), 0);
            ck_assert_int_eq(t_cell_int(evdb_future_result(fs[i]), 0, 0), i);
        }
        evdb_future_unref(fs[i]);
    }
    free(big);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.broken, 0);
    ck_assert_uint_le(st.connects, 2);
    f = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}
END_TEST

/* A pool of one whose connection is opened now. */
static evdb_pool *pool_of_one(void)
{
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.min_conns = 1;
    po.max_conns = 1;
    evdb_pool *p = evdb_pool_new(L, t_my_url(), &po);
    ck_assert_ptr_nonnull(p);
    evdb_future *f = evdb_pool_query(p, "SELECT 1", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    return p;
}

/* Borrow p's connection, release it (the pool resets the session), and
 * borrow it again. */
static evdb_conn *borrow_after_reset(evdb_pool *p)
{
    evdb_future *f = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_conn *c = evdb_future_take_conn(f);
    evdb_future_unref(f);
    int64_t id = evdb_conn_server_id(c);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    f = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(f), 0);
    c = evdb_future_take_conn(f);
    evdb_future_unref(f);
    ck_assert_int_eq(evdb_conn_server_id(c), id); /* the same session */
    /* A release does not wait for its reset: it runs ahead of the next
     * borrower's first statement. Wait for it here, so that what the
     * caller changes next happens after the reset. */
    ck_assert_int_eq(t_query_int(c, "SELECT 1"), 1);
    return c;
}

/* The server enforces the packet limit of the connect for the whole
 * session, but after a session reset (a pooled connection released)
 * @@max_allowed_packet shows the server's global value of that moment.
 * The driver keeps to the limit of the connect, read before the first
 * reset: raised meanwhile, a query over the old limit is still refused
 * (the server would close the session); lowered, a query over the new
 * value but under the old one runs. */
START_TEST(packet_limit_after_reset)
{
    evdb_conn *admin = open_admin();
    int64_t old = t_query_int(admin, "SELECT @@global.max_allowed_packet");
    const int64_t low = 1 << 20;
    ck_assert_int_gt(old, 3 * low);
    char restore[SQL_MAX];
    snprintf(restore, sizeof restore, "SET GLOBAL max_allowed_packet = %lld", (long long)old);
    char *q = sql_of_len(2 * (size_t)low);

    /* Connected under 1 MiB, the global raised before the reset. */
    t_exec_ok(admin, "SET GLOBAL max_allowed_packet = 1048576");
    evdb_pool *p = pool_of_one();
    t_exec_ok(admin, restore);
    evdb_conn *c = borrow_after_reset(p);
    ck_assert_int_eq(t_query_int(c, "SELECT @@max_allowed_packet"), old); /* what it shows */
    evdb_future *f = t_submit(c, q, NULL, 0, 0, 0);
    expect_too_big(f, (size_t)low); /* what is enforced */
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT 7"), 7);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    t_pool_close(p);

    /* Connected under the old value, the global lowered before the reset. */
    p = pool_of_one();
    t_exec_ok(admin, "SET GLOBAL max_allowed_packet = 1048576");
    c = borrow_after_reset(p);
    t_exec_ok(admin, restore);
    ck_assert_int_eq(t_query_int(c, "SELECT @@max_allowed_packet"), low);
    f = t_submit(c, q, NULL, 0, 0, 0);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    t_pool_close(p);
    free(q);
    t_conn_close(admin);
}
END_TEST

/* ---- pooled autocommit queries ---- */

static evdb_future *submit_pooled(evdb_conn *c, const char *sql, const evdb_value *p, size_t n)
{
    /* EVDB__QUERY_AUTOCOMMIT as evdb_pool_query sets it: through the
     * core's own entry, since evdb_conn_query refuses internal flags. */
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    o.timeout = PROMPT_S;
    o.flags = EVDB__QUERY_AUTOCOMMIT;
    evdb_future *f = evdb__conn_query(c, sql, p, n, &o);
    ck_assert_msg(f != NULL, "evdb__conn_query: %s", evdb_error_message(evdb_last_error()));
    return f;
}

/* The session is in autocommit mode and outside any transaction. */
static void expect_clean(evdb_conn *c)
{
    evdb_future *f = t_run_ok(c, "SELECT @@autocommit, @@in_transaction", NULL, 0);
    t_expect_cell(evdb_future_result(f), 0, 0, "1");
    t_expect_cell(evdb_future_result(f), 0, 1, "0");
    evdb_future_unref(f);
}

static void ac_table(void)
{
    evdb_conn *admin = open_admin();
    t_exec_ok(admin, "DROP TABLE IF EXISTS evdb_test.my_iso_ac");
    t_exec_ok(admin, "CREATE TABLE evdb_test.my_iso_ac (a INT PRIMARY KEY) ENGINE=InnoDB");
    t_conn_close(admin);
}

static const char *const opening[] = {
    "BEGIN",
    "begin work;",
    "  /* a comment */ START TRANSACTION READ WRITE",
    "-- why\nstart transaction with consistent snapshot ;",
    "XA START 'evdb'",
    "SET autocommit=0",
    "SET @@autocommit = OFF",
    "set session autocommit := false",
    "SET @@session.autocommit=0;",
    "SET @x = 1, autocommit = 0",
    "COMMIT AND CHAIN",
    "ROLLBACK WORK AND CHAIN",
};

/* A lone statement that opens a transaction is refused before it is
 * sent, with the way out in the message. */
START_TEST(autocommit_refuses_opening)
{
    evdb_conn *c = open_app();
    const char *sql = opening[_i];
    evdb_future *f = submit_pooled(c, sql, NULL, 0);
    expect_fail(f, EVDB_EINVAL, 0);
    const char *msg = evdb_error_message(evdb_future_error(f));
    ck_assert_msg(strstr(msg, "refused") && strstr(msg, "evdb_pool_acquire") &&
                      strstr(msg, "evdb_pool_transaction"),
                  "%s: %s", sql, msg);
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(f)));
    evdb_future_unref(f);
    expect_clean(c);
    t_conn_close(c);
}
END_TEST

/* What is not refused: strings that open and close their own
 * transaction, COMMIT AND NO CHAIN, and the same statements on a
 * connection of one's own. */
START_TEST(autocommit_allows)
{
    ac_table();
    evdb_conn *c = open_app();
    evdb_future *f = submit_pooled(c,
                                   "START TRANSACTION; INSERT INTO my_iso_ac VALUES (1); "
                                   "COMMIT",
                                   NULL, 0);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    f = submit_pooled(c, "BEGIN; INSERT INTO my_iso_ac VALUES (2); ROLLBACK;", NULL, 0);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    f = submit_pooled(c, "COMMIT AND NO CHAIN", NULL, 0);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    f = submit_pooled(c, "SET autocommit = 1", NULL, 0);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    f = submit_pooled(c, "SELECT 'BEGIN' AS begin_word", NULL, 0);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    expect_clean(c);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac"), 1);
    /* Without the flag, a transaction is the caller's business. */
    t_exec_ok(c, "BEGIN");
    t_exec_ok(c, "INSERT INTO my_iso_ac VALUES (3)");
    t_exec_ok(c, "ROLLBACK");
    expect_clean(c);
    t_conn_close(c);
}
END_TEST

/* A pooled query that ends inside a transaction anyway (several
 * statements, a prepared SET, a failing statement after BEGIN) is rolled
 * back before it is reported, and fails saying so; the session is clean
 * afterwards and nothing it wrote stays. */
START_TEST(autocommit_rolls_back)
{
    ac_table();
    evdb_conn *c = open_app();
    evdb_future *f =
        submit_pooled(c, "START TRANSACTION; INSERT INTO my_iso_ac VALUES (1)", NULL, 0);
    expect_fail(f, EVDB_EINVAL, 0);
    const char *msg = evdb_error_message(evdb_future_error(f));
    ck_assert_msg(strstr(msg, "rolled back") && strstr(msg, "evdb_pool_acquire"), "%s", msg);
    evdb_future_unref(f);
    expect_clean(c);
    f = submit_pooled(c, "SET autocommit = 0; INSERT INTO my_iso_ac VALUES (2)", NULL, 0);
    expect_fail(f, EVDB_EINVAL, 0);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(f)), "autocommit off"));
    evdb_future_unref(f);
    expect_clean(c);
    evdb_value zero = evdb_int(0);
    f = submit_pooled(c, "SET autocommit = ?", &zero, 1);
    expect_fail(f, EVDB_EINVAL, 0);
    evdb_future_unref(f);
    expect_clean(c);
    f = submit_pooled(c, "BEGIN; INSERT INTO my_iso_ac VALUES (3); SELECT * FROM my_iso_none", NULL,
                      0);
    expect_fail(f, EVDB_EINVAL, 0);
    msg = evdb_error_message(evdb_future_error(f));
    ck_assert_msg(strstr(msg, "the query itself failed") && strstr(msg, "my_iso_none"), "%s", msg);
    evdb_future_unref(f);
    expect_clean(c);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac"), 0);
    t_conn_close(c);
}
END_TEST

/* An XA transaction cannot be rolled back by a plain ROLLBACK (it needs
 * its xid): the connection is given up rather than handed on, and the
 * server rolls the transaction back with the session. */
START_TEST(autocommit_xa_gives_up)
{
    ac_table();
    evdb_conn *c = open_app();
    evdb_future *f =
        submit_pooled(c, "XA START 'evdb_xa'; INSERT INTO my_iso_ac VALUES (1)", NULL, 0);
    expect_fail(f, EVDB_ECONNLOST, 0);
    ck_assert_msg(strstr(evdb_error_message(evdb_future_error(f)), "out of a transaction"), "%s",
                  evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    /* The connection is gone: it takes no more queries. */
    ck_assert_ptr_null(evdb_conn_query(c, "SELECT 1", NULL, 0, NULL));
    t_conn_close(c);
    evdb_conn *other = open_app();
    ck_assert_int_eq(t_query_int(other, "SELECT COUNT(*) FROM my_iso_ac"), 0);
    t_conn_close(other);
}
END_TEST

/* Through the pool (which sets the flag): a BEGIN is refused, a string
 * that leaves a transaction open is rolled back, and the other requests'
 * inserts all commit (before: 20 acknowledged inserts were rolled back
 * with the transaction they landed in). */
START_TEST(autocommit_pool)
{
    ac_table();
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.max_conns = 2;
    evdb_pool *p = evdb_pool_new(L, t_my_url(), &po);
    ck_assert_ptr_nonnull(p);
    evdb_future *f = evdb_pool_query(p, "BEGIN", NULL, 0, NULL);
    ck_assert_ptr_nonnull(f);
    expect_fail(f, EVDB_EINVAL, 0);
    evdb_future_unref(f);
    enum { N = 20 };
    evdb_future *fs[N + 1];
    fs[0] =
        evdb_pool_query(p, "START TRANSACTION; INSERT INTO my_iso_ac VALUES (1000)", NULL, 0, NULL);
    for (int i = 1; i <= N; i++) {
        evdb_value v = evdb_int(i);
        fs[i] = evdb_pool_query(p, "INSERT INTO my_iso_ac VALUES (?)", &v, 1, NULL);
        ck_assert_ptr_nonnull(fs[i]);
    }
    expect_fail(fs[0], EVDB_EINVAL, 0);
    for (int i = 0; i <= N; i++) {
        if (i)
            ck_assert_int_eq(t_wait(fs[i]), 0);
        evdb_future_unref(fs[i]);
    }
    f = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    evdb_conn *c = open_app();
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac"), N);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac WHERE a = 1000"), 0);
    t_conn_close(c);
}
END_TEST

/* ---- explicit batches ---- */

static evdb_future *batch(evdb_conn *c, const evdb_stmt *s, size_t n, double timeout)
{
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    o.timeout = timeout;
    evdb_future *f = evdb_conn_batch(c, s, n, &o);
    ck_assert_msg(f != NULL, "evdb_conn_batch: %s", evdb_error_message(evdb_last_error()));
    return f;
}

/* The statements run in order, each result chained, and commit together:
 * another session sees the rows. */
START_TEST(batch_commits)
{
    ac_table();
    evdb_conn *c = open_app();
    evdb_value v[2] = {evdb_int(1), evdb_int(2)};
    evdb_stmt s[] = {
        {"INSERT INTO my_iso_ac VALUES (?), (?)", v, 2},
        {"INSERT INTO my_iso_ac VALUES (3)", NULL, 0},
        {"SELECT COUNT(*) FROM my_iso_ac WHERE a <= ?", &v[1], 1},
        {"SELECT a FROM my_iso_ac ORDER BY a", NULL, 0},
    };
    evdb_future *f = batch(c, s, 4, PROMPT_S);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    const evdb_result *r = evdb_future_result(f);
    ck_assert_int_eq(evdb_result_affected(r), 2);
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(evdb_result_affected(r), 1);
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(t_cell_int(r, 0, 0), 2);
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(evdb_result_nrows(r), 3);
    ck_assert_ptr_null(evdb_result_next(r));
    evdb_future_unref(f);
    expect_clean(c);
    evdb_conn *other = open_app();
    ck_assert_int_eq(t_query_int(other, "SELECT COUNT(*) FROM my_iso_ac"), 3);
    t_conn_close(other);
    t_conn_close(c);
}
END_TEST

/* A failing statement undoes the whole batch; the error is its own, with
 * the statement named; the connection serves on, outside a transaction. */
START_TEST(batch_all_or_nothing)
{
    ac_table();
    evdb_conn *c = open_app();
    t_exec_ok(c, "INSERT INTO my_iso_ac VALUES (5)");
    evdb_value v = evdb_int(5);
    evdb_stmt s[] = {
        {"INSERT INTO my_iso_ac VALUES (1)", NULL, 0},
        {"UPDATE my_iso_ac SET a = 6 WHERE a = 5", NULL, 0},
        {"INSERT INTO my_iso_ac VALUES (?)", &v, 1},   /* 5 is free now: fine */
        {"INSERT INTO my_iso_ac VALUES (1)", NULL, 0}, /* duplicate */
        {"INSERT INTO my_iso_ac VALUES (7)", NULL, 0},
    };
    for (int round = 0; round < 3; round++) {
        evdb_future *f = batch(c, s, 5, PROMPT_S);
        expect_fail(f, EVDB_ESERVER, 1062);
        const evdb_error *e = evdb_future_error(f);
        ck_assert_str_eq(evdb_error_sqlstate(e), "23000");
        const char *msg = evdb_error_message(e);
        ck_assert_msg(strncmp(msg, "batch statement 4 of 5: ", 24) == 0, "%s", msg);
        ck_assert_ptr_null(evdb_future_result(f));
        evdb_future_unref(f);
        expect_clean(c);
        evdb_future *q = t_run_ok(c, "SELECT GROUP_CONCAT(a ORDER BY a) FROM my_iso_ac", NULL, 0);
        t_expect_cell(evdb_future_result(q), 0, 0, "5");
        evdb_future_unref(q);
    }
    t_conn_close(c);
}
END_TEST

/* Inside the caller's transaction a batch is a savepoint: a failed batch
 * leaves the transaction as it was before it, a good one stays part of
 * it (and goes with its ROLLBACK). */
START_TEST(batch_in_transaction)
{
    ac_table();
    evdb_conn *c = open_app();
    t_exec_ok(c, "START TRANSACTION");
    t_exec_ok(c, "INSERT INTO my_iso_ac VALUES (1)");
    evdb_stmt bad[] = {
        {"INSERT INTO my_iso_ac VALUES (2)", NULL, 0},
        {"INSERT INTO my_iso_ac VALUES (1)", NULL, 0},
    };
    evdb_future *f = batch(c, bad, 2, PROMPT_S);
    expect_fail(f, EVDB_ESERVER, 1062);
    ck_assert_msg(
        strncmp(evdb_error_message(evdb_future_error(f)), "batch statement 2 of 2: ", 24) == 0,
        "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT @@in_transaction"), 1);
    ck_assert_int_eq(t_query_int(c, "SELECT GROUP_CONCAT(a) FROM my_iso_ac"), 1);
    evdb_stmt good[] = {
        {"INSERT INTO my_iso_ac VALUES (3)", NULL, 0},
        {"INSERT INTO my_iso_ac VALUES (4)", NULL, 0},
    };
    f = batch(c, good, 2, PROMPT_S);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT @@in_transaction"), 1);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac"), 3);
    t_exec_ok(c, "ROLLBACK");
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac"), 0);
    t_exec_ok(c, "START TRANSACTION");
    f = batch(c, good, 2, PROMPT_S);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    t_exec_ok(c, "COMMIT");
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac"), 2);
    expect_clean(c);
    t_conn_close(c);
}
END_TEST

static const char *const unfit_stmts[] = {
    "CREATE TABLE my_iso_never (a INT)",
    "alter table my_iso_ac add column b int",
    "DROP TABLE my_iso_ac",
    "TRUNCATE my_iso_ac",
    "RENAME TABLE my_iso_ac TO my_iso_never",
    "LOCK TABLES my_iso_ac WRITE",
    "COMMIT",
    "ROLLBACK",
    "START TRANSACTION",
    "BEGIN",
    "SAVEPOINT s",
    "SET autocommit = 1",
    "INSERT INTO my_iso_ac VALUES (9); COMMIT",
};

/* A statement that commits implicitly (DDL and the like), transaction
 * control or several statements in one entry are refused before
 * anything of the batch is sent. */
START_TEST(batch_refuses_unfit)
{
    ac_table();
    evdb_conn *c = open_app();
    evdb_stmt s[] = {
        {"INSERT INTO my_iso_ac VALUES (1)", NULL, 0},
        {unfit_stmts[_i], NULL, 0},
    };
    evdb_future *f = batch(c, s, 2, PROMPT_S);
    expect_fail(f, EVDB_EINVAL, 0);
    const char *msg = evdb_error_message(evdb_future_error(f));
    ck_assert_msg(strncmp(msg, "batch statement 2 of 2: ", 24) == 0, "%s", msg);
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(f)));
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac"), 0);
    expect_clean(c);
    t_conn_close(c);
}
END_TEST

/* A statement the refusal cannot see through (a procedure that runs
 * DDL) still commits implicitly: the batch stops there and says which
 * statements took effect, and the session is clean. */
START_TEST(batch_implicit_commit_reported)
{
    ac_table();
    evdb_conn *admin = open_admin();
    t_exec_ok(admin, "DROP PROCEDURE IF EXISTS evdb_test.my_iso_ddl");
    t_exec_ok(admin, "DROP TABLE IF EXISTS evdb_test.my_iso_ddl_t");
    t_exec_ok(admin, "CREATE PROCEDURE evdb_test.my_iso_ddl() SQL SECURITY DEFINER "
                     "CREATE TABLE evdb_test.my_iso_ddl_t (a INT)");
    evdb_conn *c = open_app();
    evdb_stmt s[] = {
        {"INSERT INTO my_iso_ac VALUES (1)", NULL, 0},
        {"CALL my_iso_ddl()", NULL, 0},
        {"INSERT INTO my_iso_ac VALUES (2)", NULL, 0},
    };
    evdb_future *f = batch(c, s, 3, PROMPT_S);
    expect_fail(f, EVDB_EINVAL, 0);
    const char *msg = evdb_error_message(evdb_future_error(f));
    ck_assert_msg(strstr(msg, "batch statement 2 of 3 committed") &&
                      strstr(msg, "statements 1 to 2 took effect"),
                  "%s", msg);
    evdb_future_unref(f);
    expect_clean(c);
    ck_assert_int_eq(t_query_int(c, "SELECT GROUP_CONCAT(a) FROM my_iso_ac"), 1);
    t_conn_close(c);
    t_exec_ok(admin, "DROP PROCEDURE evdb_test.my_iso_ddl");
    t_exec_ok(admin, "DROP TABLE evdb_test.my_iso_ddl_t");
    t_conn_close(admin);
}
END_TEST

/* Temporary tables commit nothing: allowed, and undone with the batch
 * where the engine can (the table itself stays: MariaDB does not roll
 * back CREATE TEMPORARY TABLE). */
START_TEST(batch_temporary_table)
{
    ac_table();
    evdb_conn *c = open_app();
    evdb_stmt s[] = {
        {"CREATE TEMPORARY TABLE my_iso_tmp (a INT) ENGINE=InnoDB", NULL, 0},
        {"INSERT INTO my_iso_tmp VALUES (1)", NULL, 0},
        {"INSERT INTO my_iso_ac SELECT a FROM my_iso_tmp", NULL, 0},
        {"DROP TEMPORARY TABLE my_iso_tmp", NULL, 0},
    };
    evdb_future *f = batch(c, s, 4, PROMPT_S);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac"), 1);
    expect_clean(c);
    t_conn_close(c);
}
END_TEST

/* A batch that times out in its second statement: no further statement
 * runs, the first is undone, and the connection serves on. */
START_TEST(batch_timeout)
{
    ac_table();
    evdb_conn *c = open_app();
    evdb_value v = evdb_int(5);
    evdb_stmt s[] = {
        {"INSERT INTO my_iso_ac VALUES (1)", NULL, 0},
        {"SELECT SLEEP(?)", &v, 1},
        {"INSERT INTO my_iso_ac VALUES (2)", NULL, 0},
    };
    double t0 = t_now();
    evdb_future *f = batch(c, s, 3, 0.3);
    expect_fail(f, EVDB_ETIMEDOUT, 0);
    ck_assert_double_lt(t_now() - t0, 1.0);
    evdb_future_unref(f);
    expect_clean(c);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM my_iso_ac"), 0);
    ck_assert_double_lt(t_now() - t0, 2.0);
    t_conn_close(c);
}
END_TEST

/* A user allowed one session: the KILL QUERY of a timeout cannot open
 * its second session, so the statement runs to its end. */
#define ONE_USER "evdb_iso_one"
#define ONE_PASSWORD "evdb_iso_pw"

static evdb_conn *one_user_open(void)
{
    evdb_conn *admin = open_admin();
    t_exec_ok(admin, "CREATE USER IF NOT EXISTS '" ONE_USER
                     "'@'127.0.0.1' IDENTIFIED BY '" ONE_PASSWORD "' WITH MAX_USER_CONNECTIONS 1");
    t_exec_ok(admin, "GRANT SELECT, INSERT ON evdb_test.* TO '" ONE_USER "'@'127.0.0.1'");
    t_conn_close(admin);
    char url[SQL_MAX];
    snprintf(url, sizeof url, "mariadb://" ONE_USER ":" ONE_PASSWORD "@127.0.0.1:%s/evdb_test",
             evdb_test_env("EVDB_TEST_MY_PORT"));
    return t_my_open_one_session(L, url);
}

/* A batch given up on while its last statement runs (the KILL cannot be
 * sent here, so the statement ends by itself after the deadline) does
 * not commit: the caller was told it failed. */
START_TEST(batch_timeout_no_commit)
{
    ac_table();
    evdb_conn *c = one_user_open();
    evdb_stmt s[] = {
        {"INSERT INTO my_iso_ac VALUES (1)", NULL, 0},
        {"SELECT SLEEP(0.6)", NULL, 0},
    };
    evdb_future *f = batch(c, s, 2, 0.3);
    /* Queued behind the batch: answered once it settled. */
    evdb_future *count = t_submit(c, "SELECT COUNT(*) FROM my_iso_ac", NULL, 0, 0, 0);
    expect_fail(f, EVDB_ETIMEDOUT, 0);
    evdb_future_unref(f);
    ck_assert_int_eq(t_wait(count), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(count), 0, 0), 0);
    evdb_future_unref(count);
    expect_clean(c);
    t_conn_close(c);
}
END_TEST

/* evdb_pool_batch: the same, on a pooled connection. */
START_TEST(batch_pool)
{
    ac_table();
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.max_conns = 2;
    evdb_pool *p = evdb_pool_new(L, t_my_url(), &po);
    ck_assert_ptr_nonnull(p);
    evdb_stmt good[] = {
        {"INSERT INTO my_iso_ac VALUES (1)", NULL, 0},
        {"INSERT INTO my_iso_ac VALUES (2)", NULL, 0},
    };
    evdb_stmt bad[] = {
        {"INSERT INTO my_iso_ac VALUES (3)", NULL, 0},
        {"INSERT INTO my_iso_ac VALUES (1)", NULL, 0},
    };
    evdb_future *f = evdb_pool_batch(p, good, 2, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    f = evdb_pool_batch(p, bad, 2, NULL);
    ck_assert_ptr_nonnull(f);
    expect_fail(f, EVDB_ESERVER, 1062);
    evdb_future_unref(f);
    f = evdb_pool_query(p, "SELECT GROUP_CONCAT(a ORDER BY a) FROM my_iso_ac", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(f), 0);
    t_expect_cell(evdb_future_result(f), 0, 0, "1,2");
    evdb_future_unref(f);
    f = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}
END_TEST

/* ---- when a query counts as sent ---- */

/* A prepare can wait on the server: behind an ALTER TABLE that waits for
 * another session's transaction, even a prepare queues for the table's
 * metadata lock. The query then counts as sent, so its timeout KILLs the
 * waiting prepare and the connection serves on at once (a prepare not
 * counted as sent would never be cancelled, and the connection would wait
 * for the other transaction). */
START_TEST(timeout_while_prepare_waits)
{
    evdb_conn *admin = open_admin();
    t_exec_ok(admin, "DROP TABLE IF EXISTS evdb_test.my_iso_mdl");
    t_exec_ok(admin, "CREATE TABLE evdb_test.my_iso_mdl (a INT) ENGINE=InnoDB");
    evdb_conn *holder = open_app();
    t_exec_ok(holder, "START TRANSACTION");
    t_exec_ok(holder, "SELECT * FROM my_iso_mdl");
    /* Waits for the holder's transaction, and makes others wait behind it. */
    evdb_future *alter =
        t_submit(admin, "ALTER TABLE evdb_test.my_iso_mdl ADD COLUMN b INT", NULL, 0, 0, 0);
    t_run_for(L, 0.2);
    ck_assert_int_eq(evdb_future_status(alter), EVDB_PENDING);
    evdb_conn *c = open_app();
    evdb_value v = evdb_int(1);
    double t0 = t_now();
    evdb_future *f = t_submit(c, "SELECT a FROM my_iso_mdl WHERE a = ?", &v, 1, 0.3, 0);
    evdb_future *next = t_submit(c, "SELECT 77", NULL, 0, 0, 0);
    expect_fail(f, EVDB_ETIMEDOUT, 0);
    evdb_future_unref(f);
    ck_assert_int_eq(t_wait(next), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(next), 0, 0), 77);
    ck_assert_double_lt(t_now() - t0, 1.5);
    evdb_future_unref(next);
    t_exec_ok(holder, "ROLLBACK");
    ck_assert_int_eq(t_wait(alter), 0);
    evdb_future_unref(alter);
    t_conn_close(c);
    t_conn_close(holder);
    t_exec_ok(admin, "DROP TABLE evdb_test.my_iso_mdl");
    t_conn_close(admin);
}
END_TEST

static Suite *isolation_suite(void)
{
    Suite *s = suite_create("mariadb_isolation");
    TCase *wedge = tcase_create("wedge");
    TCase *packet = tcase_create("packet");
    TCase *ac = tcase_create("autocommit");
    TCase *bt = tcase_create("batch");
    TCase *sent = tcase_create("sent");
    TCase *all[] = {wedge, packet, ac, bt, sent};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], TEST_TIMEOUT_S);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_test(wedge, wedge_after_runtime_error);
    tcase_add_test(wedge, wedge_call_second_result);
    tcase_add_test(wedge, wedge_uncached);
    tcase_add_test(wedge, wedge_unbuffered);
    tcase_add_test(wedge, wedge_after_kill);
    tcase_add_test(wedge, wedge_pool_of_4);

    tcase_add_test(packet, packet_sql_too_big);
    tcase_add_test(packet, packet_param_too_big);
    tcase_add_test(packet, packet_pool_unaffected);
    tcase_add_test(packet, packet_limit_after_reset);

    tcase_add_loop_test(ac, autocommit_refuses_opening, 0,
                        (int)(sizeof opening / sizeof opening[0]));
    tcase_add_test(ac, autocommit_allows);
    tcase_add_test(ac, autocommit_rolls_back);
    tcase_add_test(ac, autocommit_xa_gives_up);
    tcase_add_test(ac, autocommit_pool);

    tcase_add_test(bt, batch_commits);
    tcase_add_test(bt, batch_all_or_nothing);
    tcase_add_test(bt, batch_in_transaction);
    tcase_add_loop_test(bt, batch_refuses_unfit, 0,
                        (int)(sizeof unfit_stmts / sizeof unfit_stmts[0]));
    tcase_add_test(bt, batch_implicit_commit_reported);
    tcase_add_test(bt, batch_temporary_table);
    tcase_add_test(bt, batch_timeout);
    tcase_add_test(bt, batch_timeout_no_commit);
    tcase_add_test(bt, batch_pool);

    tcase_add_test(sent, timeout_while_prepare_waits);
    return s;
}

int main(void)
{
    return t_run_suite(isolation_suite());
}
