/*
 * The session reset a pool queues on a connection when its borrower
 * releases it (evdb_conn_release). The reset is not awaited: the
 * connection is lent out again at once, and the next borrower's first
 * statements are queued (PostgreSQL: pipelined) right behind it. What it
 * is comes from the driver (evdb__reset in drivers/driver.h): PostgreSQL
 * sends one explicit batch that keeps the statement cache
 * (drivers/postgres/pg_reset.c), MariaDB runs COM_RESET_CONNECTION
 * (drivers/mariadb/my_reset.c), and a driver that declares none gets a
 * plain ROLLBACK. A release without the reset (evdb_conn_release_no_reset)
 * gets only that ROLLBACK, which the PostgreSQL driver leaves unsent when
 * no transaction block may be open.
 */
#include "pool_conn.h"

static const evdb_stmt rollback_only = {"ROLLBACK", NULL, 0};

evdb_future *evdb__pool_reset(evdb_conn *c, bool session)
{
    const evdb__driver *d = evdb__conn_drv(c, "evdb_conn_release");
    if (!d)
        return NULL;
    /* No timeout: a reset given up on while still queued would leave the
     * session as the borrower left it, with the next borrower behind it.
     * One that waits holds its connection until it ends (the statements
     * behind it time out by their own deadlines); one cancelled on the
     * server fails, and a failed reset drops the connection. */
    evdb_query_opts o = {.timeout = 0, .flags = EVDB_QUERY_NO_CACHE};
    const evdb__reset *r = session ? d->reset : NULL;
    const evdb_stmt *s = &rollback_only;
    if (!session)
        o.flags |= EVDB__QUERY_RELEASE_ROLLBACK;
    if (r) {
        o.flags |= EVDB__QUERY_RESET_SESSION;
        s = r->stmts;
    }
    evdb__loop *l = evdb__conn_loop(c);
    evdb__cq *q = r && r->n > 1 ? evdb__cq_new_batch(l, "evdb_conn_release", r->stmts, r->n, &o)
                                : evdb__cq_new(l, "evdb_conn_release", s->sql, NULL, 0, &o);
    if (!q)
        return NULL;
    evdb_future *f = q->f;
    evdb__conn_submit(c, q);
    return f;
}
