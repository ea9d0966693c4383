"""A guest-side virtio driver for tests: it does through the MMIO registers and guest RAM what Linux's
virtio_mmio and virtio_blk drivers do, so the device tests read as a driver's actions.

Guest RAM is small (64 KiB) and has nothing behind it: a device access outside RAM reaches an MMIO bus whose
unassigned-access hook raises, so a missed validation fails the test instead of reading garbage."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

from cpu.physical import PhysicalMemory
from devices.bus import Bus
from devices.irq import IrqLine
from devices.virtio import Status
from devices.virtio_blk import VirtioBlk
from devices.virtio_mmio import Reg, VirtioMmio

RAM_SIZE = 0x10000
DESC, AVAIL, USED = 0x1000, 0x2000, 0x3000   # the ring areas the driver chooses
INDIRECT_TABLE = 0x3800                      # where indirect descriptor tables go
DATA = 0x4000                                # request buffers are allocated from here to the end of RAM

NEXT, WRITE, INDIRECT = 1, 2, 4              # descriptor flags (2.6.5)
T_IN, T_OUT, T_FLUSH, T_GET_ID = 0, 1, 4, 8  # request types (5.2.6)
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2            # status bytes (5.2.6)
UNTOUCHED = 0xEE                             # what the driver puts in the status byte before submitting


def _outside_ram(address: int, size: int, write: bool) -> None:
    raise AssertionError(f"device {'wrote' if write else 'read'} guest-physical {address:#x} outside RAM")


@dataclass
class Completion:
    status: int    # the status byte as the device left it
    data: bytes    # the data buffer after the request
    length: int    # the length the device put in the used element


class GuestDriver:
    """Drives one virtio-mmio device; the machine around it is a PhysicalMemory and an IrqLine that records."""

    def __init__(self, device: VirtioBlk) -> None:
        self.memory = PhysicalMemory(RAM_SIZE, Bus("mmio"))
        self.memory.mmio.on_unassigned = _outside_ram
        self.irq_levels: list[bool] = []
        self.irq = IrqLine(self.irq_levels.append, "virtio")
        self.log = io.StringIO()
        self.device = device
        self.mmio = VirtioMmio(device, self.memory, self.irq, self.log)
        self.queue_size = 0
        self.avail_idx = 0
        self.used_seen = 0
        self.next_desc = 0
        self.next_data = DATA

    # -- registers --------------------------------------------------------------

    def get(self, reg: int) -> int:
        return self.mmio.read(reg, 4)

    def put(self, reg: int, value: int) -> None:
        self.mmio.write(reg, 4, value)

    def status(self) -> Status:
        return Status(self.get(Reg.STATUS))

    def offered_features(self) -> int:
        self.put(Reg.DEVICE_FEATURES_SEL, 1)
        high = self.get(Reg.DEVICE_FEATURES)
        self.put(Reg.DEVICE_FEATURES_SEL, 0)
        return high << 32 | self.get(Reg.DEVICE_FEATURES)

    def negotiate(self, accept: int | None = None) -> Status:
        """3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, accept features (all offered by default), FEATURES_OK;
        the status read back says whether the device took them."""
        self.put(Reg.STATUS, 0)
        self.put(Reg.STATUS, Status.ACKNOWLEDGE)
        self.put(Reg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER)
        features = self.offered_features() if accept is None else accept
        for word in (0, 1):
            self.put(Reg.DRIVER_FEATURES_SEL, word)
            self.put(Reg.DRIVER_FEATURES, features >> (32 * word) & 0xFFFF_FFFF)
        self.put(Reg.STATUS, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK)
        return self.status()

    def setup_queue(self, size: int, desc: int = DESC, avail: int = AVAIL, used: int = USED) -> None:
        """4.2.3.2: select queue 0, choose its size and areas, mark it ready."""
        self.memory.ram[DESC:DATA] = bytes(DATA - DESC)
        self.put(Reg.QUEUE_SEL, 0)
        self.put(Reg.QUEUE_NUM, size)
        for low, address in ((Reg.QUEUE_DESC_LOW, desc), (Reg.QUEUE_DRIVER_LOW, avail),
                             (Reg.QUEUE_DEVICE_LOW, used)):
            self.put(low, address & 0xFFFF_FFFF)
            self.put(low + 4, address >> 32)
        self.put(Reg.QUEUE_READY, 1)
        self.queue_size = size

    def start(self, queue_size: int = 8, accept: int | None = None) -> None:
        """The whole of initialization, as Linux does it, ending in DRIVER_OK."""
        assert self.negotiate(accept) & Status.FEATURES_OK
        self.setup_queue(queue_size)
        self.put(Reg.STATUS, self.get(Reg.STATUS) | Status.DRIVER_OK)

    # -- rings ------------------------------------------------------------------

    def alloc(self, data: bytes | int) -> int:
        """A buffer in guest RAM holding ``data`` (or that many bytes of 0xAA)."""
        content = bytes([0xAA]) * data if isinstance(data, int) else data
        address = self.next_data
        assert address + len(content) <= RAM_SIZE, "test buffers exhausted"
        self.memory.ram[address:address + len(content)] = content
        self.next_data = (address + len(content) + 15) & ~15
        return address

    def descriptor(self, index: int, address: int, length: int, flags: int = 0, next_: int = 0,
                   table: int = DESC) -> None:
        struct.pack_into("<QIHH", self.memory.ram, table + 16 * index, address, length, flags, next_)

    def add_chain(self, buffers: list[tuple[int, int, bool]]) -> int:
        """Write (address, length, writable) as a chain of fresh descriptors; the head index."""
        head = self.next_desc
        for i, (address, length, writable) in enumerate(buffers):
            last = i == len(buffers) - 1
            index = head + i
            self.descriptor(index, address, length, (WRITE if writable else 0) | (0 if last else NEXT), index + 1)
        self.next_desc += len(buffers)
        return head

    def make_available(self, head: int) -> None:
        slot = AVAIL + 4 + 2 * (self.avail_idx % self.queue_size)
        struct.pack_into("<H", self.memory.ram, slot, head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        struct.pack_into("<H", self.memory.ram, AVAIL + 2, self.avail_idx)

    def notify(self) -> None:
        self.put(Reg.QUEUE_NOTIFY, 0)
        self.next_desc = 0
        self.next_data = DATA

    def used_idx(self) -> int:
        return struct.unpack_from("<H", self.memory.ram, USED + 2)[0]

    def take_used(self) -> list[tuple[int, int]]:
        """The (head, length) elements the device has added to the used ring since the last call."""
        out = []
        while self.used_seen != self.used_idx():
            slot = USED + 4 + 8 * (self.used_seen % self.queue_size)
            out.append(struct.unpack_from("<II", self.memory.ram, slot))
            self.used_seen = (self.used_seen + 1) & 0xFFFF
        return out

    # -- block requests ---------------------------------------------------------

    def block_request(self, kind: int, sector: int = 0, out: bytes = b"", in_length: int = 0) -> Completion:
        """One virtio-blk request as Linux builds it: header, data, status byte, each in its own descriptor."""
        header = self.alloc(struct.pack("<IIQ", kind, 0, sector))
        buffers = [(header, 16, False)]
        if out:
            buffers.append((self.alloc(out), len(out), False))
        data = self.alloc(in_length) if in_length else 0
        if in_length:
            buffers.append((data, in_length, True))
        status = self.alloc(bytes([UNTOUCHED]))
        buffers.append((status, 1, True))
        return self.submit(buffers, status, data, in_length)

    def submit(self, buffers: list[tuple[int, int, bool]], status: int, data: int = 0,
               in_length: int = 0) -> Completion:
        """Make one chain available, notify, and collect its completion."""
        head = self.add_chain(buffers)
        self.make_available(head)
        self.notify()
        used = self.take_used()
        assert [h for h, _ in used] == [head]
        return Completion(self.memory.ram[status], bytes(self.memory.ram[data:data + in_length]), used[0][1])

    def read_sectors(self, sector: int, count: int) -> Completion:
        return self.block_request(T_IN, sector, in_length=512 * count)

    def write_sectors(self, sector: int, data: bytes) -> Completion:
        return self.block_request(T_OUT, sector, out=data)


def sector_content(sector: int) -> bytes:
    """What the test image holds in each 512-byte sector: its number in words, then dots."""
    return f"sector {sector}".encode().ljust(512, b".")


def make_image(directory: Path, sectors: int = 16, name: str = "disk.img") -> Path:
    path = directory / name
    path.write_bytes(b"".join(sector_content(i) for i in range(sectors)))
    return path
