"""Control transfer: JMP, Jcc, CALL, RET, LOOP/LOOPcc, JRCXZ (Intel SDM Vol. 2; Vol. 1, 6.3 and 7.3.8).

Every instruction here ends its block with ``ops.jump``.  Near forms only;
far transfers live in ``system``.
"""

from __future__ import annotations

from cpu.decoder import Kind, Operand
from cpu.flags import CONDITIONS, Flag
from cpu.semantics import semantics


@semantics("jmp")
def jmp(ops, insn, target):
    ops.jump(ops.read(target))


def _jcc(cc):
    def jcc(ops, insn, target):
        ops.jump(ops.select(ops.cond(cc), ops.read(target), insn.next))
    jcc.__name__ = f"j{cc}"
    return jcc


for _cc in CONDITIONS:
    semantics(f"j{_cc}")(_jcc(_cc))


@semantics("call")
def call(ops, insn, target):
    dest = ops.read(target)
    rsp = ops.sub(ops.reg("rsp"), 8, 64)
    ops.store(rsp, 64, insn.next)
    ops.set_reg("rsp", rsp)
    ops.jump(dest)


@semantics("ret")
def ret(ops, insn, *release):
    rsp = ops.reg("rsp")
    dest = ops.load(rsp, 64)
    extra = release[0].imm if release else 0
    ops.set_reg("rsp", ops.add(rsp, 8 + extra, 64))
    ops.jump(dest)


def _counted(ops, insn, target, size, extra=None):
    reg = ops.trunc(ops.reg("rcx"), size)
    count = ops.sub(reg, 1, size)
    if size == 64:
        ops.set_reg("rcx", count)
    else:
        ops.write(Operand(Kind.REG, size, reg="rcx"), count)
    taken = ops.ne(count, 0)
    if extra is not None:
        taken = ops.and_(taken, extra)
    ops.jump(ops.select(taken, ops.read(target), insn.next))


@semantics("loop")
def loop(ops, insn, target):
    _counted(ops, insn, target, _address_size(insn))


@semantics("loope")
def loope(ops, insn, target):
    _counted(ops, insn, target, _address_size(insn), ops.flag(Flag.ZF))


@semantics("loopne")
def loopne(ops, insn, target):
    _counted(ops, insn, target, _address_size(insn), ops.xor(ops.flag(Flag.ZF), 1))


@semantics("jrcxz", "jecxz")
def jrcxz(ops, insn, target):
    size = 32 if insn.mnemonic == "jecxz" else 64
    zero = ops.eq(ops.trunc(ops.reg("rcx"), size), 0)
    ops.jump(ops.select(zero, ops.read(target), insn.next))


def _address_size(insn):
    """LOOP counts with ECX under a 0x67 address-size prefix, else RCX."""
    return 32 if 0x67 in insn.raw[: insn.length - 2] else 64
