"""Binary arithmetic: ADD, ADC, ADCX, ADOX, SUB, SBB, CMP, INC, DEC, NEG, XADD, CMPXCHG, CMPXCHG16B.

Intel SDM Vol. 2 (instruction pages of each mnemonic) and Vol. 1, 7.3.2.  ADCX and ADOX (ADX) add
with the carry in and out of CF or OF only, leaving every other flag as it was.
Flags follow ``cpu.flags``: each instruction records a cc record.  LOCK is
accepted and has no further effect: one CPU executes each instruction whole.
"""

from __future__ import annotations

from cpu.decoder import Kind, Operand
from cpu.exceptions import Vector
from cpu.flags import CcOp, Flag
from cpu.semantics import semantics


@semantics("add")
def add(ops, insn, dst, src):
    a, b = ops.read(dst), ops.read(src)
    r = ops.add(a, b, dst.size)
    ops.write(dst, r)
    ops.set_flags(CcOp.ADD, dst.size, a, b, r)


@semantics("adc")
def adc(ops, insn, dst, src):
    a, b, c = ops.read(dst), ops.read(src), ops.flag(Flag.CF)
    r = ops.add(ops.add(a, b, dst.size), c, dst.size)
    ops.write(dst, r)
    ops.set_flags(CcOp.ADC, dst.size, a, b, r, c)


def _add_with(ops, dst, src, flag):
    """ADCX (``flag`` CF) and ADOX (OF): dst += src + flag; the carry out goes to that flag alone."""
    a, b, c = ops.read(dst), ops.read(src), ops.flag(flag)
    r = ops.add(ops.add(a, b, dst.size), c, dst.size)
    carry = ops.or_(ops.ult(r, a), ops.and_(c, ops.eq(r, a)))
    ops.write(dst, r)
    ops.set_rflags(ops.shl(carry, int(flag).bit_length() - 1, 64), int(flag))


@semantics("adcx", feature="adx")
def adcx(ops, insn, dst, src):
    _add_with(ops, dst, src, Flag.CF)


@semantics("adox", feature="adx")
def adox(ops, insn, dst, src):
    _add_with(ops, dst, src, Flag.OF)


@semantics("sub")
def sub(ops, insn, dst, src):
    a, b = ops.read(dst), ops.read(src)
    r = ops.sub(a, b, dst.size)
    ops.write(dst, r)
    ops.set_flags(CcOp.SUB, dst.size, a, b, r)


@semantics("sbb")
def sbb(ops, insn, dst, src):
    a, b, c = ops.read(dst), ops.read(src), ops.flag(Flag.CF)
    r = ops.sub(ops.sub(a, b, dst.size), c, dst.size)
    ops.write(dst, r)
    ops.set_flags(CcOp.SBB, dst.size, a, b, r, c)


@semantics("cmp")
def cmp(ops, insn, first, second):
    a, b = ops.read(first), ops.read(second)
    ops.set_flags(CcOp.SUB, first.size, a, b, ops.sub(a, b, first.size))


@semantics("inc")
def inc(ops, insn, dst):
    a, cf = ops.read(dst), ops.flag(Flag.CF)
    r = ops.add(a, 1, dst.size)
    ops.write(dst, r)
    ops.set_flags(CcOp.INC, dst.size, a, 1, r, cf)


@semantics("dec")
def dec(ops, insn, dst):
    a, cf = ops.read(dst), ops.flag(Flag.CF)
    r = ops.sub(a, 1, dst.size)
    ops.write(dst, r)
    ops.set_flags(CcOp.DEC, dst.size, a, 1, r, cf)


@semantics("neg")
def neg(ops, insn, dst):
    b = ops.read(dst)
    r = ops.neg(b, dst.size)
    ops.write(dst, r)
    ops.set_flags(CcOp.SUB, dst.size, 0, b, r)


@semantics("xadd")
def xadd(ops, insn, dst, src):
    a, b = ops.read(dst), ops.read(src)
    r = ops.add(a, b, dst.size)
    ops.write(src, a)
    ops.write(dst, r)
    ops.set_flags(CcOp.ADD, dst.size, a, b, r)


@semantics("cmpxchg")
def cmpxchg(ops, insn, dst, src):
    """Compare the accumulator with DST; equal: DST = SRC, else accumulator = DST.

    A memory destination is always written (with its old value when unequal),
    as the SDM's operation section says the processor does.  Registers follow
    the hardware, not a literal reading of that pseudo-code: a 32-bit write
    zero-extends, so RAX is written only on failure and a register
    destination only on success (a failing ``cmpxchg ebx, ecx`` keeps RBX's
    upper half).  QEMU's current translator agrees; unicorn 2.1 (older QEMU) does not.
    """
    size = dst.size
    acc_reg = _accumulator(dst)
    acc, old, new = ops.read(acc_reg), ops.read(dst), ops.read(src)
    equal = ops.eq(acc, old)
    if size == 32:
        ops.set_reg("rax", ops.select(equal, ops.reg("rax"), old))
    else:
        ops.write(acc_reg, ops.select(equal, acc, old))
    if dst.kind is Kind.REG and size == 32:
        ops.set_reg(dst.reg, ops.select(equal, new, ops.reg(dst.reg)))
    else:
        ops.write(dst, ops.select(equal, new, old))
    ops.set_flags(CcOp.SUB, size, acc, old, ops.sub(acc, old, size))


@semantics("cmpxchg16b", feature="cx16")
@semantics("cmpxchg8b")
def cmpxchg_double(ops, insn, dst):
    """CMPXCHG16B m128 / CMPXCHG8B m64: compare RDX:RAX with memory; only ZF changes.

    CMPXCHG16B raises #GP(0) when its operand is not 16-byte aligned.
    """
    half = dst.size // 2
    lo_mask = (1 << half) - 1
    if dst.size == 128:
        ops.fault_if(ops.ne(ops.and_(ops.address(dst), 15), 0), Vector.GP, 0)
    old = ops.read(dst)
    rax, rdx, rbx, rcx = (ops.reg(r) for r in ("rax", "rdx", "rbx", "rcx"))
    expected = ops.or_(ops.shl(ops.trunc(rdx, half), half, dst.size), ops.trunc(rax, half))
    new = ops.or_(ops.shl(ops.trunc(rcx, half), half, dst.size), ops.trunc(rbx, half))
    equal = ops.eq(old, expected)
    ops.write(dst, ops.select(equal, new, old))
    old_lo, old_hi = ops.and_(old, lo_mask), ops.shr(old, half)
    ops.set_reg("rax", ops.select(equal, rax, old_lo))
    ops.set_reg("rdx", ops.select(equal, rdx, old_hi))
    flags = ops.rflags()
    zf = int(Flag.ZF)
    ops.set_rflags(ops.or_(ops.and_(flags, ~zf & 0xFFFFFFFFFFFFFFFF), ops.shl(equal, 6, 64)), zf)


def _accumulator(dst: Operand) -> Operand:
    return Operand(Kind.REG, dst.size, reg="rax")
