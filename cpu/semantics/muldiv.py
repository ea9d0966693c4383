"""Multiply and divide: MUL, IMUL (one, two and three operands), DIV, IDIV.

Intel SDM Vol. 2A, "DIV", "IDIV", "IMUL"; Vol. 2B, "MUL"; Vol. 1, 7.3.2.

The one-operand forms use the accumulator pair: AX (8-bit: AX = AL * src,
AL = AX / src, AH = AX % src), DX:AX, EDX:EAX or RDX:RAX.  The product is
computed at twice the operand size (128 bits for 64-bit operands) from
zero- or sign-extended inputs.  MUL and IMUL set CF = OF = 1 when the high
half is significant (for IMUL: when the product differs from the sign
extension of its low half); SF, ZF, AF and PF are undefined (here SF, ZF and
PF come from the low half and AF is clear, as ``CcOp.MUL`` computes them).

DIV and IDIV raise #DE when the divisor is 0 or the quotient does not fit the
destination (IDIV: including INT_MIN / -1); the fault comes before any write.
IDIV truncates toward zero and the remainder has the sign of the dividend.
All six status flags are undefined after a division; we leave them unchanged.
"""

from __future__ import annotations

from cpu.decoder import Kind, Operand
from cpu.exceptions import Vector
from cpu.flags import CcOp
from cpu.semantics import helper, semantics


def _signed(value: int, size: int) -> int:
    return value - (1 << size) if value >> (size - 1) & 1 else value


@helper
def sdiv(a: int, b: int, size: int) -> int:
    """Signed quotient of two ``size``-bit values, truncated toward zero, as a ``size``-bit value."""
    x, y = _signed(a, size), _signed(b, size)
    q = abs(x) // abs(y)
    return (-q if (x < 0) != (y < 0) else q) & ((1 << size) - 1)


@helper
def srem(a: int, b: int, size: int) -> int:
    """Signed remainder (the sign of the dividend), as a ``size``-bit value."""
    x, y = _signed(a, size), _signed(b, size)
    r = abs(x) % abs(y)
    return (-r if x < 0 else r) & ((1 << size) - 1)


def _acc(size: int) -> Operand:
    """AL/AX/EAX/RAX."""
    return Operand(Kind.REG, size, reg="rax")


def _high(size: int) -> Operand:
    """Where the high half of a product or dividend lives for 16/32/64-bit operands: DX, EDX, RDX."""
    return Operand(Kind.REG, size, reg="rdx")


def _write_pair(ops, size, low, high):
    """Write a double-width result: AX for 8-bit operands, else rDX:rAX."""
    if size == 8:
        ops.write(_acc(16), ops.or_(ops.shl(high, 8, 16), low))
    else:
        ops.write(_acc(size), low)
        ops.write(_high(size), high)


def _read_pair(ops, size):
    """The double-width dividend: AX, DX:AX, EDX:EAX or RDX:RAX."""
    if size == 8:
        return ops.read(_acc(16))
    return ops.or_(ops.shl(ops.read(_high(size)), size, 2 * size), ops.read(_acc(size)))


# -- multiplication -----------------------------------------------------------------

@semantics("mul")
def mul(ops, insn, src):
    size = src.size
    a, b = ops.read(_acc(size)), ops.read(src)
    product = ops.mul(a, b, 2 * size)
    low, high = ops.trunc(product, size), ops.shr(product, size)
    _write_pair(ops, size, low, high)
    ops.set_flags(CcOp.MUL, size, a, b, low, ops.ne(high, 0))


@semantics("imul")
def imul(ops, insn, *operands):
    if len(operands) == 1:
        _imul_wide(ops, operands[0])
    else:
        dst = operands[0]
        first, second = (dst, operands[1]) if len(operands) == 2 else (operands[1], operands[2])
        _imul_truncated(ops, dst, first, second)


def _imul_wide(ops, src):
    """IMUL r/m: rDX:rAX (AX for bytes) = rAX * src, signed."""
    size, wide = src.size, 2 * src.size
    a, b = ops.read(_acc(size)), ops.read(src)
    product = ops.mul(ops.sext(a, size, wide), ops.sext(b, size, wide), wide)
    low, high = ops.trunc(product, size), ops.shr(product, size)
    _write_pair(ops, size, low, high)
    ops.set_flags(CcOp.MUL, size, a, b, low, ops.ne(product, ops.sext(low, size, wide)))


def _imul_truncated(ops, dst, first, second):
    """IMUL r, r/m and IMUL r, r/m, imm: the low half is kept; CF = OF = 1 if it lost bits.

    Capstone gives the immediate already sign-extended to the operand size.
    """
    size, wide = dst.size, 2 * dst.size
    a, b = ops.read(first), ops.read(second)
    product = ops.mul(ops.sext(a, size, wide), ops.sext(b, size, wide), wide)
    low = ops.trunc(product, size)
    ops.write(dst, low)
    ops.set_flags(CcOp.MUL, size, a, b, low, ops.ne(product, ops.sext(low, size, wide)))


# -- division -----------------------------------------------------------------------

@semantics("div")
def div(ops, insn, src):
    size = src.size
    n, d = _read_pair(ops, size), ops.read(src)
    zero = ops.eq(d, 0)
    safe = ops.select(zero, 1, d)                  # no backend ever divides by zero
    q, r = ops.udiv(n, safe), ops.urem(n, safe)
    too_big = ops.ne(ops.shr(q, size), 0)
    ops.fault_if(ops.or_(zero, too_big), Vector.DE)
    _write_pair(ops, size, ops.trunc(q, size), r)


@semantics("idiv")
def idiv(ops, insn, src):
    size, wide = src.size, 2 * src.size
    n, d = _read_pair(ops, size), ops.sext(ops.read(src), size, wide)
    zero = ops.eq(d, 0)
    safe = ops.select(zero, 1, d)
    q, r = ops.sdiv(n, safe, wide), ops.srem(n, safe, wide)
    low = ops.trunc(q, size)
    too_big = ops.ne(ops.sext(low, size, wide), q)   # INT_MIN / -1 lands here too
    ops.fault_if(ops.or_(zero, too_big), Vector.DE)
    _write_pair(ops, size, low, ops.trunc(r, size))
