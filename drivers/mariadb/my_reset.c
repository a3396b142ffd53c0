/*
 * Session reset for pools (EVDB__QUERY_RESET_SESSION): COM_RESET_CONNECTION
 * instead of the query's SQL, then SET ROLE NONE. The server rolls back,
 * drops temporary tables, user variables and prepared statements,
 * releases table locks and named locks (GET_LOCK), and restores session
 * variables to their global values; the connect-time character set and
 * database stay. It keeps the role a borrower took with SET ROLE (seen on
 * MariaDB 10.11), hence the second statement. Connector/C detaches every
 * statement handle, so the statement cache is emptied without any further
 * I/O, and each statement is prepared again on its next use.
 *
 * A reset that fails in either step drops the connection: the session may
 * hold a borrower's leftovers, and the next borrower's statements already
 * wait behind the reset (the pool does not await it); what was queued
 * behind goes back to the pool (pool.c fails a borrower's own statements
 * instead of moving them to another session).
 *
 * Dropping the prepared statements costs one more round trip per
 * statement per borrow (each is prepared again on its first use). A
 * clean-up that keeps them (ROLLBACK, RELEASE_ALL_LOCKS(), UNLOCK TABLES,
 * SET ROLE NONE, ...) would save those round trips, about half of them
 * in a loop of borrows of 5 statements (evdb-bench-borrow), but it cannot
 * be complete: nothing lists a session's SQL-level PREPAREs (nor the
 * session variables it changed) without performance_schema, so a
 * borrower's PREPARE would reach the next one.
 */
#include <stdio.h>

#include "my_internal.h"

static const char role_sql[] = "SET ROLE NONE";

/* Not SQL on purpose: a driver that ran it as SQL would fail it. */
static const evdb_stmt reset_stmt = {"evdb: reset session", NULL, 0};
const evdb__reset evdb__my_reset = {&reset_stmt, 1};

static enum evdb__my_run reset_lost(evdb__dconn *dc, evdb_error *err, const char *step)
{
    char msg[300];
    snprintf(msg, sizeof msg,
             "the pool's session reset failed (%s), so the connection is dropped: %s", step,
             mysql_error(dc->m));
    return evdb__my_lost(dc, err, mysql_errno(dc->m), msg);
}

enum evdb__my_run evdb__my_reset_run(evdb__dconn *dc, int ready, evdb_error *err)
{
    if (dc->op == EVDB__MY_OP_NONE) {
        EVDB__MY_SET_OP(dc, EVDB__MY_R_RESET);
        dc->op_started = false;
    }
    dc->q->drv_state = EVDB__MY_Q_SENT;
    int mask;
    if (dc->op == EVDB__MY_R_RESET) {
        mask = dc->op_started ? mysql_reset_connection_cont(&dc->iret, dc->m, ready)
                              : mysql_reset_connection_start(&dc->iret, dc->m);
        if (evdb__my_waits(dc, mask))
            return EVDB__MY_RUN_WAIT;
        if (dc->iret)
            return reset_lost(dc, err, "COM_RESET_CONNECTION");
        /* The server forgot the statements; the handles only hold memory. */
        evdb__my_cache_clear(&dc->cache);
        /* The session's @@max_allowed_packet now shows the server's
         * global value, but the server keeps enforcing the one of the
         * connect: read before the reset, or never (my_packet.c). */
        if (dc->packet == EVDB__MY_PACKET_UNREAD)
            dc->packet = EVDB__MY_PACKET_UNKNOWABLE;
        EVDB__MY_SET_OP(dc, EVDB__MY_R_ROLE);
        ready = 0;
    }
    mask = dc->op_started ? mysql_real_query_cont(&dc->iret, dc->m, ready)
                          : mysql_real_query_start(&dc->iret, dc->m, role_sql, sizeof role_sql - 1);
    if (evdb__my_waits(dc, mask))
        return EVDB__MY_RUN_WAIT;
    if (dc->iret)
        return reset_lost(dc, err, role_sql);
    evdb__my_add_result(dc, evdb__my_result_text(dc->m, NULL));
    evdb__my_report(dc, err);
    return EVDB__MY_RUN_DONE;
}
