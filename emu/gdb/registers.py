"""The x86-64 registers as GDB sees them: a target description and the register packets' byte layout.

Follows the GDB manual, appendix "Target Descriptions" (the XML format,
"Predefined Target Types", "Standard Target Features", "i386 Features") and
appendix "Remote Serial Protocol" (``g``/``G``/``p``/``P``: each register as
its target-byte-order bytes, in register-number order, here little-endian).

The description has four features, in the order GDB's amd64 register
numbering expects (it needs the x87 registers before the XMM registers):

- ``org.gnu.gdb.i386.core``: rax..r15 in GDB's order (rax rbx rcx rdx rsi
  rdi rbp rsp r8..r15), rip, eflags, the six selectors, st0-st7 and the x87
  control registers fctrl fstat ftag fiseg fioff foseg fooff fop;
- ``org.gnu.gdb.i386.sse``: xmm0-xmm15 and mxcsr;
- ``org.gnu.gdb.i386.segments``: fs_base and gs_base;
- ``org.gnu.gdb.i386.avx``: ymm0h-ymm15h, bits 255:128 of YMM0-15 (gdb
  builds ``$ymm0`` from ``$xmm0`` and ``$ymm0h``).

A full-system machine's description (:data:`SYSTEM`) adds a fourth feature,
``org.emu.x86.system``, that GDB does not know by name and shows as it is
described (``p $cr0`` prints ``[ PE ET PG ]``, ``info registers system``):
kernel_gs_base, cr0, cr2, cr3, cr4, cr8 and efer, CR0, CR4 and EFER with their
bits named (SDM Vol. 3A, 2.5 and 2.2.1).  Its registers come after all the
others, so the two layouts number every common register alike.  CR0, CR3,
CR4 and EFER are read-only here: changing paging under the MMU's TLBs from a
debugger is refused (writing the value they already hold is accepted, as a
``G`` packet does).

``st0``..``st7`` are ST(0)..ST(7): physical registers R((TOP + i) mod 8) (``cpu.semantics.fpu``).
``ftag`` is the full 16-bit tag word (two bits per physical register, 11 =
empty) built from the abridged tag byte the CPU state keeps (SDM Vol. 1,
8.1.7 and 10.5.1.1): a valid register is reported as tag 00.  ``fioff``,
``fooff`` and ``fop`` are the x87 last-instruction pointer, data pointer and
opcode (their low 32 and 11 bits); ``fiseg`` and ``foseg`` read as zero, as
this CPU stores FCS and FDS, and writes to them are ignored.  Not described: AVX-512, the
``org.gnu.gdb.i386.linux`` feature (orig_rax), debug registers, GDTR/IDTR.
"""

from __future__ import annotations

from dataclasses import dataclass

from cpu.flags import read_rflags, write_rflags
from cpu.semantics.fpu import full_tag_word, physical_register, read_register, write_register
from cpu.state import CpuState
from emu.debug.views import CONTROL_BITS


@dataclass(frozen=True)
class Register:
    name: str
    bits: int
    type: str
    group: str = "general"


_CORE = (
    [Register(name, 64, "int64") for name in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi")]
    + [Register("rbp", 64, "data_ptr"), Register("rsp", 64, "data_ptr")]
    + [Register(f"r{i}", 64, "int64") for i in range(8, 16)]
    + [Register("rip", 64, "code_ptr"), Register("eflags", 32, "i386_eflags")]
    + [Register(name, 32, "int32") for name in ("cs", "ss", "ds", "es", "fs", "gs")]
    + [Register(f"st{i}", 80, "i387_ext", "float") for i in range(8)]
    + [Register(name, 32, "int", "float") for name in ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg",
                                                          "fooff", "fop")]
)
_SSE = [Register(f"xmm{i}", 128, "vec128", "vector") for i in range(16)] + [Register("mxcsr", 32, "i386_mxcsr",
                                                                                      "vector")]
_SEGMENTS = [Register("fs_base", 64, "int", "system"), Register("gs_base", 64, "int", "system")]
_AVX = [Register(f"ymm{i}h", 128, "uint128", "vector") for i in range(16)]

_SYSTEM = ([Register("kernel_gs_base", 64, "int64", "system")]
           + [Register(name, 64, f"x86_{name}" if name in CONTROL_BITS else "int64", "system")
              for name in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer")])

FEATURES = (("org.gnu.gdb.i386.core", _CORE), ("org.gnu.gdb.i386.sse", _SSE),
            ("org.gnu.gdb.i386.segments", _SEGMENTS), ("org.gnu.gdb.i386.avx", _AVX))
SYSTEM_FEATURES = (*FEATURES, ("org.emu.x86.system", _SYSTEM))

_EFLAGS_FIELDS = (("CF", 0, 0), ("", 1, 1), ("PF", 2, 2), ("AF", 4, 4), ("ZF", 6, 6), ("SF", 7, 7), ("TF", 8, 8),
                  ("IF", 9, 9), ("DF", 10, 10), ("OF", 11, 11), ("IOPL", 12, 13), ("NT", 14, 14), ("RF", 16, 16),
                  ("VM", 17, 17), ("AC", 18, 18), ("VIF", 19, 19), ("VIP", 20, 20), ("ID", 21, 21))
"""RFLAGS fields by their SDM names (Vol. 1, figure 3-8): name, first bit, last bit."""

_MXCSR_FIELDS = (("IE", 0, 0), ("DE", 1, 1), ("ZE", 2, 2), ("OE", 3, 3), ("UE", 4, 4), ("PE", 5, 5),
                 ("DAZ", 6, 6), ("IM", 7, 7), ("DM", 8, 8), ("ZM", 9, 9), ("OM", 10, 10), ("UM", 11, 11),
                 ("PM", 12, 12), ("RC", 13, 14), ("FZ", 15, 15))
"""MXCSR fields by their SDM names (Vol. 1, figure 10-3)."""

_VECTORS = (("v4f", "ieee_single", 4), ("v2d", "ieee_double", 2), ("v16i8", "int8", 16),
            ("v8i16", "int16", 8), ("v4i32", "int32", 4), ("v2i64", "int64", 2))
"""The views of an XMM register GDB offers (``p $xmm0.v4i32``), plus ``uint128``."""


def _flags_xml(type_id: str, fields: tuple[tuple[str, int, int], ...], size: int = 4) -> list[str]:
    return ([f'    <flags id="{type_id}" size="{size}">']
            + [f'      <field name="{name}" start="{first}" end="{last}"/>' for name, first, last in fields]
            + ["    </flags>"])


def _vec128_xml() -> list[str]:
    return ([f'    <vector id="{vid}" type="{elem}" count="{count}"/>' for vid, elem, count in _VECTORS]
            + ['    <union id="vec128">']
            + [f'      <field name="{vid}" type="{vid}"/>' for vid, _, _ in _VECTORS]
            + ['      <field name="uint128" type="uint128"/>', "    </union>"])


def _feature_types(feature: str) -> list[str]:
    """The flag and vector types a feature's registers use, defined inside it."""
    if feature.endswith(".core"):
        return _flags_xml("i386_eflags", _EFLAGS_FIELDS)
    if feature.endswith(".sse"):
        return _vec128_xml() + _flags_xml("i386_mxcsr", _MXCSR_FIELDS)
    if feature.endswith(".system"):
        return [line for name, bits in CONTROL_BITS.items()
                for line in _flags_xml(f"x86_{name}", tuple((n, b, b) for b, n in bits), size=8)]
    return []


# -- values ------------------------------------------------------------------------
_SELECTORS = frozenset({"cs", "ss", "ds", "es", "fs", "gs"})
_X87_SEGMENTS = frozenset({"fiseg", "foseg"})
"""FCS and FDS: zero, as this CPU stores them (``cpu.semantics.fpu``); a write is ignored."""
_X87_POINTERS = {"fioff": "fip", "fooff": "fdp", "fop": "fop"}
"""GDB's names of the x87 last-instruction pointer, data pointer and opcode, and their CpuState fields."""
_PAGING = frozenset({"cr0", "cr3", "cr4", "efer"})


def _abridged_tag_word(full: int) -> int:
    return sum(1 << i for i in range(8) if (full >> (2 * i)) & 3 != 3)


def _read(state: CpuState, reg: Register) -> bytes:
    """A register's value as GDB expects it (little-endian, its bit size)."""
    name = reg.name
    if name.startswith("st") and name[2:].isdigit():
        return read_register(state, physical_register(state, int(name[2:]))).to_bytes(10, "little")
    if name.startswith("xmm"):
        value = state.xmm(int(name[3:]))
    elif name.startswith("ymm"):
        value = state.ymm(int(name[3:-1])) >> 128
    elif name == "eflags":
        value = read_rflags(state)
    elif name == "fctrl":
        value = state.fcw
    elif name == "fstat":
        value = state.fsw
    elif name == "ftag":
        value = full_tag_word(state)
    elif name in _X87_SEGMENTS:
        value = 0
    elif name in _X87_POINTERS:
        value = getattr(state, _X87_POINTERS[name])
    else:
        value = getattr(state, name)
    return (value & ((1 << reg.bits) - 1)).to_bytes(reg.bits // 8, "little")


def _write(state: CpuState, reg: Register, data: bytes) -> None:
    """Set a register from GDB's bytes (ValueError if the size is wrong or the register is read-only)."""
    if len(data) != reg.bits // 8:
        raise ValueError(f"{reg.name} takes {reg.bits // 8} bytes, not {len(data)}")
    name = reg.name
    if name.startswith("st") and name[2:].isdigit():
        write_register(state, physical_register(state, int(name[2:])), int.from_bytes(data, "little"))
        return
    value = int.from_bytes(data, "little")
    if name in _PAGING and value != getattr(state, name):
        raise ValueError(f"{name} is read-only from the debugger (paging would change under the TLBs)")
    if name.startswith("xmm"):
        state.set_xmm(int(name[3:]), value)
    elif name.startswith("ymm"):
        i = int(name[3:-1])
        state.set_ymm(i, state.xmm(i) | value << 128)
    elif name == "eflags":
        write_rflags(state, value)
    elif name == "fctrl":
        state.fcw = value & 0xFFFF
    elif name == "fstat":
        state.fsw = value & 0xFFFF
    elif name == "ftag":
        state.ftw = _abridged_tag_word(value)
    elif name in _SELECTORS:
        setattr(state, name, value & 0xFFFF)
    elif name in _X87_POINTERS:
        setattr(state, _X87_POINTERS[name], value & (0x7FF if name == "fop" else (1 << 32) - 1))
    elif name not in _X87_SEGMENTS:
        setattr(state, name, value)


class Layout:
    """One target description: its registers by GDB number, the XML, and the ``g``/``p`` packets' bytes."""

    def __init__(self, features: tuple[tuple[str, list[Register]], ...], osabi: str | None) -> None:
        self.features = features
        self.osabi = osabi
        self.registers: tuple[Register, ...] = tuple(r for _, regs in features for r in regs)
        """Every register, indexed by its GDB register number (the ``regnum`` of the description)."""
        self.numbers = {r.name: n for n, r in enumerate(self.registers)}

    def xml(self) -> str:
        """The complete target description (one document, no XInclude)."""
        lines = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">', '<target version="1.0">',
                 "  <architecture>i386:x86-64</architecture>"]
        if self.osabi:
            lines.append(f"  <osabi>{self.osabi}</osabi>")
        number = 0
        for feature, registers in self.features:
            lines.append(f'  <feature name="{feature}">')
            lines += _feature_types(feature)
            for r in registers:
                lines.append(f'    <reg name="{r.name}" bitsize="{r.bits}" type="{r.type}" regnum="{number}"'
                             f' group="{r.group}"/>')
                number += 1
            lines.append("  </feature>")
        lines.append("</target>")
        return "\n".join(lines) + "\n"

    def read(self, state: CpuState, number: int) -> bytes:
        """Register ``number``'s bytes; IndexError if unknown."""
        return _read(state, self.registers[number])

    def write(self, state: CpuState, number: int, data: bytes) -> None:
        """Set register ``number`` (IndexError if unknown, ValueError if the size is wrong or it is read-only)."""
        _write(state, self.registers[number], data)

    def read_all(self, state: CpuState) -> bytes:
        """The ``g`` packet's payload, before hex encoding: every register in number order."""
        return b"".join(_read(state, r) for r in self.registers)

    def write_all(self, state: CpuState, data: bytes) -> None:
        """Apply a ``G`` packet's payload; a short payload sets only the registers it covers."""
        offset = 0
        for reg in self.registers:
            size = reg.bits // 8
            if offset + size > len(data):
                return
            _write(state, reg, data[offset: offset + size])
            offset += size


USER = Layout(FEATURES, "GNU/Linux")
"""A user-mode Linux process's registers."""
SYSTEM = Layout(SYSTEM_FEATURES, None)
"""A machine's: the same, then the system registers; no OS ABI (gdb takes the kernel file's)."""
REGISTERS = USER.registers
NUMBERS = USER.numbers
