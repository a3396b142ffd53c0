/* many: insert 10,000 rows with one call, twice: as one all-or-nothing
 * unit (EVDB_MANY_ATOMIC), then row by row (EVDB_MANY_PER_ROW) with one
 * row that fails, and find out which one and what the others did.
 *   many 'postgresql://user:pw@127.0.0.1:5432/db'   (or a mariadb:// URL) */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <evdb.h>

#define ROWS 10000

/* Run sql through the pool and wait; 0 or the failure's code. */
static int run(evdb_pool *pool, const char *sql, int64_t *count)
{
    evdb_future *f = evdb_pool_query(pool, sql, NULL, 0, NULL);
    int rc = evdb_future_wait(f);
    if (rc)
        fprintf(stderr, "many: %s: %s\n", sql, evdb_error_message(evdb_future_error(f)));
    else if (count)
        evdb_result_int(evdb_future_result(f), 0, 0, count);
    evdb_future_unref(f);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: many URL\n");
        return 2;
    }
    int mariadb = argv[1][0] == 'm';
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool *pool = evdb_pool_new(loop, argv[1], NULL);
    if (!pool) {
        fprintf(stderr, "many: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    const char *insert = mariadb ? "INSERT INTO many_example (id, name) VALUES (?, ?)"
                                 : "INSERT INTO many_example (id, name) VALUES ($1, $2)";
    int rc = run(pool, "DROP TABLE IF EXISTS many_example", NULL) ||
             run(pool, "CREATE TABLE many_example (id int PRIMARY KEY, name varchar(20))", NULL);

    /* Row-major parameters: row r's values are params[2 * r] and
     * params[2 * r + 1]. They are copied when submitted. */
    static char names[ROWS][20];
    evdb_value *params = malloc(2 * ROWS * sizeof *params);
    for (int r = 0; !rc && r < ROWS; r++) {
        snprintf(names[r], sizeof names[r], "item %d", r + 1);
        params[2 * r] = evdb_int(r + 1);
        params[2 * r + 1] = evdb_text(names[r]);
    }
    if (!rc) {
        evdb_future *f =
            evdb_pool_execute_many(pool, insert, params, 2, ROWS, EVDB_MANY_ATOMIC, NULL);
        rc = evdb_future_wait(f);
        if (rc == 0)
            printf("atomic: %lld rows inserted\n",
                   (long long)evdb_result_affected(evdb_future_result(f)));
        else
            fprintf(stderr, "many: %s\n", evdb_error_message(evdb_future_error(f)));
        evdb_future_unref(f);
    }
    if (!rc)
        rc = run(pool, "DELETE FROM many_example", NULL);
    if (!rc) {
        /* Row 1234 repeats row 0's id: it fails, alone. */
        params[2 * 1234] = evdb_int(1);
        evdb_future *f =
            evdb_pool_execute_many(pool, insert, params, 2, ROWS, EVDB_MANY_PER_ROW, NULL);
        rc = evdb_future_wait(f);
        if (rc == 0) {
            const evdb_result *r = evdb_future_result(f); /* one result per row */
            printf("per row: %zu failed, %lld inserted\n", evdb_many_failed(r),
                   (long long)evdb_many_affected(r));
            for (; r; r = evdb_result_next(r)) {
                const evdb_error *e = evdb_many_row_error(r);
                if (e)
                    printf("row %ld failed (%s)\n", evdb_many_error_row(e), evdb_error_sqlstate(e));
            }
        } else {
            fprintf(stderr, "many: %s\n", evdb_error_message(evdb_future_error(f)));
        }
        evdb_future_unref(f);
    }
    int64_t n = 0;
    if (!rc && !run(pool, "SELECT COUNT(*) FROM many_example", &n))
        printf("the table holds %lld rows\n", (long long)n);
    run(pool, "DROP TABLE IF EXISTS many_example", NULL);
    free(params);

    evdb_future *closed = evdb_pool_close(pool);
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
    return rc ? 1 : 0;
}
