/*
 * The scripted fake driver: the one stand-in for a database, used by the
 * unit tests of the core. It has no socket; it answers through timed waits.
 *
 * URL: fake://host/?connect_ms=N&connect_fail=1&connect_hang=1&depth=N
 *      &close_ms=N&no_cancel=1
 * SQL is a script, one command per query:
 *   "ok"            one row, one column "v" = "ok", answered at once
 *   "ok <text>"     the same with v = <text>
 *   "sleep <ms>"    answers "ok" after ms milliseconds
 *   "error <state>" fails with EVDB_ESERVER and that SQLSTATE
 *   "drop"          the connection breaks when this query runs
 *   "echo"          one row with the parameters as text columns
 * A server-side cancel (cancel_start) stops a sleeping query after 5 ms
 * with SQLSTATE 57014, unless no_cancel=1.
 */
#ifndef EVDB_TEST_FAKE_DRIVER_H
#define EVDB_TEST_FAKE_DRIVER_H

#include <stddef.h>

typedef struct fake_stats {
    size_t connects, sends, flushes, cancels, closes, destroys, answered;
    size_t max_inflight;
} fake_stats;

/* Register the fake driver for fake:// URLs (idempotent) and zero stats. */
void fake_driver_install(void);
extern fake_stats fake;

#endif
