/*
 * Tasks: straight-line code that awaits futures (asyncio's tasks, in C).
 *
 * A task is a function running on its own small stack, on the loop's
 * thread. evdb_await(f) inside it suspends the task until f completes and
 * lets the loop run everything else meanwhile; the task then continues
 * right after the call. Every evdb future can be awaited: queries, pool
 * acquires, connects, sleeps, gathers, races, timeouts, user futures and
 * other tasks.
 *
 *     static void *worker(void *arg)
 *     {
 *         evdb_pool *pool = arg;
 *         evdb_future *q = evdb_pool_query(pool, "SELECT 42", NULL, 0, NULL);
 *         if (evdb_await(q) != 0) {                     // suspends here
 *             void *r = evdb_task_fail_error(evdb_future_error(q));
 *             evdb_future_unref(q);
 *             return r;
 *         }
 *         ... evdb_future_result(q) ...
 *         evdb_future_unref(q);
 *         return NULL;
 *     }
 *     evdb_future *t = evdb_task_spawn(loop, worker, pool, NULL);
 *
 * Contract:
 *  - A task's future is an ordinary evdb future (kind "task"): await it,
 *    gather it, put a timeout around it, register callbacks on it. It
 *    resolves with the task function's return value (evdb_future_value),
 *    or fails with what evdb_task_fail / evdb_task_fail_error recorded.
 *  - Tasks start from the loop, never inside evdb_task_spawn; a task runs
 *    until it awaits something or returns (cooperative: one at a time, no
 *    locks needed, but a task that never awaits blocks the loop).
 *  - Cancelling a task's future (evdb_future_cancel, or a timeout, race or
 *    fail-fast gather around it) completes it at once with EVDB_ECANCELED
 *    and cancels the future the task awaits; that evdb_await returns
 *    EVDB_ECANCELED. A task cancelled while it is not suspended (before it
 *    started, or by itself) gets EVDB_ECANCELED from its next evdb_await or
 *    evdb_task_yield, which also cancels the future passed to it. The
 *    cancellation is reported once: later awaits work normally, so the task
 *    can clean up (release a connection, await a close) and return. Its
 *    future stays cancelled; the return value is dropped (freed when it was
 *    given with evdb_task_return). A task always runs: one cancelled before
 *    it started still runs up to its first await, so it can free its
 *    argument.
 *  - A finished task gives back its stack at once (a few stacks of the
 *    default size are kept per thread for reuse).
 *  - A task that awaits a future nobody ever completes stays suspended
 *    forever (and its memory with it): evdb_task_dump shows such tasks.
 *  - Inside a task, call evdb_await, never evdb_future_wait (which refuses
 *    with EVDB_EINCALLBACK) and never anything that blocks.
 *
 * Stacks are 64 KiB by default (256 KiB under AddressSanitizer), with a
 * PROT_NONE guard page below so that an overflow faults at once instead of
 * corrupting memory. Deep recursion or large local arrays need a bigger
 * evdb_task_opts.stack_size. Every guard page is a kernel memory mapping
 * and Linux limits a process to vm.max_map_count of them (65530 by
 * default), so at most about 32,000 guarded tasks can be alive at once;
 * EVDB_TASK_NO_GUARD lifts that limit for programs that need more.
 *
 * Threads: like everything on a loop, tasks belong to the loop's thread.
 */
#ifndef EVDB_TASK_H
#define EVDB_TASK_H

#include <stddef.h>
#include <stdio.h>
#include "evdb/error.h"
#include "evdb/export.h"
#include "evdb/future.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A task's body. Its return value becomes the value of the task's future
 * (evdb_future_value); see evdb_task_return to hand over ownership. */
typedef void *(*evdb_task_fn)(void *arg);

/* Flags for evdb_task_opts.flags. */
#define EVDB_TASK_NO_GUARD 1u /* no guard page: for more than ~32,000 live tasks */

/* Zero-initialised options mean the defaults. */
typedef struct evdb_task_opts {
    size_t stack_size; /* bytes, rounded up to whole pages; 0 = EVDB_TASK_STACK_DEFAULT */
    unsigned flags;    /* EVDB_TASK_* */
    void *reserved[4]; /* must be zero */
} evdb_task_opts;

#define EVDB_TASK_STACK_DEFAULT (64u * 1024u) /* 4x that under AddressSanitizer */
#define EVDB_TASK_STACK_MIN (16u * 1024u)     /* smaller sizes are raised to this */
#define EVDB_TASK_STACK_MAX ((size_t)1 << 30)

/* Start fn(arg) as a task on loop. The task starts from the loop (never
 * inside this call) and runs until its first await. Returns a new
 * reference to the task's future, which completes when fn returns (or is
 * cancelled); dropping the reference does not stop the task. opts may be
 * NULL. arg is not touched by evdb. Returns NULL at once with
 * evdb_last_error: EVDB_EINVAL (NULL loop or fn, bad options), EVDB_ENOMEM
 * (no memory, or no stack mapping: see EVDB_TASK_NO_GUARD). Callable from
 * callbacks and tasks. */
EVDB_EXTERN evdb_future *evdb_task_spawn(struct ev_loop *loop, evdb_task_fn fn, void *arg,
                                         const evdb_task_opts *opts);

/* Inside a task: suspend it until f completes and return evdb_future_status(f)
 * (0, or the negative code; the error itself is evdb_future_error(f)).
 * Returns at once when f is already done. Returns EVDB_ECANCELED when the
 * task is cancelled while it waits (f is cancelled too; see the contract
 * above). The caller keeps its reference to f and drops it as usual;
 * evdb_await holds its own while waiting.
 * Outside a task (plain code, loop callbacks) it returns EVDB_ENOTASK with
 * evdb_last_error explaining it, and f is not touched. Returns EVDB_EINVAL
 * for an invalid future, a future of another loop, or the task's own
 * future; EVDB_ENOMEM when the wake-up could not be registered. */
EVDB_EXTERN int evdb_await(evdb_future *f);

/* asyncio.run: spawn fn(arg) as the main task on loop, run the loop until
 * it finishes, then cancel every task still alive on the loop and run the
 * loop until they have finished too. Returns the main task's status (0 or
 * a negative code; evdb_last_error holds its error) and stores its return
 * value in *result (NULL when it failed; result may be NULL). A value the
 * main task gave with evdb_task_return then belongs to the caller (free it
 * yourself; it is freed at once when result is NULL). Returns
 * EVDB_EINCALLBACK when called from a callback or task of this loop (the
 * loop is already running), EVDB_EINVAL or EVDB_ENOMEM for failures at
 * once, EVDB_ESTATE when the main task waits for something that can never
 * happen (nothing left on the loop). Not callable from callbacks or
 * tasks. */
EVDB_EXTERN int evdb_run(struct ev_loop *loop, evdb_task_fn fn, void *arg, void **result);

/* The future of the task running now (borrowed: valid while the task runs;
 * take a reference to keep it), or NULL outside tasks (callbacks included).
 * Cancelling it from inside the task makes its next await return
 * EVDB_ECANCELED. */
EVDB_EXTERN evdb_future *evdb_task_current(void);

/* The loop the current task runs on (asyncio.get_running_loop), or NULL
 * outside tasks. Not owned by evdb: the application created it. */
EVDB_EXTERN struct ev_loop *evdb_task_loop(void);

/* Record a failure for the current task: when its function returns, the
 * task's future fails with code (negative) and message (copied; NULL means
 * the code's description), whatever the function returns. Returns NULL so
 * that `return evdb_task_fail(EVDB_ESERVER, "no rows");` reads naturally.
 * A later call replaces the earlier failure. Outside a task it only sets
 * evdb_last_error (EVDB_ENOTASK). Callable only from tasks. */
EVDB_EXTERN void *evdb_task_fail(int code, const char *message);

/* evdb_task_fail with a copy of an error object (code, message, SQLSTATE,
 * driver code): propagates an awaited future's error unchanged, as in
 * `return evdb_task_fail_error(evdb_future_error(q));`. err is copied (the
 * caller may drop q afterwards); NULL fails with EVDB_EPROTO. Returns
 * NULL. Callable only from tasks (else EVDB_ENOTASK in evdb_last_error). */
EVDB_EXTERN void *evdb_task_fail_error(const evdb_error *err);

/* Hand over ownership of the current task's result: `return
 * evdb_task_return(value, free_fn);` makes the task's future own value and
 * call free_fn(value) when the future is destroyed (or at once if the task
 * was cancelled or failed); evdb_future_value reads it meanwhile. Returns
 * value. Callable only from tasks: outside one it sets evdb_last_error
 * (EVDB_ENOTASK) and returns value untouched (still the caller's). */
EVDB_EXTERN void *evdb_task_return(void *value, void (*free_fn)(void *));

/* Inside a task: let every other ready task and callback run, then
 * continue (asyncio.sleep(0)). Returns 0, EVDB_ECANCELED when the task
 * was cancelled, EVDB_ENOTASK outside a task (callbacks included). */
EVDB_EXTERN int evdb_task_yield(void);

/* 1 when the current task's future has been cancelled (it should finish
 * soon), 0 otherwise and outside tasks. For tasks that compute for a while
 * between awaits. Callable anywhere. */
EVDB_EXTERN int evdb_task_cancelled(void);

/* Label a task for evdb_task_dump (copied, up to 31 bytes kept). task is a
 * task future, or NULL for the current task. Returns 0, EVDB_EINVAL (not a
 * task future; NULL outside a task), EVDB_ESTATE when the task has
 * finished. Callable from callbacks and tasks. */
EVDB_EXTERN int evdb_task_set_name(evdb_future *task, const char *name);

/* Print the live tasks of loop to out, one line each: number, name, state
 * (starting, running, ready, awaiting), whether it was cancelled, stack
 * size, and what it awaits (the future's kind and state, and the name of
 * an awaited task). A diagnostic for tasks that hang. Callable anywhere
 * on the loop's thread. */
EVDB_EXTERN void evdb_task_dump(struct ev_loop *loop, FILE *out);

/* Called when a future that failed (any code but EVDB_ECANCELED) is
 * destroyed without its outcome having been observed: nobody called
 * evdb_future_status on it once it was done, evdb_future_error,
 * evdb_future_wait, evdb_future_on_done or evdb_await (combinators and
 * timeouts observe their children, so the error is reported once, on the
 * outermost future). what names the future's kind ("task", "query",
 * "user", ...); err lives only during the call. The hook runs on the thread
 * that drops the last reference, inside evdb_future_unref (possibly inside
 * a task): it may log, count or abort, but must not call evdb. */
typedef void (*evdb_unobserved_error_fn)(const evdb_error *err, const char *what, void *arg);

/* Install the unobserved-error hook for the whole process (NULL: none, the
 * default); arg is passed to every call and not owned by evdb. Set it at
 * startup, before loops run on other threads (not thread-safe against
 * concurrent reports). */
EVDB_EXTERN void evdb_set_unobserved_error_hook(evdb_unobserved_error_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
