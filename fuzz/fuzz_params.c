/*
 * Fuzz target: PostgreSQL parameter encoding. Arbitrary bytes become typed
 * values (values.h: checked and deep-copied as at submission), which go
 * through evdb__pg_params_check and evdb__pg_params_encode
 * (drivers/postgres/pg_params.c).
 *
 * Checked: decimal text that reads back as the same int64 / double (with
 * "NaN", "Infinity", "-Infinity" and the sign of zero), "t"/"f" bools
 * typed bool, text passed as is (NUL-terminated) and text holding a NUL
 * refused with EVDB_EINVAL, bytes in binary format typed bytea; encoding
 * twice (reusing the arrays) gives the same. The column types
 * (docs/types.md): binary dates, times, timestamps, intervals and UUIDs
 * decode back to the value; arrays' binary layout adds up, text arrays
 * byte for byte; numerics and JSON passed as is.
 */
#include <math.h>
#include <stdio.h>

#include "values.h"

#include "internal.h"
#include "pg_internal.h"

/* Big-endian integers of the binary formats. */
static uint64_t rd_be(const char *p, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = v << 8 | (uint8_t)p[k];
    return v;
}

static uint64_t rd64(const char *p)
{
    return rd_be(p, 8);
}

static uint32_t rd32(const char *p)
{
    return (uint32_t)rd_be(p, 4);
}

/* Binary scalars decode back to the value, PostgreSQL's way: days and
 * microseconds from 2000-01-01, infinities kept, zones west of UTC. */
static void check_binary(const evdb_value *v, const char *s, size_t len, int format, Oid oid)
{
    assert(format == 1);
    const int64_t epoch_us = INT64_C(946684800000000);
    switch (v->type) {
    case EVDB_TYPE_DATE: {
        int32_t d = (int32_t)rd32(s);
        assert(len == 4 && oid == 1082);
        assert(d ==
               (v->u.date == INT32_MAX || v->u.date == INT32_MIN ? v->u.date : v->u.date - 10957));
        break;
    }
    case EVDB_TYPE_TIME:
        assert(len == 8 && oid == 1083 && (int64_t)rd64(s) == v->u.t.us);
        break;
    case EVDB_TYPE_TIMETZ:
        assert(len == 12 && oid == 1266 && (int64_t)rd64(s) == v->u.t.us);
        assert((int32_t)rd32(s + 8) == -v->u.t.offset);
        break;
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ: {
        int64_t t = (int64_t)rd64(s), us = v->u.t.us;
        assert(len == 8 && oid == (v->type == EVDB_TYPE_TIMESTAMP ? 1114u : 1184u));
        assert(t == (us == INT64_MAX || us == INT64_MIN ? us : us - epoch_us));
        break;
    }
    case EVDB_TYPE_INTERVAL:
        assert(len == 16 && oid == 1186 && (int64_t)rd64(s) == v->u.iv.us);
        assert((int32_t)rd32(s + 8) == v->u.iv.days && (int32_t)rd32(s + 12) == v->u.iv.months);
        break;
    case EVDB_TYPE_UUID:
        assert(len == 16 && oid == 2950 && memcmp(s, v->u.uuid, 16) == 0);
        break;
    default:
        assert(0);
    }
}

/* An array parameter: the binary layout's header, one length per element
 * adding up to the whole, or a {...} literal for numerics. */
static void check_array(const evdb_value *v, const char *s, size_t len, int format)
{
    size_t n = v->u.a.n;
    if (format == 0) {
        assert(len >= 2 && s[0] == '{' && s[len - 1] == '}' && s[len] == '\0');
        return;
    }
    assert(len >= 12);
    uint32_t ndim = rd32(s);
    assert(ndim == (n ? 1u : 0u));
    if (!n) {
        assert(len == 12);
        return;
    }
    assert(rd32(s + 12) == n && rd32(s + 16) == 1);
    size_t off = 20;
    for (size_t e = 0; e < n; e++) {
        assert(off + 4 <= len);
        int32_t el = (int32_t)rd32(s + off);
        off += 4;
        if (el < 0)
            continue;
        off += (size_t)el;
    }
    assert(off == len);
    if (v->elem == EVDB_TYPE_TEXT) {
        /* Each string byte for byte. */
        const char *const *t = v->u.a.ptr;
        off = 20;
        for (size_t e = 0; e < n; e++) {
            int32_t el = (int32_t)rd32(s + off);
            off += 4;
            assert(t[e]
                       ? el >= 0 && (size_t)el == strlen(t[e]) && !memcmp(s + off, t[e], (size_t)el)
                       : el == -1);
            off += el > 0 ? (size_t)el : 0;
        }
    }
}

static void check_pg(const evdb__query *q)
{
    evdb_error err;
    bool has_nul = false;
    for (size_t i = 0; i < q->nparams; i++) {
        const evdb_value *v = &q->params[i];
        if (v->type == EVDB_TYPE_TEXT && memchr(v->u.s.ptr, '\0', v->u.s.len))
            has_nul = true;
    }
    int rc = evdb__pg_params_check(q, &err);
    if (has_nul) {
        assert(rc == EVDB_EINVAL && err.code == EVDB_EINVAL);
        return;
    }
    assert(rc == 0);
    pg_params p;
    memset(&p, 0, sizeof p);
    /* Twice: the second encode reuses the arrays. */
    for (int round = 0; round < 2; round++) {
        assert(evdb__pg_params_encode(&p, q) == 0);
        for (size_t i = 0; i < q->nparams; i++) {
            const evdb_value *v = &q->params[i];
            const char *s = p.values[i];
            switch (v->type) {
            case EVDB_TYPE_NULL:
                assert(s == NULL);
                break;
            case EVDB_TYPE_BOOL:
                assert(strcmp(s, v->u.b ? "t" : "f") == 0);
                assert(p.types[i] == PG_OID_BOOL && p.formats[i] == 0);
                break;
            case EVDB_TYPE_INT: {
                char *end;
                long long back = strtoll(s, &end, 10);
                assert(*end == '\0' && back == v->u.i);
                assert(p.types[i] == PG_OID_UNKNOWN && p.formats[i] == 0);
                break;
            }
            case EVDB_TYPE_DOUBLE:
                if (isnan(v->u.d)) {
                    assert(strcmp(s, "NaN") == 0);
                } else if (isinf(v->u.d)) {
                    assert(strcmp(s, v->u.d > 0 ? "Infinity" : "-Infinity") == 0);
                } else {
                    char *end;
                    double back = strtod(s, &end);
                    assert(*end == '\0' && back == v->u.d);
                    /* The sign of zero survives too. */
                    assert(signbit(back) == signbit(v->u.d));
                }
                break;
            case EVDB_TYPE_TEXT:
                assert(s == v->u.s.ptr && (size_t)p.lengths[i] == v->u.s.len);
                assert(p.formats[i] == 0 && s[v->u.s.len] == '\0');
                break;
            case EVDB_TYPE_BYTES:
                assert(s == v->u.s.ptr && (size_t)p.lengths[i] == v->u.s.len);
                assert(p.formats[i] == 1 && p.types[i] == PG_OID_BYTEA);
                break;
            case EVDB_TYPE_UINT: {
                char *end;
                unsigned long long back = strtoull(s, &end, 10);
                assert(*end == '\0' && back == v->u.ui && p.formats[i] == 0);
                assert(p.types[i] == (v->u.ui > INT64_MAX ? PG_OID_NUMERIC : PG_OID_UNKNOWN));
                break;
            }
            case EVDB_TYPE_NUMERIC:
            case EVDB_TYPE_JSON:
                assert(s == v->u.s.ptr && p.formats[i] == 0);
                assert(p.types[i] == (v->type == EVDB_TYPE_JSON ? PG_OID_JSON : PG_OID_NUMERIC));
                break;
            case EVDB_TYPE_ARRAY:
                check_array(v, s, (size_t)p.lengths[i], p.formats[i]);
                break;
            default:
                check_binary(v, s, (size_t)p.lengths[i], p.formats[i], p.types[i]);
                break;
            }
        }
    }
    evdb__pg_params_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    evdb_value *copy;
    size_t n;
    void *block = values_from_typed(data, size, &copy, &n, true);
    evdb__query q;
    memset(&q, 0, sizeof q);
    q.sql = "SELECT 1";
    q.sql_len = 8;
    q.params = n ? copy : NULL;
    q.nparams = n;
    check_pg(&q);
    free(block);
    return 0;
}
