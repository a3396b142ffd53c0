/*
 * Conversion of MariaDB result sets into evdb results: column types, text
 * rows of the text protocol, and binary rows of prepared statements.
 *
 * Both protocols end up as the same cells: the text the server would have
 * sent over the text protocol. Prepared-statement columns are bound as
 * strings, and Connector/C formats numbers the way the server does
 * (DECIMAL as its literal), so a query gives the same cells either way.
 * Dates and times are fetched as MYSQL_TIME (or read from the row) and
 * written by my_types.c in the text protocol's exact form, the column's
 * decimals included. DOUBLE and integer columns are fetched binary and
 * printed here too (doubles in their shortest
 * round-trip form, see format_double), because Connector/C's conversion
 * costs more than the rest of a point query's client work, and the cells
 * keep the binary value for evdb_result_double / evdb_result_int; the
 * integration tests compare both paths over hundreds of thousands of
 * values. Rows were either all read by
 * store_result or are read one at a time by my_unbuffered.c, which hands
 * over each row once it has arrived: nothing here does I/O. Stored rows
 * of the common column types are read straight from Connector/C's row
 * buffers without mysql_stmt_fetch (see "stored binary rows read
 * directly" below), into the same cells.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "my_internal.h"

/* Values longer than this are not staged in the per-row scratch buffer but
 * fetched straight into the result (mysql_stmt_fetch_column), so one huge
 * BLOB does not make every row's scratch huge. */
#define STAGE_MAX 65536
/* Staging kept between queries at most (see shrink). */
#define STAGE_KEEP_MAX (256 * 1024)
/* Smallest staging slot per column. */
#define STAGE_MIN 16
/* Largest staging slot per column for rows read one at a time. */
#define STAGE_UNBUFFERED_MAX 1024
/* Connector/C's "no fixed number of decimals" (ma_global.h): a DOUBLE
 * column printed in its shortest form rather than with N decimals. */
#define MY_NOT_FIXED_DEC 31
/* Width Connector/C formats a double with when converting to a string
 * (MAX_DOUBLE_STRING_REP_LENGTH - 1): the server's text protocol uses the
 * same shortest form, so prepared results equal text results. */
#define DOUBLE_TEXT_MAX 300
/* The fast double formatter handles at most this many significant digits
 * (DBL_DIG: such a decimal is the only one of its length naming the
 * double) and the exponents the server prints without 'e'. */
#define FAST_DIGITS_MAX 15
#define FAST_DECPT_MIN (-14)
#define FAST_POW10_MAX 22

static int set_columns(evdb__rbuild *b, const MYSQL_FIELD *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        int rc = evdb__rbuild_column(b, i, f[i].name, evdb__my_coltype(&f[i]), f[i].type);
        if (!rc)
            rc = evdb__rbuild_column_info(b, i, EVDB_TYPE_NULL, evdb__my_typename(&f[i]));
        if (rc)
            return rc;
    }
    return 0;
}

int evdb__my_text_columns(evdb__rbuild *b, MYSQL_RES *res)
{
    return set_columns(b, mysql_fetch_fields(res), mysql_num_fields(res));
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

/* "00" to "99", for printing numbers two digits at a time. */
static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* 10^0 .. 10^19: every power of ten a uint64_t holds. */
static const uint64_t pow10_int[20] = {
    1ull,
    10ull,
    100ull,
    1000ull,
    10000ull,
    100000ull,
    1000000ull,
    10000000ull,
    100000000ull,
    1000000000ull,
    10000000000ull,
    100000000000ull,
    1000000000000ull,
    10000000000000ull,
    100000000000000ull,
    1000000000000000ull,
    10000000000000000ull,
    100000000000000000ull,
    1000000000000000000ull,
    10000000000000000000ull,
};

/* The number of decimal digits of u, without a loop: bits * 1233 / 4096
 * is log10(2^bits) rounded down (up to 64 bits), which is the number of
 * digits or one less; one comparison decides. u | 1 gives 0 its digit. */
static inline size_t u64_len(uint64_t u)
{
    uint64_t v = u | 1;
    size_t t = ((size_t)(64 - __builtin_clzll(v)) * 1233) >> 12;
    return t + (v >= pow10_int[t]);
}

/* u's n digits (n = u64_len(u)) at out, no NUL, two per division
 * straight into place: cells of thousands of rows are printed here. */
static inline void u64_put(uint64_t u, char *out, size_t n)
{
    char *p = out + n;
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        *--p = digit_pairs[d + 1];
        *--p = digit_pairs[d];
    }
    if (u >= 10) {
        *--p = digit_pairs[u * 2 + 1];
        *--p = digit_pairs[u * 2];
    } else {
        *--p = (char)('0' + u);
    }
}

/* u (below 10^n) as exactly n digits at out, zero-padded, no NUL. */
static inline void u64_put_fixed(uint64_t u, char *out, size_t n)
{
    char *p = out + n;
    while (p - out >= 2) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        *--p = digit_pairs[d + 1];
        *--p = digit_pairs[d];
    }
    if (p > out)
        *--p = (char)('0' + u);
}

/* u in decimal at out (room for 20 digits), no NUL; returns the length. */
static inline size_t u64_text(uint64_t u, char *out)
{
    size_t n = u64_len(u);
    u64_put(u, out, n);
    return n;
}

/* v in decimal at out (room for EVDB__INT_TEXT_MAX), no NUL. */
static size_t i64_text(int64_t v, char *out)
{
    if (v >= 0)
        return u64_text((uint64_t)v, out);
    *out = '-';
    return 1 + u64_text((uint64_t)0 - (uint64_t)v, out + 1);
}

/* Format v the way the server's text protocol prints a DOUBLE (shortest
 * round-trip digits, 'f' notation for decimal exponents -14..15), for the
 * common case of at most 15 significant digits: a fraction of the cost of
 * Connector/C's general conversion (dtoa in big-integer arithmetic, ~2,500
 * instructions a value). Returns the length, or 0 when the value is left
 * to Connector/C (zero, more digits, exponent notation, rounding ties).
 *
 * Why it is exact: for x = v * 10^k computed in double, if x is an integer
 * below 10^15 and x / 10^k == v (both correctly rounded, 10^k exact), the
 * decimal x * 10^-k reads back as v; the smallest such k gives the fewest
 * digits, and with at most 15 significant digits no other decimal of that
 * length reads back as v, so it is the shortest form dtoa would give. */
static size_t format_double(double v, char *out)
{
    static const double pow10[FAST_POW10_MAX + 1] = {
        1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
        1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    };
    const double limit = 1e15; /* 10^FAST_DIGITS_MAX */
    bool neg = v < 0;
    double a = neg ? -v : v;
    if (!(a > 0) || a >= limit)
        return 0; /* zero (and -0), NaN, or too many integer digits */
    for (int k = 0; k <= FAST_POW10_MAX; k++) {
        double x = a * pow10[k];
        if (x >= limit)
            return 0;
        /* Through int64_t: x < 10^15 fits, and the signed conversions
         * are single instructions where the unsigned ones are not. */
        int64_t xs = (int64_t)x;
        if ((double)xs != x || x / pow10[k] != a)
            continue;
        uint64_t xi = (uint64_t)xs;
        /* A trailing zero means a shorter form was missed (a rounding
         * tie at a smaller k): leave it to the exact path. */
        if (k > 0 && xi % 10 == 0)
            return 0;
        /* Below 10^-14 the server switches to exponent notation; only
         * possible with more than 14 decimals. */
        if (k > -FAST_DECPT_MIN) {
            int nd = 0;
            for (uint64_t t = xi; t; t /= 10)
                nd++;
            if (nd - k < FAST_DECPT_MIN)
                return 0;
        }
        /* The integer part, then the k decimals (zero-padded; the last
         * is not 0). */
        char *p = out;
        if (neg)
            *p++ = '-';
        if (k == 0)
            return (size_t)(p - out) + u64_text(xi, p);
        /* A value below 10^15 printed with more than 15 decimals has no
         * integer part. */
        bool whole = k <= FAST_DIGITS_MAX;
        p += u64_text(whole ? xi / pow10_int[k] : 0, p);
        *p++ = '.';
        u64_put_fixed(whole ? xi % pow10_int[k] : xi, p, (size_t)k);
        return (size_t)(p + k - out);
    }
    return 0;
}

/* A DOUBLE column fetched as a double and formatted here. */
static bool fast_double(const MYSQL_FIELD *f)
{
    return f->type == MYSQL_TYPE_DOUBLE && f->decimals >= MY_NOT_FIXED_DEC;
}

/* An integer column fetched as a 64-bit integer and printed here (the
 * conversion to text costs Connector/C more, and evdb_result_int then
 * needs no parsing). Not BIGINT UNSIGNED (past INT64_MAX), ZEROFILL or
 * YEAR (printed padded: "0000"). */
static bool fast_int(const MYSQL_FIELD *f)
{
    switch (f->type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
        return !(f->flags & ZEROFILL_FLAG);
    case MYSQL_TYPE_LONGLONG:
        return !(f->flags & (ZEROFILL_FLAG | UNSIGNED_FLAG));
    default:
        return false;
    }
}

/* A date or time column, fetched as a MYSQL_TIME and written by
 * evdb__my_time_text. */
static bool time_col(const MYSQL_FIELD *f)
{
    switch (f->type) {
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_TIMESTAMP:
        return true;
    default:
        return false;
    }
}

/* How a column is bound: as a double, a 64-bit integer, a MYSQL_TIME
 * (its own type: Connector/C reads the row by the field's type and fills
 * the structure for any of the four), or text. */
static enum enum_field_types bind_type(const MYSQL_FIELD *f)
{
    if (fast_double(f))
        return MYSQL_TYPE_DOUBLE;
    if (fast_int(f))
        return MYSQL_TYPE_LONGLONG;
    return time_col(f) ? f->type : MYSQL_TYPE_STRING;
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

/* A staging buffer grown for an unusually wide row is not kept for the
 * life of the connection. */
static void shrink(evdb__my_rows *rows)
{
    if (rows->buf_cap > STAGE_KEEP_MAX) {
        evdb__free(rows->buf);
        rows->buf = NULL;
        rows->buf_cap = 0;
        rows->bound_serial = 0;
    }
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
        rows->bound_serial = 0; /* the buffer moves */
        char *buf = evdb__realloc(rows->buf, size);
        if (!buf)
            return EVDB_ENOMEM;
        rows->buf = buf;
        rows->buf_cap = size;
    }
    return 0;
}

/* Longest text format_double writes: sign, "0.", 14 zeros, 15 digits
 * (evdb__int_text: 20). */
#define FAST_TEXT_MAX 40

static size_t slot_round(size_t s)
{
    return (s + sizeof(double) - 1) & ~(sizeof(double) - 1);
}

/* Staging slot for a column: the longest value seen (max_length, kept up
 * to date by STMT_ATTR_UPDATE_MAX_LENGTH during store_result), bounded.
 * Rows read one at a time have no max_length yet: the declared width
 * stands in, bounded lower (a TEXT column declares 64 KiB, and longer
 * values take fetch_long_cell anyway). */
static size_t slot_size(const MYSQL_FIELD *f, bool unbuffered)
{
    if (time_col(f))
        return sizeof(MYSQL_TIME);
    if (bind_type(f) != MYSQL_TYPE_STRING)
        return sizeof(double); /* a double or a 64-bit integer */
    size_t s = (unbuffered ? f->length : f->max_length) + 1;
    size_t max = unbuffered ? STAGE_UNBUFFERED_MAX : STAGE_MAX;
    if (s < STAGE_MIN)
        s = STAGE_MIN;
    return s > max ? max : s;
}

/* A double the fast formatter declined: Connector/C converts it from the
 * row with the server's rules. */
static int slow_double_cell(MYSQL_STMT *stmt, evdb__rbuild *b, unsigned i, bool *fetch_err)
{
    char text[DOUBLE_TEXT_MAX + 1];
    unsigned long got = 0;
    my_bool isnull = 0, err = 0;
    MYSQL_BIND one;
    memset(&one, 0, sizeof one);
    one.buffer_type = MYSQL_TYPE_STRING;
    one.buffer = text;
    one.buffer_length = sizeof text;
    one.length = &got;
    one.is_null = &isnull;
    one.error = &err;
    if (mysql_stmt_fetch_column(stmt, &one, i, 0)) {
        *fetch_err = true;
        return EVDB_EPROTO;
    }
    return evdb__rbuild_cell(b, text, got < sizeof text ? got : sizeof text);
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

/* Whether the result binding made for this statement's previous result
 * (serial) still serves this one, saving the binding's work on every
 * execution. Connector/C keeps a statement's binding across executions
 * unless it renews its columns (several result sets: a procedure, or
 * next_result), which clears bind_result_done or its copy of the binds
 * (both in the public MYSQL_STMT); a column whose type changed ("SELECT ?"
 * with another parameter type) or whose longest value outgrew its slot is
 * bound again. */
static bool binding_serves(const MYSQL_STMT *stmt, const evdb__my_rows *rows, const MYSQL_FIELD *f,
                           unsigned n, unsigned long serial)
{
    if (!serial || rows->bound_serial != serial || rows->bound_n != n || !stmt->bind_result_done ||
        !stmt->bind || mysql_stmt_more_results((MYSQL_STMT *)stmt))
        return false;
    for (unsigned i = 0; i < n; i++) {
        const MYSQL_BIND *bd = &rows->bind[i];
        enum enum_field_types t = bind_type(&f[i]);
        if (stmt->bind[i].buffer != bd->buffer || t != bd->buffer_type ||
            (t == MYSQL_TYPE_STRING && slot_size(&f[i], false) > bd->buffer_length) ||
            (t == MYSQL_TYPE_LONGLONG && bd->is_unsigned != !!(f[i].flags & UNSIGNED_FLAG)))
            return false;
    }
    return true;
}

/* b's columns from f, through entry's kept ones (below, with the direct
 * kinds they keep too). */
static int stmt_columns(evdb__rbuild *b, MYSQL_STMT *stmt, evdb__my_stmt *entry,
                        const MYSQL_FIELD *f, unsigned n);

/* evdb__my_stmt_bind; entry as for evdb__my_result_stmt (NULL with
 * unbuffered). */
static int bind_result(MYSQL_STMT *stmt, evdb__my_rows *rows, evdb__rbuild *b, bool unbuffered,
                       evdb__my_stmt *entry, bool *fetch_err)
{
    unsigned long serial = entry ? entry->serial : 0;
    *fetch_err = false;
    unsigned n = mysql_stmt_field_count(stmt);
    const MYSQL_FIELD *f = mariadb_stmt_fetch_fields(stmt);
    if (!f) {
        *fetch_err = true;
        return EVDB_EPROTO;
    }
    if (b && stmt_columns(b, stmt, entry, f, n))
        return EVDB_ENOMEM;
    if (binding_serves(stmt, rows, f, n, serial))
        return 0;
    rows->bound_serial = 0;
    /* Slots are laid out in order; each is rounded up so that the
     * double slots stay aligned. */
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += slot_round(slot_size(&f[i], unbuffered));
    if (rows_reserve(rows, n, total))
        return EVDB_ENOMEM;
    memset(rows->bind, 0, n * sizeof *rows->bind);
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        MYSQL_BIND *bd = &rows->bind[i];
        size_t s = slot_size(&f[i], unbuffered);
        bd->buffer_type = bind_type(&f[i]);
        /* Unsigned INT and smaller fit a signed 64-bit integer: read as
         * unsigned, widened. */
        bd->is_unsigned = bd->buffer_type == MYSQL_TYPE_LONGLONG && (f[i].flags & UNSIGNED_FLAG);
        bd->buffer = rows->buf + off;
        bd->buffer_length = s;
        bd->length = &rows->len[i];
        bd->is_null = &rows->isnull[i];
        bd->error = &rows->err[i];
        off += slot_round(s);
    }
    if (mysql_stmt_bind_result(stmt, rows->bind)) {
        *fetch_err = true;
        return EVDB_EPROTO;
    }
    rows->bound_serial = serial;
    rows->bound_n = n;
    return 0;
}

int evdb__my_stmt_bind(MYSQL_STMT *stmt, evdb__my_rows *rows, evdb__rbuild *b, bool unbuffered,
                       bool *fetch_err)
{
    return bind_result(stmt, rows, b, unbuffered, NULL, fetch_err);
}

int evdb__my_stmt_row(MYSQL_STMT *stmt, evdb__my_rows *rows, evdb__rbuild *b, unsigned n,
                      bool *fetch_err)
{
    for (unsigned i = 0; i < n; i++) {
        int crc;
        if (rows->isnull[i]) {
            crc = evdb__rbuild_cell(b, NULL, 0);
        } else if (rows->bind[i].buffer_type == MYSQL_TYPE_DOUBLE) {
            double d;
            char text[FAST_TEXT_MAX];
            memcpy(&d, rows->bind[i].buffer, sizeof d);
            size_t len = format_double(d, text);
            crc = len ? evdb__rbuild_cell_double(b, text, len, d)
                      : slow_double_cell(stmt, b, i, fetch_err);
        } else if (rows->bind[i].buffer_type == MYSQL_TYPE_LONGLONG) {
            int64_t v;
            char text[FAST_TEXT_MAX];
            memcpy(&v, rows->bind[i].buffer, sizeof v);
            crc = evdb__rbuild_cell_int(b, text, i64_text(v, text), v);
        } else if (rows->bind[i].buffer_type != MYSQL_TYPE_STRING) { /* a date or time */
            MYSQL_TIME t;
            char text[EVDB__MY_TIME_TEXT_MAX];
            const MYSQL_FIELD *f = &mariadb_stmt_fetch_fields(stmt)[i];
            memcpy(&t, rows->bind[i].buffer, sizeof t);
            crc = evdb__rbuild_cell(b, text, evdb__my_time_text(&t, f->type, f->decimals, text));
        } else if (rows->len[i] <= rows->bind[i].buffer_length)
            crc = evdb__rbuild_cell(b, rows->bind[i].buffer, rows->len[i]);
        else
            crc = fetch_long_cell(stmt, b, i, rows->len[i], fetch_err);
        if (crc)
            return crc;
    }
    return 0;
}

size_t evdb__my_stmt_row_bytes(const evdb__my_rows *rows, unsigned n)
{
    size_t sum = 0;
    for (unsigned i = 0; i < n; i++)
        if (!rows->isnull[i])
            sum += rows->bind[i].buffer_type != MYSQL_TYPE_STRING ? FAST_TEXT_MAX + sizeof(double)
                                                                  : rows->len[i];
    return sum;
}

void evdb__my_rows_done(evdb__my_rows *rows)
{
    shrink(rows);
}

/* ---- stored binary rows read directly ----
 *
 * After mysql_stmt_store_result, Connector/C holds every row as the
 * server sent it (stmt->result, public in mysql.h): a status byte, a NULL
 * bitmap offset by two bits, then the non-NULL values, fixed-size numbers
 * little-endian and everything else length-prefixed. mysql_stmt_fetch
 * converts each row into the bound buffers, and the cells were then
 * copied once more from there; for the column types below the rows are
 * read here instead, straight into the result, whose size is known
 * beforehand from the row count and the columns' longest values. Other
 * types (ZEROFILL, DOUBLE with fixed decimals, FLOAT) keep
 * Connector/C's conversion through mysql_stmt_fetch, as does a double the
 * fast formatter declines. */

enum direct_kind {
    DK_NONE, /* not read directly: the whole result takes mysql_stmt_fetch */
    DK_NULL, /* MYSQL_TYPE_NULL: always NULL */
    DK_I8,
    DK_U8,
    DK_I16,
    DK_U16,
    DK_I32,
    DK_U32,
    DK_I64,
    DK_U64,  /* BIGINT UNSIGNED: kept as an int64 only up to INT64_MAX */
    DK_YEAR, /* two bytes, shown with four digits at least ("0000") */
    DK_DOUBLE,
    DK_STR,  /* length-prefixed bytes, kept as they are */
    DK_DATE, /* DATE, DATETIME, TIMESTAMP: length-prefixed fields */
    DK_TIME, /* TIME: length-prefixed sign, days and clock */
};
_Static_assert(DK_DATE > DK_DOUBLE && DK_DATE > DK_STR && DK_TIME == DK_DATE + 1,
               "the dates' kinds come last (direct_cell tests k >= DK_DATE)");

/* YEAR is shown zero-padded to four digits, as the text protocol does. */
#define YEAR_DIGITS 4
/* Columns read directly at most (the kinds live on the stack). */
#define DIRECT_COLS_MAX 64
/* Result bytes per row a number may take: its text, NUL, the value. */
#define DIRECT_INT_BYTES (EVDB__INT_TEXT_MAX + 1 + sizeof(int64_t))
#define DIRECT_DOUBLE_BYTES (FAST_TEXT_MAX + 1 + sizeof(double))
#define DIRECT_TIME_BYTES (EVDB__MY_TIME_WIRE_TEXT_MAX + 1)
_Static_assert(EVDB__MY_TIME_WIRE_TEXT_MAX <= FAST_TEXT_MAX,
               "a date read from the row fits a cell's text buffer");

static enum direct_kind direct_kind(const MYSQL_FIELD *f)
{
    bool u = f->flags & UNSIGNED_FLAG;
    /* Strings are sent as text, which is what a string binding receives
     * too. */
    if (evdb__my_string_type(f->type))
        return DK_STR;
    switch (f->type) {
    case MYSQL_TYPE_NULL:
        return DK_NULL;
    case MYSQL_TYPE_TINY:
        return !fast_int(f) ? DK_NONE : u ? DK_U8 : DK_I8;
    case MYSQL_TYPE_SHORT:
        return !fast_int(f) ? DK_NONE : u ? DK_U16 : DK_I16;
    case MYSQL_TYPE_YEAR:
        return DK_YEAR;
    case MYSQL_TYPE_INT24: /* sent as 4 bytes */
    case MYSQL_TYPE_LONG:
        return !fast_int(f) ? DK_NONE : u ? DK_U32 : DK_I32;
    case MYSQL_TYPE_LONGLONG:
        if (f->flags & ZEROFILL_FLAG)
            return DK_NONE;
        return u ? DK_U64 : DK_I64;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_TIMESTAMP:
        return DK_DATE;
    case MYSQL_TYPE_TIME:
        return DK_TIME;
    case MYSQL_TYPE_DOUBLE:
        /* The value is copied from the row as the host's double. */
        if (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
            return DK_NONE;
        return fast_double(f) ? DK_DOUBLE : DK_NONE;
    case MYSQL_TYPE_JSON:
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
    case MYSQL_TYPE_BIT:
        /* The server sends these as text (DECIMAL as its literal) or, for
         * BIT, as the value's big-endian bytes, as the text protocol
         * does: what a string binding receives too. */
        return DK_STR;
    default:
        return DK_NONE;
    }
}

/* Result bytes per row a cell of kind k (column f) may take (see
 * direct_result). */
static size_t direct_row_bytes(enum direct_kind k, const MYSQL_FIELD *f)
{
    return k == DK_STR                    ? (size_t)f->max_length + 1
           : k == DK_DOUBLE               ? DIRECT_DOUBLE_BYTES
           : k == DK_DATE || k == DK_TIME ? DIRECT_TIME_BYTES
           : k == DK_NULL                 ? 0
                                          : DIRECT_INT_BYTES;
}

/* ---- a cached statement's result columns ----
 *
 * What a result needs from the field list and what does not change from
 * one execution to the next is derived once per statement (and again
 * when its columns change) instead of once per result: the columns as
 * set_columns makes them (evdb types and type names), each column's
 * direct kind, and the per-row bytes that do not depend on the rows. One
 * allocation: the columns packed in the form a result keeps them (a
 * result takes them with two copies, evdb__rbuild_columns_packed), what
 * they were derived from, and the kinds. */

/* The members of a field that evdb__my_coltype, evdb__my_typename and
 * direct_kind read, but the name and the extended type attributes (json,
 * uuid), which stay while the statement lives: flags, decimals, charsetnr
 * and type ("SELECT ?" follows its parameter's type, so any of these may
 * change between executions). MYSQL_FIELD (mysql.h) keeps them side by
 * side, so that a column is tested with one comparison of their bytes. */
#define COLKEY_SIZE                                                                                \
    (offsetof(MYSQL_FIELD, type) + sizeof(((MYSQL_FIELD *)0)->type) - offsetof(MYSQL_FIELD, flags))
_Static_assert(sizeof(((MYSQL_FIELD *)0)->type) == sizeof(unsigned) &&
                   COLKEY_SIZE == 4 * sizeof(unsigned),
               "flags, decimals, charsetnr and type are side by side in MYSQL_FIELD");
typedef struct colkey {
    unsigned char b[COLKEY_SIZE];
} colkey;

struct evdb__my_cols {
    unsigned n;
    bool direct;      /* every column has a direct kind (not DK_NONE) */
    size_t fixed_row; /* direct_result's bytes per row, the strings' max_length aside */
    size_t names_len; /* the names with their NULs */
    colkey *key;
    unsigned char *kind; /* enum direct_kind */
    void *packed;        /* the columns for evdb__rbuild_columns_packed */
};

void evdb__my_cols_free(struct evdb__my_cols *cols)
{
    evdb__free(cols);
}

static const void *colkey_at(const MYSQL_FIELD *f)
{
    return &f->flags;
}

static struct evdb__my_cols *cols_new(const MYSQL_FIELD *f, unsigned n)
{
    /* The columns as set_columns makes them, but for the length of the
     * names: the fields' (set_columns takes strlen; the getters read
     * names up to their NUL either way). */
    evdb__rcol *cols = evdb__malloc((n ? n : 1) * sizeof *cols);
    if (!cols)
        return NULL;
    size_t names = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = f[i].name ? f[i].name_length : 0;
        cols[i] = (evdb__rcol){f[i].name,
                               len,
                               evdb__my_coltype(&f[i]),
                               f[i].type,
                               EVDB_TYPE_NULL,
                               evdb__my_typename(&f[i])};
        names += len + 1;
    }
    /* The packed columns first: the head's size keeps them aligned. */
    size_t head = sizeof(struct evdb__my_cols);
    size_t packed = evdb__rcols_size(cols, n);
    size_t keys = n * sizeof(colkey);
    struct evdb__my_cols *k = evdb__malloc(head + packed + keys + n);
    if (!k) {
        evdb__free(cols);
        return NULL;
    }
    k->n = n;
    k->direct = true;
    k->fixed_row = 0;
    k->names_len = names;
    k->packed = (char *)k + head;
    evdb__rcols_pack(k->packed, cols, n);
    evdb__free(cols);
    k->key = (colkey *)(void *)((char *)k + head + packed);
    k->kind = (unsigned char *)k + head + packed + keys;
    for (unsigned i = 0; i < n; i++) {
        memcpy(k->key[i].b, colkey_at(&f[i]), COLKEY_SIZE);
        enum direct_kind dk = direct_kind(&f[i]);
        k->kind[i] = (unsigned char)dk;
        if (dk == DK_NONE)
            k->direct = false;
        else if (dk == DK_STR)
            k->fixed_row += 1; /* the NUL; max_length is the result's */
        else
            k->fixed_row += direct_row_bytes(dk, &f[i]);
    }
    return k;
}

/* Whether the kept columns still describe this result: the same count
 * and, column by column, the same colkey (the names stay while the
 * statement lives). On the way, *strings: the sum of the string
 * columns' max_length, the part of direct_result's row size that is
 * this result's (one pass over the columns for both). */
static bool cols_serve(const struct evdb__my_cols *k, const MYSQL_FIELD *f, unsigned n,
                       size_t *strings)
{
    if (!k || k->n != n)
        return false;
    size_t sum = 0;
    for (unsigned i = 0; i < n; i++) {
        if (memcmp(k->key[i].b, colkey_at(&f[i]), COLKEY_SIZE) != 0)
            return false;
        if (k->kind[i] == DK_STR)
            sum += f[i].max_length;
    }
    *strings = sum;
    return true;
}

/* entry's kept columns for this result, made afresh when they do not
 * describe it, and *strings as cols_serve gives it; NULL without an
 * entry, for one of several result sets (not kept), or without memory
 * (the caller derives the columns from f itself, and the next result
 * tries again). */
__attribute__((noinline)) static const struct evdb__my_cols *
cols_renew(evdb__my_stmt *entry, const MYSQL_FIELD *f, unsigned n, size_t *strings)
{
    evdb__my_cols_free(entry->cols);
    entry->cols = cols_new(f, n);
    /* Made from f: serves it, and sums the strings. */
    if (entry->cols && !cols_serve(entry->cols, f, n, strings))
        return NULL;
    return entry->cols;
}

/* In line in both callers (the making afresh is out of line): called for
 * every result. */
static inline const struct evdb__my_cols *cols_current(MYSQL_STMT *stmt, evdb__my_stmt *entry,
                                                       const MYSQL_FIELD *f, unsigned n,
                                                       size_t *strings)
{
    if (!entry || mysql_stmt_more_results(stmt))
        return NULL;
    if (cols_serve(entry->cols, f, n, strings))
        return entry->cols;
    return cols_renew(entry, f, n, strings);
}

/* The columns from k (made for f): the same columns set_columns makes. */
static int kept_columns(evdb__rbuild *b, const struct evdb__my_cols *k)
{
    return evdb__rbuild_columns_packed(b, k->packed);
}

static int stmt_columns(evdb__rbuild *b, MYSQL_STMT *stmt, evdb__my_stmt *entry,
                        const MYSQL_FIELD *f, unsigned n)
{
    size_t strings;
    const struct evdb__my_cols *k = cols_current(stmt, entry, f, n, &strings);
    return k ? kept_columns(b, k) : set_columns(b, f, n);
}

/* Unsigned little-endian integer of n bytes (n a constant where it
 * counts, so that a little-endian host makes it one load). */
static inline uint64_t le_get(const unsigned char *p, unsigned n)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n == 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    if (n == 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    if (n == 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
    }
#endif
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* A length-encoded integer at *p (before end): the value, *p moved past
 * it; false when it runs past end or is not a length. */
__attribute__((noinline)) static bool lenenc_get_long(const unsigned char **p,
                                                      const unsigned char *end, uint64_t *len);

/* In line for the one-byte lengths (values up to 250 bytes), the rest
 * out of line. */
static inline bool lenenc_get(const unsigned char **p, const unsigned char *end, uint64_t *len)
{
    const unsigned char *q = *p;
    if (__builtin_expect(q < end && *q < 251, 1)) {
        *len = *q;
        *p = q + 1;
        return true;
    }
    return lenenc_get_long(p, end, len);
}

static bool lenenc_get_long(const unsigned char **p, const unsigned char *end, uint64_t *len)
{
    const unsigned char *q = *p;
    if (q >= end)
        return false;
    unsigned n;
    switch (*q) {
    case 251:
    case 255:
        return false; /* NULL marker / error: no length in a binary row */
    case 252:
        n = 2;
        break;
    case 253:
        n = 3;
        break;
    case 254:
        n = 8;
        break;
    default:
        *len = *q;
        *p = q + 1;
        return true;
    }
    if ((size_t)(end - q) < 1 + (size_t)n)
        return false;
    *len = le_get(q + 1, n);
    *p = q + 1 + n;
    return true;
}

/* A date or time cell of column f at *p (length-prefixed) as its text
 * into text (room for EVDB__MY_TIME_WIRE_TEXT_MAX). 0 or EVDB_EPROTO. */
__attribute__((noinline)) static int direct_time(evdb__rcell *x, char *text, const MYSQL_FIELD *f,
                                                 const unsigned char **p, const unsigned char *end)
{
    const unsigned char *q = *p;
    uint64_t len;
    MYSQL_TIME t;
    if (!lenenc_get(&q, end, &len) || len > (uint64_t)(end - q) ||
        !evdb__my_time_wire(q, (size_t)len, f->type, &t))
        return EVDB_EPROTO;
    *p = q + len;
    x->ptr = text;
    x->len = evdb__my_time_text(&t, f->type, f->decimals, text);
    x->kept = EVDB__RCELL_TEXT;
    return 0;
}

/* One cell of kind k (column f) at *p into x (a number's or a date's
 * text into text, room for FAST_TEXT_MAX). 0, EVDB_EPROTO (a row that
 * does not parse), or 1: a double the fast formatter declines. */
static int direct_cell(evdb__rcell *x, char *text, enum direct_kind k, const MYSQL_FIELD *f,
                       const unsigned char **p, const unsigned char *end)
{
    static const unsigned char width[] = {
        [DK_I8] = 1,  [DK_U8] = 1,  [DK_I16] = 2, [DK_U16] = 2,  [DK_I32] = 4,
        [DK_U32] = 4, [DK_I64] = 8, [DK_U64] = 8, [DK_YEAR] = 2, [DK_DOUBLE] = 8,
    };
    const unsigned char *q = *p;
    if (k == DK_NULL) {
        x->ptr = NULL; /* always flagged NULL; nothing in the row */
        return 0;
    }
    if (k == DK_STR) {
        uint64_t len;
        if (!lenenc_get(&q, end, &len) || len > (uint64_t)(end - q))
            return EVDB_EPROTO;
        *p = q + len;
        x->ptr = q;
        x->len = (size_t)len;
        x->kept = EVDB__RCELL_TEXT;
        return 0;
    }
    if (k >= DK_DATE) /* DK_DATE or DK_TIME: one test for the numbers */
        return direct_time(x, text, f, p, end);
    unsigned w = width[k];
    if ((size_t)(end - q) < w)
        return EVDB_EPROTO;
    *p = q + w;
    int64_t v;
    switch (k) {
    case DK_I8:
        // NOLINTNEXTLINE(bugprone-signed-char-misuse): TINYINT is signed
        v = (int8_t)q[0];
        break;
    case DK_U8:
        v = q[0];
        break;
    case DK_I16:
        v = (int16_t)(uint16_t)le_get(q, 2);
        break;
    case DK_U16:
        v = (uint16_t)le_get(q, 2);
        break;
    case DK_I32:
        v = (int32_t)(uint32_t)le_get(q, 4);
        break;
    case DK_U32:
        v = (uint32_t)le_get(q, 4);
        break;
    case DK_DOUBLE: {
        double d;
        memcpy(&d, q, sizeof d);
        size_t len;
        if (d == 0 && !signbit(d)) {
            text[0] = '0';
            len = 1;
        } else if (!(len = format_double(d, text))) {
            return 1;
        }
        x->ptr = text;
        x->len = len;
        x->kept = EVDB__RCELL_DOUBLE;
        x->v.d = d;
        return 0;
    }
    case DK_YEAR: {
        uint64_t y = le_get(q, 2);
        size_t n = u64_len(y);
        size_t pad = n < YEAR_DIGITS ? YEAR_DIGITS - n : 0;
        memset(text, '0', pad);
        u64_put(y, text + pad, n);
        x->ptr = text;
        x->len = pad + n;
        x->kept = EVDB__RCELL_INT;
        x->v.i = (int64_t)y;
        return 0;
    }
    case DK_U64: {
        uint64_t u = le_get(q, 8);
        if (u > (uint64_t)INT64_MAX) {
            /* Text only: evdb_result_uint64 parses it whole, and
             * evdb_result_int says it is out of range. */
            x->ptr = text;
            x->len = u64_text(u, text);
            x->kept = EVDB__RCELL_TEXT;
            return 0;
        }
        v = (int64_t)u;
        break;
    }
    default: /* DK_I64 */
        v = (int64_t)le_get(q, 8);
        break;
    }
    x->ptr = text;
    x->len = i64_text(v, text);
    x->kept = EVDB__RCELL_INT;
    x->v.i = v;
    return 0;
}

/* The stored rows of stmt into a new result with columns as
 * stmt_columns makes them. NULL with *tried false when a column is not
 * read directly or a double needs Connector/C's conversion (nothing was
 * consumed: mysql_stmt_fetch reads the same rows); NULL with *tried true
 * when out of memory or on a row that does not parse (*fetch_err). */
static evdb_result *direct_result(MYSQL_STMT *stmt, evdb__my_stmt *entry, unsigned n, bool *tried,
                                  bool *fetch_err)
{
    *tried = false;
    if (n > DIRECT_COLS_MAX)
        return NULL;
    const MYSQL_FIELD *f = mariadb_stmt_fetch_fields(stmt);
    if (!f)
        return NULL;
    /* Result bytes per row at most: names aside, each cell's text and
     * NUL, and a number's value; strings up to their longest value
     * (max_length, kept by STMT_ATTR_UPDATE_MAX_LENGTH). */
    size_t per_row = 0, names = 0;
    size_t strings;
    const struct evdb__my_cols *k = cols_current(stmt, entry, f, n, &strings);
    const unsigned char *kind;
    unsigned char kinds[DIRECT_COLS_MAX];
    if (k) {
        /* The kinds and the fixed sizes as the statement's kept columns
         * have them; only the strings' longest values are this
         * result's. */
        if (!k->direct)
            return NULL;
        kind = k->kind;
        per_row = k->fixed_row + strings;
        names = k->names_len;
    } else {
        for (unsigned i = 0; i < n; i++) {
            kinds[i] = (unsigned char)direct_kind(&f[i]);
            if (kinds[i] == DK_NONE)
                return NULL;
            per_row += direct_row_bytes((enum direct_kind)kinds[i], &f[i]);
            names += f[i].name_length + 1;
        }
        kind = kinds;
    }
    uint64_t nrows = mysql_stmt_num_rows(stmt);
    if (nrows > SIZE_MAX / 2 / (per_row + n))
        return NULL;
    evdb__rbuild *b = evdb__rbuild_new_sized(n, (size_t)nrows, names + (size_t)nrows * per_row);
    if (!b)
        return NULL;
    *tried = true;
    if (k ? kept_columns(b, k) : set_columns(b, f, n))
        goto fail;
    size_t nullbytes = (n + 9) / 8;
    evdb__rcell cells[DIRECT_COLS_MAX];
    char text[DIRECT_COLS_MAX][FAST_TEXT_MAX];
    for (const MYSQL_ROWS *row = stmt->result.data; row; row = row->next) {
        const unsigned char *p = (const unsigned char *)row->data;
        const unsigned char *end = p + row->length;
        const unsigned char *nulls = p + 1;
        if (row->length < 1 + nullbytes) {
            *fetch_err = true;
            goto fail;
        }
        p = nulls + nullbytes;
        for (unsigned i = 0; i < n; i++) {
            unsigned bit = i + 2;
            if (nulls[bit / 8] & (1u << (bit % 8))) {
                cells[i].ptr = NULL;
                continue;
            }
            int rc = direct_cell(&cells[i], text[i], (enum direct_kind)kind[i], &f[i], &p, end);
            if (rc == 1) {
                /* A double for Connector/C: start over the usual way. */
                evdb__rbuild_free(b);
                *tried = false;
                return NULL;
            }
            if (rc) {
                *fetch_err = true;
                goto fail;
            }
        }
        if (evdb__rbuild_row(b, cells))
            goto fail;
    }
    /* Leave the statement as fetching every row would: past the last
     * row, its fetch done. */
    stmt->result_cursor = NULL;
    (void)mysql_stmt_fetch(stmt);
    evdb__rbuild_set_affected(b, (int64_t)mysql_stmt_affected_rows(stmt));
    evdb__rbuild_set_insert_id(b, (int64_t)mysql_stmt_insert_id(stmt));
    return evdb__rbuild_finish(b);
fail:
    evdb__rbuild_free(b);
    return NULL;
}

evdb_result *evdb__my_result_stmt(MYSQL_STMT *stmt, evdb__my_rows *rows, evdb__my_stmt *entry,
                                  bool *fetch_err)
{
    *fetch_err = false;
    unsigned n = mysql_stmt_field_count(stmt);
    if (n) {
        bool tried;
        evdb_result *r = direct_result(stmt, entry, n, &tried, fetch_err);
        if (tried) {
            shrink(rows);
            return r;
        }
    }
    evdb__rbuild *b = evdb__rbuild_new(n);
    if (!b)
        return NULL;
    if (n) {
        if (bind_result(stmt, rows, b, false, entry, fetch_err))
            goto fail;
        for (;;) {
            int rc = mysql_stmt_fetch(stmt);
            if (rc == MYSQL_NO_DATA)
                break;
            if (rc != 0 && rc != MYSQL_DATA_TRUNCATED) {
                *fetch_err = true;
                goto fail;
            }
            if (evdb__my_stmt_row(stmt, rows, b, n, fetch_err))
                goto fail;
        }
    }
    evdb__rbuild_set_affected(b, (int64_t)mysql_stmt_affected_rows(stmt));
    evdb__rbuild_set_insert_id(b, (int64_t)mysql_stmt_insert_id(stmt));
    shrink(rows);
    return evdb__rbuild_finish(b);
fail:
    shrink(rows);
    evdb__rbuild_free(b);
    return NULL;
}
