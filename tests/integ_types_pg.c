/*
 * PostgreSQL column types against the real server: every evdb type sent
 * as a parameter and read back through the typed getters at its limits
 * (BC dates, leap days, years past 9999 and the ends of both ranges,
 * microseconds, infinities, NaN, negative zero, DST changes in a session
 * whose TimeZone is not UTC), with the server's own text compared where
 * it says more; arrays (empty, with NULLs, 100,000 elements, text with
 * every character the array syntax escapes) and = ANY($1); the same
 * through pooled queries and a task; the DateStyle / IntervalStyle evdb
 * sets, merged with the URL's options, restored by the pool's reset, and
 * EVDB_EFORMAT (never a wrong value) once a session changes them.
 * Malformed text is covered by unit_types.
 */
#include <check.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "postgres/pg_internal.h"
#include "testenv.h"
#include "testutil.h"
#include "tquery.h"
#include "types_text.h"

#define WATCHDOG_S 120.0
#define TEST_TIMEOUT_S 300
#define US INT64_C(1000000)
#define BIG_ARRAY 100000
#define URL_MAX 1024

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
}

static void teardown(void)
{
    t_loop_free(L);
}

/* Runs sql with params on c, asserting it worked; *f to unref. */
static const evdb_result *run(evdb_conn *c, const char *sql, const evdb_value *p, size_t n,
                              evdb_future **f)
{
    *f = t_run_ok(c, sql, p, n);
    const evdb_result *r = evdb_future_result(*f);
    ck_assert_ptr_nonnull(r);
    return r;
}

static int32_t ymd(int32_t y, int m, int d)
{
    int32_t days;
    ck_assert_int_eq(evdb_date_from_ymd(y, m, d, &days), 0);
    return days;
}

/* ---- scalars ---- */

START_TEST(dates_round_trip)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    struct {
        int32_t days;
        const char *text;
    } cases[] = {
        {0, "1970-01-01"},
        {-1, "1969-12-31"},
        {ymd(2000, 2, 29), "2000-02-29"},
        {ymd(1900, 3, 1), "1900-03-01"},
        {ymd(-43, 3, 15), "0044-03-15 BC"},
        {ymd(0, 2, 29), "0001-02-29 BC"},
        {ymd(9999, 12, 31), "9999-12-31"},
        {ymd(10000, 1, 1), "10000-01-01"},
        {EVDB__DATE_MIN, "4714-11-24 BC"},
        {EVDB__DATE_MAX, "5874897-12-31"},
        {EVDB_DATE_INFINITY, "infinity"},
        {EVDB_DATE_NEG_INFINITY, "-infinity"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        evdb_value v = evdb_date(cases[i].days);
        evdb_future *f;
        const evdb_result *r = run(c, "SELECT $1, $1::text", &v, 1, &f);
        ck_assert_int_eq(evdb_result_coltype(r, 0), EVDB_TYPE_DATE);
        ck_assert_str_eq(evdb_result_coltype_name(r, 0), "date");
        int32_t d;
        ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), 0);
        ck_assert_msg(d == cases[i].days, "%s: %d", cases[i].text, (int)d);
        t_expect_cell(r, 0, 1, cases[i].text);
        evdb_future_unref(f);
    }
    /* The server's own edge: a date one day past its range. */
    evdb_value v = evdb_date(EVDB__DATE_MAX + 1);
    evdb_future *f = evdb_conn_query(c, "SELECT $1", &v, 1, NULL);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    t_conn_close(c);
}
END_TEST

START_TEST(timestamps_round_trip)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "SET TIME ZONE 'UTC'");
    struct {
        int64_t us;
        const char *text;
    } cases[] = {
        {0, "1970-01-01 00:00:00"},
        {-1, "1969-12-31 23:59:59.999999"},
        {1, "1970-01-01 00:00:00.000001"},
        {ymd(2000, 2, 29) * EVDB_USECS_PER_DAY + 86399 * US + 999999, "2000-02-29 23:59:59.999999"},
        {ymd(-43, 3, 15) * EVDB_USECS_PER_DAY + 12 * 3600 * US, "0044-03-15 12:00:00 BC"},
        {EVDB__TIMESTAMP_MIN, "4714-11-24 00:00:00 BC"},
        {INT64_MAX - 1, "294247-01-10 04:00:54.775806"},
        {EVDB_TIMESTAMP_INFINITY, "infinity"},
        {EVDB_TIMESTAMP_NEG_INFINITY, "-infinity"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        evdb_value v[2] = {evdb_timestamp(cases[i].us), evdb_timestamptz(cases[i].us)};
        evdb_future *f;
        const evdb_result *r = run(c, "SELECT $1, $1::text, $2, $2::text", v, 2, &f);
        ck_assert_int_eq(evdb_result_coltype(r, 0), EVDB_TYPE_TIMESTAMP);
        ck_assert_int_eq(evdb_result_coltype(r, 2), EVDB_TYPE_TIMESTAMPTZ);
        ck_assert_str_eq(evdb_result_coltype_name(r, 2), "timestamptz");
        int64_t us;
        int32_t off = 1;
        ck_assert_int_eq(evdb_result_timestamp(r, 0, 0, &us), 0);
        ck_assert_msg(us == cases[i].us, "%s: %lld", cases[i].text, (long long)us);
        t_expect_cell(r, 0, 1, cases[i].text);
        ck_assert_int_eq(evdb_result_timestamptz(r, 0, 2, &us, &off), 0);
        ck_assert_int_eq(us, cases[i].us);
        ck_assert_int_eq(off, 0);
        /* The formatter writes what the server writes. */
        char buf[EVDB_TIMESTAMP_TEXT_MAX];
        ck_assert_uint_gt(evdb_timestamp_format(cases[i].us, false, 0, buf, sizeof buf), 0);
        ck_assert_str_eq(buf, cases[i].text);
        evdb_future_unref(f);
    }
    /* PostgreSQL's last years lie beyond int64 microseconds since 1970. */
    evdb_future *f;
    const evdb_result *r = run(c,
                               "SELECT '294276-12-31 23:59:59.999999'::timestamp,"
                               " '294247-01-10 04:00:54.775807'::timestamp,"
                               " '5874897-12-31'::date",
                               NULL, 0, &f);
    int64_t us = 7;
    int32_t d;
    ck_assert_int_eq(evdb_result_timestamp(r, 0, 0, &us), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_timestamp(r, 0, 1, &us), EVDB_ERANGE);
    ck_assert_int_eq(us, 7);
    ck_assert_int_eq(evdb_result_date(r, 0, 2, &d), 0);
    ck_assert_int_eq(d, EVDB__DATE_MAX);
    ck_assert_int_eq(evdb_result_timestamp(r, 0, 2, &us), EVDB_ERANGE);
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* A session in America/New_York across the 2021 DST changes: the instant
 * survives, the offset is the one in force then, and the date is the
 * local one. */
START_TEST(timestamptz_dst)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "SET TIME ZONE 'America/New_York'");
    /* 2021-03-14 07:00 UTC is 03:00 EDT, one microsecond before 01:59:59.999999 EST. */
    int64_t change = (ymd(2021, 3, 14) * INT64_C(86400) + 7 * 3600) * US;
    int64_t fall = (ymd(2021, 11, 7) * INT64_C(86400) + 6 * 3600) * US;
    struct {
        int64_t us;
        int32_t off;
        const char *text;
    } cases[] = {
        {change - 1, -5 * 3600, "2021-03-14 01:59:59.999999-05"},
        {change, -4 * 3600, "2021-03-14 03:00:00-04"},
        {fall - 1, -4 * 3600, "2021-11-07 01:59:59.999999-04"},
        {fall, -5 * 3600, "2021-11-07 01:00:00-05"},
        {ymd(1883, 1, 1) * EVDB_USECS_PER_DAY, -(4 * 3600 + 56 * 60 + 2),
         "1882-12-31 19:03:58-04:56:02"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        evdb_value v = evdb_timestamptz(cases[i].us);
        evdb_future *f;
        const evdb_result *r = run(c, "SELECT $1, $1::text, $1::date", &v, 1, &f);
        int64_t us;
        int32_t off;
        ck_assert_int_eq(evdb_result_timestamptz(r, 0, 0, &us, &off), 0);
        ck_assert_int_eq(us, cases[i].us);
        ck_assert_msg(off == cases[i].off, "%s: %d", cases[i].text, (int)off);
        t_expect_cell(r, 0, 1, cases[i].text);
        int32_t d1, d2;
        ck_assert_int_eq(evdb_result_date(r, 0, 0, &d1), 0);
        ck_assert_int_eq(evdb_result_date(r, 0, 2, &d2), 0);
        ck_assert_int_eq(d1, d2);
        char buf[EVDB_TIMESTAMP_TEXT_MAX];
        evdb_timestamp_format(us, true, off, buf, sizeof buf);
        /* The server shortens "+HH:00" to "+HH". */
        ck_assert_msg(strncmp(buf, cases[i].text, strlen(cases[i].text) - 3) == 0, "%s vs %s", buf,
                      cases[i].text);
        evdb_future_unref(f);
    }
    /* A wall-clock timestamp is not shifted by the zone. */
    evdb_value v = evdb_timestamp(change);
    evdb_future *f;
    const evdb_result *r = run(c, "SELECT $1::text", &v, 1, &f);
    t_expect_cell(r, 0, 0, "2021-03-14 07:00:00");
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

START_TEST(times_intervals_uuids)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    int64_t times[] = {0, 1, 12 * 3600 * US + 345678, EVDB_USECS_PER_DAY - 1, EVDB_USECS_PER_DAY};
    for (size_t i = 0; i < sizeof times / sizeof *times; i++) {
        evdb_value v[2] = {evdb_time(times[i]), evdb_timetz(times[i], -(5 * 3600 + 30 * 60))};
        evdb_future *f;
        const evdb_result *r = run(c, "SELECT $1, $2", v, 2, &f);
        int64_t us;
        int32_t off;
        ck_assert_int_eq(evdb_result_time(r, 0, 0, &us), 0);
        ck_assert_int_eq(us, times[i]);
        ck_assert_int_eq(evdb_result_timetz(r, 0, 1, &us, &off), 0);
        ck_assert_int_eq(us, times[i]);
        ck_assert_int_eq(off, -(5 * 3600 + 30 * 60));
        ck_assert_int_eq(evdb_result_time(r, 0, 1, &us), 0);
        evdb_future_unref(f);
    }
    /* A PostgreSQL time is a time of day. */
    evdb_value v = evdb_time(-1);
    evdb_future *f = t_submit(c, "SELECT $1", &v, 1, 0, 0);
    t_expect_fail(f, EVDB_EINVAL, NULL);
    evdb_future_unref(f);

    evdb_interval ivs[] = {{0, 0, 0},
                           {14, -3, (4 * 3600 + 5 * 60 + 6) * US + 789000},
                           {0, 0, -US},
                           {-14, 3, -(4 * 3600 + 5 * 60 + 6) * US},
                           {INT32_MAX, INT32_MAX, INT64_MAX},
                           {INT32_MIN + 1, INT32_MIN + 1, -INT64_MAX},
                           {1, 0, 0},
                           {0, 1, 0}};
    for (size_t i = 0; i < sizeof ivs / sizeof *ivs; i++) {
        v = evdb_interval_value(ivs[i].months, ivs[i].days, ivs[i].us);
        const evdb_result *r = run(c, "SELECT $1, $1::text", &v, 1, &f);
        evdb_interval iv;
        ck_assert_int_eq(evdb_result_coltype(r, 0), EVDB_TYPE_INTERVAL);
        ck_assert_msg(evdb_result_interval(r, 0, 0, &iv) == 0, "%s",
                      evdb_result_text(r, 0, 1, NULL));
        ck_assert_msg(iv.months == ivs[i].months && iv.days == ivs[i].days && iv.us == ivs[i].us,
                      "%s", evdb_result_text(r, 0, 1, NULL));
        evdb_future_unref(f);
    }

    uint8_t u[16] = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
                     0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11};
    evdb_value uv = evdb_uuid(u);
    const evdb_result *r = run(c, "SELECT $1, $1::text, NULL::uuid", &uv, 1, &f);
    uint8_t back[16];
    ck_assert_int_eq(evdb_result_coltype(r, 0), EVDB_TYPE_UUID);
    ck_assert_int_eq(evdb_result_uuid(r, 0, 0, back), 0);
    ck_assert_mem_eq(back, u, 16);
    t_expect_cell(r, 0, 1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    memset(back, 0, 16);
    ck_assert_int_eq(evdb_result_uuid(r, 0, 1, back), 0);
    ck_assert_mem_eq(back, u, 16);
    ck_assert_int_eq(evdb_result_uuid(r, 0, 2, back), EVDB_ENULL);
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

START_TEST(numbers_json_bits)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_value v[] = {evdb_numeric("-12.3400"),
                      evdb_numeric("NaN"),
                      evdb_numeric("Infinity"),
                      evdb_numeric("-Infinity"),
                      evdb_numeric("123456789012345678901234567890.000000000000000000001"),
                      evdb_numeric("1.5e3"),
                      evdb_uint(UINT64_MAX),
                      evdb_uint(5),
                      evdb_json("{\"a\": [1, 2.5, \"x\"]}"),
                      evdb_double(-0.0)};
    evdb_future *f;
    const evdb_result *r =
        run(c,
            "SELECT $1, $2, $3, $4, $5, $6, $7, $8::int8, $9::jsonb, $9, $10,"
            " B'1010'::varbit, B'1111111111111111111111111111111111111111111111111111111111111111',"
            " '-0'::numeric, 1e-30::numeric",
            v, sizeof v / sizeof *v, &f);
    const char *want[] = {"-12.3400",
                          "NaN",
                          "Infinity",
                          "-Infinity",
                          "123456789012345678901234567890.000000000000000000001",
                          "1500"};
    for (size_t i = 0; i < 6; i++) {
        ck_assert_int_eq(evdb_result_coltype(r, i), EVDB_TYPE_NUMERIC);
        t_expect_cell(r, 0, i, want[i]);
    }
    double d;
    int64_t i64;
    size_t len;
    const char *s = evdb_result_text(r, 0, 0, &len);
    ck_assert_int_eq(evdb_numeric_to_double(s, len, &d), 0);
    ck_assert(d == -12.34);
    ck_assert_int_eq(evdb_numeric_to_int64(s, len, &i64), EVDB_EPRECISION);
    s = evdb_result_text(r, 0, 1, &len);
    ck_assert_int_eq(evdb_numeric_to_double(s, len, &d), 0);
    ck_assert(isnan(d));
    ck_assert_int_eq(evdb_numeric_to_int64(s, len, &i64), EVDB_ERANGE);
    s = evdb_result_text(r, 0, 4, &len);
    ck_assert_int_eq(evdb_numeric_to_double(s, len, &d), EVDB_EPRECISION);
    ck_assert_int_eq(evdb_numeric_to_int64(s, len, &i64), EVDB_ERANGE);
    s = evdb_result_text(r, 0, 5, &len);
    ck_assert_int_eq(evdb_numeric_to_int64(s, len, &i64), 0);
    ck_assert_int_eq(i64, 1500);
    /* uint64 above INT64_MAX travels as a numeric. */
    uint64_t u;
    t_expect_cell(r, 0, 6, "18446744073709551615");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 6, &u), 0);
    ck_assert_uint_eq(u, UINT64_MAX);
    ck_assert_int_eq(evdb_result_uint64(r, 0, 7, &u), 0);
    ck_assert_uint_eq(u, 5);
    ck_assert_int_eq(evdb_result_coltype(r, 8), EVDB_TYPE_JSON);
    ck_assert_str_eq(evdb_result_coltype_name(r, 8), "jsonb");
    t_expect_cell(r, 0, 8, "{\"a\": [1, 2.5, \"x\"]}");
    ck_assert_str_eq(evdb_result_coltype_name(r, 9), "json");
    t_expect_cell(r, 0, 9, "{\"a\": [1, 2.5, \"x\"]}");
    ck_assert_int_eq(evdb_result_double(r, 0, 10, &d), 0);
    ck_assert(d == 0 && signbit(d));
    ck_assert_int_eq(evdb_result_coltype(r, 11), EVDB_TYPE_BITS);
    ck_assert_int_eq(evdb_result_uint64(r, 0, 11, &u), 0);
    ck_assert_uint_eq(u, 10);
    ck_assert_str_eq(evdb_result_coltype_name(r, 12), "bit");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 12, &u), 0);
    ck_assert_uint_eq(u, UINT64_MAX);
    s = evdb_result_text(r, 0, 13, &len);
    ck_assert_int_eq(evdb_numeric_to_int64(s, len, &i64), 0);
    ck_assert_int_eq(i64, 0);
    s = evdb_result_text(r, 0, 14, &len);
    ck_assert_int_eq(evdb_numeric_to_double(s, len, &d), 0);
    ck_assert(d == 1e-30);
    evdb_future_unref(f);
    /* Bad numeric text never reaches the server. */
    evdb_value bad = evdb_numeric("1; SELECT 1");
    ck_assert_ptr_null(evdb_conn_query(c, "SELECT $1", &bad, 1, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    /* jsonb validates; the query fails alone. */
    evdb_value badjson = evdb_json("{nope");
    f = t_submit(c, "SELECT $1::jsonb", &badjson, 1, 0, 0);
    t_expect_fail(f, EVDB_ESERVER, "22P02");
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT 1"), 1);
    t_conn_close(c);
}
END_TEST

/* Getters on columns of other types say so, and never convert. */
START_TEST(wrong_types)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "DROP TYPE IF EXISTS evdb_mood; CREATE TYPE evdb_mood AS ENUM ('ok', 'sad')");
    evdb_future *f;
    const evdb_result *r =
        run(c,
            "SELECT 1::int4, now()::timestamp, '2020-01-01'::date, 'x'::text, 'ok'::evdb_mood,"
            " '1 day'::interval, '{1}'::int4[], '10:00'::time",
            NULL, 0, &f);
    int32_t d;
    int64_t us;
    int32_t off;
    evdb_interval iv;
    uint8_t u[16];
    evdb_array *a;
    ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_timestamptz(r, 0, 1, &us, &off), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_time(r, 0, 2, &us), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_interval(r, 0, 2, &iv), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_uuid(r, 0, 3, u), EVDB_EFORMAT);
    ck_assert_int_eq(evdb_result_coltype(r, 4), EVDB_TYPE_ENUM);
    ck_assert_str_eq(evdb_result_coltype_name(r, 4), "evdb_mood");
    t_expect_cell(r, 0, 4, "ok");
    ck_assert_int_eq(evdb_result_array(r, 0, 5, &a), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_coltype(r, 6), EVDB_TYPE_ARRAY);
    ck_assert_int_eq(evdb_result_coltype_elem(r, 6), EVDB_TYPE_INT);
    ck_assert_str_eq(evdb_result_coltype_name(r, 6), "_int4");
    ck_assert_int_eq(evdb_result_interval(r, 0, 7, &iv), 0);
    ck_assert_int_eq(iv.us, 10 * 3600 * US);
    evdb_future_unref(f);
    t_exec_ok(c, "DROP TYPE evdb_mood");
    /* Every OID in the table is found (the table is searched in halves,
     * so an entry out of order would be lost). */
    Oid oids[] = {16,   17,   18,   19,   20,   21,   23,   25,   26,   114,  199,  700,  701,
                  1000, 1001, 1002, 1003, 1005, 1007, 1009, 1014, 1015, 1016, 1021, 1022, 1028,
                  1042, 1043, 1082, 1083, 1114, 1115, 1182, 1183, 1184, 1185, 1186, 1187, 1231,
                  1266, 1270, 1560, 1561, 1562, 1563, 1700, 2950, 2951, 3802, 3807};
    for (size_t i = 0; i < sizeof oids / sizeof *oids; i++) {
        const char *name;
        evdb_type elem;
        ck_assert_int_ne(evdb__pg_type(oids[i], &elem, &name), EVDB_TYPE_OTHER);
        ck_assert_ptr_nonnull(name);
        ck_assert_int_eq(elem != EVDB_TYPE_NULL, name[0] == '_');
    }
    t_conn_close(c);
}
END_TEST

/* ---- arrays ---- */

static const char *const TEXTS[] = {"plain",
                                    "a,b",
                                    "quote\"d",
                                    "back\\slash",
                                    "{braces}",
                                    "NULL",
                                    "null",
                                    "",
                                    " spaces ",
                                    "h\xc3\xa9llo \xe2\x82\xac",
                                    "\xf0\x9f\x98\x80",
                                    "tab\there",
                                    "new\nline",
                                    "'single'",
                                    "}"};
#define NTEXTS (sizeof TEXTS / sizeof *TEXTS)

static void check_text_array(const evdb_result *r, size_t col, const char *const *want, size_t n)
{
    evdb_array *a;
    ck_assert_int_eq(evdb_result_array(r, 0, col, &a), 0);
    ck_assert_uint_eq(evdb_array_len(a), n);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *t = evdb_array_get_text(a, i, &len);
        if (!want[i]) {
            ck_assert(evdb_array_isnull(a, i));
            ck_assert_ptr_null(t);
        } else {
            ck_assert_ptr_nonnull(t);
            ck_assert_uint_eq(len, strlen(want[i]));
            ck_assert_str_eq(t, want[i]);
        }
    }
    evdb_array_free(a);
}

START_TEST(arrays_round_trip)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    const char *texts[NTEXTS + 1];
    memcpy(texts, TEXTS, sizeof TEXTS);
    texts[NTEXTS] = NULL;
    int64_t ints[] = {0, -1, INT64_MAX, INT64_MIN};
    double dbl[] = {0.1, -0.0, INFINITY, -INFINITY, NAN};
    bool bools[] = {true, false};
    evdb_value nulls[] = {evdb_int(1), evdb_null(), evdb_int(3)};
    evdb_value v[] = {evdb_array_text(texts, NTEXTS + 1),
                      evdb_array_int64(ints, 4),
                      evdb_array_double(dbl, 5),
                      evdb_array_bool(bools, 2),
                      evdb_array_values(nulls, 3),
                      evdb_array_int64(NULL, 0),
                      evdb_array_text(NULL, 0)};
    evdb_future *f;
    const evdb_result *r = run(c,
                               "SELECT $1, $2, $3, $4, $5, $6, $7, array_length($1, 1),"
                               " $1[6] IS NOT NULL AND $1[6] = 'NULL', $5[2] IS NULL",
                               v, sizeof v / sizeof *v, &f);
    ck_assert_str_eq(evdb_result_coltype_name(r, 0), "_text");
    ck_assert_int_eq(evdb_result_coltype_elem(r, 0), EVDB_TYPE_TEXT);
    check_text_array(r, 0, texts, NTEXTS + 1);
    ck_assert_int_eq(t_cell_int(r, 0, 7), NTEXTS + 1);
    t_expect_cell(r, 0, 8, "t");
    t_expect_cell(r, 0, 9, "t");
    evdb_array *a;
    ck_assert_int_eq(evdb_result_array(r, 0, 1, &a), 0);
    ck_assert_uint_eq(evdb_array_len(a), 4);
    for (size_t i = 0; i < 4; i++) {
        int64_t x;
        ck_assert_int_eq(evdb_array_get_int(a, i, &x), 0);
        ck_assert_int_eq(x, ints[i]);
    }
    evdb_array_free(a);
    ck_assert_int_eq(evdb_result_array(r, 0, 2, &a), 0);
    ck_assert_int_eq(evdb_array_elemtype(a), EVDB_TYPE_DOUBLE);
    for (size_t i = 0; i < 5; i++) {
        double x;
        ck_assert_int_eq(evdb_array_get_double(a, i, &x), 0);
        ck_assert(isnan(dbl[i]) ? isnan(x) : x == dbl[i] && signbit(x) == signbit(dbl[i]));
    }
    evdb_array_free(a);
    ck_assert_int_eq(evdb_result_array(r, 0, 3, &a), 0);
    bool b;
    ck_assert_int_eq(evdb_array_get_bool(a, 0, &b), 0);
    ck_assert(b);
    ck_assert_int_eq(evdb_array_get_bool(a, 1, &b), 0);
    ck_assert(!b);
    evdb_array_free(a);
    ck_assert_int_eq(evdb_result_array(r, 0, 4, &a), 0);
    ck_assert_uint_eq(evdb_array_len(a), 3);
    ck_assert(evdb_array_isnull(a, 1));
    evdb_array_free(a);
    for (size_t col = 5; col <= 6; col++) {
        ck_assert_int_eq(evdb_result_array(r, 0, col, &a), 0);
        ck_assert_uint_eq(evdb_array_len(a), 0);
        evdb_array_free(a);
    }
    evdb_future_unref(f);

    /* Arrays of the other types through evdb_array_values. */
    uint8_t u[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    evdb_value dates[] = {evdb_date(ymd(-43, 3, 15)), evdb_null(), evdb_date(EVDB_DATE_INFINITY)};
    evdb_value tstz[] = {evdb_timestamptz(-1), evdb_timestamptz(EVDB__TIMESTAMP_MIN)};
    evdb_value uuids[] = {evdb_uuid(u), evdb_null()};
    evdb_value nums[] = {evdb_numeric("-1.50"), evdb_null(), evdb_numeric("NaN")};
    evdb_value byts[] = {evdb_bytes("\0\xff", 2), evdb_bytes("", 0)};
    evdb_value ivs[] = {evdb_interval_value(1, 2, 3)};
    evdb_value w[] = {evdb_array_values(dates, 3), evdb_array_values(tstz, 2),
                      evdb_array_values(uuids, 2), evdb_array_values(nums, 3),
                      evdb_array_values(byts, 2),  evdb_array_values(ivs, 1)};
    r = run(c, "SET TIME ZONE 'Asia/Kolkata'; SELECT 1", NULL, 0, &f);
    evdb_future_unref(f);
    r = run(c, "SELECT $1, $2, $3, $4, $5, $6::text", w, 6, &f);
    ck_assert_str_eq(evdb_result_coltype_name(r, 0), "_date");
    ck_assert_int_eq(evdb_result_array(r, 0, 0, &a), 0);
    int32_t d;
    ck_assert_int_eq(evdb_array_get_date(a, 0, &d), 0);
    ck_assert_int_eq(d, ymd(-43, 3, 15));
    ck_assert_int_eq(evdb_array_get_date(a, 1, &d), EVDB_ENULL);
    ck_assert_int_eq(evdb_array_get_date(a, 2, &d), 0);
    ck_assert_int_eq(d, EVDB_DATE_INFINITY);
    evdb_array_free(a);
    ck_assert_int_eq(evdb_result_array(r, 0, 1, &a), 0);
    int64_t us;
    int32_t off;
    ck_assert_int_eq(evdb_array_get_timestamptz(a, 0, &us, &off), 0);
    ck_assert_int_eq(us, -1);
    ck_assert_int_eq(off, 5 * 3600 + 30 * 60);
    ck_assert_int_eq(evdb_array_get_timestamptz(a, 1, &us, &off), 0);
    ck_assert_int_eq(us, EVDB__TIMESTAMP_MIN);
    evdb_array_free(a);
    ck_assert_int_eq(evdb_result_array(r, 0, 2, &a), 0);
    uint8_t back[16];
    ck_assert_int_eq(evdb_array_get_uuid(a, 0, back), 0);
    ck_assert_mem_eq(back, u, 16);
    evdb_array_free(a);
    ck_assert_str_eq(evdb_result_coltype_name(r, 3), "_numeric");
    check_text_array(r, 3, (const char *[]){"-1.50", NULL, "NaN"}, 3);
    ck_assert_int_eq(evdb_result_array(r, 0, 4, &a), 0);
    size_t len;
    const unsigned char *by = evdb_array_get_bytes(a, 0, &len);
    ck_assert_uint_eq(len, 2);
    ck_assert(by[0] == 0 && by[1] == 0xff);
    evdb_array_get_bytes(a, 1, &len);
    ck_assert_uint_eq(len, 0);
    evdb_array_free(a);
    t_expect_cell(r, 0, 5, "{\"1 mon 2 days 00:00:00.000003\"}");
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

START_TEST(arrays_big_and_any)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    int64_t *ints = malloc(BIG_ARRAY * sizeof *ints);
    for (size_t i = 0; i < BIG_ARRAY; i++)
        ints[i] = (int64_t)i * 3 - 7;
    evdb_value v = evdb_array_int64(ints, BIG_ARRAY);
    evdb_future *f;
    const evdb_result *r = run(c, "SELECT $1, cardinality($1), $1[100000]", &v, 1, &f);
    evdb_array *a;
    ck_assert_int_eq(evdb_result_array(r, 0, 0, &a), 0);
    ck_assert_uint_eq(evdb_array_len(a), BIG_ARRAY);
    for (size_t i = 0; i < BIG_ARRAY; i++) {
        int64_t x;
        ck_assert_int_eq(evdb_array_get_int(a, i, &x), 0);
        ck_assert_int_eq(x, ints[i]);
    }
    evdb_array_free(a);
    ck_assert_int_eq(t_cell_int(r, 0, 1), BIG_ARRAY);
    ck_assert_int_eq(t_cell_int(r, 0, 2), ints[BIG_ARRAY - 1]);
    evdb_future_unref(f);
    free(ints);

    /* = ANY($1) with int and text arrays on an int4 and a varchar column. */
    t_exec_ok(c, "CREATE TEMP TABLE evdb_any (id int4 PRIMARY KEY, name varchar(40))");
    t_exec_ok(c, "INSERT INTO evdb_any SELECT g, 'n' || g FROM generate_series(1, 1000) g");
    t_exec_ok(c, "INSERT INTO evdb_any VALUES (1001, 'a,b'), (1002, 'NULL'), (1003, 'q\"\\')");
    int64_t want[] = {5, 999, 4000, -1, 1001};
    v = evdb_array_int64(want, 5);
    r = run(c, "SELECT count(*), sum(id) FROM evdb_any WHERE id = ANY($1)", &v, 1, &f);
    ck_assert_int_eq(t_cell_int(r, 0, 0), 3);
    ck_assert_int_eq(t_cell_int(r, 0, 1), 5 + 999 + 1001);
    evdb_future_unref(f);
    const char *names[] = {"n7", "a,b", "NULL", "q\"\\", "missing", NULL};
    v = evdb_array_text(names, 6);
    r = run(c, "SELECT array_agg(id ORDER BY id) FROM evdb_any WHERE name = ANY($1)", &v, 1, &f);
    t_expect_cell(r, 0, 0, "{7,1001,1002,1003}");
    evdb_future_unref(f);
    /* An empty array matches nothing. */
    v = evdb_array_int64(NULL, 0);
    r = run(c, "SELECT count(*) FROM evdb_any WHERE id = ANY($1)", &v, 1, &f);
    ck_assert_int_eq(t_cell_int(r, 0, 0), 0);
    evdb_future_unref(f);
    /* Multi-dimensional arrays are refused, not misread. */
    r = run(c, "SELECT '{{1,2},{3,4}}'::int[], '[0:1]={5,6}'::int[]", NULL, 0, &f);
    ck_assert_int_eq(evdb_result_array(r, 0, 0, &a), EVDB_ENOTSUP);
    ck_assert_int_eq(evdb_result_array(r, 0, 1, &a), 0);
    ck_assert_uint_eq(evdb_array_len(a), 2);
    evdb_array_free(a);
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* ---- session settings ---- */

START_TEST(settings_and_user_changes)
{
    /* The URL's own options are kept; DateStyle in them is overridden. */
    char url[URL_MAX];
    snprintf(url, sizeof url,
             "%s%soptions=-c%%20statement_timeout%%3D12345%%20-c%%20DateStyle%%3DSQL", t_pg_url(),
             strchr(t_pg_url(), '?') ? "&" : "?");
    evdb_conn *c = t_conn_open(L, url, NULL);
    evdb_future *f;
    const evdb_result *r =
        run(c,
            "SELECT current_setting('statement_timeout'), current_setting('DateStyle'),"
            " current_setting('IntervalStyle')",
            NULL, 0, &f);
    t_expect_cell(r, 0, 0, "12345ms");
    t_expect_cell(r, 0, 1, "ISO, MDY");
    t_expect_cell(r, 0, 2, "postgres");
    evdb_future_unref(f);
    /* A session that changes them gets EVDB_EFORMAT, not a wrong value. */
    t_exec_ok(c, "SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'iso_8601'");
    r = run(c,
            "SELECT '2020-03-04'::date, '2020-03-04 05:06:07'::timestamp, '1 day'::interval,"
            " '{2020-03-04}'::date[]",
            NULL, 0, &f);
    int32_t d = 7;
    int64_t us = 7;
    evdb_interval iv = {7, 7, 7};
    ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), EVDB_EFORMAT);
    ck_assert_int_eq(evdb_result_timestamp(r, 0, 1, &us), EVDB_EFORMAT);
    ck_assert_int_eq(evdb_result_interval(r, 0, 2, &iv), EVDB_EFORMAT);
    evdb_array *a;
    ck_assert_int_eq(evdb_result_array(r, 0, 3, &a), 0);
    ck_assert_int_eq(evdb_array_get_date(a, 0, &d), EVDB_EFORMAT);
    evdb_array_free(a);
    ck_assert_int_eq(d, 7);
    ck_assert_int_eq(us, 7);
    ck_assert_int_eq(iv.months, 7);
    evdb_future_unref(f);
    /* Parameters are binary: the style does not matter to them. */
    evdb_value p = evdb_date(ymd(2020, 3, 4));
    ck_assert_int_eq(t_query_int(c, "SELECT 1"), 1);
    r = run(c, "SELECT $1 = '2020-03-04'::date", &p, 1, &f);
    evdb_future_unref(f);
    /* RESET ALL restores evdb's startup values. */
    t_exec_ok(c, "RESET ALL");
    r = run(c, "SELECT '2020-03-04'::date, current_setting('statement_timeout')", NULL, 0, &f);
    ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), 0);
    ck_assert_int_eq(d, ymd(2020, 3, 4));
    t_expect_cell(r, 0, 1, "12345ms");
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* Through a pool: a borrower's SET is undone by the release's reset, and
 * typed values and arrays work in pooled queries. */
/* ---- enums, domains, extension types (the per-connection catalog) ---- */

/* Column col of r has evdb type t and type name name. */
static void expect_col(const evdb_result *r, size_t col, evdb_type t, const char *name)
{
    ck_assert_int_eq(evdb_result_coltype(r, col), t);
    ck_assert_str_eq(evdb_result_coltype_name(r, col), name);
}

/* Fresh user types for one test (dropped first: a failed run may have
 * left them), made over a connection of their own. */
static void make_user_types(const char *ddl)
{
    evdb_conn *a = t_conn_open(L, t_pg_url(), NULL);
    /* Either name may be a domain or an enum (types_created_later swaps
     * them). */
    t_exec_ok(a, "DROP TABLE IF EXISTS evdb_tc_t; DO $$ DECLARE r record; BEGIN"
                 " FOR r IN SELECT typname, typtype FROM pg_type WHERE typname IN"
                 " ('evdb_tc_mood', 'evdb_tc_posint') AND typnamespace = 'public'::regnamespace"
                 " LOOP EXECUTE format(CASE r.typtype WHEN 'd' THEN 'DROP DOMAIN %I CASCADE'"
                 " ELSE 'DROP TYPE %I CASCADE' END, r.typname); END LOOP; END $$");
    if (ddl)
        t_exec_ok(a, ddl);
    t_conn_close(a);
}

static const char user_types_ddl[] =
    "CREATE TYPE evdb_tc_mood AS ENUM ('sad', 'ok', 'happy');"
    " CREATE DOMAIN evdb_tc_posint AS int4 CHECK (VALUE > 0);"
    " CREATE TABLE evdb_tc_t (m evdb_tc_mood, ms evdb_tc_mood[], p evdb_tc_posint);"
    " INSERT INTO evdb_tc_t VALUES ('happy', '{sad,ok}', 42)";

/* Reads evdb_tc_t on c and checks every column's type and value. */
static void check_user_table(evdb_conn *c)
{
    evdb_future *f;
    const evdb_result *r = run(c, "SELECT m, ms, p, ARRAY[p::int4] FROM evdb_tc_t", NULL, 0, &f);
    expect_col(r, 0, EVDB_TYPE_ENUM, "evdb_tc_mood");
    t_expect_cell(r, 0, 0, "happy");
    expect_col(r, 1, EVDB_TYPE_ARRAY, "_evdb_tc_mood");
    ck_assert_int_eq(evdb_result_coltype_elem(r, 1), EVDB_TYPE_ENUM);
    evdb_array *a;
    ck_assert_int_eq(evdb_result_array(r, 0, 1, &a), 0);
    ck_assert_uint_eq(evdb_array_len(a), 2);
    ck_assert_str_eq(evdb_array_get_text(a, 1, NULL), "ok");
    evdb_array_free(a);
    /* The server describes a domain's column by its base type. */
    expect_col(r, 2, EVDB_TYPE_INT, "int4");
    int64_t v = 0;
    ck_assert_int_eq(evdb_result_int(r, 0, 2, &v), 0);
    ck_assert_int_eq(v, 42);
    expect_col(r, 3, EVDB_TYPE_ARRAY, "_int4");
    evdb_future_unref(f);
}

START_TEST(enum_domain_types)
{
    make_user_types(user_types_ddl);
    /* Pipelined and one query at a time: the catalog goes ahead of the
     * first query either way. */
    static const unsigned depths[] = {0, 1};
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        evdb_conn_opts o;
        memset(&o, 0, sizeof o);
        o.pipeline_depth = depths[i];
        evdb_conn *c = t_conn_open(L, t_pg_url(), &o);
        check_user_table(c);
        /* A parameter of the enum (sent as text, typed by the server). */
        evdb_value p = evdb_text("ok");
        evdb_future *f;
        const evdb_result *r =
            run(c, "SELECT $1::evdb_tc_mood, count(*) FROM evdb_tc_t", &p, 1, &f);
        expect_col(r, 0, EVDB_TYPE_ENUM, "evdb_tc_mood");
        t_expect_cell(r, 0, 0, "ok");
        evdb_future_unref(f);
        /* Built-in types outside the static table are looked up too: the
         * first result says OTHER without a name, a later one knows it. */
        r = run(c, "SELECT '10.0.0.1'::inet", NULL, 0, &f);
        ck_assert_int_eq(evdb_result_coltype(r, 0), EVDB_TYPE_OTHER);
        t_expect_cell(r, 0, 0, "10.0.0.1");
        evdb_future_unref(f);
        r = run(c, "SELECT '10.0.0.1'::inet", NULL, 0, &f);
        expect_col(r, 0, EVDB_TYPE_OTHER, "inet");
        evdb_future_unref(f);
        t_conn_close(c);
    }
    /* Pooled. */
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.max_conns = 2;
    evdb_pool *pool = t_pool_new(L, t_pg_url(), &po);
    for (int i = 0; i < 4; i++) {
        evdb_future *f = t_pool_run_ok(pool, "SELECT m, p FROM evdb_tc_t", NULL, 0);
        const evdb_result *r = evdb_future_result(f);
        expect_col(r, 0, EVDB_TYPE_ENUM, "evdb_tc_mood");
        expect_col(r, 1, EVDB_TYPE_INT, "int4");
        evdb_future_unref(f);
    }
    t_pool_close(pool);
    make_user_types(NULL);
}
END_TEST

START_TEST(types_created_later)
{
    make_user_types(NULL);
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_conn *other = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "SELECT 1");
    t_exec_ok(other, "SELECT 1");
    /* Created on c itself: the DDL reloads c's catalog before its next
     * query. */
    t_exec_ok(c, user_types_ddl);
    check_user_table(c);
    /* Seen first on another connection: that result says OTHER without a
     * name (it is not held back), the next one knows the type. */
    evdb_future *f;
    const evdb_result *r = run(other, "SELECT m FROM evdb_tc_t", NULL, 0, &f);
    ck_assert_int_eq(evdb_result_coltype(r, 0), EVDB_TYPE_OTHER);
    ck_assert_str_eq(evdb_result_coltype_name(r, 0), "");
    t_expect_cell(r, 0, 0, "happy");
    evdb_future_unref(f);
    check_user_table(other);
    /* DROP TYPE + CREATE TYPE with the same name: a new OID and another
     * kind of type; the old entry must not answer for it. */
    t_exec_ok(c, "DROP TABLE evdb_tc_t; DROP TYPE evdb_tc_mood; DROP DOMAIN evdb_tc_posint;"
                 " CREATE DOMAIN evdb_tc_mood AS float8; CREATE TYPE evdb_tc_posint AS ENUM"
                 " ('x'); CREATE TABLE evdb_tc_t (m evdb_tc_mood, p evdb_tc_posint);"
                 " INSERT INTO evdb_tc_t VALUES (1.5, 'x')");
    r = run(c, "SELECT m, p FROM evdb_tc_t", NULL, 0, &f);
    expect_col(r, 0, EVDB_TYPE_DOUBLE, "float8");
    expect_col(r, 1, EVDB_TYPE_ENUM, "evdb_tc_posint");
    double d = 0;
    ck_assert_int_eq(evdb_result_double(r, 0, 0, &d), 0);
    ck_assert(d == 1.5);
    evdb_future_unref(f);
    /* The other connection: new OIDs, looked up on sight. */
    r = run(other, "SELECT m, p FROM evdb_tc_t", NULL, 0, &f);
    ck_assert_int_eq(evdb_result_coltype(r, 1), EVDB_TYPE_OTHER);
    evdb_future_unref(f);
    r = run(other, "SELECT m, p FROM evdb_tc_t", NULL, 0, &f);
    expect_col(r, 0, EVDB_TYPE_DOUBLE, "float8");
    expect_col(r, 1, EVDB_TYPE_ENUM, "evdb_tc_posint");
    evdb_future_unref(f);
    t_conn_close(other);
    t_conn_close(c);
    make_user_types(NULL);
}
END_TEST

START_TEST(extension_types)
{
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    const char *ext = NULL;
    static const char *const candidates[] = {"citext", "hstore"};
    for (size_t i = 0; i < 2 && !ext; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_available_extensions WHERE name = '%s'",
                 candidates[i]);
        if (t_query_int(admin, sql) == 1)
            ext = candidates[i];
    }
    if (!ext) {
        fprintf(stderr, "extension_types: neither citext nor hstore is installed: skipped\n");
        t_conn_close(admin);
        return;
    }
    char sql[160];
    snprintf(sql, sizeof sql, "CREATE EXTENSION IF NOT EXISTS %s", ext);
    t_exec_ok(admin, sql);
    t_conn_close(admin);
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_future *f;
    const evdb_result *r;
    if (!strcmp(ext, "citext")) {
        r = run(c, "SELECT 'MiXeD'::citext, 'mixed'::citext = 'MIXED', '{a,B}'::citext[]", NULL, 0,
                &f);
        /* The server files citext under strings: text. */
        expect_col(r, 0, EVDB_TYPE_TEXT, "citext");
        t_expect_cell(r, 0, 0, "MiXeD");
        t_expect_cell(r, 0, 1, "t");
        expect_col(r, 2, EVDB_TYPE_ARRAY, "_citext");
        ck_assert_int_eq(evdb_result_coltype_elem(r, 2), EVDB_TYPE_TEXT);
    } else {
        r = run(c, "SELECT 'a=>1'::hstore", NULL, 0, &f);
        expect_col(r, 0, EVDB_TYPE_OTHER, "hstore");
        t_expect_cell(r, 0, 0, "\"a\"=>\"1\"");
    }
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

START_TEST(pool_and_task)
{
    evdb_pool_opts o;
    memset(&o, 0, sizeof o);
    o.max_conns = 1;
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    evdb_future *af = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(af), 0);
    evdb_conn *c = evdb_future_take_conn(af);
    evdb_future_unref(af);
    t_exec_ok(c, "SET DateStyle = 'German'");
    ck_assert_int_eq(evdb_conn_release(c), 0);
    int64_t ids[] = {3, 5, 7};
    evdb_value v[] = {evdb_array_int64(ids, 3), evdb_timestamptz(0),
                      evdb_uuid((const uint8_t *)"0123456789abcdef")};
    evdb_future *f = t_pool_run_ok(
        p, "SELECT '2020-03-04'::date, $1, $2, $3, current_setting('DateStyle')", v, 3);
    const evdb_result *r = evdb_future_result(f);
    int32_t d;
    ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), 0);
    ck_assert_int_eq(d, ymd(2020, 3, 4));
    t_expect_cell(r, 0, 4, "ISO, MDY");
    evdb_array *a;
    ck_assert_int_eq(evdb_result_array(r, 0, 1, &a), 0);
    ck_assert_uint_eq(evdb_array_len(a), 3);
    evdb_array_free(a);
    int64_t us;
    ck_assert_int_eq(evdb_result_timestamp(r, 0, 2, &us), 0);
    ck_assert_int_eq(us, 0);
    uint8_t u[16];
    ck_assert_int_eq(evdb_result_uuid(r, 0, 3, u), 0);
    ck_assert_mem_eq(u, "0123456789abcdef", 16);
    evdb_future_unref(f);
    /* The same query as t_pool_submit with a timeout. */
    f = t_pool_submit(p, "SELECT x FROM unnest($1) x WHERE x > 3", v, 1, 10.0, 0);
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_uint_eq(evdb_result_nrows(evdb_future_result(f)), 2);
    evdb_future_unref(f);
    t_pool_close(p);
}
END_TEST

typedef struct task_arg {
    evdb_pool *pool;
    int calls;
    int64_t got;
} task_arg;

static void *types_task(void *arg)
{
    task_arg *t = arg;
    t->calls++;
    const char *names[] = {"x", "y,z", NULL};
    evdb_value v[] = {evdb_array_text(names, 3), evdb_interval_value(0, 1, -US)};
    evdb_future *q = evdb_pool_query(t->pool, "SELECT cardinality($1), $2", v, 2, NULL);
    if (!q)
        return evdb_task_fail_error(evdb_last_error());
    if (evdb_await(q)) {
        void *r = evdb_task_fail_error(evdb_future_error(q));
        evdb_future_unref(q);
        return r;
    }
    const evdb_result *r = evdb_future_result(q);
    evdb_interval iv;
    if (evdb_result_int(r, 0, 0, &t->got) || evdb_result_interval(r, 0, 1, &iv) || iv.days != 1 ||
        iv.us != -US) {
        evdb_future_unref(q);
        return evdb_task_fail(EVDB_EPROTO, "wrong values");
    }
    evdb_future_unref(q);
    return NULL;
}

START_TEST(in_task)
{
    evdb_pool *p = t_pool_new(L, t_pg_url(), NULL);
    task_arg t = {p, 0, 0};
    evdb_future *f = evdb_task_spawn(L, types_task, &t, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    ck_assert_int_eq(t.calls, 1);
    ck_assert_int_eq(t.got, 3);
    t_pool_close(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("types_pg");
    TCase *tc = tcase_create("postgres");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_test(tc, dates_round_trip);
    tcase_add_test(tc, timestamps_round_trip);
    tcase_add_test(tc, timestamptz_dst);
    tcase_add_test(tc, times_intervals_uuids);
    tcase_add_test(tc, numbers_json_bits);
    tcase_add_test(tc, wrong_types);
    tcase_add_test(tc, arrays_round_trip);
    tcase_add_test(tc, arrays_big_and_any);
    tcase_add_test(tc, settings_and_user_changes);
    tcase_add_test(tc, pool_and_task);
    tcase_add_test(tc, in_task);
    tcase_add_test(tc, enum_domain_types);
    tcase_add_test(tc, types_created_later);
    tcase_add_test(tc, extension_types);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
