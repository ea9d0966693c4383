"""F16C: half-precision conversions, VCVTPH2PS and VCVTPS2PH.

Intel SDM Vol. 1, 14.4.1 (half-precision floating-point conversion) and the
VCVTPH2PS and VCVTPS2PH pages of Vol. 2C; IEEE 754 binary16.

* VCVTPH2PS widens four (eight) binary16 lanes to binary32: exact; a NaN
  keeps its sign and payload and comes back quiet (IE for an SNaN); binary16
  denormals are converted, never flushed (DAZ does not apply to them, and
  they raise no DE).
* VCVTPS2PH narrows four (eight) binary32 lanes to binary16, rounded by
  imm8[1:0], or by MXCSR.RC when imm8[2] is set, through the SSE rounding
  machinery of ``sse_float`` (OE, UE, PE exact); MXCSR.FTZ does not apply to
  its results, DAZ applies to its sources.

Which of these rules a real processor follows (DAZ, DE, FTZ) is held to the
host CPU by ``tests/semantics/test_fma.py``.  Unmasked exceptions fault (#XM) through
``xmm.raise_flags`` before the destination, register or memory, is written.
"""

from __future__ import annotations

from cpu.semantics import helper, semantics, vex
from cpu.semantics import sse_float as F
from cpu.semantics import xmm as X

F16 = F.fmt(16, 10, "<e")
FTZ, RC = int(X.Mxcsr.FTZ), int(X.Mxcsr.RC)


def widen_half(v: int) -> tuple[int, int]:
    """One binary16 lane as binary32: exact."""
    if F.is_nan(v, F16):
        nan = ((v & F16.sign) << 16) | F.F32.inf | F.F32.quiet | ((v & (F16.min_normal - 1)) << 13)
        return nan, F.IE if F.is_snan(v, F16) else 0
    return F.encode(F.value(v, F16), F.F32), 0


def narrow_single(v: int, mxcsr: int) -> tuple[int, int]:
    """One binary32 lane as binary16, rounded per ``mxcsr``'s RC."""
    v = F.daz(v, F.F32, mxcsr)
    if F.is_nan(v, F.F32):
        nan = ((v >> 16) & F16.sign) | F16.inf | F16.quiet | ((v >> 13) & (F16.quiet - 1))
        return nan, F.IE if F.is_snan(v, F.F32) else 0
    flags = F.DE if F.is_denormal(v, F.F32) else 0
    x = F.value(v, F.F32)
    if v & ~F.F32.sign == F.F32.inf:
        return F.encode(x, F16), flags
    xn, xd = x.as_integer_ratio()

    def error(n: int, d: int) -> int:
        return F.signum(xn * d - n * xd)
    return F.round_result(x, error, F16, mxcsr & ~FTZ, flags)


@helper
def vcvtph2ps(b: int) -> int:
    """The four binary16 lanes of b's low 64 bits as binary32 lanes; MXCSR flags above bit 128."""
    out = flags = 0
    for i in range(4):
        r, raised = widen_half((b >> (16 * i)) & 0xFFFF)
        out |= r << (32 * i)
        flags |= raised
    return out | (flags << 128)


@helper
def vcvtps2ph(b: int, mxcsr: int) -> int:
    """The four binary32 lanes of b as binary16 lanes in the low 64 bits; MXCSR flags above bit 128."""
    out = flags = 0
    for i in range(4):
        r, raised = narrow_single((b >> (32 * i)) & F.F32.mask, mxcsr)
        out |= r << (16 * i)
        flags |= raised
    return out | (flags << 128)


@semantics("vcvtph2ps", "vcvtps2ph", feature="f16c")
def convert_half(ops, insn, dst, src, *imm):
    """VCVTPH2PS ymm1, xmm2/m128; VCVTPS2PH xmm1/m128, ymm2, imm8 (imm8[2]: MXCSR.RC, else imm8[1:0])."""
    vex.check(ops)
    value = vex.read(ops, insn, src)
    if insn.mnemonic == "vcvtph2ps":
        packed = [ops.helper("vcvtph2ps", ops.shr(value, 64 * i)) for i in range(dst.size // 128)]
        parts = [ops.trunc(p, 128) for p in packed]
    else:
        mxcsr = ops.reg("mxcsr")
        control = imm[0].imm
        if not control & 4:
            mxcsr = ops.or_(ops.and_(mxcsr, ~RC & 0xFFFF_FFFF), (control & 3) << X.RC_SHIFT)
        packed = [ops.helper("vcvtps2ph", ops.trunc(ops.shr(value, 128 * i), 128), mxcsr)
                  for i in range(src.size // 128)]
        low = ops.trunc(packed[0], 64)
        parts = [low if len(packed) == 1 else ops.or_(low, ops.shl(ops.trunc(packed[1], 64), 64, 128))]
    flags = 0
    for p in packed:
        flags = ops.or_(flags, ops.shr(p, 128))
    X.raise_flags(ops, flags)
    vex.write_halves(ops, insn, dst, parts)
