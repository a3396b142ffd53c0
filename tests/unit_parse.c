/*
 * Unit tests of the pure pieces: URL parsing (percent-decoding, errors that
 * never show the password), value constructors, the result builder and
 * typed getters, error names.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

START_TEST(url_full)
{
    evdb__url u;
    evdb_error err;
    ck_assert_int_eq(evdb__url_parse("MariaDB://us%40er:p%3Ass%2Fw@db.example:3307/my%20db"
                                     "?charset=utf8mb4&ssl=true&x=a+b",
                                     &u, &err),
                     0);
    ck_assert_str_eq(u.scheme, "mariadb");
    ck_assert_str_eq(u.user, "us@er");
    ck_assert_str_eq(u.password, "p:ss/w");
    ck_assert_str_eq(u.host, "db.example");
    ck_assert_int_eq(u.port, 3307);
    ck_assert_str_eq(u.path, "my db");
    ck_assert_uint_eq(u.nparams, 3);
    ck_assert_str_eq(u.params[0].key, "charset");
    ck_assert_str_eq(u.params[2].value, "a b");
    evdb__url_free(&u);
    ck_assert_int_eq(evdb__url_parse("mysql://[::1]:3306/", &u, &err), 0);
    ck_assert_str_eq(u.host, "::1");
    ck_assert_ptr_null(u.user);
    ck_assert_ptr_null(u.path);
    evdb__url_free(&u);
    ck_assert_int_eq(evdb__url_parse("mysql://root@/db?unix_socket=%2Ftmp%2Fs", &u, &err), 0);
    ck_assert_ptr_null(u.host);
    ck_assert_str_eq(u.params[0].value, "/tmp/s");
    evdb__url_free(&u);
}
END_TEST

START_TEST(url_errors_hide_password)
{
    const char *bad[] = {
        "nothing",
        "://x",
        "my sql://h",
        "mysql://u:secret@h:0/",
        "mysql://u:secret@h:70000/",
        "mysql://u:secret@h:12a/",
        "mysql://u:se%zzcret@h/",
        "mysql://u:secret@h/d#frag",
        "mysql://u:secret@h/?=v",
        "mysql://u:secret@h/?novalue",
        "mysql://u:secret@[::1/",
        "mysql://u:secret@h/%00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        evdb__url u;
        evdb_error err;
        ck_assert_msg(evdb__url_parse(bad[i], &u, &err) == EVDB_EURL, "accepted %s", bad[i]);
        ck_assert_ptr_null(strstr(err.message, "secret"));
        ck_assert_ptr_null(strstr(err.message, "se%zz"));
    }
    evdb__url u;
    evdb_error err;
    ck_assert_int_eq(evdb__url_parse(NULL, &u, &err), EVDB_EURL);
    char *huge = malloc(10000);
    memset(huge, 'a', 9999);
    memcpy(huge, "mysql://", 8);
    huge[9999] = '\0';
    ck_assert_int_eq(evdb__url_parse(huge, &u, &err), EVDB_EURL);
    free(huge);
}
END_TEST

START_TEST(values)
{
    ck_assert_int_eq(evdb_text(NULL).type, EVDB_TYPE_NULL);
    ck_assert_int_eq(evdb_text("x").u.s.len, 1);
    ck_assert_int_eq(evdb_textn("a\0b", 3).u.s.len, 3);
    ck_assert_int_eq(evdb_bytes(NULL, 0).type, EVDB_TYPE_BYTES);
    ck_assert_ptr_nonnull(evdb_bytes(NULL, 0).u.s.ptr);
    ck_assert_int_eq(evdb_int(INT64_MIN).u.i, INT64_MIN);
    evdb_value p[3] = {evdb_text("abc"), evdb_bytes("\0\1", 2), evdb_int(7)};
    size_t n = evdb__values_size(p, 3);
    void *buf = aligned_alloc(16, (n + 15) & ~(size_t)15);
    evdb_value *c = evdb__values_copy_into(buf, p, 3);
    ck_assert_ptr_ne(c[0].u.s.ptr, p[0].u.s.ptr);
    ck_assert_str_eq(c[0].u.s.ptr, "abc");
    ck_assert_int_eq(memcmp(c[1].u.s.ptr, "\0\1", 2), 0);
    ck_assert_int_eq(c[2].u.i, 7);
    free(buf);
}
END_TEST

/* evdb_result_int on text cells: the digit-only fast path and the strtoll
 * path for the rest must agree on what they accept and on the limits. */
START_TEST(result_int_text_forms)
{
    static const struct {
        const char *text;
        int rc;
        int64_t v;
    } cases[] = {
        {"0", 0, 0},
        {"-0", 0, 0},
        {"+17", 0, 17},
        {"123456", 0, 123456},
        {"-9223372036854775808", 0, INT64_MIN},
        {"9223372036854775807", 0, INT64_MAX},
        {"9223372036854775808", EVDB_ERANGE, 0},
        {"-9223372036854775809", EVDB_ERANGE, 0},
        {"9999999999999999999", EVDB_ERANGE, 0},            /* 19 digits */
        {"18446744073709551616", EVDB_ERANGE, 0},           /* 20 digits */
        {"000000000000000000000000042", 0, 42},             /* long, in range */
        {" 42", 0, 42},                                     /* strtoll's blanks */
        {"4 2", EVDB_ETYPE, 0},
        {"12x", EVDB_ETYPE, 0},
        {"-", EVDB_ETYPE, 0},
        {"+", EVDB_ETYPE, 0},
        {"0x10", EVDB_ETYPE, 0},
    };
    size_t n = sizeof cases / sizeof cases[0];
    evdb__rbuild *b = evdb__rbuild_new(1);
    evdb__rbuild_column(b, 0, "i", EVDB_TYPE_INT, 20);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(evdb__rbuild_cell(b, cases[i].text, strlen(cases[i].text)), 0);
    evdb_result *r = evdb__rbuild_finish(b);
    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < n; i++) {
        int64_t v = -1;
        int rc = evdb_result_int(r, i, 0, &v);
        ck_assert_msg(rc == cases[i].rc, "'%s': %d, expected %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0)
            ck_assert_msg(v == cases[i].v, "'%s' read as %lld", cases[i].text, (long long)v);
    }
    evdb__result_free(r);
}
END_TEST

START_TEST(result_builder_and_getters)
{
    size_t live = evdb__alloc_live();
    evdb__rbuild *b = evdb__rbuild_new(3);
    evdb__rbuild_column(b, 0, "i", EVDB_TYPE_INT, 20);
    evdb__rbuild_column(b, 1, "d", EVDB_TYPE_DOUBLE, 701);
    evdb__rbuild_column(b, 2, "b", EVDB_TYPE_BOOL, 16);
    const char *rows[][3] = {{"9223372036854775807", "1.5", "t"},
                             {"9223372036854775808", "nan", "false"},
                             {"12x", "1e999", "maybe"},
                             {"", "abc", "1"}};
    for (int r = 0; r < 4; r++)
        for (int col = 0; col < 3; col++)
            evdb__rbuild_cell(b, rows[r][col], strlen(rows[r][col]));
    for (int col = 0; col < 3; col++)
        evdb__rbuild_cell(b, NULL, 0);
    evdb__rbuild_set_affected(b, 5);
    evdb__rbuild_set_command(b, "SELECT 5");
    evdb_result *r = evdb__rbuild_finish(b);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(evdb_result_nrows(r), 5);
    ck_assert_int_eq(evdb_result_colindex(r, "d"), 1);
    ck_assert_int_eq(evdb_result_colindex(r, "zz"), -1);
    ck_assert_int_eq(evdb_result_coltype(r, 2), EVDB_TYPE_BOOL);
    ck_assert_uint_eq(evdb_result_coltype_native(r, 1), 701);
    int64_t i;
    double d;
    bool bo;
    ck_assert_int_eq(evdb_result_int(r, 0, 0, &i), 0);
    ck_assert_int_eq(i, INT64_MAX);
    ck_assert_int_eq(evdb_result_int(r, 1, 0, &i), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_int(r, 2, 0, &i), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_int(r, 3, 0, &i), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_int(r, 4, 0, &i), EVDB_ENULL);
    ck_assert_int_eq(evdb_result_double(r, 0, 1, &d), 0);
    ck_assert(d == 1.5);
    ck_assert_int_eq(evdb_result_double(r, 1, 1, &d), 0);
    ck_assert(isnan(d));
    ck_assert_int_eq(evdb_result_double(r, 2, 1, &d), EVDB_ERANGE);
    ck_assert_int_eq(evdb_result_double(r, 3, 1, &d), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_bool(r, 0, 2, &bo), 0);
    ck_assert(bo);
    ck_assert_int_eq(evdb_result_bool(r, 1, 2, &bo), 0);
    ck_assert(!bo);
    ck_assert_int_eq(evdb_result_bool(r, 2, 2, &bo), EVDB_ETYPE);
    ck_assert_int_eq(evdb_result_bool(r, 4, 2, &bo), EVDB_ENULL);
    ck_assert(evdb_result_isnull(r, 4, 0));
    ck_assert(evdb_result_isnull(r, 99, 0));
    ck_assert_int_eq(evdb_result_affected(r), 5);
    ck_assert_str_eq(evdb_result_command(r), "SELECT 5");
    ck_assert_ptr_null(evdb_result_next(r));
    evdb__result_free(r);
    /* A short last row is refused. */
    b = evdb__rbuild_new(2);
    evdb__rbuild_cell(b, "x", 1);
    ck_assert_ptr_null(evdb__rbuild_finish(b));
    ck_assert_uint_eq(evdb__alloc_live(), live);
    /* NULL results read as empty. */
    ck_assert_uint_eq(evdb_result_nrows(NULL), 0);
    ck_assert_int_eq(evdb_result_affected(NULL), -1);
}
END_TEST

START_TEST(error_objects)
{
    evdb_error e;
    evdb__error_set(&e, EVDB_ESERVER, 1317, "70100", "interrupted\n");
    ck_assert_str_eq(evdb_error_message(&e), "interrupted");
    ck_assert_str_eq(evdb_error_sqlstate(&e), "70100");
    ck_assert_int_eq(evdb_error_driver_code(&e), 1317);
    ck_assert_int_eq(evdb_error_code(NULL), 0);
    ck_assert_str_eq(evdb_error_message(NULL), "");
    /* Every code has a distinct name and a description. */
    for (int code = -1; code > EVDB_ERRNO_LAST_; code--) {
        ck_assert_str_ne(evdb_err_name(code), "EVDB_UNKNOWN");
        ck_assert_str_ne(evdb_strerror(code), "unknown error");
        for (int other = code - 1; other > EVDB_ERRNO_LAST_; other--)
            ck_assert_str_ne(evdb_err_name(code), evdb_err_name(other));
    }
    ck_assert(EVDB_VERSION_AT_LEAST(0, 1, 0));
    ck_assert(!EVDB_VERSION_AT_LEAST(99, 0, 0));
}
END_TEST

/* Diagnostic fields (packed, never NULL) and the retry / connection /
 * cancel predicates. */
START_TEST(error_fields_and_predicates)
{
    evdb_error e;
    evdb__error_set(&e, EVDB_ESERVER, 0, "23505", "duplicate key");
    ck_assert_str_eq(evdb_error_detail(&e), "");
    ck_assert_str_eq(evdb_error_hint(&e), "");
    ck_assert_str_eq(evdb_error_constraint(&e), "");
    evdb__error_diag(&e, EVDB__DIAG_CONSTRAINT, "items_pkey");
    evdb__error_diag(&e, EVDB__DIAG_TABLE, "items");
    evdb__error_diag(&e, EVDB__DIAG_COLUMN, NULL);
    evdb__error_diag(&e, EVDB__DIAG_DETAIL, "Key (id)=(1) already exists.");
    evdb__error_diag(&e, EVDB__DIAG_HINT, "");
    ck_assert_str_eq(evdb_error_constraint(&e), "items_pkey");
    ck_assert_str_eq(evdb_error_table(&e), "items");
    ck_assert_str_eq(evdb_error_column(&e), "");
    ck_assert_str_eq(evdb_error_detail(&e), "Key (id)=(1) already exists.");
    ck_assert_str_eq(evdb_error_hint(&e), "");
    /* Copies keep them; a new error clears them. */
    evdb_error c;
    evdb__error_copy(&c, &e);
    ck_assert_str_eq(evdb_error_table(&c), "items");
    evdb__error_set(&e, EVDB_ESERVER, 0, "22012", "division by zero");
    ck_assert_str_eq(evdb_error_table(&e), "");
    ck_assert_str_eq(evdb_error_detail(&e), "");
    /* Too long for the buffer: cut at a character boundary, the earlier
     * fields intact, later ones left out. */
    char big[1000];
    for (size_t i = 0; i + 2 < sizeof big; i += 2) {
        big[i] = (char)0xC3; /* U+00E9, two bytes */
        big[i + 1] = (char)0xA9;
    }
    big[sizeof big - 2] = '\0';
    evdb__error_diag(&e, EVDB__DIAG_CONSTRAINT, "c");
    evdb__error_diag(&e, EVDB__DIAG_DETAIL, big);
    evdb__error_diag(&e, EVDB__DIAG_HINT, "no room left");
    size_t n = strlen(evdb_error_detail(&e));
    ck_assert_uint_gt(n, 100);
    ck_assert_uint_lt(n, sizeof big);
    ck_assert_uint_eq(n % 2, 0);
    ck_assert_str_eq(evdb_error_constraint(&e), "c");
    ck_assert_str_eq(evdb_error_hint(&e), "");
    /* A zeroed error object (never set) reads as empty. */
    evdb_error z;
    memset(&z, 0, sizeof z);
    ck_assert_str_eq(evdb_error_detail(&z), "");
    evdb__error_diag(&z, EVDB__DIAG_HINT, "h");
    ck_assert_str_eq(evdb_error_hint(&z), "h");
    ck_assert_str_eq(evdb_error_severity(NULL), "");
    ck_assert_str_eq(evdb_error_detail(NULL), "");

    static const struct {
        int code, driver_code;
        const char *state;
        bool retry, conn, cancel;
    } cases[] = {
        {EVDB_ESERVER, 0, "40001", true, false, false},    /* serialization_failure */
        {EVDB_ESERVER, 0, "40P01", true, false, false},    /* deadlock_detected */
        {EVDB_ESERVER, 1213, "40001", true, false, false}, /* MariaDB deadlock */
        {EVDB_ESERVER, 1205, "HY000", true, false, false}, /* MariaDB lock wait timeout */
        {EVDB_ESERVER, 0, "40002", false, false, false},   /* integrity violation at commit */
        {EVDB_ESERVER, 0, "23505", false, false, false},
        {EVDB_EPROTO, 1205, "HY000", false, false, false}, /* not a server error */
        {EVDB_ESERVER, 0, "08006", false, true, false},    /* connection_failure */
        {EVDB_ESERVER, 2013, "08S01", false, true, false}, /* MariaDB lost connection */
        {EVDB_ECONNLOST, 0, "57P01", false, true, false},
        {EVDB_ECONNLOST, 0, NULL, false, true, false},
        {EVDB_ECONNECT, 0, NULL, false, true, false},
        {EVDB_ECONNTIMEOUT, 0, NULL, false, true, false},
        {EVDB_EAUTH, 0, NULL, false, false, false},
        {EVDB_ESERVER, 0, "57014", false, false, true},    /* query_canceled */
        {EVDB_ESERVER, 1317, "70100", false, false, true}, /* MariaDB interrupted */
        {EVDB_ECANCELED, 0, NULL, false, false, true},
        {EVDB_ETIMEDOUT, 0, NULL, false, false, true},
        {EVDB_EPOOLTIMEOUT, 0, NULL, false, false, false},
        {EVDB_ESERVER, 0, "0", false, false, false},
        {EVDB_ESERVER, 0, "", false, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        evdb__error_set(&e, cases[i].code, cases[i].driver_code, cases[i].state, "case %zu", i);
        ck_assert_msg(evdb_error_is_retryable(&e) == cases[i].retry, "retryable, case %zu", i);
        ck_assert_msg(evdb_error_is_connection(&e) == cases[i].conn, "connection, case %zu", i);
        ck_assert_msg(evdb_error_is_cancel(&e) == cases[i].cancel, "cancel, case %zu", i);
    }
    ck_assert(!evdb_error_is_retryable(NULL));
    ck_assert(!evdb_error_is_connection(NULL));
    ck_assert(!evdb_error_is_cancel(NULL));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("parse");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, url_full);
    tcase_add_test(tc, url_errors_hide_password);
    tcase_add_test(tc, values);
    tcase_add_test(tc, result_builder_and_getters);
    tcase_add_test(tc, result_int_text_forms);
    tcase_add_test(tc, error_objects);
    tcase_add_test(tc, error_fields_and_predicates);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
