/*
 * Errors: negative int codes from one X-macro list (libuv's pattern), and
 * error objects that carry a code, a message, the server's SQLSTATE and the
 * driver's own error number.
 *
 * Messages never contain passwords: URLs are redacted before they are
 * quoted anywhere.
 */
#ifndef EVDB_ERROR_H
#define EVDB_ERROR_H

#include "evdb/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* name, value, description. Values never change once released. */
#define EVDB_ERRNO_MAP(X)                                                        \
    X(EINVAL, -1, "invalid argument")                                            \
    X(ENOMEM, -2, "out of memory")                                               \
    X(ETIMEDOUT, -3, "operation timed out")                                      \
    X(ECANCELED, -4, "operation cancelled")                                      \
    X(ECONNLOST, -5, "connection lost")                                          \
    X(ECONNECT, -6, "could not connect")                                         \
    X(ESERVER, -7, "server reported an error")                                   \
    X(EURL, -8, "malformed connection URL")                                      \
    X(ENOTSUP, -9, "operation not supported")                                    \
    X(ECLOSED, -10, "object is closed or closing")                               \
    X(EBUSY, -11, "object is busy")                                              \
    X(ERANGE, -12, "value out of range")                                         \
    X(ETYPE, -13, "value cannot be converted to the requested type")             \
    X(ENULL, -14, "value is NULL")                                               \
    X(EINCALLBACK, -15, "not allowed inside an evdb callback")                   \
    X(EPROTO, -16, "protocol or client library error")                           \
    X(EPOOLTIMEOUT, -17, "timed out waiting for a pooled connection")            \
    X(ECONNTIMEOUT, -18, "timed out connecting")                                 \
    X(ENOTASK, -19, "not called from inside a task")                             \
    X(ESTATE, -20, "call not allowed in the object's current state")             \
    X(EAUTH, -21, "authentication failed")                                       \
    X(ETOOBIG, -22, "result larger than the configured limit")

typedef enum evdb_errno {
#define EVDB_ERRNO_ENUM_(name, value, text) EVDB_##name = (value),
    EVDB_ERRNO_MAP(EVDB_ERRNO_ENUM_)
#undef EVDB_ERRNO_ENUM_
    EVDB_ERRNO_LAST_ = -23
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

/* The error left by the last call on this thread that failed at once
 * (returned NULL or a negative code). Valid until the next evdb call on
 * this thread that fails. Never NULL: an "no error" object when clear. */
EVDB_EXTERN const evdb_error *evdb_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
