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
EVDB_EXTERN const char *evdb_result_text(const evdb_result *r, size_t row, size_t col,
                                         size_t *len);

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
