/*
 * Allocator hooks. Every allocation evdb makes goes through these (the
 * client libraries libpq and Connector/C allocate with their own malloc).
 */
#ifndef EVDB_ALLOC_H
#define EVDB_ALLOC_H

#include <stddef.h>
#include "evdb/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void *(*evdb_malloc_fn)(size_t size);
typedef void *(*evdb_realloc_fn)(void *ptr, size_t size);
typedef void (*evdb_free_fn)(void *ptr);

/* Replace the allocator. Pass all three, or all NULL to restore malloc,
 * realloc and free. Call it before creating any evdb object: memory must be
 * freed by the allocator that made it. Returns 0, or EVDB_EINVAL when only
 * some are given. Process-wide; not thread-safe against concurrent use. */
EVDB_EXTERN int evdb_set_allocators(evdb_malloc_fn m, evdb_realloc_fn r, evdb_free_fn f);

#ifdef __cplusplus
}
#endif
#endif
