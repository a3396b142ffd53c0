/*
 * Unit tests of the listener core (src/listen.c) against the scripted
 * fake driver, for what a real server cannot be made to do on cue: a
 * second loss while the listener restores its LISTENs (one outage, one
 * gap), the exact order of notifications around the gap, and connection
 * attempts that fail.
 */
#include <check.h>
#include <ev.h>
#include <string.h>

#include "fake_driver.h"
#include "testutil.h"

static struct ev_loop *L;
static char events[64]; /* what the callbacks saw, in order */

static void setup(void)
{
    fake_driver_install();
    L = t_loop_new(10);
    events[0] = '\0';
}

static void teardown(void)
{
    t_loop_free(L);
}

static void on_note(evdb_listener *l, const char *channel, const char *payload, size_t len,
                    int64_t pid, void *arg)
{
    (void)l;
    (void)arg;
    ck_assert_str_eq(payload, "hello");
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(pid, 42);
    strncat(events, channel, sizeof events - strlen(events) - 1);
}

static int gaps;

static void on_gap(evdb_listener *l, double lost_at, double restored_at, const evdb_error *cause,
                   void *arg)
{
    (void)l;
    (void)arg;
    gaps++;
    ck_assert(restored_at >= lost_at);
    ck_assert_int_eq(evdb_error_code(cause), EVDB_ECONNLOST);
    strncat(events, "G", sizeof events - strlen(events) - 1);
}

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        while (!(cond))                                                                            \
            ev_run(L, EVRUN_ONCE);                                                                 \
    } while (0)

START_TEST(a_loss_during_restore_is_the_same_outage)
{
    gaps = 0;
    fake.notify_on_listen = true;
    evdb_listener_opts o = {.on_gap = on_gap};
    evdb_listener *l = evdb_listener_open(L, "fake://h/", &o);
    ck_assert_ptr_nonnull(l);
    evdb_future *fa = evdb_listener_listen(l, "a", on_note, NULL);
    ck_assert_int_eq(t_wait(fa), 0);
    evdb_future_unref(fa);
    RUN_UNTIL(strlen(events) == 1);
    ck_assert_str_eq(events, "a");
    /* LISTEN b breaks the session, and so does the first re-LISTEN. */
    fake.listen_drops = 2;
    evdb_future *fb = evdb_listener_listen(l, "b", on_note, NULL);
    ck_assert_int_eq(t_wait(fb), 0);
    evdb_future_unref(fb);
    RUN_UNTIL(gaps == 1 && strlen(events) == 4);
    /* The re-LISTENs' notifications (b then a: channels are renewed
     * newest first) come after the single gap report. */
    ck_assert_str_eq(events, "aGba");
    ck_assert_uint_eq(fake.connects, 3);
    ck_assert_int_eq(evdb_listener_status(l), 0);
    evdb_future *cf = evdb_listener_close(l);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
    ck_assert_int_eq(gaps, 1);
    ck_assert_str_eq(events, "aGba");
}
END_TEST

START_TEST(failed_attempts_fail_waiting_listens_and_close_stops_the_retries)
{
    evdb_listener_opts o = {.backoff_initial = 0.01, .backoff_max = 0.02};
    evdb_listener *l = evdb_listener_open(L, "fake://h/?connect_fail=1", &o);
    ck_assert_ptr_nonnull(l);
    evdb_future *f = evdb_listener_listen(l, "a", on_note, NULL);
    ck_assert_int_eq(t_wait(f), EVDB_ECONNECT);
    ck_assert_ptr_nonnull(strstr(evdb_error_message(evdb_future_error(f)), "could not connect"));
    evdb_future_unref(f);
    /* It keeps trying, with backoff. */
    RUN_UNTIL(fake.connects >= 3);
    ck_assert_int_eq(evdb_listener_status(l), EVDB_ECONNLOST);
    /* The channel was dropped with its future: listening again is fine. */
    f = evdb_listener_listen(l, "a", on_note, NULL);
    ck_assert_ptr_nonnull(f);
    evdb_future *cf = evdb_listener_close(l);
    ck_assert_int_eq(t_wait(f), EVDB_ECLOSED);
    evdb_future_unref(f);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
    size_t connects = fake.connects;
    t_run_for(L, 0.05);
    ck_assert_uint_eq(fake.connects, connects);
    ck_assert_str_eq(events, "");
}
END_TEST

START_TEST(unlisten_drops_queued_notifications_and_fails_the_pending_listen)
{
    fake.notify_on_listen = true;
    evdb_listener *l = evdb_listener_open(L, "fake://h/", NULL);
    ck_assert_ptr_nonnull(l);
    evdb_future *f = evdb_listener_listen(l, "a", on_note, NULL);
    /* Unlistened before the server answered: the listen future says so,
     * and the notification that follows the LISTEN is never delivered. */
    evdb_future *u = evdb_listener_unlisten(l, "a");
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(t_wait(f), EVDB_ECANCELED);
    ck_assert_int_eq(t_wait(u), 0);
    evdb_future_unref(f);
    evdb_future_unref(u);
    evdb_future *cf = evdb_listener_close(l);
    ck_assert_int_eq(t_wait(cf), 0);
    evdb_future_unref(cf);
    ck_assert_str_eq(events, "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("listen");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, a_loss_during_restore_is_the_same_outage);
    tcase_add_test(tc, failed_attempts_fail_waiting_listens_and_close_stops_the_retries);
    tcase_add_test(tc, unlisten_drops_queued_notifications_and_fails_the_pending_listen);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
