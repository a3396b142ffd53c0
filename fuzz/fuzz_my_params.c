/*
 * Fuzz target: MariaDB parameter binding. Arbitrary bytes become typed
 * values (values.h), bound by the driver's bind_params
 * (drivers/mariadb/my_stmt.c, a static function: this file compiles
 * my_stmt.c itself, and the fuzz build leaves it out of the library this
 * target links). The statement is not prepared (no server), so
 * Connector/C's mysql_stmt_bind_param refuses at the end, after the binds
 * were filled in, which is what is checked: buffer types, buffers
 * pointing at the values, lengths.
 */
#include "../drivers/mariadb/my_stmt.c"

#include "values.h"

static void check_mariadb(evdb__query *q)
{
    static MYSQL *m;
    if (!m) {
        m = mysql_init(NULL);
        assert(m);
    }
    evdb__dconn dc;
    memset(&dc, 0, sizeof dc);
    dc.m = m;
    dc.q = q;
    /* The statement running, as the driver's send sets it. */
    dc.one = (evdb__stmt){q->sql, q->sql_len, q->params, q->nparams};
    dc.cur = &dc.one;
    evdb__my_stmt s;
    memset(&s, 0, sizeof s);
    /* Not prepared: mysql_stmt_bind_param refuses, after the binds were
     * filled in (which is what is checked). */
    s.stmt = mysql_stmt_init(m);
    assert(s.stmt);
    s.nparams = (unsigned)q->nparams;
    assert(alloc_binds(&s) == 0);
    bind_params(&dc, &s);
    for (unsigned i = 0; i < s.nparams; i++) {
        const evdb_value *v = &q->params[i];
        const MYSQL_BIND *b = &s.pbind[i];
        switch (v->type) {
        case EVDB_TYPE_NULL:
            assert(b->buffer_type == MYSQL_TYPE_NULL);
            break;
        case EVDB_TYPE_BOOL:
            assert(b->buffer_type == MYSQL_TYPE_TINY);
            assert(*(const signed char *)b->buffer == (v->u.b ? 1 : 0));
            break;
        case EVDB_TYPE_INT:
            assert(b->buffer_type == MYSQL_TYPE_LONGLONG);
            assert(*(const int64_t *)b->buffer == v->u.i);
            break;
        case EVDB_TYPE_DOUBLE:
            assert(b->buffer_type == MYSQL_TYPE_DOUBLE);
            assert(memcmp(b->buffer, &v->u.d, sizeof(double)) == 0);
            break;
        case EVDB_TYPE_TEXT:
        case EVDB_TYPE_BYTES:
            assert(b->buffer_type ==
                   (v->type == EVDB_TYPE_TEXT ? MYSQL_TYPE_STRING : MYSQL_TYPE_BLOB));
            assert(b->buffer == v->u.s.ptr && b->buffer_length == v->u.s.len);
            assert(b->length && *b->length == v->u.s.len);
            break;
        default:
            assert(0);
        }
    }
    evdb__free(s.pbind);
    evdb__free(s.plen);
    evdb__free(s.pbool);
    evdb__free(s.pnum);
    mysql_stmt_close(s.stmt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    evdb_value *copy;
    size_t n;
    void *block = values_from(data, size, &copy, &n);
    if (n == 0) {
        /* The driver runs parameterless queries over the text protocol:
         * bind_params never sees them. */
        free(block);
        return 0;
    }
    evdb__query q;
    memset(&q, 0, sizeof q);
    q.sql = "SELECT 1";
    q.sql_len = 8;
    q.params = n ? copy : NULL;
    q.nparams = n;
    check_mariadb(&q);
    free(block);
    return 0;
}
