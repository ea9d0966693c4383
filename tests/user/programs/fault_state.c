/* The state a fault leaves in the middle of a block: each case runs a few instructions and then a load or
 * store to an unmapped address, all in one asm statement (one block for a translator), and a SIGSEGV handler
 * prints the registers and arithmetic flags the kernel saved in the ucontext before jumping out.  Written
 * for the Python tier's rollback (cpu/backends/python.py: a snapshot names where each register and the flags
 * live at every instruction that can fault), run against the same binary natively. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

static sigjmp_buf back;
static const int shown[] = {REG_RAX, REG_RBX, REG_RCX, REG_RSI, REG_RDI, REG_R8, REG_R9, REG_R10};
static const char *const names[] = {"rax", "rbx", "rcx", "rsi", "rdi", "r8", "r9", "r10"};

static void on_segv(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    (void)sig;
    printf("  fault at %p, flags %#llx:", info->si_addr, (unsigned long long)uc->uc_mcontext.gregs[REG_EFL] & 0x8d5);
    for (unsigned i = 0; i < sizeof shown / sizeof shown[0]; i++)
        printf(" %s=%#llx", names[i], (unsigned long long)uc->uc_mcontext.gregs[shown[i]]);
    printf("\n");
    siglongjmp(back, 1);
}

#define CLOBBERS "rax", "rbx", "rsi", "rdi", "r8", "r9", "r10", "cc", "memory"
/* Every register the handler prints starts known (moves leave the flags alone); the faulting address is in
 * RDX and RCX holds a seed the translator cannot see as a constant. */
#define KNOWN "mov $0xa0, %%eax\n\tmov $0xb0, %%ebx\n\tmov $0x50, %%esi\n\t" \
              "mov $0xd0, %%edi\n\tmov $0x80, %%r8d\n\tmov $0x90, %%r9d\n\tmov $0x10, %%r10d\n\t"

/* A compare whose result nothing but the flags keeps, then a faulting store; the flags are set again after. */
static void compare_then_store(uintptr_t bad, uint64_t seed) {
    asm volatile(KNOWN "lea 7(%%rcx), %%rax\n\tmov $5, %%rbx\n\tcmp %%rbx, %%rax\n\tmov %%rcx, (%%rdx)\n\t"
                 "xor %%ecx, %%ecx\n\tmov $1, %%rax\n\tmov $1, %%rbx"
                 : "+c"(seed) : "d"(bad) : CLOBBERS);
}

/* A subtraction that wraps (CF, SF), then a faulting load. */
static void subtract_then_load(uintptr_t bad, uint64_t seed) {
    asm volatile(KNOWN "lea 3(%%rcx), %%rsi\n\tmov $9, %%rdi\n\tsub %%rdi, %%rsi\n\tmov (%%rdx), %%rcx\n\t"
                 "add $1, %%rsi\n\tmov $2, %%rdi"
                 : "+c"(seed) : "d"(bad) : CLOBBERS);
}

/* Registers written from other registers, constants and sums, overwritten after the fault. */
static void registers_then_store(uintptr_t bad, uint64_t seed) {
    asm volatile(KNOWN "mov $0x1122334455, %%r8\n\tadd %%rcx, %%r8\n\tmov %%r8, %%r9\n\t"
                 "lea 8(%%r8,%%r9,2), %%r10\n\tadd %%r9, %%r10\n\tmov $0x1234, %%edi\n\tmov %%r10d, %%eax\n\t"
                 "mov $0x77, %%al\n\tinc %%rdi\n\tmov %%rcx, %%rsi\n\tmovq $0, (%%rdx)\n\t"
                 "mov $0, %%r8\n\tmov $0, %%r9\n\tmov $0, %%r10\n\tmov $0, %%edi\n\tmov $0, %%eax\n\t"
                 "mov $0, %%esi\n\tdec %%rdi"
                 : "+c"(seed) : "d"(bad) : CLOBBERS);
}

/* A logical result kept only in the flags, then a faulting read-modify-write. */
static void test_then_add_to_memory(uintptr_t bad, uint64_t seed) {
    asm volatile(KNOWN "lea 0x80(%%rcx), %%rbx\n\tlea 0x180(%%rcx), %%rcx\n\ttest %%bl, %%cl\n\t"
                 "add %%rbx, (%%rdx)\n\tcmp %%rbx, %%rbx"
                 : "+c"(seed) : "d"(bad) : CLOBBERS);
}

static volatile uint64_t seed = 0;

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    static void (*const cases[])(uintptr_t, uint64_t) = {compare_then_store, subtract_then_load, registers_then_store,
                                               test_then_add_to_memory};
    static const char *titles[] = {"compare_then_store", "subtract_then_load", "registers_then_store",
                                   "test_then_add_to_memory"};
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        printf("%s\n", titles[i]);
        if (sigsetjmp(back, 1) == 0)
            cases[i](0x10 + 8 * i, seed);
    }
    return 0;
}
