"""System-level and miscellaneous instructions: SYSCALL, CPUID, RDTSC, RDPID, RDRAND, RDSEED,
RDFSBASE, RDGSBASE, WRFSBASE, WRGSBASE, HLT, INT3, INT1, UD2 (Intel SDM Vol. 2; Vol. 3A ch. 5 and 6).
The privileged rest is in ``cpu.semantics.privileged``.

RDRAND and RDSEED always succeed (CF = 1; OF, SF, ZF, AF, PF cleared) with bits from the
interpreter's generator (``Interpreter.entropy``): seeded from a fixed value in reproducible
runs, from the host's random source otherwise.  Hardware's DRBG and entropy source, and their
transient failures (CF = 0), are not modelled.  RDPID reads IA32_TSC_AUX.  The FS/GS base
instructions raise #UD unless CR4.FSGSBASE is set; WRFSBASE and WRGSBASE raise #GP(0) for a
non-canonical base.

SYSCALL is an event: the instruction itself checks EFER.SCE and does what
the SDM says it does to RCX and R11; then the host answers (``emu.user``),
or the machine enters the kernel (``cpu.exceptions.syscall_entry``).

HLT is privileged (#GP(0) at CPL > 0 in protected mode).  User mode runs
ring-3 code on a CpuState whose CR0 is 0, with the host kernel in place of
ring 0: there HLT stays the event the host turns into SIGSEGV itself, as
tests and benchmarks use it as an end marker.
"""

from __future__ import annotations

from cpu.cpuid import CR4_FSGSBASE
from cpu.exceptions import Vector
from cpu.flags import CcOp, Flag
from cpu.semantics import call, semantics

EFER_SCE = 1 << 0
CR0_PE = 1 << 0


@semantics("syscall")
def syscall(ops, insn):
    ops.fault_if(ops.eq(ops.and_(ops.reg("efer"), EFER_SCE), 0), Vector.UD)
    flags = ops.rflags()
    ops.set_reg("rcx", insn.next)
    ops.set_reg("r11", flags)
    ops.event("syscall")
    ops.jump(insn.next)


@call
def cpuid(cpu) -> None:
    s = cpu.state
    s.rax, s.rbx, s.rcx, s.rdx = cpu.level.cpuid(s.rax & 0xFFFFFFFF, s.rcx & 0xFFFFFFFF, s.cr4)


@semantics("cpuid")
def cpuid_insn(ops, insn):
    ops.call("cpuid")


def read_tsc(ops) -> None:
    """EDX:EAX = the time-stamp counter, which reads the virtual clock: one tick per retired instruction
    (``icount`` as it stands when the block starts, in every tier, plus IA32_TSC's offset)."""
    tsc = ops.add(ops.reg("icount"), ops.reg("tsc_offset"), 64)
    ops.set_reg("rax", ops.and_(tsc, 0xFFFFFFFF))
    ops.set_reg("rdx", ops.shr(tsc, 32))


@semantics("rdtsc")
def rdtsc_insn(ops, insn):
    read_tsc(ops)


@call
def random_bits(cpu, size: int) -> int:
    return cpu.entropy.getrandbits(size)


@semantics("rdrand", feature="rdrand")
def rdrand(ops, insn, dst):
    ops.write(dst, ops.call("random_bits", dst.size))
    ops.set_flags(CcOp.FLAGS, dst.size, int(Flag.CF), 0, 0)


@semantics("rdseed", feature="rdseed")
def rdseed(ops, insn, dst):
    rdrand(ops, insn, dst)


@semantics("rdpid", feature="rdpid")
def rdpid(ops, insn, dst):
    ops.write(dst, ops.reg("tsc_aux"))


def _fsgsbase_enabled(ops):
    ops.fault_if(ops.eq(ops.and_(ops.reg("cr4"), CR4_FSGSBASE), 0), Vector.UD)


@semantics("rdfsbase", "rdgsbase", feature="fsgsbase")
def rdfsbase(ops, insn, dst):
    _fsgsbase_enabled(ops)
    ops.write(dst, ops.trunc(ops.reg(f"{insn.mnemonic[2:4]}_base"), dst.size))


@semantics("wrfsbase", "wrgsbase", feature="fsgsbase")
def wrfsbase(ops, insn, src):
    _fsgsbase_enabled(ops)
    base = ops.read(src)
    if src.size == 64:
        top = ops.shr(base, 47)                     # bits 63:47: all equal in a canonical address
        ops.fault_if(ops.and_(ops.ne(top, 0), ops.ne(top, 0x1FFFF)), Vector.GP, 0)
    ops.set_reg(f"{insn.mnemonic[2:4]}_base", base)


@semantics("hlt")
def hlt(ops, insn):
    protected = ops.and_(ops.reg("cr0"), CR0_PE)
    ops.fault_if(ops.and_(ops.ne(ops.reg("cpl"), 0), protected), Vector.GP, 0)
    ops.event("hlt")
    ops.jump(insn.next)


@semantics("int3")
def int3(ops, insn):
    ops.fault(Vector.BP, detail="int3")


@semantics("int1")
def int1(ops, insn):
    """INT1 (ICEBP, F1): a #DB trap, delivered as a hardware exception (no gate DPL check; SDM Vol. 3A 6.12.1.1)."""
    ops.fault(Vector.DB, detail="int1")


@semantics("ud2", "ud1", "ud0")
def ud2(ops, insn, *operands):
    ops.fault(Vector.UD, detail=f"`{insn.text}` at {insn.address:#x}")
