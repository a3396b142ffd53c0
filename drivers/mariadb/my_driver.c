/*
 * The MariaDB driver's table and its query dispatch: capacity, send, flush,
 * io, and how a finished query is reported.
 *
 * The MariaDB protocol has no pipelining: one query runs at a time, so
 * capacity is 1 when idle and 0 otherwise, and the core queues the rest in
 * order. While idle the socket stays armed for reading: a MariaDB server
 * never speaks first, so a readable idle socket means it is closing the
 * session (KILL CONNECTION, shutdown, wait_timeout), and io fails the
 * connection at once instead of letting the next query find out.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <errmsg.h>
#include <mysqld_error.h>

#include "my_internal.h"

/* Longest error packet read from an idle socket to explain a close. */
#define IDLE_PEEK_MAX 512
/* MariaDB packet layout: 3-byte length, 1-byte sequence, then 0xff for an
 * error packet and a 2-byte error number. */
#define PKT_HEADER_LEN 4
#define PKT_ERR_MARKER 0xff
#define PKT_ERR_TEXT_OFF (PKT_HEADER_LEN + 1 + 2)

/* ---- outcome of the query in flight ---- */

/* Start a fresh outcome. Only the flags: the message and SQLSTATE are
 * written when a failure is recorded (and this runs for every query). */
static void outcome_clear(evdb__dconn *dc)
{
    dc->out.res = NULL;
    dc->out.failed = false;
}

void evdb__my_fail_mysql(evdb__dconn *dc, unsigned no, const char *sqlstate, const char *msg)
{
    if (dc->out.failed)
        return; /* the first error is the one that explains the rest */
    dc->out.failed = true;
    /* Connector/C's own errors (the 2000 and 5000 ranges) that did not end
     * the session are the client library's, not the server's. */
    bool client = (no >= CR_MIN_ERROR && no <= CR_MAX_ERROR) ||
                  (no >= CR_EVENT_CREATE_FAILED && no <= CR_MARIADB_LAST_ERROR);
    dc->out.code = client ? EVDB_EPROTO : EVDB_ESERVER;
    /* The server stopped the statement at its max_statement_time (the
     * backstop of my_backstop.c, or the user's own setting). */
    if (no == ER_STATEMENT_TIMEOUT)
        dc->out.code = EVDB_ETIMEDOUT;
    dc->out.driver_code = (int)no;
    snprintf(dc->out.sqlstate, sizeof dc->out.sqlstate, "%s", sqlstate ? sqlstate : "");
    snprintf(dc->out.msg, sizeof dc->out.msg, "%s", msg ? msg : "");
}

void evdb__my_fail_code(evdb__dconn *dc, int code, const char *msg)
{
    if (dc->out.failed)
        return;
    dc->out.failed = true;
    dc->out.code = code;
    dc->out.driver_code = 0;
    dc->out.sqlstate[0] = '\0';
    snprintf(dc->out.msg, sizeof dc->out.msg, "%s", msg);
}

void evdb__my_fail_over(evdb__dconn *dc, int code, const char *msg)
{
    evdb__result_free(dc->out.res);
    dc->out.res = NULL;
    dc->out.failed = false;
    evdb__my_fail_code(dc, code, msg);
}

void evdb__my_add_result(evdb__dconn *dc, evdb_result *r)
{
    if (!r) {
        evdb__my_fail_code(dc, EVDB_ENOMEM, "out of memory building a MariaDB result");
        return;
    }
    if (dc->out.failed) {
        evdb__result_free(r);
        return;
    }
    if (dc->max_result_bytes) {
        /* Rows were counted as they arrived (my_unbuffered.c); this
         * counts the finished result, and results without rows. */
        dc->cap_used += evdb__result_size(r);
        if (dc->cap_used > dc->max_result_bytes) {
            evdb__result_free(r);
            evdb__my_fail_too_big(dc);
            return;
        }
    }
    if (dc->out.res)
        evdb__result_append(dc->out.res, r);
    else
        dc->out.res = r;
}

void evdb__my_deliver(evdb__dconn *dc, evdb_error *err)
{
    evdb__query *q = dc->q;
    dc->q = NULL;
    evdb__my_sql_done(dc);
    EVDB__MY_SET_OP(dc, EVDB__MY_OP_NONE);
    dc->op_started = false;
    dc->state = EVDB__MY_IDLE;
    if (!dc->out.failed && !dc->out.res)
        evdb__my_fail_code(dc, EVDB_EPROTO, "MariaDB query produced no result");
    if (dc->out.failed) {
        /* The error reply carries no status flags: what the statement did
         * to the session before it failed is unknown (my_reset.c). */
        dc->track_dirty = true;
        evdb__result_free(dc->out.res);
        dc->out.res = NULL;
        /* driver.h gives drivers no evdb_error of their own (its layout is
         * the core's), so the step's err object carries the query's error
         * into evdb__query_failed; the step itself then returns WAIT, for
         * which the core does not read err. */
        evdb__error_set(err, dc->out.code, dc->out.driver_code,
                        dc->out.sqlstate[0] ? dc->out.sqlstate : NULL, "%s", dc->out.msg);
        outcome_clear(dc);
        evdb__query_failed(q, err);
    } else {
        evdb_result *r = dc->out.res;
        outcome_clear(dc);
        evdb__query_done(q, r);
    }
}

enum evdb__my_run evdb__my_lost(evdb__dconn *dc, evdb_error *err, unsigned no, const char *msg)
{
    /* The core fails every query it holds with EVDB_ECONNLOST, the one in
     * flight included: forget it without reporting. */
    evdb__error_set(err, EVDB_ECONNLOST, (int)no, NULL, "MariaDB: %s (error %u)", msg, no);
    evdb__result_free(dc->out.res);
    outcome_clear(dc);
    evdb__my_stream_release(dc);
    dc->q = NULL;
    dc->bstmt = false;
    evdb__my_sql_done(dc);
    EVDB__MY_SET_OP(dc, EVDB__MY_OP_NONE);
    dc->op_started = false;
    dc->state = EVDB__MY_BROKEN;
    return EVDB__MY_RUN_LOST;
}

/* ---- waits ---- */

static void idle_wait(evdb__dconn *dc, evdb__wait *w)
{
    w->fd = (int)mysql_get_socket(dc->m);
    w->events = EVDB__EV_READ;
    w->timeout_ms = -1;
}

static int broken(evdb_error *err)
{
    evdb__error_set(err, EVDB_ECONNLOST, 0, NULL, "MariaDB connection is broken");
    return EVDB__STEP_FAIL;
}

/* The socket became readable while no query ran. Say why the server is
 * closing the session where it told us (an error packet before the FIN, as
 * for KILL CONNECTION or a shutdown), and fail the connection. A wake-up
 * with nothing to read (spurious) keeps waiting. */
static int idle_readable(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    int fd = (int)mysql_get_socket(dc->m);
    unsigned char buf[IDLE_PEEK_MAX];
    ssize_t n = fd < 0 ? 0 : recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        idle_wait(dc, w);
        return EVDB__STEP_WAIT;
    }
    dc->state = EVDB__MY_BROKEN;
    /* With TLS the bytes are encrypted: only the fact of the close is
     * known. */
    if (!dc->opts.tls && n > PKT_ERR_TEXT_OFF && buf[PKT_HEADER_LEN] == PKT_ERR_MARKER) {
        unsigned no = buf[PKT_HEADER_LEN + 1] | (unsigned)buf[PKT_HEADER_LEN + 2] << 8;
        size_t plen = buf[0] | (size_t)buf[1] << 8 | (size_t)buf[2] << 16;
        size_t end = PKT_HEADER_LEN + plen < (size_t)n ? PKT_HEADER_LEN + plen : (size_t)n;
        size_t text = PKT_ERR_TEXT_OFF;
        char state[6] = "";
        /* Protocol 4.1 error packets carry '#' and a SQLSTATE first. */
        if (buf[text] == '#' && end >= text + 6) {
            memcpy(state, buf + text + 1, 5);
            state[5] = '\0';
            text += 6;
        }
        int tlen = end > text ? (int)(end - text) : 0;
        evdb__error_set(err, EVDB_ECONNLOST, (int)no, state[0] ? state : NULL,
                        "MariaDB server closed the connection: %.*s", tlen,
                        (const char *)buf + text);
        return EVDB__STEP_FAIL;
    }
    evdb__error_set(err, EVDB_ECONNLOST, 0, NULL,
                    n == 0 ? "MariaDB server closed the connection"
                           : "MariaDB connection became unusable while idle");
    return EVDB__STEP_FAIL;
}

/* ---- running a query ---- */

static enum evdb__my_run main_run(evdb__dconn *dc, int ready, evdb_error *err)
{
    /* Queries without parameters take the text protocol: one round trip,
     * several statements allowed, and every statement works (not all can
     * be prepared). On the prepared path each distinct text with literal
     * values would cost a prepare and, later, an eviction; queries that
     * repeat should pass their values as parameters instead. */
    if (dc->q->flags & EVDB__QUERY_RESET_SESSION)
        return evdb__my_reset_run(dc, ready, err);
    if ((dc->q->flags & EVDB__QUERY_RELEASE_ROLLBACK) && dc->op == EVDB__MY_OP_NONE &&
        !evdb__my_in_transaction(dc)) {
        /* A release without the reset, on a session that the server's
         * last answer (one query at a time: nothing ran since) says is in
         * no transaction, with autocommit on: nothing to roll back, and
         * no round trip for it. Answered as a ROLLBACK would be, with
         * nothing sent. */
        evdb__my_add_result(dc, evdb__result_from_text(0, NULL, 0, NULL, NULL, NULL, 0));
        evdb__my_report(dc, err);
        return EVDB__MY_RUN_DONE;
    }
    if (dc->q->nbatch)
        return evdb__my_batch_run(dc, ready, err);
    if (dc->cur->nparams)
        return evdb__my_stmt_run(dc, ready, err);
    return evdb__my_text_run(dc, ready, err);
}

/* Run the query through its phases (my_internal.h): a phase that ends
 * with the query still in flight hands over to the next one at once. */
static int run(evdb__dconn *dc, int ready, evdb__wait *w, evdb_error *err)
{
    enum evdb__my_run r;
    for (;;) {
        if (dc->phase == EVDB__MY_PH_GATE)
            r = evdb__my_gate_run(dc, ready, err);
        else if (dc->phase == EVDB__MY_PH_MAIN)
            r = main_run(dc, ready, err);
        else
            r = evdb__my_autocommit_run(dc, ready, err);
        if (r != EVDB__MY_RUN_DONE || !dc->q)
            break;
        /* The query goes on: the gate let it pass, or its main phase left
         * it to the tail (evdb__my_report). */
        if (dc->phase == EVDB__MY_PH_GATE)
            dc->phase = EVDB__MY_PH_MAIN;
        EVDB__MY_SET_OP(dc, EVDB__MY_OP_NONE);
        dc->op_started = false;
        ready = 0;
    }
    switch (r) {
    case EVDB__MY_RUN_WAIT:
        evdb__my_wait_from_mask(dc->m, dc->mask, w);
        if (dc->stream_yield) {
            dc->stream_yield = false;
            w->timeout_ms = 0; /* a turn for the loop (my_stream.c) */
        }
        return EVDB__STEP_WAIT;
    case EVDB__MY_RUN_DONE:
        idle_wait(dc, w);
        return EVDB__STEP_WAIT;
    case EVDB__MY_RUN_LOST:
    default:
        return EVDB__STEP_FAIL;
    }
}

static unsigned my_capacity(const evdb__dconn *dc)
{
    return dc->state == EVDB__MY_IDLE ? 1 : 0;
}

static int my_send(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (dc->state != EVDB__MY_IDLE) {
        evdb__error_set(err, EVDB_EBUSY, 0, NULL, "MariaDB connection runs one query at a time");
        return EVDB_EBUSY;
    }
    int rc = q->nbatch ? evdb__my_batch_refuse(q, err) : 0;
    if (!rc)
        rc = evdb__my_params_refuse(q, err);
    if (!rc && (q->flags & EVDB__QUERY_AUTOCOMMIT))
        rc = evdb__my_autocommit_refuse(q, err);
    if (!rc)
        rc = evdb__my_sql_for(dc, q, err);
    if (rc)
        return rc;
    dc->one = (evdb__stmt){q->sql, q->sql_len, q->params, q->nparams};
    dc->cur = &dc->one;
    dc->phase = EVDB__MY_PH_GATE;
    dc->bstmt = false;
    dc->ctl_step = 0;
    if (q->nbatch) {
        dc->bstep = EVDB__MY_B_OPEN;
        dc->bk = 0;
        /* Inside the caller's transaction the batch is a savepoint; the
         * status is current, the session being idle. */
        dc->bsavepoint = (evdb__my_server_status(dc) & SERVER_STATUS_IN_TRANS) != 0;
    }
    /* Nothing goes out before flush: the core sends in batches, and a batch
     * here is one query. */
    dc->q = q;
    dc->state = EVDB__MY_BUSY;
    EVDB__MY_SET_OP(dc, EVDB__MY_OP_NONE);
    dc->op_started = false;
    dc->rerun = dc->rerun_done = false;
    dc->cap_used = 0;
    dc->stream_yield = false;
    outcome_clear(dc);
    return 0;
}

static int my_flush(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    switch (dc->state) {
    case EVDB__MY_BUSY:
        if (dc->op == EVDB__MY_OP_NONE)
            return run(dc, 0, w, err);
        evdb__my_wait_from_mask(dc->m, dc->mask, w);
        return EVDB__STEP_WAIT;
    case EVDB__MY_IDLE:
        idle_wait(dc, w);
        return EVDB__STEP_WAIT;
    default:
        return broken(err);
    }
}

static int my_io(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err)
{
    switch (dc->state) {
    case EVDB__MY_BUSY:
        if (dc->op == EVDB__MY_OP_NONE)
            return run(dc, 0, w, err);
        return run(dc, evdb__my_ready_from_events(revents, dc->mask), w, err);
    case EVDB__MY_IDLE:
        if (revents & EVDB__EV_READ)
            return idle_readable(dc, w, err);
        idle_wait(dc, w);
        return EVDB__STEP_WAIT;
    default:
        return broken(err);
    }
}

/* A query counts as sent once the first command that runs it, or that
 * may wait on the server for it, has started: the text query, a
 * statement's prepare (it can wait for a metadata lock, and only a KILL
 * QUERY, which the core sends for sent queries only, ends that wait) or
 * execute, the reset, a batch's first statement. Before that the driver
 * may be reading max_allowed_packet, evicting a cached statement or
 * opening a batch's transaction, none of which waits on locks: a query
 * given up on meanwhile is never sent (the gate, abandoned in my_stmt.c
 * and the batch check it), and one whose connection is lost meanwhile may
 * run elsewhere. The mark lives in q, so the answer holds after the
 * connection failed too (driver.h). */
static bool my_query_sent(const evdb__dconn *dc, const evdb__query *q)
{
    (void)dc;
    return q->drv_state == EVDB__MY_Q_SENT;
}

static int64_t my_server_id(const evdb__dconn *dc)
{
    return (int64_t)dc->thread_id;
}

static const char *const schemes[] = {"mariadb", "mysql", NULL};

const evdb__driver evdb__driver_mariadb = {
    .name = "mariadb",
    .schemes = schemes,
    .caps = EVDB__CAP_SERVER_CANCEL | EVDB__CAP_MULTI_STMT | EVDB__CAP_BATCH | EVDB__CAP_STREAM,
    .default_depth = 1,
    .claims = NULL,
    .connect_start = evdb__my_connect_start,
    .connect_step = evdb__my_connect_step,
    .capacity = my_capacity,
    .send = my_send,
    .flush = my_flush,
    .io = my_io,
    .cancel_start = evdb__my_cancel_start,
    .cancel_step = evdb__my_cancel_step,
    .cancel_free = evdb__my_cancel_free,
    .close_start = evdb__my_close_start,
    .close_step = evdb__my_close_step,
    .destroy = evdb__my_destroy,
    .query_sent = my_query_sent,
    .server_id = my_server_id,
    .reset = &evdb__my_reset,
    .txn_dialect = EVDB__TXN_START,
};

const char *evdb__my_op_name(enum evdb__my_op op)
{
    static const char *const names[] = {
        [EVDB__MY_OP_NONE] = "idle",
        [EVDB__MY_T_QUERY] = "query",
        [EVDB__MY_T_STORE] = "store",
        [EVDB__MY_T_FETCH] = "fetch",
        [EVDB__MY_T_NEXT] = "next-result",
        [EVDB__MY_S_EVICT] = "stmt-evict",
        [EVDB__MY_S_PREPARE] = "stmt-prepare",
        [EVDB__MY_S_EXECUTE] = "stmt-execute",
        [EVDB__MY_S_STORE] = "stmt-store",
        [EVDB__MY_S_FETCH] = "stmt-fetch",
        [EVDB__MY_S_FLUSH] = "stmt-flush",
        [EVDB__MY_S_NEXT] = "stmt-next-result",
        [EVDB__MY_S_RESET] = "stmt-reset",
        [EVDB__MY_S_DISCARD] = "stmt-discard",
        [EVDB__MY_R_RESET] = "reset-connection",
        [EVDB__MY_R_ROLE] = "reset-role",
        [EVDB__MY_R_TRACK] = "reset-track",
        [EVDB__MY_R_CHECK] = "reset-check",
        [EVDB__MY_R_CNEXT] = "reset-check-next",
        [EVDB__MY_R_CSTORE] = "reset-check-store",
        [EVDB__MY_P_QUERY] = "packet-query",
        [EVDB__MY_P_STORE] = "packet-store",
        [EVDB__MY_C_QUERY] = "control-query",
    };
    return (unsigned)op < sizeof names / sizeof names[0] && names[op] ? names[op] : "?";
}
