/*
 * Batch execution on PostgreSQL (tests/many_cases.h has the cases both
 * backends share). Per row: the rows are pipelined with one Sync each;
 * atomic: one batch under one Sync.
 */
#include "many_cases.h"

static const many_backend pg = {
    .url = evdb_test_pg_url,
    .create_sql = "CREATE TABLE many_t (id int PRIMARY KEY, t text, b bytea, i bigint, "
                  "d double precision, dt date, ts timestamp, f boolean)",
    .insert_id = "INSERT INTO many_t (id) VALUES ($1)",
    .insert_all = "INSERT INTO many_t VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    .select_all = "SELECT id, t, b, i, d, dt, ts, f FROM many_t ORDER BY id",
    .slow_insert = "INSERT INTO many_t (id) SELECT $1::int FROM pg_sleep($2::float8)",
    .begin = "BEGIN",
    .null_state = "23502",
};

int main(void)
{
    B = &pg;
    Suite *s = suite_create("many_pg");
    suite_add_tcase(s, many_common_cases());
    return t_run_suite(s);
}
