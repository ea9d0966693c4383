"""isa-debug-exit: a guest's write of V ends the run with status (V << 1) | 1."""

from __future__ import annotations

from devices.bus import Bus
from devices.debug_exit import DebugExit


def make() -> tuple[Bus, list[int]]:
    statuses: list[int] = []
    ports = Bus("ports")
    ports.map(0xF4, 4, DebugExit(exit=statuses.append), "debug-exit")
    return ports, statuses


def test_outb_value_becomes_status_shifted_left_with_bit_0_set() -> None:
    ports, statuses = make()
    ports.write(0xF4, 1, 0x10)
    ports.write(0xF4, 1, 0)
    assert statuses == [0x21, 0x01]


def test_wider_writes_keep_the_whole_value() -> None:
    ports, statuses = make()
    ports.write(0xF4, 2, 0x1234)
    ports.write(0xF4, 4, 0x7FFF_FFFF)
    assert statuses == [0x2469, 0xFFFF_FFFF]


def test_reads_return_all_ones() -> None:
    ports, _ = make()
    assert ports.read(0xF4, 1) == 0xFF
