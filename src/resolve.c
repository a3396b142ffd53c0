/*
 * Host name lookups off the loop thread, for drivers whose client library
 * would call a blocking getaddrinfo (libpq, Connector/C).
 *
 * Each lookup is one getaddrinfo_a request with its own notification
 * (glibc's gai_cancel does not complete a list's notification, so a list
 * with some requests cancelled would never be freed), polled from the loop
 * with a short, growing timer. The request is allocated with plain malloc,
 * not the evdb allocator: when a connect is abandoned while the lookup
 * runs, glibc cannot always cancel it, and the request is then freed by
 * glibc's notification thread, where a user allocator hook need not be
 * safe to call.
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

#include "internal.h"

/* Poll after 1 ms, doubling up to 50 ms between polls. */
#define POLL_FIRST_MS 1
#define POLL_MAX_MS 50

/* Shared by the loop thread and glibc's notification thread: each holds a
 * reference and the last one frees it. */
#define LOOKUP_REFS 2

_Static_assert(EVDB__ADDR_TEXT_MAX >= INET6_ADDRSTRLEN, "address text too short");

struct evdb__lookup {
    struct gaicb cb;
    struct addrinfo hints;
    struct sigevent sev;
    atomic_int refs;
    char name[];
};

static void lookup_free(evdb__lookup *r)
{
    if (r->cb.ar_result)
        freeaddrinfo(r->cb.ar_result);
    free(r);
}

static void lookup_unref(evdb__lookup *r)
{
    if (atomic_fetch_sub(&r->refs, 1) == 1)
        lookup_free(r);
}

/* Runs on glibc's helper thread once the lookup finished. */
static void notified(union sigval sv)
{
    lookup_unref(sv.sival_ptr);
}

bool evdb__host_is_ip(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

evdb__lookup *evdb__lookup_start(const char *name, int *gai_rc)
{
    size_t n = strlen(name);
    evdb__lookup *r = calloc(1, sizeof *r + n + 1);
    if (!r) {
        *gai_rc = EAI_MEMORY;
        return NULL;
    }
    memcpy(r->name, name, n + 1);
    r->hints.ai_family = AF_UNSPEC;
    r->hints.ai_socktype = SOCK_STREAM;
    r->cb.ar_name = r->name;
    r->cb.ar_request = &r->hints;
    r->sev.sigev_notify = SIGEV_THREAD;
    r->sev.sigev_notify_function = notified;
    r->sev.sigev_value.sival_ptr = r;
    atomic_init(&r->refs, LOOKUP_REFS);
    struct gaicb *list[1] = {&r->cb};
    *gai_rc = getaddrinfo_a(GAI_NOWAIT, list, 1, &r->sev);
    if (*gai_rc) {
        free(r);
        return NULL;
    }
    return r;
}

bool evdb__lookup_running(const evdb__lookup *r)
{
    return gai_error((struct gaicb *)&r->cb) == EAI_INPROGRESS;
}

int evdb__lookup_error(const evdb__lookup *r)
{
    int rc = gai_error((struct gaicb *)&r->cb);
    if (rc == 0 && !r->cb.ar_result)
        return EAI_NONAME;
    return rc;
}

const char *evdb__lookup_strerror(int rc)
{
    return gai_strerror(rc);
}

size_t evdb__lookup_addrs(const evdb__lookup *r, char (*out)[EVDB__ADDR_TEXT_MAX], size_t max)
{
    size_t n = 0;
    for (const struct addrinfo *ai = r->cb.ar_result; ai && n < max; ai = ai->ai_next) {
        const void *src;
        if (ai->ai_family == AF_INET6)
            src = &((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr;
        else if (ai->ai_family == AF_INET)
            src = &((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
        else
            continue;
        char addr[EVDB__ADDR_TEXT_MAX];
        if (!inet_ntop(ai->ai_family, src, addr, sizeof addr))
            continue;
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(out[k], addr) == 0;
        if (!dup)
            memcpy(out[n++], addr, sizeof addr);
    }
    return n;
}

void evdb__lookup_drop(evdb__lookup *r)
{
    if (!r)
        return;
    /* Cancelled before it ran: no notification will come. Running or
     * finished: the notification frees it if it comes last. */
    if (gai_cancel(&r->cb) == EAI_CANCELED)
        lookup_free(r);
    else
        lookup_unref(r);
}

int evdb__lookup_next_delay(int delay_ms)
{
    if (delay_ms <= 0)
        return POLL_FIRST_MS;
    return delay_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : delay_ms * 2;
}
