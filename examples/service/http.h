/*
 * http: the small HTTP/1.1 request parser and response writer of the
 * service example. Only what a JSON service behind a load balancer needs:
 * a request line, headers (Content-Length, Connection, Transfer-Encoding),
 * a body of a known length. Everything else is refused with a status and a
 * clear message instead of being guessed at.
 *
 * Why not libmicrohttpd: driven from an outside loop it wants its
 * external-select mode (MHD_get_fdset / MHD_run_from_select: a full scan of
 * its connections per wake-up, fighting libev's readiness model), and a
 * response produced later, from an evdb callback, needs its suspended-
 * connection API (MHD_suspend_connection / MHD_resume_connection), which
 * wakes its own machinery again: a hop per request that a parser of a
 * hundred lines does not need.
 */
#ifndef SERVICE_HTTP_H
#define SERVICE_HTTP_H

#include <stddef.h>

/* Limits: a request whose headers exceed HTTP_MAX_HEAD gets 431, a body
 * over HTTP_MAX_BODY 413. */
#define HTTP_MAX_HEAD 8192
#define HTTP_MAX_BODY 4096

typedef struct http_request {
    const char *method; /* pointers into the connection's input buffer */
    size_t method_len;
    const char *target; /* path and query string */
    size_t target_len;
    const char *body;
    size_t body_len;
    int keep_alive;   /* 1 unless "Connection: close" (HTTP/1.0: unless keep-alive) */
    size_t total_len; /* bytes of the buffer this request used */
} http_request;

/* What http_parse found. */
enum {
    HTTP_INCOMPLETE = 0, /* need more bytes */
    HTTP_OK = 1,         /* *req filled */
    HTTP_ERROR = -1      /* *status and *message say why; close after answering */
};

/* Parse one request from buf[0..len). Returns HTTP_OK with *req pointing
 * into buf, HTTP_INCOMPLETE, or HTTP_ERROR with *status (400, 413, 431,
 * 501, 505) and *message (static text). */
int http_parse(const char *buf, size_t len, http_request *req, int *status, const char **message);

/* The reason phrase of status ("OK", "Not Found", ...). */
const char *http_reason(int status);

/* Write a complete response with a JSON body into out (capacity cap).
 * Returns the length, or 0 when it does not fit. */
size_t http_format(char *out, size_t cap, int status, int keep_alive, const char *body,
                   size_t body_len);

/* 1 when the request's method is m and its path (before '?') starts with
 * prefix (exact match when exact is 1). */
int http_is(const http_request *r, const char *m, const char *prefix, int exact);

/* The value of query parameter name in the target into out (NUL ended,
 * cap bytes), 1 when present, 0 when not. */
int http_query_param(const http_request *r, const char *name, char *out, size_t cap);

#endif
