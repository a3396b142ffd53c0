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
 * twice (reusing the arrays) gives the same.
 */
#include <math.h>
#include <stdio.h>

#include "values.h"

#include "internal.h"
#include "pg_internal.h"

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
            default:
                assert(0);
            }
        }
    }
    evdb__pg_params_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    evdb_value *copy;
    size_t n;
    void *block = values_from(data, size, &copy, &n);
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
