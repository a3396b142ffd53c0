/*
 * server: accepting connections, reading requests, writing answers, keep-
 * alive and the graceful shutdown, on one worker's loop. A connection
 * handles one request at a time (requests pipelined by a client wait in
 * its input buffer), which keeps every answer in order without a queue.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json.h"
#include "service.h"

/* Room for one request's headers and body. */
#define IN_CAP (HTTP_MAX_HEAD + HTTP_MAX_BODY)
/* A response is a few hundred bytes; /health is the largest. */
#define OUT_LINE 4096

struct client {
    worker *w;
    client *prev, *next;
    int fd; /* -1 once closed */
    ev_io rio, wio;
    ev_timer idle;
    char in[IN_CAP];
    size_t inlen;
    char *out; /* unsent answer bytes */
    size_t outlen, outoff, outcap;
    size_t consume;  /* input bytes of the request being answered */
    int busy;        /* a request is being answered */
    int dispatching; /* inside routes_dispatch */
    int keep_alive;  /* of the request being answered */
    int close_after; /* close once the output is written */
    evdb_future *pending;
};

static void process_input(client *c);
static void finish_stop(worker *w);

worker *client_worker(const client *c)
{
    return c->w;
}

void client_set_pending(client *c, evdb_future *f)
{
    c->pending = f;
}

/* Free a closed connection once nothing refers to it any more. */
static void client_free(client *c)
{
    worker *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->out);
    free(c);
    w->nclients--;
    if (w->stopping && w->nclients == 0)
        finish_stop(w);
}

/* Close the socket. A request still being answered keeps the struct until
 * its answer comes (client_respond frees it then); its query is cancelled
 * so that the server stops working for nobody. */
static void client_close(client *c)
{
    if (c->fd < 0)
        return;
    ev_io_stop(c->w->loop, &c->rio);
    ev_io_stop(c->w->loop, &c->wio);
    ev_timer_stop(c->w->loop, &c->idle);
    close(c->fd);
    c->fd = -1;
    if (c->busy && c->pending)
        evdb_future_cancel(c->pending);
    /* Inside routes_dispatch, process_input frees it on return. */
    if (!c->busy && !c->dispatching)
        client_free(c);
}

/* Write what is buffered; 0, or -1 when the connection was closed. */
static int flush_out(client *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(c->w->loop, &c->wio);
            return 0;
        }
        if (n <= 0) {
            client_close(c);
            return -1;
        }
        c->outoff += (size_t)n;
    }
    c->outoff = c->outlen = 0;
    ev_io_stop(c->w->loop, &c->wio);
    if (c->close_after) {
        client_close(c);
        return -1;
    }
    return 0;
}

static void on_writable(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    flush_out(io->data);
}

void client_respond(client *c, int status, const char *body, size_t len)
{
    c->busy = 0;
    c->pending = NULL;
    if (c->fd < 0) {
        if (!c->dispatching)
            client_free(c);
        return;
    }
    size_t need = c->outlen + len + OUT_LINE;
    if (need > c->outcap) {
        char *o = realloc(c->out, need);
        if (!o) {
            client_close(c);
            return;
        }
        c->out = o;
        c->outcap = need;
    }
    int keep = c->keep_alive && !c->w->stopping;
    c->outlen += http_format(c->out + c->outlen, c->outcap - c->outlen, status, keep, body, len);
    memmove(c->in, c->in + c->consume, c->inlen - c->consume);
    c->inlen -= c->consume;
    c->consume = 0;
    if (!keep)
        c->close_after = 1;
    if (flush_out(c) != 0)
        return;
    ev_timer_again(c->w->loop, &c->idle);
    if (!c->dispatching) {
        ev_io_start(c->w->loop, &c->rio);
        process_input(c);
    }
}

void client_error(client *c, int status, const char *message)
{
    char body[512];
    size_t pos = 0;
    memcpy(body, "{\"error\":", 9);
    pos = 9;
    if (json_put_string(body, sizeof body - 2, &pos, message) != 0) {
        client_respond(c, status, "{\"error\":\"?\"}", 13);
        return;
    }
    body[pos++] = '}';
    client_respond(c, status, body, pos);
}

/* Parse and dispatch the buffered requests, one at a time. */
static void process_input(client *c)
{
    while (c->fd >= 0 && !c->busy && !c->close_after && c->inlen > 0) {
        http_request r;
        int status;
        const char *message;
        int rc = http_parse(c->in, c->inlen, &r, &status, &message);
        if (rc == HTTP_INCOMPLETE)
            return;
        c->busy = 1;
        c->dispatching = 1;
        if (rc == HTTP_ERROR) {
            /* The stream cannot be trusted past a malformed request. */
            c->keep_alive = 0;
            c->consume = c->inlen;
            client_error(c, status, message);
        } else {
            c->keep_alive = r.keep_alive;
            c->consume = r.total_len;
            routes_dispatch(c, &r);
        }
        c->dispatching = 0;
        if (c->fd < 0) {
            if (!c->busy)
                client_free(c); /* closed while answering synchronously */
            return;
        }
        if (c->busy)
            ev_io_stop(c->w->loop, &c->rio); /* read on after the answer */
    }
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)loop;
    (void)revents;
    client *c = io->data;
    if (c->inlen == sizeof c->in) {
        /* Only reachable while a request is answered: wait for it. */
        ev_io_stop(c->w->loop, &c->rio);
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        client_close(c);
        return;
    }
    c->inlen += (size_t)n;
    ev_timer_again(c->w->loop, &c->idle);
    process_input(c);
}

/* Idle keep-alive connections (and clients that send half a request) are
 * closed after the idle timeout; a request being answered has its own
 * deadline. */
static void on_idle(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    client *c = t->data;
    if (!c->busy)
        client_close(c);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
    (void)revents;
    worker *w = io->data;
    for (;;) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                perror("service: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        client *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->w = w;
        c->fd = fd;
        c->next = w->clients;
        if (w->clients)
            w->clients->prev = c;
        w->clients = c;
        w->nclients++;
        ev_io_init(&c->rio, on_readable, fd, EV_READ);
        ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
        ev_init(&c->idle, on_idle);
        c->idle.repeat = w->o->idle;
        c->rio.data = c->wio.data = c->idle.data = c;
        ev_io_start(loop, &c->rio);
        ev_timer_again(loop, &c->idle);
    }
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    server_stop(a->data);
}

void server_start(worker *w)
{
    ev_io_init(&w->accept_w, on_accept, w->lfd, EV_READ);
    w->accept_w.data = w;
    ev_io_start(w->loop, &w->accept_w);
    ev_async_init(&w->stop_w, on_stop);
    w->stop_w.data = w;
    ev_async_start(w->loop, &w->stop_w);
    stats_start(w);
}

static void on_pool_closed(evdb_future *f, void *arg)
{
    worker *w = arg;
    w->closed_ok = evdb_future_status(f) == 0;
    if (!w->closed_ok)
        fprintf(stderr, "service: thread %u: closing the pools: %s\n", w->index,
                evdb_error_message(evdb_future_error(f)));
    evdb_future_unref(f);
    w->closing = NULL;
    ev_async_stop(w->loop, &w->stop_w);
    ev_break(w->loop, EVBREAK_ONE);
}

/* Every connection is gone: close the pools, and leave the loop when
 * they are closed. The stop watcher stays active until then: it keeps the
 * loop running while the close completes. */
static void finish_stop(worker *w)
{
    ev_timer_stop(w->loop, &w->grace_w);
    if (w->closing || !w->pool)
        return;
    evdb_future *fs[2] = {evdb_pool_close(w->pool), NULL};
    size_t n = 1;
    if (w->reports)
        fs[n++] = evdb_pool_close(w->reports);
    w->pool = w->reports = NULL;
    if (n == 1) {
        w->closing = fs[0];
    } else {
        /* The gather holds the closes' futures (and so the pools) until
         * both are done. */
        w->closing = fs[0] && fs[1] ? evdb_gather(fs, n, EVDB_GATHER_ALL) : NULL;
        evdb_future_unref(fs[0]);
        evdb_future_unref(fs[1]);
    }
    if (!w->closing || evdb_future_on_done(w->closing, on_pool_closed, w) != 0) {
        evdb_future_unref(w->closing);
        w->closing = NULL;
        ev_async_stop(w->loop, &w->stop_w);
        ev_break(w->loop, EVBREAK_ONE);
    }
}

/* The grace period is over: close what is left; their queries are
 * cancelled and their answers dropped. */
static void on_grace(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    worker *w = t->data;
    client *c = w->clients;
    while (c) {
        client *next = c->next;
        client_close(c);
        c = next;
    }
}

void server_stop(worker *w)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    stats_stop(w);
    ev_io_stop(w->loop, &w->accept_w);
    close(w->lfd);
    w->lfd = -1;
    client *c = w->clients;
    while (c) {
        client *next = c->next;
        if (!c->busy && c->outlen == 0)
            client_close(c);
        c = next;
    }
    if (w->nclients == 0) {
        finish_stop(w);
        return;
    }
    ev_timer_init(&w->grace_w, on_grace, w->o->grace, 0);
    w->grace_w.data = w;
    ev_timer_start(w->loop, &w->grace_w);
}
