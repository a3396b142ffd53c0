/*
 * Host name resolution before a MariaDB connect, off the loop thread.
 *
 * mysql_real_connect_start calls getaddrinfo synchronously, which stalls
 * the loop for as long as a DNS server takes to answer. So names that are
 * not IP literals are resolved first with glibc's getaddrinfo_a (a helper
 * thread), polled from the loop with a short, growing timer, and the
 * connect then goes to the numeric address. IP literals and "localhost"
 * (answered from /etc/hosts) go straight to Connector/C.
 *
 * Limitations, by design:
 *  - The addresses are tried in the order getaddrinfo gives them, moving
 *    on when one refuses or cannot be reached (up to eight).
 *  - With ssl_verify the certificate must be checked against the name the
 *    user wrote, so the name itself goes to Connector/C and its
 *    synchronous lookup runs on the loop thread.
 *
 * The request is allocated with plain malloc, not the evdb allocator: when
 * a connect is abandoned while the lookup runs, glibc cannot always cancel
 * it, and the request is then freed by glibc's notification thread, where
 * a user allocator hook need not be safe to call.
 */
/* getaddrinfo_a and friends are GNU extensions. */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "my_internal.h"

/* Poll the lookup after 1 ms, doubling up to 50 ms between polls. */
#define POLL_FIRST_MS 1
#define POLL_MAX_MS 50
/* Addresses of one name tried at most. */
#define MAX_ADDRS 8

/* The request is shared by the loop thread and glibc's notification
 * thread; each holds a reference and the last one frees it. */
#define REQ_REFS 2

struct evdb__my_resolve {
    struct gaicb cb;
    struct addrinfo hints;
    struct sigevent sev;
    atomic_int refs;
    int delay_ms;
    char name[]; /* the host name, owned by the request */
};

static void req_free(struct evdb__my_resolve *r)
{
    if (r->cb.ar_result)
        freeaddrinfo(r->cb.ar_result);
    free(r);
}

static void req_unref(struct evdb__my_resolve *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1)
        req_free(r);
}

/* Runs on glibc's helper thread once the lookup finished. */
static void notified(union sigval sv)
{
    req_unref(sv.sival_ptr);
}

static bool is_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1 ||
           strcmp(host, "localhost") == 0;
}

bool evdb__my_resolving(const evdb__dconn *dc)
{
    return dc->resolve != NULL;
}

int evdb__my_resolve_start(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    const char *host = dc->opts.host;
    if (!host || is_literal(host) || dc->opts.tls_verify)
        return EVDB__STEP_DONE;
    size_t n = strlen(host);
    struct evdb__my_resolve *r = calloc(1, sizeof *r + n + 1);
    if (!r) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB__STEP_FAIL;
    }
    memcpy(r->name, host, n + 1);
    r->hints.ai_family = AF_UNSPEC;
    r->hints.ai_socktype = SOCK_STREAM;
    r->cb.ar_name = r->name;
    r->cb.ar_request = &r->hints;
    r->sev.sigev_notify = SIGEV_THREAD;
    r->sev.sigev_notify_function = notified;
    r->sev.sigev_value.sival_ptr = r;
    atomic_init(&r->refs, REQ_REFS);
    r->delay_ms = POLL_FIRST_MS;
    struct gaicb *list[1] = {&r->cb};
    int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &r->sev);
    if (rc) {
        free(r);
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL, "could not resolve MariaDB host '%s': %s",
                        host, gai_strerror(rc));
        return EVDB__STEP_FAIL;
    }
    dc->resolve = r;
    w->fd = -1;
    w->events = 0;
    w->timeout_ms = r->delay_ms;
    return EVDB__STEP_WAIT;
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
static int take_addresses(evdb__dconn *dc, const struct addrinfo *list)
{
    evdb__my_addrs_free(dc);
    dc->addrs = evdb__calloc(MAX_ADDRS, sizeof *dc->addrs);
    if (!dc->addrs)
        return EVDB_ENOMEM;
    for (const struct addrinfo *ai = list; ai && dc->naddrs < MAX_ADDRS; ai = ai->ai_next) {
        char addr[INET6_ADDRSTRLEN];
        const void *src;
        if (ai->ai_family == AF_INET6)
            src = &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr;
        else if (ai->ai_family == AF_INET)
            src = &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
        else
            continue;
        if (!inet_ntop(ai->ai_family, src, addr, sizeof addr))
            continue;
        bool dup = false;
        for (size_t i = 0; i < dc->naddrs && !dup; i++)
            dup = strcmp(dc->addrs[i], addr) == 0;
        if (dup)
            continue;
        dc->addrs[dc->naddrs] = evdb__strdup(addr);
        if (!dc->addrs[dc->naddrs])
            return EVDB_ENOMEM;
        dc->naddrs++;
    }
    return dc->naddrs ? 0 : EVDB_ENOMEM;
}

int evdb__my_resolve_step(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    struct evdb__my_resolve *r = dc->resolve;
    int rc = gai_error(&r->cb);
    if (rc == EAI_INPROGRESS) {
        r->delay_ms = r->delay_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : r->delay_ms * 2;
        w->fd = -1;
        w->events = 0;
        w->timeout_ms = r->delay_ms;
        return EVDB__STEP_WAIT;
    }
    /* Finished: take the address, then drop our reference (the
     * notification may not have run yet and still holds its own). */
    dc->resolve = NULL;
    int st = EVDB__STEP_DONE;
    if (rc || !r->cb.ar_result) {
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL, "could not resolve MariaDB host '%s': %s",
                        dc->opts.host, gai_strerror(rc ? rc : EAI_NONAME));
        st = EVDB__STEP_FAIL;
    } else if (take_addresses(dc, r->cb.ar_result)) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        st = EVDB__STEP_FAIL;
    }
    req_unref(r);
    return st;
}

void evdb__my_resolve_cancel(evdb__dconn *dc)
{
    struct evdb__my_resolve *r = dc->resolve;
    if (!r)
        return;
    dc->resolve = NULL;
    if (gai_cancel(&r->cb) == EAI_CANCELED) {
        /* Cancelled before it ran: no notification will come. */
        req_free(r);
        return;
    }
    /* Running or finished: the notification frees it if it comes last. */
    req_unref(r);
}
