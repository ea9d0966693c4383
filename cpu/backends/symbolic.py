"""The symbolic backend of ``ops``: an instruction's semantics as readable micro-ops.

``emu explain`` and the debugger's ``explain`` command run the same semantic
function the interpreter compiles, but through :class:`SymbolicOps`, which
prints one line per micro-op instead of computing anything::

    t1 = rax
    t2 = rbx
    t3 = t2 + 0x8
    t4 = load64 [t3]
    t5 = add64 t1, t4
    rax <- t5
    flags <- ADD64 a=t1 b=t4 r=t5

Because nothing here can compute a guest value, a semantic that branched on
one in Python would fail here: this backend is also the check that the
semantics stay backend-neutral (``tests/test_explain.py``).
"""

from __future__ import annotations

from cpu.decoder import Insn, Kind, Operand, reg_name
from cpu.exceptions import Vector
from cpu.flags import CcOp, Flag
from cpu.ops import Ops, V
from cpu.semantics import load_all


def _fmt(v: V) -> str:
    if isinstance(v, int):
        return hex(v) if v > 9 or v < 0 else str(v)
    return str(v)


class SymbolicValue(str):
    """A named micro-op result; using it as a Python bool is an error in the semantics."""

    def __bool__(self) -> bool:
        raise TypeError("semantics branched on a guest value; use ops.select")


class SymbolicOps(Ops):
    def __init__(self, insn: Insn) -> None:
        self.insn = insn
        self.lines: list[str] = []
        self.n = 0
        self.ended = False

    def _emit(self, text: str) -> None:
        self.lines.append(text)

    def _val(self, text: str) -> V:
        self.n += 1
        name = SymbolicValue(f"t{self.n}")
        self._emit(f"{name} = {text}")
        return name

    # -- state ---------------------------------------------------------------
    def reg(self, name: str) -> V:
        return self._val(name)

    def set_reg(self, name: str, value: V) -> None:
        self._emit(f"{name} <- {_fmt(value)}")

    def const(self, value: int) -> V:
        return value

    def read(self, opnd: Operand) -> V:
        if opnd.kind is Kind.IMM:
            return opnd.imm
        if opnd.kind is Kind.MEM:
            return self.load(self.address(opnd), opnd.size)
        return self._val(reg_name(opnd.reg, opnd.size, opnd.high))

    def write(self, opnd: Operand, value: V) -> None:
        if opnd.kind is Kind.MEM:
            self.store(self.address(opnd), opnd.size, value)
        else:
            rule = "  (zero-extends to 64 bits)" if opnd.size == 32 else ""
            self._emit(f"{reg_name(opnd.reg, opnd.size, opnd.high)} <- {_fmt(value)}{rule}")

    def ea(self, opnd: Operand) -> V:
        if opnd.base == "rip":
            return (self.insn.next + opnd.disp) & ((1 << 64) - 1)
        terms = []
        if opnd.base:
            terms.append(_fmt(self.reg(opnd.base)))
        if opnd.index:
            idx = _fmt(self.reg(opnd.index))
            terms.append(f"{idx}*{opnd.scale}" if opnd.scale != 1 else idx)
        if opnd.disp or not terms:
            terms.append(_fmt(opnd.disp))
        if opnd.asize == 32:
            return self._val(f"trunc32 ({' + '.join(terms)})")
        return terms[0] if len(terms) == 1 and not isinstance(terms[0], int) else self._val(" + ".join(terms))

    def address(self, opnd: Operand) -> V:
        ea = self.ea(opnd)
        if opnd.seg:
            return self._val(f"{_fmt(ea)} + {opnd.seg}_base")
        return ea

    def load(self, address: V, size: int) -> V:
        return self._val(f"load{size} [{_fmt(address)}]")

    def store(self, address: V, size: int, value: V) -> None:
        self._emit(f"store{size} [{_fmt(address)}] <- {_fmt(value)}")

    # -- arithmetic ----------------------------------------------------------
    def _bin(self, name: str, a: V, b: V, size: int | None = None) -> V:
        suffix = str(size) if size else ""
        return self._val(f"{name}{suffix} {_fmt(a)}, {_fmt(b)}")

    def add(self, a: V, b: V, size: int) -> V:
        return self._bin("add", a, b, size)

    def sub(self, a: V, b: V, size: int) -> V:
        return self._bin("sub", a, b, size)

    def mul(self, a: V, b: V, size: int) -> V:
        return self._bin("mul", a, b, size)

    def udiv(self, a: V, b: V) -> V:
        return self._bin("udiv", a, b)

    def urem(self, a: V, b: V) -> V:
        return self._bin("urem", a, b)

    def sdiv(self, a: V, b: V, size: int) -> V:
        return self._bin("sdiv", a, b, size)

    def srem(self, a: V, b: V, size: int) -> V:
        return self._bin("srem", a, b, size)

    def and_(self, a: V, b: V) -> V:
        return self._bin("and", a, b)

    def or_(self, a: V, b: V) -> V:
        return self._bin("or", a, b)

    def xor(self, a: V, b: V) -> V:
        return self._bin("xor", a, b)

    def not_(self, a: V, size: int) -> V:
        return self._val(f"not{size} {_fmt(a)}")

    def neg(self, a: V, size: int) -> V:
        return self._val(f"neg{size} {_fmt(a)}")

    def shl(self, a: V, n: V, size: int) -> V:
        return self._bin("shl", a, n, size)

    def shr(self, a: V, n: V) -> V:
        return self._bin("shr", a, n)

    def sar(self, a: V, n: V, size: int) -> V:
        return self._bin("sar", a, n, size)

    def sext(self, a: V, from_size: int, to_size: int) -> V:
        return self._val(f"sext{from_size}to{to_size} {_fmt(a)}")

    def trunc(self, a: V, size: int) -> V:
        if isinstance(a, int):
            return a & ((1 << size) - 1)
        return self._val(f"trunc{size} {_fmt(a)}")

    def eq(self, a: V, b: V) -> V:
        return self._bin("eq", a, b)

    def ne(self, a: V, b: V) -> V:
        return self._bin("ne", a, b)

    def ult(self, a: V, b: V) -> V:
        return self._bin("ult", a, b)

    def slt(self, a: V, b: V, size: int) -> V:
        return self._bin("slt", a, b, size)

    def select(self, cond: V, a: V, b: V) -> V:
        return self._val(f"{_fmt(cond)} ? {_fmt(a)} : {_fmt(b)}")

    def helper(self, name: str, *args: V) -> V:
        return self._val(f"{name}({', '.join(_fmt(a) for a in args)})")

    # -- flags ---------------------------------------------------------------
    def set_flags(self, op: int, size: int, a: V, b: V, r: V, c: V = 0) -> None:
        extra = f" c={_fmt(c)}" if not (isinstance(c, int) and c == 0) else ""
        name = CcOp(op).name
        if op == CcOp.FLAGS:
            self._emit(f"flags <- {_fmt(a)}")
        else:
            self._emit(f"flags <- {name}{size} a={_fmt(a)} b={_fmt(b)} r={_fmt(r)}{extra}")

    def set_flags_if(self, cond: V, op: int, size: int, a: V, b: V, r: V, c: V = 0) -> None:
        self._emit(f"if {_fmt(cond)}:")
        self.set_flags(op, size, a, b, r, c)
        self.lines[-1] = "    " + self.lines[-1]

    def flag(self, bit: int) -> V:
        return self._val(Flag(bit).name or f"rflags bit {bit:#x}")

    def cond(self, cc: str) -> V:
        return self._val(f"cond.{cc}")

    def rflags(self) -> V:
        return self._val("rflags")

    def set_rflags(self, value: V, writable: int) -> None:
        self._emit(f"rflags <- {_fmt(value)}  (bits {writable:#x})")

    # -- control -------------------------------------------------------------
    def jump(self, target: V) -> None:
        self._emit(f"rip <- {_fmt(target)}")
        self.ended = True

    def fault(self, vector: int, error_code: int | None = None, detail: str = "") -> None:
        self._emit(f"raise #{Vector(vector).name}" + (f" ({detail})" if detail else ""))
        self.ended = True

    def fault_if(self, cond: V, vector: int, error_code: int | None = None,
                 commit: dict[str, V] | None = None) -> None:
        kept = "".join(f", keeping {name} <- {_fmt(value)}" for name, value in (commit or {}).items())
        self._emit(f"if {_fmt(cond)}: raise #{Vector(vector).name}{kept}")

    def event(self, name: str) -> None:
        self._emit(f"event {name}  (the machine takes over)")

    def call(self, name: str, *args: V) -> V:
        return self._val(f"call {name}({', '.join(['cpu', *(_fmt(a) for a in args)])})")


def explain(insn: Insn) -> str:
    """The micro-ops of one decoded instruction, as text."""
    semantic = load_all().get(insn.mnemonic)
    header = f"{insn.text}    ({insn.raw.hex(' ')})"
    if semantic is None:
        return f"{header}\n  raise #UD  (no semantics for {insn.mnemonic})"
    ops = SymbolicOps(insn)
    semantic(ops, insn, *insn.operands)
    if not ops.ended:
        ops.jump(insn.next)
    return header + "\n" + "\n".join("  " + line for line in ops.lines)
