"""virtio over MMIO, version 2 ("modern"): the register window through which a driver finds and runs a device.

Follows OASIS virtio 1.1 section 4.2 (register layout of table 4.1,
device initialization 4.2.3.1, virtqueue configuration 4.2.3.2), with the
device status field of 2.1, feature bits of 2.2 and 6, and the notifications
of 2.3.  The transport is only the register layout: negotiation, the
virtqueues and the interrupt status belong to :class:`devices.virtio.VirtioCore`,
which virtio-pci shares, and a :class:`VirtioDevice` (``virtio_blk``) supplies
its id, feature bits, queue sizes, config space and the handling of one request.

The machine maps one instance at a 0x200-byte window and tells Linux about it
with ``virtio_mmio.device=0x200@<base>:<irq>`` on the kernel command line.
Requests are processed synchronously inside the driver's QueueNotify write.
A guest mistake never raises out of :meth:`VirtioMmio.write` (the core's
rules, and a register access that is not 32 bits wide is ignored and logged).

Not modelled: the legacy (version 1) registers GuestPageSize and QueuePFN,
shared memory regions (SHMSel/SHMLen/SHMBase read as 0), queue reset
(QueueReset, 1.2), VIRTIO_F_NOTIFICATION_DATA, and config space changes at
run time (ConfigGeneration stays 0).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TextIO

from cpu.physical import PhysicalMemory
from devices.irq import IrqLine
from devices.virtio import VirtioCore, VirtioDevice
from devices.virtqueue import Problem

WINDOW_SIZE = 0x200
"""Bytes of guest-physical address space one device occupies: registers up to 0x100, then config space."""

MAGIC = int.from_bytes(b"virt", "little")
VERSION = 2
VENDOR_ID = int.from_bytes(b"emu\0", "little")


class Reg(enum.IntEnum):
    """Table 4.1: the control registers, each 32 bits wide."""

    MAGIC_VALUE = 0x000            # R  "virt": tells a probing driver that a virtio-mmio device is here
    VERSION = 0x004                # R  2: the modern layout (1 would be the legacy one)
    DEVICE_ID = 0x008              # R  the device type of section 5 (2 = block); 0 means no device
    VENDOR_ID = 0x00C              # R  the subsystem vendor, free for the implementer
    DEVICE_FEATURES = 0x010        # R  32 feature bits the device offers, the word chosen by DEVICE_FEATURES_SEL
    DEVICE_FEATURES_SEL = 0x014    # W  which 32-bit word of the offered features DEVICE_FEATURES shows
    DRIVER_FEATURES = 0x020        # W  32 feature bits the driver accepts, the word chosen by DRIVER_FEATURES_SEL
    DRIVER_FEATURES_SEL = 0x024    # W  which 32-bit word DRIVER_FEATURES writes
    QUEUE_SEL = 0x030              # W  which virtqueue the QUEUE_* registers below address
    QUEUE_NUM_MAX = 0x034          # R  the largest size the selected queue may have; 0 if it does not exist
    QUEUE_NUM = 0x038              # W  the size the driver chose for the selected queue
    QUEUE_READY = 0x044            # RW 1 once the driver has set the queue up; writing 0 stops it
    QUEUE_NOTIFY = 0x050           # W  the driver has new buffers in the queue whose index it writes
    INTERRUPT_STATUS = 0x060       # R  Interrupt bits: why the interrupt line is raised
    INTERRUPT_ACK = 0x064          # W  Interrupt bits the driver has handled: they are cleared
    STATUS = 0x070                 # RW the device status of 2.1 (Status bits); writing 0 resets the device
    QUEUE_DESC_LOW = 0x080         # W  the selected queue's descriptor table address, bits 0-31
    QUEUE_DESC_HIGH = 0x084        # W  ... bits 32-63
    QUEUE_DRIVER_LOW = 0x090       # W  its driver area (available ring) address, bits 0-31
    QUEUE_DRIVER_HIGH = 0x094      # W  ... bits 32-63
    QUEUE_DEVICE_LOW = 0x0A0       # W  its device area (used ring) address, bits 0-31
    QUEUE_DEVICE_HIGH = 0x0A4      # W  ... bits 32-63
    CONFIG_GENERATION = 0x0FC      # R  changes when the config space changes, so multi-word reads can retry
    CONFIG = 0x100                 # RW the device-specific configuration space starts here


QUEUE_AREA_REGISTERS = {Reg.QUEUE_DESC_LOW: "desc", Reg.QUEUE_DESC_HIGH: "desc",
                        Reg.QUEUE_DRIVER_LOW: "driver", Reg.QUEUE_DRIVER_HIGH: "driver",
                        Reg.QUEUE_DEVICE_LOW: "device", Reg.QUEUE_DEVICE_HIGH: "device"}


@dataclass
class VirtioMmioState:
    """The transport's own registers; the device's status, features and queues are in the core."""

    device_features_sel: int = 0
    driver_features_sel: int = 0
    queue_sel: int = 0


class VirtioMmio:
    """One virtio device behind the MMIO register window (``read``/``write`` of the bus contract)."""

    def __init__(self, device: VirtioDevice, memory: PhysicalMemory, irq: IrqLine,
                 log: TextIO | None = None) -> None:
        self.core = VirtioCore(device, memory, irq, log)
        self.device = device
        self.state = VirtioMmioState()

    def reset(self) -> None:
        """The state after power-on, as when the driver writes 0 to Status (2.1, 4.2.3.1)."""
        self.core.reset()
        self.state = VirtioMmioState()

    # -- the bus contract ---------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if offset >= Reg.CONFIG:
            config = self.device.config()
            start = offset - Reg.CONFIG
            return int.from_bytes(config[start:start + size].ljust(size, b"\0"), "little")
        if not self._whole_register(offset, size, "read"):
            return 0
        s, core = self.state, self.core.state
        queue = self.core.queue(s.queue_sel)
        match offset:
            case Reg.MAGIC_VALUE:
                return MAGIC
            case Reg.VERSION:
                return VERSION
            case Reg.DEVICE_ID:
                return self.device.device_id
            case Reg.VENDOR_ID:
                return VENDOR_ID
            case Reg.DEVICE_FEATURES:
                return self.core.offered_word(s.device_features_sel)
            case Reg.QUEUE_NUM_MAX:
                return queue.size_max if queue else 0
            case Reg.QUEUE_READY:
                return int(queue.ready) if queue else 0
            case Reg.INTERRUPT_STATUS:
                return int(core.interrupt_status)
            case Reg.STATUS:
                return int(core.status)
            case Reg.CONFIG_GENERATION:
                return 0
        return 0    # write-only and unknown registers

    def write(self, offset: int, size: int, value: int) -> None:
        if offset >= Reg.CONFIG:
            self.core.report(Problem("write to the read-only config space", f"{size} bytes at {offset:#x}"))
            return
        if not self._whole_register(offset, size, "write"):
            return
        s = self.state
        match offset:
            case Reg.DEVICE_FEATURES_SEL:
                s.device_features_sel = value
            case Reg.DRIVER_FEATURES_SEL:
                s.driver_features_sel = value
            case Reg.DRIVER_FEATURES:
                self.core.accept_word(s.driver_features_sel, value)
            case Reg.QUEUE_SEL:
                s.queue_sel = value
            case Reg.STATUS:
                if value == 0:
                    self.reset()
                else:
                    self.core.set_status(value)
            case Reg.INTERRUPT_ACK:
                self.core.acknowledge(value)
            case Reg.QUEUE_NOTIFY:
                self.core.notify(value)
            case (Reg.QUEUE_NUM | Reg.QUEUE_READY | Reg.QUEUE_DESC_LOW | Reg.QUEUE_DESC_HIGH | Reg.QUEUE_DRIVER_LOW
                  | Reg.QUEUE_DRIVER_HIGH | Reg.QUEUE_DEVICE_LOW | Reg.QUEUE_DEVICE_HIGH):
                self._write_queue(Reg(offset), value)
            case _:
                self.core.report(Problem("write to a read-only or unknown register", f"offset {offset:#x}"))

    # -- behaviour ------------------------------------------------------------

    def _whole_register(self, offset: int, size: int, kind: str) -> bool:
        """4.2.2.2: the driver must use 32-bit aligned accesses for the control registers."""
        if size == 4 and offset % 4 == 0:
            return True
        self.core.report(Problem("control register access not 32 bits wide and aligned",
                                 f"{kind} of {size} bytes at {offset:#x}"))
        return False

    def _write_queue(self, reg: Reg, value: int) -> None:
        """4.2.3.2: the selected queue's size, areas and readiness; its layout is frozen while it is ready."""
        queue = self.core.queue(self.state.queue_sel)
        if queue is None:
            self.core.report(Problem("queue register written while QueueSel names no queue", reg.name))
        elif reg == Reg.QUEUE_READY:
            self.core.set_ready(queue, bool(value & 1))
        elif queue.ready:
            self.core.report(Problem("queue configuration written while the queue is ready", reg.name))
        elif reg == Reg.QUEUE_NUM:
            queue.size = value
        else:
            name = QUEUE_AREA_REGISTERS[reg]
            shift = 32 if reg % 8 else 0
            setattr(queue, name, getattr(queue, name) & ~(0xFFFF_FFFF << shift) | value << shift)
