/*
 * The fuzz targets' view of their input: a cursor over the bytes that
 * yields zeros once they run out, so every input drives a whole run.
 */
#ifndef EVDB_FUZZ_READER_H
#define EVDB_FUZZ_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

/* The next n bytes into out; false (out untouched) when fewer are left. */
static inline bool take(reader *r, void *out, size_t n)
{
    if (r->left < n)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
    return true;
}

/* The next byte, or 0 at the end. */
static inline uint8_t byte(reader *r)
{
    if (!r->left)
        return 0;
    r->left--;
    return *r->p++;
}

#endif
