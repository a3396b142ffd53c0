/*
 * Reading results under the result-size cap (evdb_conn_opts.max_result_bytes).
 *
 * Without a cap, Connector/C stores a whole result set before the driver
 * copies it (mysql_store_result, mysql_stmt_store_result): the fastest
 * path, and memory twice the result's size. With a cap, rows are read one
 * at a time instead: mysql_use_result + mysql_fetch_row_start/_cont over
 * the text protocol, mysql_stmt_fetch_start/_cont on a statement whose
 * rows are not stored. Connector/C then holds one row (in its packet
 * buffer), and the driver counts each row against the cap before copying
 * it.
 *
 * Once the query's results (all of them, for several statements) outgrow
 * the cap, what was built is freed and EVDB_ETOOBIG recorded; the remaining
 * rows are still fetched, one at a time, and dropped. Stopping early is not
 * an option: the protocol has no way to skip rows other than reading them,
 * and the session must be back in sync before it serves the next query.
 * Fetching them (rather than letting mysql_free_result skip them) keeps a
 * server error or a lost session in the middle of the rows visible, so the
 * query is reported the usual way.
 *
 * Every fetch may stop halfway through a row's packet and resume on the
 * next wake-up: dc->op_started says whether the *_cont comes next.
 */
#include <stdio.h>

#include "my_internal.h"

/* Room for the EVDB_ETOOBIG message with any size_t limit. */
#define TOO_BIG_MSG_MAX 96

void evdb__my_fail_too_big(evdb__dconn *dc)
{
    evdb__rbuild_free(dc->build);
    dc->build = NULL;
    /* Earlier statements' results go too: nobody will see them, and the
     * rest of the rows may take a while to drain. */
    evdb__result_free(dc->out.res);
    dc->out.res = NULL;
    char msg[TOO_BIG_MSG_MAX];
    snprintf(msg, sizeof msg, "result exceeds max_result_bytes (%zu bytes)", dc->max_result_bytes);
    evdb__my_fail_code(dc, EVDB_ETOOBIG, msg);
}

void evdb__my_stream_release(evdb__dconn *dc)
{
    if (dc->mres) {
        /* An unbuffered result still tied to the handle would read (and
         * block on) the rest of its rows when freed: untie it first. The
         * field is public in mysql.h. */
        dc->mres->handle = NULL;
        mysql_free_result(dc->mres);
        dc->mres = NULL;
    }
    evdb__rbuild_free(dc->build);
    dc->build = NULL;
    dc->stream_open = false;
}

/* True when the result being built, plus extra bytes about to be added,
 * takes the query's results over the cap; the build is then dropped. */
static bool over_cap(evdb__dconn *dc, size_t extra)
{
    if (!dc->max_result_bytes || evdb__my_streaming(dc))
        return false; /* a stream's rows leave in batches */
    size_t used = dc->cap_used + evdb__rbuild_size(dc->build) + extra;
    if (used <= dc->max_result_bytes)
        return false;
    evdb__my_fail_too_big(dc);
    return true;
}

/* Building failed (out of memory, or a conversion error already
 * recorded): keep reading, build nothing more. */
static void drop_build(evdb__dconn *dc, int code, const char *msg)
{
    evdb__rbuild_free(dc->build);
    dc->build = NULL;
    evdb__result_free(dc->out.res);
    dc->out.res = NULL;
    if (code)
        evdb__my_fail_code(dc, code, msg);
}

/* A new result set of n columns: start building it unless the query
 * already failed (its rows are only drained then). */
static evdb__rbuild *begin_build(evdb__dconn *dc, unsigned n)
{
    dc->stream_rows = 0;
    dc->batch_rows = 0;
    dc->op_started = false;
    if (dc->out.failed)
        return NULL;
    evdb__rbuild *b = evdb__rbuild_new(n);
    if (!b)
        evdb__my_fail_code(dc, EVDB_ENOMEM, "out of memory building a MariaDB result");
    return b;
}

/* The result set was read to its end: hand its result over. */
static void end_build(evdb__dconn *dc, int64_t insert_id)
{
    evdb__rbuild *b = dc->build;
    dc->build = NULL;
    dc->stream_open = false;
    if (!b)
        return;
    /* SELECT's affected count is its row count, as store_result makes
     * it; unbuffered, Connector/C leaves it unset. */
    evdb__rbuild_set_affected(b, (int64_t)dc->stream_rows);
    evdb__rbuild_set_insert_id(b, insert_id);
    evdb__my_add_result(dc, evdb__rbuild_finish(b));
}

/* ---- text protocol ---- */

static void text_row(evdb__dconn *dc, MYSQL_ROW row, const unsigned long *len, unsigned n)
{
    if (dc->max_result_bytes) {
        size_t bytes = 0;
        for (unsigned i = 0; i < n; i++)
            bytes += row[i] ? len[i] : 0;
        if (over_cap(dc, bytes))
            return;
    }
    /* Lengths, not strlen: text and BLOB columns may hold NULs. */
    int rc = evdb__rbuild_text_row(dc->build, row, len);
    if (rc) {
        drop_build(dc, EVDB_ENOMEM, "out of memory building a MariaDB result");
        return;
    }
    (void)over_cap(dc, 0); /* the cells' arrays may have grown past it */
}

static int text_columns(evdb__rbuild *b, void *res)
{
    return evdb__my_text_columns(b, res);
}

/* mysql_use_result for the result set that real_query or next_result
 * announced (no I/O). False when there is none. */
static bool text_open(evdb__dconn *dc)
{
    MYSQL *m = dc->m;
    dc->mres = mysql_use_result(m);
    if (!dc->mres)
        return false;
    dc->stream_open = true;
    dc->build = begin_build(dc, mysql_num_fields(dc->mres));
    if (dc->build) {
        if (evdb__my_text_columns(dc->build, dc->mres))
            drop_build(dc, EVDB_ENOMEM, "out of memory building a MariaDB result");
        else
            (void)over_cap(dc, 0);
    }
    return true;
}

enum evdb__my_stream evdb__my_text_stream(evdb__dconn *dc, int ready)
{
    MYSQL *m = dc->m;
    if (!dc->stream_open && !text_open(dc)) {
        /* No result set is normal for INSERT and friends (field count 0);
         * with a field count, or an error recorded, the rows cannot be
         * read. */
        if (mysql_field_count(m) > 0 || mysql_errno(m))
            return EVDB__MY_STREAM_ERROR;
        if (!dc->out.failed)
            evdb__my_add_result(dc, evdb__my_result_text(m, NULL));
        return EVDB__MY_STREAM_END;
    }
    unsigned n = mysql_num_fields(dc->mres);
    for (;;) {
        if (evdb__my_stream_stop(dc))
            return EVDB__MY_STREAM_WAIT; /* paused: the server blocks */
        MYSQL_ROW row = NULL;
        int mask = dc->op_started ? mysql_fetch_row_cont(&row, dc->mres, ready)
                                  : mysql_fetch_row_start(&row, dc->mres);
        dc->op_started = true;
        if (mask) {
            dc->mask = mask;
            return EVDB__MY_STREAM_WAIT;
        }
        dc->op_started = false;
        if (!row)
            break;
        dc->stream_rows++;
        if (dc->build)
            text_row(dc, row, mysql_fetch_lengths(dc->mres), n);
        if (dc->build && evdb__my_streaming(dc))
            evdb__my_stream_rows(dc, false, n, text_columns, dc->mres);
    }
    if (dc->build && evdb__my_streaming(dc) && !mysql_errno(m))
        evdb__my_stream_rows(dc, true, n, text_columns, dc->mres);
    /* The last fetch (end of rows or an error) untied the result from the
     * handle, so freeing it does no I/O. */
    mysql_free_result(dc->mres);
    dc->mres = NULL;
    if (mysql_errno(m)) {
        drop_build(dc, 0, NULL);
        dc->stream_open = false;
        return EVDB__MY_STREAM_ERROR;
    }
    end_build(dc, (int64_t)mysql_insert_id(m));
    return EVDB__MY_STREAM_END;
}

/* ---- prepared statements ---- */

static void stmt_row(evdb__dconn *dc, MYSQL_STMT *stmt, unsigned n)
{
    if (over_cap(dc, evdb__my_stmt_row_bytes(&dc->rows, n)))
        return;
    bool fetch_err = false;
    if (evdb__my_stmt_row(stmt, &dc->rows, dc->build, n, &fetch_err)) {
        if (fetch_err)
            evdb__my_fail_mysql(dc, mysql_stmt_errno(stmt), mysql_stmt_sqlstate(stmt),
                                mysql_stmt_error(stmt));
        drop_build(dc, EVDB_ENOMEM, "out of memory building a MariaDB result");
        return;
    }
    (void)over_cap(dc, 0);
}

/* The next batch's columns: binding again sets them (the binding itself
 * is unchanged, so the rows already fetched stay valid). */
static int stmt_columns(evdb__rbuild *b, void *arg)
{
    evdb__dconn *dc = arg;
    bool fetch_err = false;
    return evdb__my_stmt_bind(dc->stream_stmt, &dc->rows, b, true, &fetch_err) ? EVDB_ENOMEM : 0;
}

/* Bind the statement's result buffers for the result set that execute or
 * next_result announced. Always, also when the rows are only drained: a
 * cached statement would otherwise convert them into the staging of an
 * earlier query, which may be gone. False when binding failed (recorded). */
static bool stmt_open(evdb__dconn *dc, MYSQL_STMT *stmt, unsigned n)
{
    dc->stream_open = true;
    dc->build = begin_build(dc, n);
    bool fetch_err = false;
    int rc = evdb__my_stmt_bind(stmt, &dc->rows, dc->build, true, &fetch_err);
    if (rc) {
        if (fetch_err)
            evdb__my_fail_mysql(dc, mysql_stmt_errno(stmt), mysql_stmt_sqlstate(stmt),
                                mysql_stmt_error(stmt));
        drop_build(dc, EVDB_ENOMEM, "out of memory building a MariaDB result");
        dc->stream_open = false;
        return false;
    }
    if (dc->build)
        (void)over_cap(dc, 0);
    return true;
}

enum evdb__my_stream evdb__my_stmt_stream(evdb__dconn *dc, MYSQL_STMT *stmt, int ready)
{
    unsigned n = mysql_stmt_field_count(stmt);
    dc->stream_stmt = stmt;
    if (!dc->stream_open && !stmt_open(dc, stmt, n))
        return EVDB__MY_STREAM_FLUSH;
    for (;;) {
        if (evdb__my_stream_stop(dc))
            return EVDB__MY_STREAM_WAIT; /* paused: the server blocks */
        int mask = dc->op_started ? mysql_stmt_fetch_cont(&dc->iret, stmt, ready)
                                  : mysql_stmt_fetch_start(&dc->iret, stmt);
        dc->op_started = true;
        if (mask) {
            dc->mask = mask;
            return EVDB__MY_STREAM_WAIT;
        }
        dc->op_started = false;
        if (dc->iret == MYSQL_NO_DATA)
            break;
        if (dc->iret != 0 && dc->iret != MYSQL_DATA_TRUNCATED) {
            /* The statement is done (Connector/C marks it so): no rows
             * remain to drain. */
            drop_build(dc, 0, NULL);
            dc->stream_open = false;
            evdb__my_rows_done(&dc->rows);
            return EVDB__MY_STREAM_ERROR;
        }
        dc->stream_rows++;
        if (dc->build)
            stmt_row(dc, stmt, n);
        if (dc->build && evdb__my_streaming(dc))
            evdb__my_stream_rows(dc, false, n, stmt_columns, dc);
    }
    if (dc->build && evdb__my_streaming(dc))
        evdb__my_stream_rows(dc, true, n, stmt_columns, dc);
    evdb__my_rows_done(&dc->rows);
    end_build(dc, (int64_t)mysql_stmt_insert_id(stmt));
    return EVDB__MY_STREAM_END;
}
