/*
 * Connection hooks and tracing at run time (include/evdb/hooks.h): the
 * hooks a connection or pool copied, with the server, database and user
 * its URL names, and the spans that pair each START event with its END.
 */
#ifndef EVDB_HOOKS_RT_H
#define EVDB_HOOKS_RT_H

#include "internal.h"

typedef struct evdb__hk evdb__hk;
struct evdb__hk {
    evdb_hooks h;
    const evdb_pool *pool; /* the pool whose hooks these are, or NULL */
    /* From the URL, never its password (one block with this struct). */
    const char *server, *database, *user;
};

/* Copy h (NULL: none) with what url names. NULL when h is NULL or all
 * its hooks are unset; on no memory too (the hooks are then dropped and
 * the last error says so: the caller decides). */
evdb__hk *evdb__hk_new(const evdb_hooks *h, const char *url, const evdb_pool *pool, bool *nomem);
/* A copy of k for another owner (a pool's connections). */
evdb__hk *evdb__hk_dup(const evdb__hk *k);
void evdb__hk_free(evdb__hk *k);

/* Emit ev (kind and its own fields set) with k's server, database, user
 * and pool filled in. */
void evdb__hk_emit(const evdb__hk *k, evdb_trace_event *ev);

/* Emit kind's START now and its END when f completes (the end kind is
 * start + 1). sql and ctx: the query's; conn: as in evdb_trace_event.
 * Costs one allocation; without memory the END is emitted at once with
 * status EVDB_ENOMEM (every START keeps its END). */
void evdb__hk_span(const evdb__hk *k, evdb__loop *l, evdb_trace_kind start, evdb_future *f,
                   const char *sql, void *ctx, const void *conn);

/* A copy of url whose password is pw (percent-encoded in a URL, quoted in
 * a libpq keyword string), or NULL on no memory. Free with
 * evdb__hk_free_secret. */
char *evdb__url_with_password(const char *url, const char *pw);
/* Wipe and free a string that holds a password. */
void evdb__hk_free_secret(char *s);

/* The per-connection lifetime after jitter: max_lifetime shortened by a
 * fraction in [0, jitter) drawn from *rng (xorshift32, never 0). */
double evdb__hk_jittered(double max_lifetime, double jitter, uint32_t *rng);

#endif
