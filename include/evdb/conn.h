/*
 * Connections. One connection is one server session, driven by the loop it
 * was opened on. Queries submitted while others run wait in the
 * connection's queue (PostgreSQL pipelines them, up to a bounded depth);
 * each gets its own future and its own result, in submission order.
 */
#ifndef EVDB_CONN_H
#define EVDB_CONN_H

#include <stddef.h>
#include <stdint.h>
#include "evdb/export.h"
#include "evdb/future.h"
#include "evdb/value.h"

#ifdef __cplusplus
extern "C" {
#endif

struct evdb_hooks;

/* Options for evdb_conn_open. A zero-initialised struct means defaults. */
typedef struct evdb_conn_opts {
    /* Seconds for the whole connect (DNS, TCP, TLS, authentication).
     * 0 = EVDB_DEFAULT_CONNECT_TIMEOUT; negative = no limit. */
    double connect_timeout;
    /* Most queries in flight at once (PostgreSQL pipelining). 0 = the
     * driver's default; 1 = no pipelining. MariaDB always uses 1. */
    unsigned pipeline_depth;
    /* Prepared statements kept per connection for repeated SQL.
     * 0 = EVDB_DEFAULT_STMT_CACHE; EVDB_STMT_CACHE_OFF disables it. */
    unsigned stmt_cache_size;
    /* Reserved for connection flags; none is defined yet. Keep zero: any
     * bit set fails evdb_conn_open with EVDB_EINVAL. */
    unsigned flags;
    /* Most bytes one query's result may occupy in memory, as evdb stores
     * it (values, their lengths, column names; its buffers grow by
     * doubling, so up to about twice this may be allocated before a result
     * is dropped). A larger result fails its
     * query with EVDB_ETOOBIG; the rest of its rows are read from the
     * server and dropped as they arrive, so memory stays bounded, and the
     * connection stays usable. The rows are fetched one at a time while a
     * limit is set (PostgreSQL single-row mode, MariaDB unbuffered
     * reads), which costs some speed on large results. For a multi-
     * statement query the limit covers all its results together.
     * 0 = no limit. */
    size_t max_result_bytes;
    /* Connection hooks and tracing (evdb/hooks.h), or NULL. Copied by
     * evdb_conn_open: the struct need not outlive the call. Taken from
     * the reserved tail: the struct keeps its size. */
    const struct evdb_hooks *hooks;
    /* Reserved for future options; keep zero. */
    void *reserved[2];
} evdb_conn_opts;

#define EVDB_DEFAULT_CONNECT_TIMEOUT 10.0
#define EVDB_DEFAULT_STMT_CACHE 64u
#define EVDB_STMT_CACHE_OFF ((unsigned)-1)

/* Options for one query. A zero-initialised struct means defaults. */
typedef struct evdb_query_opts {
    /* Seconds from submission (queue time included) to completion. At the
     * deadline the future fails with EVDB_ETIMEDOUT and the query is
     * cancelled on the server. 0 = no timeout. */
    double timeout;
    /* EVDB_QUERY_* flags; any other bit fails the call with EVDB_EINVAL. */
    unsigned flags;
    /* The caller's pointer for tracing (a span context, say): handed back
     * as evdb_trace_event.trace_ctx in this query's QUERY_START and
     * QUERY_END events (evdb/hooks.h); evdb never reads it. Taken from
     * the reserved tail: the struct keeps its size. */
    void *trace_ctx;
    void *reserved[1];
} evdb_query_opts;

/* Send this query only when nothing else is in flight on its connection
 * (no pipelining around it). Every query has its own Sync, and so its own
 * implicit transaction, whether or not this is set. */
#define EVDB_QUERY_NO_PIPELINE 0x1u
/* Do not use (or fill) the prepared-statement cache for this query. */
#define EVDB_QUERY_NO_CACHE 0x2u
/* A read that may run on a read replica: evdb_cluster_query routes it to
 * one (evdb/cluster.h); evdb_conn_query and evdb_pool_query accept it and
 * ignore it. */
#define EVDB_QUERY_READ_ONLY 0x4u

/* Open a connection. url: "postgresql://user:pw@host:port/db?opt=v",
 * "postgres://...", a libpq keyword string ("host=... dbname=..."),
 * "mariadb://user:pw@host:port/db?opt=v" or "mysql://...". Nonblocking end to
 * end (see the docs for DNS). opts may be NULL. Returns a future that, once
 * ok, hands over the connection with evdb_future_take_conn; NULL at once
 * for NULL/unknown-scheme/malformed arguments (evdb_last_error says why).
 * The URL is copied. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_conn_open(struct ev_loop *loop, const char *url,
                                        const evdb_conn_opts *opts);

/* Submit sql with nparams typed parameters ($1.. for PostgreSQL, ? for
 * MariaDB; never interpolated into the SQL). sql and every parameter are
 * copied before this returns. Without parameters, sql may hold several
 * statements (see evdb_result_next). Returns a future of an evdb_result, or
 * NULL at once (EVDB_EINVAL, EVDB_ENOMEM, EVDB_ECLOSED for a closing
 * connection). Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_conn_query(evdb_conn *c, const char *sql, const evdb_value *params,
                                         size_t nparams, const evdb_query_opts *opts);

/* Prepare sql on the server now and pin it in c's statement cache: later
 * evdb_conn_query calls with the same sql (byte for byte) and parameters
 * of the same kinds use the prepared statement, and it is never evicted
 * while pinned, however many other statements pass through the cache
 * (pinned statements do not count against stmt_cache_size).
 *
 * params says which statement: their types matter, their values are
 * ignored, exactly as evdb_conn_query would send them. PostgreSQL fixes
 * the type of bool and bytes parameters at prepare time; null, int,
 * double and text parameters are typed by the server from their context.
 * So params may be NULL: the statement then gets one parameter per
 * placeholder ($1, $2, ...), which is the statement of queries whose
 * parameters are all null, int, double or text. A query with a bool or
 * bytes parameter needs a statement prepared with the same kinds (pass
 * sample values); otherwise it still runs, through an unpinned statement.
 *
 * Returns a future of a result with no rows whose columns (names, types)
 * are the statement's result columns; it fails like a query would (a
 * syntax error: EVDB_ESERVER with SQLSTATE 42601). Queued in order with
 * c's queries, with opts applied like a query's (timeout). NULL at once:
 * EVDB_ENOTSUP when the driver cannot (MariaDB: not yet), EVDB_EINVAL,
 * EVDB_ECLOSED / EVDB_ECONNLOST. The future fails with EVDB_ENOTSUP when
 * c's statement cache is off (EVDB_STMT_CACHE_OFF), EVDB_EINVAL for
 * statements that are never cached (transaction control, schema changes
 * (ALTER, CREATE, DROP), CALL, DO, COPY,
 * several statements). Preparing a statement already cached just pins it.
 *
 * The pin holds while the server keeps the statement: a schema change that
 * changes its result type, or DEALLOCATE, re-prepares it transparently
 * (still pinned); DEALLOCATE ALL and DISCARD ALL (which a pool runs when a
 * connection is released) drop it and its pin. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_conn_prepare(evdb_conn *c, const char *sql, const evdb_value *params,
                                           size_t nparams, const evdb_query_opts *opts);

/* Unpin the statement evdb_conn_prepare pinned (same sql and params) and
 * take it out of the cache; the server deallocates it ahead of later
 * queries (PostgreSQL without pipelining: with the next batch of evicted
 * statements). Returns a future of a result whose evdb_result_affected is
 * 1 when the statement was cached, 0 when not (still ok). NULL at once as
 * for evdb_conn_prepare. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_conn_unprepare(evdb_conn *c, const char *sql,
                                             const evdb_value *params, size_t nparams,
                                             const evdb_query_opts *opts);
#define EVDB_HAS_PREPARE 1

/* One statement of a batch: sql with nparams typed parameters, as for
 * evdb_conn_query (one statement per entry; no several-statement strings,
 * no transaction control). */
typedef struct evdb_stmt {
    const char *sql;
    const evdb_value *params;
    size_t nparams;
} evdb_stmt;

/* The most statements one batch may hold. */
#define EVDB_BATCH_MAX 65535u

/* Submit n statements (1..EVDB_BATCH_MAX) to run in order as one unit,
 * all or nothing: the fast path for bulk work. PostgreSQL sends them in
 * one pipeline round with ONE Sync, so they share one implicit
 * transaction (outside a transaction block: they commit together, or an
 * error anywhere, deferred constraints at commit included, rolls every
 * one of them back); MariaDB runs them inside a transaction (or, inside
 * the caller's own transaction, a savepoint). Unlike n separate queries,
 * the statements see each other's row locks and settings (SET LOCAL) and
 * commit at once: only batch statements that belong together.
 *
 * Everything is copied before this returns. The future's result is the
 * first statement's result; evdb_result_next walks the others in order.
 * On failure the future fails with the failing statement's error, its
 * message prefixed "batch statement K of N: "; nothing of the batch took
 * effect (inside the caller's own PostgreSQL transaction block, the block
 * is aborted as with any error). Statements that cannot be part of one
 * transaction fail the batch with EVDB_EINVAL before anything is sent:
 * transaction control, strings of several statements, COPY, and on
 * MariaDB statements that commit implicitly (DDL; temporary tables are
 * fine). A MariaDB batch pays one statement's round trip per statement
 * (no pipelining there): it buys atomicity, not speed. opts->timeout
 * covers the whole batch; a batch given up on before its commit leaves
 * nothing behind.
 * Returns NULL at once: EVDB_EINVAL (NULL or empty stmts, n over
 * EVDB_BATCH_MAX, a NULL or empty sql, bad parameters), EVDB_ENOTSUP
 * (a driver without batches), EVDB_ECLOSED, EVDB_ENOMEM. Callable from
 * callbacks. */
EVDB_EXTERN evdb_future *evdb_conn_batch(evdb_conn *c, const evdb_stmt *stmts, size_t n,
                                         const evdb_query_opts *opts);
#define EVDB_HAS_BATCH 1

/* Close asynchronously: queued and running queries fail at once with
 * EVDB_ECLOSED (a running statement may still complete on the server; to
 * let queries finish, wait for their futures before closing); the returned
 * future
 * completes when the session is gone and the memory reclaimed. After this
 * call, c only refuses: while the returned future lives, a second close or
 * a query on c returns NULL with EVDB_ECLOSED; once that future is
 * destroyed, c is gone and must not be used. Never blocks the loop.
 * Returns NULL (and does nothing) for NULL, a pooled connection, or a
 * second close. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_conn_close(evdb_conn *c);

/* The driver name: "postgres" or "mariadb". */
EVDB_EXTERN const char *evdb_conn_driver(const evdb_conn *c);

/* Queries submitted and not yet completed on c. */
EVDB_EXTERN size_t evdb_conn_pending(const evdb_conn *c);

/* A server notice for the hook of evdb_conn_set_notice_hook: an error
 * object with code 0, the SQLSTATE ("00000" for RAISE NOTICE, "01000" for
 * warnings), the message (with DETAIL/HINT lines), evdb_error_severity
 * ("NOTICE", "WARNING", "INFO", "LOG", "DEBUG") and the other fields the
 * server sent. notice is valid only during the call. */
typedef void (*evdb_notice_fn)(evdb_conn *c, const evdb_error *notice, void *arg);

/* Send c's server notices to fn (NULL: drop them, the default; they are
 * never printed). fn runs from the loop, after the step that received the
 * notice, normally before the callbacks of the query that raised it; it
 * may do anything a callback may (submit queries, close c). At most 256
 * notices wait for delivery; more are dropped. A query that is run again
 * because it provably did not take effect (a cached statement gone stale
 * after another session's schema change, a cancel meant for another
 * query; see docs/postgres.md) may raise its notices twice. Notices still
 * queued when c is closed are
 * dropped. MariaDB connections have no notices (the hook is never called).
 * Returns 0; EVDB_EINVAL for NULL or a stale c; EVDB_ENOTSUP for a pooled
 * connection (not yet: the hook would outlive the borrow); EVDB_ENOMEM. */
EVDB_EXTERN int evdb_conn_set_notice_hook(evdb_conn *c, evdb_notice_fn fn, void *arg);
#define EVDB_HAS_NOTICE_HOOK 1

/* Whether c can take queries: 0 when it can, EVDB_ECONNLOST when the
 * session was lost (the server ended it, the network failed: queries in
 * flight failed with EVDB_ECONNLOST, new ones are refused; only
 * evdb_conn_close is left to do), EVDB_ECLOSED once it is closing or
 * closed (by evdb_conn_close, while its close future lives, or its pool),
 * EVDB_EINVAL for NULL or a stale handle. The loss is noticed while idle
 * too: the socket stays watched. */
EVDB_EXTERN int evdb_conn_status(const evdb_conn *c);

/* Why c was lost (code EVDB_ECONNLOST, the client library's or server's
 * message, the SQLSTATE when the server said why, e.g. 57P01 after
 * pg_terminate_backend), or NULL while c is usable. Owned by c: valid
 * until evdb_conn_close. */
EVDB_EXTERN const evdb_error *evdb_conn_error(const evdb_conn *c);

/* The server's process / thread id for this session (PostgreSQL backend
 * pid, MariaDB connection id), or 0. */
EVDB_EXTERN int64_t evdb_conn_server_id(const evdb_conn *c);

#ifdef __cplusplus
}
#endif
#endif
