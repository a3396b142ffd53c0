/*
 * Fuzz target: URL parsing. evdb__url_parse (src/url.c) on arbitrary
 * text, then the MariaDB driver's options on top of it (evdb__my_opts_parse,
 * drivers/mariadb/my_url.c). libpq keyword strings are libpq's job.
 *
 * Checked beyond "no crash, no leak, no undefined behaviour":
 *  - a failure is EVDB_EURL (or EVDB_ENOMEM) with a message;
 *  - a success gives a lower-case scheme, a port in 0..65535, named options;
 *  - the password never appears in an error message: the URL is parsed
 *    again with its password replaced by a marker found nowhere else, and
 *    the marker must not show up in the MariaDB parser's error.
 */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "my_internal.h"

#define MARKER "Zq9xPw7vKj"

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

/* Where the raw password is in s (the parser's own rules): [*from, *to). */
static bool password_span(const char *s, size_t *from, size_t *to)
{
    const char *sep = strstr(s, "://");
    if (!sep)
        return false;
    const char *auth = sep + 3;
    const char *auth_end = auth + strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth_end; p++)
        if (*p == '@')
            at = p;
    if (!at)
        return false;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return false;
    *from = (size_t)(colon + 1 - s);
    *to = (size_t)(at - s);
    return true;
}

static void check_mariadb(const char *s, const evdb__url *u)
{
    evdb__my_opts o;
    evdb_error err;
    int rc = evdb__my_opts_parse(s, &o, &err);
    if (rc == 0) {
        assert(o.charset != NULL);
        assert(o.host || o.unix_socket);
        evdb__my_opts_free(&o);
    } else {
        assert(rc == EVDB_EURL || rc == EVDB_ENOMEM);
        assert(err.code == rc && err.message[0]);
    }
    if (!u->password)
        return;
    /* Same URL, the password replaced by the marker. */
    size_t from, to;
    if (!password_span(s, &from, &to))
        return;
    size_t len = strlen(s);
    char *m = malloc(len - (to - from) + sizeof MARKER);
    assert(m);
    memcpy(m, s, from);
    memcpy(m + from, MARKER, sizeof MARKER - 1);
    memcpy(m + from + sizeof MARKER - 1, s + to, len - to + 1);
    if (count(m, MARKER) == 1) {
        rc = evdb__my_opts_parse(m, &o, &err);
        if (rc == 0)
            evdb__my_opts_free(&o);
        else
            assert(strstr(err.message, MARKER) == NULL);
        evdb__url u2;
        rc = evdb__url_parse(m, &u2, &err);
        if (rc == 0)
            evdb__url_free(&u2);
        else
            assert(strstr(err.message, MARKER) == NULL);
    }
    free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    assert(s);
    memcpy(s, data, size);
    s[size] = '\0';
    evdb__url u;
    evdb_error err;
    int rc = evdb__url_parse(s, &u, &err);
    if (rc == 0) {
        assert(u.scheme && u.scheme[0]);
        for (const char *p = u.scheme; *p; p++)
            assert(!isupper((unsigned char)*p));
        assert(u.port >= 0 && u.port <= 65535);
        for (size_t i = 0; i < u.nparams; i++)
            assert(u.params[i].key && u.params[i].key[0] && u.params[i].value);
        check_mariadb(s, &u);
        evdb__url_free(&u);
    } else {
        assert(rc == EVDB_EURL || rc == EVDB_ENOMEM);
        assert(err.code == rc && err.message[0]);
    }
    free(s);
    return 0;
}
