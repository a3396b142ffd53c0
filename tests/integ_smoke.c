/*
 * Smoke test of the test servers themselves: scripts/testdb started a
 * PostgreSQL and a MariaDB instance, and both answer SELECT 1 through their
 * own client libraries (libpq, Connector/C), with the credentials of the
 * env file. If this suite fails, every other integration suite would fail
 * for reasons that have nothing to do with evdb.
 */
#include <check.h>
#include <libpq-fe.h>
#include <mysql.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testenv.h"

#define SMOKE_TIMEOUT_S 30
#define APP_USER "evdb"
#define APP_PASSWORD "evdb_secret"
#define APP_DB "evdb_test"
#define URL_PART_MAX 256

/* ---------------------------------------------------------------- PostgreSQL */

static void pg_expect_select_1(const char *url)
{
    PGconn *conn;
    PGresult *res;

    ck_assert_msg(url != NULL, "no PostgreSQL URL: run scripts/testdb start "
                               "and set EVDB_TESTDB_DIR");
    conn = PQconnectdb(url);
    ck_assert_ptr_nonnull(conn);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "PostgreSQL connect failed: %s",
                  PQerrorMessage(conn));

    res = PQexec(conn, "SELECT 1");
    ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "SELECT 1 failed: %s",
                  PQerrorMessage(conn));
    ck_assert_int_eq(PQntuples(res), 1);
    ck_assert_int_eq(PQnfields(res), 1);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    PQfinish(conn);
}

START_TEST(pg_select_1)
{
    pg_expect_select_1(evdb_test_pg_url());
}
END_TEST

START_TEST(pg_admin_is_superuser)
{
    const char *url = evdb_test_pg_admin_url();
    PGconn *conn;
    PGresult *res;

    pg_expect_select_1(url);
    conn = PQconnectdb(url);
    ck_assert_msg(PQstatus(conn) == CONNECTION_OK, "%s", PQerrorMessage(conn));
    res = PQexec(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user");
    ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
    ck_assert_str_eq(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    PQfinish(conn);
}
END_TEST

/* The application user really needs its password over TCP. */
START_TEST(pg_wrong_password_refused)
{
    const char *port = evdb_test_env("EVDB_TEST_PG_PORT");
    char url[URL_PART_MAX];
    PGconn *conn;

    ck_assert_ptr_nonnull(port);
    snprintf(url, sizeof url, "postgresql://" APP_USER ":wrong@127.0.0.1:%s/" APP_DB, port);
    conn = PQconnectdb(url);
    ck_assert_int_eq(PQstatus(conn), CONNECTION_BAD);
    ck_assert_ptr_nonnull(strstr(PQerrorMessage(conn), "password authentication failed"));
    PQfinish(conn);
}
END_TEST

/* ------------------------------------------------------------------ MariaDB */

struct my_target {
    char host[URL_PART_MAX];
    char user[URL_PART_MAX];
    char password[URL_PART_MAX];
    char db[URL_PART_MAX];
    unsigned port;
};

static void copy_part(char *dst, const char *begin, const char *end)
{
    size_t len = (size_t)(end - begin);

    ck_assert_uint_lt(len, URL_PART_MAX);
    memcpy(dst, begin, len);
    dst[len] = '\0';
}

/* mariadb://user[:password]@host[:port][/db][?...] (no percent-escapes:
 * scripts/testdb writes none). */
static void parse_my_url(const char *url, struct my_target *t)
{
    const char *p, *at, *colon, *slash, *end;

    memset(t, 0, sizeof *t);
    t->port = 3306;
    if (strncmp(url, "mariadb://", 10) == 0)
        p = url + 10;
    else if (strncmp(url, "mysql://", 8) == 0)
        p = url + 8;
    else
        ck_abort_msg("not a mariadb:// URL: %s", url);

    end = p + strcspn(p, "?#");
    at = memchr(p, '@', (size_t)(end - p));
    if (at != NULL) {
        colon = memchr(p, ':', (size_t)(at - p));
        if (colon != NULL) {
            copy_part(t->user, p, colon);
            copy_part(t->password, colon + 1, at);
        } else {
            copy_part(t->user, p, at);
        }
        p = at + 1;
    }
    slash = memchr(p, '/', (size_t)(end - p));
    if (slash != NULL) {
        copy_part(t->db, slash + 1, end);
        end = slash;
    }
    colon = memchr(p, ':', (size_t)(end - p));
    if (colon != NULL) {
        copy_part(t->host, p, colon);
        t->port = (unsigned)strtoul(colon + 1, NULL, 10);
    } else {
        copy_part(t->host, p, end);
    }
}

/* From the URL; without one, from EVDB_TEST_MY_PORT and the fixed
 * credentials that scripts/testdb creates. */
static void my_target_from_env(const char *url, struct my_target *t)
{
    const char *port;

    if (url != NULL) {
        parse_my_url(url, t);
        return;
    }
    port = evdb_test_env("EVDB_TEST_MY_PORT");
    ck_assert_msg(port != NULL, "no MariaDB URL or port: run scripts/testdb start "
                                "and set EVDB_TESTDB_DIR");
    memset(t, 0, sizeof *t);
    strcpy(t->host, "127.0.0.1");
    strcpy(t->user, APP_USER);
    strcpy(t->password, APP_PASSWORD);
    strcpy(t->db, APP_DB);
    t->port = (unsigned)strtoul(port, NULL, 10);
}

static MYSQL *my_connect(const struct my_target *t)
{
    MYSQL *m = mysql_init(NULL);

    ck_assert_ptr_nonnull(m);
    if (mysql_real_connect(m, t->host, t->user, t->password[0] ? t->password : NULL,
                           t->db[0] ? t->db : NULL, t->port, NULL, 0) == NULL) {
        ck_abort_msg("MariaDB connect to %s:%u as %s failed: %s", t->host, t->port, t->user,
                     mysql_error(m));
    }
    return m;
}

static void my_expect_value(MYSQL *m, const char *sql, const char *want)
{
    MYSQL_RES *res;
    MYSQL_ROW row;

    ck_assert_msg(mysql_query(m, sql) == 0, "%s failed: %s", sql, mysql_error(m));
    res = mysql_store_result(m);
    ck_assert_msg(res != NULL, "%s: no result: %s", sql, mysql_error(m));
    ck_assert_uint_eq(mysql_num_rows(res), 1);
    ck_assert_uint_eq(mysql_num_fields(res), 1);
    row = mysql_fetch_row(res);
    ck_assert_ptr_nonnull(row);
    ck_assert_ptr_nonnull(row[0]);
    ck_assert_str_eq(row[0], want);
    mysql_free_result(res);
}

static void my_finish(MYSQL *m)
{
    mysql_close(m);
    mysql_library_end();
}

START_TEST(my_select_1)
{
    struct my_target t;
    MYSQL *m;

    my_target_from_env(evdb_test_my_url(), &t);
    m = my_connect(&t);
    my_expect_value(m, "SELECT 1", "1");
    my_expect_value(m, "SELECT DATABASE()", APP_DB);
    my_finish(m);
}
END_TEST

START_TEST(my_fixed_credentials)
{
    struct my_target t;
    MYSQL *m;

    my_target_from_env(NULL, &t);
    m = my_connect(&t);
    my_expect_value(m, "SELECT 1", "1");
    my_finish(m);
}
END_TEST

START_TEST(my_admin_is_root)
{
    const char *url = evdb_test_my_admin_url();
    struct my_target t;
    MYSQL *m;

    ck_assert_msg(url != NULL, "no EVDB_TEST_MY_ADMIN_URL");
    my_target_from_env(url, &t);
    m = my_connect(&t);
    my_expect_value(m, "SELECT 1", "1");
    my_expect_value(m, "SELECT CURRENT_USER()", "root@127.0.0.1");
    my_finish(m);
}
END_TEST

static Suite *smoke_suite(void)
{
    Suite *s = suite_create("smoke");
    TCase *pg = tcase_create("postgresql");
    TCase *my = tcase_create("mariadb");

    tcase_set_timeout(pg, SMOKE_TIMEOUT_S);
    tcase_add_test(pg, pg_select_1);
    tcase_add_test(pg, pg_admin_is_superuser);
    tcase_add_test(pg, pg_wrong_password_refused);
    suite_add_tcase(s, pg);

    tcase_set_timeout(my, SMOKE_TIMEOUT_S);
    tcase_add_test(my, my_select_1);
    tcase_add_test(my, my_fixed_credentials);
    tcase_add_test(my, my_admin_is_root);
    suite_add_tcase(s, my);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(smoke_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
