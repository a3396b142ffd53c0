/*
 * json: just enough JSON for the service: reading a flat object of integer
 * fields (the /transfer body) with a clear message for anything else, and
 * escaping text into responses.
 */
#ifndef SERVICE_JSON_H
#define SERVICE_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Parse s[0..len) as a JSON object whose members are exactly keys[0..n),
 * each an integer, into vals[i]. Returns 0, or -1 with a message for the
 * client in err (cap bytes): not an object, an unknown, repeated or
 * missing member, a value that is not an integer, trailing bytes. */
int json_read_ints(const char *s, size_t len, const char *const *keys, int64_t *vals, size_t n,
                   char *err, size_t cap);

/* Append s as a JSON string (quoted, escaped) to out[*pos..cap); returns
 * -1 when it does not fit. */
int json_put_string(char *out, size_t cap, size_t *pos, const char *s);

#endif
