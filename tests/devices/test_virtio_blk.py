"""The virtio block device, driven as Linux's virtio_blk driver drives it (virtio 1.x section 5.2)."""

from __future__ import annotations

import io
import struct

import pytest

from devices import virtio_blk
from devices.virtio import Feature, Status
from devices.virtio_blk import BlkFeature, DiskError, VirtioBlk
from tests.devices.virtio_driver import (
    INDIRECT,
    INDIRECT_TABLE,
    NEXT,
    S_IOERR,
    S_OK,
    S_UNSUPP,
    T_FLUSH,
    T_GET_ID,
    T_IN,
    UNTOUCHED,
    WRITE,
    GuestDriver,
    make_image,
    sector_content,
)


@pytest.fixture
def image(tmp_path):
    return make_image(tmp_path)


@pytest.fixture
def driver(image):
    disk = VirtioBlk(image)
    driver = GuestDriver(disk)
    driver.start()
    yield driver
    disk.close()


def test_reading_sectors_0_and_3_returns_the_image_contents(driver):
    first = driver.read_sectors(0, 1)
    assert (first.status, first.data, first.length) == (S_OK, sector_content(0), 513)
    assert driver.read_sectors(3, 1).data == sector_content(3)


def test_reading_several_sectors_into_one_buffer(driver):
    completion = driver.read_sectors(14, 2)
    assert completion.data == sector_content(14) + sector_content(15)


def test_header_split_across_descriptors_is_gathered(driver):
    header = driver.alloc(struct.pack("<IIQ", T_IN, 0, 5))
    data, status = driver.alloc(512), driver.alloc(1)
    chain = [(header, 3, False), (header + 3, 9, False), (header + 12, 4, False), (data, 512, True), (status, 1, True)]
    completion = driver.submit(chain, status, data, 512)
    assert (completion.status, completion.data) == (S_OK, sector_content(5))


def test_status_byte_may_share_the_data_buffer(driver):
    header = driver.alloc(struct.pack("<IIQ", T_IN, 0, 2))
    data = driver.alloc(513)
    completion = driver.submit([(header, 16, False), (data, 513, True)], data + 512, data, 512)
    assert (completion.status, completion.data, completion.length) == (S_OK, sector_content(2), 513)


def test_written_sectors_reach_the_image_file_on_flush(driver, image):
    new = b"W" * 1024
    assert driver.write_sectors(6, new).status == S_OK
    assert driver.block_request(T_FLUSH).status == S_OK
    on_disk = image.read_bytes()
    assert on_disk[6 * 512:8 * 512] == new
    assert on_disk[5 * 512:6 * 512] == sector_content(5)
    assert driver.read_sectors(7, 1).data == b"W" * 512


def test_close_makes_written_sectors_durable(image):
    disk = VirtioBlk(image)
    driver = GuestDriver(disk)
    driver.start()
    driver.write_sectors(1, b"C" * 512)
    disk.close()
    disk.close()
    assert image.read_bytes()[512:1024] == b"C" * 512


def test_get_id_answers_a_20_byte_serial(driver):
    completion = driver.block_request(T_GET_ID, in_length=20)
    assert completion.status == S_OK
    assert completion.data == b"disk.img".ljust(20, b"\0")
    assert completion.length == 21


def test_unknown_request_type_answers_unsupp(driver):
    assert driver.block_request(11, in_length=512).status == S_UNSUPP    # VIRTIO_BLK_T_DISCARD: not offered


@pytest.mark.parametrize(("sector", "count"), [(16, 1), (15, 2), (1 << 63, 1), ((1 << 64) - 1, 1)])
def test_read_past_the_end_of_the_disk_answers_ioerr(driver, sector, count):
    completion = driver.read_sectors(sector, count)
    assert completion.status == S_IOERR
    assert completion.data == b"\xaa" * 512 * count


def test_write_past_the_end_of_the_disk_answers_ioerr_and_leaves_the_file(driver, image):
    before = image.read_bytes()
    assert driver.write_sectors(16, b"X" * 512).status == S_IOERR
    driver.block_request(T_FLUSH)
    assert image.read_bytes() == before


def test_data_not_in_whole_sectors_answers_ioerr(driver):
    assert driver.block_request(T_IN, 0, in_length=100).status == S_IOERR
    assert driver.write_sectors(0, b"short").status == S_IOERR


def test_header_shorter_than_16_bytes_answers_ioerr(driver):
    header, status = driver.alloc(struct.pack("<IIQ", T_IN, 0, 0)), driver.alloc(1)
    assert driver.submit([(header, 8, False), (status, 1, True)], status).status == S_IOERR


def test_snapshot_reads_back_written_data_and_leaves_the_file_unchanged(image):
    before = image.read_bytes()
    disk = VirtioBlk(image, snapshot=True)
    driver = GuestDriver(disk)
    driver.start()
    assert driver.write_sectors(2, b"S" * 1024).status == S_OK
    assert driver.block_request(T_FLUSH).status == S_OK
    assert driver.read_sectors(1, 4).data == sector_content(1) + b"S" * 1024 + sector_content(4)
    disk.close()
    assert image.read_bytes() == before


def test_read_only_disk_offers_ro_and_fails_writes(image):
    before = image.read_bytes()
    disk = VirtioBlk(image, read_only=True)
    driver = GuestDriver(disk)
    assert driver.offered_features() & BlkFeature.RO
    driver.start()
    assert driver.write_sectors(0, b"R" * 512).status == S_IOERR
    assert driver.read_sectors(0, 1).data == sector_content(0)
    disk.close()
    assert image.read_bytes() == before


def test_image_file_without_write_permission_opens_read_only(image, monkeypatch):
    def open_as_non_owner(path, mode="r"):     # what a 0444 file gives a user who is not root
        if "+" in mode:
            raise PermissionError(13, "Permission denied", path)
        return open(path, mode)

    monkeypatch.setattr(virtio_blk, "open", open_as_non_owner, raising=False)
    disk = VirtioBlk(image)
    assert disk.features & BlkFeature.RO
    assert disk.state.read_only
    disk.close()


def test_image_size_not_a_multiple_of_512_rounds_capacity_down_and_warns(tmp_path):
    path = tmp_path / "odd.img"
    path.write_bytes(b"x" * 1300)
    log = io.StringIO()
    disk = VirtioBlk(path, log=log)
    assert disk.state.capacity == 2
    assert "not a multiple of 512" in log.getvalue()
    disk.close()


def test_missing_image_raises_disk_error_with_a_one_line_message(tmp_path):
    with pytest.raises(DiskError) as error:
        VirtioBlk(tmp_path / "nope.img")
    message = str(error.value)
    assert message.startswith(f"cannot open disk image {tmp_path / 'nope.img'}: ")
    assert "No such file" in message and "\n" not in message


def test_request_through_an_indirect_descriptor_table(driver):
    header = driver.alloc(struct.pack("<IIQ", T_IN, 0, 9))
    data, status = driver.alloc(512), driver.alloc(1)
    driver.descriptor(0, header, 16, NEXT, 1, table=INDIRECT_TABLE)
    driver.descriptor(1, data, 512, WRITE | NEXT, 2, table=INDIRECT_TABLE)
    driver.descriptor(2, status, 1, WRITE, table=INDIRECT_TABLE)
    driver.descriptor(0, INDIRECT_TABLE, 48, INDIRECT)
    driver.make_available(0)
    driver.notify()
    assert driver.take_used() == [(0, 513)]
    assert driver.memory.ram[status] == S_OK
    assert bytes(driver.memory.ram[data:data + 512]) == sector_content(9)


def test_indirect_descriptor_refused_when_not_negotiated(image):
    disk = VirtioBlk(image)
    driver = GuestDriver(disk)
    driver.start(accept=driver.offered_features() & ~Feature.INDIRECT_DESC)
    status = driver.alloc(bytes([UNTOUCHED]))
    driver.descriptor(0, driver.alloc(struct.pack("<IIQ", T_IN, 0, 0)), 16, NEXT, 1, table=INDIRECT_TABLE)
    driver.descriptor(1, status, 1, WRITE, table=INDIRECT_TABLE)
    driver.descriptor(0, INDIRECT_TABLE, 32, INDIRECT)
    driver.make_available(0)
    driver.notify()
    assert "without VIRTIO_F_INDIRECT_DESC" in driver.log.getvalue()
    assert driver.memory.ram[status] == UNTOUCHED
    assert driver.status() & Status.DEVICE_NEEDS_RESET
    disk.close()
