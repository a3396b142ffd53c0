/* hello: one query with a parameter and a timeout, from start to finish.
 *   hello 'postgresql://user:pw@127.0.0.1:5432/db'   (or a mariadb:// URL) */
#include <ev.h>
#include <stdio.h>
#include <evdb.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: hello URL\n");
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_pool *pool = evdb_pool_new(loop, argv[1], NULL); /* NULL: default options */
    if (!pool) {
        fprintf(stderr, "hello: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    /* PostgreSQL numbers its placeholders ($1), MariaDB uses '?'. */
    const char *sql = argv[1][0] == 'm' ? "SELECT CONCAT('hello, ', ?) AS greeting"
                                        : "SELECT 'hello, ' || $1 AS greeting";
    evdb_value who = evdb_text("world");     /* copied when submitted */
    evdb_query_opts opts = {.timeout = 2.0}; /* fails with EVDB_ETIMEDOUT after 2 s */
    evdb_future *q = evdb_pool_query(pool, sql, &who, 1, &opts);

    /* Run the loop until the query completes (or register a callback with
     * evdb_future_on_done and run the loop yourself). */
    int status = evdb_future_wait(q);
    if (status == 0) {
        evdb_result *r = evdb_future_result(q); /* owned by the future */
        printf("%s\n", evdb_result_text(r, 0, 0, NULL));
    } else {
        fprintf(stderr, "hello: %s: %s\n", evdb_err_name(status),
                evdb_error_message(evdb_future_error(q)));
    }
    evdb_future_unref(q);

    evdb_future *closed = evdb_pool_close(pool); /* asynchronous, never blocks */
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
    return status == 0 ? 0 : 1;
}
