"""The status flags of a cc record (``cpu.flags``) computed in LLVM IR: what :func:`cpu.flags.compute` and
:func:`cpu.flags.condition` compute in Python, for the LLVM backend and the runtime module's
``@emu_cc_flags`` (``cpu.engine``); the differential tests hold them equal.
"""

from __future__ import annotations

from cpu.backends.llvm_abi import MASK64
from cpu.backends.llvm_ir import Builder, V, Val
from cpu.flags import ARITH, CcOp, Flag

KEEP_ON_ROTATE = ARITH & ~int(Flag.CF | Flag.OF)


def cc_flags(b: Builder, op: int, size: V, a: V, x: V, r: V, c: V) -> V:
    """The six status flags of a cc record with a known ``op`` (``size`` may be a value), as RFLAGS bits.

    The same computation as :func:`cpu.flags.compute`, in IR; the differential tests hold them equal.
    """
    if op == CcOp.FLAGS:
        return b.binop("and", a, ARITH, 64)
    top = b.binop("sub", size, 1, 64) if isinstance(size, Val) else size - 1
    low = b.binop("and", r, 0xFF, 64)
    pf = b.binop("xor", b.binop("and", b.intrinsic("ctpop", low, 64), 1, 64), 1, 64)
    zf = b.bool64(b.icmp("eq", r, 0, 64))
    sf = b.binop("and", b.binop("lshr", r, top, 64), 1, 64)
    flags = b.binop("or", b.binop("or", b.binop("shl", pf, 2, 64), b.binop("shl", zf, 6, 64), 64),
                    b.binop("shl", sf, 7, 64), 64)
    af = b.binop("and", b.binop("xor", b.binop("xor", a, x, 64), r, 64), 0x10, 64)

    def bit(v: V, n: V) -> V:
        return b.binop("and", b.binop("lshr", v, n, 64), 1, 64)

    def ovf(v: V) -> V:
        return b.binop("shl", bit(v, top), 11, 64)

    if op in (CcOp.ADD, CcOp.ADC):
        carry = b.bool64(b.icmp("ult", r, a, 64))
        if op == CcOp.ADC:
            same = b.bool64(b.icmp("eq", r, a, 64))
            carry = b.binop("or", carry, b.binop("and", b.binop("and", c, 1, 64), same, 64), 64)
        of = ovf(b.binop("and", b.binop("xor", a, r, 64), b.binop("xor", x, r, 64), 64))
        extra = b.binop("or", b.binop("or", carry, af, 64), of, 64)
    elif op in (CcOp.SUB, CcOp.SBB):
        borrow = b.bool64(b.icmp("ult", a, x, 64))
        if op == CcOp.SBB:           # a < x + c, with c 0 or 1 and no 65-bit sum
            same = b.bool64(b.icmp("eq", a, x, 64))
            borrow = b.binop("or", borrow, b.binop("and", b.binop("and", c, 1, 64), same, 64), 64)
        of = ovf(b.binop("and", b.binop("xor", a, x, 64), b.binop("xor", a, r, 64), 64))
        extra = b.binop("or", b.binop("or", borrow, af, 64), of, 64)
    elif op in (CcOp.INC, CcOp.DEC):
        af1 = b.binop("and", b.binop("xor", b.binop("xor", a, 1, 64), r, 64), 0x10, 64)
        if op == CcOp.INC:
            edge = b.binop("shl", 1, top, 64)
        else:
            edge = b.binop("lshr", MASK64, b.binop("sub", 64, top, 64), 64)
        of = b.binop("shl", b.bool64(b.icmp("eq", r, edge, 64)), 11, 64)
        extra = b.binop("or", b.binop("or", b.binop("and", c, 1, 64), af1, 64), of, 64)
    elif op == CcOp.SHL:
        # cf = (a >> (size - x)) & 1 when x <= size, else 0; x is 1..63
        gap = b.binop("sub", size, x, 64)
        inside = b.icmp("ule", x, size, 64)
        cf = b.select(inside, bit(a, b.select(inside, gap, 0)), 0)
        of = b.binop("shl", b.binop("xor", bit(r, top), cf, 64), 11, 64)
        extra = b.binop("or", cf, of, 64)
    elif op == CcOp.SHR:
        extra = b.binop("or", bit(a, b.binop("sub", x, 1, 64)), ovf(a), 64)
    elif op == CcOp.SAR:
        sign_shift = b.binop("sub", 64, size, 64)
        signed = b.binop("ashr", b.binop("shl", a, sign_shift, 64), sign_shift, 64)
        extra = bit(signed, b.binop("sub", x, 1, 64))
    elif op == CcOp.MUL:
        c1 = b.binop("and", c, 1, 64)
        extra = b.binop("or", c1, b.binop("shl", c1, 11, 64), 64)
    elif op == CcOp.ROL:
        cf = b.binop("and", r, 1, 64)
        of = b.binop("shl", b.binop("xor", bit(r, top), cf, 64), 11, 64)
        return b.binop("or", b.binop("and", c, KEEP_ON_ROTATE, 64), b.binop("or", cf, of, 64), 64)
    elif op == CcOp.ROR:
        msb = bit(r, top)
        below = bit(r, b.binop("sub", top, 1, 64))
        of = b.binop("shl", b.binop("xor", msb, below, 64), 11, 64)
        return b.binop("or", b.binop("and", c, KEEP_ON_ROTATE, 64), b.binop("or", msb, of, 64), 64)
    else:
        extra = 0
    return b.binop("or", flags, extra, 64)


def condition_of(b: Builder, cc: str, f: V) -> V:
    """Condition ``cc`` over RFLAGS bits ``f``, 0 or 1 (as :func:`cpu.flags.condition`)."""
    def bit(n: int) -> V:
        return b.binop("and", b.binop("lshr", f, n, 64), 1, 64)

    negated = {"no": "o", "ae": "b", "ne": "e", "a": "be", "ns": "s", "np": "p", "ge": "l", "g": "le"}
    base = negated.get(cc, cc)
    value = {
        "o": lambda: bit(11), "b": lambda: bit(0), "e": lambda: bit(6), "s": lambda: bit(7), "p": lambda: bit(2),
        "be": lambda: b.binop("or", bit(0), bit(6), 64),
        "l": lambda: b.binop("xor", bit(7), bit(11), 64),
        "le": lambda: b.binop("or", bit(6), b.binop("xor", bit(7), bit(11), 64), 64),
    }[base]()
    return value if base == cc else b.binop("xor", value, 1, 64)
