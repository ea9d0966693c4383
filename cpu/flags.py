"""RFLAGS, computed lazily (Intel SDM Vol. 1, 3.4.3 and appendix A, "EFLAGS cross-reference").

An arithmetic instruction does not compute its six status flags.  It records
what it did, a *cc record* ``(op, size, a, b, r, c)``: the operation, the
operand size in bits, both inputs, the result and one extra input (carry-in,
the old CF, or the old flags, depending on ``op``).  The flags are computed
from the record only when something reads them, and most of the time only the
one condition a ``jcc`` needs.  QEMU's TCG calls the same idea ``CC_OP``.

Undefined flags: what this module computes for them is a choice, not the
architecture; :data:`UNDEFINED` lists, per mnemonic, the flags the SDM leaves
undefined so tests mask exactly those.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Flag(IntFlag):
    """RFLAGS bits (SDM Vol. 1, figure 3-8)."""

    CF = 1 << 0      # carry out of / borrow into the most significant bit
    RESERVED1 = 1 << 1  # always reads as 1
    PF = 1 << 2      # even parity of the low byte of the result
    AF = 1 << 4      # carry out of bit 3 (BCD arithmetic)
    ZF = 1 << 6      # result is zero
    SF = 1 << 7      # most significant bit of the result
    TF = 1 << 8      # single-step trap
    IF = 1 << 9      # maskable interrupts enabled
    DF = 1 << 10     # string instructions walk down
    OF = 1 << 11     # signed overflow
    IOPL = 3 << 12
    NT = 1 << 14
    RF = 1 << 16
    VM = 1 << 17
    AC = 1 << 18
    VIF = 1 << 19
    VIP = 1 << 20
    ID = 1 << 21     # CPUID is available (software can toggle it)


ARITH = int(Flag.CF | Flag.PF | Flag.AF | Flag.ZF | Flag.SF | Flag.OF)
"""The six status flags that the cc record stands for."""

USER_WRITABLE = int(Flag.CF | Flag.PF | Flag.AF | Flag.ZF | Flag.SF | Flag.OF | Flag.DF | Flag.TF | Flag.AC | Flag.ID
                    | Flag.NT | Flag.RF)
"""Bits POPF may change at CPL 3 (SDM Vol. 2B, POPF operation); IF and IOPL are kept."""


class CcOp(IntEnum):
    """How to compute the status flags from a cc record."""

    FLAGS = 0   # a holds the six flags already computed
    ADD = 1
    ADC = 2     # c: carry in
    SUB = 3     # also CMP and NEG (a = 0)
    SBB = 4     # c: borrow in
    LOGIC = 5   # AND, OR, XOR, TEST: CF = OF = 0
    INC = 6     # c: the old CF, which INC preserves
    DEC = 7     # c: the old CF
    SHL = 8     # a: value, b: count (1..63)
    SHR = 9
    SAR = 10
    MUL = 11    # c: 1 when the high half is significant (CF = OF = c)
    ROL = 12    # c: the old flags (only CF and OF change)
    ROR = 13


_KEEP_ON_ROTATE = ARITH & ~int(Flag.CF | Flag.OF)
"""Rotates change only CF and OF (a plain int: IntFlag arithmetic is slow on this path)."""

_PARITY = bytes(1 if bin(i).count("1") % 2 == 0 else 0 for i in range(256))
"""PF for each low byte: 1 when the number of set bits is even."""


def compute(op: int, size: int, a: int, b: int, r: int, c: int) -> int:
    """The six status flags of a cc record, as RFLAGS bits."""
    if op == CcOp.FLAGS:
        return a & ARITH
    top = size - 1
    mask = (1 << size) - 1
    flags = (_PARITY[r & 0xFF] << 2) | ((r == 0) << 6) | (((r >> top) & 1) << 7)
    if op == CcOp.ADD or op == CcOp.ADC:
        carry = r < a or (op == CcOp.ADC and c and r == a)
        flags |= carry | ((a ^ b ^ r) & 0x10) | ((((a ^ r) & (b ^ r)) >> top) & 1) << 11
    elif op == CcOp.SUB or op == CcOp.SBB:
        borrow = a < b + (c if op == CcOp.SBB else 0)
        flags |= borrow | ((a ^ b ^ r) & 0x10) | ((((a ^ b) & (a ^ r)) >> top) & 1) << 11
    elif op == CcOp.INC:
        flags |= (c & 1) | ((a ^ 1 ^ r) & 0x10) | ((r == 1 << top) << 11)
    elif op == CcOp.DEC:
        flags |= (c & 1) | ((a ^ 1 ^ r) & 0x10) | ((r == mask >> 1) << 11)
    elif op == CcOp.SHL:
        cf = (a >> (size - b)) & 1 if b <= size else 0
        flags |= cf | ((((r >> top) & 1) ^ cf) << 11)
    elif op == CcOp.SHR:
        flags |= ((a >> (b - 1)) & 1) | (((a >> top) & 1) << 11)
    elif op == CcOp.SAR:
        signed = a - (1 << size) if a >> top else a
        flags |= (signed >> (b - 1)) & 1
    elif op == CcOp.MUL:
        flags |= (c & 1) | ((c & 1) << 11)
    elif op == CcOp.ROL:
        cf = r & 1
        flags = (c & _KEEP_ON_ROTATE) | cf | ((((r >> top) & 1) ^ cf) << 11)
    elif op == CcOp.ROR:
        msb = (r >> top) & 1
        flags = (c & _KEEP_ON_ROTATE) | msb | ((msb ^ ((r >> (top - 1)) & 1)) << 11)
    return flags


def read_rflags(state) -> int:  # noqa: ANN001 - CpuState, kept import-free
    """The architectural RFLAGS value of a CpuState (lazy record materialised)."""
    arith = compute(state.cc_op, state.cc_size or 64, state.cc_a, state.cc_b, state.cc_r, state.cc_c)
    return (state.rflags & ~ARITH) | arith | Flag.RESERVED1


def write_rflags(state, value: int) -> None:  # noqa: ANN001
    """Set RFLAGS on a CpuState: the status flags go into a FLAGS cc record."""
    state.rflags = (value & ~ARITH) | Flag.RESERVED1
    state.cc_op, state.cc_size, state.cc_a = CcOp.FLAGS, 64, value & ARITH
    state.cc_b = state.cc_r = state.cc_c = 0


# Condition codes (SDM Vol. 1, appendix B): name -> predicate over RFLAGS bits.
CONDITIONS = ("o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g")


def condition(cc: str, f: int) -> int:
    """Evaluate condition ``cc`` ("e", "l", "be", ...) over RFLAGS bits ``f``: 1 or 0."""
    cf, zf, sf, of, pf = f & 1, (f >> 6) & 1, (f >> 7) & 1, (f >> 11) & 1, (f >> 2) & 1
    value = {
        "o": of, "b": cf, "e": zf, "be": cf | zf, "s": sf, "p": pf, "l": sf ^ of, "le": zf | (sf ^ of),
    }
    if cc in value:
        return value[cc]
    return 1 - value[_NEGATED[cc]]


_NEGATED = {"no": "o", "ae": "b", "ne": "e", "a": "be", "ns": "s", "np": "p", "ge": "l", "g": "le"}

# Flags the SDM leaves undefined, by mnemonic; tests mask these (see tests/semantics).
UNDEFINED: dict[str, int] = {
    **{m: int(Flag.AF) for m in ("and", "or", "xor", "test")},
    **{m: int(Flag.SF | Flag.ZF | Flag.AF | Flag.PF) for m in ("mul", "imul")},
    **{m: int(Flag.CF | Flag.OF | Flag.SF | Flag.ZF | Flag.AF | Flag.PF) for m in ("div", "idiv")},
    **{m: int(Flag.OF | Flag.SF | Flag.AF | Flag.PF) for m in ("bt", "bts", "btr", "btc")},
    **{m: int(Flag.CF | Flag.OF | Flag.SF | Flag.AF | Flag.PF) for m in ("bsf", "bsr")},
    **{m: int(Flag.OF | Flag.SF | Flag.AF | Flag.PF) for m in ("tzcnt", "lzcnt")},
    **{m: int(Flag.AF | Flag.PF) for m in ("andn", "blsi", "blsmsk", "blsr", "bzhi")},
    "bextr": int(Flag.AF | Flag.SF | Flag.PF),
    "popcnt": 0,
}
"""Always-undefined flags.  Shifts and rotates add count-dependent ones: see
``tests/semantics`` (OF is defined only for 1-bit counts, AF never)."""
