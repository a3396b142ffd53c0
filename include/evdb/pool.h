/*
 * Connection pool for services: bounded, FIFO-fair, self-healing.
 *
 * evdb_pool_query takes an idle connection, else a new one (below
 * max_conns; it waits in the pool's FIFO queue meanwhile), else pipelines
 * onto a busy PostgreSQL connection whose running statement is not stalled
 * (stall_threshold; docs/pool.md, "Routing"), else waits. A query that was never sent is never lost
 * to a broken connection: it moves to another one. Broken connections are
 * replaced, with exponential backoff while the server is down.
 *
 * evdb_pool_acquire hands out a connection exclusively (transactions);
 * evdb_conn_release gives it back, with a session reset queued ahead of
 * the next borrower's statements.
 */
#ifndef EVDB_POOL_H
#define EVDB_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "evdb/conn.h"
#include "evdb/export.h"
#include "evdb/future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evdb_pool evdb_pool;
typedef struct evdb_pool_leak evdb_pool_leak;
struct evdb_pool_query_event;

/* Zero-initialised options mean the defaults in brackets. */
typedef struct evdb_pool_opts {
    unsigned min_conns;         /* kept open even when idle [0] */
    unsigned max_conns;         /* upper bound [8] */
    double acquire_timeout;     /* seconds a query or acquire may wait for a
                                 connection [30]; the error is EVDB_EPOOLTIMEOUT */
    double connect_timeout;     /* per connection attempt [10] */
    double max_lifetime;        /* retire connections older than this [0 = never] */
    double idle_timeout;        /* close idle connections above min after this [0 = never] */
    double backoff_initial;     /* first reconnect delay after a failure [0.1] */
    double backoff_max;         /* cap of the doubling delay [5] */
    double backoff_jitter;      /* +- this fraction of each delay, at random [0.2];
                                 negative = none */
    double validate_after;      /* a connection idle this long is pinged before it
                                 is handed out [30]; negative = never */
    double close_grace;         /* evdb_pool_close lets running queries finish
                                 this long, then closes their connections [5] */
    unsigned pipeline_depth;    /* per connection (PostgreSQL) [driver default] */
    unsigned stmt_cache_size;   /* per connection [EVDB_DEFAULT_STMT_CACHE] */
    size_t max_result_bytes;    /* per query, see evdb_conn_opts [0 = no limit] */
    const char *on_connect_sql; /* run on every new connection (copied) [none] */
    /* A borrowed connection held longer than leak_threshold seconds is
     * reported once through leak_hook (called from the loop) [0 = off]. */
    double leak_threshold;
    void (*leak_hook)(const evdb_pool_leak *leak, void *arg);
    void *leak_hook_arg;
    /* Called from the loop when a pooled query starts waiting and when it
     * completes (for logging or tracing) [none]. */
    void (*query_hook)(const struct evdb_pool_query_event *ev, void *arg);
    void *query_hook_arg;
    /* Server notices of every pooled connection (see
     * evdb_conn_set_notice_hook; called from the loop) [dropped]. The
     * hook's connection is the pooled connection itself, not a borrow's
     * handle: it identifies it, and the read-only calls
     * (evdb_conn_server_id, evdb_conn_driver, ...) take it; calls that use
     * the connection refuse it (EVDB_EINVAL). */
    evdb_notice_fn notice_hook;
    void *notice_hook_arg;
    /* Seconds after which a connection's running statement (the oldest
     * it has in flight) counts as stalled: the connection then takes no
     * more pipelined queries, and those it holds unsent move to other
     * connections (docs/pool.md, "Routing"). [0 = adaptive: 8 times a
     * decaying mean of the service times the pool observes, between
     * 0.02 and 1 s]; negative = never stalled (queries pipeline onto busy
     * connections whatever runs there). Taken from the reserved tail: the
     * struct keeps its size on 64-bit platforms. */
    double stall_threshold;
    /* Connection hooks and tracing for every connection, acquire and
     * pooled query of the pool (evdb/hooks.h), or NULL. Copied by
     * evdb_pool_new. on_connect_sql runs before hooks->on_connect. Taken
     * from the reserved tail: the struct keeps its size. */
    const struct evdb_hooks *hooks;
    /* While no connection can be made (every connect attempt fails: a
     * server restarting, a failover between a primary and its standby,
     * docs/scale-out.md), queries and acquires waiting for a connection
     * fail at once with the connect error [0]. Positive: they are held
     * through the outage instead, and one fails only at the first failed
     * attempt after it has waited this many seconds (or at
     * acquire_timeout, with EVDB_EPOOLTIMEOUT), so a pool over a host
     * list carries its waiting queries over to the new primary. Taken
     * from the reserved tail: the struct keeps its size on 64-bit
     * platforms. */
    double outage_wait;
} evdb_pool_opts;

typedef enum evdb_pool_query_phase {
    EVDB_POOL_QUERY_START = 0, /* submitted (sql set) */
    EVDB_POOL_QUERY_END = 1    /* completed (status and duration set) */
} evdb_pool_query_phase;

/* What query_hook is told. Pointers live only during the call. */
typedef struct evdb_pool_query_event {
    evdb_pool_query_phase phase;
    const char *sql;     /* START only; NULL at END */
    evdb_future *future; /* the query's future (borrowed) */
    double duration;     /* END: seconds since START */
    int status;          /* END: 0 or the negative code */
} evdb_pool_query_event;

/* What leak_hook is told about a connection held too long. */
struct evdb_pool_leak {
    evdb_conn *conn; /* the borrower's handle (as evdb_pool_acquire
                                  gave it; usable like it) */
    double held_seconds;
    const char *acquired_file; /* call site of evdb_pool_acquire, or "?" */
    int acquired_line;
    const char *current_sql; /* statement running on it, or NULL */
};

#define EVDB_POOL_DEFAULT_MAX 8u
#define EVDB_POOL_DEFAULT_ACQUIRE_TIMEOUT 30.0

typedef struct evdb_pool_stats {
    unsigned total; /* open or opening connections */
    unsigned opening;
    unsigned idle;     /* ready with nothing to do */
    unsigned busy;     /* ready and running queries */
    unsigned acquired; /* handed out by evdb_pool_acquire */
    size_t waiting;    /* queries + acquires waiting for a connection */
    uint64_t connects; /* successful connects so far */
    uint64_t connect_failures;
    uint64_t broken;        /* connections lost */
    uint64_t resets;        /* released connections reset and reused */
    uint64_t discarded;     /* released connections closed instead */
    uint64_t retired;       /* closed for lifetime / idle timeout */
    uint64_t pool_timeouts; /* queries and acquires that waited longer than
                               acquire_timeout (EVDB_EPOOLTIMEOUT) */
    uint64_t leaks;         /* leak_hook reports */
    /* Pooled queries (evdb_pool_query) submitted, and how they ended.
     * Every query is counted once when it ends, whatever the stage (in
     * the pool's queue, queued on a connection, running, lost with its
     * connection, refused by the driver, failed by evdb_pool_close): ok,
     * or in query_errors. Once none is outstanding,
     * queries = ok + query_errors. Queries run on a borrowed connection
     * (evdb_pool_acquire) and the pool's own statements (reset,
     * validation, on_connect_sql) are not counted. */
    uint64_t queries;        /* submitted through evdb_pool_query */
    uint64_t query_errors;   /* ended with an error: timeouts, cancels and
                              pool timeouts included */
    uint64_t query_timeouts; /* of them: EVDB_ETIMEDOUT (opts.timeout) */
    uint64_t validations;    /* idle connections pinged before use */
    uint64_t validation_failures;
    /* How long queries and acquires waited for a connection: < 1 ms,
     * < 10 ms, < 100 ms, < 1 s, < 10 s, longer. */
    uint64_t wait_hist[6];
    /* Why the last released connection was discarded instead of reset
     * ("connection broken", "reset failed: <message>"), or "" (static or
     * pool-owned: valid until the next pool call). */
    const char *last_discard_reason;
    uint64_t query_cancels; /* of query_errors: EVDB_ECANCELED (the caller
                               cancelled it: evdb_future_cancel, a race or
                               fail-fast gather, evdb_timeout) */
    /* Room for counters added later: they take from this tail, so the
     * struct keeps its size and every field its offset (a program built
     * against these headers keeps working with a later library). Zero. */
    uint64_t reserved[7];
} evdb_pool_stats;

/* Create a pool for url (as evdb_conn_open takes). Opens min_conns at
 * once, in the background. Returns NULL at once for bad arguments
 * (evdb_last_error). The URL and options are copied. Callable from
 * callbacks. */
EVDB_EXTERN evdb_pool *evdb_pool_new(struct ev_loop *loop, const char *url,
                                     const evdb_pool_opts *opts);

/* As evdb_conn_batch, on a pooled connection (one connection runs the
 * whole batch; it never leaves a transaction open). Returns a future of the
 * chained results, or NULL at once as evdb_conn_batch. Callable from
 * callbacks. */
EVDB_EXTERN evdb_future *evdb_pool_batch(evdb_pool *p, const evdb_stmt *stmts, size_t n,
                                         const evdb_query_opts *opts);

/* As evdb_conn_query, on a pooled connection, in autocommit mode: the
 * connection is shared with other requests' queries, so a query may not
 * leave it inside a transaction block. BEGIN / START TRANSACTION (and
 * their likes) fail with EVDB_EINVAL before they are sent, pointing to
 * evdb_pool_acquire / evdb_pool_transaction; a query that ends inside a
 * block anyway (several statements in one string) is rolled back before
 * anything else runs on that connection and fails with EVDB_EINVAL.
 * The query's own timeout
 * (opts->timeout) covers the whole operation: pool wait, connect, execute.
 * While waiting for a connection the acquire timeout applies too
 * (EVDB_EPOOLTIMEOUT). Returns a future of an evdb_result, or NULL at
 * once (bad arguments, closed pool). */
EVDB_EXTERN evdb_future *evdb_pool_query(evdb_pool *p, const char *sql, const evdb_value *params,
                                         size_t nparams, const evdb_query_opts *opts);

/* Borrow a connection exclusively (for a transaction). timeout <= 0 means
 * the pool's acquire timeout. The future hands over a handle of this
 * borrow with evdb_future_take_conn: an evdb_conn for every evdb_conn_*
 * call, valid until evdb_conn_release. Each borrow has a handle of its
 * own (not the pooled connection's address, and never one used before),
 * so a handle kept after its release never reaches the connection, which
 * may be lent out again meanwhile: every call on it fails with EVDB_EINVAL
 * ("stale connection handle") and touches no connection. Give the
 * connection back with evdb_conn_release. If the future is destroyed
 * without the handle being taken, the connection goes back to the pool.
 * Returns NULL at once for bad arguments or a closed pool. */
EVDB_EXTERN evdb_future *evdb_pool_acquire(evdb_pool *p, double timeout);

/* evdb_pool_acquire recording its call site for leak reports and dumps;
 * the macro below makes every evdb_pool_acquire call do this. */
EVDB_EXTERN evdb_future *evdb_pool_acquire_at(evdb_pool *p, double timeout, const char *file,
                                              int line);
#define evdb_pool_acquire(p, timeout) evdb_pool_acquire_at((p), (timeout), __FILE__, __LINE__)

/* The user's part of a transaction: given the borrowed connection's handle
 * (valid until the transaction ends; the helper releases it, fn must
 * not), submit statements and return a future that completes when they
 * are done (the last query's future, a gather, ...); the helper takes that
 * reference. Return NULL to fail the transaction at once. Runs from the
 * loop. */
typedef evdb_future *(*evdb_txn_fn)(evdb_conn *c, void *arg);

/* Run a transaction: acquire, BEGIN, fn, then COMMIT when fn's future
 * succeeded or ROLLBACK when it failed, then release. On PostgreSQL fn is
 * called right after BEGIN is submitted, so BEGIN leaves in the same write
 * as fn's first statements. The returned future completes after
 * COMMIT/ROLLBACK with fn's outcome (its result is read through
 * evdb_future_result), or fails with the acquire, BEGIN or COMMIT error.
 * timeout <= 0: the pool's acquire timeout for the acquire. NULL at once
 * for bad arguments. Callable from callbacks. Options (isolation, read
 * only, retries), static transactions and savepoints: evdb/txn.h
 * (evdb_pool_transaction_opts is this call with options). */
EVDB_EXTERN evdb_future *evdb_pool_transaction(evdb_pool *p, evdb_txn_fn fn, void *arg,
                                               double timeout);

/* Give back a connection from evdb_pool_acquire, by the handle it gave.
 * Queries still running on it are left to finish. A session reset is then
 * queued on the connection and the connection is ready again at once: the
 * next borrower's (or pooled) statements queue behind the reset
 * (PostgreSQL: pipelined with it), nobody waits for it by itself. The
 * reset rolls back an open or failed transaction and clears settings,
 * role, temporary tables, cursors, LISTEN, advisory or named locks,
 * sequence state and SQL-level PREPAREs (docs/pool.md lists it per
 * backend). PostgreSQL keeps the statements evdb prepared (and so its
 * statement cache); MariaDB's COM_RESET_CONNECTION drops them and the
 * driver prepares them again on first use. A reset that fails drops the
 * connection: statements already sent behind it do not run (they fail),
 * a borrower's statements not yet sent fail, pooled ones move to another
 * connection. Returns 0, or EVDB_EINVAL for anything but the handle of a
 * live borrow: a handle released already (a second release, also after
 * the connection was lent out again: it never releases the new
 * borrower's), a connection of evdb_conn_open. From then on c is stale:
 * every call on it fails with EVDB_EINVAL. Callable from callbacks. */
EVDB_EXTERN int evdb_conn_release(evdb_conn *c);

/* As evdb_conn_release, without the session reset: the borrower vouches
 * that it left nothing behind in the session (no SET but SET LOCAL, no
 * temporary table, cursor WITH HOLD, LISTEN, session-level advisory or
 * named lock, role change, SQL-level PREPARE, user variable). Only an
 * open transaction is ended, and nothing is sent when none can be open:
 * PostgreSQL sends the ROLLBACK only when a block may be open after what
 * the borrower sent, MariaDB only when the server's last answer says a
 * transaction is open or autocommit is off. Nothing checks the promise: what the
 * borrower left is seen by the next one (pgx and HikariCP do not reset
 * session state either). It saves the reset's server work (PostgreSQL:
 * nine statements, docs/pool.md "What a release resets and what it
 * keeps").
 * Returns and fails as evdb_conn_release; the handle is stale
 * afterwards. Callable from callbacks. */
EVDB_EXTERN int evdb_conn_release_no_reset(evdb_conn *c);

/* Write one line per connection to out: state, age, queries, and for
 * borrowed ones how long they are held, the acquire call site and the
 * current SQL. Never prints the URL. Callable from callbacks. */
EVDB_EXTERN void evdb_pool_dump(const evdb_pool *p, FILE *out);

/* Fill *out with the pool's counters. */
EVDB_EXTERN void evdb_pool_stats_get(const evdb_pool *p, evdb_pool_stats *out);

/* Close: waiting queries and acquires fail with EVDB_ECLOSED, idle
 * connections close at once, busy ones when their queries finish (after
 * close_grace seconds their connections are closed and what still runs
 * fails with EVDB_ECLOSED), borrowed ones when released. The future
 * completes when every connection is gone and the pool's resources are
 * freed. After this call, p only refuses: while the returned future lives,
 * a second close, a query or an acquire returns NULL with EVDB_ECLOSED;
 * once that future is destroyed, p is gone and must not be used. Returns
 * NULL for NULL or a second close. */
EVDB_EXTERN evdb_future *evdb_pool_close(evdb_pool *p);

#ifdef __cplusplus
}
#endif
#endif
