/*
 * Connect, close and destroy.
 *
 * The connect is PQconnectStartParams + PQconnectPoll: libpq parses the URL
 * itself (expand_dbname), so URIs, keyword strings, multi-host lists,
 * target_session_attrs, sslmode and unix sockets all work. libpq does not
 * enforce connect_timeout while polling; the core enforces the overall
 * deadline and calls destroy. Every poll reports the socket afresh: it can
 * change between polls (multi-host, SSL fallback), even to the same number.
 *
 * Host names in the URL are resolved first, on the loop with c-ares
 * (pg_resolve.c), and libpq gets the numeric addresses as hostaddr=.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* libpq's notice receiver (its default prints to stderr): notices go to
 * the core, for the user's hook (evdb_conn_set_notice_hook). A FATAL or
 * PANIC arrives here when no query is running (pg_terminate_backend or a
 * shutdown of an idle session): it is the reason for the loss that
 * follows, kept for that error. */
static void on_notice(void *arg, const PGresult *res)
{
    evdb__dconn *dc = arg;
    if (evdb__pg_error_is_fatal(res)) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        snprintf(dc->fatal_state, sizeof dc->fatal_state, "%s", state ? state : "");
        snprintf(dc->fatal_msg, sizeof dc->fatal_msg, "%s", msg ? msg : "");
        return;
    }
    /* Anything else is a notice for the user's hook, if there is one. */
    evdb_error *e = evdb__notice_new(dc->core);
    if (e)
        evdb__pg_error_fill(e, 0, res);
}

/* Authentication failures: the server's SQLSTATE (28P01, 28000) is not
 * exposed for a failed connect, so recognise libpq's and the server's
 * messages. */
static bool auth_failure(const char *msg)
{
    static const char *const needles[] = {
        "password authentication failed",
        "authentication failed",
        "no password supplied",
        "pg_hba.conf",
        "SCRAM exchange",
    };
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (strstr(msg, needles[i]))
            return true;
    return strstr(msg, "role \"") && strstr(msg, "does not exist");
}

static void connect_error(evdb_error *err, PGconn *conn)
{
    const char *msg = conn ? PQerrorMessage(conn) : NULL;
    if (!msg || !*msg)
        msg = "could not connect to the PostgreSQL server";
    /* libpq's messages name hosts and ports, never the password. */
    evdb__error_set(err, auth_failure(msg) ? EVDB_EAUTH : EVDB_ECONNECT, 0, NULL, "%s", msg);
}

/* A libpq parse error, with quoted fragments (which may be pieces of the
 * URL, password included) blanked out. */
static void url_error(evdb_error *err, const char *msg)
{
    char buf[256];
    size_t o = 0;
    bool quoted = false;
    for (const char *p = msg; *p && o + 4 < sizeof buf; p++) {
        if (*p == '"') {
            if (!quoted) {
                memcpy(buf + o, "\"...", 4);
                o += 4;
            } else {
                buf[o++] = '"';
            }
            quoted = !quoted;
        } else if (!quoted) {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
    evdb__error_set(err, EVDB_EURL, 0, NULL, "invalid PostgreSQL connection string: %s", buf);
}

static void dconn_free(evdb__dconn *dc)
{
    evdb__pg_pipeline_forget(dc);
    evdb__pg_cache_free(&dc->cache);
    evdb__pg_catalog_free(&dc->cat);
    evdb__pg_params_free(&dc->params);
    evdb__pg_resolve_cancel(dc);
    evdb__pg_resolve_free_lists(dc);
    evdb__free(dc->url);
    evdb__free(dc->options);
    evdb__free(dc->pend);
    evdb__free(dc->ring);
    evdb__free(dc->dealloc_sql);
    evdb__free(dc);
}

/* Start libpq's connect, with the resolved addresses when there are some.
 * Keywords after dbname override what the expanded URL says. */
/* The startup options: the user's (the URL's options, else PGOPTIONS)
 * followed by the settings the result getters rely on, which therefore
 * win: dates in ISO form ("2024-02-29", "0044-03-15 BC") and intervals in
 * the postgres style ("1 year 2 mons -3 days +04:05:06"). They are
 * session defaults, so the pool's RESET ALL restores them. NULL without
 * memory. */
#define PG_TYPE_OPTIONS "-c DateStyle=ISO -c IntervalStyle=postgres"
static char *startup_options(const PQconninfoOption *opts, bool bouncer)
{
    /* Through PgBouncer: none of evdb's (pg_bouncer.c). */
    const char *own = bouncer ? "" : PG_TYPE_OPTIONS;
    const char *user = NULL;
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (!strcmp(o->keyword, "options"))
            user = o->val;
    if (!user)
        user = getenv("PGOPTIONS");
    size_t ulen = user ? strlen(user) : 0;
    size_t olen = strlen(own);
    char *s = evdb__malloc(ulen + 1 + olen + 1);
    if (!s)
        return NULL;
    if (ulen) {
        // NOLINTNEXTLINE(bugprone-not-null-terminated-result): more follows
        memcpy(s, user, ulen);
        s[ulen++] = ' ';
    }
    memcpy(s + ulen, own, olen + 1);
    return s;
}

static int start_libpq(evdb__dconn *dc, const char *url, evdb__wait *w, evdb_error *err)
{
    const char *keys[9], *vals[9];
    size_t n = 0;
    keys[n] = "dbname";
    vals[n++] = url;
    if (dc->rs_host) {
        keys[n] = "host";
        vals[n++] = dc->rs_host;
        keys[n] = "hostaddr";
        vals[n++] = dc->rs_hostaddr;
        if (dc->rs_port) {
            keys[n] = "port";
            vals[n++] = dc->rs_port;
        }
    }
    /* evdb reads and writes UTF-8 text. */
    keys[n] = "fallback_application_name";
    vals[n++] = "evdb";
    keys[n] = "client_encoding";
    vals[n++] = "UTF8";
    keys[n] = "options";
    vals[n++] = dc->options;
    keys[n] = NULL;
    vals[n] = NULL;
    dc->conn = PQconnectStartParams(keys, vals, 1);
    evdb__pg_resolve_free_lists(dc); /* libpq copied them */
    if (!dc->conn) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory starting the connection");
        return EVDB__STEP_FAIL;
    }
    PQsetNoticeReceiver(dc->conn, on_notice, dc);
    if (PQstatus(dc->conn) == CONNECTION_BAD) {
        connect_error(err, dc->conn);
        return EVDB__STEP_FAIL;
    }
    /* PQconnectPoll's contract: behave as if it had said WRITING. */
    w->fd = PQsocket(dc->conn);
    w->events = EVDB__EV_WRITE;
    w->timeout_ms = -1;
    return EVDB__STEP_WAIT;
}

static int connect_start(evdb__dconn **out, const evdb__conn_params *p, bool bouncer, evdb__wait *w,
                         evdb_error *err)
{
    *out = NULL;
    /* Parse first, so that a malformed URL is EVDB_EURL (returned at once
     * by evdb_conn_open) rather than a failed connect. */
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(p->url, &perr);
    if (!opts) {
        if (perr) {
            url_error(err, perr);
            PQfreemem(perr);
        } else {
            evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory parsing the URL");
        }
        return EVDB__STEP_FAIL;
    }
    evdb__dconn *dc = evdb__calloc(1, sizeof *dc);
    if (!dc) {
        PQconninfoFree(opts);
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB__STEP_FAIL;
    }
    dc->core = p->core;
    dc->depth = p->pipeline_depth ? p->pipeline_depth : 1;
    dc->max_result = p->max_result_bytes;
    dc->pipeline = dc->depth > 1;
    dc->bouncer = bouncer;
    dc->cache_on = p->stmt_cache_size > 0 && !bouncer;
    int rc;
    /* The cache first: destroying dc walks it. */
    if (evdb__pg_cache_init(&dc->cache, p->stmt_cache_size) == 0)
        dc->options = startup_options(opts, bouncer);
    if (dc->options) {
        rc = evdb__pg_resolve_start(dc, opts, w, err);
    } else {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        rc = EVDB__STEP_FAIL;
    }
    PQconninfoFree(opts);
    if (rc == EVDB__STEP_WAIT) {
        /* The URL is needed after this call returns. */
        dc->url = evdb__strdup(p->url);
        if (!dc->url) {
            dconn_free(dc);
            evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
            return EVDB__STEP_FAIL;
        }
        *out = dc;
        return EVDB__STEP_WAIT;
    }
    if (rc == EVDB__STEP_DONE)
        rc = start_libpq(dc, p->url, w, err);
    if (rc == EVDB__STEP_FAIL) {
        evdb__pg_destroy(dc);
        return EVDB__STEP_FAIL;
    }
    *out = dc;
    return rc;
}

/* evdb's own URL option (pg_bouncer.c) is taken out before libpq parses
 * the URL. */
int evdb__pg_connect_start(evdb__dconn **out, const evdb__conn_params *p, evdb__wait *w,
                           evdb_error *err)
{
    *out = NULL;
    char *url = NULL;
    bool bouncer = false;
    if (evdb__pg_bouncer_strip(p->url, &url, &bouncer, err))
        return EVDB__STEP_FAIL;
    evdb__conn_params own = *p;
    if (url)
        own.url = url;
    int rc = connect_start(out, &own, bouncer, w, err);
    evdb__free(url);
    return rc;
}

int evdb__pg_connect_step(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err)
{
    (void)revents;
    w->timeout_ms = -1;
    if (dc->resolve) {
        int rc = evdb__pg_resolve_step(dc, w, err);
        if (rc == EVDB__STEP_DONE)
            rc = start_libpq(dc, dc->url, w, err);
        return rc;
    }
    switch (PQconnectPoll(dc->conn)) {
    case PGRES_POLLING_READING:
        w->fd = PQsocket(dc->conn);
        w->events = EVDB__EV_READ;
        return EVDB__STEP_WAIT;
    case PGRES_POLLING_WRITING:
        w->fd = PQsocket(dc->conn);
        w->events = EVDB__EV_WRITE;
        return EVDB__STEP_WAIT;
    case PGRES_POLLING_OK:
        break;
    case PGRES_POLLING_FAILED:
    default:
        connect_error(err, dc->conn);
        return EVDB__STEP_FAIL;
    }
    if (PQsetnonblocking(dc->conn, 1) != 0) {
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL, "could not make the connection nonblocking");
        return EVDB__STEP_FAIL;
    }
    if (dc->pipeline) {
        if (!PQenterPipelineMode(dc->conn)) {
            evdb__error_set(err, EVDB_ECONNECT, 0, NULL, "could not enter pipeline mode: %s",
                            PQerrorMessage(dc->conn));
            return EVDB__STEP_FAIL;
        }
        dc->in_pipeline = true;
    }
    if (dc->bouncer && evdb__pg_bouncer_check_session(dc, err) != EVDB__STEP_DONE)
        return EVDB__STEP_FAIL;
    dc->tx = PG_TX_IDLE;
    /* The user types go ahead of the first query (pg_catalog.c). */
    evdb__pg_catalog_reload(&dc->cat);
    /* The idle wait: a server that drops us makes the socket readable. */
    w->fd = PQsocket(dc->conn);
    w->events = EVDB__EV_READ;
    return EVDB__STEP_DONE;
}

/* PQfinish sends Terminate without waiting for anything and closes the
 * socket: nonblocking enough, so the close is done at once. */
int evdb__pg_close_start(evdb__dconn *dc, evdb__wait *w)
{
    w->fd = -1;
    w->events = 0;
    w->timeout_ms = -1;
    if (dc->conn) {
        PQfinish(dc->conn);
        dc->conn = NULL;
    }
    return EVDB__STEP_DONE;
}

int evdb__pg_close_step(evdb__dconn *dc, unsigned revents, evdb__wait *w)
{
    (void)revents;
    return evdb__pg_close_start(dc, w);
}

void evdb__pg_destroy(evdb__dconn *dc)
{
    if (!dc)
        return;
    evdb__pg_cancel_detach(dc);
    if (dc->conn)
        PQfinish(dc->conn);
    dc->conn = NULL;
    dconn_free(dc);
}
