"""A virtual clock the device tests move by hand, firing deadlines in order as the machine's run loop would."""

from __future__ import annotations

from cpu.state import CpuState
from devices.clock import Clock


class VirtualTime:
    """The clock of a CPU that retires no instructions: time passes as ``tsc_offset``, as if halted."""

    def __init__(self) -> None:
        self.cpu = CpuState()
        self.clock = Clock(self.cpu)

    @property
    def ns(self) -> int:
        return self.clock.now()

    @ns.setter
    def ns(self, when: int) -> None:
        """Jump to ``when`` without running deadlines on the way (a CPU busy past them)."""
        self.cpu.tsc_offset = when - self.cpu.icount

    def advance(self, ns: int) -> None:
        """Let ``ns`` nanoseconds pass, stopping at every deadline on the way to run it at its own time."""
        target = self.ns + ns
        while (deadline := self.clock.next_deadline()) is not None and deadline <= target:
            self.clock.skip_to(deadline)
            self.clock.fire_due()
        self.ns = target
