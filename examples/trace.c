/* trace: a trace of a few pooled queries and an acquire, one line per
 * event, through evdb_hooks.trace (evdb/hooks.h). Each query carries its
 * own trace_ctx (here a span name; an OpenTelemetry span context in a real
 * service), handed back in its events.
 *   trace 'postgresql://user:pw@127.0.0.1:5432/db'   (or a mariadb:// URL) */
#include <ev.h>
#include <stdio.h>
#include <evdb.h>

static void on_trace(const evdb_trace_event *ev, void *arg)
{
    (void)arg;
    printf("%-13s server=%s db=%s", evdb_trace_kind_name(ev->kind), ev->server,
           ev->database ? ev->database : "-");
    if (ev->sql)
        printf(" sql=\"%s\"", ev->sql);
    if (ev->trace_ctx)
        printf(" span=%s", (const char *)ev->trace_ctx);
    if (ev->kind == EVDB_TRACE_CONNECT_END || ev->kind == EVDB_TRACE_ACQUIRE_END ||
        ev->kind == EVDB_TRACE_QUERY_END) {
        printf(" status=%s", ev->status ? evdb_err_name(ev->status) : "ok");
        if (ev->kind == EVDB_TRACE_QUERY_END)
            printf(" rows=%lld", (long long)ev->rows);
        printf(" %.2fms", ev->duration * 1e3);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: trace URL\n");
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_hooks hooks = {.trace = on_trace};
    evdb_pool_opts po = {.max_conns = 2, .hooks = &hooks}; /* both copied */
    evdb_pool *pool = evdb_pool_new(loop, argv[1], &po);
    if (!pool) {
        fprintf(stderr, "trace: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    static const char *const spans[] = {"span-a", "span-b", "span-c"};
    const char *sql[] = {"SELECT 1", "SELECT 1 UNION ALL SELECT 2", "SELECT no_such_column"};
    evdb_future *q[3];
    for (int i = 0; i < 3; i++) {
        evdb_query_opts o = {.trace_ctx = (void *)spans[i]};
        q[i] = evdb_pool_query(pool, sql[i], NULL, 0, &o);
    }
    evdb_future *all = evdb_gather(q, 3, 0);
    evdb_future_wait(all); /* the third fails: its QUERY_END says so */
    evdb_future_unref(all);
    for (int i = 0; i < 3; i++)
        evdb_future_unref(q[i]);

    evdb_future *a = evdb_pool_acquire(pool, 5.0);
    if (evdb_future_wait(a) == 0) {
        evdb_conn *c = evdb_future_take_conn(a);
        evdb_query_opts o = {.trace_ctx = "span-d"};
        evdb_future *f = evdb_conn_query(c, "SELECT 42", NULL, 0, &o);
        evdb_future_wait(f);
        evdb_future_unref(f);
        evdb_conn_release(c);
    }
    evdb_future_unref(a);

    evdb_future *closed = evdb_pool_close(pool);
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
    return 0;
}
