/*
 * The connection pool. Members are connections the pool opened; queries
 * wait in one FIFO queue (evdb__cq objects, moved to a connection without
 * copying) and exclusive acquires in another. One timer watches the oldest
 * waiter's acquire deadline (equal timeouts keep FIFO order = deadline
 * order), one drives reconnect backoff, one retires old or idle members.
 *
 * Pool work that is not urgent runs deferred from the loop (dispatch_d), so
 * nothing re-enters a connection from inside its driver step.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "hooks_rt.h"
#include "pool_conn.h"
#include "trace.h"

#define EVDB__MAGIC_POOL 0x506f6f6cu /* "Pool" */
#define MAINT_INTERVAL 1.0

typedef enum mstate { M_OPENING, M_READY, M_VALIDATING, M_ACQUIRED, M_RESETTING, M_CLOSING } mstate;

/* stall_threshold took the first of the three reserved pointers that
 * ended evdb_pool_opts: the struct keeps its size where a double is as
 * wide as a pointer. */
#if UINTPTR_MAX > 0xffffffffu
_Static_assert(sizeof(evdb_pool_opts) ==
                   offsetof(evdb_pool_opts, stall_threshold) + 3 * sizeof(void *),
               "evdb_pool_opts changed size");
#endif

/* Defaults for zero options. */
#define DEFAULT_BACKOFF_INITIAL 0.1
#define DEFAULT_BACKOFF_MAX 5.0
#define DEFAULT_BACKOFF_JITTER 0.2
#define DEFAULT_VALIDATE_AFTER 30.0
#define DEFAULT_CLOSE_GRACE 5.0
/* A validation ping gets this long before the connection counts as dead. */
#define VALIDATE_TIMEOUT 5.0
/* The adaptive stall threshold (docs/pool.md, "Routing"): STALL_FACTOR
 * times a decaying mean of the service times the pool observes, each
 * sample clipped at the threshold of the moment (one long statement moves
 * it by at most a sixteenth of the way to STALL_FACTOR times; a workload
 * that is slow throughout still raises it within a dozen statements),
 * kept between STALL_FLOOR (about what a new connection costs: stalling a
 * connection earlier would buy nothing) and STALL_CAP. */
#define STALL_FACTOR 8.0
#define STALL_FLOOR 0.02
#define STALL_CAP 1.0
#define STALL_WEIGHT (1.0 / 16)

typedef struct member member;
struct member {
    evdb_pool *pool;
    evdb_conn *c;
    evdb_future *open_f;
    mstate st;
    double born, last_used;
    double lifetime; /* max_lifetime less its jitter, for this one */
    double acquired_at;
    const char *acquired_file;
    int acquired_line;
    /* While borrowed: the handle the borrower got (see borrow_begin), and
     * the links of this thread's list of live borrows. 0 otherwise. */
    uintptr_t handle;
    member *bprev, *bnext;
    bool leak_reported;
    /* How many reset or validation callbacks (reset_done, validated) are
     * still to run for this member; when the member closes first it stays
     * allocated (gone) until the last of them has run and freed it. */
    unsigned cb_pending;
    bool gone;
    /* Session resets queued on the connection whose reset_done has not
     * run yet: the connection counts as idle with only these on it (an
     * exclusive acquire may have it, its statements queued behind). */
    unsigned nresets;
    /* A reset failed while the member was lent out again: its release
     * closes it (the drivers that know resets drop the connection
     * themselves; this covers any other). */
    bool reset_failed;
    /* A reset failed on a connection still up and not lent out: it takes
     * no more work (M_RESETTING) and is closed once what runs on it has
     * ended (dispatch), so pooled queries already sent are not failed by
     * the close. */
    bool retiring;
    member *prev, *next;
};

static const char *const mstate_names[] = {"opening",  "ready",     "validating",
                                           "borrowed", "resetting", "closing"};

/* Every change of a member's state goes through here (src/trace.h). The
 * first state, M_OPENING, is set where the member is made. */
#define member_set(m, s) member_set_at((m), (s), __FILE__, __LINE__)
static void member_set_at(member *m, mstate s, const char *file, int line)
{
    EVDB__TRACE_STATE("pool member", m, mstate_names[m->st], mstate_names[s], file, line);
    m->st = s;
}

typedef struct acq acq;
struct acq {
    evdb_pool *pool;
    evdb_future *f;
    double deadline;
    double submitted;
    const char *file;
    int line;
    acq *prev, *next;
};

struct evdb_pool {
    uint32_t magic;
    evdb__loop *loop;
    char *url;
    const evdb__driver *drv; /* the URL's */
    char *on_connect_sql;
    evdb_pool_opts o;
    /* Hooks and tracing (src/hooks_rt.h), or NULL. */
    evdb__hk *hk;
    double life_jitter; /* fraction, 0 = none */
    uint32_t life_rng;
    member *members;
    unsigned nmembers, nopening;
    evdb__qlist waitq;
    acq *acq_head, *acq_tail;
    size_t nacq;
    evdb__timer *deadline_timer, *backoff_timer, *maint_timer, *grace_timer;
    evdb__backoff backoff; /* reconnects after failed connects */
    bool backing_off;
    evdb_error last_err;
    bool have_err;
    evdb_pool_stats st;
    evdb_future *close_f;
    evdb_future *close_spare; /* made with the pool: closing needs no memory */
    bool closed;              /* only the handle is left (see pool_shell_free) */
    evdb__deferred dispatch_d;
    char discard_reason[160];
    /* Routing (docs/pool.md, "Routing"): the stall threshold in force
     * (INFINITY when off), the decaying mean service time it is derived
     * from, and the stall timer with the time it is armed for (INFINITY:
     * not armed). */
    double stall, svc;
    evdb__timer *stall_timer;
    double stall_at;
};

static void dispatch(evdb_pool *p);
static void member_close(member *m);
static void borrow_end(member *m);
static void on_grace(void *arg);
static void trace(evdb_pool *p, evdb__cq *q);

static double dmin(double a, double b)
{
    return a < b ? a : b;
}

static void schedule_dispatch(evdb_pool *p)
{
    evdb__loop_defer(p->loop, &p->dispatch_d);
}

static void dispatch_deferred(evdb__deferred *d)
{
    dispatch(EVDB__CONTAINER_OF(d, evdb_pool, dispatch_d));
}

/* ---- members ---- */

static void member_unlink(member *m)
{
    evdb_pool *p = m->pool;
    if (m->prev)
        m->prev->next = m->next;
    else
        p->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    p->nmembers--;
}

/* What is left of a closed pool while its close future lives: the
 * handle, marked closed and holding nothing, so that a late call on it (a
 * second close, a query) is refused with EVDB_ECLOSED instead of reading
 * freed memory. It goes with the close future. */
static void pool_shell_free(void *arg)
{
    evdb_pool *p = arg;
    p->magic = EVDB__MAGIC_DEAD;
    evdb__free(p);
}

static void pool_free_if_closed(evdb_pool *p)
{
    if (!p->close_f || p->nmembers)
        return;
    evdb__loop_undefer(p->loop, &p->dispatch_d);
    evdb__timer_free(p->deadline_timer);
    evdb__timer_free(p->backoff_timer);
    evdb__timer_free(p->maint_timer);
    evdb__timer_free(p->grace_timer);
    evdb__timer_free(p->stall_timer);
    evdb__free(p->url);
    evdb__free(p->on_connect_sql);
    evdb__hk_free(p->hk);
    p->hk = NULL;
    evdb__loop *l = p->loop;
    evdb_future *cf = p->close_f;
    if (evdb__future_resolve(cf, p, pool_shell_free)) {
        p->closed = true;
        p->close_f = NULL;
        p->loop = NULL;
        p->url = p->on_connect_sql = NULL;
        p->deadline_timer = p->backoff_timer = p->maint_timer = p->grace_timer = NULL;
        p->stall_timer = NULL;
        evdb_future_unref(cf); /* may free p (pool_shell_free) */
    } else {
        evdb_future_unref(cf);
        p->magic = EVDB__MAGIC_DEAD;
        evdb__free(p);
    }
    evdb__loop_unref(l);
}

static void member_closed(evdb_future *f, void *arg)
{
    member *m = arg;
    evdb_pool *p = m->pool;
    (void)f;
    borrow_end(m); /* never borrowed when it closes; kept safe regardless */
    member_unlink(m);
    /* Its connection broke during a reset or validation: that callback
     * may still be queued behind this one, and frees the member. */
    if (m->cb_pending)
        m->gone = true;
    else
        evdb__free(m);
    schedule_dispatch(p);
    pool_free_if_closed(p);
}

/* At the start of reset_done / validated: true when the member closed
 * meanwhile (it is freed here, and neither it nor its pool, which may be
 * gone too, may be touched). */
static bool member_gone(member *m)
{
    m->cb_pending--;
    if (!m->gone)
        return false;
    if (!m->cb_pending)
        evdb__free(m);
    return true;
}

static void member_close(member *m)
{
    member_set(m, M_CLOSING);
    evdb_future *f = m->c ? evdb__conn_close(m->c) : NULL;
    /* The close owns the connection now, and may have freed it already
     * (a close that needs no I/O finishes at once): never look at it
     * again, although member_closed runs only later, from the loop. */
    m->c = NULL;
    if (!f || evdb_future_on_done(f, member_closed, m)) {
        /* Out of memory closing: the connection is freed with the loop's
         * last reference at worst; drop the member now. */
        evdb_future_unref(f);
        member_closed(NULL, m);
        return;
    }
    evdb_future_unref(f);
}

/* Least-loaded ready member with room, preferring idle ones. */
static void validate(member *m);

/* Ready to take work now; a connection idle too long is pinged first (and
 * is not usable until the ping came back). */
static bool usable(member *m)
{
    if (m->st != M_READY || !evdb__conn_ready(m->c))
        return false;
    evdb_pool *p = m->pool;
    if (p->o.validate_after >= 0 && evdb__conn_load(m->c) == 0 &&
        evdb__loop_now(p->loop) - m->last_used >= p->o.validate_after) {
        validate(m);
        return false;
    }
    return true;
}

/* Whether m's head (the statement its server runs) is young: under the
 * stall threshold. A connection with an old head takes no more pipelined
 * work: whatever it got would wait for that statement. */
static bool young(const evdb_pool *p, const member *m, double now)
{
    return evdb__conn_head_age(m->c, now) < p->stall;
}

/* The pool may open another connection for a waiting query now. */
static bool can_grow(const evdb_pool *p)
{
    return !p->backing_off && p->nmembers < p->o.max_conns;
}

/* Whether a query may be pipelined behind others on a busy connection at
 * all: only when no connection can be had otherwise, i.e. the pool is at
 * max_conns (or backing off) and none is on its way. At a cold start the
 * first connection up must not take the whole queue. */
static bool may_pipeline(const evdb_pool *p)
{
    return !can_grow(p) && p->nopening == 0;
}

/* m's work beyond the resets its releases queued. A connection whose
 * only work is its reset is idle, for acquires (pick_idle) and pooled
 * queries (pick, takes_more) alike: the reset goes out ahead of whatever
 * comes next, in the same write. nresets may briefly exceed the load (the
 * reset answered, reset_done not run yet). */
static size_t busy_load(const member *m)
{
    size_t load = evdb__conn_load(m->c);
    return load > m->nresets ? load - m->nresets : 0;
}

/* Where the next query goes now: an idle usable connection, else (when
 * the pool may pipeline at all) the least-loaded one with room whose head
 * is young; NULL when none: it waits. */
static member *pick(evdb_pool *p)
{
    member *best = NULL;
    /* Below max_conns only an idle connection will do: none means a new
     * one (dispatch opens it). */
    size_t best_load = may_pipeline(p) ? SIZE_MAX : 1;
    double now = -1;
    for (member *m = p->members; m; m = m->next) {
        if (m->st != M_READY)
            continue;
        /* The cheap tests first: this runs for every pooled query. */
        size_t load = busy_load(m);
        if (load >= best_load || (load > 0 && evdb__conn_load(m->c) >= evdb__conn_depth(m->c)))
            continue;
        if (load > 0) {
            if (now < 0)
                now = evdb__loop_now(p->loop);
            if (!young(p, m, now))
                continue;
        }
        if (!usable(m))
            continue;
        best = m;
        best_load = load;
        if (load == 0)
            break;
    }
    return best;
}

static member *pick_idle(evdb_pool *p)
{
    for (member *m = p->members; m; m = m->next)
        if (m->st == M_READY && busy_load(m) == 0 && usable(m))
            return m;
    return NULL;
}

/* Whether m should take another waiting query now: an idle one always; a
 * busy one only when the pool can get no other connection (may_pipeline)
 * and its head is young. */
static bool takes_more(const member *m)
{
    if (busy_load(m) == 0)
        return true;
    size_t load = evdb__conn_load(m->c);
    const evdb_pool *p = m->pool;
    return load < evdb__conn_depth(m->c) && may_pipeline(p) && young(p, m, evdb__loop_now(p->loop));
}

/* Learn c's last head service time, if a head completed: the adaptive
 * stall threshold follows the service times the pool sees (see
 * STALL_FACTOR). */
static void observe(evdb_pool *p, evdb_conn *c)
{
    double t = evdb__conn_take_service(c);
    if (t < 0 || p->o.stall_threshold != 0)
        return;
    if (t > p->stall)
        t = p->stall;
    p->svc += (t - p->svc) * STALL_WEIGHT;
    double th = STALL_FACTOR * p->svc;
    p->stall = th < STALL_FLOOR ? STALL_FLOOR : th > STALL_CAP ? STALL_CAP : th;
}

/* Watch m's head after a query was queued behind it: the stall timer
 * fires when the head crosses the threshold (on_stall), unless it is
 * armed for an earlier moment already. */
static void watch_stall(evdb_pool *p, member *m)
{
    if (isinf(p->stall))
        return;
    double now = evdb__loop_now(p->loop);
    double at = now - evdb__conn_head_age(m->c, now) + p->stall;
    if (at >= p->stall_at)
        return;
    p->stall_at = at;
    evdb__timer_start(p->stall_timer, at > now ? at - now : 0);
}

/* Put queries back at the front of the wait queue, in order (the list's
 * order, oldest first). Each gets a fresh acquire deadline (one that went
 * straight to a connection never had one, and would otherwise fail at once
 * with EVDB_EPOOLTIMEOUT instead of waiting for another connection), but
 * none later than the deadline of the waiter behind it: the deadline timer
 * relies on the queue being in deadline order. */
static void requeue_front(evdb_pool *p, evdb__qlist *l)
{
    double deadline = evdb__loop_now(p->loop) + p->o.acquire_timeout;
    while (l->tail) {
        evdb__cq *q = l->tail;
        evdb__qlist_remove(l, q);
        q->conn = NULL;
        q->where = EVDB__Q_POOL;
        if (p->waitq.head && p->waitq.head->pool_deadline < deadline)
            deadline = p->waitq.head->pool_deadline;
        q->pool_deadline = deadline;
        evdb__qlist_push_front(&p->waitq, q);
    }
}

/* The stall timer: the queries not yet sent on a connection whose head
 * has run past the threshold go back to the front of the queue and are
 * routed elsewhere (what was sent must wait for its results, as the
 * protocol requires). Then armed for the next head to cross, among
 * connections with work queued behind their head. */
static void on_stall(void *arg)
{
    evdb_pool *p = arg;
    double now = evdb__loop_now(p->loop);
    double next = INFINITY;
    bool moved = false;
    p->stall_at = INFINITY;
    /* A closing pool routes nothing more: what runs finishes where it is. */
    if (p->close_f)
        return;
    /* Each connection's unsent queries go in front of the queue in their
     * own order; between connections the order does not matter: they had
     * been routed as if running at the same time. */
    for (member *m = p->members; m; m = m->next) {
        if (m->st != M_READY || evdb__conn_load(m->c) < 2)
            continue;
        double age = evdb__conn_head_age(m->c, now);
        if (age + 1e-4 >= p->stall) {
            evdb__qlist l = {NULL, NULL, 0};
            if (evdb__conn_take_unsent(m->c, &l)) {
                requeue_front(p, &l);
                moved = true;
            }
        } else if (now - age + p->stall < next) {
            next = now - age + p->stall;
        }
    }
    if (!isinf(next)) {
        p->stall_at = next;
        evdb__timer_start(p->stall_timer, next - now);
    }
    if (moved)
        schedule_dispatch(p);
}

/* Count a pooled query's outcome: every query submitted ends ok or in
 * query_errors, timeouts and cancels included (each also counted on its
 * own), at whatever stage it ended, so that queries = ok + errors. */
void evdb__pool_count(evdb_pool *p, int status)
{
    if (status >= 0)
        return;
    p->st.query_errors++;
    if (status == EVDB_ETIMEDOUT)
        p->st.query_timeouts++;
    else if (status == EVDB_ECANCELED)
        p->st.query_cancels++;
}

/* Record how long a query or acquire waited for its connection. */
static void record_wait(evdb_pool *p, double waited)
{
    static const double bounds[] = {0.001, 0.01, 0.1, 1, 10};
    size_t i = 0;
    while (i < sizeof bounds / sizeof *bounds && waited >= bounds[i])
        i++;
    p->st.wait_hist[i]++;
}

/* Hand the oldest waiting query to m. */
static void hand_query(evdb_pool *p, member *m)
{
    evdb__cq *q = p->waitq.head;
    evdb__qlist_remove(&p->waitq, q);
    record_wait(p, evdb__loop_now(p->loop) - (q->pool_deadline - p->o.acquire_timeout));
    evdb__conn_submit(m->c, q);
}

static void feed(member *m)
{
    evdb_pool *p = m->pool;
    while (p->waitq.head && takes_more(m))
        hand_query(p, m);
    if (evdb__conn_load(m->c) > 1)
        watch_stall(p, m);
    m->last_used = evdb__loop_now(p->loop);
}

/* The owner hooks connections call. */
static void on_room(void *owner, evdb_conn *c)
{
    member *m = owner;
    /* Pooled queries are counted by evdb__pool_count, not here: this also
     * sees a borrower's, the reset's and the validation's queries (their
     * service times count all the same: the server took that long). */
    observe(m->pool, c);
    if (m->st == M_READY && m->pool->waitq.head)
        feed(m);
    m->last_used = evdb__loop_now(m->pool->loop);
    if (m->pool->close_f || m->pool->nacq || (m->retiring && evdb__conn_load(c) == 0))
        schedule_dispatch(m->pool);
}

static void on_broken(void *owner, evdb_conn *c, evdb__qlist *unsent, const evdb_error *err)
{
    member *m = owner;
    evdb_pool *p = m->pool;
    (void)c;
    /* A borrower's statements belong to its session (its transaction, its
     * settings): on another connection they would run outside it, so
     * they fail instead, as never run. This matters since a release no
     * longer awaits its reset: the next borrower's statements may wait
     * behind a reset that fails (pool_reset.c). */
    while (m->st == M_ACQUIRED && unsent->head) {
        evdb__cq *q = unsent->head;
        evdb__qlist_remove(unsent, q);
        evdb__future_fail(q->f, EVDB_ECONNLOST,
                          "connection lost before the statement was sent (it did not run): %.400s",
                          err->message);
        evdb__cq_free(q);
    }
    /* Pooled queries never sent go back to the front of the wait queue,
     * in order. */
    requeue_front(p, unsent);
    evdb__error_copy(&p->last_err, err);
    p->have_err = true;
    p->st.broken++;
    /* Closed from dispatch, never from inside the connection's own step. */
    if (m->st == M_READY)
        member_set(m, M_RESETTING);
    schedule_dispatch(p);
}

static const evdb__conn_owner owner_ops = {on_room, on_broken};

static void validated(evdb_future *f, void *arg)
{
    member *m = arg;
    if (member_gone(m)) {
        evdb__future_disown(f);
        return;
    }
    evdb_pool *p = m->pool;
    if (m->st == M_VALIDATING) {
        if (evdb__future_peek(f) == 0 && evdb__conn_ready(m->c) && !p->close_f) {
            member_set(m, M_READY);
            m->last_used = evdb__loop_now(p->loop);
        } else {
            if (!p->close_f)
                p->st.validation_failures++;
            member_close(m);
        }
    }
    evdb__future_disown(f);
    schedule_dispatch(p);
}

static void validate(member *m)
{
    evdb_pool *p = m->pool;
    evdb_query_opts o = {.timeout = VALIDATE_TIMEOUT, .flags = EVDB_QUERY_NO_CACHE};
    evdb_future *f = evdb__conn_query(m->c, "SELECT 1", NULL, 0, &o);
    if (!f || evdb_future_on_done(f, validated, m)) {
        /* No memory to ping: use it as it is; a dead one fails visibly. */
        evdb_future_unref(f);
        m->last_used = evdb__loop_now(p->loop);
        return;
    }
    member_set(m, M_VALIDATING);
    m->cb_pending++;
    p->st.validations++;
}

static void member_ready(member *m)
{
    evdb_pool *p = m->pool;
    member_set(m, M_READY);
    m->last_used = evdb__loop_now(p->loop);
    evdb__backoff_reset(&p->backoff);
    schedule_dispatch(p);
}

static void on_connect_sql_done(evdb_future *f, void *arg)
{
    member *m = arg;
    evdb_pool *p = m->pool;
    if (evdb_future_status(f) != 0) {
        evdb__error_copy(&p->last_err, evdb_future_error(f));
        p->have_err = true;
        member_close(m);
    } else if (m->st == M_OPENING) {
        member_ready(m);
    }
    evdb_future_unref(f);
}

/* One pool-wide backoff (never a retry loop per connection): doubling
 * from backoff_initial up to backoff_max, each delay jittered so that
 * many pools restarting together do not reconnect in step. */
static void start_backoff(evdb_pool *p)
{
    double delay = evdb__backoff_next(&p->backoff);
    p->backing_off = true;
    evdb__timer_start(p->backoff_timer, delay);
}

static bool has_ready(const evdb_pool *p)
{
    for (const member *m = p->members; m; m = m->next)
        if (m->st == M_READY || m->st == M_ACQUIRED || m->st == M_RESETTING)
            return true;
    return false;
}

static void acq_unlink(evdb_pool *p, acq *a);
static void acq_free(acq *a);

/* No connection can be had right now (the server refused, the password is
 * wrong, ...): waiters fail at once with the reason instead of waiting for
 * their deadline, as asyncpg's pool does. The code is the connect error's
 * (EVDB_EAUTH, EVDB_ECONNECT, EVDB_ECONNTIMEOUT). */
static void fail_waiters(evdb_pool *p, const evdb_error *why)
{
    evdb_error e;
    evdb__error_copy(&e, why);
    snprintf(e.message, sizeof e.message, "could not get a pooled connection: %.400s",
             why->message);
    /* With outage_wait, only those that waited that long go. A query's
     * pool deadline is when it started waiting plus acquire_timeout (or
     * earlier, requeue_front), and the queue is in deadline order, so they
     * are a prefix of it. */
    double held_since =
        p->o.outage_wait > 0 ? evdb__loop_now(p->loop) - p->o.outage_wait : INFINITY;
    evdb__cq *q;
    while ((q = p->waitq.head) && q->pool_deadline - p->o.acquire_timeout <= held_since) {
        evdb__qlist_remove(&p->waitq, q);
        evdb__future_fail_err(q->f, &e);
        evdb__cq_free(q);
    }
    for (acq *a = p->acq_head, *next; a; a = next) {
        next = a->next;
        if (a->submitted > held_since)
            continue;
        acq_unlink(p, a);
        evdb__future_fail_err(a->f, &e);
        acq_free(a);
    }
}

static void member_opened(evdb_future *f, void *arg)
{
    member *m = arg;
    evdb_pool *p = m->pool;
    p->nopening--;
    m->open_f = NULL;
    if (evdb_future_status(f) != 0) {
        if (evdb_future_status(f) != EVDB_ECANCELED) {
            evdb__error_copy(&p->last_err, evdb_future_error(f));
            p->have_err = true;
            p->st.connect_failures++;
            if (!p->close_f)
                start_backoff(p);
            if (!has_ready(p))
                fail_waiters(p, &p->last_err);
        }
        evdb_future_unref(f);
        member_unlink(m);
        evdb__free(m);
        schedule_dispatch(p);
        pool_free_if_closed(p);
        return;
    }
    m->c = evdb_future_take_conn(f);
    evdb_future_unref(f);
    /* Before the pool owns it: the hook is the pool's, not a borrower's. */
    if (p->o.notice_hook &&
        evdb_conn_set_notice_hook(m->c, p->o.notice_hook, p->o.notice_hook_arg)) {
        evdb__error_copy(&p->last_err, evdb_last_error());
        p->have_err = true;
    }
    evdb__conn_set_owner(m->c, &owner_ops, m);
    m->born = evdb__loop_now(p->loop);
    m->lifetime = evdb__hk_jittered(p->o.max_lifetime, p->life_jitter, &p->life_rng);
    p->st.connects++;
    if (p->close_f) {
        member_close(m);
        return;
    }
    /* With an on_connect hook the connection ran on_connect_sql already
     * (evdb__conn_open_hk). */
    if (p->on_connect_sql && !(p->hk && p->hk->h.on_connect)) {
        evdb_future *q = evdb__conn_query(m->c, p->on_connect_sql, NULL, 0, NULL);
        if (q && evdb_future_on_done(q, on_connect_sql_done, m) == 0)
            return;
        evdb_future_unref(q);
        member_close(m);
        return;
    }
    member_ready(m);
}

static void open_member(evdb_pool *p)
{
    member *m = evdb__calloc(1, sizeof *m);
    if (!m)
        return;
    evdb_conn_opts co;
    memset(&co, 0, sizeof co);
    co.connect_timeout = p->o.connect_timeout;
    co.pipeline_depth = p->o.pipeline_depth;
    co.stmt_cache_size = p->o.stmt_cache_size;
    co.max_result_bytes = p->o.max_result_bytes;
    evdb_future *f;
    if (p->hk) {
        /* Each connection its own copy: it may outlive the pool. */
        evdb__hk *hk = evdb__hk_dup(p->hk);
        f = hk ? evdb__conn_open_hk(evdb__loop_ev(p->loop), p->url, &co, hk,
                                    p->hk->h.on_connect ? p->on_connect_sql : NULL)
               : NULL;
        if (!hk)
            evdb__fail_now(EVDB_ENOMEM, "evdb_pool: out of memory");
    } else {
        f = evdb_conn_open(evdb__loop_ev(p->loop), p->url, &co);
    }
    if (!f) {
        /* Refused at once (a malformed URL, say): nobody waits for it. */
        evdb__error_copy(&p->last_err, evdb_last_error());
        p->have_err = true;
        p->st.connect_failures++;
        evdb__free(m);
        start_backoff(p);
        if (!has_ready(p))
            fail_waiters(p, &p->last_err);
        return;
    }
    m->pool = p;
    m->open_f = f;
    m->st = M_OPENING; /* its first state: nothing to trace yet */
    m->next = p->members;
    if (p->members)
        p->members->prev = m;
    p->members = m;
    p->nmembers++;
    p->nopening++;
    if (evdb_future_on_done(f, member_opened, m)) {
        /* Cannot learn the outcome: give the attempt up. */
        evdb_future_cancel(f);
        p->nopening--;
        member_unlink(m);
        evdb__free(m);
        evdb_future_unref(f);
    }
}

/* ---- waiters and deadlines ---- */

static void arm_deadline(evdb_pool *p)
{
    double next = INFINITY;
    if (p->waitq.head)
        next = p->waitq.head->pool_deadline;
    for (acq *a = p->acq_head; a; a = a->next)
        next = dmin(next, a->deadline);
    if (isinf(next))
        evdb__timer_stop(p->deadline_timer);
    else
        evdb__timer_start(p->deadline_timer, next - evdb__loop_now(p->loop));
}

static void acq_unlink(evdb_pool *p, acq *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        p->acq_head = a->next;
    if (a->next)
        a->next->prev = a->prev;
    else
        p->acq_tail = a->prev;
    p->nacq--;
}

static void acq_free(acq *a)
{
    evdb_future_unref(a->f);
    evdb__free(a);
}

static void fail_waiter_msg(evdb_pool *p, char *buf, size_t len, double waited)
{
    unsigned open = p->nmembers - p->nopening;
    snprintf(buf, len,
             "no pooled connection became free within %g s (%u open, %u opening, max %u)%s%.300s",
             waited, open, p->nopening, p->o.max_conns,
             p->have_err ? "; last connection error: " : "",
             p->have_err ? p->last_err.message : "");
}

static void on_deadline(void *arg)
{
    evdb_pool *p = arg;
    double now = evdb__loop_now(p->loop) + 1e-4;
    char msg[EVDB__ERRMSG_MAX];
    while (p->waitq.head && p->waitq.head->pool_deadline <= now) {
        evdb__cq *q = p->waitq.head;
        evdb__qlist_remove(&p->waitq, q);
        fail_waiter_msg(p, msg, sizeof msg, p->o.acquire_timeout);
        evdb__future_fail(q->f, EVDB_EPOOLTIMEOUT, "%s", msg);
        p->st.pool_timeouts++;
        evdb__cq_free(q); /* counts it in query_errors */
    }
    for (acq *a = p->acq_head, *next; a; a = next) {
        next = a->next;
        if (a->deadline > now)
            continue;
        acq_unlink(p, a);
        fail_waiter_msg(p, msg, sizeof msg, p->o.acquire_timeout);
        evdb__future_fail(a->f, EVDB_EPOOLTIMEOUT, "%s", msg);
        p->st.pool_timeouts++;
        acq_free(a);
    }
    arm_deadline(p);
}

static void on_backoff(void *arg)
{
    evdb_pool *p = arg;
    p->backing_off = false;
    dispatch(p);
}

static double maint_interval(const evdb_pool *p)
{
    double i = MAINT_INTERVAL;
    if (p->o.leak_threshold > 0 && p->o.leak_threshold / 4 < i)
        i = p->o.leak_threshold / 4;
    /* Fine enough that jittered lifetimes retire apart. */
    if (p->o.max_lifetime > 0 && p->o.max_lifetime / 10 < i)
        i = p->o.max_lifetime / 10;
    return i;
}

static void check_leaks(evdb_pool *p, double now)
{
    for (member *m = p->members; m; m = m->next) {
        if (m->st != M_ACQUIRED || m->leak_reported || now - m->acquired_at < p->o.leak_threshold)
            continue;
        m->leak_reported = true;
        p->st.leaks++;
        if (!p->o.leak_hook)
            continue;
        evdb_pool_leak leak = {
            .conn = (evdb_conn *)m->handle,
            .held_seconds = now - m->acquired_at,
            .acquired_file = m->acquired_file ? m->acquired_file : "?",
            .acquired_line = m->acquired_line,
            .current_sql = evdb__conn_current_sql(m->c),
        };
        p->o.leak_hook(&leak, p->o.leak_hook_arg);
    }
}

static void on_maint(void *arg)
{
    evdb_pool *p = arg;
    double now = evdb__loop_now(p->loop);
    unsigned ready = 0;
    for (member *m = p->members; m; m = m->next)
        if (m->st == M_READY)
            ready++;
    for (member *m = p->members, *next; m; m = next) {
        next = m->next;
        if (m->st != M_READY || evdb__conn_load(m->c) != 0)
            continue;
        bool old = p->o.max_lifetime > 0 && now - m->born >= m->lifetime;
        bool idle = p->o.idle_timeout > 0 && ready > p->o.min_conns &&
                    now - m->last_used >= p->o.idle_timeout;
        if (old || idle) {
            p->st.retired++;
            ready--;
            member_close(m);
        }
    }
    if (p->o.leak_threshold > 0)
        check_leaks(p, now);
    evdb__timer_start(p->maint_timer, maint_interval(p));
    schedule_dispatch(p);
}

/* ---- borrow handles ----
 *
 * evdb_pool_acquire does not hand out the connection itself but a handle
 * of this one borrow, so that a handle kept after evdb_conn_release can
 * never act on the connection's next borrower: the same address would
 * name both. The handle is a number, not an address: odd (so it is never
 * the address of a connection, and evdb__conn_valid never reads through
 * it), from a process-wide counter that is never reused (2^63 borrows on
 * 64-bit systems, 2^31 on 32-bit ones). Nothing is allocated for it, so
 * nothing is freed that a stale handle could still point to. Every call
 * that takes an evdb_conn looks a handle up among the live borrows of its
 * thread (a list, most recently used first: a borrower's statements find
 * it at the head); a released handle is not there, and the call fails
 * with EVDB_EINVAL without touching any connection. */

static uintptr_t borrow_seq;
static __thread member *live_borrows;

static void borrow_begin(member *m)
{
    uintptr_t n = __atomic_add_fetch(&borrow_seq, 1, __ATOMIC_RELAXED);
    m->handle = (n << 1) | 1;
    m->bprev = NULL;
    m->bnext = live_borrows;
    if (live_borrows)
        live_borrows->bprev = m;
    live_borrows = m;
}

static void borrow_unlink(member *m)
{
    if (m->bprev)
        m->bprev->bnext = m->bnext;
    else
        live_borrows = m->bnext;
    if (m->bnext)
        m->bnext->bprev = m->bprev;
    m->bprev = m->bnext = NULL;
}

static void borrow_end(member *m)
{
    if (!m->handle)
        return;
    borrow_unlink(m);
    m->handle = 0;
}

/* The member lent out under handle h right now, or NULL. */
static member *borrow_find(const evdb_conn *h)
{
    uintptr_t v = (uintptr_t)h;
    if (!evdb__is_borrow_handle(h))
        return NULL;
    for (member *m = live_borrows; m; m = m->bnext) {
        if (m->handle != v)
            continue;
        if (m != live_borrows) {
            borrow_unlink(m);
            m->bnext = live_borrows;
            live_borrows->bprev = m;
            live_borrows = m;
        }
        return m;
    }
    return NULL;
}

evdb_conn *evdb__pool_borrowed(const evdb_conn *h)
{
    member *m = borrow_find(h);
    return m ? m->c : NULL;
}

/* ---- acquire / release ---- */

static void acquired_value_free(void *conn)
{
    /* The acquire future died with the connection untaken: give it back. */
    evdb_conn_release(conn);
}

static void hand_out(evdb_pool *p, acq *a, member *m)
{
    acq_unlink(p, a);
    record_wait(p, evdb__loop_now(p->loop) - a->submitted);
    member_set(m, M_ACQUIRED);
    m->acquired_at = evdb__loop_now(p->loop);
    m->acquired_file = a->file;
    m->acquired_line = a->line;
    m->leak_reported = false;
    borrow_begin(m);
    evdb__future_resolve(a->f, (void *)m->handle, acquired_value_free);
    acq_free(a);
}

static void acq_cancel(void *arg)
{
    acq *a = arg;
    acq_unlink(a->pool, a);
    arm_deadline(a->pool);
    acq_free(a);
}

static const evdb__future_ops acq_ops = {acq_cancel};

/* Close a released connection instead of reusing it, and say why. */
static void discard(evdb_pool *p, member *m, const char *why, const char *detail)
{
    p->st.discarded++;
    snprintf(p->discard_reason, sizeof p->discard_reason, "%s%.120s", why, detail ? detail : "");
    member_close(m);
}

/* A released connection's reset (evdb__pool_reset) finished. The member
 * may be lent out again, or closed, by now. */
static void reset_done(evdb_future *f, void *arg)
{
    member *m = arg;
    if (member_gone(m)) {
        evdb_future_unref(f);
        return;
    }
    evdb_pool *p = m->pool;
    m->nresets--;
    if (evdb_future_status(f) == 0) {
        p->st.resets++;
    } else if (!p->close_f && m->st != M_CLOSING) {
        /* Never reused unclean: the PostgreSQL and MariaDB drivers have
         * dropped the connection already (what was queued behind the reset
         * went to other connections, what was on the wire failed without
         * running); close it here in case a driver did not. */
        p->st.discarded++;
        snprintf(p->discard_reason, sizeof p->discard_reason, "reset failed: %.120s",
                 evdb_error_message(evdb_future_error(f)));
        if (m->st == M_ACQUIRED) {
            m->reset_failed = true;
        } else {
            /* The pooled queries routed behind it and not sent go to other
             * connections; the ones sent finish here before it closes. */
            evdb__qlist unsent = {NULL, NULL, 0};
            if (evdb__conn_take_unsent(m->c, &unsent))
                requeue_front(p, &unsent);
            member_set(m, M_RESETTING);
            m->retiring = true;
        }
    }
    evdb_future_unref(f);
    schedule_dispatch(p);
}

/* evdb_conn_release (session: with the session reset) and
 * evdb_conn_release_no_reset. */
static int release(evdb_conn *h, bool session, const char *who)
{
    member *m = borrow_find(h);
    if (!m)
        return evdb__fail_now(EVDB_EINVAL, "%s: %s", who,
                              evdb__is_borrow_handle(h)
                                  ? "stale connection handle: released already (a handle from "
                                    "evdb_pool_acquire is valid until evdb_conn_release)"
                                  : "not a borrowed pool connection (release the handle "
                                    "evdb_pool_acquire gave)");
    /* From here on h names nothing: a second release, or any call on it,
     * fails, also once the connection is lent out again. */
    borrow_end(m);
    evdb_conn *c = m->c;
    evdb_pool *p = m->pool;
    member_set(m, M_RESETTING);
    if (p->close_f) {
        member_close(m);
        return 0;
    }
    if (m->reset_failed) {
        /* Counted, with its reason, when the reset failed. */
        member_close(m);
        return 0;
    }
    if (!evdb__conn_ready(c)) {
        discard(p, m, "connection broken", NULL);
        return 0;
    }
    /* Queries the borrower left behind run first (order is kept), then
     * the reset, then whatever the next borrower sends: the connection is
     * ready again at once, and nobody waits for the reset by itself. */
    evdb_future *f = evdb__pool_reset(c, session);
    if (!f || evdb_future_on_done(f, reset_done, m)) {
        const char *why = f ? "out of memory" : evdb_error_message(evdb_last_error());
        evdb_future_unref(f);
        discard(p, m, "reset failed: ", why);
        return 0;
    }
    m->cb_pending++;
    m->nresets++;
    member_set(m, M_READY);
    m->last_used = evdb__loop_now(p->loop);
    schedule_dispatch(p);
    return 0;
}

int evdb_conn_release(evdb_conn *h)
{
    return release(h, true, "evdb_conn_release");
}

int evdb_conn_release_no_reset(evdb_conn *h)
{
    return release(h, false, "evdb_conn_release_no_reset");
}

/* ---- dispatch ---- */

static void dispatch(evdb_pool *p)
{
    /* Members whose connection broke are replaced. */
    for (member *m = p->members, *next; m; m = next) {
        next = m->next;
        bool dead = m->c && !evdb__conn_ready(m->c) &&
                    (m->st == M_READY || (m->st == M_RESETTING && evdb__conn_load(m->c) == 0));
        bool retired = m->retiring && m->st == M_RESETTING && evdb__conn_load(m->c) == 0;
        bool closing_idle = p->close_f && m->st == M_READY && evdb__conn_load(m->c) == 0;
        if (dead || retired || closing_idle)
            member_close(m);
    }
    if (p->close_f) {
        pool_free_if_closed(p);
        return;
    }
    /* Exclusive acquires take idle connections first, in FIFO order. */
    while (p->acq_head) {
        member *m = pick_idle(p);
        if (!m)
            break;
        hand_out(p, p->acq_head, m);
    }
    /* One query at a time, in FIFO order: to an idle connection; when the
     * pool can grow, the rest wait for the connections opened below (or
     * one that turns idle first); at max_conns, to the least-loaded one
     * whose head is young (docs/pool.md, "Routing"). */
    while (p->waitq.head) {
        member *m = pick(p);
        if (!m)
            break;
        hand_query(p, m);
        if (evdb__conn_load(m->c) > 1)
            watch_stall(p, m);
        m->last_used = evdb__loop_now(p->loop);
    }
    /* Grow lazily: one new connection per waiter not yet covered. */
    size_t demand = p->waitq.n + p->nacq;
    unsigned max = p->o.max_conns;
    while (!p->backing_off && p->nmembers < max &&
           (p->nopening < demand || p->nmembers < p->o.min_conns)) {
        unsigned before = p->nmembers;
        open_member(p);
        if (p->nmembers == before)
            break;
    }
    arm_deadline(p);
}

/* ---- public API ---- */

evdb_pool *evdb_pool_new(struct ev_loop *loop, const char *url, const evdb_pool_opts *opts)
{
    if (!loop || !url) {
        evdb__fail_now(EVDB_EINVAL, "evdb_pool_new: loop and url are required");
        return NULL;
    }
    const evdb__driver *drv = evdb__driver_for(url);
    if (!drv) {
        evdb__fail_now(EVDB_EURL, "evdb_pool_new: no driver for this URL");
        return NULL;
    }
    evdb_pool_opts o;
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    if (o.max_conns == 0)
        o.max_conns = EVDB_POOL_DEFAULT_MAX;
    if (o.min_conns > o.max_conns) {
        evdb__fail_now(EVDB_EINVAL, "evdb_pool_new: min_conns %u is above max_conns %u",
                       o.min_conns, o.max_conns);
        return NULL;
    }
    if (!(o.acquire_timeout > 0))
        o.acquire_timeout = EVDB_POOL_DEFAULT_ACQUIRE_TIMEOUT;
    if (!(o.outage_wait > 0))
        o.outage_wait = 0; /* NaN and negative too: fail fast */
    if (!(o.backoff_initial > 0))
        o.backoff_initial = DEFAULT_BACKOFF_INITIAL;
    if (!(o.backoff_max > 0))
        o.backoff_max = DEFAULT_BACKOFF_MAX;
    if (o.backoff_max < o.backoff_initial)
        o.backoff_max = o.backoff_initial;
    if (o.backoff_jitter == 0)
        o.backoff_jitter = DEFAULT_BACKOFF_JITTER;
    if (o.backoff_jitter > 1)
        o.backoff_jitter = 1;
    if (o.validate_after == 0)
        o.validate_after = DEFAULT_VALIDATE_AFTER;
    if (!(o.close_grace > 0))
        o.close_grace = DEFAULT_CLOSE_GRACE;
    evdb__loop *l = evdb__loop_get(loop);
    evdb_pool *p = l ? evdb__calloc(1, sizeof *p) : NULL;
    if (!p) {
        if (l)
            evdb__loop_unref(l);
        evdb__fail_now(EVDB_ENOMEM, "evdb_pool_new: out of memory");
        return NULL;
    }
    p->magic = EVDB__MAGIC_POOL;
    p->loop = l;
    p->o = o;
    p->dispatch_d.fn = dispatch_deferred;
    p->url = evdb__strdup(url);
    p->drv = drv;
    p->on_connect_sql = o.on_connect_sql ? evdb__strdup(o.on_connect_sql) : NULL;
    p->o.on_connect_sql = NULL;
    bool hk_nomem = false;
    p->hk = evdb__hk_new(o.hooks, url, p, &hk_nomem);
    p->o.hooks = NULL; /* copied: the caller's struct may go */
    double j = o.hooks ? o.hooks->lifetime_jitter : 0;
    p->life_jitter = j == 0 ? EVDB_DEFAULT_LIFETIME_JITTER : j < 0 ? 0 : j;
    p->life_rng = (uint32_t)((uintptr_t)p ^ (uintptr_t)(evdb__loop_now(l) * 1e6)) | 1u;
    p->deadline_timer = evdb__timer_new(l, on_deadline, p);
    p->backoff_timer = evdb__timer_new(l, on_backoff, p);
    p->maint_timer = evdb__timer_new(l, on_maint, p);
    p->grace_timer = evdb__timer_new(l, on_grace, p);
    p->stall_timer = evdb__timer_new(l, on_stall, p);
    p->stall_at = INFINITY;
    /* Adaptive: starts at the floor and follows the service times seen. */
    p->stall = o.stall_threshold > 0   ? o.stall_threshold
               : o.stall_threshold < 0 ? INFINITY
                                       : STALL_FLOOR;
    p->svc = STALL_FLOOR / STALL_FACTOR;
    p->close_spare = evdb__future_new(l, EVDB__FK_CLOSE);
    /* Options already normalised above (a negative jitter: none). */
    evdb__backoff_init(&p->backoff, p->o.backoff_initial, p->o.backoff_max,
                       p->o.backoff_jitter > 0 ? p->o.backoff_jitter : -1,
                       (uintptr_t)p ^ (uintptr_t)(evdb__loop_now(l) * 1e6));
    if (!p->url || (o.on_connect_sql && !p->on_connect_sql) || hk_nomem || !p->deadline_timer ||
        !p->backoff_timer || !p->maint_timer || !p->grace_timer || !p->stall_timer ||
        !p->close_spare) {
        evdb_future_unref(p->close_spare);
        evdb__timer_free(p->stall_timer);
        evdb__timer_free(p->deadline_timer);
        evdb__timer_free(p->backoff_timer);
        evdb__timer_free(p->maint_timer);
        evdb__timer_free(p->grace_timer);
        evdb__free(p->url);
        evdb__free(p->on_connect_sql);
        evdb__hk_free(p->hk);
        evdb__free(p);
        evdb__loop_unref(l);
        evdb__fail_now(EVDB_ENOMEM, "evdb_pool_new: out of memory");
        return NULL;
    }
    if (o.max_lifetime > 0 || o.idle_timeout > 0 || o.leak_threshold > 0)
        evdb__timer_start(p->maint_timer, maint_interval(p));
    if (o.min_conns)
        schedule_dispatch(p);
    return p;
}

/* The close grace period is over: connections still running queries are
 * closed now (what still runs fails with EVDB_ECLOSED). */
static void on_grace(void *arg)
{
    evdb_pool *p = arg;
    for (member *m = p->members, *next; m; m = next) {
        next = m->next;
        if (m->st == M_READY || m->st == M_VALIDATING)
            member_close(m);
    }
    pool_free_if_closed(p);
}

static bool pool_usable(const evdb_pool *p, const char *who)
{
    if (!p || p->magic != EVDB__MAGIC_POOL) {
        evdb__fail_now(EVDB_EINVAL, "%s: invalid pool", who);
        return false;
    }
    if (p->close_f || p->closed) {
        evdb__fail_now(EVDB_ECLOSED, "%s: the pool is %s", who, p->closed ? "closed" : "closing");
        return false;
    }
    return true;
}

/* Route a new pooled query (or batch): straight to a connection, or into
 * the wait queue. Returns its future (the caller's reference). Every
 * pooled query runs in autocommit mode on a shared connection: the flag
 * makes the driver refuse or roll back what would leave a transaction
 * block open behind it (drivers/driver.h). */
static evdb_future *pool_submit(evdb_pool *p, evdb__cq *q)
{
    evdb_future *f = q->f;
    q->q.flags |= EVDB__QUERY_AUTOCOMMIT;
    q->pool = p;
    p->st.queries++;
    if (p->o.query_hook)
        trace(p, q);
    /* Straight to a connection with room when the queue is empty (FIFO:
     * never overtake a waiter). */
    member *m = p->waitq.head ? NULL : pick(p);
    if (m) {
        p->st.wait_hist[0]++;
        evdb__conn_submit(m->c, q);
        if (evdb__conn_load(m->c) > 1)
            watch_stall(p, m);
        return f;
    }
    q->where = EVDB__Q_POOL;
    q->pool_deadline = evdb__loop_now(p->loop) + p->o.acquire_timeout;
    evdb__qlist_push(&p->waitq, q);
    schedule_dispatch(p);
    return f;
}

/* pool_submit with QUERY_START now and QUERY_END when the query's future
 * completes (hooks.h). */
static evdb_future *submit_traced(evdb_pool *p, evdb__cq *q)
{
    /* Read before the query may move on (it is copied into the span). */
    const char *sql = q->q.sql ? q->q.sql : q->q.batch ? q->q.batch[0].sql : NULL;
    void *ctx = q->trace_ctx;
    evdb_future *f = q->f;
    if (p->hk->h.trace)
        evdb__hk_span(p->hk, p->loop, EVDB_TRACE_QUERY_START, f, sql, ctx, NULL);
    return pool_submit(p, q);
}

evdb_future *evdb__pool_submit(evdb_pool *p, evdb__cq *q)
{
    return pool_submit(p, q);
}

evdb_future *evdb_pool_query(evdb_pool *p, const char *sql, const evdb_value *params,
                             size_t nparams, const evdb_query_opts *opts)
{
    if (!pool_usable(p, "evdb_pool_query") || evdb__check_query_flags("evdb_pool_query", opts))
        return NULL;
    evdb__cq *q = evdb__cq_new(p->loop, "evdb_pool_query", sql, params, nparams, opts);
    if (!q)
        return NULL;
    /* Unset hooks cost this test; the call below stays a tail call. */
    if (__builtin_expect(p->hk != NULL, 0))
        return submit_traced(p, q);
    return pool_submit(p, q);
}

evdb_future *evdb_pool_batch(evdb_pool *p, const evdb_stmt *stmts, size_t n,
                             const evdb_query_opts *opts)
{
    if (!pool_usable(p, "evdb_pool_batch") || evdb__check_query_flags("evdb_pool_batch", opts))
        return NULL;
    const evdb__driver *d = p->drv;
    if (!(d->caps & EVDB__CAP_BATCH)) {
        evdb__fail_now(EVDB_ENOTSUP, "evdb_pool_batch: not supported by the %s driver", d->name);
        return NULL;
    }
    evdb__cq *q = evdb__cq_new_batch(p->loop, "evdb_pool_batch", stmts, n, opts);
    if (!q)
        return NULL;
    if (__builtin_expect(p->hk != NULL, 0))
        return submit_traced(p, q);
    return pool_submit(p, q);
}

void evdb__pool_forget(evdb_pool *p, evdb__cq *q)
{
    evdb__qlist_remove(&p->waitq, q);
}

/* ---- the per-query hook ---- */

typedef struct traced {
    void (*hook)(const evdb_pool_query_event *ev, void *arg);
    void *arg;
    double start;
    evdb__loop *loop;
} traced;

static void traced_end(evdb_future *f, void *arg)
{
    traced *t = arg;
    evdb_pool_query_event ev = {
        .phase = EVDB_POOL_QUERY_END,
        .future = f,
        .duration = evdb__loop_now(t->loop) - t->start,
        .status = evdb__future_peek(f),
    };
    t->hook(&ev, t->arg);
    evdb__loop_unref(t->loop);
    evdb__free(t);
}

/* Tracing costs one small allocation per query, only when a hook is set. */
static void trace(evdb_pool *p, evdb__cq *q)
{
    evdb_pool_query_event ev = {.phase = EVDB_POOL_QUERY_START, .sql = q->q.sql, .future = q->f};
    p->o.query_hook(&ev, p->o.query_hook_arg);
    traced *t = evdb__malloc(sizeof *t);
    if (!t)
        return;
    *t = (traced){p->o.query_hook, p->o.query_hook_arg, evdb__loop_now(p->loop), p->loop};
    evdb__loop_ref(p->loop);
    if (evdb_future_on_done(q->f, traced_end, t)) {
        evdb__loop_unref(p->loop);
        evdb__free(t);
    }
}

#undef evdb_pool_acquire
evdb_future *evdb_pool_acquire(evdb_pool *p, double timeout)
{
    return evdb_pool_acquire_at(p, timeout, NULL, 0);
}

evdb_future *evdb_pool_acquire_at(evdb_pool *p, double timeout, const char *file, int line)
{
    if (!pool_usable(p, "evdb_pool_acquire"))
        return NULL;
    acq *a = evdb__calloc(1, sizeof *a);
    evdb_future *f = evdb__future_new(p->loop, EVDB__FK_OPEN);
    if (!a || !f) {
        evdb__free(a);
        evdb_future_unref(f);
        evdb__fail_now(EVDB_ENOMEM, "evdb_pool_acquire: out of memory");
        return NULL;
    }
    a->pool = p;
    a->file = file;
    a->line = line;
    a->f = evdb_future_ref(f);
    a->submitted = evdb__loop_now(p->loop);
    a->deadline = a->submitted + (timeout > 0 ? timeout : p->o.acquire_timeout);
    a->prev = p->acq_tail;
    if (p->acq_tail)
        p->acq_tail->next = a;
    else
        p->acq_head = a;
    p->acq_tail = a;
    p->nacq++;
    evdb__future_set_op(f, &acq_ops, a);
    schedule_dispatch(p);
    if (p->hk && p->hk->h.trace)
        evdb__hk_span(p->hk, p->loop, EVDB_TRACE_ACQUIRE_START, f, NULL, NULL, NULL);
    return f;
}

void evdb_pool_stats_get(const evdb_pool *p, evdb_pool_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!p || p->magic != EVDB__MAGIC_POOL)
        return;
    *out = p->st;
    out->last_discard_reason = p->discard_reason;
    out->total = p->nmembers;
    out->opening = p->nopening;
    out->waiting = p->waitq.n + p->nacq;
    for (const member *m = p->members; m; m = m->next) {
        if (m->st == M_ACQUIRED)
            out->acquired++;
        else if (m->st == M_READY && !evdb__conn_load(m->c))
            out->idle++;
        else if (m->st == M_READY || m->st == M_RESETTING || m->st == M_VALIDATING)
            out->busy++;
    }
}

evdb_future *evdb_pool_close(evdb_pool *p)
{
    if (!pool_usable(p, "evdb_pool_close"))
        return NULL;
    evdb_future *f = p->close_spare;
    p->close_spare = NULL;
    p->close_f = evdb_future_ref(f);
    evdb__cq *q;
    while ((q = p->waitq.head)) {
        evdb__qlist_remove(&p->waitq, q);
        evdb__future_fail(q->f, EVDB_ECLOSED, "the pool was closed before the query was sent");
        evdb__cq_free(q);
    }
    while (p->acq_head) {
        acq *a = p->acq_head;
        acq_unlink(p, a);
        evdb__future_fail(a->f, EVDB_ECLOSED, "the pool was closed");
        acq_free(a);
    }
    evdb__timer_stop(p->deadline_timer);
    evdb__timer_stop(p->backoff_timer);
    evdb__timer_stop(p->maint_timer);
    evdb__timer_start(p->grace_timer, p->o.close_grace);
    for (member *m = p->members; m; m = m->next)
        if (m->st == M_OPENING && m->open_f)
            evdb_future_cancel(m->open_f);
    schedule_dispatch(p);
    return f;
}

void evdb_pool_dump(const evdb_pool *p, FILE *out)
{
    if (!p || p->magic != EVDB__MAGIC_POOL || !out)
        return;
    if (p->closed) {
        fprintf(out, "evdb pool: closed\n");
        return;
    }
    double now = evdb__loop_now(p->loop);
    fprintf(out, "evdb pool: %u connection(s), %zu waiting query(ies), %zu waiting acquire(s)\n",
            p->nmembers, p->waitq.n, p->nacq);
    for (const member *m = p->members; m; m = m->next) {
        fprintf(out, "  conn %p %-9s", (const void *)m->c, mstate_names[m->st]);
        if (m->handle)
            fprintf(out, " handle %#lx", (unsigned long)m->handle);
        if (m->c && m->st != M_OPENING) {
            const char *sql = evdb__conn_current_sql(m->c);
            fprintf(out, " age %.1fs queries %zu", now - m->born, evdb__conn_load(m->c));
            if (m->st == M_ACQUIRED)
                fprintf(out, " held %.1fs acquired at %s:%d", now - m->acquired_at,
                        m->acquired_file ? m->acquired_file : "?", m->acquired_line);
            if (sql)
                fprintf(out, " sql \"%.80s\"", sql);
        }
        fputc('\n', out);
    }
}

/* ---- for pool_txn.c ---- */

/* The loop a pool runs on: the transaction helpers (pool_txn.c) make their
 * futures and timers on it. */
evdb__loop *evdb__pool_loop(const evdb_pool *p)
{
    return p->loop;
}

/* Whether the pool's connections are PostgreSQL's (pool_txn.c chooses how
 * to send transaction options before it has a connection). */
const evdb__driver *evdb__pool_drv(const evdb_pool *p)
{
    return p->drv;
}

/* pool_usable for pool_txn.c: a pool, open. False with the error set. */
bool evdb__pool_usable(const evdb_pool *p, const char *who)
{
    return pool_usable(p, who);
}

/* ---- for src/listen.c: a listener opened from a pool ---- */

const char *evdb__pool_url(const evdb_pool *p, const evdb_pool_opts **opts)
{
    *opts = &p->o;
    return p->url;
}
