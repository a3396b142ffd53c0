/*
 * Query helpers the integration suites share: each asserts (Check) that the
 * step worked, so a test reads as the scenario it checks.
 */
#ifndef EVDB_TEST_TQUERY_H
#define EVDB_TEST_TQUERY_H

#include <stddef.h>
#include <stdint.h>

#include <evdb.h>

struct ev_loop;

/* The throwaway servers' application URLs (scripts/testdb), asserting
 * that the server is there. */
const char *t_pg_url(void);
const char *t_my_url(void);

/* Open a connection on loop (opts may be NULL), wait, and assert it
 * worked; the failure message carries the error. */
evdb_conn *t_conn_open(struct ev_loop *loop, const char *url, const evdb_conn_opts *opts);

/* Close c and wait until it is closed. */
void t_conn_close(evdb_conn *c);

/* Run sql with n parameters on c (default options), wait, and assert it
 * succeeded; the failure message names sql and the error. The caller
 * unrefs the returned future. */
evdb_future *t_run_ok(evdb_conn *c, const char *sql, const evdb_value *p, size_t n);

/* t_run_ok without parameters, dropping the result. */
void t_exec_ok(evdb_conn *c, const char *sql);

/* Assert cell (row, col) is the text want (not NULL, same length). */
void t_expect_cell(const evdb_result *r, size_t row, size_t col, const char *want);

/* The cell as an integer, asserting it converts. */
int64_t t_cell_int(const evdb_result *r, size_t row, size_t col);

/* The single integer cell (0, 0) of sql run on c, asserting it worked. */
int64_t t_query_int(evdb_conn *c, const char *sql);

/* Wait for f and assert it failed with code (and, when sqlstate is not
 * NULL, that SQLSTATE); the failure message carries the error. */
void t_expect_fail(evdb_future *f, int code, const char *sqlstate);

/* Run the loop for seconds through an evdb_sleep future (evdb's own
 * timers and callbacks run meanwhile). */
void t_sleep(struct ev_loop *loop, double seconds);

/* Pools: evdb_pool_new asserting it worked (opts may be NULL), and
 * evdb_pool_close waiting until the pool is gone. */
evdb_pool *t_pool_new(struct ev_loop *loop, const char *url, const evdb_pool_opts *opts);
void t_pool_close(evdb_pool *p);

/* t_run_ok / t_exec_ok / t_query_int through evdb_pool_query. */
evdb_future *t_pool_run_ok(evdb_pool *p, const char *sql, const evdb_value *params, size_t n);
void t_pool_exec_ok(evdb_pool *p, const char *sql);
int64_t t_pool_int(evdb_pool *p, const char *sql);

/* The throwaway servers' administrator URLs (scripts/testdb), asserting
 * that the server is there. */
const char *t_pg_admin_url(void);
const char *t_my_admin_url(void);

/* Send sql with n parameters on c with a timeout (0: none) and query flags
 * (0: none), asserting the connection took it (the failure message
 * carries the error). The caller waits for the future and unrefs it. */
evdb_future *t_submit(evdb_conn *c, const char *sql, const evdb_value *p, size_t n, double timeout,
                      unsigned flags);

/* Wait for f and assert it succeeded; the failure message names what and
 * the error. */
void t_wait_ok(evdb_future *f, const char *what);

/* t_submit through evdb_pool_query. */
evdb_future *t_pool_submit(evdb_pool *pool, const char *sql, const evdb_value *p, size_t n,
                           double timeout, unsigned flags);

/* Open url on loop as a MariaDB user allowed a single session (WITH
 * MAX_USER_CONNECTIONS 1). The server counts a closed session until its
 * thread has finished with it, a little after the client is done, and
 * meanwhile refuses the user's next one (ER_USER_LIMIT_REACHED, 1226):
 * retry every 0.05 s, asserting each failure is that one and that it
 * connects within 50 tries. */
evdb_conn *t_my_open_one_session(struct ev_loop *loop, const char *url);

/* A TCP port on loopback where nothing listens (bound, read, closed). */
int t_free_port(void);

/* A listening socket on loopback that never answers (the kernel completes
 * the TCP handshake, nobody ever reads or writes); *port is its port. The
 * caller closes it. Asserts each socket call worked. */
int t_silent_listener(int *port);

#endif
