"""Calling the emulated kernel the way a guest program does: registers in, rax out."""

from __future__ import annotations

import io
from pathlib import Path

from cpu.state import CpuState
from emu.user.address_space import PROT_READ, PROT_WRITE, AddressSpace
from emu.user.linux import MASK64
from emu.user.syscalls import Kernel
from emu.user.sysent import NUMBERS

SCRATCH = 0x1000_0000
"""A 64 KiB read-write region of every test kernel's address space, for syscall arguments."""
BRK_START = 0x2000_0000


def make_kernel(directory: Path) -> Kernel:
    """A kernel with fixed time (0), seeded randomness, and its messages kept in ``kernel.log``."""
    space = AddressSpace()
    space.map(SCRATCH, 0x10000, PROT_READ | PROT_WRITE)
    space.brk_start = space.brk = BRK_START
    exe = directory / "prog"
    exe.write_bytes(b"")
    return Kernel(CpuState(), space, exe=str(exe), clock=lambda: 0, epoch_ns=0, random_seed=7, hostname="emu",
                  log=io.StringIO())


def call(k: Kernel, name: str, *args: int) -> int:
    """Make system call ``name`` with ``args``; return rax as a signed value."""
    st = k.state
    st.rax = NUMBERS[name]
    for register, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args, strict=False):
        setattr(st, register, value & MASK64)
    k.handle()
    return st.rax - (1 << 64) if st.rax >> 63 else st.rax


def put_string(k: Kernel, address: int, text: str | bytes) -> int:
    """Write a NUL-terminated string into guest memory; return its address."""
    k.mem.write(address, (text.encode() if isinstance(text, str) else text) + b"\0")
    return address
