/*
 * gather: many parameterized queries on a pool, gathered under one
 * timeout, every answer checked; the same program for both backends.
 *
 *   gather 'postgresql://user:pw@127.0.0.1:5432/db' [N] [CONNS]
 *   gather 'mariadb://user:pw@127.0.0.1:3306/db' [N] [CONNS]
 *                                (N = 1000; CONNS = 1 for PostgreSQL, 8 for MariaDB)
 *
 * The N queries are submitted at once and the pool routes them. On
 * PostgreSQL one connection pipelines them (each query still its own
 * implicit transaction, with its own Sync); MariaDB has no pipelining, so
 * each of CONNS connections runs one query at a time. Every connection
 * prepares the statement once (its statement cache) and then only executes
 * it. Every query has its own timeout (queue time included; at the
 * deadline it fails and the server is told to stop it), and evdb_timeout
 * bounds the whole gather.
 *
 * Prints one summary line: how many came back ok with their own answer,
 * the elapsed time and the rate.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <evdb.h>

#define DEFAULT_N 1000
#define MAX_N 1000000
#define MAX_CONNS 256
#define QUERY_TIMEOUT_S 5.0
#define GATHER_TIMEOUT_S 10.0

/* The same statement in each server's placeholder syntax. */
static const char pg_sql[] = "SELECT $1::int * 2 AS doubled, 'row ' || $1 AS label";
static const char my_sql[] = "SELECT ? * 2 AS doubled, CONCAT('row ', ?) AS label";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, const evdb_error *e)
{
    fprintf(stderr, "gather: %s: %s: %s%s\n", what, evdb_err_name(evdb_error_code(e)),
            evdb_error_message(e), evdb_error_is_connection(e) ? " (a connection problem)" : "");
}

/* Whether query i answered with its own row. */
static bool right_answer(evdb_future *f, int i)
{
    if (evdb_future_status(f) != 0)
        return false;
    const evdb_result *r = evdb_future_result(f);
    int64_t doubled = -1;
    char label[32];
    snprintf(label, sizeof label, "row %d", i);
    const char *got = evdb_result_text(r, 0, 1, NULL);
    return evdb_result_nrows(r) == 1 && evdb_result_int(r, 0, 0, &doubled) == 0 &&
           doubled == 2 * (int64_t)i && got && strcmp(got, label) == 0;
}

/* Gather n futures under GATHER_TIMEOUT_S; 0 or the failure's code. */
static int gather_all(evdb_future **fs, size_t n)
{
    evdb_future *gather = evdb_gather(fs, n, EVDB_GATHER_ALL);
    /* evdb_timeout takes its own reference to the gather. */
    evdb_future *all = gather ? evdb_timeout(gather, GATHER_TIMEOUT_S) : NULL;
    evdb_future_unref(gather);
    if (!all) {
        fail("gather", evdb_last_error());
        return evdb_error_code(evdb_last_error());
    }
    int rc = evdb_future_wait(all);
    if (rc != 0)
        fail("gather", evdb_future_error(all));
    evdb_future_unref(all);
    return rc;
}

/* Open the pool's connections before the clock starts: one slow query per
 * connection, gathered (a pool opens a connection per waiting query). */
static int warm_up(evdb_pool *pool, unsigned conns, bool postgres)
{
    evdb_future *fs[MAX_CONNS];
    unsigned n = 0;
    const char *sleep_sql = postgres ? "SELECT pg_sleep(0.01)" : "SELECT SLEEP(0.01)";
    for (; n < conns; n++) {
        fs[n] = evdb_pool_query(pool, sleep_sql, NULL, 0, NULL);
        if (!fs[n]) {
            fail("warm-up", evdb_last_error());
            break;
        }
    }
    int rc = n == conns ? gather_all(fs, n) : -1;
    for (unsigned i = 0; i < n; i++)
        evdb_future_unref(fs[i]);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: gather URL [N] [CONNS]\n");
        return 2;
    }
    bool postgres = strncmp(argv[1], "postgres", 8) == 0 || strchr(argv[1], '=') != NULL;
    int n = argc >= 3 ? atoi(argv[2]) : DEFAULT_N;
    int conns = argc >= 4 ? atoi(argv[3]) : postgres ? 1 : 8;
    if (n < 1 || n > MAX_N || conns < 1 || conns > MAX_CONNS) {
        fprintf(stderr, "gather: N must be 1..%d and CONNS 1..%d\n", MAX_N, MAX_CONNS);
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool_opts po = {.max_conns = (unsigned)conns};
    evdb_pool *pool = evdb_pool_new(loop, argv[1], &po);
    if (!pool) {
        fail("pool", evdb_last_error());
        ev_loop_destroy(loop);
        return 1;
    }
    int status = 1;
    evdb_future **fs = calloc((size_t)n, sizeof *fs);
    int submitted = 0;
    if (!fs || warm_up(pool, (unsigned)conns, postgres) != 0)
        goto out;

    const char *sql = postgres ? pg_sql : my_sql;
    size_t nparams = postgres ? 1 : 2; /* MariaDB has one ? per use */
    evdb_query_opts qo = {.timeout = QUERY_TIMEOUT_S};
    double t0 = now();
    for (int i = 0; i < n; i++) {
        evdb_value v[2] = {evdb_int(i), evdb_int(i)}; /* copied at submission */
        fs[i] = evdb_pool_query(pool, sql, v, nparams, &qo);
        if (!fs[i]) {
            fail("submit", evdb_last_error());
            break;
        }
        submitted++;
    }
    if (submitted == n) {
        gather_all(fs, (size_t)n);
        double elapsed = now() - t0;
        int ok = 0;
        for (int i = 0; i < n; i++)
            ok += right_answer(fs[i], i);
        evdb_pool_stats st;
        evdb_pool_stats_get(pool, &st);
        printf("gather: %d/%d ok in %.1f ms (%.0f queries/s) on %s, %u connection%s\n", ok, n,
               elapsed * 1e3, n / elapsed, postgres ? "PostgreSQL" : "MariaDB", st.total,
               st.total == 1 ? "" : "s");
        status = ok == n ? 0 : 1;
    }
out:
    for (int i = 0; i < submitted; i++)
        evdb_future_unref(fs[i]);
    free(fs);
    evdb_future *closed = evdb_pool_close(pool); /* asynchronous, never blocks */
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
    return status;
}
