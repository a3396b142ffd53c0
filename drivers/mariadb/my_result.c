/*
 * Conversion of MariaDB result sets into evdb results: column types, text
 * rows of the text protocol, and binary rows of prepared statements.
 *
 * Both protocols end up as the same cells: the text the server would have
 * sent over the text protocol. Prepared-statement columns are bound as
 * strings, and Connector/C formats numbers and dates the way the server
 * does (doubles in their shortest round-trip form, DECIMAL and dates as
 * their literals), so a query gives the same cells either way. All rows
 * were read by store_result: nothing here does I/O.
 */
#include <string.h>

#include "my_internal.h"

/* The character set number of binary strings (BINARY, VARBINARY, BLOB). */
#define BINARY_CHARSET_NR 63
/* Values longer than this are not staged in the per-row scratch buffer but
 * fetched straight into the result (mysql_stmt_fetch_column), so one huge
 * BLOB does not make every row's scratch huge. */
#define STAGE_MAX 65536
/* Smallest staging slot per column. */
#define STAGE_MIN 16

evdb_type evdb__my_coltype(const MYSQL_FIELD *f)
{
    switch (f->type) {
    case MYSQL_TYPE_TINY: /* TINYINT(1) too: it is a number, bool getters accept it */
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_YEAR:
        return EVDB_TYPE_INT;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
        return EVDB_TYPE_DOUBLE;
    case MYSQL_TYPE_NULL:
        return EVDB_TYPE_NULL;
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
        return f->charsetnr == BINARY_CHARSET_NR ? EVDB_TYPE_BYTES : EVDB_TYPE_TEXT;
    case MYSQL_TYPE_JSON:
    case MYSQL_TYPE_ENUM:
    case MYSQL_TYPE_SET:
        return EVDB_TYPE_TEXT;
    case MYSQL_TYPE_GEOMETRY:
        return EVDB_TYPE_BYTES;
    default: /* DECIMAL, NEWDECIMAL, dates and times, BIT */
        return EVDB_TYPE_OTHER;
    }
}

static int set_columns(evdb__rbuild *b, const MYSQL_FIELD *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        int rc = evdb__rbuild_column(b, i, f[i].name, evdb__my_coltype(&f[i]), f[i].type);
        if (rc)
            return rc;
    }
    return 0;
}

evdb_result *evdb__my_result_text(MYSQL *m, MYSQL_RES *res)
{
    unsigned n = res ? mysql_num_fields(res) : 0;
    evdb__rbuild *b = evdb__rbuild_new(n);
    if (!b)
        return NULL;
    if (res) {
        if (set_columns(b, mysql_fetch_fields(res), n))
            goto oom;
        for (MYSQL_ROW row = mysql_fetch_row(res); row; row = mysql_fetch_row(res)) {
            /* Lengths, not strlen: text and BLOB columns may hold NULs. */
            const unsigned long *len = mysql_fetch_lengths(res);
            for (unsigned i = 0; i < n; i++)
                if (evdb__rbuild_cell(b, row[i], row[i] ? len[i] : 0))
                    goto oom;
        }
    }
    evdb__rbuild_set_affected(b, (int64_t)mysql_affected_rows(m));
    evdb__rbuild_set_insert_id(b, (int64_t)mysql_insert_id(m));
    return evdb__rbuild_finish(b);
oom:
    evdb__rbuild_free(b);
    return NULL;
}

void evdb__my_rows_free(evdb__my_rows *rows)
{
    evdb__free(rows->bind);
    evdb__free(rows->len);
    evdb__free(rows->isnull);
    evdb__free(rows->err);
    evdb__free(rows->buf);
    memset(rows, 0, sizeof *rows);
}

/* Room for n columns and size bytes of staging. */
static int rows_reserve(evdb__my_rows *rows, size_t n, size_t size)
{
    if (rows->cap < n) {
        evdb__my_rows fresh = {0};
        fresh.bind = evdb__calloc(n, sizeof *fresh.bind);
        fresh.len = evdb__calloc(n, sizeof *fresh.len);
        fresh.isnull = evdb__calloc(n, sizeof *fresh.isnull);
        fresh.err = evdb__calloc(n, sizeof *fresh.err);
        if (!fresh.bind || !fresh.len || !fresh.isnull || !fresh.err) {
            evdb__my_rows_free(&fresh);
            return EVDB_ENOMEM;
        }
        fresh.cap = n;
        fresh.buf = rows->buf;
        fresh.buf_cap = rows->buf_cap;
        rows->buf = NULL;
        evdb__my_rows_free(rows);
        *rows = fresh;
    }
    if (rows->buf_cap < size) {
        char *buf = evdb__realloc(rows->buf, size);
        if (!buf)
            return EVDB_ENOMEM;
        rows->buf = buf;
        rows->buf_cap = size;
    }
    return 0;
}

/* Staging slot for a column: the longest value seen (max_length, kept up
 * to date by STMT_ATTR_UPDATE_MAX_LENGTH during store_result), bounded. */
static size_t slot_size(const MYSQL_FIELD *f)
{
    size_t s = f->max_length + 1;
    if (s < STAGE_MIN)
        s = STAGE_MIN;
    return s > STAGE_MAX ? STAGE_MAX : s;
}

/* Fetch column i of the current row straight into a result cell of its
 * full length (it did not fit its staging slot). */
static int fetch_long_cell(MYSQL_STMT *stmt, evdb__rbuild *b, unsigned i, unsigned long len,
                           bool *fetch_err)
{
    char *space = evdb__rbuild_cell_space(b, len);
    if (!space)
        return EVDB_ENOMEM;
    unsigned long got = 0;
    my_bool isnull = 0, err = 0;
    MYSQL_BIND one;
    memset(&one, 0, sizeof one);
    one.buffer_type = MYSQL_TYPE_STRING;
    one.buffer = space;
    one.buffer_length = len;
    one.length = &got;
    one.is_null = &isnull;
    one.error = &err;
    if (mysql_stmt_fetch_column(stmt, &one, i, 0)) {
        *fetch_err = true;
        return EVDB_EPROTO;
    }
    return 0;
}

evdb_result *evdb__my_result_stmt(MYSQL_STMT *stmt, evdb__my_rows *rows, bool *fetch_err)
{
    *fetch_err = false;
    unsigned n = mysql_stmt_field_count(stmt);
    evdb__rbuild *b = evdb__rbuild_new(n);
    if (!b)
        return NULL;
    if (n) {
        const MYSQL_FIELD *f = mariadb_stmt_fetch_fields(stmt);
        if (!f) {
            *fetch_err = true;
            goto fail;
        }
        if (set_columns(b, f, n))
            goto fail;
        size_t total = 0;
        for (unsigned i = 0; i < n; i++)
            total += slot_size(&f[i]);
        if (rows_reserve(rows, n, total))
            goto fail;
        memset(rows->bind, 0, n * sizeof *rows->bind);
        size_t off = 0;
        for (unsigned i = 0; i < n; i++) {
            MYSQL_BIND *bd = &rows->bind[i];
            size_t s = slot_size(&f[i]);
            bd->buffer_type = MYSQL_TYPE_STRING;
            bd->buffer = rows->buf + off;
            bd->buffer_length = s;
            bd->length = &rows->len[i];
            bd->is_null = &rows->isnull[i];
            bd->error = &rows->err[i];
            off += s;
        }
        if (mysql_stmt_bind_result(stmt, rows->bind)) {
            *fetch_err = true;
            goto fail;
        }
        for (;;) {
            int rc = mysql_stmt_fetch(stmt);
            if (rc == MYSQL_NO_DATA)
                break;
            if (rc != 0 && rc != MYSQL_DATA_TRUNCATED) {
                *fetch_err = true;
                goto fail;
            }
            for (unsigned i = 0; i < n; i++) {
                int crc;
                if (rows->isnull[i])
                    crc = evdb__rbuild_cell(b, NULL, 0);
                else if (rows->len[i] <= rows->bind[i].buffer_length)
                    crc = evdb__rbuild_cell(b, rows->bind[i].buffer, rows->len[i]);
                else
                    crc = fetch_long_cell(stmt, b, i, rows->len[i], fetch_err);
                if (crc)
                    goto fail;
            }
        }
    }
    evdb__rbuild_set_affected(b, (int64_t)mysql_stmt_affected_rows(stmt));
    evdb__rbuild_set_insert_id(b, (int64_t)mysql_stmt_insert_id(stmt));
    return evdb__rbuild_finish(b);
fail:
    evdb__rbuild_free(b);
    return NULL;
}
