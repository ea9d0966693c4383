"""The loader maps segments and builds the initial stack as the SysV AMD64 psABI 3.4.1 lays it out."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cpu.cpuid import Reg, level
from cpu.exceptions import GuestFault
from cpu.state import GPR64, CpuState
from emu.user.address_space import PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP, AddressSpace
from emu.user.elf import PIE_BASE, read_elf
from emu.user.loader import HWCAP2_FSGSBASE, STACK_SIZE, Auxv, LoadedProgram, load_program
from tests.user.elfs import BASE, ET_DYN, PF_R, PF_W, PF_X, Segment, build, code_offset, write

ARGV = ["prog", "first arg", ""]
ENV = ["HOME=/home/emu", "LANG=C"]


def load(path: str, seed: int | None = 0) -> tuple[AddressSpace, CpuState, LoadedProgram]:
    space, state = AddressSpace(), CpuState()
    program = load_program(space, state, read_elf(path), ARGV, ENV, seed=seed)
    return space, state, program


def read_stack(space: AddressSpace, sp: int) -> tuple[list[bytes], list[bytes], dict[int, int]]:
    """argv, envp and auxv as a C library's start code finds them at rsp."""
    argc = space.load(sp, 64)
    argv = [space.read_cstring(space.load(sp + 8 * (1 + i), 64)) for i in range(argc)]
    at = sp + 8 * (argc + 1)
    assert space.load(at, 64) == 0, "argv ends with NULL"
    at += 8
    envp = []
    while (pointer := space.load(at, 64)) != 0:
        envp.append(space.read_cstring(pointer))
        at += 8
    auxv = {}
    while True:
        at += 8
        key, value = space.load(at, 64), space.load(at + 8, 64)
        at += 8
        if key == Auxv.AT_NULL:
            return argv, envp, auxv
        auxv[key] = value


def test_the_stack_holds_argc_argv_envp_and_auxv(static_program: str) -> None:
    space, state, program = load(static_program)
    argv, envp, auxv = read_stack(space, state.rsp)
    assert argv == [a.encode() for a in ARGV]
    assert envp == [e.encode() for e in ENV]
    image = read_elf(static_program)
    assert auxv[Auxv.AT_ENTRY] == image.header.e_entry == state.rip == program.entry
    assert auxv[Auxv.AT_PHENT] == 56
    assert auxv[Auxv.AT_PHNUM] == image.header.e_phnum
    assert auxv[Auxv.AT_PAGESZ] == 4096
    assert auxv[Auxv.AT_BASE] == 0 and auxv[Auxv.AT_FLAGS] == 0 and auxv[Auxv.AT_SECURE] == 0
    assert auxv[Auxv.AT_HWCAP] == level().register(1, Reg.EDX) and auxv[Auxv.AT_HWCAP2] == HWCAP2_FSGSBASE
    assert auxv[Auxv.AT_CLKTCK] == 100
    assert (auxv[Auxv.AT_UID], auxv[Auxv.AT_EUID]) == (os.getuid(), os.geteuid())
    assert (auxv[Auxv.AT_GID], auxv[Auxv.AT_EGID]) == (os.getgid(), os.getegid())
    assert space.read_cstring(auxv[Auxv.AT_PLATFORM]) == b"x86_64"
    assert space.read_cstring(auxv[Auxv.AT_EXECFN]) == static_program.encode()
    assert auxv[Auxv.AT_MINSIGSTKSZ] >= 2048


def test_at_phdr_points_at_the_program_headers_in_memory(static_program: str) -> None:
    space, state, _ = load(static_program)
    _, _, auxv = read_stack(space, state.rsp)
    header = read_elf(static_program).header
    size = header.e_phnum * header.e_phentsize
    in_file = Path(static_program).read_bytes()[header.e_phoff: header.e_phoff + size]
    assert space.read(auxv[Auxv.AT_PHDR], size) == in_file


def test_at_random_is_sixteen_bytes_fixed_by_the_seed(static_program: str) -> None:
    def random_bytes(seed: int | None) -> bytes:
        space, state, _ = load(static_program, seed)
        return space.read(read_stack(space, state.rsp)[2][Auxv.AT_RANDOM], 16)

    assert random_bytes(1) == random_bytes(1)
    assert random_bytes(1) != random_bytes(2)
    assert len(random_bytes(None)) == 16


def test_the_entry_stack_pointer_is_16_byte_aligned_and_other_registers_are_zero(static_program: str) -> None:
    _, state, _ = load(static_program)
    assert state.rsp % 16 == 0
    assert all(getattr(state, r) == 0 for r in GPR64 if r != "rsp")
    assert state.cs == 0x33 and state.cpl == 3


def test_the_stack_grows_down_on_touch_up_to_8_mib_at_the_top_of_user_space(static_program: str) -> None:
    space, state, _ = load(static_program)
    assert USER_TOP - STACK_SIZE < state.rsp < USER_TOP
    assert space.prot_at(USER_TOP - 4096) == PROT_READ | PROT_WRITE
    assert space.prot_at(USER_TOP - STACK_SIZE) is None                  # not yet: the stack grows on a fault
    space.write(USER_TOP - STACK_SIZE, b"deep")
    assert space.prot_at(USER_TOP - STACK_SIZE) == PROT_READ | PROT_WRITE
    with pytest.raises(GuestFault):                                      # past RLIMIT_STACK: SIGSEGV
        space.write(USER_TOP - STACK_SIZE - 4096, b"too deep")
    assert space.is_free(USER_TOP - STACK_SIZE - 4096, 4096)


def test_segments_get_their_permissions_and_bss_reads_as_zero(tmp_path: Path) -> None:
    code = bytes.fromhex("b83c00000031ff0f05")
    data_at = BASE + 0x2000
    path = write(tmp_path, build(code, segments=[
        Segment(),
        Segment(flags=PF_R | PF_W, vaddr=data_at, offset=0, filesz=0x20, memsz=0x3000),
    ]))
    space, _, program = load(path)
    assert space.prot_at(BASE) == PROT_READ | PROT_EXEC
    assert space.read(BASE + code_offset(2), len(code)) == code
    assert space.prot_at(data_at) == PROT_READ | PROT_WRITE
    assert space.read(data_at, 4) == b"\x7fELF"          # file bytes at offset 0
    assert space.read(data_at + 0x20, 0x2FE0) == bytes(0x2FE0)
    assert program.brk == space.brk_start == space.brk == data_at + 0x3000


def test_segments_sharing_a_page_keep_both_contents_and_permissions(tmp_path: Path) -> None:
    code = bytes.fromhex("b83c00000031ff0f05")
    text_size = code_offset(2) + len(code)
    path = write(tmp_path, build(code, segments=[
        Segment(filesz=text_size),
        Segment(flags=PF_R | PF_W, vaddr=BASE + 0x200, offset=0x200, filesz=0, memsz=0x1000),
    ]))
    space, _, _ = load(path)
    assert space.read(BASE + code_offset(2), len(code)) == code
    assert space.prot_at(BASE) == PROT_READ | PROT_WRITE | PROT_EXEC
    assert space.prot_at(BASE + 0x1000) == PROT_READ | PROT_WRITE
    assert space.read(BASE + 0x200, 0x100) == bytes(0x100)


def test_a_static_pie_is_mapped_at_the_pie_base(tmp_path: Path) -> None:
    code = bytes.fromhex("b83c00000031ff0f05")
    path = write(tmp_path, build(code, segments=[Segment(vaddr=0, flags=PF_R | PF_X)], entry=code_offset(),
                                 e_type=ET_DYN))
    space, state, _ = load(path)
    assert space.read(PIE_BASE, 4) == b"\x7fELF"
    assert state.rip == PIE_BASE + code_offset()
    assert read_stack(space, state.rsp)[2][Auxv.AT_PHDR] == PIE_BASE + 64
