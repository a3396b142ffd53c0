/*
 * Batch execution on MariaDB (tests/many_cases.h has the cases both
 * backends share). Per row: one cached prepared statement executed per
 * row; atomic: bulk execution (STMT_ATTR_ARRAY_SIZE) inside a transaction
 * or savepoint, and the per-statement fallback (URL option bulk=off)
 * must give the same outcomes.
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

int main(void)
{
    B = &my;
    Suite *s = suite_create("many_my");
    suite_add_tcase(s, many_common_cases());
    return t_run_suite(s);
}
