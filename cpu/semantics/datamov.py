"""Data movement: MOV and its extending forms, LEA, XCHG, BSWAP, CMOVcc, SETcc,
CBW..CQO, and the no-operation family (Intel SDM Vol. 2; Vol. 1, 7.3.1).

None of these change flags.  A 32-bit register write zero-extends to 64 bits
(``ops.write`` applies the rule), which is why ``cmovcc r32`` writes its
destination even when the condition is false.
"""

from __future__ import annotations

from cpu.decoder import Kind, Operand
from cpu.flags import CONDITIONS
from cpu.semantics import privileged, semantics
from cpu.state import SEGMENTS


@semantics("mov", "movabs")
def mov(ops, insn, dst, src):
    """Control/debug registers and segment loads are system instructions (``cpu.semantics.privileged``)."""
    if privileged.is_system_register(dst) or privileged.is_system_register(src):
        privileged.mov_system(ops, insn, dst, src)
        return
    if dst.kind is Kind.REG and dst.reg in SEGMENTS:
        privileged.mov_to_segment(ops, insn, dst, src)
        return
    value = ops.read(src)
    if src.kind is Kind.REG and src.size == 16 and dst.size > 16:   # mov r32/r64, Sreg zero-extends
        value = ops.trunc(value, 16)
    ops.write(dst, value)


@semantics("movzx")
def movzx(ops, insn, dst, src):
    ops.write(dst, ops.read(src))


@semantics("movsx", "movsxd")
def movsx(ops, insn, dst, src):
    ops.write(dst, ops.sext(ops.read(src), src.size, dst.size))


@semantics("lea")
def lea(ops, insn, dst, src):
    ops.write(dst, ops.trunc(ops.ea(src), dst.size))


@semantics("xchg")
def xchg(ops, insn, first, second):
    a, b = ops.read(first), ops.read(second)
    if first.kind is Kind.MEM:
        ops.write(first, b)
        ops.write(second, a)
    else:
        ops.write(second, a)
        ops.write(first, b)


@semantics("bswap")
def bswap(ops, insn, dst):
    value = ops.read(dst)
    out = ops.const(0)
    for i in range(dst.size // 8):
        byte = ops.and_(ops.shr(value, 8 * i), 0xFF)
        out = ops.or_(out, ops.shl(byte, dst.size - 8 - 8 * i, dst.size))
    ops.write(dst, out)


def _cmov(cc):
    def cmov(ops, insn, dst, src):
        value = ops.read(src)
        old = ops.read(dst)
        ops.write(dst, ops.select(ops.cond(cc), value, old))
    cmov.__name__ = f"cmov{cc}"
    return cmov


def _setcc(cc):
    def setcc(ops, insn, dst):
        ops.write(dst, ops.cond(cc))
    setcc.__name__ = f"set{cc}"
    return setcc


for _cc in CONDITIONS:
    semantics(f"cmov{_cc}")(_cmov(_cc))
    semantics(f"set{_cc}")(_setcc(_cc))


@semantics("cbw", "cwde", "cdqe")
def convert_accumulator(ops, insn):
    """AX = sign-extend AL; EAX = sext AX; RAX = sext EAX."""
    size = insn.opsize
    half = size // 2
    dst = Operand(Kind.REG, size, reg="rax")
    ops.write(dst, ops.sext(ops.trunc(ops.reg("rax"), half), half, size))


@semantics("cwd", "cdq", "cqo")
def convert_to_double(ops, insn):
    """DX:AX / EDX:EAX / RDX:RAX = sign-extend the accumulator."""
    size = insn.opsize
    acc = ops.trunc(ops.reg("rax"), size)
    high = ops.sar(acc, size - 1, size)
    ops.write(Operand(Kind.REG, size, reg="rdx"), high)


@semantics("nop", "endbr64", "endbr32", "pause", "lfence", "mfence", "sfence", "prefetchw", "prefetcht0",
           "prefetcht1", "prefetcht2", "prefetchnta", "prefetch", "clflush", "clflushopt")
def nop(ops, insn, *operands):
    """No architectural effect (fences and prefetches included: one CPU, no caches modelled)."""
