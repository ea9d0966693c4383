"""Flag instructions: CLC, STC, CMC, CLD, STD, LAHF, SAHF (Intel SDM Vol. 2; Vol. 1, 7.3.13).

LAHF and SAHF exist in 64-bit mode only where CPUID.80000001H:ECX.LAHF-SAHF[bit 0] says so: they need
the ``lahf_lm`` feature (``cpu.cpuid``; x86-64-v2 and above).
"""

from __future__ import annotations

from cpu.flags import Flag
from cpu.semantics import semantics

_CF, _DF = int(Flag.CF), int(Flag.DF)
_SAHF_BITS = int(Flag.SF | Flag.ZF | Flag.AF | Flag.PF | Flag.CF)


@semantics("clc")
def clc(ops, insn):
    ops.set_rflags(0, _CF)


@semantics("stc")
def stc(ops, insn):
    ops.set_rflags(_CF, _CF)


@semantics("cmc")
def cmc(ops, insn):
    ops.set_rflags(ops.xor(ops.flag(Flag.CF), 1), _CF)


@semantics("cld")
def cld(ops, insn):
    ops.set_rflags(0, _DF)


@semantics("std")
def std(ops, insn):
    ops.set_rflags(_DF, _DF)


@semantics("lahf", feature="lahf_lm")
def lahf(ops, insn):
    """AH = SF:ZF:0:AF:0:PF:1:CF."""
    rax = ops.reg("rax")
    low = ops.or_(ops.and_(ops.rflags(), _SAHF_BITS), 2)
    ops.set_reg("rax", ops.or_(ops.and_(rax, ~0xFF00 & ((1 << 64) - 1)), ops.shl(low, 8, 64)))


@semantics("sahf", feature="lahf_lm")
def sahf(ops, insn):
    ah = ops.and_(ops.shr(ops.reg("rax"), 8), 0xFF)
    ops.set_rflags(ah, _SAHF_BITS)
