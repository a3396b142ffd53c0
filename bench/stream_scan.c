/*
 * evdb-bench-stream: a streamed scan of N rows (bench/README.md,
 * "Streamed scan"). One client per process, so that the peak RSS it
 * reports is its own:
 *   evdb     evdb_conn_stream, batches to a callback
 *   raw-pg   libpq: PQsendQueryParams + PQsetSingleRowMode, PQgetResult per row
 *   raw-my   Connector/C: mysql_real_query + mysql_use_result, mysql_fetch_row per row
 * Every client reads both columns of every row (the integer parsed, the
 * text's length summed) and checks the count. Prints rows/s, client CPU
 * per row and peak RSS.
 *
 *   evdb-bench-stream --client evdb|raw-pg|raw-my --url URL [--rows N] [--batch N]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <ev.h>
#include <evdb.h>

#ifdef BENCH_HAVE_PQ
#include <libpq-fe.h>
#endif
#ifdef BENCH_HAVE_MARIADB
#include <mysql.h>
#endif

typedef struct scan {
    uint64_t rows, sum, bytes;
} scan;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void sql_for(char *buf, size_t n, const char *url, unsigned long rows)
{
    if (!strncmp(url, "postgres", 8))
        snprintf(buf, n, "SELECT g, 'row-' || g FROM generate_series(1, %lu) g", rows);
    else
        snprintf(buf, n, "SELECT seq, CONCAT('row-', seq) FROM seq_1_to_%lu", rows);
}

/* ---- evdb ---- */

static int on_batch(evdb_stream *s, const evdb_result *b, void *arg)
{
    scan *sc = arg;
    size_t n = evdb_result_nrows(b);
    (void)s;
    for (size_t i = 0; i < n; i++) {
        int64_t v = 0;
        size_t len = 0;
        evdb_result_int(b, i, 0, &v);
        evdb_result_text(b, i, 1, &len);
        sc->sum += (uint64_t)v;
        sc->bytes += len;
    }
    sc->rows += n;
    return EVDB_STREAM_CONTINUE;
}

static int run_evdb(const char *url, const char *sql, size_t batch, scan *sc)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_future *of = evdb_conn_open(loop, url, NULL);
    if (!of || evdb_future_wait(of)) {
        fprintf(stderr, "connect: %s\n", of ? evdb_error_message(evdb_future_error(of)) : "");
        return 1;
    }
    evdb_conn *c = evdb_future_take_conn(of);
    evdb_future_unref(of);
    evdb_stream_opts o;
    memset(&o, 0, sizeof o);
    o.batch_rows = batch;
    o.on_batch = on_batch;
    o.arg = sc;
    evdb_stream *s = evdb_conn_stream(c, sql, NULL, 0, &o);
    int rc = s ? evdb_future_wait(evdb_stream_done(s)) : -1;
    if (rc)
        fprintf(stderr, "stream: %s\n",
                s ? evdb_error_message(evdb_future_error(evdb_stream_done(s)))
                  : evdb_error_message(evdb_last_error()));
    evdb_stream_free(s);
    evdb_future *cf = evdb_conn_close(c);
    evdb_future_wait(cf);
    evdb_future_unref(cf);
    ev_loop_destroy(loop);
    return rc != 0;
}

/* ---- raw libpq ---- */

static int run_raw_pg(const char *url, const char *sql, scan *sc)
{
#ifdef BENCH_HAVE_PQ
    PGconn *pc = PQconnectdb(url);
    if (PQstatus(pc) != CONNECTION_OK) {
        fprintf(stderr, "connect: %s", PQerrorMessage(pc));
        return 1;
    }
    if (!PQsendQueryParams(pc, sql, 0, NULL, NULL, NULL, NULL, 0) || !PQsetSingleRowMode(pc)) {
        fprintf(stderr, "send: %s", PQerrorMessage(pc));
        return 1;
    }
    int bad = 0;
    for (PGresult *r = PQgetResult(pc); r; r = PQgetResult(pc)) {
        if (PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
            sc->sum += (uint64_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            sc->bytes += (uint64_t)PQgetlength(r, 0, 1);
            sc->rows++;
        } else if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "query: %s", PQresultErrorMessage(r));
            bad = 1;
        }
        PQclear(r);
    }
    PQfinish(pc);
    return bad;
#else
    (void)url, (void)sql, (void)sc;
    fprintf(stderr, "built without libpq\n");
    return 1;
#endif
}

/* ---- raw Connector/C ---- */

static int run_raw_my(const char *url, const char *sql, scan *sc)
{
#ifdef BENCH_HAVE_MARIADB
    /* mariadb://user:pw@host:port/db */
    char u[256], *user, *pw, *host, *port, *db;
    snprintf(u, sizeof u, "%s", strstr(url, "://") ? strstr(url, "://") + 3 : url);
    user = u;
    host = strchr(u, '@');
    if (!host)
        return 1;
    *host++ = 0;
    pw = strchr(user, ':');
    if (pw)
        *pw++ = 0;
    db = strchr(host, '/');
    if (db)
        *db++ = 0;
    port = strchr(host, ':');
    if (port)
        *port++ = 0;
    MYSQL *m = mysql_init(NULL);
    if (!mysql_real_connect(m, host, user, pw, db, port ? (unsigned)atoi(port) : 3306, NULL, 0)) {
        fprintf(stderr, "connect: %s\n", mysql_error(m));
        return 1;
    }
    if (mysql_real_query(m, sql, strlen(sql))) {
        fprintf(stderr, "query: %s\n", mysql_error(m));
        return 1;
    }
    MYSQL_RES *res = mysql_use_result(m);
    for (MYSQL_ROW row = mysql_fetch_row(res); row; row = mysql_fetch_row(res)) {
        unsigned long *len = mysql_fetch_lengths(res);
        sc->sum += (uint64_t)strtoll(row[0], NULL, 10);
        sc->bytes += len[1];
        sc->rows++;
    }
    int bad = mysql_errno(m) != 0;
    mysql_free_result(res);
    mysql_close(m);
    return bad;
#else
    (void)url, (void)sql, (void)sc;
    fprintf(stderr, "built without Connector/C\n");
    return 1;
#endif
}

int main(int argc, char **argv)
{
    const char *client = "evdb", *url = NULL;
    unsigned long rows = 1000000;
    size_t batch = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--client"))
            client = argv[i + 1];
        else if (!strcmp(argv[i], "--url"))
            url = argv[i + 1];
        else if (!strcmp(argv[i], "--rows"))
            rows = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--batch"))
            batch = strtoul(argv[i + 1], NULL, 10);
    }
    if (!url) {
        fprintf(stderr, "usage: %s --client evdb|raw-pg|raw-my --url URL [--rows N] [--batch N]\n",
                argv[0]);
        return 2;
    }
    char sql[200];
    sql_for(sql, sizeof sql, url, rows);
    scan sc = {0, 0, 0};
    double t0 = now(), c0 = cpu();
    int rc;
    if (!strcmp(client, "raw-pg"))
        rc = run_raw_pg(url, sql, &sc);
    else if (!strcmp(client, "raw-my"))
        rc = run_raw_my(url, sql, &sc);
    else
        rc = run_evdb(url, sql, batch, &sc);
    double t = now() - t0, c = cpu() - c0;
    uint64_t want_sum = (uint64_t)rows * (rows + 1) / 2;
    if (rc || sc.rows != rows || sc.sum != want_sum) {
        fprintf(stderr, "%s: FAILED (rows %llu of %lu)\n", client, (unsigned long long)sc.rows,
                rows);
        return 1;
    }
    printf("%-6s rows %lu  %.0f rows/s  %.3f us cpu/row  peak_rss %ld kB\n", client, rows,
           (double)rows / t, c * 1e6 / (double)rows, peak_rss_kb());
    return 0;
}
