"""Bit manipulation: BMI1 (ANDN, BEXTR, BLSI, BLSMSK, BLSR; TZCNT is in ``cpu.semantics.bit``) and BMI2
(BZHI, MULX, PDEP, PEXT, RORX, SARX, SHLX, SHRX).

Intel SDM Vol. 2A, "ANDN", "BEXTR", "BLSI", "BLSMSK", "BLSR", "BZHI"; Vol. 2B, "MULX", "PDEP", "PEXT",
"RORX", "SARX/SHLX/SHRX"; Vol. 1, 5.1.15-5.1.16.  All are VEX-encoded general-purpose instructions of
32 or 64 bits (VEX.W); a 32-bit destination is zero-extended.

Flags: ANDN and BEXTR clear CF and OF and set ZF (ANDN: SF too) from the result; BLSI, BLSR and BZHI
set ZF and SF from the result, clear OF, and set CF when the source is non-zero (BLSI), zero (BLSR) or
the index is past the operand (BZHI); BLSMSK sets SF, CF when the source is zero, and clears ZF and OF.
Flags the SDM leaves undefined (AF and PF; SF for BEXTR) are cleared here (``cpu.flags.UNDEFINED``).
MULX, PDEP, PEXT, RORX, SARX, SHLX and SHRX change no flags.  The shift counts of SARX, SHLX and SHRX
are masked to 5 or 6 bits as for SAR, SHL and SHR; RORX's immediate likewise.
"""

from __future__ import annotations

from cpu.flags import CcOp
from cpu.semantics import helper, semantics
from cpu.semantics.bit import status_flags


@helper
def deposit_bits(value: int, mask: int) -> int:
    """PDEP: the low bits of ``value``, in order, at the positions of ``mask``'s set bits."""
    out, bit = 0, 0
    while mask:
        low = mask & -mask
        if (value >> bit) & 1:
            out |= low
        mask ^= low
        bit += 1
    return out


@helper
def extract_bits(value: int, mask: int) -> int:
    """PEXT: the bits of ``value`` at the positions of ``mask``'s set bits, packed from bit 0."""
    out, bit = 0, 0
    while mask:
        low = mask & -mask
        if value & low:
            out |= 1 << bit
        mask ^= low
        bit += 1
    return out


def _low_mask(ops, length, size):
    """``(1 << length) - 1`` for a run-time ``length``; every bit when ``length`` >= ``size``."""
    all_ones = (1 << size) - 1
    return ops.select(ops.ult(length, size), ops.sub(ops.shl(1, length, size), 1, size), all_ones)


# -- BMI1 ----------------------------------------------------------------------------------------

@semantics("andn", feature="bmi1")
def andn(ops, insn, dst, first, second):
    r = ops.and_(ops.not_(ops.read(first), dst.size), ops.read(second))
    ops.write(dst, r)
    ops.set_flags(CcOp.LOGIC, dst.size, 0, 0, r)


@semantics("bextr", feature="bmi1")
def bextr(ops, insn, dst, src, control):
    value, ctrl = ops.read(src), ops.read(control)
    start, length = ops.and_(ctrl, 0xFF), ops.and_(ops.shr(ctrl, 8), 0xFF)
    shifted = ops.select(ops.ult(start, dst.size), ops.shr(value, start), 0)
    r = ops.and_(shifted, _low_mask(ops, length, dst.size))
    ops.write(dst, r)
    ops.set_flags(CcOp.LOGIC, dst.size, 0, 0, r)


def _lowest_bit_op(ops, dst, src, combine, carry_if_zero, zf=None):
    """BLSI, BLSMSK, BLSR: ``combine(value, value - 1 or -value)``; CF says whether the source was zero."""
    value = ops.read(src)
    r = combine(value)
    ops.write(dst, r)
    zero = ops.eq(value, 0)
    cf = zero if carry_if_zero else ops.xor(zero, 1)
    status_flags(ops, dst.size, r, cf, zf)


@semantics("blsi", feature="bmi1")
def blsi(ops, insn, dst, src):
    _lowest_bit_op(ops, dst, src, lambda v: ops.and_(v, ops.neg(v, dst.size)), carry_if_zero=False)


@semantics("blsmsk", feature="bmi1")
def blsmsk(ops, insn, dst, src):
    _lowest_bit_op(ops, dst, src, lambda v: ops.xor(v, ops.sub(v, 1, dst.size)), carry_if_zero=True, zf=0)


@semantics("blsr", feature="bmi1")
def blsr(ops, insn, dst, src):
    _lowest_bit_op(ops, dst, src, lambda v: ops.and_(v, ops.sub(v, 1, dst.size)), carry_if_zero=True)


# -- BMI2 ----------------------------------------------------------------------------------------

@semantics("bzhi", feature="bmi2")
def bzhi(ops, insn, dst, src, index):
    value, n = ops.read(src), ops.and_(ops.read(index), 0xFF)
    r = ops.and_(value, _low_mask(ops, n, dst.size))
    ops.write(dst, r)
    status_flags(ops, dst.size, r, ops.xor(ops.ult(n, dst.size), 1))


@semantics("mulx", feature="bmi2")
def mulx(ops, insn, high, low, src):
    """RDX (EDX) times the source, unsigned; the high half wins when both destinations are one register."""
    size = high.size
    product = ops.mul(ops.reg("rdx") if size == 64 else ops.trunc(ops.reg("rdx"), 32), ops.read(src), 2 * size)
    ops.write(low, ops.trunc(product, size))
    ops.write(high, ops.shr(product, size))


@semantics("pdep", feature="bmi2")
def pdep(ops, insn, dst, src, mask):
    ops.write(dst, ops.helper("deposit_bits", ops.read(src), ops.read(mask)))


@semantics("pext", feature="bmi2")
def pext(ops, insn, dst, src, mask):
    ops.write(dst, ops.helper("extract_bits", ops.read(src), ops.read(mask)))


@semantics("rorx", feature="bmi2")
def rorx(ops, insn, dst, src, count):
    size = dst.size
    n = count.imm & (size - 1)
    value = ops.read(src)
    ops.write(dst, ops.or_(ops.shr(value, n), ops.shl(value, size - n, size)) if n else value)


def _shift_count(ops, count, size):
    return ops.and_(ops.read(count), size - 1)


@semantics("shlx", feature="bmi2")
def shlx(ops, insn, dst, src, count):
    ops.write(dst, ops.shl(ops.read(src), _shift_count(ops, count, dst.size), dst.size))


@semantics("shrx", feature="bmi2")
def shrx(ops, insn, dst, src, count):
    ops.write(dst, ops.shr(ops.read(src), _shift_count(ops, count, dst.size)))


@semantics("sarx", feature="bmi2")
def sarx(ops, insn, dst, src, count):
    ops.write(dst, ops.sar(ops.read(src), _shift_count(ops, count, dst.size), dst.size))
