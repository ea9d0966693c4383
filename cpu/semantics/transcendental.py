"""x87 transcendental instructions: FSIN, FCOS, FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X, FYL2XP1.

Intel SDM Vol. 1, 8.3.9-8.3.10 (trigonometric, logarithmic and exponential instructions; the
operand range of FSIN/FCOS/FSINCOS/FPTAN, |x| < 2**63, and their reduction by pi) and the
Vol. 2 pages of each instruction with their tables of special operands.

Values are computed in fixed point with Python integers (series for sin, cos, atan, exp and
atanh; pi from Machin's formula) with at least ``GUARD`` bits beyond a result's magnitude; both
ends of the error interval are rounded to 64 bits per FCW.RC by ``extended.round_pack``, and when
they differ the value is computed again with more bits (Ziv's strategy), so results are correctly
rounded.  The argument of the trigonometric functions is reduced by multiples of pi/2 with pi
rounded to 66 bits, the constant the SDM says the x87 unit uses (8.3.10), so results for large
arguments agree with the processor's, not with the exact function.  The processor itself is not
correctly rounded in every case: results are within one unit in the last place of its own, not
bit-identical in every case.  Where it departs from the exact function by design (|x| < 2**-68,
F2XM1 outside [-1, 1], FYL2XP1 with 1 + x <= 0) what it gives was measured and is named where used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache

from cpu.semantics import call
from cpu.semantics import extended as X
from cpu.semantics.fpu import C2, SF, Fpu, x87

GUARD = 128
"""Fraction bits carried beyond a result's magnitude."""


# -- fixed-point building blocks: a value v is held as round(v * 2**f) ---------------------------------------
def _atan_inverse(n: int, f: int) -> int:
    """atan(1/n) for an integer n > 1."""
    total, term, k, n2 = 0, (1 << f) // n, 0, n * n
    while term:
        total += term // (2 * k + 1) if k % 2 == 0 else -(term // (2 * k + 1))
        term //= n2
        k += 1
    return total


@cache
def _pi(f: int) -> int:
    return 16 * _atan_inverse(5, f + 8) - 4 * _atan_inverse(239, f + 8) >> 8


@cache
def _ln2(f: int) -> int:
    """ln 2 = 2 atanh(1/3)."""
    total, term, k = 0, (1 << (f + 8)) // 3, 0
    while term:
        total += term // (2 * k + 1)
        term //= 9
        k += 1
    return 2 * total >> 8


PI66 = (_pi(200) + (1 << 135)) >> 136
"""pi rounded to 66 bits: the value is PI66 * 2**-64 (SDM Vol. 1, 8.3.10)."""
PI66_EXP = -64


def _fixed(m: int, e: int, f: int) -> int:
    shift = e + f
    return m << shift if shift >= 0 else m >> -shift


def _mul(a: int, b: int, f: int) -> int:
    """a * b in fixed point, truncated toward zero (so every series ends)."""
    p = a * b
    return p >> f if p >= 0 else -(-p >> f)


def _div(a: int, b: int) -> int:
    """a / b truncated toward zero, b > 0."""
    return a // b if a >= 0 else -(-a // b)


def _sin_cos(r: int, f: int) -> tuple[int, int]:
    """sin and cos of |r| <= pi/4 (fixed point f)."""
    r2 = _mul(r, r, f)
    s, term, k = 0, r, 1
    while term:
        s += term
        term = _div(-_mul(term, r2, f), (k + 1) * (k + 2))
        k += 2
    c, term, k = 0, 1 << f, 0
    while term:
        c += term
        term = _div(-_mul(term, r2, f), (k + 1) * (k + 2))
        k += 2
    return s, c


def _atanh_series(u: int, f: int) -> int:
    """atanh(u) for |u| <= 1/3."""
    u2 = _mul(u, u, f)
    total, term, k = 0, u, 0
    while term:
        total += _div(term, 2 * k + 1)
        term = _mul(term, u2, f)
        k += 1
    return total


def _atan(t: int, f: int) -> int:
    """atan(t) for 0 <= t <= 1: two argument halvings, t / (1 + sqrt(1 + t*t)), then the series."""
    one = 1 << f
    for _ in range(2):
        t = (t << f) // (one + math.isqrt((one + _mul(t, t, f)) << f))
    t2 = _mul(t, t, f)
    total, term, k = 0, t, 0
    while term:
        total += _div(term, 2 * k + 1) * (-1 if k % 2 else 1)
        term = _mul(term, t2, f)
        k += 1
    return 4 * total


def _exp(y: int, f: int) -> int:
    """e**y - 1 for |y| <= 1."""
    total, term, k = 0, y, 1
    while term:
        total += term
        k += 1
        term = _div(_mul(term, y, f), k)
    return total


# -- rounding an approximation once: more precision until its error interval rounds one way ---------
Approximation = tuple[int, int, int]
"""(n, e, err): the value is within err * 2**e of n * 2**e."""
GUARDS = (GUARD, 8 * GUARD, 64 * GUARD, 512 * GUARD)
ERROR = 1 << 12
"""A bound on the truncation error of the series and reductions, in units of their last bit."""


def _rounded(evaluate: Callable[[int], Approximation], rc: int, unmasked: int) -> tuple[int, int]:
    """Evaluate with ``guard`` extra bits, rounding both ends of the error interval; when they
    differ, evaluate again with more bits (Ziv's strategy)."""
    for guard in GUARDS:
        n, e, err = evaluate(guard)
        sign, m = int(n < 0), abs(n)
        if m <= err:
            continue
        low = X.round_pack(sign, m - err, e, 64, rc, unmasked)
        if low == X.round_pack(sign, m + err, e, 64, rc, unmasked):
            return low
    return X.round_pack(sign, m << 1 | 1, e - 1, 64, rc, unmasked)


def _fraction_bits(m: int, e: int, guard: int) -> int:
    """Fraction bits that keep ``guard`` bits below a value m * 2**e."""
    return guard + max(0, -(e + m.bit_length()))


TRIG_LIMIT = 63
"""FSIN, FCOS, FSINCOS and FPTAN leave ST(0) unchanged and set C2 when |x| >= 2**63."""


def in_trig_range(x: int) -> bool:
    _, m, e = X.exact(x)
    return e + m.bit_length() <= TRIG_LIMIT


def _reduce(x: int, guard: int) -> tuple[int, int, int]:
    """x - k * pi66/2 exactly, as (k mod 4, fixed-point value, its fraction bits)."""
    s, m, e = X.exact(x)
    half_pi_e = PI66_EXP - 1
    base = min(e, half_pi_e)
    value = (m << (e - base)) * (-1 if s else 1)
    p = PI66 << (half_pi_e - base)
    k = (2 * value + p) // (2 * p)                  # nearest multiple of pi/2
    r = value - k * p
    f = _fraction_bits(abs(r) or 1, base, guard)
    return k & 3, _fixed(r, base, f), f


def trig(x: int, which: str, rc: int, unmasked: int = 0) -> tuple[int, int]:
    """sin, cos or tan of a finite non-zero x with |x| < 2**63, rounded once."""
    def evaluate(guard: int) -> Approximation:
        quadrant, r, f = _reduce(x, guard)
        sn, cs = _sin_cos(r, f)
        sn, cs = ((sn, cs), (cs, -sn), (-sn, -cs), (-cs, sn))[quadrant]
        if which == "sin":
            return sn, -f, ERROR
        if which == "cos":
            return cs, -f, ERROR
        if cs < 0:
            sn, cs = -sn, -cs
        return _div(sn << f, cs), -f, ERROR << max(0, f - cs.bit_length() + 2)
    return _rounded(evaluate, rc, unmasked)


def arctangent(y: int, x: int, rc: int, unmasked: int = 0) -> tuple[int, int]:
    """atan2(y, x) of finite non-zero operands."""
    sy, my, ey = X.exact(y)
    sx, mx, ex = X.exact(x)
    swap = my * (1 << max(0, ey - ex)) > mx * (1 << max(0, ex - ey))
    (nm, ne), (dm, de) = ((mx, ex), (my, ey)) if swap else ((my, ey), (mx, ex))

    def evaluate(guard: int) -> Approximation:
        f = guard + 8 + max(0, de + dm.bit_length() - ne - nm.bit_length())
        t = (nm << (f + ne - de)) // dm             # y/x or x/y, at most 1
        a = _atan(t, f)
        pi = _pi(f)
        if swap:
            a = pi // 2 - a
        if sx:
            a = pi - a
        return (-a if sy else a), -f, ERROR
    return _rounded(evaluate, rc, unmasked)


def exp2m1(x: int, rc: int, unmasked: int = 0) -> tuple[int, int]:
    """2**x - 1 for 0 < |x| <= 1."""
    s, m, e = X.exact(x)

    def evaluate(guard: int) -> Approximation:
        f = _fraction_bits(m, e, guard) + 8
        y = _mul(_fixed(m, e, f), _ln2(f), f) * (-1 if s else 1)
        return _exp(y, f), -f, ERROR
    return _rounded(evaluate, rc, unmasked)


def _log2(m: int, e: int, plus_one: bool, sign: int, guard: int) -> tuple[int, int]:
    """log2(m * 2**e), or log2(1 + x) for x = (-1)**sign m 2**e, in fixed point: (value, fraction bits)."""
    if plus_one and e + m.bit_length() > -2:        # |x| >= 1/4: log2 of 1 + x, exactly formed
        base = min(e, 0)
        total = (1 << -base) + (m << (e - base)) * (-1 if sign else 1)
        return _log2(total, base, False, 0, guard)
    if plus_one:                                    # ln(1 + x) = 2 atanh(x / (2 + x))
        q = max(0, -e)
        num = (m << max(0, e)) * (-1 if sign else 1)  # x * 2**q
        f = _fraction_bits(m, e, guard) + 8
        u = _div(num << f, (2 << q) + num)
        whole = 0
    else:
        whole = e + m.bit_length() - 1
        one = 1 << (m.bit_length() - 1)
        num, den = m - one, m + one
        f = guard + 8 + max(0, den.bit_length() - (num.bit_length() if num else den.bit_length()))
        u = (num << f) // den
    ln = 2 * _atanh_series(u, f)
    return (whole << f) + _div(ln << f, _ln2(f)), f


def y_log2(y: int, x: int, rc: int, plus_one: bool, unmasked: int = 0) -> tuple[int, int]:
    """y * log2(x) (or y * log2(1 + x)) for finite y and x > 0 (1 + x > 0), rounded once."""
    sx, mx, ex = X.exact(x)
    sy, my, ey = X.exact(y)
    exact_zero = (plus_one and mx == 0) or (not plus_one and mx == 1 << (mx.bit_length() - 1)
                                            and ex + mx.bit_length() - 1 == 0)
    if exact_zero or my == 0:
        log_sign = sx if plus_one else 0
        if not exact_zero:
            lg, _ = _log2(mx, ex, plus_one, sx, GUARD)
            log_sign = int(lg < 0)
        return X.pack(sy ^ log_sign, 0, 0), 0

    def evaluate(guard: int) -> Approximation:
        lg, f = _log2(mx, ex, plus_one, sx, guard)
        return lg * my * (-1 if sy else 1), ey - f, ERROR * my
    return _rounded(evaluate, rc, unmasked)


# -- the instructions ---------------------------------------------------------------------------------------------
NEAR_ZERO = -68
"""For 0 < |x| < 2**-68 the processor gives sin x = tan x = x and cos x = 1, with PE (and UE for a
denormal x), in every rounding mode (measured on the host)."""


def _trig(x: int, name: str, rc: int, unmasked: int) -> tuple[int, int]:
    sign, m, e = X.exact(x)
    if e + m.bit_length() <= NEAR_ZERO:
        if name == "cos":
            return X.from_int(1), X.PE
        same, _ = X.round_pack(sign, m, e)          # a pseudo-denormal comes back normalised
        return same, X.PE | (X.UE if X.classify(same) is X.Class.DENORMAL else 0)
    return trig(x, name, rc, unmasked)


def _special(x: int) -> tuple[int, int] | None:
    """NaN and unsupported operands (the usual rules), else None."""
    done, flags = X.check_operands(x)
    return (done, flags) if done is not None else None


@x87("fsin", "fcos", "fsincos", "fptan")
def trigonometric(ops, insn):
    """FSIN, FCOS: ST(0) = f(ST(0)); FSINCOS: ST(0) = sin, then push cos; FPTAN: ST(0) = tan, then push 1.0.
    |ST(0)| >= 2**63: C2 = 1 and nothing else changes."""
    ops.call("fpu_trigonometric", ("fsin", "fcos", "fsincos", "fptan").index(insn.mnemonic))


@call
def fpu_trigonometric(cpu, which: int) -> None:
    fpu = Fpu(cpu)
    pushes = which >= 2
    if pushes and not fpu.may_replace_and_push():
        return
    if not pushes:
        fpu.wait()
        if fpu.underflow(0):
            if not fpu.unmasked & X.IE:
                fpu.set(0, X.INDEFINITE)
            return
    x, rc = fpu.get(0), fpu.rounding
    c = X.classify(x)
    second = None
    if (special := _special(x)) is not None:
        first, flags = special
        second = first
    elif c is X.Class.INFINITY:
        first = second = X.INDEFINITE
        flags = X.IE
    elif c is X.Class.ZERO:
        one = X.from_int(1)
        first, second, flags = ((x, x, 0), (one, one, 0), (x, one, 0), (x, one, 0))[which]
    elif not in_trig_range(x):                     # out of range: C2 = 1, ST(0) unchanged
        fpu.signal(X.DE if c is X.Class.DENORMAL else 0)
        fpu.set_condition(C2)
        return
    else:
        flags = X.DE if c is X.Class.DENORMAL else 0
        results = [_trig(x, name, rc, fpu.unmasked) for name in (("sin",), ("cos",), ("sin", "cos"), ("tan",))[which]]
        (first, f), (second, g) = results[0], results[-1] if which == 2 else (X.from_int(1), 0)
        flags |= f | g
    if fpu.signal(flags):
        fpu.set_condition(0)
        fpu.set(0, first)
        if pushes:
            fpu.push(second)


@x87("fpatan", "fyl2x", "fyl2xp1")
def binary_transcendental(ops, insn):
    """FPATAN: ST(1) = atan2(ST(1), ST(0)); FYL2X: ST(1) = ST(1) * log2(ST(0)); FYL2XP1: ST(1) * log2(ST(0) + 1);
    then pop."""
    ops.call("fpu_binary_transcendental", ("fpatan", "fyl2x", "fyl2xp1").index(insn.mnemonic))


@call
def fpu_binary_transcendental(cpu, which: int) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    if fpu.underflow(0, 1):
        result, flags = X.INDEFINITE, X.IE | SF
    else:
        x, y = fpu.get(0), fpu.get(1)
        result, flags = (_atan2, _yl2x, _yl2xp1)[which](y, x, fpu.rounding, fpu.unmasked)
    if fpu.signal(flags):
        fpu.set(1, result)
        fpu.pop()


def _atan2(y: int, x: int, rc: int, unmasked: int) -> tuple[int, int]:
    done, flags = X.check_operands(y, x)
    if done is not None:
        return done, flags
    cy, cx = X.classify(y), X.classify(x)
    sy, sx = y >> 79 & 1, x >> 79 & 1
    pi = _pi(GUARD)
    quarter = {(X.Class.INFINITY, X.Class.INFINITY): pi * (3 if sx else 1) // 4}
    if (cy, cx) in quarter:
        n = quarter[(cy, cx)]
    elif cy is X.Class.INFINITY or (cx is X.Class.ZERO and cy is not X.Class.ZERO):
        n = pi // 2
    elif cy is X.Class.ZERO or cx is X.Class.INFINITY:
        if not sx:
            return X.pack(sy, 0, 0), flags
        n = pi
    else:
        r, f = arctangent(y, x, rc, unmasked)
        return r, flags | f
    r, f = X.round_pack(sy, n << 1 | 1, -GUARD - 1, 64, rc, unmasked)
    return r, flags | f


def _yl2x(y: int, x: int, rc: int, unmasked: int) -> tuple[int, int]:
    done, flags = X.check_operands(y, x)
    if done is not None:
        return done, flags
    cy, cx = X.classify(y), X.classify(x)
    sy, sx = y >> 79 & 1, x >> 79 & 1
    if sx and cx is not X.Class.ZERO:
        return X.INDEFINITE, X.IE
    if cx is X.Class.ZERO:
        if cy is X.Class.ZERO:
            return X.INDEFINITE, X.IE
        return X.INFINITY | (sy ^ 1) << 79, (X.ZE if cy is not X.Class.INFINITY else flags)  # ZE hides DE
    if cx is X.Class.INFINITY:
        return (X.INDEFINITE, X.IE) if cy is X.Class.ZERO else (X.INFINITY | y & X.SIGN, flags)
    if cy is X.Class.INFINITY:
        below_one = X.value(x) < X.value(X.from_int(1))
        if X.value(x) == X.value(X.from_int(1)):
            return X.INDEFINITE, X.IE
        return X.INFINITY | (sy ^ below_one) << 79, flags
    r, f = y_log2(y, x, rc, False, unmasked)
    return r, flags | f


def _yl2xp1(y: int, x: int, rc: int, unmasked: int) -> tuple[int, int]:
    done, flags = X.check_operands(y, x)
    if done is not None:
        return done, flags
    cy, cx = X.classify(y), X.classify(x)
    sy, sx = y >> 79 & 1, x >> 79 & 1
    if cx is X.Class.INFINITY and not sx:
        return (X.INDEFINITE, X.IE) if cy is X.Class.ZERO else (X.INFINITY | y & X.SIGN, flags)
    if (cx is X.Class.INFINITY) or (cy is X.Class.INFINITY and cx is X.Class.ZERO):
        return X.INDEFINITE, X.IE
    if cy is X.Class.INFINITY:
        return X.INFINITY | (sy ^ sx) << 79, flags
    if sx and X.value(x) <= X.value(X.from_int(-1)):  # 1 + x <= 0, undefined: what the host gives
        return (x, flags | X.PE) if cy is not X.Class.ZERO else (X.pack(sy ^ sx, 0, 0), flags)
    r, f = y_log2(y, x, rc, True, unmasked)
    return r, flags | f


@x87("f2xm1")
def f2xm1(ops, insn):
    """F2XM1: ST(0) = 2**ST(0) - 1 (defined for -1 <= ST(0) <= 1)."""
    ops.call("fpu_exp2m1")


@call
def fpu_exp2m1(cpu) -> None:
    fpu = Fpu(cpu)
    fpu.replace_st0(lambda: _exp2m1(fpu.get(0), fpu.rounding, fpu.unmasked), 0)


def _exp2m1(x: int, rc: int, unmasked: int) -> tuple[int, int]:
    c = X.classify(x)
    if (special := _special(x)) is not None:
        return special
    if c is X.Class.ZERO:
        return x, 0
    if c is X.Class.INFINITY:
        return (X.from_int(-1) if x & X.SIGN else x), 0
    if abs(X.value(x)) > X.value(X.from_int(1)):
        return x, X.PE                              # outside [-1, 1]: ST(0) kept (measured on the host)
    if abs(X.value(x)) == X.value(X.from_int(1)):
        return (X.from_int(1) if not x & X.SIGN else X.round_pack(1, 1, -1)[0]), X.PE
    result, flags = exp2m1(x, rc, unmasked)
    return result, flags | (X.DE if c is X.Class.DENORMAL else 0)
