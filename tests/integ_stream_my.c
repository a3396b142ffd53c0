/*
 * Row streaming on MariaDB (a real server from scripts/testdb): every row
 * exactly once and in order (text protocol and prepared statements), batch
 * sizes, backpressure (a paused stream gets no more rows, and evdb's own
 * bytes stay far below the result's size), an error in the middle of the
 * rows, cancel and timeout in the middle (KILL QUERY; the connection
 * serves again), pooled streams and a stream pulled from a task. Every
 * callback is counted.
 *
 * Loop tests run over: 0 statement cache on, 1 off.
 */
#include <check.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#include "stream_consumer.h"

/* Sanitizers make the 200,000-row streams several times slower. */
#define WATCHDOG_S (T_UNDER_ASAN ? 150.0 : 25.0)
#define TEST_TIMEOUT_S (T_UNDER_ASAN ? 180 : 30)
#define NROWS 200000
#define SERIES_SQL "SELECT seq, REPEAT('x', 100) FROM seq_1_to_200000"
#define ENDLESS_SQL "SELECT seq FROM seq_1_to_100000000"

static struct ev_loop *L;

static evdb_conn *open_variant(int i)
{
    evdb_conn_opts o;
    memset(&o, 0, sizeof o);
    o.stmt_cache_size = i == 1 ? EVDB_STMT_CACHE_OFF : 0;
    return t_conn_open(L, t_my_url(), &o);
}

static evdb_stream *start(evdb_conn *c, const char *sql, seen *v, size_t batch_rows, double timeout)
{
    memset(v, 0, sizeof *v);
    v->next = 1;
    v->batch_rows = batch_rows ? batch_rows : EVDB_STREAM_BATCH_DEFAULT;
    evdb_stream_opts o;
    memset(&o, 0, sizeof o);
    o.batch_rows = batch_rows;
    o.timeout = timeout;
    o.on_batch = on_batch;
    o.arg = v;
    evdb_stream *s = evdb_conn_stream(c, sql, NULL, 0, &o);
    ck_assert_msg(s != NULL, "evdb_conn_stream: %s", evdb_error_message(evdb_last_error()));
    v->s = s;
    done_calls = 0;
    ck_assert_int_eq(evdb_future_on_done(evdb_stream_done(s), count_done, NULL), 0);
    return s;
}

/* The connection still answers, in order. */
static void still_works(evdb_conn *c)
{
    ck_assert_int_eq(t_query_int(c, "SELECT 41 + 1"), 42);
}

START_TEST(all_rows_in_order)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_variant(_i);
    seen v;
    evdb_stream *s = start(c, SERIES_SQL, &v, 777, 0);
    evdb_future *done = evdb_stream_done(s);
    ck_assert_int_eq(t_wait(done), 0);
    t_run_for(L, 0.02);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_eq(v.rows, NROWS);
    ck_assert_uint_eq(v.batches, (NROWS + 776) / 777);
    ck_assert_uint_eq(v.short_batches, 1);
    ck_assert(!v.after_end);
    const evdb_result *r = evdb_future_result(done);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(evdb_result_nrows(r), 0);
    ck_assert_uint_eq(evdb_result_ncols(r), 2);
    ck_assert_int_eq(evdb_result_affected(r), NROWS);
    evdb_stream_free(s);
    still_works(c);
    /* A prepared statement (parameters), default batch size. */
    evdb_value p[1] = {evdb_int(5000)};
    memset(&v, 0, sizeof v);
    v.next = 1;
    v.batch_rows = EVDB_STREAM_BATCH_DEFAULT;
    evdb_stream_opts o;
    memset(&o, 0, sizeof o);
    o.on_batch = on_batch;
    o.arg = &v;
    for (int round = 0; round < 2; round++) { /* the second from the cache */
        memset(&v, 0, sizeof v);
        v.next = 1;
        v.batch_rows = EVDB_STREAM_BATCH_DEFAULT;
        s = evdb_conn_stream(c, "SELECT seq FROM seq_1_to_100000 WHERE seq <= ?", p, 1, &o);
        ck_assert_ptr_nonnull(s);
        v.s = s;
        ck_assert_int_eq(t_wait(evdb_stream_done(s)), 0);
        ck_assert_uint_eq(v.rows, 5000);
        ck_assert_uint_eq(v.batches, 5);
        evdb_stream_free(s);
        still_works(c);
    }
    /* No rows. */
    s = start(c, "SELECT seq FROM seq_1_to_10 WHERE seq > 10", &v, 0, 0);
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), 0);
    ck_assert_uint_eq(v.batches, 0);
    evdb_stream_free(s);
    still_works(c);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

START_TEST(pause_bounded)
{
    L = t_loop_new(WATCHDOG_S);
    t_bytes_track();
    evdb_conn *c = open_variant(_i);
    still_works(c);
    t_bytes_peak_reset();
    seen v;
    evdb_stream *s = start(c, SERIES_SQL, &v, 1000, 0);
    v.pause_at = 2;
    for (int i = 0; i < 100 && v.batches < 2; i++)
        t_run_for(L, 0.05);
    t_run_for(L, 0.3);
    ck_assert_uint_eq(v.batches, 2);
    ck_assert_int_eq(evdb_future_status(evdb_stream_done(s)), EVDB_PENDING);
    ck_assert_int_eq(evdb_stream_resume(s), 0);
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), 0);
    t_run_for(L, 0.02);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_eq(v.rows, NROWS);
    ck_assert_msg(t_bytes_peak() < 2u * 1024 * 1024, "evdb held %zu bytes at the peak",
                  t_bytes_peak());
    evdb_stream_free(s);
    still_works(c);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

START_TEST(error_mid_stream)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_variant(_i);
    seen v;
    evdb_stream *s =
        start(c, "SELECT IF(seq = 150000, (SELECT 1 UNION SELECT 2), seq) FROM seq_1_to_200000", &v,
              1000, 0);
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), EVDB_ESERVER);
    ck_assert_str_eq(evdb_error_sqlstate(evdb_future_error(evdb_stream_done(s))), "21000");
    t_run_for(L, 0.02);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_ge(v.batches, 1);
    ck_assert_uint_le(v.rows, 149999);
    ck_assert(!v.after_end);
    evdb_stream_free(s);
    still_works(c);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

START_TEST(cancel_mid_stream)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_variant(_i);
    seen v;
    evdb_stream *s = start(c, ENDLESS_SQL, &v, 1000, 0);
    v.cancel_at = 3;
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), EVDB_ECANCELED);
    t_run_for(L, 0.05);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_eq(v.batches, 3);
    evdb_stream_free(s);
    double t0 = t_now();
    still_works(c);
    ck_assert_msg(t_now() - t0 < (T_UNDER_ASAN ? 30.0 : 5.0),
                  "the cancelled stream kept running on the server");
    /* While paused, by evdb_stream_free. */
    s = start(c, ENDLESS_SQL, &v, 1000, 0);
    v.pause_at = 1;
    evdb_future *done = evdb_future_ref(evdb_stream_done(s));
    for (int i = 0; i < 100 && v.batches == 0; i++)
        t_run_for(L, 0.05);
    t_run_for(L, 0.2);
    ck_assert_uint_eq(v.batches, 1);
    evdb_stream_free(s);
    ck_assert_int_eq(t_wait(done), EVDB_ECANCELED);
    evdb_future_unref(done);
    t_run_for(L, 0.05);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_eq(v.batches, 1);
    t0 = t_now();
    still_works(c);
    ck_assert_msg(t_now() - t0 < (T_UNDER_ASAN ? 30.0 : 5.0),
                  "the cancelled stream kept running on the server");
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

START_TEST(timeout_mid_stream)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_variant(_i);
    seen v;
    evdb_stream *s = start(c, ENDLESS_SQL, &v, 1000, 0.5);
    v.pause_at = 2;
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), EVDB_ETIMEDOUT);
    t_run_for(L, 0.05);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_eq(v.batches, 2);
    evdb_stream_free(s);
    still_works(c);
    s = start(c, ENDLESS_SQL, &v, 1000, 0.5);
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), EVDB_ETIMEDOUT);
    t_run_for(L, 0.05);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_ge(v.batches, 1);
    ck_assert(!v.after_end);
    evdb_stream_free(s);
    still_works(c);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

START_TEST(pooled_stream)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.max_conns = 1;
    evdb_pool *p = t_pool_new(L, t_my_url(), &po);
    seen v;
    memset(&v, 0, sizeof v);
    v.next = 1;
    v.batch_rows = 500;
    v.pause_at = 1;
    evdb_stream_opts o;
    memset(&o, 0, sizeof o);
    o.batch_rows = 500;
    o.on_batch = on_batch;
    o.arg = &v;
    evdb_stream *s = evdb_pool_stream(p, SERIES_SQL, NULL, 0, &o);
    ck_assert_ptr_nonnull(s);
    v.s = s;
    evdb_future *q = t_pool_submit(p, "SELECT 8", NULL, 0, 0, 0);
    for (int i = 0; i < 100 && v.batches == 0; i++)
        t_run_for(L, 0.05);
    t_run_for(L, 0.2);
    ck_assert_uint_eq(v.batches, 1);
    ck_assert_int_eq(evdb_future_status(q), EVDB_PENDING);
    ck_assert_int_eq(evdb_stream_resume(s), 0);
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), 0);
    ck_assert_uint_eq(v.rows, NROWS);
    ck_assert_int_eq(t_wait(q), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(q), 0, 0), 8);
    evdb_future_unref(q);
    evdb_stream_free(s);
    ck_assert_int_eq(t_pool_int(p, "SELECT 9"), 9);
    t_pool_close(p);
    t_loop_free(L);
}
END_TEST

typedef struct pull_arg {
    evdb_conn *c;
    size_t rows, batches;
    int64_t next;
    int status;
} pull_arg;

static void *pull_task(void *arg)
{
    pull_arg *a = arg;
    evdb_stream_opts o;
    memset(&o, 0, sizeof o);
    o.batch_rows = 2000;
    evdb_stream *s = evdb_conn_stream(a->c, SERIES_SQL, NULL, 0, &o);
    ck_assert_ptr_nonnull(s);
    for (;;) {
        evdb_future *f = evdb_stream_next(s);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(evdb_await(f), 0);
        const evdb_result *b = evdb_future_result(f);
        if (!b) {
            evdb_future_unref(f);
            break;
        }
        size_t n = evdb_result_nrows(b);
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(t_cell_int(b, i, 0), a->next++);
        a->rows += n;
        a->batches++;
        evdb_future_unref(f);
    }
    a->status = evdb_await(evdb_stream_done(s));
    evdb_stream_free(s);
    return NULL;
}

START_TEST(task_pull)
{
    L = t_loop_new(WATCHDOG_S);
    pull_arg a;
    memset(&a, 0, sizeof a);
    a.c = open_variant(_i);
    a.next = 1;
    ck_assert_int_eq(evdb_run(L, pull_task, &a, NULL), 0);
    ck_assert_int_eq(a.status, 0);
    ck_assert_uint_eq(a.rows, NROWS);
    ck_assert_uint_eq(a.batches, NROWS / 2000);
    still_works(a.c);
    t_conn_close(a.c);
    t_loop_free(L);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream_my");
    TCase *tc = tcase_create("stream");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    suite_add_tcase(s, tc);
    tcase_add_loop_test(tc, all_rows_in_order, 0, 2);
    tcase_add_loop_test(tc, pause_bounded, 0, 2);
    tcase_add_loop_test(tc, error_mid_stream, 0, 2);
    tcase_add_loop_test(tc, cancel_mid_stream, 0, 2);
    tcase_add_loop_test(tc, timeout_mid_stream, 0, 2);
    tcase_add_test(tc, pooled_stream);
    tcase_add_test(tc, task_pull);
    return t_run_suite(s);
}
