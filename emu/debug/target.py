"""The debug target: one stoppable, steppable guest, shared by the REPL and the GDB stub.

Both front ends (``emu.debug.repl`` and ``emu.gdb.stub``) drive a :class:`Target`
and never the interpreter directly, so they stop for the same reasons at the
same instructions.  A stop is always *between* instructions: RIP is the next
instruction to execute.

The target is a common core over a small *backend*, the guest itself:

- :class:`ProcessBackend` (here): a user-mode process (``emu.user.process``).
  SYSCALL is served by emu's Linux; a fault stops with the signal Linux would
  send, and continuing delivers it (the program dies).
- ``MachineBackend`` (``emu.debug.machine_target``): the full-system machine.
  Faults and interrupts are the guest's own business, delivered through its
  IDT; timers fire between instructions on the virtual clock; a power-off, a
  reset or a triple fault ends the session as an exit ends a program.

One turn of the run loop (:meth:`Target._run`):

1. ``backend.settle()`` brings the guest to an instruction boundary: the
   machine fires the timers that are due and delivers a pending interrupt; a
   halted CPU lets virtual time jump to its next deadline;
2. the core stops for a watchpoint hit, an interrupt request (Ctrl-C), the
   step count, or a breakpoint at RIP;
3. ``backend.execute(budget)`` runs at most ``budget`` instructions.

So every stop is at a boundary where everything due has been delivered:
``si`` at a point where a timer interrupt is pending stops at the first
instruction of the handler.  Steps are counted by ``backend.progress()``:
retired instructions, plus the events that move RIP with no instruction
retired (an exception raised by the stepped instruction; an interrupt that
was pending when the command began, or wakes a halted CPU).  A delivery
between two instructions of the command counts nothing.

- Breakpoints cost nothing in the run loop: the interpreter cuts translated
  blocks at breakpoint addresses and checks RIP only where a block starts.
  They are virtual addresses; on a machine they may be set before the page
  that holds them is mapped (a kernel's ``start_kernel`` at its entry point).
- Watchpoints are exact: pages holding a watched range leave the software TLB,
  so every load and store to them reaches a hook with the address and size;
  while any watchpoint is set, execution goes one instruction at a time so the
  stop comes right after the instruction that made the access (as x86 debug
  registers report data breakpoints: SDM Vol. 3B, 18.2.4, a trap after the
  instruction).
- Long runs go in slices so that :meth:`Target.interrupt` (Ctrl-C, or a gdb
  interrupt packet) is noticed within a few thousand instructions.
- A front end reads and writes memory through the backend, never through the
  CPU's TLB: no watchpoint sees it, and on a machine it neither fills the TLB
  nor sets accessed/dirty bits in the guest's page tables.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from cpu.interp import ExitKind, Interpreter
from cpu.memory import PAGE_SHIFT, WRITE, Memory
from cpu.state import CpuState
from emu.user.linux import ProcessExit, Signal, signal_name
from emu.user.process import Process
from emu.user.signals import deliver

SLICE = 20_000
"""Instructions run between checks for an interrupt request."""


class StopKind(Enum):
    STEP = "step"              # the requested number of instructions retired
    BREAKPOINT = "breakpoint"
    WATCHPOINT = "watchpoint"
    SIGNAL = "signal"          # a guest fault: the program would receive ``signal``
    EXITED = "exited"          # the program ended (exit status, or killed by ``signal``), or the machine stopped
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
    message: str = ""          # SIGNAL: the fault; EXITED: why a machine stopped
    retired: int = 0           # steps taken by this command (see the module docstring)
    note: str = ""             # what the backend adds: an interrupt just delivered, a halted CPU

    def describe(self) -> str:
        text = self._headline()
        return f"{text}\n{self.note}" if self.note else text

    def _headline(self) -> str:
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
                if self.message:
                    return f"{self.message} (exit status {self.status})"
                if self.signal is not None:
                    return f"Program terminated with signal {signal_name(self.signal)}"
                return f"Program exited with code {self.status}"
            case StopKind.INTERRUPTED:
                return "Program interrupted"
        return f"Stopped at {self.rip:#x}"


class Backend(Protocol):
    """The guest a :class:`Target` drives: a user-mode process or a whole machine."""

    state: CpuState
    memory: Memory             # the CPU's memory: watchpoints hook its slow path (virtual pages)
    interp: Interpreter
    system: bool               # a full-system machine (machine views, virtual breakpoints anywhere)
    halted: bool               # the CPU waits in HLT: the loop settles without executing

    def read(self, address: int, length: int) -> bytes:
        """Guest memory at a virtual address, for a front end (GuestFault when unmapped)."""

    def write(self, address: int, data: bytes) -> None:
        """Write guest memory for a front end (GuestFault when unmapped or read-only)."""

    def check(self, address: int, length: int) -> None:
        """Can a breakpoint or watchpoint go here?  GuestFault when it can never be reached."""

    def begin(self) -> None:
        """A command starts running the guest: steps are counted from here."""

    def progress(self) -> int:
        """Steps so far: retired instructions, plus events that moved RIP with none retired."""

    def settle(self) -> Stop | None:
        """Bring the guest to an instruction boundary; an EXITED stop when it ended on the way."""

    def execute(self, budget: int) -> Stop | None:
        """Run at most ``budget`` instructions; a SIGNAL or EXITED stop, or None to go on."""

    def interrupt(self) -> None:
        """Make a running ``execute`` return soon (thread-safe)."""

    def end(self, status: int | None, signal: int | None) -> Stop:
        """End the guest now (kill, or death by ``signal``); release its files; the EXITED stop."""

    def note(self) -> str:
        """A line to show with a stop (what just happened that RIP alone does not tell), or ""."""


@dataclass
class _Pending:
    hits: list[WatchHit] = field(default_factory=list)


class Target:
    """A guest under debugger control."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.state = backend.state
        self.memory = backend.memory
        self.interp = backend.interp
        self.system = backend.system
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

    # -- memory, breakpoints and watchpoints ------------------------------------------
    def read_memory(self, address: int, length: int) -> bytes:
        """Read guest memory for a front end: no watchpoint sees the access (raises GuestFault when unmapped)."""
        return self.backend.read(address, length)

    def write_memory(self, address: int, data: bytes) -> None:
        """Write guest memory for a front end (a debugger's ``set``): no watchpoint sees the access."""
        self.backend.write(address, data)

    def add_breakpoint(self, address: int, *, temporary: bool = False, condition: str | None = None) -> Breakpoint:
        self.backend.check(address, 1)            # raises GuestFault when code can never be there
        bp = Breakpoint(self.next_number, address, temporary, condition=condition)
        self.next_number += 1
        self.breakpoints[bp.number] = bp
        return bp

    def add_watchpoint(self, address: int, length: int, kind: str = "write") -> Watchpoint:
        if kind not in ("write", "read", "access"):
            raise ValueError(f"watchpoint kind must be write, read or access, not {kind!r}")
        if not 1 <= length <= 4096:
            raise ValueError("watchpoint length must be 1..4096 bytes")
        self.backend.check(address, length)       # raises GuestFault when unmapped
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
        self.backend.interrupt()

    def step(self, count: int = 1) -> Stop:
        """Execute exactly ``count`` instructions (a SYSCALL counts as one, kernel work included)."""
        return self._run(count, stop_at_breakpoints=False)

    def cont(self, limit: int | None = None) -> Stop:
        """Run until a breakpoint, watchpoint, signal, exit or interrupt (or ``limit`` instructions)."""
        return self._run(limit, stop_at_breakpoints=True)

    def run_until(self, address: int, predicate: Callable[[], bool] | None = None) -> Stop:
        """Continue until RIP == ``address`` (and ``predicate()`` holds there), or another stop."""
        self.backend.check(address, 1)           # raises GuestFault when unmapped
        bp = Breakpoint(0, address)               # internal, numbered 0: the user's numbering keeps no gaps
        self.breakpoints[0] = bp
        try:
            while True:
                stop = self.cont()
                if stop.kind is not StopKind.BREAKPOINT or stop.breakpoint is not bp:
                    return stop
                if predicate is None or predicate():
                    return Stop(StopKind.STEP, self.state.rip, retired=stop.retired, note=stop.note)
        finally:
            self.breakpoints.pop(0, None)

    def kill(self) -> Stop:
        """End the guest now, as SIGKILL would end a program (gdb's ``k``); returns the exit stop."""
        if self.exited is None:
            self.exited = self.backend.end(None, Signal.SIGKILL)
        return self.exited

    def _run(self, limit: int | None, *, stop_at_breakpoints: bool) -> Stop:
        if self.exited is not None:
            return self.exited
        if self.pending_signal is not None:      # continuing after a fault delivers it: the program dies
            self.exited = self.backend.end(None, self.pending_signal.signal)
            return self.exited
        backend = self.backend
        self._interrupt.clear()
        self._pending.hits.clear()               # accesses a front end made while stopped are not the guest's
        backend.begin()
        start, start_rip = backend.progress(), self.state.rip
        single = bool(self._arm()) or self.on_instruction is not None
        first = True
        while True:
            stop = backend.settle() or self._watch_stop()
            if stop is not None:
                return self._stopped(stop, start)
            if self._interrupt.is_set():
                self._interrupt.clear()
                return self._stopped(Stop(StopKind.INTERRUPTED, self.state.rip), start)
            if backend.halted:
                continue
            done = backend.progress() - start
            if limit is not None and done >= limit:
                return self._stopped(Stop(StopKind.STEP, self.state.rip), start)
            if stop_at_breakpoints and (not first or self.state.rip != start_rip):
                hit = self._breakpoint_here()
                if hit is not None:
                    return self._stopped(hit, start)
            first = False
            budget = SLICE if limit is None else min(SLICE, limit - done)
            if single:
                budget = 1
                if self.on_instruction is not None:
                    self.on_instruction()
            stop = backend.execute(budget)
            if stop is None or stop.kind is not StopKind.EXITED:
                stop = self._watch_stop() or stop
            if stop is not None:
                return self._stopped(stop, start)

    def _watch_stop(self) -> Stop | None:
        if not self._pending.hits:
            return None
        hit, self._pending.hits = self._pending.hits[0], []
        hit.watchpoint.hits += 1
        if hit.access == "write":
            hit.new = self.read_memory(hit.watchpoint.address, hit.watchpoint.length)
        return Stop(StopKind.WATCHPOINT, self.state.rip, watch=hit)

    def _stopped(self, stop: Stop, start: int) -> Stop:
        """Finish a stop: the steps it took, the backend's note; remember an exit or a pending signal."""
        stop.retired = self.backend.progress() - start
        if stop.kind is StopKind.EXITED:
            self.exited = stop
        else:
            stop.note = stop.note or self.backend.note()
            if stop.kind is StopKind.SIGNAL:
                self.pending_signal = stop
        return stop

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


class ProcessBackend:
    """A user-mode process as a debug target: emu's Linux serves its system calls."""

    system = False
    halted = False

    def __init__(self, process: Process) -> None:
        self.process = process
        self.state = process.state
        self.memory = process.memory
        self.interp = Interpreter(process.state, process.memory, cpu=process.cpu, entropy_seed=process.entropy_seed)
        if process.jit != "off":
            from cpu.jit import Jit  # only here, so that llvmlite is loaded only when the JIT is on

            self.interp.jit = Jit(self.interp, process.jit)
        process.interp = self.interp
        self.pid: int | None = process.kernel.pid

    def read(self, address: int, length: int) -> bytes:
        hook, self.memory.watch = self.memory.watch, None
        try:
            return self.memory.read(address, length)
        finally:
            self.memory.watch = hook

    def write(self, address: int, data: bytes) -> None:
        hook, self.memory.watch = self.memory.watch, None
        try:
            self.memory.write(address, data)
        finally:
            self.memory.watch = hook

    def check(self, address: int, length: int) -> None:
        self.read(address, length)

    def begin(self) -> None:
        pass

    def progress(self) -> int:
        return self.state.icount

    def settle(self) -> Stop | None:
        return None

    def execute(self, budget: int) -> Stop | None:
        threads = self.process.kernel.threads
        try:
            threads.settle()                            # the next thread, when this one used its quantum
        except ProcessExit as e:
            return self.end(e.status, e.signal)
        quantum = threads.limit()
        before = self.state.icount
        exit_ = self.interp.run(budget if quantum is None else min(budget, quantum))
        threads.account(self.state.icount - before)
        match exit_.kind:
            case ExitKind.SYSCALL:
                try:
                    self.process.kernel.handle()
                    threads.settle()                    # another thread runs when this one parked (emu.user.threads)
                    deliver(self.process.kernel)       # what the call made pending: a handler or the end
                except ProcessExit as e:
                    return self.end(e.status, e.signal)
            case ExitKind.FAULT | ExitKind.HALT | ExitKind.EVENT:
                sig, text = self.process.signal_of(exit_)
                return Stop(StopKind.SIGNAL, self.state.rip, signal=sig, message=text)
        return None

    def interrupt(self) -> None:
        pass                                    # a slice is short: the loop sees the request soon enough

    def end(self, status: int | None, signal: int | None) -> Stop:
        self.process.kernel.close()
        status = 128 + signal if signal is not None else status
        return Stop(StopKind.EXITED, self.state.rip, signal=signal, status=status)

    def note(self) -> str:
        return ""

    # -- for the GDB stub -----------------------------------------------------------
    def exec_file(self) -> bytes | None:
        """The program's path as gdb's ``qXfer:exec-file`` gives it."""
        return self.process.kernel.exe

    def auxv(self) -> bytes | None:
        """The auxiliary vector as the loader wrote it on the stack (pairs of 64-bit words, AT_NULL last)."""
        words = [w for key, value in self.process.program.auxv.items() for w in (int(key), value)]
        return b"".join(w.to_bytes(8, "little") for w in [*words, 0, 0])

    def say(self, message: str) -> None:
        self.process.kernel.say(message)

