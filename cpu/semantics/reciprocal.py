"""The approximate reciprocals RCPPS, RCPSS, RSQRTPS and RSQRTSS, and their VEX forms.

Intel SDM Vol. 2B, the RCPPS, RCPSS, RSQRTPS and RSQRTSS pages.  The SDM fixes only a bound:
|relative error| <= 1.5 * 2**-12 of the true 1/x (1/sqrt(x)); which approximation a processor
returns is its own (its tables differ between generations).  This CPU returns the true value
rounded to the nearest single-precision number (through a double, so within 2**-23 relative),
which meets the bound and is the same on every run and host.  The special cases are the SDM's:

- RCP: +-0 and a denormal source (read as zero) give +-inf; +-inf gives +-0; a result below the
  smallest normal is flushed to 0 with the source's sign (the SDM leaves sources between
  1.11111111110100000000000B * 2**125 and 1.00000000000110000000001B * 2**126 to the implementation:
  here exactly those whose rounded reciprocal is not normal are flushed);
- RSQRT: +-0 and denormals give +-inf; +inf gives +0; any other negative source gives the QNaN
  indefinite;
- a NaN comes back quiet (an SNaN with its quiet bit set).

No SIMD floating-point exception is raised, MXCSR is neither read nor written (DAZ and FTZ do not
matter: denormals are zeros and tiny results flushed either way).  The scalar forms keep the upper
lanes of the destination (VEX: of the first source); the VEX forms come from ``cpu.semantics.avx``'s
lane-form mechanism, VRCPPS/VRSQRTPS with a 256-bit form.
"""

from __future__ import annotations

import math

from cpu.semantics import avx, helper
from cpu.semantics import xmm as X
from cpu.semantics.sse_float import F32, encode, is_nan, value
from cpu.semantics.xmm import join, lanes

SIGN, INF, QUIET, INDEFINITE, MIN_NORMAL = F32.sign, F32.inf, F32.quiet, F32.indefinite, F32.min_normal


def rcp(v: int) -> int:
    """One lane of RCPPS: the single-precision bits of about 1/v."""
    sign, magnitude = v & SIGN, v & ~SIGN
    if is_nan(v, F32):
        return v | QUIET
    if magnitude == INF:
        return sign
    if magnitude < MIN_NORMAL:
        return sign | INF
    r = encode(1.0 / value(v, F32), F32)
    return r if r & ~SIGN >= MIN_NORMAL else sign


def rsqrt(v: int) -> int:
    """One lane of RSQRTPS: the single-precision bits of about 1/sqrt(v)."""
    sign, magnitude = v & SIGN, v & ~SIGN
    if is_nan(v, F32):
        return v | QUIET
    if magnitude < MIN_NORMAL:
        return sign | INF
    if sign:
        return INDEFINITE
    if magnitude == INF:
        return 0
    return encode(1.0 / math.sqrt(value(v, F32)), F32)


@helper
def rcpps(b: int) -> int:
    """RCPPS: each of b's four lanes replaced by its approximate reciprocal."""
    return join([rcp(v) for v in lanes(b, 32)], 32)


@helper
def rsqrtps(b: int) -> int:
    """RSQRTPS: each of b's four lanes replaced by its approximate reciprocal square root."""
    return join([rsqrt(v) for v in lanes(b, 32)], 32)


@helper
def rcpss(a: int, b: int) -> int:
    """RCPSS: a with its low lane replaced by the approximate reciprocal of b's low lane."""
    return (a & ~F32.mask) | rcp(b & F32.mask)


@helper
def rsqrtss(a: int, b: int) -> int:
    """RSQRTSS: a with its low lane replaced by the approximate reciprocal square root of b's low lane."""
    return (a & ~F32.mask) | rsqrt(b & F32.mask)


@X.lane_form("rcpps", "rsqrtps", kind=X.UNARY)
def packed(ops, name, insn, a, b):
    """RCPPS xmm1, xmm2/m128 (RSQRTPS): every lane of the source."""
    return ops.helper(name, b)


@X.lane_form("rcpss", "rsqrtss")
def scalar(ops, name, insn, a, b):
    """RCPSS xmm1, xmm2/m32 (RSQRTSS): the low lane of the source, the upper lanes of xmm1."""
    return ops.helper(name, a, b)


avx.register("rcpps", "rsqrtps", "rcpss", "rsqrtss")
