/*
 * Query objects: creation (argument checks, one-block copy of SQL and
 * parameters), the lists they move through, and their release.
 */
#include <stdio.h>
#include <string.h>

#include "pool_conn.h"

void evdb__qlist_push(evdb__qlist *l, evdb__cq *q)
{
    q->next = NULL;
    q->prev = l->tail;
    if (l->tail)
        l->tail->next = q;
    else
        l->head = q;
    l->tail = q;
    l->n++;
}

void evdb__qlist_push_front(evdb__qlist *l, evdb__cq *q)
{
    q->prev = NULL;
    q->next = l->head;
    if (l->head)
        l->head->prev = q;
    else
        l->tail = q;
    l->head = q;
    l->n++;
}

void evdb__qlist_remove(evdb__qlist *l, evdb__cq *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else
        l->head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    else
        l->tail = q->prev;
    q->prev = q->next = NULL;
    l->n--;
}

void evdb__cq_free(evdb__cq *q)
{
    /* Every pooled query passes here once, whatever ended it; one given up
     * on in flight was counted then (it stays until the driver reports). */
    if (q->pool && !q->q.cancel_requested)
        evdb__pool_count(q->pool, evdb__future_peek(q->f));
    evdb__timer_free(q->timer);
    evdb_future_unref(q->f);
    if (q->q.copy)
        evdb__copy_query_freed(q->q.copy);
    evdb__obj_free(q, q->block_size);
}

/* Defined in conn.c: the timer and cancel handlers know about every list a
 * query can be on. */
void evdb__cq_timed_out(void *arg);
extern const evdb__future_ops evdb__cq_ops;

/* Checks shared by queries and batches: 0, or EVDB_EINVAL with the last
 * error set. */
static int check_sql(const char *who, const char *sql, size_t *len)
{
    if (!sql) {
        evdb__fail_now(EVDB_EINVAL, "%s: sql is NULL", who);
        return EVDB_EINVAL;
    }
    *len = strlen(sql);
    if (*len == 0 || *len > EVDB_VALUE_MAX_LEN) {
        evdb__fail_now(EVDB_EINVAL, "%s: sql is empty or over 1 GiB", who);
        return EVDB_EINVAL;
    }
    return 0;
}

static int check_opts(const char *who, const evdb_query_opts *opts)
{
    if (opts && !(opts->timeout >= 0)) {
        evdb__fail_now(EVDB_EINVAL, "%s: timeout must be >= 0", who);
        return EVDB_EINVAL;
    }
    return 0;
}

int evdb__check_query_flags(const char *who, const evdb_query_opts *opts)
{
    if (opts && (opts->flags & ~EVDB__QUERY_PUBLIC_FLAGS)) {
        evdb__fail_now(EVDB_EINVAL, "%s: unknown query flags 0x%x (known: EVDB_QUERY_*)", who,
                       opts->flags & ~EVDB__QUERY_PUBLIC_FLAGS);
        return EVDB_EINVAL;
    }
    return 0;
}

/* Sizes inside the one block are rounded so that every part that holds
 * values (evdb_value, evdb__stmt) stays aligned. */
static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* The query object of size bytes with its future and timer; the caller
 * fills in the statement. NULL with the last error set. */
static evdb__cq *cq_alloc(evdb__loop *l, const char *who, size_t size, const evdb_query_opts *opts)
{
    bool timed = opts && opts->timeout > 0;
    evdb__cq *q = evdb__obj_alloc(size);
    evdb_future *f = evdb__future_new(l, EVDB__FK_QUERY);
    evdb__timer *t = q && f && timed ? evdb__timer_new(l, evdb__cq_timed_out, q) : NULL;
    if (!q || !f || (timed && !t)) {
        evdb__obj_free(q, size);
        evdb_future_unref(f);
        evdb__timer_free(t);
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    memset(q, 0, sizeof *q);
    q->block_size = size;
    q->q.flags = opts ? opts->flags : 0;
    q->q.timeout = opts ? opts->timeout : 0;
    q->trace_ctx = opts ? opts->trace_ctx : NULL;
    q->f = evdb_future_ref(f);
    q->timer = t;
    return q;
}

/* Start the deadline (it covers queue time too) and hook up cancel. */
static void cq_start(evdb__cq *q, const evdb_query_opts *opts)
{
    if (q->timer) {
        q->timeout = opts->timeout;
        evdb__timer_start(q->timer, opts->timeout);
    }
    evdb__future_set_op(q->f, &evdb__cq_ops, q);
}

evdb__cq *evdb__cq_new(evdb__loop *l, const char *who, const char *sql, const evdb_value *params,
                       size_t nparams, const evdb_query_opts *opts)
{
    size_t sql_len;
    if (check_sql(who, sql, &sql_len) || evdb__values_check(params, nparams) ||
        check_opts(who, opts))
        return NULL;
    /* One block: the query, its parameters and their payloads, the SQL. */
    size_t head = align16(sizeof(evdb__cq));
    size_t vsize = evdb__values_size(params, nparams);
    size_t size = head + vsize + sql_len + 1;
    evdb__cq *q = cq_alloc(l, who, size, opts);
    if (!q)
        return NULL;
    char *sql_copy = (char *)q + head + vsize;
    memcpy(sql_copy, sql, sql_len + 1);
    q->q.sql = sql_copy;
    q->q.sql_len = sql_len;
    q->q.params = nparams ? evdb__values_copy_into((char *)q + head, params, nparams) : NULL;
    q->q.nparams = nparams;
    cq_start(q, opts);
    return q;
}

evdb__cq *evdb__cq_new_batch(evdb__loop *l, const char *who, const evdb_stmt *stmts, size_t n,
                             const evdb_query_opts *opts)
{
    if (!stmts || n == 0 || n > EVDB_BATCH_MAX) {
        evdb__fail_now(EVDB_EINVAL, "%s: a batch needs 1 to %u statements (got %zu%s)", who,
                       EVDB_BATCH_MAX, n, stmts ? "" : ", stmts NULL");
        return NULL;
    }
    if (check_opts(who, opts))
        return NULL;
    /* One block: the query, the statement table, then per statement its
     * values (aligned) and its SQL. */
    size_t head = align16(sizeof(evdb__cq));
    size_t size = head + align16(n * sizeof(evdb__stmt));
    for (size_t i = 0; i < n; i++) {
        const char *sql = stmts[i].sql;
        size_t len = sql ? strlen(sql) : 0;
        if (len == 0 || len > EVDB_VALUE_MAX_LEN) {
            /* The statement's number only when it is wanted: formatting
             * it cost more than the rest of the check on every release
             * (the pool's reset is a batch). */
            char what[48];
            snprintf(what, sizeof what, "%s: statement %zu", who, i + 1);
            check_sql(what, sql, &len);
            return NULL;
        }
        if (evdb__values_check(stmts[i].params, stmts[i].nparams))
            return NULL;
        size += align16(evdb__values_size(stmts[i].params, stmts[i].nparams)) + align16(len + 1);
    }
    evdb__cq *q = cq_alloc(l, who, size, opts);
    if (!q)
        return NULL;
    evdb__stmt *tab = (evdb__stmt *)(void *)((char *)q + head);
    char *p = (char *)tab + align16(n * sizeof(evdb__stmt));
    for (size_t i = 0; i < n; i++) {
        size_t np = stmts[i].nparams;
        size_t vsize = evdb__values_size(stmts[i].params, np);
        tab[i].params = np ? evdb__values_copy_into(p, stmts[i].params, np) : NULL;
        tab[i].nparams = np;
        p += align16(vsize);
        tab[i].sql_len = strlen(stmts[i].sql);
        memcpy(p, stmts[i].sql, tab[i].sql_len + 1);
        tab[i].sql = p;
        p += align16(tab[i].sql_len + 1);
    }
    q->q.batch = tab;
    q->q.nbatch = n;
    q->q.sql = tab[0].sql;
    q->q.sql_len = tab[0].sql_len;
    q->q.params = tab[0].params;
    q->q.nparams = tab[0].nparams;
    cq_start(q, opts);
    return q;
}
