/* Two processes keep their own values in all sixteen ymm registers across context switches.
 *
 * Run in the booted guest by tests/boot/test_avx_context.py: the process forks; each of the two loads a
 * pattern of its own (different in every 128-bit half, so a kernel that saved only the SSE part of the
 * registers, FXSAVE's share, would lose the upper halves) into ymm0-ymm15, calls sched_yield, so the kernel
 * switches to the other process, and spins, so the timer interrupt may preempt it there; then it stores the
 * registers and compares them with the pattern.  All of that is one asm statement: no compiler spill in
 * between.  Each process prints one line, `avx-switch: pid P OK ...` or `avx-switch: pid P FAIL ...`, with its
 * context switch counts (getrusage), and the parent's exit status is 0 only if both are OK.
 *
 * Usage: avx_switch [ITERATIONS [SPIN]]   (default 2000 iterations, 2000 spins each)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define REGISTERS 16
#define QWORDS (REGISTERS * 4)

static uint64_t next(uint64_t *state)
{
    /* xorshift64: a different pattern each iteration and in each process */
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Load want[] into ymm0..ymm15, sched_yield, spin `spin` times, store ymm0..ymm15 into got[]. */
static void hold(const uint64_t *want, uint64_t *got, long spin)
{
    __asm__ volatile(
        "vmovdqu 0(%[w]), %%ymm0\n\t"    "vmovdqu 32(%[w]), %%ymm1\n\t"
        "vmovdqu 64(%[w]), %%ymm2\n\t"   "vmovdqu 96(%[w]), %%ymm3\n\t"
        "vmovdqu 128(%[w]), %%ymm4\n\t"  "vmovdqu 160(%[w]), %%ymm5\n\t"
        "vmovdqu 192(%[w]), %%ymm6\n\t"  "vmovdqu 224(%[w]), %%ymm7\n\t"
        "vmovdqu 256(%[w]), %%ymm8\n\t"  "vmovdqu 288(%[w]), %%ymm9\n\t"
        "vmovdqu 320(%[w]), %%ymm10\n\t" "vmovdqu 352(%[w]), %%ymm11\n\t"
        "vmovdqu 384(%[w]), %%ymm12\n\t" "vmovdqu 416(%[w]), %%ymm13\n\t"
        "vmovdqu 448(%[w]), %%ymm14\n\t" "vmovdqu 480(%[w]), %%ymm15\n\t"
        "mov %[nr], %%eax\n\t"
        "syscall\n\t"
        "1: dec %[spin]\n\t"
        "jnz 1b\n\t"
        "vmovdqu %%ymm0, 0(%[g])\n\t"    "vmovdqu %%ymm1, 32(%[g])\n\t"
        "vmovdqu %%ymm2, 64(%[g])\n\t"   "vmovdqu %%ymm3, 96(%[g])\n\t"
        "vmovdqu %%ymm4, 128(%[g])\n\t"  "vmovdqu %%ymm5, 160(%[g])\n\t"
        "vmovdqu %%ymm6, 192(%[g])\n\t"  "vmovdqu %%ymm7, 224(%[g])\n\t"
        "vmovdqu %%ymm8, 256(%[g])\n\t"  "vmovdqu %%ymm9, 288(%[g])\n\t"
        "vmovdqu %%ymm10, 320(%[g])\n\t" "vmovdqu %%ymm11, 352(%[g])\n\t"
        "vmovdqu %%ymm12, 384(%[g])\n\t" "vmovdqu %%ymm13, 416(%[g])\n\t"
        "vmovdqu %%ymm14, 448(%[g])\n\t" "vmovdqu %%ymm15, 480(%[g])\n\t"
        "vzeroupper\n\t"
        : [spin] "+r"(spin)
        : [w] "r"(want), [g] "r"(got), [nr] "i"(SYS_sched_yield)
        : "rax", "rcx", "r11", "memory", "cc",
          "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
          "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

static int run(uint64_t seed, long iterations, long spin)
{
    uint64_t want[QWORDS], got[QWORDS], state = seed;
    for (long i = 0; i < iterations; i++) {
        for (int q = 0; q < QWORDS; q++)
            want[q] = next(&state);
        hold(want, got, spin);
        for (int q = 0; q < QWORDS; q++) {
            if (got[q] != want[q]) {
                printf("avx-switch: pid %d FAIL at iteration %ld: ymm%d qword %d is %#llx, want %#llx\n",
                       (int)getpid(), i, q / 4, q % 4, (unsigned long long)got[q], (unsigned long long)want[q]);
                return 1;
            }
        }
    }
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    printf("avx-switch: pid %d OK %ld iterations, %ld voluntary and %ld involuntary context switches\n",
           (int)getpid(), iterations, usage.ru_nvcsw, usage.ru_nivcsw);
    return 0;
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 2000;
    long spin = argc > 2 ? atol(argv[2]) : 2000;
    if (iterations < 1 || spin < 1) {
        fprintf(stderr, "usage: avx_switch [ITERATIONS [SPIN]], both at least 1\n");
        return 2;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        perror("avx-switch: fork");
        return 1;
    }
    int failed = run(child == 0 ? 0x9E3779B97F4A7C15ull : 0xD1B54A32D192ED03ull, iterations, spin);
    fflush(stdout);
    if (child == 0)
        _exit(failed);
    int status;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        failed = 1;
    return failed;
}
