/*
 * evdb-bench-raw: the raw-client baselines, with the options and the
 * report of evdb-bench.
 *
 *   evdb-bench-raw --client pg-pipeline --url postgresql://... --conns 8 --inflight 64
 */
#include <stdio.h>
#include <string.h>

#include "raw.h"

typedef struct client {
    const char *name;
    bench_backend backend;
    int (*run)(bench *b);
    const char *what;
} client;

static const client clients[] = {
#ifdef BENCH_HAVE_PQ
    {"pg-sync", BENCH_PG, raw_pg_sync, "libpq PQexecPrepared loop (1 conn)"},
    {"pg-pipeline", BENCH_PG, raw_pg_pipeline,
     "libpq pipeline mode on libev, prepared, one Sync per top-up batch"},
    {"pg-pipeline-each", BENCH_PG, raw_pg_pipeline_each,
     "the same, one Sync per query (each query its own implicit transaction)"},
    {"pg-pipeline-each-cork", BENCH_PG, raw_pg_pipeline_each_cork,
     "one Sync per query, TCP_CORK set while each top-up batch is written"},
    {"pg-async", BENCH_PG, raw_pg_async,
     "libpq nonblocking on libev, prepared, one query per connection at a time"},
#endif
#ifdef BENCH_HAVE_MARIADB
    {"my-sync", BENCH_MY, raw_my_sync, "Connector/C prepared statements, blocking loop (1 conn)"},
    {"my-async", BENCH_MY, raw_my_async,
     "Connector/C MYSQL_OPT_NONBLOCK *_start/_cont on libev, prepared, one query per conn"},
#endif
};

#define NCLIENTS (sizeof clients / sizeof clients[0])

int main(int argc, char **argv)
{
    char extra[2048];
    size_t off = (size_t)snprintf(extra, sizeof extra, "  --client NAME       the baseline:\n");
    for (size_t i = 0; i < NCLIENTS && off < sizeof extra; i++)
        off += (size_t)snprintf(extra + off, sizeof extra - off, "      %-22s %s\n",
                                clients[i].name, clients[i].what);
    bench_opts o;
    bench_parse_args(&o, argc, argv, "evdb-bench-raw", extra);
    const client *cl = NULL;
    for (size_t i = 0; i < NCLIENTS; i++)
        if (o.client && !strcmp(o.client, clients[i].name))
            cl = &clients[i];
    if (!cl) {
        fprintf(stderr, "evdb-bench-raw: --client must name a baseline (see --help)\n");
        return 2;
    }
    bench_backend be;
    if (!bench_backend_of(o.url, &be) || be != cl->backend) {
        fprintf(stderr, "evdb-bench-raw: %s needs a %s URL\n", cl->name,
                cl->backend == BENCH_PG ? "postgresql://" : "mariadb://");
        return 2;
    }
    if (o.burst)
        fprintf(stderr, "evdb-bench-raw: --burst is evdb-bench's; ignored\n");
    bench b;
    bench_init(&b, &o, be, cl->name);
    int rc = cl->run(&b);
    bench_free(&b);
    return rc;
}
