/*
 * Futures: reference counted, completed exactly once, callbacks run in
 * registration order from the loop (never inside the call that registered
 * them). The operation behind a future is reached through a small ops table
 * so that cancel can stop it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct cbent {
    evdb_done_cb cb;
    void *arg;
} cbent;

struct evdb_future {
    uint32_t magic;
    uint32_t refs;
    evdb__loop *loop;
    evdb__fkind kind;
    int status;      /* EVDB_PENDING, 0, or a negative code */
    evdb_error *err; /* failed/cancelled: owned when err_owned */
    bool err_owned;
    void *value; /* result, connection or user value */
    void (*free_value)(void *);
    evdb_future *fwd; /* race/timeout: the child whose outcome this is */
    const evdb__future_ops *ops;
    void *op;
    cbent cb0;   /* the common case: one callback, no allocation */
    cbent *more; /* callbacks 2.. */
    size_t ncb, more_cap, nfired;
    evdb__deferred dispatch;
    bool observed; /* outcome read: see evdb_set_unobserved_error_hook */
};

static __thread size_t live_futures EVDB__TLS_HOT;

size_t evdb__future_live(void)
{
    return live_futures;
}

bool evdb__future_valid(const evdb_future *f)
{
    return f && f->magic == EVDB__MAGIC_FUTURE;
}

static void dispatch(evdb__deferred *d);

evdb_future *evdb__future_new(evdb__loop *l, evdb__fkind kind)
{
    evdb_future *f = evdb__obj_alloc(sizeof *f);
    if (!f)
        return NULL;
    memset(f, 0, sizeof *f);
    f->magic = EVDB__MAGIC_FUTURE;
    f->refs = 1;
    f->loop = l;
    f->kind = kind;
    f->status = EVDB_PENDING;
    f->dispatch.fn = dispatch;
    evdb__loop_ref(l);
    live_futures++;
    return f;
}

void evdb__future_set_op(evdb_future *f, const evdb__future_ops *ops, void *op)
{
    f->ops = ops;
    f->op = op;
}

void *evdb__future_op(const evdb_future *f, const evdb__future_ops *ops)
{
    return f->ops == ops ? f->op : NULL;
}

bool evdb__future_pending(const evdb_future *f)
{
    return f->status == EVDB_PENDING;
}

evdb__loop *evdb__future_loop(const evdb_future *f)
{
    return f->loop;
}

evdb__fkind evdb__future_kind(const evdb_future *f)
{
    return f->kind;
}

static cbent *cb_at(evdb_future *f, size_t i)
{
    return i == 0 ? &f->cb0 : &f->more[i - 1];
}

static void dispatch(evdb__deferred *d)
{
    evdb_future *f = EVDB__CONTAINER_OF(d, evdb_future, dispatch);
    /* Callbacks added while these run (by them) run in this same pass:
     * still from the loop, never inside the registering call. */
    while (f->nfired < f->ncb) {
        cbent e = *cb_at(f, f->nfired);
        f->nfired++;
        e.cb(f, e.arg);
    }
    /* Drop the reference taken when the dispatch was queued. */
    evdb_future_unref(f);
}

static void schedule(evdb_future *f)
{
    if (f->dispatch.queued || f->nfired == f->ncb)
        return;
    f->refs++;
    evdb__loop_defer(f->loop, &f->dispatch);
}

/* Error objects for when recording one fails, or needs no message (cancel):
 * one per code, built on first use. */
static __thread evdb_error fallback_errors[-EVDB_ERRNO_LAST_ + 1];

static evdb_error *fallback_error(int code)
{
    if (code >= 0 || code <= EVDB_ERRNO_LAST_)
        code = EVDB_EPROTO;
    evdb_error *e = &fallback_errors[-code];
    if (e->code != code)
        evdb__error_set(e, code, 0, NULL, "%s", evdb_strerror(code));
    return e;
}

static bool complete(evdb_future *f, int status, evdb_error *err, bool err_owned)
{
    if (f->status != EVDB_PENDING) {
        if (err_owned)
            evdb__free(err);
        return false;
    }
    f->status = status;
    f->err = err;
    f->err_owned = err_owned;
    f->ops = NULL;
    f->op = NULL;
    schedule(f);
    return true;
}

bool evdb__future_resolve(evdb_future *f, void *value, void (*free_value)(void *))
{
    if (f->status != EVDB_PENDING)
        return false;
    f->value = value;
    f->free_value = free_value;
    return complete(f, 0, NULL, false);
}

bool evdb__future_forward(evdb_future *f, evdb_future *child)
{
    if (f->status != EVDB_PENDING)
        return false;
    f->fwd = evdb_future_ref(child);
    int status = evdb_future_status(child);
    return complete(f, status, NULL, false);
}

void evdb__future_disown(evdb_future *f)
{
    f->observed = true;
    evdb_future_unref(f);
}

evdb_future *evdb__future_forwarded(const evdb_future *f)
{
    return f->fwd;
}

bool evdb__future_fail_err(evdb_future *f, const evdb_error *e)
{
    if (f->status != EVDB_PENDING)
        return false;
    int code = e->code < 0 ? e->code : EVDB_EPROTO;
    evdb_error *copy = evdb__malloc(sizeof *copy);
    if (!copy)
        return complete(f, code, fallback_error(code), false);
    evdb__error_copy(copy, e);
    copy->code = code;
    return complete(f, code, copy, true);
}

bool evdb__future_amend_err(evdb_future *f, const evdb_error *e)
{
    if (f->status != e->code || f->fwd || f->nfired)
        return false;
    evdb_error *copy = evdb__malloc(sizeof *copy);
    if (!copy)
        return false; /* the first error stays: less precise, still true */
    evdb__error_copy(copy, e);
    if (f->err_owned)
        evdb__free(f->err);
    f->err = copy;
    f->err_owned = true;
    return true;
}

bool evdb__future_fail(evdb_future *f, int code, const char *fmt, ...)
{
    if (f->status != EVDB_PENDING)
        return false;
    if (!fmt)
        return complete(f, code, fallback_error(code), false);
    evdb_error *e = evdb__malloc(sizeof *e);
    if (!e)
        return complete(f, code, fallback_error(code), false);
    va_list ap;
    va_start(ap, fmt);
    char msg[EVDB__ERRMSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    evdb__error_set(e, code, 0, NULL, "%s", msg);
    return complete(f, code, e, true);
}

/* ---- public API ---- */

evdb_future *evdb_future_new(struct ev_loop *loop)
{
    if (!loop) {
        evdb__fail_now(EVDB_EINVAL, "evdb_future_new: loop is NULL");
        return NULL;
    }
    evdb__loop *l = evdb__loop_get(loop);
    if (!l) {
        evdb__fail_now(EVDB_ENOMEM, "evdb_future_new: out of memory");
        return NULL;
    }
    evdb_future *f = evdb__future_new(l, EVDB__FK_USER);
    evdb__loop_unref(l);
    if (!f)
        evdb__fail_now(EVDB_ENOMEM, "evdb_future_new: out of memory");
    return f;
}

int evdb_future_resolve(evdb_future *f, void *value, void (*free_value)(void *))
{
    if (!evdb__future_valid(f) || f->kind != EVDB__FK_USER)
        return evdb__fail_now(EVDB_EINVAL, "evdb_future_resolve: not a user-made future");
    if (!evdb__future_resolve(f, value, free_value)) {
        if (free_value)
            free_value(value);
        return evdb__fail_now(EVDB_ESTATE, "evdb_future_resolve: future already completed");
    }
    return 0;
}

int evdb_future_fail(evdb_future *f, int code, const char *message)
{
    if (!evdb__future_valid(f) || f->kind != EVDB__FK_USER)
        return evdb__fail_now(EVDB_EINVAL, "evdb_future_fail: not a user-made future");
    if (code >= 0)
        return evdb__fail_now(EVDB_EINVAL, "evdb_future_fail: code must be negative");
    if (f->status != EVDB_PENDING)
        return evdb__fail_now(EVDB_ESTATE, "evdb_future_fail: future already completed");
    if (message)
        evdb__future_fail(f, code, "%s", message);
    else
        evdb__future_fail(f, code, NULL);
    return 0;
}

int evdb_future_on_done(evdb_future *f, evdb_done_cb cb, void *arg)
{
    if (!evdb__future_valid(f) || !cb)
        return evdb__fail_now(EVDB_EINVAL, "evdb_future_on_done: NULL future or callback");
    f->observed = true;
    if (f->ncb == 0) {
        f->cb0.cb = cb;
        f->cb0.arg = arg;
    } else {
        if (f->ncb - 1 == f->more_cap) {
            size_t cap = f->more_cap ? f->more_cap * 2 : 2;
            cbent *m = evdb__realloc(f->more, cap * sizeof *m);
            if (!m)
                return evdb__fail_now(EVDB_ENOMEM, "evdb_future_on_done: out of memory");
            f->more = m;
            f->more_cap = cap;
        }
        f->more[f->ncb - 1].cb = cb;
        f->more[f->ncb - 1].arg = arg;
    }
    f->ncb++;
    if (f->status != EVDB_PENDING)
        schedule(f);
    return 0;
}

int evdb_future_cancel(evdb_future *f)
{
    if (!evdb__future_valid(f))
        return evdb__fail_now(EVDB_EINVAL, "evdb_future_cancel: invalid future");
    if (f->status != EVDB_PENDING)
        return EVDB_ESTATE;
    const evdb__future_ops *ops = f->ops;
    void *op = f->op;
    /* Complete first, then tell the operation: it sees its future done and
     * only has to clean up (dequeue, cancel on the server). */
    f->refs++;
    complete(f, EVDB_ECANCELED, fallback_error(EVDB_ECANCELED), false);
    if (ops && ops->cancel)
        ops->cancel(op);
    evdb_future_unref(f);
    return 0;
}

int evdb__future_peek(const evdb_future *f)
{
    return f->status;
}

int evdb_future_status(const evdb_future *f)
{
    if (!evdb__future_valid(f))
        return EVDB_EINVAL;
    /* Bookkeeping, not state: the const caller still read the outcome. */
    if (f->status != EVDB_PENDING)
        ((evdb_future *)f)->observed = true;
    return f->status;
}

const evdb_error *evdb_future_error(const evdb_future *f)
{
    if (!evdb__future_valid(f) || f->status >= 0)
        return NULL;
    ((evdb_future *)f)->observed = true;
    if (f->fwd)
        return evdb_future_error(f->fwd);
    return f->err ? f->err : fallback_error(f->status);
}

evdb_result *evdb_future_result(const evdb_future *f)
{
    if (!evdb__future_valid(f) || f->status != 0)
        return NULL;
    if (f->fwd)
        return evdb_future_result(f->fwd);
    return f->kind == EVDB__FK_QUERY ? f->value : NULL;
}

evdb_conn *evdb_future_take_conn(evdb_future *f)
{
    if (!evdb__future_valid(f) || f->status != 0)
        return NULL;
    if (f->fwd)
        return evdb_future_take_conn(f->fwd);
    if (f->kind != EVDB__FK_OPEN || !f->value)
        return NULL;
    evdb_conn *c = f->value;
    f->value = NULL;
    f->free_value = NULL;
    return c;
}

void *evdb_future_value(const evdb_future *f)
{
    if (!evdb__future_valid(f) || f->status != 0)
        return NULL;
    if (f->fwd)
        return evdb_future_value(f->fwd);
    return (f->kind == EVDB__FK_USER || f->kind == EVDB__FK_TASK) ? f->value : NULL;
}

evdb_future *evdb_future_ref(evdb_future *f)
{
    if (evdb__future_valid(f))
        f->refs++;
    return f;
}

void evdb_future_unref(evdb_future *f)
{
    if (!evdb__future_valid(f) || --f->refs)
        return;
    /* A pending future only dies when nothing (its operation included)
     * refers to it any more: its callbacks can never run. */
    if (!f->observed && f->status < 0 && f->status != EVDB_ECANCELED)
        evdb__report_unobserved(f, f->fwd ? evdb_future_error(f->fwd)
                                          : (f->err ? f->err : fallback_error(f->status)));
    if (f->free_value && f->value)
        f->free_value(f->value);
    if (f->fwd)
        evdb_future_unref(f->fwd);
    if (f->err_owned)
        evdb__free(f->err);
    evdb__free(f->more);
    evdb__loop *l = f->loop;
    f->magic = EVDB__MAGIC_DEAD;
    evdb__obj_free(f, sizeof *f);
    live_futures--;
    evdb__loop_unref(l);
}

int evdb_future_wait(evdb_future *f)
{
    if (!evdb__future_valid(f))
        return evdb__fail_now(EVDB_EINVAL, "evdb_future_wait: invalid future");
    f->observed = true;
    if (evdb__loop_running(f->loop))
        return evdb__fail_now(EVDB_EINCALLBACK,
                              "evdb_future_wait: called inside a callback or task of the loop "
                              "it would run; register a callback (or evdb_await in a task)");
    f->refs++;
    /* Run until f is done and its own callbacks have run. */
    while (f->status == EVDB_PENDING || f->dispatch.queued) {
        if (!evdb__loop_run_once(f->loop) && f->status == EVDB_PENDING) {
            evdb_future_unref(f);
            return evdb__fail_now(EVDB_ESTATE,
                                  "evdb_future_wait: the loop has nothing left to run, so the "
                                  "future can never complete");
        }
    }
    int status = f->status;
    evdb_future_unref(f);
    return status;
}

/* Take a query future's result out of it (the future then reads as a
 * result-less success), for a caller that hands it on in a future of its
 * own (pool_txn.c drops the SET TRANSACTION's result from a batch's). */
evdb_result *evdb__future_take_result(evdb_future *f)
{
    if (!evdb__future_valid(f) || f->status != 0 || f->fwd || f->kind != EVDB__FK_QUERY)
        return NULL;
    evdb_result *r = f->value;
    f->value = NULL;
    f->free_value = NULL;
    return r;
}
