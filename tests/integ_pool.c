/*
 * The pool against both real servers (scripts/testdb), the same tests for
 * PostgreSQL (_i == 0) and MariaDB (_i == 1): gathered pooled queries each
 * checking its own result, released connections never handed out dirty,
 * recovery after the server kills a pooled session, the transaction
 * helper, and pool timeouts.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    const char *name;
    const char *(*url)(void);
    const char *(*admin_url)(void);
    const char *param_sql;  /* one parameter, returns it + 1 as "v" */
    const char *param_sql3; /* one parameter, returns it * 3 */
    const char *set_sql;    /* dirties the session */
    const char *check_sql;  /* 1 when the session is still dirty */
    const char *temp_sql;   /* creates a temporary table "evdb_tmp" */
    const char *kill_fmt;   /* kills a session by server id */
    const char *sleep_sql;  /* runs for 5 s */
} backend;

static const backend backends[2] = {
    {"postgres", evdb_test_pg_url, evdb_test_pg_admin_url, "SELECT $1::bigint + 1 AS v",
     "SELECT $1::bigint * 3", "SET application_name = 'evdb_dirty'",
     "SELECT CASE WHEN current_setting('application_name') = 'evdb_dirty' THEN 1 ELSE 0 END",
     "CREATE TEMPORARY TABLE evdb_tmp (x int)", "SELECT pg_terminate_backend(%lld)",
     "SELECT pg_sleep(5)"},
    {"mariadb", evdb_test_my_url, evdb_test_my_admin_url, "SELECT ? + 1 AS v", "SELECT ? * 3",
     "SET @evdb_dirty = 1", "SELECT IF(@evdb_dirty IS NULL, 0, 1)",
     "CREATE TEMPORARY TABLE evdb_tmp (x int)", "KILL CONNECTION %lld", "SELECT SLEEP(5)"},
};

static const char *need(const char *(*get)(void))
{
    const char *u = get();
    ck_assert_msg(u != NULL, "no test servers: run scripts/testdb start");
    return u;
}

static evdb_future *q_ok(evdb_pool *p, const char *sql)
{
    evdb_future *f = evdb_pool_query(p, sql, NULL, 0, NULL);
    ck_assert_msg(f != NULL, "%s: %s", sql, evdb_error_message(evdb_last_error()));
    ck_assert_msg(t_wait(f) == 0, "%s: %s", sql, evdb_error_message(evdb_future_error(f)));
    return f;
}

static evdb_future *c_query(evdb_conn *c, const char *sql)
{
    evdb_future *f = evdb_conn_query(c, sql, NULL, 0, NULL);
    ck_assert_msg(f != NULL, "%s: %s", sql, evdb_error_message(evdb_last_error()));
    return f;
}

static int64_t int_of(evdb_future *f)
{
    int64_t v = -1;
    ck_assert_int_eq(evdb_result_int(evdb_future_result(f), 0, 0, &v), 0);
    return v;
}

static void close_pool(evdb_pool *p)
{
    evdb_future *f = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

START_TEST(gathered_pooled_queries_each_get_their_own_result)
{
    const backend *b = &backends[_i];
    evdb_pool_opts o = {.max_conns = 4};
    evdb_pool *p = evdb_pool_new(L, need(b->url), &o);
    ck_assert_ptr_nonnull(p);
    /* 10,000 mixed queries: two statements, literals and parameters. */
    enum { N = 10000 };
    evdb_future **fs = calloc(N, sizeof *fs);
    for (int i = 0; i < N; i++) {
        evdb_value v = evdb_int(i);
        if (i % 5 == 4) {
            char sql[64];
            snprintf(sql, sizeof sql, "SELECT %d + 1", i);
            fs[i] = evdb_pool_query(p, sql, NULL, 0, NULL);
        } else {
            fs[i] = evdb_pool_query(p, i % 2 ? b->param_sql3 : b->param_sql, &v, 1, NULL);
        }
        ck_assert_ptr_nonnull(fs[i]);
    }
    evdb_future *g = evdb_gather(fs, N, 0);
    ck_assert_msg(t_wait(g) == 0, "%s", evdb_error_message(evdb_future_error(g)));
    for (int i = 0; i < N; i++) {
        int64_t want = i % 5 == 4 ? i + 1 : i % 2 ? (int64_t)i * 3 : i + 1;
        ck_assert_int_eq(int_of(fs[i]), want);
        evdb_future_unref(fs[i]);
    }
    free(fs);
    evdb_future_unref(g);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_le(st.total, 4);
    ck_assert_uint_ge(st.connects, 1);
    close_pool(p);
}
END_TEST

START_TEST(released_connection_is_never_handed_out_dirty)
{
    const backend *b = &backends[_i];
    /* One connection, so the next borrower gets the same session back
     * (or a new one, if the pool chose to discard it). */
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = evdb_pool_new(L, need(b->url), &o);
    evdb_future_unref(q_ok(p, "CREATE TABLE IF NOT EXISTS evdb_pool_dirty (x int)"));
    evdb_future_unref(q_ok(p, "DELETE FROM evdb_pool_dirty"));

    evdb_future *a = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(a), 0);
    evdb_conn *c = evdb_future_take_conn(a);
    const char *steps[] = {"BEGIN", "INSERT INTO evdb_pool_dirty VALUES (1)", b->set_sql,
                           b->temp_sql};
    for (size_t i = 0; i < 4; i++) {
        evdb_future *f = c_query(c, steps[i]);
        ck_assert_msg(t_wait(f) == 0, "%s: %s", steps[i], evdb_error_message(evdb_future_error(f)));
        evdb_future_unref(f);
    }
    /* Released inside the transaction, with a setting and a temp table. */
    ck_assert_int_eq(evdb_conn_release(c), 0);
    evdb_future_unref(a);

    evdb_future *n = q_ok(p, "SELECT COUNT(*) FROM evdb_pool_dirty");
    ck_assert_int_eq(int_of(n), 0);
    evdb_future_unref(n);
    evdb_future *d = q_ok(p, b->check_sql);
    ck_assert_int_eq(int_of(d), 0);
    evdb_future_unref(d);
    evdb_future *t = evdb_pool_query(p, "SELECT COUNT(*) FROM evdb_tmp", NULL, 0, NULL);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    evdb_future_unref(t);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.resets + st.discarded, 1);
    ck_assert_uint_eq(st.resets, 1); /* reset, not thrown away */
    evdb_future_unref(q_ok(p, "DROP TABLE evdb_pool_dirty"));
    close_pool(p);
}
END_TEST

static evdb_future *txn_insert(evdb_conn *c, void *arg)
{
    return evdb_conn_query(c, (const char *)arg, NULL, 0, NULL);
}

START_TEST(transaction_helper_commits_and_rolls_back)
{
    const backend *b = &backends[_i];
    evdb_pool *p = evdb_pool_new(L, need(b->url), NULL);
    evdb_future_unref(q_ok(p, "CREATE TABLE IF NOT EXISTS evdb_pool_txn (x int)"));
    evdb_future_unref(q_ok(p, "DELETE FROM evdb_pool_txn"));
    evdb_future *t =
        evdb_pool_transaction(p, txn_insert, "INSERT INTO evdb_pool_txn VALUES (1)", 5);
    ck_assert_msg(t_wait(t) == 0, "%s", evdb_error_message(evdb_future_error(t)));
    ck_assert_int_eq(evdb_result_affected(evdb_future_result(t)), 1);
    evdb_future_unref(t);
    t = evdb_pool_transaction(p, txn_insert, "INSERT INTO evdb_pool_txn VALUES (1, 2, 3)", 5);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    evdb_future_unref(t);
    evdb_future *n = q_ok(p, "SELECT COUNT(*) FROM evdb_pool_txn");
    ck_assert_int_eq(int_of(n), 1);
    evdb_future_unref(n);
    evdb_future_unref(q_ok(p, "DROP TABLE evdb_pool_txn"));
    close_pool(p);
}
END_TEST

/* A borrow handle kept after its release never reaches the connection's
 * next borrower (the same session here): every call on it fails with
 * EVDB_EINVAL, and the new borrower's session keeps its state (a release
 * through the old handle would have rolled it back and reset it). */
START_TEST(stale_handle_never_reaches_the_next_borrower)
{
    const backend *b = &backends[_i];
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = evdb_pool_new(L, need(b->url), &o);
    evdb_future *fa = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(fa), 0);
    evdb_conn *a = evdb_future_take_conn(fa);
    int64_t id = evdb_conn_server_id(a);
    ck_assert(id > 0);
    ck_assert_int_eq(evdb_conn_release(a), 0);
    evdb_future *fb = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(fb), 0);
    evdb_conn *b2 = evdb_future_take_conn(fb);
    ck_assert_ptr_ne(a, b2);
    ck_assert_int_eq(evdb_conn_server_id(b2), id); /* the same session, reset */
    evdb_future *f = c_query(b2, b->set_sql);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);

    ck_assert_int_eq(evdb_conn_release(a), EVDB_EINVAL);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_last_error()), "stale"));
    ck_assert_ptr_null(evdb_conn_query(a, "SELECT 1", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_stmt st1 = {"SELECT 1", NULL, 0};
    ck_assert_ptr_null(evdb_conn_batch(a, &st1, 1, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_conn_prepare(a, "SELECT 1", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_int_eq(evdb_conn_status(a), EVDB_EINVAL);
    ck_assert_int_eq(evdb_conn_server_id(a), 0);

    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.acquired, 1);
    ck_assert_uint_eq(st.resets, 1);
    f = c_query(b2, b->check_sql);
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_int_eq(int_of(f), 1); /* still b2's dirty session */
    evdb_future_unref(f);
    ck_assert_int_eq(evdb_conn_release(b2), 0);
    evdb_future_unref(fa);
    evdb_future_unref(fb);
    f = q_ok(p, b->check_sql);
    ck_assert_int_eq(int_of(f), 0);
    evdb_future_unref(f);
    close_pool(p);
}
END_TEST

/* On the real drivers: a statement the deadline found running may have
 * taken effect (outcome unknown); one still waiting in the pool did not. */
START_TEST(timeouts_say_whether_the_statement_ran)
{
    const backend *b = &backends[_i];
    /* Depth 1: the second query waits in the pool, not pipelined behind. */
    evdb_pool_opts o = {.max_conns = 1, .pipeline_depth = 1};
    evdb_pool *p = evdb_pool_new(L, need(b->url), &o);
    evdb_future_unref(q_ok(p, "SELECT 1"));
    evdb_query_opts slow = {.timeout = 0.3}, quick = {.timeout = 0.1};
    evdb_future *run = evdb_pool_query(p, b->sleep_sql, NULL, 0, &slow);
    evdb_future *wait = evdb_pool_query(p, "SELECT 2", NULL, 0, &quick);
    ck_assert_int_eq(t_wait(wait), EVDB_ETIMEDOUT);
    ck_assert_int_eq(t_wait(run), EVDB_ETIMEDOUT);
    ck_assert(!evdb_error_outcome_unknown(evdb_future_error(wait)));
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(wait)), "not sent"));
    ck_assert(evdb_error_outcome_unknown(evdb_future_error(run)));
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(run)), "unknown"));
    /* The connection serves again once the cancel settled. */
    evdb_future_unref(q_ok(p, "SELECT 3"));
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.query_timeouts, 2);
    ck_assert_uint_eq(st.queries, 4);
    ck_assert_uint_eq(st.query_errors, 2);
    evdb_future_unref(run);
    evdb_future_unref(wait);
    close_pool(p);
}
END_TEST

START_TEST(pool_recovers_when_the_server_kills_its_session)
{
    const backend *b = &backends[_i];
    evdb_pool_opts o = {.max_conns = 1, .backoff_initial = 0.05};
    evdb_pool *p = evdb_pool_new(L, need(b->url), &o);
    evdb_future *a = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(a), 0);
    evdb_conn *c = evdb_future_take_conn(a);
    long long id = (long long)evdb_conn_server_id(c);
    ck_assert(id > 0);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    evdb_future_unref(a);
    evdb_future_unref(q_ok(p, "SELECT 1"));

    evdb_future *af = evdb_conn_open(L, need(b->admin_url), NULL);
    ck_assert_int_eq(t_wait(af), 0);
    evdb_conn *admin = evdb_future_take_conn(af);
    evdb_future_unref(af);
    char sql[128];
    snprintf(sql, sizeof sql, b->kill_fmt, id);
    evdb_future *k = c_query(admin, sql);
    ck_assert_msg(t_wait(k) == 0, "%s", evdb_error_message(evdb_future_error(k)));
    evdb_future_unref(k);
    evdb_future *cf = evdb_conn_close(admin);
    t_wait(cf);
    evdb_future_unref(cf);

    /* The idle session's death is noticed and it is replaced: the next
     * queries all succeed on a new session. */
    t_run_for(L, 0.3);
    evdb_future *fs[10];
    for (int i = 0; i < 10; i++)
        fs[i] = evdb_pool_query(p, "SELECT 1", NULL, 0, NULL);
    evdb_future *g = evdb_gather(fs, 10, 0);
    ck_assert_msg(t_wait(g) == 0, "%s", evdb_error_message(evdb_future_error(g)));
    for (int i = 0; i < 10; i++)
        evdb_future_unref(fs[i]);
    evdb_future_unref(g);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.broken, 1);
    ck_assert_uint_eq(st.connects, 2);
    close_pool(p);
}
END_TEST

START_TEST(wrong_password_fails_waiters_with_the_reason)
{
    const backend *b = &backends[_i];
    char url[512];
    snprintf(url, sizeof url, "%s", need(b->url));
    char *pw = strstr(url, "evdb_secret");
    ck_assert_ptr_nonnull(pw);
    memcpy(pw, "wrong_pass!", 11);
    evdb_pool *p = evdb_pool_new(L, url, NULL);
    evdb_future *f = evdb_pool_query(p, "SELECT 1", NULL, 0, NULL);
    double t0 = t_now();
    ck_assert_int_eq(t_wait(f), EVDB_EAUTH);
    ck_assert(t_now() - t0 < 5);
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_future_error(f)), "wrong_pass"));
    evdb_future_unref(f);
    close_pool(p);
}
END_TEST

/* Run scripts/testdb on the suite's own servers; false when the suite was
 * pointed at servers by hand (no EVDB_TESTDB_DIR). */
static bool testdb(const char *command)
{
    int rc = t_testdb(NULL, command, NULL);
    if (rc == -1)
        return false;
    ck_assert_int_eq(rc, 0);
    return true;
}

/* Sustained load: WORKERS chains, each submitting its next query from the
 * previous one's callback, with a per-submission record to prove every
 * future completes exactly once. */
enum { WORKERS = 32, MAX_SUBMITS = 4000000 };

typedef struct load {
    evdb_pool *pool;
    bool stop;
    size_t submitted, completed, ok, lost, refused, other;
    size_t ok_since_mark;
    unsigned char *calls; /* per submission: how many callbacks ran */
} load;

typedef struct ticket {
    load *l;
    size_t n;
} ticket;

static void submit_next(load *l);

static void on_load_done(evdb_future *f, void *arg)
{
    ticket *t = arg;
    load *l = t->l;
    l->calls[t->n]++;
    l->completed++;
    int st = evdb_future_status(f);
    if (st == 0) {
        l->ok++;
        l->ok_since_mark++;
    } else if (st == EVDB_ECONNLOST) {
        l->lost++;
    } else if (st == EVDB_ECONNECT || st == EVDB_EPOOLTIMEOUT || st == EVDB_ESERVER) {
        /* Refused while down, or the server's own shutdown error (57P01). */
        l->refused++;
    } else {
        l->other++;
        fprintf(stderr, "unexpected: %s %s\n", evdb_err_name(st),
                evdb_error_message(evdb_future_error(f)));
    }
    free(t);
    evdb_future_unref(f);
    if (!l->stop)
        submit_next(l);
}

static void submit_next(load *l)
{
    ck_assert_uint_lt(l->submitted, MAX_SUBMITS);
    ticket *t = malloc(sizeof *t);
    t->l = l;
    t->n = l->submitted++;
    evdb_future *f = evdb_pool_query(l->pool, "SELECT 1", NULL, 0, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(evdb_future_on_done(f, on_load_done, t), 0);
}

START_TEST(pool_survives_server_stop_and_restart_under_load)
{
    const backend *b = &backends[_i];
    evdb_pool_opts o = {.max_conns = 4,
                        .min_conns = 2,
                        .backoff_initial = 0.05,
                        .backoff_max = 0.3,
                        .acquire_timeout = 2};
    load l = {0};
    l.pool = evdb_pool_new(L, need(b->url), &o);
    l.calls = calloc(MAX_SUBMITS, 1);
    for (int i = 0; i < WORKERS; i++)
        submit_next(&l);
    t_run_for(L, 0.3);
    ck_assert_uint_gt(l.ok, 0);
    if (!testdb(_i == 0 ? "stop-pg" : "stop-my")) {
        fprintf(stderr, "integ_pool: no EVDB_TESTDB_DIR; restart test skipped\n");
        l.stop = true;
    } else {
        t_run_for(L, 0.5);
        testdb(_i == 0 ? "start-pg" : "start-my");
        l.ok_since_mark = 0;
        t_run_for(L, 2.0);
        /* Recovered: queries succeed again on new sessions. */
        ck_assert_uint_gt(l.ok_since_mark, 100);
        l.stop = true;
    }
    while (l.completed < l.submitted)
        t_run_for(L, 0.1);
    /* The audit: every submission completed exactly once. */
    ck_assert_uint_eq(l.completed, l.submitted);
    for (size_t i = 0; i < l.submitted; i++)
        ck_assert_int_eq(l.calls[i], 1);
    ck_assert_uint_eq(l.ok + l.lost + l.refused + l.other, l.submitted);
    ck_assert_uint_eq(l.other, 0);
    evdb_pool_stats st;
    evdb_pool_stats_get(l.pool, &st);
    ck_assert_uint_ge(st.broken, 1);
    ck_assert_uint_ge(st.connects, 3);
    free(l.calls);
    close_pool(l.pool);
}
END_TEST

typedef struct pool_notices {
    int calls;
    char last[128];
} pool_notices;

static void on_pool_notice(evdb_conn *c, const evdb_error *notice, void *arg)
{
    (void)c;
    pool_notices *n = arg;
    n->calls++;
    snprintf(n->last, sizeof n->last, "%s", evdb_error_message(notice));
}

START_TEST(pool_delivers_server_notices_to_its_hook)
{
    pool_notices n = {0};
    evdb_pool_opts o = {.max_conns = 2, .notice_hook = on_pool_notice, .notice_hook_arg = &n};
    evdb_pool *p = evdb_pool_new(L, need(evdb_test_pg_url), &o);
    evdb_future_unref(q_ok(p, "DO $$BEGIN RAISE NOTICE 'pool-notice %', 7; END$$"));
    t_run_for(L, 0.05);
    ck_assert_int_eq(n.calls, 1);
    ck_assert_ptr_nonnull(strstr(n.last, "pool-notice 7"));
    close_pool(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool_integration");
    TCase *tc = tcase_create("both_backends");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, gathered_pooled_queries_each_get_their_own_result, 0, 2);
    tcase_add_loop_test(tc, released_connection_is_never_handed_out_dirty, 0, 2);
    tcase_add_loop_test(tc, transaction_helper_commits_and_rolls_back, 0, 2);
    tcase_add_loop_test(tc, stale_handle_never_reaches_the_next_borrower, 0, 2);
    tcase_add_loop_test(tc, timeouts_say_whether_the_statement_ran, 0, 2);
    tcase_add_loop_test(tc, pool_recovers_when_the_server_kills_its_session, 0, 2);
    tcase_add_loop_test(tc, wrong_password_fails_waiters_with_the_reason, 0, 2);
    tcase_add_loop_test(tc, pool_survives_server_stop_and_restart_under_load, 0, 2);
    tcase_add_test(tc, pool_delivers_server_notices_to_its_hook);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
