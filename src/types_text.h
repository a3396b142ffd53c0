/*
 * Strict parsers of the canonical text forms of dates, times, intervals,
 * UUIDs, bit strings and decimals (src/types_text.c), shared by the
 * result getters (result.c), arrays (array.c) and the parameter checks
 * (value.c). Each reads exactly len bytes (no NUL needed) and returns 0
 * with its outputs set, or EVDB_EFORMAT / EVDB_ERANGE / EVDB_EZERODATE
 * with the outputs untouched.
 */
#ifndef EVDB_TYPES_TEXT_H
#define EVDB_TYPES_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evdb/value.h"

/* PostgreSQL's ranges, in evdb's units (its src/include/datatype/
 * timestamp.h): dates from 4714-11-24 BC (Julian day 0) to 5874897-12-31,
 * timestamps from 4714-11-24 BC (their upper end, 294276 AD, lies beyond
 * int64 microseconds since 1970). MariaDB's narrower ranges are checked
 * by its driver. */
#define EVDB__DATE_MIN (-2440588)
#define EVDB__DATE_MAX 2145042905
#define EVDB__TIMESTAMP_MIN INT64_C(-210866803200000000)
/* Longest TIME (MariaDB: 838:59:59.999999) and the UTC offsets PostgreSQL
 * keeps (under 16 hours). */
#define EVDB__TIME_MAX ((INT64_C(838) * 3600 + 59 * 60 + 59) * 1000000 + 999999)
#define EVDB__OFFSET_LIMIT (16 * 3600)

/* Days since 1970-01-01 of a proleptic Gregorian date (astronomical
 * year), and back; any int64 day count of int32 range is exact. */
int64_t evdb__days_from_civil(int64_t y, unsigned m, unsigned d);
void evdb__civil_from_days(int64_t z, int64_t *year, unsigned *month, unsigned *day);
/* Days in month m (1-12) of year y. */
unsigned evdb__days_in_month(int64_t y, unsigned m);

/* "YYYY-MM-DD[ BC]", "infinity", "-infinity". */
int evdb__parse_date(const char *s, size_t len, int32_t *days);
/* "[-]H{2,3}:MM:SS[.f{1,6}]" (PostgreSQL time of day, MariaDB TIME). */
int evdb__parse_time(const char *s, size_t len, int64_t *us);
/* "HH:MM:SS[.f]±HH[:MM[:SS]]". */
int evdb__parse_timetz(const char *s, size_t len, int64_t *us, int32_t *offset);
/* "YYYY-MM-DD HH:MM:SS[.f]" then, with_tz, "±HH[:MM[:SS]]", then
 * optionally " BC"; or the infinities (offset 0). us: wall-clock time
 * without zone, the UTC instant with one. */
int evdb__parse_timestamp(const char *s, size_t len, bool with_tz, int64_t *us, int32_t *offset);
/* PostgreSQL's IntervalStyle postgres: "1 year -2 mons +3 days -04:05:06.7". */
int evdb__parse_interval(const char *s, size_t len, evdb_interval *out);
/* 36-character UUID, hex digits of either case. */
int evdb__parse_uuid(const char *s, size_t len, uint8_t out[16]);
/* The canonical lower-case 36-character form, NUL-terminated. */
void evdb__uuid_text(const uint8_t u[16], char out[37]);
/* Optional sign and decimal digits only. */
int evdb__parse_int64(const char *s, size_t len, int64_t *out);
int evdb__parse_uint64(const char *s, size_t len, uint64_t *out);
/* PostgreSQL bit text ("0101", up to 64 digits) and MariaDB BIT bytes
 * (big-endian, up to 8). */
int evdb__parse_bit_digits(const char *s, size_t len, uint64_t *out);
int evdb__parse_bit_bytes(const void *b, size_t len, uint64_t *out);
/* What evdb_numeric accepts: a decimal with an optional exponent, or
 * NaN / Infinity / -Infinity. */
bool evdb__numeric_valid(const char *s, size_t len);

/* What evdb_result_int/double/bool read: s is NUL-terminated at len;
 * EVDB_ETYPE for empty text, an embedded NUL or not a number. */
int evdb__text_number_check(const char *s, size_t len);
int evdb__text_bool(const char *s, size_t len, bool *out);
int evdb__text_double(const char *s, size_t len, double *out);

/* value.c: an array parameter's element type (evdb_array_values finds
 * it from its elements; all NULL is text). */
evdb_type evdb__array_elem(const evdb_value *v);
/* value.c: element i of array parameter v as a value of its own (the
 * typed arrays' elements wrapped, evdb_array_values' returned as they
 * are). */
evdb_value evdb__array_at(const evdb_value *v, size_t i);

/* array.c: parses a PostgreSQL array cell (len bytes) into a new array of
 * element type elem. 0, EVDB_EFORMAT, EVDB_ENOTSUP (more than one
 * dimension) or EVDB_ENOMEM. */
typedef struct evdb_array evdb_array;
int evdb__array_parse(const char *s, size_t len, evdb_type elem, evdb_array **out);

#endif
