"""System instructions of a 64-bit kernel: control and debug registers (SMSW and LMSW too), descriptor
tables, segment loads, TLB control, interrupt flag, port I/O, MSRs, and the privilege transitions IRET,
SYSRET, INT n and far RET (Intel SDM Vol. 2, each mnemonic's page; Vol. 3A ch. 2.5-2.8, 5.8-5.9, 6, 16.5
for I/O protection).

Privilege is a guest value, so every check is ``ops.fault_if`` on CPL (and
IOPL for CLI, STI, IN, OUT, INS, OUTS: #GP(0) when CPL > IOPL).  Work that
touches many registers, memory by linear address or the TLB is a ``@call``.
Every instruction here that changes CPL, paging, descriptor tables or the
interrupt flag ends its block, so the next block is looked up (and checked
against the fetch TLB) afresh.  STI and MOV SS end the run with the events
"sti" and "mov-ss": interrupts wait one more instruction (SDM 6.8.3).

Port I/O goes to ``cpu.io`` and ends the block, so a device's side effect
(an IRQ raised) is seen at once.  In user mode ``cpu.io`` is None and CPL 3
with IOPL 0 faults first.

Not modelled: the TSS I/O permission bitmap (CPL > IOPL is always #GP), the
LDT (LLDT only stores the selector; a selector with TI = 1 is #GP), debug
registers' effects (MOV DRn stores), CR8 as an interrupt priority (stored),
task switches, accessed bits in segment descriptors, and
XGETBV, MONITOR, MWAIT, INTO, which have no semantics and so raise #UD
(INTO is invalid in 64-bit mode anyway; the others are not advertised).
"""

from __future__ import annotations

from cpu import cpuid, exceptions, msr
from cpu.decoder import Kind, Operand, operand_size_16
from cpu.descriptors import TSS_AVAILABLE, TSS_BUSY, SegmentDescriptor, SystemDescriptor, read_system, write_system
from cpu.exceptions import GuestFault, Vector, is_canonical
from cpu.flags import Flag
from cpu.memory import MASK64
from cpu.mmu import CR0_PG, CR0_WP, CR4_PGE, MAXPHYADDR
from cpu.semantics import call, semantics
from cpu.semantics.system import read_tsc
from cpu.state import CR4_OSXSAVE, SEGMENTS

CR0_PE, CR0_TS, CR0_ET, CR0_NW, CR0_CD = 1, 1 << 3, 1 << 4, 1 << 29, 1 << 30
CR0_RESERVED = ~0xFFFF_FFFF & MASK64
CR4_PSE, CR4_PAE = 1 << 4, 1 << 5
CR4_SUPPORTED = (1 << 11) - 1 | CR4_OSXSAVE
"""VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT, and OSXSAVE (XSAVE, cpu.semantics.xsave): the bits this
CPU accepts."""
CR3_RESERVED = ~((1 << MAXPHYADDR) - 1) & MASK64
"""Bits 63:MAXPHYADDR of CR3 (no PCIDs, so bit 63 is reserved too)."""


def require_cpl0(ops) -> None:
    """#GP(0) unless CPL = 0 (SDM 5.9: privileged instructions)."""
    ops.fault_if(ops.ne(ops.reg("cpl"), 0), Vector.GP, 0)


def require_io_privilege(ops) -> None:
    """#GP(0) when CPL > IOPL (SDM 16.5.1); the TSS I/O bitmap is not consulted."""
    iopl = ops.and_(ops.shr(ops.reg("rflags"), 12), 3)
    ops.fault_if(ops.ult(iopl, ops.reg("cpl")), Vector.GP, 0)


def _gp(detail: str, code: int = 0) -> GuestFault:
    return GuestFault(Vector.GP, code, detail=detail)


# -- control and debug registers ----------------------------------------------------------------

def mov_system(ops, insn, dst, src) -> None:
    """MOV to or from CR0/2/3/4/8 or DR0-7 (``cpu.semantics.datamov`` hands these over)."""
    require_cpl0(ops)
    if dst.reg.startswith("cr"):
        ops.call("write_cr", int(dst.reg[2:]), ops.read(src))
    elif dst.reg.startswith("dr"):
        ops.set_reg(dst.reg, ops.read(src))
    else:
        ops.write(dst, ops.reg(src.reg))
    ops.jump(insn.next)


@call
def write_cr(cpu, n: int, value: int) -> None:
    """MOV CRn, r64 with its checks (SDM Vol. 2B, MOV--Move to/from Control Registers) and TLB effects (4.10.4)."""
    s, mem = cpu.state, cpu.mem
    if n == 0:
        if value & CR0_RESERVED or (value & CR0_PG and not value & CR0_PE) or (value & CR0_NW and not value & CR0_CD):
            raise _gp(f"CR0 {value:#x}: reserved bits or an invalid combination")
        if s.efer & msr.Efer.LMA and not value & CR0_PG:
            raise _gp("clearing CR0.PG in 64-bit mode")
        changed = (value ^ s.cr0) & (CR0_PG | CR0_WP | CR0_PE)
        s.cr0 = value | CR0_ET
        if changed:
            mem.flush_tlb()
    elif n == 2:
        s.cr2 = value
    elif n == 3:
        if value & CR3_RESERVED:
            raise _gp(f"CR3 {value:#x}: bits above MAXPHYADDR")
        s.cr3 = value
        mem.flush_tlb(keep_global=True)
    elif n == 4:
        if value & ~(CR4_SUPPORTED | (cpuid.CR4_FSGSBASE if cpu.level.has("fsgsbase") else 0)):
            raise _gp(f"CR4 {value:#x}: bits this CPU does not support")
        if s.efer & msr.Efer.LMA and not value & CR4_PAE:
            raise _gp("clearing CR4.PAE in 64-bit mode")
        changed = (value ^ s.cr4) & (CR4_PGE | CR4_PAE | CR4_PSE)
        s.cr4 = value
        if changed:
            mem.flush_tlb()
    else:
        if value >> 4:
            raise _gp(f"CR8 {value:#x}: bits 63:4 are reserved")
        s.cr8 = value


@semantics("smsw")
def smsw(ops, insn, dst):
    """SMSW r/m16: CR0's low 16 bits to memory or a 16-bit register; a 32- or 64-bit register gets CR0's low
    32 or 64 bits (the SDM leaves the bits above 15 undefined; processors store CR0's).  Allowed at any CPL:
    UMIP is not advertised.  User mode's CR0 is 0x20 (``CpuState.reset_user``), so a program reads that where
    under Linux it reads 0x80050033 (the kernel's CR0, or its UMIP emulation's stand-in)."""
    ops.write(dst, ops.trunc(ops.reg("cr0"), dst.size))


@semantics("lmsw")
def lmsw(ops, insn, src):
    """LMSW r/m16: CR0.MP, EM and TS from the source's bits 3:1; PE can be set, not cleared (CPL 0 only)."""
    require_cpl0(ops)
    cr0 = ops.reg("cr0")
    ops.set_reg("cr0", ops.or_(ops.and_(cr0, ~0xE & MASK64), ops.and_(ops.read(src), 0xF)))
    ops.jump(insn.next)


@semantics("clts")
def clts(ops, insn):
    require_cpl0(ops)
    ops.set_reg("cr0", ops.and_(ops.reg("cr0"), ~CR0_TS & MASK64))
    ops.jump(insn.next)


# -- descriptor tables and segments -------------------------------------------------------------

@semantics("lgdt", "lidt")
def load_descriptor_table(ops, insn, src):
    """LGDT/LIDT m16&64: limit, then base (SDM Vol. 2A, LGDT/LIDT)."""
    require_cpl0(ops)
    table = "gdtr" if insn.mnemonic == "lgdt" else "idtr"
    address = ops.address(src)
    limit = ops.load(address, 16)
    base = ops.load(ops.add(address, 2, 64), 64)
    ops.set_reg(f"{table}_limit", limit)
    ops.set_reg(f"{table}_base", base)
    ops.jump(insn.next)


@semantics("sgdt", "sidt")
def store_descriptor_table(ops, insn, dst):
    """SGDT/SIDT m16&64 (not privileged: UMIP is not advertised)."""
    table = "gdtr" if insn.mnemonic == "sgdt" else "idtr"
    address = ops.address(dst)
    ops.store(address, 16, ops.reg(f"{table}_limit"))
    ops.store(ops.add(address, 2, 64), 64, ops.reg(f"{table}_base"))


def gdt_entry(cpu, selector: int, size: int) -> tuple[int, bytes]:
    """The linear address and bytes of the GDT entry ``selector`` names; #GP(selector) past the limit or for the LDT."""
    s = cpu.state
    if selector & 4:
        raise _gp(f"selector {selector:#x} names the LDT (not modelled)", selector & 0xFFFC)
    offset = selector & 0xFFF8
    if offset + size - 1 > s.gdtr_limit:
        raise _gp(f"selector {selector:#x} is beyond the GDT limit", selector & 0xFFFC)
    address = s.gdtr_base + offset
    return address, read_system(cpu, address, size)


@call
def load_tr(cpu, selector: int) -> None:
    """LTR: TR and the TSS base from a 16-byte available-TSS descriptor, which becomes busy (SDM Vol. 2A, LTR)."""
    s = cpu.state
    if not selector & 0xFFFC:
        raise _gp("LTR with a null selector")
    address, raw = gdt_entry(cpu, selector, 16)
    desc = SystemDescriptor.from_buffer_copy(raw)
    if desc.low.code_or_data or desc.low.type != TSS_AVAILABLE:
        raise _gp(f"LTR {selector:#x}: not an available 64-bit TSS", selector & 0xFFFC)
    if not desc.low.present:
        raise GuestFault(Vector.NP, selector & 0xFFFC, detail=f"LTR {selector:#x}: TSS not present")
    write_system(cpu, address + 5, bytes([desc.low.access & ~0xF | TSS_BUSY]))
    s.tr = selector
    s.tss_base = desc.base


@semantics("ltr")
def ltr(ops, insn, src):
    require_cpl0(ops)
    ops.call("load_tr", ops.read(src))
    ops.jump(insn.next)


@semantics("lldt")
def lldt(ops, insn, src):
    """LLDT: the selector is kept; no LDT is ever used."""
    require_cpl0(ops)
    ops.set_reg("ldtr", ops.read(src))
    ops.jump(insn.next)


@semantics("str", "sldt")
def store_selector(ops, insn, dst):
    """STR/SLDT: a register destination gets the selector zero-extended, memory gets 16 bits."""
    ops.write(dst, ops.reg("tr" if insn.mnemonic == "str" else "ldtr"))


@call
def load_segment(cpu, index: int, selector: int) -> None:
    """MOV/POP to DS, ES, SS, FS or GS in 64-bit mode (SDM Vol. 2B, MOV and POP; Vol. 3A 3.4.4).

    A null selector is allowed except into SS at CPL 3 (or with RPL != CPL).
    Otherwise the GDT descriptor must be a present code or data segment;
    SS needs a writable data segment with RPL = DPL = CPL, the others a
    readable one with DPL >= max(CPL, RPL) (conforming code exempt).  Only
    FS and GS have a base in 64-bit mode: the descriptor's 32-bit base
    (0 for a null selector, as Intel processors do).
    """
    s = cpu.state
    name = SEGMENTS[index]
    rpl, base = selector & 3, 0
    if not selector & 0xFFFC:
        if name == "ss" and (s.cpl == 3 or rpl != s.cpl):
            raise _gp(f"null SS at CPL {s.cpl}")
    else:
        desc = SegmentDescriptor.from_buffer_copy(gdt_entry(cpu, selector, 8)[1])
        code = selector & 0xFFFC
        if name == "ss":
            if not (desc.code_or_data and desc.writable_data and rpl == s.cpl and desc.dpl == s.cpl):
                raise _gp(f"SS {selector:#x}: not a writable data segment at CPL {s.cpl}", code)
            if not desc.present:
                raise GuestFault(Vector.SS, code, detail=f"SS {selector:#x} not present")
        else:
            if not (desc.code_or_data and desc.readable):
                raise _gp(f"{name.upper()} {selector:#x}: not a readable segment", code)
            if not desc.conforming_code and desc.dpl < max(s.cpl, rpl):
                raise _gp(f"{name.upper()} {selector:#x}: DPL {desc.dpl} below CPL/RPL", code)
            if not desc.present:
                raise GuestFault(Vector.NP, code, detail=f"{name.upper()} {selector:#x} not present")
        base = desc.base
    setattr(s, name, selector)
    if name in ("fs", "gs"):
        setattr(s, f"{name}_base", base)


def mov_to_segment(ops, insn, dst, src) -> None:
    """MOV Sreg, r/m16 (``cpu.semantics.datamov`` hands these over); MOV CS is #UD."""
    if dst.reg == "cs":
        ops.fault(Vector.UD, detail="MOV to CS is invalid")
        return
    ops.call("load_segment", SEGMENTS.index(dst.reg), ops.trunc(ops.read(src), 16))
    if dst.reg == "ss":
        ops.event("mov-ss")
    ops.jump(insn.next)


@call
def verify_segment(cpu, selector: int, write: int) -> int:
    """VERR/VERW: 1 (ZF) when the segment could be read (written) at the current CPL (SDM Vol. 2B, VERR/VERW)."""
    s = cpu.state
    if not selector & 0xFFFC or selector & 4 or (selector & 0xFFF8) + 7 > s.gdtr_limit:
        return 0
    desc = SegmentDescriptor.from_buffer_copy(gdt_entry(cpu, selector, 8)[1])
    usable = desc.writable_data if write else desc.readable
    privileged = desc.conforming_code and not write or desc.dpl >= max(s.cpl, selector & 3)
    return int(desc.code_or_data and usable and privileged)


@semantics("verr", "verw")
def verify(ops, insn, src):
    zf = ops.call("verify_segment", ops.trunc(ops.read(src), 16), int(insn.mnemonic == "verw"))
    ops.set_rflags(ops.shl(zf, Flag.ZF.bit_length() - 1, 64), int(Flag.ZF))


@semantics("swapgs")
def swapgs(ops, insn):
    """Exchange GS.base and IA32_KERNEL_GS_BASE (SDM Vol. 2B, SWAPGS); CPL 0 only."""
    require_cpl0(ops)
    gs_base, kernel = ops.reg("gs_base"), ops.reg("kernel_gs_base")
    ops.set_reg("gs_base", kernel)
    ops.set_reg("kernel_gs_base", gs_base)


# -- TLB and caches ----------------------------------------------------------------------------

@call
def invlpg(cpu, address: int) -> None:
    cpu.mem.invlpg(address)


@semantics("invlpg")
def invlpg_insn(ops, insn, target):
    require_cpl0(ops)
    ops.call("invlpg", ops.address(target))
    ops.jump(insn.next)


@semantics("wbinvd", "invd")
def cache_flush(ops, insn):
    """No caches are modelled: only the privilege check remains."""
    require_cpl0(ops)
    ops.jump(insn.next)


# -- interrupt flag ----------------------------------------------------------------------------

@semantics("cli")
def cli(ops, insn):
    require_io_privilege(ops)
    ops.set_reg("rflags", ops.and_(ops.reg("rflags"), MASK64 ^ int(Flag.IF)))
    ops.jump(insn.next)


@semantics("sti")
def sti(ops, insn):
    """IF = 1; the machine sees the "sti" event and takes no interrupt before the next instruction."""
    require_io_privilege(ops)
    ops.set_reg("rflags", ops.or_(ops.reg("rflags"), int(Flag.IF)))
    ops.event("sti")
    ops.jump(insn.next)


# -- port I/O ----------------------------------------------------------------------------------

def _io_bus(cpu):
    if cpu.io is None:
        raise _gp("port I/O without an I/O bus")
    return cpu.io


@call
def port_in(cpu, port: int, size: int) -> int:
    return _io_bus(cpu).read(port, size // 8)


@call
def port_out(cpu, port: int, size: int, value: int) -> None:
    _io_bus(cpu).write(port, size // 8, value & ((1 << size) - 1))


@semantics("in")
def in_(ops, insn, dst, port):
    """IN AL/AX/EAX, imm8 or DX."""
    require_io_privilege(ops)
    ops.write(dst, ops.call("port_in", ops.trunc(ops.read(port), 16), dst.size))
    ops.jump(insn.next)


@semantics("out")
def out(ops, insn, port, src):
    """OUT imm8 or DX, AL/AX/EAX."""
    require_io_privilege(ops)
    ops.call("port_out", ops.trunc(ops.read(port), 16), src.size, ops.read(src))
    ops.jump(insn.next)


def _string_step(cpu, n: int) -> int:
    return -n if cpu.state.rflags & Flag.DF else n


def _string_io(cpu, repeat: int, element) -> None:  # noqa: ANN001
    """Run ``element()`` once, or RCX times under REP, storing RCX after each so a fault can restart."""
    s = cpu.state
    if not repeat:
        element()
        return
    while s.rcx:
        element()
        s.rcx -= 1


@call
def port_ins(cpu, size: int, repeat: int) -> None:
    """INS: [RDI] = port DX, then RDI steps by the element size (down when DF = 1)."""
    s, n, store = cpu.state, size // 8, cpu.mem.stores[size]

    def element() -> None:
        store(s.rdi, _io_bus(cpu).read(s.rdx & 0xFFFF, n))
        s.rdi = (s.rdi + _string_step(cpu, n)) & MASK64

    _string_io(cpu, repeat, element)


@call
def port_outs(cpu, size: int, segment: int, repeat: int) -> None:
    """OUTS: port DX = [DS/FS/GS:RSI], then RSI steps."""
    s, n, load = cpu.state, size // 8, cpu.mem.loads[size]
    base = (0, s.fs_base, s.gs_base)[segment]

    def element() -> None:
        _io_bus(cpu).write(s.rdx & 0xFFFF, n, load((s.rsi + base) & MASK64))
        s.rsi = (s.rsi + _string_step(cpu, n)) & MASK64

    _string_io(cpu, repeat, element)


@semantics("insb", "insw", "insd")
def ins(ops, insn, dst, port):
    require_io_privilege(ops)
    ops.call("port_ins", dst.size, int(insn.rep or insn.repne))
    ops.jump(insn.next)


@semantics("outsb", "outsw", "outsd")
def outs(ops, insn, port, src):
    require_io_privilege(ops)
    ops.call("port_outs", src.size, ("", "fs", "gs").index(src.seg), int(insn.rep or insn.repne))
    ops.jump(insn.next)


# -- MSRs and time -----------------------------------------------------------------------------

@call
def rdmsr(cpu) -> None:
    s = cpu.state
    value = msr.read_msr(cpu, s.rcx & 0xFFFF_FFFF)
    s.rax, s.rdx = value & 0xFFFF_FFFF, value >> 32


@call
def wrmsr(cpu) -> None:
    s = cpu.state
    msr.write_msr(cpu, s.rcx & 0xFFFF_FFFF, ((s.rdx & 0xFFFF_FFFF) << 32) | (s.rax & 0xFFFF_FFFF))


@semantics("rdmsr", "wrmsr")
def msr_access(ops, insn):
    require_cpl0(ops)
    ops.call(insn.mnemonic)
    ops.jump(insn.next)


@semantics("rdtscp")
def rdtscp_insn(ops, insn):
    """RDTSCP: the TSC in EDX:EAX and IA32_TSC_AUX in ECX."""
    read_tsc(ops)
    ops.set_reg("rcx", ops.and_(ops.reg("tsc_aux"), 0xFFFF_FFFF))


# -- privilege transitions ---------------------------------------------------------------------

@call
def iret(cpu, size: int) -> int:
    return exceptions.iret(cpu, size)


@semantics("iretq", "iretd", "iret")
def iret_insn(ops, insn):
    """IRET in 64-bit mode; ``cpu.exceptions.iret`` has the rules."""
    ops.jump(ops.call("iret", insn.opsize or 16))


@call
def sysret(cpu) -> int:
    return exceptions.sysret(cpu)


@semantics("sysretq")
def sysret_insn(ops, insn):
    ops.jump(ops.call("sysret"))


@call
def software_interrupt(cpu, vector: int, next_rip: int) -> int:
    """INT n through the IDT with RIP after the instruction saved; a fault while delivering belongs to INT n."""
    cpu.state.rip = next_rip
    exceptions.deliver(cpu, vector, software=True)
    return cpu.state.rip


@semantics("int")
def int_n(ops, insn, vector):
    ops.jump(ops.call("software_interrupt", vector.imm, insn.next))


@call
def far_return(cpu, size: int, release: int) -> int:
    """RET far (SDM Vol. 2B, RET): pop RIP and CS; to an outer level also RSP and SS.

    The new CPL is the popped CS's RPL; returning inward is #GP(selector).
    The code segment's descriptor is not consulted.
    """
    s, mem = cpu.state, cpu.mem
    n = size // 8
    raw = mem.read(s.rsp, 2 * n)
    rip, cs = int.from_bytes(raw[:n], "little"), int.from_bytes(raw[n:], "little") & 0xFFFF
    rpl = cs & 3
    if not cs & 0xFFFC or rpl < s.cpl:
        raise _gp(f"far return to CS {cs:#x} from CPL {s.cpl}", cs & 0xFFFC)
    if not is_canonical(rip):
        raise _gp(f"far return to non-canonical RIP {rip:#x}")
    rsp = (s.rsp + 2 * n + release) & MASK64
    if rpl > s.cpl:
        outer = mem.read(rsp, 2 * n)
        rsp, s.ss = int.from_bytes(outer[:n], "little"), int.from_bytes(outer[n:], "little") & 0xFFFF
        s.cpl = rpl
        mem.switch_privilege(rpl)
    s.cs, s.rsp = cs, rsp
    return rip


@semantics("retf", "retfq")
def retf(ops, insn, *release):
    """RETF / RETFQ [imm16]: 32-bit pops unless REX.W (RETFQ)."""
    ops.jump(ops.call("far_return", insn.opsize or 32, release[0].imm if release else 0))


# -- pushing and popping FS and GS (``cpu.semantics.stack`` hands these over) ------------------

def pop_segment(ops, insn, dst: Operand) -> None:
    """POP FS/GS: a 64-bit (16-bit with 0x66) slot; the selector is loaded as by MOV."""
    size = 16 if operand_size_16(insn.raw) else 64
    rsp = ops.reg("rsp")
    selector = ops.load(rsp, size)
    ops.call("load_segment", SEGMENTS.index(dst.reg), ops.trunc(selector, 16))
    ops.set_reg("rsp", ops.add(rsp, size // 8, 64))     # after the load: a refused selector leaves RSP alone


def is_system_register(opnd: Operand) -> bool:
    return opnd.kind is Kind.REG and opnd.reg[:2] in ("cr", "dr")
