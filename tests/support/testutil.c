#include "testutil.h"

#include <check.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static ev_timer watchdog;
static double watchdog_seconds;
static size_t allocs_at_start;

static void on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    ck_abort_msg("watchdog: the test did not finish within %g s", watchdog_seconds);
}

struct ev_loop *t_loop_new(double seconds)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    ck_assert_ptr_nonnull(loop);
    watchdog_seconds = seconds;
    ev_timer_init(&watchdog, on_watchdog, seconds, 0.);
    ev_timer_start(loop, &watchdog);
    /* The watchdog alone must not keep the loop running. */
    ev_unref(loop);
    allocs_at_start = evdb__alloc_live();
    return loop;
}

void t_loop_free(struct ev_loop *loop)
{
    /* Let deferred work (closing connections, last callbacks) finish. */
    t_run_for(loop, 0.05);
    ck_assert_uint_eq(evdb__future_live(), 0);
    ck_assert_uint_eq(evdb__loop_live(), 0);
    ev_ref(loop);
    ev_timer_stop(loop, &watchdog);
    /* Nothing of evdb's may remain active on the loop. */
    ck_assert_int_eq(ev_run(loop, EVRUN_NOWAIT), 0);
    ck_assert_uint_eq(evdb__alloc_live(), allocs_at_start);
    ev_loop_destroy(loop);
}

int t_wait(evdb_future *f)
{
    return evdb_future_wait(f);
}

static void on_stop(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ONE);
}

void t_run_for(struct ev_loop *loop, double seconds)
{
    ev_timer stop;
    ev_timer_init(&stop, on_stop, seconds, 0.);
    ev_timer_start(loop, &stop);
    ev_unref(loop);
    ev_run(loop, 0);
    ev_ref(loop);
    ev_timer_stop(loop, &stop);
}

static size_t fail_at, count;

static void *t_malloc(size_t n)
{
    if (fail_at && ++count >= fail_at)
        return NULL;
    return malloc(n);
}

static void *t_realloc(void *p, size_t n)
{
    if (fail_at && ++count >= fail_at)
        return NULL;
    return realloc(p, n);
}

void t_alloc_fail_at(size_t nth)
{
    fail_at = nth;
    count = 0;
    if (nth)
        evdb_set_allocators(t_malloc, t_realloc, free);
    else
        evdb_set_allocators(NULL, NULL, NULL);
}

size_t t_alloc_count(void)
{
    return count;
}

static size_t held, held_base, held_peak;

static void *bytes_malloc(size_t n)
{
    void *p = malloc(n);
    if (p) {
        held += malloc_usable_size(p);
        if (held > held_peak)
            held_peak = held;
    }
    return p;
}

static void *bytes_realloc(void *old, size_t n)
{
    size_t before = old ? malloc_usable_size(old) : 0;
    void *p = realloc(old, n);
    if (p) {
        held = held - before + malloc_usable_size(p);
        if (held > held_peak)
            held_peak = held;
    }
    return p;
}

static void bytes_free(void *p)
{
    if (p)
        held -= malloc_usable_size(p);
    free(p);
}

void t_bytes_track(void)
{
    evdb_set_allocators(bytes_malloc, bytes_realloc, bytes_free);
}

void t_bytes_peak_reset(void)
{
    held_base = held_peak = held;
}

size_t t_bytes_peak(void)
{
    return held_peak - held_base;
}

double t_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int t_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int t_testdb(const char *dir, const char *command, const char *log)
{
    if (!dir)
        dir = getenv("EVDB_TESTDB_DIR");
    if (!dir || !*dir)
        return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "setsid -w %s/scripts/testdb %s --dir '%s' >'%s' 2>&1",
             EVDB_TEST_SOURCE_DIR, command, dir, log ? log : "/dev/null");
    return system(cmd);
}

static int stderr_file = -1, stderr_saved = -1;

void t_stderr_begin(void)
{
    char path[] = "/tmp/evdb-stderr-XXXXXX";
    stderr_file = mkstemp(path);
    ck_assert_int_ge(stderr_file, 0);
    unlink(path);
    fflush(stderr);
    stderr_saved = dup(STDERR_FILENO);
    ck_assert_int_ge(stderr_saved, 0);
    ck_assert_int_ge(dup2(stderr_file, STDERR_FILENO), 0);
}

const char *t_stderr_end(char *buf, size_t cap)
{
    fflush(stderr);
    ck_assert_int_ge(dup2(stderr_saved, STDERR_FILENO), 0);
    close(stderr_saved);
    ssize_t n = pread(stderr_file, buf, cap - 1, 0);
    close(stderr_file);
    stderr_file = stderr_saved = -1;
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

void t_expect_in_order(const char *text, const char *const *want, size_t n)
{
    const char *at = text;
    for (size_t i = 0; i < n; i++) {
        const char *hit = strstr(at, want[i]);
        ck_assert_msg(hit, "no \"%s\" in order in:\n%s", want[i], text);
        at = hit + 1;
    }
}
