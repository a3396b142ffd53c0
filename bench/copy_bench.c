/*
 * evdb-bench-copy: bulk loading through evdb (bench/copy_run runs it
 * beside psql's \copy of the same file; see bench/README.md, "COPY").
 *
 *   evdb-bench-copy URL copy FILE      COPY copy_bench FROM STDIN, FILE's
 *                                      bytes in 64 KiB writes
 *   evdb-bench-copy URL insert FILE N  the first N rows of FILE as single
 *                                      INSERTs with parameters, pipelined
 *                                      (256 in flight, one Sync each)
 *
 * Prints "<mode> rows=<n> seconds=<s> rows_per_s=<r>". The table is
 * truncated first; the load is checked by counting rows afterwards.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <evdb.h>

#define WRITE_SIZE (64 * 1024)
#define INFLIGHT 256

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const evdb_error *e)
{
    fprintf(stderr, "evdb-bench-copy: %s: %s\n", what, e ? evdb_error_message(e) : "failed");
    exit(1);
}

static void exec(evdb_conn *c, const char *sql)
{
    evdb_future *f = evdb_conn_query(c, sql, NULL, 0, NULL);
    if (!f || evdb_future_wait(f) != 0)
        die(sql, f ? evdb_future_error(f) : evdb_last_error());
    evdb_future_unref(f);
}

static int64_t count_rows(evdb_conn *c)
{
    evdb_future *f = evdb_conn_query(c, "SELECT count(*) FROM copy_bench", NULL, 0, NULL);
    int64_t n = -1;
    if (!f || evdb_future_wait(f) != 0 || evdb_result_int(evdb_future_result(f), 0, 0, &n) != 0)
        die("count", f ? evdb_future_error(f) : evdb_last_error());
    evdb_future_unref(f);
    return n;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        exit(1);
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        perror(path);
        exit(1);
    }
    fclose(fp);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static int64_t run_copy(evdb_conn *c, const char *data, size_t len)
{
    evdb_copy *cp = evdb_copy_in(c, "COPY copy_bench FROM STDIN", NULL);
    if (!cp)
        die("evdb_copy_in", evdb_last_error());
    for (size_t off = 0; off < len;) {
        size_t n = len - off < WRITE_SIZE ? len - off : WRITE_SIZE;
        int rc = evdb_copy_write(cp, data + off, n);
        if (rc == EVDB_EBUSY) {
            evdb_future *w = evdb_copy_writable(cp);
            if (!w || evdb_future_wait(w) != 0)
                die("writable", w ? evdb_future_error(w) : evdb_last_error());
            evdb_future_unref(w);
            continue;
        }
        if (rc)
            die("evdb_copy_write", evdb_last_error());
        off += n;
    }
    evdb_future *f = evdb_copy_end(cp);
    if (!f || evdb_future_wait(f) != 0)
        die("copy", f ? evdb_future_error(f) : evdb_last_error());
    int64_t rows = evdb_result_affected(evdb_future_result(f));
    evdb_future_unref(f);
    evdb_copy_free(cp);
    return rows;
}

/* One INSERT per row, INFLIGHT at a time. */
static int64_t run_insert(evdb_conn *c, char *data, long limit)
{
    evdb_future *ring[INFLIGHT] = {0};
    int64_t rows = 0;
    char *save = NULL;
    for (char *line = strtok_r(data, "\n", &save); line && rows < limit;
         line = strtok_r(NULL, "\n", &save)) {
        char *name = strchr(line, '\t');
        char *v = name ? strchr(name + 1, '\t') : NULL;
        if (!v)
            die("bad line", NULL);
        *name++ = '\0';
        *v++ = '\0';
        evdb_value p[3] = {evdb_int(atoll(line)), evdb_text(name), evdb_double(atof(v))};
        evdb_future **slot = &ring[rows % INFLIGHT];
        if (*slot) {
            if (evdb_future_wait(*slot) != 0)
                die("insert", evdb_future_error(*slot));
            evdb_future_unref(*slot);
        }
        *slot = evdb_conn_query(c, "INSERT INTO copy_bench VALUES ($1, $2, $3)", p, 3, NULL);
        if (!*slot)
            die("evdb_conn_query", evdb_last_error());
        rows++;
    }
    for (int i = 0; i < INFLIGHT; i++) {
        if (ring[i] && evdb_future_wait(ring[i]) != 0)
            die("insert", evdb_future_error(ring[i]));
        evdb_future_unref(ring[i]);
    }
    return rows;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[2], "copy") && strcmp(argv[2], "insert"))) {
        fprintf(stderr, "usage: evdb-bench-copy URL copy|insert FILE [ROWS]\n");
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_future *of = evdb_conn_open(loop, argv[1], NULL);
    if (!of || evdb_future_wait(of) != 0)
        die("connect", of ? evdb_future_error(of) : evdb_last_error());
    evdb_conn *c = evdb_future_take_conn(of);
    evdb_future_unref(of);
    exec(c, "CREATE TABLE IF NOT EXISTS copy_bench (id int, name text, v float8)");
    exec(c, "TRUNCATE copy_bench");
    size_t len;
    char *data = read_file(argv[3], &len);
    double t0 = now();
    int64_t rows = !strcmp(argv[2], "copy")
                       ? run_copy(c, data, len)
                       : run_insert(c, data, argc > 4 ? atol(argv[4]) : 1000000000L);
    double secs = now() - t0;
    if (count_rows(c) != rows)
        die("row count differs", NULL);
    printf("%s rows=%lld seconds=%.3f rows_per_s=%.0f\n", argv[2], (long long)rows, secs,
           (double)rows / secs);
    free(data);
    evdb_future *cf = evdb_conn_close(c);
    evdb_future_wait(cf);
    evdb_future_unref(cf);
    ev_loop_destroy(loop);
    return 0;
}
