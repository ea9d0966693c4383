"""Data movement: MOV and its extending forms, LEA, XCHG, BSWAP, MOVBE, XLATB, CMOVcc, SETcc,
CBW..CQO, and the no-operation family (Intel SDM Vol. 2; Vol. 1, 7.3.1).

MOVBE (the ``movbe`` feature) loads or stores with the bytes reversed; its 16-bit
register form keeps bits 63:16.  XLATB loads AL from [RBX + AL] (EBX + AL under
a 0x67 prefix), in the segment of a FS or GS override.

None of these change flags.  A 32-bit register write zero-extends to 64 bits
(``ops.write`` applies the rule), which is why ``cmovcc r32`` writes its
destination even when the condition is false.
"""

from __future__ import annotations

from cpu.decoder import Kind, Operand, legacy_prefixes
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


def byte_swap(ops, value, size):
    """``value``'s ``size`` // 8 bytes in reverse order."""
    out = ops.const(0)
    for i in range(size // 8):
        byte = ops.and_(ops.shr(value, 8 * i), 0xFF)
        out = ops.or_(out, ops.shl(byte, size - 8 - 8 * i, size))
    return out


@semantics("bswap")
def bswap(ops, insn, dst):
    ops.write(dst, byte_swap(ops, ops.read(dst), dst.size))


@semantics("movbe", feature="movbe")
def movbe(ops, insn, dst, src):
    ops.write(dst, byte_swap(ops, ops.read(src), dst.size))


@semantics("xlatb")
def xlatb(ops, insn):
    prefixes = legacy_prefixes(insn.raw)
    asize = 32 if 0x67 in prefixes else 64
    rbx = ops.reg("rbx") if asize == 64 else ops.trunc(ops.reg("rbx"), 32)
    address = ops.add(rbx, ops.and_(ops.reg("rax"), 0xFF), asize)
    override = next((p for p in reversed(prefixes) if p in (0x64, 0x65)), None)
    if override is not None:        # the last FS or GS prefix; CS, DS, ES and SS prefixes mean nothing in 64-bit mode
        address = ops.add(address, ops.reg("fs_base" if override == 0x64 else "gs_base"), 64)
    al = Operand(Kind.REG, 8, reg="rax")
    ops.write(al, ops.load(address, 8))


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
