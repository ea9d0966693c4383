"""Stack instructions: PUSH, POP, PUSHF, POPF, ENTER, LEAVE (Intel SDM Vol. 2; Vol. 1, 6.2-6.5).

64-bit mode: the stack pointer is RSP; pushes default to 64 bits, 16 bits
with a 0x66 prefix.  Memory is written before RSP changes, so a faulting
push leaves RSP as it was.  PUSH FS/GS pushes the selector zero-extended;
POP FS/GS loads a selector (``cpu.semantics.privileged``).  POPF changes IF
only when CPL <= IOPL and IOPL only at CPL 0 (SDM Vol. 2B, POPF).
"""

from __future__ import annotations

from cpu.decoder import Kind
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


@semantics("push")
def push(ops, insn, src):
    size = src.size if src.kind is not Kind.IMM and not _segment(src) else (16 if insn.raw[0] == 0x66 else 64)
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
    rbp = ops.reg("rbp")
    value = ops.load(rbp, 64)
    ops.set_reg("rsp", ops.add(rbp, 8, 64))
    ops.set_reg("rbp", value)


@semantics("enter")
def enter(ops, insn, alloc, level):
    """ENTER imm16, imm8 with nesting level 0 or 1 (what compilers emit); deeper levels copy frame pointers."""
    nesting = level.imm & 31
    rsp = ops.reg("rsp")
    rbp = ops.reg("rbp")
    frame = ops.sub(rsp, 8, 64)
    ops.store(frame, 64, rbp)
    cursor = frame
    for i in range(1, nesting):
        cursor = ops.sub(cursor, 8, 64)
        ops.store(cursor, 64, ops.load(ops.sub(rbp, 8 * i, 64), 64))
    if nesting:
        cursor = ops.sub(cursor, 8, 64)
        ops.store(cursor, 64, frame)
    ops.set_reg("rbp", frame)
    ops.set_reg("rsp", ops.sub(cursor, alloc.imm, 64))
