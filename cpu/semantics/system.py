"""System-level and miscellaneous instructions: SYSCALL, CPUID, RDTSC, HLT, INT3, UD2
(Intel SDM Vol. 2; Vol. 3A ch. 5 and 6).

In user mode SYSCALL is an event the host answers (``emu.user``): the
instruction itself does what the SDM says it does to RCX and R11, and the
machine does the rest.
"""

from __future__ import annotations

from cpu import cpuid as cpuid_leaves
from cpu.exceptions import Vector
from cpu.semantics import call, semantics


@semantics("syscall")
def syscall(ops, insn):
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
    ops.event("hlt")
    ops.jump(insn.next)


@semantics("int3")
def int3(ops, insn):
    ops.fault(Vector.BP, detail="int3")


@semantics("ud2", "ud1", "ud0")
def ud2(ops, insn, *operands):
    ops.fault(Vector.UD, detail=f"`{insn.text}` at {insn.address:#x}")
