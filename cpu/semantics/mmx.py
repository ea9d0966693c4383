"""MMX: the 64-bit integer SIMD registers MM0-MM7 and the SSE instructions that use them.

Intel SDM Vol. 1, ch. 9 (MMX technology: 9.5 the MMX registers alias the x87 registers,
9.5.1 and table 9-2 what an MMX instruction does to the x87 state), 10.4.4 and 11.6 (the SSE
and SSE2 instructions on MMX registers) and the Vol. 2 pages.

MMi is the significand of *physical* x87 register R_i (``CpuState.mm<i>``), whatever TOP is.
Every instruction with an MMX register operand sets TOP to 0 and tags every register valid;
writing MMi sets R_i's sign and exponent to all ones.  EMMS (in ``x87``) tags them all empty.

Most MMX instructions are the SSE2 integer instructions with 64-bit operands, so they share
the semantics in ``sse``: :func:`mmx_form` runs those with MM operands through a view of
``ops`` that writes MM registers as MMX does, then applies the x87 side effects.  The forms
whose 64-bit behaviour is not the low half of the 128-bit one (packs, high unpacks, PSHUFB,
PALIGNR, the SSSE3 horizontal operations) and the
instructions only MMX has are defined here.

An MMX instruction first raises #MF for a pending unmasked x87 exception, as a waiting x87
instruction does.

Not modelled: non-temporal hints (MOVNTQ is a plain store), CR0.EM and CR0.TS (#UD, #NM).
"""

from __future__ import annotations

import functools

from cpu.decoder import Kind, Operand
from cpu.exceptions import Vector
from cpu.semantics import SEMANTICS, helper, semantics
from cpu.semantics import sse as S
from cpu.semantics import ssse3 as SSSE3
from cpu.semantics import xmm as X
from cpu.semantics.x87 import pending_x87_exception
from cpu.semantics.xmm import MASK64, MASK128, join, lanes

TOP_BITS = 0x3800
ALL_VALID = 0xFF
EXPONENT_ONES = 0xFFFF


def is_mm(opnd: Operand) -> bool:
    return opnd.kind is Kind.REG and opnd.reg.startswith("mm")


class MmxOps:
    """``ops`` as MMX instructions see it: a write to MMi keeps 64 bits and sets R_i's exponent to ones."""

    def __init__(self, ops) -> None:  # noqa: ANN001 - any backend's ops
        self._ops = ops

    def __getattr__(self, name: str):  # noqa: ANN204 - delegation
        return getattr(self._ops, name)

    def write(self, opnd: Operand, value) -> None:  # noqa: ANN001
        if is_mm(opnd):
            self._ops.write(opnd, self._ops.trunc(value, 64))
            self._ops.set_reg(f"fpr{opnd.reg[2:]}_exp", EXPONENT_ONES)
        else:
            self._ops.write(opnd, value)


def enter_mmx(ops) -> None:  # noqa: ANN001
    """The x87 side effects of an MMX instruction (SDM Vol. 1, table 9-2): TOP = 0, every tag valid."""
    ops.set_reg("fsw", ops.and_(ops.reg("fsw"), 0xFFFF ^ TOP_BITS))
    ops.set_reg("ftw", ALL_VALID)


OWN_FORMS: dict[str, object] = {}
"""mnemonic -> the semantics of its MMX-register form, where it differs from the 128-bit one."""


def mmx_form(fn):  # noqa: ANN001, ANN201
    """Semantics that, given an MM operand (a decode-time fact), run the MMX way."""
    @functools.wraps(fn)
    def run(ops, insn, *operands):
        if not any(is_mm(o) for o in operands):
            return fn(ops, insn, *operands)
        own = OWN_FORMS.get(insn.mnemonic, fn)
        ops.fault_if(pending_x87_exception(ops), Vector.MF)
        own(MmxOps(ops), insn, *operands)
        enter_mmx(ops)
        return None
    run.mmx = True
    return run


# -- forms whose 64-bit behaviour differs ---------------------------------------------------------
def _own(*mnemonics: str):  # noqa: ANN202
    def register(fn):  # noqa: ANN001, ANN202
        for m in mnemonics:
            OWN_FORMS[m] = fn
        return fn
    return register


@_own("packsswb", "packuswb", "packssdw", *SSSE3.HORIZONTAL)
def pack(ops, insn, dst, src):
    """PACKSSWB mm, mm/m64, PHADDW mm, mm/m64, ...: the lanes of dst then src, as the 128-bit helper
    packs (or adds pairs of) one register holding both."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper(insn.mnemonic, ops.or_(a, ops.shl(b, 64, 128)), 0))


@_own("pshufb")
def pshufb(ops, insn, dst, src):
    """PSHUFB mm1, mm2/m64: byte i = byte (src[i] & 7) of dst, or zero when src[i] has its top bit set."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper("pshufb", a, ops.and_(b, 0x8787_8787_8787_8787)))


@_own("palignr")
def palignr(ops, insn, dst, src, imm):
    """PALIGNR mm1, mm2/m64, imm8: (dst:src >> 8 * imm8)[63:0]."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper("palignr", 0, ops.or_(ops.shl(a, 64, 128), b), imm.imm))


_HIGH_UNPACKS = {"punpckhbw": 8, "punpckhwd": 16, "punpckhdq": 32}


@_own(*_HIGH_UNPACKS)
def unpack_high(ops, insn, dst, src):
    """PUNPCKHBW mm, mm/m64: interleave the high 32 bits of each."""
    a, b = ops.read(dst), X.read(ops, insn, src)
    ops.write(dst, ops.helper("unpack_low", ops.shr(a, 32), ops.shr(b, 32), _HIGH_UNPACKS[insn.mnemonic]))


SHARED = (*S.LANE_OPS, "pcmpeqb", "pcmpeqw", "pcmpeqd", "pmaddwd", "psadbw", "pand", "pandn", "por", "pxor",
          "psllw", "pslld", "psllq", "psrlw", "psrld", "psrlq", "psraw", "psrad",
          "punpcklbw", "punpcklwd", "punpckldq", *_HIGH_UNPACKS, "packsswb", "packuswb", "packssdw",
          "pmovmskb", "pextrw", "pinsrw", "movd", "movq",
          "pshufb", "palignr", *SSSE3.HORIZONTAL, "pmaddubsw", "pmulhrsw", "psignb", "psignw", "psignd",
          "pabsb", "pabsw", "pabsd")
"""Mnemonics whose semantics (in ``sse``) also serve their MMX-register forms."""

for _m in SHARED:
    if not getattr(SEMANTICS[_m], "mmx", False):
        SEMANTICS[_m] = mmx_form(SEMANTICS[_m])


# -- instructions only the MMX registers have ----------------------------------------------------
@helper
def pshufw(a: int, order: int) -> int:
    w = lanes(a, 16)
    return join([w[(order >> 2 * i) & 3] for i in range(4)] + [0] * 4, 16)


@semantics("pshufw", feature="mmx")
@mmx_form
def pshufw_insn(ops, insn, dst, src, order):
    """PSHUFW mm1, mm2/m64, imm8: word i of dst = word (imm8 >> 2i) & 3 of src."""
    ops.write(dst, ops.helper("pshufw", X.read(ops, insn, src), order.imm))


@semantics("movq2dq", "movdq2q", "movntq", feature="mmx")
@mmx_form
def move(ops, insn, dst, src):
    """MOVQ2DQ xmm, mm (zero-extended), MOVDQ2Q mm, xmm (the low 64 bits), MOVNTQ m64, mm."""
    ops.write(dst, ops.trunc(ops.read(src), 64))


@helper
def maskmovq(old: int, data: int, mask: int) -> int:
    """The bytes of ``data`` whose mask byte has its top bit set, the others from ``old``."""
    keep = join([0xFF if m >> 7 else 0 for m in lanes(mask & MASK64, 8)], 8)
    return (data & keep) | (old & ~keep & MASK64)


@semantics("maskmovq", feature="mmx")
@mmx_form
def maskmovq_insn(ops, insn, src, mask):
    """MASKMOVQ mm1, mm2: store the bytes of mm1 selected by mm2's byte signs at [RDI]
    (as a read-modify-write of 8 bytes: a fault is reported even where no byte is selected)."""
    address = ops.reg("rdi")
    old = ops.load(address, 64)
    ops.store(address, 64, ops.helper("maskmovq", old, ops.read(src), ops.read(mask)))


@semantics("cvtpi2ps", "cvtpi2pd", "cvtps2pi", "cvttps2pi", "cvtpd2pi", "cvttpd2pi", feature="mmx")
@mmx_form
def convert(ops, insn, dst, src):
    """CVTPI2PS xmm, mm/m64 (two floats into the low half, the high half kept), CVTPI2PD xmm, mm/m64,
    CVT(T)PS2PI mm, xmm/m64 and CVT(T)PD2PI mm, xmm/m128: the packed conversions on two lanes."""
    packed = {"cvtpi2ps": "cvtdq2ps", "cvtpi2pd": "cvtdq2pd", "cvtps2pi": "cvtps2dq", "cvttps2pi": "cvttps2dq",
              "cvtpd2pi": "cvtpd2dq", "cvttpd2pi": "cvttpd2dq"}[insn.mnemonic]
    b = X.read(ops, insn, src)
    converted = ops.helper(packed, b, ops.reg("mxcsr"))
    if insn.mnemonic == "cvtpi2ps":
        flags_and_low = ops.and_(converted, ((1 << 256) - 1) ^ (MASK128 ^ MASK64))
        X.write_float(ops, dst, ops.or_(flags_and_low, ops.and_(ops.read(dst), MASK128 ^ MASK64)))
    elif insn.mnemonic == "cvtpi2pd":
        X.write_float(ops, dst, converted)
    else:
        X.write_float(ops, dst, converted, 64)
