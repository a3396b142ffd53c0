/*
 * Unit tests of futures and combinators: ordering, exactly-once callbacks,
 * re-entrancy from callbacks, gather / race / timeout / sleep semantics.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct log {
    int order[32];
    int n;
    int calls;
} log_t;

typedef struct tag {
    log_t *log;
    int id;
} tag;

static void record(evdb_future *f, void *arg)
{
    (void)f;
    tag *t = arg;
    t->log->calls++;
    if (t->log->n < 32)
        t->log->order[t->log->n++] = t->id;
}

START_TEST(callbacks_run_in_order_exactly_once)
{
    struct ev_loop *loop = t_loop_new(3);
    log_t log = {0};
    tag tags[5];
    evdb_future *f = evdb_future_new(loop);
    for (int i = 0; i < 5; i++) {
        tags[i] = (tag){&log, i};
        ck_assert_int_eq(evdb_future_on_done(f, record, &tags[i]), 0);
    }
    ck_assert_int_eq(evdb_future_status(f), EVDB_PENDING);
    ck_assert_int_eq(evdb_future_resolve(f, NULL, NULL), 0);
    /* Never synchronously. */
    ck_assert_int_eq(log.calls, 0);
    ck_assert_int_eq(evdb_future_resolve(f, NULL, NULL), EVDB_ESTATE);
    ck_assert_int_eq(evdb_future_fail(f, EVDB_EPROTO, "x"), EVDB_ESTATE);
    ck_assert_int_eq(evdb_future_cancel(f), EVDB_ESTATE);
    t_run_for(loop, 0.05);
    ck_assert_int_eq(log.calls, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(log.order[i], i);
    ck_assert_int_eq(evdb_future_status(f), 0);
    evdb_future_unref(f);
    t_loop_free(loop);
}
END_TEST

START_TEST(registration_on_done_future_is_deferred)
{
    struct ev_loop *loop = t_loop_new(3);
    log_t log = {0};
    tag t1 = {&log, 1};
    evdb_future *f = evdb_future_new(loop);
    evdb_future_fail(f, EVDB_ESERVER, "boom");
    t_run_for(loop, 0.01);
    ck_assert_int_eq(evdb_future_on_done(f, record, &t1), 0);
    ck_assert_int_eq(log.calls, 0);
    ck_assert_int_eq(t_wait(f), EVDB_ESERVER);
    ck_assert_int_eq(log.calls, 1);
    ck_assert_str_eq(evdb_error_message(evdb_future_error(f)), "boom");
    ck_assert_int_eq(evdb_error_code(evdb_future_error(f)), EVDB_ESERVER);
    evdb_future_unref(f);
    t_loop_free(loop);
}
END_TEST

static int freed_values;
static void free_value(void *v)
{
    freed_values++;
    free(v);
}

START_TEST(user_future_owns_value)
{
    struct ev_loop *loop = t_loop_new(3);
    freed_values = 0;
    evdb_future *f = evdb_future_new(loop);
    char *v = strdup("hello");
    ck_assert_int_eq(evdb_future_resolve(f, v, free_value), 0);
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_str_eq(evdb_future_value(f), "hello");
    ck_assert_ptr_null(evdb_future_result(f));
    /* A second resolve frees its value at once and fails. */
    ck_assert_int_eq(evdb_future_resolve(f, strdup("again"), free_value), EVDB_ESTATE);
    ck_assert_int_eq(freed_values, 1);
    evdb_future_unref(f);
    ck_assert_int_eq(freed_values, 2);
    t_loop_free(loop);
}
END_TEST

/* Re-entrancy: a callback that unrefs its own future, cancels others and
 * registers more callbacks. */
typedef struct reent {
    evdb_future *self, *other;
    int calls, late_calls;
} reent;

static void late(evdb_future *f, void *arg)
{
    (void)f;
    ((reent *)arg)->late_calls++;
}

static void reentrant(evdb_future *f, void *arg)
{
    reent *r = arg;
    r->calls++;
    ck_assert_int_eq(evdb_future_cancel(r->other), 0);
    ck_assert_int_eq(evdb_future_cancel(r->other), EVDB_ESTATE);
    ck_assert_int_eq(evdb_future_on_done(f, late, r), 0);
    ck_assert_int_eq(r->late_calls, 0);
    /* evdb_future_wait inside a callback is refused, clearly. */
    ck_assert_int_eq(evdb_future_wait(r->other), EVDB_EINCALLBACK);
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINCALLBACK);
    evdb_future_unref(r->self);
}

START_TEST(reentrancy_from_callbacks)
{
    struct ev_loop *loop = t_loop_new(3);
    reent r = {0};
    r.self = evdb_future_new(loop);
    r.other = evdb_future_new(loop);
    evdb_future_on_done(r.other, late, &r);
    evdb_future_on_done(r.self, reentrant, &r);
    evdb_future_resolve(r.self, NULL, NULL);
    t_run_for(loop, 0.05);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.late_calls, 2); /* other's callback + the late one */
    ck_assert_int_eq(evdb_future_status(r.other), EVDB_ECANCELED);
    evdb_future_unref(r.other);
    t_loop_free(loop);
}
END_TEST

START_TEST(bad_arguments_fail_at_once)
{
    struct ev_loop *loop = t_loop_new(3);
    ck_assert_ptr_null(evdb_future_new(NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_sleep(loop, -1));
    ck_assert_ptr_null(evdb_gather(NULL, 2, 0));
    ck_assert_ptr_null(evdb_race(NULL, 0));
    ck_assert_ptr_null(evdb_timeout(NULL, 1));
    ck_assert_int_eq(evdb_future_wait(NULL), EVDB_EINVAL);
    ck_assert_int_eq(evdb_future_on_done(NULL, late, NULL), EVDB_EINVAL);
    evdb_future *f = evdb_future_new(loop);
    ck_assert_int_eq(evdb_future_fail(f, 5, "positive"), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_gather(&f, 1, 0x80));
    /* Regression (found by integ_badinput under ASan): an absurd count is
     * refused before the array is read. */
    ck_assert_ptr_null(evdb_gather(&f, SIZE_MAX, 0));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_race(&f, SIZE_MAX / 2));
    /* A future that can never complete: wait says so instead of hanging. */
    ck_assert_int_eq(evdb_future_wait(f), EVDB_ESTATE);
    evdb_future_unref(f);
    ck_assert_str_eq(evdb_strerror(EVDB_ETIMEDOUT), "operation timed out");
    ck_assert_str_eq(evdb_err_name(EVDB_ETIMEDOUT), "EVDB_ETIMEDOUT");
    ck_assert_str_eq(evdb_err_name(12345), "EVDB_UNKNOWN");
    ck_assert_str_eq(evdb_strerror(-999), "unknown error");
    t_loop_free(loop);
}
END_TEST

START_TEST(sleep_completes_after_delay)
{
    struct ev_loop *loop = t_loop_new(3);
    double t0 = t_now();
    evdb_future *f = evdb_sleep(loop, 0.1);
    ck_assert_int_eq(t_wait(f), 0);
    double dt = t_now() - t0;
    ck_assert(dt >= 0.095);
    evdb_future_unref(f);
    /* Cancelling a sleep stops its timer: nothing stays on the loop. */
    f = evdb_sleep(loop, 10);
    ck_assert_int_eq(evdb_future_cancel(f), 0);
    ck_assert_int_eq(t_wait(f), EVDB_ECANCELED);
    evdb_future_unref(f);
    t_loop_free(loop);
}
END_TEST

START_TEST(gather_waits_for_all)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_future *fs[3] = {evdb_sleep(loop, 0.05), evdb_future_new(loop), evdb_sleep(loop, 0.1)};
    evdb_future_fail(fs[1], EVDB_ESERVER, "second failed");
    evdb_future *g = evdb_gather(fs, 3, EVDB_GATHER_ALL);
    ck_assert_ptr_nonnull(g);
    double t0 = t_now();
    ck_assert_int_eq(t_wait(g), EVDB_ESERVER);
    ck_assert(t_now() - t0 >= 0.09); /* waited for the slowest */
    ck_assert_str_eq(evdb_error_message(evdb_future_error(g)), "second failed");
    ck_assert_int_eq(evdb_future_status(fs[0]), 0);
    ck_assert_int_eq(evdb_future_status(fs[2]), 0);
    evdb_future_unref(g);
    for (int i = 0; i < 3; i++)
        evdb_future_unref(fs[i]);
    /* All ok: the gather is ok. */
    evdb_future *ok[2] = {evdb_sleep(loop, 0), evdb_sleep(loop, 0.01)};
    g = evdb_gather(ok, 2, 0);
    ck_assert_int_eq(t_wait(g), 0);
    evdb_future_unref(g);
    evdb_future_unref(ok[0]);
    evdb_future_unref(ok[1]);
    t_loop_free(loop);
}
END_TEST

START_TEST(gather_fail_fast_cancels_the_rest)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_future *fs[3] = {evdb_sleep(loop, 5), evdb_future_new(loop), evdb_sleep(loop, 5)};
    evdb_future *g = evdb_gather(fs, 3, EVDB_GATHER_FAIL_FAST);
    evdb_future_fail(fs[1], EVDB_ESERVER, "fail fast");
    double t0 = t_now();
    ck_assert_int_eq(t_wait(g), EVDB_ESERVER);
    ck_assert(t_now() - t0 < 1);
    ck_assert_int_eq(evdb_future_status(fs[0]), EVDB_ECANCELED);
    ck_assert_int_eq(evdb_future_status(fs[2]), EVDB_ECANCELED);
    evdb_future_unref(g);
    for (int i = 0; i < 3; i++)
        evdb_future_unref(fs[i]);
    t_loop_free(loop);
}
END_TEST

START_TEST(gather_cancel_cancels_children)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_future *fs[2] = {evdb_sleep(loop, 5), evdb_future_new(loop)};
    evdb_future *g = evdb_gather(fs, 2, 0);
    /* The caller may drop its references to the children at once. */
    evdb_future *child1 = evdb_future_ref(fs[1]);
    evdb_future_unref(fs[0]);
    evdb_future_unref(fs[1]);
    ck_assert_int_eq(evdb_future_cancel(g), 0);
    ck_assert_int_eq(t_wait(g), EVDB_ECANCELED);
    ck_assert_int_eq(evdb_future_status(child1), EVDB_ECANCELED);
    evdb_future_unref(child1);
    evdb_future_unref(g);
    t_loop_free(loop);
}
END_TEST

START_TEST(race_first_wins_others_cancelled)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_future *fs[3] = {evdb_sleep(loop, 5), evdb_sleep(loop, 0.02), evdb_future_new(loop)};
    evdb_future *r = evdb_race(fs, 3);
    ck_assert_int_eq(t_wait(r), 0);
    ck_assert_ptr_eq(evdb_race_winner(r), fs[1]);
    ck_assert_int_eq(evdb_future_status(fs[0]), EVDB_ECANCELED);
    ck_assert_int_eq(evdb_future_status(fs[2]), EVDB_ECANCELED);
    evdb_future_unref(r);
    for (int i = 0; i < 3; i++)
        evdb_future_unref(fs[i]);
    /* A failing first finisher fails the race with its error. */
    evdb_future *a = evdb_future_new(loop), *b = evdb_sleep(loop, 5);
    evdb_future *ab[2] = {a, b};
    r = evdb_race(ab, 2);
    evdb_future_fail(a, EVDB_ECONNLOST, "gone");
    ck_assert_int_eq(t_wait(r), EVDB_ECONNLOST);
    ck_assert_str_eq(evdb_error_message(evdb_future_error(r)), "gone");
    evdb_future_unref(r);
    evdb_future_unref(a);
    evdb_future_unref(b);
    t_loop_free(loop);
}
END_TEST

START_TEST(timeout_fires_and_cancels_inner)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_future *inner = evdb_sleep(loop, 5);
    evdb_future *t = evdb_timeout(inner, 0.05);
    double t0 = t_now();
    ck_assert_int_eq(t_wait(t), EVDB_ETIMEDOUT);
    double dt = t_now() - t0;
    ck_assert(dt >= 0.045 && dt < 1);
    ck_assert_int_eq(evdb_future_status(inner), EVDB_ECANCELED);
    evdb_future_unref(t);
    evdb_future_unref(inner);
    t_loop_free(loop);
}
END_TEST

START_TEST(timeout_not_firing_forwards_outcome)
{
    struct ev_loop *loop = t_loop_new(3);
    evdb_future *inner = evdb_future_new(loop);
    evdb_future *t = evdb_timeout(inner, 5);
    evdb_future_unref(inner); /* the timeout keeps its own reference */
    evdb_future_resolve(inner, strdup("v"), free);
    ck_assert_int_eq(t_wait(t), 0);
    ck_assert_str_eq(evdb_future_value(t), "v");
    evdb_future_unref(t);
    /* Inner failure passes through with its message. */
    inner = evdb_future_new(loop);
    t = evdb_timeout(inner, 5);
    evdb_future_fail(inner, EVDB_ESERVER, "inner failed");
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    ck_assert_str_eq(evdb_error_message(evdb_future_error(t)), "inner failed");
    evdb_future_unref(t);
    evdb_future_unref(inner);
    t_loop_free(loop);
}
END_TEST

/* Allocation failure in each allocation of a submission path: a clear
 * error, no callback, nothing leaked. */
START_TEST(allocation_failures_are_clean)
{
    struct ev_loop *loop = t_loop_new(5);
    /* Count the allocations of a gather of two sleeps under a timeout. */
    size_t total = 0;
    for (size_t nth = 1;; nth++) {
        t_alloc_fail_at(nth);
        evdb_future *a = evdb_sleep(loop, 0);
        evdb_future *b = a ? evdb_sleep(loop, 0) : NULL;
        evdb_future *ab[2] = {a, b};
        evdb_future *g = b ? evdb_gather(ab, 2, 0) : NULL;
        evdb_future *t = g ? evdb_timeout(g, 1) : NULL;
        size_t used = t_alloc_count();
        t_alloc_fail_at(0);
        if (!t)
            ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ENOMEM);
        else
            ck_assert_int_eq(t_wait(t), 0);
        evdb_future_unref(t);
        evdb_future_unref(g);
        evdb_future_unref(a);
        evdb_future_unref(b);
        t_run_for(loop, 0.01);
        if (t && used < nth) {
            total = nth - 1;
            break;
        }
    }
    ck_assert_uint_gt(total, 5);
    t_loop_free(loop);
}
END_TEST

START_TEST(works_on_default_loop)
{
    /* evdb must work with ev_default_loop and leave its child watchers
     * alone; run it in the forked test process only. */
    struct ev_loop *loop = ev_default_loop(0);
    evdb_future *f = evdb_sleep(loop, 0.01);
    ck_assert_int_eq(evdb_future_wait(f), 0);
    evdb_future_unref(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("future");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, callbacks_run_in_order_exactly_once);
    tcase_add_test(tc, registration_on_done_future_is_deferred);
    tcase_add_test(tc, user_future_owns_value);
    tcase_add_test(tc, reentrancy_from_callbacks);
    tcase_add_test(tc, bad_arguments_fail_at_once);
    tcase_add_test(tc, sleep_completes_after_delay);
    tcase_add_test(tc, works_on_default_loop);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("combinators");
    tcase_set_timeout(tc2, 10);
    tcase_add_test(tc2, gather_waits_for_all);
    tcase_add_test(tc2, gather_fail_fast_cancels_the_rest);
    tcase_add_test(tc2, gather_cancel_cancels_children);
    tcase_add_test(tc2, race_first_wins_others_cancelled);
    tcase_add_test(tc2, timeout_fires_and_cancels_inner);
    tcase_add_test(tc2, timeout_not_firing_forwards_outcome);
    tcase_add_test(tc2, allocation_failures_are_clean);
    suite_add_tcase(s, tc2);
    return t_run_suite(s);
}
