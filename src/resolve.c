/*
 * Host name lookups on the loop, for drivers whose client library would
 * call a blocking getaddrinfo (libpq, Connector/C), with c-ares.
 *
 * Each lookup has its own c-ares channel (the name's A and AAAA queries
 * share it). The driver waits on the channel's socket like on any other:
 * evdb__lookup_wait names the socket, the events c-ares wants and how long
 * until c-ares must retry, and evdb__lookup_running lets c-ares read what
 * came. No thread and no polling timer: an answer is read as soon as it
 * arrives, and giving a lookup up (evdb__lookup_drop) frees it at once.
 *
 * c-ares answers from /etc/hosts and the DNS servers of /etc/resolv.conf
 * (with its search domains and options); other NSS sources (mDNS, LDAP,
 * systemd-resolved's NSS module) are not consulted. A name those serve can
 * be given to the client library as is, or as an address.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#include "internal.h"

/* The longest single wait before c-ares is asked again, as a safety net
 * for a second socket (c-ares opens another when it moves on to the next
 * DNS server): the wait itself names only one. */
#define MAX_WAIT_MS 50

_Static_assert(EVDB__ADDR_TEXT_MAX >= INET6_ADDRSTRLEN, "address text too short");

struct evdb__lookup {
    ares_channel ch;
    bool done;
    int status; /* ARES_SUCCESS or an ARES_E* code, once done */
    struct ares_addrinfo *result;
};

/* ares_getsock's bit set, read without its ARES_GETSOCK_* macros: those
 * shift a signed 1 into the sign bit for the last socket (undefined). */
static bool sock_reads(int bits, int i)
{
    return ((unsigned)bits >> i) & 1u;
}

static bool sock_writes(int bits, int i)
{
    return ((unsigned)bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u;
}

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_rc = ARES_ENOTINITIALIZED;

static void library_init(void)
{
    library_rc = ares_library_init(ARES_LIB_INIT_ALL);
}

/* Called by c-ares, from ares_getaddrinfo itself (a name in /etc/hosts),
 * from the processing in evdb__lookup_running, or from ares_destroy
 * (ARES_EDESTRUCTION; the lookup is being freed then). */
static void answered(void *arg, int status, int timeouts, struct ares_addrinfo *result)
{
    evdb__lookup *r = arg;
    (void)timeouts;
    if (status == ARES_EDESTRUCTION) {
        if (result)
            ares_freeaddrinfo(result);
        return;
    }
    r->done = true;
    r->status = status;
    r->result = result;
}

bool evdb__host_is_ip(const char *host)
{
    /* inet_aton also takes the shorthand IPv4 forms getaddrinfo accepts
     * ("127.1", "0x7f.1", "2130706433"), which c-ares would send to DNS. */
    unsigned char buf[sizeof(struct in6_addr)];
    struct in_addr v4;
    return inet_aton(host, &v4) != 0 || inet_pton(AF_INET6, host, buf) == 1;
}

evdb__lookup *evdb__lookup_start(const char *name, int *rc)
{
    pthread_once(&library_once, library_init);
    if (library_rc != ARES_SUCCESS) {
        *rc = library_rc;
        return NULL;
    }
    evdb__lookup *r = evdb__calloc(1, sizeof *r);
    if (!r) {
        *rc = ARES_ENOMEM;
        return NULL;
    }
    struct ares_options o;
    memset(&o, 0, sizeof o);
    /* resolv.conf's servers, timeouts and tries; the connect deadline
     * bounds the lookup as a whole. */
    *rc = ares_init_options(&r->ch, &o, 0);
    if (*rc != ARES_SUCCESS) {
        evdb__free(r);
        return NULL;
    }
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(r->ch, name, NULL, &hints, answered, r);
    *rc = ARES_SUCCESS;
    return r;
}

bool evdb__lookup_running(evdb__lookup *r)
{
    if (r->done)
        return false;
    /* Read whatever the sockets hold (c-ares reads until it would block)
     * and handle expired retries. */
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(r->ch, socks, ARES_GETSOCK_MAXNUM);
    for (int i = 0; i < ARES_GETSOCK_MAXNUM && !r->done; i++) {
        bool rd = sock_reads(bits, i), wr = sock_writes(bits, i);
        if (rd || wr)
            ares_process_fd(r->ch, rd ? socks[i] : ARES_SOCKET_BAD,
                            wr ? socks[i] : ARES_SOCKET_BAD);
    }
    if (!r->done)
        ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    return !r->done;
}

void evdb__lookup_wait(const evdb__lookup *r, evdb__wait *w)
{
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(r->ch, socks, ARES_GETSOCK_MAXNUM);
    w->fd = -1;
    w->events = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        unsigned ev =
            (sock_reads(bits, i) ? EVDB__EV_READ : 0) | (sock_writes(bits, i) ? EVDB__EV_WRITE : 0);
        if (ev) {
            w->fd = socks[i];
            w->events = ev;
            break;
        }
    }
    struct timeval max = {0, MAX_WAIT_MS * 1000}, tv;
    const struct timeval *t = ares_timeout(r->ch, &max, &tv);
    int ms = (int)(t->tv_sec * 1000 + (t->tv_usec + 999) / 1000);
    w->timeout_ms = ms > 0 ? ms : 1;
}

int evdb__lookup_error(const evdb__lookup *r)
{
    if (r->status == ARES_SUCCESS && (!r->result || !r->result->nodes))
        return ARES_ENODATA;
    return r->status;
}

const char *evdb__lookup_strerror(int rc)
{
    return ares_strerror(rc);
}

size_t evdb__lookup_addrs(const evdb__lookup *r, char (*out)[EVDB__ADDR_TEXT_MAX], size_t max)
{
    size_t n = 0;
    if (!r->result)
        return 0;
    for (const struct ares_addrinfo_node *ai = r->result->nodes; ai && n < max; ai = ai->ai_next) {
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
    /* Ends a running query at once (its callback sees ARES_EDESTRUCTION)
     * and closes the channel's sockets. */
    ares_destroy(r->ch);
    if (r->result)
        ares_freeaddrinfo(r->result);
    evdb__free(r);
}
