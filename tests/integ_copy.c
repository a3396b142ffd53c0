/*
 * COPY against the real PostgreSQL server (include/evdb/copy.h): 100,000
 * rows in and out in text format, a binary round trip, backpressure with
 * evdb's own memory measured through the allocator hooks, a duplicate key
 * mid-copy, abort, timeouts mid-copy-in and mid-copy-out, pause/resume of
 * a copy out, the row encoder with every value type and nasty text, a
 * copy on a pooled connection, and bad input. Every final future is
 * counted: exactly one completion each, and the connection serves
 * queries after every failure. (MariaDB's refusal is in integ_mariadb.)
 */
#include <check.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 60.0
#define TEST_TIMEOUT_S 60
#define ROWS 100000

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

static int done_calls;

static void count_done(evdb_future *f, void *arg)
{
    (void)f;
    (void)arg;
    done_calls++;
}

/* The final future of cp with a completion counter on it. */
static evdb_future *counted(evdb_future *f)
{
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(evdb_future_on_done(f, count_done, NULL), 0);
    return f;
}

/* Writes len bytes, waiting for writability whenever the buffer is full;
 * returns how many times it was refused. */
static size_t write_all(evdb_copy *cp, const void *data, size_t len)
{
    size_t busy = 0;
    int rc = evdb_copy_write(cp, data, len);
    while (rc == EVDB_EBUSY) {
        busy++;
        evdb_future *w = evdb_copy_writable(cp);
        ck_assert_ptr_nonnull(w);
        ck_assert_int_eq(t_wait(w), 0);
        evdb_future_unref(w);
        rc = evdb_copy_write(cp, data, len);
    }
    ck_assert_msg(rc == 0, "evdb_copy_write: %s", evdb_err_name(rc));
    return busy;
}

/* Rows id, 'name-id' for id in [from, to), in chunks of about 8 KiB. */
static void write_rows(evdb_copy *cp, int from, int to)
{
    char chunk[8192 + 64];
    size_t n = 0;
    for (int i = from; i < to; i++) {
        n += (size_t)snprintf(chunk + n, sizeof chunk - n, "%d\tname-%d\n", i, i);
        if (n >= 8192) {
            write_all(cp, chunk, n);
            n = 0;
        }
    }
    if (n)
        write_all(cp, chunk, n);
}

static void expect_affected(evdb_future *f, int64_t rows)
{
    int rc = t_wait(f);
    ck_assert_msg(rc == 0, "copy failed: %s", evdb_error_message(evdb_future_error(f)));
    ck_assert_int_eq(evdb_result_affected(evdb_future_result(f)), rows);
}

/* What a copy out received. */
typedef struct sink {
    char *buf;
    size_t len, cap;
    size_t calls;
    size_t calls_after_final;
    bool pause_first;
    evdb_future *final;
} sink;

static void on_data(evdb_copy *cp, const void *data, size_t len, void *arg)
{
    sink *s = arg;
    s->calls++;
    if (s->final && evdb_future_status(s->final) != EVDB_PENDING)
        s->calls_after_final++;
    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2;
        s->buf = realloc(s->buf, s->cap);
        ck_assert_ptr_nonnull(s->buf);
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    if (s->pause_first) {
        s->pause_first = false;
        ck_assert_int_eq(evdb_copy_pause(cp), 0);
    }
}

static size_t count_lines(const sink *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->len; i++)
        n += s->buf[i] == '\n';
    return n;
}

/* ---- 100,000 rows in and out ---- */

START_TEST(text_in_and_out)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "CREATE TEMP TABLE t (id int PRIMARY KEY, name text NOT NULL)");
    evdb_copy *cp = evdb_copy_in(c, "COPY t FROM STDIN", NULL);
    ck_assert_ptr_nonnull(cp);
    write_rows(cp, 0, ROWS);
    evdb_future *f = counted(evdb_copy_end(cp));
    expect_affected(f, ROWS);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    ck_assert_int_eq(t_query_int(c, "SELECT count(*) FROM t WHERE name = 'name-' || id"), ROWS);

    sink s = {0};
    cp = evdb_copy_out(c, "COPY t TO STDOUT", on_data, &s, NULL);
    ck_assert_ptr_nonnull(cp);
    f = counted(evdb_copy_future(cp));
    s.final = f;
    expect_affected(f, ROWS);
    t_run_for(L, 0.05);
    ck_assert_uint_eq(count_lines(&s), ROWS);
    ck_assert_uint_eq(s.calls_after_final, 0);
    ck_assert_int_eq(memcmp(s.buf, "0\tname-0\n", 9), 0);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    free(s.buf);
    ck_assert_int_eq(done_calls, 2);
    t_conn_close(c);
}
END_TEST

/* ---- binary round trip ---- */

START_TEST(binary_round_trip)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "CREATE TEMP TABLE b1 (id int, d float8, t text, raw bytea, ts timestamptz)");
    t_exec_ok(c, "CREATE TEMP TABLE b2 (LIKE b1)");
    t_exec_ok(c, "INSERT INTO b1 SELECT g, g / 7.0, E'a\\tb\\n' || g, "
                 "decode(md5(g::text), 'hex'), now() + g * interval '1 s' "
                 "FROM generate_series(1, 5000) g");
    t_exec_ok(c, "INSERT INTO b1 VALUES (NULL, 'NaN', NULL, '\\x00ff', NULL)");
    sink s = {0};
    evdb_copy *out = evdb_copy_out(c, "COPY b1 TO STDOUT (FORMAT binary)", on_data, &s, NULL);
    ck_assert_ptr_nonnull(out);
    evdb_future *f = counted(evdb_copy_future(out));
    expect_affected(f, 5001);
    evdb_future_unref(f);
    evdb_copy_free(out);
    ck_assert_int_eq(memcmp(s.buf, "PGCOPY\n\377\r\n\0", 11), 0);

    evdb_copy *in = evdb_copy_in(c, "COPY b2 FROM STDIN (FORMAT binary)", NULL);
    ck_assert_ptr_nonnull(in);
    /* Split anywhere: the bytes pass through. */
    for (size_t off = 0; off < s.len; off += 1000)
        write_all(in, s.buf + off, s.len - off < 1000 ? s.len - off : 1000);
    f = counted(evdb_copy_end(in));
    expect_affected(f, 5001);
    evdb_future_unref(f);
    evdb_copy_free(in);
    free(s.buf);
    ck_assert_int_eq(t_query_int(c, "SELECT count(*) FROM (SELECT * FROM b1 EXCEPT ALL "
                                    "SELECT * FROM b2) x"),
                     0);
    ck_assert_int_eq(t_query_int(c, "SELECT count(*) FROM b2"), 5001);
    ck_assert_int_eq(done_calls, 2);
    t_conn_close(c);
}
END_TEST

/* ---- backpressure, memory bounded ---- */

START_TEST(backpressure_bounded)
{
    t_bytes_track();
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "CREATE TEMP TABLE big (line text)");
    evdb_copy_opts o = {0};
    o.buffer_bytes = 64 * 1024;
    evdb_copy *cp = evdb_copy_in(c, "COPY big FROM STDIN", &o);
    ck_assert_ptr_nonnull(cp);
    t_bytes_peak_reset();
    /* 32 MB in 16 KiB writes, as fast as evdb takes them. */
    enum { CHUNK = 16 * 1024, TOTAL = 32 * 1024 * 1024 };
    static char chunk[CHUNK];
    for (size_t i = 0; i < CHUNK; i++)
        chunk[i] = (i % 128 == 127) ? '\n' : (char)('a' + i % 26);
    size_t busy = 0, max_buffered = 0;
    for (size_t sent = 0; sent < TOTAL; sent += CHUNK) {
        busy += write_all(cp, chunk, CHUNK);
        size_t b = evdb_copy_buffered(cp);
        if (b > max_buffered)
            max_buffered = b;
    }
    evdb_future *f = counted(evdb_copy_end(cp));
    expect_affected(f, TOTAL / 128);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    size_t peak = t_bytes_peak();
    /* Refused and resumed, many times; never more than the bound plus one
     * write buffered; evdb's memory (buffer growth included) well under
     * a MiB for 32 MB copied. */
    ck_assert_msg(busy > 10, "only %zu refusals", busy);
    ck_assert_uint_le(max_buffered, o.buffer_bytes + CHUNK);
    ck_assert_msg(peak < 512 * 1024, "evdb held %zu bytes at peak", peak);
    ck_assert_int_eq(done_calls, 1);
    t_conn_close(c);
}
END_TEST

/* ---- errors mid-copy, abort ---- */

START_TEST(duplicate_key_mid_copy)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "CREATE TEMP TABLE t (id int PRIMARY KEY, name text NOT NULL)");
    evdb_copy *cp = evdb_copy_in(c, "COPY t FROM STDIN", NULL);
    ck_assert_ptr_nonnull(cp);
    write_rows(cp, 0, 500);
    write_rows(cp, 499, 3000); /* 499 again */
    evdb_future *f = counted(evdb_copy_end(cp));
    t_expect_fail(f, EVDB_ESERVER, "23505");
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(f)), "duplicate key"));
    /* After the failure writes say so. */
    ck_assert_int_eq(evdb_copy_write(cp, "1\tx\n", 4), EVDB_ESERVER);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    ck_assert_int_eq(t_query_int(c, "SELECT count(*) FROM t"), 0);
    /* A bad row: the same. */
    cp = evdb_copy_in(c, "COPY t FROM STDIN", NULL);
    write_all(cp, "1\tok\nnot-a-number\tx\n", 20);
    f = counted(evdb_copy_end(cp));
    t_expect_fail(f, EVDB_ESERVER, "22P02");
    evdb_future_unref(f);
    evdb_copy_free(cp);
    ck_assert_int_eq(t_query_int(c, "SELECT 41 + 1"), 42);
    ck_assert_int_eq(done_calls, 2);
    t_conn_close(c);
}
END_TEST

START_TEST(abort_copy_in)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "CREATE TEMP TABLE t (id int PRIMARY KEY, name text NOT NULL)");
    evdb_copy *cp = evdb_copy_in(c, "COPY t FROM STDIN", NULL);
    ck_assert_ptr_nonnull(cp);
    write_rows(cp, 0, 2000);
    t_sleep(L, 0.05);
    evdb_future *f = counted(evdb_copy_abort(cp, "stop right here"));
    /* Once ended, nothing more. */
    ck_assert_ptr_null(evdb_copy_end(cp));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ESTATE);
    ck_assert_int_eq(evdb_copy_write(cp, "x", 1), EVDB_ESTATE);
    t_expect_fail(f, EVDB_ESERVER, "57014");
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(f)), "stop right here"));
    evdb_future_unref(f);
    evdb_copy_free(cp);
    ck_assert_int_eq(t_query_int(c, "SELECT count(*) FROM t"), 0);

    /* Freed without an end: aborted as well; the next query waits for it. */
    cp = evdb_copy_in(c, "COPY t FROM STDIN", NULL);
    write_rows(cp, 0, 10);
    f = counted(evdb_copy_future(cp));
    evdb_copy_free(cp);
    evdb_future *q = t_submit(c, "SELECT count(*) FROM t", NULL, 0, 0, 0);
    t_expect_fail(f, EVDB_ESERVER, "57014");
    t_wait_ok(q, "after the freed copy");
    ck_assert_int_eq(t_cell_int(evdb_future_result(q), 0, 0), 0);
    evdb_future_unref(q);
    evdb_future_unref(f);
    ck_assert_int_eq(done_calls, 2);
    t_conn_close(c);
}
END_TEST

/* ---- timeouts and cancel ---- */

START_TEST(timeout_mid_copy_in)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "CREATE TEMP TABLE t (id int PRIMARY KEY, name text NOT NULL)");
    evdb_copy_opts o = {0};
    o.timeout = 0.3;
    evdb_copy *cp = evdb_copy_in(c, "COPY t FROM STDIN", &o);
    ck_assert_ptr_nonnull(cp);
    write_rows(cp, 0, 1000);
    evdb_future *f = counted(evdb_copy_future(cp));
    double t0 = t_now();
    t_expect_fail(f, EVDB_ETIMEDOUT, NULL);
    ck_assert_msg(t_now() - t0 < 2.0, "the timeout took %g s", t_now() - t0);
    ck_assert_int_eq(evdb_copy_write(cp, "1\tx\n", 4), EVDB_ETIMEDOUT);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    ck_assert_int_eq(t_query_int(c, "SELECT count(*) FROM t"), 0);

    /* Cancelled by the user: the same. */
    cp = evdb_copy_in(c, "COPY t FROM STDIN", NULL);
    write_rows(cp, 0, 1000);
    t_sleep(L, 0.05);
    f = counted(evdb_copy_future(cp));
    ck_assert_int_eq(evdb_future_cancel(f), 0);
    t_expect_fail(f, EVDB_ECANCELED, NULL);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    ck_assert_int_eq(t_query_int(c, "SELECT count(*) FROM t"), 0);
    t_run_for(L, 0.05);
    ck_assert_int_eq(done_calls, 2);
    t_conn_close(c);
}
END_TEST

START_TEST(timeout_mid_copy_out)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "SET jit = off"); /* compiling the plan would take longer than the timeout */
    evdb_copy_opts o = {0};
    o.timeout = 0.5;
    o.buffer_bytes = 16 * 1024;
    sink s = {0};
    s.pause_first = true; /* the reader stops: the server waits */
    evdb_copy *cp =
        evdb_copy_out(c,
                      "COPY (SELECT g, repeat('x', 100) FROM generate_series(1, 1000) a, "
                      "generate_series(1, 100000) g) TO STDOUT",
                      on_data, &s, &o);
    ck_assert_ptr_nonnull(cp);
    evdb_future *f = counted(evdb_copy_future(cp));
    s.final = f;
    t_expect_fail(f, EVDB_ETIMEDOUT, NULL);
    size_t calls = s.calls;
    ck_assert_uint_eq(calls, 1);
    ck_assert_int_eq(evdb_copy_resume(cp), 0);
    /* The connection serves again once the cancel has settled. */
    ck_assert_int_eq(t_query_int(c, "SELECT 7"), 7);
    ck_assert_uint_eq(s.calls, calls);
    ck_assert_uint_eq(s.calls_after_final, 0);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    free(s.buf);
    ck_assert_int_eq(done_calls, 1);
    t_conn_close(c);
}
END_TEST

/* ---- pause / resume ---- */

START_TEST(pause_resume_copy_out)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    evdb_copy_opts o = {0};
    o.buffer_bytes = 32 * 1024;
    sink s = {0};
    s.pause_first = true;
    evdb_copy *cp = evdb_copy_out(c,
                                  "COPY (SELECT g, md5(g::text) FROM generate_series(1, 100000) g) "
                                  "TO STDOUT",
                                  on_data, &s, &o);
    ck_assert_ptr_nonnull(cp);
    evdb_future *f = counted(evdb_copy_future(cp));
    s.final = f;
    t_sleep(L, 0.3);
    /* Paused after the first delivery: nothing more came, reading stopped
     * with at most the bound (plus one message) held, and the copy waits. */
    ck_assert_uint_eq(s.calls, 1);
    ck_assert_uint_le(evdb_copy_buffered(cp), o.buffer_bytes + 256);
    ck_assert_int_eq(evdb_future_status(f), EVDB_PENDING);
    ck_assert_int_eq(evdb_copy_resume(cp), 0);
    expect_affected(f, 100000);
    ck_assert_uint_eq(count_lines(&s), 100000);
    ck_assert_uint_eq(s.calls_after_final, 0);
    ck_assert_int_eq(memcmp(s.buf, "1\tc4ca4238a0b923820dcc509a6f75849b\n", 35), 0);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    free(s.buf);
    ck_assert_int_eq(t_query_int(c, "SELECT 1"), 1);
    ck_assert_int_eq(done_calls, 1);
    t_conn_close(c);
}
END_TEST

/* ---- the row encoder ---- */

START_TEST(encoder_every_type)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    t_exec_ok(c, "SET TIME ZONE 'America/New_York'");
    t_exec_ok(c, "CREATE TEMP TABLE v (i int8, u numeric, d float8, b bool, t text, raw bytea, "
                 "n numeric, dt date, tm time, tz timetz, ts timestamp, tstz timestamptz, "
                 "iv interval, id uuid, j jsonb, ai int8[], at text[], ab bytea[])");
    static const char *const nasty[] = {
        "tab\there",        "new\nline", "cr\rhere", "back\\slash", "\\N",   "NULL",
        "\"quoted\" {a,b}", "ünïcødé ✓", "",         " lead",       "a\\tb", "x",
    };
    enum { NN = sizeof nasty / sizeof *nasty };
    static const uint8_t uuid[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
                                     0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    static const uint8_t raw[] = {0, 1, '\\', '\t', '\n', 0xff, 'N'};
    const double doubles[] = {0.1, -1e-300, 1.7976931348623157e308, 1.0 / 3, NAN, INFINITY};
    int64_t ints[] = {INT64_MIN, -1, 0, INT64_MAX};
    int32_t d2000;
    ck_assert_int_eq(evdb_date_from_ymd(2000, 2, 29, &d2000), 0);
    int32_t dbc;
    ck_assert_int_eq(evdb_date_from_ymd(-43, 3, 15, &dbc), 0);
    evdb_copy *cp = evdb_copy_in(c, "COPY v FROM STDIN", NULL);
    ck_assert_ptr_nonnull(cp);
    for (int r = 0; r < NN; r++) {
        evdb_value bytes_elems[2] = {evdb_bytes(raw, sizeof raw), evdb_null()};
        const char *texts[3] = {nasty[r], NULL, nasty[(r + 1) % NN]};
        evdb_value row[18] = {
            evdb_int(ints[r % 4]),
            evdb_uint(UINT64_MAX - (uint64_t)r),
            evdb_double(doubles[r % 6]),
            evdb_bool(r % 2),
            evdb_text(nasty[r]),
            evdb_bytes(raw, (size_t)r % (sizeof raw + 1)),
            evdb_numeric(r % 2 ? "-123456789012345678901234567890.000000000000000001" : "NaN"),
            evdb_date(r % 3 == 0   ? d2000
                      : r % 3 == 1 ? dbc
                                   : EVDB_DATE_INFINITY),
            evdb_time((int64_t)r * 3600000000 + 1),
            evdb_timetz((int64_t)r * 60000000 + 999999, (r - 6) * 1800),
            evdb_timestamp((int64_t)d2000 * EVDB_USECS_PER_DAY + r - 5),
            evdb_timestamptz(r == 0 ? EVDB_TIMESTAMP_NEG_INFINITY
                                    : (int64_t)dbc * EVDB_USECS_PER_DAY + r * 1000001),
            evdb_interval_value(r - 6, 6 - r, -(int64_t)r * 3723000001),
            evdb_uuid(uuid),
            evdb_json("{\"k\": \"v\\tw\\n\", \"back\": \"\\\\\"}"),
            evdb_array_int64(ints, (size_t)r % 5),
            evdb_array_text(texts, 3),
            evdb_array_values(bytes_elems, 2),
        };
        if (r == NN - 1)
            for (int k = 0; k < 18; k++)
                row[k] = evdb_null();
        ck_assert_int_eq(evdb_copy_write_row(cp, row, 18), 0);
    }
    evdb_future *f = counted(evdb_copy_end(cp));
    expect_affected(f, NN);
    evdb_future_unref(f);
    evdb_copy_free(cp);

    evdb_future *q =
        t_run_ok(c,
                 "SELECT i, u::text, d, b, t, raw, n::text, dt, tm, tz, ts, tstz, iv, id, "
                 "j->>'k', ai, at, ab, j->>'back' FROM v ORDER BY ctid",
                 NULL, 0);
    const evdb_result *res = evdb_future_result(q);
    ck_assert_uint_eq(evdb_result_nrows(res), NN);
    for (size_t r = 0; r < NN - 1; r++) {
        int64_t i;
        ck_assert_int_eq(evdb_result_int(res, r, 0, &i), 0);
        ck_assert_int_eq(i, ints[r % 4]);
        char ubuf[32];
        snprintf(ubuf, sizeof ubuf, "%llu", (unsigned long long)(UINT64_MAX - r));
        t_expect_cell(res, r, 1, ubuf);
        double d;
        ck_assert_int_eq(evdb_result_double(res, r, 2, &d), 0);
        if (isnan(doubles[r % 6]))
            ck_assert(isnan(d));
        else
            ck_assert_msg(d == doubles[r % 6], "row %zu: %.17g", r, d);
        bool b;
        ck_assert_int_eq(evdb_result_bool(res, r, 3, &b), 0);
        ck_assert_int_eq(b, (int)(r % 2));
        t_expect_cell(res, r, 4, nasty[r]);
        size_t blen;
        const void *bp = evdb_result_bytes(res, r, 5, &blen);
        ck_assert_uint_eq(blen, r % (sizeof raw + 1));
        ck_assert(blen == 0 || memcmp(bp, raw, blen) == 0);
        t_expect_cell(res, r, 6,
                      r % 2 ? "-123456789012345678901234567890.000000000000000001" : "NaN");
        int32_t dt;
        ck_assert_int_eq(evdb_result_date(res, r, 7, &dt), 0);
        ck_assert_int_eq(dt, r % 3 == 0 ? d2000 : r % 3 == 1 ? dbc : EVDB_DATE_INFINITY);
        int64_t us;
        int32_t off;
        ck_assert_int_eq(evdb_result_time(res, r, 8, &us), 0);
        ck_assert_int_eq(us, (int64_t)r * 3600000000 + 1);
        ck_assert_int_eq(evdb_result_timetz(res, r, 9, &us, &off), 0);
        ck_assert_int_eq(us, (int64_t)r * 60000000 + 999999);
        ck_assert_int_eq(off, ((int)r - 6) * 1800);
        ck_assert_int_eq(evdb_result_timestamp(res, r, 10, &us), 0);
        ck_assert_int_eq(us, (int64_t)d2000 * EVDB_USECS_PER_DAY + (int64_t)r - 5);
        ck_assert_int_eq(evdb_result_timestamptz(res, r, 11, &us, &off), 0);
        ck_assert_int_eq(us, r == 0 ? EVDB_TIMESTAMP_NEG_INFINITY
                                    : (int64_t)dbc * EVDB_USECS_PER_DAY + (int64_t)r * 1000001);
        evdb_interval iv;
        ck_assert_int_eq(evdb_result_interval(res, r, 12, &iv), 0);
        ck_assert_int_eq(iv.months, (int)r - 6);
        ck_assert_int_eq(iv.days, 6 - (int)r);
        ck_assert_int_eq(iv.us, -(int64_t)r * 3723000001);
        uint8_t u[16];
        ck_assert_int_eq(evdb_result_uuid(res, r, 13, u), 0);
        ck_assert_int_eq(memcmp(u, uuid, 16), 0);
        t_expect_cell(res, r, 14, "v\tw\n");
        t_expect_cell(res, r, 18, "\\");
        evdb_array *a;
        ck_assert_int_eq(evdb_result_array(res, r, 15, &a), 0);
        ck_assert_uint_eq(evdb_array_len(a), r % 5);
        for (size_t k = 0; k < r % 5; k++) {
            ck_assert_int_eq(evdb_array_get_int(a, k, &i), 0);
            ck_assert_int_eq(i, ints[k]);
        }
        evdb_array_free(a);
        ck_assert_int_eq(evdb_result_array(res, r, 16, &a), 0);
        ck_assert_uint_eq(evdb_array_len(a), 3);
        size_t tl;
        ck_assert_str_eq(evdb_array_get_text(a, 0, &tl), nasty[r]);
        ck_assert(evdb_array_isnull(a, 1));
        ck_assert_str_eq(evdb_array_get_text(a, 2, &tl), nasty[(r + 1) % NN]);
        evdb_array_free(a);
        ck_assert_int_eq(evdb_result_array(res, r, 17, &a), 0);
        ck_assert_uint_eq(evdb_array_len(a), 2);
        bp = evdb_array_get_bytes(a, 0, &blen);
        ck_assert_uint_eq(blen, sizeof raw);
        ck_assert_int_eq(memcmp(bp, raw, blen), 0);
        ck_assert(evdb_array_isnull(a, 1));
        evdb_array_free(a);
    }
    for (size_t k = 0; k < 18; k++)
        ck_assert(evdb_result_isnull(res, NN - 1, k));
    evdb_future_unref(q);

    /* Refused values leave nothing queued. */
    cp = evdb_copy_in(c, "COPY v (t) FROM STDIN", NULL);
    evdb_value bad = evdb_textn("a\0b", 3);
    ck_assert_int_eq(evdb_copy_write_row(cp, &bad, 1), EVDB_EINVAL);
    ck_assert_int_eq(evdb_copy_write_row(cp, NULL, 1), EVDB_EINVAL);
    ck_assert_uint_eq(evdb_copy_buffered(cp), 0);
    f = counted(evdb_copy_end(cp));
    expect_affected(f, 0);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    ck_assert_int_eq(done_calls, 2);
    t_conn_close(c);
}
END_TEST

/* ---- pooled ---- */

START_TEST(pooled_copy)
{
    evdb_pool_opts po = {0};
    po.max_conns = 2;
    evdb_pool *p = t_pool_new(L, t_pg_url(), &po);
    t_pool_exec_ok(p, "CREATE TABLE IF NOT EXISTS copy_pooled (id int PRIMARY KEY, name text)");
    t_pool_exec_ok(p, "TRUNCATE copy_pooled");
    evdb_future *af = evdb_pool_acquire(p, 5.0);
    ck_assert_int_eq(t_wait(af), 0);
    evdb_conn *c = evdb_future_take_conn(af);
    evdb_future_unref(af);
    evdb_copy *cp = evdb_copy_in(c, "COPY copy_pooled FROM STDIN", NULL);
    ck_assert_ptr_nonnull(cp);
    write_rows(cp, 0, 10000);
    /* The pool serves others meanwhile, on its other connection. */
    ck_assert_int_eq(t_pool_int(p, "SELECT 5"), 5);
    evdb_future *f = counted(evdb_copy_end(cp));
    expect_affected(f, 10000);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    ck_assert_int_eq(t_pool_int(p, "SELECT count(*) FROM copy_pooled"), 10000);
    t_pool_exec_ok(p, "DROP TABLE copy_pooled");
    ck_assert_int_eq(done_calls, 1);
    t_pool_close(p);
}
END_TEST

/* ---- bad input ---- */

START_TEST(bad_input)
{
    evdb_conn *c = t_conn_open(L, t_pg_url(), NULL);
    ck_assert_ptr_null(evdb_copy_in(NULL, "COPY t FROM STDIN", NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_copy_in(c, NULL, NULL));
    ck_assert_ptr_null(evdb_copy_in(c, "SELECT 1", NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_copy_out(c, "COPY t TO STDOUT", NULL, NULL, NULL));
    ck_assert_int_eq(evdb_copy_write(NULL, "x", 1), EVDB_EINVAL);
    ck_assert_int_eq(evdb_copy_pause(NULL), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_copy_end(NULL));
    ck_assert_ptr_null(evdb_copy_writable(NULL));
    evdb_copy_free(NULL);
    /* The wrong direction: refused clearly, the connection still serves. */
    t_exec_ok(c, "CREATE TEMP TABLE t (id int)");
    evdb_copy *cp = evdb_copy_in(c, "COPY t TO STDOUT", NULL);
    ck_assert_ptr_nonnull(cp);
    ck_assert_ptr_null(evdb_copy_abort(NULL, NULL));
    ck_assert_int_eq(evdb_copy_pause(cp), EVDB_EINVAL);
    evdb_future *f = counted(evdb_copy_end(cp));
    t_expect_fail(f, EVDB_EINVAL, NULL);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    sink s = {0};
    cp = evdb_copy_out(c, "COPY t FROM STDIN", on_data, &s, NULL);
    ck_assert_ptr_nonnull(cp);
    ck_assert_int_eq(evdb_copy_write(cp, "1\n", 2), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_copy_end(cp));
    f = counted(evdb_copy_future(cp));
    t_expect_fail(f, EVDB_EINVAL, NULL);
    evdb_future_unref(f);
    evdb_copy_free(cp);
    /* COPY as a plain query is still refused. */
    f = t_submit(c, "COPY t TO STDOUT", NULL, 0, 0, 0);
    t_expect_fail(f, EVDB_ENOTSUP, NULL);
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT 3"), 3);
    ck_assert_int_eq(done_calls, 2);
    t_conn_close(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("copy");
    TCase *tc = tcase_create("copy");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    suite_add_tcase(s, tc);
    tcase_add_test(tc, text_in_and_out);
    tcase_add_test(tc, binary_round_trip);
    tcase_add_test(tc, backpressure_bounded);
    tcase_add_test(tc, duplicate_key_mid_copy);
    tcase_add_test(tc, abort_copy_in);
    tcase_add_test(tc, timeout_mid_copy_in);
    tcase_add_test(tc, timeout_mid_copy_out);
    tcase_add_test(tc, pause_resume_copy_out);
    tcase_add_test(tc, encoder_every_type);
    tcase_add_test(tc, pooled_copy);
    tcase_add_test(tc, bad_input);
    return t_run_suite(s);
}
