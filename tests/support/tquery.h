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

#endif
