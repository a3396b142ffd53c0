/*
 * Unit tests of the column types: the strict text parsers at their limits
 * and on malformed text (through the public getters, on results built as
 * a driver builds them), the calendar math across BC dates, leap days and
 * years past 9999, decimal exactness, timestamp formatting, array
 * parsing, and the parameter checks and deep copies of the new values.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"
#include "types_text.h"

/* A one-row result: one column of type t holding text (NULL: SQL NULL). */
static evdb_result *cell_of(evdb_type t, const char *type_name, const char *text)
{
    evdb__rbuild *b = evdb__rbuild_new(1);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(evdb__rbuild_column(b, 0, "c", t, 0), 0);
    ck_assert_int_eq(evdb__rbuild_column_info(b, 0, EVDB_TYPE_NULL, type_name), 0);
    ck_assert_int_eq(evdb__rbuild_cell(b, text, text ? strlen(text) : 0), 0);
    evdb_result *r = evdb__rbuild_finish(b);
    ck_assert_ptr_nonnull(r);
    return r;
}

static int get_date(const char *text, int32_t *days)
{
    evdb_result *r = cell_of(EVDB_TYPE_DATE, "date", text);
    int rc = evdb_result_date(r, 0, 0, days);
    evdb__result_free(r);
    return rc;
}

static int get_ts(evdb_type t, const char *text, int64_t *us, int32_t *off)
{
    evdb_result *r = cell_of(t, NULL, text);
    int rc = t == EVDB_TYPE_TIMESTAMPTZ ? evdb_result_timestamptz(r, 0, 0, us, off)
                                        : evdb_result_timestamp(r, 0, 0, us);
    evdb__result_free(r);
    return rc;
}

static int get_time(evdb_type t, const char *text, int64_t *us)
{
    evdb_result *r = cell_of(t, NULL, text);
    int rc = evdb_result_time(r, 0, 0, us);
    evdb__result_free(r);
    return rc;
}

static int get_iv(const char *text, evdb_interval *iv)
{
    evdb_result *r = cell_of(EVDB_TYPE_INTERVAL, "interval", text);
    int rc = evdb_result_interval(r, 0, 0, iv);
    evdb__result_free(r);
    return rc;
}

#define US INT64_C(1000000)

START_TEST(calendar)
{
    int32_t d;
    int32_t y;
    int m, dd;
    ck_assert_int_eq(evdb_date_from_ymd(1970, 1, 1, &d), 0);
    ck_assert_int_eq(d, 0);
    ck_assert_int_eq(evdb_date_from_ymd(2000, 3, 1, &d), 0);
    ck_assert_int_eq(d, 11017);
    ck_assert_int_eq(evdb_date_from_ymd(1969, 12, 31, &d), 0);
    ck_assert_int_eq(d, -1);
    /* Leap days: every 4 years, not centuries, but every 400 years. */
    ck_assert_int_eq(evdb_date_from_ymd(2000, 2, 29, &d), 0);
    ck_assert_int_eq(evdb_date_from_ymd(2024, 2, 29, &d), 0);
    ck_assert_int_eq(evdb_date_from_ymd(1900, 2, 29, &d), EVDB_ERANGE);
    ck_assert_int_eq(evdb_date_from_ymd(2023, 2, 29, &d), EVDB_ERANGE);
    ck_assert_int_eq(evdb_date_from_ymd(0, 2, 29, &d), 0); /* 1 BC is a leap year */
    ck_assert_int_eq(evdb_date_from_ymd(2023, 4, 31, &d), EVDB_ERANGE);
    ck_assert_int_eq(evdb_date_from_ymd(2023, 13, 1, &d), EVDB_ERANGE);
    ck_assert_int_eq(evdb_date_from_ymd(2023, 0, 1, &d), EVDB_ERANGE);
    ck_assert_int_eq(evdb_date_from_ymd(2023, 1, 0, &d), EVDB_ERANGE);
    /* 0001-01-01 and Julian day 0 (4714-11-24 BC = astronomical -4713). */
    ck_assert_int_eq(evdb_date_from_ymd(1, 1, 1, &d), 0);
    ck_assert_int_eq(d, -719162);
    ck_assert_int_eq(evdb_date_from_ymd(-4713, 11, 24, &d), 0);
    ck_assert_int_eq(d, EVDB__DATE_MIN);
    ck_assert_int_eq(evdb_date_from_ymd(5874897, 12, 31, &d), 0);
    ck_assert_int_eq(d, EVDB__DATE_MAX);
    ck_assert_int_eq(evdb_date_from_ymd(10000, 1, 1, &d), 0);
    ck_assert_int_eq(d, 2932897);
    ck_assert_int_eq(evdb_date_from_ymd(-6000000, 1, 1, &d), EVDB_ERANGE);
    ck_assert_int_eq(evdb_date_from_ymd(INT32_MAX, 1, 1, &d), EVDB_ERANGE);
    /* Every day of four centuries round-trips, and consecutive days are
     * consecutive dates. */
    int32_t prev;
    ck_assert_int_eq(evdb_date_from_ymd(1799, 12, 31, &prev), 0);
    for (int32_t yy = 1800; yy < 2200; yy++)
        for (int mm = 1; mm <= 12; mm++)
            for (int x = 1; x <= 31; x++) {
                if (evdb_date_from_ymd(yy, mm, x, &d))
                    continue;
                ck_assert_int_eq(d, prev + 1);
                prev = d;
                evdb_date_to_ymd(d, &y, &m, &dd);
                ck_assert(y == yy && m == mm && dd == x);
            }
    evdb_date_to_ymd(INT32_MAX - 1, &y, &m, &dd);
    ck_assert_int_gt(y, 5879000);
    evdb_date_to_ymd(INT32_MIN + 1, &y, &m, &dd);
    ck_assert_int_lt(y, -5870000);
    ck_assert_int_eq(evdb_date_from_ymd(y, m, dd, &d), 0);
    ck_assert_int_eq(d, INT32_MIN + 1);
}
END_TEST

START_TEST(dates)
{
    int32_t d = 7;
    ck_assert_int_eq(get_date("1970-01-01", &d), 0);
    ck_assert_int_eq(d, 0);
    ck_assert_int_eq(get_date("2000-02-29", &d), 0);
    ck_assert_int_eq(d, 11016);
    ck_assert_int_eq(get_date("0001-01-01 BC", &d), 0);
    ck_assert_int_eq(d, -719162 - 366);
    ck_assert_int_eq(get_date("4714-11-24 BC", &d), 0);
    ck_assert_int_eq(d, EVDB__DATE_MIN);
    ck_assert_int_eq(get_date("5874897-12-31", &d), 0);
    ck_assert_int_eq(d, EVDB__DATE_MAX);
    ck_assert_int_eq(get_date("10000-01-01", &d), 0);
    ck_assert_int_eq(d, 2932897);
    ck_assert_int_eq(get_date("infinity", &d), 0);
    ck_assert_int_eq(d, EVDB_DATE_INFINITY);
    ck_assert_int_eq(get_date("-infinity", &d), 0);
    ck_assert_int_eq(d, EVDB_DATE_NEG_INFINITY);
    /* MariaDB zero dates are no dates. */
    d = 7;
    ck_assert_int_eq(get_date("0000-00-00", &d), EVDB_EZERODATE);
    ck_assert_int_eq(get_date("2020-00-15", &d), EVDB_EZERODATE);
    ck_assert_int_eq(get_date("2020-05-00", &d), EVDB_EZERODATE);
    ck_assert_int_eq(get_date("0000-05-01", &d), EVDB_EZERODATE);
    ck_assert_int_eq(d, 7);
    /* Malformed: never a guess. */
    const char *bad[] = {"",
                         "2020-1-01",
                         "20-01-01",
                         "2020-01-01 ",
                         " 2020-01-01",
                         "2020/01/01",
                         "2020-13-01",
                         "2020-02-30",
                         "2021-02-29",
                         "0000-01-01 BC",
                         "2020-01-01 AD",
                         "Infinity",
                         "2020-01-01x",
                         "2020-01-0a",
                         "1234567890-01-01",
                         "-2020-01-01",
                         "2020-01-01 00:00:00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(get_date(bad[i], &d) == EVDB_EFORMAT, "%s", bad[i]);
    ck_assert_int_eq(d, 7);
    /* Embedded NUL. */
    evdb__rbuild *b = evdb__rbuild_new(1);
    evdb__rbuild_column(b, 0, "c", EVDB_TYPE_DATE, 0);
    evdb__rbuild_cell(b, "2020-01-01\0", 11);
    evdb_result *r = evdb__rbuild_finish(b);
    ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), EVDB_EFORMAT);
    evdb__result_free(r);
    /* NULL, wrong type, bad index. */
    r = cell_of(EVDB_TYPE_DATE, NULL, NULL);
    ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), EVDB_ENULL);
    ck_assert_int_eq(evdb_result_date(r, 1, 0, &d), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_date(r, 0, 1, &d), EVDB_ERANGE);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_TEXT, NULL, "2020-01-01");
    ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), EVDB_ETYPE);
    evdb__result_free(r);
    /* A timestamptz's date is the date shown at its offset. */
    r = cell_of(EVDB_TYPE_TIMESTAMPTZ, NULL, "2020-01-01 23:30:00-05");
    ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), 0);
    ck_assert_int_eq(d, 18262);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_TIMESTAMP, NULL, "1969-12-31 23:59:59.999999");
    ck_assert_int_eq(evdb_result_date(r, 0, 0, &d), 0);
    ck_assert_int_eq(d, -1);
    evdb__result_free(r);
}
END_TEST

START_TEST(times)
{
    int64_t us = 7;
    ck_assert_int_eq(get_time(EVDB_TYPE_TIME, "00:00:00", &us), 0);
    ck_assert_int_eq(us, 0);
    ck_assert_int_eq(get_time(EVDB_TYPE_TIME, "23:59:59.999999", &us), 0);
    ck_assert_int_eq(us, EVDB_USECS_PER_DAY - 1);
    ck_assert_int_eq(get_time(EVDB_TYPE_TIME, "24:00:00", &us), 0);
    ck_assert_int_eq(us, EVDB_USECS_PER_DAY);
    ck_assert_int_eq(get_time(EVDB_TYPE_TIME, "12:00:00.5", &us), 0);
    ck_assert_int_eq(us, 12 * 3600 * US + 500000);
    ck_assert_int_eq(get_time(EVDB_TYPE_TIME, "-838:59:59.000000", &us), 0);
    ck_assert_int_eq(us, -(838 * 3600 + 59 * 60 + 59) * US);
    ck_assert_int_eq(get_time(EVDB_TYPE_TIME, "838:59:59", &us), 0);
    ck_assert_int_eq(get_time(EVDB_TYPE_TIME, "-00:00:01", &us), 0);
    ck_assert_int_eq(us, -US);
    ck_assert_int_eq(get_time(EVDB_TYPE_TIMETZ, "10:00:00+05:30", &us), 0);
    ck_assert_int_eq(us, 10 * 3600 * US);
    const char *bad[] = {"",          "1:00:00",   "839:00:00", "10:60:00",
                         "10:00:60",  "10:00",     "10:00:00.", "10:00:00.1234567",
                         "10:00:00 ", "+10:00:00", "--1:00:00", "10:00:00+01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(get_time(EVDB_TYPE_TIME, bad[i], &us) == EVDB_EFORMAT, "%s", bad[i]);

    evdb_result *r = cell_of(EVDB_TYPE_TIMETZ, "timetz", "24:00:00-15:59:59");
    int32_t off = 1;
    ck_assert_int_eq(evdb_result_timetz(r, 0, 0, &us, &off), 0);
    ck_assert_int_eq(us, EVDB_USECS_PER_DAY);
    ck_assert_int_eq(off, -(15 * 3600 + 59 * 60 + 59));
    evdb__result_free(r);
    const char *badtz[] = {"24:00:01+00",  "10:00:00",       "10:00:00+16",  "10:00:00+1",
                           "10:00:00+01:", "10:00:00+01:60", "100:00:00+01", "-10:00:00+01"};
    for (size_t i = 0; i < sizeof badtz / sizeof *badtz; i++) {
        r = cell_of(EVDB_TYPE_TIMETZ, "timetz", badtz[i]);
        ck_assert_msg(evdb_result_timetz(r, 0, 0, &us, &off) == EVDB_EFORMAT, "%s", badtz[i]);
        evdb__result_free(r);
    }
    r = cell_of(EVDB_TYPE_TIME, "time", "10:00:00");
    ck_assert_int_eq(evdb_result_timetz(r, 0, 0, &us, &off), EVDB_ETYPE);
    evdb__result_free(r);
}
END_TEST

START_TEST(timestamps)
{
    int64_t us = 7;
    int32_t off = 7;
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "1970-01-01 00:00:00", &us, &off), 0);
    ck_assert_int_eq(us, 0);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "1969-12-31 23:59:59.999999", &us, &off), 0);
    ck_assert_int_eq(us, -1);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "2000-02-29 12:34:56.789", &us, &off), 0);
    ck_assert_int_eq(us, (11016 * INT64_C(86400) + 12 * 3600 + 34 * 60 + 56) * US + 789000);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "4714-11-24 00:00:00 BC", &us, &off), 0);
    ck_assert_int_eq(us, EVDB__TIMESTAMP_MIN);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "infinity", &us, &off), 0);
    ck_assert_int_eq(us, EVDB_TIMESTAMP_INFINITY);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "-infinity", &us, &off), 0);
    ck_assert_int_eq(us, EVDB_TIMESTAMP_NEG_INFINITY);
    /* The last microsecond int64 holds, and PostgreSQL's last (294276 AD),
     * which it does not. */
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "294247-01-10 04:00:54.775806", &us, &off), 0);
    ck_assert_int_eq(us, INT64_MAX - 1);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "294247-01-10 04:00:54.775807", &us, &off),
                     EVDB_ERANGE);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "294276-12-31 23:59:59.999999", &us, &off),
                     EVDB_ERANGE);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "0000-00-00 00:00:00", &us, &off), EVDB_EZERODATE);
    /* timestamptz: the UTC instant and the offset shown. */
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMPTZ, "1970-01-01 01:00:00+01", &us, &off), 0);
    ck_assert_int_eq(us, 0);
    ck_assert_int_eq(off, 3600);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMPTZ, "1970-01-01 00:00:00-05:30", &us, &off), 0);
    ck_assert_int_eq(us, 5 * 3600 * US + 30 * 60 * US);
    ck_assert_int_eq(off, -19800);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMPTZ, "1800-01-01 00:00:00+00:53:28", &us, &off), 0);
    ck_assert_int_eq(off, 53 * 60 + 28);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMPTZ, "0044-03-15 12:00:00+00 BC", &us, &off), 0);
    int32_t d;
    ck_assert_int_eq(evdb_date_from_ymd(-43, 3, 15, &d), 0);
    ck_assert_int_eq(us, d * EVDB_USECS_PER_DAY + 12 * 3600 * US);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMPTZ, "-infinity", &us, &off), 0);
    ck_assert_int_eq(us, EVDB_TIMESTAMP_NEG_INFINITY);
    us = 7;
    const char *bad[] = {"1970-01-01",
                         "1970-01-01 24:00:00",
                         "1970-01-01T00:00:00",
                         "1970-01-01 00:00:00 BC+01",
                         "1970-01-01 00:00:00+01 AD",
                         "1970-01-01  00:00:00",
                         "1970-01-01 00:00:00.",
                         "1970-01-01 00:00:00+01:00:00:00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(get_ts(EVDB_TYPE_TIMESTAMPTZ, bad[i], &us, &off) == EVDB_EFORMAT, "%s",
                      bad[i]);
    /* Without zone, an offset is malformed; with zone, its absence. */
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMP, "1970-01-01 00:00:00+01", &us, &off),
                     EVDB_EFORMAT);
    ck_assert_int_eq(get_ts(EVDB_TYPE_TIMESTAMPTZ, "1970-01-01 00:00:00", &us, &off), EVDB_EFORMAT);
    ck_assert_int_eq(us, 7);
    /* A date column read as a timestamp: midnight; its infinities too. */
    evdb_result *r = cell_of(EVDB_TYPE_DATE, NULL, "1970-01-02");
    ck_assert_int_eq(evdb_result_timestamp(r, 0, 0, &us), 0);
    ck_assert_int_eq(us, EVDB_USECS_PER_DAY);
    ck_assert_int_eq(evdb_result_timestamptz(r, 0, 0, &us, &off), EVDB_ETYPE);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_DATE, NULL, "5874897-12-31");
    ck_assert_int_eq(evdb_result_timestamp(r, 0, 0, &us), EVDB_ERANGE);
    evdb__result_free(r);
}
END_TEST

START_TEST(format)
{
    char buf[EVDB_TIMESTAMP_TEXT_MAX];
    ck_assert_uint_eq(evdb_timestamp_format(0, false, 0, buf, sizeof buf), 19);
    ck_assert_str_eq(buf, "1970-01-01 00:00:00");
    evdb_timestamp_format(-1, false, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "1969-12-31 23:59:59.999999");
    evdb_timestamp_format(1500000, true, -19800, buf, sizeof buf);
    ck_assert_str_eq(buf, "1969-12-31 18:30:01.500000-05:30");
    evdb_timestamp_format(EVDB__TIMESTAMP_MIN, true, 3208, buf, sizeof buf);
    ck_assert_str_eq(buf, "4714-11-24 00:53:28+00:53:28 BC");
    evdb_timestamp_format(EVDB_TIMESTAMP_INFINITY, true, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "infinity");
    evdb_timestamp_format(EVDB_TIMESTAMP_NEG_INFINITY, false, 0, buf, sizeof buf);
    ck_assert_str_eq(buf, "-infinity");
    /* The longest text fits; a short buffer gets 0. */
    size_t n =
        evdb_timestamp_format(INT64_MIN + 1, true, -(99 * 3600 + 59 * 60 + 59), buf, sizeof buf);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_lt(n, sizeof buf);
    ck_assert_uint_eq(evdb_timestamp_format(0, false, 0, buf, 19), 0);
    ck_assert_uint_eq(evdb_timestamp_format(0, true, 100 * 3600, buf, sizeof buf), 0);
    /* Formatting and parsing agree, across the whole range. */
    for (int64_t us = EVDB__TIMESTAMP_MIN; us < INT64_MAX - INT64_C(77777777777777777);
         us += INT64_C(77777777777777777) + 123457) {
        int32_t offs[] = {0, 3600, -34200, 3208};
        for (int k = 0; k < 4; k++) {
            ck_assert_uint_gt(evdb_timestamp_format(us, true, offs[k], buf, sizeof buf), 0);
            int64_t back;
            int32_t off;
            ck_assert_msg(evdb__parse_timestamp(buf, strlen(buf), true, &back, &off) == 0, "%s",
                          buf);
            ck_assert_int_eq(back, us);
            ck_assert_int_eq(off, offs[k]);
        }
    }
}
END_TEST

START_TEST(intervals)
{
    evdb_interval iv = {7, 7, 7};
    ck_assert_int_eq(get_iv("00:00:00", &iv), 0);
    ck_assert(iv.months == 0 && iv.days == 0 && iv.us == 0);
    ck_assert_int_eq(get_iv("1 year 2 mons -3 days +04:05:06.789", &iv), 0);
    ck_assert(iv.months == 14 && iv.days == -3 && iv.us == (4 * 3600 + 5 * 60 + 6) * US + 789000);
    ck_assert_int_eq(get_iv("-00:00:01", &iv), 0);
    ck_assert(iv.months == 0 && iv.days == 0 && iv.us == -US);
    ck_assert_int_eq(get_iv("-1 years -2 mons +3 days -04:05:06", &iv), 0);
    ck_assert(iv.months == -14 && iv.days == 3 && iv.us == -(4 * 3600 + 5 * 60 + 6) * US);
    ck_assert_int_eq(get_iv("1 mon", &iv), 0);
    ck_assert(iv.months == 1 && iv.days == 0 && iv.us == 0);
    ck_assert_int_eq(get_iv("1 day", &iv), 0);
    ck_assert(iv.days == 1);
    ck_assert_int_eq(get_iv("178956970 years 7 mons", &iv), 0);
    ck_assert_int_eq(iv.months, INT32_MAX);
    ck_assert_int_eq(get_iv("-178956970 years -8 mons", &iv), 0);
    ck_assert_int_eq(iv.months, INT32_MIN);
    ck_assert_int_eq(get_iv("-2147483648 days", &iv), 0);
    ck_assert_int_eq(iv.days, INT32_MIN);
    ck_assert_int_eq(get_iv("2562047788:00:54.775807", &iv), 0);
    ck_assert_int_eq(iv.us, INT64_MAX);
    ck_assert_int_eq(get_iv("-2562047788:00:54.775807", &iv), 0);
    ck_assert_int_eq(iv.us, -INT64_MAX);
    ck_assert_int_eq(get_iv("178956970 years 8 mons", &iv), EVDB_ERANGE);
    ck_assert_int_eq(get_iv("2562047789:00:00", &iv), EVDB_ERANGE);
    ck_assert_int_eq(get_iv("2147483648 days", &iv), EVDB_ERANGE);
    const char *bad[] = {"",
                         "@ 1 year",
                         "1 year ago",
                         "1 years 1 years",
                         "1 mon 1 year",
                         "P1Y",
                         "1",
                         "1 yr",
                         "1 day  01:00:00",
                         "01:00:00 1 day",
                         "1-2",
                         "1 day 01:00",
                         " 1 day",
                         "1 day ",
                         "+-1 day",
                         "1 day 00:00:00.1234567"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(get_iv(bad[i], &iv) == EVDB_EFORMAT, "%s", bad[i]);
    /* A TIME column read as an interval (MariaDB durations). */
    evdb_result *r = cell_of(EVDB_TYPE_TIME, "TIME", "-838:59:59");
    ck_assert_int_eq(evdb_result_interval(r, 0, 0, &iv), 0);
    ck_assert(iv.months == 0 && iv.days == 0 && iv.us == -(838 * 3600 + 59 * 60 + 59) * US);
    evdb__result_free(r);
}
END_TEST

START_TEST(uuids_and_bits)
{
    uint8_t u[16], want[16] = {0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8,
                               0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11};
    evdb_result *r = cell_of(EVDB_TYPE_UUID, "uuid", "A0EEBC99-9c0b-4ef8-bb6d-6bb9bd380a11");
    ck_assert_int_eq(evdb_result_uuid(r, 0, 0, u), 0);
    ck_assert_mem_eq(u, want, 16);
    evdb__result_free(r);
    char text[37];
    evdb__uuid_text(want, text);
    ck_assert_str_eq(text, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    const char *bad[] = {
        "a0eebc999c0b4ef8bb6d6bb9bd380a11", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", "a0eebc99-9c0b4-ef8-bb6d-6bb9bd380a11", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = cell_of(EVDB_TYPE_TEXT, "text", bad[i]);
        ck_assert_msg(evdb_result_uuid(r, 0, 0, u) == EVDB_EFORMAT, "%s", bad[i]);
        evdb__result_free(r);
    }
    /* 16 bytes of a binary column. */
    evdb__rbuild *b = evdb__rbuild_new(1);
    evdb__rbuild_column(b, 0, "c", EVDB_TYPE_BYTES, 0);
    evdb__rbuild_cell(b, want, 16);
    r = evdb__rbuild_finish(b);
    memset(u, 0, 16);
    ck_assert_int_eq(evdb_result_uuid(r, 0, 0, u), 0);
    ck_assert_mem_eq(u, want, 16);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_INT, NULL, "1");
    ck_assert_int_eq(evdb_result_uuid(r, 0, 0, u), EVDB_ETYPE);
    evdb__result_free(r);

    uint64_t v = 7;
    r = cell_of(EVDB_TYPE_BITS, "varbit", "1010");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), 0);
    ck_assert_uint_eq(v, 10);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_BITS, "bit",
                "1111111111111111111111111111111111111111111111111111111111111111");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_BITS, "bit",
                "11111111111111111111111111111111111111111111111111111111111111111");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), EVDB_ERANGE);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_BITS, "bit", "10201");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), EVDB_EFORMAT);
    evdb__result_free(r);
    /* MariaDB BIT: big-endian bytes ("01" is 0x3031 there). */
    r = cell_of(EVDB_TYPE_BITS, "BIT", "01");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), 0);
    ck_assert_uint_eq(v, 0x3031);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_BITS, "BIT", "123456789");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), EVDB_ERANGE);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_INT, "BIGINT UNSIGNED", "18446744073709551615");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_INT, NULL, "18446744073709551616");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), EVDB_ERANGE);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_INT, NULL, "-1");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), EVDB_ERANGE);
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_INT, NULL, "1x");
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), EVDB_EFORMAT);
    evdb__result_free(r);
    /* A kept binary integer. */
    b = evdb__rbuild_new(1);
    evdb__rbuild_column(b, 0, "c", EVDB_TYPE_INT, 0);
    evdb__rbuild_cell_int(b, "-5", 2, -5);
    evdb__rbuild_cell_int(b, "5", 1, 5);
    r = evdb__rbuild_finish(b);
    ck_assert_int_eq(evdb_result_uint64(r, 0, 0, &v), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_uint64(r, 1, 0, &v), 0);
    ck_assert_uint_eq(v, 5);
    evdb__result_free(r);
}
END_TEST

START_TEST(numerics)
{
    int64_t i = 7;
    double d = 7;
#define NI(s, rc) ck_assert_msg(evdb_numeric_to_int64(s, strlen(s), &i) == (rc), "%s", s)
#define ND(s, rc) ck_assert_msg(evdb_numeric_to_double(s, strlen(s), &d) == (rc), "%s", s)
    NI("9223372036854775807", 0);
    ck_assert_int_eq(i, INT64_MAX);
    NI("-9223372036854775808.000", 0);
    ck_assert_int_eq(i, INT64_MIN);
    NI("0009.0", 0);
    ck_assert_int_eq(i, 9);
    NI("-0", 0);
    ck_assert_int_eq(i, 0);
    i = 7;
    NI("9223372036854775808", EVDB_ERANGE);
    NI("-9223372036854775809", EVDB_ERANGE);
    NI("99999999999999999999.5", EVDB_ERANGE);
    NI("12.5", EVDB_EPRECISION);
    NI("-0.0000000000000000001", EVDB_EPRECISION);
    NI("NaN", EVDB_ERANGE);
    NI("Infinity", EVDB_ERANGE);
    NI("-Infinity", EVDB_ERANGE);
    NI("", EVDB_EFORMAT);
    NI("-", EVDB_EFORMAT);
    NI(".", EVDB_EFORMAT);
    NI("1e5", EVDB_EFORMAT);
    NI("1,5", EVDB_EFORMAT);
    NI(" 1", EVDB_EFORMAT);
    NI("nan", EVDB_EFORMAT);
    ck_assert_int_eq(i, 7);
    ND("0.1", 0);
    ck_assert(d == 0.1);
    ND("-12.3400", 0);
    ck_assert(d == -12.34);
    ND("123456789012345", 0);
    ck_assert(d == 123456789012345.0);
    ND("1234567890123450000000", 0);
    ck_assert(d == 1.23456789012345e21);
    ND("0.000000000000000000000000000001", 0);
    ck_assert(d == 1e-30);
    ND("-0.000", 0);
    ck_assert(d == 0 && signbit(d));
    ND("NaN", 0);
    ck_assert(isnan(d));
    ND("-Infinity", 0);
    ck_assert(isinf(d) && d < 0);
    d = 7;
    ND("1234567890123456", EVDB_EPRECISION);
    ND("0.1234567890123456", EVDB_EPRECISION);
    ND("9007199254740993", EVDB_EPRECISION);
    ND("x", EVDB_EFORMAT);
    ck_assert(d == 7);
    /* Huge exponents of few digits. */
    char big[420];
    memset(big, '0', sizeof big - 1);
    big[0] = '1';
    big[sizeof big - 1] = '\0';
    ND(big, EVDB_ERANGE);
    ck_assert(evdb_numeric_to_double(NULL, 0, &d) == EVDB_EFORMAT);
    ck_assert(evdb__numeric_valid("1.5e-3", 6));
    ck_assert(evdb__numeric_valid("-2E+10", 6));
    ck_assert(evdb__numeric_valid(".5", 2));
    ck_assert(!evdb__numeric_valid("1e", 2));
    ck_assert(!evdb__numeric_valid("NaNe1", 5));
    ck_assert(!evdb__numeric_valid("1.2.3", 5));
    ck_assert(!evdb__numeric_valid("1; DROP TABLE x", 15));
#undef NI
#undef ND
}
END_TEST

static evdb_array *arr_of(evdb_type elem, const char *text, int *rc)
{
    evdb__rbuild *b = evdb__rbuild_new(1);
    evdb__rbuild_column(b, 0, "c", EVDB_TYPE_ARRAY, 0);
    evdb__rbuild_column_info(b, 0, elem, "_x");
    evdb__rbuild_cell(b, text, strlen(text));
    evdb_result *r = evdb__rbuild_finish(b);
    ck_assert_int_eq(evdb_result_coltype_elem(r, 0), elem);
    evdb_array *a = NULL;
    *rc = evdb_result_array(r, 0, 0, &a);
    /* The array outlives the result. */
    evdb__result_free(r);
    return a;
}

START_TEST(arrays)
{
    size_t live = evdb__alloc_live();
    int rc;
    evdb_array *a = arr_of(EVDB_TYPE_INT, "{1,-2,NULL,9223372036854775807}", &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(evdb_array_len(a), 4);
    ck_assert_int_eq(evdb_array_elemtype(a), EVDB_TYPE_INT);
    int64_t i;
    ck_assert_int_eq(evdb_array_get_int(a, 1, &i), 0);
    ck_assert_int_eq(i, -2);
    ck_assert(evdb_array_isnull(a, 2));
    ck_assert(!evdb_array_isnull(a, 3));
    ck_assert(evdb_array_isnull(a, 4));
    ck_assert_int_eq(evdb_array_get_int(a, 2, &i), EVDB_ENULL);
    ck_assert_int_eq(evdb_array_get_int(a, 4, &i), EVDB_ERANGE);
    ck_assert_int_eq(evdb_array_get_int(a, 3, &i), 0);
    ck_assert_int_eq(i, INT64_MAX);
    int32_t dd;
    ck_assert_int_eq(evdb_array_get_date(a, 0, &dd), EVDB_ETYPE);
    evdb_array_free(a);

    a = arr_of(EVDB_TYPE_TEXT,
               "{\"a,b\",\"c\\\"d\",NULL,\"NULL\",\"\",\"x\\\\y\",\"{}\",h\xc3\xa9llo,\" sp \"}",
               &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(evdb_array_len(a), 9);
    size_t n;
    const char *want[] = {"a,b", "c\"d", NULL, "NULL", "", "x\\y", "{}", "h\xc3\xa9llo", " sp "};
    for (size_t k = 0; k < 9; k++) {
        const char *t = evdb_array_get_text(a, k, &n);
        if (!want[k]) {
            ck_assert_ptr_null(t);
            ck_assert(evdb_array_isnull(a, k));
        } else {
            ck_assert_str_eq(t, want[k]);
            ck_assert_uint_eq(n, strlen(want[k]));
        }
    }
    ck_assert_int_eq(evdb_array_get_int(a, 0, &i), EVDB_ETYPE);
    evdb_array_free(a);

    a = arr_of(EVDB_TYPE_INT, "{}", &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(evdb_array_len(a), 0);
    ck_assert_ptr_null(evdb_array_get_text(a, 0, &n));
    evdb_array_free(a);
    a = arr_of(EVDB_TYPE_INT, "[0:2]={7,8,9}", &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(evdb_array_len(a), 3);
    evdb_array_free(a);
    a = arr_of(EVDB_TYPE_BYTES, "{\"\\\\x00ff41\",NULL}", &rc);
    ck_assert_int_eq(rc, 0);
    const unsigned char *bytes = evdb_array_get_bytes(a, 0, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert(bytes[0] == 0 && bytes[1] == 0xff && bytes[2] == 'A');
    evdb_array_free(a);
    a = arr_of(EVDB_TYPE_BOOL, "{t,f}", &rc);
    bool bo;
    ck_assert_int_eq(evdb_array_get_bool(a, 0, &bo), 0);
    ck_assert(bo);
    ck_assert_int_eq(evdb_array_get_int(a, 1, &i), 0);
    ck_assert_int_eq(i, 0);
    evdb_array_free(a);
    a = arr_of(EVDB_TYPE_TIMESTAMPTZ, "{\"2020-01-01 00:00:00+01\",infinity}", &rc);
    int64_t us;
    int32_t off;
    ck_assert_int_eq(evdb_array_get_timestamptz(a, 0, &us, &off), 0);
    ck_assert_int_eq(off, 3600);
    ck_assert_int_eq(evdb_array_get_timestamp(a, 1, &us), 0);
    ck_assert_int_eq(us, EVDB_TIMESTAMP_INFINITY);
    evdb_array_free(a);
    a = arr_of(EVDB_TYPE_DOUBLE, "{1.5,NaN,-Infinity}", &rc);
    double d;
    ck_assert_int_eq(evdb_array_get_double(a, 0, &d), 0);
    ck_assert(d == 1.5);
    ck_assert_int_eq(evdb_array_get_double(a, 1, &d), 0);
    ck_assert(isnan(d));
    evdb_array_free(a);

    const char *notsup[] = {"{{1,2},{3,4}}", "[1:2][1:2]={{1,2},{3,4}}", "{1,{2}}"};
    for (size_t k = 0; k < 3; k++) {
        a = arr_of(EVDB_TYPE_INT, notsup[k], &rc);
        ck_assert_msg(rc == EVDB_ENOTSUP, "%s", notsup[k]);
    }
    const char *bad[] = {"",           "{",         "}",        "{1,}", "{,1}",   "{1,,2}",
                         "{\"a}",      "{\"a\\}",   "{a\"b}",   "{1} ", "x{1}",   "[1:3]={1}",
                         "[1:2]{1,2}", "[a:b]={1}", "{\"a\"b}", "{1}}", "{a\\b}", "[2:1]={}"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        a = arr_of(EVDB_TYPE_TEXT, bad[k], &rc);
        ck_assert_msg(rc == EVDB_EFORMAT, "%s: %d", bad[k], rc);
    }
    /* A large array: one pass, one allocation. */
    size_t big = 100000;
    char *text = malloc(big * 8 + 3), *p = text;
    *p++ = '{';
    for (size_t k = 0; k < big; k++)
        p += sprintf(p, k ? ",%zu" : "%zu", k);
    *p++ = '}';
    *p = '\0';
    a = arr_of(EVDB_TYPE_INT, text, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_uint_eq(evdb_array_len(a), big);
    ck_assert_int_eq(evdb_array_get_int(a, big - 1, &i), 0);
    ck_assert_int_eq(i, (int64_t)big - 1);
    evdb_array_free(a);
    free(text);
    evdb_array_free(NULL);
    ck_assert_uint_eq(evdb_array_len(NULL), 0);
    ck_assert_uint_eq(evdb__alloc_live(), live);

    /* Not an array column; names. */
    evdb_result *r = cell_of(EVDB_TYPE_TEXT, "text", "{1}");
    ck_assert_int_eq(evdb_result_array(r, 0, 0, &a), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_coltype_elem(r, 0), EVDB_TYPE_NULL);
    ck_assert_str_eq(evdb_result_coltype_name(r, 0), "text");
    ck_assert_ptr_null(evdb_result_coltype_name(r, 1));
    evdb__result_free(r);
    r = cell_of(EVDB_TYPE_OTHER, NULL, "x");
    ck_assert_str_eq(evdb_result_coltype_name(r, 0), "");
    evdb__result_free(r);
}
END_TEST

/* Submission-time checks and the deep copy of every new value. */
START_TEST(values)
{
    uint8_t u[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    ck_assert_uint_eq(sizeof(evdb_value), 24);
    int64_t ints[3] = {1, 2, 3};
    bool bools[3] = {true, false, true};
    double dbl[2] = {0.5, -1};
    char s1[] = "a,b", s2[] = "{\"}";
    const char *texts[3] = {s1, NULL, s2};
    char num[] = "-12.5e3", js[] = "{\"k\": [1]}", inner[] = "inner";
    evdb_value elems[3] = {evdb_textn(inner, 5), evdb_null(), evdb_text("x")};
    evdb_value v[] = {evdb_uint(UINT64_MAX),
                      evdb_numeric(num),
                      evdb_json(js),
                      evdb_date(-5),
                      evdb_time(EVDB_USECS_PER_DAY),
                      evdb_timetz(0, -57599),
                      evdb_timestamp(EVDB_TIMESTAMP_NEG_INFINITY),
                      evdb_timestamptz(123),
                      evdb_interval_value(-1, 2, -3),
                      evdb_uuid(u),
                      evdb_array_bool(bools, 3),
                      evdb_array_int64(ints, 3),
                      evdb_array_double(dbl, 2),
                      evdb_array_text(texts, 3),
                      evdb_array_values(elems, 3),
                      evdb_array_int64(NULL, 0)};
    size_t nv = sizeof v / sizeof *v;
    ck_assert_int_eq(evdb__values_check(v, nv), 0);
    ck_assert_int_eq(evdb_numeric(NULL).type, EVDB_TYPE_NULL);
    ck_assert_int_eq(evdb_json(NULL).type, EVDB_TYPE_NULL);
    size_t size = evdb__values_size(v, nv);
    void *block = malloc(size);
    /* Poison: any byte the copy reads from the caller after this shows. */
    evdb_value *c = evdb__values_copy_into(block, v, nv);
    memset(num, 'x', sizeof num - 1);
    memset(js, 'x', sizeof js - 1);
    memset(s1, 'x', sizeof s1 - 1);
    memset(inner, 'x', sizeof inner - 1);
    ints[0] = bools[0] = 0;
    dbl[0] = 9;
    texts[1] = "now";
    ck_assert_str_eq(c[1].u.s.ptr, "-12.5e3");
    ck_assert_str_eq(c[2].u.s.ptr, "{\"k\": [1]}");
    ck_assert_mem_eq(c[9].u.uuid, u, 16);
    ck_assert(((const bool *)c[10].u.a.ptr)[0]);
    ck_assert_int_eq(((const int64_t *)c[11].u.a.ptr)[0], 1);
    ck_assert(((const double *)c[12].u.a.ptr)[0] == 0.5);
    const char *const *ct = c[13].u.a.ptr;
    ck_assert_str_eq(ct[0], "a,b");
    ck_assert_ptr_null(ct[1]);
    ck_assert_str_eq(ct[2], "{\"}");
    const evdb_value *ce = c[14].u.a.ptr;
    ck_assert_uint_eq(ce[0].u.s.len, 5);
    ck_assert_mem_eq(ce[0].u.s.ptr, "inner", 5);
    ck_assert_int_eq(evdb__array_elem(&c[14]), EVDB_TYPE_TEXT);
    ck_assert_int_eq(evdb__array_elem(&c[11]), EVDB_TYPE_INT);
    /* Everything lies in the block, 8-aligned where it must be. */
    for (size_t k = 10; k < 15; k++) {
        ck_assert((const char *)c[k].u.a.ptr >= (char *)block &&
                  (const char *)c[k].u.a.ptr < (char *)block + size);
        ck_assert_uint_eq((uintptr_t)c[k].u.a.ptr % 8, 0);
    }
    free(block);

    /* Rejected at submit, with the parameter's number. */
    evdb_value bad[] = {evdb_numeric("12abc"),
                        evdb_numeric(""),
                        evdb_date(EVDB__DATE_MIN - 1),
                        evdb_date(EVDB__DATE_MAX + 1),
                        evdb_time(EVDB__TIME_MAX + 1),
                        evdb_timetz(-1, 0),
                        evdb_timetz(EVDB_USECS_PER_DAY + 1, 0),
                        evdb_timetz(0, 16 * 3600),
                        evdb_timestamp(EVDB__TIMESTAMP_MIN - 1),
                        evdb_array_int64(NULL, 2),
                        evdb_array_int64(ints, EVDB_ARRAY_MAX_LEN + 1)};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        evdb_value two[2] = {evdb_int(1), bad[k]};
        ck_assert_msg(evdb__values_check(two, 2) == EVDB_EINVAL, "bad value %zu", k);
        ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_last_error()), "parameter 2"));
    }
    evdb_value mixed[2] = {evdb_int(1), evdb_text("x")};
    evdb_value a = evdb_array_values(mixed, 2);
    ck_assert_int_eq(evdb__values_check(&a, 1), EVDB_EINVAL);
    evdb_value nested[1] = {evdb_array_int64(ints, 1)};
    a = evdb_array_values(nested, 1);
    ck_assert_int_eq(evdb__values_check(&a, 1), EVDB_EINVAL);
    a = evdb_array_values(NULL, 0);
    ck_assert_int_eq(evdb__values_check(&a, 1), 0);
    ck_assert_int_eq(evdb__array_elem(&a), EVDB_TYPE_TEXT);
    a = evdb_array_int64(ints, 1);
    a.elem = (evdb_type)99;
    ck_assert_int_eq(evdb__values_check(&a, 1), EVDB_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("types");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, calendar);
    tcase_add_test(tc, dates);
    tcase_add_test(tc, times);
    tcase_add_test(tc, timestamps);
    tcase_add_test(tc, format);
    tcase_add_test(tc, intervals);
    tcase_add_test(tc, uuids_and_bits);
    tcase_add_test(tc, numerics);
    tcase_add_test(tc, arrays);
    tcase_add_test(tc, values);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
