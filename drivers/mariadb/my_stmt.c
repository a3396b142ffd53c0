/*
 * Queries with parameters, as server-side prepared statements:
 *   [evict the least recently used statement] -> prepare (unless cached)
 *   -> bind parameters -> execute -> store_result -> rows (no I/O)
 *      (under a result-size cap: a fetch per row, unbuffered, instead)
 *   -> next_result while more result sets follow (CALL)
 *   -> close the statement unless it stays cached (a cached one whose
 *      result failed part way is reset first: see finish).
 * Values travel in the binary protocol, never interpolated into SQL:
 * NULL as MYSQL_TYPE_NULL, bool as TINY, int64 as LONGLONG, uint64 as
 * unsigned LONGLONG, double as DOUBLE, text and JSON as STRING, bytes as
 * BLOB (the server treats BLOB parameters as binary strings, so every
 * byte arrives as sent), numeric as NEWDECIMAL text, a UUID as its
 * 36-character text, dates as DATE, timestamps as DATETIME (timestamptz
 * as its UTC wall clock) and times and intervals as TIME, all three as
 * MYSQL_TIME. What MariaDB cannot take was refused at send
 * (evdb__my_params_refuse).
 *
 * Statements are cached per connection by SQL text (my_cache.c), unless
 * the cache is off or the query says EVDB_QUERY_NO_CACHE.
 */
#include <stdio.h>
#include <string.h>

#include <errmsg.h>
#include <mysqld_error.h>

#include "my_internal.h"

static bool wants_cache(const evdb__dconn *dc)
{
    return dc->cache.limit && !(dc->q->flags & EVDB_QUERY_NO_CACHE);
}

/* The statement failed: record why, or give up the session. */
static enum evdb__my_run stmt_error(evdb__dconn *dc, MYSQL_STMT *stmt, evdb_error *err)
{
    unsigned no = mysql_stmt_errno(stmt);
    const char *state = mysql_stmt_sqlstate(stmt);
    if (!no) { /* some paths leave the error on the handle only */
        no = mysql_errno(dc->m);
        state = mysql_sqlstate(dc->m);
        if (evdb__my_errno_is_lost(no, state))
            return evdb__my_lost(dc, err, no, mysql_error(dc->m));
        evdb__my_fail_mysql(dc, no, state, mysql_error(dc->m));
        return EVDB__MY_RUN_WAIT;
    }
    if (evdb__my_errno_is_lost(no, state))
        return evdb__my_lost(dc, err, no, mysql_stmt_error(stmt));
    evdb__my_fail_mysql(dc, no, state, mysql_stmt_error(stmt));
    return EVDB__MY_RUN_WAIT; /* the caller moves on to finishing */
}

/* Parameter binds of s, sized for its placeholder count. */
static int alloc_binds(evdb__my_stmt *s)
{
    if (!s->nparams)
        return 0;
    s->pbind = evdb__calloc(s->nparams, sizeof *s->pbind);
    s->plen = evdb__calloc(s->nparams, sizeof *s->plen);
    s->pbool = evdb__calloc(s->nparams, sizeof *s->pbool);
    s->pnum = evdb__calloc(s->nparams, sizeof *s->pnum);
    return s->pbind && s->plen && s->pbool && s->pnum ? 0 : EVDB_ENOMEM;
}

/* The Connector/C type a parameter is bound as. */
static enum enum_field_types param_type(const evdb_value *v)
{
    switch (v->type) {
    case EVDB_TYPE_NULL:
        return MYSQL_TYPE_NULL;
    case EVDB_TYPE_BOOL:
        return MYSQL_TYPE_TINY;
    case EVDB_TYPE_INT:
    case EVDB_TYPE_UINT:
        return MYSQL_TYPE_LONGLONG;
    case EVDB_TYPE_DOUBLE:
        return MYSQL_TYPE_DOUBLE;
    case EVDB_TYPE_TEXT:
    case EVDB_TYPE_JSON:
    case EVDB_TYPE_UUID:
        return MYSQL_TYPE_STRING;
    case EVDB_TYPE_BYTES:
        return MYSQL_TYPE_BLOB;
    case EVDB_TYPE_NUMERIC:
        return MYSQL_TYPE_NEWDECIMAL;
    case EVDB_TYPE_DATE:
        return MYSQL_TYPE_DATE;
    case EVDB_TYPE_TIME:
    case EVDB_TYPE_INTERVAL:
        return MYSQL_TYPE_TIME;
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ:
        return MYSQL_TYPE_DATETIME;
    default:
        return MYSQL_TYPE_GEOMETRY; /* none of ours: refused by bind_params */
    }
}

/* Whether a parameter of type t goes as a MYSQL_TIME. */
static bool time_type(evdb_type t)
{
    switch (t) {
    case EVDB_TYPE_DATE:
    case EVDB_TYPE_TIME:
    case EVDB_TYPE_INTERVAL:
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ:
        return true;
    default:
        return false;
    }
}

/* Whether a parameter of type t is bound to s's own storage (so a later
 * query's value of the same type only needs copying there). */
static bool stored_type(evdb_type t)
{
    switch (t) {
    case EVDB_TYPE_NULL:
    case EVDB_TYPE_BOOL:
    case EVDB_TYPE_INT:
    case EVDB_TYPE_UINT:
    case EVDB_TYPE_DOUBLE:
    case EVDB_TYPE_UUID:
        return true;
    default:
        return time_type(t);
    }
}

/* Parameter i of s (not an int) into s's storage: the types past the
 * common case, out of line so that the int loop below saves no
 * registers for them. */
__attribute__((noinline)) static void copy_other(evdb__my_stmt *s, unsigned i, const evdb_value *v)
{
    switch (v->type) {
    case EVDB_TYPE_UINT:
        s->pnum[i].u = v->u.ui;
        break;
    case EVDB_TYPE_DOUBLE:
        s->pnum[i].d = v->u.d;
        break;
    case EVDB_TYPE_BOOL:
        s->pbool[i] = v->u.b ? 1 : 0;
        break;
    case EVDB_TYPE_UUID:
        evdb__my_uuid_text(v->u.uuid, s->pnum[i].uuid);
        break;
    default:
        if (time_type(v->type))
            (void)evdb__my_param_time(v, &s->pnum[i].t);
        break;
    }
}

/* Copy q's number, bool, date and UUID parameters into s's storage
 * (they were checked at send: evdb__my_param_time cannot fail here).
 * Ints, the common case, are copied in line. */
static inline void copy_numbers(evdb__my_stmt *s, const evdb__stmt *q)
{
    for (unsigned i = 0; i < s->nparams; i++) {
        const evdb_value *v = &q->params[i];
        if (__builtin_expect(v->type == EVDB_TYPE_INT, 1))
            s->pnum[i].i = v->u.i;
        else
            copy_other(s, i, v);
    }
}

/* Whether the binds Connector/C holds for s serve q as they are: they
 * point only into s's storage and q's parameters have the same types
 * (by bound type and signedness, each bound to the storage: a UUID and
 * a text are both strings, but only the UUID lives there). */
static bool binds_serve(const evdb__my_stmt *s, const evdb__stmt *q)
{
    if (!s->pstable)
        return false;
    for (unsigned i = 0; i < s->nparams; i++) {
        const evdb_value *v = &q->params[i];
        if (v->type == EVDB_TYPE_INT) { /* the common case, without the switches */
            if (s->pbind[i].buffer_type != MYSQL_TYPE_LONGLONG || s->pbind[i].is_unsigned)
                return false;
            continue;
        }
        if (param_type(v) != s->pbind[i].buffer_type || !stored_type(v->type) ||
            (v->type == EVDB_TYPE_UINT) != (s->pbind[i].is_unsigned != 0))
            return false;
    }
    return true;
}

/* Bind this query's values: numbers and bools are copied into the
 * statement's storage, text and bytes are pointed at (the core keeps them
 * alive until the query is reported). Binding costs more than the rest
 * of a point query's parameter handling, so a query whose parameters are
 * numbers of the types bound last only copies them. Returns 0, or records
 * the failure. */
static int bind_params(evdb__dconn *dc, evdb__my_stmt *s)
{
    if (dc->bulk_n)
        return evdb__my_bulk_bind(dc, s);
    if (s->bulk)
        evdb__my_bulk_disarm(s);
    const evdb__stmt *q = dc->cur;
    if (q->nparams != s->nparams) {
        char msg[128];
        snprintf(msg, sizeof msg, "query has %u placeholders but %zu parameters were given",
                 s->nparams, q->nparams);
        evdb__my_fail_code(dc, EVDB_EINVAL, msg);
        return -1;
    }
    if (!s->nparams)
        return 0;
    if (binds_serve(s, q)) {
        copy_numbers(s, q);
        return 0;
    }
    s->pstable = false;
    memset(s->pbind, 0, s->nparams * sizeof *s->pbind);
    bool stable = true;
    for (unsigned i = 0; i < s->nparams; i++) {
        const evdb_value *v = &q->params[i];
        MYSQL_BIND *b = &s->pbind[i];
        b->buffer_type = param_type(v);
        switch (v->type) {
        case EVDB_TYPE_NULL:
            break;
        case EVDB_TYPE_BOOL:
            b->buffer = &s->pbool[i];
            break;
        case EVDB_TYPE_INT:
            b->buffer = &s->pnum[i].i;
            break;
        case EVDB_TYPE_UINT:
            b->buffer = &s->pnum[i].u;
            b->is_unsigned = 1;
            break;
        case EVDB_TYPE_DOUBLE:
            b->buffer = &s->pnum[i].d;
            break;
        case EVDB_TYPE_UUID:
            b->buffer = s->pnum[i].uuid;
            s->plen[i] = EVDB__MY_UUID_TEXT;
            b->buffer_length = s->plen[i];
            b->length = &s->plen[i];
            break;
        case EVDB_TYPE_TEXT:
        case EVDB_TYPE_BYTES:
        case EVDB_TYPE_JSON:
        case EVDB_TYPE_NUMERIC:
            b->buffer = v->u.s.ptr ? (void *)v->u.s.ptr : (void *)"";
            s->plen[i] = (unsigned long)v->u.s.len;
            b->buffer_length = s->plen[i];
            b->length = &s->plen[i];
            stable = false;
            break;
        default: {
            if (time_type(v->type)) {
                b->buffer = &s->pnum[i].t;
                b->buffer_length = sizeof s->pnum[i].t;
                break;
            }
            char msg[64];
            snprintf(msg, sizeof msg, "parameter %u has an unsupported type", i + 1);
            evdb__my_fail_code(dc, EVDB_EINVAL, msg);
            return -1;
        }
        }
    }
    copy_numbers(s, q);
    /* Connector/C copies the binds; it reads the values at execute. */
    if (mysql_stmt_bind_param(s->stmt, s->pbind)) {
        evdb__my_fail_mysql(dc, mysql_stmt_errno(s->stmt), mysql_stmt_sqlstate(s->stmt),
                            mysql_stmt_error(s->stmt));
        return -1;
    }
    s->pstable = stable;
    return 0;
}

/* A query with parameters takes several commands (close an evicted
 * statement, prepare, execute). A KILL QUERY that lands between two of
 * them finds the session idle and is forgotten when the next command
 * starts, so the statement would then run to its end. Once the core has
 * given up on the query, no further command of it is sent. */
static bool abandoned(evdb__dconn *dc)
{
    if (!dc->q->cancel_requested)
        return false;
    evdb__my_fail_code(dc, EVDB_ECANCELED, "query cancelled before it was executed");
    return true;
}

/* A cached statement the server no longer knows (1243), or that it wants
 * prepared again (1615, after DDL changed what it refers to), leaves the
 * cache, so the next query prepares afresh. */
static void forget_if_stale(evdb__dconn *dc, evdb__my_stmt *s)
{
    unsigned no = (unsigned)dc->out.driver_code;
    if (s->cached && (no == ER_UNKNOWN_STMT_HANDLER || no == ER_NEED_REPREPARE))
        evdb__my_cache_remove(&dc->cache, s);
}

/* Execute found a result with a different number of columns than the
 * statement was prepared with (its table was altered). Connector/C then
 * fails the execute with the rows still on the wire and the statement's
 * column information stale. Closing the statement drains the rows; a read
 * runs once more with a fresh prepare, anything else fails rather than
 * taking effect twice. */
static void metadata_changed(evdb__dconn *dc, evdb__my_stmt *s)
{
    if (s->cached)
        evdb__my_cache_remove(&dc->cache, s);
    if (!dc->rerun_done && !dc->out.failed &&
        evdb__my_read_only_sql(dc->cur->sql, dc->cur->sql_len)) {
        dc->rerun = true;
        return;
    }
    evdb__my_fail_code(dc, EVDB_ESERVER,
                       "the statement's result columns changed (table altered) after it was "
                       "prepared; it ran, but its rows were discarded: run it again");
    dc->out.driver_code = CR_NEW_STMT_METADATA;
}

/* The statement's results are in (or it failed): keep it or close it.
 *
 * A cached statement whose execution succeeded but whose result then
 * failed (a runtime error such as "Subquery returns more than 1 row"
 * after some rows, or the KILL QUERY of a timeout) is reset before the
 * query is reported. Connector/C 3.3 leaves such a statement in its
 * fetching state: mysql_stmt_store_result gives up at the error packet,
 * and mysql_stmt_free_result then marks the statement as being fetched
 * unbuffered, so its next mysql_stmt_execute first reads the "rest" of
 * the rows, which the server never sends: the connection would wait
 * forever. mysql_stmt_reset (COM_STMT_RESET, one round trip, only after
 * such failures) puts the statement back to prepared without reading
 * rows, since the handle's status is ready again after the error. A
 * failure at execute itself leaves the statement prepared: nothing to do.
 * Uncached statements are closed anyway. */
static enum evdb__my_run finish(evdb__dconn *dc, evdb_error *err)
{
    evdb__my_stmt *s = dc->st;
    if (s && !s->cached) {
        EVDB__MY_SET_OP(dc, EVDB__MY_S_DISCARD);
        return EVDB__MY_RUN_WAIT; /* the caller loops into the discard */
    }
    if (s) {
        mysql_stmt_free_result(s->stmt); /* stored rows: no I/O */
        if (dc->out.failed && dc->st_executed) {
            EVDB__MY_SET_OP(dc, EVDB__MY_S_RESET);
            return EVDB__MY_RUN_WAIT; /* the caller loops into the reset */
        }
    }
    dc->st = NULL;
    evdb__my_report(dc, err);
    return EVDB__MY_RUN_DONE;
}

/* A result set's rows are done (read, or dropped): after a failure the
 * statement's error ends the query (the server sends nothing more after
 * an error); otherwise the next result set, or the end. WAIT: go on with
 * dc->op. In line: every query passes here once. */
__attribute__((always_inline)) static inline enum evdb__my_run
rows_done(evdb__dconn *dc, evdb__my_stmt *s, bool failed, evdb_error *err)
{
    if (failed) {
        enum evdb__my_run r = stmt_error(dc, s->stmt, err);
        return r == EVDB__MY_RUN_LOST ? r : finish(dc, err);
    }
    if (mysql_stmt_more_results(s->stmt)) {
        EVDB__MY_SET_OP(dc, EVDB__MY_S_NEXT);
        return EVDB__MY_RUN_WAIT;
    }
    return finish(dc, err);
}

/* After execute or next_result: store the result set, or take the counts
 * of a statement without one. In line in both steps: every query passes
 * here once. */
__attribute__((always_inline)) static inline enum evdb__my_run result_set(evdb__dconn *dc,
                                                                          evdb_error *err)
{
    MYSQL_STMT *stmt = dc->st->stmt;
    if (mysql_stmt_field_count(stmt) > 0) {
        /* Under the result-size cap the rows are not stored but fetched
         * one at a time (my_unbuffered.c). */
        EVDB__MY_SET_OP(dc, evdb__my_unbuffered(dc) ? EVDB__MY_S_FETCH : EVDB__MY_S_STORE);
        return EVDB__MY_RUN_WAIT;
    }
    bool fetch_err;
    evdb__my_add_result(dc, evdb__my_result_stmt(stmt, &dc->rows, NULL, &fetch_err));
    if (mysql_stmt_more_results(stmt)) {
        EVDB__MY_SET_OP(dc, EVDB__MY_S_NEXT);
        return EVDB__MY_RUN_WAIT;
    }
    return finish(dc, err);
}

/* Look the statement up, or make a new one (evicting if the cache is
 * full). Returns DONE when the query was reported at once. */
static enum evdb__my_run lookup(evdb__dconn *dc, evdb_error *err)
{
    bool cache = wants_cache(dc);
    /* The statement used last is the likeliest: compare it before
     * hashing the SQL. (dc->sql is the query's text, with the backstop's
     * prefix when it has one: my_backstop.c.) */
    evdb__my_stmt *s = cache ? evdb__my_cache_mru(&dc->cache, dc->sql, dc->sql_len) : NULL;
    uint64_t hash = 0;
    if (cache && !s) {
        hash = evdb__my_hash(dc->sql, dc->sql_len);
        s = evdb__my_cache_get(&dc->cache, dc->sql, dc->sql_len, hash);
    }
    if (s) {
        dc->st = s;
        if (bind_params(dc, s))
            return finish(dc, err);
        EVDB__MY_SET_OP(dc, EVDB__MY_S_EXECUTE);
        return EVDB__MY_RUN_WAIT;
    }
    s = evdb__my_stmt_entry_new(dc->sql, dc->sql_len, hash);
    if (s)
        s->stmt = mysql_stmt_init(dc->m);
    if (!s || !s->stmt) {
        evdb__my_stmt_entry_free(s);
        evdb__my_fail_code(dc, EVDB_ENOMEM, "out of memory preparing a MariaDB statement");
        return finish(dc, err);
    }
    /* Keep max_length current in store_result, so result columns get
     * staging buffers that fit (my_result.c). */
    my_bool on = 1;
    mysql_stmt_attr_set(s->stmt, STMT_ATTR_UPDATE_MAX_LENGTH, &on);
    dc->st = s;
    evdb__my_stmt *victim = cache ? evdb__my_cache_victim(&dc->cache) : NULL;
    if (victim) {
        evdb__my_cache_remove(&dc->cache, victim);
        dc->closing = victim->stmt;
        victim->stmt = NULL;
        evdb__my_stmt_entry_free(victim);
        EVDB__MY_SET_OP(dc, EVDB__MY_S_EVICT);
    } else {
        EVDB__MY_SET_OP(dc, EVDB__MY_S_PREPARE);
    }
    return EVDB__MY_RUN_WAIT;
}

/* A statement was closed (evicted or discarded); the handle is freed
 * whatever bret says. A failed COM_STMT_CLOSE means the session failed. */
static bool close_failed(evdb__dconn *dc)
{
    return dc->bret && evdb__my_errno_is_lost(mysql_errno(dc->m), mysql_sqlstate(dc->m));
}

/*
 * The states of a prepared-statement query, one step function each. A step
 * returns EVDB__MY_RUN_DONE or _LOST, which end evdb__my_stmt_run;
 * EVDB__MY_RUN_WAIT to go on at once with the state it put in dc->op (as
 * finish, rows_done, result_set and lookup do); or BLOCKED when
 * Connector/C waits for the socket (dc->mask says for what), the one case
 * in which evdb__my_stmt_run returns EVDB__MY_RUN_WAIT.
 */
#define BLOCKED 2
/* One call of a nonblocking Connector/C function: its _start the first
 * time, its _cont after a wait; returns BLOCKED from the step while it
 * waits. */
#define STEP(dc, cont_call, start_call)                                                            \
    do {                                                                                           \
        if (evdb__my_waits((dc), (dc)->op_started ? (cont_call) : (start_call)))                   \
            return BLOCKED;                                                                        \
    } while (0)

static int s_evict(evdb__dconn *dc, int ready, evdb_error *err)
{
    STEP(dc, mysql_stmt_close_cont(&dc->bret, dc->closing, ready),
         mysql_stmt_close_start(&dc->bret, dc->closing));
    dc->closing = NULL;
    if (close_failed(dc))
        return evdb__my_lost(dc, err, mysql_errno(dc->m), mysql_error(dc->m));
    EVDB__MY_SET_OP(dc, EVDB__MY_S_PREPARE);
    return EVDB__MY_RUN_WAIT;
}

static int s_prepare(evdb__dconn *dc, evdb__my_stmt *s, int ready, evdb_error *err)
{
    if (!dc->op_started && abandoned(dc))
        return finish(dc, err);
    /* A prepare can wait on the server (for a table's metadata lock): from
     * here on the query counts as sent, so a timeout sends its KILL QUERY
     * (my_driver.c my_query_sent). */
    dc->q->drv_state = EVDB__MY_Q_SENT;
    STEP(dc, mysql_stmt_prepare_cont(&dc->iret, s->stmt, ready),
         mysql_stmt_prepare_start(&dc->iret, s->stmt, s->sql, (unsigned long)s->sql_len));
    if (dc->iret) {
        if (stmt_error(dc, s->stmt, err) == EVDB__MY_RUN_LOST)
            return EVDB__MY_RUN_LOST;
        return finish(dc, err);
    }
    s->nparams = (unsigned)mysql_stmt_param_count(s->stmt);
    if (alloc_binds(s)) {
        evdb__my_fail_code(dc, EVDB_ENOMEM, "out of memory binding parameters");
        return finish(dc, err);
    }
    if (wants_cache(dc))
        evdb__my_cache_put(&dc->cache, s);
    if (bind_params(dc, s))
        return finish(dc, err);
    EVDB__MY_SET_OP(dc, EVDB__MY_S_EXECUTE);
    return EVDB__MY_RUN_WAIT;
}

static int s_execute(evdb__dconn *dc, evdb__my_stmt *s, int ready, evdb_error *err)
{
    if (!dc->op_started && abandoned(dc))
        return finish(dc, err);
    dc->q->drv_state = EVDB__MY_Q_SENT;
    STEP(dc, mysql_stmt_execute_cont(&dc->iret, s->stmt, ready),
         mysql_stmt_execute_start(&dc->iret, s->stmt));
    if (dc->iret && mysql_stmt_errno(s->stmt) == CR_NEW_STMT_METADATA) {
        metadata_changed(dc, s);
        return finish(dc, err);
    }
    if (dc->iret) {
        if (stmt_error(dc, s->stmt, err) == EVDB__MY_RUN_LOST)
            return EVDB__MY_RUN_LOST;
        forget_if_stale(dc, s);
        return finish(dc, err);
    }
    dc->st_executed = true;
    return result_set(dc, err);
}

static int s_store(evdb__dconn *dc, evdb__my_stmt *s, int ready, evdb_error *err)
{
    STEP(dc, mysql_stmt_store_result_cont(&dc->iret, s->stmt, ready),
         mysql_stmt_store_result_start(&dc->iret, s->stmt));
    if (!dc->iret && !dc->out.failed) {
        bool fetch_err;
        evdb_result *res = evdb__my_result_stmt(s->stmt, &dc->rows, s, &fetch_err);
        if (fetch_err)
            stmt_error(dc, s->stmt, err); /* rows were stored: no I/O error */
        else
            evdb__my_add_result(dc, res);
    }
    return rows_done(dc, s, dc->iret != 0, err);
}

static int s_fetch(evdb__dconn *dc, evdb__my_stmt *s, int ready, evdb_error *err)
{
    enum evdb__my_stream st = evdb__my_stmt_stream(dc, s->stmt, ready);
    if (st == EVDB__MY_STREAM_WAIT)
        return BLOCKED;
    if (st == EVDB__MY_STREAM_FLUSH) {
        EVDB__MY_SET_OP(dc, EVDB__MY_S_FLUSH);
        return EVDB__MY_RUN_WAIT;
    }
    return rows_done(dc, s, st == EVDB__MY_STREAM_ERROR, err);
}

/* The rows could not be bound (the failure is recorded): Connector/C reads
 * and drops them, one packet at a time. */
static int s_flush(evdb__dconn *dc, evdb__my_stmt *s, int ready, evdb_error *err)
{
    STEP(dc, mysql_stmt_free_result_cont(&dc->bret, s->stmt, ready),
         mysql_stmt_free_result_start(&dc->bret, s->stmt));
    return rows_done(dc, s, mysql_errno(dc->m) != 0, err);
}

static int s_next(evdb__dconn *dc, evdb__my_stmt *s, int ready, evdb_error *err)
{
    STEP(dc, mysql_stmt_next_result_cont(&dc->iret, s->stmt, ready),
         mysql_stmt_next_result_start(&dc->iret, s->stmt));
    if (dc->iret > 0 && stmt_error(dc, s->stmt, err) == EVDB__MY_RUN_LOST)
        return EVDB__MY_RUN_LOST;
    return dc->iret ? finish(dc, err) : result_set(dc, err);
}

/* See finish. The query's error is recorded already; the reset's own
 * outcome only decides the statement's fate. */
static int s_reset(evdb__dconn *dc, evdb__my_stmt *s, int ready, evdb_error *err)
{
    STEP(dc, mysql_stmt_reset_cont(&dc->bret, s->stmt, ready),
         mysql_stmt_reset_start(&dc->bret, s->stmt));
    if (dc->bret) {
        unsigned no = mysql_stmt_errno(s->stmt);
        const char *state = mysql_stmt_sqlstate(s->stmt);
        const char *msg = mysql_stmt_error(s->stmt);
        if (!no) {
            no = mysql_errno(dc->m);
            state = mysql_sqlstate(dc->m);
            msg = mysql_error(dc->m);
        }
        if (evdb__my_errno_is_lost(no, state))
            return evdb__my_lost(dc, err, no, msg);
        /* The session is fine but the statement is not: close it, and the
         * next query prepares afresh. */
        evdb__my_cache_remove(&dc->cache, s);
        EVDB__MY_SET_OP(dc, EVDB__MY_S_DISCARD);
        return EVDB__MY_RUN_WAIT;
    }
    dc->st = NULL;
    evdb__my_report(dc, err);
    return EVDB__MY_RUN_DONE;
}

static int s_discard(evdb__dconn *dc, evdb__my_stmt *s, int ready, evdb_error *err)
{
    if (!dc->op_started) {
        dc->closing = s->stmt;
        s->stmt = NULL;
        evdb__my_stmt_entry_free(s);
        dc->st = NULL;
    }
    STEP(dc, mysql_stmt_close_cont(&dc->bret, dc->closing, ready),
         mysql_stmt_close_start(&dc->bret, dc->closing));
    dc->closing = NULL;
    if (close_failed(dc))
        return evdb__my_lost(dc, err, mysql_errno(dc->m), mysql_error(dc->m));
    if (dc->rerun) {
        dc->rerun = false;
        dc->rerun_done = true;
        EVDB__MY_SET_OP(dc, EVDB__MY_OP_NONE);
        return EVDB__MY_RUN_WAIT;
    }
    evdb__my_report(dc, err);
    return EVDB__MY_RUN_DONE;
}

static int stmt_step(evdb__dconn *dc, int ready, evdb_error *err)
{
    evdb__my_stmt *s = dc->st;
    switch (dc->op) {
    case EVDB__MY_OP_NONE:
        dc->op_started = false;
        dc->st_executed = false;
        return lookup(dc, err);
    case EVDB__MY_S_EVICT:
        return s_evict(dc, ready, err);
    case EVDB__MY_S_PREPARE:
        return s_prepare(dc, s, ready, err);
    case EVDB__MY_S_EXECUTE:
        return s_execute(dc, s, ready, err);
    case EVDB__MY_S_STORE:
        return s_store(dc, s, ready, err);
    case EVDB__MY_S_FETCH:
        return s_fetch(dc, s, ready, err);
    case EVDB__MY_S_FLUSH:
        return s_flush(dc, s, ready, err);
    case EVDB__MY_S_NEXT:
        return s_next(dc, s, ready, err);
    case EVDB__MY_S_RESET:
        return s_reset(dc, s, ready, err);
    case EVDB__MY_S_DISCARD:
        return s_discard(dc, s, ready, err);
    default:
        evdb__my_fail_code(dc, EVDB_EPROTO, "MariaDB driver: bad statement state");
        return finish(dc, err);
    }
}

enum evdb__my_run evdb__my_stmt_run(evdb__dconn *dc, int ready, evdb_error *err)
{
    for (;;) {
        int r = stmt_step(dc, ready, err);
        if (r == BLOCKED)
            return EVDB__MY_RUN_WAIT;
        if (r != EVDB__MY_RUN_WAIT)
            return (enum evdb__my_run)r;
    }
}
