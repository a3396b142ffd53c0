/*
 * Reconnect backoff (see backoff.h).
 */
#include "backoff.h"

#define BACKOFF_INITIAL 0.1
#define BACKOFF_MAX 5.0
#define BACKOFF_JITTER 0.2

void evdb__backoff_init(evdb__backoff *b, double initial, double max, double jitter, uintptr_t seed)
{
    b->initial = initial > 0 ? initial : BACKOFF_INITIAL;
    b->max = max > 0 ? max : BACKOFF_MAX;
    if (b->max < b->initial)
        b->max = b->initial;
    b->jitter = jitter == 0 ? BACKOFF_JITTER : jitter < 0 ? 0 : jitter > 1 ? 1 : jitter;
    b->cur = 0;
    /* Golden-ratio mix: nearby addresses give distant states. */
    b->rng = (uint32_t)((uint64_t)seed ^ ((uint64_t)seed >> 32)) * 2654435761u;
    if (!b->rng)
        b->rng = 2463534242u;
}

/* xorshift32: jitter needs spread, not quality, and no shared state. */
static double random_unit(evdb__backoff *b)
{
    uint32_t x = b->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b->rng = x;
    return (double)x / 4294967296.0;
}

double evdb__backoff_next(evdb__backoff *b)
{
    b->cur = b->cur > 0 ? b->cur * 2 : b->initial;
    if (b->cur > b->max)
        b->cur = b->max;
    double delay = b->cur;
    if (b->jitter > 0)
        delay *= 1 + b->jitter * (2 * random_unit(b) - 1);
    return delay;
}

void evdb__backoff_reset(evdb__backoff *b)
{
    b->cur = 0;
}
