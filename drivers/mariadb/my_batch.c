/*
 * Explicit batches (evdb_conn_batch, EVDB__CAP_BATCH): the statements of
 * evdb__query.batch run in order as one unit, all or nothing.
 *
 *   outside a transaction:  START TRANSACTION; s1; ...; sN; COMMIT
 *   inside the caller's:    SAVEPOINT evdb_batch; s1; ...; sN;
 *                           RELEASE SAVEPOINT evdb_batch
 *
 * Each statement runs as a query of its own would (the text protocol
 * without parameters, a cached prepared statement with them), and its
 * result is chained after the ones before. When statement K fails, the
 * batch is undone (ROLLBACK, or ROLLBACK TO SAVEPOINT evdb_batch and
 * RELEASE SAVEPOINT evdb_batch, leaving the caller's transaction as it was
 * before the batch) and the query fails with K's error, its message
 * prefixed "batch statement K of N: ". A failed COMMIT undoes the batch as
 * well. The MariaDB protocol has no pipelining, so the statements still
 * take a round trip each: a batch buys atomicity, not speed.
 *
 * MariaDB commits a transaction implicitly before and after DDL (CREATE,
 * ALTER, DROP, RENAME, TRUNCATE, ...), LOCK TABLES, GRANT and a few more,
 * so a batch holding such a statement could not be undone: the driver
 * refuses it before anything is sent (EVDB_EINVAL), together with
 * transaction control and several statements in one entry. CREATE /
 * DROP TEMPORARY TABLE do not commit and are allowed. Where the refusal
 * misses one (a statement the keywords do not tell apart, a stored
 * procedure that commits), the server's status shows the transaction gone
 * after the statement: the batch stops there and fails saying which
 * statements took effect.
 *
 * A batch gets no max_statement_time backstop (server_timeout=true); its
 * timeout is enforced by the core and its KILL QUERY, after which no
 * further statement is started, nor the COMMIT, and the batch is undone.
 */
#include <stdio.h>
#include <string.h>

#include "my_internal.h"

/* First words of statements that commit implicitly or control the
 * transaction (MariaDB's "statements that cause an implicit commit"). */
static const char *const refused[] = {
    "ALTER",   "CREATE",    "DROP",      "RENAME",  "TRUNCATE", "ANALYZE",    "CACHE",
    "FLUSH",   "OPTIMIZE",  "REPAIR",    "LOCK",    "UNLOCK",   "GRANT",      "REVOKE",
    "INSTALL", "UNINSTALL", "RESET",     "CHANGE",  "START",    "STOP",       "BEGIN",
    "COMMIT",  "ROLLBACK",  "SAVEPOINT", "RELEASE", "XA",       "LOAD INDEX",
};

/* CREATE / DROP TEMPORARY TABLE commit nothing. */
static bool temporary_table(const char *sql, const char *end)
{
    const char *after;
    if (!evdb__my_keyword(sql, end, "CREATE", &after) &&
        !evdb__my_keyword(sql, end, "DROP", &after))
        return false;
    return evdb__my_keyword(after, end, "TEMPORARY", NULL);
}

/* The first word that makes a statement unfit for a batch, or NULL. */
static const char *unfit(const evdb__stmt *s)
{
    const char *end = s->sql + s->sql_len;
    if (!evdb__my_single_statement(s->sql, s->sql_len))
        return "several statements";
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        const char *w = refused[i];
        const char *sp = strchr(w, ' ');
        const char *after;
        if (!sp) {
            if (evdb__my_keyword(s->sql, end, w, NULL) && !temporary_table(s->sql, end))
                return w;
            continue;
        }
        /* Two words ("LOAD INDEX", not LOAD DATA). */
        char first[16];
        snprintf(first, sizeof first, "%.*s", (int)(sp - w), w);
        if (evdb__my_keyword(s->sql, end, first, &after) &&
            evdb__my_keyword(after, end, sp + 1, NULL))
            return w;
    }
    const char *after;
    if (evdb__my_keyword(s->sql, end, "SET", &after)) {
        /* SET autocommit commits (= 1) or changes the session after the
         * batch (= 0); SET TRANSACTION cannot run inside one. */
        if (evdb__my_find_word(after, end, "autocommit"))
            return "SET autocommit";
        if (evdb__my_keyword(after, end, "TRANSACTION", NULL))
            return "SET TRANSACTION";
    }
    return NULL;
}

int evdb__my_batch_refuse(const evdb__query *q, evdb_error *err)
{
    for (size_t i = 0; i < q->nbatch; i++) {
        const char *w = unfit(&q->batch[i]);
        if (!w)
            continue;
        evdb__error_set(err, EVDB_EINVAL, 0, NULL,
                        "batch statement %zu of %zu: %s cannot run in a batch: MariaDB commits "
                        "implicitly around DDL and the like, or the statement controls the "
                        "transaction itself, so the batch could not be undone; run it as a "
                        "query of its own",
                        i + 1, q->nbatch, w);
        return EVDB_EINVAL;
    }
    return 0;
}

/* Prefix the recorded failure with the statement it came from (the end
 * of a long message gives way). */
static void prefix_failure(evdb__dconn *dc)
{
    char pre[64];
    int n = snprintf(pre, sizeof pre, "batch statement %zu of %zu: ", dc->bk + 1, dc->q->nbatch);
    size_t plen = n > 0 ? (size_t)n : 0;
    size_t cap = sizeof dc->out.msg;
    if (plen >= cap)
        return;
    size_t mlen = strnlen(dc->out.msg, cap);
    if (mlen > cap - 1 - plen)
        mlen = cap - 1 - plen;
    memmove(dc->out.msg + plen, dc->out.msg, mlen);
    memcpy(dc->out.msg, pre, plen);
    dc->out.msg[plen + mlen] = '\0';
}

/* A control statement of the batch failed: record it as the batch's
 * failure (unless a statement's failure came first). */
static void ctl_failed(evdb__dconn *dc, const char *what)
{
    char msg[EVDB__MY_MSG_MAX];
    snprintf(msg, sizeof msg, "batch: %s failed: %s", what, mysql_error(dc->m));
    if (dc->out.failed)
        return;
    evdb__my_fail_mysql(dc, dc->ctl_errno, mysql_sqlstate(dc->m), msg);
}

static bool in_trans(const evdb__dconn *dc)
{
    return (evdb__my_server_status(dc) & SERVER_STATUS_IN_TRANS) != 0;
}

/* Start statement dc->bk. */
static void stmt_begin(evdb__dconn *dc)
{
    dc->cur = &dc->q->batch[dc->bk];
    dc->sql = dc->cur->sql;
    dc->sql_len = dc->cur->sql_len;
    EVDB__MY_SET_OP(dc, EVDB__MY_OP_NONE);
    dc->op_started = false;
    dc->rerun = dc->rerun_done = false;
    dc->bstmt = true;
}

/* The batch is over: on to the query's tail, or its report. */
static enum evdb__my_run end(evdb__dconn *dc, evdb_error *err)
{
    dc->cur = &dc->one;
    dc->sql = dc->one.sql;
    dc->sql_len = dc->one.sql_len;
    evdb__my_report(dc, err);
    return EVDB__MY_RUN_DONE;
}

/* A bulk chunk failed (my_bulk.c): the server rolled its rows back as one
 * statement but did not say which row failed. Inside the batch's
 * transaction, the chunk's rows run again one at a time to find it; the
 * batch is undone in any case. Returns false when that cannot be done
 * safely (the transaction is gone, as after a deadlock, or the batch was
 * given up on): the chunk's error then fails the batch as it is. */
static bool bulk_locate(evdb__dconn *dc)
{
    if (!in_trans(dc) || dc->q->cancel_requested)
        return false;
    dc->bulk_err = dc->out;
    dc->bulk_err.res = NULL;
    dc->bulk_failed = true;
    dc->bulk_on = false;
    dc->bulk_n = 0;
    dc->out.failed = false;
    dc->out.code = 0;
    dc->out.driver_code = 0;
    dc->out.sqlstate[0] = '\0';
    dc->out.msg[0] = '\0';
    return true;
}

/* Every statement ran: commit, or (a bulk chunk having failed while its
 * rows then went through one by one) undo with the chunk's error. */
static enum evdb__my_bstep bulk_end(evdb__dconn *dc)
{
    if (!dc->bulk_failed)
        return EVDB__MY_B_CLOSE;
    evdb_result *res = dc->out.res;
    dc->out = dc->bulk_err;
    dc->out.res = res;
    dc->bulk_failed = false;
    return EVDB__MY_B_UNDO;
}

enum evdb__my_run evdb__my_batch_run(evdb__dconn *dc, int ready, evdb_error *err)
{
    enum evdb__my_run r;
    for (;;) {
        switch (dc->bstep) {
        case EVDB__MY_B_OPEN:
            r = evdb__my_ctl_run(dc, dc->bsavepoint ? "SAVEPOINT evdb_batch" : "START TRANSACTION",
                                 ready, err);
            if (r != EVDB__MY_RUN_DONE)
                return r;
            ready = 0;
            if (dc->ctl_errno) {
                ctl_failed(dc, dc->bsavepoint ? "SAVEPOINT" : "START TRANSACTION");
                return end(dc, err);
            }
            dc->bstep = EVDB__MY_B_STMT;
            dc->bk = 0;
            dc->bulk_on = evdb__my_bulk_fits(dc);
            dc->bulk_failed = false;
            break;

        case EVDB__MY_B_STMT:
            if (!dc->bstmt) {
                /* Given up on (its timeout passed, or it was cancelled):
                 * nothing more of it runs, not even the COMMIT, so what
                 * the caller was told (it failed) stays true. */
                if (dc->q->cancel_requested) {
                    evdb__my_fail_code(dc, EVDB_ECANCELED,
                                       "batch given up on: its remaining statements were not "
                                       "run, and the rest was undone");
                    dc->bstep = EVDB__MY_B_UNDO;
                    break;
                }
                if (dc->bk == dc->q->nbatch) {
                    dc->bstep = bulk_end(dc);
                    break;
                }
                stmt_begin(dc);
                dc->bulk_n = dc->bulk_on ? evdb__my_bulk_chunk(dc) : 0;
            }
            r = dc->cur->nparams ? evdb__my_stmt_run(dc, ready, err)
                                 : evdb__my_text_run(dc, ready, err);
            if (r != EVDB__MY_RUN_DONE)
                return r;
            ready = 0;
            evdb__my_bulk_release(dc);
            /* evdb__my_report ended the statement (dc->bstmt is false). */
            if (dc->out.failed && dc->bulk_n && bulk_locate(dc))
                break;
            if (dc->out.failed) {
                if (dc->bulk_n == 0)
                    prefix_failure(dc);
                dc->bulk_n = 0;
                dc->bstep = EVDB__MY_B_UNDO;
                break;
            }
            if (!in_trans(dc)) {
                char msg[EVDB__MY_MSG_MAX];
                snprintf(msg, sizeof msg,
                         "batch statement %zu of %zu committed the batch's transaction "
                         "implicitly (as MariaDB does around DDL): statements 1 to %zu took "
                         "effect, the rest did not run",
                         dc->bk + 1, dc->q->nbatch, dc->bk + 1);
                evdb__my_fail_over(dc, EVDB_EINVAL, msg);
                return end(dc, err);
            }
            dc->bk += dc->bulk_n ? dc->bulk_n : 1;
            dc->bulk_n = 0;
            break;

        case EVDB__MY_B_CLOSE:
            r = evdb__my_ctl_run(dc, dc->bsavepoint ? "RELEASE SAVEPOINT evdb_batch" : "COMMIT",
                                 ready, err);
            if (r != EVDB__MY_RUN_DONE)
                return r;
            ready = 0;
            if (dc->ctl_errno) {
                ctl_failed(dc, dc->bsavepoint ? "RELEASE SAVEPOINT" : "COMMIT");
                dc->bstep = EVDB__MY_B_UNDO;
                break;
            }
            return end(dc, err);

        case EVDB__MY_B_UNDO:
            r = evdb__my_ctl_run(
                dc, dc->bsavepoint ? "ROLLBACK TO SAVEPOINT evdb_batch" : "ROLLBACK", ready, err);
            if (r != EVDB__MY_RUN_DONE)
                return r;
            ready = 0;
            if (dc->bsavepoint) {
                dc->bstep = EVDB__MY_B_FORGET;
                break;
            }
            if (in_trans(dc)) {
                /* A KILL QUERY meant for the batch may have hit the
                 * ROLLBACK: once more, then give the session up rather
                 * than hand it on inside the batch's transaction. */
                if (dc->ctl_step++ == 0)
                    break;
                return evdb__my_lost(dc, err, dc->ctl_errno, "could not roll a failed batch back");
            }
            dc->ctl_step = 0;
            return end(dc, err);

        case EVDB__MY_B_FORGET:
        default:
            /* After ROLLBACK TO SAVEPOINT the savepoint remains; its
             * release cannot fail in a way that matters to the caller. */
            r = evdb__my_ctl_run(dc, "RELEASE SAVEPOINT evdb_batch", ready, err);
            if (r != EVDB__MY_RUN_DONE)
                return r;
            return end(dc, err);
        }
    }
}
