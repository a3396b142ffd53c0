/*
 * Row streaming (evdb__query.stream, src/stream.c): the rows of a streamed
 * query come one by one in libpq's single-row mode and go to the core in
 * batches of q->stream_rows rows; nothing of them stays in the final
 * result (columns, command tag, counts).
 *
 * Backpressure: while the core says the stream is paused (the consumer has
 * not taken the last batch, or asked for a pause), the driver neither
 * parses rows nor reads the socket, and waits without READ. The server
 * then blocks on its full socket buffer: evdb holds one batch ready, one
 * being built (empty while paused: a batch is handed over the moment it is
 * full) and what libpq read before the pause (one read's worth).
 *
 * A streamed query runs alone (the core sends it with
 * EVDB_QUERY_NO_PIPELINE): nothing is in flight before it, nothing after
 * it until it is answered, so the head of the ring is the stream while it
 * runs, and single-row mode is always set before its first row is parsed.
 */
#include "pg_internal.h"

/* The streamed query at the head of the ring, or NULL. */
static evdb__query *head_stream(const evdb__dconn *dc)
{
    if (!dc->rlen)
        return NULL;
    const pg_ent *e = evdb__pg_ring_at((evdb__dconn *)dc, 0);
    if ((e->kind != PGK_QUERY && e->kind != PGK_MULTI) || !e->q || !e->q->stream)
        return NULL;
    return e->q;
}

bool evdb__pg_stream_paused(const evdb__dconn *dc)
{
    const evdb__query *q = head_stream(dc);
    return q && evdb__stream_paused(q);
}

bool evdb__pg_stream_wants_rows(const evdb__dconn *dc)
{
    return head_stream(dc) != NULL;
}

/* Hand the rows built so far to the core as one batch; res gives the
 * batch's shape (its command tag is empty: the statement is not over). */
static void hand_over(evdb__dconn *dc, evdb__query *q, const PGresult *res)
{
    evdb_result *batch = evdb__pg_rows_finish(dc->cur_rows, res);
    dc->cur_rows = NULL;
    dc->stream_nrows = 0;
    if (!batch)
        dc->cur_oom = true; /* the query fails with EVDB_ENOMEM at its end */
    evdb__stream_batch(q, batch);
}

void evdb__pg_stream_row(evdb__dconn *dc, evdb__query *q, const PGresult *res)
{
    if (q->cancel_requested || dc->cur_oom)
        return; /* given up on: the rest is read and dropped */
    if (evdb__pg_rows_add_cat(&dc->cur_rows, res, &dc->cat)) {
        dc->cur_oom = true;
        evdb__rbuild_free(dc->cur_rows);
        dc->cur_rows = NULL;
        dc->stream_nrows = 0;
        return;
    }
    if (++dc->stream_nrows >= q->stream_rows)
        hand_over(dc, q, res);
}

void evdb__pg_stream_end(evdb__dconn *dc, evdb__query *q, const PGresult *res)
{
    if (dc->cur_rows && !q->cancel_requested && !dc->cur_oom)
        hand_over(dc, q, res);
    evdb__rbuild_free(dc->cur_rows);
    dc->cur_rows = NULL;
    dc->stream_nrows = 0;
}
