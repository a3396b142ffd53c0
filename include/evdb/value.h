/*
 * Typed query parameters. Small structs built by the helpers below; they
 * point at the caller's memory, and the library copies what they point at
 * when the query is submitted, so the caller may free its buffers as soon as
 * the submitting call returns.
 */
#ifndef EVDB_VALUE_H
#define EVDB_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "evdb/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Column and parameter types. Values never change once released.
 *
 * Times are integers, exact to the microsecond, with no time zone applied
 * by evdb: docs/types.md maps every SQL type of both backends to these
 * and says where the backends differ. */
typedef enum evdb_type {
    EVDB_TYPE_NULL = 0,
    EVDB_TYPE_BOOL = 1,
    EVDB_TYPE_INT = 2, /* int64 (also the uint64 getter, for unsigned columns) */
    EVDB_TYPE_DOUBLE = 3,
    EVDB_TYPE_TEXT = 4,
    EVDB_TYPE_BYTES = 5,
    EVDB_TYPE_OTHER = 6,        /* a type evdb does not know: read it as text */
    EVDB_TYPE_NUMERIC = 7,      /* exact decimal, kept as the server's text */
    EVDB_TYPE_DATE = 8,         /* int32 days since 1970-01-01 */
    EVDB_TYPE_TIME = 9,         /* int64 microseconds since midnight */
    EVDB_TYPE_TIMETZ = 10,      /* time of day plus its UTC offset */
    EVDB_TYPE_TIMESTAMP = 11,   /* wall-clock date and time, no zone */
    EVDB_TYPE_TIMESTAMPTZ = 12, /* an instant: microseconds since the Unix epoch, UTC */
    EVDB_TYPE_INTERVAL = 13,    /* months, days and microseconds, kept apart */
    EVDB_TYPE_UUID = 14,        /* 16 bytes */
    EVDB_TYPE_JSON = 15,        /* json, jsonb, MariaDB JSON: text */
    EVDB_TYPE_ENUM = 16,        /* an enumerated type's label: text */
    EVDB_TYPE_BITS = 17,        /* bit strings (PostgreSQL bit/varbit, MariaDB BIT) */
    EVDB_TYPE_ARRAY = 18,       /* one-dimensional array (PostgreSQL) */
    EVDB_TYPE_UINT = 19         /* uint64 parameter (MariaDB BIGINT UNSIGNED) */
} evdb_type;

/* Special values of dates and timestamps (PostgreSQL's 'infinity' and
 * '-infinity'): kept as these, never clamped to a real date. */
#define EVDB_DATE_INFINITY INT32_MAX
#define EVDB_DATE_NEG_INFINITY INT32_MIN
#define EVDB_TIMESTAMP_INFINITY INT64_MAX
#define EVDB_TIMESTAMP_NEG_INFINITY INT64_MIN
#define EVDB_USECS_PER_DAY INT64_C(86400000000)

/* An interval as PostgreSQL keeps it: months, days and microseconds do not
 * convert into each other (a month is not 30 days, a day across a DST
 * change is not 24 hours). MariaDB TIME read as an interval has only us. */
typedef struct evdb_interval {
    int32_t months;
    int32_t days;
    int64_t us;
} evdb_interval;

/* A parameter. Build it with the constructors below; the fields are
 * described so that a debugger's view makes sense, not to be filled by
 * hand. */
typedef struct evdb_value {
    evdb_type type;
    /* EVDB_TYPE_ARRAY only: the elements' type, which says what a.ptr
     * points at (see evdb_array_values for EVDB_TYPE_NULL). */
    evdb_type elem;
    union {
        bool b;
        int64_t i;
        uint64_t ui;
        double d;
        int32_t date;
        struct {
            const void *ptr;
            size_t len;
        } s; /* text, bytes, numeric, json */
        struct {
            int64_t us;
            int32_t offset; /* seconds east of UTC (timetz only) */
        } t;                /* time, timetz, timestamp, timestamptz */
        evdb_interval iv;
        uint8_t uuid[16];
        struct {
            const void *ptr;
            size_t n;
        } a; /* array */
    } u;
} evdb_value;

/* Largest text or bytes parameter accepted (1 GiB, PostgreSQL's limit). */
#define EVDB_VALUE_MAX_LEN ((size_t)1 << 30)
/* Most elements in one array parameter. */
#define EVDB_ARRAY_MAX_LEN ((size_t)1 << 24)

/* The constructors below build values; none of them allocates, none
 * fails: what they are given is checked when the query is submitted
 * (EVDB_EINVAL with the parameter's number in the message). All may be
 * called from callbacks. */
EVDB_EXTERN evdb_value evdb_null(void);
EVDB_EXTERN evdb_value evdb_bool(bool b);
EVDB_EXTERN evdb_value evdb_int(int64_t i);
/* An unsigned 64-bit integer (MariaDB BIGINT UNSIGNED; PostgreSQL gets it
 * as a numeric). */
EVDB_EXTERN evdb_value evdb_uint(uint64_t u);
EVDB_EXTERN evdb_value evdb_double(double d);
/* NUL-terminated text; NULL gives an SQL NULL. */
EVDB_EXTERN evdb_value evdb_text(const char *s);
/* len bytes of text (may contain NUL only where the server accepts it:
 * PostgreSQL rejects NUL in text, use evdb_bytes). */
EVDB_EXTERN evdb_value evdb_textn(const char *s, size_t len);
/* Binary data (bytea / BLOB), kept byte for byte. */
EVDB_EXTERN evdb_value evdb_bytes(const void *p, size_t len);
/* An exact decimal written as text: an optional sign, digits with an
 * optional point, an optional exponent, or NaN / Infinity / -Infinity
 * (PostgreSQL only). Checked at submit; NULL gives an SQL NULL. */
EVDB_EXTERN evdb_value evdb_numeric(const char *text);
/* JSON text, validated by the server (json/jsonb, MariaDB JSON); NULL
 * gives an SQL NULL. */
EVDB_EXTERN evdb_value evdb_json(const char *text);
/* A date: days since 1970-01-01 (negative before), or
 * EVDB_DATE_INFINITY / EVDB_DATE_NEG_INFINITY. evdb_date_from_ymd builds
 * one from a calendar date. */
EVDB_EXTERN evdb_value evdb_date(int32_t days);
/* A time of day: microseconds since midnight, 0 to 24 h inclusive
 * (MariaDB TIME also takes a signed duration up to 838:59:59). */
EVDB_EXTERN evdb_value evdb_time(int64_t us);
/* A time of day with its UTC offset in seconds east (PostgreSQL timetz). */
EVDB_EXTERN evdb_value evdb_timetz(int64_t us, int32_t offset);
/* A wall-clock timestamp without zone: microseconds since 1970-01-01
 * 00:00:00 of the same calendar, or EVDB_TIMESTAMP_(NEG_)INFINITY. */
EVDB_EXTERN evdb_value evdb_timestamp(int64_t us);
/* An instant: microseconds since the Unix epoch in UTC (PostgreSQL
 * timestamptz; MariaDB gets it as UTC wall-clock time). */
EVDB_EXTERN evdb_value evdb_timestamptz(int64_t us);
/* An interval (PostgreSQL interval; MariaDB TIME when months and days
 * are 0). */
EVDB_EXTERN evdb_value evdb_interval_value(int32_t months, int32_t days, int64_t us);
/* A UUID, 16 bytes copied into the value (PostgreSQL uuid; MariaDB gets
 * its 36-character text form, which its UUID type and CHAR(36) take). */
EVDB_EXTERN evdb_value evdb_uuid(const uint8_t bytes[16]);

/* One-dimensional array parameters (PostgreSQL; MariaDB has no arrays and
 * refuses them with EVDB_ENOTSUP). They point at the caller's n elements,
 * which are copied at submit like every value; n may be 0 (an empty
 * array). Use them as `WHERE id = ANY($1)`. */
EVDB_EXTERN evdb_value evdb_array_bool(const bool *v, size_t n);
EVDB_EXTERN evdb_value evdb_array_int64(const int64_t *v, size_t n);
EVDB_EXTERN evdb_value evdb_array_double(const double *v, size_t n);
/* NUL-terminated strings; a NULL pointer is a NULL element. */
EVDB_EXTERN evdb_value evdb_array_text(const char *const *v, size_t n);
/* Any element type, NULL elements included: every element is an
 * evdb_value of one and the same type or evdb_null() (not an array).
 * elem is EVDB_TYPE_NULL in the value; the type is found at submit. */
EVDB_EXTERN evdb_value evdb_array_values(const evdb_value *v, size_t n);

/* Calendar helpers (proleptic Gregorian, astronomical years: 0 is 1 BC,
 * -1 is 2 BC). evdb_date_from_ymd: 0 and *days set, or EVDB_ERANGE for a
 * day that does not exist or a year out of range. evdb_date_to_ymd: the
 * calendar date of days (not for the infinities). Both may be called
 * anywhere. */
EVDB_EXTERN int evdb_date_from_ymd(int32_t year, int month, int day, int32_t *days);
EVDB_EXTERN void evdb_date_to_ymd(int32_t days, int32_t *year, int *month, int *day);
/* Writes a timestamp (us since 1970-01-01 00:00:00) as ISO 8601 text
 * "YYYY-MM-DD HH:MM:SS[.ffffff]", with "+HH:MM[:SS]" appended when
 * with_offset (offset in seconds east of UTC, under 100 hours; the time
 * shown is us shifted by it), "infinity" / "-infinity" for the infinities
 * and a " BC" suffix before year 1 (PostgreSQL's form, which the getters
 * read back). Returns the length written (always NUL-terminated;
 * EVDB_TIMESTAMP_TEXT_MAX bytes are always enough), or 0 when cap is too
 * small or the offset out of range. May be called anywhere. */
#define EVDB_TIMESTAMP_TEXT_MAX 48
EVDB_EXTERN size_t evdb_timestamp_format(int64_t us, bool with_offset, int32_t offset, char *buf,
                                         size_t cap);

/* Exact decimals to machine numbers, without silent rounding (text: len
 * bytes, as evdb_result_text gives a numeric cell). 0 and *out set, or
 * EVDB_EPRECISION (a fraction that is not zero; for doubles, more
 * significant digits than a double keeps exactly, 15), EVDB_ERANGE (too
 * large, or NaN / Infinity for the integer), EVDB_EFORMAT (not a decimal).
 * NaN and ±Infinity give the doubles NAN and ±INFINITY. *out is left
 * untouched on error. */
EVDB_EXTERN int evdb_numeric_to_int64(const char *text, size_t len, int64_t *out);
EVDB_EXTERN int evdb_numeric_to_double(const char *text, size_t len, double *out);

#ifdef __cplusplus
}
#endif
#endif
