/*
 * Test environment lookup: process environment first, then the env file
 * that scripts/testdb wrote. See testenv.h.
 */
#include "testenv.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The directory scripts/testdb uses when neither --dir nor
 * EVDB_TESTDB_DIR is given. */
#define DEFAULT_TESTDB_DIR ".testdb"
#define ENV_FILE_NAME "env"
#define MAX_LINE 4096

struct entry {
    char *key;
    char *value;
};

static struct entry *entries;
static size_t nentries;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

/* strdup is POSIX, not C11: keep this file plain C. */
static char *copy_string(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);

    if (copy != NULL)
        memcpy(copy, s, len);
    return copy;
}

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

/* Strips one pair of matching single or double quotes, as a shell would for
 * a value without escapes. */
static char *unquote(char *s)
{
    size_t len = strlen(s);

    if (len >= 2 && (s[0] == '"' || s[0] == '\'') && s[len - 1] == s[0]) {
        s[len - 1] = '\0';
        return s + 1;
    }
    return s;
}

static void add_entry(const char *key, const char *value)
{
    struct entry *grown;
    char *k, *v;
    size_t i;

    /* A later line wins, as when the file is sourced. */
    for (i = 0; i < nentries; i++) {
        if (strcmp(entries[i].key, key) == 0) {
            v = copy_string(value);
            if (v == NULL)
                return;
            free(entries[i].value);
            entries[i].value = v;
            return;
        }
    }
    grown = realloc(entries, (nentries + 1) * sizeof *entries);
    if (grown == NULL)
        return;
    entries = grown;
    k = copy_string(key);
    v = copy_string(value);
    if (k == NULL || v == NULL) {
        free(k);
        free(v);
        return;
    }
    entries[nentries].key = k;
    entries[nentries].value = v;
    nentries++;
}

static void parse_line(char *line)
{
    char *key, *eq;

    key = trim(line);
    if (*key == '\0' || *key == '#')
        return;
    if (strncmp(key, "export", 6) == 0 && isspace((unsigned char)key[6]))
        key = trim(key + 6);
    eq = strchr(key, '=');
    if (eq == NULL || eq == key)
        return;
    *eq = '\0';
    add_entry(trim(key), unquote(trim(eq + 1)));
}

static void load_env_file(void)
{
    const char *dir = getenv("EVDB_TESTDB_DIR");
    char path[MAX_LINE];
    char line[MAX_LINE];
    FILE *f;
    int n;

    if (dir == NULL || *dir == '\0')
        dir = DEFAULT_TESTDB_DIR;
    n = snprintf(path, sizeof path, "%s/%s", dir, ENV_FILE_NAME);
    if (n < 0 || (size_t)n >= sizeof path)
        return;
    f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL)
        parse_line(line);
    fclose(f);
}

const char *evdb_test_env(const char *name)
{
    const char *v;
    size_t i;

    if (name == NULL || *name == '\0')
        return NULL;
    v = getenv(name);
    if (v != NULL && *v != '\0')
        return v;
    pthread_once(&load_once, load_env_file);
    for (i = 0; i < nentries; i++) {
        if (strcmp(entries[i].key, name) == 0)
            return *entries[i].value != '\0' ? entries[i].value : NULL;
    }
    return NULL;
}

const char *evdb_test_pg_url(void)
{
    return evdb_test_env("EVDB_TEST_PG_URL");
}

const char *evdb_test_my_url(void)
{
    return evdb_test_env("EVDB_TEST_MY_URL");
}

const char *evdb_test_pg_admin_url(void)
{
    return evdb_test_env("EVDB_TEST_PG_ADMIN_URL");
}

const char *evdb_test_my_admin_url(void)
{
    return evdb_test_env("EVDB_TEST_MY_ADMIN_URL");
}
