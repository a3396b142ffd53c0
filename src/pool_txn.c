/*
 * Transactions on pooled connections: evdb_pool_transaction borrows a
 * connection, runs the user's statements inside BEGIN and COMMIT (or
 * ROLLBACK), and gives the connection back. Kept apart from pool.c, which
 * owns the connections, because it only uses the pool's public calls.
 */
#include <stdio.h>
#include <string.h>

#include "query.h"

/* ---- transactions ---- */

typedef struct txn {
    evdb_pool *pool;
    evdb_future *f;      /* the transaction's own future */
    evdb_txn_fn fn;
    void *arg;
    evdb_conn *c;
    evdb_future *user;   /* what fn returned */
} txn;

static void txn_end(txn *t)
{
    if (t->c)
        evdb_conn_release(t->c);
    evdb_future_unref(t->user);
    evdb_future_unref(t->f);
    evdb__free(t);
}

static void txn_finished(evdb_future *f, void *arg)
{
    txn *t = arg;
    if (evdb_future_status(f) != 0)
        evdb__future_fail_err(t->f, evdb_future_error(f));
    else
        evdb__future_forward(t->f, t->user);
    evdb_future_unref(f);
    txn_end(t);
}

static void txn_user_done(evdb_future *f, void *arg)
{
    txn *t = arg;
    (void)f;
    bool ok = evdb_future_status(t->user) == 0 && evdb__future_pending(t->f);
    evdb_query_opts o = {.flags = EVDB_QUERY_NO_PIPELINE};
    /* Through the borrow handle: if fn released the connection, its
     * handle is stale and this fails instead of running on whoever has
     * the connection now. */
    evdb_future *end = evdb_conn_query(t->c, ok ? "COMMIT" : "ROLLBACK", NULL, 0, &o);
    if (!ok) {
        /* The user's failure (or a cancel) is the outcome; the ROLLBACK
         * runs before the release either way (release rolls back too). */
        evdb__future_forward(t->f, t->user);
        if (end)
            evdb__future_disown(end);
        txn_end(t);
        return;
    }
    if (!end) {
        /* Refused at once: the connection was lost (or closed) after the
         * user's statements ran, and the server rolled them back; or fn
         * released the connection itself, and the release rolled back. */
        evdb__future_fail_err(t->f, evdb_last_error());
        txn_end(t);
    } else if (evdb_future_on_done(end, txn_finished, t)) {
        evdb_future_unref(end);
        evdb__future_fail(t->f, EVDB_ENOMEM, "transaction: out of memory submitting COMMIT");
        txn_end(t);
    }
}

static void txn_begun(evdb_future *f, void *arg)
{
    txn *t = arg;
    int st = evdb_future_status(f);
    if (st != 0 || !evdb__future_pending(t->f)) {
        if (st != 0)
            evdb__future_fail_err(t->f, evdb_future_error(f));
        evdb_future_unref(f);
        txn_end(t);
        return;
    }
    evdb_future_unref(f);
    t->user = t->fn(t->c, t->arg);
    if (!t->user) {
        evdb__future_fail_err(t->f, evdb_last_error());
        txn_end(t);
        return;
    }
    if (evdb_future_on_done(t->user, txn_user_done, t)) {
        evdb__future_fail(t->f, EVDB_ENOMEM, "transaction: out of memory");
        txn_end(t);
    }
}

static void txn_acquired(evdb_future *f, void *arg)
{
    txn *t = arg;
    if (evdb_future_status(f) != 0 || !evdb__future_pending(t->f)) {
        if (evdb_future_status(f) != 0)
            evdb__future_fail_err(t->f, evdb_future_error(f));
        evdb_future_unref(f); /* an untaken connection goes back by itself */
        txn_end(t);
        return;
    }
    t->c = evdb_future_take_conn(f);
    evdb_future_unref(f);
    evdb_query_opts o = {.flags = EVDB_QUERY_NO_PIPELINE};
    evdb_future *b = evdb_conn_query(t->c, "BEGIN", NULL, 0, &o);
    if (!b) {
        /* Refused at once (a connection lost right after the acquire). */
        evdb__future_fail_err(t->f, evdb_last_error());
        txn_end(t);
    } else if (evdb_future_on_done(b, txn_begun, t)) {
        evdb_future_unref(b);
        evdb__future_fail(t->f, EVDB_ENOMEM, "transaction: out of memory submitting BEGIN");
        txn_end(t);
    }
}

evdb_future *evdb_pool_transaction(evdb_pool *p, evdb_txn_fn fn, void *arg, double timeout)
{
    if (!fn) {
        evdb__fail_now(EVDB_EINVAL, "evdb_pool_transaction: fn is NULL");
        return NULL;
    }
    evdb_future *a = evdb_pool_acquire_at(p, timeout, NULL, 0);
    if (!a)
        return NULL;
    txn *t = evdb__calloc(1, sizeof *t);
    evdb_future *f = t ? evdb__future_new(evdb__pool_loop(p), EVDB__FK_TIMEOUT) : NULL;
    if (!t || !f || evdb_future_on_done(a, txn_acquired, t)) {
        evdb__free(t);
        evdb_future_unref(f);
        evdb_future_cancel(a);
        evdb_future_unref(a);
        evdb__fail_now(EVDB_ENOMEM, "evdb_pool_transaction: out of memory");
        return NULL;
    }
    t->pool = p;
    t->fn = fn;
    t->arg = arg;
    t->f = evdb_future_ref(f);
    return f;
}
