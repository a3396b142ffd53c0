/*
 * db_gather: the database use case. Several queries on a pool run at once
 * inside a task, gathered under one timeout; one of them is a task of its
 * own that runs two dependent queries in sequence.
 *
 *     async def two_steps(pool):
 *         n = await pool.fetchval("SELECT 20 + 1")
 *         return await pool.fetchval("SELECT $1::int * 2", n)
 *
 *     async def main(url):
 *         async with asyncpg.create_pool(url) as pool:
 *             results = await asyncio.wait_for(asyncio.gather(
 *                 pool.fetchval("SELECT 6 * 7"), ..., two_steps(pool)), timeout=5)
 *
 *   db_gather 'postgresql://user:pw@127.0.0.1:5432/db'   (or a mariadb:// URL)
 */
#include <ev.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <evdb.h>

typedef struct app {
    evdb_pool *pool;
    int mariadb; /* placeholders: ? instead of $1 */
} app;

/* Two queries where the second needs the first one's answer: natural in a
 * task, a chain of callbacks otherwise. */
static void *two_steps(void *arg)
{
    app *a = arg;
    evdb_future *q1 = evdb_pool_query(a->pool, "SELECT 20 + 1 AS n", NULL, 0, NULL);
    if (!q1 || evdb_await(q1) != 0) {
        void *r = evdb_task_fail_error(q1 ? evdb_future_error(q1) : evdb_last_error());
        evdb_future_unref(q1);
        return r;
    }
    int64_t n = 0;
    evdb_result_int(evdb_future_result(q1), 0, 0, &n);
    evdb_future_unref(q1);

    evdb_value param = evdb_int(n);
    const char *sql = a->mariadb ? "SELECT ? * 2 AS doubled" : "SELECT $1::int * 2 AS doubled";
    evdb_future *q2 = evdb_pool_query(a->pool, sql, &param, 1, NULL);
    if (!q2 || evdb_await(q2) != 0) {
        void *r = evdb_task_fail_error(q2 ? evdb_future_error(q2) : evdb_last_error());
        evdb_future_unref(q2);
        return r;
    }
    int64_t doubled = 0;
    evdb_result_int(evdb_future_result(q2), 0, 0, &doubled);
    evdb_future_unref(q2);
    printf("two-step task: %lld * 2 = %lld\n", (long long)n, (long long)doubled);
    return NULL;
}

static void print_row(const char *label, evdb_future *f)
{
    if (evdb_future_status(f) != 0) {
        printf("%-10s -> %s: %s\n", label, evdb_err_name(evdb_future_status(f)),
               evdb_error_message(evdb_future_error(f)));
        return;
    }
    evdb_result *r = evdb_future_result(f);
    const char *v = evdb_result_text(r, 0, 0, NULL);
    printf("%-10s -> %s=%s\n", label, evdb_result_colname(r, 0), v ? v : "NULL");
}

static void *main_task(void *arg)
{
    app *a = arg;
    evdb_value who[2] = {evdb_text("hello"), evdb_text("asyncio")};
    const char *greet = a->mariadb ? "SELECT CONCAT(?, ', ', ?) AS greeting"
                                   : "SELECT $1::text || ', ' || $2::text AS greeting";
    const char *version = a->mariadb ? "SELECT VERSION() AS version"
                                     : "SELECT split_part(version(), ' ', 2) AS version";
    const char *nap = a->mariadb ? "SELECT SLEEP(0.2) AS slept" : "SELECT pg_sleep(0.2) AS slept";
    struct {
        const char *label;
        evdb_future *f;
    } q[] = {
        {"answer", evdb_pool_query(a->pool, "SELECT 6 * 7 AS answer", NULL, 0, NULL)},
        {"greeting", evdb_pool_query(a->pool, greet, who, 2, NULL)},
        {"count", evdb_pool_query(a->pool,
                                  "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
                                  "WHERE i < 1000) SELECT COUNT(*) AS n FROM s",
                                  NULL, 0, NULL)},
        {"version", evdb_pool_query(a->pool, version, NULL, 0, NULL)},
        {"sleep 0.2", evdb_pool_query(a->pool, nap, NULL, 0, NULL)},
    };
    enum { NQ = sizeof q / sizeof q[0] };
    evdb_future *all[NQ + 1];
    for (int i = 0; i < NQ; i++) {
        if (!q[i].f)
            return evdb_task_fail_error(evdb_last_error());
        all[i] = q[i].f;
    }
    all[NQ] = evdb_task_spawn(evdb_task_loop(), two_steps, a, NULL);

    /* Everything runs concurrently, under one deadline. */
    ev_tstamp t0 = ev_time();
    evdb_future *gathered = evdb_gather(all, NQ + 1, EVDB_GATHER_ALL);
    evdb_future *limited = evdb_timeout(gathered, 5.0);
    int status = evdb_await(limited);
    for (int i = 0; i < NQ; i++)
        print_row(q[i].label, q[i].f);
    printf("gathered %d operations concurrently in %.0f ms: %s\n", NQ + 1, (ev_time() - t0) * 1000,
           status == 0 ? "all ok" : evdb_err_name(status));
    void *r = status == 0 ? NULL : evdb_task_fail_error(evdb_future_error(limited));
    evdb_future_unref(limited);
    evdb_future_unref(gathered);
    for (int i = 0; i <= NQ; i++)
        evdb_future_unref(all[i]);

    /* Close the pool from inside the task too. */
    evdb_future *closed = evdb_pool_close(a->pool);
    evdb_await(closed);
    evdb_future_unref(closed);
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: db_gather URL\n");
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool_opts po = {.max_conns = 4};
    app a = {evdb_pool_new(loop, argv[1], &po), strncmp(argv[1], "m", 1) == 0};
    if (!a.pool) {
        fprintf(stderr, "db_gather: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    int status = evdb_run(loop, main_task, &a, NULL);
    if (status != 0)
        fprintf(stderr, "db_gather: %s: %s\n", evdb_err_name(status),
                evdb_error_message(evdb_last_error()));
    ev_loop_destroy(loop);
    return status == 0 ? 0 : 1;
}
