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
    dirty: tuple[tuple[str, V], ...]       # (field, the local or constant holding it) where newer than CpuState
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


def eliminate_dead_code(body: list[str], starts: list[int], snapshots: list[Snapshot], leaves: list[bool],
                        effects: set[str]) -> tuple[str, list[int]]:
    """Drop temporaries nothing reads; return the body's text and each snapshot's first line number.

    ``leaves`` says for each snapshot whether its lines can leave the block (a load, a store, a call, a
    raise); ``effects`` names the temporaries whose assignment must run even when nothing reads them (a
    load that may fault, a call).  Semantics compute freely (the old flags a rotate keeps, a carry nobody
    tests); what survives is what a store, a register, the returned RIP, a fault test or a snapshot needs.
    A snapshot's cc record and the temporaries it names as registers' values count only where its
    instruction can leave the block, since only there does the run loop read it back.

    Temporaries are assigned once, before any use, so counting their mentions
    in the whole text once and walking back from the end is enough: a pure
    assignment whose temporary is mentioned only there goes, and so do the
    mentions it made.
    """
    uses = Counter(_TEMP.findall("\n".join(body)))     # definitions included: 1 means nothing reads it
    held: set[V] = set()                                # what the snapshots the run loop may read name
    for snap, leave in zip(snapshots, leaves, strict=True):
        if leave:
            held.update(v for _, v in snap.dirty)
            if snap.cc is not None:
                held.update(snap.cc)
    kept: list[str] = []
    position = [0] * len(body)
    for i in range(len(body) - 1, -1, -1):
        line = body[i]
        if line[0] == "_":
            name, _, expr = line.partition(" = ")
            if uses[name] == 1 and name not in effects and name not in held:
                uses.subtract(_TEMP.findall(expr))
                position[i] = len(kept)
                continue
        kept.append(line)
        position[i] = len(kept)         # lines kept from i to the end
    total = len(kept)
    kept.reverse()
    lines = [total - (position[start] if start < len(body) else 0) + 2 for start in starts]   # line 1 is the def
    return "    " + "\n    ".join(kept), lines


_OWN_LOCAL = frozenset({"mxcsr"})
"""Fields ``fault_if(commit=...)`` may write (``_commit``): their local is theirs alone, so assigning it on the
raising line changes nothing else the rollback reads."""


class PyOps(Ops):
    """Builds the Python source of one block."""

    def __init__(self) -> None:
        self.body: list[str] = []
        self.ntmp = 0
        self.local: dict[str, V] = {}
        self.versions: dict[str, int] = {}
        self.dirty: dict[str, V] = {}
        """Fields newer than CpuState, and what holds each (in the order first written: a snapshot keeps it)."""
        self.pending: dict[str, V] = {}
        self.cc: Cc | None = None
        self.cc_changed = False
        self.target: V | None = None
        self.ended = False
        self.event_name: str | None = None
        self.insn: Insn | None = None
        self.leaves: list[bool] = []
        """Per snapshot: can its lines leave the block (a load, a store, a call, a raise)?"""
        self.effects: set[str] = set()
        """Temporaries whose assignment has an effect besides its value (a load, a call)."""
        self.known: dict[str, str] = {}
        """Pure expression -> the temporary that already holds its value (common subexpressions)."""
        self.bools: dict[str, str] = {}
        """Temporary ``int(<comparison>)`` -> the comparison, which a condition reads as it is."""
        self.width: dict[V, int] = {}
        """Temporary or local -> a bit count its value is known to fit in."""
        self.masked: dict[str, tuple[V, int]] = {}
        """Temporary ``x & MASK[n]`` -> (x, n): a narrower mask of it masks ``x`` instead."""
        self.lines: list[int] = []
        self.snapshots: list[Snapshot] = []
        self.index = -1
        self.stored = False

    # -- emission ---------------------------------------------------------------
    def emit(self, line: str) -> None:
        self.body.append(line)

    def tmp(self, expr: str) -> str:
        self.ntmp += 1
        name = f"_{self.ntmp}"
        self.emit(f"{name} = {expr}")
        return name

    def _snapshot(self) -> None:
        self.lines.append(len(self.body))       # a body index until finish() turns it into a line number
        self.snapshots.append(Snapshot(self.index, tuple(self.dirty.items()), self.cc))
        self.leaves.append(False)

    def begin(self, insn: Insn) -> None:
        self.insn = insn
        self.index += 1
        self._snapshot()
        if self.stored:     # the last instruction may have rewritten this one: leave at this boundary if so
            self.emit("if cpu.code_written: raise CodeWritten()")
            self.leaves[-1] = True
            self.stored = False

    def _assign(self, name: str, value: V) -> None:
        """Bind a new local to the field ``name``: each local is assigned once, so a value read earlier
        (kept in a cc record, a jump target, another register's new value) keeps meaning what it meant."""
        version = self.versions[name] = self.versions.get(name, 0) + 1
        local = self.local[name] = name if version == 1 else f"{name}_v{version}"
        self.emit(f"{local} = {value}")

    def end(self) -> None:
        """Commit the instruction's register writes: a register now names the value written to it (a constant,
        a temporary, another register's local), with no copy; a field a fault may commit to (``_OWN_LOCAL``)
        gets a local of its own."""
        for name, value in self.pending.items():
            if name in _OWN_LOCAL or (isinstance(value, str) and not value.isidentifier()):
                self._assign(name, value)
            else:
                self.local[name] = value
            self.dirty[name] = self.local[name]
        self.pending.clear()

    def finish(self, insns: list[Insn]) -> Translation:
        """Epilogue: write back dirty state and return the next RIP."""
        self.end()
        self._flush()
        target = self.target if self.target is not None else insns[-1].next
        self.emit(f"return {target}")
        body, lines = eliminate_dead_code(self.body, self.lines, self.snapshots, self.leaves, self.effects)
        source = "def block():\n" + body + "\n"
        return Translation(source, insns, self.event_name, lines, self.snapshots)

    def _flush(self) -> None:
        for name in sorted(self.dirty):
            for line in field_store(name, str(self.dirty[name])):
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
            return self.load(self._access(opnd), opnd.size)
        full = self.reg(opnd.reg)
        if opnd.high:
            return self._op(f"({full} >> 8) & 0xff", full)
        if opnd.size >= 64 or opnd.reg in ("es", "cs", "ss", "ds", "fs", "gs"):
            return full
        return self.trunc(full, opnd.size)

    def write(self, opnd: Operand, value: V) -> None:
        if opnd.kind is Kind.MEM:
            self.store(self._access(opnd), opnd.size, value)
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

    def _effective(self, opnd: Operand) -> tuple[V, tuple[V, V]]:
        """The effective address of ``opnd``: a constant or a local, or the text of the expression that computes
        it and the values that expression reads."""
        if opnd.base == "rip":
            assert self.insn is not None, "ea() outside begin()/end()"
            return (self.insn.next + opnd.disp) & MASK64, (0, 0)
        base = self.reg(opnd.base) if opnd.base else 0
        idx = self.reg(opnd.index) if opnd.index else 0
        mask = MASK[opnd.asize]
        if isinstance(base, int) and isinstance(idx, int):
            return (base + idx * opnd.scale + opnd.disp) & mask, (0, 0)
        parts: list[str] = []
        if opnd.base:
            parts.append(str(base))
        if opnd.index:
            parts.append(f"{idx} * {opnd.scale}" if opnd.scale != 1 else str(idx))
        if opnd.disp:
            parts.append(str(opnd.disp))
        if len(parts) == 1 and opnd.asize == 64 and not (opnd.index and opnd.scale != 1):
            return parts[0], (0, 0)                 # a bare 64-bit register needs no mask
        return f"({' + '.join(parts)}) & {mask}", (base, idx)

    def ea(self, opnd: Operand) -> V:
        value, reads = self._effective(opnd)
        if reads == (0, 0):
            return value
        return self._op(str(value), *reads, width=opnd.asize)

    def _access(self, opnd: Operand) -> V:
        """The address a load or store of the operand itself uses: ``address``, except that an effective
        address is written into the access (``ld64((rbx + 8) & ...)``) unless a temporary already holds it."""
        if opnd.seg:
            return self.address(opnd)
        value, reads = self._effective(opnd)
        if reads == (0, 0):
            return value
        return self.known.get(str(value), value)

    def address(self, opnd: Operand) -> V:
        ea = self.ea(opnd)
        if opnd.seg:
            return self.add(ea, self.reg(f"{opnd.seg}_base"), 64)
        return ea

    def load(self, address: V, size: int) -> V:
        name = self.tmp(f"ld{size}({address})")
        self.effects.add(name)
        self.leaves[-1] = True
        self.width[name] = size
        return name

    def store(self, address: V, size: int, value: V) -> None:
        self.emit(f"st{size}({address}, {value})")
        self.leaves[-1] = True
        self.stored = True

    # -- arithmetic ---------------------------------------------------------------------
    def _op(self, expr: str, *args: V, width: int = 0) -> V:
        """The value of the pure expression ``expr`` over ``args``: folded when they are constants, else the
        temporary that already holds it or a new one (which fits in ``width`` bits when that is not 0)."""
        if args and str not in map(type, args):
            return eval(expr, _FOLD_ENV)  # noqa: S307 - constant folding of our own expression text
        name = self.known.get(expr)
        if name is None:
            name = self.known[expr] = self.tmp(expr)
            if width:
                self.width[name] = width
        return name

    def _bool(self, test: str, *args: V) -> V:
        """0 or 1 from the Python comparison ``test``; a condition reads the comparison itself (``_test``)."""
        name = self._op(f"int({test})", *args, width=1)
        if isinstance(name, str):
            self.bools[name] = test
        return name

    def _test(self, cond: V) -> str:
        """Python text true when ``cond`` is not 0."""
        return self.bools.get(cond, str(cond)) if isinstance(cond, str) else str(cond)

    def add(self, a: V, b: V, size: int) -> V:
        return self._op(f"({a} + {b}) & {MASK[size]}", a, b, width=size)

    def sub(self, a: V, b: V, size: int) -> V:
        return self._op(f"({a} - {b}) & {MASK[size]}", a, b, width=size)

    def mul(self, a: V, b: V, size: int) -> V:
        return self._op(f"({a} * {b}) & {MASK[size]}", a, b, width=size)

    def udiv(self, a: V, b: V) -> V:
        return self._op(f"{a} // {b}", a, b)

    def urem(self, a: V, b: V) -> V:
        return self._op(f"{a} % {b}", a, b)

    def sdiv(self, a: V, b: V, size: int) -> V:
        return self.helper("sdiv", a, b, size)

    def srem(self, a: V, b: V, size: int) -> V:
        return self.helper("srem", a, b, size)

    def and_(self, a: V, b: V) -> V:
        if isinstance(a, int) and isinstance(b, str):
            a, b = b, a
        if isinstance(b, int) and b >= 0:
            width = b.bit_length()
            if isinstance(a, str) and self.width.get(a, 1 << 16) <= width and b == MASK.get(width):
                return a                            # the mask keeps every bit ``a`` can have
            return self._op(f"{a} & {b}", a, b, width=width)
        return a if a == b else self._op(f"{a} & {b}", a, b)

    def _fits(self, a: V, b: V) -> int:
        """Bits both values fit in, when both are known (0 when not)."""
        wa = a.bit_length() if isinstance(a, int) and a >= 0 else self.width.get(a, 0)
        wb = b.bit_length() if isinstance(b, int) and b >= 0 else self.width.get(b, 0)
        return max(wa, wb) if wa and wb else 0

    def or_(self, a: V, b: V) -> V:
        if b == 0 or a == b:
            return a
        return b if a == 0 else self._op(f"{a} | {b}", a, b, width=self._fits(a, b))

    def xor(self, a: V, b: V) -> V:
        if b == 0:
            return a
        return b if a == 0 else self._op(f"{a} ^ {b}", a, b, width=self._fits(a, b))

    def not_(self, a: V, size: int) -> V:
        return self._op(f"{a} ^ {MASK[size]}", a)

    def neg(self, a: V, size: int) -> V:
        return self._op(f"-{a} & {MASK[size]}", a, width=size)

    def shl(self, a: V, n: V, size: int) -> V:
        if n == 0:
            return self.trunc(a, size)
        return self._op(f"({a} << {n}) & {MASK[size]}", a, n, width=size)

    def shr(self, a: V, n: V) -> V:
        if n == 0:
            return a
        width = max(self.width[a] - n, 1) if isinstance(n, int) and a in self.width else 0
        return self._op(f"{a} >> {n}", a, n, width=width)

    def sar(self, a: V, n: V, size: int) -> V:
        top = 1 << (size - 1)
        return self._op(f"((({a} ^ {top}) - {top}) >> {n}) & {MASK[size]}", a, n, width=size)

    def sext(self, a: V, from_size: int, to_size: int) -> V:
        top = 1 << (from_size - 1)
        return self._op(f"(({a} ^ {top}) - {top}) & {MASK[to_size]}", a, width=to_size)

    def trunc(self, a: V, size: int) -> V:
        if isinstance(a, int):
            return a & MASK[size]
        if self.width.get(a, 1 << 16) <= size:
            return a                                # already fits: ``x & 0xffffffff`` of a 32-bit sum
        inner = self.masked.get(a)
        if inner is not None and size <= inner[1]:
            a = inner[0]                            # a narrower mask of ``x & wider`` masks ``x``
        name = self._op(f"{a} & {MASK[size]}", a, width=size)
        if isinstance(name, str):
            self.masked[name] = (a, size)
        return name

    def eq(self, a: V, b: V) -> V:
        return self._bool(f"{a} == {b}", a, b)

    def ne(self, a: V, b: V) -> V:
        return self._bool(f"{a} != {b}", a, b)

    def ult(self, a: V, b: V) -> V:
        return self._bool(f"{a} < {b}", a, b)

    def slt(self, a: V, b: V, size: int) -> V:
        top = 1 << (size - 1)
        return self._bool(f"({a} ^ {top}) < ({b} ^ {top})", a, b)

    def select(self, cond: V, a: V, b: V) -> V:
        if is_const(cond):
            return a if cond else b
        return self._op(f"{a} if {self._test(cond)} else {b}", cond, a, b)

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
        if self.cc is None:
            return self.tmp("compute(s.cc_op, s.cc_size, s.cc_a, s.cc_b, s.cc_r, s.cc_c)")
        op, size, a, b, r, c = self.cc
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
        """Condition ``cc`` as one comparison of the cc record's operands, or None (SDM Vol. 1, appendix B)."""
        if self.cc is None or not is_const(self.cc[0]) or not is_const(self.cc[1]):
            return None
        op, size, a, b, r, _ = self.cc
        top = 1 << (size - 1)
        negate = {"ne": "e", "ae": "b", "a": "be", "ns": "s", "ge": "l", "g": "le"}
        base = negate.get(cc, cc)
        sign = (f"{r} >= {top}", f"{r} < {top}", (r,))
        zero = (f"{r} == 0", f"{r} != 0", (r,))
        table: dict[str, tuple[str, str, tuple[V, ...]]]      # condition -> (test, negated test, its operands)
        if op == CcOp.SUB:
            sa, sb = f"({a} ^ {top})", f"({b} ^ {top})"
            table = {"e": (f"{a} == {b}", f"{a} != {b}", (a, b)), "b": (f"{a} < {b}", f"{a} >= {b}", (a, b)),
                     "be": (f"{a} <= {b}", f"{a} > {b}", (a, b)), "s": sign,
                     "l": (f"{sa} < {sb}", f"{sa} >= {sb}", (a, b)), "le": (f"{sa} <= {sb}", f"{sa} > {sb}", (a, b))}
        elif op == CcOp.LOGIC:
            if base == "b":
                return int(base != cc)              # CF = 0
            table = {"e": zero, "be": zero, "s": sign, "l": sign,
                     "le": (f"{r} == 0 or {r} >= {top}", f"0 < {r} < {top}", (r,))}
        elif op in (CcOp.ADD, CcOp.INC, CcOp.DEC, CcOp.SHL, CcOp.SHR, CcOp.SAR, CcOp.ADC, CcOp.SBB):
            table = {"e": zero, "s": sign}
        else:
            return None
        entry = table.get(base)
        if entry is None:
            return None
        test, negated, args = entry
        return self._bool(test if base == cc else negated, *args)

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
        self.leaves[-1] = True
        self.ended = True

    def fault_if(self, cond: V, vector: int, error_code: int | None = None,
                 commit: dict[str, V] | None = None) -> None:
        if is_const(cond) and not cond:
            return
        stores = "".join(f"{line}; " for name, value in (commit or {}).items() for line in self._commit(name, value))
        self.emit(f"if {self._test(cond)}: {stores}raise GuestFault({int(vector)}, {error_code!r})")
        self.leaves[-1] = True
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
        result = self.tmp(f"C_{name}(cpu{''.join(', ' + str(a) for a in args)})")
        self.effects.add(result)
        self.leaves[-1] = True
        return result


__all__ = ["PyOps", "Translation"]
