/*
 * Errors: negative int codes from one X-macro list (libuv's pattern), and
 * error objects that carry a code, a message, the server's SQLSTATE, the
 * driver's own error number and the server's diagnostic fields (detail,
 * hint, constraint, ...), with predicates for the usual decisions
 * (retry, reconnect, cancelled).
 *
 * Messages never contain passwords: URLs are redacted before they are
 * quoted anywhere.
 */
#ifndef EVDB_ERROR_H
#define EVDB_ERROR_H

#include <stdbool.h>

#include "evdb/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* name, value, description. Values never change once released. */
#define EVDB_ERRNO_MAP(X)                                                                          \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(ETIMEDOUT, -3, "operation timed out")                                                        \
    X(ECANCELED, -4, "operation cancelled")                                                        \
    X(ECONNLOST, -5, "connection lost")                                                            \
    X(ECONNECT, -6, "could not connect")                                                           \
    X(ESERVER, -7, "server reported an error")                                                     \
    X(EURL, -8, "malformed connection URL")                                                        \
    X(ENOTSUP, -9, "operation not supported")                                                      \
    X(ECLOSED, -10, "object is closed or closing")                                                 \
    X(EBUSY, -11, "object is busy")                                                                \
    X(ERANGE, -12, "value out of range")                                                           \
    X(ETYPE, -13, "value cannot be converted to the requested type")                               \
    X(ENULL, -14, "value is NULL")                                                                 \
    X(EINCALLBACK, -15, "not allowed inside an evdb callback")                                     \
    X(EPROTO, -16, "protocol or client library error")                                             \
    X(EPOOLTIMEOUT, -17, "timed out waiting for a pooled connection")                              \
    X(ECONNTIMEOUT, -18, "timed out connecting")                                                   \
    X(ENOTASK, -19, "not called from inside a task")                                               \
    X(ESTATE, -20, "call not allowed in the object's current state")                               \
    X(EAUTH, -21, "authentication failed")                                                         \
    X(ETOOBIG, -22, "result larger than the configured limit")                                     \
    X(EFORMAT, -23, "value text is malformed for its type")                                        \
    X(EPRECISION, -24, "value cannot be represented exactly in the requested type")                \
    X(EZERODATE, -25, "zero date: no calendar date represents it")

typedef enum evdb_errno {
#define EVDB_ERRNO_ENUM_(name, value, text) EVDB_##name = (value),
    EVDB_ERRNO_MAP(EVDB_ERRNO_ENUM_)
#undef EVDB_ERRNO_ENUM_
        EVDB_ERRNO_LAST_ = -26
} evdb_errno;

/* Opaque error object. Owned by whatever returned it (a future, the thread). */
typedef struct evdb_error evdb_error;

/* Description of a code ("operation timed out"). Never NULL: unknown codes
 * give "unknown error". Static storage; callable anywhere. */
EVDB_EXTERN const char *evdb_strerror(int code);

/* Name of a code ("EVDB_ETIMEDOUT"), or "EVDB_UNKNOWN". Static storage. */
EVDB_EXTERN const char *evdb_err_name(int code);

/* The code of an error object (negative), or 0 when e is NULL. */
EVDB_EXTERN int evdb_error_code(const evdb_error *e);

/* Human-readable message: the server's or the library's text, never with a
 * password in it. Never NULL ("" when e is NULL). Lives as long as e. */
EVDB_EXTERN const char *evdb_error_message(const evdb_error *e);

/* Five-character SQLSTATE from the server ("22012"), or "" when the error
 * did not come from a server. Lives as long as e. */
EVDB_EXTERN const char *evdb_error_sqlstate(const evdb_error *e);

/* The client library's or server's own error number (MariaDB's 1317,
 * PostgreSQL has none and gives 0). */
EVDB_EXTERN int evdb_error_driver_code(const evdb_error *e);

/* The server's diagnostic fields, where it sent them (PostgreSQL; MariaDB
 * errors have none). Never NULL: "" when absent or when e is NULL. They
 * live as long as e. Long values are cut short (an error object has room
 * for a few hundred bytes of them in all). The message keeps the detail
 * and hint too, as "DETAIL: " and "HINT: " lines.
 *   detail      secondary message ("Key (id)=(1) already exists.")
 *   hint        the server's suggestion
 *   constraint  the violated constraint ("items_pkey")
 *   table       the table concerned ("items"), column likewise
 *   severity    "ERROR", "FATAL"; for notices "NOTICE", "WARNING", ... */
EVDB_EXTERN const char *evdb_error_detail(const evdb_error *e);
EVDB_EXTERN const char *evdb_error_hint(const evdb_error *e);
EVDB_EXTERN const char *evdb_error_constraint(const evdb_error *e);
EVDB_EXTERN const char *evdb_error_table(const evdb_error *e);
EVDB_EXTERN const char *evdb_error_column(const evdb_error *e);
EVDB_EXTERN const char *evdb_error_severity(const evdb_error *e);

/* Predicates for what a caller does next. All are false for NULL. */

/* Running the transaction (or the statement) again may succeed:
 * serialization failure (SQLSTATE 40001, MariaDB's deadlock 1213 too) and
 * deadlock (40P01) on PostgreSQL; MariaDB's lock wait timeout (1205, whose
 * SQLSTATE is the generic HY000). Retry the whole transaction, not only the
 * statement that failed: the server rolled it back. */
EVDB_EXTERN bool evdb_error_is_retryable(const evdb_error *e);

/* The connection is the problem, not the statement: EVDB_ECONNLOST,
 * EVDB_ECONNECT, EVDB_ECONNTIMEOUT, or a SQLSTATE of class 08 (connection
 * exception). */
EVDB_EXTERN bool evdb_error_is_connection(const evdb_error *e);

/* The statement was cancelled or timed out: EVDB_ECANCELED, EVDB_ETIMEDOUT,
 * SQLSTATE 57014 (PostgreSQL's cancel request or statement_timeout) or
 * 70100 (MariaDB's KILL QUERY or max_statement_time). */
EVDB_EXTERN bool evdb_error_is_cancel(const evdb_error *e);

/* Whether the statement may have taken effect although its future failed:
 * true when it had reached the server and its outcome is unknown (it timed
 * out or was cancelled while running, the connection was lost or closed
 * while it ran: an INSERT may have committed; or it ran and only its
 * result was lost: EVDB_ETOOBIG, EVDB_ENOMEM). False when it provably did
 * not take effect: it was never sent (timed out or cancelled while queued, its
 * connection lost before it went out, refused by evdb), or the server
 * reported its failure (its own implicit transaction rolled back; the
 * earlier statements of a several-statement string may have committed).
 * Re-running a query whose error says false cannot apply it twice.
 * The message says which: "... not sent: it did not run" or "... whether
 * it took effect is unknown". A driver that cannot tell what reached the
 * wire counts every query it was handed as sent (true: never a false
 * "did not run"). evdb_timeout's error carries the answer of the query it
 * cancelled; a gather or race does not: ask each query's own future.
 * docs/pool.md lists where each answer comes from. */
EVDB_EXTERN bool evdb_error_outcome_unknown(const evdb_error *e);
#define EVDB_HAS_OUTCOME_UNKNOWN 1

/* Feature test: the accessors and predicates above exist. */
#define EVDB_HAS_ERROR_FIELDS 1

/* The error left by the last call on this thread that failed at once
 * (returned NULL or a negative code). Valid until the next evdb call on
 * this thread that fails. Never NULL: an "no error" object when clear. */
EVDB_EXTERN const evdb_error *evdb_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
