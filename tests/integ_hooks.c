/*
 * Connection hooks and tracing (evdb/hooks.h) against both real servers,
 * PostgreSQL (_i == 0) and MariaDB (_i == 1): every START event has exactly
 * one END (failures, timeouts, cancels and a pool close included), each
 * query's trace_ctx comes back, no password in any event or error; the
 * on_connect hook's session setting is seen by pooled queries, its failure
 * fails the connect and the pool recovers; the credentials hook supplies
 * the password once per connect; jittered lifetimes retire apart.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(60);
}

static void teardown(void)
{
    t_loop_free(L);
}

typedef struct backend {
    const char *(*url)(void);
    const char *sleep_sql; /* runs for 5 s */
    const char *set_sql;   /* the on_connect hook's session setting */
    const char *check_sql; /* 1 when the setting is there */
    const char *id_sql;    /* the session's server id */
    const char *pre_sql;   /* on_connect_sql: checked by check_pre_sql */
    const char *check_pre_sql;
} backend;

static const backend backends[2] = {
    {evdb_test_pg_url, "SELECT pg_sleep(5)", "SET search_path TO evdb_hooked, public",
     "SELECT CASE WHEN current_setting('search_path') = 'evdb_hooked, public' THEN 1 ELSE 0 END",
     "SELECT pg_backend_pid()", "SET application_name = 'evdb_pre'",
     "SELECT CASE WHEN current_setting('application_name') = 'evdb_pre' THEN 1 ELSE 0 END"},
    {evdb_test_my_url, "SELECT SLEEP(5)", "SET @evdb_hooked = 42",
     "SELECT IF(@evdb_hooked = 42, 1, 0)", "SELECT CONNECTION_ID()", "SET @evdb_pre = 1",
     "SELECT IF(@evdb_pre = 1 AND @evdb_hooked = 42, 1, 0)"},
};

#define SECRET "evdb_secret"
#define WRONG "wrong_pw_8472"

static const char *need(const char *(*get)(void))
{
    const char *u = get();
    ck_assert_msg(u != NULL, "no test servers: run scripts/testdb start");
    return u;
}

/* The URL without its password (the credentials hook supplies it). */
static char *url_without_password(const char *url)
{
    char *u = strdup(url);
    char *at = strstr(u, ":" SECRET "@");
    ck_assert_ptr_nonnull(at);
    memmove(at, at + strlen(":" SECRET), strlen(at + strlen(":" SECRET)) + 1);
    return u;
}

enum { NCTX = 24 };

typedef struct rec {
    const backend *b;
    int n[6];
    int ctx_seen[NCTX];
    int foreign_ctx;
    int leaks;     /* events or errors holding a password */
    int bad_names; /* server or database not as the URL says */
    int cred_calls;
    const char *password; /* what the credentials hook answers */
    bool cred_async;
    bool fail_on_connect;
    int on_connect_calls;
    int64_t failed_ids[16];
    int nfailed_ids;
} rec;

static bool holds_secret(const char *s)
{
    return s && (strstr(s, SECRET) || strstr(s, WRONG));
}

static void on_trace(const evdb_trace_event *ev, void *arg)
{
    rec *r = arg;
    ck_assert_int_lt((int)ev->kind, 6);
    r->n[ev->kind]++;
    if (holds_secret(ev->server) || holds_secret(ev->database) || holds_secret(ev->user) ||
        holds_secret(ev->sql) || (ev->error && holds_secret(evdb_error_message(ev->error))))
        r->leaks++;
    if (!ev->server || !strstr(ev->server, "127.0.0.1:") || !ev->database ||
        strcmp(ev->database, "evdb_test") != 0)
        r->bad_names++;
    if (ev->kind == EVDB_TRACE_QUERY_END && ev->trace_ctx) {
        int *c = ev->trace_ctx;
        if (c >= r->ctx_seen && c < r->ctx_seen + NCTX)
            (*c)++;
        else
            r->foreign_ctx++;
    }
}

static void check_balanced(const rec *r)
{
    ck_assert_int_eq(r->n[EVDB_TRACE_CONNECT_START], r->n[EVDB_TRACE_CONNECT_END]);
    ck_assert_int_eq(r->n[EVDB_TRACE_ACQUIRE_START], r->n[EVDB_TRACE_ACQUIRE_END]);
    ck_assert_int_eq(r->n[EVDB_TRACE_QUERY_START], r->n[EVDB_TRACE_QUERY_END]);
    ck_assert_int_eq(r->leaks, 0);
    ck_assert_int_eq(r->bad_names, 0);
}

static void close_pool(evdb_pool *p)
{
    evdb_future *f = evdb_pool_close(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

static int64_t int_of(evdb_future *f)
{
    int64_t v = -1;
    ck_assert_int_eq(evdb_result_int(evdb_future_result(f), 0, 0, &v), 0);
    return v;
}

START_TEST(every_start_has_one_end_with_its_trace_ctx)
{
    const backend *b = &backends[_i];
    rec r = {.b = b};
    evdb_hooks h = {.trace = on_trace, .arg = &r};
    evdb_pool_opts o = {.max_conns = 2, .hooks = &h};
    evdb_pool *p = evdb_pool_new(L, need(b->url), &o);
    ck_assert_ptr_nonnull(p);
    memset(&h, 0xff, sizeof h); /* the pool copied it */
    evdb_future *fs[NCTX];
    for (int i = 0; i < 20; i++) {
        evdb_query_opts qo = {.trace_ctx = &r.ctx_seen[i]};
        fs[i] = evdb_pool_query(p, "SELECT 1 UNION ALL SELECT 2", NULL, 0, &qo);
        ck_assert_ptr_nonnull(fs[i]);
    }
    evdb_query_opts bad = {.trace_ctx = &r.ctx_seen[20]};
    fs[20] = evdb_pool_query(p, "SELECT * FROM evdb_no_such_table", NULL, 0, &bad);
    evdb_query_opts slow = {.trace_ctx = &r.ctx_seen[21], .timeout = 0.2};
    fs[21] = evdb_pool_query(p, b->sleep_sql, NULL, 0, &slow);
    evdb_query_opts cancelled = {.trace_ctx = &r.ctx_seen[22]};
    fs[22] = evdb_pool_query(p, b->sleep_sql, NULL, 0, &cancelled);
    evdb_future_cancel(fs[22]);
    for (int i = 0; i < 23; i++)
        t_wait(fs[i]);
    ck_assert_int_eq(evdb_future_status(fs[0]), 0);
    ck_assert_int_eq(evdb_future_status(fs[20]), EVDB_ESERVER);
    ck_assert_int_eq(evdb_future_status(fs[21]), EVDB_ETIMEDOUT);
    ck_assert_int_eq(evdb_future_status(fs[22]), EVDB_ECANCELED);
    for (int i = 0; i < 23; i++)
        evdb_future_unref(fs[i]);
    /* A borrowed connection's queries are traced too. */
    evdb_future *a = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(a), 0);
    evdb_conn *c = evdb_future_take_conn(a);
    evdb_query_opts qo = {.trace_ctx = &r.ctx_seen[23]};
    evdb_future *q = evdb_conn_query(c, "SELECT 7", NULL, 0, &qo);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_future_unref(q);
    /* Two borrowed, a third waits: the pool's close fails it. */
    evdb_future *a2 = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(a2), 0);
    evdb_conn *c2 = evdb_future_take_conn(a2);
    evdb_future *a3 = evdb_pool_acquire(p, 5);
    t_run_for(L, 0.05);
    evdb_future *cf = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(a3), EVDB_ECLOSED);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    ck_assert_int_eq(evdb_conn_release(c2), 0);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
    evdb_future_unref(a);
    evdb_future_unref(a2);
    evdb_future_unref(a3);
    t_run_for(L, 0.05);
    check_balanced(&r);
    ck_assert_int_eq(r.n[EVDB_TRACE_QUERY_START], 24);
    ck_assert_int_eq(r.n[EVDB_TRACE_ACQUIRE_START], 3);
    ck_assert_int_ge(r.n[EVDB_TRACE_CONNECT_START], 2);
    for (int i = 0; i < NCTX; i++)
        ck_assert_msg(r.ctx_seen[i] == 1, "trace_ctx %d came back %d times", i, r.ctx_seen[i]);
    ck_assert_int_eq(r.foreign_ctx, 0);
}
END_TEST

/* Rows in the END event: returned, or affected. */
static void on_rows(const evdb_trace_event *ev, void *arg)
{
    if (ev->kind == EVDB_TRACE_QUERY_END)
        *(int64_t *)arg = ev->rows;
}

START_TEST(query_end_reports_rows_on_a_plain_connection)
{
    const backend *b = &backends[_i];
    int64_t rows = -1;
    evdb_hooks h = {.trace = on_rows, .arg = &rows};
    evdb_conn_opts co = {.hooks = &h};
    evdb_future *of = evdb_conn_open(L, need(b->url), &co);
    ck_assert_int_eq(t_wait(of), 0);
    evdb_conn *c = evdb_future_take_conn(of);
    evdb_future_unref(of);
    evdb_future *q =
        evdb_conn_query(c, "SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(q), 0);
    evdb_future_unref(q);
    t_run_for(L, 0.01);
    ck_assert_int_eq(rows, 3);
    evdb_future *cf = evdb_conn_close(c);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
}
END_TEST

static void on_sql_done(evdb_future *f, void *arg)
{
    (void)arg;
    evdb_future_unref(f);
}

static evdb_future *on_connect(evdb_conn *c, void *arg)
{
    rec *r = arg;
    r->on_connect_calls++;
    if (r->fail_on_connect) {
        if (r->nfailed_ids < 16)
            r->failed_ids[r->nfailed_ids++] = evdb_conn_server_id(c);
        return evdb_conn_query(c, "SELECT * FROM evdb_no_such_table", NULL, 0, NULL);
    }
    /* Two statements; the future of the last one says when it is done. */
    evdb_future *f = evdb_conn_query(c, "SELECT 1", NULL, 0, NULL);
    ck_assert_int_eq(evdb_future_on_done(f, on_sql_done, NULL), 0);
    return evdb_conn_query(c, r->b->set_sql, NULL, 0, NULL);
}

START_TEST(on_connect_setting_is_seen_by_pooled_queries)
{
    const backend *b = &backends[_i];
    rec r = {.b = b};
    evdb_hooks h = {.trace = on_trace, .on_connect = on_connect, .arg = &r};
    evdb_pool_opts o = {.max_conns = 4, .hooks = &h, .on_connect_sql = b->pre_sql};
    evdb_pool *p = evdb_pool_new(L, need(b->url), &o);
    enum { N = 16 };
    evdb_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = evdb_pool_query(p, i % 2 ? b->check_sql : b->check_pre_sql, NULL, 0, NULL);
    evdb_future *g = evdb_gather(fs, N, 0);
    ck_assert_int_eq(t_wait(g), 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(int_of(fs[i]), 1);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    /* Once per connect: those still in their hook count as opening. */
    ck_assert_int_ge(r.on_connect_calls, (int)st.connects);
    ck_assert_int_le(r.on_connect_calls, (int)(st.connects + st.opening));
    close_pool(p);
    check_balanced(&r);
}
END_TEST

START_TEST(on_connect_failure_fails_the_connect_and_the_pool_recovers)
{
    const backend *b = &backends[_i];
    rec r = {.b = b, .fail_on_connect = true};
    evdb_hooks h = {.trace = on_trace, .on_connect = on_connect, .arg = &r};
    evdb_pool_opts o = {.max_conns = 2, .hooks = &h, .backoff_initial = 0.05, .backoff_max = 0.1};
    evdb_pool *p = evdb_pool_new(L, need(b->url), &o);
    evdb_future *f = evdb_pool_query(p, b->id_sql, NULL, 0, NULL);
    ck_assert_int_eq(t_wait(f), EVDB_ECONNECT);
    const char *m = evdb_error_message(evdb_future_error(f));
    ck_assert_msg(strstr(m, "on_connect hook failed"), "%s", m);
    evdb_future_unref(f);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_ge(st.connect_failures, 1);
    ck_assert_uint_eq(st.connects, 0);
    r.fail_on_connect = false;
    t_run_for(L, 0.3);
    f = evdb_pool_query(p, b->id_sql, NULL, 0, NULL);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    int64_t id = int_of(f);
    evdb_future_unref(f);
    ck_assert_int_ge(r.nfailed_ids, 1);
    for (int i = 0; i < r.nfailed_ids; i++)
        ck_assert_int_ne(id, r.failed_ids[i]); /* never handed out */
    close_pool(p);
    check_balanced(&r);
}
END_TEST

/* Resolves a user future a little later: a password fetched elsewhere. */
typedef struct later {
    evdb_future *f;
    const char *pw;
} later;

static void resolve_later(evdb_future *sleep, void *arg)
{
    later *l = arg;
    evdb_future_resolve(l->f, strdup(l->pw), free);
    evdb_future_unref(l->f);
    evdb_future_unref(sleep);
    free(l);
}

static evdb_future *credentials(const char *server, const char *user, void *arg)
{
    rec *r = arg;
    r->cred_calls++;
    ck_assert_ptr_nonnull(strstr(server, "127.0.0.1:"));
    ck_assert_str_eq(user, "evdb");
    if (!r->cred_async)
        return evdb_hooks_password(L, r->password);
    later *l = malloc(sizeof *l);
    l->f = evdb_future_new(L);
    l->pw = r->password;
    evdb_future *ret = evdb_future_ref(l->f);
    evdb_future_on_done(evdb_sleep(L, 0.01), resolve_later, l);
    return ret;
}

START_TEST(credentials_hook_supplies_the_password_per_connect)
{
    const backend *b = &backends[_i];
    char *url = url_without_password(need(b->url));
    rec r = {.b = b, .password = SECRET, .cred_async = true};
    evdb_hooks h = {.trace = on_trace, .credentials = credentials, .arg = &r};
    evdb_conn_opts co = {.hooks = &h};
    for (int i = 0; i < 2; i++) {
        r.cred_async = i == 0;
        evdb_future *of = evdb_conn_open(L, url, &co);
        ck_assert_msg(t_wait(of) == 0, "%s", evdb_error_message(evdb_future_error(of)));
        evdb_conn *c = evdb_future_take_conn(of);
        evdb_future_unref(of);
        evdb_future *cf = evdb_conn_close(c);
        ck_assert_int_eq(t_wait(cf), 0);
        evdb_future_unref(cf);
    }
    ck_assert_int_eq(r.cred_calls, 2);
    /* A pool asks again for each connection it opens: short lifetimes
     * make it reconnect. */
    r.cred_async = true;
    evdb_pool_opts o = {.max_conns = 1, .min_conns = 1, .max_lifetime = 0.2, .hooks = &h};
    evdb_pool *p = evdb_pool_new(L, url, &o);
    for (int i = 0; i < 4; i++) {
        evdb_future *f = evdb_pool_query(p, "SELECT 1", NULL, 0, NULL);
        ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
        evdb_future_unref(f);
        t_run_for(L, 0.15);
    }
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    close_pool(p);
    ck_assert_uint_ge(st.connects, 2);
    /* Once per connect: one may be under way as the stats are read. */
    int done = 2 + (int)st.connects + (int)st.connect_failures;
    ck_assert_int_ge(r.cred_calls, done);
    ck_assert_int_le(r.cred_calls, done + (int)st.opening);
    check_balanced(&r);
    free(url);
}
END_TEST

START_TEST(wrong_password_is_an_auth_error_without_the_password)
{
    const backend *b = &backends[_i];
    char *url = url_without_password(need(b->url));
    rec r = {.b = b, .password = WRONG};
    evdb_hooks h = {.trace = on_trace, .credentials = credentials, .arg = &r};
    evdb_conn_opts co = {.hooks = &h};
    evdb_future *of = evdb_conn_open(L, url, &co);
    ck_assert_int_eq(t_wait(of), EVDB_EAUTH);
    ck_assert(!holds_secret(evdb_error_message(evdb_future_error(of))));
    evdb_future_unref(of);
    ck_assert_int_eq(r.cred_calls, 1);
    check_balanced(&r);
    ck_assert_int_eq(r.n[EVDB_TRACE_CONNECT_END], 1);
    free(url);
}
END_TEST

static evdb_future *no_credentials(const char *server, const char *user, void *arg)
{
    (void)server;
    (void)user;
    evdb_future *f = evdb_future_new(arg);
    evdb_future_fail(f, EVDB_EAUTH, "token service unavailable");
    return f;
}

START_TEST(failed_credentials_future_fails_the_connect)
{
    const backend *b = &backends[_i];
    evdb_hooks h = {.credentials = no_credentials, .arg = L};
    evdb_conn_opts co = {.hooks = &h};
    evdb_future *of = evdb_conn_open(L, need(b->url), &co);
    ck_assert_int_eq(t_wait(of), EVDB_ECONNECT);
    const char *m = evdb_error_message(evdb_future_error(of));
    ck_assert_msg(strstr(m, "credentials hook failed: token service unavailable"), "%s", m);
    evdb_future_unref(of);
}
END_TEST

START_TEST(jittered_lifetimes_retire_apart)
{
    const backend *b = &backends[_i];
    evdb_hooks h = {.lifetime_jitter = 0.5};
    evdb_pool_opts o = {.max_conns = 6, .min_conns = 6, .max_lifetime = 1.0, .hooks = &h};
    evdb_pool *p = evdb_pool_new(L, need(b->url), &o);
    evdb_pool_stats st;
    do {
        t_run_for(L, 0.01);
        evdb_pool_stats_get(p, &st);
    } while (st.idle < 6);
    double t0 = t_now();
    uint64_t last = 0;
    int steps = 0;
    while (t_now() - t0 < 1.3 && last < 6) {
        t_run_for(L, 0.01);
        evdb_pool_stats_get(p, &st);
        if (st.retired > last) {
            steps++;
            last = st.retired;
        }
    }
    ck_assert_uint_ge(last, 6);
    ck_assert_msg(steps >= 2, "all retired at once");
    close_pool(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hooks_integration");
    TCase *tc = tcase_create("both_backends");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, every_start_has_one_end_with_its_trace_ctx, 0, 2);
    tcase_add_loop_test(tc, query_end_reports_rows_on_a_plain_connection, 0, 2);
    tcase_add_loop_test(tc, on_connect_setting_is_seen_by_pooled_queries, 0, 2);
    tcase_add_loop_test(tc, on_connect_failure_fails_the_connect_and_the_pool_recovers, 0, 2);
    tcase_add_loop_test(tc, credentials_hook_supplies_the_password_per_connect, 0, 2);
    tcase_add_loop_test(tc, wrong_password_is_an_auth_error_without_the_password, 0, 2);
    tcase_add_loop_test(tc, failed_credentials_future_fails_the_connect, 0, 2);
    tcase_add_loop_test(tc, jittered_lifetimes_retire_apart, 0, 2);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
