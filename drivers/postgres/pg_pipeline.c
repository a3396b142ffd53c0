/*
 * send / flush / io: queries onto the wire and answers back, with the
 * autocommit semantics of DESIGN.md section 3.
 *
 * Pipeline mode (depth > 1). Queries handed over by send() wait in `pend`
 * until flush()/io() puts them on the wire in groups: all the queries of a
 * batch, then one PQpipelineSync. The server runs a group as one implicit
 * transaction, so:
 *   - a query's result is held until its group's PGRES_PIPELINE_SYNC says
 *     the transaction committed, and only then reported;
 *   - when a command of a group fails, the failing query is reported and
 *     every other query of the group (the ones before it were rolled back,
 *     the ones after it were PIPELINE_ABORTED: none took effect) goes back
 *     to the front of `pend` and is sent again in a new group;
 *   - SQLSTATE 25001 (VACUUM, CREATE DATABASE, ... "cannot run inside a
 *     transaction block") and 2D000 (CALL of a procedure that commits)
 *     for a query that was not alone in its group: re-sent alone;
 *   - transaction control statements go alone in a group; BEGIN (and any
 *     of them sent outside a block) only after every earlier group has
 *     been answered (a barrier): a query re-sent after a failure must
 *     never land inside a transaction block that a later BEGIN opened;
 *   - EVDB_QUERY_NO_PIPELINE queries go alone in a group, and so do CALL
 *     and DO: a procedure that COMMITs inside a group commits the
 *     statements before it as well, which would break the all-or-nothing
 *     rule above;
 *   - inside the user's own transaction block (after BEGIN until
 *     COMMIT/ROLLBACK) every query's outcome is reported as it arrives:
 *     the user owns that transaction, nothing is re-sent.
 * Multi-statement strings and COPY cannot run in pipeline mode: they wait
 * until the pipeline is empty, run alone with PQsendQuery (pipeline mode
 * off), and pipeline mode comes back on afterwards. (COPY data is not
 * supported: COPY FROM STDIN is refused with PQputCopyEnd, COPY TO STDOUT
 * is read and dropped; the query fails with EVDB_ENOTSUP.)
 *
 * Without pipelining (depth 1) pipeline mode is never entered: one query
 * at a time with PQsendQueryParams / PQsendQueryPrepared (its own implicit
 * Sync), reported as soon as its results are drained.
 *
 * `ring` lists, in order, what the server will answer: query results,
 * Parse and DEALLOCATE answers, and syncs. PQgetResult is always drained
 * to NULL for each entry; PGRES_PIPELINE_SYNC has no NULL after it, and
 * reading stops when the ring is empty (libpq would hand out NULL forever).
 *
 * Transaction state. PQtransactionStatus() says PQTRANS_ACTIVE while
 * libpq has more commands queued, which in a busy pipeline is always. So
 * the driver tracks the block itself from the answers (BEGIN succeeded,
 * COMMIT/ROLLBACK succeeded or failed, an error inside the block) and
 * takes libpq's word whenever it gives one (at a sync with nothing queued
 * behind it, after a simple-protocol query). Since transaction control
 * statements are barriers and alone, a group never changes the block
 * midway, and the state at a group's first answer decides its mode.
 *
 * Cancels (see pg_cancel.c). A cancel request stops whatever statement
 * the backend runs when it arrives, which may be a later query than the
 * one given up on, and occasionally two statements. So a request opens a
 * cancel window that closes only once the request was delivered and the
 * pipeline drained (the backend then waits idle for input, and an idle
 * backend drops a pending cancel). A 57014 inside the window on a query
 * nobody cancelled is collateral damage: outside a transaction block the
 * query (and with it its group) took no effect, so it is re-sent alone;
 * inside the user's transaction block it cannot be re-run (the block is
 * aborted), and it fails with a message that says so; CALL / DO are not
 * re-run either (they may have committed). A 57014 outside any window
 * (statement_timeout, another session's pg_cancel_backend) is reported as
 * the server said. Queries given up on (cancel_requested) are never
 * re-sent: they fail (the core discards the outcome). One race remains:
 * a query sent in the instant between the backend's last answer and its
 * handling of a late SIGINT; the core narrows it by sending nothing new
 * until the cancel op has finished.
 */
#include <stdio.h>
#include <string.h>

#include "pg_internal.h"

/* DEALLOCATEs sent at the head of one pipeline group at most. */
#define DEALLOC_PER_GROUP 16
/* Without pipelining a DEALLOCATE costs a round trip: batch them. */
#define DEALLOC_BATCH_SINGLE 8

enum outcome { OUT_OK, OUT_ERR, OUT_ABORTED };

/* ---------------------------------------------------------------- queues */

static bool grow_ring(evdb__dconn *dc, size_t more)
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

static pg_ent *ring_at(evdb__dconn *dc, size_t i)
{
    return &dc->ring[(dc->rhead + i) & (dc->rcap - 1)];
}

/* Room was reserved with grow_ring before the command went out. */
static void ring_push(evdb__dconn *dc, enum pg_kind kind, evdb__query *q, pg_stmt *st)
{
    pg_ent *e = ring_at(dc, dc->rlen++);
    e->kind = (unsigned char)kind;
    e->q = q;
    e->st = st;
    for (pg_stmt *s = st; s; s = kind == PGK_DEALLOC ? s->next : NULL)
        evdb__pg_stmt_ref(s);
}

/* Drop an entry's statement references. A DEALLOCATE that did not get
 * through goes back to the zombie queue; forget says the connection is
 * going away, so nothing is queued again. */
static void release_stmts(evdb__dconn *dc, pg_ent *e, bool forget)
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

static void ring_pop(evdb__dconn *dc)
{
    release_stmts(dc, ring_at(dc, 0), false);
    dc->rhead = (dc->rhead + 1) & (dc->rcap - 1);
    dc->rlen--;
}

/* pend must hold every query in flight at once: a failed group puts all
 * of its queries back. */
static bool grow_pend(evdb__dconn *dc, size_t n)
{
    if (n <= dc->pcap)
        return true;
    size_t cap = dc->pcap ? dc->pcap * 2 : 64;
    while (cap < n)
        cap *= 2;
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

static evdb__query *pend_front(evdb__dconn *dc)
{
    return dc->pend[dc->phead];
}

static void pend_pop(evdb__dconn *dc)
{
    dc->phead = (dc->phead + 1) & (dc->pcap - 1);
    dc->plen--;
}

/* Room is guaranteed: pend holds at most the queries in flight, and send()
 * grew it for every one of them. */
static void pend_push_front(evdb__dconn *dc, evdb__query *q)
{
    dc->phead = (dc->phead - 1) & (dc->pcap - 1);
    dc->pend[dc->phead] = q;
    dc->plen++;
}

static bool grow_held(evdb__dconn *dc, size_t n)
{
    if (n <= dc->heldcap)
        return true;
    size_t cap = dc->heldcap ? dc->heldcap * 2 : 64;
    while (cap < n)
        cap *= 2;
    pg_held *h = evdb__realloc(dc->held, cap * sizeof *h);
    if (!h)
        return false;
    dc->held = h;
    dc->heldcap = cap;
    pg_held *r = evdb__realloc(dc->resend, cap * sizeof *r);
    if (!r)
        return false;
    dc->resend = r;
    dc->resendcap = cap;
    return true;
}

/* -------------------------------------------------------------- reporting */

static void report_done(evdb__dconn *dc, evdb__query *q, evdb_result *r)
{
    dc->inflight--;
    evdb__query_done(q, r);
}

static void report_failed(evdb__dconn *dc, evdb__query *q, const evdb_error *e)
{
    dc->inflight--;
    evdb__query_failed(q, e);
}

/* err is the step's error object, used as scratch: a step that returns
 * WAIT leaves it unread, so it can carry each report. */
static void report_code(evdb__dconn *dc, evdb__query *q, evdb_error *err, int code,
                        const char *sqlstate, const char *msg)
{
    evdb__error_set(err, code, 0, sqlstate, "%s", msg);
    report_failed(dc, q, err);
}

static void report_res(evdb__dconn *dc, evdb__query *q, const PGresult *res, evdb_error *err)
{
    evdb__pg_error_from_result(err, res);
    report_failed(dc, q, err);
}

/* ----------------------------------------------------- transaction state */

/* q ran, but its result was not kept: too big, or no memory for it. */
static void report_unstored(evdb__dconn *dc, evdb__query *q, bool toobig, evdb_error *err)
{
    if (toobig) {
        evdb__error_set(err, EVDB_ETOOBIG, 0, NULL,
                        "the result exceeds max_result_bytes (%zu bytes); its rows were dropped",
                        dc->max_result);
        report_failed(dc, q, err);
    } else {
        report_code(dc, q, err, EVDB_ENOMEM, NULL, "out of memory storing the result");
    }
}

static enum pg_txe txe_of(const evdb__query *q)
{
    return (enum pg_txe)(((unsigned)q->drv_state & PGQ_TXE_MASK) >> PGQ_TXE_SHIFT);
}

static void tx_after_ok(evdb__dconn *dc, const evdb__query *q)
{
    switch (txe_of(q)) {
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

static void tx_after_error(evdb__dconn *dc, const evdb__query *q)
{
    if (txe_of(q) == PG_TXE_END)
        dc->tx = PG_TX_IDLE; /* a failed COMMIT ends the block too */
    else if (dc->tx == PG_TX_IN)
        dc->tx = PG_TX_ERROR;
}

/* Take libpq's word when it has one (nothing queued behind). */
static void tx_from_libpq(evdb__dconn *dc)
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

enum disposition {
    D_REPORT,      /* fail the query with the server's error */
    D_RETRY,       /* took no effect: send it again */
    D_RETRY_ALONE, /* took no effect: send it again, alone in a group */
    D_RETRY_CANCEL, /* hit by a cancel meant for another query: re-send alone */
    D_REPORT_COLLATERAL /* hit by such a cancel, and it cannot be re-run */
};

static bool state_is(const PGresult *res, const char *code)
{
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s && !strcmp(s, code);
}

static unsigned retries(const evdb__query *q)
{
    return ((unsigned)q->drv_state & PGQ_RETRY_MASK) >> PGQ_RETRY_SHIFT;
}

/* What to do with q after its command failed with res. Consumes an
 * outstanding cancel request when res is a 57014. */
static enum disposition error_policy(evdb__dconn *dc, evdb__query *q, pg_stmt *st,
                                     const PGresult *res)
{
    /* Outside a window: statement_timeout or someone else's cancel. */
    bool cancelled = dc->cancel_window && state_is(res, "57014");
    if (q->cancel_requested || retries(q) >= PG_MAX_RETRIES)
        return D_REPORT;
    if (cancelled) {
        if (q->drv_state & PGQ_OWNTX)
            return D_REPORT_COLLATERAL;
        return retries(q) < PG_MAX_CANCEL_RETRIES ? D_RETRY_CANCEL : D_REPORT_COLLATERAL;
    }
    if (dc->in_pipeline && !(q->drv_state & PGQ_SENT_ALONE) &&
        (state_is(res, "25001") || state_is(res, "2D000")))
        return D_RETRY_ALONE;
    /* A cached statement the server no longer has (DEALLOCATE ALL by the
     * user, a Parse that was aborted) or whose plan changed its result
     * type (ALTER TABLE): forget it and parse afresh. Only once per
     * attempt that did not carry its own Parse, so a genuine 0A000 is
     * reported after one more try. The retry waits until everything sent
     * before it has been answered and then parses its own statement: a
     * query of its group re-sent ahead of it may parse the same text again
     * before the schema change that is re-sent too (use, ALTER, use in one
     * batch), and that statement would be stale as well. */
    if (st && !(q->drv_state & PGQ_PARSED)) {
        bool gone = state_is(res, "26000");
        if (gone || state_is(res, "0A000")) {
            evdb__pg_cache_invalidate(&dc->cache, st, !gone);
            q->drv_state |= PGQ_REPARSE;
            return D_RETRY_ALONE;
        }
    }
    return D_REPORT;
}

/* Prepare q for another attempt. Only retries caused by q's own error
 * count towards PG_MAX_RETRIES: a query rolled back because another one
 * failed needs no limit, since every such round reports that other query
 * (the group shrinks) or counts one of its own retries. */
static void mark_retry(evdb__query *q, bool alone, bool own_error)
{
    unsigned n = retries(q) + (own_error ? 1 : 0);
    unsigned s = (unsigned)q->drv_state;
    s &= ~(unsigned)(PGQ_WIRE | PGQ_SENT_ALONE | PGQ_PARSED | PGQ_RETRY_MASK);
    s |= n << PGQ_RETRY_SHIFT;
    if (alone)
        s |= PGQ_ALONE;
    q->drv_state = (int)s;
}

static const char collateral_msg[] =
    "canceling statement due to user request: the cancel was meant for an earlier query "
    "that timed out or was cancelled; this statement did not take effect, and it was not "
    "re-run because the transaction block it ran in is now aborted";

static const char collateral_own_msg[] =
    "canceling statement due to user request: the cancel was meant for an earlier query "
    "that timed out or was cancelled; this CALL/DO statement was not re-run because it may "
    "have committed part of its work";

/* q's command failed (res) outside any group logic: pipeline off, or
 * inside the user's transaction block. */
static void fail_now(evdb__dconn *dc, evdb__query *q, pg_stmt *st, const PGresult *res,
                     bool may_resend, evdb_error *err)
{
    enum disposition d = error_policy(dc, q, st, res);
    if (d != D_REPORT && d != D_REPORT_COLLATERAL && may_resend) {
        mark_retry(q, d != D_RETRY, true);
        pend_push_front(dc, q);
        return;
    }
    if (d == D_RETRY_CANCEL || d == D_REPORT_COLLATERAL) {
        evdb__error_set(err, EVDB_ESERVER, 0, "57014", "%s",
                        d == D_REPORT_COLLATERAL ? collateral_own_msg : collateral_msg);
        report_failed(dc, q, err);
        return;
    }
    report_res(dc, q, res, err);
}

/* The outcome of q (the query of an entry) is known. */
static void settle(evdb__dconn *dc, evdb__query *q, pg_stmt *st, enum outcome out,
                   evdb_result *r, const PGresult *res, evdb_error *err)
{
    q->drv_state &= ~PGQ_WIRE;
    if (dc->cur_copy_err) {
        /* COPY: the data went nowhere. The server may have committed it
         * (COPY FROM was refused by us, COPY TO only read). */
        evdb__result_free(r);
        if (out == OUT_ERR && dc->in_pipeline && !dc->rg_txn)
            dc->rg_failed = true;
        report_code(dc, q, err, EVDB_ENOTSUP, NULL,
                    "COPY FROM STDIN / TO STDOUT is not supported by evdb");
        return;
    }
    if (!dc->in_pipeline || dc->rg_txn) {
        /* Pipeline off, or inside the user's transaction block: report as
         * it arrives. */
        if (out == OUT_OK) {
            tx_after_ok(dc, q);
            if (r)
                report_done(dc, q, r);
            else
                report_unstored(dc, q, dc->cur_toobig, err);
        } else if (out == OUT_ABORTED) {
            tx_after_error(dc, q);
            report_code(dc, q, err, EVDB_ESERVER, "25P02",
                        "not executed: an earlier statement of the pipeline failed inside the "
                        "transaction block, which is now aborted (roll it back)");
        } else {
            bool may_resend = !dc->in_pipeline && dc->tx == PG_TX_IDLE &&
                              !(q->drv_state & PGQ_SIMPLE);
            tx_after_error(dc, q);
            fail_now(dc, q, st, res, may_resend, err);
        }
        return;
    }
    /* An autocommit group: hold everything until its Sync. The vector has
     * room for every query in flight (grown in send). */
    pg_held *h = &dc->held[dc->nheld];
    h->q = q;
    h->r = NULL;
    h->oom = false;
    h->toobig = false;
    h->retried = false;
    if (out == OUT_OK) {
        h->r = r;
        h->oom = r == NULL;
        h->toobig = dc->cur_toobig;
        dc->nheld++;
        return;
    }
    if (out == OUT_ABORTED) {
        dc->nheld++;
        return;
    }
    dc->rg_failed = true;
    enum disposition d = error_policy(dc, q, st, res);
    if (d == D_REPORT) {
        report_res(dc, q, res, err);
        return;
    }
    if (d == D_REPORT_COLLATERAL) {
        evdb__error_set(err, EVDB_ESERVER, 0, "57014", "%s", collateral_own_msg);
        report_failed(dc, q, err);
        return;
    }
    /* Re-sent at the Sync; the retry is counted now, as it is q's own. */
    mark_retry(q, d != D_RETRY, true);
    h->retried = true;
    dc->nheld++;
}

/* A group's Sync arrived: report or re-send what it held. */
static void on_sync(evdb__dconn *dc, evdb_error *err)
{
    size_t n = 0;
    for (size_t i = 0; i < dc->nheld; i++) {
        pg_held *h = &dc->held[i];
        if (!dc->rg_failed && h->r) {
            tx_after_ok(dc, h->q);
            report_done(dc, h->q, h->r);
        } else if (!dc->rg_failed && h->oom) {
            report_unstored(dc, h->q, h->toobig, err);
        } else if (h->q->cancel_requested) {
            evdb__result_free(h->r);
            report_code(dc, h->q, err, EVDB_ECANCELED, NULL,
                        "cancelled (its pipeline group was rolled back)");
        } else {
            /* Rolled back or skipped: it took no effect. (A skipped query
             * in a group that did not fail cannot happen; re-sending it is
             * still the safe answer.) */
            evdb__result_free(h->r);
            if (!h->retried)
                mark_retry(h->q, (h->q->drv_state & PGQ_ALONE) != 0, false);
            dc->resend[n++].q = h->q;
        }
    }
    /* Back to the front, in their original order. */
    while (n)
        pend_push_front(dc, dc->resend[--n].q);
    dc->nheld = 0;
    dc->rg_failed = false;
    tx_from_libpq(dc);
    dc->rg_txn = dc->tx != PG_TX_IDLE;
    if (dc->rlen == 0)
        dc->send_tx = dc->rg_txn;
}

/* ----------------------------------------------------------------- sending */

static int send_failed(evdb__dconn *dc, evdb_error *err)
{
    const char *msg = PQerrorMessage(dc->conn);
    evdb__error_set(err, PQstatus(dc->conn) == CONNECTION_BAD ? EVDB_ECONNLOST : EVDB_EPROTO, 0,
                    NULL, "could not send the query: %s", msg && *msg ? msg : "libpq error");
    return EVDB__STEP_FAIL;
}

static int no_memory(evdb_error *err)
{
    evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory in the PostgreSQL driver");
    return EVDB__STEP_FAIL;
}

#define PG_SPECIAL (EVDB__QUERY_PREPARE | EVDB__QUERY_UNPREPARE)

/* How many parameters q's statement has: q's own, or for a prepare
 * request without any, its placeholders (counted in prepare_query). */
static size_t stmt_nparams(const evdb__query *q)
{
    return q->nparams ? q->nparams : (size_t)q->drv_word;
}

/* Classify q and encode its parameters into dc->params; look up its
 * cached statement (*hit) when it may use the cache. A cache hit skips
 * the lexer: only plain statements are ever cached. */
static int prepare_query(evdb__dconn *dc, evdb__query *q, bool *cacheable, pg_stmt **hit,
                         uint64_t *hash)
{
    if (evdb__pg_params_encode(&dc->params, q))
        return EVDB_ENOMEM;
    if ((q->flags & PG_SPECIAL) && !q->nparams) {
        /* evdb_conn_prepare(sql) without parameters: one untyped
         * parameter per placeholder, the key of queries whose parameters
         * are null, int, double or text. */
        q->drv_word = evdb__pg_sql_count_params(q->sql, q->sql_len);
        if (evdb__pg_params_untyped(&dc->params, (size_t)q->drv_word))
            return EVDB_ENOMEM;
    }
    size_t n = stmt_nparams(q);
    *hit = NULL;
    *cacheable = dc->cache_on && (!(q->flags & EVDB_QUERY_NO_CACHE) || (q->flags & PG_SPECIAL));
    const Oid *types = n ? dc->params.types : NULL;
    if (*cacheable && (!(q->drv_state & PGQ_CLASSIFIED) ||
                       !(q->drv_state & (PGQ_SIMPLE | PGQ_TXCTL | PGQ_OWNTX)))) {
        *hit = evdb__pg_cache_mru(&dc->cache, q->sql, q->sql_len, n, types);
        *hash = *hit ? (*hit)->hash : evdb__pg_cache_hash(q->sql, q->sql_len, n, types);
        if (!*hit)
            *hit = evdb__pg_cache_find(&dc->cache, *hash, q->sql, q->sql_len, n, types);
        if (*hit && (q->drv_state & PGQ_REPARSE) && (*hit)->state == PGS_READY) {
            /* Parsed before what made q's statement stale, maybe. */
            evdb__pg_cache_invalidate(&dc->cache, *hit, true);
            *hit = evdb__pg_cache_find(&dc->cache, *hash, q->sql, q->sql_len, n, types);
        }
        if (*hit) {
            q->drv_state |= PGQ_CLASSIFIED;
            return 0;
        }
    }
    if (!(q->drv_state & PGQ_CLASSIFIED)) {
        unsigned cls = evdb__pg_sql_classify(q->sql, q->sql_len);
        /* With parameters the text goes through the extended protocol,
         * which refuses several statements itself (the server says so). */
        if (q->nparams)
            cls &= ~(unsigned)PGQ_SIMPLE;
        q->drv_state |= (int)cls;
    }
    /* Only plain statements are cached, which is what lets a cache hit
     * skip the lexer above. */
    if (q->drv_state & (PGQ_SIMPLE | PGQ_TXCTL | PGQ_OWNTX))
        *cacheable = false;
    return 0;
}

static int send_params(evdb__dconn *dc, evdb__query *q)
{
    pg_params *p = &dc->params;
    return PQsendQueryParams(dc->conn, q->sql, (int)q->nparams, q->nparams ? p->types : NULL,
                             q->nparams ? p->values : NULL, q->nparams ? p->lengths : NULL,
                             q->nparams ? p->formats : NULL, 0);
}

static int send_prepared(evdb__dconn *dc, evdb__query *q, pg_stmt *st)
{
    pg_params *p = &dc->params;
    return PQsendQueryPrepared(dc->conn, st->name, (int)q->nparams,
                               q->nparams ? p->values : NULL, q->nparams ? p->lengths : NULL,
                               q->nparams ? p->formats : NULL, 0);
}

static int send_parse(evdb__dconn *dc, evdb__query *q, pg_stmt *st)
{
    size_t n = stmt_nparams(q);
    if (st->state == PGS_NEW)
        st->state = PGS_PREPARING;
    return PQsendPrepare(dc->conn, st->name, q->sql, (int)n, n ? dc->params.types : NULL);
}

/* What runs q once its statement is known: Bind/Execute of st or of the
 * unnamed statement; for a prepare request, a Describe of st (its answer,
 * the statement's columns, is the request's result). */
static int send_exec(evdb__dconn *dc, evdb__query *q, pg_stmt *st)
{
    if (q->flags & EVDB__QUERY_PREPARE)
        return PQsendDescribePrepared(dc->conn, st->name);
    return st ? send_prepared(dc, q, st) : send_params(dc, q);
}

/* A statement that must be Parsed before q runs on it: none in the cache
 * yet, or one that an invalidation renewed. */
static bool needs_parse(bool cacheable, const pg_stmt *st)
{
    return cacheable && (!st || st->state == PGS_NEW);
}

/* "DEALLOCATE name" for st (and its chain, ';'-separated). */
static const char *dealloc_sql(evdb__dconn *dc, pg_stmt *st)
{
    size_t need = 1;
    for (pg_stmt *s = st; s; s = s->next)
        need += sizeof "DEALLOCATE ;" + strlen(s->name);
    if (need > dc->dealloc_cap) {
        char *b = evdb__realloc(dc->dealloc_sql, need);
        if (!b)
            return NULL;
        dc->dealloc_sql = b;
        dc->dealloc_cap = need;
    }
    size_t off = 0;
    for (pg_stmt *s = st; s; s = s->next)
        off += (size_t)snprintf(dc->dealloc_sql + off, need - off, "%sDEALLOCATE %s",
                                off ? ";" : "", s->name);
    return dc->dealloc_sql;
}

/* Pipeline mode: DEALLOCATEs of evicted statements at the head of a new
 * group, never while a transaction block may be open (a failing
 * DEALLOCATE would abort the user's transaction). */
static int send_deallocs(evdb__dconn *dc, evdb_error *err)
{
    for (int i = 0; i < DEALLOC_PER_GROUP && dc->cache.zhead && !dc->send_tx; i++) {
        if (!grow_ring(dc, 1))
            return no_memory(err);
        pg_stmt *st = evdb__pg_cache_zombie_pop(&dc->cache);
        const char *sql = dealloc_sql(dc, st);
        if (!sql) {
            evdb__pg_cache_zombie_push(&dc->cache, st);
            return no_memory(err);
        }
        if (!PQsendQueryParams(dc->conn, sql, 0, NULL, NULL, NULL, NULL, 0)) {
            evdb__pg_cache_zombie_push(&dc->cache, st);
            return send_failed(dc, err);
        }
        ring_push(dc, PGK_DEALLOC, NULL, st);
        dc->group_open = true;
    }
    return 0;
}

static int sync(evdb__dconn *dc, evdb_error *err)
{
    if (!grow_ring(dc, 1))
        return no_memory(err);
    if (!PQpipelineSync(dc->conn))
        return send_failed(dc, err);
    ring_push(dc, PGK_SYNC, NULL, NULL);
    dc->group_open = false;
    return 0;
}

static void send_tx_after(evdb__dconn *dc, const evdb__query *q)
{
    switch (txe_of(q)) {
    case PG_TXE_BEGIN:
    case PG_TXE_CHAIN:
    case PG_TXE_ROLLBACK_TO:
        dc->send_tx = true;
        break;
    case PG_TXE_END:
        dc->send_tx = false;
        break;
    default:
        break;
    }
}

/* Put q on the wire through the extended protocol: Parse + Bind/Execute
 * of a cached statement, Bind/Execute of one, or the unnamed statement. */
static int send_extended(evdb__dconn *dc, evdb__query *q, bool cacheable, pg_stmt *st,
                         uint64_t hash, evdb_error *err)
{
    if (!grow_ring(dc, 2))
        return no_memory(err);
    if (needs_parse(cacheable, st)) {
        size_t n = stmt_nparams(q);
        if (!st)
            st = evdb__pg_cache_add(&dc->cache, hash, q->sql, q->sql_len, n,
                                    n ? dc->params.types : NULL);
        if (st) {
            if (!send_parse(dc, q, st))
                return send_failed(dc, err);
            ring_push(dc, PGK_PREPARE, q, st);
            q->drv_state |= PGQ_PARSED;
        }
    }
    if (q->flags & EVDB__QUERY_PREPARE) {
        if (!st)
            return no_memory(err);
        evdb__pg_cache_pin(&dc->cache, st);
    }
    if (!send_exec(dc, q, st))
        return send_failed(dc, err);
    ring_push(dc, PGK_QUERY, q, st);
    q->drv_state |= PGQ_WIRE;
    return 0;
}

/* A request of evdb_conn_prepare / evdb_conn_unprepare at the head of
 * pend, classified and looked up by prepare_query (st: its cached
 * statement). Answers it here (pops and reports it) and returns true,
 * except for a prepare that goes on the wire (false): Parse when needed,
 * then Describe. Reporting from here is allowed: push runs in flush and
 * io, never in send. */
static bool answer_special(evdb__dconn *dc, evdb__query *q, bool cacheable, pg_stmt *st,
                           evdb_error *err)
{
    if (!dc->cache_on) {
        pend_pop(dc);
        report_code(dc, q, err, EVDB_ENOTSUP, NULL,
                    "the statement cache is off on this connection (EVDB_STMT_CACHE_OFF): "
                    "there is nowhere to keep a prepared statement");
        return true;
    }
    if (!cacheable) {
        pend_pop(dc);
        report_code(dc, q, err, EVDB_EINVAL, NULL,
                    "transaction control, CALL, DO, COPY and strings of several statements "
                    "are never prepared");
        return true;
    }
    if (q->flags & EVDB__QUERY_PREPARE)
        return false;
    /* Unprepare: out of the cache; a statement the server has is
     * DEALLOCATEd ahead of a later group (or with the next batch of
     * evicted ones without pipelining). One whose Parse is still on the
     * wire is only unpinned: it is evicted like any other. */
    bool found = st != NULL;
    if (st) {
        evdb__pg_cache_unpin(&dc->cache, st);
        if (st->state == PGS_READY)
            evdb__pg_cache_drop(&dc->cache, st, true);
        else if (st->state == PGS_NEW)
            evdb__pg_cache_drop(&dc->cache, st, false);
    }
    pend_pop(dc);
    evdb_result *r = NULL;
    evdb__rbuild *b = evdb__rbuild_new(0);
    if (b) {
        evdb__rbuild_set_affected(b, found ? 1 : 0);
        if (evdb__rbuild_set_command(b, "DEALLOCATE"))
            evdb__rbuild_free(b);
        else
            r = evdb__rbuild_finish(b);
    }
    if (r)
        report_done(dc, q, r);
    else
        report_code(dc, q, err, EVDB_ENOMEM, NULL, "out of memory");
    return true;
}

/* What prepare_query found out about the query about to be sent. */
typedef struct pg_prep {
    bool cacheable;
    pg_stmt *hit;
    uint64_t hash;
} pg_prep;

/* The front pending query, prepared for sending (*out, still pending), or
 * *out NULL when none is left. On the way, cancelled queries are reported
 * and prepare requests the cache can answer are answered. 0 or
 * EVDB__STEP_FAIL (no memory). */
static int next_sendable(evdb__dconn *dc, evdb__query **out, pg_prep *pp, evdb_error *err)
{
    *out = NULL;
    while (dc->plen) {
        evdb__query *q = pend_front(dc);
        if (q->cancel_requested) {
            pend_pop(dc);
            report_code(dc, q, err, EVDB_ECANCELED, NULL, "cancelled before it was sent");
            continue;
        }
        pp->hash = 0;
        if (prepare_query(dc, q, &pp->cacheable, &pp->hit, &pp->hash))
            return no_memory(err);
        if ((q->flags & PG_SPECIAL) && answer_special(dc, q, pp->cacheable, pp->hit, err))
            continue;
        *out = q;
        break;
    }
    return 0;
}

static int push_pipeline(evdb__dconn *dc, evdb_error *err)
{
    for (;;) {
        evdb__query *q;
        pg_prep pp;
        if (next_sendable(dc, &q, &pp, err))
            return EVDB__STEP_FAIL;
        if (!q)
            break;
        unsigned cls = (unsigned)q->drv_state;
        /* A barrier: everything sent before must be answered first. For
         * multi-statement strings and COPY because pipeline mode must be
         * left; for BEGIN (and any transaction control sent outside a
         * block) because a failed autocommit group before it re-sends its
         * queries, which must not land inside the new block. Inside a
         * block nothing is re-sent, so COMMIT / ROLLBACK / SAVEPOINT just
         * follow the block's queries. */
        bool barrier = (cls & (PGQ_SIMPLE | PGQ_REPARSE)) ||
                       ((cls & PGQ_TXCTL) && (txe_of(q) == PG_TXE_BEGIN || !dc->send_tx));
        if (barrier && dc->rlen)
            break;
        if (cls & PGQ_SIMPLE) {
            if (!grow_ring(dc, 1))
                return no_memory(err);
            if (!PQexitPipelineMode(dc->conn))
                return send_failed(dc, err);
            dc->in_pipeline = false;
            if (!PQsendQuery(dc->conn, q->sql))
                return send_failed(dc, err);
            pend_pop(dc);
            ring_push(dc, PGK_MULTI, q, NULL);
            q->drv_state |= PGQ_WIRE | PGQ_SENT_ALONE;
            return 0; /* the rest waits until it is done */
        }
        bool alone = (cls & (PGQ_TXCTL | PGQ_ALONE | PGQ_OWNTX)) ||
                     (q->flags & EVDB_QUERY_NO_PIPELINE);
        if (alone && dc->group_open && sync(dc, err))
            return EVDB__STEP_FAIL;
        if (!alone && !dc->group_open && send_deallocs(dc, err))
            return EVDB__STEP_FAIL;
        if (send_extended(dc, q, pp.cacheable, pp.hit, pp.hash, err))
            return EVDB__STEP_FAIL;
        pend_pop(dc);
        send_tx_after(dc, q);
        if (alone) {
            q->drv_state |= PGQ_SENT_ALONE;
            if (sync(dc, err))
                return EVDB__STEP_FAIL;
        } else {
            dc->group_open = true;
        }
    }
    if (dc->group_open && sync(dc, err))
        return EVDB__STEP_FAIL;
    return 0;
}

/* Pipeline off: the statements waiting for DEALLOCATE go in one round
 * trip ("DEALLOCATE a;DEALLOCATE b"). */
static int send_dealloc_batch(evdb__dconn *dc, evdb_error *err)
{
    if (!grow_ring(dc, 1))
        return no_memory(err);
    pg_stmt *head = NULL, *tail = NULL;
    while (dc->cache.zhead) {
        pg_stmt *st = evdb__pg_cache_zombie_pop(&dc->cache);
        st->next = NULL;
        if (tail)
            tail->next = st;
        else
            head = st;
        tail = st;
    }
    ring_push(dc, PGK_DEALLOC, NULL, head);
    const char *sql = dealloc_sql(dc, head);
    if (!sql || !PQsendQuery(dc->conn, sql)) {
        /* Take the entry back: the statements return to the queue. */
        dc->rlen--;
        release_stmts(dc, ring_at(dc, dc->rlen), false);
        return sql ? send_failed(dc, err) : no_memory(err);
    }
    return 0;
}

/* Pipeline off: one command at a time. */
static int push_single(evdb__dconn *dc, evdb_error *err)
{
    while (dc->rlen == 0 && dc->plen) {
        if (dc->cache.nzombies >= DEALLOC_BATCH_SINGLE && !dc->send_tx)
            return send_dealloc_batch(dc, err);
        evdb__query *q;
        pg_prep pp;
        if (next_sendable(dc, &q, &pp, err))
            return EVDB__STEP_FAIL;
        if (!q)
            break;
        bool cacheable = pp.cacheable;
        pg_stmt *st = pp.hit;
        uint64_t hash = pp.hash;
        if (!grow_ring(dc, 1))
            return no_memory(err);
        q->drv_state |= PGQ_SENT_ALONE;
        bool prep = (q->flags & EVDB__QUERY_PREPARE) != 0;
        if (q->drv_state & PGQ_SIMPLE) {
            if (!PQsendQuery(dc->conn, q->sql))
                return send_failed(dc, err);
            pend_pop(dc);
            ring_push(dc, PGK_MULTI, q, NULL);
        } else if (needs_parse(cacheable, st)) {
            /* First use: Parse now, Bind/Execute (or Describe) once it is
             * confirmed. */
            size_t n = stmt_nparams(q);
            if (!st)
                st = evdb__pg_cache_add(&dc->cache, hash, q->sql, q->sql_len, n,
                                        n ? dc->params.types : NULL);
            if (st) {
                if (prep)
                    evdb__pg_cache_pin(&dc->cache, st);
                if (!send_parse(dc, q, st))
                    return send_failed(dc, err);
                ring_push(dc, PGK_PREPARE, q, st);
                q->drv_state |= PGQ_PARSED;
            } else if (prep) {
                return no_memory(err);
            } else if (!send_params(dc, q)) {
                return send_failed(dc, err);
            } else {
                ring_push(dc, PGK_QUERY, q, NULL);
            }
            pend_pop(dc);
        } else {
            /* A statement still PREPARING cannot be here (one command at a
             * time), but the unnamed statement is right for it anyway. A
             * prepare request always has its statement (it is cacheable). */
            if (st && st->state != PGS_READY && !prep)
                st = NULL;
            if (prep)
                evdb__pg_cache_pin(&dc->cache, st);
            if (!send_exec(dc, q, st))
                return send_failed(dc, err);
            pend_pop(dc);
            ring_push(dc, PGK_QUERY, q, st);
        }
        q->drv_state |= PGQ_WIRE;
        send_tx_after(dc, q);
    }
    return 0;
}

static int push(evdb__dconn *dc, evdb_error *err)
{
    if (!dc->pipeline)
        return push_single(dc, err);
    if (!dc->in_pipeline) {
        if (dc->rlen)
            return 0; /* a multi-statement string runs */
        if (!PQenterPipelineMode(dc->conn))
            return send_failed(dc, err);
        dc->in_pipeline = true;
    }
    return push_pipeline(dc, err);
}

/* --------------------------------------------------------------- receiving */

static int conn_lost(evdb__dconn *dc, evdb_error *err, const char *what)
{
    if (dc->fatal_msg[0]) {
        /* The server said why before it closed the socket. */
        evdb__error_set(err, EVDB_ECONNLOST, 0, dc->fatal_state,
                        "%s: the server ended the session: %s", what, dc->fatal_msg);
        evdb__error_diag(err, EVDB__DIAG_SEVERITY, "FATAL");
        return EVDB__STEP_FAIL;
    }
    const char *msg = PQerrorMessage(dc->conn);
    evdb__error_set(err, EVDB_ECONNLOST, 0, NULL, "%s: %s", what,
                    msg && *msg ? msg : "the server closed the connection");
    return EVDB__STEP_FAIL;
}

/* The server ends the session after this error (FATAL): the connection is
 * lost for every query in flight, this one included. */
static int conn_fatal(evdb__dconn *dc, const PGresult *res, evdb_error *err)
{
    evdb__pg_error_from_result(err, res);
    char msg[400];
    snprintf(msg, sizeof msg, "%s", evdb_error_message(err));
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    evdb__error_set(err, EVDB_ECONNLOST, 0, state, "the server ended the session: %s", msg);
    evdb__pg_error_diag(err, res);
    (void)dc;
    return EVDB__STEP_FAIL;
}

static void reset_cur(evdb__dconn *dc)
{
    evdb__result_free(dc->cur);
    dc->cur = NULL;
    evdb__rbuild_free(dc->cur_rows);
    dc->cur_rows = NULL;
    dc->cur_got = false;
    dc->cur_oom = false;
    dc->cur_toobig = false;
    dc->cur_rowmode_tried = false;
    dc->cur_copy_out = false;
    dc->cur_copy_err = false;
}

static bool is_ok_status(ExecStatusType st)
{
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY;
}

/* A statement that drops every prepared statement of the session. */
static void watch_tag(evdb__dconn *dc, const PGresult *res)
{
    const char *tag = PQcmdStatus((PGresult *)res);
    /* The first letter first: this runs for every result. */
    if (tag && tag[0] == 'D' && (!strcmp(tag, "DISCARD ALL") || !strcmp(tag, "DEALLOCATE ALL")))
        evdb__pg_cache_forget_all(&dc->cache);
}

/* What the entry's answer holds so far, against max_result. */
static bool over_limit(const evdb__dconn *dc, const evdb_result *r)
{
    size_t n = evdb__result_size(dc->cur) + evdb__result_size(r);
    if (dc->cur_rows)
        n += evdb__rbuild_size(dc->cur_rows);
    return n > dc->max_result;
}

/* Past max_result: drop everything kept, and the rows still to come. */
static void drop_too_big(evdb__dconn *dc)
{
    dc->cur_toobig = true;
    dc->cur_oom = true;
    evdb__result_free(dc->cur);
    dc->cur = NULL;
    evdb__rbuild_free(dc->cur_rows);
    dc->cur_rows = NULL;
}

/* One row in single-row mode (only used with max_result set). */
static void on_row(evdb__dconn *dc, pg_ent *e, const PGresult *res)
{
    if (!e->q || dc->cur_oom)
        return;
    if (evdb__pg_rows_add(&dc->cur_rows, res)) {
        dc->cur_oom = true;
        evdb__rbuild_free(dc->cur_rows);
        dc->cur_rows = NULL;
    } else if (over_limit(dc, NULL)) {
        drop_too_big(dc);
    }
}

static int on_query_result(evdb__dconn *dc, pg_ent *e, const PGresult *res, evdb_error *err)
{
    ExecStatusType st = PQresultStatus(res);
    dc->cur_got = true;
    if (st == PGRES_SINGLE_TUPLE) {
        on_row(dc, e, res);
        return 0;
    }
    if (is_ok_status(st)) {
        watch_tag(dc, res);
        if (!e->q || dc->cur_toobig)
            return 0;
        e->q->drv_state &= ~PGQ_WIRE;
        evdb_result *r;
        if (dc->cur_rows) {
            /* The end of a statement's rows in single-row mode. */
            r = evdb__pg_rows_finish(dc->cur_rows, res);
            dc->cur_rows = NULL;
        } else {
            r = evdb__pg_result_build(res, e->st ? &e->st->cols : NULL);
        }
        if (r && dc->max_result && over_limit(dc, r)) {
            /* Single-row mode could not be set: caught only now. */
            evdb__result_free(r);
            drop_too_big(dc);
        } else if (!r) {
            dc->cur_oom = true;
        } else if (e->kind == PGK_MULTI && dc->cur) {
            evdb__result_append(dc->cur, r);
        } else if (dc->cur) {
            evdb__result_free(r); /* one result per extended query */
        } else {
            dc->cur = r;
        }
        return 0;
    }
    switch (st) {
    case PGRES_PIPELINE_ABORTED:
        if (e->q) {
            settle(dc, e->q, e->st, OUT_ABORTED, NULL, res, err);
            e->q = NULL;
        }
        return 0;
    case PGRES_COPY_IN:
        dc->cur_copy_err = true;
        if (PQputCopyEnd(dc->conn, "COPY FROM STDIN is not supported by evdb") < 0)
            return conn_lost(dc, err, "COPY");
        return 0;
    case PGRES_COPY_OUT:
        dc->cur_copy_err = true;
        dc->cur_copy_out = true;
        return 0;
    case PGRES_COPY_BOTH:
        evdb__error_set(err, EVDB_EPROTO, 0, NULL,
                        "the server started a COPY BOTH (replication) stream: not supported");
        return EVDB__STEP_FAIL;
    default:
        break;
    }
    /* PGRES_FATAL_ERROR and anything unexpected. */
    if (evdb__pg_error_is_fatal(res) || PQstatus(dc->conn) == CONNECTION_BAD)
        return conn_fatal(dc, res, err);
    if (e->q) {
        evdb__result_free(dc->cur);
        dc->cur = NULL;
        evdb__rbuild_free(dc->cur_rows);
        dc->cur_rows = NULL;
        settle(dc, e->q, e->st, OUT_ERR, NULL, res, err);
        e->q = NULL;
    } else {
        /* Its query was reported at its Parse. */
        if (dc->in_pipeline && !dc->rg_txn)
            dc->rg_failed = true;
    }
    return 0;
}

static int on_prepare_result(evdb__dconn *dc, pg_ent *e, const PGresult *res, evdb_error *err)
{
    ExecStatusType st = PQresultStatus(res);
    pg_stmt *s = e->st;
    dc->cur_got = true;
    if (st == PGRES_COMMAND_OK) {
        if (s->state == PGS_PREPARING)
            s->state = PGS_READY;
        return 0;
    }
    /* Not created: aborted by an earlier error (a pinned statement keeps
     * its pin for the next try), or the Parse failed (nothing to keep:
     * a failed evdb_conn_prepare pins nothing). */
    if (st == PGRES_PIPELINE_ABORTED) {
        evdb__pg_cache_invalidate(&dc->cache, s, false);
        return 0; /* the query's own entry is aborted as well */
    }
    evdb__pg_cache_drop(&dc->cache, s, false);
    if (evdb__pg_error_is_fatal(res) || PQstatus(dc->conn) == CONNECTION_BAD)
        return conn_fatal(dc, res, err);
    if (e->q) {
        /* The Parse error is the query's error. Its Bind/Execute entry
         * (next in the ring, pipeline mode) will be aborted: orphan it. */
        evdb__query *q = e->q;
        e->q = NULL;
        if (dc->rlen > 1 && ring_at(dc, 1)->q == q)
            ring_at(dc, 1)->q = NULL;
        settle(dc, q, NULL, OUT_ERR, NULL, res, err);
    }
    return 0;
}

static int on_dealloc_result(evdb__dconn *dc, pg_ent *e, const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    dc->cur_got = true;
    pg_stmt *s = e->st;
    while (s && s->state != PGS_DEALLOC)
        s = s->next;
    if (st == PGRES_COMMAND_OK) {
        if (s)
            s->state = PGS_DEAD;
        return 0;
    }
    if (st == PGRES_PIPELINE_ABORTED)
        return 0; /* still on the server: queued again when popped */
    if (evdb__pg_error_is_fatal(res) || PQstatus(dc->conn) == CONNECTION_BAD)
        return EVDB__STEP_FAIL;
    /* 26000: the server does not have it. Anything else: forget it rather
     * than retry forever (at worst the server keeps one statement). The
     * ones after it in a batch did not run: release_stmts queues them
     * again. */
    if (s)
        s->state = PGS_DEAD;
    if (dc->in_pipeline && !dc->rg_txn)
        dc->rg_failed = true;
    return 0;
}

/* The head entry's results are drained (PQgetResult gave NULL). */
static int on_complete(evdb__dconn *dc, evdb_error *err)
{
    pg_ent *e = ring_at(dc, 0);
    evdb__query *q = e->q;
    pg_stmt *st = e->st;
    enum pg_kind kind = e->kind;
    e->q = NULL;
    if (kind == PGK_PREPARE) {
        ring_pop(dc);
        reset_cur(dc);
        /* In pipeline mode the Bind/Execute went out with the Parse. With
         * the pipeline off it goes now that the Parse is confirmed. */
        if (!q || dc->in_pipeline) {
        } else if (q->cancel_requested) {
            report_code(dc, q, err, EVDB_ECANCELED, NULL, "cancelled before it was executed");
        } else {
            if (evdb__pg_params_encode(&dc->params, q) || !grow_ring(dc, 1))
                return no_memory(err);
            if (!send_exec(dc, q, st))
                return send_failed(dc, err);
            ring_push(dc, PGK_QUERY, q, st);
        }
        return 0;
    }
    if ((kind == PGK_QUERY || kind == PGK_MULTI) && q) {
        evdb_result *r = dc->cur;
        dc->cur = NULL;
        if (dc->cur_oom) {
            evdb__result_free(r);
            r = NULL;
        }
        settle(dc, q, st, OUT_OK, r, NULL, err);
    }
    ring_pop(dc);
    reset_cur(dc);
    if (!dc->in_pipeline && dc->rlen == 0) {
        /* Pipeline off and nothing in flight: libpq's transaction status
         * is exact. */
        tx_from_libpq(dc);
        dc->send_tx = dc->tx != PG_TX_IDLE;
        dc->rg_txn = dc->send_tx;
    }
    return 0;
}

static int receive(evdb__dconn *dc, evdb_error *err)
{
    while (dc->rlen) {
        if (dc->cur_copy_out) {
            char *buf;
            int n = PQgetCopyData(dc->conn, &buf, 1);
            while (n > 0) {
                PQfreemem(buf);
                n = PQgetCopyData(dc->conn, &buf, 1);
            }
            if (n == 0)
                break; /* more data to come */
            if (n == -2)
                return conn_lost(dc, err, "reading COPY data");
            dc->cur_copy_out = false;
        }
        pg_ent *e = ring_at(dc, 0);
        if (dc->max_result && !dc->cur_rowmode_tried &&
            (e->kind == PGK_QUERY || e->kind == PGK_MULTI)) {
            /* Before anything of its answer is parsed (PQisBusy parses):
             * rows then come one by one and a result past the limit is
             * dropped as it arrives. When libpq refuses (rows were parsed
             * already), the whole result is checked once it is in. */
            dc->cur_rowmode_tried = true;
            (void)PQsetSingleRowMode(dc->conn);
        }
        if (PQisBusy(dc->conn))
            break;
        PGresult *res = PQgetResult(dc->conn);
        if (e->kind == PGK_SYNC) {
            if (!res)
                break; /* nothing there yet; never spin on NULL */
            ExecStatusType st = PQresultStatus(res);
            if (st != PGRES_PIPELINE_SYNC) {
                bool fatal = evdb__pg_error_is_fatal(res) ||
                             PQstatus(dc->conn) == CONNECTION_BAD;
                int rc = fatal ? conn_fatal(dc, res, err) : EVDB__STEP_FAIL;
                if (!fatal)
                    evdb__error_set(err, EVDB_EPROTO, 0, NULL,
                                    "expected a pipeline sync from libpq, got %s",
                                    PQresStatus(st));
                PQclear(res);
                return rc;
            }
            PQclear(res);
            ring_pop(dc);
            on_sync(dc, err);
            continue;
        }
        if (res) {
            int rc;
            switch (e->kind) {
            case PGK_PREPARE:
                rc = on_prepare_result(dc, e, res, err);
                break;
            case PGK_DEALLOC:
                rc = on_dealloc_result(dc, e, res);
                if (rc)
                    rc = conn_fatal(dc, res, err);
                break;
            default:
                rc = on_query_result(dc, e, res, err);
                break;
            }
            PQclear(res);
            if (rc)
                return rc;
            continue;
        }
        if (!dc->cur_got) {
            if (PQstatus(dc->conn) == CONNECTION_BAD)
                return conn_lost(dc, err, "connection lost");
            evdb__error_set(err, EVDB_EPROTO, 0, NULL,
                            "libpq ended a command without any result");
            return EVDB__STEP_FAIL;
        }
        if (on_complete(dc, err))
            return EVDB__STEP_FAIL;
        if (!dc->in_pipeline && dc->rlen == 0 && push(dc, err))
            return EVDB__STEP_FAIL;
    }
    return 0;
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
        return conn_lost(dc, err, "sending to the server");
    dc->want_write = r == 1;
    if (PQstatus(dc->conn) == CONNECTION_BAD)
        return conn_lost(dc, err, "connection lost");
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
    if (rc)
        return rc;
    if (!grow_pend(dc, dc->inflight + 1) || !grow_held(dc, dc->inflight + 1)) {
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
    if (push(dc, err))
        return failed(dc, EVDB__STEP_FAIL);
    return failed(dc, next_wait(dc, w, err));
}

int evdb__pg_io(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err)
{
    if (!dc->conn) {
        evdb__error_set(err, EVDB_ECLOSED, 0, NULL, "the connection is closed");
        return EVDB__STEP_FAIL;
    }
    if ((revents & EVDB__EV_READ) && !PQconsumeInput(dc->conn))
        return failed(dc, conn_lost(dc, err, "reading from the server"));
    if ((revents & EVDB__EV_WRITE) || dc->want_write) {
        int r = PQflush(dc->conn);
        if (r < 0)
            return failed(dc, conn_lost(dc, err, "sending to the server"));
        dc->want_write = r == 1;
    }
    if (receive(dc, err) || push(dc, err))
        return failed(dc, EVDB__STEP_FAIL);
    /* evdb has no LISTEN API yet: drop notifications rather than let them
     * pile up inside libpq. Only now: PQnotifies parses input, and rows
     * parsed before receive() could set single-row mode would make libpq
     * refuse it. */
    for (PGnotify *n = PQnotifies(dc->conn); n; n = PQnotifies(dc->conn))
        PQfreemem(n);
    return failed(dc, next_wait(dc, w, err));
}

bool evdb__pg_query_on_wire(const evdb__query *q)
{
    return (q->drv_state & PGQ_WIRE) != 0;
}

void evdb__pg_pipeline_forget(evdb__dconn *dc)
{
    for (size_t i = 0; i < dc->nheld; i++)
        evdb__result_free(dc->held[i].r);
    dc->nheld = 0;
    while (dc->rlen) {
        release_stmts(dc, ring_at(dc, 0), true);
        dc->rhead = (dc->rhead + 1) & (dc->rcap - 1);
        dc->rlen--;
    }
    reset_cur(dc);
    dc->plen = 0;
    dc->phead = 0;
    dc->inflight = 0;
    dc->group_open = false;
    dc->rg_failed = false;
}
