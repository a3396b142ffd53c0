/*
 * Server-side cancel. libpq 15 only has the blocking PQcancel (it opens a
 * new connection to the server and waits for it to close), so it runs on
 * a helper thread; the thread signals completion through an eventfd that
 * the cancel op reports as its wait, and cancel_step joins it.
 *
 * Ownership: the op is shared by the loop side and the thread, with a
 * reference count. cancel_free never blocks: when the thread still runs
 * (a server that does not answer), the thread is detached and the last of
 * the two to let go frees the op. For that reason the op is allocated with
 * the C library's malloc, not through evdb's allocator hooks: it may be
 * freed on the helper thread, after the loop (and its allocation
 * accounting) is gone, and the hooks are not promised to be thread-safe.
 * PGcancel is libpq's copy of what it needs (address and cancel key), so
 * the thread never touches the PGconn, which may be finished meanwhile.
 *
 * Which statement a cancel stops is the server's business: whatever the
 * backend runs when the request arrives, and sometimes two statements: the
 * postmaster signals the backend's pid and its process group, so a second
 * SIGINT can land after the first one was handled (seen on PostgreSQL 15:
 * one request, 57014 for the query and for the next one re-sent after it).
 * pg_pipeline.c therefore keeps a cancel window (dc->cancel_window) rather
 * than counting 57014s; the op tells the connection when the request has
 * been delivered (dc->cancel_op back to NULL).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "pg_internal.h"

/* PQcancel needs little stack: it formats one packet and does a connect. */
#define CANCEL_STACK_SIZE (256 * 1024)
#define CANCEL_ERRBUF 256

struct evdb__cancel {
    evdb__dconn *dc; /* loop thread only; NULL once detached */
    PGcancel *cn;
    int efd;
    pthread_t thread;
    atomic_int refs; /* loop side + thread */
    bool joined;
    int ok; /* PQcancel's answer, written before the eventfd */
    char errbuf[CANCEL_ERRBUF];
};

static void op_unref(evdb__cancel *op)
{
    if (atomic_fetch_sub(&op->refs, 1) != 1)
        return;
    if (op->cn)
        PQfreeCancel(op->cn);
    if (op->efd >= 0)
        close(op->efd);
    free(op);
}

/* The request has been delivered (or given up): the connection may close
 * its cancel window once its pipeline drains. */
static void detach(evdb__cancel *op)
{
    if (op->dc && op->dc->cancel_op == op)
        op->dc->cancel_op = NULL;
    op->dc = NULL;
}

void evdb__pg_cancel_detach(evdb__dconn *dc)
{
    if (dc->cancel_op)
        dc->cancel_op->dc = NULL;
    dc->cancel_op = NULL;
}

static void *cancel_thread(void *arg)
{
    evdb__cancel *op = arg;
    op->ok = PQcancel(op->cn, op->errbuf, sizeof op->errbuf);
    uint64_t one = 1;
    /* The eventfd write is the release that publishes op->ok. */
    ssize_t n;
    do {
        n = write(op->efd, &one, sizeof one);
    } while (n < 0 && errno == EINTR);
    op_unref(op);
    return NULL;
}

int evdb__pg_cancel_start(evdb__dconn *dc, evdb__query *q, evdb__cancel **out, evdb__wait *w,
                          evdb_error *err)
{
    *out = NULL;
    /* Not sent yet, or already answered (held for its own Sync): the
     * server is not running it, and a request now would stop another
     * query. It will be reported soon without help. */
    if (!dc->conn || !evdb__pg_query_on_wire(q))
        return EVDB__STEP_DONE;
    /* A COPY FROM STDIN taking data is aborted by the driver's next step
     * (PQputCopyEnd with a message, pg_copy.c): no request needed. */
    if (dc->copy_q == q && dc->copy_in)
        return EVDB__STEP_DONE;
    evdb__cancel *op = calloc(1, sizeof *op);
    if (!op) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "out of memory starting a cancel");
        return EVDB__STEP_FAIL;
    }
    op->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    op->cn = PQgetCancel(dc->conn);
    atomic_init(&op->refs, 1);
    if (op->efd < 0 || !op->cn) {
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "could not prepare a cancel request");
        op_unref(op);
        return EVDB__STEP_FAIL;
    }
    /* The thread takes no signals: they belong to the application's
     * threads (and SIGPIPE from the cancel socket must not kill us). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CANCEL_STACK_SIZE);
    atomic_fetch_add(&op->refs, 1);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&op->thread, &attr, cancel_thread, op);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_fetch_sub(&op->refs, 1);
        op->joined = true; /* there is no thread */
        evdb__error_set(err, EVDB_ENOMEM, 0, NULL, "could not start the cancel thread: %s",
                        strerror(rc));
        op_unref(op);
        return EVDB__STEP_FAIL;
    }
    /* A request still in flight for an earlier query keeps its own
     * window; the connection tracks the latest. */
    if (dc->cancel_op)
        dc->cancel_op->dc = NULL;
    op->dc = dc;
    dc->cancel_op = op;
    dc->cancel_window = true;
    *out = op;
    w->fd = op->efd;
    w->events = EVDB__EV_READ;
    w->timeout_ms = -1;
    return EVDB__STEP_WAIT;
}

int evdb__pg_cancel_step(evdb__cancel *op, unsigned revents, evdb__wait *w, evdb_error *err)
{
    uint64_t v;
    if (read(op->efd, &v, sizeof v) != (ssize_t)sizeof v) {
        /* Spurious wake-up: keep waiting. */
        (void)revents;
        w->fd = op->efd;
        w->events = EVDB__EV_READ;
        w->timeout_ms = -1;
        return EVDB__STEP_WAIT;
    }
    /* The thread has written its answer and is about to return. */
    pthread_join(op->thread, NULL);
    op->joined = true;
    detach(op);
    PQfreeCancel(op->cn);
    op->cn = NULL;
    if (!op->ok) {
        evdb__error_set(err, EVDB_ECONNECT, 0, NULL, "cancel request failed: %s", op->errbuf);
        return EVDB__STEP_FAIL;
    }
    return EVDB__STEP_DONE;
}

void evdb__pg_cancel_free(evdb__cancel *op)
{
    if (!op)
        return;
    detach(op);
    if (!op->joined)
        pthread_detach(op->thread);
    op_unref(op);
}
