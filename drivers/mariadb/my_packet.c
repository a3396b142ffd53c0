/*
 * The server's packet limit, and the gate every query passes before any of
 * it is sent.
 *
 * A MariaDB server reads each command as one packet of at most
 * max_allowed_packet bytes (the command byte included: a packet of exactly
 * that size is already refused, measured on 10.11). A larger one makes the
 * server answer 1153 "Got a packet bigger than 'max_allowed_packet' bytes"
 * and close the session, so the query failed as "connection lost" and
 * took every query queued behind it along. The driver therefore knows the
 * limit and refuses such a query itself with EVDB_ETOOBIG, naming both
 * sizes, before anything of it goes out; the connection serves on.
 *
 * The limit is the one the server took at connect (its global
 * max_allowed_packet then): the server enforces that value for the whole
 * session. The session's @@max_allowed_packet shows it too, until a
 * session reset (COM_RESET_CONNECTION, when a pool takes a connection
 * back), after which the variable shows the server's global value of that
 * moment while the server still enforces the old one (measured on 10.11
 * both ways: raised, a packet under the new value kills the session;
 * lowered, one over it is accepted). Connector/C does not know the value
 * (its MARIADB_MAX_ALLOWED_PACKET is the client's own limit), so it takes
 * one query, SELECT @@max_allowed_packet, which must come before the
 * first reset. It is made before the first query whose largest packet
 * reaches 1 KiB (the smallest limit a server accepts: smaller packets
 * always fit) or before the first reset, whichever comes first, and
 * never again: a connection that never sends a large query and is never
 * reset never pays the round trip, and the others pay it once. If it
 * fails, it is tried again on the next occasion before a reset; after a
 * reset without it, queries go unchecked (as before).
 *
 * The packet sizes counted: the SQL (COM_QUERY and COM_STMT_PREPARE: one
 * command byte plus the text, with the backstop's prefix), and for a
 * query with parameters the COM_STMT_EXECUTE packet as Connector/C 3.3
 * builds it (header, NULL bitmap, the parameter types, each value: eight
 * bytes for numbers, one for a bool, a length prefix and the bytes for
 * text, bytes, JSON and decimals, at most 13 for a date or time, 37 for a
 * UUID). The types are counted even when Connector/C would not
 * resend them, so a query within two bytes a parameter of the limit may be
 * refused although it would fit. Long parameters are not split with
 * mysql_stmt_send_long_data: the server limits each parameter sent that way
 * to max_allowed_packet as well, so it would only help several large
 * parameters that fit one by one.
 */
#include <stdio.h>
#include <stdlib.h>

#include "my_internal.h"

/* The smallest max_allowed_packet a MariaDB server accepts: a packet
 * below it always fits. */
#define PACKET_FLOOR 1024
/* COM_STMT_EXECUTE: command, statement id, flags, iteration count, then
 * (with parameters) the NULL bitmap, the new-types flag, two bytes of
 * type per parameter. */
#define EXEC_HEAD (1 + 4 + 1 + 4)
#define EXEC_TYPE_BYTES 2
#define NUM_BYTES 8
/* MYSQL_TIME values as Connector/C sends them at most: a length byte,
 * then DATE 4, DATETIME 11, TIME 12 bytes. */
#define DATE_BYTES (1 + 4)
#define DATETIME_BYTES (1 + 11)
#define TIME_BYTES (1 + 12)
/* A UUID goes as its text: a length byte and 36 characters. */
#define UUID_BYTES (1 + 36)
/* Length-encoded integers: one byte below 251, then 3, 4 or 9 bytes. */
#define LENENC_1_MAX 251u
#define LENENC_3_MAX 65536u
#define LENENC_4_MAX 16777216u

static const char PROBE_SQL[] = "SELECT @@max_allowed_packet";

static size_t lenenc_size(size_t n)
{
    if (n < LENENC_1_MAX)
        return 1;
    if (n < LENENC_3_MAX)
        return 3;
    if (n < LENENC_4_MAX)
        return 4;
    return 9;
}

/* The largest packet one statement sends: its SQL (wire_len bytes as
 * sent), or its parameters. */
static size_t stmt_packet(size_t wire_len, const evdb_value *params, size_t n)
{
    size_t sql = 1 + wire_len;
    if (!n)
        return sql;
    size_t exec = EXEC_HEAD + (n + 7) / 8 + 1 + EXEC_TYPE_BYTES * n;
    for (size_t i = 0; i < n; i++) {
        const evdb_value *v = &params[i];
        switch (v->type) {
        case EVDB_TYPE_BOOL:
            exec += 1;
            break;
        case EVDB_TYPE_INT:
        case EVDB_TYPE_UINT:
        case EVDB_TYPE_DOUBLE:
            exec += NUM_BYTES;
            break;
        case EVDB_TYPE_TEXT:
        case EVDB_TYPE_BYTES:
        case EVDB_TYPE_JSON:
        case EVDB_TYPE_NUMERIC:
            exec += lenenc_size(v->u.s.len) + v->u.s.len;
            break;
        case EVDB_TYPE_DATE:
            exec += DATE_BYTES;
            break;
        case EVDB_TYPE_TIMESTAMP:
        case EVDB_TYPE_TIMESTAMPTZ:
            exec += DATETIME_BYTES;
            break;
        case EVDB_TYPE_TIME:
        case EVDB_TYPE_INTERVAL:
            exec += TIME_BYTES;
            break;
        case EVDB_TYPE_UUID:
            exec += UUID_BYTES;
            break;
        default:
            break;
        }
    }
    return exec > sql ? exec : sql;
}

/* The largest packet q sends (0: none checked). */
static size_t query_packet(const evdb__dconn *dc, const evdb__query *q)
{
    if (q->flags & (EVDB__QUERY_RESET_SESSION | EVDB__QUERY_PREPARE | EVDB__QUERY_UNPREPARE))
        return 0;
    if (!q->nbatch)
        return stmt_packet(dc->sql_len, q->params, q->nparams);
    size_t most = 0;
    for (size_t i = 0; i < q->nbatch; i++) {
        const evdb__stmt *s = &q->batch[i];
        size_t n = stmt_packet(s->sql_len, s->params, s->nparams);
        if (n > most)
            most = n;
    }
    return most;
}

/* The probe's answer is in dc->mres (or it failed). */
static void probe_read(evdb__dconn *dc)
{
    MYSQL_ROW row = dc->mres ? mysql_fetch_row(dc->mres) : NULL;
    if (row && row[0]) {
        char *end = NULL;
        unsigned long v = strtoul(row[0], &end, 10);
        if (end != row[0] && v >= PACKET_FLOOR) {
            dc->max_packet = v;
            dc->packet = EVDB__MY_PACKET_KNOWN;
        }
    }
    if (dc->mres) {
        mysql_free_result(dc->mres); /* stored: no I/O */
        dc->mres = NULL;
    }
}

/* The query may not go on: report it without having sent anything. */
static enum evdb__my_run refuse(evdb__dconn *dc, int code, const char *msg, evdb_error *err)
{
    evdb__my_fail_code(dc, code, msg);
    evdb__my_deliver(dc, err);
    return EVDB__MY_RUN_DONE;
}

enum evdb__my_run evdb__my_gate_run(evdb__dconn *dc, int ready, evdb_error *err)
{
    MYSQL *m = dc->m;
    int mask;
    size_t need;
    switch (dc->op) {
    case EVDB__MY_OP_NONE:
        need = query_packet(dc, dc->q);
        if (need < PACKET_FLOOR && !(dc->q->flags & EVDB__QUERY_RESET_SESSION))
            return EVDB__MY_RUN_DONE;
        if (dc->packet != EVDB__MY_PACKET_UNREAD)
            break;
        EVDB__MY_SET_OP(dc, EVDB__MY_P_QUERY);
        dc->op_started = false;
        /* fall through */
    case EVDB__MY_P_QUERY:
        mask = dc->op_started
                   ? mysql_real_query_cont(&dc->iret, m, ready)
                   : mysql_real_query_start(&dc->iret, m, PROBE_SQL, sizeof PROBE_SQL - 1);
        dc->op_started = true;
        if (mask)
            goto wait;
        dc->op_started = false;
        if (dc->iret) {
            if (evdb__my_errno_is_lost(mysql_errno(m), mysql_sqlstate(m)))
                return evdb__my_lost(dc, err, mysql_errno(m), mysql_error(m));
            break; /* the limit stays unknown: the query goes unchecked */
        }
        EVDB__MY_SET_OP(dc, EVDB__MY_P_STORE);
        ready = 0;
        /* fall through */
    case EVDB__MY_P_STORE:
        mask = dc->op_started ? mysql_store_result_cont(&dc->mres, m, ready)
                              : mysql_store_result_start(&dc->mres, m);
        dc->op_started = true;
        if (mask)
            goto wait;
        dc->op_started = false;
        if (!dc->mres && mysql_errno(m) &&
            evdb__my_errno_is_lost(mysql_errno(m), mysql_sqlstate(m)))
            return evdb__my_lost(dc, err, mysql_errno(m), mysql_error(m));
        probe_read(dc);
        break;
    default:
        break;
    }
    EVDB__MY_SET_OP(dc, EVDB__MY_OP_NONE);
    dc->op_started = false;
    /* A KILL QUERY of the core's cancel may have hit the probe, or find
     * the session idle now and be forgotten: a query given up on is not
     * sent. */
    if (dc->q->cancel_requested)
        return refuse(dc, EVDB_ECANCELED, "query cancelled before it was sent", err);
    need = query_packet(dc, dc->q);
    if (dc->packet == EVDB__MY_PACKET_KNOWN && need >= dc->max_packet) {
        char msg[EVDB__MY_MSG_MAX];
        snprintf(msg, sizeof msg,
                 "query not sent: its %s packet of %zu bytes is too large for the server's "
                 "max_allowed_packet (%lu bytes; a packet must be smaller), and the server "
                 "would close the connection",
                 dc->q->nparams || dc->q->nbatch ? "largest" : "SQL", need, dc->max_packet);
        return refuse(dc, EVDB_ETOOBIG, msg, err);
    }
    return EVDB__MY_RUN_DONE;
wait:
    dc->mask = mask;
    return EVDB__MY_RUN_WAIT;
}
