/*
 * Helpers every Check suite uses: a fresh loop per test with a watchdog,
 * a teardown check that nothing leaked, and allocation-failure injection.
 */
#ifndef EVDB_TEST_TESTUTIL_H
#define EVDB_TEST_TESTUTIL_H

#include <ev.h>
#include <stddef.h>

#include <evdb.h>

/* ev_loop_new (never the default loop, which reaps child processes) plus a
 * watchdog timer that fails the test after watchdog_seconds. Records the
 * live allocation count so t_loop_free can check it came back. */
struct ev_loop *t_loop_new(double watchdog_seconds);

/* Assert nothing leaked: no live futures, no evdb state left on the loop,
 * no active watchers besides the watchdog, allocations back to what they
 * were at t_loop_new. Then destroy the loop. */
void t_loop_free(struct ev_loop *loop);

/* evdb_future_wait, for brevity. */
int t_wait(evdb_future *f);

/* Run the loop until it has nothing left to do, or seconds pass. */
void t_run_for(struct ev_loop *loop, double seconds);

/* Allocation-failure injection through evdb_set_allocators: the nth
 * allocation from now (1-based) and every one after it fail; 0 turns it
 * off. t_alloc_count() counts allocations since the last t_alloc_fail_at. */
void t_alloc_fail_at(size_t nth);
size_t t_alloc_count(void);

/* Byte accounting through evdb_set_allocators: t_bytes_track() routes
 * evdb's allocations through hooks that count the bytes it holds
 * (malloc_usable_size, so blocks allocated before are fine);
 * t_bytes_peak_reset() starts a new peak from what is held now;
 * t_bytes_peak() is the most held since then, above that start. */
void t_bytes_track(void);
void t_bytes_peak_reset(void);
size_t t_bytes_peak(void);

/* AddressSanitizer builds keep freed memory in quarantine (resident), so
 * tests that bound the process's resident memory skip that part there. */
#if defined(__SANITIZE_ADDRESS__)
#define T_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_UNDER_ASAN 1
#endif
#endif
#ifndef T_UNDER_ASAN
#define T_UNDER_ASAN 0
#endif

/* Run a suite with CK_ENV verbosity (fork mode unless CK_FORK=no), free
 * it, and return the process exit status: failures make it non-zero.
 * Check's summary line ("100%: Checks: N, ...") ends the output. */
struct Suite;
int t_run_suite(struct Suite *s);

/* Run scripts/testdb COMMAND --dir DIR in a session of its own (Check
 * kills the test's process group when the test ends, and a server started
 * from here would go with it), its output to log (NULL: discarded). dir
 * NULL means the suite's own servers ($EVDB_TESTDB_DIR). Returns system()'s
 * status, or -1 when dir is NULL and there is no EVDB_TESTDB_DIR (the suite
 * was pointed at servers by hand). */
int t_testdb(const char *dir, const char *command, const char *log);

/* Monotonic seconds. */
double t_now(void);

/* Send what this process writes to stderr into a temporary file until
 * t_stderr_end, which restores stderr and returns what was written (at
 * most cap - 1 bytes, NUL-terminated, into buf). For tests of what the
 * library prints (state tracing). Not nestable. */
void t_stderr_begin(void);
const char *t_stderr_end(char *buf, size_t cap);
/* Assert that text holds each of the n strings of want, in that order. */
void t_expect_in_order(const char *text, const char *const *want, size_t n);

#endif
