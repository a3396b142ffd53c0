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

/* p's counters, or zeros for no pool. */
static void read_pool(const evdb_pool *p, evdb_pool_stats *s)
{
    memset(s, 0, sizeof *s);
    if (p)
        evdb_pool_stats_get(p, s);
    s->last_discard_reason = NULL; /* pool-owned: not for other threads */
}

static void publish(worker *w)
{
    evdb_pool_stats s, r;
    read_pool(w->pool, &s);
    read_pool(w->reports, &r);
    pthread_mutex_lock(&w->stats_mu);
    w->stats = s;
    w->report_stats = r;
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

unsigned stats_total(worker *w, evdb_pool_stats *out, evdb_pool_stats *reports)
{
    memset(out, 0, sizeof *out);
    memset(reports, 0, sizeof *reports);
    unsigned clients = 0;
    for (unsigned i = 0; i < w->o->threads; i++) {
        worker *p = &w->peers[i];
        evdb_pool_stats s, r;
        unsigned n;
        if (p == w) {
            read_pool(w->pool, &s);
            read_pool(w->reports, &r);
            n = w->nclients;
        } else {
            pthread_mutex_lock(&p->stats_mu);
            s = p->stats;
            r = p->report_stats;
            n = p->stats_clients;
            pthread_mutex_unlock(&p->stats_mu);
        }
        add(out, &s);
        add(reports, &r);
        clients += n;
    }
    return clients;
}
