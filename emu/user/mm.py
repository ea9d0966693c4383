"""System calls on the address space: mmap, munmap, mprotect, mremap, madvise, brk.

Follows mmap(2), munmap(2), mprotect(2), mremap(2), madvise(2) and brk(2) over
``emu.user.address_space``, where a mapping is a reservation and pages get host memory when first
touched.  A private file mapping reads the file's bytes when a page is first touched (bytes past the
end of the file in its last page are zero, a page wholly past it SIGBUS) and again after MADV_DONTNEED.
A MAP_SHARED mapping, anonymous or of a file, is the host's shared memory (``emu.user.sharedmem``), so
a forked child and the parent see each other's stores; writable, it needs a descriptor open for writing
(EACCES from mmap and mprotect).  /dev/zero maps as anonymous memory; what is neither a regular file nor
a block device (pipes, sockets, other character devices) is ENODEV.  RLIMIT_AS, RLIMIT_DATA and the commitment
limit (``emu run --max-memory``) give ENOMEM as Linux's do; brk past RLIMIT_DATA (the break plus the program's
data segment, ``check_data_rlimit``) leaves the break where it was.  A MAP_GROWSDOWN mapping grows down on a
fault below it as the stack does (within RLIMIT_STACK and the guard gap).

mremap of a range that is not inside one mapping is EFAULT, as Linux's ``vma_to_resize`` has it.

Not modelled: MAP_HUGETLB page sizes, mlock and MADV_* advice other than MADV_DONTNEED (accepted, without
effect), the guard gap's exception for an inaccessible (PROT_NONE) mapping below a grows-down one.
"""

from __future__ import annotations

import fcntl
import os
import stat

from cpu.memory import PAGE_MASK
from emu.user.address_space import (
    MMAP_MIN_ADDR,
    PROT_READ,
    PROT_WRITE,
    RLIMIT_DATA,
    USER_TOP,
    FileSource,
    page_round_up,
)
from emu.user.kernel import Kernel
from emu.user.linux import O_ACCMODE, O_RDWR, O_WRONLY, Errno, SyscallError, linux_open_flags
from emu.user.sharedmem import SharedPages
from emu.user.sysent import syscall

MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE = 0x1, 0x2, 0x3
MAP_TYPE = 0xF
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_GROWSDOWN = 0x100
MAP_NORESERVE = 0x4000
MAP_FIXED_NOREPLACE = 0x100000
PROT_GROWSDOWN, PROT_GROWSUP = 0x0100_0000, 0x0200_0000
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MADV_DONTNEED = 4
DEV_ZERO = (1, 5)
"""/dev/zero's device number: a mapping of it is anonymous memory."""


def _check_range(start: int, length: int) -> None:
    if start & PAGE_MASK or start + length > USER_TOP:
        raise SyscallError(Errno.EINVAL)


def _file_source(k: Kernel, fd: int, flags: int, prot: int, size: int,
                 offset: int) -> FileSource | SharedPages | None:
    """What a file mapping reads its pages from: the file's bytes (private), the file itself (shared), or None
    for /dev/zero (anonymous memory, as Linux maps it)."""
    host = k.fds.host(fd)
    access = linux_open_flags(fcntl.fcntl(host, fcntl.F_GETFL)) & O_ACCMODE
    if access == O_WRONLY:
        raise SyscallError(Errno.EACCES)
    mode = os.fstat(host)
    if stat.S_ISCHR(mode.st_mode) and (os.major(mode.st_rdev), os.minor(mode.st_rdev)) == DEV_ZERO:
        return None
    if not (stat.S_ISREG(mode.st_mode) or stat.S_ISBLK(mode.st_mode)):
        raise SyscallError(Errno.ENODEV)           # pipes, sockets, directories, character devices
    try:
        name = os.readlink(f"/proc/self/fd/{host}")
    except OSError:
        name = ""
    if flags & MAP_TYPE != MAP_PRIVATE:
        if prot & PROT_WRITE and access != O_RDWR:
            raise SyscallError(Errno.EACCES)
        return SharedPages.of_file(host, k.mem.shared_lock, name, writable=access == O_RDWR)
    source = FileSource(host, name)
    if source.fd is None:
        source.take_snapshot(host, offset, size)
    return source


@syscall("mmap")
def mmap(k: Kernel, addr: int, length: int, prot: int, flags: int, fd: int, offset: int) -> int:
    if length == 0 or offset & PAGE_MASK or flags & MAP_TYPE not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        raise SyscallError(Errno.EINVAL)
    prot &= 7
    size = page_round_up(length)
    if size > USER_TOP:
        raise SyscallError(Errno.ENOMEM)
    source = None if flags & MAP_ANONYMOUS else _file_source(k, fd, flags, prot, size, offset)
    shared = source if isinstance(source, SharedPages) else None
    if source is None and flags & MAP_TYPE != MAP_PRIVATE:
        shared = SharedPages.anonymous(size, k.mem.shared_lock)
        shared.name = "/dev/zero (deleted)"      # what Linux's maps shows for shared anonymous memory
        offset = 0
    if shared is not None:
        source = None
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        _check_range(addr, size)
        if flags & MAP_FIXED_NOREPLACE and not k.mem.is_free(addr, size):
            raise SyscallError(Errno.EEXIST)
        start = addr
    else:
        start = _place(k, addr, size)
    k.mem.map(start, size, prot, source=source, offset=offset if source is not None or shared is not None else 0,
              noreserve=bool(flags & MAP_NORESERVE), shared=shared, growsdown=bool(flags & MAP_GROWSDOWN),
              name=(source or shared).name if (source or shared) is not None else "")
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
    if prot & PROT_WRITE and length and k.mem.shared_without_write(addr, page_round_up(length)):
        raise SyscallError(Errno.EACCES)          # a shared file mapping of a descriptor not open for writing
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
    vma = mem.vma_at(old_address)
    if vma is None or old_address + old_size > vma.end:
        raise SyscallError(Errno.EFAULT)
    if flags & MREMAP_FIXED:
        _check_range(new_address, new_size)
        if new_address < old_address + old_size and old_address < new_address + new_size:
            raise SyscallError(Errno.EINVAL)
        dest = new_address
        mem.unmap(dest, new_size)
    elif new_size <= old_size:
        mem.unmap(old_address + new_size, old_size - new_size)
        return old_address
    elif (old_address + old_size == vma.end and old_address + new_size <= USER_TOP
          and mem.is_free(vma.end, new_size - old_size)):
        if not mem.fits(vma, new_size - old_size):
            raise SyscallError(Errno.ENOMEM)
        mem.grow(vma, old_address + new_size)
        return old_address
    elif not flags & MREMAP_MAYMOVE:
        raise SyscallError(Errno.ENOMEM)
    else:
        dest = _place(k, 0, new_size)
    kept = min(old_size, new_size)
    if new_size > kept and not mem.fits(vma, new_size - kept):
        raise SyscallError(Errno.ENOMEM)
    mem.unmap(old_address + kept, old_size - kept)
    mem.move(old_address, kept, dest)
    if new_size > kept:
        moved = mem.vma_at(dest + kept - 1)
        assert moved is not None
        mem.grow(moved, dest + new_size)
    return dest


@syscall("madvise")
def madvise(k: Kernel, addr: int, length: int, advice: int) -> int:
    if addr & PAGE_MASK:
        raise SyscallError(Errno.EINVAL)
    if advice == MADV_DONTNEED and length and not k.mem.discard(addr, length):
        raise SyscallError(Errno.ENOMEM)
    return 0


@syscall("brk")
def brk(k: Kernel, addr: int) -> int:
    """Move the program break; on failure return the old one (brk(2), "C library/kernel differences")."""
    mem = k.mem
    if addr < mem.brk_start:
        return mem.brk
    old_end, new_end = page_round_up(mem.brk), page_round_up(addr)
    if addr - mem.brk_start + mem.data_size > mem.limit(RLIMIT_DATA):
        return mem.brk                     # check_data_rlimit: the break and the data segment past RLIMIT_DATA
    if new_end > old_end:
        if new_end > USER_TOP or not mem.is_free(old_end, new_end - old_end):
            return mem.brk
        try:
            mem.map(old_end, new_end - old_end, PROT_READ | PROT_WRITE, name="[heap]")
        except SyscallError:
            return mem.brk
    elif new_end < old_end:
        mem.unmap(new_end, old_end - new_end)
    mem.brk = addr
    return addr
