/*
 * Combinators over futures: sleep (asyncio.sleep), gather (wait-all and
 * fail-fast), race, and timeout (asyncio.wait_for).
 *
 * Each combinator is an operation object that holds a reference to its own
 * future and to every child, and registers one callback per child. It is
 * freed when its own future is done and every child callback has run, so
 * callbacks never see freed memory whatever order things complete in.
 */
#include <string.h>

#include "internal.h"

/* ---- sleep ---- */

typedef struct sleep_op {
    evdb_future *f;
    evdb__timer *timer;
} sleep_op;

static void sleep_finish(sleep_op *op)
{
    evdb__timer_free(op->timer);
    evdb_future_unref(op->f);
    evdb__free(op);
}

static void sleep_fired(void *arg)
{
    sleep_op *op = arg;
    evdb__future_resolve(op->f, NULL, NULL);
    sleep_finish(op);
}

static void sleep_cancel(void *arg)
{
    sleep_finish(arg);
}

static const evdb__future_ops sleep_ops = {sleep_cancel};

evdb_future *evdb_sleep(struct ev_loop *loop, double seconds)
{
    if (!loop || !(seconds >= 0)) {
        evdb__fail_now(EVDB_EINVAL, "evdb_sleep: need a loop and seconds >= 0");
        return NULL;
    }
    evdb__loop *l = evdb__loop_get(loop);
    if (!l)
        goto oom;
    sleep_op *op = evdb__calloc(1, sizeof *op);
    evdb_future *f = evdb__future_new(l, EVDB__FK_SLEEP);
    evdb__timer *t = evdb__timer_new(l, sleep_fired, op);
    evdb__loop_unref(l);
    if (!op || !f || !t) {
        evdb__free(op);
        evdb_future_unref(f);
        evdb__timer_free(t);
        goto oom;
    }
    op->f = evdb_future_ref(f);
    op->timer = t;
    evdb__future_set_op(f, &sleep_ops, op);
    evdb__timer_start(t, seconds);
    return f;
oom:
    evdb__fail_now(EVDB_ENOMEM, "evdb_sleep: out of memory");
    return NULL;
}

/* ---- gather and race ---- */

typedef struct multi_op {
    evdb_future *f;
    size_t n;
    size_t done;          /* children completed */
    size_t callbacks_due; /* child callbacks not yet run */
    unsigned flags;
    bool race;
    evdb_future *children[];
} multi_op;

static void multi_maybe_free(multi_op *op)
{
    if (op->callbacks_due || evdb__future_pending(op->f))
        return;
    for (size_t i = 0; i < op->n; i++)
        evdb_future_unref(op->children[i]);
    evdb_future_unref(op->f);
    evdb__free(op);
}

static void cancel_children(multi_op *op, const evdb_future *except)
{
    for (size_t i = 0; i < op->n; i++)
        if (op->children[i] != except)
            evdb_future_cancel(op->children[i]);
}

static void multi_child_done(evdb_future *child, void *arg)
{
    multi_op *op = arg;
    op->callbacks_due--;
    op->done++;
    if (evdb__future_pending(op->f)) {
        int st = evdb_future_status(child);
        if (op->race) {
            evdb__future_forward(op->f, child);
            cancel_children(op, child);
        } else if (st != 0 && (op->flags & EVDB_GATHER_FAIL_FAST)) {
            evdb__future_fail_err(op->f, evdb_future_error(child));
            cancel_children(op, child);
        } else if (op->done == op->n) {
            /* Wait-all: ok when every child is, else the first failure in
             * argument order (deterministic, unlike completion order). */
            const evdb_future *failed = NULL;
            for (size_t i = 0; i < op->n && !failed; i++)
                if (evdb_future_status(op->children[i]) != 0)
                    failed = op->children[i];
            if (failed)
                evdb__future_fail_err(op->f, evdb_future_error(failed));
            else
                evdb__future_resolve(op->f, NULL, NULL);
        }
    }
    multi_maybe_free(op);
}

static void multi_cancel(void *arg)
{
    multi_op *op = arg;
    cancel_children(op, NULL);
    multi_maybe_free(op);
}

static const evdb__future_ops multi_ops = {multi_cancel};

static evdb_future *multi_new(evdb_future *const *fs, size_t n, unsigned flags, bool race,
                              const char *who)
{
    if ((!fs && n) || (race && n == 0) || (flags & ~EVDB_GATHER_FAIL_FAST)) {
        evdb__fail_now(EVDB_EINVAL, "%s: bad arguments", who);
        return NULL;
    }
    /* Before looking at the children: an absurd n must not walk off the
     * caller's array. */
    if (n > (SIZE_MAX - sizeof(multi_op)) / sizeof(evdb_future *)) {
        evdb__fail_now(EVDB_EINVAL, "%s: too many futures", who);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!evdb__future_valid(fs[i])) {
            evdb__fail_now(EVDB_EINVAL, "%s: future %zu is NULL or invalid", who, i);
            return NULL;
        }
        if (evdb__future_loop(fs[i]) != evdb__future_loop(fs[0])) {
            evdb__fail_now(EVDB_EINVAL, "%s: futures belong to different loops", who);
            return NULL;
        }
    }
    if (n == 0) {
        evdb__fail_now(EVDB_EINVAL, "%s: an empty gather needs a loop: use evdb_sleep(loop, 0)",
                       who);
        return NULL;
    }
    multi_op *op = evdb__calloc(1, sizeof *op + n * sizeof(evdb_future *));
    evdb_future *f =
        evdb__future_new(evdb__future_loop(fs[0]), race ? EVDB__FK_RACE : EVDB__FK_GATHER);
    if (!op || !f)
        goto oom;
    /* Register the callbacks first. A registration that fails half-way
     * cannot take back the ones already made: they will run, so the op
     * stays alive for them, owns the (failed) future, and frees itself
     * after the last one. */
    for (size_t i = 0; i < n; i++) {
        if (evdb_future_on_done(fs[i], multi_child_done, op)) {
            /* Callbacks already registered on fs[0..i) will run; let them
             * find a live op that frees itself when they are all done. */
            op->f = f;
            op->n = i;
            op->callbacks_due = i;
            for (size_t j = 0; j < i; j++)
                op->children[j] = evdb_future_ref(fs[j]);
            evdb__future_fail(f, EVDB_ENOMEM, NULL);
            evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
            return NULL;
        }
    }
    op->f = evdb_future_ref(f);
    op->n = n;
    op->callbacks_due = n;
    op->flags = flags;
    op->race = race;
    for (size_t i = 0; i < n; i++)
        op->children[i] = evdb_future_ref(fs[i]);
    evdb__future_set_op(f, &multi_ops, op);
    return f;
oom:
    evdb__free(op);
    evdb_future_unref(f);
    evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
    return NULL;
}

evdb_future *evdb_gather(evdb_future *const *fs, size_t n, unsigned flags)
{
    return multi_new(fs, n, flags, false, "evdb_gather");
}

evdb_future *evdb_race(evdb_future *const *fs, size_t n)
{
    return multi_new(fs, n, 0, true, "evdb_race");
}

evdb_future *evdb_race_winner(const evdb_future *race)
{
    if (!evdb__future_valid(race) || evdb__future_kind(race) != EVDB__FK_RACE)
        return NULL;
    /* The forwarded child is the winner; a cancelled race has none. */
    return evdb__future_forwarded(race);
}

/* ---- timeout ---- */

typedef struct timeout_op {
    evdb_future *f;
    evdb_future *inner;
    evdb__timer *timer;
    double seconds;
    bool callback_due;
} timeout_op;

static void timeout_maybe_free(timeout_op *op)
{
    if (op->callback_due || evdb__future_pending(op->f))
        return;
    evdb__timer_free(op->timer);
    evdb_future_unref(op->inner);
    evdb_future_unref(op->f);
    evdb__free(op);
}

static void timeout_inner_done(evdb_future *inner, void *arg)
{
    timeout_op *op = arg;
    op->callback_due = false;
    evdb__timer_stop(op->timer);
    evdb__future_forward(op->f, inner);
    timeout_maybe_free(op);
}

static void timeout_fired(void *arg)
{
    timeout_op *op = arg;
    /* Fail first, so that whoever waits on this future hears of the
     * timeout at the deadline, before the cancelled operation's own
     * cleanup callbacks run; then cancel. Only the cancelled
     * query knows whether its statement had been sent: a caller that only
     * holds this future must learn it too, or it would re-run a statement
     * that ran, so the error is amended before any callback of ours runs. */
    evdb__future_fail(op->f, EVDB_ETIMEDOUT, "timed out after %g s", op->seconds);
    evdb_future_cancel(op->inner);
    if (evdb_error_outcome_unknown(evdb_future_error(op->inner))) {
        evdb_error e;
        evdb__error_set(&e, EVDB_ETIMEDOUT, 0, NULL,
                        "timed out after %g s (the query had been sent: whether it took "
                        "effect is unknown)",
                        op->seconds);
        e.outcome_unknown = true;
        evdb__future_amend_err(op->f, &e);
    }
    timeout_maybe_free(op);
}

static void timeout_cancel(void *arg)
{
    timeout_op *op = arg;
    evdb__timer_stop(op->timer);
    evdb_future_cancel(op->inner);
    timeout_maybe_free(op);
}

static const evdb__future_ops timeout_ops = {timeout_cancel};

evdb_future *evdb_timeout(evdb_future *inner, double seconds)
{
    if (!evdb__future_valid(inner) || !(seconds >= 0)) {
        evdb__fail_now(EVDB_EINVAL, "evdb_timeout: need a future and seconds >= 0");
        return NULL;
    }
    evdb__loop *l = evdb__future_loop(inner);
    timeout_op *op = evdb__calloc(1, sizeof *op);
    evdb_future *f = evdb__future_new(l, EVDB__FK_TIMEOUT);
    evdb__timer *t = op ? evdb__timer_new(l, timeout_fired, op) : NULL;
    if (!op || !f || !t || evdb_future_on_done(inner, timeout_inner_done, op)) {
        evdb__timer_free(t);
        evdb_future_unref(f);
        evdb__free(op);
        evdb__fail_now(EVDB_ENOMEM, "evdb_timeout: out of memory");
        return NULL;
    }
    op->f = evdb_future_ref(f);
    op->inner = evdb_future_ref(inner);
    op->timer = t;
    op->seconds = seconds;
    op->callback_due = true;
    evdb__future_set_op(f, &timeout_ops, op);
    if (evdb__future_pending(inner))
        evdb__timer_start(t, seconds);
    return f;
}
