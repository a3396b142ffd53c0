/* stream: a million rows through a pool in batches, pausing now and then,
 * with evdb holding about one batch at a time.
 *   stream 'postgresql://user:pw@127.0.0.1:5432/db'   (or a mariadb:// URL) */
#include <ev.h>
#include <stdio.h>
#include <evdb.h>

typedef struct tally {
    unsigned long rows, batches, pauses;
    long long sum;
    evdb_future *wake; /* the sleep a pause waits for */
    struct ev_loop *loop;
} tally;

/* A slow consumer: every 100th batch it pauses the stream for 10 ms (the
 * server waits meanwhile; nothing piles up in this process). */
static void resume(evdb_future *f, void *arg)
{
    (void)f;
    evdb_stream_resume(arg);
}

static int on_batch(evdb_stream *s, const evdb_result *b, void *arg)
{
    tally *t = arg;
    for (size_t i = 0; i < evdb_result_nrows(b); i++) {
        int64_t v = 0;
        evdb_result_int(b, i, 0, &v);
        t->sum += v;
    }
    t->rows += evdb_result_nrows(b);
    if (++t->batches % 100 == 0) {
        t->pauses++;
        evdb_future_unref(t->wake);
        t->wake = evdb_sleep(t->loop, 0.01);
        evdb_future_on_done(t->wake, resume, s);
        return EVDB_STREAM_PAUSE;
    }
    return EVDB_STREAM_CONTINUE;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: stream URL\n");
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool *pool = evdb_pool_new(loop, argv[1], NULL);
    if (!pool) {
        fprintf(stderr, "stream: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    const char *sql = argv[1][0] == 'm' ? "SELECT seq FROM seq_1_to_1000000"
                                        : "SELECT g FROM generate_series(1, 1000000) g";
    tally t = {0, 0, 0, 0, NULL, loop};
    evdb_stream_opts opts = {.batch_rows = 1000, .on_batch = on_batch, .arg = &t};
    evdb_stream *s = evdb_pool_stream(pool, sql, NULL, 0, &opts);
    int status = s ? evdb_future_wait(evdb_stream_done(s)) : -1;
    if (status == 0)
        printf("streamed %lu rows in %lu batches (%lu pauses), sum %lld, rows counted %lld\n",
               t.rows, t.batches, t.pauses, t.sum,
               (long long)evdb_result_affected(evdb_future_result(evdb_stream_done(s))));
    else
        fprintf(stderr, "stream: %s\n",
                s ? evdb_error_message(evdb_future_error(evdb_stream_done(s)))
                  : evdb_error_message(evdb_last_error()));
    evdb_stream_free(s);
    evdb_future_unref(t.wake);

    evdb_future *closed = evdb_pool_close(pool);
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
    return status == 0 ? 0 : 1;
}
