/*
 * Bulk execution: a batch whose statements are all the same SQL (as
 * evdb_conn_execute_many makes it) runs as few COM_STMT_BULK_EXECUTE
 * commands instead of one execution per row. Connector/C sends them when
 * the statement has an array size (STMT_ATTR_ARRAY_SIZE) and the server
 * has MARIADB_CLIENT_STMT_BULK_OPERATIONS (MariaDB 10.2+);
 * mysql_stmt_execute_start / _cont drive it like a single execution.
 *
 * Only INSERT, REPLACE, UPDATE and DELETE without RETURNING go this way:
 * bulk execution gives back no result sets row by row.
 *
 * Binding is column-wise: per parameter one array over the chunk's rows,
 * numbers in place (TINY, LONGLONG, DOUBLE: Connector/C steps by their
 * size), strings, blobs, decimals and MYSQL_TIME values as arrays of
 * pointers with an array of lengths (Connector/C steps over pointers for
 * types without a fixed size), and an indicator array that marks NULLs
 * (STMT_INDICATOR_NULL). A column must hold one kind of value across the
 * rows (NULLs aside); otherwise the batch runs row by row.
 *
 * A chunk holds as many rows as keep its packet under the session's
 * limit (half of max_allowed_packet when known, else BULK_BUDGET_DEFAULT);
 * all chunks run inside the batch's transaction (my_batch.c), so the
 * batch stays all or nothing.
 *
 * What the server does when row K of a bulk execution fails (verified on
 * MariaDB 10.11 with InnoDB): the whole command fails with K's error and
 * none of its rows remain (the statement is rolled back as one, in
 * autocommit and inside a transaction alike); the error does not say
 * which row. my_batch.c therefore re-runs the chunk's rows one at a time
 * inside the same transaction to find K, and then undoes the batch
 * whatever that re-run finds.
 */
#include <stdio.h>
#include <string.h>

#include "my_internal.h"

/* Packet budget of a chunk when the session's limit is unknown. */
#define BULK_BUDGET_DEFAULT ((size_t)1 << 20)
/* ... and at most, even under a larger limit. */
#define BULK_BUDGET_MAX ((size_t)16 << 20)
/* Bytes a value takes in a bulk packet beyond its payload (indicator,
 * length prefix). */
#define BULK_VALUE_OVERHEAD 10

/* How a column of values is bound. */
enum bulk_kind {
    BK_NONE,   /* only NULLs so far */
    BK_TINY,   /* bool: one byte each */
    BK_LONG,   /* int64 / uint64: eight bytes each */
    BK_DOUBLE, /* eight bytes each */
    BK_PTR,    /* strings, blobs, decimals: pointer + length */
    BK_TIME,   /* dates and times: pointer to a MYSQL_TIME */
    BK_UNFIT   /* mixed kinds, or a type bulk binding does not take */
};

static enum bulk_kind kind_of(const evdb_value *v)
{
    switch (v->type) {
    case EVDB_TYPE_NULL:
        return BK_NONE;
    case EVDB_TYPE_BOOL:
        return BK_TINY;
    case EVDB_TYPE_INT:
    case EVDB_TYPE_UINT:
        return BK_LONG;
    case EVDB_TYPE_DOUBLE:
        return BK_DOUBLE;
    case EVDB_TYPE_TEXT:
    case EVDB_TYPE_JSON:
    case EVDB_TYPE_BYTES:
    case EVDB_TYPE_NUMERIC:
        return BK_PTR;
    case EVDB_TYPE_DATE:
    case EVDB_TYPE_TIME:
    case EVDB_TYPE_INTERVAL:
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ:
        return BK_TIME;
    default:
        return BK_UNFIT; /* UUID: its text is made per value, one at a time */
    }
}

/* The buffer type of a column whose first non-NULL value is v. */
static enum enum_field_types buffer_type(const evdb_value *v)
{
    switch (v->type) {
    case EVDB_TYPE_BOOL:
        return MYSQL_TYPE_TINY;
    case EVDB_TYPE_INT:
    case EVDB_TYPE_UINT:
        return MYSQL_TYPE_LONGLONG;
    case EVDB_TYPE_DOUBLE:
        return MYSQL_TYPE_DOUBLE;
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
        return MYSQL_TYPE_STRING;
    }
}

/* Bulk execution is for statements that change rows and return none:
 * INSERT, REPLACE, UPDATE, DELETE without RETURNING (a SELECT or a
 * RETURNING clause has result sets, which bulk execution does not give
 * back row by row). */
static bool bulk_statement(const evdb__stmt *s)
{
    static const char *const verbs[] = {"INSERT", "REPLACE", "UPDATE", "DELETE"};
    const char *end = s->sql + s->sql_len;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (evdb__my_keyword(s->sql, end, verbs[i], NULL))
            return !evdb__my_find_word(s->sql, end, "RETURNING");
    return false;
}

static bool same_sql(const evdb__stmt *a, const evdb__stmt *b)
{
    return a->sql_len == b->sql_len && a->nparams == b->nparams &&
           (a->sql == b->sql || memcmp(a->sql, b->sql, a->sql_len) == 0);
}

/* The first non-NULL value of column col, or NULL. Also checks that the
 * column holds one kind (and, for bool / int / uint and the time types,
 * one exact type, since the buffer type and signedness are per column). */
static const evdb_value *column_type(const evdb__query *q, size_t col, bool *fits)
{
    const evdb_value *first = NULL;
    *fits = true;
    for (size_t r = 0; r < q->nbatch; r++) {
        const evdb_value *v = &q->batch[r].params[col];
        if (v->type == EVDB_TYPE_NULL)
            continue;
        if (kind_of(v) == BK_UNFIT) {
            *fits = false;
            return NULL;
        }
        if (!first) {
            first = v;
            continue;
        }
        if (buffer_type(v) != buffer_type(first) ||
            (v->type == EVDB_TYPE_UINT) != (first->type == EVDB_TYPE_UINT)) {
            *fits = false;
            return NULL;
        }
    }
    return first;
}

/* The first non-NULL value of column col among the chunk's rows, or NULL
 * (evdb__my_bulk_fits checked that the whole batch agrees on its type). */
static const evdb_value *chunk_type(const evdb__dconn *dc, size_t col)
{
    for (size_t r = dc->bk; r < dc->bk + dc->bulk_n; r++) {
        const evdb_value *v = &dc->q->batch[r].params[col];
        if (v->type != EVDB_TYPE_NULL)
            return v;
    }
    return NULL;
}

bool evdb__my_bulk_fits(const evdb__dconn *dc)
{
    const evdb__query *q = dc->q;
    if (dc->opts.no_bulk || q->nbatch < 2 || !q->batch[0].nparams || !bulk_statement(&q->batch[0]))
        return false;
    unsigned long caps = 0;
    if (mariadb_get_infov(dc->m, MARIADB_CONNECTION_EXTENDED_SERVER_CAPABILITIES, &caps) ||
        !(caps & (MARIADB_CLIENT_STMT_BULK_OPERATIONS >> 32)))
        return false;
    for (size_t r = 1; r < q->nbatch; r++)
        if (!same_sql(&q->batch[0], &q->batch[r]))
            return false;
    for (size_t c = 0; c < q->batch[0].nparams; c++) {
        bool fits;
        column_type(q, c, &fits);
        if (!fits)
            return false;
    }
    return true;
}

static size_t value_bytes(const evdb_value *v)
{
    switch (kind_of(v)) {
    case BK_PTR:
        return v->u.s.len + BULK_VALUE_OVERHEAD;
    case BK_TIME:
        return sizeof(MYSQL_TIME) + BULK_VALUE_OVERHEAD;
    default:
        return sizeof(int64_t) + BULK_VALUE_OVERHEAD;
    }
}

size_t evdb__my_bulk_chunk(const evdb__dconn *dc)
{
    size_t budget = BULK_BUDGET_DEFAULT;
    if (dc->packet == EVDB__MY_PACKET_KNOWN && dc->max_packet / 2 > budget)
        budget = dc->max_packet / 2 < BULK_BUDGET_MAX ? dc->max_packet / 2 : BULK_BUDGET_MAX;
    const evdb__query *q = dc->q;
    size_t used = 0, n = 0;
    for (size_t r = dc->bk; r < q->nbatch; r++, n++) {
        size_t row = 0;
        for (size_t c = 0; c < q->batch[r].nparams; c++)
            row += value_bytes(&q->batch[r].params[c]);
        if (n && used + row > budget)
            break;
        used += row;
    }
    return n;
}

void evdb__my_bulk_release(evdb__dconn *dc)
{
    evdb__free(dc->bulk_buf);
    dc->bulk_buf = NULL;
}

void evdb__my_bulk_disarm(evdb__my_stmt *s)
{
    unsigned int none = 0;
    mysql_stmt_attr_set(s->stmt, STMT_ATTR_ARRAY_SIZE, &none);
    s->bulk = false;
    s->pstable = false;
}

/* Bytes of one column's arrays for n rows (each part rounded to 8). */
static size_t round8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t column_bytes(enum bulk_kind k, size_t n)
{
    size_t ind = round8(n);
    switch (k) {
    case BK_TINY:
        return ind + round8(n);
    case BK_PTR:
        return ind + n * sizeof(void *) + n * sizeof(unsigned long);
    case BK_TIME:
        return ind + n * sizeof(void *) + n * sizeof(MYSQL_TIME);
    default:
        return ind + n * sizeof(int64_t);
    }
}

/* Fill column col's arrays at p for the chunk's rows and point b at them;
 * returns the bytes used. */
static size_t fill_column(const evdb__dconn *dc, size_t col, enum bulk_kind k, char *p,
                          MYSQL_BIND *b)
{
    const evdb__query *q = dc->q;
    size_t n = dc->bulk_n;
    char *ind = p;
    char *data = p + round8(n);
    b->u.indicator = ind;
    b->buffer = data;
    void **ptrs = (void **)(void *)data;
    unsigned long *lens = (unsigned long *)(void *)(data + n * sizeof(void *));
    MYSQL_TIME *times = (MYSQL_TIME *)(void *)(data + n * sizeof(void *));
    if (k == BK_PTR)
        b->length = lens;
    for (size_t i = 0; i < n; i++) {
        const evdb_value *v = &q->batch[dc->bk + i].params[col];
        ind[i] = v->type == EVDB_TYPE_NULL ? STMT_INDICATOR_NULL : STMT_INDICATOR_NONE;
        switch (k) {
        case BK_TINY:
            data[i] = (char)(v->type == EVDB_TYPE_BOOL && v->u.b);
            break;
        case BK_LONG:
            ((int64_t *)(void *)data)[i] = v->type == EVDB_TYPE_NULL ? 0 : v->u.i;
            break;
        case BK_DOUBLE:
            ((double *)(void *)data)[i] = v->type == EVDB_TYPE_NULL ? 0 : v->u.d;
            break;
        case BK_PTR:
            ptrs[i] = v->type == EVDB_TYPE_NULL || !v->u.s.ptr ? (void *)"" : (void *)v->u.s.ptr;
            lens[i] = v->type == EVDB_TYPE_NULL ? 0 : (unsigned long)v->u.s.len;
            break;
        case BK_TIME:
            memset(&times[i], 0, sizeof times[i]);
            if (v->type != EVDB_TYPE_NULL)
                evdb__my_param_time(v, &times[i]); /* checked at send */
            ptrs[i] = &times[i];
            break;
        default:
            break;
        }
    }
    return column_bytes(k, n);
}

int evdb__my_bulk_bind(evdb__dconn *dc, evdb__my_stmt *s)
{
    const evdb__stmt *q = dc->cur;
    if (q->nparams != s->nparams) {
        char msg[128];
        snprintf(msg, sizeof msg, "query has %u placeholders but %zu parameters were given",
                 s->nparams, q->nparams);
        evdb__my_fail_code(dc, EVDB_EINVAL, msg);
        return -1;
    }
    size_t ncols = q->nparams, n = dc->bulk_n;
    size_t size = round8(ncols * sizeof(MYSQL_BIND));
    for (size_t c = 0; c < ncols; c++) {
        const evdb_value *t = chunk_type(dc, c);
        size += column_bytes(t ? kind_of(t) : BK_LONG, n); /* all NULL: any type */
    }
    evdb__my_bulk_release(dc);
    dc->bulk_buf = evdb__calloc(1, size);
    if (!dc->bulk_buf) {
        evdb__my_fail_code(dc, EVDB_ENOMEM, "out of memory binding a bulk execution");
        return -1;
    }
    MYSQL_BIND *binds = dc->bulk_buf;
    char *p = (char *)dc->bulk_buf + round8(ncols * sizeof(MYSQL_BIND));
    for (size_t c = 0; c < ncols; c++) {
        const evdb_value *t = chunk_type(dc, c);
        MYSQL_BIND *b = &binds[c];
        b->buffer_type = t ? buffer_type(t) : MYSQL_TYPE_LONGLONG;
        b->is_unsigned = t && t->type == EVDB_TYPE_UINT;
        p += fill_column(dc, c, t ? kind_of(t) : BK_LONG, p, b);
    }
    unsigned int rows = (unsigned int)n;
    s->bulk = true;
    s->pstable = false;
    if (mysql_stmt_attr_set(s->stmt, STMT_ATTR_ARRAY_SIZE, &rows) ||
        mysql_stmt_bind_param(s->stmt, binds)) {
        evdb__my_fail_mysql(dc, mysql_stmt_errno(s->stmt), mysql_stmt_sqlstate(s->stmt),
                            mysql_stmt_error(s->stmt));
        return -1;
    }
    return 0;
}
