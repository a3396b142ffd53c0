/*
 * Row streaming: the rows of one query delivered in batches as they
 * arrive, with backpressure, for results larger than memory.
 *
 * A batch is an evdb_result of at most opts.batch_rows rows (the columns
 * as the query's, no command tag). Batches reach the consumer in order,
 * every row exactly once, either pushed to a callback (opts.on_batch) or
 * pulled one future at a time (evdb_stream_next, natural from a task).
 * The final status (the command tag and counts in a result with no rows,
 * or the error) is the future evdb_stream_done returns: it completes
 * exactly once, after the last batch was delivered.
 *
 * Backpressure: evdb holds at most one batch the consumer has not taken,
 * plus the one being filled, plus what the client library read for one
 * row. While the consumer does not take batches (a pull consumer that has
 * not asked for the next, a callback that paused the stream) evdb stops
 * reading the socket and the SERVER blocks, not evdb's memory.
 *
 * A stream runs alone on its connection: queries submitted after it on the
 * same connection wait until it has ended (with a pool, they are routed to
 * other connections where they can be). Cancel (evdb_stream_cancel, or
 * evdb_future_cancel on the done future) and opts.timeout stop the query
 * on the server, as for queries; the connection serves again afterwards.
 * Backends: PostgreSQL (single-row mode). Others refuse with EVDB_ENOTSUP.
 * See docs/postgres.md, "Streaming rows".
 *
 * Every callback runs from the loop, never inside an evdb call.
 */
#ifndef EVDB_STREAM_H
#define EVDB_STREAM_H

#include <stddef.h>
#include "evdb/export.h"
#include "evdb/future.h"
#include "evdb/pool.h"
#include "evdb/result.h"
#include "evdb/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evdb_stream evdb_stream;

/* Rows per batch when evdb_stream_opts.batch_rows is 0. */
#define EVDB_STREAM_BATCH_DEFAULT 1000u
/* The most rows per batch a caller may ask for. */
#define EVDB_STREAM_BATCH_MAX 1000000u

/* What an evdb_stream_fn returns: take the next batch when it is there,
 * or pause the stream until evdb_stream_resume. */
#define EVDB_STREAM_CONTINUE 0
#define EVDB_STREAM_PAUSE 1

/* A batch for a push consumer. batch is valid until the callback returns
 * (evdb frees it then); it holds at least one row. The callback may call
 * any evdb function, evdb_stream_pause / _resume / _cancel / _free on s
 * included. Returns EVDB_STREAM_CONTINUE or EVDB_STREAM_PAUSE. */
typedef int (*evdb_stream_fn)(evdb_stream *s, const evdb_result *batch, void *arg);

/* Zero-initialised options mean defaults. */
typedef struct evdb_stream_opts {
    size_t batch_rows;       /* rows per batch; 0: EVDB_STREAM_BATCH_DEFAULT */
    double timeout;          /* seconds for the whole stream (queue time,
                                execution and the consumer's pauses); 0: none */
    unsigned flags;          /* EVDB_QUERY_* (EVDB_QUERY_NO_PIPELINE is implied) */
    evdb_stream_fn on_batch; /* push mode; NULL: pull with evdb_stream_next */
    void *arg;               /* for on_batch */
} evdb_stream_opts;

/* Run sql with params (copied: the caller's buffers may be freed at once)
 * on c as a stream. Returns a stream the caller owns and frees with
 * evdb_stream_free, or NULL with evdb_last_error set (bad arguments, a
 * connection not ready, a backend that cannot stream): then no callback
 * ever runs. Callable from callbacks. */
EVDB_EXTERN evdb_stream *evdb_conn_stream(evdb_conn *c, const char *sql, const evdb_value *params,
                                          size_t nparams, const evdb_stream_opts *opts);

/* The same on a pool's connection, held by the stream until it ends and
 * then released as after any pooled query (autocommit rules included).
 * Waiting for a connection counts against opts.timeout. */
EVDB_EXTERN evdb_stream *evdb_pool_stream(evdb_pool *p, const char *sql, const evdb_value *params,
                                          size_t nparams, const evdb_stream_opts *opts);

/* The stream's final status: a future (borrowed: valid until
 * evdb_stream_free; take a reference with evdb_future_ref to keep it
 * longer) that completes exactly once, after the last batch: ok with a
 * result holding the columns, command tag and counts but no rows, or
 * failed with the query's error (a server error, EVDB_ETIMEDOUT,
 * EVDB_ECANCELED, EVDB_ECONNLOST, ...). No batch is delivered after a
 * failure. NULL for a NULL stream. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_stream_done(evdb_stream *s);

/* Pull mode (opts.on_batch NULL): a future of the next batch (a new
 * reference for the caller). It completes ok with the batch as its result
 * (evdb_future_result; it lives as long as the future), ok with a NULL
 * result at the end of the rows, or failed with the stream's error. Only
 * one may be pending at a time. Not asking is what pauses the stream.
 * NULL with evdb_last_error set: push mode, one still pending, NULL s.
 * Callable from callbacks (a task awaits it with evdb_await). */
EVDB_EXTERN evdb_future *evdb_stream_next(evdb_stream *s);

/* Push mode: stop / start delivering batches (and reading the socket).
 * Idempotent. 0, or EVDB_EINVAL for a NULL stream or pull mode. Callable
 * from callbacks, on_batch included. */
EVDB_EXTERN int evdb_stream_pause(evdb_stream *s);
EVDB_EXTERN int evdb_stream_resume(evdb_stream *s);

/* Cancel the stream: the done future fails with EVDB_ECANCELED (unless
 * already complete) and the query is cancelled on the server. Idempotent.
 * 0, or EVDB_EINVAL for a NULL stream. Callable from callbacks, on_batch
 * included. */
EVDB_EXTERN int evdb_stream_cancel(evdb_stream *s);

/* Release the caller's handle. A stream still running is cancelled first.
 * The done future stays valid for holders of their own reference.
 * Callable from callbacks, on_batch of s included. NULL is a no-op. */
EVDB_EXTERN void evdb_stream_free(evdb_stream *s);

#ifdef __cplusplus
}
#endif

#endif
