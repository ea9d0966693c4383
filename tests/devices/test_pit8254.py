"""The 8254 driven as Linux drives it: the periodic tick on channel 0, TSC calibration on channel 2 through port
0x61, counter latch and read-back."""

from __future__ import annotations

import pytest

from devices.bus import Bus
from devices.irq import IrqLine
from devices.pit8254 import PIT_HZ, Pit8254, ns_at, tick_at
from tests.devices.virtual_time import VirtualTime

CHANNEL0, CHANNEL2, MODE_COMMAND, PORT_B = 0x40, 0x42, 0x43, 0x61
LATCH = 1193182 // 1000 * 50
"""Linux's CALIBRATE_LATCH: 50 ms."""


class Machine:
    def __init__(self) -> None:
        self.time = VirtualTime()
        self.irq0_rises: list[int] = []
        self.irq0 = IrqLine(lambda level: level and self.irq0_rises.append(self.time.ns), "irq0")
        self.pit = Pit8254(self.time.clock, self.irq0)
        self.ports = Bus("ports")
        self.ports.map(0x40, 4, self.pit, "pit")
        self.ports.map(0x61, 1, self.pit.port61, "port61")

    def outb(self, port: int, value: int) -> None:
        self.ports.write(port, 1, value)

    def inb(self, port: int) -> int:
        return self.ports.read(port, 1)

    def program(self, port: int, control: int, count: int) -> int:
        """Control word then a lobyte/hibyte count; returns the CLK pulse on which counting starts."""
        self.outb(MODE_COMMAND, control)
        self.outb(port, count & 0xFF)
        self.outb(port, count >> 8 & 0xFF)
        return tick_at(self.time.ns) + 1

    def read_count(self, port: int) -> int:
        low = self.inb(port)
        return self.inb(port) << 8 | low


@pytest.fixture
def m() -> Machine:
    return Machine()


def test_tick_conversions_round_trip() -> None:
    assert tick_at(1_000_000_000) == PIT_HZ
    for tick in (0, 1, 11932, 123_456_789):
        assert tick_at(ns_at(tick)) == tick
        assert tick_at(ns_at(tick) - 1) == tick - 1 or tick == 0


def test_mode2_divisor_11932_pulses_irq0_every_11932_clocks(m: Machine) -> None:
    start = m.program(CHANNEL0, 0x34, 11932)  # channel 0, lobyte/hibyte, mode 2: Linux's periodic PIT
    m.time.advance(ns_at(start + 10 * 11932))
    assert m.irq0_rises == [ns_at(start + k * 11932) for k in range(1, 11)]
    assert m.irq0.level is False  # pulsed, not held


def test_mode2_divisor_11932_is_just_under_100_hz(m: Machine) -> None:
    """11932 = Linux's LATCH for HZ=100, 11931.82 rounded: the 100th pulse comes 15 us (18 clocks) after one second."""
    start = m.program(CHANNEL0, 0x34, 11932)
    m.time.advance(ns_at(start) + 1_000_000_000)
    assert len(m.irq0_rises) == 99
    m.time.advance(ns_at(18) + 1)
    assert len(m.irq0_rises) == 100


def test_a_late_deadline_merges_missed_edges_into_one_pulse(m: Machine) -> None:
    m.program(CHANNEL0, 0x34, 1000)
    m.time.ns += 10_000_000  # the machine was busy for 10 ms and did not stop at the deadlines
    m.time.clock.fire_due()
    assert len(m.irq0_rises) == 1


def test_count_zero_means_65536(m: Machine) -> None:
    start = m.program(CHANNEL0, 0x34, 0)
    m.time.advance(ns_at(start + 65536) - 1)
    assert m.irq0_rises == []
    m.time.advance(1)
    assert m.irq0_rises == [ns_at(start + 65536)]


def test_reprogramming_channel0_cancels_the_old_period(m: Machine) -> None:
    m.program(CHANNEL0, 0x34, 1000)
    m.time.advance(100_000)
    m.outb(MODE_COMMAND, 0x30)  # mode 0, and no count yet: the counter stops
    m.time.advance(10_000_000)
    assert m.irq0_rises == []


def test_latched_count_is_the_reload_minus_elapsed_clocks(m: Machine) -> None:
    start = m.program(CHANNEL0, 0x34, 1000)
    m.time.advance(ns_at(start + 2500))
    m.outb(MODE_COMMAND, 0x00)  # counter latch, channel 0
    m.time.advance(300_000)  # the latch holds while time passes
    assert m.read_count(CHANNEL0) == 1000 - 2500 % 1000
    assert m.read_count(CHANNEL0) == 1000 - (tick_at(m.time.ns) - start) % 1000


def test_a_second_latch_before_reading_is_ignored(m: Machine) -> None:
    m.outb(PORT_B, 0x01)
    start = m.program(CHANNEL2, 0xB0, 0xFFFF)
    m.time.advance(ns_at(start + 100))
    m.outb(MODE_COMMAND, 0x80)
    m.time.advance(1_000_000)
    m.outb(MODE_COMMAND, 0x80)
    assert m.read_count(CHANNEL2) == 0xFFFF - 100


def test_counter_read_live_decreases_with_time(m: Machine) -> None:
    """quick_pit_calibrate: mode 0 from 0xffff, reading the MSB as it counts down."""
    m.outb(PORT_B, 0x01)
    start = m.program(CHANNEL2, 0xB0, 0xFFFF)
    msbs = []
    for _ in range(5):
        m.time.advance(ns_at(256) + 1)
        m.inb(CHANNEL2)
        msbs.append(m.inb(CHANNEL2))
    assert msbs == sorted(msbs, reverse=True) and len(set(msbs)) == 5
    assert msbs[-1] == (0xFFFF - (tick_at(m.time.ns) - start)) >> 8


def test_lobyte_only_and_hibyte_only_access(m: Machine) -> None:
    m.outb(MODE_COMMAND, 0x90)  # channel 2, lobyte only, mode 0
    m.outb(CHANNEL2, 0x34)
    assert m.inb(CHANNEL2) == 0x34  # gate 2 is low: the counter holds its count
    assert m.inb(CHANNEL2) == 0x34
    m.outb(MODE_COMMAND, 0xA0)  # hibyte only
    m.outb(CHANNEL2, 0x12)
    m.outb(MODE_COMMAND, 0x80)
    assert m.inb(CHANNEL2) == 0x12
    m.outb(MODE_COMMAND, 0xB0)  # lobyte then hibyte: the latched 0x1200 reads low byte first
    m.outb(CHANNEL2, 0x78)
    m.outb(CHANNEL2, 0x56)
    assert m.read_count(CHANNEL2) == 0x5678


def test_mode0_one_shot_on_channel2_shows_out2_in_port61_bit5(m: Machine) -> None:
    """pit_calibrate_tsc(): gate on, speaker off, mode 0 with CALIBRATE_LATCH, poll OUT2."""
    m.outb(PORT_B, (m.inb(PORT_B) & ~0x02) | 0x01)
    start = m.program(CHANNEL2, 0xB0, LATCH)
    assert not m.inb(PORT_B) & 0x20
    polls = 0
    while not m.inb(PORT_B) & 0x20:
        m.time.advance(10_000)
        polls += 1
    assert tick_at(m.time.ns) >= start + LATCH > tick_at(m.time.ns - 10_000)
    assert polls == pytest.approx(5000, abs=2)
    m.time.advance(100_000_000)
    assert m.inb(PORT_B) & 0x20  # OUT stays high after terminal count
    assert m.irq0_rises == []


def test_mode0_on_channel0_interrupts_once(m: Machine) -> None:
    start = m.program(CHANNEL0, 0x30, 5000)
    m.time.advance(100_000_000)
    assert m.irq0_rises == [ns_at(start + 5000)]


def test_gate2_low_holds_channel2(m: Machine) -> None:
    m.outb(PORT_B, 0x00)
    m.program(CHANNEL2, 0xB0, 1000)
    m.time.advance(10_000_000)
    assert not m.inb(PORT_B) & 0x20
    m.outb(MODE_COMMAND, 0x80)
    assert m.read_count(CHANNEL2) == 1000
    m.outb(PORT_B, 0x01)
    start = tick_at(m.time.ns) + 1
    m.time.advance(ns_at(start + 400) - m.time.ns)
    assert m.read_count(CHANNEL2) == 600


def test_read_back_latches_status_then_count(m: Machine) -> None:
    m.outb(MODE_COMMAND, 0x34)
    m.outb(MODE_COMMAND, 0xE2)  # read-back: status only, channel 0
    assert m.inb(CHANNEL0) == 0xC0 | 0x34  # OUT high, null count, lobyte/hibyte, mode 2
    start = m.program(CHANNEL0, 0x34, 3000)
    m.time.advance(ns_at(start + 10))
    m.outb(MODE_COMMAND, 0xC2)  # read-back: count and status, channel 0
    m.time.advance(1_000_000)
    assert m.inb(CHANNEL0) == 0x80 | 0x34
    assert m.read_count(CHANNEL0) == 2990


def test_read_back_of_several_channels_latches_each_count(m: Machine) -> None:
    m.outb(PORT_B, 0x01)
    start0 = m.program(CHANNEL0, 0x34, 3000)
    start2 = m.program(CHANNEL2, 0xB0, 4000)
    m.time.advance(ns_at(start2 + 7))
    m.outb(MODE_COMMAND, 0xD0 | 0x08 | 0x02)  # read-back: count only, channels 0 and 2
    m.time.advance(1_000_000)
    assert m.read_count(CHANNEL0) == 3000 - (start2 + 7 - start0)
    assert m.read_count(CHANNEL2) == 4000 - 7


def test_mode3_square_wave_is_high_for_the_first_half(m: Machine) -> None:
    m.outb(PORT_B, 0x01)
    start = m.program(CHANNEL2, 0xB6, 1000)  # channel 2, mode 3
    for offset, high in ((0, True), (499, True), (500, False), (999, False), (1000, True), (1499, True)):
        m.time.ns = ns_at(start + offset)
        assert bool(m.inb(PORT_B) & 0x20) == high, offset
    m.time.ns = ns_at(start + 1100)
    m.outb(MODE_COMMAND, 0x80)
    assert m.read_count(CHANNEL2) == 1000 - 2 * 100


def test_mode3_on_channel0_interrupts_at_each_period(m: Machine) -> None:
    start = m.program(CHANNEL0, 0x36, 1193)
    m.time.advance(ns_at(start + 3 * 1193))
    assert m.irq0_rises == [ns_at(start + k * 1193) for k in (1, 2, 3)]


def test_control_word_that_raises_out0_at_once_is_an_irq0_edge(m: Machine) -> None:
    """Linux's clockevent: shutdown (mode 0, OUT low), then set_oneshot (mode 4, OUT high at once)."""
    m.program(CHANNEL0, 0x30, 0)
    assert m.irq0_rises == []
    m.time.advance(1_000)
    m.outb(MODE_COMMAND, 0x38)
    assert m.irq0_rises == [1_000]
    m.outb(MODE_COMMAND, 0x34)  # OUT already high: no edge
    assert m.irq0_rises == [1_000]


def test_mode4_strobe_interrupts_once_one_clock_after_terminal_count(m: Machine) -> None:
    start = m.program(CHANNEL0, 0x38, 200)
    m.time.advance(10_000_000)
    assert m.irq0_rises == [ns_at(start + 201)]


def test_mode1_one_shot_is_triggered_by_gate2(m: Machine) -> None:
    m.program(CHANNEL2, 0xB2, 100)
    m.time.advance(1_000_000)
    assert m.inb(PORT_B) & 0x20  # armed, not triggered: OUT high
    m.outb(PORT_B, 0x01)
    trigger = tick_at(m.time.ns) + 1
    m.time.ns = ns_at(trigger + 50)
    assert not m.inb(PORT_B) & 0x20
    m.time.ns = ns_at(trigger + 100)
    assert m.inb(PORT_B) & 0x20


def test_mode5_strobe_is_triggered_by_gate2(m: Machine) -> None:
    m.program(CHANNEL2, 0xBA, 100)
    m.outb(PORT_B, 0x01)
    trigger = tick_at(m.time.ns) + 1
    m.time.ns = ns_at(trigger + 100)
    assert not m.inb(PORT_B) & 0x20
    m.time.ns = ns_at(trigger + 101)
    assert m.inb(PORT_B) & 0x20


def test_bcd_counting(m: Machine) -> None:
    m.outb(PORT_B, 0x01)
    start = m.program(CHANNEL2, 0xB1, 0x1000)  # mode 0, BCD count 1000
    m.time.ns = ns_at(start + 1)
    m.outb(MODE_COMMAND, 0x80)
    assert m.read_count(CHANNEL2) == 0x0999


def test_port61_refresh_bit_toggles_on_each_read_and_keeps_written_bits(m: Machine) -> None:
    m.outb(PORT_B, 0xFF)
    reads = [m.inb(PORT_B) for _ in range(4)]
    assert [r & 0x10 for r in reads] == [0x10, 0, 0x10, 0]
    assert all(r & 0x0F == 0x0F and not r & 0xC0 for r in reads)


def test_info_shows_each_channel(m: Machine) -> None:
    m.program(CHANNEL0, 0x34, 11932)
    text = m.pit.info()
    assert "channel 0: mode 2 lsb_msb reload=11932" in text
    assert "channel 2: mode 0" in text and "gate=0" in text
