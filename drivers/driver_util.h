/*
 * What the core gives every driver besides the query interface of
 * driver.h: error objects, allocation through the user's hooks, numbers as
 * text, host name lookups on the loop and URL parsing (all implemented in
 * src/). Included by driver.h.
 */
#ifndef EVDB_DRIVER_UTIL_H
#define EVDB_DRIVER_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "evdb/error.h"

typedef struct evdb__wait evdb__wait; /* driver.h */

/* Fill an error object: code (EVDB_*), driver_code, sqlstate (may be NULL)
 * and a printf-style message. Never fails; truncates long messages. */
void evdb__error_set(evdb_error *e, int code, int driver_code, const char *sqlstate,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Diagnostic fields an error (or a server notice) may carry besides its
 * message (PostgreSQL's PG_DIAG_* fields; MariaDB has none of them). */
enum evdb__diag {
    EVDB__DIAG_SEVERITY,   /* "ERROR", "FATAL", "NOTICE", "WARNING", ... */
    EVDB__DIAG_CONSTRAINT, /* the violated constraint's name */
    EVDB__DIAG_TABLE,      /* the table concerned */
    EVDB__DIAG_COLUMN,     /* the column concerned */
    EVDB__DIAG_DETAIL,     /* the secondary message */
    EVDB__DIAG_HINT,       /* the server's suggestion */
    EVDB__DIAG_COUNT
};

/* Attach field f to e (value NULL or "": absent). Call after
 * evdb__error_set, which clears every field. The fields share one fixed
 * buffer: set the short ones first; a value that does not fit is cut at a
 * UTF-8 character boundary, or left out when no room remains. */
void evdb__error_diag(evdb_error *e, enum evdb__diag f, const char *value);

/* v in decimal, NUL-terminated, without printf (drivers print numbers on
 * every query's path); out has room for EVDB__INT_TEXT_MAX bytes.
 * Returns the length (src/value.c). */
#define EVDB__INT_TEXT_MAX 21
size_t evdb__int_text(int64_t v, char *out);
size_t evdb__uint_text(uint64_t v, char *out);

/* Allocation through the user's hooks (src/alloc.c). */
void *evdb__malloc(size_t n);
void *evdb__calloc(size_t n, size_t size);
void *evdb__realloc(void *p, size_t n);
void evdb__free(void *p);
char *evdb__strdup(const char *s);

/* Host name lookups on the loop (src/resolve.c, c-ares), for client
 * libraries that would call a blocking getaddrinfo. Wait as
 * evdb__lookup_wait says while evdb__lookup_running; then read the
 * addresses. */
#define EVDB__ADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN */
typedef struct evdb__lookup evdb__lookup;
/* True for an IPv4 or IPv6 literal (nothing to look up). */
bool evdb__host_is_ip(const char *host);
/* Start looking name up (/etc/hosts answers at once); NULL with *rc (a
 * code for evdb__lookup_strerror) when it could not start. */
evdb__lookup *evdb__lookup_start(const char *name, int *rc);
/* Reads what arrived and says whether the lookup still runs. */
bool evdb__lookup_running(evdb__lookup *r);
/* What to wait for before asking evdb__lookup_running again: a socket and
 * its events, or none (fd -1), and always a timeout (c-ares' next retry,
 * at most 50 ms). */
void evdb__lookup_wait(const evdb__lookup *r, evdb__wait *w);
/* Once finished: 0, or the resolver's error (also when no address came). */
int evdb__lookup_error(const evdb__lookup *r);
const char *evdb__lookup_strerror(int rc);
/* The distinct numeric addresses found, in the resolver's order, at most
 * max of them, as text; returns how many. */
size_t evdb__lookup_addrs(const evdb__lookup *r, char (*out)[EVDB__ADDR_TEXT_MAX], size_t max);
/* Give the lookup up, finished or not: frees it at once. NULL is ignored. */
void evdb__lookup_drop(evdb__lookup *r);

/* The value of one hexadecimal digit, or -1 (src/url.c). */
int evdb__hexval(int c);

/* URL parsing for drivers that parse URLs themselves (src/url.c). */
typedef struct evdb__url_param {
    char *key;
    char *value;
} evdb__url_param;

typedef struct evdb__url {
    char *scheme, *user, *password, *host, *path; /* decoded; NULL when absent */
    int port;                                     /* 0 when absent */
    evdb__url_param *params;                      /* decoded ?k=v&... */
    size_t nparams;
} evdb__url;

/* Parse scheme://[user[:password]@]host[:port][/path][?k=v&...] with
 * percent-decoding. Returns 0 or EVDB_EURL / EVDB_ENOMEM with err set (the
 * message never contains the password). Free with evdb__url_free. */
int evdb__url_parse(const char *s, evdb__url *out, evdb_error *err);
void evdb__url_free(evdb__url *u);

#endif
