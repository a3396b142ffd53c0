/*
 * Pool routing around long-running statements, against both real servers
 * (scripts/testdb), PostgreSQL (_i == 0) and MariaDB (_i == 1): a quick
 * query beside a running slow one gets a connection of its own instead of
 * waiting behind it, a fail-fast gather of a running sleep and a failing
 * query fails at once and stops the sleep on the server, queries held
 * unsent behind a stalled head move to another connection, and quick
 * queries keep flowing around slow ones at max_conns. The checks are on
 * the order of completions, not on times: each callback records its place
 * (and is counted: every one runs exactly once).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "testutil.h"
#include "tquery.h"

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
    const char *sleep2;       /* runs for 2 s */
    const char *sleep_gather; /* runs for 5 s, findable by its text */
    const char *failing;      /* fails at once with a server error */
    const char *running_fmt;  /* count of sessions running the %s text */
} backend;

static const backend backends[2] = {
    {"postgres", t_pg_url, t_pg_admin_url, "SELECT pg_sleep(2)",
     "SELECT pg_sleep(5) AS evdb_route_gather", "SELECT 1/0",
     "SELECT count(*) FROM pg_stat_activity WHERE query = '%s' AND state = 'active'"},
    {"mariadb", t_my_url, t_my_admin_url, "SELECT SLEEP(2)", "SELECT SLEEP(5) AS evdb_route_gather",
     "SELECT * FROM evdb_route_no_such_table",
     "SELECT count(*) FROM information_schema.processlist WHERE info = '%s'"},
};

/* Completion order: each callback takes the next place and counts its
 * calls. */
typedef struct seq_log {
    int next;
    int place[32];
    int calls[32];
} seq_log;

typedef struct seq_slot {
    seq_log *log;
    int id;
} seq_slot;

static void on_done_seq(evdb_future *f, void *arg)
{
    (void)f;
    seq_slot *s = arg;
    s->log->calls[s->id]++;
    s->log->place[s->id] = s->log->next++;
}

static evdb_future *submit_seq(evdb_pool *p, const char *sql, unsigned flags, seq_log *log,
                               seq_slot *slot, int id)
{
    evdb_future *f = t_pool_submit(p, sql, NULL, 0, 0, flags);
    *slot = (seq_slot){log, id};
    ck_assert_int_eq(evdb_future_on_done(f, on_done_seq, slot), 0);
    return f;
}

/* Run the loop until the pool has n idle connections. */
static void wait_idle(evdb_pool *p, unsigned n)
{
    evdb_pool_stats st;
    for (int i = 0; i < 500; i++) {
        evdb_pool_stats_get(p, &st);
        if (st.idle >= n)
            return;
        t_sleep(L, 0.01);
    }
    ck_abort_msg("the pool did not open %u connections", n);
}

static uint64_t connects(evdb_pool *p)
{
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    return st.connects;
}

/* The case: a quiet pool (grown to one connection) runs a long
 * statement; a quick query submitted meanwhile gets a second connection
 * and finishes first. */
START_TEST(quick_query_beside_a_running_slow_one_gets_its_own_connection)
{
    const backend *b = &backends[_i];
    evdb_pool_opts o = {.max_conns = 4};
    evdb_pool *p = t_pool_new(L, b->url(), &o);
    ck_assert_int_eq(t_pool_int(p, "SELECT 1"), 1);
    ck_assert_uint_eq(connects(p), 1);
    seq_log log = {0};
    seq_slot slots[2];
    evdb_future *slow = submit_seq(p, b->sleep2, 0, &log, &slots[0], 0);
    t_sleep(L, 0.2); /* it is running now */
    evdb_future *quick = submit_seq(p, "SELECT 1", 0, &log, &slots[1], 1);
    t_wait_ok(quick, "SELECT 1");
    t_wait_ok(slow, b->sleep2);
    ck_assert_int_eq(log.place[1], 0); /* the quick one first */
    ck_assert_int_eq(log.place[0], 1);
    ck_assert_int_eq(log.calls[0], 1);
    ck_assert_int_eq(log.calls[1], 1);
    ck_assert_uint_eq(connects(p), 2);
    evdb_future_unref(slow);
    evdb_future_unref(quick);
    t_pool_close(p);
}
END_TEST

/* The same, both submitted in the same loop tick: the quick query is not
 * pipelined behind the slow one on the pool's one open connection. */
START_TEST(quick_query_submitted_with_a_slow_one_in_the_same_tick)
{
    const backend *b = &backends[_i];
    evdb_pool_opts o = {.max_conns = 4};
    evdb_pool *p = t_pool_new(L, b->url(), &o);
    ck_assert_int_eq(t_pool_int(p, "SELECT 1"), 1);
    seq_log log = {0};
    seq_slot slots[2];
    evdb_future *slow = submit_seq(p, b->sleep2, 0, &log, &slots[0], 0);
    evdb_future *quick = submit_seq(p, "SELECT 1", 0, &log, &slots[1], 1);
    t_wait_ok(quick, "SELECT 1");
    t_wait_ok(slow, b->sleep2);
    ck_assert_int_eq(log.place[1], 0);
    ck_assert_int_eq(log.place[0], 1);
    ck_assert_int_eq(log.calls[0] + log.calls[1], 2);
    ck_assert_uint_eq(connects(p), 2);
    evdb_future_unref(slow);
    evdb_future_unref(quick);
    t_pool_close(p);
}
END_TEST

/* A fail-fast gather of [a running sleep, a failing query] fails with the
 * query's error while the sleep runs, and the sleep is stopped on the
 * server (it no longer shows as running, long before its 5 s are over). */
START_TEST(fail_fast_gather_fails_at_once_and_stops_the_sleep_on_the_server)
{
    const backend *b = &backends[_i];
    evdb_conn *admin = t_conn_open(L, b->admin_url(), NULL);
    char running[256];
    snprintf(running, sizeof running, b->running_fmt, b->sleep_gather);
    evdb_pool_opts o = {.max_conns = 4};
    evdb_pool *p = t_pool_new(L, b->url(), &o);
    ck_assert_int_eq(t_pool_int(p, "SELECT 1"), 1);
    seq_log log = {0};
    seq_slot slots[3];
    evdb_future *fs[2];
    fs[0] = submit_seq(p, b->sleep_gather, 0, &log, &slots[0], 0);
    t_sleep(L, 0.3);
    ck_assert_int_eq(t_query_int(admin, running), 1); /* it runs */
    fs[1] = submit_seq(p, b->failing, 0, &log, &slots[1], 1);
    evdb_future *g = evdb_gather(fs, 2, EVDB_GATHER_FAIL_FAST);
    ck_assert_ptr_nonnull(g);
    slots[2] = (seq_slot){&log, 2};
    ck_assert_int_eq(evdb_future_on_done(g, on_done_seq, &slots[2]), 0);
    ck_assert_int_eq(t_wait(g), EVDB_ESERVER);
    ck_assert_int_eq(evdb_future_status(fs[1]), EVDB_ESERVER);
    /* The gather cancelled the sleep: it did not end by itself. */
    ck_assert_int_eq(t_wait(fs[0]), EVDB_ECANCELED);
    ck_assert_int_eq(log.place[1], 0);
    /* Stopped on the server: gone well before its 5 s (the cancel is a
     * round trip of its own, so it is looked for a few times). */
    int64_t still = 1;
    for (int i = 0; i < 30 && still; i++) {
        still = t_query_int(admin, running);
        if (still)
            t_sleep(L, 0.1);
    }
    ck_assert_int_eq(still, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(log.calls[i], 1);
    /* The pool serves on with the connection the sleep ran on. */
    ck_assert_int_eq(t_pool_int(p, "SELECT 2"), 2);
    evdb_future_unref(fs[0]);
    evdb_future_unref(fs[1]);
    evdb_future_unref(g);
    t_pool_close(p);
    t_conn_close(admin);
}
END_TEST

/* At max_conns, queries pipeline onto busy connections. Those held unsent
 * behind a statement that then runs past the stall threshold (here one
 * sent with EVDB_QUERY_NO_PIPELINE, which the driver runs alone: what
 * follows waits unsent) move to the other connection and finish before
 * it, in order. PostgreSQL only: MariaDB does not pipeline. */
START_TEST(queries_held_behind_a_stalled_head_move_to_another_connection)
{
    evdb_pool_opts o = {.max_conns = 2, .min_conns = 2, .stall_threshold = 0.3};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    wait_idle(p, 2);
    seq_log log = {0};
    seq_slot slots[9];
    evdb_future *fs[9];
    fs[0] = submit_seq(p, "SELECT pg_sleep(2)", EVDB_QUERY_NO_PIPELINE, &log, &slots[0], 0);
    t_sleep(L, 0.05);
    for (int i = 1; i < 9; i++) {
        char sql[32];
        snprintf(sql, sizeof sql, "SELECT %d", i);
        fs[i] = submit_seq(p, sql, 0, &log, &slots[i], i);
    }
    /* Pipelined onto the two connections, none waiting in the pool. */
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.waiting, 0);
    evdb_future *g = evdb_gather(fs, 9, 0);
    t_wait_ok(g, "gather");
    ck_assert_int_eq(log.place[0], 8); /* the sleep last */
    for (int i = 1; i < 9; i++) {
        int64_t v = -1;
        ck_assert_int_eq(evdb_result_int(evdb_future_result(fs[i]), 0, 0, &v), 0);
        ck_assert_int_eq(v, i);
    }
    for (int i = 0; i < 9; i++) {
        ck_assert_int_eq(log.calls[i], 1);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.connects, 2);
    ck_assert_uint_eq(st.query_errors, 0);
    t_pool_close(p);
}
END_TEST

/* At max_conns with two long statements running, quick queries use the
 * other connections (pipelined there on PostgreSQL, one at a time on
 * MariaDB) and all finish before either long one. */
START_TEST(quick_queries_flow_around_two_running_slow_ones_at_max_conns)
{
    const backend *b = &backends[_i];
    evdb_pool_opts o = {.max_conns = 4, .min_conns = 4};
    evdb_pool *p = t_pool_new(L, b->url(), &o);
    wait_idle(p, 4);
    seq_log log = {0};
    seq_slot slots[22];
    evdb_future *fs[22];
    fs[0] = submit_seq(p, b->sleep2, 0, &log, &slots[0], 0);
    fs[1] = submit_seq(p, b->sleep2, 0, &log, &slots[1], 1);
    t_sleep(L, 0.2);
    for (int i = 2; i < 22; i++)
        fs[i] = submit_seq(p, "SELECT 1", 0, &log, &slots[i], i);
    evdb_future *g = evdb_gather(fs, 22, 0);
    t_wait_ok(g, "gather");
    ck_assert_int_ge(log.place[0], 20);
    ck_assert_int_ge(log.place[1], 20);
    for (int i = 0; i < 22; i++) {
        ck_assert_int_eq(log.calls[i], 1);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    ck_assert_uint_eq(connects(p), 4);
    t_pool_close(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool_routing");
    TCase *tc = tcase_create("routing");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, quick_query_beside_a_running_slow_one_gets_its_own_connection, 0, 2);
    tcase_add_loop_test(tc, quick_query_submitted_with_a_slow_one_in_the_same_tick, 0, 2);
    tcase_add_loop_test(tc, fail_fast_gather_fails_at_once_and_stops_the_sleep_on_the_server, 0, 2);
    tcase_add_test(tc, queries_held_behind_a_stalled_head_move_to_another_connection);
    tcase_add_loop_test(tc, quick_queries_flow_around_two_running_slow_ones_at_max_conns, 0, 2);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
