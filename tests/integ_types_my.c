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

#define C(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
#define N                                                                                          \
    {                                                                                              \
        NULL, 0                                                                                    \
    }

static const cell WANT[NROWS][NCOLS] = {
    {C("1"), C("9999-12-31 23:59:59.999999"), C("9999-12-31 23:59:59"),
     C("2038-01-19 03:14:07.999999"), C("9999-12-31"), C("838:59:59.999999"), C("838:59:59"),
     C("2155"), C("99999999999999999999999999999999999.999999999999999999999999999999"),
     C("18446744073709551615"), C("\x01"), C("\xff\xff\xff\xff\xff\xff\xff\xff"),
     C("{\"a\": [1, 2.5, \"x\"]}"), C("123e4567-e89b-12d3-a456-426614174000"), C("b"), C("x,y")},
    {C("2"), C("1000-01-01 00:00:00.000000"), C("1000-01-01 00:00:00"),
     C("1970-01-01 00:00:01.000000"), C("1000-01-01"), C("-838:59:59.999999"), C("-838:59:59"),
     C("1901"), C("-99999999999999999999999999999999999.999999999999999999999999999999"),
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
    EVDB_TYPE_INT,     EVDB_TYPE_TIMESTAMP, EVDB_TYPE_TIMESTAMP, EVDB_TYPE_TIMESTAMP,
    EVDB_TYPE_DATE,    EVDB_TYPE_TIME,      EVDB_TYPE_TIME,      EVDB_TYPE_INT,
    EVDB_TYPE_NUMERIC, EVDB_TYPE_INT,       EVDB_TYPE_BITS,      EVDB_TYPE_BITS,
    EVDB_TYPE_JSON,    EVDB_TYPE_UUID,      EVDB_TYPE_ENUM,      EVDB_TYPE_TEXT,
};

static const char *const WANT_NAME[NCOLS] = {
    "INT",     "DATETIME",        "DATETIME", "TIMESTAMP", "DATE", "TIME", "TIME", "YEAR",
    "DECIMAL", "BIGINT UNSIGNED", "BIT",      "BIT",       "JSON", "UUID", "ENUM", "SET",
};

#define US_PER_SEC INT64_C(1000000)
#define TIME_MAX_US ((INT64_C(838) * 3600 + 59 * 60 + 59) * US_PER_SEC + 999999)

/* Microseconds since 1970-01-01 of a wall-clock date and time. */
static int64_t wall_us(int32_t y, int mo, int d, int h, int mi, int s, int64_t us)
{
    int32_t days = 0;
    ck_assert_int_eq(evdb_date_from_ymd(y, mo, d, &days), 0);
    return (int64_t)days * EVDB_USECS_PER_DAY + ((int64_t)h * 3600 + mi * 60 + s) * US_PER_SEC + us;
}

static int32_t days_of(int32_t y, int mo, int d)
{
    int32_t days = 0;
    ck_assert_int_eq(evdb_date_from_ymd(y, mo, d, &days), 0);
    return days;
}

/* Microseconds of a signed duration h:m:s.us. */
static int64_t dur_us(int sign, int64_t h, int m, int s, int64_t us)
{
    return sign * ((h * 3600 + m * 60 + s) * US_PER_SEC + us);
}

/* Column indexes of SELECT_COLS. */
enum { K_ID, K_DT6, K_DT0, K_TS6, K_D, K_T6, K_T0, K_Y, K_DEC, K_UB, K_B1, K_B64, K_J, K_U };

#define EXPECT_RC(call, want, path, what)                                                          \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        ck_assert_msg(rc_ == (want), "%s: %s: %s, want %s", path, what, evdb_err_name(rc_),        \
                      evdb_err_name(want));                                                        \
    } while (0)

/* The typed getters on the cells of a SELECT_COLS result. */
static void check_getters(const evdb_result *r, const char *path)
{
    for (size_t c = 0; c < NCOLS; c++)
        ck_assert_msg(strcmp(evdb_result_coltype_name(r, c), WANT_NAME[c]) == 0,
                      "%s: column %s is named '%s'", path, evdb_result_colname(r, c),
                      evdb_result_coltype_name(r, c));
    int64_t us = 0, i = 0;
    int32_t days = 0, off = 0;
    uint64_t u = 0;
    uint8_t uuid[16];
    evdb_interval iv;
    static const uint8_t UUID_ROW0[16] = {0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3,
                                          0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00};
    static const uint8_t UUID_ZERO[16] = {0};

    /* Row 0: the upper limits. */
    EXPECT_RC(evdb_result_timestamp(r, 0, K_DT6, &us), 0, path, "dt6");
    ck_assert(us == wall_us(9999, 12, 31, 23, 59, 59, 999999));
    EXPECT_RC(evdb_result_timestamp(r, 0, K_TS6, &us), 0, path, "ts6");
    ck_assert(us == wall_us(2038, 1, 19, 3, 14, 7, 999999));
    EXPECT_RC(evdb_result_timestamptz(r, 0, K_TS6, &us, &off), EVDB_ETYPE, path, "ts6 tz");
    EXPECT_RC(evdb_result_date(r, 0, K_D, &days), 0, path, "d");
    ck_assert_int_eq(days, days_of(9999, 12, 31));
    EXPECT_RC(evdb_result_date(r, 0, K_DT0, &days), 0, path, "date of dt0");
    ck_assert_int_eq(days, days_of(9999, 12, 31));
    EXPECT_RC(evdb_result_time(r, 0, K_T6, &us), 0, path, "t6");
    ck_assert(us == TIME_MAX_US);
    EXPECT_RC(evdb_result_interval(r, 0, K_T6, &iv), 0, path, "t6 interval");
    ck_assert(iv.months == 0 && iv.days == 0 && iv.us == TIME_MAX_US);
    EXPECT_RC(evdb_result_time(r, 0, K_T0, &us), 0, path, "t0");
    ck_assert(us == dur_us(1, 838, 59, 59, 0));
    EXPECT_RC(evdb_result_int(r, 0, K_Y, &i), 0, path, "y");
    ck_assert_int_eq(i, 2155);
    EXPECT_RC(evdb_result_uint64(r, 0, K_UB, &u), 0, path, "ub");
    ck_assert(u == UINT64_MAX);
    EXPECT_RC(evdb_result_int(r, 0, K_UB, &i), EVDB_ERANGE, path, "ub as int64");
    EXPECT_RC(evdb_result_uint64(r, 0, K_B1, &u), 0, path, "b1");
    ck_assert(u == 1);
    EXPECT_RC(evdb_result_uint64(r, 0, K_B64, &u), 0, path, "b64");
    ck_assert(u == UINT64_MAX);
    EXPECT_RC(evdb_result_uuid(r, 0, K_U, uuid), 0, path, "u");
    ck_assert(memcmp(uuid, UUID_ROW0, 16) == 0);
    EXPECT_RC(evdb_result_time(r, 0, K_DT6, &us), EVDB_ETYPE, path, "time of a datetime");

    /* Row 1: the lower limits. */
    EXPECT_RC(evdb_result_timestamp(r, 1, K_DT6, &us), 0, path, "dt6");
    ck_assert(us == wall_us(1000, 1, 1, 0, 0, 0, 0));
    EXPECT_RC(evdb_result_timestamp(r, 1, K_TS6, &us), 0, path, "ts6");
    ck_assert(us == 1000000);
    EXPECT_RC(evdb_result_time(r, 1, K_T6, &us), 0, path, "t6");
    ck_assert(us == -TIME_MAX_US);
    EXPECT_RC(evdb_result_time(r, 1, K_T0, &us), 0, path, "t0");
    ck_assert(us == dur_us(-1, 838, 59, 59, 0));
    EXPECT_RC(evdb_result_uint64(r, 1, K_UB, &u), 0, path, "ub");
    ck_assert(u == (uint64_t)INT64_MAX + 1);
    EXPECT_RC(evdb_result_int(r, 1, K_UB, &i), EVDB_ERANGE, path, "ub as int64");
    EXPECT_RC(evdb_result_uint64(r, 1, K_B1, &u), 0, path, "b1");
    ck_assert(u == 0);
    EXPECT_RC(evdb_result_uint64(r, 1, K_B64, &u), 0, path, "b64");
    ck_assert(u == 1);
    EXPECT_RC(evdb_result_uuid(r, 1, K_U, uuid), 0, path, "u");
    ck_assert(memcmp(uuid, UUID_ZERO, 16) == 0);

    /* Row 2: zero dates are no dates; the text stays. */
    us = 7;
    days = 7;
    EXPECT_RC(evdb_result_timestamp(r, 2, K_DT6, &us), EVDB_EZERODATE, path, "zero dt6");
    EXPECT_RC(evdb_result_timestamp(r, 2, K_DT0, &us), EVDB_EZERODATE, path, "2020-00-15");
    EXPECT_RC(evdb_result_date(r, 2, K_DT0, &days), EVDB_EZERODATE, path, "date of 2020-00-15");
    EXPECT_RC(evdb_result_timestamp(r, 2, K_TS6, &us), EVDB_EZERODATE, path, "zero ts6");
    EXPECT_RC(evdb_result_date(r, 2, K_D, &days), EVDB_EZERODATE, path, "zero d");
    ck_assert(us == 7 && days == 7); /* untouched */
    EXPECT_RC(evdb_result_time(r, 2, K_T6, &us), 0, path, "t6");
    ck_assert(us == -1);
    EXPECT_RC(evdb_result_time(r, 2, K_T0, &us), 0, path, "t0");
    ck_assert(us == 0);
    EXPECT_RC(evdb_result_int(r, 2, K_Y, &i), 0, path, "y");
    ck_assert_int_eq(i, 0);
    EXPECT_RC(evdb_result_uint64(r, 2, K_UB, &u), 0, path, "ub");
    ck_assert(u == 0);
    EXPECT_RC(evdb_result_uint64(r, 2, K_B64, &u), 0, path, "b64");
    ck_assert(u == 0);
    EXPECT_RC(evdb_result_uint64(r, 2, K_B1, &u), EVDB_ENULL, path, "b1");
    EXPECT_RC(evdb_result_uuid(r, 2, K_U, uuid), EVDB_ENULL, path, "u");

    /* Row 3: NULLs. */
    EXPECT_RC(evdb_result_timestamp(r, 3, K_DT6, &us), EVDB_ENULL, path, "dt6");
    EXPECT_RC(evdb_result_date(r, 3, K_D, &days), EVDB_ENULL, path, "d");
    EXPECT_RC(evdb_result_time(r, 3, K_T6, &us), EVDB_ENULL, path, "t6");
    EXPECT_RC(evdb_result_uint64(r, 3, K_UB, &u), EVDB_ENULL, path, "ub");
    EXPECT_RC(evdb_result_uint64(r, 3, K_B64, &u), EVDB_ENULL, path, "b64");

    /* Row 4: ordinary values with fractions, a leap day, 2^63 in BIT. */
    EXPECT_RC(evdb_result_timestamp(r, 4, K_DT6, &us), 0, path, "dt6");
    ck_assert(us == wall_us(2024, 2, 29, 12, 34, 56, 1));
    EXPECT_RC(evdb_result_timestamp(r, 4, K_TS6, &us), 0, path, "ts6");
    ck_assert(us == wall_us(2024, 2, 29, 12, 34, 56, 500000));
    EXPECT_RC(evdb_result_timestamp(r, 4, K_D, &us), 0, path, "d as timestamp");
    ck_assert(us == wall_us(2024, 2, 29, 0, 0, 0, 0));
    EXPECT_RC(evdb_result_time(r, 4, K_T6, &us), 0, path, "t6");
    ck_assert(us == dur_us(1, 123, 45, 6, 789000));
    EXPECT_RC(evdb_result_time(r, 4, K_T0, &us), 0, path, "t0");
    ck_assert(us == dur_us(-1, 1, 2, 3, 0));
    EXPECT_RC(evdb_result_uint64(r, 4, K_B64, &u), 0, path, "b64");
    ck_assert(u == (uint64_t)1 << 63);
    size_t len = 0;
    const char *dec = evdb_result_text(r, 4, K_DEC, &len);
    EXPECT_RC(evdb_numeric_to_int64(dec, len, &i), EVDB_EPRECISION, path, "-12.34 as int64");
}

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
        ck_assert_msg(evdb_result_coltype(r, c) == WANT_TYPE[c], "%s: column %s has type %d", path,
                      evdb_result_colname(r, c), (int)evdb_result_coltype(r, c));
    for (size_t row = 0; row < NROWS; row++) {
        for (size_t c = 0; c < NCOLS; c++) {
            const cell *w = &WANT[row][c];
            size_t len = 0;
            const char *got = evdb_result_text(r, row, c, &len);
            if (!w->s) {
                ck_assert_msg(evdb_result_isnull(r, row, c), "%s: row %zu column %s not NULL", path,
                              row, evdb_result_colname(r, c));
                continue;
            }
            ck_assert_msg(got && len == w->len && memcmp(got, w->s, len) == 0,
                          "%s: row %zu column %s is '%.*s' (%zu bytes), want '%.*s'", path, row,
                          evdb_result_colname(r, c), got ? (int)len : 4, got ? got : "NULL", len,
                          (int)w->len, w->s);
        }
    }
    check_getters(r, path);
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
    snprintf(sql, sizeof sql, "SET STATEMENT time_zone = '+00:00' FOR %s ORDER BY id", SELECT_COLS);
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
        int64_t us = 0;
        ck_assert_int_eq(evdb_result_timestamp(r[i], 0, 0, &us), 0);
        ck_assert(us == wall_us(2024, 3, 31, 6, 0, 0, 250000));
        ck_assert_int_eq(evdb_result_timestamp(r[i], 0, 1, &us), 0);
        ck_assert(us == wall_us(2024, 3, 31, 0, 30, 0, 250000));
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
        " CAST('12:00:00.5' AS TIME(1)) AS t1, CAST(NULL AS DATE) AS dn,"
        " CAST('::1' AS INET6) AS i6";
    static const char *const want[] = {"{\"k\": 1}", "-744:00:01", "1.500", "2024-03-01",
                                       "12:00:00.5", NULL,         "::1"};
    static const evdb_type types[] = {EVDB_TYPE_JSON, EVDB_TYPE_TIME, EVDB_TYPE_NUMERIC,
                                      EVDB_TYPE_DATE, EVDB_TYPE_TIME, EVDB_TYPE_DATE,
                                      EVDB_TYPE_TEXT};
    static const char *const names[] = {"JSON", "TIME", "DECIMAL", "DATE", "TIME", "DATE", "INET6"};
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
            ck_assert_str_eq(evdb_result_coltype_name(r[i], col), names[col]);
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

/* ---- parameters ---- */

static const uint8_t UUID_A[16] = {0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3,
                                   0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0x00};
static const uint8_t UUID_FF[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

#define NPARAMS 12
static const char *const CREATE_PARAMS =
    "CREATE TABLE types_my_params (id INT PRIMARY KEY, dt6 DATETIME(6), dt0 DATETIME, d DATE,"
    " t6 TIME(6), iv TIME(6), dec65 DECIMAL(65,30), ub BIGINT UNSIGNED, j JSON, u UUID,"
    " uc CHAR(36), tz DATETIME(6))";
static const char *const INSERT_PARAMS =
    "INSERT INTO types_my_params VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static const char *const SELECT_PARAMS =
    "SELECT id, dt6, dt0, d, t6, iv, dec65, ub, j, u, uc, tz FROM types_my_params ORDER BY id";

/* The rows the parameters make, as the text protocol shows them. */
static const char *const WANT_PARAMS[3][NPARAMS] = {
    {"1", "9999-12-31 23:59:59.999999", "1000-01-01 00:00:00", "9999-12-31", "838:59:59.999999",
     "-838:59:59.999999", "99999999999999999999999999999999999.999999999999999999999999999999",
     "18446744073709551615", "{\"a\": [1, \"b\"]}", "123e4567-e89b-12d3-a456-426614174000",
     "123e4567-e89b-12d3-a456-426614174000", "2024-02-29 23:59:59.000001"},
    {"2", "1969-12-31 23:59:59.999999", "1970-01-01 00:00:00", "1000-01-01", "-00:00:00.000001",
     "00:00:00.000000", "-0.000000000000000000000000000001", "9223372036854775808", "[]",
     "ffffffff-ffff-ffff-ffff-ffffffffffff", "ffffffff-ffff-ffff-ffff-ffffffffffff",
     "1970-01-01 00:00:00.000000"},
    {"3", NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
};

/* Insert the three rows of WANT_PARAMS through prepared statements (run
 * by run: a connection's or a pool's). */
static void insert_params(evdb_conn *c, evdb_pool *p)
{
    evdb_value rows[3][NPARAMS] = {
        {evdb_int(1), evdb_timestamp(wall_us(9999, 12, 31, 23, 59, 59, 999999)),
         evdb_timestamp(wall_us(1000, 1, 1, 0, 0, 0, 0)), evdb_date(days_of(9999, 12, 31)),
         evdb_time(TIME_MAX_US), evdb_interval_value(0, 0, -TIME_MAX_US),
         evdb_numeric("99999999999999999999999999999999999.999999999999999999999999999999"),
         evdb_uint(UINT64_MAX), evdb_json("{\"a\": [1, \"b\"]}"), evdb_uuid(UUID_A),
         evdb_uuid(UUID_A), evdb_timestamptz(wall_us(2024, 2, 29, 23, 59, 59, 1))},
        {evdb_int(2), evdb_timestamp(-1), evdb_timestamp(0), evdb_date(days_of(1000, 1, 1)),
         evdb_time(-1), evdb_interval_value(0, 0, 0),
         evdb_numeric("-0.000000000000000000000000000001"), evdb_uint((uint64_t)INT64_MAX + 1),
         evdb_json("[]"), evdb_uuid(UUID_FF), evdb_uuid(UUID_FF), evdb_timestamptz(0)},
        {evdb_int(3), evdb_null(), evdb_null(), evdb_null(), evdb_null(), evdb_null(), evdb_null(),
         evdb_null(), evdb_null(), evdb_null(), evdb_null(), evdb_null()},
    };
    for (size_t i = 0; i < 3; i++) {
        evdb_future *f = c ? t_run_ok(c, INSERT_PARAMS, rows[i], NPARAMS)
                           : t_pool_run_ok(p, INSERT_PARAMS, rows[i], NPARAMS);
        ck_assert_int_eq(evdb_result_affected(evdb_future_result(f)), 1);
        evdb_future_unref(f);
    }
}

static void check_params_table(const evdb_result *r, const char *path)
{
    ck_assert_msg(evdb_result_nrows(r) == 3, "%s: %zu rows", path, evdb_result_nrows(r));
    for (size_t row = 0; row < 3; row++)
        for (size_t col = 0; col < NPARAMS; col++) {
            const char *w = WANT_PARAMS[row][col];
            const char *got = evdb_result_text(r, row, col, NULL);
            if (!w)
                ck_assert_msg(!got, "%s: row %zu col %zu is '%s', want NULL", path, row, col, got);
            else
                ck_assert_msg(got && strcmp(got, w) == 0, "%s: row %zu col %s is '%s', want '%s'",
                              path, row, evdb_result_colname(r, col), got ? got : "NULL", w);
        }
}

/* The number of rows of types_my_params where sql's condition on one
 * parameter holds. */
static int64_t count_where(evdb_conn *c, const char *cond, evdb_value v)
{
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM types_my_params WHERE %s", cond);
    evdb_future *f = t_run_ok(c, sql, &v, 1);
    int64_t n = t_cell_int(evdb_future_result(f), 0, 0);
    evdb_future_unref(f);
    return n;
}

START_TEST(my_params_round_trip)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    /* A session zone other than UTC changes nothing for DATETIME: a
     * timestamptz goes as its UTC wall clock. */
    t_exec_ok(c, "SET time_zone = '-07:00'");
    t_exec_ok(c, "DROP TABLE IF EXISTS types_my_params");
    t_exec_ok(c, CREATE_PARAMS);
    insert_params(c, NULL);
    evdb_future *f = t_run_ok(c, SELECT_PARAMS, NULL, 0);
    check_params_table(evdb_future_result(f), "conn");
    /* Through the getters, each value is the one sent. */
    const evdb_result *res = evdb_future_result(f);
    int64_t us = 0;
    uint64_t u = 0;
    uint8_t uuid[16];
    evdb_interval iv;
    ck_assert_int_eq(evdb_result_timestamp(res, 0, 11, &us), 0);
    ck_assert(us == wall_us(2024, 2, 29, 23, 59, 59, 1));
    ck_assert_int_eq(evdb_result_timestamp(res, 1, 1, &us), 0);
    ck_assert(us == -1);
    ck_assert_int_eq(evdb_result_interval(res, 0, 5, &iv), 0);
    ck_assert(iv.us == -TIME_MAX_US);
    ck_assert_int_eq(evdb_result_uint64(res, 0, 7, &u), 0);
    ck_assert(u == UINT64_MAX);
    ck_assert_int_eq(evdb_result_uuid(res, 0, 9, uuid), 0);
    ck_assert(memcmp(uuid, UUID_A, 16) == 0);
    ck_assert_int_eq(evdb_result_uuid(res, 1, 10, uuid), 0); /* CHAR(36): text */
    ck_assert(memcmp(uuid, UUID_FF, 16) == 0);
    evdb_future_unref(f);

    /* Comparisons on the server with parameters of each type: a wrong
     * sign, zone, fraction or digit finds no row. */
    ck_assert_int_eq(count_where(c, "ub = ?", evdb_uint(UINT64_MAX)), 1);
    ck_assert_int_eq(count_where(c, "ub = ?", evdb_uint((uint64_t)INT64_MAX + 1)), 1);
    ck_assert_int_eq(
        count_where(c, "dt6 = ?", evdb_timestamp(wall_us(9999, 12, 31, 23, 59, 59, 999999))), 1);
    ck_assert_int_eq(count_where(c, "dt6 = ?", evdb_timestamp(-1)), 1);
    ck_assert_int_eq(count_where(c, "d = ?", evdb_date(days_of(1000, 1, 1))), 1);
    ck_assert_int_eq(count_where(c, "t6 = ?", evdb_time(-1)), 1);
    ck_assert_int_eq(count_where(c, "iv = ?", evdb_interval_value(0, 0, -TIME_MAX_US)), 1);
    ck_assert_int_eq(count_where(c, "u = ?", evdb_uuid(UUID_A)), 1);
    ck_assert_int_eq(count_where(c, "uc = ?", evdb_uuid(UUID_FF)), 1);
    ck_assert_int_eq(count_where(c, "dec65 = ?", evdb_numeric("-1e-30")), 1);
    ck_assert_int_eq(count_where(c, "tz = ?", evdb_timestamptz(0)), 1);
    ck_assert_int_eq(count_where(c, "JSON_EXTRACT(j, '$.a[1]') = ?", evdb_text("b")), 1);

    /* Values straight back: the server's view of each parameter. */
    evdb_value ps[] = {evdb_numeric("1.5e3"), evdb_time(-TIME_MAX_US), evdb_uint(UINT64_MAX),
                       evdb_date(days_of(2024, 2, 29))};
    f = t_run_ok(c, "SELECT CAST(? AS DECIMAL(10,2)), ?, ?, ?", ps, 4);
    const evdb_result *r = evdb_future_result(f);
    t_expect_cell(r, 0, 0, "1500.00");
    t_expect_cell(r, 0, 1, "-838:59:59.999999");
    t_expect_cell(r, 0, 2, "18446744073709551615");
    t_expect_cell(r, 0, 3, "2024-02-29");
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

START_TEST(my_params_pooled)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    t_exec_ok(c, "DROP TABLE IF EXISTS types_my_params");
    t_exec_ok(c, CREATE_PARAMS);
    t_conn_close(c);
    evdb_pool *p = t_pool_new(L, t_my_url(), NULL);
    insert_params(NULL, p);
    evdb_future *f = t_pool_run_ok(p, SELECT_PARAMS, NULL, 0);
    check_params_table(evdb_future_result(f), "pool");
    evdb_future_unref(f);
    t_pool_close(p);
}
END_TEST

/* What MariaDB cannot take fails the query with a clear code and
 * message naming the parameter, before anything is sent; the connection
 * (or pool) serves on. */
typedef struct refusal {
    evdb_value v;
    int code;
    const char *words; /* in the message */
} refusal;

static void check_refusals(evdb_conn *c, evdb_pool *p)
{
    static const int64_t ints[] = {1, 2, 3};
    const refusal all[] = {
        {evdb_array_int64(ints, 3), EVDB_ENOTSUP, "no arrays"},
        {evdb_timetz(0, 3600), EVDB_ENOTSUP, "time zone"},
        {evdb_interval_value(1, 0, 0), EVDB_ENOTSUP, "months or days"},
        {evdb_interval_value(0, 1, 0), EVDB_ENOTSUP, "months or days"},
        {evdb_interval_value(0, 0, TIME_MAX_US + 1), EVDB_EINVAL, "TIME range"},
        {evdb_date(EVDB_DATE_INFINITY), EVDB_ENOTSUP, "infinite"},
        {evdb_timestamp(EVDB_TIMESTAMP_NEG_INFINITY), EVDB_ENOTSUP, "infinite"},
        {evdb_timestamptz(EVDB_TIMESTAMP_INFINITY), EVDB_ENOTSUP, "infinite"},
        {evdb_timestamp(wall_us(10000, 1, 1, 0, 0, 0, 0)), EVDB_EINVAL, "9999"},
        {evdb_timestamp(wall_us(-1, 12, 31, 23, 59, 59, 999999)), EVDB_EINVAL, "0000"},
        {evdb_date(days_of(10000, 1, 1)), EVDB_EINVAL, "9999"},
        {evdb_time(TIME_MAX_US + 1), EVDB_EINVAL, "TIME range"},
        {evdb_time(-TIME_MAX_US - 1), EVDB_EINVAL, "TIME range"},
        {evdb_numeric("NaN"), EVDB_ENOTSUP, "NaN"},
        {evdb_numeric("-Infinity"), EVDB_ENOTSUP, "NaN or infinities"},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        evdb_value ps[2] = {evdb_int(1), all[i].v};
        evdb_future *f = c ? evdb_conn_query(c, "SELECT ?, ?", ps, 2, NULL)
                           : evdb_pool_query(p, "SELECT ?, ?", ps, 2, NULL);
        if (!f) {
            /* The core's own checks at submit (a value no backend
             * takes) refuse it at once, without a future. */
            const evdb_error *e = evdb_last_error();
            ck_assert_msg(evdb_error_code(e) == all[i].code &&
                              strstr(evdb_error_message(e), "parameter 2"),
                          "case %zu: refused at once: %s", i, evdb_error_message(e));
            continue;
        }
        t_expect_fail(f, all[i].code, NULL);
        const char *msg = evdb_error_message(evdb_future_error(f));
        ck_assert_msg(strstr(msg, "parameter 2") && strstr(msg, all[i].words),
                      "case %zu: message '%s'", i, msg);
        evdb_future_unref(f);
    }
    /* The edges themselves go. */
    evdb_value ok[] = {evdb_time(TIME_MAX_US), evdb_time(-TIME_MAX_US),
                       evdb_timestamp(wall_us(0, 1, 1, 0, 0, 0, 0)),
                       evdb_interval_value(0, 0, TIME_MAX_US)};
    evdb_future *f =
        c ? t_run_ok(c, "SELECT ?, ?, ?, ?", ok, 4) : t_pool_run_ok(p, "SELECT ?, ?, ?, ?", ok, 4);
    t_expect_cell(evdb_future_result(f), 0, 0, "838:59:59.999999");
    t_expect_cell(evdb_future_result(f), 0, 1, "-838:59:59.999999");
    /* The server gives a parameter without a fraction no decimals. */
    t_expect_cell(evdb_future_result(f), 0, 2, "0000-01-01 00:00:00");
    evdb_future_unref(f);
}

START_TEST(my_params_refused)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    check_refusals(c, NULL);
    ck_assert_int_eq(t_query_int(c, "SELECT 42"), 42);
    t_conn_close(c);
    evdb_pool *p = t_pool_new(L, t_my_url(), NULL);
    check_refusals(NULL, p);
    ck_assert_int_eq(t_pool_int(p, "SELECT 42"), 42);
    t_pool_close(p);
}
END_TEST

/* A batch's statements are checked the same way, all before the first
 * is sent: the message names the statement, and the statements before it
 * did not run. Typed parameters go through batches too. */
START_TEST(my_batch_params)
{
    evdb_conn *c = t_conn_open(L, t_my_url(), NULL);
    t_exec_ok(c, "DROP TABLE IF EXISTS types_my_batch");
    t_exec_ok(c, "CREATE TABLE types_my_batch (t TIME(6), u BIGINT UNSIGNED, dt DATETIME(6))");
    static const int64_t ints[] = {1};
    evdb_value ok[] = {evdb_time(-TIME_MAX_US), evdb_uint(UINT64_MAX),
                       evdb_timestamp(wall_us(2024, 2, 29, 1, 2, 3, 4))};
    evdb_value bad[] = {evdb_array_int64(ints, 1)};
    evdb_stmt refused[] = {
        {"INSERT INTO types_my_batch VALUES (?, ?, ?)", ok, 3},
        {"SELECT COUNT(*) FROM types_my_batch WHERE u IN (?)", bad, 1},
    };
    evdb_future *f = evdb_conn_batch(c, refused, 2, NULL);
    ck_assert_ptr_nonnull(f);
    t_expect_fail(f, EVDB_ENOTSUP, NULL);
    const char *msg = evdb_error_message(evdb_future_error(f));
    ck_assert_msg(strstr(msg, "statement 2, parameter 1") && strstr(msg, "no arrays"),
                  "message '%s'", msg);
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM types_my_batch"), 0);

    evdb_stmt good[] = {{"INSERT INTO types_my_batch VALUES (?, ?, ?)", ok, 3}};
    f = evdb_conn_batch(c, good, 1, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    f = t_run_ok(c, "SELECT t, u, dt FROM types_my_batch", NULL, 0);
    t_expect_cell(evdb_future_result(f), 0, 0, "-838:59:59.999999");
    t_expect_cell(evdb_future_result(f), 0, 1, "18446744073709551615");
    t_expect_cell(evdb_future_result(f), 0, 2, "2024-02-29 01:02:03.000004");
    evdb_future_unref(f);
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
    tcase_add_test(tc, my_params_round_trip);
    tcase_add_test(tc, my_params_pooled);
    tcase_add_test(tc, my_params_refused);
    tcase_add_test(tc, my_batch_params);
    return t_run_suite(s);
}
