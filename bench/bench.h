/*
 * The harness shared by evdb-bench and the raw-client baselines
 * (evdb-bench-raw): options, workloads and their row checks, a log-linear
 * latency histogram, CPU and memory accounting, progress and the report in
 * text, CSV or JSON.
 *
 * Every client does the same work per query: pick the query kind and a
 * random id, take a timestamp, submit, and on completion check every row,
 * record the latency and submit the next one while the run lasts (a closed
 * loop with a fixed number of queries in flight).
 */
#ifndef EVDB_BENCH_H
#define EVDB_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- time ---- */

uint64_t bench_now_ns(void); /* CLOCK_MONOTONIC */

/* ---- latency histogram (HDR-style log-linear buckets) ----
 * Values below 2^BENCH_HIST_SUB_BITS ns are exact; above, every power of
 * two is split into 2^(BENCH_HIST_SUB_BITS-1) equal buckets, so a bucket's
 * width is under 0.8% of its value. Recording is one index computation and
 * one increment; percentiles walk the buckets. */
#define BENCH_HIST_SUB_BITS 8

typedef struct bench_hist {
    uint64_t *counts;
    size_t nbuckets;
    uint64_t n, sum, min, max;
} bench_hist;

int bench_hist_init(bench_hist *h);
void bench_hist_free(bench_hist *h);
void bench_hist_reset(bench_hist *h);
void bench_hist_record(bench_hist *h, uint64_t ns);
/* The value at quantile q (0..1): the highest value of the bucket that
 * holds it, capped at the largest value recorded. 0 when empty. */
uint64_t bench_hist_quantile(const bench_hist *h, double q);
/* "latency_us fraction" lines, one per non-empty bucket (the CDF). */
void bench_hist_write_cdf(const bench_hist *h, FILE *out);

/* ---- workloads ---- */

typedef enum bench_workload {
    BENCH_WL_POINT,  /* SELECT name, price FROM items WHERE id = $1 */
    BENCH_WL_INSERT, /* INSERT INTO items_ins (name, price) VALUES ($1, $2) */
    BENCH_WL_MIXED,  /* point selects with a share of inserts */
    BENCH_WL_FETCH   /* SELECT id, name, price FROM items WHERE id >= $1 AND id < $2
                        (1,000 rows) */
} bench_workload;

typedef enum bench_kind { BENCH_K_POINT, BENCH_K_INSERT, BENCH_K_FETCH, BENCH_K_COUNT } bench_kind;

typedef enum bench_backend { BENCH_PG, BENCH_MY } bench_backend;

#define BENCH_ITEMS 10000     /* rows in items, ids 1..BENCH_ITEMS */
#define BENCH_FETCH_ROWS 1000 /* rows a fetch returns */
#define BENCH_PRICE_STEP 1.25 /* items.price = id * BENCH_PRICE_STEP (exact in binary) */

/* The SQL of a query kind in a backend's placeholder style, and how many
 * parameters it takes. */
const char *bench_sql(bench_backend be, bench_kind k);
unsigned bench_nparams(bench_kind k);

/* One query to run: its kind and its parameters. */
typedef struct bench_query {
    bench_kind kind;
    int64_t id;    /* point: the id; fetch: the first id; insert: a serial */
    double price;  /* insert */
    char name[32]; /* insert: the name; NUL-terminated */
    size_t name_len;
} bench_query;

/* Row checks shared by every client. name need not be NUL-terminated. */
bool bench_check_name(const char *name, size_t len, int64_t id);
bool bench_check_price(double price, int64_t id);
/* Same, with the price as text (PostgreSQL numeric). */
bool bench_check_price_text(const char *s, int64_t id);
/* Decimal digits of v into buf (no NUL); returns the length. */
size_t bench_utoa(uint64_t v, char *buf);

/* ---- options ---- */

typedef enum bench_format { BENCH_FMT_TEXT, BENCH_FMT_CSV, BENCH_FMT_JSON } bench_format;

typedef struct bench_opts {
    const char *url;
    const char *client; /* raw: pg-sync, pg-pipeline, pg-async, my-sync, my-async */
    const char *api;    /* evdb: pool, conn, task */
    bench_workload workload;
    const char *workload_name;
    unsigned conns;
    unsigned inflight; /* queries in flight, all connections together */
    unsigned depth;    /* per-connection pipeline depth (0: derived) */
    uint64_t queries;  /* measured queries (when duration is 0) */
    double duration;   /* seconds of measurement; 0: count queries */
    uint64_t warmup;   /* queries run before the measurement */
    bool warmup_set;
    double write_ratio; /* mixed: share of inserts */
    bench_format format;
    const char *output; /* append the report here (default stdout) */
    const char *csv;    /* also append a CSV line here (header when empty) */
    const char *json;   /* also append a JSON line here */
    const char *cdf;    /* write the latency CDF here */
    const char *label;  /* free-form tag copied into the report */
    uint64_t seed;
    int progress;       /* -1 auto (stderr is a terminal), 0 off, 1 on */
    bool burst;         /* submit every query at once (scaling) */
    bool count_allocs;  /* count evdb's allocations (evdb-bench only) */
    bool no_stmt_cache; /* evdb: turn the prepared-statement cache off */
    unsigned batch;     /* evdb --api batch / conn-batch: statements per batch
                            (0: derived, the per-connection depth) */
} bench_opts;

/* Parse argv into o (defaults first). prog names the program in messages;
 * usage_extra is printed after the common options. Exits on --help or bad
 * arguments. */
void bench_parse_args(bench_opts *o, int argc, char **argv, const char *prog,
                      const char *usage_extra);

/* ---- a run ---- */

typedef struct bench {
    const bench_opts *o;
    bench_backend backend;
    const char *client_name; /* as reported: "evdb-pool", "pg-pipeline", ... */
    bench_hist hist;
    uint64_t rng;
    uint64_t insert_serial;

    /* the current phase: warm-up or measurement */
    bool measuring;
    uint64_t target; /* queries to submit in this phase (UINT64_MAX: by time) */
    uint64_t submitted, done, errors, rows;
    uint64_t t_start, t_end, t_stop; /* ns; t_stop: stop submitting (duration) */
    uint64_t last_progress;
    double ru_user0, ru_sys0, ru_user, ru_sys;
    char first_error[256];

    /* memory (scaling / --count-allocs), filled by the client */
    double bytes_per_queued; /* < 0: not measured */
    double rss_per_queued;   /* < 0: not measured */
    double allocs_per_query; /* < 0: not measured */
    bool batched;            /* queries went in batches of o->batch (text report) */
} bench;

void bench_init(bench *b, const bench_opts *o, bench_backend be, const char *client_name);
void bench_free(bench *b);

/* Start a phase: warm-up (measure false) or the measurement. Takes the
 * CPU snapshot and the start time. */
void bench_phase_start(bench *b, bool measure);
/* End it (after the last completion): takes the CPU snapshot. */
void bench_phase_end(bench *b);
/* Queries a phase runs (warm-up count, or the measured count). */
uint64_t bench_phase_target(const bench *b, bool measure);

/* May one more query be submitted in this phase? On true, the query is
 * counted as submitted and *q describes it. now is the submit time. */
bool bench_take(bench *b, bench_query *q, uint64_t now);
/* A query submitted at t0 completed (ok says whether it succeeded and its
 * rows checked out). Records its latency when measuring. */
void bench_complete(bench *b, uint64_t t0, uint64_t now, bool ok, uint64_t rows);
/* All submitted queries of the phase are done and none may follow. */
bool bench_phase_over(const bench *b);
/* Record the first error message (printf-style). */
void bench_error(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print a progress line when due (every second after the first two). */
void bench_tick(bench *b, uint64_t now);

/* Peak RSS in KiB, and the current RSS in bytes (from /proc). */
long bench_peak_rss_kb(void);
long bench_current_rss(void);

/* Report the measured phase in o->format to o->output (or stdout), and the
 * CDF to o->cdf. Returns 0, or 1 when the run had errors. */
int bench_report(bench *b);

/* The backend a URL names (postgresql://, postgres://, mariadb://, mysql://). */
bool bench_backend_of(const char *url, bench_backend *out);

/* A parsed mariadb:// URL for the raw Connector/C clients. */
typedef struct bench_my_url {
    char host[256], user[128], password[128], db[128], socket[256];
    unsigned port;
} bench_my_url;
int bench_parse_my_url(const char *url, bench_my_url *u);

#endif
