"""The virtio-mmio transport, driven as Linux's virtio_mmio driver drives it (virtio 1.x section 4.2)."""

from __future__ import annotations

import struct

import pytest

from devices.virtio import Feature, Interrupt, Status
from devices.virtio_blk import BlkFeature, VirtioBlk
from devices.virtio_mmio import WINDOW_SIZE, Reg
from tests.devices.virtio_driver import AVAIL, DESC, RAM_SIZE, T_GET_ID, USED, GuestDriver, make_image


@pytest.fixture
def driver(tmp_path):
    disk = VirtioBlk(make_image(tmp_path))
    yield GuestDriver(disk)
    disk.close()


def test_probe_reads_magic_version_2_and_block_device_id(driver):
    assert driver.get(Reg.MAGIC_VALUE).to_bytes(4, "little") == b"virt"
    assert driver.get(Reg.VERSION) == 2
    assert driver.get(Reg.DEVICE_ID) == 2


def test_window_mapped_on_the_mmio_bus_answers_guest_physical_loads(driver):
    base = 0xD000_0000
    driver.memory.mmio.map(base, WINDOW_SIZE, driver.mmio, "virtio-blk")
    assert driver.memory.load(base + Reg.MAGIC_VALUE, 32) == int.from_bytes(b"virt", "little")
    assert driver.memory.load(base + Reg.CONFIG, 64) == 16      # capacity, through the config space


def test_offered_features_include_version_1_flush_and_indirect(driver):
    offered = driver.offered_features()
    for bit in (Feature.VERSION_1, Feature.INDIRECT_DESC, BlkFeature.FLUSH, BlkFeature.BLK_SIZE, BlkFeature.SEG_MAX):
        assert offered & bit
    assert not offered & BlkFeature.RO


def test_negotiation_of_offered_features_keeps_features_ok(driver):
    status = driver.negotiate()
    assert status == Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK


def test_features_ok_refused_when_driver_accepts_a_feature_not_offered(driver):
    status = driver.negotiate(accept=driver.offered_features() | 1 << 0)   # VIRTIO_BLK_F_BARRIER: never offered
    assert not status & Status.FEATURES_OK
    assert "FEATURES_OK refused" in driver.log.getvalue()


def test_features_ok_refused_without_version_1(driver):
    status = driver.negotiate(accept=driver.offered_features() & ~Feature.VERSION_1)
    assert not status & Status.FEATURES_OK


def test_queue_0_offers_num_max_and_starts_not_ready_while_queue_1_does_not_exist(driver):
    driver.negotiate()
    driver.put(Reg.QUEUE_SEL, 0)
    assert driver.get(Reg.QUEUE_NUM_MAX) == 128
    assert driver.get(Reg.QUEUE_READY) == 0
    driver.put(Reg.QUEUE_SEL, 1)
    assert driver.get(Reg.QUEUE_NUM_MAX) == 0


def test_queue_setup_marks_the_queue_ready(driver):
    driver.negotiate()
    driver.setup_queue(128)
    assert driver.get(Reg.QUEUE_READY) == 1
    assert not driver.status() & Status.DEVICE_NEEDS_RESET


@pytest.mark.parametrize("size", [0, 6, 100, 256, 1 << 31])
def test_queue_size_not_a_power_of_two_up_to_num_max_is_refused(driver, size):
    driver.negotiate()
    driver.setup_queue(size)
    assert driver.get(Reg.QUEUE_READY) == 0
    assert driver.status() & Status.DEVICE_NEEDS_RESET
    assert driver.get(Reg.INTERRUPT_STATUS) == Interrupt.CONFIGURATION_CHANGE
    assert driver.irq.level


@pytest.mark.parametrize("areas", [
    {"desc": RAM_SIZE - 16},                 # table runs past the end of RAM
    {"avail": RAM_SIZE - 4},
    {"used": 1 << 40},                       # far outside RAM
    {"used": (1 << 64) - 8},                 # address + length would wrap a 64-bit register
    {"desc": DESC + 8},                      # misaligned table (16 bytes required)
    {"used": USED + 2},                      # misaligned used ring (4 bytes required)
])
def test_queue_areas_outside_ram_or_misaligned_are_refused(driver, areas):
    driver.negotiate()
    driver.setup_queue(8, **areas)
    assert driver.get(Reg.QUEUE_READY) == 0
    assert driver.status() & Status.DEVICE_NEEDS_RESET


def test_queue_configuration_is_frozen_while_ready(driver):
    driver.start()
    driver.put(Reg.QUEUE_DESC_LOW, RAM_SIZE * 4)
    driver.put(Reg.QUEUE_NUM, 6)
    assert driver.mmio.core.state.queues[0].desc == DESC
    assert driver.mmio.core.state.queues[0].size == 8


def test_config_space_holds_capacity_bytewise_and_as_two_words(driver):
    assert driver.mmio.read(Reg.CONFIG, 1) == 16
    low, high = driver.get(Reg.CONFIG), driver.get(Reg.CONFIG + 4)
    assert high << 32 | low == 16
    assert driver.get(Reg.CONFIG + 20) == 512          # blk_size
    assert driver.get(Reg.CONFIG + 12) == 126          # seg_max: a request fits the 128-entry queue
    assert driver.get(Reg.CONFIG_GENERATION) == 0


def test_completion_raises_the_interrupt_and_ack_lowers_it(driver):
    driver.start()
    driver.block_request(T_GET_ID, in_length=20)
    assert driver.irq.level
    assert driver.get(Reg.INTERRUPT_STATUS) == Interrupt.USED_BUFFER
    driver.put(Reg.INTERRUPT_ACK, Interrupt.USED_BUFFER)
    assert not driver.irq.level
    assert driver.get(Reg.INTERRUPT_STATUS) == 0
    assert driver.irq_levels == [True, False]


def test_avail_no_interrupt_flag_suppresses_the_interrupt(driver):
    driver.start()
    struct.pack_into("<H", driver.memory.ram, AVAIL, 1)    # VIRTQ_AVAIL_F_NO_INTERRUPT
    completion = driver.block_request(T_GET_ID, in_length=20)
    assert completion.status == 0
    assert not driver.irq.level


def test_writing_zero_to_status_resets_queues_features_and_interrupt(driver):
    driver.start()
    driver.block_request(T_GET_ID, in_length=20)
    driver.put(Reg.STATUS, 0)
    assert driver.status() == 0
    assert driver.get(Reg.QUEUE_READY) == 0
    assert driver.get(Reg.INTERRUPT_STATUS) == 0
    assert not driver.irq.level
    assert driver.mmio.core.state.driver_features == 0


def test_notify_before_driver_ok_is_ignored(driver):
    driver.negotiate()
    driver.setup_queue(8)
    status = driver.alloc(1)
    driver.make_available(driver.add_chain([(driver.alloc(struct.pack("<IIQ", T_GET_ID, 0, 0)), 16, False),
                                            (status, 1, True)]))
    driver.notify()
    assert driver.used_idx() == 0
    assert not driver.irq.level


def test_narrow_register_access_is_ignored_and_logged_once(driver):
    assert driver.mmio.read(Reg.MAGIC_VALUE, 2) == 0
    driver.mmio.write(Reg.STATUS, 1, Status.ACKNOWLEDGE)
    driver.mmio.write(Reg.STATUS + 1, 1, Status.ACKNOWLEDGE)
    assert driver.status() == 0
    assert driver.log.getvalue().count("not 32 bits wide") == 1
