"""The x87 register stack over ``CpuState``: TOP, tags, status bits, exceptions, environment images.

Intel SDM Vol. 1, 8.1 (the x87 execution environment): eight 80-bit *physical* registers
R0-R7, ST(i) being R((TOP + i) mod 8) with TOP in FSW bits 11-13 (8.1.2); the tag word
(8.1.7); the status word's condition codes, stack fault and exception flags (8.1.3); stack
overflow and underflow (8.5.1.1); the exception summary ES and B set whenever an unmasked
exception is pending (8.1.3.3, 8.6); and the environment and state images of FNSTENV/FLDENV
and FNSAVE/FRSTOR (8.1.10, figures 8-9 to 8-12).

Representation: ``CpuState`` holds R0-R7 in physical order as ``mm<i>`` (the significand, so
MMX register MMi is R_i's low 64 bits) and ``fpr<i>_exp``, ``ftw`` the *abridged* tag byte of the FXSAVE image
(bit i set: Ri is not empty).  The full two-bit tags (valid, zero, special, empty) are
computed from the contents when an image is written, as the processor does.

The last-instruction pointers (8.1.8-8.1.10): every x87 instruction but the control ones
(FNINIT, FNCLEX, FLDCW, FNSTCW, FNSTSW, FNSTENV, FLDENV, FNSAVE, FRSTOR, FWAIT: measured, FFREE,
FINCSTP, FDECSTP and FNOP do update them) is registered with :func:`x87`, which records its
address in ``fip`` when it completes without #MF.  FOP and FDP follow a current Intel CPU (the
host the tests ran on: CPUID.(EAX=7):EBX bit 6 FDP_EXCPTN_ONLY, no FOP compatibility mode): they
change only when an instruction raises an unmasked exception (:meth:`Fpu.signal`), to its opcode
and its memory operand's offset (FDP unchanged without one: measured).  FCS and FDS are stored as
zero (CPUID bit 13, "FCS and FDS deprecated", which this host sets); emu's CPUID reports neither
bit yet.

Not modelled: real-mode and virtual-8086 layouts of the images.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from cpu.decoder import Insn, Kind
from cpu.exceptions import GuestFault, Vector
from cpu.semantics import Semantic, semantics
from cpu.semantics import extended as X

# FSW bits (SDM Vol. 1, figure 8-4)
IE, DE, ZE, OE, UE, PE = X.IE, X.DE, X.ZE, X.OE, X.UE, X.PE
SF, ES = 0x40, 0x80
C0, C1, C2, C3 = 0x100, 0x200, 0x400, 0x4000
B = 0x8000
TOP_SHIFT = 11
EXCEPTIONS = 0x3F
CONDITION = C0 | C1 | C2 | C3

# FCW fields (SDM Vol. 1, figure 8-6)
FCW_PC_SHIFT, FCW_RC_SHIFT = 8, 10

CR0_NE = 1 << 5
"""CR0.NE: x87 errors raise #MF (native reporting) rather than FERR# (SDM Vol. 3A, 2.5)."""


def opcode(insn: Insn) -> int:
    """FOP: the low 3 bits of the x87 opcode byte (D8-DF) and the ModR/M byte after it (SDM Vol. 1, 8.1.9)."""
    at = next(i for i, byte in enumerate(insn.raw) if 0xD8 <= byte <= 0xDF)
    return (insn.raw[at] & 7) << 8 | insn.raw[at + 1]


def x87(*mnemonics: str, feature: str | None = None) -> Callable[[Semantic], Semantic]:
    """Register an x87 non-control instruction: before it runs, its FOP and memory operand offset go where
    :meth:`Fpu.signal` finds them; when it completes (no #MF, no fault), FIP takes its address."""
    def register(fn: Semantic) -> Semantic:
        def recorded(ops, insn: Insn, *operands) -> None:  # noqa: ANN001 - an Ops
            memory = next((o for o in operands if o.kind is Kind.MEM), None)
            ops.set_reg("x87_opcode", opcode(insn))
            ops.set_reg("x87_operand", ops.reg("fdp") if memory is None else ops.ea(memory))
            fn(ops, insn, *operands)
            ops.set_reg("fip", insn.address)
        recorded.__name__, recorded.__doc__ = fn.__name__, fn.__doc__
        semantics(*mnemonics, feature=feature)(recorded)
        return fn
    return register


def physical_register(state, i: int) -> int:  # noqa: ANN001 - CpuState
    """The physical register number of ST(i)."""
    return (state.fsw >> TOP_SHIFT) + i & 7


def read_register(state, r: int) -> int:  # noqa: ANN001 - CpuState
    """Physical register R``r`` as an 80-bit integer."""
    return getattr(state, f"mm{r}") | getattr(state, f"fpr{r}_exp") << 64


def write_register(state, r: int, value: int) -> None:  # noqa: ANN001 - CpuState
    setattr(state, f"mm{r}", value & X.SIG_MASK)
    setattr(state, f"fpr{r}_exp", value >> 64 & 0xFFFF)


def full_tag_word(state) -> int:  # noqa: ANN001 - CpuState
    """The full tag word: 00 valid, 01 zero, 10 special (NaN, infinity, denormal, unsupported), 11 empty."""
    word = 0
    for r in range(8):
        if not state.ftw >> r & 1:
            tag = 3
        else:
            c = X.classify(read_register(state, r))
            tag = 0 if c is X.Class.NORMAL else 1 if c is X.Class.ZERO else 2
        word |= tag << (2 * r)
    return word


class Fpu:
    """The x87 state of one processor, read and written in place."""

    def __init__(self, cpu) -> None:  # noqa: ANN001 - the interpreter (state + memory)
        self.state = cpu.state
        self.mem = cpu.mem

    # -- status and control --------------------------------------------------------------
    @property
    def top(self) -> int:
        return self.state.fsw >> TOP_SHIFT & 7

    @top.setter
    def top(self, value: int) -> None:
        self.state.fsw = (self.state.fsw & ~(7 << TOP_SHIFT)) | (value & 7) << TOP_SHIFT

    @property
    def precision(self) -> int:
        return X.PRECISION[self.state.fcw >> FCW_PC_SHIFT & 3]

    @property
    def rounding(self) -> int:
        return self.state.fcw >> FCW_RC_SHIFT & 3

    @property
    def unmasked(self) -> int:
        """Exception flags whose FCW mask bit is clear."""
        return ~self.state.fcw & EXCEPTIONS

    def set_condition(self, bits: int) -> None:
        """Replace C0-C3 with ``bits``."""
        self.state.fsw = (self.state.fsw & ~CONDITION) | bits

    def signal(self, flags: int) -> bool:
        """OR exception flags (and C1) into FSW, ES and B with them when one is unmasked.

        True when the instruction may deliver its result: no unmasked IE, DE or ZE
        (SDM Vol. 1, 8.6: those leave the operands and the destination untouched)."""
        s = self.state
        blocked = flags & (IE | DE | ZE) & self.unmasked
        if blocked and not flags & SF:
            flags &= IE | DE | ZE                # the operation was not performed: no result flags
        s.fsw = (s.fsw & ~C1) | (flags & (C1 | EXCEPTIONS | SF))
        if flags & EXCEPTIONS & self.unmasked:
            s.fsw |= ES | B
            s.fop, s.fdp = s.x87_opcode, s.x87_operand
        return not blocked

    def wait(self) -> None:
        """What a waiting x87 instruction does first: #MF for a pending unmasked exception (SDM 8.6)."""
        if self.state.fsw & ES and self.state.cr0 & CR0_NE:
            raise GuestFault(Vector.MF, detail="pending unmasked x87 exception")

    # -- registers ---------------------------------------------------------------------------
    def physical(self, i: int) -> int:
        return physical_register(self.state, i)

    def empty(self, i: int) -> bool:
        return not self.state.ftw >> self.physical(i) & 1

    def get(self, i: int) -> int:
        """ST(i) as an 80-bit integer (whatever its tag says)."""
        return read_register(self.state, self.physical(i))

    def set(self, i: int, value: int) -> None:
        """ST(i) = value, tagged valid."""
        r = self.physical(i)
        write_register(self.state, r, value)
        self.state.ftw |= 1 << r

    def free(self, i: int) -> None:
        self.state.ftw &= ~(1 << self.physical(i))

    def push(self, value: int) -> None:
        self.top = self.top - 1
        self.set(0, value)

    def pop(self) -> None:
        self.free(0)
        self.top = self.top + 1

    # -- stack faults (SDM Vol. 1, 8.5.1.1) ---------------------------------------------------------
    def underflow(self, *regs: int) -> bool:
        """True (and IE, SF, C1 = 0 signalled) when one of ST(regs) is empty."""
        if any(self.empty(i) for i in regs):
            self.signal(IE | SF)
            return True
        return False

    def replace_st0(self, compute: Callable[[], tuple[int, int]], *regs: int) -> None:
        """ST(0) = the result of ``compute()`` (result, flags) as an arithmetic instruction does: the
        QNaN indefinite when one of ST(regs) is empty (masked underflow), nothing when an IE, DE or
        ZE is unmasked."""
        self.wait()
        result, flags = (X.INDEFINITE, IE | SF) if self.underflow(*regs) else compute()
        if self.signal(flags):
            self.set(0, result)

    def may_replace_and_push(self) -> bool:
        """For an instruction that replaces ST(0) and pushes (FXTRACT, FSINCOS, FPTAN): False, after the
        masked response (the QNaN indefinite in both), when ST(0) is empty or ST(7) in use."""
        self.wait()
        if self.empty(0):
            flags = IE | SF
        elif not self.empty(7):
            flags = IE | SF | C1
        else:
            return True
        if self.signal(flags):
            self.set(0, X.INDEFINITE)
            self.push(X.INDEFINITE)
        return False

    def push_checked(self, value: int, flags: int = 0) -> None:
        """Push ``value`` with its flags; overflow when ST(7) is in use: IE, SF, C1 = 1, and the
        masked response pushes the QNaN indefinite."""
        if not self.empty(7):
            if self.signal(IE | SF | C1):
                self.push(X.INDEFINITE)
            return
        if self.signal(flags) or not flags & (IE | ZE) & self.unmasked:
            self.push(value)                    # a load delivers its value even when DE is unmasked

    # -- the tag word and environment images ---------------------------------------------------------
    def tag_word(self) -> int:
        return full_tag_word(self.state)

    def set_tag_word(self, word: int) -> None:
        self.state.ftw = sum(1 << r for r in range(8) if word >> (2 * r) & 3 != 3)

    def environment(self, bits: int) -> bytes:
        """The FNSTENV image, protected-mode layout (SDM Vol. 1, figures 8-9 and 8-10): 28 bytes (32-bit
        operand size: FIP and FDP offsets, FOP above FCS) or 14 (16-bit: the offsets' low halves, no FOP);
        FCS and FDS zero, the reserved upper halves of the 32-bit words all ones."""
        s = self.state
        if bits == 16:
            return struct.pack("<HHHHHHH", s.fcw, s.fsw, self.tag_word(), s.fip & 0xFFFF, 0, s.fdp & 0xFFFF, 0)
        return struct.pack("<IIIIIII", 0xFFFF0000 | s.fcw, 0xFFFF0000 | s.fsw, 0xFFFF0000 | self.tag_word(),
                           s.fip & 0xFFFFFFFF, s.fop << 16, s.fdp & 0xFFFFFFFF, 0xFFFF0000)

    def load_environment(self, image: bytes, bits: int) -> None:
        s = self.state
        if bits == 16:
            fcw, fsw, tags, s.fip, _, s.fdp = struct.unpack_from("<HHHHHH", image)
        else:
            fcw, fsw, tags, s.fip, fcs_fop, s.fdp = struct.unpack_from("<H2xH2xH2xIII", image)
            s.fop = fcs_fop >> 16 & 0x7FF
        s.fcw, s.fsw = fcw, fsw
        self.set_tag_word(tags)
        # ES and B follow the flags and masks just loaded (SDM Vol. 1, 8.1.3.3)
        s.fsw = (s.fsw & ~(ES | B)) | ((ES | B) if s.fsw & ~s.fcw & EXCEPTIONS else 0)

    def registers_image(self) -> bytes:
        """ST(0)..ST(7), 10 bytes each, as FNSAVE stores them after the environment."""
        return b"".join(self.get(i).to_bytes(10, "little") for i in range(8))

    def load_registers(self, image: bytes) -> None:
        tags = self.state.ftw
        for i in range(8):
            write_register(self.state, self.physical(i), int.from_bytes(image[10 * i:10 * i + 10], "little"))
        self.state.ftw = tags

    def reset(self) -> None:
        """FNINIT's state (SDM Vol. 2A, FINIT/FNINIT): FCW 0x37F, FSW 0, every tag empty, FIP, FDP, FOP 0."""
        s = self.state
        s.fcw, s.fsw, s.ftw, s.fip, s.fdp, s.fop = 0x037F, 0, 0, 0, 0, 0
