/*
 * State tracing. Each of evdb's state machines (tasks, pool members,
 * MariaDB operations) changes state in one setter, and that setter calls
 * EVDB__TRACE_STATE: with EVDB_TRACE_STATES set in the environment (to
 * anything but "0" or ""), every transition is written to stderr as one
 * line,
 *
 *     evdb: task 0x5581c0 starting -> running (task.c:276)
 *
 * which is how a hang or a callback that came twice is followed. It is in
 * every build (CMake's default RelWithDebInfo defines NDEBUG, and a
 * problem seen in production is the one worth tracing): when off it costs
 * one relaxed load and a branch per transition.
 */
#ifndef EVDB_TRACE_H
#define EVDB_TRACE_H

#include <stdbool.h>

/* 0: the environment not read yet, 1: tracing off, 2: on. */
extern int evdb__trace_flag;
/* Reads EVDB_TRACE_STATES into evdb__trace_flag; true when on. */
bool evdb__trace_read_env(void);
/* Writes one transition of machine's object obj to stderr. */
void evdb__trace_state(const char *machine, const void *obj, const char *from, const char *to,
                       const char *file, int line);

/* Always in line, as the header's comment promises (one load and a
 * branch): GCC otherwise makes it a call in some of the setters. */
__attribute__((always_inline)) static inline bool evdb__trace_states_on(void)
{
    int f = __atomic_load_n(&evdb__trace_flag, __ATOMIC_RELAXED);
    return f ? f == 2 : evdb__trace_read_env();
}

#define EVDB__TRACE_STATE(machine, obj, from, to, file, line)                                      \
    do {                                                                                           \
        if (evdb__trace_states_on())                                                               \
            evdb__trace_state((machine), (obj), (from), (to), (file), (line));                     \
    } while (0)

#endif
