/*
 * Building the results a driver reports (src/result.c). Included by
 * driver.h.
 */
#ifndef EVDB_DRIVER_RESULT_H
#define EVDB_DRIVER_RESULT_H

#include <stddef.h>
#include <stdint.h>
#include "evdb/result.h"
#include "evdb/value.h"

typedef struct evdb__rbuild evdb__rbuild; /* result under construction */

/* Result construction (src/result.c). A result is built in one go:
 * begin with the shape, set columns, append rows cell by cell, finish. */
evdb__rbuild *evdb__rbuild_new(size_t ncols);
/* The same, with room for nrows rows and data_len bytes (column names,
 * cells and the command tag, each with its NUL) in the result's one
 * allocation: a driver that knows the sizes builds without reallocating.
 * The sizes are a hint; building past them still works. */
evdb__rbuild *evdb__rbuild_new_sized(size_t ncols, size_t nrows, size_t data_len);
int evdb__rbuild_column(evdb__rbuild *b, size_t col, const char *name, evdb_type type,
                        unsigned native_type);
/* Optional, after evdb__rbuild_column: an array column's element type and
 * the server's name of the column's type (static storage, NULL when
 * unknown), for evdb_result_coltype_elem / evdb_result_coltype_name.
 * The name also tells the getters how an EVDB_TYPE_BITS cell is written:
 * "bit" / "varbit" (PostgreSQL) are 0/1 digits, anything else (MariaDB's
 * "BIT") raw big-endian bytes. 0 or EVDB_ERANGE. */
int evdb__rbuild_column_info(evdb__rbuild *b, size_t col, evdb_type elem, const char *type_name);
/* A column as a driver describes it (name: name_len bytes, no NUL needed). */
typedef struct evdb__rcol {
    const char *name;
    size_t name_len;
    evdb_type type;
    unsigned native_type;
    evdb_type elem;        /* EVDB_TYPE_ARRAY columns: the elements' type */
    const char *type_name; /* static storage, NULL when unknown */
} evdb__rcol;
/* Columns 0..n-1 kept by a driver for many results (a statement's),
 * names of known length, packed once in the form a result keeps them, so
 * that each result takes them with two copies: evdb__rcols_size bytes
 * that evdb__rcols_pack fills at dst (aligned for a pointer; the names are
 * copied, cols need not outlive the call). evdb__rbuild_columns_packed:
 * 0, EVDB_ERANGE or EVDB_ENOMEM. */
size_t evdb__rcols_size(const evdb__rcol *cols, size_t n);
void evdb__rcols_pack(void *dst, const evdb__rcol *cols, size_t n);
int evdb__rbuild_columns_packed(evdb__rbuild *b, const void *packed);
/* Append one cell of the current row; ptr NULL = SQL NULL. Cells are added
 * column by column; after ncols cells the next cell starts a new row.
 * bytes are copied. */
int evdb__rbuild_cell(evdb__rbuild *b, const void *ptr, size_t len);
/* Append a cell holding a number the driver printed from a double v: its
 * text as any cell, plus v itself, which evdb_result_double returns
 * without parsing the text (it must be exactly what the text reads as). */
int evdb__rbuild_cell_double(evdb__rbuild *b, const char *text, size_t len, double v);
/* The same for an integer: evdb_result_int returns v without parsing. */
int evdb__rbuild_cell_int(evdb__rbuild *b, const char *text, size_t len, int64_t v);
/* A whole row at once (a driver that reads rows straight from its client
 * library's buffers): one cell per column, each as evdb__rbuild_cell
 * takes it (ptr NULL for SQL NULL), kept EVDB__RCELL_INT / _DOUBLE with v
 * for a number the driver printed (as evdb__rbuild_cell_int / _double).
 * Only between rows. 0, EVDB_ENOMEM or EVDB_ERANGE. */
enum { EVDB__RCELL_TEXT, EVDB__RCELL_INT, EVDB__RCELL_DOUBLE };
typedef struct evdb__rcell {
    const void *ptr;
    size_t len;
    int kept;
    union {
        int64_t i;
        double d;
    } v;
} evdb__rcell;
int evdb__rbuild_row(evdb__rbuild *b, const evdb__rcell *cells);
/* A whole row of text cells as a text-protocol client library hands it
 * over: ptrs[i] NULL for SQL NULL, lens[i] its length (MariaDB's
 * MYSQL_ROW and mysql_fetch_lengths). Only between rows. 0, EVDB_ENOMEM
 * or EVDB_ERANGE. */
int evdb__rbuild_text_row(evdb__rbuild *b, char *const *ptrs, const unsigned long *lens);
/* Reserve len bytes for a cell and return where to write them (for
 * decoding in place, e.g. bytea hex); NULL on allocation failure. */
void *evdb__rbuild_cell_space(evdb__rbuild *b, size_t len);
/* Counters. */
void evdb__rbuild_set_affected(evdb__rbuild *b, int64_t n);
void evdb__rbuild_set_insert_id(evdb__rbuild *b, int64_t id);
int evdb__rbuild_set_command(evdb__rbuild *b, const char *tag);
/* A whole result in one call, for a driver that has every value as text
 * at hand (the fast path for the small results most queries return: one
 * allocation, no per-cell calls). cols[ncols] describe the columns;
 * vals[ncols * nrows] are the cells row after row, vals[i] NULL for SQL
 * NULL, else lens[i] bytes; command may be NULL. Everything is copied.
 * NULL: no memory. */
evdb_result *evdb__result_from_text(size_t ncols, const evdb__rcol *cols, size_t nrows,
                                    const char *const *vals, const size_t *lens,
                                    const char *command, int64_t affected);
/* A driver's own object whose cells a result reads in place instead of
 * copying them (evdb__result_from_source): cell returns the text of a cell
 * (NUL-terminated, *len bytes before the NUL) or NULL for SQL NULL, for
 * indexes already checked; size is the object's memory, counted against
 * max_result_bytes; free releases it when the result is freed. */
typedef struct evdb__rsource {
    const char *(*cell)(const void *obj, size_t row, size_t col, size_t *len);
    size_t (*size)(const void *obj);
    void (*free)(void *obj);
} evdb__rsource;
/* A result of nrows rows whose cells stay in obj, read through src; the
 * columns and the command are copied. Takes obj on success only (NULL: no
 * memory, obj still the caller's). */
evdb_result *evdb__result_from_source(size_t ncols, const evdb__rcol *cols, size_t nrows,
                                      const evdb__rsource *src, void *obj, const char *command,
                                      int64_t affected);
/* Finish: returns the result (the builder is consumed), or NULL on
 * allocation failure (the builder is freed either way). */
evdb_result *evdb__rbuild_finish(evdb__rbuild *b);
void evdb__rbuild_free(evdb__rbuild *b);
/* The bytes a result (being built or finished) holds, as counted against
 * evdb__conn_params.max_result_bytes: its header, columns, cells and data
 * in use (buffers grow by doubling, so up to twice that is allocated); for
 * a result read from a source, the source's size instead of the cells. */
size_t evdb__rbuild_size(const evdb__rbuild *b);
size_t evdb__result_size(const evdb_result *r);
/* Chain next after first (multi-statement results); takes next. */
void evdb__result_append(evdb_result *first, evdb_result *next);
void evdb__result_free(evdb_result *r);

#endif
