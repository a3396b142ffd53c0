/*
 * Soak: both backends at once on one loop, for EVDB_SOAK_SECONDS (8 by
 * default, so that CI stays quick; run it for minutes or hours by hand),
 * with a mixed workload and faults all along:
 *
 *   - pooled queries whose answers are checked (a parameter echoed + 1),
 *   - gathers of several pooled queries,
 *   - transactions (evdb_pool_transaction) that insert and are counted,
 *   - slow queries with short timeouts (server-side cancel) and explicit
 *     cancels of running queries,
 *   - connections opened, used and closed (connect churn),
 *   - tasks that await pooled queries in a loop,
 * each pool behind a fault proxy that now and then stalls, resets every
 * connection or drops one mid-answer, and an administrator killing a
 * random session now and then.
 *
 * Checked: every future completes exactly once; no answer is ever wrong;
 * every outcome is one the faults explain; every committed transaction is
 * in the table exactly once; the work keeps succeeding to the end; and
 * memory is flat: at pauses where all work has drained, evdb's live
 * allocations (and, without ASan, the process's resident memory) stop
 * growing after the warm-up. Nothing leaks at the end (t_loop_free).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evdb.h>

#include "faultproxy.h"
#include "internal.h"
#include "testenv.h"
#include "testutil.h"

#define DEFAULT_SECONDS 8.0
#define PAUSE_EVERY_S 2.0
#define WORKERS_PER_BACKEND 12
#define TASKS_PER_BACKEND 2
/* Live allocations may grow by this much after the warm-up pause
 * (statement caches filling up, result buffers kept per connection). */
#define ALLOC_SLACK 400
#define RSS_SLACK_KB (24 * 1024)

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static struct ev_loop *L;

typedef struct backend {
    const char *name;
    const char *(*url)(void);
    const char *(*admin_url)(void);
    const char *port_var;
    const char *param_sql;
    const char *sleep_sql;
    const char *create_sql;
    const char *insert_sql;
    const char *kill_victim_sql; /* one random application session id */
    const char *kill_fmt;
} backend;

static const backend backends[2] = {
    {"postgres", evdb_test_pg_url, evdb_test_pg_admin_url, "EVDB_TEST_PG_PORT",
     "SELECT $1::bigint + 1", "SELECT pg_sleep(0.5)",
     "CREATE TABLE IF NOT EXISTS evdb_soak (k bigint PRIMARY KEY)",
     "INSERT INTO evdb_soak VALUES ($1)",
     "SELECT pid FROM pg_stat_activity WHERE usename = 'evdb' AND backend_type = 'client "
     "backend' ORDER BY random() LIMIT 1",
     "SELECT pg_terminate_backend(%s)"},
    {"mariadb", evdb_test_my_url, evdb_test_my_admin_url, "EVDB_TEST_MY_PORT", "SELECT ? + 1",
     "SELECT SLEEP(0.5)", "CREATE TABLE IF NOT EXISTS evdb_soak (k bigint PRIMARY KEY)",
     "INSERT INTO evdb_soak VALUES (?)",
     "SELECT id FROM information_schema.processlist WHERE user = 'evdb' AND command <> "
     "'Killed' ORDER BY RAND() LIMIT 1",
     "KILL CONNECTION %s"},
};

enum { MAX_SUBMITS = 8000000 };

typedef struct side side;

/* The audit of one backend. */
struct side {
    const backend *b;
    evdb_fp *fp;
    char url[512];
    evdb_pool *pool;
    evdb_conn *admin;
    bool pause, stop;
    unsigned seed;
    size_t submitted, completed, ok, wrong, expected_fail, other;
    size_t commits, inflight, tasks_running, ok_mark;
    unsigned char *calls;
    size_t killing;
    int64_t *committed; /* keys of the transactions reported committed */
    size_t ncommitted, capcommitted;
};

typedef enum kind { K_QUERY, K_GATHER, K_TXN, K_SLOW, K_CANCEL, K_CHURN } kind;

typedef struct job {
    side *s;
    size_t n;
    kind k;
    int64_t x;
    evdb_future *parts[4];
    int nparts;
} job;

static void submit(side *s);

static bool explained(int st)
{
    /* What the faults (stall, reset, drop, kills, timeouts, cancels) can
     * cause. */
    return st == EVDB_ECONNLOST || st == EVDB_ETIMEDOUT || st == EVDB_ECANCELED ||
           st == EVDB_ECONNECT || st == EVDB_ECONNTIMEOUT || st == EVDB_EPOOLTIMEOUT ||
           st == EVDB_ESERVER || st == EVDB_ECLOSED;
}

static bool answer_ok(const evdb_future *f, int64_t x)
{
    int64_t v = -1;
    return evdb_result_int(evdb_future_result(f), 0, 0, &v) == 0 && v == x + 1;
}

/* Account for a finished job. */
static void complete(job *j, int st, bool right)
{
    side *s = j->s;
    s->calls[j->n]++;
    s->completed++;
    s->inflight--;
    if (st == 0 && right) {
        s->ok++;
        s->ok_mark++;
    } else if (st == 0) {
        s->wrong++;
        fprintf(stderr, "[%s] wrong answer (job kind %d)\n", s->b->name, j->k);
    } else if (explained(st)) {
        s->expected_fail++;
    } else {
        s->other++;
        fprintf(stderr, "[%s] unexpected outcome %s (job kind %d)\n", s->b->name,
                evdb_err_name(st), j->k);
    }
    free(j);
}

/* A callback-style job finished: account for it, start the next one. */
static void done(job *j, int st, bool right)
{
    side *s = j->s;
    complete(j, st, right);
    if (!s->stop && !s->pause)
        submit(s);
}

static void on_query(evdb_future *f, void *arg)
{
    job *j = arg;
    int st = evdb_future_status(f);
    bool right = st != 0 || j->k == K_SLOW || j->k == K_CANCEL || answer_ok(f, j->x);
    evdb_future_unref(f);
    done(j, st, right);
}

static void on_gather(evdb_future *g, void *arg)
{
    job *j = arg;
    int st = evdb_future_status(g);
    bool right = true;
    for (int i = 0; i < j->nparts; i++) {
        if (evdb_future_status(j->parts[i]) == 0 && !answer_ok(j->parts[i], j->x + i))
            right = false;
        evdb_future_unref(j->parts[i]);
    }
    evdb_future_unref(g);
    done(j, st, right);
}

static evdb_future *txn_body(evdb_conn *c, void *arg)
{
    job *j = arg;
    evdb_value v = evdb_int(j->x);
    return evdb_conn_query(c, j->s->b->insert_sql, &v, 1, NULL);
}

static void on_txn(evdb_future *f, void *arg)
{
    job *j = arg;
    int st = evdb_future_status(f);
    side *s = j->s;
    if (st == 0) {
        s->commits++;
        if (s->ncommitted == s->capcommitted) {
            s->capcommitted = s->capcommitted ? 2 * s->capcommitted : 1024;
            s->committed = realloc(s->committed, s->capcommitted * sizeof *s->committed);
            ck_assert_ptr_nonnull(s->committed);
        }
        s->committed[s->ncommitted++] = j->x;
    }
    evdb_future_unref(f);
    done(j, st, true);
}

/* Connect churn: open, one query, close. */
static void on_churn_closed(evdb_future *f, void *arg)
{
    job *j = arg;
    (void)f; /* the reference was dropped right after registering */
    done(j, 0, true);
}

static void on_churn_query(evdb_future *f, void *arg)
{
    job *j = arg;
    int st = evdb_future_status(f);
    bool right = st != 0 || answer_ok(f, j->x);
    evdb_future_unref(f);
    evdb_future *cf = evdb_conn_close((evdb_conn *)j->parts[0]);
    ck_assert_ptr_nonnull(cf);
    if (st != 0 || !right) {
        evdb_future_unref(cf);
        done(j, st, right);
        return;
    }
    ck_assert_int_eq(evdb_future_on_done(cf, on_churn_closed, j), 0);
    evdb_future_unref(cf);
}

static void on_churn_open(evdb_future *f, void *arg)
{
    job *j = arg;
    int st = evdb_future_status(f);
    evdb_conn *c = st == 0 ? evdb_future_take_conn(f) : NULL;
    evdb_future_unref(f);
    if (!c) {
        done(j, st, true);
        return;
    }
    evdb_value v = evdb_int(j->x);
    evdb_query_opts o = {.timeout = 2};
    evdb_future *q = evdb_conn_query(c, j->s->b->param_sql, &v, 1, &o);
    ck_assert_ptr_nonnull(q);
    j->parts[0] = (evdb_future *)(void *)c; /* the connection, to close it */
    ck_assert_int_eq(evdb_future_on_done(q, on_churn_query, j), 0);
}

static void cancel_later(evdb_future *f, void *arg)
{
    evdb_future *victim = arg;
    evdb_future_unref(f);
    evdb_future_cancel(victim);
    evdb_future_unref(victim);
}

static void submit(side *s)
{
    ck_assert_uint_lt(s->submitted, MAX_SUBMITS);
    job *j = calloc(1, sizeof *j);
    ck_assert_ptr_nonnull(j);
    j->s = s;
    j->n = s->submitted++;
    j->x = (int64_t)(j->n * 13 + 5) * (s->b == &backends[0] ? 1 : 3);
    s->inflight++;
    unsigned r = (unsigned)rand_r(&s->seed) % 100;
    evdb_query_opts qo = {.timeout = 2};
    evdb_value v = evdb_int(j->x);
    evdb_future *f;
    if (r < 70) {
        j->k = K_QUERY;
        f = evdb_pool_query(s->pool, s->b->param_sql, &v, 1, &qo);
    } else if (r < 82) {
        j->k = K_GATHER;
        j->nparts = 4;
        for (int i = 0; i < j->nparts; i++) {
            evdb_value vi = evdb_int(j->x + i);
            j->parts[i] = evdb_pool_query(s->pool, s->b->param_sql, &vi, 1, &qo);
            ck_assert_ptr_nonnull(j->parts[i]);
        }
        f = evdb_gather(j->parts, (size_t)j->nparts, 0);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(evdb_future_on_done(f, on_gather, j), 0);
        return;
    } else if (r < 90) {
        j->k = K_TXN;
        f = evdb_pool_transaction(s->pool, txn_body, j, 2);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(evdb_future_on_done(f, on_txn, j), 0);
        return;
    } else if (r < 94) {
        j->k = K_SLOW;
        evdb_query_opts to = {.timeout = 0.02 + (rand_r(&s->seed) % 30) / 1000.0};
        f = evdb_pool_query(s->pool, s->b->sleep_sql, NULL, 0, &to);
    } else if (r < 97) {
        j->k = K_CANCEL;
        f = evdb_pool_query(s->pool, s->b->sleep_sql, NULL, 0, &qo);
        ck_assert_ptr_nonnull(f);
        evdb_future *t = evdb_sleep(L, 0.01 + (rand_r(&s->seed) % 40) / 1000.0);
        ck_assert_int_eq(evdb_future_on_done(t, cancel_later, evdb_future_ref(f)), 0);
    } else {
        j->k = K_CHURN;
        evdb_conn_opts co = {.connect_timeout = 2};
        f = evdb_conn_open(L, s->url, &co);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(evdb_future_on_done(f, on_churn_open, j), 0);
        return;
    }
    ck_assert_msg(f != NULL, "%s", evdb_error_message(evdb_last_error()));
    ck_assert_int_eq(evdb_future_on_done(f, on_query, j), 0);
}

/* ---- tasks: straight-line workers awaiting pooled queries ---- */

static void *task_worker(void *arg)
{
    side *s = arg;
    int64_t i = 1000000;
    while (!s->stop) {
        if (s->pause) {
            evdb_future *z = evdb_sleep(L, 0.01);
            evdb_await(z);
            evdb_future_unref(z);
            continue;
        }
        ck_assert_uint_lt(s->submitted, MAX_SUBMITS);
        size_t n = s->submitted++;
        s->inflight++;
        evdb_value v = evdb_int(i);
        evdb_query_opts o = {.timeout = 2};
        evdb_future *q = evdb_pool_query(s->pool, s->b->param_sql, &v, 1, &o);
        ck_assert_ptr_nonnull(q);
        int st = evdb_await(q);
        job *j = calloc(1, sizeof *j);
        ck_assert_ptr_nonnull(j);
        j->s = s;
        j->n = n;
        j->k = K_QUERY;
        bool right = st != 0 || answer_ok(q, i);
        evdb_future_unref(q);
        complete(j, st, right);
        i++;
    }
    s->tasks_running--;
    return NULL;
}

/* ---- faults ---- */

static void on_kill_done(evdb_future *f, void *arg)
{
    side *s = arg;
    evdb_future_unref(f);
    s->killing--;
}

static void on_victim(evdb_future *f, void *arg)
{
    side *s = arg;
    const evdb_result *r = evdb_future_result(f);
    if (evdb_future_status(f) == 0 && evdb_result_nrows(r) == 1) {
        char sql[96];
        snprintf(sql, sizeof sql, s->b->kill_fmt, evdb_result_text(r, 0, 0, NULL));
        evdb_future *k = evdb_conn_query(s->admin, sql, NULL, 0, NULL);
        ck_assert_ptr_nonnull(k);
        ck_assert_int_eq(evdb_future_on_done(k, on_kill_done, s), 0);
    } else {
        s->killing--;
    }
    evdb_future_unref(f);
}

static void inject(side *s, unsigned what)
{
    switch (what % 5) {
    case 0: /* an administrator kills a session */
        s->killing++;
        evdb_future *f = evdb_conn_query(s->admin, s->b->kill_victim_sql, NULL, 0, NULL);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(evdb_future_on_done(f, on_victim, s), 0);
        break;
    case 1:
        evdb_fp_reset_all(s->fp);
        break;
    case 2:
        ck_assert_int_eq(evdb_fp_set(s->fp, EVDB_FP_STALL, 0), 0);
        t_run_for(L, 0.15);
        ck_assert_int_eq(evdb_fp_set(s->fp, EVDB_FP_PASS, 0), 0);
        break;
    case 3:
        ck_assert_int_eq(evdb_fp_set(s->fp, EVDB_FP_DROP_RST, 400), 0);
        t_run_for(L, 0.05);
        ck_assert_int_eq(evdb_fp_set(s->fp, EVDB_FP_PASS, 0), 0);
        break;
    default: /* a quiet spell */
        break;
    }
}

/* ---- pauses ---- */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Stop submitting, let everything in flight complete, and sample. */
static void quiesce(side *sides, size_t n, size_t *live, long *rss)
{
    for (size_t i = 0; i < n; i++)
        sides[i].pause = true;
    double until = t_now() + 30;
    for (;;) {
        bool busy = false;
        for (size_t i = 0; i < n; i++)
            busy |= sides[i].inflight > 0 || sides[i].killing > 0;
        if (!busy || t_now() > until)
            break;
        t_run_for(L, 0.02);
    }
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(sides[i].inflight == 0, "[%s] %zu jobs never completed", sides[i].b->name,
                      sides[i].inflight);
    t_run_for(L, 0.05);
    *live = evdb__alloc_live();
    *rss = rss_kb();
    for (size_t i = 0; i < n; i++)
        sides[i].pause = false;
}

static void resume(side *sides, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int w = 0; w < WORKERS_PER_BACKEND; w++)
            submit(&sides[i]);
}

static void setup_side(side *s, const backend *b, unsigned seed)
{
    memset(s, 0, sizeof *s);
    s->b = b;
    s->seed = seed;
    const char *u = b->url();
    ck_assert_msg(u != NULL, "no test servers: run scripts/testdb start");
    int port = atoi(evdb_test_env(b->port_var));
    char err[160];
    s->fp = evdb_fp_new(L, 0, "127.0.0.1", port, err, sizeof err);
    ck_assert_msg(s->fp != NULL, "%s", err);
    char pat[16];
    snprintf(pat, sizeof pat, ":%d/", port);
    const char *at = strstr(u, pat);
    ck_assert_ptr_nonnull(at);
    snprintf(s->url, sizeof s->url, "%.*s:%d/%s", (int)(at - u), u, evdb_fp_port(s->fp),
             at + strlen(pat));
    evdb_pool_opts po = {.min_conns = 2, .max_conns = 6, .backoff_initial = 0.02,
                         .backoff_max = 0.2, .connect_timeout = 2, .acquire_timeout = 3};
    s->pool = evdb_pool_new(L, s->url, &po);
    ck_assert_ptr_nonnull(s->pool);
    s->calls = calloc(MAX_SUBMITS, 1);
    ck_assert_ptr_nonnull(s->calls);
    /* Admin work goes straight to the server. */
    evdb_future *f = evdb_conn_open(L, b->admin_url(), NULL);
    ck_assert_int_eq(t_wait(f), 0);
    s->admin = evdb_future_take_conn(f);
    evdb_future_unref(f);
    const char *prep[] = {"DROP TABLE IF EXISTS evdb_soak", b->create_sql};
    for (int i = 0; i < 2; i++) {
        f = evdb_pool_query(s->pool, prep[i], NULL, 0, NULL);
        ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
        evdb_future_unref(f);
    }
}

START_TEST(soak_both_backends_with_faults)
{
    L = t_loop_new(3600);
    double seconds = DEFAULT_SECONDS;
    const char *e = getenv("EVDB_SOAK_SECONDS");
    if (e && atof(e) > 0)
        seconds = atof(e);
    side sides[2];
    setup_side(&sides[0], &backends[0], 7u);
    setup_side(&sides[1], &backends[1], 11u);
    evdb_future *tasks[2 * TASKS_PER_BACKEND];
    size_t ntasks = 0;
    for (int i = 0; i < 2; i++) {
        for (int t = 0; t < TASKS_PER_BACKEND; t++) {
            tasks[ntasks] = evdb_task_spawn(L, task_worker, &sides[i], NULL);
            ck_assert_ptr_nonnull(tasks[ntasks]);
            ntasks++;
            sides[i].tasks_running++;
        }
    }
    resume(sides, 2);

    size_t live[512];
    long rss[512];
    size_t pauses = 0;
    unsigned fault = 0;
    double t0 = t_now(), next_pause = t0 + PAUSE_EVERY_S;
    while (t_now() - t0 < seconds) {
        t_run_for(L, 0.25);
        for (int i = 0; i < 2; i++)
            inject(&sides[i], fault + (unsigned)i * 3);
        fault++;
        if (t_now() >= next_pause && pauses < 512) {
            quiesce(sides, 2, &live[pauses], &rss[pauses]);
            fprintf(stderr,
                    "soak %5.1f s: postgres %zu ok, mariadb %zu ok; live allocations %zu, "
                    "rss %ld kB\n",
                    t_now() - t0, sides[0].ok, sides[1].ok, live[pauses], rss[pauses]);
            pauses++;
            for (int i = 0; i < 2; i++)
                sides[i].ok_mark = 0;
            resume(sides, 2);
            next_pause = t_now() + PAUSE_EVERY_S;
        }
    }
    /* The end: faults off, the work must still succeed. */
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(evdb_fp_set(sides[i].fp, EVDB_FP_PASS, 0), 0);
        sides[i].ok_mark = 0;
    }
    double until = t_now() + 10;
    t_run_for(L, 0.5);
    while ((sides[0].ok_mark < 50 || sides[1].ok_mark < 50) && t_now() < until)
        t_run_for(L, 0.1);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(sides[i].ok_mark >= 50, "[%s] no recovery at the end", sides[i].b->name);
    size_t final_live;
    long final_rss;
    quiesce(sides, 2, &final_live, &final_rss);
    for (int i = 0; i < 2; i++)
        sides[i].stop = true;
    until = t_now() + 10;
    while ((sides[0].tasks_running || sides[1].tasks_running) && t_now() < until)
        t_run_for(L, 0.02);
    for (size_t t = 0; t < ntasks; t++) {
        ck_assert_int_eq(evdb_future_status(tasks[t]), 0);
        evdb_future_unref(tasks[t]);
    }

    /* The audit. */
    for (int i = 0; i < 2; i++) {
        side *s = &sides[i];
        fprintf(stderr,
                "[%s] %zu submitted: %zu ok, %zu failed as the faults explain, %zu wrong, "
                "%zu other; %zu transactions committed\n",
                s->b->name, s->submitted, s->ok, s->expected_fail, s->wrong, s->other,
                s->commits);
        ck_assert_uint_eq(s->completed, s->submitted);
        for (size_t n = 0; n < s->submitted; n++)
            ck_assert_msg(s->calls[n] == 1, "[%s] job %zu completed %d times", s->b->name, n,
                          s->calls[n]);
        ck_assert_uint_eq(s->ok + s->expected_fail + s->wrong + s->other, s->submitted);
        ck_assert_uint_eq(s->wrong, 0);
        ck_assert_uint_eq(s->other, 0);
        ck_assert_uint_gt(s->ok, 1000);
        /* Every commit reported is in the table (a transaction whose
         * COMMIT answer was lost may be there too). */
        evdb_future *f = evdb_conn_query(s->admin, "SELECT k FROM evdb_soak ORDER BY k", NULL,
                                         0, NULL);
        ck_assert_msg(t_wait(f) == 0, "[%s] reading the table: %s", s->b->name,
                      evdb_error_message(evdb_future_error(f)));
        const evdb_result *r = evdb_future_result(f);
        size_t rows = evdb_result_nrows(r);
        int64_t *keys = malloc((rows + 1) * sizeof *keys);
        ck_assert_ptr_nonnull(keys);
        for (size_t k = 0; k < rows; k++)
            ck_assert_int_eq(evdb_result_int(r, k, 0, &keys[k]), 0);
        evdb_future_unref(f);
        ck_assert_uint_ge(rows, s->commits);
        for (size_t c = 0; c < s->ncommitted; c++) {
            int64_t want = s->committed[c];
            size_t lo = 0, hi = rows;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (keys[mid] < want)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            ck_assert_msg(lo < rows && keys[lo] == want,
                          "[%s] a committed transaction (key %lld) is not in the table",
                          s->b->name, (long long)want);
        }
        free(keys);
        free(s->committed);
        f = evdb_conn_query(s->admin, "DROP TABLE evdb_soak", NULL, 0, NULL);
        ck_assert_msg(t_wait(f) == 0, "[%s] DROP TABLE: %s", s->b->name,
                      evdb_error_message(evdb_future_error(f)));
        evdb_future_unref(f);
    }
    /* Flat memory after the warm-up (the first pause). */
    if (pauses >= 2) {
        size_t base = live[1] > live[0] ? live[1] : live[0];
        ck_assert_msg(final_live <= base + ALLOC_SLACK,
                      "live allocations grew from %zu to %zu", base, final_live);
        if (!UNDER_ASAN)
            ck_assert_msg(final_rss <= rss[0] + RSS_SLACK_KB, "resident memory grew from %ld to %ld kB",
                          rss[0], final_rss);
    }
    for (int i = 0; i < 2; i++) {
        evdb_future *f = evdb_conn_close(sides[i].admin);
        ck_assert_int_eq(t_wait(f), 0);
        evdb_future_unref(f);
        f = evdb_pool_close(sides[i].pool);
        ck_assert_int_eq(t_wait(f), 0);
        evdb_future_unref(f);
        free(sides[i].calls);
        evdb_fp_free(sides[i].fp);
    }
    t_loop_free(L);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("soak");
    TCase *tc = tcase_create("soak");
    double seconds = DEFAULT_SECONDS;
    const char *e = getenv("EVDB_SOAK_SECONDS");
    if (e && atof(e) > 0)
        seconds = atof(e);
    tcase_set_timeout(tc, seconds + 120);
    tcase_add_test(tc, soak_both_backends_with_faults);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
