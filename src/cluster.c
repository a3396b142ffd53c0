/*
 * Read/write routing over a primary and its replicas (evdb/cluster.h).
 *
 * A cluster composes ordinary pools, one per server, and only decides
 * which pool a query goes to. Each replica has a timer that runs its lag
 * check through its own pool; the check's outcome says whether the
 * replica takes reads. Everything the cluster owns (timers, running
 * checks, pools) is finished before its close future completes.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

#define EVDB__MAGIC_CLUSTER 0x436c7573u /* "Clus" */

/* PostgreSQL: seconds the replica's replay is behind. A server not in
 * recovery is caught up by definition. A standby that has replayed all it
 * received is caught up too, however old its last replayed transaction
 * (an idle primary writes nothing, so that timestamp ages without
 * anything missing). Otherwise the age of the last replayed transaction:
 * an upper bound of the delay of what is still to replay; NULL (lag
 * unknown, the replica excluded) while a new standby has WAL to replay
 * but has replayed no transaction yet. */
static const char PG_LAG_SQL[] =
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0::float8"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8"
    " ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8"
    " END AS evdb_replica_lag";
/* MariaDB: no row = not a replica (lag 0); Seconds_Behind_Master NULL =
 * replication stopped. */
static const char MY_LAG_SQL[] = "SHOW SLAVE STATUS";
static const char MY_LAG_COLUMN[] = "Seconds_Behind_Master";

typedef struct cmember {
    evdb_cluster *cl;
    evdb_pool *pool;
    evdb__timer *timer;
    evdb_future *check_f; /* the running lag check, or NULL */
    bool is_replica;
    bool passed; /* its last check passed, lag within the bound */
    double lag;
    int last_status;
    /* Its pool's connect failures when the last check passed: any more
     * exclude it until the next check passes. */
    uint64_t cf_base;
    uint64_t seq_started, seq_done; /* checks started / completed */
    uint64_t routed, checks, check_failures, exclusions;
} cmember;

/* An evdb_cluster_check future: done when every replica's seq_done
 * reaches need[i]. */
typedef struct waiter {
    struct waiter *next;
    evdb_future *f;
    uint64_t need[];
} waiter;

struct evdb_cluster {
    unsigned magic;
    bool closed; /* a shell kept while its close future lives */
    bool mariadb;
    evdb__loop *loop;
    evdb_cluster_opts o;
    size_t n; /* members: [0] the primary, then the replicas */
    cmember *m;
    size_t rr; /* round robin position among replicas */
    waiter *waiters;
    evdb_future *close_f;
    evdb_future *close_spare; /* made with the cluster: closing needs no memory */
    size_t close_pending;     /* checks and pool closes still to finish */
    uint64_t writes, reads, fallbacks;
};

static bool cluster_usable(const evdb_cluster *cl, const char *who)
{
    if (!cl || cl->magic != EVDB__MAGIC_CLUSTER) {
        evdb__fail_now(EVDB_EINVAL, "%s: invalid cluster", who);
        return false;
    }
    if (cl->close_f || cl->closed) {
        evdb__fail_now(EVDB_ECLOSED, "%s: the cluster is %s", who,
                       cl->closed ? "closed" : "closing");
        return false;
    }
    return true;
}

/* ---- lag checks ---- */

static void waiters_update(evdb_cluster *cl)
{
    for (waiter **pw = &cl->waiters; *pw;) {
        waiter *w = *pw;
        bool done = true;
        for (size_t i = 1; i < cl->n && done; i++)
            done = cl->m[i].seq_done >= w->need[i - 1];
        if (!done) {
            pw = &w->next;
            continue;
        }
        *pw = w->next;
        evdb__future_resolve(w->f, NULL, NULL);
        evdb_future_unref(w->f);
        evdb__free(w);
    }
}

static void close_step(evdb_cluster *cl);

/* A check ended: status 0 with the lag measured, or its failure. */
static void check_end(cmember *m, int status, double lag)
{
    evdb_cluster *cl = m->cl;
    bool was = m->passed;
    if (cl->close_f) {
        close_step(cl); /* its pool may be closed already */
        return;
    }
    m->seq_done = m->seq_started;
    m->checks++;
    m->last_status = status;
    if (status == 0) {
        m->lag = lag;
        m->passed = cl->o.max_lag < 0 || lag <= cl->o.max_lag;
        evdb_pool_stats st;
        evdb_pool_stats_get(m->pool, &st);
        m->cf_base = st.connect_failures;
    } else {
        m->lag = -1;
        m->passed = false;
        m->check_failures++;
    }
    if (was && !m->passed)
        m->exclusions++;
    waiters_update(cl);
    evdb__timer_start(m->timer, cl->o.check_interval);
}

/* MariaDB's SHOW SLAVE STATUS: the largest Seconds_Behind_Master of its
 * rows (several with multi-source replication). */
static int my_lag(const evdb_result *r, double *lag)
{
    *lag = 0;
    size_t rows = evdb_result_nrows(r);
    if (rows == 0)
        return 0;
    long col = evdb_result_colindex(r, MY_LAG_COLUMN);
    if (col < 0)
        return EVDB_EPROTO;
    for (size_t i = 0; i < rows; i++) {
        int64_t v = 0;
        if (evdb_result_isnull(r, i, (size_t)col))
            return EVDB_ESTATE;
        if (evdb_result_int(r, i, (size_t)col, &v) != 0)
            return EVDB_EPROTO;
        if ((double)v > *lag)
            *lag = (double)v;
    }
    return 0;
}

static int result_lag(const evdb_cluster *cl, const evdb_result *r, double *lag)
{
    if (!r)
        return EVDB_EPROTO;
    if (cl->mariadb)
        return my_lag(r, lag);
    if (evdb_result_nrows(r) != 1)
        return EVDB_EPROTO;
    if (evdb_result_isnull(r, 0, 0))
        return EVDB_ESTATE;
    if (evdb_result_double(r, 0, 0, lag) != 0 || isnan(*lag))
        return EVDB_EPROTO;
    if (*lag < 0) /* clocks of primary and replica apart */
        *lag = 0;
    return 0;
}

static void on_check_done(evdb_future *f, void *arg)
{
    cmember *m = arg;
    double lag = 0;
    int status = evdb_future_status(f);
    if (status == 0)
        status = result_lag(m->cl, evdb_future_result(f), &lag);
    m->check_f = NULL;
    evdb_future_unref(f);
    check_end(m, status, lag);
}

static void check_start(cmember *m)
{
    evdb_cluster *cl = m->cl;
    evdb_query_opts qo;
    memset(&qo, 0, sizeof qo);
    qo.timeout = cl->o.check_timeout;
    qo.flags = EVDB_QUERY_NO_CACHE;
    m->seq_started++;
    evdb_future *f = evdb_pool_query(m->pool, cl->mariadb ? MY_LAG_SQL : PG_LAG_SQL, NULL, 0, &qo);
    if (!f) {
        check_end(m, evdb_error_code(evdb_last_error()), 0);
        return;
    }
    if (evdb_future_on_done(f, on_check_done, m) != 0) {
        evdb_future_cancel(f);
        evdb_future_unref(f);
        check_end(m, EVDB_ENOMEM, 0);
        return;
    }
    m->check_f = f;
}

static void on_check_timer(void *arg)
{
    cmember *m = arg;
    if (!m->check_f && !m->cl->close_f)
        check_start(m);
}

/* ---- routing ---- */

static bool member_usable(const cmember *m, const evdb_pool_stats *st)
{
    return m->passed && st->connect_failures == m->cf_base;
}

/* The least loaded usable replica, starting the scan at the round robin
 * position so that equals take turns; NULL when none is usable. */
static cmember *pick_replica(evdb_cluster *cl)
{
    size_t nrep = cl->n - 1;
    cmember *best = NULL;
    size_t best_load = SIZE_MAX, best_k = 0;
    for (size_t k = 0; k < nrep; k++) {
        size_t idx = 1 + (cl->rr + k) % nrep;
        cmember *m = &cl->m[idx];
        evdb_pool_stats st;
        evdb_pool_stats_get(m->pool, &st);
        if (!member_usable(m, &st))
            continue;
        size_t load = (size_t)st.busy + st.waiting;
        if (load < best_load) {
            best = m;
            best_load = load;
            best_k = k;
        }
    }
    if (best)
        cl->rr = (cl->rr + best_k + 1) % nrep;
    return best;
}

/* Where a read goes: a usable replica, else the primary. */
static cmember *route_read(evdb_cluster *cl)
{
    cmember *m = cl->n > 1 ? pick_replica(cl) : NULL;
    return m ? m : &cl->m[0];
}

static void count_routed(evdb_cluster *cl, cmember *m, bool read)
{
    m->routed++;
    if (!read) {
        cl->writes++;
        return;
    }
    cl->reads++;
    if (!m->is_replica)
        cl->fallbacks++;
}

evdb_future *evdb_cluster_query(evdb_cluster *cl, const char *sql, const evdb_value *params,
                                size_t nparams, const evdb_query_opts *opts)
{
    if (!cluster_usable(cl, "evdb_cluster_query"))
        return NULL;
    if (!sql) {
        evdb__fail_now(EVDB_EINVAL, "evdb_cluster_query: sql is NULL");
        return NULL;
    }
    bool read = opts && (opts->flags & EVDB_QUERY_READ_ONLY);
    cmember *m = read ? route_read(cl) : &cl->m[0];
    evdb_future *f = evdb_pool_query(m->pool, sql, params, nparams, opts);
    if (f)
        count_routed(cl, m, read);
    return f;
}

evdb_pool *evdb_cluster_primary(evdb_cluster *cl)
{
    return cluster_usable(cl, "evdb_cluster_primary") ? cl->m[0].pool : NULL;
}

evdb_pool *evdb_cluster_replica(evdb_cluster *cl)
{
    if (!cluster_usable(cl, "evdb_cluster_replica"))
        return NULL;
    cmember *m = route_read(cl);
    count_routed(cl, m, true);
    return m->pool;
}

evdb_pool *evdb_cluster_member(evdb_cluster *cl, size_t i)
{
    if (!cluster_usable(cl, "evdb_cluster_member"))
        return NULL;
    if (i >= cl->n) {
        evdb__fail_now(EVDB_EINVAL, "evdb_cluster_member: member %zu of %zu", i, cl->n);
        return NULL;
    }
    return cl->m[i].pool;
}

evdb_future *evdb_cluster_check(evdb_cluster *cl)
{
    if (!cluster_usable(cl, "evdb_cluster_check"))
        return NULL;
    size_t nrep = cl->n - 1;
    waiter *w = evdb__calloc(1, sizeof *w + nrep * sizeof w->need[0]);
    evdb_future *f = w ? evdb__future_new(cl->loop, EVDB__FK_USER) : NULL;
    if (!f) {
        evdb__free(w);
        evdb__fail_now(EVDB_ENOMEM, "evdb_cluster_check: out of memory");
        return NULL;
    }
    w->f = evdb_future_ref(f);
    for (size_t i = 1; i < cl->n; i++) {
        cmember *m = &cl->m[i];
        if (!m->check_f) {
            evdb__timer_stop(m->timer);
            check_start(m);
        }
        w->need[i - 1] = m->seq_started;
    }
    w->next = cl->waiters;
    cl->waiters = w;
    waiters_update(cl);
    return f;
}

/* ---- stats ---- */

int evdb_cluster_stats_get(const evdb_cluster *cl, evdb_cluster_stats *out)
{
    if (!out)
        return evdb__fail_now(EVDB_EINVAL, "evdb_cluster_stats_get: out is NULL");
    memset(out, 0, sizeof *out);
    if (!cluster_usable(cl, "evdb_cluster_stats_get"))
        return evdb_error_code(evdb_last_error());
    out->replicas = cl->n - 1;
    for (size_t i = 1; i < cl->n; i++) {
        evdb_pool_stats st;
        evdb_pool_stats_get(cl->m[i].pool, &st);
        out->usable_replicas += member_usable(&cl->m[i], &st);
    }
    out->writes = cl->writes;
    out->reads = cl->reads;
    out->fallbacks = cl->fallbacks;
    return 0;
}

int evdb_cluster_member_stats_get(const evdb_cluster *cl, size_t i, evdb_cluster_member_stats *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!out)
        return evdb__fail_now(EVDB_EINVAL, "evdb_cluster_member_stats_get: out is NULL");
    if (!cluster_usable(cl, "evdb_cluster_member_stats_get"))
        return evdb_error_code(evdb_last_error());
    if (i >= cl->n)
        return evdb__fail_now(EVDB_EINVAL, "evdb_cluster_member_stats_get: member %zu of %zu", i,
                              cl->n);
    const cmember *m = &cl->m[i];
    evdb_pool_stats_get(m->pool, &out->pool);
    out->is_replica = m->is_replica;
    out->usable = m->is_replica ? member_usable(m, &out->pool) : 1;
    out->lag = m->is_replica ? m->lag : 0;
    out->last_check_status = m->last_status;
    out->routed = m->routed;
    out->checks = m->checks;
    out->check_failures = m->check_failures;
    out->exclusions = m->exclusions;
    return 0;
}

/* ---- create and close ---- */

/* Which lag query: 0 for PostgreSQL, 1 for MariaDB; a negative code
 * (last error set) for a URL no driver serves, mixed drivers, or a
 * driver without a lag check. */
static int url_kind(const char *url, size_t i, int *kind)
{
    if (!url)
        return evdb__fail_now(EVDB_EINVAL, "evdb_cluster_new: URL of member %zu is NULL", i);
    const evdb__driver *d = evdb__driver_for(url);
    if (!d)
        return evdb__fail_now(EVDB_EURL, "evdb_cluster_new: no driver for the URL of member %zu",
                              i);
    int k = strcmp(d->name, "postgres") == 0 ? 0 : strcmp(d->name, "mariadb") == 0 ? 1 : -1;
    if (k < 0)
        return evdb__fail_now(EVDB_ENOTSUP, "evdb_cluster_new: no lag check for driver %s",
                              d->name);
    if (i > 0 && k != *kind)
        return evdb__fail_now(EVDB_EINVAL,
                              "evdb_cluster_new: member %zu is not of the primary's driver", i);
    *kind = k;
    return 0;
}

static int normalise_opts(const evdb_cluster_opts *opts, evdb_cluster_opts *o)
{
    memset(o, 0, sizeof *o);
    if (opts)
        *o = *opts;
    if (isnan(o->max_lag) || isnan(o->check_interval) || isnan(o->check_timeout) ||
        o->check_interval < 0 || o->check_timeout < 0)
        return evdb__fail_now(EVDB_EINVAL, "evdb_cluster_new: check_interval, check_timeout "
                                           "must be >= 0 and no option NaN");
    if (o->max_lag == 0)
        o->max_lag = EVDB_CLUSTER_DEFAULT_MAX_LAG;
    if (o->check_interval == 0)
        o->check_interval = EVDB_CLUSTER_DEFAULT_CHECK_INTERVAL;
    if (o->check_timeout == 0)
        o->check_timeout = EVDB_CLUSTER_DEFAULT_CHECK_TIMEOUT;
    return 0;
}

/* Free what evdb_cluster_new made, pools closed in the background. */
static void cluster_discard(evdb_cluster *cl)
{
    for (size_t i = 0; i < cl->n; i++) {
        evdb__timer_free(cl->m[i].timer);
        if (cl->m[i].pool)
            evdb__future_disown(evdb_pool_close(cl->m[i].pool));
    }
    evdb__free(cl->m);
    if (cl->close_spare)
        evdb_future_unref(cl->close_spare);
    evdb__loop_unref(cl->loop);
    evdb__free(cl);
}

static int members_make(evdb_cluster *cl, struct ev_loop *loop, const char *primary_url,
                        const char *const *replica_urls, const evdb_pool_opts *pool_opts)
{
    for (size_t i = 0; i < cl->n; i++) {
        cmember *m = &cl->m[i];
        m->cl = cl;
        m->is_replica = i > 0;
        m->lag = i > 0 ? -1 : 0;
        m->pool = evdb_pool_new(loop, i ? replica_urls[i - 1] : primary_url, pool_opts);
        if (!m->pool)
            return evdb_error_code(evdb_last_error());
        if (i > 0) {
            m->timer = evdb__timer_new(cl->loop, on_check_timer, m);
            if (!m->timer)
                return evdb__fail_now(EVDB_ENOMEM, "evdb_cluster_new: out of memory");
        }
    }
    return 0;
}

evdb_cluster *evdb_cluster_new(struct ev_loop *loop, const char *primary_url,
                               const char *const *replica_urls, size_t n_replicas,
                               const evdb_pool_opts *pool_opts, const evdb_cluster_opts *opts)
{
    int kind = 0;
    evdb_cluster_opts o;
    if (!loop || (n_replicas && !replica_urls)) {
        evdb__fail_now(EVDB_EINVAL, "evdb_cluster_new: %s is NULL", loop ? "replica_urls" : "loop");
        return NULL;
    }
    for (size_t i = 0; i <= n_replicas; i++)
        if (url_kind(i ? replica_urls[i - 1] : primary_url, i, &kind) != 0)
            return NULL;
    if (normalise_opts(opts, &o) != 0)
        return NULL;
    evdb__loop *l = evdb__loop_get(loop);
    evdb_cluster *cl = l ? evdb__calloc(1, sizeof *cl) : NULL;
    cmember *ms = cl ? evdb__calloc(n_replicas + 1, sizeof *ms) : NULL;
    if (!ms) {
        evdb__free(cl);
        if (l)
            evdb__loop_unref(l);
        evdb__fail_now(EVDB_ENOMEM, "evdb_cluster_new: out of memory");
        return NULL;
    }
    *cl = (evdb_cluster){.magic = EVDB__MAGIC_CLUSTER,
                         .mariadb = kind == 1,
                         .loop = l,
                         .o = o,
                         .n = n_replicas + 1,
                         .m = ms};
    cl->close_spare = evdb__future_new(l, EVDB__FK_CLOSE);
    if (!cl->close_spare)
        evdb__fail_now(EVDB_ENOMEM, "evdb_cluster_new: out of memory");
    if (!cl->close_spare || members_make(cl, loop, primary_url, replica_urls, pool_opts) != 0) {
        evdb_error saved;
        evdb__error_copy(&saved, evdb_last_error());
        cluster_discard(cl);
        evdb__set_last(&saved);
        return NULL;
    }
    for (size_t i = 1; i < cl->n; i++)
        evdb__timer_start(cl->m[i].timer, 0);
    return cl;
}

/* A closed cluster stays behind as a shell, marked closed and holding
 * nothing, while its close future lives: a late call is refused with
 * EVDB_ECLOSED instead of reading freed memory. */
static void cluster_shell_free(void *arg)
{
    evdb_cluster *cl = arg;
    cl->magic = EVDB__MAGIC_DEAD;
    evdb__free(cl);
}

/* One check or pool close of a closing cluster finished: when none is
 * left, free everything and complete the close future. */
static void close_step(evdb_cluster *cl)
{
    if (--cl->close_pending)
        return;
    for (size_t i = 0; i < cl->n; i++)
        evdb__timer_free(cl->m[i].timer);
    evdb__free(cl->m);
    cl->m = NULL;
    cl->n = 0;
    evdb__loop *l = cl->loop;
    evdb_future *cf = cl->close_f;
    cl->closed = true;
    cl->close_f = NULL;
    cl->loop = NULL;
    if (evdb__future_resolve(cf, cl, cluster_shell_free)) {
        evdb_future_unref(cf); /* may free cl (cluster_shell_free) */
    } else {
        evdb_future_unref(cf);
        cluster_shell_free(cl);
    }
    evdb__loop_unref(l);
}

static void on_pool_closed(evdb_future *f, void *arg)
{
    cmember *m = arg;
    evdb_future_unref(f); /* the pool is gone with it */
    m->pool = NULL;
    close_step(m->cl);
}

evdb_future *evdb_cluster_close(evdb_cluster *cl)
{
    if (!cluster_usable(cl, "evdb_cluster_close"))
        return NULL;
    evdb_future *cf = cl->close_spare;
    cl->close_spare = NULL;
    cl->close_f = evdb_future_ref(cf);
    while (cl->waiters) {
        waiter *w = cl->waiters;
        cl->waiters = w->next;
        evdb__future_fail(w->f, EVDB_ECLOSED, "the cluster was closed before the check ended");
        evdb_future_unref(w->f);
        evdb__free(w);
    }
    /* Held until the loop below has registered everything: a step that
     * completes at once cannot finish the close half-way. */
    cl->close_pending = 1;
    for (size_t i = 0; i < cl->n; i++) {
        cmember *m = &cl->m[i];
        if (m->timer)
            evdb__timer_stop(m->timer);
        if (m->check_f) {
            cl->close_pending++;
            evdb_future_cancel(m->check_f);
        }
        evdb_future *pf = evdb_pool_close(m->pool);
        if (pf && evdb_future_on_done(pf, on_pool_closed, m) == 0)
            cl->close_pending++;
        else if (pf)
            evdb__future_disown(pf);
    }
    close_step(cl); /* cf keeps the caller's reference */
    return cf;
}
