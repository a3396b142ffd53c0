/*
 * Transactions (include/evdb/txn.h) against both real servers
 * (scripts/testdb), PostgreSQL (_i == 0) and MariaDB (_i == 1) where the
 * behaviour is shared: options take effect inside the transaction, BEGIN
 * leaves with the first statement (PostgreSQL), static transactions are
 * all or nothing, savepoints roll back alone and nest, retries happen only
 * for retryable errors, are bounded and say how many attempts ran, and a
 * connection lost mid-transaction completes every future exactly once.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "faultproxy.h"
#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 60

static struct ev_loop *L;
static evdb_fp *FP;

typedef struct backend {
    const char *name;
    const char *(*url)(void);
    const char *(*admin_url)(void);
    const char *port_var;
    const char *create_sql; /* table evdb_txn (id int primary key, v int) */
    const char *insert_sql; /* one parameter: the id, v = 0 */
    const char *incr_sql;   /* one parameter: the id; v = v + 1 */
    const char *count_sql;  /* rows of evdb_txn */
    const char *sleep_fmt;  /* sleeps %g seconds */
    const char *deadlock;   /* SQLSTATE of a deadlock */
    int deadlock_code;      /* driver code of a deadlock (MariaDB) */
} backend;

static const backend backends[2] = {
    {"postgres", evdb_test_pg_url, evdb_test_pg_admin_url, "EVDB_TEST_PG_PORT",
     "CREATE TABLE evdb_txn (id int PRIMARY KEY, v int NOT NULL)",
     "INSERT INTO evdb_txn VALUES ($1::int, 0)", "UPDATE evdb_txn SET v = v + 1 WHERE id = $1::int",
     "SELECT COUNT(*) FROM evdb_txn", "SELECT pg_sleep(%g)", "40P01", 0},
    {"mariadb", evdb_test_my_url, evdb_test_my_admin_url, "EVDB_TEST_MY_PORT",
     "CREATE TABLE evdb_txn (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB",
     "INSERT INTO evdb_txn VALUES (?, 0)", "UPDATE evdb_txn SET v = v + 1 WHERE id = ?",
     "SELECT COUNT(*) FROM evdb_txn", "SELECT SLEEP(%g)", "40001", 1213},
};

static const char *need(const char *(*get)(void))
{
    const char *u = get();
    ck_assert_msg(u != NULL, "no test servers: run scripts/testdb start");
    return u;
}

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
    FP = NULL;
}

static void teardown(void)
{
    evdb_fp_free(FP);
    FP = NULL;
    t_loop_free(L);
}

/* A pool with a fresh evdb_txn table holding rows 1..nrows. */
static evdb_pool *pool_with_table(const backend *b, int nrows)
{
    evdb_pool_opts o = {.max_conns = 4};
    evdb_pool *p = t_pool_new(L, need(b->url), &o);
    t_pool_exec_ok(p, "DROP TABLE IF EXISTS evdb_txn");
    t_pool_exec_ok(p, b->create_sql);
    for (int i = 1; i <= nrows; i++) {
        evdb_value v = evdb_int(i);
        evdb_future_unref(t_pool_run_ok(p, b->insert_sql, &v, 1));
    }
    return p;
}

static void drop_and_close(evdb_pool *p)
{
    t_pool_exec_ok(p, "DROP TABLE IF EXISTS evdb_txn");
    t_pool_close(p);
}

static int64_t v_of(evdb_pool *p, int id)
{
    char sql[80];
    snprintf(sql, sizeof sql, "SELECT v FROM evdb_txn WHERE id = %d", id);
    return t_pool_int(p, sql);
}

/* Await q inside a task; on failure the task fails with q's error. */
#define AWAIT_OK(q)                                                                                \
    do {                                                                                           \
        evdb_future *q_ = (q);                                                                     \
        if (!q_)                                                                                   \
            return evdb_task_fail_error(evdb_last_error());                                        \
        if (evdb_await(q_) != 0) {                                                                 \
            void *r_ = evdb_task_fail_error(evdb_future_error(q_));                                \
            evdb_future_unref(q_);                                                                 \
            return r_;                                                                             \
        }                                                                                          \
        evdb_future_unref(q_);                                                                     \
    } while (0)

static evdb_future *param_query(evdb_conn *c, const char *sql, int id)
{
    evdb_value v = evdb_int(id);
    return evdb_conn_query(c, sql, &v, 1, NULL);
}

/* Counts completions of a future. */
static void count_done(evdb_future *f, void *arg)
{
    (void)f;
    (*(int *)arg)++;
}

/* ------------------------------------------------------------- options */

typedef struct opt_probe {
    const backend *b;
    char isolation[40];
    int write_status;
    char write_state[6];
} opt_probe;

static void probe_write(evdb_conn *c, opt_probe *pr)
{
    evdb_future *w = param_query(c, pr->b->incr_sql, 1);
    pr->write_status = evdb_await(w);
    if (pr->write_status)
        snprintf(pr->write_state, sizeof pr->write_state, "%s",
                 evdb_error_sqlstate(evdb_future_error(w)));
    evdb_future_unref(w);
}

static void *probe_options(evdb_conn *c, void *arg)
{
    opt_probe *pr = arg;
    if (pr->b == &backends[0]) {
        evdb_future *q = evdb_conn_query(c, "SHOW transaction_isolation", NULL, 0, NULL);
        if (evdb_await(q) == 0)
            snprintf(pr->isolation, sizeof pr->isolation, "%s",
                     evdb_result_text(evdb_future_result(q), 0, 0, NULL));
        evdb_future_unref(q);
        probe_write(c, pr);
        return NULL;
    }
    /* MariaDB shows the transaction's own level only in innodb_trx (where
     * a transaction appears once it read or wrote a row), read here over
     * an administrator's connection (PROCESS). InnoDB refreshes that table
     * from a cache at most every 0.1 s: wait that long first. */
    evdb_future *q =
        evdb_conn_query(c, "SELECT CONNECTION_ID(), v FROM evdb_txn WHERE id = 1", NULL, 0, NULL);
    int64_t id = -1;
    if (evdb_await(q) == 0)
        evdb_result_int(evdb_future_result(q), 0, 0, &id);
    evdb_future_unref(q);
    probe_write(c, pr);
    evdb_future *z = evdb_sleep(evdb_task_loop(), 0.15);
    evdb_await(z);
    evdb_future_unref(z);
    evdb_future *o = evdb_conn_open(evdb_task_loop(), pr->b->admin_url(), NULL);
    if (evdb_await(o) == 0) {
        evdb_conn *a = evdb_future_take_conn(o);
        evdb_value v = evdb_int(id);
        evdb_future *t =
            evdb_conn_query(a,
                            "SELECT CONCAT(trx_isolation_level, '/', trx_is_read_only) FROM "
                            "information_schema.innodb_trx WHERE trx_mysql_thread_id = ?",
                            &v, 1, NULL);
        if (evdb_await(t) == 0 && evdb_result_nrows(evdb_future_result(t)) == 1)
            snprintf(pr->isolation, sizeof pr->isolation, "%s",
                     evdb_result_text(evdb_future_result(t), 0, 0, NULL));
        else
            snprintf(pr->isolation, sizeof pr->isolation, "? %lld %s", (long long)id,
                     evdb_error_message(evdb_future_error(t)));
        evdb_future_unref(t);
        evdb_future *cl = evdb_conn_close(a);
        evdb_await(cl);
        evdb_future_unref(cl);
    } else {
        snprintf(pr->isolation, sizeof pr->isolation, "open: %s",
                 evdb_error_message(evdb_future_error(o)));
    }
    evdb_future_unref(o);
    return NULL;
}

START_TEST(options_take_effect_inside_the_transaction)
{
    const backend *b = &backends[_i];
    evdb_pool *p = pool_with_table(b, 1);
    opt_probe pr = {.b = b};
    evdb_txn_opts o = {.isolation = EVDB_ISOLATION_SERIALIZABLE, .read_only = true};
    evdb_future *t = evdb_pool_transaction_task(p, probe_options, &pr, &o);
    ck_assert_ptr_nonnull(t);
    ck_assert_msg(t_wait(t) == 0, "%s", evdb_error_message(evdb_future_error(t)));
    evdb_future_unref(t);
    if (_i == 0)
        ck_assert_str_eq(pr.isolation, "serializable");
    else
        ck_assert_str_eq(pr.isolation, "SERIALIZABLE/1");
    ck_assert_int_eq(pr.write_status, EVDB_ESERVER);
    ck_assert_str_eq(pr.write_state, "25006"); /* read-only transaction */

    /* The next transaction on the same pool is back to the defaults. */
    memset(&pr, 0, sizeof pr);
    pr.b = b;
    t = evdb_pool_transaction_task(p, probe_options, &pr, NULL);
    ck_assert_int_eq(t_wait(t), 0);
    evdb_future_unref(t);
    if (_i == 0)
        ck_assert_str_eq(pr.isolation, "read committed");
    else
        ck_assert_str_eq(pr.isolation, "REPEATABLE READ/0");
    ck_assert_int_eq(pr.write_status, 0);
    ck_assert_int_eq(v_of(p, 1), 1);

    /* Repeatable read, read-write. */
    memset(&pr, 0, sizeof pr);
    pr.b = b;
    evdb_txn_opts rr = {.isolation = EVDB_ISOLATION_REPEATABLE_READ};
    t = evdb_pool_transaction_task(p, probe_options, &pr, &rr);
    ck_assert_int_eq(t_wait(t), 0);
    evdb_future_unref(t);
    ck_assert_str_eq(pr.isolation, _i == 0 ? "repeatable read" : "REPEATABLE READ/0");
    drop_and_close(p);
}
END_TEST

static evdb_future *fn_never(evdb_conn *c, void *arg)
{
    (void)c;
    (void)arg;
    ck_abort_msg("fn must not run");
    return NULL;
}

START_TEST(deferrable_is_refused_on_mariadb_and_bad_options_at_once)
{
    evdb_pool *p = t_pool_new(L, need(evdb_test_my_url), NULL);
    evdb_txn_opts o = {.isolation = EVDB_ISOLATION_SERIALIZABLE, .deferrable = true};
    ck_assert_ptr_null(evdb_pool_transaction_opts(p, fn_never, NULL, &o));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ENOTSUP);
    evdb_stmt s = {"SELECT 1", NULL, 0};
    ck_assert_ptr_null(evdb_pool_transaction_batch(p, &s, 1, &o));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ENOTSUP);
    evdb_txn_opts bad = {.isolation = (evdb_isolation)42};
    ck_assert_ptr_null(evdb_pool_transaction_opts(p, fn_never, NULL, &bad));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_pool_transaction_batch(p, &s, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    t_pool_close(p);
}
END_TEST

START_TEST(deferrable_serializable_read_only_on_postgres)
{
    evdb_pool *p = pool_with_table(&backends[0], 1);
    opt_probe pr = {.b = &backends[0]};
    evdb_txn_opts o = {
        .isolation = EVDB_ISOLATION_SERIALIZABLE, .read_only = true, .deferrable = true};
    evdb_future *t = evdb_pool_transaction_task(p, probe_options, &pr, &o);
    ck_assert_msg(t_wait(t) == 0, "%s", evdb_error_message(evdb_future_error(t)));
    evdb_future_unref(t);
    ck_assert_str_eq(pr.isolation, "serializable");
    ck_assert_str_eq(pr.write_state, "25006");
    drop_and_close(p);
}
END_TEST

/* ------------------------------------------------ BEGIN with the first */

static void *time_since_begin(evdb_conn *c, void *arg)
{
    double *gap = arg;
    evdb_future *q = evdb_conn_query(
        c, "SELECT EXTRACT(EPOCH FROM statement_timestamp() - transaction_timestamp())::float8",
        NULL, 0, NULL);
    if (!q)
        return evdb_task_fail_error(evdb_last_error());
    if (evdb_await(q) == 0)
        evdb_result_double(evdb_future_result(q), 0, 0, gap);
    evdb_future_unref(q);
    return NULL;
}

/* Through a proxy that delays every chunk by 150 ms each way: had the
 * first statement waited for BEGIN's answer, the server would have
 * received it a round trip (>= 300 ms) after BEGIN; sent in the same write,
 * the server starts it right after BEGIN. */
START_TEST(begin_leaves_in_the_same_write_as_the_first_statement)
{
    const char *u = need(evdb_test_pg_url);
    int port = atoi(evdb_test_env("EVDB_TEST_PG_PORT"));
    char err[160];
    FP = evdb_fp_new(L, 0, "127.0.0.1", port, err, sizeof err);
    ck_assert_msg(FP != NULL, "fault proxy: %s", err);
    char pat[16], url[512];
    snprintf(pat, sizeof pat, ":%d/", port);
    const char *at = strstr(u, pat);
    ck_assert_ptr_nonnull(at);
    snprintf(url, sizeof url, "%.*s:%d/%s", (int)(at - u), u, evdb_fp_port(FP), at + strlen(pat));
    evdb_pool_opts po = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, url, &po);
    t_pool_exec_ok(p, "SELECT 1"); /* connected */
    ck_assert_int_eq(evdb_fp_set(FP, EVDB_FP_DELAY, 150), 0);
    for (int serializable = 0; serializable < 2; serializable++) {
        double gap = -1;
        evdb_txn_opts o = {.isolation =
                               serializable ? EVDB_ISOLATION_SERIALIZABLE : EVDB_ISOLATION_DEFAULT};
        evdb_future *t = evdb_pool_transaction_task(p, time_since_begin, &gap, &o);
        ck_assert_msg(t_wait(t) == 0, "%s", evdb_error_message(evdb_future_error(t)));
        evdb_future_unref(t);
        ck_assert_msg(gap >= 0 && gap < 0.1, "first statement %.3f s after BEGIN", gap);
    }
    ck_assert_int_eq(evdb_fp_set(FP, EVDB_FP_PASS, 0), 0);
    t_pool_close(p);
}
END_TEST

static evdb_future *insert_two(evdb_conn *c, void *arg)
{
    const backend *b = arg;
    evdb_value v = evdb_int(2);
    return evdb_conn_query(c, b->insert_sql, &v, 1, NULL);
}

START_TEST(fn_error_rolls_back_and_commit_keeps)
{
    const backend *b = &backends[_i];
    evdb_pool *p = pool_with_table(b, 1);
    int done = 0;
    evdb_future *t = evdb_pool_transaction_opts(p, insert_two, (void *)b, NULL);
    ck_assert_int_eq(evdb_future_on_done(t, count_done, &done), 0);
    ck_assert_int_eq(t_wait(t), 0);
    ck_assert_int_eq(evdb_result_affected(evdb_future_result(t)), 1);
    evdb_future_unref(t);
    /* The same INSERT again: duplicate key, rolled back, not retried. */
    evdb_txn_opts o = {.max_attempts = 5};
    t = evdb_pool_transaction_opts(p, insert_two, (void *)b, &o);
    ck_assert_int_eq(evdb_future_on_done(t, count_done, &done), 0);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_future_error(t)), "attempts"));
    evdb_future_unref(t);
    t_run_for(L, 0.05);
    ck_assert_int_eq(done, 2);
    ck_assert_int_eq(t_pool_int(p, b->count_sql), 2);
    drop_and_close(p);
}
END_TEST

/* A failed transaction dropped unread is reported as a transaction (the
 * unobserved-error hook and evdb_task_dump name the future's kind). */
static char unobserved_what[32];
static int unobserved_code;

static void on_unobserved(const evdb_error *err, const char *what, void *arg)
{
    (void)arg;
    snprintf(unobserved_what, sizeof unobserved_what, "%s", what);
    unobserved_code = evdb_error_code(err);
}

START_TEST(an_unread_failed_transaction_is_reported_as_one)
{
    const backend *b = &backends[_i];
    evdb_pool *p = pool_with_table(b, 1);
    evdb_future *t = evdb_pool_transaction_opts(p, insert_two, (void *)b, NULL);
    ck_assert_int_eq(t_wait(t), 0);
    evdb_future_unref(t);
    unobserved_what[0] = '\0';
    evdb_set_unobserved_error_hook(on_unobserved, NULL);
    /* The same INSERT again fails (duplicate key); nobody reads it. */
    t = evdb_pool_transaction_opts(p, insert_two, (void *)b, NULL);
    t_run_for(L, 0.5);
    evdb_future_unref(t);
    evdb_set_unobserved_error_hook(NULL, NULL);
    ck_assert_str_eq(unobserved_what, "transaction");
    ck_assert_int_eq(unobserved_code, EVDB_ESERVER);
    drop_and_close(p);
}
END_TEST

/* --------------------------------------------------- static transactions */

START_TEST(static_transaction_is_all_or_nothing)
{
    const backend *b = &backends[_i];
    evdb_pool *p = pool_with_table(b, 1);
    evdb_value ids[4] = {evdb_int(10), evdb_int(11), evdb_int(1), evdb_int(1)};
    evdb_stmt ok[3] = {
        {b->insert_sql, &ids[0], 1}, {b->insert_sql, &ids[1], 1}, {b->incr_sql, &ids[2], 1}};
    for (int with_opts = 0; with_opts < 2; with_opts++) {
        evdb_txn_opts o = {.isolation = EVDB_ISOLATION_SERIALIZABLE};
        evdb_future *t = evdb_pool_transaction_batch(p, ok, 3, with_opts ? &o : NULL);
        ck_assert_ptr_nonnull(t);
        ck_assert_msg(t_wait(t) == 0, "%s", evdb_error_message(evdb_future_error(t)));
        /* One result per statement, in order (the SET TRANSACTION of the
         * options is not among them). */
        const evdb_result *r = evdb_future_result(t);
        int n = 0;
        for (; r; r = evdb_result_next(r), n++)
            ck_assert_int_eq(evdb_result_affected(r), 1);
        ck_assert_int_eq(n, 3);
        evdb_future_unref(t);
        t_pool_exec_ok(p, "DELETE FROM evdb_txn WHERE id >= 10");
    }
    ck_assert_int_eq(v_of(p, 1), 2);
    /* The third statement fails (duplicate key): the first two are undone. */
    evdb_stmt bad[3] = {
        {b->insert_sql, &ids[0], 1}, {b->incr_sql, &ids[2], 1}, {b->insert_sql, &ids[3], 1}};
    for (int on_conn = 0; on_conn < 2; on_conn++) {
        evdb_future *t;
        evdb_conn *c = NULL;
        if (on_conn) {
            evdb_future *a = evdb_pool_acquire(p, 5);
            ck_assert_int_eq(t_wait(a), 0);
            c = evdb_future_take_conn(a);
            evdb_future_unref(a);
            t = evdb_conn_transaction_batch(c, bad, 3, NULL);
        } else {
            t = evdb_pool_transaction_batch(p, bad, 3, NULL);
        }
        ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
        ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(t)), "statement 3 of 3"));
        evdb_future_unref(t);
        if (c)
            ck_assert_int_eq(evdb_conn_release(c), 0);
        ck_assert_int_eq(t_pool_int(p, b->count_sql), 1);
        ck_assert_int_eq(v_of(p, 1), 2);
    }
    drop_and_close(p);
}
END_TEST

/* A read-only static transaction refuses its write and runs nothing. */
START_TEST(static_transaction_options_take_effect)
{
    const backend *b = &backends[_i];
    evdb_pool *p = pool_with_table(b, 1);
    evdb_value id = evdb_int(1);
    evdb_stmt s[2] = {{"SELECT 1", NULL, 0}, {b->incr_sql, &id, 1}};
    evdb_txn_opts o = {.read_only = true};
    evdb_future *t = evdb_pool_transaction_batch(p, s, 2, &o);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    ck_assert_str_eq(evdb_error_sqlstate(evdb_future_error(t)), "25006");
    evdb_future_unref(t);
    ck_assert_int_eq(v_of(p, 1), 0);
    /* And the pool's connections run the next one read-write. */
    t = evdb_pool_transaction_batch(p, s, 2, NULL);
    ck_assert_int_eq(t_wait(t), 0);
    evdb_future_unref(t);
    ck_assert_int_eq(v_of(p, 1), 1);
    drop_and_close(p);
}
END_TEST

/* ------------------------------------------------------------- savepoints */

typedef struct sp_case {
    const backend *b;
    int inner_status, inner2_status;
} sp_case;

static void *inner_fails(evdb_conn *c, void *arg)
{
    const backend *b = arg;
    AWAIT_OK(param_query(c, b->insert_sql, 20));
    AWAIT_OK(param_query(c, b->insert_sql, 1)); /* duplicate: fails */
    return NULL;
}

typedef struct sp_task_arg {
    evdb_conn *c;
    void *(*body)(evdb_conn *c, void *arg);
    void *arg;
} sp_task_arg;

static void *sp_task(void *p)
{
    sp_task_arg a = *(sp_task_arg *)p;
    free(p);
    return a.body(a.c, a.arg);
}

/* A savepoint body run as a task (a plain evdb_txn_fn). */
static evdb_future *spawn_body(evdb_conn *c, void *(*body)(evdb_conn *, void *), void *arg)
{
    sp_task_arg *a = malloc(sizeof *a);
    a->c = c;
    a->body = body;
    a->arg = arg;
    return evdb_task_spawn(evdb_task_loop() ? evdb_task_loop() : L, sp_task, a, NULL);
}

static evdb_future *inner_fails_sp(evdb_conn *c, void *arg)
{
    return spawn_body(c, inner_fails, arg);
}

static void *inner_ok(evdb_conn *c, void *arg)
{
    const backend *b = arg;
    AWAIT_OK(param_query(c, b->insert_sql, 30));
    return NULL;
}

static evdb_future *inner_ok_sp(evdb_conn *c, void *arg)
{
    return spawn_body(c, inner_ok, arg);
}

/* Outer savepoint: a row, then a nested savepoint that fails, then a row. */
static void *middle(evdb_conn *c, void *arg)
{
    sp_case *k = arg;
    AWAIT_OK(param_query(c, k->b->insert_sql, 40));
    evdb_future *s = evdb_conn_savepoint(c, inner_fails_sp, (void *)k->b);
    k->inner2_status = evdb_await(s);
    evdb_future_unref(s);
    AWAIT_OK(param_query(c, k->b->insert_sql, 41));
    return NULL;
}

static evdb_future *middle_sp(evdb_conn *c, void *arg)
{
    return spawn_body(c, middle, arg);
}

static void *outer(evdb_conn *c, void *arg)
{
    sp_case *k = arg;
    AWAIT_OK(param_query(c, k->b->incr_sql, 1));
    evdb_future *s = evdb_conn_savepoint(c, inner_fails_sp, (void *)k->b);
    k->inner_status = evdb_await(s);
    evdb_future_unref(s);
    AWAIT_OK(evdb_conn_savepoint(c, inner_ok_sp, (void *)k->b));
    AWAIT_OK(evdb_conn_savepoint(c, middle_sp, k));
    return NULL;
}

START_TEST(savepoint_rollback_keeps_the_outer_work_and_nests)
{
    const backend *b = &backends[_i];
    evdb_pool *p = pool_with_table(b, 1);
    sp_case k = {.b = b, .inner_status = 1, .inner2_status = 1};
    evdb_future *t = evdb_pool_transaction_task(p, outer, &k, NULL);
    ck_assert_msg(t_wait(t) == 0, "%s", evdb_error_message(evdb_future_error(t)));
    evdb_future_unref(t);
    ck_assert_int_eq(k.inner_status, EVDB_ESERVER);
    ck_assert_int_eq(k.inner2_status, EVDB_ESERVER);
    /* Rows: 1 (incremented), 30, 40, 41; 20 was rolled back twice. */
    ck_assert_int_eq(v_of(p, 1), 1);
    ck_assert_int_eq(t_pool_int(p, b->count_sql), 4);
    ck_assert_int_eq(t_pool_int(p, "SELECT COUNT(*) FROM evdb_txn WHERE id = 20"), 0);
    ck_assert_int_eq(t_pool_int(p, "SELECT COUNT(*) FROM evdb_txn WHERE id IN (30, 40, 41)"), 3);
    drop_and_close(p);
}
END_TEST

/* -------------------------------------------------------------- retries */

/* Two transactions meet here: each waits (in its task) until both have
 * arrived, so their first steps have both run before either goes on, on
 * any machine speed. Once met, later arrivals (retries) pass at once. */
typedef struct barrier {
    int arrived;
    evdb_future *met;
} barrier;

static void barrier_wait(barrier *b)
{
    if (!b->met)
        b->met = evdb_future_new(evdb_task_loop());
    if (++b->arrived == 2)
        evdb_future_resolve(b->met, NULL, NULL);
    evdb_await(b->met);
}

static void barrier_reset(barrier *b)
{
    evdb_future_unref(b->met);
    b->met = NULL;
    b->arrived = 0;
}

typedef struct lock_order {
    const backend *b;
    int first, second;
    int *runs;
    barrier *meet;
} lock_order;

static void *update_two(evdb_conn *c, void *arg)
{
    lock_order *o = arg;
    (*o->runs)++;
    AWAIT_OK(param_query(c, o->b->incr_sql, o->first));
    barrier_wait(o->meet);
    AWAIT_OK(param_query(c, o->b->incr_sql, o->second));
    return NULL;
}

/* Two transactions lock rows 1 and 2 in opposite orders: the server
 * breaks the deadlock by failing one; without retries it fails with the
 * deadlock error, with them both commit and the loser ran again. The
 * loser's second run can deadlock anew (it may take row 2 again before the
 * winner, woken, does): the runs are 3 or more, bounded by the attempts. */
START_TEST(deadlock_is_retried_and_both_commit)
{
    const backend *b = &backends[_i];
    evdb_pool *p = pool_with_table(b, 2);
    for (int retry = 0; retry < 2; retry++) {
        int runs = 0;
        barrier meet = {0};
        lock_order a = {b, 1, 2, &runs, &meet}, c = {b, 2, 1, &runs, &meet};
        evdb_txn_opts o = {.max_attempts = retry ? 5 : 1};
        evdb_future *f[2] = {evdb_pool_transaction_task(p, update_two, &a, &o),
                             evdb_pool_transaction_task(p, update_two, &c, &o)};
        int st0 = t_wait(f[0]), st1 = t_wait(f[1]);
        if (retry) {
            ck_assert_msg(st0 == 0 && st1 == 0, "%s / %s",
                          evdb_error_message(evdb_future_error(f[0])),
                          evdb_error_message(evdb_future_error(f[1])));
            ck_assert_msg(runs >= 3 && runs <= 10, "runs: %d", runs);
        } else {
            ck_assert_int_eq((st0 != 0) + (st1 != 0), 1);
            const evdb_error *e = evdb_future_error(f[st0 ? 0 : 1]);
            ck_assert_msg(evdb_error_is_retryable(e), "%s", evdb_error_message(e));
            ck_assert_str_eq(evdb_error_sqlstate(e), b->deadlock);
            if (b->deadlock_code)
                ck_assert_int_eq(evdb_error_driver_code(e), b->deadlock_code);
            ck_assert_int_eq(runs, 2);
        }
        evdb_future_unref(f[0]);
        evdb_future_unref(f[1]);
        barrier_reset(&meet);
    }
    /* Committed: without retry one transaction (2 increments), with retry
     * both (4): each row got 1 + 2. */
    ck_assert_int_eq(v_of(p, 1), 3);
    ck_assert_int_eq(v_of(p, 2), 3);
    drop_and_close(p);
}
END_TEST

typedef struct skew {
    int *runs;
    int group;
    barrier *meet;
} skew;

/* Write skew: each reads the sum of the other's rows and inserts; under
 * serializable one of two concurrent ones fails with 40001. */
static void *write_skew(evdb_conn *c, void *arg)
{
    skew *s = arg;
    (*s->runs)++;
    AWAIT_OK(evdb_conn_query(c, "SELECT COALESCE(SUM(v), 0) FROM evdb_txn WHERE id < 100", NULL, 0,
                             NULL));
    barrier_wait(s->meet);
    evdb_value v[2] = {evdb_int(100 + s->group + 10 * *s->runs), evdb_int(s->group)};
    AWAIT_OK(evdb_conn_query(c, "INSERT INTO evdb_txn VALUES ($1::int, $2::int)", v, 2, NULL));
    AWAIT_OK(
        evdb_conn_query(c, "UPDATE evdb_txn SET v = v + 1 WHERE id = 1 + $1::int", &v[1], 1, NULL));
    return NULL;
}

START_TEST(serialization_failure_is_retried)
{
    evdb_pool *p = pool_with_table(&backends[0], 2);
    int runs = 0;
    barrier meet = {0};
    skew a = {&runs, 0, &meet}, c = {&runs, 1, &meet};
    evdb_txn_opts o = {.isolation = EVDB_ISOLATION_SERIALIZABLE, .max_attempts = 4};
    evdb_future *f[2] = {evdb_pool_transaction_task(p, write_skew, &a, &o),
                         evdb_pool_transaction_task(p, write_skew, &c, &o)};
    ck_assert_msg(t_wait(f[0]) == 0, "%s", evdb_error_message(evdb_future_error(f[0])));
    ck_assert_msg(t_wait(f[1]) == 0, "%s", evdb_error_message(evdb_future_error(f[1])));
    evdb_future_unref(f[0]);
    evdb_future_unref(f[1]);
    ck_assert_int_ge(runs, 3); /* one failed with 40001 and ran again */
    ck_assert_int_eq(t_pool_int(p, "SELECT COUNT(*) FROM evdb_txn WHERE id >= 100"), 2);
    /* Without retries the same pair fails one with 40001. */
    t_pool_exec_ok(p, "DELETE FROM evdb_txn WHERE id >= 100");
    barrier_reset(&meet);
    runs = 0;
    o.max_attempts = 1;
    f[0] = evdb_pool_transaction_task(p, write_skew, &a, &o);
    f[1] = evdb_pool_transaction_task(p, write_skew, &c, &o);
    int st0 = t_wait(f[0]), st1 = t_wait(f[1]);
    ck_assert_int_eq((st0 != 0) + (st1 != 0), 1);
    ck_assert_str_eq(evdb_error_sqlstate(evdb_future_error(f[st0 ? 0 : 1])), "40001");
    evdb_future_unref(f[0]);
    evdb_future_unref(f[1]);
    ck_assert_int_eq(runs, 2);
    barrier_reset(&meet);
    drop_and_close(p);
}
END_TEST

static evdb_future *always_40001(evdb_conn *c, void *arg)
{
    (*(int *)arg)++;
    return evdb_conn_query(c, "DO $$BEGIN RAISE EXCEPTION 'made up' USING ERRCODE = '40001'; END$$",
                           NULL, 0, NULL);
}

START_TEST(retries_are_bounded_and_the_error_counts_them)
{
    evdb_pool *p = t_pool_new(L, need(evdb_test_pg_url), NULL);
    int runs = 0, done = 0;
    evdb_txn_opts o = {.max_attempts = 3, .backoff_initial = 0.001};
    evdb_future *t = evdb_pool_transaction_opts(p, always_40001, &runs, &o);
    ck_assert_int_eq(evdb_future_on_done(t, count_done, &done), 0);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    const evdb_error *e = evdb_future_error(t);
    ck_assert_str_eq(evdb_error_sqlstate(e), "40001");
    ck_assert_msg(!strncmp(evdb_error_message(e), "after 3 attempts: ", 18), "%s",
                  evdb_error_message(e));
    ck_assert_ptr_nonnull(strstr(evdb_error_message(e), "made up"));
    evdb_future_unref(t);
    t_run_for(L, 0.05);
    ck_assert_int_eq(runs, 3);
    ck_assert_int_eq(done, 1);
    /* A static transaction too. */
    evdb_stmt s = {"DO $$BEGIN RAISE EXCEPTION 'made up' USING ERRCODE = '40P01'; END$$", NULL, 0};
    t = evdb_pool_transaction_batch(p, &s, 1, &o);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    ck_assert_msg(!strncmp(evdb_error_message(evdb_future_error(t)), "after 3 attempts: ", 18),
                  "%s", evdb_error_message(evdb_future_error(t)));
    evdb_future_unref(t);
    t_pool_close(p);
}
END_TEST

typedef struct lock_wait {
    int runs;
} lock_wait;

static void *wait_for_lock(evdb_conn *c, void *arg)
{
    lock_wait *w = arg;
    w->runs++;
    AWAIT_OK(evdb_conn_query(c, "SET SESSION innodb_lock_wait_timeout = 1", NULL, 0, NULL));
    AWAIT_OK(evdb_conn_query(c, "UPDATE evdb_txn SET v = v + 1 WHERE id = 1", NULL, 0, NULL));
    return NULL;
}

/* MariaDB's lock wait timeout (1205) is retryable; bounded as well. */
START_TEST(mariadb_lock_wait_timeout_is_retried_and_bounded)
{
    evdb_pool *p = pool_with_table(&backends[1], 1);
    evdb_conn *holder = t_conn_open(L, need(evdb_test_my_url), NULL);
    t_exec_ok(holder, "START TRANSACTION");
    t_exec_ok(holder, "SELECT v FROM evdb_txn WHERE id = 1 FOR UPDATE");
    lock_wait w = {0};
    evdb_txn_opts o = {.max_attempts = 2};
    evdb_future *t = evdb_pool_transaction_task(p, wait_for_lock, &w, &o);
    ck_assert_int_eq(t_wait(t), EVDB_ESERVER);
    ck_assert_int_eq(evdb_error_driver_code(evdb_future_error(t)), 1205);
    ck_assert_msg(!strncmp(evdb_error_message(evdb_future_error(t)), "after 2 attempts: ", 18),
                  "%s", evdb_error_message(evdb_future_error(t)));
    evdb_future_unref(t);
    ck_assert_int_eq(w.runs, 2);
    t_exec_ok(holder, "ROLLBACK");
    t_conn_close(holder);
    drop_and_close(p);
}
END_TEST

/* --------------------------------------------------- broken connections */

typedef struct broken_case {
    const backend *b;
    int stmt_done;
    int stmt_status;
} broken_case;

static void stmt_done(evdb_future *f, void *arg)
{
    broken_case *k = arg;
    k->stmt_done++;
    k->stmt_status = evdb_future_status(f);
}

static evdb_future *sleep_inside(evdb_conn *c, void *arg)
{
    broken_case *k = arg;
    char sql[64];
    snprintf(sql, sizeof sql, k->b->sleep_fmt, 2.0);
    evdb_future *q = evdb_conn_query(c, sql, NULL, 0, NULL);
    if (q)
        evdb_future_on_done(q, stmt_done, k);
    return q;
}

START_TEST(connection_lost_mid_transaction_completes_everything_once)
{
    const backend *b = &backends[_i];
    const char *u = need(b->url);
    int port = atoi(evdb_test_env(b->port_var));
    char err[160];
    FP = evdb_fp_new(L, 0, "127.0.0.1", port, err, sizeof err);
    ck_assert_msg(FP != NULL, "fault proxy: %s", err);
    char pat[16], url[512];
    snprintf(pat, sizeof pat, ":%d/", port);
    const char *at = strstr(u, pat);
    ck_assert_ptr_nonnull(at);
    snprintf(url, sizeof url, "%.*s:%d/%s", (int)(at - u), u, evdb_fp_port(FP), at + strlen(pat));
    evdb_pool_opts po = {.max_conns = 2};
    evdb_pool *p = t_pool_new(L, url, &po);
    t_pool_exec_ok(p, "SELECT 1");
    /* Interactive, with retries allowed (a lost connection is not
     * retryable: the outcome of COMMIT could be unknown). */
    broken_case k = {.b = b};
    int done = 0;
    evdb_txn_opts o = {.max_attempts = 3};
    evdb_future *t = evdb_pool_transaction_opts(p, sleep_inside, &k, &o);
    ck_assert_int_eq(evdb_future_on_done(t, count_done, &done), 0);
    /* Static, in flight at the same time. */
    char sql[64];
    snprintf(sql, sizeof sql, b->sleep_fmt, 2.0);
    evdb_stmt s[2] = {{"SELECT 1", NULL, 0}, {sql, NULL, 0}};
    int done2 = 0;
    evdb_future *t2 = evdb_pool_transaction_batch(p, s, 2, &o);
    ck_assert_int_eq(evdb_future_on_done(t2, count_done, &done2), 0);
    t_run_for(L, 0.4);
    ck_assert_uint_ge(evdb_fp_reset_all(FP), 1);
    int st = t_wait(t);
    ck_assert_msg(evdb_error_is_connection(evdb_future_error(t)), "%d %s", st,
                  evdb_error_message(evdb_future_error(t)));
    ck_assert_int_eq(t_wait(t2), evdb_future_status(t2));
    ck_assert_msg(evdb_error_is_connection(evdb_future_error(t2)), "%s",
                  evdb_error_message(evdb_future_error(t2)));
    evdb_future_unref(t);
    evdb_future_unref(t2);
    t_run_for(L, 0.1);
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(done2, 1);
    ck_assert_int_eq(k.stmt_done, 1);
    ck_assert_int_ne(k.stmt_status, 0);
    /* The pool serves again. */
    ck_assert_int_eq(t_pool_int(p, "SELECT 7"), 7);
    t_pool_close(p);
}
END_TEST

/* Cancelling a transaction's future rolls it back; callbacks run once. */
START_TEST(cancelled_transaction_rolls_back)
{
    const backend *b = &backends[_i];
    evdb_pool *p = pool_with_table(b, 1);
    int done = 0;
    evdb_future *t = evdb_pool_transaction_opts(p, insert_two, (void *)b, NULL);
    ck_assert_int_eq(evdb_future_on_done(t, count_done, &done), 0);
    ck_assert_int_eq(evdb_future_cancel(t), 0);
    ck_assert_int_eq(t_wait(t), EVDB_ECANCELED);
    evdb_future_unref(t);
    t_run_for(L, 0.3);
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(t_pool_int(p, b->count_sql), 1);
    drop_and_close(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("txn_integration");
    TCase *tc = tcase_create("both_backends");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, WATCHDOG_S);
    tcase_add_loop_test(tc, options_take_effect_inside_the_transaction, 0, 2);
    tcase_add_test(tc, deferrable_is_refused_on_mariadb_and_bad_options_at_once);
    tcase_add_test(tc, deferrable_serializable_read_only_on_postgres);
    tcase_add_test(tc, begin_leaves_in_the_same_write_as_the_first_statement);
    tcase_add_loop_test(tc, fn_error_rolls_back_and_commit_keeps, 0, 2);
    tcase_add_loop_test(tc, an_unread_failed_transaction_is_reported_as_one, 0, 2);
    tcase_add_loop_test(tc, static_transaction_is_all_or_nothing, 0, 2);
    tcase_add_loop_test(tc, static_transaction_options_take_effect, 0, 2);
    tcase_add_loop_test(tc, savepoint_rollback_keeps_the_outer_work_and_nests, 0, 2);
    tcase_add_loop_test(tc, deadlock_is_retried_and_both_commit, 0, 2);
    tcase_add_test(tc, serialization_failure_is_retried);
    tcase_add_test(tc, retries_are_bounded_and_the_error_counts_them);
    tcase_add_test(tc, mariadb_lock_wait_timeout_is_retried_and_bounded);
    tcase_add_loop_test(tc, connection_lost_mid_transaction_completes_everything_once, 0, 2);
    tcase_add_loop_test(tc, cancelled_transaction_rolls_back, 0, 2);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
