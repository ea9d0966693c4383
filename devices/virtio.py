"""What every virtio device does whatever its transport: status, feature negotiation, virtqueues, interrupts.

Follows OASIS virtio 1.2 chapter 2 (the device status field of 2.1, feature bits of 2.2, notifications of 2.3,
split virtqueues of 2.7 in ``devices/virtqueue.py``), the driver's initialization sequence of 3.1.1, and the
transport-independent reserved feature bits of chapter 6.  A transport (``virtio_mmio``, ``virtio_pci``) owns
the register layout through which a driver reaches these operations and nothing else: one :class:`VirtioCore`
per device, shared by both, so a queue or a chain is validated the same way whichever bus carries it.

A device type (``virtio_blk``) is a :class:`VirtioDevice`: its id, feature bits, queue sizes, config space and
the handling of one request.  Requests run synchronously inside the driver's notify.

A guest mistake never raises: a malformed queue setup or ring sets DEVICE_NEEDS_RESET with a configuration
change interrupt (2.1.2), a malformed chain is left to the device to fail, and each distinct problem is logged
once.

The legacy interface (virtio 1.2 section 4.1.4.8 and 7.4's 0.9.5 semantics) differs here in one way: a legacy
driver has no FEATURES_OK step and need not accept VERSION_1, so :attr:`VirtioState.legacy` switches those
checks off; the transport sets it when a driver uses the legacy registers.

Not modelled: packed virtqueues, queue reset (1.2), VIRTIO_F_EVENT_IDX, VIRTIO_F_NOTIFICATION_DATA, config
space changes at run time (the generation stays 0).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, TextIO

from cpu.physical import PhysicalMemory
from devices.irq import IrqLine
from devices.virtqueue import Chain, Problem, Virtqueue


class Status(enum.IntFlag):
    """2.1: the device status field, written by the driver as it progresses through initialization."""

    ACKNOWLEDGE = 1            # the guest has noticed the device
    DRIVER = 2                 # the guest knows how to drive it
    DRIVER_OK = 4              # the driver is set up: the device may now use the queues
    FEATURES_OK = 8            # the driver has accepted features; the device clears it if it refuses them
    DEVICE_NEEDS_RESET = 0x40  # set by the device: it met an error it cannot recover from
    FAILED = 0x80              # the driver has given up on the device


class Interrupt(enum.IntFlag):
    """Why the interrupt is raised: virtio-mmio's InterruptStatus (4.2.2) and virtio-pci's ISR (4.1.4.5)."""

    USED_BUFFER = 1            # the device has put buffers in a used ring (2.3.2)
    CONFIGURATION_CHANGE = 2   # the config space changed, or DEVICE_NEEDS_RESET was set (2.1.2, 2.3.1)


class Feature(enum.IntFlag):
    """Chapter 6: reserved feature bits that belong to the transport and the virtqueues, not to one device."""

    INDIRECT_DESC = 1 << 28    # the driver may put a descriptor table in a buffer (2.7.5.3); virtqueue follows it
    VERSION_1 = 1 << 32        # a modern device; a modern driver must accept it, and we require it


TRANSPORT_FEATURES = Feature.INDIRECT_DESC | Feature.VERSION_1


class VirtioDevice(Protocol):
    """What a device type gives the transport."""

    name: str                    # for log lines, e.g. "virtio-blk"
    device_id: int               # section 5 device type
    features: int                # device-specific feature bits (0-23) it offers
    queue_sizes: tuple[int, ...]  # the largest size of each of its virtqueues

    def config(self) -> bytes:
        """The device-specific configuration structure, little-endian."""
        ...

    def process(self, queue: int, chain: Chain, memory: PhysicalMemory) -> int | Problem:
        """Carry out one request (``chain.problem`` may be set: then fail it if possible); the number of bytes
        written to the writable buffers, or why the request cannot be completed at all."""
        ...


@dataclass
class VirtioState:
    """Everything the driver can set or observe, whatever the transport."""

    queues: list[Virtqueue]
    status: Status = Status(0)
    driver_features: int = 0
    interrupt_status: Interrupt = Interrupt(0)
    legacy: bool = False           # the driver uses the legacy interface: no FEATURES_OK, no VERSION_1


class VirtioCore:
    """One virtio device's transport-independent behaviour; ``irq`` is high while ``interrupt_status`` is not 0."""

    def __init__(self, device: VirtioDevice, memory: PhysicalMemory, irq: IrqLine,
                 log: TextIO | None = None) -> None:
        self.device = device
        self.memory = memory
        self.irq = irq
        self.log = log
        self.offered = device.features | TRANSPORT_FEATURES
        self.state: VirtioState
        self._reported: set[str] = set()
        self.reset()

    def reset(self) -> None:
        """The state after power-on, as when the driver writes 0 to the status (2.1, 3.1.1)."""
        self.state = VirtioState(queues=[Virtqueue(size) for size in self.device.queue_sizes])
        self.irq.lower()

    def queue(self, index: int) -> Virtqueue | None:
        queues = self.state.queues
        return queues[index] if 0 <= index < len(queues) else None

    # -- negotiation ------------------------------------------------------------

    def offered_word(self, word: int) -> int:
        """Bits ``32 * word`` to ``32 * word + 31`` of the offered features (0 beyond bit 63)."""
        return (self.offered >> (32 * word)) & 0xFFFF_FFFF if 0 <= word < 2 else 0

    def accept_word(self, word: int, value: int) -> None:
        """The driver accepts feature bits ``32 * word`` and up (3.1.1 step 5)."""
        s = self.state
        if s.status & Status.FEATURES_OK:
            self.report(Problem("driver features written after FEATURES_OK", f"word {word}"))
        elif 0 <= word < 2:
            shift = 32 * word
            s.driver_features = s.driver_features & ~(0xFFFF_FFFF << shift) | (value & 0xFFFF_FFFF) << shift
        elif value:
            self.report(Problem("driver accepts feature bits beyond bit 63", f"word {word}"))

    def set_status(self, value: int) -> None:
        """2.1, 3.1.1: 0 resets; FEATURES_OK sticks only if the accepted features are acceptable."""
        if value == 0:
            self.reset()
            return
        s = self.state
        new = Status(value & 0xFF) & ~Status.DEVICE_NEEDS_RESET | s.status & Status.DEVICE_NEEDS_RESET
        if new & Status.FEATURES_OK and not s.status & Status.FEATURES_OK and not s.legacy:
            unoffered = s.driver_features & ~self.offered
            if unoffered or not s.driver_features & Feature.VERSION_1:
                self.report(Problem("FEATURES_OK refused: driver accepted features not offered or not VERSION_1",
                                    f"accepted {s.driver_features:#x}, offered {self.offered:#x}"))
                new &= ~Status.FEATURES_OK
        s.status = new

    # -- queues -----------------------------------------------------------------

    def set_ready(self, queue: Virtqueue, ready: bool) -> None:
        """Check the layout before the first notify can make the device touch it."""
        if ready and not queue.ready:
            problem = queue.layout_problem(self.memory)
            if problem is not None:
                self.needs_reset(problem)
                return
        queue.ready = ready

    def notify(self, index: int) -> None:
        """2.7.13 and the transports' notify: take every available chain, hand it to the device, return it in
        the used ring."""
        s = self.state
        running = s.status & Status.DRIVER_OK and not s.status & (Status.DEVICE_NEEDS_RESET | Status.FAILED)
        queue = self.queue(index)
        if not running or queue is None or not queue.ready:
            self.report(Problem("notify ignored: device not running or queue not ready",
                                f"queue {index}, status {int(s.status):#x}"))
            return
        pending = queue.pending(self.memory)
        if pending > queue.size:
            self.needs_reset(Problem("available index moved by more than the queue size",
                                     f"queue {index}: {pending} new entries in a queue of {queue.size}"))
            return
        indirect = bool(s.driver_features & Feature.INDIRECT_DESC)
        for _ in range(pending):
            chain = queue.pop(self.memory, indirect)
            if chain.problem is not None:
                self.report(chain.problem)
            written = self.device.process(index, chain, self.memory)
            if isinstance(written, Problem):
                self.needs_reset(written)
                return
            queue.push(self.memory, chain.head, written)
        if pending and queue.interrupt_wanted(self.memory):
            self.interrupt(Interrupt.USED_BUFFER)

    # -- interrupts and errors --------------------------------------------------

    def interrupt(self, cause: Interrupt) -> None:
        self.state.interrupt_status |= cause
        self.irq.raise_()

    def acknowledge(self, causes: int) -> None:
        """The driver has handled ``causes``: they are cleared, and the line drops when none is left."""
        self.state.interrupt_status &= ~causes
        self.irq.set(bool(self.state.interrupt_status))

    def needs_reset(self, problem: Problem) -> None:
        """2.1.2: an error the device cannot recover from; tell the driver with a config change interrupt."""
        self.report(problem)
        self.state.status |= Status.DEVICE_NEEDS_RESET
        self.interrupt(Interrupt.CONFIGURATION_CHANGE)

    def report(self, problem: Problem) -> None:
        """Log a broken rule, once per rule per device."""
        if problem.rule in self._reported:
            return
        self._reported.add(problem.rule)
        if self.log is not None:
            print(f"emu: {self.device.name}: {problem.rule}: {problem.detail}", file=self.log)
