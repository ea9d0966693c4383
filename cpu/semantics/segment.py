"""Selectors at work outside MOV: LFS, LGS and LSS, the far CALL and JMP through memory (FF /3, FF /5),
and the descriptor queries LAR and LSL.

Intel SDM Vol. 2A/2B, the LDS/LES/LFS/LGS/LSS, CALL, JMP, LAR and LSL pages ("far call/jump in IA-32e
mode"), and Vol. 3A, 3.4.5 (segment descriptors), 3.5 (system descriptor types) and 5.8 (privilege
checks on control transfers).

The operand is a far pointer ``m16:16``, ``m16:32`` or ``m16:64``: the offset first, its size the operand
size (LFS r32, m16:32; a 66H prefix gives m16:16, REX.W m16:64), then the 16-bit selector.  capstone
reports sizes that are not these, so they are computed here from the destination (LFS) or the prefixes
(CALL, JMP; 32 bits by default in 64-bit mode, like RETF).

- LFS/LGS/LSS load the segment register as MOV does (``privileged.load_segment``: the descriptor
  checks, the FS or GS base), then the register with the offset; a refused selector changes neither.
- A far CALL or JMP checks the selector's GDT descriptor as the SDM does for a code segment: a null
  selector is #GP(0); a selector past the GDT's limit, a descriptor that is not a code segment, a
  conforming one with DPL > CPL, a non-conforming one with RPL > CPL or DPL != CPL are #GP(selector); a
  segment not present is #NP(selector).  CS becomes the selector with RPL = CPL.  The offset is the new
  RIP (zero-extended; a non-canonical 64-bit one is #GP(0)).  CALL then pushes CS (zero-extended to the
  operand size) and the return RIP, each an operand-size slot, in one write that either completes or
  faults; RETF (``privileged.far_return``) pops them.

- LAR and LSL never fault on the selector: when it names a GDT descriptor within the limit, visible at
  the current privilege (a conforming code segment always; others with DPL >= CPL and DPL >= RPL) and of
  a type they accept (code and data; LDT and available or busy 64-bit TSS; LAR also the 64-bit call
  gate), ZF is set and the destination gets the access rights (bytes 5 and 6 of the descriptor, masked
  with 00FFFF00H; 16 bits: FF00H) or the byte-granular limit; otherwise ZF is cleared and the destination
  is left alone, upper half included (measured on the host, ``tests/semantics/test_segment.py``).

Not modelled: call gates, task gates and TSS selectors (no privilege change or task switch through a far
transfer: #GP(selector)); compatibility mode (a code segment with L = 0 is refused with #GP(selector)
instead of being entered); the LDT (``privileged.gdt_entry``); the descriptor's accessed bit.  User mode
has no GDT (GDTR's limit is 0), so there every non-null selector is #GP.
"""

from __future__ import annotations

from cpu.decoder import operand_size_16
from cpu.descriptors import SegmentDescriptor
from cpu.exceptions import GuestFault, Vector, is_canonical
from cpu.flags import Flag
from cpu.memory import MASK64
from cpu.semantics import call, semantics
from cpu.semantics.privileged import gdt_entry
from cpu.state import SEGMENTS


def _rex_w(raw: bytes) -> bool:
    """Is the byte before the FF opcode a REX prefix with W set?"""
    at = raw.find(b"\xff")
    return at > 0 and raw[at - 1] & 0xF8 == 0x48


def far_size(insn) -> int:
    """The operand size of a far CALL or JMP through memory: 64 with REX.W, 16 with 66H, else 32."""
    if _rex_w(insn.raw):
        return 64
    return 16 if operand_size_16(insn.raw) else 32


@semantics("lfs", "lgs", "lss")
def load_far_pointer(ops, insn, dst, src):
    """LFS r, m16:xx: the selector into FS (GS, SS), then the offset into r."""
    address = ops.address(src)
    offset = ops.load(address, dst.size)
    selector = ops.load(ops.add(address, dst.size // 8, 64), 16)
    ops.call("load_segment", SEGMENTS.index(insn.mnemonic[1:]), selector)
    ops.write(dst, offset)


def _gp(selector: int, detail: str) -> GuestFault:
    return GuestFault(Vector.GP, selector & 0xFFFC, detail=detail)


@call
def far_transfer(cpu, address: int, size: int, pushes: int, next_rip: int) -> int:
    """A far JMP or (``pushes``) CALL through the far pointer at linear ``address``: the new RIP."""
    s, mem = cpu.state, cpu.mem
    n = size // 8
    raw = mem.read(address, n + 2)
    offset, selector = int.from_bytes(raw[:n], "little"), int.from_bytes(raw[n:], "little")
    if not selector & 0xFFFC:
        raise GuestFault(Vector.GP, 0, detail="far transfer to a null selector")
    desc = SegmentDescriptor.from_buffer_copy(gdt_entry(cpu, selector, 8)[1])
    if not (desc.code_or_data and desc.code):
        raise _gp(selector, f"far transfer to {selector:#x}: not a code segment (gates and TSSs are not modelled)")
    if desc.conforming_code and desc.dpl > s.cpl:
        raise _gp(selector, f"far transfer to {selector:#x}: conforming DPL {desc.dpl} above CPL {s.cpl}")
    if not desc.conforming_code and (selector & 3 > s.cpl or desc.dpl != s.cpl):
        raise _gp(selector, f"far transfer to {selector:#x}: RPL or DPL {desc.dpl} against CPL {s.cpl}")
    if not desc.present:
        raise GuestFault(Vector.NP, selector & 0xFFFC, detail=f"far transfer to {selector:#x}: not present")
    if not desc.long_mode:
        raise _gp(selector, f"far transfer to {selector:#x}: compatibility mode is not modelled")
    if not is_canonical(offset):
        raise GuestFault(Vector.GP, 0, detail=f"far transfer to non-canonical RIP {offset:#x}")
    if pushes:
        rsp = (s.rsp - 2 * n) & MASK64
        mem.write(rsp, (next_rip & ((1 << size) - 1)).to_bytes(n, "little") + s.cs.to_bytes(n, "little"))
        s.rsp = rsp
    s.cs = (selector & 0xFFFC) | s.cpl
    return offset


@semantics("lcall", "ljmp")
def far_indirect(ops, insn, target):
    """CALL m16:xx (FF /3), JMP m16:xx (FF /5): see the module docstring."""
    ops.jump(ops.call("far_transfer", ops.address(target), far_size(insn), int(insn.mnemonic == "lcall"),
                      insn.next))


SYSTEM_TYPES = {"lar": frozenset({0x2, 0x9, 0xB, 0xC}), "lsl": frozenset({0x2, 0x9, 0xB})}
"""The system descriptor types LAR and LSL accept in 64-bit mode: LDT, 64-bit TSS (available, busy), call gate."""


@call
def descriptor_query(cpu, selector: int, limit: int) -> int:
    """LAR (``limit`` 0) or LSL: bit 32 set when the selector passes (see the module docstring), with the
    access rights or the limit below it."""
    s = cpu.state
    if not selector & 0xFFFC or selector & 4 or (selector & 0xFFF8) + 7 > s.gdtr_limit:
        return 0
    raw = gdt_entry(cpu, selector, 8)[1]
    desc = SegmentDescriptor.from_buffer_copy(raw)
    if desc.code_or_data:
        visible = desc.conforming_code or desc.dpl >= max(s.cpl, selector & 3)
    else:
        visible = desc.type in SYSTEM_TYPES["lsl" if limit else "lar"] and desc.dpl >= max(s.cpl, selector & 3)
    if not visible:
        return 0
    value = desc.limit if limit else int.from_bytes(raw[4:8], "little") & 0x00FF_FF00
    return 1 << 32 | value


@semantics("lar", "lsl")
def query(ops, insn, dst, src):
    """LAR r, r/m16 and LSL r, r/m16: ZF and, when it is set, the access rights or limit in r."""
    packed = ops.call("descriptor_query", ops.trunc(ops.read(src), 16), int(insn.mnemonic == "lsl"))
    valid = ops.shr(packed, 32)
    value = ops.trunc(packed, 32)
    if dst.size == 16:
        ops.write(dst, ops.select(valid, ops.trunc(value, 16), ops.read(dst)))
    else:
        ops.set_reg(dst.reg, ops.select(valid, value, ops.reg(dst.reg)))
    ops.set_rflags(ops.shl(valid, Flag.ZF.bit_length() - 1, 64), int(Flag.ZF))
