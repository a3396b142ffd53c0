/*
 * pg_gather: many parameterized queries on one PostgreSQL connection,
 * gathered under one timeout, every answer checked.
 *
 *   pg_gather 'postgresql://user:pw@127.0.0.1:5432/db' [N]     (N = 1000)
 *
 * The statement is prepared once (evdb_conn_prepare pins it in the
 * connection's statement cache); then N queries are submitted at once. The
 * driver pipelines them (up to 64 in flight, in groups, each group one
 * implicit transaction with autocommit semantics kept per query), the
 * gather completes when all have, and evdb_timeout bounds the whole lot.
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
#define TIMEOUT_S 10.0

static const char sql[] = "SELECT $1::int * 2 AS doubled, 'row ' || $1 AS label";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what, const evdb_error *e)
{
    fprintf(stderr, "pg_gather: %s: %s: %s%s\n", what, evdb_err_name(evdb_error_code(e)),
            evdb_error_message(e),
            evdb_error_is_connection(e) ? " (a connection problem)" : "");
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

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: pg_gather URL [N]\n");
        return 2;
    }
    int n = argc == 3 ? atoi(argv[2]) : DEFAULT_N;
    if (n < 1 || n > MAX_N) {
        fprintf(stderr, "pg_gather: N must be 1..%d\n", MAX_N);
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int status = 1;

    evdb_future *open = evdb_conn_open(loop, argv[1], NULL);
    if (!open || evdb_future_wait(open) != 0) {
        fail("connect", open ? evdb_future_error(open) : evdb_last_error());
        evdb_future_unref(open);
        ev_loop_destroy(loop);
        return 1;
    }
    evdb_conn *c = evdb_future_take_conn(open);
    evdb_future_unref(open);

    /* Prepared once: every query below binds and executes it. */
    evdb_future *prep = evdb_conn_prepare(c, sql, NULL, 0, NULL);
    if (!prep || evdb_future_wait(prep) != 0) {
        fail("prepare", prep ? evdb_future_error(prep) : evdb_last_error());
        evdb_future_unref(prep);
        goto out;
    }
    evdb_future_unref(prep);

    evdb_future **fs = calloc((size_t)n, sizeof *fs);
    if (!fs)
        goto out;
    double t0 = now();
    int submitted = 0;
    for (int i = 0; i < n; i++) {
        evdb_value v = evdb_int(i); /* copied at submission */
        fs[i] = evdb_conn_query(c, sql, &v, 1, NULL);
        if (!fs[i]) {
            fail("submit", evdb_last_error());
            break;
        }
        submitted++;
    }
    if (submitted == n) {
        /* evdb_timeout takes its own reference to the gather. */
        evdb_future *gather = evdb_gather(fs, (size_t)n, EVDB_GATHER_ALL);
        evdb_future *all = evdb_timeout(gather, TIMEOUT_S);
        evdb_future_unref(gather);
        if (!all) {
            fail("gather", evdb_last_error());
            goto done;
        }
        int rc = evdb_future_wait(all);
        double elapsed = now() - t0;
        if (rc != 0)
            fail("gather", evdb_future_error(all));
        int ok = 0;
        for (int i = 0; i < n; i++)
            ok += right_answer(fs[i], i);
        printf("pg_gather: %d/%d ok in %.1f ms (%.0f queries/s) on one connection\n", ok, n,
               elapsed * 1e3, n / elapsed);
        status = ok == n ? 0 : 1;
        evdb_future_unref(all);
    }
done:
    for (int i = 0; i < submitted; i++)
        evdb_future_unref(fs[i]);
    free(fs);
out:;
    evdb_future *closed = evdb_conn_close(c);
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
    return status;
}
