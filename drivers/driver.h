/*
 * The internal backend interface: what a driver implements and what the core
 * gives it. Drivers never include <ev.h> and never see futures; the core
 * never includes <libpq-fe.h> or <mysql.h>.
 *
 * A driver is a set of step functions over its client library, in the shape
 * of PQconnectPoll and Connector/C's X_start / X_cont calls. Each step is called when
 * the socket is ready or a timer fired and answers:
 *   EVDB__STEP_DONE  the operation finished,
 *   EVDB__STEP_WAIT  call me again when *w is satisfied,
 *   EVDB__STEP_FAIL  the operation (for io/connect: the connection) failed,
 *                    *err says why.
 * The core owns the ev_io / ev_timer watchers and re-arms them after every
 * step (stop, set, start: the fd can change, even to the same number).
 *
 * Slots are marked MUST (every driver implements it) or MAY (NULL allowed).
 */
#ifndef EVDB_DRIVER_H
#define EVDB_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "evdb/conn.h"
#include "evdb/error.h"
#include "evdb/value.h"

typedef struct evdb__dconn evdb__dconn;   /* a driver's connection state */
typedef struct evdb__cancel evdb__cancel; /* a driver's server-side cancel op */
typedef struct evdb__rbuild evdb__rbuild; /* result under construction (driver_result.h) */
typedef struct evdb_copy evdb__copy;      /* a COPY's handle (evdb/copy.h, src/copy.c) */

enum evdb__step { EVDB__STEP_WAIT = 0, EVDB__STEP_DONE = 1, EVDB__STEP_FAIL = -1 };

/* Events: what a step waits for, and what woke it. */
#define EVDB__EV_READ 0x1u
#define EVDB__EV_WRITE 0x2u
#define EVDB__EV_TIMEOUT 0x4u /* only as a wake-up reason */

/* What a step waits for. fd -1 or events 0: no socket to watch.
 * timeout_ms >= 0: call the step with EVDB__EV_TIMEOUT after that long
 * unless the socket became ready first; -1: no timer. */
typedef struct evdb__wait {
    int fd;
    unsigned events;
    int timeout_ms;
} evdb__wait;

/* The core's helpers for drivers: errors, allocation, numbers as text,
 * host lookups, URLs (driver_util.h) and result construction
 * (driver_result.h). */
#include "driver_util.h"
#include "driver_result.h"

/* Capabilities a driver declares (never guessed by the core). */
#define EVDB__CAP_PIPELINE 0x1u      /* several queries in flight on one connection */
#define EVDB__CAP_SERVER_CANCEL 0x2u /* cancel_start stops a running query */
#define EVDB__CAP_MULTI_STMT 0x4u    /* several statements in one parameterless query */
#define EVDB__CAP_PREPARE 0x8u       /* knows EVDB__QUERY_PREPARE / _UNPREPARE */
#define EVDB__CAP_BATCH 0x10u        /* runs evdb__query.batch (evdb_conn_batch) */
#define EVDB__CAP_STREAM 0x20u       /* streams rows (evdb__query.stream) */
#define EVDB__CAP_COPY 0x40u         /* runs evdb__query.copy (evdb_copy_in / _out) */

/* One statement of an explicit batch (evdb_conn_batch): copies owned by
 * the core, like a query's own sql and params. */
typedef struct evdb__stmt {
    const char *sql;
    size_t sql_len;
    const evdb_value *params;
    size_t nparams;
} evdb__stmt;

/* A query as the driver sees it. The core allocates and frees it; the
 * driver reads the first block and may use the scratch block. */
typedef struct evdb__query {
    /* read-only for the driver: copies owned by the core */
    const char *sql;
    size_t sql_len;
    const evdb_value *params; /* text/bytes values point into core-owned copies */
    size_t nparams;
    unsigned flags;        /* EVDB_QUERY_* */
    double timeout;        /* evdb_query_opts.timeout: seconds from
                                  submission, 0 = none. The core enforces it
                                  itself; a driver may also hand it to the
                                  server as a backstop. */
    bool cancel_requested; /* the core gave up on it (timeout/cancel):
                                  its outcome will be discarded */
    /* An explicit batch (only sent to drivers with EVDB__CAP_BATCH):
     * nbatch >= 1 statements that run in order as ONE unit, all or
     * nothing (PostgreSQL: one implicit transaction, one Sync; MariaDB:
     * inside a transaction or a savepoint). The query succeeds with the
     * statements' results chained in order (evdb__result_append) or fails
     * with the first error, nothing of the batch having taken effect
     * (outside a user's transaction block). sql/params above then hold the
     * first statement (for messages). */
    const evdb__stmt *batch;
    size_t nbatch;
    /* A streamed query (evdb_conn_stream, src/stream.c; only sent to
     * drivers with EVDB__CAP_STREAM): NULL for every other query. Its rows
     * go to the core in batches of at most stream_rows rows
     * (evdb__stream_batch) as they arrive, never into the final result,
     * which holds the columns, the command tag and the counts only. */
    struct evdb_stream *stream;
    size_t stream_rows;
    /* driver scratch, zero when sent */
    void *drv;
    uintptr_t drv_word;
    int drv_state;
    /* A COPY's data channel (evdb_copy_in / evdb_copy_out; only sent to
     * drivers with EVDB__CAP_COPY), NULL for every other query. sql is
     * then a COPY ... FROM STDIN or TO STDOUT statement; the driver moves
     * its data through the evdb__copy_* calls below, and reports the query
     * as usual when the statement ends (affected rows: rows copied). A
     * COPY runs alone on its connection: nothing is pipelined with it. */
    evdb__copy *copy;
} evdb__query;

/* Internal query flag (never set by users): the session reset the driver
 * declared (evdb__driver.reset), only ever sent to a driver that declared
 * one (MariaDB: COM_RESET_CONNECTION instead of the query's sql). */
#define EVDB__QUERY_RESET_SESSION 0x80000000u
/* Internal query flags of evdb_conn_prepare / evdb_conn_unprepare, only
 * ever sent to drivers with EVDB__CAP_PREPARE. Instead of running sql:
 * PREPARE prepares it (parameter types from params as for a query; with
 * no params, one untyped parameter per $n), pins it in the statement cache
 * and reports a row-less result with its columns; UNPREPARE unpins it and
 * deallocates it (a result whose affected count says whether it was
 * there). */
#define EVDB__QUERY_PREPARE 0x40000000u
#define EVDB__QUERY_UNPREPARE 0x20000000u
/* Internal query flag: a pooled autocommit query (evdb_pool_query). It may
 * not leave its shared connection inside a transaction block: a statement
 * that opens one (BEGIN, START TRANSACTION, COMMIT/ROLLBACK AND CHAIN) is
 * refused before it is sent (EVDB_EINVAL, message pointing to
 * evdb_pool_acquire / evdb_pool_transaction); a query that still ends
 * inside a block (several statements in one string, MariaDB's SET
 * autocommit = 0) is rolled back before anything else runs on the
 * connection, and fails with EVDB_EINVAL. */
#define EVDB__QUERY_AUTOCOMMIT 0x10000000u
/* Internal query flag: the ROLLBACK of a release without the session
 * reset (evdb_conn_release_no_reset). A driver that knows no transaction
 * block may be open after what was sent before it may answer it at once,
 * without sending it (an empty result). */
#define EVDB__QUERY_RELEASE_ROLLBACK 0x08000000u
_Static_assert((EVDB__QUERY_RELEASE_ROLLBACK &
                (EVDB_QUERY_NO_PIPELINE | EVDB_QUERY_NO_CACHE | EVDB__QUERY_AUTOCOMMIT |
                 EVDB__QUERY_RESET_SESSION | EVDB__QUERY_PREPARE | EVDB__QUERY_UNPREPARE)) == 0 &&
                   ((EVDB_QUERY_NO_PIPELINE | EVDB_QUERY_NO_CACHE | EVDB__QUERY_AUTOCOMMIT) &
                    (EVDB__QUERY_RESET_SESSION | EVDB__QUERY_PREPARE | EVDB__QUERY_UNPREPARE)) ==
                       0 &&
                   ((EVDB_QUERY_NO_PIPELINE | EVDB_QUERY_NO_CACHE) & EVDB__QUERY_AUTOCOMMIT) == 0 &&
                   (EVDB__QUERY_RESET_SESSION & (EVDB__QUERY_PREPARE | EVDB__QUERY_UNPREPARE)) ==
                       0 &&
                   (EVDB__QUERY_PREPARE & EVDB__QUERY_UNPREPARE) == 0,
               "query flags overlap");

/* Parameters for connect, derived from evdb_conn_opts. */
typedef struct evdb__conn_params {
    const char *url;          /* as the user gave it; never quote it in errors */
    unsigned pipeline_depth;  /* >= 1 */
    unsigned stmt_cache_size; /* 0 = no cache */
    size_t max_result_bytes;  /* 0 = no limit; see evdb_conn_opts */
    void *core;               /* the core's connection, for evdb__notice_new */
} evdb__conn_params;

/* ---- What the core gives drivers (implemented in src/) ---- */

/* Report a finished in-flight query. The driver hands over r and must not
 * touch q afterwards. Call these from any step (connect, io, flush,
 * cancel_step), never from send. Order is free (a PostgreSQL group that
 * is re-sent completes after the query that failed it); the core treats
 * the oldest query not yet reported as the one the server is running. */
void evdb__query_done(evdb__query *q, evdb_result *r);
void evdb__query_failed(evdb__query *q, const evdb_error *e);

/* Row streaming (q->stream set). evdb__stream_batch hands over one batch
 * of at most q->stream_rows rows (a result the core then owns; NULL: no
 * memory, the query must then fail with EVDB_ENOMEM). evdb__stream_paused
 * says whether the consumer wants no rows now: the driver then stops
 * reading the socket (its wait leaves out READ) and builds no further row,
 * so the server blocks, not evdb's memory; the core wakes it with an io
 * step (revents READ) when the consumer wants rows again. It is false once
 * the query was given up on (cancel_requested): the driver then reads and
 * drops the rest. Call both from io steps only, never from send; q is the
 * streamed query, still held by the driver. */
void evdb__stream_batch(evdb__query *q, evdb_result *batch);
bool evdb__stream_paused(const evdb__query *q);

/* A server notice (PostgreSQL NOTICE, WARNING, INFO, ...) for the user's
 * hook: an error object to fill at once (evdb__error_set with code 0 and
 * the notice's SQLSTATE, then evdb__error_diag), which the core delivers
 * from the loop after the step. NULL when nobody listens, or too many
 * notices wait: drop the notice. core is evdb__conn_params.core. Callable
 * during any step, also from the client library's callbacks. */
evdb_error *evdb__notice_new(void *core);

/* A notification (PostgreSQL NOTIFY) received on a connection whose driver
 * was told to keep them (slot listen): channel and payload (payload_len
 * bytes, NUL-terminated) as the server sent them, and the sending
 * session's id. The core copies what it keeps; the strings only need to
 * live during the call. core is evdb__conn_params.core. Callable during
 * io (and any step that reads the socket), never from send. */
void evdb__notification(void *core, const char *channel, const char *payload, size_t payload_len,
                        int64_t sender_id);

/* A COPY's data (evdb__query.copy), for the driver during its steps.
 * COPY FROM STDIN: copy_in_data gives the bytes the user has written and
 * that are not sent yet (contiguous, *data valid until the next call),
 * copy_in_sent says n of them were handed to the client library (the
 * space is reused, and the user told it may write again), copy_in_end
 * says what comes after the data: 0 more data later (wait: the core runs
 * io, with revents 0, once there is more), 1 the end (all data given),
 * -1 abort, with *msg the reason to send (CopyFail). COPY TO STDOUT:
 * copy_out_ready says whether the user takes more data now (false: paused
 * or a full buffer; stop reading the socket: the core runs io, with
 * revents 0, when it may go on), copy_out_data hands one chunk over (the
 * core copies it; 0, or EVDB_ENOMEM). copy_is_in: which of the two the
 * user asked for. */
bool evdb__copy_is_in(const evdb__copy *cp);
size_t evdb__copy_in_data(evdb__copy *cp, const char **data);
void evdb__copy_in_sent(evdb__copy *cp, size_t n);
int evdb__copy_in_end(const evdb__copy *cp, const char **msg);
bool evdb__copy_out_ready(const evdb__copy *cp);
int evdb__copy_out_data(evdb__copy *cp, const void *data, size_t len);

/* ---- What a driver implements ---- */

/* How transactions are spelled on a driver's server (src/pool_txn.c). */
enum evdb__txn_dialect {
    /* START TRANSACTION [READ ONLY], an isolation level set beforehand by
     * SET TRANSACTION ISOLATION LEVEL (for the next transaction only), no
     * DEFERRABLE; the first statements wait for START TRANSACTION's
     * answer. MariaDB, and any driver that declares nothing. */
    EVDB__TXN_START = 0,
    /* BEGIN [ISOLATION LEVEL ...] [READ ONLY] [DEFERRABLE] (PostgreSQL):
     * the first statements are pipelined right behind BEGIN. */
    EVDB__TXN_BEGIN,
};

/* The session reset a pool queues when a borrower releases a connection
 * (evdb_conn_release, src/pool_reset.c). The core sends it with
 * EVDB__QUERY_RESET_SESSION and EVDB_QUERY_NO_CACHE, never awaited: the
 * next borrower's statements queue right behind it. n == 1: stmts[0] as
 * one query (the driver may run something else for it, as MariaDB's
 * COM_RESET_CONNECTION); n > 1: the n statements as one explicit batch
 * (EVDB__CAP_BATCH), which the driver may thin out by statements it can
 * prove have nothing to clean. Either way the driver MUST make the
 * connection fail when the reset did not complete: the session may hold
 * a borrower's leftovers. */
typedef struct evdb__reset {
    const evdb_stmt *stmts;
    size_t n;
} evdb__reset;

typedef struct evdb__driver {
    const char *name;           /* "postgres" */
    const char *const *schemes; /* URL schemes it claims, NULL-terminated */
    unsigned caps;              /* EVDB__CAP_* */
    unsigned default_depth;     /* pipeline depth when the user gives 0 */

    /* MAY: claim a URL that has no scheme (libpq keyword strings). */
    bool (*claims)(const char *url);

    /* MUST: allocate state and begin a nonblocking connect. Never blocks
     * (beyond what the docs name). Returns WAIT with *w, DONE when connected
     * at once, or FAIL with *err (then *out is NULL and nothing is left). */
    int (*connect_start)(evdb__dconn **out, const evdb__conn_params *p, evdb__wait *w,
                         evdb_error *err);
    /* MUST: continue the connect after revents. The core enforces the
     * overall connect deadline itself and calls destroy when it passes. */
    int (*connect_step)(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err);

    /* MUST: how many more queries send() takes right now (0 = full). */
    unsigned (*capacity)(const evdb__dconn *dc);
    /* MUST: take q for execution. It may only buffer it; the core calls
     * flush after a batch of sends. Returns 0, or a negative code with *err
     * (q is then not taken and fails alone). */
    int (*send)(evdb__dconn *dc, evdb__query *q, evdb_error *err);
    /* MUST: the batch is complete: push buffered work out. Returns WAIT with
     * *w (the idle wait, usually READ, when nothing is in flight), or FAIL
     * when the connection broke. */
    int (*flush)(evdb__dconn *dc, evdb__wait *w, evdb_error *err);
    /* MUST: the socket is ready or the timer fired: do I/O, report finished
     * queries with evdb__query_done / evdb__query_failed,
     * return WAIT with the next wait, or FAIL when the connection is
     * unusable (readable while idle and closed by the server included).
     * After FAIL the driver forgets every query it holds: the core fails
     * them with EVDB_ECONNLOST. */
    int (*io)(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err);

    /* MAY (with EVDB__CAP_SERVER_CANCEL): begin stopping q on the server; q
     * is the oldest in-flight query, marked cancel_requested. Returns WAIT
     * with *out and *w (the core drives cancel_step with a watcher of its
     * own), DONE when nothing more is needed, FAIL when it cannot (the core
     * then waits for the query to finish by itself). The driver still
     * reports q through evdb__query_done/failed when the server answers
     * (the error of the cancelled statement is absorbed there). */
    int (*cancel_start)(evdb__dconn *dc, evdb__query *q, evdb__cancel **out, evdb__wait *w,
                        evdb_error *err);
    int (*cancel_step)(evdb__cancel *op, unsigned revents, evdb__wait *w, evdb_error *err);
    /* Free a cancel op, finished or not (never blocks). */
    void (*cancel_free)(evdb__cancel *op);

    /* MUST: begin a graceful close (Terminate / COM_QUIT), like connect. */
    int (*close_start)(evdb__dconn *dc, evdb__wait *w);
    int (*close_step)(evdb__dconn *dc, unsigned revents, evdb__wait *w);
    /* MUST: free everything at once; may drop the socket abruptly; never
     * blocks. Called after close finished, or instead of it. */
    void (*destroy)(evdb__dconn *dc);

    /* MAY: whether q (handed over by send, not yet reported) has reached
     * the wire, so the server may run or have run it. NULL: every query
     * handed over counts as sent. The core uses it for the outcome of a
     * timed-out, cancelled or lost query (evdb_error_outcome_unknown), so
     * the answer is a promise: a query given up on (cancel_requested)
     * while it said false is never sent afterwards; the driver drops it
     * and reports it (evdb__query_failed), and the core never cancels it
     * on the server (cancel_start only ever sees a query said sent; the
     * connection waits for that report before it serves on). Asked also
     * after io or flush returned FAIL, before destroy: the queries said
     * not sent then move to another connection of the pool, so the answer
     * must still hold (scratch kept in q, such as drv_state, does). */
    bool (*query_sent)(const evdb__dconn *dc, const evdb__query *q);
    /* MAY: give back the newest query the driver holds (handed over by
     * send) if nothing of it has reached the wire, forgetting it as if it
     * had never been handed over (capacity grows by one); NULL when the
     * newest one was sent or nothing is held. The core calls it again
     * until NULL, outside any driver step, to move queries stuck behind a
     * long-running statement to another connection of the pool. */
    evdb__query *(*take_unsent)(evdb__dconn *dc);

    /* MAY (servers with LISTEN/NOTIFY): on true, hand every notification
     * the session receives to evdb__notification, also while no query is
     * in flight (the idle wait is READ, so io runs when one arrives);
     * on false, drop them again, as a driver does by default (a pooled
     * connection must not pile them up). Called outside steps, on a ready
     * connection. NULL: the backend has no LISTEN, and evdb_listener_open
     * refuses its URLs with EVDB_ENOTSUP. */
    void (*listen)(evdb__dconn *dc, bool on);

    /* MAY: server session id (backend pid / thread id). */
    int64_t (*server_id)(const evdb__dconn *dc);

    /* MAY: the session reset of a released pooled connection (see
     * evdb__reset). NULL: a plain "ROLLBACK" without
     * EVDB__QUERY_RESET_SESSION (a driver that knows nothing more). */
    const evdb__reset *reset;
    /* How transactions are spelled (zero: EVDB__TXN_START). */
    enum evdb__txn_dialect txn_dialect;
} evdb__driver;

/* The drivers this build has (NULL when compiled out). */
extern const evdb__driver evdb__driver_postgres;
extern const evdb__driver evdb__driver_mariadb;

#endif
