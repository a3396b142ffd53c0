/*
 * Reconnect backoff: doubling delays from an initial one up to a cap, each
 * jittered at random so that many clients reconnecting after the same
 * outage do not retry in step. The shape of the pool's (src/pool.c), for
 * objects that reconnect on their own (src/listen.c).
 */
#ifndef EVDB_BACKOFF_H
#define EVDB_BACKOFF_H

#include <stdint.h>

typedef struct evdb__backoff {
    double initial, max, jitter; /* jitter: +- fraction, 0 = none */
    double cur;                  /* last delay before jitter; 0 = none yet */
    uint32_t rng;                /* xorshift32 state, never 0 */
} evdb__backoff;

/* Set the parameters, with the pool's defaults for zero values (initial
 * 0.1 s, max 5 s, jitter 0.2; a negative jitter means none); seed mixes
 * into the jitter's state. */
void evdb__backoff_init(evdb__backoff *b, double initial, double max, double jitter,
                        uintptr_t seed);
/* The next delay in seconds: initial, then doubling up to max, jittered. */
double evdb__backoff_next(evdb__backoff *b);
/* A success: the next failure starts again from initial. */
void evdb__backoff_reset(evdb__backoff *b);

#endif
