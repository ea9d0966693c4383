"""Differential execution: run one snippet in emu and in unicorn from the same state, compare.

unicorn (QEMU's TCG) is the oracle.  A case is a snippet of assembly, the
initial registers, XMM registers and data memory.  Both engines start from
that state at CODE, run to the end of the snippet, and we compare every GPR,
RIP, the defined RFLAGS bits (undefined ones masked per ``cpu.flags``), the
XMM registers and the data page.  A fault must happen in both or neither.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache

import keystone
import unicorn
from unicorn import x86_const as U

from cpu.exceptions import GuestFault
from cpu.flags import ARITH, Flag, read_rflags, write_rflags
from cpu.interp import ExitKind, Interpreter
from cpu.jit import Jit
from cpu.state import GPR64, CpuState
from emu.user.address_space import AddressSpace

CODE = 0x10000
DATA = 0x20000
DATA_SIZE = 0x2000
STACK = 0x30000
STACK_SIZE = 0x2000
FS_BASE = DATA + 0x800
GDT = 0x40000
HLT = b"\xf4"

UC_GPR = {name: getattr(U, f"UC_X86_REG_{name.upper()}") for name in GPR64}

BOUNDARY = {
    8: [0, 1, 0x7F, 0x80, 0xFF, 0xFE],
    16: [0, 1, 0x7FFF, 0x8000, 0xFFFF],
    32: [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF],
    64: [0, 1, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF],
}


@cache
def _ks() -> keystone.Ks:
    return keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64)


@cache
def assemble(asm: str) -> bytes:
    encoding, _ = _ks().asm(asm, CODE)
    if not encoding:
        raise ValueError(f"keystone produced nothing for {asm!r}")
    return bytes(encoding)


@dataclass
class Case:
    asm: str
    regs: dict[str, int] = field(default_factory=dict)
    rflags: int = 0x202
    xmm: dict[int, int] = field(default_factory=dict)
    data: bytes = b""
    undefined: int = 0        # RFLAGS bits not to compare
    max_steps: int = 10_000
    gdt: bytes = b""          # emu's GDT (at GDT, read-only); the host has its kernel's, unicorn none


@dataclass
class Outcome:
    regs: dict[str, int]
    rip: int
    rflags: int
    xmm: dict[int, int]
    data: bytes
    faulted: bool
    mxcsr: int | None = None    # MXCSR at a SIGFPE: the host oracle reports it, and emu (then also the XMM registers)

    def diff(self, other: Outcome, undefined: int, oracle: str = "unicorn") -> list[str]:
        """What differs between emu's outcome (self) and the oracle's."""
        out = []
        if self.faulted != other.faulted:
            return [f"fault: emu={self.faulted} {oracle}={other.faulted}"]
        for name in GPR64:
            if self.regs[name] != other.regs[name]:
                out.append(f"{name}: emu={self.regs[name]:#x} {oracle}={other.regs[name]:#x}")
        if self.faulted:
            if other.mxcsr is not None:         # a SIMD exception: MXCSR's flags and the untouched registers
                if self.mxcsr != other.mxcsr:
                    out.append(f"mxcsr: emu={self.mxcsr:#x} {oracle}={other.mxcsr:#x}")
                out += [f"xmm{i}: emu={self.xmm[i]:#034x} {oracle}={other.xmm[i]:#034x}"
                        for i in range(16) if self.xmm.get(i, 0) != other.xmm.get(i, 0)]
            return out
        if self.rip != other.rip:
            out.append(f"rip: emu={self.rip:#x} {oracle}={other.rip:#x}")
        mask = (ARITH | Flag.DF) & ~undefined
        if (self.rflags ^ other.rflags) & mask:
            out.append(f"rflags: emu={self.rflags & mask:#x} {oracle}={other.rflags & mask:#x} "
                       f"(differs in {_flag_names((self.rflags ^ other.rflags) & mask)})")
        for i in range(16):
            if self.xmm.get(i, 0) != other.xmm.get(i, 0):
                out.append(f"xmm{i}: emu={self.xmm[i]:#034x} {oracle}={other.xmm[i]:#034x}")
        if self.data != other.data:
            first = next(i for i in range(len(self.data)) if self.data[i] != other.data[i])
            out.append(f"memory differs first at {DATA + first:#x}: emu={self.data[first:first+8].hex()} "
                       f"{oracle}={other.data[first:first+8].hex()}")
        return out


def _flag_names(bits: int) -> str:
    return ",".join(f.name for f in Flag if f & bits and f.name)


def initial_state(case: Case) -> tuple[dict[str, int], bytes]:
    regs = {name: 0 for name in GPR64}
    regs["rsp"] = STACK + STACK_SIZE - 0x100
    regs.update(case.regs)
    data = case.data.ljust(DATA_SIZE, b"\0")[:DATA_SIZE]
    return regs, data


def run_emu(case: Case, blocks: bool = False, jit: str = "off") -> Outcome:
    """Run ``case`` in emu one instruction per block (``blocks=False``: how a debugger steps)
    or as whole translated blocks, where flags flow between instructions at translation time.
    Block mode appends a HLT after the snippet so the run stops there."""
    code = assemble(case.asm)
    regs, data = initial_state(case)
    mem = AddressSpace()
    mem.map(CODE, 0x1000, 5, code + (HLT if blocks else b""))
    mem.map(DATA, DATA_SIZE, 3, data)
    mem.map(STACK, STACK_SIZE, 3)
    state = CpuState()
    state.reset_user()
    for name, value in regs.items():
        setattr(state, name, value)
    write_rflags(state, case.rflags)
    state.fs_base = FS_BASE
    if case.gdt:
        mem.map(GDT, 0x1000, 1, case.gdt)
        state.gdtr_base, state.gdtr_limit = GDT, len(case.gdt) - 1
    for i, value in case.xmm.items():
        state.set_xmm(i, value)
    state.rip = CODE
    cpu = Interpreter(state, mem)
    if jit != "off":
        cpu.jit = Jit(cpu, jit, strict=True)
    end = CODE + len(code)
    faulted = False
    if blocks:
        exit_ = cpu.run(limit=case.max_steps)
        faulted = exit_.kind is ExitKind.FAULT
        if exit_.kind is ExitKind.HALT and state.rip == end + len(HLT):
            state.rip = end
    else:
        for _ in range(case.max_steps):
            if state.rip == end:
                break
            exit_ = cpu.run(limit=1)
            if exit_.kind is ExitKind.FAULT:
                faulted = True
                break
    return Outcome({n: getattr(state, n) for n in GPR64}, state.rip, read_rflags(state),
                   {i: state.xmm(i) for i in range(16)}, mem.read(DATA, DATA_SIZE), faulted, state.mxcsr)


def run_unicorn(case: Case) -> Outcome:
    code = assemble(case.asm)
    regs, data = initial_state(case)
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    uc.mem_map(CODE, 0x1000, unicorn.UC_PROT_READ | unicorn.UC_PROT_EXEC)
    uc.mem_map(DATA, DATA_SIZE)
    uc.mem_map(STACK, STACK_SIZE)
    uc.mem_write(CODE, code)
    uc.mem_write(DATA, data)
    for name, value in regs.items():
        uc.reg_write(UC_GPR[name], value)
    uc.reg_write(U.UC_X86_REG_RFLAGS, case.rflags)
    uc.reg_write(U.UC_X86_REG_FS_BASE, FS_BASE)
    for i, value in case.xmm.items():
        uc.reg_write(U.UC_X86_REG_XMM0 + i, value)
    faulted = False
    try:
        uc.emu_start(CODE, CODE + len(code), count=case.max_steps)
    except unicorn.UcError:
        faulted = True
    return Outcome({n: uc.reg_read(UC_GPR[n]) for n in GPR64}, uc.reg_read(U.UC_X86_REG_RIP),
                   uc.reg_read(U.UC_X86_REG_RFLAGS), {i: uc.reg_read(U.UC_X86_REG_XMM0 + i) for i in range(16)},
                   bytes(uc.mem_read(DATA, DATA_SIZE)), faulted)


MODES = (("stepped", False, "off"), ("block", True, "off"), ("llvm", True, "eager"))
"""How emu runs each case: one instruction at a time, as a translated block, and through the LLVM JIT."""


def compare(case: Case, theirs: Outcome, oracle: str) -> None:
    """Assert emu, in every mode, ends ``case`` as the oracle did (``theirs``)."""
    problems = [f"{mode}: {p}" for mode, blocks, jit in MODES
                for p in run_emu(case, blocks, jit).diff(theirs, case.undefined, oracle)]
    assert not problems, f"`{case.asm}` from {case.regs} flags={case.rflags:#x}:\n  " + "\n  ".join(problems)


def check(case: Case) -> None:
    """Assert emu and unicorn agree on ``case``."""
    compare(case, run_unicorn(case), "unicorn")


def values(size: int, rng: random.Random, count: int) -> list[int]:
    """Boundary values of ``size`` bits, then random ones, ``count`` in all."""
    out = list(BOUNDARY[size])
    while len(out) < count:
        out.append(rng.getrandbits(size))
    return out[:count]


def random_flags(rng: random.Random) -> int:
    return 0x202 | (rng.getrandbits(12) & ARITH)


__all__ = ["Case", "GuestFault", "check", "compare", "initial_state", "run_emu", "run_unicorn", "values",
           "random_flags", "DATA", "FS_BASE"]
