/*
 * PGresult -> evdb_result, and failed PGresults -> evdb_error.
 *
 * Results arrive in text format. Column types map from the type OID; bytea
 * cells are decoded from the server's "\x..." hex text (or the old escape
 * format when bytea_output = escape) into raw bytes, so evdb_result_bytes
 * gives the data byte for byte.
 *
 * Three ways, by size. Small results (up to SMALL_CELLS cells, most
 * queries) are copied in one call and the PGresult is cleared at once:
 * keeping it alive until the callback has run costs libpq's allocator more
 * than the copy. Larger ones keep the PGresult itself and read its cells
 * in place (evdb__result_from_source), since copying a thousand rows costs
 * more than everything else about the query; the result owns the PGresult
 * and clears it when freed. Results with bytea columns, whose cells must
 * be decoded, and rows collected one at a time (single-row mode, under
 * max_result_bytes) are copied cell by cell.
 */
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

static bool is_octal(unsigned char c)
{
    return c >= '0' && c <= '7';
}

/* Decode one bytea cell into the result. Returns 0 or EVDB_ENOMEM. A cell
 * that does not parse (it cannot happen with a real server) is stored as
 * the text it was. */
static int put_bytea(evdb__rbuild *b, const char *s, size_t len)
{
    if (len >= 2 && s[0] == '\\' && s[1] == 'x') {
        size_t hex = len - 2;
        if (hex % 2)
            return evdb__rbuild_cell(b, s, len);
        for (size_t i = 2; i < len; i++)
            if (evdb__hexval((unsigned char)s[i]) < 0)
                return evdb__rbuild_cell(b, s, len);
        unsigned char *out = evdb__rbuild_cell_space(b, hex / 2);
        if (!out)
            return EVDB_ENOMEM;
        for (size_t i = 0; i < hex / 2; i++)
            out[i] = (unsigned char)(evdb__hexval((unsigned char)s[2 + 2 * i]) << 4 |
                                     evdb__hexval((unsigned char)s[3 + 2 * i]));
        return 0;
    }
    /* Escape format: \\ is a backslash, \ooo an octal byte, the rest as is. */
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        if (s[i] != '\\') {
            i++;
        } else if (i + 1 < len && s[i + 1] == '\\') {
            i += 2;
        } else if (i + 3 < len && is_octal((unsigned char)s[i + 1]) &&
                   is_octal((unsigned char)s[i + 2]) && is_octal((unsigned char)s[i + 3])) {
            i += 4;
        } else {
            return evdb__rbuild_cell(b, s, len);
        }
    }
    unsigned char *out = evdb__rbuild_cell_space(b, n);
    if (!out)
        return EVDB_ENOMEM;
    for (size_t i = 0, o = 0; i < len; o++) {
        if (s[i] != '\\') {
            out[o] = (unsigned char)s[i++];
        } else if (s[i + 1] == '\\') {
            out[o] = '\\';
            i += 2;
        } else {
            out[o] =
                (unsigned char)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0'));
            i += 4;
        }
    }
    return 0;
}

/* The row count of a command tag, as PQcmdTuples finds it ("INSERT 0 5",
 * "SELECT 3", "UPDATE 2", ...; MERGE, FETCH, MOVE and COPY too), or -1 when
 * the command has none. Read from the tag directly: PQcmdTuples costs as
 * much again as the rest of a small result's conversion. */
static int64_t affected_of_tag(const char *tag)
{
    if (!tag)
        return -1;
    /* By the first letter: this runs for every result. */
    const char *word;
    switch (tag[0]) {
    case 'S':
        word = "SELECT ";
        break;
    case 'U':
        word = "UPDATE ";
        break;
    case 'D':
        word = "DELETE ";
        break;
    case 'I':
        word = "INSERT ";
        break;
    case 'M':
        word = tag[1] == 'E' ? "MERGE " : "MOVE ";
        break;
    case 'F':
        word = "FETCH ";
        break;
    case 'C':
        word = "COPY ";
        break;
    default:
        return -1;
    }
    const char *s = tag;
    /* Stops at the first difference, so never past a short tag's NUL. */
    for (; *word; word++, s++)
        if (*s != *word)
            return -1;
    if (tag[0] == 'I') {
        /* INSERT oid count */
        s = strchr(s, ' ');
        if (!s)
            return -1;
        s++;
    }
    if (*s < '0' || *s > '9')
        return -1;
    int64_t n = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (n > (INT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (*s - '0');
    }
    return *s ? -1 : n;
}

static int64_t affected_rows(const PGresult *res)
{
    return affected_of_tag(PQcmdStatus((PGresult *)res));
}

/* A column's evdb type, element type and type name: the static table,
 * then (with a catalog) the connection's catalog. false when the catalog
 * does not know the type yet. */
static bool column_type(pg_catalog *cat, Oid oid, evdb_type *type, evdb_type *elem,
                        const char **name)
{
    *type = evdb__pg_type(oid, elem, name);
    if (*type != EVDB_TYPE_OTHER || !cat)
        return true;
    return evdb__pg_catalog_type(cat, oid, type, elem, name);
}

/* The columns of res into a new builder sized for nrows rows and data
 * bytes; sets *bytea_any when a column needs decoding. */
static evdb__rbuild *begin(const PGresult *res, int ncols, int nrows, size_t data, bool *bytea_any,
                           pg_catalog *cat)
{
    evdb__rbuild *b = evdb__rbuild_new_sized((size_t)ncols, (size_t)nrows, data);
    if (!b)
        return NULL;
    *bytea_any = false;
    for (int c = 0; c < ncols; c++) {
        Oid oid = PQftype(res, c);
        evdb_type t, elem;
        const char *name;
        column_type(cat, oid, &t, &elem, &name);
        *bytea_any |= t == EVDB_TYPE_BYTES;
        if (evdb__rbuild_column(b, (size_t)c, PQfname(res, c), t, oid) ||
            evdb__rbuild_column_info(b, (size_t)c, elem, name)) {
            evdb__rbuild_free(b);
            return NULL;
        }
    }
    return b;
}

/* Append the rows of res. Returns 0 or EVDB_ENOMEM. */
static int put_rows(evdb__rbuild *b, const PGresult *res, int ncols, int nrows, bool bytea_any)
{
    for (int r = 0; r < nrows; r++) {
        for (int c = 0; c < ncols; c++) {
            int rc;
            if (PQgetisnull(res, r, c))
                rc = evdb__rbuild_cell(b, NULL, 0);
            else if (bytea_any && PQftype(res, c) == PG_OID_BYTEA)
                rc = put_bytea(b, PQgetvalue(res, r, c), (size_t)PQgetlength(res, r, c));
            else
                rc = evdb__rbuild_cell(b, PQgetvalue(res, r, c), (size_t)PQgetlength(res, r, c));
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* The counters and the command tag of res, then finish b. */
static evdb_result *end(evdb__rbuild *b, const PGresult *res, const char *tag)
{
    evdb__rbuild_set_affected(b, affected_rows(res));
    if (tag && *tag && evdb__rbuild_set_command(b, tag)) {
        evdb__rbuild_free(b);
        return NULL;
    }
    return evdb__rbuild_finish(b);
}

static int count(int n)
{
    return n < 0 ? 0 : n;
}

/* The columns of a cached statement's results (see evdb__pg_result_build):
 * one allocation, the names after the array. */
struct pg_cols {
    int ncols;
    evdb__rcol cols[];
};

void evdb__pg_cols_free(pg_cols *cols)
{
    evdb__free(cols);
}

/* Keep ncols columns for the statement's later results; without memory
 * they are simply read again next time. */
static void keep_cols(pg_cols **memo, const evdb__rcol *cols, int ncols)
{
    size_t names = 0;
    for (int c = 0; c < ncols; c++)
        names += cols[c].name_len + 1;
    pg_cols *k = evdb__malloc(sizeof *k + (size_t)ncols * sizeof k->cols[0] + names);
    if (!k)
        return;
    k->ncols = ncols;
    char *d = (char *)&k->cols[ncols];
    for (int c = 0; c < ncols; c++) {
        k->cols[c] = cols[c];
        memcpy(d, cols[c].name, cols[c].name_len + 1);
        k->cols[c].name = d;
        d += cols[c].name_len + 1;
    }
    *memo = k;
}

/* The columns of res (names, types) into read[0..ncols); false when one
 * is bytea, which these paths leave to the copying builder. *known: false
 * when a type is not in the catalog yet (the columns are then not
 * remembered: a later result will know more). */
static bool read_columns(const PGresult *res, int ncols, evdb__rcol *read, pg_catalog *cat,
                         bool *known)
{
    *known = true;
    for (int c = 0; c < ncols; c++) {
        Oid oid = PQftype(res, c);
        if (oid == PG_OID_BYTEA)
            return false;
        const char *name = PQfname(res, c);
        read[c].name = name ? name : "";
        read[c].name_len = strlen(read[c].name);
        *known &= column_type(cat, oid, &read[c].type, &read[c].elem, &read[c].type_name);
        read[c].native_type = oid;
    }
    return true;
}

/* Small results (most queries return a row or none) in one call: no
 * sizing pass, no per-cell builder calls. NULL with *tried false when res
 * does not qualify (too big, or bytea cells to decode). */
#define SMALL_CELLS 64
static evdb_result *build_small(const PGresult *res, int ncols, int nrows, pg_cols **memo,
                                bool *tried, pg_catalog *cat)
{
    *tried = false;
    if (ncols > SMALL_CELLS || (size_t)ncols * (size_t)nrows > SMALL_CELLS)
        return NULL;
    const evdb__rcol *cols;
    evdb__rcol read[SMALL_CELLS];
    if (memo && *memo && (*memo)->ncols == ncols) {
        cols = (*memo)->cols;
    } else {
        bool known;
        if (!read_columns(res, ncols, read, cat, &known))
            return NULL;
        /* Only with columns: an empty list saves nothing. */
        if (memo && !*memo && ncols && known)
            keep_cols(memo, read, ncols);
        cols = read;
    }
    const char *vals[SMALL_CELLS];
    size_t lens[SMALL_CELLS];
    size_t i = 0;
    for (int r = 0; r < nrows; r++) {
        for (int c = 0; c < ncols; c++, i++) {
            vals[i] = PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
            lens[i] = (size_t)PQgetlength(res, r, c);
        }
    }
    *tried = true;
    const char *tag = PQcmdStatus((PGresult *)res);
    return evdb__result_from_text((size_t)ncols, cols, (size_t)nrows, vals, lens, tag,
                                  affected_of_tag(tag));
}

/* The cells of a kept PGresult (see build_in_place). Values are
 * NUL-terminated in the PGresult; a NULL reads as "" of length 0 there,
 * so only an empty value needs the NULL check. */
static const char *pg_cell(const void *obj, size_t row, size_t col, size_t *len)
{
    PGresult *res = (PGresult *)obj;
    int n = PQgetlength(res, (int)row, (int)col);
    if (n == 0 && PQgetisnull(res, (int)row, (int)col)) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)n;
    return PQgetvalue(res, (int)row, (int)col);
}

static size_t pg_size(const void *obj)
{
    return PQresultMemorySize((const PGresult *)obj);
}

static void pg_free(void *obj)
{
    PQclear(obj);
}

static const evdb__rsource pg_source = {pg_cell, pg_size, pg_free};

/* A result that keeps res and reads its cells in place. NULL with *tried
 * false when res has bytea columns (decoded copies, by the general path);
 * NULL with *tried true when out of memory (res is then still the
 * caller's). */
static evdb_result *build_in_place(PGresult *res, int ncols, int nrows, pg_cols **memo, bool *tried,
                                   pg_catalog *cat)
{
    *tried = false;
    const evdb__rcol *cols;
    evdb__rcol one[SMALL_CELLS];
    evdb__rcol *read = NULL;
    if (memo && *memo && (*memo)->ncols == ncols) {
        cols = (*memo)->cols;
        for (int c = 0; c < ncols; c++)
            if (cols[c].native_type == PG_OID_BYTEA)
                return NULL;
    } else {
        read = ncols <= SMALL_CELLS ? one : evdb__malloc((size_t)ncols * sizeof *read);
        if (!read) {
            *tried = true;
            return NULL;
        }
        bool known;
        if (!read_columns(res, ncols, read, cat, &known)) {
            if (read != one)
                evdb__free(read);
            return NULL;
        }
        if (memo && !*memo && ncols && known)
            keep_cols(memo, read, ncols);
        cols = read;
    }
    *tried = true;
    const char *tag = PQcmdStatus(res);
    evdb_result *r = evdb__result_from_source((size_t)ncols, cols, (size_t)nrows, &pg_source, res,
                                              tag, affected_of_tag(tag));
    if (read != one)
        evdb__free(read);
    return r;
}

evdb_result *evdb__pg_result_build(PGresult *res, pg_cols **cols, bool *kept)
{
    return evdb__pg_result_build_cat(res, cols, kept, NULL);
}

evdb_result *evdb__pg_result_build_cat(PGresult *res, pg_cols **cols, bool *kept, pg_catalog *cat)
{
    int ncols = count(PQnfields(res));
    int nrows = count(PQntuples(res));
    if (kept)
        *kept = false;
    bool tried;
    evdb_result *small = build_small(res, ncols, nrows, cols, &tried, cat);
    if (tried)
        return small;
    if (kept) {
        evdb_result *r = build_in_place(res, ncols, nrows, cols, &tried, cat);
        if (tried) {
            *kept = r != NULL;
            return r;
        }
    }
    /* Exact room for names, cells and the tag, each with its NUL (a bytea
     * cell decodes shorter than its text), so the result is one block. */
    const char *tag = PQcmdStatus((PGresult *)res);
    size_t data = tag ? strlen(tag) + 1 : 0;
    for (int c = 0; c < ncols; c++) {
        const char *name = PQfname(res, c);
        data += (name ? strlen(name) : 0) + 1;
    }
    for (int r = 0; r < nrows; r++)
        for (int c = 0; c < ncols; c++)
            data += (size_t)PQgetlength(res, r, c) + 1;
    bool bytea_any;
    evdb__rbuild *b = begin(res, ncols, nrows, data, &bytea_any, cat);
    if (!b)
        return NULL;
    if (put_rows(b, res, ncols, nrows, bytea_any)) {
        evdb__rbuild_free(b);
        return NULL;
    }
    return end(b, res, tag);
}

int evdb__pg_rows_add(evdb__rbuild **b, const PGresult *res)
{
    return evdb__pg_rows_add_cat(b, res, NULL);
}

int evdb__pg_rows_add_cat(evdb__rbuild **b, const PGresult *res, pg_catalog *cat)
{
    int ncols = count(PQnfields(res));
    bool bytea_any = false;
    if (!*b) {
        /* Sized like an ordinary small result; it grows by doubling. */
        *b = begin(res, ncols, 1, 0, &bytea_any, cat);
        if (!*b)
            return EVDB_ENOMEM;
    } else {
        for (int c = 0; c < ncols && !bytea_any; c++)
            bytea_any = PQftype(res, c) == PG_OID_BYTEA;
    }
    return put_rows(*b, res, ncols, count(PQntuples(res)), bytea_any);
}

evdb_result *evdb__pg_rows_finish(evdb__rbuild *b, const PGresult *res)
{
    return end(b, res, PQcmdStatus((PGresult *)res));
}

void evdb__pg_error_diag(evdb_error *e, const PGresult *res)
{
    /* The short fields first: they share one buffer, and the detail (the
     * longest, and also in the message) takes what remains. */
    static const struct {
        enum evdb__diag f;
        int pg;
    } fields[] = {
        {EVDB__DIAG_SEVERITY, PG_DIAG_SEVERITY_NONLOCALIZED},
        {EVDB__DIAG_CONSTRAINT, PG_DIAG_CONSTRAINT_NAME},
        {EVDB__DIAG_TABLE, PG_DIAG_TABLE_NAME},
        {EVDB__DIAG_COLUMN, PG_DIAG_COLUMN_NAME},
        {EVDB__DIAG_HINT, PG_DIAG_MESSAGE_HINT},
        {EVDB__DIAG_DETAIL, PG_DIAG_MESSAGE_DETAIL},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        evdb__error_diag(e, fields[i].f, PQresultErrorField(res, fields[i].pg));
}

void evdb__pg_error_fill(evdb_error *e, int code, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    evdb__error_set(e, code, 0, state, "%s%s%s%s%s", primary ? primary : "",
                    detail ? "\nDETAIL: " : "", detail ? detail : "", hint ? "\nHINT: " : "",
                    hint ? hint : "");
    evdb__pg_error_diag(e, res);
}

void evdb__pg_error_from_result(evdb_error *e, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!state || !primary) {
        /* libpq's own error (lost connection, protocol trouble). */
        const char *msg = PQresultErrorMessage(res);
        evdb__error_set(e, EVDB_EPROTO, 0, state, "%s", msg && *msg ? msg : "libpq error");
        return;
    }
    evdb__pg_error_fill(e, EVDB_ESERVER, res);
}

bool evdb__pg_error_is_fatal(const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (!sev)
        return false;
    return !strcmp(sev, "FATAL") || !strcmp(sev, "PANIC");
}
