"""The debug target: one stoppable, steppable guest, shared by the REPL and the GDB stub.

Both front ends (``emu.debugger`` and ``emu.gdbstub``) drive a :class:`Target`
and never the interpreter directly, so they stop for the same reasons at the
same instructions.  A stop is always *between* instructions: RIP is the next
instruction to execute.

- Breakpoints cost nothing in the run loop: the interpreter cuts translated
  blocks at breakpoint addresses and checks RIP only where a block starts.
- Watchpoints are exact: pages holding a watched range leave the software TLB,
  so every load and store to them reaches a hook with the address and size;
  while any watchpoint is set, execution goes one instruction at a time so the
  stop comes right after the instruction that made the access (as x86 debug
  registers report data breakpoints: SDM Vol. 3B, 18.2.4, a trap after the
  instruction).
- Long runs go in slices so that :meth:`Target.interrupt` (Ctrl-C, or a gdb
  interrupt packet) is noticed within a few thousand instructions.

Today a target is a user-mode process (``emu.user.process.Process``); a
full-system machine will provide the same attributes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from cpu.interp import ExitKind, Interpreter
from cpu.memory import PAGE_SHIFT, WRITE
from emu.user.linux import ProcessExit, Signal, signal_name
from emu.user.process import Process

SLICE = 20_000
"""Instructions run between checks for an interrupt request."""


class StopKind(Enum):
    STEP = "step"              # the requested number of instructions retired
    BREAKPOINT = "breakpoint"
    WATCHPOINT = "watchpoint"
    SIGNAL = "signal"          # a guest fault: the program would receive ``signal``
    EXITED = "exited"          # the program ended (exit status, or killed by ``signal``)
    INTERRUPTED = "interrupted"


@dataclass
class Breakpoint:
    number: int
    address: int
    temporary: bool = False
    enabled: bool = True
    condition: str | None = None
    hits: int = 0


@dataclass
class Watchpoint:
    number: int
    address: int
    length: int
    kind: str = "write"        # "write" (watch), "read" (rwatch), "access" (awatch)
    enabled: bool = True
    hits: int = 0


@dataclass
class WatchHit:
    watchpoint: Watchpoint
    address: int
    length: int
    access: str                # "read" or "write"
    old: bytes = b""
    new: bytes = b""


@dataclass
class Stop:
    kind: StopKind
    rip: int
    breakpoint: Breakpoint | None = None
    watch: WatchHit | None = None
    signal: int | None = None
    status: int | None = None
    message: str = ""
    retired: int = 0           # instructions retired by this command

    def describe(self) -> str:
        match self.kind:
            case StopKind.BREAKPOINT:
                return f"Breakpoint {self.breakpoint.number}, {self.rip:#x}"
            case StopKind.WATCHPOINT:
                w = self.watch
                text = f"Watchpoint {w.watchpoint.number}: {w.access} of {w.length} bytes at {w.address:#x}"
                if w.access == "write":
                    text += f"\n  old: {w.old.hex(' ')}\n  new: {w.new.hex(' ')}"
                return text
            case StopKind.SIGNAL:
                return f"Program received signal {signal_name(self.signal)}: {self.message}"
            case StopKind.EXITED:
                if self.signal is not None:
                    return f"Program terminated with signal {signal_name(self.signal)}"
                return f"Program exited with code {self.status}"
            case StopKind.INTERRUPTED:
                return "Program interrupted"
        return f"Stopped at {self.rip:#x}"


@dataclass
class _Pending:
    hits: list[WatchHit] = field(default_factory=list)


class Target:
    """A user-mode process under debugger control."""

    def __init__(self, process: Process) -> None:
        self.process = process
        self.state = process.state
        self.memory = process.memory
        self.interp = Interpreter(process.state, process.memory)
        process.interp = self.interp
        self.breakpoints: dict[int, Breakpoint] = {}
        self.watchpoints: dict[int, Watchpoint] = {}
        self.next_number = 1
        self.exited: Stop | None = None
        self.pending_signal: Stop | None = None
        self.condition: Callable[[str], int] | None = None
        """Evaluates a breakpoint condition (set by the front end that parses expressions)."""
        self.on_instruction: Callable[[], None] | None = None
        """Called before each instruction while set (instruction tracing); forces single-stepping."""
        self._interrupt = threading.Event()
        self._pending = _Pending()

    # -- breakpoints and watchpoints ---------------------------------------------
    def read_memory(self, address: int, length: int) -> bytes:
        """Read guest memory for a front end: no watchpoint sees the access (raises GuestFault when unmapped)."""
        hook, self.memory.watch = self.memory.watch, None
        try:
            return self.memory.read(address, length)
        finally:
            self.memory.watch = hook

    def write_memory(self, address: int, data: bytes) -> None:
        """Write guest memory for a front end (a debugger's ``set``): no watchpoint sees the access."""
        hook, self.memory.watch = self.memory.watch, None
        try:
            self.memory.write(address, data)
        finally:
            self.memory.watch = hook

    def add_breakpoint(self, address: int, *, temporary: bool = False, condition: str | None = None) -> Breakpoint:
        self.read_memory(address, 1)              # raises GuestFault when unmapped
        bp = Breakpoint(self.next_number, address, temporary, condition=condition)
        self.next_number += 1
        self.breakpoints[bp.number] = bp
        return bp

    def add_watchpoint(self, address: int, length: int, kind: str = "write") -> Watchpoint:
        if kind not in ("write", "read", "access"):
            raise ValueError(f"watchpoint kind must be write, read or access, not {kind!r}")
        if not 1 <= length <= 4096:
            raise ValueError("watchpoint length must be 1..4096 bytes")
        self.read_memory(address, length)         # raises GuestFault when unmapped
        wp = Watchpoint(self.next_number, address, length, kind)
        self.next_number += 1
        self.watchpoints[wp.number] = wp
        return wp

    def delete(self, number: int) -> None:
        if self.breakpoints.pop(number, None) is None and self.watchpoints.pop(number, None) is None:
            raise KeyError(f"no breakpoint or watchpoint number {number}")

    def enable(self, number: int, enabled: bool = True) -> None:
        point = self.breakpoints.get(number) or self.watchpoints.get(number)
        if point is None:
            raise KeyError(f"no breakpoint or watchpoint number {number}")
        point.enabled = enabled

    def _arm(self) -> list[Watchpoint]:
        self.interp.set_breakpoints({b.address for b in self.breakpoints.values() if b.enabled})
        active = [w for w in self.watchpoints.values() if w.enabled]
        pages = {p for w in active
                 for p in range(w.address >> PAGE_SHIFT, ((w.address + w.length - 1) >> PAGE_SHIFT) + 1)}
        self.memory.set_watch(pages, self._on_access if active else None)
        return active

    def _on_access(self, address: int, length: int, access: int) -> None:
        for w in self.watchpoints.values():
            if not w.enabled or address >= w.address + w.length or w.address >= address + length:
                continue
            kind = "write" if access == WRITE else "read"
            if w.kind == "access" or w.kind == kind:
                old = self.read_memory(w.address, w.length) if kind == "write" else b""
                self._pending.hits.append(WatchHit(w, address, length, kind, old))

    # -- running -------------------------------------------------------------------
    def interrupt(self) -> None:
        """Ask a running ``cont`` to stop soon (thread-safe; Ctrl-C, gdb's 0x03)."""
        self._interrupt.set()

    def step(self, count: int = 1) -> Stop:
        """Execute exactly ``count`` instructions (a SYSCALL counts as one, kernel work included)."""
        return self._run(count, stop_at_breakpoints=False)

    def cont(self, limit: int | None = None) -> Stop:
        """Run until a breakpoint, watchpoint, signal, exit or interrupt (or ``limit`` instructions)."""
        return self._run(limit, stop_at_breakpoints=True)

    def run_until(self, address: int, predicate: Callable[[], bool] | None = None) -> Stop:
        """Continue until RIP == ``address`` (and ``predicate()`` holds there), or another stop."""
        self.read_memory(address, 1)              # raises GuestFault when unmapped
        bp = Breakpoint(0, address)               # internal, numbered 0: the user's numbering keeps no gaps
        self.breakpoints[0] = bp
        try:
            while True:
                stop = self.cont()
                if stop.kind is not StopKind.BREAKPOINT or stop.breakpoint is not bp:
                    return stop
                if predicate is None or predicate():
                    return Stop(StopKind.STEP, self.state.rip, retired=stop.retired)
        finally:
            self.breakpoints.pop(0, None)

    def kill(self) -> Stop:
        """End the program now, as SIGKILL would (gdb's ``k``); returns the exit stop."""
        if self.exited is None:
            self._finish(None, Signal.SIGKILL)
        return self.exited

    def _run(self, limit: int | None, *, stop_at_breakpoints: bool) -> Stop:
        if self.exited is not None:
            return self.exited
        if self.pending_signal is not None:      # continuing after a fault delivers it: the program dies
            return self._finish(None, self.pending_signal.signal)
        self._interrupt.clear()
        self._pending.hits.clear()               # accesses a front end made while stopped are not the guest's
        start = self.interp.icount
        watching = self._arm()
        single = bool(watching) or self.on_instruction is not None
        first = True
        while True:
            done = self.interp.icount - start
            if limit is not None and done >= limit:
                return Stop(StopKind.STEP, self.state.rip, retired=done)
            if self._interrupt.is_set():
                self._interrupt.clear()
                return Stop(StopKind.INTERRUPTED, self.state.rip, retired=done)
            if stop_at_breakpoints and not first:
                hit = self._breakpoint_here()
                if hit is not None:
                    return hit
            first = False
            budget = SLICE if limit is None else min(SLICE, limit - done)
            if single:
                budget = 1
                if self.on_instruction is not None:
                    self.on_instruction()
            if not stop_at_breakpoints:
                self.interp.set_breakpoints(set())
            exit_ = self.interp.run(budget)
            if self._pending.hits:
                hit, self._pending.hits = self._pending.hits[0], []
                hit.watchpoint.hits += 1
                if hit.access == "write":
                    hit.new = self.read_memory(hit.watchpoint.address, hit.watchpoint.length)
                return Stop(StopKind.WATCHPOINT, self.state.rip, watch=hit, retired=self.interp.icount - start)
            match exit_.kind:
                case ExitKind.SYSCALL:
                    try:
                        self.process.kernel.handle()
                    except ProcessExit as e:
                        return self._finish(e.status, e.signal)
                case ExitKind.FAULT | ExitKind.HALT | ExitKind.EVENT:
                    sig, text = self.process.signal_of(exit_)
                    self.pending_signal = Stop(StopKind.SIGNAL, self.state.rip, signal=sig, message=text,
                                               retired=self.interp.icount - start)
                    return self.pending_signal
                case ExitKind.BREAKPOINT | ExitKind.LIMIT:
                    pass

    def _breakpoint_here(self) -> Stop | None:
        rip = self.state.rip
        for bp in list(self.breakpoints.values()):
            if not bp.enabled or bp.address != rip:
                continue
            if bp.condition and self.condition is not None and not self.condition(bp.condition):
                continue
            bp.hits += 1
            if bp.temporary:
                del self.breakpoints[bp.number]
            return Stop(StopKind.BREAKPOINT, rip, breakpoint=bp)
        return None

    def _finish(self, status: int | None, signal: int | None) -> Stop:
        self.process.kernel.close()
        status = 128 + signal if signal is not None else status
        self.exited = Stop(StopKind.EXITED, self.state.rip, signal=signal, status=status)
        return self.exited
