/*
 * COPY: bulk data into and out of a table (PostgreSQL COPY ... FROM STDIN
 * and COPY ... TO STDOUT), in any format the server knows (text, csv,
 * binary: evdb passes the bytes through). MariaDB has no COPY: these calls
 * fail there with EVDB_ENOTSUP.
 *
 * A copy is one statement on one connection and occupies it alone: the
 * queries submitted after it wait until it has ended. Its handle
 * (evdb_copy) belongs to the caller until evdb_copy_free; its final
 * future (evdb_copy_end, evdb_copy_future) completes exactly once, with a
 * result whose evdb_result_affected is the number of rows copied, or with
 * the server's error (SQLSTATE kept), EVDB_ETIMEDOUT (opts.timeout),
 * EVDB_ECANCELED (evdb_future_cancel on it) or EVDB_ECONNLOST. After an
 * error, a cancel or a timeout the connection stays usable: a copy in is
 * aborted (the server is sent CopyFail with a message), a copy out is
 * cancelled on the server and its remaining data dropped.
 *
 * Pooled connections: borrow one with evdb_pool_acquire, copy on the
 * borrowed handle, and release it once the final future has completed.
 *
 * Every call below is made from the loop's thread and may be made from
 * inside any evdb callback.
 */
#ifndef EVDB_COPY_H
#define EVDB_COPY_H

#include <stddef.h>
#include "evdb/conn.h"
#include "evdb/export.h"
#include "evdb/future.h"
#include "evdb/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evdb_copy evdb_copy;

/* Data of a copy out: len bytes holding one or more whole CopyData
 * messages (in text and csv format, whole rows), valid during the call
 * only. The callback may call evdb_copy_pause / _resume / _free on cp,
 * cancel the final future, or do anything else a callback may. */
typedef void (*evdb_copy_data_fn)(evdb_copy *cp, const void *data, size_t len, void *arg);

/* Options for a copy. A zero-initialised struct means defaults. */
typedef struct evdb_copy_opts {
    /* Seconds from submission to the final outcome, as for a query
     * (evdb_query_opts.timeout). 0 = no timeout. */
    double timeout;
    /* Bytes evdb buffers: for a copy in, data written and not yet handed
     * to the client library (evdb_copy_write refuses more with EVDB_EBUSY
     * once this much waits); for a copy out, data received and not yet
     * delivered (while paused, reading stops once this much waits).
     * 0 = EVDB_COPY_DEFAULT_BUFFER. */
    size_t buffer_bytes;
    /* Reserved for future options; keep zero. */
    void *reserved[2];
} evdb_copy_opts;

#define EVDB_COPY_DEFAULT_BUFFER ((size_t)256 * 1024)

/* Starts sql, a COPY ... FROM STDIN statement, on c (or a borrowed pooled
 * connection). Returns the copy's handle, which the caller frees with
 * evdb_copy_free; NULL with evdb_last_error set when the arguments are bad,
 * c does not take queries or its driver has no COPY (EVDB_ENOTSUP). The
 * statement is sent once everything submitted before it has completed;
 * data may be written at once. */
EVDB_EXTERN evdb_copy *evdb_copy_in(evdb_conn *c, const char *sql, const evdb_copy_opts *opts);

/* Queues len bytes of COPY data (any split: rows may span calls). The
 * bytes are copied. Returns 0 when taken; EVDB_EBUSY when the buffer is
 * full (nothing taken: wait for evdb_copy_writable, then write again);
 * EVDB_ESTATE after evdb_copy_end / _abort; the final future's error code
 * once the copy has failed, been cancelled or timed out; EVDB_EINVAL for
 * NULL data with len > 0 or a copy out. A write that finds the buffer
 * below its bound is taken whole, so evdb holds at most the bound plus one
 * write. */
EVDB_EXTERN int evdb_copy_write(evdb_copy *cp, const void *data, size_t len);

/* Queues one row of n values in COPY's text format (the statement must
 * use FORMAT text, the default, with the default delimiter and NULL
 * string): tab between fields, newline after, "\N" for NULL, backslash,
 * tab, newline and carriage return escaped. Each evdb value type is
 * written in the form the server reads back exactly: integers and
 * numerics as decimals, doubles with 17 significant digits (and NaN /
 * Infinity), bools as t / f, bytes as bytea hex, dates, times and
 * timestamps in ISO form (timestamptz with a +00:00 offset, so the
 * session's TimeZone does not matter), intervals in months, days and
 * microseconds, UUIDs in their 36-character form, JSON and text as
 * written, arrays as array literals with their elements quoted. Returns
 * 0, or what evdb_copy_write returns, or EVDB_EINVAL for bad values (n 0,
 * vals NULL, a value evdb_conn_query would refuse, text with a NUL byte);
 * nothing is queued unless 0 is returned. */
EVDB_EXTERN int evdb_copy_write_row(evdb_copy *cp, const evdb_value *vals, size_t n);

/* A future that completes when writing makes sense again: resolved
 * (value NULL) once the buffer has drained to half its bound (at once when
 * it already has), failed with the final future's error when the copy
 * ends first, or with EVDB_ESTATE after evdb_copy_end. The caller owns
 * one reference. NULL with evdb_last_error set on bad arguments. */
EVDB_EXTERN evdb_future *evdb_copy_writable(evdb_copy *cp);

/* Ends a copy in: once the buffered data has been sent, the server is told
 * that the data is complete. Returns the final future (a new reference,
 * the caller unrefs it); NULL with evdb_last_error set when cp is NULL, a
 * copy out, or was ended already (EVDB_ESTATE). */
EVDB_EXTERN evdb_future *evdb_copy_end(evdb_copy *cp);

/* Aborts a copy in: the data still buffered is dropped, and the server is
 * sent CopyFail with message (NULL: a default one), so nothing of the copy
 * takes effect. The final future then fails with the server's error
 * (SQLSTATE 57014, the message quoted). Returns the final future (a new
 * reference), or NULL with evdb_last_error set as for evdb_copy_end. */
EVDB_EXTERN evdb_future *evdb_copy_abort(evdb_copy *cp, const char *message);

/* Starts sql, a COPY ... TO STDOUT statement (or COPY (SELECT ...) TO
 * STDOUT), on c. Data is handed to on_data (with arg) from the loop, in
 * order, until the final future completes; never after it did. Returns
 * the handle (freed with evdb_copy_free), or NULL with evdb_last_error set
 * as for evdb_copy_in. */
EVDB_EXTERN evdb_copy *evdb_copy_out(evdb_conn *c, const char *sql, evdb_copy_data_fn on_data,
                                     void *arg, const evdb_copy_opts *opts);

/* Pause and resume a copy out. While paused on_data is not called; once
 * opts.buffer_bytes of data wait, evdb stops reading the socket (the
 * server then waits too). 0, or EVDB_EINVAL for NULL or a copy in. */
EVDB_EXTERN int evdb_copy_pause(evdb_copy *cp);
EVDB_EXTERN int evdb_copy_resume(evdb_copy *cp);

/* The final future of a copy (a new reference): rows copied, or the
 * error. NULL with evdb_last_error set when cp is NULL. */
EVDB_EXTERN evdb_future *evdb_copy_future(evdb_copy *cp);

/* Bytes evdb holds for the copy right now (written and not yet sent, or
 * received and not yet delivered). */
EVDB_EXTERN size_t evdb_copy_buffered(const evdb_copy *cp);

/* Frees the caller's handle. A copy in that was neither ended nor
 * aborted is aborted; a copy out still running goes on to its end with
 * its data dropped (on_data is never called again). The final future
 * lives on for whoever holds a reference. NULL is ignored. */
EVDB_EXTERN void evdb_copy_free(evdb_copy *cp);

#ifdef __cplusplus
}
#endif
#endif
