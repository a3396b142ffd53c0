/*
 * Connection hooks and tracing. An evdb_hooks struct is attached to a
 * connection (evdb_conn_opts.hooks) or a pool (evdb_pool_opts.hooks); it is
 * copied there, so the caller's struct need not outlive the call. Every
 * member may be NULL / zero: unset hooks cost one NULL check per event.
 *
 * - trace: told when a connect, an acquire or a query starts and ends
 *   (each START is followed by exactly one END, also on failure, timeout,
 *   cancel and close), for logs, metrics or OpenTelemetry-style spans.
 * - credentials: consulted before every connect (pool reconnects too) for
 *   the password, as a future (short-lived tokens); it replaces the URL's.
 * - on_connect: run on every new connection before it is handed out (set a
 *   search path, prepare statements, check the server version).
 *
 * Failures of credentials or on_connect fail that connect with a connect
 * error (EVDB_ECONNECT) whose message names the hook; a pool backs off as
 * for any connect failure. See docs/hooks.md.
 */
#ifndef EVDB_HOOKS_H
#define EVDB_HOOKS_H

#include <stdint.h>
#include "evdb/error.h"
#include "evdb/export.h"
#include "evdb/future.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evdb_pool evdb_pool;

typedef enum evdb_trace_kind {
    EVDB_TRACE_CONNECT_START = 0, /* a connect begins (before credentials) */
    EVDB_TRACE_CONNECT_END = 1,   /* it ended: ready (after on_connect) or failed */
    EVDB_TRACE_ACQUIRE_START = 2, /* evdb_pool_acquire was called */
    EVDB_TRACE_ACQUIRE_END = 3,   /* its future completed */
    EVDB_TRACE_QUERY_START = 4,   /* a query was submitted */
    EVDB_TRACE_QUERY_END = 5      /* its future completed */
} evdb_trace_kind;

/* What the trace hook is told. Every pointer lives only during the call. */
typedef struct evdb_trace_event {
    evdb_trace_kind kind;
    /* "host:port", a socket path, or "?" when the URL does not say; never
     * a password. database and user: NULL when the URL names none (the
     * server's default applies). */
    const char *server;
    const char *database;
    const char *user;
    /* CONNECT_*: the connection (NULL at START; at END only when it is
     * ready). QUERY_* on evdb_conn_query: the connection the query was
     * submitted on; on evdb_pool_query: NULL (a pooled query is routed
     * later). ACQUIRE_*: NULL. Identifies the object, do not use it. */
    const void *conn;
    /* The pool for ACQUIRE_*, for QUERY_* of evdb_pool_query and for
     * CONNECT_* of a pool's connections; NULL otherwise. */
    const evdb_pool *pool;
    /* QUERY_*: the SQL as submitted (the first statement for a batch). */
    const char *sql;
    /* QUERY_*: evdb_query_opts.trace_ctx of the query, as given. */
    void *trace_ctx;
    /* *_END: 0 or the negative error code; error: the error (NULL when
     * ok). The message never holds a password. */
    int status;
    const evdb_error *error;
    /* QUERY_END, when ok: rows returned, or rows affected for a statement
     * without result columns; 0 otherwise. */
    int64_t rows;
    /* *_END: seconds since the matching START (loop time). */
    double duration;
} evdb_trace_event;

/* The trace hook. Called from the loop (START events from within the call
 * that starts the operation). It must not block; it must not close the
 * pool or connection it is told about; it may submit queries, but a query
 * submitted from a QUERY event traces events of its own. */
typedef void (*evdb_trace_fn)(const evdb_trace_event *ev, void *arg);

/* The on-connect hook: c is the new connection (ready, not handed out
 * yet; queries on it run as on any connection, evdb_conn_close must not
 * be called on it). Return a future (the hook's reference, evdb takes it)
 * that completes when the work is done, e.g. the last query's future or a
 * gather; NULL = nothing to wait for. A failed future fails the connect:
 * the connection is closed, never handed out. For a pool, on_connect_sql
 * runs first. Called from the loop. */
typedef evdb_future *(*evdb_on_connect_fn)(evdb_conn *c, void *arg);

/* The credentials hook: consulted before every connect. Return a future
 * (the hook's reference, evdb takes it) whose value (evdb_future_resolve)
 * is the password as a NUL-terminated string; evdb copies it when the
 * future completes, and the future's free_value frees it when the future
 * goes, so resolve it with a free function that wipes it if it should
 * not linger. evdb_hooks_password makes an already-resolved one for an
 * answer at hand. A NULL return or a failed future fails the connect.
 * server/user: as in evdb_trace_event. Called from the loop. */
typedef evdb_future *(*evdb_credentials_fn)(const char *server, const char *user, void *arg);

/* The hooks. A zero-initialised struct means none. */
typedef struct evdb_hooks {
    evdb_trace_fn trace;
    evdb_on_connect_fn on_connect;
    evdb_credentials_fn credentials;
    void *arg; /* handed to every hook */
    /* Pools: each connection's max_lifetime is shortened by a random
     * fraction in [0, lifetime_jitter), so connections opened together do
     * not all retire at once. [0 = 0.1]; negative = none. A pool without
     * hooks uses the default too. */
    double lifetime_jitter;
    /* Reserved for hooks added later; keep NULL. */
    void *reserved[4];
} evdb_hooks;

#define EVDB_DEFAULT_LIFETIME_JITTER 0.1

/* A future already resolved with a copy of password (wiped when freed),
 * for a credentials hook that has the answer at hand. NULL with
 * evdb_last_error set (EVDB_EINVAL for NULL arguments, EVDB_ENOMEM).
 * The caller owns the reference. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_hooks_password(struct ev_loop *loop, const char *password);

/* Which trace kind: "connect_start", ..., "query_end"; "?" for others. */
EVDB_EXTERN const char *evdb_trace_kind_name(evdb_trace_kind kind);

#define EVDB_HAS_HOOKS 1

#ifdef __cplusplus
}
#endif
#endif
