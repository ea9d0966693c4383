"""Putting a checked ELF executable into a fresh address space, ready to run.

Follows the ELF gABI ch. 5 ("Program Loading") for the segments and the
System V AMD64 psABI, 3.4.1 ("Initial Stack and Register State") and 3.4.3
("Auxiliary Vector") for the stack, doing what Linux's ``load_elf_binary``
does:

* a position-independent (``ET_DYN``) program goes to ELF_ET_DYN_BASE
  (:data:`~emu.user.elf.PIE_BASE`); with randomisation on, that base, the
  program break and the mmap area move down by a random number of pages, as
  Linux's ``arch_mmap_rnd`` and ``arch_randomize_brk`` do;
* a program with ``PT_INTERP`` gets its dynamic linker mapped as a whole in
  the mmap area (top-down, like any mapping without a hint); the linker's
  entry is where the process starts, and AT_BASE says where it is;
* each PT_LOAD is mapped from its page-aligned start with its own permissions;
  the bytes from the page start up to p_vaddr come from the file too, the
  bytes past p_filesz are zero (.bss);
* the program break starts at the first page after the highest segment;
* a read-write stack that grows down (up to RLIMIT_STACK, 8 MiB) ends at the top of user space, holding (from the
  top down) the program's file name, the argument and environment strings,
  the platform string, 16 random bytes, then (rsp, 16-byte aligned) argc,
  the argv pointers, NULL, the envp pointers, NULL and the auxiliary vector.

Not done: a vDSO (so no AT_SYSINFO_EHDR: the C library makes real system
calls for the time instead), stack randomisation.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from cpu.cpuid import CR4_FSGSBASE, CpuLevel, Reg, level
from cpu.memory import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from cpu.state import CpuState
from emu.user.address_space import (
    DEFAULT_STACK_LIMIT,
    PROT_EXEC,
    PROT_READ,
    PROT_WRITE,
    USER_TOP,
    AddressSpace,
    page_round_up,
)
from emu.user.elf import PIE_BASE, ElfImage, ElfType, ProgramHeader, SegmentFlags

STACK_SIZE = DEFAULT_STACK_LIMIT
"""The default RLIMIT_STACK: 8 MiB."""
STACK_INITIAL = 128 << 10
"""The stack mapping starts this large (fs/exec.c ``setup_arg_pages``'s stack_expand) and grows down on a
fault below it, up to RLIMIT_STACK; the strings and vectors written to it grow it further if need be."""
STACK_TOP = USER_TOP

HWCAP2_FSGSBASE = 1 << 1
"""AT_HWCAP2 bit 1: the kernel (Linux >= 5.9) enabled CR4.FSGSBASE, so RDFSBASE and friends work in user mode."""

MINSIGSTKSZ = 2048
"""AT_MINSIGSTKSZ: enough for a signal frame with legacy FXSAVE state (no AVX)."""
MMAP_RANDOM_PAGES = 1 << 28
"""mmap_rnd_bits: how many pages the PIE base and the mmap area may move down by."""
BRK_RANDOM = 32 << 20
"""arch_randomize_brk: the program break starts up to 32 MiB above the end of the program."""
CLOCK_TICKS = 100
"""AT_CLKTCK: the USER_HZ of times(2)."""
PLATFORM = b"x86_64"


class Auxv(IntEnum):
    """Auxiliary vector keys (psABI 3.4.3, linux/auxvec.h)."""

    AT_NULL = 0
    AT_PHDR = 3
    AT_PHENT = 4
    AT_PHNUM = 5
    AT_PAGESZ = 6
    AT_BASE = 7
    AT_FLAGS = 8
    AT_ENTRY = 9
    AT_UID = 11
    AT_EUID = 12
    AT_GID = 13
    AT_EGID = 14
    AT_PLATFORM = 15
    AT_HWCAP = 16
    AT_CLKTCK = 17
    AT_SECURE = 23
    AT_RANDOM = 25
    AT_HWCAP2 = 26
    AT_EXECFN = 31
    AT_SYSINFO_EHDR = 33
    AT_MINSIGSTKSZ = 51


@dataclass
class LoadedProgram:
    """Where the loader put things, for the debugger and for tests."""

    entry: int
    stack_pointer: int
    brk: int
    auxv: dict[Auxv, int]
    interpreter_base: int = 0
    """Where the dynamic linker was mapped (AT_BASE), 0 without one."""


def load_program(space: AddressSpace, state: CpuState, image: ElfImage, argv: Sequence[str | bytes],
                 env: Sequence[str | bytes], *, seed: int | None = 0, cpu: CpuLevel | None = None,
                 execfn: str | bytes | None = None, interpreter: ElfImage | None = None,
                 aslr: random.Random | None = None) -> LoadedProgram:
    """Map ``image`` (and its dynamic linker ``interpreter``) into ``space`` and set ``state`` to the entry,
    as execve(2) would.

    ``env`` holds ``NAME=value`` strings.  AT_RANDOM's 16 bytes come from
    ``seed`` (``None``: from the host's random source).  ``execfn`` is the
    file name the program was started as (default: ``image.path``).  ``cpu``: the CPU level (default
    ``max``): AT_HWCAP is its CPUID.1:EDX, as Linux copies it from the boot CPU; where it has FSGSBASE,
    CR4.FSGSBASE is set and AT_HWCAP2 says so, as Linux >= 5.9 does.
    ``aslr``, when given, draws the random placement of a PIE, the break and
    the mmap area; without it they are where Linux puts them with
    randomisation off.
    """
    cpu = cpu if cpu is not None else level()
    fsgsbase = cpu.has("fsgsbase")
    if aslr is not None:
        space.mmap_base -= aslr.randrange(MMAP_RANDOM_PAGES) << PAGE_SHIFT
    if image.header.e_type == ElfType.ET_DYN:
        image.bias = PIE_BASE - (aslr.randrange(MMAP_RANDOM_PAGES) << PAGE_SHIFT if aslr is not None else 0)
    top = _map_segments(space, image)
    brk_offset = aslr.randrange(BRK_RANDOM >> PAGE_SHIFT) << PAGE_SHIFT if aslr is not None else 0
    space.brk_start = space.brk = top + brk_offset
    space.data_size = (max(p.p_vaddr + p.p_filesz for p in image.loads)       # end_data - start_data
                       - max(p.p_vaddr for p in image.loads)) if image.loads else 0
    space.map(STACK_TOP - STACK_INITIAL, STACK_INITIAL, PROT_READ | PROT_WRITE, growsdown=True, name="[stack]")
    base, entry = 0, image.entry
    if interpreter is not None:
        base = _place(space, interpreter)
        _map_segments(space, interpreter)
        entry = interpreter.entry
    random_bytes = os.urandom(16) if seed is None else random.Random(seed).randbytes(16)
    auxv = {
        Auxv.AT_MINSIGSTKSZ: MINSIGSTKSZ,
        Auxv.AT_HWCAP: cpu.register(1, Reg.EDX),
        Auxv.AT_PAGESZ: PAGE_SIZE,
        Auxv.AT_CLKTCK: CLOCK_TICKS,
        Auxv.AT_PHDR: image.phdr_address,
        Auxv.AT_PHENT: image.header.e_phentsize,
        Auxv.AT_PHNUM: image.header.e_phnum,
        Auxv.AT_BASE: base,
        Auxv.AT_FLAGS: 0,
        Auxv.AT_ENTRY: image.entry,
        Auxv.AT_UID: os.getuid(),
        Auxv.AT_EUID: os.geteuid(),
        Auxv.AT_GID: os.getgid(),
        Auxv.AT_EGID: os.getegid(),
        Auxv.AT_SECURE: 0,
        Auxv.AT_RANDOM: 0,
        Auxv.AT_HWCAP2: HWCAP2_FSGSBASE if fsgsbase else 0,
        Auxv.AT_EXECFN: 0,
        Auxv.AT_PLATFORM: 0,
    }
    sp = _build_stack(space, [os.fsencode(a) for a in argv], [os.fsencode(e) for e in env],
                      os.fsencode(image.path if execfn is None else execfn), random_bytes, auxv)
    state.reset_user()
    if not fsgsbase:
        state.cr4 &= ~CR4_FSGSBASE
    state.rip = entry
    state.rsp = sp
    return LoadedProgram(entry, sp, space.brk, auxv, base)


def _place(space: AddressSpace, interpreter: ElfImage) -> int:
    """Choose the dynamic linker's bias: the whole image in one free range of the mmap area (an ET_EXEC
    linker stays where it was linked); return its load address, AT_BASE."""
    if interpreter.header.e_type != ElfType.ET_DYN:
        interpreter.bias = 0
        return 0
    low = min(p.p_vaddr for p in interpreter.loads) & ~PAGE_MASK
    high = max(p.p_vaddr + p.p_memsz for p in interpreter.loads)
    start = space.find_free(high - low)
    if start is None:
        raise MemoryError("no room for the dynamic linker")
    interpreter.bias = start - low
    return start


def _prot(p: ProgramHeader) -> int:
    flags = SegmentFlags(p.p_flags & 7)
    return ((PROT_READ if flags & SegmentFlags.PF_R else 0) | (PROT_WRITE if flags & SegmentFlags.PF_W else 0)
            | (PROT_EXEC if flags & SegmentFlags.PF_X else 0))


def _map_segments(space: AddressSpace, image: ElfImage) -> int:
    """Map every PT_LOAD; return the page-aligned end of the highest one.

    Segments that share a page (the end of one and the start of the next)
    are mapped as one run; the shared page gets both segments' bytes and
    permissions.
    """
    bias, data = image.bias, image.data
    runs: list[list[ProgramHeader]] = []
    for p in sorted(image.loads, key=lambda p: p.p_vaddr):
        if runs and (p.p_vaddr + bias) & ~PAGE_MASK < _end(runs[-1][-1], bias):
            runs[-1].append(p)
        else:
            runs.append([p])
    for run in runs:
        first = run[0]
        start = (first.p_vaddr + bias) & ~PAGE_MASK
        buf = bytearray(max(p.p_vaddr + bias + p.p_filesz for p in run) - start)   # the file's bytes: no .bss
        lead = first.p_vaddr + bias - start
        prefix = data[first.p_offset - lead: first.p_offset]   # the file bytes before p_vaddr in its page
        buf[:len(prefix)] = prefix
        spans = [((p.p_vaddr + bias) >> PAGE_SHIFT, _end(p, bias) >> PAGE_SHIFT, _prot(p)) for p in run]
        for p in run:
            at = p.p_vaddr + bias - start
            buf[at: at + p.p_filesz] = data[p.p_offset: p.p_offset + p.p_filesz]
        base_prot = spans[0][2]
        space.map(start, _end(run[-1], bias) - start, base_prot, buf)
        edges: dict[int, int] = {}      # a page two segments share has both one's end and the other's start
        for low, high, prot in spans:
            if prot != base_prot:
                space.protect(low << PAGE_SHIFT, (high - low) << PAGE_SHIFT, prot)
            for vpn in (low, high - 1):
                edges[vpn] = edges.get(vpn, 0) | prot
        for vpn, prot in edges.items():
            if prot != space.prot_at(vpn << PAGE_SHIFT):
                space.protect(vpn << PAGE_SHIFT, PAGE_SIZE, prot)
    return max(_end(p, bias) for p in image.loads)


def _end(p: ProgramHeader, bias: int) -> int:
    return page_round_up(p.p_vaddr + bias + p.p_memsz)


def _build_stack(space: AddressSpace, argv: list[bytes], env: list[bytes], execfn: bytes,
                 random_bytes: bytes, auxv: dict[Auxv, int]) -> int:
    """Write strings, pointer tables and auxv below STACK_TOP; return the initial rsp.

    The string addresses (AT_RANDOM, AT_PLATFORM, AT_EXECFN) are filled into ``auxv``.
    """
    # Strings first, upwards from the lowest; the block ends just below a NULL word at STACK_TOP - 8.
    strings = [random_bytes, PLATFORM + b"\0", *(s + b"\0" for s in argv + env), execfn + b"\0"]
    blob = b"".join(strings)
    base = (STACK_TOP - 8 - len(blob)) & ~15
    space.write(base, blob)
    addr = list(itertools.accumulate((len(s) for s in strings[:-1]), initial=base))
    auxv[Auxv.AT_RANDOM] = addr[0]
    auxv[Auxv.AT_PLATFORM] = addr[1]
    auxv[Auxv.AT_EXECFN] = addr[-1]
    argv_ptrs = addr[2: 2 + len(argv)]
    env_ptrs = addr[2 + len(argv): -1]
    words = [len(argv), *argv_ptrs, 0, *env_ptrs, 0]
    for key, value in auxv.items():
        words += [key, value]
    words += [Auxv.AT_NULL, 0]
    sp = (base - 8 * len(words)) & ~15
    space.write(sp, b"".join(w.to_bytes(8, "little") for w in words))
    return sp
