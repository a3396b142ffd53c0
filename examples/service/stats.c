/*
 * stats: /health's view of every thread's pool. A pool belongs to its
 * thread's loop and may not be read from another thread, so each worker
 * publishes a copy of its counters every PUBLISH_SECONDS under its own
 * mutex, and /health adds the others' copies to its own live figures:
 * another thread's part is at most that old.
 */
#include <string.h>

#include "service.h"

#define PUBLISH_SECONDS 0.1

static void publish(worker *w)
{
    evdb_pool_stats s;
    evdb_pool_stats_get(w->pool, &s);
    s.last_discard_reason = NULL; /* pool-owned: not for other threads */
    pthread_mutex_lock(&w->stats_mu);
    w->stats = s;
    w->stats_clients = w->nclients;
    pthread_mutex_unlock(&w->stats_mu);
}

static void on_publish(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    publish(t->data);
}

void stats_start(worker *w)
{
    publish(w);
    ev_timer_init(&w->stats_w, on_publish, PUBLISH_SECONDS, PUBLISH_SECONDS);
    w->stats_w.data = w;
    ev_timer_start(w->loop, &w->stats_w);
}

void stats_stop(worker *w)
{
    ev_timer_stop(w->loop, &w->stats_w);
}

static void add(evdb_pool_stats *to, const evdb_pool_stats *s)
{
    to->total += s->total;
    to->opening += s->opening;
    to->idle += s->idle;
    to->busy += s->busy;
    to->acquired += s->acquired;
    to->waiting += s->waiting;
    to->connects += s->connects;
    to->connect_failures += s->connect_failures;
    to->broken += s->broken;
    to->queries += s->queries;
    to->query_errors += s->query_errors;
    to->query_timeouts += s->query_timeouts;
    to->query_cancels += s->query_cancels;
    to->pool_timeouts += s->pool_timeouts;
}

unsigned stats_total(worker *w, evdb_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    unsigned clients = 0;
    for (unsigned i = 0; i < w->o->threads; i++) {
        worker *p = &w->peers[i];
        evdb_pool_stats s;
        unsigned n;
        if (p == w) {
            evdb_pool_stats_get(w->pool, &s);
            n = w->nclients;
        } else {
            pthread_mutex_lock(&p->stats_mu);
            s = p->stats;
            n = p->stats_clients;
            pthread_mutex_unlock(&p->stats_mu);
        }
        add(out, &s);
        clients += n;
    }
    return clients;
}
