/* Signal handlers that really run: each subtest (argv[1]) prints what its handler saw, so that a native
   and an emulated run can be compared line by line. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

static sigjmp_buf back;
static volatile sig_atomic_t hits;
static volatile int saw_code, saw_signo;
static void *volatile saw_addr;
static volatile int on_altstack, uc_stack_flags;
static char *altstack;
static int pipefd[2];

static void fault_handler(int sig, siginfo_t *info, void *context) {
    uc_stack_flags = ((ucontext_t *)context)->uc_stack.ss_flags;
    saw_signo = sig;
    saw_code = info->si_code;
    saw_addr = info->si_addr;
    stack_t ss;
    sigaltstack(NULL, &ss);
    on_altstack = (char *)&ss >= altstack && (char *)&ss < altstack + SIGSTKSZ * 4 && (ss.ss_flags & SS_ONSTACK);
    siglongjmp(back, 1);
}

static void install(int sig, void (*handler)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0)
        perror("sigaction");
}

static void segv(void) {
    install(SIGSEGV, fault_handler, 0);
    volatile int *unmapped = (int *)16;
    if (sigsetjmp(back, 1) == 0)
        *unmapped = 1;
    printf("SIGSEGV: signo %d code %s addr %p\n", saw_signo, saw_code == SEGV_MAPERR ? "SEGV_MAPERR" : "?",
           saw_addr);
    char *page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sigsetjmp(back, 1) == 0)
        page[100] = 1;
    printf("SIGSEGV: code %s at page+%ld\n", saw_code == SEGV_ACCERR ? "SEGV_ACCERR" : "?",
           (long)((char *)saw_addr - page));
    if (sigsetjmp(back, 1) == 0)
        *unmapped = 2;
    printf("the handler runs again after siglongjmp: %s\n", saw_code == SEGV_MAPERR ? "yes" : "no");
}

static void fpe(void) {
    install(SIGFPE, fault_handler, 0);
    volatile int zero = 0, ten = 10;
    if (sigsetjmp(back, 1) == 0)
        printf("%d\n", ten / zero);
    printf("SIGFPE: code %s\n", saw_code == FPE_INTDIV ? "FPE_INTDIV" : "?");
}

static void count(int sig) {
    (void)sig;
    hits++;
}

static void alarm_loop(void) {
    signal(SIGALRM, count);
    struct itimerval t = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &t, NULL);
    unsigned long spins = 0;
    while (!hits)
        spins++;
    printf("SIGALRM ended the busy loop: %d\n", hits == 1 && spins > 0);
}

static void write_byte(int sig) {
    (void)sig;
    hits++;
    if (write(pipefd[1], "x", 1) != 1)
        _exit(9);
}

/* A fresh pipe in pipefd, hits = 0, and SIGALRM to handler (with flags) in 50 ms. */
static void pipe_and_alarm(void (*handler)(int), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = flags;
    sigaction(SIGALRM, &sa, NULL);
    if (pipe(pipefd) != 0)
        perror("pipe");
    hits = 0;
    struct itimerval t = {{0, 0}, {0, 50000}};
    setitimer(ITIMER_REAL, &t, NULL);
}

static void restart(int flags) {
    pipe_and_alarm(write_byte, flags);
    char c = 0;
    ssize_t n = read(pipefd[0], &c, 1);
    int err = errno;
    printf("%s: read returned %zd (%s), the handler ran %d time(s)\n", flags ? "SA_RESTART" : "no SA_RESTART", n,
           n < 0 ? strerror(err) : c == 'x' ? "the handler's byte" : "?", hits);
    close(pipefd[0]);
    close(pipefd[1]);
}

static void poll_interrupted(void) {
    pipe_and_alarm(count, SA_RESTART);     /* poll is never restarted after a handler, even so */
    struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
    int n = poll(&p, 1, 10000);
    int err = errno;
    printf("poll: %d (%s), the handler ran %d time(s)\n", n, n < 0 ? strerror(err) : "?", hits);
}

static int depth(int n) {
    volatile char pad[512];
    pad[0] = (char)n;
    return depth(n + 1) + pad[0];
}

static void overflow(void) {
    altstack = malloc(SIGSTKSZ * 4);
    stack_t ss = {.ss_sp = altstack, .ss_size = SIGSTKSZ * 4, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    install(SIGSEGV, fault_handler, SA_ONSTACK);
    if (sigsetjmp(back, 1) == 0)
        depth(0);
    printf("stack overflow: SIGSEGV on the alternate stack: %d, uc_stack.ss_flags of the interrupted code: %d\n",
           saw_signo == SIGSEGV && on_altstack, uc_stack_flags);
}

static void skip_ud2(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    saw_signo = sig;
    saw_addr = info->si_addr;
    if ((uintptr_t)uc->uc_mcontext.gregs[REG_RIP] == (uintptr_t)info->si_addr)
        uc->uc_mcontext.gregs[REG_RIP] += 2;          /* the length of ud2 */
    uc->uc_mcontext.gregs[REG_RAX] = 42;
    uc->uc_mcontext.gregs[REG_RBX] += 1;
}

static void ucontext(void) {
    install(SIGILL, skip_ud2, 0);
    long rax = 0, rbx = 100;
    __asm__ volatile("mov $7, %%rax\n\tud2" : "+a"(rax), "+b"(rbx));
    printf("SIGILL handler skipped ud2 and set rax=%ld rbx=%ld\n", rax, rbx);
}

static void on_trap(int sig, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    saw_signo = sig;
    saw_code = info->si_code;
    saw_addr = (void *)uc->uc_mcontext.gregs[REG_RIP];
}

static void trap(void) {
    install(SIGTRAP, on_trap, 0);
    void *after;
    __asm__ volatile("int3\n1:\n\tlea 1b(%%rip), %0" : "=r"(after));
    printf("SIGTRAP from int3: signo %d, si_code SI_KERNEL %d, REG_RIP is the next instruction %d\n", saw_signo,
           saw_code == SI_KERNEL, saw_addr == after);
}

static void spoil_mxcsr(int sig, siginfo_t *info, void *context) {
    (void)sig; (void)info;
    ucontext_t *uc = context;
    uc->uc_mcontext.fpregs->mxcsr = 0xFFFFFFFF;       /* reserved bits: rt_sigreturn must refuse the frame */
}

static void bad_fpu(void) {
    install(SIGUSR1, spoil_mxcsr, 0);
    raise(SIGUSR1);
    printf("returned from the handler\n");
}

static void clobber_ymm(int sig) {
    (void)sig;
    __asm__ volatile("vpcmpeqd %%ymm0, %%ymm0, %%ymm0" ::: "xmm0");
}

static void avx_state(void) {
    /* The interrupted code's AVX registers survive a handler that changes them (the kernel saves them) */
    signal(SIGUSR1, clobber_ymm);
    unsigned char in[32], out[32];
    for (int i = 0; i < 32; i++)
        in[i] = (unsigned char)i;
    __asm__ volatile("vmovdqu %1, %%ymm0\n\t"
                     "mov $62, %%eax\n\tmov %2, %%edi\n\tmov $10, %%esi\n\tsyscall\n\t"
                     "vmovdqu %%ymm0, %0"
                     : "=m"(out) : "m"(in), "r"(getpid()) : "rax", "rdi", "rsi", "rcx", "r11", "xmm0", "memory");
    printf("ymm0 after a handler that set it: %s\n", memcmp(in, out, 32) ? "changed" : "kept");
}

static void bad_frame(void) {
    /* rt_sigreturn with the stack pointer on an unmapped page: the kernel cannot read a frame there */
    __asm__ volatile("mov $16, %%rsp\n\tmov $15, %%eax\n\tsyscall" ::: "memory");
}

static void on_usr(int sig, siginfo_t *info, void *context) {
    (void)context;
    hits++;
    saw_signo = sig;
    saw_code = info->si_code;
}

static void masks(void) {
    install(SIGUSR1, on_usr, 0);
    sigset_t block, pending, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    hits = 0;
    kill(getpid(), SIGUSR1);
    sigpending(&pending);
    printf("blocked SIGUSR1 pending: %d, handled: %d\n", sigismember(&pending, SIGUSR1), hits);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("after unblocking: handled %d, si_code SI_USER: %d\n", hits, saw_code == SI_USER);
    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR1);
    sigset_t none;
    sigemptyset(&none);
    int r = sigsuspend(&none);
    int err = errno;
    sigprocmask(SIG_BLOCK, NULL, &old);
    printf("sigsuspend: %d %s, handled %d, SIGUSR1 blocked again: %d\n", r, strerror(err), hits,
           sigismember(&old, SIGUSR1));
    sigaddset(&block, SIGUSR2);
    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR2);
    siginfo_t info;
    struct timespec timeout = {1, 0};
    int sig = sigtimedwait(&block, &info, &timeout);
    printf("sigtimedwait: %s, si_code %d\n", sig == SIGUSR2 ? "SIGUSR2" : "?", info.si_code);
    timeout.tv_sec = 0;
    timeout.tv_nsec = 1000000;
    errno = 0;
    sig = sigtimedwait(&block, &info, &timeout);
    printf("sigtimedwait with nothing pending: %d %s\n", sig, strerror(errno));
}

static void reset_and_nodefer(void) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, NULL);
    install(SIGUSR1, on_usr, SA_RESETHAND);
    hits = 0;
    raise(SIGUSR1);
    struct sigaction now;
    sigaction(SIGUSR1, NULL, &now);
    printf("SA_RESETHAND: handled %d, now SIG_DFL: %d\n", hits, now.sa_handler == SIG_DFL);
}

static void child_signals(void) {
    install(SIGCHLD, on_usr, 0);
    install(SIGUSR2, on_usr, 0);
    hits = 0;
    sigset_t block, none;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, NULL);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        kill(parent, SIGUSR2);
        _exit(3);
    }
    sigemptyset(&none);
    while (hits < 2)
        sigsuspend(&none);
    int status;
    waitpid(child, &status, 0);
    printf("a child's kill and its exit: 2 handlers ran, exit status %d\n", WEXITSTATUS(status));
}

static void wait_for_sigint(void) {
    /* SIGINT stays blocked until sigsuspend: with pause(), a signal taken between the test of hits and the
       call would leave the program waiting for ever (natively too, only less often). */
    sigset_t block, during;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &during);
    sigdelset(&during, SIGINT);
    install(SIGINT, on_usr, 0);
    hits = 0;
    printf("ready\n");
    while (!hits)
        sigsuspend(&during);
    printf("SIGINT from outside: signo %d, si_code SI_USER %d\n", saw_signo, saw_code == SI_USER);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "segv")) segv();
    else if (!strcmp(what, "fpe")) fpe();
    else if (!strcmp(what, "alarm")) alarm_loop();
    else if (!strcmp(what, "restart")) { restart(SA_RESTART); restart(0); }
    else if (!strcmp(what, "poll")) poll_interrupted();
    else if (!strcmp(what, "overflow")) overflow();
    else if (!strcmp(what, "ucontext")) ucontext();
    else if (!strcmp(what, "masks")) { masks(); reset_and_nodefer(); }
    else if (!strcmp(what, "children")) child_signals();
    else if (!strcmp(what, "sigint")) wait_for_sigint();
    else if (!strcmp(what, "trap")) trap();
    else if (!strcmp(what, "badframe")) bad_frame();
    else if (!strcmp(what, "badfpu")) bad_fpu();
    else if (!strcmp(what, "avx")) avx_state();
    else if (!strcmp(what, "die")) { signal(SIGSEGV, SIG_DFL); raise(SIGSEGV); }
    else return 2;
    return 0;
}
