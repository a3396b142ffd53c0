/*
 * The PostgreSQL driver's vtable (drivers/driver.h), over libpq 15.
 */
#include <string.h>

#include "pg_internal.h"

/* Queries in flight per connection when the user gives 0: enough to keep
 * the server busy across a round trip on a LAN, few enough that a slow
 * statement holds up a bounded number of queries pipelined behind it. */
#define PG_DEFAULT_DEPTH 64

static const char *const schemes[] = {"postgresql", "postgres", NULL};

/* libpq keyword strings ("host=... dbname=...") have no scheme. */
static bool claims(const char *url)
{
    return strchr(url, '=') != NULL;
}

static unsigned capacity(const evdb__dconn *dc)
{
    if (!dc->conn || dc->inflight >= dc->depth)
        return 0;
    return dc->depth - dc->inflight;
}

static int64_t server_id(const evdb__dconn *dc)
{
    return dc->conn ? PQbackendPID(dc->conn) : 0;
}

const evdb__driver evdb__driver_postgres = {
    .name = "postgres",
    .schemes = schemes,
    .caps = EVDB__CAP_PIPELINE | EVDB__CAP_SERVER_CANCEL | EVDB__CAP_MULTI_STMT | EVDB__CAP_STREAM |
            EVDB__CAP_PREPARE | EVDB__CAP_BATCH | EVDB__CAP_COPY,
    .default_depth = PG_DEFAULT_DEPTH,
    .claims = claims,
    .connect_start = evdb__pg_connect_start,
    .connect_step = evdb__pg_connect_step,
    .capacity = capacity,
    .send = evdb__pg_send,
    .flush = evdb__pg_flush,
    .io = evdb__pg_io,
    .cancel_start = evdb__pg_cancel_start,
    .cancel_step = evdb__pg_cancel_step,
    .cancel_free = evdb__pg_cancel_free,
    .close_start = evdb__pg_close_start,
    .close_step = evdb__pg_close_step,
    .destroy = evdb__pg_destroy,
    .query_sent = evdb__pg_query_sent,
    .take_unsent = evdb__pg_take_unsent,
    .listen = evdb__pg_listen,
    .server_id = server_id,
    .reset = &evdb__pg_reset,
    .txn_dialect = EVDB__TXN_BEGIN,
};
