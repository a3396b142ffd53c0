/*
 * Host name resolution before a PostgreSQL connect, without blocking the
 * loop.
 *
 * libpq resolves host names with a blocking getaddrinfo inside
 * PQconnectStart / PQconnectPoll, which stalls the loop for as long as a
 * DNS server takes to answer. So when the URL names hosts (not IP literals,
 * not unix socket directories) and gives no hostaddr, the names are first
 * resolved with the core's resolver (c-ares on the loop, waiting on its
 * socket like on any other). libpq then gets the numeric addresses
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
 * Each name is one lookup of the core's resolver (src/resolve.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* Addresses of one name tried at most. */
#define MAX_ADDRS 8
/* Host entries in one URL handled at most (libpq has no limit; a longer
 * list is left to libpq's own lookup). */
#define MAX_HOSTS 16

/* The loop side of a resolution (evdb allocator, loop thread only). */
struct pg_resolve {
    size_t nhosts;
    char *hosts[MAX_HOSTS];       /* into text */
    char *ports[MAX_HOSTS];       /* into text; ports[0] NULL: one port (or none) for all */
    evdb__lookup *req[MAX_HOSTS]; /* NULL: this entry needs no lookup */
    char text[];                  /* the host and port lists, split in place */
};

static void resolve_free(pg_resolve *rs)
{
    for (size_t i = 0; i < rs->nhosts; i++)
        evdb__lookup_drop(rs->req[i]);
    evdb__free(rs);
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
        if (is_socket(rs->hosts[i]) || evdb__host_is_ip(rs->hosts[i]))
            continue;
        int rc;
        rs->req[i] = evdb__lookup_start(rs->hosts[i], &rc);
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
    dc->resolve = rs;
    return evdb__pg_resolve_step(dc, w, err);
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
        if (r->req[i] && evdb__lookup_running(r->req[i])) {
            /* Wait for the first name still running; the others are
             * read when it wakes us (or by its wait's timeout). */
            evdb__lookup_wait(r->req[i], w);
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
        int rc = evdb__lookup_error(r->req[i]);
        if (rc) {
            failed_rc = rc;
            failed_name = r->hosts[i];
            continue;
        }
        char addrs[MAX_ADDRS][EVDB__ADDR_TEXT_MAX];
        size_t naddrs = evdb__lookup_addrs(r->req[i], addrs, MAX_ADDRS);
        for (size_t k = 0; k < naddrs; k++)
            add_entry(&h, &a, &p, per_host_port, n++, r->hosts[i], addrs[k], port);
    }
    int st = EVDB__STEP_DONE;
    if (h.oom || a.oom || p.oom) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        st = EVDB__STEP_FAIL;
    } else if (n == 0) {
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL,
                        "could not translate host name \"%s\" to address: %s",
                        failed_name ? failed_name : "", evdb__lookup_strerror(failed_rc));
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
