/*
 * Row streaming (evdb__query.stream, src/stream.c) on the row-at-a-time
 * reading of my_unbuffered.c: a streamed query is read unbuffered
 * (mysql_use_result + mysql_fetch_row, or an unbuffered statement fetch)
 * whether or not a result-size cap is set, its rows go to the core in
 * batches of q->stream_rows rows, and its final result keeps none (the
 * columns and the counts).
 *
 * Backpressure: before each row my_unbuffered.c asks whether the stream is
 * paused; if so it waits for nothing (no READ), so Connector/C reads no
 * more and the server blocks on its full socket. evdb then holds one batch
 * the consumer has not taken and Connector/C its packet buffer. The core
 * wakes the query with an io step when the consumer wants rows again; the
 * next fetch starts then (a pause only ever falls between rows).
 *
 * Cancel: once the query is given up on, the stream is never paused: the
 * rest is read (and each batch dropped by the core) until the KILL QUERY
 * the core sends ends it, with a turn for the loop after every batch so
 * that the KILL goes out.
 */
#include "my_internal.h"

bool evdb__my_streaming(const evdb__dconn *dc)
{
    return dc->q && dc->q->stream;
}

bool evdb__my_unbuffered(const evdb__dconn *dc)
{
    return dc->max_result_bytes || evdb__my_streaming(dc);
}

bool evdb__my_stream_paused(const evdb__dconn *dc)
{
    return evdb__my_streaming(dc) && evdb__stream_paused(dc->q);
}

bool evdb__my_stream_stop(evdb__dconn *dc)
{
    if (dc->op_started || !evdb__my_streaming(dc))
        return false;
    if (!dc->stream_yield && !evdb__stream_paused(dc->q))
        return false;
    /* Wait for nothing: the server blocks while paused; a yield comes back
     * at once through a zero timeout (my_driver.c, run). */
    dc->mask = 0;
    return true;
}

void evdb__my_stream_rows(evdb__dconn *dc, bool end, unsigned ncols, evdb__my_columns_fn columns,
                          void *arg)
{
    if (!end && ++dc->batch_rows < dc->q->stream_rows)
        return;
    if (dc->batch_rows == 0)
        return; /* nothing since the last batch: build stays, for the final result */
    /* The next batch most likely looks like this one: room for as many
     * rows and bytes up front spares it the doubling and copying of its
     * arrays. The end leaves only the final, empty result. */
    evdb__rbuild *next = end ? evdb__rbuild_new(ncols)
                             : evdb__rbuild_new_sized(ncols, dc->batch_rows,
                                                      evdb__rbuild_size(dc->build));
    if (next && columns(next, arg)) {
        evdb__rbuild_free(next);
        next = NULL;
    }
    evdb_result *batch = evdb__rbuild_finish(dc->build);
    dc->build = next;
    dc->batch_rows = 0;
    /* A cancelled stream is never paused; while its rows keep coming
     * faster than they are read, the fetch loop would never return, and
     * the KILL QUERY on the loop would never go out. */
    if (dc->q->cancel_requested)
        dc->stream_yield = true;
    if (!batch || !next)
        evdb__my_fail_code(dc, EVDB_ENOMEM, "out of memory streaming MariaDB rows");
    evdb__stream_batch(dc->q, batch);
}
