"""The 8259A pair driven as Linux's i8259.c drives it: init_8259A, mask/unmask, INTA, EOI."""

from __future__ import annotations

import pytest

from devices.bus import Bus
from devices.pic8259 import Elcr, Pic8259Pair

MASTER_CMD, MASTER_DATA, SLAVE_CMD, SLAVE_DATA = 0x20, 0x21, 0xA0, 0xA1
NON_SPECIFIC_EOI = 0x20
READ_IRR, READ_ISR = 0x0A, 0x0B


class Machine:
    def __init__(self) -> None:
        self.intr_changes: list[bool] = []
        self.pic = Pic8259Pair(on_intr=self.intr_changes.append)
        self.ports = Bus("ports")
        self.ports.map(0x20, 2, self.pic.master, "pic-master")
        self.ports.map(0xA0, 2, self.pic.slave, "pic-slave")
        self.ports.map(0x4D0, 2, Elcr(self.pic), "elcr")

    def outb(self, port: int, value: int) -> None:
        self.ports.write(port, 1, value)

    def inb(self, port: int) -> int:
        return self.ports.read(port, 1)

    def init_8259a(self, auto_eoi: bool = False) -> None:
        """Linux's init_8259A(): mask everything, ICW1-ICW4 on both chips, then restore masks."""
        self.outb(MASTER_DATA, 0xFF)
        self.outb(SLAVE_DATA, 0xFF)
        self.outb(MASTER_CMD, 0x11)  # ICW1: edge triggered, cascade, ICW4 needed
        self.outb(MASTER_DATA, 0x20)  # ICW2: vectors 0x20-0x27
        self.outb(MASTER_DATA, 1 << 2)  # ICW3: slave on IR2
        self.outb(MASTER_DATA, 0x03 if auto_eoi else 0x01)  # ICW4: 8086 mode
        self.outb(SLAVE_CMD, 0x11)
        self.outb(SLAVE_DATA, 0x28)  # vectors 0x28-0x2f
        self.outb(SLAVE_DATA, 2)  # cascade identity
        self.outb(SLAVE_DATA, 0x01)  # normal EOI
        self.outb(MASTER_DATA, 0xFB)  # everything masked but the cascade
        self.outb(SLAVE_DATA, 0xFF)

    def unmask(self, irq: int) -> None:
        port = MASTER_DATA if irq < 8 else SLAVE_DATA
        self.outb(port, self.inb(port) & ~(1 << (irq & 7)))

    def mask(self, irq: int) -> None:
        port = MASTER_DATA if irq < 8 else SLAVE_DATA
        self.outb(port, self.inb(port) | 1 << (irq & 7))

    def eoi(self, irq: int) -> None:
        if irq >= 8:
            self.outb(SLAVE_CMD, NON_SPECIFIC_EOI)
        self.outb(MASTER_CMD, NON_SPECIFIC_EOI)

    def read_isr(self, command_port: int) -> int:
        self.outb(command_port, READ_ISR)
        value = self.inb(command_port)
        self.outb(command_port, READ_IRR)
        return value


@pytest.fixture
def m() -> Machine:
    machine = Machine()
    machine.init_8259a()
    return machine


def test_power_on_has_every_input_masked() -> None:
    machine = Machine()
    machine.pic.irq(0).pulse()
    assert not machine.pic.pending()
    assert machine.inb(MASTER_DATA) == 0xFF


def test_initialisation_sets_vector_bases_and_masks(m: Machine) -> None:
    master, slave = m.pic.state()
    assert (master.vector_base, slave.vector_base) == (0x20, 0x28)
    assert (m.inb(MASTER_DATA), m.inb(SLAVE_DATA)) == (0xFB, 0xFF)


def test_raised_irq0_asserts_intr_and_acknowledge_returns_vector_0x20(m: Machine) -> None:
    m.unmask(0)
    m.pic.irq(0).pulse()
    assert m.pic.pending()
    assert m.intr_changes == [True]
    assert m.pic.acknowledge() == 0x20
    assert not m.pic.pending()
    assert m.intr_changes == [True, False]
    assert m.read_isr(MASTER_CMD) == 0x01


def test_eoi_clears_the_in_service_bit(m: Machine) -> None:
    m.unmask(0)
    m.pic.irq(0).pulse()
    m.pic.acknowledge()
    m.eoi(0)
    assert m.read_isr(MASTER_CMD) == 0


def test_irq1_waits_while_irq0_is_in_service(m: Machine) -> None:
    m.unmask(0)
    m.unmask(1)
    m.pic.irq(0).pulse()
    assert m.pic.acknowledge() == 0x20
    m.pic.irq(1).pulse()
    assert not m.pic.pending()
    m.eoi(0)
    assert m.pic.pending()
    assert m.pic.acknowledge() == 0x21


def test_irq0_preempts_irq1_in_service(m: Machine) -> None:
    m.unmask(0)
    m.unmask(1)
    m.pic.irq(1).pulse()
    assert m.pic.acknowledge() == 0x21
    m.pic.irq(0).pulse()
    assert m.pic.pending()
    assert m.pic.acknowledge() == 0x20
    assert m.read_isr(MASTER_CMD) == 0x03


def test_simultaneous_requests_are_served_highest_priority_first(m: Machine) -> None:
    for irq in (3, 4, 1):
        m.unmask(irq)
        m.pic.irq(irq).pulse()
    vectors = []
    while m.pic.pending():
        vector = m.pic.acknowledge()
        vectors.append(vector)
        m.eoi(vector - 0x20)
    assert vectors == [0x21, 0x23, 0x24]


def test_masked_request_waits_in_irr_until_unmasked(m: Machine) -> None:
    m.pic.irq(4).pulse()
    assert not m.pic.pending()
    assert m.inb(MASTER_CMD) == 0x10  # OCW3 after init selects IRR
    m.unmask(4)
    assert m.pic.pending()
    assert m.pic.acknowledge() == 0x24


def test_an_edge_request_is_latched_once_until_the_line_rises_again(m: Machine) -> None:
    m.unmask(4)
    line = m.pic.irq(4)
    line.raise_()
    assert m.pic.acknowledge() == 0x24
    m.eoi(4)
    assert not m.pic.pending()  # the line is still high: no new edge
    line.lower()
    line.raise_()
    assert m.pic.pending()


def test_cascade_irq12_gives_slave_vector_with_master_ir2_in_service(m: Machine) -> None:
    m.unmask(12)
    m.pic.irq(12).pulse()
    assert m.pic.pending()
    assert m.pic.acknowledge() == 0x2C
    assert m.read_isr(MASTER_CMD) == 0x04
    assert m.read_isr(SLAVE_CMD) == 0x10
    m.eoi(12)
    assert (m.read_isr(MASTER_CMD), m.read_isr(SLAVE_CMD)) == (0, 0)


def test_mask_and_ack_8259a_for_irq12_with_specific_eois(m: Machine) -> None:
    """Linux's mask_and_ack_8259A: mask the line, specific EOI to the slave and to master IR2, unmask later."""
    m.unmask(12)
    m.pic.irq(12).pulse()
    assert m.pic.acknowledge() == 0x2C
    m.mask(12)
    m.outb(SLAVE_CMD, 0x60 + (12 & 7))
    m.outb(MASTER_CMD, 0x60 + 2)
    assert (m.read_isr(MASTER_CMD), m.read_isr(SLAVE_CMD)) == (0, 0)
    m.pic.irq(12).pulse()  # arrives while masked: held in IRR
    assert not m.pic.pending()
    m.unmask(12)
    assert m.pic.acknowledge() == 0x2C


def test_slave_requests_wait_while_the_cascade_is_in_service(m: Machine) -> None:
    m.unmask(8)
    m.unmask(12)
    m.pic.irq(12).pulse()
    assert m.pic.acknowledge() == 0x2C
    m.pic.irq(8).pulse()
    assert not m.pic.pending()  # IR2 in service on the master holds off the whole slave
    m.eoi(12)
    assert m.pic.acknowledge() == 0x28


def test_request_masked_before_inta_yields_spurious_irq7_without_isr(m: Machine) -> None:
    m.unmask(3)
    m.pic.irq(3).pulse()
    assert m.pic.pending()
    m.mask(3)
    assert m.pic.acknowledge() == 0x27
    assert m.read_isr(MASTER_CMD) == 0


def test_level_request_lowered_before_inta_yields_spurious_irq7(m: Machine) -> None:
    m.outb(MASTER_CMD, 0x19)  # ICW1 with LTIM: level triggered
    for icw in (0x20, 0x04, 0x01):
        m.outb(MASTER_DATA, icw)
    m.outb(MASTER_DATA, 0xF7)
    line = m.pic.irq(3)
    line.raise_()
    assert m.pic.pending()
    line.lower()
    assert m.pic.acknowledge() == 0x27
    assert m.read_isr(MASTER_CMD) == 0


def test_slave_request_vanishing_yields_spurious_irq15_with_master_ir2_in_service(m: Machine) -> None:
    m.unmask(10)
    m.pic.irq(10).pulse()
    m.mask(10)
    assert m.pic.acknowledge() == 0x2F
    assert m.read_isr(MASTER_CMD) == 0x04
    assert m.read_isr(SLAVE_CMD) == 0


def test_ocw3_selects_irr_or_isr_for_reads(m: Machine) -> None:
    m.unmask(0)
    m.pic.irq(0).pulse()
    m.pic.irq(5).pulse()
    m.outb(MASTER_CMD, READ_IRR)
    assert m.inb(MASTER_CMD) == 0x21
    m.pic.acknowledge()
    assert m.inb(MASTER_CMD) == 0x20
    m.outb(MASTER_CMD, READ_ISR)
    assert m.inb(MASTER_CMD) == 0x01
    assert m.inb(MASTER_CMD) == 0x01  # the selection persists


def test_specific_eoi_clears_only_the_named_level(m: Machine) -> None:
    m.unmask(0)
    m.unmask(1)
    m.pic.irq(1).pulse()
    m.pic.acknowledge()
    m.pic.irq(0).pulse()
    m.pic.acknowledge()
    m.outb(MASTER_CMD, 0x60 | 1)  # specific EOI for IR1
    assert m.read_isr(MASTER_CMD) == 0x01


def test_auto_eoi_leaves_nothing_in_service() -> None:
    machine = Machine()
    machine.init_8259a(auto_eoi=True)
    machine.unmask(0)
    machine.pic.irq(0).pulse()
    assert machine.pic.acknowledge() == 0x20
    assert machine.read_isr(MASTER_CMD) == 0


def test_poll_command_acknowledges_and_reports_the_level(m: Machine) -> None:
    m.unmask(6)
    m.pic.irq(6).pulse()
    m.outb(MASTER_CMD, 0x0C)  # OCW3 with P
    assert m.inb(MASTER_CMD) == 0x86
    assert m.read_isr(MASTER_CMD) == 0x40
    m.outb(MASTER_CMD, 0x0C)
    assert m.inb(MASTER_CMD) == 0x00


def test_rotate_on_non_specific_eoi_makes_the_served_level_lowest(m: Machine) -> None:
    m.unmask(0)
    m.unmask(1)
    m.pic.irq(0).pulse()
    m.pic.acknowledge()
    m.outb(MASTER_CMD, 0xA0)  # rotate on non-specific EOI
    m.pic.irq(0).pulse()
    m.pic.irq(1).pulse()
    assert m.pic.acknowledge() == 0x21


def test_special_mask_mode_lets_lower_levels_through_a_masked_in_service_level(m: Machine) -> None:
    m.unmask(1)
    m.unmask(5)
    m.pic.irq(1).pulse()
    m.pic.acknowledge()
    m.pic.irq(5).pulse()
    assert not m.pic.pending()
    m.mask(1)
    m.outb(MASTER_CMD, 0x68)  # OCW3: ESMM | SMM
    assert m.pic.pending()
    assert m.pic.acknowledge() == 0x25


def test_irq2_is_the_cascade_and_cannot_be_driven() -> None:
    with pytest.raises(ValueError, match="IRQ 2"):
        Pic8259Pair().irq(2)


def test_info_names_registers_of_both_chips(m: Machine) -> None:
    m.unmask(0)
    m.pic.irq(0).pulse()
    text = m.pic.info()
    assert "master: irr=01 isr=00 imr=fa vector_base=0x20" in text
    assert "slave: irr=00 isr=00 imr=ff vector_base=0x28" in text
    assert "intr=1" in text


def test_elcr_makes_irq11_level_sensitive_so_a_line_still_high_after_eoi_asks_again(m: Machine) -> None:
    """PIIX ELCR2 bit 3: a PCI INTx line shared by two devices stays high while one of them still needs service;
    Linux's mask_and_ack_8259A masks, EOIs, runs the handler and unmasks: the request must come back."""
    m.outb(0x4D1, 1 << 3)
    assert m.inb(0x4D1) == 1 << 3
    m.unmask(11)
    m.pic.irq(11).raise_()
    assert m.pic.acknowledge() == 0x28 + 3
    m.mask(11)
    m.eoi(11)
    m.unmask(11)
    assert m.pic.pending()          # still high: asked again (an edge input would have latched nothing new)
    assert m.pic.acknowledge() == 0x28 + 3
    m.mask(11)
    m.eoi(11)
    m.pic.irq(11).lower()           # this time the handler served the device
    m.unmask(11)
    assert not m.pic.pending()


def test_without_elcr_the_same_line_held_high_is_served_once(m: Machine) -> None:
    m.unmask(11)
    m.pic.irq(11).raise_()
    m.pic.acknowledge()
    m.eoi(11)
    assert not m.pic.pending()


def test_elcr_bits_of_the_timer_keyboard_cascade_rtc_and_fpu_stay_edge(m: Machine) -> None:
    m.outb(0x4D0, 0xFF)
    m.outb(0x4D1, 0xFF)
    assert (m.inb(0x4D0), m.inb(0x4D1)) == (0xF8, 0xDE)
