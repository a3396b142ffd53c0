/* copy: bulk load rows with COPY, then stream them back out (PostgreSQL).
 *   copy 'postgresql://user:pw@127.0.0.1:5432/db' [ROWS]
 * Writes ROWS rows (default 100000) into a temporary table through
 * evdb_copy_write_row, waiting whenever evdb's buffer is full, then reads
 * the table back with COPY TO STDOUT and counts the lines. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <evdb.h>

static void on_data(evdb_copy *cp, const void *data, size_t len, void *arg)
{
    (void)cp;
    size_t *lines = arg;
    for (size_t i = 0; i < len; i++)
        *lines += ((const char *)data)[i] == '\n';
}

static int fail(const char *what, const evdb_error *e)
{
    fprintf(stderr, "copy: %s: %s\n", what, e ? evdb_error_message(e) : "failed");
    return 1;
}

/* Runs sql and waits for it; 0 or 1. */
static int run(evdb_conn *c, const char *sql)
{
    evdb_future *f = evdb_conn_query(c, sql, NULL, 0, NULL);
    if (!f)
        return fail(sql, evdb_last_error());
    int rc = evdb_future_wait(f) == 0 ? 0 : fail(sql, evdb_future_error(f));
    evdb_future_unref(f);
    return rc;
}

/* The load: one row at a time; EVDB_EBUSY means "wait until writable". */
static int load(evdb_conn *c, long rows)
{
    evdb_copy *cp = evdb_copy_in(c, "COPY items (id, name, price) FROM STDIN", NULL);
    if (!cp)
        return fail("evdb_copy_in", evdb_last_error());
    int rc = 0;
    for (long i = 1; i <= rows && rc == 0; i++) {
        char name[32];
        snprintf(name, sizeof name, "item\t%ld", i); /* the tab is escaped */
        evdb_value row[3] = {evdb_int(i), evdb_text(name), evdb_double((double)i / 4)};
        rc = evdb_copy_write_row(cp, row, 3);
        if (rc == EVDB_EBUSY) {
            evdb_future *w = evdb_copy_writable(cp);
            rc = w ? evdb_future_wait(w) : EVDB_ENOMEM;
            evdb_future_unref(w);
            i--; /* that row was not taken: write it again */
        }
    }
    /* On an error, abort: nothing of the copy takes effect. */
    evdb_future *done = rc == 0 ? evdb_copy_end(cp) : evdb_copy_abort(cp, "the load failed");
    evdb_copy_free(cp);
    if (evdb_future_wait(done) == 0)
        printf("copy: loaded %lld rows\n",
               (long long)evdb_result_affected(evdb_future_result(done)));
    else
        rc = fail("COPY FROM STDIN", evdb_future_error(done));
    evdb_future_unref(done);
    return rc ? 1 : 0;
}

static int unload(evdb_conn *c)
{
    size_t lines = 0;
    evdb_copy *cp = evdb_copy_out(c, "COPY items TO STDOUT", on_data, &lines, NULL);
    if (!cp)
        return fail("evdb_copy_out", evdb_last_error());
    evdb_future *done = evdb_copy_future(cp);
    int rc = 0;
    if (evdb_future_wait(done) == 0)
        printf("copy: read back %zu lines (%lld rows)\n", lines,
               (long long)evdb_result_affected(evdb_future_result(done)));
    else
        rc = fail("COPY TO STDOUT", evdb_future_error(done));
    evdb_future_unref(done);
    evdb_copy_free(cp);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: copy POSTGRESQL-URL [ROWS]\n");
        return 2;
    }
    long rows = argc > 2 ? atol(argv[2]) : 100000;
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_future *of = evdb_conn_open(loop, argv[1], NULL);
    if (!of) {
        ev_loop_destroy(loop);
        return fail("connect", evdb_last_error());
    }
    int rc = evdb_future_wait(of) == 0 ? 0 : fail("connect", evdb_future_error(of));
    evdb_conn *c = rc ? NULL : evdb_future_take_conn(of);
    evdb_future_unref(of);
    if (c) {
        rc = run(c, "CREATE TEMP TABLE items (id int8 PRIMARY KEY, name text, price float8)");
        if (!rc)
            rc = load(c, rows);
        if (!rc)
            rc = unload(c);
        evdb_future *closed = evdb_conn_close(c);
        evdb_future_wait(closed);
        evdb_future_unref(closed);
    }
    ev_loop_destroy(loop);
    return rc;
}
