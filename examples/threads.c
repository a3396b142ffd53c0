/*
 * threads: scaling across cores the evdb way, one loop and one pool per
 * thread. evdb objects belong to the loop (and so the thread) that made
 * them; nothing is shared but the server.
 *
 *   threads URL [THREADS] [QUERIES_PER_THREAD]
 */
#include <ev.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <evdb.h>

typedef struct worker {
    pthread_t tid;
    const char *url;
    int id, queries, right;
    double seconds;
} worker;

static void *run_worker(void *arg)
{
    worker *w = arg;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool_opts po = {.max_conns = 2};
    evdb_pool *pool = evdb_pool_new(loop, w->url, &po);
    if (!pool) {
        fprintf(stderr, "thread %d: %s\n", w->id, evdb_error_message(evdb_last_error()));
        ev_loop_destroy(loop);
        return NULL;
    }
    /* $1 for PostgreSQL, ? for MariaDB. */
    const char *sql = w->url[0] == 'm' ? "SELECT ? + 1" : "SELECT $1::bigint + 1";
    evdb_future **fs = calloc((size_t)w->queries, sizeof *fs);
    ev_tstamp t0 = ev_time();
    for (int i = 0; i < w->queries; i++) {
        evdb_value v = evdb_int((int64_t)w->id * 1000000 + i);
        fs[i] = evdb_pool_query(pool, sql, &v, 1, NULL);
    }
    evdb_future *all = evdb_gather(fs, (size_t)w->queries, 0);
    evdb_future_wait(all);
    w->seconds = ev_time() - t0;
    for (int i = 0; i < w->queries; i++) {
        int64_t got = -1;
        if (evdb_result_int(evdb_future_result(fs[i]), 0, 0, &got) == 0 &&
            got == (int64_t)w->id * 1000000 + i + 1)
            w->right++;
        evdb_future_unref(fs[i]);
    }
    evdb_future_unref(all);
    free(fs);
    evdb_future *closed = evdb_pool_close(pool);
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: threads URL [THREADS] [QUERIES_PER_THREAD]\n");
        return 2;
    }
    int nthreads = argc > 2 ? atoi(argv[2]) : 4;
    int queries = argc > 3 ? atoi(argv[3]) : 2000;
    if (nthreads < 1 || nthreads > 64 || queries < 1) {
        fprintf(stderr, "threads: 1..64 threads and at least 1 query\n");
        return 2;
    }
    worker *ws = calloc((size_t)nthreads, sizeof *ws);
    for (int i = 0; i < nthreads; i++) {
        ws[i] = (worker){.url = argv[1], .id = i, .queries = queries};
        pthread_create(&ws[i].tid, NULL, run_worker, &ws[i]);
    }
    int right = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(ws[i].tid, NULL);
        printf("thread %d: %d/%d right in %.0f ms\n", i, ws[i].right, queries,
               ws[i].seconds * 1000);
        right += ws[i].right;
    }
    printf("%d threads: %d/%d queries right\n", nthreads, right, nthreads * queries);
    free(ws);
    return right == nthreads * queries ? 0 : 1;
}
