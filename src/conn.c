/*
 * The connection core: one state machine per connection, the query queue,
 * per-query deadlines and server-side cancel, over a driver's step
 * functions. The core owns every watcher and re-arms it after every step.
 *
 * Queries live in one of two lists: pending (submitted, not yet handed to
 * the driver) and in flight (handed to the driver, not yet reported). A
 * query's future may complete early (cancel, timeout); the query object
 * stays until the driver reports it, so the driver never sees freed memory,
 * and its late outcome is discarded.
 *
 * User code never runs inside a driver step: futures only queue their
 * callbacks, which run from the loop afterwards.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hooks_rt.h"
#include "internal.h"
#include "notice.h"
#include "pool_conn.h"

typedef enum conn_state {
    CS_OPENING,
    CS_READY,
    CS_BROKEN, /* the session is gone; queries fail, close still works */
    CS_CLOSING,
    CS_CLOSED
} conn_state;

static const char *const state_names[] = {"opening", "ready", "broken", "closing", "closed"};

struct evdb_conn {
    uint32_t magic;
    conn_state state;
    evdb__loop *loop;
    const evdb__driver *drv;
    evdb__dconn *dc;
    evdb__io *io;
    evdb__timer *wait_timer;  /* the driver's own timed waits */
    evdb__timer *limit_timer; /* connect deadline, then close deadline */
    evdb__qlist pending, inflight;
    const evdb__conn_owner *owner_ops;
    void *owner;
    evdb__cancel *cop; /* server-side cancel in progress */
    evdb__io *cio;
    evdb__timer *ctimer;
    evdb_future *open_f, *close_f;
    /* The close future, made with the connection: closing must work when
     * memory has run out (pools close broken connections, an untaken
     * connection is closed when its open future dies). */
    evdb_future *close_spare;
    evdb__deferred pump_d;
    /* A driver step without a socket event (evdb__conn_kick): a resumed
     * stream, a COPY's data or end from the user, a copy reader caught up. */
    evdb__deferred kick_d;
    bool in_step;
    bool free_after_step;
    bool shell; /* the close future keeps the handle (see shell_free) */
    double connect_timeout;
    unsigned depth;
    /* Why the session was lost (state CS_BROKEN): evdb_conn_error. */
    evdb_error lost;
    /* Server notices for the user's hook; NULL until a hook is set. */
    evdb__noticeq *notices;
    /* When the oldest in-flight query (the head) became the head: sent
     * onto an empty in-flight list, or its predecessor completed. The
     * server works on the head, so its age tells a pool whether the
     * connection is stuck behind a long statement (evdb__conn_head_age). */
    double head_since;
    /* How long the last completed head ran (its service time), for the
     * pool's stall threshold; negative once taken (evdb__conn_take_service). */
    double head_took;
    /* A listener's hooks (evdb__conn_set_listener), or NULL. */
    const evdb__conn_listener *lsn;
    void *lsn_arg;
    /* Hooks and tracing (src/hooks_rt.h), or NULL: unset hooks cost a
     * NULL check per event. */
    evdb__hk *hk;
    /* The credentials or on_connect future being waited for, or NULL. */
    struct hwait *hw;
    evdb__deferred hook_d; /* runs on_connect_sql and on_connect */
    char *pre_sql;         /* a pool's on_connect_sql, run before on_connect */
    double connect_t0;     /* CONNECT_START, loop time */
    bool connect_traced;   /* CONNECT_END emitted */
};

/* Options that took reserved pointers keep their structs' sizes. */
#if UINTPTR_MAX > 0xffffffffu
_Static_assert(sizeof(evdb_conn_opts) ==
                   offsetof(evdb_conn_opts, max_result_bytes) + sizeof(size_t) + 3 * sizeof(void *),
               "evdb_conn_opts changed size");
_Static_assert(sizeof(evdb_query_opts) == offsetof(evdb_query_opts, trace_ctx) + 2 * sizeof(void *),
               "evdb_query_opts changed size");
#endif

/* Seconds a graceful close may take before the session is dropped. */
#define CLOSE_TIMEOUT 5.0

static void pump(evdb_conn *c);
static void conn_free(evdb_conn *c);
static void hw_detach(evdb_conn *c);
static void open_failed(evdb_conn *c, const evdb_error *err);

bool evdb__conn_valid(const evdb_conn *c)
{
    /* A pool's borrow handle is a number, not an address: never read
     * through one (conn_lookup resolves them). */
    return c && !evdb__is_borrow_handle(c) && c->magic == EVDB__MAGIC_CONN;
}

/* The connection a user's call names. One of evdb_conn_open is its own
 * handle; a pooled one is lent out under a handle of each borrow
 * (evdb_pool_acquire), which names it only until evdb_conn_release: a
 * stale handle finds nothing, so it can never act on the connection's
 * next borrower. NULL with the last error set (EVDB_EINVAL). */
static evdb_conn *conn_lookup(const evdb_conn *h, const char *who)
{
    if (evdb__is_borrow_handle(h)) {
        evdb_conn *c = evdb__pool_borrowed(h);
        if (!c)
            evdb__fail_now(EVDB_EINVAL,
                           "%s: stale connection handle: it was released to its pool (a handle "
                           "from evdb_pool_acquire is valid until evdb_conn_release)",
                           who);
        return c;
    }
    if (!evdb__conn_valid(h)) {
        evdb__fail_now(EVDB_EINVAL, "%s: invalid connection", who);
        return NULL;
    }
    return (evdb_conn *)h;
}

/* The same for the calls that use the connection: a pooled connection's
 * own address (a pool's notice hook sees it) does not do, only the
 * handle of its current borrow. */
static evdb_conn *conn_for_call(evdb_conn *h, const char *who)
{
    evdb_conn *c = conn_lookup(h, who);
    if (c && c->owner && !evdb__is_borrow_handle(h)) {
        evdb__fail_now(EVDB_EINVAL,
                       "%s: a pooled connection is used through the handle evdb_pool_acquire "
                       "gave for it",
                       who);
        return NULL;
    }
    return c;
}

/* The one place connection state changes. */
static void set_state(evdb_conn *c, conn_state s)
{
    c->state = s;
}

/* Whether q, handed to the driver, may have reached the server: the
 * driver's query_sent answers; one without it, or gone already, counts
 * every query handed over as sent. Pending and pool-queued queries never
 * were. */
static bool query_sent(const evdb_conn *c, const evdb__cq *q)
{
    if (q->where != EVDB__Q_INFLIGHT)
        return false;
    return !c->drv->query_sent || !c->dc || c->drv->query_sent(c->dc, &q->q);
}

/* Fail q's future with code and a message, and say whether the statement
 * may have taken effect (evdb_error_outcome_unknown). */
static void fail_outcome(evdb__cq *q, int code, bool unknown, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail_outcome(evdb__cq *q, int code, bool unknown, const char *fmt, ...)
{
    char msg[EVDB__ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    evdb_error e;
    evdb__error_set(&e, code, 0, NULL, "%s", msg);
    e.outcome_unknown = unknown;
    evdb__future_fail_err(q->f, &e);
}

/* Fail every query of a list with code and drop it. Used when the driver
 * has forgotten them (broken or closing connection); unknown says whether
 * they had reached the server (the in-flight list, once take_back_unsent
 * has taken out the ones that had not). */
static void fail_all(evdb_conn *c, evdb__qlist *l, int code, bool unknown, const char *msg)
{
    evdb__cq *q;
    while ((q = l->head)) {
        evdb__qlist_remove(l, q);
        fail_outcome(q, code, unknown, "%s", msg);
        evdb__cq_free(q);
    }
    (void)c;
}

/* q, in flight but not on the wire, leaves the driver: off the in-flight
 * list, its driver scratch cleared for the next driver. One given up on
 * already (timed out, cancelled: its future is done and counted where it
 * ended) just goes, as the driver would have dropped it unsent; false
 * then. */
static bool unsend(evdb_conn *c, evdb__cq *q)
{
    evdb__qlist_remove(&c->inflight, q);
    if (q->q.cancel_requested) {
        evdb__cq_free(q);
        return false;
    }
    q->q.drv = NULL;
    q->q.drv_word = 0;
    q->q.drv_state = 0;
    q->cancel_started = false;
    q->where = EVDB__Q_PENDING;
    return true;
}

/* Put the queries of l (oldest first) in front of c's pending list. */
static void pending_prepend(evdb_conn *c, evdb__qlist *l)
{
    evdb__cq *q;
    while ((q = l->tail)) {
        evdb__qlist_remove(l, q);
        evdb__qlist_push_front(&c->pending, q);
    }
}

/* The connection is going (lost or closed): the queries the driver holds
 * without having put them on the wire never ran, so they go back to the
 * front of the pending list, in order (they are older than the pending
 * ones), where they count as never sent: a pool re-routes them instead of
 * failing them with "outcome unknown". Their driver scratch is cleared
 * for the next driver. Ones given up on already (timed out, cancelled:
 * their futures are done) just go. Call before the driver's destroy. */
static void take_back_unsent(evdb_conn *c)
{
    if (!c->drv->query_sent || !c->dc)
        return;
    evdb__qlist back = {NULL, NULL, 0};
    for (evdb__cq *q = c->inflight.head, *next; q; q = next) {
        next = q->next;
        if (!c->drv->query_sent(c->dc, &q->q) && unsend(c, q))
            evdb__qlist_push(&back, q);
    }
    pending_prepend(c, &back);
}

/* ---- watchers ---- */

static void arm(evdb_conn *c, const evdb__wait *w)
{
    evdb__io_arm(c->io, w->fd, w->events);
    if (w->timeout_ms >= 0)
        evdb__timer_start(c->wait_timer, w->timeout_ms / 1000.0);
    else
        evdb__timer_stop(c->wait_timer);
}

/* The session is established: its socket stays the same file (libpq and
 * Connector/C only swap sockets while connecting, and evdb never lets
 * them reconnect), so an unchanged wait needs no re-arming. */
static void arm_ready(evdb_conn *c, const evdb__wait *w)
{
    evdb__io_update(c->io, w->fd, w->events);
    if (w->timeout_ms >= 0)
        evdb__timer_start(c->wait_timer, w->timeout_ms / 1000.0);
    else
        evdb__timer_stop(c->wait_timer);
}

static void stop_watchers(evdb_conn *c)
{
    evdb__io_arm(c->io, -1, 0);
    evdb__timer_stop(c->wait_timer);
    evdb__timer_stop(c->limit_timer);
}

static void cancel_op_free(evdb_conn *c)
{
    if (!c->cop)
        return;
    evdb__io_arm(c->cio, -1, 0);
    evdb__timer_stop(c->ctimer);
    c->drv->cancel_free(c->cop);
    c->cop = NULL;
}

/* ---- connection loss and close ---- */

static void broken(evdb_conn *c, const evdb_error *err)
{
    set_state(c, CS_BROKEN);
    /* Kept for evdb_conn_error: always EVDB_ECONNLOST (the driver's own
     * code, ENOMEM or EPROTO, also meant the session is gone), with the
     * driver's message, SQLSTATE and fields. */
    evdb__error_copy(&c->lost, err);
    c->lost.code = EVDB_ECONNLOST;
    if (c->lsn)
        c->lsn->lost(c->lsn_arg, &c->lost);
    stop_watchers(c);
    cancel_op_free(c);
    take_back_unsent(c);
    char msg[EVDB__ERRMSG_MAX];
    snprintf(msg, sizeof msg,
             "connection lost while the query ran (it had been sent: whether it took effect "
             "is unknown): %.300s",
             err->message);
    fail_all(c, &c->inflight, EVDB_ECONNLOST, true, msg);
    if (c->owner_ops && c->pending.head) {
        /* Never sent, so never lost: the pool re-routes them. */
        c->owner_ops->broken(c->owner, c, &c->pending, err);
    } else {
        snprintf(msg, sizeof msg,
                 "connection lost before the query was sent (it did not run): %.400s",
                 err->message);
        fail_all(c, &c->pending, EVDB_ECONNLOST, false, msg);
        if (c->owner_ops)
            c->owner_ops->broken(c->owner, c, &c->pending, err);
    }
    if (c->dc) {
        c->drv->destroy(c->dc);
        c->dc = NULL;
    }
}

/* What is left of a closed connection while its close future lives: the
 * handle, marked closed and holding nothing, so that a late call on it (a
 * second close, a query on a connection that closed at once) is refused
 * with EVDB_ECLOSED instead of reading freed memory. It goes with the
 * close future. */
static void shell_free(void *arg)
{
    evdb_conn *c = arg;
    c->magic = EVDB__MAGIC_DEAD;
    evdb__free(c);
}

static void close_finished(evdb_conn *c)
{
    stop_watchers(c);
    if (c->dc) {
        c->drv->destroy(c->dc);
        c->dc = NULL;
    }
    set_state(c, CS_CLOSED);
    c->shell = evdb__future_resolve(c->close_f, c, shell_free);
    if (c->in_step)
        c->free_after_step = true;
    else
        conn_free(c);
}

static void conn_free(evdb_conn *c)
{
    evdb__loop_undefer(c->loop, &c->pump_d);
    evdb__loop_undefer(c->loop, &c->kick_d);
    evdb__loop_undefer(c->loop, &c->hook_d);
    hw_detach(c);
    evdb__hk_free(c->hk);
    evdb__free(c->pre_sql);
    c->hk = NULL;
    c->pre_sql = NULL;
    evdb__noticeq_free(c->notices);
    evdb__io_free(c->io);
    evdb__io_free(c->cio);
    evdb__timer_free(c->wait_timer);
    evdb__timer_free(c->limit_timer);
    evdb__timer_free(c->ctimer);
    evdb_future_unref(c->open_f);
    evdb_future_unref(c->close_spare);
    evdb__loop_unref(c->loop);
    evdb_future *cf = c->close_f;
    if (c->shell) {
        /* Only the handle stays, owned by the close future: nothing in it
         * may point anywhere any more. */
        c->open_f = c->close_f = c->close_spare = NULL;
        c->io = c->cio = NULL;
        c->wait_timer = c->limit_timer = c->ctimer = NULL;
        c->notices = NULL;
        c->owner_ops = NULL;
        c->owner = NULL;
        c->loop = NULL;
        evdb_future_unref(cf); /* may free c (shell_free) */
        return;
    }
    evdb_future_unref(cf);
    c->magic = EVDB__MAGIC_DEAD;
    evdb__free(c);
}

/* ---- connection hooks (evdb/hooks.h) ---- */

/* A credentials, on_connect_sql or on_connect future being waited for. */
typedef struct hwait {
    evdb_conn *c;        /* NULL once the connect ended without it */
    evdb__conn_params p; /* credentials: the connect to start */
    char *url;           /* credentials: the URL (in this block) */
} hwait;

static void hw_detach(evdb_conn *c)
{
    if (c->hw) {
        c->hw->c = NULL;
        c->hw = NULL;
    }
}

static void hw_free(hwait *hw)
{
    if (hw && hw->url)
        memset(hw->url, 0, strlen(hw->url)); /* it may hold a password */
    evdb__free(hw);
}

/* CONNECT_END, once per connect (err NULL: ready). */
static void connect_end(evdb_conn *c, const evdb_error *err)
{
    if (!c->hk || c->connect_traced)
        return;
    c->connect_traced = true;
    evdb_trace_event ev = {
        .kind = EVDB_TRACE_CONNECT_END,
        .conn = err ? NULL : c,
        .status = err ? err->code : 0,
        .error = err,
        .duration = evdb__loop_now(c->loop) - c->connect_t0,
    };
    evdb__hk_emit(c->hk, &ev);
}

static void open_done(evdb_conn *c)
{
    connect_end(c, NULL);
    evdb_future *f = c->open_f;
    c->open_f = NULL;
    evdb__future_resolve(f, c, evdb__conn_abandon);
    evdb_future_unref(f);
}

/* The connect failed after the session was set up (a hook failed, or it
 * was cancelled meanwhile): the open future fails with err and the
 * connection closes, never handed out. */
static void hooks_failed(evdb_conn *c, const evdb_error *err)
{
    hw_detach(c);
    evdb__loop_undefer(c->loop, &c->hook_d);
    connect_end(c, err);
    evdb_future *f = c->open_f;
    c->open_f = NULL;
    evdb__future_fail_err(f, err);
    evdb_future_unref(f);
    evdb_future *cf = evdb__conn_close(c);
    if (cf)
        evdb__future_disown(cf);
}

/* A hook failed: a connect error naming it (what says which, msg why). */
static void hook_failed(evdb_conn *c, const char *what, const char *msg)
{
    evdb_error err;
    evdb__error_set(&err, EVDB_ECONNECT, 0, NULL, "%s failed: %.400s", what, msg);
    if (c->state == CS_OPENING)
        open_failed(c, &err);
    else
        hooks_failed(c, &err);
}

/* Wait for f (the caller's reference, taken), then cb. */
static void await_hook(evdb_conn *c, evdb_future *f, evdb_done_cb cb, hwait *hw, const char *what)
{
    if (!hw)
        hw = evdb__calloc(1, sizeof *hw);
    if (!hw || evdb_future_on_done(f, cb, hw)) {
        hw_free(hw);
        evdb_future_unref(f);
        hook_failed(c, what, "out of memory");
        return;
    }
    hw->c = c;
    c->hw = hw;
}

static void on_connect_done(evdb_future *f, void *arg)
{
    hwait *hw = arg;
    evdb_conn *c = hw->c;
    if (c) {
        c->hw = NULL;
        if (evdb_future_status(f) != 0)
            hook_failed(c, "on_connect hook", evdb_error_message(evdb_future_error(f)));
        else if (c->state != CS_READY)
            hook_failed(c, "on_connect hook", "the connection was lost meanwhile");
        else
            open_done(c);
    }
    evdb_future_unref(f);
    hw_free(hw);
}

static void run_on_connect(evdb_conn *c)
{
    if (c->state != CS_READY) {
        hook_failed(c, "on_connect_sql", "the connection was lost meanwhile");
        return;
    }
    if (!c->hk->h.on_connect) {
        open_done(c);
        return;
    }
    /* The hook must not close c nor cancel its connect (hooks.h). */
    evdb_future *f = c->hk->h.on_connect(c, c->hk->h.arg);
    if (!f)
        open_done(c);
    else
        await_hook(c, f, on_connect_done, NULL, "on_connect hook");
}

static void pre_sql_done(evdb_future *f, void *arg)
{
    hwait *hw = arg;
    evdb_conn *c = hw->c;
    if (c) {
        c->hw = NULL;
        if (evdb_future_status(f) != 0)
            hook_failed(c, "on_connect_sql", evdb_error_message(evdb_future_error(f)));
        else
            run_on_connect(c);
    }
    evdb_future_unref(f);
    hw_free(hw);
}

static void hook_deferred(evdb__deferred *d)
{
    evdb_conn *c = EVDB__CONTAINER_OF(d, evdb_conn, hook_d);
    if (!c->open_f)
        return;
    if (!c->pre_sql) {
        run_on_connect(c);
        return;
    }
    evdb_future *q = evdb__conn_query(c, c->pre_sql, NULL, 0, NULL);
    if (!q)
        hook_failed(c, "on_connect_sql", evdb_error_message(evdb_last_error()));
    else
        await_hook(c, q, pre_sql_done, NULL, "on_connect_sql");
}

static void driver_start(evdb_conn *c, const evdb__conn_params *p);

static void with_password(evdb_conn *c, hwait *hw, const char *pw)
{
    char *url = evdb__url_with_password(hw->url, pw);
    if (!url) {
        hook_failed(c, "credentials hook", "out of memory");
        return;
    }
    hw->p.url = url;
    driver_start(c, &hw->p);
    evdb__hk_free_secret(url);
}

static void credentials_done(evdb_future *f, void *arg)
{
    hwait *hw = arg;
    evdb_conn *c = hw->c;
    if (c) {
        c->hw = NULL;
        const char *pw = evdb_future_status(f) == 0 ? evdb_future_value(f) : NULL;
        if (evdb_future_status(f) != 0)
            hook_failed(c, "credentials hook", evdb_error_message(evdb_future_error(f)));
        else if (!pw)
            hook_failed(c, "credentials hook", "its future holds no password string");
        else
            with_password(c, hw, pw);
    }
    evdb_future_unref(f);
    hw_free(hw);
}

/* Ask the credentials hook, then connect with its password. */
static void ask_credentials(evdb_conn *c, const evdb__conn_params *p)
{
    size_t n = strlen(p->url) + 1;
    hwait *hw = evdb__calloc(1, sizeof *hw + n);
    if (!hw) {
        hook_failed(c, "credentials hook", "out of memory");
        return;
    }
    hw->p = *p;
    hw->url = memcpy(hw + 1, p->url, n);
    hw->p.url = NULL;
    const evdb__hk *k = c->hk;
    evdb_future *f = k->h.credentials(k->server, k->user, k->h.arg);
    if (!f) {
        hw_free(hw);
        hook_failed(c, "credentials hook", "it returned no future");
        return;
    }
    await_hook(c, f, credentials_done, hw, "credentials hook");
}

/* ---- steps ---- */

static void open_failed(evdb_conn *c, const evdb_error *err)
{
    hw_detach(c);
    connect_end(c, err);
    stop_watchers(c);
    if (c->dc) {
        c->drv->destroy(c->dc);
        c->dc = NULL;
    }
    evdb__future_fail_err(c->open_f, err);
    set_state(c, CS_CLOSED);
    if (c->in_step)
        c->free_after_step = true;
    else
        conn_free(c);
}

static void connected(evdb_conn *c)
{
    evdb__timer_stop(c->limit_timer);
    set_state(c, CS_READY);
    /* The idle wait: READ, so a server that drops us is noticed. */
    evdb__wait w = {-1, 0, -1};
    evdb_error err;
    if (c->drv->flush(c->dc, &w, &err) == EVDB__STEP_FAIL) {
        open_failed(c, &err);
        return;
    }
    arm(c, &w);
    if (c->hk && (c->hk->h.on_connect || c->pre_sql)) {
        /* User code never runs inside a driver step: the hooks run from
         * the loop, with the connection ready for their queries. */
        evdb__loop_defer(c->loop, &c->hook_d);
        return;
    }
    open_done(c);
}

static void step(evdb_conn *c, unsigned revents)
{
    evdb__wait w = {-1, 0, -1};
    evdb_error err;
    int r;
    c->in_step = true;
    switch (c->state) {
    case CS_OPENING:
        r = c->drv->connect_step(c->dc, revents, &w, &err);
        if (r == EVDB__STEP_DONE)
            connected(c);
        else if (r == EVDB__STEP_FAIL)
            open_failed(c, &err);
        else
            arm(c, &w);
        break;
    case CS_READY:
        r = c->drv->io(c->dc, revents, &w, &err);
        if (r == EVDB__STEP_FAIL)
            broken(c, &err);
        else
            arm_ready(c, &w);
        break;
    case CS_CLOSING:
        r = c->drv->close_step(c->dc, revents, &w);
        if (r == EVDB__STEP_WAIT)
            arm(c, &w);
        else
            close_finished(c);
        break;
    default:
        stop_watchers(c);
        break;
    }
    c->in_step = false;
    if (c->free_after_step) {
        conn_free(c);
        return;
    }
    pump(c);
}

static void on_io(void *arg, unsigned revents)
{
    step(arg, revents);
}

static void on_wait_timer(void *arg)
{
    step(arg, EVDB__EV_TIMEOUT);
}

static void on_limit_timer(void *arg)
{
    evdb_conn *c = arg;
    evdb_error err;
    if (c->state == CS_OPENING) {
        evdb__error_set(&err, EVDB_ECONNTIMEOUT, 0, NULL, "could not connect within %g s",
                        c->connect_timeout);
        open_failed(c, &err);
    } else if (c->state == CS_CLOSING) {
        /* The server did not acknowledge in time: drop the session. */
        close_finished(c);
    }
}

/* ---- server-side cancel ---- */

static void cancel_step(evdb_conn *c, unsigned revents)
{
    evdb__wait w = {-1, 0, -1};
    evdb_error err;
    int r = c->drv->cancel_step(c->cop, revents, &w, &err);
    if (r == EVDB__STEP_WAIT) {
        evdb__io_arm(c->cio, w.fd, w.events);
        if (w.timeout_ms >= 0)
            evdb__timer_start(c->ctimer, w.timeout_ms / 1000.0);
        else
            evdb__timer_stop(c->ctimer);
        return;
    }
    /* Done or failed: either way the query now ends by itself. */
    cancel_op_free(c);
    pump(c);
}

static void on_cancel_io(void *arg, unsigned revents)
{
    cancel_step(arg, revents);
}

static void on_cancel_timer(void *arg)
{
    cancel_step(arg, EVDB__EV_TIMEOUT);
}

/* Start a server-side cancel when the query the server is running (the
 * oldest in flight) has been given up on. */
static void maybe_start_cancel(evdb_conn *c)
{
    evdb__cq *h = c->inflight.head;
    if (!h || !h->q.cancel_requested || h->cancel_started || c->cop)
        return;
    /* One the driver has not put on the wire is not cancelled on the
     * server (that would stop whatever runs instead): the driver drops it
     * unsent and reports it (drivers/driver.h, query_sent). Asked again
     * after every step. */
    if (!query_sent(c, h))
        return;
    h->cancel_started = true;
    if (!(c->drv->caps & EVDB__CAP_SERVER_CANCEL) || !c->drv->cancel_start)
        return;
    if (!c->cio) {
        c->cio = evdb__io_new(c->loop, on_cancel_io, c);
        c->ctimer = evdb__timer_new(c->loop, on_cancel_timer, c);
        if (!c->cio || !c->ctimer)
            return; /* no memory: the query ends by itself */
    }
    evdb__wait w = {-1, 0, -1};
    evdb_error err;
    evdb__cancel *op = NULL;
    int r = c->drv->cancel_start(c->dc, &h->q, &op, &w, &err);
    if (r == EVDB__STEP_WAIT && op) {
        c->cop = op;
        evdb__io_arm(c->cio, w.fd, w.events);
        if (w.timeout_ms >= 0)
            evdb__timer_start(c->ctimer, w.timeout_ms / 1000.0);
    } else if (op) {
        c->drv->cancel_free(op);
    }
}

/* ---- the pump: hand pending queries to the driver ---- */

static void pump(evdb_conn *c)
{
    /* Loops because a driver may finish queries inside flush (the server
     * answered before the first read would block): that frees capacity
     * with queries still pending, and nothing else would wake us. */
    while (c->state == CS_READY && !c->in_step) {
        maybe_start_cancel(c);
        /* A connection serves again only after a cancel has settled: the
         * cancelled query has been reported and the cancel op is finished. */
        if (c->cop || (c->inflight.head && c->inflight.head->q.cancel_requested))
            return;
        size_t sent = 0, refused = 0;
        while (c->pending.head && c->drv->capacity(c->dc) > 0) {
            evdb__cq *q = c->pending.head;
            evdb__qlist_remove(&c->pending, q);
            evdb_error err;
            c->in_step = true;
            int rc = c->drv->send(c->dc, &q->q, &err);
            c->in_step = false;
            if (rc < 0) {
                evdb__future_fail_err(q->f, &err);
                evdb__cq_free(q);
                refused++;
                continue;
            }
            q->where = EVDB__Q_INFLIGHT;
            if (!c->inflight.head)
                c->head_since = evdb__loop_now(c->loop);
            evdb__qlist_push(&c->inflight, q);
            sent++;
        }
        /* A refused query made room as a finished one does: the owner
         * (a pool) feeds the connection again, or its queue would wait
         * for a completion that never comes. Its submissions only queue
         * and schedule this pump again. */
        if (refused && c->owner_ops)
            c->owner_ops->room(c->owner, c);
        if (!sent)
            return;
        evdb__wait w = {-1, 0, -1};
        evdb_error err;
        c->in_step = true;
        int r = c->drv->flush(c->dc, &w, &err);
        c->in_step = false;
        if (r == EVDB__STEP_FAIL)
            broken(c, &err);
        else
            arm_ready(c, &w);
        if (c->free_after_step) {
            conn_free(c);
            return;
        }
    }
}

static void pump_deferred(evdb__deferred *d)
{
    evdb_conn *c = EVDB__CONTAINER_OF(d, evdb_conn, pump_d);
    pump(c);
}

/* A driver waiting without READ (a paused stream or COPY TO STDOUT) or
 * with data of the user's to send (COPY FROM STDIN) gets an io step as if
 * the socket were readable: once a stream's consumer wants rows again (or
 * gave up on it), once a copy has data, an end or an abort to pass on (a
 * read that finds nothing is harmless). */
static void kick_deferred(evdb__deferred *d)
{
    evdb_conn *c = EVDB__CONTAINER_OF(d, evdb_conn, kick_d);
    if (c->state == CS_READY && !c->in_step)
        step(c, EVDB__EV_READ);
}

void evdb__conn_kick(evdb_conn *c)
{
    evdb__loop_defer(c->loop, &c->kick_d);
}

void evdb__cq_kick(evdb__cq *q)
{
    if (q->where == EVDB__Q_INFLIGHT && q->conn->state == CS_READY)
        evdb__conn_kick(q->conn);
}

/* ---- what drivers call ---- */

static void query_finished(evdb__cq *q)
{
    evdb_conn *c = q->conn;
    if (c->inflight.head == q) {
        /* The next query becomes the head now: the server turns to it. */
        double now = evdb__loop_now(c->loop);
        c->head_took = now - c->head_since;
        c->head_since = now;
    }
    evdb__qlist_remove(&c->inflight, q);
    evdb__cq_free(q);
    if (c->owner_ops)
        c->owner_ops->room(c->owner, c);
}

void evdb__query_done(evdb__query *dq, evdb_result *r)
{
    evdb__cq *q = (evdb__cq *)dq;
    if (!evdb__future_resolve(q->f, r, (void (*)(void *))evdb__result_free))
        evdb__result_free(r);
    query_finished(q);
}

/* Failures a driver reports for a statement whose result it lost, not
 * for one the server refused or rolled back: the statement ran (the result
 * was too big to keep, or no memory for it), or may have (the protocol
 * broke, the session was lost). */
static bool result_lost(int code)
{
    return code == EVDB_ECONNLOST || code == EVDB_ETOOBIG || code == EVDB_ENOMEM ||
           code == EVDB_EPROTO;
}

void evdb__query_failed(evdb__query *dq, const evdb_error *e)
{
    evdb__cq *q = (evdb__cq *)dq;
    if (result_lost(e->code) && !e->outcome_unknown && query_sent(q->conn, q)) {
        /* Sent, and the server's answer is not a failure of the
         * statement: it may have taken effect. */
        evdb_error u;
        evdb__error_copy(&u, e);
        u.outcome_unknown = true;
        evdb__future_fail_err(q->f, &u);
    } else {
        evdb__future_fail_err(q->f, e);
    }
    query_finished(q);
}

/* ---- per-query deadline and cancel ---- */

static void query_give_up(evdb__cq *q)
{
    if (q->timer)
        evdb__timer_stop(q->timer);
    if (q->where == EVDB__Q_POOL) {
        evdb__pool_forget(q->pool, q);
        evdb__cq_free(q);
        return;
    }
    evdb_conn *c = q->conn;
    if (q->where == EVDB__Q_PENDING) {
        evdb__qlist_remove(&c->pending, q);
        evdb__cq_free(q);
        return;
    }
    /* Counted in its pool's stats now, as done (evdb__cq_free skips the
     * queries marked here): the driver may report it much later. */
    if (q->pool)
        evdb__pool_count(q->pool, evdb__future_peek(q->f));
    q->q.cancel_requested = true;
    if (c->inflight.head == q)
        evdb__loop_defer(c->loop, &c->pump_d);
    if (q->q.stream)
        evdb__cq_kick(q); /* a paused stream reads again, and drops the rest */
    if (q->q.copy)
        evdb__conn_kick(c); /* the driver aborts the copy in its next step */
}

void evdb__cq_timed_out(void *arg)
{
    evdb__cq *q = arg;
    /* Say which stage ran out of time and whether the statement may have
     * taken effect (evdb_error_outcome_unknown): it is what a user
     * decides next. */
    bool sent = query_sent(q->conn, q);
    const char *stage;
    if (q->where == EVDB__Q_POOL)
        stage = "waiting for a pooled connection, not sent: it did not run";
    else if (!sent)
        stage = "queued on its connection, not sent: it did not run";
    else if ((q->conn->drv->caps & EVDB__CAP_SERVER_CANCEL) && q->conn->drv->cancel_start)
        stage = "sent to the server; cancelling it there: whether it took effect is unknown";
    else
        stage = "sent to the server, which cannot be told to stop it: whether it took effect "
                "is unknown";
    fail_outcome(q, EVDB_ETIMEDOUT, sent, "query timed out after %g s (%s)", q->timeout, stage);
    query_give_up(q);
}

/* evdb_future_cancel has failed the future already (EVDB_ECANCELED); its
 * error now says how far the query got. */
static void query_cancel(void *arg)
{
    evdb__cq *q = arg;
    bool sent = query_sent(q->conn, q);
    evdb_error e;
    evdb__error_set(&e, EVDB_ECANCELED, 0, NULL, "%s",
                    sent ? "query cancelled after it was sent to the server: whether it took "
                           "effect is unknown"
                         : "query cancelled before it was sent: it did not run");
    e.outcome_unknown = sent;
    evdb__future_amend_err(q->f, &e);
    query_give_up(q);
}

const evdb__future_ops evdb__cq_ops = {query_cancel};

/* ---- public API ---- */

static void open_cancel(void *arg)
{
    evdb_conn *c = arg;
    evdb_error err;
    evdb__error_set(&err, EVDB_ECANCELED, 0, NULL, "connect cancelled");
    if (c->state == CS_OPENING)
        open_failed(c, &err);
    else
        hooks_failed(c, &err);
}

static const evdb__future_ops open_ops = {open_cancel};

/* The driver's connect, after the credentials hook answered. */
static void driver_start(evdb_conn *c, const evdb__conn_params *p)
{
    evdb__wait w = {-1, 0, -1};
    evdb_error err;
    int r = c->drv->connect_start(&c->dc, p, &w, &err);
    if (r == EVDB__STEP_FAIL) {
        c->dc = NULL;
        open_failed(c, &err);
    } else if (r == EVDB__STEP_DONE) {
        connected(c);
    } else {
        arm(c, &w);
    }
}

static evdb_future *open_with_credentials(evdb_conn *c, const evdb__conn_params *p)
{
    evdb_future *f = evdb_future_ref(c->open_f);
    evdb__future_set_op(f, &open_ops, c);
    /* The deadline covers the credentials hook too. */
    if (c->connect_timeout > 0)
        evdb__timer_start(c->limit_timer, c->connect_timeout);
    ask_credentials(c, p);
    return f;
}

static evdb_future *open_plain(evdb_conn *c, const evdb__conn_params *p)
{
    evdb__wait w = {-1, 0, -1};
    evdb_error err;
    int r = c->drv->connect_start(&c->dc, p, &w, &err);
    if (r == EVDB__STEP_FAIL) {
        if (err.code == EVDB_EURL || err.code == EVDB_EINVAL || err.code == EVDB_ENOMEM) {
            c->dc = NULL;
            connect_end(c, &err);
            conn_free(c);
            evdb__set_last(&err);
            return NULL;
        }
        evdb_future *f = evdb_future_ref(c->open_f);
        c->dc = NULL;
        open_failed(c, &err);
        return f;
    }
    evdb_future *f = evdb_future_ref(c->open_f);
    evdb__future_set_op(f, &open_ops, c);
    if (r == EVDB__STEP_DONE) {
        connected(c);
        return f;
    }
    arm(c, &w);
    if (c->connect_timeout > 0)
        evdb__timer_start(c->limit_timer, c->connect_timeout);
    return f;
}

evdb_future *evdb_conn_open(struct ev_loop *loop, const char *url, const evdb_conn_opts *opts)
{
    if (!loop || !url) {
        evdb__fail_now(EVDB_EINVAL, "evdb_conn_open: loop and url are required");
        return NULL;
    }
    bool nomem = false;
    evdb__hk *hk = opts ? evdb__hk_new(opts->hooks, url, NULL, &nomem) : NULL;
    if (nomem) {
        evdb__fail_now(EVDB_ENOMEM, "evdb_conn_open: out of memory");
        return NULL;
    }
    return evdb__conn_open_hk(loop, url, opts, hk, NULL);
}

/* A new connection object, its watchers and futures made, not started;
 * NULL with the last error set. */
static evdb_conn *conn_new(struct ev_loop *loop, const evdb__driver *drv,
                           const evdb_conn_opts *opts)
{
    evdb__loop *l = evdb__loop_get(loop);
    evdb_conn *c = l ? evdb__calloc(1, sizeof *c) : NULL;
    if (!c) {
        if (l)
            evdb__loop_unref(l);
        evdb__fail_now(EVDB_ENOMEM, "evdb_conn_open: out of memory");
        return NULL;
    }
    c->magic = EVDB__MAGIC_CONN;
    c->loop = l;
    c->drv = drv;
    c->pump_d.fn = pump_deferred;
    c->kick_d.fn = kick_deferred;
    c->hook_d.fn = hook_deferred;
    c->connect_timeout =
        opts->connect_timeout == 0 ? EVDB_DEFAULT_CONNECT_TIMEOUT : opts->connect_timeout;
    c->io = evdb__io_new(l, on_io, c);
    c->wait_timer = evdb__timer_new(l, on_wait_timer, c);
    c->limit_timer = evdb__timer_new(l, on_limit_timer, c);
    c->open_f = evdb__future_new(l, EVDB__FK_OPEN);
    c->close_spare = evdb__future_new(l, EVDB__FK_CLOSE);
    if (!c->io || !c->wait_timer || !c->limit_timer || !c->open_f || !c->close_spare) {
        conn_free(c);
        evdb__fail_now(EVDB_ENOMEM, "evdb_conn_open: out of memory");
        return NULL;
    }
    c->head_took = -1;
    return c;
}

static const evdb__driver *open_checks(struct ev_loop *loop, const char *url,
                                       const evdb_conn_opts *opts)
{
    if (!loop || !url) {
        evdb__fail_now(EVDB_EINVAL, "evdb_conn_open: loop and url are required");
        return NULL;
    }
    const evdb__driver *drv = evdb__driver_for(url);
    if (!drv) {
        evdb__fail_now(EVDB_EURL, "evdb_conn_open: no driver for this URL (expected "
                                  "postgresql://, postgres://, mariadb://, mysql:// or a "
                                  "libpq keyword string)");
        return NULL;
    }
    if (opts->flags) {
        evdb__fail_now(EVDB_EINVAL, "evdb_conn_open: opts.flags must be 0 (no connection flag "
                                    "is defined)");
        return NULL;
    }
    return drv;
}

evdb_future *evdb__conn_open_hk(struct ev_loop *loop, const char *url, const evdb_conn_opts *opts,
                                evdb__hk *hk, const char *pre_sql)
{
    evdb_conn_opts defaults;
    memset(&defaults, 0, sizeof defaults);
    if (!opts)
        opts = &defaults;
    const evdb__driver *drv = open_checks(loop, url, opts);
    evdb_conn *c = drv ? conn_new(loop, drv, opts) : NULL;
    if (c && pre_sql && !(c->pre_sql = evdb__strdup(pre_sql))) {
        conn_free(c);
        evdb__fail_now(EVDB_ENOMEM, "evdb_conn_open: out of memory");
        c = NULL;
    }
    if (!c) {
        evdb__hk_free(hk);
        return NULL;
    }
    c->hk = hk;
    evdb__conn_params p = {
        .url = url,
        .pipeline_depth = opts->pipeline_depth ? opts->pipeline_depth : drv->default_depth,
        .stmt_cache_size = opts->stmt_cache_size == EVDB_STMT_CACHE_OFF ? 0
                           : opts->stmt_cache_size                      ? opts->stmt_cache_size
                                                                        : EVDB_DEFAULT_STMT_CACHE,
        .max_result_bytes = opts->max_result_bytes,
        .core = c,
    };
    if (p.pipeline_depth == 0 || !(drv->caps & EVDB__CAP_PIPELINE))
        p.pipeline_depth = 1;
    c->depth = p.pipeline_depth;
    if (hk) {
        c->connect_t0 = evdb__loop_now(c->loop);
        evdb_trace_event ev = {.kind = EVDB_TRACE_CONNECT_START};
        evdb__hk_emit(hk, &ev);
        if (hk->h.credentials)
            return open_with_credentials(c, &p);
    }
    return open_plain(c, &p);
}

/* evdb__conn_query with QUERY_START now and QUERY_END when the query's
 * future completes (hooks.h); h: the handle the caller used. */
static evdb_future *query_traced(evdb_conn *c, evdb_conn *h, const char *sql,
                                 const evdb_value *params, size_t nparams,
                                 const evdb_query_opts *opts)
{
    evdb_future *f = evdb__conn_query(c, sql, params, nparams, opts);
    if (f && c->hk->h.trace)
        evdb__hk_span(c->hk, c->loop, EVDB_TRACE_QUERY_START, f, sql, opts ? opts->trace_ctx : NULL,
                      h);
    return f;
}

evdb_future *evdb_conn_query(evdb_conn *h, const char *sql, const evdb_value *params,
                             size_t nparams, const evdb_query_opts *opts)
{
    evdb_conn *c = conn_for_call(h, "evdb_conn_query");
    if (!c || evdb__check_query_flags("evdb_conn_query", opts))
        return NULL;
    /* Unset hooks cost this test; the call below stays a tail call. */
    if (__builtin_expect(c->hk != NULL, 0))
        return query_traced(c, h, sql, params, nparams, opts);
    return evdb__conn_query(c, sql, params, nparams, opts);
}

/* Whether c takes queries now; if not, the last error says why
 * (EVDB_ECONNLOST once lost, EVDB_ECLOSED while opening or closing). */
static bool takes_queries(const evdb_conn *c, const char *who)
{
    if (c->state == CS_READY)
        return true;
    if (c->state == CS_BROKEN)
        evdb__fail_now(EVDB_ECONNLOST, "%s: the connection was lost", who);
    else
        evdb__fail_now(EVDB_ECLOSED, "%s: the connection is %s", who, state_names[c->state]);
    return false;
}

evdb_future *evdb__conn_query(evdb_conn *c, const char *sql, const evdb_value *params,
                              size_t nparams, const evdb_query_opts *opts)
{
    if (!takes_queries(c, "evdb_conn_query"))
        return NULL;
    evdb__cq *q = evdb__cq_new(c->loop, "evdb_conn_query", sql, params, nparams, opts);
    if (!q)
        return NULL;
    evdb_future *f = q->f;
    evdb__conn_submit(c, q);
    return f;
}

evdb_conn *evdb__conn_for_stream(evdb_conn *h, const char *who)
{
    evdb_conn *c = conn_for_call(h, who);
    if (!c)
        return NULL;
    if (!(c->drv->caps & EVDB__CAP_STREAM)) {
        evdb__fail_now(EVDB_ENOTSUP, "%s: not supported by the %s driver", who, c->drv->name);
        return NULL;
    }
    return takes_queries(c, who) ? c : NULL;
}

evdb_future *evdb_conn_batch(evdb_conn *h, const evdb_stmt *stmts, size_t n,
                             const evdb_query_opts *opts)
{
    evdb_conn *c = conn_for_call(h, "evdb_conn_batch");
    if (!c || evdb__check_query_flags("evdb_conn_batch", opts))
        return NULL;
    if (!(c->drv->caps & EVDB__CAP_BATCH)) {
        evdb__fail_now(EVDB_ENOTSUP, "evdb_conn_batch: not supported by the %s driver",
                       c->drv->name);
        return NULL;
    }
    if (!takes_queries(c, "evdb_conn_batch"))
        return NULL;
    evdb__cq *q = evdb__cq_new_batch(c->loop, "evdb_conn_batch", stmts, n, opts);
    if (!q)
        return NULL;
    evdb_future *f = q->f;
    evdb__conn_submit(c, q);
    if (c->hk && c->hk->h.trace)
        evdb__hk_span(c->hk, c->loop, EVDB_TRACE_QUERY_START, f, stmts[0].sql,
                      opts ? opts->trace_ctx : NULL, h);
    return f;
}

/* evdb_conn_prepare / evdb_conn_unprepare: a query carrying an internal
 * flag (drivers/driver.h), queued in order with the others. */
static evdb_future *submit_special(evdb_conn *h, const char *who, const char *sql,
                                   const evdb_value *params, size_t nparams,
                                   const evdb_query_opts *opts, unsigned flag)
{
    evdb_conn *c = conn_for_call(h, who);
    if (!c || evdb__check_query_flags(who, opts))
        return NULL;
    if (!(c->drv->caps & EVDB__CAP_PREPARE)) {
        evdb__fail_now(EVDB_ENOTSUP, "%s: not supported by the %s driver yet", who, c->drv->name);
        return NULL;
    }
    if (!takes_queries(c, who))
        return NULL;
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    o.flags = (o.flags & ~EVDB_QUERY_NO_CACHE) | flag;
    evdb__cq *q = evdb__cq_new(c->loop, who, sql, params, nparams, &o);
    if (!q)
        return NULL;
    evdb_future *f = q->f;
    evdb__conn_submit(c, q);
    return f;
}

evdb_future *evdb_conn_prepare(evdb_conn *c, const char *sql, const evdb_value *params,
                               size_t nparams, const evdb_query_opts *opts)
{
    return submit_special(c, "evdb_conn_prepare", sql, params, nparams, opts, EVDB__QUERY_PREPARE);
}

evdb_future *evdb_conn_unprepare(evdb_conn *c, const char *sql, const evdb_value *params,
                                 size_t nparams, const evdb_query_opts *opts)
{
    return submit_special(c, "evdb_conn_unprepare", sql, params, nparams, opts,
                          EVDB__QUERY_UNPREPARE);
}

void evdb__conn_submit(evdb_conn *c, evdb__cq *q)
{
    q->conn = c;
    q->where = EVDB__Q_PENDING;
    evdb__qlist_push(&c->pending, q);
    /* Send from the loop, so that queries submitted together go out
     * together (one write for the batch, each query with its own Sync). */
    evdb__loop_defer(c->loop, &c->pump_d);
}

size_t evdb__conn_load(const evdb_conn *c)
{
    return c->pending.n + c->inflight.n;
}

unsigned evdb__conn_depth(const evdb_conn *c)
{
    return c->depth;
}

bool evdb__conn_ready(const evdb_conn *c)
{
    return c->state == CS_READY;
}

evdb__loop *evdb__conn_loop(const evdb_conn *c)
{
    return c->loop;
}

double evdb__conn_head_age(const evdb_conn *c, double now)
{
    return c->inflight.head ? now - c->head_since : 0;
}

double evdb__conn_take_service(evdb_conn *c)
{
    double t = c->head_took;
    c->head_took = -1;
    return t;
}

size_t evdb__conn_take_unsent(evdb_conn *c, evdb__qlist *out)
{
    if (c->in_step || c->state != CS_READY)
        return 0;
    size_t n = 0;
    evdb__qlist back = {NULL, NULL, 0};
    /* From the newest back: the driver gives back only the tail of what
     * it holds, so the ones it keeps stay in order behind the sent ones. */
    if (c->drv->take_unsent && c->dc) {
        evdb__query *dq;
        while (c->inflight.n > 1 && (dq = c->drv->take_unsent(c->dc))) {
            evdb__cq *q = (evdb__cq *)dq;
            if (unsend(c, q))
                evdb__qlist_push_front(&back, q);
        }
    }
    pending_prepend(c, &back);
    /* Now the pending list holds every unsent query, oldest first. Only
     * the pool's own queries leave: a borrower's statements and the
     * pool's reset belong to this connection's session and stay, in
     * order, to be sent here. */
    for (evdb__cq *q = c->pending.head, *next; q; q = next) {
        next = q->next;
        if (!q->pool)
            continue;
        evdb__qlist_remove(&c->pending, q);
        q->conn = NULL;
        evdb__qlist_push(out, q);
        n++;
    }
    if (c->pending.head)
        evdb__loop_defer(c->loop, &c->pump_d);
    return n;
}

void evdb__conn_set_owner(evdb_conn *c, const evdb__conn_owner *ops, void *owner)
{
    c->owner_ops = ops;
    c->owner = owner;
}

const char *evdb__conn_current_sql(const evdb_conn *c)
{
    if (c->inflight.head)
        return c->inflight.head->q.sql;
    if (c->pending.head)
        return c->pending.head->q.sql;
    return NULL;
}

evdb_future *evdb_conn_close(evdb_conn *h)
{
    evdb_conn *c = conn_lookup(h, "evdb_conn_close");
    if (!c)
        return NULL;
    if (c->owner) {
        evdb__fail_now(EVDB_EINVAL, "evdb_conn_close: the connection belongs to a pool: "
                                    "release it with evdb_conn_release");
        return NULL;
    }
    return evdb__conn_close(c);
}

evdb_future *evdb__conn_close(evdb_conn *c)
{
    if (c->state == CS_CLOSING || c->state == CS_CLOSED || c->close_f) {
        evdb__fail_now(EVDB_ECLOSED, "evdb_conn_close: already closing");
        return NULL;
    }
    evdb_future *f = c->close_spare;
    c->close_spare = NULL;
    c->close_f = evdb_future_ref(f);
    cancel_op_free(c);
    take_back_unsent(c);
    /* The older ones first: futures complete in submission order. */
    fail_all(c, &c->inflight, EVDB_ECLOSED, true,
             "connection closed while the query ran (it had been sent: whether it took effect "
             "is unknown)");
    fail_all(c, &c->pending, EVDB_ECLOSED, false,
             "connection closed before the query was sent (it did not run)");
    conn_state was = c->state;
    set_state(c, CS_CLOSING);
    stop_watchers(c);
    if (was != CS_READY || !c->dc) {
        close_finished(c);
        return f;
    }
    evdb__wait w = {-1, 0, -1};
    int r = c->drv->close_start(c->dc, &w);
    if (r != EVDB__STEP_WAIT) {
        close_finished(c);
        return f;
    }
    arm(c, &w);
    evdb__timer_start(c->limit_timer, CLOSE_TIMEOUT);
    return f;
}

void evdb__conn_abandon(void *conn)
{
    evdb_future *f = evdb_conn_close(conn);
    if (f)
        evdb__future_disown(f);
}

/* The read-only calls take a pooled connection's own address too (they
 * change nothing), but a stale handle fails like any call. */
const evdb__driver *evdb__conn_drv(const evdb_conn *h, const char *who)
{
    const evdb_conn *c = conn_lookup(h, who);
    return c ? c->drv : NULL;
}

const char *evdb_conn_driver(const evdb_conn *h)
{
    const evdb__driver *d = evdb__conn_drv(h, "evdb_conn_driver");
    return d ? d->name : NULL;
}

size_t evdb_conn_pending(const evdb_conn *h)
{
    const evdb_conn *c = conn_lookup(h, "evdb_conn_pending");
    return c ? c->pending.n + c->inflight.n : 0;
}

int64_t evdb_conn_server_id(const evdb_conn *h)
{
    const evdb_conn *c = conn_lookup(h, "evdb_conn_server_id");
    if (!c || !c->dc || !c->drv->server_id)
        return 0;
    return c->drv->server_id(c->dc);
}

int evdb_conn_status(const evdb_conn *h)
{
    const evdb_conn *c = conn_lookup(h, "evdb_conn_status");
    if (!c)
        return EVDB_EINVAL;
    switch (c->state) {
    case CS_READY:
        return 0;
    case CS_BROKEN:
        return EVDB_ECONNLOST;
    case CS_OPENING:
        return EVDB_ESTATE;
    default:
        return EVDB_ECLOSED;
    }
}

const evdb_error *evdb_conn_error(const evdb_conn *h)
{
    const evdb_conn *c = conn_lookup(h, "evdb_conn_error");
    if (!c || c->state != CS_BROKEN)
        return NULL;
    return &c->lost;
}

evdb_error *evdb__notice_new(void *core)
{
    evdb_conn *c = core;
    return c->notices ? evdb__noticeq_push(c->notices) : NULL;
}

int evdb_conn_set_notice_hook(evdb_conn *h, evdb_notice_fn fn, void *arg)
{
    evdb_conn *c = conn_lookup(h, "evdb_conn_set_notice_hook");
    if (!c)
        return evdb_error_code(evdb_last_error());
    if (c->owner)
        return evdb__fail_now(EVDB_ENOTSUP, "evdb_conn_set_notice_hook: not for pooled "
                                            "connections (the hook would outlive the borrow)");
    if (c->state == CS_CLOSING || c->state == CS_CLOSED)
        return evdb__fail_now(EVDB_ECLOSED, "evdb_conn_set_notice_hook: the connection is "
                                            "closing");
    if (!c->notices) {
        if (!fn)
            return 0;
        c->notices = evdb__noticeq_new(c->loop, c);
        if (!c->notices)
            return evdb__fail_now(EVDB_ENOMEM, "evdb_conn_set_notice_hook: out of memory");
    }
    evdb__noticeq_set(c->notices, fn, arg);
    return 0;
}

/* ---- listener hooks (src/listen.c) ---- */

void evdb__notification(void *core, const char *channel, const char *payload, size_t payload_len,
                        int64_t sender_id)
{
    evdb_conn *c = core;
    if (c->lsn)
        c->lsn->notify(c->lsn_arg, channel, payload, payload_len, sender_id);
}

int evdb__conn_set_listener(evdb_conn *c, const evdb__conn_listener *ops, void *arg)
{
    if (!c->drv->listen)
        return EVDB_ENOTSUP;
    c->lsn = ops;
    c->lsn_arg = arg;
    if (c->dc)
        c->drv->listen(c->dc, ops != NULL);
    return 0;
}

/* ---- COPY (src/copy.c) ---- */

evdb_future *evdb__conn_copy(evdb_conn *h, const char *who, const char *sql,
                             const evdb_query_opts *opts, evdb__copy *cp, evdb_conn **out)
{
    evdb_conn *c = conn_for_call(h, who);
    if (!c)
        return NULL;
    if (!(c->drv->caps & EVDB__CAP_COPY)) {
        evdb__fail_now(EVDB_ENOTSUP, "%s: the %s driver has no COPY", who, c->drv->name);
        return NULL;
    }
    if (!takes_queries(c, who))
        return NULL;
    evdb__cq *q = evdb__cq_new(c->loop, who, sql, NULL, 0, opts);
    if (!q)
        return NULL;
    q->q.copy = cp;
    *out = c;
    evdb_future *f = q->f;
    evdb__conn_submit(c, q);
    return f;
}
