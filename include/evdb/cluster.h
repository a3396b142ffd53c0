/*
 * Read/write routing over a primary and its read replicas.
 *
 * A cluster is one pool per server: the primary's and one per replica,
 * all with the same pool options. evdb_cluster_query sends queries marked
 * EVDB_QUERY_READ_ONLY to a usable replica (the least loaded: busy
 * connections plus waiting queries of its pool; round robin among equals)
 * and everything else to the primary. Transactions always run on the
 * primary (evdb_cluster_primary + evdb_pool_acquire / evdb_pool_transaction).
 *
 * A replica is usable while its last lag check passed: every
 * check_interval seconds the cluster measures its replication lag through
 * its own pool (PostgreSQL: replay delay behind the primary; MariaDB:
 * Seconds_Behind_Master of SHOW SLAVE STATUS) and excludes it while the
 * lag is above max_lag, while replication is stopped, while the check
 * fails (server down, timeout) and, between checks, once its pool fails to
 * connect. A replica starts excluded until its first check passes. With no
 * usable replica, read-only queries go to the primary (a fallback, counted
 * in the stats). A server that is not in recovery (no replication
 * configured) counts as a replica with lag 0.
 *
 * Read-your-writes: a replica may not yet show a write the primary has
 * committed (up to max_lag, plus one check interval, behind). A read that
 * must see the caller's own write goes to the primary (leave out
 * EVDB_QUERY_READ_ONLY). docs/scale-out.md, "Read replicas", has more.
 *
 * All calls come from the loop's thread; callbacks run from the loop.
 */
#ifndef EVDB_CLUSTER_H
#define EVDB_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include "evdb/conn.h"
#include "evdb/export.h"
#include "evdb/future.h"
#include "evdb/pool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evdb_cluster evdb_cluster;

/* Zero-initialised options mean the defaults in brackets. */
typedef struct evdb_cluster_opts {
    /* Seconds of replication lag above which a replica takes no reads
     * [EVDB_CLUSTER_DEFAULT_MAX_LAG]; negative = no bound (only a stopped
     * replication or a failed check excludes a replica). */
    double max_lag;
    /* Seconds from the end of one lag check of a replica to the start of
     * the next [EVDB_CLUSTER_DEFAULT_CHECK_INTERVAL]. */
    double check_interval;
    /* Seconds a lag check may take (pool wait and connect included) before
     * it counts as failed [EVDB_CLUSTER_DEFAULT_CHECK_TIMEOUT]. */
    double check_timeout;
    /* Reserved for future options; keep zero. */
    void *reserved[4];
} evdb_cluster_opts;

#define EVDB_CLUSTER_DEFAULT_MAX_LAG 5.0
#define EVDB_CLUSTER_DEFAULT_CHECK_INTERVAL 1.0
#define EVDB_CLUSTER_DEFAULT_CHECK_TIMEOUT 2.0

/* Counters of the whole cluster. */
typedef struct evdb_cluster_stats {
    size_t replicas;        /* replicas configured */
    size_t usable_replicas; /* of them, taking reads now */
    uint64_t writes;        /* queries routed to the primary as writes
                               (no EVDB_QUERY_READ_ONLY) */
    uint64_t reads;         /* read-only queries routed (and
                               evdb_cluster_replica calls) */
    uint64_t fallbacks;     /* of reads: sent to the primary because no
                               replica was usable */
    /* Room for later counters; zero. */
    uint64_t reserved[8];
} evdb_cluster_stats;

/* Counters and state of one member: index 0 is the primary, 1..n the
 * replicas in the order given to evdb_cluster_new. */
typedef struct evdb_cluster_member_stats {
    evdb_pool_stats pool;    /* its pool's (evdb_pool_stats_get) */
    int is_replica;          /* 0 for the primary */
    int usable;              /* takes reads now (the primary: always 1) */
    double lag;              /* seconds, as last measured; negative when no
                             check passed yet or the last one failed */
    int last_check_status;   /* 0, or the code of the last check's failure
                              (EVDB_ESTATE: replication stopped, or
                              lag unknown) */
    uint64_t routed;         /* queries the cluster sent to it */
    uint64_t checks;         /* lag checks completed */
    uint64_t check_failures; /* of them: failed (lag unknown) */
    uint64_t exclusions;     /* times it went from usable to excluded */
    /* Room for later counters; zero. */
    uint64_t reserved[6];
} evdb_cluster_member_stats;

/* Create a cluster: a pool for primary_url and one for each of the
 * n_replicas replica_urls (as evdb_pool_new takes them; all of the same
 * driver, PostgreSQL or MariaDB), each made with pool_opts (NULL:
 * defaults; min_conns holds per pool). The same URL may appear more than
 * once (two pools on one server). n_replicas may be 0: every query then
 * goes to the primary. Lag checks of every replica start at once.
 * URLs and options are copied. Returns NULL at once for bad arguments
 * (EVDB_EINVAL: NULL loop or URL, replica_urls NULL with n_replicas > 0,
 * mixed drivers, bad options; EVDB_EURL: no driver for a URL) or no
 * memory; evdb_last_error says why (never quoting a URL). Callable from
 * callbacks. */
EVDB_EXTERN evdb_cluster *evdb_cluster_new(struct ev_loop *loop, const char *primary_url,
                                           const char *const *replica_urls, size_t n_replicas,
                                           const evdb_pool_opts *pool_opts,
                                           const evdb_cluster_opts *opts);

/* As evdb_pool_query on the member the query is routed to: with
 * EVDB_QUERY_READ_ONLY in opts->flags, the least loaded usable replica,
 * or the primary when none is usable; otherwise the primary. The flag is
 * a routing promise, not enforced by evdb (a replica's server refuses
 * writes itself); evdb_conn_query and evdb_pool_query accept it and
 * ignore it. A query routed to a replica that fails (its server went down
 * between checks) is not re-sent to the primary: the caller may retry.
 * Returns a future of an evdb_result (callbacks as for evdb_pool_query),
 * or NULL at once (EVDB_EINVAL, EVDB_ECLOSED for a closing cluster, or
 * the pool's refusal). Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_cluster_query(evdb_cluster *cl, const char *sql,
                                            const evdb_value *params, size_t nparams,
                                            const evdb_query_opts *opts);

/* The primary's pool, for writes, acquire and transactions. Owned by the
 * cluster: do not close it; valid until evdb_cluster_close. NULL for an
 * invalid or closing cluster. Callable from callbacks. */
EVDB_EXTERN evdb_pool *evdb_cluster_primary(evdb_cluster *cl);

/* The pool a read-only query would be routed to now (a usable replica's,
 * or the primary's when none is), counted as a read; for reads that need
 * more than one query (evdb_pool_acquire, evdb_pool_batch, a stream).
 * Owned by the cluster as evdb_cluster_primary. NULL for an invalid or
 * closing cluster. Callable from callbacks. */
EVDB_EXTERN evdb_pool *evdb_cluster_replica(evdb_cluster *cl);

/* Member i's pool (0 = the primary, 1..n = the replicas), whatever its
 * state; owned by the cluster as evdb_cluster_primary. NULL when i is out
 * of range or the cluster is invalid or closing. Callable from callbacks. */
EVDB_EXTERN evdb_pool *evdb_cluster_member(evdb_cluster *cl, size_t i);

/* Check the lag of every replica now (those already being checked finish
 * their check). Returns a future that resolves (no value) when every
 * replica's current check has completed, whether it passed or not: the
 * stats then say which replicas are usable. Useful at start-up, before
 * the first reads. Fails with EVDB_ECLOSED if the cluster is closed
 * first. NULL at once for an invalid or closing cluster. Callable from
 * callbacks. */
EVDB_EXTERN evdb_future *evdb_cluster_check(evdb_cluster *cl);

/* Fill *out with the cluster's counters. 0, or EVDB_EINVAL (invalid
 * cluster, NULL out) or EVDB_ECLOSED (closing cluster); *out is then
 * zeroed (when not NULL). Callable from callbacks. */
EVDB_EXTERN int evdb_cluster_stats_get(const evdb_cluster *cl, evdb_cluster_stats *out);

/* Fill *out with member i's counters and state (0 = the primary, 1..n =
 * the replicas). 0, or EVDB_EINVAL (invalid cluster, i out of range, NULL
 * out) or EVDB_ECLOSED (closing cluster); *out is then zeroed (when not
 * NULL). Callable from callbacks. */
EVDB_EXTERN int evdb_cluster_member_stats_get(const evdb_cluster *cl, size_t i,
                                              evdb_cluster_member_stats *out);

/* Close: lag checks stop (one running is cancelled), every member pool is
 * closed as evdb_pool_close does (waiting queries fail with EVDB_ECLOSED,
 * running ones get close_grace), and evdb_cluster_check futures still
 * pending fail with EVDB_ECLOSED. The returned future completes when
 * every pool is closed and no check is left; no timer of the cluster
 * keeps the loop running after it. After this call cl only refuses: while
 * the returned future lives, every call on cl returns NULL / EVDB_ECLOSED;
 * once that future is destroyed, cl is gone and must not be used. Returns
 * NULL for an invalid cluster or a second close. Callable from callbacks. */
EVDB_EXTERN evdb_future *evdb_cluster_close(evdb_cluster *cl);

#ifdef __cplusplus
}
#endif
#endif
