"""VEX-encoded operands: YMM registers as two 128-bit halves, the VEX #UD rules, memory alignment.

Intel SDM Vol. 1, 14.1-14.3 (the 256-bit YMM registers, VEX.128 and
VEX.256 forms), Vol. 2A, 2.3 (the VEX prefix) and 2.8 (exception class
tables), and Vol. 1, 13.3 (XCR0).

A YMM register lives in two 128-bit state fields: ``xmm{i}`` (bits 127:0,
shared with the legacy SSE instructions) and ``ymmh{i}`` (bits 255:128).
Legacy SSE writes leave ``ymmh{i}`` alone; every VEX write of a register
zeroes the bits above its vector length (a VEX.128 destination clears
``ymmh{i}``).

Rules applied here, before an instruction's computation:

* #UD unless CR4.OSXSAVE = 1 and XCR0 enables both SSE and AVX state;
* a VEX memory operand needs no alignment, except the aligned moves
  (VMOVDQA, VMOVAPS, VMOVAPD, VMOVNTxx), which #GP(0) unless aligned to the
  operand's size.

Checked elsewhere: a 66, F2, F3 or LOCK prefix before VEX (``cpu.decoder``;
capstone itself rejects REX before VEX, VEX.L = 1 where L must be 0, and
VEX.vvvv != 1111b where it is unused).  Not modelled: #NM for CR0.TS.

No semantics are registered here.
"""

from __future__ import annotations

from cpu.decoder import Kind, Operand
from cpu.exceptions import Vector
from cpu.state import CR4_OSXSAVE, XCR0_AVX, XCR0_SSE

MASK128 = (1 << 128) - 1
YMM_STATE = XCR0_SSE | XCR0_AVX

ALIGNED = frozenset({"vmovdqa", "vmovaps", "vmovapd", "vmovntdq", "vmovntps", "vmovntpd", "vmovntdqa"})
"""VEX instructions whose memory operand must be aligned to its size (their pages' exception tables)."""


def check(ops) -> None:
    """#UD unless the OS enabled AVX: CR4.OSXSAVE and XCR0's SSE and AVX bits (SDM Vol. 2A, 2.8)."""
    enabled = ops.eq(ops.and_(ops.reg("xcr0"), YMM_STATE), YMM_STATE)
    osxsave = ops.ne(ops.and_(ops.reg("cr4"), CR4_OSXSAVE), 0)
    ops.fault_if(ops.eq(ops.and_(enabled, osxsave), 0), Vector.UD)


def number(opnd: Operand) -> int:
    """The register number of an XMM or YMM operand."""
    return int(opnd.reg[3:])


def address(ops, insn, opnd: Operand):
    """Linear address of a VEX memory operand: #GP(0) when an aligned move's is not a multiple of its size."""
    addr = ops.address(opnd)
    if insn.mnemonic in ALIGNED:
        ops.fault_if(ops.ne(ops.and_(addr, opnd.size // 8 - 1), 0), Vector.GP, 0)
    return addr


def halves(ops, insn, opnd: Operand) -> list:
    """An operand as 128-bit values, low half first: two for YMM or m256, one otherwise (m32, m64: zero-extended)."""
    if opnd.kind is Kind.MEM:
        value = ops.load(address(ops, insn, opnd), opnd.size)
        if opnd.size == 256:
            return [ops.trunc(value, 128), ops.shr(value, 128)]
        return [value]
    if opnd.kind is Kind.IMM:
        return [opnd.imm]
    if opnd.size == 256:
        return [ops.reg(f"xmm{number(opnd)}"), ops.reg(f"ymmh{number(opnd)}")]
    if opnd.size == 128:
        return [ops.reg(f"xmm{number(opnd)}")]
    return [ops.read(opnd)]


def read(ops, insn, opnd: Operand):
    """An operand's whole value (256 bits for YMM and m256)."""
    parts = halves(ops, insn, opnd)
    return parts[0] if len(parts) == 1 else join(ops, parts)


def join(ops, parts: list):
    """128-bit halves, low first, as one value."""
    value = parts[0]
    for i, part in enumerate(parts[1:], 1):
        value = ops.or_(value, ops.shl(part, 128 * i, 128 * (i + 1)))
    return value


def write_halves(ops, insn, dst: Operand, parts: list) -> None:
    """Write 128-bit halves to a register (clearing bits 255:128 after one half) or to memory."""
    if dst.kind is Kind.MEM:
        ops.store(address(ops, insn, dst), dst.size, join(ops, parts) if len(parts) > 1 else parts[0])
        return
    if dst.size < 128:
        ops.write(dst, parts[0])
        return
    i = number(dst)
    ops.set_reg(f"xmm{i}", parts[0])
    ops.set_reg(f"ymmh{i}", parts[1] if len(parts) > 1 else 0)


def write(ops, insn, dst: Operand, value) -> None:
    """Write a whole value (``dst.size`` bits) to a register or memory."""
    if dst.size == 256 and dst.kind is Kind.REG:
        write_halves(ops, insn, dst, [ops.trunc(value, 128), ops.shr(value, 128)])
    else:
        write_halves(ops, insn, dst, [value])
