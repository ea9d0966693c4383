"""The 16550A driven as Linux's 8250 driver drives it: autoconfig probe, startup, interrupt-driven rx and tx."""

from __future__ import annotations

import pytest

from devices.bus import Bus
from devices.irq import IrqLine
from devices.uart16550 import Uart16550

COM1 = 0x3F8
RBR = THR = DLL = COM1 + 0
IER = DLM = COM1 + 1
IIR = FCR = COM1 + 2
LCR, MCR, LSR, MSR, SCR = COM1 + 3, COM1 + 4, COM1 + 5, COM1 + 6, COM1 + 7

IER_RDI, IER_THRI, IER_RLSI, IER_MSI = 0x01, 0x02, 0x04, 0x08
IIR_NO_INT, IIR_THRI, IIR_RDI, IIR_RLSI, IIR_MSI, IIR_TIMEOUT = 0x01, 0x02, 0x04, 0x06, 0x00, 0x0C
MCR_DTR, MCR_RTS, MCR_OUT1, MCR_OUT2, MCR_LOOP = 0x01, 0x02, 0x04, 0x08, 0x10
LSR_DR, LSR_OE, LSR_THRE, LSR_TEMT = 0x01, 0x02, 0x20, 0x40
FCR_ENABLE, FCR_CLEAR_RX, FCR_CLEAR_TX = 0x01, 0x02, 0x04


class Machine:
    def __init__(self) -> None:
        self.sent = bytearray()
        self.irq4 = IrqLine(lambda level: None, "irq4")
        self.uart = Uart16550(self.irq4, self.sent.extend)
        self.ports = Bus("ports")
        self.ports.map(COM1, 8, self.uart, "com1")

    def outb(self, port: int, value: int) -> None:
        self.ports.write(port, 1, value)

    def inb(self, port: int) -> int:
        return self.ports.read(port, 1)

    def startup(self) -> None:
        """serial8250_do_startup, the parts that matter: FIFOs on and cleared, 8N1 at 115200, OUT2 on."""
        self.outb(FCR, FCR_ENABLE | FCR_CLEAR_RX | FCR_CLEAR_TX)
        self.outb(LCR, 0x80)
        self.outb(DLL, 1)
        self.outb(DLM, 0)
        self.outb(LCR, 0x03)
        self.outb(MCR, MCR_DTR | MCR_RTS | MCR_OUT2)
        for port in (LSR, RBR, IIR, MSR):
            self.inb(port)


@pytest.fixture
def m() -> Machine:
    return Machine()


@pytest.fixture
def up(m: Machine) -> Machine:
    m.startup()
    return m


def test_autoconfig_ier_probe_keeps_only_the_four_enable_bits(m: Machine) -> None:
    saved = m.inb(IER)
    m.outb(IER, 0)
    assert m.inb(IER) & 0x0F == 0
    m.outb(IER, 0x0F)
    assert m.inb(IER) & 0x0F == 0x0F
    m.outb(IER, 0xFF)
    assert m.inb(IER) == 0x0F  # IER bits 7-4 are always 0 (no XScale UUE bit)
    m.outb(IER, saved)


def test_autoconfig_loopback_test_sees_msr_0x90(m: Machine) -> None:
    saved = m.inb(MCR)
    m.outb(MCR, MCR_LOOP | 0x0A)  # loopback with RTS and OUT2
    assert m.inb(MSR) & 0xF0 == 0x90  # CTS from RTS, DCD from OUT2
    m.outb(MCR, saved)
    assert m.inb(MSR) & 0xF0 == 0xB0  # back on the line: a ready terminal (DCD, DSR, CTS)


def test_autoconfig_identifies_a_16550a_by_iir_fifo_bits(m: Machine) -> None:
    m.outb(LCR, 0xBF)
    m.outb(FCR, 0)  # UART_EFR on a 16650; FCR here
    m.outb(LCR, 0)
    assert m.inb(IIR) >> 6 == 0
    m.outb(FCR, FCR_ENABLE)
    assert m.inb(IIR) >> 6 == 3


def test_scratch_register_holds_any_byte(m: Machine) -> None:
    for value in (0xA5, 0x5A, 0x00):
        m.outb(SCR, value)
        assert m.inb(SCR) == value


def test_dlab_switches_offsets_0_and_1_to_the_divisor_latch(m: Machine) -> None:
    m.outb(IER, IER_RDI)
    m.outb(LCR, 0x83)
    m.outb(DLL, 0x0C)
    m.outb(DLM, 0x00)
    assert (m.inb(DLL), m.inb(DLM)) == (0x0C, 0x00)
    m.outb(LCR, 0x03)
    assert m.inb(IER) == IER_RDI
    assert m.sent == b""  # the divisor write was not a transmission


def test_transmitted_bytes_reach_the_output_at_once(up: Machine) -> None:
    for byte in b"Linux version 6.1\n":
        assert up.inb(LSR) & LSR_THRE
        up.outb(THR, byte)
    assert bytes(up.sent) == b"Linux version 6.1\n"
    assert up.inb(LSR) == LSR_THRE | LSR_TEMT


def test_idle_line_status_is_thre_and_temt(up: Machine) -> None:
    assert up.inb(LSR) == 0x60
    assert up.inb(IIR) == 0xC0 | IIR_NO_INT


def test_enabling_thri_with_thr_empty_raises_the_irq_until_iir_is_read(up: Machine) -> None:
    assert not up.irq4.level
    up.outb(IER, IER_THRI)
    assert up.irq4.level
    assert up.inb(IIR) == 0xC0 | IIR_THRI
    assert not up.irq4.level
    assert up.inb(IIR) == 0xC0 | IIR_NO_INT


def test_each_transmitted_byte_brings_the_thre_interrupt_back(up: Machine) -> None:
    edges = []
    up.irq4.sink = edges.append
    up.outb(IER, IER_THRI)
    up.inb(IIR)
    up.outb(THR, ord("x"))
    assert up.irq4.level
    assert edges == [True, False, True]  # a fresh rising edge for the edge-triggered PIC


def test_thre_test_of_serial8250_startup_finds_no_bug(up: Machine) -> None:
    """UART_BUG_THRE detection: THRI enabled twice with IER cleared between, IIR read each time."""
    up.outb(IER, IER_THRI)
    lsr = up.inb(LSR)
    iir = up.inb(IIR)
    up.outb(IER, 0)
    up.outb(IER, IER_THRI)
    iir1 = up.inb(IIR)
    up.outb(IER, 0)
    assert lsr & LSR_TEMT and not iir & IIR_NO_INT
    assert not iir1 & IIR_NO_INT


def test_writing_thr_clears_a_pending_thre_interrupt_until_transmitted(up: Machine) -> None:
    up.outb(IER, IER_THRI)
    levels = []
    up.irq4.sink = levels.append
    up.outb(THR, ord("a"))
    assert levels == [False, True]


def test_irq_needs_out2_as_on_a_pc(m: Machine) -> None:
    m.outb(IER, IER_THRI)
    assert not m.irq4.level
    assert m.inb(IIR) & 0x0F == IIR_THRI  # the UART itself has the interrupt pending
    m.outb(IER, 0)
    m.outb(IER, IER_THRI)
    m.outb(MCR, MCR_OUT2)
    assert m.irq4.level


def test_fed_byte_raises_received_data_interrupt_until_read(up: Machine) -> None:
    up.outb(FCR, FCR_ENABLE)  # trigger level 1
    up.outb(IER, IER_RDI)
    assert not up.irq4.level
    up.uart.feed(b"k")
    assert up.irq4.level
    assert up.inb(LSR) & LSR_DR
    assert up.inb(IIR) == 0xC0 | IIR_RDI
    assert up.inb(RBR) == ord("k")
    assert not up.irq4.level
    assert not up.inb(LSR) & LSR_DR


def test_fewer_bytes_than_the_trigger_level_report_character_timeout(up: Machine) -> None:
    up.outb(FCR, FCR_ENABLE | 0x80)  # trigger level 8
    up.outb(IER, IER_RDI)
    up.uart.feed(b"abc")
    assert up.irq4.level
    assert up.inb(IIR) == 0xC0 | IIR_TIMEOUT
    up.uart.feed(b"defgh")
    assert up.inb(IIR) == 0xC0 | IIR_RDI


def test_received_data_outranks_thre(up: Machine) -> None:
    up.outb(IER, IER_RDI | IER_THRI)
    up.uart.feed(b"z")
    assert up.inb(IIR) & 0x0F == IIR_RDI
    up.inb(RBR)
    assert up.inb(IIR) & 0x0F == IIR_THRI


def test_paste_larger_than_the_fifo_waits_in_the_backlog_and_is_not_lost(up: Machine) -> None:
    text = bytes(range(0x20, 0x20 + 40))
    up.uart.feed(text)
    assert not up.uart.wants_input()
    assert len(up.uart.state.rx) == 16
    received = bytearray()
    while up.inb(LSR) & LSR_DR:
        received.append(up.inb(RBR))
    assert bytes(received) == text
    assert not up.inb(LSR) & LSR_OE
    assert up.uart.wants_input()


def test_without_fifos_one_byte_at_a_time_comes_from_the_backlog(m: Machine) -> None:
    m.uart.feed(b"hi")
    assert len(m.uart.state.rx) == 1
    assert m.inb(RBR) == ord("h")
    assert m.inb(RBR) == ord("i")
    assert m.inb(IIR) == IIR_NO_INT  # no FIFO bits


def test_fifo_reset_discards_received_bytes(up: Machine) -> None:
    up.uart.feed(b"old")
    up.outb(FCR, FCR_ENABLE | FCR_CLEAR_RX)
    assert not up.inb(LSR) & LSR_DR


def test_loopback_sends_transmitted_bytes_to_the_receiver_not_the_host(up: Machine) -> None:
    up.outb(MCR, MCR_LOOP)
    up.outb(THR, 0x55)
    assert up.sent == b""
    assert up.inb(LSR) & LSR_DR
    assert up.inb(RBR) == 0x55


def test_loopback_overrun_sets_oe_and_raises_line_status_interrupt(up: Machine) -> None:
    up.outb(MCR, MCR_LOOP)
    up.outb(IER, IER_RLSI)
    for byte in range(17):
        up.outb(THR, byte)
    assert up.inb(IIR) & 0x0F == IIR_RLSI
    assert up.inb(LSR) & LSR_OE
    assert not up.inb(LSR) & LSR_OE  # reading LSR reset it
    assert up.inb(IIR) & 0x0F == IIR_NO_INT


def test_host_input_waits_while_in_loopback(up: Machine) -> None:
    up.outb(MCR, MCR_LOOP)
    up.uart.feed(b"q")
    assert not up.inb(LSR) & LSR_DR
    up.outb(MCR, MCR_OUT2)
    assert up.inb(RBR) == ord("q")


def test_modem_status_deltas_in_loopback_raise_the_modem_status_interrupt(up: Machine) -> None:
    up.outb(MCR, MCR_LOOP)
    up.inb(MSR)
    up.outb(IER, IER_MSI)
    up.outb(MCR, MCR_LOOP | MCR_RTS | MCR_OUT1)
    up.outb(MCR, MCR_LOOP | MCR_RTS)
    assert up.inb(IIR) & 0x0F == IIR_MSI
    assert up.inb(MSR) == 0x10 | 0x01 | 0x04  # CTS, delta CTS, trailing edge of RI
    assert up.inb(MSR) == 0x10
    assert up.inb(IIR) & 0x0F == IIR_NO_INT


def test_bytes_pass_whole_whatever_the_word_length(m: Machine) -> None:
    assert m.inb(LCR) == 0  # power-on: 5-bit words
    m.outb(THR, 0xE9)
    m.uart.feed(b"\xc1")
    assert bytes(m.sent) == b"\xe9"
    assert m.inb(RBR) == 0xC1


def test_info_shows_registers(up: Machine) -> None:
    up.uart.feed(b"ab")
    assert "lcr=03 mcr=0b lsr=61" in up.uart.info()
    assert "rx=2 backlog=0" in up.uart.info()
