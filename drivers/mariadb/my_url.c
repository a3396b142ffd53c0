/*
 * MariaDB URLs and the Connector/C handle they describe.
 *
 *   mariadb://[user[:password]@]host[:port][/db][?option=value&...]
 *   mariadb://[user[:password]@]host1[:port1],host2[:port2],...[/db][?...]
 *   mysql://...   (the same)
 *
 * Options: unix_socket, charset (default utf8mb4), ssl / tls (true/false),
 * ssl_ca, ssl_cert, ssl_key, ssl_verify, connect_timeout (seconds),
 * server_timeout (true/false: reads carry their timeout to the server as
 * well, see my_backstop.c), target_session_attrs (any, read-write,
 * read-only, primary, standby, prefer-standby: which server of the host
 * list to keep, see my_conn.c).
 * Anything else is rejected by name, so a typo never silently changes how
 * a connection is secured. A host beginning with '/' (percent-encoded) is a
 * unix socket path.
 *
 * TLS: ssl=true requires TLS (a server without it fails the connect) but
 * checks no certificate, which guards against eavesdropping only; ssl_ca
 * makes Connector/C verify the certificate chain, and ssl_verify=true the
 * host name as well. Any ssl_* option implies ssl=true. connect_timeout
 * bounds each wait of the connect (Connector/C's meaning); the whole
 * connect is bounded by evdb_conn_opts.connect_timeout.
 *
 * The host names a TCP host, "localhost" included: Connector/C would take
 * "localhost" to mean its compiled-in unix socket, which is not what a URL
 * with a port says (libpq's URLs behave the same way). Unix sockets are
 * chosen explicitly with unix_socket= or a '/' host.
 *
 * Host names: Connector/C resolves them with a synchronous getaddrinfo
 * inside mysql_real_connect_start, which would stall the loop on a slow DNS
 * server. IP literals (and "localhost", answered from /etc/hosts) resolve
 * without any network round trip; other names are resolved before the
 * connect by my_resolve.c where that is possible, see there.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "my_internal.h"

#define DEFAULT_CHARSET "utf8mb4"
/* Charset names are short identifiers ("utf8mb4", "latin1"). */
#define CHARSET_NAME_MAX 32
/* A day is far beyond any sensible per-wait connect timeout. */
#define CONNECT_TIMEOUT_MAX 86400

static void wipe_free(char *s)
{
    if (s) {
        /* The password must not linger in freed memory. */
        memset(s, 0, strlen(s));
        evdb__free(s);
    }
}

void evdb__my_opts_free(evdb__my_opts *o)
{
    evdb__free(o->host);
    evdb__free(o->user);
    wipe_free(o->password);
    evdb__free(o->db);
    evdb__free(o->unix_socket);
    evdb__free(o->charset);
    evdb__free(o->ssl_ca);
    evdb__free(o->ssl_cert);
    evdb__free(o->ssl_key);
    for (size_t i = 0; i < o->nhosts; i++)
        evdb__free(o->hosts[i].host);
    evdb__free(o->hosts);
    memset(o, 0, sizeof *o);
}

/* Booleans as people write them in URLs. Returns 0 or -1. */
static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Whole seconds, rounding fractions up (Connector/C counts seconds). */
static int parse_seconds(const char *v, unsigned *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d > 0) || d > CONNECT_TIMEOUT_MAX)
        return -1;
    unsigned s = (unsigned)d;
    if ((double)s < d)
        s++;
    *out = s;
    return 0;
}

static bool valid_charset(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > CHARSET_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && v[i] != '_')
            return false;
    return true;
}

/* Move *from into *to (taking ownership). */
static void take(char **to, char **from)
{
    evdb__free(*to);
    *to = *from;
    *from = NULL;
}

static int bad(evdb_error *err, const char *fmt, const char *what)
{
    evdb__error_set(err, EVDB_EURL, 0, NULL, fmt, what);
    return EVDB_EURL;
}

static int apply_option(evdb__my_opts *o, evdb__url_param *kv, bool *ssl_set, bool *ssl_on,
                        evdb_error *err)
{
    const char *k = kv->key;
    if (strcmp(k, "unix_socket") == 0) {
        if (!kv->value[0])
            return bad(err, "MariaDB URL option '%s' needs a path", k);
        take(&o->unix_socket, &kv->value);
    } else if (strcmp(k, "charset") == 0) {
        if (!valid_charset(kv->value))
            return bad(err, "MariaDB URL option '%s' needs a character set name", k);
        take(&o->charset, &kv->value);
    } else if (strcmp(k, "ssl") == 0 || strcmp(k, "tls") == 0) {
        if (parse_bool(kv->value, ssl_on))
            return bad(err, "MariaDB URL option '%s' must be true or false", k);
        *ssl_set = true;
    } else if (strcmp(k, "ssl_verify") == 0) {
        if (parse_bool(kv->value, &o->tls_verify))
            return bad(err, "MariaDB URL option '%s' must be true or false", k);
    } else if (strcmp(k, "ssl_ca") == 0 || strcmp(k, "ssl_cert") == 0 ||
               strcmp(k, "ssl_key") == 0) {
        if (!kv->value[0])
            return bad(err, "MariaDB URL option '%s' needs a file name", k);
        char **dst = strcmp(k, "ssl_ca") == 0     ? &o->ssl_ca
                     : strcmp(k, "ssl_cert") == 0 ? &o->ssl_cert
                                                  : &o->ssl_key;
        take(dst, &kv->value);
    } else if (strcmp(k, "server_timeout") == 0) {
        if (parse_bool(kv->value, &o->server_timeout))
            return bad(err, "MariaDB URL option '%s' must be true or false", k);
    } else if (strcmp(k, "bulk") == 0) {
        bool on;
        if (parse_bool(kv->value, &on))
            return bad(err, "MariaDB URL option '%s' must be true or false", k);
        o->no_bulk = !on;
    } else if (strcmp(k, "target_session_attrs") == 0) {
        if (evdb__my_tsa_parse(kv->value, &o->tsa))
            return bad(err,
                       "MariaDB URL option '%s' must be any, read-write, read-only, primary, "
                       "standby or prefer-standby",
                       k);
    } else if (strcmp(k, "connect_timeout") == 0) {
        if (parse_seconds(kv->value, &o->connect_timeout))
            return bad(err, "MariaDB URL option '%s' must be a positive number of seconds", k);
    } else {
        return bad(err, "unknown MariaDB URL option '%s'", k);
    }
    return 0;
}

static const char *const tsa_names[] = {
    [EVDB__MY_TSA_ANY] = "any",
    [EVDB__MY_TSA_READ_WRITE] = "read-write",
    [EVDB__MY_TSA_READ_ONLY] = "read-only",
    [EVDB__MY_TSA_PRIMARY] = "primary",
    [EVDB__MY_TSA_STANDBY] = "standby",
    [EVDB__MY_TSA_PREFER_STANDBY] = "prefer-standby",
};

int evdb__my_tsa_parse(const char *v, enum evdb__my_tsa *out)
{
    for (size_t i = 0; i < sizeof tsa_names / sizeof tsa_names[0]; i++) {
        if (strcmp(v, tsa_names[i]) == 0) {
            *out = (enum evdb__my_tsa)i;
            return 0;
        }
    }
    return -1;
}

const char *evdb__my_tsa_name(enum evdb__my_tsa t)
{
    return (size_t)t < sizeof tsa_names / sizeof tsa_names[0] ? tsa_names[t] : "?";
}

/* One entry of a host list, parsed as the URL "mariadb://ENTRY" (so that
 * brackets, ports and escapes mean what they mean for a single host). */
static int parse_host_entry(const char *s, size_t n, evdb__my_host *out, evdb_error *err)
{
    static const char prefix[] = "mariadb://";
    if (n == 0)
        return bad(err, "%s", "MariaDB URL host list has an empty entry");
    char *tmp = evdb__malloc(sizeof prefix + n);
    if (!tmp) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB_ENOMEM;
    }
    memcpy(tmp, prefix, sizeof prefix - 1);
    memcpy(tmp + sizeof prefix - 1, s, n);
    tmp[sizeof prefix - 1 + n] = '\0';
    evdb__url u;
    int rc = evdb__url_parse(tmp, &u, err);
    evdb__free(tmp);
    if (rc)
        return rc;
    if (!u.host || !u.host[0] || u.host[0] == '/') {
        evdb__url_free(&u);
        return bad(err, "%s", "MariaDB URL host lists name TCP hosts (no socket paths)");
    }
    out->host = u.host;
    u.host = NULL;
    out->port = (unsigned)u.port;
    evdb__url_free(&u);
    return 0;
}

/* A host list ("h1:p1,h2:p2" where the URL names its host): fills
 * o->hosts and sets *single to a copy of url naming only the first entry
 * (for evdb__url_parse). *single stays NULL for a URL with one host. */
static int split_host_list(const char *url, evdb__my_opts *o, char **single, evdb_error *err)
{
    *single = NULL;
    const char *sep = strstr(url, "://");
    if (!sep)
        return 0; /* evdb__url_parse says what is wrong */
    const char *auth = sep + 3;
    const char *end = auth + strcspn(auth, "/?#");
    const char *hp = auth;
    for (const char *p = auth; p < end; p++)
        if (*p == '@')
            hp = p + 1;
    const char *comma = memchr(hp, ',', (size_t)(end - hp));
    if (!comma)
        return 0;
    o->hosts = evdb__calloc(EVDB__MY_HOSTS_MAX, sizeof *o->hosts);
    if (!o->hosts) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB_ENOMEM;
    }
    for (const char *s = hp; s <= end;) {
        const char *e = memchr(s, ',', (size_t)(end - s));
        if (!e)
            e = end;
        if (o->nhosts == EVDB__MY_HOSTS_MAX)
            return bad(err, "MariaDB URL host list has more than %s hosts", "16");
        int rc = parse_host_entry(s, (size_t)(e - s), &o->hosts[o->nhosts], err);
        if (rc)
            return rc;
        o->nhosts++;
        s = e + 1;
    }
    /* The URL again, with the first entry for the whole list. */
    size_t first = strcspn(hp, ",");
    size_t len = strlen(url), cut = (size_t)(end - hp);
    char *copy = evdb__malloc(len + 1);
    if (!copy) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
        return EVDB_ENOMEM;
    }
    size_t off = (size_t)(hp - url);
    memcpy(copy, url, off + first);
    memcpy(copy + off + first, end, len - off - cut + 1);
    *single = copy;
    return 0;
}

int evdb__my_opts_parse(const char *url, evdb__my_opts *o, evdb_error *err)
{
    memset(o, 0, sizeof *o);
    char *single = NULL;
    int rc = split_host_list(url, o, &single, err);
    if (rc) {
        evdb__my_opts_free(o);
        return rc;
    }
    evdb__url u;
    rc = evdb__url_parse(single ? single : url, &u, err);
    wipe_free(single);
    if (rc) {
        evdb__my_opts_free(o);
        return rc;
    }
    if (strcmp(u.scheme, "mariadb") != 0 && strcmp(u.scheme, "mysql") != 0) {
        rc = bad(err, "URL scheme '%s' is not mariadb:// or mysql://", u.scheme);
        goto out;
    }
    bool ssl_set = false, ssl_on = false;
    for (size_t i = 0; i < u.nparams; i++) {
        rc = apply_option(o, &u.params[i], &ssl_set, &ssl_on, err);
        if (rc)
            goto out;
    }
    take(&o->user, &u.user);
    take(&o->password, &u.password);
    if (u.path) {
        if (strchr(u.path, '/')) {
            rc = bad(err, "%s", "MariaDB URL path must be a single database name");
            goto out;
        }
        take(&o->db, &u.path);
    }
    if (u.host && u.host[0] == '/') {
        if (o->unix_socket) {
            rc = bad(err, "%s", "MariaDB URL gives a socket path both as host and unix_socket");
            goto out;
        }
        take(&o->unix_socket, &u.host);
    } else if (u.host && u.host[0]) {
        if (o->unix_socket) {
            rc = bad(err, "%s", "MariaDB URL gives both a host and unix_socket");
            goto out;
        }
        take(&o->host, &u.host);
    } else if (!o->unix_socket) {
        rc = bad(err, "%s", "MariaDB URL has no host (nor unix_socket option)");
        goto out;
    }
    if (o->unix_socket && u.port) {
        rc = bad(err, "%s", "MariaDB URL gives a port with a unix socket");
        goto out;
    }
    o->port = (unsigned)u.port;
    /* Certificates or verification imply TLS; asking for them while turning
     * TLS off is a contradiction worth an error rather than a guess. */
    bool wants_tls = o->ssl_ca || o->ssl_cert || o->ssl_key || o->tls_verify;
    if (ssl_set && !ssl_on && wants_tls) {
        rc = bad(err, "%s", "MariaDB URL sets ssl=false together with ssl_* options");
        goto out;
    }
    o->tls = ssl_on || wants_tls;
    if (!o->charset) {
        o->charset = evdb__strdup(DEFAULT_CHARSET);
        if (!o->charset) {
            evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory");
            rc = EVDB_ENOMEM;
            goto out;
        }
    }
    rc = 0;
out:
    evdb__url_free(&u);
    if (rc)
        evdb__my_opts_free(o);
    return rc;
}

unsigned long evdb__my_client_flags(bool multi)
{
    /* Multi-results are needed even without multi-statements: CALL of a
     * procedure answers with several result sets. */
    return CLIENT_MULTI_RESULTS | (multi ? CLIENT_MULTI_STATEMENTS : 0);
}

MYSQL *evdb__my_handle_new(const evdb__my_opts *o)
{
    MYSQL *m = mysql_init(NULL);
    if (!m)
        return NULL;
    /* Nonblocking mode allocates the coroutine that every *_start runs on;
     * without it the first *_start dereferences NULL. It must come first. */
    if (mysql_options(m, MYSQL_OPT_NONBLOCK, 0)) {
        mysql_close(m);
        return NULL;
    }
    /* A silent reconnect would swap the session (and the socket) under a
     * running query and lose session state: evdb reports the loss instead. */
    my_bool off = 0;
    unsigned int zero = 0;
    int rc = mysql_options(m, MYSQL_OPT_RECONNECT, &off);
    /* LOAD DATA LOCAL lets a server read client files: never wanted here. */
    rc |= mysql_options(m, MYSQL_OPT_LOCAL_INFILE, &zero);
    rc |= mysql_options(m, MYSQL_SET_CHARSET_NAME, o->charset);
    unsigned int proto = o->unix_socket ? MYSQL_PROTOCOL_SOCKET : MYSQL_PROTOCOL_TCP;
    rc |= mysql_options(m, MYSQL_OPT_PROTOCOL, &proto);
    if (o->connect_timeout)
        rc |= mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &o->connect_timeout);
    if (o->tls) {
        my_bool on = 1;
        rc |= mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &on);
        if (o->ssl_ca)
            rc |= mysql_options(m, MYSQL_OPT_SSL_CA, o->ssl_ca);
        if (o->ssl_cert)
            rc |= mysql_options(m, MYSQL_OPT_SSL_CERT, o->ssl_cert);
        if (o->ssl_key)
            rc |= mysql_options(m, MYSQL_OPT_SSL_KEY, o->ssl_key);
        my_bool verify = o->tls_verify;
        rc |= mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    }
    if (rc) {
        mysql_close(m);
        return NULL;
    }
    return m;
}
