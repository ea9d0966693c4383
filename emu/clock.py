"""The one virtual clock: time is retired instructions, plus the time skipped while halted.

Every timer (PIT, RTC, TSC) reads this clock, so a run is reproducible: the
same guest with the same inputs prints the same log at the same timestamps
after the same number of instructions.  One retired instruction is one
nanosecond (a nominal 1 GHz CPU).  When the CPU halts, the machine jumps the
clock to the next deadline instead of waiting.

Timers are deadlines: ``schedule(when, callback)``; the machine runs the CPU
at most until ``next_deadline()`` and then calls ``fire_due()``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class Clock:
    def __init__(self, instructions: Callable[[], int]) -> None:
        """``instructions()`` returns the CPU's retired-instruction count."""
        self._instructions = instructions
        self.skipped = 0
        """Nanoseconds jumped over while the CPU was halted."""
        self._queue: list[tuple[int, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()

    def now(self) -> int:
        """Virtual time in nanoseconds since power-on."""
        return self._instructions() + self.skipped

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
            self.skipped += when - now
