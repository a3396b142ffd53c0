/*
 * Reading the answers (the semantics are pg_pipeline.c's): PQgetResult
 * drained entry by entry along the ring, results built (single-row mode
 * under a result cap) and held until their query's own Sync, errors
 * handed to the error policy, errors raised at commit, the ROLLBACK after
 * a pooled string that left a block open.
 */
#include <stdio.h>
#include <string.h>

#include "pg_internal.h"

/* --------------------------------------------------------------- receiving */

int evdb__pg_conn_lost(evdb__dconn *dc, evdb_error *err, const char *what)
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

void evdb__pg_reset_cur(evdb__dconn *dc)
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
    dc->stream_nrows = 0;
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
             !strncmp(tag, "DROP ", 5)) {
        evdb__pg_cache_invalidate_all(&dc->cache);
        if (strstr(tag, "TYPE") || strstr(tag, "DOMAIN") || strstr(tag, "EXTENSION") ||
            strstr(tag, "SCHEMA"))
            evdb__pg_catalog_reload(&dc->cat);
    }
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
    if (evdb__pg_rows_add_cat(&dc->cur_rows, res, &dc->cat)) {
        dc->cur_oom = true;
        evdb__rbuild_free(dc->cur_rows);
        dc->cur_rows = NULL;
    } else if (over_limit(dc, NULL)) {
        drop_too_big(dc);
    }
}

/* *kept: set when the result built took res (the caller must not clear it). */
static int on_query_result(evdb__dconn *dc, pg_ent *e, PGresult *res, bool *kept, evdb_error *err)
{
    ExecStatusType st = PQresultStatus(res);
    dc->cur_got = true;
    if (st == PGRES_SINGLE_TUPLE) {
        if (e->q && e->q->stream)
            evdb__pg_stream_row(dc, e->q, res);
        else
            on_row(dc, e, res);
        return 0;
    }
    if (is_ok_status(st)) {
        watch_tag(dc, res);
        if (e->q && e->q->stream)
            evdb__pg_stream_end(dc, e->q, res); /* the final result keeps no rows */
        if (!e->q || dc->cur_toobig)
            return 0;
        evdb_result *r;
        if (dc->cur_rows) {
            /* The end of a statement's rows in single-row mode. */
            r = evdb__pg_rows_finish(dc->cur_rows, res);
            dc->cur_rows = NULL;
        } else {
            r = evdb__pg_result_build_cat(res, e->st ? &e->st->cols : NULL, kept, &dc->cat);
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
            evdb__pg_detach(dc, q);
            q->drv_state &= ~PGQ_WIRE;
            if (q->cancel_requested || evdb__pg_retries(q) >= PG_MAX_RETRIES) {
                evdb__pg_report_code(dc, q, err, EVDB_ESERVER, "25P02",
                                     "not executed: an earlier command before its Sync failed");
            } else {
                evdb__pg_mark_retry(q, false);
                evdb__pg_pend_push_front(dc, q);
            }
        }
        return 0;
    case PGRES_COPY_IN:
        if (evdb__pg_copy_begin(dc, e->q, st))
            return 0; /* its data moves now (pg_copy.c) */
        dc->cur_copy_err = true;
        if (PQputCopyEnd(dc->conn, "COPY FROM STDIN is not supported by evdb") < 0)
            return evdb__pg_conn_lost(dc, err, "COPY");
        return 0;
    case PGRES_COPY_OUT:
        if (evdb__pg_copy_begin(dc, e->q, st))
            return 0;
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
            evdb__pg_detach(dc, q);
            q->drv_state &= ~PGQ_WIRE;
            evdb__pg_tx_after_error(dc, q);
            evdb__pg_copy_refuse(dc, q, err);
        } else {
            evdb__pg_fail_query(dc, e->q, e->st, (e->flags & ENT_PARSED) != 0, e->idx, res, err);
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
        evdb__pg_fail_query(dc, e->q, NULL, true, e->idx, res, err);
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
    if (!evdb__pg_grow_ring(dc, 1))
        return evdb__pg_no_memory(err);
    if (!PQsendQuery(dc->conn, "ROLLBACK"))
        return evdb__pg_send_failed(dc, err);
    evdb__pg_ring_push(dc, PGK_ROLLBACK, q, NULL);
    dc->send_tx = false;
    return 0;
}

/* The results of the head entry are all in, for a query reported once
 * they are (pipeline off, or a multi-statement string). */
static int settle_now(evdb__dconn *dc, evdb__query *q, evdb_result *r, bool autocommit,
                      evdb_error *err)
{
    evdb__pg_detach(dc, q); /* a COPY in pipeline mode: its Sync is still to come */
    q->drv_state &= ~PGQ_WIRE;
    if (dc->rlen == 0) {
        /* Nothing in flight: libpq's transaction status is exact. */
        evdb__pg_tx_from_libpq(dc);
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
        evdb__pg_copy_refuse(dc, q, err);
        return 0;
    }
    if (!(q->drv_state & PGQ_SIMPLE))
        evdb__pg_tx_after_ok(dc, q);
    if (r && !dc->cur_oom)
        evdb__pg_report_done(dc, q, r);
    else {
        evdb__result_free(r);
        evdb__pg_report_unstored(dc, q, dc->cur_toobig, err);
    }
    return 0;
}

/* The head entry's results are drained (PQgetResult gave NULL). */
static int on_complete(evdb__dconn *dc, evdb_error *err)
{
    pg_ent *e = evdb__pg_ring_at(dc, 0);
    evdb__query *q = e->q;
    pg_stmt *st = e->st;
    enum pg_kind kind = e->kind;
    bool autocommit = (e->flags & ENT_AUTOCOMMIT) != 0;
    e->q = NULL;
    if (kind == PGK_PREPARE) {
        evdb__pg_ring_pop(dc);
        evdb__pg_reset_cur(dc);
        /* In pipeline mode the Bind/Execute went out with the Parse. With
         * the pipeline off it goes now that the Parse is confirmed. */
        if (!q || dc->in_pipeline) {
        } else if (q->cancel_requested) {
            q->drv_state &= ~PGQ_WIRE;
            evdb__pg_report_code(dc, q, err, EVDB_ECANCELED, NULL,
                                 "cancelled before it was executed");
        } else {
            if (evdb__pg_params_encode(&dc->params, q) || !evdb__pg_grow_ring(dc, 1))
                return evdb__pg_no_memory(err);
            if (!evdb__pg_send_exec(dc, q, st))
                return evdb__pg_send_failed(dc, err);
            evdb__pg_ring_push(dc, PGK_QUERY, q, st)->flags = ENT_PARSED;
        }
        return 0;
    }
    if (kind == PGK_CATALOG)
        evdb__pg_catalog_done(&dc->cat);
    if (kind == PGK_ROLLBACK) {
        evdb__pg_ring_pop(dc);
        evdb__pg_reset_cur(dc);
        evdb__pg_tx_from_libpq(dc);
        dc->send_tx = dc->tx != PG_TX_IDLE;
        if (q)
            evdb__pg_report_code(
                dc, q, err, EVDB_EINVAL, "25000",
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
        if (dc->rlen > 1 && evdb__pg_ring_at(dc, 1)->kind == PGK_SYNC)
            q->drv_state &= ~PGQ_WIRE; /* its last statement is done */
    }
    evdb__pg_ring_pop(dc);
    if (got && !held) {
        int rc = settle_now(dc, q, r, autocommit, err);
        evdb__pg_reset_cur(dc);
        return rc;
    }
    evdb__pg_reset_cur(dc);
    if (kind == PGK_MULTI && autocommit && dc->rlen == 0) {
        /* Its error was reported already; its block still goes. */
        evdb__pg_tx_from_libpq(dc);
        if (dc->tx != PG_TX_IDLE)
            return rollback_pooled(dc, NULL, err);
    }
    if (!dc->in_pipeline && dc->rlen == 0) {
        evdb__pg_tx_from_libpq(dc);
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
            evdb__pg_tx_after_ok(dc, q);
            evdb__pg_report_done(dc, q, r);
            r = NULL;
        } else {
            evdb__pg_report_unstored(dc, q, toobig, err);
        }
    }
    evdb__result_free(r);
    evdb__pg_tx_from_libpq(dc);
    if (dc->rlen == 0)
        dc->send_tx = dc->tx != PG_TX_IDLE;
}

/* The head entry is a Sync and res its answer (not NULL). */
static int on_sync_result(evdb__dconn *dc, PGresult *res, evdb_error *err)
{
    pg_ent *e = evdb__pg_ring_at(dc, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_PIPELINE_SYNC) {
        evdb__query *q = e->q;
        e->q = NULL;
        evdb__pg_ring_pop(dc);
        on_sync(dc, q, err);
        return 0;
    }
    if (st == PGRES_FATAL_ERROR && !session_ends(dc, res)) {
        /* Raised at commit (a deferred constraint, a serialization
         * failure): the error of the query that owns the Sync. libpq then
         * gives a NULL and the PGRES_PIPELINE_SYNC. */
        dc->sync_err = true;
        if (e->q)
            evdb__pg_fail_query(dc, e->q, NULL, false, 0, res, err);
        return 0;
    }
    if (session_ends(dc, res))
        return conn_fatal(dc, res, err);
    evdb__error_set(err, EVDB_EPROTO, 0, NULL, "expected a pipeline sync from libpq, got %s",
                    PQresStatus(st));
    return EVDB__STEP_FAIL;
}

int evdb__pg_receive(evdb__dconn *dc, evdb_error *err)
{
    while (dc->rlen) {
        if (evdb__pg_reset_check(dc, err))
            return EVDB__STEP_FAIL;
        if (evdb__pg_stream_paused(dc))
            break; /* the consumer wants no rows: leave them to the server */
        if (dc->cur_copy_out || dc->copy_q) {
            int rc = evdb__pg_copy_step(dc, err);
            if (rc < 0)
                return rc;
            if (rc == 0)
                break; /* more data to come, or to send */
        }
        pg_ent *e = evdb__pg_ring_at(dc, 0);
        if ((dc->max_result || evdb__pg_stream_wants_rows(dc)) && !dc->cur_rowmode_tried &&
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
            bool kept = false;
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
            case PGK_CATALOG:
                dc->cur_got = true;
                evdb__pg_catalog_result(&dc->cat, res);
                rc = session_ends(dc, res) ? conn_fatal(dc, res, err) : 0;
                break;
            default:
                rc = on_query_result(dc, e, res, &kept, err);
                break;
            }
            if (!kept)
                PQclear(res);
            if (rc)
                return rc;
            continue;
        }
        if (!dc->cur_got) {
            if (PQstatus(dc->conn) == CONNECTION_BAD)
                return evdb__pg_conn_lost(dc, err, "connection lost");
            evdb__error_set(err, EVDB_EPROTO, 0, NULL, "libpq ended a command without any result");
            return EVDB__STEP_FAIL;
        }
        if (on_complete(dc, err))
            return EVDB__STEP_FAIL;
        if (!dc->in_pipeline && dc->rlen == 0 && evdb__pg_push(dc, err))
            return EVDB__STEP_FAIL;
    }
    return 0;
}
