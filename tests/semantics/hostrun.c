/* The host CPU as a test oracle: run a snippet of x86-64 code natively from a given state.

   tests/semantics/host.py builds this program and talks to it over stdin/stdout, one fixed-size
   request and one reply per case.  The snippet runs at the same addresses as in emu and unicorn
   (code at 0x10000, data at 0x20000, stack at 0x30000) with every general register, RFLAGS, the
   XMM registers and FS base as the case gives them; x87 and MXCSR start in their reset state and
   the YMM upper halves at zero, as in emu's user mode.  The snippet is followed by an indirect
   jump back here that touches no register; a fault (SIGSEGV, SIGILL, SIGFPE, SIGBUS, SIGTRAP) is
   caught and reported with the registers at the faulting instruction, and for SIGFPE also the XMM
   registers and MXCSR the signal frame holds (an unmasked SIMD exception's #XM). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>
#include <asm/prctl.h>
#include <sys/syscall.h>

#define CODE 0x10000UL
#define CODE_SIZE 0x1000UL
#define DATA 0x20000UL
#define DATA_SIZE 0x2000UL
#define STACK 0x30000UL
#define STACK_SIZE 0x2000UL

struct request {
    uint32_t code_len;
    uint32_t pad;
    uint64_t fs_base;
    uint64_t gpr[16];          /* rax rcx rdx rbx rsp rbp rsi rdi r8..r15 */
    uint64_t rflags;
    uint8_t xmm[16][16];
    uint8_t code[CODE_SIZE];
    uint8_t data[DATA_SIZE];
};

struct reply {
    uint32_t faulted;
    uint32_t signo;
    uint64_t gpr[16];
    uint64_t rip;
    uint64_t rflags;
    uint8_t xmm[16][16];
    uint8_t data[DATA_SIZE];
    uint32_t mxcsr;            /* at a SIGFPE, else 0 */
    uint32_t pad;
};

/* The trampoline's view: what to load, where to save, the host's stack. */
struct context {
    uint64_t gpr[16];          /* 0 */
    uint64_t rflags;           /* 128 */
    uint64_t entry;            /* 136 */
    uint8_t xmm[16][16];       /* 144 */
    uint64_t host_rsp;         /* 400 */
    uint32_t mxcsr;            /* 408 */
    uint32_t avx;              /* 412 */
};

struct context ctx;
extern int enter_guest(void);
extern char exit_guest[], fault_return[];

__asm__(
    ".text\n"
    ".globl enter_guest\n"
    "enter_guest:\n"
    "  push %rbx; push %rbp; push %r12; push %r13; push %r14; push %r15\n"
    "  lea ctx(%rip), %rdi\n"
    "  mov %rsp, 400(%rdi)\n"
    "  fninit\n"
    "  movl $0x1f80, 408(%rdi)\n"
    "  ldmxcsr 408(%rdi)\n"
    "  cmpl $0, 412(%rdi)\n"
    "  je 1f\n"
    "  vzeroall\n"
    "1:\n"
    "  movdqu 144(%rdi), %xmm0;  movdqu 160(%rdi), %xmm1;  movdqu 176(%rdi), %xmm2;  movdqu 192(%rdi), %xmm3\n"
    "  movdqu 208(%rdi), %xmm4;  movdqu 224(%rdi), %xmm5;  movdqu 240(%rdi), %xmm6;  movdqu 256(%rdi), %xmm7\n"
    "  movdqu 272(%rdi), %xmm8;  movdqu 288(%rdi), %xmm9;  movdqu 304(%rdi), %xmm10; movdqu 320(%rdi), %xmm11\n"
    "  movdqu 336(%rdi), %xmm12; movdqu 352(%rdi), %xmm13; movdqu 368(%rdi), %xmm14; movdqu 384(%rdi), %xmm15\n"
    "  pushq 128(%rdi)\n"
    "  popfq\n"
    "  mov 0(%rdi), %rax;  mov 8(%rdi), %rcx;   mov 16(%rdi), %rdx;  mov 24(%rdi), %rbx\n"
    "  mov 40(%rdi), %rbp; mov 48(%rdi), %rsi\n"
    "  mov 64(%rdi), %r8;  mov 72(%rdi), %r9;   mov 80(%rdi), %r10;  mov 88(%rdi), %r11\n"
    "  mov 96(%rdi), %r12; mov 104(%rdi), %r13; mov 112(%rdi), %r14; mov 120(%rdi), %r15\n"
    "  mov 32(%rdi), %rsp\n"
    "  mov 56(%rdi), %rdi\n"
    "  jmp *ctx+136(%rip)\n"
    ".globl exit_guest\n"
    "exit_guest:\n"
    "  mov %rax, ctx+0(%rip);  mov %rcx, ctx+8(%rip);   mov %rdx, ctx+16(%rip);  mov %rbx, ctx+24(%rip)\n"
    "  mov %rsp, ctx+32(%rip); mov %rbp, ctx+40(%rip);  mov %rsi, ctx+48(%rip);  mov %rdi, ctx+56(%rip)\n"
    "  mov %r8, ctx+64(%rip);  mov %r9, ctx+72(%rip);   mov %r10, ctx+80(%rip);  mov %r11, ctx+88(%rip)\n"
    "  mov %r12, ctx+96(%rip); mov %r13, ctx+104(%rip); mov %r14, ctx+112(%rip); mov %r15, ctx+120(%rip)\n"
    "  mov ctx+400(%rip), %rsp\n"
    "  pushfq\n"
    "  popq ctx+128(%rip)\n"
    "  cld\n"
    "  lea ctx(%rip), %rdi\n"
    "  movdqu %xmm0, 144(%rdi);  movdqu %xmm1, 160(%rdi);  movdqu %xmm2, 176(%rdi);  movdqu %xmm3, 192(%rdi)\n"
    "  movdqu %xmm4, 208(%rdi);  movdqu %xmm5, 224(%rdi);  movdqu %xmm6, 240(%rdi);  movdqu %xmm7, 256(%rdi)\n"
    "  movdqu %xmm8, 272(%rdi);  movdqu %xmm9, 288(%rdi);  movdqu %xmm10, 304(%rdi); movdqu %xmm11, 320(%rdi)\n"
    "  movdqu %xmm12, 336(%rdi); movdqu %xmm13, 352(%rdi); movdqu %xmm14, 368(%rdi); movdqu %xmm15, 384(%rdi)\n"
    "  xor %eax, %eax\n"
    "  jmp 2f\n"
    ".globl fault_return\n"
    "fault_return:\n"
    "  mov $1, %eax\n"
    "2:\n"
    "  fninit\n"
    "  movl $0x1f80, ctx+408(%rip)\n"
    "  ldmxcsr ctx+408(%rip)\n"
    "  pop %r15; pop %r14; pop %r13; pop %r12; pop %rbp; pop %rbx\n"
    "  ret\n");

static uint64_t host_fs;
static volatile sig_atomic_t fault_signo;
static uint8_t fault_xmm[16][16];
static uint32_t fault_mxcsr;

static long set_fs(uint64_t base) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(SYS_arch_prctl), "D"(ARCH_SET_FS), "S"(base) : "rcx", "r11", "memory");
    return ret;
}

static void on_fault(int signo, siginfo_t *info, void *opaque) {
    ucontext_t *uc = opaque;
    greg_t *g = uc->uc_mcontext.gregs;
    static const int order[16] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
                                  REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15};
    (void)info;
    set_fs(host_fs);
    for (int i = 0; i < 16; i++) ctx.gpr[i] = (uint64_t)g[order[i]];
    ctx.entry = (uint64_t)g[REG_RIP];
    ctx.rflags = (uint64_t)g[REG_EFL];
    fault_signo = signo;
    if (signo == SIGFPE && uc->uc_mcontext.fpregs) {
        memcpy(fault_xmm, uc->uc_mcontext.fpregs->_xmm, sizeof fault_xmm);
        fault_mxcsr = uc->uc_mcontext.fpregs->mxcsr;
    }
    g[REG_RIP] = (greg_t)fault_return;
    g[REG_RSP] = (greg_t)ctx.host_rsp;
    g[REG_EFL] &= ~(greg_t)0x40500;       /* TF, DF, AC off in the host */
}

static int read_all(void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t got = read(0, p, n);
        if (got <= 0) return 0;
        p += got;
        n -= (size_t)got;
    }
    return 1;
}

static void write_all(const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t put = write(1, p, n);
        if (put <= 0) exit(1);
        p += put;
        n -= (size_t)put;
    }
}

static void *map_at(unsigned long address, unsigned long size, int prot) {
    void *p = mmap((void *)address, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != (void *)address) {
        fprintf(stderr, "hostrun: cannot map %#lx (vm.mmap_min_addr?)\n", address);
        exit(2);
    }
    return p;
}

int main(void) {
    static struct request req;
    static struct reply rep;
    static char alt[1 << 16];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    struct sigaction sa;
    uint8_t *code = map_at(CODE, CODE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
    uint8_t *data = map_at(DATA, DATA_SIZE, PROT_READ | PROT_WRITE);
    map_at(STACK, STACK_SIZE, PROT_READ | PROT_WRITE);
    sigaltstack(&ss, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    int signals[] = {SIGSEGV, SIGILL, SIGFPE, SIGBUS, SIGTRAP};
    for (unsigned i = 0; i < sizeof signals / sizeof signals[0]; i++) sigaction(signals[i], &sa, 0);
    __asm__ volatile("syscall" : : "a"(SYS_arch_prctl), "D"(ARCH_GET_FS), "S"(&host_fs) : "rcx", "r11", "memory");
    __builtin_cpu_init();
    ctx.avx = __builtin_cpu_supports("avx");
    while (read_all(&req, sizeof req)) {
        uint64_t back = (uint64_t)exit_guest;
        if (req.code_len + 14 > CODE_SIZE) exit(3);
        memset(code, 0xcc, CODE_SIZE);
        memcpy(code, req.code, req.code_len);
        memcpy(code + req.code_len, "\xff\x25\x00\x00\x00\x00", 6);     /* jmp [rip+0] */
        memcpy(code + req.code_len + 6, &back, 8);
        memcpy(data, req.data, DATA_SIZE);
        memset((void *)STACK, 0, STACK_SIZE);
        memcpy(ctx.gpr, req.gpr, sizeof ctx.gpr);
        memcpy(ctx.xmm, req.xmm, sizeof ctx.xmm);
        ctx.rflags = req.rflags;
        ctx.entry = CODE;
        fault_signo = 0;
        set_fs(req.fs_base);
        int faulted = enter_guest();
        set_fs(host_fs);
        rep.faulted = (uint32_t)faulted;
        rep.signo = (uint32_t)fault_signo;
        memcpy(rep.gpr, ctx.gpr, sizeof rep.gpr);
        rep.rip = faulted ? ctx.entry : CODE + req.code_len;
        rep.rflags = ctx.rflags;
        memcpy(rep.xmm, fault_signo == SIGFPE ? fault_xmm : ctx.xmm, sizeof rep.xmm);
        rep.mxcsr = fault_signo == SIGFPE ? fault_mxcsr : 0;
        memcpy(rep.data, data, DATA_SIZE);
        write_all(&rep, sizeof rep);
    }
    return 0;
}
