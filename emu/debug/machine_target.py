"""The full-system machine as a debug target: the backend of :class:`emu.debug.target.Target` for ``emu debug --boot``
and ``emu boot --gdb``.

It drives the machine's run loop one step at a time (``Machine.service``,
``wait_halted``, ``execute``: emu/machine/pc.py), so the debugger can stop
between any two of them:

- ``settle`` fires the timers that are due and delivers the interrupt the PIC
  raises when the CPU accepts it; a halted CPU lets virtual time jump to the
  next deadline.  Time follows the virtual clock only: nothing moves while the
  debugger is stopped, and a run between two stops is as deterministic as a
  boot without the debugger.
- ``execute`` runs the CPU; a fault is delivered through the guest's IDT at
  once, and counts as the step of the instruction that raised it, so ``si`` on
  a faulting instruction stops at the first instruction of the handler (as it
  does after the delivery of a pending interrupt, and when an interrupt wakes
  a halted CPU).
- A power-off, a reset, a triple fault or the debug-exit port end the session
  as an exit ends a program: an EXITED stop that says why.

Memory accesses of the debugger go through a page walk of the guest's current
page tables (CR3) at supervisor privilege, ``dry`` (no accessed or dirty flag
set, no TLB entry made), then to physical memory, which sends writes to code
pages on to the code cache.  So the debugger sees kernel and user pages alike,
and may write a read-only page (as QEMU's gdb stub does).

Not done: breakpoints or watchpoints on physical addresses, and watchpoints
that see device DMA (they see the CPU's loads and stores only).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from cpu.exceptions import ERROR_CODE, GuestFault, Vector, is_canonical
from cpu.interp import ExitKind
from cpu.memory import MASK64, PAGE_MASK, PAGE_SIZE, READ
from emu.debug.target import Stop, StopKind
from emu.machine.pc import Machine, MachineStop

IDLE_WAIT = 0.05
"""Host seconds to wait when the CPU halts with no timer armed: only Ctrl-C, the console or gdb can help."""


class MachineBackend:
    """Drives a :class:`emu.machine.pc.Machine` for a :class:`emu.debug.target.Target`."""

    system = True
    pid = None

    def __init__(self, machine: Machine, *, poll: Callable[[], bool] | None = None,
                 idle: Callable[[int], None] | None = None, log: TextIO | None = None) -> None:
        """``poll()`` moves host input (a terminal console) into the guest once per turn of the run loop
        and returns True when the user asked to quit; ``idle(ns)`` is the machine's idle callback for a
        halted CPU (default: no host time at all while a timer is armed)."""
        self.machine = machine
        self.state = machine.state
        self.memory = machine.mmu
        self.interp = machine.cpu
        self.poll = poll
        self.idle = idle if idle is not None else self._idle
        self.log = log if log is not None else sys.stderr
        self.events = 0
        """Steps without a retired instruction: exceptions raised by an instruction, and interrupts delivered
        before the command's first instruction (pending when it began, or waking a halted CPU)."""
        self.begun = 0
        """``state.icount`` when the current command began."""
        self.delivered: tuple[int, int, int, str, int, int | None] | None = None
        """The last exception or interrupt delivered: icount and RIP right after it, vector, kind, CPL before it,
        error code."""
        self.ended = False

    @property
    def halted(self) -> bool:
        return self.machine.halted

    # -- memory ---------------------------------------------------------------------
    def translate(self, address: int) -> int:
        """The physical address of virtual ``address`` in the current address space (GuestFault if none)."""
        address &= MASK64
        if not is_canonical(address):
            raise GuestFault(Vector.GP, 0, detail=f"non-canonical address {address:#x}")
        walk = self.memory.walk(address, READ, 0, dry=True)
        if not walk.ok:
            raise GuestFault(Vector.PF, walk.error, address, walk.reason)
        return walk.paddr

    def read(self, address: int, length: int) -> bytes:
        out = bytearray()
        while length > 0:
            n = min(length, PAGE_SIZE - (address & PAGE_MASK))
            out += self.machine.phys.read(self.translate(address), n)
            address, length = (address + n) & MASK64, length - n
        return bytes(out)

    def write(self, address: int, data: bytes) -> None:
        pages = []
        view = memoryview(data)
        while view:                                   # translate every page first: all or nothing
            n = min(len(view), PAGE_SIZE - (address & PAGE_MASK))
            pages.append((self.translate(address), view[:n]))
            address, view = (address + n) & MASK64, view[n:]
        for paddr, chunk in pages:
            self.machine.phys.write(paddr, chunk)

    def check(self, address: int, length: int) -> None:
        """Any canonical address: a kernel sets up its own mappings long after its first instruction."""
        for end in (address, address + length - 1):
            if not is_canonical(end & MASK64):
                raise GuestFault(Vector.GP, 0, detail=f"non-canonical address {end & MASK64:#x}")

    # -- running ----------------------------------------------------------------------
    def begin(self) -> None:
        self.begun = self.state.icount

    def progress(self) -> int:
        return self.state.icount + self.events

    def settle(self) -> Stop | None:
        m = self.machine
        if self.poll is not None and self.poll():
            m.stop = m.stop or MachineStop(0, "quit from the console (Ctrl-A X)")
        if m.stop is None:
            cpl = self.state.cpl
            vector = m.service()
            if vector is not None:
                self.events += self.state.icount == self.begun   # before any instruction of the command ran
                self._record(vector, "interrupt", cpl)
            if m.halted and m.stop is None:
                m.wait_halted(self.idle)
        return self._ended() if m.stop is not None else None

    def execute(self, budget: int) -> Stop | None:
        m = self.machine
        cpl = self.state.cpl
        exit_ = m.execute(m.budget(budget))
        if exit_.kind is ExitKind.FAULT and m.stop is None:
            fault = exit_.fault
            self.events += 1
            self._record(fault.vector, "exception", cpl,
                         error_code=(fault.error_code or 0) if fault.vector in ERROR_CODE else None)
        return self._ended() if m.stop is not None else None

    def _idle(self, ns: int) -> None:
        """Halted: virtual time jumps to the deadline; with none, wait a little for Ctrl-C or gdb."""
        if self.machine.clock.next_deadline() is None:
            time.sleep(IDLE_WAIT)

    def _record(self, vector: int, kind: str, cpl: int, *, error_code: int | None = None) -> None:
        """Remember a delivery for the stop that may come right after it (``note`` describes it)."""
        self.delivered = (self.state.icount, self.state.rip, vector, kind, cpl, error_code)

    def _delivery(self, vector: int, kind: str, cpl: int, error_code: int | None) -> str:
        """The note for a delivery, read while the machine still stands where it left it."""
        s = self.state
        if kind == "interrupt":
            irq = self._irq_of(vector)
            what = f"Interrupt vector {vector:#x}" + (f" (IRQ {irq} from the PIC)" if irq is not None else "")
        else:
            details = [f"#{Vector(vector).name}"]
            if error_code is not None:
                details.append(f"error code {error_code:#x}")
            if vector == Vector.PF:
                details.append(f"CR2 {s.cr2:#x}")
            what = f"Exception vector {vector} ({', '.join(details)})"
        try:                                          # the return RIP the delivery pushed, above any error code
            saved = int.from_bytes(self.read(s.rsp + (8 if error_code is not None else 0), 8), "little")
        except GuestFault:
            saved = None
        where = f", return address {saved:#x}" if saved is not None else ""
        return f"{what} delivered through the IDT: CPL {cpl} -> {s.cpl}{where}"

    def _irq_of(self, vector: int) -> int | None:
        for chip, first in ((self.machine.pic.master, 0), (self.machine.pic.slave, 8)):
            base = chip.state.vector_base
            if base <= vector < base + 8:
                return first + vector - base
        return None

    def note(self) -> str:
        s = self.state
        if self.delivered is not None and self.delivered[:2] == (s.icount, s.rip):
            return self._delivery(*self.delivered[2:])
        if self.machine.halted:
            return "The CPU is halted (HLT): it goes on when an interrupt arrives."
        return ""

    def _ended(self) -> Stop:
        reason = self.machine.stop
        if not self.ended:
            self.ended = True
            self.machine.close()
        return Stop(StopKind.EXITED, self.state.rip, status=reason.status, message=f"Machine stopped: {reason.reason}")

    def interrupt(self) -> None:
        self.interp.request_exit()

    def end(self, status: int | None, signal: int | None) -> Stop:
        """Switch the machine off (gdb's ``kill``, the REPL's ``quit``)."""
        if self.machine.stop is None:
            self.machine.stop = MachineStop(0 if status is None else status, "switched off by the debugger")
        return self._ended()

    # -- for the GDB stub -----------------------------------------------------------
    def exec_file(self) -> bytes | None:
        return None                  # gdb is given the vmlinux by its user

    def auxv(self) -> bytes | None:
        return None

    def say(self, message: str) -> None:
        print(f"emu: {message}", file=self.log, flush=True)
