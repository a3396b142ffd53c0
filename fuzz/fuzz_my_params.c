/*
 * Fuzz target: MariaDB parameter binding. Arbitrary bytes become typed
 * values of every column type (values.h, values_from_typed), refused or
 * not by the driver's send-time check (evdb__my_params_refuse, my_types.c)
 * and, when taken, bound by the driver's bind_params
 * (drivers/mariadb/my_stmt.c, a static function: this file compiles
 * my_stmt.c itself, and the fuzz build leaves it out of the library this
 * target links). The statement is not prepared (no server), so
 * Connector/C's mysql_stmt_bind_param refuses at the end, after the binds
 * were filled in, which is what is checked: buffer types, buffers
 * pointing at the values, lengths, signedness, the UUID text, and the
 * MYSQL_TIME fields read back as the value they came from.
 */
#include "../drivers/mariadb/my_stmt.c"

#include "internal.h"
#include "types_text.h"
#include "values.h"

#define FZ_USECS_PER_SEC INT64_C(1000000)
#define FZ_USECS_PER_DAY (INT64_C(86400) * FZ_USECS_PER_SEC)

/* A MYSQL_TIME of a date or a timestamp read back as microseconds since
 * 1970-01-01 (the wall clock). */
static int64_t fz_time_since_epoch(const MYSQL_TIME *t)
{
    assert(t->month >= 1 && t->month <= 12 && t->day >= 1 && t->day <= 31);
    assert(t->hour < 24 && t->minute < 60 && t->second < 60 && t->second_part < 1000000);
    assert(!t->neg && t->year <= 9999);
    int64_t days = evdb__days_from_civil((int64_t)t->year, t->month, t->day);
    return days * FZ_USECS_PER_DAY +
           ((int64_t)t->hour * 3600 + t->minute * 60 + t->second) * FZ_USECS_PER_SEC +
           (int64_t)t->second_part;
}

/* A MYSQL_TIME of a TIME (a signed duration) read back as microseconds. */
static int64_t fz_duration(const MYSQL_TIME *t)
{
    /* Whole days apart from the hours (the protocol's shape). */
    assert(t->time_type == MYSQL_TIMESTAMP_TIME && !t->year && !t->month);
    int64_t hours = (int64_t)t->day * 24 + t->hour;
    assert(t->hour < 24 && hours <= 838);
    assert(t->minute < 60 && t->second < 60 && t->second_part < 1000000);
    int64_t us =
        (hours * 3600 + t->minute * 60 + t->second) * FZ_USECS_PER_SEC + (int64_t)t->second_part;
    return t->neg ? -us : us;
}

/* The bind of a date or time value: its MYSQL_TIME says the same. */
static void check_time(const evdb_value *v, const MYSQL_BIND *b)
{
    const MYSQL_TIME *t = b->buffer;
    assert(b->buffer_length == sizeof *t);
    switch (v->type) {
    case EVDB_TYPE_DATE:
        assert(b->buffer_type == MYSQL_TYPE_DATE && t->time_type == MYSQL_TIMESTAMP_DATE);
        assert(fz_time_since_epoch(t) == (int64_t)v->u.date * FZ_USECS_PER_DAY);
        break;
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ:
        assert(b->buffer_type == MYSQL_TYPE_DATETIME && t->time_type == MYSQL_TIMESTAMP_DATETIME);
        assert(fz_time_since_epoch(t) == v->u.t.us);
        break;
    case EVDB_TYPE_TIME:
        assert(b->buffer_type == MYSQL_TYPE_TIME);
        assert(fz_duration(t) == v->u.t.us);
        break;
    case EVDB_TYPE_INTERVAL:
        assert(b->buffer_type == MYSQL_TYPE_TIME);
        assert(!v->u.iv.months && !v->u.iv.days && fz_duration(t) == v->u.iv.us);
        break;
    default:
        assert(0);
    }
}

/* The bind of a text-like value points at it. */
static void check_string(const evdb_value *v, const MYSQL_BIND *b, enum enum_field_types want)
{
    assert(b->buffer_type == want);
    assert(b->buffer_length == v->u.s.len && b->length && *b->length == v->u.s.len);
    assert(v->u.s.ptr ? b->buffer == v->u.s.ptr : b->buffer_length == 0);
}

/* The bind of a UUID: its 36-character text in the statement's storage. */
static void check_uuid(const evdb_value *v, const MYSQL_BIND *b)
{
    static const char hex[] = "0123456789abcdef";
    assert(b->buffer_type == MYSQL_TYPE_STRING && b->buffer_length == EVDB__MY_UUID_TEXT);
    assert(b->length && *b->length == EVDB__MY_UUID_TEXT);
    const char *s = b->buffer;
    size_t k = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            assert(s[k++] == '-');
        assert(s[k++] == hex[v->u.uuid[i] >> 4]);
        assert(s[k++] == hex[v->u.uuid[i] & 0xf]);
    }
    assert(s[k] == '\0');
}

/* What bind_params made of value v in b. */
static void check_bind(const evdb_value *v, const MYSQL_BIND *b)
{
    assert(!b->is_unsigned == (v->type != EVDB_TYPE_UINT));
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
    case EVDB_TYPE_UINT:
        assert(b->buffer_type == MYSQL_TYPE_LONGLONG);
        assert(*(const uint64_t *)b->buffer == v->u.ui);
        break;
    case EVDB_TYPE_DOUBLE:
        assert(b->buffer_type == MYSQL_TYPE_DOUBLE);
        assert(memcmp(b->buffer, &v->u.d, sizeof(double)) == 0);
        break;
    case EVDB_TYPE_TEXT:
    case EVDB_TYPE_JSON:
        check_string(v, b, MYSQL_TYPE_STRING);
        break;
    case EVDB_TYPE_BYTES:
        check_string(v, b, MYSQL_TYPE_BLOB);
        break;
    case EVDB_TYPE_NUMERIC:
        check_string(v, b, MYSQL_TYPE_NEWDECIMAL);
        break;
    case EVDB_TYPE_UUID:
        check_uuid(v, b);
        break;
    default:
        check_time(v, b);
        break;
    }
}

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
    /* The driver refused nothing the check let through. */
    assert(dc.out.failed);
    assert(strstr(dc.out.msg, "placeholders") == NULL &&
           strstr(dc.out.msg, "unsupported type") == NULL);
    for (unsigned i = 0; i < s.nparams; i++)
        check_bind(&q->params[i], &s.pbind[i]);
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
    void *block = values_from_typed(data, size, &copy, &n, true);
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
    /* What the driver refuses at send never reaches bind_params: arrays,
     * times with a zone, infinities, dates outside 0000-9999, intervals
     * of months or days, NaN decimals. A refusal says which parameter. */
    evdb_error err;
    memset(&err, 0, sizeof err);
    int rc = evdb__my_params_refuse(&q, &err);
    if (rc) {
        assert(rc == EVDB_ENOTSUP || rc == EVDB_EINVAL);
        assert(strncmp(evdb_error_message(&err), "parameter ", 10) == 0);
    } else {
        check_mariadb(&q);
    }
    free(block);
    return 0;
}
