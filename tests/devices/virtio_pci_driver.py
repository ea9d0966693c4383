"""A guest-side virtio-pci driver for tests: what Linux's virtio_pci_modern_dev.c and virtio_pci_modern.c do,
through configuration cycles (the capability walk) and loads and stores to the BAR, with the rings and
requests of ``virtio_driver.GuestDriver`` in the board's RAM."""

from __future__ import annotations

import struct

from devices.pci import Command, Reg
from devices.virtio import Status
from devices.virtio_blk import VirtioBlk
from devices.virtio_pci import CfgType, Common, VirtioPci
from firmware.pci import assign_resources
from tests.devices.pci_board import Board
from tests.devices.virtio_driver import AVAIL, DATA, DESC, USED, GuestDriver

SLOT = 1


class PciGuestDriver(GuestDriver):
    def __init__(self, device: VirtioBlk) -> None:
        """The board, the device in slot 1 and the firmware's assignment (GuestDriver's would build virtio-mmio)."""
        self.board = Board()
        self.memory = self.board.memory
        self.log = self.board.log
        self.device = device
        self.transport = VirtioPci(device, self.memory, log=self.log)
        self.board.host.attach(SLOT, self.transport.function)
        self.placed = assign_resources(self.board.ports)
        self.board.strict()
        self.queue_size = 0
        self.avail_idx = 0
        self.used_seen = 0
        self.next_desc = 0
        self.next_data = DATA
        self.structures = self.find_structures()
        self.enable_bus_master()

    # -- virtio_pci_modern_probe ------------------------------------------------

    def find_structures(self) -> dict[int, int]:
        """cfg_type -> guest-physical address, from the vendor capabilities and the BARs they name; the notify
        multiplier is kept too."""
        board, out = self.board, {}
        for cap in board.capabilities(SLOT):
            assert board.conf1_read(SLOT, cap, 1) == 0x09
            cfg_type, bar = board.conf1_read(SLOT, cap + 3, 1), board.conf1_read(SLOT, cap + 4, 1)
            offset = board.conf1_read(SLOT, cap + 8, 4)
            base = board.conf1_read(SLOT, Reg.BAR0 + 4 * bar, 4) & ~0xF
            out.setdefault(cfg_type, base + offset)
            if cfg_type == CfgType.NOTIFY:
                self.notify_multiplier = board.conf1_read(SLOT, cap + 16, 4)
        return out

    def enable_bus_master(self) -> None:
        command = self.board.conf1_read(SLOT, Reg.COMMAND, 2)
        self.board.conf1_write(SLOT, Reg.COMMAND, 2, command | Command.BUS_MASTER)

    # -- the common configuration -----------------------------------------------

    def common_read(self, field: Common, size: int) -> int:
        return self.memory.load(self.structures[CfgType.COMMON] + field, 8 * size)

    def common_write(self, field: Common, size: int, value: int) -> None:
        self.memory.store(self.structures[CfgType.COMMON] + field, 8 * size, value)

    def status(self) -> Status:
        return Status(self.common_read(Common.DEVICE_STATUS, 1))

    def set_status(self, value: int) -> None:
        self.common_write(Common.DEVICE_STATUS, 1, value)

    def offered_features(self) -> int:
        words = []
        for word in (0, 1):
            self.common_write(Common.DEVICE_FEATURE_SELECT, 4, word)
            words.append(self.common_read(Common.DEVICE_FEATURE, 4))
        return words[1] << 32 | words[0]

    def negotiate(self, accept: int | None = None) -> Status:
        self.set_status(0)
        self.set_status(Status.ACKNOWLEDGE)
        self.set_status(Status.ACKNOWLEDGE | Status.DRIVER)
        features = self.offered_features() if accept is None else accept
        for word in (0, 1):
            self.common_write(Common.DRIVER_FEATURE_SELECT, 4, word)
            self.common_write(Common.DRIVER_FEATURE, 4, features >> (32 * word) & 0xFFFF_FFFF)
        self.set_status(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK)
        return self.status()

    def setup_queue(self, size: int, desc: int = DESC, avail: int = AVAIL, used: int = USED) -> None:
        """setup_vq: select, check size and enable, lower the size, write the areas as two 32-bit halves,
        enable."""
        self.memory.ram[DESC:DATA] = bytes(DATA - DESC)
        self.common_write(Common.QUEUE_SELECT, 2, 0)
        assert self.common_read(Common.QUEUE_ENABLE, 2) == 0
        self.common_write(Common.QUEUE_SIZE, 2, size)
        for field, address in ((Common.QUEUE_DESC, desc), (Common.QUEUE_DRIVER, avail), (Common.QUEUE_DEVICE, used)):
            self.common_write(field, 4, address & 0xFFFF_FFFF)
            self.common_write(field + 4, 4, address >> 32)
        self.notify_off = self.common_read(Common.QUEUE_NOTIFY_OFF, 2)
        self.common_write(Common.QUEUE_ENABLE, 2, 1)
        self.queue_size = size

    def start(self, queue_size: int = 8, accept: int | None = None) -> None:
        assert self.negotiate(accept) & Status.FEATURES_OK
        self.setup_queue(queue_size)
        self.set_status(self.status() | Status.DRIVER_OK)

    def notify(self) -> None:
        """vp_notify: the queue index, 16 bits, at the queue's notify address."""
        address = self.structures[CfgType.NOTIFY] + self.notify_off * self.notify_multiplier
        self.memory.store(address, 16, 0)
        self.next_desc = 0
        self.next_data = DATA

    def read_isr(self) -> int:
        return self.memory.load(self.structures[CfgType.ISR], 8)

    def intx_level(self) -> bool:
        irq = self.board.conf1_read(SLOT, Reg.INTERRUPT_LINE, 1)
        chip = self.board.pic.slave if irq >= 8 else self.board.pic.master
        return bool(chip.state.lines & 1 << (irq % 8))

    def config_u64(self, offset: int) -> int:
        low = self.memory.load(self.structures[CfgType.DEVICE] + offset, 32)
        high = self.memory.load(self.structures[CfgType.DEVICE] + offset + 4, 32)
        return high << 32 | low

    def used_ring(self) -> bytes:
        return bytes(self.memory.ram[USED:USED + 8])


def legacy_bar(driver: PciGuestDriver) -> int:
    return driver.board.conf1_read(SLOT, Reg.BAR0, 4) & ~0x3


def pack_header(kind: int, sector: int) -> bytes:
    return struct.pack("<IIQ", kind, 0, sector)
