/*
 * The MariaDB driver against a real MariaDB server (scripts/testdb), through
 * the public API only: connect and its failures, URL checking, the text and
 * prepared-statement paths, result conversion and type round trips both
 * ways, queueing (10,000 on one connection), gathering across connections,
 * multi-statement queries, timeouts with server-side KILL QUERY and the
 * max_statement_time backstop, cancel, connection loss, close.
 */
#include <check.h>

#include <arpa/inet.h>
#include <float.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"
#include "tquery.h"

#define WATCHDOG_S 60.0
#define TEST_TIMEOUT_S 60
#define URL_MAX 512
#define SQL_MAX 256
#define APP_PASSWORD "evdb_secret"

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
}

static void teardown(void)
{
    t_loop_free(L);
}

/* ---- helpers ---- */

static const char *my_port(void)
{
    const char *p = evdb_test_env("EVDB_TEST_MY_PORT");
    ck_assert_ptr_nonnull(p);
    return p;
}

static evdb_conn *open_app(void)
{
    return t_conn_open(L, t_my_url(), NULL);
}

static evdb_conn *open_admin(void)
{
    return t_conn_open(L, t_my_admin_url(), NULL);
}

static evdb_future *submit(evdb_conn *c, const char *sql, const evdb_value *p, size_t n,
                           double timeout)
{
    return t_submit(c, sql, p, n, timeout, 0);
}

/* ---- connect ---- */

START_TEST(connect_ok)
{
    evdb_conn *c = open_app();
    ck_assert_str_eq(evdb_conn_driver(c), "mariadb");
    int64_t id = evdb_conn_server_id(c);
    ck_assert_int_gt(id, 0);
    ck_assert_int_eq(t_query_int(c, "SELECT CONNECTION_ID()"), id);
    evdb_future *f = t_run_ok(c, "SELECT 1 AS one, DATABASE(), @@character_set_client", NULL, 0);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_nrows(r), 1);
    ck_assert_uint_eq(evdb_result_ncols(r), 3);
    ck_assert_str_eq(evdb_result_colname(r, 0), "one");
    t_expect_cell(r, 0, 0, "1");
    t_expect_cell(r, 0, 1, "evdb_test");
    t_expect_cell(r, 0, 2, "utf8mb4");
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* With EVDB_TRACE_STATES set, a prepared statement's steps are traced in
 * order (src/trace.h), each line naming the driver file and line. */
START_TEST(query_steps_are_traced_when_asked)
{
    ck_assert_int_eq(setenv("EVDB_TRACE_STATES", "1", 1), 0);
    evdb_conn *c = open_app();
    t_stderr_begin();
    evdb_value p = evdb_int(41);
    evdb_future *f = evdb_conn_query(c, "SELECT ? + 1", &p, 1, NULL);
    int rc = f ? t_wait(f) : -1;
    char out[8192];
    t_stderr_end(out, sizeof out);
    ck_assert_int_eq(rc, 0);
    t_expect_cell(evdb_future_result(f), 0, 0, "42");
    evdb_future_unref(f);
    t_conn_close(c);
    const char *want[] = {"-> stmt-prepare (my_stmt.c:", "stmt-prepare -> stmt-execute (my_stmt.c:",
                          "stmt-execute -> stmt-store (my_stmt.c:", "-> idle (my_"};
    t_expect_in_order(out, want, sizeof want / sizeof want[0]);
    ck_assert_ptr_nonnull(strstr(out, "evdb: mariadb op 0x"));
}
END_TEST

START_TEST(connect_mysql_scheme_and_socket)
{
    char url[URL_MAX];
    /* The same server under the mysql:// scheme. */
    snprintf(url, sizeof url, "mysql://evdb:" APP_PASSWORD "@127.0.0.1:%s/evdb_test", my_port());
    evdb_conn *c = t_conn_open(L, url, NULL);
    ck_assert_int_eq(t_query_int(c, "SELECT 7"), 7);
    t_conn_close(c);
    /* Over the unix socket, given as an option. */
    const char *sock = evdb_test_env("EVDB_TEST_MY_SOCKET");
    ck_assert_ptr_nonnull(sock);
    snprintf(url, sizeof url, "mariadb://evdb:" APP_PASSWORD "@/evdb_test?unix_socket=%s", sock);
    c = t_conn_open(L, url, NULL);
    ck_assert_int_eq(t_query_int(c, "SELECT 8"), 8);
    t_conn_close(c);
}
END_TEST

/* A name that is not an IP literal goes through the asynchronous lookup
 * (LOCALHOST is in /etc/hosts, matched without case). */
START_TEST(connect_host_name)
{
    char url[URL_MAX];
    snprintf(url, sizeof url,
             "mariadb://evdb:" APP_PASSWORD "@LOCALHOST:%s/evdb_test?charset=latin1", my_port());
    evdb_conn *c = t_conn_open(L, url, NULL);
    evdb_future *f = t_run_ok(c, "SELECT @@character_set_client", NULL, 0);
    t_expect_cell(evdb_future_result(f), 0, 0, "latin1");
    evdb_future_unref(f);
    t_conn_close(c);
    /* A name that does not resolve fails the connect, not the call. */
    snprintf(url, sizeof url, "mariadb://evdb@no-such-host.invalid:%s/evdb_test", my_port());
    f = evdb_conn_open(L, url, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), EVDB_ECONNECT);
    evdb_future_unref(f);
}
END_TEST

START_TEST(connect_wrong_password)
{
    char url[URL_MAX];
    snprintf(url, sizeof url, "mariadb://evdb:Wr0ngPassw0rd@127.0.0.1:%s/evdb_test", my_port());
    double t0 = t_now();
    evdb_future *f = evdb_conn_open(L, url, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), EVDB_EAUTH);
    ck_assert_double_lt(t_now() - t0, 1.0);
    const evdb_error *e = evdb_future_error(f);
    ck_assert_int_eq(evdb_error_driver_code(e), 1045);
    ck_assert_str_eq(evdb_error_sqlstate(e), "28000");
    ck_assert_ptr_null(strstr(evdb_error_message(e), "Wr0ngPassw0rd"));
    ck_assert_ptr_nonnull(strstr(evdb_error_message(e), "evdb"));
    ck_assert_ptr_null(evdb_future_take_conn(f));
    evdb_future_unref(f);
}
END_TEST

/* A database that does not exist: for the app user (no rights outside
 * evdb_test) the server says 1044 "access denied to database", for root
 * 1049 "unknown database"; both are clear connect failures, at once. */
START_TEST(connect_unknown_database)
{
    char url[URL_MAX];
    snprintf(url, sizeof url, "mariadb://evdb:" APP_PASSWORD "@127.0.0.1:%s/no_such_db", my_port());
    const char *admin = evdb_test_my_admin_url();
    ck_assert_ptr_nonnull(admin);
    char root_url[URL_MAX];
    snprintf(root_url, sizeof root_url, "mariadb://root@127.0.0.1:%s/no_such_db", my_port());
    const char *urls[] = {url, root_url};
    static const int want_no[] = {1044, 1049};
    for (int k = 0; k < 2; k++) {
        double t0 = t_now();
        evdb_future *f = evdb_conn_open(L, urls[k], NULL);
        ck_assert_ptr_nonnull(f);
        int rc = t_wait(f);
        ck_assert_double_lt(t_now() - t0, 1.0);
        const evdb_error *e = evdb_future_error(f);
        ck_assert_msg(rc == EVDB_ECONNECT, "%s: %s (%s)", urls[k], evdb_err_name(rc),
                      evdb_error_message(e));
        ck_assert_int_eq(evdb_error_driver_code(e), want_no[k]);
        ck_assert_str_eq(evdb_error_sqlstate(e), "42000");
        ck_assert_ptr_nonnull(strstr(evdb_error_message(e), "no_such_db"));
        ck_assert_ptr_null(strstr(evdb_error_message(e), APP_PASSWORD));
        ck_assert_ptr_null(evdb_future_take_conn(f));
        evdb_future_unref(f);
    }
}
END_TEST

START_TEST(connect_refused)
{
    char url[URL_MAX];
    snprintf(url, sizeof url, "mariadb://evdb:" APP_PASSWORD "@127.0.0.1:%d/evdb_test",
             t_free_port());
    double t0 = t_now();
    evdb_future *f = evdb_conn_open(L, url, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), EVDB_ECONNECT);
    ck_assert_double_lt(t_now() - t0, 1.0);
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_future_error(f)), APP_PASSWORD));
    evdb_future_unref(f);
}
END_TEST

/* A server that accepts TCP connections but never greets: the per-wait
 * connect_timeout of the URL, and the whole-connect deadline of the
 * options, both end the attempt. */
START_TEST(connect_timeouts)
{
    int port;
    int s = t_silent_listener(&port);
    char url[URL_MAX];
    snprintf(url, sizeof url,
             "mariadb://evdb:" APP_PASSWORD "@127.0.0.1:%d/evdb_test?connect_timeout=1", port);
    double t0 = t_now();
    evdb_future *f = evdb_conn_open(L, url, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), EVDB_ECONNECT);
    double took = t_now() - t0;
    ck_assert_msg(took > 0.9 && took < 2.5, "gave up after %g s", took);
    ck_assert_ptr_null(strstr(evdb_error_message(evdb_future_error(f)), APP_PASSWORD));
    evdb_future_unref(f);
    evdb_conn_opts o;
    memset(&o, 0, sizeof o);
    o.connect_timeout = 0.3;
    snprintf(url, sizeof url, "mariadb://evdb:" APP_PASSWORD "@127.0.0.1:%d/evdb_test", port);
    t0 = t_now();
    f = evdb_conn_open(L, url, &o);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), EVDB_ECONNTIMEOUT);
    took = t_now() - t0;
    ck_assert_msg(took > 0.25 && took < 0.6, "gave up after %g s", took);
    evdb_future_unref(f);
    close(s);
}
END_TEST

static const char *const bad_urls[] = {
    "mariadb://",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:99999/evdb_test",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?bogus_option=1",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?ssl=maybe",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?connect_timeout=-2",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?charset=utf8;drop",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?unix_socket=",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/a/b",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?ssl=false&ssl_ca=/x",
    "mariadb://evdb:s3cr3tpw@/evdb_test",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?unix_socket=/tmp/x.sock",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/d%zzb",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test#frag",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?server_timeout=maybe",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?charset=",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?connect_timeout=soon",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?ssl",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:port/evdb_test",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:-1/evdb_test",
    "mariadb://evdb:s3cr3tpw@[::1/evdb_test",
    "mariadb:evdb:s3cr3tpw@127.0.0.1/evdb_test",
    "mariadb:/evdb:s3cr3tpw@127.0.0.1/evdb_test",
    "maria://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb%00test",
    "mariadb://evdb:s3cr3tpw@127.0.0.1:3306/evdb_test?unix_socket=%2Fx&unix_socket=",
};

START_TEST(bad_url_rejected_at_once)
{
    const char *url = bad_urls[_i];
    evdb_future *f = evdb_conn_open(L, url, NULL);
    ck_assert_msg(f == NULL, "accepted: %s", url);
    const evdb_error *e = evdb_last_error();
    ck_assert_msg(evdb_error_code(e) == EVDB_EURL, "%s: %s (%s)", url, evdb_error_message(e),
                  evdb_err_name(evdb_error_code(e)));
    ck_assert_ptr_null(strstr(evdb_error_message(e), "s3cr3tpw"));
    if (strstr(url, "bogus_option"))
        ck_assert_ptr_nonnull(strstr(evdb_error_message(e), "bogus_option"));
}
END_TEST

/* ---- values and results ---- */

START_TEST(params_round_trip)
{
    evdb_conn *c = open_app();
    static const unsigned char bin[] = {0, 1, 2, 0xff, 0x80, '\'', '"', '\\', 0};
    const char *text = "h\xc3\xa9llo \xf0\x9f\x98\x80 '; DROP TABLE x; --";
    evdb_value p[] = {
        evdb_null(),
        evdb_bool(true),
        evdb_bool(false),
        evdb_int(INT64_MIN),
        evdb_int(INT64_MAX),
        evdb_int(-42),
        evdb_double(0.1),
        evdb_double(1.0 / 3),
        evdb_double(-1.5e300),
        evdb_text(text),
        evdb_bytes(bin, sizeof bin),
        evdb_textn("", 0),
    };
    size_t n = sizeof p / sizeof p[0];
    evdb_future *f = t_run_ok(c, "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?", p, n);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_nrows(r), 1);
    ck_assert_uint_eq(evdb_result_ncols(r), n);
    ck_assert(evdb_result_isnull(r, 0, 0));
    bool b = false;
    ck_assert_int_eq(evdb_result_bool(r, 0, 1, &b), 0);
    ck_assert(b);
    ck_assert_int_eq(evdb_result_bool(r, 0, 2, &b), 0);
    ck_assert(!b);
    ck_assert_int_eq(t_cell_int(r, 0, 3), INT64_MIN);
    ck_assert_int_eq(t_cell_int(r, 0, 4), INT64_MAX);
    ck_assert_int_eq(t_cell_int(r, 0, 5), -42);
    ck_assert_int_eq(evdb_result_coltype(r, 4), EVDB_TYPE_INT);
    double d = 0;
    ck_assert_int_eq(evdb_result_double(r, 0, 6, &d), 0);
    ck_assert(d == 0.1);
    ck_assert_int_eq(evdb_result_double(r, 0, 7, &d), 0);
    ck_assert(d == 1.0 / 3);
    ck_assert_int_eq(evdb_result_double(r, 0, 8, &d), 0);
    ck_assert(d == -1.5e300);
    ck_assert_int_eq(evdb_result_coltype(r, 6), EVDB_TYPE_DOUBLE);
    t_expect_cell(r, 0, 9, text);
    ck_assert_int_eq(evdb_result_coltype(r, 9), EVDB_TYPE_TEXT);
    size_t len = 0;
    const void *got = evdb_result_bytes(r, 0, 10, &len);
    ck_assert_uint_eq(len, sizeof bin);
    ck_assert_int_eq(memcmp(got, bin, sizeof bin), 0);
    ck_assert_int_eq(evdb_result_coltype(r, 10), EVDB_TYPE_BYTES);
    t_expect_cell(r, 0, 11, "");
    ck_assert(!evdb_result_isnull(r, 0, 11));
    evdb_future_unref(f);

    /* The text the prepared path produces equals the text protocol's. */
    evdb_value ones[] = {evdb_int(1), evdb_int(1)};
    f = t_run_ok(c,
                 "SELECT 0.1e0 + ? - 1, 1/3e0, CAST(1.5 AS DECIMAL(10,3)), "
                 "DATE('2024-02-29'), TIMESTAMP('2024-02-29 13:14:15.25'), 12.5e0 * ?",
                 ones, 2);
    evdb_future *t = t_run_ok(c,
                              "SELECT 0.1e0 + 1 - 1, 1/3e0, CAST(1.5 AS DECIMAL(10,3)), "
                              "DATE('2024-02-29'), TIMESTAMP('2024-02-29 13:14:15.25'), "
                              "12.5e0 * 1",
                              NULL, 0);
    for (size_t i = 0; i < 6; i++) {
        const char *a = evdb_result_text(evdb_future_result(f), 0, i, NULL);
        const char *bt = evdb_result_text(evdb_future_result(t), 0, i, NULL);
        ck_assert_msg(a && bt && strcmp(a, bt) == 0, "column %zu: prepared '%s' text '%s'", i, a,
                      bt);
        ck_assert_int_eq(evdb_result_coltype(evdb_future_result(f), i),
                         evdb_result_coltype(evdb_future_result(t), i));
    }
    t_expect_cell(evdb_future_result(t), 0, 2, "1.500");
    ck_assert_int_eq(evdb_result_coltype(evdb_future_result(t), 2), EVDB_TYPE_NUMERIC);
    t_expect_cell(evdb_future_result(t), 0, 3, "2024-02-29");
    evdb_future_unref(f);
    evdb_future_unref(t);
    t_conn_close(c);
}
END_TEST

/* Doubles, floats and fixed-decimal doubles read the same over the
 * prepared path (formatted by the driver or Connector/C) as over the text
 * protocol (formatted by the server), for values of every magnitude. */
START_TEST(doubles_match_text_protocol)
{
    evdb_conn *c = open_app();
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_dbl (id INT PRIMARY KEY, d DOUBLE, f FLOAT, "
                 "d3 DOUBLE(12,3))");
    t_exec_ok(c, "INSERT INTO t_dbl SELECT seq, v, v, IF(ABS(v) < 1e8, v, NULL) FROM ("
                 "SELECT seq, CASE seq % 6 "
                 "WHEN 0 THEN RAND(seq) * POW(10, CAST(seq % 44 AS SIGNED) - 22) "
                 "WHEN 1 THEN ROUND(RAND(seq) * 10000, seq % 7) "
                 "WHEN 2 THEN -ROUND(RAND(seq) * POW(10, seq % 17), seq % 5) "
                 "WHEN 3 THEN (seq % 1000) / POW(10, seq % 25) "
                 "WHEN 4 THEN seq * 1.25e0 "
                 "ELSE (RAND(seq) - 0.5) * POW(2, CAST(seq % 120 AS SIGNED) - 60) END AS v "
                 "FROM seq_1_to_6000) AS g");
    t_exec_ok(c, "INSERT INTO t_dbl VALUES (-1, 0, 0, 0), (-2, -0e0, -0e0, 0), (-3, 1e15, 1e15, "
                 "NULL), (-4, 1e-15, 1e-15, 0.001), (-5, 999999999999999, 1e14, 99999999.999), "
                 "(-6, 0.1e0 + 0.2e0, 0.3, -0.5), (-7, 1.7976931348623157e308, NULL, NULL), "
                 "(-8, 2.2250738585072014e-308, 1e-38, NULL), (-9, 123456789012345.6, 1, 1), "
                 "(-10, 0.000001, 0.000001, 0.0005), (-11, -1e-14, -1e-14, NULL), "
                 "(-12, 4503599627370496.5, 1, 1), (-13, 9007199254740993, 1, 1)");
    evdb_value lo = evdb_int(-100);
    evdb_future *t = t_run_ok(c, "SELECT d, f, d3 FROM t_dbl ORDER BY id", NULL, 0);
    evdb_future *ps = t_run_ok(c, "SELECT d, f, d3 FROM t_dbl WHERE id > ? ORDER BY id", &lo, 1);
    const evdb_result *rt = evdb_future_result(t), *rp = evdb_future_result(ps);
    ck_assert_uint_eq(evdb_result_nrows(rt), 6013);
    ck_assert_uint_eq(evdb_result_nrows(rp), 6013);
    for (size_t row = 0; row < 6013; row++) {
        for (size_t col = 0; col < 3; col++) {
            const char *a = evdb_result_text(rt, row, col, NULL);
            const char *b = evdb_result_text(rp, row, col, NULL);
            ck_assert_msg((!a && !b) || (a && b && strcmp(a, b) == 0),
                          "row %zu col %zu: text '%s' prepared '%s'", row, col, a ? a : "NULL",
                          b ? b : "NULL");
        }
    }
    evdb_future_unref(t);
    evdb_future_unref(ps);
    t_conn_close(c);
}
END_TEST

/* Integer columns of prepared statements are fetched as 64-bit integers
 * and printed by the driver (my_result.c): the cells must equal the text
 * protocol's, every width, signed and unsigned, at their limits, and
 * evdb_result_int must return the value. ZEROFILL and BIGINT UNSIGNED
 * stay with Connector/C's own conversion. */
START_TEST(ints_match_text_protocol)
{
    evdb_conn *c = open_app();
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_int (id INT PRIMARY KEY, ti TINYINT, tu TINYINT "
                 "UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT "
                 "UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED, y YEAR, "
                 "z INT(6) ZEROFILL, b1 TINYINT(1))");
    t_exec_ok(c,
              "INSERT INTO t_int VALUES "
              "(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, "
              "-9223372036854775808, 18446744073709551615, 2155, 42, 1), "
              "(2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, 1901, "
              "0, 0), "
              "(3, 0, 1, -1, 1, -1, 1, -1, 1, -1, 1, 2000, 123456, -1), "
              "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "
              "(5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1)");
    t_exec_ok(c,
              "INSERT INTO t_int (id, i, bi) SELECT seq + 10, CAST(seq AS SIGNED) * 7919 - "
              "400000, CAST(seq AS SIGNED) * 1000000007 * IF(seq % 2, -1, 1) FROM seq_1_to_3000");
    evdb_value lo = evdb_int(0);
    evdb_future *t = t_run_ok(c, "SELECT * FROM t_int ORDER BY id", NULL, 0);
    evdb_future *ps = t_run_ok(c, "SELECT * FROM t_int WHERE id > ? ORDER BY id", &lo, 1);
    const evdb_result *rt = evdb_future_result(t), *rp = evdb_future_result(ps);
    size_t rows = evdb_result_nrows(rt), cols = evdb_result_ncols(rt);
    ck_assert_uint_eq(rows, 3005);
    ck_assert_uint_eq(evdb_result_nrows(rp), rows);
    for (size_t row = 0; row < rows; row++) {
        for (size_t col = 0; col < cols; col++) {
            const char *a = evdb_result_text(rt, row, col, NULL);
            const char *b = evdb_result_text(rp, row, col, NULL);
            ck_assert_msg((!a && !b) || (a && b && strcmp(a, b) == 0),
                          "row %zu col %zu: text '%s' prepared '%s'", row, col, a ? a : "NULL",
                          b ? b : "NULL");
            int64_t va = 0, vb = 0;
            int ra = evdb_result_int(rt, row, col, &va), rb = evdb_result_int(rp, row, col, &vb);
            ck_assert_msg(ra == rb && va == vb, "row %zu col %zu: int %d %lld vs %d %lld", row, col,
                          ra, (long long)va, rb, (long long)vb);
        }
    }
    int64_t v = 0;
    ck_assert_int_eq(evdb_result_int(rp, 0, 9, &v), 0);
    ck_assert_int_eq(v, INT64_MIN);
    ck_assert_int_eq(evdb_result_int(rp, 0, 8, &v), 0);
    ck_assert_int_eq(v, 4294967295LL);
    t_expect_cell(rp, 0, 12, "000042");
    ck_assert_int_eq(evdb_result_int(rp, 0, 10, &v), EVDB_ERANGE); /* 2^64 - 1 */
    evdb_future_unref(t);
    evdb_future_unref(ps);
    t_conn_close(c);
}
END_TEST

START_TEST(column_types)
{
    evdb_conn *c = open_app();
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_types (ti TINYINT(1), si SMALLINT, mi MEDIUMINT, "
                 "i INT, bi BIGINT UNSIGNED, y YEAR, f FLOAT, d DOUBLE, dec1 DECIMAL(5,2), "
                 "vc VARCHAR(10), ch CHAR(3), tx TEXT, vb VARBINARY(10), bl BLOB, "
                 "dt DATETIME, js JSON, en ENUM('a','b'), bt BIT(8))");
    t_exec_ok(c, "INSERT INTO t_types VALUES (1, -2, 3, -4, 18446744073709551615, 2024, 1.5, "
                 "2.25, 3.14, 'v', 'c', 't', 'b', 'l', '2024-01-02 03:04:05', '{}', 'b', 7)");
    static const evdb_type want[] = {
        EVDB_TYPE_INT,  EVDB_TYPE_INT,    EVDB_TYPE_INT,    EVDB_TYPE_INT,     EVDB_TYPE_INT,
        EVDB_TYPE_INT,  EVDB_TYPE_DOUBLE, EVDB_TYPE_DOUBLE, EVDB_TYPE_NUMERIC, EVDB_TYPE_TEXT,
        EVDB_TYPE_TEXT, EVDB_TYPE_TEXT,   EVDB_TYPE_BYTES,  EVDB_TYPE_BYTES,   EVDB_TYPE_TIMESTAMP,
        EVDB_TYPE_JSON, EVDB_TYPE_ENUM,   EVDB_TYPE_BITS,
    };
    evdb_value zero = evdb_int(0);
    evdb_future *fs[2] = {t_run_ok(c, "SELECT * FROM t_types", NULL, 0),
                          t_run_ok(c, "SELECT * FROM t_types WHERE ? = 0", &zero, 1)};
    for (int k = 0; k < 2; k++) {
        const evdb_result *r = evdb_future_result(fs[k]);
        ck_assert_uint_eq(evdb_result_ncols(r), sizeof want / sizeof want[0]);
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            ck_assert_msg(evdb_result_coltype(r, i) == want[i], "path %d column %s: %d", k,
                          evdb_result_colname(r, i), evdb_result_coltype(r, i));
        ck_assert_uint_eq(evdb_result_coltype_native(r, 3), 3 /* MYSQL_TYPE_LONG */);
        t_expect_cell(r, 0, 0, "1");
        t_expect_cell(r, 0, 4, "18446744073709551615");
        t_expect_cell(r, 0, 5, "2024");
        t_expect_cell(r, 0, 6, "1.5");
        t_expect_cell(r, 0, 8, "3.14");
        t_expect_cell(r, 0, 10, "c");
        t_expect_cell(r, 0, 14, "2024-01-02 03:04:05");
        t_expect_cell(r, 0, 16, "b");
        size_t len;
        const unsigned char *bits = evdb_result_bytes(r, 0, 17, &len);
        ck_assert_uint_eq(len, 1);
        ck_assert_uint_eq(bits[0], 7);
        int64_t v;
        ck_assert_int_eq(evdb_result_int(r, 0, 4, &v), EVDB_ERANGE);
    }
    evdb_future_unref(fs[0]);
    evdb_future_unref(fs[1]);
    t_conn_close(c);
}
END_TEST

START_TEST(nulls)
{
    evdb_conn *c = open_app();
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_null (a INT, b TEXT, c BLOB)");
    evdb_value p[] = {evdb_null(), evdb_null(), evdb_null()};
    evdb_future_unref(t_run_ok(c, "INSERT INTO t_null VALUES (?, ?, ?)", p, 3));
    t_exec_ok(c, "INSERT INTO t_null VALUES (NULL, 'x', NULL)");
    evdb_value one = evdb_int(1);
    evdb_future *fs[2] = {t_run_ok(c, "SELECT a, b, c FROM t_null ORDER BY b", NULL, 0),
                          t_run_ok(c, "SELECT a, b, c FROM t_null WHERE ? ORDER BY b", &one, 1)};
    for (int k = 0; k < 2; k++) {
        const evdb_result *r = evdb_future_result(fs[k]);
        ck_assert_uint_eq(evdb_result_nrows(r), 2);
        for (size_t col = 0; col < 3; col++)
            ck_assert(evdb_result_isnull(r, 0, col));
        ck_assert(evdb_result_isnull(r, 1, 0));
        t_expect_cell(r, 1, 1, "x");
        ck_assert_ptr_null(evdb_result_text(r, 0, 1, NULL));
        int64_t v;
        ck_assert_int_eq(evdb_result_int(r, 0, 0, &v), EVDB_ENULL);
    }
    evdb_future_unref(fs[0]);
    evdb_future_unref(fs[1]);
    t_conn_close(c);
}
END_TEST

START_TEST(blob_all_bytes)
{
    evdb_conn *c = open_app();
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    /* Big enough to overflow the staging buffers and go the long way. */
    size_t big_len = 300000;
    unsigned char *big = malloc(big_len);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (unsigned char)(i * 7 + i / 256);
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_blob (id INT PRIMARY KEY, b MEDIUMBLOB)");
    evdb_value p[] = {evdb_int(1), evdb_bytes(all, sizeof all)};
    evdb_future_unref(t_run_ok(c, "INSERT INTO t_blob VALUES (?, ?)", p, 2));
    evdb_value p2[] = {evdb_int(2), evdb_bytes(big, big_len)};
    evdb_future_unref(t_run_ok(c, "INSERT INTO t_blob VALUES (?, ?)", p2, 2));
    ck_assert_int_eq(t_query_int(c, "SELECT LENGTH(b) FROM t_blob WHERE id = 1"), 256);
    evdb_value zero = evdb_int(0);
    evdb_future *fs[2] = {t_run_ok(c, "SELECT b FROM t_blob ORDER BY id", NULL, 0),
                          t_run_ok(c, "SELECT b FROM t_blob WHERE id > ? ORDER BY id", &zero, 1)};
    for (int k = 0; k < 2; k++) {
        const evdb_result *r = evdb_future_result(fs[k]);
        ck_assert_uint_eq(evdb_result_nrows(r), 2);
        ck_assert_int_eq(evdb_result_coltype(r, 0), EVDB_TYPE_BYTES);
        size_t len = 0;
        const void *got = evdb_result_bytes(r, 0, 0, &len);
        ck_assert_uint_eq(len, 256);
        ck_assert_int_eq(memcmp(got, all, 256), 0);
        got = evdb_result_bytes(r, 1, 0, &len);
        ck_assert_uint_eq(len, big_len);
        ck_assert_int_eq(memcmp(got, big, big_len), 0);
    }
    evdb_future_unref(fs[0]);
    evdb_future_unref(fs[1]);
    /* The server got the exact bytes (checked on its side too). */
    evdb_value hex = evdb_text("000102030405060708090A0B0C0D0E0F");
    evdb_future *f = t_run_ok(c, "SELECT LEFT(HEX(b), 32) = ? FROM t_blob WHERE id = 1", &hex, 1);
    t_expect_cell(evdb_future_result(f), 0, 0, "1");
    evdb_future_unref(f);
    free(big);
    t_conn_close(c);
}
END_TEST

START_TEST(large_result)
{
    evdb_conn *c = open_app();
    evdb_value limit = evdb_int(100000);
    evdb_future *fs[2] = {
        t_run_ok(c, "SELECT seq, CONCAT('row', seq) FROM seq_1_to_100000", NULL, 0),
        t_run_ok(c, "SELECT seq, CONCAT('row', seq) FROM seq_1_to_100000 WHERE seq <= ?", &limit,
                 1)};
    for (int k = 0; k < 2; k++) {
        const evdb_result *r = evdb_future_result(fs[k]);
        ck_assert_uint_eq(evdb_result_nrows(r), 100000);
        ck_assert_int_eq(evdb_result_affected(r), 100000);
        for (size_t i = 0; i < 100000; i += 9973) {
            char want[32];
            ck_assert_int_eq(t_cell_int(r, i, 0), (int64_t)i + 1);
            snprintf(want, sizeof want, "row%zu", i + 1);
            t_expect_cell(r, i, 1, want);
        }
        t_expect_cell(r, 99999, 1, "row100000");
    }
    evdb_future_unref(fs[0]);
    evdb_future_unref(fs[1]);
    t_conn_close(c);
}
END_TEST

/* Every type the issue names, both ways: rows written with parameters
 * (prepared path) and with literals (text path), read back over both paths
 * with the typed getters; the server also compares the two writes. */

#define RT_BLOB_BIG (1024 * 1024) /* 1 MiB */
#define RT_NCOLS 17
#define RT_INSERT "INSERT INTO t_rt VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

enum rt_col {
    RT_ID,
    RT_TI,
    RT_TU,
    RT_SI,
    RT_SU,
    RT_MI,
    RT_MU,
    RT_I,
    RT_IU,
    RT_BI,
    RT_BU,
    RT_DEC,
    RT_D,
    RT_DT,
    RT_TX,
    RT_BL,
    RT_N
};

/* One row's values. bu_text is BIGINT UNSIGNED as text: evdb values have
 * no unsigned 64-bit type, so values above INT64_MAX travel as text. */
struct rt_row {
    int64_t ints[RT_BU + 1]; /* RT_ID .. RT_BI, and RT_BU when bu_text is NULL */
    const char *bu_text;
    const char *dec;
    double d;
    const char *d_literal;
    const char *dt;
    const char *tx;
    size_t tx_chars;
    const unsigned char *bl;
    size_t bl_len;
};

static size_t hex_into(char *out, const unsigned char *p, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0xf];
    }
    return 2 * n;
}

/* INSERT with literals: numbers as written, strings quoted (none of the
 * test strings holds a quote or backslash), the blob as X'..'. */
static char *rt_literal_insert(const struct rt_row *r)
{
    size_t cap = 1024 + 2 * r->bl_len;
    char *sql = malloc(cap);
    ck_assert_ptr_nonnull(sql);
    int n = snprintf(sql, cap, "INSERT INTO t_rt VALUES (");
    for (int c = RT_ID; c <= RT_BI; c++)
        n += snprintf(sql + n, cap - (size_t)n, "%lld, ", (long long)r->ints[c]);
    if (r->bu_text)
        n += snprintf(sql + n, cap - (size_t)n, "%s, ", r->bu_text);
    else
        n += snprintf(sql + n, cap - (size_t)n, "%lld, ", (long long)r->ints[RT_BU]);
    n += snprintf(sql + n, cap - (size_t)n, "%s, %s, '%s', '%s', X'", r->dec, r->d_literal, r->dt,
                  r->tx);
    n += (int)hex_into(sql + n, r->bl, r->bl_len);
    snprintf(sql + n, cap - (size_t)n, "', NULL)");
    return sql;
}

static void rt_check_row(const evdb_result *res, size_t row, const struct rt_row *r, int64_t id,
                         const char *path)
{
    int64_t v = 0;
    ck_assert_int_eq(evdb_result_int(res, row, RT_ID, &v), 0);
    ck_assert_int_eq(v, id);
    for (int c = RT_TI; c <= RT_BU; c++) {
        ck_assert_msg(evdb_result_coltype(res, (size_t)c) == EVDB_TYPE_INT, "%s col %s", path,
                      evdb_result_colname(res, (size_t)c));
        if (c == RT_BU && r->bu_text) {
            /* Above INT64_MAX: a range error, never a wrong number; the
             * text is exact. */
            ck_assert_int_eq(evdb_result_int(res, row, (size_t)c, &v), EVDB_ERANGE);
            t_expect_cell(res, row, (size_t)c, r->bu_text);
            continue;
        }
        int rc = evdb_result_int(res, row, (size_t)c, &v);
        ck_assert_msg(rc == 0 && v == r->ints[c], "%s row %lld col %s: rc %d, %lld != %lld", path,
                      (long long)id, evdb_result_colname(res, (size_t)c), rc, (long long)v,
                      (long long)r->ints[c]);
    }
    /* DECIMAL and DATETIME are their exact literals. */
    ck_assert_int_eq(evdb_result_coltype(res, RT_DEC), EVDB_TYPE_NUMERIC);
    t_expect_cell(res, row, RT_DEC, r->dec);
    double d = 0;
    ck_assert_int_eq(evdb_result_double(res, row, RT_DEC, &d), 0);
    ck_assert_int_eq(evdb_result_coltype(res, RT_D), EVDB_TYPE_DOUBLE);
    ck_assert_int_eq(evdb_result_double(res, row, RT_D, &d), 0);
    ck_assert_msg(d == r->d, "%s row %lld: double %.17g != %.17g", path, (long long)id, d, r->d);
    ck_assert_int_eq(evdb_result_coltype(res, RT_DT), EVDB_TYPE_TIMESTAMP);
    t_expect_cell(res, row, RT_DT, r->dt);
    ck_assert_int_eq(evdb_result_coltype(res, RT_TX), EVDB_TYPE_TEXT);
    t_expect_cell(res, row, RT_TX, r->tx);
    ck_assert_int_eq(evdb_result_coltype(res, RT_BL), EVDB_TYPE_BYTES);
    size_t len = 0;
    const void *got = evdb_result_bytes(res, row, RT_BL, &len);
    ck_assert_uint_eq(len, r->bl_len);
    ck_assert_int_eq(memcmp(got, r->bl, len), 0);
    ck_assert(evdb_result_isnull(res, row, RT_N));
    ck_assert_int_eq(evdb_result_int(res, row, RT_N, &v), EVDB_ENULL);
}

START_TEST(type_round_trips)
{
    evdb_conn *c = open_app();
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_rt (id INT PRIMARY KEY, ti TINYINT, "
                 "tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT, "
                 "mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED, "
                 "dc DECIMAL(30,10), d DOUBLE, dt DATETIME(6), "
                 "tx VARCHAR(64) CHARACTER SET utf8mb4, bl LONGBLOB, n INT)");
    unsigned char *big = malloc(RT_BLOB_BIG);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < RT_BLOB_BIG; i++)
        big[i] = (unsigned char)(i % 251 + i / 4096); /* zeros, 0xff and all between */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)(255 - i);
    const struct rt_row rows[2] = {
        {.ints = {0, INT8_MIN, 0, INT16_MIN, 0, -8388608, 0, INT32_MIN, 0, INT64_MIN, 0},
         .dec = "-12345678901234567890.0123456789",
         .d = -DBL_MAX,
         .d_literal = "-1.7976931348623157e308",
         .dt = "1000-01-01 00:00:00.000000",
         .tx = "\xf0\x9f\x98\x80",
         .tx_chars = 1,
         .bl = big,
         .bl_len = RT_BLOB_BIG},
        {.ints = {0, INT8_MAX, UINT8_MAX, INT16_MAX, UINT16_MAX, 8388607, 16777215, INT32_MAX,
                  UINT32_MAX, INT64_MAX, 0},
         .bu_text = "18446744073709551615",
         .dec = "99999999999999999999.9999999999",
         .d = 0.1,
         .d_literal = "0.1e0",
         .dt = "9999-12-31 23:59:59.999999",
         .tx = "h\xc3\xa9llo \xf0\x9f\x98\x80\xf0\x9f\x8e\x89 \xf0\x9d\x84\x9e z\xc3\xbcrich",
         .tx_chars = 17,
         .bl = all,
         .bl_len = sizeof all},
    };
    /* Ids 1, 2 with parameters; 3, 4 with literals. */
    for (int k = 0; k < 2; k++) {
        const struct rt_row *r = &rows[k];
        evdb_value p[RT_NCOLS];
        p[RT_ID] = evdb_int(k + 1);
        for (int col = RT_TI; col <= RT_BI; col++)
            p[col] = evdb_int(r->ints[col]);
        p[RT_BU] = r->bu_text ? evdb_text(r->bu_text) : evdb_int(r->ints[RT_BU]);
        p[RT_DEC] = evdb_text(r->dec);
        p[RT_D] = evdb_double(r->d);
        p[RT_DT] = evdb_text(r->dt);
        p[RT_TX] = evdb_text(r->tx);
        p[RT_BL] = evdb_bytes(r->bl, r->bl_len);
        p[RT_N] = evdb_null();
        evdb_future_unref(t_run_ok(c, RT_INSERT, p, RT_NCOLS));
        struct rt_row lit = *r;
        lit.ints[RT_ID] = k + 3;
        char *sql = rt_literal_insert(&lit);
        t_exec_ok(c, sql);
        free(sql);
    }
    /* The server holds the same values whichever way they came. */
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM t_rt a JOIN t_rt b ON b.id = a.id + 2 "
                                    "WHERE (a.ti, a.tu, a.si, a.su, a.mi, a.mu, a.i, a.iu, a.bi, "
                                    "a.bu, a.dc, a.d, a.dt, a.tx, a.bl) <=> (b.ti, b.tu, b.si, "
                                    "b.su, b.mi, b.mu, b.i, b.iu, b.bi, b.bu, b.dc, b.d, b.dt, "
                                    "b.tx, b.bl) AND a.n IS NULL AND b.n IS NULL"),
                     2);
    /* utf8mb4 arrived as characters, not as bytes of a narrower set. */
    evdb_future *f =
        t_run_ok(c, "SELECT CHAR_LENGTH(tx), LENGTH(bl) FROM t_rt ORDER BY id", NULL, 0);
    for (size_t row = 0; row < 4; row++) {
        ck_assert_int_eq(t_cell_int(evdb_future_result(f), row, 0),
                         (int64_t)rows[row % 2].tx_chars);
        ck_assert_int_eq(t_cell_int(evdb_future_result(f), row, 1), (int64_t)rows[row % 2].bl_len);
    }
    evdb_future_unref(f);
    evdb_value zero = evdb_int(0);
    evdb_future *fs[2] = {t_run_ok(c, "SELECT * FROM t_rt ORDER BY id", NULL, 0),
                          t_run_ok(c, "SELECT * FROM t_rt WHERE id > ? ORDER BY id", &zero, 1)};
    for (int k = 0; k < 2; k++) {
        const evdb_result *res = evdb_future_result(fs[k]);
        ck_assert_uint_eq(evdb_result_nrows(res), 4);
        ck_assert_uint_eq(evdb_result_ncols(res), RT_NCOLS);
        for (size_t row = 0; row < 4; row++)
            rt_check_row(res, row, &rows[row % 2], (int64_t)row + 1, k ? "prepared" : "text");
    }
    evdb_future_unref(fs[0]);
    evdb_future_unref(fs[1]);
    /* The edge of BIGINT UNSIGNED, computed by the server on both paths. */
    evdb_value edge[] = {evdb_text("9223372036854775807"), evdb_text("9223372036854775808")};
    fs[0] = t_run_ok(c,
                     "SELECT CAST(9223372036854775807 AS UNSIGNED), "
                     "CAST(9223372036854775808 AS UNSIGNED), CAST(-1 AS UNSIGNED)",
                     NULL, 0);
    fs[1] = t_run_ok(c, "SELECT CAST(? AS UNSIGNED), CAST(? AS UNSIGNED), CAST(-1 AS UNSIGNED)",
                     edge, 2);
    for (int k = 0; k < 2; k++) {
        const evdb_result *res = evdb_future_result(fs[k]);
        int64_t v = 0;
        ck_assert_int_eq(evdb_result_int(res, 0, 0, &v), 0);
        ck_assert_int_eq(v, INT64_MAX);
        ck_assert_int_eq(evdb_result_int(res, 0, 1, &v), EVDB_ERANGE);
        ck_assert_int_eq(v, INT64_MAX); /* untouched on error */
        t_expect_cell(res, 0, 1, "9223372036854775808");
        ck_assert_int_eq(evdb_result_int(res, 0, 2, &v), EVDB_ERANGE);
        t_expect_cell(res, 0, 2, "18446744073709551615");
    }
    evdb_future_unref(fs[0]);
    evdb_future_unref(fs[1]);
    free(big);
    t_conn_close(c);
}
END_TEST

/* ---- errors ---- */

static void expect_server_error(evdb_future *f, int errnum, const char *sqlstate)
{
    ck_assert_int_eq(t_wait(f), EVDB_ESERVER);
    const evdb_error *e = evdb_future_error(f);
    ck_assert_int_eq(evdb_error_driver_code(e), errnum);
    ck_assert_str_eq(evdb_error_sqlstate(e), sqlstate);
    ck_assert_ptr_null(evdb_future_result(f));
}

START_TEST(server_errors)
{
    evdb_conn *c = open_app();
    /* Text path. */
    evdb_future *f = submit(c, "SELECT * FROM no_such_table", NULL, 0, 0);
    expect_server_error(f, 1146, "42S02");
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(f)), "no_such_table"));
    evdb_future_unref(f);
    f = submit(c, "SELEKT 1", NULL, 0, 0);
    expect_server_error(f, 1064, "42000");
    evdb_future_unref(f);
    /* Prepared path: at prepare, and at execute. */
    evdb_value one = evdb_int(1);
    f = submit(c, "SELECT * FROM no_such_table WHERE a = ?", &one, 1, 0);
    expect_server_error(f, 1146, "42S02");
    evdb_future_unref(f);
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_err (id INT PRIMARY KEY)");
    evdb_future_unref(t_run_ok(c, "INSERT INTO t_err VALUES (?)", &one, 1));
    f = submit(c, "INSERT INTO t_err VALUES (?)", &one, 1, 0);
    expect_server_error(f, 1062, "23000");
    evdb_future_unref(f);
    /* Wrong parameter count: refused by the driver, session fine. */
    evdb_value two[] = {evdb_int(1), evdb_int(2)};
    f = submit(c, "SELECT ?", two, 2, 0);
    ck_assert_int_eq(t_wait(f), EVDB_EINVAL);
    evdb_future_unref(f);
    /* The connection still works, also for the statement that failed. */
    ck_assert_int_eq(t_query_int(c, "SELECT 5"), 5);
    evdb_value three = evdb_int(3);
    evdb_future_unref(t_run_ok(c, "INSERT INTO t_err VALUES (?)", &three, 1));
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM t_err"), 2);
    t_conn_close(c);
}
END_TEST

/* ---- queueing ---- */

#define NQUEUED 200

struct order_log {
    int seen[NQUEUED];
    int n;
};

struct order_item {
    struct order_log *log;
    int index;
};

static void on_order(evdb_future *f, void *arg)
{
    struct order_item *it = arg;
    (void)f;
    it->log->seen[it->log->n++] = it->index;
}

START_TEST(queued_in_order)
{
    evdb_conn *c = open_app();
    evdb_future *fs[NQUEUED];
    struct order_item items[NQUEUED];
    struct order_log log;
    memset(&log, 0, sizeof log);
    char sql[SQL_MAX];
    for (int i = 0; i < NQUEUED; i++) {
        evdb_value v = evdb_int(i);
        /* Alternate the text and the prepared path. */
        if (i % 2) {
            fs[i] = submit(c, "SELECT ?", &v, 1, 0);
        } else {
            snprintf(sql, sizeof sql, "SELECT %d", i);
            fs[i] = submit(c, sql, NULL, 0, 0);
        }
        items[i].log = &log;
        items[i].index = i;
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_order, &items[i]), 0);
    }
    ck_assert_uint_eq(evdb_conn_pending(c), NQUEUED);
    ck_assert_int_eq(t_wait(fs[NQUEUED - 1]), 0);
    t_run_for(L, 0.01);
    ck_assert_int_eq(log.n, NQUEUED);
    for (int i = 0; i < NQUEUED; i++) {
        ck_assert_int_eq(log.seen[i], i);
        ck_assert_int_eq(evdb_future_status(fs[i]), 0);
        ck_assert_int_eq(t_cell_int(evdb_future_result(fs[i]), 0, 0), i);
        evdb_future_unref(fs[i]);
    }
    t_conn_close(c);
}
END_TEST

/* 10,000 queries queued on one connection at once, text and prepared
 * alternating: each completes once, in order, with its own answer. */
#define NMANY 10000

struct many_log {
    int next; /* the index expected next */
    int bad;  /* callbacks out of order or failed */
};

struct many_item {
    struct many_log *log;
    int index;
};

static void on_many(evdb_future *f, void *arg)
{
    struct many_item *it = arg;
    if (it->index != it->log->next || evdb_future_status(f) != 0)
        it->log->bad++;
    it->log->next = it->index + 1;
}

START_TEST(queued_10000)
{
    evdb_conn *c = open_app();
    evdb_future **fs = calloc(NMANY, sizeof *fs);
    struct many_item *items = calloc(NMANY, sizeof *items);
    ck_assert(fs && items);
    struct many_log log = {0, 0};
    char sql[SQL_MAX];
    for (int i = 0; i < NMANY; i++) {
        evdb_value v[] = {evdb_int(i), evdb_int(i * 7)};
        if (i % 2) {
            fs[i] = submit(c, "SELECT ?, CONCAT('r', ?)", v, 2, 0);
        } else {
            snprintf(sql, sizeof sql, "SELECT %d, CONCAT('r', %d)", i, i * 7);
            fs[i] = submit(c, sql, NULL, 0, 0);
        }
        items[i].log = &log;
        items[i].index = i;
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_many, &items[i]), 0);
    }
    ck_assert_uint_eq(evdb_conn_pending(c), NMANY);
    ck_assert_int_eq(t_wait(fs[NMANY - 1]), 0);
    t_run_for(L, 0.01);
    ck_assert_int_eq(log.next, NMANY);
    ck_assert_int_eq(log.bad, 0);
    for (int i = 0; i < NMANY; i++) {
        const evdb_result *r = evdb_future_result(fs[i]);
        ck_assert_int_eq(t_cell_int(r, 0, 0), i);
        snprintf(sql, sizeof sql, "r%d", i * 7);
        t_expect_cell(r, 0, 1, sql);
        evdb_future_unref(fs[i]);
    }
    ck_assert_uint_eq(evdb_conn_pending(c), 0);
    free(fs);
    free(items);
    t_conn_close(c);
}
END_TEST

/* 100 queries spread over 8 connections and gathered: every connection
 * serves its share at the same time as the others, each query gets its
 * own answer. Each sleeps 20 ms: 2 s one after the other, about 0.26 s on
 * 8 connections. */
#define NGCONN 8
#define NGATHER 100

START_TEST(gather_8_connections)
{
    evdb_conn *cs[NGCONN];
    int64_t ids[NGCONN];
    for (int k = 0; k < NGCONN; k++) {
        cs[k] = open_app();
        ids[k] = evdb_conn_server_id(cs[k]);
    }
    evdb_future *fs[NGATHER];
    char sql[SQL_MAX];
    double t0 = t_now();
    for (int i = 0; i < NGATHER; i++) {
        evdb_conn *c = cs[i % NGCONN];
        if (i % 2) {
            evdb_value v = evdb_int(i);
            fs[i] = submit(c, "SELECT ? * ?, CONNECTION_ID(), SLEEP(0.02)", (evdb_value[]){v, v}, 2,
                           5.0);
        } else {
            snprintf(sql, sizeof sql, "SELECT %d * %d, CONNECTION_ID(), SLEEP(0.02)", i, i);
            fs[i] = submit(c, sql, NULL, 0, 5.0);
        }
    }
    evdb_future *g = evdb_gather(fs, NGATHER, EVDB_GATHER_ALL);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(t_wait(g), 0);
    double took = t_now() - t0;
    ck_assert_msg(took < 1.5, "100 queries on 8 connections took %g s", took);
    for (int i = 0; i < NGATHER; i++) {
        ck_assert_int_eq(evdb_future_status(fs[i]), 0);
        const evdb_result *r = evdb_future_result(fs[i]);
        ck_assert_int_eq(t_cell_int(r, 0, 0), (int64_t)i * i);
        ck_assert_int_eq(t_cell_int(r, 0, 1), ids[i % NGCONN]);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    for (int k = 0; k < NGCONN; k++)
        t_conn_close(cs[k]);
}
END_TEST

START_TEST(insert_id_and_affected)
{
    evdb_conn *c = open_app();
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
    evdb_future *f = t_run_ok(c, "INSERT INTO t_ai (v) VALUES (10), (20), (30)", NULL, 0);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_int_eq(evdb_result_affected(r), 3);
    ck_assert_int_eq(evdb_result_insert_id(r), 1); /* first row of the batch */
    ck_assert_uint_eq(evdb_result_ncols(r), 0);
    evdb_future_unref(f);
    evdb_value v = evdb_int(40);
    f = t_run_ok(c, "INSERT INTO t_ai (v) VALUES (?)", &v, 1);
    ck_assert_int_eq(evdb_result_insert_id(evdb_future_result(f)), 4);
    ck_assert_int_eq(evdb_result_affected(evdb_future_result(f)), 1);
    evdb_future_unref(f);
    f = t_run_ok(c, "UPDATE t_ai SET v = v + 1 WHERE v >= 20", NULL, 0);
    ck_assert_int_eq(evdb_result_affected(evdb_future_result(f)), 3);
    evdb_future_unref(f);
    v = evdb_int(25);
    f = t_run_ok(c, "DELETE FROM t_ai WHERE v > ?", &v, 1);
    ck_assert_int_eq(evdb_result_affected(evdb_future_result(f)), 2);
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

START_TEST(multi_statement)
{
    evdb_conn *c = open_app();
    evdb_future *f = t_run_ok(c, "SELECT 1; SELECT 'a' AS x, 'b' AS y; DO 1; SELECT 3", NULL, 0);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_ncols(r), 1);
    t_expect_cell(r, 0, 0, "1");
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(evdb_result_ncols(r), 2);
    ck_assert_str_eq(evdb_result_colname(r, 1), "y");
    t_expect_cell(r, 0, 1, "b");
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(evdb_result_ncols(r), 0);
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    t_expect_cell(r, 0, 0, "3");
    ck_assert_ptr_null(evdb_result_next(r));
    evdb_future_unref(f);
    /* A failing statement in the middle fails the query; the session is
     * back in sync afterwards. */
    f = submit(c, "SELECT 1; SELECT * FROM no_such_table; SELECT 2", NULL, 0, 0);
    expect_server_error(f, 1146, "42S02");
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT 6"), 6);
    /* A procedure answers with several result sets, also when prepared. */
    t_exec_ok(c, "DROP PROCEDURE IF EXISTS evdb_p2");
    t_exec_ok(c, "CREATE PROCEDURE evdb_p2(IN n INT) BEGIN SELECT n; SELECT n * 2; END");
    evdb_value n = evdb_int(21);
    f = t_run_ok(c, "CALL evdb_p2(?)", &n, 1);
    r = evdb_future_result(f);
    t_expect_cell(r, 0, 0, "21");
    r = evdb_result_next(r);
    ck_assert_ptr_nonnull(r);
    t_expect_cell(r, 0, 0, "42");
    evdb_future_unref(f);
    f = t_run_ok(c, "CALL evdb_p2(4)", NULL, 0);
    t_expect_cell(evdb_result_next(evdb_future_result(f)), 0, 0, "8");
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT 9"), 9);
    t_exec_ok(c, "DROP PROCEDURE evdb_p2");
    t_conn_close(c);
}
END_TEST

/* A cached statement over a table whose columns change under it. */
START_TEST(stmt_after_schema_change)
{
    evdb_conn *c = open_app();
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_alter (a INT)");
    t_exec_ok(c, "INSERT INTO t_alter VALUES (1)");
    evdb_value one = evdb_int(1);
    evdb_future *f = t_run_ok(c, "SELECT * FROM t_alter WHERE a = ?", &one, 1);
    ck_assert_uint_eq(evdb_result_ncols(evdb_future_result(f)), 1);
    evdb_future_unref(f);
    t_exec_ok(c, "ALTER TABLE t_alter ADD COLUMN b VARCHAR(20) DEFAULT 'two'");
    f = t_run_ok(c, "SELECT * FROM t_alter WHERE a = ?", &one, 1);
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_ncols(r), 2);
    ck_assert_str_eq(evdb_result_colname(r, 1), "b");
    t_expect_cell(r, 0, 1, "two");
    evdb_future_unref(f);
    t_exec_ok(c, "ALTER TABLE t_alter DROP COLUMN a");
    f = submit(c, "SELECT * FROM t_alter WHERE a = ?", &one, 1, 0);
    expect_server_error(f, 1054, "42S22");
    evdb_future_unref(f);
    t_exec_ok(c, "ALTER TABLE t_alter ADD COLUMN a INT DEFAULT 1");
    f = t_run_ok(c, "SELECT * FROM t_alter WHERE a = ?", &one, 1);
    ck_assert_uint_eq(evdb_result_ncols(evdb_future_result(f)), 2);
    t_expect_cell(evdb_future_result(f), 0, 0, "two");
    evdb_future_unref(f);
    /* A statement with effects is not run twice: it fails once (having
     * taken effect), and works again afterwards. */
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_ret (id INT PRIMARY KEY)");
    evdb_value id = evdb_int(1);
    const char *ins = "INSERT INTO t_ret (id) VALUES (?) RETURNING *";
    f = t_run_ok(c, ins, &id, 1);
    ck_assert_uint_eq(evdb_result_ncols(evdb_future_result(f)), 1);
    evdb_future_unref(f);
    t_exec_ok(c, "ALTER TABLE t_ret ADD COLUMN v INT DEFAULT 5");
    id = evdb_int(2);
    f = submit(c, ins, &id, 1, 0);
    ck_assert_int_eq(t_wait(f), EVDB_ESERVER);
    ck_assert_int_eq(evdb_error_driver_code(evdb_future_error(f)), 2057);
    evdb_future_unref(f);
    id = evdb_int(3);
    f = t_run_ok(c, ins, &id, 1);
    ck_assert_uint_eq(evdb_result_ncols(evdb_future_result(f)), 2);
    t_expect_cell(evdb_future_result(f), 0, 1, "5");
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM t_ret"), 3);
    t_conn_close(c);
}
END_TEST

/* A cached statement's result binding and columns are kept between its
 * executions (my_result.c) and must be renewed whenever they no longer
 * fit: a column
 * whose type follows the parameter's ("SELECT ?"), values longer than
 * the slots bound for earlier ones, another statement in between, and a
 * DOUBLE column that becomes text. */
START_TEST(stmt_binding_reused_and_renewed)
{
    evdb_conn *c = open_app();
    for (int round = 0; round < 3; round++) {
        evdb_value d = evdb_double(2.5);
        evdb_future *f = t_run_ok(c, "SELECT ?", &d, 1);
        double got = 0;
        ck_assert_int_eq(evdb_result_double(evdb_future_result(f), 0, 0, &got), 0);
        ck_assert(got == 2.5);
        t_expect_cell(evdb_future_result(f), 0, 0, "2.5");
        ck_assert_int_eq(evdb_result_coltype(evdb_future_result(f), 0), EVDB_TYPE_DOUBLE);
        evdb_future_unref(f);

        /* Text after a double: bound as a double, this would convert. */
        evdb_value t = evdb_text("not a number");
        f = t_run_ok(c, "SELECT ?", &t, 1);
        t_expect_cell(evdb_future_result(f), 0, 0, "not a number");
        ck_assert_int_eq(evdb_result_coltype(evdb_future_result(f), 0), EVDB_TYPE_TEXT);
        evdb_future_unref(f);
        evdb_value i = evdb_int(42);
        f = t_run_ok(c, "SELECT ?", &i, 1);
        ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 42);
        ck_assert_int_eq(evdb_result_coltype(evdb_future_result(f), 0), EVDB_TYPE_INT);
        evdb_future_unref(f);

        /* Longer than any slot bound so far, then short again. */
        char big[3000];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        evdb_value b = evdb_text(big);
        f = t_run_ok(c, "SELECT ?", &b, 1);
        t_expect_cell(evdb_future_result(f), 0, 0, big);
        evdb_future_unref(f);
        evdb_value s = evdb_text("short");
        f = t_run_ok(c, "SELECT ?", &s, 1);
        t_expect_cell(evdb_future_result(f), 0, 0, "short");
        evdb_future_unref(f);

        /* Parameters of the types bound last: their values are copied
         * into the statement's storage, the binding stays. */
        for (int k = 0; k < 4; k++) {
            evdb_value p3[3] = {evdb_int(k), evdb_double(k + 0.5), evdb_bool(k & 1)};
            f = t_run_ok(c, "SELECT ? * 10, ? * 2, ?", p3, 3);
            ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), k * 10);
            ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 1), 2 * k + 1);
            ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 2), k & 1);
            evdb_future_unref(f);
        }
        evdb_value pnull[3] = {evdb_null(), evdb_double(1.5), evdb_bool(true)};
        f = t_run_ok(c, "SELECT ? * 10, ? * 2, ?", pnull, 3);
        ck_assert(evdb_result_isnull(evdb_future_result(f), 0, 0));
        ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 1), 3);
        evdb_future_unref(f);

        /* Another statement's binding in between, with another shape. */
        evdb_value two[2] = {evdb_int(7), evdb_text("seven")};
        f = t_run_ok(c, "SELECT ?, CONCAT('<', ?, '>')", two, 2);
        ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 7);
        t_expect_cell(evdb_future_result(f), 0, 1, "<seven>");
        ck_assert_str_eq(evdb_result_colname(evdb_future_result(f), 0), "?");
        evdb_future_unref(f);
    }
    t_conn_close(c);
}
END_TEST

/* ---- prepared statement cache ---- */

/* Statements open on c's session: prepared minus closed (the global
 * Prepared_stmt_count would also count sessions still being torn down). */
static int64_t prepared_count(evdb_conn *c)
{
    return t_query_int(c, "SELECT SUM(IF(VARIABLE_NAME = 'COM_STMT_PREPARE', 1, -1) * "
                          "VARIABLE_VALUE) FROM information_schema.SESSION_STATUS WHERE "
                          "VARIABLE_NAME IN ('COM_STMT_PREPARE', 'COM_STMT_CLOSE')");
}

START_TEST(stmt_cache_lru)
{
    evdb_conn_opts o;
    memset(&o, 0, sizeof o);
    o.stmt_cache_size = 2;
    evdb_conn *c = t_conn_open(L, t_my_url(), &o);
    char sql[SQL_MAX];
    for (int round = 0; round < 3; round++) {
        for (int k = 0; k < 5; k++) {
            snprintf(sql, sizeof sql, "SELECT ? + %d", k);
            evdb_value v = evdb_int(round);
            evdb_future *f = t_run_ok(c, sql, &v, 1);
            ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), round + k);
            evdb_future_unref(f);
            ck_assert_int_le(prepared_count(c), 2);
        }
    }
    ck_assert_int_eq(prepared_count(c), 2);
    /* Repeats hit the cache: no new prepare on the server. */
    const char *prepares_sql = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                               "WHERE VARIABLE_NAME = 'COM_STMT_PREPARE'";
    int64_t prepares = t_query_int(c, prepares_sql);
    for (int i = 0; i < 5; i++) {
        evdb_value v = evdb_int(i);
        evdb_future_unref(t_run_ok(c, "SELECT ? + 4", &v, 1));
    }
    ck_assert_int_eq(t_query_int(c, prepares_sql), prepares);
    /* EVDB_QUERY_NO_CACHE: prepared and closed again. */
    evdb_query_opts qo;
    memset(&qo, 0, sizeof qo);
    qo.flags = EVDB_QUERY_NO_CACHE;
    evdb_value v = evdb_int(1);
    evdb_future *f = evdb_conn_query(c, "SELECT ? * 100", &v, 1, &qo);
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 100);
    evdb_future_unref(f);
    ck_assert_int_eq(prepared_count(c), 2);
    ck_assert_int_eq(t_query_int(c, prepares_sql), prepares + 1);
    t_conn_close(c);
    /* With the cache off nothing stays prepared. */
    o.stmt_cache_size = EVDB_STMT_CACHE_OFF;
    c = t_conn_open(L, t_my_url(), &o);
    for (int i = 0; i < 3; i++) {
        evdb_value w = evdb_int(i);
        f = t_run_ok(c, "SELECT ?", &w, 1);
        ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), i);
        evdb_future_unref(f);
        ck_assert_int_eq(prepared_count(c), 0);
    }
    t_conn_close(c);
}
END_TEST

/* ---- pooled sessions ---- */

static evdb_conn *pool_acquire(evdb_pool *p)
{
    evdb_future *f = evdb_pool_acquire(p, 5);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_conn *c = evdb_future_take_conn(f);
    ck_assert_ptr_nonnull(c);
    evdb_future_unref(f);
    return c;
}

/* A released connection comes back clean: rolled back, no temporary
 * tables or variables, prepared statements re-prepared as needed. */
START_TEST(pool_release_resets_session)
{
    evdb_conn *admin = open_admin();
    t_exec_ok(admin, "CREATE TABLE IF NOT EXISTS evdb_test.t_pool (a INT) ENGINE=InnoDB");
    t_exec_ok(admin, "DELETE FROM evdb_test.t_pool");
    evdb_pool_opts po;
    memset(&po, 0, sizeof po);
    po.max_conns = 1;
    evdb_pool *p = evdb_pool_new(L, t_my_url(), &po);
    ck_assert_ptr_nonnull(p);
    evdb_conn *c = pool_acquire(p);
    int64_t id = evdb_conn_server_id(c);
    evdb_value v = evdb_int(1);
    evdb_future *f = t_run_ok(c, "SELECT ? + 1", &v, 1);
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 2);
    evdb_future_unref(f);
    t_exec_ok(c, "SET @evdb_x = 5, autocommit = 0");
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_tmp (a INT)");
    evdb_future_unref(t_run_ok(c, "INSERT INTO t_pool VALUES (?)", &v, 1));
    ck_assert_int_eq(evdb_conn_release(c), 0);
    c = pool_acquire(p);
    ck_assert_int_eq(evdb_conn_server_id(c), id); /* the same session, reset */
    f = t_run_ok(c, "SELECT @evdb_x IS NULL, @@autocommit", NULL, 0);
    t_expect_cell(evdb_future_result(f), 0, 0, "1");
    t_expect_cell(evdb_future_result(f), 0, 1, "1");
    evdb_future_unref(f);
    f = submit(c, "SELECT * FROM t_tmp", NULL, 0, 0);
    expect_server_error(f, 1146, "42S02");
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM t_pool"), 0);
    f = t_run_ok(c, "SELECT ? + 1", &v, 1);
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 2);
    evdb_future_unref(f);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    f = evdb_pool_close(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    t_exec_ok(admin, "DROP TABLE evdb_test.t_pool");
    t_conn_close(admin);
}
END_TEST

/* ---- timeouts and cancel ---- */

/* The victim's thread as the server sees it: its Command, or "" when it
 * is gone. */
static void victim_command(evdb_conn *admin, int64_t id, char *out, size_t n)
{
    evdb_value v = evdb_int(id);
    evdb_future *f =
        t_run_ok(admin, "SELECT COMMAND FROM information_schema.PROCESSLIST WHERE ID = ?", &v, 1);
    const evdb_result *r = evdb_future_result(f);
    snprintf(out, n, "%s", evdb_result_nrows(r) ? evdb_result_text(r, 0, 0, NULL) : "");
    evdb_future_unref(f);
}

static void check_timeout_cancels(const char *sql, const evdb_value *p, size_t np)
{
    evdb_conn *c = open_app();
    int64_t id = evdb_conn_server_id(c);
    evdb_conn *admin = open_admin();
    double t0 = t_now();
    evdb_future *f = submit(c, sql, p, np, 0.2);
    /* Queued behind it: must get its own result, never the 1317. */
    evdb_future *next = submit(c, "SELECT 42", NULL, 0, 0);
    ck_assert_int_eq(t_wait(f), EVDB_ETIMEDOUT);
    double took = t_now() - t0;
    ck_assert_msg(took >= 0.19 && took < 0.5, "timed out after %g s", took);
    evdb_future_unref(f);
    /* The server stopped the statement: the thread goes back to Sleep
     * (give the KILL a moment to land, it is on its way already; the
     * thread shows "Killed" while the statement unwinds). */
    char cmd[64] = "";
    for (int i = 0; i < 50; i++) {
        victim_command(admin, id, cmd, sizeof cmd);
        if (strcmp(cmd, "Sleep") == 0)
            break;
        t_run_for(L, 0.01);
    }
    ck_assert_msg(t_now() - t0 < 1.0, "KILL QUERY took too long");
    ck_assert_str_eq(cmd, "Sleep");
    ck_assert_int_eq(t_wait(next), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(next), 0, 0), 42);
    evdb_future_unref(next);
    /* The same connection keeps serving, prepared path included. */
    evdb_value v = evdb_int(43);
    f = t_run_ok(c, "SELECT ?", &v, 1);
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 43);
    evdb_future_unref(f);
    ck_assert_int_eq(evdb_conn_server_id(c), id);
    t_conn_close(c);
    t_conn_close(admin);
}

START_TEST(timeout_kills_query)
{
    check_timeout_cancels("SELECT SLEEP(30)", NULL, 0);
}
END_TEST

START_TEST(timeout_kills_prepared)
{
    evdb_value v = evdb_int(30);
    check_timeout_cancels("SELECT SLEEP(?)", &v, 1);
}
END_TEST

START_TEST(cancel_running_query)
{
    evdb_conn *c = open_app();
    evdb_future *f = submit(c, "SELECT SLEEP(30)", NULL, 0, 0);
    t_run_for(L, 0.1);
    ck_assert_int_eq(evdb_future_status(f), EVDB_PENDING);
    double t0 = t_now();
    ck_assert_int_eq(evdb_future_cancel(f), 0);
    ck_assert_int_eq(evdb_future_status(f), EVDB_ECANCELED);
    evdb_future_unref(f);
    ck_assert_int_eq(t_query_int(c, "SELECT 11"), 11);
    ck_assert_double_lt(t_now() - t0, 1.0);
    t_conn_close(c);
}
END_TEST

/* Cancelling queued queries: they leave the queue at once and never run
 * (the INSERTs leave no row), on both paths; the running query and the
 * queries behind them are not disturbed. */
START_TEST(cancel_queued)
{
    evdb_conn *c = open_app();
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_cq (a INT)");
    evdb_future *running = submit(c, "SELECT SLEEP(0.3), 1", NULL, 0, 0);
    evdb_value v = evdb_int(2);
    evdb_future *q1 = submit(c, "INSERT INTO t_cq VALUES (1)", NULL, 0, 0);
    evdb_future *q2 = submit(c, "INSERT INTO t_cq VALUES (?)", &v, 1, 0);
    evdb_future *after = submit(c, "SELECT 33", NULL, 0, 0);
    t_run_for(L, 0.05);
    ck_assert_uint_eq(evdb_conn_pending(c), 4);
    ck_assert_int_eq(evdb_future_cancel(q1), 0);
    ck_assert_int_eq(evdb_future_cancel(q2), 0);
    ck_assert_int_eq(evdb_future_status(q1), EVDB_ECANCELED);
    ck_assert_int_eq(evdb_future_status(q2), EVDB_ECANCELED);
    ck_assert_int_eq(evdb_future_cancel(q2), EVDB_ESTATE); /* idempotent */
    ck_assert_uint_eq(evdb_conn_pending(c), 2);
    ck_assert_int_eq(t_wait(running), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(running), 0, 1), 1);
    ck_assert_int_eq(t_wait(after), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(after), 0, 0), 33);
    ck_assert_int_eq(t_query_int(c, "SELECT COUNT(*) FROM t_cq"), 0);
    evdb_future_unref(running);
    evdb_future_unref(q1);
    evdb_future_unref(q2);
    evdb_future_unref(after);
    t_conn_close(c);
}
END_TEST

/* ---- the max_statement_time backstop (server_timeout=true) ---- */

#define ONE_USER "evdb_one"
#define ONE_PASSWORD "evdb_one_pw"

/* A user allowed a single session: the KILL QUERY that a timeout sends
 * over a second session cannot connect. */
static void one_user_create(evdb_conn *admin)
{
    t_exec_ok(admin, "CREATE USER IF NOT EXISTS '" ONE_USER
                     "'@'127.0.0.1' IDENTIFIED BY '" ONE_PASSWORD "' WITH MAX_USER_CONNECTIONS 1");
    t_exec_ok(admin, "GRANT SELECT ON evdb_test.* TO '" ONE_USER "'@'127.0.0.1'");
}

static evdb_conn *one_user_open(bool backstop)
{
    char url[URL_MAX];
    snprintf(url, sizeof url,
             "mariadb://" ONE_USER ":" ONE_PASSWORD "@127.0.0.1:%s/evdb_test?server_timeout=%s",
             my_port(), backstop ? "true" : "false");
    return t_my_open_one_session(L, url);
}

/* The query times out at 0.3 s; the query queued behind it is answered
 * when the statement ends: at once with the backstop, only after the
 * statement ran to its end (1.5 s) without it. */
static double one_user_timeout(evdb_conn *c, const char *sql, const evdb_value *p, size_t n)
{
    double t0 = t_now();
    evdb_future *f = submit(c, sql, p, n, 0.3);
    evdb_future *next = submit(c, "SELECT 42", NULL, 0, 0);
    ck_assert_int_eq(t_wait(f), EVDB_ETIMEDOUT);
    double took = t_now() - t0;
    ck_assert_msg(took >= 0.29 && took < 0.6, "timed out after %g s", took);
    evdb_future_unref(f);
    ck_assert_int_eq(t_wait(next), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(next), 0, 0), 42);
    evdb_future_unref(next);
    return t_now() - t0;
}

START_TEST(server_timeout_backstop)
{
    evdb_conn *admin = open_admin();
    one_user_create(admin);
    evdb_value secs = evdb_double(1.5);
    /* Without the backstop the statement runs to its end. */
    evdb_conn *c = one_user_open(false);
    double took = one_user_timeout(c, "SELECT SLEEP(1.5)", NULL, 0);
    ck_assert_msg(took > 1.4, "without the backstop: next answered after %g s", took);
    t_conn_close(c);
    /* With it the server stops the statement at the deadline: text and
     * prepared path, and a read that does not start with SELECT. */
    c = one_user_open(true);
    took = one_user_timeout(c, "SELECT SLEEP(1.5)", NULL, 0);
    ck_assert_msg(took < 0.8, "text path: next answered after %g s", took);
    took = one_user_timeout(c, "SELECT SLEEP(?)", &secs, 1);
    ck_assert_msg(took < 0.8, "prepared path: next answered after %g s", took);
    took = one_user_timeout(c, "/* hint */ WITH s AS (SELECT SLEEP(1.5) AS z) SELECT z FROM s",
                            NULL, 0);
    ck_assert_msg(took < 0.8, "WITH: next answered after %g s", took);
    /* The session is fine afterwards, and reads within their time work. */
    evdb_value v = evdb_int(5);
    evdb_future *f = submit(c, "SELECT ? + 1", &v, 1, 2.0);
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 6);
    evdb_future_unref(f);
    t_conn_close(c);
    t_exec_ok(admin, "DROP USER '" ONE_USER "'@'127.0.0.1'");
    t_conn_close(admin);
}
END_TEST

/* Which statements carry the deadline: reads with a timeout, on both
 * paths; not writes, not queries without a timeout, not connections
 * without the option. */
START_TEST(server_timeout_scope)
{
    char url[URL_MAX];
    snprintf(url, sizeof url,
             "mariadb://evdb:" APP_PASSWORD "@127.0.0.1:%s/evdb_test?server_timeout=true",
             my_port());
    evdb_conn *c = t_conn_open(L, url, NULL);
    evdb_value one = evdb_int(1);
    evdb_future *f = submit(c, "SELECT @@max_statement_time", NULL, 0, 2.5);
    ck_assert_int_eq(t_wait(f), 0);
    double d = 0;
    ck_assert_int_eq(evdb_result_double(evdb_future_result(f), 0, 0, &d), 0);
    ck_assert(d == 2.5);
    evdb_future_unref(f);
    f = submit(c, "select @@max_statement_time, ?", &one, 1, 0.0015);
    /* 1.5 ms: rounded up to whole milliseconds, never earlier. */
    int rc = t_wait(f);
    ck_assert(rc == 0 || rc == EVDB_ETIMEDOUT);
    if (rc == 0) {
        ck_assert_int_eq(evdb_result_double(evdb_future_result(f), 0, 0, &d), 0);
        ck_assert(d == 0.002);
    }
    evdb_future_unref(f);
    f = submit(c, "SELECT @@max_statement_time, ?", &one, 1, 3.0);
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_int_eq(evdb_result_double(evdb_future_result(f), 0, 0, &d), 0);
    ck_assert(d == 3.0);
    evdb_future_unref(f);
    f = t_run_ok(c, "SELECT @@max_statement_time", NULL, 0); /* no timeout */
    ck_assert_int_eq(evdb_result_double(evdb_future_result(f), 0, 0, &d), 0);
    ck_assert(d == 0);
    evdb_future_unref(f);
    t_exec_ok(c, "CREATE TEMPORARY TABLE t_st (v DOUBLE)");
    f = submit(c, "INSERT INTO t_st SELECT @@max_statement_time", NULL, 0, 2.0);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    f = submit(c, "INSERT INTO t_st VALUES (@@max_statement_time + ?)", &one, 1, 2.0);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    f = t_run_ok(c, "SELECT SUM(v) FROM t_st", NULL, 0);
    ck_assert_int_eq(evdb_result_double(evdb_future_result(f), 0, 0, &d), 0);
    ck_assert(d == 1);
    evdb_future_unref(f);
    t_conn_close(c);
    /* Off by default. */
    c = open_app();
    f = submit(c, "SELECT @@max_statement_time", NULL, 0, 2.0);
    ck_assert_int_eq(t_wait(f), 0);
    ck_assert_int_eq(evdb_result_double(evdb_future_result(f), 0, 0, &d), 0);
    ck_assert(d == 0);
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* The server's own statement timeout (error 1969) is EVDB_ETIMEDOUT, with
 * MariaDB's number and SQLSTATE, and the connection serves on. */
START_TEST(statement_timeout_is_etimedout)
{
    evdb_conn *c = open_app();
    evdb_value secs = evdb_double(2);
    for (int k = 0; k < 2; k++) {
        double t0 = t_now();
        evdb_future *f =
            k ? submit(c, "SET STATEMENT max_statement_time=0.1 FOR SELECT SLEEP(?)", &secs, 1, 0)
              : submit(c, "SET STATEMENT max_statement_time=0.1 FOR SELECT SLEEP(2)", NULL, 0, 0);
        ck_assert_int_eq(t_wait(f), EVDB_ETIMEDOUT);
        ck_assert_double_lt(t_now() - t0, 1.0);
        const evdb_error *e = evdb_future_error(f);
        ck_assert_int_eq(evdb_error_driver_code(e), 1969);
        ck_assert_str_eq(evdb_error_sqlstate(e), "70100");
        ck_assert(evdb_error_is_cancel(e));
        evdb_future_unref(f);
        ck_assert_int_eq(t_query_int(c, "SELECT 12"), 12);
    }
    t_conn_close(c);
}
END_TEST

/* A statement stuck in prepare (waiting for a table lock) is killed there;
 * the statement is not executed later. */
START_TEST(timeout_during_prepare)
{
    evdb_conn *admin = open_admin();
    t_exec_ok(admin, "CREATE TABLE IF NOT EXISTS evdb_test.t_lock (a INT)");
    t_exec_ok(admin, "LOCK TABLES evdb_test.t_lock WRITE");
    evdb_conn *c = open_app();
    evdb_value v = evdb_int(1);
    for (int k = 0; k < 2; k++) {
        double t0 = t_now();
        evdb_future *f = k ? submit(c, "SELECT a, SLEEP(?) FROM t_lock", &v, 1, 0.3)
                           : submit(c, "SELECT a, SLEEP(1) FROM t_lock", NULL, 0, 0.3);
        evdb_future *next = submit(c, "SELECT 77", NULL, 0, 0);
        ck_assert_int_eq(t_wait(f), EVDB_ETIMEDOUT);
        ck_assert_double_lt(t_now() - t0, 0.6);
        evdb_future_unref(f);
        ck_assert_int_eq(t_wait(next), 0);
        ck_assert_int_eq(t_cell_int(evdb_future_result(next), 0, 0), 77);
        /* Well before the killed statement's SLEEP(1) could have ended
         * (with room for a loaded machine: 0.83 s was seen). */
        ck_assert_double_lt(t_now() - t0, 0.95);
        evdb_future_unref(next);
    }
    t_exec_ok(admin, "UNLOCK TABLES");
    /* Once the lock is gone the statement works (and takes its time). */
    evdb_future *f = t_run_ok(c, "SELECT COUNT(*), SLEEP(?) FROM t_lock", &v, 1);
    ck_assert_int_eq(t_cell_int(evdb_future_result(f), 0, 0), 0);
    evdb_future_unref(f);
    t_exec_ok(admin, "DROP TABLE evdb_test.t_lock");
    t_conn_close(c);
    t_conn_close(admin);
}
END_TEST

/* Deadlines right at the moment the statement ends by itself: whichever
 * wins, the following query gets its own answer. */
START_TEST(timeout_race)
{
    evdb_conn *c = open_app();
    char sql[SQL_MAX];
    for (int i = 0; i < 12; i++) {
        evdb_future *f = submit(c, "SELECT SLEEP(0.05)", NULL, 0, 0.045 + 0.001 * i);
        snprintf(sql, sizeof sql, "SELECT %d", 1000 + i);
        evdb_future *next = submit(c, sql, NULL, 0, 0);
        int rc = t_wait(f);
        ck_assert(rc == 0 || rc == EVDB_ETIMEDOUT);
        evdb_future_unref(f);
        ck_assert_int_eq(t_wait(next), 0);
        ck_assert_int_eq(t_cell_int(evdb_future_result(next), 0, 0), 1000 + i);
        evdb_future_unref(next);
    }
    t_conn_close(c);
}
END_TEST

/* ---- connection loss ---- */

#define NKILLED 5

struct done_count {
    int calls[NKILLED];
    int status[NKILLED];
};

struct done_item {
    struct done_count *dc;
    int i;
};

static void on_counted(evdb_future *f, void *arg)
{
    struct done_item *it = arg;
    it->dc->calls[it->i]++;
    it->dc->status[it->i] = evdb_future_status(f);
}

static void kill_connection(evdb_conn *admin, int64_t id)
{
    char sql[SQL_MAX];
    snprintf(sql, sizeof sql, "KILL CONNECTION %lld", (long long)id);
    t_exec_ok(admin, sql);
}

START_TEST(kill_connection_fails_all_once)
{
    evdb_conn *c = open_app();
    evdb_conn *admin = open_admin();
    struct done_count counts;
    memset(&counts, 0, sizeof counts);
    struct done_item items[NKILLED];
    evdb_future *fs[NKILLED];
    for (int i = 0; i < NKILLED; i++) {
        evdb_value v = evdb_int(i);
        fs[i] = i == 0 ? submit(c, "SELECT SLEEP(20)", NULL, 0, 0)
                       : submit(c, i % 2 ? "SELECT ?" : "SELECT 1", &v, i % 2, 0);
        items[i].dc = &counts;
        items[i].i = i;
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_counted, &items[i]), 0);
    }
    t_run_for(L, 0.2);
    kill_connection(admin, evdb_conn_server_id(c));
    for (int i = 0; i < NKILLED; i++)
        t_wait(fs[i]);
    t_run_for(L, 0.1);
    for (int i = 0; i < NKILLED; i++) {
        ck_assert_int_eq(counts.calls[i], 1);
        ck_assert_msg(counts.status[i] == EVDB_ECONNLOST, "query %d: %s", i,
                      evdb_err_name(counts.status[i]));
        evdb_future_unref(fs[i]);
    }
    /* The connection is broken: new queries fail at once. */
    ck_assert_ptr_null(evdb_conn_query(c, "SELECT 1", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECONNLOST);
    t_conn_close(c);
    t_conn_close(admin);
}
END_TEST

START_TEST(kill_idle_connection_noticed)
{
    evdb_conn *c = open_app();
    evdb_conn *admin = open_admin();
    ck_assert_int_eq(t_query_int(c, "SELECT 1"), 1);
    kill_connection(admin, evdb_conn_server_id(c));
    /* Noticed while idle, without sending anything. */
    t_run_for(L, 0.3);
    ck_assert_ptr_null(evdb_conn_query(c, "SELECT 1", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECONNLOST);
    t_conn_close(c);
    t_conn_close(admin);
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

/* The server stops: the busy connection's query and the idle connection
 * both see the loss; after a restart new connections work. */
START_TEST(server_stop_and_restart)
{
    evdb_conn *busy = open_app();
    evdb_conn *idle = open_app();
    evdb_future *f = submit(busy, "SELECT SLEEP(20)", NULL, 0, 0);
    evdb_future *queued = submit(busy, "SELECT 1", NULL, 0, 0);
    t_run_for(L, 0.1);
    if (!testdb("stop-my")) {
        fprintf(stderr, "integ_mariadb: no EVDB_TESTDB_DIR; server stop test skipped\n");
        evdb_future_cancel(f);
        evdb_future_unref(f);
        evdb_future_unref(queued);
        t_conn_close(busy);
        t_conn_close(idle);
        return;
    }
    ck_assert_int_eq(t_wait(f), EVDB_ECONNLOST);
    ck_assert_int_eq(t_wait(queued), EVDB_ECONNLOST);
    evdb_future_unref(f);
    evdb_future_unref(queued);
    t_run_for(L, 0.2);
    ck_assert_ptr_null(evdb_conn_query(idle, "SELECT 1", NULL, 0, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_ECONNLOST);
    /* Down: connecting fails cleanly. */
    f = evdb_conn_open(L, t_my_url(), NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), EVDB_ECONNECT);
    evdb_future_unref(f);
    testdb("start-my");
    evdb_conn *c = open_app();
    ck_assert_int_eq(t_query_int(c, "SELECT 3"), 3);
    t_conn_close(c);
    t_conn_close(busy);
    t_conn_close(idle);
}
END_TEST

START_TEST(close_with_queued)
{
    evdb_conn *c = open_app();
    struct done_count counts;
    memset(&counts, 0, sizeof counts);
    struct done_item items[NKILLED];
    evdb_future *fs[NKILLED];
    for (int i = 0; i < NKILLED; i++) {
        fs[i] = submit(c, i == 0 ? "SELECT SLEEP(5)" : "SELECT 1", NULL, 0, 0);
        items[i].dc = &counts;
        items[i].i = i;
        ck_assert_int_eq(evdb_future_on_done(fs[i], on_counted, &items[i]), 0);
    }
    t_run_for(L, 0.1);
    double t0 = t_now();
    t_conn_close(c);
    ck_assert_double_lt(t_now() - t0, 1.0);
    t_run_for(L, 0.05);
    for (int i = 0; i < NKILLED; i++) {
        ck_assert_int_eq(counts.calls[i], 1);
        ck_assert_int_lt(counts.status[i], 0);
        evdb_future_unref(fs[i]);
    }
    /* And closing with queries queued but none sent yet. */
    c = open_app();
    for (int i = 0; i < 3; i++)
        fs[i] = submit(c, "SELECT 1", NULL, 0, 0);
    t_conn_close(c);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_lt(evdb_future_status(fs[i]), 0);
        evdb_future_unref(fs[i]);
    }
}
END_TEST

/* ---- TLS (only when the test server offers it) ---- */

START_TEST(tls_concurrent)
{
    evdb_conn *c = open_app();
    evdb_future *f = t_run_ok(c, "SELECT @@have_ssl", NULL, 0);
    bool have = strcmp(evdb_result_text(evdb_future_result(f), 0, 0, NULL), "YES") == 0;
    evdb_future_unref(f);
    t_conn_close(c);
    if (!have) {
        /* TLS required but not offered: a clean connect failure. */
        char url[URL_MAX];
        snprintf(url, sizeof url, "mariadb://evdb:" APP_PASSWORD "@127.0.0.1:%s/evdb_test?ssl=true",
                 my_port());
        f = evdb_conn_open(L, url, NULL);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(t_wait(f), EVDB_ECONNECT);
        ck_assert_ptr_null(strstr(evdb_error_message(evdb_future_error(f)), APP_PASSWORD));
        evdb_future_unref(f);
        fprintf(stderr, "integ_mariadb: the test server has no TLS; TLS query test skipped\n");
        return;
    }
    char url[URL_MAX];
    snprintf(url, sizeof url, "mariadb://evdb:" APP_PASSWORD "@127.0.0.1:%s/evdb_test?ssl=true",
             my_port());
    evdb_conn *cs[3];
    for (int i = 0; i < 3; i++)
        cs[i] = t_conn_open(L, url, NULL);
    f = t_run_ok(cs[0], "SHOW SESSION STATUS LIKE 'Ssl_cipher'", NULL, 0);
    ck_assert_str_ne(evdb_result_text(evdb_future_result(f), 0, 1, NULL), "");
    evdb_future_unref(f);
    /* Three SLEEP(0.3) at once finish together if the loop never blocks. */
    double t0 = t_now();
    evdb_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = submit(cs[i], "SELECT SLEEP(0.3)", NULL, 0, 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(t_wait(fs[i]), 0);
        evdb_future_unref(fs[i]);
    }
    ck_assert_double_lt(t_now() - t0, 0.6);
    for (int i = 0; i < 3; i++)
        t_conn_close(cs[i]);
}
END_TEST

/* MariaDB has no COPY: refused at once, clearly, and the connection still
 * serves. */
START_TEST(copy_not_supported)
{
    evdb_conn *c = open_app();
    ck_assert_ptr_null(evdb_copy_in(c, "COPY t FROM STDIN", NULL));
    const evdb_error *e = evdb_last_error();
    ck_assert_int_eq(evdb_error_code(e), EVDB_ENOTSUP);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(e), "no COPY"));
    ck_assert_ptr_null(evdb_copy_out(c, "COPY t TO STDOUT", NULL, NULL, NULL));
    ck_assert_int_eq(evdb_error_code(evdb_last_error()), EVDB_EINVAL); /* no callback */
    ck_assert_int_eq(t_query_int(c, "SELECT 2"), 2);
    t_conn_close(c);
}
END_TEST

static Suite *mariadb_suite(void)
{
    Suite *s = suite_create("mariadb");
    TCase *conn = tcase_create("connect");
    TCase *query = tcase_create("query");
    TCase *cancel = tcase_create("cancel");
    TCase *loss = tcase_create("loss");
    TCase *all[] = {conn, query, cancel, loss};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tcase_add_checked_fixture(all[i], setup, teardown);
        tcase_set_timeout(all[i], TEST_TIMEOUT_S);
        suite_add_tcase(s, all[i]);
    }
    tcase_add_test(conn, connect_ok);
    tcase_add_test(conn, query_steps_are_traced_when_asked);
    tcase_add_test(conn, connect_mysql_scheme_and_socket);
    tcase_add_test(conn, connect_host_name);
    tcase_add_test(conn, connect_wrong_password);
    tcase_add_test(conn, connect_unknown_database);
    tcase_add_test(conn, connect_refused);
    tcase_add_test(conn, connect_timeouts);
    tcase_add_loop_test(conn, bad_url_rejected_at_once, 0,
                        (int)(sizeof bad_urls / sizeof bad_urls[0]));
    tcase_add_test(conn, tls_concurrent);

    tcase_add_test(query, params_round_trip);
    tcase_add_test(query, type_round_trips);
    tcase_add_test(query, column_types);
    tcase_add_test(query, doubles_match_text_protocol);
    tcase_add_test(query, nulls);
    tcase_add_test(query, blob_all_bytes);
    tcase_add_test(query, large_result);
    tcase_add_test(query, server_errors);
    tcase_add_test(query, queued_in_order);
    tcase_add_test(query, queued_10000);
    tcase_add_test(query, gather_8_connections);
    tcase_add_test(query, insert_id_and_affected);
    tcase_add_test(query, copy_not_supported);
    tcase_add_test(query, multi_statement);
    tcase_add_test(query, stmt_cache_lru);
    tcase_add_test(query, stmt_after_schema_change);
    tcase_add_test(query, stmt_binding_reused_and_renewed);
    tcase_add_test(query, ints_match_text_protocol);
    tcase_add_test(query, pool_release_resets_session);

    tcase_add_test(cancel, timeout_kills_query);
    tcase_add_test(cancel, timeout_kills_prepared);
    tcase_add_test(cancel, cancel_running_query);
    tcase_add_test(cancel, cancel_queued);
    tcase_add_test(cancel, server_timeout_backstop);
    tcase_add_test(cancel, server_timeout_scope);
    tcase_add_test(cancel, statement_timeout_is_etimedout);
    tcase_add_test(cancel, timeout_during_prepare);
    tcase_add_test(cancel, timeout_race);

    tcase_add_test(loss, kill_connection_fails_all_once);
    tcase_add_test(loss, kill_idle_connection_noticed);
    tcase_add_test(loss, close_with_queued);
    tcase_add_test(loss, server_stop_and_restart);
    return s;
}

int main(void)
{
    return t_run_suite(mariadb_suite());
}
