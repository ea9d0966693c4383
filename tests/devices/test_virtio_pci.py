"""virtio-blk over PCI, driven as Linux's virtio_pci_modern (and, for the legacy BAR, virtio_pci_legacy) drives
it: found by configuration cycles, its BARs placed by the firmware, negotiated and run through the common
configuration, notified through the notify area, interrupting on INTx with the ISR read to acknowledge
(virtio 1.2 section 4.1)."""

from __future__ import annotations

import struct

import pytest

from devices.pci import Command, Reg
from devices.virtio import Feature, Interrupt, Status
from devices.virtio_blk import VirtioBlk
from devices.virtio_pci import LEGACY_ALIGN, CfgType, Common, Legacy
from tests.devices.virtio_driver import RAM_SIZE, S_OK, T_GET_ID, make_image, sector_content
from tests.devices.virtio_pci_driver import SLOT, PciGuestDriver, legacy_bar, pack_header


@pytest.fixture
def driver(tmp_path):
    disk = VirtioBlk(make_image(tmp_path))
    yield PciGuestDriver(disk)
    disk.close()


def test_ids_say_transitional_block_device_with_the_type_in_the_subsystem_id(driver):
    board = driver.board
    assert board.conf1_read(SLOT, Reg.VENDOR_ID, 2) == 0x1AF4
    assert board.conf1_read(SLOT, Reg.DEVICE_ID, 2) == 0x1001
    assert board.conf1_read(SLOT, Reg.REVISION_ID, 1) == 0
    assert board.conf1_read(SLOT, Reg.SUBSYSTEM_ID, 2) == 2
    assert board.conf1_read(SLOT, Reg.INTERRUPT_PIN, 1) == 1


def test_capability_walk_finds_common_isr_device_and_notify_in_the_memory_bar(driver):
    assert set(driver.structures) == {CfgType.COMMON, CfgType.ISR, CfgType.DEVICE, CfgType.NOTIFY}
    assert driver.notify_multiplier == 4
    bar = next(p for p in driver.placed if not p.io)
    assert all(bar.address <= a < bar.address + bar.size for a in driver.structures.values())
    assert driver.common_read(Common.NUM_QUEUES, 2) == 1


def test_bar_sizing_through_conf1(driver):
    assert driver.board.size_bar(SLOT, 0) == (0x40, 1)
    assert driver.board.size_bar(SLOT, 1) == (0x4000, 0)


def test_feature_negotiation_through_the_common_configuration(driver):
    offered = driver.offered_features()
    assert offered & Feature.VERSION_1 and offered & Feature.INDIRECT_DESC
    assert driver.negotiate() & Status.FEATURES_OK
    driver.common_write(Common.DRIVER_FEATURE_SELECT, 4, 1)
    assert driver.common_read(Common.DRIVER_FEATURE, 4) == 1      # VERSION_1 accepted


def test_features_ok_refused_without_version_1(driver):
    assert not driver.negotiate(driver.offered_features() & ~Feature.VERSION_1) & Status.FEATURES_OK


def test_queue_size_starts_at_its_maximum_and_the_driver_may_lower_it(driver):
    driver.negotiate()
    assert driver.common_read(Common.QUEUE_SIZE, 2) == 128
    driver.setup_queue(16)
    assert driver.common_read(Common.QUEUE_SIZE, 2) == 16
    assert driver.common_read(Common.QUEUE_ENABLE, 2) == 1
    driver.common_write(Common.QUEUE_SELECT, 2, 1)
    assert driver.common_read(Common.QUEUE_SIZE, 2) == 0          # no queue 1


def test_capacity_from_the_device_configuration(driver):
    assert driver.config_u64(0) == 16


def test_read_and_write_sectors_through_a_real_virtqueue(driver):
    driver.start()
    done = driver.read_sectors(2, 2)
    assert done.status == S_OK and done.data == sector_content(2) + sector_content(3)
    assert driver.write_sectors(5, b"w" * 512).status == S_OK
    assert driver.read_sectors(5, 1).data == b"w" * 512


def test_completion_asserts_intx_and_reading_the_isr_acknowledges_it(driver):
    driver.start()
    driver.block_request(T_GET_ID, in_length=20)
    assert driver.intx_level()
    assert driver.board.conf1_read(SLOT, Reg.STATUS, 2) & 0x08    # Interrupt Status
    assert driver.read_isr() == Interrupt.USED_BUFFER
    assert not driver.intx_level()
    assert driver.read_isr() == 0


def test_the_interrupt_reaches_the_pic_as_a_level_request(driver):
    irq = driver.board.conf1_read(SLOT, Reg.INTERRUPT_LINE, 1)
    chip = driver.board.pic.slave if irq >= 8 else driver.board.pic.master
    assert chip.state.elcr & 1 << (irq % 8)
    driver.start()
    driver.block_request(T_GET_ID, in_length=20)
    assert chip.state.irr & 1 << (irq % 8)
    driver.read_isr()
    assert not chip.state.irr & 1 << (irq % 8)


def test_queue_areas_outside_ram_need_a_reset_with_a_config_interrupt(driver):
    driver.negotiate()
    driver.setup_queue(8, used=RAM_SIZE + 0x1000)
    assert driver.common_read(Common.QUEUE_ENABLE, 2) == 0
    assert driver.status() & Status.DEVICE_NEEDS_RESET
    assert driver.intx_level()
    assert driver.read_isr() == Interrupt.CONFIGURATION_CHANGE


def test_a_descriptor_outside_ram_fails_the_request_with_ioerr(driver):
    driver.start()
    header = driver.alloc(pack_header(0, 0))
    status = driver.alloc(bytes([0xEE]))
    done = driver.submit([(header, 16, False), (RAM_SIZE + 0x100000, 512, True), (status, 1, True)], status)
    assert done.status == 1
    assert "outside guest RAM" in driver.log.getvalue()


def test_notify_without_bus_mastering_is_ignored(driver):
    driver.start()
    command = driver.board.conf1_read(SLOT, Reg.COMMAND, 2)
    driver.board.conf1_write(SLOT, Reg.COMMAND, 2, command & ~Command.BUS_MASTER)
    driver.make_available(driver.add_chain([(driver.alloc(pack_header(T_GET_ID, 0)), 16, False),
                                            (driver.alloc(21), 21, True)]))
    driver.notify()
    assert driver.used_idx() == 0
    assert "bus mastering is disabled" in driver.log.getvalue()


def test_queue_configuration_is_frozen_once_enabled_and_odd_widths_are_ignored(driver):
    driver.start()
    driver.common_write(Common.QUEUE_DESC, 4, 0x8000)
    driver.common_write(Common.QUEUE_SIZE, 2, 4)
    driver.common_write(Common.QUEUE_SELECT, 1, 5)                  # a byte where a le16 is
    assert driver.common_read(Common.QUEUE_SIZE, 2) == 8
    assert driver.common_read(Common.QUEUE_SELECT, 2) == 0
    assert driver.common_read(Common.NUM_QUEUES, 4) == 0            # a dword over two fields
    assert "written while the queue is enabled" in driver.log.getvalue()
    assert "not of a field's width" in driver.log.getvalue()


def test_writing_zero_to_the_status_resets_queues_and_interrupt(driver):
    driver.start()
    driver.block_request(T_GET_ID, in_length=20)
    driver.set_status(0)
    assert driver.status() == 0 and not driver.intx_level()
    assert driver.common_read(Common.QUEUE_ENABLE, 2) == 0
    assert driver.common_read(Common.QUEUE_SIZE, 2) == 128


def test_legacy_driver_reads_a_sector_through_the_io_bar(driver):
    """virtio_pci_legacy: features, the queue by page number at its fixed size, notify, ISR, all in BAR 0."""
    ports, base = driver.board.ports, legacy_bar(driver)
    ports.write(base + Legacy.STATUS, 1, 0)
    ports.write(base + Legacy.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER)
    features = ports.read(base + Legacy.HOST_FEATURES, 4)
    ports.write(base + Legacy.GUEST_FEATURES, 4, features)
    ports.write(base + Legacy.QUEUE_SEL, 2, 0)
    size = ports.read(base + Legacy.QUEUE_NUM, 2)
    assert size == 128
    ring = 0x4000
    desc, avail = ring, ring + 16 * size
    used = -(-(avail + 2 * (3 + size)) // LEGACY_ALIGN) * LEGACY_ALIGN
    ports.write(base + Legacy.QUEUE_PFN, 4, ring // LEGACY_ALIGN)
    ports.write(base + Legacy.STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK)
    ram = driver.memory.ram
    header, data, status = 0xA000, 0xA100, 0xA400
    ram[header:header + 16] = pack_header(0, 3)
    ram[status] = 0xEE
    struct.pack_into("<QIHH", ram, desc, header, 16, 1, 1)
    struct.pack_into("<QIHH", ram, desc + 16, data, 512, 3, 2)
    struct.pack_into("<QIHH", ram, desc + 32, status, 1, 2, 0)
    struct.pack_into("<HHH", ram, avail, 0, 1, 0)
    ports.write(base + Legacy.QUEUE_NOTIFY, 2, 0)
    assert struct.unpack_from("<HHII", ram, used) == (0, 1, 0, 513)
    assert ram[status] == S_OK and bytes(ram[data:data + 512]) == sector_content(3)
    assert ports.read(base + Legacy.ISR, 1) == Interrupt.USED_BUFFER
    assert ports.read(base + Legacy.ISR, 1) == 0
    assert ports.read(base + Legacy.CONFIG, 4) == 16                # capacity, low word
