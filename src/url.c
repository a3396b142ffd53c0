/*
 * URL parsing for drivers that do not hand URLs to their client library
 * (MariaDB): scheme://[user[:password]@]host[:port][/path][?k=v&...], with
 * percent-decoding. "host" may be a bracketed IPv6 literal, or empty when a
 * unix socket is given as an option. Error messages never quote the
 * password (nor the raw URL, which contains it).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Longest URL accepted: far beyond any real one, but bounded. */
#define URL_MAX_LEN 8192

int evdb__hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode [s, s+n) into a new string. Returns 0, EVDB_EURL (bad escape or an
 * escaped NUL) or EVDB_ENOMEM. */
static int decode(const char *s, size_t n, bool plus_is_space, char **out)
{
    char *d = evdb__malloc(n + 1);
    if (!d)
        return EVDB_ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < n ? evdb__hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? evdb__hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                evdb__free(d);
                return EVDB_EURL;
            }
            d[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus_is_space && s[i] == '+') {
            d[j++] = ' ';
        } else {
            d[j++] = s[i];
        }
    }
    d[j] = '\0';
    *out = d;
    return 0;
}

static int fail(evdb_error *err, int code, const char *what)
{
    if (code == EVDB_ENOMEM)
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory parsing a URL");
    else
        evdb__error_set(err, EVDB_EURL, 0, NULL, "malformed URL: %s", what);
    return err->code;
}

void evdb__url_free(evdb__url *u)
{
    if (!u)
        return;
    evdb__free(u->scheme);
    evdb__free(u->user);
    if (u->password) {
        /* Do not leave the password lying in freed memory. */
        memset(u->password, 0, strlen(u->password));
        evdb__free(u->password);
    }
    evdb__free(u->host);
    evdb__free(u->path);
    for (size_t i = 0; i < u->nparams; i++) {
        evdb__free(u->params[i].key);
        evdb__free(u->params[i].value);
    }
    evdb__free(u->params);
    memset(u, 0, sizeof *u);
}

static int parse_query(const char *q, evdb__url *u, evdb_error *err)
{
    size_t count = 1;
    for (const char *p = q; *p; p++)
        if (*p == '&')
            count++;
    u->params = evdb__calloc(count, sizeof *u->params);
    if (!u->params)
        return fail(err, EVDB_ENOMEM, NULL);
    const char *p = q;
    while (*p) {
        const char *end = strchr(p, '&');
        if (!end)
            end = p + strlen(p);
        if (end == p) { /* tolerate "a=1&&b=2" and a trailing '&' */
            p = *end ? end + 1 : end;
            continue;
        }
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq || eq == p)
            return fail(err, EVDB_EURL, "query option without a name or '='");
        evdb__url_param *kv = &u->params[u->nparams];
        int rc = decode(p, (size_t)(eq - p), true, &kv->key);
        if (rc)
            return fail(err, rc, "bad percent-escape in an option name");
        rc = decode(eq + 1, (size_t)(end - eq - 1), true, &kv->value);
        if (rc) {
            evdb__free(kv->key);
            kv->key = NULL;
            return fail(err, rc, "bad percent-escape in an option value");
        }
        u->nparams++;
        p = *end ? end + 1 : end;
    }
    return 0;
}

int evdb__url_parse(const char *s, evdb__url *u, evdb_error *err)
{
    memset(u, 0, sizeof *u);
    if (!s)
        return fail(err, EVDB_EURL, "URL is NULL");
    size_t total = strlen(s);
    if (total > URL_MAX_LEN)
        return fail(err, EVDB_EURL, "URL longer than 8192 bytes");
    const char *sep = strstr(s, "://");
    if (!sep || sep == s)
        return fail(err, EVDB_EURL, "expected scheme://");
    for (const char *p = s; p < sep; p++)
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
            return fail(err, EVDB_EURL, "invalid character in the scheme");
    int rc = decode(s, (size_t)(sep - s), false, &u->scheme);
    if (rc)
        return fail(err, rc, "scheme");
    for (char *p = u->scheme; *p; p++)
        *p = (char)tolower((unsigned char)*p);

    const char *auth = sep + 3;
    const char *auth_end = auth + strcspn(auth, "/?#");
    if (auth_end[0] == '#')
        goto bad_fragment;
    /* userinfo: the last '@' before the path (passwords may contain '@'
     * only percent-encoded, but be lenient). */
    const char *at = NULL;
    for (const char *p = auth; p < auth_end; p++)
        if (*p == '@')
            at = p;
    const char *hostpart = auth;
    if (at) {
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        const char *user_end = colon ? colon : at;
        if (user_end > auth) {
            rc = decode(auth, (size_t)(user_end - auth), false, &u->user);
            if (rc)
                goto bad_user;
        }
        if (colon) {
            rc = decode(colon + 1, (size_t)(at - colon - 1), false, &u->password);
            if (rc) {
                evdb__url_free(u);
                /* Say which part, never what it contained. */
                return fail(err, rc, "bad percent-escape in the password");
            }
        }
        hostpart = at + 1;
    }
    const char *host_end = auth_end;
    const char *port_at = NULL;
    if (hostpart < auth_end && *hostpart == '[') {
        const char *close = memchr(hostpart, ']', (size_t)(auth_end - hostpart));
        if (!close)
            goto bad_host;
        rc = decode(hostpart + 1, (size_t)(close - hostpart - 1), false, &u->host);
        if (rc)
            goto bad_host;
        if (close + 1 < auth_end) {
            if (close[1] != ':')
                goto bad_host;
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(hostpart, ':', (size_t)(auth_end - hostpart));
        if (colon) {
            host_end = colon;
            port_at = colon + 1;
        }
        if (host_end > hostpart) {
            rc = decode(hostpart, (size_t)(host_end - hostpart), false, &u->host);
            if (rc)
                goto bad_host;
        }
    }
    if (port_at) {
        if (port_at == auth_end)
            goto bad_port;
        long port = 0;
        for (const char *p = port_at; p < auth_end; p++) {
            if (!isdigit((unsigned char)*p))
                goto bad_port;
            port = port * 10 + (*p - '0');
            if (port > 65535)
                goto bad_port;
        }
        if (port == 0)
            goto bad_port;
        u->port = (int)port;
    }
    const char *rest = auth_end;
    if (*rest == '/') {
        const char *path_end = rest + 1 + strcspn(rest + 1, "?#");
        if (path_end > rest + 1) {
            rc = decode(rest + 1, (size_t)(path_end - rest - 1), false, &u->path);
            if (rc) {
                evdb__url_free(u);
                return fail(err, rc, "bad percent-escape in the database name");
            }
        }
        rest = path_end;
    }
    if (*rest == '?') {
        const char *q_end = rest + 1 + strcspn(rest + 1, "#");
        if (*q_end == '#')
            goto bad_fragment;
        rc = parse_query(rest + 1, u, err);
        if (rc) {
            evdb__url_free(u);
            return rc;
        }
        rest = q_end;
    }
    if (*rest == '#')
        goto bad_fragment;
    return 0;

bad_user:
    evdb__url_free(u);
    return fail(err, rc, "bad percent-escape in the user name");
bad_host:
    evdb__url_free(u);
    return fail(err, rc == EVDB_ENOMEM ? rc : EVDB_EURL, "bad host");
bad_port:
    evdb__url_free(u);
    return fail(err, EVDB_EURL, "port must be a number from 1 to 65535");
bad_fragment:
    evdb__url_free(u);
    return fail(err, EVDB_EURL, "fragments ('#') are not allowed");
}
