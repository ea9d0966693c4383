"""The keyboard controller driven as Linux's i8042 driver and reboot code drive it."""

from __future__ import annotations

import pytest

from devices.bus import Bus
from devices.i8042 import I8042

DATA, COMMAND = 0x60, 0x64
STR_OBF, STR_IBF, STR_SYS, STR_CMD, STR_AUXDATA = 0x01, 0x02, 0x04, 0x08, 0x20
CTR_KBDINT, CTR_SYSFLAG, CTR_KBDDIS, CTR_AUXDIS, CTR_XLATE = 0x01, 0x04, 0x10, 0x20, 0x40


class Machine:
    def __init__(self) -> None:
        self.resets = 0
        self.kbc = I8042(reset=self.reset)
        self.ports = Bus("ports")
        self.ports.map(DATA, 1, self.kbc.data, "i8042-data")
        self.ports.map(COMMAND, 1, self.kbc.command, "i8042-command")

    def reset(self) -> None:
        self.resets += 1

    def outb(self, port: int, value: int) -> None:
        self.ports.write(port, 1, value)

    def inb(self, port: int) -> int:
        return self.ports.read(port, 1)

    def command(self, command: int, *params: int) -> int | None:
        """i8042_command(): wait for IBF clear before each write, OBF set before the reply."""
        for port, byte in ((COMMAND, command), *((DATA, param) for param in params)):
            assert not self.inb(COMMAND) & STR_IBF
            self.outb(port, byte)
        if self.inb(COMMAND) & STR_OBF:
            return self.inb(DATA)
        return None


@pytest.fixture
def m() -> Machine:
    return Machine()


def test_reboot_kbd_pulses_the_reset_line(m: Machine) -> None:
    """native_machine_emergency_restart, BOOT_KBD: kb_wait() then outb(0xfe, 0x64)."""
    assert not m.inb(COMMAND) & STR_IBF
    m.outb(COMMAND, 0xFE)
    assert m.resets == 1


def test_pulse_command_without_bit_0_leaves_reset_alone(m: Machine) -> None:
    m.outb(COMMAND, 0xFF)
    m.outb(COMMAND, 0xF1)  # pulses lines 1-3, not reset
    assert m.resets == 0


def test_writing_the_output_port_with_reset_low_resets(m: Machine) -> None:
    m.command(0xD1, 0xDF)  # A20 on, reset inactive
    assert m.resets == 0
    assert m.command(0xD0) == 0xDF
    m.command(0xD1, 0xDE)
    assert m.resets == 1


def test_self_test_replies_0x55_and_sets_the_system_flag(m: Machine) -> None:
    assert m.command(0xAA) == 0x55
    assert m.inb(COMMAND) & STR_SYS
    assert not m.inb(COMMAND) & STR_OBF  # the reply was consumed


def test_linux_probe_finds_a_controller_with_a_stable_command_byte(m: Machine) -> None:
    while m.inb(COMMAND) & STR_OBF:  # i8042_flush
        m.inb(DATA)
    assert m.command(0xAA) == 0x55
    ctr = [m.command(0x20), m.command(0x20)]
    assert ctr[0] == ctr[1] == CTR_KBDINT | CTR_SYSFLAG | CTR_XLATE
    new = (ctr[0] | CTR_KBDDIS) & ~CTR_KBDINT
    m.command(0x60, new)
    assert m.command(0x20) == new


def test_aux_loopback_echoes_as_aux_data(m: Machine) -> None:
    m.outb(COMMAND, 0xD3)
    m.outb(DATA, 0x5A)
    assert m.inb(COMMAND) & (STR_OBF | STR_AUXDATA) == STR_OBF | STR_AUXDATA
    assert m.inb(DATA) == 0x5A


def test_keyboard_output_write_appears_as_keyboard_data(m: Machine) -> None:
    m.outb(COMMAND, 0xD2)
    m.outb(DATA, 0x1C)
    assert m.inb(COMMAND) & (STR_OBF | STR_AUXDATA) == STR_OBF
    assert m.inb(DATA) == 0x1C


def test_enable_and_disable_commands_toggle_the_command_byte(m: Machine) -> None:
    m.command(0xA7)
    m.command(0xAD)
    assert m.command(0x20) & (CTR_AUXDIS | CTR_KBDDIS) == CTR_AUXDIS | CTR_KBDDIS
    m.command(0xA8)
    assert not m.command(0x20) & CTR_AUXDIS
    m.command(0xAE)
    assert not m.command(0x20) & CTR_KBDDIS


def test_interface_tests_report_no_error(m: Machine) -> None:
    assert m.command(0xAB) == 0x00
    assert m.command(0xA9) == 0x00


def test_no_keyboard_answers_a_device_command(m: Machine) -> None:
    m.outb(DATA, 0xF2)  # atkbd GETID
    assert not m.inb(COMMAND) & STR_OBF
    m.command(0xD4, 0xF2)  # to the mouse
    assert not m.inb(COMMAND) & STR_OBF


def test_status_a2_bit_follows_the_last_port_written(m: Machine) -> None:
    m.outb(COMMAND, 0xAA)
    assert m.inb(COMMAND) & STR_CMD
    m.inb(DATA)
    m.outb(DATA, 0xF4)
    assert not m.inb(COMMAND) & STR_CMD


def test_reading_data_again_repeats_the_last_byte_without_obf(m: Machine) -> None:
    m.command(0xAA)
    assert m.inb(DATA) == 0x55
    assert not m.inb(COMMAND) & STR_OBF


def test_info_shows_the_command_byte(m: Machine) -> None:
    assert "command_byte=45" in m.kbc.info()
    assert "output_buffer=empty" in m.kbc.info()
