/*
 * The per-connection catalog of the types pg_types.c does not know:
 * enums, domains, extension types (citext, hstore), arrays of them, and
 * built-in types outside the static table (inet, point, ...). Their OIDs
 * are per database (user types are >= FirstNormalObjectId, 16384), so
 * they are read from pg_type on the connection itself.
 *
 * Nothing waits for the catalog on the query path. After connect, and
 * after a statement that creates, alters or drops types on this
 * connection, the whole list of user types (no table row types, no
 * arrays of them: there can be thousands) is due; pg_send.c sends the
 * catalog query ahead of the next user query, in its own implicit
 * transaction (never inside the user's transaction block), so its answer
 * arrives before that query's. A result that shows an OID the catalog
 * does not have (a type created on another connection since) reports the
 * column as EVDB_TYPE_OTHER with an empty name, as before, and queues a
 * lookup of that OID: results that arrive after the lookup's answer know
 * the type. Callbacks keep their submit order; no result waits.
 *
 * Type names handed to results are interned in a process-wide table
 * (evdb_result_coltype_name promises static storage: results outlive
 * their connection). A process sees a bounded set of type names; the
 * table is guarded by a mutex and only touched the first time a
 * connection reports a given type.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* FirstNormalObjectId: OIDs below it are built in (fixed per release). */
#define PG_FIRST_USER_OID 16384u
/* How deep domains over domains and arrays of domains are followed. */
#define MAX_DEPTH 8
/* Failed lookups (a cancel hit one, a permission change) retried at most
 * this often before the catalog stops asking. */
#define MAX_FAILURES 3

static const char full_sql[] =
    "SELECT t.oid, t.typname, t.typtype, t.typcategory, t.typelem, t.typbasetype"
    " FROM pg_catalog.pg_type t WHERE t.oid >= 16384 AND t.typrelid = 0"
    " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type e"
    " WHERE e.oid = t.typelem AND e.typrelid <> 0)";
/* The types asked for, their array types, and the element and base types
 * they refer to: one round trip for a new enum and its array. */
static const char some_sql[] =
    "SELECT t.oid, t.typname, t.typtype, t.typcategory, t.typelem, t.typbasetype"
    " FROM pg_catalog.pg_type t WHERE t.oid = ANY($1::pg_catalog.oid[])"
    " OR t.typelem = ANY($1::pg_catalog.oid[]) OR t.oid IN (SELECT x.typelem"
    " FROM pg_catalog.pg_type x WHERE x.oid = ANY($1::pg_catalog.oid[])"
    " UNION ALL SELECT x.typbasetype FROM pg_catalog.pg_type x"
    " WHERE x.oid = ANY($1::pg_catalog.oid[]))";

/* ---- interned names ---- */

typedef struct iname {
    struct iname *next;
    char s[];
} iname;

#define INAME_BUCKETS 64u
static iname *inames[INAME_BUCKETS];
static pthread_mutex_t inames_lock = PTHREAD_MUTEX_INITIALIZER;

/* A copy of s that lives as long as the process, or NULL without memory.
 * Plain malloc: the user's allocator hooks may not outlive the results. */
static const char *intern(const char *s)
{
    size_t len = strlen(s);
    unsigned h = 5381;
    for (size_t i = 0; i < len; i++)
        h = h * 33u + (unsigned char)s[i];
    h %= INAME_BUCKETS;
    const char *out = NULL;
    pthread_mutex_lock(&inames_lock);
    for (iname *n = inames[h]; n; n = n->next) {
        if (!strcmp(n->s, s)) {
            out = n->s;
            break;
        }
    }
    if (!out) {
        iname *n = malloc(sizeof *n + len + 1);
        if (n) {
            memcpy(n->s, s, len + 1);
            n->next = inames[h];
            inames[h] = n;
            out = n->s;
        }
    }
    pthread_mutex_unlock(&inames_lock);
    return out;
}

/* ---- the entries ---- */

/* The entry for oid, or NULL. Entries are sorted by OID. */
static pg_cat_ent *find(const pg_catalog *cat, Oid oid)
{
    size_t lo = 0, hi = cat->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cat->ents[mid].oid < oid)
            lo = mid + 1;
        else if (cat->ents[mid].oid > oid)
            hi = mid;
        else
            return &cat->ents[mid];
    }
    return NULL;
}

/* Note oid for the next lookup (at most PG_CAT_MAX_WANT at once: more
 * wait for the lookup after). */
static void want(pg_catalog *cat, Oid oid)
{
    if (cat->failures >= MAX_FAILURES)
        return;
    for (size_t i = 0; i < cat->nwant; i++)
        if (cat->want[i] == oid)
            return;
    if (cat->nwant < PG_CAT_MAX_WANT)
        cat->want[cat->nwant++] = oid;
}

/* The slot for oid in the sorted array (an existing entry is reused). */
static pg_cat_ent *slot(pg_catalog *cat, Oid oid)
{
    pg_cat_ent *e = find(cat, oid);
    if (e)
        return e;
    if (cat->n == cat->cap) {
        size_t cap = cat->cap ? cat->cap * 2 : 16;
        pg_cat_ent *g = evdb__realloc(cat->ents, cap * sizeof *g);
        if (!g)
            return NULL;
        cat->ents = g;
        cat->cap = cap;
    }
    size_t i = cat->n;
    while (i > 0 && cat->ents[i - 1].oid > oid)
        i--;
    memmove(&cat->ents[i + 1], &cat->ents[i], (cat->n - i) * sizeof *cat->ents);
    cat->n++;
    e = &cat->ents[i];
    memset(e, 0, sizeof *e);
    e->oid = oid;
    return e;
}

static Oid parse_oid(const char *s)
{
    unsigned long v = strtoul(s, NULL, 10);
    return (Oid)v;
}

/* ---- resolution ---- */

/* oid's evdb type, element type and entry (NULL for a built-in of the
 * static table); false when the catalog does not know it yet. */
static bool resolve(pg_catalog *cat, Oid oid, int depth, evdb_type *type, evdb_type *elem,
                    const char **static_name, pg_cat_ent **ent)
{
    *ent = NULL;
    *type = evdb__pg_type(oid, elem, static_name);
    if (*type != EVDB_TYPE_OTHER || *static_name)
        return true;
    pg_cat_ent *e = find(cat, oid);
    if (!e) {
        want(cat, oid);
        return false;
    }
    *ent = e;
    *elem = EVDB_TYPE_NULL;
    *type = EVDB_TYPE_OTHER;
    if (depth >= MAX_DEPTH)
        return true;
    const char *ignored;
    pg_cat_ent *sub;
    evdb_type t, el;
    switch (e->typtype) {
    case 'e':
        *type = EVDB_TYPE_ENUM;
        return true;
    case 'd':
        /* A domain reads as its base type, under its own name. */
        if (!resolve(cat, e->base, depth + 1, &t, &el, &ignored, &sub))
            return false;
        *type = t;
        *elem = el;
        return true;
    default:
        break;
    }
    if (e->category == 'A' && e->elem) {
        if (!resolve(cat, e->elem, depth + 1, &t, &el, &ignored, &sub))
            return false;
        *type = EVDB_TYPE_ARRAY;
        *elem = t == EVDB_TYPE_ARRAY ? EVDB_TYPE_OTHER : t;
        return true;
    }
    /* The server files citext and its like under strings. */
    if (e->category == 'S')
        *type = EVDB_TYPE_TEXT;
    return true;
}

bool evdb__pg_catalog_type(pg_catalog *cat, Oid oid, evdb_type *type, evdb_type *elem,
                           const char **name)
{
    pg_cat_ent *e;
    bool known = resolve(cat, oid, 0, type, elem, name, &e);
    if (e && e->name[0]) {
        if (!e->interned)
            e->interned = intern(e->name);
        *name = e->interned;
    }
    return known;
}

/* ---- the catalog query ---- */

void evdb__pg_catalog_free(pg_catalog *cat)
{
    evdb__free(cat->ents);
    memset(cat, 0, sizeof *cat);
}

void evdb__pg_catalog_reload(pg_catalog *cat)
{
    if (cat->failures < MAX_FAILURES)
        cat->want_full = true;
}

int evdb__pg_catalog_send(evdb__dconn *dc)
{
    pg_catalog *cat = &dc->cat;
    /* "{oid,oid,...}": at most PG_CAT_MAX_WANT numbers of 10 digits. */
    char list[PG_CAT_MAX_WANT * 11 + 3];
    const char *param = list;
    bool full = cat->want_full;
    if (!full) {
        size_t o = 0;
        list[o++] = '{';
        for (size_t i = 0; i < cat->nwant; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%u", i ? "," : "", cat->want[i]);
        list[o++] = '}';
        list[o] = '\0';
    }
    if (!PQsendQueryParams(dc->conn, full ? full_sql : some_sql, full ? 0 : 1, NULL,
                           full ? NULL : &param, NULL, NULL, 0))
        return -1;
    cat->in_flight = true;
    cat->sent_full = full;
    cat->want_full = false;
    cat->sent_want = cat->nwant;
    return 0;
}

/* The rows of a catalog answer into the entries. */
static void take_rows(pg_catalog *cat, const PGresult *res)
{
    int n = PQntuples(res);
    if (PQnfields(res) != 6)
        return;
    for (int r = 0; r < n; r++) {
        pg_cat_ent *e = slot(cat, parse_oid(PQgetvalue(res, r, 0)));
        if (!e)
            return; /* no memory: the rest stays unknown (OTHER) */
        const char *name = PQgetvalue(res, r, 1);
        if (!e->interned || strcmp(e->name, name) != 0) {
            snprintf(e->name, sizeof e->name, "%s", name);
            e->interned = NULL;
        }
        e->typtype = PQgetvalue(res, r, 2)[0];
        e->category = PQgetvalue(res, r, 3)[0];
        e->elem = parse_oid(PQgetvalue(res, r, 4));
        e->base = parse_oid(PQgetvalue(res, r, 5));
    }
}

void evdb__pg_catalog_result(pg_catalog *cat, const PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        /* Cancelled, aborted or refused: asked again with the next query,
         * a few times at most. */
        if (PQresultStatus(res) != PGRES_PIPELINE_ABORTED)
            cat->failures++;
        cat->want_full |= cat->sent_full && cat->failures < MAX_FAILURES;
        if (cat->failures >= MAX_FAILURES)
            cat->nwant = 0;
        return;
    }
    cat->failures = 0;
    if (cat->sent_full) {
        /* A reload replaces everything: a dropped type's OID may come
         * back (after OID wraparound) as another type. */
        cat->n = 0;
    }
    take_rows(cat, res);
    /* The OIDs asked for that did not come back (dropped since): known
     * as unknown, so they are not asked for again. */
    if (!cat->sent_full) {
        for (size_t i = 0; i < cat->sent_want; i++)
            if (!find(cat, cat->want[i]))
                (void)slot(cat, cat->want[i]);
    }
}

void evdb__pg_catalog_done(pg_catalog *cat)
{
    if (!cat->in_flight)
        return;
    cat->in_flight = false;
    /* The OIDs that went out are answered (or given up); those noted
     * since wait for the next lookup. */
    size_t sent = cat->sent_full ? 0 : cat->sent_want;
    if (sent > cat->nwant)
        sent = cat->nwant;
    memmove(cat->want, cat->want + sent, (cat->nwant - sent) * sizeof *cat->want);
    cat->nwant -= sent;
    cat->sent_want = 0;
    /* After a full load, what was wanted meanwhile may be known now. */
    size_t k = 0;
    for (size_t i = 0; i < cat->nwant; i++)
        if (!find(cat, cat->want[i]))
            cat->want[k++] = cat->want[i];
    cat->nwant = k;
}
