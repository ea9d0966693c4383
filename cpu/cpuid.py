"""What the CPU says it is: CPU levels and the CPUID leaves (Intel SDM Vol. 2A, "CPUID", tables 3-8 to 3-12;
AMD64 APM Vol. 3, appendix E; the x86-64 psABI, 3.1.1 "Processor Architecture", microarchitecture levels).

A CPU level (``--cpu``, or ``EMU_CPU``) is a set of feature names:

* ``x86-64-v1``: the baseline every x86-64 CPU has (FPU, CX8, CMOV, FXSR, MMX, SSE, SSE2, SYSCALL);
* ``x86-64-v2``: v1 + CX16, LAHF/SAHF in 64-bit mode, POPCNT, SSE3, SSSE3, SSE4.1, SSE4.2;
* ``x86-64-v3``: v2 + AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT, MOVBE, XSAVE (with OSXSAVE);
* ``max`` (the default): everything emu implements, adding AES, PCLMULQDQ, SHA, ADX, RDRAND,
  RDSEED, RDPID, FSGSBASE, XSAVEOPT and XSAVEC.

The rule: CPUID advertises a feature when the level includes it *and* emu implements it, i.e.
some instruction is registered with it (``cpu.semantics.FEATURES``) or it is one of the system
features the MMU, ``cpu.msr`` and the baseline semantics implement (:data:`SYSTEM`).  The
translator asks :meth:`CpuLevel.semantic` for each instruction and raises #UD for one whose feature
the level lacks, except where an older CPU gives the bytes another meaning: F3 0F BC (TZCNT) is BSF
without BMI1, F3 0F BD (LZCNT) is BSR without LZCNT, since such a CPU ignores the F3 prefix (SDM
Vol. 2B, TZCNT and LZCNT).

Leaf 0x16 (processor frequency information) reports a base and maximum frequency of 1000 MHz and a bus of
100 MHz: one retired instruction is one nanosecond (``devices.clock``), the TSC's rate.  Linux 6.1 takes an
Intel CPU's frequency from this leaf when the maximum basic leaf reaches it (``cpu_khz_from_cpuid`` in
arch/x86/kernel/tsc.c) instead of calibrating against the PIT (``quick_pit_calibrate``: ~16,600 reads of
port 0x42 and 17 ms of virtual time in a boot of the default guest).  Leaves 0xE to 0x15 read as zero (leaf
0x15's zero ratio means "not enumerated").

Not advertised because not modelled: the local APIC and x2APIC, TSC-deadline, MTRRs, MCE/MCA, DE,
SEP (SYSENTER), MONITOR/MWAIT, PCID/INVPCID, SMEP/SMAP/UMIP, the speculation controls, AVX-512 and a
hypervisor.  Linux then runs in PIC mode.

Who the CPU says it is.  The vendor is ``GenuineIntel`` on the machine and in user mode.  A vendor is needed
that glibc knows: its dynamic loader reads leaf 1, where CMOV and SSE2 are, only for Intel, AMD and Zhaoxin
(sysdeps/x86/cpu-features.c), and otherwise refuses every program built for the x86-64 baseline ("CPU ISA
level is lower than required"); an initramfs-tools initrd loads its modules with such programs (udevd, kmod's
``modprobe``).  Intel rather than AMD because of what Linux 6.1 then runs (arch/x86/kernel/cpu/intel.c,
common.c, bugs.c): for this signature ``early_init_intel`` reads IA32_MISC_ENABLE (unlocking CPUID levels
with ``msr_clear_bit``, a safe access, then the fast-strings bit with a plain ``rdmsrl``) and the microcode
revision (``intel_get_microcode_revision``: WRMSR 0 to IA32_BIOS_SIGN_ID, CPUID 1, RDMSR); the microcode
driver of a ``CONFIG_MICROCODE`` kernel (Debian's generic one, not its cloud one) reads IA32_PLATFORM_ID;
``init_ia32_feat_ctl``, ``init_intel_misc_features`` (MSR_PLATFORM_INFO, CPUID faulting), split-lock
detection, TSX control, intel_idle and the P6/architectural PMU are probed with ``rdmsrl_safe`` or not
reached without their CPUID bits or model, and get #GP or nothing.  ``cpu.msr`` has those three MSRs as
hardware does.  AMD's ``init_amd`` needs more (HWCR, DE_CFG, SYSCFG and family-specific MSRs, topology leaves)
and selects AMD-only mitigations (SRSO, TSA).

The signature, family 6 model 15 stepping 0, was chosen against Linux's model checks: family 6 with model >=
0x0E gets a constant TSC (true here: one nanosecond per instruction) and model >= 15 keeps PAT (older P6 models
lose it to an erratum); model 15 (a Core 2 "Merom" number) is in none of Linux's lists that key a workaround,
a PMU driver or a vulnerability on the model (the P6 PMU models, split lock, RETBLEED, SRBDS, GDS, ITS, MMIO
stale data, the spectre-microcode blacklist; the self-snoop erratum list only clears SELFSNOOP, which is not
advertised), and stepping 0 is meant to match no published microcode update, so that a loader finds none to
apply (not checked against the intel-microcode package's list; the initrds tried held no microcode).
Linux therefore treats it as an old Intel CPU with every speculation bug (Meltdown, hence page-table
isolation, as it did for the earlier unknown vendor ``GenuineEmu64``), no PMU driver ("unsupported p6 CPU model
15") and no intel_pstate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cache

from cpu import xsave
from cpu.semantics import FEATURES, SEMANTICS, Semantic, load_all
from cpu.state import XCR0_AVX, XCR0_SSE, XCR0_X87

VENDOR = b"GenuineIntel"
"""What leaf 0 returns, on the machine and in user mode alike (see the module docstring for why Intel)."""
FAMILY, MODEL, STEPPING = 6, 15, 0
"""Leaf 1 EAX's signature: family 6, model 15 (0x0F), stepping 0 (see the module docstring)."""
BRAND = b"emu x86-64 instructional CPU".ljust(48, b"\0")
MAX_LEAF = 0x16
FREQUENCY_MHZ, BUS_MHZ = 1000, 100
"""Leaf 0x16: the nominal frequency (one instruction a nanosecond) and bus frequency (see the module docstring)."""
MAX_EXTENDED_LEAF = 0x8000_0008


class Reg(Enum):
    EAX = 0
    EBX = 1
    ECX = 2
    EDX = 3


@dataclass(frozen=True)
class Bit:
    """Where CPUID reports a feature: leaf, subleaf, register and bit number."""

    leaf: int
    subleaf: int
    reg: Reg
    bit: int


def _bits(leaf: int, subleaf: int, reg: Reg, **bits: int) -> dict[str, Bit]:
    return {name: Bit(leaf, subleaf, reg, bit) for name, bit in bits.items()}


FEATURE_BITS: dict[str, Bit] = {
    # Leaf 1 EDX (SDM Vol. 2A, table 3-11).
    **_bits(1, 0, Reg.EDX, fpu=0, pse=3, tsc=4, msr=5, pae=6, cx8=8, pge=13, cmov=15, pat=16, clflush=19,
            mmx=23, fxsr=24, sse=25, sse2=26),
    # Leaf 1 ECX (table 3-10).
    **_bits(1, 0, Reg.ECX, sse3=0, pclmulqdq=1, ssse3=9, fma=12, cx16=13, sse4_1=19, sse4_2=20, movbe=22,
            popcnt=23, aes=25, xsave=26, osxsave=27, avx=28, f16c=29, rdrand=30),
    # Leaf 7 subleaf 0 EBX and ECX (table 3-8, "Structured Extended Feature Flags"); nothing of EDX is modelled.
    # fdp_excptn_only (6) and fpcsds (13): the x87 updates FDP only on an unmasked exception and stores FCS/FDS as
    # zero (cpu/semantics/fpu.py), as this machine's processor does.
    **_bits(7, 0, Reg.EBX, fsgsbase=0, bmi1=3, avx2=5, fdp_excptn_only=6, bmi2=8, fpcsds=13, rdseed=18, adx=19,
            sha=29),
    **_bits(7, 0, Reg.ECX, rdpid=22),
    # Leaf 0xD subleaf 1 EAX (table 3-8, "Processor Extended State Enumeration", sub-leaf 1).
    **_bits(0xD, 1, Reg.EAX, xsaveopt=0, xsavec=1),
    # Leaf 0x8000_0001 ECX and EDX (table 3-8; AMD APM E.4.2): ABM is AMD's name for LZCNT.
    **_bits(0x8000_0001, 0, Reg.ECX, lahf_lm=0, lzcnt=5),
    **_bits(0x8000_0001, 0, Reg.EDX, syscall=11, nx=20, pdpe1gb=26, rdtscp=27, lm=29),
}

SYSTEM = frozenset({"fpu", "pse", "tsc", "msr", "pae", "cx8", "pge", "cmov", "pat", "clflush", "fxsr", "sse",
                    "sse2", "syscall", "nx", "pdpe1gb", "rdtscp", "lm", "fdp_excptn_only", "fpcsds"})
"""Features implemented by the MMU, ``cpu.msr`` and the baseline semantics (registered without a feature),
so always implemented.  OSXSAVE is not a feature of its own: it mirrors CR4.OSXSAVE while XSAVE is advertised."""

V1 = SYSTEM | {"mmx"}
V2 = V1 | {"cx16", "lahf_lm", "popcnt", "sse3", "sse4_1", "sse4_2", "ssse3"}
V3 = V2 | {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave"}
MAX = V3 | {"aes", "pclmulqdq", "sha", "adx", "rdrand", "rdseed", "rdpid", "fsgsbase", "xsaveopt", "xsavec"}

LEVEL_FEATURES: dict[str, frozenset[str]] = {
    "x86-64-v1": frozenset(V1), "x86-64-v2": frozenset(V2), "x86-64-v3": frozenset(V3), "max": frozenset(MAX)}
"""The levels ``--cpu`` takes, by name."""
DEFAULT_LEVEL = "max"

OLDER_MEANING: dict[str, str] = {"tzcnt": "bsf", "lzcnt": "bsr"}
"""Instructions a CPU without their feature executes as another (it ignores the F3 prefix)."""

CR4_FSGSBASE = 1 << 16
CR4_OSXSAVE = 1 << 18


@cache
def implemented() -> frozenset[str]:
    """The features emu implements: those some registered instruction needs, and :data:`SYSTEM`."""
    load_all()
    return SYSTEM | frozenset(FEATURES.values())


@dataclass(frozen=True)
class CpuLevel:
    """A CPU level: its name and the features it includes (implemented or not)."""

    name: str
    features: frozenset[str]

    def advertised(self) -> frozenset[str]:
        """The features CPUID reports: included by the level and implemented."""
        return self.features & implemented()

    def has(self, feature: str) -> bool:
        return feature in self.features and feature in implemented()

    def semantic(self, mnemonic: str) -> tuple[Semantic | None, str]:
        """The semantics the translator runs for ``mnemonic`` on this CPU; None when there are none, with
        why when the level lacks the instruction's feature (else "")."""
        feature = FEATURES.get(mnemonic)
        if feature is not None and feature not in self.features:
            older = OLDER_MEANING.get(mnemonic)
            if older is not None:
                return SEMANTICS[older], ""
            return None, f"{mnemonic} needs {feature}, which --cpu {self.name} lacks"
        return SEMANTICS.get(mnemonic), ""

    def cpuid(self, leaf: int, subleaf: int, cr4: int = 0) -> tuple[int, int, int, int]:
        """EAX, EBX, ECX, EDX of a leaf; ``cr4``: the CR4 value OSXSAVE mirrors.  Unknown leaves read as zero
        (Intel's rule that a leaf beyond the maximum reads as the highest basic leaf is not modelled)."""
        regs = [0, 0, 0, 0]
        if leaf == 0:
            words = [int.from_bytes(VENDOR[i:i + 4], "little") for i in (0, 4, 8)]
            return MAX_LEAF, words[0], words[2], words[1]
        if leaf == 1:
            regs[Reg.EAX.value] = (FAMILY << 8) | (MODEL << 4) | STEPPING
            regs[Reg.EBX.value] = (8 << 8) | (1 << 16)             # CLFLUSH line 64 bytes, 1 logical CPU
        elif leaf == 0x16:
            regs[:3] = [FREQUENCY_MHZ, FREQUENCY_MHZ, BUS_MHZ]                 # base, maximum, bus (MHz)
        elif leaf == 0x8000_0000:
            regs[Reg.EAX.value] = MAX_EXTENDED_LEAF
        elif 0x8000_0002 <= leaf <= 0x8000_0004:
            part = BRAND[(leaf - 0x8000_0002) * 16:][:16]
            words = [int.from_bytes(part[i:i + 4], "little") for i in range(0, 16, 4)]
            return words[0], words[1], words[2], words[3]
        elif leaf == 0x8000_0008:
            regs[Reg.EAX.value] = 0x3028                            # 40 physical, 48 linear address bits
        elif leaf == 0xD and self.has("xsave"):                     # the XSAVE components and area (cpu.xsave)
            regs = list(xsave.leaf(subleaf, supported=XCR0_X87 | XCR0_SSE | (XCR0_AVX if self.has("avx") else 0)))
        subleaf = subleaf if leaf in (7, 0xD) else 0
        for name in self.advertised():
            bit = FEATURE_BITS.get(name)
            if bit is not None and (bit.leaf, bit.subleaf) == (leaf, subleaf):
                regs[bit.reg.value] |= 1 << bit.bit
        if leaf == 1 and self.has("xsave") and cr4 & CR4_OSXSAVE:
            regs[Reg.ECX.value] |= 1 << FEATURE_BITS["osxsave"].bit
        return regs[0], regs[1], regs[2], regs[3]

    def register(self, leaf: int, reg: Reg) -> int:
        """One register of a leaf (subleaf 0, CR4.OSXSAVE clear): ``emu.user``'s AT_HWCAP is leaf 1 EDX."""
        return self.cpuid(leaf, 0)[reg.value]


class UnknownLevel(ValueError):
    """A ``--cpu`` (or ``EMU_CPU``) value that names no level."""


def level(name: str = DEFAULT_LEVEL) -> CpuLevel:
    """The CPU level called ``name`` (one of :data:`LEVEL_FEATURES`), with the semantics registry loaded."""
    features = LEVEL_FEATURES.get(name)
    if features is None:
        raise UnknownLevel(f"--cpu takes one of {', '.join(LEVEL_FEATURES)}, not {name!r}")
    load_all()
    return CpuLevel(name, features)

