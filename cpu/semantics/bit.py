"""Bit test and bit scan: BT, BTS, BTR, BTC, BSF, BSR, TZCNT, LZCNT, POPCNT.

Intel SDM Vol. 2A, "BSF", "BSR", "BT", "BTC", "BTR", "BTS", "LZCNT";
Vol. 2B, "POPCNT", "TZCNT"; Vol. 1, 7.3.7.

BT*: with a register bit base, or an immediate offset, the offset is taken
modulo the operand size.  With a memory bit base and a register offset, the
offset is a *signed* bit index into a string that may lie outside the operand:
the instruction accesses the operand-sized word at
``address + operand_bytes * (offset DIV operand_bits)`` (floor division), and
bit ``offset MOD operand_bits`` in it.  CF receives the bit; ZF is unchanged;
OF, SF, AF and PF are undefined (left unchanged here).

BSF/BSR: when the source is 0, ZF = 1 and the destination keeps its value
(a 32-bit destination is still written, so bits 63..32 are cleared, as QEMU
does).  CF, OF, SF, AF and PF are undefined.

TZCNT (BMI1) and LZCNT (LZCNT) are F3-prefixed BSF and BSR: they count the
trailing or leading zero bits, the operand size for a zero source; CF = (source
== 0), ZF = (result == 0), OF, SF, AF and PF are undefined (here: clear).  A
CPU level without the feature runs them as BSF and BSR, as a processor that
ignores the prefix does (``cpu.cpuid.OLDER_MEANING``).  POPCNT: ZF = (source ==
0), the other status flags are cleared.

Not modelled: LOCK with BTS/BTR/BTC has no further effect (one CPU).
"""

from __future__ import annotations

from cpu.decoder import Kind
from cpu.flags import CcOp, Flag
from cpu.semantics import helper, semantics

_CF = int(Flag.CF)


@helper
def bit_scan_forward(value: int) -> int:
    """Index of the lowest set bit; 0 when ``value`` is 0 (callers keep the destination then)."""
    return (value & -value).bit_length() - 1 if value else 0


@helper
def bit_scan_reverse(value: int) -> int:
    """Index of the highest set bit; 0 when ``value`` is 0."""
    return value.bit_length() - 1 if value else 0


@helper
def popcount(value: int) -> int:
    return bin(value).count("1")


# -- BT, BTS, BTR, BTC ---------------------------------------------------------------

def _bit_op(ops, base, offset, update):
    """Test (and with ``update``, change) one bit; ``update(ops, word, mask)`` -> new word."""
    size = base.size
    if base.kind is Kind.MEM and offset.kind is Kind.REG:
        index = ops.sext(ops.read(offset), size, 64)
        step = ops.shl(ops.sar(index, size.bit_length() - 1, 64), (size // 8).bit_length() - 1, 64)
        address = ops.add(ops.address(base), step, 64)
        word = ops.load(address, size)
        bit = ops.and_(index, size - 1)
    else:
        address = None
        word = ops.read(base)
        bit = ops.and_(ops.read(offset), size - 1)
    cf = ops.and_(ops.shr(word, bit), 1)
    if update is not None:
        new = update(ops, word, ops.shl(1, bit, size), size)
        if address is None:
            ops.write(base, new)
        else:
            ops.store(address, size, new)
    ops.set_rflags(cf, _CF)


@semantics("bt")
def bt(ops, insn, base, offset):
    _bit_op(ops, base, offset, None)


@semantics("bts")
def bts(ops, insn, base, offset):
    _bit_op(ops, base, offset, lambda ops, word, mask, size: ops.or_(word, mask))


@semantics("btr")
def btr(ops, insn, base, offset):
    _bit_op(ops, base, offset, lambda ops, word, mask, size: ops.and_(word, ops.not_(mask, size)))


@semantics("btc")
def btc(ops, insn, base, offset):
    _bit_op(ops, base, offset, lambda ops, word, mask, size: ops.xor(word, mask))


# -- bit scans and counts -------------------------------------------------------------

def _scan(ops, dst, src, name):
    value, old = ops.read(src), ops.read(dst)
    index = ops.helper(name, value)
    ops.write(dst, ops.select(ops.eq(value, 0), old, index))
    ops.set_flags(CcOp.LOGIC, dst.size, 0, 0, value)    # ZF = (source == 0); the rest are undefined


@semantics("bsf")
def bsf(ops, insn, dst, src):
    _scan(ops, dst, src, "bit_scan_forward")


@semantics("bsr")
def bsr(ops, insn, dst, src):
    _scan(ops, dst, src, "bit_scan_reverse")


def status_flags(ops, size, result, cf, zf=None):
    """Record SF of ``result``, ZF = (``result`` == 0) unless ``zf`` (0 or 1) is given, CF = ``cf`` (0 or 1),
    and OF = AF = PF = 0: the BMI instructions' pattern."""
    zf = ops.shl(ops.eq(result, 0) if zf is None else zf, 6, 8)
    sf = ops.shl(ops.shr(result, size - 1), 7, 8)
    ops.set_flags(CcOp.FLAGS, size, ops.or_(ops.or_(zf, sf), cf), 0, 0)


def _count(ops, dst, src, count):
    """TZCNT/LZCNT: ``count(value)`` for a non-zero source, the operand size for zero."""
    value = ops.read(src)
    zero = ops.eq(value, 0)
    result = ops.select(zero, dst.size, count(value))
    ops.write(dst, result)
    status_flags(ops, dst.size, result, zero)


@semantics("tzcnt", feature="bmi1")
def tzcnt(ops, insn, dst, src):
    _count(ops, dst, src, lambda value: ops.helper("bit_scan_forward", value))


@semantics("lzcnt", feature="lzcnt")
def lzcnt(ops, insn, dst, src):
    _count(ops, dst, src, lambda value: ops.sub(dst.size - 1, ops.helper("bit_scan_reverse", value), dst.size))


@semantics("popcnt", feature="popcnt")
def popcnt(ops, insn, dst, src):
    value = ops.read(src)
    ops.write(dst, ops.helper("popcount", value))
    ops.set_flags(CcOp.FLAGS, dst.size, ops.shl(ops.eq(value, 0), 6, 8), 0, 0)
