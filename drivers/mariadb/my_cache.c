/*
 * The per-connection cache of prepared statements: a hash table keyed by
 * the SQL text plus a recency list. Repeating a query then costs one
 * COM_STMT_EXECUTE round trip instead of a prepare, an execute and a close.
 * The least recently used statement is evicted when the cache is full
 * (my_stmt.c closes it on the server with mysql_stmt_close_start).
 */
#include <string.h>

#include "my_internal.h"

/* Buckets: at least this many, and at least the limit rounded up to a
 * power of two, so chains stay short. */
#define MIN_BUCKETS 16u
/* FNV-1a constants, 64 bit. */
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

uint64_t evdb__my_hash(const char *s, size_t len)
{
    /* FNV-1a over 8-byte words (then the tail bytes): SQL texts are long
     * enough for the byte-wise loop to show up in profiles. */
    uint64_t h = FNV_OFFSET ^ len;
    size_t i = 0;
    for (; i + sizeof(uint64_t) <= len; i += sizeof(uint64_t)) {
        uint64_t w;
        memcpy(&w, s + i, sizeof w);
        h ^= w;
        h *= FNV_PRIME;
        h ^= h >> 29;
    }
    for (; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= FNV_PRIME;
    }
    return h;
}

evdb__my_stmt *evdb__my_cache_mru(const evdb__my_cache *c, const char *sql, size_t len)
{
    const evdb__my_stmt *s = c->lru_head;
    if (s && s->sql_len == len && memcmp(s->sql, sql, len) == 0)
        return c->lru_head;
    return NULL;
}

int evdb__my_cache_init(evdb__my_cache *c, size_t limit)
{
    memset(c, 0, sizeof *c);
    c->limit = limit;
    if (!limit)
        return 0;
    size_t n = MIN_BUCKETS;
    while (n < limit && n < ((size_t)1 << 30))
        n <<= 1;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    c->buckets = evdb__calloc(n, sizeof *c->buckets);
    if (!c->buckets)
        return EVDB_ENOMEM;
    c->nbuckets = n;
    return 0;
}

static evdb__my_stmt **bucket(const evdb__my_cache *c, uint64_t hash)
{
    return &c->buckets[hash & (c->nbuckets - 1)];
}

static void lru_unlink(evdb__my_cache *c, evdb__my_stmt *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        c->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        c->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_push_front(evdb__my_cache *c, evdb__my_stmt *s)
{
    s->lru_prev = NULL;
    s->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = s;
    c->lru_head = s;
    if (!c->lru_tail)
        c->lru_tail = s;
}

evdb__my_stmt *evdb__my_cache_get(evdb__my_cache *c, const char *sql, size_t len, uint64_t hash)
{
    if (!c->limit)
        return NULL;
    for (evdb__my_stmt *s = *bucket(c, hash); s; s = s->hnext) {
        if (s->hash == hash && s->sql_len == len && memcmp(s->sql, sql, len) == 0) {
            if (c->lru_head != s) {
                lru_unlink(c, s);
                lru_push_front(c, s);
            }
            return s;
        }
    }
    return NULL;
}

void evdb__my_cache_put(evdb__my_cache *c, evdb__my_stmt *s)
{
    evdb__my_stmt **b = bucket(c, s->hash);
    s->hnext = *b;
    *b = s;
    lru_push_front(c, s);
    s->cached = true;
    c->count++;
}

void evdb__my_cache_remove(evdb__my_cache *c, evdb__my_stmt *s)
{
    for (evdb__my_stmt **p = bucket(c, s->hash); *p; p = &(*p)->hnext) {
        if (*p == s) {
            *p = s->hnext;
            break;
        }
    }
    s->hnext = NULL;
    lru_unlink(c, s);
    s->cached = false;
    c->count--;
}

evdb__my_stmt *evdb__my_cache_victim(const evdb__my_cache *c)
{
    return c->limit && c->count >= c->limit ? c->lru_tail : NULL;
}

void evdb__my_cache_clear(evdb__my_cache *c)
{
    evdb__my_stmt *s = c->lru_head;
    while (s) {
        evdb__my_stmt *next = s->lru_next;
        if (s->stmt)
            mysql_stmt_close(s->stmt);
        s->stmt = NULL;
        evdb__my_stmt_entry_free(s);
        s = next;
    }
    c->lru_head = c->lru_tail = NULL;
    c->count = 0;
    if (c->buckets)
        // NOLINTNEXTLINE(bugprone-sizeof-expression)
        memset(c->buckets, 0, c->nbuckets * sizeof *c->buckets);
}

/* Statement serials: process-wide, as a connection's arrays never meet
 * another connection's statements anyway. */
static unsigned long last_serial;

evdb__my_stmt *evdb__my_stmt_entry_new(const char *sql, size_t len, uint64_t hash)
{
    evdb__my_stmt *s = evdb__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->sql = evdb__malloc(len + 1);
    if (!s->sql) {
        evdb__free(s);
        return NULL;
    }
    memcpy(s->sql, sql, len);
    s->sql[len] = '\0';
    s->sql_len = len;
    s->hash = hash;
    s->serial = __atomic_add_fetch(&last_serial, 1, __ATOMIC_RELAXED);
    return s;
}

void evdb__my_stmt_entry_free(evdb__my_stmt *s)
{
    if (!s)
        return;
    evdb__free(s->sql);
    evdb__free(s->pbind);
    evdb__free(s->plen);
    evdb__free(s->pbool);
    evdb__free(s->pnum);
    evdb__my_cols_free(s->cols);
    evdb__free(s);
}
