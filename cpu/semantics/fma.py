"""FMA3: fused multiply-add with one rounding (VFMADD/VFMSUB/VFNMADD/VFNMSUB 132/213/231 PS/PD/SS/SD,
VFMADDSUB and VFMSUBADD 132/213/231 PS/PD).

Intel SDM Vol. 1, 14.5 (FMA: "the result is computed as if to infinite
precision, then rounded once"), 14.5.1-14.5.2 (operand order and the
exceptions), and the VFMADD132PS page of Vol. 2C for each form.  With
operands 1, 2, 3 of the instruction (operand 1 the destination):

* 132: operand1 * operand3 + operand2;  213: operand2 * operand1 + operand3;
  231: operand2 * operand3 + operand1;
* FMSUB subtracts the addend, FNMADD negates the product, FNMSUB both;
  FMADDSUB subtracts in the even elements and adds in the odd ones, FMSUBADD
  the other way round.

Each lane is computed exactly (an integer over a power of two), then rounded once per
MXCSR through the rounding machinery of ``sse_float`` (a single-precision
result is first rounded to 53 bits "to odd", which makes the second rounding
to 24 bits exact), so PE, UE, OE and the directed modes are exact.  Invalid
results: the default NaN and IE for infinity * 0 and for an infinite product
plus an opposite infinity.  A NaN operand wins over those: the first NaN of
the two multiplicands (in the order above) and the addend, quieted, with IE
only for an SNaN (checked on a real CPU: infinity * 0 + QNaN raises
nothing).  Scalar forms keep operand 1's upper lanes.  DAZ and FTZ as for
the other SSE arithmetic; unmasked exceptions fault (#XM) through ``xmm.raise_flags``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from cpu.semantics import helper, semantics, vex
from cpu.semantics import sse_float as F
from cpu.semantics import xmm as X

NEGATE_PRODUCT, SUBTRACT_EVEN, SUBTRACT_ODD = 1, 2, 4
KINDS = {"fmadd": 0, "fmsub": SUBTRACT_EVEN | SUBTRACT_ODD, "fnmadd": NEGATE_PRODUCT,
         "fnmsub": NEGATE_PRODUCT | SUBTRACT_EVEN | SUBTRACT_ODD, "fmaddsub": SUBTRACT_EVEN, "fmsubadd": SUBTRACT_ODD}
"""What each form does to the product and to the addend of each lane."""


def _ratio(v: int, f: F.Fmt) -> tuple[int, int]:
    """The magnitude of a finite lane as ``n / d`` with ``d`` a power of two (exact)."""
    return F.value(v & ~f.sign, f).as_integer_ratio()


def _round_to_odd(n: int, d: int) -> float:
    """``n / d`` as a double rounded "to odd": truncated, with the last bit set when anything was cut off."""
    nearest = n / d                                 # Python divides integers correctly rounded
    a, b = nearest.as_integer_ratio()
    if a * d != n * b and int.from_bytes(F.F64.host.pack(nearest), "little") & 1 == 0:
        nearest = math.nextafter(nearest, math.inf if n * b > a * d else -math.inf)
    return nearest


def fma_lane(x: int, y: int, z: int, negate: bool, subtract: bool, f: F.Fmt, mxcsr: int) -> tuple[int, int]:
    """One lane of (+-)x * y (+-) z, rounded once: result bits and exception flags."""
    x, y, z = (F.daz(v, f, mxcsr) for v in (x, y, z))
    nan = F.nan_result(f, x, y, z)
    infinite = [v & ~f.sign == f.inf for v in (x, y)]
    zero = [not v & ~f.sign for v in (x, y)]
    infinite_times_zero = (infinite[0] and zero[1]) or (zero[0] and infinite[1])
    if nan is not None:
        return nan
    if infinite_times_zero:
        return f.indefinite, F.IE
    flags = F.DE if any(F.is_denormal(v, f) for v in (x, y, z)) else 0
    product_sign = ((x ^ y) & f.sign) ^ (f.sign if negate else 0)
    addend_sign = (z & f.sign) ^ (f.sign if subtract else 0)
    if any(infinite):
        if z & ~f.sign == f.inf and addend_sign != product_sign:
            return f.indefinite, F.IE
        return product_sign | f.inf, flags
    if z & ~f.sign == f.inf:
        return addend_sign | f.inf, flags
    # The exact result as n / d over one power of two (a rational, without Fraction's gcd on every step).
    (xn, xd), (yn, yd), (an, ad) = _ratio(x, f), _ratio(y, f), _ratio(z, f)
    pn, pd = xn * yn, xd * yd
    d = max(pd, ad)
    n = (-pn if product_sign else pn) * (d // pd) + (-an if addend_sign else an) * (d // ad)
    if n == 0:
        down = F.rounding(mxcsr) == F.ROUND_DOWN
        if pn == 0 and an == 0:
            sign = (product_sign | addend_sign) if down else (product_sign & addend_sign)
        else:
            sign = f.sign if down else 0
        return sign, flags
    if f is F.F32:
        r = _round_to_odd(n, d)
    else:
        try:
            r = n / d
        except OverflowError:
            r = math.inf if n > 0 else -math.inf

    def error(cn: int, cd: int) -> int:             # the sign of n/d - cn/cd, cd > 0
        difference = n * cd - cn * d
        return (difference > 0) - (difference < 0)
    return F.round_result(r, error, f, mxcsr, flags, lambda: Fraction(n, d))


SHAPES = {"ss": (F.F32, 1), "sd": (F.F64, 1), "ps": (F.F32, 4), "pd": (F.F64, 2)}


def _fma_helper(shape: str) -> None:
    f, count = SHAPES[shape]

    def h(x: int, y: int, z: int, upper: int, code: int, mxcsr: int) -> int:
        out = flags = 0
        for i in range(count):
            shift = f.bits * i
            xl, yl, zl = ((v >> shift) & f.mask for v in (x, y, z))
            subtract = bool(code & (SUBTRACT_ODD if i & 1 else SUBTRACT_EVEN))
            r, raised = fma_lane(xl, yl, zl, bool(code & NEGATE_PRODUCT), subtract, f, mxcsr)
            out |= r << shift
            flags |= raised
        if count == 1:
            out |= upper & ~f.mask
        return out | (flags << 128)
    h.__name__ = "fma" + shape
    h.__doc__ = f"x * y + z per {f.bits}-bit lane, rounded once; a scalar form keeps ``upper``'s upper lanes."
    helper(h)


for _shape in SHAPES:
    _fma_helper(_shape)

ORDERS = {"132": (0, 2, 1), "213": (1, 0, 2), "231": (1, 2, 0)}
"""Which instruction operands (0-based) are the multiplicands and the addend."""

FMA = [f"v{kind}{order}{shape}" for kind in KINDS for order in ORDERS for shape in SHAPES
       if shape[0] == "p" or kind not in ("fmaddsub", "fmsubadd")]


@semantics(*FMA, feature="fma")
def fma(ops, insn, *operands):
    """VFMADD231PS ymm1, ymm2, ymm3/m256 and the others, on each 128-bit half (see the module docstring)."""
    vex.check(ops)
    name = insn.mnemonic
    kind, order, shape = name[1:-5], name[-5:-2], name[-2:]
    halves = [vex.halves(ops, insn, o) for o in operands]
    mxcsr = ops.reg("mxcsr")
    results, flags = [], 0
    for i in range(len(halves[0])):
        a, b, c = (h[i] for h in halves)
        x, y, z = ((a, b, c)[k] for k in ORDERS[order])
        r = ops.helper("fma" + shape, x, y, z, a, KINDS[kind], mxcsr)
        flags = ops.or_(flags, ops.shr(r, 128))
        results.append(ops.trunc(r, 128))
    X.raise_flags(ops, flags)
    vex.write_halves(ops, insn, operands[0], results)
