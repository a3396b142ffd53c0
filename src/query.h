/*
 * A submitted query as the core keeps it, and the intrusive lists it moves
 * through: a pool's wait queue, a connection's pending list, a connection's
 * in-flight list. The object is allocated once at submission (SQL and
 * parameters copied into the same block) and moves between lists without
 * copying, so a query that was never sent can move to another connection.
 */
#ifndef EVDB_QUERY_H
#define EVDB_QUERY_H

#include "internal.h"

typedef struct evdb_pool evdb_pool;

typedef enum evdb__qwhere {
    EVDB__Q_POOL,    /* waiting in a pool for a connection */
    EVDB__Q_PENDING, /* on a connection, not yet handed to the driver */
    EVDB__Q_INFLIGHT /* handed to the driver */
} evdb__qwhere;

typedef struct evdb__cq evdb__cq;
struct evdb__cq {
    evdb__query q; /* first: drivers hand back &q */
    evdb_future *f;
    evdb_conn *conn; /* when PENDING or INFLIGHT */
    evdb_pool *pool; /* when submitted through a pool */
    evdb__cq *prev, *next;
    evdb__timer *timer;
    double timeout;
    double pool_deadline; /* when waiting in a pool: acquire deadline */
    evdb__qwhere where;
    bool cancel_started;
    void *trace_ctx;   /* evdb_query_opts.trace_ctx, for its trace events */
    size_t block_size; /* of this one-block allocation (evdb__obj_free) */
};

typedef struct evdb__qlist {
    evdb__cq *head, *tail;
    size_t n;
} evdb__qlist;

void evdb__qlist_push(evdb__qlist *l, evdb__cq *q);
void evdb__qlist_push_front(evdb__qlist *l, evdb__cq *q);
void evdb__qlist_remove(evdb__qlist *l, evdb__cq *q);

/* Validate arguments and build a query with its future (one reference for
 * the caller, one held by the query). NULL with the last error set. The
 * query's timer (opts->timeout) is started here: the deadline covers queue
 * time too. */
evdb__cq *evdb__cq_new(evdb__loop *l, const char *who, const char *sql, const evdb_value *params,
                       size_t nparams, const evdb_query_opts *opts);
/* The query flags callers may pass (evdb_query_opts.flags); the others
 * are evdb's own (drivers/driver.h). */
#define EVDB__QUERY_PUBLIC_FLAGS                                                                   \
    (EVDB_QUERY_NO_PIPELINE | EVDB_QUERY_NO_CACHE | EVDB_QUERY_READ_ONLY)
/* For the public entry points: 0, or EVDB_EINVAL with the last error set
 * when opts->flags holds a bit that is not a public flag (an internal one
 * would change what the query is: a session reset, a prepare). */
int evdb__check_query_flags(const char *who, const evdb_query_opts *opts);

/* The same for an explicit batch of n statements (evdb_conn_batch): one
 * query object whose evdb__query.batch holds copies of every statement. */
evdb__cq *evdb__cq_new_batch(evdb__loop *l, const char *who, const evdb_stmt *stmts, size_t n,
                             const evdb_query_opts *opts);
void evdb__cq_free(evdb__cq *q);

/* conn.c, for streams (src/stream.c): the connection behind h when it
 * takes a streamed query now (its driver streams, it is ready); NULL with
 * the last error set. evdb__cq_kick: an io step on q's connection soon,
 * when q is in flight (a paused stream resumed). */
evdb_conn *evdb__conn_for_stream(evdb_conn *h, const char *who);
void evdb__cq_kick(evdb__cq *q);
/* pool.c: route q like a pooled query (the caller checked the pool). */
evdb_future *evdb__pool_submit(evdb_pool *p, evdb__cq *q);

/* conn.c: put q on c's pending list and schedule a send. */
void evdb__conn_submit(evdb_conn *c, evdb__cq *q);
/* Queries on c not yet completed (pending + in flight). */
size_t evdb__conn_load(const evdb_conn *c);
unsigned evdb__conn_depth(const evdb_conn *c);
bool evdb__conn_ready(const evdb_conn *c);
evdb__loop *evdb__conn_loop(const evdb_conn *c);
/* The driver of h (a connection or a live borrow handle), for what the
 * core asks of drivers beyond I/O (reset, transaction dialect); NULL with
 * the error set (who: the caller's name) when h names none. */
const evdb__driver *evdb__conn_drv(const evdb_conn *h, const char *who);

/* conn.c: run a driver step on c soon, without a socket event (a COPY's
 * data or its end arrived, or its reader caught up); evdb__cq_kick is the
 * same for q's connection while q is in flight. */
void evdb__conn_kick(evdb_conn *c);
/* conn.c: submit sql as a COPY whose data goes through cp (evdb__query.copy)
 * on h (checked as evdb_conn_query checks it, plus EVDB_ENOTSUP for a
 * driver without COPY). Returns the query's future (the caller's
 * reference) with *out the connection, or NULL with the last error set. */
evdb_future *evdb__conn_copy(evdb_conn *h, const char *who, const char *sql,
                             const evdb_query_opts *opts, evdb__copy *cp, evdb_conn **out);
/* copy.c: the query carrying cp is freed (the driver is done with it). */
void evdb__copy_query_freed(evdb__copy *cp);

#endif
