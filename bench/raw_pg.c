/*
 * Raw libpq baselines. What a careful hand-written client does:
 *   - server-side prepared statements (PQprepare once per connection);
 *   - text parameters, text results, every row checked;
 *   - pg-pipeline: pipeline mode, nonblocking, on libev; each connection
 *     keeps `depth` queries in flight and tops up after reading whatever
 *     arrived: all the new queries, then one PQpipelineSync for the batch
 *     (the queries of a batch share one implicit transaction: the yardstick
 *     for evdb's explicit batches);
 *   - pg-pipeline-each: the same with one PQpipelineSync per query, so that
 *     every query is its own implicit transaction (evdb's default). libpq
 *     15's PQpipelineSync flushes every time, so this sends one packet per
 *     query;
 *   - pg-pipeline-each-cork: pg-pipeline-each with TCP_CORK set on the
 *     socket while a top-up batch is written, so that the kernel coalesces
 *     the batch's packets (the flushes of PQpipelineSync fill the socket
 *     buffer; clearing the cork sends it);
 *   - pg-async: nonblocking, one query per connection at a time;
 *   - pg-sync: PQexecPrepared in a loop on one connection.
 * The io watcher stays started; its events change only when PQflush leaves
 * data behind (EV_WRITE) and when it is done.
 */
#include <ev.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "raw.h"

static const char *const stmt_name[BENCH_K_COUNT] = {"q_point", "q_insert", "q_fetch"};

/* Text parameters: lengths are passed for speed, formats NULL (all text). */
typedef struct pq_params {
    const char *v[2];
    int len[2];
    char buf[2][32];
} pq_params;

/* Text parameters of q; returns how many. */
static int fill_params(const bench_query *q, pq_params *p)
{
    switch (q->kind) {
    case BENCH_K_POINT:
        p->len[0] = (int)bench_utoa((uint64_t)q->id, p->buf[0]);
        p->buf[0][p->len[0]] = '\0';
        p->v[0] = p->buf[0];
        return 1;
    case BENCH_K_FETCH:
        p->len[0] = (int)bench_utoa((uint64_t)q->id, p->buf[0]);
        p->buf[0][p->len[0]] = '\0';
        p->len[1] = (int)bench_utoa((uint64_t)(q->id + BENCH_FETCH_ROWS), p->buf[1]);
        p->buf[1][p->len[1]] = '\0';
        p->v[0] = p->buf[0];
        p->v[1] = p->buf[1];
        return 2;
    default:
        p->v[0] = q->name;
        p->len[0] = (int)q->name_len;
        p->len[1] = snprintf(p->buf[1], sizeof p->buf[1], "%.17g", q->price);
        p->v[1] = p->buf[1];
        return 2;
    }
}

static bool check_result(bench *b, const bench_query *q, PGresult *r, uint64_t *rows)
{
    ExecStatusType st = PQresultStatus(r);
    *rows = 0;
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        bench_error(b, "%s: %s", PQresStatus(st), PQresultErrorMessage(r));
        return false;
    }
    switch (q->kind) {
    case BENCH_K_POINT:
        if (PQntuples(r) != 1 ||
            !bench_check_name(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), q->id) ||
            !bench_check_price_text(PQgetvalue(r, 0, 1), q->id)) {
            bench_error(b, "point select of id %lld: wrong row (%d rows)", (long long)q->id,
                        PQntuples(r));
            return false;
        }
        *rows = 1;
        return true;
    case BENCH_K_INSERT:
        if (strcmp(PQcmdTuples(r), "1") != 0) {
            bench_error(b, "insert: %s rows", PQcmdTuples(r));
            return false;
        }
        *rows = 1;
        return true;
    default: {
        int n = PQntuples(r);
        if (n != BENCH_FETCH_ROWS) {
            bench_error(b, "fetch from id %lld: %d rows", (long long)q->id, n);
            return false;
        }
        for (int i = 0; i < n; i++) {
            int64_t id = q->id + i;
            if (strtoll(PQgetvalue(r, i, 0), NULL, 10) != id ||
                !bench_check_name(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), id) ||
                !bench_check_price_text(PQgetvalue(r, i, 2), id)) {
                bench_error(b, "fetch: wrong row for id %lld", (long long)id);
                return false;
            }
        }
        *rows = (uint64_t)n;
        return true;
    }
    }
}

static void no_notices(void *arg, const PGresult *r)
{
    (void)arg;
    (void)r;
}

/* Connect (blocking: setup is not measured) and prepare the statements. */
static PGconn *pg_connect(bench *b)
{
    PGconn *c = PQconnectdb(b->o->url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "%s: connect: %s", b->client_name, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeReceiver(c, no_notices, NULL);
    for (int k = 0; k < BENCH_K_COUNT; k++) {
        PGresult *r = PQprepare(c, stmt_name[k], bench_sql(BENCH_PG, (bench_kind)k),
                                (int)bench_nparams((bench_kind)k), NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "%s: prepare: %s", b->client_name, PQresultErrorMessage(r));
            PQclear(r);
            PQfinish(c);
            return NULL;
        }
        PQclear(r);
    }
    return c;
}

/* ------------------------------------------------------------------ sync */

int raw_pg_sync(bench *b)
{
    if (b->o->conns != 1 || b->o->inflight != 1)
        fprintf(stderr, "%s: a synchronous loop runs 1 connection, 1 query in flight\n",
                b->client_name);
    PGconn *c = pg_connect(b);
    if (!c)
        return 1;
    for (int measure = 0; measure < 2; measure++) {
        bench_phase_start(b, measure);
        bench_query q;
        pq_params p;
        uint64_t now = bench_now_ns();
        while (bench_take(b, &q, now)) {
            uint64_t t0 = now;
            int n = fill_params(&q, &p);
            PGresult *r = PQexecPrepared(c, stmt_name[q.kind], n, p.v, p.len, NULL, 0);
            uint64_t rows;
            bool ok = check_result(b, &q, r, &rows);
            PQclear(r);
            now = bench_now_ns();
            bench_complete(b, t0, now, ok, rows);
            if (b->done % RAW_TICK_EVERY == 0)
                bench_tick(b, now);
        }
        bench_phase_end(b);
    }
    PQfinish(c);
    return bench_report(b);
}

/* ---------------------------------------------------- nonblocking on libev */

typedef struct inflight_q {
    uint64_t t0;
    bench_query q;
    bool got, ok; /* one query at a time: its result arrived, and checked out */
    uint64_t rows;
} inflight_q;

/* Where the nonblocking clients put their pipeline Syncs. */
typedef enum pg_mode {
    PG_ONE_AT_A_TIME, /* pg-async: no pipeline mode, one query per connection */
    PG_SYNC_BATCH,    /* pg-pipeline: one Sync per top-up batch */
    PG_SYNC_EACH,     /* pg-pipeline-each: one Sync per query */
    PG_SYNC_EACH_CORK /* pg-pipeline-each-cork: the same, TCP_CORK around each batch */
} pg_mode;

typedef struct pgc {
    bench *b;
    struct ev_loop *loop;
    PGconn *c;
    ev_io io;
    int events; /* what io watches now */
    pg_mode mode;
    bool pipeline;    /* any mode but PG_ONE_AT_A_TIME */
    unsigned depth;   /* queries in flight at most */
    unsigned syncs;   /* pipeline syncs not yet read */
    inflight_q *fifo; /* in flight, oldest first; capacity a power of two */
    unsigned fcap, fhead, flen;
    bool broken;
} pgc;

static void watch(pgc *p, int events)
{
    if (p->events == events)
        return;
    ev_io_stop(p->loop, &p->io);
    if (events) {
        ev_io_modify(&p->io, events);
        ev_io_start(p->loop, &p->io);
    }
    p->events = events;
}

static void conn_failed(pgc *p, const char *what)
{
    bench_error(p->b, "%s: %s", what, PQerrorMessage(p->c));
    p->broken = true;
    /* Count what was in flight as failed so that the run ends. */
    uint64_t now = bench_now_ns();
    while (p->flen) {
        bench_complete(p->b, p->fifo[p->fhead].t0, now, false, 0);
        p->fhead = (p->fhead + 1) & (p->fcap - 1);
        p->flen--;
    }
    watch(p, 0);
}

/* Set or clear TCP_CORK on the connection's socket. While it is set, the
 * kernel sends only full segments; clearing it sends what is left at once.
 * Returns 0, or -1 with errno set. */
static int set_cork(pgc *p, int on)
{
    return setsockopt(PQsocket(p->c), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

/* Send queries until depth is reached, then flush. pg-pipeline puts one
 * Sync after the batch, the -each modes one after every query; -each-cork
 * corks the socket while the batch is written (only when there is room for
 * more than one query: a lone query gains nothing from it and would pay
 * two system calls). */
static void top_up(pgc *p, uint64_t now)
{
    bench *b = p->b;
    unsigned sent = 0;
    bool each = p->mode == PG_SYNC_EACH || p->mode == PG_SYNC_EACH_CORK;
    bool cork = p->mode == PG_SYNC_EACH_CORK && p->depth - p->flen > 1;
    while (p->flen < p->depth) {
        inflight_q *e = &p->fifo[(p->fhead + p->flen) & (p->fcap - 1)];
        if (!bench_take(b, &e->q, now))
            break;
        if (cork && !sent && set_cork(p, 1)) {
            bench_complete(b, now, now, false, 0);
            bench_error(b, "setsockopt TCP_CORK: %s", strerror(errno));
            conn_failed(p, "cork");
            return;
        }
        pq_params pp;
        int n = fill_params(&e->q, &pp);
        e->t0 = now;
        e->got = false;
        if (!PQsendQueryPrepared(p->c, stmt_name[e->q.kind], n, pp.v, pp.len, NULL, 0)) {
            bench_complete(b, now, now, false, 0);
            conn_failed(p, "send");
            return;
        }
        p->flen++;
        sent++;
        /* The query is in flight once it is sent: should its Sync fail,
         * conn_failed counts it with the others. */
        if (each) {
            if (!PQpipelineSync(p->c)) {
                conn_failed(p, "sync");
                return;
            }
            p->syncs++;
        }
    }
    if (!sent)
        return;
    if (p->mode == PG_SYNC_BATCH) {
        if (!PQpipelineSync(p->c)) {
            conn_failed(p, "sync");
            return;
        }
        p->syncs++;
    }
    int r = PQflush(p->c);
    if (r < 0) {
        conn_failed(p, "flush");
        return;
    }
    /* Uncork after the last flush: whatever the kernel held goes out now.
     * Anything PQflush left in libpq's buffer is written uncorked from
     * on_io. */
    if (cork && set_cork(p, 0)) {
        bench_error(b, "setsockopt TCP_CORK: %s", strerror(errno));
        conn_failed(p, "uncork");
        return;
    }
    watch(p, EV_READ | (r ? EV_WRITE : 0));
}

static void complete_head(pgc *p, PGresult *r, uint64_t now)
{
    inflight_q *e = &p->fifo[p->fhead];
    uint64_t rows = 0;
    bool ok = r ? check_result(p->b, &e->q, r, &rows) : false;
    bench_complete(p->b, e->t0, now, ok, rows);
    p->fhead = (p->fhead + 1) & (p->fcap - 1);
    p->flen--;
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    pgc *p = w->data;
    if ((revents & EV_READ) && !PQconsumeInput(p->c)) {
        conn_failed(p, "read");
        goto check_end;
    }
    if (revents & EV_WRITE) {
        int r = PQflush(p->c);
        if (r < 0) {
            conn_failed(p, "flush");
            goto check_end;
        }
        watch(p, EV_READ | (r ? EV_WRITE : 0));
    }
    uint64_t now = bench_now_ns();
    if (p->pipeline) {
        /* Results of each query, a NULL after each, PIPELINE_SYNC after
         * each batch or (-each modes) each query (no NULL after it). Stop
         * when no sync is owed, or libpq would hand out NULL forever. */
        while (p->syncs && !PQisBusy(p->c)) {
            PGresult *r = PQgetResult(p->c);
            if (!r)
                continue;
            ExecStatusType st = PQresultStatus(r);
            if (st == PGRES_PIPELINE_SYNC)
                p->syncs--;
            else if (p->flen)
                complete_head(p, r, now);
            PQclear(r);
        }
    } else {
        /* One query: its result (checked as it arrives), then NULL, which
         * ends it; only then may the next one be sent. */
        while (p->flen && !PQisBusy(p->c)) {
            inflight_q *e = &p->fifo[p->fhead];
            PGresult *r = PQgetResult(p->c);
            if (r) {
                e->ok = check_result(p->b, &e->q, r, &e->rows);
                e->got = true;
                PQclear(r);
                continue;
            }
            bench_complete(p->b, e->t0, now, e->got && e->ok, e->rows);
            p->fhead = (p->fhead + 1) & (p->fcap - 1);
            p->flen--;
        }
    }
    if (!p->broken)
        top_up(p, now);
    if (!p->flen && !p->syncs)
        watch(p, 0);
check_end:
    if (bench_phase_over(p->b))
        ev_break(loop, EVBREAK_ALL);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bench_tick(w->data, bench_now_ns());
}

static int run_async(bench *b, pg_mode mode)
{
    const bench_opts *o = b->o;
    bool pipeline = mode != PG_ONE_AT_A_TIME;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    pgc *conns = calloc(o->conns, sizeof *conns);
    int rc = 1;
    unsigned depth = pipeline ? o->depth : 1;
    if (!pipeline && o->inflight != o->conns)
        fprintf(stderr, "%s: one query per connection: %u in flight, not %u\n", b->client_name,
                o->conns, o->inflight);
    for (unsigned i = 0; i < o->conns; i++) {
        pgc *p = &conns[i];
        p->b = b;
        p->loop = loop;
        p->mode = mode;
        p->pipeline = pipeline;
        /* Share the in-flight total like evdb's pool does: depth per
         * connection, the remainder on the first ones. */
        p->depth = depth;
        if (pipeline) {
            unsigned share = o->inflight / o->conns + (i < o->inflight % o->conns ? 1 : 0);
            p->depth = share ? share : 1;
        }
        p->fcap = 1;
        while (p->fcap < p->depth)
            p->fcap *= 2;
        p->fifo = calloc(p->fcap, sizeof *p->fifo);
        p->c = pg_connect(b);
        if (!p->c || !p->fifo)
            goto out;
        if (PQsetnonblocking(p->c, 1) || (pipeline && !PQenterPipelineMode(p->c))) {
            fprintf(stderr, "%s: %s", b->client_name, PQerrorMessage(p->c));
            goto out;
        }
        /* TCP_CORK needs a TCP socket: say so now rather than fail the run
         * at its first batch (a Unix-socket URL cannot cork). */
        if (mode == PG_SYNC_EACH_CORK && set_cork(p, 0)) {
            fprintf(stderr, "%s: TCP_CORK on the connection's socket: %s (a TCP URL is needed)\n",
                    b->client_name, strerror(errno));
            goto out;
        }
        ev_io_init(&p->io, on_io, PQsocket(p->c), EV_READ);
        p->io.data = p;
    }
    ev_timer tick;
    ev_timer_init(&tick, on_tick, 0.25, 0.25);
    tick.data = b;
    for (int measure = 0; measure < 2; measure++) {
        bench_phase_start(b, measure);
        uint64_t now = bench_now_ns();
        for (unsigned i = 0; i < o->conns; i++)
            top_up(&conns[i], now);
        if (o->progress)
            ev_timer_start(loop, &tick);
        if (!bench_phase_over(b))
            ev_run(loop, 0);
        ev_timer_stop(loop, &tick);
        bench_phase_end(b);
        for (unsigned i = 0; i < o->conns; i++)
            if (conns[i].broken)
                goto out;
    }
    rc = bench_report(b);
out:
    for (unsigned i = 0; i < o->conns; i++) {
        ev_io_stop(loop, &conns[i].io);
        if (conns[i].c)
            PQfinish(conns[i].c);
        free(conns[i].fifo);
    }
    free(conns);
    ev_loop_destroy(loop);
    return rc;
}

int raw_pg_pipeline(bench *b)
{
    return run_async(b, PG_SYNC_BATCH);
}

int raw_pg_pipeline_each(bench *b)
{
    return run_async(b, PG_SYNC_EACH);
}

int raw_pg_pipeline_each_cork(bench *b)
{
    return run_async(b, PG_SYNC_EACH_CORK);
}

int raw_pg_async(bench *b)
{
    return run_async(b, PG_ONE_AT_A_TIME);
}
