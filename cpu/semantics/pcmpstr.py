"""SSE4.2 string and text comparison: PCMPESTRI, PCMPESTRM, PCMPISTRI, PCMPISTRM.

Intel SDM Vol. 2B, section 4.1 ("Imm8 Control Byte Operation for PCMPESTRI /
PCMPESTRM / PCMPISTRI / PCMPISTRM") and the four instruction pages.

The first operand (XMM register) holds string A, the second (XMM register
or an unaligned m128) string B; imm8 says how to read and compare them:

* bits 1:0, the elements: unsigned bytes, unsigned words, signed bytes,
  signed words (16 or 8 of them, ``n``);
* bits 3:2, the aggregation: equal any, ranges, equal each, equal ordered
  (4.1.4), with the SDM's rule for elements past a string's end (table 4-7);
* bits 5:4, the polarity (4.1.5): IntRes2 = IntRes1, its complement, or its
  complement only over B's valid elements;
* bit 6, the output (4.1.6): the most instead of the least significant set
  bit of IntRes2 as the index (n when none), or a byte/word mask instead of
  a bit mask.

Lengths are explicit (PCMPESTRx: |EAX| for A and |EDX| for B, or RAX/RDX with
REX.W, saturated to n) or implicit (PCMPISTRx: up to the first zero
element).  The index goes to ECX, the mask to XMM0.  Flags: CF = IntRes2 is
nonzero, ZF = B is shorter than n, SF = A is shorter than n, OF = bit 0 of
IntRes2; AF and PF are cleared.
"""

from __future__ import annotations

from cpu.flags import CcOp, Flag
from cpu.semantics import helper, semantics
from cpu.semantics import xmm as X
from cpu.semantics.xmm import join, lanes

EQUAL_ANY, RANGES, EQUAL_EACH, EQUAL_ORDERED = 0, 1, 2, 3
_CF, _ZF, _SF, _OF = int(Flag.CF), int(Flag.ZF), int(Flag.SF), int(Flag.OF)


def _elements(v: int, imm: int) -> tuple[int, ...]:
    """The 16 bytes or 8 words of ``v`` as imm8[1:0] reads them."""
    return lanes(v, 16 if imm & 1 else 8, bool(imm & 2))


@helper
def implicit_length(v: int, imm: int) -> int:
    """PCMPISTRx: the index of the first zero element, or n when there is none."""
    e = _elements(v, imm)
    return e.index(0) if 0 in e else len(e)


@helper
def explicit_length(v: int, size: int, imm: int) -> int:
    """PCMPESTRx: the absolute value of the ``size``-bit signed register, saturated to n."""
    signed = v - ((v >> (size - 1) & 1) << size)
    return min(abs(signed), 8 if imm & 1 else 16)


def intres1(a: tuple[int, ...], b: tuple[int, ...], la: int, lb: int, mode: int) -> int:
    """IntRes1 (SDM 4.1.4): bit j says whether B's element j (or the substring there) matches A."""
    n = len(a)
    out = 0
    for j in range(n):
        if mode == EQUAL_ANY:
            hit = j < lb and any(a[i] == b[j] for i in range(la))
        elif mode == RANGES:
            hit = j < lb and any(a[i] <= b[j] <= a[i + 1] for i in range(0, la - 1, 2))
        elif mode == EQUAL_EACH:
            hit = (j >= la and j >= lb) or (j < la and j < lb and a[j] == b[j])
        else:
            # A's element i against B's element j + i: past A's end always matches; past B's end
            # (A not ended) never does.
            hit = all(i >= la or (j + i < lb and a[i] == b[j + i]) for i in range(n - j))
        out |= hit << j
    return out


def intres2(a: int, b: int, la: int, lb: int, imm: int) -> tuple[int, int]:
    """IntRes2 after the polarity (SDM 4.1.5), and n."""
    x, y = _elements(a, imm), _elements(b, imm)
    n = len(x)
    r = intres1(x, y, la, lb, imm >> 2 & 3)
    polarity = imm >> 4 & 3
    if polarity == 1:
        r ^= (1 << n) - 1
    elif polarity == 3:
        r ^= (1 << lb) - 1
    return r, n


def _flags(r: int, la: int, lb: int, n: int) -> int:
    return (_CF if r else 0) | (_ZF if lb < n else 0) | (_SF if la < n else 0) | (_OF if r & 1 else 0)


@helper
def pcmpstri(a: int, b: int, la: int, lb: int, imm: int) -> int:
    """The index (imm8[6]: most or least significant set bit of IntRes2, n if none) and, above bit 32,
    the RFLAGS image."""
    r, n = intres2(a, b, la, lb, imm)
    if not r:
        index = n
    else:
        index = r.bit_length() - 1 if imm & 0x40 else (r & -r).bit_length() - 1
    return index | _flags(r, la, lb, n) << 32


@helper
def pcmpstrm(a: int, b: int, la: int, lb: int, imm: int) -> int:
    """The mask (imm8[6]: each element all ones where IntRes2 is set, else IntRes2 itself) and, above
    bit 128, the RFLAGS image."""
    r, n = intres2(a, b, la, lb, imm)
    if imm & 0x40:
        width = 128 // n
        mask = join([((1 << width) - 1) if r >> i & 1 else 0 for i in range(n)], width)
    else:
        mask = r
    return mask | _flags(r, la, lb, n) << 128


def _rex_w(insn) -> bool:
    """REX.W: the byte before the 0F 3A escape is a REX prefix with W set."""
    at = insn.raw.find(b"\x0f\x3a")
    return at > 0 and insn.raw[at - 1] & 0xF8 == 0x48


def vex_w(insn) -> bool:
    """VEX.W of a VEX-encoded instruction: bit 7 of a three-byte (C4) VEX prefix's third byte; 0 for C5."""
    return insn.raw[0] == 0xC4 and bool(insn.raw[2] & 0x80)


@semantics("pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm", feature="sse4_2")
def pcmpstr(ops, insn, first, second, control):
    """PCMPESTRI xmm1, xmm2/m128, imm8 and its siblings: E = explicit lengths, I = implicit; I = index
    to ECX, M = mask to XMM0."""
    compare(ops, insn, ops.read(first), X.read(ops, insn, second), control.imm, _rex_w(insn))


def compare(ops, insn, a, b, imm: int, wide: bool) -> None:
    """The string compare of ``a`` and ``b`` (legacy and VEX forms); ``wide``: 64-bit explicit lengths."""
    if insn.mnemonic.lstrip("v").startswith("pcmpe"):
        size = 64 if wide else 32
        la = ops.helper("explicit_length", ops.trunc(ops.reg("rax"), size), size, imm)
        lb = ops.helper("explicit_length", ops.trunc(ops.reg("rdx"), size), size, imm)
    else:
        la, lb = ops.helper("implicit_length", a, imm), ops.helper("implicit_length", b, imm)
    if insn.mnemonic.endswith("i"):
        packed = ops.helper("pcmpstri", a, b, la, lb, imm)
        ops.set_reg("rcx", ops.trunc(packed, 32))
        ops.set_flags(CcOp.FLAGS, 64, ops.shr(packed, 32), 0, 0)
    else:
        packed = ops.helper("pcmpstrm", a, b, la, lb, imm)
        ops.set_reg("xmm0", ops.trunc(packed, 128))
        ops.set_flags(CcOp.FLAGS, 64, ops.shr(packed, 128), 0, 0)
