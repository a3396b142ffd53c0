/*
 * Array cells: PostgreSQL's array text output ({1,2,NULL},
 * {"a,b","c\"d",NULL}, optionally after a [lo:hi]= dimension decoration)
 * parsed once into an evdb_array that the caller owns.
 *
 * The parse runs twice over the text, both O(n): the first pass checks
 * the syntax and counts elements and unescaped bytes, the second fills
 * one allocation holding the header, an (offset, length) pair per element
 * and every element unescaped and NUL-terminated. Nothing points into the
 * result, so an array may outlive it. Element getters reuse the cell
 * parsers of types_text.c.
 */
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "types_text.h"

#define NULL_ITEM SIZE_MAX

typedef struct item {
    size_t off;
    size_t len; /* NULL_ITEM for a NULL element */
} item;

struct evdb_array {
    size_t n;
    evdb_type elem;
    item *items;
    char *buf;
    size_t size; /* of the whole allocation */
};

/* The array's elements into items/buf when they are not NULL (the second
 * pass); the counts in *n and *bytes either way. */
static int scan_array(const char *s, size_t len, item *items, char *buf, size_t *n_out,
                      size_t *bytes_out)
{
    const char *p = s, *end = s + len;
    size_t n = 0, bytes = 0;
    long long lo = 1, hi = 0;
    bool dims = false;
    if (p < end && *p == '[') {
        /* [lo:hi]= : one pair per dimension. */
        int ndims = 0;
        while (p < end && *p == '[') {
            long long v[2];
            p++;
            for (int k = 0; k < 2; k++) {
                bool neg = p < end && *p == '-';
                if (neg)
                    p++;
                if (p == end || *p < '0' || *p > '9')
                    return EVDB_EFORMAT;
                long long x = 0;
                while (p < end && *p >= '0' && *p <= '9') {
                    if (x > 100000000000LL)
                        return EVDB_EFORMAT;
                    x = x * 10 + (*p++ - '0');
                }
                v[k] = neg ? -x : x;
                if (p == end || *p != (k == 0 ? ':' : ']'))
                    return EVDB_EFORMAT;
                p++;
            }
            lo = v[0];
            hi = v[1];
            ndims++;
        }
        if (ndims > 1)
            return EVDB_ENOTSUP;
        if (p == end || *p != '=')
            return EVDB_EFORMAT;
        p++;
        dims = true;
    }
    if (p == end || *p != '{')
        return EVDB_EFORMAT;
    p++;
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p == end)
                return EVDB_EFORMAT;
            if (*p == '{')
                return EVDB_ENOTSUP;
            size_t start = bytes;
            bool is_null = false;
            if (*p == '"') {
                p++;
                for (;;) {
                    if (p == end)
                        return EVDB_EFORMAT;
                    char c = *p++;
                    if (c == '"')
                        break;
                    if (c == '\\') {
                        if (p == end)
                            return EVDB_EFORMAT;
                        c = *p++;
                    }
                    if (buf)
                        buf[bytes] = c;
                    bytes++;
                }
            } else {
                const char *e = p;
                while (e < end && *e != ',' && *e != '}') {
                    if (*e == '"' || *e == '\\' || *e == '{')
                        return EVDB_EFORMAT;
                    e++;
                }
                if (e == p)
                    return EVDB_EFORMAT;
                is_null = e - p == 4 && strncasecmp(p, "NULL", 4) == 0;
                if (!is_null) {
                    if (buf)
                        memcpy(buf + bytes, p, (size_t)(e - p));
                    bytes += (size_t)(e - p);
                }
                p = e;
            }
            if (items) {
                items[n].off = start;
                items[n].len = is_null ? NULL_ITEM : bytes - start;
            }
            if (!is_null) {
                if (buf)
                    buf[bytes] = '\0';
                bytes++;
            }
            n++;
            if (p < end && *p == ',') {
                p++;
                continue;
            }
            if (p < end && *p == '}') {
                p++;
                break;
            }
            return EVDB_EFORMAT;
        }
    }
    if (p != end)
        return EVDB_EFORMAT;
    if (dims && (hi < lo || (unsigned long long)(hi - lo) + 1 != n))
        return EVDB_EFORMAT;
    *n_out = n;
    *bytes_out = bytes;
    return 0;
}

/* bytea elements arrive as their "\x0102" hex text: decoded in place
 * (the bytes are shorter than their text). Other forms stay as text. */
static void decode_bytea(evdb_array *a)
{
    for (size_t i = 0; i < a->n; i++) {
        item *it = &a->items[i];
        char *t = a->buf + it->off;
        if (it->len == NULL_ITEM || it->len < 2 || it->len % 2 || t[0] != '\\' || t[1] != 'x')
            continue;
        bool ok = true;
        for (size_t k = 2; k < it->len && ok; k++)
            ok = evdb__hexval((unsigned char)t[k]) >= 0;
        if (!ok)
            continue;
        size_t m = (it->len - 2) / 2;
        for (size_t k = 0; k < m; k++)
            t[k] = (char)(evdb__hexval((unsigned char)t[2 + 2 * k]) << 4 |
                          evdb__hexval((unsigned char)t[3 + 2 * k]));
        t[m] = '\0';
        it->len = m;
    }
}

int evdb__array_parse(const char *s, size_t len, evdb_type elem, evdb_array **out)
{
    size_t n, bytes;
    int rc = scan_array(s, len, NULL, NULL, &n, &bytes);
    if (rc)
        return rc;
    size_t head = (sizeof(evdb_array) + 7) & ~(size_t)7;
    if (n > (SIZE_MAX / 2 - head - bytes) / sizeof(item))
        return EVDB_ENOMEM;
    size_t size = head + n * sizeof(item) + bytes;
    char *block = evdb__malloc(size);
    if (!block)
        return EVDB_ENOMEM;
    evdb_array *a = (evdb_array *)(void *)block;
    a->n = n;
    a->elem = elem;
    a->items = (item *)(void *)(block + head);
    a->buf = block + head + n * sizeof(item);
    a->size = size;
    scan_array(s, len, a->items, a->buf, &n, &bytes);
    if (elem == EVDB_TYPE_BYTES)
        decode_bytea(a);
    *out = a;
    return 0;
}

void evdb_array_free(evdb_array *a)
{
    evdb__free(a);
}

size_t evdb_array_len(const evdb_array *a)
{
    return a ? a->n : 0;
}

evdb_type evdb_array_elemtype(const evdb_array *a)
{
    return a ? a->elem : EVDB_TYPE_NULL;
}

bool evdb_array_isnull(const evdb_array *a, size_t i)
{
    return !a || i >= a->n || a->items[i].len == NULL_ITEM;
}

/* Element i: 0 with its text, or EVDB_ERANGE / EVDB_ENULL. */
static int elem_get(const evdb_array *a, size_t i, const char **p, size_t *len)
{
    if (!a || i >= a->n)
        return EVDB_ERANGE;
    if (a->items[i].len == NULL_ITEM)
        return EVDB_ENULL;
    *p = a->buf + a->items[i].off;
    *len = a->items[i].len;
    return 0;
}

/* The same, for the typed getters: EVDB_ETYPE when the elements are of
 * none of the types in the mask. */
static int elem_typed(const evdb_array *a, size_t i, unsigned types, const char **p, size_t *len)
{
    if (a && !(types & (1u << a->elem)))
        return EVDB_ETYPE;
    return elem_get(a, i, p, len);
}

const char *evdb_array_get_text(const evdb_array *a, size_t i, size_t *len)
{
    const char *p;
    size_t n;
    if (elem_get(a, i, &p, &n)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = n;
    return p;
}

const void *evdb_array_get_bytes(const evdb_array *a, size_t i, size_t *len)
{
    return evdb_array_get_text(a, i, len);
}

int evdb_array_get_int(const evdb_array *a, size_t i, int64_t *out)
{
    const char *p;
    size_t n;
    int rc = elem_get(a, i, &p, &n);
    if (rc)
        return rc;
    if (a->elem == EVDB_TYPE_BOOL) {
        bool b;
        rc = evdb__text_bool(p, n, &b);
        if (rc == 0 && out)
            *out = b;
        return rc;
    }
    int64_t v;
    rc = evdb__parse_int64(p, n, &v);
    if (rc == EVDB_EFORMAT)
        return EVDB_ETYPE;
    if (rc == 0 && out)
        *out = v;
    return rc;
}

int evdb_array_get_double(const evdb_array *a, size_t i, double *out)
{
    const char *p;
    size_t n;
    int rc = elem_get(a, i, &p, &n);
    return rc ? rc : evdb__text_double(p, n, out);
}

int evdb_array_get_bool(const evdb_array *a, size_t i, bool *out)
{
    const char *p;
    size_t n;
    int rc = elem_get(a, i, &p, &n);
    return rc ? rc : evdb__text_bool(p, n, out);
}

int evdb_array_get_uuid(const evdb_array *a, size_t i, uint8_t out[16])
{
    const char *p;
    size_t n;
    int rc = elem_typed(a, i, 1u << EVDB_TYPE_UUID | 1u << EVDB_TYPE_TEXT | 1u << EVDB_TYPE_OTHER,
                        &p, &n);
    uint8_t v[16];
    if (rc == 0 && (rc = evdb__parse_uuid(p, n, v)) == 0 && out)
        memcpy(out, v, 16);
    return rc;
}

int evdb_array_get_date(const evdb_array *a, size_t i, int32_t *days)
{
    const char *p;
    size_t n;
    int rc = elem_typed(a, i, 1u << EVDB_TYPE_DATE, &p, &n);
    int32_t v;
    if (rc == 0 && (rc = evdb__parse_date(p, n, &v)) == 0 && days)
        *days = v;
    return rc;
}

int evdb_array_get_timestamp(const evdb_array *a, size_t i, int64_t *us)
{
    const char *p;
    size_t n;
    int rc = elem_typed(a, i, 1u << EVDB_TYPE_TIMESTAMP | 1u << EVDB_TYPE_TIMESTAMPTZ, &p, &n);
    int64_t v;
    int32_t off;
    if (rc == 0 &&
        (rc = evdb__parse_timestamp(p, n, a->elem == EVDB_TYPE_TIMESTAMPTZ, &v, &off)) == 0 && us)
        *us = v;
    return rc;
}

int evdb_array_get_timestamptz(const evdb_array *a, size_t i, int64_t *us, int32_t *offset)
{
    const char *p;
    size_t n;
    int rc = elem_typed(a, i, 1u << EVDB_TYPE_TIMESTAMPTZ, &p, &n);
    int64_t v;
    int32_t off;
    if (rc == 0 && (rc = evdb__parse_timestamp(p, n, true, &v, &off)) == 0) {
        if (us)
            *us = v;
        if (offset)
            *offset = off;
    }
    return rc;
}
