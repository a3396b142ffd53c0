/*
 * Typed parameter values -> libpq's parameter arrays. Values are never
 * interpolated into SQL.
 *
 * Formats and type OIDs:
 *   NULL    no value, OID 0
 *   bool    text "t"/"f", OID 16 (bool): SELECT $1 reads back as a bool
 *           and a bool never silently lands in a text or int column
 *   int     decimal text, OID 0
 *   double  shortest round-tripping "%.Ng" text ("Infinity", "-Infinity",
 *           "NaN"), OID 0
 *   text    the text itself, OID 0
 *   bytes   binary format, OID 17 (bytea): byte for byte, no escaping
 *   uint    decimal text: OID 0 up to INT64_MAX like int, numeric (1700)
 *           above, where no integer type reaches
 *   numeric the caller's decimal text (checked at submit), OID 1700
 *   json    the text, OID 114 (json): a jsonb column takes it by its
 *           assignment cast, and json is stored as written; jsonb
 *           operators (@>, ?) need $1::jsonb
 *   date, time, timetz, timestamp, timestamptz, interval, uuid
 *           binary format with their own OIDs: exact integers, no text
 *           to format or parse, independent of DateStyle / IntervalStyle
 *           (and the session's TimeZone: timestamptz is an instant)
 *   arrays  binary array format (no escaping) with the element type's
 *           array OID: int8[] for ints (= ANY on an int4 column still
 *           uses its index: int4 = int8 is in the same operator family),
 *           float8[], text[], bytea[], ...; numeric and uint elements as
 *           text array literals (numeric[]), which need no quoting
 * OID 0 lets the server infer each parameter's type from its context, the
 * way an untyped literal is: `WHERE int4col = $1` compares as int4 (and
 * can use the index), inserts into int, numeric, text or date columns
 * convert on the server, and `SELECT $1::int` works. The price is that a
 * parameter without context is text (`SELECT $1` returns "42"), and
 * `$1 + $2` needs a cast.
 *
 * libpq sends text-format values as C strings, so text holding a NUL byte
 * cannot be sent: such a query fails alone with EVDB_EINVAL.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"
#include "types_text.h"

/* Room for one rendered number: "-9223372036854775808" or a %.17g double
 * ("-1.7976931348623157e+308"), with the NUL. */
#define NUM_MAX 32

/* PostgreSQL's epoch (2000-01-01) in evdb's units. */
#define PG_EPOCH_DAYS 10957
#define PG_EPOCH_US (INT64_C(10957) * EVDB_USECS_PER_DAY)

static bool text_has_nul(const evdb_value *v)
{
    return (v->type == EVDB_TYPE_TEXT || v->type == EVDB_TYPE_JSON) && v->u.s.len &&
           memchr(v->u.s.ptr, '\0', v->u.s.len);
}

/* Bytes of one value in binary format (array elements and scalars). */
static size_t bin_size(const evdb_value *v)
{
    switch (v->type) {
    case EVDB_TYPE_BOOL:
        return 1;
    case EVDB_TYPE_DATE:
        return 4;
    case EVDB_TYPE_INT:
    case EVDB_TYPE_DOUBLE:
    case EVDB_TYPE_TIME:
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ:
        return 8;
    case EVDB_TYPE_TIMETZ:
        return 12;
    case EVDB_TYPE_INTERVAL:
    case EVDB_TYPE_UUID:
        return 16;
    default: /* text, bytes, json */
        return v->u.s.len;
    }
}

/* Array parameters whose elements go as a text literal: numbers that
 * have no binary form here (numeric's is base-10000 digit groups). */
static bool array_as_text(evdb_type elem)
{
    return elem == EVDB_TYPE_NUMERIC || elem == EVDB_TYPE_UINT;
}

/* Whether an evdb_array_text array has a NULL element. */
static bool array_text_has_null(const evdb_value *v)
{
    const char *const *t = v->u.a.ptr;
    for (size_t i = 0; i < v->u.a.n; i++)
        if (!t[i])
            return true;
    return false;
}

/* Bytes an array parameter takes encoded (binary, or the text literal
 * with its NUL). */
static size_t array_size(const evdb_value *v)
{
    evdb_type elem = evdb__array_elem(v);
    size_t n = v->u.a.n;
    if (array_as_text(elem)) {
        size_t size = 3 + n;
        for (size_t i = 0; i < n; i++) {
            evdb_value e = evdb__array_at(v, i);
            size += e.type == EVDB_TYPE_NULL   ? 4
                    : e.type == EVDB_TYPE_UINT ? EVDB__INT_TEXT_MAX
                                               : e.u.s.len;
        }
        return size;
    }
    /* ndim, flags, element OID, then one (size, lower bound) pair. */
    size_t size = 12 + (n ? 8 : 0);
    if (v->elem == EVDB_TYPE_BOOL)
        return size + n * 5;
    if (v->elem == EVDB_TYPE_INT || v->elem == EVDB_TYPE_DOUBLE)
        return size + n * 12;
    for (size_t i = 0; i < n; i++) {
        evdb_value e = evdb__array_at(v, i);
        size += 4 + (e.type == EVDB_TYPE_NULL ? 0 : bin_size(&e));
    }
    return size;
}

static int param_error(evdb_error *err, size_t i, const char *what)
{
    evdb__error_set(err, EVDB_EINVAL, 0, NULL, "parameter $%zu: %s", i + 1, what);
    return EVDB_EINVAL;
}

/* evdb__pg_params_check from parameter `from` on (out of line: the
 * common case never gets here, and needs none of its registers). */
__attribute__((noinline)) static int check_from(const evdb__query *q, size_t from, evdb_error *err)
{
    for (size_t i = from; i < q->nparams; i++) {
        const evdb_value *v = &q->params[i];
        if (text_has_nul(v))
            return param_error(err, i,
                               "text contains a NUL byte, which PostgreSQL text cannot hold "
                               "(send binary data with evdb_bytes)");
        if (v->type == EVDB_TYPE_TIME && (v->u.t.us < 0 || v->u.t.us > EVDB_USECS_PER_DAY))
            return param_error(err, i,
                               "a PostgreSQL time of day is 00:00:00 to 24:00:00 (a duration "
                               "is an interval: evdb_interval_value)");
        if (v->type != EVDB_TYPE_ARRAY)
            continue;
        for (size_t k = 0; v->elem == EVDB_TYPE_NULL && k < v->u.a.n; k++) {
            evdb_value e = evdb__array_at(v, k);
            if (text_has_nul(&e))
                return param_error(err, i, "an array element's text contains a NUL byte");
            if (e.type == EVDB_TYPE_TIME && (e.u.t.us < 0 || e.u.t.us > EVDB_USECS_PER_DAY))
                return param_error(err, i, "an array element's time of day is out of range");
        }
        if (array_size(v) > EVDB_VALUE_MAX_LEN)
            return param_error(err, i, "the array is over PostgreSQL's 1 GiB value limit");
    }
    return 0;
}

int evdb__pg_params_check(const evdb__query *q, evdb_error *err)
{
    /* NULL, bool, int, double: nothing to look at (the common case). */
    for (size_t i = 0; i < q->nparams; i++)
        if ((unsigned)q->params[i].type >= EVDB_TYPE_TEXT)
            return check_from(q, i, err);
    return 0;
}

static bool reserve(pg_params *p, size_t n, size_t extra)
{
    if (n > p->cap) {
        size_t cap = p->cap ? p->cap : 8;
        while (cap < n)
            cap *= 2;
        const char **values = evdb__realloc(p->values, cap * sizeof *values);
        if (!values)
            return false;
        p->values = values;
        int *lengths = evdb__realloc(p->lengths, cap * sizeof *lengths);
        if (!lengths)
            return false;
        p->lengths = lengths;
        int *formats = evdb__realloc(p->formats, cap * sizeof *formats);
        if (!formats)
            return false;
        p->formats = formats;
        Oid *types = evdb__realloc(p->types, cap * sizeof *types);
        if (!types)
            return false;
        p->types = types;
        p->cap = cap;
    }
    if (n * NUM_MAX + extra > p->text_cap) {
        char *text = evdb__realloc(p->text, n * NUM_MAX + extra);
        if (!text)
            return false;
        p->text = text;
        p->text_cap = n * NUM_MAX + extra;
    }
    return true;
}

/* The shortest %.Ng rendering that reads back as the same double, so 0.1
 * goes out as "0.1" (numeric columns keep it exact), never as
 * 0.10000000000000001. */
static void put_double(char *out, double d)
{
    if (isnan(d)) {
        memcpy(out, "NaN", sizeof "NaN");
        return;
    }
    if (isinf(d)) {
        const char *inf = d > 0 ? "Infinity" : "-Infinity";
        memcpy(out, inf, strlen(inf) + 1);
        return;
    }
    for (int prec = 15; prec < 17; prec++) {
        snprintf(out, NUM_MAX, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
    snprintf(out, NUM_MAX, "%.17g", d);
}

static char *put32(char *o, uint32_t v)
{
    o[0] = (char)(v >> 24);
    o[1] = (char)(v >> 16);
    o[2] = (char)(v >> 8);
    o[3] = (char)v;
    return o + 4;
}

static char *put64(char *o, uint64_t v)
{
    o = put32(o, (uint32_t)(v >> 32));
    return put32(o, (uint32_t)v);
}

/* PostgreSQL counts from 2000-01-01; its infinities are the int
 * extremes, as evdb's are. */
static uint64_t pg_timestamp(int64_t us)
{
    if (us == EVDB_TIMESTAMP_INFINITY || us == EVDB_TIMESTAMP_NEG_INFINITY)
        return (uint64_t)us;
    return (uint64_t)(us - PG_EPOCH_US);
}

/* One value in its binary send format at o (bin_size bytes); returns
 * the end. */
static char *put_bin(char *o, const evdb_value *v)
{
    switch (v->type) {
    case EVDB_TYPE_BOOL:
        *o = v->u.b ? 1 : 0;
        return o + 1;
    case EVDB_TYPE_INT:
        return put64(o, (uint64_t)v->u.i);
    case EVDB_TYPE_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->u.d, sizeof bits);
        return put64(o, bits);
    }
    case EVDB_TYPE_DATE: {
        int32_t d = v->u.date;
        if (d != EVDB_DATE_INFINITY && d != EVDB_DATE_NEG_INFINITY)
            d -= PG_EPOCH_DAYS;
        return put32(o, (uint32_t)d);
    }
    case EVDB_TYPE_TIME:
        return put64(o, (uint64_t)v->u.t.us);
    case EVDB_TYPE_TIMETZ:
        /* PostgreSQL keeps the zone as seconds west of UTC. */
        o = put64(o, (uint64_t)v->u.t.us);
        return put32(o, (uint32_t)-v->u.t.offset);
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ:
        return put64(o, pg_timestamp(v->u.t.us));
    case EVDB_TYPE_INTERVAL:
        o = put64(o, (uint64_t)v->u.iv.us);
        o = put32(o, (uint32_t)v->u.iv.days);
        return put32(o, (uint32_t)v->u.iv.months);
    case EVDB_TYPE_UUID:
        memcpy(o, v->u.uuid, 16);
        return o + 16;
    default: /* text, bytes, json: the bytes themselves */
        if (v->u.s.len)
            memcpy(o, v->u.s.ptr, v->u.s.len);
        return o + v->u.s.len;
    }
}

/* Scalar OIDs of the types sent in binary format and arrays' elements,
 * and the OIDs of their arrays. */
static Oid scalar_oid(evdb_type t)
{
    switch (t) {
    case EVDB_TYPE_BOOL:
        return PG_OID_BOOL;
    case EVDB_TYPE_INT:
        return PG_OID_INT8;
    case EVDB_TYPE_DOUBLE:
        return PG_OID_FLOAT8;
    case EVDB_TYPE_BYTES:
        return PG_OID_BYTEA;
    case EVDB_TYPE_JSON:
        return PG_OID_JSON;
    case EVDB_TYPE_DATE:
        return PG_OID_DATE;
    case EVDB_TYPE_TIME:
        return PG_OID_TIME;
    case EVDB_TYPE_TIMETZ:
        return PG_OID_TIMETZ;
    case EVDB_TYPE_TIMESTAMP:
        return PG_OID_TIMESTAMP;
    case EVDB_TYPE_TIMESTAMPTZ:
        return PG_OID_TIMESTAMPTZ;
    case EVDB_TYPE_INTERVAL:
        return PG_OID_INTERVAL;
    case EVDB_TYPE_UUID:
        return PG_OID_UUID;
    case EVDB_TYPE_NUMERIC:
    case EVDB_TYPE_UINT:
        return PG_OID_NUMERIC;
    default:
        return PG_OID_TEXT;
    }
}

static Oid array_oid(evdb_type elem)
{
    switch (elem) {
    case EVDB_TYPE_BOOL:
        return PG_OID_BOOL_ARRAY;
    case EVDB_TYPE_INT:
        return PG_OID_INT8_ARRAY;
    case EVDB_TYPE_DOUBLE:
        return PG_OID_FLOAT8_ARRAY;
    case EVDB_TYPE_BYTES:
        return PG_OID_BYTEA_ARRAY;
    case EVDB_TYPE_JSON:
        return PG_OID_JSON_ARRAY;
    case EVDB_TYPE_DATE:
        return PG_OID_DATE_ARRAY;
    case EVDB_TYPE_TIME:
        return PG_OID_TIME_ARRAY;
    case EVDB_TYPE_TIMETZ:
        return PG_OID_TIMETZ_ARRAY;
    case EVDB_TYPE_TIMESTAMP:
        return PG_OID_TIMESTAMP_ARRAY;
    case EVDB_TYPE_TIMESTAMPTZ:
        return PG_OID_TIMESTAMPTZ_ARRAY;
    case EVDB_TYPE_INTERVAL:
        return PG_OID_INTERVAL_ARRAY;
    case EVDB_TYPE_UUID:
        return PG_OID_UUID_ARRAY;
    case EVDB_TYPE_NUMERIC:
    case EVDB_TYPE_UINT:
        return PG_OID_NUMERIC_ARRAY;
    default:
        return PG_OID_TEXT_ARRAY;
    }
}

/* Array parameter v at o (array_size bytes at most); sets the format
 * and returns the length. */
static size_t put_array(char *o, const evdb_value *v, int *format)
{
    evdb_type elem = evdb__array_elem(v);
    size_t n = v->u.a.n;
    char *start = o;
    if (array_as_text(elem)) {
        /* {1.5,NULL,-2e3}: decimal text needs no quotes. */
        *o++ = '{';
        for (size_t i = 0; i < n; i++) {
            evdb_value e = evdb__array_at(v, i);
            if (i)
                *o++ = ',';
            if (e.type == EVDB_TYPE_NULL) {
                memcpy(o, "NULL", 4);
                o += 4;
            } else if (e.type == EVDB_TYPE_UINT) {
                o += evdb__uint_text(e.u.ui, o);
            } else {
                memcpy(o, e.u.s.ptr, e.u.s.len);
                o += e.u.s.len;
            }
        }
        *o++ = '}';
        *o = '\0';
        *format = 0;
        return (size_t)(o - start);
    }
    bool nulls = false;
    for (size_t i = 0; v->elem == EVDB_TYPE_NULL && i < n; i++)
        nulls |= evdb__array_at(v, i).type == EVDB_TYPE_NULL;
    nulls |= v->elem == EVDB_TYPE_TEXT && n && array_text_has_null(v);
    o = put32(o, n ? 1 : 0);
    o = put32(o, nulls ? 1 : 0);
    o = put32(o, scalar_oid(elem));
    if (n) {
        o = put32(o, (uint32_t)n);
        o = put32(o, 1); /* lower bound */
    }
    for (size_t i = 0; i < n; i++) {
        evdb_value e = evdb__array_at(v, i);
        if (e.type == EVDB_TYPE_NULL) {
            o = put32(o, UINT32_MAX); /* -1: NULL */
            continue;
        }
        o = put32(o, (uint32_t)bin_size(&e));
        o = put_bin(o, &e);
    }
    *format = 1;
    return (size_t)(o - start);
}

int evdb__pg_params_encode(pg_params *p, const evdb__query *q)
{
    size_t n = q->nparams;
    if (!n)
        return 0;
    /* Arrays need room of their own after the numbers. */
    size_t extra = 0;
    for (size_t i = 0; i < n; i++)
        if (q->params[i].type == EVDB_TYPE_ARRAY)
            extra += array_size(&q->params[i]) + 1; /* + 1: see below */
    if (!reserve(p, n, extra))
        return EVDB_ENOMEM;
    char *num = p->text, *big = p->text + n * NUM_MAX;
    for (size_t i = 0; i < n; i++) {
        const evdb_value *v = &q->params[i];
        p->formats[i] = 0;
        p->lengths[i] = 0;
        p->types[i] = PG_OID_UNKNOWN;
        switch (v->type) {
        case EVDB_TYPE_BOOL:
            p->values[i] = v->u.b ? "t" : "f";
            p->types[i] = PG_OID_BOOL;
            break;
        case EVDB_TYPE_INT:
            evdb__int_text(v->u.i, num);
            p->values[i] = num;
            num += NUM_MAX;
            break;
        case EVDB_TYPE_UINT:
            evdb__uint_text(v->u.ui, num);
            if (v->u.ui > (uint64_t)INT64_MAX)
                p->types[i] = PG_OID_NUMERIC;
            p->values[i] = num;
            num += NUM_MAX;
            break;
        case EVDB_TYPE_DOUBLE:
            put_double(num, v->u.d);
            p->values[i] = num;
            num += NUM_MAX;
            break;
        case EVDB_TYPE_TEXT:
        case EVDB_TYPE_NUMERIC:
        case EVDB_TYPE_JSON:
            /* The core's copy is NUL-terminated (src/value.c), and
             * evdb__pg_params_check ruled out NUL bytes inside. */
            p->values[i] = v->u.s.ptr;
            p->lengths[i] = (int)v->u.s.len;
            if (v->type != EVDB_TYPE_TEXT)
                p->types[i] = scalar_oid(v->type);
            break;
        case EVDB_TYPE_BYTES:
            p->values[i] = v->u.s.ptr;
            p->lengths[i] = (int)v->u.s.len;
            p->formats[i] = 1;
            p->types[i] = PG_OID_BYTEA;
            break;
        case EVDB_TYPE_DATE:
        case EVDB_TYPE_TIME:
        case EVDB_TYPE_TIMETZ:
        case EVDB_TYPE_TIMESTAMP:
        case EVDB_TYPE_TIMESTAMPTZ:
        case EVDB_TYPE_INTERVAL:
        case EVDB_TYPE_UUID:
            p->values[i] = num;
            p->lengths[i] = (int)(put_bin(num, v) - num);
            p->formats[i] = 1;
            p->types[i] = scalar_oid(v->type);
            num += NUM_MAX;
            break;
        case EVDB_TYPE_ARRAY: {
            size_t len = put_array(big, v, &p->formats[i]);
            p->values[i] = big;
            p->lengths[i] = (int)len;
            p->types[i] = array_oid(evdb__array_elem(v));
            /* A text literal's NUL (counted in array_size) stays. */
            big += len + 1;
            break;
        }
        case EVDB_TYPE_NULL:
        default:
            p->values[i] = NULL;
            break;
        }
    }
    return 0;
}

int evdb__pg_params_untyped(pg_params *p, size_t n)
{
    if (!n)
        return 0;
    if (!reserve(p, n, 0))
        return EVDB_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        p->values[i] = NULL;
        p->lengths[i] = 0;
        p->formats[i] = 0;
        p->types[i] = PG_OID_UNKNOWN;
    }
    return 0;
}

void evdb__pg_params_free(pg_params *p)
{
    evdb__free(p->values);
    evdb__free(p->lengths);
    evdb__free(p->formats);
    evdb__free(p->types);
    evdb__free(p->text);
    memset(p, 0, sizeof *p);
}
