"""SHA extensions: SHA-1 and SHA-256 rounds and message-schedule steps.

Intel SDM Vol. 2B pages SHA1RNDS4, SHA1NEXTE, SHA1MSG1, SHA1MSG2,
SHA256RNDS2, SHA256MSG1 and SHA256MSG2 (their "Operation" sections), with
the functions of FIPS 180-4 (4.1.1 and 4.1.2).  Dwords are named as the SDM
does, from the top: in ``a, b, c, d = _dwords(x)`` a is bits 127:96.
SHA256RNDS2 reads XMM0 implicitly (its two message+constant words); the
decoder drops it from the operand list.

Each helper is a function of the source values (and immediate), so the VEX
forms could reuse them.
"""

from __future__ import annotations

from cpu.semantics import helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.xmm import MASK32

SHA1_K = (0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xCA62C1D6)


def _dwords(v: int) -> tuple[int, int, int, int]:
    """The four dwords of a 128-bit value, bits 127:96 first."""
    return v >> 96 & MASK32, v >> 64 & MASK32, v >> 32 & MASK32, v & MASK32


def _join(a: int, b: int, c: int, d: int) -> int:
    """Four dwords into 128 bits, ``a`` in bits 127:96."""
    return (a & MASK32) << 96 | (b & MASK32) << 64 | (c & MASK32) << 32 | (d & MASK32)


def _rol(x: int, n: int) -> int:
    return ((x << n) | (x >> (32 - n))) & MASK32


def _ror(x: int, n: int) -> int:
    return ((x >> n) | (x << (32 - n))) & MASK32


def _sha1_f(kind: int, b: int, c: int, d: int) -> int:
    """FIPS 180-4 4.1.1: Ch, Parity, Maj, Parity for rounds 0-19, 20-39, 40-59, 60-79."""
    if kind == 0:
        return (b & c) ^ (~b & d & MASK32)
    if kind == 2:
        return (b & c) ^ (b & d) ^ (c & d)
    return b ^ c ^ d


@helper
def sha1rnds4(state: int, w: int, imm: int) -> int:
    """Four SHA-1 rounds of the function and constant imm[1:0] picks; W0 + E comes in w's top dword."""
    a, b, c, d = _dwords(state)
    words = _dwords(w)
    kind = imm & 3
    e = 0                       # the first word already has E added (SHA1NEXTE)
    for word in words:
        a, b, c, d, e = (_sha1_f(kind, b, c, d) + _rol(a, 5) + word + e + SHA1_K[kind]) & MASK32, a, _rol(b, 30), c, d
    return _join(a, b, c, d)


@helper
def sha1nexte(a: int, b: int) -> int:
    """b with ROL30 of a's top dword (the next E) added to its top dword."""
    top = (_rol(a >> 96 & MASK32, 30) + (b >> 96)) & MASK32
    return (b & ((1 << 96) - 1)) | top << 96


@helper
def sha1msg1(a: int, b: int) -> int:
    """The first half of W[t] = ROL1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]): the W[t-14] ^ W[t-16] terms."""
    w0, w1, w2, w3 = _dwords(a)
    w4, w5, _, _ = _dwords(b)
    return _join(w2 ^ w0, w3 ^ w1, w4 ^ w2, w5 ^ w3)


@helper
def sha1msg2(a: int, b: int) -> int:
    """The second half: W16..W19 from a (the partial sums) and W13..W15 (b's low three dwords)."""
    _, w13, w14, w15 = _dwords(b)
    x0, x1, x2, x3 = _dwords(a)
    w16 = _rol(x0 ^ w13, 1)
    w17 = _rol(x1 ^ w14, 1)
    w18 = _rol(x2 ^ w15, 1)
    w19 = _rol(x3 ^ w16, 1)
    return _join(w16, w17, w18, w19)


def _big_sigma0(x: int) -> int:
    return _ror(x, 2) ^ _ror(x, 13) ^ _ror(x, 22)


def _big_sigma1(x: int) -> int:
    return _ror(x, 6) ^ _ror(x, 11) ^ _ror(x, 25)


def _sigma0(x: int) -> int:
    return _ror(x, 7) ^ _ror(x, 18) ^ (x >> 3)


def _sigma1(x: int) -> int:
    return _ror(x, 17) ^ _ror(x, 19) ^ (x >> 10)


@helper
def sha256rnds2(cdgh: int, abef: int, wk: int) -> int:
    """Two SHA-256 rounds: state C, D, G, H in the first operand, A, B, E, F in the second, W+K words
    in wk's (XMM0's) low two dwords; returns the new A, B, E, F."""
    c, d, g, h = _dwords(cdgh)
    a, b, e, f = _dwords(abef)
    for word in (wk & MASK32, wk >> 32 & MASK32):
        t1 = ((e & f) ^ (~e & g & MASK32)) + _big_sigma1(e) + word + h
        t2 = ((a & b) ^ (a & c) ^ (b & c)) + _big_sigma0(a)
        a, b, c, d, e, f, g, h = (t1 + t2) & MASK32, a, b, c, (t1 + d) & MASK32, e, f, g
    return _join(a, b, e, f)


@helper
def sha256msg1(a: int, b: int) -> int:
    """W[t-16] + sigma0(W[t-15]) for four t: W0..W3 in a (W0 lowest), W4 in b's low dword."""
    w3, w2, w1, w0 = _dwords(a)
    w4 = b & MASK32
    return _join(w3 + _sigma0(w4), w2 + _sigma0(w3), w1 + _sigma0(w2), w0 + _sigma0(w1))


@helper
def sha256msg2(a: int, b: int) -> int:
    """W16..W19: a's partial sums plus sigma1(W[t-2]), with W14, W15 in b's upper dwords."""
    x3, x2, x1, x0 = _dwords(a)
    w15, w14 = b >> 96 & MASK32, b >> 64 & MASK32
    w16 = (x0 + _sigma1(w14)) & MASK32
    w17 = (x1 + _sigma1(w15)) & MASK32
    w18 = (x2 + _sigma1(w16)) & MASK32
    w19 = (x3 + _sigma1(w17)) & MASK32
    return _join(w19, w18, w17, w16)


@semantics("sha1nexte", "sha1msg1", "sha1msg2", "sha256msg1", "sha256msg2", feature="sha")
def binary(ops, insn, dst, src):
    """SHA1MSG1 xmm1, xmm2/m128 and the others: xmm1 = helper(xmm1, xmm2/m128)."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper(insn.mnemonic, a, b))


@semantics("sha1rnds4", feature="sha")
def sha1rnds4_insn(ops, insn, dst, src, imm):
    """SHA1RNDS4 xmm1, xmm2/m128, imm8."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper("sha1rnds4", a, b, imm.imm))


@semantics("sha256rnds2", feature="sha")
def sha256rnds2_insn(ops, insn, dst, src):
    """SHA256RNDS2 xmm1, xmm2/m128, <XMM0>."""
    a, b, wk = ops.read(dst), X.read(ops, insn, src), ops.reg("xmm0")
    ops.write(dst, ops.helper("sha256rnds2", a, b, wk))
