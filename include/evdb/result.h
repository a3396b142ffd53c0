/*
 * Query results. A result belongs to its query future and lives exactly as
 * long as it; every pointer a getter returns lives as long as the result.
 * Getters never allocate, never change the result and may be called from
 * callbacks; like its future, a result is used from its loop's thread.
 *
 * A result owns all the memory it reads from, so it outlives the
 * connection or pool it came from. Most results hold copies of their
 * cells in evdb's own memory (through evdb_set_allocators). Large
 * PostgreSQL results (more than 64 cells, no bytea columns) instead keep
 * libpq's PGresult, which libpq allocated with its own malloc, and read
 * the cells from it in place until the result is freed; its size is what
 * counts against max_result_bytes. Numbers are kept as the text the
 * server sent (MariaDB integers and doubles also as their binary value)
 * and converted by the typed getters on each call.
 *
 * Row and column indexes start at 0. Out-of-range indexes are EVDB_ERANGE
 * (or NULL / 0 for the getters that return those).
 */
#ifndef EVDB_RESULT_H
#define EVDB_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "evdb/export.h"
#include "evdb/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct evdb_result evdb_result;

/* Number of rows (0 for statements that return none). */
EVDB_EXTERN size_t evdb_result_nrows(const evdb_result *r);
/* Number of columns. */
EVDB_EXTERN size_t evdb_result_ncols(const evdb_result *r);
/* Column name, or NULL when col is out of range. */
EVDB_EXTERN const char *evdb_result_colname(const evdb_result *r, size_t col);
/* Index of the column called name, or -1. */
EVDB_EXTERN long evdb_result_colindex(const evdb_result *r, const char *name);
/* Column type mapped to evdb's types (EVDB_TYPE_OTHER for the rest). */
EVDB_EXTERN evdb_type evdb_result_coltype(const evdb_result *r, size_t col);
/* The server's own type: PostgreSQL's type OID, MariaDB's MYSQL_TYPE_*. */
EVDB_EXTERN unsigned evdb_result_coltype_native(const evdb_result *r, size_t col);

/* True when the cell is SQL NULL (also for out-of-range indexes). */
EVDB_EXTERN bool evdb_result_isnull(const evdb_result *r, size_t row, size_t col);

/* The cell as text (for bytes columns: the raw bytes), NUL-terminated, with
 * its length in *len when len is not NULL. NULL for SQL NULL or bad
 * indexes. */
EVDB_EXTERN const char *evdb_result_text(const evdb_result *r, size_t row, size_t col, size_t *len);

/* Binary data of a cell byte for byte (bytea / BLOB decoded). Same as
 * evdb_result_text with a length, for any column. */
EVDB_EXTERN const void *evdb_result_bytes(const evdb_result *r, size_t row, size_t col,
                                          size_t *len);

/* Typed getters: 0 and *out set, or EVDB_ENULL (SQL NULL), EVDB_ERANGE (bad
 * index or out of the type's range), EVDB_ETYPE (not a number / bool).
 * *out is left untouched on error. */
EVDB_EXTERN int evdb_result_int(const evdb_result *r, size_t row, size_t col, int64_t *out);
EVDB_EXTERN int evdb_result_double(const evdb_result *r, size_t row, size_t col, double *out);
/* Accepts t/f, true/false, 1/0 (PostgreSQL and MariaDB spellings). */
EVDB_EXTERN int evdb_result_bool(const evdb_result *r, size_t row, size_t col, bool *out);

/* An unsigned integer (MariaDB BIGINT UNSIGNED above INT64_MAX, BIT(n) up
 * to 64 bits, PostgreSQL bit/varbit up to 64 bits, or any integer or
 * integral numeric cell that is not negative). Errors as above, plus
 * EVDB_EFORMAT for text that is not digits (a numeric with a point). */
EVDB_EXTERN int evdb_result_uint64(const evdb_result *r, size_t row, size_t col, uint64_t *out);

/*
 * Typed getters for the types of docs/types.md. Each returns 0 and sets
 * its outputs, or: EVDB_ENULL (SQL NULL), EVDB_ERANGE (bad index, or a
 * value outside what the output can hold), EVDB_ETYPE (a column of another
 * type), EVDB_EFORMAT (the server's text is not what the type should look
 * like; never a crash, never a guessed value), EVDB_EZERODATE (a MariaDB
 * zero or partly zero date such as 0000-00-00, which is no calendar date:
 * read it as text). Outputs are left untouched on error. None allocates.
 *
 * On PostgreSQL evdb sets DateStyle=ISO and IntervalStyle=postgres on its
 * connections, so what these return never depends on the server's or the
 * session's settings; a session that changes them gets EVDB_EFORMAT, not a
 * wrong value. TimeZone only chooses the offset the server shows.
 */
/* A date column (or a timestamp's date part): days since 1970-01-01, or
 * EVDB_DATE_(NEG_)INFINITY. */
EVDB_EXTERN int evdb_result_date(const evdb_result *r, size_t row, size_t col, int32_t *days);
/* A time or timetz column's time of day in microseconds since midnight;
 * MariaDB TIME is a signed duration and may be negative or beyond 24 h
 * (-838:59:59 to 838:59:59), returned as it is. */
EVDB_EXTERN int evdb_result_time(const evdb_result *r, size_t row, size_t col, int64_t *us);
/* A timetz column: the time of day and its offset (seconds east of UTC). */
EVDB_EXTERN int evdb_result_timetz(const evdb_result *r, size_t row, size_t col, int64_t *us,
                                   int32_t *offset);
/* A timestamp, timestamptz or date column as microseconds since
 * 1970-01-01 00:00:00: wall-clock time for timestamp (and MariaDB
 * DATETIME/TIMESTAMP, which the server shows in the session's time zone),
 * the UTC instant for timestamptz, midnight for a date; or
 * EVDB_TIMESTAMP_(NEG_)INFINITY. */
EVDB_EXTERN int evdb_result_timestamp(const evdb_result *r, size_t row, size_t col, int64_t *us);
/* A timestamptz column: the UTC instant and the offset (seconds east of
 * UTC) the server showed it in; EVDB_ETYPE for a column without zone. */
EVDB_EXTERN int evdb_result_timestamptz(const evdb_result *r, size_t row, size_t col, int64_t *us,
                                        int32_t *offset);
/* An interval column (MariaDB TIME: months and days 0). */
EVDB_EXTERN int evdb_result_interval(const evdb_result *r, size_t row, size_t col,
                                     evdb_interval *out);
/* A uuid column, or any text cell holding a UUID's 36-character form, or
 * a 16-byte binary cell: the 16 bytes. */
EVDB_EXTERN int evdb_result_uuid(const evdb_result *r, size_t row, size_t col, uint8_t out[16]);

/* For an EVDB_TYPE_ARRAY column, its elements' type (EVDB_TYPE_OTHER when
 * evdb does not know it); EVDB_TYPE_NULL for other columns. */
EVDB_EXTERN evdb_type evdb_result_coltype_elem(const evdb_result *r, size_t col);
/* The server's name of a column's type ("timestamptz", "_int8",
 * "DATETIME", a PostgreSQL enum's or extension type's own name), static
 * storage (valid after the result and its connection are gone); "" when
 * the connection does not know the type yet (PostgreSQL: a type created
 * elsewhere after the connection loaded its catalog, known from a later
 * result on: docs/types.md), NULL for a bad index. */
EVDB_EXTERN const char *evdb_result_coltype_name(const evdb_result *r, size_t col);

/*
 * Arrays. A cell of an EVDB_TYPE_ARRAY column is read by parsing it once
 * into an evdb_array, which the caller owns and frees with
 * evdb_array_free (it does not point into the result: it may outlive it).
 * evdb_result_array returns 0 and *out, or EVDB_ENULL, EVDB_ERANGE (bad
 * index), EVDB_ETYPE (not an array column), EVDB_ENOTSUP (a
 * multi-dimensional array: read it as text), EVDB_EFORMAT, EVDB_ENOMEM.
 * May be called from callbacks.
 */
typedef struct evdb_array evdb_array;
EVDB_EXTERN int evdb_result_array(const evdb_result *r, size_t row, size_t col, evdb_array **out);
/* Frees an array; NULL is allowed. */
EVDB_EXTERN void evdb_array_free(evdb_array *a);
/* Number of elements. */
EVDB_EXTERN size_t evdb_array_len(const evdb_array *a);
/* The elements' type, as evdb_result_coltype_elem. */
EVDB_EXTERN evdb_type evdb_array_elemtype(const evdb_array *a);
/* True for a NULL element (and for i out of range). */
EVDB_EXTERN bool evdb_array_isnull(const evdb_array *a, size_t i);
/* Element i (evdb_array_get_*: the evdb_array_* names build parameters)
 * with the same rules and error codes as the cell getters of the
 * same names; pointers live as long as the array. */
EVDB_EXTERN const char *evdb_array_get_text(const evdb_array *a, size_t i, size_t *len);
EVDB_EXTERN const void *evdb_array_get_bytes(const evdb_array *a, size_t i, size_t *len);
EVDB_EXTERN int evdb_array_get_int(const evdb_array *a, size_t i, int64_t *out);
EVDB_EXTERN int evdb_array_get_double(const evdb_array *a, size_t i, double *out);
EVDB_EXTERN int evdb_array_get_bool(const evdb_array *a, size_t i, bool *out);
EVDB_EXTERN int evdb_array_get_uuid(const evdb_array *a, size_t i, uint8_t out[16]);
EVDB_EXTERN int evdb_array_get_date(const evdb_array *a, size_t i, int32_t *days);
EVDB_EXTERN int evdb_array_get_timestamp(const evdb_array *a, size_t i, int64_t *us);
EVDB_EXTERN int evdb_array_get_timestamptz(const evdb_array *a, size_t i, int64_t *us,
                                           int32_t *offset);

/* Rows affected by INSERT/UPDATE/DELETE (or returned by SELECT), -1 when
 * the server did not say. */
EVDB_EXTERN int64_t evdb_result_affected(const evdb_result *r);
/* Last insert id (MariaDB AUTO_INCREMENT), 0 when none (PostgreSQL: use
 * RETURNING). */
EVDB_EXTERN int64_t evdb_result_insert_id(const evdb_result *r);
/* The server's command tag ("INSERT 0 1", "SELECT 3") where it has one,
 * else "". */
EVDB_EXTERN const char *evdb_result_command(const evdb_result *r);

/* Multi-statement queries (no parameters): the next statement's result, or
 * NULL after the last. Owned by the first result. */
EVDB_EXTERN const evdb_result *evdb_result_next(const evdb_result *r);

#ifdef __cplusplus
}
#endif
#endif
