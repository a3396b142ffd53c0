/*
 * Transaction state and the error policy: what becomes of a query whose
 * command failed (pg_pipeline.c has the whole picture).
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
        evdb__pg_report_failed(dc, q, err);
        return;
    }
    evdb__pg_error_from_result(err, res);
    if (q->nbatch)
        batch_error(err, q, idx, res);
    evdb__pg_report_failed(dc, q, err);
}
