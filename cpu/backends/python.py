"""The Python backend of ``ops``: semantics in, Python source for one block out.

The interpreter does not walk an instruction's micro-ops on every execution.
It runs the semantics of a whole basic block once through :class:`PyOps`,
which writes them out as straight-line Python, compiles that with
``compile()`` and keeps the function.  Each later execution of the block is
one Python call, with guest registers in Python locals (loaded from the
:class:`cpu.state.CpuState` on first use, stored back at the end) and the
status flags as a cc record known at translation time, so a ``cmp`` followed
by ``jl`` becomes a single signed comparison (see ``cpu.flags``).

Faults are precise without cost on the fast path: a :class:`GuestFault` leaves
the block's frame in the traceback; its line number says which instruction
faulted, and :attr:`Translation.snapshots` says which locals held the guest
state there, so the run loop writes exactly that state back.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from cpu.backends import lazyflags
from cpu.decoder import Insn, Kind, Operand
from cpu.flags import ARITH, CcOp, compute, condition
from cpu.ops import Ops, V

MASK = {n: (1 << n) - 1 for n in (1, 8, 16, 32, 64, 128, 256)}
MASK64 = MASK[64]

Cc = tuple  # (op, size, a, b, r, c): each an int or a local name

_FOLD_ENV = {"__builtins__": {"int": int}, "compute": compute, "condition": condition}


@dataclass
class Snapshot:
    """Where the guest state lives at one point of a block."""

    index: int                 # instruction index in the block
    dirty: tuple[tuple[str, str], ...]     # (field, the local holding it) where that is newer than CpuState
    cc: Cc | None              # static cc record, None when CpuState holds it


@dataclass
class Translation:
    """One block's Python source and what the run loop needs to know of it.

    ``source`` is empty for a block loaded from the code cache (``cpu.codecache``), which keeps only the
    compiled code; its ``insns`` are then decoded again from the block's bytes when read.
    """

    source: str
    insns: Sequence[Insn]
    event: str | None
    lines: Sequence[int] = field(default_factory=list)       # first line of each snapshot
    snapshots: Sequence[Snapshot] = field(default_factory=list)

    def snapshot_at(self, line: int) -> Snapshot:
        return self.snapshots[max(0, bisect.bisect_right(self.lines, line) - 1)]


_VECTOR_HALVES = ("xmm", "ymmh")
"""State fields of 128 bits, kept as two u64 fields each: XMM registers and the upper halves of YMM registers."""


def field_load(name: str) -> str:
    if name.startswith(_VECTOR_HALVES):
        return f"s.{name}_lo | (s.{name}_hi << 64)"
    return f"s.{name}"


def field_store(name: str, value: str) -> list[str]:
    if name.startswith(_VECTOR_HALVES):
        return [f"s.{name}_lo = {value} & {MASK64}", f"s.{name}_hi = {value} >> 64"]
    return [f"s.{name} = {value}"]


def is_const(v: V) -> bool:
    return isinstance(v, int)


def signed(v: int, size: int) -> int:
    return v - (1 << size) if v >> (size - 1) else v


_TEMP = re.compile(r"_\d+")
"""A temporary's name.  No word boundaries (which make the search ~50x slower): generated code has no other
``_<digits>`` in it, and a spurious match could only keep a line, never drop one."""
_PURE_ASSIGN = re.compile(r"\s*(_\d+) = (.*)")
_SIDE_EFFECT = re.compile(r"\b(?:ld\d+|C_\w+)\(|\braise\b")


def eliminate_dead_code(body: list[str], starts: list[int], snapshots: list[Snapshot]) -> tuple[list[str], list[int]]:
    """Drop temporaries nothing reads; return the body and each snapshot's first line number.

    Semantics compute freely (the old flags a rotate keeps, a carry nobody
    tests); what survives is what a store, a register, the returned RIP, a
    fault test or the flags record at a faulting instruction needs.  A
    snapshot's cc record counts only where its instruction can fault, since
    only there does the run loop read it back.

    Temporaries are assigned once, before any use, so counting their mentions
    in the whole text once and walking back from the end is enough: a pure
    assignment whose temporary is mentioned only there goes, and so do the
    mentions it made.
    """
    text = "\n".join(body)
    uses = Counter(_TEMP.findall(text))             # definitions included: 1 means nothing reads it
    bounds = [*starts, len(body)]
    offsets = [0, *accumulate(len(line) + 1 for line in body)]
    for i, snap in enumerate(snapshots):
        if snap.cc is not None and _SIDE_EFFECT.search(text, offsets[bounds[i]], offsets[bounds[i + 1]]):
            uses.update(v for v in snap.cc if isinstance(v, str))
    keep = [True] * len(body)
    for i in range(len(body) - 1, -1, -1):
        match = _PURE_ASSIGN.match(body[i])
        if match and uses[match[1]] == 1 and not _SIDE_EFFECT.search(match[2]):
            keep[i] = False
            uses.subtract(_TEMP.findall(match[2]))
    position, kept = [], 0
    for flag in keep:
        position.append(kept)
        kept += flag
    position.append(kept)
    lines = [position[start] + 2 for start in starts]   # line 1 is the def
    return [line for line, flag in zip(body, keep, strict=True) if flag], lines


class PyOps(Ops):
    """Builds the Python source of one block."""

    def __init__(self) -> None:
        self.body: list[str] = []
        self.ntmp = 0
        self.local: dict[str, str] = {}
        self.versions: Counter[str] = Counter()
        self.dirty: set[str] = set()
        self.pending: dict[str, V] = {}
        self.cc: Cc | None = None
        self.cc_changed = False
        self.target: V | None = None
        self.ended = False
        self.event_name: str | None = None
        self.insn: Insn | None = None
        self.indent = "    "
        self.lines: list[int] = []
        self.snapshots: list[Snapshot] = []
        self.index = -1
        self.stored = False

    # -- emission ---------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.body.append(self.indent + line)

    def tmp(self, expr: str) -> str:
        self.ntmp += 1
        name = f"_{self.ntmp}"
        self.emit(f"{name} = {expr}")
        return name

    def _snapshot(self) -> None:
        self.lines.append(len(self.body))       # a body index until finish() turns it into a line number
        self.snapshots.append(Snapshot(self.index, tuple(sorted((n, self.local[n]) for n in self.dirty)), self.cc))

    def begin(self, insn: Insn) -> None:
        self.insn = insn
        self.index += 1
        self._snapshot()
        if self.stored:     # the last instruction may have rewritten this one: leave at this boundary if so
            self.emit("if cpu.code_written: raise CodeWritten()")
            self.stored = False

    def _assign(self, name: str, value: V) -> None:
        """Bind a new local to the field ``name``: each local is assigned once, so a value read earlier
        (kept in a cc record, a jump target, another register's new value) keeps meaning what it meant."""
        self.versions[name] += 1
        version = self.versions[name]
        local = self.local[name] = name if version == 1 else f"{name}_v{version}"
        self.emit(f"{local} = {value}")

    def end(self) -> None:
        for name, value in self.pending.items():
            self._assign(name, value)
            self.dirty.add(name)
        self.pending.clear()

    def finish(self, insns: list[Insn]) -> Translation:
        """Epilogue: write back dirty state and return the next RIP."""
        self.end()
        self._flush()
        target = self.target if self.target is not None else insns[-1].next
        self.emit(f"return {target}")
        body, lines = eliminate_dead_code(self.body, self.lines, self.snapshots)
        source = "def block():\n" + "\n".join(body) + "\n"
        return Translation(source, insns, self.event_name, lines, self.snapshots)

    def _flush(self) -> None:
        for name in sorted(self.dirty):
            for line in field_store(name, self.local[name]):
                self.emit(line)
        self.dirty.clear()
        if self.cc is not None and self.cc_changed:
            op, size, a, b, r, c = self.cc
            self.emit(f"s.cc_op = {op}; s.cc_size = {size}; s.cc_a = {a}; s.cc_b = {b}; s.cc_r = {r}; s.cc_c = {c}")
        self.cc = None
        self.cc_changed = False

    # -- state fields --------------------------------------------------------------
    def reg(self, name: str) -> V:
        if name in self.pending:
            return self.pending[name]
        if name not in self.local:
            self._assign(name, field_load(name))
        return self.local[name]

    def set_reg(self, name: str, value: V) -> None:
        self.pending[name] = value

    def const(self, value: int) -> V:
        return value

    # -- operands --------------------------------------------------------------------
    def read(self, opnd: Operand) -> V:
        if opnd.kind is Kind.IMM:
            return opnd.imm
        if opnd.kind is Kind.MEM:
            return self.load(self.address(opnd), opnd.size)
        full = self.reg(opnd.reg)
        if opnd.high:
            return self._op(f"({full} >> 8) & 0xff", full)
        if opnd.size >= 64 or opnd.reg in ("es", "cs", "ss", "ds", "fs", "gs"):
            return full
        return self.trunc(full, opnd.size)

    def write(self, opnd: Operand, value: V) -> None:
        if opnd.kind is Kind.MEM:
            self.store(self.address(opnd), opnd.size, value)
            return
        name, size = opnd.reg, opnd.size
        if size == 32 or size >= 64:
            self.set_reg(name, value)
            return
        old = self.reg(name)
        if opnd.high:
            self.set_reg(name, self._op(f"({old} & ~0xff00) | ({value} << 8)", old, value))
        else:
            self.set_reg(name, self._op(f"({old} & ~{MASK[size]}) | {value}", old, value))

    def ea(self, opnd: Operand) -> V:
        if opnd.base == "rip":
            assert self.insn is not None, "ea() outside begin()/end()"
            return (self.insn.next + opnd.disp) & MASK64
        parts: list[str] = []
        if opnd.base:
            parts.append(str(self.reg(opnd.base)))
        if opnd.index:
            idx = self.reg(opnd.index)
            parts.append(f"{idx} * {opnd.scale}" if opnd.scale != 1 else str(idx))
        mask = MASK[opnd.asize]
        if not parts:
            return opnd.disp & mask
        if opnd.disp:
            parts.append(str(opnd.disp))
        if len(parts) == 1 and opnd.asize == 64 and not (opnd.index and opnd.scale != 1):
            return parts[0]                         # a bare 64-bit register needs no mask
        return self.tmp(f"({' + '.join(parts)}) & {mask}")

    def address(self, opnd: Operand) -> V:
        ea = self.ea(opnd)
        if opnd.seg:
            return self.add(ea, self.reg(f"{opnd.seg}_base"), 64)
        return ea

    def load(self, address: V, size: int) -> V:
        return self.tmp(f"ld{size}({address})")

    def store(self, address: V, size: int, value: V) -> None:
        self.emit(f"st{size}({address}, {value})")
        self.stored = True

    # -- arithmetic ---------------------------------------------------------------------
    def _op(self, expr: str, *args: V) -> V:
        if args and all(is_const(a) for a in args):
            return eval(expr, _FOLD_ENV)  # noqa: S307 - constant folding of our own expression text
        return self.tmp(expr)

    def add(self, a: V, b: V, size: int) -> V:
        return self._op(f"({a} + {b}) & {MASK[size]}", a, b)

    def sub(self, a: V, b: V, size: int) -> V:
        return self._op(f"({a} - {b}) & {MASK[size]}", a, b)

    def mul(self, a: V, b: V, size: int) -> V:
        return self._op(f"({a} * {b}) & {MASK[size]}", a, b)

    def udiv(self, a: V, b: V) -> V:
        return self._op(f"{a} // {b}", a, b)

    def urem(self, a: V, b: V) -> V:
        return self._op(f"{a} % {b}", a, b)

    def sdiv(self, a: V, b: V, size: int) -> V:
        return self.helper("sdiv", a, b, size)

    def srem(self, a: V, b: V, size: int) -> V:
        return self.helper("srem", a, b, size)

    def and_(self, a: V, b: V) -> V:
        return self._op(f"{a} & {b}", a, b)

    def or_(self, a: V, b: V) -> V:
        return self._op(f"{a} | {b}", a, b)

    def xor(self, a: V, b: V) -> V:
        return self._op(f"{a} ^ {b}", a, b)

    def not_(self, a: V, size: int) -> V:
        return self._op(f"{a} ^ {MASK[size]}", a)

    def neg(self, a: V, size: int) -> V:
        return self._op(f"-{a} & {MASK[size]}", a)

    def shl(self, a: V, n: V, size: int) -> V:
        return self._op(f"({a} << {n}) & {MASK[size]}", a, n)

    def shr(self, a: V, n: V) -> V:
        return self._op(f"{a} >> {n}", a, n)

    def sar(self, a: V, n: V, size: int) -> V:
        top = 1 << (size - 1)
        return self._op(f"((({a} ^ {top}) - {top}) >> {n}) & {MASK[size]}", a, n)

    def sext(self, a: V, from_size: int, to_size: int) -> V:
        top = 1 << (from_size - 1)
        return self._op(f"(({a} ^ {top}) - {top}) & {MASK[to_size]}", a)

    def trunc(self, a: V, size: int) -> V:
        return self._op(f"{a} & {MASK[size]}", a)

    def eq(self, a: V, b: V) -> V:
        return self._op(f"int({a} == {b})", a, b)

    def ne(self, a: V, b: V) -> V:
        return self._op(f"int({a} != {b})", a, b)

    def ult(self, a: V, b: V) -> V:
        return self._op(f"int({a} < {b})", a, b)

    def slt(self, a: V, b: V, size: int) -> V:
        top = 1 << (size - 1)
        return self._op(f"int(({a} ^ {top}) < ({b} ^ {top}))", a, b)

    def select(self, cond: V, a: V, b: V) -> V:
        if is_const(cond):
            return a if cond else b
        return self.tmp(f"{a} if {cond} else {b}")

    def helper(self, name: str, *args: V) -> V:
        return self.tmp(f"H_{name}({', '.join(str(a) for a in args)})")

    # -- flags ------------------------------------------------------------------------
    def _state_cc(self) -> Cc:
        names = [self.tmp(f"s.cc_{f}") for f in ("op", "size", "a", "b", "r", "c")]
        return tuple(names)

    def set_flags(self, op: int, size: int, a: V, b: V, r: V, c: V = 0) -> None:
        self.cc = (int(op), size, a, b, r, c)
        self.cc_changed = True

    def set_flags_if(self, cond: V, op: int, size: int, a: V, b: V, r: V, c: V = 0) -> None:
        if is_const(cond):
            if cond:
                self.set_flags(op, size, a, b, r, c)
            return
        old = self.cc if self.cc is not None else self._state_cc()
        new = (int(op), size, a, b, r, c)
        self.cc = tuple(self.select(cond, n, o) if n != o else n for n, o in zip(new, old, strict=True))
        self.cc_changed = True

    def _arith_flags(self) -> V:
        op, size, a, b, r, c = self.cc if self.cc is not None else self._state_cc()
        if op == CcOp.FLAGS:
            return a
        return self.tmp(f"compute({op}, {size}, {a}, {b}, {r}, {c})")

    def flag(self, bit: int) -> V:
        bit = int(bit)
        if not bit & ARITH:
            rf = self.reg("rflags")
            return self._op(f"({rf} >> {bit.bit_length() - 1}) & 1", rf)
        fast = lazyflags.fast_flag(self, bit, self.cc)
        if fast is not None:
            return fast
        f = self._arith_flags()
        return self._op(f"({f} >> {bit.bit_length() - 1}) & 1", f)

    def cond(self, cc: str) -> V:
        fast = self._fast_cond(cc)
        if fast is not None:
            return fast
        f = self._arith_flags()
        return self._op(f"condition({cc!r}, {f})", f)

    def _fast_cond(self, cc: str) -> V | None:
        if self.cc is None or not is_const(self.cc[0]) or not is_const(self.cc[1]):
            return None
        op, size, a, b, r, _ = self.cc
        top = 1 << (size - 1)
        negate = {"ne": "e", "ae": "b", "a": "be", "ns": "s", "ge": "l", "g": "le"}
        base = negate.get(cc, cc)
        expr = None
        if op == CcOp.SUB:
            expr = {"e": f"{a} == {b}", "b": f"{a} < {b}", "be": f"{a} <= {b}", "s": f"{r} >= {top}",
                    "l": f"({a} ^ {top}) < ({b} ^ {top})", "le": f"({a} ^ {top}) <= ({b} ^ {top})"}.get(base)
        elif op == CcOp.LOGIC:
            expr = {"e": f"{r} == 0", "b": "False", "be": f"{r} == 0", "s": f"{r} >= {top}",
                    "l": f"{r} >= {top}", "le": f"{r} == 0 or {r} >= {top}"}.get(base)
        elif op in (CcOp.ADD, CcOp.INC, CcOp.DEC, CcOp.SHL, CcOp.SHR, CcOp.SAR, CcOp.ADC, CcOp.SBB):
            expr = {"e": f"{r} == 0", "s": f"{r} >= {top}"}.get(base)
        if expr is None:
            return None
        if base != cc:
            expr = f"not ({expr})"
        return self._op(f"int({expr})", a, b, r)

    def rflags(self) -> V:
        rf, f = self.reg("rflags"), self._arith_flags()
        return self._op(f"({rf} & ~{ARITH}) | {f} | 2", rf, f)

    def set_rflags(self, value: V, writable: int) -> None:
        old = self.rflags()
        new = self._op(f"({old} & ~{writable}) | ({value} & {writable})", old, value)
        self.set_reg("rflags", self._op(f"({new} & ~{ARITH}) | 2", new))
        self.set_flags(CcOp.FLAGS, 64, self.and_(new, ARITH), 0, 0, 0)

    # -- control ------------------------------------------------------------------------
    def jump(self, target: V) -> None:
        self.target = target
        self.ended = True

    def fault(self, vector: int, error_code: int | None = None, detail: str = "") -> None:
        self.emit(f"raise GuestFault({int(vector)}, {error_code!r}, None, {detail!r})")
        self.ended = True

    def fault_if(self, cond: V, vector: int, error_code: int | None = None,
                 commit: dict[str, V] | None = None) -> None:
        if is_const(cond) and not cond:
            return
        stores = "".join(f"{line}; " for name, value in (commit or {}).items() for line in self._commit(name, value))
        self.emit(f"if {cond}: {stores}raise GuestFault({int(vector)}, {error_code!r})")
        if is_const(cond):
            self.ended = True

    def _commit(self, name: str, value: V) -> list[str]:
        """Statements that leave ``value`` in the field ``name`` after the run loop's rollback: in the local the
        instruction's snapshot restores it from, else in CpuState, which the rollback does not touch."""
        restored = dict(self.snapshots[-1].dirty)
        if name in restored:
            return [f"{restored[name]} = {value}"]
        return field_store(name, str(value))

    def event(self, name: str) -> None:
        self.event_name = name
        self.ended = True

    def call(self, name: str, *args: V) -> V:
        self.end()
        self._flush()
        self.local.clear()
        # CpuState is now complete: a fault inside the call must roll back nothing, so the
        # progress the call stored before faulting (a REP's RCX, RSI, RDI) survives.
        self._snapshot()
        return self.tmp(f"C_{name}(cpu{''.join(', ' + str(a) for a in args)})")


__all__ = ["PyOps", "Translation"]
