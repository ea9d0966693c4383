"""Reading flags from a cc record known at translation time, shared by the backends that compile blocks.

When the instruction that set the flags is in the same block as the one that
reads them, its cc record (``cpu.flags``) is a tuple of translation-time
facts: the operation and size are constants, the operands are values of the
block.  Then a ``cmp rax, rbx; jl`` needs no flag at all: ``jl`` is one
signed comparison of the two operands, and ZF after an ``add`` is
``r == 0``.  These functions give that shortcut in the ``ops`` vocabulary,
so the Python backend and the LLVM backend emit the same specialised code;
they return None where no shortcut applies and the caller computes the
flags in full.

The equivalences follow the definitions in ``cpu.flags.compute`` (and the SDM
Vol. 1, appendix B, for the conditions); the differential tests check them
against unicorn in every backend.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from cpu.flags import CcOp, Flag

_NEGATED = {"ne": "e", "ae": "b", "a": "be", "ns": "s", "ge": "l", "g": "le"}
_RESULT_FLAGS = frozenset({CcOp.ADD, CcOp.INC, CcOp.DEC, CcOp.SHL, CcOp.SHR, CcOp.SAR, CcOp.ADC, CcOp.SBB})
"""Operations whose ZF and SF come from the result alone, with nothing shortcut for CF or OF."""


def _known(cc: tuple | None) -> TypeGuard[tuple]:
    return cc is not None and isinstance(cc[0], int) and isinstance(cc[1], int)


def fast_flag(ops: Any, bit: int, cc: tuple | None) -> Any:
    """Status flag ``bit`` (a ``cpu.flags.Flag``) from the record ``cc`` without computing the others, or None."""
    if not _known(cc):
        return None
    op, size, a, b, r, c = cc
    plain = op not in (CcOp.FLAGS, CcOp.ROL, CcOp.ROR)
    if bit == Flag.ZF and plain:
        return ops.eq(r, 0)
    if bit == Flag.SF and plain:
        return ops.shr(r, size - 1)
    if bit == Flag.CF:
        if op == CcOp.SUB:
            return ops.ult(a, b)
        if op == CcOp.ADD:
            return ops.ult(r, a)
        if op == CcOp.LOGIC:
            return 0
        if op in (CcOp.INC, CcOp.DEC):
            return c
    if bit == Flag.OF and op == CcOp.LOGIC:
        return 0
    return None


def fast_cond(ops: Any, cc_name: str, cc: tuple | None) -> Any:
    """Condition ``cc_name`` ("e", "l", "be", ...) from the record ``cc`` as 0 or 1, or None."""
    if not _known(cc):
        return None
    op, size, a, b, r, _ = cc
    base = _NEGATED.get(cc_name, cc_name)
    value = None
    if op == CcOp.SUB:
        value = {
            "e": lambda: ops.eq(a, b), "b": lambda: ops.ult(a, b), "be": lambda: ops.xor(ops.ult(b, a), 1),
            "s": lambda: ops.shr(r, size - 1), "l": lambda: ops.slt(a, b, size),
            "le": lambda: ops.xor(ops.slt(b, a, size), 1),
        }.get(base)
    elif op == CcOp.LOGIC:
        value = {
            "e": lambda: ops.eq(r, 0), "b": lambda: 0, "be": lambda: ops.eq(r, 0),
            "s": lambda: ops.shr(r, size - 1), "l": lambda: ops.shr(r, size - 1),
            "le": lambda: ops.or_(ops.eq(r, 0), ops.shr(r, size - 1)),
        }.get(base)
    elif op in _RESULT_FLAGS:
        value = {"e": lambda: ops.eq(r, 0), "s": lambda: ops.shr(r, size - 1)}.get(base)
    if value is None:
        return None
    result = value()
    return result if base == cc_name else ops.xor(result, 1)
