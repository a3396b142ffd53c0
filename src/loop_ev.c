/*
 * The libev glue: the only file of the core that includes <ev.h>.
 *
 * evdb attaches a small state to each application loop it is used on,
 * found through a per-thread list (one loop per thread is the rule, so the
 * list is one entry long). The state is reference counted by every evdb
 * object on the loop and disappears with the last one, taking its watchers
 * with it: an application loop with no evdb objects holds nothing of ours.
 *
 * Deferred calls (future callbacks, connection pumps) run from an ev_check
 * watcher; an ev_idle watcher is active while any are queued so that the
 * loop polls without blocking. This keeps callbacks off the caller's stack
 * without a syscall per callback (ev_async would write to an eventfd).
 *
 * evdb never touches the default loop's child watchers: it only starts io,
 * timer, idle and check watchers on the loop it is given.
 */
#include <ev.h>

#include "internal.h"

struct evdb__loop {
    struct ev_loop *ev;
    size_t refs;
    ev_check check;
    ev_idle idle;
    evdb__deferred *head, *tail;
    evdb__loop *next_loop;
};

struct evdb__io {
    ev_io w;
    evdb__loop *loop;
    evdb__io_cb cb;
    void *arg;
};

struct evdb__timer {
    ev_timer w;
    evdb__loop *loop;
    evdb__timer_cb cb;
    void *arg;
};

static __thread evdb__loop *loops EVDB__TLS_HOT;
static __thread size_t nloops EVDB__TLS_HOT;

/* Passes over the deferred queue per loop iteration: enough for a query's
 * callback to submit the next query (its send is deferred) and for that
 * send to go out in the same iteration, without a second poll. */
#define DEFER_PASSES 3

static void run_deferred(evdb__loop *l)
{
    /* Each pass runs what is queued when it starts; what those calls queue
     * runs in the next pass, and after DEFER_PASSES on the next loop
     * iteration, so a callback that re-registers itself cannot starve I/O. */
    if (!l->head)
        return;
    evdb__loop_ref(l);
    for (int pass = 0; pass < DEFER_PASSES && l->head; pass++) {
        evdb__deferred *d = l->head;
        evdb__deferred *last = l->tail;
        for (;;) {
            evdb__deferred *next = d->next;
            bool was_last = d == last;
            l->head = next;
            if (!next)
                l->tail = NULL;
            d->next = NULL;
            d->queued = false;
            d->fn(d);
            if (was_last || !l->head)
                break;
            d = l->head;
        }
    }
    if (!l->head)
        ev_idle_stop(l->ev, &l->idle);
    evdb__loop_unref(l);
}

static void on_check(struct ev_loop *ev, ev_check *w, int revents)
{
    (void)ev;
    (void)revents;
    run_deferred(w->data);
}

static void on_idle(struct ev_loop *ev, ev_idle *w, int revents)
{
    (void)ev;
    (void)revents;
    /* Only keeps the loop from blocking; on_check does the work. */
    (void)w;
}

evdb__loop *evdb__loop_get(struct ev_loop *ev)
{
    if (!ev)
        return NULL;
    for (evdb__loop *l = loops; l; l = l->next_loop)
        if (l->ev == ev) {
            l->refs++;
            return l;
        }
    evdb__loop *l = evdb__calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->ev = ev;
    l->refs = 1;
    ev_check_init(&l->check, on_check);
    l->check.data = l;
    /* libev invokes the pending watchers of one priority last-queued
     * first, so a check watcher of the default priority would run before
     * the io and timer callbacks of its own iteration, and the work they
     * defer would wait for the next iteration (after a zero-timeout poll).
     * At the lowest priority it runs after all of them. */
    ev_set_priority(&l->check, EV_MINPRI);
    ev_check_start(ev, &l->check);
    /* The check watcher alone must not keep ev_run from returning. */
    ev_unref(ev);
    ev_idle_init(&l->idle, on_idle);
    l->idle.data = l;
    l->next_loop = loops;
    loops = l;
    nloops++;
    return l;
}

void evdb__loop_ref(evdb__loop *l)
{
    l->refs++;
}

void evdb__loop_unref(evdb__loop *l)
{
    if (--l->refs)
        return;
    ev_ref(l->ev);
    ev_check_stop(l->ev, &l->check);
    ev_idle_stop(l->ev, &l->idle);
    for (evdb__loop **pp = &loops; *pp; pp = &(*pp)->next_loop)
        if (*pp == l) {
            *pp = l->next_loop;
            break;
        }
    nloops--;
    evdb__free(l);
}

struct ev_loop *evdb__loop_ev(const evdb__loop *l)
{
    return l->ev;
}

double evdb__loop_now(evdb__loop *l)
{
    return ev_now(l->ev);
}

void evdb__loop_defer(evdb__loop *l, evdb__deferred *d)
{
    if (d->queued)
        return;
    d->queued = true;
    d->next = NULL;
    if (l->tail)
        l->tail->next = d;
    else
        l->head = d;
    l->tail = d;
    if (!ev_is_active(&l->idle))
        ev_idle_start(l->ev, &l->idle);
}

void evdb__loop_undefer(evdb__loop *l, evdb__deferred *d)
{
    if (!d->queued)
        return;
    evdb__deferred *prev = NULL;
    for (evdb__deferred *p = l->head; p; prev = p, p = p->next) {
        if (p != d)
            continue;
        if (prev)
            prev->next = p->next;
        else
            l->head = p->next;
        if (l->tail == p)
            l->tail = prev;
        break;
    }
    d->queued = false;
    d->next = NULL;
    if (!l->head)
        ev_idle_stop(l->ev, &l->idle);
}

bool evdb__loop_running(const evdb__loop *l)
{
    return ev_depth(l->ev) > 0;
}

bool evdb__loop_run_once(evdb__loop *l)
{
    return ev_run(l->ev, EVRUN_ONCE) != 0;
}

size_t evdb__loop_live(void)
{
    return nloops;
}

/* ---- io ---- */

static void on_io(struct ev_loop *ev, ev_io *w, int revents)
{
    (void)ev;
    evdb__io *io = w->data;
    unsigned ev_mask = 0;
    if (revents & EV_READ)
        ev_mask |= EVDB__EV_READ;
    if (revents & EV_WRITE)
        ev_mask |= EVDB__EV_WRITE;
    io->cb(io->arg, ev_mask);
}

evdb__io *evdb__io_new(evdb__loop *l, evdb__io_cb cb, void *arg)
{
    evdb__io *io = evdb__calloc(1, sizeof *io);
    if (!io)
        return NULL;
    ev_init(&io->w, on_io);
    io->w.data = io;
    io->loop = l;
    io->cb = cb;
    io->arg = arg;
    evdb__loop_ref(l);
    return io;
}

void evdb__io_arm(evdb__io *io, int fd, unsigned events)
{
    ev_io_stop(io->loop->ev, &io->w);
    if (fd < 0 || !(events & (EVDB__EV_READ | EVDB__EV_WRITE)))
        return;
    int mask =
        ((events & EVDB__EV_READ) ? EV_READ : 0) | ((events & EVDB__EV_WRITE) ? EV_WRITE : 0);
    ev_io_set(&io->w, fd, mask);
    ev_io_start(io->loop->ev, &io->w);
}

void evdb__io_update(evdb__io *io, int fd, unsigned events)
{
    int mask =
        ((events & EVDB__EV_READ) ? EV_READ : 0) | ((events & EVDB__EV_WRITE) ? EV_WRITE : 0);
    if (fd < 0 || !mask || !ev_is_active(&io->w) || io->w.fd != fd) {
        evdb__io_arm(io, fd, events);
        return;
    }
    if ((io->w.events & (EV_READ | EV_WRITE)) == mask)
        return;
    /* Same socket, other events: without ev_io_set libev only tells the
     * kernel when the combined events of the fd change. */
    ev_io_stop(io->loop->ev, &io->w);
    ev_io_modify(&io->w, mask);
    ev_io_start(io->loop->ev, &io->w);
}

void evdb__io_free(evdb__io *io)
{
    if (!io)
        return;
    ev_io_stop(io->loop->ev, &io->w);
    evdb__loop_unref(io->loop);
    evdb__free(io);
}

/* ---- timers ---- */

static void on_timer(struct ev_loop *ev, ev_timer *w, int revents)
{
    (void)ev;
    (void)revents;
    evdb__timer *t = w->data;
    t->cb(t->arg);
}

evdb__timer *evdb__timer_new(evdb__loop *l, evdb__timer_cb cb, void *arg)
{
    evdb__timer *t = evdb__calloc(1, sizeof *t);
    if (!t)
        return NULL;
    ev_init(&t->w, on_timer);
    t->w.data = t;
    t->loop = l;
    t->cb = cb;
    t->arg = arg;
    evdb__loop_ref(l);
    return t;
}

void evdb__timer_start(evdb__timer *t, double seconds)
{
    ev_timer_stop(t->loop->ev, &t->w);
    ev_timer_set(&t->w, seconds < 0 ? 0 : seconds, 0.);
    ev_timer_start(t->loop->ev, &t->w);
}

void evdb__timer_stop(evdb__timer *t)
{
    ev_timer_stop(t->loop->ev, &t->w);
}

void evdb__timer_free(evdb__timer *t)
{
    if (!t)
        return;
    ev_timer_stop(t->loop->ev, &t->w);
    evdb__loop_unref(t->loop);
    evdb__free(t);
}
