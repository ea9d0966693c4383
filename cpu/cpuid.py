"""What the CPU says it is: CPUID leaves (Intel SDM Vol. 2A, CPUID; AMD64 APM Vol. 3, appendix E).

Only what the semantics implement is advertised: the x86-64 baseline
(``x86-64-v1`` without MMX: FPU, TSC, CX8, CMOV, SSE/SSE2, FXSR,
SYSCALL, NX, LM), plus CX16 and POPCNT which are implemented.  No APIC
(Linux then runs in PIC mode), no XSAVE, no AVX, no BMI: ``tzcnt`` then runs
as ``bsf``, as it does on such hardware.

System features the MMU and ``cpu.msr`` implement: PSE, PAE, PGE, PAT, MSR,
RDTSCP and 1 GiB pages (PDPE1GB).  Not advertised because not modelled: the
local APIC and x2APIC, TSC-deadline, MTRRs, MCE/MCA, DE, SEP (SYSENTER),
MONITOR/MWAIT, PCID/INVPCID, SMEP/SMAP/UMIP, FSGSBASE, the speculation
controls, and a hypervisor.
"""

from __future__ import annotations

from cpu import xsave

VENDOR = b"GenuineEmu64"[:12]

# Leaf 1 EDX (SDM Vol. 2A, table 3-11).
FPU, PSE, TSC, MSR, PAE, CX8, PGE, CMOV, PAT, CLFSH, FXSR, SSE, SSE2 = (
    1 << 0, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 8, 1 << 13, 1 << 15, 1 << 16, 1 << 19, 1 << 24, 1 << 25, 1 << 26)
LEAF1_EDX = FPU | PSE | TSC | MSR | PAE | CX8 | PGE | CMOV | PAT | CLFSH | FXSR | SSE | SSE2
# Leaf 1 ECX (table 3-10): SSE3 off, CX16 on, POPCNT on.
CX16, POPCNT = 1 << 13, 1 << 23
LEAF1_ECX = CX16 | POPCNT
# Extended leaf 0x8000_0001 EDX/ECX (AMD APM E.4.2): SYSCALL, NX, 1 GiB pages, RDTSCP, LM; LAHF/SAHF in 64-bit mode.
SYSCALL, NX, PDPE1GB, RDTSCP, LM = 1 << 11, 1 << 20, 1 << 26, 1 << 27, 1 << 29
EXT1_EDX = SYSCALL | NX | PDPE1GB | RDTSCP | LM
LAHF_LM = 1 << 0
EXT1_ECX = LAHF_LM

BRAND = b"emu x86-64 instructional CPU".ljust(48, b"\0")


def _regs(text: bytes) -> tuple[int, int, int, int]:
    words = [int.from_bytes(text[i:i + 4], "little") for i in range(0, 16, 4)]
    return words[0], words[1], words[2], words[3]


def cpuid(leaf: int, subleaf: int) -> tuple[int, int, int, int]:
    """EAX, EBX, ECX, EDX for a leaf; unknown leaves read as zero (as Intel's beyond-max rule is not modelled)."""
    vendor = int.from_bytes(VENDOR[0:4], "little"), int.from_bytes(VENDOR[4:8], "little"), \
        int.from_bytes(VENDOR[8:12], "little")
    if leaf == 0:
        return 0xD, vendor[0], vendor[2], vendor[1]
    if leaf == 1:
        family_model = (6 << 8) | (0xF << 4)          # family 6, model 15
        return family_model, (8 << 8) | (1 << 16), LEAF1_ECX, LEAF1_EDX   # CLFLUSH line 64 bytes, 1 logical CPU
    if leaf == 0xD:
        return xsave.leaf(subleaf)
    if leaf == 0x8000_0000:
        return 0x8000_0008, 0, 0, 0
    if leaf == 0x8000_0001:
        return 0, 0, EXT1_ECX, EXT1_EDX
    if 0x8000_0002 <= leaf <= 0x8000_0004:
        part = BRAND[(leaf - 0x8000_0002) * 16:][:16]
        return _regs(part)
    if leaf == 0x8000_0008:
        return 0x3028, 0, 0, 0                         # 40 physical, 48 linear address bits
    return 0, 0, 0, 0
