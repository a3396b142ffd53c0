/*
 * Typed query parameters. Small structs built by the helpers below; they
 * point at the caller's memory, and the library copies what they point at
 * when the query is submitted, so the caller may free its buffers as soon as
 * the submitting call returns.
 */
#ifndef EVDB_VALUE_H
#define EVDB_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "evdb/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Column and parameter types. Values never change once released. */
typedef enum evdb_type {
    EVDB_TYPE_NULL = 0,
    EVDB_TYPE_BOOL = 1,
    EVDB_TYPE_INT = 2,    /* int64 */
    EVDB_TYPE_DOUBLE = 3,
    EVDB_TYPE_TEXT = 4,
    EVDB_TYPE_BYTES = 5,
    EVDB_TYPE_OTHER = 6   /* dates, decimals, ...: read them as text */
} evdb_type;

typedef struct evdb_value {
    evdb_type type;
    union {
        bool b;
        int64_t i;
        double d;
        struct {
            const void *ptr;
            size_t len;
        } s;
    } u;
} evdb_value;

/* Largest text or bytes parameter accepted (1 GiB, PostgreSQL's limit). */
#define EVDB_VALUE_MAX_LEN ((size_t)1 << 30)

/* The constructors below build values; none of them allocates. */
EVDB_EXTERN evdb_value evdb_null(void);
EVDB_EXTERN evdb_value evdb_bool(bool b);
EVDB_EXTERN evdb_value evdb_int(int64_t i);
EVDB_EXTERN evdb_value evdb_double(double d);
/* NUL-terminated text; NULL gives an SQL NULL. */
EVDB_EXTERN evdb_value evdb_text(const char *s);
/* len bytes of text (may contain NUL only where the server accepts it:
 * PostgreSQL rejects NUL in text, use evdb_bytes). */
EVDB_EXTERN evdb_value evdb_textn(const char *s, size_t len);
/* Binary data (bytea / BLOB), kept byte for byte. */
EVDB_EXTERN evdb_value evdb_bytes(const void *p, size_t len);

#ifdef __cplusplus
}
#endif
#endif
