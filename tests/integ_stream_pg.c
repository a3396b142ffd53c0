/*
 * Row streaming on PostgreSQL (a real server from scripts/testdb): every
 * row exactly once and in order, batch sizes, backpressure (a paused
 * stream blocks the server, and evdb's own bytes stay far below the
 * result's size), an error in the middle of the rows, cancel and timeout
 * in the middle (cancelled on the server; the connection serves again),
 * the stream as a barrier on its connection, pooled streams, a stream
 * pulled from a task, and bad input. Every callback is counted.
 *
 * Loop tests run over: 0 pipelined + statement cache, 1 one query at a
 * time.
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
#define SERIES_SQL "SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g"

static struct ev_loop *L;

static evdb_conn *open_variant(int i)
{
    evdb_conn_opts o;
    memset(&o, 0, sizeof o);
    o.pipeline_depth = i == 1 ? 1 : 0;
    evdb_conn *c = t_conn_open(L, t_pg_url(), &o);
    /* The endless series look expensive to the planner: without this, JIT
     * compilation delays the first row by a few hundred ms. */
    t_exec_ok(c, "SET jit = off");
    return c;
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
    /* 777 does not divide 200000: the last batch is short. */
    evdb_stream *s = start(c, SERIES_SQL, &v, 777, 0);
    evdb_future *done = evdb_stream_done(s);
    ck_assert_int_eq(t_wait(done), 0);
    t_run_for(L, 0.02);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_eq(v.rows, NROWS);
    ck_assert_int_eq(v.next, NROWS + 1);
    ck_assert_uint_eq(v.batches, (NROWS + 776) / 777);
    ck_assert_uint_eq(v.short_batches, 1);
    ck_assert(!v.after_end);
    const evdb_result *r = evdb_future_result(done);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(evdb_result_nrows(r), 0);
    ck_assert_uint_eq(evdb_result_ncols(r), 2);
    ck_assert_str_eq(evdb_result_command(r), "SELECT 200000");
    evdb_stream_free(s);
    still_works(c);
    /* An empty result: no batch, the status alone. */
    s = start(c, "SELECT g FROM generate_series(1, 0) g", &v, 0, 0);
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), 0);
    ck_assert_uint_eq(v.batches, 0);
    ck_assert_str_eq(evdb_result_command(evdb_future_result(evdb_stream_done(s))), "SELECT 0");
    evdb_stream_free(s);
    /* The default batch size, with parameters. */
    evdb_value p[1] = {evdb_int(5000)};
    memset(&v, 0, sizeof v);
    v.next = 1;
    v.batch_rows = EVDB_STREAM_BATCH_DEFAULT;
    evdb_stream_opts o;
    memset(&o, 0, sizeof o);
    o.on_batch = on_batch;
    o.arg = &v;
    s = evdb_conn_stream(c, "SELECT g FROM generate_series(1, $1::int) g", p, 1, &o);
    ck_assert_ptr_nonnull(s);
    v.s = s;
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), 0);
    ck_assert_uint_eq(v.rows, 5000);
    ck_assert_uint_eq(v.batches, 5);
    evdb_stream_free(s);
    still_works(c);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

/* The session of the stream is blocked writing to the client. */
static bool server_blocked(evdb_conn *watcher, int64_t pid)
{
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld AND wait_event = "
             "'ClientWrite'",
             (long long)pid);
    return t_query_int(watcher, sql) == 1;
}

START_TEST(pause_blocks_server)
{
    L = t_loop_new(WATCHDOG_S);
    t_bytes_track();
    evdb_conn *c = open_variant(_i);
    evdb_conn *watcher = open_variant(1);
    still_works(c);
    int64_t pid = evdb_conn_server_id(c);
    t_bytes_peak_reset();
    seen v;
    evdb_stream *s = start(c, SERIES_SQL, &v, 1000, 0);
    v.pause_at = 2;
    /* Paused after the second batch: nothing more arrives, and the server
     * ends up waiting on its full socket. */
    bool blocked = false;
    for (int i = 0; i < 100 && !(blocked && v.batches == 2); i++) {
        t_run_for(L, 0.05);
        blocked = server_blocked(watcher, pid);
    }
    ck_assert_msg(blocked, "the server never blocked writing to the paused stream");
    ck_assert_uint_eq(v.batches, 2);
    t_run_for(L, 0.1);
    ck_assert_uint_eq(v.batches, 2);
    ck_assert_int_eq(evdb_future_status(evdb_stream_done(s)), EVDB_PENDING);
    /* Resumed: the rest, exactly once, in order. */
    ck_assert_int_eq(evdb_stream_resume(s), 0);
    ck_assert_int_eq(evdb_stream_resume(s), 0);
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), 0);
    t_run_for(L, 0.02);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_eq(v.rows, NROWS);
    /* About 25 MB of rows as a result would hold them; evdb held about two
     * batches of ~130 kB at a time. */
    ck_assert_msg(t_bytes_peak() < 2u * 1024 * 1024, "evdb held %zu bytes at the peak",
                  t_bytes_peak());
    evdb_stream_free(s);
    still_works(c);
    t_conn_close(watcher);
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
        start(c, "SELECT x, 1/(x-150000) FROM generate_series(1,200000) x", &v, 1000, 0);
    int rc = t_wait(evdb_stream_done(s));
    ck_assert_int_eq(rc, EVDB_ESERVER);
    ck_assert_str_eq(evdb_error_sqlstate(evdb_future_error(evdb_stream_done(s))), "22012");
    t_run_for(L, 0.02);
    ck_assert_int_eq(done_calls, 1);
    /* The rows before the failing one came, in order, in whole batches. */
    ck_assert_uint_ge(v.batches, 1);
    ck_assert_uint_le(v.rows, 149999);
    ck_assert_uint_eq(v.short_batches, 0);
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
    /* From inside the callback, the stream running. */
    seen v;
    evdb_stream *s = start(c, "SELECT generate_series(1, 100000000)", &v, 1000, 0);
    v.cancel_at = 3;
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), EVDB_ECANCELED);
    t_run_for(L, 0.05);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_eq(v.batches, 3);
    evdb_stream_free(s);
    still_works(c);
    /* While paused (the server blocked), by evdb_stream_free. */
    s = start(c, "SELECT generate_series(1, 100000000)", &v, 1000, 0);
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
    /* The server stopped it: the session is free again at once. */
    double t0 = t_now();
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
    evdb_stream *s = start(c, "SELECT generate_series(1, 100000000)", &v, 1000, 0.5);
    v.pause_at = 2; /* and never resumed */
    double t0 = t_now();
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), EVDB_ETIMEDOUT);
    ck_assert_double_ge(t_now() - t0, 0.45);
    t_run_for(L, 0.05);
    ck_assert_int_eq(done_calls, 1);
    ck_assert_uint_eq(v.batches, 2);
    evdb_stream_free(s);
    still_works(c);
    /* Not paused: the deadline in the middle of the rows. */
    s = start(c, "SELECT generate_series(1, 100000000)", &v, 1000, 0.5);
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

/* Queries behind a stream on its connection wait for its end. */
START_TEST(stream_is_a_barrier)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_variant(_i);
    seen v;
    evdb_stream *s = start(c, SERIES_SQL, &v, 1000, 0);
    v.pause_at = 1;
    evdb_future *q = t_submit(c, "SELECT 7", NULL, 0, 0, 0);
    for (int i = 0; i < 100 && v.batches == 0; i++)
        t_run_for(L, 0.05);
    t_run_for(L, 0.2);
    ck_assert_int_eq(evdb_future_status(q), EVDB_PENDING);
    ck_assert_uint_eq(v.batches, 1);
    ck_assert_int_eq(evdb_stream_resume(s), 0);
    ck_assert_int_eq(t_wait(q), 0);
    ck_assert_int_eq(evdb_future_status(evdb_stream_done(s)), 0);
    ck_assert_uint_eq(v.rows, NROWS);
    ck_assert_int_eq(t_cell_int(evdb_future_result(q), 0, 0), 7);
    evdb_future_unref(q);
    evdb_stream_free(s);
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
    evdb_pool *p = t_pool_new(L, t_pg_url(), &po);
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
    /* The pool's one connection is the stream's until it ends. */
    ck_assert_uint_eq(v.batches, 1);
    ck_assert_int_eq(evdb_future_status(q), EVDB_PENDING);
    ck_assert_int_eq(evdb_stream_resume(s), 0);
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), 0);
    ck_assert_uint_eq(v.rows, NROWS);
    ck_assert_int_eq(t_wait(q), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(q), 0, 0), 8);
    evdb_future_unref(q);
    evdb_stream_free(s);
    /* Released: the connection serves the pool again. */
    ck_assert_int_eq(t_pool_int(p, "SELECT 9"), 9);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.total, 1);
    t_pool_close(p);
    t_loop_free(L);
}
END_TEST

/* A task pulls batch after batch. */
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
    ck_assert_ptr_null(evdb_stream_next(NULL));
    for (;;) {
        evdb_future *f = evdb_stream_next(s);
        ck_assert_ptr_nonnull(f);
        int rc = evdb_await(f);
        ck_assert_int_eq(rc, 0);
        const evdb_result *b = evdb_future_result(f);
        if (!b) {
            evdb_future_unref(f);
            break;
        }
        size_t n = evdb_result_nrows(b);
        ck_assert_uint_le(n, 2000);
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(t_cell_int(b, i, 0), a->next++);
        a->rows += n;
        a->batches++;
        evdb_future_unref(f);
    }
    a->status = evdb_await(evdb_stream_done(s));
    /* After the end, the end again. */
    evdb_future *f = evdb_stream_next(s);
    ck_assert_int_eq(evdb_await(f), 0);
    ck_assert_ptr_null(evdb_future_result(f));
    evdb_future_unref(f);
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

START_TEST(bad_input)
{
    L = t_loop_new(WATCHDOG_S);
    evdb_conn *c = open_variant(0);
    evdb_stream_opts o;
    memset(&o, 0, sizeof o);
    ck_assert_ptr_null(evdb_conn_stream(NULL, "SELECT 1", NULL, 0, &o));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_conn_stream(c, NULL, NULL, 0, &o));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    o.batch_rows = EVDB_STREAM_BATCH_MAX + 1;
    ck_assert_ptr_null(evdb_conn_stream(c, "SELECT 1", NULL, 0, &o));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    o.batch_rows = 0;
    o.flags = 0x100;
    ck_assert_ptr_null(evdb_conn_stream(c, "SELECT 1", NULL, 0, &o));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    o.flags = 0;
    o.timeout = -1;
    ck_assert_ptr_null(evdb_conn_stream(c, "SELECT 1", NULL, 0, &o));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_pool_stream(NULL, "SELECT 1", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_stream_done(NULL));
    ck_assert_int_eq(evdb_stream_pause(NULL), EVDB_EINVAL);
    ck_assert_int_eq(evdb_stream_resume(NULL), EVDB_EINVAL);
    ck_assert_int_eq(evdb_stream_cancel(NULL), EVDB_EINVAL);
    evdb_stream_free(NULL);
    /* A pull stream: no pause/resume; one next at a time. */
    evdb_stream *s = evdb_conn_stream(c, "SELECT 1", NULL, 0, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(evdb_stream_pause(s), EVDB_EINVAL);
    evdb_future *f = evdb_stream_next(s);
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_null(evdb_stream_next(s));
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_uint_eq(evdb_result_nrows(evdb_future_result(f)), 1);
    evdb_future_unref(f);
    ck_assert_int_eq(t_wait(evdb_stream_done(s)), 0);
    evdb_stream_free(s);
    /* A push stream: no next. A server error before any row. */
    seen v;
    s = start(c, "SELECT * FROM no_such_table", &v, 0, 0);
    ck_assert_ptr_null(evdb_stream_next(s));
    t_expect_fail(evdb_stream_done(s), EVDB_ESERVER, "42P01");
    ck_assert_uint_eq(v.batches, 0);
    evdb_stream_free(s);
    still_works(c);
    t_conn_close(c);
    t_loop_free(L);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stream_pg");
    TCase *tc = tcase_create("stream");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    suite_add_tcase(s, tc);
    tcase_add_loop_test(tc, all_rows_in_order, 0, 2);
    tcase_add_loop_test(tc, pause_blocks_server, 0, 2);
    tcase_add_loop_test(tc, error_mid_stream, 0, 2);
    tcase_add_loop_test(tc, cancel_mid_stream, 0, 2);
    tcase_add_loop_test(tc, timeout_mid_stream, 0, 2);
    tcase_add_loop_test(tc, stream_is_a_barrier, 0, 2);
    tcase_add_test(tc, pooled_stream);
    tcase_add_loop_test(tc, task_pull, 0, 2);
    tcase_add_test(tc, bad_input);
    return t_run_suite(s);
}
