/*
 * Batch execution (include/evdb/many.h) against a real server: the cases
 * both backends share. integ_many_pg.c and integ_many_my.c define B (the
 * backend's SQL) and include this, so a build with one driver keeps the
 * other's suite out.
 *
 * Every case counts callbacks (exactly once) and checks with a SELECT
 * what a failing row left behind.
 */
#ifndef EVDB_TEST_MANY_CASES_H
#define EVDB_TEST_MANY_CASES_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 120
#define BIG_ROWS 10000
#define SMALL_ROWS 10
#define FAIL_ROW 4

typedef struct many_backend {
    const char *(*url)(void);
    const char *create_sql;  /* many_t (id int PK, t text, b bytes, i bigint, d double,
                                dt date, ts timestamp, f bool) */
    const char *insert_id;   /* 1 parameter: id */
    const char *insert_all;  /* 8 parameters, in column order */
    const char *select_all;  /* the columns in order, ORDER BY id */
    const char *slow_insert; /* 2 parameters: id, seconds to sleep first */
    const char *begin;
    const char *null_state; /* SQLSTATE of a NULL primary key */
} many_backend;

static const many_backend *B;
static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
}

static void teardown(void)
{
    t_loop_free(L);
}

static void counted(evdb_future *f, void *arg)
{
    (void)f;
    (*(int *)arg)++;
}

/* A connection (opts may be NULL) with a fresh many_t. */
static evdb_conn *conn_with_table(const evdb_conn_opts *opts, const char *url)
{
    evdb_conn *c = t_conn_open(L, url ? url : B->url(), opts);
    t_exec_ok(c, "DROP TABLE IF EXISTS many_t");
    t_exec_ok(c, B->create_sql);
    return c;
}

/* n rows of one id each, first .. first+n-1; the caller frees. */
static evdb_value *id_rows(size_t n, int first)
{
    evdb_value *v = malloc(n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++)
        v[i] = evdb_int(first + (int)i);
    return v;
}

/* Wait for f, which must succeed, and take its result. */
static const evdb_result *wait_ok(evdb_future *f, const char *what)
{
    ck_assert_ptr_nonnull(f);
    int rc = t_wait(f);
    ck_assert_msg(rc == 0, "%s: %s", what, evdb_error_message(evdb_future_error(f)));
    return evdb_future_result(f);
}

static int64_t count_rows(evdb_conn *c)
{
    return t_query_int(c, "SELECT COUNT(*) FROM many_t");
}

/* 10,000 rows each way, counted by the server. */
static void run_ten_thousand(const char *url)
{
    evdb_conn *c = conn_with_table(NULL, url);
    evdb_value *rows = id_rows(BIG_ROWS, 1);
    int done = 0;
    evdb_future *f =
        evdb_conn_execute_many(c, B->insert_id, rows, 1, BIG_ROWS, EVDB_MANY_PER_ROW, NULL);
    ck_assert_ptr_nonnull(f);
    evdb_future_on_done(f, counted, &done);
    const evdb_result *r = wait_ok(f, "per row");
    size_t n = 0;
    for (const evdb_result *x = r; x; x = evdb_result_next(x))
        n++;
    ck_assert_uint_eq(n, BIG_ROWS);
    ck_assert_uint_eq(evdb_many_failed(r), 0);
    ck_assert_int_eq(evdb_many_affected(r), BIG_ROWS);
    ck_assert_int_eq(count_rows(c), BIG_ROWS);
    evdb_future_unref(f);

    free(rows);
    rows = id_rows(BIG_ROWS, BIG_ROWS + 1);
    f = evdb_conn_execute_many(c, B->insert_id, rows, 1, BIG_ROWS, EVDB_MANY_ATOMIC, NULL);
    free(rows); /* copied at submit */
    ck_assert_ptr_nonnull(f);
    evdb_future_on_done(f, counted, &done);
    r = wait_ok(f, "atomic");
    ck_assert_ptr_null(evdb_result_next(r));
    ck_assert_int_eq(evdb_result_affected(r), BIG_ROWS);
    ck_assert_int_eq(count_rows(c), 2 * BIG_ROWS);
    evdb_future_unref(f);
    t_run_for(L, 0.01);
    ck_assert_int_eq(done, 2);
    t_conn_close(c);
}

START_TEST(ten_thousand_rows_inserted_and_counted)
{
    run_ten_thousand(NULL);
}
END_TEST

/* Every parameter type batch execution binds, NULLs in every column, read
 * back as sent. */
START_TEST(every_parameter_type_round_trips)
{
    evdb_conn *c = conn_with_table(NULL, NULL);
    enum { NCOLS = 8, NROWS = 3 };
    static const unsigned char blob[] = {0, 1, 2, 0xff, 'x'};
    int32_t day;
    ck_assert_int_eq(evdb_date_from_ymd(2024, 2, 29, &day), 0);
    int64_t ts = (int64_t)day * EVDB_USECS_PER_DAY + INT64_C(45296789012); /* 12:34:56.789012 */
    evdb_value p[NROWS * NCOLS] = {
        evdb_int(1),
        evdb_text("héllo"),
        evdb_bytes(blob, sizeof blob),
        evdb_int(INT64_C(-9007199254740993)),
        evdb_double(0.1),
        evdb_date(day),
        evdb_timestamp(ts),
        evdb_bool(true),
        evdb_int(2),
        evdb_null(),
        evdb_null(),
        evdb_null(),
        evdb_null(),
        evdb_null(),
        evdb_null(),
        evdb_null(),
        evdb_int(3),
        evdb_text(""),
        evdb_bytes("", 0),
        evdb_int(INT64_MAX),
        evdb_double(-1.5e300),
        evdb_date(0),
        evdb_timestamp(0),
        evdb_bool(false),
    };
    for (int mode = 0; mode < 2; mode++) {
        t_exec_ok(c, "DELETE FROM many_t");
        evdb_future *f =
            evdb_conn_execute_many(c, B->insert_all, p, NCOLS, NROWS, (evdb_many_mode)mode, NULL);
        const evdb_result *r = wait_ok(f, mode ? "atomic" : "per row");
        ck_assert_int_eq(evdb_many_affected(r), NROWS);
        evdb_future_unref(f);
        f = t_run_ok(c, B->select_all, NULL, 0);
        r = evdb_future_result(f);
        ck_assert_uint_eq(evdb_result_nrows(r), NROWS);
        size_t len;
        ck_assert_str_eq(evdb_result_text(r, 0, 1, &len), "héllo");
        const void *b = evdb_result_bytes(r, 0, 2, &len);
        ck_assert_uint_eq(len, sizeof blob);
        ck_assert_int_eq(memcmp(b, blob, sizeof blob), 0);
        ck_assert_int_eq(t_cell_int(r, 0, 3), INT64_C(-9007199254740993));
        double d;
        ck_assert_int_eq(evdb_result_double(r, 0, 4, &d), 0);
        ck_assert(d == 0.1);
        int32_t got_day;
        ck_assert_int_eq(evdb_result_date(r, 0, 5, &got_day), 0);
        ck_assert_int_eq(got_day, day);
        int64_t got_ts;
        ck_assert_int_eq(evdb_result_timestamp(r, 0, 6, &got_ts), 0);
        ck_assert_int_eq(got_ts, ts);
        bool flag;
        ck_assert_int_eq(evdb_result_bool(r, 0, 7, &flag), 0);
        ck_assert(flag);
        for (size_t col = 1; col < NCOLS; col++)
            ck_assert_msg(evdb_result_isnull(r, 1, col), "row 1 col %zu not NULL", col);
        ck_assert_str_eq(evdb_result_text(r, 2, 1, &len), "");
        ck_assert_int_eq(t_cell_int(r, 2, 3), INT64_MAX);
        ck_assert_int_eq(evdb_result_double(r, 2, 4, &d), 0);
        ck_assert(d == -1.5e300);
        ck_assert_int_eq(evdb_result_timestamp(r, 2, 6, &got_ts), 0);
        ck_assert_int_eq(got_ts, 0);
        ck_assert_int_eq(evdb_result_bool(r, 2, 7, &flag), 0);
        ck_assert(!flag);
        evdb_future_unref(f);
    }
    t_conn_close(c);
}
END_TEST

/* SMALL_ROWS ids 1.., row k's id NULL (the primary key refuses it,
 * whatever order the rows run in). */
static evdb_value *rows_failing_at(size_t k)
{
    evdb_value *v = id_rows(SMALL_ROWS, 1);
    v[k] = evdb_null();
    return v;
}

/* Per row: row FAIL_ROW fails alone; every other row took effect. */
static void run_per_row_failure(evdb_conn *c, evdb_pool *p)
{
    evdb_value *rows = rows_failing_at(FAIL_ROW);
    int done = 0;
    evdb_future *f =
        c ? evdb_conn_execute_many(c, B->insert_id, rows, 1, SMALL_ROWS, EVDB_MANY_PER_ROW, NULL)
          : evdb_pool_execute_many(p, B->insert_id, rows, 1, SMALL_ROWS, EVDB_MANY_PER_ROW, NULL);
    free(rows);
    ck_assert_ptr_nonnull(f);
    evdb_future_on_done(f, counted, &done);
    const evdb_result *r = wait_ok(f, "per row with a failing row");
    ck_assert_uint_eq(evdb_many_failed(r), 1);
    ck_assert_int_eq(evdb_many_affected(r), SMALL_ROWS - 1);
    size_t k = 0;
    for (const evdb_result *x = r; x; x = evdb_result_next(x), k++) {
        const evdb_error *e = evdb_many_row_error(x);
        if (k != FAIL_ROW) {
            ck_assert_msg(e == NULL, "row %zu failed: %s", k, evdb_error_message(e));
            ck_assert_int_eq(evdb_result_affected(x), 1);
            continue;
        }
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(evdb_error_code(e), EVDB_ESERVER);
        ck_assert_str_eq(evdb_error_sqlstate(e), B->null_state);
        ck_assert_int_eq(evdb_many_error_row(e), FAIL_ROW);
        ck_assert_msg(strncmp(evdb_error_message(e), "row 4: ", 7) == 0, "%s",
                      evdb_error_message(e));
    }
    ck_assert_uint_eq(k, SMALL_ROWS);
    evdb_future_unref(f);
    t_run_for(L, 0.01);
    ck_assert_int_eq(done, 1);
}

/* Atomic: the call fails naming row FAIL_ROW, and no row took effect. */
static void expect_atomic_failure(evdb_future *f, int *done)
{
    ck_assert_ptr_nonnull(f);
    evdb_future_on_done(f, counted, done);
    ck_assert_int_eq(t_wait(f), EVDB_ESERVER);
    const evdb_error *e = evdb_future_error(f);
    ck_assert_int_eq(evdb_many_error_row(e), FAIL_ROW);
    ck_assert_msg(strncmp(evdb_error_message(e), "row 4 of 10: ", 13) == 0, "%s",
                  evdb_error_message(e));
    evdb_future_unref(f);
}

static void run_atomic_failure(const char *url)
{
    evdb_conn *c = conn_with_table(NULL, url);
    evdb_value *rows = rows_failing_at(FAIL_ROW);
    int done = 0;
    expect_atomic_failure(
        evdb_conn_execute_many(c, B->insert_id, rows, 1, SMALL_ROWS, EVDB_MANY_ATOMIC, NULL),
        &done);
    ck_assert_int_eq(count_rows(c), 0);
    /* The connection serves on, and the same rows without the clash go. */
    rows[FAIL_ROW] = evdb_int(FAIL_ROW + 1);
    evdb_future *f =
        evdb_conn_execute_many(c, B->insert_id, rows, 1, SMALL_ROWS, EVDB_MANY_ATOMIC, NULL);
    ck_assert_int_eq(evdb_result_affected(wait_ok(f, "atomic again")), SMALL_ROWS);
    evdb_future_unref(f);
    ck_assert_int_eq(count_rows(c), SMALL_ROWS);
    free(rows);
    t_run_for(L, 0.01);
    ck_assert_int_eq(done, 1);
    t_conn_close(c);
}

START_TEST(failing_row_fails_alone_per_row)
{
    evdb_conn *c = conn_with_table(NULL, NULL);
    run_per_row_failure(c, NULL);
    ck_assert_int_eq(count_rows(c), SMALL_ROWS - 1);
    t_conn_close(c);
}
END_TEST

START_TEST(failing_row_undoes_every_row_atomic)
{
    run_atomic_failure(NULL);
}
END_TEST

/* Inside the caller's transaction: the atomic call fails alone on MariaDB
 * (savepoint), aborts the block on PostgreSQL; per row, like queries. */
START_TEST(atomic_failure_inside_a_transaction)
{
    evdb_conn *c = conn_with_table(NULL, NULL);
    t_exec_ok(c, B->begin);
    evdb_value one = evdb_int(100);
    evdb_future_unref(t_run_ok(c, B->insert_id, &one, 1));
    evdb_value *rows = rows_failing_at(FAIL_ROW);
    int done = 0;
    expect_atomic_failure(
        evdb_conn_execute_many(c, B->insert_id, rows, 1, SMALL_ROWS, EVDB_MANY_ATOMIC, NULL),
        &done);
    free(rows);
    if (B->begin[0] == 'B') {
        /* PostgreSQL: the block is aborted; the caller rolls back. */
        evdb_future *f = t_submit(c, "SELECT 1", NULL, 0, 0, 0);
        t_expect_fail(f, EVDB_ESERVER, "25P02");
        evdb_future_unref(f);
        t_exec_ok(c, "ROLLBACK");
        ck_assert_int_eq(count_rows(c), 0);
    } else {
        /* MariaDB: the batch's savepoint went back; the row before stays. */
        t_exec_ok(c, "COMMIT");
        ck_assert_int_eq(count_rows(c), 1);
    }
    t_run_for(L, 0.01);
    ck_assert_int_eq(done, 1);
    t_conn_close(c);
}
END_TEST

START_TEST(bad_input_is_refused_at_once)
{
    evdb_conn *c = conn_with_table(NULL, NULL);
    evdb_value v[4] = {evdb_int(1), evdb_int(2), evdb_int(3), evdb_int(4)};
    struct {
        evdb_conn *c;
        const char *sql;
        const evdb_value *p;
        size_t ncols, nrows;
        int mode;
    } bad[] = {
        {NULL, B->insert_id, v, 1, 1, 0},
        {c, NULL, v, 1, 1, 0},
        {c, "", v, 1, 1, 0},
        {c, B->insert_id, v, 1, 0, 0},
        {c, B->insert_id, v, 1, 0, 1},
        {c, B->insert_id, NULL, 1, 4, 0},
        {c, B->insert_id, v, EVDB_MANY_MAX_COLS + 1, 1, 0},
        {c, B->insert_id, v, 1, (size_t)EVDB_MANY_MAX_ROWS + 1, 0},
        {c, B->insert_id, v, 1, (size_t)EVDB_BATCH_MAX + 1, 1},
        {c, B->insert_id, v, 1, SIZE_MAX, 0},
        {c, B->insert_id, v, 1, 4, 7},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        evdb_future *f = evdb_conn_execute_many(bad[i].c, bad[i].sql, bad[i].p, bad[i].ncols,
                                                bad[i].nrows, (evdb_many_mode)bad[i].mode, NULL);
        ck_assert_msg(f == NULL, "case %zu accepted", i);
        ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
        ck_assert(strstr(evdb_error_message(evdb_last_error()), "execute_many") != NULL);
    }
    evdb_query_opts neg = {.timeout = -1};
    ck_assert_ptr_null(evdb_conn_execute_many(c, B->insert_id, v, 1, 4, EVDB_MANY_PER_ROW, &neg));
    evdb_value bad_text = evdb_textn(NULL, 5);
    ck_assert_ptr_null(
        evdb_conn_execute_many(c, B->insert_id, &bad_text, 1, 1, EVDB_MANY_ATOMIC, NULL));
    ck_assert_ptr_null(evdb_pool_execute_many(NULL, B->insert_id, v, 1, 1, EVDB_MANY_ATOMIC, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);

    /* Two parameters per row for one placeholder: the server says so, for
     * every row (per row) or for the batch (atomic); nothing took effect. */
    evdb_future *f = evdb_conn_execute_many(c, B->insert_id, v, 2, 2, EVDB_MANY_PER_ROW, NULL);
    const evdb_result *r = wait_ok(f, "mismatched per row");
    ck_assert_uint_eq(evdb_many_failed(r), 2);
    evdb_future_unref(f);
    f = evdb_conn_execute_many(c, B->insert_id, v, 2, 2, EVDB_MANY_ATOMIC, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_lt(t_wait(f), 0);
    ck_assert_int_eq(evdb_many_error_row(evdb_future_error(f)), 0);
    evdb_future_unref(f);
    ck_assert_int_eq(count_rows(c), 0);
    t_conn_close(c);
}
END_TEST

/* n rows of (id, sleep seconds); the caller frees. */
static evdb_value *slow_rows(size_t n, double sleep_s)
{
    evdb_value *v = malloc(2 * n * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < n; i++) {
        v[2 * i] = evdb_int((int64_t)i + 1);
        v[2 * i + 1] = evdb_double(sleep_s);
    }
    return v;
}

/* A large slow batch times out: the callback runs once, with
 * EVDB_ETIMEDOUT at the deadline; the connection serves again after. */
START_TEST(timeout_of_a_large_batch)
{
    evdb_conn *c = conn_with_table(NULL, NULL);
    enum { SLOW_ROWS = 2000 };
    evdb_value *rows = slow_rows(SLOW_ROWS, 0.002);
    evdb_query_opts o = {.timeout = 0.3};
    for (int mode = 0; mode < 2; mode++) {
        int done = 0;
        double t0 = t_now();
        evdb_future *f =
            evdb_conn_execute_many(c, B->slow_insert, rows, 2, SLOW_ROWS, (evdb_many_mode)mode, &o);
        ck_assert_ptr_nonnull(f);
        evdb_future_on_done(f, counted, &done);
        ck_assert_int_eq(t_wait(f), EVDB_ETIMEDOUT);
        double took = t_now() - t0;
        ck_assert_msg(took < 2.0, "mode %d: the timeout took %.2f s", mode, took);
        evdb_future_unref(f);
        /* Usable after: a query waits for the cancel to settle. */
        int64_t n = count_rows(c);
        if (mode == EVDB_MANY_ATOMIC)
            ck_assert_int_eq(n, 0);
        else
            ck_assert_int_lt(n, SLOW_ROWS);
        t_run_for(L, 0.05);
        ck_assert_int_eq(done, 1);
        t_exec_ok(c, "DELETE FROM many_t");
    }
    free(rows);
    t_conn_close(c);
}
END_TEST

/* Cancel: once, at once; queued rows never run. */
START_TEST(cancel_of_a_large_batch)
{
    evdb_conn *c = conn_with_table(NULL, NULL);
    enum { SLOW_ROWS = 2000 };
    evdb_value *rows = slow_rows(SLOW_ROWS, 0.002);
    for (int mode = 0; mode < 2; mode++) {
        int done = 0;
        evdb_future *f = evdb_conn_execute_many(c, B->slow_insert, rows, 2, SLOW_ROWS,
                                                (evdb_many_mode)mode, NULL);
        ck_assert_ptr_nonnull(f);
        evdb_future_on_done(f, counted, &done);
        t_sleep(L, 0.1);
        ck_assert_int_eq(evdb_future_cancel(f), 0);
        ck_assert_int_eq(evdb_future_cancel(f), EVDB_ESTATE); /* idempotent */
        ck_assert_int_eq(t_wait(f), EVDB_ECANCELED);
        evdb_future_unref(f);
        int64_t n = count_rows(c);
        ck_assert_int_lt(n, SLOW_ROWS);
        if (mode == EVDB_MANY_ATOMIC)
            ck_assert_int_eq(n, 0);
        t_run_for(L, 0.05);
        ck_assert_int_eq(done, 1);
        t_exec_ok(c, "DELETE FROM many_t");
    }
    free(rows);
    t_conn_close(c);
}
END_TEST

/* Through a pool: both modes, a failing row in each. */
START_TEST(pooled_execute_many)
{
    evdb_pool_opts po = {.max_conns = 3};
    evdb_pool *p = t_pool_new(L, B->url(), &po);
    t_pool_exec_ok(p, "DROP TABLE IF EXISTS many_t");
    t_pool_exec_ok(p, B->create_sql);
    evdb_value *rows = id_rows(BIG_ROWS, 1);
    evdb_future *f =
        evdb_pool_execute_many(p, B->insert_id, rows, 1, BIG_ROWS, EVDB_MANY_PER_ROW, NULL);
    const evdb_result *r = wait_ok(f, "pooled per row");
    ck_assert_int_eq(evdb_many_affected(r), BIG_ROWS);
    evdb_future_unref(f);
    free(rows);
    rows = id_rows(BIG_ROWS, BIG_ROWS + 1);
    f = evdb_pool_execute_many(p, B->insert_id, rows, 1, BIG_ROWS, EVDB_MANY_ATOMIC, NULL);
    ck_assert_int_eq(evdb_result_affected(wait_ok(f, "pooled atomic")), BIG_ROWS);
    evdb_future_unref(f);
    free(rows);
    ck_assert_int_eq(t_pool_int(p, "SELECT COUNT(*) FROM many_t"), 2 * BIG_ROWS);
    t_pool_exec_ok(p, "DELETE FROM many_t");
    run_per_row_failure(NULL, p);
    ck_assert_int_eq(t_pool_int(p, "SELECT COUNT(*) FROM many_t"), SMALL_ROWS - 1);
    t_pool_exec_ok(p, "DELETE FROM many_t");
    rows = rows_failing_at(FAIL_ROW);
    int done = 0;
    expect_atomic_failure(
        evdb_pool_execute_many(p, B->insert_id, rows, 1, SMALL_ROWS, EVDB_MANY_ATOMIC, NULL),
        &done);
    free(rows);
    ck_assert_int_eq(t_pool_int(p, "SELECT COUNT(*) FROM many_t"), 0);
    t_pool_exec_ok(p, "DROP TABLE many_t");
    t_pool_close(p);
    ck_assert_int_eq(done, 1);
}
END_TEST

/* The cases every backend runs; a suite adds its own. */
static TCase *many_common_cases(void)
{
    TCase *tc = tcase_create("execute_many");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, WATCHDOG_S);
    tcase_add_test(tc, ten_thousand_rows_inserted_and_counted);
    tcase_add_test(tc, every_parameter_type_round_trips);
    tcase_add_test(tc, failing_row_fails_alone_per_row);
    tcase_add_test(tc, failing_row_undoes_every_row_atomic);
    tcase_add_test(tc, atomic_failure_inside_a_transaction);
    tcase_add_test(tc, bad_input_is_refused_at_once);
    tcase_add_test(tc, timeout_of_a_large_batch);
    tcase_add_test(tc, cancel_of_a_large_batch);
    tcase_add_test(tc, pooled_execute_many);
    return tc;
}

#endif
