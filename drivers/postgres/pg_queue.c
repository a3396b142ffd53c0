/*
 * The queues every query passes through (pg_pipeline.c has the whole
 * picture): `pend` holds what send() accepted and is not on the wire yet;
 * `ring` lists, in order, what the server will answer. And the one place
 * a query is reported from, which keeps dc->inflight and the reset
 * failure flag in step.
 */
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
bool evdb__pg_pend_grow(evdb__dconn *dc, size_t n)
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

void evdb__pg_report_failed(evdb__dconn *dc, evdb__query *q, const evdb_error *e)
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
    evdb__pg_report_failed(dc, q, err);
}

/* q ran, but its result was not kept: too big, or no memory for it. */
void evdb__pg_report_unstored(evdb__dconn *dc, evdb__query *q, bool toobig, evdb_error *err)
{
    if (toobig) {
        evdb__error_set(err, EVDB_ETOOBIG, 0, NULL,
                        "the result exceeds max_result_bytes (%zu bytes); its rows were dropped",
                        dc->max_result);
        evdb__pg_report_failed(dc, q, err);
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
