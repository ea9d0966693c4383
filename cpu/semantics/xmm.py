"""XMM operands and the MXCSR register, shared by the SSE family modules.

Intel SDM Vol. 1, 10.2.3 (MXCSR).  The alignment rule comes from the
"Exceptions" section of each instruction page in Vol. 2: a legacy SSE
instruction whose operand is a 128-bit memory location raises #GP(0) when
the address is not a multiple of 16, except the explicitly unaligned moves
(MOVUPS, MOVUPD, MOVDQU).  Scalar (32/64-bit) memory operands need no
alignment.  The SSE3 and SSE4.2 exceptions to the rule are LDDQU and the
string compares (PCMPESTRI and its three siblings), whose pages list no
alignment fault.  Alignment checking through EFLAGS.AC is not modelled.

SIMD floating-point helpers return their result in the low 128 bits and the
MXCSR exception flags they raise above bit 128 (:func:`write_float`).  The
flags go to MXCSR through :func:`raise_flags`, which also raises the SIMD
floating-point exception (SDM Vol. 1, 11.5.1; Vol. 3A, 6.15 "Interrupt 19"):
when a flag the instruction raised is unmasked, it faults with #XM (#UD when
CR4.OSXMMEXCPT is clear) and nothing of the instruction is written but
MXCSR's flags, which the fault commits (``ops.fault_if``'s ``commit``).
Which flags: an unmasked pre-computation exception (IE, DE, ZE) in any lane
stops the computation, and only the pre-computation flags of all lanes are
set; otherwise every flag of every lane is (the masked pre-computation ones
and the post-computation OE, UE, PE).  Helpers compute every lane's masked
response, except that an unmasked UE is reported for a tiny result even
when exact (``sse_float.round_result``).  Semantics call :func:`raise_flags`
before writing their destination, so a memory destination is untouched too.

Lane forms (:data:`LANE_FORMS`): an SSE instruction whose result is a
function of 128-bit source values registers that function once, with
:func:`lane_form`, as ``compute(ops, name, insn, a, b)``; the same call
registers its legacy semantics (``dst = compute(dst, src)``), and
``cpu.semantics.avx`` applies it to each 128-bit half of its VEX form.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from enum import IntFlag
from typing import NamedTuple

from cpu.decoder import Kind, Operand
from cpu.exceptions import Vector
from cpu.semantics import semantics
from cpu.state import CR4_OSXMMEXCPT

MASK32 = (1 << 32) - 1
MASK64 = (1 << 64) - 1
MASK128 = (1 << 128) - 1


_UNSIGNED = {w: struct.Struct(f"<{128 // w}{c}") for w, c in ((8, "B"), (16, "H"), (32, "I"), (64, "Q"))}
_SIGNED = {w: struct.Struct(f"<{128 // w}{c}") for w, c in ((8, "b"), (16, "h"), (32, "i"), (64, "q"))}


def lanes(value: int, width: int, signed: bool = False) -> tuple[int, ...]:
    """The ``128 // width`` lanes of a 128-bit value, lane 0 (the low bits) first."""
    return (_SIGNED if signed else _UNSIGNED)[width].unpack(value.to_bytes(16, "little"))


def join(values, width: int) -> int:
    """Lanes (unsigned, each below ``2**width``) back into one 128-bit value."""
    return int.from_bytes(_UNSIGNED[width].pack(*values), "little")


def repeat(lane: int, width: int) -> int:
    """A 128-bit value with ``lane`` in every ``width``-bit lane."""
    return int.from_bytes(lane.to_bytes(width // 8, "little") * (128 // width), "little")


class Mxcsr(IntFlag):
    """MXCSR bits (SDM Vol. 1, figure 10-3)."""

    IE = 1 << 0      # invalid operation: SNaN operand, inf - inf, 0 * inf, sqrt(-x), bad conversion
    DE = 1 << 1      # a source operand was denormal
    ZE = 1 << 2      # finite nonzero / 0
    OE = 1 << 3      # the rounded result was too large for the format
    UE = 1 << 4      # the result was tiny (and, masked, inexact)
    PE = 1 << 5      # the result was rounded (precision lost)
    DAZ = 1 << 6     # denormal source operands read as zero
    IM = 1 << 7      # exception masks, one per flag above, in the same order
    DM = 1 << 8
    ZM = 1 << 9
    OM = 1 << 10
    UM = 1 << 11
    PM = 1 << 12
    RC = 3 << 13     # rounding control: 0 nearest-even, 1 down, 2 up, 3 toward zero
    FTZ = 1 << 15    # tiny results flush to zero (underflow masked)


MXCSR_MASK = 0xFFFF
"""The MXCSR bits this CPU implements (DAZ included), as FXSAVE reports them; others are reserved."""

RC_SHIFT = 13
ROUND_NEAREST, ROUND_DOWN, ROUND_UP, ROUND_ZERO = 0, 1, 2, 3

UNALIGNED_MOVES = frozenset({"movups", "movupd", "movdqu", "lddqu", "pcmpestri", "pcmpestrm", "pcmpistri",
                             "pcmpistrm"})
"""The only legacy SSE instructions whose 128-bit memory operand may be misaligned."""


def address(ops, insn, opnd: Operand):
    """Linear address of a memory operand; #GP(0) for a misaligned 128-bit legacy SSE access."""
    addr = ops.address(opnd)
    if opnd.size == 128 and insn.mnemonic not in UNALIGNED_MOVES:
        ops.fault_if(ops.ne(ops.and_(addr, 15), 0), Vector.GP, 0)
    return addr


def read(ops, insn, opnd: Operand):
    """An SSE source operand: an XMM register, or memory with the alignment rule applied."""
    if opnd.kind is Kind.MEM:
        return ops.load(address(ops, insn, opnd), opnd.size)
    return ops.read(opnd)


def write(ops, insn, opnd: Operand, value) -> None:
    """An SSE destination: memory (alignment rule applied) or a whole register."""
    if opnd.kind is Kind.MEM:
        ops.store(address(ops, insn, opnd), opnd.size, value)
    else:
        ops.write(opnd, value)


EXCEPTION_FLAGS = 0x3F
"""MXCSR's six exception flags (IE DE ZE OE UE PE); their masks are the same bits shifted left by 7."""
MASK_SHIFT = 7
PRE_COMPUTATION = int(Mxcsr.IE | Mxcsr.DE | Mxcsr.ZE)
"""The exceptions detected before computing (SDM Vol. 1, 11.5.1): unmasked, they stop the instruction."""


def raise_flags(ops, flags, staged: bool = False) -> None:
    """OR an instruction's SIMD floating-point exception flags into MXCSR (they are sticky); fault with #XM
    (#UD without CR4.OSXMMEXCPT) when one of them is unmasked, committing the flags the SDM says are set.
    ``staged``: the helper computed in stages and has already kept what a stage stopped by an unmasked
    exception leaves (``sse4_float._dot``), so the flags go to MXCSR as they are."""
    mxcsr = ops.reg("mxcsr")
    unmasked = ops.and_(flags, ops.xor(ops.and_(ops.shr(mxcsr, MASK_SHIFT), EXCEPTION_FLAGS), EXCEPTION_FLAGS))
    if staged:
        raised = ops.or_(mxcsr, flags)
    else:
        stopped = ops.ne(ops.and_(unmasked, PRE_COMPUTATION), 0)
        raised = ops.or_(mxcsr, ops.select(stopped, ops.and_(flags, PRE_COMPUTATION), flags))
    faults = ops.ne(unmasked, 0)
    enabled = ops.ne(ops.and_(ops.reg("cr4"), CR4_OSXMMEXCPT), 0)
    ops.fault_if(ops.and_(faults, enabled), Vector.XM, commit={"mxcsr": raised})
    ops.fault_if(faults, Vector.UD, commit={"mxcsr": raised})
    ops.set_reg("mxcsr", raised)


def write_float(ops, dst: Operand, packed, size: int = 128, staged: bool = False) -> None:
    """Write the low ``size`` bits of a float helper's result to ``dst``; its flags go to MXCSR first."""
    raise_flags(ops, ops.shr(packed, 128), staged)
    ops.write(dst, ops.trunc(packed, size))


# -- lane forms: one computation, a legacy and a VEX frame ---------------------------------
BINARY, UNARY, SHIFT = "binary", "unary", "shift"
"""What a lane form's ``a`` and ``b`` are.  BINARY: the two sources (legacy: the destination and the
source; VEX: the second and third operands).  UNARY: ``b`` is the one source (PSHUFD, CVTDQ2PS).
SHIFT: ``a`` is the source, ``b`` the count for every half (an imm8, or the low 64 bits of xmm/m128)."""


class LaneForm(NamedTuple):
    compute: Callable[..., object]   # (ops, legacy mnemonic, insn, a, b) -> a 128-bit value
    kind: str
    flags: bool                      # the result carries MXCSR exception flags above bit 128


LANE_FORMS: dict[str, LaneForm] = {}


def lane_form(*mnemonics: str, kind: str = BINARY, flags: bool = False, shared: tuple[str, ...] = ()) -> Callable:
    """Register ``compute`` as the lane form of each mnemonic, and its legacy SSE semantics.

    ``shared``: more mnemonics of this form whose legacy semantics another module owns (CMPSD: the string
    instruction's module, which calls :func:`legacy` for the XMM form).
    """
    def register(compute: Callable) -> Callable:
        for m in (*mnemonics, *shared):
            LANE_FORMS[m] = LaneForm(compute, kind, flags)
        semantics(*mnemonics)(legacy)
        return compute
    return register


def legacy(ops, insn, dst, src, *imm):
    """A legacy SSE lane form: ``dst = compute(dst, src)`` (UNARY: ``compute(src)``; SHIFT: by the count)."""
    form = LANE_FORMS[insn.mnemonic]
    if form.kind == SHIFT:
        b = shift_count(ops, insn, src)
    else:
        b = read(ops, insn, src)
    a = 0 if form.kind == UNARY else ops.read(dst)
    result = form.compute(ops, insn.mnemonic, insn, a, b)
    if form.flags:
        write_float(ops, dst, result)
    else:
        ops.write(dst, result)


def shift_count(ops, insn, count: Operand):
    """A shift's count: an imm8, or the low 64 bits of an XMM register or m128."""
    return count.imm if count.kind is Kind.IMM else ops.trunc(read(ops, insn, count), 64)
