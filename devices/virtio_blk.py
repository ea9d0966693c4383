"""The virtio block device: a disk image file seen by the guest as /dev/vda.

Follows OASIS virtio 1.1 section 5.2: device id 2, one request queue,
the config space of 5.2.4 (capacity in 512-byte sectors, seg_max,
blk_size) and requests of 5.2.6: a device-readable header (type, reserved,
sector), data buffers, and a device-writable status byte at the very end of
the chain.  The header may be split across descriptors; its bytes are
gathered.  Served: IN (read), OUT (write), FLUSH, GET_ID; anything else
answers UNSUPP.  A request past the end of the disk, or with data that is not
whole sectors, answers IOERR, and so does a malformed chain whose status byte
can still be found; without one the transport marks the device as needing a
reset.

The image is opened read-write and guest writes go to the file object; they
reach the disk (``os.fsync``) when the guest sends FLUSH and at
:meth:`VirtioBlk.close`, which the machine calls at shutdown.  With
``snapshot=True`` the file is only read and guest writes live in memory, one
512-byte sector at a time, until the emulator exits.  An image that cannot be
opened for writing (or ``read_only=True``) is offered with VIRTIO_BLK_F_RO.

Not modelled: multiple queues (VIRTIO_BLK_F_MQ), DISCARD, WRITE_ZEROES,
SECURE_ERASE, zoned devices, the writeback toggle (VIRTIO_BLK_F_CONFIG_WCE),
topology and geometry hints, and any latency: requests complete inside the
driver's notify.
"""

from __future__ import annotations

import ctypes
import enum
import os
from dataclasses import dataclass, field
from typing import TextIO

from cpu.physical import PhysicalMemory
from devices.virtqueue import Buffer, Chain, Problem, gather, scatter, split, total

DEVICE_ID = 2          # 5: "Block device"
SECTOR_SIZE = 512      # 5.2.4: capacity and the request's sector always count 512-byte sectors
QUEUE_SIZE = 128       # QueueNumMax of the request queue
ID_BYTES = 20          # 5.2.6: GET_ID answers a 20-byte string, zero-padded

_U64, _U32, _U16, _U8 = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_uint16, ctypes.c_uint8


class BlkFeature(enum.IntFlag):
    """5.2.3: block feature bits we may offer."""

    SEG_MAX = 1 << 2     # config seg_max bounds the data buffers of one request (so chains fit the queue)
    RO = 1 << 5          # the disk is read-only: the guest mounts it so and writes fail
    BLK_SIZE = 1 << 6    # config blk_size gives the logical block size the guest should use
    FLUSH = 1 << 9       # FLUSH exists: written data is durable only after it (a write-back cache)


class RequestType(enum.IntEnum):
    """5.2.6: the type field of the request header."""

    IN = 0         # read sectors into the writable buffers
    OUT = 1        # write the readable buffers after the header to sectors
    FLUSH = 4      # make every completed write durable
    GET_ID = 8     # the device's identifying string


class BlkStatus(enum.IntEnum):
    """5.2.6: the status byte the device writes last."""

    OK = 0
    IOERR = 1      # the request failed: bad range or length, a malformed chain, a host I/O error, a read-only disk
    UNSUPP = 2     # the request type is not implemented


class VirtioBlkConfig(ctypes.LittleEndianStructure):
    """struct virtio_blk_config (5.2.4), up to blk_size; later fields belong to features not offered."""

    _fields_ = [("capacity", _U64),     # 0  size of the disk in 512-byte sectors
                ("size_max", _U32),     # 8  largest data buffer (VIRTIO_BLK_F_SIZE_MAX, not offered)
                ("seg_max", _U32),      # 12 most data buffers in one request (VIRTIO_BLK_F_SEG_MAX)
                ("cylinders", _U16),    # 16 geometry (VIRTIO_BLK_F_GEOMETRY, not offered)
                ("heads", _U8),         # 18
                ("sectors", _U8),       # 19
                ("blk_size", _U32)]     # 20 logical block size (VIRTIO_BLK_F_BLK_SIZE)


class VirtioBlkReqHeader(ctypes.LittleEndianStructure):
    """The device-readable start of struct virtio_blk_req (5.2.6)."""

    _fields_ = [("type", _U32),        # 0  RequestType
                ("reserved", _U32),    # 4  (ioprio in the legacy interface)
                ("sector", _U64)]      # 8  first 512-byte sector of IN/OUT


assert ctypes.sizeof(VirtioBlkConfig) == 24
assert ctypes.sizeof(VirtioBlkReqHeader) == 16
HEADER_SIZE = ctypes.sizeof(VirtioBlkReqHeader)


class DiskError(Exception):
    """The disk image cannot be used; the message is one line for the user."""


@dataclass
class VirtioBlkState:
    capacity: int                  # disk size in 512-byte sectors (a partial last sector is not visible)
    read_only: bool                # offered with VIRTIO_BLK_F_RO; OUT answers IOERR
    snapshot: bool                 # guest writes go to `overlay`, never to the file
    overlay: dict[int, bytes] = field(default_factory=dict)   # sector -> its 512 bytes as the guest wrote them


class VirtioBlk:
    """A :class:`devices.virtio.VirtioDevice` backed by an image file."""

    name = "virtio-blk"
    device_id = DEVICE_ID
    queue_sizes = (QUEUE_SIZE,)

    def __init__(self, path: str | os.PathLike[str], *, snapshot: bool = False, read_only: bool = False,
                 log: TextIO | None = None) -> None:
        self.path = os.fspath(path)
        self.log = log
        try:    # the file stays open for the life of the machine, until close()
            if snapshot or read_only:
                self.file = open(self.path, "rb")
            else:
                try:
                    self.file = open(self.path, "r+b")
                except PermissionError:
                    self.file = open(self.path, "rb")
                    read_only = True
            size = os.fstat(self.file.fileno()).st_size
        except OSError as e:
            raise DiskError(f"cannot open disk image {self.path}: {e.strerror or e}") from None
        if size % SECTOR_SIZE:
            self._warn(f"disk image {self.path} is {size} bytes, not a multiple of {SECTOR_SIZE}: "
                       f"the last {size % SECTOR_SIZE} bytes are not visible to the guest")
        self.state = VirtioBlkState(capacity=size // SECTOR_SIZE, read_only=read_only, snapshot=snapshot)
        self.features = BlkFeature.SEG_MAX | BlkFeature.BLK_SIZE | BlkFeature.FLUSH
        if read_only:
            self.features |= BlkFeature.RO
        self.serial = os.path.basename(self.path).encode()[:ID_BYTES].ljust(ID_BYTES, b"\0")
        self._config = bytes(VirtioBlkConfig(capacity=self.state.capacity, seg_max=QUEUE_SIZE - 2,
                                             blk_size=SECTOR_SIZE))

    def config(self) -> bytes:
        return self._config

    def close(self) -> None:
        """Make every guest write durable and release the file (idempotent)."""
        if self.file.closed:
            return
        if not (self.state.read_only or self.state.snapshot):
            self._flush()
        self.file.close()

    # -- requests -------------------------------------------------------------

    def process(self, queue: int, chain: Chain, memory: PhysicalMemory) -> int | Problem:
        """5.2.6: carry out one request and write its status byte; the bytes written, status included."""
        if chain.last_writable is None:
            return chain.problem or Problem("request without a device-writable status byte at its end",
                                            f"chain head {chain.head}")
        if chain.problem is not None:
            status, written = BlkStatus.IOERR, 0
        else:
            status, written = self._execute(chain, memory)
        memory.write(chain.last_writable, bytes([status]))
        return written + 1

    def _execute(self, chain: Chain, memory: PhysicalMemory) -> tuple[BlkStatus, int]:
        header_buffers, data_out = split(chain.readable, HEADER_SIZE)
        data_in, _status = split(chain.writable, total(chain.writable) - 1)
        if total(header_buffers) < HEADER_SIZE:
            return BlkStatus.IOERR, 0
        header = VirtioBlkReqHeader.from_buffer_copy(gather(memory, header_buffers))
        match header.type:
            case RequestType.IN:
                return self._read(header.sector, data_in, memory)
            case RequestType.OUT:
                return self._write(header.sector, data_out, memory), 0
            case RequestType.FLUSH:
                return self._flush(), 0
            case RequestType.GET_ID:
                return BlkStatus.OK, scatter(memory, data_in, self.serial)
        return BlkStatus.UNSUPP, 0

    def _in_range(self, sector: int, length: int) -> bool:
        """5.2.6.1: IN and OUT move whole 512-byte sectors, none of them beyond the capacity."""
        return length % SECTOR_SIZE == 0 and sector + length // SECTOR_SIZE <= self.state.capacity

    def _read(self, sector: int, buffers: list[Buffer], memory: PhysicalMemory) -> tuple[BlkStatus, int]:
        length = total(buffers)
        if not self._in_range(sector, length):
            return BlkStatus.IOERR, 0
        try:
            self.file.seek(sector * SECTOR_SIZE)
            data = bytearray(self.file.read(length).ljust(length, b"\0"))
        except OSError as e:
            self._warn(f"reading {self.path}: {e}")
            return BlkStatus.IOERR, 0
        overlay = self.state.overlay
        if overlay:
            for i in range(length // SECTOR_SIZE):
                written = overlay.get(sector + i)
                if written is not None:
                    data[i * SECTOR_SIZE:(i + 1) * SECTOR_SIZE] = written
        return BlkStatus.OK, scatter(memory, buffers, data)

    def _write(self, sector: int, buffers: list[Buffer], memory: PhysicalMemory) -> BlkStatus:
        if self.state.read_only or not self._in_range(sector, total(buffers)):
            return BlkStatus.IOERR
        data = gather(memory, buffers)
        if self.state.snapshot:
            for i in range(0, len(data), SECTOR_SIZE):
                self.state.overlay[sector + i // SECTOR_SIZE] = data[i:i + SECTOR_SIZE]
            return BlkStatus.OK
        try:
            self.file.seek(sector * SECTOR_SIZE)
            self.file.write(data)
        except OSError as e:
            self._warn(f"writing {self.path}: {e}")
            return BlkStatus.IOERR
        return BlkStatus.OK

    def _flush(self) -> BlkStatus:
        """5.2.6: completed writes become durable; nothing to do for a snapshot or a read-only disk."""
        if self.state.read_only or self.state.snapshot:
            return BlkStatus.OK
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as e:
            self._warn(f"flushing {self.path}: {e}")
            return BlkStatus.IOERR
        return BlkStatus.OK

    def _warn(self, message: str) -> None:
        if self.log is not None:
            print(f"emu: {self.name}: {message}", file=self.log)
