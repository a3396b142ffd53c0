/*
 * The PostgreSQL driver's private declarations, shared by its files:
 *   pg_driver.c     the vtable, URL claims, capacity, server id
 *   pg_conn.c       connect, close, destroy
 *   pg_pipeline.c   the query semantics; send / flush / io
 *   pg_queue.c      the pending queue, the ring of expected answers, reporting
 *   pg_failure.c    transaction state; a failed query: retried or reported
 *   pg_send.c       onto the wire: one Sync per query, batches, barriers
 *   pg_recv.c       the answers: results held until their Sync, errors
 *   pg_result.c     PGresult -> evdb_result, server errors -> evdb_error
 *   pg_stream.c     row streaming: batches to the core, pauses
 *   pg_copy.c       COPY data in and out (evdb_copy_in / evdb_copy_out)
 *   pg_params.c     typed values -> libpq parameter arrays
 *   pg_types.c      type OIDs -> evdb types and type names
 *   pg_catalog.c    enums, domains, extension types: read from pg_type
 *   pg_sql.c        the small SQL lexer (multi-statement, transaction control)
 *   pg_stmtcache.c  the per-connection prepared-statement LRU
 *   pg_cancel.c     PQcancel on a helper thread
 *   pg_resolve.c    host names resolved before the connect, on the loop
 *   pg_bouncer.c    PgBouncer transaction mode (?evdb_pgbouncer=transaction)
 */
#ifndef EVDB_PG_INTERNAL_H
#define EVDB_PG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "driver.h"

/* ---- type OIDs (pg_type.h is a server header: name the few we need) ---- */
#define PG_OID_UNKNOWN 0u /* let the server infer the type from context */
#define PG_OID_BOOL 16u
#define PG_OID_BYTEA 17u
#define PG_OID_CHAR 18u
#define PG_OID_NAME 19u
#define PG_OID_INT8 20u
#define PG_OID_INT2 21u
#define PG_OID_INT4 23u
#define PG_OID_TEXT 25u
#define PG_OID_OID 26u
#define PG_OID_FLOAT4 700u
#define PG_OID_FLOAT8 701u
#define PG_OID_BPCHAR 1042u
#define PG_OID_VARCHAR 1043u
#define PG_OID_JSON 114u
#define PG_OID_JSON_ARRAY 199u
#define PG_OID_BOOL_ARRAY 1000u
#define PG_OID_BYTEA_ARRAY 1001u
#define PG_OID_TEXT_ARRAY 1009u
#define PG_OID_INT8_ARRAY 1016u
#define PG_OID_FLOAT8_ARRAY 1022u
#define PG_OID_DATE 1082u
#define PG_OID_TIME 1083u
#define PG_OID_TIMESTAMP 1114u
#define PG_OID_TIMESTAMP_ARRAY 1115u
#define PG_OID_DATE_ARRAY 1182u
#define PG_OID_TIME_ARRAY 1183u
#define PG_OID_TIMESTAMPTZ 1184u
#define PG_OID_TIMESTAMPTZ_ARRAY 1185u
#define PG_OID_INTERVAL 1186u
#define PG_OID_INTERVAL_ARRAY 1187u
#define PG_OID_NUMERIC_ARRAY 1231u
#define PG_OID_TIMETZ 1266u
#define PG_OID_TIMETZ_ARRAY 1270u
#define PG_OID_BIT 1560u
#define PG_OID_VARBIT 1562u
#define PG_OID_NUMERIC 1700u
#define PG_OID_UUID 2950u
#define PG_OID_UUID_ARRAY 2951u
#define PG_OID_JSONB 3802u

/* pg_types.c: a type OID's evdb type, its array element type
 * (EVDB_TYPE_NULL when not an array) and its name (static; NULL for an
 * OID the table does not know, which is EVDB_TYPE_OTHER). */
evdb_type evdb__pg_type(Oid oid, evdb_type *elem, const char **name);

/* ---- pg_catalog.c: the types pg_types.c does not know, per connection ---- */
#define PG_CAT_MAX_WANT 32 /* unknown OIDs asked for in one lookup */
typedef struct pg_cat_ent {
    Oid oid;
    Oid elem;             /* typelem: arrays' element type */
    Oid base;             /* typbasetype: domains' base type */
    char typtype;         /* 'b' base, 'e' enum, 'd' domain, 'r' range, ...; 0: no such type */
    char category;        /* typcategory: 'A' array, 'S' string, ... */
    const char *interned; /* name, interned once a result used it */
    char name[64];        /* typname (NAMEDATALEN) */
} pg_cat_ent;

typedef struct pg_catalog {
    pg_cat_ent *ents; /* sorted by OID */
    size_t n, cap;
    Oid want[PG_CAT_MAX_WANT]; /* OIDs seen in results and not known yet */
    size_t nwant;
    size_t sent_want;  /* the first sent_want of want[] are being looked up */
    bool want_full;    /* the list of user types is due (connect, type DDL) */
    bool sent_full;    /* the lookup in flight is the full list */
    bool in_flight;    /* a lookup is on the wire */
    unsigned failures; /* lookups that failed in a row */
} pg_catalog;

/* Free the entries (a zeroed catalog is empty: the connection is calloc'ed). */
void evdb__pg_catalog_free(pg_catalog *cat);
/* The whole list is due again (after connect, after type DDL). */
void evdb__pg_catalog_reload(pg_catalog *cat);
/* Whether a lookup should go out before the next user query (inline:
 * asked before every query). */
static inline bool evdb__pg_catalog_due(const pg_catalog *cat)
{
    return (cat->want_full || cat->nwant) && !cat->in_flight;
}
/* oid's evdb type, array element type and name (static storage, NULL when
 * unknown): the static table first, then the catalog. false when the
 * catalog does not know oid yet (then it is queued for a lookup and the
 * type is EVDB_TYPE_OTHER): such columns must not be remembered. */
bool evdb__pg_catalog_type(pg_catalog *cat, Oid oid, evdb_type *type, evdb_type *elem,
                           const char **name);
/* Send the due lookup on dc (its ring entry is the caller's to push).
 * 0, or -1 when libpq refused it. */
int evdb__pg_catalog_send(evdb__dconn *dc);
/* A lookup's result (any status), then its end (PQgetResult's NULL). */
void evdb__pg_catalog_result(pg_catalog *cat, const PGresult *res);
void evdb__pg_catalog_done(pg_catalog *cat);

/* ---- per-query driver state, kept in evdb__query.drv_state ----
 * The classification of the SQL text is computed once per query object;
 * the rest describes where the query stands. */
#define PGQ_CLASSIFIED 0x0001 /* the bits below were computed */
#define PGQ_SIMPLE                                                                                 \
    0x0002               /* several statements, or COPY: simple protocol,
                                 alone, with pipeline mode off */
#define PGQ_TXCTL 0x0004 /* transaction control */
#define PGQ_TXE_SHIFT 3  /* 3 bits: the PG_TXE_* effect on the block */
#define PGQ_TXE_MASK (0x7 << PGQ_TXE_SHIFT)
#define PGQ_SENT 0x0040 /* it went on the wire at least once */
#define PGQ_DDL                                                                                    \
    0x0080              /* ALTER / CREATE / DROP: alone, then the
                                 statement cache is renewed */
#define PGQ_WIRE 0x0100 /* on the wire, its statement(s) not answered yet */
#define PGQ_OWNTX                                                                                  \
    0x0400 /* CALL / DO: may COMMIT by itself, so it is
                                 never re-run after a collateral cancel */
#define PGQ_REPARSE                                                                                \
    0x0800                 /* its cached statement went stale (0A000, 26000):
                                 the retry waits for everything before it and
                                 parses afresh */
#define PGQ_RETRY_SHIFT 12 /* 4 bits: how often it was re-sent */
#define PGQ_RETRY_MASK (0xf << PGQ_RETRY_SHIFT)

_Static_assert(((PGQ_CLASSIFIED | PGQ_SIMPLE | PGQ_TXCTL) & PGQ_TXE_MASK) == 0, "flags overlap");
_Static_assert(((PGQ_SENT | PGQ_DDL | PGQ_WIRE | PGQ_OWNTX | PGQ_REPARSE) &
                (PGQ_TXE_MASK | PGQ_RETRY_MASK | PGQ_CLASSIFIED | PGQ_SIMPLE | PGQ_TXCTL)) == 0,
               "flags overlap");

/* What a transaction control statement does to the transaction block. */
enum pg_txe {
    PG_TXE_NONE = 0,
    PG_TXE_BEGIN = 1,       /* BEGIN, START TRANSACTION */
    PG_TXE_END = 2,         /* COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION */
    PG_TXE_CHAIN = 3,       /* COMMIT/ROLLBACK AND CHAIN: ends one, opens the next */
    PG_TXE_ROLLBACK_TO = 4, /* ROLLBACK TO SAVEPOINT: leaves the error state */
    PG_TXE_OTHER = 5        /* SAVEPOINT, RELEASE, COMMIT/ROLLBACK PREPARED */
};

/* Once a session reset failed: EVDB__STEP_FAIL with err saying so, else 0
 * (pg_pipeline.c). */
int evdb__pg_reset_check(const evdb__dconn *dc, evdb_error *err);

/* ---- pg_sql.c ---- */
/* Classify sql: PGQ_SIMPLE (several statements or COPY), PGQ_TXCTL and the PG_TXE_* effect (shifted),
 * PGQ_OWNTX, PGQ_DDL, always with PGQ_CLASSIFIED set. */
unsigned evdb__pg_sql_classify(const char *sql, size_t len);
/* The number of parameters the server will give sql: its highest $n
 * (outside quotes and comments), at most PG_MAX_PARAMS. */
#define PG_MAX_PARAMS 65535 /* the protocol's 16-bit count */
size_t evdb__pg_sql_count_params(const char *sql, size_t len);
/* Whether sql contains the word "prepare" in any case, anywhere (inside
 * quotes, comments and longer names too): what may make an SQL-level
 * prepared statement (pg_reset.c). */
bool evdb__pg_sql_mentions_prepare(const char *sql, size_t len);
/* "LISTEN" or "PREPARE" when a statement of sql starts with that word
 * (PREPARE TRANSACTION excepted): session state that a transaction-mode
 * PgBouncer loses (pg_bouncer.c). NULL otherwise. */
const char *evdb__pg_sql_session_only(const char *sql, size_t len);

/* ---- pg_params.c ---- */
typedef struct pg_params {
    const char **values;
    int *lengths;
    int *formats;
    Oid *types;
    size_t cap; /* entries in each array */
    char *text; /* decimal renderings of numbers */
    size_t text_cap;
} pg_params;

/* Check what libpq cannot send (text with a NUL byte): 0 or EVDB_EINVAL
 * with err set. */
int evdb__pg_params_check(const evdb__query *q, evdb_error *err);
/* Fill p's arrays for q (valid until the next call). 0 or EVDB_ENOMEM. */
int evdb__pg_params_encode(pg_params *p, const evdb__query *q);
/* n parameters of unspecified type (OID 0, no values): the types of a
 * statement prepared from its text alone. 0 or EVDB_ENOMEM. */
int evdb__pg_params_untyped(pg_params *p, size_t n);
void evdb__pg_params_free(pg_params *p);

/* ---- pg_result.c ---- */
typedef struct pg_cols pg_cols; /* a statement's result columns */
/* Convert a TUPLES_OK / COMMAND_OK / EMPTY_QUERY result. NULL: no memory.
 * cols: where the columns of a cached statement's results are kept (its
 * pg_stmt's), or NULL: a statement's result columns are fixed while it
 * lives (a change is an error that renews it), so its later results skip
 * libpq's per-column calls. kept: NULL to always copy; else set to
 * whether the result took res (a large result reads its cells in place
 * and clears res when freed): the caller must then not PQclear it. */
evdb_result *evdb__pg_result_build(PGresult *res, pg_cols **cols, bool *kept);
/* The same, with the connection's catalog for the types the static table
 * does not know (NULL: they read as EVDB_TYPE_OTHER, without a name). */
evdb_result *evdb__pg_result_build_cat(PGresult *res, pg_cols **cols, bool *kept, pg_catalog *cat);
/* Free what evdb__pg_result_build kept in *cols. */
void evdb__pg_cols_free(pg_cols *cols);
/* Single-row mode: append the rows of res (a PGRES_SINGLE_TUPLE) to *b,
 * creating it with res's columns when NULL. Returns 0 or EVDB_ENOMEM (*b
 * stays for the caller to free). */
int evdb__pg_rows_add(evdb__rbuild **b, const PGresult *res);
/* The same, with the connection's catalog (as evdb__pg_result_build_cat). */
int evdb__pg_rows_add_cat(evdb__rbuild **b, const PGresult *res, pg_catalog *cat);
/* The closing zero-row PGRES_TUPLES_OK of single-row mode: its counters
 * and tag, then the result (NULL on allocation failure; b is consumed). */
evdb_result *evdb__pg_rows_finish(evdb__rbuild *b, const PGresult *res);
/* Describe a failed result: EVDB_ESERVER with SQLSTATE and
 * primary + detail + hint for server errors, EVDB_EPROTO for libpq's own. */
void evdb__pg_error_from_result(evdb_error *e, const PGresult *res);
/* An error (or, with code 0, a notice) from a server message: SQLSTATE,
 * primary + detail + hint as the message, and every diagnostic field. */
void evdb__pg_error_fill(evdb_error *e, int code, const PGresult *res);
/* Just the diagnostic fields of res, into e (after evdb__error_set). */
void evdb__pg_error_diag(evdb_error *e, const PGresult *res);
/* True when the server will close the session after this error
 * (severity FATAL/PANIC: pg_terminate_backend, shutdown). */
bool evdb__pg_error_is_fatal(const PGresult *res);

/* ---- pg_stmtcache.c ---- */
enum pg_stmt_state {
    PGS_NEW,       /* in the cache (pinned), not on the server: Parse it */
    PGS_PREPARING, /* in the cache, Parse sent, answer pending */
    PGS_READY,     /* in the cache, exists on the server */
    PGS_ZOMBIE,    /* out of the cache, exists on the server: to DEALLOCATE */
    PGS_DEALLOC,   /* out of the cache, DEALLOCATE sent */
    PGS_DEAD       /* out of the cache, not on the server: freed at refs 0 */
};

typedef struct pg_stmt pg_stmt;
struct pg_stmt {
    pg_stmt *hnext;       /* hash chain */
    pg_stmt *prev, *next; /* LRU list, or the zombie queue */
    uint64_t hash;
    const char *sql; /* points into this allocation */
    size_t sql_len;
    size_t nparams;
    const Oid *types; /* nparams, into this allocation */
    unsigned refs;    /* pipeline entries that name it */
    enum pg_stmt_state state;
    bool pinned;           /* evdb_conn_prepare: never evicted */
    bool mentions_prepare; /* evdb__pg_sql_mentions_prepare(sql) */
    pg_cols *cols;         /* its results' columns, once one was built */
    char name[24];         /* "evdb_N" */
};

typedef struct pg_cache {
    pg_stmt **buckets;
    size_t nbuckets;        /* power of two */
    pg_stmt lru;            /* sentinel: lru.next is the most recently used */
    size_t count, cap;      /* count includes the pinned ones */
    size_t npinned;         /* pinned statements, outside cap */
    pg_stmt *zhead, *ztail; /* statements waiting for DEALLOCATE */
    size_t nzombies;
    uint64_t next_id;
} pg_cache;

int evdb__pg_cache_init(pg_cache *c, size_t cap);
void evdb__pg_cache_free(pg_cache *c);
uint64_t evdb__pg_cache_hash(const char *sql, size_t len, size_t nparams, const Oid *types);
/* A cached statement (NEW, PREPARING or READY) for this text and these
 * parameter types, made most recently used; or NULL. */
pg_stmt *evdb__pg_cache_find(pg_cache *c, uint64_t h, const char *sql, size_t len, size_t nparams,
                             const Oid *types);
/* The most recently used statement when it is the one for this text and
 * these types, else NULL: queries mostly repeat the last statement, and
 * comparing it costs less than hashing the text. */
pg_stmt *evdb__pg_cache_mru(const pg_cache *c, const char *sql, size_t len, size_t nparams,
                            const Oid *types);
/* A new PREPARING statement, most recently used; may move the least
 * recently used READY statements to the zombie queue. NULL: no memory. */
pg_stmt *evdb__pg_cache_add(pg_cache *c, uint64_t h, const char *sql, size_t len, size_t nparams,
                            const Oid *types);
/* Take st out of the cache (no-op when it is not in it). on_server says
 * whether the server holds it (then it is queued for DEALLOCATE). */
void evdb__pg_cache_drop(pg_cache *c, pg_stmt *st, bool on_server);
/* st became unusable (the server lost it, its plan changed its result
 * type, or its Parse failed): take it out of the cache like
 * evdb__pg_cache_drop, but when it is pinned put a NEW statement with the
 * same text and types, pinned, in its place, so that the next query that
 * uses it prepares it again and the pin holds. */
void evdb__pg_cache_invalidate(pg_cache *c, pg_stmt *st, bool on_server);
/* Pin st (in the cache) so that it is never evicted, or unpin it (it
 * becomes the least recently used, and the cache shrinks back to cap). */
void evdb__pg_cache_pin(pg_cache *c, pg_stmt *st);
void evdb__pg_cache_unpin(pg_cache *c, pg_stmt *st);
/* A schema change went through: every statement the server has is
 * replaced by a NEW one (pinned ones keep their pin) and DEALLOCATEd, so
 * the next use parses against the new schema instead of failing with
 * 0A000 "cached plan must not change result type". */
void evdb__pg_cache_invalidate_all(pg_cache *c);
/* Forget every statement (the server dropped them all: DISCARD ALL). */
void evdb__pg_cache_forget_all(pg_cache *c);
/* The zombie queue: pop the oldest / put one back. */
pg_stmt *evdb__pg_cache_zombie_pop(pg_cache *c);
void evdb__pg_cache_zombie_push(pg_cache *c, pg_stmt *st);
/* Reference counting by pipeline entries; frees DEAD statements. */
static inline void evdb__pg_stmt_ref(pg_stmt *st)
{
    st->refs++;
}
void evdb__pg_stmt_unref(pg_stmt *st);

/* ---- pg_resolve.c: host names resolved on the loop (c-ares) ---- */
typedef struct pg_resolve pg_resolve;
/* Start resolving the host names of the parsed URL opts: WAIT (a timer
 * wait, then call evdb__pg_resolve_step), DONE when there is nothing to
 * resolve, or FAIL. */
int evdb__pg_resolve_start(evdb__dconn *dc, const PQconninfoOption *opts, evdb__wait *w,
                           evdb_error *err);
/* Poll: WAIT, or DONE with dc->rs_host / rs_hostaddr / rs_port set (the
 * keyword values for libpq; rs_port NULL when the URL's port stands), or
 * FAIL when no host resolved. */
int evdb__pg_resolve_step(evdb__dconn *dc, evdb__wait *w, evdb_error *err);
/* Abandon a resolution in progress (never blocks). */
void evdb__pg_resolve_cancel(evdb__dconn *dc);
void evdb__pg_resolve_free_lists(evdb__dconn *dc);

/* ---- pg_pipeline.c: the connection's command stream ---- */
enum pg_kind {
    PGK_QUERY,    /* a user query (or batch statement): results, then NULL */
    PGK_PREPARE,  /* PQsendPrepare for the next PGK_QUERY: one result, NULL */
    PGK_DEALLOC,  /* DEALLOCATE of st (chain via st->next when several) */
    PGK_SYNC,     /* PQpipelineSync ending q's commands: PGRES_PIPELINE_SYNC
                     (after an error at commit: that error, NULL, then
                     PGRES_PIPELINE_SYNC), never a NULL of its own */
    PGK_MULTI,    /* PQsendQuery of a multi-statement string (pipeline off) */
    PGK_ROLLBACK, /* ROLLBACK after a pooled query left a block open */
    PGK_CATALOG   /* a type lookup of pg_catalog.c: results, then NULL */
};

/* pg_ent.flags */
#define ENT_PARSED 0x1     /* PGK_QUERY: its statement's Parse went in this attempt */
#define ENT_AUTOCOMMIT 0x2 /* PGK_MULTI: a pooled query (EVDB__QUERY_AUTOCOMMIT) */

typedef struct pg_ent {
    evdb__query *q; /* NULL once q was reported or re-queued */
    pg_stmt *st;
    unsigned char kind;
    unsigned char flags;
    uint32_t idx; /* batch statements: 1-based number in the batch */
} pg_ent;

/* Transaction block state as the driver tracks it. */
enum pg_tx { PG_TX_IDLE, PG_TX_IN, PG_TX_ERROR };

struct evdb__dconn {
    PGconn *conn;
    void *core; /* the core's connection: evdb__notice_new */
    /* Connect: host names being resolved, then the lists for libpq. */
    pg_resolve *resolve;
    char *url;
    char *options; /* the startup options: evdb's settings after the user's */
    char *rs_host, *rs_hostaddr, *rs_port;
    unsigned depth;    /* most queries in flight */
    size_t max_result; /* bytes per query's result; 0 = no limit */
    bool pipeline;     /* depth > 1: pipeline mode is used */
    bool in_pipeline;  /* pipeline mode is on right now */
    bool want_write;   /* PQflush left data behind */
    bool listening;    /* notifications go to the core (slot listen) */
    /* PgBouncer transaction mode (pg_bouncer.c): no named statements, no
     * session state, a reset that only ends an open block. */
    bool bouncer;
    unsigned inflight; /* queries taken by send and not yet reported */

    /* Queries taken but not on the wire yet (re-sends go in front). */
    evdb__query **pend;
    size_t phead, plen, pcap; /* ring buffer, pcap a power of two */

    /* What the server will answer, in order. */
    pg_ent *ring;
    size_t rhead, rlen, rcap; /* ring buffer, rcap a power of two */
    bool solo;                /* an EVDB_QUERY_NO_PIPELINE query is in flight */
    bool cork_off;            /* TCP_CORK is not available on this socket */

    /* The answer being read for the entry at the ring's head. */
    evdb_result *cur;       /* its result so far (a chain for PGK_MULTI) */
    evdb__rbuild *cur_rows; /* single-row mode: the statement's rows so far */
    bool cur_got;           /* a result arrived for it */
    bool cur_oom;           /* a result could not be stored */
    bool cur_toobig;        /* its result passed max_result; the rest is dropped */
    bool cur_rowmode_tried; /* PQsetSingleRowMode was called for it */
    bool cur_copy_out;      /* draining COPY TO STDOUT data */
    bool cur_copy_err;      /* it was a COPY: fail it with ENOTSUP */
    size_t stream_nrows;    /* a streamed query: rows in cur_rows */

    /* Pipeline mode: the results of the query whose Sync comes next, held
     * until that Sync says its implicit transaction committed (a chain
     * for a batch). */
    evdb_result *held;
    bool held_oom;    /* a result could not be stored */
    bool held_toobig; /* ... because it passed max_result */
    bool sync_err;    /* an error arrived for the head Sync: its NULL follows */

    enum pg_tx tx; /* as of the answers read so far */
    bool send_tx;  /* a transaction block may be open after what was sent */
    /* A statement sent since the last session reset mentions "prepare"
     * (evdb__pg_note_sql): the next reset DEALLOCATEs SQL-level prepared
     * statements instead of only checking that there are none. */
    bool sql_prepare_seen;
    /* A pool's session reset (EVDB__QUERY_RESET_SESSION) failed: nothing
     * more is sent or read, and the connection fails (pg_reset_failed). */
    bool reset_failed;
    /* Cancel window: open from a cancel request until the request has
     * been delivered (cancel_op gone) and the pipeline drained. A 57014 in
     * the window may be collateral (pg_pipeline.c). */
    bool cancel_window;
    evdb__cancel *cancel_op; /* the request in progress, or NULL */

    /* The FATAL the server sent outside any query (notice receiver): why
     * the session is about to end. */
    char fatal_state[6];
    char fatal_msg[200];

    pg_params params;
    bool cache_on;
    pg_cache cache;
    char *dealloc_sql; /* scratch for DEALLOCATE statements */
    size_t dealloc_cap;

    /* The COPY whose data is moving (pg_copy.c): its query, and which way
     * (copy_in: libpq is in COPY_IN state until PQputCopyEnd went). */
    evdb__query *copy_q;
    bool copy_in;
    pg_catalog cat; /* types beyond the static table (pg_catalog.c) */
};

/* Queries re-sent more than this many times (stale cached statements)
 * are failed instead; a 57014 inside a cancel window is re-sent at most
 * PG_MAX_CANCEL_RETRIES times (a statement_timeout would otherwise be
 * retried for as long as the window stays open). */
#define PG_MAX_RETRIES 8
#define PG_MAX_CANCEL_RETRIES 3

/* Shared by pg_queue.c (queues, reporting), pg_failure.c (transaction
 * state, error policy), pg_pipeline.c (entry points), pg_send.c (onto the
 * wire) and pg_recv.c (the answers); each is described where it is
 * defined. */
/* The ring of expected answers: room for more entries, the i-th entry
 * from the head, a new entry at the tail (its statements referenced),
 * dropping an entry's statement references, popping the head. */
bool evdb__pg_grow_ring(evdb__dconn *dc, size_t more);
pg_ent *evdb__pg_ring_at(evdb__dconn *dc, size_t i);
pg_ent *evdb__pg_ring_push(evdb__dconn *dc, enum pg_kind kind, evdb__query *q, pg_stmt *st);
void evdb__pg_release_stmts(evdb__dconn *dc, pg_ent *e, bool forget);
void evdb__pg_ring_pop(evdb__dconn *dc);
/* q's answer is settled: its entries left in the ring forget it. */
void evdb__pg_detach(evdb__dconn *dc, const evdb__query *q);
/* Queries taken by send and not on the wire yet; pend_grow makes room
 * for n of them (false: no memory). */
bool evdb__pg_pend_grow(evdb__dconn *dc, size_t n);
evdb__query *evdb__pg_pend_front(evdb__dconn *dc);
void evdb__pg_pend_pop(evdb__dconn *dc);
void evdb__pg_pend_push_front(evdb__dconn *dc, evdb__query *q);
/* Reporting a query to the core (err: the step's scratch error). */
void evdb__pg_report_done(evdb__dconn *dc, evdb__query *q, evdb_result *r);
void evdb__pg_report_failed(evdb__dconn *dc, evdb__query *q, const evdb_error *e);
void evdb__pg_report_code(evdb__dconn *dc, evdb__query *q, evdb_error *err, int code,
                          const char *sqlstate, const char *msg);
void evdb__pg_report_unstored(evdb__dconn *dc, evdb__query *q, bool toobig, evdb_error *err);
/* The transaction block as the answers show it. */
enum pg_txe evdb__pg_txe_of(const evdb__query *q);
void evdb__pg_tx_after_ok(evdb__dconn *dc, const evdb__query *q);
void evdb__pg_tx_after_error(evdb__dconn *dc, const evdb__query *q);
void evdb__pg_tx_from_libpq(evdb__dconn *dc);
/* Retries: how many so far, and marking the next one. */
unsigned evdb__pg_retries(const evdb__query *q);
void evdb__pg_mark_retry(evdb__query *q, bool reparse);
/* q's command failed with res: report it or re-queue it (error policy). */
void evdb__pg_fail_query(evdb__dconn *dc, evdb__query *q, pg_stmt *st, bool parsed, uint32_t idx,
                         const PGresult *res, evdb_error *err);
/* Sending (pg_send.c): the failure of a libpq send call, no memory (both
 * return EVDB__STEP_FAIL with err set), the Bind/Execute (or Describe)
 * of q on st, and pushing pending queries onto the wire. */
int evdb__pg_send_failed(evdb__dconn *dc, evdb_error *err);
int evdb__pg_no_memory(evdb_error *err);
int evdb__pg_send_exec(evdb__dconn *dc, const evdb__query *q, pg_stmt *st);
int evdb__pg_push(evdb__dconn *dc, evdb_error *err);
/* Receiving (pg_recv.c): the session is gone (EVDB__STEP_FAIL with why),
 * the answer being read dropped, and reading every answer that is in. */
int evdb__pg_conn_lost(evdb__dconn *dc, evdb_error *err, const char *what);
void evdb__pg_reset_cur(evdb__dconn *dc);
/* COPY (pg_copy.c). copy_begin: the head entry's query got res, a
 * PGRES_COPY_IN or _OUT: 1 when its data now moves through the query's
 * evdb__copy, 0 when it is not a copy of the user's (refused as
 * before). copy_step: move data while a COPY is in progress (or drop a
 * refused COPY OUT's): 1 done (PQgetResult gives the final status next),
 * 0 wait, or EVDB__STEP_FAIL. copy_reading: whether the socket is to be
 * read (false while the user's COPY OUT is paused). copy_refuse: report
 * q, a COPY that was not run as one (refused, or the wrong direction). */
int evdb__pg_copy_begin(evdb__dconn *dc, evdb__query *q, ExecStatusType st);
int evdb__pg_copy_step(evdb__dconn *dc, evdb_error *err);
bool evdb__pg_copy_reading(const evdb__dconn *dc);
/* A copy in has data, its end or its abort still to hand to libpq: the
 * step must run again once the socket takes more (next_wait's PQflush may
 * have emptied libpq's buffer after step_in stopped at a full socket). */
bool evdb__pg_copy_wants_write(const evdb__dconn *dc);
void evdb__pg_copy_refuse(evdb__dconn *dc, evdb__query *q, evdb_error *err);
int evdb__pg_receive(evdb__dconn *dc, evdb_error *err);

/* Streaming (pg_stream.c): whether the streamed query at the ring's head
 * wants no rows now (then the socket is not read), whether one is at the
 * head at all (single-row mode for it), one row of it, and the end of its
 * rows (the last partial batch handed over; res is the statement's final
 * result, which keeps no rows). */
bool evdb__pg_stream_paused(const evdb__dconn *dc);
bool evdb__pg_stream_wants_rows(const evdb__dconn *dc);
void evdb__pg_stream_row(evdb__dconn *dc, evdb__query *q, const PGresult *res);
void evdb__pg_stream_end(evdb__dconn *dc, evdb__query *q, const PGresult *res);

int evdb__pg_send(evdb__dconn *dc, evdb__query *q, evdb_error *err);
int evdb__pg_flush(evdb__dconn *dc, evdb__wait *w, evdb_error *err);
int evdb__pg_io(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err);
/* Free what the pipeline holds (results, entries) without touching any
 * query: the core may have freed them already. */
void evdb__pg_pipeline_forget(evdb__dconn *dc);
/* Where q stands, for cancel: true while the server may still be running
 * it (sent, no answer seen). */
bool evdb__pg_query_on_wire(const evdb__query *q);
/* The driver's query_sent slot: q went on the wire at least once. */
bool evdb__pg_query_sent(const evdb__dconn *dc, const evdb__query *q);
evdb__query *evdb__pg_take_unsent(evdb__dconn *dc);
/* Slot listen: keep (on) or drop (off) the session's notifications. */
void evdb__pg_listen(evdb__dconn *dc, bool on);

/* ---- pg_reset.c ---- */
/* The reset batch's entries the driver treats apart: the ROLLBACK (sent
 * only when a block may be open), the block's BEGIN and COMMIT, the DO
 * block that DEALLOCATEs SQL-level prepared statements (sent only after
 * a borrow that said "prepare") and the check that there are none. */
enum {
    PG_RESET_ROLLBACK = 0,
    PG_RESET_BEGIN = 1,
    PG_RESET_DEALLOC = 5,
    PG_RESET_CHECK = 6,
    PG_RESET_COMMIT = 10
};
/* The driver's reset slot (see pg_reset.c for what it cleans and why). */
extern const evdb__reset evdb__pg_reset;
/* Whether statement i of the reset batch is left out, as things stand
 * after everything sent before it. */
bool evdb__pg_reset_skips(const evdb__dconn *dc, size_t i);
/* Whether statement i of the reset batch is kept in the statement cache
 * (pinned: it takes no place from the user's statements). */
bool evdb__pg_reset_cached(size_t i);
/* Remember whether q (about to be sent; hit: its cached statement, if
 * any) may make an SQL-level prepared statement. Reset batches are not
 * looked at. */
void evdb__pg_note_sql(evdb__dconn *dc, const evdb__query *q, const pg_stmt *hit);

/* ---- pg_bouncer.c: PgBouncer transaction mode ---- */
/* The URL option that turns the mode on, and its one value. */
#define PG_BOUNCER_KEY "evdb_pgbouncer"
#define PG_BOUNCER_TRANSACTION "transaction"
/* Take evdb's option out of url (a URI's query or a keyword string) before
 * libpq sees it: 0 with *out a copy without it (the caller frees it) and
 * *on set, or *out NULL when url has no such option; EVDB_EURL (an
 * unknown value; the message never quotes the URL) or EVDB_ENOMEM. */
int evdb__pg_bouncer_strip(const char *url, char **out, bool *on, evdb_error *err);
/* In the mode: why q cannot go through the bouncer (LISTEN, SQL PREPARE:
 * session state the bouncer loses), written into buf; NULL when it can
 * (always outside the mode). The caller fails q with EVDB_ENOTSUP. */
const char *evdb__pg_bouncer_refusal(const evdb__dconn *dc, const evdb__query *q, char *buf,
                                     size_t size);
/* In the mode, once connected: the session settings the result getters
 * rely on, which evdb cannot send as startup options through the bouncer,
 * must be the server's defaults. EVDB__STEP_DONE or EVDB__STEP_FAIL. */
int evdb__pg_bouncer_check_session(const evdb__dconn *dc, evdb_error *err);

/* ---- pg_conn.c ---- */
int evdb__pg_connect_start(evdb__dconn **out, const evdb__conn_params *p, evdb__wait *w,
                           evdb_error *err);
int evdb__pg_connect_step(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err);
int evdb__pg_close_start(evdb__dconn *dc, evdb__wait *w);
int evdb__pg_close_step(evdb__dconn *dc, unsigned revents, evdb__wait *w);
void evdb__pg_destroy(evdb__dconn *dc);

/* ---- pg_cancel.c ---- */
/* The connection is going away: the cancel op must forget it. */
void evdb__pg_cancel_detach(evdb__dconn *dc);
int evdb__pg_cancel_start(evdb__dconn *dc, evdb__query *q, evdb__cancel **out, evdb__wait *w,
                          evdb_error *err);
int evdb__pg_cancel_step(evdb__cancel *op, unsigned revents, evdb__wait *w, evdb_error *err);
void evdb__pg_cancel_free(evdb__cancel *op);

#endif
