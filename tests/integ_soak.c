/*
 * Soak: both backends at once on one loop, with a mixed workload and
 * faults all along. How long:
 *
 *   EVDB_SOAK_QUERIES=N   until at least N jobs have completed (both
 *                         backends together); EVDB_SOAK_SECONDS is then
 *                         a safety cap (4 hours if unset) and reaching it
 *                         first fails the test;
 *   EVDB_SOAK_SECONDS=S   otherwise, for S seconds (8 by default, so that
 *                         CI stays quick).
 *
 * A job is one unit the test awaits: a pooled query, a gather of four, a
 * transaction, ...; each is at least one statement. Reporting:
 *
 *   EVDB_SOAK_CURVE=path  one CSV line per pause (elapsed seconds, jobs
 *                         completed, ok / failed, evdb's live allocations,
 *                         resident and peak resident memory);
 *   EVDB_SOAK_VERBOSE=1   that line on stderr too, and the outcomes per
 *                         backend and job kind at the end.
 *
 * A two-line summary (outcomes, faults, memory at warm-up and at the end)
 * ends every run. Under valgrind (RUNNING_ON_VALGRIND, or
 * EVDB_SOAK_VALGRIND=1 without <valgrind/valgrind.h>) the timeouts the
 * workload does not mean to hit are stretched and resident memory is not
 * asserted (valgrind's own heap is in it); live allocations still are.
 * Run it with CK_FORK=no so that valgrind sees the test itself.
 *
 * The workload:
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

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND_H 1
#endif
#endif
#ifndef HAVE_VALGRIND_H
#define HAVE_VALGRIND_H 0
#endif

#include <evdb.h>

#include "faultproxy.h"
#include "internal.h"
#include "testenv.h"
#include "testutil.h"

#define DEFAULT_SECONDS 8.0
/* With EVDB_SOAK_QUERIES and no EVDB_SOAK_SECONDS: the safety cap. */
#define DEFAULT_CAP_SECONDS (4 * 3600.0)
/* Check's own timeout beyond the run (setup, draining, the audit). */
#define SUITE_TIMEOUT_EXTRA_S 120.0
/* The per-job bookkeeping (one byte a job) is sized up front and touched,
 * so that its growth does not show in the resident-memory curve: for S
 * seconds this many jobs a second per backend (several times what a
 * 2-core VM does), plus a margin for the jobs in flight when the run
 * stops. A seconds-run that fills it ends early, with a note. */
#define BOOK_JOBS_PER_SECOND 8000
#define BOOK_MARGIN 100000
/* Under valgrind everything runs 10-50 times slower: timeouts meant not
 * to fire are multiplied by this, and fewer successes are demanded. */
#define VALGRIND_SCALE 10.0
#define MIN_OK 1000
#define MIN_OK_VALGRIND 100
#define PAUSE_EVERY_S 2.0
#define WORKERS_PER_BACKEND 12
#define TASKS_PER_BACKEND 2
/* Live allocations may grow by this much after the warm-up pause
 * (statement caches filling up, result buffers kept per connection). */
#define ALLOC_SLACK 400
#define RSS_SLACK_KB (24 * 1024)

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

/* One run's settings, from the environment. */
typedef struct config {
    double seconds;    /* the run's length, or with queries the cap */
    size_t queries;    /* 0: run for seconds */
    bool valgrind;     /* stretch timeouts, do not assert RSS */
    bool verbose;      /* per-pause and per-kind lines on stderr */
    double scale;      /* 1, or VALGRIND_SCALE */
    const char *curve; /* CSV path or NULL */
} config;

static config C;

/* The bookkeeping byte of a job: how often it completed, and whether it
 * was a transaction reported committed. */
#define CALLS_MASK 0x7f
#define CALLS_COMMITTED 0x80

typedef enum kind { K_QUERY, K_GATHER, K_TXN, K_SLOW, K_CANCEL, K_CHURN, K_TASK, K_COUNT } kind;

static const char *const kind_names[K_COUNT] = {"query",  "gather", "txn", "slow",
                                                "cancel", "churn",  "task"};
/* Statements a job sends when it runs to the end (BEGIN, INSERT, COMMIT
 * for a transaction), for the summary's estimate. */
static const unsigned kind_statements[K_COUNT] = {1, 4, 3, 1, 1, 1, 1};

/* What the faults (stall, reset, drop, kills, timeouts, cancels) can
 * cause. */
static const int explained_codes[] = {EVDB_ECONNLOST, EVDB_ETIMEDOUT,    EVDB_ECANCELED,
                                      EVDB_ECONNECT,  EVDB_ECONNTIMEOUT, EVDB_EPOOLTIMEOUT,
                                      EVDB_ESERVER,   EVDB_ECLOSED};
#define N_EXPLAINED (sizeof explained_codes / sizeof explained_codes[0])
/* Outcome buckets: ok, each explained code, wrong, other. */
#define B_OK 0
#define B_WRONG (1 + N_EXPLAINED)
#define B_OTHER (2 + N_EXPLAINED)
#define N_BUCKETS (3 + N_EXPLAINED)

typedef enum fault_kind { F_KILL, F_RESET, F_STALL, F_DROP, F_QUIET, F_COUNT } fault_kind;

static const char *const fault_names[F_COUNT] = {"kill", "reset", "stall", "drop", "quiet"};

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
    unsigned char *calls; /* a byte per job, see CALLS_MASK */
    size_t cap;           /* jobs calls has room for */
    size_t killing;
    size_t outcomes[K_COUNT][N_BUCKETS];
    size_t faults[F_COUNT];
    size_t kills_sent, kills_done; /* a victim found; the kill succeeded */
};

typedef struct job {
    side *s;
    size_t n;
    kind k;
    int64_t x;
    evdb_future *parts[4];
    int nparts;
} job;

static void submit(side *s);

/* The outcome bucket of status st. */
static size_t bucket(int st, bool right)
{
    if (st == 0)
        return right ? B_OK : B_WRONG;
    for (size_t i = 0; i < N_EXPLAINED; i++)
        if (st == explained_codes[i])
            return 1 + i;
    return B_OTHER;
}

/* A timeout the workload does not mean to hit, stretched under valgrind. */
static double patient(double seconds)
{
    return seconds * C.scale;
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
    if ((s->calls[j->n] & CALLS_MASK) < CALLS_MASK)
        s->calls[j->n]++;
    s->completed++;
    s->inflight--;
    size_t b = bucket(st, right);
    s->outcomes[j->k][b]++;
    if (b == B_OK) {
        s->ok++;
        s->ok_mark++;
    } else if (b == B_WRONG) {
        s->wrong++;
        fprintf(stderr, "[%s] wrong answer (job kind %s)\n", s->b->name, kind_names[j->k]);
    } else if (b == B_OTHER) {
        s->other++;
        fprintf(stderr, "[%s] unexpected outcome %s (job kind %s)\n", s->b->name, evdb_err_name(st),
                kind_names[j->k]);
    } else {
        s->expected_fail++;
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
        s->calls[j->n] |= CALLS_COMMITTED;
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
    evdb_query_opts o = {.timeout = patient(2)};
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

/* The value a callback-style job sends: also the key its transaction
 * inserts, so that the audit can recompute it from the job's number. */
static int64_t job_x(const side *s, size_t n)
{
    return (int64_t)(n * 13 + 5) * (s->b == &backends[0] ? 1 : 3);
}

static void submit(side *s)
{
    ck_assert_uint_lt(s->submitted, s->cap);
    job *j = calloc(1, sizeof *j);
    ck_assert_ptr_nonnull(j);
    j->s = s;
    j->n = s->submitted++;
    j->x = job_x(s, j->n);
    s->inflight++;
    unsigned r = (unsigned)rand_r(&s->seed) % 100;
    evdb_query_opts qo = {.timeout = patient(2)};
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
        evdb_conn_opts co = {.connect_timeout = patient(2)};
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
        ck_assert_uint_lt(s->submitted, s->cap);
        size_t n = s->submitted++;
        s->inflight++;
        evdb_value v = evdb_int(i);
        evdb_query_opts o = {.timeout = patient(2)};
        evdb_future *q = evdb_pool_query(s->pool, s->b->param_sql, &v, 1, &o);
        ck_assert_ptr_nonnull(q);
        int st = evdb_await(q);
        job *j = calloc(1, sizeof *j);
        ck_assert_ptr_nonnull(j);
        j->s = s;
        j->n = n;
        j->k = K_TASK;
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
    if (evdb_future_status(f) == 0)
        s->kills_done++;
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
        s->kills_sent++;
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
    s->faults[what % F_COUNT]++;
    switch ((fault_kind)(what % F_COUNT)) {
    case F_KILL: /* an administrator kills a session */
        s->killing++;
        evdb_future *f = evdb_conn_query(s->admin, s->b->kill_victim_sql, NULL, 0, NULL);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(evdb_future_on_done(f, on_victim, s), 0);
        break;
    case F_RESET:
        evdb_fp_reset_all(s->fp);
        break;
    case F_STALL:
        ck_assert_int_eq(evdb_fp_set(s->fp, EVDB_FP_STALL, 0), 0);
        t_run_for(L, 0.15);
        ck_assert_int_eq(evdb_fp_set(s->fp, EVDB_FP_PASS, 0), 0);
        break;
    case F_DROP:
        ck_assert_int_eq(evdb_fp_set(s->fp, EVDB_FP_DROP_RST, 400), 0);
        t_run_for(L, 0.05);
        ck_assert_int_eq(evdb_fp_set(s->fp, EVDB_FP_PASS, 0), 0);
        break;
    case F_QUIET:
    case F_COUNT:
        break;
    }
}

/* ---- pauses and the memory curve ---- */

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

/* The process's peak resident memory (VmHWM), 0 if unknown. */
static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* One point of the curve: taken at a pause, when all work has drained. */
typedef struct sample {
    double t;    /* seconds since the workload started */
    size_t jobs; /* completed, both backends */
    size_t ok, failed, wrong;
    size_t live; /* evdb's live allocations */
    long rss, peak;
} sample;

/* Stop submitting, let everything in flight complete, and sample. */
static void quiesce(side *sides, size_t n, double t0, sample *out)
{
    for (size_t i = 0; i < n; i++)
        sides[i].pause = true;
    double until = t_now() + patient(30);
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
    memset(out, 0, sizeof *out);
    out->t = t_now() - t0;
    for (size_t i = 0; i < n; i++) {
        out->jobs += sides[i].completed;
        out->ok += sides[i].ok;
        out->failed += sides[i].expected_fail + sides[i].other;
        out->wrong += sides[i].wrong;
    }
    out->live = evdb__alloc_live();
    out->rss = rss_kb();
    out->peak = peak_rss_kb();
    for (size_t i = 0; i < n; i++)
        sides[i].pause = false;
}

static void record(FILE *curve, const sample *p)
{
    if (curve) {
        fprintf(curve, "%.1f,%zu,%zu,%zu,%zu,%zu,%ld,%ld\n", p->t, p->jobs, p->ok, p->failed,
                p->wrong, p->live, p->rss, p->peak);
        fflush(curve);
    }
    if (C.verbose)
        fprintf(stderr,
                "soak %7.1f s: %zu jobs (%zu ok, %zu failed, %zu wrong); live allocations %zu, "
                "rss %ld kB, peak %ld kB\n",
                p->t, p->jobs, p->ok, p->failed, p->wrong, p->live, p->rss, p->peak);
}

/* What the curve did after the warm-up (the first pause): its range and
 * the least-squares slope of resident memory against jobs completed. */
typedef struct trend {
    size_t n;
    double sx, sy, sxx, sxy;
    long rss_min, rss_max;
    size_t live_max;
} trend;

static void trend_add(trend *tr, const sample *p)
{
    double x = (double)p->jobs, y = (double)p->rss;
    if (tr->n == 0 || p->rss < tr->rss_min)
        tr->rss_min = p->rss;
    if (tr->n == 0 || p->rss > tr->rss_max)
        tr->rss_max = p->rss;
    if (p->live > tr->live_max)
        tr->live_max = p->live;
    tr->n++;
    tr->sx += x;
    tr->sy += y;
    tr->sxx += x * x;
    tr->sxy += x * y;
}

/* kB per 100,000 jobs; 0 with fewer than two points. */
static double trend_slope(const trend *tr)
{
    double d = tr->n * tr->sxx - tr->sx * tr->sx;
    if (tr->n < 2 || d <= 0)
        return 0;
    return (tr->n * tr->sxy - tr->sx * tr->sy) / d * 100000.0;
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
    evdb_pool_opts po = {.min_conns = 2,
                         .max_conns = 6,
                         .backoff_initial = 0.02,
                         .backoff_max = 0.2,
                         .connect_timeout = patient(2),
                         .acquire_timeout = patient(3)};
    s->pool = evdb_pool_new(L, s->url, &po);
    ck_assert_ptr_nonnull(s->pool);
    /* A backend may do nearly all the jobs of a queries-run. */
    if (C.queries)
        s->cap = C.queries + BOOK_MARGIN;
    else
        s->cap = (size_t)(C.seconds * BOOK_JOBS_PER_SECOND) + BOOK_MARGIN;
    s->calls = malloc(s->cap);
    ck_assert_ptr_nonnull(s->calls);
    memset(s->calls, 0, s->cap); /* resident from the start */
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

/* ---- the audit and the summary ---- */

/* Every committed transaction is in the table exactly once (its key is
 * the primary key); one whose COMMIT answer was lost may be there too. */
static void audit_table(side *s)
{
    evdb_future *f = evdb_conn_query(s->admin, "SELECT k FROM evdb_soak ORDER BY k", NULL, 0, NULL);
    ck_assert_msg(t_wait(f) == 0, "[%s] reading the table: %s", s->b->name,
                  evdb_error_message(evdb_future_error(f)));
    const evdb_result *r = evdb_future_result(f);
    size_t rows = evdb_result_nrows(r);
    int64_t *keys = malloc((rows + 1) * sizeof *keys);
    ck_assert_ptr_nonnull(keys);
    for (size_t k = 0; k < rows; k++)
        if (evdb_result_int(r, k, 0, &keys[k]) != 0)
            ck_abort_msg("[%s] row %zu of the table is not an integer", s->b->name, k);
    evdb_future_unref(f);
    ck_assert_uint_ge(rows, s->commits);
    for (size_t n = 0; n < s->submitted; n++) {
        if (!(s->calls[n] & CALLS_COMMITTED))
            continue;
        /* keys[] ascends: a binary search for the key. */
        int64_t want = job_x(s, n);
        size_t lo = 0, hi = rows;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (keys[mid] < want)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo >= rows || keys[lo] != want)
            ck_abort_msg("[%s] a committed transaction (key %lld) is not in the table", s->b->name,
                         (long long)want);
    }
    free(keys);
    f = evdb_conn_query(s->admin, "DROP TABLE evdb_soak", NULL, 0, NULL);
    ck_assert_msg(t_wait(f) == 0, "[%s] DROP TABLE: %s", s->b->name,
                  evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
}

/* Append ", NAME count" for each non-zero bucket of the explained codes. */
static void append_failures(char *buf, size_t size, const size_t *counts)
{
    const char *sep = "";
    for (size_t i = 0; i < N_EXPLAINED; i++) {
        if (!counts[1 + i])
            continue;
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s%s %zu", sep, evdb_err_name(explained_codes[i]),
                 counts[1 + i]);
        sep = ", ";
    }
}

static void print_details(const side *sides, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const side *s = &sides[i];
        fprintf(stderr,
                "[%s] %zu jobs: %zu ok, %zu failed as the faults explain, %zu wrong, %zu other; "
                "%zu transactions committed; faults:",
                s->b->name, s->submitted, s->ok, s->expected_fail, s->wrong, s->other, s->commits);
        for (int k = 0; k < F_COUNT; k++)
            fprintf(stderr, " %zu %s", s->faults[k], fault_names[k]);
        fprintf(stderr, " (%zu kills sent, %zu succeeded)\n", s->kills_sent, s->kills_done);
        for (int k = 0; k < K_COUNT; k++) {
            char buf[512] = "";
            append_failures(buf, sizeof buf, s->outcomes[k]);
            fprintf(stderr, "[%s]   %-6s %8zu ok, %zu wrong, %zu other; failed: %s\n", s->b->name,
                    kind_names[k], s->outcomes[k][B_OK], s->outcomes[k][B_WRONG],
                    s->outcomes[k][B_OTHER], buf[0] ? buf : "none");
        }
    }
}

/* Two lines, every run: outcomes and faults; memory. */
static void print_summary(const side *sides, size_t n, const sample *warm, const sample *end,
                          const trend *tr)
{
    size_t totals[N_BUCKETS] = {0}, faults[F_COUNT] = {0};
    size_t jobs = 0, statements = 0, kills = 0;
    for (size_t i = 0; i < n; i++) {
        jobs += sides[i].completed;
        kills += sides[i].kills_done;
        for (int k = 0; k < F_COUNT; k++)
            faults[k] += sides[i].faults[k];
        for (int k = 0; k < K_COUNT; k++)
            for (size_t b = 0; b < N_BUCKETS; b++) {
                totals[b] += sides[i].outcomes[k][b];
                if (b == B_OK)
                    statements += sides[i].outcomes[k][b] * kind_statements[k];
            }
    }
    char failures[512] = "";
    append_failures(failures, sizeof failures, totals);
    size_t failed = 0;
    for (size_t i = 0; i < N_EXPLAINED; i++)
        failed += totals[1 + i];
    fprintf(stderr,
            "soak: %zu jobs in %.1f s (%.0f/s; %zu statements in the ok ones): %zu ok, %zu failed "
            "as the faults explain (%s), %zu wrong, %zu other; faults: %zu kills (%zu tried), "
            "%zu resets, %zu stalls, %zu drops\n",
            jobs, end->t, end->t > 0 ? jobs / end->t : 0.0, statements, totals[B_OK], failed,
            failures[0] ? failures : "none", totals[B_WRONG], totals[B_OTHER], kills,
            faults[F_KILL], faults[F_RESET], faults[F_STALL], faults[F_DROP]);
    if (warm)
        fprintf(stderr,
                "soak: memory: live allocations %zu at warm-up (%.1f s), %zu at the end, at most "
                "%zu; rss %ld kB at warm-up, %ld kB at the end, %ld..%ld kB after warm-up "
                "(slope %+.1f kB per 100k jobs over %zu pauses), peak %ld kB%s\n",
                warm->live, warm->t, end->live, tr->live_max, warm->rss, end->rss, tr->rss_min,
                tr->rss_max, trend_slope(tr), tr->n, end->peak,
                C.valgrind ? " (valgrind: rss not asserted)" : "");
    else
        fprintf(stderr, "soak: memory: live allocations %zu, rss %ld kB, peak %ld kB (no pause)\n",
                end->live, end->rss, end->peak);
}

/* ---- the test ---- */

static void read_config(void)
{
    memset(&C, 0, sizeof C);
    const char *q = getenv("EVDB_SOAK_QUERIES");
    const char *e = getenv("EVDB_SOAK_SECONDS");
    double seconds = e ? atof(e) : 0;
    if (q && atof(q) >= 1) {
        C.queries = (size_t)atof(q); /* accepts 1e6 */
        C.seconds = seconds > 0 ? seconds : DEFAULT_CAP_SECONDS;
    } else {
        C.seconds = seconds > 0 ? seconds : DEFAULT_SECONDS;
    }
    e = getenv("EVDB_SOAK_VALGRIND");
    C.valgrind = e && atoi(e) > 0;
#if HAVE_VALGRIND_H
    C.valgrind |= RUNNING_ON_VALGRIND != 0;
#endif
    C.scale = C.valgrind ? VALGRIND_SCALE : 1.0;
    e = getenv("EVDB_SOAK_VERBOSE");
    C.verbose = e && atoi(e) > 0;
    e = getenv("EVDB_SOAK_CURVE");
    C.curve = e && *e ? e : NULL;
}

START_TEST(soak_both_backends_with_faults)
{
    read_config();
    L = t_loop_new(C.seconds + patient(SUITE_TIMEOUT_EXTRA_S));
    FILE *curve = NULL;
    if (C.curve) {
        curve = fopen(C.curve, "w");
        ck_assert_msg(curve != NULL, "cannot write %s", C.curve);
        fprintf(curve, "seconds,jobs,ok,failed,wrong,live_allocs,rss_kb,peak_rss_kb\n");
    }
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

    /* Warm-up is the first pause; the second may still be settling, so
     * the allocation bound takes the larger of the two. */
    sample warm[2], p;
    trend tr;
    memset(&tr, 0, sizeof tr);
    size_t pauses = 0;
    unsigned fault = 0;
    bool capped = false, full = false;
    double t0 = t_now(), next_pause = t0 + PAUSE_EVERY_S;
    for (;;) {
        double elapsed = t_now() - t0;
        if (C.queries) {
            if (sides[0].completed + sides[1].completed >= C.queries)
                break;
            if (elapsed >= C.seconds) {
                capped = true;
                break;
            }
        } else if (elapsed >= C.seconds) {
            break;
        }
        if (sides[0].submitted + BOOK_MARGIN / 2 >= sides[0].cap ||
            sides[1].submitted + BOOK_MARGIN / 2 >= sides[1].cap) {
            full = true;
            break;
        }
        t_run_for(L, 0.25);
        for (int i = 0; i < 2; i++)
            inject(&sides[i], fault + (unsigned)i * 3);
        fault++;
        if (t_now() >= next_pause) {
            quiesce(sides, 2, t0, &p);
            record(curve, &p);
            if (pauses < 2)
                warm[pauses] = p;
            if (pauses >= 1)
                trend_add(&tr, &p);
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
    double until = t_now() + patient(10);
    t_run_for(L, 0.5);
    while ((sides[0].ok_mark < 50 || sides[1].ok_mark < 50) && t_now() < until)
        t_run_for(L, 0.1);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(sides[i].ok_mark >= 50, "[%s] no recovery at the end", sides[i].b->name);
    sample end;
    quiesce(sides, 2, t0, &end);
    record(curve, &end);
    if (pauses >= 1)
        trend_add(&tr, &end);
    if (curve)
        fclose(curve);
    for (int i = 0; i < 2; i++)
        sides[i].stop = true;
    until = t_now() + patient(10);
    while ((sides[0].tasks_running || sides[1].tasks_running) && t_now() < until)
        t_run_for(L, 0.02);
    for (size_t t = 0; t < ntasks; t++) {
        ck_assert_int_eq(evdb_future_status(tasks[t]), 0);
        evdb_future_unref(tasks[t]);
    }

    if (C.verbose)
        print_details(sides, 2);
    if (full)
        fprintf(stderr, "soak: the per-job bookkeeping is full; the run ended early\n");
    print_summary(sides, 2, pauses ? &warm[0] : NULL, &end, &tr);

    /* The audit. */
    for (int i = 0; i < 2; i++) {
        side *s = &sides[i];
        ck_assert_uint_eq(s->completed, s->submitted);
        /* Plain comparisons: a Check assertion per job would cost a write
         * to Check's pipe each in fork mode. */
        size_t bad = s->submitted;
        for (size_t n = 0; n < s->submitted && bad == s->submitted; n++)
            if ((s->calls[n] & CALLS_MASK) != 1)
                bad = n;
        ck_assert_msg(bad == s->submitted, "[%s] job %zu completed %d times", s->b->name, bad,
                      bad < s->submitted ? s->calls[bad] & CALLS_MASK : 0);
        ck_assert_uint_eq(s->ok + s->expected_fail + s->wrong + s->other, s->submitted);
        ck_assert_uint_eq(s->wrong, 0);
        ck_assert_uint_eq(s->other, 0);
        ck_assert_uint_gt(s->ok, C.valgrind ? MIN_OK_VALGRIND : MIN_OK);
        audit_table(s);
    }
    ck_assert_msg(!capped, "the %.0f-second cap came before %zu jobs (%zu done)", C.seconds,
                  C.queries, sides[0].completed + sides[1].completed);
    /* Flat memory after the warm-up (the first pause). */
    if (pauses >= 2) {
        size_t base = warm[1].live > warm[0].live ? warm[1].live : warm[0].live;
        ck_assert_msg(end.live <= base + ALLOC_SLACK, "live allocations grew from %zu to %zu", base,
                      end.live);
        if (!T_UNDER_ASAN && !C.valgrind)
            ck_assert_msg(end.rss <= warm[0].rss + RSS_SLACK_KB,
                          "resident memory grew from %ld to %ld kB", warm[0].rss, end.rss);
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
    read_config();
    tcase_set_timeout(tc, C.seconds + patient(SUITE_TIMEOUT_EXTRA_S));
    tcase_add_test(tc, soak_both_backends_with_faults);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
