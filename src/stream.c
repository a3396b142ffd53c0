/*
 * Row streaming (include/evdb/stream.h): a streamed query, its batches on
 * their way to the consumer, and the backpressure that ties the two.
 *
 * The query is an ordinary query object (evdb__cq) with q.stream set and
 * EVDB_QUERY_NO_PIPELINE, so it runs alone on its connection and takes
 * every path a query takes (pool routing, timeout, cancel, lost
 * connection). Its future (qf) completes with the final status; the
 * stream's own done future forwards to it only once the last batch has
 * been delivered, so the consumer sees every batch before the end.
 *
 * The driver hands over one batch at a time (evdb__stream_batch) into
 * `ready` and then sees the stream paused (evdb__stream_paused) until the
 * consumer has taken it: delivered to the callback (push) or handed to the
 * awaited evdb_stream_next future (pull). Taking it wakes the driver
 * (evdb__cq_kick), which reads the socket again.
 */
#include <string.h>

#include "pool_conn.h"
#include "evdb/stream.h"

#define EVDB__MAGIC_STREAM 0x5374726du /* "Strm" */

struct evdb_stream {
    uint32_t magic;
    unsigned refs; /* the caller's handle, and the stream while it runs */
    evdb__loop *loop;
    evdb__cq *cq;        /* the query; valid only while qf is pending */
    evdb_future *qf;     /* the query's future: the final status */
    evdb_future *done;   /* what the caller sees: qf, after the last batch */
    evdb_result *ready;  /* a batch the consumer has not taken */
    evdb_future *next_f; /* pull: the batch being awaited */
    evdb_stream_fn cb;   /* push: the consumer */
    void *arg;
    evdb__deferred deliver_d;
    bool user_paused; /* push: evdb_stream_pause or EVDB_STREAM_PAUSE */
    bool ended;       /* qf is complete */
    bool in_cb;       /* inside cb */
    bool running;     /* holds its running reference */
    bool lost;        /* a batch could not be kept: the stream fails */
};

static void stream_unref(evdb_stream *s)
{
    if (--s->refs)
        return;
    evdb__loop_undefer(s->loop, &s->deliver_d);
    evdb__result_free(s->ready);
    evdb_future_unref(s->next_f);
    evdb_future_unref(s->qf);
    evdb_future_unref(s->done);
    s->magic = EVDB__MAGIC_DEAD;
    evdb__free(s);
}

/* The driver may read again: the consumer took the batch, resumed, or
 * gave up. */
static void wake_driver(evdb_stream *s)
{
    /* The query object lives while its future is pending (it is freed
     * right after the future completes, before on_query_done runs). */
    if (!s->ended && s->cq && evdb__future_pending(s->qf) && !s->ready && !s->user_paused)
        evdb__cq_kick(s->cq);
}

/* The end, once the query is over and nothing is left to deliver: done
 * takes the query's outcome, a pending pull learns of the end. */
static void maybe_finish(evdb_stream *s)
{
    if (!s->ended || s->ready || s->in_cb)
        return;
    int status = evdb_future_status(s->qf);
    if (s->next_f) {
        if (status == 0 && !s->lost)
            evdb__future_resolve(s->next_f, NULL, NULL);
        else
            evdb__future_forward(s->next_f, s->done);
        evdb_future_unref(s->next_f);
        s->next_f = NULL;
    }
    if (s->lost)
        evdb__future_fail(s->done, EVDB_ENOMEM, "stream: a batch could not be kept");
    else
        evdb__future_forward(s->done, s->qf);
    if (s->running) {
        s->running = false;
        stream_unref(s);
    }
}

/* Push: the batch to the callback. Pull: to the awaited future. */
static void deliver(evdb__deferred *d)
{
    evdb_stream *s = EVDB__CONTAINER_OF(d, evdb_stream, deliver_d);
    if (!s->ready || s->in_cb)
        return;
    s->refs++;
    if (s->cb) {
        if (!s->user_paused) {
            evdb_result *r = s->ready;
            s->ready = NULL;
            s->in_cb = true;
            int rc = s->cb(s, r, s->arg);
            s->in_cb = false;
            evdb__result_free(r);
            if (rc == EVDB_STREAM_PAUSE)
                s->user_paused = true;
        }
    } else if (s->next_f && evdb__future_pending(s->next_f)) {
        evdb__future_resolve(s->next_f, s->ready, (void (*)(void *))evdb__result_free);
        s->ready = NULL;
        evdb_future_unref(s->next_f);
        s->next_f = NULL;
    }
    wake_driver(s);
    maybe_finish(s);
    stream_unref(s);
}

/* ---- what the driver calls (drivers/driver.h) ---- */

void evdb__stream_batch(evdb__query *q, evdb_result *batch)
{
    evdb_stream *s = q->stream;
    if (q->cancel_requested || !batch) {
        evdb__result_free(batch); /* given up on; or no memory: q fails */
        return;
    }
    if (s->ready) {
        /* The driver builds a batch only while not paused. */
        evdb__result_free(batch);
        s->lost = true;
        return;
    }
    s->ready = batch;
    evdb__loop_defer(s->loop, &s->deliver_d);
}

bool evdb__stream_paused(const evdb__query *q)
{
    const evdb_stream *s = q->stream;
    return !q->cancel_requested && (s->ready || s->user_paused);
}

/* ---- the query's end, cancel ---- */

static void on_query_done(evdb_future *f, void *arg)
{
    evdb_stream *s = arg;
    (void)f;
    s->ended = true;
    s->cq = NULL; /* freed by now, or soon (it was given up on) */
    if (evdb_future_status(s->qf) != 0) {
        /* No batch after a failure. */
        evdb__result_free(s->ready);
        s->ready = NULL;
    }
    maybe_finish(s);
}

/* evdb_future_cancel on done (which has failed it already). */
static void done_cancel(void *arg)
{
    evdb_stream *s = arg;
    evdb__result_free(s->ready);
    s->ready = NULL;
    evdb_future_cancel(s->qf);
    maybe_finish(s); /* the query may be over already, its last batch dropped */
}

static const evdb__future_ops done_ops = {done_cancel};

/* ---- public API ---- */

/* The stream for a query built by the caller, who submits it afterwards.
 * NULL with the last error set. */
static evdb_stream *stream_new(evdb__loop *l, const char *who, const char *sql,
                               const evdb_value *params, size_t nparams,
                               const evdb_stream_opts *opts, evdb__cq **out)
{
    evdb_stream_opts o;
    memset(&o, 0, sizeof o);
    if (opts)
        o = *opts;
    if (o.batch_rows > EVDB_STREAM_BATCH_MAX) {
        evdb__fail_now(EVDB_EINVAL, "%s: batch_rows %zu is over %u", who, o.batch_rows,
                       EVDB_STREAM_BATCH_MAX);
        return NULL;
    }
    if (o.flags & ~(unsigned)EVDB__QUERY_PUBLIC_FLAGS) {
        evdb__fail_now(EVDB_EINVAL, "%s: unknown flags 0x%x (known: EVDB_QUERY_*)", who, o.flags);
        return NULL;
    }
    evdb_query_opts qo;
    memset(&qo, 0, sizeof qo);
    qo.timeout = o.timeout;
    qo.flags = o.flags | EVDB_QUERY_NO_PIPELINE;
    evdb_stream *s = evdb__calloc(1, sizeof *s);
    evdb_future *done = s ? evdb__future_new(l, EVDB__FK_QUERY) : NULL;
    if (!done) {
        evdb__free(s);
        evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    evdb__cq *q = evdb__cq_new(l, who, sql, params, nparams, &qo);
    if (!q) {
        evdb_future_unref(done);
        evdb__free(s);
        return NULL;
    }
    s->magic = EVDB__MAGIC_STREAM;
    s->refs = 2;
    s->running = true;
    s->loop = l;
    s->cq = q;
    s->qf = q->f; /* the caller's reference of the query */
    s->done = done;
    s->cb = o.on_batch;
    s->arg = o.arg;
    s->deliver_d.fn = deliver;
    q->q.stream = s;
    q->q.stream_rows = o.batch_rows ? o.batch_rows : EVDB_STREAM_BATCH_DEFAULT;
    evdb__future_set_op(done, &done_ops, s);
    *out = q;
    return s;
}

/* After submission: the query's end reaches the stream. */
static evdb_stream *stream_started(evdb_stream *s)
{
    if (evdb_future_on_done(s->qf, on_query_done, s) < 0) {
        /* No memory for the callback: give up on the query. */
        evdb_stream_free(s);
        evdb__fail_now(EVDB_ENOMEM, "evdb stream: out of memory");
        return NULL;
    }
    return s;
}

evdb_stream *evdb_conn_stream(evdb_conn *h, const char *sql, const evdb_value *params,
                              size_t nparams, const evdb_stream_opts *opts)
{
    evdb_conn *c = evdb__conn_for_stream(h, "evdb_conn_stream");
    if (!c)
        return NULL;
    evdb__cq *q;
    evdb_stream *s =
        stream_new(evdb__conn_loop(c), "evdb_conn_stream", sql, params, nparams, opts, &q);
    if (!s)
        return NULL;
    evdb__conn_submit(c, q);
    return stream_started(s);
}

evdb_stream *evdb_pool_stream(evdb_pool *p, const char *sql, const evdb_value *params,
                              size_t nparams, const evdb_stream_opts *opts)
{
    if (!evdb__pool_usable(p, "evdb_pool_stream"))
        return NULL;
    if (!(evdb__pool_drv(p)->caps & EVDB__CAP_STREAM)) {
        evdb__fail_now(EVDB_ENOTSUP, "evdb_pool_stream: not supported by the %s driver",
                       evdb__pool_drv(p)->name);
        return NULL;
    }
    evdb__cq *q;
    evdb_stream *s =
        stream_new(evdb__pool_loop(p), "evdb_pool_stream", sql, params, nparams, opts, &q);
    if (!s)
        return NULL;
    evdb__pool_submit(p, q);
    return stream_started(s);
}

static bool stream_valid(const evdb_stream *s, const char *who)
{
    if (!s || s->magic != EVDB__MAGIC_STREAM) {
        evdb__fail_now(EVDB_EINVAL, "%s: invalid stream", who);
        return false;
    }
    return true;
}

evdb_future *evdb_stream_done(evdb_stream *s)
{
    return stream_valid(s, "evdb_stream_done") ? s->done : NULL;
}

evdb_future *evdb_stream_next(evdb_stream *s)
{
    if (!stream_valid(s, "evdb_stream_next"))
        return NULL;
    if (s->cb) {
        evdb__fail_now(EVDB_EINVAL, "evdb_stream_next: the stream delivers to its on_batch");
        return NULL;
    }
    if (s->next_f) {
        evdb__fail_now(EVDB_EINVAL, "evdb_stream_next: the previous batch is still awaited");
        return NULL;
    }
    evdb_future *f = evdb__future_new(s->loop, EVDB__FK_QUERY);
    if (!f) {
        evdb__fail_now(EVDB_ENOMEM, "evdb_stream_next: out of memory");
        return NULL;
    }
    if (s->ready) {
        evdb__future_resolve(f, s->ready, (void (*)(void *))evdb__result_free);
        s->ready = NULL;
        wake_driver(s);
        maybe_finish(s);
        return f;
    }
    s->next_f = evdb_future_ref(f);
    maybe_finish(s); /* at the end already: completes f */
    return f;
}

int evdb_stream_pause(evdb_stream *s)
{
    if (!stream_valid(s, "evdb_stream_pause"))
        return EVDB_EINVAL;
    if (!s->cb)
        return evdb__fail_now(EVDB_EINVAL, "evdb_stream_pause: a pull stream pauses by not "
                                           "calling evdb_stream_next");
    s->user_paused = true;
    return 0;
}

int evdb_stream_resume(evdb_stream *s)
{
    if (!stream_valid(s, "evdb_stream_resume"))
        return EVDB_EINVAL;
    if (!s->cb)
        return evdb__fail_now(EVDB_EINVAL, "evdb_stream_resume: not a push stream");
    if (!s->user_paused)
        return 0;
    s->user_paused = false;
    if (s->ready)
        evdb__loop_defer(s->loop, &s->deliver_d);
    else
        wake_driver(s);
    return 0;
}

int evdb_stream_cancel(evdb_stream *s)
{
    if (!stream_valid(s, "evdb_stream_cancel"))
        return EVDB_EINVAL;
    evdb_future_cancel(s->done);
    return 0;
}

void evdb_stream_free(evdb_stream *s)
{
    if (!s || s->magic != EVDB__MAGIC_STREAM)
        return;
    evdb_future_cancel(s->done);
    stream_unref(s);
}
