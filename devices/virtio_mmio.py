"""virtio over MMIO, version 2 ("modern"): the register window through which a driver finds and runs a device.

Follows OASIS virtio 1.1 section 4.2 (register layout of table 4.1,
device initialization 4.2.3.1, virtqueue configuration 4.2.3.2), with the
device status field of 2.1, feature bits of 2.2 and 6, and the notifications
of 2.3.  The transport is generic: a :class:`VirtioDevice` (``virtio_blk``)
supplies its id, feature bits, queue sizes, config space and the handling of
one request; the transport owns negotiation, the virtqueues and the interrupt.

The machine maps one instance at a 0x200-byte window and tells Linux about it
with ``virtio_mmio.device=0x200@<base>:<irq>`` on the kernel command line.
Requests are processed synchronously inside the driver's QueueNotify write.
A guest mistake never raises out of :meth:`VirtioMmio.write`: a malformed
queue setup or ring sets DEVICE_NEEDS_RESET with a configuration change
interrupt (2.1.2), a malformed chain is left to the device to fail, and each
distinct problem is logged once.

Not modelled: the legacy (version 1) registers GuestPageSize and QueuePFN,
shared memory regions (SHMSel/SHMLen/SHMBase read as 0), queue reset
(QueueReset, 1.2), VIRTIO_F_NOTIFICATION_DATA, and config space changes at
run time (ConfigGeneration stays 0).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, TextIO

from cpu.physical import PhysicalMemory
from devices.irq import IrqLine
from devices.virtqueue import Chain, Problem, Virtqueue

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


class Status(enum.IntFlag):
    """2.1: the device status field, written by the driver as it progresses through initialization."""

    ACKNOWLEDGE = 1            # the guest has noticed the device
    DRIVER = 2                 # the guest knows how to drive it
    DRIVER_OK = 4              # the driver is set up: the device may now use the queues
    FEATURES_OK = 8            # the driver has accepted features; the device clears it if it refuses them
    DEVICE_NEEDS_RESET = 0x40  # set by the device: it met an error it cannot recover from
    FAILED = 0x80              # the driver has given up on the device


class Interrupt(enum.IntFlag):
    """4.2.2: InterruptStatus/InterruptACK bits."""

    USED_BUFFER = 1            # the device has put buffers in a used ring (2.3.2)
    CONFIGURATION_CHANGE = 2   # the config space changed, or DEVICE_NEEDS_RESET was set (2.1.2, 2.3.1)


class Feature(enum.IntFlag):
    """Chapter 6: reserved feature bits that belong to the transport and the virtqueues, not to one device."""

    INDIRECT_DESC = 1 << 28    # the driver may put a descriptor table in a buffer (2.6.5.3); virtqueue follows it
    VERSION_1 = 1 << 32        # a modern device; version-2 MMIO devices must offer it and we require it


TRANSPORT_FEATURES = Feature.INDIRECT_DESC | Feature.VERSION_1
QUEUE_AREA_REGISTERS = {Reg.QUEUE_DESC_LOW: "desc", Reg.QUEUE_DESC_HIGH: "desc",
                        Reg.QUEUE_DRIVER_LOW: "driver", Reg.QUEUE_DRIVER_HIGH: "driver",
                        Reg.QUEUE_DEVICE_LOW: "device", Reg.QUEUE_DEVICE_HIGH: "device"}


class VirtioDevice(Protocol):
    """What a device type gives the transport."""

    name: str                    # for log lines, e.g. "virtio-blk"
    device_id: int               # section 5 device type
    features: int                # device-specific feature bits (0-23) it offers
    queue_sizes: tuple[int, ...]  # QueueNumMax of each of its virtqueues

    def config(self) -> bytes:
        """The device-specific configuration structure, little-endian."""
        ...

    def process(self, queue: int, chain: Chain, memory: PhysicalMemory) -> int | Problem:
        """Carry out one request (``chain.problem`` may be set: then fail it if possible); the number of bytes
        written to the writable buffers, or why the request cannot be completed at all."""
        ...


@dataclass
class VirtioMmioState:
    """Everything the driver can set or observe through the registers."""

    queues: list[Virtqueue]
    status: Status = Status(0)
    device_features_sel: int = 0
    driver_features_sel: int = 0
    driver_features: int = 0
    queue_sel: int = 0
    interrupt_status: Interrupt = Interrupt(0)


class VirtioMmio:
    """One virtio device behind the MMIO register window (``read``/``write`` of the bus contract)."""

    def __init__(self, device: VirtioDevice, memory: PhysicalMemory, irq: IrqLine,
                 log: TextIO | None = None) -> None:
        self.device = device
        self.memory = memory
        self.irq = irq
        self.log = log
        self.offered = device.features | TRANSPORT_FEATURES
        self.state: VirtioMmioState
        self._reported: set[str] = set()
        self.reset()

    def reset(self) -> None:
        """The state after power-on, as when the driver writes 0 to Status (2.1, 4.2.3.1)."""
        self.state = VirtioMmioState(queues=[Virtqueue(size) for size in self.device.queue_sizes])
        self.irq.lower()

    # -- the bus contract ---------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if offset >= Reg.CONFIG:
            config = self.device.config()
            start = offset - Reg.CONFIG
            return int.from_bytes(config[start:start + size].ljust(size, b"\0"), "little")
        if not self._whole_register(offset, size, "read"):
            return 0
        s = self.state
        queue = self._selected()
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
                return (self.offered >> (32 * s.device_features_sel)) & 0xFFFF_FFFF if s.device_features_sel < 2 else 0
            case Reg.QUEUE_NUM_MAX:
                return queue.size_max if queue else 0
            case Reg.QUEUE_READY:
                return int(queue.ready) if queue else 0
            case Reg.INTERRUPT_STATUS:
                return int(s.interrupt_status)
            case Reg.STATUS:
                return int(s.status)
            case Reg.CONFIG_GENERATION:
                return 0
        return 0    # write-only and unknown registers

    def write(self, offset: int, size: int, value: int) -> None:
        if offset >= Reg.CONFIG:
            self._report(Problem("write to the read-only config space", f"{size} bytes at {offset:#x}"))
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
                self._accept_features(value)
            case Reg.QUEUE_SEL:
                s.queue_sel = value
            case Reg.STATUS:
                self._set_status(value)
            case Reg.INTERRUPT_ACK:
                s.interrupt_status &= ~value
                self.irq.set(bool(s.interrupt_status))
            case Reg.QUEUE_NOTIFY:
                self._notify(value)
            case (Reg.QUEUE_NUM | Reg.QUEUE_READY | Reg.QUEUE_DESC_LOW | Reg.QUEUE_DESC_HIGH | Reg.QUEUE_DRIVER_LOW
                  | Reg.QUEUE_DRIVER_HIGH | Reg.QUEUE_DEVICE_LOW | Reg.QUEUE_DEVICE_HIGH):
                self._write_queue(Reg(offset), value)
            case _:
                self._report(Problem("write to a read-only or unknown register", f"offset {offset:#x}"))

    # -- behaviour ------------------------------------------------------------

    def _whole_register(self, offset: int, size: int, kind: str) -> bool:
        """4.2.2.2: the driver must use 32-bit aligned accesses for the control registers."""
        if size == 4 and offset % 4 == 0:
            return True
        self._report(Problem("control register access not 32 bits wide and aligned",
                             f"{kind} of {size} bytes at {offset:#x}"))
        return False

    def _selected(self) -> Virtqueue | None:
        queues = self.state.queues
        return queues[self.state.queue_sel] if self.state.queue_sel < len(queues) else None

    def _write_queue(self, reg: Reg, value: int) -> None:
        """4.2.3.2: the selected queue's size, areas and readiness; its layout is frozen while it is ready."""
        queue = self._selected()
        if queue is None:
            self._report(Problem("queue register written while QueueSel names no queue", reg.name))
        elif reg == Reg.QUEUE_READY:
            self._set_ready(queue, bool(value & 1))
        elif queue.ready:
            self._report(Problem("queue configuration written while the queue is ready", reg.name))
        elif reg == Reg.QUEUE_NUM:
            queue.size = value
        else:
            name = QUEUE_AREA_REGISTERS[reg]
            shift = 32 if reg % 8 else 0
            setattr(queue, name, getattr(queue, name) & ~(0xFFFF_FFFF << shift) | value << shift)

    def _accept_features(self, value: int) -> None:
        s = self.state
        if s.status & Status.FEATURES_OK:
            self._report(Problem("DriverFeatures written after FEATURES_OK", f"word {s.driver_features_sel}"))
        elif s.driver_features_sel < 2:
            shift = 32 * s.driver_features_sel
            s.driver_features = s.driver_features & ~(0xFFFF_FFFF << shift) | value << shift
        elif value:
            self._report(Problem("driver accepts feature bits beyond bit 63", f"word {s.driver_features_sel}"))

    def _set_status(self, value: int) -> None:
        """2.1, 3.1.1: 0 resets; FEATURES_OK sticks only if the accepted features are acceptable."""
        if value == 0:
            self.reset()
            return
        s = self.state
        new = Status(value & 0xFF) & ~Status.DEVICE_NEEDS_RESET | s.status & Status.DEVICE_NEEDS_RESET
        if new & Status.FEATURES_OK and not s.status & Status.FEATURES_OK:
            unoffered = s.driver_features & ~self.offered
            if unoffered or not s.driver_features & Feature.VERSION_1:
                self._report(Problem("FEATURES_OK refused: driver accepted features not offered or not VERSION_1",
                                     f"accepted {s.driver_features:#x}, offered {self.offered:#x}"))
                new &= ~Status.FEATURES_OK
        s.status = new

    def _set_ready(self, queue: Virtqueue, ready: bool) -> None:
        """4.2.3.2: check the layout before the first notify can make the device touch it."""
        if ready and not queue.ready:
            problem = queue.layout_problem(self.memory)
            if problem is not None:
                self._needs_reset(problem)
                return
        queue.ready = ready

    def _notify(self, index: int) -> None:
        """4.2.3.3: take every available chain, hand it to the device, return it in the used ring (2.6.8)."""
        s = self.state
        running = s.status & Status.DRIVER_OK and not s.status & (Status.DEVICE_NEEDS_RESET | Status.FAILED)
        if not running or index >= len(s.queues) or not s.queues[index].ready:
            self._report(Problem("notify ignored: device not running or queue not ready",
                                 f"queue {index}, status {int(s.status):#x}"))
            return
        queue = s.queues[index]
        pending = queue.pending(self.memory)
        if pending > queue.size:
            self._needs_reset(Problem("available index moved by more than the queue size",
                                      f"queue {index}: {pending} new entries in a queue of {queue.size}"))
            return
        indirect = bool(s.driver_features & Feature.INDIRECT_DESC)
        for _ in range(pending):
            chain = queue.pop(self.memory, indirect)
            if chain.problem is not None:
                self._report(chain.problem)
            written = self.device.process(index, chain, self.memory)
            if isinstance(written, Problem):
                self._needs_reset(written)
                return
            queue.push(self.memory, chain.head, written)
        if pending and queue.interrupt_wanted(self.memory):
            self._interrupt(Interrupt.USED_BUFFER)

    def _needs_reset(self, problem: Problem) -> None:
        """2.1.2: an error the device cannot recover from; tell the driver with a config change interrupt."""
        self._report(problem)
        self.state.status |= Status.DEVICE_NEEDS_RESET
        self._interrupt(Interrupt.CONFIGURATION_CHANGE)

    def _interrupt(self, cause: Interrupt) -> None:
        self.state.interrupt_status |= cause
        self.irq.raise_()

    def _report(self, problem: Problem) -> None:
        if problem.rule in self._reported:
            return
        self._reported.add(problem.rule)
        if self.log is not None:
            print(f"emu: {self.device.name}: {problem.rule}: {problem.detail}", file=self.log)
