"""Interrupt request lines: how a device signals an interrupt controller.

A device is handed an :class:`IrqLine` and only ever raises or lowers it.
Edge-triggered inputs (the 8259 in its PC configuration) latch a request on
the rising edge; ``pulse`` is a raise followed by a lower.  :class:`WiredOr`
is a shared line, as PCI INTA#-INTD# are: high while any of its drivers is.
"""

from __future__ import annotations

from collections.abc import Callable


class IrqLine:
    """One wire; ``sink(level)`` is called on every change of level."""

    def __init__(self, sink: Callable[[bool], None], name: str = "") -> None:
        self.sink = sink
        self.name = name
        self.level = False

    def set(self, level: bool) -> None:
        if level != self.level:
            self.level = level
            self.sink(level)

    def raise_(self) -> None:
        self.set(True)

    def lower(self) -> None:
        self.set(False)

    def pulse(self) -> None:
        self.set(True)
        self.set(False)


class WiredOr:
    """Several drivers on one wire: ``output`` is high while any input is (PCI 3.0 2.2.6, shared INTx#)."""

    def __init__(self, output: IrqLine) -> None:
        self.output = output
        self._high: set[int] = set()
        self._count = 0

    def input(self, name: str = "") -> IrqLine:
        """A new driver of the wire."""
        key = self._count
        self._count += 1
        return IrqLine(lambda level: self._drive(key, level), name)

    def _drive(self, key: int, level: bool) -> None:
        if level:
            self._high.add(key)
        else:
            self._high.discard(key)
        self.output.set(bool(self._high))
