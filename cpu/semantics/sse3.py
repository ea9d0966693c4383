"""SSE3: alternating and horizontal floating-point add/subtract, duplicating moves, LDDQU.

Intel SDM Vol. 2 instruction pages ADDSUBPS/ADDSUBPD, HADDPS/HADDPD,
HSUBPS/HSUBPD, MOVDDUP, MOVSHDUP, MOVSLDUP and LDDQU.  The arithmetic is
``sse_float.arith`` lane by lane, so results and MXCSR flags follow MXCSR
exactly as ADDPS does (rounding control, DAZ, FTZ, table 4-7 NaNs), and the
flags of all lanes are ORed together.  Each helper is a function of its two
source values and MXCSR returning the new 128-bit value with the flags
above bit 128 (``xmm.write_float``).

LDDQU is an unaligned 128-bit load (its memory operand may be misaligned).
Not here: FISTTP (x87), and MONITOR/MWAIT, which are not implemented (the
CPU does not advertise them).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from cpu.semantics import helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.sse_float import F32, F64, Fmt, arith
from cpu.semantics.xmm import MASK64, join, lanes


def _pairs(f: Fmt, pairs: list[tuple[str, int, int]], mxcsr: int) -> int:
    """Lane i of the result is ``op(x, y)`` for the i-th (op, x, y); flags ORed above bit 128."""
    out, flags = [], 0
    for op, x, y in pairs:
        r, raised = arith(op, x, y, f, mxcsr)
        out.append(r)
        flags |= raised
    return join(out, f.bits) | (flags << 128)


def _alternate(f: Fmt, a: int, b: int, mxcsr: int) -> int:
    """ADDSUB: even lanes a - b, odd lanes a + b."""
    pairs = zip(lanes(a, f.bits), lanes(b, f.bits), strict=True)
    return _pairs(f, [("add" if i & 1 else "sub", x, y) for i, (x, y) in enumerate(pairs)], mxcsr)


def _horizontal(op: str, f: Fmt, a: int, b: int, mxcsr: int) -> int:
    """HADD/HSUB: adjacent lanes of a, then of b, combined as (even op odd)."""
    both = lanes(a, f.bits) + lanes(b, f.bits)
    return _pairs(f, [(op, both[i], both[i + 1]) for i in range(0, len(both), 2)], mxcsr)


ARITH: dict[str, Callable[[int, int, int], int]] = {
    "addsubps": partial(_alternate, F32), "addsubpd": partial(_alternate, F64),
    "haddps": partial(_horizontal, "add", F32), "haddpd": partial(_horizontal, "add", F64),
    "hsubps": partial(_horizontal, "sub", F32), "hsubpd": partial(_horizontal, "sub", F64),
}


def _arith_helper(name: str, compute: Callable[[int, int, int], int]) -> None:
    def h(a: int, b: int, mxcsr: int) -> int:
        return compute(a, b, mxcsr)
    h.__name__ = name
    h.__doc__ = f"{name.upper()}: the new 128-bit value of (a, b) under MXCSR, its flags above bit 128."
    helper(h)


for _name, _compute in ARITH.items():
    _arith_helper(_name, _compute)


@semantics(*ARITH, feature="sse3")
def arithmetic(ops, insn, dst, src):
    """HADDPS xmm1, xmm2/m128 and the others: dst = helper(dst, src, MXCSR); flags to MXCSR."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    X.write_float(ops, dst, ops.helper(insn.mnemonic, a, b, ops.reg("mxcsr")))


@helper
def movddup(b: int) -> int:
    """The low 64 bits in both halves."""
    return (b & MASK64) * ((1 << 64) + 1)


@helper
def movshdup(b: int) -> int:
    """Odd 32-bit lanes copied down: b1, b1, b3, b3."""
    d = lanes(b, 32)
    return join([d[1], d[1], d[3], d[3]], 32)


@helper
def movsldup(b: int) -> int:
    """Even 32-bit lanes copied up: b0, b0, b2, b2."""
    d = lanes(b, 32)
    return join([d[0], d[0], d[2], d[2]], 32)


@semantics("movddup", "movshdup", "movsldup", feature="sse3")
def duplicate(ops, insn, dst, src):
    """MOVDDUP xmm1, xmm2/m64; MOVSHDUP/MOVSLDUP xmm1, xmm2/m128."""
    ops.write(dst, ops.helper(insn.mnemonic, X.read(ops, insn, src)))


@semantics("lddqu", feature="sse3")
def lddqu(ops, insn, dst, src):
    """LDDQU xmm1, m128: an unaligned load."""
    ops.write(dst, X.read(ops, insn, src))
