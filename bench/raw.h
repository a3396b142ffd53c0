/*
 * The raw-client baselines: plain libpq and Connector/C (no evdb), doing
 * exactly the work evdb-bench does on the same number of connections.
 * Each returns the process exit status after reporting.
 */
#ifndef EVDB_BENCH_RAW_H
#define EVDB_BENCH_RAW_H

#include "bench.h"

#define RAW_TICK_EVERY 256 /* sync loops: look at the clock for progress this often */

int raw_pg_sync(bench *b);               /* PQexecPrepared in a loop, 1 connection */
int raw_pg_pipeline(bench *b);           /* pipeline mode on libev, one Sync per top-up batch */
int raw_pg_pipeline_each(bench *b);      /* the same, one Sync per query */
int raw_pg_pipeline_each_cork(bench *b); /* one Sync per query, TCP_CORK around each batch */
int raw_pg_async(bench *b); /* nonblocking on libev, one query per connection at a time */
int raw_my_sync(bench *b);  /* mysql_stmt_execute in a loop, 1 connection */
int raw_my_async(bench *b); /* MYSQL_OPT_NONBLOCK + *_start/_cont on libev */

#endif
