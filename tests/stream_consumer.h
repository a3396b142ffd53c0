/*
 * Row streaming tests: the push consumer both backends' suites use
 * (integ_stream_pg.c, integ_stream_my.c). It checks every batch (size
 * within what was asked, rows numbered on from the last, nothing after
 * the final status) and can pause or cancel after a given batch; a
 * counter counts the final futures' callbacks.
 */
#ifndef EVDB_TEST_STREAM_CONSUMER_H
#define EVDB_TEST_STREAM_CONSUMER_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#include <evdb.h>

/* What a push consumer saw. */
typedef struct seen {
    int64_t next; /* the value the next row must hold */
    size_t rows, batches;
    size_t batch_rows; /* the size asked for */
    size_t short_batches;
    int pause_at;   /* return EVDB_STREAM_PAUSE after this batch (0: never) */
    int cancel_at;  /* cancel the stream after this batch (0: never) */
    bool after_end; /* a batch arrived after done completed */
    evdb_stream *s;
} seen;

static int on_batch(evdb_stream *s, const evdb_result *b, void *arg)
{
    seen *v = arg;
    ck_assert_ptr_eq(s, v->s);
    size_t n = evdb_result_nrows(b);
    ck_assert_uint_ge(n, 1);
    ck_assert_uint_le(n, v->batch_rows);
    if (n < v->batch_rows)
        v->short_batches++;
    if (evdb_future_status(evdb_stream_done(s)) != EVDB_PENDING)
        v->after_end = true;
    for (size_t i = 0; i < n; i++) {
        int64_t x = 0;
        ck_assert_int_eq(evdb_result_int(b, i, 0, &x), 0);
        ck_assert_int_eq(x, v->next);
        v->next++;
    }
    v->rows += n;
    v->batches++;
    if (v->cancel_at && (int)v->batches == v->cancel_at)
        ck_assert_int_eq(evdb_stream_cancel(s), 0);
    if (v->pause_at && (int)v->batches == v->pause_at)
        return EVDB_STREAM_PAUSE;
    return EVDB_STREAM_CONTINUE;
}

static int done_calls;
static void count_done(evdb_future *f, void *arg)
{
    (void)f;
    (void)arg;
    done_calls++;
}

#endif
