/*
 * wait_for: give up on a slow operation after half a second.
 *
 *     async def long_operation():
 *         await asyncio.sleep(10)
 *         return "done"
 *
 *     async def main():
 *         try:
 *             result = await asyncio.wait_for(long_operation(), timeout=0.5)
 *         except asyncio.TimeoutError:
 *             print("Operation timed out!")
 *
 *     asyncio.run(main())
 *
 * evdb_timeout is wait_for: at the deadline it fails with EVDB_ETIMEDOUT and
 * cancels what it waits for, here a task. The task's own await then
 * returns EVDB_ECANCELED, so it can clean up before it ends.
 */
#include <ev.h>
#include <stdio.h>

#include <evdb.h>

static void *long_operation(void *arg)
{
    (void)arg;
    ev_tstamp t0 = ev_time();
    evdb_future *nap = evdb_sleep(evdb_task_loop(), 10.0);
    int status = evdb_await(nap);
    evdb_future_unref(nap);
    if (status == EVDB_ECANCELED) {
        printf("long_operation: cancelled after %.2f s, cleaning up\n", ev_time() - t0);
        return NULL;
    }
    return "done";
}

static void *main_task(void *arg)
{
    (void)arg;
    evdb_future *op = evdb_task_spawn(evdb_task_loop(), long_operation, NULL, NULL);
    evdb_future *limited = evdb_timeout(op, 0.5);
    int status = evdb_await(limited);
    if (status == EVDB_ETIMEDOUT)
        printf("Operation timed out!\n");
    else if (status == 0)
        printf("result: %s\n", (const char *)evdb_future_value(limited));
    /* The cancelled task finishes its cleanup after this; evdb_run waits
     * for it before returning. */
    evdb_future_unref(limited);
    evdb_future_unref(op);
    return NULL;
}

int main(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    int status = evdb_run(loop, main_task, NULL, NULL);
    ev_loop_destroy(loop);
    return status == 0 ? 0 : 1;
}
