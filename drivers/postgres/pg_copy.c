/*
 * COPY data through libpq (evdb__query.copy; the handle and its buffer
 * are the core's, src/copy.c). A COPY is sent like a multi-statement
 * string: PQsendQuery with pipeline mode off, once everything before it
 * has been answered, and nothing goes after it until it is done
 * (pg_pipeline.c, Barriers). The server's PGRES_COPY_IN / _OUT result
 * starts the data phase, which runs inside receive() until libpq can give
 * the final status (PGRES_COMMAND_OK "COPY n", or the error).
 *
 * COPY FROM STDIN. libpq's output buffer grows without bound in
 * nonblocking mode (PQputCopyData returns 0 only when it cannot grow), so
 * the backpressure is evdb's: a piece goes to PQputCopyData only while
 * PQflush has nothing left over; otherwise the step waits for
 * writability. The user's buffer drains only as fast as the socket takes
 * it, and evdb_copy_write says EVDB_EBUSY when it is full. The end is
 * PQputCopyEnd: NULL for the data's end, a message to abort (the user's
 * evdb_copy_abort, or the query given up on: cancel, timeout), which the
 * server answers with an error (57014) that fails the query. An error the
 * server raises mid-copy (a bad row, a duplicate key) waits in libpq's
 * input until PQputCopyEnd: the server drops the data sent after it.
 *
 * COPY TO STDOUT. PQgetCopyData (async) hands out one CopyData message at
 * a time; each is copied to the user's buffer while the user takes data.
 * Paused (or the buffer full), the step stops reading the socket: the
 * server's writes then block, and the copy waits. A query given up on
 * reads on and drops the data, while the core cancels it on the server.
 */
#include <string.h>

#include "pg_internal.h"

#define CANCEL_MSG "COPY cancelled by the client (its future was cancelled or timed out)"

int evdb__pg_copy_begin(evdb__dconn *dc, evdb__query *q, ExecStatusType st)
{
    if (!q || !q->copy || dc->copy_q)
        return 0;
    bool in = st == PGRES_COPY_IN;
    if (in != evdb__copy_is_in(q->copy))
        return 0;
    dc->copy_q = q;
    dc->copy_in = in;
    return 1;
}

/* The end of the data (or the abort): 1 once libpq took it, 0 to wait. */
static int put_end(evdb__dconn *dc, const char *msg, evdb_error *err)
{
    int r = PQputCopyEnd(dc->conn, msg);
    if (r < 0)
        return evdb__pg_conn_lost(dc, err, "ending COPY");
    if (r == 0) {
        dc->want_write = true;
        return 0;
    }
    dc->copy_in = false;
    dc->copy_q = NULL;
    r = PQflush(dc->conn);
    if (r < 0)
        return evdb__pg_conn_lost(dc, err, "sending to the server");
    dc->want_write = r == 1;
    return 1;
}

static int step_in(evdb__dconn *dc, evdb_error *err)
{
    evdb__query *q = dc->copy_q;
    for (;;) {
        if (q->cancel_requested)
            return put_end(dc, CANCEL_MSG, err);
        const char *msg;
        int end = evdb__copy_in_end(q->copy, &msg);
        if (end < 0)
            return put_end(dc, msg, err);
        if (dc->want_write)
            return 0; /* the socket is full: the next piece waits */
        const char *data;
        size_t n = evdb__copy_in_data(q->copy, &data);
        if (n == 0)
            return end == 1 ? put_end(dc, NULL, err) : 0;
        int r = PQputCopyData(dc->conn, data, (int)n);
        if (r < 0)
            return evdb__pg_conn_lost(dc, err, "sending COPY data");
        if (r == 0) {
            dc->want_write = true;
            return 0;
        }
        evdb__copy_in_sent(q->copy, n);
        r = PQflush(dc->conn);
        if (r < 0)
            return evdb__pg_conn_lost(dc, err, "sending COPY data");
        dc->want_write = r == 1;
    }
}

/* COPY TO STDOUT: q NULL for a COPY the driver refused (data dropped). */
static int step_out(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    for (;;) {
        bool drop = !q || q->cancel_requested || dc->cur_oom;
        if (!drop && !evdb__copy_out_ready(q->copy))
            return 0; /* paused: the socket is not read */
        char *buf;
        int n = PQgetCopyData(dc->conn, &buf, 1);
        if (n > 0) {
            if (!drop && evdb__copy_out_data(q->copy, buf, (size_t)n) != 0)
                dc->cur_oom = true; /* the query fails; the rest is dropped */
            PQfreemem(buf);
            continue;
        }
        if (n == 0)
            return 0; /* more to come */
        if (n == -2)
            return evdb__pg_conn_lost(dc, err, "reading COPY data");
        dc->cur_copy_out = false;
        dc->copy_q = NULL;
        return 1;
    }
}

int evdb__pg_copy_step(evdb__dconn *dc, evdb_error *err)
{
    if (dc->copy_q && dc->copy_in)
        return step_in(dc, err);
    if (dc->copy_q)
        return step_out(dc, dc->copy_q, err);
    if (dc->cur_copy_out)
        return step_out(dc, NULL, err);
    return 1;
}

bool evdb__pg_copy_reading(const evdb__dconn *dc)
{
    const evdb__query *q = dc->copy_q;
    if (!q || dc->copy_in || q->cancel_requested || dc->cur_oom)
        return true;
    return evdb__copy_out_ready(q->copy);
}

bool evdb__pg_copy_wants_write(const evdb__dconn *dc)
{
    const evdb__query *q = dc->copy_q;
    if (!q || !dc->copy_in)
        return false;
    const char *data, *msg;
    return q->cancel_requested || evdb__copy_in_data(q->copy, &data) > 0 ||
           evdb__copy_in_end(q->copy, &msg) != 0;
}

void evdb__pg_copy_refuse(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (q->copy)
        evdb__pg_report_code(dc, q, err, EVDB_EINVAL, NULL,
                             evdb__copy_is_in(q->copy)
                                 ? "evdb_copy_in needs a COPY ... FROM STDIN statement (the data "
                                   "went nowhere; the statement may have run)"
                                 : "evdb_copy_out needs a COPY ... TO STDOUT statement (the data "
                                   "went nowhere; the statement may have run)");
    else
        evdb__pg_report_code(dc, q, err, EVDB_ENOTSUP, NULL,
                             "COPY FROM STDIN / TO STDOUT runs through evdb_copy_in / "
                             "evdb_copy_out, not as a query");
}
