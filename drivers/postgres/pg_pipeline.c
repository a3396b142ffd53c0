/*
 * send / flush / io: queries onto the wire (pg_send.c) and answers back
 * (pg_recv.c), each query with the semantics it would have alone
 * (DESIGN.md section 3). This file holds what both sides share: the
 * queues, reporting, the transaction state and the error policy.
 *
 * Pipeline mode (depth > 1). Queries handed over by send() wait in `pend`
 * until flush()/io() puts them on the wire: each query's commands (a
 * Parse when its statement is new, Bind/Execute) and then ITS OWN
 * PQpipelineSync. The server ends an implicit transaction at every Sync,
 * so each query commits or rolls back by itself, exactly as if it had run
 * alone: its row locks, its SET LOCAL settings and its deferred
 * constraints are its own, and so is its failure:
 *   - a query's results are held only until its own Sync, whose answer
 *     says whether its implicit transaction committed (an error raised at
 *     commit, such as a deferred constraint or a serialization failure,
 *     arrives there and is the query's own error), and reported then;
 *   - an error is reported as it arrives and touches no other query;
 *   - nothing is re-sent except what provably took no effect through no
 *     doing of its own: a cached statement the server lost or whose result
 *     type changed (26000, 0A000 on a statement not parsed in the same
 *     attempt: parsed afresh and run again, once everything sent before
 *     it has been answered) and a statement stopped by a cancel meant for
 *     another query (see Cancels). Such a query runs again after the
 *     queries that were already on the wire behind it.
 * Writes are coalesced: the queries of one push go out with their Syncs
 * in as few packets as the kernel makes of them (libpq 15 flushes at
 * every PQpipelineSync, so the socket is corked with TCP_CORK around the
 * push; a libpq with PQsendPipelineSync needs no cork).
 *
 * Explicit batches (evdb__query.batch, evdb_conn_batch) are the one place
 * where queries share a Sync, because the caller asked for it: the
 * statements of a batch go out with ONE Sync after the last one, so they
 * form one implicit transaction, all or nothing. Its results are held
 * until that Sync; the first error fails the batch (the statements after
 * it come back PIPELINE_ABORTED and are ignored). Without pipelining a
 * batch still runs in pipeline mode, entered for it alone.
 *
 * Barriers (sent only once everything before has been answered):
 * multi-statement strings and COPY (they run with PQsendQuery, pipeline
 * mode off, and pipeline mode comes back afterwards; COPY data moves
 * through evdb_copy_in / evdb_copy_out, pg_copy.c; sent as a plain
 * query, COPY FROM STDIN is refused with PQputCopyEnd, COPY TO STDOUT is
 * read and dropped, the query fails with EVDB_ENOTSUP); BEGIN, and any
 * transaction control sent outside a block (a stale-statement retry of an
 * earlier query must never land inside a block a later BEGIN opened); a
 * stale-statement retry itself; and EVDB_QUERY_NO_PIPELINE queries and
 * schema changes (ALTER, CREATE, DROP), which also let nothing follow them
 * until they are answered. A schema change renews the statement cache
 * when it is done, so the queries after it parse against the new schema
 * (a stale-statement retry, which reorders, is then only needed for
 * another session's schema change).
 *
 * Pooled queries (EVDB__QUERY_AUTOCOMMIT) may not leave their shared
 * connection inside a transaction block: BEGIN, START TRANSACTION and
 * COMMIT/ROLLBACK AND CHAIN are refused before they are sent; a multi-
 * statement string that ends inside a block is rolled back (ROLLBACK goes
 * before anything else) and fails.
 *
 * Without pipelining (depth 1) pipeline mode is never entered except for
 * a batch: one query at a time with PQsendQueryParams /
 * PQsendQueryPrepared (its own implicit Sync), reported as soon as its
 * results are drained (an error at commit comes before the NULL).
 *
 * `ring` lists, in order, what the server will answer: query results,
 * Parse and DEALLOCATE answers, syncs and rollbacks. PQgetResult is always
 * drained to NULL for each entry; PGRES_PIPELINE_SYNC has no NULL after
 * it, and reading stops when the ring is empty (libpq would hand out NULL
 * forever).
 *
 * The queues and reporting are in pg_queue.c; the transaction state and
 * what becomes of a failed query (retry or report) in pg_failure.c.
 */
#include <stdio.h>
#include <string.h>

#include "pg_internal.h"

/* ----------------------------------------------------------- entry points */

static int next_wait(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    /* Every answer is in and the request was delivered: the backend now
     * waits for input, which drops any cancel still pending. */
    if (dc->cancel_window && !dc->cancel_op && dc->rlen == 0)
        dc->cancel_window = false;
    int r = PQflush(dc->conn);
    if (r < 0)
        return evdb__pg_conn_lost(dc, err, "sending to the server");
    dc->want_write = r == 1;
    if (PQstatus(dc->conn) == CONNECTION_BAD)
        return evdb__pg_conn_lost(dc, err, "connection lost");
    w->fd = PQsocket(dc->conn);
    /* A paused stream, or a paused COPY TO STDOUT (pg_copy.c): the socket
     * is not read, so the server blocks. */
    bool reading = !evdb__pg_stream_paused(dc) && evdb__pg_copy_reading(dc);
    /* A copy in whose data waits for room must be stepped again when the
     * socket takes more, even if this flush emptied libpq's buffer. */
    bool writing = dc->want_write || evdb__pg_copy_wants_write(dc);
    w->events = (reading ? EVDB__EV_READ : 0) | (writing ? EVDB__EV_WRITE : 0);
    w->timeout_ms = -1;
    return EVDB__STEP_WAIT;
}

static int failed(evdb__dconn *dc, int rc)
{
    if (rc == EVDB__STEP_FAIL)
        evdb__pg_pipeline_forget(dc);
    return rc;
}

int evdb__pg_send(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (!dc->conn) {
        evdb__error_set(err, EVDB_ECLOSED, 0, NULL, "the connection is closed");
        return EVDB_ECLOSED;
    }
    int rc = evdb__pg_params_check(q, err);
    for (size_t i = 0; !rc && i < q->nbatch; i++) {
        evdb__query s;
        memset(&s, 0, sizeof s);
        s.params = q->batch[i].params;
        s.nparams = q->batch[i].nparams;
        rc = evdb__pg_params_check(&s, err);
    }
    if (rc)
        return rc;
    if (!evdb__pg_pend_grow(dc, dc->inflight + 1)) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory queueing the query");
        return EVDB_ENOMEM;
    }
    q->drv_state = 0;
    dc->pend[(dc->phead + dc->plen++) & (dc->pcap - 1)] = q;
    dc->inflight++;
    return 0;
}

int evdb__pg_flush(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    if (!dc->conn) {
        evdb__error_set(err, EVDB_ECLOSED, 0, NULL, "the connection is closed");
        return EVDB__STEP_FAIL;
    }
    if (evdb__pg_push(dc, err))
        return failed(dc, EVDB__STEP_FAIL);
    return failed(dc, next_wait(dc, w, err));
}

/* ---------------------------------------------------------- notifications */

/* Notifications go to the core on a listener's connection (evdb_listener,
 * slot listen) and are dropped on every other one, rather than left to
 * pile up inside libpq. Read after receive(): PQnotifies parses input, and
 * rows parsed before receive() could set single-row mode would make libpq
 * refuse it. Everything PQconsumeInput read is parsed here, so an idle
 * connection's readiness is consumed in full and the READ wait does not
 * fire again until more arrives. */
static void deliver_notifies(evdb__dconn *dc)
{
    for (PGnotify *n = PQnotifies(dc->conn); n; n = PQnotifies(dc->conn)) {
        if (dc->listening)
            evdb__notification(dc->core, n->relname, n->extra, strlen(n->extra), n->be_pid);
        PQfreemem(n);
    }
}

void evdb__pg_listen(evdb__dconn *dc, bool on)
{
    dc->listening = on;
}

int evdb__pg_io(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err)
{
    if (!dc->conn) {
        evdb__error_set(err, EVDB_ECLOSED, 0, NULL, "the connection is closed");
        return EVDB__STEP_FAIL;
    }
    if ((revents & EVDB__EV_READ) && !evdb__pg_stream_paused(dc) && !PQconsumeInput(dc->conn)) {
        /* Notifications read before the server closed the session (one
         * sent just before pg_terminate_backend) were received: they are
         * delivered, not counted in the gap that follows. */
        deliver_notifies(dc);
        return failed(dc, evdb__pg_conn_lost(dc, err, "reading from the server"));
    }
    if ((revents & EVDB__EV_WRITE) || dc->want_write) {
        int r = PQflush(dc->conn);
        if (r < 0)
            return failed(dc, evdb__pg_conn_lost(dc, err, "sending to the server"));
        dc->want_write = r == 1;
    }
    if (evdb__pg_receive(dc, err) || evdb__pg_push(dc, err))
        return failed(dc, EVDB__STEP_FAIL);
    deliver_notifies(dc);
    return failed(dc, next_wait(dc, w, err));
}

bool evdb__pg_query_on_wire(const evdb__query *q)
{
    return (q->drv_state & PGQ_WIRE) != 0;
}

bool evdb__pg_query_sent(const evdb__dconn *dc, const evdb__query *q)
{
    (void)dc;
    return (q->drv_state & PGQ_SENT) != 0;
}

/* The tail of pend is the newest query taken; one that never reached the
 * wire (not a re-send, which was sent once) holds nothing of the
 * connection's: no ring entry, no pinned statement. */
evdb__query *evdb__pg_take_unsent(evdb__dconn *dc)
{
    if (!dc->plen)
        return NULL;
    evdb__query *q = dc->pend[(dc->phead + dc->plen - 1) & (dc->pcap - 1)];
    if (q->drv_state & (PGQ_WIRE | PGQ_SENT))
        return NULL;
    dc->plen--;
    dc->inflight--;
    return q;
}

void evdb__pg_pipeline_forget(evdb__dconn *dc)
{
    evdb__result_free(dc->held);
    dc->held = NULL;
    dc->held_oom = dc->held_toobig = false;
    dc->sync_err = false;
    while (dc->rlen) {
        evdb__pg_release_stmts(dc, evdb__pg_ring_at(dc, 0), true);
        dc->rhead = (dc->rhead + 1) & (dc->rcap - 1);
        dc->rlen--;
    }
    evdb__pg_reset_cur(dc);
    dc->plen = 0;
    dc->phead = 0;
    dc->inflight = 0;
    dc->solo = false;
    dc->copy_q = NULL;
    dc->copy_in = false;
}
