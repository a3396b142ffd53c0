/*
 * Unit tests of the pool against the scripted fake driver: lazy growth,
 * routing and pipelining depth, FIFO waiters and the acquire deadline,
 * exclusive acquire/release, re-routing of unsent queries when a
 * connection breaks, reconnect, and close.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_driver.h"
#include "testutil.h"

static void setup(void)
{
    fake_driver_install();
}

static void close_pool(evdb_pool *p)
{
    evdb_future *f = evdb_pool_close(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

START_TEST(grows_lazily_and_answers)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 3};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?connect_ms=5", &o);
    ck_assert_ptr_nonnull(p);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.total, 0);
    evdb_future *fs[30];
    for (int i = 0; i < 30; i++) {
        char sql[32];
        snprintf(sql, sizeof sql, "ok %d", i);
        fs[i] = evdb_pool_query(p, sql, NULL, 0, NULL);
        ck_assert_ptr_nonnull(fs[i]);
    }
    evdb_future *g = evdb_gather(fs, 30, 0);
    ck_assert_int_eq(t_wait(g), 0);
    for (int i = 0; i < 30; i++) {
        char want[32];
        snprintf(want, sizeof want, "%d", i);
        ck_assert_str_eq(evdb_result_text(evdb_future_result(fs[i]), 0, 0, NULL), want);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.total, 3);
    ck_assert_uint_eq(st.connects, 3);
    ck_assert_uint_eq(st.idle, 3);
    ck_assert_uint_eq(st.waiting, 0);
    close_pool(p);
    ck_assert_uint_eq(fake.destroys, 3);
    t_loop_free(loop);
}
END_TEST

START_TEST(pipelines_up_to_depth)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 2, .pipeline_depth = 4};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *fs[40];
    for (int i = 0; i < 40; i++)
        fs[i] = evdb_pool_query(p, "sleep 1", NULL, 0, NULL);
    evdb_future *g = evdb_gather(fs, 40, 0);
    ck_assert_int_eq(t_wait(g), 0);
    ck_assert_uint_eq(fake.max_inflight, 4);
    for (int i = 0; i < 40; i++)
        evdb_future_unref(fs[i]);
    evdb_future_unref(g);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

START_TEST(acquire_timeout_fails_waiters_in_time)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 1, .acquire_timeout = 0.1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *busy = evdb_pool_query(p, "sleep 1000", NULL, 0, NULL);
    evdb_future *waiter = evdb_pool_query(p, "ok", NULL, 0, NULL);
    double t0 = t_now();
    ck_assert_int_eq(t_wait(waiter), EVDB_EPOOLTIMEOUT);
    double dt = t_now() - t0;
    ck_assert(dt >= 0.09 && dt < 0.6);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(waiter)), "within"));
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.pool_timeouts, 1);
    ck_assert_uint_eq(st.waiting, 0);
    /* A query's own timeout covers its time in the queue too. */
    evdb_query_opts qt = {.timeout = 0.05};
    evdb_future *short_wait = evdb_pool_query(p, "ok", NULL, 0, &qt);
    ck_assert_int_eq(t_wait(short_wait), EVDB_ETIMEDOUT);
    evdb_future_unref(short_wait);
    ck_assert_int_eq(t_wait(busy), 0);
    evdb_future_unref(busy);
    evdb_future_unref(waiter);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

/* With EVDB_TRACE_STATES set, a pool member's life is traced state by
 * state (src/trace.h): opened, lent out, reset at release, ready again. */
START_TEST(member_states_are_traced_when_asked)
{
    ck_assert_int_eq(setenv("EVDB_TRACE_STATES", "1", 1), 0);
    t_stderr_begin();
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *a = evdb_pool_acquire(p, 0);
    int rc = t_wait(a);
    evdb_conn *c = evdb_future_take_conn(a);
    int rel = evdb_conn_release(c);
    evdb_future *q = evdb_pool_query(p, "ok after", NULL, 0, NULL);
    int qrc = t_wait(q);
    evdb_future_unref(q);
    evdb_future_unref(a);
    close_pool(p);
    t_loop_free(loop);
    char out[8192];
    t_stderr_end(out, sizeof out);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(rel, 0);
    ck_assert_int_eq(qrc, 0);
    const char *want[] = {
        "opening -> ready (pool.c:", "ready -> borrowed (pool.c:", "borrowed -> resetting (pool.c:",
        "resetting -> ready (pool.c:", "-> closing (pool.c:"};
    t_expect_in_order(out, want, sizeof want / sizeof want[0]);
    ck_assert_ptr_nonnull(strstr(out, "evdb: pool member 0x"));
}
END_TEST

START_TEST(acquire_release_and_reset)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *a1 = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(a1), 0);
    evdb_conn *c = evdb_future_take_conn(a1);
    ck_assert_ptr_nonnull(c);
    /* Exclusive: the only connection is borrowed, so a query waits. */
    evdb_future *q = evdb_pool_query(p, "ok pooled", NULL, 0, NULL);
    evdb_future *a2 = evdb_pool_acquire(p, 0.05);
    ck_assert_int_eq(t_wait(a2), EVDB_EPOOLTIMEOUT);
    ck_assert_int_eq(evdb_future_status(q), EVDB_PENDING);
    evdb_future *mine = evdb_conn_query(c, "ok mine", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(mine), 0);
    /* Pooled connections are released, not closed. */
    ck_assert_ptr_null(evdb_conn_close(c));
    ck_assert_int_eq(evdb_conn_release(c), 0);
    ck_assert_int_eq(evdb_conn_release(c), EVDB_EINVAL);
    ck_assert_int_eq(t_wait(q), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(q), 0, 0, NULL), "pooled");
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.resets, 1);
    ck_assert_uint_eq(st.connects, 1);
    /* An acquire future dropped untaken gives the connection back. */
    evdb_future *a3 = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(a3), 0);
    evdb_future_unref(a3);
    evdb_future *a4 = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(a4), 0);
    ck_assert_int_eq(evdb_conn_release(evdb_future_take_conn(a4)), 0);
    evdb_future_unref(a4);
    evdb_future_unref(a1);
    evdb_future_unref(a2);
    evdb_future_unref(q);
    evdb_future_unref(mine);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

START_TEST(unsent_queries_move_to_another_connection)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 1, .backoff_initial = 0.01};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *fs[6];
    const char *sql[6] = {"ok 0", "drop", "ok 2", "ok 3", "ok 4", "ok 5"};
    for (int i = 0; i < 6; i++)
        fs[i] = evdb_pool_query(p, sql[i], NULL, 0, NULL);
    evdb_future *g = evdb_gather(fs, 6, 0);
    t_wait(g);
    ck_assert_int_eq(evdb_future_status(fs[0]), 0);
    /* The query the server was running when it broke is lost... */
    ck_assert_int_eq(evdb_future_status(fs[1]), EVDB_ECONNLOST);
    /* ...the ones never sent ran on the replacement connection. */
    for (int i = 2; i < 6; i++) {
        ck_assert_int_eq(evdb_future_status(fs[i]), 0);
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        ck_assert_str_eq(evdb_result_text(evdb_future_result(fs[i]), 0, 0, NULL), want);
    }
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.broken, 1);
    ck_assert_uint_eq(st.connects, 2);
    for (int i = 0; i < 6; i++)
        evdb_future_unref(fs[i]);
    evdb_future_unref(g);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

START_TEST(connect_failures_fail_waiters_and_back_off)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 2, .min_conns = 1, .backoff_initial = 0.05};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?connect_fail=1", &o);
    /* With no connection to be had, a waiter fails at once with the
     * reason, not after the acquire timeout. */
    evdb_future *q = evdb_pool_query(p, "ok", NULL, 0, NULL);
    double t0 = t_now();
    ck_assert_int_eq(t_wait(q), EVDB_ECONNECT);
    ck_assert(t_now() - t0 < 1);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(q)), "refused"));
    evdb_future_unref(q);
    /* min_conns keeps it trying, with backoff rather than a busy loop. */
    t_run_for(loop, 0.4);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_ge(st.connect_failures, 2);
    ck_assert_uint_le(st.connect_failures, 8);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

START_TEST(close_fails_waiters_and_bad_arguments)
{
    struct ev_loop *loop = t_loop_new(5);
    ck_assert_ptr_null(evdb_pool_new(loop, "nosuch://x", NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EURL);
    evdb_pool_opts bad = {.min_conns = 5, .max_conns = 2};
    ck_assert_ptr_null(evdb_pool_new(loop, "fake://db/", &bad));
    ck_assert_ptr_null(evdb_pool_new(NULL, "fake://db/", NULL));
    evdb_pool_opts o = {.max_conns = 1, .min_conns = 1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?connect_ms=20", &o);
    evdb_future *q = evdb_pool_query(p, "ok", NULL, 0, NULL);
    evdb_future *a = evdb_pool_acquire(p, 0);
    ck_assert_ptr_null(evdb_pool_query(p, NULL, NULL, 0, NULL));
    evdb_future *cf = evdb_pool_close(p);
    ck_assert_int_eq(evdb_future_status(q), EVDB_ECLOSED);
    ck_assert_int_eq(evdb_future_status(a), EVDB_ECLOSED);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
    evdb_future_unref(q);
    evdb_future_unref(a);
    t_loop_free(loop);
}
END_TEST

typedef struct leak_seen {
    int calls;
    char file[64];
    int line;
    double held;
} leak_seen;

static void on_leak(const evdb_pool_leak *leak, void *arg)
{
    leak_seen *seen = arg;
    seen->calls++;
    snprintf(seen->file, sizeof seen->file, "%s", leak->acquired_file);
    seen->line = leak->acquired_line;
    seen->held = leak->held_seconds;
}

START_TEST(leaks_are_reported_with_call_site_and_use_after_release_refused)
{
    struct ev_loop *loop = t_loop_new(5);
    leak_seen seen = {0};
    evdb_pool_opts o = {
        .max_conns = 2, .leak_threshold = 0.1, .leak_hook = on_leak, .leak_hook_arg = &seen};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    int line = __LINE__ + 1;
    evdb_future *a = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(a), 0);
    evdb_conn *c = evdb_future_take_conn(a);
    evdb_future *q = evdb_conn_query(c, "sleep 500", NULL, 0, NULL);
    t_run_for(loop, 0.4);
    ck_assert_int_eq(seen.calls, 1); /* once per borrow */
    ck_assert_str_eq(seen.file, __FILE__);
    ck_assert_int_eq(seen.line, line);
    ck_assert(seen.held >= 0.1);
    /* The dump names the borrower and what it runs, never the URL. */
    char buf[2048] = {0};
    FILE *mem = fmemopen(buf, sizeof buf - 1, "w");
    evdb_pool_dump(p, mem);
    fclose(mem);
    ck_assert_ptr_nonnull(strstr(buf, "borrowed"));
    ck_assert_ptr_nonnull(strstr(buf, __FILE__));
    ck_assert_ptr_nonnull(strstr(buf, "sleep 500"));
    ck_assert_ptr_null(strstr(buf, "fake://"));
    ck_assert_int_eq(evdb_conn_release(c), 0);
    /* Use after release is refused clearly. */
    ck_assert_ptr_null(evdb_conn_query(c, "ok", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_last_error()), "stale"));
    ck_assert_int_eq(t_wait(q), 0); /* what it left running still finished */
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.leaks, 1);
    evdb_future_unref(q);
    evdb_future_unref(a);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

static evdb_future *txn_body(evdb_conn *c, void *arg)
{
    return evdb_conn_query(c, (const char *)arg, NULL, 0, NULL);
}

START_TEST(transaction_helper_commits_or_rolls_back)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", NULL);
    evdb_future *t = evdb_pool_transaction(p, txn_body, "ok inside", 0);
    ck_assert_int_eq(t_wait(t), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(t), 0, 0, NULL), "inside");
    evdb_future_unref(t);
    t = evdb_pool_transaction(p, txn_body, "error 23505", 0);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    ck_assert_str_eq(evdb_error_sqlstate(evdb_future_error(t)), "23505");
    evdb_future_unref(t);
    ck_assert_ptr_null(evdb_pool_transaction(p, NULL, NULL, 0));
    t_run_for(loop, 0.05);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.acquired, 0);
    ck_assert_uint_eq(st.resets, 2);
    /* BEGIN, body, COMMIT; BEGIN, body, ROLLBACK; + release ROLLBACKs */
    ck_assert_uint_eq(fake.sends, 8);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

START_TEST(lifetime_and_idle_retire_connections)
{
    struct ev_loop *loop = t_loop_new(8);
    evdb_pool_opts o = {.max_conns = 3, .min_conns = 1, .idle_timeout = 0.5};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = evdb_pool_query(p, "sleep 20", NULL, 0, NULL);
    evdb_future *g = evdb_gather(fs, 3, 0);
    t_wait(g);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.total, 3);
    t_run_for(loop, 2.2);
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.total, 1); /* idle ones above min retired */
    ck_assert_uint_eq(st.retired, 2);
    for (int i = 0; i < 3; i++)
        evdb_future_unref(fs[i]);
    evdb_future_unref(g);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

START_TEST(idle_connections_are_validated_before_use)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 1, .validate_after = 0.05};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *q = evdb_pool_query(p, "ok first", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_future_unref(q);
    evdb_future *idle = evdb_sleep(loop, 0.1);
    t_wait(idle);
    evdb_future_unref(idle);
    q = evdb_pool_query(p, "ok second", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(q), 0, 0, NULL), "second");
    evdb_future_unref(q);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.validations, 1);
    ck_assert_uint_eq(st.validation_failures, 0);
    ck_assert_uint_eq(fake.sends, 3); /* first, the ping, second */
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

typedef struct hook_log {
    int starts, ends, errors;
    double max_duration;
} hook_log;

static void on_query_event(const evdb_pool_query_event *ev, void *arg)
{
    hook_log *h = arg;
    if (ev->phase == EVDB_POOL_QUERY_START) {
        ck_assert_ptr_nonnull(ev->sql);
        h->starts++;
        return;
    }
    h->ends++;
    if (ev->status < 0)
        h->errors++;
    if (ev->duration > h->max_duration)
        h->max_duration = ev->duration;
}

START_TEST(query_hook_and_stats_count_every_query)
{
    struct ev_loop *loop = t_loop_new(5);
    hook_log h = {0};
    /* A fixed stall threshold well above these statements: with the
     * adaptive one (20 ms at first) a client stalled that long by a busy
     * machine sees the 2 ms heads as stalled, and the query that times out
     * after 50 ms may then do so still queued, where wait_hist does not
     * count it. */
    evdb_pool_opts o = {
        .max_conns = 2, .query_hook = on_query_event, .query_hook_arg = &h, .stall_threshold = 10};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_query_opts quick = {.timeout = 0.05};
    evdb_future *fs[12];
    for (int i = 0; i < 10; i++)
        fs[i] = evdb_pool_query(p, i == 3 ? "error 22012" : "sleep 2", NULL, 0, NULL);
    fs[10] = evdb_pool_query(p, "sleep 5000", NULL, 0, &quick);
    fs[11] = evdb_pool_query(p, "ok", NULL, 0, NULL);
    evdb_future *g = evdb_gather(fs, 12, 0);
    t_wait(g);
    t_run_for(loop, 0.05);
    ck_assert_int_eq(h.starts, 12);
    ck_assert_int_eq(h.ends, 12);
    ck_assert_int_eq(h.errors, 2);
    ck_assert(h.max_duration >= 0.04);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.queries, 12);
    ck_assert_uint_eq(st.query_errors, 2);
    ck_assert_uint_eq(st.query_timeouts, 1);
    uint64_t waited = 0;
    for (int i = 0; i < 6; i++)
        waited += st.wait_hist[i];
    ck_assert_uint_eq(waited, 12);
    for (int i = 0; i < 12; i++)
        evdb_future_unref(fs[i]);
    evdb_future_unref(g);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

typedef struct order_log {
    int order[64];
    int n;
} order_log;

typedef struct order_slot {
    order_log *log;
    int id;
} order_slot;

static void on_ordered(evdb_future *f, void *arg)
{
    (void)f;
    order_slot *s = arg;
    s->log->order[s->log->n++] = s->id;
}

START_TEST(waiters_are_served_fifo_under_contention)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    order_log log = {0};
    order_slot slots[40];
    evdb_future *fs[40];
    for (int i = 0; i < 40; i++) {
        fs[i] = evdb_pool_query(p, "sleep 1", NULL, 0, NULL);
        slots[i] = (order_slot){&log, i};
        evdb_future_on_done(fs[i], on_ordered, &slots[i]);
    }
    evdb_future *g = evdb_gather(fs, 40, 0);
    ck_assert_int_eq(t_wait(g), 0);
    t_run_for(loop, 0.01);
    ck_assert_int_eq(log.n, 40);
    for (int i = 0; i < 40; i++) {
        ck_assert_int_eq(log.order[i], i);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    /* Exclusive acquires too: first come, first served. */
    order_log alog = {0};
    order_slot aslots[3];
    evdb_future *held = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(held), 0);
    evdb_conn *c = evdb_future_take_conn(held);
    evdb_future *as[3];
    for (int i = 0; i < 3; i++) {
        as[i] = evdb_pool_acquire(p, 0);
        aslots[i] = (order_slot){&alog, i};
        evdb_future_on_done(as[i], on_ordered, &aslots[i]);
    }
    t_run_for(loop, 0.02);
    ck_assert_int_eq(alog.n, 0);
    for (int i = 0; i < 3; i++) {
        evdb_conn_release(c);
        ck_assert_int_eq(t_wait(as[i]), 0);
        c = evdb_future_take_conn(as[i]);
        ck_assert_int_eq(alog.order[i], i);
    }
    evdb_conn_release(c);
    for (int i = 0; i < 3; i++)
        evdb_future_unref(as[i]);
    evdb_future_unref(held);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

START_TEST(max_is_respected_under_oversubscription)
{
    struct ev_loop *loop = t_loop_new(10);
    evdb_pool_opts o = {.max_conns = 4};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?connect_ms=5", &o);
    evdb_future *fs[40];
    for (int i = 0; i < 40; i++)
        fs[i] = evdb_pool_query(p, "sleep 5", NULL, 0, NULL);
    evdb_future *g = evdb_gather(fs, 40, 0);
    evdb_pool_stats st;
    unsigned most = 0;
    while (evdb_future_status(g) == EVDB_PENDING) {
        t_run_for(loop, 0.002);
        evdb_pool_stats_get(p, &st);
        if (st.total > most)
            most = st.total;
    }
    ck_assert_int_eq(evdb_future_status(g), 0);
    ck_assert_uint_eq(most, 4);
    ck_assert_uint_eq(fake.connects, 4);
    for (int i = 0; i < 40; i++)
        evdb_future_unref(fs[i]);
    evdb_future_unref(g);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

START_TEST(close_waits_for_running_queries_then_gives_up)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 2, .close_grace = 0.1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *quick = evdb_pool_query(p, "sleep 20", NULL, 0, NULL);
    evdb_future *slow = evdb_pool_query(p, "sleep 100000", NULL, 0, NULL);
    t_run_for(loop, 0.005);
    double t0 = t_now();
    evdb_future *cf = evdb_pool_close(p);
    ck_assert_ptr_null(evdb_pool_query(p, "ok", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
    ck_assert_int_eq(t_wait(cf), 0);
    double dt = t_now() - t0;
    ck_assert(dt >= 0.09 && dt < 1);
    ck_assert_int_eq(evdb_future_status(quick), 0); /* finished in the grace period */
    ck_assert_int_eq(evdb_future_status(slow), EVDB_ECLOSED);
    evdb_future_unref(quick);
    evdb_future_unref(slow);
    evdb_future_unref(cf);
    t_loop_free(loop);
}
END_TEST

START_TEST(max_lifetime_rotates_connections)
{
    struct ev_loop *loop = t_loop_new(8);
    evdb_pool_opts o = {.max_conns = 1, .max_lifetime = 0.2};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *q = evdb_pool_query(p, "ok", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_future_unref(q);
    evdb_future *later = evdb_sleep(loop, 1.3);
    t_wait(later);
    evdb_future_unref(later);
    q = evdb_pool_query(p, "ok again", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_future_unref(q);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.retired, 1);
    ck_assert_uint_eq(st.connects, 2);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

/* Regression (found by integ_faults): a query handed straight to a
 * connection has no pool deadline; when that connection breaks before the
 * query is sent, the query goes back to the pool and must wait for the
 * replacement connection, not fail at once with EVDB_EPOOLTIMEOUT. Here
 * it sits on a connection whose pump is held by a timed-out query that
 * cannot be cancelled, behind a query that then breaks the connection. */
START_TEST(rerouted_query_waits_for_the_replacement)
{
    struct ev_loop *loop = t_loop_new(5);
    /* Stall routing off: the query must go onto the connection behind the
     * slow head (with it on, it would wait in the pool instead). */
    evdb_pool_opts o = {.max_conns = 1,
                        .backoff_initial = 0.01,
                        .acquire_timeout = 2,
                        .pipeline_depth = 3,
                        .stall_threshold = -1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?no_cancel=1", &o);
    evdb_future *w = evdb_pool_query(p, "ok", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(w), 0);
    evdb_future_unref(w);
    evdb_query_opts to = {.timeout = 0.02};
    evdb_future *slow = evdb_pool_query(p, "sleep 100", NULL, 0, &to);
    evdb_future *drop = evdb_pool_query(p, "drop", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(slow), EVDB_ETIMEDOUT);
    /* Handed to the connection (room for a third), held by the pump. */
    evdb_future *q = evdb_pool_query(p, "ok 2", NULL, 0, NULL);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.waiting, 0); /* on the connection, not in the pool */
    ck_assert_int_eq(t_wait(q), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(q), 0, 0, NULL), "2");
    ck_assert_int_eq(t_wait(drop), EVDB_ECONNLOST);
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.broken, 1);
    ck_assert_uint_eq(st.pool_timeouts, 0);
    evdb_future_unref(slow);
    evdb_future_unref(drop);
    evdb_future_unref(q);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

/* Regression (found by integ_badinput): after evdb_pool_close, and even
 * after the pool is gone, calls on the handle are refused with
 * EVDB_ECLOSED for as long as the close future lives (they read freed
 * memory). */
START_TEST(closed_pool_handle_refuses_while_the_close_future_lives)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", NULL);
    evdb_future *q = evdb_pool_query(p, "ok", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_future_unref(q);
    evdb_future *cf = evdb_pool_close(p);
    ck_assert_ptr_nonnull(cf);
    ck_assert_int_eq(t_wait(cf), 0);
    ck_assert_ptr_null(evdb_pool_close(p));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
    ck_assert_ptr_null(evdb_pool_query(p, "ok", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
    ck_assert_ptr_null(evdb_pool_acquire(p, 1));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.total, 0);
    evdb_future_unref(cf);
    t_loop_free(loop);
}
END_TEST

typedef struct done_count {
    int calls[32];
} done_count;

typedef struct done_slot {
    done_count *c;
    int id;
} done_slot;

static void on_done_count(evdb_future *f, void *arg)
{
    (void)f;
    done_slot *s = arg;
    s->c->calls[s->id]++;
}

static bool msg_has(evdb_future *f, const char *part)
{
    return strstr(evdb_error_message(evdb_future_error(f)), part) != NULL;
}

/* Every pooled query is counted once, ok or in query_errors, whatever
 * stage it ended at: queries = ok + query_errors (the issue: a query that
 * timed out queued on its connection was counted nowhere). A borrower's
 * queries are not pooled queries and count nowhere. */
START_TEST(stats_count_every_outcome)
{
    struct ev_loop *loop = t_loop_new(8);
    /* One connection that pools two queries while the driver runs one:
     * the second waits on the connection, a third in the pool (stall
     * routing off: it would move the second back to the pool). */
    evdb_pool_opts o = {.max_conns = 1,
                        .pipeline_depth = 2,
                        .acquire_timeout = 0.3,
                        .backoff_initial = 0.01,
                        .stall_threshold = -1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?depth=1", &o);
    evdb_query_opts t = {.timeout = 0.05};
    done_count cnt = {{0}};
    done_slot slots[32];
    evdb_future *fs[32];
    int n = 0;
#define SUBMIT(sql, opts)                                                                          \
    (fs[n] = evdb_pool_query(p, (sql), NULL, 0, (opts)), slots[n] = (done_slot){&cnt, n},          \
     evdb_future_on_done(fs[n], on_done_count, &slots[n]), fs[n++])
    /* ok and a server error */
    ck_assert_int_eq(t_wait(SUBMIT("ok", NULL)), 0);
    ck_assert_int_eq(t_wait(SUBMIT("error 22012", NULL)), EVDB_ESERVER);
    /* Timeouts: running, queued on the connection, in the pool's queue. */
    evdb_future *run = SUBMIT("sleep 10000", &t);
    evdb_future *onconn = SUBMIT("ok", &t);
    evdb_future *inpool = SUBMIT("ok", &t);
    ck_assert_int_eq(t_wait(run), EVDB_ETIMEDOUT);
    ck_assert_int_eq(t_wait(onconn), EVDB_ETIMEDOUT);
    ck_assert_int_eq(t_wait(inpool), EVDB_ETIMEDOUT);
    ck_assert(msg_has(run, "sent to the server"));
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(run)));
    ck_assert(msg_has(onconn, "queued on its connection, not sent"));
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(onconn)));
    ck_assert(msg_has(inpool, "waiting for a pooled connection, not sent"));
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(inpool)));
    ck_assert_int_eq(t_wait(SUBMIT("ok", NULL)), 0); /* the cancel settled */
    /* Cancels at the same three stages. */
    run = SUBMIT("sleep 10000", NULL);
    onconn = SUBMIT("ok", NULL);
    inpool = SUBMIT("ok", NULL);
    t_run_for(loop, 0.01);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.waiting, 1);
    ck_assert_int_eq(evdb_future_cancel(inpool), 0);
    ck_assert_int_eq(evdb_future_cancel(onconn), 0);
    ck_assert_int_eq(evdb_future_cancel(run), 0);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(run)));
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(onconn)));
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(inpool)));
    ck_assert_int_eq(t_wait(SUBMIT("ok", NULL)), 0);
    /* The connection lost under a running query; the one behind it moves
     * to the replacement. */
    evdb_future *lost = SUBMIT("drop", NULL);
    evdb_future *moved = SUBMIT("ok moved", NULL);
    ck_assert_int_eq(t_wait(lost), EVDB_ECONNLOST);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(lost)));
    ck_assert_int_eq(t_wait(moved), 0);
    /* The pool's acquire timeout, and a query the driver refuses. */
    evdb_future *slow = SUBMIT("sleep 400", NULL);
    evdb_future *behind = SUBMIT("ok", NULL);
    evdb_future *starved = SUBMIT("ok", NULL);
    ck_assert_int_eq(t_wait(starved), EVDB_EPOOLTIMEOUT);
    ck_assert_int_eq(t_wait(slow), 0);
    ck_assert_int_eq(t_wait(behind), 0);
    ck_assert_int_eq(t_wait(SUBMIT("refuse", NULL)), EVDB_EINVAL);
    /* A borrower's queries are its own, not the pool's. */
    evdb_future *a = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(a), 0);
    evdb_conn *c = evdb_future_take_conn(a);
    evdb_future *mine = evdb_conn_query(c, "error 40001", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(mine), EVDB_ESERVER);
    evdb_future_unref(mine);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    evdb_future_unref(a);
    t_run_for(loop, 0.05);
#undef SUBMIT
    uint64_t ok = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(cnt.calls[i], 1);
        ck_assert_int_ne(evdb_future_status(fs[i]), EVDB_PENDING);
        if (evdb_future_status(fs[i]) == 0)
            ok++;
    }
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.queries, (uint64_t)n);
    ck_assert_uint_eq(st.queries, ok + st.query_errors);
    /* server error, 3 timeouts, 3 cancels, lost, pool timeout, refused */
    ck_assert_uint_eq(st.query_errors, 10);
    ck_assert_uint_eq(st.query_timeouts, 3);
    ck_assert_uint_eq(st.query_cancels, 3);
    ck_assert_uint_eq(st.pool_timeouts, 1);
    ck_assert_uint_eq(st.broken, 1);
    for (int i = 0; i < n; i++)
        evdb_future_unref(fs[i]);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

/* A query the driver took but had not put on the wire when the connection
 * broke never ran: it moves to the replacement like a pending one,
 * instead of failing with "outcome unknown". */
START_TEST(queries_the_driver_held_unsent_move_when_the_connection_breaks)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 1, .pipeline_depth = 3, .backoff_initial = 0.01};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?lazy_send=1", &o);
    evdb_future *w = evdb_pool_query(p, "ok", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(w), 0);
    evdb_future_unref(w);
    evdb_future *fs[3];
    const char *sql[3] = {"drop", "ok 1", "ok 2"};
    for (int i = 0; i < 3; i++)
        fs[i] = evdb_pool_query(p, sql[i], NULL, 0, NULL);
    evdb_future *g = evdb_gather(fs, 3, 0);
    t_wait(g);
    ck_assert_uint_eq(fake.sends, 1 + 3 + 2); /* warm-up, the three, then two again */
    ck_assert_int_eq(evdb_future_status(fs[0]), EVDB_ECONNLOST);
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(fs[0])));
    for (int i = 1; i < 3; i++) {
        ck_assert_int_eq(evdb_future_status(fs[i]), 0);
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        ck_assert_str_eq(evdb_result_text(evdb_future_result(fs[i]), 0, 0, NULL), want);
    }
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.broken, 1);
    ck_assert_uint_eq(st.query_errors, 1);
    for (int i = 0; i < 3; i++)
        evdb_future_unref(fs[i]);
    evdb_future_unref(g);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

typedef struct leak_query {
    evdb_conn *expect;
    evdb_future *f;
} leak_query;

static void on_leak_query(const evdb_pool_leak *leak, void *arg)
{
    leak_query *lq = arg;
    /* The leak report's handle is the borrower's: usable like it. */
    if (leak->conn == lq->expect && !lq->f)
        lq->f = evdb_conn_query(leak->conn, "ok from the hook", NULL, 0, NULL);
}

/* Completion order of pooled queries: each callback takes the next
 * number, and counts its calls (every callback exactly once). */
typedef struct seq_log {
    int next;
    int seq[16];
    int calls[16];
} seq_log;

typedef struct seq_slot {
    seq_log *log;
    int id;
} seq_slot;

static void on_done_order(evdb_future *f, void *arg)
{
    (void)f;
    seq_slot *s = arg;
    s->log->calls[s->id]++;
    s->log->seq[s->id] = s->log->next++;
}

static evdb_future *submit_ordered(evdb_pool *p, const char *sql, seq_log *log, seq_slot *slot,
                                   int id)
{
    evdb_future *f = evdb_pool_query(p, sql, NULL, 0, NULL);
    ck_assert_ptr_nonnull(f);
    *slot = (seq_slot){log, id};
    ck_assert_int_eq(evdb_future_on_done(f, on_done_order, slot), 0);
    return f;
}

/* Run the loop until p (min_conns 2) has both connections open and idle. */
static void wait_two_idle(struct ev_loop *loop, evdb_pool *p)
{
    evdb_pool_stats st;
    for (int i = 0; i < 200; i++) {
        evdb_pool_stats_get(p, &st);
        if (st.idle == 2)
            return;
        t_run_for(loop, 0.01);
    }
    ck_abort_msg("the pool did not open its two connections");
}

/* fs[1..n-1] = "ok <i>", submitted in this loop tick. */
static void submit_oks(evdb_pool *p, evdb_future **fs, seq_log *log, seq_slot *slots, int n)
{
    for (int i = 1; i < n; i++) {
        char sql[16];
        snprintf(sql, sizeof sql, "ok %d", i);
        fs[i] = submit_ordered(p, sql, log, &slots[i], i);
    }
}

/* A pool below max_conns whose one connection runs a long statement opens
 * another for the next query instead of pipelining it behind: the quick
 * query finishes first (adaptive threshold, the default). */
START_TEST(slow_head_makes_the_pool_grow_instead_of_pipelining)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 4, .pipeline_depth = 8};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?connect_ms=5", &o);
    evdb_future *w = evdb_pool_query(p, "ok", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(w), 0);
    evdb_future_unref(w);
    seq_log log = {0};
    seq_slot slots[2];
    evdb_future *slow = submit_ordered(p, "sleep 400", &log, &slots[0], 0);
    t_run_for(loop, 0.05);
    evdb_future *quick = submit_ordered(p, "ok", &log, &slots[1], 1);
    ck_assert_int_eq(t_wait(slow), 0);
    ck_assert_int_eq(t_wait(quick), 0);
    ck_assert_int_eq(log.seq[1], 0); /* the quick one first */
    ck_assert_int_eq(log.seq[0], 1);
    ck_assert_int_eq(log.calls[0], 1);
    ck_assert_int_eq(log.calls[1], 1);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.connects, 2);
    evdb_future_unref(slow);
    evdb_future_unref(quick);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

/* At max_conns queries pipeline onto busy connections; the ones queued
 * unsent behind a head that has run past the stall threshold go back to
 * the pool and run elsewhere, before the long statement ends, in their
 * order. _i == 0: the driver takes one query at a time (depth=1), so the
 * rest wait on the connection's pending list; _i == 1: the driver takes
 * them all but puts only its head on the wire (lazy_send), and gives the
 * others back (take_unsent). */
START_TEST(queries_behind_a_stalled_head_move_to_another_connection)
{
    static const char *const urls[2] = {"fake://db/?depth=1", "fake://db/?lazy_send=1"};
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {
        .max_conns = 2, .min_conns = 2, .pipeline_depth = 4, .stall_threshold = 0.05};
    evdb_pool *p = evdb_pool_new(loop, urls[_i], &o);
    evdb_pool_stats st;
    wait_two_idle(loop, p);
    seq_log log = {0};
    seq_slot slots[7];
    evdb_future *fs[7];
    fs[0] = submit_ordered(p, "sleep 600", &log, &slots[0], 0);
    submit_oks(p, fs, &log, slots, 7);
    /* All on the two connections (pipelined), none waiting in the pool. */
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.waiting, 0);
    evdb_future *g = evdb_gather(fs, 7, 0);
    ck_assert_int_eq(t_wait(g), 0);
    evdb_future_unref(g);
    ck_assert_int_eq(log.seq[0], 6); /* the long one last */
    if (_i == 1)
        ck_assert_uint_ge(fake.taken_back, 1); /* the driver gave some back */
    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(log.calls[i], 1);
    for (int i = 1; i < 7; i++) {
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        ck_assert_str_eq(evdb_result_text(evdb_future_result(fs[i]), 0, 0, NULL), want);
    }
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.connects, 2);
    ck_assert_uint_eq(st.query_errors, 0);
    for (int i = 0; i < 7; i++)
        evdb_future_unref(fs[i]);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

/* A query given up on (timed out) while the driver held it unsent behind
 * the stalled head is dropped when taken back, never run elsewhere; its
 * callback runs once, with the timeout, and the stats add up. */
START_TEST(given_up_queries_taken_back_unsent_are_dropped)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {
        .max_conns = 2, .min_conns = 2, .pipeline_depth = 8, .stall_threshold = 0.05};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?lazy_send=1", &o);
    evdb_pool_stats st;
    wait_two_idle(loop, p);
    seq_log log = {0};
    seq_slot slots[7];
    evdb_future *fs[7];
    fs[0] = submit_ordered(p, "sleep 300", &log, &slots[0], 0);
    evdb_query_opts t = {.timeout = 0.02};
    for (int i = 1; i < 7; i++) {
        fs[i] = evdb_pool_query(p, "sleep 1", NULL, 0, &t);
        slots[i] = (seq_slot){&log, i};
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_done_order, &slots[i]), 0);
    }
    evdb_future *g = evdb_gather(fs, 7, 0);
    t_wait(g);
    evdb_future_unref(g);
    t_run_for(loop, 0.4); /* the long one and anything left end */
    int ok = 0, timed_out = 0;
    for (int i = 0; i < 7; i++) {
        ck_assert_int_eq(log.calls[i], 1);
        int stv = evdb_future_status(fs[i]);
        ck_assert(stv == 0 || stv == EVDB_ETIMEDOUT);
        ok += stv == 0;
        timed_out += stv == EVDB_ETIMEDOUT;
        evdb_future_unref(fs[i]);
    }
    ck_assert_int_eq(ok + timed_out, 7);
    ck_assert_int_ge(timed_out, 1); /* something waited behind the long one */
    ck_assert_uint_ge(fake.taken_back, 1);
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.queries, 7);
    ck_assert_uint_eq(st.query_errors, (unsigned)timed_out);
    ck_assert_uint_eq(st.query_timeouts, (unsigned)timed_out);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

/* With stall routing off (stall_threshold < 0) the same queries wait
 * behind the long statement: the test above is not passing by luck. */
START_TEST(stall_routing_off_keeps_queries_behind_the_head)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 2, .min_conns = 2, .pipeline_depth = 4, .stall_threshold = -1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?depth=1", &o);
    wait_two_idle(loop, p);
    seq_log log = {0};
    seq_slot slots[7];
    evdb_future *fs[7];
    fs[0] = submit_ordered(p, "sleep 300", &log, &slots[0], 0);
    for (int i = 1; i < 7; i++)
        fs[i] = submit_ordered(p, "ok", &log, &slots[i], i);
    evdb_future *g = evdb_gather(fs, 7, 0);
    ck_assert_int_eq(t_wait(g), 0);
    evdb_future_unref(g);
    ck_assert_int_lt(log.seq[0], 6); /* something waited behind it */
    for (int i = 0; i < 7; i++) {
        ck_assert_int_eq(log.calls[i], 1);
        evdb_future_unref(fs[i]);
    }
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

/* The issue: evdb_pool_acquire handed out the connection itself, so a
 * handle kept after evdb_conn_release named the connection's next
 * borrower too, and releasing it again released theirs. Each borrow now
 * has a handle of its own: after release every call on it fails with
 * EVDB_EINVAL and touches no connection, also once the same connection is
 * lent out again. */
START_TEST(stale_handle_never_acts_on_the_next_borrower)
{
    struct ev_loop *loop = t_loop_new(5);
    leak_query hooked = {NULL, NULL};
    evdb_pool_opts o = {.max_conns = 1,
                        .leak_threshold = 0.05,
                        .leak_hook = on_leak_query,
                        .leak_hook_arg = &hooked};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_future *fa = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(fa), 0);
    evdb_conn *a = evdb_future_take_conn(fa);
    ck_assert_ptr_nonnull(a);
    evdb_future *q = evdb_conn_query(a, "ok a", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_future_unref(q);
    ck_assert_int_eq(evdb_conn_release(a), 0);
    /* The same (only) connection, lent out again. */
    evdb_future *fb = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(fb), 0);
    evdb_conn *b = evdb_future_take_conn(fb);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    hooked.expect = b;
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.total, 1);
    ck_assert_uint_eq(st.connects, 1);
    ck_assert_uint_eq(st.acquired, 1);
    size_t sends = fake.sends;
    /* Every call on the stale handle fails, and sends nothing. */
    ck_assert_int_eq(evdb_conn_release(a), EVDB_EINVAL);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_last_error()), "stale"));
    ck_assert_ptr_null(evdb_conn_query(a, "ok", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_conn_prepare(a, "ok", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_conn_unprepare(a, "ok", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_stmt stmt = {"ok", NULL, 0};
    ck_assert_ptr_null(evdb_conn_batch(a, &stmt, 1, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_conn_close(a));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_int_eq(evdb_conn_set_notice_hook(a, NULL, NULL), EVDB_EINVAL);
    ck_assert_int_eq(evdb_conn_status(a), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_conn_driver(a));
    ck_assert_uint_eq(evdb_conn_pending(a), 0);
    ck_assert_int_eq(evdb_conn_server_id(a), 0);
    ck_assert_ptr_null(evdb_conn_error(a));
    ck_assert_uint_eq(fake.sends, sends);
    /* The new borrower still has it, undisturbed. */
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.acquired, 1);
    ck_assert_int_eq(evdb_conn_status(b), 0);
    ck_assert_str_eq(evdb_conn_driver(b), "fake");
    q = evdb_conn_query(b, "ok b", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(q), 0, 0, NULL), "b");
    evdb_future_unref(q);
    /* a's reset is not awaited by the release: it ran ahead of b's query. */
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.resets, 1);
    /* The leak hook's handle is b's own. */
    t_run_for(loop, 0.4);
    ck_assert_ptr_nonnull(hooked.f);
    ck_assert_int_eq(t_wait(hooked.f), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(hooked.f), 0, 0, NULL), "from the hook");
    evdb_future_unref(hooked.f);
    ck_assert_int_eq(evdb_conn_release(b), 0);
    ck_assert_int_eq(evdb_conn_release(b), EVDB_EINVAL);
    t_run_for(loop, 0.02);
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.acquired, 0);
    ck_assert_uint_eq(st.resets, 2);
    /* A pooled query is not disturbed by them either. */
    q = evdb_pool_query(p, "ok pooled", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_future_unref(q);
    evdb_future_unref(fa);
    evdb_future_unref(fb);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

static evdb_future *txn_release_own(evdb_conn *c, void *arg)
{
    evdb_conn **seen = arg;
    *seen = c;
    evdb_future *f = evdb_conn_query(c, "ok body", NULL, 0, NULL);
    /* Misuse: the body gives the connection back itself. */
    ck_assert_int_eq(evdb_conn_release(c), 0);
    return f;
}

/* The transaction helper holds the borrow handle too: a body that
 * releases it makes the COMMIT fail instead of running on the
 * connection's next borrower. */
/* A connection whose only work is the reset its release queued is idle
 * for pooled queries as it is for acquires: the query goes out behind
 * the reset instead of making the pool open a second connection. */
START_TEST(pooled_query_takes_a_connection_that_only_resets)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 2, .pipeline_depth = 4, .stall_threshold = -1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/?reset_ms=100&depth=4", &o);
    evdb_future *a = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(a), 0);
    ck_assert_int_eq(evdb_conn_release(evdb_future_take_conn(a)), 0);
    evdb_future_unref(a);
    done_count dc = {{0}};
    done_slot ds = {&dc, 0};
    evdb_future *q = evdb_pool_query(p, "ok pooled", NULL, 0, NULL);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(evdb_future_on_done(q, on_done_count, &ds), 0);
    ck_assert_int_eq(t_wait(q), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(q), 0, 0, NULL), "pooled");
    evdb_future_unref(q);
    t_run_for(loop, 0.01);
    ck_assert_int_eq(dc.calls[0], 1);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.connects, 1);
    ck_assert_uint_eq(fake.connects, 1);
    ck_assert_uint_eq(st.resets, 1); /* the query ran behind the reset */
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

/* A reset that fails on a connection still up and not lent out (the fake
 * leaves it up, as a driver that does not drop the connection itself
 * would): the connection takes no more work, the pooled queries routed
 * behind the reset and not sent move to a new connection, the one sent
 * finishes where it is, then the connection is closed. Every callback
 * runs once and every query succeeds. */
START_TEST(failed_reset_retires_a_live_connection)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 1, .pipeline_depth = 4, .stall_threshold = -1};
    evdb_pool *p =
        evdb_pool_new(loop, "fake://db/?reset_ms=50&reset_fail=1&lazy_send=1&depth=4", &o);
    evdb_future *a = evdb_pool_acquire(p, 0);
    ck_assert_int_eq(t_wait(a), 0);
    ck_assert_int_eq(evdb_conn_release(evdb_future_take_conn(a)), 0);
    evdb_future_unref(a);
    /* Behind the reset: the head runs past the reset's failure, the two
     * after it are still unsent then (lazy_send). */
    static const char *const sql[3] = {"sleep 100", "ok 2", "ok 3"};
    done_count dc = {{0}};
    done_slot ds[3];
    evdb_future *fs[3];
    for (int i = 0; i < 3; i++) {
        ds[i] = (done_slot){&dc, i};
        fs[i] = evdb_pool_query(p, sql[i], NULL, 0, NULL);
        ck_assert_ptr_nonnull(fs[i]);
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_done_count, &ds[i]), 0);
    }
    evdb_future *g = evdb_gather(fs, 3, 0);
    ck_assert_int_eq(t_wait(g), 0);
    evdb_future_unref(g);
    t_run_for(loop, 0.02);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(dc.calls[i], 1);
        ck_assert_int_eq(evdb_future_status(fs[i]), 0);
        evdb_future_unref(fs[i]);
    }
    ck_assert_uint_eq(fake.resets_failed, 1);
    ck_assert_uint_eq(fake.taken_back, 2);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.discarded, 1);
    ck_assert_msg(strstr(st.last_discard_reason, "reset failed") != NULL, "%s",
                  st.last_discard_reason);
    ck_assert_uint_eq(st.resets, 0);
    ck_assert_uint_eq(st.connects, 2);
    ck_assert_uint_eq(st.total, 1);
    ck_assert_uint_eq(fake.destroys, 1);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

START_TEST(transaction_commit_needs_its_own_borrow)
{
    struct ev_loop *loop = t_loop_new(5);
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = evdb_pool_new(loop, "fake://db/", &o);
    evdb_conn *seen = NULL;
    evdb_future *t = evdb_pool_transaction(p, txn_release_own, &seen, 0);
    ck_assert_int_eq(t_wait(t), EVDB_EINVAL);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(t)), "stale"));
    evdb_future_unref(t);
    ck_assert_int_eq(evdb_conn_status(seen), EVDB_EINVAL);
    t_run_for(loop, 0.05);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.acquired, 0);
    /* BEGIN, the body, the release's ROLLBACK: no COMMIT was sent. */
    ck_assert_uint_eq(fake.sends, 3);
    close_pool(p);
    t_loop_free(loop);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("fake");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, grows_lazily_and_answers);
    tcase_add_test(tc, pipelines_up_to_depth);
    tcase_add_test(tc, acquire_timeout_fails_waiters_in_time);
    tcase_add_test(tc, acquire_release_and_reset);
    tcase_add_test(tc, member_states_are_traced_when_asked);
    tcase_add_test(tc, unsent_queries_move_to_another_connection);
    tcase_add_test(tc, connect_failures_fail_waiters_and_back_off);
    tcase_add_test(tc, close_fails_waiters_and_bad_arguments);
    tcase_add_test(tc, leaks_are_reported_with_call_site_and_use_after_release_refused);
    tcase_add_test(tc, transaction_helper_commits_or_rolls_back);
    tcase_add_test(tc, lifetime_and_idle_retire_connections);
    tcase_add_test(tc, idle_connections_are_validated_before_use);
    tcase_add_test(tc, query_hook_and_stats_count_every_query);
    tcase_add_test(tc, waiters_are_served_fifo_under_contention);
    tcase_add_test(tc, max_is_respected_under_oversubscription);
    tcase_add_test(tc, close_waits_for_running_queries_then_gives_up);
    tcase_add_test(tc, max_lifetime_rotates_connections);
    tcase_add_test(tc, rerouted_query_waits_for_the_replacement);
    tcase_add_test(tc, closed_pool_handle_refuses_while_the_close_future_lives);
    tcase_add_test(tc, stats_count_every_outcome);
    tcase_add_test(tc, queries_the_driver_held_unsent_move_when_the_connection_breaks);
    tcase_add_test(tc, stale_handle_never_acts_on_the_next_borrower);
    tcase_add_test(tc, slow_head_makes_the_pool_grow_instead_of_pipelining);
    tcase_add_loop_test(tc, queries_behind_a_stalled_head_move_to_another_connection, 0, 2);
    tcase_add_test(tc, stall_routing_off_keeps_queries_behind_the_head);
    tcase_add_test(tc, given_up_queries_taken_back_unsent_are_dropped);
    tcase_add_test(tc, transaction_commit_needs_its_own_borrow);
    tcase_add_test(tc, pooled_query_takes_a_connection_that_only_resets);
    tcase_add_test(tc, failed_reset_retires_a_live_connection);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
