/*
 * demo: the main job of evdb in one small program.
 *
 *   demo POSTGRES_URL MARIADB_URL
 *
 * Opens a pool on each server, submits queries to both at once (a few
 * named ones plus 200 parameterized ones per server), gathers them under
 * one timeout, checks and prints the results and the pools' stats. One
 * query on each server deliberately sleeps longer than its own 0.5 s
 * timeout: it fails with EVDB_ETIMEDOUT on time and is cancelled on the
 * server, while the others complete normally.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include <evdb.h>

typedef struct job {
    const char *label;
    evdb_future *f;
} job;

static void print_result(const job *j)
{
    int st = evdb_future_status(j->f);
    if (st != 0) {
        printf("%-34s -> %s: %s\n", j->label, evdb_err_name(st),
               evdb_error_message(evdb_future_error(j->f)));
        return;
    }
    evdb_result *r = evdb_future_result(j->f);
    printf("%-34s -> %zu row(s):", j->label, evdb_result_nrows(r));
    for (size_t row = 0; row < evdb_result_nrows(r) && row < 3; row++)
        for (size_t col = 0; col < evdb_result_ncols(r); col++) {
            const char *v = evdb_result_text(r, row, col, NULL);
            printf(" %s=%s", evdb_result_colname(r, col), v ? v : "NULL");
        }
    printf("\n");
}

enum { NPARAM = 200 };

/* Submit NPARAM parameterized queries ("v" = 2 * i) on a pool. */
static int submit_many(evdb_pool *p, const char *sql, evdb_future **out)
{
    for (int i = 0; i < NPARAM; i++) {
        evdb_value v = evdb_int(i);
        out[i] = evdb_pool_query(p, sql, &v, 1, NULL);
        if (!out[i])
            return -1;
    }
    return 0;
}

/* How many of them came back ok with exactly their own answer. */
static int count_right(evdb_future **fs)
{
    int right = 0;
    for (int i = 0; i < NPARAM; i++) {
        int64_t v = -1;
        if (evdb_future_status(fs[i]) == 0 &&
            evdb_result_int(evdb_future_result(fs[i]), 0, 0, &v) == 0 && v == 2 * i)
            right++;
    }
    return right;
}

static void print_stats(const char *name, const evdb_pool *p)
{
    evdb_pool_stats st;
    evdb_pool_stats_get(p, &st);
    printf("%s pool: %u connections (%u idle), %llu queries, %llu errors (%llu timeouts), "
           "waited for a connection: %llu < 1 ms, %llu < 10 ms, %llu >= 10 ms\n",
           name, st.total, st.idle, (unsigned long long)st.queries,
           (unsigned long long)st.query_errors, (unsigned long long)st.query_timeouts,
           (unsigned long long)st.wait_hist[0], (unsigned long long)st.wait_hist[1],
           (unsigned long long)(st.wait_hist[2] + st.wait_hist[3] + st.wait_hist[4] +
                                st.wait_hist[5]));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s POSTGRES_URL MARIADB_URL\n", argv[0]);
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool_opts po = {.max_conns = 4, .acquire_timeout = 5};
    evdb_pool *pg = evdb_pool_new(loop, argv[1], &po);
    evdb_pool *my = evdb_pool_new(loop, argv[2], &po);
    if (!pg || !my) {
        fprintf(stderr, "demo: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }

    evdb_query_opts quick = {.timeout = 0.5};
    evdb_value id = evdb_int(7);
    evdb_value name = evdb_text("evdb");
    job jobs[] = {
        {"postgres: version",
         evdb_pool_query(pg, "SELECT split_part(version(), ' ', 2) AS version", NULL, 0, &quick)},
        {"postgres: $1 * 6", evdb_pool_query(pg, "SELECT $1::int * 6 AS answer", &id, 1, &quick)},
        {"postgres: count 1..100000",
         evdb_pool_query(pg, "SELECT count(*) AS n FROM generate_series(1, 100000)", NULL, 0,
                         &quick)},
        {"postgres: pg_sleep(5), 0.5 s limit",
         evdb_pool_query(pg, "SELECT pg_sleep(5)", NULL, 0, &quick)},
        {"mariadb: version", evdb_pool_query(my, "SELECT VERSION() AS version", NULL, 0, &quick)},
        {"mariadb: hello ?",
         evdb_pool_query(my, "SELECT CONCAT('hello ', ?) AS greeting", &name, 1, &quick)},
        {"mariadb: SLEEP(5), 0.5 s limit",
         evdb_pool_query(my, "SELECT SLEEP(5) AS slept", NULL, 0, &quick)},
    };
    enum { NJOBS = sizeof jobs / sizeof jobs[0], NALL = NJOBS + 2 * NPARAM };
    evdb_future *fs[NALL];
    for (size_t i = 0; i < NJOBS; i++) {
        if (!jobs[i].f) {
            fprintf(stderr, "demo: %s\n", evdb_error_message(evdb_last_error()));
            return 1;
        }
        fs[i] = jobs[i].f;
    }
    evdb_future **pg_many = fs + NJOBS, **my_many = fs + NJOBS + NPARAM;
    if (submit_many(pg, "SELECT $1::int * 2 AS v", pg_many) ||
        submit_many(my, "SELECT ? * 2 AS v", my_many)) {
        fprintf(stderr, "demo: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }

    /* Everything runs concurrently; the whole batch gets one deadline. */
    ev_tstamp t0 = ev_time();
    evdb_future *gathered = evdb_gather(fs, NALL, EVDB_GATHER_ALL);
    evdb_future *all = evdb_timeout(gathered, 10.0);
    int st = evdb_future_wait(all);
    printf("gathered %d queries on 2 servers in %.0f ms (gather: %s)\n\n", (int)NALL,
           (ev_time() - t0) * 1000, st == 0 ? "all ok" : evdb_err_name(st));
    for (size_t i = 0; i < NJOBS; i++)
        print_result(&jobs[i]);
    int pg_right = count_right(pg_many), my_right = count_right(my_many);
    printf("%-34s -> %d/%d right answers\n", "postgres: 200 x $1 * 2", pg_right, NPARAM);
    printf("%-34s -> %d/%d right answers\n\n", "mariadb: 200 x ? * 2", my_right, NPARAM);
    print_stats("postgres", pg);
    print_stats("mariadb", my);

    /* The servers really stopped the slow statements: the same pools
     * answer straight away. */
    evdb_future *after[2] = {evdb_pool_query(pg, "SELECT 1 AS still_ok", NULL, 0, &quick),
                             evdb_pool_query(my, "SELECT 1 AS still_ok", NULL, 0, &quick)};
    evdb_future *g2 = evdb_gather(after, 2, 0);
    int st2 = evdb_future_wait(g2);
    printf("\nafter the timeouts both pools still answer: %s\n", st2 == 0 ? "yes" : "no");

    evdb_future_unref(g2);
    evdb_future_unref(after[0]);
    evdb_future_unref(after[1]);
    evdb_future_unref(all);
    evdb_future_unref(gathered);
    for (size_t i = 0; i < NALL; i++)
        evdb_future_unref(fs[i]);
    evdb_future *closes[2] = {evdb_pool_close(pg), evdb_pool_close(my)};
    evdb_future *gc = evdb_gather(closes, 2, 0);
    evdb_future_wait(gc);
    evdb_future_unref(gc);
    evdb_future_unref(closes[0]);
    evdb_future_unref(closes[1]);
    ev_loop_destroy(loop);
    return st2 == 0 && pg_right == NPARAM && my_right == NPARAM ? 0 : 1;
}
