/* The x87 last-instruction pointers (SDM Vol. 1, 8.1.8-8.1.10): FIP, FOP and FDP as FNSTENV (32-bit and
 * 16-bit layouts), FXSAVE, FXSAVE64 and XSAVE store them after x87 instructions on memory and register
 * operands, with and without an unmasked exception, and after FNINIT and FLDENV.  Addresses are printed
 * relative to the instruction's label and the operand, 0 as "0"; run natively and under `emu run`.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

double D = 3.0, Z = 0.0, OUT;
float F = 2.0f;
int I = 7;
struct env32 { uint32_t cw, sw, tw, fip, fcs_fop, fdp, fds; } __attribute__((packed));
struct env16 { uint16_t cw, sw, tw, fip, fcs, fdp, fds; } __attribute__((packed));
struct fx { uint16_t fcw, fsw; uint8_t ftw, r; uint16_t fop; uint64_t fip, fdp; uint8_t rest[512 - 24]; };
static struct fx x __attribute__((aligned(64)));
static uint8_t xs[1024] __attribute__((aligned(64)));
extern const char l_fmul[], l_fadd[], l_fimul[], l_fdiv[], l_fdivr[], l_fstp[], l_ffree[], l_fincstp[], l_fnop[],
    l_fcom[], l_xsave[];

static void rel(const char *what, uint64_t value, const void *base) {
    if (value == 0)
        printf(" %s 0", what);
    else
        printf(" %s %+ld", what, (long)(value - (uint64_t)(uintptr_t)base));
}

static void env32(const char *name, const struct env32 *e, const void *insn, const void *operand) {
    printf("%-16s fnstenv:", name);
    rel("fip", e->fip, insn);
    printf(" fcs %#x fop %#x", e->fcs_fop & 0xffff, e->fcs_fop >> 16);
    rel("fdp", e->fdp, operand);
    printf(" fds %#x\n", e->fds);
}

static void fx(const char *name, const void *insn, const void *operand) {
    printf("%-16s fxsave:", name);
    rel("fip", x.fip, insn);
    printf(" fop %#x", x.fop);
    rel("fdp", x.fdp, operand);
    printf("\n");
}

int main(void) {
    struct env32 e;
    struct env16 e16;
    uint16_t unmask_ze = 0x037b;
    __asm__ volatile("fninit\n fldl D(%%rip)\n l_fmul: fmuls F(%%rip)\n fnstenv %0\n" : "=m"(e)::"memory");
    env32("fmul m32", &e, l_fmul, &F);
    __asm__ volatile("fninit\n fldl D(%%rip)\n l_fadd: fadd %%st(0), %%st(0)\n fxsave64 %0\n" : "=m"(x)::"memory");
    fx("fadd st", l_fadd, 0);
    __asm__ volatile("fninit\n fldl D(%%rip)\n l_fimul: fimull I(%%rip)\n fxsave %0\n" : "=m"(x)::"memory");
    fx("fimul m32 (32)", l_fimul, &I);
    __asm__ volatile("fninit\n fldcw %1\n fldl D(%%rip)\n l_fdiv: fdivl Z(%%rip)\n fnstenv %0\n fnclex\n fninit"
                     : "=m"(e) : "m"(unmask_ze) : "memory");
    env32("fdiv m64 #Z", &e, l_fdiv, &Z);
    __asm__ volatile("fninit\n fldcw %1\n fldl D(%%rip)\n fldz\n l_fdivr: fdivr %%st(0), %%st(1)\n fxsave64 %0\n"
                     "fnclex\n fninit" : "=m"(x) : "m"(unmask_ze) : "memory");
    fx("fdivr st #Z", l_fdivr, 0);
    __asm__ volatile("fninit\n fldcw %1\n fldl D(%%rip)\n fdivl Z(%%rip)\n fnclex\n fldl D(%%rip)\n"
                     "l_fstp: fstpl OUT(%%rip)\n fxsave64 %0\n fninit" : "=m"(x) : "m"(unmask_ze) : "memory");
    fx("fstp after #Z", l_fstp, &Z);
    __asm__ volatile("fninit\n fldl D(%%rip)\n fnstenv %0\n" : "=m"(e)::"memory");
    env32("fninit; fld", &e, l_fstp, &Z);
    __asm__ volatile("fninit\n fldl D(%%rip)\n l_ffree: ffree %%st(7)\n fnstenv %0\n" : "=m"(e)::"memory");
    env32("ffree", &e, l_ffree, 0);
    __asm__ volatile("fninit\n fldl D(%%rip)\n l_fincstp: fincstp\n fnstenv %0\n" : "=m"(e)::"memory");
    env32("fincstp", &e, l_fincstp, 0);
    __asm__ volatile("fninit\n fldl D(%%rip)\n l_fnop: fnop\n fnstsw %%ax\n fnclex\n fldcw %1\n fnstenv %0\n"
                     : "=m"(e) : "m"(unmask_ze) : "ax", "memory");
    env32("fnop; control", &e, l_fnop, 0);
    __asm__ volatile("fninit\n fldcw %1\n fldl D(%%rip)\n l_fcom: fcoml Z(%%rip)\n data16 fnstenv %0\n fninit"
                     : "=m"(e16) : "m"(unmask_ze) : "memory");
    printf("%-16s fnstenv16: fip %+d fcs %#x fdp %#x fds %#x\n", "fcom m64", (int16_t)(e16.fip - (uint16_t)(uintptr_t)l_fcom),
           e16.fcs, e16.fdp, e16.fds);
    /* FLDENV loads the pointers: store an image, change them, load it back, store again */
    struct env32 saved;
    __asm__ volatile("fninit\n fldcw %2\n fldl D(%%rip)\n fdivl Z(%%rip)\n fnstenv %0\n fninit\n fldz\n"
                     "fldenv %0\n fnstenv %1\n fnclex\n fninit" : "+m"(saved), "=m"(e) : "m"(unmask_ze) : "memory");
    printf("%-16s fldenv round trip: %s\n", "fdiv m64 #Z", memcmp(&saved.fip, &e.fip, 16) == 0 ? "same" : "differs");
    memset(xs, 0, sizeof xs);
    __asm__ volatile("fninit\n fldcw %1\n fldl D(%%rip)\n l_xsave: fdivl Z(%%rip)\n"
                     "mov $1, %%eax\n xor %%edx, %%edx\n xsave64 %0\n fnclex\n fninit"
                     : "=m"(xs) : "m"(unmask_ze) : "eax", "edx", "memory");
    memcpy(&x, xs, 24);
    fx("fdiv m64 xsave", l_xsave, &Z);
    return 0;
}
