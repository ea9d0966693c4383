"""Split virtqueues: the descriptor table, the available ring and the used ring.

Follows OASIS virtio 1.1 section 2.6 ("Split Virtqueues", 2.7 in 1.2; the
subsection numbers below are 1.1's): the driver publishes chains of
descriptors (buffers in guest memory, readable ones first, then writable
ones) by putting the head index in the available ring; the device takes them
in order, does the work and puts (head, bytes written) in the used ring.
Indices are free-running 16-bit counters; the slot is ``index % size``.

Everything read from guest memory is the driver's word, not a fact: each ring
area and each buffer must lie entirely in guest RAM, each descriptor index
must be inside its table, and a walk visits at most as many descriptors as
the table holds (the queue size; an indirect table may be no larger), which
catches loops.  A malformed chain is still returned, with
:attr:`Chain.problem` saying what is wrong and holding only the buffers that
passed the checks, so the device can complete it with an error status.

Not modelled: packed virtqueues, VIRTIO_F_EVENT_IDX (used_event and
avail_event are never read or written), VIRTIO_F_NOTIFICATION_DATA, memory
barriers (the device runs synchronously inside the driver's notify write).
"""

from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from cpu.physical import PhysicalMemory

_U64, _U32, _U16 = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint16


class VirtqDesc(ctypes.LittleEndianStructure):
    """struct virtq_desc (2.6.5): one buffer of a chain."""

    _fields_ = [("addr", _U64),    # 0  guest-physical address of the buffer
                ("len", _U32),     # 8  its length in bytes
                ("flags", _U16),   # 12 DescFlag bits
                ("next", _U16)]    # 14 index of the next descriptor when DescFlag.NEXT is set


class VirtqRingHeader(ctypes.LittleEndianStructure):
    """The flags/idx pair opening both struct virtq_avail (2.6.6) and struct virtq_used (2.6.8)."""

    _fields_ = [("flags", _U16),   # 0 AvailFlag or UsedFlag bits
                ("idx", _U16)]     # 2 where the writer of this ring will put its next entry (free-running)


class VirtqUsedElem(ctypes.LittleEndianStructure):
    """struct virtq_used_elem (2.6.8): one completed chain."""

    _fields_ = [("id", _U32),      # 0 head index of the completed chain
                ("len", _U32)]     # 4 bytes the device wrote into the chain's writable buffers


assert ctypes.sizeof(VirtqDesc) == 16
assert ctypes.sizeof(VirtqRingHeader) == 4
assert ctypes.sizeof(VirtqUsedElem) == 8

DESC_SIZE = ctypes.sizeof(VirtqDesc)
RING_HEADER_SIZE = ctypes.sizeof(VirtqRingHeader)
AVAIL_ENTRY_SIZE = 2                      # le16 ring[Queue Size], after the header
USED_ENTRY_SIZE = ctypes.sizeof(VirtqUsedElem)


class DescFlag(enum.IntFlag):
    NEXT = 1        # the chain continues at `next`
    WRITE = 2       # the buffer is device-writable (otherwise device-readable)
    INDIRECT = 4    # the buffer holds a table of descriptors (2.6.5.3, needs VIRTIO_F_INDIRECT_DESC)


class AvailFlag(enum.IntFlag):
    NO_INTERRUPT = 1    # the driver asks not to be interrupted for used buffers (a hint, 2.6.7)


class Buffer(NamedTuple):
    """A checked piece of guest RAM: ``[address, address + length)`` lies inside RAM."""

    address: int
    length: int


@dataclass(frozen=True)
class Problem:
    """Why the driver's structures cannot be used as they are."""

    rule: str      # the rule the driver broke, the same text every time: logged once per device
    detail: str    # the offending values


@dataclass
class Chain:
    """One request taken from the available ring, its buffers checked against guest RAM."""

    head: int
    readable: list[Buffer] = field(default_factory=list)
    writable: list[Buffer] = field(default_factory=list)
    problem: Problem | None = None      # the first broken rule met while walking the chain
    last_writable: int | None = None
    """Address of the chain's last byte when the chain ends properly in a device-writable buffer inside
    RAM: where block-style devices put their status byte, usable even when ``problem`` is set."""


@dataclass
class Virtqueue:
    """One queue's configuration (written by the driver through the transport) and the device's progress."""

    size_max: int             # QueueNumMax: the largest size the device accepts
    size: int = 0             # QueueNum: the size the driver chose
    ready: bool = False       # QueueReady: the driver set the queue up and the layout passed `layout_problem`
    desc: int = 0             # Descriptor Area: the descriptor table
    driver: int = 0           # Driver Area: the available ring
    device: int = 0           # Device Area: the used ring
    last_avail_idx: int = 0   # the next available-ring index the device will take
    used_idx: int = 0         # the next used-ring index the device will fill

    def layout_problem(self, memory: PhysicalMemory) -> Problem | None:
        """Why the size or the three areas break 2.6 (the table of alignments and sizes) or leave RAM, or None."""
        n = self.size
        if not 0 < n <= self.size_max or n & (n - 1):
            return Problem("queue size is not a power of two up to QueueNumMax",
                           f"size {n}, QueueNumMax {self.size_max}")
        event = 2     # the used_event / avail_event word closing each ring: part of the area even if unused
        areas = (("descriptor table", self.desc, 16, DESC_SIZE * n),
                 ("available ring", self.driver, 2, RING_HEADER_SIZE + AVAIL_ENTRY_SIZE * n + event),
                 ("used ring", self.device, 4, RING_HEADER_SIZE + USED_ENTRY_SIZE * n + event))
        for name, address, alignment, length in areas:
            if address % alignment or not memory.is_ram(address, length):
                return Problem("queue area is misaligned or outside guest RAM",
                               f"{name} at {address:#x}, {length} bytes, alignment {alignment}")
        return None

    def pending(self, memory: PhysicalMemory) -> int:
        """How many chains the driver has made available since the device last looked (may exceed the size:
        the caller must treat that as a broken ring)."""
        header = VirtqRingHeader.from_buffer_copy(memory.read(self.driver, RING_HEADER_SIZE))
        return (header.idx - self.last_avail_idx) & 0xFFFF

    def pop(self, memory: PhysicalMemory, indirect: bool) -> Chain:
        """Take the next available chain; ``indirect`` says whether VIRTIO_F_INDIRECT_DESC was negotiated."""
        slot = self.driver + RING_HEADER_SIZE + AVAIL_ENTRY_SIZE * (self.last_avail_idx % self.size)
        head = int.from_bytes(memory.read(slot, AVAIL_ENTRY_SIZE), "little")
        self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
        return self._walk(memory, head, indirect)

    def push(self, memory: PhysicalMemory, head: int, written: int) -> None:
        """Return a chain to the driver: fill the next used element, then publish it by bumping used idx."""
        slot = self.device + RING_HEADER_SIZE + USED_ENTRY_SIZE * (self.used_idx % self.size)
        memory.write(slot, bytes(VirtqUsedElem(head, written)))
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        memory.write(self.device + VirtqRingHeader.idx.offset, self.used_idx.to_bytes(2, "little"))

    def interrupt_wanted(self, memory: PhysicalMemory) -> bool:
        """False when the driver has set VIRTQ_AVAIL_F_NO_INTERRUPT."""
        header = VirtqRingHeader.from_buffer_copy(memory.read(self.driver, RING_HEADER_SIZE))
        return not header.flags & AvailFlag.NO_INTERRUPT

    def _walk(self, memory: PhysicalMemory, head: int, indirect: bool) -> Chain:
        """Follow a chain (2.6.5), switching at most once to an indirect table (2.6.5.3); each table is left
        after at most as many descriptors as it has, so a loop ends the walk."""
        chain = Chain(head)
        table, entries, index = self.desc, self.size, head
        budget = self.size
        in_indirect = False
        while budget:
            budget -= 1
            if index >= entries:
                return _broken(chain, "descriptor index beyond its table", f"index {index} of {entries}")
            desc = VirtqDesc.from_buffer_copy(memory.read(table + DESC_SIZE * index, DESC_SIZE))
            if desc.flags & DescFlag.INDIRECT:
                problem = _indirect_problem(desc, memory, indirect, in_indirect, self.size)
                if problem is not None:
                    return _broken(chain, *problem)
                table, entries, index = desc.addr, desc.len // DESC_SIZE, 0
                budget, in_indirect = entries, True
                continue
            _add_buffer(chain, desc, memory)
            if not desc.flags & DescFlag.NEXT:
                return chain
            index = desc.next
        return _broken(chain, "descriptor chain longer than its table (a loop)", f"head {head}")


def _indirect_problem(desc: VirtqDesc, memory: PhysicalMemory, negotiated: bool, in_indirect: bool,
                      queue_size: int) -> tuple[str, str] | None:
    """Why an indirect descriptor cannot be followed (2.6.5.3.1), or None.  A table may hold no more
    descriptors than the queue (a chain is never longer than the Queue Size)."""
    where = f"table at {desc.addr:#x}, {desc.len} bytes"
    if not negotiated:
        return "indirect descriptor without VIRTIO_F_INDIRECT_DESC", where
    if in_indirect or desc.flags & DescFlag.NEXT:
        return "indirect descriptor inside an indirect table or with NEXT set", where
    if not 0 < desc.len <= DESC_SIZE * queue_size or desc.len % DESC_SIZE or not memory.is_ram(desc.addr, desc.len):
        return "indirect table empty, larger than the queue, of a partial descriptor or outside guest RAM", where
    return None


def _add_buffer(chain: Chain, desc: VirtqDesc, memory: PhysicalMemory) -> None:
    """Record one direct descriptor's buffer after checking it; a bad one leaves a problem on the chain."""
    writable = bool(desc.flags & DescFlag.WRITE)
    last = not desc.flags & DescFlag.NEXT
    if not memory.is_ram(desc.addr, desc.len):
        _broken(chain, "descriptor buffer outside guest RAM", f"{desc.len} bytes at {desc.addr:#x}")
    elif writable:
        chain.writable.append(Buffer(desc.addr, desc.len))
        if last and desc.len:
            chain.last_writable = desc.addr + desc.len - 1
    elif chain.writable:
        _broken(chain, "device-readable descriptor after a device-writable one", f"at {desc.addr:#x}")
    else:
        chain.readable.append(Buffer(desc.addr, desc.len))


def _broken(chain: Chain, rule: str, detail: str) -> Chain:
    if chain.problem is None:
        chain.problem = Problem(rule, f"{detail} (chain head {chain.head})")
    return chain


def total(buffers: list[Buffer]) -> int:
    return sum(b.length for b in buffers)


def split(buffers: list[Buffer], at: int) -> tuple[list[Buffer], list[Buffer]]:
    """The buffers cut after ``at`` bytes: (the first ``at`` bytes or fewer if short, the rest)."""
    first: list[Buffer] = []
    rest: list[Buffer] = []
    for b in buffers:
        if at >= b.length:
            first.append(b)
            at -= b.length
        elif at > 0:
            first.append(Buffer(b.address, at))
            rest.append(Buffer(b.address + at, b.length - at))
            at = 0
        else:
            rest.append(b)
    return first, rest


def gather(memory: PhysicalMemory, buffers: list[Buffer]) -> bytes:
    """The bytes of the buffers, in chain order."""
    return b"".join(memory.read(b.address, b.length) for b in buffers)


def scatter(memory: PhysicalMemory, buffers: list[Buffer], data: bytes) -> int:
    """Copy ``data`` into the buffers in chain order, as far as they reach; the number of bytes copied."""
    done = 0
    for b in buffers:
        if done == len(data):
            break
        piece = data[done:done + b.length]
        memory.write(b.address, piece)
        done += len(piece)
    return done
