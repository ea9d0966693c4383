"""AVX and AVX2 instructions with no SSE form: broadcasts, 128-bit inserts and extracts, permutes,
VPBLENDD, per-element shifts, VTESTPS/VTESTPD/VPTEST, VZEROUPPER and VZEROALL.

Intel SDM Vol. 1, 14.4 and 14.7 (AVX and AVX2: new primitives, cross-lane
operations), each instruction's page in Vol. 2, and Vol. 1, 14.3 for the
zeroing of the bits above the vector length.  Operands come and go through
``cpu.semantics.vex``; the lane arithmetic that is not a selection fixed at
decode time is a pure helper (``vpermd``, ``vpsllvd``, ...).

Not modelled: the register-source forms of VBROADCASTSS/SD are AVX2 on real
processors but are registered with their AVX memory forms (no ``--cpu``
level has AVX without AVX2).
"""

from __future__ import annotations

from cpu.decoder import Kind
from cpu.flags import CcOp
from cpu.semantics import avx, helper, semantics, vex
from cpu.semantics import xmm as X
from cpu.semantics.xmm import join, lanes, repeat

MASK128 = (1 << 128) - 1


# -- broadcasts, inserts, extracts --------------------------------------------------------------
_BROADCAST = {"vbroadcastss": 32, "vbroadcastsd": 64, "vbroadcastf128": 128, "vbroadcasti128": 128,
              "vpbroadcastb": 8, "vpbroadcastw": 16, "vpbroadcastd": 32, "vpbroadcastq": 64}


@semantics("vbroadcastss", "vbroadcastsd", "vbroadcastf128", feature="avx")
@semantics("vpbroadcastb", "vpbroadcastw", "vpbroadcastd", "vpbroadcastq", "vbroadcasti128", feature="avx2")
def broadcast(ops, insn, dst, src):
    """VPBROADCASTB ymm1, xmm2/m8 and the others: the source's low element in every element of dst."""
    vex.check(ops)
    width = _BROADCAST[insn.mnemonic]
    element = ops.trunc(vex.halves(ops, insn, src)[0], width)
    value = element if width == 128 else ops.mul(element, repeat(1, width), 128)
    vex.write_halves(ops, insn, dst, [value] * (dst.size // 128))


@semantics("vinsertf128", feature="avx")
@semantics("vinserti128", feature="avx2")
def insert128(ops, insn, dst, src1, src2, imm):
    """VINSERTF128 ymm1, ymm2, xmm3/m128, imm8: ymm2 with the half imm8[0] names replaced by xmm3/m128."""
    vex.check(ops)
    parts = vex.halves(ops, insn, src1)
    parts[imm.imm & 1] = vex.halves(ops, insn, src2)[0]
    vex.write_halves(ops, insn, dst, parts)


@semantics("vextractf128", feature="avx")
@semantics("vextracti128", feature="avx2")
def extract128(ops, insn, dst, src, imm):
    """VEXTRACTF128 xmm1/m128, ymm2, imm8: the half imm8[0] names (an XMM destination's bits 255:128 cleared)."""
    vex.check(ops)
    vex.write_halves(ops, insn, dst, [vex.halves(ops, insn, src)[imm.imm & 1]])


# -- permutes -------------------------------------------------------------------------------------
@semantics("vperm2f128", feature="avx")
@semantics("vperm2i128", feature="avx2")
def perm2(ops, insn, dst, src1, src2, imm):
    """VPERM2F128 ymm1, ymm2, ymm3/m256, imm8: each half of dst any half of the sources (imm8[1:0], [5:4]),
    or zero (imm8[3], [7])."""
    vex.check(ops)
    choices = vex.halves(ops, insn, src1) + vex.halves(ops, insn, src2)
    control = imm.imm
    parts = [0 if control >> (4 * i + 3) & 1 else choices[control >> (4 * i) & 3] for i in range(2)]
    vex.write_halves(ops, insn, dst, parts)


@helper
def vpermilps(a: int, control: int) -> int:
    """The dwords of ``a`` (one 128-bit half) each chosen by bits 1:0 of the same dword of ``control``."""
    d = lanes(a, 32)
    return join([d[c & 3] for c in lanes(control, 32)], 32)


@helper
def vpermilpd(a: int, control: int) -> int:
    """The qwords of ``a`` (one 128-bit half) each chosen by bit 1 of the same qword of ``control``."""
    q = lanes(a, 64)
    return join([q[(c >> 1) & 1] for c in lanes(control, 64)], 64)


@semantics("vpermilps", "vpermilpd", feature="avx")
def permil(ops, insn, dst, src, control):
    """VPERMILPS ymm1, ymm2, ymm3/m256 (a control element per element) or ymm1, ymm2/m256, imm8, in-lane."""
    vex.check(ops)
    a = vex.halves(ops, insn, src)
    if control.kind is not Kind.IMM:
        c = vex.halves(ops, insn, control)
        vex.write_halves(ops, insn, dst, [ops.helper(insn.mnemonic, x, y) for x, y in zip(a, c, strict=True)])
    elif insn.mnemonic == "vpermilps":
        vex.write_halves(ops, insn, dst, [ops.helper("pshufd", x, control.imm) for x in a])
    else:
        vex.write_halves(ops, insn, dst, [ops.helper("shufpd", x, x, control.imm >> (2 * i)) for i, x in enumerate(a)])


@helper
def vpermd(index: int, a: int) -> int:
    """VPERMD: dword i of the 256-bit result is dword index[i] & 7 of ``a``."""
    d = [(a >> (32 * i)) & 0xFFFF_FFFF for i in range(8)]
    return sum(d[(index >> (32 * i)) & 7] << (32 * i) for i in range(8))


@helper
def vpermq(a: int, order: int) -> int:
    """VPERMQ: qword i of the 256-bit result is qword order[2i+1:2i] of ``a``."""
    q = [(a >> (64 * i)) & 0xFFFF_FFFF_FFFF_FFFF for i in range(4)]
    return sum(q[(order >> (2 * i)) & 3] << (64 * i) for i in range(4))


@semantics("vpermd", "vpermps", feature="avx2")
def permd(ops, insn, dst, index, src):
    """VPERMD ymm1, ymm2, ymm3/m256: any dword of ymm3/m256 into each dword, chosen by ymm2."""
    vex.check(ops)
    vex.write(ops, insn, dst, ops.helper("vpermd", vex.read(ops, insn, index), vex.read(ops, insn, src)))


@semantics("vpermq", "vpermpd", feature="avx2")
def permq(ops, insn, dst, src, order):
    """VPERMQ ymm1, ymm2/m256, imm8: any qword of the source into each qword, chosen by the imm8."""
    vex.check(ops)
    vex.write(ops, insn, dst, ops.helper("vpermq", vex.read(ops, insn, src), order.imm))


@semantics("vpblendd", feature="avx2")
def blendd(ops, insn, dst, src1, src2, imm):
    """VPBLENDD ymm1, ymm2, ymm3/m256, imm8: dword i from ymm3/m256 where imm8[i] is set, else from ymm2
    (a 128-bit form uses imm8[3:0])."""
    vex.check(ops)
    parts = []
    for i, (a, b) in enumerate(zip(vex.halves(ops, insn, src1), vex.halves(ops, insn, src2), strict=True)):
        take = join([0xFFFF_FFFF * (imm.imm >> (4 * i + j) & 1) for j in range(4)], 32)
        parts.append(ops.or_(ops.and_(a, MASK128 ^ take), ops.and_(b, take)))
    vex.write_halves(ops, insn, dst, parts)


# -- per-element shifts: lane forms with no legacy form, through avx.lanes ------------------------
def _variable_shift(name: str, width: int, kind: str) -> None:
    def shift(a: int, counts: int) -> int:
        out = []
        for x, n in zip(lanes(a, width, kind == "sra"), lanes(counts, width), strict=True):
            if kind == "sra":
                out.append((x >> min(n, width - 1)) & ((1 << width) - 1))
            elif n >= width:
                out.append(0)
            else:
                out.append((x << n) & ((1 << width) - 1) if kind == "sll" else x >> n)
        return join(out, width)
    shift.__name__ = name
    shift.__doc__ = f"{name.upper()}: each {width}-bit lane by the count in the same lane of the second source."
    helper(shift)


VARIABLE_SHIFTS = {"psllvd": (32, "sll"), "psllvq": (64, "sll"), "psrlvd": (32, "srl"), "psrlvq": (64, "srl"),
                   "psravd": (32, "sra")}
for _name, (_width, _kind) in VARIABLE_SHIFTS.items():
    _variable_shift(_name, _width, _kind)


@X.lane_form(shared=tuple(VARIABLE_SHIFTS))
def variable_shift(ops, name, insn, a, b):
    """VPSLLVD ymm1, ymm2, ymm3/m256 and the others: each element by its own count (too large: 0, or the sign)."""
    return ops.helper(name, a, b)


avx.register(*VARIABLE_SHIFTS, feature="avx2")


# -- tests and zeroing ------------------------------------------------------------------------------
_SIGNS = {"vtestps": repeat(1 << 31, 32), "vtestpd": repeat(1 << 63, 64), "vptest": MASK128}


@semantics("vptest", "vtestps", "vtestpd", feature="avx")
def vtest(ops, insn, first, second):
    """ZF = ((src1 AND src2) = 0), CF = ((NOT src1 AND src2) = 0) over all bits (VPTEST) or the sign bits
    (VTESTPS/PD); AF, OF, PF, SF cleared."""
    vex.check(ops)
    bits = first.size
    mask = _SIGNS[insn.mnemonic] | (_SIGNS[insn.mnemonic] << 128 if bits == 256 else 0)
    a, b = ops.and_(vex.read(ops, insn, first), mask), ops.and_(vex.read(ops, insn, second), mask)
    zf = ops.eq(ops.and_(a, b), 0)
    cf = ops.eq(ops.and_(ops.xor(a, mask), b), 0)
    ops.set_flags(CcOp.FLAGS, 64, ops.or_(ops.shl(zf, 6, 64), cf), 0, 0)     # ZF is bit 6, CF bit 0


@semantics("vzeroupper", "vzeroall", feature="avx")
def vzero(ops, insn):
    """VZEROUPPER: bits 255:128 of every YMM register cleared; VZEROALL: every YMM register cleared."""
    vex.check(ops)
    for i in range(16):
        ops.set_reg(f"ymmh{i}", 0)
        if insn.mnemonic == "vzeroall":
            ops.set_reg(f"xmm{i}", 0)
