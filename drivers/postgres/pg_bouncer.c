/*
 * PgBouncer transaction mode: `?evdb_pgbouncer=transaction` in the URL
 * (or `evdb_pgbouncer=transaction` in a keyword string).
 *
 * A bouncer in transaction mode lends a server connection to a client for
 * one transaction (an implicit one ends at its Sync), then to any other
 * client. Whatever lives in the session, not in the transaction, is left
 * on a server connection the next transaction may not get: named prepared
 * statements ("prepared statement evdb_3 does not exist", or worse, some
 * other client's evdb_3), SET, LISTEN, SQL PREPARE, temporary tables,
 * session advisory locks, WITH HOLD cursors. PgBouncer 1.18 forwards the
 * protocol without looking into it, so evdb must not rely on any of it:
 *
 *   - the statement cache is off: every query is an unnamed Parse, Bind,
 *     Execute and Sync, its parameters still out of line; one Sync per
 *     query, so each is a transaction of its own and pipelining keeps
 *     working (the bouncer holds the server connection until every Sync it
 *     forwarded has been answered);
 *   - no startup options (PgBouncer refuses the `options` startup
 *     parameter unless told to ignore it): the server's own DateStyle and
 *     IntervalStyle must be ISO and postgres, checked once connected;
 *   - the pool's release reset only ends a block the borrower left open
 *     (pg_reset.c): the rest of the usual reset would clean whichever
 *     server connection it happened to get;
 *   - LISTEN and SQL PREPARE are refused (EVDB_ENOTSUP) rather than
 *     silently lost; evdb_conn_prepare fails with EVDB_ENOTSUP.
 *
 * Cancel needs nothing: PgBouncer hands out its own cancel keys and
 * forwards a cancel request to the server connection the client holds.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pg_internal.h"

/* Where one key=value of a keyword string or a URI's query starts and
 * ends (the separator after it included), and its value. */
typedef struct span {
    size_t start, end;
    size_t vstart, vlen;
} span;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A URI's query: "&"-separated key=value pairs after the first '?'. */
static bool find_in_query(const char *url, span *s)
{
    const char *q = strchr(url, '?');
    if (!q)
        return false;
    const size_t klen = sizeof PG_BOUNCER_KEY - 1;
    size_t i = (size_t)(q - url) + 1;
    while (url[i] && url[i] != '#') {
        size_t end = i + strcspn(url + i, "&#");
        if (end - i > klen && !strncmp(url + i, PG_BOUNCER_KEY, klen) && url[i + klen] == '=') {
            s->start = i;
            s->vstart = i + klen + 1;
            s->vlen = end - s->vstart;
            /* Its '&' goes with it; the last one takes the '&' (or the
             * '?') before it instead. */
            s->end = url[end] == '&' ? end + 1 : end;
            if (url[end] != '&')
                s->start--;
            return true;
        }
        i = url[end] == '&' ? end + 1 : end;
    }
    return false;
}

/* One value of a keyword string at i: quoted ('...' with \ escapes) or
 * up to the next space. Returns where it ends. */
static size_t kw_value(const char *s, size_t i)
{
    if (s[i] == '\'') {
        for (i++; s[i] && s[i] != '\''; i++)
            if (s[i] == '\\' && s[i + 1])
                i++;
        return s[i] ? i + 1 : i;
    }
    for (; s[i] && !is_space(s[i]); i++)
        if (s[i] == '\\' && s[i + 1])
            i++;
    return i;
}

/* A keyword string: key = value pairs separated by spaces. */
static bool find_in_keywords(const char *url, span *s)
{
    const size_t klen = sizeof PG_BOUNCER_KEY - 1;
    size_t i = 0;
    for (;;) {
        while (is_space(url[i]))
            i++;
        if (!url[i])
            return false;
        size_t key = i;
        while (url[i] && url[i] != '=' && !is_space(url[i]))
            i++;
        size_t key_end = i;
        while (is_space(url[i]))
            i++;
        if (url[i] != '=')
            return false; /* malformed: libpq says so */
        i++;
        while (is_space(url[i]))
            i++;
        size_t v = i;
        i = kw_value(url, i);
        if (key_end - key == klen && !strncmp(url + key, PG_BOUNCER_KEY, klen)) {
            s->start = key;
            s->end = i;
            s->vstart = v;
            s->vlen = i - v;
            return true;
        }
    }
}

int evdb__pg_bouncer_strip(const char *url, char **out, bool *on, evdb_error *err)
{
    *out = NULL;
    *on = false;
    if (!strstr(url, PG_BOUNCER_KEY))
        return 0;
    span s;
    bool uri = !strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11);
    if (!(uri ? find_in_query(url, &s) : find_in_keywords(url, &s)))
        return 0;
    const size_t tlen = sizeof PG_BOUNCER_TRANSACTION - 1;
    const char *v = url + s.vstart;
    size_t vlen = s.vlen;
    if (!uri && vlen >= 2 && v[0] == '\'' && v[vlen - 1] == '\'') {
        v++;
        vlen -= 2;
    }
    if (vlen != tlen || strncasecmp(v, PG_BOUNCER_TRANSACTION, tlen) != 0) {
        /* The value is not quoted: the URL may hold a password. */
        evdb__error_set(err, EVDB_EURL, 0, NULL,
                        "invalid PostgreSQL connection string: " PG_BOUNCER_KEY
                        " takes one value, " PG_BOUNCER_TRANSACTION
                        " (PgBouncer's transaction pool mode; session mode needs no option)");
        return EVDB_EURL;
    }
    size_t len = strlen(url);
    char *copy = evdb__malloc(len - (s.end - s.start) + 1);
    if (!copy) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB_ENOMEM;
    }
    memcpy(copy, url, s.start);
    memcpy(copy + s.start, url + s.end, len - s.end + 1);
    *out = copy;
    *on = true;
    return 0;
}

/* Why sql cannot go through the bouncer, into buf; NULL when it can. */
static const char *refuse_sql(const char *sql, size_t len, char *buf, size_t size)
{
    const char *what = evdb__pg_sql_session_only(sql, len);
    if (!what)
        return NULL;
    if (!buf || !size) /* never so; it also tells GCC's LTO that buf is set */
        return what;
    snprintf(buf, size,
             "%s keeps session state, which a PgBouncer in transaction mode does not keep "
             "(" PG_BOUNCER_KEY "=" PG_BOUNCER_TRANSACTION "): %s",
             what,
             what[0] == 'L' ? "notifications would go to whichever client gets that server "
                              "connection next; connect to PostgreSQL directly to listen"
                            : "the next transaction may run on another server connection; "
                              "use parameters ($1) instead");
    return buf;
}

const char *evdb__pg_bouncer_refusal(const evdb__dconn *dc, const evdb__query *q, char *buf,
                                     size_t size)
{
    if (!dc->bouncer || (q->flags & EVDB__QUERY_RESET_SESSION))
        return NULL;
    if (!q->nbatch)
        return refuse_sql(q->sql, q->sql_len, buf, size);
    for (size_t i = 0; i < q->nbatch; i++) {
        const char *why = refuse_sql(q->batch[i].sql, q->batch[i].sql_len, buf, size);
        if (why)
            return why;
    }
    return NULL;
}

int evdb__pg_bouncer_check_session(const evdb__dconn *dc, evdb_error *err)
{
    const char *ds = PQparameterStatus(dc->conn, "DateStyle");
    const char *is = PQparameterStatus(dc->conn, "IntervalStyle");
    if ((ds && strncmp(ds, "ISO", 3) != 0) || (is && strcmp(is, "postgres") != 0)) {
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL,
                        "through PgBouncer (" PG_BOUNCER_KEY "=" PG_BOUNCER_TRANSACTION
                        ") evdb cannot set DateStyle and IntervalStyle for its session: the "
                        "server's defaults must be ISO and postgres (they are DateStyle %s, "
                        "IntervalStyle %s; ALTER ROLE or ALTER DATABASE ... SET can fix them)",
                        ds ? ds : "?", is ? is : "?");
        return EVDB__STEP_FAIL;
    }
    return EVDB__STEP_DONE;
}
