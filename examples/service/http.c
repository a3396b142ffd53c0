/*
 * http: request parsing and response formatting (see http.h). Requests
 * are parsed from the start each time more bytes arrive: requests are a
 * few hundred bytes and arrive whole, so an incremental state machine
 * would buy nothing but code.
 */
#include "http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The end of the header block ("\r\n\r\n") in buf[0..len), or NULL. */
static const char *head_end(const char *buf, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            return buf + i + 1;
    return NULL;
}

static int fail(int *status, const char **message, int s, const char *m)
{
    *status = s;
    *message = m;
    return HTTP_ERROR;
}

/* 1 when name (of length n) is header h, case-insensitively. */
static int header_is(const char *name, size_t n, const char *h)
{
    return strlen(h) == n && strncasecmp(name, h, n) == 0;
}

/* 1 when the comma-separated value contains token, case-insensitively. */
static int has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    for (size_t i = 0; i + tl <= n; i++)
        if (strncasecmp(v + i, token, tl) == 0)
            return 1;
    return 0;
}

/* Parse the request line into req; returns the HTTP minor version (0 or
 * 1) or HTTP_ERROR. */
static int request_line(const char *p, const char *eol, http_request *req, int *status,
                        const char **message)
{
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 == p || sp2 == sp1 + 1)
        return fail(status, message, 400, "malformed request line");
    for (const char *c = p; c < sp1; c++)
        if (*c < 'A' || *c > 'Z')
            return fail(status, message, 400, "malformed method");
    if (sp1[1] != '/')
        return fail(status, message, 400, "the target must be an absolute path");
    for (const char *c = sp1 + 1; c < sp2; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return fail(status, message, 400, "bad character in the target");
    size_t vl = (size_t)(eol - sp2 - 1);
    if (vl != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return fail(status, message, 400, "malformed HTTP version");
    if (sp2[8] != '0' && sp2[8] != '1')
        return fail(status, message, 505, "only HTTP/1.0 and HTTP/1.1 are served");
    req->method = p;
    req->method_len = (size_t)(sp1 - p);
    req->target = sp1 + 1;
    req->target_len = (size_t)(sp2 - sp1 - 1);
    return sp2[8] - '0';
}

int http_parse(const char *buf, size_t len, http_request *req, int *status, const char **message)
{
    const char *end = head_end(buf, len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD);
    if (!end)
        return len >= HTTP_MAX_HEAD ? fail(status, message, 431, "request headers too large")
                                    : HTTP_INCOMPLETE;
    memset(req, 0, sizeof *req);
    const char *eol = memchr(buf, '\r', (size_t)(end - buf));
    if (!eol || eol[1] != '\n')
        return fail(status, message, 400, "malformed request line");
    int minor = request_line(buf, eol, req, status, message);
    if (minor < 0)
        return HTTP_ERROR;
    req->keep_alive = minor == 1;
    long long clen = -1;
    for (const char *p = eol + 2; p < end - 2;) {
        const char *le = memchr(p, '\r', (size_t)(end - p));
        if (!le || le[1] != '\n')
            return fail(status, message, 400, "malformed header line");
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return fail(status, message, 400, "malformed header line");
        size_t nl = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        size_t vl = (size_t)(le - v);
        if (header_is(p, nl, "Content-Length")) {
            if (clen >= 0)
                return fail(status, message, 400, "more than one Content-Length");
            if (vl == 0 || vl > 9)
                return fail(status, message, vl == 0 ? 400 : 413,
                            vl == 0 ? "empty Content-Length" : "request body too large");
            clen = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return fail(status, message, 400, "Content-Length is not a number");
                clen = clen * 10 + (v[i] - '0');
            }
        } else if (header_is(p, nl, "Transfer-Encoding")) {
            return fail(status, message, 501,
                        "Transfer-Encoding is not supported: send Content-Length");
        } else if (header_is(p, nl, "Connection")) {
            if (has_token(v, vl, "close"))
                req->keep_alive = 0;
            else if (has_token(v, vl, "keep-alive"))
                req->keep_alive = 1;
        }
        p = le + 2;
    }
    if (clen > HTTP_MAX_BODY)
        return fail(status, message, 413, "request body too large");
    size_t head = (size_t)(end - buf);
    size_t blen = clen > 0 ? (size_t)clen : 0;
    if (len - head < blen)
        return HTTP_INCOMPLETE;
    req->body = end;
    req->body_len = blen;
    req->total_len = head + blen;
    return HTTP_OK;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

size_t http_format(char *out, size_t cap, int status, int keep_alive, const char *body,
                   size_t body_len)
{
    int n =
        snprintf(out, cap,
                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n%s\r\n",
                 status, http_reason(status), body_len, keep_alive ? "" : "Connection: close\r\n");
    if (n < 0 || (size_t)n + body_len > cap)
        return 0;
    memcpy(out + n, body, body_len);
    return (size_t)n + body_len;
}

/* The length of the target's path (up to '?'). */
static size_t path_len(const http_request *r)
{
    const char *q = memchr(r->target, '?', r->target_len);
    return q ? (size_t)(q - r->target) : r->target_len;
}

int http_is(const http_request *r, const char *m, const char *prefix, int exact)
{
    size_t pl = strlen(prefix), tl = path_len(r);
    if (strlen(m) != r->method_len || memcmp(r->method, m, r->method_len) != 0)
        return 0;
    return exact ? tl == pl && memcmp(r->target, prefix, pl) == 0
                 : tl >= pl && memcmp(r->target, prefix, pl) == 0;
}

int http_query_param(const http_request *r, const char *name, char *out, size_t cap)
{
    size_t pl = path_len(r), nl = strlen(name);
    const char *p = r->target + pl, *end = r->target + r->target_len;
    while (p < end) {
        p++; /* '?' or '&' */
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        if ((size_t)(e - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t vl = (size_t)(e - p - nl - 1);
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            return 1;
        }
        p = e;
    }
    return 0;
}
