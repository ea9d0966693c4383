"""The Intel 8042 keyboard controller of a PC/AT (PS/2 style), with nothing plugged into either port.

Follows the IBM PS/2 Hardware Interface Technical Reference, "Keyboard/Auxiliary Device Controller": the status
register (port 0x64 read), the command register (port 0x64 write), the input and output buffers (port 0x60),
the controller command byte (controller RAM byte 0) and the controller commands 0x20-0x3F, 0x60-0x7F, 0xA7-0xAB,
0xAD, 0xAE, 0xD0-0xD4 and 0xF0-0xFF.  The controller takes each byte at once, so the input buffer is always
empty (status bit 1 clear) and a guest never waits to write.

What a guest sees: a controller that passes its self-test and answers its commands, with no keyboard and no
mouse.  Bytes for the devices (data port writes, and 0xD4's argument) go nowhere and nothing answers them, so a
driver's device probe times out on its own clock.  Linux finds the controller, sees no AUX interrupt arrive
during its AUX test (there is none), gives up the mouse port quietly, and its keyboard probe gets no answer.
The reset line (output port bit 0) calls ``reset``: pulsed by 0xFE (Linux's `reboot=k`), or written low by 0xD1.

Not modelled:
- The keyboard and the mouse, scan codes and translation (XLATE is stored only), keyboard lock.
- IRQ 1 and IRQ 12: no device ever sends a byte, and controller replies are read by polling.
- Gate A20 (output port bit 1): the machine's address bus is never wrapped at 1 MiB.
- The input port (0xC0), the test inputs (0xE0), password and vendor commands: ignored with no reply.
- The general timeout and parity error status bits (6, 7) never set.
- Wider accesses act on the addressed port only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag


class Status(IntFlag):
    OBF = 0x01
    """Output buffer full: port 0x60 holds a byte for the CPU."""
    IBF = 0x02
    """Input buffer full: the controller has not yet taken the last byte written."""
    SYS = 0x04
    """System flag: set by a passed self-test (copied from the command byte)."""
    A2 = 0x08
    """The last byte written went to the command port (1) or the data port (0)."""
    INH = 0x10
    """Keyboard not inhibited by the key lock."""
    AUXDATA = 0x20
    """The output buffer holds a byte from the auxiliary device."""
    TIMEOUT = 0x40
    """General time-out: a device did not answer."""
    PARITY = 0x80
    """Parity error on the last byte from a device."""


class CommandByte(IntFlag):
    """Controller RAM byte 0."""

    KBDINT = 0x01
    """Raise IRQ 1 when keyboard data fills the output buffer."""
    AUXINT = 0x02
    """Raise IRQ 12 when auxiliary data fills the output buffer."""
    SYS = 0x04
    """The system flag shown in the status register."""
    IGNKEYLOCK = 0x08
    """Ignore the key lock."""
    KBDDIS = 0x10
    """Keyboard interface disabled (clock held low)."""
    AUXDIS = 0x20
    """Auxiliary interface disabled."""
    XLATE = 0x40
    """Translate keyboard scan codes to set 1."""


class OutputPort(IntFlag):
    RESET = 0x01
    """System reset, active low."""
    A20 = 0x02
    """Gate A20."""
    AUX_CLOCK = 0x04
    AUX_DATA = 0x08
    """Auxiliary interface lines."""
    OBF_KBD = 0x10
    """IRQ 1 output."""
    OBF_AUX = 0x20
    """IRQ 12 output."""
    KBD_CLOCK = 0x40
    KBD_DATA = 0x80
    """Keyboard interface lines."""


class Command(IntEnum):
    READ_RAM = 0x20
    """0x20-0x3F: read controller RAM byte (command & 0x1F); 0x20 reads the command byte."""
    WRITE_RAM = 0x60
    """0x60-0x7F: write controller RAM byte (command & 0x1F) with the next data byte."""
    DISABLE_AUX = 0xA7
    ENABLE_AUX = 0xA8
    TEST_AUX = 0xA9
    """Test the auxiliary interface lines: 0 = no error."""
    SELF_TEST = 0xAA
    """Controller self-test: replies SELF_TEST_PASSED."""
    TEST_KBD = 0xAB
    """Test the keyboard interface lines: 0 = no error."""
    DISABLE_KBD = 0xAD
    ENABLE_KBD = 0xAE
    READ_OUTPUT_PORT = 0xD0
    WRITE_OUTPUT_PORT = 0xD1
    WRITE_KBD_OUTPUT = 0xD2
    """The next data byte appears in the output buffer as if the keyboard sent it."""
    WRITE_AUX_OUTPUT = 0xD3
    """The next data byte appears in the output buffer as if the auxiliary device sent it (loopback)."""
    WRITE_AUX = 0xD4
    """The next data byte is sent to the auxiliary device."""
    PULSE_OUTPUT_PORT = 0xF0
    """0xF0-0xFF: pulse the output port lines whose bit 3-0 of the command is 0 (bit 0 = reset)."""


SELF_TEST_PASSED = 0x55
INTERFACE_OK = 0x00
POWER_ON_COMMAND_BYTE = CommandByte.KBDINT | CommandByte.SYS | CommandByte.XLATE
"""What a PC BIOS leaves in the command byte."""
POWER_ON_OUTPUT_PORT = OutputPort.RESET | OutputPort.A20
"""Reset inactive (high), A20 enabled."""


@dataclass
class I8042State:
    ram: bytearray = field(default_factory=lambda: bytearray([POWER_ON_COMMAND_BYTE]) + bytearray(31))
    """Controller RAM; byte 0 is the command byte."""
    output_port: OutputPort = POWER_ON_OUTPUT_PORT
    output_buffer: int = 0
    """The last byte placed for the CPU; reading port 0x60 returns it whether or not it is new."""
    output_full: bool = False
    output_from_aux: bool = False
    last_write_was_command: bool = False
    pending: int | None = None
    """A command waiting for its data byte on port 0x60."""


class _Port:
    """One of the controller's two ports as a bus device."""

    def __init__(self, read: Callable[[], int], write: Callable[[int], None]) -> None:
        self._read = read
        self._write = write

    def read(self, offset: int, size: int) -> int:
        return self._read()

    def write(self, offset: int, size: int, value: int) -> None:
        self._write(value & 0xFF)


class I8042:
    """Map ``data`` at 0x60 and ``command`` (status on read) at 0x64, one port each."""

    def __init__(self, reset: Callable[[], None]) -> None:
        self.reset = reset
        """Called when the guest drives the system reset line."""
        self.state = I8042State()
        self.data = _Port(self._read_data, self._write_data)
        self.command = _Port(self._read_status, self._write_command)

    def _reply(self, value: int, from_aux: bool = False) -> None:
        self.state.output_buffer = value
        self.state.output_full = True
        self.state.output_from_aux = from_aux

    def _read_status(self) -> int:
        s = self.state
        status = Status.INH
        if s.output_full:
            status |= Status.OBF | (Status.AUXDATA if s.output_from_aux else 0)
        if CommandByte.SYS in CommandByte(s.ram[0]):
            status |= Status.SYS
        if s.last_write_was_command:
            status |= Status.A2
        return int(status)

    def _read_data(self) -> int:
        self.state.output_full = False
        return self.state.output_buffer

    def _write_data(self, value: int) -> None:
        s = self.state
        s.last_write_was_command = False
        command, s.pending = s.pending, None
        match command:
            case None | Command.WRITE_AUX:
                pass  # for a device, and no device is attached
            case c if Command.WRITE_RAM <= c < Command.WRITE_RAM + 0x20:
                s.ram[c & 0x1F] = value
            case Command.WRITE_OUTPUT_PORT:
                s.output_port = OutputPort(value)
                if OutputPort.RESET not in s.output_port:
                    self.reset()
            case Command.WRITE_KBD_OUTPUT:
                self._reply(value)
            case Command.WRITE_AUX_OUTPUT:
                self._reply(value, from_aux=True)

    def _write_command(self, value: int) -> None:
        s = self.state
        s.last_write_was_command = True
        s.pending = None
        match value:
            case c if Command.READ_RAM <= c < Command.READ_RAM + 0x20:
                self._reply(s.ram[c & 0x1F])
            case c if Command.WRITE_RAM <= c < Command.WRITE_RAM + 0x20:
                s.pending = c
            case Command.WRITE_OUTPUT_PORT | Command.WRITE_KBD_OUTPUT | Command.WRITE_AUX_OUTPUT | Command.WRITE_AUX:
                s.pending = value
            case Command.DISABLE_AUX:
                s.ram[0] |= CommandByte.AUXDIS
            case Command.ENABLE_AUX:
                s.ram[0] &= ~CommandByte.AUXDIS
            case Command.DISABLE_KBD:
                s.ram[0] |= CommandByte.KBDDIS
            case Command.ENABLE_KBD:
                s.ram[0] &= ~CommandByte.KBDDIS
            case Command.TEST_AUX | Command.TEST_KBD:
                self._reply(INTERFACE_OK)
            case Command.SELF_TEST:
                s.ram[0] |= CommandByte.SYS
                self._reply(SELF_TEST_PASSED)
            case Command.READ_OUTPUT_PORT:
                self._reply(s.output_port)
            case c if c >= Command.PULSE_OUTPUT_PORT:
                if not c & OutputPort.RESET:
                    self.reset()

    def info(self) -> str:
        """Text for `info i8042`."""
        s = self.state
        buffer = f"{s.output_buffer:#04x}" if s.output_full else "empty"
        return (f"status={self._read_status():02x} command_byte={s.ram[0]:02x} "
                f"output_port={int(s.output_port):02x} output_buffer={buffer}")
