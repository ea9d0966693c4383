"""The Intel 8254 programmable interval timer at ports 0x40-0x43, and port 0x61's timer 2 bits.

Follows the Intel 8254 datasheet (order no. 231164): "Control Word Format", "Write Operations", "Read
Operations" (counter latch command, read-back command, status byte), "Mode Definitions" (modes 0-5) and
"Operations Common to All Modes" (gate, counter reload, null count).  The PC wiring: a 1.193182 MHz CLK on every
channel, channel 0's OUT to IRQ 0, channel 1 (once DRAM refresh) unconnected, channel 2's gate and OUT on the
system control port B at 0x61 (the speaker).

No counter is ever decremented.  A counting element remembers the CLK pulse it was loaded on and the value it
was loaded with; its value and its OUT level at any moment are computed from the one virtual clock (ns turned
into CLK pulses with integer math).  Channel 0's rising OUT edges are deadlines scheduled on the clock at the
exact virtual time of the CLK pulse that makes them, and pulse IRQ 0 (edge triggered on a PC); a control word
that sets OUT high at once (its initial level) is an edge too.  If the machine
is late, the edges missed meanwhile are merged into one, as the 8259A's IRR would merge them.

Port 0x61 bit 4 (refresh toggle) flips on every read: nothing refreshes DRAM here, and loops that wait for the
bit to change must make progress.

Not modelled:
- A new count written while counting in modes 2 and 3 restarts the counter at once (the 8254 finishes the
  current period first); writing the first byte of a two-byte count in mode 0 does not stop the counter.
- Mode 2 with a count of 1 (illegal per the datasheet) keeps OUT low; modes 2 and 3 with a count below 2 make
  no edges.
- The speaker makes no sound (bit 1 is stored only), and the NMI sources of port 0x61 (bits 6, 7) read 0.
- Reading the control word register (offset 3) returns all ones (the 8254 does not drive the bus then).
- Wider accesses act on the addressed register only (the ports are 8 bits wide).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum, IntFlag

from devices.clock import Clock
from devices.irq import IrqLine

PIT_HZ = 1_193_182
"""CLK input of every channel on a PC: the 14.31818 MHz crystal divided by 12."""
NS_PER_S = 1_000_000_000


def tick_at(ns: int) -> int:
    """The number of CLK pulses since power-on at virtual time ``ns``."""
    return ns * PIT_HZ // NS_PER_S


def ns_at(tick: int) -> int:
    """The first virtual nanosecond at which CLK pulse ``tick`` has happened."""
    return -(-tick * NS_PER_S // PIT_HZ)


class Mode(IntEnum):
    INTERRUPT_ON_TERMINAL_COUNT = 0
    HARDWARE_RETRIGGERABLE_ONE_SHOT = 1
    RATE_GENERATOR = 2
    SQUARE_WAVE = 3
    SOFTWARE_TRIGGERED_STROBE = 4
    HARDWARE_TRIGGERED_STROBE = 5


class Access(IntEnum):
    """RW1-RW0 of the control word: how the count is read and written."""

    LATCH = 0
    LSB = 1
    MSB = 2
    LSB_MSB = 3


class ControlWord(IntFlag):
    BCD = 0x01
    """Count in binary-coded decimal, four decades."""
    M0 = 0x02
    M1 = 0x04
    M2 = 0x08
    """Mode; M2-M0 = 11x are modes 2 and 3 again."""
    RW0 = 0x10
    RW1 = 0x20
    """Access (see Access); 00 is the counter latch command."""
    SC0 = 0x40
    SC1 = 0x80
    """Select counter; 11 is the read-back command."""


READ_BACK = 3
"""SC1-SC0 = 11: the control word is a read-back command."""


class ReadBack(IntFlag):
    """The read-back command (SC = 11)."""

    CNT0 = 0x02
    CNT1 = 0x04
    CNT2 = 0x08
    """Select a counter."""
    STATUS = 0x10
    """Active low: latch the status of the selected counters."""
    COUNT = 0x20
    """Active low: latch the count of the selected counters."""


class Status(IntFlag):
    """The status byte; bits 5-0 repeat the counter's control word."""

    NULL_COUNT = 0x40
    """The last count written has not yet been loaded into the counting element."""
    OUTPUT = 0x80
    """The level of the OUT pin."""


class Port61(IntFlag):
    """System control port B (PC/AT)."""

    TIMER2_GATE = 0x01
    """Drives channel 2's GATE."""
    SPEAKER_DATA = 0x02
    """ANDs channel 2's OUT into the speaker."""
    PARITY_CHECK_DISABLE = 0x04
    """Masks the RAM parity NMI."""
    CHANNEL_CHECK_DISABLE = 0x08
    """Masks the I/O channel check NMI."""
    REFRESH_TOGGLE = 0x10
    """Toggled by each DRAM refresh cycle."""
    TIMER2_OUT = 0x20
    """Reads channel 2's OUT pin."""
    IOCHK = 0x40
    """An I/O channel check NMI is pending."""
    SERR = 0x80
    """A system error (parity) NMI is pending."""


PORT61_WRITABLE = Port61.TIMER2_GATE | Port61.SPEAKER_DATA | Port61.PARITY_CHECK_DISABLE | Port61.CHANNEL_CHECK_DISABLE


def from_bcd(value: int) -> int:
    return sum(((value >> (4 * i)) & 0xF) * 10**i for i in range(4))


def to_bcd(value: int) -> int:
    return sum(((value // 10**i) % 10) << (4 * i) for i in range(4))


@dataclass
class PitChannelState:
    mode: Mode = Mode.INTERRUPT_ON_TERMINAL_COUNT
    access: Access = Access.LSB_MSB
    bcd: bool = False
    count_register: int = 0
    """CR: the count as last written, raw (BCD digits when bcd)."""
    reload: int = 0
    """The initial count N, in binary, 1..modulus (a written 0 means the modulus)."""
    armed: bool = False
    """A count has been written since the last control word."""
    gate: bool = True
    msb_write_next: bool = False
    msb_read_next: bool = False
    latched_count: int | None = None
    latched_status: int | None = None
    load_tick: int | None = None
    """The CLK pulse on which the last count written enters the counting element (None: not yet known)."""
    start_tick: int | None = None
    """The CLK pulse on which counting (re)started from ``start_value``; None while the counter is stopped."""
    start_value: int = 0
    """The counting element's value at ``start_tick``, 1..modulus."""
    held_value: int = 0
    """The counting element's value while stopped."""
    out_held: bool = True
    """OUT while the counter is stopped (undefined at power-on: high, the idle level of every mode but 0)."""
    tc_seen: bool = False
    """Modes 0, 1, 4, 5: terminal count was reached before ``start_tick`` (OUT does not fire again)."""


class PitChannel:
    """One counter: its value and OUT are functions of the CLK pulse number."""

    def __init__(self) -> None:
        self.state = PitChannelState()

    @property
    def modulus(self) -> int:
        return 10_000 if self.state.bcd else 0x10000

    def elapsed(self, tick: int) -> int | None:
        """CLK pulses since counting started, or None while the counter is stopped."""
        start = self.state.start_tick
        return None if start is None or tick < start else tick - start

    def count(self, tick: int) -> int:
        """The counting element's value, in binary."""
        s = self.state
        e = self.elapsed(tick)
        if e is None:
            value = s.held_value
        elif s.mode == Mode.RATE_GENERATOR:
            value = s.reload - e % s.reload
        elif s.mode == Mode.SQUARE_WAVE:
            # counts down by two, through two halves of (N + 1) // 2 and N // 2 pulses; odd N starts from N - 1
            phase = e % s.reload
            high = (s.reload + 1) // 2
            value = (s.reload & ~1) - 2 * (phase if phase < high else phase - high)
        else:
            value = s.start_value - e
        return value % self.modulus

    def out(self, tick: int) -> bool:
        s = self.state
        e = self.elapsed(tick)
        if e is None:
            return s.out_held
        match s.mode:
            case Mode.INTERRUPT_ON_TERMINAL_COUNT | Mode.HARDWARE_RETRIGGERABLE_ONE_SHOT:
                return s.tc_seen or e >= s.start_value
            case Mode.RATE_GENERATOR:
                return e % s.reload != s.reload - 1
            case Mode.SQUARE_WAVE:
                return e % s.reload < (s.reload + 1) // 2
            case _:
                return s.tc_seen or e != s.start_value

    def next_rise(self, after: int) -> int | None:
        """The first CLK pulse later than ``after`` on which OUT goes from low to high."""
        s = self.state
        if s.start_tick is None:
            return None
        match s.mode:
            case Mode.RATE_GENERATOR | Mode.SQUARE_WAVE:
                if s.reload < 2:
                    return None
                periods = max(1, (after - s.start_tick) // s.reload + 1)
                return s.start_tick + periods * s.reload
            case Mode.INTERRUPT_ON_TERMINAL_COUNT | Mode.HARDWARE_RETRIGGERABLE_ONE_SHOT:
                rise = s.start_tick + s.start_value
            case _:
                rise = s.start_tick + s.start_value + 1
        return None if s.tc_seen or rise <= after else rise

    def status(self, tick: int) -> int:
        s = self.state
        null = s.load_tick is None or tick < s.load_tick
        return ((Status.OUTPUT if self.out(tick) else 0) | (Status.NULL_COUNT if null else 0)
                | s.access << 4 | s.mode << 1 | int(s.bcd))

    def _register_value(self, tick: int) -> int:
        value = self.count(tick)
        return to_bcd(value) if self.state.bcd else value

    # -- programming --------------------------------------------------------------------------------------------

    def program(self, tick: int, mode: Mode, access: Access, bcd: bool) -> None:
        """A control word: reset the control logic, set OUT to the mode's initial level, stop counting."""
        s = self.state
        held = self.count(tick)
        self.state = PitChannelState(mode=mode, access=access, bcd=bcd, gate=s.gate, count_register=s.count_register,
                                     held_value=held, out_held=mode != Mode.INTERRUPT_ON_TERMINAL_COUNT)

    def latch(self, tick: int) -> None:
        """Counter latch command; a second latch before the count is read is ignored."""
        if self.state.latched_count is None:
            self.state.latched_count = self._register_value(tick)

    def latch_status(self, tick: int) -> None:
        if self.state.latched_status is None:
            self.state.latched_status = self.status(tick)

    def write(self, tick: int, value: int) -> None:
        s = self.state
        match s.access:
            case Access.LSB:
                s.count_register = value
            case Access.MSB:
                s.count_register = value << 8
            case _ if not s.msb_write_next:
                s.count_register = (s.count_register & 0xFF00) | value
                s.msb_write_next = True
                return
            case _:
                s.count_register = (s.count_register & 0x00FF) | value << 8
                s.msb_write_next = False
        self._load(tick)

    def _load(self, tick: int) -> None:
        """A complete count was written: it enters the counting element on the next CLK pulse."""
        s = self.state
        n = (from_bcd(s.count_register) if s.bcd else s.count_register) % self.modulus or self.modulus
        s.reload = n
        s.armed = True
        match s.mode:
            case Mode.HARDWARE_RETRIGGERABLE_ONE_SHOT | Mode.HARDWARE_TRIGGERED_STROBE:
                return  # waits for a gate trigger; a one-shot in progress is not disturbed
            case Mode.INTERRUPT_ON_TERMINAL_COUNT:
                s.out_held = False
            case _:
                s.out_held = True
        s.load_tick = tick + 1
        s.held_value = n
        s.start_value = n
        s.tc_seen = False
        s.start_tick = tick + 1 if s.gate else None

    def set_gate(self, tick: int, level: bool) -> None:
        s = self.state
        if level == s.gate:
            return
        s.gate = level
        if not s.armed:
            return
        match s.mode:
            case Mode.INTERRUPT_ON_TERMINAL_COUNT | Mode.SOFTWARE_TRIGGERED_STROBE:
                if not level:  # counting is suspended
                    e = self.elapsed(tick)
                    s.tc_seen = s.tc_seen or (e is not None and e >= s.start_value)
                    s.held_value = self.count(tick)
                    s.out_held = self.out(tick)
                    s.start_tick = None
                else:
                    s.start_value = s.held_value or self.modulus
                    s.start_tick = tick + 1
            case Mode.RATE_GENERATOR | Mode.SQUARE_WAVE:
                if not level:  # OUT goes high at once and counting stops
                    s.held_value = self.count(tick)
                    s.out_held = True
                    s.start_tick = None
                else:  # a rising gate reloads the counter
                    s.start_tick = tick + 1
            case _ if level:  # modes 1 and 5: a rising gate triggers the one-shot or the strobe
                s.start_value = s.reload
                s.tc_seen = False
                s.load_tick = tick + 1
                s.start_tick = tick + 1

    def read(self, tick: int) -> int:
        s = self.state
        if s.latched_status is not None:
            value, s.latched_status = s.latched_status, None
            return value
        value = s.latched_count if s.latched_count is not None else self._register_value(tick)
        match s.access:
            case Access.LSB:
                done, byte = True, value & 0xFF
            case Access.MSB:
                done, byte = True, value >> 8
            case _:
                done, byte = s.msb_read_next, (value >> 8 if s.msb_read_next else value & 0xFF)
                s.msb_read_next = not s.msb_read_next
        if done:
            s.latched_count = None
        return byte


@dataclass
class Port61State:
    control: Port61 = Port61(0)
    """The writable bits as last written."""
    refresh_toggle: bool = False


class SystemControlPortB:
    """Port 0x61 as a one-byte bus device: timer 2's gate and OUT, the speaker enable, the refresh toggle."""

    def __init__(self, pit: Pit8254) -> None:
        self.pit = pit
        self.state = Port61State()

    def read(self, offset: int, size: int) -> int:
        s = self.state
        s.refresh_toggle = not s.refresh_toggle
        value = s.control
        if s.refresh_toggle:
            value |= Port61.REFRESH_TOGGLE
        if self.pit.channels[2].out(self.pit.tick()):
            value |= Port61.TIMER2_OUT
        return int(value)

    def write(self, offset: int, size: int, value: int) -> None:
        self.state.control = Port61(value) & PORT61_WRITABLE
        self.pit.set_gate(2, Port61.TIMER2_GATE in self.state.control)


@dataclass
class PitState:
    channels: list[PitChannelState] = field(default_factory=list)
    port61: Port61State = field(default_factory=Port61State)


class Pit8254:
    """The 8254 as a four-port bus device (offsets 0-2: counters, 3: control word); ``port61`` goes at 0x61."""

    def __init__(self, clock: Clock, irq0: IrqLine) -> None:
        self.clock = clock
        self.irq0 = irq0
        self.channels = [PitChannel() for _ in range(3)]
        self.channels[2].state.gate = False  # port 0x61 bit 0 is clear at power-on
        self.port61 = SystemControlPortB(self)
        self._timer: int | None = None

    def tick(self) -> int:
        return tick_at(self.clock.now())

    def read(self, offset: int, size: int) -> int:
        if offset >= 3:
            return 0xFF
        return self.channels[offset].read(self.tick())

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        tick = self.tick()
        out0 = self.channels[0].out(tick)
        if offset < 3:
            self.channels[offset].write(tick, value)
            changed = offset
        else:
            word = ControlWord(value)
            select = (word & (ControlWord.SC1 | ControlWord.SC0)) >> 6
            access = Access((word & (ControlWord.RW1 | ControlWord.RW0)) >> 4)
            mode = (word & (ControlWord.M2 | ControlWord.M1 | ControlWord.M0)) >> 1
            if select == READ_BACK:
                self._read_back(tick, ReadBack(value & 0x3E))
                return
            if access == Access.LATCH:
                self.channels[select].latch(tick)
                return
            self.channels[select].program(tick, Mode(mode if mode < 6 else mode - 4), access, ControlWord.BCD in word)
            changed = select
        if changed == 0:
            self._reschedule(tick, out0)

    def _read_back(self, tick: int, command: ReadBack) -> None:
        for i, selected in enumerate((ReadBack.CNT0, ReadBack.CNT1, ReadBack.CNT2)):
            if selected in command:
                if ReadBack.COUNT not in command:
                    self.channels[i].latch(tick)
                if ReadBack.STATUS not in command:
                    self.channels[i].latch_status(tick)

    def set_gate(self, channel: int, level: bool) -> None:
        tick = self.tick()
        out0 = self.channels[0].out(tick)
        self.channels[channel].set_gate(tick, level)
        if channel == 0:
            self._reschedule(tick, out0)

    def _reschedule(self, tick: int, out_before: bool) -> None:
        """Channel 0 changed: an OUT raised at once (a control word's initial level) is an edge; then schedule
        IRQ 0 for the next rising edge the counting makes."""
        if not out_before and self.channels[0].out(tick):
            self.irq0.pulse()
        self.clock.cancel(self._timer)
        self._arm(tick)

    def _arm(self, after: int) -> None:
        rise = self.channels[0].next_rise(after)
        self._timer = None if rise is None else self.clock.schedule(ns_at(rise), lambda: self._edge(rise))

    def _edge(self, tick: int) -> None:
        self.irq0.pulse()
        self._arm(max(tick, self.tick()))

    def state(self) -> PitState:
        """A copy of every channel's state and of port 0x61's."""
        return PitState([replace(c.state) for c in self.channels], replace(self.port61.state))

    def info(self) -> str:
        """Text for `info pit`."""
        tick = self.tick()
        lines = []
        for i, channel in enumerate(self.channels):
            s = channel.state
            counting = "counting" if channel.elapsed(tick) is not None else "stopped"
            lines.append(f"channel {i}: mode {int(s.mode)} {s.access.name.lower()}{' bcd' if s.bcd else ''} "
                         f"reload={s.reload} count={channel.count(tick)} out={int(channel.out(tick))} "
                         f"gate={int(s.gate)} {counting}")
        lines.append(f"port 0x61: {int(self.port61.state.control):#04x}")
        return "\n".join(lines)
