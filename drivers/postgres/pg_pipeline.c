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
 * mode off, and pipeline mode comes back afterwards; COPY data is not
 * supported: COPY FROM STDIN is refused with PQputCopyEnd, COPY TO STDOUT
 * is read and dropped, the query fails with EVDB_ENOTSUP); BEGIN, and any
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
 * Transaction state. PQtransactionStatus() says PQTRANS_ACTIVE while
 * libpq has more commands queued, which in a busy pipeline is always. So
 * the driver tracks the block itself from the answers (BEGIN succeeded,
 * COMMIT/ROLLBACK succeeded or failed, an error inside the block) and
 * takes libpq's word whenever it gives one (at a sync with nothing queued
 * behind it, after a simple-protocol query).
 *
 * Cancels (see pg_cancel.c). A cancel request stops whatever statement
 * the backend runs when it arrives, which may be a later query than the
 * one given up on, and occasionally two statements. So a request opens a
 * cancel window that closes only once the request was delivered and the
 * pipeline drained (the backend then waits idle for input, and an idle
 * backend drops a pending cancel). A 57014 inside the window on a query
 * nobody cancelled is collateral damage: outside a transaction block the
 * query took no effect (its own implicit transaction rolled back), so it
 * is re-sent; inside the user's transaction block it cannot be re-run (the
 * block is aborted), and it fails with a message that says so; CALL, DO
 * and multi-statement strings are not re-run either (they may have
 * committed part of their work). A 57014 outside any window
 * (statement_timeout, another session's pg_cancel_backend) is reported as
 * the server said. Queries given up on (cancel_requested) are never
 * re-sent. Since each query's answer is reported as it arrives, the core
 * always knows which query the server runs, and a query that timed out
 * behind others is cancelled once it is the one running.
 */
#include <stdio.h>
#include <string.h>

#include "pg_internal.h"

/* ---------------------------------------------------------------- queues */

bool evdb__pg_grow_ring(evdb__dconn *dc, size_t more)
{
    if (dc->rlen + more <= dc->rcap)
        return true;
    size_t cap = dc->rcap ? dc->rcap : 64;
    while (cap < dc->rlen + more)
        cap *= 2;
    pg_ent *r = evdb__malloc(cap * sizeof *r);
    if (!r)
        return false;
    for (size_t i = 0; i < dc->rlen; i++)
        r[i] = dc->ring[(dc->rhead + i) & (dc->rcap - 1)];
    evdb__free(dc->ring);
    dc->ring = r;
    dc->rcap = cap;
    dc->rhead = 0;
    return true;
}

pg_ent *evdb__pg_ring_at(evdb__dconn *dc, size_t i)
{
    return &dc->ring[(dc->rhead + i) & (dc->rcap - 1)];
}

/* Room was reserved with grow_ring before the command went out. */
pg_ent *evdb__pg_ring_push(evdb__dconn *dc, enum pg_kind kind, evdb__query *q, pg_stmt *st)
{
    pg_ent *e = evdb__pg_ring_at(dc, dc->rlen++);
    e->kind = (unsigned char)kind;
    e->flags = 0;
    e->idx = 0;
    e->q = q;
    e->st = st;
    for (pg_stmt *s = st; s; s = kind == PGK_DEALLOC ? s->next : NULL)
        evdb__pg_stmt_ref(s);
    return e;
}

/* Drop an entry's statement references. A DEALLOCATE that did not get
 * through goes back to the zombie queue; forget says the connection is
 * going away, so nothing is queued again. */
void evdb__pg_release_stmts(evdb__dconn *dc, pg_ent *e, bool forget)
{
    pg_stmt *st = e->st;
    e->st = NULL;
    if (e->kind != PGK_DEALLOC) {
        if (st)
            evdb__pg_stmt_unref(st);
        return;
    }
    while (st) {
        pg_stmt *next = st->next;
        if (st->state == PGS_DEALLOC) {
            if (forget)
                st->state = PGS_DEAD;
            else
                evdb__pg_cache_zombie_push(&dc->cache, st);
        }
        evdb__pg_stmt_unref(st);
        st = next;
    }
}

void evdb__pg_ring_pop(evdb__dconn *dc)
{
    evdb__pg_release_stmts(dc, evdb__pg_ring_at(dc, 0), false);
    dc->rhead = (dc->rhead + 1) & (dc->rcap - 1);
    dc->rlen--;
}

/* q's answer is settled: its entries still in the ring (they follow the
 * head, up to its Sync) must not report it again. */
void evdb__pg_detach(evdb__dconn *dc, const evdb__query *q)
{
    for (size_t i = 0; i < dc->rlen && evdb__pg_ring_at(dc, i)->q == q; i++)
        evdb__pg_ring_at(dc, i)->q = NULL;
}

/* pend must hold every query in flight at once: a query re-queued for a
 * retry goes back in front. */
static bool grow_pend(evdb__dconn *dc, size_t n)
{
    if (n <= dc->pcap)
        return true;
    size_t cap = dc->pcap ? dc->pcap * 2 : 64;
    while (cap < n)
        cap *= 2;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    evdb__query **p = evdb__malloc(cap * sizeof *p);
    if (!p)
        return false;
    for (size_t i = 0; i < dc->plen; i++)
        p[i] = dc->pend[(dc->phead + i) & (dc->pcap - 1)];
    evdb__free(dc->pend);
    dc->pend = p;
    dc->pcap = cap;
    dc->phead = 0;
    return true;
}

evdb__query *evdb__pg_pend_front(evdb__dconn *dc)
{
    return dc->pend[dc->phead];
}

void evdb__pg_pend_pop(evdb__dconn *dc)
{
    dc->phead = (dc->phead + 1) & (dc->pcap - 1);
    dc->plen--;
}

/* Room is guaranteed: pend holds at most the queries in flight, and send()
 * grew it for every one of them. */
void evdb__pg_pend_push_front(evdb__dconn *dc, evdb__query *q)
{
    dc->phead = (dc->phead - 1) & (dc->pcap - 1);
    dc->pend[dc->phead] = q;
    dc->plen++;
}

/* -------------------------------------------------------------- reporting */

void evdb__pg_report_done(evdb__dconn *dc, evdb__query *q, evdb_result *r)
{
    dc->inflight--;
    evdb__query_done(q, r);
}

static void report_failed(evdb__dconn *dc, evdb__query *q, const evdb_error *e)
{
    dc->inflight--;
    /* A pool's reset that did not complete leaves a session that may hold
     * a borrower's leftovers: the connection must serve no one again. */
    if (q->flags & EVDB__QUERY_RESET_SESSION)
        dc->reset_failed = true;
    evdb__query_failed(q, e);
}

/* err is the step's error object, used as scratch: a step that returns
 * WAIT leaves it unread, so it can carry each report. */
void evdb__pg_report_code(evdb__dconn *dc, evdb__query *q, evdb_error *err, int code,
                          const char *sqlstate, const char *msg)
{
    evdb__error_set(err, code, 0, sqlstate, "%s", msg);
    report_failed(dc, q, err);
}

/* q ran, but its result was not kept: too big, or no memory for it. */
void evdb__pg_report_unstored(evdb__dconn *dc, evdb__query *q, bool toobig, evdb_error *err)
{
    if (toobig) {
        evdb__error_set(err, EVDB_ETOOBIG, 0, NULL,
                        "the result exceeds max_result_bytes (%zu bytes); its rows were dropped",
                        dc->max_result);
        report_failed(dc, q, err);
    } else {
        evdb__pg_report_code(dc, q, err, EVDB_ENOMEM, NULL, "out of memory storing the result");
    }
}

/* The reset runs inside its own BEGIN ... COMMIT (pg_reset.c), so the
 * statements pipelined behind a failed one find the block aborted and do
 * not run; the driver then stops at once (no ROLLBACK of a pooled query,
 * no further send may end that block) and the connection fails, which
 * re-routes what was never sent. */
int evdb__pg_reset_check(const evdb__dconn *dc, evdb_error *err)
{
    if (!dc->reset_failed)
        return 0;
    evdb__error_set(err, EVDB_ECONNLOST, 0, NULL,
                    "the pool's session reset failed: the connection is dropped so that "
                    "nothing runs on a session that was not cleaned");
    return EVDB__STEP_FAIL;
}

/* ----------------------------------------------------- transaction state */

enum pg_txe evdb__pg_txe_of(const evdb__query *q)
{
    return (enum pg_txe)(((unsigned)q->drv_state & PGQ_TXE_MASK) >> PGQ_TXE_SHIFT);
}

void evdb__pg_tx_after_ok(evdb__dconn *dc, const evdb__query *q)
{
    switch (evdb__pg_txe_of(q)) {
    case PG_TXE_BEGIN:
    case PG_TXE_CHAIN:
    case PG_TXE_ROLLBACK_TO:
        dc->tx = PG_TX_IN;
        break;
    case PG_TXE_END:
        dc->tx = PG_TX_IDLE;
        break;
    default:
        break;
    }
}

void evdb__pg_tx_after_error(evdb__dconn *dc, const evdb__query *q)
{
    if (evdb__pg_txe_of(q) == PG_TXE_END)
        dc->tx = PG_TX_IDLE; /* a failed COMMIT ends the block too */
    else if (dc->tx == PG_TX_IN)
        dc->tx = PG_TX_ERROR;
}

/* Take libpq's word when it has one (nothing queued behind). */
void evdb__pg_tx_from_libpq(evdb__dconn *dc)
{
    switch (PQtransactionStatus(dc->conn)) {
    case PQTRANS_IDLE:
        dc->tx = PG_TX_IDLE;
        break;
    case PQTRANS_INTRANS:
        dc->tx = PG_TX_IN;
        break;
    case PQTRANS_INERROR:
        dc->tx = PG_TX_ERROR;
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------- error policy */

/* What becomes of a failed query, and, when a cancel meant for another
 * query hit it and it is not run again, why not: each reason has its own
 * message, so a plain SELECT is never told it was a CALL. */
enum disposition {
    D_REPORT,              /* fail the query with the server's error */
    D_RETRY_STALE,         /* its cached statement went stale: parse afresh, run again */
    D_RETRY_CANCEL,        /* hit by a cancel meant for another query: run again */
    D_COLLATERAL_IN_BLOCK, /* hit by such a cancel inside the user's block, now aborted */
    D_COLLATERAL_OWN_TX,   /* hit by such a cancel; a CALL, DO or several statements,
                              which may have committed part of their work */
    D_COLLATERAL_RETRIED   /* hit by such a cancel on each of its runs */
};

static bool state_is(const PGresult *res, const char *code)
{
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s && !strcmp(s, code);
}

unsigned evdb__pg_retries(const evdb__query *q)
{
    return ((unsigned)q->drv_state & PGQ_RETRY_MASK) >> PGQ_RETRY_SHIFT;
}

/* What to do with q after its command failed with res (st: the cached
 * statement of the failed command, parsed: whether its Parse went in the
 * same attempt). Called before the transaction state takes the error in:
 * dc->tx says whether q ran inside the user's block. */
static enum disposition error_policy(evdb__dconn *dc, evdb__query *q, pg_stmt *st, bool parsed,
                                     const PGresult *res)
{
    bool in_block = dc->tx != PG_TX_IDLE;
    /* Outside a window: statement_timeout or someone else's cancel. */
    bool collateral = dc->cancel_window && state_is(res, "57014");
    if (q->cancel_requested)
        return D_REPORT;
    if (collateral) {
        if (in_block)
            return D_COLLATERAL_IN_BLOCK;
        if (q->drv_state & (PGQ_OWNTX | PGQ_SIMPLE))
            return D_COLLATERAL_OWN_TX;
        if (evdb__pg_retries(q) >= PG_MAX_CANCEL_RETRIES)
            return D_COLLATERAL_RETRIED;
        return D_RETRY_CANCEL;
    }
    /* A cached statement the server no longer has (DEALLOCATE ALL by the
     * user, a Parse that was aborted) or whose plan changed its result
     * type (ALTER TABLE): forget it and parse afresh. Only when its Parse
     * did not go in the same attempt, so a genuine 0A000 is reported
     * after one more try. Inside the user's block the statement cannot be
     * re-run (the block is aborted): it fails, and the next use parses. */
    if (st && !parsed) {
        bool gone = state_is(res, "26000");
        if (gone || state_is(res, "0A000")) {
            evdb__pg_cache_invalidate(&dc->cache, st, !gone);
            if (!in_block && evdb__pg_retries(q) < PG_MAX_RETRIES)
                return D_RETRY_STALE;
        }
    }
    return D_REPORT;
}

/* Prepare q for another attempt. */
void evdb__pg_mark_retry(evdb__query *q, bool reparse)
{
    unsigned s = (unsigned)q->drv_state;
    unsigned n = evdb__pg_retries(q) + 1;
    s &= ~(unsigned)(PGQ_WIRE | PGQ_RETRY_MASK);
    s |= n << PGQ_RETRY_SHIFT;
    if (reparse)
        s |= PGQ_REPARSE;
    q->drv_state = (int)s;
}

/* The error of a query that a cancel meant for another query hit and that
 * is not run again, saying why not (see enum disposition). */
static void collateral_error(evdb_error *err, enum disposition d)
{
    if (d == D_COLLATERAL_IN_BLOCK)
        evdb__error_set(err, EVDB_ESERVER, 0, "57014",
                        "canceling statement due to user request: the cancel was meant for an "
                        "earlier query that timed out or was cancelled; this statement did not "
                        "take effect, and it was not re-run because the transaction block it ran "
                        "in is now aborted");
    else if (d == D_COLLATERAL_OWN_TX)
        evdb__error_set(err, EVDB_ESERVER, 0, "57014",
                        "canceling statement due to user request: the cancel was meant for an "
                        "earlier query that timed out or was cancelled; this statement was not "
                        "re-run because it may have committed part of its work (CALL, DO or "
                        "several statements)");
    else
        evdb__error_set(err, EVDB_ESERVER, 0, "57014",
                        "canceling statement: it was cancelled on each of its %d runs while "
                        "cancels meant for earlier queries that timed out or were cancelled were "
                        "on their way (or by statement_timeout, which looks the same); it did not "
                        "take effect, and it is not run again",
                        PG_MAX_CANCEL_RETRIES + 1);
}

/* The server's error for a batch statement: "batch statement K of N: "
 * (idx 0: raised at the batch's commit) in front of its message. */
static void batch_error(evdb_error *err, const evdb__query *q, uint32_t idx, const PGresult *res)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", evdb_error_message(err));
    int code = evdb_error_code(err);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (idx)
        evdb__error_set(err, code, 0, state, "batch statement %u of %zu: %s", (unsigned)idx,
                        q->nbatch, msg);
    else
        evdb__error_set(err, code, 0, state, "batch of %zu statements, at commit: %s", q->nbatch,
                        msg);
    evdb__pg_error_diag(err, res);
}

/* q's command failed with res: report it, or re-queue it when it provably
 * took no effect and the failure was not its own doing. Its other entries
 * and held results are dropped either way. */
void evdb__pg_fail_query(evdb__dconn *dc, evdb__query *q, pg_stmt *st, bool parsed, uint32_t idx,
                         const PGresult *res, evdb_error *err)
{
    evdb__pg_detach(dc, q);
    evdb__result_free(dc->held);
    dc->held = NULL;
    dc->held_oom = dc->held_toobig = false;
    q->drv_state &= ~PGQ_WIRE;
    enum disposition d = error_policy(dc, q, st, parsed, res);
    evdb__pg_tx_after_error(dc, q);
    if (d == D_RETRY_STALE || d == D_RETRY_CANCEL) {
        evdb__pg_mark_retry(q, d == D_RETRY_STALE);
        evdb__pg_pend_push_front(dc, q);
        return;
    }
    if (d != D_REPORT) {
        collateral_error(err, d);
        report_failed(dc, q, err);
        return;
    }
    evdb__pg_error_from_result(err, res);
    if (q->nbatch)
        batch_error(err, q, idx, res);
    report_failed(dc, q, err);
}

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
    w->events = EVDB__EV_READ | (dc->want_write ? EVDB__EV_WRITE : 0);
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
    if (!grow_pend(dc, dc->inflight + 1)) {
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
    if ((revents & EVDB__EV_READ) && !PQconsumeInput(dc->conn)) {
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
}
