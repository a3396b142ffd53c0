/*
 * Transactions (include/evdb/txn.h): the interactive helper
 * (evdb_pool_transaction[_opts]: borrow, BEGIN, the user's fn, COMMIT or
 * ROLLBACK, release), static transactions (one explicit batch), savepoints,
 * and the retry layer around the first two. Kept apart from pool.c, which
 * owns the connections: it only uses the pool's public calls.
 *
 * BEGIN is not awaited on PostgreSQL: fn is called right after BEGIN is
 * submitted, so BEGIN and fn's first statements leave in one write (the
 * connection pumps its queue once per loop iteration), and the
 * transaction costs one round trip per step of fn plus the COMMIT. BEGIN
 * goes out at the head of the borrowed connection's queue, where nothing
 * of another requester can be (the connection is exclusively ours), and
 * the driver sends it only once everything before it was answered (a
 * barrier, pg_pipeline.c), so no re-sent earlier query can land inside the
 * block. The statements behind it are pipelined inside the block.
 */
#include <stdio.h>
#include <string.h>

#include "pool_conn.h"

/* ---- options ---- */

static const char *const iso_words[] = {NULL, "READ UNCOMMITTED", "READ COMMITTED",
                                        "REPEATABLE READ", "SERIALIZABLE"};

/* no_reset took the first of the four reserved pointers that ended
 * evdb_txn_opts: the struct keeps its size. */
#if UINTPTR_MAX > 0xffffffffu
_Static_assert(sizeof(evdb_txn_opts) ==
                   offsetof(evdb_txn_opts, acquire_timeout) + sizeof(double) + 4 * sizeof(void *),
               "evdb_txn_opts changed size");
#endif

static bool has_characteristics(const evdb_txn_opts *o)
{
    return o->isolation != EVDB_ISOLATION_DEFAULT || o->read_only || o->deferrable;
}

static int check_opts(const evdb_txn_opts *o, const char *who)
{
    if ((unsigned)o->isolation > EVDB_ISOLATION_SERIALIZABLE)
        return evdb__fail_now(EVDB_EINVAL, "%s: unknown isolation level %d", who,
                              (int)o->isolation);
    if (o->backoff_initial < 0 || o->backoff_max < 0)
        return evdb__fail_now(EVDB_EINVAL, "%s: negative backoff", who);
    return 0;
}

/* The transaction characteristics as SQL: "<prefix> ISOLATION LEVEL ...
 * READ ONLY DEFERRABLE" (PostgreSQL's BEGIN and SET TRANSACTION share the
 * grammar). MariaDB's SET TRANSACTION takes the access mode too and
 * applies to the next transaction only. */
static void characteristics_sql(char *buf, size_t size, const char *prefix, const evdb_txn_opts *o,
                                bool begin_dialect)
{
    size_t n = (size_t)snprintf(buf, size, "%s", prefix);
    const char *sep = " ";
    if (o->isolation != EVDB_ISOLATION_DEFAULT) {
        n += (size_t)snprintf(buf + n, size - n, "%sISOLATION LEVEL %s", sep,
                              iso_words[o->isolation]);
        sep = begin_dialect ? " " : ", ";
    }
    if (o->read_only && n < size)
        n += (size_t)snprintf(buf + n, size - n, "%sREAD ONLY", sep);
    if (o->deferrable && begin_dialect && n < size)
        snprintf(buf + n, size - n, " DEFERRABLE");
}

static int check_driver(const evdb_txn_opts *o, bool begin_dialect, const char *who)
{
    if (o->deferrable && !begin_dialect)
        return evdb__fail_now(EVDB_ENOTSUP, "%s: DEFERRABLE transactions exist only on PostgreSQL",
                              who);
    return 0;
}

/* ---- retries ---- */

/* One attempt of a transaction: start it, and its future is the attempt's
 * outcome. The retry layer owns the object behind it. */
typedef evdb_future *(*attempt_start_fn)(void *self);

typedef struct retry {
    evdb__loop *loop;
    evdb_future *f; /* what the caller got */
    attempt_start_fn start;
    void *self;
    void (*self_free)(void *self);
    evdb_future *cur; /* the running attempt */
    unsigned attempts, max;
    double delay, delay_max;
    evdb__timer *timer;
    uint32_t rng;
} retry;

static __thread uint32_t seed_counter;

static void retry_free(retry *r)
{
    if (r->timer)
        evdb__timer_free(r->timer);
    if (r->self_free)
        r->self_free(r->self);
    evdb_future_unref(r->cur);
    evdb_future_unref(r->f);
    evdb__free(r);
}

static void retry_run(retry *r);

static void retry_cancel(void *op)
{
    /* The caller's future is cancelled already; the running attempt (and
     * with it the transaction on the server) is given up too. A pending
     * backoff ends at its timer, which sees the caller gone. */
    retry *r = op;
    if (r->cur)
        evdb_future_cancel(r->cur);
}

static const evdb__future_ops retry_ops = {retry_cancel};

static double jitter(retry *r)
{
    uint32_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    r->rng = x;
    return 0.5 + (double)x / 4294967296.0; /* 0.5 .. 1.5 */
}

static void on_backoff(void *arg)
{
    retry *r = arg;
    if (!evdb__future_pending(r->f)) {
        retry_free(r);
        return;
    }
    retry_run(r);
}

static void attempt_done(evdb_future *f, void *arg)
{
    retry *r = arg;
    const evdb_error *e = evdb_future_status(f) != 0 ? evdb_future_error(f) : NULL;
    if (!evdb__future_pending(r->f)) {
        retry_free(r);
        return;
    }
    if (!e) {
        evdb__future_forward(r->f, f);
        retry_free(r);
        return;
    }
    if (evdb_error_is_retryable(e) && r->attempts < r->max) {
        double d = r->delay * jitter(r);
        r->delay = r->delay * 2 < r->delay_max ? r->delay * 2 : r->delay_max;
        evdb_future_unref(r->cur);
        r->cur = NULL;
        evdb__timer_start(r->timer, d);
        return;
    }
    if (r->attempts > 1) {
        evdb_error *copy = evdb__malloc(sizeof *copy);
        if (copy) {
            evdb__error_copy(copy, e);
            snprintf(copy->message, sizeof copy->message, "after %u attempts: %s", r->attempts,
                     evdb_error_message(e));
            evdb__future_fail_err(r->f, copy);
            evdb__free(copy);
        } else {
            evdb__future_forward(r->f, f);
        }
    } else {
        evdb__future_forward(r->f, f);
    }
    retry_free(r);
}

static void retry_run(retry *r)
{
    r->attempts++;
    r->cur = r->start(r->self);
    if (!r->cur) {
        evdb__future_fail_err(r->f, evdb_last_error());
        retry_free(r);
        return;
    }
    if (evdb_future_on_done(r->cur, attempt_done, r)) {
        evdb_future_cancel(r->cur);
        evdb__future_fail(r->f, EVDB_ENOMEM, "transaction: out of memory");
        retry_free(r);
    }
}

/* Run start(self) up to opts->max_attempts times. Takes self (given to
 * self_free in every case, which frees it once no attempt runs). NULL at
 * once when the first attempt cannot start. */
static evdb_future *with_retries(evdb__loop *loop, const evdb_txn_opts *o, attempt_start_fn start,
                                 void *self, void (*self_free)(void *))
{
    retry *r = evdb__calloc(1, sizeof *r);
    evdb_future *f = r ? evdb__future_new(loop, EVDB__FK_TXN) : NULL;
    if (!f) {
        evdb__free(r);
        r = NULL;
    } else {
        r->max = o->max_attempts ? o->max_attempts : 1;
    }
    if (r && r->max > 1) {
        r->timer = evdb__timer_new(loop, on_backoff, r);
        if (!r->timer) {
            evdb__free(r);
            r = NULL;
        }
    }
    if (!r) {
        evdb_future_unref(f);
        self_free(self);
        evdb__fail_now(EVDB_ENOMEM, "transaction: out of memory");
        return NULL;
    }
    r->loop = loop;
    r->start = start;
    r->self = self;
    r->self_free = self_free;
    r->delay = o->backoff_initial > 0 ? o->backoff_initial : 0.005;
    r->delay_max = o->backoff_max > 0 ? o->backoff_max : 0.5;
    r->rng = (uint32_t)(evdb__loop_now(loop) * 1e6) ^ (++seed_counter * 2654435761u) ^ 1u;
    r->attempts = 1;
    r->cur = start(self);
    if (!r->cur || evdb_future_on_done(r->cur, attempt_done, r)) {
        if (r->cur) {
            evdb_future_cancel(r->cur);
            evdb__fail_now(EVDB_ENOMEM, "transaction: out of memory");
        }
        retry_free(r); /* keeps the error start set */
        evdb_future_unref(f);
        return NULL;
    }
    r->f = evdb_future_ref(f);
    evdb__future_set_op(f, &retry_ops, r);
    return f;
}

/* ---- interactive transactions ---- */

typedef struct txn {
    evdb_pool *pool;
    evdb_future *f; /* this attempt's future */
    evdb_txn_fn fn;
    void *arg;
    evdb_txn_opts o;
    evdb_conn *c;
    evdb_future *pre;   /* MariaDB: SET TRANSACTION before START TRANSACTION */
    evdb_future *begin; /* BEGIN / START TRANSACTION */
    evdb_future *user;  /* what fn returned */
    evdb_error *fn_err; /* fn returned NULL: its error */
    int waiting;        /* of begin and user, how many are still running */
    bool begin_dialect; /* EVDB__TXN_BEGIN: BEGIN, pipelined with fn's statements */
    /* An attempt runs (busy); the retry layer let go of it (orphan): the
     * last one of the two to end frees it. */
    bool busy, orphan;
    /* evdb_pool_transaction_task: fn is task_fn_start, run as a task. */
    evdb_txn_task_fn task_fn;
    void *task_arg;
} txn;

static void txn_end(txn *t)
{
    if (t->c)
        (t->o.no_reset ? evdb_conn_release_no_reset : evdb_conn_release)(t->c);
    t->c = NULL;
    evdb_future_unref(t->pre);
    evdb_future_unref(t->begin);
    evdb_future_unref(t->user);
    evdb__free(t->fn_err);
    t->pre = t->begin = t->user = NULL;
    t->fn_err = NULL;
    evdb_future_unref(t->f);
    t->f = NULL;
    t->busy = false;
    if (t->orphan)
        evdb__free(t);
}

static void txn_free(void *self)
{
    txn *t = self;
    if (t->busy)
        t->orphan = true;
    else
        evdb__free(t);
}

static void txn_finished(evdb_future *f, void *arg)
{
    txn *t = arg;
    if (evdb_future_status(f) != 0)
        evdb__future_fail_err(t->f, evdb_future_error(f));
    else
        evdb__future_forward(t->f, t->user);
    evdb_future_unref(f);
    txn_end(t);
}

/* The error that ends the transaction before COMMIT, or NULL: BEGIN's
 * (or the SET TRANSACTION's) first, since fn's statements ran outside the
 * transaction's terms when it failed, then fn's. */
static const evdb_error *begin_error(const txn *t)
{
    if (t->pre && evdb_future_status(t->pre) != 0)
        return evdb_future_error(t->pre);
    if (t->begin && evdb_future_status(t->begin) != 0)
        return evdb_future_error(t->begin);
    return NULL;
}

/* BEGIN and fn's future are both done: COMMIT or ROLLBACK. */
static void txn_settle(txn *t)
{
    const evdb_error *be = begin_error(t);
    bool ok = !be && !t->fn_err && evdb_future_status(t->user) == 0 && evdb__future_pending(t->f);
    /* Through the borrow handle: if fn released the connection, its
     * handle is stale and this fails instead of running on whoever has
     * the connection now. */
    evdb_future *end = evdb_conn_query(t->c, ok ? "COMMIT" : "ROLLBACK", NULL, 0, NULL);
    if (!ok) {
        /* The failure is the outcome; the ROLLBACK runs before the
         * release either way (release rolls back too). */
        if (be)
            evdb__future_fail_err(t->f, be);
        else if (t->fn_err)
            evdb__future_fail_err(t->f, t->fn_err);
        else
            evdb__future_forward(t->f, t->user);
        if (end)
            evdb__future_disown(end);
        txn_end(t);
        return;
    }
    if (!end) {
        /* Refused at once: the connection was lost (or closed) after the
         * user's statements ran, and the server rolled them back; or fn
         * released the connection itself, and the release rolled back. */
        evdb__future_fail_err(t->f, evdb_last_error());
        txn_end(t);
    } else if (evdb_future_on_done(end, txn_finished, t)) {
        evdb_future_unref(end);
        evdb__future_fail(t->f, EVDB_ENOMEM, "transaction: out of memory submitting COMMIT");
        txn_end(t);
    }
}

static void txn_part_done(evdb_future *f, void *arg)
{
    txn *t = arg;
    (void)f;
    if (--t->waiting == 0)
        txn_settle(t);
}

static void txn_call_fn(txn *t)
{
    t->user = t->fn(t->c, t->arg);
    if (!t->user) {
        t->fn_err = evdb__malloc(sizeof *t->fn_err);
        if (t->fn_err)
            evdb__error_copy(t->fn_err, evdb_last_error());
        else
            evdb__future_fail(t->f, EVDB_ENOMEM, "transaction: out of memory");
        return;
    }
    t->waiting++;
    if (evdb_future_on_done(t->user, txn_part_done, t)) {
        t->waiting--;
        evdb__future_fail(t->f, EVDB_ENOMEM, "transaction: out of memory");
    }
}

/* MariaDB: START TRANSACTION answered; fn runs only inside the block. */
static void txn_started(evdb_future *f, void *arg)
{
    txn *t = arg;
    (void)f;
    if (!begin_error(t) && evdb__future_pending(t->f))
        txn_call_fn(t);
    if (--t->waiting == 0)
        txn_settle(t);
}

static void txn_acquired(evdb_future *f, void *arg)
{
    txn *t = arg;
    if (evdb_future_status(f) != 0 || !evdb__future_pending(t->f)) {
        if (evdb_future_status(f) != 0)
            evdb__future_fail_err(t->f, evdb_future_error(f));
        evdb_future_unref(f); /* an untaken connection goes back by itself */
        txn_end(t);
        return;
    }
    t->c = evdb_future_take_conn(f);
    evdb_future_unref(f);
    const evdb__driver *d = evdb__conn_drv(t->c, "evdb_pool_transaction");
    t->begin_dialect = d && d->txn_dialect == EVDB__TXN_BEGIN;
    if (check_driver(&t->o, t->begin_dialect, "evdb_pool_transaction")) {
        evdb__future_fail_err(t->f, evdb_last_error());
        txn_end(t);
        return;
    }
    char sql[128];
    if (t->begin_dialect) {
        characteristics_sql(sql, sizeof sql, "BEGIN", &t->o, true);
    } else {
        if (t->o.isolation != EVDB_ISOLATION_DEFAULT) {
            /* For the next transaction only: the one started below. */
            char set[96];
            evdb_txn_opts iso = {.isolation = t->o.isolation};
            characteristics_sql(set, sizeof set, "SET TRANSACTION", &iso, false);
            t->pre = evdb_conn_query(t->c, set, NULL, 0, NULL);
            if (!t->pre) {
                evdb__future_fail_err(t->f, evdb_last_error());
                txn_end(t);
                return;
            }
        }
        snprintf(sql, sizeof sql, "START TRANSACTION%s", t->o.read_only ? " READ ONLY" : "");
    }
    t->begin = evdb_conn_query(t->c, sql, NULL, 0, NULL);
    if (!t->begin) {
        /* Refused at once (a connection lost right after the acquire). */
        evdb__future_fail_err(t->f, evdb_last_error());
        txn_end(t);
        return;
    }
    t->waiting = 1;
    if (evdb_future_on_done(t->begin, t->begin_dialect ? txn_part_done : txn_started, t)) {
        evdb__future_fail(t->f, EVDB_ENOMEM, "transaction: out of memory submitting BEGIN");
        txn_end(t);
        return;
    }
    /* PostgreSQL: fn's first statements go out behind BEGIN in the same
     * write. Should BEGIN fail, the transaction fails with its error. */
    if (t->begin_dialect)
        txn_call_fn(t);
}

static evdb_future *txn_start(void *self)
{
    txn *t = self;
    evdb_future *a = evdb_pool_acquire_at(t->pool, t->o.acquire_timeout, NULL, 0);
    if (!a)
        return NULL;
    evdb_future *f = evdb__future_new(evdb__pool_loop(t->pool), EVDB__FK_TXN);
    if (!f || evdb_future_on_done(a, txn_acquired, t)) {
        evdb_future_unref(f);
        evdb_future_cancel(a);
        evdb_future_unref(a);
        evdb__fail_now(EVDB_ENOMEM, "evdb_pool_transaction: out of memory");
        return NULL;
    }
    t->f = evdb_future_ref(f);
    t->busy = true;
    t->waiting = 0;
    return f;
}

evdb_future *evdb_pool_transaction_opts(evdb_pool *p, evdb_txn_fn fn, void *arg,
                                        const evdb_txn_opts *opts)
{
    static const evdb_txn_opts none;
    const evdb_txn_opts *o = opts ? opts : &none;
    if (!fn) {
        evdb__fail_now(EVDB_EINVAL, "evdb_pool_transaction: fn is NULL");
        return NULL;
    }
    if (!evdb__pool_usable(p, "evdb_pool_transaction"))
        return NULL;
    if (check_opts(o, "evdb_pool_transaction") ||
        check_driver(o, (evdb__pool_drv(p)->txn_dialect == EVDB__TXN_BEGIN),
                     "evdb_pool_transaction"))
        return NULL;
    txn *t = evdb__calloc(1, sizeof *t);
    if (!t) {
        evdb__fail_now(EVDB_ENOMEM, "evdb_pool_transaction: out of memory");
        return NULL;
    }
    t->pool = p;
    t->fn = fn;
    t->arg = arg;
    t->o = *o;
    return with_retries(evdb__pool_loop(p), o, txn_start, t, txn_free);
}

/* A task's start: what it needs, copied before the transaction's next
 * attempt can change anything. */
typedef struct task_start {
    evdb_txn_task_fn fn;
    void *arg;
    evdb_conn *c;
} task_start;

static void *task_body(void *p)
{
    task_start ts = *(task_start *)p;
    evdb__free(p);
    return ts.fn(ts.c, ts.arg);
}

static evdb_future *task_fn_start(evdb_conn *c, void *arg)
{
    txn *t = arg;
    task_start *ts = evdb__malloc(sizeof *ts);
    if (!ts) {
        evdb__fail_now(EVDB_ENOMEM, "evdb_pool_transaction_task: out of memory");
        return NULL;
    }
    ts->fn = t->task_fn;
    ts->arg = t->task_arg;
    ts->c = c;
    evdb_future *f = evdb_task_spawn(evdb__loop_ev(evdb__pool_loop(t->pool)), task_body, ts, NULL);
    if (!f)
        evdb__free(ts);
    return f;
}

evdb_future *evdb_pool_transaction_task(evdb_pool *p, evdb_txn_task_fn fn, void *arg,
                                        const evdb_txn_opts *opts)
{
    static const evdb_txn_opts none;
    const evdb_txn_opts *o = opts ? opts : &none;
    if (!fn) {
        evdb__fail_now(EVDB_EINVAL, "evdb_pool_transaction_task: fn is NULL");
        return NULL;
    }
    if (!evdb__pool_usable(p, "evdb_pool_transaction_task"))
        return NULL;
    if (check_opts(o, "evdb_pool_transaction_task") ||
        check_driver(o, (evdb__pool_drv(p)->txn_dialect == EVDB__TXN_BEGIN),
                     "evdb_pool_transaction_task"))
        return NULL;
    txn *t = evdb__calloc(1, sizeof *t);
    if (!t) {
        evdb__fail_now(EVDB_ENOMEM, "evdb_pool_transaction_task: out of memory");
        return NULL;
    }
    t->pool = p;
    t->fn = task_fn_start;
    t->arg = t;
    t->task_fn = fn;
    t->task_arg = arg;
    t->o = *o;
    return with_retries(evdb__pool_loop(p), o, txn_start, t, txn_free);
}

evdb_future *evdb_pool_transaction(evdb_pool *p, evdb_txn_fn fn, void *arg, double timeout)
{
    evdb_txn_opts o = {.acquire_timeout = timeout};
    return evdb_pool_transaction_opts(p, fn, arg, &o);
}

/* ---- static transactions ---- */

typedef struct stxn {
    evdb_pool *pool; /* or */
    evdb_conn *c;
    evdb_txn_opts o;
    bool begin_dialect; /* the driver's EVDB__TXN_BEGIN */
    size_t n;           /* statements, the SET TRANSACTION included */
    bool drop_first;    /* the first statement is the SET TRANSACTION */
    evdb_stmt *stmts;   /* own copy: a retry sends them again */
    char set_sql[128];
    /* One attempt: */
    evdb_future *f;
    evdb_conn *borrowed; /* MariaDB with options on a pool */
    evdb_future *pre;
    bool busy, orphan; /* as txn's */
} stxn;

static void stxn_destroy(stxn *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->stmts[i].sql != s->set_sql)
            evdb__free((void *)s->stmts[i].sql);
        evdb__free((void *)s->stmts[i].params);
    }
    evdb__free(s->stmts);
    evdb__free(s);
}

static void stxn_end(stxn *s)
{
    if (s->borrowed)
        (s->o.no_reset ? evdb_conn_release_no_reset : evdb_conn_release)(s->borrowed);
    s->borrowed = NULL;
    evdb_future_unref(s->pre);
    s->pre = NULL;
    evdb_future_unref(s->f);
    s->f = NULL;
    s->busy = false;
    if (s->orphan)
        stxn_destroy(s);
}

static void stxn_free(void *self)
{
    stxn *s = self;
    if (s->busy)
        s->orphan = true;
    else
        stxn_destroy(s);
}

static void stxn_batch_done(evdb_future *b, void *arg)
{
    stxn *s = arg;
    if (evdb_future_status(b) == 0 && s->drop_first) {
        /* The SET TRANSACTION's empty result is evdb's, not the caller's. */
        evdb_result *r = evdb__result_drop_first(evdb__future_take_result(b));
        if (!evdb__future_resolve(s->f, r, (void (*)(void *))evdb__result_free))
            evdb__result_free(r);
    } else if (evdb_future_status(b) != 0) {
        evdb__future_fail_err(s->f, evdb_future_error(b));
    } else {
        evdb__future_forward(s->f, b);
    }
    evdb_future_unref(b);
    stxn_end(s);
}

/* Submit the batch on c (or the pool when c is NULL) and follow it. */
static bool stxn_submit(stxn *s, evdb_conn *c)
{
    const evdb_stmt *st = s->stmts;
    size_t n = s->n;
    if (!s->begin_dialect && s->drop_first) {
        st++; /* MariaDB: the SET TRANSACTION went on its own before */
        n--;
    }
    evdb_future *b = c ? evdb_conn_batch(c, st, n, NULL) : evdb_pool_batch(s->pool, st, n, NULL);
    if (!b)
        return false;
    if (!s->begin_dialect)
        s->drop_first = false;
    if (evdb_future_on_done(b, stxn_batch_done, s)) {
        evdb_future_cancel(b);
        evdb_future_unref(b);
        evdb__fail_now(EVDB_ENOMEM, "transaction: out of memory");
        return false;
    }
    return true;
}

/* MariaDB: SET TRANSACTION answered; the batch's START TRANSACTION takes
 * its characteristics. */
static void stxn_set_done(evdb_future *f, void *arg)
{
    stxn *s = arg;
    if (evdb_future_status(f) != 0 || !evdb__future_pending(s->f)) {
        if (evdb_future_status(f) != 0)
            evdb__future_fail_err(s->f, evdb_future_error(f));
        stxn_end(s);
        return;
    }
    evdb_conn *c = s->borrowed ? s->borrowed : s->c;
    if (!stxn_submit(s, c)) {
        evdb__future_fail_err(s->f, evdb_last_error());
        stxn_end(s);
    }
}

static bool stxn_set_then_batch(stxn *s, evdb_conn *c)
{
    s->pre = evdb_conn_query(c, s->set_sql, NULL, 0, NULL);
    if (!s->pre)
        return false;
    if (evdb_future_on_done(s->pre, stxn_set_done, s)) {
        evdb__fail_now(EVDB_ENOMEM, "transaction: out of memory");
        return false;
    }
    return true;
}

static void stxn_acquired(evdb_future *f, void *arg)
{
    stxn *s = arg;
    if (evdb_future_status(f) != 0 || !evdb__future_pending(s->f)) {
        if (evdb_future_status(f) != 0)
            evdb__future_fail_err(s->f, evdb_future_error(f));
        evdb_future_unref(f);
        stxn_end(s);
        return;
    }
    s->borrowed = evdb_future_take_conn(f);
    evdb_future_unref(f);
    if (!stxn_set_then_batch(s, s->borrowed)) {
        evdb__future_fail_err(s->f, evdb_last_error());
        stxn_end(s);
    }
}

static evdb_future *stxn_start(void *self)
{
    stxn *s = self;
    s->drop_first = s->set_sql[0] != '\0';
    evdb__loop *loop;
    if (s->pool) {
        loop = evdb__pool_loop(s->pool);
    } else {
        evdb_conn *real = evdb__is_borrow_handle(s->c) ? evdb__pool_borrowed(s->c) : s->c;
        if (!real) {
            evdb__fail_now(EVDB_EINVAL, "evdb_conn_transaction_batch: stale connection handle");
            return NULL;
        }
        loop = evdb__conn_loop(real);
    }
    evdb_future *f = evdb__future_new(loop, EVDB__FK_QUERY);
    if (!f) {
        evdb__fail_now(EVDB_ENOMEM, "transaction: out of memory");
        return NULL;
    }
    s->f = evdb_future_ref(f);
    s->busy = true;
    bool ok;
    if (s->begin_dialect || !s->drop_first) {
        ok = stxn_submit(s, s->c); /* the pool's when c is NULL */
    } else if (s->c) {
        ok = stxn_set_then_batch(s, s->c);
    } else {
        evdb_future *a = evdb_pool_acquire_at(s->pool, s->o.acquire_timeout, NULL, 0);
        ok = a && !evdb_future_on_done(a, stxn_acquired, s);
        if (a && !ok) {
            evdb_future_cancel(a);
            evdb_future_unref(a);
            evdb__fail_now(EVDB_ENOMEM, "transaction: out of memory");
        }
    }
    if (!ok) {
        evdb_future_unref(s->pre);
        s->pre = NULL;
        s->busy = false;
        evdb_future_unref(s->f);
        s->f = NULL;
        evdb_future_unref(f);
        return NULL;
    }
    return f;
}

static evdb_future *transaction_batch(evdb_pool *p, evdb_conn *c, const evdb_stmt *stmts, size_t n,
                                      const evdb_txn_opts *opts, const char *who)
{
    static const evdb_txn_opts none;
    const evdb_txn_opts *o = opts ? opts : &none;
    if (!stmts || n == 0 || n >= EVDB_BATCH_MAX) {
        evdb__fail_now(EVDB_EINVAL, "%s: 1..%u statements", who, EVDB_BATCH_MAX - 1);
        return NULL;
    }
    if (!p && !c) {
        evdb__fail_now(EVDB_EINVAL, "%s: NULL", who);
        return NULL;
    }
    bool begin_dialect;
    if (p) {
        if (!evdb__pool_usable(p, who))
            return NULL;
        begin_dialect = (evdb__pool_drv(p)->txn_dialect == EVDB__TXN_BEGIN);
    } else {
        const evdb__driver *d = evdb__conn_drv(c, who);
        if (!d) {
            evdb__fail_now(EVDB_EINVAL, "%s: not a connection", who);
            return NULL;
        }
        begin_dialect = d->txn_dialect == EVDB__TXN_BEGIN;
    }
    if (check_opts(o, who) || check_driver(o, begin_dialect, who))
        return NULL;
    stxn *s = evdb__calloc(1, sizeof *s);
    size_t extra = has_characteristics(o) ? 1 : 0;
    if (s)
        s->stmts = evdb__calloc(n + extra, sizeof *s->stmts);
    if (!s || !s->stmts) {
        evdb__free(s);
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    s->pool = p;
    s->c = c;
    s->o = *o;
    s->begin_dialect = begin_dialect;
    if (extra) {
        characteristics_sql(s->set_sql, sizeof s->set_sql, "SET TRANSACTION", o, begin_dialect);
        s->stmts[0].sql = s->set_sql;
    }
    s->n = n + extra;
    for (size_t i = 0; i < n; i++) {
        evdb_stmt *d = &s->stmts[i + extra];
        if (!stmts[i].sql || (stmts[i].nparams && !stmts[i].params) ||
            evdb__values_check(stmts[i].params, stmts[i].nparams)) {
            if (!stmts[i].sql || (stmts[i].nparams && !stmts[i].params))
                evdb__fail_now(EVDB_EINVAL, "%s: statement %zu: no SQL or no parameters", who,
                               i + 1);
            stxn_free(s);
            return NULL;
        }
        size_t len = strlen(stmts[i].sql);
        char *sql = evdb__malloc(len + 1);
        void *params = NULL;
        if (sql)
            memcpy(sql, stmts[i].sql, len + 1);
        d->sql = sql;
        if (sql && stmts[i].nparams) {
            params = evdb__malloc(evdb__values_size(stmts[i].params, stmts[i].nparams));
            if (params)
                d->params = evdb__values_copy_into(params, stmts[i].params, stmts[i].nparams);
            d->nparams = stmts[i].nparams;
        }
        if (!sql || (stmts[i].nparams && !params)) {
            stxn_free(s);
            evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
            return NULL;
        }
    }
    evdb__loop *loop;
    if (p) {
        loop = evdb__pool_loop(p);
    } else {
        evdb_conn *real = evdb__is_borrow_handle(c) ? evdb__pool_borrowed(c) : c;
        if (!real) {
            stxn_free(s);
            evdb__fail_now(EVDB_EINVAL, "%s: stale connection handle", who);
            return NULL;
        }
        loop = evdb__conn_loop(real);
    }
    return with_retries(loop, o, stxn_start, s, stxn_free);
}

evdb_future *evdb_pool_transaction_batch(evdb_pool *p, const evdb_stmt *stmts, size_t n,
                                         const evdb_txn_opts *opts)
{
    return transaction_batch(p, NULL, stmts, n, opts, "evdb_pool_transaction_batch");
}

evdb_future *evdb_conn_transaction_batch(evdb_conn *c, const evdb_stmt *stmts, size_t n,
                                         const evdb_txn_opts *opts)
{
    return transaction_batch(NULL, c, stmts, n, opts, "evdb_conn_transaction_batch");
}

/* ---- savepoints ---- */

typedef struct savepoint {
    evdb_future *f;
    evdb_conn *c;
    evdb_future *sp;   /* SAVEPOINT */
    evdb_future *user; /* fn's */
    evdb_error *fn_err;
    int waiting;
    char name[32];
} savepoint;

/* Per thread: a connection is used from one thread, and names only need
 * to differ within one transaction. */
static __thread unsigned long savepoint_seq;

static void sp_free(savepoint *s)
{
    evdb_future_unref(s->sp);
    evdb_future_unref(s->user);
    evdb_future_unref(s->f);
    evdb__free(s->fn_err);
    evdb__free(s);
}

static void sp_finished(evdb_future *f, void *arg)
{
    savepoint *s = arg;
    if (evdb_future_status(f) != 0)
        evdb__future_fail_err(s->f, evdb_future_error(f));
    else
        evdb__future_forward(s->f, s->user);
    evdb_future_unref(f);
    sp_free(s);
}

static void sp_part_done(evdb_future *f, void *arg)
{
    savepoint *s = arg;
    (void)f;
    if (--s->waiting)
        return;
    bool sp_ok = evdb_future_status(s->sp) == 0;
    bool ok = sp_ok && !s->fn_err && evdb_future_status(s->user) == 0;
    char sql[64];
    if (ok)
        snprintf(sql, sizeof sql, "RELEASE SAVEPOINT %s", s->name);
    else
        snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT %s", s->name);
    /* A failed SAVEPOINT aborted the whole block: nothing to roll back to. */
    evdb_future *end = sp_ok ? evdb_conn_query(s->c, sql, NULL, 0, NULL) : NULL;
    if (ok) {
        if (!end || evdb_future_on_done(end, sp_finished, s)) {
            if (end)
                evdb_future_unref(end);
            evdb__future_fail_err(s->f, evdb_last_error());
            sp_free(s);
        }
        return;
    }
    /* fn's failure is the outcome once its work is rolled back: wait for
     * the ROLLBACK TO so the statements the caller sends next run after
     * it (they do anyway, in order), and so that its own failure shows. */
    if (!sp_ok)
        evdb__future_fail_err(s->f, evdb_future_error(s->sp));
    else if (s->fn_err)
        evdb__future_fail_err(s->f, s->fn_err);
    else
        evdb__future_forward(s->f, s->user);
    if (end)
        evdb__future_disown(end);
    sp_free(s);
}

evdb_future *evdb_conn_savepoint(evdb_conn *c, evdb_txn_fn fn, void *arg)
{
    if (!c || !fn) {
        evdb__fail_now(EVDB_EINVAL, "evdb_conn_savepoint: %s is NULL", c ? "fn" : "c");
        return NULL;
    }
    savepoint *s = evdb__calloc(1, sizeof *s);
    if (!s) {
        evdb__fail_now(EVDB_ENOMEM, "evdb_conn_savepoint: out of memory");
        return NULL;
    }
    snprintf(s->name, sizeof s->name, "evdb_sp_%lu", ++savepoint_seq);
    char sql[64];
    snprintf(sql, sizeof sql, "SAVEPOINT %s", s->name);
    s->sp = evdb_conn_query(c, sql, NULL, 0, NULL);
    if (!s->sp) {
        evdb__free(s);
        return NULL;
    }
    evdb_future *f = evdb__future_new(evdb__future_loop(s->sp), EVDB__FK_TXN);
    if (!f || evdb_future_on_done(s->sp, sp_part_done, s)) {
        evdb_future_unref(f);
        evdb_future_unref(s->sp);
        evdb__free(s);
        evdb__fail_now(EVDB_ENOMEM, "evdb_conn_savepoint: out of memory");
        return NULL;
    }
    s->c = c;
    s->f = evdb_future_ref(f);
    s->waiting = 1;
    /* fn's statements follow the SAVEPOINT; should it fail, the block is
     * aborted and they fail too (inside a block nothing runs alone). */
    s->user = fn(c, arg);
    if (!s->user) {
        s->fn_err = evdb__malloc(sizeof *s->fn_err);
        if (s->fn_err)
            evdb__error_copy(s->fn_err, evdb_last_error());
        else
            evdb__future_fail(s->f, EVDB_ENOMEM, "evdb_conn_savepoint: out of memory");
    } else {
        s->waiting++;
        if (evdb_future_on_done(s->user, sp_part_done, s)) {
            s->waiting--;
            evdb__future_fail(s->f, EVDB_ENOMEM, "evdb_conn_savepoint: out of memory");
        }
    }
    return f;
}
