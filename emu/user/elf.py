"""Reading and checking an x86-64 ELF executable before it is loaded.

Follows the System V ABI generic ELF specification (gABI, ch. 4 "Object Files"
and ch. 5 "Program Loading") and the AMD64 psABI supplement (EM_X86_64,
ELFCLASS64, ELFDATA2LSB).  Accepts an ``ET_EXEC`` or ``ET_DYN``
executable, static or naming a dynamic linker in ``PT_INTERP`` (gABI 5,
"Program Interpreter"); an ``ET_DYN`` one is loaded at :data:`PIE_BASE`,
ELF_ET_DYN_BASE, where Linux puts position-independent executables with
address randomisation off (the loader may move it).

Every way a file can be unfit is an :class:`ElfError` whose one-line message
says what is wrong and, where there is one, what to do about it.

Not handled: section headers (a loader never needs them), ELF notes.
"""

from __future__ import annotations

import ctypes
import itertools
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from emu.user.address_space import USER_TOP

PIE_BASE = 0x5555_5555_4000
"""Load bias of an ET_DYN executable: Linux's ELF_ET_DYN_BASE with randomisation off."""

MAX_INTERP = 4096
"""A PT_INTERP path longer than PATH_MAX is refused, as Linux does (ENOEXEC)."""
MAX_SEGMENT = 1 << 40
"""A PT_LOAD bigger than 1 TiB is a corrupt header, not a program."""

_ELF_MAGIC = b"\x7fELF"


class ElfError(Exception):
    """The file is not an executable emu can run; the message says why.

    ``status`` is the exit status of ``emu run`` for it, qemu-x86_64's where
    qemu has one: 255 for an ELF of another architecture or a dynamic linker
    that cannot be opened, 1 for a truncated file; 2 (emu's usage error) else.
    """

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


ARCH_STATUS = 255
"""qemu-x86_64's exit status for an ELF of another architecture, or a dynamic linker it cannot open."""
TRUNCATED_STATUS = 1
"""qemu-x86_64's exit status for a file it could not load."""


class ElfClass(IntEnum):   # e_ident[EI_CLASS]
    ELFCLASS32 = 1
    ELFCLASS64 = 2


class ElfData(IntEnum):    # e_ident[EI_DATA]
    ELFDATA2LSB = 1
    ELFDATA2MSB = 2


class ElfType(IntEnum):    # e_type
    ET_NONE = 0
    ET_REL = 1
    ET_EXEC = 2
    ET_DYN = 3
    ET_CORE = 4


EM_X86_64 = 62
_MACHINE_NAMES = {3: "i386", 8: "MIPS", 20: "PowerPC", 21: "PowerPC64", 22: "S/390", 40: "ARM",
                  43: "SPARC V9", 50: "IA-64", 183: "AArch64", 243: "RISC-V", 258: "LoongArch"}

_TYPE_NAMES = {ElfType.ET_NONE: "an ELF of no type", ElfType.ET_REL: "a relocatable object file",
               ElfType.ET_CORE: "a core dump"}


class SegmentType(IntEnum):  # p_type
    PT_NULL = 0
    PT_LOAD = 1
    PT_DYNAMIC = 2
    PT_INTERP = 3
    PT_NOTE = 4
    PT_SHLIB = 5
    PT_PHDR = 6
    PT_TLS = 7


class SegmentFlags(IntFlag):  # p_flags
    PF_X = 1
    PF_W = 2
    PF_R = 4


class ElfHeader(ctypes.LittleEndianStructure):
    """Elf64_Ehdr (gABI 4, "ELF Header")."""

    _pack_ = 1
    _fields_ = [
        ("e_ident", ctypes.c_uint8 * 16),   # 0: magic, class, data, version, OS ABI
        ("e_type", ctypes.c_uint16),        # 16
        ("e_machine", ctypes.c_uint16),     # 18
        ("e_version", ctypes.c_uint32),     # 20
        ("e_entry", ctypes.c_uint64),       # 24
        ("e_phoff", ctypes.c_uint64),       # 32
        ("e_shoff", ctypes.c_uint64),       # 40
        ("e_flags", ctypes.c_uint32),       # 48
        ("e_ehsize", ctypes.c_uint16),      # 52
        ("e_phentsize", ctypes.c_uint16),   # 54
        ("e_phnum", ctypes.c_uint16),       # 56
        ("e_shentsize", ctypes.c_uint16),   # 58
        ("e_shnum", ctypes.c_uint16),       # 60
        ("e_shstrndx", ctypes.c_uint16),    # 62
    ]


class ProgramHeader(ctypes.LittleEndianStructure):
    """Elf64_Phdr (gABI 5, "Program Header")."""

    _pack_ = 1
    _fields_ = [
        ("p_type", ctypes.c_uint32),    # 0
        ("p_flags", ctypes.c_uint32),   # 4
        ("p_offset", ctypes.c_uint64),  # 8
        ("p_vaddr", ctypes.c_uint64),   # 16
        ("p_paddr", ctypes.c_uint64),   # 24
        ("p_filesz", ctypes.c_uint64),  # 32
        ("p_memsz", ctypes.c_uint64),   # 40
        ("p_align", ctypes.c_uint64),   # 48
    ]


assert ctypes.sizeof(ElfHeader) == 64
assert ctypes.sizeof(ProgramHeader) == 56


@dataclass
class ElfImage:
    """A checked executable: its bytes, headers and where it will be loaded."""

    path: str
    data: bytes
    header: ElfHeader
    phdrs: list[ProgramHeader]
    bias: int
    """Added to every p_vaddr and to e_entry: 0 for ET_EXEC, :data:`PIE_BASE` for ET_DYN until the loader
    places it."""
    interpreter: bytes | None = None
    """The dynamic linker PT_INTERP names, or None for a static executable."""

    @property
    def entry(self) -> int:
        return self.header.e_entry + self.bias

    @property
    def loads(self) -> list[ProgramHeader]:
        return [p for p in self.phdrs if p.p_type == SegmentType.PT_LOAD]

    @property
    def phdr_address(self) -> int:
        """Where the program headers are in guest memory (the value of AT_PHDR)."""
        for p in self.phdrs:
            if p.p_type == SegmentType.PT_PHDR:
                return p.p_vaddr + self.bias
        phoff = self.header.e_phoff
        for p in self.loads:
            if p.p_offset <= phoff < p.p_offset + p.p_filesz:
                return phoff - p.p_offset + p.p_vaddr + self.bias
        # Linux's rule when no segment holds them: the first segment's image base plus e_phoff.
        first = self.loads[0]
        return first.p_vaddr - first.p_offset + phoff + self.bias


def read_elf(path: str) -> ElfImage:
    """Read ``path`` and check that emu can run it; raises :class:`ElfError`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ElfError(f"cannot read {path}: {e.strerror}") from None
    return parse_elf(path, data)


def parse_elf(path: str, data: bytes) -> ElfImage:
    """Check the bytes of an executable named ``path`` (named in messages only)."""
    if data[:4] != _ELF_MAGIC:
        raise ElfError(f"{path} is not an ELF file (it starts with {data[:4].hex(' ') or 'nothing'}, "
                       f"not 7f 45 4c 46)")
    if len(data) < 6:
        raise ElfError(f"{path} is truncated: {len(data)} bytes, an ELF header needs 64", TRUNCATED_STATUS)
    if data[4] == ElfClass.ELFCLASS32:
        raise ElfError(f"{path} is a 32-bit ELF; emu runs x86-64 programs only", ARCH_STATUS)
    if data[4] != ElfClass.ELFCLASS64:
        raise ElfError(f"{path} has an invalid ELF class {data[4]} (expected 2, 64-bit)")
    if data[5] == ElfData.ELFDATA2MSB:
        raise ElfError(f"{path} is a big-endian ELF; emu runs little-endian x86-64 programs only", ARCH_STATUS)
    if data[5] != ElfData.ELFDATA2LSB:
        raise ElfError(f"{path} has an invalid ELF data encoding {data[5]} (expected 1, little-endian)")
    if len(data) < ctypes.sizeof(ElfHeader):
        raise ElfError(f"{path} is truncated: {len(data)} bytes, an ELF header needs 64", TRUNCATED_STATUS)
    eh = ElfHeader.from_buffer_copy(data)
    if eh.e_machine != EM_X86_64:
        name = _MACHINE_NAMES.get(eh.e_machine, "another architecture")
        raise ElfError(f"{path} is an ELF for {name} (e_machine {eh.e_machine}); emu runs x86-64 programs only",
                       ARCH_STATUS)
    if eh.e_type not in (ElfType.ET_EXEC, ElfType.ET_DYN):
        kind = _TYPE_NAMES.get(eh.e_type, "of an unknown type")
        raise ElfError(f"{path} is {kind} (e_type {eh.e_type}), not an executable; link it into a program first")
    phdrs = _program_headers(path, data, eh)
    bias = PIE_BASE if eh.e_type == ElfType.ET_DYN else 0
    _check_segments(path, len(data), phdrs, bias)
    image = ElfImage(path, data, eh, phdrs, bias, _interpreter(path, data, phdrs))
    _check_entry(path, image)
    return image


def _program_headers(path: str, data: bytes, eh: ElfHeader) -> list[ProgramHeader]:
    size = ctypes.sizeof(ProgramHeader)
    if eh.e_phnum == 0:
        raise ElfError(f"{path} has no program headers, so there is nothing to load")
    if eh.e_phentsize != size:
        raise ElfError(f"{path} has program headers of {eh.e_phentsize} bytes; ELF64 ones are {size}")
    end = eh.e_phoff + eh.e_phnum * size
    if end > len(data):
        raise ElfError(f"{path} is truncated: its {eh.e_phnum} program headers end at byte {end} "
                       f"but the file has {len(data)}", TRUNCATED_STATUS)
    return [ProgramHeader.from_buffer_copy(data, eh.e_phoff + i * size) for i in range(eh.e_phnum)]


def _interpreter(path: str, data: bytes, phdrs: list[ProgramHeader]) -> bytes | None:
    """The path PT_INTERP names: NUL-terminated bytes inside the file (Linux refuses anything else)."""
    interps = [p for p in phdrs if p.p_type == SegmentType.PT_INTERP]
    if not interps:
        return None
    if len(interps) > 1:
        raise ElfError(f"{path} has {len(interps)} PT_INTERP program headers; an executable has at most one")
    p = interps[0]
    if not 2 <= p.p_filesz <= MAX_INTERP:
        raise ElfError(f"{path} has a PT_INTERP of {p.p_filesz} bytes, not a path")
    if p.p_offset + p.p_filesz > len(data):
        raise ElfError(f"{path} is truncated: its PT_INTERP lies at bytes "
                       f"{p.p_offset:#x}..{p.p_offset + p.p_filesz:#x} "
                       f"but the file has {len(data):#x}", TRUNCATED_STATUS)
    name = data[p.p_offset: p.p_offset + p.p_filesz]
    if name[-1] != 0 or 0 in name[:-1]:
        raise ElfError(f"{path} has a PT_INTERP that is not one NUL-terminated path")
    return name[:-1]


def _check_segments(path: str, file_size: int, phdrs: list[ProgramHeader], bias: int) -> None:
    loads = []
    for i, p in enumerate(phdrs):
        if p.p_type != SegmentType.PT_LOAD:
            continue
        what = f"{path}: PT_LOAD segment {i}"
        if p.p_filesz and p.p_offset + p.p_filesz > file_size:
            raise ElfError(f"{what} has file bytes {p.p_offset:#x}..{p.p_offset + p.p_filesz:#x} "
                           f"past the end of the file ({file_size:#x} bytes); the file is truncated",
                           TRUNCATED_STATUS)
        if p.p_filesz > p.p_memsz:
            raise ElfError(f"{what} has p_filesz {p.p_filesz:#x} larger than p_memsz {p.p_memsz:#x}")
        if p.p_memsz > MAX_SEGMENT:
            raise ElfError(f"{what} has an absurd size of {p.p_memsz:#x} bytes (more than 1 TiB)")
        start = p.p_vaddr + bias
        if start + p.p_memsz > USER_TOP:
            raise ElfError(f"{what} at {start:#x}..{start + p.p_memsz:#x} lies beyond user space "
                           f"(which ends at {USER_TOP:#x})")
        if (p.p_vaddr - p.p_offset) % 4096:
            raise ElfError(f"{what} has p_vaddr {p.p_vaddr:#x} and p_offset {p.p_offset:#x} that differ "
                           f"by a non-multiple of the page size, so it cannot be mapped")
        loads.append((start, start + p.p_memsz, i))
    if not loads:
        raise ElfError(f"{path} has no PT_LOAD segment, so there is nothing to load")
    loads.sort()
    for (_, end, i), (start, _, j) in itertools.pairwise(loads):
        if start < end:
            raise ElfError(f"{path}: PT_LOAD segments {i} and {j} overlap at {start:#x}")


def _check_entry(path: str, image: ElfImage) -> None:
    entry = image.header.e_entry
    for p in image.loads:
        if p.p_flags & SegmentFlags.PF_X and p.p_vaddr <= entry < p.p_vaddr + p.p_memsz:
            return
    raise ElfError(f"{path} has its entry point {image.entry:#x} outside every executable segment")
