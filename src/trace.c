/*
 * State tracing (src/trace.h). Loops on several threads may trace at
 * once: the flag is read and written atomically (two threads reading the
 * environment first store the same value), and each line is written with
 * one fprintf, which stdio keeps whole.
 */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int evdb__trace_flag;

bool evdb__trace_read_env(void)
{
    const char *v = getenv("EVDB_TRACE_STATES");
    bool on = v && *v && strcmp(v, "0") != 0;
    __atomic_store_n(&evdb__trace_flag, on ? 2 : 1, __ATOMIC_RELAXED);
    return on;
}

void evdb__trace_state(const char *machine, const void *obj, const char *from, const char *to,
                       const char *file, int line)
{
    /* The file's name without its directories: the same line on every
     * machine. */
    const char *base = strrchr(file, '/');
    fprintf(stderr, "evdb: %s %p %s -> %s (%s:%d)\n", machine, obj, from, to,
            base ? base + 1 : file, line);
}
