"""Tiny ELF64 executables built byte by byte, for the loader's and the run loop's tests.

``build`` lays out an ELF header, its program headers and the code, with by
default one R+X PT_LOAD covering the whole file at :data:`BASE`; every field
can be overridden to make the malformed files the ELF checks must refuse.
Layouts follow the gABI (Elf64_Ehdr, Elf64_Phdr).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from keystone import KS_ARCH_X86, KS_MODE_64, Ks

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")   # Elf64_Ehdr, 64 bytes
PHDR = struct.Struct("<IIQQQQQQ")           # Elf64_Phdr, 56 bytes
BASE = 0x40_0000
PT_LOAD, PT_INTERP, PT_NOTE = 1, 3, 4
PF_X, PF_W, PF_R = 1, 2, 4
ET_EXEC, ET_DYN, ET_REL = 2, 3, 1


@dataclass
class Segment:
    type: int = PT_LOAD
    flags: int = PF_R | PF_X
    offset: int = 0
    vaddr: int = BASE
    filesz: int | None = None    # None: the whole file
    memsz: int | None = None     # None: filesz


def code_offset(nsegments: int = 1) -> int:
    """Where ``build`` puts the code: right after the headers."""
    return EHDR.size + PHDR.size * nsegments


def assemble(source: str, address: int) -> bytes:
    encoding, _ = Ks(KS_ARCH_X86, KS_MODE_64).asm(source, address)
    return bytes(encoding)


def build(code: bytes = b"", *, segments: list[Segment] | None = None, entry: int | None = None,
          e_type: int = ET_EXEC, machine: int = 62, elf_class: int = 2, data: int = 1,
          phentsize: int = PHDR.size, phoff: int = EHDR.size) -> bytes:
    segments = [Segment()] if segments is None else segments
    size = code_offset(len(segments)) + len(code)
    ident = b"\x7fELF" + bytes([elf_class, data, 1]) + bytes(9)
    entry = BASE + code_offset(len(segments)) if entry is None else entry
    header = EHDR.pack(ident, e_type, machine, 1, entry, phoff, 0, 0, EHDR.size, phentsize, len(segments), 0, 0, 0)
    phdrs = b""
    for s in segments:
        filesz = size if s.filesz is None else s.filesz
        memsz = filesz if s.memsz is None else s.memsz
        phdrs += PHDR.pack(s.type, s.flags, s.offset, s.vaddr, s.vaddr, filesz, memsz, 0x1000)
    return header + phdrs + code


def program(source: str) -> bytes:
    """A runnable static executable whose code is ``source`` (Intel syntax)."""
    return build(assemble(source, BASE + code_offset()))


def write(directory: Path, data: bytes, name: str = "prog") -> str:
    path = directory / name
    path.write_bytes(data)
    path.chmod(0o755)
    return str(path)
