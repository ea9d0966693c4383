"""SSE4.1 floating point: ROUNDPS/PD/SS/SD and the dot products DPPS/DPPD.

Intel SDM Vol. 2 instruction pages ROUNDPD, ROUNDPS, ROUNDSD, ROUNDSS (table
4-18, the rounding-control immediate), DPPS and DPPD (their "Operation"
sections give the summation order followed here).

ROUNDxx rounds each lane to an integer in its own format: imm8[1:0] is the
rounding mode unless imm8[2] selects MXCSR.RC; imm8[3] suppresses the
precision exception.  An SNaN comes back quiet with IE; other NaNs and
infinities pass through; no other exception is raised (a denormal source
does not raise DE); DAZ applies to the source.

DPPS/DPPD multiply the lanes selected by imm8[7:4], add the products
pairwise in the SDM's order ((p0 + p1) + (p2 + p3)), unselected products
being +0.0, and write the sum to the lanes selected by imm8[3:0] (+0.0
elsewhere).  Every multiply and add rounds under MXCSR with ``sse_float.arith``,
so each step's exceptions are raised, ORed together.

Which NaN a sum returns depends on the order of each add's operands, which
the SDM leaves open.  This CPU sums for each destination lane on its own,
like two horizontal adds: DPPS lane i is (p[i^1] + p[i]) + (p[i^3] + p[i^2]),
DPPD lane i is p[i] + p[i^1] (the first operand's NaN wins, table 4-7); so
two lanes may hold different NaNs.  Measured on the host against random
operands (``tests/semantics/test_sse4.py``); the rounded sums are the same
in every lane.
"""

from __future__ import annotations

import math

from cpu.semantics import helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.sse_float import F32, F64, IE, PE, Fmt, arith, daz, encode, is_nan, is_snan, value
from cpu.semantics.xmm import RC_SHIFT, join, lanes

_ROUND = (round, math.floor, math.ceil, math.trunc)
"""Rounding to an integer by RC: nearest (ties to even), down, up, toward zero."""


def round_lane(v: int, f: Fmt, imm: int, mxcsr: int) -> tuple[int, int]:
    """One lane of ROUNDxx: the integral value as bits, and the MXCSR flags raised."""
    v = daz(v, f, mxcsr)
    if is_nan(v, f):
        return v | f.quiet, IE if is_snan(v, f) else 0
    x = value(v, f)
    if math.isinf(x):
        return v, 0
    rc = (mxcsr >> RC_SHIFT) & 3 if imm & 4 else imm & 3
    r = math.copysign(float(_ROUND[rc](x)), x)
    return encode(r, f), PE if r != x and not imm & 8 else 0


def _rounding(name: str, f: Fmt, count: int) -> None:
    def h(a: int, b: int, imm: int, mxcsr: int) -> int:
        out, flags = list(lanes(a, f.bits)), 0
        for i, v in enumerate(lanes(b, f.bits)[:count]):
            out[i], raised = round_lane(v, f, imm, mxcsr)
            flags |= raised
        return join(out, f.bits) | (flags << 128)

    h.__name__ = name
    h.__doc__ = f"{name.upper()}: the low {count} lane(s) of b rounded to integers; a's other lanes kept."
    helper(h)


for _name, _f, _count in (("roundps", F32, 4), ("roundpd", F64, 2), ("roundss", F32, 1), ("roundsd", F64, 1)):
    _rounding(_name, _f, _count)


@semantics("roundps", "roundpd", "roundss", "roundsd", feature="sse4_1")
def round_insn(ops, insn, dst, src, imm):
    """ROUNDPS xmm1, xmm2/m128, imm8; ROUNDSS xmm1, xmm2/m32, imm8 (upper lanes of xmm1 kept)."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    X.write_float(ops, dst, ops.helper(insn.mnemonic, a, b, imm.imm, ops.reg("mxcsr")))


class _Stopped(Exception):
    """A stage of a dot product raised an unmasked exception: the instruction stops there (#XM)."""


def _dot(f: Fmt, a: int, b: int, imm: int, mxcsr: int) -> int:
    """The products, then one (DPPD) or two (DPPS) rounds of sums, each a stage: a stage with an unmasked
    exception ends the instruction with the flags of the stages before it and its own (only its
    pre-computation ones if one of those is unmasked), as measured on a Xeon."""
    n = 128 // f.bits
    unmasked = ~(mxcsr >> X.MASK_SHIFT) & X.EXCEPTION_FLAGS
    flags = 0

    def stage(pairs: list[tuple[str, int, int] | None]) -> list[int]:
        nonlocal flags
        out, raised = [], 0
        for pair in pairs:
            r, lane_flags = arith(*pair, f, mxcsr) if pair is not None else (0, 0)
            out.append(r)
            raised |= lane_flags
        if raised & unmasked & X.PRE_COMPUTATION:
            raised &= X.PRE_COMPUTATION
        flags |= raised
        if raised & unmasked:
            raise _Stopped
        return out

    try:
        t = stage([("mul", x, y) if imm >> (4 + i) & 1 else None
                   for i, (x, y) in enumerate(zip(lanes(a, f.bits), lanes(b, f.bits), strict=True))])
        if n == 4:
            pairs = stage([("add", t[i ^ 1], t[i]) for i in range(4)])
            sums = stage([("add", pairs[i], pairs[i ^ 2]) for i in range(4)])
        else:
            sums = stage([("add", t[i], t[i ^ 1]) for i in range(2)])
    except _Stopped:
        return flags << 128
    return join([sums[i] if imm >> i & 1 else 0 for i in range(n)], f.bits) | (flags << 128)


@helper
def dpps(a: int, b: int, imm: int, mxcsr: int) -> int:
    """DPPS: the single-precision dot product of the lanes imm[7:4] selects, in the lanes imm[3:0] selects."""
    return _dot(F32, a, b, imm, mxcsr)


@helper
def dppd(a: int, b: int, imm: int, mxcsr: int) -> int:
    """DPPD: the double-precision dot product of the lanes imm[5:4] selects, in the lanes imm[1:0] selects."""
    return _dot(F64, a, b, imm, mxcsr)


@semantics("dpps", "dppd", feature="sse4_1")
def dot_insn(ops, insn, dst, src, imm):
    """DPPS xmm1, xmm2/m128, imm8."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    X.write_float(ops, dst, ops.helper(insn.mnemonic, a, b, imm.imm, ops.reg("mxcsr")), staged=True)
