/*
 * Declarations shared by the core's files. Nothing here is public; the
 * driver-facing half lives in drivers/driver.h, which this includes.
 */
#ifndef EVDB_INTERNAL_H
#define EVDB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evdb.h"
#include "driver.h"

/* The object that embeds member (a deferred call, a list node) at ptr:
 * callbacks get the member, and this finds its owner without a cast per
 * place. */
#define EVDB__CONTAINER_OF(ptr, type, member)                                                      \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Handles carry a magic number so a stale or foreign pointer is caught. */
#define EVDB__MAGIC_FUTURE 0x46757475u /* "Futu" */
#define EVDB__MAGIC_CONN 0x436f6e6eu   /* "Conn" */
#define EVDB__MAGIC_DEAD 0xdeadbeefu

#define EVDB__ERRMSG_MAX 480
/* The server's diagnostic fields (severity, constraint, table, column,
 * detail, hint), packed one after the other: an error is copied into every
 * failed future, so they share one buffer rather than each having its
 * worst-case size. */
#define EVDB__ERRDIAG_MAX 400

struct evdb_error {
    int code;
    int driver_code;
    char sqlstate[6];
    /* Where each evdb__diag field starts in diag; 0 = absent (diag[0] is
     * always NUL, so an absent field reads as ""). */
    uint16_t diag_off[EVDB__DIAG_COUNT];
    uint16_t diag_len; /* bytes of diag in use (at least 1 once set) */
    /* evdb_error_outcome_unknown: the statement had reached the server
     * when its future failed (timeout, cancel, lost or closed connection).
     * Only the core sets it, where it knows how far the query got;
     * evdb__error_set clears it, so every other error says "did not take
     * effect" unless the core said otherwise. */
    bool outcome_unknown;
    /* evdb_many_error_row + 1: the execute_many row the error is about
     * (src/many.c sets it); 0 = none. evdb__error_set clears it. */
    long many_row;
    char message[EVDB__ERRMSG_MAX];
    char diag[EVDB__ERRDIAG_MAX];
};
_Static_assert(EVDB__ERRDIAG_MAX <= UINT16_MAX, "diag offsets are 16 bits");

/* Thread-local variables on the per-query path: the initial-exec model
 * reads them at a fixed offset from the thread pointer instead of calling
 * __tls_get_addr (the default in a shared library). Only for small ones:
 * they come out of the static TLS space the loader keeps for libraries. */
#define EVDB__TLS_HOT __attribute__((tls_model("initial-exec")))

/* ---- alloc.c ---- */
/* Live allocations made through the hooks (tests assert it returns to 0). */
size_t evdb__alloc_live(void);
/* Blocks for per-query objects, through the per-thread cache: free with
 * evdb__obj_free and the same n. A cached block does not count as live. */
void *evdb__obj_alloc(size_t n);
void evdb__obj_free(void *p, size_t n);
/* Give this thread's cached blocks back to the allocator. */
void evdb__obj_cache_flush(void);

/* ---- error.c ---- */
/* Record err as this thread's last error and return its code. */
int evdb__set_last(const evdb_error *err);
/* Same, from a code and a printf-style message. */
int evdb__fail_now(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void evdb__error_copy(evdb_error *dst, const evdb_error *src);

/* ---- value.c ---- */
/* Bytes needed to deep-copy params, and the copy itself into dst (which must
 * be suitably aligned): text and bytes then point into dst. */
size_t evdb__values_size(const evdb_value *params, size_t n);
evdb_value *evdb__values_copy_into(void *dst, const evdb_value *params, size_t n);
/* Validate values (type tags, lengths): 0 or EVDB_EINVAL with last error. */
int evdb__values_check(const evdb_value *params, size_t n);

/* ---- loop_ev.c: the only file that includes <ev.h> ---- */
typedef struct evdb__loop evdb__loop;
typedef struct evdb__io evdb__io;
typedef struct evdb__timer evdb__timer;

/* A call queued to run from the loop (asyncio's call_soon). Intrusive: the
 * owner embeds the node and must not free it while queued. */
typedef struct evdb__deferred {
    struct evdb__deferred *next;
    void (*fn)(struct evdb__deferred *d);
    bool queued;
} evdb__deferred;

/* The evdb state attached to an application's ev_loop, reference counted by
 * every object that lives on it. NULL on allocation failure. */
evdb__loop *evdb__loop_get(struct ev_loop *ev);
void evdb__loop_ref(evdb__loop *l);
void evdb__loop_unref(evdb__loop *l);
struct ev_loop *evdb__loop_ev(const evdb__loop *l);
double evdb__loop_now(evdb__loop *l);
void evdb__loop_defer(evdb__loop *l, evdb__deferred *d);
void evdb__loop_undefer(evdb__loop *l, evdb__deferred *d);
/* True while ev_run is active on this loop (inside any callback). */
bool evdb__loop_running(const evdb__loop *l);
/* Run one loop iteration (blocking until something happens). False when
 * the loop has no active watchers left, so nothing can ever happen. */
bool evdb__loop_run_once(evdb__loop *l);
/* Live evdb loop states on this thread (tests). */
size_t evdb__loop_live(void);

typedef void (*evdb__io_cb)(void *arg, unsigned revents);
typedef void (*evdb__timer_cb)(void *arg);
evdb__io *evdb__io_new(evdb__loop *l, evdb__io_cb cb, void *arg);
/* Stop, set and start: always, since the fd may be a new file with the same
 * number. fd < 0 or events 0 just stops. */
void evdb__io_arm(evdb__io *w, int fd, unsigned events);
/* The same for a socket known to be the one armed before (an established
 * session, whose client library never swaps its socket): nothing happens
 * when fd and events are unchanged, which spares a system call per step. */
void evdb__io_update(evdb__io *w, int fd, unsigned events);
void evdb__io_free(evdb__io *w);
evdb__timer *evdb__timer_new(evdb__loop *l, evdb__timer_cb cb, void *arg);
void evdb__timer_start(evdb__timer *t, double seconds);
void evdb__timer_stop(evdb__timer *t);
void evdb__timer_free(evdb__timer *t);

/* ---- future.c ---- */
typedef enum evdb__fkind {
    EVDB__FK_USER,
    EVDB__FK_QUERY,
    EVDB__FK_OPEN,
    EVDB__FK_SLEEP,
    EVDB__FK_GATHER,
    EVDB__FK_RACE,
    EVDB__FK_TIMEOUT,
    EVDB__FK_CLOSE,
    EVDB__FK_TASK,
    /* A transaction helper's future (src/pool_txn.c): forwards to what
     * fn returned, as a timeout does, but is named for what it is in
     * evdb_task_dump and the unobserved-error hook. */
    EVDB__FK_TXN
} evdb__fkind;

/* The operation behind a future: told when the future is cancelled. */
typedef struct evdb__future_ops {
    void (*cancel)(void *op);
} evdb__future_ops;

evdb_future *evdb__future_new(evdb__loop *l, evdb__fkind kind);
void evdb__future_set_op(evdb_future *f, const evdb__future_ops *ops, void *op);
/* The operation set with ops, or NULL (other ops, or f already done). */
void *evdb__future_op(const evdb_future *f, const evdb__future_ops *ops);
bool evdb__future_pending(const evdb_future *f);
evdb__loop *evdb__future_loop(const evdb_future *f);
evdb__fkind evdb__future_kind(const evdb_future *f);
/* Complete. Each returns false (and takes nothing) when f is already done. */
bool evdb__future_resolve(evdb_future *f, void *value, void (*free_value)(void *));
bool evdb__future_fail_err(evdb_future *f, const evdb_error *e);
bool evdb__future_fail(evdb_future *f, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Replace the error of a future that has just failed with e->code, before
 * any of its callbacks ran (they always run later, from the loop).
 * evdb_future_cancel completes a future before it tells the operation, and
 * only the operation knows what the cancel meant (a query: whether it had
 * reached the server). False when f is not in that state, or no memory
 * (the first error then stays). */
bool evdb__future_amend_err(evdb_future *f, const evdb_error *e);
/* Complete with the outcome of child (race/timeout): status, error, result
 * and value are read through child. Takes a reference to child. */
bool evdb__future_forward(evdb_future *f, evdb_future *child);
/* Drop the library's reference to a future whose outcome nobody needs
 * (a fire-and-forget ROLLBACK, a close): its failure is not "unobserved". */
void evdb__future_disown(evdb_future *f);
/* f's status without counting as observing it (library bookkeeping). */
int evdb__future_peek(const evdb_future *f);
/* The child f forwards to, or NULL. */
evdb_future *evdb__future_forwarded(const evdb_future *f);
bool evdb__future_valid(const evdb_future *f);
size_t evdb__future_live(void);

/* ---- task.c ---- */
/* future.c calls this when a failed future nobody observed is destroyed. */
void evdb__report_unobserved(const evdb_future *f, const evdb_error *err);
/* Live tasks on this thread, stacks kept for reuse, stacks mapped so far
 * (tests). */
size_t evdb__task_live(void);
size_t evdb__task_stacks_cached(void);
size_t evdb__task_stacks_mapped(void);

/* ---- conn.c ---- */
bool evdb__conn_valid(const evdb_conn *c);
/* Close a connection nobody took (open future destroyed). */
void evdb__conn_abandon(void *conn);
/* A listener's hooks on its connection (src/listen.c). Both run while the
 * connection handles a driver step's outcome: they may only copy and
 * defer, never call user code or act on the connection. */
typedef struct evdb__conn_listener {
    /* A notification (drivers/driver.h, evdb__notification). */
    void (*notify)(void *arg, const char *channel, const char *payload, size_t payload_len,
                   int64_t sender_id);
    /* The session was lost (err: why): called as c turns broken, before
     * its queries fail (their callbacks then find the listener told). */
    void (*lost)(void *arg, const evdb_error *err);
} evdb__conn_listener;
/* Keep c's notifications for ops (NULL: drop them again, the default).
 * c must be ready; 0, or EVDB_ENOTSUP when its driver has no LISTEN. */
int evdb__conn_set_listener(evdb_conn *c, const evdb__conn_listener *ops, void *arg);

/* ---- drivers.c ---- */
const evdb__driver *evdb__driver_for(const char *url);
/* Tests register the scripted fake driver here. */
void evdb__driver_register(const evdb__driver *d);

/* ---- result.c, for many.c ---- */
/* Mark r as the outcome of an execute_many row that failed: e (allocated
 * with evdb__malloc) becomes r's, freed with it. */
void evdb__result_set_row_error(evdb_result *r, evdb_error *e);
/* That error, or NULL. */
const evdb_error *evdb__result_row_error(const evdb_result *r);

#endif
