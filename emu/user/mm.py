"""System calls on the address space: mmap, munmap, mprotect, mremap, madvise, brk.

Follows mmap(2), munmap(2), mprotect(2), mremap(2), madvise(2) and brk(2)
over ``emu.user.address_space``.  A file mapping is a private copy of the
file's bytes read when it is made (bytes past the end of the file are zero);
that is exact for MAP_PRIVATE and for read-only MAP_SHARED, and a writable
MAP_SHARED file mapping is refused with ENODEV rather than silently losing
writes.  Anonymous MAP_SHARED memory is private too, which no one can tell
without fork.

Not modelled: MAP_GROWSDOWN, MAP_HUGETLB page sizes, RLIMIT_AS/RLIMIT_DATA,
mlock, the re-read of file data after MADV_DONTNEED (pages read back as zero).
"""

from __future__ import annotations

import fcntl
import os

from cpu.memory import PAGE_MASK, PAGE_SHIFT
from emu.user.address_space import PROT_READ, PROT_WRITE, USER_TOP, page_round_up
from emu.user.kernel import Kernel
from emu.user.linux import O_ACCMODE, O_WRONLY, Errno, SyscallError, linux_open_flags
from emu.user.sysent import syscall

MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE = 0x1, 0x2, 0x3
MAP_TYPE = 0xF
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_FIXED_NOREPLACE = 0x100000
PROT_GROWSDOWN, PROT_GROWSUP = 0x0100_0000, 0x0200_0000
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MADV_DONTNEED = 4
MMAP_MIN_ADDR = 0x10000
"""Lowest address mmap hands out (Linux's default vm.mmap_min_addr)."""


def _check_range(start: int, length: int) -> None:
    if start & PAGE_MASK or start + length > USER_TOP:
        raise SyscallError(Errno.EINVAL)


@syscall("mmap")
def mmap(k: Kernel, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    if length == 0 or offset & PAGE_MASK or flags & MAP_TYPE not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise SyscallError(Errno.EINVAL)
    prot &= 7
    size = page_round_up(length)
    if size > USER_TOP:
        raise SyscallError(Errno.ENOMEM)
    data = b""
    if not flags & MAP_ANONYMOUS:
        host = k.fds.host(fd)
        if linux_open_flags(fcntl.fcntl(host, fcntl.F_GETFL)) & O_ACCMODE == O_WRONLY:
            raise SyscallError(Errno.EACCES)
        if flags & MAP_TYPE != MAP_PRIVATE and prot & PROT_WRITE:
            k.say_once("writable MAP_SHARED file mappings are not modelled; mmap returns ENODEV")
            raise SyscallError(Errno.ENODEV)
        data = os.pread(host, size, offset)
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        _check_range(addr, size)
        if flags & MAP_FIXED_NOREPLACE and not k.mem.is_free(addr, size):
            raise SyscallError(Errno.EEXIST)
        start = addr
    else:
        start = _place(k, addr, size)
    k.mem.map(start, size, prot, data)
    return start


def _place(k: Kernel, hint: int, size: int) -> int:
    """The hint when that range is free (as Linux does), else a free range."""
    hint = page_round_up(hint)
    if MMAP_MIN_ADDR <= hint and hint + size <= USER_TOP and k.mem.is_free(hint, size):
        return hint
    start = k.mem.find_free(size)
    if start is None:
        raise SyscallError(Errno.ENOMEM)
    return start


@syscall("munmap")
def munmap(k: Kernel, addr: int, length: int) -> int:
    if length == 0:
        raise SyscallError(Errno.EINVAL)
    _check_range(addr, length)
    k.mem.unmap(addr, length)
    return 0


@syscall("mprotect")
def mprotect(k: Kernel, addr: int, length: int, prot: int) -> int:
    if addr & PAGE_MASK or prot & ~(7 | PROT_GROWSDOWN | PROT_GROWSUP):
        raise SyscallError(Errno.EINVAL)
    if length and not k.mem.protect(addr, length, prot & 7):
        raise SyscallError(Errno.ENOMEM)
    return 0


@syscall("mremap")
def mremap(k: Kernel, old_address: int, old_size: int, new_size: int, flags: int, new_address: int) -> int:
    if (old_address & PAGE_MASK or flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED) or old_size == 0 or new_size == 0
            or (flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE)):
        raise SyscallError(Errno.EINVAL)
    old_size, new_size = page_round_up(old_size), page_round_up(new_size)
    mem = k.mem
    if not mem.is_mapped(old_address, old_size):
        raise SyscallError(Errno.EFAULT)
    prot = mem.prot[(old_address + old_size - 1) >> PAGE_SHIFT]
    if flags & MREMAP_FIXED:
        _check_range(new_address, new_size)
        if new_address < old_address + old_size and old_address < new_address + new_size:
            raise SyscallError(Errno.EINVAL)
        dest = new_address
    elif new_size <= old_size:
        mem.unmap(old_address + new_size, old_size - new_size)
        return old_address
    elif old_address + new_size <= USER_TOP and mem.is_free(old_address + old_size, new_size - old_size):
        mem.map(old_address + old_size, new_size - old_size, prot)
        return old_address
    elif not flags & MREMAP_MAYMOVE:
        raise SyscallError(Errno.ENOMEM)
    else:
        dest = _place(k, 0, new_size)
    kept = min(old_size, new_size)
    mem.unmap(old_address + kept, old_size - kept)
    mem.move(old_address, kept, dest)
    if new_size > kept:
        mem.map(dest + kept, new_size - kept, prot)
    return dest


@syscall("madvise")
def madvise(k: Kernel, addr: int, length: int, advice: int) -> int:
    if addr & PAGE_MASK:
        raise SyscallError(Errno.EINVAL)
    if advice == MADV_DONTNEED:
        k.mem.zero(addr, length)
    return 0


@syscall("brk")
def brk(k: Kernel, addr: int) -> int:
    """Move the program break; on failure return the old one (brk(2), "C library/kernel differences")."""
    mem = k.mem
    if addr < mem.brk_start:
        return mem.brk
    old_end, new_end = page_round_up(mem.brk), page_round_up(addr)
    if new_end > old_end:
        if new_end > USER_TOP or not mem.is_free(old_end, new_end - old_end):
            return mem.brk
        try:
            mem.map(old_end, new_end - old_end, PROT_READ | PROT_WRITE)
        except MemoryError:
            return mem.brk
    elif new_end < old_end:
        mem.unmap(new_end, old_end - new_end)
    mem.brk = addr
    return addr
