"""A board for PCI tests: ports, an MMIO bus, small RAM, the PIC pair with its ELCR, and the PCI host, wired as
emu/machine/pc.py wires them; the test plays Linux's arch/x86/pci/direct.c through the conf1 ports.

RAM is 64 KiB with nothing behind it: a device access outside RAM that no BAR claims raises, so a missed
validation fails the test instead of reading all ones."""

from __future__ import annotations

import io

from cpu.physical import PhysicalMemory
from devices.bus import Bus
from devices.pci import PciHost
from devices.pic8259 import Elcr, Pic8259Pair

RAM_SIZE = 0x10000
CONFIG_ADDRESS, CONFIG_DATA = 0xCF8, 0xCFC


def _outside_ram(address: int, size: int, write: bool) -> None:
    raise AssertionError(f"{'write to' if write else 'read of'} guest-physical {address:#x}: no RAM, no BAR")


class Board:
    def __init__(self) -> None:
        self.log = io.StringIO()
        self.ports = Bus("ports")
        self.mmio = Bus("mmio")
        self.memory = PhysicalMemory(RAM_SIZE, self.mmio)
        self.pic = Pic8259Pair()
        self.ports.map(0x20, 2, self.pic.master, "pic-master")
        self.ports.map(0xA0, 2, self.pic.slave, "pic-slave")
        self.ports.map(0x4D0, 2, Elcr(self.pic), "elcr")
        self.host = PciHost(self.ports, self.mmio, RAM_SIZE, self.pic.irq, log=self.log)
        self.ports.map(CONFIG_ADDRESS, 8, self.host, "pci-conf1")

    def strict(self) -> None:
        """From now on an MMIO access nothing claims fails the test."""
        self.mmio.on_unassigned = _outside_ram

    # -- Linux's pci_conf1_read/pci_conf1_write ---------------------------------

    def conf1_read(self, slot: int, offset: int, size: int, function: int = 0, bus: int = 0) -> int:
        self.ports.write(CONFIG_ADDRESS, 4, 0x8000_0000 | bus << 16 | slot << 11 | function << 8 | offset & 0xFC)
        return self.ports.read(CONFIG_DATA + (offset & 3), size)

    def conf1_write(self, slot: int, offset: int, size: int, value: int) -> None:
        self.ports.write(CONFIG_ADDRESS, 4, 0x8000_0000 | slot << 11 | offset & 0xFC)
        self.ports.write(CONFIG_DATA + (offset & 3), size, value)

    def capabilities(self, slot: int) -> list[int]:
        """pci_find_capability's walk: the offsets of the capability list, in order."""
        assert self.conf1_read(slot, 0x06, 2) & 0x10, "status: capabilities list"
        out, at = [], self.conf1_read(slot, 0x34, 1)
        while at and len(out) < 48:
            out.append(at)
            at = self.conf1_read(slot, at + 1, 1)
        return out

    def size_bar(self, slot: int, bar: int) -> tuple[int, int]:
        """__pci_read_base: write all ones, read back, restore; (size, type bits)."""
        offset = 0x10 + 4 * bar
        original = self.conf1_read(slot, offset, 4)
        self.conf1_write(slot, offset, 4, 0xFFFF_FFFF)
        probed = self.conf1_read(slot, offset, 4)
        self.conf1_write(slot, offset, 4, original)
        low = 0x3 if probed & 1 else 0xF
        return ((~(probed & ~low) & 0xFFFF_FFFF) + 1 if probed & ~low else 0), probed & low
