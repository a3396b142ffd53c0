/*
 * Host name resolution before a PostgreSQL connect, off the loop thread.
 *
 * libpq resolves host names with a blocking getaddrinfo inside
 * PQconnectStart / PQconnectPoll, which stalls the loop for as long as a
 * DNS server takes to answer. So when the URL names hosts (not IP literals,
 * not unix socket directories) and gives no hostaddr, the names are first
 * resolved with glibc's getaddrinfo_a (a helper thread), polled from the
 * loop with a short, growing timer. libpq then gets the numeric addresses
 * as hostaddr=, one entry per address, next to host= with the name: libpq
 * connects to hostaddr and keeps using host for TLS verification
 * (sslmode=verify-full), .pgpass and its messages. Keywords given after
 * the expanded URL override it, so multi-host lists, ports and every other
 * option stay as the user wrote them.
 *
 * Limitations: host names that come from the environment (PGHOST) or a
 * service file (service=) are not seen here and are still resolved by
 * libpq on the loop thread. At most MAX_ADDRS addresses per name are
 * tried, in the resolver's order. A name that does not resolve is skipped
 * when other hosts remain (libpq would have moved on to them too).
 *
 * Each lookup is its own getaddrinfo_a request with its own notification
 * (glibc's gai_cancel does not complete a list's notification, so a list
 * with some requests cancelled would never be freed). The request blocks
 * are allocated with plain malloc, not the evdb allocator: when a connect
 * is abandoned while a lookup runs, glibc cannot cancel it, and the block
 * is then freed by glibc's notification thread, where a user allocator
 * hook need not be safe.
 */
/* getaddrinfo_a and friends are GNU extensions. */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* Poll the lookup after 1 ms, doubling up to 50 ms between polls. */
#define POLL_FIRST_MS 1
#define POLL_MAX_MS 50
/* Addresses of one name tried at most. */
#define MAX_ADDRS 8
/* Host entries in one URL handled at most (libpq has no limit; a longer
 * list is left to libpq's own lookup). */
#define MAX_HOSTS 16

/* One lookup, shared by the loop thread and glibc's notification thread:
 * each holds a reference and the last one frees it. */
#define REQ_REFS 2

typedef struct pg_req {
    struct gaicb cb;
    struct addrinfo hints;
    struct sigevent sev;
    atomic_int refs;
    char name[];
} pg_req;

/* The loop side of a resolution (evdb allocator, loop thread only). */
struct pg_resolve {
    int delay_ms;
    size_t nhosts;
    char *hosts[MAX_HOSTS]; /* into text */
    char *ports[MAX_HOSTS]; /* into text; ports[0] NULL: one port (or none) for all */
    pg_req *req[MAX_HOSTS]; /* NULL: this entry needs no lookup */
    char text[];            /* the host and port lists, split in place */
};

static void req_free(pg_req *r)
{
    if (r->cb.ar_result)
        freeaddrinfo(r->cb.ar_result);
    free(r);
}

static void req_unref(pg_req *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1)
        req_free(r);
}

/* Runs on glibc's helper thread once the lookup finished. */
static void notified(union sigval sv)
{
    req_unref(sv.sival_ptr);
}

/* Abandon a lookup: cancelled before it ran, no notification will come;
 * running or finished, the notification frees it if it comes last. */
static void req_drop(pg_req *r)
{
    if (gai_cancel(&r->cb) == EAI_CANCELED)
        req_free(r);
    else
        req_unref(r);
}

static pg_req *req_start(const char *name)
{
    size_t n = strlen(name);
    pg_req *r = calloc(1, sizeof *r + n + 1);
    if (!r)
        return NULL;
    memcpy(r->name, name, n + 1);
    r->hints.ai_family = AF_UNSPEC;
    r->hints.ai_socktype = SOCK_STREAM;
    r->cb.ar_name = r->name;
    r->cb.ar_request = &r->hints;
    r->sev.sigev_notify = SIGEV_THREAD;
    r->sev.sigev_notify_function = notified;
    r->sev.sigev_value.sival_ptr = r;
    atomic_init(&r->refs, REQ_REFS);
    struct gaicb *list[1] = {&r->cb};
    if (getaddrinfo_a(GAI_NOWAIT, list, 1, &r->sev)) {
        free(r);
        return NULL;
    }
    return r;
}

static void resolve_free(pg_resolve *rs)
{
    for (size_t i = 0; i < rs->nhosts; i++)
        if (rs->req[i])
            req_drop(rs->req[i]);
    evdb__free(rs);
}

static bool is_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Unix socket directories (and abstract sockets) and the default. */
static bool is_socket(const char *host)
{
    return host[0] == '\0' || host[0] == '/' || host[0] == '@';
}

static const char *option(const PQconninfoOption *opts, const char *key)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (!strcmp(o->keyword, key))
            return o->val;
    return NULL;
}

/* Split s at commas in place into out[]; returns the count, or 0 when
 * there are more than max entries. */
static size_t split(char *s, char **out, size_t max)
{
    size_t n = 0;
    for (;;) {
        if (n == max)
            return 0;
        out[n++] = s;
        char *comma = strchr(s, ',');
        if (!comma)
            return n;
        *comma = '\0';
        s = comma + 1;
    }
}

int evdb__pg_resolve_start(evdb__dconn *dc, const PQconninfoOption *opts, evdb__wait *w,
                           evdb_error *err)
{
    const char *host = option(opts, "host");
    const char *hostaddr = option(opts, "hostaddr");
    const char *port = option(opts, "port");
    if (!host || !*host || (hostaddr && *hostaddr))
        return EVDB__STEP_DONE; /* nothing to resolve, or the user did */
    size_t hlen = strlen(host), plen = port ? strlen(port) : 0;
    pg_resolve *rs = evdb__calloc(1, sizeof *rs + hlen + plen + 2);
    if (!rs) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB__STEP_FAIL;
    }
    memcpy(rs->text, host, hlen + 1);
    rs->nhosts = split(rs->text, rs->hosts, MAX_HOSTS);
    if (port && strchr(port, ',')) {
        char *ptext = rs->text + hlen + 1;
        memcpy(ptext, port, plen + 1);
        /* libpq insists on one port per host; let it say so otherwise. */
        if (split(ptext, rs->ports, MAX_HOSTS) != rs->nhosts)
            rs->nhosts = 0;
    }
    size_t nreq = 0;
    for (size_t i = 0; i < rs->nhosts; i++) {
        if (is_socket(rs->hosts[i]) || is_literal(rs->hosts[i]))
            continue;
        rs->req[i] = req_start(rs->hosts[i]);
        if (!rs->req[i]) {
            resolve_free(rs);
            evdb__error_set(err, EVDB_ECONNECT, 0, NULL,
                            "could not start resolving host name \"%s\"", host);
            return EVDB__STEP_FAIL;
        }
        nreq++;
    }
    if (nreq == 0) {
        evdb__free(rs);
        return EVDB__STEP_DONE;
    }
    rs->delay_ms = POLL_FIRST_MS;
    dc->resolve = rs;
    w->fd = -1;
    w->events = 0;
    w->timeout_ms = rs->delay_ms;
    return EVDB__STEP_WAIT;
}

/* A growing string in the evdb allocator. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_add(strbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = evdb__realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

/* Append one host entry to the three lists. */
static void add_entry(strbuf *h, strbuf *a, strbuf *p, bool per_host_port, size_t n,
                      const char *host, const char *addr, const char *port)
{
    const char *sep = n ? "," : "";
    sb_add(h, sep);
    sb_add(h, host);
    sb_add(a, sep);
    sb_add(a, addr);
    if (per_host_port) {
        sb_add(p, sep);
        sb_add(p, port);
    }
}

int evdb__pg_resolve_step(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    pg_resolve *r = dc->resolve;
    for (size_t i = 0; i < r->nhosts; i++) {
        if (r->req[i] && gai_error(&r->req[i]->cb) == EAI_INPROGRESS) {
            r->delay_ms = r->delay_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : r->delay_ms * 2;
            w->fd = -1;
            w->events = 0;
            w->timeout_ms = r->delay_ms;
            return EVDB__STEP_WAIT;
        }
    }
    /* All finished: build host=, hostaddr= and (per-host) port= lists. */
    dc->resolve = NULL;
    strbuf h = {0}, a = {0}, p = {0};
    bool per_host_port = r->ports[0] != NULL;
    size_t n = 0;
    int failed_rc = 0;
    const char *failed_name = NULL;
    for (size_t i = 0; i < r->nhosts; i++) {
        const char *port = per_host_port ? r->ports[i] : NULL;
        if (!r->req[i]) {
            add_entry(&h, &a, &p, per_host_port, n++, r->hosts[i], "", port);
            continue;
        }
        struct gaicb *cb = &r->req[i]->cb;
        int rc = gai_error(cb);
        if (rc || !cb->ar_result) {
            failed_rc = rc ? rc : EAI_NONAME;
            failed_name = r->hosts[i];
            continue;
        }
        char seen[MAX_ADDRS][INET6_ADDRSTRLEN];
        size_t nseen = 0;
        for (const struct addrinfo *ai = cb->ar_result; ai && nseen < MAX_ADDRS;
             ai = ai->ai_next) {
            const void *src;
            if (ai->ai_family == AF_INET6)
                src = &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr;
            else if (ai->ai_family == AF_INET)
                src = &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
            else
                continue;
            char addr[INET6_ADDRSTRLEN];
            if (!inet_ntop(ai->ai_family, src, addr, sizeof addr))
                continue;
            bool dup = false;
            for (size_t k = 0; k < nseen && !dup; k++)
                dup = !strcmp(seen[k], addr);
            if (dup)
                continue;
            memcpy(seen[nseen++], addr, sizeof addr);
            add_entry(&h, &a, &p, per_host_port, n++, r->hosts[i], addr, port);
        }
    }
    int st = EVDB__STEP_DONE;
    if (h.oom || a.oom || p.oom) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        st = EVDB__STEP_FAIL;
    } else if (n == 0) {
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL,
                        "could not translate host name \"%s\" to address: %s",
                        failed_name ? failed_name : "", gai_strerror(failed_rc));
        st = EVDB__STEP_FAIL;
    }
    if (st == EVDB__STEP_DONE) {
        dc->rs_host = h.s;
        dc->rs_hostaddr = a.s;
        dc->rs_port = p.s;
    } else {
        evdb__free(h.s);
        evdb__free(a.s);
        evdb__free(p.s);
    }
    resolve_free(r);
    return st;
}

void evdb__pg_resolve_cancel(evdb__dconn *dc)
{
    if (dc->resolve)
        resolve_free(dc->resolve);
    dc->resolve = NULL;
}

void evdb__pg_resolve_free_lists(evdb__dconn *dc)
{
    evdb__free(dc->rs_host);
    evdb__free(dc->rs_hostaddr);
    evdb__free(dc->rs_port);
    dc->rs_host = dc->rs_hostaddr = dc->rs_port = NULL;
}
