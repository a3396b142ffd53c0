/*
 * PostgreSQL failover over host lists, against the throwaway primary and
 * its streaming standby (scripts/testdb start-standby):
 *   - every target_session_attrs value picks the server libpq's docs say,
 *     through host lists of IP literals and of names evdb resolves itself
 *     (hostaddr= lists kept aligned with host= and port=);
 *   - a pool over "primary,standby" with read-write, under a stream of
 *     acknowledged inserts, survives the primary's stop and the standby's
 *     promotion: it serves writes again, every callback runs exactly once,
 *     and every acknowledged row is on the new primary (the primary
 *     replicates synchronously for this test).
 * The promotion test restores the setup afterwards: the old primary starts
 * again (as a primary of its own) and the standby is rebuilt from it.
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
    ck_assert_msg(p != NULL, "no %s: run scripts/testdb start, then start-standby", key);
    return p;
}

/* postgresql://evdb:evdb_secret@H:P1,H:P2/evdb_test?target_session_attrs=T */
static void list_url(char *buf, size_t cap, const char *host, const char *p1, const char *p2,
                     const char *tsa, const char *extra)
{
    snprintf(buf, cap,
             "postgresql://evdb:evdb_secret@%s:%s,%s:%s/evdb_test?target_session_attrs=%s%s", host,
             p1, host, p2, tsa, extra ? extra : "");
}

/* Which server answered: 1 the standby (in recovery), 0 the primary. */
static int in_recovery(const char *url)
{
    evdb_conn *c = t_conn_open(L, url, NULL);
    int64_t r = t_query_int(c, "SELECT pg_is_in_recovery()::int");
    t_conn_close(c);
    return (int)r;
}

typedef struct tsa_case {
    const char *tsa;
    int primary_first; /* expected in_recovery with "primary,standby" */
    int standby_first; /* ... with "standby,primary" */
} tsa_case;

static const tsa_case tsa_cases[] = {
    {"any", 0, 1},       {"read-write", 0, 0}, {"primary", 0, 0},
    {"read-only", 1, 1}, {"standby", 1, 1},    {"prefer-standby", 1, 1},
};

START_TEST(target_session_attrs_pick_the_right_server)
{
    const tsa_case *tc = &tsa_cases[_i];
    const char *pp = port_of("EVDB_TEST_PG_PORT"), *sp = port_of("EVDB_TEST_PG_STANDBY_PORT");
    /* IP literals (libpq alone) and "localhost" (resolved by evdb, passed as
     * aligned hostaddr= lists: ::1 may come first and is refused, the
     * server listens on 127.0.0.1 only). */
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (size_t h = 0; h < 2; h++) {
        char url[512];
        list_url(url, sizeof url, hosts[h], pp, sp, tc->tsa, NULL);
        ck_assert_msg(in_recovery(url) == tc->primary_first, "%s primary first (%s)", tc->tsa,
                      hosts[h]);
        list_url(url, sizeof url, hosts[h], sp, pp, tc->tsa, NULL);
        ck_assert_msg(in_recovery(url) == tc->standby_first, "%s standby first (%s)", tc->tsa,
                      hosts[h]);
        /* The keyword form: host and port lists of their own. */
        snprintf(url, sizeof url,
                 "host=%s,%s port=%s,%s user=evdb password=evdb_secret dbname=evdb_test "
                 "target_session_attrs=%s",
                 hosts[h], hosts[h], sp, pp, tc->tsa);
        ck_assert_msg(in_recovery(url) == tc->standby_first, "%s keywords (%s)", tc->tsa, hosts[h]);
    }
}
END_TEST

START_TEST(no_matching_server_is_a_clear_error)
{
    const char *sp = port_of("EVDB_TEST_PG_STANDBY_PORT");
    char url[512];
    int dead = t_free_port();
    char dp[16];
    snprintf(dp, sizeof dp, "%d", dead);
    /* A dead host and a standby: nothing read-write. */
    list_url(url, sizeof url, "127.0.0.1", dp, sp, "read-write", NULL);
    evdb_future *f = evdb_conn_open(L, url, NULL);
    ck_assert_ptr_nonnull(f);
    t_wait(f);
    ck_assert_int_eq(evdb_future_status(f), EVDB_ECONNECT);
    const char *msg = evdb_error_message(evdb_future_error(f));
    ck_assert_ptr_null(strstr(msg, "evdb_secret"));
    ck_assert_msg(strstr(msg, sp) != NULL, "names the standby: %s", msg);
    evdb_future_unref(f);
    /* An unknown value is refused by name. */
    list_url(url, sizeof url, "127.0.0.1", sp, sp, "writable", NULL);
    f = evdb_conn_open(L, url, NULL);
    ck_assert_ptr_nonnull(f);
    t_wait(f);
    ck_assert_int_ne(evdb_future_status(f), 0);
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_future_error(f)), "evdb_secret"));
    evdb_future_unref(f);
}
END_TEST

/* ------------------------------------------------------ promotion under load */

#include "failover_load.h"

START_TEST(pool_finds_the_promoted_standby_under_load)
{
    if (!getenv("EVDB_TESTDB_DIR")) {
        fprintf(stderr, "integ_failover_pg: no EVDB_TESTDB_DIR; promotion test skipped\n");
        return;
    }
    const char *pp = port_of("EVDB_TEST_PG_PORT"), *sp = port_of("EVDB_TEST_PG_STANDBY_PORT");
    /* Synchronous replication: a commit is acknowledged once the standby
     * has flushed it, and promotion replays everything flushed. */
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    t_exec_ok(admin, "DROP TABLE IF EXISTS failover_t");
    t_exec_ok(admin, "CREATE TABLE failover_t (id bigint PRIMARY KEY)");
    t_exec_ok(admin, "GRANT ALL ON failover_t TO evdb");
    t_exec_ok(admin, "ALTER SYSTEM SET synchronous_standby_names = 'evdb_standby'");
    t_exec_ok(admin, "SELECT pg_reload_conf()");
    t_conn_close(admin);

    char url[512];
    list_url(url, sizeof url, "127.0.0.1", pp, sp, "read-write",
             "&options=-c%20synchronous_commit%3Don");
    evdb_pool_opts o = {.max_conns = 4,
                        .min_conns = 2,
                        .backoff_initial = 0.05,
                        .backoff_max = 0.3,
                        .acquire_timeout = 10,
                        /* Queries waiting for a connection are held
                         * through the outage and go to the new primary. */
                        .outage_wait = 10};
    load l = {.sql = "INSERT INTO failover_t VALUES ($1)"};
    l.pool = t_pool_new(L, url, &o);
    l.calls = calloc(MAX_SUBMITS, 1);
    l.acked = calloc(MAX_SUBMITS, 1);
    for (int i = 0; i < WORKERS; i++)
        submit_next(&l);
    t_run_for(L, 0.5);
    ck_assert_uint_gt(l.ok, 0);
    size_t ok_before = l.ok;

    l.t_stop = t_now();
    testdb_under_load("stop-pg");
    double t_stopped = t_now();
    testdb_under_load("promote-standby");
    double t_promoted = t_now();
    size_t ok_at_promotion = l.ok;
    while (l.ok < ok_at_promotion + 200 && t_now() - t_promoted < 20)
        t_run_for(L, 0.05);
    l.stop = true;
    while (l.completed < l.submitted)
        t_run_for(L, 0.1);

    /* The audit: every submission completed exactly once. */
    for (size_t i = 0; i < l.submitted; i++)
        ck_assert_int_eq(l.calls[i], 1);
    ck_assert_uint_eq(l.ok + l.lost + l.refused + l.other, l.submitted);
    /* Held, not refused: no query that was never sent failed because no
     * server was writable for a while. */
    ck_assert_uint_eq(l.by_code[0], 0);
    ck_assert_uint_eq(l.by_code[1], 0);
    ck_assert_uint_eq(l.other, 0);
    ck_assert_msg(l.ok >= ok_at_promotion + 200, "writes after promotion: %zu",
                  l.ok - ok_at_promotion);
    ck_assert(l.t_first_ok > 0);

    /* Every acknowledged row is on the new primary. */
    evdb_conn *c = t_conn_open(L, evdb_test_env("EVDB_TEST_PG_STANDBY_URL"), NULL);
    ck_assert_int_eq(t_query_int(c, "SELECT pg_is_in_recovery()::int"), 0);
    evdb_future *f = t_run_ok(c, "SELECT id FROM failover_t", NULL, 0);
    const evdb_result *r = evdb_future_result(f);
    unsigned char *present = calloc(MAX_SUBMITS, 1);
    for (size_t i = 0; i < evdb_result_nrows(r); i++) {
        int64_t id = t_cell_int(r, i, 0);
        ck_assert(id >= 0 && (size_t)id < l.submitted);
        present[id] = 1;
    }
    size_t missing = 0;
    for (size_t i = 0; i < l.submitted; i++)
        if (l.acked[i] && !present[i])
            missing++;
    evdb_future_unref(f);
    t_conn_close(c);
    ck_assert_uint_eq(missing, 0);
    fprintf(stderr,
            "integ_failover_pg: %zu inserts acknowledged (%zu before the stop), %zu lost in "
            "flight (EVDB_ECONNLOST), %zu refused (ECONNECT %zu, EPOOLTIMEOUT %zu, ESERVER %zu); "
            "timeline from the stop command: first "
            "failure at %.0f ms, primary gone at %.0f ms, standby promoted at %.0f ms, first "
            "write submitted after the first failure acknowledged at %.0f ms (writes "
            "unavailable %.0f ms); acknowledged rows missing on the new primary: %zu\n",
            l.ok, ok_before, l.lost, l.refused, l.by_code[0], l.by_code[1], l.by_code[2],
            (l.t_first_fail - l.t_stop) * 1e3, (t_stopped - l.t_stop) * 1e3,
            (t_promoted - l.t_stop) * 1e3, (l.t_first_ok - l.t_stop) * 1e3,
            (l.t_first_ok - l.t_first_fail) * 1e3, missing);
    free(present);
    free(l.calls);
    free(l.acked);
    t_pool_close(l.pool);

    /* Restore: the old primary runs again (on its own timeline, without
     * the synchronous standby), and the standby is rebuilt from it. */
    testdb_ok("start-pg");
    admin = t_conn_open(L, t_pg_admin_url(), NULL);
    t_exec_ok(admin, "ALTER SYSTEM RESET synchronous_standby_names");
    t_exec_ok(admin, "SELECT pg_reload_conf()");
    t_exec_ok(admin, "DROP TABLE IF EXISTS failover_t");
    t_conn_close(admin);
    testdb_ok("stop-standby");
    testdb_ok("start-standby");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("failover_pg");
    TCase *tc = tcase_create("primary_and_standby");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, target_session_attrs_pick_the_right_server, 0,
                        (int)(sizeof tsa_cases / sizeof tsa_cases[0]));
    tcase_add_test(tc, no_matching_server_is_a_clear_error);
    /* Last: it stops the primary (and puts everything back). */
    tcase_add_test(tc, pool_finds_the_promoted_standby_under_load);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
