"""Model-specific registers: what RDMSR and WRMSR reach (Intel SDM Vol. 4, ch. 2; Vol. 3A 2.2.1, 5.8.8;
AMD APM Vol. 2, appendix A).

Only the MSRs a 64-bit kernel on this CPU uses exist; every other index
raises #GP(0) as on hardware, which is what Linux's ``rdmsr_safe`` probes
expect (the fault is delivered through the IDT to an exception fixup).  The
values live in :class:`cpu.state.CpuState`.

========================  ==========================================================
IA32_TSC (0x10)           reads the virtual TSC (``icount + tsc_offset``); a write moves ``tsc_offset``
IA32_PLATFORM_ID (0x17)   read-only zero: platform 0 in bits 52:50, what Linux's Intel microcode loader matches
IA32_APIC_BASE (0x1B)     0xFEE00000 with the BSP bit and the enable bit clear: no local APIC is advertised
IA32_SYSENTER_* (0x174-6) storage only (Linux writes them; SYSENTER itself is not advertised)
IA32_BIOS_SIGN_ID (0x8B)  bits 63:32 read the microcode revision (:data:`MICROCODE_REVISION`) as after the
                          CPUID leaf 1 the SDM requires before the read; writes (Linux writes 0 first) are ignored
IA32_MTRRCAP (0xFE),      read as zero (MTRRs are not advertised), read-only
IA32_MTRR_DEF_TYPE
IA32_MISC_ENABLE (0x1A0)  powers on with fast strings enabled and BTS and PEBS unavailable (no debug store);
                          only the fast-strings bit is writable, a write changing any other bit is #GP
IA32_PAT (0x277)          each byte must be a valid memory type (0, 1, 4-7), else #GP
IA32_EFER                 SCE, LME, LMA (read-only here), NXE; LME cannot change while paging is on
STAR, LSTAR, CSTAR,       the SYSCALL/SYSRET targets and flag mask; LSTAR/CSTAR must be canonical,
SFMASK                    SFMASK's upper half is reserved
FS_BASE, GS_BASE,         segment bases (canonical); SWAPGS exchanges the last two
KERNEL_GS_BASE
TSC_AUX (0xC0000103)      what RDTSCP returns in ECX; bits 63:32 reserved
========================  ==========================================================

Not modelled: IA32_SPEC_CTRL and the other speculation-control MSRs (their
CPUID bits are clear, so they #GP), machine-check MSRs, performance counters,
IA32_FEATURE_CONTROL (0x3A; it exists only with VMX or SMX, neither of which
CPUID reports, and Linux's ``init_ia32_feat_ctl`` reads it with ``rdmsrl_safe``),
MSR_PLATFORM_INFO and MSR_MISC_FEATURES_ENABLES (probed with ``rdmsrl_safe``),
the microcode update trigger IA32_BIOS_UPDT_TRIG (0x79).  Which of these a
Linux 6.1 kernel touches on this CPU is in ``cpu/cpuid.py``'s docstring.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from cpu.exceptions import GuestFault, Vector, is_canonical
from cpu.mmu import CR0_PG

MASK64 = (1 << 64) - 1


class Msr(IntEnum):
    TSC = 0x10
    PLATFORM_ID = 0x17
    APIC_BASE = 0x1B
    BIOS_SIGN_ID = 0x8B
    MTRRCAP = 0xFE
    SYSENTER_CS = 0x174
    SYSENTER_ESP = 0x175
    SYSENTER_EIP = 0x176
    MISC_ENABLE = 0x1A0
    PAT = 0x277
    MTRR_DEF_TYPE = 0x2FF
    EFER = 0xC000_0080
    STAR = 0xC000_0081
    LSTAR = 0xC000_0082
    CSTAR = 0xC000_0083
    SFMASK = 0xC000_0084
    FS_BASE = 0xC000_0100
    GS_BASE = 0xC000_0101
    KERNEL_GS_BASE = 0xC000_0102
    TSC_AUX = 0xC000_0103


class Efer:
    """IA32_EFER bits (SDM Vol. 3A, 2.2.1)."""

    SCE = 1 << 0    # SYSCALL/SYSRET enabled
    LME = 1 << 8    # long mode enabled
    LMA = 1 << 10   # long mode active (the processor sets it)
    NXE = 1 << 11   # execute-disable bit of paging entries enabled


EFER_WRITABLE = Efer.SCE | Efer.LME | Efer.LMA | Efer.NXE

APIC_DEFAULT = 0xFEE0_0000 | (1 << 8)
"""The xAPIC's default base and BSP flag; the enable bit (11) stays clear: the CPU has no local APIC."""
APIC_ENABLE = 1 << 11

MICROCODE_REVISION = 1
"""The microcode revision IA32_BIOS_SIGN_ID reports (what /proc/cpuinfo's "microcode" line shows), as qemu's
emulated CPUs report: no microcode update has been loaded (``cpu/cpuid.py`` on the signature's stepping)."""


class MiscEnable:
    """IA32_MISC_ENABLE bits (SDM Vol. 4, table 2-2); ``cpu.state.MISC_ENABLE_RESET`` is the power-on value."""

    FAST_STRING = 1 << 0            # fast REP MOVS/STOS; Linux clears REP_GOOD and ERMS without it
    BTS_UNAVAILABLE = 1 << 11       # read-only: no branch trace store
    PEBS_UNAVAILABLE = 1 << 12      # read-only: no precise event-based sampling

STORED: dict[int, str] = {
    Msr.SYSENTER_CS: "sysenter_cs", Msr.SYSENTER_ESP: "sysenter_esp", Msr.SYSENTER_EIP: "sysenter_eip",
    Msr.STAR: "star",
}
"""MSRs that are plain storage: any 64-bit value."""

CANONICAL: dict[int, str] = {
    Msr.LSTAR: "lstar", Msr.CSTAR: "cstar", Msr.FS_BASE: "fs_base", Msr.GS_BASE: "gs_base",
    Msr.KERNEL_GS_BASE: "kernel_gs_base",
}
"""MSRs that hold a linear address: a non-canonical write is #GP(0)."""

LOW_HALF: dict[int, str] = {Msr.SFMASK: "sfmask", Msr.TSC_AUX: "tsc_aux"}
"""MSRs whose bits 63:32 are reserved."""

PAT_TYPES = frozenset({0, 1, 4, 5, 6, 7})
"""UC, WC, WT, WP, WB, UC- (SDM Vol. 3A, 12.12.2); 2 and 3 are reserved."""


def _no_such(index: int, write: bool) -> GuestFault:
    verb = "WRMSR to" if write else "RDMSR of"
    return GuestFault(Vector.GP, 0, detail=f"{verb} unimplemented MSR {index:#x}")


def read_msr(cpu: Any, index: int) -> int:
    """RDMSR: the value of MSR ``index``, or #GP(0) when it does not exist here."""
    s = cpu.state
    match index:
        case Msr.TSC:
            return (s.icount + s.tsc_offset) & MASK64
        case Msr.PLATFORM_ID:
            return 0
        case Msr.APIC_BASE:
            return s.apic_base or APIC_DEFAULT
        case Msr.BIOS_SIGN_ID:
            return MICROCODE_REVISION << 32
        case Msr.MISC_ENABLE:
            return s.misc_enable
        case Msr.MTRRCAP | Msr.MTRR_DEF_TYPE:
            return 0
        case Msr.PAT:
            return s.pat
        case Msr.EFER:
            return s.efer
        case _ if index in STORED:
            return getattr(s, STORED[index])
        case _ if index in CANONICAL:
            return getattr(s, CANONICAL[index])
        case _ if index in LOW_HALF:
            return getattr(s, LOW_HALF[index])
    raise _no_such(index, False)


def write_msr(cpu: Any, index: int, value: int) -> None:
    """WRMSR: set MSR ``index``, #GP(0) for a missing MSR, a read-only one or a reserved bit."""
    s = cpu.state
    match index:
        case Msr.TSC:
            s.tsc_offset = (value - s.icount) & MASK64
        case Msr.APIC_BASE:
            if value & APIC_ENABLE:
                raise GuestFault(Vector.GP, 0, detail="IA32_APIC_BASE: there is no local APIC to enable")
            s.apic_base = value
        case Msr.BIOS_SIGN_ID:
            pass
        case Msr.MISC_ENABLE:
            if (value ^ s.misc_enable) & ~MiscEnable.FAST_STRING & MASK64:
                raise GuestFault(Vector.GP, 0, detail=f"IA32_MISC_ENABLE {value:#x}: only fast strings (bit 0) "
                                 "can change here")
            s.misc_enable = value
        case Msr.PAT:
            if any((value >> (8 * i)) & 0xFF not in PAT_TYPES for i in range(8)):
                raise GuestFault(Vector.GP, 0, detail=f"IA32_PAT {value:#x} names a reserved memory type")
            s.pat = value
        case Msr.EFER:
            _write_efer(cpu, value)
        case _ if index in STORED:
            setattr(s, STORED[index], value)
        case _ if index in CANONICAL:
            if not is_canonical(value):
                raise GuestFault(Vector.GP, 0, detail=f"MSR {index:#x}: {value:#x} is not canonical")
            setattr(s, CANONICAL[index], value)
        case _ if index in LOW_HALF:
            if value >> 32:
                raise GuestFault(Vector.GP, 0, detail=f"MSR {index:#x}: bits 63:32 are reserved")
            setattr(s, LOW_HALF[index], value)
        case _:
            raise _no_such(index, True)


def _write_efer(cpu: Any, value: int) -> None:
    s = cpu.state
    if value & ~EFER_WRITABLE:
        raise GuestFault(Vector.GP, 0, detail=f"IA32_EFER: reserved bits in {value:#x}")
    if (value ^ s.efer) & Efer.LME and s.cr0 & CR0_PG:
        raise GuestFault(Vector.GP, 0, detail="IA32_EFER.LME cannot change while paging is enabled")
    new = (value & ~Efer.LMA) | (s.efer & Efer.LMA)
    changed = new ^ s.efer
    s.efer = new
    if changed & Efer.NXE:        # XD bits change meaning: every cached translation may be wrong
        cpu.mem.flush_tlb()
