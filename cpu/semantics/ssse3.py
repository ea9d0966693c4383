"""SSSE3: byte shuffle, horizontal add/subtract, multiply-add, sign, absolute value, byte align.

Intel SDM Vol. 2 instruction pages PSHUFB, PHADDW/PHADDD, PHADDSW,
PHSUBW/PHSUBD, PHSUBSW, PMADDUBSW, PMULHRSW, PSIGNB/PSIGNW/PSIGND,
PABSB/PABSW/PABSD and PALIGNR, the legacy-SSE (128-bit XMM) forms.

Each instruction's computation is a pure helper named after its mnemonic,
a function of its source values (and immediate) returning the new 128-bit
value: ``pshufb(a, b)``, ``palignr(a, b, imm)``, where ``a`` is the first
(destination) operand and ``b`` the second.  The VEX forms compute the same
function per 128-bit lane, so they can call these helpers.

The MMX (``mm0``-``mm7``) forms run these semantics through ``mmx``.
"""

from __future__ import annotations

from collections.abc import Callable

from cpu.semantics import helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.xmm import MASK128, join, lanes


@helper
def pshufb(a: int, b: int) -> int:
    """Byte i of the result: byte (b[i] & 15) of a, or zero when b[i] has its top bit set."""
    x = lanes(a, 8)
    return join([0 if i & 0x80 else x[i & 15] for i in lanes(b, 8)], 8)


def _saturate16(v: int) -> int:
    return min(max(v, -0x8000), 0x7FFF) & 0xFFFF


def _horizontal(name: str, width: int, fn: Callable[[int, int], int], saturate: bool) -> None:
    mask = (1 << width) - 1

    def h(a: int, b: int) -> int:
        both = lanes(a, width, True) + lanes(b, width, True)
        out = [fn(both[i], both[i + 1]) for i in range(0, len(both), 2)]
        return join([_saturate16(v) if saturate else v & mask for v in out], width)

    h.__name__ = name
    h.__doc__ = (f"{name.upper()}: adjacent {width}-bit pairs of a, then of b, combined "
                 f"({'signed saturation' if saturate else 'wrapping'}).")
    helper(h)


HORIZONTAL = {
    "phaddw": (16, lambda x, y: x + y, False),
    "phaddd": (32, lambda x, y: x + y, False),
    "phaddsw": (16, lambda x, y: x + y, True),
    "phsubw": (16, lambda x, y: x - y, False),
    "phsubd": (32, lambda x, y: x - y, False),
    "phsubsw": (16, lambda x, y: x - y, True),
}
for _name, _spec in HORIZONTAL.items():
    _horizontal(_name, *_spec)


@helper
def pmaddubsw(a: int, b: int) -> int:
    """Unsigned bytes of a times signed bytes of b, adjacent products summed with signed saturation."""
    p = [x * y for x, y in zip(lanes(a, 8), lanes(b, 8, True), strict=True)]
    return join([_saturate16(p[i] + p[i + 1]) for i in range(0, 16, 2)], 16)


@helper
def pmulhrsw(a: int, b: int) -> int:
    """Signed 16x16 products, rounded and scaled: bits 16..1 of (product >> 14) + 1."""
    return join([(((x * y) >> 14) + 1) >> 1 & 0xFFFF
                 for x, y in zip(lanes(a, 16, True), lanes(b, 16, True), strict=True)], 16)


def _sign(name: str, width: int) -> None:
    mask = (1 << width) - 1

    def h(a: int, b: int) -> int:
        return join([(-x if y < 0 else x if y else 0) & mask
                     for x, y in zip(lanes(a, width), lanes(b, width, True), strict=True)], width)

    h.__name__ = name
    h.__doc__ = f"{name.upper()}: each {width}-bit lane of a negated, zeroed or kept as b's lane is <0, 0, >0."
    helper(h)


def _absolute(name: str, width: int) -> None:
    mask = (1 << width) - 1

    def h(b: int) -> int:
        return join([abs(x) & mask for x in lanes(b, width, True)], width)

    h.__name__ = name
    h.__doc__ = f"{name.upper()}: unsigned absolute value of each signed {width}-bit lane (the minimum stays)."
    helper(h)


for _suffix, _width in (("b", 8), ("w", 16), ("d", 32)):
    _sign("psign" + _suffix, _width)
    _absolute("pabs" + _suffix, _width)


@helper
def palignr(a: int, b: int, imm: int) -> int:
    """The 256-bit a:b (a high) shifted right by ``imm`` bytes, low 128 bits (zero from imm 32 on)."""
    return ((a << 128 | b) >> (8 * min(imm, 32))) & MASK128


@semantics("pshufb", "pmaddubsw", "pmulhrsw", "psignb", "psignw", "psignd", *HORIZONTAL, feature="ssse3")
def binary(ops, insn, dst, src):
    """PSHUFB xmm1, xmm2/m128 and the others: dst = helper(dst, src)."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper(insn.mnemonic, a, b))


@semantics("pabsb", "pabsw", "pabsd", feature="ssse3")
def absolute(ops, insn, dst, src):
    """PABSB xmm1, xmm2/m128: dst = |src| per lane."""
    ops.write(dst, ops.helper(insn.mnemonic, X.read(ops, insn, src)))


@semantics("palignr", feature="ssse3")
def align(ops, insn, dst, src, imm):
    """PALIGNR xmm1, xmm2/m128, imm8: dst = (dst:src >> 8 * imm8)[127:0]."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper("palignr", a, b, imm.imm))
