/*
 * Error codes, names and error objects. The X-macro list in
 * include/evdb/error.h generates the enum and both tables here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *evdb_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define EVDB_STRERROR_(name, value, text)                                                         \
    case value:                                                                                   \
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
#define EVDB_ERRNAME_(name, value, text)                                                          \
    case value:                                                                                   \
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

static void error_vset(evdb_error *e, int code, int driver_code, const char *sqlstate,
                       const char *fmt, va_list ap)
{
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
