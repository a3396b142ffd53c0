/*
 * fetch_data: asyncio's first example, in C.
 *
 *     async def fetch_data():
 *         print("Fetching data...")
 *         await asyncio.sleep(1)
 *         print("Data fetched!")
 *         return {"data": 42}
 *
 *     result = asyncio.run(fetch_data())
 *     print(result)
 *
 * A task is a plain function on its own small stack; evdb_await suspends it
 * while the loop runs, and evdb_run is asyncio.run.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>

#include <evdb.h>

typedef struct data {
    int data;
} data;

static void *fetch_data(void *arg)
{
    (void)arg;
    printf("Fetching data...\n");
    evdb_future *nap = evdb_sleep(evdb_task_loop(), 1.0);
    evdb_await(nap); /* the task sleeps here; the loop is free meanwhile */
    evdb_future_unref(nap);
    printf("Data fetched!\n");
    data *d = malloc(sizeof *d);
    if (!d)
        return evdb_task_fail(EVDB_ENOMEM, "no memory for the result");
    d->data = 42;
    /* The task's future owns d (and frees it); evdb_run hands it to us. */
    return evdb_task_return(d, free);
}

int main(void)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    void *result = NULL;
    int status = evdb_run(loop, fetch_data, NULL, &result);
    if (status != 0) {
        fprintf(stderr, "fetch_data: %s\n", evdb_error_message(evdb_last_error()));
        return 1;
    }
    printf("{'data': %d}\n", ((data *)result)->data);
    free(result);
    ev_loop_destroy(loop);
    return 0;
}
