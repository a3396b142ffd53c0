/*
 * MariaDB sessions: the nonblocking connect, the graceful close and the
 * abrupt teardown.
 *
 * TLS: Connector/C 3.3 puts the socket back into blocking mode during a
 * nonblocking TLS handshake (its pvio layer switches to blocking whenever
 * no async call is active, and SSL_read has no MSG_DONTWAIT fallback), so
 * every later read could stall the loop. The socket is made nonblocking
 * again as soon as the connect finishes, which keeps queries concurrent;
 * what remains is that the handshake itself blocks the loop for its
 * duration: measured on loopback here ~3 ms with ssl_ca, but ~35 ms
 * without it, because Connector/C then loads OpenSSL's whole default CA
 * store for every connection (a network round trip or more is added
 * elsewhere). TLS is therefore opt-in (ssl=true); plain TCP and unix
 * sockets never block.
 *
 * Verification follows Connector/C: ssl_ca makes it verify the
 * certificate chain, ssl_verify additionally checks the host name.
 *
 * Host lists and target_session_attrs: the hosts of the URL are tried in
 * order, each with a fresh handle (its name resolved first, its addresses
 * in turn). Any failure on one host (refused, unreachable, rejected login,
 * lost while probing) moves on to the next, like libpq. Unless
 * target_session_attrs is any, a connected session is asked
 * "SELECT @@global.read_only" (nonblocking, like the connect) and kept only
 * when the answer matches; prefer-standby makes a second pass accepting
 * any server when no read-only one answered. When no host is kept, the
 * connect fails with one error naming each host and what went wrong there
 * (server messages name the user, never the password): EVDB_EAUTH when
 * every host refused the login, else EVDB_ECONNECT.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <errmsg.h>
#include <mysqld_error.h>

#include "my_internal.h"

/* Drop the session without a goodbye and free the handle. It never blocks:
 * after shutdown() the COM_QUIT that mysql_close still tries to send fails
 * at once instead of waiting for room in the socket buffer. Safe on a
 * handle suspended in the middle of an operation (the coroutine is freed
 * with it). */
void evdb__my_handle_drop(MYSQL *m)
{
    if (!m)
        return;
    int fd = (int)mysql_get_socket(m);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    mysql_close(m);
}

static int begin_connect(evdb__dconn *dc, evdb__wait *w, evdb_error *err);

#define PROBE_SQL "SELECT @@global.read_only"
#define MY_DEFAULT_PORT 3306u

/* Whether this connect picks among hosts (a list, or a session attribute
 * to check): failures then move on and are summed up in one error. */
static bool choosing(const evdb__dconn *dc)
{
    return dc->opts.nhosts > 1 || dc->opts.tsa != EVDB__MY_TSA_ANY;
}

/* Note what went wrong on the current host, for the summary error. */
static void note_host(evdb__dconn *dc, const char *why, bool auth)
{
    size_t cap = sizeof dc->tried;
    if (dc->tried_len < cap) {
        int n = snprintf(dc->tried + dc->tried_len, cap - dc->tried_len, "%s%s:%u: %s",
                         dc->tried_len ? "; " : "", dc->opts.host ? dc->opts.host : "",
                         dc->opts.port ? dc->opts.port : MY_DEFAULT_PORT, why);
        if (n > 0)
            dc->tried_len += (size_t)n;
        if (dc->tried_len > cap - 1)
            dc->tried_len = cap - 1;
    }
    if (!auth)
        dc->all_auth = false;
}

/* Nothing was kept: the connect fails with every host's story. */
static int fail_all(evdb__dconn *dc, evdb_error *err)
{
    evdb__my_handle_drop(dc->m);
    dc->m = NULL;
    dc->state = EVDB__MY_BROKEN;
    int code = dc->all_auth ? EVDB_EAUTH : EVDB_ECONNECT;
    if (dc->opts.tsa == EVDB__MY_TSA_ANY)
        evdb__error_set(err, code, 0, NULL, "MariaDB connect failed on every host: %s", dc->tried);
    else
        evdb__error_set(err, code, 0, NULL,
                        "MariaDB connect failed: no server matches target_session_attrs=%s: %s",
                        evdb__my_tsa_name(dc->opts.tsa), dc->tried);
    return EVDB__STEP_FAIL;
}

/* Move on to the next host of the list (or prefer-standby's second
 * pass), after note_host said what went wrong with this one. */
static int next_host(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    size_t n = dc->opts.nhosts > 1 ? dc->opts.nhosts : 1;
    if (dc->host_i + 1 < n) {
        dc->host_i++;
    } else if (dc->opts.tsa == EVDB__MY_TSA_PREFER_STANDBY && !dc->any_pass) {
        dc->any_pass = true;
        dc->host_i = 0;
    } else {
        return fail_all(dc, err);
    }
    if (dc->opts.nhosts > 1) {
        const evdb__my_host *h = &dc->opts.hosts[dc->host_i];
        char *copy = evdb__strdup(h->host);
        if (!copy) {
            evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
            dc->all_auth = false;
            return fail_all(dc, err);
        }
        evdb__free(dc->opts.host);
        dc->opts.host = copy;
        dc->opts.port = h->port;
    }
    evdb__my_addrs_free(dc);
    MYSQL *fresh = evdb__my_handle_new(&dc->opts);
    if (!fresh) {
        note_host(dc, "out of memory", false);
        return fail_all(dc, err);
    }
    evdb__my_handle_drop(dc->m);
    dc->m = fresh;
    int st = evdb__my_resolve_start(dc, w, err);
    if (st == EVDB__STEP_DONE)
        return begin_connect(dc, w, err);
    if (st == EVDB__STEP_FAIL) {
        note_host(dc, evdb_error_message(err), false);
        return next_host(dc, w, err);
    }
    return st;
}

/* Whether a server with this read_only is one to keep. */
static bool tsa_accepts(const evdb__dconn *dc, bool read_only)
{
    switch (dc->opts.tsa) {
    case EVDB__MY_TSA_READ_WRITE:
    case EVDB__MY_TSA_PRIMARY:
        return !read_only;
    case EVDB__MY_TSA_READ_ONLY:
    case EVDB__MY_TSA_STANDBY:
        return read_only;
    case EVDB__MY_TSA_PREFER_STANDBY:
        return read_only || dc->any_pass;
    case EVDB__MY_TSA_ANY:
        break;
    }
    return true;
}

/* The session is kept: the connect is done. */
static int connected(evdb__dconn *dc, evdb__wait *w)
{
    dc->thread_id = mysql_thread_id(dc->m);
    dc->state = EVDB__MY_IDLE;
    w->fd = (int)mysql_get_socket(dc->m);
    w->events = EVDB__EV_READ;
    w->timeout_ms = -1;
    return EVDB__STEP_DONE;
}

/* The read_only probe's *_start or *_cont returned mask. */
static int probe_progress(evdb__dconn *dc, int mask, evdb__wait *w, evdb_error *err)
{
    for (;;) {
        if (mask) {
            dc->mask = mask;
            evdb__my_wait_from_mask(dc->m, mask, w);
            return EVDB__STEP_WAIT;
        }
        if (dc->probe == 1) {
            if (dc->iret) {
                note_host(dc, mysql_error(dc->m), false);
                dc->probe = 0;
                return next_host(dc, w, err);
            }
            dc->probe = 2;
            mask = mysql_store_result_start(&dc->probe_res, dc->m);
            continue;
        }
        dc->probe = 0;
        MYSQL_RES *res = dc->probe_res;
        dc->probe_res = NULL;
        if (!res) {
            note_host(dc, mysql_error(dc->m), false);
            return next_host(dc, w, err);
        }
        MYSQL_ROW row = mysql_fetch_row(res);
        bool read_only = row && row[0] && strcmp(row[0], "0") != 0;
        mysql_free_result(res);
        if (tsa_accepts(dc, read_only))
            return connected(dc, w);
        note_host(dc, read_only ? "read_only is ON" : "read_only is OFF", false);
        return next_host(dc, w, err);
    }
}

static int probe_start(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    dc->probe = 1;
    int mask = mysql_real_query_start(&dc->iret, dc->m, PROBE_SQL, sizeof PROBE_SQL - 1);
    return probe_progress(dc, mask, w, err);
}

static void connect_error(evdb__dconn *dc, evdb_error *err)
{
    unsigned no = mysql_errno(dc->m);
    /* 1045: wrong user or password; 1698: the account has no password
     * login (unix_socket plugin). Server messages name the user, never the
     * password. */
    int code = no == ER_ACCESS_DENIED_ERROR || no == ER_ACCESS_DENIED_NO_PASSWORD_ERROR
                   ? EVDB_EAUTH
                   : EVDB_ECONNECT;
    const char *state = mysql_sqlstate(dc->m);
    evdb__error_set(err, code, (int)no, state && strcmp(state, "00000") != 0 ? state : NULL,
                    "MariaDB connect failed: %s", mysql_error(dc->m));
}

/* The connect's *_start or *_cont returned mask with ret. */
static int connect_progress(evdb__dconn *dc, int mask, MYSQL *ret, evdb__wait *w, evdb_error *err)
{
    if (mask) {
        dc->mask = mask;
        evdb__my_wait_from_mask(dc->m, mask, w);
        return EVDB__STEP_WAIT;
    }
    if (!ret) {
        unsigned no = mysql_errno(dc->m);
        if ((no == CR_CONNECTION_ERROR || no == CR_CONN_HOST_ERROR) &&
            dc->addr_i + 1 < dc->naddrs) {
            /* Unreachable: the name has more addresses to try. */
            MYSQL *fresh = evdb__my_handle_new(&dc->opts);
            if (fresh) {
                evdb__my_handle_drop(dc->m);
                dc->m = fresh;
                dc->addr_i++;
                return begin_connect(dc, w, err);
            }
        }
        if (choosing(dc)) {
            note_host(dc, mysql_error(dc->m),
                      no == ER_ACCESS_DENIED_ERROR || no == ER_ACCESS_DENIED_NO_PASSWORD_ERROR);
            return next_host(dc, w, err);
        }
        connect_error(dc, err);
        /* Nothing was established: closing only frees memory. */
        evdb__my_handle_drop(dc->m);
        dc->m = NULL;
        dc->state = EVDB__MY_BROKEN;
        return EVDB__STEP_FAIL;
    }
    if (dc->opts.tls && !mysql_get_ssl_cipher(dc->m)) {
        /* Connector/C 3.3 silently continues in plaintext when the server
         * offers no TLS, unless the certificate is verified. ssl=true
         * means TLS or nothing. (The check can only come after the
         * authentication exchange, which is a hashed challenge; ssl_verify
         * makes Connector/C refuse before it.) */
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL,
                        "MariaDB connect failed: TLS is required (ssl=true) but the server "
                        "did not offer it");
        evdb__my_handle_drop(dc->m);
        dc->m = NULL;
        dc->state = EVDB__MY_BROKEN;
        return EVDB__STEP_FAIL;
    }
    if (dc->opts.tls)
        evdb__my_set_nonblock((int)mysql_get_socket(dc->m));
    if (dc->opts.tsa != EVDB__MY_TSA_ANY)
        return probe_start(dc, w, err);
    return connected(dc, w);
}

static int begin_connect(evdb__dconn *dc, evdb__wait *w, evdb_error *err)
{
    const evdb__my_opts *o = &dc->opts;
    MYSQL *ret = NULL;
    /* Replies that say the session state changed make the next reset a
     * full one (my_reset.c). */
    mysql_optionsv(dc->m, MARIADB_OPT_STATUS_CALLBACK, evdb__my_track_status, dc);
    dc->track_on = false;
    dc->track_dirty = true;
    int mask =
        mysql_real_connect_start(&ret, dc->m, evdb__my_connect_host(dc), o->user, o->password,
                                 o->db, o->port, o->unix_socket, evdb__my_client_flags(true));
    return connect_progress(dc, mask, ret, w, err);
}

static void dconn_free(evdb__dconn *dc)
{
    evdb__my_opts_free(&dc->opts);
    evdb__my_addrs_free(dc);
    evdb__free(dc->cache.buckets);
    evdb__free(dc->sqlbuf);
    evdb__free(dc);
}

int evdb__my_connect_start(evdb__dconn **out, const evdb__conn_params *p, evdb__wait *w,
                           evdb_error *err)
{
    *out = NULL;
    evdb__dconn *dc = evdb__calloc(1, sizeof *dc);
    if (!dc) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB__STEP_FAIL;
    }
    int rc = evdb__my_opts_parse(p->url, &dc->opts, err);
    if (rc) {
        evdb__free(dc);
        return EVDB__STEP_FAIL;
    }
    dc->max_result_bytes = p->max_result_bytes;
    if (evdb__my_cache_init(&dc->cache, p->stmt_cache_size)) {
        dconn_free(dc);
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB__STEP_FAIL;
    }
    dc->m = evdb__my_handle_new(&dc->opts);
    if (!dc->m) {
        dconn_free(dc);
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory setting up a MariaDB handle");
        return EVDB__STEP_FAIL;
    }
    dc->state = EVDB__MY_CONNECTING;
    dc->all_auth = true;
    int st = evdb__my_resolve_start(dc, w, err);
    if (st == EVDB__STEP_FAIL && choosing(dc)) {
        note_host(dc, evdb_error_message(err), false);
        st = next_host(dc, w, err);
    } else if (st == EVDB__STEP_DONE) {
        st = begin_connect(dc, w, err);
    }
    if (st == EVDB__STEP_FAIL) {
        evdb__my_destroy(dc);
        return EVDB__STEP_FAIL;
    }
    *out = dc;
    return st;
}

int evdb__my_connect_step(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err)
{
    if (dc->state != EVDB__MY_CONNECTING) {
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL, "MariaDB connect already failed");
        return EVDB__STEP_FAIL;
    }
    if (evdb__my_resolving(dc)) {
        int st = evdb__my_resolve_step(dc, w, err);
        if (st == EVDB__STEP_DONE)
            return begin_connect(dc, w, err);
        if (st == EVDB__STEP_FAIL && choosing(dc)) {
            note_host(dc, evdb_error_message(err), false);
            return next_host(dc, w, err);
        }
        if (st == EVDB__STEP_FAIL)
            dc->state = EVDB__MY_BROKEN;
        return st;
    }
    int ready = evdb__my_ready_from_events(revents, dc->mask);
    if (dc->probe == 1)
        return probe_progress(dc, mysql_real_query_cont(&dc->iret, dc->m, ready), w, err);
    if (dc->probe == 2)
        return probe_progress(dc, mysql_store_result_cont(&dc->probe_res, dc->m, ready), w, err);
    MYSQL *ret = NULL;
    int mask = mysql_real_connect_cont(&ret, dc->m, ready);
    return connect_progress(dc, mask, ret, w, err);
}

/* Statements and results that belong to the session: freed without I/O
 * once the handle is gone or about to be dropped. */
static void release_query_state(evdb__dconn *dc)
{
    /* Before the handle: a result keeps a pointer to it. */
    evdb__my_stream_release(dc);
    if (dc->closing) {
        /* A statement whose close was suspended half-way: Connector/C has
         * already unlinked it from the handle's list, so closing the handle
         * will not detach it. Detach it here (the field is public in
         * mariadb_stmt.h) so that mysql_stmt_close only frees memory. */
        dc->closing->mysql = NULL;
        mysql_stmt_close(dc->closing);
        dc->closing = NULL;
    }
}

/* After the handle is closed: every statement left was detached from it. */
static void release_statements(evdb__dconn *dc)
{
    if (dc->st && !dc->st->cached) {
        if (dc->st->stmt)
            mysql_stmt_close(dc->st->stmt);
        dc->st->stmt = NULL;
        evdb__my_stmt_entry_free(dc->st);
    }
    dc->st = NULL;
    evdb__my_cache_clear(&dc->cache);
}

int evdb__my_close_start(evdb__dconn *dc, evdb__wait *w)
{
    w->fd = -1;
    w->events = 0;
    w->timeout_ms = -1;
    if (dc->state != EVDB__MY_IDLE) {
        /* A query or connect is suspended inside Connector/C, and a second
         * operation cannot start on the handle: drop the session. */
        release_query_state(dc);
        evdb__my_handle_drop(dc->m);
        dc->m = NULL;
        release_statements(dc);
        dc->state = EVDB__MY_CLOSED;
        return EVDB__STEP_DONE;
    }
    release_query_state(dc);
    dc->state = EVDB__MY_CLOSING;
    /* COM_QUIT; the server frees prepared statements with the session. */
    int mask = mysql_close_start(dc->m);
    if (mask) {
        dc->mask = mask;
        evdb__my_wait_from_mask(dc->m, mask, w);
        return EVDB__STEP_WAIT;
    }
    dc->m = NULL; /* mysql_close_start freed it */
    release_statements(dc);
    dc->state = EVDB__MY_CLOSED;
    return EVDB__STEP_DONE;
}

int evdb__my_close_step(evdb__dconn *dc, unsigned revents, evdb__wait *w)
{
    w->fd = -1;
    w->events = 0;
    w->timeout_ms = -1;
    if (dc->state != EVDB__MY_CLOSING)
        return EVDB__STEP_DONE;
    int mask = mysql_close_cont(dc->m, evdb__my_ready_from_events(revents, dc->mask));
    if (mask) {
        dc->mask = mask;
        evdb__my_wait_from_mask(dc->m, mask, w);
        return EVDB__STEP_WAIT;
    }
    dc->m = NULL;
    release_statements(dc);
    dc->state = EVDB__MY_CLOSED;
    return EVDB__STEP_DONE;
}

void evdb__my_destroy(evdb__dconn *dc)
{
    if (!dc)
        return;
    evdb__my_resolve_cancel(dc);
    if (dc->probe_res)
        mysql_free_result(dc->probe_res);
    dc->probe_res = NULL;
    release_query_state(dc);
    evdb__my_handle_drop(dc->m);
    dc->m = NULL;
    release_statements(dc);
    evdb__result_free(dc->out.res);
    evdb__my_rows_free(&dc->rows);
    evdb__my_bulk_release(dc);
    dconn_free(dc);
}
