"""Physical memory: guest RAM in one host buffer, everything else on the MMIO bus.

Page walks (``cpu.mmu``), DMA by devices (virtio) and the boot loader address
guest memory physically through this class.  Every access is checked against
the RAM size: an address outside RAM goes to the MMIO bus (which answers all
ones for nothing mapped), never to a host address.

``on_write(address, length)`` hears of every write to RAM made through this
class (not the CPU's own stores, which go through its TLB), so the MMU can
drop code translated from bytes a device's DMA replaced.

The CPU sees a bus only through the :class:`Bus` interface (``devices.bus.Bus``
is the machine's); without one, nothing answers outside RAM.
"""

from __future__ import annotations

import mmap
from collections.abc import Callable
from typing import Protocol


class Bus(Protocol):
    """A bus as the CPU sees it, for the MMIO window and for port I/O: ``size`` in bytes (1, 2, 4 or 8)."""

    def read(self, address: int, size: int) -> int: ...
    def write(self, address: int, size: int, value: int) -> None: ...


class NoBus:
    """A bus with nothing on it: reads are all ones, as on a PC where nothing drives the data lines;
    writes are ignored."""

    def read(self, address: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def write(self, address: int, size: int, value: int) -> None:
        pass


class PhysicalMemory:
    def __init__(self, size: int, mmio: Bus | None = None) -> None:
        if size <= 0 or size % 4096:
            raise ValueError("RAM size must be a positive multiple of 4 KiB")
        self.size = size
        self.ram = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        """Zero pages from the host kernel, given host memory only when first touched (a ``bytearray`` of the
        same size is zeroed at once: 50-100 ms and all of its size resident for a 128 MiB guest)."""
        self.mmio: Bus = mmio if mmio is not None else NoBus()
        self.on_write: Callable[[int, int], None] = lambda address, length: None

    def is_ram(self, address: int, length: int = 1) -> bool:
        return 0 <= address and address + length <= self.size

    def read(self, address: int, length: int) -> bytes:
        if self.is_ram(address, length):
            return bytes(self.ram[address:address + length])
        return b"".join(self.load(address + i, 8).to_bytes(1, "little") for i in range(length))

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        if self.is_ram(address, len(data)):
            self.ram[address:address + len(data)] = data
            self.on_write(address, len(data))
            return
        for i, byte in enumerate(bytes(data)):
            self.store(address + i, 8, byte)

    def load(self, address: int, size: int) -> int:
        """``size`` bits at a physical address (RAM or MMIO)."""
        n = size // 8
        if self.is_ram(address, n):
            return int.from_bytes(self.ram[address:address + n], "little")
        return self.mmio.read(address, n)

    def store(self, address: int, size: int, value: int) -> None:
        n = size // 8
        if self.is_ram(address, n):
            self.ram[address:address + n] = (value & ((1 << size) - 1)).to_bytes(n, "little")
            self.on_write(address, n)
            return
        self.mmio.write(address, n, value)
