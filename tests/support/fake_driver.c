#include "fake_driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

fake_stats fake;

typedef struct fq {
    evdb__query *q;
    double due;
    struct fq *next;
} fq;

struct evdb__dconn {
    unsigned depth;
    double connect_due;
    bool connect_fail, connect_hang, no_cancel, lazy_send;
    double close_ms;
    double close_due;
    fq *head, *tail;
    size_t inflight;
    bool broken;
    void *core;          /* for evdb__notification */
    bool listening;      /* slot listen */
    double reset_ms;     /* how long a session reset runs */
    unsigned reset_fail; /* which reset fails (1 = the first), 0 none */
    unsigned resets;     /* resets answered so far */
};

struct evdb__cancel {
    evdb__dconn *dc;
    evdb__query *q;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void wait_until(evdb__wait *w, double due)
{
    w->fd = -1;
    w->events = 0;
    double ms = due - now_ms();
    w->timeout_ms = ms <= 0 ? 0 : (int)(ms + 1);
}

static int fake_connect_start(evdb__dconn **out, const evdb__conn_params *p, evdb__wait *w,
                              evdb_error *err)
{
    evdb__url u;
    if (evdb__url_parse(p->url, &u, err))
        return EVDB__STEP_FAIL;
    evdb__dconn *dc = evdb__calloc(1, sizeof *dc);
    if (!dc) {
        evdb__url_free(&u);
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "fake: out of memory");
        return EVDB__STEP_FAIL;
    }
    double connect_ms = 0;
    dc->depth = p->pipeline_depth;
    dc->core = p->core;
    for (size_t i = 0; i < u.nparams; i++) {
        const char *k = u.params[i].key, *v = u.params[i].value;
        if (!strcmp(k, "connect_ms"))
            connect_ms = atof(v);
        else if (!strcmp(k, "connect_fail"))
            dc->connect_fail = true;
        else if (!strcmp(k, "connect_hang"))
            dc->connect_hang = true;
        else if (!strcmp(k, "no_cancel"))
            dc->no_cancel = true;
        else if (!strcmp(k, "lazy_send"))
            dc->lazy_send = true;
        else if (!strcmp(k, "close_ms"))
            dc->close_ms = atof(v);
        else if (!strcmp(k, "depth"))
            dc->depth = (unsigned)atoi(v);
        else if (!strcmp(k, "reset_ms"))
            dc->reset_ms = atof(v);
        else if (!strcmp(k, "reset_fail"))
            dc->reset_fail = (unsigned)atoi(v);
    }
    evdb__url_free(&u);
    fake.connects++;
    dc->connect_due = now_ms() + connect_ms;
    *out = dc;
    if (dc->connect_hang) {
        w->fd = -1;
        w->events = 0;
        w->timeout_ms = -1;
        return EVDB__STEP_WAIT;
    }
    wait_until(w, dc->connect_due);
    return EVDB__STEP_WAIT;
}

static int fake_connect_step(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err)
{
    if (now_ms() < dc->connect_due) {
        wait_until(w, dc->connect_due);
        return EVDB__STEP_WAIT;
    }
    if (dc->connect_fail) {
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL, "fake: connection refused");
        return EVDB__STEP_FAIL;
    }
    return EVDB__STEP_DONE;
}

static unsigned fake_capacity(const evdb__dconn *dc)
{
    return dc->inflight < dc->depth ? (unsigned)(dc->depth - dc->inflight) : 0;
}

static double delay_of(const evdb__dconn *dc, const evdb__query *q)
{
    if (q->flags & EVDB__QUERY_RESET_SESSION)
        return dc->reset_ms;
    if (!strncmp(q->sql, "sleep ", 6))
        return atof(q->sql + 6);
    return 0;
}

static int fake_send(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (!strcmp(q->sql, "refuse")) {
        evdb__error_set(err, EVDB_EINVAL, 0, NULL, "fake: refused to send");
        return EVDB_EINVAL;
    }
    fq *e = evdb__calloc(1, sizeof *e);
    if (!e) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "fake: out of memory");
        return EVDB_ENOMEM;
    }
    e->q = q;
    /* Queries run one after another, as on a server. */
    double start = dc->tail ? dc->tail->due : now_ms();
    e->due = start + delay_of(dc, q);
    if (dc->tail)
        dc->tail->next = e;
    else
        dc->head = e;
    dc->tail = e;
    dc->inflight++;
    if (dc->inflight > fake.max_inflight)
        fake.max_inflight = dc->inflight;
    fake.sends++;
    return 0;
}

static void next_wait(evdb__dconn *dc, evdb__wait *w)
{
    if (dc->head)
        wait_until(w, dc->head->due);
    else {
        w->fd = -1;
        w->events = 0;
        w->timeout_ms = -1;
    }
}

static int fake_flush(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    fake.flushes++;
    next_wait(dc, w);
    return EVDB__STEP_WAIT;
}

static void answer(evdb__query *q)
{
    fake.answered++;
    if (!strcmp(q->sql, "toobig")) {
        /* It ran; its result is what could not be kept. */
        evdb_error e;
        evdb__error_set(&e, EVDB_ETOOBIG, 0, NULL, "fake: result too big");
        evdb__query_failed(q, &e);
        return;
    }
    if (!strncmp(q->sql, "error ", 6)) {
        evdb_error e;
        evdb__error_set(&e, EVDB_ESERVER, 0, q->sql + 6, "fake: server error %s", q->sql + 6);
        evdb__query_failed(q, &e);
        return;
    }
    bool echo = !strcmp(q->sql, "echo");
    size_t ncols = echo ? q->nparams : 1;
    evdb__rbuild *b = evdb__rbuild_new(ncols);
    if (!b)
        goto oom;
    if (echo) {
        for (size_t i = 0; i < q->nparams; i++) {
            char name[32], buf[64];
            snprintf(name, sizeof name, "p%zu", i + 1);
            const evdb_value *v = &q->params[i];
            evdb__rbuild_column(b, i, name, v->type, 0);
            switch (v->type) {
            case EVDB_TYPE_NULL:
                evdb__rbuild_cell(b, NULL, 0);
                break;
            case EVDB_TYPE_BOOL:
                evdb__rbuild_cell(b, v->u.b ? "t" : "f", 1);
                break;
            case EVDB_TYPE_INT:
                snprintf(buf, sizeof buf, "%lld", (long long)v->u.i);
                evdb__rbuild_cell(b, buf, strlen(buf));
                break;
            case EVDB_TYPE_DOUBLE:
                snprintf(buf, sizeof buf, "%.17g", v->u.d);
                evdb__rbuild_cell(b, buf, strlen(buf));
                break;
            default:
                evdb__rbuild_cell(b, v->u.s.ptr, v->u.s.len);
                break;
            }
        }
    } else {
        const char *v = !strncmp(q->sql, "ok ", 3) ? q->sql + 3 : "ok";
        evdb__rbuild_column(b, 0, "v", EVDB_TYPE_TEXT, 25);
        evdb__rbuild_cell(b, v, strlen(v));
        evdb__rbuild_set_command(b, "SELECT 1");
        evdb__rbuild_set_affected(b, 1);
    }
    evdb_result *r = evdb__rbuild_finish(b);
    if (!r)
        goto oom;
    evdb__query_done(q, r);
    return;
oom:;
    evdb_error e;
    evdb__error_set(&e, EVDB_ENOMEM, 0, NULL, "fake: out of memory building a result");
    evdb__query_failed(q, &e);
}

static void pop(evdb__dconn *dc)
{
    fq *e = dc->head;
    dc->head = e->next;
    if (!dc->head)
        dc->tail = NULL;
    dc->inflight--;
    evdb__free(e);
}

/* lazy_send: a query goes on the wire when it reaches the head of the
 * queue. One the core gave up on before that is dropped unsent, as the
 * query_sent contract asks (drivers/driver.h): it never runs. */
static void drop_unsent(evdb__dconn *dc)
{
    while (dc->lazy_send && dc->head && dc->head->q->cancel_requested) {
        evdb__query *q = dc->head->q;
        pop(dc);
        fake.dropped_unsent++;
        evdb_error e;
        evdb__error_set(&e, EVDB_ECANCELED, 0, NULL, "fake: dropped unsent");
        evdb__query_failed(q, &e);
    }
}

static bool fake_query_sent(const evdb__dconn *dc, const evdb__query *q)
{
    return !dc->lazy_send || (dc->head && dc->head->q == q);
}

/* lazy_send: the newest query, when it is not the head, has not gone on
 * the wire: give it back (drivers/driver.h, take_unsent). */
static evdb__query *fake_take_unsent(evdb__dconn *dc)
{
    if (!dc->lazy_send || !dc->head || dc->head == dc->tail)
        return NULL;
    fq *prev = dc->head;
    while (prev->next != dc->tail)
        prev = prev->next;
    fq *e = dc->tail;
    prev->next = NULL;
    dc->tail = prev;
    dc->inflight--;
    evdb__query *q = e->q;
    evdb__free(e);
    fake.taken_back++;
    return q;
}

static int fake_io(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err)
{
    double t = now_ms();
    while (dc->head && dc->head->due <= t) {
        evdb__query *q = dc->head->q;
        bool listen = !strncmp(q->sql, "LISTEN \"", 8);
        if (!strcmp(q->sql, "drop") || (listen && fake.listen_drops > 0)) {
            if (listen)
                fake.listen_drops--;
            evdb__error_set(err, EVDB_ECONNLOST, 0, NULL, "fake: server closed the connection");
            return EVDB__STEP_FAIL;
        }
        char chan[128] = "";
        if (listen && dc->listening && fake.notify_on_listen)
            snprintf(chan, sizeof chan, "%.*s", (int)(strlen(q->sql) - 9), q->sql + 8);
        pop(dc);
        if ((q->flags & EVDB__QUERY_RESET_SESSION) && ++dc->resets == dc->reset_fail) {
            fake.resets_failed++;
            evdb_error e;
            evdb__error_set(&e, EVDB_ESERVER, 0, "XX000", "fake: session reset failed");
            evdb__query_failed(q, &e);
        } else {
            answer(q);
        }
        drop_unsent(dc);
        if (chan[0])
            evdb__notification(dc->core, chan, "hello", 5, 42);
    }
    next_wait(dc, w);
    return EVDB__STEP_WAIT;
}

static int fake_cancel_start(evdb__dconn *dc, evdb__query *q, evdb__cancel **out, evdb__wait *w,
                             evdb_error *err)
{
    if (dc->no_cancel)
        return EVDB__STEP_DONE;
    evdb__cancel *op = evdb__calloc(1, sizeof *op);
    if (!op) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "fake: out of memory");
        return EVDB__STEP_FAIL;
    }
    op->dc = dc;
    op->q = q;
    fake.cancels++;
    *out = op;
    w->fd = -1;
    w->events = 0;
    w->timeout_ms = 5;
    return EVDB__STEP_WAIT;
}

static int fake_cancel_step(evdb__cancel *op, unsigned revents, evdb__wait *w, evdb_error *err)
{
    evdb__dconn *dc = op->dc;
    /* The server stops the statement: it answers 57014 at once. */
    if (dc->head && dc->head->q == op->q) {
        evdb__query *q = op->q;
        pop(dc);
        evdb_error e;
        evdb__error_set(&e, EVDB_ESERVER, 0, "57014", "fake: canceling statement");
        evdb__query_failed(q, &e);
        drop_unsent(dc);
        if (dc->head && dc->head->due > now_ms())
            dc->head->due = now_ms() + delay_of(dc, dc->head->q);
    }
    return EVDB__STEP_DONE;
}

static void fake_cancel_free(evdb__cancel *op)
{
    evdb__free(op);
}

static int fake_close_start(evdb__dconn *dc, evdb__wait *w)
{
    fake.closes++;
    if (dc->close_ms <= 0)
        return EVDB__STEP_DONE;
    dc->close_due = now_ms() + dc->close_ms;
    wait_until(w, dc->close_due);
    return EVDB__STEP_WAIT;
}

static int fake_close_step(evdb__dconn *dc, unsigned revents, evdb__wait *w)
{
    if (now_ms() < dc->close_due) {
        wait_until(w, dc->close_due);
        return EVDB__STEP_WAIT;
    }
    return EVDB__STEP_DONE;
}

static void fake_destroy(evdb__dconn *dc)
{
    fake.destroys++;
    while (dc->head)
        pop(dc);
    evdb__free(dc);
}

static void fake_listen(evdb__dconn *dc, bool on)
{
    dc->listening = on;
}

static const char *const fake_schemes[] = {"fake", NULL};

/* The pool's session reset: one query, answered like "ok" (reset_ms,
 * reset_fail script it). */
static const evdb_stmt fake_reset_stmt = {"reset", NULL, 0};
static const evdb__reset fake_reset = {&fake_reset_stmt, 1};

static const evdb__driver fake_driver = {
    .name = "fake",
    .schemes = fake_schemes,
    .caps = EVDB__CAP_PIPELINE | EVDB__CAP_SERVER_CANCEL,
    .default_depth = 1,
    .connect_start = fake_connect_start,
    .connect_step = fake_connect_step,
    .capacity = fake_capacity,
    .send = fake_send,
    .flush = fake_flush,
    .io = fake_io,
    .cancel_start = fake_cancel_start,
    .cancel_step = fake_cancel_step,
    .cancel_free = fake_cancel_free,
    .close_start = fake_close_start,
    .close_step = fake_close_step,
    .destroy = fake_destroy,
    .query_sent = fake_query_sent,
    .take_unsent = fake_take_unsent,
    .listen = fake_listen,
    .reset = &fake_reset,
};

void fake_driver_install(void)
{
    memset(&fake, 0, sizeof fake);
    evdb__driver_register(&fake_driver);
}
