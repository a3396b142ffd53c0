/*
 * Results through the public getters on both servers, small and large:
 * PostgreSQL results up to 64 cells are copied, larger ones keep libpq's
 * PGresult and read it in place, results with bytea columns are decoded
 * into a copy; MariaDB results come from the binary protocol (parameters)
 * and the text protocol (none). Every getter is checked on every cell of
 * results of 1, 9 and 2,000 rows: NULLs, empty strings, numbers as text
 * and as numbers, bools, a 100,000-byte value, binary bytes with NULs,
 * out-of-range indexes. A result outlives its connection and its pool
 * (the memory it reads from is its own), and max_result_bytes still
 * bounds large results, counting a kept PGresult's memory.
 */
#include <check.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "driver.h"
#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 60.0
#define TEST_TIMEOUT_S 120
#define SQL_MAX 512
#define BIG_LEN 100000
#define BIG_ROW 3
#define MANY 2000
#define TEXT_MAX 32

/* Cell g of column t (see the queries): NULL, "" or "v-<g>". */
#define T_NULL(g) ((g) % 7 == 0)
#define T_EMPTY(g) ((g) % 5 == 0)
#define D_NULL(g) ((g) % 11 == 0)

static const char *const PG_ROWS =
    "SELECT g AS i,"
    " CASE WHEN g % 7 = 0 THEN NULL WHEN g % 5 = 0 THEN '' ELSE 'v-' || g END AS t,"
    " CASE WHEN g % 11 = 0 THEN NULL ELSE (g * 0.5)::float8 END AS d,"
    " g % 2 = 0 AS b,"
    " CASE WHEN g = 3 THEN repeat('L', 100000) END AS big"
    " FROM generate_series(1, $1::int) g ORDER BY g";

/* The same rows on MariaDB; %s is the row count's placeholder or literal. */
static const char *const MY_ROWS =
    "SELECT seq AS i,"
    " CASE WHEN seq %% 7 = 0 THEN NULL WHEN seq %% 5 = 0 THEN '' ELSE CONCAT('v-', seq) END AS t,"
    " CASE WHEN seq %% 11 = 0 THEN NULL ELSE seq * 0.5e0 END AS d,"
    " seq %% 2 = 0 AS b,"
    " CASE WHEN seq = 3 THEN REPEAT('L', 100000) END AS big"
    " FROM seq_1_to_5000 WHERE seq <= %s ORDER BY seq";

/* Three bytes per row: g % 256, NUL, 0xff; and an empty value. */
static const char *const PG_BYTES =
    "SELECT g AS i, decode(lpad(to_hex(g % 256), 2, '0') || '00ff', 'hex') AS bin,"
    " ''::bytea AS e FROM generate_series(1, $1::int) g ORDER BY g";
static const char *const MY_BYTES =
    "SELECT seq AS i, UNHEX(CONCAT(LPAD(HEX(seq %% 256), 2, '0'), '00FF')) AS bin,"
    " CAST('' AS BINARY(0)) AS e FROM seq_1_to_5000 WHERE seq <= %s ORDER BY seq";

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
}

static void teardown(void)
{
    t_loop_free(L);
}

/* ---- checks ---- */

/* Every getter on row r (g = r + 1) of a PG_ROWS / MY_ROWS result. */
static void check_row(const evdb_result *res, size_t r, bool pg)
{
    int64_t g = (int64_t)r + 1, iv = -1;
    char want[TEXT_MAX];
    size_t len = 99;

    /* i: an integer, also as text. */
    ck_assert(!evdb_result_isnull(res, r, 0));
    ck_assert_int_eq(evdb_result_int(res, r, 0, &iv), 0);
    ck_assert_int_eq(iv, g);
    snprintf(want, sizeof want, "%lld", (long long)g);
    const char *s = evdb_result_text(res, r, 0, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_str_eq(s, want);
    double dv = -1;
    ck_assert_int_eq(evdb_result_double(res, r, 0, &dv), 0);
    ck_assert(dv == (double)g);

    /* t: NULL, empty, or text that is not a number. */
    len = 99;
    s = evdb_result_text(res, r, 1, &len);
    iv = -7;
    if (T_NULL(g)) {
        ck_assert(evdb_result_isnull(res, r, 1));
        ck_assert_ptr_null(s);
        ck_assert_uint_eq(len, 0);
        ck_assert_ptr_null(evdb_result_bytes(res, r, 1, NULL));
        ck_assert_int_eq(evdb_result_int(res, r, 1, &iv), EVDB_ENULL);
        ck_assert_int_eq(iv, -7);
    } else if (T_EMPTY(g)) {
        ck_assert(!evdb_result_isnull(res, r, 1));
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(len, 0);
        ck_assert_int_eq(s[0], '\0');
        ck_assert_int_eq(evdb_result_int(res, r, 1, &iv), EVDB_ETYPE);
        ck_assert_int_eq(iv, -7);
    } else {
        snprintf(want, sizeof want, "v-%lld", (long long)g);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(len, strlen(want));
        ck_assert_str_eq(s, want);
        ck_assert_int_eq(evdb_result_int(res, r, 1, &iv), EVDB_ETYPE);
        bool bv;
        ck_assert_int_eq(evdb_result_bool(res, r, 1, &bv), EVDB_ETYPE);
        ck_assert_int_eq(evdb_result_double(res, r, 1, &dv), EVDB_ETYPE);
    }

    /* d: a double, or NULL. */
    dv = -1;
    if (D_NULL(g)) {
        ck_assert(evdb_result_isnull(res, r, 2));
        ck_assert_int_eq(evdb_result_double(res, r, 2, &dv), EVDB_ENULL);
        ck_assert(dv == -1);
    } else {
        ck_assert_int_eq(evdb_result_double(res, r, 2, &dv), 0);
        ck_assert_msg(dv == (double)g * 0.5, "row %zu: d %g", r, dv);
        s = evdb_result_text(res, r, 2, &len);
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(len, strlen(s));
        ck_assert(strtod(s, NULL) == (double)g * 0.5);
        /* A whole number reads as an integer; a half does not. */
        int rc = evdb_result_int(res, r, 2, &iv);
        if (g % 2 == 0) {
            ck_assert_int_eq(rc, 0);
            ck_assert_int_eq(iv, g / 2);
        } else {
            ck_assert_int_eq(rc, EVDB_ETYPE);
        }
    }

    /* b: a bool (PostgreSQL t/f, MariaDB 1/0), also as an integer. */
    bool bv = !(g % 2 == 0);
    ck_assert_int_eq(evdb_result_bool(res, r, 3, &bv), 0);
    ck_assert(bv == (g % 2 == 0));
    ck_assert_int_eq(evdb_result_int(res, r, 3, &iv), 0);
    ck_assert_int_eq(iv, g % 2 == 0);
    s = evdb_result_text(res, r, 3, &len);
    ck_assert_str_eq(s, pg ? (g % 2 == 0 ? "t" : "f") : (g % 2 == 0 ? "1" : "0"));

    /* big: one 100,000-byte value, NULL elsewhere. */
    s = evdb_result_bytes(res, r, 4, &len);
    if (g == BIG_ROW) {
        ck_assert_ptr_nonnull(s);
        ck_assert_uint_eq(len, BIG_LEN);
        for (size_t k = 0; k < len; k++)
            ck_assert_int_eq(s[k], 'L');
        ck_assert_int_eq(s[len], '\0');
        ck_assert_ptr_eq(evdb_result_text(res, r, 4, NULL), s);
    } else {
        ck_assert_ptr_null(s);
        ck_assert(evdb_result_isnull(res, r, 4));
    }
}

/* A PG_ROWS / MY_ROWS result of n rows, all of it. */
static void check_rows(const evdb_result *res, size_t n, bool pg)
{
    ck_assert_ptr_nonnull(res);
    ck_assert_uint_eq(evdb_result_nrows(res), n);
    ck_assert_uint_eq(evdb_result_ncols(res), 5);
    static const char *const names[] = {"i", "t", "d", "b", "big"};
    for (size_t c = 0; c < 5; c++) {
        ck_assert_str_eq(evdb_result_colname(res, c), names[c]);
        ck_assert_int_eq(evdb_result_colindex(res, names[c]), (long)c);
    }
    ck_assert_int_eq(evdb_result_colindex(res, "nope"), -1);
    ck_assert_ptr_null(evdb_result_colname(res, 5));
    ck_assert_int_eq(evdb_result_coltype(res, 0), EVDB_TYPE_INT);
    ck_assert_int_eq(evdb_result_coltype(res, 1), EVDB_TYPE_TEXT);
    ck_assert_int_eq(evdb_result_coltype(res, 2), EVDB_TYPE_DOUBLE);
    ck_assert_int_eq(evdb_result_coltype(res, 3), pg ? EVDB_TYPE_BOOL : EVDB_TYPE_INT);
    ck_assert_int_eq(evdb_result_coltype(res, 4), EVDB_TYPE_TEXT);
    ck_assert_uint_eq(evdb_result_coltype_native(res, 0), pg ? 23u : 8u /* int4, LONGLONG */);
    ck_assert_int_eq(evdb_result_affected(res), (int64_t)n);
    if (pg) {
        char tag[TEXT_MAX];
        snprintf(tag, sizeof tag, "SELECT %zu", n);
        ck_assert_str_eq(evdb_result_command(res), tag);
    }
    for (size_t r = 0; r < n; r++)
        check_row(res, r, pg);
    /* Out of range: rows, columns, both. */
    int64_t iv = 5;
    size_t len = 9;
    ck_assert(evdb_result_isnull(res, n, 0));
    ck_assert(evdb_result_isnull(res, 0, 5));
    ck_assert_ptr_null(evdb_result_text(res, n, 0, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(evdb_result_bytes(res, 0, 5, NULL));
    ck_assert_int_eq(evdb_result_int(res, n, 0, &iv), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_int(res, 0, 5, &iv), EVDB_ERANGE);
    ck_assert_int_eq(iv, 5);
    double dv;
    bool bv;
    ck_assert_int_eq(evdb_result_double(res, SIZE_MAX, 2, &dv), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_bool(res, 0, SIZE_MAX, &bv), EVDB_ERANGE);
    ck_assert_ptr_null(evdb_result_next(res));
}

/* A PG_BYTES / MY_BYTES result of n rows. */
static void check_bytes(const evdb_result *res, size_t n)
{
    ck_assert_ptr_nonnull(res);
    ck_assert_uint_eq(evdb_result_nrows(res), n);
    ck_assert_int_eq(evdb_result_coltype(res, 1), EVDB_TYPE_BYTES);
    for (size_t r = 0; r < n; r++) {
        size_t len = 0;
        const unsigned char *p = evdb_result_bytes(res, r, 1, &len);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(len, 3);
        ck_assert_uint_eq(p[0], (r + 1) % 256);
        ck_assert_uint_eq(p[1], 0);
        ck_assert_uint_eq(p[2], 0xff);
        ck_assert_uint_eq(p[3], 0);
        /* Not a number: it holds a NUL. */
        int64_t iv;
        ck_assert_int_eq(evdb_result_int(res, r, 1, &iv), EVDB_ETYPE);
        p = evdb_result_bytes(res, r, 2, &len);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(len, 0);
        ck_assert(!evdb_result_isnull(res, r, 2));
    }
}

/* ---- queries ---- */

static evdb_future *pg_rows(evdb_conn *c, const char *sql, size_t n)
{
    evdb_value v = evdb_int((int64_t)n);
    return t_run_ok(c, sql, &v, 1);
}

/* MariaDB: with a parameter (binary protocol) or the count written into
 * the SQL (text protocol). */
static evdb_future *my_rows(evdb_conn *c, const char *fmt, size_t n, bool binary)
{
    char sql[SQL_MAX], num[TEXT_MAX];
    snprintf(num, sizeof num, "%zu", n);
    snprintf(sql, sizeof sql, fmt, binary ? "?" : num);
    evdb_value v = evdb_int((int64_t)n);
    return t_run_ok(c, sql, binary ? &v : NULL, binary ? 1 : 0);
}

static const size_t SIZES[] = {1, 9, MANY};

/* ---- tests ---- */

START_TEST(pg_every_getter)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    /* Twice each: the second run goes through the cached statement's
     * kept columns. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
            evdb_future *f = pg_rows(c, PG_ROWS, SIZES[i]);
            check_rows(evdb_future_result(f), SIZES[i], true);
            evdb_future_unref(f);
            f = pg_rows(c, PG_BYTES, SIZES[i]);
            check_bytes(evdb_future_result(f), SIZES[i]);
            evdb_future_unref(f);
        }
    }
    t_conn_close(c);
}
END_TEST

START_TEST(my_every_getter)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    for (int binary = 0; binary < 2; binary++) {
        for (size_t i = 0; i < sizeof SIZES / sizeof SIZES[0]; i++) {
            evdb_future *f = my_rows(c, MY_ROWS, SIZES[i], binary);
            check_rows(evdb_future_result(f), SIZES[i], false);
            evdb_future_unref(f);
            f = my_rows(c, MY_BYTES, SIZES[i], binary);
            check_bytes(evdb_future_result(f), SIZES[i]);
            evdb_future_unref(f);
        }
    }
    t_conn_close(c);
}
END_TEST

/* A large result read in place counts the PGresult's memory (what
 * max_result_bytes compares), not just its own header. */
START_TEST(pg_in_place_size_counted)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_future *f = pg_rows(c, PG_ROWS, MANY);
    size_t size = evdb__result_size(evdb_future_result(f));
    ck_assert_msg(size > BIG_LEN + MANY * 8, "size %zu", size);
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* Several statements in one string: each result, small or large. */
START_TEST(pg_multi_statement)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_future *f = t_run_ok(c,
                              "SELECT g FROM generate_series(1, 2000) g; SELECT 7;"
                              " SELECT g, 'x' || g FROM generate_series(1, 500) g",
                              NULL, 0);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_nrows(r), 2000);
    for (size_t i = 0; i < 2000; i++)
        ck_assert_int_eq(t_cell_int(r, i, 0), (int64_t)i + 1);
    r = evdb_result_next(r);
    ck_assert_int_eq(t_cell_int(r, 0, 0), 7);
    r = evdb_result_next(r);
    ck_assert_uint_eq(evdb_result_nrows(r), 500);
    for (size_t i = 0; i < 500; i++) {
        char want[TEXT_MAX];
        snprintf(want, sizeof want, "x%zu", i + 1);
        t_expect_cell(r, i, 1, want);
    }
    ck_assert_ptr_null(evdb_result_next(r));
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* The result owns what it reads: it outlives the connection it came on. */
static void outlives_conn(const char *url, bool pg)
{
    evdb_conn *c = t_conn_open(L, url, NULL);
    evdb_future *big = pg ? pg_rows(c, PG_ROWS, MANY) : my_rows(c, MY_ROWS, MANY, true);
    evdb_future *small = pg ? pg_rows(c, PG_ROWS, 1) : my_rows(c, MY_ROWS, 1, false);
    t_conn_close(c);
    t_run_for(L, 0.05);
    check_rows(evdb_future_result(big), MANY, pg);
    check_rows(evdb_future_result(small), 1, pg);
    evdb_future_unref(big);
    evdb_future_unref(small);
}

START_TEST(pg_outlives_conn)
{
    outlives_conn(t_pg_url(), true);
}
END_TEST

START_TEST(my_outlives_conn)
{
    outlives_conn(t_my_url(), false);
}
END_TEST

static void outlives_pool(const char *url, bool pg)
{
    evdb_pool *p = t_pool_new(L, url, NULL);
    evdb_value v = evdb_int(MANY);
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, pg ? "%s" : MY_ROWS, pg ? PG_ROWS : "?");
    evdb_future *f = t_pool_run_ok(p, sql, &v, 1);
    t_pool_close(p);
    t_run_for(L, 0.05);
    check_rows(evdb_future_result(f), MANY, pg);
    evdb_future_unref(f);
}

START_TEST(pg_outlives_pool)
{
    outlives_pool(t_pg_url(), true);
}
END_TEST

START_TEST(my_outlives_pool)
{
    outlives_pool(t_my_url(), false);
}
END_TEST

/* max_result_bytes still bounds large results: over it EVDB_ETOOBIG and
 * the connection serves on; under it the rows are all there. */
static void cap_enforced(const char *url, bool pg)
{
    evdb_conn_opts o;
    memset(&o, 0, sizeof o);
    o.max_result_bytes = BIG_LEN / 2;
    evdb_conn *c = t_conn_open(L, url, &o);
    evdb_value v = evdb_int(MANY);
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, pg ? "%s" : MY_ROWS, pg ? PG_ROWS : "?");
    evdb_future *f = t_submit(c, sql, &v, 1, 0, 0);
    t_expect_fail(f, EVDB_ETOOBIG, NULL);
    ck_assert_ptr_null(evdb_future_result(f));
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT 42"), 42);
    t_conn_close(c);

    o.max_result_bytes = 16 * BIG_LEN;
    c = t_conn_open(L, url, &o);
    f = t_run_ok(c, sql, &v, 1);
    check_rows(evdb_future_result(f), MANY, pg);
    evdb_future_unref(f);
    t_conn_close(c);
}

START_TEST(pg_cap_enforced)
{
    cap_enforced(t_pg_url(), true);
}
END_TEST

START_TEST(my_cap_enforced)
{
    cap_enforced(t_my_url(), false);
}
END_TEST

/* MariaDB prepared results read straight from the stored rows: every
 * integer width, signed and unsigned, at its limits, doubles, DECIMAL and
 * NULLs read the same as over the text protocol (Connector/C's own
 * conversion), as text and as numbers. */
START_TEST(my_direct_rows_match_text)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_direct (id INT PRIMARY KEY, ti TINYINT, tu TINYINT "
                 "UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT "
                 "UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, d DOUBLE, n DECIMAL(12,3), "
                 "s VARCHAR(300), b VARBINARY(20))");
    t_exec_ok(c, "INSERT INTO t_direct VALUES "
                 "(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, "
                 "-9223372036854775808, -1.5, -123456789.125, REPEAT('s', 300), 0x00FF00), "
                 "(2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, 0, "
                 "'', ''), "
                 "(3, -1, 1, -1, 1, -1, 1, -1, 1, -1, 0.1, 0.001, 'x', 0x61), "
                 "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
                 "NULL)");
    t_exec_ok(c, "INSERT INTO t_direct (id, i, bi, d, s) SELECT seq + 10, CAST(seq AS SIGNED) * "
                 "7919 - 400000, CAST(seq AS SIGNED) * 1000000007 * IF(seq % 2, -1, 1), seq / "
                 "8e0 - 100, CONCAT('r', seq) FROM seq_1_to_3000");
    evdb_value lo = evdb_int(0);
    evdb_future *t = t_run_ok(c, "SELECT * FROM t_direct ORDER BY id", NULL, 0);
    evdb_future *ps = t_run_ok(c, "SELECT * FROM t_direct WHERE id > ? ORDER BY id", &lo, 1);
    const evdb_result *rt = evdb_future_result(t), *rp = evdb_future_result(ps);
    size_t rows = evdb_result_nrows(rt), cols = evdb_result_ncols(rt);
    ck_assert_uint_eq(rows, 3004);
    ck_assert_uint_eq(evdb_result_nrows(rp), rows);
    ck_assert_uint_eq(evdb_result_ncols(rp), cols);
    for (size_t row = 0; row < rows; row++) {
        for (size_t col = 0; col < cols; col++) {
            size_t la = 0, lb = 0;
            const char *a = evdb_result_bytes(rt, row, col, &la);
            const char *b = evdb_result_bytes(rp, row, col, &lb);
            ck_assert_msg((!a && !b) || (a && b && la == lb && memcmp(a, b, la) == 0),
                          "row %zu col %zu: text '%s' prepared '%s'", row, col, a ? a : "NULL",
                          b ? b : "NULL");
            int64_t va = 0, vb = 0;
            int ra = evdb_result_int(rt, row, col, &va), rb = evdb_result_int(rp, row, col, &vb);
            ck_assert_msg(ra == rb && va == vb, "row %zu col %zu: int %d %lld vs %d %lld", row, col,
                          ra, (long long)va, rb, (long long)vb);
            double da = 0, db = 0;
            ra = evdb_result_double(rt, row, col, &da);
            rb = evdb_result_double(rp, row, col, &db);
            ck_assert_msg(ra == rb && da == db, "row %zu col %zu: double %d %g vs %d %g", row, col,
                          ra, da, rb, db);
        }
    }
    int64_t v = 0;
    ck_assert_int_eq(evdb_result_int(rp, 0, 9, &v), 0);
    ck_assert_int_eq(v, INT64_MIN);
    ck_assert_int_eq(evdb_result_int(rp, 0, 1, &v), 0);
    ck_assert_int_eq(v, -128);
    ck_assert_int_eq(evdb_result_int(rp, 0, 8, &v), 0);
    ck_assert_int_eq(v, 4294967295LL);
    t_expect_cell(rp, 0, 11, "-123456789.125");
    size_t len = 0;
    const unsigned char *bin = evdb_result_bytes(rp, 0, 13, &len);
    ck_assert_uint_eq(len, 3);
    ck_assert(bin[0] == 0 && bin[1] == 0xff && bin[2] == 0);
    evdb_future_unref(t);
    evdb_future_unref(ps);
    t_conn_close(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("results");
    TCase *pg = tcase_create("postgres");
    TCase *my = tcase_create("mariadb");
    TCase *all[] = {pg, my};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], TEST_TIMEOUT_S);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_test(pg, pg_every_getter);
    tcase_add_test(pg, pg_in_place_size_counted);
    tcase_add_test(pg, pg_multi_statement);
    tcase_add_test(pg, pg_outlives_conn);
    tcase_add_test(pg, pg_outlives_pool);
    tcase_add_test(pg, pg_cap_enforced);
    tcase_add_test(my, my_every_getter);
    tcase_add_test(my, my_direct_rows_match_text);
    tcase_add_test(my, my_outlives_conn);
    tcase_add_test(my, my_outlives_pool);
    tcase_add_test(my, my_cap_enforced);
    return t_run_suite(s);
}
