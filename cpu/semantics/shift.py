"""Shifts and rotates: SHL/SAL, SHR, SAR, ROL, ROR, RCL, RCR, SHLD, SHRD.

Intel SDM Vol. 2B, "SAL/SAR/SHL/SHR", "RCL/RCR/ROL/ROR", "SHLD", "SHRD";
Vol. 1, 7.3.6 and 7.3.7.

The count (an immediate, 1, or CL) is masked to 5 bits, 6 for 64-bit
operands.  A masked count of 0 changes no flags, but the destination is still
written: ``shl eax, 0`` clears bits 63..32 of RAX, as QEMU (our test oracle)
does.  CF is the last bit shifted out; OF is defined only for 1-bit shifts;
AF is undefined for shifts; rotates leave SF, ZF, AF and PF alone.  RCL and
RCR rotate through CF: the count is taken modulo 9 for 8-bit and modulo 17
for 16-bit operands.

Not modelled as the SDM says: the destination of a 16-bit SHLD/SHRD with a
count above 16 is "undefined"; we follow what Intel processors (and QEMU) do
and shift the 48-bit string DEST:SRC:DEST.
"""

from __future__ import annotations

from cpu.flags import ARITH, CcOp, Flag
from cpu.semantics import helper, semantics

_KEEP_FOR_ROTATE = ARITH & ~int(Flag.CF | Flag.OF)
"""Flags a rotate through carry leaves as they were (SF, ZF, AF, PF)."""


def _count(ops, dst, src):
    """The count operand masked to 5 bits (6 for 64-bit destinations)."""
    return ops.and_(ops.read(src), 0x3F if dst.size == 64 else 0x1F)


@helper
def parity(value: int) -> int:
    """1 when the low byte of ``value`` has an even number of set bits (the PF rule)."""
    return 1 - (bin(value & 0xFF).count("1") & 1)


def _status(ops, size, r, cf, of):
    """The six status flags of a shift result: CF and OF given, SF/ZF/PF from ``r``, AF clear."""
    sf = ops.shr(r, size - 1)
    zf = ops.eq(r, 0)
    pf = ops.helper("parity", r)
    low = ops.or_(ops.or_(cf, ops.shl(pf, 2, 8)), ops.or_(ops.shl(zf, 6, 8), ops.shl(sf, 7, 8)))
    return ops.or_(low, ops.shl(of, 11, 16))


# -- shifts -----------------------------------------------------------------------

@semantics("shl", "sal")
def shl(ops, insn, dst, src):
    a, n = ops.read(dst), _count(ops, dst, src)
    r = ops.shl(a, n, dst.size)
    ops.write(dst, r)
    ops.set_flags_if(ops.ne(n, 0), CcOp.SHL, dst.size, a, n, r)


@semantics("shr")
def shr(ops, insn, dst, src):
    a, n = ops.read(dst), _count(ops, dst, src)
    r = ops.shr(a, n)
    ops.write(dst, r)
    ops.set_flags_if(ops.ne(n, 0), CcOp.SHR, dst.size, a, n, r)


@semantics("sar")
def sar(ops, insn, dst, src):
    a, n = ops.read(dst), _count(ops, dst, src)
    r = ops.sar(a, n, dst.size)
    ops.write(dst, r)
    ops.set_flags_if(ops.ne(n, 0), CcOp.SAR, dst.size, a, n, r)


# -- rotates ----------------------------------------------------------------------

@semantics("rol")
def rol(ops, insn, dst, src):
    size = dst.size
    a, n, old = ops.read(dst), _count(ops, dst, src), ops.and_(ops.rflags(), ARITH)
    k = ops.and_(n, size - 1)                     # the rotation proper: count modulo the size
    r = ops.or_(ops.shl(a, k, size), ops.shr(a, ops.sub(size, k, 8)))
    ops.write(dst, r)
    ops.set_flags_if(ops.ne(n, 0), CcOp.ROL, size, a, n, r, old)


@semantics("ror")
def ror(ops, insn, dst, src):
    size = dst.size
    a, n, old = ops.read(dst), _count(ops, dst, src), ops.and_(ops.rflags(), ARITH)
    k = ops.and_(n, size - 1)
    r = ops.or_(ops.shr(a, k), ops.shl(a, ops.sub(size, k, 8), size))
    ops.write(dst, r)
    ops.set_flags_if(ops.ne(n, 0), CcOp.ROR, size, a, n, r, old)


def _rotate_through_carry(ops, dst, src, left):
    """RCL/RCR: rotate the (size+1)-bit string CF:DEST."""
    size = dst.size
    a, n, old = ops.read(dst), _count(ops, dst, src), ops.and_(ops.rflags(), ARITH)
    k = n if size >= 32 else ops.urem(n, size + 1)
    wide = ops.or_(ops.shl(ops.and_(old, 1), size, 128), a)
    back = ops.sub(size + 1, k, 8)
    if left:
        turned = ops.or_(ops.shl(wide, k, 128), ops.shr(wide, back))
    else:
        turned = ops.or_(ops.shr(wide, k), ops.shl(wide, back, 128))
    turned = ops.and_(turned, (1 << (size + 1)) - 1)
    r, cf = ops.trunc(turned, size), ops.shr(turned, size)
    msb = ops.shr(r, size - 1)
    # OF (1-bit counts only): RCL: MSB(result) ^ CF; RCR: the two top bits of the result differ.
    of = ops.xor(msb, cf) if left else ops.xor(msb, ops.and_(ops.shr(r, size - 2), 1))
    flags = ops.or_(ops.and_(old, _KEEP_FOR_ROTATE), ops.or_(cf, ops.shl(of, 11, 16)))
    ops.write(dst, r)
    ops.set_flags_if(ops.ne(n, 0), CcOp.FLAGS, size, flags, 0, 0)


@semantics("rcl")
def rcl(ops, insn, dst, src):
    _rotate_through_carry(ops, dst, src, left=True)


@semantics("rcr")
def rcr(ops, insn, dst, src):
    _rotate_through_carry(ops, dst, src, left=False)


# -- double-precision shifts ------------------------------------------------------------

def _shift_double(ops, dst, src, count, left):
    """SHLD/SHRD: shift DEST, filling from SRC.

    The bits form one wide string: DEST:SRC for SHLD, SRC:DEST for SHRD, and
    DEST:SRC:DEST (48 bits) for both at 16 bits, which is what makes counts
    17..31 come out as Intel's processors have them.
    """
    size = dst.size
    a, b, n = ops.read(dst), ops.read(src), _count(ops, dst, count)
    if size == 16:
        wide, width = ops.or_(ops.or_(ops.shl(a, 32, 64), ops.shl(b, 16, 32)), a), 48
    elif left:
        wide, width = ops.or_(ops.shl(a, size, 2 * size), b), 2 * size
    else:
        wide, width = ops.or_(ops.shl(b, size, 2 * size), a), 2 * size
    room = 128 if width > 64 else 64
    if left:
        r = ops.trunc(ops.shr(ops.shl(wide, n, room), width - size), size)
        cf = ops.and_(ops.shr(wide, ops.sub(width, n, 8)), 1)           # bit WIDTH-n: the last one out
    else:
        r = ops.trunc(ops.shr(wide, n), size)
        cf = ops.and_(ops.shr(wide, ops.sub(n, 1, 8)), 1)              # bit n-1
    of = ops.xor(ops.shr(r, size - 1), ops.shr(a, size - 1))            # the sign changed (1-bit counts)
    flags = _status(ops, size, r, cf, of)
    ops.write(dst, r)
    ops.set_flags_if(ops.ne(n, 0), CcOp.FLAGS, size, flags, 0, 0)


@semantics("shld")
def shld(ops, insn, dst, src, count):
    _shift_double(ops, dst, src, count, left=True)


@semantics("shrd")
def shrd(ops, insn, dst, src, count):
    _shift_double(ops, dst, src, count, left=False)
