/*
 * The copy-in buffer as the row encoder (copy_text.c) writes into it
 * (src/copy.c). Each returns or sets the code of evdb_copy_write's
 * checks, with the last error set.
 */
#ifndef EVDB_COPY_BUF_H
#define EVDB_COPY_BUF_H

#include "internal.h"

/* Room for n bytes after the buffered data, or NULL with *rc set (the
 * copy does not take data now, or no memory). Nothing is queued until
 * evdb__copy_commit says how many of them were written. */
char *evdb__copy_room(evdb_copy *cp, const char *who, size_t n, int *rc);
void evdb__copy_commit(evdb_copy *cp, size_t n);

#endif
