/*
 * The session reset a pool queues on a connection when its borrower
 * releases it (evdb_conn_release). The reset is not awaited: the
 * connection is lent out again at once, and the next borrower's first
 * statements are queued (PostgreSQL: pipelined) right behind it. So it must
 * be one unit that either cleans the whole session or leaves the
 * connection unusable, and it must keep the statements evdb prepared, or
 * every borrow would parse all its statements again.
 *
 * PostgreSQL: one explicit batch under one Sync (one round trip, and
 * none of its own when it travels with the next borrower's statements):
 *
 *   ROLLBACK              only when a transaction block may be open after
 *                         what was sent before (the driver decides at send
 *                         time: a ROLLBACK outside a block earns a WARNING)
 *   BEGIN                 the rest runs in a block of its own: if any of
 *                         it fails, the block stays aborted past the Sync,
 *                         so whatever was pipelined behind fails (25P02)
 *                         instead of running on an unclean session, and
 *                         the driver drops the connection
 *   CLOSE ALL             cursors (WITH HOLD ones outlive their block)
 *   SET SESSION AUTHORIZATION DEFAULT; RESET ROLE
 *   RESET ALL             settings, back to the defaults of the session
 *                         (server, database, role and connection options)
 *   DO ...                DEALLOCATE the user's SQL-level PREPAREs
 *                         (pg_prepared_statements.from_sql): evdb's own
 *                         statements come from protocol Parse messages
 *                         (from_sql false) and stay, with their plans
 *   UNLISTEN *; SELECT pg_advisory_unlock_all()
 *   DISCARD TEMP; DISCARD SEQUENCES
 *   COMMIT
 *
 * That is DISCARD ALL without DEALLOCATE ALL and DISCARD PLANS (which
 * cannot run inside a block anyway). Every one of these may run in a
 * read-only transaction, so a user's default_transaction_read_only does
 * not make the reset fail.
 *
 * MariaDB: COM_RESET_CONNECTION (the driver runs it for
 * EVDB__QUERY_RESET_SESSION), then SET ROLE NONE (my_reset.c). It drops
 * the connection's prepared statements too; the driver empties its
 * statement cache with it and prepares each statement again on its first
 * use: one more round trip per statement per borrow. A clean-up that
 * keeps them (ROLLBACK, RELEASE_ALL_LOCKS(), UNLOCK TABLES, SET ROLE
 * NONE, ...) would save those round trips, about half of them in a loop
 * of borrows of 5 statements (evdb-bench-borrow), but it cannot be
 * complete: nothing lists a session's SQL-level PREPAREs (nor the session
 * variables it changed) without performance_schema, so a borrower's
 * PREPARE would reach the next one.
 *
 * Any other driver: a ROLLBACK, as before.
 */
#include <string.h>

#include "query.h"

static const char dealloc_sql_prepares[] =
    "DO $evdb_reset$DECLARE s record; BEGIN "
    "FOR s IN SELECT name FROM pg_catalog.pg_prepared_statements WHERE from_sql LOOP "
    "EXECUTE 'DEALLOCATE ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s.name); "
    "END LOOP; END$evdb_reset$";

/* The statements of the PostgreSQL reset, in order; the driver skips the
 * first (ROLLBACK) when no block can be open. */
static const evdb_stmt pg_reset[] = {
    {"ROLLBACK", NULL, 0},
    {"BEGIN", NULL, 0},
    {"CLOSE ALL", NULL, 0},
    {"SET SESSION AUTHORIZATION DEFAULT", NULL, 0},
    {"RESET ROLE", NULL, 0},
    {"RESET ALL", NULL, 0},
    {dealloc_sql_prepares, NULL, 0},
    {"UNLISTEN *", NULL, 0},
    {"SELECT pg_catalog.pg_advisory_unlock_all()", NULL, 0},
    {"DISCARD TEMP", NULL, 0},
    {"DISCARD SEQUENCES", NULL, 0},
    {"COMMIT", NULL, 0},
};

evdb_future *evdb__pool_reset(evdb_conn *c)
{
    const char *drv = evdb_conn_driver(c);
    /* No timeout: a reset given up on while still queued would leave the
     * session as the borrower left it, with the next borrower behind it.
     * One that waits holds its connection until it ends (the statements
     * behind it time out by their own deadlines); one cancelled on the
     * server fails, and a failed reset drops the connection. */
    evdb_query_opts o = {.timeout = 0, .flags = EVDB_QUERY_NO_CACHE};
    evdb__cq *q;
    if (drv && strcmp(drv, "postgres") == 0) {
        o.flags |= EVDB__QUERY_RESET_SESSION;
        q = evdb__cq_new_batch(evdb__conn_loop(c), "evdb_conn_release", pg_reset,
                               sizeof pg_reset / sizeof *pg_reset, &o);
    } else if (drv && strcmp(drv, "mariadb") == 0) {
        /* Not SQL on purpose: it must fail where the flag is unknown. */
        o.flags |= EVDB__QUERY_RESET_SESSION;
        q = evdb__cq_new(evdb__conn_loop(c), "evdb_conn_release", "evdb: reset session", NULL, 0,
                         &o);
    } else {
        q = evdb__cq_new(evdb__conn_loop(c), "evdb_conn_release", "ROLLBACK", NULL, 0, &o);
    }
    if (!q)
        return NULL;
    evdb_future *f = q->f;
    evdb__conn_submit(c, q);
    return f;
}
