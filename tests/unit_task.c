/*
 * Unit tests of tasks (include/evdb/task.h), without servers: awaiting
 * every kind of core future, nesting, errors through await, cancellation at
 * an await and around a task, evdb_run, stacks (reuse, sizes, the guard
 * page), 10,000 concurrent tasks, allocation failures, the unobserved-error
 * hook and the dump.
 */
#include <check.h>
#include <fenv.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define WATCHDOG_S 10.0
#define MANY_TASKS 10000

/* ---- helpers ---- */

static void *return_arg(void *arg)
{
    return arg;
}

typedef struct sleeper {
    struct ev_loop *loop;
    double seconds;
    int status;       /* what the await returned */
    int after_status; /* a second await, after the first returned */
    int cleaned_up;
    double t0, t1;
} sleeper;

static void *sleep_task(void *arg)
{
    sleeper *s = arg;
    s->t0 = t_now();
    evdb_future *f = evdb_sleep(s->loop, s->seconds);
    s->status = evdb_await(f);
    s->t1 = t_now();
    evdb_future_unref(f);
    if (s->status == EVDB_ECANCELED) {
        /* Cleanup may await again: the cancellation was reported once. */
        evdb_future *g = evdb_sleep(s->loop, 0.001);
        s->after_status = evdb_await(g);
        evdb_future_unref(g);
        s->cleaned_up = 1;
    }
    return s;
}

/* ---- basics ---- */

START_TEST(spawn_starts_from_the_loop)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    sleeper s = {.loop = loop, .seconds = 0.02};
    evdb_future *t = evdb_task_spawn(loop, sleep_task, &s, NULL);
    ck_assert_ptr_nonnull(t);
    /* Never synchronously inside spawn. */
    ck_assert(s.t0 == 0);
    ck_assert_int_eq(evdb_future_status(t), EVDB_PENDING);
    ck_assert_int_eq(t_wait(t), 0);
    ck_assert_int_eq(s.status, 0);
    ck_assert(s.t1 - s.t0 >= 0.015);
    ck_assert_ptr_eq(evdb_future_value(t), &s);
    ck_assert_uint_eq(evdb__task_live(), 0);
    evdb_future_unref(t);
    t_loop_free(loop);
}
END_TEST

/* Every state change of a task is traced when EVDB_TRACE_STATES is set
 * (src/trace.h): the whole life of one task, in order, each line
 * naming the task and where the change happened. */
START_TEST(state_changes_are_traced_when_asked)
{
    ck_assert_int_eq(setenv("EVDB_TRACE_STATES", "1", 1), 0);
    t_stderr_begin();

    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    sleeper s = {.loop = loop, .seconds = 0.01};
    evdb_future *t = evdb_task_spawn(loop, sleep_task, &s, NULL);
    int status = t_wait(t);
    evdb_future_unref(t);
    t_loop_free(loop);

    char out[4096];
    t_stderr_end(out, sizeof out);
    ck_assert_int_eq(status, 0);

    const char *want[] = {"starting -> running (task.c:", "running -> awaiting (task.c:",
                          "awaiting -> running (task.c:", "running -> done (task.c:"};
    t_expect_in_order(out, want, sizeof want / sizeof want[0]);
    ck_assert_msg(strncmp(out, "evdb: task 0x", 13) == 0, "trace line: %s", out);
}
END_TEST

typedef struct resolver {
    evdb_future *f;
    char *value;
} resolver;

static void resolve_later(evdb_future *timer, void *arg)
{
    (void)timer;
    resolver *r = arg;
    evdb_future_resolve(r->f, r->value, NULL);
}

typedef struct awaits_user {
    evdb_future *f;
    int status;
    const char *seen;
} awaits_user;

static void *await_user_task(void *arg)
{
    awaits_user *a = arg;
    a->status = evdb_await(a->f);
    a->seen = evdb_future_value(a->f);
    return NULL;
}

START_TEST(await_user_future_resolved_by_a_callback)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    static char hello[] = "hello";
    resolver r = {evdb_future_new(loop), hello};
    awaits_user a = {.f = r.f, .status = 99};
    evdb_future *t = evdb_task_spawn(loop, await_user_task, &a, NULL);
    evdb_future *timer = evdb_sleep(loop, 0.01);
    evdb_future_on_done(timer, resolve_later, &r);
    ck_assert_int_eq(t_wait(t), 0);
    ck_assert_int_eq(a.status, 0);
    ck_assert_str_eq(a.seen, "hello");
    /* Awaiting a future that is already done returns at once. */
    evdb_future *t2 = evdb_task_spawn(loop, await_user_task, &a, NULL);
    a.status = 99;
    ck_assert_int_eq(t_wait(t2), 0);
    ck_assert_int_eq(a.status, 0);
    evdb_future_unref(t2);
    evdb_future_unref(timer);
    evdb_future_unref(r.f);
    evdb_future_unref(t);
    t_loop_free(loop);
}
END_TEST

typedef struct combo {
    struct ev_loop *loop;
    int gather_st, race_st, timeout_st, timeout_ok_st, fail_fast_st;
    evdb_future *winner_expected, *winner;
    double gather_elapsed;
} combo;

static void *combinator_task(void *arg)
{
    combo *c = arg;
    /* gather: three sleeps run concurrently. */
    double t0 = t_now();
    evdb_future *s[3] = {evdb_sleep(c->loop, 0.03), evdb_sleep(c->loop, 0.03),
                         evdb_sleep(c->loop, 0.03)};
    evdb_future *g = evdb_gather(s, 3, EVDB_GATHER_ALL);
    c->gather_st = evdb_await(g);
    c->gather_elapsed = t_now() - t0;
    evdb_future_unref(g);
    for (int i = 0; i < 3; i++)
        evdb_future_unref(s[i]);

    /* race: the short sleep wins. */
    evdb_future *r[2] = {evdb_sleep(c->loop, 5), evdb_sleep(c->loop, 0.01)};
    evdb_future *race = evdb_race(r, 2);
    c->race_st = evdb_await(race);
    c->winner = evdb_race_winner(race);
    c->winner_expected = r[1];
    ck_assert_int_eq(evdb_future_status(r[0]), EVDB_ECANCELED);
    evdb_future_unref(race);
    evdb_future_unref(r[0]);
    evdb_future_unref(r[1]);

    /* timeout: fires, and does not fire. */
    evdb_future *slow = evdb_sleep(c->loop, 5);
    evdb_future *to = evdb_timeout(slow, 0.01);
    c->timeout_st = evdb_await(to);
    ck_assert_int_eq(evdb_future_status(slow), EVDB_ECANCELED);
    evdb_future_unref(to);
    evdb_future_unref(slow);
    evdb_future *quick = evdb_sleep(c->loop, 0.001);
    evdb_future *to2 = evdb_timeout(quick, 5);
    c->timeout_ok_st = evdb_await(to2);
    evdb_future_unref(to2);
    evdb_future_unref(quick);

    /* fail-fast gather with a failing user future. */
    evdb_future *u = evdb_future_new(c->loop);
    evdb_future *z = evdb_sleep(c->loop, 5);
    evdb_future *uz[2] = {u, z};
    evdb_future *ff = evdb_gather(uz, 2, EVDB_GATHER_FAIL_FAST);
    evdb_future_fail(u, EVDB_ESERVER, "child failed");
    c->fail_fast_st = evdb_await(ff);
    ck_assert_str_eq(evdb_error_message(evdb_future_error(ff)), "child failed");
    ck_assert_int_eq(evdb_future_status(z), EVDB_ECANCELED);
    evdb_future_unref(ff);
    evdb_future_unref(u);
    evdb_future_unref(z);
    return NULL;
}

START_TEST(await_gather_race_timeout)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    combo c = {.loop = loop};
    evdb_future *t = evdb_task_spawn(loop, combinator_task, &c, NULL);
    ck_assert_int_eq(t_wait(t), 0);
    ck_assert_int_eq(c.gather_st, 0);
    ck_assert(c.gather_elapsed < 0.08); /* concurrent: about 0.03, not 0.09 */
    ck_assert_int_eq(c.race_st, 0);
    ck_assert_ptr_eq(c.winner, c.winner_expected);
    ck_assert_int_eq(c.timeout_st, EVDB_ETIMEDOUT);
    ck_assert_int_eq(c.timeout_ok_st, 0);
    ck_assert_int_eq(c.fail_fast_st, EVDB_ESERVER);
    evdb_future_unref(t);
    t_loop_free(loop);
}
END_TEST

/* ---- nesting, values, errors ---- */

typedef struct tree {
    struct ev_loop *loop;
    int depth;
} tree;

/* Each level spawns two children and awaits both; returns the leaf count. */
static void *tree_task(void *arg)
{
    tree *me = arg;
    if (me->depth == 0) {
        evdb_future *s = evdb_sleep(me->loop, 0.001);
        ck_assert_int_eq(evdb_await(s), 0);
        evdb_future_unref(s);
        return (void *)(uintptr_t)1;
    }
    tree kids[2] = {{me->loop, me->depth - 1}, {me->loop, me->depth - 1}};
    evdb_future *k[2];
    for (int i = 0; i < 2; i++) {
        k[i] = evdb_task_spawn(me->loop, tree_task, &kids[i], NULL);
        ck_assert_ptr_nonnull(k[i]);
    }
    evdb_future *g = evdb_gather(k, 2, 0);
    ck_assert_int_eq(evdb_await(g), 0);
    uintptr_t n = (uintptr_t)evdb_future_value(k[0]) + (uintptr_t)evdb_future_value(k[1]);
    evdb_future_unref(g);
    evdb_future_unref(k[0]);
    evdb_future_unref(k[1]);
    return (void *)n;
}

START_TEST(nested_tasks)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    tree root = {loop, 6};
    void *leaves = NULL;
    ck_assert_int_eq(evdb_run(loop, tree_task, &root, &leaves), 0);
    ck_assert_uint_eq((uintptr_t)leaves, 64);
    ck_assert_uint_eq(evdb__task_live(), 0);
    t_loop_free(loop);
}
END_TEST

typedef struct chain {
    struct ev_loop *loop;
    int level;
    int seen_status;
    char seen_message[128];
    char seen_sqlstate[6];
} chain;

static void *failing_leaf(void *arg)
{
    (void)arg;
    evdb_future *s = evdb_sleep(((chain *)arg)->loop, 0.001);
    evdb_await(s);
    evdb_future_unref(s);
    return evdb_task_fail(EVDB_ESERVER, "the leaf failed");
}

static void *propagating_parent(void *arg)
{
    chain *c = arg;
    evdb_future *leaf = evdb_task_spawn(c->loop, failing_leaf, c, NULL);
    c->seen_status = evdb_await(leaf);
    const evdb_error *e = evdb_future_error(leaf);
    snprintf(c->seen_message, sizeof c->seen_message, "%s", evdb_error_message(e));
    void *r = evdb_task_fail_error(e);
    evdb_future_unref(leaf);
    return r; /* NULL: the failure is what counts */
}

START_TEST(errors_propagate_through_await)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    chain c = {.loop = loop};
    evdb_future *t = evdb_task_spawn(loop, propagating_parent, &c, NULL);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    ck_assert_int_eq(c.seen_status, EVDB_ESERVER);
    ck_assert_str_eq(c.seen_message, "the leaf failed");
    ck_assert_str_eq(evdb_error_message(evdb_future_error(t)), "the leaf failed");
    ck_assert_ptr_null(evdb_future_value(t));
    evdb_future_unref(t);

    /* evdb_run returns the main task's code and leaves its error. */
    void *res = &c;
    ck_assert_int_eq(evdb_run(loop, propagating_parent, &c, &res), EVDB_ESERVER);
    ck_assert_ptr_null(res);
    ck_assert_str_eq(evdb_error_message(evdb_last_error()), "the leaf failed");
    t_loop_free(loop);
}
END_TEST

static int freed;
static void count_free(void *p)
{
    freed++;
    free(p);
}

static void *returns_owned(void *arg)
{
    (void)arg;
    return evdb_task_return(strdup("owned"), count_free);
}

START_TEST(task_return_hands_over_ownership)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    freed = 0;
    evdb_future *t = evdb_task_spawn(loop, returns_owned, NULL, NULL);
    ck_assert_int_eq(t_wait(t), 0);
    ck_assert_str_eq(evdb_future_value(t), "owned");
    evdb_future_unref(t);
    ck_assert_int_eq(freed, 1); /* the future freed it */

    /* evdb_run gives it to its caller... */
    void *v = NULL;
    ck_assert_int_eq(evdb_run(loop, returns_owned, NULL, &v), 0);
    ck_assert_str_eq(v, "owned");
    ck_assert_int_eq(freed, 1);
    free(v);
    /* ...or frees it when the caller does not want it. */
    ck_assert_int_eq(evdb_run(loop, returns_owned, NULL, NULL), 0);
    ck_assert_int_eq(freed, 2);

    /* A cancelled task's value is freed too. */
    t = evdb_task_spawn(loop, returns_owned, NULL, NULL);
    evdb_future_cancel(t);
    t_run_for(loop, 0.01);
    ck_assert_int_eq(freed, 3);
    ck_assert_int_eq(evdb_future_status(t), EVDB_ECANCELED);
    evdb_future_unref(t);
    t_loop_free(loop);
}
END_TEST

/* ---- misuse ---- */

typedef struct misuse {
    struct ev_loop *loop, *other_loop;
    int own, other, wait, run, null_f;
} misuse;

static void *misuse_task(void *arg)
{
    misuse *m = arg;
    ck_assert_ptr_eq(evdb_task_loop(), m->loop);
    m->own = evdb_await(evdb_task_current());
    evdb_future *o = evdb_future_new(m->other_loop);
    m->other = evdb_await(o);
    evdb_future_unref(o);
    evdb_future *s = evdb_sleep(m->loop, 0);
    m->wait = evdb_future_wait(s);
    ck_assert_int_eq(evdb_await(s), 0);
    evdb_future_unref(s);
    m->run = evdb_run(m->loop, return_arg, NULL, NULL);
    m->null_f = evdb_await(NULL);
    return NULL;
}

static int callback_await_status;
static void await_in_callback(evdb_future *f, void *arg)
{
    (void)arg;
    callback_await_status = evdb_await(f);
}

START_TEST(await_outside_a_task)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    evdb_future *f = evdb_future_new(loop);
    ck_assert_int_eq(evdb_await(f), EVDB_ENOTASK);
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ENOTASK);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_last_error()), "not inside a task"));
    ck_assert_int_eq(evdb_future_status(f), EVDB_PENDING); /* untouched */
    ck_assert_int_eq(evdb_task_yield(), EVDB_ENOTASK);
    ck_assert_ptr_null(evdb_task_current());
    ck_assert_ptr_null(evdb_task_loop());
    ck_assert_int_eq(evdb_task_cancelled(), 0);
    ck_assert_ptr_null(evdb_task_fail(EVDB_EPROTO, "x"));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ENOTASK);
    ck_assert_int_eq(evdb_task_set_name(NULL, "x"), EVDB_EINVAL);
    ck_assert_int_eq(evdb_task_set_name(f, "x"), EVDB_EINVAL);
    /* Nor inside a plain callback. */
    callback_await_status = 0;
    evdb_future_on_done(f, await_in_callback, NULL);
    evdb_future_resolve(f, NULL, NULL);
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_int_eq(callback_await_status, EVDB_ENOTASK);
    evdb_future_unref(f);

    /* Bad spawns. */
    ck_assert_ptr_null(evdb_task_spawn(NULL, return_arg, NULL, NULL));
    ck_assert_ptr_null(evdb_task_spawn(loop, NULL, NULL, NULL));
    evdb_task_opts bad = {.flags = 0x80};
    ck_assert_ptr_null(evdb_task_spawn(loop, return_arg, NULL, &bad));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_task_opts huge = {.stack_size = EVDB_TASK_STACK_MAX + 1};
    ck_assert_ptr_null(evdb_task_spawn(loop, return_arg, NULL, &huge));
    int dummy;
    evdb_task_opts res = {.reserved = {&dummy}};
    ck_assert_ptr_null(evdb_task_spawn(loop, return_arg, NULL, &res));
    ck_assert_int_eq(evdb_run(NULL, return_arg, NULL, NULL), EVDB_EINVAL);

    /* Misuse inside a task fails cleanly. */
    struct ev_loop *other = ev_loop_new(EVFLAG_AUTO);
    misuse m = {.loop = loop, .other_loop = other};
    ck_assert_int_eq(evdb_run(loop, misuse_task, &m, NULL), 0);
    ck_assert_int_eq(m.own, EVDB_EINVAL);
    ck_assert_int_eq(m.other, EVDB_EINVAL);
    ck_assert_int_eq(m.wait, EVDB_EINCALLBACK);
    ck_assert_int_eq(m.run, EVDB_EINCALLBACK);
    ck_assert_int_eq(m.null_f, EVDB_EINVAL);
    ev_loop_destroy(other);
    t_loop_free(loop);
}
END_TEST

/* ---- cancellation ---- */

static void cancel_it(evdb_future *timer, void *arg)
{
    (void)timer;
    evdb_future_cancel(arg);
}

START_TEST(cancel_at_an_await)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    sleeper s = {.loop = loop, .seconds = 5};
    evdb_future *t = evdb_task_spawn(loop, sleep_task, &s, NULL);
    evdb_future *timer = evdb_sleep(loop, 0.02);
    evdb_future_on_done(timer, cancel_it, t);
    ck_assert_int_eq(t_wait(t), EVDB_ECANCELED);
    t_run_for(loop, 0.05);
    ck_assert_int_eq(s.status, EVDB_ECANCELED);
    ck_assert(s.t1 - s.t0 < 1);          /* the sleep was cancelled, not waited out */
    ck_assert_int_eq(s.after_status, 0); /* reported once, cleanup could await */
    ck_assert_int_eq(s.cleaned_up, 1);
    /* The future stays cancelled although the function returned a value. */
    ck_assert_int_eq(evdb_future_status(t), EVDB_ECANCELED);
    ck_assert_ptr_null(evdb_future_value(t));
    ck_assert_uint_eq(evdb__task_live(), 0);
    evdb_future_unref(timer);
    evdb_future_unref(t);
    t_loop_free(loop);
}
END_TEST

typedef struct canceller {
    evdb_future *victim;
    int rc;
} canceller;

static void *cancel_task(void *arg)
{
    canceller *c = arg;
    c->rc = evdb_future_cancel(c->victim);
    return NULL;
}

typedef struct waiter {
    evdb_future *on;
    int status;
    int cancelled_flag;
} waiter;

static void *wait_on(void *arg)
{
    waiter *w = arg;
    w->status = evdb_await(w->on);
    w->cancelled_flag = evdb_task_cancelled();
    return NULL;
}

START_TEST(cancel_from_another_task_and_before_start)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    /* Another task cancels a task that awaits a user future: the user
     * future is cancelled too (asyncio's semantics). */
    evdb_future *u = evdb_future_new(loop);
    waiter w = {.on = u};
    evdb_future *wt = evdb_task_spawn(loop, wait_on, &w, NULL);
    t_run_for(loop, 0.01);
    canceller c = {.victim = wt};
    evdb_future *ct = evdb_task_spawn(loop, cancel_task, &c, NULL);
    ck_assert_int_eq(t_wait(ct), 0);
    ck_assert_int_eq(c.rc, 0);
    t_run_for(loop, 0.01);
    ck_assert_int_eq(w.status, EVDB_ECANCELED);
    ck_assert_int_eq(w.cancelled_flag, 1);
    ck_assert_int_eq(evdb_future_status(u), EVDB_ECANCELED);
    evdb_future_unref(ct);
    evdb_future_unref(wt);
    evdb_future_unref(u);

    /* Cancelled before it started: it still runs (it may own its argument)
     * and its first await reports the cancellation, cancelling that
     * future as well. */
    evdb_future *u2 = evdb_future_new(loop);
    waiter w2 = {.on = u2};
    evdb_future *wt2 = evdb_task_spawn(loop, wait_on, &w2, NULL);
    ck_assert_int_eq(evdb_future_cancel(wt2), 0);
    ck_assert_int_eq(evdb_future_cancel(wt2), EVDB_ESTATE);
    t_run_for(loop, 0.01);
    ck_assert_int_eq(w2.status, EVDB_ECANCELED);
    ck_assert_int_eq(evdb_future_status(u2), EVDB_ECANCELED);
    evdb_future_unref(wt2);
    evdb_future_unref(u2);
    t_loop_free(loop);
}
END_TEST

START_TEST(timeout_around_a_task)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    sleeper s = {.loop = loop, .seconds = 5};
    evdb_future *t = evdb_task_spawn(loop, sleep_task, &s, NULL);
    evdb_future *to = evdb_timeout(t, 0.02);
    double t0 = t_now();
    ck_assert_int_eq(t_wait(to), EVDB_ETIMEDOUT);
    ck_assert(t_now() - t0 < 1);
    ck_assert_int_eq(evdb_future_status(t), EVDB_ECANCELED);
    t_run_for(loop, 0.02);
    ck_assert_int_eq(s.status, EVDB_ECANCELED);
    ck_assert_int_eq(s.cleaned_up, 1);
    evdb_future_unref(to);
    evdb_future_unref(t);

    /* A task that finishes in time forwards its value through the timeout. */
    sleeper quick = {.loop = loop, .seconds = 0.001};
    t = evdb_task_spawn(loop, sleep_task, &quick, NULL);
    to = evdb_timeout(t, 5);
    ck_assert_int_eq(t_wait(to), 0);
    ck_assert_ptr_eq(evdb_future_value(to), &quick);
    evdb_future_unref(to);
    evdb_future_unref(t);
    t_loop_free(loop);
}
END_TEST

START_TEST(many_waiters_on_one_task)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    sleeper s = {.loop = loop, .seconds = 0.01};
    evdb_future *target = evdb_task_spawn(loop, sleep_task, &s, NULL);
    waiter w[5];
    evdb_future *wt[5];
    for (int i = 0; i < 5; i++) {
        w[i] = (waiter){.on = target, .status = 99};
        wt[i] = evdb_task_spawn(loop, wait_on, &w[i], NULL);
    }
    evdb_future *g = evdb_gather(wt, 5, 0);
    ck_assert_int_eq(t_wait(g), 0);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(w[i].status, 0);
        evdb_future_unref(wt[i]);
    }
    ck_assert_ptr_eq(evdb_future_value(target), &s);
    evdb_future_unref(g);
    evdb_future_unref(target);
    t_loop_free(loop);
}
END_TEST

/* ---- evdb_run ---- */

typedef struct bg {
    struct ev_loop *loop;
    evdb_future *forever;
    int bg_status;
    int bg_done;
} bg;

static void *background(void *arg)
{
    bg *b = arg;
    b->bg_status = evdb_await(b->forever);
    b->bg_done = 1;
    return NULL;
}

static void *main_leaves_background(void *arg)
{
    bg *b = arg;
    evdb_future *t = evdb_task_spawn(b->loop, background, b, NULL);
    evdb_future_unref(t); /* fire and forget */
    evdb_task_yield();
    return (void *)(uintptr_t)7;
}

START_TEST(run_cancels_what_is_left)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    bg b = {.loop = loop, .forever = evdb_future_new(loop)};
    void *r = NULL;
    ck_assert_int_eq(evdb_run(loop, main_leaves_background, &b, &r), 0);
    ck_assert_uint_eq((uintptr_t)r, 7);
    ck_assert_int_eq(b.bg_done, 1);
    ck_assert_int_eq(b.bg_status, EVDB_ECANCELED);
    ck_assert_int_eq(evdb_future_status(b.forever), EVDB_ECANCELED);
    ck_assert_uint_eq(evdb__task_live(), 0);
    evdb_future_unref(b.forever);

    /* A main task waiting for what can never come: evdb_run says so, and
     * still cancels it and lets it finish. */
    b = (bg){.loop = loop, .forever = evdb_future_new(loop)};
    ck_assert_int_eq(evdb_run(loop, background, &b, NULL), EVDB_ESTATE);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_last_error()), "nothing left"));
    ck_assert_int_eq(b.bg_done, 1);
    ck_assert_int_eq(b.bg_status, EVDB_ECANCELED);
    evdb_future_unref(b.forever);
    t_loop_free(loop);
}
END_TEST

typedef struct pingpong {
    char log[64];
    int n;
} pingpong;

typedef struct player {
    pingpong *pp;
    char mark;
} player;

static void *play(void *arg)
{
    player *p = arg;
    for (int i = 0; i < 3; i++) {
        p->pp->log[p->pp->n++] = p->mark;
        ck_assert_int_eq(evdb_task_yield(), 0);
    }
    return NULL;
}

START_TEST(yield_interleaves_tasks)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    pingpong pp = {{0}, 0};
    player a = {&pp, 'a'}, b = {&pp, 'b'};
    evdb_future *ts[2] = {evdb_task_spawn(loop, play, &a, NULL),
                          evdb_task_spawn(loop, play, &b, NULL)};
    evdb_future *g = evdb_gather(ts, 2, 0);
    ck_assert_int_eq(t_wait(g), 0);
    ck_assert_str_eq(pp.log, "ababab");
    evdb_future_unref(g);
    evdb_future_unref(ts[0]);
    evdb_future_unref(ts[1]);
    t_loop_free(loop);
}
END_TEST

/* ---- the switch keeps per-task state ---- */

typedef struct rounding {
    struct ev_loop *loop;
    int mode;
    int kept; /* awaits after which the task still had its mode */
    uint64_t sum;
} rounding;

static void *rounding_task(void *arg)
{
    rounding *r = arg;
    fesetround(r->mode);
    /* Values live across the awaits sit in callee-saved registers. */
    uint64_t a = (uint64_t)r->mode * 3, b = a * 5, c = b * 7, d = c * 11, e = d * 13;
    for (int i = 0; i < 20; i++) {
        evdb_future *s = evdb_sleep(r->loop, 0);
        evdb_await(s);
        evdb_future_unref(s);
        r->kept += fegetround() == r->mode;
        a += 1, b += 2, c += 3, d += 4, e += 5;
    }
    r->sum = a + b + c + d + e;
    fesetround(FE_TONEAREST);
    return NULL;
}

START_TEST(switch_keeps_rounding_mode_and_registers)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    rounding r[3] = {
        {loop, FE_UPWARD, 0, 0}, {loop, FE_DOWNWARD, 0, 0}, {loop, FE_TOWARDZERO, 0, 0}};
    evdb_future *ts[3];
    for (int i = 0; i < 3; i++)
        ts[i] = evdb_task_spawn(loop, rounding_task, &r[i], NULL);
    evdb_future *g = evdb_gather(ts, 3, 0);
    ck_assert_int_eq(t_wait(g), 0);
    /* The loop's own mode never changed. */
    ck_assert_int_eq(fegetround(), FE_TONEAREST);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(r[i].kept, 20);
        uint64_t a = (uint64_t)r[i].mode * 3, b = a * 5, c = b * 7, d = c * 11, e = d * 13;
        ck_assert_uint_eq(r[i].sum, a + b + c + d + e + 20 * (1 + 2 + 3 + 4 + 5));
        evdb_future_unref(ts[i]);
    }
    evdb_future_unref(g);
    t_loop_free(loop);
}
END_TEST

/* ---- stacks ---- */

static void *touch_stack(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    volatile char buf[n];
    for (size_t i = 0; i < n; i += 512)
        buf[i] = (char)i;
    return (void *)(uintptr_t)buf[n / 1024 * 512];
}

START_TEST(stacks_are_reused_and_sized)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    /* Warm up: one default stack mapped, then reused by every later task. */
    evdb_future *t = evdb_task_spawn(loop, return_arg, NULL, NULL);
    ck_assert_int_eq(t_wait(t), 0);
    evdb_future_unref(t);
    size_t mapped = evdb__task_stacks_mapped();
    ck_assert_uint_ge(evdb__task_stacks_cached(), 1);
    for (int i = 0; i < 100; i++) {
        t = evdb_task_spawn(loop, return_arg, NULL, NULL);
        ck_assert_int_eq(t_wait(t), 0);
        evdb_future_unref(t);
    }
    ck_assert_uint_eq(evdb__task_stacks_mapped(), mapped);

    /* A big stack holds a big frame; other sizes are not cached. */
    size_t cached = evdb__task_stacks_cached();
    evdb_task_opts big = {.stack_size = 1024 * 1024};
    t = evdb_task_spawn(loop, touch_stack, (void *)(uintptr_t)(512 * 1024), &big);
    ck_assert_int_eq(t_wait(t), 0);
    evdb_future_unref(t);
    ck_assert_uint_eq(evdb__task_stacks_mapped(), mapped + 1);
    ck_assert_uint_eq(evdb__task_stacks_cached(), cached);

    /* Tiny sizes are raised to the minimum; unguarded stacks work. */
    evdb_task_opts tiny = {.stack_size = 100, .flags = EVDB_TASK_NO_GUARD};
    t = evdb_task_spawn(loop, touch_stack, (void *)(uintptr_t)(4 * 1024), &tiny);
    ck_assert_int_eq(t_wait(t), 0);
    evdb_future_unref(t);
    t_loop_free(loop);
}
END_TEST

/* Far deeper than any stack: the recursion only ends at the guard page. */
static volatile int recursion_limit = 1 << 30;

static int recurse(int n)
{
    volatile char pad[256];
    pad[0] = (char)n;
    if (n >= recursion_limit)
        return pad[0];
    return recurse(n + 1) + pad[0];
}

static void *overflow_task(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)recurse(0);
}

START_TEST(stack_overflow_faults_on_the_guard_page)
{
    /* In a child process: the overflow must kill it with SIGSEGV (the guard
     * page), not scribble over the heap. */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The default action, not a sanitizer's report. */
        signal(SIGSEGV, SIG_DFL);
        struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
        evdb_task_opts o = {.stack_size = 32 * 1024};
        evdb_future *t = evdb_task_spawn(loop, overflow_task, NULL, &o);
        evdb_future_wait(t);
        _exit(0); /* not reached */
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) &&
                      (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS),
                  "child status 0x%x", status);
}
END_TEST

typedef struct crowd {
    struct ev_loop *loop;
    evdb_future *gate;
    int started, finished;
} crowd;

static void *crowd_member(void *arg)
{
    crowd *c = arg;
    c->started++;
    ck_assert_int_eq(evdb_await(c->gate), 0);
    evdb_future *s = evdb_sleep(c->loop, 0);
    ck_assert_int_eq(evdb_await(s), 0);
    evdb_future_unref(s);
    c->finished++;
    return NULL;
}

START_TEST(ten_thousand_concurrent_tasks)
{
    struct ev_loop *loop = t_loop_new(60);
    crowd c = {.loop = loop, .gate = evdb_future_new(loop)};
    evdb_future **ts = malloc(MANY_TASKS * sizeof *ts);
    for (int i = 0; i < MANY_TASKS; i++) {
        ts[i] = evdb_task_spawn(loop, crowd_member, &c, NULL);
        ck_assert_msg(ts[i] != NULL, "spawn %d: %s", i, evdb_error_message(evdb_last_error()));
    }
    t_run_for(loop, 0.05);
    /* All alive at once, all suspended on the gate. */
    ck_assert_int_eq(c.started, MANY_TASKS);
    ck_assert_uint_eq(evdb__task_live(), MANY_TASKS);
    ck_assert_int_eq(c.finished, 0);
    evdb_future_resolve(c.gate, NULL, NULL);
    evdb_future *all = evdb_gather(ts, MANY_TASKS, EVDB_GATHER_FAIL_FAST);
    ck_assert_int_eq(t_wait(all), 0);
    ck_assert_int_eq(c.finished, MANY_TASKS);
    ck_assert_uint_eq(evdb__task_live(), 0);
    evdb_future_unref(all);
    for (int i = 0; i < MANY_TASKS; i++)
        evdb_future_unref(ts[i]);
    free(ts);
    evdb_future_unref(c.gate);
    t_loop_free(loop);
}
END_TEST

/* ---- allocation failures ---- */

START_TEST(allocation_failure_on_spawn)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    sleeper s = {.loop = loop, .seconds = 0};
    size_t failures = 0;
    for (size_t nth = 1;; nth++) {
        t_alloc_fail_at(nth);
        evdb_future *t = evdb_task_spawn(loop, sleep_task, &s, NULL);
        size_t used = t_alloc_count();
        t_alloc_fail_at(0);
        if (!t) {
            ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ENOMEM);
            ck_assert_uint_eq(evdb__task_live(), 0);
            failures++;
            continue;
        }
        ck_assert_int_eq(t_wait(t), 0);
        evdb_future_unref(t);
        if (used < nth)
            break;
    }
    ck_assert_uint_ge(failures, 2); /* the loop state, the task, its future */
    t_loop_free(loop);
}
END_TEST

typedef struct oom_in_task {
    struct ev_loop *loop;
    int await_status;
} oom_in_task;

static void *await_under_oom(void *arg)
{
    oom_in_task *o = arg;
    evdb_future *u = evdb_future_new(o->loop);
    evdb_future *s = evdb_sleep(o->loop, 5);
    /* A second callback on a future needs an allocation. */
    evdb_future *to = evdb_timeout(u, 5);
    t_alloc_fail_at(1);
    o->await_status = evdb_await(u);
    t_alloc_fail_at(0);
    evdb_future_cancel(to);
    evdb_future_cancel(s);
    evdb_future_unref(to);
    evdb_future_unref(s);
    evdb_future_unref(u);
    return evdb_task_fail(EVDB_ESERVER, "failed under memory pressure");
}

START_TEST(allocation_failure_inside_a_task)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    oom_in_task o = {.loop = loop};
    evdb_future *t = evdb_task_spawn(loop, await_under_oom, &o, NULL);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    ck_assert_int_eq(o.await_status, EVDB_ENOMEM);
    evdb_future_unref(t);
    t_loop_free(loop);
}
END_TEST

/* ---- unobserved errors ---- */

typedef struct report {
    int calls;
    int code;
    char what[32];
    char message[128];
} report;

static void on_unobserved(const evdb_error *err, const char *what, void *arg)
{
    report *r = arg;
    r->calls++;
    r->code = evdb_error_code(err);
    snprintf(r->what, sizeof r->what, "%s", what);
    snprintf(r->message, sizeof r->message, "%s", evdb_error_message(err));
}

static void *fails_quietly(void *arg)
{
    (void)arg;
    return evdb_task_fail(EVDB_ESERVER, "nobody looked at me");
}

START_TEST(unobserved_error_hook)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    report r = {0};
    evdb_set_unobserved_error_hook(on_unobserved, &r);

    /* A task fails and its future is dropped unobserved: reported once. */
    evdb_future *t = evdb_task_spawn(loop, fails_quietly, NULL, NULL);
    evdb_future_unref(t);
    t_run_for(loop, 0.01);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.code, EVDB_ESERVER);
    ck_assert_str_eq(r.what, "task");
    ck_assert_str_eq(r.message, "nobody looked at me");

    /* Observed (status read once done): not reported. */
    t = evdb_task_spawn(loop, fails_quietly, NULL, NULL);
    t_run_for(loop, 0.01);
    ck_assert_int_eq(evdb_future_status(t), EVDB_ESERVER);
    evdb_future_unref(t);
    ck_assert_int_eq(r.calls, 1);

    /* A status read while still pending does not count. */
    t = evdb_task_spawn(loop, fails_quietly, NULL, NULL);
    ck_assert_int_eq(evdb_future_status(t), EVDB_PENDING);
    t_run_for(loop, 0.01);
    evdb_future_unref(t);
    ck_assert_int_eq(r.calls, 2);

    /* Awaited by another task, or waited for: observed. */
    waiter w = {.on = evdb_task_spawn(loop, fails_quietly, NULL, NULL)};
    evdb_future *wt = evdb_task_spawn(loop, wait_on, &w, NULL);
    ck_assert_int_eq(t_wait(wt), 0);
    ck_assert_int_eq(w.status, EVDB_ESERVER);
    evdb_future_unref(w.on);
    evdb_future_unref(wt);
    ck_assert_int_eq(r.calls, 2);

    /* Cancelled futures are not errors to report. */
    evdb_future *u = evdb_future_new(loop);
    evdb_future_cancel(u);
    evdb_future_unref(u);
    ck_assert_int_eq(r.calls, 2);

    /* Any kind of future: a failed user future, dropped. */
    u = evdb_future_new(loop);
    evdb_future_fail(u, EVDB_ETIMEDOUT, NULL);
    evdb_future_unref(u);
    t_run_for(loop, 0.01);
    ck_assert_int_eq(r.calls, 3);
    ck_assert_str_eq(r.what, "user");

    /* Inside a gather the gather observes the child; only the unobserved
     * gather itself is reported. */
    evdb_future *a = evdb_future_new(loop);
    evdb_future *g = evdb_gather(&a, 1, 0);
    evdb_future_fail(a, EVDB_EPROTO, "child");
    evdb_future_unref(a);
    t_run_for(loop, 0.01);
    evdb_future_unref(g);
    ck_assert_int_eq(r.calls, 4);
    ck_assert_str_eq(r.what, "gather");

    evdb_set_unobserved_error_hook(NULL, NULL);
    u = evdb_future_new(loop);
    evdb_future_fail(u, EVDB_ETIMEDOUT, NULL);
    evdb_future_unref(u);
    ck_assert_int_eq(r.calls, 4);
    t_loop_free(loop);
}
END_TEST

/* ---- dump ---- */

typedef struct named {
    struct ev_loop *loop;
    evdb_future *await_this;
} named;

static void *named_waiter(void *arg)
{
    named *n = arg;
    evdb_task_set_name(NULL, "the-waiter");
    evdb_await(n->await_this);
    return NULL;
}

static void *named_sleeper(void *arg)
{
    named *n = arg;
    evdb_future *s = evdb_sleep(n->loop, 5);
    evdb_await(s);
    evdb_future_unref(s);
    return NULL;
}

START_TEST(dump_lists_tasks_and_what_they_await)
{
    struct ev_loop *loop = t_loop_new(WATCHDOG_S);
    named ns = {.loop = loop};
    evdb_future *sl = evdb_task_spawn(loop, named_sleeper, &ns, NULL);
    ck_assert_int_eq(evdb_task_set_name(sl, "a-sleeper-with-a-very-long-name-that-is-cut"), 0);
    named nw = {.loop = loop, .await_this = sl};
    evdb_future *wt = evdb_task_spawn(loop, named_waiter, &nw, NULL);
    evdb_task_opts big = {.stack_size = 128 * 1024, .flags = EVDB_TASK_NO_GUARD};
    evdb_future *u = evdb_future_new(loop);
    named nu = {.loop = loop, .await_this = u};
    evdb_future *ut = evdb_task_spawn(loop, named_waiter, &nu, &big);

    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    evdb_task_dump(loop, out);
    fclose(out);
    ck_assert_ptr_nonnull(strstr(buf, "3 live task(s)"));
    ck_assert_ptr_nonnull(strstr(buf, "starting"));
    free(buf);

    t_run_for(loop, 0.01);
    evdb_future_cancel(ut);
    out = open_memstream(&buf, &len);
    evdb_task_dump(loop, out);
    fclose(out);
    ck_assert_msg(strstr(buf, "\"a-sleeper-with-a-very-long-name\" awaiting") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "awaits sleep future") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "\"the-waiter\" awaiting, stack") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "awaits task future") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "-very-long-name\") [pending]") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "awaiting (cancelled), stack 128 KiB unguarded") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "user future") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "[done, wake-up queued]") != NULL, "%s", buf);
    /* Set a name on a cancelled task that still runs. */
    ck_assert_int_eq(evdb_task_set_name(ut, "renamed"), 0);
    free(buf);

    evdb_future_cancel(sl);
    evdb_future *all[3] = {sl, wt, ut};
    evdb_future *g = evdb_gather(all, 3, 0);
    t_wait(g);
    t_run_for(loop, 0.01);
    ck_assert_int_eq(evdb_task_set_name(sl, "late"), EVDB_ESTATE);
    out = open_memstream(&buf, &len);
    evdb_task_dump(loop, out);
    fclose(out);
    ck_assert_str_eq(buf, "evdb: 0 live task(s)\n");
    free(buf);
    evdb_future_unref(g);
    evdb_future_unref(sl);
    evdb_future_unref(wt);
    evdb_future_unref(ut);
    evdb_future_unref(u);
    t_loop_free(loop);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("task");
    TCase *tc = tcase_create("await");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, spawn_starts_from_the_loop);
    tcase_add_test(tc, await_user_future_resolved_by_a_callback);
    tcase_add_test(tc, await_gather_race_timeout);
    tcase_add_test(tc, nested_tasks);
    tcase_add_test(tc, errors_propagate_through_await);
    tcase_add_test(tc, task_return_hands_over_ownership);
    tcase_add_test(tc, await_outside_a_task);
    tcase_add_test(tc, yield_interleaves_tasks);
    tcase_add_test(tc, many_waiters_on_one_task);
    tcase_add_test(tc, switch_keeps_rounding_mode_and_registers);
    suite_add_tcase(s, tc);
    TCase *tc2 = tcase_create("cancel");
    tcase_set_timeout(tc2, 20);
    tcase_add_test(tc2, cancel_at_an_await);
    tcase_add_test(tc2, cancel_from_another_task_and_before_start);
    tcase_add_test(tc2, timeout_around_a_task);
    tcase_add_test(tc2, run_cancels_what_is_left);
    suite_add_tcase(s, tc2);
    TCase *tc3 = tcase_create("resources");
    tcase_set_timeout(tc3, 120);
    tcase_add_test(tc3, stacks_are_reused_and_sized);
    tcase_add_test(tc3, stack_overflow_faults_on_the_guard_page);
    tcase_add_test(tc3, ten_thousand_concurrent_tasks);
    tcase_add_test(tc3, allocation_failure_on_spawn);
    tcase_add_test(tc3, allocation_failure_inside_a_task);
    suite_add_tcase(s, tc3);
    TCase *tc4 = tcase_create("diagnostics");
    tcase_set_timeout(tc4, 20);
    tcase_add_test(tc4, unobserved_error_hook);
    tcase_add_test(tc4, dump_lists_tasks_and_what_they_await);
    tcase_add_test(tc4, state_changes_are_traced_when_asked);
    suite_add_tcase(s, tc4);
    return t_run_suite(s);
}
