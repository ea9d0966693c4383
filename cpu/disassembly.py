"""Capstone's C API read directly: one instruction and its x86 operand details as plain values.

capstone's Python binding wraps each decoded instruction in a ``CsInsn`` whose
details are copied field by field through ctypes (``copy_ctypes``, ``get_arch_info``):
about 20 us an instruction, more than capstone's own decoding.  :class:`Disassembler`
calls ``cs_disasm_iter`` into one buffer that ``cs_malloc`` gave it and reads the
``cs_insn`` record and its ``cs_detail`` (capstone 5's ``capstone.h`` and ``x86.h``) in
place, with ``struct`` unpacks at the offsets the binding's own ctypes layouts give, which
are checked when this module is imported: one foreign call an instruction.  capstone 5.0's
``cs_disasm_iter`` gives the VEX compare pseudo-ops (``vcmpngt_uqss``) another instruction
id than ``cs_disasm`` does (824, ``vcvtsd2usi``, for 797, ``vcmp``): those are decoded
again with ``cs_disasm``, as the binding does.
:class:`cpu.decoder.Decoder` turns a :class:`RawInsn` into emu's records; the tests hold
it to the binding's ``CsInsn``.

Not read: the registers read and written, the EFLAGS update masks, AVX-512 fields
(EVEX is not decoded: emu has no AVX-512), the encoding offsets.
"""

from __future__ import annotations

import ctypes
import struct
from typing import NamedTuple

import capstone
from capstone import x86

_CS = capstone._cs
"""The binding's handle on the capstone library (it declares the prototypes it uses; the two it does not use
are declared below)."""

OPERAND_REG, OPERAND_IMM, OPERAND_MEM = x86.X86_OP_REG, x86.X86_OP_IMM, x86.X86_OP_MEM
_DETAIL_POINTER = 240
"""Where ``cs_insn`` holds its ``cs_detail`` pointer."""


class RawInsn(NamedTuple):
    """What capstone says of one instruction.  ``operands``: per operand ``(type, size in bytes, reg, imm,
    segment, base, index, scale, disp)``, the fields its type does not use zero."""

    id: int
    address: int
    size: int
    raw: bytes
    mnemonic: str
    op_str: str
    prefix: bytes
    relative: bool
    """In capstone's CS_GRP_BRANCH_RELATIVE group."""
    operands: tuple[tuple[int, int, int, int, int, int, int, int, int], ...]


def _layout() -> tuple[struct.Struct, struct.Struct, int, struct.Struct, int, int]:
    """The unpackers for ``cs_insn``, ``cs_detail``'s head and one ``cs_x86_op``, from the binding's layouts."""
    insn = capstone._cs_insn
    head = struct.Struct("<I4xQH24s32s160s")          # id, address, size, bytes, mnemonic, op_str
    fields = [(f.offset, f.size) for f in (insn.id, insn.address, insn.size, insn.bytes, insn.mnemonic, insn.op_str)]
    if fields != [(0, 4), (8, 8), (16, 2), (18, 24), (42, 32), (74, 160)] or insn.detail.offset != _DETAIL_POINTER:
        raise ImportError(f"capstone {capstone.__version__}'s cs_insn layout is not the one emu reads")
    detail = capstone._cs_detail
    arch = detail.arch.offset
    groups = struct.Struct(f"<{detail.groups.offset}x8sB")          # groups, groups_count
    if detail.groups_count.offset != detail.groups.offset + 8:
        raise ImportError(f"capstone {capstone.__version__}'s cs_detail layout is not the one emu reads")
    cs_x86 = x86.CsX86
    prefix, count, operands = arch + cs_x86.prefix.offset, arch + cs_x86.op_count.offset, \
        arch + cs_x86.operands.offset
    operand = struct.Struct("<I4xIIIiqB15x")          # type; reg or imm or segment, base, index, scale, disp; size
    op = x86.X86Op
    mem = x86.X86OpMem
    if (op.type.offset, op.value.offset, op.size.offset, ctypes.sizeof(op)) != (0, 8, 32, 48) or \
            (mem.segment.offset, mem.base.offset, mem.index.offset, mem.scale.offset, mem.disp.offset) != \
            (0, 4, 8, 12, 16) or operand.size != 48:
        raise ImportError(f"capstone {capstone.__version__}'s cs_x86_op layout is not the one emu reads")
    return head, groups, prefix, operand, count, operands


_HEAD, _GROUPS, _PREFIX_AT, _OPERAND, _COUNT_AT, _OPERANDS_AT = _layout()
_DETAIL_BYTES = _OPERANDS_AT + 8 * _OPERAND.size
_COUNT = struct.Struct("<B")
_MASK64 = (1 << 64) - 1
_CS.cs_malloc.restype = ctypes.c_void_p
_CS.cs_malloc.argtypes = [ctypes.c_size_t]
_CS.cs_disasm_iter.restype = ctypes.c_bool
_CS.cs_disasm_iter.argtypes = [ctypes.c_size_t, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_size_t),
                               ctypes.POINTER(ctypes.c_uint64), ctypes.c_void_p]


class Disassembler:
    """One capstone handle in 64-bit mode with operand details, and the instruction buffer it decodes into."""

    def __init__(self) -> None:
        self.cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.cs.detail = True
        buffer = _CS.cs_malloc(self.cs.csh)
        if not buffer:
            raise MemoryError("capstone could not allocate an instruction buffer")
        self._buffer = buffer
        self._record = (ctypes.c_char * _HEAD.size).from_address(buffer)
        self._details = (ctypes.c_char * _DETAIL_BYTES).from_address(_pointer_at(buffer + _DETAIL_POINTER))
        self._code = ctypes.c_char_p()
        self._size = ctypes.c_size_t()
        self._address = ctypes.c_uint64()
        self._args = (self.cs.csh, ctypes.byref(self._code), ctypes.byref(self._size), ctypes.byref(self._address),
                      buffer)
        self._insns = ctypes.POINTER(capstone._cs_insn)()

    def __del__(self) -> None:
        if getattr(self, "_buffer", None):
            _CS.cs_free(self._buffer, 1)

    def decode(self, code: bytes, address: int) -> RawInsn | None:
        """The first instruction of ``code`` (at ``address``), or None when capstone cannot decode it."""
        self._code.value = code
        self._size.value = len(code)
        self._address.value = address & _MASK64
        if not _CS.cs_disasm_iter(*self._args):
            return None
        if self._record[42:46] != b"vcmp":
            return _unpack(self._record, self._details)
        if not _CS.cs_disasm(self.cs.csh, code, len(code), address & _MASK64, 1, ctypes.byref(self._insns)):
            return None
        try:
            record = ctypes.addressof(self._insns.contents)
            return _unpack(ctypes.string_at(record, _HEAD.size),
                           ctypes.string_at(_pointer_at(record + _DETAIL_POINTER), _DETAIL_BYTES))
        finally:
            _CS.cs_free(self._insns, 1)

    def name(self, ident: int) -> str:
        """The base name of capstone's instruction id ``ident``."""
        return _CS.cs_insn_name(self.cs.csh, ident).decode()

    def reg_name(self, reg: int) -> str:
        """The name of capstone's register id ``reg`` ("" for none)."""
        name = _CS.cs_reg_name(self.cs.csh, reg)
        return name.decode() if name else ""


def _unpack(record: bytes | ctypes.Array, detail: bytes | ctypes.Array) -> RawInsn:
    """The instruction whose ``cs_insn`` head and ``cs_detail`` are ``record`` and ``detail``."""
    ident, at, size, raw, mnemonic, op_str = _HEAD.unpack_from(record)
    groups, group_count = _GROUPS.unpack_from(detail)
    operands = []
    count, = _COUNT.unpack_from(detail, _COUNT_AT)
    for i in range(count):
        kind, a, b, c, d, e, size_bytes = _OPERAND.unpack_from(detail, _OPERANDS_AT + 48 * i)
        if kind == OPERAND_REG:
            operands.append((kind, size_bytes, a, 0, 0, 0, 0, 0, 0))
        elif kind == OPERAND_IMM:
            operands.append((kind, size_bytes, 0, _signed64(a | b << 32), 0, 0, 0, 0, 0))
        else:
            operands.append((kind, size_bytes, 0, 0, a, b, c, d, e))
    return RawInsn(ident, at, size, raw[:size], _text(mnemonic), _text(op_str),
                   bytes(detail[_PREFIX_AT:_PREFIX_AT + 4]), capstone.CS_GRP_BRANCH_RELATIVE in groups[:group_count],
                   tuple(operands))


def _pointer_at(address: int) -> int:
    """The pointer stored at host ``address`` (capstone allocates the detail whenever details are on)."""
    pointer = ctypes.c_void_p.from_address(address).value
    if not pointer:
        raise MemoryError("capstone gave an instruction without its details")
    return pointer


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode()


__all__ = ["OPERAND_IMM", "OPERAND_MEM", "OPERAND_REG", "Disassembler", "RawInsn"]
