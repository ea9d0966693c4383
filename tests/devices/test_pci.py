"""PCI configuration space, mechanism #1 and BAR decoding, driven as Linux's arch/x86/pci/direct.c and
drivers/pci/probe.c drive them (PCI Local Bus Specification 3.0, 3.2.2.3.2 and chapter 6); the firmware's
BAR assignment as the BIOS does it before the kernel starts."""

from __future__ import annotations

import pytest

from devices.pci import Bar, BarKind, Command, PciFunction, PciStatus, Reg, intx_irq
from firmware.pci import IO_WINDOW, MEMORY_WINDOW, assign_resources
from tests.devices.pci_board import CONFIG_ADDRESS, Board


class Registers:
    """A BAR's contents: remembers writes, reads back the offset."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, int, int]] = []

    def read(self, offset: int, size: int) -> int:
        return offset

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes.append((offset, size, value))


def make_function(board: Board, slot: int = 3) -> tuple[PciFunction, Registers, Registers]:
    io, mem = Registers(), Registers()
    function = PciFunction("test", vendor_id=0x1234, device_id=0x5678, class_code=0x0100_00, interrupt_pin=1,
                           bars={0: Bar(BarKind.IO, 0x40, io, "io"), 1: Bar(BarKind.MEMORY32, 0x1000, mem, "mem")},
                           log=board.log)
    function.add_capability(0x09, bytes([4, 0xAA]), 0x40)
    function.add_capability(0x09, bytes([4, 0xBB]), 0x50)
    board.host.attach(slot, function)
    return function, io, mem


@pytest.fixture
def board():
    return Board()


def test_conf1_check_finds_the_address_latch_as_linux_pci_check_type1_does(board):
    board.ports.write(0xCFB, 1, 0x01)
    saved = board.ports.read(CONFIG_ADDRESS, 4)
    board.ports.write(CONFIG_ADDRESS, 4, 0x8000_0000)
    assert board.ports.read(CONFIG_ADDRESS, 4) == 0x8000_0000
    board.ports.write(CONFIG_ADDRESS, 4, saved)
    board.ports.write(CONFIG_ADDRESS, 4, 0xFFFF_FFFF)
    assert board.ports.read(CONFIG_ADDRESS, 4) == 0x80FF_FFFC     # reserved bits 30-24 and 1-0 read 0


def test_host_bridge_at_00_0_has_the_class_pci_sanity_check_looks_for(board):
    assert board.conf1_read(0, Reg.VENDOR_ID, 2) == 0x8086
    assert board.conf1_read(0, Reg.CLASS_CODE + 1, 2) == 0x0600     # host bridge
    assert board.conf1_read(0, Reg.HEADER_TYPE, 1) == 0


def test_empty_slots_other_functions_and_other_buses_read_all_ones(board):
    assert board.conf1_read(5, Reg.VENDOR_ID, 2) == 0xFFFF
    assert board.conf1_read(0, Reg.VENDOR_ID, 4, function=1) == 0xFFFF_FFFF
    assert board.conf1_read(0, Reg.VENDOR_ID, 4, bus=1) == 0xFFFF_FFFF


def test_byte_word_and_dword_reads_at_any_offset_see_the_same_bytes(board):
    make_function(board)
    dword = board.conf1_read(3, 0, 4)
    assert dword == 0x5678_1234
    assert board.conf1_read(3, 1, 1) == 0x12
    assert board.conf1_read(3, 2, 2) == 0x5678
    assert board.conf1_read(3, 3, 1) == 0x56


def test_data_access_without_the_enable_bit_reads_all_ones(board):
    make_function(board)
    board.ports.write(CONFIG_ADDRESS, 4, 3 << 11)
    assert board.ports.read(0xCFC, 4) == 0xFFFF_FFFF


def test_bar_sizing_reads_back_size_and_type_and_restores(board):
    make_function(board)
    assert board.size_bar(3, 0) == (0x40, 0x1)      # I/O
    assert board.size_bar(3, 1) == (0x1000, 0x0)    # 32-bit memory, not prefetchable
    assert board.size_bar(3, 2) == (0, 0)           # unimplemented: reads 0 even after all ones
    assert board.conf1_read(3, Reg.BAR0, 4) == 0x1


def test_capability_walk_finds_both_capabilities_in_order(board):
    make_function(board)
    caps = board.capabilities(3)
    assert caps == [0x40, 0x50]
    assert [board.conf1_read(3, c + 3, 1) for c in caps] == [0xAA, 0xBB]


def test_writes_to_read_only_fields_are_ignored_and_logged(board):
    make_function(board)
    board.conf1_write(3, Reg.VENDOR_ID, 4, 0xDEAD_BEEF)
    board.conf1_write(3, Reg.CLASS_CODE - 1, 4, 0xFFFF_FFFF)
    board.conf1_write(3, Reg.CAPABILITIES, 1, 0x80)
    board.conf1_write(3, Reg.INTERRUPT_PIN, 1, 4)
    assert board.conf1_read(3, Reg.VENDOR_ID, 4) == 0x5678_1234
    assert board.conf1_read(3, Reg.CLASS_CODE - 1, 4) == 0x0100_0000
    assert board.capabilities(3) == [0x40, 0x50]
    assert board.conf1_read(3, Reg.INTERRUPT_PIN, 1) == 1
    assert "read-only configuration bits ignored" in board.log.getvalue()


def test_command_keeps_only_the_bits_the_function_implements(board):
    make_function(board)
    board.conf1_write(3, Reg.COMMAND, 2, 0xFFFF)
    assert board.conf1_read(3, Reg.COMMAND, 2) == (Command.IO_SPACE | Command.MEMORY_SPACE | Command.BUS_MASTER
                                                   | Command.INTX_DISABLE)


def test_interrupt_line_is_writable_and_status_error_bits_are_write_one_to_clear(board):
    function, _, _ = make_function(board)
    board.conf1_write(3, Reg.INTERRUPT_LINE, 1, 11)
    assert board.conf1_read(3, Reg.INTERRUPT_LINE, 1) == 11
    function.space[Reg.STATUS + 1] |= PciStatus.RECEIVED_MASTER_ABORT >> 8
    board.conf1_write(3, Reg.STATUS, 2, 0)
    assert board.conf1_read(3, Reg.STATUS, 2) & PciStatus.RECEIVED_MASTER_ABORT
    board.conf1_write(3, Reg.STATUS, 2, PciStatus.RECEIVED_MASTER_ABORT)
    assert not board.conf1_read(3, Reg.STATUS, 2) & PciStatus.RECEIVED_MASTER_ABORT
    assert board.conf1_read(3, Reg.STATUS, 2) & PciStatus.CAPABILITIES_LIST


def test_bars_decode_only_while_the_command_register_enables_them(board):
    _, io, mem = make_function(board)
    board.conf1_write(3, Reg.BAR0, 4, 0xC040)
    board.conf1_write(3, Reg.BAR0 + 4, 4, 0xE000_1000)
    board.ports.write(0xC044, 2, 7)
    assert io.writes == []
    board.conf1_write(3, Reg.COMMAND, 2, Command.IO_SPACE | Command.MEMORY_SPACE)
    board.ports.write(0xC044, 2, 7)
    assert io.writes == [(4, 2, 7)]
    assert board.memory.load(0xE000_1008, 32) == 8
    board.conf1_write(3, Reg.BAR0 + 4, 4, 0xE000_3000)        # moved: the old address is gone
    assert board.memory.load(0xE000_1008, 32) == 0xFFFF_FFFF
    assert board.memory.load(0xE000_3010, 32) == 0x10


def test_a_bar_overlapping_another_device_is_not_decoded_and_reads_all_ones(board):
    make_function(board, slot=3)
    other, _, _ = make_function(board, slot=4)
    for slot in (3, 4):
        board.conf1_write(slot, Reg.BAR0 + 4, 4, 0xE000_0000)
        board.conf1_write(slot, Reg.COMMAND, 2, Command.MEMORY_SPACE)
    assert board.memory.load(0xE000_0010, 32) == 0x10           # the first device keeps it
    assert "overlaps" in board.log.getvalue()
    board.conf1_write(4, Reg.BAR0 + 4, 4, 0xE000_2000)          # the guest moves it: now it decodes
    assert board.memory.load(0xE000_2010, 32) == 0x10
    assert board.memory.load(0xE000_0010, 32) == 0x10


def test_a_memory_bar_over_ram_or_an_io_bar_past_64k_is_not_decoded(board):
    _, io, _ = make_function(board)
    board.conf1_write(3, Reg.BAR0, 4, 0x1_0000)
    board.conf1_write(3, Reg.BAR0 + 4, 4, 0x1000)               # inside the 64 KiB of RAM
    board.conf1_write(3, Reg.COMMAND, 2, Command.IO_SPACE | Command.MEMORY_SPACE)
    assert board.memory.load(0x1000, 32) == 0                    # RAM, untouched
    assert board.mmio.devices() == [] and "over RAM" in board.log.getvalue()


def test_firmware_assigns_aligned_bars_in_the_windows_interrupt_line_and_level_trigger(board):
    make_function(board, slot=3)
    make_function(board, slot=4)
    placed = assign_resources(board.ports)
    assert len(placed) == 4
    for p in placed:
        low, high = IO_WINDOW if p.io else MEMORY_WINDOW
        assert low <= p.address and p.address + p.size <= high and p.address % p.size == 0
        assert board.conf1_read(p.slot, Reg.BAR0 + 4 * p.bar, 4) & ~0xF == p.address & ~0xF
    assert len({p.address for p in placed}) == 4
    for slot in (3, 4):
        line = board.conf1_read(slot, Reg.INTERRUPT_LINE, 1)
        assert line == intx_irq(slot, 1)
        assert board.ports.read(0x4D0 + line // 8, 1) & 1 << (line % 8)
        assert board.conf1_read(slot, Reg.COMMAND, 2) & (Command.IO_SPACE | Command.MEMORY_SPACE) == 3
    assert intx_irq(3, 1) != intx_irq(4, 1)
    mem = next(p for p in placed if p.slot == 3 and not p.io)
    assert board.memory.load(mem.address + 0x20, 32) == 0x20


def test_intx_reaches_the_pic_through_the_board_wiring_unless_disabled(board):
    function, _, _ = make_function(board)
    irq = intx_irq(3, 1)
    chip, bit = (board.pic.slave, irq - 8) if irq >= 8 else (board.pic.master, irq)
    function.set_intx(True)
    assert chip.state.lines & 1 << bit
    assert board.conf1_read(3, Reg.STATUS, 2) & PciStatus.INTERRUPT_STATUS
    board.conf1_write(3, Reg.COMMAND, 2, Command.INTX_DISABLE)
    assert not chip.state.lines & 1 << bit
    assert board.conf1_read(3, Reg.STATUS, 2) & PciStatus.INTERRUPT_STATUS   # the status still tells
