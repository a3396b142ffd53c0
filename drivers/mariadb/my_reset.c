/*
 * Session reset for pools (EVDB__QUERY_RESET_SESSION): COM_RESET_CONNECTION
 * instead of the query's SQL. The server rolls back, drops temporary
 * tables, user variables and prepared statements, and restores session
 * variables to their global values; the connect-time character set and
 * database stay. Connector/C detaches every statement handle, so the
 * statement cache is emptied without any further I/O.
 */
#include <stdio.h>

#include "my_internal.h"

enum evdb__my_run evdb__my_reset_run(evdb__dconn *dc, int ready, evdb_error *err)
{
    if (dc->op == EVDB__MY_OP_NONE) {
        dc->op = EVDB__MY_R_RESET;
        dc->op_started = false;
    }
    dc->q->drv_state = EVDB__MY_Q_SENT;
    int mask = dc->op_started ? mysql_reset_connection_cont(&dc->iret, dc->m, ready)
                              : mysql_reset_connection_start(&dc->iret, dc->m);
    dc->op_started = true;
    if (mask) {
        dc->mask = mask;
        return EVDB__MY_RUN_WAIT;
    }
    dc->op_started = false;
    if (dc->iret) {
        /* A session the server did not reset may hold the last borrower's
         * leftovers, and the next borrower's statements already wait
         * behind the reset (the pool does not await it): the connection
         * is given up, which re-routes what was queued behind. */
        unsigned no = mysql_errno(dc->m);
        char msg[300];
        snprintf(msg, sizeof msg, "the pool's session reset failed, so the connection is dropped: %s",
                 mysql_error(dc->m));
        return evdb__my_lost(dc, err, no, msg);
    } else {
        /* The server forgot the statements; the handles only hold memory. */
        evdb__my_cache_clear(&dc->cache);
        /* The session's @@max_allowed_packet now shows the server's
         * global value, but the server keeps enforcing the one of the
         * connect: read before the reset, or never (my_packet.c). */
        if (dc->packet == EVDB__MY_PACKET_UNREAD)
            dc->packet = EVDB__MY_PACKET_UNKNOWABLE;
        evdb__my_add_result(dc, evdb__my_result_text(dc->m, NULL));
    }
    evdb__my_report(dc, err);
    return EVDB__MY_RUN_DONE;
}
