/*
 * LISTEN/NOTIFY listeners (include/evdb/listen.h): one dedicated
 * connection per listener, its channels, the queue of notifications on
 * their way to the callbacks, and reconnecting after a loss.
 *
 * The driver hands notifications over inside its io step
 * (evdb__notification, through the connection's listener hooks); they are
 * copied into the queue and delivered from the loop, so user callbacks
 * never run inside a driver step.
 *
 * Gaps. When the session is lost, a gap marker goes to the tail of the
 * queue (the listener's own node: a loss never needs memory). Delivery
 * stops at a marker until the new session has acknowledged every
 * re-LISTEN; then the gap callback runs, and after it the notifications
 * the new session received. So what was received before the loss is
 * delivered before the gap callback, what came after it is delivered
 * after it, and nothing is delivered twice (the old session's
 * notifications are never read again). A loss during the reconnect
 * belongs to the same outage: one marker, one callback.
 *
 * Generations. Every connection attempt starts a new generation; the
 * answers to LISTENs sent on an older connection (which failed when it
 * was lost) are ignored, since the new connection sends its own.
 *
 * Lifetime. refs counts what may still call back into the listener (the
 * open future, LISTEN / UNLISTEN queries, the connection's close, a
 * delivery in progress); after evdb_listener_close, the listener is freed
 * and its close future resolved when refs drops to zero.
 */
#include <string.h>

#include "backoff.h"
#include "internal.h"
#include "pool_conn.h"

#define EVDB__MAGIC_LISTENER 0x4c69736eu /* "Lisn" */
/* NAMEDATALEN - 1: the server truncates longer identifiers, and the
 * notifications would then name a channel nobody listens on. */
#define CHANNEL_MAX 63
/* "UNLISTEN " + quotes + every byte doubled + NUL. */
#define SQL_MAX (sizeof "UNLISTEN " + 2 + 2 * CHANNEL_MAX + 1)

typedef enum lstate {
    LS_CONNECTING, /* a connection attempt runs */
    LS_RESTORING,  /* connected; the LISTENs of this connection's start run */
    LS_LIVE,       /* connected, every channel listened on */
    LS_LOST,       /* the session was lost; the reconnect is about to start */
    LS_WAITING,    /* an attempt failed; the backoff timer runs */
    LS_CLOSING
} lstate;

typedef struct chan {
    struct chan *next;
    uint64_t id; /* never reused: a late answer finds its channel or nothing */
    evdb_notify_fn cb;
    void *arg;
    evdb_future *f; /* the listen future, until the first acknowledgement */
    bool acked;     /* LISTEN acknowledged once: renewed after a loss */
    char name[];
} chan;

/* A notification, or the gap marker (the listener's own node). */
typedef struct lnote {
    struct lnote *next;
    bool gap;
    const char *channel, *payload; /* in the same allocation */
    size_t payload_len;
    int64_t pid;
} lnote;

/* A LISTEN or UNLISTEN on the wire. */
typedef struct ticket {
    evdb_listener *l;
    uint64_t chan_id;
    unsigned gen;
    bool initial;    /* a LISTEN of the connection's start (restore) */
    evdb_future *uf; /* UNLISTEN: the user's future */
} ticket;

struct evdb_listener {
    uint32_t magic;
    lstate st;
    evdb__loop *loop;
    char *url;
    evdb_conn_opts copts;
    evdb__backoff backoff;
    evdb_gap_fn on_gap;
    void *on_gap_arg;
    evdb_conn *conn;
    evdb_future *open_f;
    unsigned gen;
    unsigned relisten_left;
    uint64_t next_id;
    chan *chans;
    lnote *qhead, *qtail;
    /* The gap marker: queued from the loss until it is delivered. */
    lnote gap;
    bool gap_queued, gap_open;
    double lost_at, restored_at;
    evdb_error gap_cause;
    evdb__deferred deliver_d, lost_d;
    evdb__timer *retry_timer;
    evdb_future *close_f;
    size_t refs;
};

static void start_connect(evdb_listener *l);

/* ---------------------------------------------------------------- helpers */

static evdb_listener *lookup(const evdb_listener *l, const char *who, bool open_only)
{
    if (!l || l->magic != EVDB__MAGIC_LISTENER) {
        evdb__fail_now(EVDB_EINVAL, "%s: invalid listener", who);
        return NULL;
    }
    if (open_only && l->st == LS_CLOSING) {
        evdb__fail_now(EVDB_ECLOSED, "%s: the listener is closing", who);
        return NULL;
    }
    return (evdb_listener *)l;
}

static chan *chan_by_name(evdb_listener *l, const char *name)
{
    for (chan *c = l->chans; c; c = c->next)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

static chan *chan_by_id(evdb_listener *l, uint64_t id)
{
    for (chan *c = l->chans; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

static void chan_remove(evdb_listener *l, chan *c)
{
    for (chan **p = &l->chans; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    evdb_future_unref(c->f);
    evdb__free(c);
}

/* Fail c's listen future (if still pending) and forget c. */
static void chan_fail(evdb_listener *l, chan *c, const evdb_error *e)
{
    if (c->f)
        evdb__future_fail_err(c->f, e);
    chan_remove(l, c);
}

/* The statement for channel: an identifier quoted as quote_ident does, so
 * any text is a channel name and nothing in it is SQL. */
static void channel_sql(char *out, const char *verb, const char *channel)
{
    size_t n = strlen(verb);
    memcpy(out, verb, n);
    out[n++] = '"';
    for (const char *p = channel; *p; p++) {
        if (*p == '"')
            out[n++] = '"';
        out[n++] = *p;
    }
    out[n++] = '"';
    out[n] = '\0';
}

static void release(evdb_listener *l);

/* Send LISTEN or UNLISTEN over the current connection; the answer goes to
 * done(f, t). False (nothing sent, last error set) when it cannot. */
static bool send_channel_sql(evdb_listener *l, const char *verb, const char *channel,
                             evdb_done_cb done, ticket *t)
{
    char sql[SQL_MAX];
    channel_sql(sql, verb, channel);
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    o.flags = EVDB_QUERY_NO_CACHE;
    evdb_future *f = evdb_conn_query(l->conn, sql, NULL, 0, &o);
    if (!f)
        return false;
    l->refs++;
    evdb_future_on_done(f, done, t);
    return true;
}

/* ------------------------------------------------------------ delivery */

static void drop_queue(evdb_listener *l)
{
    while (l->qhead) {
        lnote *n = l->qhead;
        l->qhead = n->next;
        if (!n->gap)
            evdb__free(n);
    }
    l->qtail = NULL;
    l->gap_queued = l->gap_open = false;
}

static void enqueue(evdb_listener *l, lnote *n)
{
    n->next = NULL;
    if (l->qtail)
        l->qtail->next = n;
    else
        l->qhead = n;
    l->qtail = n;
}

static void deliver(evdb__deferred *d)
{
    evdb_listener *l = EVDB__CONTAINER_OF(d, evdb_listener, deliver_d);
    l->refs++;
    while (l->qhead && l->st != LS_CLOSING) {
        lnote *n = l->qhead;
        if (n->gap && l->gap_open)
            break; /* the outage is not over: what follows waits */
        l->qhead = n->next;
        if (!l->qhead)
            l->qtail = NULL;
        if (n->gap) {
            l->gap_queued = false;
            if (l->on_gap)
                l->on_gap(l, l->lost_at, l->restored_at, &l->gap_cause, l->on_gap_arg);
            continue;
        }
        chan *c = chan_by_name(l, n->channel);
        if (c)
            c->cb(l, n->channel, n->payload, n->payload_len, n->pid, c->arg);
        evdb__free(n);
    }
    release(l);
}

/* --------------------------------------------------- connection hooks */

/* Inside the driver's step: copy and queue only. */
static void on_notify(void *arg, const char *channel, const char *payload, size_t payload_len,
                      int64_t sender_id)
{
    evdb_listener *l = arg;
    if (l->st == LS_CLOSING || !chan_by_name(l, channel))
        return;
    size_t clen = strlen(channel);
    lnote *n = evdb__malloc(sizeof *n + clen + 1 + payload_len + 1);
    if (!n)
        return; /* documented: a notification may be lost when memory runs out */
    char *ch = (char *)(n + 1);
    memcpy(ch, channel, clen + 1);
    char *pl = ch + clen + 1;
    memcpy(pl, payload, payload_len);
    pl[payload_len] = '\0';
    n->gap = false;
    n->channel = ch;
    n->payload = pl;
    n->payload_len = payload_len;
    n->pid = sender_id;
    enqueue(l, n);
    evdb__loop_defer(l->loop, &l->deliver_d);
}

/* Inside the driver's step: record the loss, act from the loop. The
 * generation changes at once, so the failures of this connection's
 * LISTENs (reported before on_lost runs) are recognised as stale. */
static void on_conn_lost(void *arg, const evdb_error *err)
{
    evdb_listener *l = arg;
    if (l->st == LS_CLOSING)
        return;
    /* A marker still queued (this outage's, or the last one's, restored
     * but not delivered yet, which this loss continues: open_gap) keeps
     * the time its outage began. */
    if (!l->gap_queued) {
        l->lost_at = evdb__loop_now(l->loop);
        evdb__error_copy(&l->gap_cause, err);
    }
    l->gen++;
    l->st = LS_LOST;
    evdb__loop_defer(l->loop, &l->lost_d);
}

static const evdb__conn_listener hooks = {on_notify, on_conn_lost};

/* Let go of the connection (lost, or a failed restore): no more hooks,
 * closed without waiting for anyone. */
static void drop_conn(evdb_listener *l)
{
    if (!l->conn)
        return;
    evdb__conn_set_listener(l->conn, NULL, NULL);
    evdb_future *f = evdb_conn_close(l->conn);
    if (f)
        evdb__future_disown(f);
    l->conn = NULL;
}

/* Open the gap (once per outage) when there was something to miss: a
 * channel whose LISTEN the server had acknowledged. */
static void open_gap(evdb_listener *l)
{
    if (l->gap_open)
        return;
    bool any = false;
    for (chan *c = l->chans; c && !any; c = c->next)
        any = c->acked;
    if (!any)
        return;
    if (l->gap_queued) {
        /* The last outage's marker, restored but not delivered yet: this
         * outage continues it. It moves to the tail, behind what the
         * session in between received. */
        lnote **p = &l->qhead;
        lnote *prev = NULL;
        while (*p != &l->gap) {
            prev = *p;
            p = &(*p)->next;
        }
        *p = l->gap.next;
        if (l->qtail == &l->gap)
            l->qtail = prev;
    }
    l->gap.gap = true;
    enqueue(l, &l->gap);
    l->gap_queued = l->gap_open = true;
}

static void on_lost(evdb__deferred *d)
{
    evdb_listener *l = EVDB__CONTAINER_OF(d, evdb_listener, lost_d);
    if (l->st != LS_LOST)
        return;
    drop_conn(l);
    open_gap(l);
    /* At once: a terminated backend or a dropped connection to a server
     * still up recovers without delay; a server that is down makes this
     * attempt fail, and backoff follows. */
    start_connect(l);
}

/* ------------------------------------------------------ (re)connecting */

static void restored(evdb_listener *l)
{
    l->st = LS_LIVE;
    evdb__backoff_reset(&l->backoff);
    if (l->gap_open) {
        l->gap_open = false;
        l->restored_at = evdb__loop_now(l->loop);
        evdb__loop_defer(l->loop, &l->deliver_d);
    }
}

static void on_retry(void *arg)
{
    evdb_listener *l = arg;
    if (l->st == LS_WAITING)
        start_connect(l);
}

/* A connection attempt failed (err): the LISTENs waiting for it fail
 * (the caller learns why: a wrong password, a server that is down), the
 * ones acknowledged before stay for the next attempt, after a backoff. */
static void attempt_failed(evdb_listener *l, const evdb_error *err)
{
    evdb_error e;
    evdb__error_set(&e, err->code ? err->code : EVDB_ECONNECT, 0, NULL,
                    "listener: could not connect (it keeps retrying): %.400s", err->message);
    for (chan *c = l->chans, *next; c; c = next) {
        next = c->next;
        if (!c->acked)
            chan_fail(l, c, &e);
    }
    l->st = LS_WAITING;
    evdb__timer_start(l->retry_timer, evdb__backoff_next(&l->backoff));
}

static void on_listen_done(evdb_future *f, void *arg);

static void on_open(evdb_future *f, void *arg)
{
    evdb_listener *l = arg;
    l->open_f = NULL;
    evdb_conn *c = evdb_future_status(f) == 0 ? evdb_future_take_conn(f) : NULL;
    if (l->st == LS_CLOSING) {
        if (c) {
            evdb_future *cf = evdb_conn_close(c);
            if (cf)
                evdb__future_disown(cf);
        }
    } else if (!c) {
        attempt_failed(l, evdb_future_error(f));
    } else if (evdb__conn_set_listener(c, &hooks, l) != 0) {
        /* Checked at open; a driver cannot lose LISTEN in between. */
        evdb_future *cf = evdb_conn_close(c);
        if (cf)
            evdb__future_disown(cf);
        evdb_error e;
        evdb__error_set(&e, EVDB_ENOTSUP, 0, NULL, "the driver has no LISTEN/NOTIFY");
        attempt_failed(l, &e);
    } else {
        l->conn = c;
        l->st = LS_RESTORING;
        l->relisten_left = 0;
        for (chan *ch = l->chans; ch; ch = ch->next) {
            ticket *t = evdb__calloc(1, sizeof *t);
            if (t) {
                *t = (ticket){.l = l, .chan_id = ch->id, .gen = l->gen, .initial = true};
                if (send_channel_sql(l, "LISTEN ", ch->name, on_listen_done, t)) {
                    l->relisten_left++;
                    continue;
                }
                evdb__free(t);
            }
            /* Out of memory: this session cannot be restored; start over. */
            evdb_error e;
            evdb__error_set(&e, EVDB_ENOMEM, 0, NULL, "out of memory renewing LISTEN");
            drop_conn(l);
            l->gen++;
            attempt_failed(l, &e);
            break;
        }
        if (l->st == LS_RESTORING && l->relisten_left == 0)
            restored(l);
    }
    evdb_future_unref(f);
    release(l);
}

static void start_connect(evdb_listener *l)
{
    l->gen++;
    l->st = LS_CONNECTING;
    evdb_future *f = evdb_conn_open(evdb__loop_ev(l->loop), l->url, &l->copts);
    if (!f) {
        attempt_failed(l, evdb_last_error());
        return;
    }
    l->open_f = f;
    l->refs++;
    evdb_future_on_done(f, on_open, l);
}

/* --------------------------------------------------- LISTEN / UNLISTEN */

static bool connection_error(int code)
{
    return code == EVDB_ECONNLOST || code == EVDB_ECLOSED;
}

static void on_listen_done(evdb_future *f, void *arg)
{
    ticket *t = arg;
    evdb_listener *l = t->l;
    int st = evdb_future_status(f);
    if (l->st != LS_CLOSING && t->gen == l->gen) {
        chan *c = chan_by_id(l, t->chan_id);
        if (c && st == 0) {
            c->acked = true;
            if (c->f) {
                evdb__future_resolve(c->f, NULL, NULL);
                evdb_future_unref(c->f);
                c->f = NULL;
            }
        } else if (c && !c->acked && !connection_error(st)) {
            chan_fail(l, c, evdb_future_error(f)); /* the server refused it */
        }
        if (t->initial && --l->relisten_left == 0 && l->st == LS_RESTORING)
            restored(l);
    }
    evdb__free(t);
    evdb_future_unref(f);
    release(l);
}

static void on_unlisten_done(evdb_future *f, void *arg)
{
    ticket *t = arg;
    int st = evdb_future_status(f);
    /* A lost session listens on nothing, and the next one never listens
     * on this channel: done either way. */
    if (st == 0 || connection_error(st))
        evdb__future_resolve(t->uf, NULL, NULL);
    else
        evdb__future_fail_err(t->uf, evdb_future_error(f));
    evdb_future_unref(t->uf);
    evdb_listener *l = t->l;
    evdb__free(t);
    evdb_future_unref(f);
    release(l);
}

static bool connected(const evdb_listener *l)
{
    return l->conn && (l->st == LS_RESTORING || l->st == LS_LIVE);
}

evdb_future *evdb_listener_listen(evdb_listener *lh, const char *channel, evdb_notify_fn cb,
                                  void *arg)
{
    evdb_listener *l = lookup(lh, "evdb_listener_listen", true);
    if (!l)
        return NULL;
    size_t len = channel ? strlen(channel) : 0;
    if (!cb || len == 0 || len > CHANNEL_MAX) {
        evdb__fail_now(EVDB_EINVAL,
                       "evdb_listener_listen: a callback and a channel name of 1 "
                       "to %d bytes are required",
                       CHANNEL_MAX);
        return NULL;
    }
    if (chan_by_name(l, channel)) {
        evdb__fail_now(EVDB_EINVAL, "evdb_listener_listen: already listening on this channel "
                                    "(unlisten it first)");
        return NULL;
    }
    chan *c = evdb__calloc(1, sizeof *c + len + 1);
    evdb_future *f = evdb__future_new(l->loop, EVDB__FK_USER);
    ticket *t = evdb__calloc(1, sizeof *t);
    if (!c || !f || !t) {
        evdb__free(c);
        evdb__free(t);
        evdb_future_unref(f);
        evdb__fail_now(EVDB_ENOMEM, "evdb_listener_listen: out of memory");
        return NULL;
    }
    memcpy(c->name, channel, len + 1);
    c->id = ++l->next_id;
    c->cb = cb;
    c->arg = arg;
    c->f = f;
    if (connected(l)) {
        *t = (ticket){.l = l, .chan_id = c->id, .gen = l->gen};
        if (!send_channel_sql(l, "LISTEN ", c->name, on_listen_done, t)) {
            evdb__free(c);
            evdb__free(t);
            evdb_future_unref(f);
            return NULL; /* last error set by evdb_conn_query */
        }
    } else {
        evdb__free(t); /* sent when the connection is up */
    }
    c->next = l->chans;
    l->chans = c;
    return evdb_future_ref(f);
}

evdb_future *evdb_listener_unlisten(evdb_listener *lh, const char *channel)
{
    evdb_listener *l = lookup(lh, "evdb_listener_unlisten", true);
    if (!l)
        return NULL;
    chan *c = channel ? chan_by_name(l, channel) : NULL;
    if (!c) {
        evdb__fail_now(EVDB_EINVAL, "evdb_listener_unlisten: not listening on this channel");
        return NULL;
    }
    evdb_future *uf = evdb__future_new(l->loop, EVDB__FK_USER);
    ticket *t = evdb__calloc(1, sizeof *t);
    if (!uf || !t) {
        evdb_future_unref(uf);
        evdb__free(t);
        evdb__fail_now(EVDB_ENOMEM, "evdb_listener_unlisten: out of memory");
        return NULL;
    }
    *t = (ticket){.l = l, .uf = evdb_future_ref(uf)};
    if (!connected(l) || !send_channel_sql(l, "UNLISTEN ", c->name, on_unlisten_done, t)) {
        /* Not connected, or the UNLISTEN cannot go out (no memory): the
         * callback is gone all the same, and a session that outlives it
         * only sends notifications nobody is given. */
        evdb_future_unref(t->uf);
        evdb__free(t);
        evdb__future_resolve(uf, NULL, NULL);
    }
    /* Nothing already received for it is delivered any more. */
    for (lnote **p = &l->qhead, *prev = NULL; *p;) {
        lnote *n = *p;
        if (!n->gap && !strcmp(n->channel, c->name)) {
            *p = n->next;
            if (l->qtail == n)
                l->qtail = prev;
            evdb__free(n);
        } else {
            prev = n;
            p = &n->next;
        }
    }
    evdb_error e;
    evdb__error_set(&e, EVDB_ECANCELED, 0, NULL,
                    "evdb_listener_listen: unlistened before the server acknowledged");
    chan_fail(l, c, &e);
    return uf;
}

/* ------------------------------------------------------ open and close */

/* What is left of a closed listener while its close future lives: the
 * handle, closing and holding nothing, so that a late call on it is
 * refused with EVDB_ECLOSED instead of reading freed memory. */
static void shell_free(void *arg)
{
    evdb_listener *l = arg;
    l->magic = EVDB__MAGIC_DEAD;
    evdb__free(l);
}

static void listener_free(evdb_listener *l)
{
    evdb__loop_undefer(l->loop, &l->deliver_d);
    evdb__loop_undefer(l->loop, &l->lost_d);
    evdb__timer_free(l->retry_timer);
    l->retry_timer = NULL;
    evdb__free(l->url);
    l->url = NULL;
    evdb__loop_unref(l->loop);
    l->loop = NULL;
    evdb_future *cf = l->close_f;
    l->close_f = NULL;
    if (!cf) {
        shell_free(l);
        return;
    }
    evdb__future_resolve(cf, l, shell_free);
    evdb_future_unref(cf);
}

static void release(evdb_listener *l)
{
    if (--l->refs == 0 && l->st == LS_CLOSING)
        listener_free(l);
}

static void on_conn_closed(evdb_future *f, void *arg)
{
    evdb_future_unref(f);
    release(arg);
}

evdb_future *evdb_listener_close(evdb_listener *lh)
{
    evdb_listener *l = lookup(lh, "evdb_listener_close", true);
    if (!l)
        return NULL;
    evdb_future *f = evdb__future_new(l->loop, EVDB__FK_CLOSE);
    if (!f) {
        evdb__fail_now(EVDB_ENOMEM, "evdb_listener_close: out of memory");
        return NULL;
    }
    l->close_f = f;
    l->st = LS_CLOSING;
    evdb__timer_stop(l->retry_timer);
    evdb__loop_undefer(l->loop, &l->lost_d);
    drop_queue(l);
    evdb_error e;
    evdb__error_set(&e, EVDB_ECLOSED, 0, NULL,
                    "evdb_listener_listen: the listener was closed before the server "
                    "acknowledged");
    while (l->chans)
        chan_fail(l, l->chans, &e);
    if (l->conn) {
        evdb__conn_set_listener(l->conn, NULL, NULL);
        evdb_future *cf = evdb_conn_close(l->conn);
        l->conn = NULL;
        if (cf) {
            l->refs++;
            evdb_future_on_done(cf, on_conn_closed, l);
        }
    }
    if (l->open_f)
        evdb_future_cancel(l->open_f);
    /* The caller's reference first: dropping the user's hold on l may
     * free it and resolve f at once. */
    evdb_future_ref(f);
    release(l);
    return f;
}

int evdb_listener_status(const evdb_listener *lh)
{
    const evdb_listener *l = lookup(lh, "evdb_listener_status", false);
    if (!l)
        return EVDB_EINVAL;
    if (l->st == LS_CLOSING)
        return EVDB_ECLOSED;
    return l->st == LS_LIVE ? 0 : EVDB_ECONNLOST;
}

static evdb_listener *listener_new(struct ev_loop *loop, const char *url,
                                   const evdb_listener_opts *o, const char *who)
{
    const evdb__driver *drv = evdb__driver_for(url);
    if (!drv) {
        evdb__fail_now(EVDB_EURL, "%s: no driver for this URL", who);
        return NULL;
    }
    if (!drv->listen) {
        evdb__fail_now(EVDB_ENOTSUP,
                       "%s: the %s driver has no LISTEN/NOTIFY (a PostgreSQL "
                       "feature)",
                       who, drv->name);
        return NULL;
    }
    for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++) {
        if (o->reserved[i]) {
            evdb__fail_now(EVDB_EINVAL, "%s: opts.reserved must be zero", who);
            return NULL;
        }
    }
    evdb__loop *lp = evdb__loop_get(loop);
    evdb_listener *l = evdb__calloc(1, sizeof *l);
    char *u = evdb__strdup(url);
    evdb__timer *tm = lp ? evdb__timer_new(lp, on_retry, l) : NULL;
    if (!lp || !l || !u || !tm) {
        evdb__timer_free(tm);
        evdb__free(u);
        evdb__free(l);
        if (lp)
            evdb__loop_unref(lp);
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    l->magic = EVDB__MAGIC_LISTENER;
    l->loop = lp;
    l->url = u;
    l->retry_timer = tm;
    l->copts.connect_timeout = o->connect_timeout;
    l->on_gap = o->on_gap;
    l->on_gap_arg = o->on_gap_arg;
    evdb__backoff_init(&l->backoff, o->backoff_initial, o->backoff_max, o->backoff_jitter,
                       (uintptr_t)l);
    l->deliver_d.fn = deliver;
    l->lost_d.fn = on_lost;
    l->refs = 1; /* the user's, until evdb_listener_close */
    l->gen++;
    l->st = LS_CONNECTING;
    evdb_future *f = evdb_conn_open(loop, url, &l->copts);
    if (!f) {
        /* A malformed URL is the caller's to hear about now. */
        listener_free(l);
        return NULL;
    }
    l->open_f = f;
    l->refs++;
    evdb_future_on_done(f, on_open, l);
    return l;
}

evdb_listener *evdb_listener_open(struct ev_loop *loop, const char *url,
                                  const evdb_listener_opts *opts)
{
    if (!loop || !url) {
        evdb__fail_now(EVDB_EINVAL, "evdb_listener_open: loop and url are required");
        return NULL;
    }
    evdb_listener_opts o;
    memset(&o, 0, sizeof o);
    return listener_new(loop, url, opts ? opts : &o, "evdb_listener_open");
}

evdb_listener *evdb_listener_open_pool(evdb_pool *p, const evdb_listener_opts *opts)
{
    if (!evdb__pool_usable(p, "evdb_listener_open_pool"))
        return NULL;
    const evdb_pool_opts *po;
    const char *url = evdb__pool_url(p, &po);
    evdb_listener_opts o;
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    if (o.connect_timeout == 0)
        o.connect_timeout = po->connect_timeout;
    if (o.backoff_initial == 0)
        o.backoff_initial = po->backoff_initial;
    if (o.backoff_max == 0)
        o.backoff_max = po->backoff_max;
    if (o.backoff_jitter == 0)
        o.backoff_jitter = po->backoff_jitter;
    return listener_new(evdb__loop_ev(evdb__pool_loop(p)), url, &o, "evdb_listener_open_pool");
}
