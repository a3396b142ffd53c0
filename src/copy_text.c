/*
 * evdb_copy_write_row: rows of evdb values in COPY's text format.
 *
 * A field is first the value's text as the server's input function reads
 * it (its "raw" form), then escaped for COPY: backslash, tab, newline and
 * carriage return get a backslash, NULL is \N, fields are separated by a
 * tab and the row ends with a newline. An array's raw form is its literal
 * ({...}) with every non-NULL element in double quotes, a backslash before
 * each " and \ inside, so "NULL" as text stays text.
 *
 * The forms are chosen to read back exactly whatever the session's
 * settings: doubles with 17 significant digits, timestamptz with an
 * explicit +00:00, dates and timestamps in ISO order with a BC suffix,
 * intervals as months, days and a time (no unit depends on IntervalStyle).
 *
 * Sizes are bounded before anything is written (every raw byte escapes to
 * at most two), so a row goes into the buffer in one piece or not at all.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "copy_buf.h"
#include "types_text.h"

/* Room for every fixed-size raw form (a timestamp with offset and BC,
 * an interval with a 2,562,047,788-hour time). */
#define FIXED_MAX 64

static bool text_like(evdb_type t)
{
    return t == EVDB_TYPE_TEXT || t == EVDB_TYPE_JSON || t == EVDB_TYPE_NUMERIC;
}

/* Upper bound of a scalar's raw form. */
static size_t raw_bound(const evdb_value *v)
{
    if (text_like(v->type))
        return v->u.s.len;
    if (v->type == EVDB_TYPE_BYTES)
        return 2 + 2 * v->u.s.len;
    return FIXED_MAX;
}

/* Upper bound of an array's raw literal (every element may double inside
 * its quotes), and in *elem_max the largest raw form of an element. */
static size_t array_bound(const evdb_value *v, size_t *elem_max)
{
    size_t n = 2, m = FIXED_MAX;
    for (size_t i = 0; i < v->u.a.n; i++) {
        evdb_value e = evdb__array_at(v, i);
        size_t r = e.type == EVDB_TYPE_NULL ? 4 : raw_bound(&e);
        n += 1 + (e.type == EVDB_TYPE_NULL ? 4 : 2 + 2 * r);
        if (r > m)
            m = r;
    }
    if (elem_max)
        *elem_max = m;
    return n;
}

static bool has_nul(const evdb_value *v)
{
    return (v->type == EVDB_TYPE_TEXT || v->type == EVDB_TYPE_JSON) && v->u.s.len &&
           memchr(v->u.s.ptr, '\0', v->u.s.len);
}

/* Text with a NUL byte cannot be sent (PostgreSQL text holds none). */
static int check_nuls(const evdb_value *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool nul = has_nul(&vals[i]);
        for (size_t k = 0; !nul && vals[i].type == EVDB_TYPE_ARRAY && k < vals[i].u.a.n; k++) {
            evdb_value e = evdb__array_at(&vals[i], k);
            nul = has_nul(&e);
        }
        if (nul)
            return evdb__fail_now(EVDB_EINVAL,
                                  "evdb_copy_write_row: value %zu: text with a NUL byte (use "
                                  "bytes)",
                                  i + 1);
    }
    return 0;
}

static size_t put_2(char *o, unsigned v)
{
    o[0] = (char)('0' + v / 10 % 10);
    o[1] = (char)('0' + v % 10);
    return 2;
}

/* "HH:MM:SS[.ffffff]" of a non-negative duration (hours may exceed 24). */
static size_t put_clock(char *o, uint64_t us)
{
    uint64_t secs = us / 1000000, frac = us % 1000000;
    int n = snprintf(o, FIXED_MAX, "%02llu:", (unsigned long long)(secs / 3600));
    n += (int)put_2(o + n, (unsigned)(secs / 60 % 60));
    o[n++] = ':';
    n += (int)put_2(o + n, (unsigned)(secs % 60));
    if (frac)
        n += snprintf(o + n, FIXED_MAX - (size_t)n, ".%06llu", (unsigned long long)frac);
    return (size_t)n;
}

/* "+HH:MM:SS" of an offset in seconds east of UTC. */
static size_t put_offset(char *o, int32_t off)
{
    o[0] = off < 0 ? '-' : '+';
    unsigned a = (unsigned)(off < 0 ? -off : off);
    size_t n = 1 + put_2(o + 1, a / 3600);
    o[n++] = ':';
    n += put_2(o + n, a / 60 % 60);
    o[n++] = ':';
    n += put_2(o + n, a % 60);
    return n;
}

static size_t put_date(char *o, int32_t days)
{
    if (days == EVDB_DATE_INFINITY || days == EVDB_DATE_NEG_INFINITY) {
        /* o is scratch with FIXED_MAX bytes: room for the NUL too. */
        return (size_t)snprintf(o, FIXED_MAX, "%s", days > 0 ? "infinity" : "-infinity");
    }
    int64_t y;
    unsigned m, d;
    evdb__civil_from_days(days, &y, &m, &d);
    bool bc = y <= 0;
    long long shown = bc ? 1 - y : y;
    return (size_t)snprintf(o, FIXED_MAX, "%04lld-%02u-%02u%s", shown, m, d, bc ? " BC" : "");
}

static size_t put_double(char *o, double d)
{
    if (isnan(d))
        return (size_t)snprintf(o, FIXED_MAX, "NaN");
    if (isinf(d))
        return (size_t)snprintf(o, FIXED_MAX, "%s", d > 0 ? "Infinity" : "-Infinity");
    return (size_t)snprintf(o, FIXED_MAX, "%.17g", d);
}

static size_t put_interval(char *o, const evdb_interval *iv)
{
    int n = snprintf(o, FIXED_MAX, "%d mons %d days %s", (int)iv->months, (int)iv->days,
                     iv->us < 0 ? "-" : "");
    uint64_t a = iv->us < 0 ? (uint64_t)0 - (uint64_t)iv->us : (uint64_t)iv->us;
    return (size_t)n + put_clock(o + n, a);
}

static const char hex[] = "0123456789abcdef";

/* A scalar's raw form at o (raw_bound bytes at most); returns its length. */
static size_t put_raw(char *o, const evdb_value *v)
{
    char tmp[EVDB_TIMESTAMP_TEXT_MAX];
    size_t n;
    switch (v->type) {
    case EVDB_TYPE_BOOL:
        *o = v->u.b ? 't' : 'f';
        return 1;
    case EVDB_TYPE_INT:
        return evdb__int_text(v->u.i, o);
    case EVDB_TYPE_UINT:
        return evdb__uint_text(v->u.ui, o);
    case EVDB_TYPE_DOUBLE:
        return put_double(o, v->u.d);
    case EVDB_TYPE_DATE:
        return put_date(o, v->u.date);
    case EVDB_TYPE_TIME:
        if (v->u.t.us < 0) {
            *o = '-';
            return 1 + put_clock(o + 1, (uint64_t)0 - (uint64_t)v->u.t.us);
        }
        return put_clock(o, (uint64_t)v->u.t.us);
    case EVDB_TYPE_TIMETZ:
        n = put_clock(o, (uint64_t)v->u.t.us);
        return n + put_offset(o + n, v->u.t.offset);
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ:
        n = evdb_timestamp_format(v->u.t.us, v->type == EVDB_TYPE_TIMESTAMPTZ, 0, tmp, sizeof tmp);
        memcpy(o, tmp, n);
        return n;
    case EVDB_TYPE_INTERVAL:
        return put_interval(o, &v->u.iv);
    case EVDB_TYPE_UUID:
        evdb__uuid_text(v->u.uuid, tmp);
        memcpy(o, tmp, 36);
        return 36;
    case EVDB_TYPE_BYTES: {
        const unsigned char *b = v->u.s.ptr;
        o[0] = '\\';
        o[1] = 'x';
        for (size_t i = 0; i < v->u.s.len; i++) {
            o[2 + 2 * i] = hex[b[i] >> 4];
            o[3 + 2 * i] = hex[b[i] & 15];
        }
        return 2 + 2 * v->u.s.len;
    }
    default: /* text, json, numeric */
        if (v->u.s.len)
            memcpy(o, v->u.s.ptr, v->u.s.len);
        return v->u.s.len;
    }
}

/* An array's raw literal at o (array_bound bytes at most). */
static size_t put_array(char *o, const evdb_value *v, char *scratch)
{
    char *start = o;
    *o++ = '{';
    for (size_t i = 0; i < v->u.a.n; i++) {
        evdb_value e = evdb__array_at(v, i);
        if (i)
            *o++ = ',';
        if (e.type == EVDB_TYPE_NULL) {
            static const char null_word[4] = {'N', 'U', 'L', 'L'}; /* no NUL: mid-literal */
            for (size_t k = 0; k < sizeof null_word; k++)
                *o++ = null_word[k];
            continue;
        }
        const char *s = text_like(e.type) ? e.u.s.ptr : scratch;
        size_t n = text_like(e.type) ? e.u.s.len : put_raw(scratch, &e);
        *o++ = '"';
        for (size_t k = 0; k < n; k++) {
            if (s[k] == '"' || s[k] == '\\')
                *o++ = '\\';
            *o++ = s[k];
        }
        *o++ = '"';
    }
    *o++ = '}';
    return (size_t)(o - start);
}

/* s escaped for COPY's text format at o; returns the length written. */
static size_t put_escaped(char *o, const char *s, size_t n)
{
    char *start = o;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        switch (ch) {
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        default:
            *o++ = ch;
        }
    }
    return (size_t)(o - start);
}

/* One field at o; scratch holds the largest raw form of the row. */
static size_t put_field(char *o, const evdb_value *v, char *scratch)
{
    if (v->type == EVDB_TYPE_NULL) {
        o[0] = '\\';
        o[1] = 'N';
        return 2;
    }
    if (text_like(v->type))
        return put_escaped(o, v->u.s.ptr, v->u.s.len);
    size_t n;
    if (v->type == EVDB_TYPE_ARRAY)
        n = put_array(scratch, v, scratch + array_bound(v, NULL));
    else
        n = put_raw(scratch, v);
    return put_escaped(o, scratch, n);
}

int evdb_copy_write_row(evdb_copy *cp, const evdb_value *vals, size_t n)
{
    static const char who[] = "evdb_copy_write_row";
    if (!vals || n == 0)
        return evdb__fail_now(EVDB_EINVAL, "%s: no values", who);
    if (evdb__values_check(vals, n) || check_nuls(vals, n))
        return EVDB_EINVAL;
    size_t need = n, scratch_need = FIXED_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t elem_max = 0;
        bool arr = vals[i].type == EVDB_TYPE_ARRAY;
        size_t raw = arr ? array_bound(&vals[i], &elem_max) : raw_bound(&vals[i]);
        need += 2 * raw;
        /* An array's literal is built in scratch, its elements' raw forms
         * after it. */
        size_t s = raw + elem_max;
        if (!text_like(vals[i].type) && s > scratch_need)
            scratch_need = s;
    }
    char small[4 * FIXED_MAX];
    char *scratch = scratch_need <= sizeof small ? small : evdb__malloc(scratch_need);
    int rc = 0;
    char *o = scratch ? evdb__copy_room(cp, who, need, &rc) : NULL;
    if (!scratch)
        rc = evdb__fail_now(EVDB_ENOMEM, "%s: out of memory", who);
    if (o) {
        char *start = o;
        for (size_t i = 0; i < n; i++) {
            if (i)
                *o++ = '\t';
            o += put_field(o, &vals[i], scratch);
        }
        *o++ = '\n';
        evdb__copy_commit(cp, (size_t)(o - start));
    }
    if (scratch != small)
        evdb__free(scratch);
    return rc;
}
