"""RDRAND, RDSEED, RDPID, the FS/GS base instructions, XLATB and LOCK (cpu/semantics/system.py, datamov.py),
in emu, against unicorn where it has them and against this host CPU.

RDRAND's bits and RDPID's processor number differ between machines by design, so those cases
compare everything else: the flags, which bits of the destination change, and the value emu's
seeded generator or IA32_TSC_AUX gives.
"""

from __future__ import annotations

import random

import pytest

from cpu.exceptions import GuestFault, Vector
from cpu.flags import ARITH, Flag, read_rflags
from cpu.interp import ExitKind, Interpreter
from cpu.state import CpuState
from emu.user.address_space import AddressSpace
from tests.semantics import host
from tests.semantics.harness import DATA, FS_BASE, Case, assemble, check, random_flags, run_emu
from tests.semantics.host import check_host, needs_host, run_host

DESTINATIONS = {16: "bx", 32: "ebx", 64: "rbx"}


def run_alone(asm: str, *, seed: int | None = None, tsc_aux: int = 0, cr4: int | None = None,
              regs: dict[str, int] | None = None) -> tuple[CpuState, Interpreter]:
    """Run ``asm`` to its end in a fresh interpreter (whose RDRAND seed is ``seed``)."""
    code = assemble(asm)
    mem = AddressSpace()
    mem.map(0x10000, 0x1000, 5, code)
    state = CpuState()
    state.reset_user()
    state.rip, state.tsc_aux = 0x10000, tsc_aux
    if cr4 is not None:
        state.cr4 = cr4
    for name, value in (regs or {}).items():
        setattr(state, name, value)
    cpu = Interpreter(state, mem, entropy_seed=seed)
    while state.rip != 0x10000 + len(code):
        exit_ = cpu.run(limit=1)
        if exit_.kind is ExitKind.FAULT:
            raise exit_.fault
    return state, cpu


# -- RDRAND, RDSEED -------------------------------------------------------------------------------

@pytest.mark.parametrize("mnemonic", ["rdrand", "rdseed"])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_rdrand_draws_from_the_seeded_generator_and_sets_only_cf(mnemonic, size):
    old = 0x1111_2222_3333_4444
    state, _ = run_alone(f"{mnemonic} {DESTINATIONS[size]}", seed=7, regs={"rbx": old})
    expected = random.Random(7).getrandbits(size)
    kept = old & ~0xFFFF if size == 16 else 0
    assert state.rbx == kept | expected
    assert read_rflags(state) & ARITH == Flag.CF


def test_rdrand_repeats_with_the_same_seed_and_not_with_another():
    asm = "rdrand rax; rdrand rbx; rdseed rcx"
    first, second, other = (run_alone(asm, seed=s)[0] for s in (1, 1, 2))
    assert (first.rax, first.rbx, first.rcx) == (second.rax, second.rbx, second.rcx)
    assert (first.rax, first.rbx, first.rcx) != (other.rax, other.rbx, other.rcx)


@needs_host
@pytest.mark.parametrize("mnemonic", ["rdrand", "rdseed"])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_rdrand_flags_and_destination_bits_match_the_host(mnemonic, size, rng):
    case = Case(f"{mnemonic} {DESTINATIONS[size]}", {"rbx": rng.getrandbits(64)}, rflags=random_flags(rng))
    theirs, ours = run_host(case), run_emu(case)
    assert not theirs.faulted and not ours.faulted
    assert theirs.rflags & ARITH == ours.rflags & ARITH == Flag.CF         # a success, every other flag clear
    untouched = ~((1 << size) - 1) if size == 16 else 0
    assert theirs.regs["rbx"] & untouched == ours.regs["rbx"] & untouched == case.regs["rbx"] & untouched


# -- RDPID ----------------------------------------------------------------------------------------

def test_rdpid_reads_ia32_tsc_aux():
    state, _ = run_alone(".byte 0xf3, 0x0f, 0xc7, 0xf8", tsc_aux=0x1003, regs={"rax": -1 & (2**64 - 1)})
    assert state.rax == 0x1003


@needs_host
def test_rdpid_runs_in_user_mode_on_the_host():
    """Linux puts the CPU (and NUMA node) number in IA32_TSC_AUX: small, and emu's user mode says CPU 0."""
    theirs = run_host(Case(".byte 0xf3, 0x0f, 0xc7, 0xf8", {"rax": 2**64 - 1}))
    assert not theirs.faulted and theirs.regs["rax"] < 1 << 32
    assert run_emu(Case(".byte 0xf3, 0x0f, 0xc7, 0xf8", {"rax": 2**64 - 1})).regs["rax"] == 0


# -- RDFSBASE, RDGSBASE, WRFSBASE, WRGSBASE -------------------------------------------------------

FSGSBASE_FORMS = ["rdfsbase rax", "rdfsbase eax", "wrgsbase rbx; rdgsbase rcx", "wrgsbase ebx; rdgsbase rcx",
                  "wrfsbase rbx; mov rax, qword ptr fs:[8]; wrfsbase rdx"]


@needs_host
@pytest.mark.parametrize("asm", FSGSBASE_FORMS)
def test_fs_and_gs_base_instructions_match_the_host(asm, rng):
    """The host's Linux enables CR4.FSGSBASE for programs; so does emu's user mode.  WRFSBASE is put back
    before the snippet ends: the host oracle's own code lives on FS."""
    for base in (DATA, DATA + 0x100 + rng.randrange(0x100), 0xFFFF_8000_0000_0000 + DATA, 0x0000_8000_0000_0000):
        case = Case(asm, {"rbx": base if "rbx; mov" not in asm else DATA + 0x100, "rdx": FS_BASE,
                          "rax": rng.getrandbits(64)}, data=rng.randbytes(0x200))
        check_host(case)


def test_fs_and_gs_base_instructions_fault_without_cr4_fsgsbase():
    with pytest.raises(GuestFault) as raised:
        run_alone("rdfsbase rax", cr4=0)
    assert raised.value.vector == Vector.UD


def test_wrgsbase_of_a_non_canonical_address_is_a_general_protection_fault():
    with pytest.raises(GuestFault) as raised:
        run_alone("wrgsbase rax", regs={"rax": 0x0000_8000_0000_0000})
    assert raised.value.vector == Vector.GP


# -- XLATB ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("asm", ["xlatb", ".byte 0x67, 0xd7", ".byte 0x64, 0xd7", ".byte 0x64, 0x3e, 0xd7"],
                         ids=["rbx", "ebx", "fs", "fs then ds"])
def test_xlatb_loads_al_from_the_table_at_rbx(asm, rng):
    """With FS then DS prefixes FS applies (as on this CPU: DS means nothing in 64-bit mode); unicorn takes DS."""
    for al in (0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)):
        rbx = DATA + 0x100 if asm != ".byte 0x67, 0xd7" else (rng.getrandbits(32) << 32) | (DATA + 0x100)
        if "0x64" in asm:
            rbx = 0x100
        case = Case(asm, {"rax": (rng.getrandbits(64) & ~0xFF) | al, "rbx": rbx}, data=rng.randbytes(0x400))
        if "0x3e" not in asm:
            check(case)
        if host.available:
            check_host(case)


# -- LOCK -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["f0 48 01 d8", "f0 48 0f c1 c3", "f0 48 0f ab c3", "f0 48 ff c0", "f0 48 f7 d0",
                                  "f0 48 89 06", "f0 90", "f0 c9", "f0 48 8b 06", "f0 48 0f bc 06", "f0 0f a2",
                                  "f0 48 39 06", "f0 c4 e2 e0 f2 06"],
                         ids=["add to a register", "xadd to a register", "bts of a register", "inc of a register",
                              "not of a register", "mov", "nop", "leave", "load", "bsf", "cpuid", "cmp", "andn (VEX)"])
def test_lock_on_an_instruction_that_cannot_take_it_is_undefined(code, rng):
    """LOCK is for read-modify-write instructions with a memory destination (SDM Vol. 2A, LOCK): capstone
    refuses to decode the rest, so they are #UD.  unicorn (QEMU 5) runs some of them (MOV, a load, BSF, CPUID)."""
    asm = ".byte " + ", ".join(f"0x{b}" for b in code.split())
    case = Case(asm, {"rsi": DATA + 8, "rax": rng.getrandbits(64)})
    assert all(run_emu(case, blocks, jit).faulted for blocks, jit in ((False, "off"), (True, "off"), (True, "eager")))
    if host.available:
        check_host(case)


@pytest.mark.parametrize("asm", ["lock add qword ptr [rsi], rax", "lock xchg qword ptr [rsi], rax",
                                 "lock bts dword ptr [rsi], eax", "lock cmpxchg16b xmmword ptr [rsi]"])
def test_lock_on_a_memory_read_modify_write_runs(asm, rng):
    case = Case(asm, {"rsi": DATA + 16, "rax": rng.getrandbits(64) & 0xFF}, rflags=random_flags(rng),
                data=rng.randbytes(64), undefined=int(Flag.OF | Flag.SF | Flag.AF | Flag.PF) if "bts" in asm else 0)
    check(case)
    if host.available:
        check_host(case)
