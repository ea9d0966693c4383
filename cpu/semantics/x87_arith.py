"""x87 arithmetic and comparison: FADD ... FDIVR, FCOM/FUCOM/FCOMI/FICOM, FTST, FXAM, FCHS, FABS,
FSQRT, FRNDINT, FSCALE, FXTRACT, FPREM, FPREM1.

Intel SDM Vol. 1, 8.3.5-8.3.8 (basic arithmetic, comparison and classification) and 8.5 (x87
exceptions); the Vol. 2 instruction pages, whose tables of special operands the functions of
``cpu.semantics.extended`` follow.  Results of FADD/FSUB/FMUL/FDIV/FSQRT are rounded to FCW.PC
bits; every result by FCW.RC.  An unmasked IE, DE or ZE leaves the stack untouched; an unmasked
OE or UE delivers the bias-adjusted result (SDM Vol. 1, 8.5.4-5).

Not modelled: the FPU instruction/data pointers.
"""

from __future__ import annotations

from cpu.decoder import Kind
from cpu.flags import Flag, read_rflags, write_rflags
from cpu.semantics import call
from cpu.semantics import extended as X
from cpu.semantics.fpu import C0, C1, C2, C3, SF, Fpu, x87
from cpu.semantics.x87 import F32, F64, I16, I32, ST, load_value, read_operand, st_index

# -- the four operations and their forms -------------------------------------------------------------
_OPERATIONS = ("add", "sub", "subr", "mul", "div", "divr")


def _operation(mnemonic: str) -> tuple[int, bool, bool]:
    """(index in _OPERATIONS, integer memory operand, pops) of an arithmetic mnemonic."""
    integer = mnemonic.startswith("fi")
    name = mnemonic[2:] if integer else mnemonic[1:]
    pop = name.endswith("p")
    return _OPERATIONS.index(name.removesuffix("p")), integer, pop


_ARITH = [f"f{op}{p}" for op in _OPERATIONS for p in ("", "p")] + [f"fi{op}" for op in _OPERATIONS]


@x87(*_ARITH)
def arith(ops, insn, *operands):
    """FADD m32fp/m64fp, FADD ST(0),ST(i), FADD ST(i),ST(0), FADDP ST(i),ST(0), FIADD m16/m32int, ...:
    dst = dst op src, R forms reversed (dst = src op dst)."""
    op, integer, pop = _operation(insn.mnemonic)
    if operands and operands[0].kind is Kind.MEM:
        m = operands[0]
        kind = (I16 if m.size == 16 else I32) if integer else (F32 if m.size == 32 else F64)
        ops.call("fpu_arith", op, kind, ops.address(m), 0, 0, 0)
    elif len(operands) == 2:
        ops.call("fpu_arith", op, ST, 0, st_index(operands[0]), st_index(operands[1]), int(pop))
    elif pop:
        ops.call("fpu_arith", op, ST, 0, st_index(operands[0]) if operands else 1, 0, 1)
    else:
        ops.call("fpu_arith", op, ST, 0, 0, st_index(operands[0]), 0)


def compute(fpu: Fpu, op: int, a: int, b: int) -> tuple[int, int]:
    """a op b with FCW's precision, rounding and unmasked OE/UE."""
    name = _OPERATIONS[op]
    if name.endswith("r"):
        a, b, name = b, a, name[:-1]
    fn = {"add": X.add, "sub": X.sub, "mul": X.mul, "div": X.div}[name]
    return fn(a, b, fpu.precision, fpu.rounding, fpu.unmasked)


@call
def fpu_arith(cpu, op: int, kind: int, address: int, dst: int, src: int, pop: int) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    flags = 0
    if kind != ST:
        b, flags = load_value(kind, read_operand(fpu, kind, address))
        regs: tuple[int, ...] = (0,)
    else:
        regs = (dst, src)
    if fpu.underflow(*regs):
        result, flags = X.INDEFINITE, X.IE | SF
    else:
        if kind != ST:
            a = fpu.get(0)
            if flags & X.IE:                    # an SNaN memory operand: the NaN rules see it unconverted
                b = _signaling(b)
        else:
            a, b = fpu.get(dst), fpu.get(src)
        result, f = compute(fpu, op, a, b)
        flags = _with_load_flags(flags, f, a, b)
    if fpu.signal(flags):
        fpu.set(dst, result)
        if pop:
            fpu.pop()


def _with_load_flags(loaded: int, computed: int, a: int, b: int) -> int:
    """The operation's flags with a memory operand's: its DE (a denormal float) is not reported
    when the other operand is a NaN or unsupported."""
    if loaded & X.DE and any(X.is_nan(X.classify(x)) or X.classify(x) is X.Class.UNSUPPORTED for x in (a, b)):
        loaded &= ~X.DE
    return loaded | computed


def _signaling(quieted: int) -> int:
    """The SNaN a quieted memory operand was (its quiet bit clear again)."""
    return quieted & ~(1 << 62)


# -- comparisons ---------------------------------------------------------------------------------------------
_CODES = {X.LESS: C0, X.EQUAL: C3, X.GREATER: 0, X.UNORDERED: C0 | C2 | C3}
_EFLAGS = {X.LESS: Flag.CF, X.EQUAL: Flag.ZF, X.GREATER: 0, X.UNORDERED: Flag.ZF | Flag.PF | Flag.CF}
FCOM, FUCOM, FCOMI, FUCOMI = range(4)
AGAINST_ZERO = 8
"""fpu_compare's register argument for FTST (call arguments are unsigned 64-bit values)."""
_COMPARE = {"fcom": (FCOM, 0), "fcomp": (FCOM, 1), "fcompp": (FCOM, 2), "fucom": (FUCOM, 0),
            "fucomp": (FUCOM, 1), "fucompp": (FUCOM, 2), "fcomi": (FCOMI, 0), "fcompi": (FCOMI, 1),
            "fucomi": (FUCOMI, 0), "fucompi": (FUCOMI, 1), "ficom": (FCOM, 0), "ficomp": (FCOM, 1)}


@x87(*_COMPARE, "ftst")
def fcom(ops, insn, *operands):
    """FCOM m32fp/m64fp/ST(i), FCOMP, FCOMPP, FUCOM*, FICOM m16/m32int, FCOMI/FCOMIP/FUCOMI/FUCOMIP ST(i),
    FTST (against +0.0): C3 C2 C0 (or ZF PF CF) = 000 >, 001 <, 100 =, 111 unordered."""
    if insn.mnemonic == "ftst":
        ops.call("fpu_compare", FCOM, ST, 0, AGAINST_ZERO, 0)
        return
    mode, pops = _COMPARE[insn.mnemonic]
    if operands and operands[0].kind is Kind.MEM:
        m = operands[0]
        kind = (I16 if m.size == 16 else I32) if insn.mnemonic.startswith("fi") else (F32 if m.size == 32 else F64)
        ops.call("fpu_compare", mode, kind, ops.address(m), 0, pops)
    else:
        ops.call("fpu_compare", mode, ST, 0, st_index(operands[-1]) if operands else 1, pops)


@call
def fpu_compare(cpu, mode: int, kind: int, address: int, i: int, pops: int) -> None:
    """``i`` = AGAINST_ZERO: ST(0) against +0.0 (FTST)."""
    fpu = Fpu(cpu)
    fpu.wait()
    flags = 0
    if kind != ST:
        b, flags = load_value(kind, read_operand(fpu, kind, address))
        if flags & X.IE:
            b = _signaling(b)
        regs: tuple[int, ...] = (0,)
    else:
        regs = (0,) if i == AGAINST_ZERO else (0, i)
    if fpu.underflow(*regs):
        relation, flags = X.UNORDERED, X.IE | SF
    else:
        if kind == ST:
            b = 0 if i == AGAINST_ZERO else fpu.get(i)
        relation, f = X.compare(fpu.get(0), b, signaling=mode in (FCOM, FCOMI))
        flags = _with_load_flags(flags & ~X.IE, f, fpu.get(0), b)
    if mode in (FCOMI, FUCOMI):
        rflags = read_rflags(fpu.state) & ~(Flag.ZF | Flag.PF | Flag.CF | Flag.OF | Flag.SF | Flag.AF)
        write_rflags(fpu.state, rflags | _EFLAGS[relation])
    else:
        fpu.set_condition(_CODES[relation])
    if fpu.signal(flags):                       # the relation is reported even when an exception is unmasked
        for _ in range(pops):
            fpu.pop()


@x87("fxam")
def fxam(ops, insn):
    """FXAM: C3 C2 C0 name ST(0)'s class (empty too), C1 its sign."""
    ops.call("fpu_examine")


_CLASS_CODES = {X.Class.UNSUPPORTED: 0, X.Class.QNAN: C0, X.Class.SNAN: C0, X.Class.NORMAL: C2,
                X.Class.INFINITY: C2 | C0, X.Class.ZERO: C3, X.Class.DENORMAL: C3 | C2}


@call
def fpu_examine(cpu) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    value = fpu.get(0)
    code = C3 | C0 if fpu.empty(0) else _CLASS_CODES[X.classify(value)]
    fpu.set_condition(code | (C1 if value >> 79 & 1 else 0))


# -- one-operand instructions on ST(0) -------------------------------------------------------------------------
def _chs(a: int, rc: int) -> tuple[int, int]:
    return a ^ X.SIGN, 0


def _abs(a: int, rc: int) -> tuple[int, int]:
    return a & ~X.SIGN, 0


_UNARY = {"fchs": _chs, "fabs": _abs, "frndint": X.round_integral}
_UNARY_NAMES = tuple(_UNARY) + ("fsqrt",)


@x87(*_UNARY_NAMES)
def unary(ops, insn):
    """FCHS, FABS (no exceptions but stack underflow), FRNDINT, FSQRT: ST(0) = f(ST(0))."""
    ops.call("fpu_unary", _UNARY_NAMES.index(insn.mnemonic))


@call
def fpu_unary(cpu, index: int) -> None:
    fpu = Fpu(cpu)
    name = _UNARY_NAMES[index]
    if name == "fsqrt":
        fpu.replace_st0(lambda: X.sqrt(fpu.get(0), fpu.precision, fpu.rounding, fpu.unmasked), 0)
    else:
        fpu.replace_st0(lambda: _UNARY[name](fpu.get(0), fpu.rounding), 0)


# -- FSCALE, FXTRACT, FPREM, FPREM1 -------------------------------------------------------------------------------
@x87("fscale")
def fscale(ops, insn):
    """FSCALE: ST(0) = ST(0) * 2**trunc(ST(1))."""
    ops.call("fpu_scale")


@call
def fpu_scale(cpu) -> None:
    fpu = Fpu(cpu)
    fpu.replace_st0(lambda: X.scale(fpu.get(0), fpu.get(1), fpu.rounding, fpu.unmasked), 0, 1)


@x87("fxtract")
def fxtract(ops, insn):
    """FXTRACT: ST(0) = its exponent, then push its significand."""
    ops.call("fpu_extract")


@call
def fpu_extract(cpu) -> None:
    fpu = Fpu(cpu)
    if not fpu.may_replace_and_push():
        return
    exponent, significand, flags = X.extract(fpu.get(0))
    if fpu.signal(flags):
        fpu.set(0, exponent)
        fpu.push(significand)


@x87("fprem", "fprem1")
def fprem(ops, insn):
    """FPREM/FPREM1: ST(0) = partial remainder of ST(0) / ST(1); C2 = 1 while incomplete,
    else C0 C3 C1 = the quotient's bits 2, 1, 0."""
    ops.call("fpu_remainder", int(insn.mnemonic == "fprem1"))


@call
def fpu_remainder(cpu, nearest: int) -> None:
    fpu = Fpu(cpu)
    fpu.wait()
    if fpu.underflow(0, 1):
        result, flags, codes = X.INDEFINITE, X.IE | SF, 0
    else:
        result, flags, codes = X.remainder(fpu.get(0), fpu.get(1), bool(nearest))
    if fpu.signal(flags):
        fpu.set(0, result)
        fpu.set_condition(codes)
