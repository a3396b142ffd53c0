/*
 * Queries without parameters, over the text protocol:
 *   mysql_real_query -> mysql_store_result -> rows (no I/O) ->
 *   mysql_next_result while more results follow (multi-statement, CALL).
 * Under a result-size cap, mysql_use_result and a fetch per row take the
 * place of mysql_store_result (my_unbuffered.c).
 * A server error can surface at any of the three calls (a KILL QUERY shows
 * up in store_result, a failing second statement in next_result), so each
 * one is checked. Every result set is consumed even after a failure, so
 * the session is back in sync before the query is reported.
 */
#include <string.h>

#include "my_internal.h"

/* Called after a Connector/C call on the handle failed. */
static enum evdb__my_run handle_error(evdb__dconn *dc, evdb_error *err)
{
    unsigned no = mysql_errno(dc->m);
    const char *state = mysql_sqlstate(dc->m);
    if (evdb__my_errno_is_lost(no, state))
        return evdb__my_lost(dc, err, no, mysql_error(dc->m));
    evdb__my_fail_mysql(dc, no, state, mysql_error(dc->m));
    /* After an error the server sends nothing more for this query. */
    evdb__my_report(dc, err);
    return EVDB__MY_RUN_DONE;
}

enum evdb__my_run evdb__my_text_run(evdb__dconn *dc, int ready, evdb_error *err)
{
    MYSQL *m = dc->m;
    int mask;
    for (;;) {
        switch (dc->op) {
        case EVDB__MY_OP_NONE:
            EVDB__MY_SET_OP(dc, EVDB__MY_T_QUERY);
            dc->op_started = false;
            break;

        case EVDB__MY_T_QUERY:
            dc->q->drv_state = EVDB__MY_Q_SENT;
            mask = dc->op_started ? mysql_real_query_cont(&dc->iret, m, ready)
                                  : mysql_real_query_start(&dc->iret, m, dc->sql, dc->sql_len);
            dc->op_started = true;
            if (mask)
                goto wait;
            dc->op_started = false;
            if (dc->iret)
                return handle_error(dc, err);
            EVDB__MY_SET_OP(dc, evdb__my_unbuffered(dc) ? EVDB__MY_T_FETCH : EVDB__MY_T_STORE);
            break;

        case EVDB__MY_T_FETCH:
            /* Under the result-size cap: rows one at a time. */
            switch (evdb__my_text_stream(dc, ready)) {
            case EVDB__MY_STREAM_WAIT:
                return EVDB__MY_RUN_WAIT;
            case EVDB__MY_STREAM_END:
                break;
            default:
                return handle_error(dc, err);
            }
            if (!mysql_more_results(m)) {
                evdb__my_report(dc, err);
                return EVDB__MY_RUN_DONE;
            }
            EVDB__MY_SET_OP(dc, EVDB__MY_T_NEXT);
            break;

        case EVDB__MY_T_STORE:
            mask = dc->op_started ? mysql_store_result_cont(&dc->mres, m, ready)
                                  : mysql_store_result_start(&dc->mres, m);
            dc->op_started = true;
            if (mask)
                goto wait;
            dc->op_started = false;
            /* No result set is normal for INSERT and friends (field count
             * 0); with a field count, or an error recorded, it means the
             * rows failed to arrive. (A connection lost in the middle of
             * the rows leaves the field count at 0: only the error says
             * that anything went wrong.) */
            if (!dc->mres && (mysql_field_count(m) > 0 || mysql_errno(m)))
                return handle_error(dc, err);
            /* After a failure (out of memory) keep draining, build nothing. */
            if (!dc->out.failed)
                evdb__my_add_result(dc, evdb__my_result_text(m, dc->mres));
            if (dc->mres) {
                /* Stored result: freeing does no I/O. */
                mysql_free_result(dc->mres);
                dc->mres = NULL;
            }
            if (!mysql_more_results(m)) {
                evdb__my_report(dc, err);
                return EVDB__MY_RUN_DONE;
            }
            EVDB__MY_SET_OP(dc, EVDB__MY_T_NEXT);
            break;

        case EVDB__MY_T_NEXT:
            mask = dc->op_started ? mysql_next_result_cont(&dc->iret, m, ready)
                                  : mysql_next_result_start(&dc->iret, m);
            dc->op_started = true;
            if (mask)
                goto wait;
            dc->op_started = false;
            if (dc->iret > 0)
                return handle_error(dc, err);
            if (dc->iret < 0) { /* no more results after all */
                evdb__my_report(dc, err);
                return EVDB__MY_RUN_DONE;
            }
            EVDB__MY_SET_OP(dc, evdb__my_unbuffered(dc) ? EVDB__MY_T_FETCH : EVDB__MY_T_STORE);
            break;

        default:
            evdb__my_fail_code(dc, EVDB_EPROTO, "MariaDB driver: bad text query state");
            evdb__my_report(dc, err);
            return EVDB__MY_RUN_DONE;
        }
    }
wait:
    dc->mask = mask;
    return EVDB__MY_RUN_WAIT;
}

enum evdb__my_run evdb__my_ctl_run(evdb__dconn *dc, const char *sql, int ready, evdb_error *err)
{
    MYSQL *m = dc->m;
    if (!dc->op_started)
        EVDB__MY_SET_OP(dc, EVDB__MY_C_QUERY);
    int mask = dc->op_started ? mysql_real_query_cont(&dc->iret, m, ready)
                              : mysql_real_query_start(&dc->iret, m, sql, strlen(sql));
    dc->op_started = true;
    if (mask) {
        dc->mask = mask;
        return EVDB__MY_RUN_WAIT;
    }
    dc->op_started = false;
    EVDB__MY_SET_OP(dc, EVDB__MY_OP_NONE);
    dc->ctl_errno = 0;
    if (dc->iret) {
        unsigned no = mysql_errno(m);
        if (evdb__my_errno_is_lost(no, mysql_sqlstate(m)))
            return evdb__my_lost(dc, err, no, mysql_error(m));
        dc->ctl_errno = no ? no : 1;
    }
    return EVDB__MY_RUN_DONE;
}

unsigned evdb__my_server_status(const evdb__dconn *dc)
{
    unsigned st = 0;
    if (mariadb_get_infov(dc->m, MARIADB_CONNECTION_SERVER_STATUS, &st))
        return 0;
    return st;
}
