"""The two machine types as `emu boot` assembles them (emu/machine/pc.py): microvm announces virtio-mmio disks on
the command line; pc puts each disk on virtio-pci, placed by the firmware, which Linux finds by conf1."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.pci import Reg, intx_irq
from emu.machine.pc import Disk, Machine, MachineConfig
from tests.devices.virtio_driver import make_image
from tests.firmware.test_linux_loader import bzimage


def machine(tmp_path: Path, kind: str, disks: list[Disk]) -> Machine:
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(bzimage())
    return Machine(MachineConfig(kernel=str(kernel), disks=disks, machine=kind, memory=32 << 20,
                                 code_cache=False), output=lambda data: None)


def conf1_read(m: Machine, slot: int, offset: int, size: int) -> int:
    m.ports.write(0xCF8, 4, 0x8000_0000 | slot << 11 | offset & 0xFC)
    return m.ports.read(0xCFC + (offset & 3), size)


def test_microvm_has_no_pci_and_names_its_disks_on_the_command_line(tmp_path):
    m = machine(tmp_path, "microvm", [Disk(str(make_image(tmp_path)))])
    assert m.pci is None
    assert conf1_read(m, 0, Reg.VENDOR_ID, 4) == 0xFFFF_FFFF
    assert "virtio_mmio.device=512@0xd0000000:10" in m.boot.cmdline


def test_pc_puts_two_disks_on_virtio_pci_with_their_own_bars_and_interrupt_lines(tmp_path):
    disks = [Disk(str(make_image(tmp_path, name="a.img"))), Disk(str(make_image(tmp_path, name="b.img")), True)]
    m = machine(tmp_path, "pc", disks)
    assert "virtio_mmio" not in m.boot.cmdline
    bars = set()
    for slot in (1, 2):
        assert conf1_read(m, slot, Reg.VENDOR_ID, 4) == 0x1001_1AF4
        assert conf1_read(m, slot, Reg.INTERRUPT_LINE, 1) == intx_irq(slot, 1)
        bars |= {conf1_read(m, slot, Reg.BAR0, 4), conf1_read(m, slot, Reg.BAR0 + 4, 4)}
    assert len(bars) == 4
    assert m.disks[1].state.read_only and not m.disks[0].state.read_only


def test_an_unknown_machine_type_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown machine"):
        machine(tmp_path, "q35", [])
