"""SSE4.1 integer and data-movement instructions, and SSE4.2's PCMPGTQ.

Intel SDM Vol. 2 instruction pages PBLENDW, BLENDPS, BLENDPD, PBLENDVB,
BLENDVPS, BLENDVPD, PMINSB/PMINSD/PMINUW/PMINUD, PMAXSB/PMAXSD/PMAXUW/PMAXUD,
PMULLD, PMULDQ, PCMPEQQ, PCMPGTQ, PACKUSDW, PMOVSX, PMOVZX, PTEST,
PEXTRB/PEXTRD/PEXTRQ (and PEXTRW's memory form), PINSRB/PINSRD/PINSRQ,
EXTRACTPS, INSERTPS, MPSADBW, PHMINPOSUW and MOVNTDQA; the legacy-SSE
(128-bit XMM) forms.  Rounding (ROUNDxx) and dot products (DPPx) are in
``sse4_float``.

Each computation is a pure helper of source values and immediate returning
the new 128-bit value (``pblendw(a, b, imm)``, ``pmovsxbw(b)``), the first
argument the destination's old value, so the VEX forms can apply the same
helper to each 128-bit lane.  The variable blends read XMM0 implicitly (the
decoder drops it from the operand list): ``blendv(a, b, mask, width)``.

Not modelled: MOVNTDQA's non-temporal hint (a plain aligned load).
"""

from __future__ import annotations

import operator
from collections.abc import Callable

from cpu.decoder import Kind
from cpu.flags import CcOp, Flag
from cpu.semantics import helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.sse import WRAP, lane_helper, pack_helper
from cpu.semantics.xmm import MASK32, MASK128, join, lanes, repeat

# -- lane arithmetic -----------------------------------------------------------------------------
LANE_OPS: dict[str, tuple[int, bool, Callable[[int, int], int], str]] = {
    # mnemonic: (lane width, lanes read as signed, lane function, how a result fits its lane), as sse.LANE_OPS
    "pminsb": (8, True, min, WRAP),
    "pminsd": (32, True, min, WRAP),
    "pminuw": (16, False, min, WRAP),
    "pminud": (32, False, min, WRAP),
    "pmaxsb": (8, True, max, WRAP),
    "pmaxsd": (32, True, max, WRAP),
    "pmaxuw": (16, False, max, WRAP),
    "pmaxud": (32, False, max, WRAP),
    "pmulld": (32, False, operator.mul, WRAP),
    "pmuldq": (64, False, lambda x, y: _low_signed32(x) * _low_signed32(y), WRAP),
    "pcmpeqq": (64, False, lambda x, y: -(x == y), WRAP),
    "pcmpgtq": (64, True, lambda x, y: -(x > y), WRAP),
}


def _low_signed32(v: int) -> int:
    v &= MASK32
    return v - ((v >> 31) << 32)


for _name, _spec in LANE_OPS.items():
    lane_helper(_name, *_spec)
pack_helper("packusdw", 32, False)


@semantics(*(m for m in LANE_OPS if m != "pcmpgtq"), "packusdw", feature="sse4_1")
def lanewise(ops, insn, dst, src):
    """PMINSB xmm1, xmm2/m128 and the others: dst = helper(dst, src)."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper(insn.mnemonic, a, b))


@semantics("pcmpgtq", feature="sse4_2")
def pcmpgtq(ops, insn, dst, src):
    """PCMPGTQ xmm1, xmm2/m128: each 64-bit lane all ones when dst > src (signed)."""
    lanewise(ops, insn, dst, src)


# -- blends ---------------------------------------------------------------------------------------
def _spread(bits: int, width: int) -> int:
    """A 128-bit mask with ``width``-bit lane i all ones when bit i of ``bits`` is set."""
    return join([((1 << width) - 1) if bits >> i & 1 else 0 for i in range(128 // width)], width)


@helper
def blend(a: int, b: int, imm: int, width: int) -> int:
    """PBLENDW/BLENDPS/BLENDPD: ``width``-bit lane i from b when imm bit i is set, else from a."""
    take = _spread(imm, width)
    return (a & ~take & MASK128) | (b & take)


@helper
def blendv(a: int, b: int, mask: int, width: int) -> int:
    """PBLENDVB/BLENDVPS/BLENDVPD: lane i from b when the top bit of the mask's lane i is set."""
    top = repeat(1 << (width - 1), width) & mask
    take = (top >> (width - 1)) * ((1 << width) - 1)
    return (a & ~take & MASK128) | (b & take)


BLEND_WIDTH = {"pblendw": 16, "blendps": 32, "blendpd": 64, "pblendvb": 8, "blendvps": 32, "blendvpd": 64}


@semantics("pblendw", "blendps", "blendpd", feature="sse4_1")
def blend_imm(ops, insn, dst, src, imm):
    """PBLENDW xmm1, xmm2/m128, imm8: lanes chosen by the immediate's bits."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper("blend", a, b, imm.imm, BLEND_WIDTH[insn.mnemonic]))


@semantics("pblendvb", "blendvps", "blendvpd", feature="sse4_1")
def blend_variable(ops, insn, dst, src):
    """PBLENDVB xmm1, xmm2/m128, <XMM0>: lanes chosen by the top bits of XMM0's lanes."""
    a, b, mask = ops.read(dst), X.read(ops, insn, src), ops.reg("xmm0")
    ops.write(dst, ops.helper("blendv", a, b, mask, BLEND_WIDTH[insn.mnemonic]))


# -- sign and zero extension ----------------------------------------------------------------------
EXTENSIONS = {f"pmov{kind}x{s}{d}": (ws, wd, kind == "s")
              for kind in ("s", "z") for s, d, ws, wd in (("b", "w", 8, 16), ("b", "d", 8, 32), ("b", "q", 8, 64),
                                                          ("w", "d", 16, 32), ("w", "q", 16, 64), ("d", "q", 32, 64))}


def _extension(name: str, source: int, target: int, signed: bool) -> None:
    count = 128 // target

    def h(b: int) -> int:
        return join([v & ((1 << target) - 1) for v in lanes(b, source, signed)[:count]], target)

    h.__name__ = name
    h.__doc__ = f"{name.upper()}: the low {count} {source}-bit lanes {'sign' if signed else 'zero'}-extended."
    helper(h)


for _name, (_source, _target, _signed) in EXTENSIONS.items():
    _extension(_name, _source, _target, _signed)


@semantics(*EXTENSIONS, feature="sse4_1")
def extend(ops, insn, dst, src):
    """PMOVSXBW xmm1, xmm2/m64 and the others: the source's low lanes widened (memory: no alignment)."""
    ops.write(dst, ops.helper(insn.mnemonic, ops.read(src)))


# -- PTEST ------------------------------------------------------------------------------------------
@helper
def ptest(a: int, b: int) -> int:
    """RFLAGS image: ZF when a AND b is zero, CF when (NOT a) AND b is zero."""
    return (int(Flag.ZF) if not a & b else 0) | (int(Flag.CF) if not ~a & b & MASK128 else 0)


@semantics("ptest", feature="sse4_1")
def ptest_insn(ops, insn, first, second):
    """PTEST xmm1, xmm2/m128: ZF and CF as above; AF, OF, PF and SF cleared."""
    a, b = ops.read(first), X.read(ops, insn, second)
    ops.set_flags(CcOp.FLAGS, 64, ops.helper("ptest", a, b), 0, 0)


# -- extract and insert -----------------------------------------------------------------------------
LANE = {"pextrb": 8, "pextrw": 16, "pextrd": 32, "pextrq": 64, "extractps": 32,
         "pinsrb": 8, "pinsrd": 32, "pinsrq": 64}


@semantics("pextrb", "pextrd", "pextrq", "extractps", feature="sse4_1")
def extract(ops, insn, dst, src, index):
    """PEXTRB r32/m8, xmm, imm8 and the others: lane (imm8 mod lanes) to a register (zero-extended) or memory."""
    width = LANE[insn.mnemonic]
    shift = width * (index.imm % (128 // width))
    ops.write(dst, ops.trunc(ops.shr(ops.read(src), shift), width))


@helper
def insert(a: int, value: int, index: int, width: int) -> int:
    """PINSRB/PINSRD/PINSRQ: ``value``'s low ``width`` bits in lane (index mod lanes) of a."""
    shift = width * (index % (128 // width))
    mask = ((1 << width) - 1) << shift
    return (a & ~mask & MASK128) | ((value << shift) & mask)


@semantics("pinsrb", "pinsrd", "pinsrq", feature="sse4_1")
def insert_insn(ops, insn, dst, src, index):
    """PINSRB xmm1, r32/m8, imm8 and the others."""
    a, value = ops.read(dst), ops.read(src)
    ops.write(dst, ops.helper("insert", a, value, index.imm, LANE[insn.mnemonic]))


@helper
def insertps(a: int, b: int, imm: int) -> int:
    """INSERTPS: dword imm[7:6] of b into dword imm[5:4] of a, then dwords with imm[3:0] set zeroed."""
    d = list(lanes(a, 32))
    d[(imm >> 4) & 3] = lanes(b, 32)[imm >> 6 & 3]
    return join([0 if imm >> i & 1 else v for i, v in enumerate(d)], 32)


@semantics("insertps", feature="sse4_1")
def insertps_insn(ops, insn, dst, src, imm):
    """INSERTPS xmm1, xmm2/m32, imm8: a memory source is the dword itself (imm[7:6] is ignored)."""
    a, b = ops.read(dst), ops.read(src)
    ops.write(dst, ops.helper("insertps", a, b, imm.imm & 0x3F if src.kind is Kind.MEM else imm.imm))


# -- sums of absolute differences, minimum search, the streaming load ----------------------------------
@helper
def mpsadbw(a: int, b: int, imm: int) -> int:
    """Word i: sum over j < 4 of |a byte (4 * imm[2] + i + j) - b byte (4 * imm[1:0] + j)|."""
    x, y = lanes(a, 8), lanes(b, 8)
    base, quad = 4 * (imm >> 2 & 1), y[4 * (imm & 3):4 * (imm & 3) + 4]
    return join([sum(abs(x[base + i + j] - quad[j]) for j in range(4)) for i in range(8)], 16)


@semantics("mpsadbw", feature="sse4_1")
def mpsadbw_insn(ops, insn, dst, src, imm):
    """MPSADBW xmm1, xmm2/m128, imm8."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper("mpsadbw", a, b, imm.imm))


@helper
def phminposuw(b: int) -> int:
    """The smallest unsigned word in bits 15:0, its (lowest) index in bits 18:16, the rest zero."""
    w = lanes(b, 16)
    low = min(w)
    return low | (w.index(low) << 16)


@semantics("phminposuw", feature="sse4_1")
def phminposuw_insn(ops, insn, dst, src):
    """PHMINPOSUW xmm1, xmm2/m128."""
    ops.write(dst, ops.helper("phminposuw", X.read(ops, insn, src)))


@semantics("movntdqa", feature="sse4_1")
def movntdqa(ops, insn, dst, src):
    """MOVNTDQA xmm1, m128: an aligned load (the non-temporal hint is not modelled)."""
    ops.write(dst, X.read(ops, insn, src))
