"""The VEX forms of SSE4.1 and SSE4.2 instructions that are more than one helper of two sources, and VLDDQU.

Intel SDM Vol. 2, the V-forms on the pages of BLENDPS/BLENDPD/PBLENDW, BLENDVPS/BLENDVPD/PBLENDVB,
ROUNDPS/PD/SS/SD, PMOVSX/PMOVZX, PEXTRB/D/Q, EXTRACTPS, PINSRB/D/Q, INSERTPS, DPPS/DPPD, MPSADBW,
PHMINPOSUW, MOVNTDQA, LDDQU and PCMPESTRI/PCMPESTRM/PCMPISTRI/PCMPISTRM.  Each applies the
legacy instruction's helper (``cpu.semantics.sse4``, ``sse4_float``, ``pcmpstr``) to its sources, 128 bits at a time
where the instruction has a 256-bit form, and clears the destination above the vector length:

- VBLENDPS/VBLENDPD ymm take the next immediate bits for the upper half; VPBLENDW uses the same imm8 for
  both halves; the VEX.256 variable blends take the mask from a fourth register (ymm4/xmm4 in
  ``vblendvps ymm1, ymm2, ymm3, ymm4``), not from XMM0;
- VROUNDPS/VROUNDPD ymm round each half under MXCSR's or the imm8's rounding, flags accumulated;
  VROUNDSS/VROUNDSD take the upper lanes from the first source;
- VPMOVSX/VPMOVZX ymm widen twice as many source lanes (the source's low 128 bits for a 256-bit result);
- the extracts and inserts are VEX.128 only and work as their legacy forms, the inserts with a separate
  first source;
- VDPPS ymm computes each half's dot product with the same imm8; VDPPD is VEX.128 only;
- VMPSADBW ymm (AVX2) takes its upper half's block offsets from imm8[5:3], as the SDM's operation does;
- VPHMINPOSUW and the string compares are VEX.128 only.  The string compares need SSE4.2 and AVX: they are
  registered under AVX, which every ``--cpu`` level with AVX has with SSE4.2;
- VLDDQU loads without alignment; VMOVNTDQA needs its operand aligned to its size (``vex.ALIGNED``).

Not implemented: VPCMPESTRx with VEX.W = 1 (64-bit lengths from RAX and RDX, as REX.W gives the legacy
form; the host runs it), which capstone does not decode, so it raises #UD.

Not modelled: the 256-bit VMPSADBW and VMOVNTDQA are not refused without AVX2 (no ``--cpu`` level has AVX
without AVX2, as ``cpu.semantics.avx`` says for the other 256-bit integer forms).
"""

from __future__ import annotations

from cpu.decoder import Kind
from cpu.semantics import pcmpstr, semantics, vex
from cpu.semantics import xmm as X
from cpu.semantics.sse4 import BLEND_WIDTH, EXTENSIONS, LANE


@semantics("vblendps", "vblendpd", "vpblendw", feature="avx")
def blend_imm(ops, insn, dst, src1, src2, imm):
    """VBLENDPS ymm1, ymm2, ymm3/m256, imm8: lanes chosen by the immediate's bits (VPBLENDW's repeat per half)."""
    vex.check(ops)
    width = BLEND_WIDTH[insn.mnemonic[1:]]
    a, b = vex.halves(ops, insn, src1), vex.halves(ops, insn, src2)
    per_half = 0 if insn.mnemonic == "vpblendw" else 128 // width
    vex.write_halves(ops, insn, dst, [ops.helper("blend", a[i], b[i], (imm.imm >> (per_half * i)) & 0xFF, width)
                                      for i in range(len(b))])


@semantics("vblendvps", "vblendvpd", "vpblendvb", feature="avx")
def blend_variable(ops, insn, dst, src1, src2, mask):
    """VBLENDVPS ymm1, ymm2, ymm3/m256, ymm4: lanes chosen by the top bits of the fourth operand's lanes."""
    vex.check(ops)
    width = BLEND_WIDTH[insn.mnemonic[1:]]
    a, b, m = vex.halves(ops, insn, src1), vex.halves(ops, insn, src2), vex.halves(ops, insn, mask)
    vex.write_halves(ops, insn, dst, [ops.helper("blendv", a[i], b[i], m[i], width) for i in range(len(b))])


@semantics("vroundps", "vroundpd", feature="avx")
def round_packed(ops, insn, dst, src, imm):
    """VROUNDPS ymm1, ymm2/m256, imm8: every lane rounded to an integer, each half as ROUNDPS does."""
    vex.check(ops)
    mxcsr, parts, flags = ops.reg("mxcsr"), [], 0
    for half in vex.halves(ops, insn, src):
        packed = ops.helper(insn.mnemonic[1:], 0, half, imm.imm, mxcsr)
        parts.append(ops.trunc(packed, 128))
        flags = ops.or_(flags, ops.shr(packed, 128))
    X.raise_flags(ops, flags)
    vex.write_halves(ops, insn, dst, parts)


@semantics("vroundss", "vroundsd", feature="avx")
def round_scalar(ops, insn, dst, src1, src2, imm):
    """VROUNDSS xmm1, xmm2, xmm3/m32, imm8: the low lane of the second source rounded, the rest from the first."""
    vex.check(ops)
    packed = ops.helper(insn.mnemonic[1:], vex.read(ops, insn, src1), vex.read(ops, insn, src2), imm.imm,
                        ops.reg("mxcsr"))
    X.raise_flags(ops, ops.shr(packed, 128))
    vex.write_halves(ops, insn, dst, [ops.trunc(packed, 128)])


@semantics(*("v" + name for name in EXTENSIONS), feature="avx")
def extend(ops, insn, dst, src):
    """VPMOVSXBW ymm1, xmm2/m128: the legacy widening of the source's low half, then of its high half."""
    vex.check(ops)
    name, (source, target, _) = insn.mnemonic[1:], EXTENSIONS[insn.mnemonic[1:]]
    value = vex.read(ops, insn, src)
    step = 128 * source // target                  # source bits each 128-bit half of the result takes
    vex.write_halves(ops, insn, dst, [ops.helper(name, ops.shr(value, step * i) if i else value)
                                      for i in range(dst.size // 128)])


@semantics("vpextrb", "vpextrd", "vpextrq", "vextractps", feature="avx")
def extract(ops, insn, dst, src, index):
    """VPEXTRB r32/m8, xmm2, imm8 and the others, as their legacy forms."""
    vex.check(ops)
    width = LANE[insn.mnemonic[1:]]
    shift = width * (index.imm % (128 // width))
    ops.write(dst, ops.trunc(ops.shr(vex.read(ops, insn, src), shift), width))


@semantics("vpinsrb", "vpinsrd", "vpinsrq", "vinsertps", feature="avx")
def insert(ops, insn, dst, src1, src2, index):
    """VPINSRB xmm1, xmm2, r32/m8, imm8: xmm2 with one lane replaced; VINSERTPS likewise with INSERTPS's imm8."""
    vex.check(ops)
    a = vex.read(ops, insn, src1)
    if insn.mnemonic == "vinsertps":
        b = vex.read(ops, insn, src2) if src2.kind is not Kind.MEM else ops.read(src2)
        value = ops.helper("insertps", a, b, index.imm & 0x3F if src2.kind is Kind.MEM else index.imm)
    else:
        value = ops.helper("insert", a, ops.read(src2), index.imm, LANE[insn.mnemonic[1:]])
    vex.write_halves(ops, insn, dst, [value])


@semantics("vdpps", "vdppd", feature="avx")
def dot(ops, insn, dst, src1, src2, imm):
    """VDPPS ymm1, ymm2, ymm3/m256, imm8: DPPS on each 128-bit half; VDPPD xmm1, xmm2, xmm3/m128, imm8."""
    vex.check(ops)
    a, b, mxcsr = vex.halves(ops, insn, src1), vex.halves(ops, insn, src2), ops.reg("mxcsr")
    parts, flags = [], 0
    for i in range(len(b)):
        packed = ops.helper(insn.mnemonic[1:], a[i], b[i], imm.imm, mxcsr)
        parts.append(ops.trunc(packed, 128))
        flags = ops.or_(flags, ops.shr(packed, 128))
    X.raise_flags(ops, flags, staged=True)
    vex.write_halves(ops, insn, dst, parts)


@semantics("vmpsadbw", feature="avx")
def mpsadbw(ops, insn, dst, src1, src2, imm):
    """VMPSADBW ymm1, ymm2, ymm3/m256, imm8: MPSADBW per half, the upper half with imm8[5:3]."""
    vex.check(ops)
    a, b = vex.halves(ops, insn, src1), vex.halves(ops, insn, src2)
    vex.write_halves(ops, insn, dst, [ops.helper("mpsadbw", a[i], b[i], (imm.imm >> (3 * i)) & 7)
                                      for i in range(len(b))])


@semantics("vphminposuw", feature="avx")
def phminposuw(ops, insn, dst, src):
    """VPHMINPOSUW xmm1, xmm2/m128."""
    vex.check(ops)
    vex.write_halves(ops, insn, dst, [ops.helper("phminposuw", vex.read(ops, insn, src))])


@semantics("vlddqu", "vmovntdqa", feature="avx")
def load(ops, insn, dst, src):
    """VLDDQU ymm1, m256 (any alignment); VMOVNTDQA ymm1, m256 (#GP(0) unless aligned; the hint is not modelled)."""
    vex.check(ops)
    vex.write_halves(ops, insn, dst, vex.halves(ops, insn, src))


@semantics("vpcmpestri", "vpcmpestrm", "vpcmpistri", "vpcmpistrm", feature="avx")
def compare_strings(ops, insn, first, second, control):
    """VPCMPESTRI xmm1, xmm2/m128, imm8 and its siblings: as the legacy forms (any alignment), VEX.W = 1 as
    REX.W (64-bit lengths); VPCMPxSTRM clears YMM0's upper half."""
    vex.check(ops)
    pcmpstr.compare(ops, insn, vex.read(ops, insn, first), vex.read(ops, insn, second), control.imm,
                    pcmpstr.vex_w(insn))
    if insn.mnemonic.endswith("m"):
        ops.set_reg("ymmh0", 0)
