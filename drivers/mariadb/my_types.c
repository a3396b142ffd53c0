/*
 * MariaDB's types as evdb's, both ways: what evdb type and name a result
 * column gets, how a binary-protocol date or time (MYSQL_TIME) is written
 * as the canonical text the core's getters read (docs/types.md), and which
 * parameter values MariaDB can take and as what.
 *
 * Columns. The server describes a column by its protocol type, flags and
 * character set; with MariaDB's extended metadata (10.5+, which
 * Connector/C 3.3 asks for by itself) also by a data type name ("uuid",
 * "inet6") and a format name ("json": a JSON column is a LONGTEXT with a
 * JSON_VALID check, and its protocol type says only BLOB). ENUM and SET
 * columns arrive as strings with ENUM_FLAG / SET_FLAG.
 *
 * Dates and times. The text protocol sends DATE as YYYY-MM-DD, DATETIME
 * and TIMESTAMP as YYYY-MM-DD HH:MM:SS with as many decimals as the
 * column declares, TIME as a signed duration [-]H..HHH:MM:SS with the same
 * decimals, and zero dates as they are stored ("0000-00-00"). Prepared
 * statements get the same values as MYSQL_TIME structures, which are
 * written here into exactly those texts, so a cell reads the same through
 * either protocol: the column's decimals (0 to 6) give the fraction's
 * digits, and a column that declares none (an expression whose precision
 * the server does not fix) gets six digits when the fraction is not zero
 * and none otherwise. A zero or partly zero date stays the zero text
 * ("0000-00-00 00:00:00"), for which the getters report EVDB_EZERODATE.
 *
 * Parameters. MariaDB has no arrays, no time with a time zone, no
 * intervals beyond a TIME duration, no infinite dates and no decimal NaN
 * or infinities; evdb__my_params_refuse turns those away before anything
 * is sent, with a message naming the parameter. Dates and times travel as
 * MYSQL_TIME (no text round trip); a timestamptz is sent as its UTC wall
 * clock, since DATETIME has no zone (and a TIMESTAMP column converts what
 * it is given from the session's time zone: docs/mariadb.md says so).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "my_internal.h"

/* The character set number of binary strings (BINARY, VARBINARY, BLOB). */
#define BINARY_CHARSET_NR 63
/* Decimals a temporal column may declare; more means "not fixed". */
#define TIME_DECIMALS_MAX 6
#define USECS_PER_SEC INT64_C(1000000)
#define SECS_PER_MIN 60
#define SECS_PER_HOUR 3600
/* MariaDB TIME's range: -838:59:59.999999 to 838:59:59.999999. */
#define TIME_HOURS_MAX 838
#define TIME_US_MAX                                                                                \
    ((INT64_C(838) * SECS_PER_HOUR + 59 * SECS_PER_MIN + 59) * USECS_PER_SEC + 999999)
/* The years MYSQL_TIME and MariaDB's DATE / DATETIME hold. */
#define YEAR_MIN 0
#define YEAR_MAX 9999

/* Whether f's extended metadata of kind k names want (in any case). */
static bool field_attr(const MYSQL_FIELD *f, enum mariadb_field_attr_t k, const char *want)
{
    MARIADB_CONST_STRING a = {0};
    if (mariadb_field_attr(&a, f, k) || !a.str)
        return false;
    size_t n = strlen(want);
    return a.length == n && strncasecmp(a.str, want, n) == 0;
}

/* A string column's evdb type: ENUM, SET, JSON, UUID, or text/bytes. */
static evdb_type string_type(const MYSQL_FIELD *f)
{
    if (f->flags & ENUM_FLAG)
        return EVDB_TYPE_ENUM;
    if (f->flags & SET_FLAG)
        return EVDB_TYPE_TEXT; /* a comma-separated list of the members set */
    if (f->charsetnr == BINARY_CHARSET_NR)
        return EVDB_TYPE_BYTES;
    /* Only strings in a character set carry these (a JSON column, a UUID
     * column, JSON_OBJECT()): the binary ones were decided above. */
    if (field_attr(f, MARIADB_FIELD_ATTR_FORMAT_NAME, "json"))
        return EVDB_TYPE_JSON;
    if (field_attr(f, MARIADB_FIELD_ATTR_DATA_TYPE_NAME, "uuid"))
        return EVDB_TYPE_UUID;
    return EVDB_TYPE_TEXT;
}

evdb_type evdb__my_coltype(const MYSQL_FIELD *f)
{
    if (evdb__my_string_type(f->type))
        return string_type(f);
    switch (f->type) {
    case MYSQL_TYPE_TINY: /* TINYINT(1) too: it is a number, bool getters accept it */
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG: /* UNSIGNED too: evdb_result_uint64 reads it whole */
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_YEAR:
        return EVDB_TYPE_INT;
    case MYSQL_TYPE_FLOAT:
    case MYSQL_TYPE_DOUBLE:
        return EVDB_TYPE_DOUBLE;
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
        return EVDB_TYPE_NUMERIC;
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
        return EVDB_TYPE_DATE;
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_TIME2:
        return EVDB_TYPE_TIME;
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_DATETIME2:
    case MYSQL_TYPE_TIMESTAMP:
    case MYSQL_TYPE_TIMESTAMP2:
        /* Wall-clock time: a TIMESTAMP is shown in the session's zone
         * and carries none. */
        return EVDB_TYPE_TIMESTAMP;
    case MYSQL_TYPE_BIT:
        return EVDB_TYPE_BITS;
    case MYSQL_TYPE_NULL:
        return EVDB_TYPE_NULL;
    case MYSQL_TYPE_JSON: /* MySQL's; MariaDB says it in the metadata */
        return EVDB_TYPE_JSON;
    case MYSQL_TYPE_ENUM:
        return EVDB_TYPE_ENUM;
    case MYSQL_TYPE_SET:
        return EVDB_TYPE_TEXT;
    case MYSQL_TYPE_GEOMETRY:
        return EVDB_TYPE_BYTES;
    default:
        return EVDB_TYPE_OTHER;
    }
}

/* An integer type's name, with UNSIGNED where the column says so. */
static const char *int_name(const MYSQL_FIELD *f)
{
    static const char *const names[][2] = {
        {"TINYINT", "TINYINT UNSIGNED"},     {"SMALLINT", "SMALLINT UNSIGNED"},
        {"MEDIUMINT", "MEDIUMINT UNSIGNED"}, {"INT", "INT UNSIGNED"},
        {"BIGINT", "BIGINT UNSIGNED"},
    };
    unsigned u = (f->flags & UNSIGNED_FLAG) ? 1 : 0;
    switch (f->type) {
    case MYSQL_TYPE_TINY:
        return names[0][u];
    case MYSQL_TYPE_SHORT:
        return names[1][u];
    case MYSQL_TYPE_INT24:
        return names[2][u];
    case MYSQL_TYPE_LONG:
        return names[3][u];
    default:
        return names[4][u];
    }
}

/* A string type's name (the server's spelling of the SQL type). */
static const char *string_name(const MYSQL_FIELD *f)
{
    bool bin = f->charsetnr == BINARY_CHARSET_NR;
    if (f->flags & ENUM_FLAG)
        return "ENUM";
    if (f->flags & SET_FLAG)
        return "SET";
    if (!bin) {
        if (field_attr(f, MARIADB_FIELD_ATTR_FORMAT_NAME, "json"))
            return "JSON";
        if (field_attr(f, MARIADB_FIELD_ATTR_DATA_TYPE_NAME, "uuid"))
            return "UUID";
        if (field_attr(f, MARIADB_FIELD_ATTR_DATA_TYPE_NAME, "inet6"))
            return "INET6";
        if (field_attr(f, MARIADB_FIELD_ATTR_DATA_TYPE_NAME, "inet4"))
            return "INET4";
    }
    switch (f->type) {
    case MYSQL_TYPE_STRING:
        return bin ? "BINARY" : "CHAR";
    case MYSQL_TYPE_VAR_STRING:
    case MYSQL_TYPE_VARCHAR:
        return bin ? "VARBINARY" : "VARCHAR";
    default: /* the BLOB types: the server sends every size as BLOB */
        return bin ? "BLOB" : "TEXT";
    }
}

const char *evdb__my_typename(const MYSQL_FIELD *f)
{
    if (evdb__my_string_type(f->type))
        return string_name(f);
    switch (f->type) {
    case MYSQL_TYPE_TINY:
    case MYSQL_TYPE_SHORT:
    case MYSQL_TYPE_INT24:
    case MYSQL_TYPE_LONG:
    case MYSQL_TYPE_LONGLONG:
        return int_name(f);
    case MYSQL_TYPE_YEAR:
        return "YEAR";
    case MYSQL_TYPE_FLOAT:
        return "FLOAT";
    case MYSQL_TYPE_DOUBLE:
        return "DOUBLE";
    case MYSQL_TYPE_DECIMAL:
    case MYSQL_TYPE_NEWDECIMAL:
        return "DECIMAL";
    case MYSQL_TYPE_DATE:
    case MYSQL_TYPE_NEWDATE:
        return "DATE";
    case MYSQL_TYPE_TIME:
    case MYSQL_TYPE_TIME2:
        return "TIME";
    case MYSQL_TYPE_DATETIME:
    case MYSQL_TYPE_DATETIME2:
        return "DATETIME";
    case MYSQL_TYPE_TIMESTAMP:
    case MYSQL_TYPE_TIMESTAMP2:
        return "TIMESTAMP";
    case MYSQL_TYPE_BIT:
        return "BIT"; /* the core reads these cells as big-endian bytes */
    case MYSQL_TYPE_NULL:
        return "NULL";
    case MYSQL_TYPE_JSON:
        return "JSON";
    case MYSQL_TYPE_ENUM:
        return "ENUM";
    case MYSQL_TYPE_SET:
        return "SET";
    case MYSQL_TYPE_GEOMETRY:
        return "GEOMETRY";
    default:
        return "";
    }
}

/* v in decimal, at least width digits (zero-padded), at out; returns the
 * length. v is a MYSQL_TIME field or a sum of them: below INT64_MAX. */
static size_t put_num(char *out, uint64_t v, size_t width)
{
    char digits[EVDB__INT_TEXT_MAX];
    size_t n = evdb__int_text((int64_t)v, digits);
    size_t pad = n < width ? width - n : 0;
    memset(out, '0', pad);
    memcpy(out + pad, digits, n);
    return pad + n;
}

/* ".ffffff" cut to the digits the column shows (see the head comment). */
static size_t put_fraction(char *out, unsigned long us, unsigned decimals)
{
    if (decimals > TIME_DECIMALS_MAX)
        decimals = us ? TIME_DECIMALS_MAX : 0;
    if (!decimals)
        return 0;
    char digits[TIME_DECIMALS_MAX];
    put_num(digits, us % (unsigned long)USECS_PER_SEC, TIME_DECIMALS_MAX);
    out[0] = '.';
    memcpy(out + 1, digits, decimals);
    return 1 + decimals;
}

/* "HH:MM:SS" with hours of at least two digits. */
static size_t put_clock(char *out, uint64_t hours, unsigned minute, unsigned second)
{
    size_t n = put_num(out, hours, 2);
    out[n++] = ':';
    n += put_num(out + n, minute, 2);
    out[n++] = ':';
    n += put_num(out + n, second, 2);
    return n;
}

size_t evdb__my_time_text(const MYSQL_TIME *t, enum enum_field_types type, unsigned decimals,
                          char *out)
{
    size_t n = 0;
    if (type == MYSQL_TYPE_TIME || type == MYSQL_TYPE_TIME2) {
        /* A duration: days (which Connector/C may or may not have folded
         * into the hours already) count as 24 hours each. */
        uint64_t hours = (uint64_t)t->day * 24 + t->hour;
        if (t->neg)
            out[n++] = '-';
        n += put_clock(out + n, hours, t->minute, t->second);
        return n + put_fraction(out + n, t->second_part, decimals);
    }
    n += put_num(out, t->year, 4);
    out[n++] = '-';
    n += put_num(out + n, t->month, 2);
    out[n++] = '-';
    n += put_num(out + n, t->day, 2);
    if (type == MYSQL_TYPE_DATE || type == MYSQL_TYPE_NEWDATE)
        return n;
    out[n++] = ' ';
    n += put_clock(out + n, t->hour, t->minute, t->second);
    return n + put_fraction(out + n, t->second_part, decimals);
}

/* Little-endian integer of n bytes. */
static uint64_t le_bytes(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

bool evdb__my_time_wire(const unsigned char *p, size_t len, enum enum_field_types type,
                        MYSQL_TIME *t)
{
    memset(t, 0, sizeof *t);
    if (type == MYSQL_TYPE_TIME || type == MYSQL_TYPE_TIME2) {
        /* 0, 8 or 12 bytes: sign, days, hour, minute, second, [us]. */
        t->time_type = MYSQL_TIMESTAMP_TIME;
        if (len != 0 && len != 8 && len != 12)
            return false;
        if (len) {
            t->neg = p[0] != 0;
            t->day = (unsigned)le_bytes(p + 1, 4);
            t->hour = p[5];
            t->minute = p[6];
            t->second = p[7];
        }
        if (len == 12)
            t->second_part = (unsigned long)le_bytes(p + 8, 4);
        return true;
    }
    /* 0, 4, 7 or 11 bytes: year, month, day, [hour, minute, second],
     * [us]. Nothing at all is the zero date. */
    t->time_type = MYSQL_TIMESTAMP_DATETIME;
    if (len != 0 && len != 4 && len != 7 && len != 11)
        return false;
    if (len >= 4) {
        t->year = (unsigned)le_bytes(p, 2);
        t->month = p[2];
        t->day = p[3];
    }
    if (len >= 7) {
        t->hour = p[4];
        t->minute = p[5];
        t->second = p[6];
    }
    if (len == 11)
        t->second_part = (unsigned long)le_bytes(p + 7, 4);
    return true;
}

/* ---- parameters ---- */

/* Floor division of a by b > 0. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* A timestamp (us since 1970-01-01 00:00:00 of its own clock) as a
 * MYSQL_TIME; false when its year is outside 0..9999. */
static bool timestamp_fields(int64_t us, MYSQL_TIME *t)
{
    /* The infinities were refused; INT64_MIN + 1 still divides. */
    int64_t days = floor_div(us, EVDB_USECS_PER_DAY);
    int64_t rem = us - days * EVDB_USECS_PER_DAY;
    if (days < INT32_MIN || days > INT32_MAX)
        return false;
    int32_t year;
    int month, day;
    evdb_date_to_ymd((int32_t)days, &year, &month, &day);
    if (year < YEAR_MIN || year > YEAR_MAX)
        return false;
    memset(t, 0, sizeof *t);
    t->year = (unsigned)year;
    t->month = (unsigned)month;
    t->day = (unsigned)day;
    int64_t secs = rem / USECS_PER_SEC;
    t->hour = (unsigned)(secs / SECS_PER_HOUR);
    t->minute = (unsigned)(secs / SECS_PER_MIN % SECS_PER_MIN);
    t->second = (unsigned)(secs % SECS_PER_MIN);
    t->second_part = (unsigned long)(rem % USECS_PER_SEC);
    t->time_type = MYSQL_TIMESTAMP_DATETIME;
    return true;
}

/* A signed duration as a TIME; false beyond MariaDB's +-838:59:59.999999. */
static bool duration_fields(int64_t us, MYSQL_TIME *t)
{
    if (us < -TIME_US_MAX || us > TIME_US_MAX)
        return false;
    memset(t, 0, sizeof *t);
    t->neg = us < 0;
    uint64_t a = us < 0 ? (uint64_t)0 - (uint64_t)us : (uint64_t)us;
    uint64_t secs = a / USECS_PER_SEC;
    /* Connector/C sends day and hour as they are, the hour as one byte:
     * the protocol wants whole days apart. */
    uint64_t hours = secs / SECS_PER_HOUR;
    t->day = (unsigned)(hours / 24);
    t->hour = (unsigned)(hours % 24);
    t->minute = (unsigned)(secs / SECS_PER_MIN % SECS_PER_MIN);
    t->second = (unsigned)(secs % SECS_PER_MIN);
    t->second_part = (unsigned long)(a % USECS_PER_SEC);
    t->time_type = MYSQL_TIMESTAMP_TIME;
    return true;
}

bool evdb__my_param_time(const evdb_value *v, MYSQL_TIME *t)
{
    switch (v->type) {
    case EVDB_TYPE_DATE:
        /* Far dates first: their microseconds overflow int64 (and they
         * are outside 0000-9999 anyway). */
        if (v->u.date == EVDB_DATE_INFINITY || v->u.date == EVDB_DATE_NEG_INFINITY ||
            v->u.date > INT64_MAX / EVDB_USECS_PER_DAY ||
            v->u.date < INT64_MIN / EVDB_USECS_PER_DAY ||
            !timestamp_fields((int64_t)v->u.date * EVDB_USECS_PER_DAY, t))
            return false;
        t->time_type = MYSQL_TIMESTAMP_DATE;
        return true;
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ: /* the UTC wall clock */
        if (v->u.t.us == EVDB_TIMESTAMP_INFINITY || v->u.t.us == EVDB_TIMESTAMP_NEG_INFINITY)
            return false;
        return timestamp_fields(v->u.t.us, t);
    case EVDB_TYPE_TIME:
        return duration_fields(v->u.t.us, t);
    case EVDB_TYPE_INTERVAL:
        return !v->u.iv.months && !v->u.iv.days && duration_fields(v->u.iv.us, t);
    default:
        return false;
    }
}

void evdb__my_uuid_text(const uint8_t b[16], char out[EVDB__MY_UUID_TEXT + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[n++] = '-';
        out[n++] = hex[b[i] >> 4];
        out[n++] = hex[b[i] & 0xf];
    }
    out[n] = '\0';
}

/* Why MariaDB cannot take v, or NULL when it can; *code says how it
 * fails: EVDB_ENOTSUP for what MariaDB cannot represent at all,
 * EVDB_EINVAL for a value outside the range of the type it goes as. */
static const char *unfit(const evdb_value *v, int *code)
{
    MYSQL_TIME t;
    *code = EVDB_ENOTSUP;
    switch (v->type) {
    case EVDB_TYPE_NULL:
    case EVDB_TYPE_BOOL:
    case EVDB_TYPE_INT:
    case EVDB_TYPE_UINT:
    case EVDB_TYPE_DOUBLE:
    case EVDB_TYPE_TEXT:
    case EVDB_TYPE_BYTES:
    case EVDB_TYPE_JSON:
    case EVDB_TYPE_UUID:
        return NULL;
    case EVDB_TYPE_NUMERIC: {
        /* The core checked the syntax; MariaDB's DECIMAL has no NaN or
         * infinities, and would take "NaN" as 0 with a warning. */
        const char *s = v->u.s.ptr;
        size_t n = v->u.s.len;
        if (n && (s[0] == '+' || s[0] == '-')) {
            s++;
            n--;
        }
        if (n && (s[0] == 'N' || s[0] == 'n' || s[0] == 'I' || s[0] == 'i'))
            return "MariaDB's DECIMAL has no NaN or infinities";
        return NULL;
    }
    case EVDB_TYPE_DATE:
        if (v->u.date == EVDB_DATE_INFINITY || v->u.date == EVDB_DATE_NEG_INFINITY)
            return "MariaDB has no infinite dates";
        *code = EVDB_EINVAL;
        return evdb__my_param_time(v, &t) ? NULL
                                          : "the date is outside the years 0000 to 9999 that "
                                            "MariaDB's DATE holds";
    case EVDB_TYPE_TIMESTAMP:
    case EVDB_TYPE_TIMESTAMPTZ:
        if (v->u.t.us == EVDB_TIMESTAMP_INFINITY || v->u.t.us == EVDB_TIMESTAMP_NEG_INFINITY)
            return "MariaDB has no infinite timestamps";
        *code = EVDB_EINVAL;
        return evdb__my_param_time(v, &t) ? NULL
                                          : "the timestamp is outside the years 0000 to 9999 "
                                            "that MariaDB's DATETIME holds";
    case EVDB_TYPE_TIME:
        *code = EVDB_EINVAL;
        return evdb__my_param_time(v, &t) ? NULL
                                          : "the time is outside MariaDB's TIME range "
                                            "(-838:59:59.999999 to 838:59:59.999999)";
    case EVDB_TYPE_INTERVAL:
        if (v->u.iv.months || v->u.iv.days)
            return "MariaDB has no intervals of months or days; only a duration in "
                   "microseconds (months and days 0) goes, as a TIME";
        *code = EVDB_EINVAL;
        return evdb__my_param_time(v, &t) ? NULL
                                          : "the interval is outside MariaDB's TIME range "
                                            "(-838:59:59.999999 to 838:59:59.999999)";
    case EVDB_TYPE_TIMETZ:
        return "MariaDB has no time with a time zone (pass the time of day with evdb_time)";
    case EVDB_TYPE_ARRAY:
        return "MariaDB has no arrays (use IN (?, ?, ...) with one parameter per element, or "
               "JSON_TABLE over a JSON parameter)";
    default:
        *code = EVDB_EINVAL;
        return "MariaDB takes no parameter of this type";
    }
}

_Static_assert(EVDB_TYPE_NULL == 0 && EVDB_TYPE_BOOL == 1 && EVDB_TYPE_INT == 2 &&
                   EVDB_TYPE_DOUBLE == 3 && EVDB_TYPE_TEXT == 4 && EVDB_TYPE_BYTES == 5,
               "the types every backend takes are 0 to 5");

/* Checks one statement's parameters; 0 or the failure set in err. */
static int refuse_params(const evdb_value *params, size_t n, size_t stmt, evdb_error *err)
{
    for (size_t i = 0; i < n; i++) {
        int code;
        const char *why = unfit(&params[i], &code);
        if (!why)
            continue;
        char msg[EVDB__MY_MSG_MAX];
        if (stmt)
            snprintf(msg, sizeof msg, "statement %zu, parameter %zu: %s", stmt, i + 1, why);
        else
            snprintf(msg, sizeof msg, "parameter %zu: %s", i + 1, why);
        evdb__error_set(err, code, 0, NULL, "%s", msg);
        return code;
    }
    return 0;
}

int evdb__my_params_refuse(const evdb__query *q, evdb_error *err)
{
    if (!q->nbatch) {
        /* Every query passes here: the types that need no look (NULL,
         * bool, int, double, text, bytes: 0 to 5) skip the call. */
        size_t i = 0;
        while (i < q->nparams && q->params[i].type <= EVDB_TYPE_BYTES)
            i++;
        return i == q->nparams ? 0 : refuse_params(q->params, q->nparams, 0, err);
    }
    for (size_t k = 0; k < q->nbatch; k++) {
        int rc = refuse_params(q->batch[k].params, q->batch[k].nparams, k + 1, err);
        if (rc)
            return rc;
    }
    return 0;
}
