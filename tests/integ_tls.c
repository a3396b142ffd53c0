/*
 * TLS to both backends, and passwords kept out of every output.
 *
 * The suite starts its own throwaway servers with TLS on
 * (`scripts/testdb start --tls`: a throwaway CA, a server certificate for
 * 127.0.0.1 and localhost, and an unrelated second CA), unless
 * EVDB_TESTDB_TLS_DIR names a running instance started that way, and
 * stops them at the end. Only 127.0.0.1 is ever contacted: the wrong host
 * name is db.example reached through hostaddr=127.0.0.1 (PostgreSQL) and
 * "127.1", which the resolver maps to 127.0.0.1 but which Connector/C
 * checks as a name (MariaDB).
 *
 *  - PostgreSQL: sslmode=verify-full with sslrootcert works (127.0.0.1,
 *    localhost) and fails for the wrong host name and the wrong CA;
 *    sslmode=require encrypts without verifying; a pool over TLS.
 *  - MariaDB: ssl_ca + ssl_verify works and fails for the wrong CA and
 *    the wrong host name; ssl=true encrypts; queries on several TLS
 *    connections still run concurrently (Connector/C 3.3 leaves TLS
 *    sockets blocking: the driver makes them nonblocking again) and a
 *    query timeout over TLS is enforced on time.
 *  - Passwords never appear in errors, pool stats, evdb_pool_dump or
 *    evdb_task_dump output, whatever fails.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evdb.h>

#include "testenv.h"
#include "testutil.h"

#define WATCHDOG_S 50.0
#define TEST_TIMEOUT_S 60
#define URL_MAX 1024
#define SECRET "evdb_secret"
#define WRONG_SECRET "Wr0ng-S3cret-9x"

static struct ev_loop *L;

static void setup(void)
{
    L = t_loop_new(WATCHDOG_S);
}

static void teardown(void)
{
    t_loop_free(L);
}

static const char *env(const char *name)
{
    const char *v = evdb_test_env(name);
    ck_assert_msg(v != NULL && *v, "%s is not set: no TLS test servers", name);
    return v;
}

static int pg_port(void)
{
    return atoi(env("EVDB_TEST_PG_PORT"));
}

static int my_port(void)
{
    return atoi(env("EVDB_TEST_MY_PORT"));
}

/* ------------------------------------------------------------ helpers */

/* Every error message seen, for the password check. */
static char seen[64 * 1024];
static size_t seen_len;

static void remember(const char *text)
{
    size_t n = strlen(text);
    if (seen_len + n + 2 < sizeof seen) {
        memcpy(seen + seen_len, text, n);
        seen_len += n;
        seen[seen_len++] = '\n';
        seen[seen_len] = '\0';
    }
}

static void no_secret(const char *what, const char *text)
{
    ck_assert_msg(strstr(text, SECRET) == NULL && strstr(text, WRONG_SECRET) == NULL,
                  "a password in %s: %s", what, text);
}

static evdb_conn *try_open(const char *url, int *rc, char *msg, size_t msglen)
{
    evdb_conn_opts o = {.connect_timeout = 10};
    evdb_future *f = evdb_conn_open(L, url, &o);
    if (!f) {
        *rc = evdb_error_code(evdb_last_error());
        snprintf(msg, msglen, "%s", evdb_error_message(evdb_last_error()));
        remember(msg);
        return NULL;
    }
    *rc = t_wait(f);
    snprintf(msg, msglen, "%s", *rc ? evdb_error_message(evdb_future_error(f)) : "");
    remember(msg);
    evdb_conn *c = *rc == 0 ? evdb_future_take_conn(f) : NULL;
    evdb_future_unref(f);
    return c;
}

static evdb_conn *open_ok(const char *url)
{
    int rc;
    char msg[512];
    evdb_conn *c = try_open(url, &rc, msg, sizeof msg);
    ck_assert_msg(c != NULL, "%s: %s", evdb_err_name(rc), msg);
    return c;
}

static void open_fails(const char *url, int code, const char *needle)
{
    int rc;
    char msg[512];
    evdb_conn *c = try_open(url, &rc, msg, sizeof msg);
    ck_assert_msg(c == NULL, "connected, but it should not have");
    fprintf(stderr, "  refused as it should: %s: %s\n", evdb_err_name(rc), msg);
    ck_assert_msg(rc == code, "%s instead of %s: %s", evdb_err_name(rc), evdb_err_name(code), msg);
    if (needle)
        ck_assert_msg(strstr(msg, needle) != NULL, "'%s' not in: %s", needle, msg);
    no_secret("a connect error", msg);
}

static void close_conn(evdb_conn *c)
{
    evdb_future *f = evdb_conn_close(c);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

static evdb_future *run_ok(evdb_conn *c, const char *sql)
{
    evdb_future *f = evdb_conn_query(c, sql, NULL, 0, NULL);
    ck_assert_ptr_nonnull(f);
    ck_assert_msg(t_wait(f) == 0, "%s: %s", sql, evdb_error_message(evdb_future_error(f)));
    return f;
}

/* ------------------------------------------------------------ PostgreSQL */

static void pg_url(char *out, const char *host, const char *query)
{
    snprintf(out, URL_MAX, "postgresql://evdb:" SECRET "@%s:%d/evdb_test?%s", host, pg_port(),
             query);
}

static void expect_pg_tls(evdb_conn *c)
{
    evdb_future *f = run_ok(c, "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    const evdb_result *r = evdb_future_result(f);
    ck_assert_uint_eq(evdb_result_nrows(r), 1);
    bool on = false;
    ck_assert_int_eq(evdb_result_bool(r, 0, 0, &on), 0);
    ck_assert_msg(on, "the session is not encrypted");
    fprintf(stderr, "  PostgreSQL session over %s\n", evdb_result_text(r, 0, 1, NULL));
    evdb_future_unref(f);
}

START_TEST(postgres_verify_full)
{
    char url[URL_MAX], q[URL_MAX / 2];
    const char *ca = env("EVDB_TEST_TLS_CA");
    snprintf(q, sizeof q, "sslmode=verify-full&sslrootcert=%s", ca);
    pg_url(url, "127.0.0.1", q);
    evdb_conn *c = open_ok(url);
    expect_pg_tls(c);
    close_conn(c);
    pg_url(url, "localhost", q);
    c = open_ok(url);
    expect_pg_tls(c);
    close_conn(c);

    /* The certificate names 127.0.0.1 and localhost, not db.example
     * (reached at 127.0.0.1 through hostaddr: no name lookup). libpq
     * takes "127.1" for the address 127.0.0.1 and accepts it. */
    char q2[URL_MAX / 2 + 32];
    snprintf(q2, sizeof q2, "hostaddr=127.0.0.1&%s", q);
    pg_url(url, "db.example", q2);
    open_fails(url, EVDB_ECONNECT, "does not match host name");
    /* Another CA signed nothing here. */
    snprintf(q, sizeof q, "sslmode=verify-full&sslrootcert=%s", env("EVDB_TEST_TLS_WRONG_CA"));
    pg_url(url, "127.0.0.1", q);
    open_fails(url, EVDB_ECONNECT, "certificate verify failed");
    /* verify-ca checks the chain only. */
    snprintf(q, sizeof q, "hostaddr=127.0.0.1&sslmode=verify-ca&sslrootcert=%s", ca);
    pg_url(url, "db.example", q);
    c = open_ok(url);
    close_conn(c);
    /* require: encrypted, nothing verified. */
    pg_url(url, "127.0.0.1", "sslmode=require");
    c = open_ok(url);
    expect_pg_tls(c);
    close_conn(c);
}
END_TEST

START_TEST(postgres_pool_over_tls)
{
    char url[URL_MAX], q[URL_MAX / 2];
    snprintf(q, sizeof q, "sslmode=verify-full&sslrootcert=%s", env("EVDB_TEST_TLS_CA"));
    pg_url(url, "127.0.0.1", q);
    evdb_pool_opts po = {.max_conns = 4};
    evdb_pool *p = evdb_pool_new(L, url, &po);
    ck_assert_ptr_nonnull(p);
    enum { N = 200 };
    evdb_future *fs[N];
    for (int i = 0; i < N; i++) {
        evdb_value v = evdb_int(i);
        fs[i] = evdb_pool_query(p, "SELECT $1::int * 2", &v, 1, NULL);
        ck_assert_ptr_nonnull(fs[i]);
    }
    evdb_future *g = evdb_gather(fs, N, 0);
    ck_assert_int_eq(t_wait(g), 0);
    for (int i = 0; i < N; i++) {
        int64_t x = 0;
        ck_assert_int_eq(evdb_result_int(evdb_future_result(fs[i]), 0, 0, &x), 0);
        ck_assert_int_eq(x, 2 * i);
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(g);
    evdb_future *cf = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
}
END_TEST

/* --------------------------------------------------------------- MariaDB */

static void my_url(char *out, const char *host, const char *query)
{
    snprintf(out, URL_MAX, "mariadb://evdb:" SECRET "@%s:%d/evdb_test%s%s", host, my_port(),
             *query ? "?" : "", query);
}

/* The cipher of c's session ("" for plaintext). */
static void my_cipher(evdb_conn *c, char *out, size_t len)
{
    evdb_future *f = run_ok(c, "SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    const char *v = evdb_result_text(evdb_future_result(f), 0, 1, NULL);
    snprintf(out, len, "%s", v ? v : "");
    evdb_future_unref(f);
}

START_TEST(mariadb_verify)
{
    char url[URL_MAX], q[URL_MAX / 2], cipher[128];
    const char *ca = env("EVDB_TEST_TLS_CA");
    snprintf(q, sizeof q, "ssl=true&ssl_ca=%s&ssl_verify=true", ca);
    my_url(url, "127.0.0.1", q);
    evdb_conn *c = open_ok(url);
    my_cipher(c, cipher, sizeof cipher);
    fprintf(stderr, "  MariaDB session cipher %s\n", cipher);
    ck_assert_msg(cipher[0], "the session is not encrypted");
    close_conn(c);
    my_url(url, "localhost", q);
    c = open_ok(url);
    my_cipher(c, cipher, sizeof cipher);
    ck_assert(cipher[0]);
    close_conn(c);

    /* Wrong host name, wrong CA. */
    my_url(url, "127.1", q);
    open_fails(url, EVDB_ECONNECT, NULL);
    snprintf(q, sizeof q, "ssl_ca=%s&ssl_verify=true", env("EVDB_TEST_TLS_WRONG_CA"));
    my_url(url, "127.0.0.1", q);
    open_fails(url, EVDB_ECONNECT, NULL);
    /* ssl_ca without ssl_verify checks the chain (Connector/C): the wrong
     * CA fails, the right one works even for "127.1". */
    snprintf(q, sizeof q, "ssl_ca=%s", env("EVDB_TEST_TLS_WRONG_CA"));
    my_url(url, "127.0.0.1", q);
    open_fails(url, EVDB_ECONNECT, NULL);
    snprintf(q, sizeof q, "ssl_ca=%s", ca);
    my_url(url, "127.1", q);
    c = open_ok(url);
    close_conn(c);
    /* ssl=true: encrypted, nothing verified; no option: plaintext. */
    my_url(url, "127.0.0.1", "ssl=true");
    c = open_ok(url);
    my_cipher(c, cipher, sizeof cipher);
    ck_assert(cipher[0]);
    close_conn(c);
    my_url(url, "127.0.0.1", "");
    c = open_ok(url);
    my_cipher(c, cipher, sizeof cipher);
    ck_assert_str_eq(cipher, "");
    close_conn(c);
}
END_TEST

START_TEST(mariadb_tls_stays_concurrent)
{
    char url[URL_MAX], q[URL_MAX / 2];
    snprintf(q, sizeof q, "ssl=true&ssl_ca=%s&ssl_verify=true", env("EVDB_TEST_TLS_CA"));
    my_url(url, "127.0.0.1", q);
    enum { N = 3 };
    evdb_conn *c[N];
    for (int i = 0; i < N; i++)
        c[i] = open_ok(url);
    /* Three 0.3 s sleeps at once: 0.3 s if the loop never blocks, 0.9 s
     * if TLS reads block it. */
    double t0 = t_now();
    evdb_future *fs[N];
    for (int i = 0; i < N; i++) {
        fs[i] = evdb_conn_query(c[i], "SELECT SLEEP(0.3)", NULL, 0, NULL);
        ck_assert_ptr_nonnull(fs[i]);
    }
    evdb_future *g = evdb_gather(fs, N, 0);
    ck_assert_int_eq(t_wait(g), 0);
    double took = t_now() - t0;
    fprintf(stderr, "  three concurrent SLEEP(0.3) over TLS: %.3f s\n", took);
    ck_assert_msg(took < 0.6, "TLS queries ran one after another: %.3f s", took);
    evdb_future_unref(g);
    for (int i = 0; i < N; i++)
        evdb_future_unref(fs[i]);
    /* A timeout is enforced on time (the loop runs), the statement is
     * killed on the server, and the connection carries on. */
    evdb_query_opts o = {.timeout = 0.3};
    t0 = t_now();
    evdb_future *f = evdb_conn_query(c[0], "SELECT SLEEP(5)", NULL, 0, &o);
    ck_assert_int_eq(t_wait(f), EVDB_ETIMEDOUT);
    ck_assert_msg(t_now() - t0 < 0.6, "timeout after %.3f s", t_now() - t0);
    evdb_future_unref(f);
    t0 = t_now();
    f = run_ok(c[0], "SELECT 1");
    ck_assert_msg(t_now() - t0 < 2.0, "the statement was not killed: %.3f s", t_now() - t0);
    evdb_future_unref(f);
    for (int i = 0; i < N; i++)
        close_conn(c[i]);
}
END_TEST

/* ------------------------------------------------------------ passwords */

static void dump_of(evdb_pool *p, char *out, size_t len)
{
    FILE *m = fmemopen(out, len, "w");
    ck_assert_ptr_nonnull(m);
    evdb_pool_dump(p, m);
    evdb_task_dump(L, m);
    fclose(m);
    out[len - 1] = '\0';
}

START_TEST(passwords_never_leak)
{
    char url[URL_MAX], q[URL_MAX / 2], dump[8192];
    seen_len = 0;
    seen[0] = '\0';
    const char *wrong_ca = env("EVDB_TEST_TLS_WRONG_CA");
    /* Failing connects of every kind, both backends, the password in the
     * URL each time (plain and percent-encoded). */
    const char *urls[] = {
        "postgresql://evdb:" WRONG_SECRET "@127.0.0.1:%d/evdb_test",
        "postgresql://evdb:" WRONG_SECRET "@127.0.0.1:%d/no_such_db",
        "postgresql://evdb:" SECRET
        "@db.example:%d/evdb_test?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert=%s",
        "postgresql://evdb:" SECRET "@127.0.0.1:%d/evdb_test?sslmode=verify-full&sslrootcert=%s",
        "postgresql://evdb:" SECRET "@127.0.0.1:%d/evdb_test?no_such_option=1",
        "postgresql://evdb:Wr0ng%%2DS3cret%%2D9x@127.0.0.1:%d/evdb_test",
        "host=127.0.0.1 port=%d user=evdb password=" WRONG_SECRET " dbname=evdb_test",
        "mariadb://evdb:" WRONG_SECRET "@127.0.0.1:%d/evdb_test",
        "mariadb://evdb:" SECRET "@127.0.0.1:%d/evdb_test?ssl_ca=%s&ssl_verify=true",
        "mariadb://evdb:" SECRET "@127.1:%d/evdb_test?ssl_ca=%s&ssl_verify=true",
        "mariadb://evdb:" SECRET "@127.0.0.1:%d/evdb_test?bogus=" SECRET,
        "mariadb://evdb:" SECRET "@127.0.0.1:%d/no_such_db",
        "mariadb://evdb:Wr0ng%%2DS3cret%%2D9x@127.0.0.1:%d/evdb_test",
        "mariadb://evdb:" SECRET "@127.0.0.1:1/evdb_test",
        "postgresql://evdb:" SECRET "@127.0.0.1:1/evdb_test",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        int port =
            strstr(urls[i], "postgresql") || strstr(urls[i], "host=") ? pg_port() : my_port();
        snprintf(url, sizeof url, urls[i], port, wrong_ca);
        int rc;
        char msg[512];
        evdb_conn *c = try_open(url, &rc, msg, sizeof msg);
        if (c) {
            /* The one that passes the URL check (bogus option text). */
            close_conn(c);
            continue;
        }
        ck_assert_int_lt(rc, 0);
        no_secret("a connect error", msg);
        /* The same through a pool: the waiters' error, stats, dump. */
        evdb_pool_opts po = {.max_conns = 1, .connect_timeout = 5, .acquire_timeout = 5};
        evdb_pool *p = evdb_pool_new(L, url, &po);
        if (!p) {
            remember(evdb_error_message(evdb_last_error()));
            no_secret("evdb_pool_new", evdb_error_message(evdb_last_error()));
            continue;
        }
        evdb_future *f = evdb_pool_query(p, "SELECT 1", NULL, 0, NULL);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_lt(t_wait(f), 0);
        remember(evdb_error_message(evdb_future_error(f)));
        no_secret("a pooled query's error", evdb_error_message(evdb_future_error(f)));
        evdb_future_unref(f);
        evdb_pool_stats st;
        evdb_pool_stats_get(p, &st);
        no_secret("pool stats", st.last_discard_reason ? st.last_discard_reason : "");
        dump_of(p, dump, sizeof dump);
        no_secret("evdb_pool_dump", dump);
        evdb_future *cf = evdb_pool_close(p);
        t_wait(cf);
        evdb_future_unref(cf);
    }
    /* A working pool with a borrowed connection and a discarded one. */
    snprintf(q, sizeof q, "sslmode=require");
    pg_url(url, "127.0.0.1", q);
    evdb_pool *p = evdb_pool_new(L, url, NULL);
    evdb_future *a = evdb_pool_acquire(p, 5);
    ck_assert_int_eq(t_wait(a), 0);
    evdb_conn *c = evdb_future_take_conn(a);
    evdb_future *f = evdb_conn_query(c, "SELECT pg_sleep(0.1)", NULL, 0, NULL);
    dump_of(p, dump, sizeof dump);
    remember(dump);
    no_secret("evdb_pool_dump", dump);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
    ck_assert_int_eq(evdb_conn_release(c), 0);
    evdb_future_unref(a);
    evdb_future *cf = evdb_pool_close(p);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
    /* Last error and everything collected. */
    no_secret("evdb_last_error", evdb_error_message(evdb_last_error()));
    no_secret("the messages seen", seen);
    ck_assert_uint_gt(seen_len, 200);
}
END_TEST

/* ------------------------------------------------- the TLS test servers */

static char state_dir[256];
static bool started_here;

static int testdb(const char *command)
{
    char log[300];
    snprintf(log, sizeof log, "%s/testdb.log", state_dir);
    return t_testdb(state_dir, command, log);
}

/* Export DIR/env so that evdb_test_env (the environment wins) sees the
 * TLS instance. */
static bool load_env(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/env", state_dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[1024];
    bool tls = false;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        setenv(line, eq + 1, 1);
        tls |= strcmp(line, "EVDB_TEST_TLS_CA") == 0;
    }
    fclose(f);
    return tls;
}

static bool servers_up(void)
{
    const char *dir = getenv("EVDB_TESTDB_TLS_DIR");
    if (dir && *dir) {
        snprintf(state_dir, sizeof state_dir, "%s", dir);
        if (load_env())
            return true;
        fprintf(stderr, "integ_tls: %s has no TLS instance; starting one there\n", dir);
    } else {
        snprintf(state_dir, sizeof state_dir, "/tmp/evdb-tls-state.XXXXXX");
        if (!mkdtemp(state_dir)) {
            perror("integ_tls: mkdtemp");
            return false;
        }
    }
    if (testdb("start --tls") != 0) {
        fprintf(stderr, "integ_tls: scripts/testdb start --tls failed (log: %s/testdb.log)\n",
                state_dir);
        return false;
    }
    started_here = true;
    return load_env();
}

int main(void)
{
    if (!servers_up())
        return EXIT_FAILURE;
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("tls");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_test(tc, postgres_verify_full);
    tcase_add_test(tc, postgres_pool_over_tls);
    tcase_add_test(tc, mariadb_verify);
    tcase_add_test(tc, mariadb_tls_stays_concurrent);
    tcase_add_test(tc, passwords_never_leak);
    suite_add_tcase(s, tc);
    int rc = t_run_suite(s);
    if (started_here) {
        testdb("stop");
        char path[300];
        snprintf(path, sizeof path, "%s/testdb.log", state_dir);
        unlink(path);
        if (!getenv("EVDB_TESTDB_TLS_DIR")) {
            snprintf(path, sizeof path, "%s/lock", state_dir);
            unlink(path);
            rmdir(state_dir);
        }
    }
    return rc;
}
