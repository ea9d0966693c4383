"""The isa-debug-exit device: a port (0xF4 by convention) a test guest writes to end the run with a status.

Follows QEMU's documented convention for isa-debug-exit: writing the value V makes the emulator exit with
status (V << 1) | 1, so a guest can never produce status 0 and a clean exit of the emulator stays
distinguishable from one the guest asked for.  The value is as wide as the guest's write (outb, outw, outl).

Not modelled: reads, which return all ones, as from a port nothing drives.
"""

from __future__ import annotations

from collections.abc import Callable


def exit_status(value: int) -> int:
    """The emulator's exit status for a write of ``value``."""
    return (value << 1) | 1


class DebugExit:
    """One-port bus device; ``exit(status)`` is called on every write."""

    def __init__(self, exit: Callable[[int], None]) -> None:
        self.exit = exit

    def read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        self.exit(exit_status(value & ((1 << (8 * size)) - 1)))
