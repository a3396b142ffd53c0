/*
 * evdb-bench-borrow: what a borrow costs. One client in a loop of
 * acquire + 5 parameterized statements (each awaited, as an interactive
 * transaction would) + release, on a pool of one connection, so every
 * borrow pays the reset of the one before. Reports borrows/s, wall and
 * client CPU time per borrow, and (MariaDB) the statements the server
 * prepared meanwhile (Com_stmt_prepare). With a local server, also the
 * server's CPU time per borrow: PostgreSQL's backend process of the
 * connection, or the process whose pid is in BORROW_SERVER_PID (mysqld).
 *
 *   evdb-bench-borrow URL [N] [--held [CLEANUP_SQL]]
 *
 * --held: the same statements on one connection held throughout, without
 * the pool; CLEANUP_SQL (if given) runs after each group of 5 instead of
 * the pool's reset. It prices a hand-written clean-up against the pool's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <evdb.h>

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

/* utime + stime of process pid in seconds, or -1 when unreadable. */
static double proc_cpu(long long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%lld/stat", pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void die(const char *what, evdb_future *f)
{
    fprintf(stderr, "%s: %s\n", what,
            f ? evdb_error_message(evdb_future_error(f)) : evdb_error_message(evdb_last_error()));
    exit(1);
}

/* Wait for f, exit on failure; returns f. */
static evdb_future *ok(const char *what, evdb_future *f)
{
    if (!f)
        die(what, NULL);
    if (evdb_future_wait(f) != 0)
        die(what, f);
    return f;
}

static const char *const pg_sql[5] = {"SELECT $1::int + 1", "SELECT $1::int * 2",
                                      "SELECT $1::int - 1", "SELECT $1::text || 'x'",
                                      "SELECT $1::int % 7"};
static const char *const my_sql[5] = {"SELECT ? + 1", "SELECT ? * 2", "SELECT ? - 1",
                                      "SELECT CONCAT(?, 'x')", "SELECT ? % 7"};

/* Run the 5 statements on c, checking the first answer. */
static void five(evdb_conn *c, const char *const *sql, int i)
{
    for (int k = 0; k < 5; k++) {
        evdb_value v = evdb_int(i);
        evdb_future *f = ok(sql[k], evdb_conn_query(c, sql[k], &v, 1, NULL));
        if (k == 0) {
            int64_t got = 0;
            if (evdb_result_int(evdb_future_result(f), 0, 0, &got) || got != i + 1) {
                fprintf(stderr, "wrong answer\n");
                exit(1);
            }
        }
        evdb_future_unref(f);
    }
}

/* MariaDB's server-wide prepare counter, or -1 (PostgreSQL). */
static long long prepares(struct ev_loop *loop, const char *url)
{
    if (strncmp(url, "mariadb:", 8) && strncmp(url, "mysql:", 6))
        return -1;
    evdb_future *o = ok("open", evdb_conn_open(loop, url, NULL));
    evdb_conn *c = evdb_future_take_conn(o);
    evdb_future_unref(o);
    evdb_future *f =
        ok("status", evdb_conn_query(c, "SHOW GLOBAL STATUS LIKE 'Com_stmt_prepare'", NULL, 0,
                                     &(evdb_query_opts){.flags = EVDB_QUERY_NO_CACHE}));
    long long n = atoll(evdb_result_text(evdb_future_result(f), 0, 1, NULL));
    evdb_future_unref(f);
    evdb_future_unref(evdb_conn_close(c));
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [N] [--held [CLEANUP_SQL]]\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 5000;
    bool held = argc > 3 && !strcmp(argv[3], "--held");
    const char *cleanup = held && argc > 4 ? argv[4] : NULL;
    const char *const *sql = strncmp(url, "postgres", 8) ? my_sql : pg_sql;
    struct ev_loop *loop = ev_default_loop(0);
    int warm = n / 10 + 1;

    evdb_pool *p = NULL;
    evdb_conn *c = NULL;
    if (held) {
        evdb_future *o = ok("open", evdb_conn_open(loop, url, NULL));
        c = evdb_future_take_conn(o);
        evdb_future_unref(o);
    } else {
        evdb_pool_opts po = {.max_conns = 1, .min_conns = 1};
        p = evdb_pool_new(loop, url, &po);
        if (!p)
            die("pool", NULL);
    }
    long long prep0 = 0,
              spid = getenv("BORROW_SERVER_PID") ? atoll(getenv("BORROW_SERVER_PID")) : 0;
    double t0 = 0, c0 = 0, s0 = -1;
    for (int i = -warm; i < n; i++) {
        if (i == 0) {
            prep0 = prepares(loop, url);
            t0 = now();
            c0 = cpu();
            if (!spid && !strncmp(url, "postgres", 8)) {
                if (held) {
                    spid = evdb_conn_server_id(c);
                } else {
                    evdb_future *a = ok("acquire", evdb_pool_acquire(p, 5));
                    evdb_conn *b = evdb_future_take_conn(a);
                    spid = evdb_conn_server_id(b);
                    evdb_conn_release(b);
                    evdb_future_unref(a);
                }
            }
            s0 = spid ? proc_cpu(spid) : -1;
        }
        if (held) {
            five(c, sql, i);
            if (cleanup)
                evdb_future_unref(ok("cleanup", evdb_conn_query(c, cleanup, NULL, 0, NULL)));
        } else {
            evdb_future *a = ok("acquire", evdb_pool_acquire(p, 5));
            evdb_conn *b = evdb_future_take_conn(a);
            evdb_future_unref(a);
            five(b, sql, i);
            evdb_conn_release(b);
        }
    }
    double wall = now() - t0, used = cpu() - c0;
    double s1 = s0 >= 0 ? proc_cpu(spid) : -1;
    long long prep1 = prepares(loop, url);
    printf("%s: %d borrows, %.0f borrows/s, %.1f us wall and %.1f us client CPU per borrow",
           held ? (cleanup ? "held+cleanup" : "held") : "pool", n, n / wall, wall / n * 1e6,
           used / n * 1e6);
    if (s0 >= 0 && s1 >= 0)
        printf(", %.1f us server CPU", (s1 - s0) / n * 1e6);
    if (prep0 >= 0)
        printf(", %.2f server prepares per borrow", (double)(prep1 - prep0) / n);
    printf("\n");
    if (p) {
        evdb_pool_stats st;
        evdb_pool_stats_get(p, &st);
        printf("pool: resets %llu, discarded %llu\n", (unsigned long long)st.resets,
               (unsigned long long)st.discarded);
        evdb_future *cf = evdb_pool_close(p);
        evdb_future_wait(cf);
        evdb_future_unref(cf);
    } else {
        evdb_future *cf = evdb_conn_close(c);
        evdb_future_wait(cf);
        evdb_future_unref(cf);
    }
    return 0;
}
