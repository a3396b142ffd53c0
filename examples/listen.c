/* listen: LISTEN on a channel, NOTIFY it a few times from another
 * connection, print what arrives, close.
 *   listen 'postgresql://user:pw@127.0.0.1:5432/db' */
#include <ev.h>
#include <stdio.h>
#include <evdb.h>

enum { COUNT = 3 };

static int received;

static void on_notify(evdb_listener *l, const char *channel, const char *payload, size_t len,
                      int64_t sender_pid, void *arg)
{
    (void)l;
    (void)arg;
    printf("%s: \"%.*s\" from backend %lld\n", channel, (int)len, payload, (long long)sender_pid);
    received++;
}

/* Called once per outage, after the listener has reconnected and listens
 * again: notifications sent in between may have been missed. */
static void on_gap(evdb_listener *l, double lost_at, double restored_at, const evdb_error *cause,
                   void *arg)
{
    (void)l;
    (void)arg;
    printf("gap of %.3f s (%s): re-read what may have changed\n", restored_at - lost_at,
           evdb_error_message(cause));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: listen POSTGRESQL-URL\n");
        return 2;
    }
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    evdb_listener_opts o = {.on_gap = on_gap};
    evdb_listener *l = evdb_listener_open(loop, argv[1], &o);
    if (!l) {
        fprintf(stderr, "listen: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    /* Any text is a channel name: it is quoted as an identifier. */
    evdb_future *f = evdb_listener_listen(l, "Orders Channel", on_notify, NULL);
    int status = evdb_future_wait(f); /* acknowledged by the server */
    evdb_future_unref(f);
    evdb_pool *pool = status == 0 ? evdb_pool_new(loop, argv[1], NULL) : NULL;
    for (int i = 0; pool && i < COUNT && status == 0; i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "order %d", i + 1);
        evdb_value p[2] = {evdb_text("Orders Channel"), evdb_text(payload)};
        evdb_future *q = evdb_pool_query(pool, "SELECT pg_notify($1, $2)", p, 2, NULL);
        status = evdb_future_wait(q);
        if (status != 0)
            fprintf(stderr, "listen: %s\n", evdb_error_message(evdb_future_error(q)));
        evdb_future_unref(q);
    }
    /* Notifications arrive on the listener's own connection: run the loop
     * until all of them are in. */
    while (status == 0 && received < COUNT)
        ev_run(loop, EVRUN_ONCE);
    if (status != 0 && !pool)
        fprintf(stderr, "listen: LISTEN failed: %s\n", evdb_err_name(status));
    if (pool) {
        evdb_future *pc = evdb_pool_close(pool);
        evdb_future_wait(pc);
        evdb_future_unref(pc);
    }
    evdb_future *closed = evdb_listener_close(l); /* no callback runs after this */
    evdb_future_wait(closed);
    evdb_future_unref(closed);
    ev_loop_destroy(loop);
    printf("%d/%d notifications received\n", received, COUNT);
    return status == 0 && received == COUNT ? 0 : 1;
}
