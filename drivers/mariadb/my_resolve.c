/*
 * Host name resolution before a MariaDB connect, without blocking the loop.
 *
 * mysql_real_connect_start calls getaddrinfo synchronously, which stalls
 * the loop for as long as a DNS server takes to answer. So names that are
 * not IP literals are resolved first with the core's resolver (c-ares on
 * the loop, waiting on its socket like on any other), and the
 * connect then goes to the numeric address. IP literals and "localhost"
 * (answered from /etc/hosts) go straight to Connector/C.
 *
 * Limitations, by design:
 *  - The addresses are tried in the order the resolver gives them, moving
 *    on when one refuses or cannot be reached (up to eight).
 *  - With ssl_verify the certificate must be checked against the name the
 *    user wrote, so the name itself goes to Connector/C and its
 *    synchronous lookup runs on the loop thread.
 *
 * The lookup itself is the core's resolver (src/resolve.c).
 */
#include <stdlib.h>
#include <string.h>

#include "my_internal.h"

/* Addresses of one name tried at most. */
#define MAX_ADDRS 8

struct evdb__my_resolve {
    evdb__lookup *lookup;
};

static bool needs_lookup(const char *host)
{
    /* "localhost" is answered from /etc/hosts at once. */
    return !evdb__host_is_ip(host) && strcmp(host, "localhost") != 0;
}

bool evdb__my_resolving(const evdb__dconn *dc)
{
    return dc->resolve != NULL;
}

int evdb__my_resolve_start(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    const char *host = dc->opts.host;
    if (!host || !needs_lookup(host) || dc->opts.tls_verify)
        return EVDB__STEP_DONE;
    struct evdb__my_resolve *r = evdb__calloc(1, sizeof *r);
    if (!r) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB__STEP_FAIL;
    }
    int rc;
    r->lookup = evdb__lookup_start(host, &rc);
    if (!r->lookup) {
        evdb__free(r);
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL, "could not resolve MariaDB host '%s': %s",
                        host, evdb__lookup_strerror(rc));
        return EVDB__STEP_FAIL;
    }
    dc->resolve = r;
    return evdb__my_resolve_step(dc, w, err);
}

const char *evdb__my_connect_host(const evdb__dconn *dc)
{
    return dc->addr_i < dc->naddrs ? dc->addrs[dc->addr_i] : dc->opts.host;
}

void evdb__my_addrs_free(evdb__dconn *dc)
{
    for (size_t i = 0; i < dc->naddrs; i++)
        evdb__free(dc->addrs[i]);
    evdb__free(dc->addrs);
    dc->addrs = NULL;
    dc->naddrs = dc->addr_i = 0;
}

/* Keep the distinct numeric addresses of the answer, in its order (the
 * resolver's preference), for the connect to try in turn. */
static int take_addresses(evdb__dconn *dc, const evdb__lookup *l)
{
    evdb__my_addrs_free(dc);
    char found[MAX_ADDRS][EVDB__ADDR_TEXT_MAX];
    size_t n = evdb__lookup_addrs(l, found, MAX_ADDRS);
    dc->addrs = evdb__calloc(MAX_ADDRS, sizeof *dc->addrs);
    if (!dc->addrs)
        return EVDB_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        dc->addrs[dc->naddrs] = evdb__strdup(found[i]);
        if (!dc->addrs[dc->naddrs])
            return EVDB_ENOMEM;
        dc->naddrs++;
    }
    return dc->naddrs ? 0 : EVDB_ENOMEM;
}

int evdb__my_resolve_step(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    struct evdb__my_resolve *r = dc->resolve;
    if (evdb__lookup_running(r->lookup)) {
        evdb__lookup_wait(r->lookup, w);
        return EVDB__STEP_WAIT;
    }
    /* Finished: take the addresses, then let the lookup go. */
    dc->resolve = NULL;
    int st = EVDB__STEP_DONE;
    int rc = evdb__lookup_error(r->lookup);
    if (rc) {
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL, "could not resolve MariaDB host '%s': %s",
                        dc->opts.host, evdb__lookup_strerror(rc));
        st = EVDB__STEP_FAIL;
    } else if (take_addresses(dc, r->lookup)) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        st = EVDB__STEP_FAIL;
    }
    evdb__lookup_drop(r->lookup);
    evdb__free(r);
    return st;
}

void evdb__my_resolve_cancel(evdb__dconn *dc)
{
    struct evdb__my_resolve *r = dc->resolve;
    if (!r)
        return;
    dc->resolve = NULL;
    evdb__lookup_drop(r->lookup);
    evdb__free(r);
}
