/*
 * evdb-bench-many: batch insert of --rows rows (id, name, price) on one
 * connection, evdb against the raw client library doing the same work:
 *
 *   evdb-atomic    evdb_conn_execute_many, EVDB_MANY_ATOMIC, in batches of
 *                  --batch rows (PostgreSQL: one Sync per batch; MariaDB:
 *                  bulk execution inside a transaction), all submitted at
 *                  once
 *   evdb-per-row   evdb_conn_execute_many, EVDB_MANY_PER_ROW (PostgreSQL:
 *                  pipelined, one Sync per row; MariaDB: one execution per
 *                  row)
 *   evdb-queries   --rows separate evdb_conn_query calls, one callback each
 *   raw-batch      PostgreSQL: libpq pipeline mode, one Sync per --batch
 *                  rows; MariaDB: Connector/C bulk (STMT_ATTR_ARRAY_SIZE)
 *                  of --batch rows inside START TRANSACTION ... COMMIT
 *   raw-each       PostgreSQL: libpq pipeline, one Sync per row; MariaDB:
 *                  one mysql_stmt_execute per row (autocommit)
 *
 * The raw clients are blocking (one connection, nothing else to do: the
 * fastest way to drive it). Each variant runs --runs times after a
 * warm-up, on an emptied table; the median rows/s is printed, and the
 * table's row count is checked after every run.
 *
 *   evdb-bench-many --url postgresql://... [--rows 100000] [--batch 50000]
 *                   [--runs 3] [--variant NAME]
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <evdb.h>

#ifdef BENCH_HAVE_PQ
#include <libpq-fe.h>
#endif
#ifdef BENCH_HAVE_MARIADB
#include <mysql.h>
#endif

#define MAX_RUNS 15
#define ROW_NAME_LEN 32

typedef struct opts {
    const char *url;
    size_t rows, batch;
    int runs;
    const char *only;
    bool pg;
} opts;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "evdb-bench-many: %s: %s\n", what, why);
    exit(1);
}

/* The rows: id 1.., a name, a price. */
static char (*names)[ROW_NAME_LEN];
static evdb_value *params;

static void make_rows(size_t n)
{
    names = malloc(n * sizeof *names);
    params = malloc(3 * n * sizeof *params);
    if (!names || !params)
        die("rows", "out of memory");
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], ROW_NAME_LEN, "item-%zu", i + 1);
        params[3 * i] = evdb_int((int64_t)i + 1);
        params[3 * i + 1] = evdb_text(names[i]);
        params[3 * i + 2] = evdb_double((double)(i % 1000) * 0.25);
    }
}

/* ---- evdb ---- */

static struct ev_loop *loop;
static evdb_conn *conn;

static void evdb_exec(const char *sql)
{
    evdb_future *f = evdb_conn_query(conn, sql, NULL, 0, NULL);
    if (!f || evdb_future_wait(f))
        die(sql, f ? evdb_error_message(evdb_future_error(f)) : "refused");
    evdb_future_unref(f);
}

static int64_t evdb_count(void)
{
    evdb_future *f = evdb_conn_query(conn, "SELECT COUNT(*) FROM many_bench", NULL, 0, NULL);
    int64_t n = -1;
    if (!f || evdb_future_wait(f) || evdb_result_int(evdb_future_result(f), 0, 0, &n))
        die("count", "failed");
    evdb_future_unref(f);
    return n;
}

static const char *insert_sql(const opts *o)
{
    return o->pg ? "INSERT INTO many_bench (id, name, price) VALUES ($1, $2, $3)"
                 : "INSERT INTO many_bench (id, name, price) VALUES (?, ?, ?)";
}

static size_t left;

static void one_done(evdb_future *f, void *arg)
{
    (void)arg;
    if (evdb_future_status(f))
        die("row", evdb_error_message(evdb_future_error(f)));
    left--;
}

/* One run of an evdb variant: seconds. */
static double run_evdb(const opts *o, const char *variant)
{
    size_t n = o->rows;
    double t0 = now();
    if (strcmp(variant, "evdb-queries") == 0) {
        left = n;
        for (size_t i = 0; i < n; i++) {
            evdb_future *f = evdb_conn_query(conn, insert_sql(o), &params[3 * i], 3, NULL);
            if (!f || evdb_future_on_done(f, one_done, NULL))
                die("query", "refused");
            evdb_future_unref(f);
        }
        while (left)
            ev_run(loop, EVRUN_ONCE);
        return now() - t0;
    }
    bool atomic = strcmp(variant, "evdb-atomic") == 0;
    size_t step = atomic ? o->batch : n;
    size_t nf = (n + step - 1) / step;
    evdb_future **fs = calloc(nf, sizeof *fs);
    for (size_t k = 0; k < nf; k++) {
        size_t first = k * step, cnt = n - first < step ? n - first : step;
        fs[k] = evdb_conn_execute_many(conn, insert_sql(o), &params[3 * first], 3, cnt,
                                       atomic ? EVDB_MANY_ATOMIC : EVDB_MANY_PER_ROW, NULL);
        if (!fs[k])
            die("execute_many", evdb_error_message(evdb_last_error()));
    }
    for (size_t k = 0; k < nf; k++) {
        if (evdb_future_wait(fs[k]))
            die("execute_many", evdb_error_message(evdb_future_error(fs[k])));
        const evdb_result *r = evdb_future_result(fs[k]);
        if (!atomic && evdb_many_failed(r))
            die("execute_many", "a row failed");
        evdb_future_unref(fs[k]);
    }
    free(fs);
    return now() - t0;
}

/* ---- raw libpq ---- */

#ifdef BENCH_HAVE_PQ
static double run_raw_pg(const opts *o, bool each)
{
    PGconn *c = PQconnectdb(o->url);
    if (PQstatus(c) != CONNECTION_OK)
        die("libpq connect", PQerrorMessage(c));
    PGresult *r = PQprepare(c, "ins", insert_sql(o), 3, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die("prepare", PQerrorMessage(c));
    PQclear(r);
    char id[24], price[32];
    const char *vals[3] = {id, NULL, price};
    double t0 = now();
    if (!PQenterPipelineMode(c))
        die("pipeline", PQerrorMessage(c));
    size_t syncs = 0;
    for (size_t i = 0; i < o->rows; i++) {
        snprintf(id, sizeof id, "%zu", i + 1);
        vals[1] = names[i];
        snprintf(price, sizeof price, "%.17g", (double)(i % 1000) * 0.25);
        if (!PQsendQueryPrepared(c, "ins", 3, vals, NULL, NULL, 0))
            die("send", PQerrorMessage(c));
        if (each || (i + 1) % o->batch == 0 || i + 1 == o->rows) {
            if (!PQpipelineSync(c))
                die("sync", PQerrorMessage(c));
            syncs++;
        }
    }
    PQflush(c);
    for (size_t got = 0; got < syncs;) {
        r = PQgetResult(c);
        if (!r)
            continue;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC)
            got++;
        else if (st != PGRES_COMMAND_OK)
            die("insert", PQresultErrorMessage(r));
        PQclear(r);
    }
    double t = now() - t0;
    PQexitPipelineMode(c);
    PQfinish(c);
    return t;
}
#endif

/* ---- raw Connector/C ---- */

#ifdef BENCH_HAVE_MARIADB
static MYSQL *my_connect(const char *url)
{
    /* mariadb://user:pw@host:port/db, as the test servers give it. */
    char user[64] = "", pw[64] = "", host[64] = "", db[64] = "";
    unsigned port = 3306;
    if (sscanf(url, "mariadb://%63[^:]:%63[^@]@%63[^:]:%u/%63[^?]", user, pw, host, &port, db) != 5)
        die("url", "expected mariadb://user:password@host:port/db");
    MYSQL *m = mysql_init(NULL);
    if (!mysql_real_connect(m, host, user, pw, db, port, NULL, 0))
        die("connect", mysql_error(m));
    return m;
}

static double run_raw_my(const opts *o, bool each)
{
    MYSQL *m = my_connect(o->url);
    MYSQL_STMT *st = mysql_stmt_init(m);
    const char *sql = insert_sql(o);
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)))
        die("prepare", mysql_stmt_error(st));
    size_t n = o->rows, step = each ? 1 : o->batch;
    long long *ids = malloc(step * sizeof *ids);
    double *prices = malloc(step * sizeof *prices);
    char **nm = malloc(step * sizeof *nm);
    unsigned long *lens = malloc(step * sizeof *lens);
    double t0 = now();
    if (!each && mysql_query(m, "START TRANSACTION"))
        die("begin", mysql_error(m));
    for (size_t first = 0; first < n; first += step) {
        size_t cnt = n - first < step ? n - first : step;
        for (size_t i = 0; i < cnt; i++) {
            ids[i] = (long long)(first + i + 1);
            nm[i] = names[first + i];
            lens[i] = (unsigned long)strlen(nm[i]);
            prices[i] = (double)((first + i) % 1000) * 0.25;
        }
        MYSQL_BIND b[3];
        memset(b, 0, sizeof b);
        b[0].buffer_type = MYSQL_TYPE_LONGLONG;
        b[0].buffer = ids;
        b[1].buffer_type = MYSQL_TYPE_STRING;
        b[2].buffer_type = MYSQL_TYPE_DOUBLE;
        b[2].buffer = prices;
        if (each) {
            b[1].buffer = nm[0];
            b[1].buffer_length = lens[0];
            b[1].length = lens;
        } else {
            unsigned int size = (unsigned int)cnt;
            mysql_stmt_attr_set(st, STMT_ATTR_ARRAY_SIZE, &size);
            b[1].buffer = nm;
            b[1].length = lens;
        }
        if (mysql_stmt_bind_param(st, b) || mysql_stmt_execute(st))
            die("execute", mysql_stmt_error(st));
    }
    if (!each && mysql_query(m, "COMMIT"))
        die("commit", mysql_error(m));
    double t = now() - t0;
    mysql_stmt_close(st);
    mysql_close(m);
    free(ids);
    free(prices);
    free(nm);
    free(lens);
    return t;
}
#endif

static double run_raw(const opts *o, bool each)
{
#ifdef BENCH_HAVE_PQ
    if (o->pg)
        return run_raw_pg(o, each);
#endif
#ifdef BENCH_HAVE_MARIADB
    if (!o->pg)
        return run_raw_my(o, each);
#endif
    (void)each;
    die("raw", "this build has no client library for the URL");
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench(const opts *o, const char *variant)
{
    double t[MAX_RUNS];
    for (int r = -1; r < o->runs; r++) { /* run -1: warm-up */
        evdb_exec("DELETE FROM many_bench");
        double s = strncmp(variant, "raw", 3) == 0 ? run_raw(o, strcmp(variant, "raw-each") == 0)
                                                   : run_evdb(o, variant);
        if (evdb_count() != (int64_t)o->rows)
            die(variant, "the table does not hold every row");
        if (r >= 0)
            t[r] = s;
    }
    qsort(t, (size_t)o->runs, sizeof t[0], cmp_double);
    double med = t[o->runs / 2];
    printf("%-14s %8zu rows  %8.3f s  %10.0f rows/s\n", variant, o->rows, med,
           (double)o->rows / med);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    opts o = {.rows = 100000, .batch = 50000, .runs = 3};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url"))
            o.url = argv[i + 1];
        else if (!strcmp(argv[i], "--rows"))
            o.rows = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--batch"))
            o.batch = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--runs"))
            o.runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--variant"))
            o.only = argv[i + 1];
        else
            die(argv[i], "unknown option");
    }
    if (!o.url || !o.rows || !o.batch || o.batch > EVDB_BATCH_MAX || o.runs < 1 ||
        o.runs > MAX_RUNS)
        die("usage", "--url URL [--rows N] [--batch 1..65535] [--runs 1..15] [--variant NAME]");
    o.pg = strncmp(o.url, "postgres", 8) == 0;
    make_rows(o.rows);
    loop = ev_loop_new(EVFLAG_AUTO);
    evdb_future *f = evdb_conn_open(loop, o.url, NULL);
    if (!f || evdb_future_wait(f))
        die("connect", f ? evdb_error_message(evdb_future_error(f)) : "refused");
    conn = evdb_future_take_conn(f);
    evdb_future_unref(f);
    evdb_exec("DROP TABLE IF EXISTS many_bench");
    evdb_exec(o.pg ? "CREATE TABLE many_bench (id int PRIMARY KEY, name text, price float8)"
                   : "CREATE TABLE many_bench (id int PRIMARY KEY, name varchar(32), price "
                     "double) ENGINE=InnoDB");
    static const char *const variants[] = {"raw-batch", "evdb-atomic", "raw-each", "evdb-per-row",
                                           "evdb-queries"};
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++)
        if (!o.only || !strcmp(o.only, variants[i]))
            bench(&o, variants[i]);
    evdb_exec("DROP TABLE many_bench");
    f = evdb_conn_close(conn);
    evdb_future_wait(f);
    evdb_future_unref(f);
    ev_loop_destroy(loop);
    free(names);
    free(params);
    return 0;
}
