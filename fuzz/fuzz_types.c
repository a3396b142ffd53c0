/*
 * Fuzz target: the strict parsers of column types (src/types_text.c) and
 * the array parser (src/array.c). The first input byte picks the parser,
 * the rest is the cell's text.
 *
 * Checked: no parser reads past its len bytes (the text is copied into a
 * buffer of exactly that size, so ASan sees any overread) or writes its
 * outputs on error; what parses survives a round trip through evdb's own
 * formatting (dates through evdb_date_to_ymd, timestamps through
 * evdb_timestamp_format, UUIDs through their text) to the same value;
 * exact decimals agree between the int64 and double conversions; an
 * array's elements lie inside it, and every element getter either refuses
 * or answers, byte for byte the same on a second parse.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "types_text.h"

#define POISON 0x5a

static void dates(const char *s, size_t n)
{
    int32_t d = POISON;
    int rc = evdb__parse_date(s, n, &d);
    if (rc) {
        assert(d == POISON);
        assert(rc == EVDB_EFORMAT || rc == EVDB_ERANGE || rc == EVDB_EZERODATE);
        return;
    }
    if (d == EVDB_DATE_INFINITY || d == EVDB_DATE_NEG_INFINITY)
        return;
    int32_t y;
    int m, day, back;
    evdb_date_to_ymd(d, &y, &m, &day);
    assert(evdb_date_from_ymd(y, m, day, &back) == 0 && back == d);
    /* Written the server's way, it reads back the same. */
    char buf[64];
    int len = y > 0 ? snprintf(buf, sizeof buf, "%04d-%02d-%02d", (int)y, m, day)
                    : snprintf(buf, sizeof buf, "%04d-%02d-%02d BC", (int)(1 - y), m, day);
    assert(evdb__parse_date(buf, (size_t)len, &back) == 0 && back == d);
}

static void timestamps(const char *s, size_t n, bool tz)
{
    int64_t us = POISON;
    int32_t off = POISON;
    int rc = evdb__parse_timestamp(s, n, tz, &us, &off);
    if (rc) {
        assert(us == POISON && off == POISON);
        return;
    }
    char buf[EVDB_TIMESTAMP_TEXT_MAX];
    size_t len = evdb_timestamp_format(us, tz, off, buf, sizeof buf);
    assert(len > 0 && len < sizeof buf);
    int64_t back;
    int32_t boff;
    assert(evdb__parse_timestamp(buf, len, tz, &back, &boff) == 0);
    assert(back == us && boff == off);
}

static void times(const char *s, size_t n)
{
    int64_t us = POISON;
    int32_t off = POISON;
    if (evdb__parse_time(s, n, &us))
        assert(us == POISON);
    else
        assert(us >= -EVDB__TIME_MAX && us <= EVDB__TIME_MAX);
    us = POISON;
    if (evdb__parse_timetz(s, n, &us, &off))
        assert(us == POISON && off == POISON);
    else
        assert(us >= 0 && us <= EVDB_USECS_PER_DAY && off > -EVDB__OFFSET_LIMIT &&
               off < EVDB__OFFSET_LIMIT);
}

static void intervals(const char *s, size_t n)
{
    evdb_interval iv = {POISON, POISON, POISON};
    if (evdb__parse_interval(s, n, &iv))
        assert(iv.months == POISON && iv.days == POISON && iv.us == POISON);
}

static void uuids(const char *s, size_t n)
{
    uint8_t u[16], back[16];
    memset(u, POISON, 16);
    if (evdb__parse_uuid(s, n, u)) {
        for (int i = 0; i < 16; i++)
            assert(u[i] == POISON);
        return;
    }
    char text[37];
    evdb__uuid_text(u, text);
    assert(evdb__parse_uuid(text, 36, back) == 0 && memcmp(u, back, 16) == 0);
}

static void numerics(const char *s, size_t n)
{
    int64_t i = POISON;
    double d = POISON;
    int ri = evdb_numeric_to_int64(s, n, &i);
    int rd = evdb_numeric_to_double(s, n, &d);
    if (ri)
        assert(i == POISON);
    if (rd)
        assert(d == POISON);
    /* A decimal one conversion reads, the other calls a decimal too. */
    assert((ri == EVDB_EFORMAT) == (rd == EVDB_EFORMAT));
    if (rd == 0 && !isnan(d) && !isinf(d))
        assert(evdb__numeric_valid(s, n));
    /* Integers of at most 15 digits are the same number both ways. */
    if (ri == 0 && rd == 0 && i > -1000000000000000 && i < 1000000000000000)
        assert((double)i == d);
    uint64_t u = POISON;
    if (evdb__parse_uint64(s, n, &u))
        assert(u == POISON);
    if (evdb__parse_bit_digits(s, n, &u) == 0)
        assert(n <= 64);
}

static void arrays(const char *s, size_t n, evdb_type elem)
{
    evdb_array *a = NULL, *b = NULL;
    int rc = evdb__array_parse(s, n, elem, &a);
    if (rc) {
        assert(!a);
        assert(rc == EVDB_EFORMAT || rc == EVDB_ENOTSUP || rc == EVDB_ENOMEM);
        return;
    }
    assert(evdb__array_parse(s, n, elem, &b) == 0);
    size_t len = evdb_array_len(a);
    assert(len == evdb_array_len(b) && len <= n);
    for (size_t i = 0; i <= len; i++) {
        size_t l1, l2;
        const char *t1 = evdb_array_get_text(a, i, &l1);
        const char *t2 = evdb_array_get_text(b, i, &l2);
        assert(!t1 == !t2 && !t1 == evdb_array_isnull(a, i));
        if (t1) {
            assert(l1 == l2 && memcmp(t1, t2, l1) == 0 && t1[l1] == '\0');
            assert(elem == EVDB_TYPE_BYTES || l1 <= n);
        }
        int64_t x;
        double d;
        bool bo;
        uint8_t u[16];
        int32_t days;
        int32_t off;
        (void)evdb_array_get_int(a, i, &x);
        (void)evdb_array_get_double(a, i, &d);
        (void)evdb_array_get_bool(a, i, &bo);
        (void)evdb_array_get_uuid(a, i, u);
        (void)evdb_array_get_date(a, i, &days);
        (void)evdb_array_get_timestamp(a, i, &x);
        (void)evdb_array_get_timestamptz(a, i, &x, &off);
    }
    evdb_array_free(a);
    evdb_array_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t pick = data[0];
    size_t n = size - 1;
    /* Exactly n bytes, no NUL after them: any overread is ASan's. */
    char *s = malloc(n ? n : 1);
    if (!s)
        return 0;
    memcpy(s, data + 1, n);
    static const evdb_type elems[] = {EVDB_TYPE_INT,  EVDB_TYPE_TEXT,        EVDB_TYPE_BYTES,
                                      EVDB_TYPE_DATE, EVDB_TYPE_TIMESTAMPTZ, EVDB_TYPE_UUID,
                                      EVDB_TYPE_BOOL, EVDB_TYPE_OTHER};
    switch (pick % 9) {
    case 0:
        dates(s, n);
        break;
    case 1:
        timestamps(s, n, false);
        break;
    case 2:
        timestamps(s, n, true);
        break;
    case 3:
        times(s, n);
        break;
    case 4:
        intervals(s, n);
        break;
    case 5:
        uuids(s, n);
        break;
    case 6:
        numerics(s, n);
        break;
    default:
        arrays(s, n, elems[(pick / 9) % 8]);
        break;
    }
    free(s);
    return 0;
}
