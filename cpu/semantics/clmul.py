"""PCLMULQDQ: carry-less multiplication of two 64-bit halves into 128 bits.

Intel SDM Vol. 2B, PCLMULQDQ.  imm8 bit 0 picks the destination's quadword,
bit 4 the source's; the other bits are ignored.  The product is the
polynomial product over GF(2) (XOR instead of addition), 127 bits wide.
"""

from __future__ import annotations

from cpu.semantics import helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.xmm import MASK64


@helper
def pclmulqdq(a: int, b: int, imm: int) -> int:
    """The carry-less product of quadword imm[0] of a and quadword imm[4] of b."""
    x, y = a >> (64 * (imm & 1)) & MASK64, b >> (64 * (imm >> 4 & 1)) & MASK64
    out = 0
    while y:
        if y & 1:
            out ^= x
        x <<= 1
        y >>= 1
    return out


@semantics("pclmulqdq", feature="pclmulqdq")
def pclmulqdq_insn(ops, insn, dst, src, imm):
    """PCLMULQDQ xmm1, xmm2/m128, imm8 (the assemblers' PCLMULLQLQDQ & co. are this with imm8 0x00...0x11)."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper("pclmulqdq", a, b, imm.imm))
