/*
 * evdb version and feature macros.
 *
 * Test for features with the EVDB_HAS_* macros rather than by comparing
 * version numbers (libpq's LIBPQ_HAS_* convention).
 *
 * The three numbers below are the only place the version is kept: the
 * build reads them from here (CMakeLists.txt), for the shared library's
 * version, the pkg-config file and the CMake package.
 */
#ifndef EVDB_VERSION_H
#define EVDB_VERSION_H

#define EVDB_VERSION_MAJOR 0
#define EVDB_VERSION_MINOR 1
#define EVDB_VERSION_PATCH 0

/* 0xMMmmpp: one byte each for major, minor and patch. */
#define EVDB_VERSION_HEX                                                                           \
    ((EVDB_VERSION_MAJOR << 16) | (EVDB_VERSION_MINOR << 8) | EVDB_VERSION_PATCH)

/* "major.minor.patch", made from the three numbers above. */
#define EVDB__VERSION_STR(x) #x
#define EVDB__VERSION_XSTR(x) EVDB__VERSION_STR(x)
#define EVDB_VERSION_STRING                                                                        \
    EVDB__VERSION_XSTR(EVDB_VERSION_MAJOR)                                                         \
    "." EVDB__VERSION_XSTR(EVDB_VERSION_MINOR) "." EVDB__VERSION_XSTR(EVDB_VERSION_PATCH)

/* True when the headers are at least version major.minor.patch. */
#define EVDB_VERSION_AT_LEAST(major, minor, patch)                                                 \
    (EVDB_VERSION_HEX >= (((major) << 16) | ((minor) << 8) | (patch)))

/* Which backends and features this build has (written by the build system). */
#include "evdb/features.h"
#include "evdb/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library running, as EVDB_VERSION_HEX (0xMMmmpp).
 * Compare it with the EVDB_VERSION_HEX a program was compiled against to
 * notice a shared library older than the headers. Never fails; may be
 * called from any thread and from callbacks. */
EVDB_EXTERN unsigned evdb_version(void);

/* The same as "major.minor.patch" (EVDB_VERSION_STRING of the library
 * running): a static string, never NULL, owned by evdb. Any thread. */
EVDB_EXTERN const char *evdb_version_string(void);

#ifdef __cplusplus
}
#endif

#endif
