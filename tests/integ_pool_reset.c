/*
 * What a pool's release resets and what it keeps, against both real
 * servers (scripts/testdb). Every leftover test has one borrower leave
 * something behind (checking that it is really there), release, and a
 * second borrower on the same session (max_conns 1, the same
 * evdb_conn_server_id) check that it is gone. Around them: evdb's own
 * prepared statements survive a release on PostgreSQL (server-side
 * prepare_time unchanged) and on MariaDB after a borrow that changed
 * nothing (the cheap reset; Com_stmt_prepare), while after the full
 * reset (COM_RESET_CONNECTION) they are prepared again once; what
 * MariaDB's session state tracking does not report is cleaned all the
 * same; the user's own
 * DISCARD ALL / DEALLOCATE ALL do not confuse the statement cache; a
 * release with statements still in flight; a reset that fails drops the
 * connection and nothing runs on the unclean session; a connection that
 * breaks during the reset completes every callback exactly once.
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

#define FAILS (-99) /* a check statement that must fail instead of giving a number */

static struct ev_loop *L;
static evdb_fp *FP;
/* The pools' pipeline_depth (0: the driver's default). */
static unsigned DEPTH;

static void setup(void)
{
    DEPTH = 0;
    L = t_loop_new(60);
    FP = NULL;
}

static void teardown(void)
{
    evdb_fp_free(FP);
    FP = NULL;
    t_loop_free(L);
}

static const evdb_query_opts nocache = {.flags = EVDB_QUERY_NO_CACHE};

static evdb_conn *borrow(evdb_pool *p)
{
    evdb_future *a = evdb_pool_acquire(p, 10);
    ck_assert_ptr_nonnull(a);
    ck_assert_msg(t_wait(a) == 0, "acquire: %s", evdb_error_message(evdb_future_error(a)));
    evdb_conn *c = evdb_future_take_conn(a);
    evdb_future_unref(a);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Run sql on c (text protocol, no statement cache) and return the future,
 * done. */
static evdb_future *run(evdb_conn *c, const char *sql)
{
    evdb_future *f = evdb_conn_query(c, sql, NULL, 0, &nocache);
    ck_assert_msg(f != NULL, "%s: %s", sql, evdb_error_message(evdb_last_error()));
    t_wait(f);
    return f;
}

static void run_ok(evdb_conn *c, const char *sql)
{
    evdb_future *f = run(c, sql);
    ck_assert_msg(evdb_future_status(f) == 0, "%s: %s", sql,
                  evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
}

/* check gives want (an integer in cell 0,0), or fails when want is FAILS. */
static void expect(evdb_conn *c, const char *check, int want, const char *who)
{
    evdb_future *f = run(c, check);
    if (want == FAILS) {
        ck_assert_msg(evdb_future_status(f) != 0, "%s: %s should fail", who, check);
    } else {
        ck_assert_msg(evdb_future_status(f) == 0, "%s: %s: %s", who, check,
                      evdb_error_message(evdb_future_error(f)));
        int64_t v = -1;
        ck_assert_int_eq(evdb_result_int(evdb_future_result(f), 0, 0, &v), 0);
        ck_assert_msg(v == want, "%s: %s gave %lld, not %d", who, check, (long long)v, want);
    }
    evdb_future_unref(f);
}

static void close_pool(evdb_pool *p)
{
    evdb_future *f = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

/* p's stats once the loop has run the callbacks of what just finished
 * (the last release's reset among them). */
static evdb_pool_stats settled_stats(evdb_pool *p)
{
    t_run_for(L, 0.05);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    return st;
}

/* The first borrower runs leave[] (each must succeed; a statement
 * starting with '!' must fail), sees check give dirty, and releases; the
 * next borrower, on the same session, sees check give clean. */
static void leftover_gone(const char *url, const char *const *leave, size_t n, const char *check,
                          int dirty, int clean)
{
    evdb_pool_opts o = {.max_conns = 1, .pipeline_depth = DEPTH};
    evdb_pool *p = t_pool_new(L, url, &o);
    /* A first borrow that leaves nothing: the leftover borrow then starts
     * on a session a reset has cleaned once (on MariaDB, one whose state
     * tracking is on, so its release may take the cheap reset). */
    evdb_conn *a = borrow(p);
    int64_t id = evdb_conn_server_id(a);
    ck_assert(id > 0);
    run_ok(a, "SELECT 1");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    a = borrow(p);
    ck_assert_int_eq(evdb_conn_server_id(a), id);
    for (size_t i = 0; i < n; i++) {
        if (leave[i][0] == '!') {
            evdb_future *f = run(a, leave[i] + 1);
            ck_assert_msg(evdb_future_status(f) != 0, "%s should fail", leave[i] + 1);
            evdb_future_unref(f);
        } else {
            run_ok(a, leave[i]);
        }
    }
    expect(a, check, dirty, "the borrower that leaves it");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    evdb_conn *b = borrow(p);
    ck_assert_int_eq(evdb_conn_server_id(b), id); /* the same session, reset */
    expect(b, check, clean, "the next borrower");
    ck_assert_int_eq(evdb_conn_release(b), 0);
    evdb_pool_stats st = settled_stats(p);
    ck_assert_uint_eq(st.resets, 3);
    ck_assert_uint_eq(st.discarded, 0);
    close_pool(p);
}

#define LEFTOVER(name, url, check, dirty, clean, ...)                                              \
    START_TEST(name)                                                                               \
    {                                                                                              \
        static const char *const leave[] = {__VA_ARGS__};                                          \
        leftover_gone(url(), leave, sizeof leave / sizeof *leave, check, dirty, clean);            \
    }                                                                                              \
    END_TEST

/* Tables and roles the leftover tests use, made once per test by an
 * administrator (idempotent). */
static void pg_fixtures(void)
{
    evdb_conn *c = t_conn_open(L, t_pg_admin_url(), NULL);
    t_exec_ok(c, "CREATE TABLE IF NOT EXISTS evdb_reset_t (x int)");
    t_exec_ok(c, "GRANT ALL ON evdb_reset_t TO evdb");
    t_exec_ok(c, "DELETE FROM evdb_reset_t");
    t_exec_ok(c, "CREATE SEQUENCE IF NOT EXISTS evdb_reset_seq");
    t_exec_ok(c, "GRANT ALL ON evdb_reset_seq TO evdb");
    t_exec_ok(c, "DO $$BEGIN CREATE ROLE evdb_reset_role; EXCEPTION WHEN duplicate_object "
                 "THEN NULL; END$$");
    t_exec_ok(c, "GRANT evdb_reset_role TO evdb");
    t_conn_close(c);
}

static void my_fixtures(void)
{
    evdb_conn *c = t_conn_open(L, t_my_admin_url(), NULL);
    t_exec_ok(c, "CREATE TABLE IF NOT EXISTS evdb_reset_t (x int) ENGINE=InnoDB");
    t_exec_ok(c, "CREATE TABLE IF NOT EXISTS evdb_reset_u (x int) ENGINE=InnoDB");
    t_exec_ok(c, "DELETE FROM evdb_reset_t");
    t_exec_ok(c, "CREATE ROLE IF NOT EXISTS evdb_reset_role");
    t_exec_ok(c, "GRANT evdb_reset_role TO 'evdb'@'127.0.0.1'");
    t_exec_ok(c, "CREATE OR REPLACE FUNCTION evdb_reset_set_tz() RETURNS INT "
                 "BEGIN SET time_zone = '+02:00'; RETURN 1; END");
    t_exec_ok(c, "CREATE OR REPLACE FUNCTION evdb_reset_make_tmp() RETURNS INT "
                 "BEGIN CREATE TEMPORARY TABLE IF NOT EXISTS evdb_reset_ftmp (x int); "
                 "RETURN 1; END");
    t_exec_ok(c, "CREATE OR REPLACE PROCEDURE evdb_reset_set_tz_fail() "
                 "BEGIN SET time_zone = '+03:00'; "
                 "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'evdb reset test'; END");
    t_conn_close(c);
}

static void pg_setup(void)
{
    setup();
    pg_fixtures();
}

static void my_setup(void)
{
    setup();
    my_fixtures();
}

/* ---- PostgreSQL leftovers ---- */

LEFTOVER(pg_open_transaction, t_pg_url, "SELECT count(*) FROM evdb_reset_t", 1, 0, "BEGIN",
         "INSERT INTO evdb_reset_t VALUES (1)")
/* A failed transaction: the borrower's own SELECT fails too (25P02). */
LEFTOVER(pg_failed_transaction, t_pg_url, "SELECT 1", FAILS, 1, "BEGIN", "!SELECT 1/0")
LEFTOVER(pg_settings, t_pg_url,
         "SELECT CASE WHEN current_setting('work_mem') = '7MB' OR "
         "current_setting('search_path') = 'pg_catalog' OR "
         "current_setting('application_name') = 'evdb_dirty' THEN 1 ELSE 0 END",
         1, 0, "SET work_mem = '7MB'", "SET search_path = pg_catalog",
         "SELECT set_config('application_name', 'evdb_dirty', false)")
LEFTOVER(pg_role, t_pg_url, "SELECT CASE WHEN current_user = 'evdb_reset_role' THEN 1 ELSE 0 END",
         1, 0, "SET ROLE evdb_reset_role")
/* Only a superuser may change the session authorization. */
LEFTOVER(pg_session_authorization, t_pg_admin_url,
         "SELECT CASE WHEN session_user = 'evdb' THEN 1 ELSE 0 END", 1, 0,
         "SET SESSION AUTHORIZATION evdb")
LEFTOVER(pg_temp_table, t_pg_url,
         "SELECT CASE WHEN to_regclass('pg_temp.evdb_reset_tmp') IS NULL THEN 0 ELSE 1 END", 1, 0,
         "CREATE TEMP TABLE evdb_reset_tmp (x int)")
LEFTOVER(pg_listen, t_pg_url, "SELECT count(*) FROM pg_listening_channels()", 1, 0,
         "LISTEN evdb_reset_chan")
LEFTOVER(pg_advisory_lock, t_pg_url,
         "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()", 2,
         0, "SELECT pg_advisory_lock(4242)", "SELECT pg_advisory_lock_shared(4243)")
LEFTOVER(pg_cursor, t_pg_url, "SELECT count(*) FROM pg_cursors WHERE name = 'evdb_reset_cur'", 1, 0,
         "BEGIN", "DECLARE evdb_reset_cur CURSOR WITH HOLD FOR SELECT 1", "COMMIT")
/* currval fails until nextval ran in the session. */
LEFTOVER(pg_sequence_state, t_pg_url, "SELECT currval('evdb_reset_seq')::int * 0 + 1", 1, FAILS,
         "SELECT nextval('evdb_reset_seq')")
LEFTOVER(pg_sql_prepare, t_pg_url, "SELECT count(*) FROM pg_prepared_statements WHERE from_sql", 2,
         0, "PREPARE evdb_user_stmt AS SELECT 1", "PREPARE \"evdb Odd\" (int) AS SELECT $1")
/* Made by dynamic SQL whose text the driver saw (it names PREPARE): the
 * reset deallocates it and keeps the session. */
LEFTOVER(pg_sql_prepare_in_do_block, t_pg_url,
         "SELECT count(*) FROM pg_prepared_statements WHERE from_sql", 2, 0,
         "DO $$BEGIN EXECUTE 'PREPARE evdb_do_stmt AS SELECT 1'; END$$",
         "DO $$BEGIN EXECUTE format('prepare %I AS SELECT 2', 'evdb_fmt_stmt'); END$$")

/* Without pipelining (one statement at a time on the connection) the
 * reset is the same batch, and cleans the same. */
START_TEST(pg_reset_without_pipelining)
{
    static const char *const leave[] = {"SET work_mem = '7MB'", "LISTEN evdb_reset_chan",
                                        "CREATE TEMP TABLE evdb_reset_tmp (x int)", "BEGIN",
                                        "INSERT INTO evdb_reset_t VALUES (1)"};
    DEPTH = 1;
    leftover_gone(t_pg_url(), leave, sizeof leave / sizeof *leave,
                  "SELECT CASE WHEN current_setting('work_mem') = '7MB' THEN 1 ELSE 0 END + "
                  "(SELECT count(*) FROM pg_listening_channels())::int + "
                  "(SELECT count(*) FROM evdb_reset_t)::int + "
                  "CASE WHEN to_regclass('pg_temp.evdb_reset_tmp') IS NULL THEN 0 ELSE 1 END",
                  4, 0);
}
END_TEST

static void count_notice(evdb_conn *c, const evdb_error *notice, void *arg)
{
    (void)c;
    (void)notice;
    (*(int *)arg)++;
}

/* The reset's ROLLBACK goes only where a block may be open: a release
 * outside a transaction earns no WARNING ("there is no transaction in
 * progress") for the pool's notice hook, with or without pipelining. */
START_TEST(pg_reset_sends_no_needless_rollback)
{
    for (unsigned depth = 0; depth <= 1; depth++) {
        int notices = 0;
        evdb_pool_opts o = {.max_conns = 1,
                            .pipeline_depth = depth,
                            .notice_hook = count_notice,
                            .notice_hook_arg = &notices};
        evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
        for (int i = 0; i < 3; i++) {
            evdb_conn *a = borrow(p);
            run_ok(a, "SELECT 1");
            if (i == 1) {
                run_ok(a, "BEGIN");
                run_ok(a, "SELECT 2");
            }
            ck_assert_int_eq(evdb_conn_release(a), 0);
        }
        evdb_conn *b = borrow(p);
        run_ok(b, "SELECT 3");
        ck_assert_int_eq(evdb_conn_release(b), 0);
        evdb_pool_stats st = settled_stats(p);
        ck_assert_int_eq(notices, 0);
        ck_assert_uint_eq(st.resets, 4);
        close_pool(p);
    }
}
END_TEST

/* The search path a session starts with comes back (RESET ALL), not an
 * empty one or the borrower's. */
START_TEST(pg_search_path_comes_back)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    evdb_conn *a = borrow(p);
    evdb_future *f = run(a, "SHOW search_path");
    ck_assert_int_eq(evdb_future_status(f), 0);
    char start[128];
    snprintf(start, sizeof start, "%s", evdb_result_text(evdb_future_result(f), 0, 0, NULL));
    evdb_future_unref(f);
    run_ok(a, "SET search_path = pg_catalog");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    evdb_conn *b = borrow(p);
    f = run(b, "SHOW search_path");
    ck_assert_int_eq(evdb_future_status(f), 0);
    ck_assert_str_eq(evdb_result_text(evdb_future_result(f), 0, 0, NULL), start);
    evdb_future_unref(f);
    ck_assert_int_eq(evdb_conn_release(b), 0);
    close_pool(p);
}
END_TEST

/* ---- MariaDB leftovers ---- */

LEFTOVER(my_open_transaction, t_my_url, "SELECT COUNT(*) FROM evdb_reset_t", 1, 0, "BEGIN",
         "INSERT INTO evdb_reset_t VALUES (1)")
LEFTOVER(my_settings, t_my_url,
         "SELECT IF(@@session.wait_timeout = 1234 OR @@session.sql_mode = 'ANSI_QUOTES', 1, 0)", 1,
         0, "SET SESSION wait_timeout = 1234", "SET SESSION sql_mode = 'ANSI_QUOTES'")
LEFTOVER(my_role, t_my_url, "SELECT IF(CURRENT_ROLE() IS NULL, 0, 1)", 1, 0,
         "SET ROLE evdb_reset_role")
LEFTOVER(my_temp_table, t_my_url, "SELECT COUNT(*) + 1 FROM evdb_reset_tmp", 1, FAILS,
         "CREATE TEMPORARY TABLE evdb_reset_tmp (x int)")
LEFTOVER(my_user_variable, t_my_url, "SELECT IF(@evdb_reset_v IS NULL, 0, 1)", 1, 0,
         "SET @evdb_reset_v = 5")
LEFTOVER(my_named_lock, t_my_url, "SELECT IF(IS_USED_LOCK('evdb_reset_lock') IS NULL, 0, 1)", 1, 0,
         "SELECT GET_LOCK('evdb_reset_lock', 0)")
/* Under LOCK TABLES, a table not locked cannot be read (1100). */
LEFTOVER(my_table_lock, t_my_url, "SELECT COUNT(*) + 1 FROM evdb_reset_u", FAILS, 1,
         "LOCK TABLES evdb_reset_t WRITE")
LEFTOVER(my_sql_prepare, t_my_url, "EXECUTE evdb_user_stmt", 1, FAILS,
         "PREPARE evdb_user_stmt FROM 'SELECT 1'")
/* What MariaDB's session state tracking does not report (my_reset.c):
 * user variables assigned in expressions, and tracking turned off. */
LEFTOVER(my_user_variable_in_select, t_my_url, "SELECT IF(@evdb_reset_v IS NULL, 0, 1)", 1, 0,
         "SELECT @evdb_reset_v := 5")
LEFTOVER(my_user_variable_select_into, t_my_url, "SELECT IF(@evdb_reset_v IS NULL, 0, 1)", 1, 0,
         "SELECT 5 INTO @evdb_reset_v")
LEFTOVER(my_user_variable_in_do, t_my_url, "SELECT IF(@evdb_reset_v IS NULL, 0, 1)", 1, 0,
         "DO @evdb_reset_v := 5")
LEFTOVER(my_tracking_turned_off, t_my_url,
         "SELECT IF(@@session.wait_timeout = 1234 OR @@session.session_track_state_change = 0, "
         "1, 0)",
         1, 0, "SET SESSION session_track_state_change = OFF", "SET SESSION wait_timeout = 1234")
/* Made inside a function that a SELECT calls (the reply is a result
 * set's EOF, not an OK). */
LEFTOVER(my_setting_in_function, t_my_url, "SELECT IF(@@session.time_zone = '+02:00', 1, 0)", 1, 0,
         "SELECT evdb_reset_set_tz()")
LEFTOVER(my_temp_table_in_function, t_my_url, "SELECT COUNT(*) + 1 FROM evdb_reset_ftmp", 1, FAILS,
         "SELECT evdb_reset_make_tmp()")
/* A statement that changes the session and then fails: the error reply
 * carries no status flags. */
LEFTOVER(my_setting_then_error, t_my_url, "SELECT IF(@@session.time_zone = '+03:00', 1, 0)", 1, 0,
         "!CALL evdb_reset_set_tz_fail()")

/* ---- the statement cache ---- */

static const char pg_cached[] = "SELECT $1::int + 100";

/* prepare_time of evdb's statement for pg_cached, as text; and how many
 * statements evdb prepared on the session (from_sql false). */
static void pg_stmt_info(evdb_conn *c, char *when, size_t len, int64_t *count)
{
    evdb_value v = evdb_text(pg_cached);
    evdb_future *f =
        evdb_conn_query(c,
                        "SELECT prepare_time::text, (SELECT count(*) FROM pg_prepared_statements "
                        "WHERE NOT from_sql) FROM pg_prepared_statements WHERE statement = $1",
                        &v, 1, &nocache);
    ck_assert_int_eq(t_wait(f), 0);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_nrows(r), 1);
    snprintf(when, len, "%s", evdb_result_text(r, 0, 0, NULL));
    ck_assert_int_eq(evdb_result_int(r, 0, 1, count), 0);
    evdb_future_unref(f);
}

static void run_cached(evdb_conn *c, const char *sql, int i, int64_t want)
{
    evdb_value v = evdb_int(i);
    evdb_future *f = evdb_conn_query(c, sql, &v, 1, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(t_wait(f) == 0, "%s: %s", sql, evdb_error_message(evdb_future_error(f)));
    int64_t got = -1;
    ck_assert_int_eq(evdb_result_int(evdb_future_result(f), 0, 0, &got), 0);
    ck_assert_int_eq(got, want);
    evdb_future_unref(f);
}

/* PostgreSQL: the statement evdb prepared is still the same one on the
 * server after a release, with every leftover kind made (no re-parse:
 * same prepare_time; the number of evdb statements grows once, by the
 * reset's own, which are prepared on the first release, then stays). */
START_TEST(pg_statement_cache_survives_release)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    evdb_conn *a = borrow(p);
    int64_t id = evdb_conn_server_id(a);
    run_cached(a, pg_cached, 1, 101);
    run_cached(a, pg_cached, 2, 102);
    char when1[64], when2[64];
    int64_t n1 = 0, n2 = 0, n_reset = -1;
    pg_stmt_info(a, when1, sizeof when1, &n1);
    ck_assert(n1 >= 1);
    /* Leftovers of every kind but a schema change (CREATE TEMP TABLE is
     * one: the driver renews its statement cache after DDL by design). */
    run_ok(a, "BEGIN");
    run_ok(a, "PREPARE evdb_user_stmt AS SELECT 1");
    run_ok(a, "SET work_mem = '7MB'");
    run_ok(a, "LISTEN evdb_reset_chan");
    run_ok(a, "SELECT pg_advisory_lock(4242)");
    run_ok(a, "DECLARE evdb_reset_cur CURSOR WITH HOLD FOR SELECT 1");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    for (int round = 0; round < 3; round++) {
        evdb_conn *b = borrow(p);
        ck_assert_int_eq(evdb_conn_server_id(b), id);
        run_cached(b, pg_cached, 3, 103);
        pg_stmt_info(b, when2, sizeof when2, &n2);
        ck_assert_str_eq(when2, when1);
        ck_assert_int_gt(n2, n1);
        if (n_reset < 0)
            n_reset = n2;
        ck_assert_int_eq(n2, n_reset);
        expect(b, "SELECT count(*) FROM pg_prepared_statements WHERE from_sql", 0, "next");
        ck_assert_int_eq(evdb_conn_release(b), 0);
    }
    close_pool(p);
}
END_TEST

/* The counter a SHOW ... STATUS LIKE statement gives on c. */
static long long my_status(evdb_conn *c, const char *show)
{
    evdb_future *f = run(c, show);
    ck_assert_msg(evdb_future_status(f) == 0, "%s: %s", show,
                  evdb_error_message(evdb_future_error(f)));
    long long n = atoll(evdb_result_text(evdb_future_result(f), 0, 1, NULL));
    evdb_future_unref(f);
    return n;
}

/* The statements prepared on the whole server. */
static long long my_prepares(evdb_conn *admin)
{
    return my_status(admin, "SHOW GLOBAL STATUS LIKE 'Com_stmt_prepare'");
}

/* MariaDB: the first release of a session takes the full reset
 * (COM_RESET_CONNECTION drops the session's statements; the driver's
 * cache knows, and the statement is prepared again once, on its first
 * use in the next borrow). It turns state tracking on, so the releases
 * after borrows that changed nothing take the cheap reset, which keeps
 * the statement: no prepare at all. */
START_TEST(my_statements_kept_after_clean_release)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_my_url(), &o);
    evdb_conn *admin = t_conn_open(L, t_my_admin_url(), NULL);
    const char *sql = "SELECT ? + 100";
    evdb_conn *a = borrow(p);
    int64_t id = evdb_conn_server_id(a);
    run_cached(a, sql, 1, 101);
    ck_assert_int_eq(evdb_conn_release(a), 0);
    for (int round = 0; round < 3; round++) {
        evdb_conn *b = borrow(p);
        ck_assert_int_eq(evdb_conn_server_id(b), id);
        long long before = my_prepares(admin);
        for (int i = 0; i < 4; i++)
            run_cached(b, sql, i, 100 + i);
        run_ok(b, "START TRANSACTION");
        run_cached(b, sql, 7, 107);
        run_ok(b, "COMMIT");
        ck_assert_int_eq(my_prepares(admin) - before, round == 0 ? 1 : 0);
        ck_assert_int_eq(evdb_conn_release(b), 0);
    }
    t_conn_close(admin);
    close_pool(p);
}
END_TEST

/* The cheap reset cleans what tracking does not report (named locks,
 * table locks) itself, keeping the statements; a user variable assigned
 * in a SELECT makes it fall back to the full reset (the statement is
 * prepared again). */
START_TEST(my_cheap_reset_cleans_untracked_leftovers)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_my_url(), &o);
    evdb_conn *admin = t_conn_open(L, t_my_admin_url(), NULL);
    const char *sql = "SELECT ? + 100";
    evdb_conn *a = borrow(p);
    run_cached(a, sql, 1, 101);
    ck_assert_int_eq(evdb_conn_release(a), 0); /* the first: full */
    a = borrow(p);
    run_cached(a, sql, 1, 101);
    expect(a, "SELECT GET_LOCK('evdb_reset_lock', 0)", 1, "lock taker");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    a = borrow(p);
    long long before = my_prepares(admin);
    run_cached(a, sql, 2, 102);
    ck_assert_int_eq(my_prepares(admin) - before, 0); /* the cheap reset ran */
    expect(a, "SELECT IF(IS_USED_LOCK('evdb_reset_lock') IS NULL, 0, 1)", 0, "after GET_LOCK");
    run_ok(a, "LOCK TABLES evdb_reset_t WRITE");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    a = borrow(p);
    before = my_prepares(admin);
    run_cached(a, sql, 3, 103);
    ck_assert_int_eq(my_prepares(admin) - before, 0);
    expect(a, "SELECT COUNT(*) + 1 FROM evdb_reset_u", 1, "after LOCK TABLES");
    expect(a, "SELECT @evdb_reset_v := 5", 5, "variable setter");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    a = borrow(p);
    before = my_prepares(admin);
    run_cached(a, sql, 4, 104);
    ck_assert_int_eq(my_prepares(admin) - before, 1); /* the full reset ran */
    expect(a, "SELECT IF(@evdb_reset_v IS NULL, 0, 1)", 0, "after SELECT @v := 5");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    evdb_pool_stats st = settled_stats(p);
    ck_assert_uint_eq(st.discarded, 0);
    t_conn_close(admin);
    close_pool(p);
}
END_TEST

/* The user's own DISCARD ALL and DEALLOCATE ALL inside a borrow, awaited
 * or pipelined with cached statements: the cache never believes in a
 * statement the server dropped (the statement runs again, prepared once
 * more), neither in this borrow nor in the next one. */
START_TEST(pg_user_discard_and_deallocate_all)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    evdb_conn *a = borrow(p);
    run_cached(a, pg_cached, 1, 101);
    run_ok(a, "DISCARD ALL");
    run_cached(a, pg_cached, 2, 102);
    run_ok(a, "DEALLOCATE ALL");
    run_cached(a, pg_cached, 3, 103);
    /* Pipelined: the cached statement on both sides of each. */
    const char *const seq[] = {NULL, "DISCARD ALL", NULL, NULL, "DEALLOCATE ALL", NULL};
    evdb_future *fs[6];
    for (int i = 0; i < 6; i++) {
        evdb_value v = evdb_int(i);
        fs[i] = seq[i] ? evdb_conn_query(a, seq[i], NULL, 0, NULL)
                       : evdb_conn_query(a, pg_cached, &v, 1, NULL);
        ck_assert_ptr_nonnull(fs[i]);
    }
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(t_wait(fs[i]) == 0, "%d: %s", i,
                      evdb_error_message(evdb_future_error(fs[i])));
        if (!seq[i]) {
            int64_t got = -1;
            ck_assert_int_eq(evdb_result_int(evdb_future_result(fs[i]), 0, 0, &got), 0);
            ck_assert_int_eq(got, 100 + i);
        }
        evdb_future_unref(fs[i]);
    }
    expect(a,
           "SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int + 100'",
           1, "after DEALLOCATE ALL");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    evdb_conn *b = borrow(p);
    run_cached(b, pg_cached, 7, 107);
    run_ok(b, "DISCARD ALL");
    ck_assert_int_eq(evdb_conn_release(b), 0);
    evdb_conn *c = borrow(p);
    run_cached(c, pg_cached, 8, 108);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    close_pool(p);
}
END_TEST

/* ---- releases in awkward states ---- */

typedef struct counted {
    int calls;
    int status;
} counted;

static void on_counted(evdb_future *f, void *arg)
{
    counted *c = arg;
    c->calls++;
    c->status = evdb_future_status(f);
}

static evdb_future *counting(evdb_future *f, counted *c)
{
    ck_assert_ptr_nonnull(f);
    c->calls = 0;
    c->status = EVDB_PENDING;
    ck_assert_int_eq(evdb_future_on_done(f, on_counted, c), 0);
    return f;
}

/* Released with statements still in flight (and a transaction opened by
 * them): each completes once and in order, the transaction is rolled
 * back, and the next borrower on the same session sees a clean one. */
static void release_in_flight(const char *url, const char *sleep_sql, bool pg)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, url, &o);
    evdb_conn *a = borrow(p);
    int64_t id = evdb_conn_server_id(a);
    const char *const sqls[] = {"INSERT INTO evdb_reset_t VALUES (7)", sleep_sql, "BEGIN",
                                "INSERT INTO evdb_reset_t VALUES (8)",
                                pg ? "SET application_name = 'evdb_dirty'"
                                   : "SET @evdb_reset_v = 1"};
    counted cs[5];
    evdb_future *fs[5];
    for (int i = 0; i < 5; i++)
        fs[i] = counting(evdb_conn_query(a, sqls[i], NULL, 0, NULL), &cs[i]);
    ck_assert_int_eq(evdb_conn_release(a), 0);
    ck_assert_int_eq(evdb_future_status(fs[0]), EVDB_PENDING); /* not awaited */
    evdb_conn *b = borrow(p);
    ck_assert_int_eq(evdb_conn_server_id(b), id);
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(t_wait(fs[i]) == 0, "%s: %s", sqls[i],
                      evdb_error_message(evdb_future_error(fs[i])));
        evdb_future_unref(fs[i]);
    }
    expect(b, "SELECT COUNT(*) FROM evdb_reset_t WHERE x = 7", 1, "next"); /* autocommitted */
    expect(b, "SELECT COUNT(*) FROM evdb_reset_t WHERE x = 8", 0, "next"); /* rolled back */
    expect(b,
           pg ? "SELECT CASE WHEN current_setting('application_name') = 'evdb_dirty' THEN 1 "
                "ELSE 0 END"
              : "SELECT IF(@evdb_reset_v IS NULL, 0, 1)",
           0, "next");
    ck_assert_int_eq(evdb_conn_release(b), 0);
    t_run_for(L, 0.05);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(cs[i].calls, 1);
        ck_assert_int_eq(cs[i].status, 0);
    }
    close_pool(p);
}

START_TEST(pg_release_with_statements_in_flight)
{
    release_in_flight(t_pg_url(), "SELECT pg_sleep(0.2)", true);
}
END_TEST

START_TEST(my_release_with_statements_in_flight)
{
    release_in_flight(t_my_url(), "SELECT SLEEP(0.2)", false);
}
END_TEST

/* A released connection whose leftover statement runs long is a stalled
 * connection to the router, which moves the pooled queries not yet sent
 * on it elsewhere; the borrower's leftovers and the reset belong to that
 * session and stay: the session ends up clean, the leftovers complete in
 * order, and the pooled queries all complete (on the second connection). */
START_TEST(pg_stall_moves_pooled_queries_but_not_the_reset)
{
    evdb_pool_opts o = {.max_conns = 2, .stall_threshold = 0.05};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    evdb_conn *a = borrow(p);
    run_ok(a, "SET application_name = 'evdb_dirty_stall'");
    counted cs[3];
    evdb_future *left[3] = {
        counting(evdb_conn_query(a, "SELECT pg_sleep(0.4)", NULL, 0, NULL), &cs[0]),
        counting(evdb_conn_query(a, "SELECT current_setting('application_name')", NULL, 0, NULL),
                 &cs[1]),
        counting(evdb_conn_query(a, "SET search_path = pg_catalog", NULL, 0, NULL), &cs[2]),
    };
    ck_assert_int_eq(evdb_conn_release(a), 0);
    evdb_future *pooled[5];
    for (int i = 0; i < 5; i++)
        pooled[i] = t_pool_submit(p, "SELECT 1", NULL, 0, 10, 0);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(t_wait(pooled[i]), 0);
        evdb_future_unref(pooled[i]);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(t_wait(left[i]), 0);
        evdb_future_unref(left[i]);
    }
    t_run_for(L, 0.2);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cs[i].calls, 1);
    /* Nothing on the server kept the borrower's setting. */
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    ck_assert_int_eq(t_query_int(admin, "SELECT count(*) FROM pg_stat_activity "
                                        "WHERE application_name = 'evdb_dirty_stall'"),
                     0);
    t_conn_close(admin);
    /* And every session the pool lends out now is clean. */
    evdb_conn *b = borrow(p), *c = borrow(p);
    expect(b, "SELECT CASE WHEN current_setting('search_path') = 'pg_catalog' THEN 1 ELSE 0 END", 0,
           "next");
    expect(c, "SELECT CASE WHEN current_setting('search_path') = 'pg_catalog' THEN 1 ELSE 0 END", 0,
           "next");
    ck_assert_int_eq(evdb_conn_release(b), 0);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    close_pool(p);
}
END_TEST

/* The next borrower's statements go out right behind the reset, before
 * its answer: the reset is not a round trip of its own. Shown by the
 * order of completion: the borrower's statement completes after the
 * reset has been counted, yet it was accepted while the reset was still
 * running (the acquire did not wait for it). */
START_TEST(pg_acquire_does_not_wait_for_the_reset)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    evdb_conn *a = borrow(p);
    run_ok(a, "SELECT 1");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    evdb_future *fb = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(fb), 0);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.resets, 0); /* handed out with the reset still queued */
    evdb_conn *b = evdb_future_take_conn(fb);
    evdb_future_unref(fb);
    ck_assert_uint_ge(evdb_conn_pending(b), 1);
    run_ok(b, "SELECT 2");
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_eq(st.resets, 1);
    ck_assert_int_eq(evdb_conn_release(b), 0);
    close_pool(p);
}
END_TEST

/* After a reset of session id that failed, with borrower b on it: b is
 * released, its one statement's callback (cq) ran once, the pool counted
 * the drop, and the next borrower gets another session, where check
 * gives 0. */
static void dropped_then_clean(evdb_pool *p, evdb_conn *b, const counted *cq, int64_t id,
                               const char *check)
{
    ck_assert_int_eq(evdb_conn_release(b), 0);
    t_run_for(L, 0.05);
    ck_assert_int_eq(cq->calls, 1);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_ge(st.discarded, 1);
    ck_assert_msg(strstr(st.last_discard_reason, "reset failed") != NULL, "%s",
                  st.last_discard_reason);
    evdb_conn *c = borrow(p);
    ck_assert_int_ne(evdb_conn_server_id(c), id);
    expect(c, check, 0, "the borrower after");
    ck_assert_int_eq(evdb_conn_release(c), 0);
}

/* A reset that fails (here: cancelled by an administrator while it waits
 * for a lock on the borrower's temporary table) drops the connection;
 * the statement the next borrower had already sent behind it does not
 * run on the unclean session (it fails), and the borrow after that gets
 * a new, clean session. */
START_TEST(pg_failed_reset_discards_the_connection)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    evdb_conn *a = borrow(p);
    int64_t id = evdb_conn_server_id(a);
    run_ok(a, "CREATE TEMP TABLE evdb_reset_lk (x int)");
    run_ok(a, "INSERT INTO evdb_reset_lk VALUES (1)");
    evdb_future *f = run(a, "SELECT pg_my_temp_schema()::regnamespace::text");
    ck_assert_int_eq(evdb_future_status(f), 0);
    char lock_sql[200];
    snprintf(lock_sql, sizeof lock_sql, "LOCK TABLE %s.evdb_reset_lk IN ACCESS EXCLUSIVE MODE",
             evdb_result_text(evdb_future_result(f), 0, 0, NULL));
    evdb_future_unref(f);
    t_exec_ok(admin, "BEGIN");
    t_exec_ok(admin, lock_sql);
    ck_assert_int_eq(evdb_conn_release(a), 0);

    evdb_conn *b = borrow(p);
    ck_assert_int_eq(evdb_conn_server_id(b), id);
    counted cq;
    evdb_future *q =
        counting(evdb_conn_query(b, "SELECT count(*) FROM evdb_reset_lk", NULL, 0, &nocache), &cq);
    char wait_sql[200];
    snprintf(wait_sql, sizeof wait_sql,
             "SELECT count(*) FROM pg_stat_activity WHERE pid = %lld AND wait_event_type = "
             "'Lock'",
             (long long)id);
    int waited = 0;
    while (t_query_int(admin, wait_sql) == 0) {
        ck_assert_msg(++waited < 250, "the reset never waited for the lock");
        t_sleep(L, 0.02);
    }
    ck_assert_int_eq(evdb_future_status(q), EVDB_PENDING);
    char cancel_sql[100];
    snprintf(cancel_sql, sizeof cancel_sql, "SELECT pg_cancel_backend(%lld)", (long long)id);
    t_exec_ok(admin, cancel_sql);
    t_wait(q);
    ck_assert_int_ne(evdb_future_status(q), 0); /* never served the unclean session */
    ck_assert_int_eq(evdb_future_status(q), EVDB_ECONNLOST);
    evdb_future_unref(q);
    t_exec_ok(admin, "ROLLBACK");
    dropped_then_clean(p, b, &cq, id,
                       "SELECT CASE WHEN to_regclass('pg_temp.evdb_reset_lk') IS NULL THEN 0 ELSE "
                       "1 END");
    t_conn_close(admin);
    close_pool(p);
}
END_TEST

/* An SQL-level prepared statement made out of the driver's sight (no
 * statement text it saw says "prepare": the word is built at run time,
 * or sits in a function's body): the release's reset finds it and fails,
 * so the connection is dropped and the statement never reaches another
 * borrower. The next borrower takes the connection at once, its
 * statement pipelined behind the failing reset: on that session it must
 * fail (never served unclean); on any other it sees nothing left. */
static void hidden_prepare_dropped(const char *leave)
{
    /* The check itself must not say "prepare" either (it would make the
     * reset deallocate): it counts through a function. */
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    t_exec_ok(admin, "CREATE OR REPLACE FUNCTION evdb_reset_sql_ps() RETURNS int LANGUAGE sql AS "
                     "'SELECT count(*)::int FROM pg_prepared_statements WHERE from_sql'");
    t_exec_ok(admin, "GRANT EXECUTE ON FUNCTION evdb_reset_sql_ps() TO evdb");
    t_conn_close(admin);
    static const char check[] = "SELECT evdb_reset_sql_ps()";
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    evdb_conn *a = borrow(p);
    int64_t id = evdb_conn_server_id(a);
    run_ok(a, leave);
    expect(a, check, 1, "the borrower that leaves it");
    ck_assert_int_eq(evdb_conn_release(a), 0);

    evdb_conn *b = borrow(p);
    bool same = evdb_conn_server_id(b) == id;
    counted cq;
    evdb_future *q = counting(evdb_conn_query(b, check, NULL, 0, &nocache), &cq);
    t_wait(q);
    if (same) {
        ck_assert_int_eq(evdb_future_status(q), EVDB_ECONNLOST);
    } else {
        ck_assert_int_eq(evdb_future_status(q), 0);
        int64_t v = -1;
        ck_assert_int_eq(evdb_result_int(evdb_future_result(q), 0, 0, &v), 0);
        ck_assert_int_eq(v, 0);
    }
    evdb_future_unref(q);
    dropped_then_clean(p, b, &cq, id, check);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_msg(strstr(st.last_discard_reason, "unseen SQL PREPARE evdb_") != NULL, "%s",
                  st.last_discard_reason);
    close_pool(p);
}

START_TEST(pg_sql_prepare_out_of_sight_built_text)
{
    hidden_prepare_dropped("DO $$BEGIN EXECUTE 'PRE' || 'PARE evdb_hidden AS SELECT 1'; END$$");
}
END_TEST

START_TEST(pg_sql_prepare_out_of_sight_function_body)
{
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    t_exec_ok(admin, "CREATE OR REPLACE FUNCTION evdb_reset_hidden_p() RETURNS int "
                     "LANGUAGE plpgsql AS $$BEGIN EXECUTE 'PREPARE evdb_fn_stmt AS SELECT 1'; "
                     "RETURN 1; END$$");
    t_exec_ok(admin, "GRANT EXECUTE ON FUNCTION evdb_reset_hidden_p() TO evdb");
    t_conn_close(admin);
    hidden_prepare_dropped("SELECT evdb_reset_hidden_p()");
}
END_TEST

/* Start the fault proxy in front of the server of url (its port in the
 * test environment's port_var) and write url through the proxy to purl. */
static void proxy_up(const char *url, const char *port_var, char *purl, size_t len)
{
    const char *pv = evdb_test_env(port_var);
    ck_assert_ptr_nonnull(pv);
    int port = atoi(pv);
    char err[160];
    FP = evdb_fp_new(L, 0, "127.0.0.1", port, err, sizeof err);
    ck_assert_msg(FP != NULL, "fault proxy: %s", err);
    char pat[16];
    snprintf(pat, sizeof pat, ":%d/", port);
    const char *at = strstr(url, pat);
    ck_assert_ptr_nonnull(at);
    snprintf(purl, len, "%.*s:%d/%s", (int)(at - url), url, evdb_fp_port(FP), at + strlen(pat));
}

/* The connection breaks (reset by the network) while the reset is
 * queued, with pooled queries, the next borrower's acquire and its
 * statement queued behind: every callback runs exactly once, pooled
 * queries that never ran are re-routed, and the pool serves on from a
 * new connection. */
static void break_during_reset(const char *url, const char *port_var, const char *param_sql)
{
    char purl[512];
    proxy_up(url, port_var, purl, sizeof purl);

    evdb_pool_opts o = {.max_conns = 1, .backoff_initial = 0.02, .backoff_max = 0.1};
    evdb_pool *p = t_pool_new(L, purl, &o);
    evdb_conn *a = borrow(p);
    int64_t id = evdb_conn_server_id(a);
    run_ok(a, "SELECT 1");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    /* Nothing has gone out yet: the loop has not run since the release. */
    counted cp[3], ca;
    evdb_future *ps[3];
    for (int i = 0; i < 3; i++) {
        evdb_value v = evdb_int(i);
        ps[i] = counting(evdb_pool_query(p, param_sql, &v, 1, NULL), &cp[i]);
    }
    evdb_future *fa = counting(evdb_pool_acquire(p, 10), &ca);
    ck_assert_uint_eq(evdb_fp_reset_all(FP), 1);
    /* The acquire comes first (exclusive acquires take idle connections
     * first, and one with only its reset queued counts as idle): it gets
     * the broken session, where nothing runs, or, when the break was seen
     * before it was handed out, a new session. */
    ck_assert_int_eq(t_wait(fa), 0);
    evdb_conn *b = evdb_future_take_conn(fa);
    int64_t bid = evdb_conn_server_id(b);
    evdb_future *fb = evdb_conn_query(b, "SELECT 5", NULL, 0, NULL);
    if (fb) {
        t_wait(fb);
        if (evdb_future_status(fb) == 0)
            ck_assert_int_ne(bid, id);
        else
            ck_assert_int_eq(evdb_future_status(fb), EVDB_ECONNLOST);
        evdb_future_unref(fb);
    } else {
        ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECONNLOST);
    }
    ck_assert_int_eq(evdb_conn_release(b), 0);
    /* The pooled queries never reached that session: they run on the
     * new one. */
    for (int i = 0; i < 3; i++) {
        t_wait(ps[i]);
        ck_assert_msg(evdb_future_status(ps[i]) == 0, "pooled query %d: %s", i,
                      evdb_error_message(evdb_future_error(ps[i])));
        int64_t got = -1;
        ck_assert_int_eq(evdb_result_int(evdb_future_result(ps[i]), 0, 0, &got), 0);
        ck_assert_int_eq(got, i + 1);
    }
    evdb_conn *c = borrow(p);
    expect(c, "SELECT 5", 5, "the borrower after the break");
    ck_assert_int_ne(evdb_conn_server_id(c), id);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    t_run_for(L, 0.1);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cp[i].calls, 1);
        evdb_future_unref(ps[i]);
    }
    ck_assert_int_eq(ca.calls, 1);
    evdb_future_unref(fa);
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    ck_assert_uint_ge(st.broken, 1);
    close_pool(p);
}

START_TEST(pg_connection_breaks_during_reset)
{
    break_during_reset(t_pg_url(), "EVDB_TEST_PG_PORT", "SELECT $1::int + 1");
}
END_TEST

START_TEST(my_connection_breaks_during_reset)
{
    break_during_reset(t_my_url(), "EVDB_TEST_MY_PORT", "SELECT ? + 1");
}
END_TEST

/* The borrower holding the connection when it breaks behind the reset:
 * its queued statements fail (never re-routed outside its session), each
 * callback once, and its release discards the connection. */
START_TEST(my_borrower_statements_fail_when_the_reset_breaks)
{
    char purl[512];
    proxy_up(t_my_url(), "EVDB_TEST_MY_PORT", purl, sizeof purl);
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, purl, &o);
    evdb_conn *a = borrow(p);
    run_ok(a, "SET @evdb_reset_v = 1");
    ck_assert_int_eq(evdb_conn_release(a), 0);
    evdb_conn *b = borrow(p); /* handed out with the reset queued */
    counted cs[3];
    evdb_future *fs[3];
    const char *const sqls[] = {"BEGIN", "SELECT IF(@evdb_reset_v IS NULL, 0, 1)", "COMMIT"};
    for (int i = 0; i < 3; i++)
        fs[i] = counting(evdb_conn_query(b, sqls[i], NULL, 0, NULL), &cs[i]);
    evdb_fp_reset_all(FP);
    for (int i = 0; i < 3; i++) {
        t_wait(fs[i]);
        int s = evdb_future_status(fs[i]);
        /* It ran on the reset session, or failed: never saw @evdb_reset_v. */
        if (s == 0 && i == 1) {
            int64_t v = -1;
            ck_assert_int_eq(evdb_result_int(evdb_future_result(fs[i]), 0, 0, &v), 0);
            ck_assert_int_eq(v, 0);
        } else {
            ck_assert_msg(s == 0 || s == EVDB_ECONNLOST, "%s: %s", sqls[i],
                          evdb_error_message(evdb_future_error(fs[i])));
        }
    }
    ck_assert_int_eq(evdb_conn_release(b), 0);
    t_run_for(L, 0.1);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(cs[i].calls, 1);
        evdb_future_unref(fs[i]);
    }
    evdb_conn *c = borrow(p);
    expect(c, "SELECT IF(@@in_transaction = 0, 1, 0)", 1, "the borrower after");
    ck_assert_int_eq(evdb_conn_release(c), 0);
    close_pool(p);
}
END_TEST

/* ---- releases without the session reset ---- */

/* The last statement the server saw on session pid (pg_stat_activity),
 * read from another connection. */
static void pg_last_query(evdb_conn *admin, int64_t pid, char *out, size_t len)
{
    evdb_value v = evdb_int(pid);
    evdb_future *f = t_run_ok(admin, "SELECT query FROM pg_stat_activity WHERE pid = $1", &v, 1);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_nrows(r), 1);
    snprintf(out, len, "%s", evdb_result_text(r, 0, 0, NULL));
    evdb_future_unref(f);
}

/* evdb_conn_release_no_reset: an open transaction is rolled back, and
 * nothing else is done: the borrower's session state reaches the next
 * borrower (its documented contract), and on PostgreSQL a release outside
 * a block sends nothing at all (the server's last statement stays the
 * borrower's; no WARNING for a needless ROLLBACK). A normal release after
 * it cleans as usual. With and without pipelining. */
START_TEST(pg_release_no_reset)
{
    static const char app_name_set[] =
        "SELECT CASE WHEN current_setting('application_name') = 'evdb_no_reset' THEN 1 ELSE 0 END";
    evdb_conn *admin = t_conn_open(L, t_pg_admin_url(), NULL);
    for (unsigned depth = 0; depth <= 1; depth++) {
        int notices = 0;
        evdb_pool_opts o = {.max_conns = 1,
                            .pipeline_depth = depth,
                            .notice_hook = count_notice,
                            .notice_hook_arg = &notices};
        evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
        evdb_conn *a = borrow(p);
        int64_t id = evdb_conn_server_id(a);
        run_ok(a, "SET application_name = 'evdb_no_reset'");
        run_ok(a, "SELECT 'evdb no reset marker'");
        ck_assert_int_eq(evdb_conn_release_no_reset(a), 0);
        /* A stale handle, as after evdb_conn_release. */
        ck_assert_int_eq(evdb_conn_release_no_reset(a), EVDB_EINVAL);
        ck_assert_int_eq(evdb_conn_release(a), EVDB_EINVAL);
        t_run_for(L, 0.05);
        char last[256];
        pg_last_query(admin, id, last, sizeof last);
        ck_assert_str_eq(last, "SELECT 'evdb no reset marker'");
        evdb_conn *b = borrow(p);
        ck_assert_int_eq(evdb_conn_server_id(b), id);
        expect(b, app_name_set, 1, "after a release without the reset");
        /* An open transaction is rolled back all the same. */
        run_ok(b, "BEGIN");
        run_ok(b, "INSERT INTO evdb_reset_t VALUES (7)");
        ck_assert_int_eq(evdb_conn_release_no_reset(b), 0);
        evdb_conn *c = borrow(p);
        ck_assert_int_eq(evdb_conn_server_id(c), id);
        expect(c, "SELECT count(*) FROM evdb_reset_t WHERE x = 7", 0, "rolled back");
        /* SAVEPOINT fails outside a transaction block. */
        expect(c, "SAVEPOINT evdb_probe", FAILS, "not in a block");
        ck_assert_int_eq(evdb_conn_release(c), 0);
        evdb_conn *d = borrow(p);
        expect(d, app_name_set, 0, "after a normal release");
        ck_assert_int_eq(evdb_conn_release(d), 0);
        evdb_pool_stats st = settled_stats(p);
        ck_assert_int_eq(notices, 0);
        ck_assert_uint_eq(st.discarded, 0);
        ck_assert_uint_eq(st.resets, 4);
        close_pool(p);
    }
    t_conn_close(admin);
}
END_TEST

/* A borrow released without the reset while its statements are still
 * in flight: each completes exactly once, and the ROLLBACK goes behind
 * them when one of them opened a block. */
START_TEST(pg_release_no_reset_in_flight)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_pg_url(), &o);
    evdb_conn *a = borrow(p);
    static const char *const sqls[] = {"BEGIN", "INSERT INTO evdb_reset_t VALUES (8)",
                                       "SELECT pg_sleep(0.05)"};
    evdb_future *fs[3];
    for (int i = 0; i < 3; i++) {
        fs[i] = evdb_conn_query(a, sqls[i], NULL, 0, NULL);
        ck_assert_ptr_nonnull(fs[i]);
    }
    ck_assert_int_eq(evdb_conn_release_no_reset(a), 0);
    evdb_conn *b = borrow(p);
    expect(b, "SELECT count(*) FROM evdb_reset_t WHERE x = 8", 0, "the borrower after");
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(t_wait(fs[i]), 0);
        evdb_future_unref(fs[i]);
    }
    ck_assert_int_eq(evdb_conn_release(b), 0);
    close_pool(p);
}
END_TEST

static evdb_future *txn_insert(evdb_conn *c, void *arg)
{
    return evdb_conn_query(c, (const char *)arg, NULL, 0, NULL);
}

/* evdb_txn_opts.no_reset: the transaction commits, and its connection
 * goes back with nothing sent after the COMMIT (PostgreSQL) / nothing
 * left open (both). */
static void txn_no_reset(const char *url, bool pg)
{
    evdb_conn *admin = pg ? t_conn_open(L, t_pg_admin_url(), NULL) : NULL;
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, url, &o);
    evdb_txn_opts to = {.no_reset = true};
    evdb_future *f =
        evdb_pool_transaction_opts(p, txn_insert, "INSERT INTO evdb_reset_t VALUES (9)", &to);
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(t_wait(f) == 0, "%s", evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    t_run_for(L, 0.05);
    evdb_conn *b = borrow(p);
    int64_t id = evdb_conn_server_id(b);
    if (pg) {
        char last[256];
        pg_last_query(admin, id, last, sizeof last);
        ck_assert_str_eq(last, "COMMIT");
    }
    expect(b, "SELECT count(*) FROM evdb_reset_t WHERE x = 9", 1, "committed");
    if (pg)
        expect(b, "SAVEPOINT evdb_probe", FAILS, "not in a block"); /* fails outside one */
    else
        expect(b, "SELECT @@in_transaction", 0, "not in a block");
    ck_assert_int_eq(evdb_conn_release(b), 0);
    /* A failing one is rolled back and its connection kept. */
    to.max_attempts = 1;
    f = evdb_pool_transaction_opts(p, txn_insert, "SELECT no_such_column FROM evdb_reset_t", &to);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ne(t_wait(f), 0);
    evdb_future_unref(f);
    b = borrow(p);
    ck_assert_int_eq(evdb_conn_server_id(b), id);
    if (pg)
        expect(b, "SAVEPOINT evdb_probe", FAILS, "not in a block after a failure");
    else
        expect(b, "SELECT @@in_transaction", 0, "not in a block after a failure");
    ck_assert_int_eq(evdb_conn_release(b), 0);
    close_pool(p);
    if (admin)
        t_conn_close(admin);
}

START_TEST(pg_transaction_no_reset)
{
    txn_no_reset(t_pg_url(), true);
}
END_TEST

START_TEST(my_transaction_no_reset)
{
    txn_no_reset(t_my_url(), false);
}
END_TEST

/* MariaDB: the release without the reset rolls back and keeps the
 * session's state (a user variable survives, as documented). */
START_TEST(my_release_no_reset)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_my_url(), &o);
    evdb_conn *a = borrow(p);
    int64_t id = evdb_conn_server_id(a);
    run_ok(a, "SET @evdb_nr = 5");
    run_ok(a, "START TRANSACTION");
    run_ok(a, "INSERT INTO evdb_reset_t VALUES (7)");
    ck_assert_int_eq(evdb_conn_release_no_reset(a), 0);
    ck_assert_int_eq(evdb_conn_release_no_reset(a), EVDB_EINVAL);
    evdb_conn *b = borrow(p);
    ck_assert_int_eq(evdb_conn_server_id(b), id);
    expect(b, "SELECT count(*) FROM evdb_reset_t WHERE x = 7", 0, "rolled back");
    expect(b, "SELECT @@in_transaction", 0, "not in a transaction");
    expect(b, "SELECT IFNULL(@evdb_nr, 0)", 5, "state kept");
    ck_assert_int_eq(evdb_conn_release(b), 0);
    evdb_conn *c = borrow(p);
    expect(c, "SELECT IFNULL(@evdb_nr, 0)", 0, "after a normal release");
    ck_assert_int_eq(evdb_conn_release(c), 0);
    evdb_pool_stats st = settled_stats(p);
    ck_assert_uint_eq(st.discarded, 0);
    close_pool(p);
}
END_TEST

/* The ROLLBACKs that reached the server on c's session. */
static long long my_rollbacks(evdb_conn *c)
{
    return my_status(c, "SHOW SESSION STATUS LIKE 'Com_rollback'");
}

/* MariaDB: the release without the reset sends its ROLLBACK only when the
 * server's last answer says a transaction is open or autocommit is off;
 * otherwise it is answered without a round trip. */
START_TEST(my_release_no_reset_rolls_back_only_when_open)
{
    evdb_pool_opts o = {.max_conns = 1};
    evdb_pool *p = t_pool_new(L, t_my_url(), &o);
    evdb_conn *a = borrow(p);
    int64_t id = evdb_conn_server_id(a);
    run_ok(a, "START TRANSACTION");
    run_ok(a, "COMMIT");
    long long before = my_rollbacks(a);
    ck_assert_int_eq(evdb_conn_release_no_reset(a), 0);
    evdb_conn *b = borrow(p);
    ck_assert_int_eq(evdb_conn_server_id(b), id);
    ck_assert_int_eq(my_rollbacks(b), before); /* nothing open: not sent */
    run_ok(b, "START TRANSACTION");
    run_ok(b, "INSERT INTO evdb_reset_t VALUES (6)");
    ck_assert_int_eq(evdb_conn_release_no_reset(b), 0);
    evdb_conn *c = borrow(p);
    ck_assert_int_eq(my_rollbacks(c), before + 1);
    expect(c, "SELECT count(*) FROM evdb_reset_t WHERE x = 6", 0, "rolled back");
    run_ok(c, "SET autocommit = 0"); /* no transaction yet, but autocommit off */
    ck_assert_int_eq(evdb_conn_release_no_reset(c), 0);
    evdb_conn *d = borrow(p);
    ck_assert_int_eq(my_rollbacks(d), before + 2);
    ck_assert_int_eq(evdb_conn_release(d), 0);
    evdb_pool_stats st = settled_stats(p);
    ck_assert_uint_eq(st.discarded, 0);
    close_pool(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool_reset");
    TCase *pg = tcase_create("postgres");
    tcase_add_checked_fixture(pg, pg_setup, teardown);
    tcase_set_timeout(pg, 60);
    tcase_add_test(pg, pg_open_transaction);
    tcase_add_test(pg, pg_failed_transaction);
    tcase_add_test(pg, pg_settings);
    tcase_add_test(pg, pg_search_path_comes_back);
    tcase_add_test(pg, pg_reset_without_pipelining);
    tcase_add_test(pg, pg_reset_sends_no_needless_rollback);
    tcase_add_test(pg, pg_role);
    tcase_add_test(pg, pg_session_authorization);
    tcase_add_test(pg, pg_temp_table);
    tcase_add_test(pg, pg_listen);
    tcase_add_test(pg, pg_advisory_lock);
    tcase_add_test(pg, pg_cursor);
    tcase_add_test(pg, pg_sequence_state);
    tcase_add_test(pg, pg_sql_prepare);
    tcase_add_test(pg, pg_sql_prepare_in_do_block);
    tcase_add_test(pg, pg_sql_prepare_out_of_sight_built_text);
    tcase_add_test(pg, pg_sql_prepare_out_of_sight_function_body);
    tcase_add_test(pg, pg_statement_cache_survives_release);
    tcase_add_test(pg, pg_user_discard_and_deallocate_all);
    tcase_add_test(pg, pg_release_with_statements_in_flight);
    tcase_add_test(pg, pg_acquire_does_not_wait_for_the_reset);
    tcase_add_test(pg, pg_stall_moves_pooled_queries_but_not_the_reset);
    tcase_add_test(pg, pg_failed_reset_discards_the_connection);
    tcase_add_test(pg, pg_connection_breaks_during_reset);
    tcase_add_test(pg, pg_release_no_reset);
    tcase_add_test(pg, pg_release_no_reset_in_flight);
    tcase_add_test(pg, pg_transaction_no_reset);
    suite_add_tcase(s, pg);

    TCase *my = tcase_create("mariadb");
    tcase_add_checked_fixture(my, my_setup, teardown);
    tcase_set_timeout(my, 60);
    tcase_add_test(my, my_open_transaction);
    tcase_add_test(my, my_settings);
    tcase_add_test(my, my_role);
    tcase_add_test(my, my_temp_table);
    tcase_add_test(my, my_user_variable);
    tcase_add_test(my, my_named_lock);
    tcase_add_test(my, my_table_lock);
    tcase_add_test(my, my_sql_prepare);
    tcase_add_test(my, my_user_variable_in_select);
    tcase_add_test(my, my_user_variable_select_into);
    tcase_add_test(my, my_user_variable_in_do);
    tcase_add_test(my, my_tracking_turned_off);
    tcase_add_test(my, my_setting_in_function);
    tcase_add_test(my, my_temp_table_in_function);
    tcase_add_test(my, my_setting_then_error);
    tcase_add_test(my, my_statements_kept_after_clean_release);
    tcase_add_test(my, my_cheap_reset_cleans_untracked_leftovers);
    tcase_add_test(my, my_release_with_statements_in_flight);
    tcase_add_test(my, my_connection_breaks_during_reset);
    tcase_add_test(my, my_borrower_statements_fail_when_the_reset_breaks);
    tcase_add_test(my, my_release_no_reset);
    tcase_add_test(my, my_release_no_reset_rolls_back_only_when_open);
    tcase_add_test(my, my_transaction_no_reset);
    suite_add_tcase(s, my);
    return t_run_suite(s);
}
