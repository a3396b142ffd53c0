/*
 * gather: three fetches at once take one second, not three.
 *
 *     async def fetch_data(i):
 *         print(f"Fetching {i}...")
 *         await asyncio.sleep(1)
 *         print(f"Fetched {i}")
 *         return i * 10
 *
 *     async def main():
 *         t0 = time.perf_counter()
 *         results = await asyncio.gather(fetch_data(1), fetch_data(2), fetch_data(3))
 *         print(results, f"in {time.perf_counter() - t0:.2f} s")
 *
 *     asyncio.run(main())
 */
#include <ev.h>
#include <stdint.h>
#include <stdio.h>

#include <evdb.h>

enum { NFETCH = 3 };

static void *fetch_data(void *arg)
{
    intptr_t i = (intptr_t)arg;
    printf("Fetching %d...\n", (int)i);
    evdb_future *nap = evdb_sleep(evdb_task_loop(), 1.0);
    evdb_await(nap);
    evdb_future_unref(nap);
    printf("Fetched %d\n", (int)i);
    return (void *)(i * 10);
}

static void *main_task(void *arg)
{
    (void)arg;
    struct ev_loop *loop = evdb_task_loop();
    ev_tstamp t0 = ev_time();
    /* asyncio.gather(coroutines) wraps each in a task: so do we. */
    evdb_future *fetches[NFETCH];
    for (intptr_t i = 0; i < NFETCH; i++)
        fetches[i] = evdb_task_spawn(loop, fetch_data, (void *)(i + 1), NULL);
    evdb_future *all = evdb_gather(fetches, NFETCH, EVDB_GATHER_ALL);
    int status = evdb_await(all);
    double elapsed = ev_time() - t0;
    if (status == 0) {
        printf("[");
        for (int i = 0; i < NFETCH; i++)
            printf("%s%d", i ? ", " : "", (int)(intptr_t)evdb_future_value(fetches[i]));
        printf("] in %.2f s (one second, not %d)\n", elapsed, NFETCH);
    }
    evdb_future_unref(all);
    for (int i = 0; i < NFETCH; i++)
        evdb_future_unref(fetches[i]);
    return status == 0 ? NULL : evdb_task_fail(status, "gather failed");
}

int main(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int status = evdb_run(loop, main_task, NULL, NULL);
    if (status != 0)
        fprintf(stderr, "gather: %s\n", evdb_error_message(evdb_last_error()));
    ev_loop_destroy(loop);
    return status == 0 ? 0 : 1;
}
