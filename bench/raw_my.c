/*
 * Raw MariaDB Connector/C baselines. What a careful hand-written client
 * does:
 *   - server-side prepared statements (binary protocol), prepared once per
 *     connection, parameters and results bound once to fixed buffers;
 *   - execute -> store_result -> fetch rows (no I/O) -> free_result, every
 *     row checked;
 *   - my-async: MYSQL_OPT_NONBLOCK, mysql_stmt_execute_start/_cont and
 *     mysql_stmt_store_result_start/_cont on libev, one query per
 *     connection at a time (the protocol has no pipelining);
 *   - my-sync: the blocking calls in a loop on one connection.
 */
#include <ev.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raw.h"

#define NAME_BUF 256

enum { ST_IDLE, ST_EXEC, ST_STORE };

typedef struct myc {
    bench *b;
    struct ev_loop *loop;
    MYSQL *m;
    MYSQL_STMT *st[BENCH_K_COUNT];
    MYSQL_BIND pbind[BENCH_K_COUNT][2];
    MYSQL_BIND rbind[BENCH_K_COUNT][3];
    /* parameter buffers */
    long long p_id, p_id2;
    char p_name[32];
    unsigned long p_name_len;
    double p_price;
    /* result buffers */
    long long r_id;
    char r_name[NAME_BUF];
    unsigned long r_name_len;
    double r_price;
    my_bool r_null[3], r_err[3];
    /* the query in flight */
    int state;
    bench_query q;
    uint64_t t0;
    ev_io io;
    int events;
    bool broken;
} myc;

static void bind_all(myc *c)
{
    memset(c->pbind, 0, sizeof c->pbind);
    memset(c->rbind, 0, sizeof c->rbind);
    MYSQL_BIND *p = c->pbind[BENCH_K_POINT];
    p[0].buffer_type = MYSQL_TYPE_LONGLONG;
    p[0].buffer = &c->p_id;
    p = c->pbind[BENCH_K_FETCH];
    p[0].buffer_type = MYSQL_TYPE_LONGLONG;
    p[0].buffer = &c->p_id;
    p[1].buffer_type = MYSQL_TYPE_LONGLONG;
    p[1].buffer = &c->p_id2;
    p = c->pbind[BENCH_K_INSERT];
    p[0].buffer_type = MYSQL_TYPE_STRING;
    p[0].buffer = c->p_name;
    p[0].length = &c->p_name_len;
    p[1].buffer_type = MYSQL_TYPE_DOUBLE;
    p[1].buffer = &c->p_price;

    MYSQL_BIND *r = c->rbind[BENCH_K_POINT];
    r[0].buffer_type = MYSQL_TYPE_STRING;
    r[0].buffer = c->r_name;
    r[0].buffer_length = NAME_BUF;
    r[0].length = &c->r_name_len;
    r[0].is_null = &c->r_null[0];
    r[0].error = &c->r_err[0];
    r[1].buffer_type = MYSQL_TYPE_DOUBLE;
    r[1].buffer = &c->r_price;
    r[1].is_null = &c->r_null[1];
    r[1].error = &c->r_err[1];
    r = c->rbind[BENCH_K_FETCH];
    r[0].buffer_type = MYSQL_TYPE_LONGLONG;
    r[0].buffer = &c->r_id;
    r[0].is_null = &c->r_null[0];
    r[0].error = &c->r_err[0];
    r[1].buffer_type = MYSQL_TYPE_STRING;
    r[1].buffer = c->r_name;
    r[1].buffer_length = NAME_BUF;
    r[1].length = &c->r_name_len;
    r[1].is_null = &c->r_null[1];
    r[1].error = &c->r_err[1];
    r[2].buffer_type = MYSQL_TYPE_DOUBLE;
    r[2].buffer = &c->r_price;
    r[2].is_null = &c->r_null[2];
    r[2].error = &c->r_err[2];
}

/* Connect (blocking: setup is not measured), prepare and bind. */
static int my_connect(bench *b, myc *c, bool nonblock)
{
    bench_my_url u;
    if (bench_parse_my_url(b->o->url, &u)) {
        fprintf(stderr, "%s: cannot parse the URL\n", b->client_name);
        return -1;
    }
    c->m = mysql_init(NULL);
    if (!c->m)
        return -1;
    if (nonblock)
        mysql_options(c->m, MYSQL_OPT_NONBLOCK, 0);
    if (!mysql_real_connect(c->m, u.socket[0] ? NULL : u.host, u.user, u.password, u.db, u.port,
                            u.socket[0] ? u.socket : NULL, 0)) {
        fprintf(stderr, "%s: connect: %s\n", b->client_name, mysql_error(c->m));
        return -1;
    }
    bind_all(c);
    for (int k = 0; k < BENCH_K_COUNT; k++) {
        const char *sql = bench_sql(BENCH_MY, (bench_kind)k);
        c->st[k] = mysql_stmt_init(c->m);
        if (!c->st[k] || mysql_stmt_prepare(c->st[k], sql, strlen(sql)) ||
            mysql_stmt_bind_param(c->st[k], c->pbind[k]) ||
            (k != BENCH_K_INSERT && mysql_stmt_bind_result(c->st[k], c->rbind[k]))) {
            fprintf(stderr, "%s: prepare: %s\n", b->client_name,
                    c->st[k] ? mysql_stmt_error(c->st[k]) : mysql_error(c->m));
            return -1;
        }
    }
    return 0;
}

static void my_disconnect(myc *c)
{
    for (int k = 0; k < BENCH_K_COUNT; k++)
        if (c->st[k])
            mysql_stmt_close(c->st[k]);
    if (c->m)
        mysql_close(c->m);
}

static void set_params(myc *c, const bench_query *q)
{
    switch (q->kind) {
    case BENCH_K_POINT:
        c->p_id = q->id;
        break;
    case BENCH_K_FETCH:
        c->p_id = q->id;
        c->p_id2 = q->id + BENCH_FETCH_ROWS;
        break;
    default:
        memcpy(c->p_name, q->name, q->name_len + 1);
        c->p_name_len = q->name_len;
        c->p_price = q->price;
        break;
    }
}

/* After store_result: fetch and check every row (no I/O), free. */
static bool check_rows(myc *c, uint64_t *rows)
{
    bench *b = c->b;
    MYSQL_STMT *st = c->st[c->q.kind];
    *rows = 0;
    if (c->q.kind == BENCH_K_INSERT) {
        if (mysql_stmt_affected_rows(st) != 1) {
            bench_error(b, "insert: %llu rows", (unsigned long long)mysql_stmt_affected_rows(st));
            return false;
        }
        *rows = 1;
        return true;
    }
    bool ok = true;
    uint64_t n = 0;
    int rc;
    while ((rc = mysql_stmt_fetch(st)) == 0) {
        int64_t id = c->q.id + (int64_t)n;
        if (c->q.kind == BENCH_K_FETCH && c->r_id != id)
            ok = false;
        if (!bench_check_name(c->r_name, c->r_name_len, id) || !bench_check_price(c->r_price, id))
            ok = false;
        n++;
    }
    if (rc != MYSQL_NO_DATA) {
        bench_error(b, "fetch: %s",
                    rc == MYSQL_DATA_TRUNCATED ? "truncated" : mysql_stmt_error(st));
        ok = false;
    }
    mysql_stmt_free_result(st);
    uint64_t want = c->q.kind == BENCH_K_POINT ? 1 : BENCH_FETCH_ROWS;
    if (ok && n != want) {
        bench_error(b, "query for id %lld: %llu rows", (long long)c->q.id, (unsigned long long)n);
        ok = false;
    } else if (!ok) {
        bench_error(b, "query for id %lld: wrong row", (long long)c->q.id);
    }
    *rows = n;
    return ok;
}

/* ------------------------------------------------------------------ sync */

int raw_my_sync(bench *b)
{
    if (b->o->conns != 1 || b->o->inflight != 1)
        fprintf(stderr, "%s: a synchronous loop runs 1 connection, 1 query in flight\n",
                b->client_name);
    myc c;
    memset(&c, 0, sizeof c);
    c.b = b;
    if (my_connect(b, &c, false)) {
        my_disconnect(&c);
        return 1;
    }
    for (int measure = 0; measure < 2; measure++) {
        bench_phase_start(b, measure);
        uint64_t now = bench_now_ns();
        while (bench_take(b, &c.q, now)) {
            uint64_t t0 = now;
            MYSQL_STMT *st = c.st[c.q.kind];
            set_params(&c, &c.q);
            bool ok = false;
            uint64_t rows = 0;
            if (mysql_stmt_execute(st))
                bench_error(b, "execute: %s", mysql_stmt_error(st));
            else if (mysql_stmt_field_count(st) && mysql_stmt_store_result(st))
                bench_error(b, "store: %s", mysql_stmt_error(st));
            else
                ok = check_rows(&c, &rows);
            now = bench_now_ns();
            bench_complete(b, t0, now, ok, rows);
            if (b->done % RAW_TICK_EVERY == 0)
                bench_tick(b, now);
        }
        bench_phase_end(b);
    }
    my_disconnect(&c);
    return bench_report(b);
}

/* ---------------------------------------------------- nonblocking on libev */

static void watch(myc *c, int status)
{
    int events = (status & (MYSQL_WAIT_READ | MYSQL_WAIT_EXCEPT) ? EV_READ : 0) |
                 (status & MYSQL_WAIT_WRITE ? EV_WRITE : 0);
    if (c->events == events)
        return;
    ev_io_stop(c->loop, &c->io);
    if (events) {
        ev_io_modify(&c->io, events);
        ev_io_start(c->loop, &c->io);
    }
    c->events = events;
}

static void finish(myc *c, bool ok, uint64_t rows, uint64_t now)
{
    c->state = ST_IDLE;
    bench_complete(c->b, c->t0, now, ok, rows);
}

static void start_next(myc *c, uint64_t now);

/* Drive the query in flight as far as it goes without blocking. ret is the
 * last finished call's return value. */
static void advance(myc *c, int ret)
{
    MYSQL_STMT *st = c->st[c->q.kind];
    for (;;) {
        if (c->state == ST_EXEC) {
            if (ret) {
                bench_error(c->b, "execute: %s", mysql_stmt_error(st));
                finish(c, false, 0, bench_now_ns());
                return;
            }
            if (!mysql_stmt_field_count(st)) {
                uint64_t rows;
                bool ok = check_rows(c, &rows);
                finish(c, ok, rows, bench_now_ns());
                return;
            }
            c->state = ST_STORE;
            int status = mysql_stmt_store_result_start(&ret, st);
            if (status) {
                watch(c, status);
                return;
            }
            continue;
        }
        /* ST_STORE */
        if (ret) {
            bench_error(c->b, "store: %s", mysql_stmt_error(st));
            finish(c, false, 0, bench_now_ns());
            return;
        }
        uint64_t rows;
        bool ok = check_rows(c, &rows);
        finish(c, ok, rows, bench_now_ns());
        return;
    }
}

static void start_next(myc *c, uint64_t now)
{
    /* A start can finish at once; loop until a query waits or none is left. */
    while (!c->broken && bench_take(c->b, &c->q, now)) {
        c->t0 = now;
        set_params(c, &c->q);
        c->state = ST_EXEC;
        int ret = 0;
        int status = mysql_stmt_execute_start(&ret, c->st[c->q.kind]);
        if (status) {
            watch(c, status);
            return;
        }
        advance(c, ret);
        if (c->state != ST_IDLE)
            return;
        now = bench_now_ns();
    }
    watch(c, 0);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    myc *c = w->data;
    int ready =
        (revents & EV_READ ? MYSQL_WAIT_READ : 0) | (revents & EV_WRITE ? MYSQL_WAIT_WRITE : 0);
    int ret = 0, status;
    MYSQL_STMT *st = c->st[c->q.kind];
    if (c->state == ST_EXEC) {
        status = mysql_stmt_execute_cont(&ret, st, ready);
    } else if (c->state == ST_STORE) {
        status = mysql_stmt_store_result_cont(&ret, st, ready);
    } else {
        watch(c, 0);
        return;
    }
    if (status) {
        watch(c, status);
        return;
    }
    advance(c, ret);
    if (c->state == ST_IDLE) {
        if (mysql_errno(c->m) == 2013 || mysql_errno(c->m) == 2006)
            c->broken = true;
        start_next(c, bench_now_ns());
    }
    if (bench_phase_over(c->b))
        ev_break(loop, EVBREAK_ALL);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bench_tick(w->data, bench_now_ns());
}

int raw_my_async(bench *b)
{
    const bench_opts *o = b->o;
    if (o->inflight != o->conns)
        fprintf(stderr, "%s: one query per connection: %u in flight\n", b->client_name, o->conns);
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    myc *conns = calloc(o->conns, sizeof *conns);
    int rc = 1;
    for (unsigned i = 0; i < o->conns; i++) {
        myc *c = &conns[i];
        c->b = b;
        c->loop = loop;
        if (my_connect(b, c, true))
            goto out;
        ev_io_init(&c->io, on_io, (int)mysql_get_socket(c->m), EV_READ);
        c->io.data = c;
    }
    ev_timer tick;
    ev_timer_init(&tick, on_tick, 0.25, 0.25);
    tick.data = b;
    for (int measure = 0; measure < 2; measure++) {
        bench_phase_start(b, measure);
        uint64_t now = bench_now_ns();
        for (unsigned i = 0; i < o->conns; i++)
            start_next(&conns[i], now);
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
        my_disconnect(&conns[i]);
    }
    free(conns);
    ev_loop_destroy(loop);
    return rc;
}
