"""Interrupt request lines: how a device signals an interrupt controller.

A device is handed an :class:`IrqLine` and only ever raises or lowers it.
Edge-triggered inputs (the 8259 in its PC configuration) latch a request on
the rising edge; ``pulse`` is a raise followed by a lower.
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
