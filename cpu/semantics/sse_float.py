"""SSE/SSE2 floating point: arithmetic, MIN/MAX, SQRT, comparisons and conversions.

Intel SDM Vol. 1, 4.2.2 and 4.8 (IEEE 754 single and double formats, NaNs,
the default "QNaN floating-point indefinite"), 4.9.1 and 11.5.2 (SIMD
floating-point exceptions), table 4-7 (which NaN a SSE instruction returns),
10.2.3 (MXCSR), and each instruction's page in Vol. 2.

Every instruction is a pure helper per mnemonic working on the bit patterns
of its lanes, with MXCSR as an argument, returning the new register value
and, above bit 128, the exception flags it raised (``xmm.write_float``).
The host's double arithmetic gives the round-to-nearest result (for single
precision a double result rounded again, which is exact for + - * / sqrt
because 53 >= 2 * 24 + 2); an exact rational comparison of that result with
the true value then gives the precision flag and, for the directed rounding
modes of MXCSR.RC, the one-ulp correction.

Modelled: all four rounding modes, DAZ, FTZ, and the flags IE, DE, ZE, OE,
UE (masked meaning: tiny and inexact), PE.  NaN results follow table 4-7:
the first source operand's NaN (the destination's) wins over the second's,
an SNaN comes back quiet, an invalid operation without NaN operands returns
the default QNaN; MINxx/MAXxx return the second operand whenever either is a
NaN.  Of the pre-computation exceptions only the highest-priority one is
flagged (4.9.2: IE or ZE, and DE only without them); DE is not reported
next to a NaN operand.  Checked against a real CPU bit for bit, MXCSR
included (``tests/semantics/test_sse_float.py``, the slow test).

Unmasked exceptions: ``xmm.raise_flags`` faults (#XM) and decides which
flags MXCSR keeps; here an unmasked UE is reported for any tiny result, exact
or not (11.5.2.5), and an unmasked OE or UE comes with PE only when the
result is inexact with the exponent unbounded (measured on a Xeon).

Not modelled: tininess is judged on the result rounded to the
destination format, not with an unbounded exponent (only UE can differ, for
results within half an ulp below the smallest normal).
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import NamedTuple

from cpu.flags import CcOp, Flag
from cpu.semantics import helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.xmm import MASK32, MASK64, MASK128, RC_SHIFT, ROUND_DOWN, ROUND_NEAREST, ROUND_UP, Mxcsr

IE, DE, ZE, OE, UE, PE = (int(f) for f in (Mxcsr.IE, Mxcsr.DE, Mxcsr.ZE, Mxcsr.OE, Mxcsr.UE, Mxcsr.PE))
DAZ, FTZ, UM = int(Mxcsr.DAZ), int(Mxcsr.FTZ), int(Mxcsr.UM)


class Fmt(NamedTuple):
    """An IEEE 754 binary interchange format, described by its bit patterns."""

    bits: int
    mask: int           # all bits of a lane
    fraction: int       # stored fraction bits
    sign: int
    inf: int            # exponent all ones, fraction zero
    quiet: int          # the fraction's top bit: set in a QNaN, clear in an SNaN
    indefinite: int     # the default QNaN of an invalid operation (negative, quiet, fraction 0)
    min_normal: int     # smallest normal magnitude (exponent 1)
    bias: int
    host: struct.Struct


def fmt(bits: int, fraction: int, code: str) -> Fmt:
    sign = 1 << (bits - 1)
    inf = sign - (1 << fraction)
    quiet = 1 << (fraction - 1)
    bias = (1 << (bits - fraction - 2)) - 1
    return Fmt(bits, (1 << bits) - 1, fraction, sign, inf, quiet, sign | inf | quiet, 1 << fraction, bias,
               struct.Struct(code))


F32 = fmt(32, 23, "<f")
F64 = fmt(64, 52, "<d")


def is_nan(v: int, f: Fmt) -> bool:
    return v & ~f.sign > f.inf


def is_snan(v: int, f: Fmt) -> bool:
    return is_nan(v, f) and not v & f.quiet


def is_denormal(v: int, f: Fmt) -> bool:
    return not v & f.inf and bool(v & (f.min_normal - 1))


def value(v: int, f: Fmt) -> float:
    """The number a (non-NaN) bit pattern stands for."""
    return f.host.unpack(v.to_bytes(f.bits // 8, "little"))[0]


def encode(x: float, f: Fmt) -> int:
    """Bit pattern of ``x`` rounded to nearest in ``f`` (a finite double too large for single is inf)."""
    try:
        return int.from_bytes(f.host.pack(x), "little")
    except OverflowError:
        return f.inf | (f.sign if x < 0 else 0)


def daz(v: int, f: Fmt, mxcsr: int) -> int:
    """DAZ: a denormal source reads as a zero of the same sign."""
    return v & f.sign if mxcsr & DAZ and is_denormal(v, f) else v


def rounding(mxcsr: int) -> int:
    return (mxcsr >> RC_SHIFT) & 3


def nan_result(f: Fmt, *sources: int) -> tuple[int, int] | None:
    """Table 4-7: the first NaN source, quieted; IE when any source is an SNaN."""
    for v in sources:
        if is_nan(v, f):
            return v | f.quiet, IE if any(is_snan(s, f) for s in sources) else 0
    return None


def _step(v: int, f: Fmt, up: bool) -> int:
    """The neighbouring value of ``v`` toward +inf (``up``) or -inf."""
    if not v & ~f.sign:
        return 1 if up else f.sign | 1
    return v + 1 if up != bool(v & f.sign) else v - 1


def round_result(r: float, error: Callable[[int, int], int], f: Fmt, mxcsr: int, flags: int,
                 ratio: Callable[[], Fraction] | None = None) -> tuple[int, int]:
    """Deliver a finite operation's result in ``f`` under MXCSR.

    ``r`` is the host's round-to-nearest double result; ``error(n, d)`` is the
    sign of (exact result - n/d).  An unmasked OE or UE comes with PE only when the
    result is inexact at ``f``'s precision with the exponent unbounded (measured:
    CVTSD2SS of 2**128 toward zero raises OE alone, of 2**128 + 2**76 OE and PE).  ``ratio``, when given,
    returns the exact result, for the results a host double cannot hold.
    """
    c, raised = _round(r, error, f, mxcsr, flags)
    if raised & (OE | UE) & ~(mxcsr >> X.MASK_SHIFT):
        raised = raised & ~PE | (0 if _exact_unbounded(r, error, f, ratio) else PE)
    return c, raised


def _exact_unbounded(r: float, error: Callable[[int, int], int], f: Fmt, ratio: Callable[[], Fraction] | None) -> bool:
    """Whether the exact result has no more significant bits than ``f``.  ``r``, the exact result rounded to a
    host double, is it when it is exact; else ``ratio()`` is (an exact result a double cannot hold: beyond its
    range, or with more bits than a double denormal keeps), or, without it, the result is taken as inexact."""
    if not math.isinf(r) and not error(*r.as_integer_ratio()):
        return (math.frexp(r)[0] * (1 << (f.fraction + 1))).is_integer()
    if ratio is None:
        return False
    exact = ratio()
    odd = abs(exact.numerator) // (abs(exact.numerator) & -abs(exact.numerator))
    return exact.denominator & (exact.denominator - 1) == 0 and odd.bit_length() <= f.fraction + 1


def _round(r: float, error: Callable[[int, int], int], f: Fmt, mxcsr: int, flags: int) -> tuple[int, int]:
    """:func:`round_result` with an unmasked OE's and UE's PE not yet decided."""
    c = encode(r, f)
    rc = rounding(mxcsr)
    negative = bool(c & f.sign)
    if c & ~f.sign == f.inf:                        # |exact| >= max + ulp/2: round to nearest overflows
        if rc == ROUND_NEAREST or rc == (ROUND_DOWN if negative else ROUND_UP):
            return c, flags | OE | PE
        # Rounding toward zero gives the largest finite number; it is an overflow only when the exact
        # result reaches 2**(emax + 1), the next value past it with an unbounded exponent.
        limit = 1 << (f.bias + 1)
        beyond = error(-limit if negative else limit, 1)
        overflow = beyond <= 0 if negative else beyond >= 0
        return c - 1, flags | PE | (OE if overflow else 0)
    err = error(*value(c, f).as_integer_ratio())
    if err and rc != ROUND_NEAREST:
        if rc == ROUND_DOWN:
            c = _step(c, f, False) if err < 0 else c
        elif rc == ROUND_UP:
            c = _step(c, f, True) if err > 0 else c
        elif (err < 0) != negative:                 # toward zero: |exact| < |c|
            c = _step(c, f, negative)
    if err:
        flags |= PE
    if c & ~f.sign == f.inf:                        # the largest finite number rounded away from zero
        flags |= OE
    magnitude = c & ~f.sign
    if magnitude < f.min_normal and (magnitude or err):
        if not mxcsr & UM:                          # unmasked, tininess alone is underflow (11.5.2.5)
            return c, flags | UE
        if mxcsr & FTZ:
            return c & f.sign, flags | UE | PE
        if err:
            flags |= UE
    return c, flags


def _ratio(op: str, x: float, y: float) -> Fraction:
    """x op y exactly (op: add, sub, mul or div; x and y finite, y nonzero for div)."""
    a, b = Fraction(x), Fraction(y)
    return a + b if op == "add" else a - b if op == "sub" else a * b if op == "mul" else a / b


def signum(d: int) -> int:
    return (d > 0) - (d < 0)


def _error(op: str, x: float, y: float, cn: int, cd: int) -> int:
    """Sign of (x op y, computed exactly) - cn/cd; x and y finite, cd > 0."""
    yn, yd = y.as_integer_ratio()
    if op == "sqrt":                                # sqrt(y) - c has the sign of y - c * c (c >= 0)
        return signum(yn * cd * cd - cn * cn * yd)
    xn, xd = x.as_integer_ratio()
    if op == "add":
        n, d = xn * yd + yn * xd, xd * yd
    elif op == "sub":
        n, d = xn * yd - yn * xd, xd * yd
    elif op == "mul":
        n, d = xn * yn, xd * yd
    else:
        n, d = (xn * yd, xd * yn) if yn > 0 else (-xn * yd, -xd * yn)
    return signum(n * cd - cn * d)


_HOST = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
         "sqrt": lambda _, y: math.sqrt(y)}
_PE_NEAREST = PE | int(Mxcsr.PM) | int(Mxcsr.RC)
_PE_MASKED = PE | int(Mxcsr.PM)


def _normal(v: int, f: Fmt) -> bool:
    """Neither zero, denormal, infinite nor NaN."""
    return 0 != v & f.inf != f.inf


def arith(op: str, a: int, b: int, f: Fmt, mxcsr: int) -> tuple[int, int]:
    """One lane of ADD/SUB/MUL/DIV (a op b) or SQRT (of b): result bits and exception flags."""
    if mxcsr & _PE_NEAREST == _PE_MASKED and _normal(b, f) and (_normal(a, f) if op != "sqrt" else not b & f.sign):
        # Fast path: PE is sticky, already set and masked, rounding is to nearest, the operands are normal
        # numbers.  A normal result then raises nothing new, so it needs no exactness check.
        c = encode(_HOST[op](value(a, f), value(b, f)), f)
        if f.min_normal <= c & ~f.sign < f.inf:
            return c, 0
    a, b = daz(a, f, mxcsr), daz(b, f, mxcsr)
    sources = (b,) if op == "sqrt" else (a, b)
    nan = nan_result(f, *sources)
    if nan is not None:
        return nan
    flags = DE if any(is_denormal(s, f) for s in sources) else 0
    x, y = (0.0 if op == "sqrt" else value(a, f)), value(b, f)
    # IE and ZE take priority over DE (SDM Vol. 1, 4.9.2): they are reported alone
    if op == "sqrt":
        if y < 0:
            return f.indefinite, IE
        r = math.sqrt(y)
    elif op == "div" and y == 0:
        if x == 0:
            return f.indefinite, IE
        return f.inf | ((a ^ b) & f.sign), 0 if math.isinf(x) else ZE
    else:
        r = _HOST[op](x, y)
        if r != r:                                  # inf - inf, 0 * inf, inf / inf
            return f.indefinite, IE
    if math.isinf(x) or math.isinf(y):              # arithmetic on an infinity is exact
        return encode(r, f), flags
    if r == 0 and op in ("add", "sub") and rounding(mxcsr) == ROUND_DOWN:
        # IEEE 754 6.3: an exact zero sum is -0 when rounding down, unless both addends are +0
        both_plus_zero = x == 0 and math.copysign(1, x) > 0 and math.copysign(1, y if op == "add" else -y) > 0
        r = 0.0 if both_plus_zero else -0.0
    return round_result(r, partial(_error, op, x, y), f, mxcsr, flags,
                        None if op == "sqrt" else partial(_ratio, op, x, y))


def minmax(op: str, a: int, b: int, f: Fmt, mxcsr: int) -> tuple[int, int]:
    """MINxx/MAXxx lane: the second operand unless the first is strictly smaller/greater (NaNs, +-0 too)."""
    a, b = daz(a, f, mxcsr), daz(b, f, mxcsr)
    if is_nan(a, f) or is_nan(b, f):
        return b, IE
    x, y = value(a, f), value(b, f)
    first = x < y if op == "min" else x > y
    return (a if first else b), DE if is_denormal(a, f) or is_denormal(b, f) else 0


# -- arithmetic helpers and semantics ----------------------------------------------------
SHAPES = {"ss": (F32, 1), "sd": (F64, 1), "ps": (F32, 4), "pd": (F64, 2)}
"""Suffix: (lane format, lanes computed); a scalar op keeps the destination's upper lanes, a packed
op computes every lane."""


def _lanewise(f: Fmt, count: int, a: int, b: int, lane: Callable[[int, int], tuple[int, int]]) -> int:
    mask = f.mask
    if count == 1:
        r, flags = lane(a & mask, b & mask)
        return (a & ~mask) | r | (flags << 128)
    out = flags = 0
    for i in range(count):
        shift = f.bits * i
        r, raised = lane((a >> shift) & mask, (b >> shift) & mask)
        out |= r << shift
        flags |= raised
    return out | (flags << 128)


def _arith_helper(name: str, fn: Callable[..., tuple[int, int]], f: Fmt, count: int) -> None:
    def h(a: int, b: int, mxcsr: int) -> int:
        return _lanewise(f, count, a, b, lambda x, y: fn(x, y, f, mxcsr))
    h.__name__ = name
    helper(h)


ARITH = []
for _op in ("add", "sub", "mul", "div", "sqrt", "min", "max"):
    for _suffix, (_f, _count) in SHAPES.items():
        _fn = partial(minmax, _op) if _op in ("min", "max") else partial(arith, _op)
        _arith_helper(_op + _suffix, _fn, _f, _count)
        ARITH.append(_op + _suffix)


@X.lane_form(*ARITH, flags=True)
def arithmetic(ops, name, insn, a, b):
    """ADDSD xmm1, xmm2/m64 and the rest: a op b, lane by lane (SQRT: sqrt(b)); a scalar op keeps a's upper lanes."""
    return ops.helper(name, a, b, ops.reg("mxcsr"))


# -- comparisons -------------------------------------------------------------------------------
PREDICATES: tuple[tuple[Callable[[float, float], bool], bool, bool], ...] = (
    # imm8 bits 3:0 (SDM Vol. 2A, CMPPD table 3-1): (ordered relation, result if unordered, QNaN signals)
    (operator.eq, False, False), (operator.lt, False, True), (operator.le, False, True),     # EQ_OQ LT_OS LE_OS
    (lambda x, y: False, True, False), (operator.ne, True, False),                           # UNORD_Q NEQ_UQ
    (operator.ge, True, True), (operator.gt, True, True), (lambda x, y: True, False, False),  # NLT_US NLE_US ORD_Q
    (operator.eq, True, False), (operator.lt, True, True), (operator.le, True, True),        # EQ_UQ NGE_US NGT_US
    (lambda x, y: False, False, False), (operator.ne, False, False),                         # FALSE_OQ NEQ_OQ
    (operator.ge, False, True), (operator.gt, False, True), (lambda x, y: True, True, False),  # GE_OS GT_OS TRUE_UQ
)
"""Predicates 16-31 (VEX only) are 0-15 with the QNaN signalling flipped; the legacy imm8 has 0-7."""


def compare_lane(predicate: int, a: int, b: int, f: Fmt, mxcsr: int) -> tuple[bool, int]:
    """Predicate 0-31 (imm8 bits 4:0): whether it holds of a and b, and the exception flags."""
    relation, unordered, signals = PREDICATES[predicate & 15]
    a, b = daz(a, f, mxcsr), daz(b, f, mxcsr)
    if is_nan(a, f) or is_nan(b, f):
        invalid = signals != bool(predicate & 16) or is_snan(a, f) or is_snan(b, f)
        return unordered, IE if invalid else 0
    x, y = value(a, f), value(b, f)
    return relation(x, y), DE if is_denormal(a, f) or is_denormal(b, f) else 0


def _compare_helper(name: str, f: Fmt, count: int) -> None:
    ones = f.mask

    def h(a: int, b: int, predicate: int, mxcsr: int) -> int:
        def lane(x: int, y: int) -> tuple[int, int]:
            result, flags = compare_lane(predicate, x, y, f, mxcsr)
            return (ones if result else 0), flags
        return _lanewise(f, count, a, b, lane)
    h.__name__ = name
    helper(h)


for _suffix, (_f, _count) in SHAPES.items():
    _compare_helper("cmp" + _suffix, _f, _count)


@X.lane_form("cmpss", "cmpps", "cmppd", shared=("cmpsd",), flags=True)
def compare(ops, name, insn, a, b):
    """CMPPS xmm1, xmm2/m128, imm8: each lane all ones when the predicate holds (imm8 bits 2:0; VEX: 4:0).

    The legacy CMPSD's XMM form comes through ``sse.cmpsd_xmm`` (the string module owns the mnemonic).
    The decoder turns capstone's pseudo-ops (``cmpltsd``, ``vcmpneq_usps``) back into mnemonic + imm8.
    """
    predicate = insn.operands[-1].imm & (31 if insn.mnemonic.startswith("v") else 7)
    return ops.helper(name, a, b, predicate, ops.reg("mxcsr"))


_CF, _PF, _ZF = int(Flag.CF), int(Flag.PF), int(Flag.ZF)


def _comis_helper(name: str, f: Fmt, signaling: bool) -> None:
    mask = f.mask

    def h(a: int, b: int, mxcsr: int) -> int:
        a, b = daz(a & mask, f, mxcsr), daz(b & mask, f, mxcsr)
        if is_nan(a, f) or is_nan(b, f):
            invalid = signaling or is_snan(a, f) or is_snan(b, f)
            return _ZF | _PF | _CF | ((IE if invalid else 0) << 128)
        x, y = value(a, f), value(b, f)
        flags = _ZF if x == y else _CF if x < y else 0
        return flags | ((DE if is_denormal(a, f) or is_denormal(b, f) else 0) << 128)
    h.__name__ = name
    helper(h)


for _name, _f, _signaling in (("comiss", F32, True), ("comisd", F64, True),
                              ("ucomiss", F32, False), ("ucomisd", F64, False)):
    _comis_helper(_name, _f, _signaling)


@semantics("comiss", "comisd", "ucomiss", "ucomisd")
def compare_flags(ops, insn, first, second):
    """Unordered: ZF = PF = CF = 1; less: CF; equal: ZF; greater: none.  OF, SF, AF are cleared.

    Also the VEX forms (VCOMISS, ...: ``cpu.semantics.avx``), which have the same shape."""
    a, b = ops.read(first), X.read(ops, insn, second)
    packed = ops.helper(insn.mnemonic.removeprefix("v"), a, b, ops.reg("mxcsr"))
    X.raise_flags(ops, ops.shr(packed, 128))
    ops.set_flags(CcOp.FLAGS, 64, ops.trunc(packed, 64), 0, 0)


# -- conversions ----------------------------------------------------------------------------------
def to_int(v: int, f: Fmt, size: int, truncate: bool, mxcsr: int) -> tuple[int, int]:
    """CVT(T)xx2SI lane: NaN, infinity or out of range give the integer indefinite 100..0 and IE."""
    indefinite = 1 << (size - 1)
    v = daz(v, f, mxcsr)
    if is_nan(v, f) or v & ~f.sign == f.inf:
        return indefinite, IE
    x = value(v, f)
    to_integer = (round, math.floor, math.ceil, math.trunc)[3 if truncate else rounding(mxcsr)]
    r = to_integer(x)
    if not -indefinite <= r < indefinite:
        return indefinite, IE
    return r & ((1 << size) - 1), PE if r != x else 0


def from_int(n: int, f: Fmt, mxcsr: int) -> tuple[int, int]:
    """A signed integer rounded to ``f`` under MXCSR.RC (no double rounding through a host double)."""
    if n == 0:
        return 0, 0
    sign = f.sign if n < 0 else 0
    m = abs(n)
    precision = f.fraction + 1
    shift = max(m.bit_length() - precision, 0)
    q, rest = m >> shift, m & ((1 << shift) - 1)
    if rest:
        half = 1 << (shift - 1)
        rc = rounding(mxcsr)
        up = (rest > half or (rest == half and q & 1)) if rc == ROUND_NEAREST else \
            (bool(sign) if rc == ROUND_DOWN else not sign if rc == ROUND_UP else False)
        q += up
        if q >> precision:                          # rounded up to the next power of two
            q, shift = q >> 1, shift + 1
    exponent = q.bit_length() - 1 + shift
    fraction = (q << (precision - q.bit_length())) - (1 << f.fraction)
    return sign | ((exponent + f.bias) << f.fraction) | fraction, PE if rest else 0


def narrow(v: int, mxcsr: int) -> tuple[int, int]:
    """Double to single: NaNs keep their sign and top fraction bits, quieted."""
    v = daz(v, F64, mxcsr)
    if is_nan(v, F64):
        nan = ((v >> 32) & F32.sign) | F32.inf | F32.quiet | ((v >> 29) & (F32.quiet - 1))
        return nan, IE if is_snan(v, F64) else 0
    flags = DE if is_denormal(v, F64) else 0
    x = value(v, F64)
    if math.isinf(x):
        return encode(x, F32), flags
    xn, xd = x.as_integer_ratio()
    return round_result(x, lambda n, d: signum(xn * d - n * xd), F32, mxcsr, flags)


def widen(v: int, mxcsr: int) -> tuple[int, int]:
    """Single to double: exact; NaNs keep sign and fraction, quieted."""
    v = daz(v, F32, mxcsr)
    if is_nan(v, F32):
        nan = ((v & F32.sign) << 32) | F64.inf | F64.quiet | ((v & (F32.min_normal - 1)) << 29)
        return nan, IE if is_snan(v, F32) else 0
    return encode(value(v, F32), F64), DE if is_denormal(v, F32) else 0


def _convert(b: int, src_width: int, dst_width: int, count: int, lane: Callable[[int], tuple[int, int]]) -> int:
    """Lanes 0..count-1 of b converted into lanes of dst_width; the rest of the result is zero."""
    out = flags = 0
    for i in range(count):
        r, raised = lane((b >> (src_width * i)) & ((1 << src_width) - 1))
        out |= r << (dst_width * i)
        flags |= raised
    return out | (flags << 128)


def _signed(v: int, size: int) -> int:
    return v - ((v >> (size - 1)) << size)


_PACKED: dict[str, tuple[int, int, int, Callable[[int, int], tuple[int, int]]]] = {
    # mnemonic: (source lane width, result lane width, lanes, lane conversion of (lane, mxcsr))
    "cvtdq2pd": (32, 64, 2, lambda v, m: from_int(_signed(v, 32), F64, m)),
    "cvtdq2ps": (32, 32, 4, lambda v, m: from_int(_signed(v, 32), F32, m)),
    "cvtps2dq": (32, 32, 4, lambda v, m: to_int(v, F32, 32, False, m)),
    "cvttps2dq": (32, 32, 4, lambda v, m: to_int(v, F32, 32, True, m)),
    "cvtpd2dq": (64, 32, 2, lambda v, m: to_int(v, F64, 32, False, m)),
    "cvttpd2dq": (64, 32, 2, lambda v, m: to_int(v, F64, 32, True, m)),
    "cvtps2pd": (32, 64, 2, widen),
    "cvtpd2ps": (64, 32, 2, narrow),
}


def _packed_helper(name: str, src_width: int, dst_width: int, count: int,
                   lane: Callable[[int, int], tuple[int, int]]) -> None:
    def h(b: int, mxcsr: int) -> int:
        return _convert(b, src_width, dst_width, count, lambda v: lane(v, mxcsr))
    h.__name__ = name
    helper(h)


for _name, _spec in _PACKED.items():
    _packed_helper(_name, *_spec)


@X.lane_form(*_PACKED, kind=X.UNARY, flags=True)
def convert_packed(ops, name, insn, a, b):
    """CVTDQ2PD xmm1, xmm2/m64 and the other packed conversions; results narrower than 128 bits zero the rest."""
    return ops.helper(name, b, ops.reg("mxcsr"))


@helper
def cvtsi2sd(a: int, n: int, size: int, mxcsr: int) -> int:
    r, flags = from_int(_signed(n, size), F64, mxcsr)
    return (a & ~MASK64) | r | (flags << 128)


@helper
def cvtsi2ss(a: int, n: int, size: int, mxcsr: int) -> int:
    r, flags = from_int(_signed(n, size), F32, mxcsr)
    return (a & ~MASK32) | r | (flags << 128)


@X.lane_form("cvtsi2sd", "cvtsi2ss", flags=True)
def int_to_scalar(ops, name, insn, a, n):
    """CVTSI2SD xmm1, r/m32 or r/m64: the low lane, rounded per MXCSR.RC; a's upper lanes kept."""
    return ops.helper(name, a, n, insn.operands[-1].size, ops.reg("mxcsr"))


def _to_int_helper(name: str, f: Fmt, truncate: bool) -> None:
    def h(v: int, size: int, mxcsr: int) -> int:
        r, flags = to_int(v & f.mask, f, size, truncate, mxcsr)
        return r | (flags << 128)
    h.__name__ = name
    helper(h)


for _name, _f, _truncate in (("cvtsd2si", F64, False), ("cvttsd2si", F64, True),
                             ("cvtss2si", F32, False), ("cvttss2si", F32, True)):
    _to_int_helper(_name, _f, _truncate)


@semantics("cvtsd2si", "cvttsd2si", "cvtss2si", "cvttss2si")
def scalar_to_int(ops, insn, dst, src):
    """CVTSD2SI r32/r64, xmm/m64: rounded per MXCSR.RC (CVTT: toward zero); also the VEX forms."""
    v = X.read(ops, insn, src)
    X.write_float(ops, dst, ops.helper(insn.mnemonic.removeprefix("v"), v, dst.size, ops.reg("mxcsr")), dst.size)


@helper
def cvtsd2ss(a: int, b: int, mxcsr: int) -> int:
    r, flags = narrow(b & MASK64, mxcsr)
    return (a & (MASK128 ^ MASK32)) | r | (flags << 128)


@helper
def cvtss2sd(a: int, b: int, mxcsr: int) -> int:
    r, flags = widen(b & MASK32, mxcsr)
    return (a & (MASK128 ^ MASK64)) | r | (flags << 128)


@X.lane_form("cvtsd2ss", "cvtss2sd", flags=True)
def scalar_convert(ops, name, insn, a, b):
    return ops.helper(name, a, b, ops.reg("mxcsr"))
