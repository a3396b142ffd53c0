/*
 * Bad input, through the public API, against both real servers
 * (scripts/testdb): NULL and foreign handles on every public function,
 * absurd sizes, embedded NUL bytes and invalid UTF-8 in text parameters,
 * 1,000 parameters, SQL-injection strings stored and read back verbatim,
 * and calls in the wrong state (query on a closing connection, double
 * close, release twice, use after release). Each gives a clear error code
 * (and evdb_last_error for calls that fail at once), nothing crashes, no
 * future is lost or completed twice, the connection stays usable after
 * a rejected query, and nothing leaks (t_loop_free).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 50.0
#define TEST_TIMEOUT_S 60

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
}

static void teardown(void)
{
    t_loop_free(L);
}

/* Memory that is no evdb object: what a stale or wrong pointer looks like
 * to the handle checks (which read a magic number first). */
static _Alignas(64) unsigned char foreign_zero[4096];
static _Alignas(64) unsigned char foreign_junk[4096];

static void *foreign(int i)
{
    if (i == 0)
        return foreign_zero;
    memset(foreign_junk, 0xa5, sizeof foreign_junk);
    return foreign_junk;
}

/* A call that failed at once: NULL / code and the reason in
 * evdb_last_error. */
#define FAILS_WITH(expr, code)                                                                     \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        ck_assert_msg(rc_ == (code), "%s gave %s, expected %s", #expr, evdb_err_name(rc_),         \
                      evdb_err_name(code));                                                        \
    } while (0)

#define NULL_WITH(expr, code)                                                                      \
    do {                                                                                           \
        const void *p_ = (expr);                                                                   \
        ck_assert_msg(p_ == NULL, "%s did not fail", #expr);                                       \
        int c_ = evdb_error_code(evdb_last_error());                                               \
        ck_assert_msg(c_ == (code), "%s: last error %s, expected %s (%s)", #expr,                  \
                      evdb_err_name(c_), evdb_err_name(code),                                      \
                      evdb_error_message(evdb_last_error()));                                      \
        ck_assert(evdb_error_message(evdb_last_error())[0] != '\0');                               \
    } while (0)

/* ----------------------------------------------------- NULL and foreign */

static evdb_future *txn_fn_never(evdb_conn *c, void *arg)
{
    (void)c;
    (void)arg;
    ck_abort_msg("transaction function ran");
    return NULL;
}

START_TEST(null_and_foreign_handles)
{
    /* _i: 0 NULL, 1 zeroed memory, 2 junk memory. */
    evdb_conn *c = _i ? foreign(_i - 1) : NULL;
    evdb_pool *p = _i ? foreign(_i - 1) : NULL;
    evdb_future *f = _i ? foreign(_i - 1) : NULL;
    evdb_value v = evdb_int(1);

    /* Connections. */
    NULL_WITH(evdb_conn_query(c, "SELECT 1", NULL, 0, NULL), EVDB_EINVAL);
    NULL_WITH(evdb_conn_query(c, "SELECT 1", &v, 1, NULL), EVDB_EINVAL);
    NULL_WITH(evdb_conn_prepare(c, "SELECT 1", NULL, 0, NULL), EVDB_EINVAL);
    NULL_WITH(evdb_conn_unprepare(c, "SELECT 1", NULL, 0, NULL), EVDB_EINVAL);
    NULL_WITH(evdb_conn_close(c), EVDB_EINVAL);
    FAILS_WITH(evdb_conn_release(c), EVDB_EINVAL);
    FAILS_WITH(evdb_conn_status(c), EVDB_EINVAL);
    FAILS_WITH(evdb_conn_set_notice_hook(c, NULL, NULL), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_conn_error(c));
    ck_assert_ptr_null(evdb_conn_driver(c));
    ck_assert_uint_eq(evdb_conn_pending(c), 0);
    ck_assert_int_eq(evdb_conn_server_id(c), 0);

    /* Pools. */
    NULL_WITH(evdb_pool_query(p, "SELECT 1", NULL, 0, NULL), EVDB_EINVAL);
    NULL_WITH(evdb_pool_acquire(p, 1), EVDB_EINVAL);
    NULL_WITH(evdb_pool_transaction(p, txn_fn_never, NULL, 1), EVDB_EINVAL);
    NULL_WITH(evdb_pool_transaction_opts(p, txn_fn_never, NULL, NULL), EVDB_EINVAL);
    {
        evdb_stmt one = {"SELECT 1", NULL, 0};
        NULL_WITH(evdb_pool_transaction_batch(p, &one, 1, NULL), EVDB_EINVAL);
        NULL_WITH(evdb_conn_transaction_batch(c, &one, 1, NULL), EVDB_EINVAL);
        NULL_WITH(evdb_conn_savepoint(c, txn_fn_never, NULL), EVDB_EINVAL);
    }
    NULL_WITH(evdb_pool_close(p), EVDB_EINVAL);
    evdb_pool_stats st;
    memset(&st, 0xff, sizeof st);
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.total, 0);
    evdb_pool_stats_get(p, NULL);
    evdb_pool_dump(p, stderr);
    evdb_pool_dump(NULL, NULL);

    /* Futures. */
    FAILS_WITH(evdb_future_resolve(f, NULL, NULL), EVDB_EINVAL);
    FAILS_WITH(evdb_future_fail(f, EVDB_EPROTO, "x"), EVDB_EINVAL);
    FAILS_WITH(evdb_future_on_done(f, NULL, NULL), EVDB_EINVAL);
    FAILS_WITH(evdb_future_cancel(f), EVDB_EINVAL);
    FAILS_WITH(evdb_future_status(f), EVDB_EINVAL);
    FAILS_WITH(evdb_future_wait(f), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_future_error(f));
    ck_assert_ptr_null(evdb_future_result(f));
    ck_assert_ptr_null(evdb_future_take_conn(f));
    ck_assert_ptr_null(evdb_future_value(f));
    ck_assert_ptr_null(evdb_race_winner(f));
    evdb_future_unref(f);
    ck_assert_ptr_eq(evdb_future_ref(f), f);
    evdb_future *fs[2] = {f, f};
    NULL_WITH(evdb_gather(fs, 2, 0), EVDB_EINVAL);
    NULL_WITH(evdb_race(fs, 2), EVDB_EINVAL);
    NULL_WITH(evdb_timeout(f, 1), EVDB_EINVAL);
    int aw = evdb_await(f);
    ck_assert_msg(aw == EVDB_ENOTASK || aw == EVDB_EINVAL, "evdb_await: %s", evdb_err_name(aw));
    FAILS_WITH(evdb_task_set_name(f, "x"), EVDB_EINVAL);

    /* Loops. */
    NULL_WITH(evdb_conn_open(NULL, "postgresql://x@127.0.0.1:1/x", NULL), EVDB_EINVAL);
    NULL_WITH(evdb_pool_new(NULL, "postgresql://x@127.0.0.1:1/x", NULL), EVDB_EINVAL);
    NULL_WITH(evdb_future_new(NULL), EVDB_EINVAL);
    NULL_WITH(evdb_sleep(NULL, 0), EVDB_EINVAL);
    NULL_WITH(evdb_task_spawn(NULL, NULL, NULL, NULL), EVDB_EINVAL);
    FAILS_WITH(evdb_run(NULL, NULL, NULL, NULL), EVDB_EINVAL);
    evdb_task_dump(NULL, stderr);

    /* Results and errors: NULL is "nothing". */
    ck_assert_uint_eq(evdb_result_nrows(NULL), 0);
    ck_assert_uint_eq(evdb_result_ncols(NULL), 0);
    ck_assert_ptr_null(evdb_result_colname(NULL, 0));
    ck_assert_int_eq(evdb_result_colindex(NULL, "x"), -1);
    ck_assert_int_eq(evdb_result_coltype(NULL, 0), EVDB_TYPE_NULL);
    ck_assert_uint_eq(evdb_result_coltype_native(NULL, 0), 0);
    ck_assert(evdb_result_isnull(NULL, 0, 0));
    size_t len = 5;
    ck_assert_ptr_null(evdb_result_text(NULL, 0, 0, &len));
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(evdb_result_bytes(NULL, 0, 0, NULL));
    int64_t iv = 7;
    double dv = 7;
    bool bv = true;
    ck_assert_int_eq(evdb_result_int(NULL, 0, 0, &iv), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_double(NULL, 0, 0, &dv), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_bool(NULL, 0, 0, &bv), EVDB_ERANGE);
    ck_assert(iv == 7 && dv == 7 && bv);
    ck_assert_int_eq(evdb_result_affected(NULL), -1);
    ck_assert_int_eq(evdb_result_insert_id(NULL), 0);
    ck_assert_str_eq(evdb_result_command(NULL), "");
    ck_assert_ptr_null(evdb_result_next(NULL));
    ck_assert_int_eq(evdb_error_code(NULL), 0);
    ck_assert_str_eq(evdb_error_message(NULL), "");
    ck_assert_str_eq(evdb_error_sqlstate(NULL), "");
    ck_assert_int_eq(evdb_error_driver_code(NULL), 0);
    ck_assert_ptr_nonnull(evdb_error_detail(NULL));
    ck_assert_ptr_nonnull(evdb_error_hint(NULL));
    ck_assert_ptr_nonnull(evdb_error_severity(NULL));
    ck_assert_ptr_nonnull(evdb_error_constraint(NULL));
    ck_assert_ptr_nonnull(evdb_error_table(NULL));
    ck_assert_ptr_nonnull(evdb_error_column(NULL));
    ck_assert(!evdb_error_is_retryable(NULL));
    ck_assert(!evdb_error_is_connection(NULL));
    ck_assert(!evdb_error_is_cancel(NULL));
    ck_assert_str_eq(evdb_strerror(12345), "unknown error");
    ck_assert_str_eq(evdb_err_name(-12345), "EVDB_UNKNOWN");
    ck_assert_str_eq(evdb_strerror(INT32_MIN), "unknown error");
    FAILS_WITH(evdb_set_allocators(malloc, NULL, NULL), EVDB_EINVAL);

    /* Outside a task. */
    ck_assert_ptr_null(evdb_task_current());
    ck_assert_ptr_null(evdb_task_loop());
    ck_assert_int_eq(evdb_task_yield(), EVDB_ENOTASK);
    ck_assert_int_eq(evdb_task_cancelled(), 0);
    ck_assert_ptr_null(evdb_task_fail(EVDB_EPROTO, "x"));
    ck_assert_ptr_null(evdb_task_fail_error(NULL));
    int x = 1;
    ck_assert_ptr_eq(evdb_task_return(&x, NULL), &x);
}
END_TEST

/* ------------------------------------------------------------ absurd sizes */

START_TEST(absurd_sizes_and_values)
{
    evdb_value v = evdb_int(1);
    const char *url = evdb_test_pg_url();
    ck_assert_msg(url != NULL, "no test servers");
    evdb_pool *p = evdb_pool_new(L, url, NULL);
    ck_assert_ptr_nonnull(p);
    /* Parameter counts and lengths. */
    NULL_WITH(evdb_pool_query(p, "SELECT $1", NULL, 1, NULL), EVDB_EINVAL);
    NULL_WITH(evdb_pool_query(p, "SELECT $1", &v, SIZE_MAX, NULL), EVDB_EINVAL);
    evdb_value *many = calloc(65536, sizeof *many);
    ck_assert_ptr_nonnull(many);
    for (size_t i = 0; i < 65536; i++)
        many[i] = evdb_int((int64_t)i);
    NULL_WITH(evdb_pool_query(p, "SELECT $1", many, 65536, NULL), EVDB_EINVAL);
    free(many);
    evdb_value huge = evdb_textn("x", (size_t)1 << 40);
    NULL_WITH(evdb_pool_query(p, "SELECT $1", &huge, 1, NULL), EVDB_EINVAL);
    evdb_value bad_ptr = {.type = EVDB_TYPE_BYTES, .u.s = {NULL, 10}};
    NULL_WITH(evdb_pool_query(p, "SELECT $1", &bad_ptr, 1, NULL), EVDB_EINVAL);
    evdb_value bad_tag = {.type = (evdb_type)99};
    NULL_WITH(evdb_pool_query(p, "SELECT $1", &bad_tag, 1, NULL), EVDB_EINVAL);
    evdb_value neg_tag = {.type = (evdb_type)-1};
    NULL_WITH(evdb_pool_query(p, "SELECT $1", &neg_tag, 1, NULL), EVDB_EINVAL);
    /* Connection flags: none is defined, so any bit is refused. */
    evdb_conn_opts flagged = {.flags = 1u};
    NULL_WITH(evdb_conn_open(L, url, &flagged), EVDB_EINVAL);
    flagged.flags = 0x80000000u;
    NULL_WITH(evdb_conn_open(L, url, &flagged), EVDB_EINVAL);
    /* SQL. */
    NULL_WITH(evdb_pool_query(p, NULL, NULL, 0, NULL), EVDB_EINVAL);
    NULL_WITH(evdb_pool_query(p, "", NULL, 0, NULL), EVDB_EINVAL);
    /* Timeouts. */
    evdb_query_opts bad[] = {{.timeout = -1}, {.timeout = NAN}, {.timeout = -INFINITY}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        NULL_WITH(evdb_pool_query(p, "SELECT 1", NULL, 0, &bad[i]), EVDB_EINVAL);
    NULL_WITH(evdb_sleep(L, -1), EVDB_EINVAL);
    NULL_WITH(evdb_sleep(L, NAN), EVDB_EINVAL);
    evdb_future *u = evdb_future_new(L);
    ck_assert_ptr_nonnull(u);
    NULL_WITH(evdb_timeout(u, -1), EVDB_EINVAL);
    NULL_WITH(evdb_timeout(u, NAN), EVDB_EINVAL);
    evdb_future *us[1] = {u};
    NULL_WITH(evdb_gather(us, 0, 0), EVDB_EINVAL);
    NULL_WITH(evdb_gather(NULL, 1, 0), EVDB_EINVAL);
    NULL_WITH(evdb_race(us, 0), EVDB_EINVAL);
    NULL_WITH(evdb_gather(us, SIZE_MAX, 0), EVDB_EINVAL);
    FAILS_WITH(evdb_future_fail(u, 5, "positive"), EVDB_EINVAL);
    ck_assert_int_eq(evdb_future_cancel(u), 0);
    evdb_future_unref(u);
    /* Pool options. */
    evdb_pool_opts po = {.min_conns = 5, .max_conns = 2};
    NULL_WITH(evdb_pool_new(L, url, &po), EVDB_EINVAL);
    /* URLs. */
    NULL_WITH(evdb_conn_open(L, "nosuchscheme://x", NULL), EVDB_EURL);
    NULL_WITH(evdb_conn_open(L, "", NULL), EVDB_EURL);
    NULL_WITH(evdb_conn_open(L, "mariadb://h:99999/x", NULL), EVDB_EURL);
    NULL_WITH(evdb_conn_open(L, "mariadb://h/x?nosuchoption=1", NULL), EVDB_EURL);
    char *long_url = malloc(20000);
    ck_assert_ptr_nonnull(long_url);
    strcpy(long_url, "mariadb://u:p@h/");
    memset(long_url + strlen(long_url), 'd', 19000);
    long_url[19016] = '\0';
    NULL_WITH(evdb_conn_open(L, long_url, NULL), EVDB_EURL);
    free(long_url);
    /* Result getters far out of range, on a real result. */
    evdb_future *q = evdb_pool_query(p, "SELECT 1 AS a", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    const evdb_result *r = evdb_future_result(q);
    int64_t iv = 9;
    ck_assert_int_eq(evdb_result_int(r, SIZE_MAX, 0, &iv), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_int(r, 0, SIZE_MAX, &iv), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_int(r, 1, 0, &iv), EVDB_ERANGE);
    ck_assert_int_eq(iv, 9);
    ck_assert_ptr_null(evdb_result_text(r, 0, 1, NULL));
    ck_assert_ptr_null(evdb_result_colname(r, SIZE_MAX));
    ck_assert_int_eq(evdb_result_colindex(r, NULL), -1);
    ck_assert_int_eq(evdb_result_colindex(r, "nope"), -1);
    ck_assert_int_eq(evdb_result_int(r, 0, 0, NULL), 0); /* out may be NULL */
    evdb_future_unref(q);
    evdb_future *cf = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
}
END_TEST

/* --------------------------------------------------- against the servers */

typedef struct backend {
    const char *name;
    const char *(*url)(void);
    const char *echo_text; /* returns its one text parameter */
    const char *create;    /* a table t_bad (id int, s text, b blob) */
    const char *insert;    /* (id, s, b) */
    const char *select;    /* s, b by id */
    const char *ph_fmt;    /* the nth placeholder: "$%d" or "?" */
} backend;

static const backend backends[2] = {
    {"postgres", evdb_test_pg_url, "SELECT $1::text",
     "CREATE TABLE IF NOT EXISTS evdb_badinput (id int, s text, b bytea)",
     "INSERT INTO evdb_badinput VALUES ($1, $2, $3)",
     "SELECT s, b FROM evdb_badinput WHERE id = $1", "$%d"},
    {"mariadb", evdb_test_my_url, "SELECT CAST(? AS CHAR)",
     "CREATE TABLE IF NOT EXISTS evdb_badinput (id int, s text CHARACTER SET utf8mb4, b blob)",
     "INSERT INTO evdb_badinput VALUES (?, ?, ?)", "SELECT s, b FROM evdb_badinput WHERE id = ?",
     "?"},
};

static evdb_conn *open_conn(const backend *b)
{
    const char *url = b->url();
    ck_assert_msg(url != NULL, "no test servers: run scripts/testdb start");
    return t_conn_open(L, url, NULL);
}

static evdb_future *run(evdb_conn *c, const char *sql, const evdb_value *p, size_t n)
{
    evdb_future *f = evdb_conn_query(c, sql, p, n, NULL);
    ck_assert_msg(f != NULL, "%s: %s", sql, evdb_error_message(evdb_last_error()));
    t_wait(f);
    return f;
}

static void run_ok(evdb_conn *c, const char *sql, const evdb_value *p, size_t n)
{
    evdb_future *f = run(c, sql, p, n);
    ck_assert_msg(evdb_future_status(f) == 0, "%s: %s", sql,
                  evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
}

/* The connection still answers correctly. */
static void still_usable(evdb_conn *c)
{
    evdb_future *f = run(c, "SELECT 42", NULL, 0);
    ck_assert_int_eq(evdb_future_status(f), 0);
    int64_t v = 0;
    ck_assert_int_eq(evdb_result_int(evdb_future_result(f), 0, 0, &v), 0);
    ck_assert_int_eq(v, 42);
    evdb_future_unref(f);
}

START_TEST(embedded_nul_and_invalid_utf8)
{
    const backend *b = &backends[_i];
    evdb_conn *c = open_conn(b);
    static const char with_nul[] = {'a', 'b', '\0', 'c', 'd'};
    evdb_value v = evdb_textn(with_nul, sizeof with_nul);
    evdb_future *f = run(c, b->echo_text, &v, 1);
    if (_i == 0) {
        /* PostgreSQL text cannot hold NUL: refused before it is sent. */
        ck_assert_int_eq(evdb_future_status(f), EVDB_EINVAL);
        ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(f)), "NUL"));
    } else {
        /* MariaDB strings can: kept byte for byte. */
        ck_assert_int_eq(evdb_future_status(f), 0);
        size_t len = 0;
        const char *t = evdb_result_text(evdb_future_result(f), 0, 0, &len);
        ck_assert_uint_eq(len, sizeof with_nul);
        ck_assert_int_eq(memcmp(t, with_nul, len), 0);
    }
    evdb_future_unref(f);
    still_usable(c);

    /* Invalid UTF-8 into a UTF-8 column. */
    run_ok(c, b->create, NULL, 0);
    static const char bad_utf8[] = "ok \xff\xfe \xc3\x28 \xed\xa0\x80";
    evdb_value row[3] = {evdb_int(1), evdb_text(bad_utf8), evdb_bytes("x", 1)};
    f = run(c, b->insert, row, 3);
    int st = evdb_future_status(f);
    const evdb_error *e = evdb_future_error(f);
    fprintf(stderr, "[%s] invalid UTF-8: %s %s: %s\n", b->name, evdb_err_name(st),
            evdb_error_sqlstate(e), evdb_error_message(e));
    ck_assert_int_eq(st, EVDB_ESERVER);
    if (_i == 0)
        ck_assert_str_eq(evdb_error_sqlstate(e), "22021");
    else
        ck_assert_int_eq(evdb_error_driver_code(e), 1366); /* ER_TRUNCATED_WRONG_VALUE_FOR_FIELD */
    evdb_future_unref(f);
    still_usable(c);
    /* The same as bytes is fine. */
    row[2] = evdb_bytes(bad_utf8, sizeof bad_utf8 - 1);
    row[1] = evdb_text("fine");
    run_ok(c, b->insert, row, 3);
    run_ok(c, "DROP TABLE evdb_badinput", NULL, 0);
    t_conn_close(c);
}
END_TEST

START_TEST(a_thousand_parameters)
{
    const backend *b = &backends[_i];
    evdb_conn *c = open_conn(b);
    enum { N = 1000 };
    char *sql = malloc(N * 16 + 16);
    ck_assert_ptr_nonnull(sql);
    size_t o = (size_t)sprintf(sql, "SELECT ");
    evdb_value *v = calloc(N, sizeof *v);
    char(*texts)[16] = calloc(N, 16);
    ck_assert(v && texts);
    for (int i = 0; i < N; i++) {
        char ph[16];
        snprintf(ph, sizeof ph, b->ph_fmt, i + 1);
        o += (size_t)sprintf(sql + o, "%s%s", i ? "," : "", ph);
        if (i % 3 == 0) {
            v[i] = evdb_int(i);
        } else {
            snprintf(texts[i], 16, "t%d", i);
            v[i] = i % 3 == 1 ? evdb_text(texts[i]) : evdb_null();
        }
    }
    evdb_future *f = run(c, sql, v, N);
    ck_assert_msg(evdb_future_status(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_ncols(r), N);
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            int64_t x = -1;
            ck_assert_int_eq(evdb_result_int(r, 0, (size_t)i, &x), 0);
            ck_assert_int_eq(x, i);
        } else if (i % 3 == 1) {
            ck_assert_str_eq(evdb_result_text(r, 0, (size_t)i, NULL), texts[i]);
        } else {
            ck_assert(evdb_result_isnull(r, 0, (size_t)i));
        }
    }
    evdb_future_unref(f);
    /* One parameter short: a clear error, and the connection carries on. */
    f = run(c, sql, v, N - 1);
    ck_assert_int_lt(evdb_future_status(f), 0);
    fprintf(stderr, "[%s] 999 parameters for 1000 placeholders: %s: %s\n", b->name,
            evdb_err_name(evdb_future_status(f)), evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    still_usable(c);
    free(sql);
    free(v);
    free(texts);
    t_conn_close(c);
}
END_TEST

START_TEST(injection_strings_stored_verbatim)
{
    const backend *b = &backends[_i];
    evdb_conn *c = open_conn(b);
    run_ok(c, b->create, NULL, 0);
    run_ok(c, "DELETE FROM evdb_badinput", NULL, 0);
    static const char *const evil[] = {
        "'; DROP TABLE evdb_badinput; --",
        "Robert'); DROP TABLE Students;--",
        "\" OR \"1\"=\"1",
        "' OR '1'='1' /*",
        "\\'; SELECT pg_sleep(10); --",
        "$1 $2 ? ?? %s %n %% {}",
        "\\\\\\x00\\0\\n",
        "$$; DROP TABLE evdb_badinput; $$",
        "'||(SELECT version())||'",
        "\xe2\x80\x8b\xef\xbb\xbf zero width, BOM, \xf0\x9f\x92\xa9",
        "",
        "line1\nline2\r\n\ttab",
    };
    enum { NE = sizeof evil / sizeof evil[0] };
    unsigned char blob[256];
    for (int i = 0; i < 256; i++)
        blob[i] = (unsigned char)i;
    for (int i = 0; i < NE; i++) {
        evdb_value row[3] = {evdb_int(i), evdb_text(evil[i]), evdb_bytes(blob, (size_t)i * 20)};
        run_ok(c, b->insert, row, 3);
    }
    for (int i = 0; i < NE; i++) {
        evdb_value id = evdb_int(i);
        evdb_future *f = run(c, b->select, &id, 1);
        ck_assert_int_eq(evdb_future_status(f), 0);
        const evdb_result *r = evdb_future_result(f);
        ck_assert_uint_eq(evdb_result_nrows(r), 1);
        size_t len = 0;
        const char *s = evdb_result_text(r, 0, 0, &len);
        ck_assert_uint_eq(len, strlen(evil[i]));
        ck_assert_int_eq(memcmp(s, evil[i], len), 0);
        const void *bytes = evdb_result_bytes(r, 0, 1, &len);
        ck_assert_uint_eq(len, (size_t)i * 20);
        ck_assert_int_eq(memcmp(bytes, blob, len), 0);
        evdb_future_unref(f);
    }
    /* The table is still there, with every row. */
    evdb_future *f = run(c, "SELECT COUNT(*) FROM evdb_badinput", NULL, 0);
    int64_t n = 0;
    ck_assert_int_eq(evdb_result_int(evdb_future_result(f), 0, 0, &n), 0);
    ck_assert_int_eq(n, NE);
    evdb_future_unref(f);
    run_ok(c, "DROP TABLE evdb_badinput", NULL, 0);
    t_conn_close(c);
}
END_TEST

/* Counts callbacks. */
static void on_count(evdb_future *f, void *arg)
{
    (void)f;
    (*(int *)arg)++;
}

static void wait_in_callback(evdb_future *f, void *arg)
{
    *(int *)arg = evdb_future_wait(f);
}

START_TEST(calls_in_the_wrong_state)
{
    const backend *b = &backends[_i];
    const char *url = b->url();
    ck_assert_ptr_nonnull(url);

    /* A closing connection: queued queries fail once, new ones are
     * refused, a second close is refused; all while the caller holds the
     * close future. */
    evdb_conn *c = open_conn(b);
    int calls = 0;
    evdb_future *q = evdb_conn_query(c, "SELECT 1", NULL, 0, NULL);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(evdb_future_on_done(q, on_count, &calls), 0);
    evdb_future *cf = evdb_conn_close(c);
    ck_assert_ptr_nonnull(cf);
    NULL_WITH(evdb_conn_query(c, "SELECT 1", NULL, 0, NULL), EVDB_ECLOSED);
    NULL_WITH(evdb_conn_close(c), EVDB_ECLOSED);
    FAILS_WITH(evdb_conn_release(c), EVDB_EINVAL);
    ck_assert_int_eq(t_wait(cf), 0);
    /* Still refused (not crashed) after the close completed, while the
     * close future is held. */
    NULL_WITH(evdb_conn_close(c), EVDB_ECLOSED);
    NULL_WITH(evdb_conn_query(c, "SELECT 1", NULL, 0, NULL), EVDB_ECLOSED);
    evdb_future_unref(cf);
    t_run_for(L, 0.01);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(evdb_future_status(q), EVDB_ECLOSED);
    evdb_future_unref(q);

    /* A pool: pooled connections are released, not closed; twice is
     * refused; use after release is refused (a stale handle: EVDB_EINVAL). */
    evdb_pool *p = evdb_pool_new(L, url, NULL);
    ck_assert_ptr_nonnull(p);
    evdb_future *a = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(a), 0);
    c = evdb_future_take_conn(a);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(evdb_future_take_conn(a)); /* taken once */
    NULL_WITH(evdb_conn_close(c), EVDB_EINVAL);
    FAILS_WITH(evdb_conn_set_notice_hook(c, NULL, NULL), EVDB_ENOTSUP);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    FAILS_WITH(evdb_conn_release(c), EVDB_EINVAL);
    NULL_WITH(evdb_conn_query(c, "SELECT 1", NULL, 0, NULL), EVDB_EINVAL);
    evdb_future_unref(a);
    /* A connection that is not pooled cannot be released. */
    evdb_conn *solo = open_conn(b);
    FAILS_WITH(evdb_conn_release(solo), EVDB_EINVAL);
    t_conn_close(solo);

    /* Futures: library futures are not the user's to complete; a user
     * future completes once; waiting inside a callback is refused. */
    q = evdb_pool_query(p, "SELECT 1", NULL, 0, NULL);
    ck_assert_ptr_nonnull(q);
    FAILS_WITH(evdb_future_resolve(q, NULL, NULL), EVDB_EINVAL);
    FAILS_WITH(evdb_future_fail(q, EVDB_EPROTO, "no"), EVDB_EINVAL);
    int in_cb = 1;
    ck_assert_int_eq(evdb_future_on_done(q, wait_in_callback, &in_cb), 0);
    ck_assert_int_eq(t_wait(q), 0);
    ck_assert_int_eq(in_cb, EVDB_EINCALLBACK);
    FAILS_WITH(evdb_future_cancel(q), EVDB_ESTATE);
    evdb_future_unref(q);
    evdb_future *u = evdb_future_new(L);
    ck_assert_int_eq(evdb_future_resolve(u, NULL, NULL), 0);
    FAILS_WITH(evdb_future_resolve(u, NULL, NULL), EVDB_ESTATE);
    FAILS_WITH(evdb_future_fail(u, EVDB_EPROTO, "late"), EVDB_ESTATE);
    evdb_future_unref(u);
    /* A future nobody completes, on a loop with nothing else to do. */
    evdb_future *never = evdb_future_new(L);
    evdb_future *pc = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(pc), 0);
    FAILS_WITH(evdb_future_wait(never), EVDB_ESTATE);
    evdb_future_unref(never);

    /* A closing pool refuses work; a second close is refused. */
    p = evdb_pool_new(L, url, NULL);
    evdb_future *pc2 = evdb_pool_close(p);
    ck_assert_ptr_nonnull(pc2);
    NULL_WITH(evdb_pool_query(p, "SELECT 1", NULL, 0, NULL), EVDB_ECLOSED);
    NULL_WITH(evdb_pool_acquire(p, 1), EVDB_ECLOSED);
    NULL_WITH(evdb_pool_close(p), EVDB_ECLOSED);
    ck_assert_int_eq(t_wait(pc2), 0);
    NULL_WITH(evdb_pool_close(p), EVDB_ECLOSED);
    NULL_WITH(evdb_pool_query(p, "SELECT 1", NULL, 0, NULL), EVDB_ECLOSED);
    evdb_future_unref(pc2);
    evdb_future_unref(pc);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("badinput");
    TCase *api = tcase_create("api");
    TCase *srv = tcase_create("servers");
    TCase *all[] = {api, srv};
    for (size_t i = 0; i < 2; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], TEST_TIMEOUT_S);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_loop_test(api, null_and_foreign_handles, 0, 3);
    tcase_add_test(api, absurd_sizes_and_values);
    tcase_add_loop_test(srv, embedded_nul_and_invalid_utf8, 0, 2);
    tcase_add_loop_test(srv, a_thousand_parameters, 0, 2);
    tcase_add_loop_test(srv, injection_strings_stored_verbatim, 0, 2);
    tcase_add_loop_test(srv, calls_in_the_wrong_state, 0, 2);
    return t_run_suite(s);
}
