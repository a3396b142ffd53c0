/*
 * Unit tests of the reconnect backoff (src/backoff.c) that listeners use:
 * the defaults, doubling up to the cap, jitter within its bounds, reset.
 */
#include <check.h>

#include "backoff.h"
#include "testutil.h"

START_TEST(defaults_double_up_to_the_cap_without_jitter)
{
    evdb__backoff b;
    evdb__backoff_init(&b, 0, 0, -1, 1);
    ck_assert_double_eq(b.initial, 0.1);
    ck_assert_double_eq(b.max, 5.0);
    const double want[] = {0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_double_eq_tol(evdb__backoff_next(&b), want[i], 1e-12);
    evdb__backoff_reset(&b);
    ck_assert_double_eq_tol(evdb__backoff_next(&b), 0.1, 1e-12);
}
END_TEST

START_TEST(jitter_stays_within_its_fraction_and_varies)
{
    evdb__backoff b;
    evdb__backoff_init(&b, 1, 1, 0.2, 12345);
    double lo = 2, hi = 0;
    for (int i = 0; i < 1000; i++) {
        double d = evdb__backoff_next(&b);
        ck_assert(d >= 0.8 && d <= 1.2);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* Spread: a jitter that never varies would make clients retry in step. */
    ck_assert(lo < 0.85 && hi > 1.15);
}
END_TEST

START_TEST(max_below_initial_is_raised_and_jitter_capped)
{
    evdb__backoff b;
    evdb__backoff_init(&b, 2, 1, 7, 0);
    ck_assert_double_eq(b.max, 2);
    ck_assert_double_eq(b.jitter, 1);
    for (int i = 0; i < 100; i++) {
        double d = evdb__backoff_next(&b);
        ck_assert(d >= 0 && d <= 4);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, defaults_double_up_to_the_cap_without_jitter);
    tcase_add_test(tc, jitter_stays_within_its_fraction_and_varies);
    tcase_add_test(tc, max_below_initial_is_raised_and_jitter_capped);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
