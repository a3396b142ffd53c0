/*
 * evdb-bench-tpcb: pgbench's built-in TPC-B-like transaction through evdb,
 * and a raw Connector/C client running the same transaction on MariaDB.
 *
 *   BEGIN;
 *   UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
 *   SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
 *   UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
 *   UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
 *   INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (...);
 *   END;
 *
 * Modes (--mode):
 *   static       evdb_pool_transaction_batch: the five statements as one
 *                static transaction (PostgreSQL: one round trip)
 *   interactive  evdb_pool_transaction_task: a task awaits each statement
 *                (BEGIN leaves with the first one, then COMMIT)
 *   interactive-no-reset
 *                the same with evdb_txn_opts.no_reset: the connection goes
 *                back without the session reset (nothing is sent after
 *                the COMMIT)
 *   held         for comparison: each client borrows a connection once and
 *                runs BEGIN (not awaited), the five statements awaited and
 *                COMMIT on it, with no release in between: what the
 *                interactive helper costs beyond the release's reset
 *   raw-my       MariaDB only: one thread per client, blocking Connector/C
 *                with prepared statements, START TRANSACTION ... COMMIT
 *
 * --clients N transactions in flight (one per client), on a pool (or N raw
 * connections) of N connections; --scale S as pgbench -i -s S (the ids
 * drawn); --duration seconds after --warmup seconds. Prints one line:
 * mode, transactions, tps and the client's CPU (user + system, every
 * thread) per transaction in microseconds over the measured part.
 */
#include <ev.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <evdb.h>

#ifdef BENCH_HAVE_MARIADB
#include <mysql.h>
#endif

/* Under `valgrind --tool=callgrind --collect-atstart=no` only the measured
 * part is counted (instructions per transaction are the steady metric on a
 * loaded machine); outside valgrind the toggle costs a few instructions. */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define MEASURE_TOGGLE() CALLGRIND_TOGGLE_COLLECT
#endif
#endif
#ifndef MEASURE_TOGGLE
#define MEASURE_TOGGLE() ((void)0)
#endif

static const char *const pg_sql[5] = {
    "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
    "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
    "UPDATE pgbench_tellers SET tbalance = tbalance + $1 WHERE tid = $2",
    "UPDATE pgbench_branches SET bbalance = bbalance + $1 WHERE bid = $2",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)"};

static const char *const my_sql[5] = {
    "UPDATE pgbench_accounts SET abalance = abalance + ? WHERE aid = ?",
    "SELECT abalance FROM pgbench_accounts WHERE aid = ?",
    "UPDATE pgbench_tellers SET tbalance = tbalance + ? WHERE tid = ?",
    "UPDATE pgbench_branches SET bbalance = bbalance + ? WHERE bid = ?",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP)"};

static struct {
    const char *url, *mode;
    int clients, scale;
    double duration, warmup;
} opt = {NULL, "static", 8, 10, 10.0, 2.0};

static const char *const *sql;
static volatile int measuring, stopping;
static uint64_t done_total, done_measured, failures;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* One transaction's random draw, as pgbench's script draws it. */
typedef struct draw {
    int64_t aid, bid, tid, delta;
} draw;

static void draw_next(draw *d, unsigned *seed)
{
    d->aid = 1 + rand_r(seed) % (100000 * opt.scale);
    d->bid = 1 + rand_r(seed) % opt.scale;
    d->tid = 1 + rand_r(seed) % (10 * opt.scale);
    d->delta = rand_r(seed) % 10001 - 5000;
}

static void count_one(bool ok)
{
    if (!ok) {
        failures++;
        return;
    }
    done_total++;
    if (measuring)
        done_measured++;
}

/* ------------------------------------------------------------------ evdb */

typedef struct client {
    evdb_pool *pool;
    unsigned seed;
    draw d;
    evdb_value v[11];
    evdb_stmt st[5];
    bool failed; /* held: a statement of this transaction failed */
} client;

static void start_txn(client *c);
static int inflight;
static struct ev_loop *evdb_loop;

static bool abalance_ok(const evdb_result *r)
{
    int64_t bal;
    return r && evdb_result_nrows(r) == 1 && evdb_result_int(r, 0, 0, &bal) == 0;
}

static void txn_done(evdb_future *f, void *arg)
{
    client *c = arg;
    bool ok = evdb_future_status(f) == 0;
    if (ok && !strncmp(opt.mode, "interactive", 11)) {
        /* The task checked the SELECT's row. */
    } else if (ok) {
        /* Five results, the SELECT's (second) with the balance. */
        const evdb_result *r = evdb_future_result(f);
        int n = 0;
        for (const evdb_result *x = r; x; x = evdb_result_next(x))
            n++;
        ok = n == 5 && abalance_ok(evdb_result_next(r));
    } else if (failures < 5) {
        fprintf(stderr, "tpcb: %d %s\n", evdb_future_status(f),
                evdb_error_message(evdb_future_error(f)));
    }
    count_one(ok);
    evdb_future_unref(f);
    inflight--;
    if (!stopping)
        start_txn(c);
    else if (!inflight)
        ev_break(evdb_loop, EVBREAK_ALL);
}

static void fill(client *c)
{
    draw_next(&c->d, &c->seed);
    evdb_value *v = c->v;
    v[0] = evdb_int(c->d.delta), v[1] = evdb_int(c->d.aid);
    v[2] = evdb_int(c->d.aid);
    v[3] = evdb_int(c->d.delta), v[4] = evdb_int(c->d.tid);
    v[5] = evdb_int(c->d.delta), v[6] = evdb_int(c->d.bid);
    v[7] = evdb_int(c->d.tid), v[8] = evdb_int(c->d.bid);
    v[9] = evdb_int(c->d.aid), v[10] = evdb_int(c->d.delta);
    static const size_t first[5] = {0, 2, 3, 5, 7}, count[5] = {2, 1, 2, 2, 4};
    for (int i = 0; i < 5; i++)
        c->st[i] = (evdb_stmt){sql[i], &v[first[i]], count[i]};
}

/* The interactive form: each statement awaited inside the transaction. */
static void *interactive_body(evdb_conn *conn, void *arg)
{
    client *c = arg;
    for (int i = 0; i < 5; i++) {
        evdb_future *q =
            evdb_conn_query(conn, c->st[i].sql, c->st[i].params, c->st[i].nparams, NULL);
        if (!q) {
            c->failed = true;
            return evdb_task_fail_error(evdb_last_error());
        }
        if (evdb_await(q) != 0 || (i == 1 && !abalance_ok(evdb_future_result(q)))) {
            c->failed = true;
            void *r = evdb_task_fail_error(evdb_future_error(q));
            evdb_future_unref(q);
            return r;
        }
        evdb_future_unref(q);
    }
    return NULL;
}

/* held: one task per client, one borrow for the whole run. */
static void *held_task(void *arg)
{
    client *c = arg;
    evdb_future *a = evdb_pool_acquire(c->pool, 0);
    if (evdb_await(a) != 0) {
        fprintf(stderr, "tpcb: acquire: %s\n", evdb_error_message(evdb_future_error(a)));
        exit(1);
    }
    evdb_conn *conn = evdb_future_take_conn(a);
    evdb_future_unref(a);
    while (!stopping) {
        fill(c);
        c->failed = false;
        evdb_future *b = evdb_conn_query(conn, "BEGIN", NULL, 0, NULL);
        interactive_body(conn, c);
        evdb_future *end = evdb_conn_query(conn, c->failed ? "ROLLBACK" : "COMMIT", NULL, 0, NULL);
        bool ok = evdb_await(end) == 0 && evdb_future_status(b) == 0 && !c->failed;
        evdb_future_unref(end);
        evdb_future_unref(b);
        count_one(ok);
    }
    evdb_conn_release(conn);
    if (--inflight == 0)
        ev_break(evdb_loop, EVBREAK_ALL);
    return NULL;
}

static void start_txn(client *c)
{
    if (!strcmp(opt.mode, "held")) {
        inflight++;
        evdb_future *t = evdb_task_spawn(evdb_loop, held_task, c, NULL);
        evdb_future_unref(t);
        return;
    }
    fill(c);
    inflight++;
    evdb_future *f;
    static const evdb_txn_opts no_reset = {.no_reset = true};
    if (!strcmp(opt.mode, "interactive"))
        f = evdb_pool_transaction_task(c->pool, interactive_body, c, NULL);
    else if (!strcmp(opt.mode, "interactive-no-reset"))
        f = evdb_pool_transaction_task(c->pool, interactive_body, c, &no_reset);
    else
        f = evdb_pool_transaction_batch(c->pool, c->st, 5, NULL);
    if (!f || evdb_future_on_done(f, txn_done, c)) {
        fprintf(stderr, "tpcb: submit: %s\n", evdb_error_message(evdb_last_error()));
        exit(1);
    }
}

static double t_start, cpu_start, t_measure_end, cpu_measure_end;
static uint64_t measured_at_end;

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    double t = now();
    if (!measuring && !stopping && t - t_start >= opt.warmup) {
        measuring = 1;
        t_start = t;
        cpu_start = cpu_seconds();
        MEASURE_TOGGLE();
    } else if (measuring && t - t_start >= opt.duration) {
        MEASURE_TOGGLE();
        measuring = 0;
        stopping = 1;
        t_measure_end = t;
        cpu_measure_end = cpu_seconds();
        measured_at_end = done_measured;
        ev_timer_stop(loop, w);
    }
}

static int run_evdb(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_loop = loop;
    evdb_pool_opts po = {.min_conns = (unsigned)opt.clients, .max_conns = (unsigned)opt.clients};
    evdb_pool *pool = evdb_pool_new(loop, opt.url, &po);
    if (!pool) {
        fprintf(stderr, "tpcb: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    sql = strncmp(opt.url, "postgres", 8) ? my_sql : pg_sql;
    client *cs = calloc((size_t)opt.clients, sizeof *cs);
    for (int i = 0; i < opt.clients; i++) {
        cs[i].pool = pool;
        cs[i].seed = 12345u + (unsigned)i * 7919u;
        start_txn(&cs[i]);
    }
    ev_timer tick;
    ev_timer_init(&tick, on_tick, 0.05, 0.05);
    ev_timer_start(loop, &tick);
    t_start = now();
    ev_run(loop, 0); /* until every client has stopped (txn_done breaks) */
    evdb_future *cl = evdb_pool_close(pool);
    evdb_future_wait(cl);
    evdb_future_unref(cl);
    free(cs);
    ev_loop_destroy(loop);
    return 0;
}

/* ------------------------------------------------------------ raw MariaDB */

#ifdef BENCH_HAVE_MARIADB
typedef struct my_url {
    char host[128], user[64], pw[64], db[64];
    unsigned port;
} my_url;

static int parse_my_url(const char *u, my_url *m)
{
    memset(m, 0, sizeof *m);
    const char *p = strstr(u, "://");
    if (!p)
        return -1;
    p += 3;
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ul = (size_t)((colon ? colon : at) - p);
        snprintf(m->user, sizeof m->user, "%.*s", (int)ul, p);
        if (colon)
            snprintf(m->pw, sizeof m->pw, "%.*s", (int)(at - colon - 1), colon + 1);
        p = at + 1;
    }
    const char *slash = strchr(p, '/');
    const char *colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
    const char *hend = colon ? colon : slash ? slash : p + strlen(p);
    snprintf(m->host, sizeof m->host, "%.*s", (int)(hend - p), p);
    m->port = colon ? (unsigned)atoi(colon + 1) : 3306;
    if (slash)
        snprintf(m->db, sizeof m->db, "%s", slash + 1);
    return 0;
}

static my_url MYU;
static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;

static void *raw_my_client(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    MYSQL *m = mysql_init(NULL);
    if (!mysql_real_connect(m, MYU.host, MYU.user, MYU.pw, MYU.db, MYU.port, NULL, 0)) {
        fprintf(stderr, "tpcb raw-my: %s\n", mysql_error(m));
        exit(1);
    }
    MYSQL_STMT *st[5];
    for (int i = 0; i < 5; i++) {
        st[i] = mysql_stmt_init(m);
        if (mysql_stmt_prepare(st[i], my_sql[i], (unsigned long)strlen(my_sql[i]))) {
            fprintf(stderr, "tpcb raw-my: %s\n", mysql_stmt_error(st[i]));
            exit(1);
        }
    }
    while (!stopping) {
        draw d;
        draw_next(&d, &seed);
        long long p[5][4] = {{d.delta, d.aid},
                             {d.aid},
                             {d.delta, d.tid},
                             {d.delta, d.bid},
                             {d.tid, d.bid, d.aid, d.delta}};
        static const int np[5] = {2, 1, 2, 2, 4};
        bool ok = mysql_query(m, "START TRANSACTION") == 0;
        for (int i = 0; ok && i < 5; i++) {
            MYSQL_BIND b[4];
            memset(b, 0, sizeof b);
            for (int k = 0; k < np[i]; k++) {
                b[k].buffer_type = MYSQL_TYPE_LONGLONG;
                b[k].buffer = &p[i][k];
            }
            ok = !mysql_stmt_bind_param(st[i], b) && !mysql_stmt_execute(st[i]);
            if (ok && i == 1) {
                long long bal = 0;
                MYSQL_BIND r;
                memset(&r, 0, sizeof r);
                r.buffer_type = MYSQL_TYPE_LONGLONG;
                r.buffer = &bal;
                ok = !mysql_stmt_bind_result(st[i], &r) && !mysql_stmt_store_result(st[i]) &&
                     mysql_stmt_num_rows(st[i]) == 1 && !mysql_stmt_fetch(st[i]);
                mysql_stmt_free_result(st[i]);
            }
        }
        ok = ok ? mysql_query(m, "COMMIT") == 0 : (mysql_query(m, "ROLLBACK"), false);
        pthread_mutex_lock(&count_mu);
        count_one(ok);
        pthread_mutex_unlock(&count_mu);
    }
    for (int i = 0; i < 5; i++)
        mysql_stmt_close(st[i]);
    mysql_close(m);
    return NULL;
}

static int run_raw_my(void)
{
    if (parse_my_url(opt.url, &MYU))
        return 1;
    mysql_library_init(0, NULL, NULL);
    pthread_t *th = calloc((size_t)opt.clients, sizeof *th);
    for (int i = 0; i < opt.clients; i++)
        pthread_create(&th[i], NULL, raw_my_client, (void *)(uintptr_t)(12345u + i * 7919u));
    t_start = now();
    struct timespec tick = {0, 50 * 1000 * 1000};
    while (!stopping) {
        nanosleep(&tick, NULL);
        pthread_mutex_lock(&count_mu);
        double t = now();
        if (!measuring && t - t_start >= opt.warmup) {
            measuring = 1;
            t_start = t;
            cpu_start = cpu_seconds();
        } else if (measuring && t - t_start >= opt.duration) {
            measuring = 0;
            stopping = 1;
            t_measure_end = t;
            cpu_measure_end = cpu_seconds();
            measured_at_end = done_measured;
        }
        pthread_mutex_unlock(&count_mu);
    }
    for (int i = 0; i < opt.clients; i++)
        pthread_join(th[i], NULL);
    free(th);
    mysql_library_end();
    return 0;
}
#endif

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--url") && v)
            opt.url = v, i++;
        else if (!strcmp(a, "--mode") && v)
            opt.mode = v, i++;
        else if (!strcmp(a, "--clients") && v)
            opt.clients = atoi(v), i++;
        else if (!strcmp(a, "--scale") && v)
            opt.scale = atoi(v), i++;
        else if (!strcmp(a, "--duration") && v)
            opt.duration = atof(v), i++;
        else if (!strcmp(a, "--warmup") && v)
            opt.warmup = atof(v), i++;
        else {
            fprintf(stderr, "usage: evdb-bench-tpcb --url URL [--mode static|interactive|"
                            "interactive-no-reset|held|raw-my] "
                            "[--clients 8] [--scale 10] [--duration 10] [--warmup 2]\n");
            return 2;
        }
    }
    if (!opt.url || opt.clients < 1 || opt.scale < 1)
        return 2;
    int rc;
    if (!strcmp(opt.mode, "raw-my")) {
#ifdef BENCH_HAVE_MARIADB
        rc = run_raw_my();
#else
        fprintf(stderr, "tpcb: built without Connector/C\n");
        return 1;
#endif
    } else {
        rc = run_evdb();
    }
    if (rc)
        return rc;
    double secs = t_measure_end - t_start, cpu = cpu_measure_end - cpu_start;
    printf("mode=%s transactions=%llu tps=%.0f cpu_us_per_txn=%.1f failures=%llu\n", opt.mode,
           (unsigned long long)measured_at_end, measured_at_end / secs,
           measured_at_end ? cpu / (double)measured_at_end * 1e6 : 0.0,
           (unsigned long long)failures);
    return failures ? 3 : 0;
}
