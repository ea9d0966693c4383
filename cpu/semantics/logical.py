"""Logical instructions: AND, OR, XOR, NOT, TEST (Intel SDM Vol. 2; Vol. 1, 7.3.4).

AND, OR, XOR and TEST clear CF and OF and set SF, ZF, PF from the result;
AF is undefined (we leave it 0).  NOT changes no flags.
"""

from __future__ import annotations

from cpu.decoder import Kind
from cpu.flags import CcOp
from cpu.semantics import semantics


def _logic(ops, dst, r, write=True):
    if write:
        ops.write(dst, r)
    ops.set_flags(CcOp.LOGIC, dst.size, 0, 0, r)


@semantics("and")
def and_(ops, insn, dst, src):
    _logic(ops, dst, ops.and_(ops.read(dst), ops.read(src)))


@semantics("or")
def or_(ops, insn, dst, src):
    _logic(ops, dst, ops.or_(ops.read(dst), ops.read(src)))


@semantics("xor")
def xor(ops, insn, dst, src):
    if dst == src and dst.kind is Kind.REG:          # the zeroing idiom: no dependency on dst
        _logic(ops, dst, ops.const(0))
        return
    _logic(ops, dst, ops.xor(ops.read(dst), ops.read(src)))


@semantics("test")
def test(ops, insn, first, second):
    _logic(ops, first, ops.and_(ops.read(first), ops.read(second)), write=False)


@semantics("not")
def not_(ops, insn, dst):
    ops.write(dst, ops.not_(ops.read(dst), dst.size))
