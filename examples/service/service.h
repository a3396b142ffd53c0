/*
 * service: the types shared by the service example's files. One worker per
 * thread: its own libev loop, its own listening socket on the shared port
 * (SO_REUSEPORT: the kernel spreads connections over the threads), its own
 * evdb pool. Nothing is shared between workers but the read-only options
 * and the copies of their pool counters that /health adds up (stats.c).
 */
#ifndef SERVICE_SERVICE_H
#define SERVICE_SERVICE_H

#include <ev.h>
#include <pthread.h>
#include <stddef.h>

#include <evdb.h>

#include "http.h"

typedef struct service_opts {
    const char *url;
    const char *host;     /* listen address [127.0.0.1] */
    int port;             /* [8080]; 0 = a free one, printed at start */
    unsigned threads;     /* loops [1] */
    unsigned pool;        /* connections of all threads together [8] */
    unsigned report_pool; /* more, of all threads, in a pool of their own
                             for /report alone [0: /report shares pool] */
    double timeout;       /* request deadline, seconds [2] */
    double grace;         /* SIGTERM: seconds in-flight requests may take [5] */
    double idle;          /* keep-alive idle timeout, seconds [30] */
    int mariadb;          /* placeholders ? instead of $1 */
} service_opts;

typedef struct client client;

typedef struct worker {
    const service_opts *o;
    unsigned index;
    struct ev_loop *loop;
    int lfd; /* listening socket, -1 once closed */
    ev_io accept_w;
    ev_async stop_w; /* SIGTERM, forwarded by the main thread */
    ev_timer grace_w;
    evdb_pool *pool;
    evdb_pool *reports;   /* --report-pool: /report's own, else NULL */
    evdb_future *closing; /* the pools' close, while it runs */
    client *clients;      /* open connections (and closed ones still
                              waiting for their request's answer) */
    unsigned nclients;
    int stopping;
    int closed_ok;        /* the pool closed: the worker ends cleanly */
    struct worker *peers; /* every worker, o->threads of them (this one too) */
    ev_timer stats_w;     /* publishes the copy below */
    pthread_mutex_t stats_mu;
    evdb_pool_stats stats;        /* this worker's pool counters, for the others */
    evdb_pool_stats report_stats; /* and its report pool's */
    unsigned stats_clients;
} worker;

/* server.c: connections. */

/* Start accepting on w->lfd and watch w->stop_w; the pool must exist. */
void server_start(worker *w);

/* Begin the graceful shutdown (from the stop watcher): stop accepting,
 * close idle connections, answer in-flight requests with
 * "Connection: close", force-close what is left after the grace period,
 * then close the pool and leave the loop. */
void server_stop(worker *w);

/* The worker a connection belongs to. */
worker *client_worker(const client *c);

/* Answer the connection's current request: exactly once per request,
 * synchronously from routes_dispatch or later from a callback. body is
 * copied. After a connection was closed under its request (the peer hung
 * up, the grace period ran out) this only frees it. */
void client_respond(client *c, int status, const char *body, size_t len);

/* client_respond with {"error": message}. */
void client_error(client *c, int status, const char *message);

/* The future of the request's query, cancelled when the connection closes
 * under it (the query is then cancelled on the server); NULL once it
 * completed. Borrowed: the route keeps its own reference. */
void client_set_pending(client *c, evdb_future *f);

/* stats.c: every thread's pool counters for /health. */

/* Publish w's counters every 0.1 s (from server_start), and stop. */
void stats_start(worker *w);
void stats_stop(worker *w);

/* Every worker's pool counters added up into out, and their report
 * pools' into reports (zeros without --report-pool): w's own live, the
 * others' as last published. Returns the open client connections of all
 * workers. */
unsigned stats_total(worker *w, evdb_pool_stats *out, evdb_pool_stats *reports);

/* routes.c: the endpoints. */

/* Handle one parsed request; r (and its pointers into the input buffer)
 * is valid during the call only. Answers through client_respond, exactly
 * once. */
void routes_dispatch(client *c, const http_request *r);

/* setup.c: the tables. */

/* Create and fill items (10,000 rows) and accounts (1,000 with 1,000
 * each) on url, replacing them. 0 or -1 with a message on stderr. */
int setup_tables(const char *url, int mariadb);

#endif
