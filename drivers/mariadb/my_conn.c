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
 */
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
    dc->thread_id = mysql_thread_id(dc->m);
    dc->state = EVDB__MY_IDLE;
    w->fd = (int)mysql_get_socket(dc->m);
    w->events = EVDB__EV_READ;
    w->timeout_ms = -1;
    return EVDB__STEP_DONE;
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
    int st = evdb__my_resolve_start(dc, w, err);
    if (st == EVDB__STEP_DONE)
        st = begin_connect(dc, w, err);
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
        if (st == EVDB__STEP_FAIL)
            dc->state = EVDB__MY_BROKEN;
        return st;
    }
    MYSQL *ret = NULL;
    int mask = mysql_real_connect_cont(&ret, dc->m, evdb__my_ready_from_events(revents, dc->mask));
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
    release_query_state(dc);
    evdb__my_handle_drop(dc->m);
    dc->m = NULL;
    release_statements(dc);
    evdb__result_free(dc->out.res);
    evdb__my_rows_free(&dc->rows);
    evdb__my_bulk_release(dc);
    dconn_free(dc);
}
