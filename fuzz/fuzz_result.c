/*
 * Fuzz target: result building and the typed getters (src/result.c). The
 * input is a script for the builder the drivers use (evdb__rbuild_*:
 * columns, cells, NULLs, in-place cells, counters, command tags, chained
 * results); the fuzzer keeps its own copy of every cell and then reads
 * the result back through every public getter, in range and out of it.
 *
 * Every complete result is also made the way large PostgreSQL results are
 * (evdb__result_from_source: cells read in place from an object the
 * result owns) and checked the same way.
 *
 * Checked: shape (rows, columns, names, types), every cell byte for byte
 * with its NUL terminator, NULLs, and that each typed getter either
 * refuses (EVDB_ENULL / EVDB_ETYPE / EVDB_ERANGE, *out untouched) or
 * agrees with a plain strtoll / strtod / spelling check of the text.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "reader.h"

#define MAX_COLS 8
#define MAX_CELLS 512
#define MAX_CHAIN 4

static const uint8_t *bytes(reader *r, size_t *n)
{
    size_t len = byte(r);
    if (len > r->left)
        len = r->left;
    const uint8_t *p = r->p;
    r->p += len;
    r->left -= len;
    *n = len;
    return p;
}

/* The fuzzer's own copy of one result. */
typedef struct model {
    size_t ncols, ncells;
    char names[MAX_COLS][257];
    evdb_type types[MAX_COLS];
    unsigned natives[MAX_COLS];
    const uint8_t *cell[MAX_CELLS]; /* NULL: SQL NULL */
    size_t len[MAX_CELLS];
    int64_t affected, insert_id;
    char command[257];
    bool has_command;
} model;

static bool cell_is_number_text(const model *m, size_t i)
{
    return m->cell[i] && m->len[i] && !memchr(m->cell[i], '\0', m->len[i]);
}

static void check_int(const evdb_result *r, const model *m, size_t row, size_t col)
{
    size_t i = row * m->ncols + col;
    int64_t v = 12345;
    int rc = evdb_result_int(r, row, col, &v);
    if (!m->cell[i]) {
        assert(rc == EVDB_ENULL && v == 12345);
        return;
    }
    if (rc != 0) {
        assert(rc == EVDB_ETYPE || rc == EVDB_ERANGE);
        assert(v == 12345);
        return;
    }
    assert(cell_is_number_text(m, i));
    if (m->types[col] == EVDB_TYPE_BOOL) {
        assert(v == 0 || v == 1);
        return;
    }
    char buf[300];
    memcpy(buf, m->cell[i], m->len[i]);
    buf[m->len[i]] = '\0';
    char *end;
    errno = 0;
    long long ref = strtoll(buf, &end, 10);
    assert(*end == '\0' && errno == 0 && ref == v);
}

static void check_double(const evdb_result *r, const model *m, size_t row, size_t col)
{
    size_t i = row * m->ncols + col;
    double v = 0.5;
    int rc = evdb_result_double(r, row, col, &v);
    if (!m->cell[i]) {
        assert(rc == EVDB_ENULL);
        return;
    }
    if (rc != 0) {
        assert(rc == EVDB_ETYPE || rc == EVDB_ERANGE);
        assert(v == 0.5);
        return;
    }
    assert(cell_is_number_text(m, i));
    char buf[300];
    memcpy(buf, m->cell[i], m->len[i]);
    buf[m->len[i]] = '\0';
    char *end;
    double ref = strtod(buf, &end);
    assert(*end == '\0');
    assert((isnan(ref) && isnan(v)) || ref == v);
}

static void check_bool(const evdb_result *r, const model *m, size_t row, size_t col)
{
    size_t i = row * m->ncols + col;
    bool v = true;
    int rc = evdb_result_bool(r, row, col, &v);
    if (!m->cell[i]) {
        assert(rc == EVDB_ENULL);
        return;
    }
    if (rc != 0) {
        assert(rc == EVDB_ETYPE);
        return;
    }
    char buf[300];
    memcpy(buf, m->cell[i], m->len[i]);
    buf[m->len[i]] = '\0';
    bool yes = !strcasecmp(buf, "t") || !strcasecmp(buf, "true") || !strcmp(buf, "1");
    bool no = !strcasecmp(buf, "f") || !strcasecmp(buf, "false") || !strcmp(buf, "0");
    assert(yes || no);
    assert(v == yes);
}

static void check(const evdb_result *r, const model *m)
{
    size_t nrows = m->ncols ? m->ncells / m->ncols : 0;
    assert(evdb_result_ncols(r) == m->ncols);
    assert(evdb_result_nrows(r) == nrows);
    for (size_t c = 0; c < m->ncols; c++) {
        assert(strcmp(evdb_result_colname(r, c), m->names[c]) == 0);
        assert(evdb_result_coltype(r, c) == m->types[c]);
        assert(evdb_result_coltype_native(r, c) == m->natives[c]);
        long idx = evdb_result_colindex(r, m->names[c]);
        assert(idx >= 0 && (size_t)idx <= c);
        assert(strcmp(evdb_result_colname(r, (size_t)idx), m->names[c]) == 0);
    }
    assert(evdb_result_colname(r, m->ncols) == NULL);
    for (size_t row = 0; row < nrows; row++) {
        for (size_t c = 0; c < m->ncols; c++) {
            size_t i = row * m->ncols + c;
            size_t len = 99;
            const char *t = evdb_result_text(r, row, c, &len);
            assert(evdb_result_isnull(r, row, c) == (m->cell[i] == NULL));
            if (!m->cell[i]) {
                assert(t == NULL && len == 0);
            } else {
                assert(t && len == m->len[i] && memcmp(t, m->cell[i], len) == 0);
                assert(t[len] == '\0');
                size_t blen = 0;
                assert(evdb_result_bytes(r, row, c, &blen) == t && blen == len);
            }
            check_int(r, m, row, c);
            check_double(r, m, row, c);
            check_bool(r, m, row, c);
        }
    }
    /* Out of range, every way. */
    size_t len = 7;
    assert(evdb_result_text(r, nrows, 0, &len) == NULL && len == 0);
    assert(evdb_result_isnull(r, nrows, 0));
    assert(evdb_result_isnull(r, 0, m->ncols));
    int64_t iv;
    assert(evdb_result_int(r, nrows, 0, &iv) == EVDB_ERANGE);
    assert(evdb_result_int(r, 0, m->ncols, &iv) == EVDB_ERANGE);
    assert(evdb_result_int(r, SIZE_MAX, SIZE_MAX, &iv) == EVDB_ERANGE);
    double dv;
    assert(evdb_result_double(r, 0, SIZE_MAX, &dv) == EVDB_ERANGE);
    bool bv;
    assert(evdb_result_bool(r, SIZE_MAX, 0, &bv) == EVDB_ERANGE);
    assert(evdb_result_affected(r) == m->affected);
    assert(evdb_result_insert_id(r) == m->insert_id);
    assert(strcmp(evdb_result_command(r), m->has_command ? m->command : "") == 0);
}

/* Build one result from the script; NULL when the builder refused. */
static evdb_result *build(reader *rd, model *m)
{
    memset(m, 0, sizeof *m);
    uint8_t shape = byte(rd);
    m->ncols = shape % (MAX_COLS + 1);
    m->affected = -1;
    evdb__rbuild *b = shape & 0x80 ? evdb__rbuild_new_sized(m->ncols, byte(rd), byte(rd) * 16u)
                                   : evdb__rbuild_new(m->ncols);
    assert(b);
    for (size_t c = 0; c < m->ncols; c++) {
        size_t n;
        const uint8_t *p = bytes(rd, &n);
        memcpy(m->names[c], p, n);
        m->names[c][n] = '\0'; /* names stop at a NUL */
        m->types[c] = (evdb_type)(byte(rd) % 7);
        m->natives[c] = byte(rd) | (unsigned)byte(rd) << 8;
        assert(evdb__rbuild_column(b, c, m->names[c], m->types[c], m->natives[c]) == 0);
    }
    assert(evdb__rbuild_column(b, m->ncols, "x", EVDB_TYPE_TEXT, 0) == EVDB_ERANGE);
    while (rd->left) {
        uint8_t op = byte(rd);
        if (op % 8 == 7)
            break; /* end of this result */
        size_t n;
        const uint8_t *p;
        switch (op % 8) {
        case 0:
        case 1:
        case 2:
            if (!m->ncols || m->ncells == MAX_CELLS)
                break;
            if (op % 8 == 0) {
                assert(evdb__rbuild_cell(b, NULL, 0) == 0);
                m->cell[m->ncells] = NULL;
                m->len[m->ncells++] = 0;
                break;
            }
            p = bytes(rd, &n);
            if (op % 8 == 1) {
                assert(evdb__rbuild_cell(b, p, n) == 0);
            } else {
                char *dst = evdb__rbuild_cell_space(b, n);
                assert(dst);
                memcpy(dst, p, n);
            }
            m->cell[m->ncells] = p;
            m->len[m->ncells++] = n;
            break;
        case 3:
            m->affected = (int64_t)byte(rd) - 1;
            evdb__rbuild_set_affected(b, m->affected);
            break;
        case 4:
            m->insert_id = (int64_t)byte(rd) << 40 | byte(rd);
            evdb__rbuild_set_insert_id(b, m->insert_id);
            break;
        default:
            p = bytes(rd, &n);
            memcpy(m->command, p, n);
            m->command[n] = '\0';
            assert(evdb__rbuild_set_command(b, m->command) == 0);
            m->has_command = true;
            break;
        }
    }
    evdb_result *r = evdb__rbuild_finish(b);
    /* Only a half-filled last row makes the builder refuse. */
    bool complete = !m->ncols || m->ncells % m->ncols == 0;
    assert((r != NULL) == complete);
    return r;
}

/* A source object: NUL-terminated copies of a model's cells, freed by the
 * result that reads them. */
typedef struct src_obj {
    size_t ncols;
    char *cell[MAX_CELLS]; /* NULL: SQL NULL */
    size_t len[MAX_CELLS];
} src_obj;

static const char *src_cell(const void *obj, size_t row, size_t col, size_t *len)
{
    const src_obj *o = obj;
    size_t i = row * o->ncols + col;
    *len = o->len[i];
    return o->cell[i];
}

static size_t src_size(const void *obj)
{
    (void)obj;
    return sizeof(src_obj);
}

static void src_free(void *obj)
{
    src_obj *o = obj;
    for (size_t i = 0; i < MAX_CELLS; i++)
        free(o->cell[i]);
    free(o);
}

static const evdb__rsource fuzz_source = {src_cell, src_size, src_free};

/* The model's result made through evdb__result_from_source, checked. */
static void check_source(const model *built)
{
    static model m;
    m = *built;
    m.insert_id = 0; /* not part of a source's result */
    src_obj *o = calloc(1, sizeof *o);
    assert(o);
    o->ncols = m.ncols;
    for (size_t i = 0; i < m.ncells; i++) {
        o->len[i] = m.len[i];
        if (!m.cell[i])
            continue;
        o->cell[i] = malloc(m.len[i] + 1);
        assert(o->cell[i]);
        memcpy(o->cell[i], m.cell[i], m.len[i]);
        o->cell[i][m.len[i]] = '\0';
    }
    evdb__rcol cols[MAX_COLS];
    for (size_t c = 0; c < m.ncols; c++)
        cols[c] = (evdb__rcol){m.names[c],   strlen(m.names[c]), m.types[c],
                               m.natives[c], EVDB_TYPE_NULL,     NULL};
    size_t nrows = m.ncols ? m.ncells / m.ncols : 0;
    evdb_result *r = evdb__result_from_source(m.ncols, cols, nrows, &fuzz_source, o,
                                              m.has_command ? m.command : NULL, m.affected);
    assert(r);
    check(r, &m);
    assert(evdb__result_size(r) >= sizeof(src_obj));
    evdb__result_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader rd = {data, size};
    static model models[MAX_CHAIN];
    evdb_result *first = NULL;
    size_t n = 0;
    while (n < MAX_CHAIN && (n == 0 || rd.left)) {
        evdb_result *r = build(&rd, &models[n]);
        if (!r)
            break;
        check(r, &models[n]);
        check_source(&models[n]);
        if (first)
            evdb__result_append(first, r);
        else
            first = r;
        n++;
    }
    /* The chain, in order, from the first result. */
    const evdb_result *r = first;
    for (size_t i = 0; i < n; i++, r = evdb_result_next(r))
        check(r, &models[i]);
    assert(r == NULL);
    evdb__result_free(first);
    return 0;
}
