/*
 * Batch execution ("executemany"): one statement run with many rows of
 * parameters, either every row as a query of its own (each with its own
 * result and its own fate) or all rows as one all-or-nothing unit with
 * one combined status. docs/postgres.md and docs/mariadb.md ("Batch
 * execution") say how each backend runs it and what a failing row leaves
 * behind.
 */
#ifndef EVDB_MANY_H
#define EVDB_MANY_H

#include <stddef.h>
#include <stdint.h>
#include "evdb/conn.h"
#include "evdb/error.h"
#include "evdb/export.h"
#include "evdb/future.h"
#include "evdb/pool.h"
#include "evdb/result.h"
#include "evdb/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the rows of an execute_many run. */
typedef enum evdb_many_mode {
    /* Every row is a query of its own, exactly as nrows separate calls of
     * evdb_conn_query would be (PostgreSQL: pipelined, one Sync per row,
     * so each row has its own implicit transaction; MariaDB: one cached
     * prepared statement executed once per row). A failing row fails
     * alone; the rows before and after it take effect. */
    EVDB_MANY_PER_ROW = 0,
    /* All rows as one unit, all or nothing, like evdb_conn_batch of the
     * same statement nrows times (PostgreSQL: one pipeline round under ONE
     * Sync; MariaDB: bulk execution, STMT_ATTR_ARRAY_SIZE, inside a
     * transaction or a savepoint). A failing row undoes every row. */
    EVDB_MANY_ATOMIC = 1
} evdb_many_mode;

/* The most parameters per row (both backends' protocol limit). */
#define EVDB_MANY_MAX_COLS 65535u
/* The most rows of an EVDB_MANY_PER_ROW call (each row is a query object
 * in memory until it completes). EVDB_MANY_ATOMIC takes EVDB_BATCH_MAX
 * (65,535) rows at most: its rows are one batch. */
#define EVDB_MANY_MAX_ROWS (1u << 24)

/* Run sql (one statement, the backend's placeholders) once per row of
 * params: a row-major array of nrows * ncols values (row r's parameter c
 * is params[r * ncols + c]; params may be NULL when ncols is 0). Every
 * value is copied before this returns. opts apply to the whole call:
 * opts->timeout covers every row (at the deadline the future fails with
 * EVDB_ETIMEDOUT and the rows still running or queued are cancelled);
 * opts->flags as for evdb_conn_query.
 *
 * EVDB_MANY_PER_ROW: the future succeeds once every row has its outcome,
 * WHATEVER that outcome: its result is the chain of the rows' results in
 * row order (evdb_result_next; a RETURNING clause's rows included), and
 * a row that failed has an empty result whose evdb_many_row_error is its
 * error (message prefixed "row K: ", K counted from 0). Count them with
 * evdb_many_failed; evdb_many_affected sums the affected rows. Every
 * other row took effect. The future fails only as a whole: timeout or
 * cancel (rows completed before it took effect; the row running may or
 * may not have; later rows did not run), a lost or closed connection
 * (as for separate queries).
 *
 * EVDB_MANY_ATOMIC: the future succeeds with ONE result whose
 * evdb_result_affected is the total over all rows; or fails with the
 * first failing row's error, its message prefixed "row K of N: "
 * (evdb_many_error_row gives K, counted from 0), and then NO row took
 * effect (on MariaDB: for tables of a transactional engine such as
 * InnoDB; inside the caller's own transaction a savepoint is rolled
 * back on MariaDB, while on PostgreSQL the caller's block is aborted as
 * with any error). Statements that cannot be part of a transaction
 * (transaction control, DDL on MariaDB) are refused as evdb_conn_batch
 * refuses them.
 *
 * Returns a future (the caller's reference), or NULL at once with
 * evdb_last_error: EVDB_EINVAL (NULL c or sql, empty sql, nrows 0, ncols
 * over EVDB_MANY_MAX_COLS, nrows over the mode's limit, params NULL with
 * ncols > 0, an unknown mode, a bad value or option), EVDB_ENOTSUP
 * (EVDB_MANY_ATOMIC on a driver without batches), EVDB_ECLOSED,
 * EVDB_ENOMEM. A parameter count that does not match the statement's
 * placeholders is the server's to find: every row (per row) or the
 * batch (atomic) fails with its error. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_conn_execute_many(evdb_conn *c, const char *sql,
                                                const evdb_value *params, size_t ncols,
                                                size_t nrows, evdb_many_mode mode,
                                                const evdb_query_opts *opts);

/* As evdb_conn_execute_many, through a pool. EVDB_MANY_PER_ROW spreads
 * the rows over the pool's connections like as many evdb_pool_query calls
 * (they may run in any order across connections; results still come in
 * row order); EVDB_MANY_ATOMIC runs on one connection like
 * evdb_pool_batch. Returns as evdb_conn_execute_many. Callable from
 * callbacks. */
EVDB_EXTERN evdb_future *evdb_pool_execute_many(evdb_pool *p, const char *sql,
                                                const evdb_value *params, size_t ncols,
                                                size_t nrows, evdb_many_mode mode,
                                                const evdb_query_opts *opts);

/* The row (counted from 0) an EVDB_MANY_ATOMIC error names, or -1 when e
 * names none (NULL, another error, a failure not tied to a row such as a
 * timeout or a deferred constraint failing at commit). */
EVDB_EXTERN long evdb_many_error_row(const evdb_error *e);

/* In an EVDB_MANY_PER_ROW result chain: the error of the row whose result
 * r is, or NULL when that row succeeded (or r is NULL, or not such a
 * row). Lives as long as r. */
EVDB_EXTERN const evdb_error *evdb_many_row_error(const evdb_result *r);

/* The rows of the chain starting at r that failed (evdb_many_row_error
 * not NULL). Walks the chain: O(rows). 0 for NULL. */
EVDB_EXTERN size_t evdb_many_failed(const evdb_result *r);

/* The sum of evdb_result_affected over the chain starting at r (results
 * without a count, -1, add nothing). Walks the chain: O(rows). 0 for
 * NULL. */
EVDB_EXTERN int64_t evdb_many_affected(const evdb_result *r);

#define EVDB_HAS_EXECUTE_MANY 1

#ifdef __cplusplus
}
#endif
#endif
