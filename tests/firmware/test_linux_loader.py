"""The Linux boot loader against the boot protocol: what it writes, and what it refuses."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from cpu.physical import PhysicalMemory
from cpu.state import CpuState
from firmware.linux import BOOT_PARAMS, CMDLINE, KERNEL_LOAD, PML4, BootError, load_linux

MIB = 1 << 20


def bzimage(*, version: int = 0x020F, xloadflags: int = 1, setup_sects: int = 4, payload: int = 64 << 10,
            magic: bytes = b"HdrS", init_size: int = 2 * MIB, truncate: int = 0) -> bytes:
    """A synthetic bzImage: setup sectors with a setup header, then a protected-mode payload."""
    image = bytearray((setup_sects + 1) * 512 + payload)
    struct.pack_into("<B", image, 0x1F1, setup_sects)
    struct.pack_into("<I", image, 0x1F4, payload // 16)              # syssize
    struct.pack_into("<H", image, 0x1FE, 0xAA55)
    image[0x202:0x206] = magic
    struct.pack_into("<H", image, 0x206, version)
    struct.pack_into("<I", image, 0x22C, 0x7FFF_FFFF)               # initrd_addr_max
    struct.pack_into("<H", image, 0x236, xloadflags)
    struct.pack_into("<I", image, 0x238, 2047)                      # cmdline_size
    struct.pack_into("<I", image, 0x260, init_size)
    image[(setup_sects + 1) * 512:] = bytes(range(256)) * (payload // 256)
    return bytes(image[: len(image) - truncate])


def boot(tmp_path: Path, image: bytes, *, initrd: bytes | None = None, memory: int = 32 * MIB,
         cmdline: str = "console=ttyS0") -> tuple[PhysicalMemory, CpuState]:
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(image)
    rd = None
    if initrd is not None:
        rd = tmp_path / "initrd"
        rd.write_bytes(initrd)
    mem, state = PhysicalMemory(memory), CpuState()
    load_linux(mem, state, kernel, initrd=rd, cmdline=cmdline)
    return mem, state


def test_the_kernel_lands_at_1_mib_and_the_cpu_enters_at_load_address_plus_0x200(tmp_path: Path) -> None:
    mem, state = boot(tmp_path, bzimage())
    assert mem.read(KERNEL_LOAD, 256) == bytes(range(256))
    assert state.rip == KERNEL_LOAD + 0x200 and state.rsi == BOOT_PARAMS
    assert state.cs == 0x10 and state.ds == state.ss == 0x18 and state.cpl == 0
    assert state.efer & 0x500 == 0x500 and state.cr0 & 0x8000_0001 == 0x8000_0001 and state.cr4 & 0x20
    assert not state.rflags & 0x200                                  # interrupts off


def test_boot_params_carry_the_header_the_loader_fields_and_the_e820_map(tmp_path: Path) -> None:
    mem, _ = boot(tmp_path, bzimage(), initrd=b"INITRD" * 1000, cmdline="console=ttyS0 quiet")
    zero = mem.read(BOOT_PARAMS, 4096)
    assert zero[0x202:0x206] == b"HdrS"
    assert zero[0x210] == 0xFF                                       # type_of_loader
    assert zero[0x211] & 0x81 == 0x81                                # LOADED_HIGH | CAN_USE_HEAP
    cmd_line_ptr, = struct.unpack_from("<I", zero, 0x228)
    assert mem.read(cmd_line_ptr, 21) == b"console=ttyS0 quiet\0" + b"\0"[:0] or cmd_line_ptr == CMDLINE
    ramdisk_image, ramdisk_size = struct.unpack_from("<II", zero, 0x218)
    assert ramdisk_size == 6000 and mem.read(ramdisk_image, 6) == b"INITRD" and ramdisk_image % 4096 == 0
    entries = zero[0x1E8]
    table = [struct.unpack_from("<QQI", zero, 0x2D0 + 20 * i) for i in range(entries)]
    assert table == [(0, 0x9FC00, 1), (0x9FC00, 0x100000 - 0x9FC00, 2), (0x100000, 32 * MIB - 0x100000, 1)]


def test_low_memory_is_identity_mapped_with_2_mib_pages(tmp_path: Path) -> None:
    mem, state = boot(tmp_path, bzimage())
    assert state.cr3 == PML4
    pml4e, = struct.unpack("<Q", mem.read(PML4, 8))
    pdpte, = struct.unpack("<Q", mem.read(pml4e & ~0xFFF, 8))
    pde1, = struct.unpack("<Q", mem.read((pdpte & ~0xFFF) + 8, 8))
    assert pde1 == (1 << 21) | 0x83                                  # 2 MiB page at 2 MiB: P | RW | PS


@pytest.mark.parametrize("image,message", [
    (b"\x00" * 100, "too short to be a bzImage"),
    (bzimage(magic=b"Nope"), "is not a bzImage"),
    (bzimage(version=0x0206), "uses boot protocol 2.6; emu needs 2.12"),
    (bzimage(xloadflags=0), "no 64-bit entry point"),
    (bzimage(truncate=4096), "is truncated"),
    (bzimage(init_size=64 * MIB), "needs 64 MiB at 1 MiB"),
], ids=["short", "magic", "old-protocol", "32-bit", "truncated", "too-big"])
def test_malformed_kernels_are_refused_with_one_line(tmp_path: Path, image: bytes, message: str) -> None:
    with pytest.raises(BootError) as err:
        boot(tmp_path, image)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_initrd_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BootError, match="does not fit in RAM above the kernel"):
        boot(tmp_path, bzimage(), initrd=bytes(30 * MIB))


def test_a_missing_kernel_and_an_overlong_command_line_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BootError, match="cannot read kernel"):
        load_linux(PhysicalMemory(32 * MIB), CpuState(), tmp_path / "missing")
    with pytest.raises(BootError, match="accepts at most 2047"):
        boot(tmp_path, bzimage(), cmdline="x" * 3000)


def test_an_elf_vmlinux_is_loaded_at_its_physical_addresses(tmp_path: Path) -> None:
    code = b"\x90" * 64
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1
    struct.pack_into("<HHIQQQ", header, 16, 2, 62, 1, 0x100_0000, 64, 0)  # type, machine, version, entry, phoff
    struct.pack_into("<HH", header, 54, 56, 1)                            # phentsize, phnum
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 120, 0xFFFF_FFFF_8100_0000, 0x100_0000, 64, 4096, 0x1000)
    mem, state = boot(tmp_path, bytes(header) + phdr + code)
    assert state.rip == 0x100_0000
    assert mem.read(0x100_0000, 64) == code and mem.read(0x100_0040, 16) == bytes(16)
