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
#include "types_text.h"

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
    evdb_type elem;        /* array columns: the elements' type */
    const char *type_name; /* static storage; NULL when unknown */
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
    /* Where the last append ended (a node of this chain, or NULL): the
     * next append walks on from here, so chaining n results costs O(n),
     * not O(n^2) (a batch of 65,535 statements chains that many). */
    evdb_result *tail;
    /* An execute_many row that failed (src/many.c): its error, owned. */
    evdb_error *row_error;
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
    b->r.cols[col].elem = EVDB_TYPE_NULL;
    b->r.cols[col].type_name = NULL;
    return 0;
}

int evdb__rbuild_column_info(evdb__rbuild *b, size_t col, evdb_type elem, const char *type_name)
{
    if (col >= b->r.ncols)
        return EVDB_ERANGE;
    b->r.cols[col].elem = elem;
    b->r.cols[col].type_name = type_name;
    return 0;
}

/* A driver's column description into a result column (the name apart). */
static void set_column(column *c, const evdb__rcol *d)
{
    c->type = d->type;
    c->native = d->native_type;
    c->elem = d->elem;
    c->type_name = d->type_name;
}

/* The head of columns packed for many results (evdb__rcols_pack): then
 * the columns as a result keeps them, their name_off counted from the
 * start of the names, then the names, each with its NUL. */
typedef struct rcols_head {
    size_t ncols;
    size_t names_len;
} rcols_head;

static const column *rcols_columns(const rcols_head *h)
{
    return (const column *)(const void *)(h + 1);
}

size_t evdb__rcols_size(const evdb__rcol *cols, size_t n)
{
    size_t size = sizeof(rcols_head) + n * sizeof(column);
    for (size_t c = 0; c < n; c++)
        size += cols[c].name_len + 1;
    return size;
}

void evdb__rcols_pack(void *dst, const evdb__rcol *cols, size_t n)
{
    rcols_head *h = dst;
    column *out = (column *)(void *)(h + 1);
    char *names = (char *)(out + n);
    size_t off = 0;
    for (size_t c = 0; c < n; c++) {
        if (cols[c].name_len)
            memcpy(names + off, cols[c].name, cols[c].name_len);
        names[off + cols[c].name_len] = '\0';
        out[c].name_off = off;
        set_column(&out[c], &cols[c]);
        off += cols[c].name_len + 1;
    }
    h->ncols = n;
    h->names_len = off;
}

int evdb__rbuild_columns_packed(evdb__rbuild *b, const void *packed)
{
    const rcols_head *h = packed;
    size_t n = h->ncols;
    if (n > b->r.ncols)
        return EVDB_ERANGE;
    if (!data_reserve(&b->r, h->names_len)) {
        b->r.failed = true;
        return EVDB_ENOMEM;
    }
    if (n == 0)
        return 0;
    const column *src = rcols_columns(h);
    size_t base = b->r.data_len;
    memcpy(b->r.cols, src, n * sizeof(column));
    memcpy(b->r.data + base, src + n, h->names_len);
    b->r.data_len += h->names_len;
    /* A new builder has no data yet: the offsets stand as they are. */
    if (base)
        for (size_t c = 0; c < n; c++)
            b->r.cols[c].name_off += base;
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

/* Room for one whole row of r's columns and need bytes of its data (the
 * whole-row builders). 0 or EVDB_ENOMEM. */
static inline int row_reserve(evdb_result *r, size_t need)
{
    while (r->cells_cap - r->ncells < r->ncols)
        if (!cells_grow(r))
            return EVDB_ENOMEM;
    if (!data_reserve(r, need)) {
        r->failed = true;
        return EVDB_ENOMEM;
    }
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
    int rc = row_reserve(r, need);
    if (rc)
        return rc;
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

int evdb__rbuild_text_row(evdb__rbuild *b, char *const *ptrs, const unsigned long *lens)
{
    evdb_result *r = &b->r;
    size_t n = r->ncols;
    if (n == 0 || r->next_col != 0)
        return EVDB_ERANGE;
    size_t need = 0;
    for (size_t i = 0; i < n; i++)
        need += ptrs[i] ? lens[i] + 1 : 0;
    int rc = row_reserve(r, need);
    if (rc)
        return rc;
    cell *c = &r->cells[r->ncells];
    char *d = r->data + r->data_len;
    for (size_t i = 0; i < n; i++) {
        if (!ptrs[i]) {
            c[i].off = 0;
            c[i].len = NULL_CELL;
            continue;
        }
        c[i].off = (size_t)(d - r->data);
        c[i].len = lens[i];
        memcpy(d, ptrs[i], lens[i]);
        d += lens[i];
        *d++ = '\0';
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
        set_column(&r->cols[c], &cols[c]);
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
    evdb_result *t = first->tail ? first->tail : first;
    while (t->next)
        t = t->next;
    t->next = next;
    first->tail = next && next->tail ? next->tail : next;
}

void evdb__result_set_row_error(evdb_result *r, evdb_error *e)
{
    evdb__free(r->row_error);
    r->row_error = e;
}

const evdb_error *evdb__result_row_error(const evdb_result *r)
{
    return r ? r->row_error : NULL;
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
        evdb__free(r->row_error);
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

/* The text conversion of evdb_result_int (evdb_result_double's is
 * evdb__text_double), out of line: the getters' common case (a number the driver kept, or a cell of
 * a large result read in a loop) then stays a few instructions. */
__attribute__((noinline)) static int int_of_text(const evdb_result *r, size_t col, const char *s,
                                                 size_t len, int64_t *out)
{
    int rc = evdb__text_number_check(s, len);
    if (rc)
        return rc;
    if (r->cols[col].type == EVDB_TYPE_BOOL) {
        bool b;
        rc = evdb__text_bool(s, len, &b);
        if (rc == 0 && out)
            *out = b;
        return rc;
    }
    /* Plain decimal digits (all a server sends for an integer column)
     * are parsed here, several times faster than strtoll with its locale;
     * anything else (leading blanks, say) goes through strtoll as
     * before, so what is accepted does not change. */
    int64_t quick;
    rc = evdb__parse_int64(s, len, &quick);
    if (rc != EVDB_EFORMAT) {
        if (rc == 0 && out)
            *out = quick;
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
    return evdb__text_double(s, len, out);
}

int evdb_result_bool(const evdb_result *r, size_t row, size_t col, bool *out)
{
    const char *s;
    size_t len, flags;
    int rc = cell_get(r, row, col, &s, &len, &flags);
    if (rc)
        return rc;
    return evdb__text_bool(s, len, out);
}

/* ---- typed getters of docs/types.md (parsers: types_text.c) ---- */

#define TYPE_BIT(t) (1u << (t))

/* The cell at row, col of a column whose type is in the mask of
 * TYPE_BITs: 0 with its text, or EVDB_ERANGE, EVDB_ETYPE, EVDB_ENULL. */
static int typed_cell(const evdb_result *r, size_t row, size_t col, unsigned types, const char **p,
                      size_t *len, size_t *flags)
{
    if (!r || row >= r->nrows || col >= r->ncols)
        return EVDB_ERANGE;
    if (!(types & TYPE_BIT(r->cols[col].type)))
        return EVDB_ETYPE;
    return cell_get(r, row, col, p, len, flags);
}

/* A PostgreSQL bit string column shows its digits; a MariaDB BIT column
 * is raw bytes (the drivers name the types "bit"/"varbit" and "BIT"). */
static bool bits_are_digits(const column *c)
{
    return c->type_name && (!strcmp(c->type_name, "bit") || !strcmp(c->type_name, "varbit"));
}

int evdb_result_uint64(const evdb_result *r, size_t row, size_t col, uint64_t *out)
{
    const char *s;
    size_t len, flags;
    int rc =
        typed_cell(r, row, col,
                   TYPE_BIT(EVDB_TYPE_INT) | TYPE_BIT(EVDB_TYPE_BITS) | TYPE_BIT(EVDB_TYPE_NUMERIC),
                   &s, &len, &flags);
    if (rc)
        return rc;
    uint64_t v;
    if (r->cols[col].type == EVDB_TYPE_BITS) {
        rc = bits_are_digits(&r->cols[col]) ? evdb__parse_bit_digits(s, len, &v)
                                            : evdb__parse_bit_bytes(s, len, &v);
    } else if (flags & CELL_HAS_INT) {
        int64_t i;
        memcpy(&i, s + len + 1, sizeof i);
        if (i < 0)
            return EVDB_ERANGE;
        v = (uint64_t)i;
    } else {
        rc = evdb__parse_uint64(s, len, &v);
    }
    if (rc == 0 && out)
        *out = v;
    return rc;
}

/* Days of a date, or of a timestamp('s wall clock) at the offset shown. */
static int date_of_timestamp(int64_t us, int32_t offset, int32_t *days)
{
    if (us == EVDB_TIMESTAMP_INFINITY || us == EVDB_TIMESTAMP_NEG_INFINITY) {
        *days = us > 0 ? EVDB_DATE_INFINITY : EVDB_DATE_NEG_INFINITY;
        return 0;
    }
    int64_t d = us / EVDB_USECS_PER_DAY, rem = us % EVDB_USECS_PER_DAY;
    if (rem < 0) {
        rem += EVDB_USECS_PER_DAY;
        d--;
    }
    rem += (int64_t)offset * 1000000;
    d += rem / EVDB_USECS_PER_DAY - (rem < 0);
    *days = (int32_t)d;
    return 0;
}

int evdb_result_date(const evdb_result *r, size_t row, size_t col, int32_t *days)
{
    const char *s;
    size_t len, flags;
    int rc = typed_cell(r, row, col,
                        TYPE_BIT(EVDB_TYPE_DATE) | TYPE_BIT(EVDB_TYPE_TIMESTAMP) |
                            TYPE_BIT(EVDB_TYPE_TIMESTAMPTZ),
                        &s, &len, &flags);
    if (rc)
        return rc;
    int32_t v;
    evdb_type t = r->cols[col].type;
    if (t == EVDB_TYPE_DATE) {
        rc = evdb__parse_date(s, len, &v);
    } else {
        int64_t us;
        int32_t off;
        rc = evdb__parse_timestamp(s, len, t == EVDB_TYPE_TIMESTAMPTZ, &us, &off);
        if (rc == 0)
            rc = date_of_timestamp(us, off, &v);
    }
    if (rc == 0 && days)
        *days = v;
    return rc;
}

int evdb_result_time(const evdb_result *r, size_t row, size_t col, int64_t *us)
{
    const char *s;
    size_t len, flags;
    int rc = typed_cell(r, row, col, TYPE_BIT(EVDB_TYPE_TIME) | TYPE_BIT(EVDB_TYPE_TIMETZ), &s,
                        &len, &flags);
    if (rc)
        return rc;
    int64_t v;
    int32_t off;
    rc = r->cols[col].type == EVDB_TYPE_TIME ? evdb__parse_time(s, len, &v)
                                             : evdb__parse_timetz(s, len, &v, &off);
    if (rc == 0 && us)
        *us = v;
    return rc;
}

int evdb_result_timetz(const evdb_result *r, size_t row, size_t col, int64_t *us, int32_t *offset)
{
    const char *s;
    size_t len, flags;
    int rc = typed_cell(r, row, col, TYPE_BIT(EVDB_TYPE_TIMETZ), &s, &len, &flags);
    if (rc)
        return rc;
    int64_t v;
    int32_t off;
    rc = evdb__parse_timetz(s, len, &v, &off);
    if (rc == 0) {
        if (us)
            *us = v;
        if (offset)
            *offset = off;
    }
    return rc;
}

/* A timestamp, timestamptz or date cell: microseconds and the offset. */
static int timestamp_cell(const evdb_result *r, size_t row, size_t col, unsigned types, int64_t *us,
                          int32_t *offset)
{
    const char *s;
    size_t len, flags;
    int rc = typed_cell(r, row, col, types, &s, &len, &flags);
    if (rc)
        return rc;
    evdb_type t = r->cols[col].type;
    if (t != EVDB_TYPE_DATE)
        return evdb__parse_timestamp(s, len, t == EVDB_TYPE_TIMESTAMPTZ, us, offset);
    int32_t days;
    rc = evdb__parse_date(s, len, &days);
    if (rc)
        return rc;
    *offset = 0;
    if (days == EVDB_DATE_INFINITY || days == EVDB_DATE_NEG_INFINITY) {
        *us = days > 0 ? EVDB_TIMESTAMP_INFINITY : EVDB_TIMESTAMP_NEG_INFINITY;
        return 0;
    }
    if (__builtin_mul_overflow((int64_t)days, EVDB_USECS_PER_DAY, us) ||
        *us == EVDB_TIMESTAMP_NEG_INFINITY)
        return EVDB_ERANGE;
    return 0;
}

int evdb_result_timestamp(const evdb_result *r, size_t row, size_t col, int64_t *us)
{
    int64_t v;
    int32_t off;
    int rc = timestamp_cell(r, row, col,
                            TYPE_BIT(EVDB_TYPE_TIMESTAMP) | TYPE_BIT(EVDB_TYPE_TIMESTAMPTZ) |
                                TYPE_BIT(EVDB_TYPE_DATE),
                            &v, &off);
    if (rc == 0 && us)
        *us = v;
    return rc;
}

int evdb_result_timestamptz(const evdb_result *r, size_t row, size_t col, int64_t *us,
                            int32_t *offset)
{
    int64_t v;
    int32_t off;
    int rc = timestamp_cell(r, row, col, TYPE_BIT(EVDB_TYPE_TIMESTAMPTZ), &v, &off);
    if (rc == 0) {
        if (us)
            *us = v;
        if (offset)
            *offset = off;
    }
    return rc;
}

int evdb_result_interval(const evdb_result *r, size_t row, size_t col, evdb_interval *out)
{
    const char *s;
    size_t len, flags;
    int rc = typed_cell(r, row, col, TYPE_BIT(EVDB_TYPE_INTERVAL) | TYPE_BIT(EVDB_TYPE_TIME), &s,
                        &len, &flags);
    if (rc)
        return rc;
    evdb_interval v = {0, 0, 0};
    rc = r->cols[col].type == EVDB_TYPE_TIME ? evdb__parse_time(s, len, &v.us)
                                             : evdb__parse_interval(s, len, &v);
    if (rc == 0 && out)
        *out = v;
    return rc;
}

int evdb_result_uuid(const evdb_result *r, size_t row, size_t col, uint8_t out[16])
{
    const char *s;
    size_t len, flags;
    int rc = typed_cell(r, row, col,
                        TYPE_BIT(EVDB_TYPE_UUID) | TYPE_BIT(EVDB_TYPE_TEXT) |
                            TYPE_BIT(EVDB_TYPE_OTHER) | TYPE_BIT(EVDB_TYPE_BYTES),
                        &s, &len, &flags);
    if (rc)
        return rc;
    uint8_t v[16];
    if (r->cols[col].type == EVDB_TYPE_BYTES) {
        if (len != 16)
            return EVDB_EFORMAT;
        memcpy(v, s, 16);
    } else if ((rc = evdb__parse_uuid(s, len, v))) {
        return rc;
    }
    if (out)
        memcpy(out, v, 16);
    return 0;
}

evdb_type evdb_result_coltype_elem(const evdb_result *r, size_t col)
{
    if (!r || col >= r->ncols || r->cols[col].type != EVDB_TYPE_ARRAY)
        return EVDB_TYPE_NULL;
    return r->cols[col].elem == EVDB_TYPE_NULL ? EVDB_TYPE_OTHER : r->cols[col].elem;
}

const char *evdb_result_coltype_name(const evdb_result *r, size_t col)
{
    if (!r || col >= r->ncols)
        return NULL;
    return r->cols[col].type_name ? r->cols[col].type_name : "";
}

int evdb_result_array(const evdb_result *r, size_t row, size_t col, evdb_array **out)
{
    const char *s;
    size_t len, flags;
    int rc = typed_cell(r, row, col, TYPE_BIT(EVDB_TYPE_ARRAY), &s, &len, &flags);
    if (rc)
        return rc;
    return evdb__array_parse(s, len, evdb_result_coltype_elem(r, col), out);
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
