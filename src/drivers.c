/*
 * The driver registry: which driver serves a URL. Built-in drivers are
 * listed at compile time; tests register the scripted fake driver.
 */
#include <string.h>
#include <strings.h>

#include "internal.h"

#define MAX_EXTRA_DRIVERS 4

static const evdb__driver *builtin[] = {
#if EVDB_HAS_POSTGRES
    &evdb__driver_postgres,
#endif
#if EVDB_HAS_MARIADB
    &evdb__driver_mariadb,
#endif
    NULL,
};

static const evdb__driver *extra[MAX_EXTRA_DRIVERS];

void evdb__driver_register(const evdb__driver *d)
{
    for (size_t i = 0; i < MAX_EXTRA_DRIVERS; i++)
        if (!extra[i] || extra[i] == d) {
            extra[i] = d;
            return;
        }
}

static bool scheme_matches(const evdb__driver *d, const char *url, size_t len)
{
    for (const char *const *s = d->schemes; s && *s; s++)
        if (strlen(*s) == len && strncasecmp(*s, url, len) == 0)
            return true;
    return false;
}

static const evdb__driver *find(const evdb__driver *d, const char *url, const char *sep)
{
    if (!d)
        return NULL;
    if (sep)
        return scheme_matches(d, url, (size_t)(sep - url)) ? d : NULL;
    return d->claims && d->claims(url) ? d : NULL;
}

const evdb__driver *evdb__driver_for(const char *url)
{
    const char *sep = strstr(url, "://");
    for (size_t i = 0; i < MAX_EXTRA_DRIVERS; i++)
        if (find(extra[i], url, sep))
            return extra[i];
    for (size_t i = 0; builtin[i]; i++)
        if (find(builtin[i], url, sep))
            return builtin[i];
    return NULL;
}
