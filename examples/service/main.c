/*
 * service: an HTTP/1.1 JSON service on evdb (see README.md here).
 *
 *   service [--setup] [--host H] [--port P] [--threads N] [--pool N]
 *           [--report-pool N] [--timeout S] [--grace S] [--idle S] URL
 *
 * One worker per thread (a libev loop, a listening socket on the shared
 * port with SO_REUSEPORT, a pool of its share of --pool connections, and
 * with --report-pool a second one for /report). The
 * main thread runs worker 0 and the SIGTERM / SIGINT watchers, and tells
 * the other workers to stop through their ev_async. Prints "listening on
 * HOST:PORT" once every socket listens (port 0 picks a free one), and
 * exits 0 after a clean shutdown.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "service.h"

#define MAX_THREADS 64
#define LISTEN_BACKLOG 1024

static worker workers[MAX_THREADS];
static pthread_t tids[MAX_THREADS];

static void usage(void)
{
    fprintf(stderr, "usage: service [--setup] [--host H] [--port P] [--threads N] [--pool N]\n"
                    "               [--report-pool N] [--timeout S] [--grace S] [--idle S] URL\n"
                    "  --setup      create and fill the tables (items, accounts), then serve\n"
                    "  --port P     [8080]; 0 picks a free port, printed at start\n"
                    "  --threads N  loops, one per thread, sharing the port [1]\n"
                    "  --pool N     database connections of all threads together [8]\n"
                    "  --report-pool N\n"
                    "               connections of all threads for /report alone, in a pool\n"
                    "               of their own, besides --pool's [0: /report shares it]\n"
                    "  --timeout S  request deadline = query timeout, seconds [2]\n"
                    "  --grace S    SIGTERM: time in-flight requests get [5]\n"
                    "  --idle S     keep-alive idle timeout [30]\n");
}

/* A listening socket on host:port with SO_REUSEPORT. */
static int listen_on(const char *host, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "service: --host wants an IPv4 address, not \"%s\"\n", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        fprintf(stderr, "service: listen on %s:%d: %s\n", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A number option's value in [lo, hi], or exit 2 with a message. */
static double number(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    double d = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "service: %s wants a number between %g and %g\n", opt, lo, hi);
        exit(2);
    }
    return d;
}

/* Worker w's share of n connections (at least one). */
static unsigned share(const worker *w, unsigned n)
{
    unsigned k = n / w->o->threads + (w->index < n % w->o->threads);
    return k ? k : 1;
}

static void run_worker(worker *w)
{
    evdb_pool_opts po = {.max_conns = share(w, w->o->pool), .close_grace = w->o->grace};
    w->pool = evdb_pool_new(w->loop, w->o->url, &po);
    if (w->pool && w->o->report_pool) {
        /* A bulkhead: the slow reports wait for each other there, and
         * never hold the connections the point selects and transfers
         * need. */
        po.max_conns = share(w, w->o->report_pool);
        w->reports = evdb_pool_new(w->loop, w->o->url, &po);
    }
    if (!w->pool || (w->o->report_pool && !w->reports)) {
        fprintf(stderr, "service: %s\n", evdb_error_message(evdb_last_error()));
        if (w->pool) {
            evdb_future *f = evdb_pool_close(w->pool);
            evdb_future_wait(f);
            evdb_future_unref(f);
            w->pool = NULL;
        }
        return;
    }
    server_start(w);
    ev_run(w->loop, 0);
    if (w->closing)
        fprintf(stderr, "service: thread %u: the loop ended with the pool's close pending\n",
                w->index);
}

static void *thread_main(void *arg)
{
    run_worker(arg);
    return NULL;
}

static void on_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)revents;
    unsigned n = *(unsigned *)s->data;
    for (unsigned i = 0; i < n; i++)
        ev_async_send(workers[i].loop, &workers[i].stop_w);
    (void)loop; /* a second signal sends again: stopping is idempotent */
}

static int parse_args(int argc, char **argv, service_opts *o, int *setup)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--setup") == 0) {
            *setup = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage();
            exit(0);
        }
        if (a[0] != '-') {
            if (o->url) {
                usage();
                return -1;
            }
            o->url = a;
            continue;
        }
        if (strcmp(a, "--host") == 0 && v)
            o->host = v;
        else if (strcmp(a, "--port") == 0)
            o->port = (int)number(a, v, 0, 65535);
        else if (strcmp(a, "--threads") == 0)
            o->threads = (unsigned)number(a, v, 1, MAX_THREADS);
        else if (strcmp(a, "--pool") == 0)
            o->pool = (unsigned)number(a, v, 1, 10000);
        else if (strcmp(a, "--report-pool") == 0)
            o->report_pool = (unsigned)number(a, v, 0, 10000);
        else if (strcmp(a, "--timeout") == 0)
            o->timeout = number(a, v, 0.001, 3600);
        else if (strcmp(a, "--grace") == 0)
            o->grace = number(a, v, 0, 3600);
        else if (strcmp(a, "--idle") == 0)
            o->idle = number(a, v, 0.1, 3600);
        else {
            fprintf(stderr, "service: unknown option %s\n", a);
            usage();
            return -1;
        }
        i++;
    }
    if (!o->url) {
        usage();
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    service_opts o = {.host = "127.0.0.1",
                      .port = 8080,
                      .threads = 1,
                      .pool = 8,
                      .timeout = 2,
                      .grace = 5,
                      .idle = 30};
    int setup = 0;
    if (parse_args(argc, argv, &o, &setup) != 0)
        return 2;
    o.mariadb = strncmp(o.url, "mariadb:", 8) == 0 || strncmp(o.url, "mysql:", 6) == 0;
    if (setup && setup_tables(o.url, o.mariadb) != 0)
        return 1;

    /* The first socket fixes the port (port 0: the kernel's choice); the
     * others share it. */
    int port = o.port;
    for (unsigned i = 0; i < o.threads; i++) {
        worker *w = &workers[i];
        *w = (worker){.o = &o, .index = i, .peers = workers};
        pthread_mutex_init(&w->stats_mu, NULL);
        w->lfd = listen_on(o.host, port);
        if (w->lfd < 0)
            return 1;
        if (i == 0) {
            struct sockaddr_in a;
            socklen_t len = sizeof a;
            getsockname(w->lfd, (struct sockaddr *)&a, &len);
            port = ntohs(a.sin_port);
        }
        w->loop = i == 0 ? ev_default_loop(EVFLAG_AUTO) : ev_loop_new(EVFLAG_AUTO);
        ev_async_init(&w->stop_w, NULL); /* server_start sets it up */
    }
    printf("listening on %s:%d (%u thread%s, %u connection%s", o.host, port, o.threads,
           o.threads == 1 ? "" : "s", o.pool, o.pool == 1 ? "" : "s");
    if (o.report_pool)
        printf(", %u more for /report", o.report_pool);
    printf(")\n");
    fflush(stdout);

    /* Signals go to the main thread's loop: the workers block them. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (unsigned i = 1; i < o.threads; i++)
        if (pthread_create(&tids[i], NULL, thread_main, &workers[i]) != 0) {
            fprintf(stderr, "service: cannot start thread %u\n", i);
            return 1;
        }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ev_signal term, intr;
    ev_signal_init(&term, on_signal, SIGTERM);
    ev_signal_init(&intr, on_signal, SIGINT);
    term.data = intr.data = &o.threads;
    ev_signal_start(workers[0].loop, &term);
    ev_signal_start(workers[0].loop, &intr);

    /* The signal watchers stay active (referenced) until the end: they
     * keep the main loop running until the pool's close completes. */
    run_worker(&workers[0]);
    ev_signal_stop(workers[0].loop, &term);
    ev_signal_stop(workers[0].loop, &intr);
    int ok = workers[0].closed_ok;
    for (unsigned i = 1; i < o.threads; i++) {
        pthread_join(tids[i], NULL);
        if (!workers[i].closed_ok)
            fprintf(stderr, "service: thread %u did not close its pool\n", i);
        ok = ok && workers[i].closed_ok;
        ev_loop_destroy(workers[i].loop);
    }
    fprintf(stderr, "service: %s\n", ok ? "stopped cleanly" : "stopped with errors");
    return ok ? 0 : 1;
}
