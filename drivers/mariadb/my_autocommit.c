/*
 * Pooled autocommit queries (EVDB__QUERY_AUTOCOMMIT, set by
 * evdb_pool_query): each runs on a shared connection, so it may not leave
 * that connection inside a transaction, where the next request's queries
 * would run (and be rolled back, or see its locks and uncommitted rows).
 *
 * Before sending: a query that is nothing but a statement opening a
 * transaction (BEGIN, START TRANSACTION, XA START, COMMIT/ROLLBACK AND
 * CHAIN, SET autocommit = 0) is refused with EVDB_EINVAL, pointing to
 * evdb_pool_acquire / evdb_pool_transaction. Several statements in one
 * string may open and close their own transaction: they are sent.
 *
 * After it ran (ok or failed): the server's status flags of the last
 * answer say whether a transaction is still open (SERVER_STATUS_IN_TRANS)
 * or autocommit was turned off (SERVER_STATUS_AUTOCOMMIT cleared). Then
 * the tail, before the query is reported and before anything else runs on
 * the connection, sends ROLLBACK (and SET autocommit = 1), and the query
 * fails with EVDB_EINVAL saying so. If the session still is in a
 * transaction after that, it is given up (never handed on dirty).
 */
#include <stdio.h>
#include <string.h>

#include "my_internal.h"

#define POOL_HINT                                                                                  \
    "evdb_pool_query runs each query on a shared connection in autocommit mode; use "              \
    "evdb_pool_acquire or evdb_pool_transaction for a transaction"

/* After SET: whether one of the assignments turns autocommit off
 * ([@@][SESSION|LOCAL .]autocommit = 0 | OFF | FALSE). */
static bool sets_autocommit_off(const char *p, const char *end)
{
    static const char word[] = "autocommit";
    for (const char *at = evdb__my_find_word(p, end, word); at;
         at = evdb__my_find_word(at + 1, end, word)) {
        const char *v = evdb__my_skip_blank(at + sizeof word - 1, end);
        if (end - v >= 2 && v[0] == ':' && v[1] == '=')
            v += 2;
        else if (v < end && *v == '=')
            v++;
        else
            continue;
        v = evdb__my_skip_blank(v, end);
        if (v < end && (*v == '\'' || *v == '"'))
            v++;
        if (evdb__my_keyword(v, end, "0", NULL) || evdb__my_keyword(v, end, "OFF", NULL) ||
            evdb__my_keyword(v, end, "FALSE", NULL))
            return true;
    }
    return false;
}

/* The words of a statement that opens a transaction, or NULL. */
static const char *opens_transaction(const char *sql, size_t len)
{
    const char *end = sql + len;
    const char *after;
    if (evdb__my_keyword(sql, end, "BEGIN", &after)) {
        /* BEGIN NOT ATOMIC ... END is a compound statement. */
        if (evdb__my_keyword(after, end, "NOT", NULL))
            return NULL;
        return "BEGIN";
    }
    if (evdb__my_keyword(sql, end, "START", &after) &&
        evdb__my_keyword(after, end, "TRANSACTION", NULL))
        return "START TRANSACTION";
    if (evdb__my_keyword(sql, end, "XA", &after) && (evdb__my_keyword(after, end, "START", NULL) ||
                                                     evdb__my_keyword(after, end, "BEGIN", NULL)))
        return "XA START";
    if (evdb__my_keyword(sql, end, "COMMIT", &after) ||
        evdb__my_keyword(sql, end, "ROLLBACK", &after)) {
        evdb__my_keyword(after, end, "WORK", &after);
        const char *chain;
        if (evdb__my_keyword(after, end, "AND", &chain) &&
            evdb__my_keyword(chain, end, "CHAIN", NULL))
            return "COMMIT/ROLLBACK AND CHAIN";
        return NULL;
    }
    if (evdb__my_keyword(sql, end, "SET", &after) && sets_autocommit_off(after, end))
        return "SET autocommit = 0";
    return NULL;
}

int evdb__my_autocommit_refuse(const evdb__query *q, evdb_error *err)
{
    if (q->nbatch || (q->flags & EVDB__QUERY_RESET_SESSION))
        return 0; /* batches refuse transaction control by themselves */
    const char *what = opens_transaction(q->sql, q->sql_len);
    if (!what || !evdb__my_single_statement(q->sql, q->sql_len))
        return 0;
    evdb__error_set(err, EVDB_EINVAL, 0, NULL, "%s opens a transaction, refused: " POOL_HINT, what);
    return EVDB_EINVAL;
}

bool evdb__my_in_transaction(const evdb__dconn *dc)
{
    unsigned st = evdb__my_server_status(dc);
    return (st & SERVER_STATUS_IN_TRANS) || !(st & SERVER_STATUS_AUTOCOMMIT);
}

bool evdb__my_autocommit_dirty(const evdb__dconn *dc)
{
    return (dc->q->flags & EVDB__QUERY_AUTOCOMMIT) && evdb__my_in_transaction(dc);
}

/* The query's outcome becomes the tail's failure; its own error, if it
 * had one, is kept in the message. */
static void fail_rolled_back(evdb__dconn *dc)
{
    char msg[EVDB__MY_MSG_MAX];
    bool off = !(evdb__my_server_status(dc) & SERVER_STATUS_AUTOCOMMIT);
    int n = snprintf(msg, sizeof msg,
                     "the query left its pooled connection %s, which was rolled back (what "
                     "ran before the transaction began, e.g. the INSERT of 'INSERT ...; "
                     "BEGIN', was committed already). " POOL_HINT,
                     off ? "with autocommit off" : "inside a transaction");
    if (dc->out.failed && n > 0 && (size_t)n < sizeof msg) {
        /* The query's own message, cut to what room remains. */
        static const char own[] = " (the query itself failed: ";
        size_t at = (size_t)n, room = sizeof msg - at - 1;
        size_t k = strlen(own) < room ? strlen(own) : room;
        memcpy(msg + at, own, k);
        at += k;
        room -= k;
        size_t m = strnlen(dc->out.msg, sizeof dc->out.msg);
        m = m < room ? m : room;
        memcpy(msg + at, dc->out.msg, m);
        at += m;
        if (at < sizeof msg - 1)
            msg[at++] = ')';
        msg[at] = '\0';
    }
    evdb__my_fail_over(dc, EVDB_EINVAL, msg);
}

enum evdb__my_run evdb__my_autocommit_run(evdb__dconn *dc, int ready, evdb_error *err)
{
    enum evdb__my_run r;
    if (dc->op == EVDB__MY_OP_NONE && dc->ctl_step == 0)
        fail_rolled_back(dc);
    for (;;) {
        switch (dc->ctl_step) {
        case 0: /* ROLLBACK first: SET autocommit = 1 would commit */
        case 2:
            r = evdb__my_ctl_run(dc, "ROLLBACK", ready, err);
            if (r != EVDB__MY_RUN_DONE)
                return r;
            dc->ctl_step++;
            ready = 0;
            break;
        case 1:
        case 3:
        default:
            if (!(evdb__my_server_status(dc) & SERVER_STATUS_AUTOCOMMIT)) {
                r = evdb__my_ctl_run(dc, "SET autocommit = 1", ready, err);
                if (r != EVDB__MY_RUN_DONE)
                    return r;
                ready = 0;
            }
            if (evdb__my_in_transaction(dc)) {
                /* The KILL QUERY of a timeout may have hit the ROLLBACK:
                 * once more, then give the session up rather than hand
                 * it on inside a transaction. */
                if (dc->ctl_step == 1) {
                    dc->ctl_step = 2;
                    break;
                }
                dc->ctl_step = 0;
                return evdb__my_lost(dc, err, dc->ctl_errno,
                                     "could not take a pooled connection out of a transaction");
            }
            dc->ctl_step = 0;
            evdb__my_deliver(dc, err);
            return EVDB__MY_RUN_DONE;
        }
    }
}
