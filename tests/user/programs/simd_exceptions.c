/* Unmasked SIMD floating-point exceptions (#XM, SIGFPE) and the x87's last-instruction pointers.
 *
 * Each case loads xmm1/ymm1 from A and xmm2/ymm2 from B, sets MXCSR, and runs one instruction at a
 * label.  When it faults, the SIGFPE handler prints si_code, si_addr relative to the label, the MXCSR
 * flags and xmm1 (the destination, unchanged) from the ucontext's fpstate, and then either siglongjmps
 * out or masks every exception in the saved MXCSR and returns (the instruction runs again, masked).
 * Run natively and under `emu run`: the output is the same.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

float A[8] __attribute__((aligned(32)));
float B[8] __attribute__((aligned(32)));
uint32_t OUT[10] __attribute__((aligned(32)));
uint64_t RAX_OUT;
uint32_t MXCSR_IN;
static sigjmp_buf jump;
static const char *label;      /* the faulting instruction's address, for si_addr */
static int resume;              /* mask everything in the handler's MXCSR and return, or siglongjmp */

#define INSN(name, body)                                                                     \
    extern const char name##_at[];                                                           \
    static void name(void) {                                                                 \
        __asm__ volatile("vmovaps A(%%rip), %%ymm1\n\tvmovaps B(%%rip), %%ymm2\n\t"          \
                         "movq $0x1234, %%rax\n\tldmxcsr MXCSR_IN(%%rip)\n"                  \
                         #name "_at:\n\t" body "\n\t"                                        \
                         "vmovaps %%ymm1, OUT(%%rip)\n\tmovq %%rax, RAX_OUT(%%rip)\n\t"      \
                         "vzeroupper" ::: "rax", "xmm1", "xmm2", "memory");                  \
    }

INSN(divps, "divps %%xmm2, %%xmm1")
INSN(divss, "divss %%xmm2, %%xmm1")
INSN(vdivps, "vdivps %%ymm2, %%ymm1, %%ymm1")
INSN(vdivss, "vdivss %%xmm2, %%xmm1, %%xmm1")
INSN(addps, "addps %%xmm2, %%xmm1")
INSN(vaddpd, "vaddpd %%ymm2, %%ymm1, %%ymm1")
INSN(mulss, "mulss %%xmm2, %%xmm1")
INSN(mulsd, "mulsd %%xmm2, %%xmm1")
INSN(sqrtss, "sqrtss %%xmm2, %%xmm1")
INSN(sqrtpd, "sqrtpd %%xmm2, %%xmm1")
INSN(minps, "minps %%xmm2, %%xmm1")
INSN(maxsd, "maxsd %%xmm2, %%xmm1")
INSN(comiss, "comiss %%xmm2, %%xmm1")
INSN(ucomiss, "ucomiss %%xmm2, %%xmm1")
INSN(vcomisd, "vcomisd %%xmm2, %%xmm1")
INSN(cmpltps, "cmpltps %%xmm2, %%xmm1")
INSN(cmpeqps, "cmpeqps %%xmm2, %%xmm1")
INSN(cvtsd2ss, "cvtsd2ss %%xmm2, %%xmm1")
INSN(cvtpd2ps, "cvtpd2ps %%xmm2, %%xmm1")
INSN(cvtss2sd, "cvtss2sd %%xmm2, %%xmm1")
INSN(cvtps2dq, "cvtps2dq %%xmm2, %%xmm1")
INSN(cvttss2si, "cvttss2si %%xmm2, %%eax")
INSN(roundps, "roundps $0, %%xmm2, %%xmm1")
INSN(roundps_quiet, "roundps $8, %%xmm2, %%xmm1")
INSN(dpps, "dpps $0xff, %%xmm2, %%xmm1")
INSN(haddps, "haddps %%xmm2, %%xmm1")
INSN(addsubpd, "addsubpd %%xmm2, %%xmm1")
INSN(vfmadd231ps, "vfmadd231ps %%ymm2, %%ymm2, %%ymm1")
INSN(vfmadd213ss, "vfmadd213ss %%xmm2, %%xmm2, %%xmm1")
INSN(vcvtps2ph, "vcvtps2ph $4, %%xmm2, %%xmm1")
INSN(vsqrtps, "vsqrtps %%ymm2, %%ymm1")
INSN(vcvtps2ph_m64, "vcvtps2ph $4, %%xmm2, OUT+32(%%rip)")

static const float INF = __builtin_inff(), QNAN = __builtin_nanf(""), BIG = 1e38f, DENORMAL = 1e-40f;

static void handler(int sig, siginfo_t *si, void *uc_) {
    ucontext_t *uc = uc_;
    struct _libc_fpstate *fp = uc->uc_mcontext.fpregs;
    printf("  SIGFPE si_code %d at %+ld, mxcsr flags %#x, rax %#llx, xmm1 %08x %08x %08x %08x, memory %08x %08x\n",
           si->si_code, (long)((const char *)si->si_addr - label), fp->mxcsr & 0x3f,
           (unsigned long long)uc->uc_mcontext.gregs[REG_RAX], fp->_xmm[1].element[0], fp->_xmm[1].element[1],
           fp->_xmm[1].element[2], fp->_xmm[1].element[3], OUT[8], OUT[9]);
    (void)sig;
    if (resume) {
        fp->mxcsr |= 0x1f80;
        return;
    }
    siglongjmp(jump, 1);
}

static void run(const char *name, void (*fn)(void), const char *at, uint32_t unmasked, const float a[8],
                const float b[8]) {
    memcpy(A, a, sizeof A);
    memcpy(B, b, sizeof B);
    memset(OUT, 0xee, sizeof OUT);
    MXCSR_IN = 0x1f80 & ~(unmasked << 7);
    label = at;
    printf("%s unmasked %#x%s\n", name, unmasked, resume ? " (handler masks and returns)" : "");
    if (sigsetjmp(jump, 1) == 0) {
        fn();
        uint32_t mxcsr;
        __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
        printf("  no fault: mxcsr %#x, rax %#llx, result %08x %08x %08x %08x %08x %08x %08x %08x, memory %08x %08x\n",
               mxcsr, (unsigned long long)RAX_OUT, OUT[0], OUT[1], OUT[2], OUT[3], OUT[4], OUT[5], OUT[6], OUT[7],
               OUT[8], OUT[9]);
    }
    uint32_t clean = 0x1f80;
    __asm__ volatile("ldmxcsr %0" ::"m"(clean));
}

#define RUN(name, unmasked, ...)                                                                 \
    do {                                                                                         \
        const float ab[2][8] = __VA_ARGS__;                                                      \
        run(#name, name, name##_at, unmasked, ab[0], ab[1]);                                     \
    } while (0)

enum { IE = 1, DE = 2, ZE = 4, OE = 8, UE = 16, PE = 32 };

static void simd(void) {
    /* divide by zero: lane 1 (1/3) is inexact, but the pre-computation exception leaves PE clear */
    RUN(divps, ZE, {{1, 1, 1, 1}, {0, 3, 1, 1}});
    RUN(divps, PE, {{1, 1, 1, 1}, {0, 3, 1, 1}});
    RUN(divss, ZE, {{1, 1, 1, 1}, {0, 0, 0, 0}});
    RUN(divss, ZE, {{1, 1, 1, 1}, {2, 0, 0, 0}});
    RUN(vdivps, ZE, {{1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 0}});
    RUN(vdivss, ZE | PE, {{1, 1, 1, 1}, {3, 0, 0, 0}});
    /* invalid: inf - inf in one lane, inexact in another, masked: only IE is set */
    RUN(addps, IE, {{INF, 1, 1, 1}, {-INF, 1e-8f, 0, 0}});
    RUN(addps, PE, {{INF, 1, 1, 1}, {-INF, 1e-8f, 0, 0}});
    RUN(addps, IE | PE, {{1, 1, 1, 1}, {1e-8f, 0, 0, 0}});
    /* a masked pre-computation exception and an unmasked post-computation one: both flags */
    RUN(addps, OE, {{DENORMAL, BIG, 1, 1}, {1, BIG * 3, 0, 0}});
    RUN(vaddpd, IE, {{0, 0, 0, 0, 0, 0, INF, INF}, {0, 0, 0, 0, 0, 0, 0, 0}});
    /* overflow and underflow, unmasked: with and without PE unmasked, exact and inexact tiny results */
    RUN(mulss, OE, {{BIG, 0, 0, 0}, {BIG, 0, 0, 0}});
    RUN(mulss, OE | PE, {{BIG, 0, 0, 0}, {BIG, 0, 0, 0}});
    RUN(mulss, UE, {{1e-30f, 0, 0, 0}, {1e-30f, 0, 0, 0}});
    RUN(mulss, UE, {{0x1p-126f, 0, 0, 0}, {0.5f, 0, 0, 0}});
    RUN(mulss, PE, {{0x1p-126f, 0, 0, 0}, {0.5f, 0, 0, 0}});
    RUN(mulss, UE | PE, {{1e-30f, 0, 0, 0}, {1e-30f, 0, 0, 0}});
    RUN(mulsd, DE, {{DENORMAL, 0, 0, 0}, {0, 0, 0, 0}});
    RUN(mulss, DE, {{DENORMAL, 0, 0, 0}, {2, 0, 0, 0}});
    RUN(mulss, PE, {{1, 0, 0, 0}, {3, 0, 0, 0}});
    RUN(sqrtss, IE, {{5, 5, 5, 5}, {-1, 4, 4, 4}});
    RUN(sqrtpd, PE, {{5, 5, 5, 5}, {2, 0, 4, 0}});
    RUN(minps, IE, {{1, 1, 1, 1}, {QNAN, 0, 0, 0}});
    RUN(maxsd, IE, {{1, 1, 1, 1}, {0, 0, 0, 0}});
    /* compares: COMISS and CMPLTPS signal on a QNaN, UCOMISS and CMPEQPS do not */
    RUN(comiss, IE, {{1, 1, 1, 1}, {QNAN, 0, 0, 0}});
    RUN(ucomiss, IE, {{1, 1, 1, 1}, {QNAN, 0, 0, 0}});
    RUN(vcomisd, IE, {{1, 1, 1, 1}, {QNAN, QNAN, 0, 0}});
    RUN(cmpltps, IE, {{1, 1, 1, 1}, {2, QNAN, 0, 0}});
    RUN(cmpeqps, IE, {{1, 1, 1, 1}, {2, QNAN, 0, 0}});
    RUN(cmpeqps, DE, {{1, 1, 1, 1}, {DENORMAL, 1, 0, 0}});
    /* conversions */
    RUN(cvtsd2ss, OE, {{1, 1, 1, 1}, {0, 2e38f, 0, 0}});
    RUN(cvtsd2ss, PE, {{1, 1, 1, 1}, {0.1f, 0, 0, 0}});
    RUN(cvtpd2ps, UE, {{1, 1, 1, 1}, {0, 0x1p-67f, 0, 0}});
    RUN(cvtss2sd, IE, {{1, 1, 1, 1}, {__builtin_nansf(""), 0, 0, 0}});
    RUN(cvtss2sd, DE, {{1, 1, 1, 1}, {DENORMAL, 0, 0, 0}});
    RUN(cvtps2dq, PE, {{1, 1, 1, 1}, {1.5f, 2, 3e9f, 0}});
    RUN(cvtps2dq, IE, {{1, 1, 1, 1}, {1.5f, 2, 3e9f, 0}});
    RUN(cvttss2si, IE, {{1, 1, 1, 1}, {QNAN, 0, 0, 0}});
    RUN(cvttss2si, PE, {{1, 1, 1, 1}, {2.5f, 0, 0, 0}});
    /* SSE3, SSE4.1 */
    RUN(roundps, PE, {{1, 1, 1, 1}, {1.5f, 2, 3, 4}});
    RUN(roundps_quiet, PE, {{1, 1, 1, 1}, {1.5f, 2, 3, 4}});
    RUN(roundps_quiet, IE, {{1, 1, 1, 1}, {__builtin_nansf(""), 2, 3, 4}});
    RUN(dpps, PE, {{1, 1, 1, 1}, {0.1f, 0.2f, 0.3f, 0.4f}});
    RUN(dpps, OE, {{BIG, BIG, 1, 1}, {10, 10, 1, 1}});
    RUN(haddps, IE, {{INF, -INF, 1, 1}, {1, 1, 1, 1}});
    RUN(addsubpd, PE, {{1, 1, 1, 1}, {0, 0, 0, 0.1f}});
    /* FMA, F16C, AVX */
    RUN(vfmadd231ps, OE, {{1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 2e19f}});
    RUN(vfmadd213ss, UE | PE, {{0x1p-100f, 1, 1, 1}, {0x1p-20f, 1, 1, 1}});
    RUN(vcvtps2ph, OE, {{1, 1, 1, 1}, {1, 70000, 1, 1}});
    RUN(vcvtps2ph, PE, {{1, 1, 1, 1}, {1, 1, 1.0001f, 1}});
    RUN(vsqrtps, IE, {{1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, -2}});
    /* a memory destination is not written either */
    RUN(vcvtps2ph_m64, PE, {{1, 1, 1, 1}, {1, 1, 1.0001f, 1}});
    RUN(vcvtps2ph_m64, PE, {{1, 1, 1, 1}, {1, 2, 3, 4}});
    resume = 1;
    RUN(divps, ZE, {{1, 1, 1, 1}, {0, 3, 1, 1}});
    RUN(mulss, OE, {{BIG, 0, 0, 0}, {BIG, 0, 0, 0}});
    RUN(cvttss2si, IE, {{1, 1, 1, 1}, {QNAN, 0, 0, 0}});
    resume = 0;
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGFPE, &sa, NULL);
    (void)argc;
    (void)argv;
    simd();
    return 0;
}
