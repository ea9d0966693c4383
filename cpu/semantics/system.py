"""System-level and miscellaneous instructions: SYSCALL, CPUID, RDTSC, HLT, INT3, UD2
(Intel SDM Vol. 2; Vol. 3A ch. 5 and 6).  The privileged rest is in ``cpu.semantics.privileged``.

SYSCALL is an event: the instruction itself checks EFER.SCE and does what
the SDM says it does to RCX and R11; then the host answers (``emu.user``),
or the machine enters the kernel (``cpu.exceptions.syscall_entry``).

HLT is privileged (#GP(0) at CPL > 0 in protected mode).  User mode runs
ring-3 code on a CpuState whose CR0 is 0, with the host kernel in place of
ring 0: there HLT stays the event the host turns into SIGSEGV itself, as
tests and benchmarks use it as an end marker.
"""

from __future__ import annotations

from cpu import cpuid as cpuid_leaves
from cpu.exceptions import Vector
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
    s.rax, s.rbx, s.rcx, s.rdx = cpuid_leaves.cpuid(s.rax & 0xFFFFFFFF, s.rcx & 0xFFFFFFFF)


@semantics("cpuid")
def cpuid_insn(ops, insn):
    ops.call("cpuid")


@call
def rdtsc(cpu) -> None:
    """The time-stamp counter reads the virtual clock: one tick per retired instruction."""
    tsc = cpu.state.icount + cpu.state.tsc_offset
    cpu.state.rax = tsc & 0xFFFFFFFF
    cpu.state.rdx = (tsc >> 32) & 0xFFFFFFFF


@semantics("rdtsc")
def rdtsc_insn(ops, insn):
    ops.call("rdtsc")


@semantics("hlt")
def hlt(ops, insn):
    protected = ops.and_(ops.reg("cr0"), CR0_PE)
    ops.fault_if(ops.and_(ops.ne(ops.reg("cpl"), 0), protected), Vector.GP, 0)
    ops.event("hlt")
    ops.jump(insn.next)


@semantics("int3")
def int3(ops, insn):
    ops.fault(Vector.BP, detail="int3")


@semantics("ud2", "ud1", "ud0")
def ud2(ops, insn, *operands):
    ops.fault(Vector.UD, detail=f"`{insn.text}` at {insn.address:#x}")
