/*
 * Read/write routing (evdb/cluster.h) against both real servers
 * (scripts/testdb), PostgreSQL (_i == 0) and MariaDB (_i == 1).
 *
 * Without a replica fixture a "replica" is the primary server reached as
 * its administrator: not in recovery (lag 0), and which pool served a
 * query shows in its current user. With the streaming standby
 * (EVDB_TEST_PG_STANDBY_URL) or the MariaDB replica
 * (EVDB_TEST_MY_REPLICA_URL) the standby tests check the server's own
 * view (pg_is_in_recovery(), @@server_id) and lag-aware exclusion; they
 * are skipped when the variable is not set. Every callback is counted.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(90);
}

static void teardown(void)
{
    t_loop_free(L);
}

typedef struct backend {
    const char *(*url)(void);
    const char *(*admin_url)(void);
    const char *whoami;    /* the session's user, alone */
    const char *sleep_sql; /* runs for 0.2 s */
    const char *admin_user;
    const char *app_user;
    const char *scheme;
} backend;

static const backend backends[2] = {
    {t_pg_url, t_pg_admin_url, "SELECT current_user::text", "SELECT pg_sleep(0.2)", "postgres",
     "evdb", "postgresql"},
    {t_my_url, t_my_admin_url, "SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)",
     "SELECT SLEEP(0.2)", "root", "evdb", "mariadb"},
};

static const evdb_query_opts READ = {.flags = EVDB_QUERY_READ_ONLY};

/* Counts the calls of a callback and keeps the status seen. */
typedef struct counter {
    int calls;
    int status;
} counter;

static void on_count(evdb_future *f, void *arg)
{
    counter *c = arg;
    c->calls++;
    c->status = evdb_future_status(f);
}

static evdb_cluster *cluster_new(const char *primary, const char *const *replicas, size_t n,
                                 const evdb_cluster_opts *o)
{
    evdb_pool_opts po = {.max_conns = 4};
    evdb_cluster *cl = evdb_cluster_new(L, primary, replicas, n, &po, o);
    ck_assert_msg(cl, "evdb_cluster_new: %s", evdb_error_message(evdb_last_error()));
    return cl;
}

static void cluster_check(evdb_cluster *cl)
{
    evdb_future *f = evdb_cluster_check(cl);
    ck_assert_ptr_nonnull(f);
    counter c = {0};
    ck_assert_int_eq(evdb_future_on_done(f, on_count, &c), 0);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    t_sleep(L, 0.01);
    ck_assert_int_eq(c.calls, 1);
}

static void cluster_close(evdb_cluster *cl)
{
    evdb_future *f = evdb_cluster_close(cl);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    /* The shell refuses while the close future lives. */
    ck_assert_ptr_null(evdb_cluster_query(cl, "SELECT 1", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
    ck_assert_ptr_null(evdb_cluster_close(cl));
    evdb_future_unref(f);
}

/* The text of cell (0, 0) of a query through the cluster, into buf. */
static const char *cluster_text(evdb_cluster *cl, const char *sql, const evdb_query_opts *o,
                                char *buf, size_t cap)
{
    evdb_future *f = evdb_cluster_query(cl, sql, NULL, 0, o);
    ck_assert_msg(f, "%s: %s", sql, evdb_error_message(evdb_last_error()));
    t_wait_ok(f, sql);
    const char *t = evdb_result_text(evdb_future_result(f), 0, 0, NULL);
    ck_assert_ptr_nonnull(t);
    snprintf(buf, cap, "%s", t);
    evdb_future_unref(f);
    return buf;
}

static evdb_future *txn_whoami(evdb_conn *c, void *arg)
{
    return evdb_conn_query(c, arg, NULL, 0, NULL);
}

START_TEST(reads_go_to_the_replica_writes_and_transactions_to_the_primary)
{
    const backend *b = &backends[_i];
    const char *replicas[] = {b->admin_url()};
    evdb_cluster *cl = cluster_new(b->url(), replicas, 1, NULL);
    cluster_check(cl);
    char buf[64];
    ck_assert_str_eq(cluster_text(cl, b->whoami, &READ, buf, sizeof buf), b->admin_user);
    ck_assert_str_eq(cluster_text(cl, b->whoami, NULL, buf, sizeof buf), b->app_user);
    /* A transaction runs on the primary's pool. */
    evdb_future *t =
        evdb_pool_transaction(evdb_cluster_primary(cl), txn_whoami, (void *)b->whoami, 0);
    t_wait_ok(t, "transaction");
    t_expect_cell(evdb_future_result(t), 0, 0, b->app_user);
    evdb_future_unref(t);
    ck_assert_ptr_eq(evdb_cluster_member(cl, 1), evdb_cluster_replica(cl));
    ck_assert_ptr_null(evdb_cluster_member(cl, 2));

    evdb_cluster_stats st;
    ck_assert_int_eq(evdb_cluster_stats_get(cl, &st), 0);
    ck_assert_uint_eq(st.replicas, 1);
    ck_assert_uint_eq(st.usable_replicas, 1);
    ck_assert_uint_eq(st.reads, 2); /* the query and evdb_cluster_replica */
    ck_assert_uint_eq(st.fallbacks, 0);
    ck_assert_uint_eq(st.writes, 1);
    evdb_cluster_member_stats ms;
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 1, &ms), 0);
    ck_assert_int_eq(ms.is_replica, 1);
    ck_assert_int_eq(ms.usable, 1);
    ck_assert(ms.lag == 0); /* not in recovery: caught up */
    ck_assert_uint_ge(ms.checks, 1);
    ck_assert_uint_eq(ms.check_failures, 0);
    ck_assert_uint_eq(ms.routed, 2);
    ck_assert_uint_ge(ms.pool.queries, ms.checks + 1);
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 0, &ms), 0);
    ck_assert_int_eq(ms.is_replica, 0);
    ck_assert_uint_eq(ms.routed, 1);
    cluster_close(cl);
}
END_TEST

START_TEST(a_replica_nobody_listens_for_gives_fallback_not_errors)
{
    const backend *b = &backends[_i];
    char url[160];
    snprintf(url, sizeof url, "%s://evdb:evdb_secret@127.0.0.1:%d/evdb_test", b->scheme,
             t_free_port());
    const char *replicas[] = {url};
    evdb_cluster_opts o = {.check_timeout = 0.5, .check_interval = 0.2};
    evdb_cluster *cl = cluster_new(b->url(), replicas, 1, &o);
    cluster_check(cl);
    enum { N = 20 };
    evdb_future *fs[N];
    counter cs[N];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < N; i++) {
        fs[i] = evdb_cluster_query(cl, b->whoami, NULL, 0, &READ);
        ck_assert_ptr_nonnull(fs[i]);
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_count, &cs[i]), 0);
    }
    evdb_future *g = evdb_gather(fs, N, 0);
    ck_assert_int_eq(t_wait(g), 0);
    evdb_future_unref(g);
    t_sleep(L, 0.01);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(cs[i].calls, 1);
        ck_assert_int_eq(cs[i].status, 0);
        t_expect_cell(evdb_future_result(fs[i]), 0, 0, b->app_user);
        evdb_future_unref(fs[i]);
    }
    evdb_cluster_stats st;
    ck_assert_int_eq(evdb_cluster_stats_get(cl, &st), 0);
    ck_assert_uint_eq(st.usable_replicas, 0);
    ck_assert_uint_eq(st.reads, N);
    ck_assert_uint_eq(st.fallbacks, N);
    evdb_cluster_member_stats ms;
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 1, &ms), 0);
    ck_assert_int_eq(ms.usable, 0);
    ck_assert(ms.lag < 0);
    ck_assert_int_lt(ms.last_check_status, 0);
    ck_assert_uint_ge(ms.check_failures, 1);
    ck_assert_uint_eq(ms.check_failures, ms.checks);
    ck_assert_uint_eq(ms.routed, 0);
    cluster_close(cl);
}
END_TEST

START_TEST(least_loaded_spreads_reads_over_two_replicas)
{
    const backend *b = &backends[_i];
    const char *replicas[] = {b->admin_url(), b->admin_url()};
    evdb_cluster *cl = cluster_new(b->url(), replicas, 2, NULL);
    cluster_check(cl);
    enum { N = 24 };
    evdb_future *fs[N];
    counter cs[N];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < N; i++) {
        fs[i] = evdb_cluster_query(cl, b->sleep_sql, NULL, 0, &READ);
        ck_assert_ptr_nonnull(fs[i]);
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_count, &cs[i]), 0);
    }
    evdb_cluster_member_stats m1, m2;
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 1, &m1), 0);
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 2, &m2), 0);
    ck_assert_uint_eq(m1.routed + m2.routed, N);
    ck_assert_uint_eq(m1.routed, N / 2);
    ck_assert_uint_eq(m2.routed, N / 2);
    evdb_future *g = evdb_gather(fs, N, 0);
    ck_assert_int_eq(t_wait(g), 0);
    evdb_future_unref(g);
    t_sleep(L, 0.01);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(cs[i].calls, 1);
        evdb_future_unref(fs[i]);
    }
    /* A replica busy with slow reads gets fewer new ones: load one, then
     * route more reads while it works. */
    for (int i = 0; i < 4; i++)
        fs[i] = evdb_pool_query(evdb_cluster_member(cl, 1), b->sleep_sql, NULL, 0, NULL);
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 1, &m1), 0);
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 2, &m2), 0);
    uint64_t r1 = m1.routed, r2 = m2.routed;
    for (int i = 4; i < 8; i++)
        fs[i] = evdb_cluster_query(cl, b->sleep_sql, NULL, 0, &READ);
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 1, &m1), 0);
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 2, &m2), 0);
    ck_assert_uint_eq(m1.routed - r1, 0);
    ck_assert_uint_eq(m2.routed - r2, 4);
    g = evdb_gather(fs, 8, 0);
    ck_assert_int_eq(t_wait(g), 0);
    evdb_future_unref(g);
    for (int i = 0; i < 8; i++)
        evdb_future_unref(fs[i]);
    cluster_close(cl);
}
END_TEST

START_TEST(close_with_queries_and_a_check_in_flight)
{
    const backend *b = &backends[_i];
    const char *replicas[] = {b->admin_url()};
    evdb_cluster *cl = cluster_new(b->url(), replicas, 1, NULL);
    cluster_check(cl);
    enum { N = 12 };
    evdb_future *fs[N];
    counter cs[N];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < N; i++) {
        fs[i] = evdb_cluster_query(cl, b->sleep_sql, NULL, 0, i % 2 ? &READ : NULL);
        ck_assert_ptr_nonnull(fs[i]);
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_count, &cs[i]), 0);
    }
    evdb_future *chk = evdb_cluster_check(cl);
    counter cc = {0};
    ck_assert_int_eq(evdb_future_on_done(chk, on_count, &cc), 0);
    evdb_future *cf = evdb_cluster_close(cl);
    ck_assert_ptr_nonnull(cf);
    counter cfc = {0};
    ck_assert_int_eq(evdb_future_on_done(cf, on_count, &cfc), 0);
    ck_assert_ptr_null(evdb_cluster_primary(cl));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECLOSED);
    ck_assert_ptr_null(evdb_cluster_check(cl));
    ck_assert_int_eq(t_wait(cf), 0);
    t_sleep(L, 0.01);
    ck_assert_int_eq(cfc.calls, 1);
    ck_assert_int_eq(cc.calls, 1);
    ck_assert_int_eq(cc.status, EVDB_ECLOSED);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(cs[i].calls, 1);
        /* Running queries get the pools' close grace and finish; those
         * still waiting for a connection fail as the pool closes. */
        ck_assert_msg(cs[i].status == 0 || cs[i].status == EVDB_ECLOSED, "query %d: %s", i,
                      evdb_err_name(cs[i].status));
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(chk);
    evdb_future_unref(cf);
}
END_TEST

START_TEST(bad_arguments_fail_at_once_with_a_reason)
{
    const backend *b = &backends[_i];
    const char *other = backends[1 - _i].url();
    const char *replicas[] = {other};
    ck_assert_ptr_null(evdb_cluster_new(NULL, b->url(), NULL, 0, NULL, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_cluster_new(L, NULL, NULL, 0, NULL, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_cluster_new(L, b->url(), NULL, 1, NULL, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_cluster_new(L, b->url(), replicas, 1, NULL, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_last_error()), "driver"));
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_last_error()), "evdb_secret"));
    const char *bad[] = {"nosuch://u:evdb_secret@h/db"};
    ck_assert_ptr_null(evdb_cluster_new(L, b->url(), bad, 1, NULL, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EURL);
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_last_error()), "evdb_secret"));
    evdb_cluster_opts o = {.check_interval = -1};
    ck_assert_ptr_null(evdb_cluster_new(L, b->url(), NULL, 0, NULL, &o));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_pool_opts po = {.min_conns = 3, .max_conns = 2};
    ck_assert_ptr_null(evdb_cluster_new(L, b->url(), NULL, 0, &po, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_cluster_query(NULL, "SELECT 1", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    ck_assert_ptr_null(evdb_cluster_close(NULL));
    evdb_cluster_stats st;
    ck_assert_int_eq(evdb_cluster_stats_get(NULL, &st), EVDB_EINVAL);

    /* No replicas: everything goes to the primary; reads are fallbacks. */
    evdb_cluster *cl = cluster_new(b->url(), NULL, 0, NULL);
    cluster_check(cl);
    ck_assert_ptr_null(evdb_cluster_query(cl, NULL, NULL, 0, &READ));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    evdb_query_opts unknown = {.flags = 0x4000u};
    ck_assert_ptr_null(evdb_cluster_query(cl, "SELECT 1", NULL, 0, &unknown));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL);
    char buf[64];
    ck_assert_str_eq(cluster_text(cl, b->whoami, &READ, buf, sizeof buf), b->app_user);
    ck_assert_int_eq(evdb_cluster_stats_get(cl, &st), 0);
    ck_assert_uint_eq(st.reads, 1);
    ck_assert_uint_eq(st.fallbacks, 1);
    evdb_cluster_member_stats ms;
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 1, &ms), EVDB_EINVAL);
    cluster_close(cl);
}
END_TEST

START_TEST(read_only_flag_is_accepted_and_ignored_by_a_pool_and_a_connection)
{
    const backend *b = &backends[_i];
    evdb_pool *p = t_pool_new(L, b->url(), NULL);
    evdb_future *f = t_pool_submit(p, "SELECT 1", NULL, 0, 0, EVDB_QUERY_READ_ONLY);
    t_wait_ok(f, "pooled read-only query");
    evdb_future_unref(f);
    t_pool_close(p);
    evdb_conn *c = t_conn_open(L, b->url(), NULL);
    f = t_submit(c, "SELECT 1", NULL, 0, 0, EVDB_QUERY_READ_ONLY);
    t_wait_ok(f, "read-only query");
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* The standby's (or replica's) URL as user, from its port in the test
 * environment; NULL when the fixture is not there. */
static const char *replica_url(const char *port_key, const char *scheme, const char *user,
                               char *buf, size_t cap)
{
    const char *port = evdb_test_env(port_key);
    if (!port)
        return NULL;
    snprintf(buf, cap, "%s://%s@127.0.0.1:%s/evdb_test", scheme, user, port);
    return buf;
}

/* Run evdb_cluster_check until member 1's usability is want, for at most
 * seconds; returns whether it got there. */
static bool wait_usable(evdb_cluster *cl, int want, double seconds)
{
    double until = t_now() + seconds;
    evdb_cluster_member_stats ms;
    do {
        cluster_check(cl);
        ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 1, &ms), 0);
        if (ms.usable == want)
            return true;
        t_sleep(L, 0.1);
    } while (t_now() < until);
    return false;
}

static void admin_exec(const char *url, const char *sql)
{
    evdb_conn *c = t_conn_open(L, url, NULL);
    t_exec_ok(c, sql);
    t_conn_close(c);
}

START_TEST(pg_standby_takes_reads_until_its_replay_lags)
{
    char app[160], admin[160], buf[64], buf2[64];
    if (!replica_url("EVDB_TEST_PG_STANDBY_PORT", "postgresql", "evdb:evdb_secret", app,
                     sizeof app)) {
        fprintf(stderr, "pg_standby: no standby (EVDB_TEST_PG_STANDBY_PORT), skipped\n");
        return;
    }
    replica_url("EVDB_TEST_PG_STANDBY_PORT", "postgresql", "postgres", admin, sizeof admin);
    admin_exec(admin, "SELECT pg_wal_replay_resume()"); /* from a failed run */
    const char *replicas[] = {app};
    evdb_cluster_opts o = {.max_lag = 1, .check_interval = 0.2};
    evdb_cluster *cl = cluster_new(t_pg_url(), replicas, 1, &o);
    const char *rec = "SELECT pg_is_in_recovery()::text";
    evdb_future *f = evdb_cluster_query(cl, "CREATE TABLE IF NOT EXISTS evdb_cluster_lag (id int)",
                                        NULL, 0, NULL);
    t_wait_ok(f, "create table");
    evdb_future_unref(f);
    ck_assert(wait_usable(cl, 1, 5));
    ck_assert_str_eq(cluster_text(cl, rec, &READ, buf, sizeof buf), "true");
    ck_assert_str_eq(cluster_text(cl, rec, NULL, buf, sizeof buf), "false");

    /* Replay paused and the primary written to: the standby falls behind
     * past max_lag and is excluded; reads go to the primary. */
    evdb_conn *sc = t_conn_open(L, admin, NULL);
    /* A standby that never replayed a transaction has no lag to tell
     * (excluded as unknown): let it replay the table first. */
    for (int i = 0; i < 50 && t_query_int(sc, "SELECT (pg_last_xact_replay_timestamp() IS NOT "
                                              "NULL AND to_regclass('evdb_cluster_lag') IS NOT "
                                              "NULL)::int") == 0;
         i++)
        t_sleep(L, 0.1);
    t_exec_ok(sc, "SELECT pg_wal_replay_pause()");
    cluster_text(cl, "INSERT INTO evdb_cluster_lag VALUES (1) RETURNING id::text", NULL, buf,
                 sizeof buf);
    /* Until the standby has received the insert and holds it unreplayed. */
    for (int i = 0; i < 50 && t_query_int(sc, "SELECT (pg_get_wal_replay_pause_state() = "
                                              "'paused' AND pg_last_wal_receive_lsn() > "
                                              "pg_last_wal_replay_lsn())::int") == 0;
         i++)
        t_sleep(L, 0.1);
    t_sleep(L, 1.3);
    cluster_text(cl, "INSERT INTO evdb_cluster_lag VALUES (2) RETURNING id::text", NULL, buf,
                 sizeof buf);
    bool excluded = wait_usable(cl, 0, 5);
    if (excluded)
        ck_assert_str_eq(cluster_text(cl, rec, &READ, buf, sizeof buf), "false");
    evdb_cluster_member_stats ms;
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 1, &ms), 0);
    char state[200] = "";
    if (!excluded) {
        evdb_future *sf = t_run_ok(sc,
                                   "SELECT concat_ws(' ', pg_get_wal_replay_pause_state(), "
                                   "pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), "
                                   "now() - pg_last_xact_replay_timestamp())",
                                   NULL, 0);
        snprintf(state, sizeof state, "%s", evdb_result_text(evdb_future_result(sf), 0, 0, NULL));
        evdb_future_unref(sf);
    }
    t_exec_ok(sc, "SELECT pg_wal_replay_resume()");
    t_conn_close(sc);
    ck_assert_msg(excluded, "a standby %.1f s behind is still usable (%s)", ms.lag, state);
    ck_assert(ms.lag > 1);
    ck_assert_uint_ge(ms.exclusions, 1);
    evdb_cluster_stats st;
    ck_assert_int_eq(evdb_cluster_stats_get(cl, &st), 0);
    ck_assert_uint_eq(st.fallbacks, 1);

    /* Replay resumed: it catches up and takes reads again. */
    ck_assert(wait_usable(cl, 1, 5));
    ck_assert_str_eq(cluster_text(cl, rec, &READ, buf, sizeof buf), "true");
    /* Usable is not caught up (read-your-writes): it gets there soon. */
    const char *count = "SELECT count(*)::text FROM evdb_cluster_lag";
    cluster_text(cl, count, NULL, buf2, sizeof buf2);
    for (int i = 0; i < 50 && strcmp(cluster_text(cl, count, &READ, buf, sizeof buf), buf2); i++)
        t_sleep(L, 0.1);
    ck_assert_str_eq(buf, buf2);
    cluster_close(cl);
}
END_TEST

START_TEST(my_replica_takes_reads_until_its_sql_thread_stops)
{
    char admin[160], buf[64], primary_id[64];
    if (!replica_url("EVDB_TEST_MY_REPLICA_PORT", "mariadb", "root", admin, sizeof admin)) {
        fprintf(stderr, "my_replica: no replica (EVDB_TEST_MY_REPLICA_PORT), skipped\n");
        return;
    }
    admin_exec(admin, "START SLAVE SQL_THREAD"); /* from a failed run */
    /* SHOW SLAVE STATUS needs a monitoring privilege: the replica is
     * reached as its administrator. */
    const char *replicas[] = {admin};
    evdb_cluster_opts o = {.max_lag = 1, .check_interval = 0.2};
    evdb_cluster *cl = cluster_new(t_my_url(), replicas, 1, &o);
    const char *sid = "SELECT CAST(@@server_id AS CHAR)";
    cluster_text(cl, sid, NULL, primary_id, sizeof primary_id);
    ck_assert(wait_usable(cl, 1, 5));
    ck_assert_str_ne(cluster_text(cl, sid, &READ, buf, sizeof buf), primary_id);

    admin_exec(admin, "STOP SLAVE SQL_THREAD");
    bool excluded = wait_usable(cl, 0, 5);
    if (excluded)
        ck_assert_str_eq(cluster_text(cl, sid, &READ, buf, sizeof buf), primary_id);
    evdb_cluster_member_stats ms;
    ck_assert_int_eq(evdb_cluster_member_stats_get(cl, 1, &ms), 0);
    admin_exec(admin, "START SLAVE SQL_THREAD");
    ck_assert_msg(excluded, "a replica whose SQL thread stopped is still usable");
    ck_assert_int_eq(ms.last_check_status, EVDB_ESTATE);

    ck_assert(wait_usable(cl, 1, 5));
    ck_assert_str_ne(cluster_text(cl, sid, &READ, buf, sizeof buf), primary_id);
    cluster_close(cl);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("routing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, reads_go_to_the_replica_writes_and_transactions_to_the_primary, 0, 2);
    tcase_add_loop_test(tc, a_replica_nobody_listens_for_gives_fallback_not_errors, 0, 2);
    tcase_add_loop_test(tc, least_loaded_spreads_reads_over_two_replicas, 0, 2);
    tcase_add_loop_test(tc, close_with_queries_and_a_check_in_flight, 0, 2);
    tcase_add_loop_test(tc, bad_arguments_fail_at_once_with_a_reason, 0, 2);
    tcase_add_loop_test(tc, read_only_flag_is_accepted_and_ignored_by_a_pool_and_a_connection, 0,
                        2);
    tcase_add_test(tc, pg_standby_takes_reads_until_its_replay_lags);
    tcase_add_test(tc, my_replica_takes_reads_until_its_sql_thread_stops);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
