"""What native code and the Python around it agree on: the context a native block reads besides ``CpuState``
(``JitContext``), why a block returned and what a callback answers, how the dispatch table hashes a RIP, and
the records of a block's exit sites.  ``cpu.backends.llvm`` writes code to this contract; ``cpu.engine`` and
``cpu.jit`` run it, and import the backend only to lower a block (a run whose native code all comes from the
code cache never does; that made no difference measurable in its start-up, ~190 ms for sha256).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import NamedTuple

from cpu.decoder import Insn
from cpu.state import CpuState

MASK64 = (1 << 64) - 1

EXIT_NEXT, EXIT_FAULT, EXIT_CODE_WRITE, EXIT_EVENT = 0, 1, 2, 3
"""Why a block function returned (``JitContext.exit``)."""

STATUS_OK, STATUS_FAULT, STATUS_CODE_WRITE = 0, 1, 2
"""What a slow-path or call callback returns."""

class JitContext(ctypes.Structure):
    """What a native block reads besides CpuState: TLB arrays, callbacks, budget, and where it reports exits."""

    _fields_ = [
        ("exit", ctypes.c_uint64), ("site", ctypes.c_uint64),
        ("rtag", ctypes.c_void_p), ("radd", ctypes.c_void_p), ("wtag", ctypes.c_void_p), ("wadd", ctypes.c_void_p),
        ("table_rip", ctypes.c_void_p), ("table_fn", ctypes.c_void_p),
        ("slow_load", ctypes.c_void_p), ("slow_store", ctypes.c_void_p),
        ("py_helper", ctypes.c_void_p), ("py_call", ctypes.c_void_p),
        ("limit", ctypes.c_uint64), ("request", ctypes.c_uint64),
        # request: 0 none; REQUEST_NOW leave after this block; REQUEST_WINDOW leave after the first block that
        # ends with RFLAGS.IF set (the run loop then checks for an interrupt shadow)
        ("blocks", ctypes.c_uint64),
        ("present", ctypes.c_void_p), ("large", ctypes.c_void_p),     # cpu.memory.TlbPresence's counts
        ("val", ctypes.c_uint64 * 4),
        ("args", ctypes.c_uint64 * 32),
    ]


def ctx_offset(name: str) -> int:
    """Where field ``name`` of :class:`JitContext` is."""
    return getattr(JitContext, name).offset


REQUEST_NOW, REQUEST_WINDOW = 1, 2
"""JitContext.request: what the native dispatch loop polls between blocks."""
IF_BIT = 1 << 9

TLB_BITS = 12
TLB_SIZE = 1 << TLB_BITS
TABLE_BITS = 16
TABLE_SIZE = 1 << TABLE_BITS


def table_set(rip: int) -> int:
    """The first of the two slots where the native dispatch table may keep ``rip`` (the runtime's
    ``@emu_dispatch`` hashes the same way and looks in both)."""
    return (rip ^ (rip >> TABLE_BITS)) & (TABLE_SIZE - 2)


def state_field(name: str) -> tuple[int, int]:
    """Offset and width in bits of a CpuState field."""
    f = getattr(CpuState, name)
    return f.offset, f.size * 8


class Site(NamedTuple):
    """A place where a native block may stop early: which instruction, and what fault (None: a callback's).
    A tuple: a module loaded from the code cache makes one per exit site (~0.25 us, half a dataclass's)."""

    insn: int
    """The index of its instruction in the block."""
    vector: int | None = None
    error_code: int | None = None
    detail: str = ""
    event: str | None = None


@dataclass
class NativeBlock:
    """One block's IR and what the runtime needs to interpret its exits."""

    name: str
    ir: str
    insns: list[Insn] | None
    """None until a block of a module loaded for its placements is translated (`cpu.jit`)."""
    event: str | None
    sites: list[Site] | list[tuple] = field(default_factory=list)
    """Its exit sites in order (as stored, plain tuples, for a block of a module from the code cache: see
    ``cpu.engine.SiteTable``)."""
    helpers: set[str] = field(default_factory=set)
    declares: set[str] = field(default_factory=set)
    """Declarations of the LLVM intrinsics the function calls beyond the runtime's."""


class LoweringError(Exception):
    """The LLVM backend cannot express an operation (the block stays in the Python tier)."""
