/*
 * Batch execution on MariaDB (tests/many_cases.h has the cases both
 * backends share). Per row: one cached prepared statement executed per
 * row; atomic: bulk execution (STMT_ATTR_ARRAY_SIZE) inside a transaction
 * or savepoint. The per-statement fallback (URL option bulk=false, which
 * a server without bulk operations gets too) must give the same outcomes,
 * and the server's own counters tell which path ran.
 */
#include "many_cases.h"

static const many_backend my = {
    .url = evdb_test_my_url,
    .create_sql = "CREATE TABLE many_t (id int PRIMARY KEY, t text, b blob, i bigint, "
                  "d double, dt date, ts datetime(6), f boolean) ENGINE=InnoDB",
    .insert_id = "INSERT INTO many_t (id) VALUES (?)",
    .insert_all = "INSERT INTO many_t VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    .select_all = "SELECT id, t, b, i, d, dt, ts, f FROM many_t ORDER BY id",
    .slow_insert = "INSERT INTO many_t (id) SELECT ? FROM DUAL WHERE SLEEP(?) = 0",
    .begin = "START TRANSACTION",
    .null_state = "23000",
};

/* The test server's URL with bulk execution turned off. */
static const char *no_bulk_url(void)
{
    static char url[512];
    const char *u = evdb_test_my_url();
    ck_assert_ptr_nonnull(u);
    snprintf(url, sizeof url, "%s%sbulk=false", u, strchr(u, '?') ? "&" : "?");
    return url;
}

/* The session's count of statement executions (a bulk execution counts
 * once, whatever its rows). */
static int64_t executions(evdb_conn *c)
{
    evdb_future *f = t_run_ok(c, "SHOW SESSION STATUS LIKE 'Com_stmt_execute'", NULL, 0);
    int64_t n = t_cell_int(evdb_future_result(f), 0, 1);
    evdb_future_unref(f);
    return n;
}

/* 1,000 rows: a handful of executions with bulk, one per row without. */
static void run_counted(const char *url, bool bulk)
{
    enum { ROWS = 1000 };
    evdb_conn *c = conn_with_table(NULL, url);
    evdb_value *rows = id_rows(ROWS, 1);
    int64_t before = executions(c);
    evdb_future *f = evdb_conn_execute_many(c, B->insert_id, rows, 1, ROWS, EVDB_MANY_ATOMIC, NULL);
    ck_assert_int_eq(evdb_result_affected(wait_ok(f, "atomic")), ROWS);
    evdb_future_unref(f);
    int64_t ran = executions(c) - before;
    if (bulk)
        ck_assert_msg(ran <= 3, "bulk: %lld executions for %d rows", (long long)ran, ROWS);
    else
        ck_assert_msg(ran >= ROWS, "fallback: %lld executions for %d rows", (long long)ran, ROWS);
    ck_assert_int_eq(count_rows(c), ROWS);
    free(rows);
    t_conn_close(c);
}

START_TEST(atomic_runs_as_bulk_execution)
{
    run_counted(NULL, true);
}
END_TEST

START_TEST(fallback_runs_row_by_row_with_the_same_outcomes)
{
    run_counted(no_bulk_url(), false);
    run_ten_thousand(no_bulk_url());
    run_atomic_failure(no_bulk_url());
}
END_TEST

/* A column that mixes kinds (an int, then text) cannot be one bulk array:
 * the batch runs row by row, with the same outcome. */
START_TEST(mixed_column_kinds_fall_back)
{
    evdb_conn *c = conn_with_table(NULL, NULL);
    evdb_value rows[4] = {evdb_int(1), evdb_text("2"), evdb_null(), evdb_int(4)};
    int64_t before = executions(c);
    evdb_future *f = evdb_conn_execute_many(c, B->insert_id, rows, 1, 4, EVDB_MANY_ATOMIC, NULL);
    ck_assert_int_eq(t_wait(f), EVDB_ESERVER); /* row 2: NULL id */
    ck_assert_int_eq(evdb_many_error_row(evdb_future_error(f)), 2);
    evdb_future_unref(f);
    ck_assert_int_ge(executions(c) - before, 3);
    ck_assert_int_eq(count_rows(c), 0);
    t_conn_close(c);
}
END_TEST

/* A statement with a result set is never bulk-executed: an atomic
 * execute_many of a SELECT gives each row's result, as a batch does. */
START_TEST(select_rows_are_not_bulk_executed)
{
    evdb_conn *c = t_conn_open(L, B->url(), NULL);
    evdb_value v[3] = {evdb_int(7), evdb_int(8), evdb_int(9)};
    evdb_future *f = evdb_conn_execute_many(c, "SELECT ? + 1", v, 1, 3, EVDB_MANY_ATOMIC, NULL);
    wait_ok(f, "atomic SELECT");
    evdb_future_unref(f);
    f = evdb_conn_execute_many(c, "SELECT ? + 1", v, 1, 3, EVDB_MANY_PER_ROW, NULL);
    const evdb_result *r = wait_ok(f, "per-row SELECT");
    for (int i = 0; i < 3; i++, r = evdb_result_next(r))
        ck_assert_int_eq(t_cell_int(r, 0, 0), 8 + i);
    evdb_future_unref(f);
    t_conn_close(c);
}
END_TEST

/* Rows spanning several bulk chunks (12 MB of text, over half the
 * default max_allowed_packet): every row once. */
START_TEST(large_rows_span_several_chunks)
{
    enum { ROWS = 3000, TEXT = 4000 };
    evdb_conn *c = conn_with_table(NULL, NULL);
    char *text = malloc(TEXT + 1);
    ck_assert_ptr_nonnull(text);
    memset(text, 'x', TEXT);
    text[TEXT] = '\0';
    evdb_value *rows = malloc(2 * ROWS * sizeof *rows);
    ck_assert_ptr_nonnull(rows);
    for (int i = 0; i < ROWS; i++) {
        rows[2 * i] = evdb_int(i + 1);
        rows[2 * i + 1] = evdb_text(text);
    }
    int64_t before = executions(c);
    evdb_future *f = evdb_conn_execute_many(c, "INSERT INTO many_t (id, t) VALUES (?, ?)", rows, 2,
                                            ROWS, EVDB_MANY_ATOMIC, NULL);
    ck_assert_int_eq(evdb_result_affected(wait_ok(f, "chunks")), ROWS);
    evdb_future_unref(f);
    int64_t ran = executions(c) - before;
    ck_assert_msg(ran >= 2 && ran <= 20, "%lld chunks", (long long)ran);
    ck_assert_int_eq(t_query_int(c, "SELECT SUM(LENGTH(t)) FROM many_t"), (int64_t)ROWS * TEXT);
    /* A failing row in the last chunk: found, and nothing stays. */
    t_exec_ok(c, "DELETE FROM many_t");
    rows[2 * (ROWS - 2)] = evdb_null();
    f = evdb_conn_execute_many(c, "INSERT INTO many_t (id, t) VALUES (?, ?)", rows, 2, ROWS,
                               EVDB_MANY_ATOMIC, NULL);
    ck_assert_int_eq(t_wait(f), EVDB_ESERVER);
    ck_assert_int_eq(evdb_many_error_row(evdb_future_error(f)), ROWS - 2);
    evdb_future_unref(f);
    ck_assert_int_eq(count_rows(c), 0);
    free(rows);
    free(text);
    t_conn_close(c);
}
END_TEST

/* The server's own behaviour the driver relies on (docs/mariadb.md): a
 * failing row fails the whole bulk command and none of its rows remain,
 * in autocommit; the driver's re-run then names the row. */
START_TEST(bulk_failure_leaves_no_row_in_autocommit)
{
    evdb_conn *c = conn_with_table(NULL, NULL);
    evdb_value *rows = rows_failing_at(SMALL_ROWS - 1);
    evdb_future *f =
        evdb_conn_execute_many(c, B->insert_id, rows, 1, SMALL_ROWS, EVDB_MANY_ATOMIC, NULL);
    ck_assert_int_eq(t_wait(f), EVDB_ESERVER);
    ck_assert_int_eq(evdb_many_error_row(evdb_future_error(f)), SMALL_ROWS - 1);
    ck_assert_int_eq(evdb_error_driver_code(evdb_future_error(f)), 1048); /* ER_BAD_NULL_ERROR */
    evdb_future_unref(f);
    ck_assert_int_eq(count_rows(c), 0);
    ck_assert_int_eq(t_query_int(c, "SELECT @@in_transaction"), 0);
    free(rows);
    t_conn_close(c);
}
END_TEST

int main(void)
{
    B = &my;
    Suite *s = suite_create("many_my");
    TCase *tc = many_common_cases();
    tcase_add_test(tc, atomic_runs_as_bulk_execution);
    tcase_add_test(tc, fallback_runs_row_by_row_with_the_same_outcomes);
    tcase_add_test(tc, mixed_column_kinds_fall_back);
    tcase_add_test(tc, select_rows_are_not_bulk_executed);
    tcase_add_test(tc, large_rows_span_several_chunks);
    tcase_add_test(tc, bulk_failure_leaves_no_row_in_autocommit);
    suite_add_tcase(s, tc);
    return t_run_suite(s);
}
