"""The VEX forms of the SSE/SSE2 instructions (AVX, and AVX2 for 256-bit integer forms).

Intel SDM Vol. 1, 14.1-14.5 (AVX: VEX.128 and VEX.256 forms of the SSE
instructions, non-destructive three-operand syntax) and 14.7 (AVX2: the
256-bit integer forms), and each instruction's page in Vol. 2.

One mechanism serves them all: ``vX dst, src1, src2[, imm8]`` applies X's
lane form (``cpu.semantics.xmm.LANE_FORMS``, the same computation the legacy
instruction uses) to ``(src1, src2)``; a 256-bit form applies it to each
128-bit half, as the SDM defines these instructions ("in-lane").  The
destination's bits above the vector length are zeroed.  Floating-point forms
go through the same MXCSR-exact helpers as their legacy forms, the flags of
both halves accumulated.  :data:`VEX_FORMS` is the table of these
mnemonics: another family's lane forms (SSE3, SSSE3, SSE4) get their VEX
forms by being named in it, here or in their own module with
:func:`register`.

The SSE3, SSSE3 and SSE4.1 instructions whose computation is simply the
helper named after them get their lane forms here, by table
(:data:`LATER_FAMILIES`), their legacy semantics staying in their modules.

Also here: the VEX moves and the forms whose shape differs from their
legacy one (scalar moves that merge src1, widening and narrowing packed
conversions, VCOMISS, VPEXTRW/VPINSRW, VPMOVMSKB, VLDMXCSR).

Not modelled: the 256-bit integer forms are not refused on a CPU with AVX
but not AVX2 (no ``--cpu`` level has one without the other).
"""

from __future__ import annotations

from dataclasses import replace

from cpu.decoder import Kind
from cpu.semantics import semantics, sse3, sse4, ssse3, vex
from cpu.semantics import sse as S
from cpu.semantics import sse_float as F
from cpu.semantics import xmm as X
from cpu.semantics.sse import LANE_OPS, LOGIC, SHIFTS, UNPACKS

MASK64 = (1 << 64) - 1
MASK128 = (1 << 128) - 1

INTEGER = (*LANE_OPS, "pcmpeqb", "pcmpeqw", "pcmpeqd", "pmaddwd", "psadbw", "pand", "pandn", "por", "pxor",
           *SHIFTS, "pslldq", "psrldq", "pshufd", "pshuflw", "pshufhw",
           *(m for m in UNPACKS if m.startswith("punpck")), "packsswb", "packuswb", "packssdw")
FLOAT = (*(m for m in LOGIC if not m.startswith("p")), "shufps", "shufpd",
         *(m for m in UNPACKS if m.startswith("unpck")), *F.ARITH, "cmpss", "cmpps", "cmppd", "cmpsd",
         "cvtdq2ps", "cvtps2dq", "cvttps2dq", "cvtsi2sd", "cvtsi2ss", "cvtsd2ss", "cvtss2sd")

VEX_FORMS: dict[str, str] = {}
"""VEX mnemonic -> the legacy mnemonic whose lane form it applies to each 128-bit half."""


def register(*legacy: str, feature: str = "avx") -> None:
    """Give each legacy lane form its VEX form ``"v" + mnemonic`` (``feature``: the CPUID feature it needs)."""
    for name in legacy:
        VEX_FORMS["v" + name] = name
    semantics(*("v" + name for name in legacy), feature=feature)(lanes)


def lanes(ops, insn, dst, *sources):
    """vX dst, src1, src2[, imm8]: X's computation on each 128-bit half of the sources.

    Two-operand forms (VPSHUFD ymm1, ymm2/m256, imm8; VSQRTPS ymm1, ymm2/m256) have one source, which is
    both ``a`` and ``b`` of a binary form.  A shift's count (an imm8 or xmm3/m128) is the same for both halves.
    """
    vex.check(ops)
    name = VEX_FORMS[insn.mnemonic]
    form = X.LANE_FORMS[name]
    vectors = [s for s in sources if s.kind is not Kind.IMM or form.kind == X.SHIFT]
    if form.kind == X.SHIFT:
        a, count = vex.halves(ops, insn, vectors[0]), vectors[1]
        b = [count.imm if count.kind is Kind.IMM else ops.trunc(vex.read(ops, insn, count), 64)] * len(a)
    else:
        b = vex.halves(ops, insn, vectors[-1])
        a = vex.halves(ops, insn, vectors[0]) if form.kind == X.BINARY else [0] * len(b)
    count = dst.size // 128 if dst.kind is Kind.REG else len(b)
    results, flags = [], 0
    for i in range(count):
        r = form.compute(ops, name, _half_insn(insn, name, i), a[i] if i < len(a) else 0, b[i] if i < len(b) else 0)
        if form.flags:
            flags = ops.or_(flags, ops.shr(r, 128))
            r = ops.trunc(r, 128)
        results.append(r)
    if form.flags:
        X.raise_flags(ops, flags)
    vex.write_halves(ops, insn, dst, results)


IMM_BITS_PER_HALF = {"shufpd": 2}
"""Forms whose upper half takes the next bits of the imm8 (VSHUFPD ymm: bits 3:2 select its upper lanes)."""


def _half_insn(insn, name: str, half: int):
    """``insn`` as the computation of ``half`` sees it: its imm8 shifted for the forms above."""
    shift = IMM_BITS_PER_HALF.get(name, 0) * half
    if not shift:
        return insn
    imm = insn.operands[-1]
    return replace(insn, operands=(*insn.operands[:-1], replace(imm, imm=imm.imm >> shift)))


register(*INTEGER)
register(*FLOAT)


# -- the SSE3, SSSE3 and SSE4.1 lane arithmetic: lane forms by helper name -------------------------
def _helper(ops, name, insn, a, b):
    """The helper named after the instruction, of both sources (PSHUFB, PMULLD, PHADDW)."""
    return ops.helper(name, a, b)


def _helper_of_source(ops, name, insn, a, b):
    """The helper named after the instruction, of its one source (PABSB, MOVSHDUP)."""
    return ops.helper(name, b)


def _helper_with_imm(ops, name, insn, a, b):
    """The helper named after the instruction, of both sources and the imm8 (PALIGNR, the same for each half)."""
    return ops.helper(name, a, b, insn.operands[-1].imm)


def _float_helper(ops, name, insn, a, b):
    """The float helper named after the instruction, under MXCSR (HADDPS, ADDSUBPD)."""
    return ops.helper(name, a, b, ops.reg("mxcsr"))


LATER_FAMILIES = (
    (_helper, X.BINARY, False, ("pshufb", "pmaddubsw", "pmulhrsw", "psignb", "psignw", "psignd", *ssse3.HORIZONTAL,
                                *sse4.LANE_OPS, "packusdw")),
    (_helper_of_source, X.UNARY, False, ("pabsb", "pabsw", "pabsd", "movddup", "movshdup", "movsldup")),
    (_helper_with_imm, X.BINARY, False, ("palignr",)),
    (_float_helper, X.BINARY, True, tuple(sse3.ARITH)),
)
"""Their legacy semantics are their own modules'; these are the lane forms their VEX forms apply per half."""
for _compute, _kind, _flags, _names in LATER_FAMILIES:
    X.lane_form(kind=_kind, flags=_flags, shared=_names)(_compute)
    register(*_names)


# -- conversions that change the vector length ---------------------------------------------------
_WIDENING = ("vcvtdq2pd", "vcvtps2pd")
_NARROWING = ("vcvtpd2dq", "vcvttpd2dq", "vcvtpd2ps")


@semantics(*_WIDENING, *_NARROWING, feature="avx")
def convert_length(ops, insn, dst, src):
    """VCVTPS2PD ymm1, xmm2/m128 (two lanes of 64 bits per 64 bits of source), VCVTPD2PS xmm1, ymm2/m256."""
    vex.check(ops)
    name, mxcsr = insn.mnemonic[1:], ops.reg("mxcsr")        # the legacy helper: cvtps2pd, ...
    value = vex.read(ops, insn, src)
    if insn.mnemonic in _WIDENING:
        packed = [ops.helper(name, ops.shr(value, 64 * i), mxcsr) for i in range(dst.size // 128)]
        parts = [ops.trunc(p, 128) for p in packed]
    else:
        packed = [ops.helper(name, ops.trunc(ops.shr(value, 128 * i), 128), mxcsr)
                  for i in range(max(1, src.size // 128))]
        parts = [join64(ops, [ops.trunc(p, 64) for p in packed])]
    flags = 0
    for p in packed:
        flags = ops.or_(flags, ops.shr(p, 128))
    X.raise_flags(ops, flags)
    vex.write_halves(ops, insn, dst, parts)


def join64(ops, parts: list):
    value = parts[0]
    for i, part in enumerate(parts[1:], 1):
        value = ops.or_(value, ops.shl(part, 64 * i, 128))
    return value


# -- moves -------------------------------------------------------------------------------------
@semantics("vmovdqa", "vmovdqu", "vmovaps", "vmovups", "vmovapd", "vmovupd", "vmovntdq", "vmovntps", "vmovntpd",
           feature="avx")
def move(ops, insn, dst, src):
    """Whole-register moves; VMOVDQA/VMOVAPx/VMOVNTx #GP(0) on a memory operand not aligned to its size."""
    vex.check(ops)
    vex.write_halves(ops, insn, dst, vex.halves(ops, insn, src))


@semantics("vmovd", "vmovq", feature="avx")
def movd_movq(ops, insn, dst, src):
    """The low 32/64 bits between XMM, GPR and memory; an XMM destination is zero-extended to 256 bits."""
    vex.check(ops)
    size = 32 if insn.mnemonic == "vmovd" else 64
    vex.write_halves(ops, insn, dst, [ops.trunc(vex.read(ops, insn, src), size)])


@semantics("vmovss", "vmovsd", feature="avx")
def move_scalar(ops, insn, dst, *sources):
    """VMOVSS xmm1, xmm2, xmm3 merges xmm3's low lane into xmm2; a load zeroes the rest; a store writes the lane."""
    vex.check(ops)
    size = 32 if insn.mnemonic == "vmovss" else 64
    if len(sources) == 2:
        upper, low = (vex.read(ops, insn, s) for s in sources)
        value = ops.or_(ops.and_(upper, MASK128 ^ ((1 << size) - 1)), ops.trunc(low, size))
    else:
        value = ops.trunc(vex.read(ops, insn, sources[0]), size)
    vex.write_halves(ops, insn, dst, [value])


@semantics("vmovhps", "vmovhpd", "vmovlps", "vmovlpd", feature="avx")
def move_half(ops, insn, dst, *sources):
    """VMOVHPS xmm1, xmm2, m64: m64 above xmm2's low half; VMOVLPS: below its high half; the stores as SSE's."""
    vex.check(ops)
    high = insn.mnemonic.startswith("vmovh")
    if dst.kind is Kind.MEM:
        v = vex.read(ops, insn, sources[0])
        ops.write(dst, ops.shr(v, 64) if high else ops.trunc(v, 64))
        return
    a, m = vex.read(ops, insn, sources[0]), vex.read(ops, insn, sources[1])
    if high:
        value = ops.or_(ops.trunc(a, 64), ops.shl(m, 64, 128))
    else:
        value = ops.or_(ops.and_(a, MASK128 ^ MASK64), m)
    vex.write_halves(ops, insn, dst, [value])


@semantics("vmovhlps", "vmovlhps", feature="avx")
def move_halves(ops, insn, dst, src1, src2):
    """VMOVHLPS: src2's high half, then src1's high half; VMOVLHPS: src1's low half, then src2's low half."""
    vex.check(ops)
    a, b = vex.read(ops, insn, src1), vex.read(ops, insn, src2)
    if insn.mnemonic == "vmovhlps":
        value = ops.or_(ops.and_(a, MASK128 ^ MASK64), ops.shr(b, 64))
    else:
        value = ops.or_(ops.trunc(a, 64), ops.shl(ops.trunc(b, 64), 64, 128))
    vex.write_halves(ops, insn, dst, [value])


# -- same shape as the legacy form ---------------------------------------------------------------
def _same_shape(legacy):
    """The VEX form of an instruction that writes no XMM register: the legacy semantics after the VEX check."""
    def semantic(ops, insn, *operands):
        vex.check(ops)
        legacy(ops, insn, *operands)
    semantic.__doc__ = legacy.__doc__
    return semantic


for _legacy, _mnemonics in ((F.compare_flags, ("comiss", "comisd", "ucomiss", "ucomisd")),
                            (F.scalar_to_int, ("cvtsd2si", "cvttsd2si", "cvtss2si", "cvttss2si")),
                            (S.pextrw, ("pextrw",)), (S.ldmxcsr, ("ldmxcsr",)), (S.stmxcsr, ("stmxcsr",))):
    semantics(*("v" + m for m in _mnemonics), feature="avx")(_same_shape(_legacy))


@semantics("vpinsrw", feature="avx")
def pinsrw(ops, insn, dst, src1, src2, index):
    """VPINSRW xmm1, xmm2, r32/m16, imm8: xmm2 with one word replaced."""
    vex.check(ops)
    shift = 16 * (index.imm & 7)
    a, word = vex.read(ops, insn, src1), ops.trunc(ops.read(src2), 16)
    vex.write_halves(ops, insn, dst, [ops.or_(ops.and_(a, MASK128 ^ (0xFFFF << shift)), ops.shl(word, shift, 128))])


@semantics("vpmovmskb", "vmovmskps", "vmovmskpd", feature="avx")
def move_mask(ops, insn, dst, src):
    """The top bit of every lane into a GPR, lane i in bit i; a YMM source gives twice as many bits."""
    vex.check(ops)
    width = {"vpmovmskb": 8, "vmovmskps": 32, "vmovmskpd": 64}[insn.mnemonic]
    parts = vex.halves(ops, insn, src)
    mask = ops.helper("movmsk", parts[0], width)
    if len(parts) > 1:
        mask = ops.or_(mask, ops.shl(ops.helper("movmsk", parts[1], width), 128 // width, 64))
    ops.write(dst, mask)
