"""Masked vector memory access: VMASKMOVPS/PD and VPMASKMOVD/Q, MASKMOVDQU and VMASKMOVDQU, the gathers
(VGATHERxxx, VPGATHERxxx).

Intel SDM Vol. 2B/2C, the pages of VMASKMOV, VPMASKMOV, MASKMOVDQU, VGATHERDPS/DPD,
VGATHERQPS/QPD, VPGATHERDD/DQ, VPGATHERQD/QQ, and Vol. 2A, 2.3.12 (VSIB
memory addressing).  An element's mask is the top bit of the same element of
the mask register.

* A masked load reads only the selected elements (the others are zero) and a
  masked store writes only the selected ones; an element whose mask bit is
  clear never faults.  A faulting store writes nothing: every selected
  element is translated for writing before the first is written.
* MASKMOVDQU xmm1, xmm2 (and VMASKMOVDQU) stores the bytes of xmm1 whose byte of xmm2 has its top bit
  set to DS:RDI (EDI with a 67H prefix; an FS or GS prefix adds that base).  Whether bytes it does not
  write may fault the SDM leaves to the processor; this CPU does as the host measured
  (``tests/semantics/test_avx.py``): the whole 16 bytes are translated for writing first, so a
  store touching an unmapped page faults, having written nothing, whatever the mask.
* A gather loads element j from base + sign-extended index[j] * scale +
  displacement, in element order, for each element whose mask bit is set,
  and clears that mask element once it is loaded; at the end the whole mask
  register is zero.  A fault on element j delivers with the elements before
  it gathered and their mask bits cleared, so the instruction resumes where
  it stopped, as the SDM says.  #UD when two of the destination, index and
  mask registers are the same.

They touch memory element by element, so they are calls (``cpu.semantics.CALLS``)
that read and write the registers in ``CpuState`` themselves.

Not modelled: the order of a gather's element loads on a real CPU (only the
order of faults is architectural); MASKMOVDQU's non-temporal hint; a 32-bit address size (67H prefix) for a
gather's element addresses (they are computed with 64 bits).
"""

from __future__ import annotations

from dataclasses import replace

from cpu.decoder import Kind, legacy_prefixes
from cpu.exceptions import GuestFault, Vector
from cpu.memory import WRITE
from cpu.semantics import call, semantics, vex

MASK64 = (1 << 64) - 1


@call
def masked_load(cpu, address: int, mask: int, dst: int, width: int, bits: int) -> None:
    """Load the elements of YMM ``dst`` whose bit is set in ``mask``; the others and the bits above ``bits`` are 0."""
    value = 0
    for j in range(bits // width):
        if mask >> j & 1:
            element = cpu.mem.read((address + width // 8 * j) & MASK64, width // 8)
            value |= int.from_bytes(element, "little") << (width * j)
    cpu.state.set_ymm(dst, value)


@call
def masked_store(cpu, address: int, mask: int, src: int, width: int, bits: int) -> None:
    """Store the elements of YMM ``src`` whose bit is set in ``mask``, all or (on a fault) none."""
    value, size = cpu.state.ymm(src), width // 8
    selected = [j for j in range(bits // width) if mask >> j & 1]
    for j in selected:
        for byte in ((address + size * j) & MASK64, (address + size * j + size - 1) & MASK64):
            cpu.mem.entry(byte, WRITE)
    for j in selected:
        element = (value >> (width * j)) & ((1 << width) - 1)
        cpu.mem.write((address + size * j) & MASK64, element.to_bytes(size, "little"))


@semantics("vmaskmovps", "vmaskmovpd", feature="avx")
@semantics("vpmaskmovd", "vpmaskmovq", feature="avx2")
def maskmov(ops, insn, dst, mask, src):
    """VMASKMOVPS ymm1, ymm2, m256 (load) / m256, ymm1, ymm2 (store): elements where ymm2's (the mask's) top
    bits are set."""
    vex.check(ops)
    width = 64 if insn.mnemonic.endswith(("pd", "q")) else 32
    bits = mask.size
    parts = vex.halves(ops, insn, mask)
    selected = ops.helper("movmsk", parts[0], width)
    if len(parts) > 1:
        selected = ops.or_(selected, ops.shl(ops.helper("movmsk", parts[1], width), 128 // width, 64))
    if dst.kind is Kind.MEM:
        ops.call("masked_store", ops.address(dst), selected, vex.number(src), width, bits)
    else:
        ops.call("masked_load", ops.address(src), selected, vex.number(dst), width, bits)


@semantics("maskmovdqu")
@semantics("vmaskmovdqu", feature="avx")
def maskmovdqu(ops, insn, src, mask):
    """MASKMOVDQU xmm1, xmm2: the bytes of xmm1 whose byte of xmm2 has its top bit set, stored at DS:RDI."""
    if insn.mnemonic == "vmaskmovdqu":
        vex.check(ops)
    prefixes = legacy_prefixes(insn.raw)
    address = ops.reg("rdi")
    if 0x67 in prefixes:
        address = ops.trunc(address, 32)
    segments = [p for p in prefixes if p in (0x64, 0x65)]
    if segments:                                        # the last segment prefix counts
        address = ops.add(address, ops.reg("fs_base" if segments[-1] == 0x64 else "gs_base"), 64)
    selected = ops.helper("movmsk", ops.read(mask), 8)
    ops.call("byte_masked_store", address, selected, vex.number(src))


@call
def byte_masked_store(cpu, address: int, mask: int, src: int) -> None:
    """Store the bytes of XMM ``src`` whose bit is set in ``mask`` once all 16 bytes are writable."""
    value = cpu.state.xmm(src)
    for byte in (address, (address + 15) & MASK64):
        cpu.mem.entry(byte, WRITE)
    for j in range(16):
        if mask >> j & 1:
            cpu.mem.write((address + j) & MASK64, bytes([value >> (8 * j) & 0xFF]))


@call
def gather(cpu, base: int, shape: int, registers: int) -> None:
    """Gather into YMM ``dst`` (see the module docstring).

    ``shape``: scale | index width << 8 | element width << 16 | element count << 24;
    ``registers``: dst | index << 8 | mask << 16 (register numbers).
    """
    s = cpu.state
    scale, index_width, width, count = shape & 0xFF, shape >> 8 & 0xFF, shape >> 16 & 0xFF, shape >> 24 & 0xFF
    dst, index_reg, mask_reg = registers & 0xFF, registers >> 8 & 0xFF, registers >> 16 & 0xFF
    indices, element = s.ymm(index_reg), (1 << width) - 1
    value = s.ymm(dst) & ((1 << (width * count)) - 1)
    mask = s.ymm(mask_reg) & ((1 << (width * count)) - 1)
    for j in range(count):
        if not mask >> (width * j + width - 1) & 1:
            continue
        index = (indices >> (index_width * j)) & ((1 << index_width) - 1)
        index -= (index >> (index_width - 1)) << index_width
        address = (base + index * scale) & MASK64
        try:
            loaded = int.from_bytes(cpu.mem.read(address, width // 8), "little")
        except GuestFault:
            s.set_ymm(dst, value)               # the elements before j are gathered and unmasked
            s.set_ymm(mask_reg, mask)
            raise
        value = (value & ~(element << (width * j))) | (loaded << (width * j))
        mask &= ~(element << (width * j))
    s.set_ymm(dst, value)
    s.set_ymm(mask_reg, 0)


_GATHERS = {"vgatherdps": (32, 32), "vgatherdpd": (32, 64), "vgatherqps": (64, 32), "vgatherqpd": (64, 64),
            "vpgatherdd": (32, 32), "vpgatherdq": (32, 64), "vpgatherqd": (64, 32), "vpgatherqq": (64, 64)}
"""Mnemonic: (index width, element width)."""


@semantics(*_GATHERS, feature="avx2")
def gather_insn(ops, insn, dst, memory, mask):
    """VPGATHERDD ymm1, [base + ymm2 * scale + disp], ymm3: the elements of ymm1 whose ymm3 mask bit is set."""
    vex.check(ops)
    index_width, width = _GATHERS[insn.mnemonic]
    index_reg = int(memory.index[3:])
    numbers = (vex.number(dst), index_reg, vex.number(mask))
    if len(set(numbers)) < 3:
        ops.fault(Vector.UD, detail=f"{insn.mnemonic}: destination, index and mask registers must differ")
        return
    index_bits = 256 if memory.index.startswith("ymm") else 128
    count = min(dst.size // width, index_bits // index_width)
    base = ops.address(replace(memory, index=""))
    shape = memory.scale | index_width << 8 | width << 16 | count << 24
    ops.call("gather", base, shape, numbers[0] | numbers[1] << 8 | numbers[2] << 16)
