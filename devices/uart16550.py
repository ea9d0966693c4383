"""The National Semiconductor NS16550A UART, as COM1 at 0x3F8 (8 ports) with its interrupt on IRQ 4.

Follows the PC16550D datasheet (National Semiconductor, June 1995): "Register Summary" (Table II),
"Line Control Register", "Line Status Register", "Interrupt Identification Register" (Table IV, priorities and
reset conditions), "Interrupt Enable Register", "Modem Control Register" (loopback), "Modem Status Register",
"FIFO Control Register", "FIFO Interrupt Mode Operation" and "Scratchpad Register".  As on a PC, the INTR pin
reaches the interrupt controller only while the OUT2 output is active (MCR bit 3).

The host side is instant: a byte written to THR is handed to ``output`` at once, so THR and the transmitter are
always empty again when the guest next looks.  Received bytes come from ``feed``; what does not fit the receive
FIFO (16 bytes, or the 1-byte holding register with FIFOs off) waits in a host-side backlog and moves in as the
guest reads, so pasted input is never lost to an overrun.

Not modelled:
- Line timing and format: the divisor, word length, stop bits and parity are stored only, and bytes pass whole
  (a guest that never programs LCR, whose power-on value means 5-bit words, still prints text); the FIFO
  character timeout is reported as soon as fewer bytes than the trigger level wait (no four-character delay).
- Parity, framing and break errors (PE, FE, BI, LSR bit 7) never occur; overrun occurs only in loopback.
- DMA mode (FCR bit 3, the RXRDY/TXRDY pins) and the transmitter FIFO's depth (transmission is instant).
- The modem inputs outside loopback are a connected, ready terminal: CTS, DSR and DCD active, RI inactive.
- Reading RBR with nothing received returns 0; writes to LSR and MSR (factory test) are ignored.
- Wider accesses act on the addressed register only (the registers are 8 bits wide).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

from devices.irq import IrqLine

FIFO_SIZE = 16


class Register(IntEnum):
    """Offsets from the base port; DLAB (LCR bit 7) turns offsets 0 and 1 into the divisor latch."""

    RBR_THR_DLL = 0
    IER_DLM = 1
    IIR_FCR = 2
    LCR = 3
    MCR = 4
    LSR = 5
    MSR = 6
    SCR = 7


class IER(IntFlag):
    ERBFI = 0x01
    """Received data available (and, with FIFOs, character timeout) interrupt."""
    ETBEI = 0x02
    """Transmitter holding register empty interrupt."""
    ELSI = 0x04
    """Receiver line status interrupt (overrun, parity, framing, break)."""
    EDSSI = 0x08
    """Modem status interrupt (a delta bit in MSR)."""


class IIR(IntEnum):
    """Interrupt identification, bits 3-0, in priority order; bits 7-6 are FIFOS_ENABLED."""

    RECEIVER_LINE_STATUS = 0x06
    RECEIVED_DATA_AVAILABLE = 0x04
    CHARACTER_TIMEOUT = 0x0C
    THR_EMPTY = 0x02
    MODEM_STATUS = 0x00
    NO_INTERRUPT = 0x01


IIR_FIFOS_ENABLED = 0xC0
"""IIR bits 7-6: set while FCR bit 0 is set (tells a 16550A from a 16550 and an 8250)."""


class FCR(IntFlag):
    FIFO_ENABLE = 0x01
    """Enables both FIFOs; changing it clears them."""
    RCVR_FIFO_RESET = 0x02
    """Clears the receive FIFO (self-clearing)."""
    XMIT_FIFO_RESET = 0x04
    """Clears the transmit FIFO (self-clearing)."""
    DMA_MODE_SELECT = 0x08
    """Selects RXRDY/TXRDY signalling for DMA."""
    RCVR_TRIGGER_LSB = 0x40
    RCVR_TRIGGER_MSB = 0x80
    """Receive FIFO trigger level: 1, 4, 8 or 14 bytes."""


RX_TRIGGER_LEVELS = (1, 4, 8, 14)


class LCR(IntFlag):
    WLS0 = 0x01
    WLS1 = 0x02
    """Word length: 5 + WLS bits per character."""
    STB = 0x04
    """Stop bits: 1, or 1.5/2."""
    PEN = 0x08
    """Parity enable."""
    EPS = 0x10
    """Even parity select."""
    STICK_PARITY = 0x20
    """Parity bit forced to the inverse of EPS."""
    SET_BREAK = 0x40
    """Holds the serial output in the spacing state."""
    DLAB = 0x80
    """Divisor latch access: offsets 0 and 1 become DLL and DLM."""


class MCR(IntFlag):
    DTR = 0x01
    """Data terminal ready output."""
    RTS = 0x02
    """Request to send output."""
    OUT1 = 0x04
    """User output 1."""
    OUT2 = 0x08
    """User output 2; on a PC it enables the INTR driver onto the IRQ line."""
    LOOP = 0x10
    """Loopback: the transmitter feeds the receiver and the four outputs feed the modem inputs."""


class LSR(IntFlag):
    DR = 0x01
    """Data ready: a character waits in RBR or the receive FIFO."""
    OE = 0x02
    """Overrun error: a character arrived with nowhere to go; reset by reading LSR."""
    PE = 0x04
    """Parity error."""
    FE = 0x08
    """Framing error."""
    BI = 0x10
    """Break interrupt."""
    THRE = 0x20
    """Transmitter holding register (or transmit FIFO) empty."""
    TEMT = 0x40
    """Transmitter empty: THR and the transmit shift register both empty."""
    RCVR_FIFO_ERROR = 0x80
    """A parity, framing or break error is in the receive FIFO."""


class MSR(IntFlag):
    DCTS = 0x01
    """CTS changed since MSR was last read."""
    DDSR = 0x02
    """DSR changed since MSR was last read."""
    TERI = 0x04
    """RI went from active to inactive."""
    DDCD = 0x08
    """DCD changed since MSR was last read."""
    CTS = 0x10
    """Clear to send input (RTS in loopback)."""
    DSR = 0x20
    """Data set ready input (DTR in loopback)."""
    RI = 0x40
    """Ring indicator input (OUT1 in loopback)."""
    DCD = 0x80
    """Data carrier detect input (OUT2 in loopback)."""


TERMINAL_READY = MSR.CTS | MSR.DSR | MSR.DCD
"""The modem inputs outside loopback."""
LOOPBACK_INPUTS = ((MCR.RTS, MSR.CTS), (MCR.DTR, MSR.DSR), (MCR.OUT1, MSR.RI), (MCR.OUT2, MSR.DCD))


@dataclass
class Uart16550State:
    ier: IER = IER(0)
    lcr: LCR = LCR(0)
    mcr: MCR = MCR(0)
    scr: int = 0
    dll: int = 0
    dlm: int = 0
    fifo_enabled: bool = False
    rx_trigger: int = 1
    overrun: bool = False
    thr_empty_interrupt: bool = False
    """The THRE interrupt is pending: set when THR empties, reset by reading IIR (as the source) or writing THR."""
    msr_delta: MSR = MSR(0)
    rx: deque[int] = field(default_factory=deque)
    """The receive FIFO (or, with FIFOs off, the receiver buffer register: at most one byte)."""
    backlog: deque[int] = field(default_factory=deque)
    """Bytes fed by the host that have not fitted into ``rx`` yet."""


class Uart16550:
    """The UART as an 8-port bus device."""

    def __init__(self, irq: IrqLine, output: Callable[[bytes], None]) -> None:
        self.irq = irq
        self.output = output
        """Receives every byte the guest transmits, as it is written to THR."""
        self.state = Uart16550State()

    # -- host side ----------------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes arriving on the serial line from the host."""
        self.state.backlog.extend(data)
        self._refill()
        self._update_irq()

    def wants_input(self) -> bool:
        """The backlog is drained: the machine may read more host input without buffering it unboundedly."""
        return not self.state.backlog

    # -- derived registers ------------------------------------------------------------------------------------

    def _rx_capacity(self) -> int:
        return FIFO_SIZE if self.state.fifo_enabled else 1

    def _modem_inputs(self) -> MSR:
        s = self.state
        if MCR.LOOP not in s.mcr:
            return TERMINAL_READY
        inputs = MSR(0)
        for output, modem_input in LOOPBACK_INPUTS:
            if output in s.mcr:
                inputs |= modem_input
        return inputs

    def _lsr(self) -> LSR:
        s = self.state
        lsr = LSR.THRE | LSR.TEMT
        if s.rx:
            lsr |= LSR.DR
        if s.overrun:
            lsr |= LSR.OE
        return lsr

    def _interrupt(self) -> IIR:
        """The highest-priority enabled interrupt pending."""
        s = self.state
        if IER.ELSI in s.ier and s.overrun:
            return IIR.RECEIVER_LINE_STATUS
        if IER.ERBFI in s.ier and s.rx:
            below_trigger = s.fifo_enabled and len(s.rx) < s.rx_trigger
            return IIR.CHARACTER_TIMEOUT if below_trigger else IIR.RECEIVED_DATA_AVAILABLE
        if IER.ETBEI in s.ier and s.thr_empty_interrupt:
            return IIR.THR_EMPTY
        if IER.EDSSI in s.ier and s.msr_delta:
            return IIR.MODEM_STATUS
        return IIR.NO_INTERRUPT

    def _update_irq(self) -> None:
        gate_open = MCR.OUT2 in self.state.mcr and MCR.LOOP not in self.state.mcr  # LOOP forces OUT2 inactive
        self.irq.set(gate_open and self._interrupt() != IIR.NO_INTERRUPT)

    # -- data paths ---------------------------------------------------------------------------------------------

    def _refill(self) -> None:
        """Move host bytes into the receiver while it has room (the line is disconnected in loopback)."""
        s = self.state
        if MCR.LOOP in s.mcr:
            return
        while s.backlog and len(s.rx) < self._rx_capacity():
            s.rx.append(s.backlog.popleft())

    def _transmit(self, value: int) -> None:
        s = self.state
        if MCR.LOOP not in s.mcr:
            self.output(bytes([value]))
        elif len(s.rx) < self._rx_capacity():
            s.rx.append(value)
        else:  # the character in the receive shift register overwrites RBR, or is lost before a full FIFO
            s.overrun = True
            if not s.fifo_enabled:
                s.rx[-1] = value

    # -- bus side -----------------------------------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        s = self.state
        dlab = LCR.DLAB in s.lcr
        match Register(offset & 7):
            case Register.RBR_THR_DLL if dlab:
                return s.dll
            case Register.RBR_THR_DLL:
                value = s.rx.popleft() if s.rx else 0
                self._refill()
            case Register.IER_DLM if dlab:
                return s.dlm
            case Register.IER_DLM:
                return s.ier
            case Register.IIR_FCR:
                iir = self._interrupt()
                if iir == IIR.THR_EMPTY:
                    s.thr_empty_interrupt = False
                value = iir | (IIR_FIFOS_ENABLED if s.fifo_enabled else 0)
            case Register.LCR:
                return s.lcr
            case Register.MCR:
                return s.mcr
            case Register.LSR:
                value = self._lsr()
                s.overrun = False
            case Register.MSR:
                value = self._modem_inputs() | s.msr_delta
                s.msr_delta = MSR(0)
            case Register.SCR:
                return s.scr
        self._update_irq()
        return int(value)

    def write(self, offset: int, size: int, value: int) -> None:
        s = self.state
        value &= 0xFF
        dlab = LCR.DLAB in s.lcr
        match Register(offset & 7):
            case Register.RBR_THR_DLL if dlab:
                s.dll = value
            case Register.RBR_THR_DLL:
                s.thr_empty_interrupt = False
                self._update_irq()
                self._transmit(value)
                s.thr_empty_interrupt = True  # transmitted at once: THR is empty again
            case Register.IER_DLM if dlab:
                s.dlm = value
            case Register.IER_DLM:
                enabled = IER(value & 0x0F)
                if IER.ETBEI in enabled and IER.ETBEI not in s.ier:
                    s.thr_empty_interrupt = True  # THR is always empty when the interrupt is enabled
                s.ier = enabled
            case Register.IIR_FCR:
                self._fcr(FCR(value))
            case Register.LCR:
                s.lcr = LCR(value)
            case Register.MCR:
                self._mcr(MCR(value & 0x1F))
            case Register.LSR | Register.MSR:
                pass
            case Register.SCR:
                s.scr = value
        self._update_irq()

    def _fcr(self, fcr: FCR) -> None:
        s = self.state
        enable = FCR.FIFO_ENABLE in fcr
        if enable != s.fifo_enabled:
            s.rx.clear()
            s.fifo_enabled = enable
        if enable:
            if FCR.RCVR_FIFO_RESET in fcr:
                s.rx.clear()
            s.rx_trigger = RX_TRIGGER_LEVELS[fcr >> 6]
        self._refill()

    def _mcr(self, mcr: MCR) -> None:
        s = self.state
        before = self._modem_inputs()
        s.mcr = mcr
        after = self._modem_inputs()
        for level, delta in ((MSR.CTS, MSR.DCTS), (MSR.DSR, MSR.DDSR), (MSR.DCD, MSR.DDCD)):
            if (level in before) != (level in after):
                s.msr_delta |= delta
        if MSR.RI in before and MSR.RI not in after:
            s.msr_delta |= MSR.TERI
        self._refill()

    def info(self) -> str:
        """Text for `info serial`."""
        s = self.state
        divisor = s.dlm << 8 | s.dll
        return (f"ier={int(s.ier):02x} iir={int(self._interrupt()):02x} lcr={int(s.lcr):02x} "
                f"mcr={int(s.mcr):02x} lsr={int(self._lsr()):02x} msr={int(self._modem_inputs() | s.msr_delta):02x} "
                f"scr={s.scr:02x} divisor={divisor} fifo={'on' if s.fifo_enabled else 'off'} "
                f"rx={len(s.rx)} backlog={len(s.backlog)} irq={int(self.irq.level)}")
