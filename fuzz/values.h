/*
 * Shared by the parameter fuzz targets: arbitrary bytes -> typed values,
 * and the core's validation and deep copy of them (src/value.c).
 */
#ifndef EVDB_FUZZ_VALUES_H
#define EVDB_FUZZ_VALUES_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evdb.h>

#include "reader.h"

/* The core's value helpers (src/internal.h would bring a second
 * evdb__dconn along with driver.h; these are all that is needed). */
size_t evdb__values_size(const evdb_value *params, size_t n);
evdb_value *evdb__values_copy_into(void *dst, const evdb_value *params, size_t n);
int evdb__values_check(const evdb_value *params, size_t n);

#define MAX_VALUES 96

/* Element storage of the array values (one input at a time). */
#define MAX_ELEMS 8
static int64_t fz_ints[MAX_VALUES][MAX_ELEMS];
static double fz_dbls[MAX_VALUES][MAX_ELEMS];
static bool fz_bools[MAX_VALUES][MAX_ELEMS];
static const char *fz_strs[MAX_VALUES][MAX_ELEMS];
static char fz_text[MAX_VALUES][MAX_ELEMS][8];
static evdb_value fz_elems[MAX_VALUES][MAX_ELEMS];
static char fz_num[MAX_VALUES][24];

static int64_t fz_clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* The column types' values (docs/types.md), each valid as submitted;
 * k is the value's slot for element storage. */
static evdb_value next_typed(reader *r, uint8_t tag, size_t k)
{
    int64_t i = 0;
    take(r, &i, sizeof i);
    uint8_t n = byte(r) % (MAX_ELEMS + 1);
    switch (tag % 14) {
    case 0:
        return evdb_uint((uint64_t)i);
    case 1: {
        /* Decimal text of i, with a point placed by n. */
        char *t = fz_num[k];
        int len = snprintf(t, sizeof fz_num[k], "%lld", (long long)i);
        if (n && n < len - 1) {
            memmove(t + len - n + 1, t + len - n, (size_t)n + 1);
            t[len - n] = '.';
        }
        return n == 8 ? evdb_numeric("NaN") : evdb_numeric(t);
    }
    case 2:
        return evdb_json("{\"k\": [1, null]}");
    case 3:
        return evdb_date((int32_t)fz_clamp((int32_t)i, -2440588, 2145042905));
    case 4:
        return evdb_time(fz_clamp(i, 0, INT64_C(86400000000)));
    case 5:
        return evdb_timetz(fz_clamp(i, 0, INT64_C(86400000000)), (int32_t)(i % 57600));
    case 6:
        return evdb_timestamp(fz_clamp(i, INT64_C(-210866803200000000), INT64_MAX));
    case 7:
        return evdb_timestamptz(fz_clamp(i, INT64_C(-210866803200000000), INT64_MAX));
    case 8:
        return evdb_interval_value((int32_t)i, (int32_t)(i >> 32), i);
    case 9: {
        uint8_t u[16];
        memcpy(u, &i, 8);
        memcpy(u + 8, &i, 8);
        return evdb_uuid(u);
    }
    case 10:
        for (uint8_t e = 0; e < n; e++)
            fz_ints[k][e] = (int64_t)((uint64_t)i * e - e);
        return evdb_array_int64(fz_ints[k], n);
    case 11:
        for (uint8_t e = 0; e < n; e++) {
            fz_dbls[k][e] = (double)i / (e + 1);
            fz_bools[k][e] = (i >> e) & 1;
        }
        return i & 1 ? evdb_array_double(fz_dbls[k], n) : evdb_array_bool(fz_bools[k], n);
    case 12:
        for (uint8_t e = 0; e < n; e++) {
            /* Text with the characters arrays escape, some NULL. */
            static const char pool[] = "a,\"\\{} NULL\xc3\xa9";
            for (int c = 0; c < 7; c++)
                fz_text[k][e][c] = pool[(size_t)((i >> (c + e)) & 15) % (sizeof pool - 1)];
            fz_text[k][e][7] = '\0';
            fz_strs[k][e] = (i >> e) & 4 ? NULL : fz_text[k][e];
        }
        return evdb_array_text(fz_strs[k], n);
    default: {
        /* evdb_array_values of one type, some NULL. */
        static const evdb_type kinds[] = {EVDB_TYPE_DATE,    EVDB_TYPE_TIMESTAMPTZ, EVDB_TYPE_UUID,
                                          EVDB_TYPE_NUMERIC, EVDB_TYPE_INTERVAL,    EVDB_TYPE_TEXT};
        evdb_type t = kinds[(uint64_t)i % 6];
        for (uint8_t e = 0; e < n; e++) {
            evdb_value *x = &fz_elems[k][e];
            if ((i >> e) & 2) {
                *x = evdb_null();
                continue;
            }
            switch (t) {
            case EVDB_TYPE_DATE:
                *x = evdb_date(e * 1000 - 4000);
                break;
            case EVDB_TYPE_TIMESTAMPTZ:
                *x = evdb_timestamptz(
                    fz_clamp(i / (e + 1), INT64_C(-210866803200000000), INT64_MAX));
                break;
            case EVDB_TYPE_UUID:
                *x = evdb_uuid((const uint8_t *)"0123456789abcdef");
                break;
            case EVDB_TYPE_NUMERIC:
                *x = evdb_numeric(e & 1 ? "-1.50" : "Infinity");
                break;
            case EVDB_TYPE_INTERVAL:
                *x = evdb_interval_value(e, -e, i);
                break;
            default:
                *x = evdb_text(e & 1 ? "x,y" : "");
                break;
            }
        }
        return evdb_array_values(fz_elems[k], n);
    }
    }
}

/* One value from the input; false at the end. Text and bytes point into
 * the input. With typed, the column types too (docs/types.md). */
static bool next_value(reader *r, evdb_value *v, bool typed, size_t k)
{
    uint8_t tag;
    if (!take(r, &tag, 1))
        return false;
    if (typed && tag >= 128) {
        *v = next_typed(r, tag, k);
        return true;
    }
    switch (tag % 6) {
    case 0:
        *v = evdb_null();
        return true;
    case 1: {
        uint8_t b = 0;
        take(r, &b, 1);
        *v = evdb_bool(b & 1);
        return true;
    }
    case 2: {
        int64_t i = 0;
        take(r, &i, sizeof i);
        *v = evdb_int(i);
        return true;
    }
    case 3: {
        double d = 0;
        take(r, &d, sizeof d);
        *v = evdb_double(d);
        return true;
    }
    default: {
        uint8_t len = 0;
        take(r, &len, 1);
        size_t n = len < r->left ? len : r->left;
        const char *p = (const char *)r->p;
        r->p += n;
        r->left -= n;
        *v = tag % 6 == 4 ? evdb_textn(p, n) : evdb_bytes(p, n);
        return true;
    }
    }
}

/* Parse the input into vals (at most MAX_VALUES), check them, and copy
 * them the way a submission does. Returns the copy's block (free it);
 * *copy and *n describe the copied values. */
static void *values_from_typed(const uint8_t *data, size_t size, evdb_value **copy, size_t *n,
                               bool typed)
{
    evdb_value vals[MAX_VALUES];
    size_t k = 0;
    reader r = {data, size};
    while (k < MAX_VALUES && next_value(&r, &vals[k], typed, k))
        k++;
    assert(evdb__values_check(vals, k) == 0);
    size_t need = evdb__values_size(vals, k);
    void *block = malloc(need ? need : 1);
    assert(block);
    evdb_value *c = evdb__values_copy_into(block, vals, k);
    for (size_t i = 0; i < k; i++) {
        assert(c[i].type == vals[i].type);
        if (vals[i].type == EVDB_TYPE_ARRAY) {
            /* The elements were copied (the strings of text arrays
             * compared by the encoder's check). */
            assert(c[i].u.a.n == vals[i].u.a.n && c[i].elem == vals[i].elem);
            assert(!c[i].u.a.n || c[i].u.a.ptr != vals[i].u.a.ptr);
        } else if (vals[i].type == EVDB_TYPE_TEXT || vals[i].type == EVDB_TYPE_BYTES ||
                   vals[i].type == EVDB_TYPE_NUMERIC || vals[i].type == EVDB_TYPE_JSON) {
            assert(c[i].u.s.len == vals[i].u.s.len);
            assert(memcmp(c[i].u.s.ptr, vals[i].u.s.ptr, vals[i].u.s.len) == 0);
            assert(((const char *)c[i].u.s.ptr)[c[i].u.s.len] == '\0');
        } else {
            assert(memcmp(&c[i], &vals[i], sizeof c[i]) == 0);
        }
    }
    *copy = c;
    *n = k;
    return block;
}

#endif
