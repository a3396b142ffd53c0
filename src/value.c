/*
 * Typed parameter values: constructors, validation, and the deep copy made
 * at submission so callers may free their buffers at once (arrays' elements
 * and strings included, all in the one block); integers as text for the
 * drivers.
 */
#include <string.h>

#include "internal.h"
#include "types_text.h"

/* Digits of u, least significant first, into tmp; returns the count. */
static inline size_t digits_reversed(uint64_t u, char *tmp)
{
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return n;
}

size_t evdb__int_text(int64_t v, char *out)
{
    char tmp[EVDB__INT_TEXT_MAX];
    /* The magnitude of INT64_MIN only fits unsigned. */
    size_t n = digits_reversed(v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, tmp);
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
    while (n)
        out[len++] = tmp[--n];
    out[len] = '\0';
    return len;
}

size_t evdb__uint_text(uint64_t u, char *out)
{
    char tmp[EVDB__INT_TEXT_MAX];
    size_t n = digits_reversed(u, tmp), len = 0;
    while (n)
        out[len++] = tmp[--n];
    out[len] = '\0';
    return len;
}

evdb_value evdb_null(void)
{
    evdb_value v = {.type = EVDB_TYPE_NULL};
    return v;
}

evdb_value evdb_bool(bool b)
{
    evdb_value v = {.type = EVDB_TYPE_BOOL, .u.b = b};
    return v;
}

evdb_value evdb_int(int64_t i)
{
    evdb_value v = {.type = EVDB_TYPE_INT, .u.i = i};
    return v;
}

evdb_value evdb_double(double d)
{
    evdb_value v = {.type = EVDB_TYPE_DOUBLE, .u.d = d};
    return v;
}

evdb_value evdb_text(const char *s)
{
    if (!s)
        return evdb_null();
    return evdb_textn(s, strlen(s));
}

evdb_value evdb_textn(const char *s, size_t len)
{
    evdb_value v = {.type = EVDB_TYPE_TEXT, .u.s = {s, len}};
    if (!s && len == 0)
        v.u.s.ptr = "";
    return v;
}

evdb_value evdb_bytes(const void *p, size_t len)
{
    evdb_value v = {.type = EVDB_TYPE_BYTES, .u.s = {p, len}};
    if (!p && len == 0)
        v.u.s.ptr = "";
    return v;
}

evdb_value evdb_uint(uint64_t u)
{
    evdb_value v = {.type = EVDB_TYPE_UINT, .u.ui = u};
    return v;
}

evdb_value evdb_numeric(const char *text)
{
    if (!text)
        return evdb_null();
    evdb_value v = {.type = EVDB_TYPE_NUMERIC, .u.s = {text, strlen(text)}};
    return v;
}

evdb_value evdb_json(const char *text)
{
    if (!text)
        return evdb_null();
    evdb_value v = {.type = EVDB_TYPE_JSON, .u.s = {text, strlen(text)}};
    return v;
}

evdb_value evdb_date(int32_t days)
{
    evdb_value v = {.type = EVDB_TYPE_DATE, .u.date = days};
    return v;
}

evdb_value evdb_time(int64_t us)
{
    evdb_value v = {.type = EVDB_TYPE_TIME, .u.t = {us, 0}};
    return v;
}

evdb_value evdb_timetz(int64_t us, int32_t offset)
{
    evdb_value v = {.type = EVDB_TYPE_TIMETZ, .u.t = {us, offset}};
    return v;
}

evdb_value evdb_timestamp(int64_t us)
{
    evdb_value v = {.type = EVDB_TYPE_TIMESTAMP, .u.t = {us, 0}};
    return v;
}

evdb_value evdb_timestamptz(int64_t us)
{
    evdb_value v = {.type = EVDB_TYPE_TIMESTAMPTZ, .u.t = {us, 0}};
    return v;
}

evdb_value evdb_interval_value(int32_t months, int32_t days, int64_t us)
{
    evdb_value v = {.type = EVDB_TYPE_INTERVAL, .u.iv = {months, days, us}};
    return v;
}

evdb_value evdb_uuid(const uint8_t bytes[16])
{
    evdb_value v = {.type = EVDB_TYPE_UUID};
    if (bytes)
        memcpy(v.u.uuid, bytes, 16);
    return v;
}

static evdb_value array_of(evdb_type elem, const void *p, size_t n)
{
    evdb_value v = {.type = EVDB_TYPE_ARRAY, .elem = elem, .u.a = {p, n}};
    return v;
}

evdb_value evdb_array_bool(const bool *v, size_t n)
{
    return array_of(EVDB_TYPE_BOOL, v, n);
}

evdb_value evdb_array_int64(const int64_t *v, size_t n)
{
    return array_of(EVDB_TYPE_INT, v, n);
}

evdb_value evdb_array_double(const double *v, size_t n)
{
    return array_of(EVDB_TYPE_DOUBLE, v, n);
}

evdb_value evdb_array_text(const char *const *v, size_t n)
{
    return array_of(EVDB_TYPE_TEXT, v, n);
}

evdb_value evdb_array_values(const evdb_value *v, size_t n)
{
    return array_of(EVDB_TYPE_NULL, v, n);
}

evdb_value evdb__array_at(const evdb_value *v, size_t i)
{
    switch (v->elem) {
    case EVDB_TYPE_BOOL:
        return evdb_bool(((const bool *)v->u.a.ptr)[i]);
    case EVDB_TYPE_INT:
        return evdb_int(((const int64_t *)v->u.a.ptr)[i]);
    case EVDB_TYPE_DOUBLE:
        return evdb_double(((const double *)v->u.a.ptr)[i]);
    case EVDB_TYPE_TEXT:
        return evdb_text(((const char *const *)v->u.a.ptr)[i]);
    default:
        return ((const evdb_value *)v->u.a.ptr)[i];
    }
}

evdb_type evdb__array_elem(const evdb_value *v)
{
    if (v->elem != EVDB_TYPE_NULL)
        return v->elem;
    const evdb_value *e = v->u.a.ptr;
    for (size_t i = 0; i < v->u.a.n; i++)
        if (e[i].type != EVDB_TYPE_NULL)
            return e[i].type;
    /* All NULL: an array of text, which the server casts as it needs. */
    return EVDB_TYPE_TEXT;
}

/* Largest number of parameters in one query: PostgreSQL's protocol limit. */
#define MAX_PARAMS 65535u

/* Payload of a text-like value: a pointer where its length says so, and
 * a length the backends take. */
static int check_payload(size_t i, const evdb_value *v)
{
    if (!v->u.s.ptr && v->u.s.len)
        return evdb__fail_now(EVDB_EINVAL, "parameter %zu: NULL pointer with length %zu", i + 1,
                              v->u.s.len);
    if (v->u.s.len > EVDB_VALUE_MAX_LEN)
        return evdb__fail_now(EVDB_EINVAL, "parameter %zu: %zu bytes is over the %zu byte limit",
                              i + 1, v->u.s.len, (size_t)EVDB_VALUE_MAX_LEN);
    return 0;
}

/* One value that is not an array (or an array's element: in_array). */
static int check_scalar(size_t i, const evdb_value *v, bool in_array)
{
    switch (v->type) {
    case EVDB_TYPE_NULL:
    case EVDB_TYPE_BOOL:
    case EVDB_TYPE_INT:
    case EVDB_TYPE_UINT:
    case EVDB_TYPE_DOUBLE:
    case EVDB_TYPE_UUID:
    case EVDB_TYPE_INTERVAL:
        return 0;
    case EVDB_TYPE_TEXT:
    case EVDB_TYPE_BYTES:
    case EVDB_TYPE_JSON:
        return check_payload(i, v);
    case EVDB_TYPE_NUMERIC: {
        int rc = check_payload(i, v);
        if (rc)
            return rc;
        /* The text is shown only when it is short: it is the caller's
         * data, and a long one would drown the message. */
        if (!evdb__numeric_valid(v->u.s.ptr, v->u.s.len))
            return evdb__fail_now(
                EVDB_EINVAL, "parameter %zu: numeric text \"%.*s\" is not a decimal number", i + 1,
                v->u.s.len > 40 ? 40 : (int)v->u.s.len, (const char *)v->u.s.ptr);
        return 0;
    }
    case EVDB_TYPE_DATE:
        if (v->u.date != EVDB_DATE_INFINITY && v->u.date != EVDB_DATE_NEG_INFINITY &&
            (v->u.date < EVDB__DATE_MIN || v->u.date > EVDB__DATE_MAX))
            return evdb__fail_now(EVDB_EINVAL,
                                  "parameter %zu: date %d days from 1970-01-01 is outside "
                                  "4714-11-24 BC to 5874897-12-31",
                                  i + 1, (int)v->u.date);
        return 0;
    case EVDB_TYPE_TIME:
        if (v->u.t.us < -EVDB__TIME_MAX || v->u.t.us > EVDB__TIME_MAX)
            return evdb__fail_now(EVDB_EINVAL,
                                  "parameter %zu: time %lld us is beyond 838:59:59.999999", i + 1,
                                  (long long)v->u.t.us);
        return 0;
    case EVDB_TYPE_TIMETZ:
        if (v->u.t.us < 0 || v->u.t.us > EVDB_USECS_PER_DAY)
            return evdb__fail_now(EVDB_EINVAL,
                                  "parameter %zu: time of day %lld us is outside 00:00 to 24:00",
                                  i + 1, (long long)v->u.t.us);
        if (v->u.t.offset <= -EVDB__OFFSET_LIMIT || v->u.t.offset >= EVDB__OFFSET_LIMIT)
            return evdb__fail_now(EVDB_EINVAL, "parameter %zu: UTC offset %d s is 16 hours or more",
                                  i + 1, (int)v->u.t.offset);
        return 0;
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ:
        if (v->u.t.us != EVDB_TIMESTAMP_NEG_INFINITY && v->u.t.us < EVDB__TIMESTAMP_MIN)
            return evdb__fail_now(EVDB_EINVAL,
                                  "parameter %zu: timestamp %lld us is before 4714-11-24 BC", i + 1,
                                  (long long)v->u.t.us);
        return 0;
    case EVDB_TYPE_ARRAY:
        if (in_array)
            return evdb__fail_now(EVDB_EINVAL,
                                  "parameter %zu: an array's element is an array (only "
                                  "one-dimensional arrays are supported)",
                                  i + 1);
        return 0;
    default:
        return evdb__fail_now(EVDB_EINVAL, "parameter %zu: unknown type tag %d", i + 1,
                              (int)v->type);
    }
}

static int check_array(size_t i, const evdb_value *v)
{
    size_t n = v->u.a.n;
    if (n > EVDB_ARRAY_MAX_LEN)
        return evdb__fail_now(EVDB_EINVAL, "parameter %zu: %zu array elements, at most %zu", i + 1,
                              n, (size_t)EVDB_ARRAY_MAX_LEN);
    if (n && !v->u.a.ptr)
        return evdb__fail_now(EVDB_EINVAL, "parameter %zu: NULL array with %zu elements", i + 1, n);
    switch (v->elem) {
    case EVDB_TYPE_BOOL:
    case EVDB_TYPE_INT:
    case EVDB_TYPE_DOUBLE:
        return 0;
    case EVDB_TYPE_TEXT: {
        const char *const *t = v->u.a.ptr;
        for (size_t k = 0; k < n; k++)
            if (t[k] && strlen(t[k]) > EVDB_VALUE_MAX_LEN)
                return evdb__fail_now(EVDB_EINVAL,
                                      "parameter %zu: array element %zu is over the %zu byte "
                                      "limit",
                                      i + 1, k + 1, (size_t)EVDB_VALUE_MAX_LEN);
        return 0;
    }
    case EVDB_TYPE_NULL: {
        const evdb_value *e = v->u.a.ptr;
        evdb_type t = EVDB_TYPE_NULL;
        for (size_t k = 0; k < n; k++) {
            int rc = check_scalar(i, &e[k], true);
            if (rc)
                return rc;
            if (e[k].type == EVDB_TYPE_NULL)
                continue;
            if (t != EVDB_TYPE_NULL && e[k].type != t)
                return evdb__fail_now(EVDB_EINVAL,
                                      "parameter %zu: array element %zu is of type %d, "
                                      "element 1 of type %d (all must be of one type)",
                                      i + 1, k + 1, (int)e[k].type, (int)t);
            t = e[k].type;
        }
        return 0;
    }
    default:
        return evdb__fail_now(EVDB_EINVAL, "parameter %zu: unknown array element type tag %d",
                              i + 1, (int)v->elem);
    }
}

int evdb__values_check(const evdb_value *params, size_t n)
{
    if (n && !params)
        return evdb__fail_now(EVDB_EINVAL, "params is NULL but nparams is %zu", n);
    if (n > MAX_PARAMS)
        return evdb__fail_now(EVDB_EINVAL, "%zu parameters: at most %u are allowed", n, MAX_PARAMS);
    for (size_t i = 0; i < n; i++) {
        /* NULL, bool, int, double: nothing to check (most parameters of
         * most queries; the switch costs more than the test). */
        if ((unsigned)params[i].type < EVDB_TYPE_TEXT)
            continue;
        int rc = check_scalar(i, &params[i], false);
        if (rc == 0 && params[i].type == EVDB_TYPE_ARRAY)
            rc = check_array(i, &params[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* Values whose payload is u.s: copied with a NUL after it (drivers may
 * pass text to C APIs). */
#define PAYLOAD_TYPES                                                                              \
    (1u << EVDB_TYPE_TEXT | 1u << EVDB_TYPE_BYTES | 1u << EVDB_TYPE_NUMERIC | 1u << EVDB_TYPE_JSON)
static inline bool has_payload(evdb_type t)
{
    /* One test on every parameter of every query: a mask, not a chain. */
    return (unsigned)t < 32 && (PAYLOAD_TYPES >> t & 1u);
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Bytes an array's elements take in the copy (8-aligned), without the
 * strings they point at. */
static size_t array_elems_size(const evdb_value *v)
{
    size_t n = v->u.a.n;
    switch (v->elem) {
    case EVDB_TYPE_BOOL:
        return align8(n * sizeof(bool));
    case EVDB_TYPE_INT:
        return n * sizeof(int64_t);
    case EVDB_TYPE_DOUBLE:
        return n * sizeof(double);
    case EVDB_TYPE_TEXT:
        return n * sizeof(char *);
    default:
        return n * sizeof(evdb_value);
    }
}

/* The strings an array's elements point at, NUL-terminated. */
static size_t array_text_size(const evdb_value *v)
{
    size_t size = 0;
    if (v->elem == EVDB_TYPE_TEXT) {
        const char *const *t = v->u.a.ptr;
        for (size_t k = 0; k < v->u.a.n; k++)
            if (t[k])
                size += strlen(t[k]) + 1;
    } else if (v->elem == EVDB_TYPE_NULL) {
        const evdb_value *e = v->u.a.ptr;
        for (size_t k = 0; k < v->u.a.n; k++)
            if (has_payload(e[k].type))
                size += e[k].u.s.len + 1;
    }
    return size;
}

_Static_assert(EVDB_TYPE_NULL == 0 && EVDB_TYPE_BOOL == 1 && EVDB_TYPE_INT == 2 &&
                   EVDB_TYPE_DOUBLE == 3 && EVDB_TYPE_TEXT == 4,
               "the plain values (no payload, nothing to check) are the types below TEXT");

/* Whether params holds only values without a payload or elements (NULL,
 * bool, int, double): a point query's parameters, copied as they are. */
static inline bool all_plain(const evdb_value *params, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned)params[i].type >= EVDB_TYPE_TEXT)
            return false;
    return true;
}

/* evdb__values_size of a list with payloads or arrays (out of line: the
 * plain case needs none of its registers). */
__attribute__((noinline)) static size_t values_size_payloads(const evdb_value *params, size_t n)
{
    /* The value array, then each payload: arrays' elements first (8-byte
     * aligned), then text-like payloads. */
    size_t size = n * sizeof(evdb_value);
    for (size_t i = 0; i < n; i++) {
        if (has_payload(params[i].type))
            size += params[i].u.s.len + 1;
        else if (params[i].type == EVDB_TYPE_ARRAY)
            size += array_elems_size(&params[i]) + array_text_size(&params[i]);
    }
    return size;
}

size_t evdb__values_size(const evdb_value *params, size_t n)
{
    return all_plain(params, n) ? n * sizeof(evdb_value) : values_size_payloads(params, n);
}

/* Copies a text-like payload to *p, NUL-terminated; returns where. */
static const char *put_payload(char **p, const void *src, size_t len)
{
    char *d = *p;
    if (len)
        memcpy(d, src, len);
    d[len] = '\0';
    *p = d + len + 1;
    return d;
}

/* Copies an array's elements to *arr (8-aligned), their strings to *txt. */
static void copy_array(evdb_value *out, const evdb_value *v, char **arr, char **txt)
{
    size_t n = v->u.a.n;
    char *a = *arr;
    switch (v->elem) {
    case EVDB_TYPE_BOOL:
    case EVDB_TYPE_INT:
    case EVDB_TYPE_DOUBLE: {
        size_t esz = v->elem == EVDB_TYPE_BOOL ? sizeof(bool) : sizeof(int64_t);
        if (n)
            memcpy(a, v->u.a.ptr, n * esz);
        *arr = a + array_elems_size(v);
        break;
    }
    case EVDB_TYPE_TEXT: {
        const char *const *t = v->u.a.ptr;
        const char **d = (const char **)(void *)a;
        for (size_t k = 0; k < n; k++)
            d[k] = t[k] ? put_payload(txt, t[k], strlen(t[k])) : NULL;
        *arr = a + n * sizeof(char *);
        break;
    }
    default: {
        const evdb_value *e = v->u.a.ptr;
        evdb_value *d = (evdb_value *)(void *)a;
        for (size_t k = 0; k < n; k++) {
            d[k] = e[k];
            if (has_payload(e[k].type))
                d[k].u.s.ptr = put_payload(txt, e[k].u.s.ptr, e[k].u.s.len);
        }
        *arr = a + n * sizeof(evdb_value);
        break;
    }
    }
    out->u.a.ptr = a;
}

/* evdb__values_copy_into of a list with payloads or arrays (out of
 * line, as values_size_payloads). */
__attribute__((noinline)) static evdb_value *copy_payloads(void *dst, const evdb_value *params,
                                                           size_t n)
{
    evdb_value *out = dst;
    /* Array elements right after the values (dst is 8-aligned, and so is
     * every part of them), then all text. */
    char *arr = (char *)dst + n * sizeof(evdb_value);
    char *txt = arr;
    for (size_t i = 0; i < n; i++)
        if (params[i].type == EVDB_TYPE_ARRAY)
            txt += array_elems_size(&params[i]);
    for (size_t i = 0; i < n; i++) {
        out[i] = params[i];
        if (has_payload(params[i].type))
            out[i].u.s.ptr = put_payload(&txt, params[i].u.s.ptr, params[i].u.s.len);
        else if (params[i].type == EVDB_TYPE_ARRAY)
            copy_array(&out[i], &params[i], &arr, &txt);
    }
    return out;
}

evdb_value *evdb__values_copy_into(void *dst, const evdb_value *params, size_t n)
{
    if (!all_plain(params, n))
        return copy_payloads(dst, params, n);
    memcpy(dst, params, n * sizeof *params);
    return dst;
}
