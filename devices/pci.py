"""Conventional PCI: configuration space, BARs, the host bridge and configuration mechanism #1.

Follows the PCI Local Bus Specification 3.0: chapter 6 "Configuration Space" (the type 0 header of 6.1, the
command and status registers of 6.2.2-6.2.3, Base Address Registers and their sizing in 6.2.5.1, Interrupt Line
and Interrupt Pin in 6.2.4, the capabilities list of 6.7) and 3.2.2.3.2's configuration mechanism #1 as a PC
chipset implements it: a dword CONFIG_ADDRESS latch at port 0xCF8 and a CONFIG_DATA window at 0xCFC-0xCFF read
and written in bytes, words or dwords at any offset.

:class:`PciFunction` is one function's 256 bytes of configuration space with, for each byte, the bits a driver
may change; a write to anything else (vendor, class, header type, a read-only status bit, an unimplemented BAR)
leaves the register as it was, so the driver reads back the truth, and is logged once.  Status bits that are
"write 1 to clear" clear.  A BAR keeps only the address bits its size allows and its type bits, which is what
makes Linux's sizing (write all ones, read back ``~(size - 1) | type``) work.

:class:`PciHost` is the host bridge at 00:00.0 and the configuration ports; it decodes each function's BARs on
the port and MMIO buses while the command register enables them.  A BAR that would overlap another mapping (or
RAM, or the I/O space's 64 KiB limit) is not decoded: the guest's accesses there read all ones, as a master
abort does, and the conflict is logged.  ``INTX_ROUTING`` is the board's wiring of INTA#-INTD# to PIC inputs.

Not modelled: an ISA bridge function (a PIIX's 00:01.0 holds the PIRQ routing registers; Linux looks for such
an interrupt router only when a ``$PIR`` table names one, and there is none), bus numbers other than 0 (no
PCI-to-PCI bridges), multi-function devices, the expansion ROM BAR
(reads 0), 64-bit and prefetchable BARs, MSI and MSI-X, PCI Express extended configuration space (offsets past
0xFF read all ones), configuration mechanism #2, the PIIX's reset control register at 0xCF9 (port 0xCF8-0xCFB
accesses narrower than a dword read all ones and are ignored), parity and SERR# reporting.
"""

from __future__ import annotations

import ctypes
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from devices.bus import Bus, Device
from devices.irq import IrqLine, WiredOr

CONFIG_SIZE = 256
HEADER_SIZE = 64
BAR_COUNT = 6

IO_SPACE_SIZE = 0x1_0000
"""x86 port addresses are 16 bits: an I/O BAR above that cannot be reached."""
MEMORY_SPACE_END = 1 << 32
"""32-bit memory BARs only."""

INTX_IRQS = (10, 11, 9, 5)
"""PIRQA#-PIRQD#: the PIC inputs the board wires the four PCI interrupt lines to (ISA IRQs no PC device uses)."""


def intx_irq(slot: int, pin: int) -> int:
    """The PIC input INTx# pin ``pin`` (1 = INTA#) of the device in ``slot`` reaches: the usual rotation of the
    pins from slot to slot, so that the INTA# of neighbouring devices land on different lines."""
    return INTX_IRQS[(slot + pin - 1) % len(INTX_IRQS)]


class Reg(enum.IntEnum):
    """6.1: offsets of the type 0 configuration header."""

    VENDOR_ID = 0x00             # 16 R  who made the function; 0xFFFF means "no function here"
    DEVICE_ID = 0x02             # 16 R  which function it is, chosen by the vendor
    COMMAND = 0x04               # 16 RW Command bits
    STATUS = 0x06                # 16 R/W1C PciStatus bits
    REVISION_ID = 0x08           # 8  R
    CLASS_CODE = 0x09            # 24 R  programming interface, sub-class, base class
    CACHE_LINE_SIZE = 0x0C       # 8  RW used by memory-write-and-invalidate; stored only
    LATENCY_TIMER = 0x0D         # 8  RW bus master latency; stored only
    HEADER_TYPE = 0x0E           # 8  R  0: a type 0 (device) header; bit 7: multi-function
    BIST = 0x0F                  # 8  R  0: no built-in self test
    BAR0 = 0x10                  # 6 x 32 Base Address Registers
    CARDBUS_CIS = 0x28           # 32 R
    SUBSYSTEM_VENDOR_ID = 0x2C   # 16 R
    SUBSYSTEM_ID = 0x2E          # 16 R
    ROM_ADDRESS = 0x30           # 32 R  expansion ROM: none (reads 0)
    CAPABILITIES = 0x34          # 8  R  offset of the first capability (with PciStatus.CAPABILITIES_LIST)
    INTERRUPT_LINE = 0x3C        # 8  RW written by the firmware: the PIC input INTx# reaches; the device ignores it
    INTERRUPT_PIN = 0x3D         # 8  R  1-4 = INTA#-INTD#, 0 = no interrupt
    MIN_GNT = 0x3E               # 8  R
    MAX_LAT = 0x3F               # 8  R


class Command(enum.IntFlag):
    """6.2.2: the command register bits a device of ours implements."""

    IO_SPACE = 1 << 0            # the function answers accesses to its I/O BARs
    MEMORY_SPACE = 1 << 1        # the function answers accesses to its memory BARs
    BUS_MASTER = 1 << 2          # the function may itself access memory (virtio DMA into the rings)
    INTX_DISABLE = 1 << 10       # the function must not assert INTx# (the status bit still shows it)


class PciStatus(enum.IntFlag):
    """6.2.3: status register bits."""

    INTERRUPT_STATUS = 1 << 3          # R    the function's INTx# is asserted (or would be, with INTX_DISABLE)
    CAPABILITIES_LIST = 1 << 4         # R    the capabilities pointer at 0x34 is valid
    SIGNALED_TARGET_ABORT = 1 << 11    # W1C
    RECEIVED_TARGET_ABORT = 1 << 12    # W1C
    RECEIVED_MASTER_ABORT = 1 << 13    # W1C  (a host bridge: an access nobody claimed)


W1C_STATUS = PciStatus.SIGNALED_TARGET_ABORT | PciStatus.RECEIVED_TARGET_ABORT | PciStatus.RECEIVED_MASTER_ABORT


class ClassCode(enum.IntEnum):
    """Appendix D: base class, sub-class and programming interface as the 24-bit value at 0x09."""

    HOST_BRIDGE = 0x06_00_00
    SCSI_STORAGE = 0x01_00_00    # what virtio-blk presents (as QEMU does)


class BarKind(enum.Enum):
    IO = "io"                    # bit 0 = 1: an I/O space BAR
    MEMORY32 = "mem32"           # bits 2-1 = 00: 32-bit memory, bit 3 = 0: not prefetchable


class CapabilityId(enum.IntEnum):
    """Appendix H: capability identifiers."""

    VENDOR_SPECIFIC = 0x09


class Type0Header(ctypes.LittleEndianStructure):
    """6.1, figure 6-1: the first 64 bytes of a device's configuration space."""

    _pack_ = 1
    _fields_ = [("vendor_id", ctypes.c_uint16),            # 0x00
                ("device_id", ctypes.c_uint16),            # 0x02
                ("command", ctypes.c_uint16),              # 0x04
                ("status", ctypes.c_uint16),               # 0x06
                ("revision_id", ctypes.c_uint8),           # 0x08
                ("class_code", ctypes.c_uint8 * 3),        # 0x09 prog-if, sub-class, base class
                ("cache_line_size", ctypes.c_uint8),       # 0x0c
                ("latency_timer", ctypes.c_uint8),         # 0x0d
                ("header_type", ctypes.c_uint8),           # 0x0e
                ("bist", ctypes.c_uint8),                  # 0x0f
                ("bars", ctypes.c_uint32 * BAR_COUNT),     # 0x10
                ("cardbus_cis", ctypes.c_uint32),          # 0x28
                ("subsystem_vendor_id", ctypes.c_uint16),  # 0x2c
                ("subsystem_id", ctypes.c_uint16),         # 0x2e
                ("rom_address", ctypes.c_uint32),          # 0x30
                ("capabilities", ctypes.c_uint8),          # 0x34
                ("reserved", ctypes.c_uint8 * 7),          # 0x35
                ("interrupt_line", ctypes.c_uint8),        # 0x3c
                ("interrupt_pin", ctypes.c_uint8),         # 0x3d
                ("min_gnt", ctypes.c_uint8),               # 0x3e
                ("max_lat", ctypes.c_uint8)]               # 0x3f


assert ctypes.sizeof(Type0Header) == HEADER_SIZE
assert Type0Header.bars.offset == Reg.BAR0 and Type0Header.interrupt_line.offset == Reg.INTERRUPT_LINE


@dataclass
class Bar:
    """One Base Address Register and the registers it exposes when decoded."""

    kind: BarKind
    size: int                    # a power of two: 16 or more for memory, 4 or more for I/O
    region: Device               # answers read/write(offset, size) inside the BAR
    name: str

    def type_bits(self) -> int:
        return 1 if self.kind is BarKind.IO else 0

    def address_mask(self) -> int:
        """The bits a driver can set: above the size, and above the type bits (1-0 for I/O, 3-0 for memory)."""
        return ~(self.size - 1) & (0xFFFF_FFFC if self.kind is BarKind.IO else 0xFFFF_FFF0)


class PciFunction:
    """One function's configuration space (``config_read``/``config_write`` at byte offsets 0-255)."""

    def __init__(self, name: str, *, vendor_id: int, device_id: int, class_code: int, revision_id: int = 0,
                 subsystem_vendor_id: int = 0, subsystem_id: int = 0, interrupt_pin: int = 0,
                 bars: dict[int, Bar] | None = None, log: TextIO | None = None) -> None:
        self.name = name
        self.log = log
        self.bars = dict(bars or {})
        header = Type0Header(vendor_id=vendor_id, device_id=device_id, revision_id=revision_id,
                             subsystem_vendor_id=subsystem_vendor_id, subsystem_id=subsystem_id,
                             interrupt_pin=interrupt_pin)
        header.class_code[:] = list(class_code.to_bytes(3, "little"))
        for index, bar in self.bars.items():
            header.bars[index] = bar.type_bits()
        self.space = bytearray(bytes(header).ljust(CONFIG_SIZE, b"\0"))
        self.writable = bytearray(CONFIG_SIZE)
        """Per byte, the bits a driver may change (BARs and W1C status bits have their own rules)."""
        command = Command.INTX_DISABLE | Command.BUS_MASTER
        if any(b.kind is BarKind.IO for b in self.bars.values()):
            command |= Command.IO_SPACE
        if any(b.kind is BarKind.MEMORY32 for b in self.bars.values()):
            command |= Command.MEMORY_SPACE
        self.writable[Reg.COMMAND:Reg.COMMAND + 2] = int(command).to_bytes(2, "little")
        for reg in (Reg.CACHE_LINE_SIZE, Reg.LATENCY_TIMER, Reg.INTERRUPT_LINE):
            self.writable[reg] = 0xFF
        self.on_decode_change: Callable[[], None] = lambda: None
        """Called when the command register or a BAR changes what the function decodes (the host remaps)."""
        self.intx = False
        """The level the function drives on its INTx# pin, before Command.INTX_DISABLE."""
        self.on_intx: Callable[[bool], None] = lambda level: None
        """Drives the board's interrupt line (the host wires it); called with the pin's effective level."""
        self._capability_tail: int = Reg.CAPABILITIES
        self._reported: set[str] = set()

    # -- construction -----------------------------------------------------------

    def add_capability(self, cap_id: int, body: bytes, offset: int) -> None:
        """6.7: put a capability (its ID, a next pointer, then ``body``) at ``offset`` and link it last."""
        if offset < HEADER_SIZE or offset % 4 or offset + 2 + len(body) > CONFIG_SIZE:
            raise ValueError(f"{self.name}: capability at {offset:#x} does not fit the configuration space")
        self.space[offset] = cap_id
        self.space[offset + 1] = 0
        self.space[offset + 2:offset + 2 + len(body)] = body
        self.space[self._capability_tail if self._capability_tail == Reg.CAPABILITIES
                   else self._capability_tail + 1] = offset
        self._capability_tail = offset
        self._set16(Reg.STATUS, self._get16(Reg.STATUS) | PciStatus.CAPABILITIES_LIST)

    # -- registers as the device sees them --------------------------------------

    @property
    def command(self) -> Command:
        return Command(self._get16(Reg.COMMAND))

    def bar_address(self, index: int) -> int:
        return int.from_bytes(self.space[Reg.BAR0 + 4 * index:Reg.BAR0 + 4 * index + 4], "little") \
            & self.bars[index].address_mask()

    def decoded(self) -> list[tuple[Bar, int]]:
        """(BAR, base address) of every BAR the command register enables and that holds an address."""
        out = []
        command = self.command
        for index, bar in sorted(self.bars.items()):
            enabled = Command.IO_SPACE if bar.kind is BarKind.IO else Command.MEMORY_SPACE
            address = self.bar_address(index)
            if command & enabled and address:
                out.append((bar, address))
        return out

    def set_intx(self, level: bool) -> None:
        """The device asserts or releases its INTx# pin (6.2.3: the Interrupt Status bit follows it)."""
        self.intx = level
        status = self._get16(Reg.STATUS) & ~PciStatus.INTERRUPT_STATUS
        self._set16(Reg.STATUS, status | (PciStatus.INTERRUPT_STATUS if level else 0))
        self.on_intx(level and not self.command & Command.INTX_DISABLE)

    # -- the configuration space ------------------------------------------------

    def config_read(self, offset: int, size: int) -> int:
        if offset < 0 or offset + size > CONFIG_SIZE:
            return (1 << (8 * size)) - 1
        return int.from_bytes(self.space[offset:offset + size], "little")

    def config_write(self, offset: int, size: int, value: int) -> None:
        if offset < 0 or offset + size > CONFIG_SIZE:
            return
        before = (bytes(self.space[Reg.COMMAND:Reg.COMMAND + 2]), bytes(self.space[Reg.BAR0:Reg.CARDBUS_CIS]))
        ignored = False
        bars_written = set()
        for i, byte in enumerate((value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")):
            at = offset + i
            if Reg.BAR0 <= at < Reg.CARDBUS_CIS:
                self.space[at] = byte
                bars_written.add((at - Reg.BAR0) // 4)
            elif Reg.STATUS <= at < Reg.STATUS + 2:
                clear = byte & (int(W1C_STATUS) >> (8 * (at - Reg.STATUS))) & 0xFF
                self.space[at] &= ~clear
                ignored |= bool(byte & ~clear)
            else:
                mask = self.writable[at]
                sizing_rom = Reg.ROM_ADDRESS <= at < Reg.ROM_ADDRESS + 4     # no ROM: a hardwired-0 BAR
                ignored |= bool((self.space[at] ^ byte) & ~mask) and not sizing_rom
                self.space[at] = self.space[at] & ~mask | byte & mask
        for index in bars_written:
            ignored |= self._settle_bar(index)
        if ignored:
            self._report("write to read-only configuration bits ignored",
                         f"{size} bytes of {value:#x} at {offset:#x}")
        after = (bytes(self.space[Reg.COMMAND:Reg.COMMAND + 2]), bytes(self.space[Reg.BAR0:Reg.CARDBUS_CIS]))
        if before != after:
            self.on_intx(self.intx and not self.command & Command.INTX_DISABLE)
            self.on_decode_change()

    def _settle_bar(self, index: int) -> bool:
        """6.2.5.1: a BAR keeps the address bits above its size and its type bits; an unimplemented one stays 0.
        True if the driver's value had to change (worth a log line only for an unimplemented BAR)."""
        start = Reg.BAR0 + 4 * index
        written = int.from_bytes(self.space[start:start + 4], "little")
        bar = self.bars.get(index)
        new = written & bar.address_mask() | bar.type_bits() if bar is not None else 0
        self.space[start:start + 4] = new.to_bytes(4, "little")
        return bar is None and written != 0 and written != 0xFFFF_FFFF

    def _get16(self, offset: int) -> int:
        return int.from_bytes(self.space[offset:offset + 2], "little")

    def _set16(self, offset: int, value: int) -> None:
        self.space[offset:offset + 2] = (value & 0xFFFF).to_bytes(2, "little")

    def _report(self, rule: str, detail: str) -> None:
        if rule in self._reported:
            return
        self._reported.add(rule)
        if self.log is not None:
            print(f"emu: pci {self.name}: {rule}: {detail}", file=self.log)


class ConfigAddress(enum.IntFlag):
    """3.2.2.3.2: the CONFIG_ADDRESS register at 0xCF8 (bus 23-16, device 15-11, function 10-8, register 7-2)."""

    ENABLE = 1 << 31             # CONFIG_DATA accesses become configuration cycles


CONFIG_ADDRESS_MASK = 0x80FF_FFFC
"""Bits of CONFIG_ADDRESS that hold a value; 30-24 are reserved and 1-0 always read 0."""


class PciHost:
    """The host bridge (00:00.0), the configuration ports (map at 0xCF8, 8 ports) and BAR decoding.

    ``ports`` and ``mmio`` are the machine's buses; ``ram_size`` keeps memory BARs off RAM; ``irq(n)`` is the
    interrupt controller's input n, which INTx# pins reach through the board's wiring (``intx_irq``)."""

    def __init__(self, ports: Bus, mmio: Bus, ram_size: int, irq: Callable[[int], IrqLine],
                 log: TextIO | None = None) -> None:
        self.irq = irq
        self._intx_lines: dict[int, WiredOr] = {}
        self.ports_bus = ports
        self.mmio_bus = mmio
        self.ram_size = ram_size
        self.log = log
        self.address = 0
        self.functions: dict[int, PciFunction] = {}
        """Device number on bus 0 -> its function 0."""
        self._mapped: dict[int, list[tuple[Bus, int]]] = {}
        self._reported: set[str] = set()
        self.bridge = PciFunction("host-bridge", vendor_id=0x8086, device_id=0x1237,   # an Intel 82441FX PMC
                                  class_code=ClassCode.HOST_BRIDGE, revision_id=2, log=log)
        self.attach(0, self.bridge)

    def attach(self, slot: int, function: PciFunction) -> None:
        """Plug ``function`` in as device ``slot`` on bus 0."""
        if not 0 <= slot < 32 or slot in self.functions:
            raise ValueError(f"PCI slot {slot} is taken or does not exist")
        self.functions[slot] = function
        self._mapped[slot] = []
        function.on_decode_change = lambda: self._remap(slot)
        pin = function.config_read(Reg.INTERRUPT_PIN, 1)
        if 1 <= pin <= 4:
            irq = intx_irq(slot, pin)
            if irq not in self._intx_lines:
                self._intx_lines[irq] = WiredOr(self.irq(irq))
            function.on_intx = self._intx_lines[irq].input(f"{function.name}-int{'ABCD'[pin - 1]}").set

    def info(self) -> str:
        """The functions on bus 0 as QEMU's ``info pci`` shows them: IDs, class, IRQ and pin, BARs."""
        out = []
        for slot, function in sorted(self.functions.items()):
            read = function.config_read
            class_code = read(Reg.CLASS_CODE, 3)
            kind = {ClassCode.HOST_BRIDGE: "Host bridge", ClassCode.SCSI_STORAGE: "SCSI controller"}.get(
                class_code, f"Class {class_code >> 8:04x}")
            out.append(f"  Bus  0, device {slot:3d}, function 0:")
            out.append(f"    {kind}: PCI device {read(Reg.VENDOR_ID, 2):04x}:{read(Reg.DEVICE_ID, 2):04x}")
            subsystem = read(Reg.SUBSYSTEM_VENDOR_ID, 2), read(Reg.SUBSYSTEM_ID, 2)
            if subsystem[0]:
                out.append(f"      PCI subsystem {subsystem[0]:04x}:{subsystem[1]:04x}")
            pin = read(Reg.INTERRUPT_PIN, 1)
            if 1 <= pin <= 4:
                out.append(f"      IRQ {read(Reg.INTERRUPT_LINE, 1)}, pin {'ABCD'[pin - 1]}")
            for index, bar in sorted(function.bars.items()):
                base = function.bar_address(index)
                where = "I/O" if bar.kind is BarKind.IO else "32 bit memory"
                shown = f"at {base:#x} [{base + bar.size - 1:#x}]" if base else "unassigned"
                out.append(f"      BAR{index}: {where} {shown}.")
            out.append(f'      id "{function.name}"')
        return "\n".join(out)

    # -- configuration mechanism #1 ----------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if offset < 4:
            return self.address if offset == 0 and size == 4 else (1 << (8 * size)) - 1
        target = self._target(offset, size)
        if target is None:
            return (1 << (8 * size)) - 1
        function, register = target
        return function.config_read(register, size)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset < 4:
            if offset == 0 and size == 4:
                self.address = value & CONFIG_ADDRESS_MASK
            return
        target = self._target(offset, size)
        if target is not None:
            target[0].config_write(target[1], size, value)

    def config_read(self, slot: int, offset: int, size: int) -> int:
        """What the firmware reads through the ports: register ``offset`` of device ``slot`` on bus 0."""
        function = self.functions.get(slot)
        return function.config_read(offset, size) if function is not None else (1 << (8 * size)) - 1

    def config_write(self, slot: int, offset: int, size: int, value: int) -> None:
        function = self.functions.get(slot)
        if function is not None:
            function.config_write(offset, size, value)

    def _target(self, offset: int, size: int) -> tuple[PciFunction, int] | None:
        """The function and register a CONFIG_DATA access reaches: none without ENABLE, for a bus other than
        0, a function other than 0, an empty slot, or an access crossing the dword."""
        a = self.address
        data = offset - 4
        if not a & ConfigAddress.ENABLE or data + size > 4:
            return None
        bus, slot, function = (a >> 16) & 0xFF, (a >> 11) & 0x1F, (a >> 8) & 0x7
        if bus or function:
            return None
        target = self.functions.get(slot)
        return (target, (a & 0xFC) + data) if target is not None else None

    # -- decoding -----------------------------------------------------------------

    def _remap(self, slot: int) -> None:
        """The function in ``slot`` changed its BARs or command register: decode what it now asks for."""
        for bus, base in self._mapped[slot]:
            bus.unmap(base)
        self._mapped[slot] = []
        function = self.functions[slot]
        for bar, base in function.decoded():
            bus = self.ports_bus if bar.kind is BarKind.IO else self.mmio_bus
            limit = IO_SPACE_SIZE if bar.kind is BarKind.IO else MEMORY_SPACE_END
            where = f"{function.name} {bar.name} at {base:#x}+{bar.size:#x}"
            if base + bar.size > limit or (bar.kind is BarKind.MEMORY32 and base < self.ram_size):
                self._report("BAR outside its address space or over RAM: not decoded", where)
                continue
            try:
                bus.map(base, bar.size, bar.region, f"{function.name}-{bar.name}")
            except ValueError as err:
                self._report("BAR overlaps another mapping: not decoded", f"{where}: {err}")
                continue
            self._mapped[slot].append((bus, base))

    def _report(self, rule: str, detail: str) -> None:
        if rule in self._reported:
            return
        self._reported.add(rule)
        if self.log is not None:
            print(f"emu: pci: {rule}: {detail}", file=self.log)
