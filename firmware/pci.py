"""The BIOS's part of PCI: size and assign every BAR, set Interrupt Line and the ELCR, enable decoding.

Linux started by a boot loader without ACPI takes the PCI configuration as the firmware left it
(arch/x86/pci: direct conf1 probing, then ``pcibios_allocate_resources`` claims the BARs it finds assigned),
and with no ``$PIR`` routing table and no I/O APIC it uses each function's Interrupt Line as is.  So emu, in
the BIOS's role and before the kernel's first instruction, does what a PC BIOS's POST does (as SeaBIOS's
pciinit does on QEMU's "pc"), through the machine's ports only, as a BIOS would: configuration mechanism #1
at 0xCF8/0xCFC and the ELCR at 0x4D0/0x4D1 (PCI Local Bus Specification 3.0, 6.2.5.1 "Address Maps" for
sizing, 6.2.4 for Interrupt Line):

1. for each function on bus 0, size each BAR by writing all ones and reading back (then restore it);
2. place the BARs, largest first, each aligned to its size: I/O BARs in ``IO_WINDOW``, memory BARs in
   ``MEMORY_WINDOW`` (above RAM and below the legacy I/O APIC/HPET/BIOS area at 0xFEC0_0000);
3. write Interrupt Line with the PIC input the board wires the function's pin to (``devices.pci.intx_irq``)
   and make that input level sensitive in the ELCR, since PCI INTx# is a shared level-triggered signal;
4. set I/O Space and Memory Space in the command register of a function with such BARs (Bus Master is the
   driver's to set).

The windows are a hole in the e820 map (RAM ends below them, ``firmware/linux.py``), which is where Linux
looks for PCI ("[mem ...] available for PCI devices").  Not done: bridges and buses other than 0, 64-bit
BARs above 4 GiB, expansion ROMs, a ``$PIR`` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from devices.pci import BAR_COUNT, Command, ConfigAddress, Reg, intx_irq

IO_WINDOW = (0xC000, 0x1_0000)
"""I/O ports for BARs: above the ISA range every legacy device lives in."""
MEMORY_WINDOW = (0xE000_0000, 0xFEC0_0000)
"""Physical addresses for memory BARs: RAM is at most 3 GiB, the top 20 MiB belong to the chipset."""


CONFIG_ADDRESS, CONFIG_DATA = 0xCF8, 0xCFC
ELCR_PORTS = (0x4D0, 0x4D1)


class Ports(Protocol):
    """Port I/O (the machine's port bus)."""

    def read(self, address: int, size: int) -> int: ...
    def write(self, address: int, size: int, value: int) -> None: ...


class ConfigCycles:
    """Configuration mechanism #1 on bus 0, function 0, as the BIOS does it: the address, then the data."""

    def __init__(self, ports: Ports) -> None:
        self.ports = ports

    def _select(self, slot: int, offset: int) -> int:
        self.ports.write(CONFIG_ADDRESS, 4, ConfigAddress.ENABLE | slot << 11 | offset & 0xFC)
        return CONFIG_DATA + (offset & 3)

    def config_read(self, slot: int, offset: int, size: int) -> int:
        return self.ports.read(self._select(slot, offset), size)

    def config_write(self, slot: int, offset: int, size: int, value: int) -> None:
        self.ports.write(self._select(slot, offset), size, value)


class FirmwareError(Exception):
    """The devices do not fit the PCI windows."""


@dataclass
class Assignment:
    """One BAR as placed, for the log and for tests."""

    slot: int
    bar: int
    io: bool
    address: int
    size: int


def assign_resources(ports: Ports) -> list[Assignment]:
    """Steps 1-4 above for every device on bus 0; the BARs as placed."""
    config = ConfigCycles(ports)
    wanted: list[tuple[int, int, bool, int]] = []      # (slot, bar, io, size)
    slots = [s for s in range(32) if config.config_read(s, Reg.VENDOR_ID, 2) != 0xFFFF]
    for slot in slots:
        command = config.config_read(slot, Reg.COMMAND, 2)
        config.config_write(slot, Reg.COMMAND, 2, command & ~(Command.IO_SPACE | Command.MEMORY_SPACE))
        for bar in range(BAR_COUNT):
            offset = Reg.BAR0 + 4 * bar
            original = config.config_read(slot, offset, 4)
            config.config_write(slot, offset, 4, 0xFFFF_FFFF)
            probed = config.config_read(slot, offset, 4)
            config.config_write(slot, offset, 4, original)
            io = bool(probed & 1)
            mask = probed & (0xFFFF_FFFC if io else 0xFFFF_FFF0)
            if mask:
                wanted.append((slot, bar, io, (~mask & 0xFFFF_FFFF) + 1))
    placed = []
    cursors = {True: IO_WINDOW[0], False: MEMORY_WINDOW[0]}
    for slot, bar, io, size in sorted(wanted, key=lambda w: -w[3]):
        address = -(-cursors[io] // size) * size
        end = (IO_WINDOW if io else MEMORY_WINDOW)[1]
        if address + size > end:
            raise FirmwareError(f"PCI device {slot} BAR{bar} ({size:#x} bytes) does not fit the "
                                f"{'I/O' if io else 'memory'} window")
        cursors[io] = address + size
        config.config_write(slot, Reg.BAR0 + 4 * bar, 4, address)
        placed.append(Assignment(slot, bar, io, address, size))
    for slot in slots:
        pin = config.config_read(slot, Reg.INTERRUPT_PIN, 1)
        if 1 <= pin <= 4:
            irq = intx_irq(slot, pin)
            config.config_write(slot, Reg.INTERRUPT_LINE, 1, irq)
            elcr = ELCR_PORTS[irq // 8]
            ports.write(elcr, 1, ports.read(elcr, 1) | 1 << (irq % 8))
        enable = 0
        for p in placed:
            if p.slot == slot:
                enable |= Command.IO_SPACE if p.io else Command.MEMORY_SPACE
        if enable:
            command = config.config_read(slot, Reg.COMMAND, 2)
            config.config_write(slot, Reg.COMMAND, 2, command | enable)
    return placed
