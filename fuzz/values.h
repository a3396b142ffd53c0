/*
 * Shared by the parameter fuzz targets: arbitrary bytes -> typed values,
 * and the core's validation and deep copy of them (src/value.c).
 */
#ifndef EVDB_FUZZ_VALUES_H
#define EVDB_FUZZ_VALUES_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
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

/* One value from the input; false at the end. Text and bytes point into
 * the input. */
static bool next_value(reader *r, evdb_value *v)
{
    uint8_t tag;
    if (!take(r, &tag, 1))
        return false;
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
static void *values_from(const uint8_t *data, size_t size, evdb_value **copy, size_t *n)
{
    evdb_value vals[MAX_VALUES];
    size_t k = 0;
    reader r = {data, size};
    while (k < MAX_VALUES && next_value(&r, &vals[k]))
        k++;
    assert(evdb__values_check(vals, k) == 0);
    size_t need = evdb__values_size(vals, k);
    void *block = malloc(need ? need : 1);
    assert(block);
    evdb_value *c = evdb__values_copy_into(block, vals, k);
    for (size_t i = 0; i < k; i++) {
        assert(c[i].type == vals[i].type);
        if (vals[i].type == EVDB_TYPE_TEXT || vals[i].type == EVDB_TYPE_BYTES) {
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
