"""The MC146818 RTC read and set as Linux's mc146818-lib does: CMOS_READ/CMOS_WRITE through ports 0x70/0x71."""

from __future__ import annotations

import calendar
import time

import pytest

from devices.bus import Bus
from devices.cmos import Cmos, RtcRangeError
from tests.devices.virtual_time import VirtualTime

RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK = 0x00, 0x02, 0x04, 0x06
RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR, RTC_CENTURY = 0x07, 0x08, 0x09, 0x32
RTC_REG_A, RTC_REG_B, RTC_REG_C, RTC_REG_D = 0x0A, 0x0B, 0x0C, 0x0D
RTC_UIP, RTC_SET, RTC_DM_BINARY, RTC_24H = 0x80, 0x80, 0x04, 0x02
LEAP_DAY_EVENING = calendar.timegm((2024, 2, 29, 23, 59, 30))
"""Thursday 2024-02-29 23:59:30 UTC."""


class Machine:
    def __init__(self, base: int | None = LEAP_DAY_EVENING) -> None:
        self.time = VirtualTime()
        self.rtc = Cmos(self.time.clock, base=base)
        self.ports = Bus("ports")
        self.ports.map(0x70, 2, self.rtc, "rtc")

    def cmos_read(self, reg: int) -> int:
        self.ports.write(0x70, 1, reg)
        return self.ports.read(0x71, 1)

    def cmos_write(self, value: int, reg: int) -> None:
        self.ports.write(0x70, 1, reg)
        self.ports.write(0x71, 1, value)

    def read_time(self) -> tuple[int, ...]:
        """sec, min, hour, day of week, day, month, year, century as the registers hold them."""
        return tuple(self.cmos_read(reg) for reg in (RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK,
                                                     RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR, RTC_CENTURY))


@pytest.fixture
def m() -> Machine:
    return Machine()


def test_time_reads_in_bcd_from_the_fixed_base(m: Machine) -> None:
    assert m.read_time() == (0x30, 0x59, 0x23, 5, 0x29, 0x02, 0x24, 0x20)


def test_time_advances_with_the_virtual_clock_across_midnight_and_month(m: Machine) -> None:
    m.time.advance(61_000_000_000)
    assert m.read_time() == (0x31, 0x00, 0x00, 6, 0x01, 0x03, 0x24, 0x20)  # Friday 2024-03-01 00:00:31


def test_seconds_change_only_on_virtual_second_boundaries(m: Machine) -> None:
    m.time.advance(999_999_999)
    assert m.cmos_read(RTC_SECONDS) == 0x30
    m.time.advance(1)
    assert m.cmos_read(RTC_SECONDS) == 0x31


def test_power_on_registers_a_b_c_d(m: Machine) -> None:
    assert m.cmos_read(RTC_REG_A) == 0x26  # 32.768 kHz divider, 1.024 kHz rate, UIP clear
    assert m.cmos_read(RTC_REG_B) == 0x02  # 24-hour, BCD
    assert m.cmos_read(RTC_REG_C) == 0x00
    assert m.cmos_read(RTC_REG_D) == 0x80  # valid RAM and time


def test_uip_is_set_only_in_the_244_us_before_each_update(m: Machine) -> None:
    m.time.advance(1_000_000_000 - 244_001)
    assert not m.cmos_read(RTC_REG_A) & RTC_UIP
    m.time.advance(1)
    assert m.cmos_read(RTC_REG_A) & RTC_UIP
    m.time.advance(244_000)
    assert not m.cmos_read(RTC_REG_A) & RTC_UIP


def test_mc146818_get_time_never_waits_more_than_244_us(m: Machine) -> None:
    m.time.advance(999_900_000)
    waited = 0
    while m.cmos_read(RTC_REG_A) & RTC_UIP:
        m.time.advance(1_000)
        waited += 1_000
    assert waited <= 244_000


def test_binary_mode(m: Machine) -> None:
    m.cmos_write(RTC_24H | RTC_DM_BINARY, RTC_REG_B)
    assert m.read_time() == (30, 59, 23, 5, 29, 2, 24, 20)


def test_12_hour_mode_marks_pm_in_bit_7(m: Machine) -> None:
    m.cmos_write(0x00, RTC_REG_B)
    assert m.cmos_read(RTC_HOURS) == 0x80 | 0x11
    m.time.advance(31_000_000_000)
    assert m.cmos_read(RTC_HOURS) == 0x12  # 12 AM


def test_nmi_disable_bit_is_not_part_of_the_index(m: Machine) -> None:
    assert m.cmos_read(0x80 | RTC_REG_D) == 0x80
    assert m.rtc.state.nmi_disabled
    assert m.cmos_read(0x80 | RTC_SECONDS) == 0x30
    m.cmos_read(RTC_SECONDS)
    assert not m.rtc.state.nmi_disabled


def test_index_port_is_write_only(m: Machine) -> None:
    assert m.ports.read(0x70, 1) == 0xFF


def test_register_c_reads_zero_and_d_ignores_writes(m: Machine) -> None:
    m.cmos_write(0xFF, RTC_REG_C)
    m.cmos_write(0x00, RTC_REG_D)
    assert (m.cmos_read(RTC_REG_C), m.cmos_read(RTC_REG_D)) == (0, 0x80)


def test_uip_cannot_be_written(m: Machine) -> None:
    m.cmos_write(0xA6, RTC_REG_A)
    assert m.cmos_read(RTC_REG_A) == 0x26


def test_set_time_as_mc146818_set_time_does() -> None:
    """SET freezes the registers, so writing month before day never passes through 31 February."""
    m = Machine(base=calendar.timegm((2023, 1, 31, 12, 0, 0)))
    m.cmos_write(m.cmos_read(RTC_REG_B) | RTC_SET, RTC_REG_B)
    for value, reg in ((0x20, RTC_CENTURY), (0x23, RTC_YEAR), (0x02, RTC_MONTH), (0x28, RTC_DAY_OF_MONTH),
                       (0x08, RTC_HOURS), (0x30, RTC_MINUTES), (0x00, RTC_SECONDS)):
        m.cmos_write(value, reg)
    m.time.advance(5_000_000_000)
    assert m.cmos_read(RTC_SECONDS) == 0x00  # frozen while SET
    assert not m.cmos_read(RTC_REG_A) & RTC_UIP  # no update cycles while SET
    m.cmos_write(m.cmos_read(RTC_REG_B) & ~RTC_SET, RTC_REG_B)
    m.time.advance(2_000_000_000)
    assert m.read_time() == (0x02, 0x30, 0x08, 3, 0x28, 0x02, 0x23, 0x20)  # Tuesday 2023-02-28 08:30:02


def test_writing_a_time_register_without_set_takes_effect_at_once(m: Machine) -> None:
    m.cmos_write(0x10, RTC_MINUTES)
    assert m.read_time()[:3] == (0x30, 0x10, 0x23)
    m.time.advance(1_000_000_000)
    assert m.cmos_read(RTC_SECONDS) == 0x31


def test_an_impossible_date_leaves_the_time_unchanged(m: Machine) -> None:
    m.cmos_write(0x13, RTC_MONTH)
    assert m.read_time() == (0x30, 0x59, 0x23, 5, 0x29, 0x02, 0x24, 0x20)


def test_year_9999_is_refused_so_the_clock_can_keep_running(m: Machine) -> None:
    m.cmos_write(0x99, RTC_YEAR)
    m.cmos_write(0x99, RTC_CENTURY)
    assert (m.cmos_read(RTC_YEAR), m.cmos_read(RTC_CENTURY)) == (0x99, 0x20)


def test_a_base_outside_the_rtc_range_is_refused() -> None:
    with pytest.raises(RtcRangeError, match="outside years 1-9998"):
        Machine(base=10**12)


def test_cmos_ram_beyond_the_clock_is_plain_storage(m: Machine) -> None:
    for reg in (0x0E, 0x10, 0x40, 0x7F):
        assert m.cmos_read(reg) == 0
        m.cmos_write(reg ^ 0x5A, reg)
        assert m.cmos_read(reg) == reg ^ 0x5A


def test_default_base_is_the_host_time_at_power_on() -> None:
    before = int(time.time())
    m = Machine(base=None)
    assert before <= m.rtc.seconds() <= int(time.time())


def test_info_shows_the_time(m: Machine) -> None:
    assert "time=2024-02-29 23:59:30 UTC a=26 b=02 c=00 d=80" in m.rtc.info()
