/*
 * send / flush / io: queries onto the wire and answers back, each query
 * with the semantics it would have alone (DESIGN.md section 3).
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
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "pg_internal.h"

/* DEALLOCATEs sent ahead of one query at most (with a Sync of their own). */
#define DEALLOC_PER_GROUP 16
/* Without pipelining a DEALLOCATE costs a round trip: batch them. */
#define DEALLOC_BATCH_SINGLE 8

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
static pg_ent *ring_push(evdb__dconn *dc, enum pg_kind kind, evdb__query *q, pg_stmt *st)
{
    pg_ent *e = ring_at(dc, dc->rlen++);
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

/* q's answer is settled: its entries still in the ring (they follow the
 * head, up to its Sync) must not report it again. */
static void detach(evdb__dconn *dc, const evdb__query *q)
{
    for (size_t i = 0; i < dc->rlen && ring_at(dc, i)->q == q; i++)
        ring_at(dc, i)->q = NULL;
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

/* ----------------------------------------------------- transaction state */

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
    D_REPORT,           /* fail the query with the server's error */
    D_RETRY_STALE,      /* its cached statement went stale: parse afresh, run again */
    D_RETRY_CANCEL,     /* hit by a cancel meant for another query: run again */
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
        if (in_block || (q->drv_state & (PGQ_OWNTX | PGQ_SIMPLE)) ||
            retries(q) >= PG_MAX_CANCEL_RETRIES)
            return D_REPORT_COLLATERAL;
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
            if (!in_block && retries(q) < PG_MAX_RETRIES)
                return D_RETRY_STALE;
        }
    }
    return D_REPORT;
}

/* Prepare q for another attempt. */
static void mark_retry(evdb__query *q, bool reparse)
{
    unsigned s = (unsigned)q->drv_state;
    unsigned n = retries(q) + 1;
    s &= ~(unsigned)(PGQ_WIRE | PGQ_RETRY_MASK);
    s |= n << PGQ_RETRY_SHIFT;
    if (reparse)
        s |= PGQ_REPARSE;
    q->drv_state = (int)s;
}

static const char collateral_msg[] =
    "canceling statement due to user request: the cancel was meant for an earlier query "
    "that timed out or was cancelled; this statement did not take effect, and it was not "
    "re-run because the transaction block it ran in is now aborted";

static const char collateral_own_msg[] =
    "canceling statement due to user request: the cancel was meant for an earlier query "
    "that timed out or was cancelled; this statement was not re-run because it may have "
    "committed part of its work (CALL, DO or several statements)";

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
        evdb__error_set(err, code, 0, state, "batch of %zu statements, at commit: %s",
                        q->nbatch, msg);
    evdb__pg_error_diag(err, res);
}

/* q's command failed with res: report it, or re-queue it when it provably
 * took no effect and the failure was not its own doing. Its other entries
 * and held results are dropped either way. */
static void fail_query(evdb__dconn *dc, evdb__query *q, pg_stmt *st, bool parsed, uint32_t idx,
                       const PGresult *res, evdb_error *err)
{
    detach(dc, q);
    evdb__result_free(dc->held);
    dc->held = NULL;
    dc->held_oom = dc->held_toobig = false;
    q->drv_state &= ~PGQ_WIRE;
    enum disposition d = error_policy(dc, q, st, parsed, res);
    tx_after_error(dc, q);
    if (d == D_RETRY_STALE || d == D_RETRY_CANCEL) {
        mark_retry(q, d == D_RETRY_STALE);
        pend_push_front(dc, q);
        return;
    }
    if (d == D_REPORT_COLLATERAL) {
        bool own = (q->drv_state & (PGQ_OWNTX | PGQ_SIMPLE)) != 0;
        evdb__error_set(err, EVDB_ESERVER, 0, "57014", "%s",
                        own ? collateral_own_msg : collateral_msg);
        report_failed(dc, q, err);
        return;
    }
    evdb__pg_error_from_result(err, res);
    if (q->nbatch)
        batch_error(err, q, idx, res);
    report_failed(dc, q, err);
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

/* Statements never kept in the cache: only plain ones are, which is what
 * lets a cache hit skip the lexer. */
#define PGQ_UNCACHED (PGQ_SIMPLE | PGQ_TXCTL | PGQ_OWNTX | PGQ_DDL)

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
                       !(q->drv_state & PGQ_UNCACHED))) {
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
    if (q->drv_state & PGQ_UNCACHED)
        *cacheable = false;
    return 0;
}

static int send_params(evdb__dconn *dc, const evdb__query *q)
{
    pg_params *p = &dc->params;
    return PQsendQueryParams(dc->conn, q->sql, (int)q->nparams, q->nparams ? p->types : NULL,
                             q->nparams ? p->values : NULL, q->nparams ? p->lengths : NULL,
                             q->nparams ? p->formats : NULL, 0);
}

static int send_prepared(evdb__dconn *dc, const evdb__query *q, pg_stmt *st)
{
    pg_params *p = &dc->params;
    return PQsendQueryPrepared(dc->conn, st->name, (int)q->nparams,
                               q->nparams ? p->values : NULL, q->nparams ? p->lengths : NULL,
                               q->nparams ? p->formats : NULL, 0);
}

static int send_parse(evdb__dconn *dc, const evdb__query *q, pg_stmt *st)
{
    size_t n = stmt_nparams(q);
    if (st->state == PGS_NEW)
        st->state = PGS_PREPARING;
    return PQsendPrepare(dc->conn, st->name, q->sql, (int)n, n ? dc->params.types : NULL);
}

/* What runs q once its statement is known: Bind/Execute of st or of the
 * unnamed statement; for a prepare request, a Describe of st (its answer,
 * the statement's columns, is the request's result). */
static int send_exec(evdb__dconn *dc, const evdb__query *q, pg_stmt *st)
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

/* End the commands sent since the last Sync: one implicit transaction. q
 * is the query (or batch) they belong to, NULL for DEALLOCATEs. libpq
 * 17's PQsendPipelineSync leaves the flush to us (next_wait), so Syncs of
 * several queries share a write; libpq 15's PQpipelineSync flushes every
 * time (hence the cork around a push). */
static int sync(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (!grow_ring(dc, 1))
        return no_memory(err);
#ifdef LIBPQ_HAS_SEND_PIPELINE_SYNC
    if (!PQsendPipelineSync(dc->conn))
#else
    if (!PQpipelineSync(dc->conn))
#endif
        return send_failed(dc, err);
    ring_push(dc, PGK_SYNC, q, NULL);
    return 0;
}

/* Pipeline mode: DEALLOCATEs of evicted statements, as a group with a
 * Sync of its own, never while a transaction block may be open (a
 * failing DEALLOCATE would abort the user's transaction). */
static int send_deallocs(evdb__dconn *dc, evdb_error *err)
{
    if (!dc->cache.zhead || dc->send_tx)
        return 0;
    for (int i = 0; i < DEALLOC_PER_GROUP && dc->cache.zhead; i++) {
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
    }
    return sync(dc, NULL, err);
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

/* Put statement s on the wire through the extended protocol: Parse +
 * Bind/Execute of a cached statement, Bind/Execute of one, or the unnamed
 * statement. s is q itself, or one statement of q's batch (idx its
 * number); the entries report to q. dc->params holds s's parameters. */
static int send_extended(evdb__dconn *dc, evdb__query *q, const evdb__query *s, bool cacheable,
                         pg_stmt *st, uint64_t hash, uint32_t idx, evdb_error *err)
{
    if (!grow_ring(dc, 2))
        return no_memory(err);
    bool parsed = false;
    if (needs_parse(cacheable, st)) {
        size_t n = stmt_nparams(s);
        if (!st)
            st = evdb__pg_cache_add(&dc->cache, hash, s->sql, s->sql_len, n,
                                    n ? dc->params.types : NULL);
        if (st) {
            if (!send_parse(dc, s, st))
                return send_failed(dc, err);
            ring_push(dc, PGK_PREPARE, q, st)->idx = idx;
            parsed = true;
        }
    }
    if (s->flags & EVDB__QUERY_PREPARE) {
        if (!st)
            return no_memory(err);
        evdb__pg_cache_pin(&dc->cache, st);
    }
    if (!send_exec(dc, s, st))
        return send_failed(dc, err);
    pg_ent *e = ring_push(dc, PGK_QUERY, q, st);
    e->idx = idx;
    e->flags = parsed ? ENT_PARSED : 0;
    q->drv_state |= PGQ_WIRE | PGQ_SENT;
    return 0;
}

/* The statements of batch q, each through send_extended (the Sync is the
 * caller's). Each is looked up in the statement cache like a query. */
static int send_batch(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    for (size_t i = 0; i < q->nbatch; i++) {
        const evdb__stmt *b = &q->batch[i];
        evdb__query s;
        memset(&s, 0, sizeof s);
        s.sql = b->sql;
        s.sql_len = b->sql_len;
        s.params = b->params;
        s.nparams = b->nparams;
        s.flags = q->flags & EVDB_QUERY_NO_CACHE;
        s.drv_state = q->drv_state & PGQ_REPARSE;
        bool cacheable;
        pg_stmt *hit;
        uint64_t hash = 0;
        if (prepare_query(dc, &s, &cacheable, &hit, &hash))
            return no_memory(err);
        if (send_extended(dc, q, &s, cacheable, hit, hash, (uint32_t)i + 1, err))
            return EVDB__STEP_FAIL;
    }
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
                    "transaction control, schema changes (ALTER, CREATE, DROP), CALL, DO, "
                    "COPY and strings of several statements are never prepared");
        return true;
    }
    if (q->flags & EVDB__QUERY_PREPARE)
        return false;
    /* Unprepare: out of the cache; a statement the server has is
     * DEALLOCATEd ahead of a later query (or with the next batch of
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

static const char pooled_tx_msg[] =
    "evdb_pool_query runs each query in autocommit mode on a shared connection, so it "
    "cannot open a transaction block; use evdb_pool_acquire (then evdb_conn_query and "
    "COMMIT/ROLLBACK, then evdb_conn_release) or evdb_pool_transaction";

/* Why q cannot run, or NULL: a pooled query that would open a block, a
 * batch statement that is not one plain statement. */
static const char *refusal(evdb__query *q, char *buf, size_t size)
{
    if (q->nbatch) {
        if (!(q->drv_state & PGQ_CLASSIFIED)) {
            for (size_t i = 0; i < q->nbatch; i++) {
                const evdb__stmt *b = &q->batch[i];
                unsigned cls = evdb__pg_sql_classify(b->sql, b->sql_len);
                if (b->nparams)
                    cls &= ~(unsigned)PGQ_SIMPLE;
                if (cls & (PGQ_TXCTL | PGQ_SIMPLE)) {
                    snprintf(buf, size,
                             "batch statement %zu of %zu: transaction control, COPY and strings "
                             "of several statements cannot be part of a batch (a batch is one "
                             "transaction already)",
                             i + 1, q->nbatch);
                    return buf;
                }
            }
            q->drv_state |= PGQ_CLASSIFIED;
        }
        return NULL;
    }
    /* A string of several statements may open and close its own block:
     * it is judged by where it leaves the session (rollback_pooled). */
    if (!(q->flags & EVDB__QUERY_AUTOCOMMIT) || !(q->drv_state & PGQ_TXCTL) ||
        (q->drv_state & PGQ_SIMPLE))
        return NULL;
    enum pg_txe t = txe_of(q);
    return t == PG_TXE_BEGIN || t == PG_TXE_CHAIN ? pooled_tx_msg : NULL;
}

/* What prepare_query found out about the query about to be sent. */
typedef struct pg_prep {
    bool cacheable;
    pg_stmt *hit;
    uint64_t hash;
} pg_prep;

/* The front pending query, prepared for sending (*out, still pending), or
 * *out NULL when none is left. On the way, cancelled and refused queries
 * are reported and prepare requests the cache can answer are answered.
 * A batch is only checked here (send_batch prepares its statements). 0
 * or EVDB__STEP_FAIL (no memory). */
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
        pp->hit = NULL;
        pp->cacheable = false;
        if (!q->nbatch && prepare_query(dc, q, &pp->cacheable, &pp->hit, &pp->hash))
            return no_memory(err);
        char buf[256];
        const char *why = refusal(q, buf, sizeof buf);
        if (why) {
            pend_pop(dc);
            report_code(dc, q, err, EVDB_EINVAL, NULL, why);
            continue;
        }
        if ((q->flags & PG_SPECIAL) && answer_special(dc, q, pp->cacheable, pp->hit, err))
            continue;
        *out = q;
        break;
    }
    return 0;
}

/* Cork the socket while a push writes several queries (libpq 15 flushes
 * at every Sync): the kernel then sends full packets. Not for a unix
 * socket (no TCP_CORK there: the first failure turns it off). */
static void cork(evdb__dconn *dc, int on)
{
#if defined(TCP_CORK) && !defined(LIBPQ_HAS_SEND_PIPELINE_SYNC)
    if (dc->cork_off)
        return;
    if (setsockopt(PQsocket(dc->conn), IPPROTO_TCP, TCP_CORK, &on, sizeof on) != 0)
        dc->cork_off = true;
#else
    (void)dc;
    (void)on;
#endif
}

static int push_pipeline(evdb__dconn *dc, evdb_error *err)
{
    bool corked = false;
    int rc = 0;
    for (;;) {
        if (dc->solo && dc->rlen)
            break; /* an EVDB_QUERY_NO_PIPELINE query runs alone */
        dc->solo = false;
        evdb__query *q;
        pg_prep pp;
        rc = next_sendable(dc, &q, &pp, err);
        if (rc || !q)
            break;
        unsigned cls = (unsigned)q->drv_state;
        /* A barrier: everything sent before must be answered first. For
         * multi-statement strings and COPY because pipeline mode must be
         * left; for BEGIN (and any transaction control sent outside a
         * block) because a stale-statement retry of an earlier query must
         * not land inside the new block; for a retry that parses afresh,
         * because the statements parsed before it may be stale too. */
        bool solo = (q->flags & EVDB_QUERY_NO_PIPELINE) || (cls & PGQ_DDL);
        bool barrier = solo || (cls & (PGQ_SIMPLE | PGQ_REPARSE)) ||
                       ((cls & PGQ_TXCTL) && (txe_of(q) == PG_TXE_BEGIN || !dc->send_tx));
        if (barrier && dc->rlen)
            break;
        if (cls & PGQ_SIMPLE) {
            if (!grow_ring(dc, 1)) {
                rc = no_memory(err);
                break;
            }
            if (!PQexitPipelineMode(dc->conn) || !PQsendQuery(dc->conn, q->sql)) {
                rc = send_failed(dc, err);
                break;
            }
            dc->in_pipeline = false;
            pend_pop(dc);
            pg_ent *e = ring_push(dc, PGK_MULTI, q, NULL);
            if (q->flags & EVDB__QUERY_AUTOCOMMIT)
                e->flags |= ENT_AUTOCOMMIT;
            q->drv_state |= PGQ_WIRE | PGQ_SENT;
            break; /* the rest waits until it is done */
        }
        if (!corked && dc->plen > 1) {
            cork(dc, 1);
            corked = true;
        }
        rc = send_deallocs(dc, err);
        if (!rc)
            rc = q->nbatch ? send_batch(dc, q, err)
                           : send_extended(dc, q, q, pp.cacheable, pp.hit, pp.hash, 0, err);
        if (!rc) {
            pend_pop(dc);
            send_tx_after(dc, q);
            rc = sync(dc, q, err);
        }
        if (rc)
            break;
        dc->solo = solo;
    }
    if (corked)
        cork(dc, 0);
    return rc;
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

/* Pipeline off: a batch still needs one Sync for all its statements, so
 * pipeline mode is entered for it alone (left again in push once it has
 * been answered). */
static int push_single_batch(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (!PQenterPipelineMode(dc->conn))
        return send_failed(dc, err);
    dc->in_pipeline = true;
    if (send_batch(dc, q, err))
        return EVDB__STEP_FAIL;
    pend_pop(dc);
    return sync(dc, q, err);
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
        if (q->nbatch)
            return push_single_batch(dc, q, err);
        bool cacheable = pp.cacheable;
        pg_stmt *st = pp.hit;
        uint64_t hash = pp.hash;
        if (!grow_ring(dc, 1))
            return no_memory(err);
        bool prep = (q->flags & EVDB__QUERY_PREPARE) != 0;
        if (q->drv_state & PGQ_SIMPLE) {
            if (!PQsendQuery(dc->conn, q->sql))
                return send_failed(dc, err);
            pend_pop(dc);
            pg_ent *e = ring_push(dc, PGK_MULTI, q, NULL);
            if (q->flags & EVDB__QUERY_AUTOCOMMIT)
                e->flags |= ENT_AUTOCOMMIT;
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
        q->drv_state |= PGQ_WIRE | PGQ_SENT;
        send_tx_after(dc, q);
    }
    return 0;
}

static int push(evdb__dconn *dc, evdb_error *err)
{
    if (!dc->pipeline) {
        if (dc->in_pipeline) {
            /* A batch ran in pipeline mode: leave it once answered. */
            if (dc->rlen)
                return 0;
            if (!PQexitPipelineMode(dc->conn))
                return send_failed(dc, err);
            dc->in_pipeline = false;
        }
        return push_single(dc, err);
    }
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

static bool session_ends(const evdb__dconn *dc, const PGresult *res)
{
    return evdb__pg_error_is_fatal(res) || PQstatus(dc->conn) == CONNECTION_BAD;
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

/* Statements that change what cached statements mean: DISCARD ALL and
 * DEALLOCATE ALL drop them all on the server; a schema change may change
 * their result types, so they are parsed again. */
static void watch_tag(evdb__dconn *dc, const PGresult *res)
{
    const char *tag = PQcmdStatus((PGresult *)res);
    /* The first letter first: this runs for every result. */
    if (!tag || (tag[0] != 'D' && tag[0] != 'A' && tag[0] != 'C'))
        return;
    if (!strcmp(tag, "DISCARD ALL") || !strcmp(tag, "DEALLOCATE ALL"))
        evdb__pg_cache_forget_all(&dc->cache);
    else if (!strncmp(tag, "ALTER ", 6) || !strncmp(tag, "CREATE ", 7) ||
             !strncmp(tag, "DROP ", 5))
        evdb__pg_cache_invalidate_all(&dc->cache);
}

/* What the query's answer holds so far (with the results of its batch's
 * earlier statements), against max_result. */
static bool over_limit(const evdb__dconn *dc, const evdb_result *r)
{
    size_t n = evdb__result_size(dc->cur) + evdb__result_size(r) + evdb__result_size(dc->held);
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
        /* An earlier command of the same Sync failed: for a query that was
         * already reported (a batch statement after the failing one, the
         * Bind/Execute after a failed Parse) e->q is NULL. Anything else
         * provably did not run: send it again. */
        if (e->q) {
            evdb__query *q = e->q;
            detach(dc, q);
            q->drv_state &= ~PGQ_WIRE;
            if (q->cancel_requested || retries(q) >= PG_MAX_RETRIES) {
                report_code(dc, q, err, EVDB_ESERVER, "25P02",
                            "not executed: an earlier command of its pipeline group failed");
            } else {
                mark_retry(q, false);
                pend_push_front(dc, q);
            }
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
    if (session_ends(dc, res))
        return conn_fatal(dc, res, err);
    evdb__result_free(dc->cur);
    dc->cur = NULL;
    evdb__rbuild_free(dc->cur_rows);
    dc->cur_rows = NULL;
    if (e->q) {
        if (dc->cur_copy_err) {
            evdb__query *q = e->q;
            detach(dc, q);
            q->drv_state &= ~PGQ_WIRE;
            tx_after_error(dc, q);
            report_code(dc, q, err, EVDB_ENOTSUP, NULL,
                        "COPY FROM STDIN / TO STDOUT is not supported by evdb");
        } else {
            fail_query(dc, e->q, e->st, (e->flags & ENT_PARSED) != 0, e->idx, res, err);
        }
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
    /* Not created: aborted by an earlier error of its batch (a pinned
     * statement keeps its pin for the next try), or the Parse failed
     * (nothing to keep: a failed evdb_conn_prepare pins nothing). */
    if (st == PGRES_PIPELINE_ABORTED) {
        evdb__pg_cache_invalidate(&dc->cache, s, false);
        return 0; /* the query's own entry is aborted as well */
    }
    evdb__pg_cache_drop(&dc->cache, s, false);
    if (session_ends(dc, res))
        return conn_fatal(dc, res, err);
    /* The Parse error is the query's error (its Bind/Execute, next in the
     * ring in pipeline mode, will be aborted and is detached). */
    if (e->q)
        fail_query(dc, e->q, NULL, true, e->idx, res, err);
    return 0;
}

static int on_dealloc_result(evdb__dconn *dc, pg_ent *e, const PGresult *res, evdb_error *err)
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
    if (session_ends(dc, res))
        return conn_fatal(dc, res, err);
    /* 26000: the server does not have it. Anything else: forget it rather
     * than retry forever (at worst the server keeps one statement). The
     * ones after it in a batch did not run: release_stmts queues them
     * again. */
    if (s)
        s->state = PGS_DEAD;
    return 0;
}

/* A rollback the driver sent itself: its answer is only checked. */
static int on_rollback_result(evdb__dconn *dc, const PGresult *res, evdb_error *err)
{
    dc->cur_got = true;
    if (PQresultStatus(res) == PGRES_FATAL_ERROR && session_ends(dc, res))
        return conn_fatal(dc, res, err);
    return 0;
}

/* Pipeline off, nothing in flight: a pooled multi-statement string left
 * the session inside a block. ROLLBACK goes before anything else; q (NULL
 * when its error was reported already) fails once it is done. 0 or
 * EVDB__STEP_FAIL. */
static int rollback_pooled(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (!grow_ring(dc, 1))
        return no_memory(err);
    if (!PQsendQuery(dc->conn, "ROLLBACK"))
        return send_failed(dc, err);
    ring_push(dc, PGK_ROLLBACK, q, NULL);
    dc->send_tx = false;
    return 0;
}

/* The results of the head entry are all in, for a query reported once
 * they are (pipeline off, or a multi-statement string). */
static int settle_now(evdb__dconn *dc, evdb__query *q, evdb_result *r, bool autocommit,
                      evdb_error *err)
{
    detach(dc, q); /* a COPY in pipeline mode: its Sync is still to come */
    q->drv_state &= ~PGQ_WIRE;
    if (dc->rlen == 0) {
        /* Nothing in flight: libpq's transaction status is exact. */
        tx_from_libpq(dc);
        dc->send_tx = dc->tx != PG_TX_IDLE;
    }
    if (autocommit && dc->tx != PG_TX_IDLE && dc->rlen == 0) {
        evdb__result_free(r);
        return rollback_pooled(dc, q, err);
    }
    if (dc->cur_copy_err) {
        /* COPY: the data went nowhere. The server may have committed it
         * (COPY FROM was refused by us, COPY TO only read). */
        evdb__result_free(r);
        report_code(dc, q, err, EVDB_ENOTSUP, NULL,
                    "COPY FROM STDIN / TO STDOUT is not supported by evdb");
        return 0;
    }
    if (!(q->drv_state & PGQ_SIMPLE))
        tx_after_ok(dc, q);
    if (r && !dc->cur_oom)
        report_done(dc, q, r);
    else {
        evdb__result_free(r);
        report_unstored(dc, q, dc->cur_toobig, err);
    }
    return 0;
}

/* The head entry's results are drained (PQgetResult gave NULL). */
static int on_complete(evdb__dconn *dc, evdb_error *err)
{
    pg_ent *e = ring_at(dc, 0);
    evdb__query *q = e->q;
    pg_stmt *st = e->st;
    enum pg_kind kind = e->kind;
    bool autocommit = (e->flags & ENT_AUTOCOMMIT) != 0;
    e->q = NULL;
    if (kind == PGK_PREPARE) {
        ring_pop(dc);
        reset_cur(dc);
        /* In pipeline mode the Bind/Execute went out with the Parse. With
         * the pipeline off it goes now that the Parse is confirmed. */
        if (!q || dc->in_pipeline) {
        } else if (q->cancel_requested) {
            q->drv_state &= ~PGQ_WIRE;
            report_code(dc, q, err, EVDB_ECANCELED, NULL, "cancelled before it was executed");
        } else {
            if (evdb__pg_params_encode(&dc->params, q) || !grow_ring(dc, 1))
                return no_memory(err);
            if (!send_exec(dc, q, st))
                return send_failed(dc, err);
            ring_push(dc, PGK_QUERY, q, st)->flags = ENT_PARSED;
        }
        return 0;
    }
    if (kind == PGK_ROLLBACK) {
        ring_pop(dc);
        reset_cur(dc);
        tx_from_libpq(dc);
        dc->send_tx = dc->tx != PG_TX_IDLE;
        if (q)
            report_code(dc, q, err, EVDB_EINVAL, "25000",
                        "the query left its pooled connection inside a transaction block, "
                        "which was rolled back (what ran inside that block did not take effect). "
                        "evdb_pool_query runs each query in autocommit mode on a shared "
                        "connection; use evdb_pool_acquire or evdb_pool_transaction");
        return 0;
    }
    evdb_result *r = NULL;
    bool got = (kind == PGK_QUERY || kind == PGK_MULTI) && q;
    if (got) {
        r = dc->cur;
        dc->cur = NULL;
    }
    bool held = got && dc->in_pipeline && !dc->cur_copy_err;
    if (held) {
        /* Held for its Sync (a batch's results chain up). */
        if (!r || dc->cur_oom || dc->held_oom) {
            /* Once one result is lost the query fails: keep nothing. */
            evdb__result_free(r);
            evdb__result_free(dc->held);
            dc->held = NULL;
            dc->held_oom = true;
            dc->held_toobig |= dc->cur_toobig;
        } else if (dc->held) {
            evdb__result_append(dc->held, r);
        } else {
            dc->held = r;
        }
        if (dc->rlen > 1 && ring_at(dc, 1)->kind == PGK_SYNC)
            q->drv_state &= ~PGQ_WIRE; /* its last statement is done */
    }
    ring_pop(dc);
    if (got && !held) {
        int rc = settle_now(dc, q, r, autocommit, err);
        reset_cur(dc);
        return rc;
    }
    reset_cur(dc);
    if (kind == PGK_MULTI && autocommit && dc->rlen == 0) {
        /* Its error was reported already; its block still goes. */
        tx_from_libpq(dc);
        if (dc->tx != PG_TX_IDLE)
            return rollback_pooled(dc, NULL, err);
    }
    if (!dc->in_pipeline && dc->rlen == 0) {
        tx_from_libpq(dc);
        dc->send_tx = dc->tx != PG_TX_IDLE;
    }
    return 0;
}

/* A Sync's PGRES_PIPELINE_SYNC: q's implicit transaction is over (q NULL:
 * DEALLOCATEs, or a query already reported). */
static void on_sync(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    evdb_result *r = dc->held;
    bool oom = dc->held_oom, toobig = dc->held_toobig;
    dc->held = NULL;
    dc->held_oom = dc->held_toobig = false;
    dc->sync_err = false;
    if (q) {
        q->drv_state &= ~PGQ_WIRE;
        if (r && !oom) {
            tx_after_ok(dc, q);
            report_done(dc, q, r);
            r = NULL;
        } else {
            report_unstored(dc, q, toobig, err);
        }
    }
    evdb__result_free(r);
    tx_from_libpq(dc);
    if (dc->rlen == 0)
        dc->send_tx = dc->tx != PG_TX_IDLE;
}

/* The head entry is a Sync and res its answer (not NULL). */
static int on_sync_result(evdb__dconn *dc, PGresult *res, evdb_error *err)
{
    pg_ent *e = ring_at(dc, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_PIPELINE_SYNC) {
        evdb__query *q = e->q;
        e->q = NULL;
        ring_pop(dc);
        on_sync(dc, q, err);
        return 0;
    }
    if (st == PGRES_FATAL_ERROR && !session_ends(dc, res)) {
        /* Raised at commit (a deferred constraint, a serialization
         * failure): the error of the query that owns the Sync. libpq then
         * gives a NULL and the PGRES_PIPELINE_SYNC. */
        dc->sync_err = true;
        if (e->q)
            fail_query(dc, e->q, NULL, false, 0, res, err);
        return 0;
    }
    if (session_ends(dc, res))
        return conn_fatal(dc, res, err);
    evdb__error_set(err, EVDB_EPROTO, 0, NULL, "expected a pipeline sync from libpq, got %s",
                    PQresStatus(st));
    return EVDB__STEP_FAIL;
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
            if (!res) {
                if (dc->sync_err) {
                    dc->sync_err = false; /* the NULL after an error at commit */
                    continue;
                }
                break; /* nothing there yet; never spin on NULL */
            }
            int rc = on_sync_result(dc, res, err);
            PQclear(res);
            if (rc)
                return rc;
            continue;
        }
        if (res) {
            int rc;
            switch (e->kind) {
            case PGK_PREPARE:
                rc = on_prepare_result(dc, e, res, err);
                break;
            case PGK_DEALLOC:
                rc = on_dealloc_result(dc, e, res, err);
                break;
            case PGK_ROLLBACK:
                rc = on_rollback_result(dc, res, err);
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

bool evdb__pg_query_sent(const evdb__dconn *dc, const evdb__query *q)
{
    (void)dc;
    return (q->drv_state & PGQ_SENT) != 0;
}

void evdb__pg_pipeline_forget(evdb__dconn *dc)
{
    evdb__result_free(dc->held);
    dc->held = NULL;
    dc->held_oom = dc->held_toobig = false;
    dc->sync_err = false;
    while (dc->rlen) {
        release_stmts(dc, ring_at(dc, 0), true);
        dc->rhead = (dc->rhead + 1) & (dc->rcap - 1);
        dc->rlen--;
    }
    reset_cur(dc);
    dc->plen = 0;
    dc->phead = 0;
    dc->inflight = 0;
    dc->solo = false;
}
