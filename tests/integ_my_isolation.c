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
    const char *u = evdb_test_my_admin_url();
    ck_assert_ptr_nonnull(u);
    return t_conn_open(L, u, NULL);
}

static evdb_future *submit(evdb_conn *c, const char *sql, const evdb_value *p, size_t n,
                           double timeout)
{
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    o.timeout = timeout;
    evdb_future *f = evdb_conn_query(c, sql, p, n, &o);
    ck_assert_msg(f != NULL, "evdb_conn_query: %s", evdb_error_message(evdb_last_error()));
    return f;
}

/* Wait for f and assert it failed with code (and, when errnum is not 0,
 * that MariaDB error). The caller unrefs f. */
static void expect_fail(evdb_future *f, int code, int errnum)
{
    int rc = t_wait(f);
    const evdb_error *e = evdb_future_error(f);
    ck_assert_msg(rc == code, "expected %s, got %s: %s", evdb_err_name(code), evdb_err_name(rc),
                  e ? evdb_error_message(e) : "(ok)");
    if (errnum)
        ck_assert_int_eq(evdb_error_driver_code(e), errnum);
}

/* ---- the wedge after a failed result ---- */

/* my_iso_outer holds k = 1..OUTER_ROWS; my_iso_sub one v per k, and two
 * for FAIL_AT, so the scalar subquery of WEDGE_SQL fails at that outer
 * row: after the result's columns and FAIL_AT - 1 rows went out. */
static const char WEDGE_SQL[] =
    "SELECT o.k, (SELECT s.v FROM my_iso_sub s WHERE s.k = o.k) AS v "
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
    evdb_future *f = submit(c, WEDGE_SQL, &v, 1, PROMPT_S);
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
    evdb_future *f = submit(c, "SELECT ? + 1", &v, 1, PROMPT_S);
    ck_assert_msg(t_wait(f) == 0, "SELECT ? + 1: %s", evdb_error_message(evdb_future_error(f)));
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), n + 1);
    evdb_future_unref(f);
    f = submit(c, "SELECT COUNT(*) FROM my_iso_outer", NULL, 0, PROMPT_S);
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
        evdb_future *f = submit(c,
                                "SELECT o.k, (SELECT s.v FROM my_iso_sub s WHERE s.k = o.k) "
                                "FROM my_iso_outer o ORDER BY o.k",
                                NULL, 0, PROMPT_S);
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
    static const char sql[] =
        "SELECT k, SLEEP(0.01) FROM my_iso_outer WHERE k >= ? ORDER BY k";
    for (int i = 0; i < 3; i++) {
        evdb_value v = evdb_int(1);
        double t0 = t_now();
        evdb_future *f = submit(c, sql, &v, 1, 0.3);
        expect_fail(f, EVDB_ETIMEDOUT, 0);
        ck_assert_double_lt(t_now() - t0, 0.6);
        evdb_future_unref(f);
        v = evdb_int(OUTER_ROWS - 2);
        f = submit(c, sql, &v, 1, PROMPT_S);
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

static Suite *isolation_suite(void)
{
    Suite *s = suite_create("mariadb_isolation");
    TCase *wedge = tcase_create("wedge");
    TCase *all[] = {wedge};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], TEST_TIMEOUT_S);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_test(wedge, wedge_after_runtime_error);
    tcase_add_test(wedge, wedge_uncached);
    tcase_add_test(wedge, wedge_unbuffered);
    tcase_add_test(wedge, wedge_after_kill);
    tcase_add_test(wedge, wedge_pool_of_4);
    return s;
}

int main(void)
{
    return t_run_suite(isolation_suite());
}
