"""Split virtqueues under a driver that makes mistakes (virtio 1.x section 2.6).

Every guest-controlled value is checked before use: a malformed request ends with IOERR in its status byte, or,
when no status byte can be trusted, with DEVICE_NEEDS_RESET and a configuration change interrupt.  The device
never raises, and never touches guest-physical memory outside RAM (the test driver's RAM has nothing behind it:
such an access would raise out of the notify)."""

from __future__ import annotations

import random
import struct

import pytest

from devices.virtio import Interrupt, Status
from devices.virtio_blk import VirtioBlk
from devices.virtio_mmio import Reg
from tests.devices.virtio_driver import (
    AVAIL,
    DATA,
    DESC,
    INDIRECT,
    INDIRECT_TABLE,
    NEXT,
    RAM_SIZE,
    S_IOERR,
    T_GET_ID,
    T_IN,
    UNTOUCHED,
    USED,
    WRITE,
    GuestDriver,
    make_image,
    sector_content,
)


@pytest.fixture
def disk(tmp_path):
    disk = VirtioBlk(make_image(tmp_path), snapshot=True)
    yield disk
    disk.close()


@pytest.fixture
def driver(disk):
    driver = GuestDriver(disk)
    driver.start(queue_size=8)
    return driver


def _header(driver: GuestDriver, kind: int = T_IN, sector: int = 0) -> int:
    return driver.alloc(struct.pack("<IIQ", kind, 0, sector))


def _status(driver: GuestDriver) -> int:
    return driver.alloc(bytes([UNTOUCHED]))


def _needs_reset(driver: GuestDriver) -> bool:
    return bool(driver.status() & Status.DEVICE_NEEDS_RESET) and bool(
        driver.get(Reg.INTERRUPT_STATUS) & Interrupt.CONFIGURATION_CHANGE) and driver.irq.level


def _publish(driver: GuestDriver, head: int) -> None:
    driver.make_available(head)
    driver.notify()


# -- buffers outside RAM ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [1 << 40, RAM_SIZE, (1 << 64) - 256, RAM_SIZE - 256])
def test_data_buffer_outside_or_crossing_the_end_of_ram_answers_ioerr(driver, data):
    status = _status(driver)
    completion = driver.submit([(_header(driver), 16, False), (data, 512, True), (status, 1, True)], status)
    assert (completion.status, completion.length) == (S_IOERR, 1)
    assert not driver.status() & Status.DEVICE_NEEDS_RESET
    assert "descriptor buffer outside guest RAM" in driver.log.getvalue()


def test_header_outside_ram_answers_ioerr(driver):
    status = _status(driver)
    assert driver.submit([(RAM_SIZE - 8, 16, False), (status, 1, True)], status).status == S_IOERR


def test_status_buffer_outside_ram_needs_reset(driver):
    _publish(driver, driver.add_chain([(_header(driver), 16, False), (RAM_SIZE, 1, True)]))
    assert _needs_reset(driver)
    assert driver.used_idx() == 0


def test_device_keeps_serving_after_an_ioerr(driver):
    status = _status(driver)
    driver.submit([(_header(driver), 16, False), (1 << 40, 512, True), (status, 1, True)], status)
    assert driver.read_sectors(4, 1).data == sector_content(4)


# -- indices, loops and chain length --------------------------------------------------------------------------------

def test_descriptor_next_index_beyond_the_queue_needs_reset(driver):
    driver.descriptor(0, _header(driver), 16, NEXT, 8)          # queue of 8: index 8 does not exist
    _publish(driver, 0)
    assert _needs_reset(driver)
    assert "descriptor index beyond its table" in driver.log.getvalue()


def test_head_index_beyond_the_queue_needs_reset(driver):
    _publish(driver, 0xFFFF)
    assert _needs_reset(driver)


def test_descriptor_loop_needs_reset(driver):
    driver.descriptor(0, _header(driver), 16, NEXT, 1)
    driver.descriptor(1, driver.alloc(512), 512, WRITE | NEXT, 2)
    driver.descriptor(2, driver.alloc(512), 512, WRITE | NEXT, 1)
    _publish(driver, 0)
    assert _needs_reset(driver)
    assert "(a loop)" in driver.log.getvalue()


def test_descriptor_pointing_at_itself_needs_reset(driver):
    driver.descriptor(0, _status(driver), 1, WRITE | NEXT, 0)
    _publish(driver, 0)
    assert _needs_reset(driver)


def test_chain_through_every_descriptor_and_back_is_longer_than_the_queue(driver):
    driver.descriptor(0, _header(driver), 16, NEXT, 1)
    for i in range(1, 8):
        driver.descriptor(i, driver.alloc(512), 512, WRITE | NEXT, (i + 1) % 8)
    _publish(driver, 0)
    assert _needs_reset(driver)


def test_indirect_table_longer_than_the_queue_needs_reset(driver):
    driver.descriptor(0, _header(driver), 16, NEXT, 1, table=INDIRECT_TABLE)
    for i in range(1, 9):
        driver.descriptor(i, driver.alloc(512), 512, WRITE | NEXT, i + 1, table=INDIRECT_TABLE)
    driver.descriptor(9, _status(driver), 1, WRITE, table=INDIRECT_TABLE)
    driver.descriptor(0, INDIRECT_TABLE, 16 * 10, INDIRECT)
    _publish(driver, 0)
    assert _needs_reset(driver)
    assert "larger than the queue" in driver.log.getvalue()


def test_loop_inside_an_indirect_table_needs_reset(driver):
    driver.descriptor(0, _header(driver), 16, NEXT, 1, table=INDIRECT_TABLE)
    driver.descriptor(1, _status(driver), 1, WRITE | NEXT, 0, table=INDIRECT_TABLE)
    driver.descriptor(0, INDIRECT_TABLE, 32, INDIRECT)
    _publish(driver, 0)
    assert _needs_reset(driver)


def test_readable_descriptor_after_a_writable_one_answers_ioerr(driver):
    status = _status(driver)
    chain = [(_header(driver), 16, False), (driver.alloc(512), 512, True), (driver.alloc(16), 16, False),
             (status, 1, True)]
    assert driver.submit(chain, status).status == S_IOERR


# -- the rings ----------------------------------------------------------------------------------------------------

def test_avail_idx_jumping_by_more_than_the_queue_size_needs_reset(driver):
    driver.add_chain([(_header(driver), 16, False), (_status(driver), 1, True)])
    struct.pack_into("<H", driver.memory.ram, AVAIL + 2, 9)     # 9 new entries in a queue of 8
    driver.notify()
    assert _needs_reset(driver)
    assert driver.used_idx() == 0


def test_needs_reset_device_ignores_notifies_until_the_driver_resets_it(driver):
    _publish(driver, 0xFFFF)
    assert _needs_reset(driver)
    status = _status(driver)
    _publish(driver, driver.add_chain([(_header(driver, T_GET_ID), 16, False), (status, 1, True)]))
    assert driver.memory.ram[status] == UNTOUCHED
    driver.avail_idx = driver.used_seen = 0
    driver.start(queue_size=8)
    assert not driver.status() & Status.DEVICE_NEEDS_RESET
    assert driver.read_sectors(1, 1).data == sector_content(1)


def test_each_distinct_problem_is_logged_once(driver):
    for _ in range(3):
        status = _status(driver)
        driver.submit([(_header(driver), 16, False), (1 << 40, 512, True), (status, 1, True)], status)
    lines = driver.log.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("emu: virtio-blk: descriptor buffer outside guest RAM: 512 bytes at 0x10000000000")


def test_used_idx_wraps_past_65535(disk):
    """64 GET_ID requests per notify in a queue of 128, until both free-running indices have wrapped."""
    driver = GuestDriver(disk)
    driver.start(queue_size=128)
    for i in range(64):
        driver.descriptor(2 * i, _header(driver, T_GET_ID), 16, NEXT, 2 * i + 1)
        driver.descriptor(2 * i + 1, driver.alloc(21), 21, WRITE)
    for slot in range(128):
        struct.pack_into("<H", driver.memory.ram, AVAIL + 4 + 2 * slot, 2 * (slot % 64))
    used_before_wrap = 0
    for round_ in range(1, 1026):
        struct.pack_into("<H", driver.memory.ram, AVAIL + 2, 64 * round_ & 0xFFFF)
        driver.put(Reg.QUEUE_NOTIFY, 0)
        if 64 * round_ == 65536 - 64:
            used_before_wrap = driver.used_idx()
    assert used_before_wrap == 65472
    assert driver.used_idx() == 65600 & 0xFFFF == 64
    last = USED + 4 + 8 * ((65600 - 1) % 128)
    assert struct.unpack_from("<II", driver.memory.ram, last) == (126, 21)
    assert not driver.status() & Status.DEVICE_NEEDS_RESET


# -- random rings -------------------------------------------------------------------------------------------------

def _scribble(driver: GuestDriver, rng: random.Random) -> None:
    """Descriptor tables, an available ring and a request header of random values, most of them plausible."""
    plausible = [DATA, DATA + 0x200, DATA + 0x1000, INDIRECT_TABLE]
    wild = [0, RAM_SIZE - 512, RAM_SIZE - 1, RAM_SIZE, 1 << 40, (1 << 64) - 16]
    for table, count in ((DESC, 8), (INDIRECT_TABLE, 16)):
        for i in range(count):
            address = rng.choice(plausible if rng.random() < 0.8 else wild) + rng.choice((0, 0, 1, 16))
            length = rng.choice((1, 16, 20, 512, 1024) if rng.random() < 0.8 else (0, 0xFFFF_FFFF, 48, 256))
            flags = rng.choice((NEXT, NEXT | WRITE, WRITE) if rng.random() < 0.8 else range(8))
            next_ = rng.randrange(8) if rng.random() < 0.9 else rng.choice((8, 16, 0xFFFF))
            driver.descriptor(i, address & ((1 << 64) - 1), length, flags, next_, table)
    for slot in range(8):
        struct.pack_into("<H", driver.memory.ram, AVAIL + 4 + 2 * slot, rng.randrange(8) if rng.random() < 0.9 else 8)
    struct.pack_into("<H", driver.memory.ram, AVAIL + 2, rng.randrange(10))
    kind = rng.choice((T_IN, T_GET_ID, 1, 4, 11))
    struct.pack_into("<IIQ", driver.memory.ram, DATA, kind, 0, rng.choice((0, 1, 15, 16, 1 << 63)))


@pytest.mark.parametrize("seed", range(200))
def test_random_rings_never_raise_or_leave_ram(disk, seed):
    rng = random.Random(seed)
    driver = GuestDriver(disk)
    for _ in range(3):
        driver.start(queue_size=8)
        _scribble(driver, rng)
        pending = driver.memory.ram[AVAIL + 2]
        driver.put(Reg.QUEUE_NOTIFY, rng.choice((0, 0, 0, 1)))
        assert driver.used_idx() <= pending
