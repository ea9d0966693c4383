"""The ``ops`` vocabulary: what instruction semantics may do, and nothing else.

Every instruction in ``cpu/semantics/`` is one function ``f(ops, insn,
*operands)`` written against this interface.  A backend (``cpu/backends/``)
implements it and says so, ``class PyOps(Ops)``, so that mypy (``tests/test_layout.py``)
fails on a backend that lacks a method or takes other arguments:

* ``cpu.backends.python.PyOps`` turns each call into Python source; the interpreter
  compiles a block of such source once and runs it many times.
* ``cpu.backends.symbolic.SymbolicOps`` renders each call as a readable micro-op
  (``emu explain``).
* a future LLVM backend will emit IR for the same calls.

Values (:data:`V`) are opaque to semantics: an ``int`` is a constant known at
translation time (semantics pass literals such as ``ops.shl(x, 2, 8)``), a
``str`` names a value the backend made (a Python local, a micro-op result,
an IR register).  So semantics never branch on a guest value with Python
``if``/``while``; they use :meth:`select`, :meth:`fault_if`,
:meth:`set_flags_if`, or call a named helper.  Branching on *decode-time*
facts (operand kinds, sizes, immediates, prefixes) is fine: those are the same
for every execution of the instruction.

Sizes are in bits.  Results of arithmetic are masked to ``size`` bits;
comparisons give 0 or 1.  Order inside a semantic function: reads, compute,
writes (memory first, then registers), flags; register writes take effect
when the instruction ends, so a faulting instruction leaves no partial state.
"""

from __future__ import annotations

from typing import Protocol

from cpu.decoder import Operand

V = int | str
"""A value in a backend's hands: a constant (``int``) or the name of a value computed at run time (``str``)."""


class Ops(Protocol):
    # -- operands and architectural state -------------------------------------
    def read(self, opnd: Operand) -> V: """Operand value, zero-extended from its size."""
    def write(self, opnd: Operand, value: V) -> None: """Operand write with x86 sub-register rules."""
    def ea(self, opnd: Operand) -> V: """Effective address of a memory operand (no segment base)."""
    def address(self, opnd: Operand) -> V: """Linear address of a memory operand (FS/GS base added)."""
    def load(self, address: V, size: int) -> V: ...
    def store(self, address: V, size: int, value: V) -> None: ...
    def reg(self, name: str) -> V: """A whole state field: "rax", "rsp", "xmm3", "fs_base", "rflags"."""
    def set_reg(self, name: str, value: V) -> None: ...
    def const(self, value: int) -> V: ...

    # -- arithmetic -------------------------------------------------------------
    def add(self, a: V, b: V, size: int) -> V: ...
    def sub(self, a: V, b: V, size: int) -> V: ...
    def mul(self, a: V, b: V, size: int) -> V: """Low ``size`` bits of the product."""
    def udiv(self, a: V, b: V) -> V: """Unsigned quotient; callers fault first when b is 0."""
    def urem(self, a: V, b: V) -> V: ...
    def sdiv(self, a: V, b: V, size: int) -> V: """Signed quotient truncated toward zero, both ``size``-bit."""
    def srem(self, a: V, b: V, size: int) -> V: ...
    def and_(self, a: V, b: V) -> V: ...
    def or_(self, a: V, b: V) -> V: ...
    def xor(self, a: V, b: V) -> V: ...
    def not_(self, a: V, size: int) -> V: ...
    def neg(self, a: V, size: int) -> V: ...
    def shl(self, a: V, n: V, size: int) -> V: ...
    def shr(self, a: V, n: V) -> V: ...
    def sar(self, a: V, n: V, size: int) -> V: """Arithmetic right shift of a ``size``-bit value."""
    def sext(self, a: V, from_size: int, to_size: int) -> V: ...
    def trunc(self, a: V, size: int) -> V: ...
    def eq(self, a: V, b: V) -> V: ...
    def ne(self, a: V, b: V) -> V: ...
    def ult(self, a: V, b: V) -> V: ...
    def slt(self, a: V, b: V, size: int) -> V: ...
    def select(self, cond: V, a: V, b: V) -> V: ...
    def helper(self, name: str, *args: V) -> V: """A pure function from cpu.semantics.HELPERS."""

    # -- flags -------------------------------------------------------------------
    def set_flags(self, op: int, size: int, a: V, b: V, r: V, c: V = 0) -> None: ...
    def set_flags_if(self, cond: V, op: int, size: int, a: V, b: V, r: V, c: V = 0) -> None: ...
    def flag(self, bit: int) -> V: """One RFLAGS bit (a cpu.flags.Flag) as 0 or 1."""
    def cond(self, cc: str) -> V: """Condition code ("e", "l", "be", ...) as 0 or 1."""
    def rflags(self) -> V: """The whole RFLAGS value."""
    def set_rflags(self, value: V, writable: int) -> None: """Replace the ``writable`` bits of RFLAGS."""

    # -- control ------------------------------------------------------------------
    def jump(self, target: V) -> None: """Next RIP; ends the block."""
    def fault(self, vector: int, error_code: int | None = None, detail: str = "") -> None: ...
    def fault_if(self, cond: V, vector: int, error_code: int | None = None,
                 commit: dict[str, V] | None = None) -> None:
        """Fault when ``cond`` holds.  ``commit``: state fields that take these values on the fault's exit
        while every other write of the instruction is undone (MXCSR's flags on #XM)."""
    def event(self, name: str) -> None: """Hand control to the machine after this instruction (syscall, hlt)."""
    def call(self, name: str, *args: V) -> V: """A helper that may read and write any state (cpu.semantics.CALLS)."""
