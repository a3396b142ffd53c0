/*
 * Batch execution (include/evdb/many.h): one statement, many rows of
 * parameters.
 *
 * Per row: every row is submitted as a query of its own (evdb_conn_query
 * / evdb_pool_query), so it runs exactly as a separate query would, with
 * the driver's pipelining and statement cache; a collector waits for all
 * of them and chains their results in row order, a failed row standing in
 * as an empty result that carries its error.
 *
 * Atomic: the rows become one explicit batch of the same statement
 * (evdb_conn_batch / evdb_pool_batch), which the drivers run as one unit
 * (PostgreSQL: one Sync; MariaDB: bulk execution when the rows allow it,
 * my_bulk.c). A follower turns the batch's outcome into one status: the
 * total affected count, or the failing row's error renamed from "batch
 * statement K of N" to "row K-1 of N" with the row kept for
 * evdb_many_error_row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evdb/many.h"
#include "pool_conn.h"

/* The message prefix the drivers give a failing batch statement
 * (drivers/postgres/pg_failure.c, drivers/mariadb/my_batch.c). */
static const char batch_prefix[] = "batch statement ";

/* ---- argument checks ---- */

static bool check_args(const char *who, const char *sql, const evdb_value *params, size_t ncols,
                       size_t nrows, evdb_many_mode mode, const evdb_query_opts *opts)
{
    if (!sql || !*sql) {
        evdb__fail_now(EVDB_EINVAL, "%s: sql is NULL or empty", who);
        return false;
    }
    if (mode != EVDB_MANY_PER_ROW && mode != EVDB_MANY_ATOMIC) {
        evdb__fail_now(EVDB_EINVAL, "%s: unknown mode %d (EVDB_MANY_PER_ROW or EVDB_MANY_ATOMIC)",
                       who, (int)mode);
        return false;
    }
    size_t max_rows = mode == EVDB_MANY_ATOMIC ? EVDB_BATCH_MAX : EVDB_MANY_MAX_ROWS;
    if (nrows == 0 || nrows > max_rows) {
        evdb__fail_now(EVDB_EINVAL, "%s: %s takes 1 to %zu rows (got %zu)", who,
                       mode == EVDB_MANY_ATOMIC ? "EVDB_MANY_ATOMIC" : "EVDB_MANY_PER_ROW",
                       max_rows, nrows);
        return false;
    }
    if (ncols > EVDB_MANY_MAX_COLS) {
        evdb__fail_now(EVDB_EINVAL, "%s: %zu parameters per row (at most %u)", who, ncols,
                       EVDB_MANY_MAX_COLS);
        return false;
    }
    if (ncols && !params) {
        evdb__fail_now(EVDB_EINVAL, "%s: params is NULL with %zu parameters per row", who, ncols);
        return false;
    }
    if (evdb__check_query_flags(who, opts))
        return false;
    if (opts && !(opts->timeout >= 0)) {
        evdb__fail_now(EVDB_EINVAL, "%s: timeout must be >= 0", who);
        return false;
    }
    /* Row by row: the values' own limits are per statement. */
    for (size_t r = 0; ncols && r < nrows; r++) {
        if (evdb__values_check(params + r * ncols, ncols) == 0)
            continue;
        evdb_error keep;
        evdb__error_copy(&keep, evdb_last_error());
        evdb__fail_now(evdb_error_code(&keep), "%s: row %zu: %s", who, r,
                       evdb_error_message(&keep));
        return false;
    }
    return true;
}

/* The options each row (or the batch) runs with: the caller's flags; the
 * timeout is the whole call's, applied once around it. */
static evdb_query_opts inner_opts(const evdb_query_opts *opts, bool keep_timeout)
{
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    if (opts) {
        o = *opts;
        if (!keep_timeout)
            o.timeout = 0;
    }
    return o;
}

/* ---- per row ---- */

typedef struct many_rows many_rows;
typedef struct row_slot {
    many_rows *m;
    evdb_future *child; /* until it completes */
    evdb_result *res;   /* its result, or its stand-in when it failed */
} row_slot;

struct many_rows {
    evdb_future *f; /* the call's future: the library's reference */
    size_t n, left;
    bool oom; /* a row's outcome could not be kept */
    row_slot slots[];
};

static void rows_free(many_rows *m)
{
    for (size_t i = 0; i < m->n; i++)
        evdb__result_free(m->slots[i].res);
    evdb_future_unref(m->f);
    evdb__free(m);
}

/* Cancel (or timeout) of the call: cancel every row still running. Their
 * callbacks come later, from the loop, and free the collector. */
static void rows_cancel(void *op)
{
    many_rows *m = op;
    for (size_t i = 0; i < m->n; i++)
        if (m->slots[i].child)
            evdb_future_cancel(m->slots[i].child);
}

static const evdb__future_ops rows_ops = {rows_cancel};

/* A failed row's stand-in: an empty result carrying "row K: " and its
 * error. NULL when out of memory. */
static evdb_result *failed_row(size_t k, const evdb_error *e)
{
    evdb__rbuild *b = evdb__rbuild_new(0);
    if (b)
        evdb__rbuild_set_affected(b, 0); /* a failed statement changed nothing */
    evdb_result *r = b ? evdb__rbuild_finish(b) : NULL;
    evdb_error *copy = r ? evdb__malloc(sizeof *copy) : NULL;
    if (!copy) {
        evdb__result_free(r);
        return NULL;
    }
    evdb__error_copy(copy, e);
    char msg[EVDB__ERRMSG_MAX];
    int n = snprintf(msg, sizeof msg, "row %zu: %s", k, evdb_error_message(e));
    if (n > 0)
        memcpy(copy->message, msg, sizeof copy->message);
    copy->many_row = (long)k + 1;
    evdb__result_set_row_error(r, copy);
    return r;
}

/* Every row has its outcome: the call succeeds with the chain. */
static void rows_finish(many_rows *m)
{
    if (!evdb__future_pending(m->f)) {
        rows_free(m); /* cancelled or timed out: the outcomes go */
        return;
    }
    if (m->oom) {
        evdb__future_fail(m->f, EVDB_ENOMEM,
                          "execute_many: out of memory keeping the rows' outcomes (every row "
                          "ran: see the server for which took effect)");
        rows_free(m);
        return;
    }
    /* Chain back to front: each link is O(1). */
    evdb_result *head = NULL;
    for (size_t i = m->n; i-- > 0;) {
        evdb_result *r = m->slots[i].res;
        m->slots[i].res = NULL;
        if (head)
            evdb__result_append(r, head);
        head = r;
    }
    evdb__future_resolve(m->f, head, (void (*)(void *))evdb__result_free);
    rows_free(m);
}

static void row_done(evdb_future *child, void *arg)
{
    row_slot *s = arg;
    many_rows *m = s->m;
    size_t k = (size_t)(s - m->slots);
    if (evdb__future_pending(m->f)) {
        if (evdb_future_status(child) == 0) {
            s->res = evdb__future_take_result(child);
            if (!s->res) { /* a result-less success: stand in with an empty one */
                evdb__rbuild *b = evdb__rbuild_new(0);
                s->res = b ? evdb__rbuild_finish(b) : NULL;
            }
        } else {
            s->res = failed_row(k, evdb_future_error(child));
        }
        if (!s->res)
            m->oom = true;
    } else {
        evdb_future_status(child); /* observed: the call's outcome says it */
    }
    s->child = NULL;
    evdb_future_unref(child);
    if (--m->left == 0)
        rows_finish(m);
}

typedef evdb_future *(*submit_fn)(void *target, const char *sql, const evdb_value *params,
                                  size_t nparams, const evdb_query_opts *opts);

static evdb_future *submit_conn(void *target, const char *sql, const evdb_value *params,
                                size_t nparams, const evdb_query_opts *opts)
{
    return evdb_conn_query(target, sql, params, nparams, opts);
}

static evdb_future *submit_pool(void *target, const char *sql, const evdb_value *params,
                                size_t nparams, const evdb_query_opts *opts)
{
    return evdb_pool_query(target, sql, params, nparams, opts);
}

/* Undo a call that failed part way through submitting: the rows already
 * submitted are cancelled (a queued row leaves its queue; a running one
 * is cancelled on the server) and nobody hears of them. */
static void rows_abandon(many_rows *m, size_t submitted)
{
    for (size_t i = 0; i < submitted; i++) {
        evdb_future_cancel(m->slots[i].child);
        evdb__future_disown(m->slots[i].child);
    }
    evdb__free(m);
}

static evdb_future *per_row(void *target, submit_fn submit, const char *who, const char *sql,
                            const evdb_value *params, size_t ncols, size_t nrows,
                            const evdb_query_opts *opts)
{
    many_rows *m = evdb__calloc(1, sizeof *m + nrows * sizeof(row_slot));
    if (!m) {
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    m->n = m->left = nrows;
    evdb_query_opts o = inner_opts(opts, false);
    for (size_t i = 0; i < nrows; i++) {
        m->slots[i].m = m;
        m->slots[i].child = submit(target, sql, ncols ? params + i * ncols : NULL, ncols, &o);
        if (!m->slots[i].child) {
            evdb_error keep;
            evdb__error_copy(&keep, evdb_last_error());
            rows_abandon(m, i);
            evdb__fail_now(evdb_error_code(&keep), "%s: row %zu: %s", who, i,
                           evdb_error_message(&keep));
            return NULL;
        }
    }
    evdb_future *f = evdb__future_new(evdb__future_loop(m->slots[0].child), EVDB__FK_QUERY);
    bool timed = opts && opts->timeout > 0;
    evdb_future *outer = f && timed ? evdb_timeout(f, opts->timeout) : f;
    if (!outer) {
        evdb_future_unref(f);
        rows_abandon(m, nrows);
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    /* m keeps the reference evdb__future_new gave; the caller gets one of
     * its own (with a timeout: outer, which holds f itself). */
    m->f = f;
    evdb__future_set_op(f, &rows_ops, m);
    for (size_t i = 0; i < nrows; i++)
        if (evdb_future_on_done(m->slots[i].child, row_done, &m->slots[i])) {
            /* Registration cannot fail on a valid future short of memory;
             * the row is then left to run, and the call fails at once. */
            m->oom = true;
            evdb_future_unref(m->slots[i].child);
            m->slots[i].child = NULL;
            m->left--;
        }
    if (m->left == 0)
        rows_finish(m);
    return timed ? outer : evdb_future_ref(f);
}

/* ---- atomic ---- */

typedef struct many_atomic {
    evdb_future *f;     /* the call's future */
    evdb_future *inner; /* the batch's */
    size_t nrows;
} many_atomic;

static void atomic_cancel(void *op)
{
    many_atomic *a = op;
    evdb_future_cancel(a->inner);
}

static const evdb__future_ops atomic_ops = {atomic_cancel};

/* K and where the driver's message proper starts, from "batch statement
 * K of N: msg"; 0 when the message is not a statement's. */
static size_t batch_row(const char *msg, const char **rest)
{
    size_t plen = sizeof batch_prefix - 1;
    if (strncmp(msg, batch_prefix, plen) != 0)
        return 0;
    char *end;
    unsigned long k = strtoul(msg + plen, &end, 10);
    const char *colon = strstr(end, ": ");
    if (!k || end == msg + plen || !colon)
        return 0;
    *rest = colon + 2;
    return (size_t)k;
}

/* The batch failed: the call fails with its error, renamed to the row. */
static void atomic_failed(many_atomic *a)
{
    size_t nrows = a->nrows;
    const evdb_error *e = evdb_future_error(a->inner);
    evdb_error copy;
    evdb__error_copy(&copy, e);
    const char *rest;
    size_t k = batch_row(evdb_error_message(e), &rest);
    if (k) {
        char msg[EVDB__ERRMSG_MAX];
        snprintf(msg, sizeof msg, "row %zu of %zu: %s", k - 1, nrows, rest);
        memcpy(copy.message, msg, sizeof copy.message);
        copy.many_row = (long)k;
    } else {
        copy.many_row = 0;
    }
    evdb__future_fail_err(a->f, &copy);
}

static void atomic_done(evdb_future *inner, void *arg)
{
    many_atomic *a = arg;
    if (evdb__future_pending(a->f)) {
        int st = evdb_future_status(inner);
        if (st == 0) {
            evdb_result *chain = evdb__future_take_result(inner);
            size_t n = 0;
            int64_t total = 0;
            for (const evdb_result *r = chain; r; r = evdb_result_next(r), n++)
                if (evdb_result_affected(r) > 0)
                    total += evdb_result_affected(r);
            evdb__result_free(chain);
            evdb__rbuild *b = evdb__rbuild_new(0);
            if (b)
                evdb__rbuild_set_affected(b, total);
            evdb_result *one = b ? evdb__rbuild_finish(b) : NULL;
            if (one)
                evdb__future_resolve(a->f, one, (void (*)(void *))evdb__result_free);
            else
                evdb__future_fail(a->f, EVDB_ENOMEM,
                                  "execute_many: out of memory after all %zu rows took effect", n);
        } else {
            atomic_failed(a);
        }
    } else {
        evdb_future_status(inner);
    }
    evdb_future_unref(a->f);
    evdb_future_unref(inner);
    evdb__free(a);
}

/* The rows as a batch of the same statement: a table of statements that
 * all point at sql and at their row of params (the batch copies them). */
static evdb_future *atomic(evdb_conn *c, evdb_pool *p, const char *who, const char *sql,
                           const evdb_value *params, size_t ncols, size_t nrows,
                           const evdb_query_opts *opts)
{
    evdb_stmt *tab = evdb__malloc(nrows * sizeof *tab);
    many_atomic *a = evdb__calloc(1, sizeof *a);
    if (!tab || !a) {
        evdb__free(tab);
        evdb__free(a);
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    for (size_t i = 0; i < nrows; i++) {
        tab[i].sql = sql;
        tab[i].params = ncols ? params + i * ncols : NULL;
        tab[i].nparams = ncols;
    }
    evdb_query_opts o = inner_opts(opts, true);
    evdb_future *inner =
        c ? evdb_conn_batch(c, tab, nrows, &o) : evdb_pool_batch(p, tab, nrows, &o);
    evdb__free(tab);
    if (!inner) {
        evdb_error keep;
        evdb__error_copy(&keep, evdb_last_error());
        evdb__free(a);
        /* The batch's own words, under this call's name. */
        const char *msg = evdb_error_message(&keep);
        const char *colon = strstr(msg, ": ");
        evdb__fail_now(evdb_error_code(&keep), "%s: %s", who, colon ? colon + 2 : msg);
        return NULL;
    }
    evdb_future *f = evdb__future_new(evdb__future_loop(inner), EVDB__FK_QUERY);
    if (!f || evdb_future_on_done(inner, atomic_done, a)) {
        evdb_future_unref(f);
        evdb_future_cancel(inner);
        evdb__future_disown(inner);
        evdb__free(a);
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    a->f = evdb_future_ref(f);
    a->inner = inner;
    a->nrows = nrows;
    evdb__future_set_op(f, &atomic_ops, a);
    return f;
}

/* ---- public ---- */

evdb_future *evdb_conn_execute_many(evdb_conn *c, const char *sql, const evdb_value *params,
                                    size_t ncols, size_t nrows, evdb_many_mode mode,
                                    const evdb_query_opts *opts)
{
    static const char who[] = "evdb_conn_execute_many";
    if (!c) {
        evdb__fail_now(EVDB_EINVAL, "%s: connection is NULL", who);
        return NULL;
    }
    if (!check_args(who, sql, params, ncols, nrows, mode, opts))
        return NULL;
    if (mode == EVDB_MANY_ATOMIC)
        return atomic(c, NULL, who, sql, params, ncols, nrows, opts);
    return per_row(c, submit_conn, who, sql, params, ncols, nrows, opts);
}

evdb_future *evdb_pool_execute_many(evdb_pool *p, const char *sql, const evdb_value *params,
                                    size_t ncols, size_t nrows, evdb_many_mode mode,
                                    const evdb_query_opts *opts)
{
    static const char who[] = "evdb_pool_execute_many";
    if (!p) {
        evdb__fail_now(EVDB_EINVAL, "%s: pool is NULL", who);
        return NULL;
    }
    if (!check_args(who, sql, params, ncols, nrows, mode, opts))
        return NULL;
    if (mode == EVDB_MANY_ATOMIC)
        return atomic(NULL, p, who, sql, params, ncols, nrows, opts);
    return per_row(p, submit_pool, who, sql, params, ncols, nrows, opts);
}

long evdb_many_error_row(const evdb_error *e)
{
    return e && e->many_row > 0 ? e->many_row - 1 : -1;
}

const evdb_error *evdb_many_row_error(const evdb_result *r)
{
    return evdb__result_row_error(r);
}

size_t evdb_many_failed(const evdb_result *r)
{
    size_t n = 0;
    for (; r; r = evdb_result_next(r))
        n += evdb__result_row_error(r) != NULL;
    return n;
}

int64_t evdb_many_affected(const evdb_result *r)
{
    int64_t n = 0;
    for (; r; r = evdb_result_next(r)) {
        int64_t a = evdb_result_affected(r);
        if (a > 0) /* -1: a statement without a count (SELECT) */
            n += a;
    }
    return n;
}
