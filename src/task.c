/*
 * Tasks: functions on their own stacks that await futures (task.h).
 *
 * Scheduling is asymmetric: a task is always entered from the loop's side
 * (a deferred call to start or continue it, or the done-callback of the
 * future it awaits) and always switches back to whoever entered it. So a
 * task never resumes another task directly: waking one only queues the
 * resume, and evdb_future_cancel from inside a task is safe.
 *
 * Lifetime: a task holds a reference to its own future and to its loop
 * from spawn until its function has returned, and to the future it awaits
 * while suspended. It ends on the loop's side of the switch (a stack cannot
 * be unmapped while it is in use): the future completes, the stack goes
 * back to the per-thread cache or is unmapped, the task is freed.
 *
 * Stacks are mmap'd with a PROT_NONE guard page below them. The cache keeps
 * a few stacks of the default size so that short-lived tasks cost no
 * system call. Under AddressSanitizer every switch is announced with
 * __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber, and a
 * stack's shadow is cleared before reuse.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "task_switch.h"
#include "trace.h"

/* Under valgrind, task stacks are registered as stacks: without that,
 * memcheck takes a switch onto one for a huge stack-pointer change and
 * guesses ("client switching stacks?"). The header is optional. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef VALGRIND_STACK_REGISTER
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#if defined(__SANITIZE_ADDRESS__)
#define EVDB__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EVDB__ASAN 1
#endif
#endif
#ifndef EVDB__ASAN
#define EVDB__ASAN 0
#endif
#if EVDB__ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
/* Instrumented frames are several times bigger. */
#define STACK_DEFAULT ((size_t)EVDB_TASK_STACK_DEFAULT * 4)
#else
#define STACK_DEFAULT ((size_t)EVDB_TASK_STACK_DEFAULT)
#endif

#define STACK_CACHE_MAX 64 /* default-size stacks kept per thread */
#define TASK_NAME_MAX 32
#define TASK_FLAGS_KNOWN EVDB_TASK_NO_GUARD

typedef enum tstate {
    T_NEW,      /* spawned, start queued */
    T_RUNNING,  /* on its stack now */
    T_READY,    /* yielded, resume queued */
    T_AWAITING, /* suspended in evdb_await */
    T_DONE      /* function returned; ends on the loop's side */
} tstate;

static const char *tstate_name(tstate s)
{
    switch (s) {
    case T_NEW:
        return "starting";
    case T_RUNNING:
        return "running";
    case T_READY:
        return "ready";
    case T_AWAITING:
        return "awaiting";
    case T_DONE:
        return "done";
    }
    return "?";
}

typedef struct stack {
    void *map; /* the mapping: guard page(s) + stack */
    size_t map_len;
    void *lo; /* usable stack [lo, lo + size) */
    size_t size;
    bool guarded;
    unsigned vg_id; /* valgrind's stack id (0 when not under valgrind) */
} stack;

typedef struct task {
    evdb__ctx ctx;   /* the task's own, while it is switched out */
    evdb__ctx *back; /* where it returns: its resumer's context */
    evdb__loop *loop;
    evdb_future *f; /* own reference until the task ends */
    evdb_task_fn fn;
    void *arg;
    void *result;
    void *owned; /* evdb_task_return: value and its free function */
    void (*free_owned)(void *);
    evdb_error *fail;      /* evdb_task_fail: the future fails with this */
    evdb_future *awaiting; /* reference while suspended in evdb_await */
    evdb__deferred wake;   /* start and yield */
    stack st;
    tstate state;
    bool cancel_pending;        /* report EVDB_ECANCELED at the next await */
    bool cancelled;             /* the task's future was cancelled */
    bool is_main;               /* evdb_run's task: the result goes to its caller */
    void (**main_free)(void *); /* evdb_run: receives the result's free function */
    unsigned long long id;
    char name[TASK_NAME_MAX];
    struct task *prev, *next; /* this thread's live tasks */
#if EVDB__ASAN
    void *fake_stack;
    const void *back_bottom;
    size_t back_size;
#endif
} task;

/* Every change of a task's state goes through here (src/trace.h). */
#define set_state(t, s) set_state_at((t), (s), __FILE__, __LINE__)
static void set_state_at(task *t, tstate s, const char *file, int line)
{
    EVDB__TRACE_STATE("task", t, tstate_name(t->state), tstate_name(s), file, line);
    t->state = s;
}

/* Read on every await and resume: initial-exec TLS avoids a
 * __tls_get_addr call per access in the shared library (8 bytes of static
 * TLS, which glibc reserves room for even when libevdb is dlopen'ed). */
static __thread task *current EVDB__TLS_HOT;
static __thread task *live_head;
static __thread size_t live_count;
static __thread unsigned long long next_id;
static __thread stack cache[STACK_CACHE_MAX];
static __thread size_t ncache;
static __thread size_t stacks_mapped;

static evdb_unobserved_error_fn unobserved_fn;
static void *unobserved_arg;

size_t evdb__task_live(void)
{
    return live_count;
}

size_t evdb__task_stacks_cached(void)
{
    return ncache;
}

size_t evdb__task_stacks_mapped(void)
{
    return stacks_mapped;
}

/* ---- stacks ---- */

static size_t page_size(void)
{
    static size_t ps;
    if (!ps) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v > 0 ? (size_t)v : 4096;
    }
    return ps;
}

static void stack_unmap(stack *s)
{
#if EVDB__ASAN
    /* Frames that never returned (the task's entry, its last switch) left
     * their redzones poisoned: clear them before the memory is reused. */
    ASAN_UNPOISON_MEMORY_REGION(s->lo, s->size);
#endif
    VALGRIND_STACK_DEREGISTER(s->vg_id);
    munmap(s->map, s->map_len);
}

/* Unmap the cache when the thread exits. */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static bool cache_key_ok;

static void cache_drain(void *unused)
{
    (void)unused;
    while (ncache)
        stack_unmap(&cache[--ncache]);
}

static void cache_key_init(void)
{
    cache_key_ok = pthread_key_create(&cache_key, cache_drain) == 0;
}

static int stack_get(stack *s, size_t size, bool guard)
{
    if (size == STACK_DEFAULT && guard && ncache) {
        *s = cache[--ncache];
        return 0;
    }
    size_t gsize = guard ? page_size() : 0;
    void *map = mmap(NULL, size + gsize, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return evdb__fail_now(EVDB_ENOMEM, "evdb_task_spawn: cannot map a %zu-byte stack: %s", size,
                              strerror(errno));
    if (guard && mprotect(map, gsize, PROT_NONE) != 0) {
        int e = errno;
        munmap(map, size + gsize);
        /* Each guard page splits the mapping: this is where a process runs
         * into vm.max_map_count. */
        return evdb__fail_now(EVDB_ENOMEM,
                              "evdb_task_spawn: cannot protect the stack's guard page: %s (too "
                              "many live tasks for vm.max_map_count? see EVDB_TASK_NO_GUARD)",
                              strerror(e));
    }
#ifdef MADV_NOHUGEPAGE
    /* Unguarded stacks merge into one big mapping; with transparent huge
     * pages on "always" each touched stack would then cost 2 MiB. */
    if (!guard)
        madvise(map, size, MADV_NOHUGEPAGE);
#endif
    s->map = map;
    s->map_len = size + gsize;
    s->lo = (char *)map + gsize;
    s->size = size;
    s->guarded = guard;
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, (char *)s->lo + size);
    stacks_mapped++;
    return 0;
}

static void stack_put(stack *s)
{
    if (s->size == STACK_DEFAULT && s->guarded && ncache < STACK_CACHE_MAX) {
        pthread_once(&cache_once, cache_key_init);
        if (cache_key_ok) {
            if (ncache == 0)
                pthread_setspecific(cache_key, cache);
#if EVDB__ASAN
            ASAN_UNPOISON_MEMORY_REGION(s->lo, s->size);
#endif
            cache[ncache++] = *s;
            return;
        }
    }
    stack_unmap(s);
}

/* ---- switching ---- */

static void switch_into(task *t, evdb__ctx *here)
{
#if EVDB__ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, t->st.lo, t->st.size);
    evdb__ctx_switch(here, &t->ctx);
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
    evdb__ctx_switch(here, &t->ctx);
#endif
}

/* From the task's stack back to its resumer; returns when resumed. */
static void switch_out(task *t)
{
#if EVDB__ASAN
    __sanitizer_start_switch_fiber(&t->fake_stack, t->back_bottom, t->back_size);
    evdb__ctx_switch(&t->ctx, t->back);
    __sanitizer_finish_switch_fiber(t->fake_stack, &t->back_bottom, &t->back_size);
#else
    evdb__ctx_switch(&t->ctx, t->back);
#endif
}

static void task_end(task *t);

static void resume(task *t)
{
    evdb__ctx here;
    task *prev = current;
    /* here outlives the task's run: resume returns only after the task
     * switches back to it. */
    // cppcheck-suppress autoVariables
    t->back = &here;
    set_state(t, T_RUNNING);
    current = t;
    switch_into(t, &here);
    current = prev;
    if (t->state == T_DONE)
        task_end(t);
}

/* The first function on a task's stack. */
static void task_entry(void *arg)
{
    task *t = arg;
#if EVDB__ASAN
    __sanitizer_finish_switch_fiber(NULL, &t->back_bottom, &t->back_size);
#endif
    t->result = t->fn(t->arg);
    set_state(t, T_DONE);
#if EVDB__ASAN
    /* NULL: this stack is done for good, drop its fake stack. */
    __sanitizer_start_switch_fiber(NULL, t->back_bottom, t->back_size);
#endif
    evdb__ctx_switch(&t->ctx, t->back);
    abort(); /* a finished task is never resumed */
}

static void on_wake(evdb__deferred *d)
{
    task *t = EVDB__CONTAINER_OF(d, task, wake);
    resume(t);
}

static void on_awaited_done(evdb_future *f, void *arg)
{
    task *t = arg;
    if (t->awaiting != f || t->state != T_AWAITING)
        return;
    resume(t);
}

/* ---- lifetime ---- */

static void task_cancel(void *op)
{
    task *t = op;
    /* The future is already cancelled; stop what the task waits for and
     * let the task see it. Waking happens from the loop, through the
     * awaited future's callback (or the queued start or yield). */
    t->cancelled = true;
    t->cancel_pending = true;
    if (t->awaiting)
        evdb_future_cancel(t->awaiting);
}

static const evdb__future_ops task_ops = {task_cancel};

static void unlink_task(task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        live_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    live_count--;
}

static void task_end(task *t)
{
    bool owned = t->free_owned && t->result && t->result == t->owned;
    if (evdb__future_pending(t->f) && t->fail) {
        evdb__future_fail_err(t->f, t->fail);
    } else if (evdb__future_pending(t->f)) {
        void (*free_fn)(void *) = owned ? t->free_owned : NULL;
        if (t->is_main) {
            /* evdb_run hands the value and its free function to its caller. */
            if (t->main_free)
                *t->main_free = free_fn;
            free_fn = NULL;
        }
        evdb__future_resolve(t->f, t->result, free_fn);
        owned = false;
    }
    if (owned)
        t->free_owned(t->result); /* cancelled or failed: nobody gets it */
    evdb__free(t->fail);
    stack_put(&t->st);
    unlink_task(t);
    evdb_future_unref(t->f);
    evdb__loop_unref(t->loop);
    evdb__free(t);
}

static task *spawn(evdb__loop *l, evdb_task_fn fn, void *arg, const evdb_task_opts *opts,
                   evdb_future **out)
{
    size_t size = STACK_DEFAULT;
    bool guard = true;
    if (opts) {
        if (opts->flags & ~TASK_FLAGS_KNOWN) {
            evdb__fail_now(EVDB_EINVAL, "evdb_task_spawn: unknown flags 0x%x", opts->flags);
            return NULL;
        }
        for (size_t i = 0; i < sizeof opts->reserved / sizeof opts->reserved[0]; i++)
            if (opts->reserved[i]) {
                evdb__fail_now(EVDB_EINVAL, "evdb_task_spawn: reserved options must be zero");
                return NULL;
            }
        if (opts->stack_size > EVDB_TASK_STACK_MAX) {
            evdb__fail_now(EVDB_EINVAL, "evdb_task_spawn: stack_size %zu is over %zu",
                           opts->stack_size, EVDB_TASK_STACK_MAX);
            return NULL;
        }
        if (opts->stack_size) {
            size = opts->stack_size < EVDB_TASK_STACK_MIN ? EVDB_TASK_STACK_MIN : opts->stack_size;
            size = (size + page_size() - 1) & ~(page_size() - 1);
        }
        guard = !(opts->flags & EVDB_TASK_NO_GUARD);
    }
    task *t = evdb__calloc(1, sizeof *t);
    evdb_future *f = t ? evdb__future_new(l, EVDB__FK_TASK) : NULL;
    if (!t || !f) {
        evdb__free(t);
        evdb_future_unref(f);
        evdb__fail_now(EVDB_ENOMEM, "evdb_task_spawn: out of memory");
        return NULL;
    }
    if (stack_get(&t->st, size, guard) != 0) {
        evdb__free(t);
        evdb_future_unref(f);
        return NULL;
    }
    if (evdb__ctx_make(&t->ctx, t->st.lo, t->st.size, task_entry, t) != 0) {
        stack_put(&t->st);
        evdb__free(t);
        evdb_future_unref(f);
        evdb__fail_now(EVDB_ENOMEM, "evdb_task_spawn: cannot make a context");
        return NULL;
    }
    evdb__loop_ref(l);
    t->loop = l;
    t->f = evdb_future_ref(f);
    t->fn = fn;
    t->arg = arg;
    t->state = T_NEW; /* its first state: nothing to trace yet */
    t->id = ++next_id;
    t->wake.fn = on_wake;
    t->next = live_head;
    if (live_head)
        live_head->prev = t;
    live_head = t;
    live_count++;
    evdb__future_set_op(f, &task_ops, t);
    evdb__loop_defer(l, &t->wake);
    *out = f;
    return t;
}

/* The live task behind a task future, or NULL. */
static task *task_of(const evdb_future *f)
{
    if (!evdb__future_valid(f) || evdb__future_kind(f) != EVDB__FK_TASK)
        return NULL;
    task *t = evdb__future_op(f, &task_ops);
    if (t)
        return t;
    /* A cancelled task runs on until it returns, but its future no longer
     * points at it. */
    for (t = live_head; t; t = t->next)
        if (t->f == f)
            return t;
    return NULL;
}

/* ---- public API ---- */

evdb_future *evdb_task_spawn(struct ev_loop *loop, evdb_task_fn fn, void *arg,
                             const evdb_task_opts *opts)
{
    if (!loop || !fn) {
        evdb__fail_now(EVDB_EINVAL, "evdb_task_spawn: loop and fn are required");
        return NULL;
    }
    evdb__loop *l = evdb__loop_get(loop);
    if (!l) {
        evdb__fail_now(EVDB_ENOMEM, "evdb_task_spawn: out of memory");
        return NULL;
    }
    evdb_future *f = NULL;
    spawn(l, fn, arg, opts, &f);
    evdb__loop_unref(l);
    return f;
}

static int deliver_cancel(task *t)
{
    t->cancel_pending = false;
    return evdb__fail_now(EVDB_ECANCELED, "evdb_await: the task was cancelled");
}

int evdb_await(evdb_future *f)
{
    task *t = current;
    if (!t)
        return evdb__fail_now(EVDB_ENOTASK,
                              "evdb_await: not inside a task (spawn one with evdb_task_spawn or "
                              "evdb_run; outside tasks use evdb_future_wait or "
                              "evdb_future_on_done)");
    if (!evdb__future_valid(f))
        return evdb__fail_now(EVDB_EINVAL, "evdb_await: invalid future");
    if (evdb__future_loop(f) != t->loop)
        return evdb__fail_now(EVDB_EINVAL, "evdb_await: the future belongs to another loop");
    if (f == t->f)
        return evdb__fail_now(EVDB_EINVAL, "evdb_await: a task cannot await its own future");
    if (t->cancel_pending) {
        evdb_future_cancel(f);
        return deliver_cancel(t);
    }
    if (!evdb__future_pending(f))
        return evdb_future_status(f);
    if (evdb_future_on_done(f, on_awaited_done, t) != 0)
        return EVDB_ENOMEM; /* evdb_last_error says why */
    t->awaiting = evdb_future_ref(f);
    set_state(t, T_AWAITING);
    switch_out(t);
    t->awaiting = NULL;
    evdb_future_unref(f);
    if (t->cancel_pending)
        return deliver_cancel(t);
    return evdb_future_status(f);
}

int evdb_task_yield(void)
{
    task *t = current;
    if (!t)
        return evdb__fail_now(EVDB_ENOTASK, "evdb_task_yield: not inside a task");
    if (t->cancel_pending)
        return deliver_cancel(t);
    set_state(t, T_READY);
    evdb__loop_defer(t->loop, &t->wake);
    switch_out(t);
    if (t->cancel_pending)
        return deliver_cancel(t);
    return 0;
}

int evdb_run(struct ev_loop *loop, evdb_task_fn fn, void *arg, void **result)
{
    if (result)
        *result = NULL;
    if (!loop || !fn)
        return evdb__fail_now(EVDB_EINVAL, "evdb_run: loop and fn are required");
    if (current)
        return evdb__fail_now(EVDB_EINCALLBACK,
                              "evdb_run: called inside a task; spawn a task and await it");
    evdb__loop *l = evdb__loop_get(loop);
    if (!l)
        return evdb__fail_now(EVDB_ENOMEM, "evdb_run: out of memory");
    if (evdb__loop_running(l)) {
        evdb__loop_unref(l);
        return evdb__fail_now(EVDB_EINCALLBACK,
                              "evdb_run: called inside a callback of the loop it would run");
    }
    evdb_future *f = NULL;
    void (*free_fn)(void *) = NULL;
    task *t = spawn(l, fn, arg, NULL, &f);
    if (!t) {
        evdb__loop_unref(l);
        return evdb_error_code(evdb_last_error());
    }
    t->is_main = true;
    t->main_free = &free_fn;
    int st = evdb_future_wait(f);
    /* What to leave in evdb_last_error: the main task's error, or why the
     * wait gave up (the task is then still suspended). */
    evdb_error why;
    evdb__error_copy(&why,
                     st < 0 && !evdb__future_pending(f) ? evdb_future_error(f) : evdb_last_error());
    if (st == 0) {
        void *v = evdb_future_value(f);
        if (result)
            *result = v;
        else if (free_fn && v)
            free_fn(v);
    }
    /* asyncio.run: cancel what is left and let it finish. The main task
     * itself is among them when it waits for something that cannot come. */
    for (;;) {
        bool any = false;
        for (task *u = live_head; u; u = u->next) {
            if (u->loop != l)
                continue;
            any = true;
            if (evdb__future_pending(u->f))
                evdb_future_cancel(u->f);
        }
        if (!any || !evdb__loop_run_once(l))
            break;
    }
    evdb_future_unref(f);
    evdb__loop_unref(l);
    if (st != 0)
        evdb__set_last(&why);
    return st;
}

evdb_future *evdb_task_current(void)
{
    return current ? current->f : NULL;
}

struct ev_loop *evdb_task_loop(void)
{
    return current ? evdb__loop_ev(current->loop) : NULL;
}

void *evdb_task_fail_error(const evdb_error *err)
{
    task *t = current;
    if (!t) {
        evdb__fail_now(EVDB_ENOTASK, "evdb_task_fail: not inside a task");
        return NULL;
    }
    int code = err && err->code < 0 ? err->code : EVDB_EPROTO;
    if (!t->fail)
        t->fail = evdb__malloc(sizeof *t->fail);
    if (!t->fail) {
        /* It must stay a failure: complete the future now, with the bare
         * code (no memory for the message). */
        evdb__future_fail(t->f, code, NULL);
        return NULL;
    }
    if (err)
        evdb__error_copy(t->fail, err);
    else
        evdb__error_set(t->fail, code, 0, NULL, "task failed without an error");
    t->fail->code = code;
    return NULL;
}

void *evdb_task_fail(int code, const char *message)
{
    evdb_error e;
    if (code >= 0)
        code = EVDB_EPROTO;
    if (message)
        evdb__error_set(&e, code, 0, NULL, "%s", message);
    else
        evdb__error_set(&e, code, 0, NULL, NULL);
    return evdb_task_fail_error(&e);
}

void *evdb_task_return(void *value, void (*free_fn)(void *))
{
    task *t = current;
    if (!t) {
        evdb__fail_now(EVDB_ENOTASK, "evdb_task_return: not inside a task");
        return value;
    }
    t->owned = value;
    t->free_owned = free_fn;
    return value;
}

int evdb_task_cancelled(void)
{
    return current && current->cancelled;
}

int evdb_task_set_name(evdb_future *f, const char *name)
{
    task *t;
    if (!f) {
        t = current;
        if (!t)
            return evdb__fail_now(EVDB_EINVAL, "evdb_task_set_name: NULL outside a task");
    } else {
        if (!evdb__future_valid(f) || evdb__future_kind(f) != EVDB__FK_TASK)
            return evdb__fail_now(EVDB_EINVAL, "evdb_task_set_name: not a task future");
        t = task_of(f);
        if (!t)
            return evdb__fail_now(EVDB_ESTATE, "evdb_task_set_name: the task has finished");
    }
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    return 0;
}

/* ---- diagnostics ---- */

static const char *kind_name(evdb__fkind k)
{
    switch (k) {
    case EVDB__FK_USER:
        return "user";
    case EVDB__FK_QUERY:
        return "query";
    case EVDB__FK_OPEN:
        return "open";
    case EVDB__FK_SLEEP:
        return "sleep";
    case EVDB__FK_GATHER:
        return "gather";
    case EVDB__FK_RACE:
        return "race";
    case EVDB__FK_TIMEOUT:
        return "timeout";
    case EVDB__FK_CLOSE:
        return "close";
    case EVDB__FK_TASK:
        return "task";
    case EVDB__FK_TXN:
        return "transaction";
    }
    return "future";
}

static const char *state_name(const task *t)
{
    return tstate_name(t->state);
}

void evdb_task_dump(struct ev_loop *loop, FILE *out)
{
    if (!out)
        return;
    size_t n = 0;
    for (task *t = live_head; t; t = t->next)
        if (evdb__loop_ev(t->loop) == loop)
            n++;
    fprintf(out, "evdb: %zu live task(s)\n", n);
    for (task *t = live_head; t; t = t->next) {
        if (evdb__loop_ev(t->loop) != loop)
            continue;
        fprintf(out, "  task #%llu", t->id);
        if (t->name[0])
            fprintf(out, " \"%s\"", t->name);
        fprintf(out, " %s%s, stack %zu KiB%s", state_name(t), t->cancelled ? " (cancelled)" : "",
                t->st.size / 1024, t->st.guarded ? "" : " unguarded");
        const evdb_future *a = t->awaiting;
        if (a) {
            fprintf(out, ", awaits %s future %p", kind_name(evdb__future_kind(a)), (const void *)a);
            const task *at = evdb__future_kind(a) == EVDB__FK_TASK ? task_of(a) : NULL;
            if (at) {
                fprintf(out, " (task #%llu", at->id);
                if (at->name[0])
                    fprintf(out, " \"%s\"", at->name);
                fputc(')', out);
            }
            /* Peek without marking the future observed. */
            fprintf(out, " [%s]", evdb__future_pending(a) ? "pending" : "done, wake-up queued");
        }
        fputc('\n', out);
    }
}

/* ---- unobserved errors ---- */

void evdb_set_unobserved_error_hook(evdb_unobserved_error_fn fn, void *arg)
{
    unobserved_fn = fn;
    unobserved_arg = arg;
}

void evdb__report_unobserved(const evdb_future *f, const evdb_error *err)
{
    evdb_unobserved_error_fn fn = unobserved_fn;
    if (fn)
        fn(err, kind_name(evdb__future_kind(f)), unobserved_arg);
}
