"""Exceptions and interrupts: what they are, and how system mode delivers them
(Intel SDM Vol. 3A ch. 6; ch. 5.8.8 for SYSCALL/SYSRET; AMD APM Vol. 2, 8.9 and 6.1).

A :class:`GuestFault` is a Python exception that carries an x86 exception
vector, its error code and, for #PF, the faulting linear address (what CR2
receives).  Semantics and memory raise it; the run loop catches it, rolls the
CPU back to the faulting instruction and hands it on: user mode turns it into
a POSIX signal, system mode calls :func:`deliver`.

The functions the machine calls between runs of the CPU (``cpu`` is the
:class:`cpu.interp.Interpreter`, RIP already where the SDM wants it saved):

* :func:`deliver` -- an exception, an external interrupt or a software
  interrupt through the 64-bit IDT (SDM 6.14): the 16-byte gate, its type,
  P and DPL checks, a stack switch to RSP0 of the TSS on a privilege change
  or to an IST stack, the 16-byte-aligned frame SS, RSP, RFLAGS, CS, RIP and
  the error code, CR2 for #PF, then TF, NT, RF (and IF through an interrupt
  gate) cleared.  A fault while delivering is delivered in turn, or becomes a
  double fault by the rules of SDM 6.15 (table 6-5); a fault while delivering
  a double fault raises :class:`TripleFault`.
* :func:`syscall_entry` -- the system half of SYSCALL, after the instruction
  itself saved RIP and RFLAGS in RCX and R11.
* :func:`accepts_interrupt` -- IF = 1 and no STI/MOV SS shadow (SDM 6.8.3).

Instructions reach :func:`deliver` (INT n), :func:`iret` and :func:`sysret`
through calls in ``cpu.semantics.privileged``.

Not modelled: the target code segment's descriptor (the new CPL is the RPL
of the gate's selector, as it is for any sane IDT), NMI blocking, debug
exceptions and RFLAGS.RF on a restarted fault, the I/O permission bitmap,
32-bit gates and tasks (long mode only), SS and data-segment checks on IRET.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from cpu.descriptors import GATE_INTERRUPT, GATE_TRAP, Gate64, Tss64, read_system
from cpu.flags import Flag, read_rflags, write_rflags


class Vector(IntEnum):
    """Exception vectors (SDM Vol. 3A, table 6-1)."""

    DE = 0    # divide error: DIV/IDIV by zero or quotient overflow
    DB = 1    # debug
    NMI = 2
    BP = 3    # INT3
    OF = 4    # INTO with OF set
    BR = 5
    UD = 6    # invalid or unimplemented opcode
    NM = 7
    DF = 8    # double fault
    TS = 10
    NP = 11
    SS = 12
    GP = 13   # general protection: non-canonical address, privileged instruction
    PF = 14   # page fault: error code + CR2
    MF = 16
    AC = 17
    MC = 18
    XM = 19   # SIMD floating-point exception


ERROR_CODE = frozenset({Vector.DF, Vector.TS, Vector.NP, Vector.SS, Vector.GP, Vector.PF, Vector.AC})
"""Exceptions that push an error code (SDM 6.13), when the processor raises them (never through INT n)."""

CONTRIBUTORY = frozenset({Vector.DE, Vector.TS, Vector.NP, Vector.SS, Vector.GP})
"""Contributory exceptions (SDM 6.15, table 6-4); #PF is a class of its own, everything else is benign."""

TRAPS = frozenset({Vector.BP, Vector.OF, Vector.DB})
"""Exceptions reported after their instruction: INT3, INTO and INT1, the only source of #DB emu has (SDM 6.5)."""
SOFTWARE_TRAPS = frozenset({Vector.BP, Vector.OF})
"""The traps delivered as software interrupts, their gate's DPL checked (SDM 6.12.1.1): not INT1's #DB."""


class CodeWritten(Exception):  # noqa: N818 - an event, not an error
    """A store reached translated code: the running block ends at the next instruction boundary.

    Not a guest fault: the run loop writes back the state at that boundary (the same rollback as for a
    fault) and goes on with freshly translated code, so self-modifying code runs as on hardware.
    """

    vector = None


class PFError:
    """#PF error-code bits (SDM Vol. 3A, 4.7)."""

    P = 1 << 0      # 0: not-present page; 1: protection violation
    W = 1 << 1      # the access was a write
    U = 1 << 2      # the access came from CPL 3
    RSVD = 1 << 3   # a reserved bit was set in a paging entry
    I = 1 << 4      # the access was an instruction fetch  # noqa: E741


class GuestFault(Exception):
    """An x86 exception raised while executing guest code."""

    def __init__(self, vector: int, error_code: int | None = None,
                 address: int | None = None, detail: str = "") -> None:
        self.vector = Vector(vector)
        self.error_code = error_code
        self.address = address
        self.detail = detail
        super().__init__(self.describe())

    def describe(self) -> str:
        text = f"#{self.vector.name}"
        if self.error_code is not None:
            text += f" (error code {self.error_code:#x})"
        if self.address is not None:
            text += f" at address {self.address:#x}"
        if self.detail:
            text += f": {self.detail}"
        return text


class UndefinedOpcode(GuestFault):
    """#UD for bytes we cannot decode or an instruction without semantics."""

    def __init__(self, detail: str) -> None:
        super().__init__(Vector.UD, detail=detail)


def is_canonical(address: int) -> bool:
    """True when bits 63..47 are all equal (SDM Vol. 1, 3.3.7.1)."""
    top = address >> 47
    return top == 0 or top == 0x1FFFF


class TripleFault(Exception):
    """A fault while delivering a double fault: the processor shuts down (SDM 6.15, interrupt 8)."""


EFER_SCE = 1 << 0
RFLAGS_CLEARED_BY_DELIVERY = int(Flag.TF | Flag.NT | Flag.RF | Flag.VM)
"""Cleared on every delivery in IA-32e mode (SDM 6.14.2); an interrupt gate clears IF too."""
IRET_WRITABLE = int(Flag.CF | Flag.PF | Flag.AF | Flag.ZF | Flag.SF | Flag.TF | Flag.DF | Flag.OF | Flag.NT | Flag.RF
                    | Flag.AC | Flag.ID)
"""RFLAGS bits IRET restores at any CPL."""
SYSRET_RFLAGS = 0x3C7FD7
"""The R11 bits SYSRET loads into RFLAGS (SDM Vol. 2B, SYSRET): RF and VM are cleared."""


def accepts_interrupt(state: Any) -> bool:
    """True when a maskable interrupt may be delivered now: IF = 1 and no STI/MOV SS shadow (SDM 6.8.3)."""
    return bool(state.rflags & Flag.IF) and state.icount >= state.shadow_until


def deliver(cpu: Any, vector: int, error_code: int | None = None, *, software: bool = False,
            external: bool = False, fault: GuestFault | None = None) -> None:
    """Deliver ``vector`` through the IDT; RIP in ``cpu.state`` is the return address to save.

    ``software``: INT n (the gate's DPL is checked, no error code is pushed,
    and a fault while delivering is raised to the caller: it belongs to the
    INT instruction).  ``external``: a hardware interrupt from the interrupt
    controller (never an error code, benign for double faults).  ``fault``:
    the GuestFault the run loop returned; its address goes to CR2 for #PF,
    and an INT3 trap (#BP, RIP already past the one-byte INT3) is delivered
    as the software interrupt it is; INT1's #DB trap as a hardware exception.
    """
    s = cpu.state
    trap = fault is not None and fault.vector in TRAPS
    try:
        _deliver_once(cpu, vector, error_code, software=software or (trap and vector in SOFTWARE_TRAPS),
                      external=external, address=fault.address if fault is not None else None)
    except GuestFault as second:
        if software:
            raise
        if second.vector == Vector.PF and second.address is not None:
            s.cr2 = second.address          # loaded when the #PF is detected, even if it becomes #DF
        if trap:                    # the fault belongs to the INT3 or INT1 instruction: restart it after the handler
            s.rip -= 1
            deliver(cpu, second.vector, second.error_code, fault=second)
        elif vector == Vector.DF and not external:
            raise TripleFault(f"{second.describe()} while delivering a double fault") from second
        elif not external and _double_fault(vector, second.vector):
            deliver(cpu, Vector.DF, 0)
        else:
            deliver(cpu, second.vector, second.error_code, fault=second)


def _double_fault(first: int, second: int) -> bool:
    """SDM 6.15, table 6-5: which pairs of exceptions make a double fault."""
    if first == Vector.PF:
        return second == Vector.PF or second in CONTRIBUTORY
    return first in CONTRIBUTORY and second in CONTRIBUTORY


def _deliver_once(cpu: Any, vector: int, error_code: int | None, *, software: bool, external: bool,
                  address: int | None) -> None:
    """One attempt: every check and every push before any register changes (SDM 6.12.1, 6.14)."""
    s, mem = cpu.state, cpu.mem
    ext = 0 if software else 1             # the EXT bit of error codes about this event (SDM 6.13)
    idt_error = (vector << 3) | 2 | ext    # "IDT" bit: the error concerns gate ``vector``
    if 16 * vector + 15 > s.idtr_limit:
        raise GuestFault(Vector.GP, idt_error, detail=f"vector {vector:#x} is beyond the IDT limit")
    gate = Gate64.from_buffer_copy(read_system(cpu, s.idtr_base + 16 * vector, 16))
    if gate.type not in (GATE_INTERRUPT, GATE_TRAP):
        raise GuestFault(Vector.GP, idt_error, detail=f"IDT entry {vector:#x} is not a 64-bit gate")
    if software and gate.dpl < s.cpl:
        raise GuestFault(Vector.GP, idt_error, detail=f"INT {vector:#x} from CPL {s.cpl} through a DPL {gate.dpl} gate")
    if not gate.present:
        raise GuestFault(Vector.NP, idt_error, detail=f"IDT entry {vector:#x} is not present")
    selector, target = gate.selector, gate.offset
    new_cpl = selector & 3
    if not selector & 0xFFFC or new_cpl > s.cpl:
        raise GuestFault(Vector.GP, (selector & 0xFFFC) | ext, detail=f"gate {vector:#x} selector {selector:#x}")
    if not is_canonical(target):
        raise GuestFault(Vector.GP, ext, detail=f"gate {vector:#x} handler {target:#x} is not canonical")
    ist = gate.ist & 7
    if ist or new_cpl < s.cpl:
        tss = Tss64.from_buffer_copy(read_system(cpu, s.tss_base, 104))
        rsp = tss.ist[ist - 1] if ist else tss.rsp[new_cpl]
    else:
        rsp = s.rsp
    rsp &= ~0xF & 0xFFFF_FFFF_FFFF_FFFF
    frame = [s.rip, s.cs, read_rflags(s), s.rsp, s.ss]
    if vector in ERROR_CODE and not software and not external:
        frame.insert(0, error_code or 0)
    if vector == Vector.PF and not software and not external and address is not None:
        s.cr2 = address
    mem.switch_privilege(new_cpl)
    try:
        for value in reversed(frame):       # SS first, as the processor pushes: CR2 names the first push refused
            rsp = (rsp - 8) & 0xFFFF_FFFF_FFFF_FFFF
            mem.store(rsp, 64, value)
    except GuestFault:
        mem.switch_privilege(s.cpl)
        raise
    if new_cpl != s.cpl:
        s.ss = new_cpl                      # a null selector with RPL = the new CPL
    s.cs = (selector & 0xFFFC) | new_cpl
    s.cpl = new_cpl
    s.rsp = rsp
    s.rflags &= ~(RFLAGS_CLEARED_BY_DELIVERY | (int(Flag.IF) if gate.type == GATE_INTERRUPT else 0))
    s.rip = target


def iret(cpu: Any, size: int) -> int:
    """IRET/IRETD/IRETQ in 64-bit mode (SDM Vol. 2A, IRET): pop RIP, CS, RFLAGS, RSP, SS; return the new RIP.

    The new CPL is the popped CS's RPL and may not be lower than the current
    one.  RFLAGS.IF changes only when CPL <= IOPL, IOPL (and VIF/VIP) only
    at CPL 0; VM is never set (no virtual-8086 mode in IA-32e mode).
    """
    s, mem = cpu.state, cpu.mem
    n = size // 8
    raw = mem.read(s.rsp, 5 * n)
    rip, cs, flags, rsp, ss = (int.from_bytes(raw[i * n:(i + 1) * n], "little") for i in range(5))
    cs, ss = cs & 0xFFFF, ss & 0xFFFF
    new_cpl = cs & 3
    if not cs & 0xFFFC or new_cpl < s.cpl:
        raise GuestFault(Vector.GP, cs & 0xFFFC, detail=f"IRET to CS {cs:#x} from CPL {s.cpl}")
    if new_cpl == 3 and not ss & 0xFFFC:
        raise GuestFault(Vector.GP, 0, detail="IRET to CPL 3 with a null SS")
    if not is_canonical(rip):
        raise GuestFault(Vector.GP, 0, detail=f"IRET to non-canonical RIP {rip:#x}")
    old = read_rflags(s)
    writable = _popped_flags_mask(s.cpl, (old >> 12) & 3) & ((1 << size) - 1)
    write_rflags(s, (old & ~writable) | (flags & writable))
    s.cs, s.ss, s.rsp, s.cpl = cs, ss, rsp, new_cpl
    mem.switch_privilege(new_cpl)
    return rip


def _popped_flags_mask(cpl: int, iopl: int) -> int:
    mask = IRET_WRITABLE
    if cpl <= iopl:
        mask |= int(Flag.IF)
    if cpl == 0:
        mask |= int(Flag.IOPL | Flag.VIF | Flag.VIP)
    return mask


def syscall_entry(cpu: Any) -> None:
    """The rest of SYSCALL in system mode (SDM Vol. 2B, SYSCALL; 5.8.8): enter CPL 0 at LSTAR.

    The instruction already checked EFER.SCE (#UD), put the return RIP in
    RCX and RFLAGS in R11, and left RIP past itself.  CS = STAR[47:32],
    SS = STAR[47:32] + 8, RFLAGS &= ~SFMASK (and RF cleared).
    """
    s = cpu.state
    selector = (s.star >> 32) & 0xFFFF
    s.cs = selector & 0xFFFC
    s.ss = (selector + 8) & 0xFFFC
    s.cpl = 0
    write_rflags(s, read_rflags(s) & ~s.sfmask & ~int(Flag.RF))
    s.rip = s.lstar
    cpu.mem.switch_privilege(0)


def sysret(cpu: Any) -> int:
    """SYSRET to 64-bit code (SDM Vol. 2B, SYSRET): CPL 3 at RCX with RFLAGS from R11; return the new RIP.

    CS = STAR[63:48] + 16 and SS = STAR[63:48] + 8, both with RPL 3.  #UD
    when EFER.SCE = 0, #GP(0) at CPL > 0 or when RCX is not canonical (Intel
    checks before leaving ring 0).
    """
    s = cpu.state
    if not s.efer & EFER_SCE:
        raise GuestFault(Vector.UD, detail="SYSRET with EFER.SCE = 0")
    if s.cpl != 0:
        raise GuestFault(Vector.GP, 0, detail="SYSRET at CPL > 0")
    if not is_canonical(s.rcx):
        raise GuestFault(Vector.GP, 0, detail=f"SYSRET to non-canonical RIP {s.rcx:#x}")
    base = (s.star >> 48) & 0xFFFF
    s.cs = ((base + 16) & 0xFFFF) | 3
    s.ss = ((base + 8) & 0xFFFF) | 3
    write_rflags(s, (s.r11 & SYSRET_RFLAGS) | int(Flag.RESERVED1))
    s.cpl = 3
    cpu.mem.switch_privilege(3)
    return s.rcx
