/*
 * Fuzz target: PostgreSQL result conversion (drivers/postgres/pg_result.c,
 * evdb__pg_result_build), bytea decoding above all. libpq can make a
 * PGresult without a server (PQmakeEmptyPGresult, PQsetResultAttrs,
 * PQsetvalue), so the input describes columns (type OIDs from the set the
 * driver maps, bytea often) and cells (text as the server would send it,
 * NULLs), and the converted result is compared with a reference decoder:
 * bytea "\x" hex and the old escape format decoded byte for byte, text
 * that is neither kept as it was, every other type's text unchanged.
 * Each input is converted both ways a driver does it: copied, and (for
 * results past the small-result size without bytea columns) read in place
 * from a PGresult the result takes over and clears itself.
 * The small SQL lexer (evdb__pg_sql_classify, pg_sql.c) reads the same
 * bytes as SQL text on the way.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "pg_internal.h"
#include "reader.h"

#define MAX_COLS 6
#define MAX_ROWS 16

static const Oid oids[] = {PG_OID_BYTEA,        PG_OID_BYTEA,     PG_OID_BYTEA,
                           PG_OID_BOOL,         PG_OID_INT8,      PG_OID_INT2,
                           PG_OID_INT4,         PG_OID_TEXT,      PG_OID_OID,
                           PG_OID_FLOAT4,       PG_OID_FLOAT8,    PG_OID_BPCHAR,
                           PG_OID_VARCHAR,      PG_OID_NAME,      PG_OID_CHAR,
                           1700u /* numeric */, 1082u /* date */, 0u};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool octal(unsigned char c)
{
    return c >= '0' && c <= '7';
}

/* The reference decoder: the decoded bytes in out (*n), or false when the
 * text is not valid bytea (the driver then keeps it as it was). */
static bool ref_bytea(const char *s, size_t len, unsigned char *out, size_t *n)
{
    *n = 0;
    if (len >= 2 && s[0] == '\\' && s[1] == 'x') {
        if ((len - 2) % 2)
            return false;
        for (size_t i = 2; i < len; i += 2) {
            int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
            if (hi < 0 || lo < 0)
                return false;
            out[(*n)++] = (unsigned char)(hi << 4 | lo);
        }
        return true;
    }
    for (size_t i = 0; i < len;) {
        if (s[i] != '\\') {
            out[(*n)++] = (unsigned char)s[i++];
        } else if (i + 1 < len && s[i + 1] == '\\') {
            out[(*n)++] = '\\';
            i += 2;
        } else if (i + 3 < len && octal((unsigned char)s[i + 1]) &&
                   octal((unsigned char)s[i + 2]) && octal((unsigned char)s[i + 3])) {
            out[(*n)++] =
                (unsigned char)((s[i + 1] - '0') << 6 | (s[i + 2] - '0') << 3 | (s[i + 3] - '0'));
            i += 4;
        } else {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The bytes as SQL text: the lexer must stay inside them. */
    unsigned cls = evdb__pg_sql_classify((const char *)data, size);
    assert(cls & PGQ_CLASSIFIED);

    reader rd = {data, size};
    int ncols = byte(&rd) % (MAX_COLS + 1);
    int nrows = byte(&rd) % (MAX_ROWS + 1);
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert(res);
    PGresAttDesc att[MAX_COLS];
    char names[MAX_COLS][8];
    for (int c = 0; c < ncols; c++) {
        memset(&att[c], 0, sizeof att[c]);
        names[c][0] = (char)('a' + c);
        names[c][1] = '\0';
        att[c].name = names[c];
        att[c].typid = oids[byte(&rd) % (sizeof oids / sizeof oids[0])];
        att[c].typlen = -1;
        att[c].format = 0;
        att[c].atttypmod = -1;
    }
    if (ncols)
        assert(PQsetResultAttrs(res, ncols, att));
    for (int r = 0; r < nrows && ncols; r++) {
        for (int c = 0; c < ncols; c++) {
            uint8_t len = byte(&rd);
            if (len == 255) {
                assert(PQsetvalue(res, r, c, NULL, -1));
                continue;
            }
            size_t n = len < rd.left ? len : rd.left;
            /* Bias bytea cells towards the hex format. */
            char buf[260];
            size_t o = 0;
            if (att[c].typid == PG_OID_BYTEA && (len & 1)) {
                buf[o++] = '\\';
                buf[o++] = 'x';
            }
            memcpy(buf + o, rd.p, n);
            rd.p += n;
            rd.left -= n;
            assert(PQsetvalue(res, r, c, buf, (int)(o + n)));
        }
    }
    /* Twice through a statement's column memo: the first build keeps the
     * columns, the second reads them from there; then twice more on a copy
     * of res the result may keep (the memo again, then without). */
    pg_cols *cols = NULL;
    for (int pass = 0; pass < 4; pass++) {
        PGresult *own = NULL;
        bool kept = false;
        evdb_result *er;
        if (pass < 2) {
            er = evdb__pg_result_build(res, &cols, NULL);
        } else {
            own = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
            assert(own);
            er = evdb__pg_result_build(own, pass == 2 ? &cols : NULL, &kept);
            if (!kept)
                PQclear(own);
        }
        assert(er);
        int rows = ncols ? PQntuples(res) : 0;
        assert(evdb_result_ncols(er) == (size_t)ncols);
        assert(evdb_result_nrows(er) == (size_t)rows);
        static unsigned char ref[260];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < ncols; c++) {
                size_t len = 0;
                const char *got = evdb_result_text(er, (size_t)r, (size_t)c, &len);
                if (PQgetisnull(res, r, c)) {
                    assert(got == NULL);
                    continue;
                }
                const char *src = PQgetvalue(res, r, c);
                size_t slen = (size_t)PQgetlength(res, r, c);
                size_t n;
                if (att[c].typid == PG_OID_BYTEA && ref_bytea(src, slen, ref, &n)) {
                    assert(len == n && memcmp(got, ref, n) == 0);
                } else {
                    assert(len == slen && memcmp(got, src, slen) == 0);
                }
                assert(got[len] == '\0');
            }
        }
        for (int c = 0; c < ncols; c++) {
            assert(evdb_result_coltype_native(er, (size_t)c) == att[c].typid);
            assert(strcmp(evdb_result_colname(er, (size_t)c), names[c]) == 0);
            if (att[c].typid == PG_OID_BYTEA)
                assert(evdb_result_coltype(er, (size_t)c) == EVDB_TYPE_BYTES);
        }
        evdb__result_free(er);
    }
    evdb__pg_cols_free(cols);
    PQclear(res);
    return 0;
}
