/*
 * Private declarations of the MariaDB/MySQL driver (MariaDB Connector/C in
 * its nonblocking mode). Nothing here leaves drivers/mariadb/.
 *
 * Every Connector/C call that may do I/O is used through its *_start and *_cont
 * pair: the library runs the blocking code on a coroutine of its own and
 * returns a MYSQL_WAIT_* mask whenever the socket would block. The driver
 * turns that mask into an evdb__wait for the core, and the core calls back
 * when the socket is ready or the timer fired.
 */
#ifndef EVDB_MY_INTERNAL_H
#define EVDB_MY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mysql.h>

#include "driver.h"
#include "trace.h"

/* Longest message we keep from Connector/C (its own buffers are 512). */
#define EVDB__MY_MSG_MAX 512
/* Length of a UUID's text form (8-4-4-4-12 hex digits). */
#define EVDB__MY_UUID_TEXT 36

/* Connection settings decoded from the URL. Owned strings; the password is
 * wiped when freed. Kept for the life of the connection because a cancel
 * opens a second session with the same credentials. */
/* target_session_attrs: which server of a host list a connect accepts,
 * with libpq's names and meanings; evdb reads @@global.read_only after
 * connecting (read-write = primary = read_only off, read-only = standby =
 * read_only on, prefer-standby = a read-only one if any answers, else any). */
enum evdb__my_tsa {
    EVDB__MY_TSA_ANY,
    EVDB__MY_TSA_READ_WRITE,
    EVDB__MY_TSA_READ_ONLY,
    EVDB__MY_TSA_PRIMARY,
    EVDB__MY_TSA_STANDBY,
    EVDB__MY_TSA_PREFER_STANDBY,
};

/* One entry of a URL's host list (mariadb://u:p@h1:p1,h2:p2/db). */
typedef struct evdb__my_host {
    char *host;
    unsigned port; /* 0: the default (3306) */
} evdb__my_host;

/* Host list entries accepted at most. */
#define EVDB__MY_HOSTS_MAX 16

typedef struct evdb__my_opts {
    char *host; /* NULL when connecting over a unix socket */
    char *user;
    char *password;
    char *db;
    char *unix_socket;
    char *charset;
    unsigned port;   /* 0: Connector/C's default (3306) */
    bool tls;        /* ssl=true: TLS required */
    bool tls_verify; /* verify the server certificate (and host name) */
    char *ssl_ca, *ssl_cert, *ssl_key;
    unsigned connect_timeout; /* seconds per wait, 0 = none */
    bool server_timeout;      /* reads with a timeout carry it to the server too
                            (SET STATEMENT max_statement_time=... FOR) */
    bool no_bulk;             /* bulk=false: batches of one statement run it per
                                 row, never as bulk execution (my_bulk.c) */
    evdb__my_host *hosts;     /* a host list in the URL (nhosts > 1), else NULL;
                                 host/port above name the entry being tried */
    size_t nhosts;
    enum evdb__my_tsa tsa; /* target_session_attrs (default any) */
} evdb__my_opts;

/* A prepared statement, cached per connection by its SQL text. */
typedef struct evdb__my_stmt {
    char *sql;
    size_t sql_len;
    uint64_t hash;
    MYSQL_STMT *stmt;
    unsigned nparams;
    MYSQL_BIND *pbind;   /* nparams parameter binds, as last bound */
    unsigned long *plen; /* lengths of text/bytes parameters */
    signed char *pbool;  /* storage for bool parameters (sent as TINY) */
    union evdb__my_num { /* storage for number parameters */
        int64_t i;
        uint64_t u;
        double d;
        MYSQL_TIME t; /* dates and times */
        char uuid[EVDB__MY_UUID_TEXT + 1];
    } * pnum;
    bool pstable;                              /* the binds point only into pbool / pnum: a query
                               with parameters of the same types just copies
                               its values there (my_stmt.c bind_params) */
    bool cached;                               /* in the cache (else closed after its query) */
    unsigned long serial;                      /* unique in the process: names its result binding */
    struct evdb__my_cols *cols;                /* its result columns, kept by my_result.c */
    struct evdb__my_stmt *hnext;               /* hash bucket chain */
    struct evdb__my_stmt *lru_prev, *lru_next; /* most recent first */
    /* Bound for bulk execution (STMT_ATTR_ARRAY_SIZE set): a single
     * execution binds afresh (my_bulk.c evdb__my_bulk_disarm). */
    bool bulk;
} evdb__my_stmt;

/* The per-connection LRU cache of prepared statements. */
typedef struct evdb__my_cache {
    evdb__my_stmt **buckets;
    size_t nbuckets;     /* power of two */
    size_t count, limit; /* limit 0: caching is off */
    evdb__my_stmt *lru_head, *lru_tail;
} evdb__my_cache;

/* Connection states. */
enum evdb__my_state {
    EVDB__MY_CONNECTING,
    EVDB__MY_IDLE,
    EVDB__MY_BUSY,    /* a query is in flight (dc->q) */
    EVDB__MY_CLOSING, /* mysql_close_start / _cont */
    EVDB__MY_CLOSED,  /* the handle is gone */
    EVDB__MY_BROKEN   /* the session failed; only destroy remains */
};

/* Steps of the query in flight. Text queries use the T_ steps, queries with
 * parameters the S_ steps. */
enum evdb__my_op {
    EVDB__MY_OP_NONE,
    EVDB__MY_T_QUERY,   /* mysql_real_query */
    EVDB__MY_T_STORE,   /* mysql_store_result */
    EVDB__MY_T_FETCH,   /* mysql_use_result + mysql_fetch_row (result-size cap) */
    EVDB__MY_T_NEXT,    /* mysql_next_result */
    EVDB__MY_S_EVICT,   /* mysql_stmt_close of the least recently used statement */
    EVDB__MY_S_PREPARE, /* mysql_stmt_prepare */
    EVDB__MY_S_EXECUTE, /* mysql_stmt_execute */
    EVDB__MY_S_STORE,   /* mysql_stmt_store_result */
    EVDB__MY_S_FETCH,   /* mysql_stmt_fetch, unbuffered (result-size cap) */
    EVDB__MY_S_FLUSH,   /* mysql_stmt_free_result: drop unbuffered rows unread */
    EVDB__MY_S_NEXT,    /* mysql_stmt_next_result */
    EVDB__MY_S_RESET,   /* mysql_stmt_reset of a cached statement whose result failed */
    EVDB__MY_S_DISCARD, /* mysql_stmt_close of an uncached or failed statement */
    EVDB__MY_R_RESET,   /* mysql_reset_connection (EVDB__QUERY_RESET_SESSION) */
    EVDB__MY_R_ROLE,    /* ... then SET ROLE NONE (the reset keeps the role) */
    EVDB__MY_R_TRACK,   /* ... then turn session state tracking on (my_reset.c) */
    EVDB__MY_R_CHECK,   /* the cheap reset: UNLOCK TABLES; SELECT <check> */
    EVDB__MY_R_CNEXT,   /* ... mysql_next_result to the SELECT */
    EVDB__MY_R_CSTORE,  /* ... its row */
    EVDB__MY_P_QUERY,   /* SELECT @@max_allowed_packet (my_packet.c) */
    EVDB__MY_P_STORE,   /* ... its row */
    EVDB__MY_C_QUERY    /* a control statement: ROLLBACK, SAVEPOINT, ... (no rows) */
};

/* The phases of a query (my_driver.c run): the gate checks it before
 * anything of it is sent (my_packet.c), the main phase runs it (text,
 * prepared, reset or batch), the tail takes a pooled query's connection
 * out of a transaction it left open (my_autocommit.c). */
enum evdb__my_phase { EVDB__MY_PH_GATE, EVDB__MY_PH_MAIN, EVDB__MY_PH_TAIL };

/* What the driver knows of the session's packet limit (my_packet.c). */
enum evdb__my_packet {
    EVDB__MY_PACKET_UNREAD,    /* not read yet: read it before it is needed */
    EVDB__MY_PACKET_KNOWN,     /* in max_packet */
    EVDB__MY_PACKET_UNKNOWABLE /* the session was reset before it was read */
};

/* Steps of a batch (my_batch.c). */
enum evdb__my_bstep {
    EVDB__MY_B_OPEN,  /* START TRANSACTION, or SAVEPOINT inside the caller's */
    EVDB__MY_B_STMT,  /* the statements in turn */
    EVDB__MY_B_CLOSE, /* COMMIT, or RELEASE SAVEPOINT */
    EVDB__MY_B_UNDO,  /* ROLLBACK, or ROLLBACK TO SAVEPOINT */
    EVDB__MY_B_FORGET /* RELEASE SAVEPOINT after rolling back to it */
};

/* The outcome of the query in flight, held until every step of it is done
 * (an uncached statement is closed before the query is reported). */
typedef struct evdb__my_outcome {
    evdb_result *res; /* results so far (chained for multi-statement) */
    bool failed;
    int code;        /* EVDB_* */
    int driver_code; /* mysql_errno */
    char sqlstate[6];
    char msg[EVDB__MY_MSG_MAX];
} evdb__my_outcome;

/* Scratch used to fetch prepared-statement rows, reused across queries. */
typedef struct evdb__my_rows {
    MYSQL_BIND *bind;
    unsigned long *len;
    my_bool *isnull;
    my_bool *err;
    size_t cap; /* columns the arrays hold */
    char *buf;
    size_t buf_cap;
    /* The statement (evdb__my_stmt.serial) whose result binding these
     * arrays hold, for bound_n columns; 0: none to reuse. */
    unsigned long bound_serial;
    unsigned bound_n;
} evdb__my_rows;

struct evdb__dconn {
    MYSQL *m;
    evdb__my_opts opts;
    enum evdb__my_state state;
    unsigned long thread_id;

    /* The query in flight and where it is. */
    evdb__query *q;
    evdb__stmt one;        /* q's SQL and parameters as a statement */
    const evdb__stmt *cur; /* the statement running: &one, or one of q's batch */
    enum evdb__my_phase phase;
    const char *sql; /* the SQL sent for it: q->sql, or the backstop's */
    size_t sql_len;  /*   prefixed copy in sqlbuf (my_backstop.c) */
    char *sqlbuf;
    size_t sqlbuf_cap;
    enum evdb__my_op op;
    bool op_started; /* the step's *_start was called, *_cont comes next */
    int mask;        /* the last MYSQL_WAIT_* mask Connector/C returned */
    int iret;        /* int / my_bool results of *_start / *_cont */
    my_bool bret;
    MYSQL_RES *mres;     /* text result being stored */
    evdb__my_stmt *st;   /* statement of the query in flight */
    bool st_executed;    /* ... was executed: Connector/C reads its results */
    MYSQL_STMT *closing; /* statement being closed (evict / discard) */
    evdb__my_outcome out;
    bool rerun;      /* run the query again once its statement is closed */
    bool rerun_done; /* ... which happens at most once per query */

    /* The session's packet limit (my_packet.c): read before the first
     * query that could reach it or the first session reset, whichever
     * comes first; after a reset without it, it cannot be known. */
    unsigned long max_packet;
    enum evdb__my_packet packet;

    /* A batch in flight (my_batch.c). */
    enum evdb__my_bstep bstep;
    size_t bk;          /* the statement running (0-based) */
    bool bsavepoint;    /* inside the caller's transaction: a savepoint */
    bool bstmt;         /* a statement runs: its end is the batch's, not q's */
    unsigned ctl_errno; /* the last control statement's error, 0 if none */
    unsigned ctl_step;  /* which of a phase's control statements runs */

    /* Bulk execution of a batch of one statement (my_bulk.c). */
    bool bulk_on;   /* the batch's rows still go as bulk chunks */
    size_t bulk_n;  /* rows of the chunk running (0: none) */
    void *bulk_buf; /* the chunk's bind arrays */
    /* A chunk failed: its rows run again one by one to find which, and
     * the batch is undone anyway. */
    bool bulk_failed;
    evdb__my_outcome bulk_err; /* that chunk's failure (res unused) */

    evdb__my_cache cache;
    evdb__my_rows rows;

    /* Session state tracking (my_reset.c): whether the session's
     * session_track_state_change is on (the last full reset turned it
     * on), and whether a reply since the last reset said the session's
     * state changed, or a query failed (an error reply carries no
     * status): either makes the next reset a full one. */
    bool track_on;
    bool track_dirty;
    bool check_refused; /* the cheap reset's query failed once: full resets only */

    /* The result-size cap (my_unbuffered.c). With a cap, result sets are
     * read one row at a time (dc->mres from mysql_use_result, or the
     * statement unbuffered) into build, which is dropped once the
     * query's results outgrow the cap; the rest is read and discarded. */
    size_t max_result_bytes; /* 0 = no cap: store_result, as always */
    size_t cap_used;         /* bytes of the query's finished results */
    evdb__rbuild *build;     /* the result set being read; NULL: discard */
    uint64_t stream_rows;    /* rows of it read so far */
    bool stream_open;        /* its first row has been asked for */
    size_t batch_rows;       /* a streamed query: rows in build (my_stream.c) */
    MYSQL_STMT *stream_stmt; /* the statement whose rows are read */
    bool stream_yield;       /* give the loop a turn before the next row */

    /* Host name lookup before the connect (my_resolve.c), and its answer:
     * numeric addresses tried in turn (none: connect to opts.host). */
    struct evdb__my_resolve *resolve;
    char **addrs;
    size_t naddrs, addr_i;
    /* Host lists and target_session_attrs (my_conn.c): the entry being
     * tried, whether prefer-standby's second pass (any server) runs, the
     * read_only probe (0 none, 1 query, 2 storing its result) and what went
     * wrong on each host tried, for the one error of a failed connect. */
    size_t host_i;
    bool any_pass;
    bool all_auth;
    int probe;
    MYSQL_RES *probe_res;
    size_t tried_len;
    char tried[768];
};

/* evdb__query.drv_state: a command that runs the query has started
 * (my_driver.c my_query_sent); 0 before. */
#define EVDB__MY_Q_SENT 1

/* What the query steps answer. */
enum evdb__my_run {
    EVDB__MY_RUN_WAIT = 0, /* dc->mask says what to wait for */
    EVDB__MY_RUN_DONE = 1, /* the phase is over (its outcome recorded, or the
                              query reported: the connection is then idle) */
    EVDB__MY_RUN_LOST = -1 /* the session is gone; *err says why */
};

/* The name of a step, for traces. */
const char *evdb__my_op_name(enum evdb__my_op op);
/* Every change of dc->op goes through here (src/trace.h). */
#define EVDB__MY_SET_OP(dc, o) evdb__my_set_op_at((dc), (o), __FILE__, __LINE__)
/* Always in line: it runs a few times per query, and a call (which GCC
 * picks for the trace's arguments) costs more than the test. */
__attribute__((always_inline)) static inline void
evdb__my_set_op_at(evdb__dconn *dc, enum evdb__my_op op, const char *file, int line)
{
    EVDB__TRACE_STATE("mariadb op", dc, evdb__my_op_name(dc->op), evdb__my_op_name(op), file, line);
    dc->op = op;
}

/* After a nonblocking Connector/C call (_start or _cont) that returned
 * mask: true when it waits for the socket (mask kept in dc->mask for the
 * driver's wait, and the next call is its _cont), false when the call is
 * over (the next call is a _start). */
static inline bool evdb__my_waits(evdb__dconn *dc, int mask)
{
    dc->op_started = mask != 0;
    if (mask)
        dc->mask = mask;
    return mask != 0;
}

/* ---- my_url.c ---- */
/* Decode a mariadb:// or mysql:// URL into o. Returns 0, or EVDB_EURL /
 * EVDB_ENOMEM with err set (the message names a bad option, never the
 * password). */
int evdb__my_opts_parse(const char *url, evdb__my_opts *o, evdb_error *err);
void evdb__my_opts_free(evdb__my_opts *o);
/* target_session_attrs by name: 0, or -1 for an unknown name. */
int evdb__my_tsa_parse(const char *v, enum evdb__my_tsa *out);
/* The name of a target_session_attrs value (static storage). */
const char *evdb__my_tsa_name(enum evdb__my_tsa t);
/* Create a handle set up from o (nonblocking mode, charset, TLS, timeouts).
 * NULL when out of memory. */
MYSQL *evdb__my_handle_new(const evdb__my_opts *o);
/* Connector/C client flags for mysql_real_connect. */
unsigned long evdb__my_client_flags(bool multi);

/* ---- my_conn.c ---- */
int evdb__my_connect_start(evdb__dconn **out, const evdb__conn_params *p, evdb__wait *w,
                           evdb_error *err);
int evdb__my_connect_step(evdb__dconn *dc, unsigned revents, evdb__wait *w, evdb_error *err);
int evdb__my_close_start(evdb__dconn *dc, evdb__wait *w);
int evdb__my_close_step(evdb__dconn *dc, unsigned revents, evdb__wait *w);
void evdb__my_destroy(evdb__dconn *dc);
/* Drop a session without a goodbye and free the handle; never blocks. */
void evdb__my_handle_drop(MYSQL *m);

/* ---- my_resolve.c ---- */
/* DONE when no lookup is needed (or possible) before the connect, WAIT
 * while one runs, FAIL when it could not start. */
int evdb__my_resolve_start(evdb__dconn *dc, evdb__wait *w, evdb_error *err);
bool evdb__my_resolving(const evdb__dconn *dc);
/* Poll the lookup: WAIT, DONE (dc->addrs set) or FAIL. */
int evdb__my_resolve_step(evdb__dconn *dc, evdb__wait *w, evdb_error *err);
/* The host to hand to Connector/C: the current resolved address, or the
 * host as written. */
const char *evdb__my_connect_host(const evdb__dconn *dc);
void evdb__my_addrs_free(evdb__dconn *dc);
/* Abandon a running lookup (never blocks). */
void evdb__my_resolve_cancel(evdb__dconn *dc);

/* ---- my_kill.c ---- */
int evdb__my_cancel_start(evdb__dconn *dc, evdb__query *q, evdb__cancel **out, evdb__wait *w,
                          evdb_error *err);
int evdb__my_cancel_step(evdb__cancel *op, unsigned revents, evdb__wait *w, evdb_error *err);
void evdb__my_cancel_free(evdb__cancel *op);

/* ---- my_wait.c ---- */
/* Turn a MYSQL_WAIT_* mask into the core's wait for handle m. */
void evdb__my_wait_from_mask(MYSQL *m, int mask, evdb__wait *w);
/* Turn the core's wake-up reasons into the ready mask for *_cont. */
int evdb__my_ready_from_events(unsigned revents, int asked);
/* True when an error number means the session is gone. */
bool evdb__my_errno_is_lost(unsigned no, const char *sqlstate);
/* Put fd back into O_NONBLOCK (TLS handshakes leave it blocking). */
void evdb__my_set_nonblock(int fd);

/* ---- my_backstop.c: the query's SQL and the server-side deadline ---- */
/* Set dc->sql for q: q's own text, or, with server_timeout=true, a read
 * with a timeout behind SET STATEMENT max_statement_time=... FOR. Returns
 * 0 or EVDB_ENOMEM with err set. */
int evdb__my_sql_for(evdb__dconn *dc, const evdb__query *q, evdb_error *err);
/* The query is over: drop an unusually large copy. */
void evdb__my_sql_done(evdb__dconn *dc);
/* Statements that only read (SELECT, WITH, SHOW, VALUES), so running them
 * twice, or stopping them half way, is harmless (unless they call functions
 * with side effects, which the driver cannot see). */
bool evdb__my_read_only_sql(const char *sql, size_t len);

/* ---- my_query.c: queries without parameters ---- */
enum evdb__my_run evdb__my_text_run(evdb__dconn *dc, int ready, evdb_error *err);
/* Run one control statement that returns no rows (ROLLBACK, SAVEPOINT,
 * ...) outside the query's outcome, as op EVDB__MY_C_QUERY. DONE with
 * dc->ctl_errno 0, or its error number (the handle's error says more
 * until the next command), WAIT, or LOST. */
enum evdb__my_run evdb__my_ctl_run(evdb__dconn *dc, const char *sql, int ready, evdb_error *err);
/* The server's status flags after the last command (SERVER_STATUS_*). */
unsigned evdb__my_server_status(const evdb__dconn *dc);

/* ---- my_scan.c: what a statement is, from its first words ---- */
/* Skip blanks, comments and opening parentheses; p..end. MariaDB's
 * executable comments are statement text: they stop the skip. */
const char *evdb__my_skip_blank(const char *p, const char *end);
/* Whether the statement at p (after blanks) starts with keyword; *after
 * (may be NULL) is then set past it. */
bool evdb__my_keyword(const char *p, const char *end, const char *keyword, const char **after);
/* Whether sql holds one statement only (trailing ';', blanks, comments
 * aside). */
bool evdb__my_single_statement(const char *sql, size_t len);
/* The first place in p..end where word stands as a word of its own
 * (case-insensitive; quoted text is not skipped), or NULL. */
const char *evdb__my_find_word(const char *p, const char *end, const char *word);

/* ---- my_packet.c: the server's packet limit ---- */
/* The gate of a query (EVDB__MY_PH_GATE): read max_allowed_packet when a
 * query could reach it, then refuse a query too large for it
 * (EVDB_ETOOBIG), or one given up on meanwhile. DONE: the query may run
 * (nothing reported) unless dc->q is NULL (it was reported); WAIT; LOST. */
enum evdb__my_run evdb__my_gate_run(evdb__dconn *dc, int ready, evdb_error *err);

/* ---- my_autocommit.c: pooled autocommit queries ---- */
/* A statement q may not run as a pooled autocommit query (it opens a
 * transaction): 0, or EVDB_EINVAL with err set. */
int evdb__my_autocommit_refuse(const evdb__query *q, evdb_error *err);
/* Whether q's main phase left its connection inside a transaction that
 * the tail must roll back. */
bool evdb__my_autocommit_dirty(const evdb__dconn *dc);
/* Whether the session is inside a transaction, or autocommit is off, as
 * the server's last answer says (current while no query runs). */
bool evdb__my_in_transaction(const evdb__dconn *dc);
/* The tail (EVDB__MY_PH_TAIL): roll back, re-enable autocommit, fail the
 * query. DONE (reported), WAIT or LOST. */
enum evdb__my_run evdb__my_autocommit_run(evdb__dconn *dc, int ready, evdb_error *err);

/* ---- my_batch.c: explicit batches (EVDB__CAP_BATCH) ---- */
/* A batch q may not hold (a statement that commits implicitly or
 * controls transactions): 0, or EVDB_EINVAL with err set. */
int evdb__my_batch_refuse(const evdb__query *q, evdb_error *err);
/* The main phase of a batch: DONE (its outcome recorded), WAIT or LOST. */
enum evdb__my_run evdb__my_batch_run(evdb__dconn *dc, int ready, evdb_error *err);

/* ---- my_bulk.c: bulk execution of a batch of one statement ---- */
/* Whether the batch in flight may run as bulk execution: the server can
 * (MariaDB 10.2+, MARIADB_CLIENT_STMT_BULK_OPERATIONS), the URL did not
 * say bulk=false, every statement is the same SQL with the same number
 * of parameters (at least one), and each parameter column holds values of
 * one bindable type (NULLs aside). */
bool evdb__my_bulk_fits(const evdb__dconn *dc);
/* The rows of the next chunk, from statement dc->bk: as many as keep its
 * packet within the session's limit (and at least one). */
size_t evdb__my_bulk_chunk(const evdb__dconn *dc);
/* Bind the chunk's rows (dc->bk .. + dc->bulk_n) to s as arrays. 0, or -1
 * with the failure recorded. */
int evdb__my_bulk_bind(evdb__dconn *dc, evdb__my_stmt *s);
/* s was bound for bulk: back to single executions. */
void evdb__my_bulk_disarm(evdb__my_stmt *s);
/* Free the chunk's bind arrays (after the chunk, and at destroy). */
void evdb__my_bulk_release(evdb__dconn *dc);

/* ---- my_reset.c: session reset for pools ---- */
enum evdb__my_run evdb__my_reset_run(evdb__dconn *dc, int ready, evdb_error *err);
/* The driver's reset slot: one query, run as evdb__my_reset_run. */
extern const evdb__reset evdb__my_reset;
/* Connector/C's status callback (MARIADB_OPT_STATUS_CALLBACK, data: the
 * dconn): notes replies that say the session state changed. */
void evdb__my_track_status(void *data, enum enum_mariadb_status_info type, ...);

/* ---- my_stmt.c: queries with parameters ---- */
enum evdb__my_run evdb__my_stmt_run(evdb__dconn *dc, int ready, evdb_error *err);
/* Free the fetch scratch. */
void evdb__my_rows_free(evdb__my_rows *rows);

/* ---- my_cache.c ---- */
int evdb__my_cache_init(evdb__my_cache *c, size_t limit);
evdb__my_stmt *evdb__my_cache_get(evdb__my_cache *c, const char *sql, size_t len, uint64_t hash);
/* The most recently used statement when its SQL is sql, else NULL (a
 * cheap first look before hashing). */
evdb__my_stmt *evdb__my_cache_mru(const evdb__my_cache *c, const char *sql, size_t len);
/* Insert s (counted towards the limit); the caller made room first. */
void evdb__my_cache_put(evdb__my_cache *c, evdb__my_stmt *s);
/* Take s out of the cache (it is then the caller's). */
void evdb__my_cache_remove(evdb__my_cache *c, evdb__my_stmt *s);
/* The least recently used statement when the cache is full, else NULL. */
evdb__my_stmt *evdb__my_cache_victim(const evdb__my_cache *c);
/* Free every entry without I/O: the caller closed the session first, so
 * mysql_stmt_close only releases memory. */
void evdb__my_cache_clear(evdb__my_cache *c);
uint64_t evdb__my_hash(const char *s, size_t len);
/* A statement entry for sql (copied) with no handle yet; NULL on ENOMEM. */
evdb__my_stmt *evdb__my_stmt_entry_new(const char *sql, size_t len, uint64_t hash);
/* Free an entry whose handle is closed or was never made. */
void evdb__my_stmt_entry_free(evdb__my_stmt *s);

/* ---- my_unbuffered.c: reading under the result-size cap ---- */
/* What reading a result set row by row answers. */
enum evdb__my_stream {
    EVDB__MY_STREAM_WAIT,  /* dc->mask says what to wait for */
    EVDB__MY_STREAM_END,   /* the result set was read to its end */
    EVDB__MY_STREAM_ERROR, /* the read failed: the handle's (or the
                              statement's) error says why */
    EVDB__MY_STREAM_FLUSH  /* (statements) the rows cannot be fetched (the
                              failure is recorded): drop them unread */
};
/* Read the current text result set (after real_query or next_result);
 * a statement without one adds its counts. */
enum evdb__my_stream evdb__my_text_stream(evdb__dconn *dc, int ready);
/* Read the current result set of stmt (after execute or next_result). */
enum evdb__my_stream evdb__my_stmt_stream(evdb__dconn *dc, MYSQL_STMT *stmt, int ready);
/* The query's results have outgrown the cap: drop them and record
 * EVDB_ETOOBIG. */
void evdb__my_fail_too_big(evdb__dconn *dc);
/* Free a half-read result set without reading the rest (the session is
 * being dropped, or is gone). */
void evdb__my_stream_release(evdb__dconn *dc);

/* ---- my_stream.c: row streaming (evdb__query.stream) ---- */
/* Whether the query's rows are read one at a time (a result-size cap, or
 * a streamed query), whether they stream, and whether the stream is
 * paused (then no row is fetched and the socket is not read). */
bool evdb__my_unbuffered(const evdb__dconn *dc);
bool evdb__my_streaming(const evdb__dconn *dc);
bool evdb__my_stream_paused(const evdb__dconn *dc);
/* Before a row: true when the reader must stop for now (paused, or a turn
 * for the loop after a batch of a cancelled stream); dc->mask is set. */
bool evdb__my_stream_stop(evdb__dconn *dc);
/* A row was added to dc->build: when the batch is full (or at the end of
 * the rows, with end), hand it to the core and start the next build with
 * the same columns (columns(b, arg) sets them; 0 or EVDB_ENOMEM). */
typedef int (*evdb__my_columns_fn)(evdb__rbuild *b, void *arg);
void evdb__my_stream_rows(evdb__dconn *dc, bool end, unsigned ncols, evdb__my_columns_fn columns,
                          void *arg);

/* ---- my_types.c ---- */
/* Whether t is one of the string and BLOB protocol types (text or bytes,
 * by character set; ENUM, SET, JSON and UUID columns arrive as these).
 * Inline: result reading asks it per column. */
static inline bool evdb__my_string_type(enum enum_field_types t)
{
    switch (t) {
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_STRING:
    case MYSQL_TYPE_VARCHAR:
    case MYSQL_TYPE_TINY_BLOB:
    case MYSQL_TYPE_MEDIUM_BLOB:
    case MYSQL_TYPE_LONG_BLOB:
    case MYSQL_TYPE_BLOB:
        return true;
    default:
        return false;
    }
}
/* evdb's type for a column. */
evdb_type evdb__my_coltype(const MYSQL_FIELD *f);
/* The server's name of a column's type ("DATETIME", "BIGINT UNSIGNED",
 * "JSON", "BIT"), static storage; "" when unknown. */
const char *evdb__my_typename(const MYSQL_FIELD *f);
/* Longest text evdb__my_time_text writes: every MYSQL_TIME field at its
 * widest (ten digits), six decimals; real values take at most 27. */
#define EVDB__MY_TIME_TEXT_MAX 80
/* ... and for a value evdb__my_time_wire read (fields of one byte, a
 * year of two, days of four): "65535-255-255 255:255:255.999999". */
#define EVDB__MY_TIME_WIRE_TEXT_MAX 32
/* t, of a column of the given type and decimals, as the text protocol
 * shows it (docs/types.md's canonical forms); returns the length, no NUL. */
size_t evdb__my_time_text(const MYSQL_TIME *t, enum enum_field_types type, unsigned decimals,
                          char *out);
/* A binary-protocol date or time value (len bytes at p, after its length
 * byte) into *t; false when the length is not one the protocol uses. */
bool evdb__my_time_wire(const unsigned char *p, size_t len, enum enum_field_types type,
                        MYSQL_TIME *t);
/* A date, time, timestamp(tz) or interval parameter as a MYSQL_TIME
 * (timestamptz as its UTC wall clock); false when MariaDB cannot hold it
 * (evdb__my_params_refuse has said why before). */
bool evdb__my_param_time(const evdb_value *v, MYSQL_TIME *t);
/* A UUID's 36-character text, lower case, NUL-terminated. */
void evdb__my_uuid_text(const uint8_t b[16], char out[EVDB__MY_UUID_TEXT + 1]);
/* 0 when MariaDB can take every parameter of q (of each statement of a
 * batch), else EVDB_ENOTSUP (arrays, timetz, intervals of months or days,
 * infinite dates, decimal NaN) or EVDB_EINVAL (a value outside its
 * MariaDB type's range) with err saying which parameter and why. */
int evdb__my_params_refuse(const evdb__query *q, evdb_error *err);

/* ---- my_result.c ---- */
/* Build a result from a stored text result set (res may be NULL for a
 * statement without one). NULL when out of memory. */
evdb_result *evdb__my_result_text(MYSQL *m, MYSQL_RES *res);
/* Build a result from a prepared statement whose result set was stored
 * (or that has none). entry: the cached statement it ran (or NULL), whose
 * result binding and columns from an earlier execution are reused while
 * they still serve. NULL when out of memory or on a fetch error
 * (*fetch_err true then, with the statement's error). */
evdb_result *evdb__my_result_stmt(MYSQL_STMT *stmt, evdb__my_rows *rows, evdb__my_stmt *entry,
                                  bool *fetch_err);
/* Free what evdb__my_result_stmt kept in an entry's cols. */
void evdb__my_cols_free(struct evdb__my_cols *cols);
/* Pieces of both for rows read one at a time. Set b's columns from res. */
int evdb__my_text_columns(evdb__rbuild *b, MYSQL_RES *res);
/* Set b's columns from stmt (b may be NULL: rows are to be discarded) and
 * bind the fetch scratch as the statement's result buffers; unbuffered:
 * the rows are not stored, so column widths stand in for the longest
 * values. Returns 0, or EVDB_ENOMEM, or EVDB_EPROTO with *fetch_err (the
 * statement's error says why). */
int evdb__my_stmt_bind(MYSQL_STMT *stmt, evdb__my_rows *rows, evdb__rbuild *b, bool unbuffered,
                       bool *fetch_err);
/* Append the n cells of the row just fetched into the bound scratch.
 * Returns 0, or EVDB_ENOMEM, or EVDB_EPROTO with *fetch_err. */
int evdb__my_stmt_row(MYSQL_STMT *stmt, evdb__my_rows *rows, evdb__rbuild *b, unsigned n,
                      bool *fetch_err);
/* About the bytes that row's cells will take (for the cap, before they
 * are copied). */
size_t evdb__my_stmt_row_bytes(const evdb__my_rows *rows, unsigned n);
/* The result set is over: drop unusually large staging. */
void evdb__my_rows_done(evdb__my_rows *rows);

/* ---- my_outcome (in my_driver.c) ---- */
/* Record the handle's / statement's current error as the query's outcome. */
void evdb__my_fail_mysql(evdb__dconn *dc, unsigned no, const char *sqlstate, const char *msg);
void evdb__my_fail_code(evdb__dconn *dc, int code, const char *msg);
/* Append r to the query's results (r NULL: out of memory). */
void evdb__my_add_result(evdb__dconn *dc, evdb_result *r);
/* Report the outcome to the core and go idle. */
void evdb__my_deliver(evdb__dconn *dc, evdb_error *err);
/* The main phase's runners end with this: the statement is over (its
 * outcome recorded). Inside a batch the batch goes on; otherwise the
 * query goes to its tail or is reported to the core (the connection is
 * then idle). In line: every query ends here, and as a call (from
 * another file) it cost a point select more than its tests. */
static inline void evdb__my_report(evdb__dconn *dc, evdb_error *err)
{
    EVDB__MY_SET_OP(dc, EVDB__MY_OP_NONE);
    dc->op_started = false;
    if (dc->bstmt) {
        dc->bstmt = false; /* the batch goes on (my_batch.c) */
        return;
    }
    if (dc->phase == EVDB__MY_PH_MAIN && evdb__my_autocommit_dirty(dc)) {
        dc->phase = EVDB__MY_PH_TAIL; /* run picks it up */
        return;
    }
    /* A query can finish inside flush (the server answered before
     * Connector/C's first read would have blocked); the core's pump then
     * sends the next queued query itself. */
    evdb__my_deliver(dc, err);
}
/* Replace whatever outcome was recorded by this failure (free the
 * results). */
void evdb__my_fail_over(evdb__dconn *dc, int code, const char *msg);
/* Record a lost session: set *err, mark the connection broken. */
enum evdb__my_run evdb__my_lost(evdb__dconn *dc, evdb_error *err, unsigned no, const char *msg);

#endif
