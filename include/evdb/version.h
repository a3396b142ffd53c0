/*
 * evdb version and feature macros.
 *
 * Test for features with the EVDB_HAS_* macros rather than by comparing
 * version numbers (libpq's LIBPQ_HAS_* convention).
 */
#ifndef EVDB_VERSION_H
#define EVDB_VERSION_H

#define EVDB_VERSION_MAJOR 0
#define EVDB_VERSION_MINOR 1
#define EVDB_VERSION_PATCH 0

/* 0xMMmmpp: one byte each for major, minor and patch. */
#define EVDB_VERSION_HEX                                                      \
    ((EVDB_VERSION_MAJOR << 16) | (EVDB_VERSION_MINOR << 8) | EVDB_VERSION_PATCH)

#define EVDB_VERSION_STRING "0.1.0"

/* True when the headers are at least version major.minor.patch. */
#define EVDB_VERSION_AT_LEAST(major, minor, patch)                            \
    (EVDB_VERSION_HEX >= (((major) << 16) | ((minor) << 8) | (patch)))

/* Which backends and features this build has (written by the build system). */
#include "evdb/features.h"

#endif
