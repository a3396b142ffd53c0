/*
 * The scripted fake driver: the one stand-in for a database, used by the
 * unit tests of the core. It has no socket; it answers through timed waits.
 *
 * URL: fake://host/?connect_ms=N&connect_fail=1&connect_hang=1&depth=N
 *      &close_ms=N&no_cancel=1&lazy_send=1&reset_ms=N&reset_fail=N
 * depth=N is the driver's own capacity (queries beyond it stay pending on
 * the connection, whatever the connection's pipeline depth). lazy_send=1:
 * a query handed over goes on the wire (query_sent) only when every
 * earlier one has been answered; one given up on before that is dropped
 * unsent (fails with "fake: dropped unsent"), and the ones not on the wire
 * can be taken back (take_unsent). Without it every query handed over
 * counts as sent. The pool's session reset (the driver declares the
 * query "reset": drivers/driver.h, evdb__reset) answers like "ok" after
 * reset_ms milliseconds; reset_fail=N fails the connection's N-th reset
 * (1 = the first) with SQLSTATE XX000 and leaves the connection up.
 * SQL is a script, one command per query:
 *   "ok"            one row, one column "v" = "ok", answered at once
 *   "ok <text>"     the same with v = <text>
 *   "sleep <ms>"    answers "ok" after ms milliseconds
 *   "error <state>" fails with EVDB_ESERVER and that SQLSTATE
 *   "toobig"        runs, then fails with EVDB_ETOOBIG (its result lost)
 *   "drop"          the connection breaks when this query runs
 *   "echo"          one row with the parameters as text columns
 * A server-side cancel (cancel_start) stops a sleeping query after 5 ms
 * with SQLSTATE 57014, unless no_cancel=1.
 * Listeners (slot listen): LISTEN/UNLISTEN statements answer like "ok";
 * while fake.listen_drops > 0, a LISTEN breaks the connection instead (and
 * counts it down); with fake.notify_on_listen, each LISTEN answered on a
 * listening connection is followed by a notification on its channel,
 * payload "hello", sender 42.
 */
#ifndef EVDB_TEST_FAKE_DRIVER_H
#define EVDB_TEST_FAKE_DRIVER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fake_stats {
    size_t connects, sends, flushes, cancels, closes, destroys, answered;
    size_t max_inflight;
    size_t dropped_unsent; /* lazy_send: given up on before they went out */
    size_t taken_back;     /* lazy_send: given back unsent (take_unsent) */
    size_t listen_drops;   /* set by tests: LISTENs that break the connection */
    bool notify_on_listen; /* set by tests: see above */
    size_t resets_failed;  /* reset_fail: resets failed as scripted */
} fake_stats;

/* Register the fake driver for fake:// URLs (idempotent) and zero stats. */
void fake_driver_install(void);
extern fake_stats fake;

#endif
