/*
 * Stack switching for tasks (see task_switch.h).
 *
 * The hand-written switch is a plain function call as far as the compiler
 * knows: the caller already assumes every caller-saved register clobbered,
 * so only the callee-saved ones need saving. They are pushed on the running
 * stack, the stack pointer is stored in `from`, the one in `to` loaded, and
 * the same frame is popped off the other stack. A new context's stack is
 * laid out as if it had been switched away from, with its return address
 * pointing at a small entry trampoline that calls entry(arg).
 *
 * The floating-point control state is callee-saved by both ABIs (x86-64:
 * MXCSR control bits and the x87 control word; aarch64: FPCR), so it is
 * switched too: a task that changes the rounding mode does not change it
 * for the loop. A new context starts with its creator's settings.
 *
 * The code is top-level inline assembly in this C file (not a .S file), so
 * the build needs no assembler language, and the object gets the compiler's
 * .note.GNU-stack (no executable stack).
 */
#include "task_switch.h"

#include <stdint.h>

#if !EVDB__CTX_UCONTEXT

/* The entry trampoline, defined in the assembly below: the first switch to a new
 * context "returns" into it. */
__attribute__((visibility("hidden"))) void evdb__ctx_start(void);

#if defined(__x86_64__)

/* System V AMD64: rbx, rbp, r12-r15 and rsp are callee-saved. Frame, from
 * the saved stack pointer up: x87 control word (8 bytes), MXCSR (8), r15,
 * r14, r13, r12, rbx, rbp, return address. */
__asm__(".text\n"
        ".p2align 4\n"
        ".globl evdb__ctx_switch\n"
        ".hidden evdb__ctx_switch\n"
        ".type evdb__ctx_switch, @function\n"
        "evdb__ctx_switch:\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $16, %rsp\n"
        "    stmxcsr 8(%rsp)\n"
        "    fnstcw (%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq (%rsi), %rsp\n"
        "    ldmxcsr 8(%rsp)\n"
        "    fldcw (%rsp)\n"
        "    addq $16, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size evdb__ctx_switch, .-evdb__ctx_switch\n"
        "\n"
        /* r12 = entry, r13 = arg, rbp = 0 (ends frame-pointer backtraces),
         * rsp 16-byte aligned here so that the call aligns the callee. */
        ".p2align 4\n"
        ".globl evdb__ctx_start\n"
        ".hidden evdb__ctx_start\n"
        ".type evdb__ctx_start, @function\n"
        "evdb__ctx_start:\n"
        "    movq %r13, %rdi\n"
        "    callq *%r12\n"
        "    ud2\n"
        ".size evdb__ctx_start, .-evdb__ctx_start\n");

enum {
    X86_FPUCW,
    X86_MXCSR,
    X86_R15,
    X86_R14,
    X86_R13,
    X86_R12,
    X86_RBX,
    X86_RBP,
    X86_RET,
    X86_FRAME_WORDS
};

/* Bytes left unused above the first frame (keeps the trampoline's rsp aligned). */
#define X86_TOP_SLACK 16u

int evdb__ctx_make(evdb__ctx *ctx, void *stack, size_t size, evdb__ctx_entry entry, void *arg)
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    uint64_t *frame = (uint64_t *)(top - X86_TOP_SLACK - X86_FRAME_WORDS * sizeof(uint64_t));
    for (int i = 0; i < X86_FRAME_WORDS; i++)
        frame[i] = 0;
    uint16_t cw;
    uint32_t mxcsr;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    frame[X86_FPUCW] = cw;
    frame[X86_MXCSR] = mxcsr;
    frame[X86_R12] = (uint64_t)(uintptr_t)entry;
    frame[X86_R13] = (uint64_t)(uintptr_t)arg;
    frame[X86_RET] = (uint64_t)(uintptr_t)evdb__ctx_start;
    ctx->sp = frame;
    return 0;
}

const char *evdb__ctx_impl(void)
{
    return "x86_64";
}

#elif defined(__aarch64__)

/* AAPCS64: x19-x28, x29 (fp), x30 (lr), sp and the low halves of v8-v15
 * are callee-saved. Frame (176 bytes, sp stays 16-byte aligned): x19-x28,
 * x29, x30, d8-d15, FPCR, padding. FPCR is only written when it differs:
 * writing it can stall the pipeline. */
__asm__(".text\n"
        ".p2align 4\n"
        ".globl evdb__ctx_switch\n"
        ".hidden evdb__ctx_switch\n"
        ".type evdb__ctx_switch, %function\n"
        "evdb__ctx_switch:\n"
        "    sub sp, sp, #176\n"
        "    stp x19, x20, [sp, #0]\n"
        "    stp x21, x22, [sp, #16]\n"
        "    stp x23, x24, [sp, #32]\n"
        "    stp x25, x26, [sp, #48]\n"
        "    stp x27, x28, [sp, #64]\n"
        "    stp x29, x30, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mrs x10, fpcr\n"
        "    str x10, [sp, #160]\n"
        "    mov x9, sp\n"
        "    str x9, [x0]\n"
        "    ldr x9, [x1]\n"
        "    mov sp, x9\n"
        "    ldr x9, [sp, #160]\n"
        "    cmp x9, x10\n"
        "    b.eq 1f\n"
        "    msr fpcr, x9\n"
        "1:\n"
        "    ldp x19, x20, [sp, #0]\n"
        "    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n"
        "    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n"
        "    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    add sp, sp, #176\n"
        "    ret\n"
        ".size evdb__ctx_switch, .-evdb__ctx_switch\n"
        "\n"
        /* x19 = entry, x20 = arg, x29 = 0 (ends frame-pointer backtraces). */
        ".p2align 4\n"
        ".globl evdb__ctx_start\n"
        ".hidden evdb__ctx_start\n"
        ".type evdb__ctx_start, %function\n"
        "evdb__ctx_start:\n"
        "    mov x0, x20\n"
        "    blr x19\n"
        "    brk #0\n"
        ".size evdb__ctx_start, .-evdb__ctx_start\n");

enum { A64_X19, A64_X20, A64_X29 = 10, A64_X30 = 11, A64_FPCR = 20, A64_FRAME_WORDS = 22 };

int evdb__ctx_make(evdb__ctx *ctx, void *stack, size_t size, evdb__ctx_entry entry, void *arg)
{
    uintptr_t top = ((uintptr_t)stack + size) & ~(uintptr_t)15;
    uint64_t *frame = (uint64_t *)(top - A64_FRAME_WORDS * sizeof(uint64_t));
    for (int i = 0; i < A64_FRAME_WORDS; i++)
        frame[i] = 0;
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    frame[A64_X19] = (uint64_t)(uintptr_t)entry;
    frame[A64_X20] = (uint64_t)(uintptr_t)arg;
    frame[A64_X29] = 0;
    frame[A64_X30] = (uint64_t)(uintptr_t)evdb__ctx_start;
    frame[A64_FPCR] = fpcr;
    ctx->sp = frame;
    return 0;
}

const char *evdb__ctx_impl(void)
{
    return "aarch64";
}

#endif

#else /* EVDB__CTX_UCONTEXT */

/* makecontext passes int arguments only: pointers travel in halves. */
static void uc_start(unsigned e_hi, unsigned e_lo, unsigned a_hi, unsigned a_lo)
{
    uintptr_t e = ((uintptr_t)e_hi << 16 << 16) | e_lo;
    uintptr_t a = ((uintptr_t)a_hi << 16 << 16) | a_lo;
    ((evdb__ctx_entry)e)((void *)a);
}

#define LOW32(x) ((unsigned)((uintptr_t)(x)&0xffffffffu))
#define HIGH32(x) ((unsigned)((uintptr_t)(x) >> 16 >> 16))

int evdb__ctx_make(evdb__ctx *ctx, void *stack, size_t size, evdb__ctx_entry entry, void *arg)
{
    if (getcontext(&ctx->uc) != 0)
        return -1;
    ctx->uc.uc_stack.ss_sp = stack;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_link = NULL;
    uintptr_t e = (uintptr_t)entry;
    makecontext(&ctx->uc, (void (*)(void))uc_start, 4, HIGH32(e), LOW32(e), HIGH32(arg),
                LOW32(arg));
    return 0;
}

void evdb__ctx_switch(evdb__ctx *from, const evdb__ctx *to)
{
    swapcontext(&from->uc, &to->uc);
}

const char *evdb__ctx_impl(void)
{
    return "ucontext";
}

#endif
