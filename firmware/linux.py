"""The Linux boot loader: load a kernel and initrd, describe the machine, enter in 64-bit mode.

Follows the Linux x86 boot protocol (Documentation/arch/x86/boot.rst, version
2.12 and later) with its 64-bit entry, as Firecracker and QEMU's direct Linux
boot do: no BIOS and no real-mode setup code runs.  The loader

1. checks the bzImage setup header (``HdrS`` magic, protocol >= 2.12,
   ``XLF_KERNEL_64``) and copies the protected-mode kernel to 1 MiB, or loads
   the PT_LOAD segments of an ELF ``vmlinux`` at their physical addresses;
2. puts the initrd at the top of low RAM, below ``initrd_addr_max``;
3. writes ``boot_params`` (the "zero page", Documentation/arch/x86/zero-page.rst):
   a copy of the setup header, ``type_of_loader``, the command line pointer,
   the initrd location and the e820 memory map;
4. builds a flat GDT (selectors 0x10 code and 0x18 data, as ``__BOOT_CS`` and
   ``__BOOT_DS``) and identity page tables mapping the first 4 GiB with 2 MiB
   pages;
5. sets the CPU up in long mode, CPL 0, interrupts off, RSI = boot_params,
   RIP = the 64-bit entry (load address + 0x200 for a bzImage).

Every malformed input is a :class:`BootError` with a one-line message.
Not done: EFI handover, setup_data chains, kernels above 4 GiB.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass
from pathlib import Path

from cpu.physical import PhysicalMemory
from cpu.state import CpuState

KERNEL_LOAD = 0x10_0000          # 1 MiB: where the protected-mode kernel goes
BOOT_PARAMS = 0x7000             # the zero page
CMDLINE = 0x2_0000               # command line, NUL-terminated
GDT = 0x500
PML4, PDPT, PD = 0x9000, 0xA000, 0xB000   # PD: four consecutive pages, one per GiB
BOOT_STACK = 0x8FF0
LOW_RAM_END = 0x9_FC00           # conventional memory below the EBDA, as on a PC
HIGH_RAM_START = 0x10_0000
MIN_PROTOCOL = 0x020C            # 2.12: xloadflags and the 64-bit entry
HDRS = 0x5372_6448               # "HdrS"
XLF_KERNEL_64 = 1 << 0
LOADED_HIGH = 1 << 0
CAN_USE_HEAP = 1 << 7
TYPE_OF_LOADER = 0xFF            # "undefined" boot loader id (boot.rst)
E820_RAM, E820_RESERVED = 1, 2
E820_MAX = 128
ELF_MAGIC = b"\x7fELF"

BOOT_CS, BOOT_DS = 0x10, 0x18


class BootError(Exception):
    """A kernel, initrd or command line this loader cannot boot."""


class SetupHeader(ctypes.LittleEndianStructure):
    """The bzImage setup header, at offset 0x1F1 of the image and of boot_params (boot.rst)."""

    _pack_ = 1
    _fields_ = [
        ("setup_sects", ctypes.c_uint8),        # 0x1f1: 512-byte setup sectors (0 means 4)
        ("root_flags", ctypes.c_uint16),        # 0x1f2
        ("syssize", ctypes.c_uint32),           # 0x1f4: protected-mode code size in 16-byte units
        ("ram_size", ctypes.c_uint16),          # 0x1f8
        ("vid_mode", ctypes.c_uint16),          # 0x1fa
        ("root_dev", ctypes.c_uint16),          # 0x1fc
        ("boot_flag", ctypes.c_uint16),         # 0x1fe: 0xAA55
        ("jump", ctypes.c_uint16),              # 0x200
        ("header", ctypes.c_uint32),            # 0x202: "HdrS"
        ("version", ctypes.c_uint16),           # 0x206: boot protocol version
        ("realmode_swtch", ctypes.c_uint32),    # 0x208
        ("start_sys_seg", ctypes.c_uint16),     # 0x20c
        ("kernel_version", ctypes.c_uint16),    # 0x20e
        ("type_of_loader", ctypes.c_uint8),     # 0x210: written by the loader
        ("loadflags", ctypes.c_uint8),          # 0x211
        ("setup_move_size", ctypes.c_uint16),   # 0x212
        ("code32_start", ctypes.c_uint32),      # 0x214
        ("ramdisk_image", ctypes.c_uint32),     # 0x218: written by the loader
        ("ramdisk_size", ctypes.c_uint32),      # 0x21c: written by the loader
        ("bootsect_kludge", ctypes.c_uint32),   # 0x220
        ("heap_end_ptr", ctypes.c_uint16),      # 0x224
        ("ext_loader_ver", ctypes.c_uint8),     # 0x226
        ("ext_loader_type", ctypes.c_uint8),    # 0x227
        ("cmd_line_ptr", ctypes.c_uint32),      # 0x228: written by the loader
        ("initrd_addr_max", ctypes.c_uint32),   # 0x22c: highest address for the initrd's last byte
        ("kernel_alignment", ctypes.c_uint32),  # 0x230
        ("relocatable_kernel", ctypes.c_uint8),  # 0x234
        ("min_alignment", ctypes.c_uint8),      # 0x235
        ("xloadflags", ctypes.c_uint16),        # 0x236: XLF_KERNEL_64 = has the 64-bit entry
        ("cmdline_size", ctypes.c_uint32),      # 0x238: longest command line, without the NUL
        ("hardware_subarch", ctypes.c_uint32),  # 0x23c
        ("hardware_subarch_data", ctypes.c_uint64),  # 0x240
        ("payload_offset", ctypes.c_uint32),    # 0x248
        ("payload_length", ctypes.c_uint32),    # 0x24c
        ("setup_data", ctypes.c_uint64),        # 0x250
        ("pref_address", ctypes.c_uint64),      # 0x258
        ("init_size", ctypes.c_uint32),         # 0x260: memory the kernel needs from its load address
        ("handover_offset", ctypes.c_uint32),   # 0x264
        ("kernel_info_offset", ctypes.c_uint32),  # 0x268
    ]


assert ctypes.sizeof(SetupHeader) == 0x26C - 0x1F1


class E820Entry(ctypes.LittleEndianStructure):
    _pack_ = 1
    _fields_ = [("addr", ctypes.c_uint64), ("size", ctypes.c_uint64), ("type", ctypes.c_uint32)]


assert ctypes.sizeof(E820Entry) == 20


class BootParams(ctypes.LittleEndianStructure):
    """The zero page (zero-page.rst); only the fields this loader writes are named."""

    _pack_ = 1
    _fields_ = [
        ("_head", ctypes.c_uint8 * 0x1E8),      # 0x000: screen_info ... efi_info, alt_mem_k, scratch
        ("e820_entries", ctypes.c_uint8),       # 0x1e8
        ("_mid", ctypes.c_uint8 * 8),           # 0x1e9: eddbuf_entries ... _pad6
        ("hdr", SetupHeader),                   # 0x1f1
        ("_pad7", ctypes.c_uint8 * (0x2D0 - 0x26C)),  # 0x26c: _pad7, edd_mbr_sig_buffer
        ("e820_table", E820Entry * E820_MAX),   # 0x2d0
        ("_tail", ctypes.c_uint8 * (0x1000 - 0x2D0 - 20 * E820_MAX)),  # 0xcd0: eddbuf and padding
    ]


assert ctypes.sizeof(BootParams) == 0x1000
assert BootParams.e820_table.offset == 0x2D0 and BootParams.hdr.offset == 0x1F1


@dataclass
class BootInfo:
    """What was loaded where (for the debugger and the log)."""

    entry: int
    kernel_start: int
    kernel_end: int
    initrd_start: int = 0
    initrd_size: int = 0
    cmdline: str = ""


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except PermissionError as err:
        raise BootError(f"cannot read {what} {path}: {err.strerror}; Debian's /boot/vmlinuz-* are readable by "
                        f"root only: copy it for yourself (sudo install -m 644 {path} ~/) and give the copy, or run "
                        "emu as root") from None
    except OSError as err:
        raise BootError(f"cannot read {what} {path}: {err.strerror or err}") from None


def add_e820_entry(params: BootParams, addr: int, size: int, kind: int) -> None:
    """Append one range to the e820 map (checked: no overflow of the 128-entry table)."""
    if params.e820_entries >= E820_MAX:
        raise BootError("e820 table full")
    entry = params.e820_table[params.e820_entries]
    entry.addr, entry.size, entry.type = addr, size, kind
    params.e820_entries += 1


def _load_bzimage(image: bytes, path: str, mem: PhysicalMemory, params: BootParams) -> tuple[int, int]:
    if len(image) < 0x26C:
        raise BootError(f"{path} is too short to be a bzImage ({len(image)} bytes)")
    hdr = SetupHeader.from_buffer_copy(image, 0x1F1)
    if hdr.header != HDRS or hdr.boot_flag != 0xAA55:
        raise BootError(f"{path} is not a bzImage (no HdrS setup header) and not an ELF vmlinux")
    if hdr.version < MIN_PROTOCOL:
        raise BootError(f"{path} uses boot protocol {hdr.version >> 8}.{hdr.version & 0xFF}; "
                        "emu needs 2.12 or later (Linux 3.8+)")
    if not hdr.xloadflags & XLF_KERNEL_64:
        raise BootError(f"{path} has no 64-bit entry point (XLF_KERNEL_64): is it a 32-bit kernel?")
    setup_sects = hdr.setup_sects or 4
    offset = (setup_sects + 1) * 512
    kernel = image[offset:]
    if offset >= len(image) or len(kernel) < hdr.syssize * 16:
        raise BootError(f"{path} is truncated: the setup header promises {hdr.syssize * 16} bytes of kernel "
                        f"after offset {offset:#x}, the file has {max(0, len(kernel))}")
    need = max(len(kernel), hdr.init_size)
    if KERNEL_LOAD + need > mem.size:
        raise BootError(f"{path} needs {need >> 20} MiB at 1 MiB but the machine has {mem.size >> 20} MiB of RAM: "
                        "use a larger --memory")
    mem.write(KERNEL_LOAD, kernel)
    ctypes.memmove(ctypes.addressof(params.hdr), image[0x1F1:0x26C], ctypes.sizeof(SetupHeader))
    return KERNEL_LOAD + 0x200, KERNEL_LOAD + len(kernel)


def _load_vmlinux(image: bytes, path: str, mem: PhysicalMemory, params: BootParams) -> tuple[int, int]:
    """An ELF vmlinux: PT_LOAD segments at their physical addresses; entry at e_entry (physical)."""
    if len(image) < 64 or image[4] != 2 or image[5] != 1 or struct.unpack_from("<H", image, 18)[0] != 62:
        raise BootError(f"{path} is an ELF file but not a 64-bit little-endian x86-64 vmlinux")
    e_type, = struct.unpack_from("<H", image, 16)
    if e_type != 2:
        raise BootError(f"{path} is an ELF file but not a kernel: a vmlinux is an ET_EXEC file, this one is "
                        + ("a position-independent program or shared object" if e_type == 3 else f"type {e_type}"))
    entry, phoff = struct.unpack_from("<QQ", image, 24)
    phentsize, phnum = struct.unpack_from("<HH", image, 54)
    if phentsize != 56 or phoff + phnum * 56 > len(image):
        raise BootError(f"{path}: program headers lie outside the file")
    low, high = None, 0
    for i in range(phnum):
        p_type, _, p_offset, _, p_paddr, p_filesz, p_memsz, _ = struct.unpack_from("<IIQQQQQQ", image, phoff + 56 * i)
        if p_type == 3:
            raise BootError(f"{path} is a dynamically linked program (it has PT_INTERP), not a kernel")
        if p_type != 1:
            continue
        if p_offset + p_filesz > len(image) or p_filesz > p_memsz:
            raise BootError(f"{path}: a PT_LOAD segment lies outside the file")
        if p_paddr + p_memsz > mem.size:
            raise BootError(f"{path}: a segment at {p_paddr:#x} (+{p_memsz:#x}) does not fit in "
                            f"{mem.size >> 20} MiB of RAM: use a larger --memory")
        mem.write(p_paddr, image[p_offset:p_offset + p_filesz])
        mem.write(p_paddr + p_filesz, bytes(p_memsz - p_filesz))
        low = p_paddr if low is None else min(low, p_paddr)
        high = max(high, p_paddr + p_memsz)
    if low is None:
        raise BootError(f"{path}: no PT_LOAD segments")
    if not low <= entry < high:
        raise BootError(f"{path}: entry point {entry:#x} is not inside the loaded segments")
    params.hdr.version = MIN_PROTOCOL
    params.hdr.initrd_addr_max = 0x7FFF_FFFF
    params.hdr.cmdline_size = 2047
    params.hdr.kernel_alignment = 0x20_0000
    return entry, high


def _place_initrd(initrd: bytes, path: str, mem: PhysicalMemory, params: BootParams, kernel_end: int) -> int:
    top = min(mem.size, (params.hdr.initrd_addr_max or 0x37FF_FFFF) + 1)
    start = (top - len(initrd)) & ~0xFFF
    if start < max(kernel_end, KERNEL_LOAD + params.hdr.init_size):
        raise BootError(f"initrd {path} ({len(initrd) >> 10} KiB) does not fit in RAM above the kernel: "
                        "use a larger --memory")
    mem.write(start, initrd)
    params.hdr.ramdisk_image = start
    params.hdr.ramdisk_size = len(initrd)
    return start


def _write_page_tables(mem: PhysicalMemory) -> None:
    """Identity-map 0-4 GiB with 2 MiB pages (present, writable)."""
    mem.write(PML4, struct.pack("<Q", PDPT | 0x3))
    mem.write(PDPT, b"".join(struct.pack("<Q", (PD + 0x1000 * g) | 0x3) for g in range(4)))
    mem.write(PD, b"".join(struct.pack("<Q", (i << 21) | 0x83) for i in range(4 * 512)))


def _write_gdt(mem: PhysicalMemory, state: CpuState) -> None:
    descriptors = [0, 0, 0x00AF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF]   # null, null, 64-bit code, data
    mem.write(GDT, b"".join(struct.pack("<Q", d) for d in descriptors))
    state.gdtr_base, state.gdtr_limit = GDT, 8 * len(descriptors) - 1


def load_linux(mem: PhysicalMemory, state: CpuState, kernel: str | Path, *, initrd: str | Path | None = None,
               cmdline: str = "") -> BootInfo:
    """Load a kernel (bzImage or ELF vmlinux) and initrd into ``mem``; set ``state`` at the 64-bit entry."""
    image = _read(kernel, "kernel")
    params = BootParams()
    if image[:4] == ELF_MAGIC:
        entry, kernel_end = _load_vmlinux(image, str(kernel), mem, params)
    else:
        entry, kernel_end = _load_bzimage(image, str(kernel), mem, params)
    encoded = cmdline.encode()
    limit = params.hdr.cmdline_size or 255
    if len(encoded) > limit:
        raise BootError(f"the kernel command line is {len(encoded)} bytes; this kernel accepts at most {limit}")
    mem.write(CMDLINE, encoded + b"\0")
    params.hdr.cmd_line_ptr = CMDLINE
    params.hdr.type_of_loader = TYPE_OF_LOADER
    params.hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP
    params.hdr.heap_end_ptr = 0xFE00
    info = BootInfo(entry, KERNEL_LOAD, kernel_end, cmdline=cmdline)
    if initrd is not None:
        data = _read(initrd, "initrd")
        info.initrd_start, info.initrd_size = _place_initrd(data, str(initrd), mem, params, kernel_end), len(data)
    add_e820_entry(params, 0, LOW_RAM_END, E820_RAM)
    add_e820_entry(params, LOW_RAM_END, HIGH_RAM_START - LOW_RAM_END, E820_RESERVED)
    add_e820_entry(params, HIGH_RAM_START, mem.size - HIGH_RAM_START, E820_RAM)
    mem.write(BOOT_PARAMS, bytes(params))
    _write_page_tables(mem)
    _write_gdt(mem, state)
    _enter_long_mode(state, entry)
    return info


def _enter_long_mode(state: CpuState, entry: int) -> None:
    """The register state of the 64-bit boot protocol (boot.rst, "64-bit Boot Protocol")."""
    state.cr0 = 0x8000_0031          # PG | NE | ET | PE
    state.cr4 = 0x20                 # PAE
    state.cr3 = PML4
    state.efer = 0x500               # LMA | LME
    state.cs, state.ds, state.es, state.ss = BOOT_CS, BOOT_DS, BOOT_DS, BOOT_DS
    state.fs = state.gs = BOOT_DS
    state.cpl = 0
    state.rflags = 0x2               # interrupts off
    state.rsi = BOOT_PARAMS
    state.rsp = BOOT_STACK
    state.rip = entry
    state.mxcsr = 0x1F80
    state.fcw = 0x037F
