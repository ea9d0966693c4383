/* Unmasked x87 exceptions: #MF becomes SIGFPE whose si_code follows the unmasked status-word flags
   (Linux's fpu__exception_code); the handler siglongjmps out. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static sigjmp_buf back;
static volatile int code;

static void on_fpe(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)context;
    code = info->si_code;
    siglongjmp(back, 1);
}

static void set_control(unsigned short cw) { __asm__ volatile("fldcw %0" : : "m"(cw)); }

/* a op b with the x87 (op: 0 divide, 1 multiply, 2 square root of a), then FWAIT, where #MF is taken */
static long double compute(int op, long double a, long double b) {
    long double r;
    if (op == 0)
        __asm__ volatile("fdivrp\n\tfwait" : "=t"(r) : "0"(b), "u"(a) : "st(1)");
    else if (op == 1)
        __asm__ volatile("fmulp\n\tfwait" : "=t"(r) : "0"(b), "u"(a) : "st(1)");
    else
        __asm__ volatile("fsqrt\n\tfwait" : "=t"(r) : "0"(a));
    return r;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpe;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGFPE, &sa, 0);
    static const struct { const char *name; unsigned short unmask; int op; long double a, b; } cases[] = {
        {"invalid: sqrt(-1)", 0x01, 2, -1.0L, 0},
        {"zero divide: 1/0", 0x04, 0, 1.0L, 0.0L},
        {"overflow: big*big", 0x08, 1, 1e4000L, 1e4000L},
        {"underflow: tiny*tiny", 0x10, 1, 1e-4000L, 1e-4000L},
        {"precision: 1/3", 0x20, 0, 1.0L, 3.0L},
        {"all unmasked: 1/0", 0x3F, 0, 1.0L, 0.0L},
        {"none unmasked: 1/0", 0x00, 0, 1.0L, 0.0L},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        code = 0;
        if (sigsetjmp(back, 1) == 0) {
            set_control((unsigned short)(0x037F & ~cases[i].unmask));
            compute(cases[i].op, cases[i].a, cases[i].b);
            __asm__ volatile("fninit");
            printf("%-24s no signal\n", cases[i].name);
        } else {
            __asm__ volatile("fninit");
            printf("%-24s SIGFPE si_code %d\n", cases[i].name, code);
        }
    }
    return 0;
}
