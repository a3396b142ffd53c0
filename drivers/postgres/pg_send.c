/*
 * Putting queries on the wire (the semantics are pg_pipeline.c's): each
 * query's commands and its own Sync, a batch's statements under one Sync,
 * DEALLOCATEs of evicted statements in a group of their own, barriers,
 * refusals (pooled BEGIN, unfit batch statements), the cork around a
 * push; without pipelining, one command at a time.
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

/* ----------------------------------------------------------------- sending */

int evdb__pg_send_failed(evdb__dconn *dc, evdb_error *err)
{
    const char *msg = PQerrorMessage(dc->conn);
    evdb__error_set(err, PQstatus(dc->conn) == CONNECTION_BAD ? EVDB_ECONNLOST : EVDB_EPROTO, 0,
                    NULL, "could not send the query: %s", msg && *msg ? msg : "libpq error");
    return EVDB__STEP_FAIL;
}

int evdb__pg_no_memory(evdb_error *err)
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
    if (*cacheable && (!(q->drv_state & PGQ_CLASSIFIED) || !(q->drv_state & PGQ_UNCACHED))) {
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
            evdb__pg_note_sql(dc, q, *hit);
            return 0;
        }
    }
    evdb__pg_note_sql(dc, q, NULL);
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
    return PQsendQueryPrepared(dc->conn, st->name, (int)q->nparams, q->nparams ? p->values : NULL,
                               q->nparams ? p->lengths : NULL, q->nparams ? p->formats : NULL, 0);
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
int evdb__pg_send_exec(evdb__dconn *dc, const evdb__query *q, pg_stmt *st)
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
    if (!evdb__pg_grow_ring(dc, 1))
        return evdb__pg_no_memory(err);
#ifdef LIBPQ_HAS_SEND_PIPELINE_SYNC
    if (!PQsendPipelineSync(dc->conn))
#else
    if (!PQpipelineSync(dc->conn))
#endif
        return evdb__pg_send_failed(dc, err);
    evdb__pg_ring_push(dc, PGK_SYNC, q, NULL);
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
        if (!evdb__pg_grow_ring(dc, 1))
            return evdb__pg_no_memory(err);
        pg_stmt *st = evdb__pg_cache_zombie_pop(&dc->cache);
        const char *sql = dealloc_sql(dc, st);
        if (!sql) {
            evdb__pg_cache_zombie_push(&dc->cache, st);
            return evdb__pg_no_memory(err);
        }
        if (!PQsendQueryParams(dc->conn, sql, 0, NULL, NULL, NULL, NULL, 0)) {
            evdb__pg_cache_zombie_push(&dc->cache, st);
            return evdb__pg_send_failed(dc, err);
        }
        evdb__pg_ring_push(dc, PGK_DEALLOC, NULL, st);
    }
    return sync(dc, NULL, err);
}

/* A due type lookup (pg_catalog.c) ahead of the next query, in its own
 * implicit transaction: never while a transaction block may be open (it
 * would take the block's snapshot, or fail in an aborted block). */
static int send_catalog(evdb__dconn *dc, evdb_error *err)
{
    if (dc->send_tx)
        return 0;
    if (!evdb__pg_grow_ring(dc, 1))
        return evdb__pg_no_memory(err);
    if (evdb__pg_catalog_send(dc))
        return evdb__pg_send_failed(dc, err);
    evdb__pg_ring_push(dc, PGK_CATALOG, NULL, NULL);
    return dc->in_pipeline ? sync(dc, NULL, err) : 0;
}

static void send_tx_after(evdb__dconn *dc, const evdb__query *q)
{
    switch (evdb__pg_txe_of(q)) {
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
    if (!evdb__pg_grow_ring(dc, 2))
        return evdb__pg_no_memory(err);
    bool parsed = false;
    if (needs_parse(cacheable, st)) {
        size_t n = stmt_nparams(s);
        if (!st)
            st = evdb__pg_cache_add(&dc->cache, hash, s->sql, s->sql_len, n,
                                    n ? dc->params.types : NULL);
        if (st) {
            if (!send_parse(dc, s, st))
                return evdb__pg_send_failed(dc, err);
            evdb__pg_ring_push(dc, PGK_PREPARE, q, st)->idx = idx;
            parsed = true;
        }
    }
    if (s->flags & EVDB__QUERY_PREPARE) {
        if (!st)
            return evdb__pg_no_memory(err);
        evdb__pg_cache_pin(&dc->cache, st);
    } else if (st && (s->flags & EVDB__QUERY_RESET_SESSION)) {
        /* The reset's own statements run on every release: they must
         * not evict the user's (nor be evicted by them). */
        evdb__pg_cache_pin(&dc->cache, st);
    }
    if (!evdb__pg_send_exec(dc, s, st))
        return evdb__pg_send_failed(dc, err);
    pg_ent *e = evdb__pg_ring_push(dc, PGK_QUERY, q, st);
    e->idx = idx;
    e->flags = parsed ? ENT_PARSED : 0;
    q->drv_state |= PGQ_WIRE | PGQ_SENT;
    return 0;
}

/* The statements of batch q, each through send_extended (the Sync is the
 * caller's). Each is looked up in the statement cache like a query. */
static int send_batch(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    bool reset = (q->flags & EVDB__QUERY_RESET_SESSION) != 0;
    for (size_t i = 0; i < q->nbatch; i++) {
        /* A session reset (the driver's own statements, pg_reset.c)
         * leaves out what has nothing to clean (its ROLLBACK outside a
         * block would only earn a WARNING for the user's notice hook). */
        if (reset && evdb__pg_reset_skips(dc, i))
            continue;
        const evdb__stmt *b = &q->batch[i];
        evdb__query s;
        memset(&s, 0, sizeof s);
        s.sql = b->sql;
        s.sql_len = b->sql_len;
        s.params = b->params;
        s.nparams = b->nparams;
        s.flags = q->flags & (EVDB_QUERY_NO_CACHE | EVDB__QUERY_RESET_SESSION);
        s.drv_state = q->drv_state & PGQ_REPARSE;
        if (reset) {
            /* Known statements: no lexer. Prepared once per
             * connection, a statement costs the server about half of
             * what parsing it on every reset does (pg_reset.c). */
            s.drv_state |= PGQ_CLASSIFIED;
            if (evdb__pg_reset_cached(i))
                s.flags &= ~(unsigned)EVDB_QUERY_NO_CACHE;
        }
        bool cacheable;
        pg_stmt *hit;
        uint64_t hash = 0;
        if (prepare_query(dc, &s, &cacheable, &hit, &hash))
            return evdb__pg_no_memory(err);
        if (send_extended(dc, q, &s, cacheable, hit, hash, (uint32_t)i + 1, err))
            return EVDB__STEP_FAIL;
    }
    /* What follows belongs to the next borrower. */
    if (reset)
        dc->sql_prepare_seen = false;
    return 0;
}

/* Pop q (at the head of pend) and report it done with an empty result
 * that nothing was sent for: command (or none) and affected rows. */
static void answer_unsent(evdb__dconn *dc, evdb__query *q, const char *command, int64_t affected,
                          evdb_error *err)
{
    evdb__pg_pend_pop(dc);
    evdb_result *r = evdb__result_from_text(0, NULL, 0, NULL, NULL, command, affected);
    if (r)
        evdb__pg_report_done(dc, q, r);
    else
        evdb__pg_report_code(dc, q, err, EVDB_ENOMEM, NULL, "out of memory");
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
        evdb__pg_pend_pop(dc);
        evdb__pg_report_code(dc, q, err, EVDB_ENOTSUP, NULL,
                             dc->bouncer
                                 ? "named prepared statements do not survive a PgBouncer in "
                                   "transaction mode (" PG_BOUNCER_KEY "=" PG_BOUNCER_TRANSACTION
                                   "): every query is parsed unnamed, so there is nothing to "
                                   "prepare; run the query itself"
                                 : "the statement cache is off on this connection "
                                   "(EVDB_STMT_CACHE_OFF): there is nowhere to keep a prepared "
                                   "statement");
        return true;
    }
    if (!cacheable) {
        evdb__pg_pend_pop(dc);
        evdb__pg_report_code(dc, q, err, EVDB_EINVAL, NULL,
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
    answer_unsent(dc, q, "DEALLOCATE", found ? 1 : 0, err);
    return true;
}

/* A release without the session reset (EVDB__QUERY_RELEASE_ROLLBACK,
 * evdb_conn_release_no_reset) when no transaction block may be open after
 * what was sent: nothing to roll back, so nothing goes on the wire (a
 * ROLLBACK outside a block would only earn a WARNING). */
static bool answer_release_rollback(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (!(q->flags & EVDB__QUERY_RELEASE_ROLLBACK) || dc->send_tx)
        return false;
    answer_unsent(dc, q, NULL, 0, err);
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
        /* A pool's session reset is the driver's own statements, with
         * their own transaction control (pg_reset.c): it ends whatever
         * block was open (its first statement is ROLLBACK) and leaves
         * none, a barrier outside a block. */
        if (q->flags & EVDB__QUERY_RESET_SESSION) {
            q->drv_state |= PGQ_CLASSIFIED | PGQ_TXCTL | ((unsigned)PG_TXE_END << PGQ_TXE_SHIFT);
            return NULL;
        }
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
    enum pg_txe t = evdb__pg_txe_of(q);
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
        if (evdb__pg_reset_check(dc, err))
            return EVDB__STEP_FAIL;
        evdb__query *q = evdb__pg_pend_front(dc);
        if (q->cancel_requested) {
            evdb__pg_pend_pop(dc);
            evdb__pg_report_code(dc, q, err, EVDB_ECANCELED, NULL, "cancelled before it was sent");
            continue;
        }
        if (answer_release_rollback(dc, q, err))
            continue;
        pp->hash = 0;
        pp->hit = NULL;
        pp->cacheable = false;
        if (!q->nbatch && prepare_query(dc, q, &pp->cacheable, &pp->hit, &pp->hash))
            return evdb__pg_no_memory(err);
        char buf[384];
        const char *why = refusal(q, buf, sizeof buf);
        if (why) {
            evdb__pg_pend_pop(dc);
            evdb__pg_report_code(dc, q, err, EVDB_EINVAL, NULL, why);
            continue;
        }
        why = evdb__pg_bouncer_refusal(dc, q, buf, sizeof buf);
        if (why) {
            evdb__pg_pend_pop(dc);
            evdb__pg_report_code(dc, q, err, EVDB_ENOTSUP, NULL, why);
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

/* A string of several statements (or COPY) at the head of pend, with
 * pipeline mode off and nothing in flight: PQsendQuery, the simple
 * protocol. 0 or EVDB__STEP_FAIL. */
static int send_multi(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (!evdb__pg_grow_ring(dc, 1))
        return evdb__pg_no_memory(err);
    if (!PQsendQuery(dc->conn, q->sql))
        return evdb__pg_send_failed(dc, err);
    evdb__pg_pend_pop(dc);
    pg_ent *e = evdb__pg_ring_push(dc, PGK_MULTI, q, NULL);
    if (q->flags & EVDB__QUERY_AUTOCOMMIT)
        e->flags |= ENT_AUTOCOMMIT;
    q->drv_state |= PGQ_WIRE | PGQ_SENT;
    return 0;
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
                       ((cls & PGQ_TXCTL) && (evdb__pg_txe_of(q) == PG_TXE_BEGIN || !dc->send_tx));
        if (barrier && dc->rlen)
            break;
        if (cls & PGQ_SIMPLE) {
            if (!PQexitPipelineMode(dc->conn)) {
                rc = evdb__pg_send_failed(dc, err);
                break;
            }
            dc->in_pipeline = false;
            rc = send_multi(dc, q, err);
            break; /* the rest waits until it is done */
        }
        if (!corked && dc->plen > 1) {
            cork(dc, 1);
            corked = true;
        }
        rc = send_deallocs(dc, err);
        if (!rc && evdb__pg_catalog_due(&dc->cat))
            rc = send_catalog(dc, err);
        if (!rc)
            rc = q->nbatch ? send_batch(dc, q, err)
                           : send_extended(dc, q, q, pp.cacheable, pp.hit, pp.hash, 0, err);
        if (!rc) {
            evdb__pg_pend_pop(dc);
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
    if (!evdb__pg_grow_ring(dc, 1))
        return evdb__pg_no_memory(err);
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
    evdb__pg_ring_push(dc, PGK_DEALLOC, NULL, head);
    const char *sql = dealloc_sql(dc, head);
    if (!sql || !PQsendQuery(dc->conn, sql)) {
        /* Take the entry back: the statements return to the queue. */
        dc->rlen--;
        evdb__pg_release_stmts(dc, evdb__pg_ring_at(dc, dc->rlen), false);
        return sql ? evdb__pg_send_failed(dc, err) : evdb__pg_no_memory(err);
    }
    return 0;
}

/* Pipeline off: a batch still needs one Sync for all its statements, so
 * pipeline mode is entered for it alone (left again in push once it has
 * been answered). */
static int push_single_batch(evdb__dconn *dc, evdb__query *q, evdb_error *err)
{
    if (!PQenterPipelineMode(dc->conn))
        return evdb__pg_send_failed(dc, err);
    dc->in_pipeline = true;
    if (send_batch(dc, q, err))
        return EVDB__STEP_FAIL;
    evdb__pg_pend_pop(dc);
    return sync(dc, q, err);
}

/* Pipeline off: one command at a time. */
static int push_single(evdb__dconn *dc, evdb_error *err)
{
    while (dc->rlen == 0 && dc->plen) {
        if (dc->cache.nzombies >= DEALLOC_BATCH_SINGLE && !dc->send_tx)
            return send_dealloc_batch(dc, err);
        if (evdb__pg_catalog_due(&dc->cat) && !dc->send_tx)
            return send_catalog(dc, err);
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
        if (!evdb__pg_grow_ring(dc, 1))
            return evdb__pg_no_memory(err);
        bool prep = (q->flags & EVDB__QUERY_PREPARE) != 0;
        if (q->drv_state & PGQ_SIMPLE) {
            if (send_multi(dc, q, err))
                return EVDB__STEP_FAIL;
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
                    return evdb__pg_send_failed(dc, err);
                evdb__pg_ring_push(dc, PGK_PREPARE, q, st);
            } else if (prep) {
                return evdb__pg_no_memory(err);
            } else if (!send_params(dc, q)) {
                return evdb__pg_send_failed(dc, err);
            } else {
                evdb__pg_ring_push(dc, PGK_QUERY, q, NULL);
            }
            evdb__pg_pend_pop(dc);
        } else {
            /* A statement still PREPARING cannot be here (one command at a
             * time), but the unnamed statement is right for it anyway. A
             * prepare request always has its statement (it is cacheable). */
            if (st && st->state != PGS_READY && !prep)
                st = NULL;
            if (prep)
                evdb__pg_cache_pin(&dc->cache, st);
            if (!evdb__pg_send_exec(dc, q, st))
                return evdb__pg_send_failed(dc, err);
            evdb__pg_pend_pop(dc);
            evdb__pg_ring_push(dc, PGK_QUERY, q, st);
        }
        q->drv_state |= PGQ_WIRE | PGQ_SENT;
        send_tx_after(dc, q);
    }
    return 0;
}

int evdb__pg_push(evdb__dconn *dc, evdb_error *err)
{
    if (!dc->pipeline) {
        if (dc->in_pipeline) {
            /* A batch ran in pipeline mode: leave it once answered. */
            if (dc->rlen)
                return 0;
            if (!PQexitPipelineMode(dc->conn))
                return evdb__pg_send_failed(dc, err);
            dc->in_pipeline = false;
        }
        return push_single(dc, err);
    }
    if (!dc->in_pipeline) {
        if (dc->rlen)
            return 0; /* a multi-statement string runs */
        if (!PQenterPipelineMode(dc->conn))
            return evdb__pg_send_failed(dc, err);
        dc->in_pipeline = true;
    }
    return push_pipeline(dc, err);
}
