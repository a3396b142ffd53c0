/*
 * Error codes, names and error objects. The X-macro list in
 * include/evdb/error.h generates the enum and both tables here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* EVDB_ERRNO_LAST_ is written by hand in the public header; it must stay
 * one below the list. The codes are -1 .. -N with no gap: each lies in
 * that range, there are N of them, and the switches below refuse two
 * equal ones (duplicate case labels do not compile). */
enum {
    ERRNO_COUNT = 0
/* A bare "+1" per code: parentheses would not sum. */
#define EVDB_COUNT_(name, value, text) +1 // NOLINT(bugprone-macro-parentheses)
    EVDB_ERRNO_MAP(EVDB_COUNT_)
#undef EVDB_COUNT_
};
_Static_assert(EVDB_ERRNO_LAST_ == -(ERRNO_COUNT + 1),
               "EVDB_ERRNO_LAST_ must be one below the last code of EVDB_ERRNO_MAP");
#define EVDB_IN_RANGE_(name, value, text)                                                          \
    _Static_assert((value) < 0 && (value) > EVDB_ERRNO_LAST_,                                      \
                   "EVDB_" #name " lies outside -1 .. EVDB_ERRNO_LAST_ + 1");
EVDB_ERRNO_MAP(EVDB_IN_RANGE_)
#undef EVDB_IN_RANGE_

const char *evdb_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define EVDB_STRERROR_(name, value, text)                                                          \
    case value:                                                                                    \
        return text;
        EVDB_ERRNO_MAP(EVDB_STRERROR_)
#undef EVDB_STRERROR_
    default:
        return "unknown error";
    }
}

const char *evdb_err_name(int code)
{
    switch (code) {
    case 0:
        return "EVDB_OK";
#define EVDB_ERRNAME_(name, value, text)                                                           \
    case value:                                                                                    \
        return "EVDB_" #name;
        EVDB_ERRNO_MAP(EVDB_ERRNAME_)
#undef EVDB_ERRNAME_
    default:
        return "EVDB_UNKNOWN";
    }
}

int evdb_error_code(const evdb_error *e)
{
    return e ? e->code : 0;
}

const char *evdb_error_message(const evdb_error *e)
{
    return e ? e->message : "";
}

const char *evdb_error_sqlstate(const evdb_error *e)
{
    return e ? e->sqlstate : "";
}

int evdb_error_driver_code(const evdb_error *e)
{
    return e ? e->driver_code : 0;
}

static const char *diag_field(const evdb_error *e, enum evdb__diag f)
{
    if (!e)
        return "";
    unsigned off = e->diag_off[f];
    /* Offset 0 is the NUL at diag[0]: an absent field reads as "". */
    return off < sizeof e->diag ? e->diag + off : "";
}

const char *evdb_error_severity(const evdb_error *e)
{
    return diag_field(e, EVDB__DIAG_SEVERITY);
}

const char *evdb_error_detail(const evdb_error *e)
{
    return diag_field(e, EVDB__DIAG_DETAIL);
}

const char *evdb_error_hint(const evdb_error *e)
{
    return diag_field(e, EVDB__DIAG_HINT);
}

const char *evdb_error_constraint(const evdb_error *e)
{
    return diag_field(e, EVDB__DIAG_CONSTRAINT);
}

const char *evdb_error_table(const evdb_error *e)
{
    return diag_field(e, EVDB__DIAG_TABLE);
}

const char *evdb_error_column(const evdb_error *e)
{
    return diag_field(e, EVDB__DIAG_COLUMN);
}

static bool sqlstate_is(const evdb_error *e, const char *state)
{
    return strcmp(e->sqlstate, state) == 0;
}

/* MariaDB server error numbers the predicates know (mysqld_error.h). */
#define MY_ER_LOCK_WAIT_TIMEOUT 1205 /* SQLSTATE HY000 */
#define MY_ER_LOCK_DEADLOCK 1213     /* SQLSTATE 40001 */

bool evdb_error_is_retryable(const evdb_error *e)
{
    if (!e)
        return false;
    if (sqlstate_is(e, "40001") || sqlstate_is(e, "40P01"))
        return true;
    /* A lock wait timeout has only the generic HY000: go by the number.
     * Only server errors carry MariaDB's numbers (PostgreSQL gives 0). */
    return e->code == EVDB_ESERVER &&
           (e->driver_code == MY_ER_LOCK_WAIT_TIMEOUT || e->driver_code == MY_ER_LOCK_DEADLOCK);
}

bool evdb_error_is_connection(const evdb_error *e)
{
    if (!e)
        return false;
    if (e->code == EVDB_ECONNLOST || e->code == EVDB_ECONNECT || e->code == EVDB_ECONNTIMEOUT)
        return true;
    return e->sqlstate[0] == '0' && e->sqlstate[1] == '8';
}

bool evdb_error_is_cancel(const evdb_error *e)
{
    if (!e)
        return false;
    if (e->code == EVDB_ECANCELED || e->code == EVDB_ETIMEDOUT)
        return true;
    /* PostgreSQL's query_canceled (cancel request, statement_timeout);
     * MariaDB's "query execution was interrupted" (KILL QUERY,
     * max_statement_time). */
    return sqlstate_is(e, "57014") || sqlstate_is(e, "70100");
}

bool evdb_error_outcome_unknown(const evdb_error *e)
{
    return e && e->outcome_unknown;
}

static void diag_clear(evdb_error *e)
{
    memset(e->diag_off, 0, sizeof e->diag_off);
    e->diag[0] = '\0';
    e->diag_len = 1;
}

void evdb__error_diag(evdb_error *e, enum evdb__diag f, const char *value)
{
    if ((unsigned)f >= EVDB__DIAG_COUNT)
        return;
    e->diag_off[f] = 0;
    if (e->diag_len < 1 || e->diag_len > sizeof e->diag)
        diag_clear(e); /* never set: start afresh */
    if (!value || !*value)
        return;
    size_t room = sizeof e->diag - e->diag_len;
    if (room < 2)
        return;
    size_t n = strlen(value);
    if (n > room - 1) {
        n = room - 1;
        /* Do not leave half a UTF-8 character behind. */
        while (n > 0 && ((unsigned char)value[n] & 0xC0) == 0x80)
            n--;
        if (n == 0)
            return;
    }
    char *dst = e->diag + e->diag_len;
    memcpy(dst, value, n);
    dst[n] = '\0';
    e->diag_off[f] = e->diag_len;
    e->diag_len = (uint16_t)(e->diag_len + n + 1);
}

static void error_vset(evdb_error *e, int code, int driver_code, const char *sqlstate,
                       const char *fmt, va_list ap)
{
    diag_clear(e);
    e->outcome_unknown = false;
    e->many_row = 0;
    e->code = code;
    e->driver_code = driver_code;
    e->sqlstate[0] = '\0';
    if (sqlstate) {
        strncpy(e->sqlstate, sqlstate, sizeof e->sqlstate - 1);
        e->sqlstate[sizeof e->sqlstate - 1] = '\0';
    }
    if (fmt)
        vsnprintf(e->message, sizeof e->message, fmt, ap);
    else
        snprintf(e->message, sizeof e->message, "%s", evdb_strerror(code));
    /* Client libraries end their messages with a newline; drop it. */
    size_t n = strlen(e->message);
    while (n > 0 && (e->message[n - 1] == '\n' || e->message[n - 1] == ' '))
        e->message[--n] = '\0';
}

void evdb__error_set(evdb_error *e, int code, int driver_code, const char *sqlstate,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(e, code, driver_code, sqlstate, fmt, ap);
    va_end(ap);
}

void evdb__error_copy(evdb_error *dst, const evdb_error *src)
{
    memcpy(dst, src, sizeof *dst);
}

/* The per-thread "last error" of calls that fail at once. */
static __thread evdb_error last_error;

const evdb_error *evdb_last_error(void)
{
    return &last_error;
}

int evdb__set_last(const evdb_error *err)
{
    if (err != &last_error)
        evdb__error_copy(&last_error, err);
    return err->code;
}

int evdb__fail_now(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(&last_error, code, 0, NULL, fmt, ap);
    va_end(ap);
    return code;
}
