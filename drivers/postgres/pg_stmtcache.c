/*
 * The per-connection prepared-statement cache: an LRU of named statements
 * ("evdb_N") keyed by SQL text and parameter types (the Parse fixes the
 * types of bool and bytea parameters, so the same text with other types
 * needs a statement of its own).
 *
 * Lifecycle of a statement:
 *   NEW        in the cache, pinned, to be prepared by the next query that
 *              uses it (it replaced an invalidated pinned statement)
 *   PREPARING  added to the cache, its Parse is on the wire
 *   READY      the server confirmed the Parse
 *   ZOMBIE     evicted (or invalidated) but still on the server: queued
 *              for DEALLOCATE
 *   DEALLOC    DEALLOCATE on the wire
 *   DEAD       not on the server; freed once no pipeline entry names it
 * Only READY statements are evicted: a PREPARING one may yet fail, and a
 * DEALLOCATE of a statement that does not exist would fail the DEALLOCATEs
 * sent with it.
 * Pinned statements (evdb_conn_prepare) are never evicted and do not count
 * against the capacity; they leave the cache only when unpinned, when the
 * server lost them (DEALLOCATE ALL, DISCARD ALL) or when a schema change
 * invalidated them (the query that found out prepares and pins them
 * again).
 * Statement names are never reused, so a statement that outlives its
 * cache entry on the server can never be confused with a new one.
 */
#include <stdio.h>
#include <string.h>

#include "pg_internal.h"

static void lru_unlink(pg_stmt *st)
{
    st->prev->next = st->next;
    st->next->prev = st->prev;
    st->prev = st->next = NULL;
}

static void lru_push_front(pg_cache *c, pg_stmt *st)
{
    st->prev = &c->lru;
    st->next = c->lru.next;
    c->lru.next->prev = st;
    c->lru.next = st;
}

static void hash_unlink(pg_cache *c, pg_stmt *st)
{
    pg_stmt **pp = &c->buckets[st->hash & (c->nbuckets - 1)];
    while (*pp && *pp != st)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = st->hnext;
    st->hnext = NULL;
}

static bool in_cache(const pg_stmt *st)
{
    return st->state == PGS_NEW || st->state == PGS_PREPARING || st->state == PGS_READY;
}

int evdb__pg_cache_init(pg_cache *c, size_t cap)
{
    memset(c, 0, sizeof *c);
    c->lru.next = c->lru.prev = &c->lru;
    c->cap = cap;
    if (!cap)
        return 0;
    /* Load factor at most 1/2 (the cache may run a little over cap while
     * Parses are in flight). */
    size_t n = 8;
    while (n < cap * 2)
        n *= 2;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    c->buckets = evdb__calloc(n, sizeof *c->buckets);
    if (!c->buckets)
        return EVDB_ENOMEM;
    c->nbuckets = n;
    return 0;
}

/* One multiply-xorshift round (the golden-ratio constant spreads bits). */
static inline uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

uint64_t evdb__pg_cache_hash(const char *sql, size_t len, size_t nparams, const Oid *types)
{
    /* Eight bytes at a time: this runs for every query (a byte-wise FNV
     * showed up at ~4% of client CPU in the pipelined benchmark). Keys are
     * compared in full on lookup, so the hash only needs to spread. */
    uint64_t h = mix(0x243f6a8885a308d3ull, len);
    const char *p = sql;
    size_t n = len;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h, w);
    }
    uint64_t tail = 0;
    memcpy(&tail, p, n);
    h = mix(h, tail);
    h = mix(h, nparams);
    for (size_t i = 0; i < nparams; i++)
        if (types[i])
            h = mix(h, (uint64_t)types[i] << 32 | i);
    return h;
}

static bool same_types(const Oid *a, const Oid *b, size_t n)
{
    return n == 0 || memcmp(a, b, n * sizeof *a) == 0;
}

pg_stmt *evdb__pg_cache_find(pg_cache *c, uint64_t h, const char *sql, size_t len, size_t nparams,
                             const Oid *types)
{
    if (!c->nbuckets)
        return NULL;
    for (pg_stmt *st = c->buckets[h & (c->nbuckets - 1)]; st; st = st->hnext) {
        if (st->hash == h && st->sql_len == len && st->nparams == nparams &&
            memcmp(st->sql, sql, len) == 0 && same_types(st->types, types, nparams)) {
            if (c->lru.next != st) {
                lru_unlink(st);
                lru_push_front(c, st);
            }
            return st;
        }
    }
    return NULL;
}

pg_stmt *evdb__pg_cache_mru(const pg_cache *c, const char *sql, size_t len, size_t nparams,
                            const Oid *types)
{
    pg_stmt *st = c->lru.next;
    if (st && st != &c->lru && st->sql_len == len && st->nparams == nparams &&
        memcmp(st->sql, sql, len) == 0 && same_types(st->types, types, nparams))
        return st;
    return NULL;
}

static void free_stmt(pg_stmt *st)
{
    evdb__pg_cols_free(st->cols);
    evdb__free(st);
}

void evdb__pg_stmt_unref(pg_stmt *st)
{
    if (--st->refs == 0 && st->state == PGS_DEAD)
        free_stmt(st);
}

void evdb__pg_cache_zombie_push(pg_cache *c, pg_stmt *st)
{
    st->state = PGS_ZOMBIE;
    st->next = NULL;
    st->prev = c->ztail;
    if (c->ztail)
        c->ztail->next = st;
    else
        c->zhead = st;
    c->ztail = st;
    c->nzombies++;
}

pg_stmt *evdb__pg_cache_zombie_pop(pg_cache *c)
{
    pg_stmt *st = c->zhead;
    if (!st)
        return NULL;
    c->zhead = st->next;
    if (c->zhead)
        c->zhead->prev = NULL;
    else
        c->ztail = NULL;
    st->next = st->prev = NULL;
    c->nzombies--;
    st->state = PGS_DEALLOC;
    return st;
}

void evdb__pg_cache_drop(pg_cache *c, pg_stmt *st, bool on_server)
{
    if (!in_cache(st))
        return;
    if (st->pinned) {
        st->pinned = false;
        c->npinned--;
    }
    hash_unlink(c, st);
    lru_unlink(st);
    c->count--;
    if (on_server) {
        evdb__pg_cache_zombie_push(c, st);
    } else {
        st->state = PGS_DEAD;
        if (st->refs == 0)
            free_stmt(st);
    }
}

/* Evict least recently used READY, unpinned statements while over
 * capacity. */
static void evict(pg_cache *c)
{
    pg_stmt *st = c->lru.prev;
    while (c->count - c->npinned > c->cap && st != &c->lru) {
        pg_stmt *older = st->prev;
        if (st->state == PGS_READY && !st->pinned)
            evdb__pg_cache_drop(c, st, true);
        st = older;
    }
}

void evdb__pg_cache_pin(pg_cache *c, pg_stmt *st)
{
    if (st->pinned || !in_cache(st))
        return;
    st->pinned = true;
    c->npinned++;
}

void evdb__pg_cache_unpin(pg_cache *c, pg_stmt *st)
{
    if (!st->pinned)
        return;
    st->pinned = false;
    c->npinned--;
    /* Back among the others: the next to go if the cache is full. */
    if (c->lru.prev != st) {
        lru_unlink(st);
        st->prev = c->lru.prev;
        st->next = &c->lru;
        c->lru.prev->next = st;
        c->lru.prev = st;
    }
    evict(c);
}

/* A statement object, not yet in the cache. */
static pg_stmt *stmt_new(pg_cache *c, uint64_t h, const char *sql, size_t len, size_t nparams,
                         const Oid *types)
{
    /* One allocation: the statement, its parameter types, its text. */
    size_t tsize = nparams * sizeof(Oid);
    pg_stmt *st = evdb__malloc(sizeof *st + tsize + len + 1);
    if (!st)
        return NULL;
    memset(st, 0, sizeof *st);
    Oid *t = (Oid *)(void *)(st + 1);
    if (tsize)
        memcpy(t, types, tsize);
    char *s = (char *)t + tsize;
    memcpy(s, sql, len);
    s[len] = '\0';
    st->types = t;
    st->sql = s;
    st->sql_len = len;
    st->nparams = nparams;
    st->hash = h;
    st->mentions_prepare = evdb__pg_sql_mentions_prepare(sql, len);
    st->state = PGS_PREPARING;
    snprintf(st->name, sizeof st->name, "evdb_%llu", (unsigned long long)++c->next_id);
    return st;
}

static void hash_link(pg_cache *c, pg_stmt *st)
{
    size_t b = st->hash & (c->nbuckets - 1);
    st->hnext = c->buckets[b];
    c->buckets[b] = st;
}

pg_stmt *evdb__pg_cache_add(pg_cache *c, uint64_t h, const char *sql, size_t len, size_t nparams,
                            const Oid *types)
{
    if (!c->cap)
        return NULL;
    pg_stmt *st = stmt_new(c, h, sql, len, nparams, types);
    if (!st)
        return NULL;
    hash_link(c, st);
    lru_push_front(c, st);
    c->count++;
    evict(c);
    return st;
}

void evdb__pg_cache_invalidate(pg_cache *c, pg_stmt *st, bool on_server)
{
    if (!in_cache(st))
        return;
    pg_stmt *fresh =
        st->pinned ? stmt_new(c, st->hash, st->sql, st->sql_len, st->nparams, st->types) : NULL;
    if (fresh) {
        /* Take st's place in the LRU list (it is pinned: the place does
         * not matter for eviction, only for unpinning later). */
        fresh->state = PGS_NEW;
        fresh->pinned = true;
        fresh->prev = st->prev;
        fresh->next = st->next;
        st->prev->next = fresh;
        st->next->prev = fresh;
        st->prev = st->next = NULL;
        hash_unlink(c, st);
        hash_link(c, fresh);
        st->pinned = false;
        /* st is out of the cache (count and npinned stay: fresh took its
         * place): finish it like evdb__pg_cache_drop does. */
        if (on_server) {
            evdb__pg_cache_zombie_push(c, st);
        } else {
            st->state = PGS_DEAD;
            if (st->refs == 0)
                free_stmt(st);
        }
        return;
    }
    evdb__pg_cache_drop(c, st, on_server);
}

void evdb__pg_cache_invalidate_all(pg_cache *c)
{
    /* invalidate puts a pinned statement's successor in its place in the
     * list and unlinks the others, so the next one is read first. */
    for (pg_stmt *st = c->lru.next, *next; st != &c->lru; st = next) {
        next = st->next;
        if (st->state == PGS_READY)
            evdb__pg_cache_invalidate(c, st, true);
    }
}

void evdb__pg_cache_forget_all(pg_cache *c)
{
    while (c->lru.next != &c->lru)
        evdb__pg_cache_drop(c, c->lru.next, false);
    while (c->zhead) {
        pg_stmt *st = evdb__pg_cache_zombie_pop(c);
        st->state = PGS_DEAD;
        if (st->refs == 0)
            free_stmt(st);
    }
}

void evdb__pg_cache_free(pg_cache *c)
{
    /* Statements still named by pipeline entries are freed by the
     * pipeline's own teardown (evdb__pg_pipeline_forget runs first). */
    evdb__pg_cache_forget_all(c);
    evdb__free(c->buckets);
    c->buckets = NULL;
    c->nbuckets = 0;
}
