/*
 * Session reset for pools (EVDB__QUERY_RESET_SESSION). Two forms:
 *
 * The full reset: COM_RESET_CONNECTION, then SET ROLE NONE, then SET
 * session_track_state_change=ON. The server rolls back, drops temporary
 * tables, user variables and prepared statements, releases table locks
 * and named locks (GET_LOCK), and restores session variables to their
 * global values; the connect-time character set and database stay. It
 * keeps the role a borrower took with SET ROLE (seen on MariaDB 10.11),
 * hence the second statement; it turns state tracking off with the other
 * variables, hence the third. Connector/C detaches every statement
 * handle, so the statement cache is emptied without any further I/O, and
 * each statement is prepared again on its next use.
 *
 * The cheap reset, which keeps the prepared statements: one text query
 * (one round trip) of two statements,
 *
 *   UNLOCK TABLES;
 *   SELECT RELEASE_ALL_LOCKS(), <the session is clean>
 *
 * taken when session state tracking is on, no reply since the last reset
 * said the session state changed (SERVER_SESSION_STATE_CHANGED), no query
 * failed (an error reply carries no status), and the session is outside
 * a transaction. What MariaDB 10.11 tracks, found on the server: SET of
 * session variables (also inside a function called by a SELECT), USE,
 * SET NAMES, SET ROLE, temporary tables (also made by a function), SQL
 * PREPARE and DEALLOCATE, SET @var. Not tracked: user variables assigned
 * in expressions (SELECT @v := 1, SELECT ... INTO @v, DO @v := 1), named
 * locks (GET_LOCK), table locks (LOCK TABLES, FLUSH TABLES WITH READ
 * LOCK), and turning tracking off (SET session_track_state_change=OFF
 * sets no flag). Nor are evdb's own binary-protocol prepares, so keeping
 * the statement cache does not make the next reset a full one. The query
 * cleans what is not tracked and checks the rest: UNLOCK TABLES and
 * RELEASE_ALL_LOCKS() clean up locks, and the SELECT's second column is 1
 * only when tracking is still on, no role is set and the session has no
 * user variable (information_schema.USER_VARIABLES, a plugin built into
 * the server since 10.2). Otherwise the full reset follows in the same
 * query. A server without tracking (or without the check's pieces) gets
 * the full reset every time: turning tracking on failed, or the check
 * fails, which drops the connection once.
 *
 * Connector/C calls evdb__my_track_status for every reply's status flags
 * that differ from the last ones, so the flag is cleared from the handle
 * after each reset: a borrower's first flagged reply then always differs.
 *
 * A reset that fails in any step drops the connection: the session may
 * hold a borrower's leftovers, and the next borrower's statements already
 * wait behind the reset (the pool does not await it); what was queued
 * behind goes back to the pool (pool.c fails a borrower's own statements
 * instead of moving them to another session).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "my_internal.h"

static const char role_sql[] = "SET ROLE NONE";
static const char track_sql[] = "SET session_track_state_change=ON";
static const char check_sql[] =
    "UNLOCK TABLES;"
    "SELECT RELEASE_ALL_LOCKS(), @@session.session_track_state_change = 1 "
    "AND CURRENT_ROLE() IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM information_schema.USER_VARIABLES)";

/* Not SQL on purpose: a driver that ran it as SQL would fail it. */
static const evdb_stmt reset_stmt = {"evdb: reset session", NULL, 0};
const evdb__reset evdb__my_reset = {&reset_stmt, 1};

void evdb__my_track_status(void *data, enum enum_mariadb_status_info type, ...)
{
    evdb__dconn *dc = data;
    va_list ap;
    va_start(ap, type);
    if (type == STATUS_TYPE) {
        unsigned status = va_arg(ap, unsigned);
        if (status & SERVER_SESSION_STATE_CHANGED)
            dc->track_dirty = true;
    } else {
        /* A tracked item (schema, system variable, state change). */
        dc->track_dirty = true;
    }
    va_end(ap);
}

static enum evdb__my_run reset_lost(evdb__dconn *dc, evdb_error *err, const char *step)
{
    char msg[300];
    snprintf(msg, sizeof msg,
             "the pool's session reset failed (%s), so the connection is dropped: %s", step,
             mysql_error(dc->m));
    return evdb__my_lost(dc, err, mysql_errno(dc->m), msg);
}

/* The reset is over: the session is clean as of now. */
static enum evdb__my_run reset_done(evdb__dconn *dc, evdb_error *err)
{
    dc->track_dirty = false;
    dc->m->server_status &= ~(unsigned)SERVER_SESSION_STATE_CHANGED;
    evdb__my_add_result(dc, evdb__my_result_text(dc->m, NULL));
    evdb__my_report(dc, err);
    return EVDB__MY_RUN_DONE;
}

static void next_op(evdb__dconn *dc, enum evdb__my_op op)
{
    EVDB__MY_SET_OP(dc, op);
    dc->op_started = false;
}

/* The cheap reset's query failed: a server without one of its pieces
 * (RELEASE_ALL_LOCKS() came in 10.5), or a lost session. The full reset
 * follows, and this connection never tries the cheap one again. */
static enum evdb__my_run check_failed(evdb__dconn *dc, evdb_error *err)
{
    unsigned no = mysql_errno(dc->m);
    if (evdb__my_errno_is_lost(no, mysql_sqlstate(dc->m)))
        return reset_lost(dc, err, "the session check");
    dc->check_refused = true;
    next_op(dc, EVDB__MY_R_RESET);
    return EVDB__MY_RUN_DONE;
}

/* The check's row: true when the session is clean. */
static bool check_row_clean(MYSQL_RES *res)
{
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    return row && mysql_num_fields(res) == 2 && row[1] && strcmp(row[1], "1") == 0;
}

/* One step of the cheap reset; DONE with dc->op R_RESET when the full
 * reset must follow, or with the query reported. */
static enum evdb__my_run check_step(evdb__dconn *dc, int ready, evdb_error *err)
{
    int mask;
    switch (dc->op) {
    case EVDB__MY_R_CHECK:
        mask = dc->op_started
                   ? mysql_real_query_cont(&dc->iret, dc->m, ready)
                   : mysql_real_query_start(&dc->iret, dc->m, check_sql, sizeof check_sql - 1);
        if (evdb__my_waits(dc, mask))
            return EVDB__MY_RUN_WAIT;
        if (dc->iret)
            return check_failed(dc, err);
        next_op(dc, EVDB__MY_R_CNEXT);
        return EVDB__MY_RUN_DONE;
    case EVDB__MY_R_CNEXT:
        mask = dc->op_started ? mysql_next_result_cont(&dc->iret, dc->m, ready)
                              : mysql_next_result_start(&dc->iret, dc->m);
        if (evdb__my_waits(dc, mask))
            return EVDB__MY_RUN_WAIT;
        if (dc->iret)
            return check_failed(dc, err);
        next_op(dc, EVDB__MY_R_CSTORE);
        return EVDB__MY_RUN_DONE;
    default: {
        MYSQL_RES *res = NULL;
        mask = dc->op_started ? mysql_store_result_cont(&res, dc->m, ready)
                              : mysql_store_result_start(&res, dc->m);
        if (evdb__my_waits(dc, mask))
            return EVDB__MY_RUN_WAIT;
        bool clean = check_row_clean(res);
        if (res)
            mysql_free_result(res);
        if (!res || mysql_more_results(dc->m))
            return reset_lost(dc, err, "the session check");
        if (clean)
            return reset_done(dc, err);
        next_op(dc, EVDB__MY_R_RESET);
        return EVDB__MY_RUN_DONE;
    }
    }
}

/* One step of the full reset; DONE with the next step in dc->op, or with
 * the query reported. */
static enum evdb__my_run full_step(evdb__dconn *dc, int ready, evdb_error *err)
{
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
        dc->track_on = false;
        next_op(dc, EVDB__MY_R_ROLE);
        return EVDB__MY_RUN_DONE;
    }
    const char *sql = dc->op == EVDB__MY_R_ROLE ? role_sql : track_sql;
    mask = dc->op_started ? mysql_real_query_cont(&dc->iret, dc->m, ready)
                          : mysql_real_query_start(&dc->iret, dc->m, sql, strlen(sql));
    if (evdb__my_waits(dc, mask))
        return EVDB__MY_RUN_WAIT;
    if (dc->op == EVDB__MY_R_ROLE) {
        if (dc->iret)
            return reset_lost(dc, err, role_sql);
        next_op(dc, EVDB__MY_R_TRACK);
        return EVDB__MY_RUN_DONE;
    }
    if (dc->iret) {
        /* A server without the variable: every reset stays a full one. */
        unsigned no = mysql_errno(dc->m);
        if (evdb__my_errno_is_lost(no, mysql_sqlstate(dc->m)))
            return reset_lost(dc, err, track_sql);
    } else {
        dc->track_on = true;
    }
    return reset_done(dc, err);
}

enum evdb__my_run evdb__my_reset_run(evdb__dconn *dc, int ready, evdb_error *err)
{
    if (dc->op == EVDB__MY_OP_NONE) {
        bool cheap = dc->track_on && !dc->track_dirty && !dc->check_refused &&
                     !(evdb__my_server_status(dc) & SERVER_STATUS_IN_TRANS);
        next_op(dc, cheap ? EVDB__MY_R_CHECK : EVDB__MY_R_RESET);
    }
    dc->q->drv_state = EVDB__MY_Q_SENT;
    for (;;) {
        bool check =
            dc->op == EVDB__MY_R_CHECK || dc->op == EVDB__MY_R_CNEXT || dc->op == EVDB__MY_R_CSTORE;
        enum evdb__my_run r = check ? check_step(dc, ready, err) : full_step(dc, ready, err);
        if (r != EVDB__MY_RUN_DONE || !dc->q)
            return r;
        ready = 0;
    }
}
