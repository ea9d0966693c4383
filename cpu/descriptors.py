"""System data structures of long mode as typed layouts, and the implicit supervisor accesses that read them.

Follows the Intel SDM Vol. 3A: segment descriptors (3.4.5, figure 3-8), the
16-byte system descriptors of a 64-bit TSS (8.2.3, figure 8-4), the 64-bit
TSS (8.7, figure 8-11) and 64-bit IDT gates (6.14.1, figure 6-8).

The processor reads the GDT, IDT and TSS by linear address as *implicit
supervisor-mode accesses* (SDM 4.6), whatever the CPL: :func:`read_system`
does that through the current memory, with a #PF if the structure is not
mapped.

Not modelled: TSS limits (the whole 104-byte TSS is read).
"""

from __future__ import annotations

import ctypes
from typing import Any

_U8, _U16, _U32, _U64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64

TSS_AVAILABLE, TSS_BUSY = 0x9, 0xB
"""System-descriptor types of a 64-bit TSS (SDM 3.5, table 3-2)."""
GATE_INTERRUPT, GATE_TRAP = 0xE, 0xF
"""64-bit IDT gate types: an interrupt gate clears IF, a trap gate keeps it."""


class SegmentDescriptor(ctypes.LittleEndianStructure):
    """An 8-byte code or data segment descriptor (SDM 3.4.5)."""

    _pack_ = 1
    _fields_ = (
        ("limit_low", _U16),    # 0: limit 15:0
        ("base_low", _U16),     # 2: base 15:0
        ("base_mid", _U8),      # 4: base 23:16
        ("access", _U8),        # 5: type 3:0, S 4 (1 = code/data), DPL 6:5, P 7
        ("limit_flags", _U8),   # 6: limit 19:16, AVL, L (64-bit code), D/B, G
        ("base_high", _U8),     # 7: base 31:24
    )

    @property
    def base(self) -> int:
        return self.base_low | (self.base_mid << 16) | (self.base_high << 24)

    @property
    def type(self) -> int:
        return self.access & 0xF

    @property
    def code_or_data(self) -> bool:
        return bool(self.access & 0x10)

    @property
    def dpl(self) -> int:
        return (self.access >> 5) & 3

    @property
    def present(self) -> bool:
        return bool(self.access & 0x80)

    @property
    def code(self) -> bool:
        return bool(self.type & 0x8)

    @property
    def writable_data(self) -> bool:
        """A data segment with W = 1 (type bit 1 means W for data, R for code)."""
        return not self.code and bool(self.type & 0x2)

    @property
    def readable(self) -> bool:
        """Data segments always are; code segments when R = 1."""
        return not self.code or bool(self.type & 0x2)

    @property
    def conforming_code(self) -> bool:
        return self.code and bool(self.type & 0x4)

    @property
    def long_mode(self) -> bool:
        """L: a 64-bit code segment (else, in IA-32e mode, a compatibility-mode one)."""
        return bool(self.limit_flags & 0x20)

    @property
    def limit(self) -> int:
        """The segment limit in bytes, scaled by G (4 KiB granularity): what LSL reports."""
        raw = self.limit_low | (self.limit_flags & 0xF) << 16
        return raw << 12 | 0xFFF if self.limit_flags & 0x80 else raw


class SystemDescriptor(ctypes.LittleEndianStructure):
    """A 16-byte long-mode system descriptor: a TSS (or LDT) in the GDT (SDM 8.2.3)."""

    _pack_ = 1
    _fields_ = (
        ("low", SegmentDescriptor),  # 0: the legacy 8 bytes; type 9 (available TSS) or 0xB (busy TSS)
        ("base_upper", _U32),        # 8: base 63:32
        ("reserved", _U32),          # 12: must be zero
    )

    @property
    def base(self) -> int:
        return self.low.base | (self.base_upper << 32)


class Tss64(ctypes.LittleEndianStructure):
    """The 64-bit task-state segment: stack pointers for privilege changes and the IST (SDM 8.7)."""

    _pack_ = 1
    _fields_ = (
        ("reserved0", _U32),     # 0
        ("rsp", _U64 * 3),       # 4: RSP0..RSP2, loaded on an interrupt to a more privileged level
        ("reserved1", _U64),     # 28
        ("ist", _U64 * 7),       # 36: IST1..IST7, loaded when a gate names one
        ("reserved2", _U64),     # 92
        ("reserved3", _U16),     # 100
        ("iomap_base", _U16),    # 102: I/O permission bitmap offset (the bitmap is not modelled)
    )


class Gate64(ctypes.LittleEndianStructure):
    """A 16-byte IDT gate of long mode (SDM 6.14.1)."""

    _pack_ = 1
    _fields_ = (
        ("offset_low", _U16),    # 0: handler 15:0
        ("selector", _U16),      # 2: the handler's code segment
        ("ist", _U8),            # 4: bits 2:0: IST index, 0 = no IST switch
        ("access", _U8),         # 5: type 3:0 (0xE interrupt, 0xF trap), DPL 6:5, P 7
        ("offset_mid", _U16),    # 6: handler 31:16
        ("offset_high", _U32),   # 8: handler 63:32
        ("reserved", _U32),      # 12
    )

    @property
    def offset(self) -> int:
        return self.offset_low | (self.offset_mid << 16) | (self.offset_high << 32)

    @property
    def type(self) -> int:
        return self.access & 0xF

    @property
    def dpl(self) -> int:
        return (self.access >> 5) & 3

    @property
    def present(self) -> bool:
        return bool(self.access & 0x80)


assert ctypes.sizeof(SegmentDescriptor) == 8
assert ctypes.sizeof(SystemDescriptor) == 16
assert ctypes.sizeof(Tss64) == 104
assert ctypes.sizeof(Gate64) == 16


def read_system(cpu: Any, address: int, length: int) -> bytes:
    """Read a system structure at a linear address as a supervisor access (SDM 4.6), from any CPL."""
    mem, cpl = cpu.mem, cpu.state.cpl
    mem.switch_privilege(0)
    try:
        return mem.read(address, length)
    finally:
        mem.switch_privilege(cpl)


def write_system(cpu: Any, address: int, data: bytes) -> None:
    """Write a system structure (LTR's busy bit) as a supervisor access."""
    mem, cpl = cpu.mem, cpu.state.cpl
    mem.switch_privilege(0)
    try:
        mem.write(address, data)
    finally:
        mem.switch_privilege(cpl)
