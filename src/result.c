/*
 * Results: one representation for every driver. A driver builds a result
 * with the evdb__rbuild_* calls (declared in drivers/driver.h); the public
 * getters read it. Cells live in one growing data buffer, each
 * NUL-terminated so evdb_result_text can hand out pointers directly.
 *
 * A result is one allocation while it is small: the header, the columns,
 * room for one row of cells and some data bytes share one block (most
 * queries return one row or none). Cells and data move to buffers of
 * their own only when they outgrow it.
 *
 * Large results need not copy their cells at all: a driver whose client
 * library already holds every value as NUL-terminated text (libpq's
 * PGresult) hands that object over with evdb__result_from_source, and the
 * getters read the cells in place through the source's functions. The
 * result then owns the source and frees it with itself, so it outlives
 * its connection like any other result. Small results are still copied:
 * keeping the client library's object alive until the callback has run
 * costs more there than the copy (see bench/README.md).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

#define NULL_CELL SIZE_MAX
/* In a cell's len (never with NULL_CELL): the cell's text is followed, after
 * its NUL, by the value as a double (unaligned), which evdb_result_double
 * reads instead of parsing the text the driver printed. */
#define CELL_HAS_DOUBLE ((size_t)1 << (sizeof(size_t) * 8 - 2))
/* The same for an integer the driver printed: evdb_result_int reads it. */
#define CELL_HAS_INT ((size_t)1 << (sizeof(size_t) * 8 - 3))
#define CELL_LEN(c) ((c)->len & ~(CELL_HAS_DOUBLE | CELL_HAS_INT))

typedef struct column {
    size_t name_off;
    evdb_type type;
    unsigned native;
} column;

typedef struct cell {
    size_t off;
    size_t len; /* NULL_CELL for SQL NULL */
} cell;

/* The builder and the result are one object: finishing only trims it. */
struct evdb_result {
    size_t ncols, nrows;
    column *cols;
    cell *cells;
    size_t ncells, cells_cap;
    char *data;
    size_t data_len, data_cap;
    int64_t affected, insert_id;
    size_t command_off; /* NULL_CELL when none */
    bool failed;        /* an allocation failed while building */
    size_t next_col;    /* while building: the column of the next cell */
    bool cells_inline;  /* cells point into the result's own block */
    bool data_inline;   /* data points into the result's own block */
    size_t block_size;  /* of the result's own block (evdb__obj_free) */
    /* Cells read in place (evdb__result_from_source): cells is unused,
     * data holds only the column names and the command tag. */
    const evdb__rsource *src;
    void *src_obj;
    evdb_result *next;
};

struct evdb__rbuild {
    evdb_result r;
};

/* Room in a result's own block: one row of cells, and data bytes for the
 * column names, one row of short values and a command tag. */
#define INLINE_ROWS 1
#define INLINE_DATA_BASE 64
#define INLINE_DATA_PER_COL 32
/* More columns than any server allows; keeps the size arithmetic safe. */
#define MAX_COLS ((size_t)1 << 20)
#define FIRST_CELLS_CAP 16
#define FIRST_DATA_CAP 256

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Make room for more data bytes (the slow path of data_reserve). */
static bool data_grow(evdb_result *r, size_t more)
{
    size_t cap = r->data_cap > FIRST_DATA_CAP / 2 ? r->data_cap : FIRST_DATA_CAP / 2;
    do {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    } while (cap - r->data_len < more);
    char *d;
    if (r->data_inline) {
        d = evdb__malloc(cap);
        if (d && r->data_len)
            memcpy(d, r->data, r->data_len);
    } else {
        d = evdb__realloc(r->data, cap);
    }
    if (!d)
        return false;
    r->data = d;
    r->data_cap = cap;
    r->data_inline = false;
    return true;
}

static inline bool data_reserve(evdb_result *r, size_t more)
{
    return r->data_cap - r->data_len >= more || data_grow(r, more);
}

/* Copy len bytes (+ NUL) into the data buffer; returns the offset. */
static inline size_t data_put(evdb_result *r, const void *p, size_t len)
{
    if (!data_reserve(r, len + 1)) {
        r->failed = true;
        return NULL_CELL;
    }
    size_t off = r->data_len;
    if (len)
        memcpy(r->data + off, p, len);
    r->data[off + len] = '\0';
    r->data_len += len + 1;
    return off;
}

/* A builder whose own block holds the header, the columns, ncells cells
 * and data bytes. Only the header and the columns need zeroing. */
static evdb__rbuild *rbuild_alloc(size_t ncols, size_t ncells, size_t data)
{
    size_t head = align8(sizeof(evdb__rbuild));
    size_t cols = align8(ncols * sizeof(column));
    if (ncells > (SIZE_MAX / 2 - head - cols) / sizeof(cell))
        return NULL;
    size_t cells = ncells * sizeof(cell);
    if (data > SIZE_MAX / 2 - head - cols - cells)
        return NULL;
    size_t size = head + cols + cells + data;
    char *block = evdb__obj_alloc(size);
    if (!block)
        return NULL;
    memset(block, 0, head + cols);
    evdb__rbuild *b = (evdb__rbuild *)(void *)block;
    b->r.block_size = size;
    b->r.ncols = ncols;
    b->r.affected = -1;
    b->r.command_off = NULL_CELL;
    b->r.cols = ncols ? (column *)(void *)(block + head) : NULL;
    b->r.cells = (cell *)(void *)(block + head + cols);
    b->r.cells_cap = ncells;
    b->r.cells_inline = true;
    b->r.data = block + head + cols + cells;
    b->r.data_cap = data;
    b->r.data_inline = true;
    return b;
}

evdb__rbuild *evdb__rbuild_new(size_t ncols)
{
    if (ncols > MAX_COLS)
        return NULL;
    return rbuild_alloc(ncols, ncols * INLINE_ROWS, INLINE_DATA_BASE + INLINE_DATA_PER_COL * ncols);
}

evdb__rbuild *evdb__rbuild_new_sized(size_t ncols, size_t nrows, size_t data_len)
{
    if (ncols > MAX_COLS || (ncols && nrows > SIZE_MAX / ncols))
        return NULL;
    return rbuild_alloc(ncols, ncols * nrows, data_len);
}

int evdb__rbuild_column(evdb__rbuild *b, size_t col, const char *name, evdb_type type,
                        unsigned native_type)
{
    if (col >= b->r.ncols)
        return EVDB_ERANGE;
    size_t off = data_put(&b->r, name ? name : "", name ? strlen(name) : 0);
    if (off == NULL_CELL)
        return EVDB_ENOMEM;
    b->r.cols[col].name_off = off;
    b->r.cols[col].type = type;
    b->r.cols[col].native = native_type;
    return 0;
}

int evdb__rbuild_columns(evdb__rbuild *b, const evdb__rcol *cols, size_t n)
{
    if (n > b->r.ncols)
        return EVDB_ERANGE;
    for (size_t c = 0; c < n; c++) {
        size_t off = data_put(&b->r, cols[c].name, cols[c].name_len);
        if (off == NULL_CELL)
            return EVDB_ENOMEM;
        b->r.cols[c].name_off = off;
        b->r.cols[c].type = cols[c].type;
        b->r.cols[c].native = cols[c].native_type;
    }
    return 0;
}

/* Make room for more cells (the slow path of next_cell). */
static bool cells_grow(evdb_result *r)
{
    size_t cap = r->cells_cap * 2;
    if (cap < FIRST_CELLS_CAP)
        cap = FIRST_CELLS_CAP;
    cell *c = NULL;
    if (cap <= SIZE_MAX / sizeof(cell)) {
        if (r->cells_inline) {
            c = evdb__malloc(cap * sizeof(cell));
            if (c && r->ncells)
                memcpy(c, r->cells, r->ncells * sizeof(cell));
        } else {
            c = evdb__realloc(r->cells, cap * sizeof(cell));
        }
    }
    if (!c) {
        r->failed = true;
        return false;
    }
    r->cells = c;
    r->cells_cap = cap;
    r->cells_inline = false;
    return true;
}

static inline cell *next_cell(evdb_result *r)
{
    if (r->ncols == 0)
        return NULL;
    if (r->ncells == r->cells_cap && !cells_grow(r))
        return NULL;
    /* The first cell of a row starts the row. */
    if (r->next_col == 0)
        r->nrows++;
    if (++r->next_col == r->ncols)
        r->next_col = 0;
    return &r->cells[r->ncells++];
}

int evdb__rbuild_cell(evdb__rbuild *b, const void *ptr, size_t len)
{
    cell *c = next_cell(&b->r);
    if (!c)
        return EVDB_ENOMEM;
    if (!ptr) {
        c->off = 0;
        c->len = NULL_CELL;
        return 0;
    }
    c->off = data_put(&b->r, ptr, len);
    c->len = len;
    return c->off == NULL_CELL ? EVDB_ENOMEM : 0;
}

void *evdb__rbuild_cell_space(evdb__rbuild *b, size_t len)
{
    cell *c = next_cell(&b->r);
    if (!c || !data_reserve(&b->r, len + 1)) {
        b->r.failed = true;
        return NULL;
    }
    c->off = b->r.data_len;
    c->len = len;
    b->r.data[c->off + len] = '\0';
    b->r.data_len += len + 1;
    return b->r.data + c->off;
}

/* A cell's text followed, after its NUL, by the n bytes of the binary
 * value it was printed from; flag says which kind. */
static int cell_with_value(evdb__rbuild *b, const char *text, size_t len, const void *v, size_t n,
                           size_t flag)
{
    cell *c = next_cell(&b->r);
    if (!c || !data_reserve(&b->r, len + 1 + n)) {
        b->r.failed = true;
        return EVDB_ENOMEM;
    }
    char *d = b->r.data + b->r.data_len;
    memcpy(d, text, len);
    d[len] = '\0';
    memcpy(d + len + 1, v, n);
    c->off = b->r.data_len;
    c->len = len | flag;
    b->r.data_len += len + 1 + n;
    return 0;
}

int evdb__rbuild_row(evdb__rbuild *b, const evdb__rcell *cells)
{
    evdb_result *r = &b->r;
    size_t n = r->ncols;
    if (n == 0 || r->next_col != 0)
        return EVDB_ERANGE;
    size_t need = 0;
    for (size_t i = 0; i < n; i++)
        if (cells[i].ptr)
            need += cells[i].len + 1 + (cells[i].kept ? sizeof(int64_t) : 0);
    while (r->cells_cap - r->ncells < n)
        if (!cells_grow(r))
            return EVDB_ENOMEM;
    if (!data_reserve(r, need)) {
        r->failed = true;
        return EVDB_ENOMEM;
    }
    cell *c = &r->cells[r->ncells];
    char *d = r->data + r->data_len;
    for (size_t i = 0; i < n; i++) {
        const evdb__rcell *x = &cells[i];
        if (!x->ptr) {
            c[i].off = 0;
            c[i].len = NULL_CELL;
            continue;
        }
        c[i].off = (size_t)(d - r->data);
        memcpy(d, x->ptr, x->len);
        d += x->len;
        *d++ = '\0';
        if (x->kept == EVDB__RCELL_INT) {
            memcpy(d, &x->v.i, sizeof x->v.i);
            d += sizeof x->v.i;
            c[i].len = x->len | CELL_HAS_INT;
        } else if (x->kept == EVDB__RCELL_DOUBLE) {
            memcpy(d, &x->v.d, sizeof x->v.d);
            d += sizeof x->v.d;
            c[i].len = x->len | CELL_HAS_DOUBLE;
        } else {
            c[i].len = x->len;
        }
    }
    r->ncells += n;
    r->nrows++;
    r->data_len = (size_t)(d - r->data);
    return 0;
}

int evdb__rbuild_cell_double(evdb__rbuild *b, const char *text, size_t len, double v)
{
    return cell_with_value(b, text, len, &v, sizeof v, CELL_HAS_DOUBLE);
}

int evdb__rbuild_cell_int(evdb__rbuild *b, const char *text, size_t len, int64_t v)
{
    return cell_with_value(b, text, len, &v, sizeof v, CELL_HAS_INT);
}

void evdb__rbuild_set_affected(evdb__rbuild *b, int64_t n)
{
    b->r.affected = n;
}

void evdb__rbuild_set_insert_id(evdb__rbuild *b, int64_t id)
{
    b->r.insert_id = id;
}

int evdb__rbuild_set_command(evdb__rbuild *b, const char *tag)
{
    b->r.command_off = data_put(&b->r, tag, strlen(tag));
    return b->r.command_off == NULL_CELL ? EVDB_ENOMEM : 0;
}

evdb_result *evdb__rbuild_finish(evdb__rbuild *b)
{
    if (b->r.failed || (b->r.ncols && b->r.ncells % b->r.ncols)) {
        evdb__rbuild_free(b);
        return NULL;
    }
    return &b->r;
}

/* The columns (types and NUL-terminated names) at the start of r's data,
 * which must have room for them; returns the bytes used. */
static size_t put_columns(evdb_result *r, size_t ncols, const evdb__rcol *cols)
{
    char *d = r->data;
    size_t off = 0;
    for (size_t c = 0; c < ncols; c++) {
        r->cols[c].name_off = off;
        r->cols[c].type = cols[c].type;
        r->cols[c].native = cols[c].native_type;
        memcpy(d + off, cols[c].name, cols[c].name_len);
        off += cols[c].name_len;
        d[off++] = '\0';
    }
    return off;
}

evdb_result *evdb__result_from_text(size_t ncols, const evdb__rcol *cols, size_t nrows,
                                    const char *const *vals, const size_t *lens,
                                    const char *command, int64_t affected)
{
    if (ncols > MAX_COLS || (ncols && nrows > SIZE_MAX / 2 / ncols))
        return NULL;
    size_t ncells = ncols * nrows;
    size_t tag_len = command ? strlen(command) : 0;
    size_t data = tag_len + 1;
    for (size_t c = 0; c < ncols; c++)
        data += cols[c].name_len + 1;
    for (size_t i = 0; i < ncells; i++)
        if (vals[i])
            data += lens[i] + 1;
    evdb__rbuild *b = rbuild_alloc(ncols, ncells, data);
    if (!b)
        return NULL;
    evdb_result *r = &b->r;
    char *d = r->data;
    size_t off = put_columns(r, ncols, cols);
    for (size_t i = 0; i < ncells; i++) {
        cell *cl = &r->cells[i];
        if (!vals[i]) {
            cl->off = 0;
            cl->len = NULL_CELL;
            continue;
        }
        cl->off = off;
        cl->len = lens[i];
        memcpy(d + off, vals[i], lens[i]);
        off += lens[i];
        d[off++] = '\0';
    }
    if (command && *command) {
        r->command_off = off;
        memcpy(d + off, command, tag_len + 1);
        off += tag_len + 1;
    }
    r->ncells = ncells;
    r->nrows = nrows;
    r->data_len = off;
    r->affected = affected;
    return r;
}

evdb_result *evdb__result_from_source(size_t ncols, const evdb__rcol *cols, size_t nrows,
                                      const evdb__rsource *src, void *obj, const char *command,
                                      int64_t affected)
{
    if (ncols > MAX_COLS || (ncols && nrows > SIZE_MAX / 2 / ncols))
        return NULL;
    size_t tag_len = command ? strlen(command) : 0;
    size_t data = tag_len + 1;
    for (size_t c = 0; c < ncols; c++)
        data += cols[c].name_len + 1;
    /* No cells of its own: only the header, the columns and their names. */
    evdb__rbuild *b = rbuild_alloc(ncols, 0, data);
    if (!b)
        return NULL;
    evdb_result *r = &b->r;
    char *d = r->data;
    size_t off = put_columns(r, ncols, cols);
    if (command && *command) {
        r->command_off = off;
        memcpy(d + off, command, tag_len + 1);
        off += tag_len + 1;
    }
    r->cells = NULL;
    r->cells_cap = 0;
    r->ncells = ncols * nrows;
    r->nrows = nrows;
    r->data_len = off;
    r->affected = affected;
    r->src = src;
    r->src_obj = obj;
    return r;
}

void evdb__rbuild_free(evdb__rbuild *b)
{
    if (b)
        evdb__result_free(&b->r);
}

size_t evdb__result_size(const evdb_result *r)
{
    size_t n = 0;
    for (; r; r = r->next) {
        n += sizeof *r + r->ncols * sizeof(column) + r->data_len;
        /* A source's own memory counts instead of the cells it stands for. */
        n += r->src ? r->src->size(r->src_obj) : r->ncells * sizeof(cell);
    }
    return n;
}

size_t evdb__rbuild_size(const evdb__rbuild *b)
{
    return evdb__result_size(&b->r);
}

void evdb__result_append(evdb_result *first, evdb_result *next)
{
    while (first->next)
        first = first->next;
    first->next = next;
}

void evdb__result_free(evdb_result *r)
{
    while (r) {
        evdb_result *next = r->next;
        /* The columns always live in the result's own block; cells and
         * data do until they outgrow it. */
        if (!r->cells_inline)
            evdb__free(r->cells);
        if (!r->data_inline)
            evdb__free(r->data);
        if (r->src)
            r->src->free(r->src_obj);
        /* The result is the first member of its builder allocation. */
        evdb__obj_free(r, r->block_size);
        r = next;
    }
}

/* ---- public getters ---- */

size_t evdb_result_nrows(const evdb_result *r)
{
    return r ? r->nrows : 0;
}

size_t evdb_result_ncols(const evdb_result *r)
{
    return r ? r->ncols : 0;
}

const char *evdb_result_colname(const evdb_result *r, size_t col)
{
    if (!r || col >= r->ncols)
        return NULL;
    return r->data + r->cols[col].name_off;
}

long evdb_result_colindex(const evdb_result *r, const char *name)
{
    if (!r || !name)
        return -1;
    for (size_t i = 0; i < r->ncols; i++)
        if (strcmp(r->data + r->cols[i].name_off, name) == 0)
            return (long)i;
    return -1;
}

evdb_type evdb_result_coltype(const evdb_result *r, size_t col)
{
    if (!r || col >= r->ncols)
        return EVDB_TYPE_NULL;
    return r->cols[col].type;
}

unsigned evdb_result_coltype_native(const evdb_result *r, size_t col)
{
    if (!r || col >= r->ncols)
        return 0;
    return r->cols[col].native;
}

/* The cell at row, col: 0 with its text in *p (NUL-terminated), its length
 * in *len and its CELL_HAS_* flags in *flags; EVDB_ERANGE for a bad
 * index, EVDB_ENULL for SQL NULL. */
static inline int cell_get(const evdb_result *r, size_t row, size_t col, const char **p,
                           size_t *len, size_t *flags)
{
    if (!r || row >= r->nrows || col >= r->ncols)
        return EVDB_ERANGE;
    if (r->src) {
        *p = r->src->cell(r->src_obj, row, col, len);
        *flags = 0;
        return *p ? 0 : EVDB_ENULL;
    }
    const cell *c = &r->cells[row * r->ncols + col];
    if (c->len == NULL_CELL)
        return EVDB_ENULL;
    *p = r->data + c->off;
    *len = CELL_LEN(c);
    *flags = c->len & (CELL_HAS_DOUBLE | CELL_HAS_INT);
    return 0;
}

bool evdb_result_isnull(const evdb_result *r, size_t row, size_t col)
{
    const char *p;
    size_t n, flags;
    return cell_get(r, row, col, &p, &n, &flags) != 0;
}

const char *evdb_result_text(const evdb_result *r, size_t row, size_t col, size_t *len)
{
    const char *p;
    size_t n, flags;
    if (cell_get(r, row, col, &p, &n, &flags)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = n;
    return p;
}

const void *evdb_result_bytes(const evdb_result *r, size_t row, size_t col, size_t *len)
{
    return evdb_result_text(r, row, col, len);
}

/* A cell's text fit for a numeric conversion: 0, or the error code. */
static int number_check(const char *s, size_t len)
{
    /* Embedded NUL or empty: not a number. */
    if (len == 0 || strlen(s) != len)
        return EVDB_ETYPE;
    return 0;
}

static int bool_of_text(const char *s, bool *out)
{
    bool v;
    if (!strcasecmp(s, "t") || !strcasecmp(s, "true") || !strcmp(s, "1"))
        v = true;
    else if (!strcasecmp(s, "f") || !strcasecmp(s, "false") || !strcmp(s, "0"))
        v = false;
    else
        return EVDB_ETYPE;
    if (out)
        *out = v;
    return 0;
}

/* The text conversions of evdb_result_int and evdb_result_double, out of
 * line: the getters' common case (a number the driver kept, or a cell of
 * a large result read in a loop) then stays a few instructions. */
__attribute__((noinline)) static int int_of_text(const evdb_result *r, size_t col, const char *s,
                                                 size_t len, int64_t *out)
{
    int rc = number_check(s, len);
    if (rc)
        return rc;
    if (r->cols[col].type == EVDB_TYPE_BOOL) {
        bool b;
        rc = bool_of_text(s, &b);
        if (rc == 0 && out)
            *out = b;
        return rc;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return EVDB_ETYPE;
    if (errno == ERANGE)
        return EVDB_ERANGE;
    if (out)
        *out = v;
    return 0;
}

__attribute__((noinline)) static int double_of_text(const char *s, size_t len, double *out)
{
    int rc = number_check(s, len);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0')
        return EVDB_ETYPE;
    if (errno == ERANGE && isinf(v))
        return EVDB_ERANGE;
    if (out)
        *out = v;
    return 0;
}

int evdb_result_int(const evdb_result *r, size_t row, size_t col, int64_t *out)
{
    const char *s;
    size_t len, flags;
    int rc = cell_get(r, row, col, &s, &len, &flags);
    if (rc)
        return rc;
    if (flags & CELL_HAS_INT) {
        /* The binary value a driver kept after the cell's text. */
        if (out)
            memcpy(out, s + len + 1, sizeof *out);
        return 0;
    }
    return int_of_text(r, col, s, len, out);
}

int evdb_result_double(const evdb_result *r, size_t row, size_t col, double *out)
{
    const char *s;
    size_t len, flags;
    int rc = cell_get(r, row, col, &s, &len, &flags);
    if (rc)
        return rc;
    if (flags & CELL_HAS_DOUBLE) {
        if (out)
            memcpy(out, s + len + 1, sizeof *out);
        return 0;
    }
    return double_of_text(s, len, out);
}

int evdb_result_bool(const evdb_result *r, size_t row, size_t col, bool *out)
{
    const char *s;
    size_t len, flags;
    int rc = cell_get(r, row, col, &s, &len, &flags);
    if (rc)
        return rc;
    if ((rc = number_check(s, len)))
        return rc;
    return bool_of_text(s, out);
}

int64_t evdb_result_affected(const evdb_result *r)
{
    return r ? r->affected : -1;
}

int64_t evdb_result_insert_id(const evdb_result *r)
{
    return r ? r->insert_id : 0;
}

const char *evdb_result_command(const evdb_result *r)
{
    if (!r || r->command_off == NULL_CELL)
        return "";
    return r->data + r->command_off;
}

const evdb_result *evdb_result_next(const evdb_result *r)
{
    return r ? r->next : NULL;
}

/* Free the first result of a chain and return the rest (pool_txn.c: the
 * SET TRANSACTION in front of a static transaction's statements). */
evdb_result *evdb__result_drop_first(evdb_result *r)
{
    if (!r)
        return NULL;
    evdb_result *rest = r->next;
    r->next = NULL;
    evdb__result_free(r);
    return rest;
}
