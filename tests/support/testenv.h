/*
 * Test environment: where the throwaway test servers are.
 *
 * scripts/testdb writes DIR/env, KEY=VALUE lines such as
 * EVDB_TEST_PG_URL=postgresql://evdb:evdb_secret@127.0.0.1:PORT/evdb_test.
 * CTest runs the suites with EVDB_TESTDB_DIR=DIR; a variable set in the
 * process environment always wins over the file, so a test can also be
 * pointed at other servers by exporting the variables by hand.
 *
 * Only libc. Safe to call from any thread; the file is read once per process
 * (before or after a fork, both are fine).
 */
#ifndef EVDB_TEST_TESTENV_H
#define EVDB_TEST_TESTENV_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The value of `name`: the environment variable when it is set and not
 * empty, else the value from $EVDB_TESTDB_DIR/env (./.testdb/env when
 * EVDB_TESTDB_DIR is unset), else NULL. The returned string lives until the
 * process exits (or until the environment variable changes); do not free it.
 */
const char *evdb_test_env(const char *name);

/* EVDB_TEST_PG_URL: postgresql://evdb:evdb_secret@127.0.0.1:PORT/evdb_test
 * (password auth over TCP), or NULL when no test servers are known. */
const char *evdb_test_pg_url(void);

/* EVDB_TEST_MY_URL: mariadb://evdb:evdb_secret@127.0.0.1:PORT/evdb_test */
const char *evdb_test_my_url(void);

/* EVDB_TEST_PG_ADMIN_URL: postgresql://postgres@127.0.0.1:PORT/evdb_test
 * (the superuser, trusted on loopback). */
const char *evdb_test_pg_admin_url(void);

/* EVDB_TEST_MY_ADMIN_URL: mariadb://root@127.0.0.1:PORT/evdb_test
 * (root, no password on loopback). */
const char *evdb_test_my_admin_url(void);

#ifdef __cplusplus
}
#endif
#endif
