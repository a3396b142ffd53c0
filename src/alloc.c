/*
 * Allocator hooks. Every allocation of the library goes through here, so
 * tests can count live allocations and fail the Nth one (torture tests).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static evdb_malloc_fn user_malloc = malloc;
static evdb_realloc_fn user_realloc = realloc;
static evdb_free_fn user_free = free;

/* Live allocation count: atomics because several loops may run on several
 * threads. */
static size_t live;

int evdb_set_allocators(evdb_malloc_fn m, evdb_realloc_fn r, evdb_free_fn f)
{
    if (!m && !r && !f) {
        user_malloc = malloc;
        user_realloc = realloc;
        user_free = free;
        return 0;
    }
    if (!m || !r || !f)
        return evdb__fail_now(EVDB_EINVAL, "evdb_set_allocators: give all three hooks or none");
    user_malloc = m;
    user_realloc = r;
    user_free = f;
    return 0;
}

void *evdb__malloc(size_t n)
{
    void *p = user_malloc(n ? n : 1);
    if (p)
        __atomic_add_fetch(&live, 1, __ATOMIC_RELAXED);
    return p;
}

void *evdb__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = evdb__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *evdb__realloc(void *p, size_t n)
{
    if (!p)
        return evdb__malloc(n);
    return user_realloc(p, n ? n : 1);
}

void evdb__free(void *p)
{
    if (!p)
        return;
    __atomic_sub_fetch(&live, 1, __ATOMIC_RELAXED);
    user_free(p);
}

char *evdb__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = evdb__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

size_t evdb__alloc_live(void)
{
    return __atomic_load_n(&live, __ATOMIC_RELAXED);
}
