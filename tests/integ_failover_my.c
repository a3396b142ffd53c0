/*
 * MariaDB failover over host lists, against the throwaway server and its
 * replica (scripts/testdb start-my-replica, read_only=1):
 *   - every target_session_attrs value picks the server it names, evdb
 *     checking @@global.read_only after connecting;
 *   - hosts that cannot be reached are skipped, and when none fits the
 *     connect fails with one error naming every host (no password);
 *   - a pool over "primary,replica" with read-write, under a stream of
 *     inserts, moves to the replica when the primary stops and the replica
 *     is made writable: every callback exactly once, writes served again.
 * The last test puts everything back (primary started, replica rebuilt).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(120);
}

static void teardown(void)
{
    t_loop_free(L);
}

static const char *port_of(const char *key)
{
    const char *p = evdb_test_env(key);
    ck_assert_msg(p != NULL, "no %s: run scripts/testdb start, then start-my-replica", key);
    return p;
}

static void list_url(char *buf, size_t cap, const char *p1, const char *p2, const char *tsa)
{
    snprintf(buf, cap,
             "mariadb://evdb:evdb_secret@127.0.0.1:%s,127.0.0.1:%s/evdb_test"
             "?target_session_attrs=%s",
             p1, p2, tsa);
}

/* Which server answered: its port. */
static int64_t port_answering(const char *url)
{
    evdb_conn *c = t_conn_open(L, url, NULL);
    int64_t r = t_query_int(c, "SELECT @@port");
    t_conn_close(c);
    return r;
}

typedef struct tsa_case {
    const char *tsa;
    int primary_first; /* 1: the replica answers with "primary,replica" */
    int replica_first; /* ... with "replica,primary" */
} tsa_case;

static const tsa_case tsa_cases[] = {
    {"any", 0, 1},       {"read-write", 0, 0}, {"primary", 0, 0},
    {"read-only", 1, 1}, {"standby", 1, 1},    {"prefer-standby", 1, 1},
};

START_TEST(target_session_attrs_pick_the_right_server)
{
    const tsa_case *tc = &tsa_cases[_i];
    const char *pp = port_of("EVDB_TEST_MY_PORT"), *rp = port_of("EVDB_TEST_MY_REPLICA_PORT");
    int64_t pport = atoll(pp), rport = atoll(rp);
    char url[512];
    list_url(url, sizeof url, pp, rp, tc->tsa);
    ck_assert_int_eq(port_answering(url), tc->primary_first ? rport : pport);
    list_url(url, sizeof url, rp, pp, tc->tsa);
    ck_assert_int_eq(port_answering(url), tc->replica_first ? rport : pport);
}
END_TEST

START_TEST(dead_hosts_are_skipped_and_summed_up)
{
    const char *pp = port_of("EVDB_TEST_MY_PORT"), *rp = port_of("EVDB_TEST_MY_REPLICA_PORT");
    char dead[16], url[512];
    snprintf(dead, sizeof dead, "%d", t_free_port());
    /* A dead host first: skipped. */
    list_url(url, sizeof url, dead, pp, "any");
    ck_assert_int_eq(port_answering(url), atoll(pp));
    /* prefer-standby with no read-only server: the second pass takes any. */
    list_url(url, sizeof url, dead, pp, "prefer-standby");
    ck_assert_int_eq(port_answering(url), atoll(pp));
    /* Nothing read-write: one error naming both hosts. */
    list_url(url, sizeof url, dead, rp, "read-write");
    evdb_future *f = evdb_conn_open(L, url, NULL);
    ck_assert_ptr_nonnull(f);
    t_wait(f);
    ck_assert_int_eq(evdb_future_status(f), EVDB_ECONNECT);
    const char *msg = evdb_error_message(evdb_future_error(f));
    ck_assert_ptr_null(strstr(msg, "evdb_secret"));
    ck_assert_msg(strstr(msg, dead) && strstr(msg, rp) && strstr(msg, "read_only is ON") &&
                      strstr(msg, "target_session_attrs=read-write"),
                  "%s", msg);
    evdb_future_unref(f);
    /* Every host refusing the login: EVDB_EAUTH. */
    snprintf(url, sizeof url, "mariadb://evdb:wrong@127.0.0.1:%s,127.0.0.1:%s/evdb_test", pp, rp);
    f = evdb_conn_open(L, url, NULL);
    t_wait(f);
    ck_assert_int_eq(evdb_future_status(f), EVDB_EAUTH);
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_future_error(f)), "wrong@"));
    evdb_future_unref(f);
}
END_TEST

START_TEST(bad_host_lists_are_url_errors)
{
    static const char *const bad[] = {
        "mariadb://u:secret@127.0.0.1:1,/db",
        "mariadb://u:secret@127.0.0.1:1,127.0.0.1:0/db",
        "mariadb://u:secret@127.0.0.1:1,127.0.0.1:x/db",
        "mariadb://u:secret@127.0.0.1/db?target_session_attrs=writable",
        "mariadb://u:secret@127.0.0.1:1,127.0.0.1:2/db?unix_socket=/tmp/s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* Refused at once, before any connect. */
        ck_assert_ptr_null(evdb_conn_open(L, bad[i], NULL));
        const evdb_error *e = evdb_last_error();
        ck_assert_msg(evdb_error_code(e) == EVDB_EURL, "%s: %s", bad[i],
                      evdb_err_name(evdb_error_code(e)));
        ck_assert_ptr_null(strstr(evdb_error_message(e), "secret"));
    }
}
END_TEST

/* ------------------------------------------------------ failover under load */

#include "failover_load.h"

START_TEST(pool_moves_to_the_writable_replica)
{
    if (!getenv("EVDB_TESTDB_DIR")) {
        fprintf(stderr, "integ_failover_my: no EVDB_TESTDB_DIR; failover test skipped\n");
        return;
    }
    const char *pp = port_of("EVDB_TEST_MY_PORT"), *rp = port_of("EVDB_TEST_MY_REPLICA_PORT");
    evdb_conn *admin = t_conn_open(L, t_my_admin_url(), NULL);
    t_exec_ok(admin, "DROP TABLE IF EXISTS failover_my");
    t_exec_ok(admin, "CREATE TABLE failover_my (id bigint PRIMARY KEY)");
    t_conn_close(admin);
    /* The table reaches the replica before the load starts. */
    char rurl[256];
    snprintf(rurl, sizeof rurl, "mariadb://root@127.0.0.1:%s/evdb_test", rp);
    evdb_conn *radmin = t_conn_open(L, rurl, NULL);
    for (int i = 0; i < 100 && t_query_int(radmin, "SELECT count(*) FROM information_schema.tables "
                                                   "WHERE table_name = 'failover_my'") == 0;
         i++)
        t_sleep(L, 0.05);

    char url[512];
    list_url(url, sizeof url, pp, rp, "read-write");
    evdb_pool_opts o = {.max_conns = 4,
                        .min_conns = 2,
                        .backoff_initial = 0.05,
                        .backoff_max = 0.3,
                        .acquire_timeout = 10,
                        /* Queries waiting for a connection are held
                         * through the outage and go to the new primary. */
                        .outage_wait = 10};
    load l = {.sql = "INSERT INTO failover_my (id) VALUES (?)"};
    l.pool = t_pool_new(L, url, &o);
    l.calls = calloc(MAX_SUBMITS, 1);
    l.acked = calloc(MAX_SUBMITS, 1);
    for (int i = 0; i < WORKERS; i++)
        submit_next(&l);
    t_run_for(L, 0.5);
    ck_assert_uint_gt(l.ok, 0);
    size_t ok_before = l.ok;

    l.t_stop = t_now();
    testdb_under_load("stop-my");
    double t_stopped = t_now();
    t_exec_ok(radmin, "STOP SLAVE");
    double t_flipped = t_now();
    t_exec_ok(radmin, "SET GLOBAL read_only = 0");
    size_t ok_at_flip = l.ok;
    while (l.ok < ok_at_flip + 200 && t_now() - t_flipped < 20)
        t_run_for(L, 0.05);
    l.stop = true;
    while (l.completed < l.submitted)
        t_run_for(L, 0.1);

    for (size_t i = 0; i < l.submitted; i++)
        ck_assert_int_eq(l.calls[i], 1);
    ck_assert_uint_eq(l.ok + l.lost + l.refused + l.other, l.submitted);
    /* Held, not refused: no query that was never sent failed because no
     * server was writable for a while. */
    ck_assert_uint_eq(l.by_code[0], 0);
    ck_assert_uint_eq(l.by_code[1], 0);
    ck_assert_uint_eq(l.other, 0);
    ck_assert_msg(l.ok >= ok_at_flip + 200, "writes after the flip: %zu", l.ok - ok_at_flip);
    ck_assert(l.t_first_ok > 0);
    fprintf(stderr,
            "integ_failover_my: %zu inserts acknowledged (%zu before the stop), %zu lost in "
            "flight, %zu refused (ECONNECT %zu, EPOOLTIMEOUT %zu, ESERVER %zu); timeline from the "
            "stop command: first failure at %.0f ms, "
            "primary gone at %.0f ms, replica writable at %.0f ms, first write submitted after "
            "the first failure acknowledged at %.0f ms (writes unavailable %.0f ms)\n",
            l.ok, ok_before, l.lost, l.refused, l.by_code[0], l.by_code[1], l.by_code[2],
            (l.t_first_fail - l.t_stop) * 1e3, (t_stopped - l.t_stop) * 1e3,
            (t_flipped - l.t_stop) * 1e3, (l.t_first_ok - l.t_stop) * 1e3,
            (l.t_first_ok - l.t_first_fail) * 1e3);
    free(l.calls);
    free(l.acked);
    t_pool_close(l.pool);
    t_conn_close(radmin);

    /* Restore: the primary runs again and the replica is rebuilt. */
    testdb_ok("start-my");
    admin = t_conn_open(L, t_my_admin_url(), NULL);
    t_exec_ok(admin, "DROP TABLE IF EXISTS failover_my");
    t_conn_close(admin);
    testdb_ok("stop-my-replica");
    testdb_ok("start-my-replica");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("failover_my");
    TCase *tc = tcase_create("primary_and_replica");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, target_session_attrs_pick_the_right_server, 0,
                        (int)(sizeof tsa_cases / sizeof tsa_cases[0]));
    tcase_add_test(tc, dead_hosts_are_skipped_and_summed_up);
    tcase_add_test(tc, bad_host_lists_are_url_errors);
    /* Last: it stops the primary (and puts everything back). */
    tcase_add_test(tc, pool_moves_to_the_writable_replica);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
