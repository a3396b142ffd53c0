/*
 * The shared harness: see bench.h.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000ull
#define NS_PER_US 1000.0
#define PROGRESS_AFTER_NS (2 * NS_PER_S)
#define PROGRESS_EVERY_NS NS_PER_S
#define DEFAULT_QUERIES 100000u
#define DEFAULT_CONNS 8u
#define WARMUP_SHARE 5u   /* default warm-up: a fifth of the run ... */
#define WARMUP_MAX 20000u /* ... at most this many queries */
#define DEFAULT_WRITE_RATIO 0.2

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- histogram */

#define SUB_COUNT (1u << BENCH_HIST_SUB_BITS)
#define HALF_COUNT (SUB_COUNT / 2)
#define SHIFT_MAX (64 - BENCH_HIST_SUB_BITS)

static size_t hist_index(uint64_t v)
{
    if (v < SUB_COUNT)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - (BENCH_HIST_SUB_BITS - 1);
    return SUB_COUNT + (size_t)(shift - 1) * HALF_COUNT + (size_t)((v >> shift) - HALF_COUNT);
}

/* The highest value that lands in bucket i. */
static uint64_t hist_high(size_t i)
{
    if (i < SUB_COUNT)
        return i;
    size_t k = i - SUB_COUNT;
    unsigned shift = (unsigned)(k / HALF_COUNT) + 1;
    uint64_t sub = k % HALF_COUNT + HALF_COUNT;
    return ((sub + 1) << shift) - 1;
}

int bench_hist_init(bench_hist *h)
{
    memset(h, 0, sizeof *h);
    h->nbuckets = SUB_COUNT + (size_t)SHIFT_MAX * HALF_COUNT;
    h->counts = calloc(h->nbuckets, sizeof *h->counts);
    h->min = UINT64_MAX;
    return h->counts ? 0 : -1;
}

void bench_hist_free(bench_hist *h)
{
    free(h->counts);
    h->counts = NULL;
}

void bench_hist_reset(bench_hist *h)
{
    memset(h->counts, 0, h->nbuckets * sizeof *h->counts);
    h->n = h->sum = h->max = 0;
    h->min = UINT64_MAX;
}

void bench_hist_record(bench_hist *h, uint64_t ns)
{
    h->counts[hist_index(ns)]++;
    h->n++;
    h->sum += ns;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

uint64_t bench_hist_quantile(const bench_hist *h, double q)
{
    if (!h->n)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < h->nbuckets; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

void bench_hist_write_cdf(const bench_hist *h, FILE *out)
{
    uint64_t seen = 0;
    fprintf(out, "# latency_us fraction_at_or_below\n");
    for (size_t i = 0; i < h->nbuckets && seen < h->n; i++) {
        if (!h->counts[i])
            continue;
        seen += h->counts[i];
        uint64_t v = hist_high(i);
        if (v > h->max)
            v = h->max;
        fprintf(out, "%.3f %.7f\n", (double)v / NS_PER_US, (double)seen / (double)h->n);
    }
}

/* ---------------------------------------------------------------- workloads */

static const char *const pg_sql[BENCH_K_COUNT] = {
    "SELECT name, price FROM items WHERE id = $1",
    "INSERT INTO items_ins (name, price) VALUES ($1, $2)",
    "SELECT id, name, price FROM items WHERE id >= $1 AND id < $2",
};

static const char *const my_sql[BENCH_K_COUNT] = {
    "SELECT name, price FROM items WHERE id = ?",
    "INSERT INTO items_ins (name, price) VALUES (?, ?)",
    "SELECT id, name, price FROM items WHERE id >= ? AND id < ?",
};

const char *bench_sql(bench_backend be, bench_kind k)
{
    return be == BENCH_PG ? pg_sql[k] : my_sql[k];
}

unsigned bench_nparams(bench_kind k)
{
    return k == BENCH_K_POINT ? 1 : 2;
}

size_t bench_utoa(uint64_t v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

#define NAME_PREFIX "item-"
#define NAME_PREFIX_LEN 5

bool bench_check_name(const char *name, size_t len, int64_t id)
{
    if (!name || len <= NAME_PREFIX_LEN || memcmp(name, NAME_PREFIX, NAME_PREFIX_LEN))
        return false;
    int64_t v = 0;
    for (size_t i = NAME_PREFIX_LEN; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)name[i] - '0';
        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    return v == id;
}

bool bench_check_price(double price, int64_t id)
{
    return price == (double)id * BENCH_PRICE_STEP;
}

bool bench_check_price_text(const char *s, int64_t id)
{
    if (!s)
        return false;
    char *end;
    double d = strtod(s, &end);
    return end != s && bench_check_price(d, id);
}

/* xorshift64* */
static uint64_t rnd(bench *b)
{
    uint64_t x = b->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    b->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void make_query(bench *b, bench_query *q)
{
    bench_kind k;
    switch (b->o->workload) {
    case BENCH_WL_INSERT:
        k = BENCH_K_INSERT;
        break;
    case BENCH_WL_FETCH:
        k = BENCH_K_FETCH;
        break;
    case BENCH_WL_MIXED:
        k = (double)(rnd(b) >> 11) * 0x1.0p-53 < b->o->write_ratio ? BENCH_K_INSERT : BENCH_K_POINT;
        break;
    default:
        k = BENCH_K_POINT;
        break;
    }
    q->kind = k;
    switch (k) {
    case BENCH_K_POINT:
        q->id = (int64_t)(rnd(b) % BENCH_ITEMS) + 1;
        break;
    case BENCH_K_FETCH:
        q->id = (int64_t)(rnd(b) % (BENCH_ITEMS - BENCH_FETCH_ROWS + 1)) + 1;
        break;
    default: {
        uint64_t n = ++b->insert_serial;
        q->id = (int64_t)n;
        memcpy(q->name, "new-", 4);
        q->name_len = 4 + bench_utoa(n, q->name + 4);
        q->name[q->name_len] = '\0';
        q->price = (double)(n % BENCH_ITEMS) * 0.5;
        break;
    }
    }
}

/* ------------------------------------------------------------------ options */

static void usage(FILE *out, const char *prog, const char *extra)
{
    fprintf(out,
            "usage: %s --url URL [options]\n"
            "  --url URL           postgresql://... or mariadb://... (default $EVDB_BENCH_URL)\n"
            "  --conns N           connections [%u]\n"
            "  --inflight N        queries in flight, all connections together [= conns]\n"
            "  --depth N           per-connection pipeline depth [ceil(inflight/conns)]\n"
            "  --queries N         measured queries [%u]\n"
            "  --duration S        measure for S seconds instead of a query count\n"
            "  --warmup N          queries run first, unmeasured [min(queries/%u, %u)]\n"
            "  --workload W        point | insert | mixed | fetch [point]\n"
            "  --write-ratio F     mixed: share of inserts [%.1f]\n"
            "  --format F          text | csv | json [text]\n"
            "  --output FILE       append the report to FILE (csv: header when empty)\n"
            "  --csv FILE          also append the result as a CSV line to FILE\n"
            "  --json FILE         also append the result as a JSON line to FILE\n"
            "  --cdf FILE          write the latency CDF (us, fraction) to FILE\n"
            "  --label TEXT        tag copied into the report\n"
            "  --seed N            random seed [1]\n"
            "  --progress / --no-progress   progress line on stderr [when a terminal]\n"
            "  --burst             submit every query at once (scaling; evdb-bench)\n"
            "  --count-allocs      count evdb's allocations (evdb-bench)\n"
            "  --no-stmt-cache     evdb: no prepared-statement cache\n"
            "  --batch N           evdb --api batch|conn-batch: statements per batch [depth]\n"
            "%s",
            prog, DEFAULT_CONNS, DEFAULT_QUERIES, WARMUP_SHARE, WARMUP_MAX, DEFAULT_WRITE_RATIO,
            extra ? extra : "");
}

static uint64_t parse_count(const char *prog, const char *name, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end); /* accepts 1e6 */
    if (errno || end == s || *end || v < 0 || v > 1e15 || v != floor(v)) {
        fprintf(stderr, "%s: --%s wants a whole number, got '%s'\n", prog, name, s);
        exit(2);
    }
    return (uint64_t)v;
}

void bench_parse_args(bench_opts *o, int argc, char **argv, const char *prog,
                      const char *usage_extra)
{
    enum {
        O_URL = 256,
        O_CONNS,
        O_INFLIGHT,
        O_DEPTH,
        O_QUERIES,
        O_DURATION,
        O_WARMUP,
        O_WORKLOAD,
        O_WRITE_RATIO,
        O_FORMAT,
        O_OUTPUT,
        O_CDF,
        O_LABEL,
        O_SEED,
        O_PROGRESS,
        O_NO_PROGRESS,
        O_BURST,
        O_COUNT_ALLOCS,
        O_NO_CACHE,
        O_CLIENT,
        O_API,
        O_HELP,
        O_CSV,
        O_JSON,
        O_BATCH
    };
    static const struct option longopts[] = {
        {"url", required_argument, NULL, O_URL},
        {"conns", required_argument, NULL, O_CONNS},
        {"inflight", required_argument, NULL, O_INFLIGHT},
        {"depth", required_argument, NULL, O_DEPTH},
        {"queries", required_argument, NULL, O_QUERIES},
        {"duration", required_argument, NULL, O_DURATION},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"workload", required_argument, NULL, O_WORKLOAD},
        {"write-ratio", required_argument, NULL, O_WRITE_RATIO},
        {"format", required_argument, NULL, O_FORMAT},
        {"output", required_argument, NULL, O_OUTPUT},
        {"cdf", required_argument, NULL, O_CDF},
        {"label", required_argument, NULL, O_LABEL},
        {"seed", required_argument, NULL, O_SEED},
        {"progress", no_argument, NULL, O_PROGRESS},
        {"no-progress", no_argument, NULL, O_NO_PROGRESS},
        {"burst", no_argument, NULL, O_BURST},
        {"count-allocs", no_argument, NULL, O_COUNT_ALLOCS},
        {"no-stmt-cache", no_argument, NULL, O_NO_CACHE},
        {"client", required_argument, NULL, O_CLIENT},
        {"api", required_argument, NULL, O_API},
        {"help", no_argument, NULL, O_HELP},
        {"csv", required_argument, NULL, O_CSV},
        {"json", required_argument, NULL, O_JSON},
        {"batch", required_argument, NULL, O_BATCH},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->url = getenv("EVDB_BENCH_URL");
    o->conns = DEFAULT_CONNS;
    o->queries = DEFAULT_QUERIES;
    o->workload = BENCH_WL_POINT;
    o->workload_name = "point";
    o->write_ratio = DEFAULT_WRITE_RATIO;
    o->seed = 1;
    o->progress = -1;
    o->api = "pool";
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_URL:
            o->url = optarg;
            break;
        case O_CONNS:
            o->conns = (unsigned)parse_count(prog, "conns", optarg);
            break;
        case O_INFLIGHT:
            o->inflight = (unsigned)parse_count(prog, "inflight", optarg);
            break;
        case O_DEPTH:
            o->depth = (unsigned)parse_count(prog, "depth", optarg);
            break;
        case O_QUERIES:
            o->queries = parse_count(prog, "queries", optarg);
            break;
        case O_DURATION:
            o->duration = strtod(optarg, NULL);
            break;
        case O_WARMUP:
            o->warmup = parse_count(prog, "warmup", optarg);
            o->warmup_set = true;
            break;
        case O_WORKLOAD:
            o->workload_name = optarg;
            if (!strcmp(optarg, "point"))
                o->workload = BENCH_WL_POINT;
            else if (!strcmp(optarg, "insert"))
                o->workload = BENCH_WL_INSERT;
            else if (!strcmp(optarg, "mixed"))
                o->workload = BENCH_WL_MIXED;
            else if (!strcmp(optarg, "fetch"))
                o->workload = BENCH_WL_FETCH;
            else {
                fprintf(stderr, "%s: unknown workload '%s'\n", prog, optarg);
                exit(2);
            }
            break;
        case O_WRITE_RATIO:
            o->write_ratio = strtod(optarg, NULL);
            break;
        case O_FORMAT:
            if (!strcmp(optarg, "text"))
                o->format = BENCH_FMT_TEXT;
            else if (!strcmp(optarg, "csv"))
                o->format = BENCH_FMT_CSV;
            else if (!strcmp(optarg, "json"))
                o->format = BENCH_FMT_JSON;
            else {
                fprintf(stderr, "%s: unknown format '%s'\n", prog, optarg);
                exit(2);
            }
            break;
        case O_OUTPUT:
            o->output = optarg;
            break;
        case O_CSV:
            o->csv = optarg;
            break;
        case O_JSON:
            o->json = optarg;
            break;
        case O_CDF:
            o->cdf = optarg;
            break;
        case O_LABEL:
            o->label = optarg;
            break;
        case O_SEED:
            o->seed = parse_count(prog, "seed", optarg);
            break;
        case O_PROGRESS:
            o->progress = 1;
            break;
        case O_NO_PROGRESS:
            o->progress = 0;
            break;
        case O_BURST:
            o->burst = true;
            break;
        case O_COUNT_ALLOCS:
            o->count_allocs = true;
            break;
        case O_NO_CACHE:
            o->no_stmt_cache = true;
            break;
        case O_CLIENT:
            o->client = optarg;
            break;
        case O_API:
            o->api = optarg;
            break;
        case O_BATCH:
            o->batch = (unsigned)parse_count(prog, "batch", optarg);
            break;
        case O_HELP:
        case 'h':
            usage(stdout, prog, usage_extra);
            exit(0);
        default:
            usage(stderr, prog, usage_extra);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        exit(2);
    }
    if (!o->url) {
        fprintf(stderr, "%s: --url is required\n", prog);
        usage(stderr, prog, usage_extra);
        exit(2);
    }
    if (o->conns == 0) {
        fprintf(stderr, "%s: --conns must be at least 1\n", prog);
        exit(2);
    }
    if (o->inflight == 0)
        o->inflight = o->conns;
    if (o->depth == 0)
        o->depth = (o->inflight + o->conns - 1) / o->conns;
    /* A batch as large as the raw pg-pipeline client's groups: it tops a
     * connection up to its depth under one Sync. */
    if (o->batch == 0)
        o->batch = o->depth;
    if (o->duration < 0 || (o->duration == 0 && o->queries == 0)) {
        fprintf(stderr, "%s: give --queries N (N > 0) or --duration S\n", prog);
        exit(2);
    }
    if (!o->warmup_set) {
        uint64_t base = o->duration > 0 ? DEFAULT_QUERIES : o->queries;
        o->warmup = base / WARMUP_SHARE < WARMUP_MAX ? base / WARMUP_SHARE : WARMUP_MAX;
    }
    if (o->progress < 0)
        o->progress = isatty(STDERR_FILENO);
    if (o->seed == 0)
        o->seed = 1;
}

/* ---------------------------------------------------------------------- run */

static void cpu_now(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    *sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void bench_init(bench *b, const bench_opts *o, bench_backend be, const char *client_name)
{
    memset(b, 0, sizeof *b);
    b->o = o;
    b->backend = be;
    b->client_name = client_name;
    b->rng = o->seed * 0x9E3779B97F4A7C15ull + 1;
    b->bytes_per_queued = -1;
    b->rss_per_queued = -1;
    b->allocs_per_query = -1;
    if (bench_hist_init(&b->hist)) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
}

void bench_free(bench *b)
{
    bench_hist_free(&b->hist);
}

uint64_t bench_phase_target(const bench *b, bool measure)
{
    if (!measure)
        return b->o->warmup;
    return b->o->duration > 0 ? UINT64_MAX : b->o->queries;
}

void bench_phase_start(bench *b, bool measure)
{
    b->measuring = measure;
    b->target = bench_phase_target(b, measure);
    b->submitted = b->done = b->errors = b->rows = 0;
    bench_hist_reset(&b->hist);
    cpu_now(&b->ru_user0, &b->ru_sys0);
    b->t_start = bench_now_ns();
    b->last_progress = b->t_start;
    b->t_stop = measure && b->o->duration > 0
                    ? b->t_start + (uint64_t)(b->o->duration * (double)NS_PER_S)
                    : UINT64_MAX;
}

void bench_phase_end(bench *b)
{
    b->t_end = bench_now_ns();
    double u, s;
    cpu_now(&u, &s);
    b->ru_user = u - b->ru_user0;
    b->ru_sys = s - b->ru_sys0;
    if (b->o->progress && b->t_end - b->t_start >= PROGRESS_AFTER_NS)
        fputc('\n', stderr);
}

bool bench_take(bench *b, bench_query *q, uint64_t now)
{
    if (b->submitted >= b->target || now >= b->t_stop)
        return false;
    b->submitted++;
    make_query(b, q);
    return true;
}

void bench_complete(bench *b, uint64_t t0, uint64_t now, bool ok, uint64_t rows)
{
    b->done++;
    b->rows += rows;
    if (!ok)
        b->errors++;
    bench_hist_record(&b->hist, now - t0);
}

bool bench_phase_over(const bench *b)
{
    return b->done == b->submitted && (b->submitted >= b->target || bench_now_ns() >= b->t_stop);
}

void bench_error(bench *b, const char *fmt, ...)
{
    if (b->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->first_error, sizeof b->first_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: first error: %s\n", b->client_name, b->first_error);
}

void bench_tick(bench *b, uint64_t now)
{
    if (!b->o->progress || now - b->t_start < PROGRESS_AFTER_NS ||
        now - b->last_progress < PROGRESS_EVERY_NS)
        return;
    b->last_progress = now;
    double secs = (double)(now - b->t_start) / (double)NS_PER_S;
    fprintf(stderr,
            "\r%s %s %s: %.0f s, %" PRIu64 " queries, %.0f q/s, p50 %.0f us, %" PRIu64 " errors   ",
            b->client_name, b->o->workload_name, b->measuring ? "run" : "warm-up", secs, b->done,
            (double)b->done / secs, (double)bench_hist_quantile(&b->hist, 0.5) / NS_PER_US,
            b->errors);
    if (!isatty(STDERR_FILENO))
        fputc('\n', stderr);
    fflush(stderr);
}

long bench_peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

long bench_current_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

bool bench_backend_of(const char *url, bench_backend *out)
{
    if (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11) ||
        strchr(url, '=')) {
        *out = BENCH_PG;
        return true;
    }
    if (!strncmp(url, "mariadb://", 10) || !strncmp(url, "mysql://", 8)) {
        *out = BENCH_MY;
        return true;
    }
    return false;
}

/* -------------------------------------------------------------------- report */

static const char csv_header[] =
    "label,client,backend,workload,conns,inflight,depth,queries,errors,rows,seconds,qps,"
    "cpu_us_per_query,user_s,sys_s,lat_mean_us,lat_p50_us,lat_p90_us,lat_p99_us,lat_p999_us,"
    "lat_max_us,peak_rss_kb,bytes_per_queued,rss_bytes_per_queued,allocs_per_query\n";

static bool file_empty(FILE *f)
{
    if (fseek(f, 0, SEEK_END))
        return false;
    return ftell(f) <= 0;
}

/* The numbers of the measured phase. */
typedef struct summary {
    double secs, qps, cpu_us, mean, p50, p90, p99, p999, max;
    long rss;
    const char *backend, *label;
} summary;

static void summarize(const bench *b, summary *m)
{
    const bench_hist *h = &b->hist;
    m->secs = (double)(b->t_end - b->t_start) / (double)NS_PER_S;
    m->qps = m->secs > 0 ? (double)b->done / m->secs : 0;
    m->cpu_us = b->done ? (b->ru_user + b->ru_sys) * 1e6 / (double)b->done : 0;
    m->mean = h->n ? (double)h->sum / (double)h->n / NS_PER_US : 0;
    m->p50 = (double)bench_hist_quantile(h, 0.50) / NS_PER_US;
    m->p90 = (double)bench_hist_quantile(h, 0.90) / NS_PER_US;
    m->p99 = (double)bench_hist_quantile(h, 0.99) / NS_PER_US;
    m->p999 = (double)bench_hist_quantile(h, 0.999) / NS_PER_US;
    m->max = (double)h->max / NS_PER_US;
    m->rss = bench_peak_rss_kb();
    m->backend = b->backend == BENCH_PG ? "postgres" : "mariadb";
    m->label = b->o->label ? b->o->label : "";
}

static void write_csv(FILE *out, bool header, const bench *b, const summary *m)
{
    const bench_opts *o = b->o;
    if (header)
        fputs(csv_header, out);
    fprintf(out,
            "%s,%s,%s,%s,%u,%u,%u,%" PRIu64 ",%" PRIu64 ",%" PRIu64
            ",%.4f,%.1f,%.3f,%.4f,%.4f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%ld,%.1f,%.1f,%.3f\n",
            m->label, b->client_name, m->backend, o->workload_name, o->conns, o->inflight, o->depth,
            b->done, b->errors, b->rows, m->secs, m->qps, m->cpu_us, b->ru_user, b->ru_sys, m->mean,
            m->p50, m->p90, m->p99, m->p999, m->max, m->rss, b->bytes_per_queued, b->rss_per_queued,
            b->allocs_per_query);
}

static void write_json(FILE *out, const bench *b, const summary *m)
{
    const bench_opts *o = b->o;
    fprintf(out,
            "{\"label\":\"%s\",\"client\":\"%s\",\"backend\":\"%s\",\"workload\":\"%s\","
            "\"conns\":%u,\"inflight\":%u,\"depth\":%u,\"queries\":%" PRIu64 ",\"errors\":%" PRIu64
            ",\"rows\":%" PRIu64
            ",\"seconds\":%.4f,\"qps\":%.1f,\"cpu_us_per_query\":%.3f,\"user_s\":%.4f,"
            "\"sys_s\":%.4f,\"lat_mean_us\":%.2f,\"lat_p50_us\":%.2f,\"lat_p90_us\":%.2f,"
            "\"lat_p99_us\":%.2f,\"lat_p999_us\":%.2f,\"lat_max_us\":%.2f,"
            "\"peak_rss_kb\":%ld,\"bytes_per_queued\":%.1f,\"rss_bytes_per_queued\":%.1f,"
            "\"allocs_per_query\":%.3f}\n",
            m->label, b->client_name, m->backend, o->workload_name, o->conns, o->inflight, o->depth,
            b->done, b->errors, b->rows, m->secs, m->qps, m->cpu_us, b->ru_user, b->ru_sys, m->mean,
            m->p50, m->p90, m->p99, m->p999, m->max, m->rss, b->bytes_per_queued, b->rss_per_queued,
            b->allocs_per_query);
}

static void write_text(FILE *out, const bench *b, const summary *m)
{
    const bench_opts *o = b->o;
    fprintf(out, "%s%s%s %s %s: %u conns, %u in flight (depth %u)\n", m->label,
            *m->label ? ": " : "", b->client_name, m->backend, o->workload_name, o->conns,
            o->inflight, o->depth);
    fprintf(out,
            "  queries     %" PRIu64 " in %.3f s (%" PRIu64 " errors, %" PRIu64 " rows checked)\n",
            b->done, m->secs, b->errors, b->rows);
    fprintf(out, "  throughput  %.0f queries/s\n", m->qps);
    fprintf(out, "  client CPU  %.2f us/query (user %.3f s, sys %.3f s)\n", m->cpu_us, b->ru_user,
            b->ru_sys);
    fprintf(out, "  latency     mean %.1f us, p50 %.1f, p90 %.1f, p99 %.1f, p99.9 %.1f, max %.1f\n",
            m->mean, m->p50, m->p90, m->p99, m->p999, m->max);
    fprintf(out, "  memory      peak RSS %ld KiB", m->rss);
    if (b->bytes_per_queued >= 0)
        fprintf(out, ", %.0f bytes (evdb) per queued query", b->bytes_per_queued);
    if (b->rss_per_queued >= 0)
        fprintf(out, ", %.0f bytes RSS per queued query", b->rss_per_queued);
    fputc('\n', out);
    if (b->allocs_per_query >= 0)
        fprintf(out, "  allocations %.2f per query (evdb's)\n", b->allocs_per_query);
    if (b->batched)
        fprintf(out, "  batches     %u statements each, one future per batch\n", o->batch);
}

/* Open path for appending; NULL (with a message) on failure. */
static FILE *open_append(const bench *b, const char *path)
{
    FILE *f = fopen(path, "a");
    if (!f)
        fprintf(stderr, "%s: cannot open %s: %s\n", b->client_name, path, strerror(errno));
    return f;
}

int bench_report(bench *b)
{
    const bench_opts *o = b->o;
    summary m;
    summarize(b, &m);
    int rc = b->errors || b->done == 0 ? 1 : 0;

    FILE *out = o->output ? open_append(b, o->output) : stdout;
    if (!out)
        return 1;
    switch (o->format) {
    case BENCH_FMT_CSV:
        write_csv(out, !o->output || file_empty(out), b, &m);
        break;
    case BENCH_FMT_JSON:
        write_json(out, b, &m);
        break;
    default:
        write_text(out, b, &m);
        break;
    }
    if (out != stdout)
        fclose(out);
    else
        fflush(out);
    if (o->csv) {
        FILE *f = open_append(b, o->csv);
        if (!f)
            return 1;
        write_csv(f, file_empty(f), b, &m);
        fclose(f);
    }
    if (o->json) {
        FILE *f = open_append(b, o->json);
        if (!f)
            return 1;
        write_json(f, b, &m);
        fclose(f);
    }
    if (o->cdf) {
        FILE *f = fopen(o->cdf, "w");
        if (!f) {
            fprintf(stderr, "%s: cannot open %s: %s\n", b->client_name, o->cdf, strerror(errno));
            return 1;
        }
        bench_hist_write_cdf(&b->hist, f);
        fclose(f);
    }
    return rc;
}

/* ----------------------------------------------------------- mariadb:// URLs */

static int pct_copy(char *dst, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%' && i + 2 < len) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            c = (char)strtol(hex, NULL, 16);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

int bench_parse_my_url(const char *url, bench_my_url *u)
{
    memset(u, 0, sizeof *u);
    const char *p = strstr(url, "://");
    if (!p)
        return -1;
    p += 3;
    const char *end = p + strcspn(p, "/?");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            if (pct_copy(u->user, sizeof u->user, p, (size_t)(colon - p)) ||
                pct_copy(u->password, sizeof u->password, colon + 1, (size_t)(at - colon - 1)))
                return -1;
        } else if (pct_copy(u->user, sizeof u->user, p, (size_t)(at - p))) {
            return -1;
        }
        p = at + 1;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (colon) {
        if (pct_copy(u->host, sizeof u->host, p, (size_t)(colon - p)))
            return -1;
        u->port = (unsigned)strtoul(colon + 1, NULL, 10);
    } else if (pct_copy(u->host, sizeof u->host, p, (size_t)(end - p))) {
        return -1;
    }
    p = end;
    if (*p == '/') {
        p++;
        size_t n = strcspn(p, "?");
        if (pct_copy(u->db, sizeof u->db, p, n))
            return -1;
        p += n;
    }
    if (*p == '?') {
        const char *s = strstr(p, "unix_socket=");
        if (s) {
            s += strlen("unix_socket=");
            if (pct_copy(u->socket, sizeof u->socket, s, strcspn(s, "&")))
                return -1;
        }
    }
    return 0;
}
