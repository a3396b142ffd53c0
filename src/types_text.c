/*
 * Strict parsers of the servers' canonical text forms (dates, times,
 * timestamps, intervals, UUIDs, bit strings, decimals) and the calendar
 * arithmetic under them. Every parser reads exactly len bytes (no NUL
 * needed), takes no locale into account, never guesses: text that is not
 * exactly the expected form is EVDB_EFORMAT, a well-formed value that the
 * output cannot hold is EVDB_ERANGE, a MariaDB zero date EVDB_EZERODATE.
 * Outputs are written only on success.
 *
 * Calendar: proleptic Gregorian with astronomical years (0 is 1 BC), days
 * counted from 1970-01-01 by Howard Hinnant's days_from_civil /
 * civil_from_days (http://howardhinnant.github.io/date_algorithms.html),
 * in 64-bit arithmetic so that every year of both backends' ranges is
 * exact.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "types_text.h"

#define US_PER_SEC INT64_C(1000000)
#define SECS_PER_DAY 86400
/* Years evdb_date_from_ymd accepts: a little beyond PostgreSQL's date
 * range (4714-11-24 BC to 5874897 AD), so every int32 day count but the
 * infinities is reachable and nothing outside overflows. */
#define YEAR_MIN (-5880000)
#define YEAR_MAX 5880000
/* Largest MariaDB TIME hour (838:59:59). */
#define TIME_HOURS_MAX 838
/* Offsets are shown as +HH[:MM[:SS]]; no zone is 16 hours or more away. */
#define OFFSET_HOURS_MAX 15

int64_t evdb__days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);                       /* [0, 399] */
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           /* [0, 146096] */
    return era * 146097 + (int64_t)doe - 719468;
}

void evdb__civil_from_days(int64_t z, int64_t *year, unsigned *month, unsigned *day)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    const int64_t y = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* [0, 365] */
    const unsigned mp = (5 * doy + 2) / 153;                      /* [0, 11] */
    *day = doy - (153 * mp + 2) / 5 + 1;
    *month = mp < 10 ? mp + 3 : mp - 9;
    *year = y + (*month <= 2);
}

static bool is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

unsigned evdb__days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

int evdb_date_from_ymd(int32_t year, int month, int day, int32_t *days)
{
    if (year < YEAR_MIN || year > YEAR_MAX || month < 1 || month > 12 || day < 1 ||
        (unsigned)day > evdb__days_in_month(year, (unsigned)month))
        return EVDB_ERANGE;
    int64_t d = evdb__days_from_civil(year, (unsigned)month, (unsigned)day);
    /* The two extremes are the infinities. */
    if (d <= INT32_MIN || d >= INT32_MAX)
        return EVDB_ERANGE;
    if (days)
        *days = (int32_t)d;
    return 0;
}

void evdb_date_to_ymd(int32_t days, int32_t *year, int *month, int *day)
{
    int64_t y;
    unsigned m, d;
    evdb__civil_from_days(days, &y, &m, &d);
    if (year)
        *year = (int32_t)y;
    if (month)
        *month = (int)m;
    if (day)
        *day = (int)d;
}

/* ---- a cursor over len bytes ---- */

typedef struct scan {
    const char *p, *end;
} scan;

static bool at_end(const scan *s)
{
    return s->p == s->end;
}

static bool eat(scan *s, char c)
{
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

static bool eat_str(scan *s, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return false;
    s->p += n;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Between min and max decimal digits as a number (max <= 18, so it fits);
 * false when fewer digits follow, or more than max. */
static bool digits(scan *s, int min, int max, int64_t *out)
{
    int64_t v = 0;
    int n = 0;
    while (s->p < s->end && is_digit(*s->p)) {
        if (n == max)
            return false;
        v = v * 10 + (*s->p++ - '0');
        n++;
    }
    if (n < min)
        return false;
    *out = v;
    return true;
}

/* ".f{1,6}" if present, as microseconds. */
static bool fraction(scan *s, int64_t *us)
{
    *us = 0;
    if (!eat(s, '.'))
        return true;
    int n = 0;
    int64_t v = 0;
    while (s->p < s->end && is_digit(*s->p)) {
        if (n == 6)
            return false;
        v = v * 10 + (*s->p++ - '0');
        n++;
    }
    if (n == 0)
        return false;
    for (; n < 6; n++)
        v *= 10;
    *us = v;
    return true;
}

/* ":MM:SS[.f]" after the hours, as microseconds (without the hours). */
static bool min_sec(scan *s, int64_t *us)
{
    int64_t mi, se, f;
    if (!eat(s, ':') || !digits(s, 2, 2, &mi) || mi > 59 || !eat(s, ':') || !digits(s, 2, 2, &se) ||
        se > 59 || !fraction(s, &f))
        return false;
    *us = (mi * 60 + se) * US_PER_SEC + f;
    return true;
}

/* A time of day "HH:MM:SS[.f]", 00:00:00 to 24:00:00. */
static bool time_of_day(scan *s, int64_t *us)
{
    int64_t h, rest;
    if (!digits(s, 2, 2, &h) || h > 24 || !min_sec(s, &rest))
        return false;
    if (h == 24 && rest != 0)
        return false;
    *us = h * 3600 * US_PER_SEC + rest;
    return true;
}

/* An offset "±HH[:MM[:SS]]" in seconds east of UTC. */
static bool offset(scan *s, int32_t *out)
{
    int sign;
    if (eat(s, '+'))
        sign = 1;
    else if (eat(s, '-'))
        sign = -1;
    else
        return false;
    int64_t h, m = 0, sec = 0;
    if (!digits(s, 2, 2, &h) || h > OFFSET_HOURS_MAX)
        return false;
    if (eat(s, ':')) {
        if (!digits(s, 2, 2, &m) || m > 59)
            return false;
        if (eat(s, ':') && (!digits(s, 2, 2, &sec) || sec > 59))
            return false;
    }
    *out = (int32_t)(sign * (h * 3600 + m * 60 + sec));
    return true;
}

/* "YYYY-MM-DD": the calendar fields, not yet checked against the
 * calendar (a MariaDB zero date has zeros in them). */
static bool ymd(scan *s, int64_t *y, int64_t *m, int64_t *d)
{
    return digits(s, 4, 9, y) && eat(s, '-') && digits(s, 2, 2, m) && eat(s, '-') &&
           digits(s, 2, 2, d);
}

/* The day count of parsed calendar fields; bc: the " BC" suffix was
 * there (year 1 BC is astronomical 0). */
static int ymd_days(int64_t y, int64_t m, int64_t d, bool bc, int64_t *days)
{
    if (m == 0 || d == 0 || (y == 0 && !bc))
        return EVDB_EZERODATE;
    if (bc && y == 0)
        return EVDB_EFORMAT;
    if (bc)
        y = 1 - y;
    if (m > 12 || d > evdb__days_in_month(y, (unsigned)m))
        return EVDB_EFORMAT;
    *days = evdb__days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

static bool is_word(const char *s, size_t len, const char *w)
{
    return strlen(w) == len && memcmp(s, w, len) == 0;
}

int evdb__parse_date(const char *text, size_t len, int32_t *days)
{
    if (is_word(text, len, "infinity")) {
        *days = EVDB_DATE_INFINITY;
        return 0;
    }
    if (is_word(text, len, "-infinity")) {
        *days = EVDB_DATE_NEG_INFINITY;
        return 0;
    }
    scan s = {text, text + len};
    int64_t y, m, d, v;
    if (!ymd(&s, &y, &m, &d))
        return EVDB_EFORMAT;
    bool bc = eat_str(&s, " BC");
    if (!at_end(&s))
        return EVDB_EFORMAT;
    int rc = ymd_days(y, m, d, bc, &v);
    if (rc)
        return rc;
    if (v <= INT32_MIN || v >= INT32_MAX)
        return EVDB_ERANGE;
    *days = (int32_t)v;
    return 0;
}

int evdb__parse_time(const char *text, size_t len, int64_t *us)
{
    scan s = {text, text + len};
    bool neg = eat(&s, '-');
    int64_t h, rest;
    /* PostgreSQL: two hour digits up to 24; MariaDB TIME: a signed
     * duration of up to 838 hours. */
    if (!digits(&s, 2, 3, &h) || h > TIME_HOURS_MAX || !min_sec(&s, &rest) || !at_end(&s))
        return EVDB_EFORMAT;
    int64_t v = h * 3600 * US_PER_SEC + rest;
    *us = neg ? -v : v;
    return 0;
}

int evdb__parse_timetz(const char *text, size_t len, int64_t *us, int32_t *off)
{
    scan s = {text, text + len};
    int64_t t;
    int32_t o;
    if (!time_of_day(&s, &t) || !offset(&s, &o) || !at_end(&s))
        return EVDB_EFORMAT;
    *us = t;
    *off = o;
    return 0;
}

int evdb__parse_timestamp(const char *text, size_t len, bool with_tz, int64_t *us, int32_t *off)
{
    if (is_word(text, len, "infinity")) {
        *us = EVDB_TIMESTAMP_INFINITY;
        *off = 0;
        return 0;
    }
    if (is_word(text, len, "-infinity")) {
        *us = EVDB_TIMESTAMP_NEG_INFINITY;
        *off = 0;
        return 0;
    }
    scan s = {text, text + len};
    int64_t y, m, d, h, rest, days;
    int32_t o = 0;
    if (!ymd(&s, &y, &m, &d) || !eat(&s, ' ') || !digits(&s, 2, 2, &h) || h > 23 ||
        !min_sec(&s, &rest))
        return EVDB_EFORMAT;
    if (with_tz && !offset(&s, &o))
        return EVDB_EFORMAT;
    bool bc = eat_str(&s, " BC");
    if (!at_end(&s))
        return EVDB_EFORMAT;
    int rc = ymd_days(y, m, d, bc, &days);
    if (rc)
        return rc;
    /* days fits in 34 bits; the products below cannot overflow until the
     * last steps, which are checked. */
    int64_t secs = days * SECS_PER_DAY + h * 3600 - o, v;
    if (__builtin_mul_overflow(secs, US_PER_SEC, &v) || __builtin_add_overflow(v, rest, &v) ||
        v == EVDB_TIMESTAMP_INFINITY || v == EVDB_TIMESTAMP_NEG_INFINITY)
        return EVDB_ERANGE;
    *us = v;
    *off = o;
    return 0;
}

/* One "N unit" part of a postgres-style interval: 1 year 2 mons -3 days. */
static int interval_unit(const char *w, size_t n)
{
    static const char *const units[] = {"year", "years", "mon", "mons", "day", "days"};
    for (int i = 0; i < 6; i++)
        if (is_word(w, n, units[i]))
            return i / 2;
    return -1;
}

int evdb__parse_interval(const char *text, size_t len, evdb_interval *out)
{
    scan s = {text, text + len};
    int64_t months = 0, days = 0, us = 0;
    int last_unit = -1;
    bool any = false;
    while (!at_end(&s)) {
        if (any && !eat(&s, ' '))
            return EVDB_EFORMAT;
        any = true;
        int sign = 1;
        if (eat(&s, '-'))
            sign = -1;
        else
            eat(&s, '+');
        int64_t n;
        if (!digits(&s, 1, 18, &n))
            return EVDB_EFORMAT;
        if (s.p < s.end && *s.p == ':') {
            /* The time part, always last: [+-]H+:MM:SS[.f]. */
            int64_t rest;
            if (!min_sec(&s, &rest) || !at_end(&s))
                return EVDB_EFORMAT;
            int64_t v;
            if (n > INT64_MAX / 3600 / US_PER_SEC ||
                __builtin_add_overflow(n * 3600 * US_PER_SEC, rest, &v))
                return EVDB_ERANGE;
            us = sign * v;
            break;
        }
        if (!eat(&s, ' '))
            return EVDB_EFORMAT;
        const char *w = s.p;
        while (s.p < s.end && *s.p != ' ')
            s.p++;
        int unit = interval_unit(w, (size_t)(s.p - w));
        /* Units in PostgreSQL's order, each once. */
        if (unit <= last_unit)
            return EVDB_EFORMAT;
        last_unit = unit;
        n *= sign;
        if (unit == 0) {
            if (__builtin_mul_overflow(n, 12, &n) || __builtin_add_overflow(months, n, &months))
                return EVDB_ERANGE;
        } else if (unit == 1) {
            if (__builtin_add_overflow(months, n, &months))
                return EVDB_ERANGE;
        } else {
            days = n;
        }
    }
    if (!any)
        return EVDB_EFORMAT;
    if (months < INT32_MIN || months > INT32_MAX || days < INT32_MIN || days > INT32_MAX)
        return EVDB_ERANGE;
    out->months = (int32_t)months;
    out->days = (int32_t)days;
    out->us = us;
    return 0;
}

int evdb__parse_uuid(const char *text, size_t len, uint8_t out[16])
{
    if (len != 36)
        return EVDB_EFORMAT;
    uint8_t b[16];
    size_t o = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return EVDB_EFORMAT;
            i++;
            continue;
        }
        int hi = evdb__hexval((unsigned char)text[i]),
            lo = evdb__hexval((unsigned char)text[i + 1]);
        if (hi < 0 || lo < 0)
            return EVDB_EFORMAT;
        b[o++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    memcpy(out, b, 16);
    return 0;
}

void evdb__uuid_text(const uint8_t u[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

/* An optional sign and the digits to the end of the text, as a magnitude
 * of at most lim: 0, EVDB_EFORMAT (no digits, or anything else; checked
 * before the range), EVDB_ERANGE. */
static int parse_magnitude(const char *text, size_t len, uint64_t lim, bool *neg, uint64_t *out)
{
    scan s = {text, text + len};
    *neg = eat(&s, '-');
    if (!*neg)
        eat(&s, '+');
    if (at_end(&s))
        return EVDB_EFORMAT;
    uint64_t v = 0;
    bool over = false;
    /* Up to 19 digits cannot pass UINT64_MAX (nor, with the sign, the
     * int64 limits checked by the callers): no range check per digit. */
    if (s.end - s.p <= 19) {
        for (; !at_end(&s); s.p++) {
            unsigned dgt = (unsigned)(*s.p - '0');
            if (dgt > 9)
                return EVDB_EFORMAT;
            v = v * 10 + dgt;
        }
        if (v > lim)
            return EVDB_ERANGE;
        *out = v;
        return 0;
    }
    for (; !at_end(&s); s.p++) {
        if (!is_digit(*s.p))
            return EVDB_EFORMAT;
        unsigned dgt = (unsigned)(*s.p - '0');
        if (v > (lim - dgt) / 10)
            over = true;
        else
            v = v * 10 + dgt;
    }
    if (over)
        return EVDB_ERANGE;
    *out = v;
    return 0;
}

int evdb__parse_int64(const char *text, size_t len, int64_t *out)
{
    bool neg;
    uint64_t v;
    /* A negative number may reach INT64_MAX + 1, a positive one not. */
    int rc = parse_magnitude(text, len, (uint64_t)INT64_MAX + 1, &neg, &v);
    if (rc)
        return rc;
    if (!neg && v > (uint64_t)INT64_MAX)
        return EVDB_ERANGE;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int evdb__parse_uint64(const char *text, size_t len, uint64_t *out)
{
    bool neg;
    uint64_t v;
    int rc = parse_magnitude(text, len, UINT64_MAX, &neg, &v);
    if (rc)
        return rc;
    /* "-0" is zero; any other negative number is out of range. */
    if (neg && v)
        return EVDB_ERANGE;
    *out = v;
    return 0;
}

int evdb__parse_bit_digits(const char *text, size_t len, uint64_t *out)
{
    if (len > 64)
        return EVDB_ERANGE;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '0' && text[i] != '1')
            return EVDB_EFORMAT;
        v = v << 1 | (uint64_t)(text[i] - '0');
    }
    *out = v;
    return 0;
}

int evdb__parse_bit_bytes(const void *bytes, size_t len, uint64_t *out)
{
    const unsigned char *b = bytes;
    if (len > 8)
        return EVDB_ERANGE;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++)
        v = v << 8 | b[i];
    *out = v;
    return 0;
}

/* ---- the conversions of evdb_result_int/double/bool ---- */

int evdb__text_number_check(const char *s, size_t len)
{
    /* Embedded NUL or empty: not a number. */
    if (len == 0 || strlen(s) != len)
        return EVDB_ETYPE;
    return 0;
}

int evdb__text_bool(const char *s, size_t len, bool *out)
{
    int rc = evdb__text_number_check(s, len);
    if (rc)
        return rc;
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

__attribute__((noinline)) int evdb__text_double(const char *s, size_t len, double *out)
{
    int rc = evdb__text_number_check(s, len);
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

/* ---- decimals ---- */

/* A decimal's parts: an optional sign, then digits with at most one point
 * (at least one digit), nothing else. Special: 0, or 1 NaN, 2 Infinity,
 * 3 -Infinity. */
typedef struct decimal {
    bool neg;
    const char *int_p; /* integer digits, leading zeros skipped */
    size_t int_n;
    const char *frac_p; /* fraction digits, trailing zeros dropped */
    size_t frac_n;
    int special;
} decimal;

static int decimal_parse(const char *text, size_t len, decimal *d)
{
    memset(d, 0, sizeof *d);
    if (is_word(text, len, "NaN")) {
        d->special = 1;
        return 0;
    }
    if (is_word(text, len, "Infinity")) {
        d->special = 2;
        return 0;
    }
    if (is_word(text, len, "-Infinity")) {
        d->special = 3;
        return 0;
    }
    scan s = {text, text + len};
    d->neg = eat(&s, '-');
    if (!d->neg)
        eat(&s, '+');
    const char *start = s.p;
    while (s.p < s.end && is_digit(*s.p))
        s.p++;
    size_t nint = (size_t)(s.p - start);
    size_t nfrac = 0;
    const char *fstart = s.p;
    if (eat(&s, '.')) {
        fstart = s.p;
        while (s.p < s.end && is_digit(*s.p))
            s.p++;
        nfrac = (size_t)(s.p - fstart);
    }
    if (!at_end(&s) || nint + nfrac == 0)
        return EVDB_EFORMAT;
    while (nint && *start == '0') {
        start++;
        nint--;
    }
    while (nfrac && fstart[nfrac - 1] == '0')
        nfrac--;
    d->int_p = start;
    d->int_n = nint;
    d->frac_p = fstart;
    d->frac_n = nfrac;
    return 0;
}

int evdb_numeric_to_int64(const char *text, size_t len, int64_t *out)
{
    if (!text)
        return EVDB_EFORMAT;
    decimal d;
    if (decimal_parse(text, len, &d))
        return EVDB_EFORMAT;
    if (d.special)
        return EVDB_ERANGE;
    /* The integer digits alone: a range error outranks a fraction. */
    uint64_t lim = d.neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (size_t i = 0; i < d.int_n; i++) {
        unsigned dgt = (unsigned)(d.int_p[i] - '0');
        if (v > (lim - dgt) / 10)
            return EVDB_ERANGE;
        v = v * 10 + dgt;
    }
    if (d.frac_n)
        return EVDB_EPRECISION;
    if (out)
        *out = d.neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* Significant digits a double keeps exactly through a decimal round trip
 * (DBL_DIG). */
#define DOUBLE_DIGITS 15

int evdb_numeric_to_double(const char *text, size_t len, double *out)
{
    if (!text)
        return EVDB_EFORMAT;
    decimal d;
    if (decimal_parse(text, len, &d))
        return EVDB_EFORMAT;
    if (d.special) {
        if (out)
            *out = d.special == 1 ? NAN : d.special == 2 ? INFINITY : -INFINITY;
        return 0;
    }
    /* The significant digits as one integer and a power of ten, written
     * as "DDDDe-N" for strtod: no decimal point, so no locale is
     * involved. */
    char buf[DOUBLE_DIGITS + 32];
    const char *ip = d.int_p, *fp = d.frac_p;
    size_t in = d.int_n, fn = d.frac_n;
    int64_t exp = -(int64_t)fn;
    if (in == 0) {
        while (fn && *fp == '0') {
            fp++;
            fn--;
        }
    } else if (fn == 0) {
        /* Trailing zeros of an integer carry no precision. */
        while (ip[in - 1] == '0') {
            in--;
            exp++;
        }
    }
    if (in + fn == 0) {
        if (out)
            *out = d.neg ? -0.0 : 0.0;
        return 0;
    }
    if (in + fn > DOUBLE_DIGITS)
        return EVDB_EPRECISION;
    memcpy(buf, ip, in);
    memcpy(buf + in, fp, fn);
    size_t n = in + fn;
    if (exp > 400 || exp < -400)
        return EVDB_ERANGE;
    buf[n++] = 'e';
    char e[EVDB__INT_TEXT_MAX];
    size_t el = evdb__int_text(exp, e);
    memcpy(buf + n, e, el + 1);
    errno = 0;
    double v = strtod(buf, NULL);
    if (errno == ERANGE || isinf(v))
        return EVDB_ERANGE;
    if (out)
        *out = d.neg ? -v : v;
    return 0;
}

bool evdb__numeric_valid(const char *text, size_t len)
{
    decimal d;
    if (decimal_parse(text, len, &d) == 0)
        return true;
    /* A mantissa with an exponent: 1.5e-3, -2E+10. */
    const char *e = text, *end = text + len;
    while (e < end && *e != 'e' && *e != 'E')
        e++;
    if (e == end || decimal_parse(text, (size_t)(e - text), &d) || d.special)
        return false;
    scan x = {e + 1, end};
    if (!eat(&x, '-'))
        eat(&x, '+');
    int64_t v;
    return digits(&x, 1, 9, &v) && at_end(&x);
}

/* ---- formatting ---- */

/* Offsets evdb_timestamp_format writes: under 100 hours, two digits. */
#define OFFSET_FORMAT_MAX (100 * 3600)

/* Writes v as at least width digits; returns the count. */
static size_t put_num(char *out, uint64_t v, int width)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        tmp[n++] = '0';
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return (size_t)n;
}

size_t evdb_timestamp_format(int64_t us, bool with_offset, int32_t offset_s, char *buf, size_t cap)
{
    char tmp[64];
    size_t n = 0;
    if (us == EVDB_TIMESTAMP_INFINITY || us == EVDB_TIMESTAMP_NEG_INFINITY) {
        const char *w = us > 0 ? "infinity" : "-infinity";
        n = strlen(w);
        memcpy(tmp, w, n);
    } else {
        /* Whole days and the time of day apart, so that nothing
         * overflows near the ends of int64. */
        int64_t days = us / EVDB_USECS_PER_DAY, rem = us % EVDB_USECS_PER_DAY;
        if (rem < 0) {
            rem += EVDB_USECS_PER_DAY;
            days--;
        }
        if (with_offset) {
            if (offset_s <= -OFFSET_FORMAT_MAX || offset_s >= OFFSET_FORMAT_MAX)
                return 0;
            rem += (int64_t)offset_s * US_PER_SEC;
            int64_t carry = rem / EVDB_USECS_PER_DAY;
            rem %= EVDB_USECS_PER_DAY;
            if (rem < 0) {
                rem += EVDB_USECS_PER_DAY;
                carry--;
            }
            days += carry;
        }
        int64_t y;
        unsigned m, d;
        evdb__civil_from_days(days, &y, &m, &d);
        bool bc = y <= 0;
        uint64_t shown = bc ? (uint64_t)(1 - y) : (uint64_t)y;
        n += put_num(tmp + n, shown, 4);
        tmp[n++] = '-';
        n += put_num(tmp + n, m, 2);
        tmp[n++] = '-';
        n += put_num(tmp + n, d, 2);
        tmp[n++] = ' ';
        int64_t secs = rem / US_PER_SEC, frac = rem % US_PER_SEC;
        n += put_num(tmp + n, (uint64_t)(secs / 3600), 2);
        tmp[n++] = ':';
        n += put_num(tmp + n, (uint64_t)(secs / 60 % 60), 2);
        tmp[n++] = ':';
        n += put_num(tmp + n, (uint64_t)(secs % 60), 2);
        if (frac) {
            tmp[n++] = '.';
            n += put_num(tmp + n, (uint64_t)frac, 6);
        }
        if (with_offset) {
            int32_t a = offset_s < 0 ? -offset_s : offset_s;
            tmp[n++] = offset_s < 0 ? '-' : '+';
            n += put_num(tmp + n, (uint64_t)(a / 3600), 2);
            tmp[n++] = ':';
            n += put_num(tmp + n, (uint64_t)(a / 60 % 60), 2);
            if (a % 60) {
                tmp[n++] = ':';
                n += put_num(tmp + n, (uint64_t)(a % 60), 2);
            }
        }
        if (bc) {
            // NOLINTNEXTLINE(bugprone-not-null-terminated-result): a part
            memcpy(tmp + n, " BC", 3);
            n += 3;
        }
    }
    if (!buf || cap < n + 1)
        return 0;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}
