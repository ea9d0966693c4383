"""The Motorola MC146818 real-time clock and its 128 bytes of CMOS RAM, at ports 0x70 (index) and 0x71 (data).

Follows the MC146818A datasheet: "Address Map" (registers 0-13), "Time, Calendar and Alarm Locations"
(Table 3: binary or BCD, 12- or 24-hour), "Register A" (UIP, DV2-DV0, RS3-RS0), "Register B" (SET, PIE, AIE, UIE,
SQWE, DM, 24/12, DSE), "Register C" and "Register D" (VRT), and "Update Cycle".  The PC conventions: bit 7 of
the index port masks NMI, and byte 0x32 holds the century (the IBM PC/AT's choice, named by the ACPI FADT).

The time is a base (the host's time at power-on, or a fixed epoch second for reproducible runs) advanced by the
one virtual clock; every read computes the registers from it, so they never drift or stall.  The update cycle
is instantaneous at each virtual second boundary, and UIP is set only for the 244 us before it (the warning
the datasheet guarantees), so a guest that waits for UIP to clear waits at most 244 us of virtual time.  A guest
sets the time by setting SET in register B (which freezes the registers), writing them, and clearing SET; a
time register written without SET takes effect at once.

Not modelled:
- Interrupts (IRQ 8): periodic, alarm and update-ended.  Register C always reads 0; PIE, AIE, UIE, the alarm
  bytes and the rate select bits are stored only.  The square-wave output (SQWE) does nothing.
- The divider (DV2-DV0) is stored, but the clock always runs; daylight saving (DSE) is stored and ignored.
- Sub-second phase: time set by the guest starts its second at the next virtual second boundary.
- A date the guest writes that does not exist (month 13, a bad BCD digit) or lies in year 9999 leaves the time
  unchanged.
- The equipment and memory-size bytes of the PC's CMOS map are 0, as is all other RAM at power-on.
- Port 0x70 is write-only on a PC and reads all ones; wider accesses act on the addressed port only.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, IntFlag

from devices.clock import Clock

NS_PER_S = 1_000_000_000
UIP_WARNING_NS = 244_000
"""UIP rises this long before an update cycle (32.768 kHz time base)."""
CMOS_SIZE = 128
EARLIEST = calendar.timegm((1, 1, 1, 0, 0, 0))
LATEST = calendar.timegm((9998, 12, 31, 23, 59, 59))
"""The range of times the RTC accepts; a year of headroom keeps a running clock within what datetime can show."""


class RtcRangeError(ValueError):
    """The RTC base given for power-on is outside the years the RTC can show."""


class Register(IntEnum):
    SECONDS = 0x00
    SECONDS_ALARM = 0x01
    MINUTES = 0x02
    MINUTES_ALARM = 0x03
    HOURS = 0x04
    HOURS_ALARM = 0x05
    DAY_OF_WEEK = 0x06
    DAY_OF_MONTH = 0x07
    MONTH = 0x08
    YEAR = 0x09
    A = 0x0A
    B = 0x0B
    C = 0x0C
    D = 0x0D
    CENTURY = 0x32


TIME_REGISTERS = frozenset({Register.SECONDS, Register.MINUTES, Register.HOURS, Register.DAY_OF_WEEK,
                            Register.DAY_OF_MONTH, Register.MONTH, Register.YEAR, Register.CENTURY})


class Index(IntFlag):
    """Port 0x70."""

    ADDRESS = 0x7F
    """Selects one of the 128 bytes."""
    NMI_DISABLE = 0x80
    """PC/AT: masks the NMI line to the CPU."""


class RegisterA(IntFlag):
    RS0 = 0x01
    RS1 = 0x02
    RS2 = 0x04
    RS3 = 0x08
    """Rate select of the periodic interrupt and square wave."""
    DV0 = 0x10
    DV1 = 0x20
    DV2 = 0x40
    """Divider: 010 is a 32.768 kHz time base, running."""
    UIP = 0x80
    """Update in progress: the time registers change within 244 us (read-only)."""


class RegisterB(IntFlag):
    DSE = 0x01
    """Daylight saving enable."""
    HOURS_24 = 0x02
    """24-hour mode (else 12-hour with bit 7 of the hours meaning PM)."""
    DM = 0x04
    """Data mode binary (else BCD)."""
    SQWE = 0x08
    """Square-wave output enable."""
    UIE = 0x10
    """Update-ended interrupt enable."""
    AIE = 0x20
    """Alarm interrupt enable."""
    PIE = 0x40
    """Periodic interrupt enable."""
    SET = 0x80
    """Stops updates so the time can be written; clears UIE."""


class RegisterD(IntFlag):
    VRT = 0x80
    """Valid RAM and time: the battery is good (read-only)."""


PM = 0x80
"""Bit 7 of the hours in 12-hour mode."""
DEFAULT_A = RegisterA.DV1 | RegisterA.RS2 | RegisterA.RS1
"""32.768 kHz time base, 1.024 kHz periodic rate: what a PC BIOS programs."""
DEFAULT_B = RegisterB.HOURS_24
"""24-hour BCD, no interrupts."""


@dataclass
class CmosState:
    ram: bytearray = field(default_factory=lambda: bytearray(CMOS_SIZE))
    """The 128 bytes; the time registers hold the time only while SET is set or just after a read."""
    index: int = 0
    nmi_disabled: bool = False
    offset: int = 0
    """RTC seconds since the epoch minus virtual seconds since power-on."""


class Cmos:
    """The RTC as a two-port bus device (offset 0 = index port 0x70, offset 1 = data port 0x71)."""

    def __init__(self, clock: Clock, base: int | None = None) -> None:
        """``base``: the RTC's time at power-on in seconds since the epoch (UTC); default: the host's time now."""
        self.clock = clock
        if base is not None and not EARLIEST <= base <= LATEST:
            raise RtcRangeError(f"RTC base {base} is outside years 1-9998 ({EARLIEST}..{LATEST} seconds)")
        self.state = CmosState(offset=int(time.time()) if base is None else base)
        self.state.ram[Register.A] = DEFAULT_A
        self.state.ram[Register.B] = DEFAULT_B
        self.state.ram[Register.D] = RegisterD.VRT

    def seconds(self) -> int:
        """The RTC's current time in seconds since the epoch (running time, even while SET freezes the registers)."""
        return self.state.offset + self.clock.now() // NS_PER_S

    def _mode(self) -> RegisterB:
        return RegisterB(self.state.ram[Register.B])

    def _encode(self, value: int) -> int:
        return value if RegisterB.DM in self._mode() else (value // 10) << 4 | value % 10

    def _decode(self, value: int) -> int:
        return value if RegisterB.DM in self._mode() else (value >> 4) * 10 + (value & 0xF)

    def _snapshot(self) -> None:
        """Write the current time into the time registers, in the format register B selects."""
        ram = self.state.ram
        now = datetime.fromtimestamp(self.seconds(), UTC)
        hours = self._encode(now.hour)
        if RegisterB.HOURS_24 not in self._mode():
            hours = self._encode(now.hour % 12 or 12) | (PM if now.hour >= 12 else 0)
        ram[Register.SECONDS] = self._encode(now.second)
        ram[Register.MINUTES] = self._encode(now.minute)
        ram[Register.HOURS] = hours
        ram[Register.DAY_OF_WEEK] = self._encode(now.isoweekday() % 7 + 1)  # Sunday is 1
        ram[Register.DAY_OF_MONTH] = self._encode(now.day)
        ram[Register.MONTH] = self._encode(now.month)
        ram[Register.YEAR] = self._encode(now.year % 100)
        ram[Register.CENTURY] = self._encode(now.year // 100)

    def _commit(self) -> None:
        """Take the time registers as the new time (the day of the week is derived, not read)."""
        ram = self.state.ram
        hours = ram[Register.HOURS]
        if RegisterB.HOURS_24 in self._mode():
            hour = self._decode(hours)
        else:
            hour = self._decode(hours & ~PM) % 12 + (12 if hours & PM else 0)
        year = self._decode(ram[Register.CENTURY]) * 100 + self._decode(ram[Register.YEAR])
        fields = (year, self._decode(ram[Register.MONTH]), self._decode(ram[Register.DAY_OF_MONTH]), hour,
                  self._decode(ram[Register.MINUTES]), self._decode(ram[Register.SECONDS]))
        try:
            epoch = calendar.timegm(fields)
        except ValueError:
            return
        if not EARLIEST <= epoch <= LATEST:
            return
        self.state.offset = epoch - self.clock.now() // NS_PER_S

    def _register_a(self) -> int:
        value = self.state.ram[Register.A] & ~RegisterA.UIP
        updating = NS_PER_S - self.clock.now() % NS_PER_S <= UIP_WARNING_NS
        if updating and RegisterB.SET not in self._mode():
            value |= RegisterA.UIP
        return value

    def read(self, offset: int, size: int) -> int:
        if offset == 0:
            return 0xFF
        s = self.state
        frozen = RegisterB.SET in self._mode()
        match s.index:
            case Register.A:
                return self._register_a()
            case Register.C:
                return 0
            case index if index in TIME_REGISTERS and not frozen:
                self._snapshot()
                return s.ram[index]
            case index:
                return s.ram[index]

    def write(self, offset: int, size: int, value: int) -> None:
        s = self.state
        value &= 0xFF
        if offset == 0:
            s.index = value & Index.ADDRESS
            s.nmi_disabled = bool(value & Index.NMI_DISABLE)
            return
        frozen = RegisterB.SET in self._mode()
        match s.index:
            case Register.A:
                s.ram[Register.A] = value & ~RegisterA.UIP
            case Register.B:
                self._write_b(RegisterB(value))
            case Register.C | Register.D:
                pass
            case index if index in TIME_REGISTERS and not frozen:
                self._snapshot()
                s.ram[index] = value
                self._commit()
            case index:
                s.ram[index] = value

    def _write_b(self, value: RegisterB) -> None:
        was_set = RegisterB.SET in self._mode()
        if RegisterB.SET in value:
            value &= ~RegisterB.UIE
            if not was_set:
                self._snapshot()
        self.state.ram[Register.B] = value
        if was_set and RegisterB.SET not in value:
            self._commit()

    def info(self) -> str:
        """Text for `info rtc`."""
        s = self.state
        now = datetime.fromtimestamp(self.seconds(), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (f"time={now} a={self._register_a():02x} b={s.ram[Register.B]:02x} c=00 d={s.ram[Register.D]:02x} "
                f"index={s.index:#04x} nmi={'disabled' if s.nmi_disabled else 'enabled'}")
