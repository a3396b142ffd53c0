/*
 * Query objects: creation (argument checks, one-block copy of SQL and
 * parameters), the lists they move through, and their release.
 */
#include <string.h>

#include "query.h"

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
    evdb__timer_free(q->timer);
    evdb_future_unref(q->f);
    evdb__obj_free(q, q->block_size);
}

/* Defined in conn.c: the timer and cancel handlers know about every list a
 * query can be on. */
void evdb__cq_timed_out(void *arg);
extern const evdb__future_ops evdb__cq_ops;

evdb__cq *evdb__cq_new(evdb__loop *l, const char *who, const char *sql, const evdb_value *params,
                       size_t nparams, const evdb_query_opts *opts)
{
    if (!sql) {
        evdb__fail_now(EVDB_EINVAL, "%s: sql is NULL", who);
        return NULL;
    }
    size_t sql_len = strlen(sql);
    if (sql_len == 0 || sql_len > EVDB_VALUE_MAX_LEN) {
        evdb__fail_now(EVDB_EINVAL, "%s: sql is empty or over 1 GiB", who);
        return NULL;
    }
    if (evdb__values_check(params, nparams))
        return NULL;
    if (opts && !(opts->timeout >= 0)) {
        evdb__fail_now(EVDB_EINVAL, "%s: timeout must be >= 0", who);
        return NULL;
    }
    bool timed = opts && opts->timeout > 0;
    /* One block: the query, its parameters and their payloads, the SQL. */
    size_t head = (sizeof(evdb__cq) + 15) & ~(size_t)15;
    size_t vsize = evdb__values_size(params, nparams);
    size_t size = head + vsize + sql_len + 1;
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
    char *sql_copy = (char *)q + head + vsize;
    memcpy(sql_copy, sql, sql_len + 1);
    q->q.sql = sql_copy;
    q->q.sql_len = sql_len;
    q->q.params = nparams ? evdb__values_copy_into((char *)q + head, params, nparams) : NULL;
    q->q.nparams = nparams;
    q->q.flags = opts ? opts->flags : 0;
    q->q.timeout = opts ? opts->timeout : 0;
    q->f = evdb_future_ref(f);
    q->timer = t;
    if (t) {
        q->timeout = opts->timeout;
        evdb__timer_start(t, opts->timeout);
    }
    evdb__future_set_op(f, &evdb__cq_ops, q);
    return q;
}
