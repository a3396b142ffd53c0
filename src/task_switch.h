/*
 * Stack switching for tasks: make a context that runs a function on a
 * given stack, and switch between contexts.
 *
 * Two implementations, chosen at build time:
 *  - a hand-written switch for x86-64 and aarch64 (task_switch.c) that
 *    saves only the callee-saved registers, the floating-point control
 *    words and the stack pointer: a few nanoseconds;
 *  - glibc's makecontext/swapcontext, the portable fallback, used on other
 *    architectures or when built with EVDB_TASK_UCONTEXT=1 (CMake option
 *    EVDB_TASK_UCONTEXT). swapcontext also saves the signal mask with a
 *    system call per switch, hence ~150 ns.
 * Nothing here knows about tasks, futures or the loop.
 */
#ifndef EVDB_TASK_SWITCH_H
#define EVDB_TASK_SWITCH_H

#include <stddef.h>

#if defined(EVDB_TASK_UCONTEXT) && EVDB_TASK_UCONTEXT
#define EVDB__CTX_UCONTEXT 1
#elif !defined(__x86_64__) && !defined(__aarch64__)
#define EVDB__CTX_UCONTEXT 1
#elif defined(__CET__) && (__CET__ & 2)
/* Built for Intel CET shadow stacks (-fcf-protection=return/full): a `ret`
 * onto another stack would fault once the kernel enforces them, and glibc's
 * swapcontext knows how to switch shadow stacks. */
#define EVDB__CTX_UCONTEXT 1
#else
#define EVDB__CTX_UCONTEXT 0
#endif

#if EVDB__CTX_UCONTEXT
#include <ucontext.h>
typedef struct evdb__ctx {
    ucontext_t uc;
} evdb__ctx;
#else
/* Everything else lives on the context's own stack, below sp. */
typedef struct evdb__ctx {
    void *sp;
} evdb__ctx;
#endif

typedef void (*evdb__ctx_entry)(void *arg);

/* Prepare ctx so that the first switch to it calls entry(arg) on the stack
 * [stack, stack + size). entry must never return: it ends by switching away
 * for good. Returns 0, or -1 (ucontext only: getcontext failed). */
int evdb__ctx_make(evdb__ctx *ctx, void *stack, size_t size, evdb__ctx_entry entry, void *arg);

/* Save the running context into from and continue to. Returns when some
 * later switch targets from. */
void evdb__ctx_switch(evdb__ctx *from, const evdb__ctx *to);

/* "x86_64", "aarch64" or "ucontext". */
const char *evdb__ctx_impl(void);

#endif
