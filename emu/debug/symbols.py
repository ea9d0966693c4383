"""Symbol tables for the debugger: names for addresses and addresses for names.

Two sources:

- an ELF file's ``.symtab`` and ``.dynsym`` sections (gABI ch. 4, "Sections"
  and "Symbol Table": Elf64_Shdr and Elf64_Sym, read here with ``struct``);
  an ``ET_DYN`` file's symbols are moved by the bias emu loads it at;
- a Linux ``System.map`` (the ``nm`` format: address, type letter, name).

A symbol with a size covers ``[address, address + size)``; one without a size
(assembler labels, every System.map entry) covers up to the end of its section
when the section is known, else up to the next symbol, which is how gdb treats
its "minimal symbols" and the kernel's kallsyms names text addresses.  Of the
names System.map gives one address, a global one wins over a local one, and a
plain name over one starting with ``__`` (``irq_entries_start``, not the
section marker ``__irqentry_text_start``).

Not read: DWARF (no types, source lines or local variables), versioned names,
symbols of shared libraries.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from pathlib import Path

from emu.user.elf import PIE_BASE, ElfType

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")   # Elf64_Ehdr: e_shoff at 40, e_shentsize/e_shnum/e_shstrndx at 58
_SHDR = struct.Struct("<IIQQQQIIQQ")         # Elf64_Shdr, 64 bytes
_SYM = struct.Struct("<IBBHQQ")              # Elf64_Sym, 24 bytes
assert _EHDR.size == 64 and _SHDR.size == 64 and _SYM.size == 24

SHT_SYMTAB, SHT_DYNSYM = 2, 11
SHN_UNDEF, SHN_LORESERVE, SHN_ABS = 0, 0xFF00, 0xFFF1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION, STT_FILE, STT_TLS = 0, 1, 2, 3, 4, 6
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2

_KEEP_TYPES = (STT_NOTYPE, STT_OBJECT, STT_FUNC)
"""Symbol types that name an address (sections, files and TLS offsets do not)."""

_MAP_SKIP = set("aAUvVwW")
"""System.map type letters that name no address in the image: absolute, undefined, weak-undefined."""


class SymbolError(Exception):
    """A symbol file cannot be read; the message says why."""


@dataclass(frozen=True)
class Symbol:
    name: str
    address: int
    size: int = 0
    end: int | None = None     # first address past the symbol; None: up to the next symbol
    section: str = ""
    rank: int = 0              # among symbols at one address, the lowest rank is the one shown

    def contains(self, address: int) -> bool:
        return self.address <= address and (self.end is None or address < self.end)


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    address: int
    offset: int
    size: int
    link: int


class SymbolTable:
    """Symbols sorted by address, and by name."""

    def __init__(self, symbols: list[Symbol]) -> None:
        self.symbols = sorted(symbols, key=lambda s: (s.address, s.rank, s.name))
        self._starts = [s.address for s in self.symbols]
        self._by_name: dict[str, Symbol] = {}
        for s in sorted(symbols, key=lambda s: s.rank):
            self._by_name.setdefault(s.name, s)

    def __len__(self) -> int:
        return len(self.symbols)

    def merge(self, other: SymbolTable) -> SymbolTable:
        return SymbolTable(self.symbols + other.symbols)

    def lookup(self, name: str) -> Symbol | None:
        """The symbol called ``name`` (a global one when a local of the same name exists too)."""
        return self._by_name.get(name)

    def at(self, address: int) -> Symbol | None:
        """The symbol whose range holds ``address``."""
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        start = self.symbols[i].address
        while i > 0 and self.symbols[i - 1].address == start:    # the best-ranked of those at one address
            i -= 1
        nearest = self.symbols[i]
        if nearest.contains(address):
            return nearest
        for s in reversed(self.symbols[max(0, i - 8):i]):          # a bigger symbol around a small one
            if s.end is not None and s.contains(address):
                return s
        return None

    def describe(self, address: int, *, plus_zero: bool = False) -> str | None:
        """``name+off`` for ``address`` (``name`` alone at offset 0 unless ``plus_zero``), or None."""
        s = self.at(address)
        if s is None:
            return None
        off = address - s.address
        return f"{s.name}+{off}" if off or plus_zero else s.name


def load_symbols(path: str) -> SymbolTable:
    """Symbols of an ELF file, or of a System.map text file; raises :class:`SymbolError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SymbolError(f"cannot read {path}: {e.strerror}") from None
    if data[:4] == b"\x7fELF":
        return elf_symbols(path, data)
    return system_map_symbols(path, data)


def elf_symbols(path: str, data: bytes, bias: int | None = None) -> SymbolTable:
    """The ``.symtab`` and ``.dynsym`` symbols of an ELF64 file; ``bias`` defaults to where emu loads it."""
    if len(data) < _EHDR.size or data[4] != 2 or data[5] != 1:
        raise SymbolError(f"{path} is not a little-endian ELF64 file")
    ident, e_type, *_, shoff, _flags, _ehsize, _phentsize, _phnum, shentsize, shnum, shstrndx = _EHDR.unpack_from(data)
    if bias is None:
        bias = PIE_BASE if e_type == ElfType.ET_DYN else 0
    if shoff == 0 or shnum == 0:
        return SymbolTable([])
    if shentsize != _SHDR.size or shoff + shnum * _SHDR.size > len(data):
        raise SymbolError(f"{path} has damaged section headers (offset {shoff:#x}, {shnum} of {shentsize} bytes)")
    raw = [_SHDR.unpack_from(data, shoff + i * _SHDR.size) for i in range(shnum)]
    names = raw[shstrndx] if shstrndx < shnum else None
    sections = [Section(_string(data, names[4], names[5], h[0]) if names else "", h[1], h[3], h[4], h[5], h[6])
                for h in raw]
    symbols: list[Symbol] = []
    for table in sections:
        if table.type not in (SHT_SYMTAB, SHT_DYNSYM) or table.link >= len(sections):
            continue
        strings = sections[table.link]
        if table.offset + table.size > len(data):
            raise SymbolError(f"{path}: symbol table {table.name or '?'} runs past the end of the file")
        for off in range(table.offset, table.offset + table.size - _SYM.size + 1, _SYM.size):
            symbol = _elf_symbol(data, off, strings, sections, bias, dynamic=table.type == SHT_DYNSYM)
            if symbol is not None:
                symbols.append(symbol)
    return SymbolTable(symbols)


def _elf_symbol(data: bytes, off: int, strings: Section, sections: list[Section], bias: int,
                *, dynamic: bool) -> Symbol | None:
    st_name, st_info, _other, shndx, value, size = _SYM.unpack_from(data, off)
    kind, binding = st_info & 0xF, st_info >> 4
    if kind not in _KEEP_TYPES or shndx == SHN_UNDEF or shndx >= SHN_LORESERVE or st_name == 0:
        return None
    name = _string(data, strings.offset, strings.size, st_name)
    if not name or shndx >= len(sections):
        return None
    section = sections[shndx]
    address = value + bias
    end = address + size if size else section.address + bias + section.size
    rank = (0 if kind != STT_NOTYPE else 4) + {STB_GLOBAL: 0, STB_WEAK: 1}.get(binding, 2) + (8 if dynamic else 0)
    return Symbol(name, address, size, end, section.name, rank)


def _string(data: bytes, offset: int, size: int, index: int) -> str:
    if index >= size:
        return ""
    start = offset + index
    end = data.find(b"\0", start, offset + size)
    return data[start:end if end >= 0 else offset + size].decode("utf-8", "replace")


def system_map_symbols(path: str, data: bytes) -> SymbolTable:
    """Symbols of a System.map (``nm`` output): ``ADDRESS TYPE NAME`` per line."""
    symbols = []
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise SymbolError(f"{path} is neither an ELF file nor a System.map text file") from None
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3 or len(fields[1]) != 1:
            raise SymbolError(f"{path}:{number}: expected `ADDRESS TYPE NAME` as in System.map, got {line!r}")
        try:
            address = int(fields[0], 16)
        except ValueError:
            raise SymbolError(f"{path}:{number}: {fields[0]!r} is not a hexadecimal address") from None
        if fields[1] in _MAP_SKIP:
            continue
        rank = (0 if fields[1].isupper() else 2) + fields[2].startswith("__")   # a section marker, a helper
        symbols.append(Symbol(fields[2], address, rank=rank))
    if not symbols:
        raise SymbolError(f"{path} holds no symbols")
    return SymbolTable(symbols)
