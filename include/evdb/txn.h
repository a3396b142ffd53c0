/*
 * Transactions: options (isolation level, read only, deferrable), retries
 * of serialization failures and deadlocks, static transactions sent in one
 * round trip, and savepoints. docs/pool.md ("Transactions") tells when to
 * use which.
 */
#ifndef EVDB_TXN_H
#define EVDB_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include "evdb/conn.h"
#include "evdb/export.h"
#include "evdb/future.h"
#include "evdb/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum evdb_isolation {
    EVDB_ISOLATION_DEFAULT = 0,      /* the server's (session's) default */
    EVDB_ISOLATION_READ_UNCOMMITTED, /* MariaDB; PostgreSQL runs it as read committed */
    EVDB_ISOLATION_READ_COMMITTED,
    EVDB_ISOLATION_REPEATABLE_READ,
    EVDB_ISOLATION_SERIALIZABLE
} evdb_isolation;

/* Options of a transaction. Zero-initialised options mean the defaults in
 * brackets: a plain BEGIN, run once. */
typedef struct evdb_txn_opts {
    evdb_isolation isolation; /* [EVDB_ISOLATION_DEFAULT] */
    bool read_only;           /* writes fail inside it [false] */
    /* PostgreSQL: with serializable and read_only, wait for a snapshot
     * that cannot fail with a serialization error. MariaDB has no such
     * mode: the transaction fails with EVDB_ENOTSUP before anything is
     * sent [false]. */
    bool deferrable;
    /* How many times the whole transaction may run [1 = no retry]. A run
     * that fails with a retryable error (evdb_error_is_retryable:
     * SQLSTATE 40001 serialization failure, 40P01 deadlock; MariaDB 1213
     * deadlock, 1205 lock wait timeout), at any statement or at COMMIT,
     * is rolled back and run again from the start, on a connection
     * borrowed afresh, after a jittered backoff: fn (or the statements of
     * a static transaction) must therefore be safe to run again. Any
     * other error ends the transaction at once. When every attempt
     * failed, the error is the last one, its message prefixed "after N
     * attempts: " (code, SQLSTATE and driver code stay the last
     * attempt's). */
    unsigned max_attempts;
    double backoff_initial; /* seconds before the second attempt, doubling
                               after each, +-50% at random [0.005] */
    double backoff_max;     /* cap of that delay [0.5] */
    /* Pool only: seconds the acquire may wait for a connection [the
     * pool's acquire timeout]. */
    double acquire_timeout;
    /* Pool only: fn (or the static transaction's statements) leaves no
     * session state behind, so the connection goes back without the
     * session reset (evdb_conn_release_no_reset: only an unended
     * transaction is rolled back; nothing checks the promise) [false].
     * Taken from the reserved tail: the struct keeps its size. */
    bool no_reset;
    void *reserved[3];
} evdb_txn_opts;

/* evdb_pool_transaction with options (NULL = defaults, as
 * evdb_pool_transaction). Borrows a connection; on PostgreSQL sends BEGIN
 * with the options and calls fn at once, without waiting for BEGIN's
 * answer, so BEGIN goes out in the same write as fn's first statements
 * (MariaDB has no pipelining: there fn is called once START TRANSACTION
 * succeeded, which costs no extra round trip). Then COMMIT when fn's
 * future succeeded, ROLLBACK when it failed, and the connection goes back
 * to the pool. The returned future completes after COMMIT/ROLLBACK with
 * fn's outcome (its result is read through evdb_future_result), or fails
 * with the acquire, BEGIN or COMMIT error; a failed BEGIN fails the
 * transaction even when fn's statements succeeded. With
 * opts->max_attempts > 1 retryable failures run it again (see
 * evdb_txn_opts). Cancelling the future rolls the transaction back.
 * Returns NULL at once for bad arguments (evdb_last_error). The options
 * are copied. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_pool_transaction_opts(evdb_pool *p, evdb_txn_fn fn, void *arg,
                                                    const evdb_txn_opts *opts);

/* A static transaction: statements known up front, sent in one round trip
 * on PostgreSQL (an explicit batch under one Sync: one implicit
 * transaction; with options it begins with SET TRANSACTION carrying them),
 * all or nothing: a failure anywhere (a deferred constraint or a
 * serialization failure at commit included) rolls every statement back
 * and fails the future with that statement's error ("batch statement K
 * of N: ..."). MariaDB runs the same batch inside START TRANSACTION ...
 * COMMIT, a round trip per statement (the protocol has no pipelining),
 * preceded by SET TRANSACTION when there are options. The future's result
 * is the chain of the statements' results, in order, as evdb_pool_batch
 * gives it (evdb_result_next). The pool needs no borrow for it unless
 * MariaDB options need SET TRANSACTION on the same connection. Retries as
 * evdb_txn_opts says. stmts (1..EVDB_BATCH_MAX) and their parameters are
 * copied. NULL at once for bad arguments. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_pool_transaction_batch(evdb_pool *p, const evdb_stmt *stmts, size_t n,
                                                     const evdb_txn_opts *opts);

/* As evdb_pool_transaction_batch on a connection of evdb_conn_open or a
 * borrowed one (its handle). Meant for a connection outside a transaction
 * block: inside the caller's own block the statements become part of it
 * (PostgreSQL) or run in a savepoint (MariaDB), and options fail on the
 * server there. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_conn_transaction_batch(evdb_conn *c, const evdb_stmt *stmts, size_t n,
                                                     const evdb_txn_opts *opts);

/* A savepoint inside a transaction already open on c (within fn of
 * evdb_pool_transaction, or after BEGIN on a borrowed connection): sends
 * SAVEPOINT with a name of its own, calls fn(c, arg) at once (its
 * statements follow the SAVEPOINT in the same write on PostgreSQL), then
 * RELEASE SAVEPOINT when fn's future succeeded or ROLLBACK TO SAVEPOINT
 * when it failed: fn's work is undone alone and the outer transaction goes
 * on. Savepoints nest (fn may call evdb_conn_savepoint). The returned
 * future completes after RELEASE / ROLLBACK TO with fn's outcome (or the
 * SAVEPOINT / RELEASE error). fn's future reference is taken over, as in
 * evdb_pool_transaction. NULL at once for bad arguments. Callable from
 * callbacks (it is meant to be called from fn). */
EVDB_EXTERN evdb_future *evdb_conn_savepoint(evdb_conn *c, evdb_txn_fn fn, void *arg);

/* The body of a transaction run as a task (include/evdb/task.h): it
 * awaits each statement on c (evdb_await) and returns the task's value, or
 * fails it (evdb_task_fail / evdb_task_fail_error) to roll back. */
typedef void *(*evdb_txn_task_fn)(evdb_conn *c, void *arg);

/* evdb_pool_transaction_opts with fn run as a task: the natural form of an
 * interactive transaction, one statement awaited after the other:
 *
 *     static void *transfer(evdb_conn *c, void *arg)
 *     {
 *         evdb_future *q = evdb_conn_query(c, "UPDATE ...", p, 2, NULL);
 *         if (evdb_await(q) != 0)
 *             return evdb_task_fail_error(evdb_future_error(q)); // ROLLBACK
 *         ...
 *         return NULL;                                            // COMMIT
 *     }
 *     evdb_future *t = evdb_pool_transaction_task(pool, transfer, &args, NULL);
 *     evdb_await(t);
 *
 * The task starts right after BEGIN is submitted (PostgreSQL: its first
 * statement goes out with BEGIN). The returned future completes after
 * COMMIT / ROLLBACK with the task's outcome (its value through
 * evdb_future_value). With retries the task runs again from the start.
 * Same arguments, returns and rules as evdb_pool_transaction_opts;
 * callable from callbacks and tasks. */
EVDB_EXTERN evdb_future *evdb_pool_transaction_task(evdb_pool *p, evdb_txn_task_fn fn, void *arg,
                                                    const evdb_txn_opts *opts);

#define EVDB_HAS_TXN 1

#ifdef __cplusplus
}
#endif
#endif
