#include "tquery.h"

#include <check.h>
#include <string.h>

#include "testenv.h"
#include "testutil.h"

const char *t_pg_url(void)
{
    const char *u = evdb_test_pg_url();
    ck_assert_msg(u != NULL, "no PostgreSQL test server: run scripts/testdb start");
    return u;
}

const char *t_my_url(void)
{
    const char *u = evdb_test_my_url();
    ck_assert_msg(u != NULL, "no MariaDB test server: run scripts/testdb start");
    return u;
}

evdb_conn *t_conn_open(struct ev_loop *loop, const char *url, const evdb_conn_opts *opts)
{
    evdb_future *f = evdb_conn_open(loop, url, opts);
    ck_assert_msg(f != NULL, "evdb_conn_open: %s", evdb_error_message(evdb_last_error()));
    int rc = t_wait(f);
    ck_assert_msg(rc == 0, "connect failed: %s", evdb_error_message(evdb_future_error(f)));
    evdb_conn *c = evdb_future_take_conn(f);
    ck_assert_ptr_nonnull(c);
    evdb_future_unref(f);
    return c;
}

void t_conn_close(evdb_conn *c)
{
    evdb_future *f = evdb_conn_close(c);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

evdb_future *t_run_ok(evdb_conn *c, const char *sql, const evdb_value *p, size_t n)
{
    evdb_future *f = evdb_conn_query(c, sql, p, n, NULL);
    ck_assert_msg(f != NULL, "evdb_conn_query(%s): %s", sql, evdb_error_message(evdb_last_error()));
    int rc = t_wait(f);
    ck_assert_msg(rc == 0, "%s: %s (%s)", sql, evdb_error_message(evdb_future_error(f)),
                  evdb_err_name(rc));
    return f;
}

void t_exec_ok(evdb_conn *c, const char *sql)
{
    evdb_future_unref(t_run_ok(c, sql, NULL, 0));
}

void t_expect_cell(const evdb_result *r, size_t row, size_t col, const char *want)
{
    size_t len;
    const char *got = evdb_result_text(r, row, col, &len);
    ck_assert_msg(got != NULL, "cell %zu,%zu is NULL, wanted '%s'", row, col, want);
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(len, strlen(want));
}

int64_t t_cell_int(const evdb_result *r, size_t row, size_t col)
{
    int64_t v = 0;
    int rc = evdb_result_int(r, row, col, &v);
    ck_assert_msg(rc == 0, "cell %zu,%zu: %s", row, col, evdb_err_name(rc));
    return v;
}

int64_t t_query_int(evdb_conn *c, const char *sql)
{
    evdb_future *f = t_run_ok(c, sql, NULL, 0);
    int64_t v = t_cell_int(evdb_future_result(f), 0, 0);
    evdb_future_unref(f);
    return v;
}

void t_expect_fail(evdb_future *f, int code, const char *sqlstate)
{
    int rc = t_wait(f);
    const evdb_error *e = evdb_future_error(f);
    ck_assert_msg(rc == code, "wanted %s, got %s: %s", evdb_err_name(code), evdb_err_name(rc),
                  evdb_error_message(e));
    if (sqlstate)
        ck_assert_msg(strcmp(evdb_error_sqlstate(e), sqlstate) == 0,
                      "wanted SQLSTATE %s, got '%s': %s", sqlstate, evdb_error_sqlstate(e),
                      evdb_error_message(e));
}

void t_sleep(struct ev_loop *loop, double seconds)
{
    evdb_future *s = evdb_sleep(loop, seconds);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(t_wait(s), 0);
    evdb_future_unref(s);
}

evdb_pool *t_pool_new(struct ev_loop *loop, const char *url, const evdb_pool_opts *opts)
{
    evdb_pool *p = evdb_pool_new(loop, url, opts);
    ck_assert_msg(p != NULL, "evdb_pool_new: %s", evdb_error_message(evdb_last_error()));
    return p;
}

void t_pool_close(evdb_pool *p)
{
    evdb_future *f = evdb_pool_close(p);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(t_wait(f), 0);
    evdb_future_unref(f);
}

evdb_future *t_pool_run_ok(evdb_pool *p, const char *sql, const evdb_value *params, size_t n)
{
    evdb_future *f = evdb_pool_query(p, sql, params, n, NULL);
    ck_assert_msg(f != NULL, "evdb_pool_query(%s): %s", sql, evdb_error_message(evdb_last_error()));
    int rc = t_wait(f);
    ck_assert_msg(rc == 0, "%s: %s (%s)", sql, evdb_error_message(evdb_future_error(f)),
                  evdb_err_name(rc));
    return f;
}

void t_pool_exec_ok(evdb_pool *p, const char *sql)
{
    evdb_future_unref(t_pool_run_ok(p, sql, NULL, 0));
}

int64_t t_pool_int(evdb_pool *p, const char *sql)
{
    evdb_future *f = t_pool_run_ok(p, sql, NULL, 0);
    int64_t v = t_cell_int(evdb_future_result(f), 0, 0);
    evdb_future_unref(f);
    return v;
}

static const char *server_url(const char *u, const char *server)
{
    ck_assert_msg(u != NULL, "no %s test server: run scripts/testdb start", server);
    return u;
}

const char *t_pg_admin_url(void)
{
    return server_url(evdb_test_pg_admin_url(), "PostgreSQL");
}

const char *t_my_admin_url(void)
{
    return server_url(evdb_test_my_admin_url(), "MariaDB");
}

evdb_future *t_submit(evdb_conn *c, const char *sql, const evdb_value *p, size_t n, double timeout,
                      unsigned flags)
{
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    o.timeout = timeout;
    o.flags = flags;
    evdb_future *f = evdb_conn_query(c, sql, p, n, &o);
    ck_assert_msg(f != NULL, "evdb_conn_query: %s", evdb_error_message(evdb_last_error()));
    return f;
}

void t_wait_ok(evdb_future *f, const char *what)
{
    int rc = t_wait(f);
    ck_assert_msg(rc == 0, "%s: %s (%s)", what, evdb_error_message(evdb_future_error(f)),
                  evdb_err_name(rc));
}

evdb_future *t_pool_submit(evdb_pool *pool, const char *sql, const evdb_value *p, size_t n,
                           double timeout, unsigned flags)
{
    evdb_query_opts o;
    memset(&o, 0, sizeof o);
    o.timeout = timeout;
    o.flags = flags;
    evdb_future *f = evdb_pool_query(pool, sql, p, n, &o);
    ck_assert_msg(f != NULL, "evdb_pool_query(%s): %s", sql, evdb_error_message(evdb_last_error()));
    return f;
}

evdb_conn *t_my_open_one_session(struct ev_loop *loop, const char *url)
{
    for (int tries = 0;; tries++) {
        evdb_future *f = evdb_conn_open(loop, url, NULL);
        ck_assert_ptr_nonnull(f);
        if (t_wait(f) == 0) {
            evdb_conn *c = evdb_future_take_conn(f);
            evdb_future_unref(f);
            return c;
        }
        ck_assert_msg(evdb_error_driver_code(evdb_future_error(f)) == 1226 && tries < 50,
                      "connect failed: %s", evdb_error_message(evdb_future_error(f)));
        evdb_future_unref(f);
        t_run_for(loop, 0.05);
    }
}

/* Here rather than at the top: helpers are only appended to this file. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* A TCP socket bound to a free port on loopback, listening when backlog
 * is positive; *port is that port. */
static int loopback_socket(int backlog, int *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    if (backlog > 0)
        ck_assert_int_eq(listen(s, backlog), 0);
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return s;
}

int t_free_port(void)
{
    int port;
    close(loopback_socket(0, &port));
    return port;
}

int t_silent_listener(int *port)
{
    return loopback_socket(8, port);
}
