"""x87 FPU control: FNINIT, FNCLEX, FNSTCW/FLDCW, FNSTSW, FWAIT, EMMS.

Intel SDM Vol. 1, 8.1 (x87 FPU execution environment: control word 8.1.5,
status word 8.1.3, tag word 8.1.7) and 8.3.x instruction pages in Vol. 2.
Only the control state glibc's startup and the kernel touch is modelled:
``fcw``, ``fsw`` and ``ftw`` of ``cpu.state``.  ``ftw`` holds the *abridged*
tag word of the FXSAVE image (one bit per register, 1 = valid), so zero
means "all registers empty", the state after FNINIT and at power-on.

Not modelled: x87 arithmetic and loads/stores (FLD, FSTP, ... raise #UD),
the stack itself beyond FXSAVE's raw slots, pending unmasked exceptions
(FWAIT never raises #MF), the instruction/data pointers and opcode, CR0.TS
(#NM) and CR0.EM.
"""

from __future__ import annotations

from cpu.semantics import semantics

FCW_RESET = 0x037F
"""FNINIT's control word: all exceptions masked, 64-bit precision, round to nearest (SDM Vol. 1, 8.1.5)."""

FSW_EXCEPTIONS = 0x00FF
"""Status word bits FNCLEX clears: IE DE ZE OE UE PE, stack fault, error summary; and B (bit 15)."""
FSW_BUSY = 0x8000


@semantics("fninit")
def fninit(ops, insn):
    """Control word to its default, status word cleared (TOP = 0), every register tagged empty."""
    ops.set_reg("fcw", FCW_RESET)
    ops.set_reg("fsw", 0)
    ops.set_reg("ftw", 0)


@semantics("fnclex")
def fnclex(ops, insn):
    ops.set_reg("fsw", ops.and_(ops.reg("fsw"), 0xFFFF ^ (FSW_EXCEPTIONS | FSW_BUSY)))


@semantics("fnstcw")
def fnstcw(ops, insn, dst):
    ops.write(dst, ops.reg("fcw"))


@semantics("fldcw")
def fldcw(ops, insn, src):
    ops.set_reg("fcw", ops.read(src))


@semantics("fnstsw")
def fnstsw(ops, insn, dst):
    """FNSTSW m16 / FNSTSW AX."""
    ops.write(dst, ops.reg("fsw"))


@semantics("wait")
def fwait(ops, insn):
    """FWAIT: would deliver pending unmasked x87 exceptions; none are ever pending here."""


@semantics("emms")
def emms(ops, insn):
    """Leave MMX state: every x87 register tagged empty."""
    ops.set_reg("ftw", 0)
