/*
 * A program outside the evdb tree, built against an installed evdb (via
 * pkg-config and via find_package). It exits 0 only when the installed
 * headers are at least 0.1.0 and the installed library answers.
 */
#include <evdb.h>

#include <stdio.h>
#include <string.h>

#if !EVDB_VERSION_AT_LEAST(0, 1, 0)
#error "installed evdb headers are older than 0.1.0"
#endif

#define EXPECTED_TIMEDOUT_TEXT "operation timed out"

int main(void)
{
    const char *text = evdb_strerror(EVDB_ETIMEDOUT);

    printf("evdb %s (postgres %d, mariadb %d): EVDB_ETIMEDOUT = \"%s\"\n", EVDB_VERSION_STRING,
           EVDB_HAS_POSTGRES, EVDB_HAS_MARIADB, text != NULL ? text : "(null)");
    if (!EVDB_VERSION_AT_LEAST(0, 1, 0))
        return 1;
    if (evdb_version() != EVDB_VERSION_HEX || strcmp(evdb_version_string(), EVDB_VERSION_STRING)) {
        fprintf(stderr, "consumer: library %s (0x%06x) is not the headers' %s\n",
                evdb_version_string(), evdb_version(), EVDB_VERSION_STRING);
        return 1;
    }
    if (text == NULL || strcmp(text, EXPECTED_TIMEDOUT_TEXT) != 0) {
        fprintf(stderr, "consumer: expected \"%s\"\n", EXPECTED_TIMEDOUT_TEXT);
        return 1;
    }
    return 0;
}
