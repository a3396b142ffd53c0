/*
 * Futures: the one handle for every asynchronous evdb operation.
 *
 * Contract (the same for query, connect, acquire, sleep, combinator and
 * user-made futures):
 *  - Reference counted. A call that returns a future hands the caller one
 *    reference; drop it with evdb_future_unref. The operation keeps running
 *    when the caller drops its reference (unref is not cancel).
 *  - Completes exactly once: ok, failed (with an evdb_error), or cancelled
 *    (status EVDB_ECANCELED).
 *  - Callbacks run exactly once each, in registration order, from the loop,
 *    never synchronously inside the call that registered them, even when the
 *    future is already done.
 *  - Callbacks may do anything but block: submit, cancel, unref the very
 *    future they are called for, close connections.
 *  - A call that fails at once returns NULL (or a negative code) and leaves
 *    the reason in evdb_last_error(); no callback ever runs for it.
 *
 * Threads: a future belongs to the loop it was made on; use it only from
 * that loop's thread.
 */
#ifndef EVDB_FUTURE_H
#define EVDB_FUTURE_H

#include <stddef.h>
#include "evdb/export.h"
#include "evdb/error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;

typedef struct evdb_future evdb_future;
typedef struct evdb_result evdb_result;
typedef struct evdb_conn evdb_conn;

/* evdb_future_status() of a future that has not completed yet. */
#define EVDB_PENDING 1

/* Flags for evdb_gather. */
#define EVDB_GATHER_ALL 0u       /* wait for every child (default) */
#define EVDB_GATHER_FAIL_FAST 1u /* first failure completes the gather, cancels the rest */

typedef void (*evdb_done_cb)(evdb_future *f, void *arg);

/* A user-made future on loop, pending until resolved, failed or cancelled.
 * Returns a new reference, or NULL (EVDB_EINVAL, EVDB_ENOMEM).
 * Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_future_new(struct ev_loop *loop);

/* Complete a user-made future with value. When free_value is not NULL the
 * future owns value and calls free_value(value) when it is destroyed (also
 * when the future was already done: the value is then freed at once).
 * Returns 0, EVDB_ESTATE when already done (cancelled, say), EVDB_EINVAL for
 * a future the library made. Callable from callbacks. */
EVDB_EXTERN int evdb_future_resolve(evdb_future *f, void *value, void (*free_value)(void *));

/* Fail a user-made future with code (negative) and message (copied; may be
 * NULL). Returns 0, EVDB_ESTATE when already done, EVDB_EINVAL otherwise. */
EVDB_EXTERN int evdb_future_fail(evdb_future *f, int code, const char *message);

/* Register cb(f, arg) to run once f completes. Runs from the loop, never
 * inside this call. The future holds a reference to itself until every
 * callback has run, so the caller may unref right after registering.
 * Returns 0, EVDB_EINVAL, or EVDB_ENOMEM (cb will then never run). */
EVDB_EXTERN int evdb_future_on_done(evdb_future *f, evdb_done_cb cb, void *arg);

/* Cancel: a pending future completes at once with EVDB_ECANCELED, and the
 * operation behind it is stopped (a queued query leaves its queue, a running
 * one is cancelled on the server). Idempotent. Returns 0 when this call
 * cancelled it, EVDB_ESTATE when it was already done (nothing changes). */
EVDB_EXTERN int evdb_future_cancel(evdb_future *f);

/* EVDB_PENDING, 0 when ok, or the negative error code (EVDB_ECANCELED when
 * cancelled). */
EVDB_EXTERN int evdb_future_status(const evdb_future *f);

/* The error of a failed or cancelled future, else NULL. Owned by f. */
EVDB_EXTERN const evdb_error *evdb_future_error(const evdb_future *f);

/* The result of a completed query future, else NULL. Owned by f: valid
 * while the caller holds a reference to f. */
EVDB_EXTERN evdb_result *evdb_future_result(const evdb_future *f);

/* Take the connection out of a completed open or acquire future. The caller
 * then owns it (closes it, or releases it to its pool). Returns NULL when f
 * did not succeed or the connection was already taken; a connection never
 * taken is closed when f is destroyed. */
EVDB_EXTERN evdb_conn *evdb_future_take_conn(evdb_future *f);

/* The value of a resolved user future or task, else NULL. Owned by f. */
EVDB_EXTERN void *evdb_future_value(const evdb_future *f);

/* Add a reference; returns f. */
EVDB_EXTERN evdb_future *evdb_future_ref(evdb_future *f);

/* Drop a reference. The last one destroys the future and what it owns.
 * NULL is ignored. Callable from callbacks, also for the future being
 * reported. */
EVDB_EXTERN void evdb_future_unref(evdb_future *f);

/* Drive f's loop until f completes, then return its status (0 or a negative
 * code). The asyncio.run of callback-style code. Returns EVDB_EINCALLBACK
 * at once when called from inside an evdb callback or task (the loop is
 * already running), EVDB_EINVAL for NULL. */
EVDB_EXTERN int evdb_future_wait(evdb_future *f);

/* A future that resolves after seconds (asyncio.sleep). seconds >= 0.
 * Cancelling it stops the timer. Returns NULL on bad arguments. */
EVDB_EXTERN evdb_future *evdb_sleep(struct ev_loop *loop, double seconds);

/* Completes when all of fs[0..n) complete (EVDB_GATHER_ALL), or at the first
 * failure (EVDB_GATHER_FAIL_FAST: the rest are cancelled). The gather is ok
 * when every child is ok, else it fails with the first failure's code and
 * message. Children keep their own results; the gather takes its own
 * references, the caller keeps theirs. Cancelling the gather cancels the
 * children. All children must be on one loop; n >= 1 (an empty gather has
 * no loop to complete on). Returns NULL on bad arguments. */
EVDB_EXTERN evdb_future *evdb_gather(evdb_future *const *fs, size_t n, unsigned flags);

/* Completes with the outcome of the first of fs[0..n) to complete; the
 * others are cancelled. The winner is evdb_race_winner(). n >= 1. */
EVDB_EXTERN evdb_future *evdb_race(evdb_future *const *fs, size_t n);

/* The child that won a completed race (borrowed, valid while the race
 * future is), else NULL. */
EVDB_EXTERN evdb_future *evdb_race_winner(const evdb_future *race);

/* asyncio.wait_for: completes with f's outcome, or fails with
 * EVDB_ETIMEDOUT after seconds and cancels f. The result stays readable
 * through f; evdb_future_result on the timeout future forwards to f.
 * Takes its own reference to f. */
EVDB_EXTERN evdb_future *evdb_timeout(evdb_future *f, double seconds);

#ifdef __cplusplus
}
#endif
#endif
