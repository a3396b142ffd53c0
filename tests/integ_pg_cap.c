/*
 * max_result_bytes on PostgreSQL (a real server from scripts/testdb): a
 * result past the limit fails its query with EVDB_ETOOBIG while the rows
 * still arriving are dropped (single-row mode), so the process never holds
 * the whole result; results under it are complete and exact; the
 * connection goes on working; every future completes exactly once.
 *
 * Loop tests run over: 0 pipelined + statement cache, 1 one query at a
 * time, 2 pipelined without cache.
 */
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 120.0
#define TEST_TIMEOUT_S 180
#define CAP ((size_t)1 << 20)

static struct ev_loop *L;

static evdb_conn_opts variant_opts(int i, size_t cap)
{
    evdb_conn_opts o;
    memset(&o, 0, sizeof o);
    o.max_result_bytes = cap;
    o.pipeline_depth = i == 1 ? 1 : 0;
    o.stmt_cache_size = i == 2 ? EVDB_STMT_CACHE_OFF : 0;
    return o;
}

static evdb_conn *open_capped(int i, size_t cap)
{
    evdb_conn_opts o = variant_opts(i, cap);
    return t_conn_open(L, t_pg_url(), &o);
}

static evdb_future *submit(evdb_conn *c, const char *sql, const evdb_value *p, size_t n)
{
    return t_submit(c, sql, p, n, 0, 0);
}

static void expect_ok(evdb_future *f, const char *what)
{
    int rc = t_wait(f);
    ck_assert_msg(rc == 0, "%s: %s (%s)", what, evdb_error_message(evdb_future_error(f)),
                  evdb_err_name(rc));
}

static void expect_too_big(evdb_future *f)
{
    int rc = t_wait(f);
    ck_assert_msg(rc == EVDB_ETOOBIG, "expected ETOOBIG, got %s: %s", evdb_err_name(rc),
                  rc ? evdb_error_message(evdb_future_error(f)) : "ok");
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(f)), "max_result_bytes"));
}

static int64_t int_at(const evdb_result *r, size_t row, size_t col)
{
    int64_t v = 0;
    ck_assert_int_eq(evdb_result_int(r, row, col, &v), 0);
    return v;
}

/* The connection still answers, in order. */
static void still_works(evdb_conn *c)
{
    evdb_future *f = submit(c, "SELECT 41 + 1", NULL, 0);
    expect_ok(f, "after the dropped result");
    ck_assert_int_eq(int_at(evdb_future_result(f), 0, 0), 42);
    evdb_future_unref(f);
}

/* Peak resident memory in kB since the last reset_peak(). */
static long peak_kb(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    ck_assert_ptr_nonnull(fp);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, fp))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(fp);
    return kb;
}

static void reset_peak(void)
{
    FILE *fp = fopen("/proc/self/clear_refs", "w");
    ck_assert_ptr_nonnull(fp);
    fputs("5", fp);
    fclose(fp);
}

static int completions;

static void count_done(evdb_future *f, void *arg)
{
    (void)f;
    (void)arg;
    completions++;
}

START_TEST(under_limit_exact)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_capped(_i, CAP);
    evdb_value p[] = {evdb_text("v"), evdb_int(1000)};
    evdb_future *f = submit(c,
                            "SELECT g, $1 || g, decode(lpad(to_hex(g % 256), 2, '0'), 'hex'), "
                            "NULLIF(g % 3, 0) FROM generate_series(1, $2::int) g",
                            p, 2);
    evdb_future *empty = submit(c, "SELECT 1 WHERE false", NULL, 0);
    evdb_future *upd = submit(c, "CREATE TEMP TABLE t AS SELECT 1 AS x", NULL, 0);
    expect_ok(f, "1000 rows");
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_nrows(r), 1000);
    ck_assert_uint_eq(evdb_result_ncols(r), 4);
    ck_assert_int_eq(evdb_result_affected(r), 1000);
    ck_assert_str_eq(evdb_result_command(r), "SELECT 1000");
    ck_assert_int_eq(evdb_result_coltype(r, 2), EVDB_TYPE_BYTES);
    for (size_t i = 0; i < 1000; i++) {
        int64_t g = (int64_t)i + 1;
        ck_assert_int_eq(int_at(r, i, 0), g);
        char want[32];
        snprintf(want, sizeof want, "v%lld", (long long)g);
        ck_assert_str_eq(evdb_result_text(r, i, 1, NULL), want);
        size_t len = 0;
        const unsigned char *b = evdb_result_bytes(r, i, 2, &len);
        ck_assert_uint_eq(len, 1);
        ck_assert_uint_eq(b[0], (unsigned)(g % 256));
        ck_assert(evdb_result_isnull(r, i, 3) == (g % 3 == 0));
    }
    evdb_future_unref(f);
    expect_ok(empty, "no rows");
    ck_assert_uint_eq(evdb_result_nrows(evdb_future_result(empty)), 0);
    ck_assert_uint_eq(evdb_result_ncols(evdb_future_result(empty)), 1);
    evdb_future_unref(empty);
    expect_ok(upd, "command");
    ck_assert_str_eq(evdb_result_command(evdb_future_result(upd)), "SELECT 1");
    evdb_future_unref(upd);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

START_TEST(over_limit_bounded)
{
    L = t_loop_new(WATCHDOG_S);
    t_bytes_track();
    evdb_conn *c = open_capped(_i, CAP);
    still_works(c);
    reset_peak();
    long before = peak_kb();
    t_bytes_peak_reset();
    /* About 60 MB of text as evdb would store it. */
    evdb_future *f =
        submit(c, "SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g", NULL, 0);
    expect_too_big(f);
    evdb_future_unref(f);
    /* evdb's own: the cap, at most doubled by buffer growth, and a little. */
    ck_assert_msg(t_bytes_peak() < 3 * CAP, "evdb held %zu bytes at the peak", t_bytes_peak());
    /* The process's (libpq's too: one row at a time). Not under ASan, whose
     * quarantine keeps the freed per-row PGresults resident. */
    long grew = peak_kb() - before;
    ck_assert_msg(T_UNDER_ASAN || grew < 16 * 1024,
                  "peak memory grew by %ld kB for a dropped 60 MB result", grew);
    still_works(c);
    /* One row past the limit on its own. */
    f = submit(c, "SELECT repeat('y', 2000000)", NULL, 0);
    expect_too_big(f);
    evdb_future_unref(f);
    still_works(c);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

/* Neighbours pipelined with it are unaffected, and the too-big query
 * did run (its effects stay): the limit is the client's, not an error on
 * the server. */
START_TEST(pipeline_neighbours)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_capped(_i, CAP);
    evdb_future *setup = submit(c, "CREATE TEMP TABLE seen (n int)", NULL, 0);
    expect_ok(setup, "create");
    evdb_future_unref(setup);
    enum { N = 9 };
    evdb_future *fs[N];
    completions = 0;
    for (int i = 0; i < N; i++) {
        const char *sql = i % 3 == 1 ? "WITH ins AS (INSERT INTO seen VALUES (1) RETURNING n) "
                                       "SELECT n, repeat('z', 300000) FROM ins, "
                                       "generate_series(1, 10)"
                                     : "SELECT count(*) FROM seen";
        fs[i] = submit(c, sql, NULL, 0);
        ck_assert_int_eq(evdb_future_on_done(fs[i], count_done, NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        if (i % 3 == 1) {
            expect_too_big(fs[i]);
        } else {
            expect_ok(fs[i], "neighbour");
            ck_assert_int_eq(int_at(evdb_future_result(fs[i]), 0, 0), (i + 2) / 3);
        }
    }
    t_run_for(L, 0.05);
    ck_assert_int_eq(completions, N);
    for (int i = 0; i < N; i++)
        evdb_future_unref(fs[i]);
    /* Inside a transaction block the block goes on. */
    evdb_future *b = submit(c, "BEGIN", NULL, 0);
    evdb_future *big = submit(c, "SELECT repeat('q', 3000000)", NULL, 0);
    evdb_future *ins = submit(c, "INSERT INTO seen VALUES (2)", NULL, 0);
    evdb_future *commit = submit(c, "COMMIT", NULL, 0);
    expect_ok(b, "BEGIN");
    expect_too_big(big);
    expect_ok(ins, "insert in the block");
    expect_ok(commit, "COMMIT");
    evdb_future *n = submit(c, "SELECT count(*) FROM seen WHERE n = 2", NULL, 0);
    expect_ok(n, "count");
    ck_assert_int_eq(int_at(evdb_future_result(n), 0, 0), 1);
    evdb_future *all[] = {b, big, ins, commit, n};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        evdb_future_unref(all[i]);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

START_TEST(multi_statement_total)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_capped(1, CAP);
    /* Each part fits; together they do not. */
    evdb_future *f = submit(c,
                            "SELECT repeat('a', 600000); SELECT repeat('b', 600000); "
                            "SELECT 3",
                            NULL, 0);
    expect_too_big(f);
    evdb_future_unref(f);
    still_works(c);
    f = submit(c, "SELECT 1; SELECT g FROM generate_series(1, 3) g; SELECT 'three'", NULL, 0);
    expect_ok(f, "small multi-statement");
    const evdb_result *r = evdb_future_result(f);
    ck_assert_int_eq(int_at(r, 0, 0), 1);
    r = evdb_result_next(r);
    ck_assert_uint_eq(evdb_result_nrows(r), 3);
    ck_assert_int_eq(int_at(r, 2, 0), 3);
    r = evdb_result_next(r);
    ck_assert_str_eq(evdb_result_text(r, 0, 0, NULL), "three");
    ck_assert_ptr_null(evdb_result_next(r));
    evdb_future_unref(f);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

/* A server error after some rows: the error is reported, the rows kept so
 * far are freed. */
START_TEST(error_after_rows)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_capped(_i, CAP);
    evdb_future *f = submit(c, "SELECT 1 / (5000 - g) FROM generate_series(1, 6000) g", NULL, 0);
    int rc = t_wait(f);
    ck_assert_int_eq(rc, EVDB_ESERVER);
    ck_assert_str_eq(evdb_error_sqlstate(evdb_future_error(f)), "22012");
    evdb_future_unref(f);
    still_works(c);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

START_TEST(pool_limit)
{
    L = t_loop_new(WATCHDOG_S);
    const char *url = evdb_test_pg_url();
    ck_assert_ptr_nonnull(url);
    evdb_pool_opts o;
    memset(&o, 0, sizeof o);
    o.max_conns = 2;
    o.max_result_bytes = CAP;
    evdb_pool *p = evdb_pool_new(L, url, &o);
    ck_assert_ptr_nonnull(p);
    enum { N = 20 };
    evdb_future *fs[N];
    completions = 0;
    for (int i = 0; i < N; i++) {
        fs[i] =
            evdb_pool_query(p, i % 2 ? "SELECT repeat('p', 1500000)" : "SELECT 7", NULL, 0, NULL);
        ck_assert_ptr_nonnull(fs[i]);
        ck_assert_int_eq(evdb_future_on_done(fs[i], count_done, NULL), 0);
    }
    for (int i = 0; i < N; i++) {
        if (i % 2) {
            expect_too_big(fs[i]);
        } else {
            expect_ok(fs[i], "pooled");
            ck_assert_int_eq(int_at(evdb_future_result(fs[i]), 0, 0), 7);
        }
    }
    t_run_for(L, 0.05);
    ck_assert_int_eq(completions, N);
    for (int i = 0; i < N; i++)
        evdb_future_unref(fs[i]);
    evdb_future *cf = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
    t_loop_free(L);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pg_cap");
    TCase *tc = tcase_create("max_result_bytes");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    suite_add_tcase(s, tc);
    tcase_add_loop_test(tc, under_limit_exact, 0, 3);
    tcase_add_loop_test(tc, over_limit_bounded, 0, 3);
    tcase_add_loop_test(tc, pipeline_neighbours, 0, 3);
    tcase_add_test(tc, multi_statement_total);
    tcase_add_loop_test(tc, error_after_rows, 0, 3);
    tcase_add_test(tc, pool_limit);
    return t_run_suite(s);
}
