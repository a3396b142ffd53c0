/*
 * Connection hooks and tracing (include/evdb/hooks.h, src/hooks_rt.h):
 * what a URL names for trace events, spans pairing START and END events,
 * the credentials hook's password put into a URL, lifetime jitter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hooks_rt.h"

/* ---- what the URL names ---- */

/* Room for one of server, database, user. */
#define NAME_MAX_LEN 256

typedef struct names {
    char server[NAME_MAX_LEN], database[NAME_MAX_LEN], user[NAME_MAX_LEN];
    bool has_db, has_user;
} names;

static void put(char *dst, const char *src, size_t n)
{
    if (n >= NAME_MAX_LEN)
        n = NAME_MAX_LEN - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static const char *url_param(const evdb__url *u, const char *key)
{
    for (size_t i = 0; i < u->nparams; i++)
        if (strcmp(u->params[i].key, key) == 0)
            return u->params[i].value;
    return NULL;
}

static void names_from_parsed(const evdb__url *u, names *n)
{
    const char *host = u->host ? u->host : url_param(u, "host");
    const char *sock = url_param(u, "socket");
    const char *port = url_param(u, "port");
    if (!host && sock)
        snprintf(n->server, sizeof n->server, "%s", sock);
    else if (u->port)
        snprintf(n->server, sizeof n->server, "%s:%d", host ? host : "localhost", u->port);
    else if (port)
        snprintf(n->server, sizeof n->server, "%s:%s", host ? host : "localhost", port);
    else
        snprintf(n->server, sizeof n->server, "%s", host ? host : "localhost");
    const char *db = u->path && u->path[0] == '/' ? u->path + 1 : u->path;
    if (!db || !*db)
        db = url_param(u, "dbname") ? url_param(u, "dbname") : url_param(u, "database");
    if (db && *db) {
        put(n->database, db, strlen(db));
        n->has_db = true;
    }
    const char *user = u->user ? u->user : url_param(u, "user");
    if (user) {
        put(n->user, user, strlen(user));
        n->has_user = true;
    }
}

/* A URL evdb__url_parse refuses (libpq's multi-host form): the authority
 * after the userinfo as written, the path as the database. */
static void names_raw(const char *url, names *n)
{
    const char *auth = strstr(url, "://") + 3;
    size_t len = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + len; p++)
        if (*p == '@')
            at = p;
    if (at) {
        size_t ulen = strcspn(auth, ":@");
        put(n->user, auth, ulen);
        n->has_user = ulen > 0;
        len -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    put(n->server, auth, len);
    if (auth[len] == '/' && auth[len + 1] && auth[len + 1] != '?') {
        put(n->database, auth + len + 1, strcspn(auth + len + 1, "?#"));
        n->has_db = true;
    }
}

/* One value of a libpq keyword string (key = value, value maybe quoted). */
static const char *kw_value(const char *s, const char *key, char *out)
{
    size_t klen = strlen(key);
    for (const char *p = s; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        size_t kl = (size_t)(p - k);
        while (*p == ' ' || *p == '=')
            p++;
        size_t o = 0;
        bool quoted = *p == '\'';
        p += quoted;
        for (; *p && (quoted ? *p != '\'' : *p != ' '); p++) {
            if (*p == '\\' && p[1])
                p++;
            if (o + 1 < NAME_MAX_LEN)
                out[o++] = *p;
        }
        p += quoted && *p;
        out[o] = '\0';
        if (kl == klen && strncmp(k, key, klen) == 0)
            return out;
    }
    return NULL;
}

static void names_keywords(const char *s, names *n)
{
    char host[NAME_MAX_LEN], port[NAME_MAX_LEN];
    bool h = kw_value(s, "host", host) || kw_value(s, "hostaddr", host);
    bool p = kw_value(s, "port", port) != NULL;
    const char *hs = h ? host : "localhost";
    size_t hl = strlen(hs);
    put(n->server, hs, hl);
    if (p && hl + 1 < NAME_MAX_LEN) {
        n->server[hl] = ':';
        put(n->server + hl + 1, port, strnlen(port, NAME_MAX_LEN - hl - 2));
    }
    n->has_db = kw_value(s, "dbname", n->database) != NULL;
    n->has_user = kw_value(s, "user", n->user) != NULL;
}

static void names_of(const char *url, names *n)
{
    memset(n, 0, sizeof *n);
    if (!strstr(url, "://")) {
        names_keywords(url, n);
        return;
    }
    evdb__url u;
    evdb_error err;
    if (evdb__url_parse(url, &u, &err) == 0) {
        names_from_parsed(&u, n);
        evdb__url_free(&u);
    } else {
        names_raw(url, n);
    }
}

/* ---- the hooks a connection or pool keeps ---- */

static bool any_hook(const evdb_hooks *h)
{
    return h && (h->trace || h->on_connect || h->credentials);
}

static evdb__hk *hk_build(const evdb_hooks *h, const evdb_pool *pool, const char *server,
                          const char *db, const char *user)
{
    size_t ls = strlen(server) + 1, ld = db ? strlen(db) + 1 : 0, lu = user ? strlen(user) + 1 : 0;
    evdb__hk *k = evdb__malloc(sizeof *k + ls + ld + lu);
    if (!k)
        return NULL;
    char *p = (char *)(k + 1);
    k->h = *h;
    k->pool = pool;
    k->server = memcpy(p, server, ls);
    k->database = db ? memcpy(p + ls, db, ld) : NULL;
    k->user = user ? memcpy(p + ls + ld, user, lu) : NULL;
    return k;
}

evdb__hk *evdb__hk_new(const evdb_hooks *h, const char *url, const evdb_pool *pool, bool *nomem)
{
    *nomem = false;
    if (!any_hook(h))
        return NULL;
    names n;
    names_of(url, &n);
    evdb__hk *k = hk_build(h, pool, n.server[0] ? n.server : "?", n.has_db ? n.database : NULL,
                           n.has_user ? n.user : NULL);
    *nomem = !k;
    return k;
}

evdb__hk *evdb__hk_dup(const evdb__hk *k)
{
    return k ? hk_build(&k->h, k->pool, k->server, k->database, k->user) : NULL;
}

void evdb__hk_free(evdb__hk *k)
{
    evdb__free(k);
}

void evdb__hk_emit(const evdb__hk *k, evdb_trace_event *ev)
{
    if (!k->h.trace)
        return;
    ev->server = k->server;
    ev->database = k->database;
    ev->user = k->user;
    ev->pool = k->pool;
    k->h.trace(ev, k->h.arg);
}

/* ---- spans: a START now, its END when the future completes ---- */

typedef struct span {
    evdb_trace_fn trace;
    void *arg;
    evdb_trace_kind end;
    double start;
    evdb__loop *loop;
    void *ctx;
    const void *conn;
    const evdb_pool *pool;
    const char *server, *database, *user, *sql; /* in this block */
} span;

static int64_t rows_of(evdb_future *f)
{
    if (evdb__future_kind(f) != EVDB__FK_QUERY || evdb__future_peek(f) != 0)
        return 0;
    const evdb_result *r = evdb_future_result(f);
    if (!r)
        return 0;
    return evdb_result_ncols(r) ? (int64_t)evdb_result_nrows(r) : evdb_result_affected(r);
}

static void span_end(evdb_future *f, void *arg)
{
    span *s = arg;
    int st = evdb__future_peek(f);
    evdb_trace_event ev = {
        .kind = s->end,
        .server = s->server,
        .database = s->database,
        .user = s->user,
        .conn = s->conn,
        .pool = s->pool,
        .sql = s->sql,
        .trace_ctx = s->ctx,
        .status = st,
        .error = st ? evdb_future_error(f) : NULL,
        .rows = rows_of(f),
        .duration = evdb__loop_now(s->loop) - s->start,
    };
    s->trace(&ev, s->arg);
    evdb__loop_unref(s->loop);
    evdb__free(s);
}

static char *dup_into(char **p, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = memcpy(*p, s, n);
    *p += n;
    return d;
}

static size_t len0(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

void evdb__hk_span(const evdb__hk *k, evdb__loop *l, evdb_trace_kind start, evdb_future *f,
                   const char *sql, void *ctx, const void *conn)
{
    evdb_trace_event ev = {.kind = start, .sql = sql, .trace_ctx = ctx, .conn = conn};
    evdb__hk_emit(k, &ev);
    size_t extra = len0(k->server) + len0(k->database) + len0(k->user) + len0(sql);
    span *s = evdb__malloc(sizeof *s + extra);
    if (!s) {
        ev.kind = start + 1;
        ev.status = EVDB_ENOMEM;
        evdb__hk_emit(k, &ev);
        return;
    }
    char *p = (char *)(s + 1);
    memset(s, 0, sizeof *s);
    s->trace = k->h.trace;
    s->arg = k->h.arg;
    s->end = start + 1;
    s->start = evdb__loop_now(l);
    s->loop = l;
    s->ctx = ctx;
    s->conn = conn;
    s->pool = k->pool;
    s->server = dup_into(&p, k->server);
    s->database = dup_into(&p, k->database);
    s->user = dup_into(&p, k->user);
    s->sql = dup_into(&p, sql);
    evdb__loop_ref(l);
    if (evdb_future_on_done(f, span_end, s)) {
        evdb__loop_unref(l);
        evdb__free(s);
        ev.kind = start + 1;
        ev.status = EVDB_ENOMEM;
        evdb__hk_emit(k, &ev);
    }
}

/* ---- the credentials hook's password ---- */

static bool unreserved(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

/* scheme://user:<pw percent-encoded>@host... */
static char *uri_with_password(const char *url, const char *pw)
{
    const char *auth = strstr(url, "://") + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;
    size_t ulen = at ? strcspn(auth, ":@") : 0;
    const char *rest = at ? at + 1 : auth;
    size_t n = (size_t)(auth - url) + ulen + 1 + 3 * strlen(pw) + 1 + strlen(rest) + 1;
    char *out = evdb__malloc(n);
    if (!out)
        return NULL;
    size_t o = (size_t)(auth - url) + ulen;
    memcpy(out, url, o);
    out[o++] = ':';
    for (const unsigned char *p = (const unsigned char *)pw; *p; p++) {
        if (unreserved(*p))
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, 4, "%%%02X", *p);
    }
    out[o++] = '@';
    memcpy(out + o, rest, strlen(rest) + 1);
    return out;
}

/* keywords password='<pw with ' and \ escaped>' (the last one wins). */
static char *keywords_with_password(const char *url, const char *pw)
{
    size_t ul = strlen(url);
    char *out = evdb__malloc(ul + 2 * strlen(pw) + sizeof " password=''");
    if (!out)
        return NULL;
    memcpy(out, url, ul);
    size_t o = ul;
    memcpy(out + o, " password='", 11);
    o += 11;
    for (const char *p = pw; *p; p++) {
        if (*p == '\'' || *p == '\\')
            out[o++] = '\\';
        out[o++] = *p;
    }
    out[o++] = '\'';
    out[o] = '\0';
    return out;
}

char *evdb__url_with_password(const char *url, const char *pw)
{
    return strstr(url, "://") ? uri_with_password(url, pw) : keywords_with_password(url, pw);
}

void evdb__hk_free_secret(char *s)
{
    if (!s)
        return;
    volatile char *v = s;
    while (*v)
        *v++ = '\0';
    evdb__free(s);
}

static void free_secret(void *s)
{
    evdb__hk_free_secret(s);
}

evdb_future *evdb_hooks_password(struct ev_loop *loop, const char *password)
{
    if (!loop || !password) {
        evdb__fail_now(EVDB_EINVAL, "evdb_hooks_password: loop and password are required");
        return NULL;
    }
    char *copy = evdb__strdup(password);
    evdb_future *f = copy ? evdb_future_new(loop) : NULL;
    if (!f) {
        evdb__hk_free_secret(copy);
        evdb__fail_now(EVDB_ENOMEM, "evdb_hooks_password: out of memory");
        return NULL;
    }
    evdb_future_resolve(f, copy, free_secret);
    return f;
}

const char *evdb_trace_kind_name(evdb_trace_kind kind)
{
    static const char *const n[] = {"connect_start", "connect_end", "acquire_start",
                                    "acquire_end",   "query_start", "query_end"};
    return (unsigned)kind < sizeof n / sizeof n[0] ? n[kind] : "?";
}

/* ---- lifetime jitter ---- */

double evdb__hk_jittered(double max_lifetime, double jitter, uint32_t *rng)
{
    if (!(jitter > 0))
        return max_lifetime;
    if (jitter > 1)
        jitter = 1;
    uint32_t x = *rng ? *rng : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *rng = x;
    return max_lifetime * (1.0 - jitter * ((double)x / 4294967296.0));
}
