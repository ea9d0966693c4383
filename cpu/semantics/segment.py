"""Far pointers in memory: LFS, LGS and LSS, and the far CALL and JMP through memory (FF /3, FF /5).

Intel SDM Vol. 2A/2B, the LDS/LES/LFS/LGS/LSS, CALL and JMP pages ("far call/jump in IA-32e mode"), and
Vol. 3A, 3.4.5 (segment descriptors) and 5.8 (privilege checks on control transfers).

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

Not modelled: call gates, task gates and TSS selectors (no privilege change or task switch through a far
transfer: #GP(selector)); compatibility mode (a code segment with L = 0 is refused with #GP(selector)
instead of being entered); the LDT (``privileged.gdt_entry``); the descriptor's accessed bit.  User mode
has no GDT (GDTR's limit is 0), so there every non-null selector is #GP.
"""

from __future__ import annotations

from cpu.decoder import operand_size_16
from cpu.descriptors import SegmentDescriptor
from cpu.exceptions import GuestFault, Vector, is_canonical
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
