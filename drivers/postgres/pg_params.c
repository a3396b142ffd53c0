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

/* Room for one rendered number: "-9223372036854775808" or a %.17g double
 * ("-1.7976931348623157e+308"), with the NUL. */
#define NUM_MAX 32

int evdb__pg_params_check(const evdb__query *q, evdb_error *err)
{
    for (size_t i = 0; i < q->nparams; i++) {
        const evdb_value *v = &q->params[i];
        if (v->type == EVDB_TYPE_TEXT && v->u.s.len && memchr(v->u.s.ptr, '\0', v->u.s.len)) {
            evdb__error_set(err, EVDB_EINVAL, 0, NULL,
                            "parameter $%zu: text contains a NUL byte, which PostgreSQL text "
                            "cannot hold (send binary data with evdb_bytes)",
                            i + 1);
            return EVDB_EINVAL;
        }
    }
    return 0;
}

static bool reserve(pg_params *p, size_t n)
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
    if (n * NUM_MAX > p->text_cap) {
        char *text = evdb__realloc(p->text, n * NUM_MAX);
        if (!text)
            return false;
        p->text = text;
        p->text_cap = n * NUM_MAX;
    }
    return true;
}

/* The shortest %.Ng rendering that reads back as the same double, so 0.1
 * goes out as "0.1" (numeric columns keep it exact), never as
 * 0.10000000000000001. */
static void put_double(char *out, double d)
{
    if (isnan(d)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(d)) {
        strcpy(out, d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    for (int prec = 15; prec < 17; prec++) {
        snprintf(out, NUM_MAX, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
    snprintf(out, NUM_MAX, "%.17g", d);
}

int evdb__pg_params_encode(pg_params *p, const evdb__query *q)
{
    size_t n = q->nparams;
    if (!n)
        return 0;
    if (!reserve(p, n))
        return EVDB_ENOMEM;
    char *num = p->text;
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
        case EVDB_TYPE_DOUBLE:
            put_double(num, v->u.d);
            p->values[i] = num;
            num += NUM_MAX;
            break;
        case EVDB_TYPE_TEXT:
            /* The core's copy is NUL-terminated (src/value.c), and
             * evdb__pg_params_check ruled out NUL bytes inside. */
            p->values[i] = v->u.s.ptr;
            p->lengths[i] = (int)v->u.s.len;
            break;
        case EVDB_TYPE_BYTES:
            p->values[i] = v->u.s.ptr;
            p->lengths[i] = (int)v->u.s.len;
            p->formats[i] = 1;
            p->types[i] = PG_OID_BYTEA;
            break;
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
    if (!reserve(p, n))
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
