/*
 * The SQL a query sends, and the server-side backstop for its timeout.
 *
 * A timeout is enforced by the core (the future fails at the deadline) and
 * by a KILL QUERY over a second session (my_kill.c). That second session
 * may be impossible to open: the server is at max_connections, the user at
 * max_user_connections, or the server is too slow to accept one. The
 * statement then runs on to its end and the connection serves nobody
 * meanwhile. With the URL option server_timeout=true, statements that only
 * read carry their deadline to the server as well:
 *
 *   SET STATEMENT max_statement_time=<timeout> FOR <the query's SQL>
 *
 * (MariaDB 10.1+), so the server stops them by itself with error 1969
 * (SQLSTATE 70100), which the driver reports as EVDB_ETIMEDOUT. The value is
 * the query's whole timeout, counted by the server from the moment the
 * statement starts: never earlier than the core's deadline, which counts
 * from submission, so the KILL QUERY stays the usual way a statement ends
 * and this one only acts when the KILL could not.
 *
 * Only reads (SELECT, WITH, SHOW, VALUES) get the prefix: a write stopped
 * half way keeps what it did on non-transactional tables, and is better
 * left to the KILL the application asked for.
 * In a multi-statement text query only the first statement is covered.
 * On the prepared path the prefix is part of the prepared text, so each
 * distinct timeout is a statement of its own in the cache.
 */
#include <stdio.h>
#include <string.h>

#include "my_internal.h"

/* max_statement_time's upper limit (a year, in seconds): longer timeouts
 * get no backstop. */
#define STATEMENT_TIME_MAX_S 31536000.0
/* "SET STATEMENT max_statement_time=31536000.000 FOR " fits easily. */
#define PREFIX_MAX 64
/* A copy of an unusually long query is not kept after it. */
#define SQLBUF_KEEP_MAX 65536
#define MS_PER_S 1000

bool evdb__my_read_only_sql(const char *sql, size_t len)
{
    static const char *const kw[] = {"SELECT", "WITH", "SHOW", "VALUES"};
    const char *end = sql + len;
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (evdb__my_keyword(sql, end, kw[i], NULL))
            return true;
    return false;
}

static bool wants_backstop(const evdb__dconn *dc, const evdb__query *q)
{
    return dc->opts.server_timeout && q->timeout > 0 && q->timeout <= STATEMENT_TIME_MAX_S &&
           !(q->flags & EVDB__QUERY_RESET_SESSION) && evdb__my_read_only_sql(q->sql, q->sql_len);
}

int evdb__my_sql_for(evdb__dconn *dc, const evdb__query *q, evdb_error *err)
{
    dc->sql = q->sql;
    dc->sql_len = q->sql_len;
    if (!wants_backstop(dc, q))
        return 0;
    /* Whole milliseconds, rounded up: never earlier than the core. */
    double ms_d = q->timeout * MS_PER_S;
    unsigned long long ms = (unsigned long long)ms_d;
    if ((double)ms < ms_d)
        ms++;
    char prefix[PREFIX_MAX];
    int n = snprintf(prefix, sizeof prefix, "SET STATEMENT max_statement_time=%llu.%03u FOR ",
                     ms / MS_PER_S, (unsigned)(ms % MS_PER_S));
    size_t need = (size_t)n + q->sql_len + 1;
    if (need > dc->sqlbuf_cap) {
        char *b = evdb__realloc(dc->sqlbuf, need);
        if (!b) {
            evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
            return EVDB_ENOMEM;
        }
        dc->sqlbuf = b;
        dc->sqlbuf_cap = need;
    }
    memcpy(dc->sqlbuf, prefix, (size_t)n);
    memcpy(dc->sqlbuf + n, q->sql, q->sql_len + 1);
    dc->sql = dc->sqlbuf;
    dc->sql_len = need - 1;
    return 0;
}

void evdb__my_sql_done(evdb__dconn *dc)
{
    dc->sql = NULL;
    dc->sql_len = 0;
    if (dc->sqlbuf_cap > SQLBUF_KEEP_MAX) {
        evdb__free(dc->sqlbuf);
        dc->sqlbuf = NULL;
        dc->sqlbuf_cap = 0;
    }
}
