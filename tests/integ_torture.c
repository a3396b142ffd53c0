/*
 * Allocation-failure torture against both real servers (scripts/testdb).
 *
 * A representative scenario (connect, a query with parameters, pipelined
 * queries, a query timeout with its server-side cancel, close; a pool with
 * gathered queries, an exclusive acquire, a timeout combinator, close)
 * runs once with every allocation counted (N of them), then N more times
 * in-process, each on a fresh loop, with allocation k failing (k = 1..N).
 * A second scenario does the same for the result-size cap
 * (max_result_bytes): a connection and a pool with a small cap run
 * results that fit under it (several rows, read one at a time) and results
 * past it (EVDB_ETOOBIG), as plain queries, with a parameter (a prepared
 * statement on MariaDB), as several statements in one string and
 * pipelined (queued on MariaDB). Both modes, for both scenarios:
 *
 *   only   just allocation k fails; the run goes on normally afterwards
 *   from   allocation k and every later one fail, to the end of the
 *          scenario (closing needs no memory)
 *
 * Every run must fail cleanly: calls return NULL with EVDB_ENOMEM (or
 * another clear error), futures complete exactly once, nothing crashes or
 * hangs (a per-run watchdog), and after the cleanup nothing is left:
 * no future, no loop state, no active watcher, no allocation (and ASan's
 * leak check at exit). The client libraries allocate with their own
 * malloc, so only evdb's allocations are tortured. The count varies a
 * little from run to run (it depends on how the server's answers are
 * split into reads), so k runs a little past the count.
 *
 * Debugging: TORTURE_VERBOSE=1 prints every failed step and the stack of
 * the failing allocation; TORTURE_ONLY=k runs only k, TORTURE_FROM=k
 * starts at k; CK_RUN_CASE=allocation_failures or result_cap runs one
 * scenario.
 */
#include <check.h>
#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "internal.h"
#include "testenv.h"
#include "testutil.h"

/* ---- the failing allocator ---- */

static size_t fail_k;  /* 0: never fail */
static bool fail_from; /* k and every later one */
static size_t alloc_count;

static bool fail_now(void)
{
    alloc_count++;
    if (!fail_k)
        return false;
    bool fail = fail_from ? alloc_count >= fail_k : alloc_count == fail_k;
    if (fail && alloc_count == fail_k && getenv("TORTURE_VERBOSE")) {
        void *bt[16];
        int n = backtrace(bt, 16);
        fprintf(stderr, "---- allocation %zu fails here:\n", alloc_count);
        backtrace_symbols_fd(bt, n, 2);
    }
    return fail;
}

static void *t_malloc(size_t n)
{
    return fail_now() ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : realloc(p, n);
}

/* Start counting (k 0) or failing from now. */
static void alloc_set(size_t k, bool from)
{
    fail_k = k;
    fail_from = from;
    alloc_count = 0;
    evdb_set_allocators(t_malloc, t_realloc, free);
}

/* Stop failing (keeps counting): the checks after a run allocate. */
static void alloc_stop(void)
{
    fail_k = 0;
}

/* A run that takes longer than this hangs. */
#define RUN_LIMIT_S 20.0
/* The whole suite of runs of one mode and backend. */
#define TEST_TIMEOUT_S 280
/* Runs past the counted allocations (the count varies a little). */
#define COUNT_SLACK 4
/* Timeouts inside the scenario: short, so that runs are quick. */
#define SHORT_TIMEOUT_S 0.03

/* The result-size cap of the cap scenario, in bytes. Its results have
 * CAP_ROWS rows of (n, text): with 10 or 20 bytes of text they fit under
 * it (well under 2 KiB stored), with 500 bytes (10 times CAP_BIG_PAD) they
 * do not (about 10 KiB). */
#define CAP_BYTES 4096
#define CAP_ROWS 20
#define CAP_FIT_PAD "x"
#define CAP_BIG_PAD "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
/* The cap scenario's pool waits this long for a connection: when every
 * allocation from k on fails, its connections never open and each such
 * run waits this out (the pool's connects take milliseconds otherwise). */
#define CAP_ACQUIRE_TIMEOUT_S 0.5

typedef struct backend {
    const char *name;
    const char *(*url)(void);
    const char *param_sql; /* (int, text, bytes) -> (int + 1, text, bytes) */
    const char *sleep_sql;
    /* The cap scenario's queries, each of CAP_ROWS rows (n, text):
     * text of 20 bytes, under the cap... */
    const char *fit_sql;
    /* ...text of 500 bytes, past it... */
    const char *big_sql;
    /* ...the parameter 10 times (a prepared statement on MariaDB): the
     * same statement for a result under the cap and one past it... */
    const char *pad_sql;
    /* ...and two statements in one string, the second like fit_sql or
     * big_sql. */
    const char *multi_fit_sql;
    const char *multi_big_sql;
} backend;

/* The SQL below spells these out: CAP_ROWS rows, FIT_TEXT_LEN bytes of
 * text in fit_sql, the parameter PAD_REPEAT times in pad_sql. */
#define PG_ROWS "FROM generate_series(1, 20) g"
#define MY_ROWS "FROM seq_1_to_20"
_Static_assert(CAP_ROWS == 20, "the SQL below makes 20 rows");
#define FIT_TEXT_LEN 20
#define PAD_REPEAT 10

static const backend backends[2] = {
    {"postgres", evdb_test_pg_url, "SELECT $1::bigint + 1, $2::text, $3::bytea",
     "SELECT pg_sleep(0.3)", "SELECT g, repeat('x', 20) " PG_ROWS,
     "SELECT g, repeat('x', 500) " PG_ROWS, "SELECT g, repeat($1, 10) " PG_ROWS,
     "SELECT 1; SELECT g, repeat('x', 20) " PG_ROWS,
     "SELECT 1; SELECT g, repeat('x', 500) " PG_ROWS},
    {"mariadb", evdb_test_my_url, "SELECT ? + 1, ?, ?", "SELECT SLEEP(0.3)",
     "SELECT seq, REPEAT('x', 20) " MY_ROWS, "SELECT seq, REPEAT('x', 500) " MY_ROWS,
     "SELECT seq, REPEAT(?, 10) " MY_ROWS, "SELECT 1; SELECT seq, REPEAT('x', 20) " MY_ROWS,
     "SELECT 1; SELECT seq, REPEAT('x', 500) " MY_ROWS},
};

/* What one run saw. */
typedef struct run {
    const backend *b;
    struct ev_loop *L;
    size_t k;  /* the failing allocation, 0 for none */
    bool from; /* every allocation from k on fails */
    unsigned ok, failed, enomem;
    bool all_ok;     /* every step succeeded */
    int first_error; /* the first failure's code */
} run;

static run *R;
static ev_timer watchdog;

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    ck_abort_msg("%s: run with allocation %zu failing (%s) did not finish within %g s", R->b->name,
                 R->k, R->from ? "and later ones" : "only", RUN_LIMIT_S);
}

/* Record an outcome: 0, or a negative code that must be a known one. */
static void outcome(run *r, int code, const char *what)
{
    if (code == 0) {
        r->ok++;
        return;
    }
    ck_assert_msg(code < 0 && strcmp(evdb_err_name(code), "EVDB_UNKNOWN") != 0,
                  "%s: k=%zu: %s gave code %d", r->b->name, r->k, what, code);
    r->failed++;
    r->all_ok = false;
    if (getenv("TORTURE_VERBOSE"))
        fprintf(stderr, "%s k=%zu%s: %s: %s: %s\n", r->b->name, r->k, r->from ? " on" : "", what,
                evdb_err_name(code), evdb_error_message(evdb_last_error()));
    if (!r->first_error)
        r->first_error = code;
    if (code == EVDB_ENOMEM)
        r->enomem++;
}

/* A call that may return NULL: then the error must be clear. */
static bool made(run *r, const void *obj, const char *what)
{
    if (obj)
        return true;
    const evdb_error *e = evdb_last_error();
    ck_assert_msg(evdb_error_code(e) < 0, "%s: k=%zu: %s returned NULL without an error",
                  r->b->name, r->k, what);
    ck_assert_msg(evdb_error_message(e)[0] != '\0', "%s: k=%zu: %s: empty message", r->b->name,
                  r->k, what);
    outcome(r, evdb_error_code(e), what);
    return false;
}

/* Counts a future's callbacks: exactly once. */
typedef struct once {
    int calls;
} once;

static void on_once(evdb_future *f, void *arg)
{
    (void)f;
    ((once *)arg)->calls++;
}

/* Wait for f (bounded by the watchdog), check it completed exactly once
 * where a callback could be registered, record the outcome (expected
 * counts as success). Returns the status; f is kept. */
static int settle_expect(run *r, evdb_future *f, const char *what, int expected)
{
    once o = {0};
    bool watched = evdb_future_on_done(f, on_once, &o) == 0;
    int st = evdb_future_wait(f);
    ck_assert_msg(st != EVDB_PENDING && st != EVDB_ESTATE && st != EVDB_EINCALLBACK,
                  "%s: k=%zu: %s: wait gave %s", r->b->name, r->k, what, evdb_err_name(st));
    if (watched)
        ck_assert_msg(o.calls == 1, "%s: k=%zu: %s: %d callbacks", r->b->name, r->k, what, o.calls);
    if (st != 0)
        ck_assert_msg(evdb_error_message(evdb_future_error(f))[0] != '\0',
                      "%s: k=%zu: %s failed without a message", r->b->name, r->k, what);
    outcome(r, st == expected ? 0 : st, what);
    return st;
}

static int settle(run *r, evdb_future *f, const char *what)
{
    return settle_expect(r, f, what, 0);
}

/* Closing needs no memory: the close future is made with the object, so
 * a connection or pool can always be closed, also out of memory. */
static evdb_future *close_conn(run *r, evdb_conn *c)
{
    evdb_future *f = evdb_conn_close(c);
    ck_assert_msg(f != NULL, "%s: k=%zu: evdb_conn_close failed: %s", r->b->name, r->k,
                  evdb_error_message(evdb_last_error()));
    return f;
}

/* What a query that should time out may end with when memory runs out
 * around it: its own timeout, the allocation failure, its connection
 * dropped by a driver that ran out of memory in the middle of the
 * protocol (EVDB_ECONNLOST: the query may have run), or no connection. */
static bool timeout_like(int st)
{
    return st == EVDB_ETIMEDOUT || st == EVDB_ENOMEM || st == EVDB_ECONNLOST ||
           st == EVDB_ECONNECT || st == EVDB_EPOOLTIMEOUT;
}

static void check_param_result(run *r, evdb_future *f)
{
    const evdb_result *res = evdb_future_result(f);
    int64_t v = 0;
    ck_assert_int_eq(evdb_result_int(res, 0, 0, &v), 0);
    ck_assert_int_eq(v, 42);
    ck_assert_str_eq(evdb_result_text(res, 0, 1, NULL), "caf\xc3\xa9");
    size_t n = 0;
    const void *p = evdb_result_bytes(res, 0, 2, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(p, "\0\1\2", 3), 0);
    (void)r;
}

static void conn_part(run *r)
{
    const backend *b = r->b;
    evdb_conn_opts co = {.connect_timeout = 5};
    evdb_future *of = evdb_conn_open(r->L, b->url(), &co);
    if (!made(r, of, "evdb_conn_open"))
        return;
    int st = settle(r, of, "connect");
    evdb_conn *c = st == 0 ? evdb_future_take_conn(of) : NULL;
    evdb_future_unref(of);
    if (!c)
        return;

    evdb_value p[3] = {evdb_int(41), evdb_text("caf\xc3\xa9"), evdb_bytes("\0\1\2", 3)};
    evdb_query_opts qo = {.timeout = 5};
    evdb_future *q = evdb_conn_query(c, b->param_sql, p, 3, &qo);
    if (made(r, q, "evdb_conn_query")) {
        if (settle(r, q, "query with parameters") == 0)
            check_param_result(r, q);
        evdb_future_unref(q);
    }

    /* Two at once (pipelined on PostgreSQL), gathered. */
    evdb_future *fs[2] = {evdb_conn_query(c, "SELECT 1", NULL, 0, NULL),
                          evdb_conn_query(c, b->param_sql, p, 3, NULL)};
    bool both = made(r, fs[0], "query 1 of 2");
    both = made(r, fs[1], "query 2 of 2") && both;
    if (both) {
        evdb_future *g = evdb_gather(fs, 2, EVDB_GATHER_ALL);
        if (made(r, g, "evdb_gather")) {
            settle(r, g, "gather");
            evdb_future_unref(g);
        }
    }
    for (int i = 0; i < 2; i++) {
        if (fs[i]) {
            settle(r, fs[i], "gathered query");
            evdb_future_unref(fs[i]);
        }
    }

    /* A query timeout, with the cancel on the server. */
    evdb_query_opts to = {.timeout = SHORT_TIMEOUT_S};
    q = evdb_conn_query(c, b->sleep_sql, NULL, 0, &to);
    if (made(r, q, "query with a timeout")) {
        st = settle_expect(r, q, "timed-out query", EVDB_ETIMEDOUT);
        ck_assert_msg(timeout_like(st), "%s: k=%zu: timeout gave %s", b->name, r->k,
                      evdb_err_name(st));
        evdb_future_unref(q);
    }
    /* The next query waits for the cancel to settle. */
    q = evdb_conn_query(c, "SELECT 2", NULL, 0, &qo);
    if (made(r, q, "query after the timeout")) {
        settle(r, q, "query after the timeout");
        evdb_future_unref(q);
    }

    evdb_future *cf = close_conn(r, c);
    settle(r, cf, "close");
    evdb_future_unref(cf);
}

static evdb_future *close_pool(run *r, evdb_pool *p)
{
    evdb_future *f = evdb_pool_close(p);
    ck_assert_msg(f != NULL, "%s: k=%zu: evdb_pool_close failed: %s", r->b->name, r->k,
                  evdb_error_message(evdb_last_error()));
    return f;
}

static void pool_part(run *r)
{
    const backend *b = r->b;
    evdb_pool_opts po = {.max_conns = 2,
                         .acquire_timeout = 3,
                         .connect_timeout = 3,
                         .backoff_initial = 0.01,
                         .backoff_max = 0.05};
    evdb_pool *p = evdb_pool_new(r->L, b->url(), &po);
    if (!made(r, p, "evdb_pool_new"))
        return;
    evdb_value v[3] = {evdb_int(41), evdb_text("caf\xc3\xa9"), evdb_bytes("\0\1\2", 3)};
    enum { NQ = 3 };
    evdb_future *fs[NQ];
    bool all = true;
    for (int i = 0; i < NQ; i++) {
        fs[i] = evdb_pool_query(p, b->param_sql, v, 3, NULL);
        all &= made(r, fs[i], "evdb_pool_query");
    }
    if (all) {
        evdb_future *g = evdb_gather(fs, NQ, EVDB_GATHER_ALL);
        if (made(r, g, "evdb_gather of pool queries")) {
            settle(r, g, "pool gather");
            evdb_future_unref(g);
        }
    }
    for (int i = 0; i < NQ; i++) {
        if (!fs[i])
            continue;
        if (settle(r, fs[i], "pool query") == 0)
            check_param_result(r, fs[i]);
        evdb_future_unref(fs[i]);
    }

    /* Borrow a connection, use it, give it back. */
    evdb_future *a = evdb_pool_acquire(p, 3);
    if (made(r, a, "evdb_pool_acquire")) {
        evdb_conn *c = settle(r, a, "acquire") == 0 ? evdb_future_take_conn(a) : NULL;
        if (c) {
            evdb_future *q = evdb_conn_query(c, "SELECT 3", NULL, 0, NULL);
            if (made(r, q, "query on a borrowed connection")) {
                settle(r, q, "query on a borrowed connection");
                evdb_future_unref(q);
            }
            ck_assert_int_eq(evdb_conn_release(c), 0);
        }
        evdb_future_unref(a);
    }

    /* The timeout combinator around a slow pooled query. */
    evdb_future *slow = evdb_pool_query(p, b->sleep_sql, NULL, 0, NULL);
    if (made(r, slow, "slow pool query")) {
        evdb_future *t = evdb_timeout(slow, SHORT_TIMEOUT_S);
        if (made(r, t, "evdb_timeout")) {
            int st = settle_expect(r, t, "evdb_timeout", EVDB_ETIMEDOUT);
            ck_assert_msg(timeout_like(st), "%s: k=%zu: timeout combinator gave %s", b->name, r->k,
                          evdb_err_name(st));
            evdb_future_unref(t);
        } else {
            evdb_future_cancel(slow);
        }
        settle_expect(r, slow, "slow pool query", EVDB_ECANCELED);
        evdb_future_unref(slow);
    }

    evdb_future *cf = close_pool(r, p);
    settle(r, cf, "pool close");
    evdb_future_unref(cf);
}

/* ---- the cap scenario ---- */

/* A query of the cap scenario: a result that fits (expected 0) must
 * never be called too big, one past the cap (expected EVDB_ETOOBIG) must
 * never succeed, whatever allocation failed. A result that fits is
 * checked: CAP_ROWS rows of (n, pad_len bytes of 'x'). */
static void settle_cap(run *r, evdb_future *f, const char *what, int expected, size_t pad_len)
{
    int st = settle_expect(r, f, what, expected);
    if (expected == 0) {
        ck_assert_msg(st != EVDB_ETOOBIG, "%s: k=%zu%s: %s: a result under the cap was too big",
                      r->b->name, r->k, r->from ? " on" : "", what);
    } else {
        ck_assert_msg(st != 0, "%s: k=%zu%s: %s: a result past the cap was accepted", r->b->name,
                      r->k, r->from ? " on" : "", what);
    }
    if (st != 0)
        return;
    const evdb_result *res = evdb_future_result(f);
    while (evdb_result_next(res))
        res = evdb_result_next(res); /* several statements: the last one */
    ck_assert_uint_eq(evdb_result_nrows(res), CAP_ROWS);
    for (size_t i = 0; i < CAP_ROWS; i++) {
        int64_t n = 0;
        ck_assert_int_eq(evdb_result_int(res, i, 0, &n), 0);
        ck_assert_int_eq(n, (int64_t)i + 1);
        size_t len = 0;
        const char *t = evdb_result_text(res, i, 1, &len);
        ck_assert_uint_eq(len, pad_len);
        ck_assert_msg(strspn(t, "x") == pad_len, "%s: %s: row %zu: wrong text", r->b->name, what,
                      i);
    }
}

/* Submit with c or p (one of them), settle, check, unref. */
static void cap_query(run *r, evdb_conn *c, evdb_pool *p, const char *sql, const char *pad,
                      int expected, size_t pad_len, const char *what)
{
    evdb_value v = pad ? evdb_text(pad) : evdb_null();
    size_t nv = pad ? 1 : 0;
    evdb_future *f =
        c ? evdb_conn_query(c, sql, &v, nv, NULL) : evdb_pool_query(p, sql, &v, nv, NULL);
    if (!made(r, f, what))
        return;
    settle_cap(r, f, what, expected, pad_len);
    evdb_future_unref(f);
}

/* The text of pad_sql's rows for a parameter pad (a string literal). */
#define PAD_LEN(pad) (PAD_REPEAT * (sizeof(pad) - 1))

static void cap_conn_part(run *r)
{
    const backend *b = r->b;
    evdb_conn_opts co = {.connect_timeout = 5, .max_result_bytes = CAP_BYTES};
    evdb_future *of = evdb_conn_open(r->L, b->url(), &co);
    if (!made(r, of, "evdb_conn_open with a cap"))
        return;
    evdb_conn *c = settle(r, of, "connect with a cap") == 0 ? evdb_future_take_conn(of) : NULL;
    evdb_future_unref(of);
    if (!c)
        return;

    /* One at a time: text protocol, then a statement with a parameter
     * (the same one for both sizes: cached on the second use), then
     * several statements whose results count together. */
    cap_query(r, c, NULL, b->fit_sql, NULL, 0, FIT_TEXT_LEN, "query under the cap");
    cap_query(r, c, NULL, b->big_sql, NULL, EVDB_ETOOBIG, 0, "query past the cap");
    cap_query(r, c, NULL, b->pad_sql, CAP_FIT_PAD, 0, PAD_LEN(CAP_FIT_PAD),
              "parameter query under the cap");
    cap_query(r, c, NULL, b->pad_sql, CAP_BIG_PAD, EVDB_ETOOBIG, 0, "parameter query past the cap");
    cap_query(r, c, NULL, b->multi_fit_sql, NULL, 0, FIT_TEXT_LEN, "statements under the cap");
    cap_query(r, c, NULL, b->multi_big_sql, NULL, EVDB_ETOOBIG, 0, "statements past the cap");

    /* Three at once (pipelined on PostgreSQL): the one past the cap in
     * the middle, its rows dropped while the next one waits. */
    evdb_value fit = evdb_text(CAP_FIT_PAD);
    enum { NQ = 3 };
    evdb_future *fs[NQ] = {evdb_conn_query(c, b->pad_sql, &fit, 1, NULL),
                           evdb_conn_query(c, b->big_sql, NULL, 0, NULL),
                           evdb_conn_query(c, b->fit_sql, NULL, 0, NULL)};
    static const char *const what[NQ] = {"pipelined query under the cap",
                                         "pipelined query past the cap",
                                         "pipelined query after one past the cap"};
    static const int expected[NQ] = {0, EVDB_ETOOBIG, 0};
    static const size_t pad_len[NQ] = {PAD_LEN(CAP_FIT_PAD), 0, FIT_TEXT_LEN};
    for (int i = 0; i < NQ; i++) {
        if (made(r, fs[i], what[i])) {
            settle_cap(r, fs[i], what[i], expected[i], pad_len[i]);
            evdb_future_unref(fs[i]);
        }
    }

    evdb_future *cf = close_conn(r, c);
    settle(r, cf, "close with a cap");
    evdb_future_unref(cf);
}

static void cap_pool_part(run *r)
{
    const backend *b = r->b;
    evdb_pool_opts po = {.max_conns = 2,
                         .acquire_timeout = CAP_ACQUIRE_TIMEOUT_S,
                         .connect_timeout = 3,
                         .backoff_initial = 0.01,
                         .backoff_max = 0.05,
                         .max_result_bytes = CAP_BYTES};
    evdb_pool *p = evdb_pool_new(r->L, b->url(), &po);
    if (!made(r, p, "evdb_pool_new with a cap"))
        return;
    /* Submitted together: spread over the pool's connections. */
    evdb_value fit = evdb_text(CAP_FIT_PAD), big = evdb_text(CAP_BIG_PAD);
    enum { NQ = 4 };
    evdb_future *fs[NQ] = {evdb_pool_query(p, b->fit_sql, NULL, 0, NULL),
                           evdb_pool_query(p, b->pad_sql, &big, 1, NULL),
                           evdb_pool_query(p, b->pad_sql, &fit, 1, NULL),
                           evdb_pool_query(p, b->big_sql, NULL, 0, NULL)};
    static const char *const what[NQ] = {
        "pool query under the cap", "pool parameter query past the cap",
        "pool parameter query under the cap", "pool query past the cap"};
    static const int expected[NQ] = {0, EVDB_ETOOBIG, 0, EVDB_ETOOBIG};
    static const size_t pad_len[NQ] = {FIT_TEXT_LEN, 0, PAD_LEN(CAP_FIT_PAD), 0};
    for (int i = 0; i < NQ; i++) {
        if (made(r, fs[i], what[i])) {
            settle_cap(r, fs[i], what[i], expected[i], pad_len[i]);
            evdb_future_unref(fs[i]);
        }
    }
    /* The connections stay usable after a result past the cap. */
    cap_query(r, NULL, p, b->fit_sql, NULL, 0, FIT_TEXT_LEN, "pool query after ones past the cap");

    evdb_future *cf = close_pool(r, p);
    settle(r, cf, "pool close with a cap");
    evdb_future_unref(cf);
}

/* ---- running a scenario ---- */

typedef struct scenario {
    const char *name;
    void (*conn_part)(run *r);
    void (*pool_part)(run *r);
} scenario;

static const scenario representative = {"representative", conn_part, pool_part};
static const scenario capped = {"result cap", cap_conn_part, cap_pool_part};

/* One run on a fresh loop; checks that nothing is left afterwards.
 * Returns the allocations counted while failing was on. */
static size_t one_run(const scenario *sc, run *r)
{
    R = r;
    r->L = ev_loop_new(EVFLAG_AUTO);
    ck_assert_ptr_nonnull(r->L);
    ev_timer_init(&watchdog, on_watchdog, RUN_LIMIT_S, 0.);
    ev_timer_start(r->L, &watchdog);
    ev_unref(r->L);
    size_t allocs_before = evdb__alloc_live();
    r->all_ok = true;
    /* Count mode (k == 0): every allocation counted, none failing. */
    alloc_set(r->k, r->from);

    double t0 = t_now();
    sc->conn_part(r);
    double t1 = t_now();
    sc->pool_part(r);
    if (getenv("TORTURE_VERBOSE"))
        fprintf(stderr, "%s k=%zu: connection part %.3f s, pool part %.3f s\n", r->b->name, r->k,
                t1 - t0, t_now() - t1);

    size_t used = alloc_count;
    alloc_stop();
    /* Let deferred work (closing sessions, last callbacks) finish. */
    t_run_for(r->L, 0.02);
    ck_assert_msg(evdb__future_live() == 0, "%s: k=%zu%s: %zu futures left", r->b->name, r->k,
                  r->from ? " on" : "", evdb__future_live());
    ck_assert_msg(evdb__loop_live() == 0, "%s: k=%zu%s: loop state left", r->b->name, r->k,
                  r->from ? " on" : "");
    ev_ref(r->L);
    ev_timer_stop(r->L, &watchdog);
    ck_assert_msg(ev_run(r->L, EVRUN_NOWAIT) == 0, "%s: k=%zu%s: watchers left", r->b->name, r->k,
                  r->from ? " on" : "");
    ck_assert_msg(evdb__alloc_live() == allocs_before, "%s: k=%zu%s: %lld allocations leaked",
                  r->b->name, r->k, r->from ? " on" : "",
                  (long long)evdb__alloc_live() - (long long)allocs_before);
    ev_loop_destroy(r->L);
    R = NULL;
    return used;
}

static void torture(const scenario *sc, const backend *b, bool from)
{
    ck_assert_msg(b->url() != NULL, "no test servers: run scripts/testdb start");
    run r0 = {.b = b};
    size_t n = one_run(sc, &r0);
    ck_assert_msg(r0.all_ok, "%s: the %s scenario fails without any fault (%s)", b->name, sc->name,
                  evdb_err_name(r0.first_error));
    ck_assert_uint_gt(n, 50);
    unsigned clean_ok = 0, with_enomem = 0;
    double t0 = t_now();
    /* A few past the count: it varies a little from run to run. */
    size_t k0 = getenv("TORTURE_FROM") ? (size_t)atol(getenv("TORTURE_FROM")) : 1;
    size_t k1 = getenv("TORTURE_ONLY") ? (size_t)atol(getenv("TORTURE_ONLY")) : n + COUNT_SLACK;
    if (getenv("TORTURE_ONLY"))
        k0 = k1;
    for (size_t k = k0; k <= k1; k++) {
        run r = {.b = b, .k = k, .from = from};
        one_run(sc, &r);
        clean_ok += r.all_ok;
        with_enomem += r.enomem > 0;
    }
    fprintf(stderr,
            "[%s] %s, %s: %zu allocations in the scenario, %zu runs in %.1f s: %u unharmed, "
            "%u saw EVDB_ENOMEM\n",
            b->name, sc->name, from ? "from k on" : "only k", n, k1 - k0 + 1, t_now() - t0,
            clean_ok, with_enomem);
}

START_TEST(fail_only_the_kth_allocation)
{
    torture(&representative, &backends[_i], false);
}
END_TEST

START_TEST(fail_every_allocation_from_the_kth)
{
    torture(&representative, &backends[_i], true);
}
END_TEST

START_TEST(capped_fail_only_the_kth_allocation)
{
    torture(&capped, &backends[_i], false);
}
END_TEST

START_TEST(capped_fail_every_allocation_from_the_kth)
{
    torture(&capped, &backends[_i], true);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("torture");
    TCase *tc = tcase_create("allocation_failures");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_loop_test(tc, fail_only_the_kth_allocation, 0, 2);
    tcase_add_loop_test(tc, fail_every_allocation_from_the_kth, 0, 2);
    suite_add_tcase(s, tc);
    /* A case of its own: CK_RUN_CASE=result_cap runs only this one. */
    TCase *cap = tcase_create("result_cap");
    tcase_set_timeout(cap, TEST_TIMEOUT_S);
    tcase_add_loop_test(cap, capped_fail_only_the_kth_allocation, 0, 2);
    tcase_add_loop_test(cap, capped_fail_every_allocation_from_the_kth, 0, 2);
    suite_add_tcase(s, cap);
    return t_run_suite(s);
}
