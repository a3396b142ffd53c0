/*
 * Allocator hooks. Every allocation of the library goes through here, so
 * tests can count live allocations and fail the Nth one (torture tests).
 *
 * The objects every query makes (its query block, future and result) go
 * through a small per-thread cache of recently freed blocks first. With
 * dozens of queries in flight they are freed in batches larger than
 * glibc's own per-thread cache holds (7 blocks per size), and every block
 * past that made a trip through the allocator's bins on the way out and
 * again on the way back in. Blocks are sized in 64-byte classes up to
 * 1 KiB; a class keeps at most OBJ_CACHE_MAX blocks, so a thread holds at
 * most 16 x 64 x 1 KiB in the worst case, and it gives them back when the
 * thread exits, when the allocators change, or on evdb__obj_cache_flush.
 * Under AddressSanitizer or valgrind the cache is off, so that they see
 * every object's real lifetime (a use after free stays a use after free).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

#include "internal.h"

static evdb_malloc_fn user_malloc = malloc;
static evdb_realloc_fn user_realloc = realloc;
static evdb_free_fn user_free = free;

/* Live allocation count: atomics because several loops may run on several
 * threads. The object cache's hits and returns count in their thread's
 * cache instead (no locked instruction per query); evdb__alloc_live adds
 * those up. */
static size_t live;

int evdb_set_allocators(evdb_malloc_fn m, evdb_realloc_fn r, evdb_free_fn f)
{
    /* Cached blocks belong to the allocator that made them. */
    evdb__obj_cache_flush();
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

/* Defined with the object cache below. */
static size_t cached_live(void);

size_t evdb__alloc_live(void)
{
    return __atomic_load_n(&live, __ATOMIC_RELAXED) + cached_live();
}

/* ---------------------------------------------------------- object cache */

#define OBJ_CLASS_BYTES 64
#define OBJ_CLASSES 16 /* up to 1 KiB */
#define OBJ_CACHE_MAX 64

#if defined(__SANITIZE_ADDRESS__)
#define OBJ_CACHE_BUILT 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OBJ_CACHE_BUILT 0
#endif
#endif
#ifndef OBJ_CACHE_BUILT
#define OBJ_CACHE_BUILT 1
#endif
/* Profiling the hot path under callgrind needs the cache as it runs
 * natively: build with -DEVDB_OBJ_CACHE_UNDER_VALGRIND. */
#if !defined(RUNNING_ON_VALGRIND) || defined(EVDB_OBJ_CACHE_UNDER_VALGRIND)
#undef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

typedef struct cached {
    struct cached *next;
} cached;

typedef struct obj_cache {
    cached *head[OBJ_CLASSES];
    unsigned n[OBJ_CLASSES];
    /* Blocks this thread took from its cache minus those it put back (an
     * addend of the live count; negative when this thread frees what
     * another one allocated). Written by this thread only, read by
     * evdb__alloc_live from any: relaxed atomics, plain moves on x86. */
    long live;
    struct obj_cache *prev, *next; /* the registered caches */
    bool registered;               /* the thread-exit destructor knows this thread */
    bool off;                      /* sanitizers or valgrind watch this process */
} obj_cache;

static __thread obj_cache tcache EVDB__TLS_HOT;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
/* The caches of the threads alive, for evdb__alloc_live. */
static pthread_mutex_t caches_lock = PTHREAD_MUTEX_INITIALIZER;
static obj_cache *caches;

static size_t cached_live(void)
{
    long sum = 0;
    pthread_mutex_lock(&caches_lock);
    for (obj_cache *c = caches; c; c = c->next)
        sum += __atomic_load_n(&c->live, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&caches_lock);
    return (size_t)sum;
}

static void count_cached(obj_cache *c, long d)
{
    __atomic_store_n(&c->live, c->live + d, __ATOMIC_RELAXED);
}

static void flush(obj_cache *c)
{
    for (size_t k = 0; k < OBJ_CLASSES; k++) {
        while (c->head[k]) {
            cached *b = c->head[k];
            c->head[k] = b->next;
            user_free(b);
        }
        c->n[k] = 0;
    }
}

static void on_thread_exit(void *arg)
{
    obj_cache *c = arg;
    flush(c);
    pthread_mutex_lock(&caches_lock);
    __atomic_add_fetch(&live, (size_t)c->live, __ATOMIC_RELAXED);
    c->live = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        caches = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->registered = false;
    pthread_mutex_unlock(&caches_lock);
}

static void make_exit_key(void)
{
    if (pthread_key_create(&exit_key, on_thread_exit) != 0)
        exit_key = (pthread_key_t)-1;
}

/* Make c known to the thread-exit destructor and to evdb__alloc_live. */
static void register_cache(obj_cache *c)
{
    pthread_once(&exit_once, make_exit_key);
    if (exit_key == (pthread_key_t)-1 || pthread_setspecific(exit_key, c) != 0)
        return;
    pthread_mutex_lock(&caches_lock);
    c->next = caches;
    if (caches)
        caches->prev = c;
    caches = c;
    c->registered = true;
    pthread_mutex_unlock(&caches_lock);
}

void evdb__obj_cache_flush(void)
{
    flush(&tcache);
}

/* The class of an n-byte block, or OBJ_CLASSES when it is too big. */
static inline size_t obj_class(size_t n)
{
    return n && n <= OBJ_CLASS_BYTES * OBJ_CLASSES ? (n - 1) / OBJ_CLASS_BYTES : OBJ_CLASSES;
}

void *evdb__obj_alloc(size_t n)
{
    size_t k = obj_class(n);
    if (k == OBJ_CLASSES)
        return evdb__malloc(n);
    obj_cache *c = &tcache;
    cached *b = c->head[k];
    if (b) {
        c->head[k] = b->next;
        c->n[k]--;
        count_cached(c, 1);
        return b;
    }
    if (!c->registered && !c->off) {
        /* Before the first block can be cached: a thread that exits gives
         * its blocks back. */
        c->off = !OBJ_CACHE_BUILT || RUNNING_ON_VALGRIND;
        if (!c->off)
            register_cache(c);
    }
    /* Sized to the class so the block can serve any size of it later;
     * exact when the cache is off, so that ASan sees every overflow. */
    return evdb__malloc(c->off ? n : (k + 1) * OBJ_CLASS_BYTES);
}

void evdb__obj_free(void *p, size_t n)
{
    if (!p)
        return;
    size_t k = obj_class(n);
    obj_cache *c = &tcache;
    if (k == OBJ_CLASSES || c->n[k] == OBJ_CACHE_MAX || !c->registered) {
        evdb__free(p);
        return;
    }
    cached *b = p;
    b->next = c->head[k];
    c->head[k] = b;
    c->n[k]++;
    count_cached(c, -1);
}
