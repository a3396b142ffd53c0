/*
 * Typed parameter values: constructors, validation, and the deep copy made
 * at submission so callers may free their buffers at once; integers as
 * text for the drivers.
 */
#include <string.h>

#include "internal.h"

size_t evdb__int_text(int64_t v, char *out)
{
    char tmp[EVDB__INT_TEXT_MAX];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        out[len++] = '-';
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

/* Largest number of parameters in one query: PostgreSQL's protocol limit. */
#define MAX_PARAMS 65535u

int evdb__values_check(const evdb_value *params, size_t n)
{
    if (n && !params)
        return evdb__fail_now(EVDB_EINVAL, "params is NULL but nparams is %zu", n);
    if (n > MAX_PARAMS)
        return evdb__fail_now(EVDB_EINVAL, "%zu parameters: at most %u are allowed", n,
                              MAX_PARAMS);
    for (size_t i = 0; i < n; i++) {
        const evdb_value *v = &params[i];
        switch (v->type) {
        case EVDB_TYPE_NULL:
        case EVDB_TYPE_BOOL:
        case EVDB_TYPE_INT:
        case EVDB_TYPE_DOUBLE:
            break;
        case EVDB_TYPE_TEXT:
        case EVDB_TYPE_BYTES:
            if (!v->u.s.ptr && v->u.s.len)
                return evdb__fail_now(EVDB_EINVAL, "parameter %zu: NULL pointer with length %zu",
                                      i + 1, v->u.s.len);
            if (v->u.s.len > EVDB_VALUE_MAX_LEN)
                return evdb__fail_now(EVDB_EINVAL,
                                      "parameter %zu: %zu bytes is over the %zu byte limit",
                                      i + 1, v->u.s.len, (size_t)EVDB_VALUE_MAX_LEN);
            break;
        default:
            return evdb__fail_now(EVDB_EINVAL, "parameter %zu: unknown type tag %d", i + 1,
                                  (int)v->type);
        }
    }
    return 0;
}

size_t evdb__values_size(const evdb_value *params, size_t n)
{
    /* The value array, then each text/bytes payload NUL-terminated (drivers
     * may pass text to C APIs). */
    size_t size = n * sizeof(evdb_value);
    for (size_t i = 0; i < n; i++)
        if (params[i].type == EVDB_TYPE_TEXT || params[i].type == EVDB_TYPE_BYTES)
            size += params[i].u.s.len + 1;
    return size;
}

evdb_value *evdb__values_copy_into(void *dst, const evdb_value *params, size_t n)
{
    evdb_value *out = dst;
    char *p = (char *)dst + n * sizeof(evdb_value);
    for (size_t i = 0; i < n; i++) {
        out[i] = params[i];
        if (params[i].type == EVDB_TYPE_TEXT || params[i].type == EVDB_TYPE_BYTES) {
            if (params[i].u.s.len)
                memcpy(p, params[i].u.s.ptr, params[i].u.s.len);
            p[params[i].u.s.len] = '\0';
            out[i].u.s.ptr = p;
            p += params[i].u.s.len + 1;
        }
    }
    return out;
}
