/*
 * evdb-bench-task: what tasks cost.
 *
 *   evdb-bench-task [--quick] [--queries-only] [POSTGRES_URL] [MARIADB_URL]
 *
 * 1. The raw stack switch (src/task_switch.c, linked in directly): two
 *    contexts switching back and forth, ns per switch. The build makes two
 *    binaries, evdb-bench-task (the hand-written switch) and
 *    evdb-bench-task-ucontext (glibc swapcontext), so both are measured on
 *    the same machine; each first checks that its switch keeps callee-saved
 *    registers, the floating-point rounding mode and stack alignment.
 * 2. Through the public API (the switch libevdb was built with): chains of
 *    evdb_sleep(0) awaited in tasks against the same chains written with
 *    callbacks (the difference is what a task adds per await), yields,
 *    spawn + finish; with server URLs, the same comparison on pooled
 *    queries (64 in flight, client CPU per query).
 * 3. Memory: RSS and kernel mappings for many idle tasks, each suspended in
 *    evdb_await on one gate future (100,000 unguarded, 30,000 guarded: each
 *    guard page costs a mapping and vm.max_map_count is 65530 by default).
 *
 * Built with -DTASK_BENCH_RAW_ONLY it has part 1 only and needs neither evdb
 * nor libev: that is how the aarch64 switch is checked under qemu-aarch64
 * (see the comment at the end of this file).
 */
#include <fenv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "task_switch.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int failures;

#ifndef TASK_BENCH_RAW_ONLY
#include <sys/resource.h>
/* This process's CPU time (user + system): unlike wall time it does not
 * grow when other processes share the cores, and the servers' work is not
 * in it. */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}
#endif
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAILED: " __VA_ARGS__);                                                        \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* ---- 1. the raw switch ---- */

static evdb__ctx main_ctx, co_ctx;
static volatile uint64_t co_count;

static void co_spin(void *arg)
{
    (void)arg;
    for (;;) {
        co_count++;
        evdb__ctx_switch(&co_ctx, &main_ctx);
    }
}

/* Many values live across the switch: the compiler keeps them in
 * callee-saved registers, which the other side clobbers with its own. */
static volatile uint64_t sink;
static __attribute__((noinline)) uint64_t busy_across_switch(uint64_t seed, evdb__ctx *self,
                                                             evdb__ctx *other)
{
    uint64_t a = seed * 3, b = seed * 5, c = seed * 7, d = seed * 11, e = seed * 13, f = seed * 17,
             g = seed * 19, h = seed * 23, i = seed * 29, j = seed * 31;
    double x = (double)seed * 0.5, y = (double)seed * 0.25;
    evdb__ctx_switch(self, other);
    sink = a;
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i + 10 * j +
           (uint64_t)(x * 4) + (uint64_t)(y * 8);
}

static uint64_t expected(uint64_t seed)
{
    return seed *
               (3 + 2 * 5 + 3 * 7 + 4 * 11 + 5 * 13 + 6 * 17 + 7 * 19 + 8 * 23 + 9 * 29 + 10 * 31) +
           seed * 2 + seed * 2;
}

static int co_round_ok, co_align_ok;
static char co_text[64];

static void co_check(void *arg)
{
    (void)arg;
    /* A varargs call with a double: misaligned stacks crash here (movaps). */
    snprintf(co_text, sizeof co_text, "%.3f", 2.5);
    co_align_ok = ((uintptr_t)__builtin_frame_address(0) & 15) == 0;
    fesetround(FE_UPWARD);
    for (uint64_t k = 1;; k++) {
        uint64_t v = busy_across_switch(k * 1000, &co_ctx, &main_ctx);
        if (v != expected(k * 1000))
            co_round_ok = -1;
        if (fegetround() != FE_UPWARD)
            co_round_ok = -1;
        else if (co_round_ok == 0)
            co_round_ok = 1;
    }
}

static void *map_stack(size_t size)
{
    void *p =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void raw_switch(long iterations)
{
    enum { STACK = 64 * 1024 };
    void *stack = map_stack(STACK);
    if (!stack) {
        perror("mmap");
        exit(1);
    }
    /* Correctness first. */
    evdb__ctx_make(&co_ctx, stack, STACK, co_check, NULL);
    fesetround(FE_TONEAREST);
    for (uint64_t k = 1; k <= 1000; k++) {
        uint64_t v = busy_across_switch(k * 7, &main_ctx, &co_ctx);
        CHECK(v == expected(k * 7), "callee-saved registers lost (round %llu)",
              (unsigned long long)k);
        CHECK(fegetround() == FE_TONEAREST, "the task's rounding mode leaked out");
    }
    CHECK(co_round_ok == 1, "rounding mode or registers not kept inside the context");
    CHECK(strcmp(co_text, "2.500") == 0, "snprintf on the context's stack: \"%s\"", co_text);
    CHECK(co_align_ok, "stack misaligned");

    /* Then speed: a fresh context that only counts. */
    evdb__ctx_make(&co_ctx, stack, STACK, co_spin, NULL);
    /* The minimum over many short batches: other processes on a busy
     * machine only ever make a batch slower. */
    long batch = iterations < 100000 ? iterations : 100000;
    long batches = iterations / batch;
    for (long i = 0; i < batch; i++)
        evdb__ctx_switch(&main_ctx, &co_ctx);
    double best = 1e9;
    for (long b = 0; b < batches; b++) {
        double t0 = now();
        for (long i = 0; i < batch; i++)
            evdb__ctx_switch(&main_ctx, &co_ctx);
        double ns = (now() - t0) * 1e9 / (2.0 * batch);
        if (ns < best)
            best = ns;
    }
    CHECK(co_count == (uint64_t)((batches + 1) * batch), "lost switches");
    printf("raw switch (%s): %.1f ns per switch (best of %ld batches of %ld round trips)\n",
           evdb__ctx_impl(), best, batches, batch);
    munmap(stack, STACK);
}

#ifndef TASK_BENCH_RAW_ONLY

#include <ev.h>
#include <evdb.h>

/* ---- 2. the public API ---- */

typedef struct chains {
    struct ev_loop *loop;
    long steps_left;
    long done;
} chains;

static void cb_step(evdb_future *f, void *arg);

static void cb_next(chains *c)
{
    if (c->steps_left <= 0)
        return;
    c->steps_left--;
    evdb_future *s = evdb_sleep(c->loop, 0);
    evdb_future_on_done(s, cb_step, c);
    evdb_future_unref(s);
}

static void cb_step(evdb_future *f, void *arg)
{
    (void)f;
    chains *c = arg;
    c->done++;
    cb_next(c);
}

static void *task_chain(void *arg)
{
    chains *c = arg;
    while (c->steps_left > 0) {
        c->steps_left--;
        evdb_future *s = evdb_sleep(c->loop, 0);
        evdb_await(s);
        evdb_future_unref(s);
        c->done++;
    }
    return NULL;
}

/* CPU ns per step of `width` concurrent sleep(0) chains, `steps` steps in
 * all. */
static double run_chains(bool tasks, int width, long steps)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    chains c = {loop, steps, 0};
    evdb_future **ts = calloc((size_t)width, sizeof *ts);
    double t0 = cpu_now();
    for (int i = 0; i < width; i++) {
        if (tasks)
            ts[i] = evdb_task_spawn(loop, task_chain, &c, NULL);
        else
            cb_next(&c);
    }
    ev_run(loop, 0);
    double ns = (cpu_now() - t0) * 1e9 / (double)c.done;
    for (int i = 0; i < width; i++)
        evdb_future_unref(ts[i]);
    free(ts);
    ev_loop_destroy(loop);
    return ns;
}

static void *yielder(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++)
        evdb_task_yield();
    return NULL;
}

static void *nothing(void *arg)
{
    return arg;
}

static void api_costs(long steps)
{
    enum { WIDTH = 64, RUNS = 3 };
    double cb = 1e9, tk = 1e9;
    run_chains(false, WIDTH, steps / 10); /* warm up */
    run_chains(true, WIDTH, steps / 10);
    for (int r = 0; r < RUNS; r++) { /* interleaved, best of each */
        double a = run_chains(false, WIDTH, steps);
        double b = run_chains(true, WIDTH, steps);
        cb = a < cb ? a : cb;
        tk = b < tk ? b : tk;
    }
    printf("sleep(0) chains, %d concurrent, %ld steps: callbacks %.0f ns/step, tasks %.0f "
           "ns/step (CPU; +%.0f ns per await, %+.1f%%)\n",
           WIDTH, steps, cb, tk, tk - cb, (tk - cb) / cb * 100);

    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    long n = steps;
    double t0 = now();
    evdb_future *y = evdb_task_spawn(loop, yielder, &n, NULL);
    evdb_future_wait(y);
    printf("evdb_task_yield: %.0f ns per yield (queue + loop pass + 2 switches)\n",
           (now() - t0) * 1e9 / (double)n);
    evdb_future_unref(y);

    long spawns = steps / 10;
    t0 = now();
    for (long i = 0; i < spawns; i++) {
        evdb_future *t = evdb_task_spawn(loop, nothing, NULL, NULL);
        evdb_future_wait(t);
        evdb_future_unref(t);
    }
    double spawn_ns = (now() - t0) * 1e9 / (double)spawns;
    t0 = now();
    for (long i = 0; i < spawns; i++) {
        evdb_future *f = evdb_sleep(loop, 0);
        evdb_future_wait(f);
        evdb_future_unref(f);
    }
    double sleep_ns = (now() - t0) * 1e9 / (double)spawns;
    printf("spawn + run + finish + wait (cached stack): %.0f ns; evdb_sleep(0) + wait for "
           "comparison: %.0f ns\n",
           spawn_ns, sleep_ns);
    ev_loop_destroy(loop);
}

/* The same with pooled queries on a real server: what a task costs per
 * query, against the same chains written with callbacks. */
typedef struct qchains {
    evdb_pool *pool;
    const char *sql;
    long left, done, bad;
} qchains;

static void q_step(evdb_future *f, void *arg);

static void q_next(qchains *c)
{
    if (c->left <= 0)
        return;
    evdb_value v = evdb_int(c->left--);
    evdb_future *q = evdb_pool_query(c->pool, c->sql, &v, 1, NULL);
    evdb_future_on_done(q, q_step, c);
    evdb_future_unref(q);
}

static void q_step(evdb_future *f, void *arg)
{
    qchains *c = arg;
    c->bad += evdb_future_status(f) != 0;
    c->done++;
    q_next(c);
}

static void *q_task(void *arg)
{
    qchains *c = arg;
    while (c->left > 0) {
        evdb_value v = evdb_int(c->left--);
        evdb_future *q = evdb_pool_query(c->pool, c->sql, &v, 1, NULL);
        c->bad += evdb_await(q) != 0;
        evdb_future_unref(q);
        c->done++;
    }
    return NULL;
}

static void run_queries(struct ev_loop *loop, evdb_pool *pool, const char *sql, bool tasks,
                        int width, long n, double *cpu_us, double *qps)
{
    qchains c = {pool, sql, n, 0, 0};
    evdb_future **ts = calloc((size_t)width, sizeof *ts);
    double w0 = now(), c0 = cpu_now();
    for (int i = 0; i < width; i++) {
        if (tasks)
            ts[i] = evdb_task_spawn(loop, q_task, &c, NULL);
        else
            q_next(&c);
    }
    while (c.done < n)
        ev_run(loop, EVRUN_ONCE);
    *cpu_us = (cpu_now() - c0) * 1e6 / (double)n;
    *qps = (double)n / (now() - w0);
    for (int i = 0; i < width; i++)
        evdb_future_unref(ts[i]);
    free(ts);
    CHECK(c.bad == 0, "%ld queries failed", c.bad);
}

static void query_costs(const char *url, long n)
{
    enum { WIDTH = 64, RUNS = 3 };
    bool my = url[0] == 'm';
    const char *sql = my ? "SELECT ? + 1" : "SELECT $1::int + 1";
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool_opts po = {.max_conns = 8};
    evdb_pool *pool = evdb_pool_new(loop, url, &po);
    if (!pool) {
        printf("pool: %s\n", evdb_error_message(evdb_last_error()));
        failures++;
        return;
    }
    double cpu, qps, best_cb = 1e9, best_tk = 1e9, qps_cb = 0, qps_tk = 0;
    run_queries(loop, pool, sql, false, WIDTH, n / 10, &cpu, &qps); /* warm up, open all */
    run_queries(loop, pool, sql, true, WIDTH, n / 10, &cpu, &qps);
    for (int r = 0; r < RUNS; r++) {
        run_queries(loop, pool, sql, false, WIDTH, n, &cpu, &qps);
        if (cpu < best_cb) {
            best_cb = cpu;
            qps_cb = qps;
        }
        run_queries(loop, pool, sql, true, WIDTH, n, &cpu, &qps);
        if (cpu < best_tk) {
            best_tk = cpu;
            qps_tk = qps;
        }
    }
    printf("%s pooled queries, %d in flight, %ld per run: callbacks %.2f us CPU/query "
           "(%.0f q/s), tasks %.2f us CPU/query (%.0f q/s): tasks %+.1f%% CPU\n",
           my ? "mariadb" : "postgres", WIDTH, n, best_cb, qps_cb, best_tk, qps_tk,
           (best_tk - best_cb) / best_cb * 100);
    evdb_future *closed = evdb_pool_close(pool);
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
}

/* ---- 3. memory ---- */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int ch;
    if (!f)
        return -1;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

typedef struct idle {
    evdb_future *gate;
} idle;

static void *idle_task(void *arg)
{
    idle *i = arg;
    evdb_await(i->gate);
    return NULL;
}

static void idle_memory(int n, unsigned flags)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    idle st = {evdb_future_new(loop)};
    evdb_future **ts = calloc((size_t)n, sizeof *ts);
    evdb_task_opts o = {.flags = flags};
    long rss0 = rss_kib(), maps0 = mappings();
    int made = 0;
    for (; made < n; made++) {
        ts[made] = evdb_task_spawn(loop, idle_task, &st, &o);
        if (!ts[made]) {
            printf("  spawn %d failed: %s\n", made, evdb_error_message(evdb_last_error()));
            break;
        }
    }
    ev_run(loop, EVRUN_NOWAIT); /* start them all: each suspends on the gate */
    long rss1 = rss_kib(), maps1 = mappings();
    printf("%d idle tasks (%s, %zu KiB stacks): RSS +%ld KiB = %.0f bytes per task, "
           "+%ld kernel mappings\n",
           made, flags & EVDB_TASK_NO_GUARD ? "unguarded" : "guarded",
           (size_t)EVDB_TASK_STACK_DEFAULT / 1024, rss1 - rss0,
           (double)(rss1 - rss0) * 1024 / (made ? made : 1), maps1 - maps0);
    evdb_future_resolve(st.gate, NULL, NULL);
    evdb_future *all = evdb_gather(ts, (size_t)made, 0);
    evdb_future_wait(all);
    evdb_future_unref(all);
    for (int i = 0; i < made; i++)
        evdb_future_unref(ts[i]);
    free(ts);
    evdb_future_unref(st.gate);
    ev_loop_destroy(loop);
}

#endif /* TASK_BENCH_RAW_ONLY */

int main(int argc, char **argv)
{
    bool quick = false, queries_only = false;
    const char *urls[2] = {NULL, NULL};
    size_t nurls = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--queries-only") == 0)
            queries_only = true;
        else if (nurls < 2)
            urls[nurls++] = argv[i];
    }
#ifdef TASK_BENCH_RAW_ONLY
    (void)urls;
    (void)queries_only;
    raw_switch(quick ? 10000 : 20000000);
#else
    if (!queries_only) {
        raw_switch(quick ? 10000 : 20000000);
        api_costs(quick ? 10000 : 1000000);
    }
    for (size_t i = 0; i < nurls; i++)
        query_costs(urls[i], quick ? 2000 : 100000);
    if (!queries_only) {
        idle_memory(quick ? 1000 : 100000, EVDB_TASK_NO_GUARD);
        idle_memory(quick ? 1000 : 30000, 0);
    }
#endif
    if (failures)
        printf("%d check(s) FAILED\n", failures);
    return failures ? 1 : 0;
}

/*
 * The aarch64 switch, checked on x86-64 (Debian: gcc-aarch64-linux-gnu,
 * qemu-user):
 *   aarch64-linux-gnu-gcc -O2 -static -DTASK_BENCH_RAW_ONLY -Isrc \
 *       bench/task_bench.c src/task_switch.c -lm -o /tmp/tb-a64
 *   qemu-aarch64 /tmp/tb-a64 --quick
 */
