"""The PC's pair of Intel 8259A programmable interrupt controllers, master and slave cascaded on IR2.

Follows the Intel 8259A datasheet (order no. 231468): "Interrupt Sequence" (8086 mode), "Programming the
8259A" (ICW1-ICW4, OCW1-OCW3), "The Fully Nested Mode", "End of Interrupt", "Automatic Rotation", "Special Mask
Mode", "Poll Command", "Reading the 8259A Status", "Edge and Level Triggered Modes" and "The Cascade Mode".
The wiring is the PC/AT's: the master answers ports 0x20/0x21, the slave 0xA0/0xA1, and the slave's INT output
drives the master's IR2, so ISA IRQ n is master IRn for n < 8 and slave IR(n - 8) otherwise.

The CPU side is the INTR pin and the INTA cycle: ``pending()`` is the master's INTR level, ``acknowledge()``
runs both INTA pulses and returns the vector, and ``on_intr(level)`` is called whenever INTR changes, so the
machine can stop the CPU at the next instruction boundary.

Before the guest initialises the pair it is in the state a PC BIOS leaves (vectors 0x08 and 0x70, cascade on
IR2, edge triggered, 8086 mode) but with every input masked, since no BIOS handler exists.

Not modelled:
- MCS-80/85 mode (ICW4 bit 0 clear): the INTA cycle always returns an 8086 vector byte; ICW1's ADI and A7-A5
  are accepted and ignored.
- Buffered mode (ICW4 BUF, M/S) and the SP/EN pin: which chip is master is fixed by the wiring.
- The glitch filter of edge mode: a request pulse here is instantaneous, so an edge-triggered request is latched
  on the rising edge and held in IRR until INTA even if the line drops first (so devices may ``pulse``).  A
  request that vanishes before INTA (a level-triggered input lowered, or an edge request masked) still yields
  the default IR7 with no ISR bit set, as the datasheet describes.
- The ELCR (ports 0x4D0/0x4D1) belongs to the chipset (Intel 82371 PIIX3 datasheet, "ELCR1/ELCR2 - Edge/Level
  Control Registers"), not to the 8259A; :class:`Elcr` models it here because it only changes how an IR input is
  sensed: a set bit makes that input level sensitive as LTIM does for the whole chip, so a shared PCI INTx line
  that stays high is seen again after EOI.  IRQ 0, 1, 2, 8 and 13 are wired on the board and always edge.
- Wider accesses act on the addressed register only (the ports are 8 bits wide; Linux uses outb/inb).
- ICW1 does not say what happens to IRR and ISR; both are cleared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum, IntFlag

from devices.irq import IrqLine

CASCADE_IR = 2
"""The master input the slave's INT output is wired to on a PC/AT."""
DEFAULT_IR = 7
"""The level the 8259A reports when no request is present at INTA (a spurious interrupt)."""


class ICW1(IntFlag):
    IC4 = 0x01
    """ICW4 needed: the initialisation sequence has a fourth word."""
    SNGL = 0x02
    """Single: no slaves, so ICW3 is not sent."""
    ADI = 0x04
    """Call address interval 4 (else 8): MCS-80 mode only."""
    LTIM = 0x08
    """Level triggered mode: IRR follows the IR inputs instead of latching rising edges."""
    INIT = 0x10
    """Distinguishes ICW1 from OCW2/OCW3 on the even port."""


class ICW4(IntFlag):
    UPM = 0x01
    """Microprocessor mode: 1 = 8086/8088 (one vector byte per INTA)."""
    AEOI = 0x02
    """Automatic end of interrupt: the ISR bit is reset at the end of INTA."""
    MS = 0x04
    """Buffered-mode master/slave select."""
    BUF = 0x08
    """Buffered mode: SP/EN becomes a buffer enable output."""
    SFNM = 0x10
    """Special fully nested mode: a master lets through higher-priority requests from a slave in service."""


class OCW2(IntEnum):
    """The R, SL, EOI field (bits 7-5) of OCW2; bits 2-0 are the level L2-L0."""

    ROTATE_IN_AEOI_CLEAR = 0b000
    NON_SPECIFIC_EOI = 0b001
    NO_OPERATION = 0b010
    SPECIFIC_EOI = 0b011
    ROTATE_IN_AEOI_SET = 0b100
    ROTATE_ON_NON_SPECIFIC_EOI = 0b101
    SET_PRIORITY = 0b110
    ROTATE_ON_SPECIFIC_EOI = 0b111


class OCW3(IntFlag):
    RIS = 0x01
    """Read ISR (1) or IRR (0) at the next read of the even port, when RR is set."""
    RR = 0x02
    """Read register: take RIS into account."""
    P = 0x04
    """Poll: the next read of the even port is an interrupt acknowledge returning the poll word."""
    SELECT = 0x08
    """Distinguishes OCW3 from OCW2."""
    SMM = 0x20
    """Special mask mode value, applied when ESMM is set."""
    ESMM = 0x40
    """Enable special mask mode: take SMM into account."""


class InitStep(IntEnum):
    """Which word the odd port expects next."""

    READY = 0
    ICW2 = 2
    ICW3 = 3
    ICW4 = 4


@dataclass
class Pic8259State:
    irr: int = 0
    """Interrupt request register: inputs asking for service."""
    isr: int = 0
    """In-service register: levels acknowledged and not yet ended."""
    imr: int = 0xFF
    """Interrupt mask register (OCW1)."""
    lines: int = 0
    """The level of each IR input, to detect rising edges."""
    vector_base: int = 0
    """T7-T3 from ICW2; the vector is vector_base | level."""
    icw1: ICW1 = ICW1.INIT | ICW1.IC4
    elcr: int = 0
    """The chipset's edge/level control bits for this chip's inputs: 1 = level sensitive."""
    icw3: int = 0
    """Master: a bit per IR with a slave; slave: its cascade identity."""
    icw4: ICW4 = ICW4.UPM
    init_step: InitStep = InitStep.READY
    lowest_priority: int = 7
    """The level with the lowest priority; rotation moves it, IR(lowest + 1) comes first."""
    rotate_in_aeoi: bool = False
    special_mask: bool = False
    read_isr: bool = False
    """Which register a read of the even port returns (OCW3 RR/RIS)."""
    poll: bool = False


class Pic8259:
    """One 8259A: a bus device with two ports (offset 0 = A0 low, offset 1 = A0 high)."""

    def __init__(self, name: str, master: bool, on_change: Callable[[], None]) -> None:
        self.name = name
        self.is_master = master
        self.on_change = on_change
        """Called after anything that may change this chip's INT output."""
        self.state = Pic8259State()

    # -- the IR inputs ------------------------------------------------------------------------------------------

    def set_input(self, ir: int, level: bool) -> None:
        self.drive(ir, level)
        self.on_change()

    def drive(self, ir: int, level: bool) -> None:
        """Change the level of input ``ir`` without notifying (the pair uses it for the cascade line)."""
        s = self.state
        bit = 1 << ir
        rising = level and not s.lines & bit
        s.lines = s.lines | bit if level else s.lines & ~bit
        if self.level_sensitive() & bit:
            s.irr = s.irr | bit if level else s.irr & ~bit
        elif rising:
            s.irr |= bit

    def level_sensitive(self) -> int:
        """The inputs whose request follows the line's level (ICW1 LTIM for all, else the ELCR's bits)."""
        return 0xFF if ICW1.LTIM in self.state.icw1 else self.state.elcr

    def set_elcr(self, bits: int) -> None:
        """The chipset changed which inputs are level sensitive: a level input's request is its line now."""
        s = self.state
        s.elcr = bits & 0xFF
        level = self.level_sensitive()
        s.irr = s.irr & ~level | s.lines & level
        self.on_change()

    # -- priority resolution ------------------------------------------------------------------------------------

    def _priority(self, ir: int) -> int:
        """0 for the highest-priority level, 7 for the lowest."""
        return (ir - self.state.lowest_priority - 1) % 8

    def _highest(self, bits: int) -> int | None:
        """The highest-priority level set in ``bits``."""
        for rank in range(8):
            ir = (self.state.lowest_priority + 1 + rank) % 8
            if bits & (1 << ir):
                return ir
        return None

    def _blocking_isr(self) -> int:
        """In-service levels that hold off requests of lower priority."""
        s = self.state
        isr = s.isr
        if s.special_mask:
            isr &= ~s.imr
        if self.is_master and ICW4.SFNM in s.icw4:
            isr &= ~s.icw3
        return isr

    def request(self) -> int | None:
        """The level INT is asserted for: the highest unmasked request above every blocking in-service level."""
        ir = self._highest(self.state.irr & ~self.state.imr)
        if ir is None:
            return None
        serving = self._highest(self._blocking_isr())
        if serving is not None and self._priority(serving) <= self._priority(ir):
            return None
        return ir

    def intr(self) -> bool:
        return self.request() is not None

    def is_cascade(self, ir: int) -> bool:
        """IR has a slave behind it (a master in cascade mode, per ICW3)."""
        return self.is_master and ICW1.SNGL not in self.state.icw1 and bool(self.state.icw3 & (1 << ir))

    def acknowledge(self) -> int | None:
        """The INTA pulses: the level now in service, or None for the default IR7 (no ISR bit is set then)."""
        s = self.state
        ir = self.request()
        if ir is None:
            return None
        bit = 1 << ir
        if not self.level_sensitive() & bit:
            s.irr &= ~bit
        if ICW4.AEOI in s.icw4:
            if s.rotate_in_aeoi:
                s.lowest_priority = ir
        else:
            s.isr |= bit
        return ir

    def vector(self, ir: int) -> int:
        return self.state.vector_base | ir

    # -- the bus side -------------------------------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        s = self.state
        if offset & 1:
            return s.imr
        if s.poll:
            s.poll = False
            ir = self.acknowledge()
            self.on_change()
            return 0x00 if ir is None else 0x80 | ir
        return s.isr if s.read_isr else s.irr

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        s = self.state
        if offset & 1:
            match s.init_step:
                case InitStep.ICW2:
                    s.vector_base = value & 0xF8
                    s.init_step = self._after(InitStep.ICW2)
                case InitStep.ICW3:
                    s.icw3 = value
                    s.init_step = self._after(InitStep.ICW3)
                case InitStep.ICW4:
                    s.icw4 = ICW4(value & 0x1F)
                    s.init_step = InitStep.READY
                case InitStep.READY:
                    s.imr = value
        elif value & ICW1.INIT:
            self._icw1(ICW1(value & 0x1F))
        elif value & OCW3.SELECT:
            self._ocw3(OCW3(value & 0x6F))
        else:
            self._ocw2(OCW2(value >> 5), value & 7)
        self.on_change()

    def _after(self, step: InitStep) -> InitStep:
        """The initialisation word that follows ``step``, per ICW1's SNGL and IC4."""
        if step == InitStep.ICW2 and ICW1.SNGL not in self.state.icw1:
            return InitStep.ICW3
        return InitStep.ICW4 if ICW1.IC4 in self.state.icw1 else InitStep.READY

    def _icw1(self, icw1: ICW1) -> None:
        s = self.state
        s.icw1 = icw1
        s.init_step = InitStep.ICW2
        s.imr = 0
        s.isr = 0
        s.irr = s.lines & self.level_sensitive()  # edge sense reset: an edge input must rise again
        s.lowest_priority = 7
        s.special_mask = False
        s.read_isr = False
        s.poll = False
        s.rotate_in_aeoi = False
        if ICW1.IC4 not in icw1:
            s.icw4 = ICW4(0)

    def _ocw2(self, command: OCW2, level: int) -> None:
        s = self.state
        match command:
            case OCW2.NON_SPECIFIC_EOI | OCW2.ROTATE_ON_NON_SPECIFIC_EOI:
                eligible = s.isr & ~s.imr if s.special_mask else s.isr
                ir = self._highest(eligible)
                if ir is not None:
                    s.isr &= ~(1 << ir)
                    if command == OCW2.ROTATE_ON_NON_SPECIFIC_EOI:
                        s.lowest_priority = ir
            case OCW2.SPECIFIC_EOI | OCW2.ROTATE_ON_SPECIFIC_EOI:
                s.isr &= ~(1 << level)
                if command == OCW2.ROTATE_ON_SPECIFIC_EOI:
                    s.lowest_priority = level
            case OCW2.SET_PRIORITY:
                s.lowest_priority = level
            case OCW2.ROTATE_IN_AEOI_SET | OCW2.ROTATE_IN_AEOI_CLEAR:
                s.rotate_in_aeoi = command == OCW2.ROTATE_IN_AEOI_SET
            case OCW2.NO_OPERATION:
                pass

    def _ocw3(self, ocw3: OCW3) -> None:
        s = self.state
        if OCW3.ESMM in ocw3:
            s.special_mask = OCW3.SMM in ocw3
        if OCW3.RR in ocw3:
            s.read_isr = OCW3.RIS in ocw3
        s.poll = OCW3.P in ocw3

    def info(self) -> str:
        s = self.state
        mode = "level" if ICW1.LTIM in s.icw1 else "edge"
        extras = [mode if not s.elcr or mode == "level" else f"edge elcr={s.elcr:02x}"]
        if ICW4.AEOI in s.icw4:
            extras.append("auto-eoi")
        if s.special_mask:
            extras.append("special-mask")
        if s.init_step != InitStep.READY:
            extras.append(f"expecting-icw{int(s.init_step)}")
        return (f"{self.name}: irr={s.irr:02x} isr={s.isr:02x} imr={s.imr:02x} vector_base={s.vector_base:#04x} "
                f"lowest_priority={s.lowest_priority} {' '.join(extras)}")


class Pic8259Pair:
    """Master and slave 8259A as wired in a PC/AT; map ``master`` at 0x20 and ``slave`` at 0xA0 (2 ports each)."""

    def __init__(self, on_intr: Callable[[bool], None] | None = None) -> None:
        self.on_intr = on_intr
        """Called with the new level whenever the master's INT output (the CPU's INTR) changes."""
        self._intr = False
        self._lines: dict[int, IrqLine] = {}
        self.master = Pic8259("master", True, self._update)
        self.slave = Pic8259("slave", False, self._update)
        self._bios_setup()

    def _bios_setup(self) -> None:
        for chip, base, icw3 in ((self.master, 0x08, 1 << CASCADE_IR), (self.slave, 0x70, CASCADE_IR)):
            chip.state.vector_base = base
            chip.state.icw3 = icw3

    def irq(self, n: int) -> IrqLine:
        """The ISA interrupt line IRQ ``n`` (0-15); IRQ 2 is the cascade and cannot be driven by a device."""
        if not 0 <= n < 16 or n == CASCADE_IR:
            raise ValueError(f"IRQ {n} cannot be driven: the lines are 0-15 and IRQ 2 carries the slave")
        if n not in self._lines:
            chip, ir = (self.master, n) if n < 8 else (self.slave, n - 8)
            self._lines[n] = IrqLine(lambda level: chip.set_input(ir, level), f"irq{n}")
        return self._lines[n]

    def _update(self) -> None:
        self.master.drive(CASCADE_IR, self.slave.intr())
        level = self.master.intr()
        if level != self._intr:
            self._intr = level
            if self.on_intr is not None:
                self.on_intr(level)

    def pending(self) -> bool:
        """INTR: an unmasked request of higher priority than anything in service is waiting."""
        return self.master.intr()

    def acknowledge(self) -> int:
        """The INTA cycle: move the winning request from IRR to ISR and return its vector."""
        ir = self.master.acknowledge()
        if ir is None:
            vector = self.master.vector(DEFAULT_IR)
        elif self.master.is_cascade(ir):
            slave_ir = self.slave.acknowledge()
            vector = self.slave.vector(DEFAULT_IR if slave_ir is None else slave_ir)
        else:
            vector = self.master.vector(ir)
        self._update()
        return vector

    def state(self) -> tuple[Pic8259State, Pic8259State]:
        """Copies of the master's and the slave's state."""
        return replace(self.master.state), replace(self.slave.state)

    def info(self) -> str:
        """Text for `info pic`."""
        return f"{self.master.info()}\n{self.slave.info()}\nintr={int(self._intr)}"


class Elcr:
    """ELCR1 (port 0x4D0, IRQ 0-7) and ELCR2 (0x4D1, IRQ 8-15) of the PIIX: which IRQ inputs are level sensitive.

    A bus device of two 8-bit ports; offset 0 is the master's register, offset 1 the slave's."""

    EDGE_ONLY = (0x07, 0x21)
    """Bits that read 0 and cannot be set: IRQ 0-2 on the master, IRQ 8 and 13 on the slave (board wiring)."""

    def __init__(self, pair: Pic8259Pair) -> None:
        self.chips = (pair.master, pair.slave)

    def read(self, offset: int, size: int) -> int:
        return self.chips[offset & 1].state.elcr

    def write(self, offset: int, size: int, value: int) -> None:
        self.chips[offset & 1].set_elcr(value & ~self.EDGE_ONLY[offset & 1])
