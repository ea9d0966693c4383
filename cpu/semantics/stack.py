"""Stack instructions: PUSH, POP, PUSHF, POPF, ENTER, LEAVE (Intel SDM Vol. 2; Vol. 1, 6.2-6.5).

64-bit mode: the stack pointer is RSP; pushes default to 64 bits, 16 bits
with a 0x66 prefix (there is no 32-bit form).  Memory is written before RSP
changes, so a faulting push leaves RSP as it was.  With a 0x66 prefix LEAVE
pops BP and ENTER pushes 2-byte frame pointers and sets BP, bits 63:16 of RBP
kept (as this host's CPU does; the SDM's pseudocode for a 64-bit stack reads as
if all of RBP took the frame address, and unicorn does that).  The stack
addresses themselves are always 64-bit (RSP, RBP).  PUSH FS/GS pushes the selector zero-extended;
POP FS/GS loads a selector (``cpu.semantics.privileged``).  POPF changes IF
only when CPL <= IOPL and IOPL only at CPL 0 (SDM Vol. 2B, POPF).
"""

from __future__ import annotations

from cpu.decoder import Kind, Operand, operand_size_16
from cpu.flags import USER_WRITABLE, Flag
from cpu.semantics import privileged, semantics
from cpu.state import SEGMENTS


def push_value(ops, value, size=64):
    rsp = ops.sub(ops.reg("rsp"), size // 8, 64)
    ops.store(rsp, size, value)
    ops.set_reg("rsp", rsp)


def pop_value(ops, size=64):
    rsp = ops.reg("rsp")
    value = ops.load(rsp, size)
    ops.set_reg("rsp", ops.add(rsp, size // 8, 64))
    return value


def _segment(opnd) -> bool:
    return opnd.kind is Kind.REG and opnd.reg in SEGMENTS


def _size(insn) -> int:
    """The operand size of PUSH imm/Sreg, ENTER and LEAVE: 64, or 16 with a 0x66 prefix."""
    return 16 if operand_size_16(insn.raw) else 64


def _low(ops, value, size):
    return value if size == 64 else ops.trunc(value, size)


@semantics("push")
def push(ops, insn, src):
    size = src.size if src.kind is not Kind.IMM and not _segment(src) else _size(insn)
    value = ops.read(src)
    if src.kind is Kind.IMM and src.size < size:
        value = ops.sext(value, src.size, size)
    push_value(ops, value, size)


@semantics("pop")
def pop(ops, insn, dst):
    if _segment(dst):
        privileged.pop_segment(ops, insn, dst)
        return
    rsp = ops.reg("rsp")
    value = ops.load(rsp, dst.size)
    # RSP is incremented first: a memory destination's address sees the new RSP,
    # and `pop rsp` leaves the popped value in RSP.
    ops.set_reg("rsp", ops.add(rsp, dst.size // 8, 64))
    ops.write(dst, value)


@semantics("pushfq", "pushf")
def pushf(ops, insn):
    flags = ops.rflags()
    # RF and VM are never pushed as set (SDM Vol. 2B, PUSHF).
    push_value(ops, ops.and_(flags, 0xFCFFFF), insn.opsize)


POPF_ANY_CPL = int(Flag.IF | Flag.IOPL) | USER_WRITABLE
"""Every bit POPF may write at some privilege; which of IF and IOPL it writes depends on CPL and IOPL."""


@semantics("popfq", "popf")
def popf(ops, insn):
    value = pop_value(ops, insn.opsize)
    size_mask = (1 << insn.opsize) - 1
    cpl = ops.reg("cpl")
    iopl = ops.and_(ops.shr(ops.reg("rflags"), 12), 3)
    if_writable = ops.select(ops.ult(iopl, cpl), 0, int(Flag.IF))
    iopl_writable = ops.select(ops.eq(cpl, 0), int(Flag.IOPL), 0)
    mask = ops.and_(ops.or_(ops.or_(if_writable, iopl_writable), USER_WRITABLE), size_mask)
    old = ops.rflags()
    merged = ops.or_(ops.and_(old, ops.not_(mask, 64)), ops.and_(value, mask))
    ops.set_rflags(merged, POPF_ANY_CPL & size_mask)


@semantics("leave")
def leave(ops, insn):
    size = _size(insn)
    rbp = ops.reg("rbp")
    value = ops.load(rbp, size)
    ops.set_reg("rsp", ops.add(rbp, size // 8, 64))
    ops.write(Operand(Kind.REG, size, reg="rbp"), value)


@semantics("enter")
def enter(ops, insn, alloc, level):
    """ENTER imm16, imm8: push the frame pointer, copy ``level - 1`` outer frame pointers from [RBP - i * size],
    push the new frame's address (for ``level`` >= 1), point RBP at the frame and allocate ``imm16`` bytes."""
    size = _size(insn)
    step = size // 8
    nesting = level.imm & 31
    rsp = ops.reg("rsp")
    rbp = ops.reg("rbp")
    frame = ops.sub(rsp, step, 64)
    ops.store(frame, size, _low(ops, rbp, size))
    cursor = frame
    for i in range(1, nesting):
        cursor = ops.sub(cursor, step, 64)
        ops.store(cursor, size, ops.load(ops.sub(rbp, step * i, 64), size))
    if nesting:
        cursor = ops.sub(cursor, step, 64)
        ops.store(cursor, size, _low(ops, frame, size))
    ops.write(Operand(Kind.REG, size, reg="rbp"), _low(ops, frame, size))
    ops.set_reg("rsp", ops.sub(cursor, alloc.imm & 0xFFFF, 64))
