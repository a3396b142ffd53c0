/*
 * How a pool and its connections work together (src/pool.c, src/conn.c,
 * src/pool_reset.c, src/pool_txn.c, src/listen.c): the connection's side
 * that only a pool uses (routing by head age, moving unsent queries, the
 * owner's callbacks, borrow handles), and the pool's side that the
 * connection, the transaction helper and the listener call. Queries
 * themselves are in query.h.
 */
#ifndef EVDB_POOL_CONN_H
#define EVDB_POOL_CONN_H

#include "query.h"

/* How long the query at the head of c's in-flight list (the one the
 * server is running) has been the head, at time now; 0 when nothing is in
 * flight. */
double evdb__conn_head_age(const evdb_conn *c, double now);
/* The service time of the head that completed last (seconds from becoming
 * the head to completing), once: negative when there is no new one. */
double evdb__conn_take_service(evdb_conn *c);
/* Move every pooled query (evdb_pool_query / _batch) on c that has not
 * reached the wire to the tail of out, oldest first: from the pending
 * list, and the tail of what the driver holds unsent (driver slot
 * take_unsent). Never the head, never a borrower's statement or the pool's
 * reset: those belong to c's session and stay, in order. The queries keep their
 * futures and timers; the caller re-routes them. Returns how many moved
 * (0 while c is inside a driver step or not ready). */
size_t evdb__conn_take_unsent(evdb_conn *c, evdb__qlist *out);

/* The pool a connection belongs to, told about its connections' events. */
typedef struct evdb__conn_owner {
    /* c has room for more queries: a query completed, or the driver
     * refused one. */
    void (*room)(void *owner, evdb_conn *c);
    /* c broke; its unsent queries are handed over in order (the owner
     * takes the list and re-routes them). */
    void (*broken)(void *owner, evdb_conn *c, evdb__qlist *unsent, const evdb_error *err);
} evdb__conn_owner;
void evdb__conn_set_owner(evdb_conn *c, const evdb__conn_owner *ops, void *owner);
/* A pool's borrow handle: what evdb_pool_acquire hands out instead of the
 * pooled connection (pool.c, "borrow handles"). An odd number, never an
 * address: a connection's own pointer is never mistaken for one, and
 * nothing may read through one. */
static inline bool evdb__is_borrow_handle(const evdb_conn *h)
{
    return ((uintptr_t)h & 1u) != 0;
}
/* pool.c: the connection lent out under handle h now, or NULL (released:
 * a stale handle). */
evdb_conn *evdb__pool_borrowed(const evdb_conn *h);
/* evdb_conn_query on the connection itself, without a handle (the pool's
 * own reset, validation and on-connect statements). */
evdb_future *evdb__conn_query(evdb_conn *c, const char *sql, const evdb_value *params,
                              size_t nparams, const evdb_query_opts *opts);
/* conn.c: evdb_conn_open with hooks hk (taken: freed on failure too;
 * NULL: none) and pre_sql (a pool's on_connect_sql, copied; NULL: none),
 * run on the new connection before hk's on_connect, its failure failing
 * the connect. */
typedef struct evdb__hk evdb__hk;
evdb_future *evdb__conn_open_hk(struct ev_loop *loop, const char *url, const evdb_conn_opts *opts,
                                evdb__hk *hk, const char *pre_sql);
/* SQL of the statement running (or next to run) on c, or NULL. */
const char *evdb__conn_current_sql(const evdb_conn *c);
/* Close without the pool check of evdb_conn_close. */
evdb_future *evdb__conn_close(evdb_conn *c);

/* pool.c: a query waiting in a pool was given up (timeout/cancel). */
void evdb__pool_forget(evdb_pool *p, evdb__cq *q);
/* pool.c: the loop the pool runs on (for pool_txn.c). */
evdb__loop *evdb__pool_loop(const evdb_pool *p);
/* pool.c: the driver of the pool's URL (never NULL: evdb_pool_new
 * refuses a URL without one). */
const evdb__driver *evdb__pool_drv(const evdb_pool *p);
bool evdb__pool_usable(const evdb_pool *p, const char *who);
/* pool.c: the pool's URL and its options, defaults filled in (for a
 * listener opened from the pool, src/listen.c). */
const char *evdb__pool_url(const evdb_pool *p, const evdb_pool_opts **opts);
/* future.c / result.c, for pool_txn.c. */
evdb_result *evdb__future_take_result(evdb_future *f);
evdb_result *evdb__result_drop_first(evdb_result *r);
/* pool_reset.c: queue the session reset of a released pooled connection
 * on c (which must be ready) and return its future, or NULL with the last
 * error set. What it cleans and keeps is the driver's (evdb__driver.reset;
 * PostgreSQL: drivers/postgres/pg_reset.c). */
evdb_future *evdb__pool_reset(evdb_conn *c, bool session);
/* pool.c: count a pooled query's outcome (status: 0 or its error) in the
 * pool's stats. Called once per query: from evdb__cq_free, or when it is
 * given up on while in flight (then marked cancel_requested). */
void evdb__pool_count(evdb_pool *p, int status);

#endif
