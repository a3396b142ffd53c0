/*
 * Server-side cancel: KILL QUERY over a second, short-lived session.
 *
 * The MariaDB protocol cannot interrupt a running statement on its own
 * connection, and mariadb_cancel() only shuts down the local socket. So a
 * cancel opens another nonblocking session with the same credentials, runs
 * `KILL QUERY <thread id of the victim>` there and closes it again; the
 * cancel op is done only once that session is closed. The victim then
 * fails with 1317 (ER_QUERY_INTERRUPTED), which the main connection reports
 * for the cancelled query like any result (the core discards it).
 *
 * Ordering, which keeps the 1317 away from the next query: the core sends
 * nothing more on the victim's connection until this op is done and the
 * cancelled query was reported. If the query finished on its own before
 * the KILL arrived, the KILL finds an idle session and kills nothing: the
 * server resets a pending kill-query flag when the next command starts.
 *
 * Killing one's own threads needs no privilege; the same user is used.
 */
#include <stdio.h>
#include <string.h>

#include "my_internal.h"

/* The side session must not hang around: every wait is bounded. */
#define KILL_IO_TIMEOUT_S 10u
#define KILL_SQL_MAX 48

enum kill_phase { K_CONNECT, K_KILL, K_CLOSE, K_DONE };

struct evdb__cancel {
    MYSQL *m;
    enum kill_phase phase;
    bool started;
    int mask;
    MYSQL *mret;
    int iret;
    /* Why the KILL failed, reported once the session is closed. */
    bool failed;
    int code;
    unsigned no;
    char msg[EVDB__MY_MSG_MAX];
    char sql[KILL_SQL_MAX];
    size_t sql_len;
};

static void record(evdb__cancel *op, int code)
{
    op->failed = true;
    op->code = code;
    op->no = mysql_errno(op->m);
    snprintf(op->msg, sizeof op->msg, "%s", mysql_error(op->m));
}

/* The side session's connect finished (op->mret says how). */
static void connected(evdb__cancel *op)
{
    if (op->mret) {
        op->phase = K_KILL;
        return;
    }
    record(op, EVDB_ECONNECT);
    /* No session: closing only frees memory. */
    evdb__my_handle_drop(op->m);
    op->m = NULL;
    op->phase = K_DONE;
}

static int run(evdb__cancel *op, int ready, evdb__wait *w, evdb_error *err)
{
    int mask;
    for (;;) {
        switch (op->phase) {
        case K_CONNECT:
            /* Started by evdb__my_cancel_start, which has the arguments. */
            mask = mysql_real_connect_cont(&op->mret, op->m, ready);
            if (mask)
                goto wait;
            op->started = false;
            connected(op);
            break;

        case K_KILL:
            mask = op->started ? mysql_real_query_cont(&op->iret, op->m, ready)
                               : mysql_real_query_start(&op->iret, op->m, op->sql, op->sql_len);
            op->started = true;
            if (mask)
                goto wait;
            op->started = false;
            if (op->iret)
                record(op, EVDB_ESERVER);
            op->phase = K_CLOSE;
            break;

        case K_CLOSE:
            mask = op->started ? mysql_close_cont(op->m, ready) : mysql_close_start(op->m);
            op->started = true;
            if (mask)
                goto wait;
            op->started = false;
            op->m = NULL; /* freed by the close */
            op->phase = K_DONE;
            break;

        case K_DONE:
        default:
            w->fd = -1;
            w->events = 0;
            w->timeout_ms = -1;
            if (op->failed) {
                evdb__error_set(err, op->code, (int)op->no, NULL, "MariaDB KILL QUERY failed: %s",
                                op->msg);
                return EVDB__STEP_FAIL;
            }
            return EVDB__STEP_DONE;
        }
    }
wait:
    op->mask = mask;
    evdb__my_wait_from_mask(op->m, mask, w);
    return EVDB__STEP_WAIT;
}

int evdb__my_cancel_start(evdb__dconn *dc, evdb__query *q, evdb__cancel **out, evdb__wait *w,
                          evdb_error *err)
{
    *out = NULL;
    w->fd = -1;
    w->events = 0;
    w->timeout_ms = -1;
    /* Nothing of q runs on the server any more (it finished, or the
     * session is gone): nothing to stop. */
    if (dc->state != EVDB__MY_BUSY || dc->q != q || !dc->m)
        return EVDB__STEP_DONE;
    evdb__cancel *op = evdb__calloc(1, sizeof *op);
    if (!op) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB__STEP_FAIL;
    }
    op->m = evdb__my_handle_new(&dc->opts);
    if (!op->m) {
        evdb__free(op);
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory setting up a MariaDB handle");
        return EVDB__STEP_FAIL;
    }
    unsigned t = dc->opts.connect_timeout ? dc->opts.connect_timeout : KILL_IO_TIMEOUT_S;
    unsigned io_t = KILL_IO_TIMEOUT_S;
    mysql_options(op->m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_options(op->m, MYSQL_OPT_READ_TIMEOUT, &io_t);
    mysql_options(op->m, MYSQL_OPT_WRITE_TIMEOUT, &io_t);
    int n = snprintf(op->sql, sizeof op->sql, "KILL QUERY %lu", dc->thread_id);
    op->sql_len = (size_t)n;
    /* Connector/C takes the connect arguments from the call, so they are
     * given here rather than through the options. */
    const evdb__my_opts *o = &dc->opts;
    op->phase = K_CONNECT;
    op->started = true;
    int mask = mysql_real_connect_start(&op->mret, op->m, evdb__my_connect_host(dc), o->user,
                                        o->password, NULL, o->port, o->unix_socket, 0);
    *out = op;
    if (mask) {
        op->mask = mask;
        evdb__my_wait_from_mask(op->m, mask, w);
        return EVDB__STEP_WAIT;
    }
    /* Finished at once (refused, say): carry on from the connect's end.
     * Only a WAIT hands the op to the core. */
    op->started = false;
    connected(op);
    int st = run(op, 0, w, err);
    if (st != EVDB__STEP_WAIT) {
        *out = NULL;
        evdb__my_cancel_free(op);
    }
    return st;
}

int evdb__my_cancel_step(evdb__cancel *op, unsigned revents, evdb__wait *w, evdb_error *err)
{
    return run(op, evdb__my_ready_from_events(revents, op->mask), w, err);
}

void evdb__my_cancel_free(evdb__cancel *op)
{
    if (!op)
        return;
    evdb__my_handle_drop(op->m);
    evdb__free(op);
}
