/*
 * The session reset the pool queues on a connection when its borrower
 * releases it (evdb_conn_release, src/pool_reset.c; evdb__reset in
 * drivers/driver.h). The reset is not awaited: the connection is lent out
 * again at once, and the next borrower's first statements are pipelined
 * right behind it. So it must be one unit that either cleans the whole
 * session or leaves the connection unusable, and it must keep the
 * statements evdb prepared, or every borrow would parse all its
 * statements again.
 *
 * One explicit batch under one Sync (one round trip, and none of its own
 * when it travels with the next borrower's statements):
 *
 *   ROLLBACK              only when a transaction block may be open after
 *                         what was sent before (a ROLLBACK outside a block
 *                         earns a WARNING)
 *   BEGIN                 the rest runs in a block of its own: if any of
 *                         it fails, the block stays aborted past the Sync,
 *                         so whatever was pipelined behind fails (25P02)
 *                         instead of running on an unclean session, and
 *                         the driver drops the connection
 *   CLOSE ALL             cursors (WITH HOLD ones outlive their block)
 *   SET SESSION AUTHORIZATION DEFAULT
 *                         session and current user back to the login
 *                         user: this resets a SET ROLE too (documented,
 *                         and tested), so no RESET ROLE
 *   RESET ALL             settings, back to the defaults of the session
 *                         (server, database, role and connection options)
 *   DO ...                the user's SQL-level PREPAREs (below), only
 *                         after a borrow whose SQL said "prepare"
 *   SELECT pg_advisory_unlock_all(), <check>
 *                         advisory locks, and the check that no SQL-level
 *                         prepared statement is left (below)
 *   UNLISTEN *; DISCARD TEMP; DISCARD SEQUENCES
 *   COMMIT
 *
 * That is DISCARD ALL without DEALLOCATE ALL and DISCARD PLANS (which
 * cannot run inside a block anyway). Every one of these may run in a
 * read-only transaction, so a user's default_transaction_read_only does
 * not make the reset fail.
 *
 * Cost. What a reset costs the server is mostly per statement, not per
 * thing cleaned (on a clean session each statement finds nothing to do),
 * and a statement parsed afresh costs about twice one already prepared:
 * measured with pgbench, 8 clients on the 2-core development machine,
 * this batch without the check cost 40 us of machine time per reset with
 * unnamed statements and 22 us with prepared ones. So every statement but
 * the transaction control (which the statement cache never holds, and
 * which is cheap to parse) and the DO block (never prepared) is kept in
 * the connection's statement cache, pinned so that it takes no place
 * from the user's statements (pg_send.c, send_batch); and the advisory
 * unlock shares one SELECT with the check.
 *
 * SQL-level PREPAREs (pg_prepared_statements.from_sql; evdb's own
 * statements come from protocol Parse messages, from_sql false, and stay
 * with their plans). A plpgsql DO block can DEALLOCATE them, but it is
 * compiled and planned afresh every time: measured, it was about two
 * thirds of the whole reset's server time. So the DO block goes only
 * after a session that sent a statement whose text says "prepare" (any
 * case, anywhere: a PREPARE, a DO block or format() building one, or
 * merely a name with the word in it); the driver remembers this per
 * session (evdb__pg_note_sql). Every reset then checks, in the SELECT
 * above, and fails when an SQL-level prepared statement exists all the
 * same: one made out of the driver's sight (in a function's body, or
 * from text built piecewise). Then the connection is dropped, as for any
 * failed reset, and the statement never reaches the next borrower.
 *
 * Through a PgBouncer in transaction mode (pg_bouncer.c) the session is
 * not the client's: each transaction may get another server connection,
 * so cleaning "the session" would clean whichever one the reset happened
 * to get, and leave the borrower's state where it was. All that a
 * borrower can leave behind on the connection evdb holds is an open
 * transaction block, which pins a server connection in the bouncer: the
 * reset is then the ROLLBACK (when a block may be open) and an empty
 * BEGIN / COMMIT, the batch's answer. No DISCARD, RESET ALL or UNLISTEN:
 * session state is what the mode refuses or documents as unusable.
 */
#include "pg_internal.h"

static const char dealloc_sql_prepares[] =
    "DO $evdb_reset$DECLARE s record; BEGIN "
    "FOR s IN SELECT name FROM pg_catalog.pg_prepared_statements WHERE from_sql LOOP "
    "EXECUTE 'DEALLOCATE ' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s.name); "
    "END LOOP; END$evdb_reset$";

/* Releases the session's advisory locks, and fails (invalid input
 * syntax for type integer: "evdb reset: unseen SQL PREPARE <name>",
 * short enough to survive in the pool's discard reason) when the session
 * has an SQL-level prepared statement; the text is not a constant, so no
 * plan folds the cast away. */
static const char unlock_and_check[] =
    "SELECT pg_catalog.pg_advisory_unlock_all(), "
    "(SELECT ('evdb reset: unseen SQL PREPARE ' OPERATOR(pg_catalog.||) name)::pg_catalog.int4 "
    "FROM pg_catalog.pg_prepared_statements WHERE from_sql LIMIT 1)";

/* In order; the PG_RESET_* indexes name the entries the driver treats
 * apart (pg_internal.h). */
static const evdb_stmt reset_stmts[] = {
    [PG_RESET_ROLLBACK] = {"ROLLBACK", NULL, 0},
    [PG_RESET_BEGIN] = {"BEGIN", NULL, 0},
    {"CLOSE ALL", NULL, 0},
    {"SET SESSION AUTHORIZATION DEFAULT", NULL, 0},
    {"RESET ALL", NULL, 0},
    [PG_RESET_DEALLOC] = {dealloc_sql_prepares, NULL, 0},
    [PG_RESET_CHECK] = {unlock_and_check, NULL, 0},
    {"UNLISTEN *", NULL, 0},
    {"DISCARD TEMP", NULL, 0},
    {"DISCARD SEQUENCES", NULL, 0},
    [PG_RESET_COMMIT] = {"COMMIT", NULL, 0},
};
_Static_assert(PG_RESET_ROLLBACK == 0 && PG_RESET_CHECK == PG_RESET_DEALLOC + 1 &&
                   PG_RESET_COMMIT + 1 == sizeof reset_stmts / sizeof *reset_stmts,
               "reset indexes out of order");

const evdb__reset evdb__pg_reset = {reset_stmts, sizeof reset_stmts / sizeof *reset_stmts};

bool evdb__pg_reset_cached(size_t i)
{
    return i != PG_RESET_ROLLBACK && i != PG_RESET_BEGIN && i != PG_RESET_DEALLOC &&
           i != PG_RESET_COMMIT;
}

bool evdb__pg_reset_skips(const evdb__dconn *dc, size_t i)
{
    if (dc->bouncer && i != PG_RESET_ROLLBACK)
        return i != PG_RESET_BEGIN && i != PG_RESET_COMMIT;
    switch (i) {
    case PG_RESET_ROLLBACK:
        return !dc->send_tx;
    case PG_RESET_DEALLOC:
        return !dc->sql_prepare_seen;
    default:
        return false;
    }
}

void evdb__pg_note_sql(evdb__dconn *dc, const evdb__query *q, const pg_stmt *hit)
{
    if (dc->sql_prepare_seen || (q->flags & EVDB__QUERY_RESET_SESSION))
        return;
    dc->sql_prepare_seen =
        hit ? hit->mentions_prepare : evdb__pg_sql_mentions_prepare(q->sql, q->sql_len);
}
