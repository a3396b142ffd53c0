/*
 * Unit tests of the connection core against the scripted fake driver:
 * queueing and order, pipelining depth, per-query deadlines, cancel of
 * queued vs running queries, connection loss, close, and allocation
 * failures on the submission path.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_driver.h"
#include "internal.h"
#include "testutil.h"
#include "tquery.h"

static evdb_conn *open_fake(struct ev_loop *loop, const char *url)
{
    evdb_future *f = evdb_conn_open(loop, url, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_conn *c = evdb_future_take_conn(f);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(evdb_future_take_conn(f));
    evdb_future_unref(f);
    return c;
}

static void setup(void)
{
    fake_driver_install();
}

typedef struct counter {
    int calls[64];
    int order[64];
    int n;
} counter;

typedef struct slot {
    counter *c;
    int id;
} slot;

static void count_cb(evdb_future *f, void *arg)
{
    (void)f;
    slot *s = arg;
    s->c->calls[s->id]++;
    s->c->order[s->c->n++] = s->id;
}

START_TEST(open_query_close)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake(loop, "fake://db/?connect_ms=10");
    ck_assert_str_eq(evdb_conn_driver(c), "fake");
    evdb_future *q = evdb_conn_query(c, "ok hello", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_result *r = evdb_future_result(q);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(evdb_result_nrows(r), 1);
    ck_assert_uint_eq(evdb_result_ncols(r), 1);
    ck_assert_str_eq(evdb_result_colname(r, 0), "v");
    ck_assert_str_eq(evdb_result_text(r, 0, 0, NULL), "hello");
    ck_assert_str_eq(evdb_result_command(r), "SELECT 1");
    evdb_future_unref(q);
    t_conn_close(c);
    ck_assert_uint_eq(fake.destroys, 1);
    t_loop_free(loop);
}
END_TEST

START_TEST(queued_queries_complete_in_order_exactly_once)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake(loop, "fake://db/");
    counter cnt = {0};
    slot slots[40];
    evdb_future *fs[40];
    for (int i = 0; i < 40; i++) {
        char sql[32];
        snprintf(sql, sizeof sql, i % 3 ? "ok %d" : "sleep 1", i);
        fs[i] = evdb_conn_query(c, sql, NULL, 0, NULL);
        slots[i] = (slot){&cnt, i};
        evdb_future_on_done(fs[i], count_cb, &slots[i]);
    }
    ck_assert_uint_eq(evdb_conn_pending(c), 40);
    evdb_future *g = evdb_gather(fs, 40, 0);
    ck_assert_int_eq(t_wait(g), 0);
    t_run_for(loop, 0.01);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(cnt.calls[i], 1);
        ck_assert_int_eq(cnt.order[i], i);
        if (i % 3) {
            char want[32];
            snprintf(want, sizeof want, "%d", i);
            ck_assert_str_eq(evdb_result_text(evdb_future_result(fs[i]), 0, 0, NULL), want);
        }
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    /* Depth 1 (the driver's default): one query in flight at a time. */
    ck_assert_uint_eq(fake.max_inflight, 1);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

START_TEST(pipelining_respects_depth_and_batches)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn_opts o = {.pipeline_depth = 8};
    evdb_future *of = evdb_conn_open(loop, "fake://db/", &o);
    ck_assert_int_eq(t_wait(of), 0);
    evdb_conn *c = evdb_future_take_conn(of);
    evdb_future_unref(of);
    evdb_future *fs[100];
    for (int i = 0; i < 100; i++)
        fs[i] = evdb_conn_query(c, "sleep 0", NULL, 0, NULL);
    evdb_future *g = evdb_gather(fs, 100, 0);
    ck_assert_int_eq(t_wait(g), 0);
    ck_assert_uint_eq(fake.max_inflight, 8);
    ck_assert_uint_eq(fake.sends, 100);
    /* Submitted together, sent in batches: far fewer flushes than sends. */
    ck_assert_uint_le(fake.flushes, 30);
    for (int i = 0; i < 100; i++)
        evdb_future_unref(fs[i]);
    evdb_future_unref(g);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

START_TEST(parameters_are_copied_at_submission)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake(loop, "fake://db/");
    char *text = strdup("copied text");
    unsigned char bytes[4] = {0, 1, 255, 0};
    evdb_value p[6] = {evdb_null(),      evdb_bool(true), evdb_int(-42),
                       evdb_double(0.5), evdb_text(text), evdb_bytes(bytes, 4)};
    evdb_future *q = evdb_conn_query(c, "echo", p, 6, NULL);
    memset(text, 'x', strlen(text));
    free(text);
    memset(bytes, 9, sizeof bytes);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_result *r = evdb_future_result(q);
    ck_assert(evdb_result_isnull(r, 0, 0));
    bool b = false;
    ck_assert_int_eq(evdb_result_bool(r, 0, 1, &b), 0);
    ck_assert(b);
    int64_t i = 0;
    ck_assert_int_eq(evdb_result_int(r, 0, 2, &i), 0);
    ck_assert_int_eq(i, -42);
    double d = 0;
    ck_assert_int_eq(evdb_result_double(r, 0, 3, &d), 0);
    ck_assert(d == 0.5);
    ck_assert_str_eq(evdb_result_text(r, 0, 4, NULL), "copied text");
    size_t len = 0;
    const unsigned char *got = evdb_result_bytes(r, 0, 5, &len);
    ck_assert_uint_eq(len, 4);
    ck_assert(got[0] == 0 && got[1] == 1 && got[2] == 255 && got[3] == 0);
    /* Conversion errors are reported, not guessed. */
    ck_assert_int_eq(evdb_result_int(r, 0, 0, &i), EVDB_ENULL);
    ck_assert_int_eq(evdb_result_int(r, 0, 4, &i), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_int(r, 0, 5, &i), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_int(r, 1, 0, &i), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_int(r, 0, 99, &i), EVDB_ERANGE);
    ck_assert_ptr_null(evdb_result_text(r, 0, 99, NULL));
    evdb_future_unref(q);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

START_TEST(bad_query_arguments_fail_at_once)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake(loop, "fake://db/");
    ck_assert_ptr_null(evdb_conn_query(NULL, "ok", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_conn_query(c, NULL, NULL, 0, NULL));
    ck_assert_ptr_null(evdb_conn_query(c, "", NULL, 0, NULL));
    ck_assert_ptr_null(evdb_conn_query(c, "echo", NULL, 2, NULL));
    evdb_value bad = {.type = (evdb_type)77};
    ck_assert_ptr_null(evdb_conn_query(c, "echo", &bad, 1, NULL));
    evdb_value huge = evdb_bytes("x", EVDB_VALUE_MAX_LEN + 1);
    ck_assert_ptr_null(evdb_conn_query(c, "echo", &huge, 1, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_query_opts neg = {.timeout = -1};
    ck_assert_ptr_null(evdb_conn_query(c, "ok", NULL, 0, &neg));
    /* Unknown scheme, NULL URL. */
    ck_assert_ptr_null(evdb_conn_open(loop, "nosuch://x", NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EURL);
    ck_assert_ptr_null(evdb_conn_open(loop, NULL, NULL));
    ck_assert_ptr_null(evdb_conn_open(loop, "fake://h:99999/", NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EURL);
    /* A query the driver refuses fails alone. */
    evdb_future *q1 = evdb_conn_query(c, "refuse", NULL, 0, NULL);
    evdb_future *q2 = evdb_conn_query(c, "ok", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q1), EVDB_EINVAL);
    ck_assert_int_eq(t_wait(q2), 0);
    evdb_future_unref(q1);
    evdb_future_unref(q2);
    t_conn_close(c);
    ck_assert_ptr_null(evdb_conn_close(NULL));
    t_loop_free(loop);
}
END_TEST

START_TEST(server_error_keeps_connection_usable)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake(loop, "fake://db/");
    evdb_future *q = evdb_conn_query(c, "error 22012", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), EVDB_ESERVER);
    ck_assert_str_eq(evdb_error_sqlstate(evdb_future_error(q)), "22012");
    evdb_future_unref(q);
    q = evdb_conn_query(c, "ok", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_future_unref(q);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

START_TEST(connect_failure_and_timeout)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_future *f = evdb_conn_open(loop, "fake://db/?connect_fail=1", NULL);
    ck_assert_int_eq(t_wait(f), EVDB_ECONNECT);
    ck_assert_ptr_null(evdb_future_take_conn(f));
    evdb_future_unref(f);
    evdb_conn_opts o = {.connect_timeout = 0.1};
    double t0 = t_now();
    f = evdb_conn_open(loop, "fake://db/?connect_hang=1", &o);
    ck_assert_int_eq(t_wait(f), EVDB_ECONNTIMEOUT);
    ck_assert(t_now() - t0 < 1);
    evdb_future_unref(f);
    /* Cancelling a connect releases everything. */
    f = evdb_conn_open(loop, "fake://db/?connect_hang=1", NULL);
    ck_assert_int_eq(evdb_future_cancel(f), 0);
    ck_assert_int_eq(t_wait(f), EVDB_ECANCELED);
    evdb_future_unref(f);
    ck_assert_uint_eq(fake.destroys, 3);
    /* A connection nobody takes is closed with its future. */
    f = evdb_conn_open(loop, "fake://db/", NULL);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    t_run_for(loop, 0.02);
    ck_assert_uint_eq(fake.destroys, 4);
    t_loop_free(loop);
}
END_TEST

START_TEST(timeout_of_queued_and_running_queries)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake(loop, "fake://db/");
    evdb_query_opts t = {.timeout = 0.05};
    evdb_future *running = evdb_conn_query(c, "sleep 10000", NULL, 0, &t);
    evdb_future *queued = evdb_conn_query(c, "ok q", NULL, 0, &t);
    evdb_future *after = evdb_conn_query(c, "ok after", NULL, 0, NULL);
    double t0 = t_now();
    ck_assert_int_eq(t_wait(running), EVDB_ETIMEDOUT);
    ck_assert_int_eq(t_wait(queued), EVDB_ETIMEDOUT);
    ck_assert(t_now() - t0 < 0.5);
    /* The running query was cancelled on the server; the next query runs
     * after the cancel settled and gets its own result. */
    ck_assert_int_eq(t_wait(after), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(after), 0, 0, NULL), "after");
    ck_assert_uint_eq(fake.cancels, 1);
    ck_assert(t_now() - t0 < 1);
    evdb_future_unref(running);
    evdb_future_unref(queued);
    evdb_future_unref(after);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

START_TEST(cancel_queued_vs_running)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake(loop, "fake://db/");
    evdb_future *running = evdb_conn_query(c, "sleep 10000", NULL, 0, NULL);
    evdb_future *queued = evdb_conn_query(c, "ok never", NULL, 0, NULL);
    evdb_future *next = evdb_conn_query(c, "ok next", NULL, 0, NULL);
    t_run_for(loop, 0.01); /* running is now in flight */
    ck_assert_int_eq(evdb_future_cancel(queued), 0);
    ck_assert_int_eq(evdb_future_cancel(queued), EVDB_ESTATE);
    ck_assert_int_eq(evdb_conn_pending(c), 2);
    ck_assert_int_eq(evdb_future_cancel(running), 0);
    ck_assert_int_eq(evdb_future_status(running), EVDB_ECANCELED);
    ck_assert_int_eq(t_wait(next), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(next), 0, 0, NULL), "next");
    /* The queued one never reached the driver. */
    ck_assert_uint_eq(fake.sends, 2);
    ck_assert_uint_eq(fake.cancels, 1);
    evdb_future_unref(running);
    evdb_future_unref(queued);
    evdb_future_unref(next);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

START_TEST(connection_loss_fails_everything_exactly_once)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn_opts o = {.pipeline_depth = 4};
    evdb_future *of = evdb_conn_open(loop, "fake://db/", &o);
    t_wait(of);
    evdb_conn *c = evdb_future_take_conn(of);
    evdb_future_unref(of);
    counter cnt = {0};
    slot slots[10];
    evdb_future *fs[10];
    const char *sql[10] = {"ok", "sleep 5", "drop", "ok", "ok", "ok", "ok", "ok", "ok", "ok"};
    for (int i = 0; i < 10; i++) {
        fs[i] = evdb_conn_query(c, sql[i], NULL, 0, NULL);
        slots[i] = (slot){&cnt, i};
        evdb_future_on_done(fs[i], count_cb, &slots[i]);
    }
    evdb_future *g = evdb_gather(fs, 10, 0);
    ck_assert_int_eq(t_wait(g), EVDB_ECONNLOST);
    t_run_for(loop, 0.02);
    ck_assert_int_eq(evdb_future_status(fs[0]), 0);
    ck_assert_int_eq(evdb_future_status(fs[1]), 0);
    for (int i = 2; i < 10; i++)
        ck_assert_int_eq(evdb_future_status(fs[i]), EVDB_ECONNLOST);
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(cnt.calls[i], 1);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    /* The broken connection refuses new queries clearly and still closes. */
    ck_assert_ptr_null(evdb_conn_query(c, "ok", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECONNLOST);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

START_TEST(close_with_queries_queued)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake(loop, "fake://db/?close_ms=20");
    counter cnt = {0};
    slot slots[5];
    evdb_future *fs[5];
    for (int i = 0; i < 5; i++) {
        fs[i] = evdb_conn_query(c, "sleep 100", NULL, 0, NULL);
        slots[i] = (slot){&cnt, i};
        evdb_future_on_done(fs[i], count_cb, &slots[i]);
    }
    t_run_for(loop, 0.01);
    evdb_future *cf = evdb_conn_close(c);
    ck_assert_ptr_nonnull(cf);
    ck_assert_ptr_null(evdb_conn_close(c)); /* second close refused */
    ck_assert_int_eq(t_wait(cf), 0);
    t_run_for(loop, 0.01);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(cnt.calls[i], 1);
        ck_assert_int_eq(evdb_future_status(fs[i]), EVDB_ECLOSED);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(cf);
    t_loop_free(loop);
}
END_TEST

/* Close from inside a query callback, unref inside callbacks. */
static void close_in_cb(evdb_future *f, void *arg)
{
    evdb_conn *c = arg;
    evdb_future_unref(evdb_conn_close(c));
    evdb_future_unref(f);
}

START_TEST(close_from_a_callback)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake(loop, "fake://db/");
    evdb_future *q = evdb_conn_query(c, "ok", NULL, 0, NULL);
    evdb_future_on_done(q, close_in_cb, c);
    t_run_for(loop, 0.05);
    ck_assert_uint_eq(fake.destroys, 1);
    t_loop_free(loop);
}
END_TEST

START_TEST(allocation_failure_on_query_path)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_conn *c = open_fake(loop, "fake://db/");
    evdb_query_opts t = {.timeout = 1};
    evdb_value p[2] = {evdb_text("abc"), evdb_int(1)};
    bool finished = false;
    for (size_t nth = 1; nth < 50 && !finished; nth++) {
        t_alloc_fail_at(nth);
        evdb_future *q = evdb_conn_query(c, "echo", p, 2, &t);
        if (!q) {
            t_alloc_fail_at(0);
            ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ENOMEM);
            continue;
        }
        int st = t_wait(q);
        size_t used = t_alloc_count();
        t_alloc_fail_at(0);
        /* Either it worked, or it failed with a clear error. */
        ck_assert(st == 0 || st == EVDB_ENOMEM);
        if (st == 0 && used < nth)
            finished = true;
        evdb_future_unref(q);
    }
    ck_assert(finished);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

/* Regression (found by integ_badinput): a connection whose close needs no
 * I/O is gone inside evdb_conn_close; calls on the handle are refused
 * with EVDB_ECLOSED (instead of reading freed memory) for as long as the
 * close future lives, also after it completed. */
START_TEST(closed_handle_refuses_while_the_close_future_lives)
{
    struct ev_loop *loop = t_loop_new(3);
    for (int slow = 0; slow < 2; slow++) {
        evdb_conn *c = open_fake(loop, slow ? "fake://db/?close_ms=20" : "fake://db/");
        evdb_future *cf = evdb_conn_close(c);
        ck_assert_ptr_nonnull(cf);
        ck_assert_ptr_null(evdb_conn_close(c));
        ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
        ck_assert_ptr_null(evdb_conn_query(c, "ok", NULL, 0, NULL));
        ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
        ck_assert_int_eq(t_wait(cf), 0);
        ck_assert_ptr_null(evdb_conn_close(c));
        ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
        ck_assert_ptr_null(evdb_conn_query(c, "ok", NULL, 0, NULL));
        ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
        ck_assert_int_eq(evdb_conn_release(c), EVDB_EINVAL);
        ck_assert_int_eq(evdb_conn_status(c), EVDB_ECLOSED);
        ck_assert_ptr_null(evdb_conn_error(c));
        ck_assert_uint_eq(evdb_conn_pending(c), 0);
        ck_assert_int_eq(evdb_conn_server_id(c), 0);
        ck_assert_int_eq(evdb_conn_set_notice_hook(c, NULL, NULL), EVDB_ECLOSED);
        evdb_future_unref(cf);
    }
    t_loop_free(loop);
}
END_TEST

static evdb_conn *open_fake_depth(struct ev_loop *loop, const char *url, unsigned depth)
{
    evdb_conn_opts o = {.pipeline_depth = depth};
    evdb_future *f = evdb_conn_open(loop, url, &o);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_conn *c = evdb_future_take_conn(f);
    evdb_future_unref(f);
    return c;
}

static bool msg_has(evdb_future *f, const char *part)
{
    return strstr(evdb_error_message(evdb_future_error(f)), part) != NULL;
}

/* Where the deadline found a query decides what its error says: sent to
 * the server (outcome unknown, cancelled there), handed to the driver but
 * not on the wire yet (not sent: dropped, never cancelled on the server),
 * or still pending on the connection (not sent). */
START_TEST(timeout_says_whether_the_query_was_sent)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake_depth(loop, "fake://db/?lazy_send=1", 2);
    evdb_query_opts t = {.timeout = 0.05};
    counter cnt = {0};
    slot slots[4];
    evdb_future *fs[4];
    const char *sql[4] = {"sleep 10000", "ok inner", "ok pending", "ok after"};
    for (int i = 0; i < 4; i++) {
        fs[i] = evdb_conn_query(c, sql[i], NULL, 0, i < 3 ? &t : NULL);
        slots[i] = (slot){&cnt, i};
        evdb_future_on_done(fs[i], count_cb, &slots[i]);
    }
    evdb_future *g = evdb_gather(fs, 4, 0);
    t_wait(g);
    t_run_for(loop, 0.01);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(evdb_future_status(fs[i]), EVDB_ETIMEDOUT);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(fs[0])));
    ck_assert_msg(msg_has(fs[0], "sent to the server; cancelling it there: whether it took "
                                 "effect is unknown"),
                  "%s", evdb_error_message(evdb_future_error(fs[0])));
    for (int i = 1; i < 3; i++) {
        ck_assert(!evdb_error_outcome_unknown(evdb_future_error(fs[i])));
        ck_assert_msg(msg_has(fs[i], "queued on its connection, not sent: it did not run"), "%s",
                      evdb_error_message(evdb_future_error(fs[i])));
    }
    ck_assert_int_eq(evdb_future_status(fs[3]), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(fs[3]), 0, 0, NULL), "after");
    /* Only the sent one was cancelled on the server; the one the driver
     * held never went out, and only "after" ran to its end. */
    ck_assert_uint_eq(fake.cancels, 1);
    ck_assert_uint_eq(fake.dropped_unsent, 1);
    ck_assert_uint_eq(fake.answered, 1);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(cnt.calls[i], 1);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

START_TEST(cancel_says_whether_the_query_was_sent)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake_depth(loop, "fake://db/?lazy_send=1", 2);
    counter cnt = {0};
    slot slots[4];
    evdb_future *fs[4];
    const char *sql[4] = {"sleep 10000", "ok inner", "ok pending", "ok after"};
    for (int i = 0; i < 4; i++) {
        fs[i] = evdb_conn_query(c, sql[i], NULL, 0, NULL);
        slots[i] = (slot){&cnt, i};
        evdb_future_on_done(fs[i], count_cb, &slots[i]);
    }
    t_run_for(loop, 0.01); /* the first two are with the driver */
    ck_assert_uint_eq(fake.sends, 2);
    for (int i = 2; i >= 0; i--)
        ck_assert_int_eq(evdb_future_cancel(fs[i]), 0);
    ck_assert_int_eq(t_wait(fs[3]), 0);
    t_run_for(loop, 0.01);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(evdb_future_status(fs[i]), EVDB_ECANCELED);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(fs[0])));
    ck_assert(msg_has(fs[0], "after it was sent to the server: whether it took effect is "
                             "unknown"));
    for (int i = 1; i < 3; i++) {
        ck_assert(!evdb_error_outcome_unknown(evdb_future_error(fs[i])));
        ck_assert(msg_has(fs[i], "before it was sent: it did not run"));
    }
    ck_assert_uint_eq(fake.cancels, 1);
    ck_assert_uint_eq(fake.dropped_unsent, 1);
    ck_assert_uint_eq(fake.answered, 1);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(cnt.calls[i], 1);
        evdb_future_unref(fs[i]);
    }
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

/* A lost connection: the query on the wire may have run (outcome
 * unknown); the one the driver still held and the pending one did not. */
START_TEST(connection_loss_says_whether_the_query_was_sent)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake_depth(loop, "fake://db/?lazy_send=1", 2);
    counter cnt = {0};
    slot slots[3];
    evdb_future *fs[3];
    const char *sql[3] = {"drop", "ok inner", "ok pending"};
    for (int i = 0; i < 3; i++) {
        fs[i] = evdb_conn_query(c, sql[i], NULL, 0, NULL);
        slots[i] = (slot){&cnt, i};
        evdb_future_on_done(fs[i], count_cb, &slots[i]);
    }
    evdb_future *g = evdb_gather(fs, 3, 0);
    t_wait(g);
    t_run_for(loop, 0.01);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(evdb_future_status(fs[i]), EVDB_ECONNLOST);
        ck_assert_int_eq(cnt.calls[i], 1);
    }
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(fs[0])));
    ck_assert(msg_has(fs[0], "whether it took effect is unknown"));
    for (int i = 1; i < 3; i++) {
        ck_assert(!evdb_error_outcome_unknown(evdb_future_error(fs[i])));
        ck_assert(msg_has(fs[i], "before the query was sent"));
    }
    /* Without a query_sent answer every query handed over counts as sent
     * (the plain fake says so): in flight on a lost connection is unknown. */
    evdb_conn *plain = open_fake_depth(loop, "fake://db/", 2);
    evdb_future *lost = evdb_conn_query(plain, "drop", NULL, 0, NULL);
    evdb_future *behind = evdb_conn_query(plain, "ok", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(lost), EVDB_ECONNLOST);
    ck_assert_int_eq(t_wait(behind), EVDB_ECONNLOST);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(lost)));
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(behind)));
    for (int i = 0; i < 3; i++)
        evdb_future_unref(fs[i]);
    evdb_future_unref(g);
    evdb_future_unref(lost);
    evdb_future_unref(behind);
    t_conn_close(c);
    t_conn_close(plain);
    t_loop_free(loop);
}
END_TEST

/* Closing the connection: the same split between sent and not sent. */
START_TEST(close_says_whether_the_query_was_sent)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_conn *c = open_fake_depth(loop, "fake://db/?lazy_send=1", 2);
    evdb_future *fs[3];
    const char *sql[3] = {"sleep 10000", "ok inner", "ok pending"};
    for (int i = 0; i < 3; i++)
        fs[i] = evdb_conn_query(c, sql[i], NULL, 0, NULL);
    t_run_for(loop, 0.01);
    t_conn_close(c);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(evdb_future_status(fs[i]), EVDB_ECLOSED);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(fs[0])));
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(fs[1])));
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(fs[2])));
    for (int i = 0; i < 3; i++)
        evdb_future_unref(fs[i]);
    t_loop_free(loop);
}
END_TEST

/* The predicate everywhere else: false for NULL, for errors the server
 * reported, for calls refused at once; evdb_timeout passes on what its
 * cancelled query's error says. */
START_TEST(outcome_predicate_elsewhere_and_through_evdb_timeout)
{
    struct ev_loop *loop = t_loop_new(3);
    ck_assert(!evdb_error_outcome_unknown(NULL));
    evdb_conn *c = open_fake(loop, "fake://db/");
    evdb_future *q = evdb_conn_query(c, "error 23505", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), EVDB_ESERVER);
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(q)));
    evdb_future_unref(q);
    ck_assert_ptr_null(evdb_conn_query(c, NULL, NULL, 0, NULL));
    ck_assert(!evdb_error_outcome_unknown(evdb_last_error()));
    /* It ran, and only its result was lost: it took effect, for all the
     * caller can tell. */
    q = evdb_conn_query(c, "toobig", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), EVDB_ETOOBIG);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(q)));
    evdb_future_unref(q);
    /* A running query under evdb_timeout: unknown, on both futures. */
    evdb_future *running = evdb_conn_query(c, "sleep 10000", NULL, 0, NULL);
    evdb_future *queued = evdb_conn_query(c, "ok", NULL, 0, NULL);
    evdb_future *tr = evdb_timeout(running, 0.03);
    evdb_future *tq = evdb_timeout(queued, 0.03);
    ck_assert_int_eq(t_wait(tr), EVDB_ETIMEDOUT);
    ck_assert_int_eq(t_wait(tq), EVDB_ETIMEDOUT);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(tr)));
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(running)));
    ck_assert(strstr(evdb_error_message(evdb_future_error(tr)), "unknown"));
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(tq)));
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(queued)));
    evdb_future_unref(tr);
    evdb_future_unref(tq);
    evdb_future_unref(running);
    evdb_future_unref(queued);
    t_conn_close(c);
    t_loop_free(loop);
}
END_TEST

/* The flag belongs to one error: evdb__error_set (every error the core,
 * a driver or a user's future makes) starts from "did not run", and a copy
 * keeps what it was told. */
START_TEST(outcome_flag_is_cleared_by_set_and_kept_by_copy)
{
    evdb_error e, copy;
    memset(&e, 0xff, sizeof e);
    evdb__error_set(&e, EVDB_ECONNLOST, 0, NULL, "lost");
    ck_assert(!evdb_error_outcome_unknown(&e));
    e.outcome_unknown = true;
    evdb__error_copy(&copy, &e);
    ck_assert(evdb_error_outcome_unknown(&copy));
    evdb__error_set(&copy, EVDB_ETIMEDOUT, 0, NULL, "reused");
    ck_assert(!evdb_error_outcome_unknown(&copy));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("fake");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, open_query_close);
    tcase_add_test(tc, queued_queries_complete_in_order_exactly_once);
    tcase_add_test(tc, pipelining_respects_depth_and_batches);
    tcase_add_test(tc, parameters_are_copied_at_submission);
    tcase_add_test(tc, bad_query_arguments_fail_at_once);
    tcase_add_test(tc, server_error_keeps_connection_usable);
    tcase_add_test(tc, connect_failure_and_timeout);
    tcase_add_test(tc, timeout_of_queued_and_running_queries);
    tcase_add_test(tc, cancel_queued_vs_running);
    tcase_add_test(tc, connection_loss_fails_everything_exactly_once);
    tcase_add_test(tc, close_with_queries_queued);
    tcase_add_test(tc, close_from_a_callback);
    tcase_add_test(tc, allocation_failure_on_query_path);
    tcase_add_test(tc, closed_handle_refuses_while_the_close_future_lives);
    tcase_add_test(tc, timeout_says_whether_the_query_was_sent);
    tcase_add_test(tc, cancel_says_whether_the_query_was_sent);
    tcase_add_test(tc, connection_loss_says_whether_the_query_was_sent);
    tcase_add_test(tc, close_says_whether_the_query_was_sent);
    tcase_add_test(tc, outcome_predicate_elsewhere_and_through_evdb_timeout);
    tcase_add_test(tc, outcome_flag_is_cleared_by_set_and_kept_by_copy);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
