/*
 * MariaDB's column types as evdb types, against the real server: every
 * type at its limits (DATETIME(6) and TIMESTAMP(6) microseconds,
 * 1000-01-01 and 9999-12-31 23:59:59.999999, zero and partly zero dates
 * under a permissive sql_mode, TIME -838:59:59.999999 and 838:59:59,
 * DECIMAL(65,30), BIGINT UNSIGNED at 2^63 and 2^64 - 1, BIT(1) and
 * BIT(64), JSON, UUID, ENUM, SET, YEAR, NULLs) read through every path a
 * result takes: the text protocol, prepared statements whose stored rows
 * are read directly, prepared statements fetched by Connector/C (a FLOAT
 * column sends the whole result that way), rows read one at a time
 * (under a result-size cap), and pooled queries. Every path must give
 * the same cells, which are exactly the texts docs/types.md names, so
 * the getters read them the same way.
 */
#include <check.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <evdb.h>

#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 60.0
#define TEST_TIMEOUT_S 120
#define SQL_MAX 1024
#define NROWS 5
#define NCOLS 16
/* A result-size cap that makes the driver read rows one at a time. */
#define CAP_BYTES (1u << 20)

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
}

static void teardown(void)
{
    t_loop_free(L);
}

/* ---- the table of limits ---- */

static const char *const CREATE_COLS =
    "CREATE TABLE types_my_cols (id INT PRIMARY KEY, dt6 DATETIME(6), dt0 DATETIME,"
    " ts6 TIMESTAMP(6) NULL DEFAULT NULL, d DATE, t6 TIME(6), t0 TIME, y YEAR,"
    " dec65 DECIMAL(65,30), ub BIGINT UNSIGNED, b1 BIT(1), b64 BIT(64), j JSON, u UUID,"
    " e ENUM('a','b'), st SET('x','y'))";

/* Inserted under sql_mode='' (zero dates) and time_zone='+00:00'. */
static const char *const INSERT_COLS =
    "INSERT INTO types_my_cols VALUES"
    " (1, '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59', '2038-01-19 03:14:07.999999',"
    "  '9999-12-31', '838:59:59.999999', '838:59:59', 2155,"
    "  '99999999999999999999999999999999999.999999999999999999999999999999',"
    "  18446744073709551615, b'1', 18446744073709551615, '{\"a\": [1, 2.5, \"x\"]}',"
    "  '123e4567-e89b-12d3-a456-426614174000', 'b', 'x,y'),"
    " (2, '1000-01-01 00:00:00.000000', '1000-01-01 00:00:00', '1970-01-01 00:00:01',"
    "  '1000-01-01', '-838:59:59.999999', '-838:59:59', 1901,"
    "  '-99999999999999999999999999999999999.999999999999999999999999999999',"
    "  9223372036854775808, b'0', 1, '[]', '00000000-0000-0000-0000-000000000000', 'a', ''),"
    " (3, '0000-00-00 00:00:00', '2020-00-15 00:00:00', '0000-00-00 00:00:00',"
    "  '0000-00-00', '-00:00:00.000001', '00:00:00', 0,"
    "  '0.000000000000000000000000000001', 0, NULL, 0, 'null', NULL, NULL, 'y'),"
    " (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    "  NULL),"
    " (5, '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56', '2024-02-29 12:34:56.5',"
    "  '2024-02-29', '123:45:06.789', '-01:02:03', 2024, '-12.34', 1, b'1',"
    "  9223372036854775808, '{\"k\": \"\xc3\xa9\"}', '6ccd780c-baba-1026-9564-5b8c656024db', 'b',"
    "  'x')";

static const char *const SELECT_COLS =
    "SELECT id, dt6, dt0, ts6, d, t6, t0, y, dec65, ub, b1, b64, j, u, e, st FROM types_my_cols";

/* A cell as the text protocol shows it: len bytes (BIT values hold
 * NULs), or NULL for SQL NULL. */
typedef struct cell {
    const char *s;
    size_t len;
} cell;

#define C(lit) {lit, sizeof(lit) - 1}
#define N {NULL, 0}

static const cell WANT[NROWS][NCOLS] = {
    {C("1"), C("9999-12-31 23:59:59.999999"), C("9999-12-31 23:59:59"),
     C("2038-01-19 03:14:07.999999"), C("9999-12-31"), C("838:59:59.999999"), C("838:59:59"),
     C("2155"), C("99999999999999999999999999999999999.999999999999999999999999999999"),
     C("18446744073709551615"), C("\x01"), C("\xff\xff\xff\xff\xff\xff\xff\xff"),
     C("{\"a\": [1, 2.5, \"x\"]}"), C("123e4567-e89b-12d3-a456-426614174000"), C("b"),
     C("x,y")},
    {C("2"), C("1000-01-01 00:00:00.000000"), C("1000-01-01 00:00:00"),
     C("1970-01-01 00:00:01.000000"), C("1000-01-01"), C("-838:59:59.999999"),
     C("-838:59:59"), C("1901"),
     C("-99999999999999999999999999999999999.999999999999999999999999999999"),
     C("9223372036854775808"), C("\x00"), C("\x00\x00\x00\x00\x00\x00\x00\x01"), C("[]"),
     C("00000000-0000-0000-0000-000000000000"), C("a"), C("")},
    {C("3"), C("0000-00-00 00:00:00.000000"), C("2020-00-15 00:00:00"),
     C("0000-00-00 00:00:00.000000"), C("0000-00-00"), C("-00:00:00.000001"), C("00:00:00"),
     C("0000"), C("0.000000000000000000000000000001"), C("0"), N,
     C("\x00\x00\x00\x00\x00\x00\x00\x00"), C("null"), N, N, C("y")},
    {C("4"), N, N, N, N, N, N, N, N, N, N, N, N, N, N, N},
    {C("5"), C("2024-02-29 12:34:56.000001"), C("2024-02-29 12:34:56"),
     C("2024-02-29 12:34:56.500000"), C("2024-02-29"), C("123:45:06.789000"), C("-01:02:03"),
     C("2024"), C("-12.340000000000000000000000000000"), C("1"), C("\x01"),
     C("\x80\x00\x00\x00\x00\x00\x00\x00"), C("{\"k\": \"\xc3\xa9\"}"),
     C("6ccd780c-baba-1026-9564-5b8c656024db"), C("b"), C("x")},
};

static const evdb_type WANT_TYPE[NCOLS] = {
    EVDB_TYPE_INT,       EVDB_TYPE_TIMESTAMP, EVDB_TYPE_TIMESTAMP, EVDB_TYPE_TIMESTAMP,
    EVDB_TYPE_DATE,      EVDB_TYPE_TIME,      EVDB_TYPE_TIME,      EVDB_TYPE_INT,
    EVDB_TYPE_NUMERIC,   EVDB_TYPE_INT,       EVDB_TYPE_BITS,      EVDB_TYPE_BITS,
    EVDB_TYPE_JSON,      EVDB_TYPE_UUID,      EVDB_TYPE_ENUM,      EVDB_TYPE_TEXT,
};

/* A session fit for the table: zero dates allowed, times in UTC. */
static void my_session(evdb_conn *c)
{
    t_exec_ok(c, "SET SESSION sql_mode = '', time_zone = '+00:00'");
}

/* (Re)create and fill the table over c. */
static void make_table(evdb_conn *c)
{
    my_session(c);
    t_exec_ok(c, "DROP TABLE IF EXISTS types_my_cols");
    t_exec_ok(c, CREATE_COLS);
    t_exec_ok(c, INSERT_COLS);
}

/* Every cell and column type of a SELECT_COLS result (extra columns
 * after the first NCOLS are not looked at); path names the read path in
 * failure messages. */
static void check_cols(const evdb_result *r, const char *path)
{
    ck_assert_msg(evdb_result_nrows(r) == NROWS, "%s: %zu rows", path, evdb_result_nrows(r));
    ck_assert_msg(evdb_result_ncols(r) >= NCOLS, "%s: %zu columns", path, evdb_result_ncols(r));
    for (size_t c = 0; c < NCOLS; c++)
        ck_assert_msg(evdb_result_coltype(r, c) == WANT_TYPE[c], "%s: column %s has type %d",
                      path, evdb_result_colname(r, c), (int)evdb_result_coltype(r, c));
    for (size_t row = 0; row < NROWS; row++) {
        for (size_t c = 0; c < NCOLS; c++) {
            const cell *w = &WANT[row][c];
            size_t len = 0;
            const char *got = evdb_result_text(r, row, c, &len);
            if (!w->s) {
                ck_assert_msg(evdb_result_isnull(r, row, c), "%s: row %zu column %s not NULL",
                              path, row, evdb_result_colname(r, c));
                continue;
            }
            ck_assert_msg(got && len == w->len && memcmp(got, w->s, len) == 0,
                          "%s: row %zu column %s is '%.*s' (%zu bytes), want '%.*s'", path, row,
                          evdb_result_colname(r, c), got ? (int)len : 4, got ? got : "NULL", len,
                          (int)w->len, w->s);
        }
    }
}

/* The table read over c by text protocol, by prepared statement read
 * directly, and by prepared statement fetched by Connector/C. */
static void check_three_paths(evdb_conn *c, const char *who)
{
    char sql[SQL_MAX], path[64];
    evdb_value zero = evdb_int(0);

    snprintf(sql, sizeof sql, "%s ORDER BY id", SELECT_COLS);
    evdb_future *f = t_run_ok(c, sql, NULL, 0);
    snprintf(path, sizeof path, "%s text", who);
    check_cols(evdb_future_result(f), path);
    evdb_future_unref(f);

    snprintf(sql, sizeof sql, "%s WHERE id > ? ORDER BY id", SELECT_COLS);
    f = t_run_ok(c, sql, &zero, 1);
    snprintf(path, sizeof path, "%s prepared", who);
    check_cols(evdb_future_result(f), path);
    evdb_future_unref(f);

    /* A FLOAT column is not read directly: the whole result goes
     * through mysql_stmt_fetch and the MYSQL_TIME binds. */
    snprintf(sql, sizeof sql,
             "SELECT id, dt6, dt0, ts6, d, t6, t0, y, dec65, ub, b1, b64, j, u, e, st,"
             " CAST(1.5 AS FLOAT) AS f FROM types_my_cols WHERE id > ? ORDER BY id");
    f = t_run_ok(c, sql, &zero, 1);
    snprintf(path, sizeof path, "%s prepared, fetched", who);
    check_cols(evdb_future_result(f), path);
    evdb_future_unref(f);
}

START_TEST(my_every_type_every_path)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    make_table(c);
    check_three_paths(c, "conn");
    /* The same statements again: cached, with their bindings reused. */
    check_three_paths(c, "conn again");
    t_conn_close(c);

    /* Rows read one at a time (a result-size cap), both protocols. */
    evdb_conn_opts o = {0};
    o.max_result_bytes = CAP_BYTES;
    c = t_conn_open(L, t_my_url(), &o);
    my_session(c);
    check_three_paths(c, "capped");
    t_conn_close(c);
}
END_TEST

START_TEST(my_every_type_pooled)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    make_table(c);
    t_conn_close(c);

    /* Pooled sessions read in UTC: the pool's connections are set up by
     * the URL's options, so the TIMESTAMP column is read with an explicit
     * conversion-free session zone set per query. */
    evdb_pool *p = t_pool_new(L, t_my_url(), NULL);
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, "SET STATEMENT time_zone = '+00:00' FOR %s ORDER BY id",
             SELECT_COLS);
    evdb_future *f = t_pool_run_ok(p, sql, NULL, 0);
    check_cols(evdb_future_result(f), "pool text");
    evdb_future_unref(f);
    evdb_value zero = evdb_int(0);
    snprintf(sql, sizeof sql, "SET STATEMENT time_zone = '+00:00' FOR %s WHERE id > ? ORDER BY id",
             SELECT_COLS);
    for (int i = 0; i < 3; i++) {
        f = t_pool_run_ok(p, sql, &zero, 1);
        check_cols(evdb_future_result(f), "pool prepared");
        evdb_future_unref(f);
    }
    t_pool_close(p);
}
END_TEST

/* A TIMESTAMP column is shown in the session's time zone (MariaDB keeps
 * it in UTC); a DATETIME column is shown as stored. Both come out as
 * wall-clock text, whichever protocol. */
START_TEST(my_timestamp_session_zone)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    t_exec_ok(c, "SET time_zone = '+00:00'");
    t_exec_ok(c, "DROP TABLE IF EXISTS types_my_tz");
    t_exec_ok(c, "CREATE TABLE types_my_tz (ts TIMESTAMP(6) NULL, dt DATETIME(6))");
    t_exec_ok(c, "INSERT INTO types_my_tz VALUES ('2024-03-31 00:30:00.250000',"
                 " '2024-03-31 00:30:00.250000')");
    t_exec_ok(c, "SET time_zone = '+05:30'");
    evdb_value zero = evdb_int(0);
    evdb_future *ft = t_run_ok(c, "SELECT ts, dt FROM types_my_tz", NULL, 0);
    evdb_future *fp = t_run_ok(c, "SELECT ts, dt FROM types_my_tz WHERE ? = 0", &zero, 1);
    const evdb_result *r[] = {evdb_future_result(ft), evdb_future_result(fp)};
    for (size_t i = 0; i < 2; i++) {
        t_expect_cell(r[i], 0, 0, "2024-03-31 06:00:00.250000");
        t_expect_cell(r[i], 0, 1, "2024-03-31 00:30:00.250000");
        ck_assert_int_eq(evdb_result_coltype(r[i], 0), EVDB_TYPE_TIMESTAMP);
        ck_assert_int_eq(evdb_result_coltype(r[i], 1), EVDB_TYPE_TIMESTAMP);
    }
    evdb_future_unref(ft);
    evdb_future_unref(fp);
    t_conn_close(c);
}
END_TEST

/* Expressions whose type the server works out: JSON functions carry the
 * json format, TIMEDIFF beyond a day, a DECIMAL sum, dates computed. */
START_TEST(my_expressions)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    static const char *const sql =
        "SELECT JSON_OBJECT('k', 1) AS j, TIMEDIFF('2020-01-01 00:00:00', '2020-02-01 00:00:01')"
        " AS td, CAST(1 AS DECIMAL(10,3)) + 0.5 AS s, DATE('2024-02-29') + INTERVAL 1 DAY AS d,"
        " CAST('12:00:00.5' AS TIME(1)) AS t1, CAST(NULL AS DATE) AS dn";
    static const char *const want[] = {"{\"k\": 1}", "-744:00:01", "1.500", "2024-03-01",
                                       "12:00:00.5", NULL};
    static const evdb_type types[] = {EVDB_TYPE_JSON, EVDB_TYPE_TIME, EVDB_TYPE_NUMERIC,
                                      EVDB_TYPE_DATE, EVDB_TYPE_TIME, EVDB_TYPE_DATE};
    evdb_value zero = evdb_int(0);
    char psql[SQL_MAX];
    snprintf(psql, sizeof psql, "%s FROM DUAL WHERE ? = 0", sql);
    evdb_future *ft = t_run_ok(c, sql, NULL, 0);
    evdb_future *fp = t_run_ok(c, psql, &zero, 1);
    const evdb_result *r[] = {evdb_future_result(ft), evdb_future_result(fp)};
    for (size_t i = 0; i < 2; i++) {
        for (size_t col = 0; col < sizeof want / sizeof want[0]; col++) {
            ck_assert_msg(evdb_result_coltype(r[i], col) == types[col], "%s: column %zu type %d",
                          i ? "prepared" : "text", col, (int)evdb_result_coltype(r[i], col));
            if (want[col])
                t_expect_cell(r[i], 0, col, want[col]);
            else
                ck_assert(evdb_result_isnull(r[i], 0, col));
        }
    }
    evdb_future_unref(ft);
    evdb_future_unref(fp);
    t_conn_close(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("types_my");
    TCase *tc = tcase_create("mariadb");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    suite_add_tcase(s, tc);
    tcase_add_test(tc, my_every_type_every_path);
    tcase_add_test(tc, my_every_type_pooled);
    tcase_add_test(tc, my_timestamp_session_zone);
    tcase_add_test(tc, my_expressions);
    return t_run_suite(s);
}
