/*
 * json: the flat-object reader and string escaping of json.h.
 */
#include "json.h"

#include <stdio.h>
#include <string.h>

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* A string without escapes (member names are plain words): its bytes in
 * *s, *n. */
static int read_name(cursor *c, const char **s, size_t *n)
{
    if (c->p >= c->end || *c->p != '"')
        return -1;
    const char *start = ++c->p;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' || (unsigned char)*c->p < 0x20)
            return -1;
        c->p++;
    }
    if (c->p >= c->end)
        return -1;
    *s = start;
    *n = (size_t)(c->p++ - start);
    return 0;
}

/* An integer within +-10^15 (amounts and ids; no float, no exponent). */
static int read_int(cursor *c, int64_t *v)
{
    int neg = c->p < c->end && *c->p == '-';
    if (neg)
        c->p++;
    const char *start = c->p;
    int64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (c->p - start >= 15)
            return -1;
        x = x * 10 + (*c->p++ - '0');
    }
    if (c->p == start || (c->p - start > 1 && *start == '0'))
        return -1;
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
        return -1;
    *v = neg ? -x : x;
    return 0;
}

int json_read_ints(const char *s, size_t len, const char *const *keys, int64_t *vals, size_t n,
                   char *err, size_t cap)
{
    cursor c = {s, s + len};
    unsigned seen = 0;
    skip_ws(&c);
    if (c.p >= c.end || *c.p++ != '{') {
        snprintf(err, cap, "the body must be a JSON object");
        return -1;
    }
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}')
        c.p++;
    else
        for (;;) {
            const char *name;
            size_t nl;
            skip_ws(&c);
            if (read_name(&c, &name, &nl) != 0) {
                snprintf(err, cap, "malformed JSON: a member name was expected");
                return -1;
            }
            size_t k = 0;
            while (k < n && !(strlen(keys[k]) == nl && memcmp(keys[k], name, nl) == 0))
                k++;
            if (k == n || (seen & (1u << k))) {
                snprintf(err, cap, "%s member \"%.*s\"", k == n ? "unknown" : "repeated",
                         (int)(nl > 32 ? 32 : nl), name);
                return -1;
            }
            skip_ws(&c);
            if (c.p >= c.end || *c.p++ != ':') {
                snprintf(err, cap, "malformed JSON: ':' expected after \"%s\"", keys[k]);
                return -1;
            }
            skip_ws(&c);
            if (read_int(&c, &vals[k]) != 0) {
                snprintf(err, cap, "\"%s\" must be an integer", keys[k]);
                return -1;
            }
            seen |= 1u << k;
            skip_ws(&c);
            if (c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            if (c.p < c.end && *c.p == '}') {
                c.p++;
                break;
            }
            snprintf(err, cap, "malformed JSON: ',' or '}' expected");
            return -1;
        }
    skip_ws(&c);
    if (c.p != c.end) {
        snprintf(err, cap, "malformed JSON: bytes after the object");
        return -1;
    }
    for (size_t k = 0; k < n; k++)
        if (!(seen & (1u << k))) {
            snprintf(err, cap, "missing member \"%s\"", keys[k]);
            return -1;
        }
    return 0;
}

int json_put_string(char *out, size_t cap, size_t *pos, const char *s)
{
    size_t p = *pos;
    if (p >= cap)
        return -1;
    out[p++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        int w;
        if (ch == '"' || ch == '\\')
            w = snprintf(out + p, cap - p, "\\%c", ch);
        else if (ch < 0x20)
            w = snprintf(out + p, cap - p, "\\u%04x", ch);
        else
            w = snprintf(out + p, cap - p, "%c", ch);
        if (w < 0 || (size_t)w >= cap - p)
            return -1;
        p += (size_t)w;
    }
    if (p + 1 >= cap)
        return -1;
    out[p++] = '"';
    out[p] = '\0';
    *pos = p;
    return 0;
}
