"""virtio over PCI: a transitional device with the modern capabilities in a memory BAR and the legacy I/O BAR.

Follows OASIS virtio 1.2 section 4.1 "Virtio Over PCI Bus": the PCI IDs of 4.1.2 (vendor 0x1AF4, the
transitional device ID of 4.1.2.3 with the device type in the subsystem ID, revision 0), the vendor-specific
capabilities of 4.1.4 (struct virtio_pci_cap, 4.1.4.1) pointing into BAR 1: the common configuration structure
(4.1.4.3), the notification area (4.1.4.4, one 4-byte slot per queue), the ISR status byte (4.1.4.5) and the
device-specific configuration (4.1.4.6); and the legacy register layout of 4.1.4.8 in I/O BAR 0, which a legacy
driver (Linux's virtio_pci_legacy, or `virtio_pci.force_legacy=1`) uses instead.  Status, features, virtqueues
and their validation are ``devices.virtio.VirtioCore``'s, the same code virtio-mmio runs.

Interrupts are INTx: the core's line is the function's INTA# pin, asserted while the ISR has a bit set; reading
the ISR (either BAR) returns it and clears it, which releases the pin (4.1.4.5.1).  A device does DMA only while
the driver has set Command.BUS_MASTER: a notify without it is ignored and logged.

Accesses must have a field's width (a 64-bit queue address may also be written as two 32-bit halves, as
Linux does); any other is ignored, reads 0 and is logged once.  Not modelled: MSI-X (the vector fields read
VIRTIO_MSI_NO_VECTOR and no MSI-X capability is offered), the PCI configuration access capability
(VIRTIO_PCI_CAP_PCI_CFG, 4.1.4.9), shared memory capabilities, queue_notify_data and queue_reset (1.2).
"""

from __future__ import annotations

import ctypes
import enum
from typing import TextIO

from cpu.physical import PhysicalMemory
from devices.irq import IrqLine
from devices.pci import Bar, BarKind, CapabilityId, ClassCode, Command, PciFunction
from devices.virtio import VirtioCore, VirtioDevice
from devices.virtqueue import Problem, Virtqueue

VENDOR_ID = 0x1AF4           # 4.1.2: Red Hat, Inc. (the Qumranet vendor ID virtio has always used)
TRANSITIONAL_DEVICE_IDS = {1: 0x1000, 2: 0x1001, 3: 0x1003, 4: 0x1005, 5: 0x1002, 8: 0x1004, 9: 0x1009}
"""4.1.2.3: transitional PCI device ID of each device type (network, block, console, entropy, balloon, SCSI, 9P)."""

LEGACY_BAR, MODERN_BAR = 0, 1
LEGACY_BAR_SIZE = 0x40       # 20 bytes of legacy registers and the device config (24 bytes for a block device)
MODERN_BAR_SIZE = 0x4000     # four 4 KiB regions


class Region(enum.IntEnum):
    """Where each structure lies in the modern BAR (our choice; the capabilities tell the driver)."""

    COMMON = 0x0000
    ISR = 0x1000
    DEVICE = 0x2000
    NOTIFY = 0x3000


NOTIFY_OFF_MULTIPLIER = 4    # queue n's notify address is NOTIFY + 4 * n (queue_notify_off = n)
NO_VECTOR = 0xFFFF           # VIRTIO_MSI_NO_VECTOR


class CfgType(enum.IntEnum):
    """4.1.4: cfg_type of struct virtio_pci_cap."""

    COMMON = 1
    NOTIFY = 2
    ISR = 3
    DEVICE = 4


class VirtioPciCap(ctypes.LittleEndianStructure):
    """struct virtio_pci_cap (4.1.4); cap_vndr and cap_next are written by the capability list."""

    _pack_ = 1
    _fields_ = [("cap_vndr", ctypes.c_uint8),     # 0  0x09: vendor specific
                ("cap_next", ctypes.c_uint8),     # 1  offset of the next capability
                ("cap_len", ctypes.c_uint8),      # 2  length of this structure
                ("cfg_type", ctypes.c_uint8),     # 3  CfgType
                ("bar", ctypes.c_uint8),          # 4  which BAR holds the structure
                ("id", ctypes.c_uint8),           # 5  distinguishes several capabilities of one type
                ("padding", ctypes.c_uint8 * 2),  # 6
                ("offset", ctypes.c_uint32),      # 8  where the structure starts in the BAR
                ("length", ctypes.c_uint32)]      # 12 its length in bytes


class VirtioPciNotifyCap(ctypes.LittleEndianStructure):
    """struct virtio_pci_notify_cap (4.1.4.4): the capability and the multiplier of queue_notify_off."""

    _pack_ = 1
    _fields_ = [("cap", VirtioPciCap),                   # 0
                ("notify_off_multiplier", ctypes.c_uint32)]  # 16


assert ctypes.sizeof(VirtioPciCap) == 16 and ctypes.sizeof(VirtioPciNotifyCap) == 20


class Common(enum.IntEnum):
    """4.1.4.3: struct virtio_pci_common_cfg, offsets within the COMMON region."""

    DEVICE_FEATURE_SELECT = 0x00   # le32 RW which 32-bit word device_feature shows
    DEVICE_FEATURE = 0x04          # le32 R  that word of the offered features
    DRIVER_FEATURE_SELECT = 0x08   # le32 RW which word driver_feature writes
    DRIVER_FEATURE = 0x0C          # le32 RW that word of the accepted features
    CONFIG_MSIX_VECTOR = 0x10      # le16 RW MSI-X vector for config changes (no MSI-X: NO_VECTOR)
    NUM_QUEUES = 0x12              # le16 R  how many virtqueues the device has
    DEVICE_STATUS = 0x14           # u8   RW the device status of 2.1; 0 resets
    CONFIG_GENERATION = 0x15       # u8   R  changes when the device config changes (never here)
    QUEUE_SELECT = 0x16            # le16 RW which queue the queue_* fields address
    QUEUE_SIZE = 0x18              # le16 RW the queue's size: its maximum at reset, the driver may lower it
    QUEUE_MSIX_VECTOR = 0x1A       # le16 RW (no MSI-X: NO_VECTOR)
    QUEUE_ENABLE = 0x1C            # le16 RW 1 once the driver has set the queue up
    QUEUE_NOTIFY_OFF = 0x1E        # le16 R  the queue's slot in the notification area
    QUEUE_DESC = 0x20              # le64 RW descriptor area
    QUEUE_DRIVER = 0x28            # le64 RW driver area (available ring)
    QUEUE_DEVICE = 0x30            # le64 RW device area (used ring)


COMMON_SIZE = 0x38
WIDTHS = {Common.DEVICE_FEATURE_SELECT: 4, Common.DEVICE_FEATURE: 4, Common.DRIVER_FEATURE_SELECT: 4,
          Common.DRIVER_FEATURE: 4, Common.CONFIG_MSIX_VECTOR: 2, Common.NUM_QUEUES: 2, Common.DEVICE_STATUS: 1,
          Common.CONFIG_GENERATION: 1, Common.QUEUE_SELECT: 2, Common.QUEUE_SIZE: 2, Common.QUEUE_MSIX_VECTOR: 2,
          Common.QUEUE_ENABLE: 2, Common.QUEUE_NOTIFY_OFF: 2, Common.QUEUE_DESC: 8, Common.QUEUE_DRIVER: 8,
          Common.QUEUE_DEVICE: 8}
QUEUE_AREAS = {Common.QUEUE_DESC: "desc", Common.QUEUE_DRIVER: "driver", Common.QUEUE_DEVICE: "device"}


class Legacy(enum.IntEnum):
    """4.1.4.8: the legacy registers at the start of I/O BAR 0 (without MSI-X), then the device config."""

    HOST_FEATURES = 0x00    # le32 R  feature bits 0-31 the device offers
    GUEST_FEATURES = 0x04   # le32 RW feature bits 0-31 the driver accepts
    QUEUE_PFN = 0x08        # le32 RW the selected queue's page number (address / 4096); 0 disables it
    QUEUE_NUM = 0x0C        # le16 R  the selected queue's (fixed) size
    QUEUE_SEL = 0x0E        # le16 RW
    QUEUE_NOTIFY = 0x10     # le16 W  index of the queue with new buffers
    STATUS = 0x12           # u8   RW device status; 0 resets
    ISR = 0x13              # u8   R  the ISR, cleared by the read
    CONFIG = 0x14           # the device-specific configuration


LEGACY_WIDTHS: dict[int, int] = {
    Legacy.HOST_FEATURES: 4, Legacy.GUEST_FEATURES: 4, Legacy.QUEUE_PFN: 4, Legacy.QUEUE_NUM: 2,
    Legacy.QUEUE_SEL: 2, Legacy.QUEUE_NOTIFY: 2, Legacy.STATUS: 1, Legacy.ISR: 1}
LEGACY_ALIGN = 4096          # VIRTIO_PCI_VRING_ALIGN: the used ring starts on the page after the available ring


class VirtioPci:
    """One virtio device as a PCI function: attach ``function`` to a ``devices.pci.PciHost``."""

    def __init__(self, device: VirtioDevice, memory: PhysicalMemory, log: TextIO | None = None) -> None:
        self.device = device
        self.function = PciFunction(
            device.name, vendor_id=VENDOR_ID, device_id=TRANSITIONAL_DEVICE_IDS[device.device_id],
            class_code=ClassCode.SCSI_STORAGE, revision_id=0, subsystem_vendor_id=VENDOR_ID,
            subsystem_id=device.device_id, interrupt_pin=1, log=log,
            bars={LEGACY_BAR: Bar(BarKind.IO, LEGACY_BAR_SIZE, LegacyRegisters(self), "legacy"),
                  MODERN_BAR: Bar(BarKind.MEMORY32, MODERN_BAR_SIZE, ModernRegisters(self), "modern")})
        self.core = VirtioCore(device, memory, IrqLine(self.function.set_intx, f"{device.name}-inta"), log)
        offset = 0x40
        for cfg_type, start, length in ((CfgType.COMMON, Region.COMMON, COMMON_SIZE), (CfgType.ISR, Region.ISR, 1),
                                        (CfgType.DEVICE, Region.DEVICE, len(device.config()))):
            cap = VirtioPciCap(cap_len=ctypes.sizeof(VirtioPciCap), cfg_type=cfg_type, bar=MODERN_BAR,
                               offset=start, length=length)
            self.function.add_capability(CapabilityId.VENDOR_SPECIFIC, bytes(cap)[2:], offset)
            offset += 0x10
        notify = VirtioPciNotifyCap(cap=VirtioPciCap(cap_len=ctypes.sizeof(VirtioPciNotifyCap),
                                                     cfg_type=CfgType.NOTIFY, bar=MODERN_BAR, offset=Region.NOTIFY,
                                                     length=NOTIFY_OFF_MULTIPLIER * len(device.queue_sizes)),
                                    notify_off_multiplier=NOTIFY_OFF_MULTIPLIER)
        self.function.add_capability(CapabilityId.VENDOR_SPECIFIC, bytes(notify)[2:], offset)
        self.device_feature_select = 0
        self.driver_feature_select = 0
        self.queue_select = 0
        self.reset()

    def reset(self) -> None:
        """2.1: status 0; every queue's size is back at its maximum (4.1.4.3.2)."""
        self.core.reset()
        for queue in self.core.state.queues:
            queue.size = queue.size_max
        self.device_feature_select = self.driver_feature_select = self.queue_select = 0

    def set_status(self, value: int) -> None:
        if value == 0:
            self.reset()
        else:
            self.core.set_status(value)

    def read_isr(self) -> int:
        """4.1.4.5: the ISR's bits; reading clears them and releases INTx#."""
        bits = int(self.core.state.interrupt_status)
        self.core.acknowledge(bits)
        return bits

    def notify(self, index: int) -> None:
        if not self.function.command & Command.BUS_MASTER:
            self.core.report(Problem("notify ignored: bus mastering is disabled in the command register",
                                     f"queue {index}"))
            return
        self.core.notify(index)

    def read_config(self, offset: int, size: int) -> int:
        return int.from_bytes(self.device.config()[offset:offset + size].ljust(size, b"\0"), "little")

    def misused(self, what: str, offset: int, size: int) -> None:
        self.core.report(Problem(f"{what} access not of a field's width, or to no field",
                                 f"{size} bytes at {offset:#x}"))

    def selected(self) -> Virtqueue | None:
        return self.core.queue(self.queue_select)


class ModernRegisters:
    """BAR 1: the four structures the capabilities point at (bus contract: offsets within the BAR)."""

    def __init__(self, transport: VirtioPci) -> None:
        self.t = transport

    def read(self, offset: int, size: int) -> int:
        t = self.t
        if Region.COMMON <= offset < Region.COMMON + COMMON_SIZE:
            return self._read_common(offset - Region.COMMON, size)
        if offset == Region.ISR:
            return t.read_isr()
        if Region.DEVICE <= offset < Region.NOTIFY:
            return t.read_config(offset - Region.DEVICE, size)
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        t = self.t
        if Region.COMMON <= offset < Region.COMMON + COMMON_SIZE:
            self._write_common(offset - Region.COMMON, size, value)
        elif Region.NOTIFY <= offset < Region.NOTIFY + NOTIFY_OFF_MULTIPLIER * len(t.core.state.queues) \
                and size in (2, 4) and offset % NOTIFY_OFF_MULTIPLIER == 0:
            t.notify((offset - Region.NOTIFY) // NOTIFY_OFF_MULTIPLIER)
        elif Region.DEVICE <= offset < Region.NOTIFY:
            t.core.report(Problem("write to the read-only device configuration", f"{size} bytes at {offset:#x}"))
        else:
            t.misused("modern BAR", offset, size)

    @staticmethod
    def _field(offset: int, size: int) -> tuple[Common, int] | None:
        """The field an access reaches and the bit position within it: a whole field, or a 32-bit half of a
        64-bit one."""
        for field, width in WIDTHS.items():
            if offset == field and size == width:
                return field, 0
            if width == 8 and size == 4 and offset in (field, field + 4):
                return field, 8 * (offset - field)
        return None

    def _read_common(self, offset: int, size: int) -> int:
        t = self.t
        hit = self._field(offset, size)
        if hit is None:
            t.misused("common configuration", offset, size)
            return 0
        field, shift = hit
        queue = t.selected()
        match field:
            case Common.DEVICE_FEATURE_SELECT:
                return t.device_feature_select
            case Common.DEVICE_FEATURE:
                return t.core.offered_word(t.device_feature_select)
            case Common.DRIVER_FEATURE_SELECT:
                return t.driver_feature_select
            case Common.DRIVER_FEATURE:
                word = t.driver_feature_select
                return (t.core.state.driver_features >> (32 * word)) & 0xFFFF_FFFF if word < 2 else 0
            case Common.CONFIG_MSIX_VECTOR | Common.QUEUE_MSIX_VECTOR:
                return NO_VECTOR
            case Common.NUM_QUEUES:
                return len(t.core.state.queues)
            case Common.DEVICE_STATUS:
                return int(t.core.state.status)
            case Common.CONFIG_GENERATION:
                return 0
            case Common.QUEUE_SELECT:
                return t.queue_select
        if queue is None:
            return 0     # 4.1.4.3.1: a queue that does not exist reads as size 0
        match field:
            case Common.QUEUE_SIZE:
                return queue.size
            case Common.QUEUE_ENABLE:
                return int(queue.ready)
            case Common.QUEUE_NOTIFY_OFF:
                return t.queue_select
        return (getattr(queue, QUEUE_AREAS[field]) >> shift) & ((1 << (8 * size)) - 1)

    def _write_common(self, offset: int, size: int, value: int) -> None:
        t = self.t
        hit = self._field(offset, size)
        if hit is None:
            t.misused("common configuration", offset, size)
            return
        field, shift = hit
        match field:
            case Common.DEVICE_FEATURE_SELECT:
                t.device_feature_select = value
            case Common.DRIVER_FEATURE_SELECT:
                t.driver_feature_select = value
            case Common.DRIVER_FEATURE:
                t.core.accept_word(t.driver_feature_select, value)
            case Common.DEVICE_STATUS:
                t.set_status(value)
            case Common.QUEUE_SELECT:
                t.queue_select = value
            case Common.CONFIG_MSIX_VECTOR | Common.QUEUE_MSIX_VECTOR:
                pass     # no MSI-X: the field keeps reading NO_VECTOR, which tells the driver so
            case Common.QUEUE_SIZE | Common.QUEUE_ENABLE | Common.QUEUE_DESC | Common.QUEUE_DRIVER \
                    | Common.QUEUE_DEVICE:
                self._write_queue(field, shift, size, value)
            case _:
                t.core.report(Problem("write to a read-only common configuration field", field.name))

    def _write_queue(self, field: Common, shift: int, size: int, value: int) -> None:
        """4.1.4.3.2: the selected queue's size and areas, frozen once enabled; enabling checks the layout."""
        t = self.t
        queue = t.selected()
        if queue is None:
            t.core.report(Problem("queue field written while queue_select names no queue", field.name))
        elif field == Common.QUEUE_ENABLE:
            if value == 1:
                t.core.set_ready(queue, True)
            else:
                t.core.report(Problem("queue_enable written with a value other than 1", f"{value:#x}"))
        elif queue.ready:
            t.core.report(Problem("queue configuration written while the queue is enabled", field.name))
        elif field == Common.QUEUE_SIZE:
            queue.size = value
        else:
            name = QUEUE_AREAS[field]
            mask = ((1 << (8 * size)) - 1) << shift
            setattr(queue, name, getattr(queue, name) & ~mask | (value << shift) & mask)


class LegacyRegisters:
    """I/O BAR 0: the legacy interface (4.1.4.8), on the same core."""

    def __init__(self, transport: VirtioPci) -> None:
        self.t = transport

    def read(self, offset: int, size: int) -> int:
        t = self.t
        if offset >= Legacy.CONFIG:
            return t.read_config(offset - Legacy.CONFIG, size)
        if LEGACY_WIDTHS.get(offset) != size:
            t.misused("legacy register", offset, size)
            return 0
        queue = t.selected()
        match offset:
            case Legacy.HOST_FEATURES:
                return t.core.offered_word(0)
            case Legacy.GUEST_FEATURES:
                return t.core.state.driver_features & 0xFFFF_FFFF
            case Legacy.QUEUE_PFN:
                return queue.desc // LEGACY_ALIGN if queue is not None and queue.ready else 0
            case Legacy.QUEUE_NUM:
                return queue.size_max if queue is not None else 0
            case Legacy.QUEUE_SEL:
                return t.queue_select
            case Legacy.STATUS:
                return int(t.core.state.status)
            case Legacy.ISR:
                return t.read_isr()
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        t = self.t
        if offset >= Legacy.CONFIG:
            t.core.report(Problem("write to the read-only device configuration", f"{size} bytes at {offset:#x}"))
            return
        if LEGACY_WIDTHS.get(offset) != size:
            t.misused("legacy register", offset, size)
            return
        if offset != Legacy.STATUS or value:
            t.core.state.legacy = True
        match offset:
            case Legacy.GUEST_FEATURES:
                t.core.accept_word(0, value & t.core.offered_word(0))   # a legacy device cannot refuse: it masks
            case Legacy.QUEUE_PFN:
                self._set_pfn(value)
            case Legacy.QUEUE_SEL:
                t.queue_select = value
            case Legacy.QUEUE_NOTIFY:
                t.notify(value)
            case Legacy.STATUS:
                t.set_status(value)
            case _:
                t.core.report(Problem("write to a read-only legacy register", f"offset {offset:#x}"))

    def _set_pfn(self, pfn: int) -> None:
        """The legacy queue layout: descriptors at pfn * 4096, the available ring right after them, the used
        ring at the next 4096-byte boundary; a size fixed at the maximum; 0 disables the queue."""
        t = self.t
        queue = t.selected()
        if queue is None:
            t.core.report(Problem("queue field written while queue_select names no queue", "QUEUE_PFN"))
            return
        if pfn == 0:
            queue.ready = False
            return
        n = queue.size = queue.size_max
        queue.desc = pfn * LEGACY_ALIGN
        queue.driver = queue.desc + 16 * n
        queue.device = -(-(queue.driver + 2 * (3 + n)) // LEGACY_ALIGN) * LEGACY_ALIGN
        queue.ready = False
        t.core.set_ready(queue, True)
