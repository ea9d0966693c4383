"""Buses: the map from an address range to the device that answers it.

One :class:`Bus` serves port I/O (the 16-bit x86 I/O space) and another the
MMIO window of physical memory.  A device never knows its base address: the
bus subtracts it and calls ``device.read(offset, size)`` or
``device.write(offset, size, value)`` (size in bytes: 1, 2, 4 or 8).

An access nobody claims reads as all ones and writes are ignored, as on a PC
where nothing drives the data lines; each unassigned address is logged once,
so a guest probing for hardware (Linux probes COM2-COM4) stays quiet.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Callable
from typing import Protocol, TextIO


class Device(Protocol):
    def read(self, offset: int, size: int) -> int: ...
    def write(self, offset: int, size: int, value: int) -> None: ...


class Bus:
    """Non-overlapping ranges ``[base, base + length)`` mapped to devices."""

    def __init__(self, name: str, log: TextIO | None = None) -> None:
        self.name = name
        self.log = log
        self._bases: list[int] = []
        self._ranges: list[tuple[int, int, Device, str]] = []
        self._reported: set[int] = set()
        self.on_unassigned: Callable[[int, int, bool], None] | None = None

    def map(self, base: int, length: int, device: Device, name: str = "") -> None:
        for other_base, other_len, _, other_name in self._ranges:
            if base < other_base + other_len and other_base < base + length:
                raise ValueError(f"{self.name}: {name or device} at {base:#x}+{length:#x} overlaps {other_name}")
        i = bisect.bisect(self._bases, base)
        self._bases.insert(i, base)
        self._ranges.insert(i, (base, length, device, name or type(device).__name__))

    def unmap(self, base: int) -> None:
        """Remove the mapping that starts at ``base`` (a PCI BAR moving or being disabled)."""
        i = bisect.bisect_left(self._bases, base)
        if i < len(self._bases) and self._bases[i] == base:
            del self._bases[i]
            del self._ranges[i]

    def find(self, address: int) -> tuple[int, Device] | None:
        """The device mapped at ``address`` and the offset within it."""
        i = bisect.bisect(self._bases, address) - 1
        if i >= 0:
            base, length, device, _ = self._ranges[i]
            if address < base + length:
                return address - base, device
        return None

    def read(self, address: int, size: int) -> int:
        hit = self.find(address)
        if hit is None:
            self._unassigned(address, size, False)
            return (1 << (8 * size)) - 1
        return hit[1].read(hit[0], size) & ((1 << (8 * size)) - 1)

    def write(self, address: int, size: int, value: int) -> None:
        hit = self.find(address)
        if hit is None:
            self._unassigned(address, size, True)
            return
        hit[1].write(hit[0], size, value & ((1 << (8 * size)) - 1))

    def _unassigned(self, address: int, size: int, write: bool) -> None:
        if self.on_unassigned is not None:
            self.on_unassigned(address, size, write)
        if address in self._reported:
            return
        self._reported.add(address)
        if self.log is not None:
            kind = "write to" if write else "read of"
            print(f"emu: {self.name}: {kind} unassigned address {address:#x} ({size} bytes)",
                  file=self.log if self.log is not sys.stderr else sys.stderr)

    def devices(self) -> list[tuple[int, int, str]]:
        """(base, length, name) of every mapping, in address order (for `info devices`)."""
        return [(base, length, name) for base, length, _, name in self._ranges]
