/*
 * The MariaDB driver's result-size cap (evdb_conn_opts.max_result_bytes /
 * evdb_pool_opts.max_result_bytes) against a real MariaDB server: results
 * under the cap arrive intact on both protocols, results over it fail with
 * EVDB_ETOOBIG and the connection serves the next query, multi-statement
 * queries share one cap, pools pass it on, server errors, timeouts and a
 * lost session in the middle of the rows still complete every future once,
 * and a 50 MB result against a 1 MB cap keeps the process's memory small
 * (with an uncapped control run that shows the measurement sees it).
 */
#include <check.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 60.0
#define TEST_TIMEOUT_S 60
#define SQL_MAX 256
#define MIB ((size_t)1024 * 1024)
#define CAP (1 * MIB)
#define CAP_MSG "result exceeds max_result_bytes (1048576 bytes)"
/* 100,000 rows of about 100 bytes: ~10 MB, ten times the cap. */
#define BIG_TEXT "SELECT seq, REPEAT('x', 100) AS pad FROM seq_1_to_100000"
#define BIG_STMT "SELECT seq, REPEAT(?, 100) AS pad FROM seq_1_to_100000"
/* 50,000 rows of 1,000 bytes: 50 MB. */
#define HUGE_TEXT "SELECT seq, REPEAT('x', 1000) AS pad FROM seq_1_to_50000"
#define HUGE_STMT "SELECT seq, REPEAT(?, 1000) AS pad FROM seq_1_to_50000"
#define HUGE_BYTES (50000 * 1000)
/* What the capped process may allocate for a 50 MB result: the result up
 * to the cap (its arrays grow by doubling), Connector/C's packet buffer. */
#define CAPPED_EVDB_PEAK_MAX (4 * MIB)
#define CAPPED_RSS_GROWTH_MAX (16 * MIB)
/* A row stream that takes a few seconds: the query is still sending rows
 * when the test interferes. */
#define SLOW_ROWS "SELECT seq, REPEAT('x', 1000) AS pad, SLEEP(0.005) FROM seq_1_to_2000"

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

static evdb_conn *open_url(const char *url, size_t cap)
{
    evdb_conn_opts o;
    memset(&o, 0, sizeof o);
    o.max_result_bytes = cap;
    return t_conn_open(L, url, &o);
}

static evdb_conn *open_cap(size_t cap)
{
    return open_url(t_my_url(), cap);
}

static evdb_conn *open_admin(void)
{
    const char *u = evdb_test_my_admin_url();
    ck_assert_ptr_nonnull(u);
    return open_url(u, 0);
}

static evdb_future *submit(evdb_conn *c, const char *sql, const evdb_value *p, size_t n,
                           double timeout)
{
    return t_submit(c, sql, p, n, timeout, 0);
}

static void expect_too_big(evdb_future *f)
{
    int rc = t_wait(f);
    ck_assert_msg(rc == EVDB_ETOOBIG, "wanted EVDB_ETOOBIG, got %s: %s", evdb_err_name(rc),
                  rc ? evdb_error_message(evdb_future_error(f)) : "");
    ck_assert_str_eq(evdb_error_message(evdb_future_error(f)), CAP_MSG);
    ck_assert_ptr_null(evdb_future_result(f));
}

static void run_too_big(evdb_conn *c, const char *sql, const evdb_value *p, size_t n)
{
    evdb_future *f = submit(c, sql, p, n, 0);
    expect_too_big(f);
    evdb_future_unref(f);
}

/* The connection still answers, on both protocols. */
static void still_serves(evdb_conn *c)
{
    evdb_future *f = t_run_ok(c, "SELECT 42", NULL, 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 42);
    evdb_future_unref(f);
    evdb_value v = evdb_int(43);
    f = t_run_ok(c, "SELECT ?", &v, 1);
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 43);
    evdb_future_unref(f);
}

/* Two results hold the same columns and cells. */
static void expect_same(const evdb_result *a, const evdb_result *b)
{
    ck_assert_uint_eq(evdb_result_ncols(a), evdb_result_ncols(b));
    ck_assert_uint_eq(evdb_result_nrows(a), evdb_result_nrows(b));
    ck_assert_int_eq(evdb_result_affected(a), evdb_result_affected(b));
    for (size_t c = 0; c < evdb_result_ncols(a); c++) {
        ck_assert_str_eq(evdb_result_colname(a, c), evdb_result_colname(b, c));
        ck_assert_int_eq(evdb_result_coltype(a, c), evdb_result_coltype(b, c));
    }
    for (size_t r = 0; r < evdb_result_nrows(a); r++)
        for (size_t c = 0; c < evdb_result_ncols(a); c++) {
            size_t la, lb;
            const char *x = evdb_result_text(a, r, c, &la);
            const char *y = evdb_result_text(b, r, c, &lb);
            ck_assert_int_eq(x == NULL, y == NULL);
            if (x) {
                ck_assert_uint_eq(la, lb);
                ck_assert_int_eq(memcmp(x, y, la), 0);
            }
        }
}

/* Every future completes exactly once. */
struct counted {
    int calls;
    int status;
};

static void on_counted(evdb_future *f, void *arg)
{
    struct counted *k = arg;
    k->calls++;
    k->status = evdb_future_status(f);
}

/* ---- results under the cap ---- */

/* Mixed types, NULLs, a value longer than the unbuffered staging slot and
 * doubles, the same with and without a cap, on both protocols. */
#define MIXED_TEXT                                                                                 \
    "SELECT seq, seq * 1.5 AS d, CAST(seq / 7 AS DOUBLE) AS dbl, IF(seq % 3 = 0, NULL, "           \
    "CONCAT('v', seq)) AS s, REPEAT('y', 2000 + seq) AS longv, CAST(seq AS DECIMAL(10,2)) AS "     \
    "decv, DATE('2024-01-01') + INTERVAL seq DAY AS dt FROM seq_1_to_100"
#define MIXED_STMT                                                                                 \
    "SELECT seq, seq * 1.5 AS d, CAST(seq / 7 AS DOUBLE) AS dbl, IF(seq % 3 = 0, NULL, "           \
    "CONCAT(?, seq)) AS s, REPEAT('y', 2000 + seq) AS longv, CAST(seq AS DECIMAL(10,2)) AS "       \
    "decv, DATE('2024-01-01') + INTERVAL seq DAY AS dt FROM seq_1_to_100"

START_TEST(small_text_under_cap)
{
    evdb_conn *c = open_cap(CAP);
    evdb_future *f = t_run_ok(c, "SELECT 1 AS a, 'two' AS b, NULL AS c, 2.5 AS d", NULL, 0);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_nrows(r), 1);
    ck_assert_str_eq(evdb_result_colname(r, 1), "b");
    t_expect_cell(r, 0, 0, "1");
    t_expect_cell(r, 0, 1, "two");
    ck_assert(evdb_result_isnull(r, 0, 2));
    t_expect_cell(r, 0, 3, "2.5");
    ck_assert_int_eq(evdb_result_affected(r), 1);
    evdb_future_unref(f);

    /* The same rows as the buffered path gives. */
    evdb_conn *plain = open_cap(0);
    f = t_run_ok(c, MIXED_TEXT, NULL, 0);
    evdb_future *g = t_run_ok(plain, MIXED_TEXT, NULL, 0);
    ck_assert_uint_eq(evdb_result_nrows(evdb_future_result(f)), 100);
    ck_assert_int_eq(evdb_result_affected(evdb_future_result(f)), 100);
    expect_same(evdb_future_result(f), evdb_future_result(g));
    evdb_future_unref(f);
    evdb_future_unref(g);

    /* Statements without result sets report their counts. */
    f = t_run_ok(c, "CREATE TEMPORARY TABLE t_cap (a INT AUTO_INCREMENT PRIMARY KEY, b INT)", NULL,
                 0);
    evdb_future_unref(f);
    f = t_run_ok(c, "INSERT INTO t_cap (b) VALUES (1), (2), (3)", NULL, 0);
    ck_assert_int_eq(evdb_result_affected(evdb_future_result(f)), 3);
    ck_assert_int_eq(evdb_result_insert_id(evdb_future_result(f)), 1);
    evdb_future_unref(f);
    f = t_run_ok(c, "SELECT * FROM t_cap WHERE b > 5", NULL, 0);
    ck_assert_uint_eq(evdb_result_nrows(evdb_future_result(f)), 0);
    ck_assert_uint_eq(evdb_result_ncols(evdb_future_result(f)), 2);
    evdb_future_unref(f);
    t_conn_close(plain);
    t_conn_close(c);
}
END_TEST

START_TEST(small_prepared_under_cap)
{
    evdb_conn *c = open_cap(CAP);
    evdb_value p[3] = {evdb_int(7), evdb_text("seven"), evdb_null()};
    evdb_future *f = t_run_ok(c, "SELECT ? AS a, CONCAT('#', ?) AS b, ? AS c", p, 3);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_nrows(r), 1);
    ck_assert_int_eq(t_cell_int(r, 0, 0), 7);
    t_expect_cell(r, 0, 1, "#seven");
    ck_assert(evdb_result_isnull(r, 0, 2));
    evdb_future_unref(f);

    evdb_conn *plain = open_cap(0);
    evdb_value v = evdb_text("v");
    /* Twice: the second run reuses the cached statement. */
    for (int i = 0; i < 2; i++) {
        f = t_run_ok(c, MIXED_STMT, &v, 1);
        evdb_future *g = t_run_ok(plain, MIXED_STMT, &v, 1);
        ck_assert_uint_eq(evdb_result_nrows(evdb_future_result(f)), 100);
        ck_assert_int_eq(evdb_result_affected(evdb_future_result(f)), 100);
        expect_same(evdb_future_result(f), evdb_future_result(g));
        evdb_future_unref(g);
        /* And the text protocol gives the same cells. */
        g = t_run_ok(plain, MIXED_TEXT, NULL, 0);
        expect_same(evdb_future_result(f), evdb_future_result(g));
        evdb_future_unref(g);
        evdb_future_unref(f);
    }
    t_conn_close(plain);
    t_conn_close(c);
}
END_TEST

/* ---- results over the cap ---- */

START_TEST(big_text_fails_then_serves)
{
    evdb_conn *c = open_cap(CAP);
    run_too_big(c, BIG_TEXT, NULL, 0);
    still_serves(c);
    /* One row of 2 MB: over the cap on its own. */
    run_too_big(c, "SELECT REPEAT('x', 2000000)", NULL, 0);
    still_serves(c);
    /* Under the cap still works (the cap counts the memory the result
     * takes, its buffers grown by doubling included). */
    evdb_future *f = t_run_ok(c, "SELECT REPEAT('x', 400000)", NULL, 0);
    size_t len = 0;
    ck_assert_ptr_nonnull(evdb_result_text(evdb_future_result(f), 0, 0, &len));
    ck_assert_uint_eq(len, 400000);
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

START_TEST(big_prepared_fails_then_serves)
{
    evdb_conn *c = open_cap(CAP);
    evdb_value v = evdb_text("x");
    /* Twice: the second run rebinds the cached statement's rows. */
    run_too_big(c, BIG_STMT, &v, 1);
    still_serves(c);
    run_too_big(c, BIG_STMT, &v, 1);
    still_serves(c);
    evdb_value big = evdb_int(2000000);
    run_too_big(c, "SELECT REPEAT('x', ?)", &big, 1);
    still_serves(c);
    /* An uncached statement is closed after it drained. */
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    o.flags = EVDB_QUERY_NO_CACHE;
    evdb_future *f = evdb_conn_query(c, BIG_STMT, &v, 1, &o);
    ck_assert_ptr_nonnull(f);
    expect_too_big(f);
    evdb_future_unref(f);
    still_serves(c);
    t_conn_close(c);
}
END_TEST

START_TEST(multi_statement_shares_the_cap)
{
    evdb_conn *c = open_cap(CAP);
    /* The second result set is too big; the third is never seen. */
    run_too_big(c, "SELECT 1; " BIG_TEXT "; SELECT 3", NULL, 0);
    still_serves(c);
    /* Three results of 400 KB each: fine alone, too big together. */
    evdb_future_unref(t_run_ok(c, "SELECT REPEAT('x', 400000)", NULL, 0));
    run_too_big(c,
                "SELECT REPEAT('x', 400000); SELECT REPEAT('y', 400000); "
                "SELECT REPEAT('z', 400000); SELECT 4",
                NULL, 0);
    still_serves(c);
    /* Several small results all arrive. */
    evdb_future *f = t_run_ok(c, "SELECT 1; DO 0; SELECT seq FROM seq_1_to_3; SELECT 'z'", NULL, 0);
    const evdb_result *r = evdb_future_result(f);
    t_expect_cell(r, 0, 0, "1");
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(evdb_result_ncols(r), 0);
    r = evdb_result_next(r);
    ck_assert_uint_eq(evdb_result_nrows(r), 3);
    t_expect_cell(r, 2, 0, "3");
    r = evdb_result_next(r);
    t_expect_cell(r, 0, 0, "z");
    ck_assert_ptr_null(evdb_result_next(r));
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* A procedure's result sets share the cap too, on both protocols. */
START_TEST(procedure_result_sets)
{
    evdb_conn *c = open_cap(CAP);
    evdb_future_unref(t_run_ok(c, "DROP PROCEDURE IF EXISTS evdb_cap_p", NULL, 0));
    evdb_future_unref(t_run_ok(c,
                               "CREATE PROCEDURE evdb_cap_p(IN n INT) BEGIN "
                               "SELECT n; SELECT seq, REPEAT('x', 100) FROM seq_1_to_100000 "
                               "WHERE seq <= n; SELECT n * 2; END",
                               NULL, 0));
    for (int prepared = 0; prepared < 2; prepared++) {
        evdb_value small = evdb_int(21), big = evdb_int(100000);
        evdb_future *f = prepared ? t_run_ok(c, "CALL evdb_cap_p(?)", &small, 1)
                                  : t_run_ok(c, "CALL evdb_cap_p(21)", NULL, 0);
        const evdb_result *r = evdb_future_result(f);
        t_expect_cell(r, 0, 0, "21");
        r = evdb_result_next(r);
        ck_assert_uint_eq(evdb_result_nrows(r), 21);
        r = evdb_result_next(r);
        t_expect_cell(r, 0, 0, "42");
        evdb_future_unref(f);
        if (prepared)
            run_too_big(c, "CALL evdb_cap_p(?)", &big, 1);
        else
            run_too_big(c, "CALL evdb_cap_p(100000)", NULL, 0);
        still_serves(c);
    }
    evdb_future_unref(t_run_ok(c, "DROP PROCEDURE evdb_cap_p", NULL, 0));
    t_conn_close(c);
}
END_TEST

START_TEST(pool_enforces_cap)
{
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.max_conns = 2;
    po.max_result_bytes = CAP;
    evdb_pool *p = evdb_pool_new(L, t_my_url(), &po);
    ck_assert_ptr_nonnull(p);
    evdb_value v = evdb_text("x");
    evdb_future *fs[4] = {
        evdb_pool_query(p, BIG_TEXT, NULL, 0, NULL),
        evdb_pool_query(p, "SELECT 5", NULL, 0, NULL),
        evdb_pool_query(p, BIG_STMT, &v, 1, NULL),
        evdb_pool_query(p, "SELECT seq FROM seq_1_to_1000", NULL, 0, NULL),
    };
    for (int i = 0; i < 4; i++)
        ck_assert_ptr_nonnull(fs[i]);
    expect_too_big(fs[0]);
    ck_assert_int_eq(t_wait(fs[1]), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(fs[1]), 0, 0), 5);
    expect_too_big(fs[2]);
    ck_assert_int_eq(t_wait(fs[3]), 0);
    ck_assert_uint_eq(evdb_result_nrows(evdb_future_result(fs[3])), 1000);
    for (int i = 0; i < 4; i++)
        evdb_future_unref(fs[i]);
    /* The pool's connections keep serving. */
    for (int i = 0; i < 4; i++) {
        evdb_future *f = evdb_pool_query(p, "SELECT 6", NULL, 0, NULL);
        ck_assert_int_eq(t_wait(f), 0);
        evdb_future_unref(f);
    }
    evdb_future *f = evdb_pool_close(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}
END_TEST

/* ---- memory ---- */

static size_t max_rss_bytes(void)
{
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return (size_t)ru.ru_maxrss * 1024;
}

struct peak {
    size_t evdb;       /* most bytes evdb held at once, above the start */
    size_t rss_growth; /* growth of the process's peak resident set */
};

/* Run sql on a connection with the given cap and measure. */
static struct peak measure(size_t cap, const char *sql, const evdb_value *p, size_t n, int want)
{
    t_bytes_track();
    evdb_conn *c = open_cap(cap);
    size_t rss0 = max_rss_bytes();
    t_bytes_peak_reset();
    evdb_future *f = submit(c, sql, p, n, 0);
    int rc = t_wait(f);
    ck_assert_msg(rc == want, "%s: %s", sql, evdb_err_name(rc));
    if (!rc) {
        const evdb_result *r = evdb_future_result(f);
        ck_assert_uint_eq(evdb_result_nrows(r), 50000);
    }
    evdb_future_unref(f);
    struct peak pk = {t_bytes_peak(), max_rss_bytes() - rss0};
    still_serves(c);
    t_conn_close(c);
    return pk;
}

START_TEST(memory_bounded_under_cap)
{
    evdb_value v = evdb_text("x");
    struct peak text = measure(CAP, HUGE_TEXT, NULL, 0, EVDB_ETOOBIG);
    struct peak stmt = measure(CAP, HUGE_STMT, &v, 1, EVDB_ETOOBIG);
    printf("50 MB result, 1 MB cap: text: evdb peak %zu KiB, RSS growth %zu KiB; "
           "prepared: evdb peak %zu KiB, RSS growth %zu KiB\n",
           text.evdb / 1024, text.rss_growth / 1024, stmt.evdb / 1024, stmt.rss_growth / 1024);
    ck_assert_uint_lt(text.evdb, CAPPED_EVDB_PEAK_MAX);
    ck_assert_uint_lt(stmt.evdb, CAPPED_EVDB_PEAK_MAX);
    ck_assert_uint_lt(text.rss_growth, CAPPED_RSS_GROWTH_MAX);
    ck_assert_uint_lt(stmt.rss_growth, CAPPED_RSS_GROWTH_MAX);
}
END_TEST

/* The control: without a cap the same result is held whole (twice, while
 * Connector/C's stored copy and evdb's exist together), and both measures
 * see it. Its own process (fork mode), so its peak does not hide the
 * capped runs'. */
START_TEST(memory_uncapped_control)
{
    struct peak text = measure(0, HUGE_TEXT, NULL, 0, 0);
    printf("50 MB result, no cap: text: evdb peak %zu KiB, RSS growth %zu KiB\n", text.evdb / 1024,
           text.rss_growth / 1024);
    ck_assert_uint_gt(text.evdb, HUGE_BYTES);
    ck_assert_uint_gt(text.rss_growth, HUGE_BYTES);
}
END_TEST

START_TEST(memory_uncapped_control_prepared)
{
    evdb_value v = evdb_text("x");
    struct peak stmt = measure(0, HUGE_STMT, &v, 1, 0);
    printf("50 MB result, no cap: prepared: evdb peak %zu KiB, RSS growth %zu KiB\n",
           stmt.evdb / 1024, stmt.rss_growth / 1024);
    ck_assert_uint_gt(stmt.evdb, HUGE_BYTES);
    ck_assert_uint_gt(stmt.rss_growth, HUGE_BYTES);
}
END_TEST

/* ---- every future once ---- */

START_TEST(queued_each_once)
{
    evdb_conn *c = open_cap(CAP);
    evdb_value v = evdb_text("x");
    evdb_value one = evdb_int(1);
    struct {
        const char *sql;
        const evdb_value *p;
        size_t n;
        int want;
    } qs[] = {
        {"SELECT 1", NULL, 0, 0},
        {BIG_TEXT, NULL, 0, EVDB_ETOOBIG},
        {"SELECT ?", &one, 1, 0},
        {BIG_STMT, &v, 1, EVDB_ETOOBIG},
        {"SELECT 1; " BIG_TEXT, NULL, 0, EVDB_ETOOBIG},
        {"SELECT nosuchcolumn", NULL, 0, EVDB_ESERVER},
        {"SELECT seq FROM seq_1_to_10", NULL, 0, 0},
    };
    enum { NQ = sizeof qs / sizeof qs[0] };
    evdb_future *fs[NQ];
    struct counted k[NQ];
    memset(k, 0, sizeof k);
    for (int i = 0; i < NQ; i++) {
        fs[i] = submit(c, qs[i].sql, qs[i].p, qs[i].n, 0);
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_counted, &k[i]), 0);
    }
    for (int i = 0; i < NQ; i++)
        t_wait(fs[i]);
    t_run_for(L, 0.1);
    for (int i = 0; i < NQ; i++) {
        ck_assert_int_eq(k[i].calls, 1);
        ck_assert_msg(k[i].status == qs[i].want, "query %d: %s", i, evdb_err_name(k[i].status));
        evdb_future_unref(fs[i]);
    }
    t_conn_close(c);
}
END_TEST

/* A server error after some rows were sent (a subquery that returns two
 * rows from row 50,000 on) ends the query with that error; under a small
 * cap the cap was hit first and names the failure. */
#define LATE_ERROR                                                                                 \
    "SELECT seq, (SELECT a FROM (SELECT 1 AS a UNION SELECT 2) AS t WHERE seq >= 50000) "          \
    "AS bad FROM seq_1_to_100000"

START_TEST(server_error_mid_rows)
{
    evdb_conn *roomy = open_cap(100 * MIB);
    evdb_future *f = submit(roomy, LATE_ERROR, NULL, 0, 0);
    ck_assert_int_eq(t_wait(f), EVDB_ESERVER);
    ck_assert_int_eq(evdb_error_driver_code(evdb_future_error(f)), 1242);
    evdb_future_unref(f);
    still_serves(roomy);
    t_conn_close(roomy);

    evdb_conn *c = open_cap(64 * 1024);
    f = submit(c, LATE_ERROR, NULL, 0, 0);
    ck_assert_int_eq(t_wait(f), EVDB_ETOOBIG);
    ck_assert_str_eq(evdb_error_message(evdb_future_error(f)),
                     "result exceeds max_result_bytes (65536 bytes)");
    evdb_future_unref(f);
    still_serves(c);
    t_conn_close(c);
}
END_TEST

/* A query timeout while the rows are drained after the cap was hit: KILL
 * QUERY stops the stream, the future fails once with EVDB_ETIMEDOUT, and
 * the connection serves the next query. */
START_TEST(timeout_while_draining)
{
    evdb_conn *c = open_cap(64 * 1024);
    for (int prepared = 0; prepared < 2; prepared++) {
        struct counted k = {0, 0};
        evdb_value v = evdb_int(2000);
        const char *sql = prepared ? "SELECT seq, REPEAT('x', 1000), SLEEP(0.005) FROM "
                                     "seq_1_to_2000 WHERE seq <= ?"
                                   : SLOW_ROWS;
        double t0 = t_now();
        evdb_future *f = submit(c, sql, &v, prepared ? 1 : 0, 1.0);
        evdb_future *next = submit(c, "SELECT 42", NULL, 0, 0);
        ck_assert_int_eq(evdb_future_on_done(f, on_counted, &k), 0);
        ck_assert_int_eq(t_wait(f), EVDB_ETIMEDOUT);
        ck_assert_int_eq(t_wait(next), 0);
        ck_assert_int_eq(t_cell_int(evdb_future_result(next), 0, 0), 42);
        ck_assert_msg(t_now() - t0 < 5.0, "the KILL did not stop the stream");
        t_run_for(L, 0.05);
        ck_assert_int_eq(k.calls, 1);
        evdb_future_unref(f);
        evdb_future_unref(next);
        still_serves(c);
    }
    t_conn_close(c);
}
END_TEST

/* The session is killed while rows stream in: the query and the ones
 * queued behind it fail once each with EVDB_ECONNLOST. */
START_TEST(connection_lost_mid_rows)
{
    evdb_conn *c = open_cap(64 * 1024);
    evdb_conn *admin = open_admin();
    struct counted k[3];
    memset(k, 0, sizeof k);
    evdb_value v = evdb_int(1);
    evdb_future *fs[3] = {
        submit(c, SLOW_ROWS, NULL, 0, 0),
        submit(c, "SELECT ?", &v, 1, 0),
        submit(c, "SELECT 1", NULL, 0, 0),
    };
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_counted, &k[i]), 0);
    t_run_for(L, 0.5);
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, "KILL CONNECTION %lld", (long long)evdb_conn_server_id(c));
    evdb_future *kf = t_run_ok(admin, sql, NULL, 0);
    evdb_future_unref(kf);
    for (int i = 0; i < 3; i++)
        t_wait(fs[i]);
    t_run_for(L, 0.1);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(k[i].calls, 1);
        ck_assert_msg(k[i].status == EVDB_ECONNLOST, "query %d: %s", i, evdb_err_name(k[i].status));
        evdb_future_unref(fs[i]);
    }
    t_conn_close(c);
    t_conn_close(admin);
}
END_TEST

/* Closing the connection while rows stream in (the query is suspended
 * inside Connector/C) drops the session without reading the rest. */
START_TEST(close_mid_rows)
{
    evdb_conn *c = open_cap(64 * 1024);
    struct counted k = {0, 0};
    evdb_future *f = submit(c, SLOW_ROWS, NULL, 0, 0);
    ck_assert_int_eq(evdb_future_on_done(f, on_counted, &k), 0);
    t_run_for(L, 0.3);
    double t0 = t_now();
    t_conn_close(c);
    ck_assert_msg(t_now() - t0 < 1.0, "close waited for the rows");
    t_wait(f);
    t_run_for(L, 0.05);
    ck_assert_int_eq(k.calls, 1);
    ck_assert_int_eq(k.status, EVDB_ECLOSED);
    evdb_future_unref(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mariadb_cap");
    TCase *under = tcase_create("under");
    TCase *over = tcase_create("over");
    TCase *memory = tcase_create("memory");
    TCase *once = tcase_create("once");
    TCase *all[] = {under, over, memory, once};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], TEST_TIMEOUT_S);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_test(under, small_text_under_cap);
    tcase_add_test(under, small_prepared_under_cap);
    tcase_add_test(over, big_text_fails_then_serves);
    tcase_add_test(over, big_prepared_fails_then_serves);
    tcase_add_test(over, multi_statement_shares_the_cap);
    tcase_add_test(over, procedure_result_sets);
    tcase_add_test(over, pool_enforces_cap);
    tcase_add_test(memory, memory_bounded_under_cap);
    tcase_add_test(memory, memory_uncapped_control);
    tcase_add_test(memory, memory_uncapped_control_prepared);
    tcase_add_test(once, queued_each_once);
    tcase_add_test(once, server_error_mid_rows);
    tcase_add_test(once, timeout_while_draining);
    tcase_add_test(once, connection_lost_mid_rows);
    tcase_add_test(once, close_mid_rows);
    return t_run_suite(s);
}
