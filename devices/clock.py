"""The one virtual clock: time is retired instructions, plus the time skipped while halted.

Every timer (PIT, RTC, TSC) reads this clock, so a run is reproducible: the
same guest with the same inputs prints the same log at the same timestamps
after the same number of instructions.  One retired instruction is one
nanosecond (a nominal 1 GHz CPU).  When the CPU halts, the machine jumps the
clock to the next deadline instead of waiting.

Timers are deadlines: ``schedule(when, callback)``; the machine runs the CPU
at most until ``next_deadline()`` and then calls ``fire_due()``.

It lives here, beside the bus and the IRQ lines, because the devices are the
lowest layer that reads it (the PIT, the RTC); the machine (``emu.machine.pc``)
makes it, and the CPU's TSC reads the same two ``CpuState`` fields directly.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from cpu.state import CpuState


class Clock:
    def __init__(self, state: CpuState) -> None:
        """Time is ``state.icount`` (retired instructions) plus ``state.tsc_offset`` (time the CPU
        did not spend retiring instructions: halted, or waiting on the ISA bus), so the TSC, which
        reads the same two fields, is this clock."""
        self.state = state
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()

    def now(self) -> int:
        """Virtual time in nanoseconds since power-on."""
        return self.state.icount + self.state.tsc_offset

    def spend(self, ns: int) -> None:
        """Let ``ns`` pass without retiring instructions (an I/O bus cycle)."""
        self.state.tsc_offset += ns

    def schedule(self, when: int, callback: Callable[[], None]) -> int:
        """Call ``callback`` once virtual time reaches ``when``; returns a handle for :meth:`cancel`."""
        handle = next(self._ids)
        heapq.heappush(self._queue, (when, handle, callback))
        return handle

    def cancel(self, handle: int | None) -> None:
        if handle is not None:
            self._cancelled.add(handle)

    def next_deadline(self) -> int | None:
        while self._queue and self._queue[0][1] in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._queue)[1])
        return self._queue[0][0] if self._queue else None

    def fire_due(self) -> None:
        """Run every callback whose deadline has passed, in deadline order."""
        now = self.now()
        while True:
            when = self.next_deadline()
            if when is None or when > now:
                return
            _, handle, callback = heapq.heappop(self._queue)
            callback()

    def skip_to(self, when: int) -> None:
        """Jump forward to ``when`` (the CPU is halted and nothing happens before it)."""
        now = self.now()
        if when > now:
            self.spend(when - now)
