"""The x87 double extended-precision format, computed exactly with Python integers.

Intel SDM Vol. 1, 4.2 and 8.2 (the 80-bit format: sign, 15-bit exponent biased by 16383,
64-bit significand with an *explicit* integer bit), 4.8 (real numbers, denormals, NaNs),
4.9 and 8.5 (the six exceptions and their masked responses), 8.1.5.2-3 (precision and
rounding control), table 8-3 (unsupported encodings) and table 4-7 (NaN operands).

A value is a 80-bit integer: bits 0-63 the significand, 64-78 the biased exponent, 79 the
sign.  Every operation computes the exact result as an integer times a power of two (a
quotient or square root gets one sticky bit past the precision) and rounds once in
:func:`round_pack`, so results are exact on any host; the host's ``long double`` is never
used.  An operation returns ``(result, flags)``; ``flags`` are FSW bits: IE DE ZE OE UE PE
and C1 ("rounded up", SDM 8.1.3.1), so a caller ORs them into the status word after it
applied its masks.

Encodings the SDM calls unsupported (unnormals, pseudo-NaNs, pseudo-infinities) are invalid
operands: IE and the QNaN indefinite.  Pseudo-denormals (exponent 0, integer bit 1) are
read as the denormals they are, as the processor does since the Pentium (8.2.2).

Not modelled: the reserved precision-control value 01 (read as 64 bits).
"""

from __future__ import annotations

import enum
import math

BIAS = 16383
EMIN, EMAX = 1 - BIAS, BIAS               # unbiased exponent range of normal numbers
EXP_MASK = 0x7FFF
INT_BIT = 1 << 63
SIG_MASK = (1 << 64) - 1
SIGN = 1 << 79
INDEFINITE = SIGN | EXP_MASK << 64 | 0xC000_0000_0000_0000
"""The QNaN indefinite: the masked response to an invalid operation (SDM Vol. 1, table 4-3)."""
INFINITY = EXP_MASK << 64 | INT_BIT

# FSW bits (SDM Vol. 1, figure 8-4) the operations report.
IE, DE, ZE, OE, UE, PE = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
C1 = 0x200

NEAREST, DOWN, UP, ZERO = 0, 1, 2, 3
"""FCW.RC values (SDM Vol. 1, table 4-8)."""
PRECISION = {0: 24, 1: 64, 2: 53, 3: 64}
"""FCW.PC -> significand bits (table 8-2); the reserved 01 is read as 64."""

TINY_BEFORE_ROUNDING = False
"""Tininess is detected after rounding (measured on the host: a largest denormal that rounds to
the smallest normal at 24 bits does not signal UE)."""
BIAS_ADJUST = 24576
"""The exponent adjustment of an unmasked overflow or underflow result (SDM Vol. 1, 4.9.1.4-5)."""


class Class(enum.Enum):
    ZERO = "zero"
    DENORMAL = "denormal"
    NORMAL = "normal"
    INFINITY = "infinity"
    QNAN = "qnan"
    SNAN = "snan"
    UNSUPPORTED = "unsupported"


def fields(x: int) -> tuple[int, int, int]:
    """(sign, biased exponent, significand)."""
    return x >> 79 & 1, x >> 64 & EXP_MASK, x & SIG_MASK


def pack(sign: int, exponent: int, significand: int) -> int:
    return sign << 79 | exponent << 64 | significand


def classify(x: int) -> Class:
    _, e, m = fields(x)
    if e == 0:
        return Class.ZERO if m == 0 else Class.DENORMAL
    if not m & INT_BIT:
        return Class.UNSUPPORTED             # unnormal, pseudo-infinity, pseudo-NaN
    if e == EXP_MASK:
        if m == INT_BIT:
            return Class.INFINITY
        return Class.QNAN if m >> 62 & 1 else Class.SNAN
    return Class.NORMAL


def is_nan(c: Class) -> bool:
    return c in (Class.QNAN, Class.SNAN)


def exact(x: int) -> tuple[int, int, int]:
    """A finite value as (sign, m, e): the value is (-1)**sign * m * 2**e."""
    s, e, m = fields(x)
    return s, m, max(e, 1) - BIAS - 63


def quiet(x: int) -> int:
    return x | 1 << 62


# -- rounding -------------------------------------------------------------------------------
def _round_bits(sign: int, m: int, shift: int, rc: int) -> tuple[int, bool, bool]:
    """m >> shift rounded by ``rc``: (kept, inexact, rounded up in magnitude)."""
    if shift <= 0:
        return m << -shift, False, False
    kept, rest = m >> shift, m & ((1 << shift) - 1)
    if not rest:
        return kept, False, False
    half = 1 << (shift - 1)
    match rc:
        case 0:
            up = rest > half or (rest == half and kept & 1 == 1)
        case 1:
            up = bool(sign)
        case 2:
            up = not sign
        case _:
            up = False
    return kept + up, True, up


def round_value(sign: int, m: int, e: int, prec: int, rc: int, emin: int) -> tuple[int, int, int, bool]:
    """Round m * 2**e (m > 0) to ``prec`` bits, denormalised below 2**emin:
    (kept, q, flags, tiny) with the result kept * 2**q; flags PE and C1 only."""
    top = e + m.bit_length() - 1
    q = max(top, emin) - (prec - 1)
    kept, inexact, up = _round_bits(sign, m, q - e, rc)
    if kept >> prec:
        kept >>= 1
        q += 1
    if TINY_BEFORE_ROUNDING:
        tiny = top < emin
    else:
        unbounded, _, _ = _round_bits(sign, m, top - (prec - 1) - e, rc)
        tiny = top + (unbounded.bit_length() - prec) < emin
    return kept, q, (PE if inexact else 0) | (C1 if up else 0), tiny


def round_pack(sign: int, m: int, e: int, prec: int = 64, rc: int = NEAREST, unmasked: int = 0) -> tuple[int, int]:
    """The extended value nearest (per ``rc``) to (-1)**sign * m * 2**e with a ``prec``-bit
    significand, with its flags.  Overflow and underflow take their masked responses unless
    ``unmasked`` (FSW bits OE, UE whose FCW masks are clear) names them: then the result is
    the bias-adjusted one (SDM Vol. 1, 4.9.1.4-5) and an exact tiny result signals UE too."""
    if m == 0:
        return pack(sign, 0, 0), 0
    kept, q, flags, tiny = round_value(sign, m, e, prec, rc, EMIN)
    top = q + kept.bit_length() - 1
    if top > EMAX:
        if unmasked & OE:
            return _bias_adjusted(sign, m, e, prec, rc, -BIAS_ADJUST)
        return overflow(sign, prec, rc), OE | PE | (C1 if _overflows_to_infinity(sign, rc) else 0)
    if tiny and unmasked & UE:
        return _bias_adjusted(sign, m, e, prec, rc, BIAS_ADJUST)
    if tiny and flags & PE:
        flags |= UE
    if top < EMIN:
        return pack(sign, 0, kept << (q - (EMIN - 63))), flags
    return pack(sign, top + BIAS, kept << (63 - (kept.bit_length() - 1))), flags


def _bias_adjusted(sign: int, m: int, e: int, prec: int, rc: int, adjust: int) -> tuple[int, int]:
    """The significand rounded with an unbounded exponent, the exponent moved by ``adjust``."""
    kept, q, flags, _ = round_value(sign, m, e, prec, rc, -(1 << 40))
    top = q + kept.bit_length() - 1 + adjust
    if top > EMAX:                                  # still out of range (FSCALE): the masked response
        return overflow(sign, prec, rc), OE | PE | (C1 if _overflows_to_infinity(sign, rc) else 0)
    if top < EMIN:
        r, f = round_pack(sign, m, e, prec, rc)
        return r, f | UE
    return pack(sign, top + BIAS, kept << (63 - (kept.bit_length() - 1))), flags | (OE if adjust < 0 else UE)


def _overflows_to_infinity(sign: int, rc: int) -> bool:
    return rc == NEAREST or (rc == UP and not sign) or (rc == DOWN and sign == 1)


def overflow(sign: int, prec: int, rc: int) -> int:
    """Masked overflow: infinity or the largest finite number of ``prec`` bits (SDM Vol. 1, table 4-10)."""
    if _overflows_to_infinity(sign, rc):
        return INFINITY | sign << 79
    return pack(sign, EMAX + BIAS, SIG_MASK ^ ((1 << (64 - prec)) - 1))


# -- operands ----------------------------------------------------------------------------------
def _nan_result(a: int, b: int | None = None) -> int:
    """Table 4-7 for x87: an SNaN is quieted; an SNaN and a QNaN give the QNaN; of two NaNs of
    one kind the larger significand wins."""
    if b is None or not is_nan(classify(b)):
        return quiet(a)
    ca, cb = classify(a), classify(b)
    if not is_nan(ca):
        return quiet(b)
    if ca != cb:
        return a if ca is Class.QNAN else b
    ma, mb = a & SIG_MASK, b & SIG_MASK
    if ma == mb:
        return quiet(a) if not a & SIGN else quiet(b)
    return quiet(a) if ma > mb else quiet(b)


def check_operands(*xs: int) -> tuple[int | None, int]:
    """Invalid and NaN operands of an arithmetic operation: (result if decided, flags).

    Unsupported encodings and SNaNs signal IE; NaNs propagate; denormals signal DE."""
    classes = [classify(x) for x in xs]
    if Class.UNSUPPORTED in classes:
        return INDEFINITE, IE
    if any(is_nan(c) for c in classes):
        flags = IE if Class.SNAN in classes else 0
        return _nan_result(*xs), flags
    return None, DE if Class.DENORMAL in classes else 0


def _invalid(flags: int) -> tuple[int, int]:
    """An invalid operation: IE alone (a denormal operand is not reported with it)."""
    return INDEFINITE, IE


# -- arithmetic ----------------------------------------------------------------------------------
def add(a: int, b: int, prec: int = 64, rc: int = NEAREST, unmasked: int = 0) -> tuple[int, int]:
    """FADD: a + b (subtract by flipping b's sign)."""
    done, flags = check_operands(a, b)
    if done is not None:
        return done, flags
    ca, cb = classify(a), classify(b)
    sa, sb = a >> 79, b >> 79
    if ca is Class.INFINITY or cb is Class.INFINITY:
        if ca is Class.INFINITY and cb is Class.INFINITY and sa != sb:
            return _invalid(flags)
        return (a if ca is Class.INFINITY else b), flags
    sa, ma, ea = exact(a)
    sb, mb, eb = exact(b)
    e = min(ea, eb)
    total = (-1) ** sa * (ma << (ea - e)) + (-1) ** sb * (mb << (eb - e))
    if total == 0:
        sign = sa if sa == sb and ma == mb == 0 else int(rc == DOWN)
        return pack(sign, 0, 0), flags
    r, f = round_pack(int(total < 0), abs(total), e, prec, rc, unmasked)
    return r, flags | f


def sub(a: int, b: int, prec: int = 64, rc: int = NEAREST, unmasked: int = 0) -> tuple[int, int]:
    """FSUB: a - b."""
    if classify(b) in (Class.QNAN, Class.SNAN, Class.UNSUPPORTED):
        return add(a, b, prec, rc, unmasked)
    return add(a, b ^ SIGN, prec, rc, unmasked)


def mul(a: int, b: int, prec: int = 64, rc: int = NEAREST, unmasked: int = 0) -> tuple[int, int]:
    """FMUL: a * b; zero times infinity is invalid."""
    done, flags = check_operands(a, b)
    if done is not None:
        return done, flags
    ca, cb = classify(a), classify(b)
    sign = (a ^ b) >> 79 & 1
    if Class.INFINITY in (ca, cb):
        if Class.ZERO in (ca, cb):
            return _invalid(flags)
        return INFINITY | sign << 79, flags
    _, ma, ea = exact(a)
    _, mb, eb = exact(b)
    r, f = round_pack(sign, ma * mb, ea + eb, prec, rc, unmasked)
    return r, flags | f


def div(a: int, b: int, prec: int = 64, rc: int = NEAREST, unmasked: int = 0) -> tuple[int, int]:
    """FDIV: a / b; 0/0 and inf/inf are invalid, x/0 signals ZE."""
    done, flags = check_operands(a, b)
    if done is not None:
        return done, flags
    ca, cb = classify(a), classify(b)
    sign = (a ^ b) >> 79 & 1
    if ca is Class.INFINITY:
        return (_invalid(flags) if cb is Class.INFINITY else (INFINITY | sign << 79, flags))
    if cb is Class.INFINITY:
        return pack(sign, 0, 0), flags
    if cb is Class.ZERO:
        return (_invalid(flags) if ca is Class.ZERO else (INFINITY | sign << 79, ZE))
    _, ma, ea = exact(a)
    _, mb, eb = exact(b)
    if ma == 0:
        return pack(sign, 0, 0), flags
    shift = max(0, mb.bit_length() - ma.bit_length() + prec + 2)
    q, rest = divmod(ma << shift, mb)
    r, f = round_pack(sign, q << 1 | (rest != 0), ea - eb - shift - 1, prec, rc, unmasked)
    return r, flags | f


def sqrt(a: int, prec: int = 64, rc: int = NEAREST, unmasked: int = 0) -> tuple[int, int]:
    """FSQRT: the square root of -0 is -0; of any other negative number, invalid."""
    done, flags = check_operands(a)
    if done is not None:
        return done, flags
    c = classify(a)
    if c is Class.ZERO:
        return a, flags
    if a & SIGN:
        return _invalid(flags)
    if c is Class.INFINITY:
        return a, flags
    _, m, e = exact(a)
    shift = max(0, 2 * (prec + 2) - m.bit_length())
    shift += (e - shift) & 1                       # an even exponent halves exactly
    root = math.isqrt(m << shift)
    sticky = root * root != m << shift
    r, f = round_pack(0, root << 1 | sticky, (e - shift) // 2 - 1, prec, rc, unmasked)
    return r, flags | f


def round_integral(a: int, rc: int = NEAREST) -> tuple[int, int]:
    """FRNDINT: a rounded to an integer by ``rc``."""
    done, flags = check_operands(a)
    if done is not None:
        return done, flags
    c = classify(a)
    if c in (Class.ZERO, Class.INFINITY):
        return a, flags
    s, m, e = exact(a)
    kept, inexact, up = _round_bits(s, m, -e, rc)
    if kept == 0:
        return pack(s, 0, 0), flags | (PE if inexact else 0)
    r, _ = round_pack(s, kept, 0)
    return r, flags | (PE if inexact else 0) | (C1 if up else 0)


# -- comparison ----------------------------------------------------------------------------------
LESS, EQUAL, GREATER, UNORDERED = "<", "=", ">", "?"


def compare(a: int, b: int, signaling: bool) -> tuple[str, int]:
    """FCOM (``signaling``: any NaN signals IE) and FUCOM (only SNaNs do)."""
    ca, cb = classify(a), classify(b)
    if Class.UNSUPPORTED in (ca, cb):
        return UNORDERED, IE
    if is_nan(ca) or is_nan(cb):
        return UNORDERED, IE if signaling or Class.SNAN in (ca, cb) else 0
    flags = DE if Class.DENORMAL in (ca, cb) else 0
    x, y = value(a), value(b)
    return (LESS if x < y else GREATER if x > y else EQUAL), flags


def value(a: int) -> int | float:
    """A non-NaN value for ordering: exact as a scaled integer, or +-inf."""
    if classify(a) is Class.INFINITY:
        return float("-inf") if a & SIGN else float("inf")
    s, m, e = exact(a)
    scaled = m << (e + 16500)                       # every finite extended value is an integer here
    return -scaled if s else scaled


# -- conversions ---------------------------------------------------------------------------------
FLOAT_FORMATS = {32: (8, 23), 64: (11, 52)}
"""IEEE binary32/binary64: (exponent bits, fraction bits)."""


def from_float(bits: int, width: int) -> tuple[int, int]:
    """FLD m32fp/m64fp: exact; a denormal source signals DE, an SNaN IE (and is quieted)."""
    ebits, fbits = FLOAT_FORMATS[width]
    bias = (1 << (ebits - 1)) - 1
    sign, e, f = bits >> (width - 1) & 1, bits >> fbits & ((1 << ebits) - 1), bits & ((1 << fbits) - 1)
    if e == (1 << ebits) - 1:
        if f == 0:
            return INFINITY | sign << 79, 0
        nan = pack(sign, EXP_MASK, INT_BIT | f << (63 - fbits))
        return quiet(nan), 0 if f >> (fbits - 1) else IE
    if e == 0:
        if f == 0:
            return pack(sign, 0, 0), 0
        r, _ = round_pack(sign, f, 1 - bias - fbits)
        return r, DE
    return pack(sign, e - bias + BIAS, (f | 1 << fbits) << (63 - fbits)), 0


def to_float(a: int, width: int, rc: int = NEAREST) -> tuple[int, int]:
    """FST m32fp/m64fp: rounded to the format's precision and range, masked responses."""
    ebits, fbits = FLOAT_FORMATS[width]
    bias = (1 << (ebits - 1)) - 1
    emax_biased = (1 << ebits) - 1
    c = classify(a)
    sign = a >> 79 & 1
    top_bit = sign << (width - 1)
    if c is Class.UNSUPPORTED:
        return to_float(INDEFINITE, width)[0], IE
    if is_nan(c):
        frac = (quiet(a) & (SIG_MASK >> 1)) >> (63 - fbits)
        return top_bit | emax_biased << fbits | frac, IE if c is Class.SNAN else 0
    if c is Class.INFINITY:
        return top_bit | emax_biased << fbits, 0
    if c is Class.ZERO:
        return top_bit, 0
    flags = 0                                       # a denormal source signals no DE here
    _, m, e = exact(a)
    emin = 1 - bias
    kept, q, f, tiny = round_value(sign, m, e, fbits + 1, rc, emin)
    top = q + kept.bit_length() - 1
    if top > bias:
        inf = _overflows_to_infinity(sign, rc)
        biggest = (emax_biased - 1) << fbits | ((1 << fbits) - 1)
        return top_bit | (emax_biased << fbits if inf else biggest), flags | OE | PE | (C1 if inf else 0)
    if tiny and f & PE:
        f |= UE
    if top < emin:
        return top_bit | kept << (q - (emin - fbits)), flags | f
    return top_bit | (top + bias) << fbits | (kept & ((1 << fbits) - 1)), flags | f


def from_int(n: int) -> int:
    """FILD: a signed integer, always exact."""
    return round_pack(int(n < 0), abs(n), 0)[0]


def to_int(a: int, width: int, rc: int = NEAREST) -> tuple[int, int]:
    """FIST/FISTP (FISTTP passes ZERO): a signed integer of ``width`` bits, or the integer
    indefinite (the most negative one) with IE when a is a NaN, infinite or out of range."""
    indefinite = 1 << (width - 1)
    c = classify(a)
    if c in (Class.UNSUPPORTED, Class.QNAN, Class.SNAN, Class.INFINITY):
        return indefinite, IE
    if c is Class.ZERO:
        return 0, 0
    s, m, e = exact(a)
    kept, inexact, up = _round_bits(s, m, -e, rc)
    n = -kept if s else kept
    if not -(1 << (width - 1)) <= n < 1 << (width - 1):
        return indefinite, IE
    flags = (PE if inexact else 0) | (C1 if up else 0)       # a denormal source signals no DE here
    return n & ((1 << width) - 1), flags


BCD_INDEFINITE = 0xFFFF_C000_0000_0000_0000


def from_bcd(bcd: int) -> int:
    """FBLD: 18 packed decimal digits and a sign byte, exact."""
    n = 0
    for i in range(17, -1, -1):
        n = n * 10 + (bcd >> (4 * i) & 0xF)
    r = from_int(n)
    return r | SIGN if bcd >> 79 & 1 else r


def to_bcd(a: int, rc: int = NEAREST) -> tuple[int, int]:
    """FBSTP: rounded to an integer by ``rc``; beyond 18 digits (or NaN, infinity) IE and the BCD indefinite."""
    c = classify(a)
    if c in (Class.UNSUPPORTED, Class.QNAN, Class.SNAN, Class.INFINITY):
        return BCD_INDEFINITE, IE
    s = a >> 79 & 1
    if c is Class.ZERO:
        return s << 79, 0
    _, m, e = exact(a)
    kept, inexact, up = _round_bits(s, m, -e, rc)
    if kept >= 10 ** 18:
        return BCD_INDEFINITE, IE
    digits = 0
    for i, d in enumerate(reversed(str(kept))):
        digits |= int(d) << (4 * i)
    flags = (PE if inexact else 0) | (C1 if up else 0)       # a denormal source signals no DE here
    return s << 79 | digits, flags


# -- scaling, exponent extraction, partial remainder -------------------------------------------------
def _exponent(m: int, e: int) -> int:
    """The unbiased exponent of m * 2**e as a normal number: floor(log2)."""
    return e + m.bit_length() - 1


def scale(a: int, b: int, rc: int = NEAREST, unmasked: int = 0) -> tuple[int, int]:
    """FSCALE: a * 2**trunc(b) (SDM Vol. 2A, FSCALE table 3-38)."""
    done, flags = check_operands(a, b)
    if done is not None:
        return done, flags
    ca, cb = classify(a), classify(b)
    if cb is Class.INFINITY:
        if (b & SIGN and ca is Class.INFINITY) or (not b & SIGN and ca is Class.ZERO):
            return _invalid(flags)
        if ca in (Class.ZERO, Class.INFINITY):
            return a, flags
        return (pack(a >> 79, 0, 0) if b & SIGN else INFINITY | (a & SIGN)), flags
    if ca in (Class.ZERO, Class.INFINITY):
        return a, flags
    sb, mb, eb = exact(b)
    n = mb >> -eb if eb < 0 else mb << eb
    n = min(n, 1 << 30)
    s, m, e = exact(a)
    r, f = round_pack(s, m, e + (-n if sb else n), 64, rc, unmasked)
    return r, flags | f


def extract(a: int) -> tuple[int, int, int]:
    """FXTRACT: (exponent, significand, flags); a zero gives -inf and ZE."""
    done, flags = check_operands(a)
    if done is not None:
        return done, done, flags
    c = classify(a)
    if c is Class.ZERO:
        return INFINITY | SIGN, a, ZE
    if c is Class.INFINITY:
        return INFINITY, a, flags
    s, m, e = exact(a)
    top = _exponent(m, e)
    significand, _ = round_pack(s, m, e - top)
    return from_int(top), significand, flags


def remainder(a: int, b: int, nearest: bool) -> tuple[int, int, int]:
    """FPREM (quotient truncated) and FPREM1 (``nearest``: rounded to even):
    (partial remainder, flags, condition bits C0 C3 C1 C2 as FSW bits)."""
    done, flags = check_operands(a, b)
    if done is not None:
        return done, flags, 0
    ca, cb = classify(a), classify(b)
    if ca is Class.INFINITY or cb is Class.ZERO:
        return _invalid(flags) + (0,)
    if ca is Class.ZERO:
        return a, flags, 0
    if cb is Class.INFINITY:                          # a itself; a pseudo-denormal comes back normalised
        return round_pack(*exact(a))[0], flags, 0
    sa, ma, ea = exact(a)
    _, mb, eb = exact(b)
    d = _exponent(ma, ea) - _exponent(mb, eb)
    if d >= 64:                                       # a partial remainder: reduce by 2**(d - n)
        k = d - (PARTIAL_BITS + (d - 64) % PARTIAL_BITS)
        e = min(ea, eb + k)
        x, y = ma << (ea - e), mb << (eb + k - e)      # a and b * 2**k as integers times 2**e
        rest = x - (x // y) * y
        r, f = round_pack(sa, rest, e)
        return (r if rest else pack(sa, 0, 0)), flags | f, 0x400
    e = min(ea, eb)
    x, y = ma << (ea - e), mb << (eb - e)
    q, rest = divmod(x, y)
    if nearest and (2 * rest > y or (2 * rest == y and q & 1)):
        q += 1
        rest -= y
    sign = sa ^ (rest < 0)
    r, f = round_pack(sign, abs(rest), e)
    if rest == 0:
        r = pack(sa, 0, 0)
    codes = (0x100 if q & 4 else 0) | (0x4000 if q & 2 else 0) | (0x200 if q & 1 else 0)
    return r, flags | (f & ~C1), codes


PARTIAL_BITS = 32
"""FPREM's reduction when the exponents differ by d >= 64 (SDM Vol. 2A, FPREM: by 2**(d - N), N 'an
implementation-dependent number between 32 and 63'): measured on the host, N = 32 + (d - 64) mod 32,
so the exponent difference left is a multiple of 32."""
