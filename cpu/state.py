"""Architectural state of one x86-64 logical processor, in one ctypes Structure.

Follows the Intel SDM Vol. 1 ch. 3 (basic execution environment) and Vol. 3A
ch. 2 (system registers).  Every backend (the interpreter, the symbolic
renderer, a future LLVM JIT) and the debugger read and write this one block of
memory, so a native function handed its address sees the same fields.

Arithmetic flags are lazy (see ``cpu.flags``): ``cc_op``/``cc_size`` name the
last flag-setting operation and ``cc_a``/``cc_b``/``cc_r``/``cc_c`` hold its
operands; ``rflags`` holds the other bits (DF, IF, TF, ...) and, when
``cc_op`` is ``CcOp.FLAGS``, nothing arithmetic (the flags then live in
``cc_a``).  Use :func:`cpu.flags.read_rflags` for the architectural value.

System state (SDM Vol. 3A ch. 2): control registers, EFER, the descriptor
table registers, TR and the TSS base LTR found, the debug registers (stored,
never acted on), the MSRs ``cpu.msr`` implements, and ``shadow_until``: the
retired-instruction count before which maskable interrupts are inhibited
after STI or MOV SS (SDM Vol. 3A, 6.8.3).

The x87 registers are the physical R0-R7 (SDM Vol. 1, 8.1.2), each as ``mm<i>`` (the 64-bit
significand, which is also MMX register MMi, 9.5) and ``fpr<i>_exp`` (sign and biased
exponent); ``fsw`` holds TOP, ``ftw`` the abridged tag byte (``cpu.semantics.fpu``).

AVX state (SDM Vol. 1, 14.1 and 13.1): ``ymmh{i}_lo``/``ymmh{i}_hi`` hold bits
255:128 of YMM{i} (bits 127:0 are XMM{i}), and ``xcr0`` is XCR0, the
extended-feature enable register XSETBV writes.  They come after every older
field, so no field's offset moved when they were added.

The x87's last-instruction pointers (SDM Vol. 1, 8.1.8-8.1.9) come last: ``fip``, ``fdp`` and ``fop``
as the images store them, and ``x87_opcode``/``x87_operand``, the FOP and operand offset of the
x87 instruction running now, which ``fdp`` and ``fop`` take when it raises an unmasked exception.

Not modelled here: segment descriptor caches beyond the FS/GS bases.
"""

from __future__ import annotations

import ctypes

GPR64 = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
"""General-purpose registers in encoding order (SDM Vol. 2A, table 2-2)."""

SEGMENTS = ("es", "cs", "ss", "ds", "fs", "gs")

CR4_OSXMMEXCPT = 1 << 10
"""CR4.OSXMMEXCPT: the OS handles #XM; without it an unmasked SIMD floating-point exception is #UD
(SDM Vol. 3A, 6.15)."""
CR4_OSFXSR = 1 << 9
"""CR4.OSFXSR: the OS saves SSE state with FXSAVE (Linux sets it, and OSXMMEXCPT, on every CPU with SSE)."""
CR4_OSXSAVE = 1 << 18
"""CR4.OSXSAVE: the OS supports XSAVE; XGETBV, XSETBV and the VEX instructions #UD without it (SDM Vol. 3A, 2.5)."""
XCR0_X87, XCR0_SSE, XCR0_AVX = 1 << 0, 1 << 1, 1 << 2
"""XCR0 bits: the state components XSAVE manages and that VEX needs enabled (SDM Vol. 1, 13.3)."""
XCR0_RESET = XCR0_X87
"""XCR0 after power-up or reset (SDM Vol. 3A, table 10-1): x87 only."""
MISC_ENABLE_RESET = 1 << 0 | 1 << 11 | 1 << 12
"""IA32_MISC_ENABLE as a BIOS leaves it: fast strings enabled, BTS and PEBS unavailable (``cpu.msr.MiscEnable``)."""

_U64 = ctypes.c_uint64
_U32 = ctypes.c_uint32
_U16 = ctypes.c_uint16


class CpuState(ctypes.Structure):
    """All architectural registers; field names are the SDM's register names."""

    _fields_ = (
        [(name, _U64) for name in GPR64]
        + [("rip", _U64), ("rflags", _U64)]
        + [("cc_op", _U32), ("cc_size", _U32),
           ("cc_a", _U64), ("cc_b", _U64), ("cc_r", _U64), ("cc_c", _U64)]
        + [(name, _U16) for name in SEGMENTS]
        + [("fs_base", _U64), ("gs_base", _U64), ("kernel_gs_base", _U64)]
        + [(f"xmm{i}_{half}", _U64) for i in range(16) for half in ("lo", "hi")]
        + [("mxcsr", _U32), ("fcw", _U16), ("fsw", _U16), ("ftw", _U16)]
        + [field for i in range(8) for field in ((f"mm{i}", _U64), (f"fpr{i}_exp", _U16))]
        + [("cr0", _U64), ("cr2", _U64), ("cr3", _U64), ("cr4", _U64),
           ("cr8", _U64), ("efer", _U64), ("dr7", _U64), ("cpl", _U32)]
        + [("gdtr_base", _U64), ("gdtr_limit", _U32),
           ("idtr_base", _U64), ("idtr_limit", _U32),
           ("tr", _U16), ("ldtr", _U16), ("tss_base", _U64)]
        + [("star", _U64), ("lstar", _U64), ("cstar", _U64), ("sfmask", _U64),
           ("pat", _U64), ("tsc_offset", _U64), ("apic_base", _U64),
           ("misc_enable", _U64)]
        + [("icount", _U64)]
        + [("dr0", _U64), ("dr1", _U64), ("dr2", _U64), ("dr3", _U64), ("dr6", _U64),
           ("tsc_aux", _U64), ("sysenter_cs", _U64), ("sysenter_esp", _U64), ("sysenter_eip", _U64),
           ("shadow_until", _U64)]
        + [(f"ymmh{i}_{half}", _U64) for i in range(16) for half in ("lo", "hi")]
        + [("xcr0", _U64)]
        + [("fop", _U16), ("fip", _U64), ("fdp", _U64), ("x87_opcode", _U16), ("x87_operand", _U64)]
    )

    def reset_user(self) -> None:
        """Power-on values for a 64-bit user-mode process (SysV ABI initial state)."""
        ctypes.memset(ctypes.addressof(self), 0, ctypes.sizeof(self))
        self.rflags = 0x202          # IF set, bit 1 reserved-as-one
        self.mxcsr = 0x1F80          # all SIMD exceptions masked, round to nearest
        self.fcw = 0x037F            # x87 default control word
        self.cs, self.ss = 0x33, 0x2B  # Linux __USER_CS / __USER_DS
        self.cpl = 3
        self.efer = 0xD01            # what Linux enabled: SCE | LME | LMA | NXE
        # CR4.FSGSBASE (Linux >= 5.9): RDFSBASE and friends work at CPL 3; OSFXSR and OSXMMEXCPT: #XM is SIGFPE
        self.cr4 = 1 << 16 | CR4_OSXSAVE | CR4_OSFXSR | CR4_OSXMMEXCPT
        self.xcr0 = XCR0_X87 | XCR0_SSE | XCR0_AVX   # CR4.OSXSAVE and XCR0: Linux enables every XSAVE component
        self.cr0 = 0x20              # CR0.NE as under Linux: an unmasked x87 exception raises #MF (SIGFPE)

    def __init__(self) -> None:
        super().__init__()
        self.xcr0 = XCR0_RESET       # a machine's power-on values; every other field starts at zero
        self.misc_enable = MISC_ENABLE_RESET

    def xmm(self, i: int) -> int:
        """XMM register ``i`` as a 128-bit integer."""
        return getattr(self, f"xmm{i}_lo") | (getattr(self, f"xmm{i}_hi") << 64)

    def set_xmm(self, i: int, value: int) -> None:
        setattr(self, f"xmm{i}_lo", value & 0xFFFF_FFFF_FFFF_FFFF)
        setattr(self, f"xmm{i}_hi", (value >> 64) & 0xFFFF_FFFF_FFFF_FFFF)

    def ymm(self, i: int) -> int:
        """YMM register ``i`` as a 256-bit integer (XMM ``i`` in its low half)."""
        high = getattr(self, f"ymmh{i}_lo") | (getattr(self, f"ymmh{i}_hi") << 64)
        return self.xmm(i) | (high << 128)

    def set_ymm(self, i: int, value: int) -> None:
        self.set_xmm(i, value)
        setattr(self, f"ymmh{i}_lo", (value >> 128) & 0xFFFF_FFFF_FFFF_FFFF)
        setattr(self, f"ymmh{i}_hi", (value >> 192) & 0xFFFF_FFFF_FFFF_FFFF)
