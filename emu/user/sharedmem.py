"""MAP_SHARED memory that other processes see: the pages of a shared mapping, their lock, and their futexes.

Follows mmap(2) (MAP_SHARED: "updates to the mapping are visible to other processes mapping the same region"),
fork(2) (shared mappings stay shared in the child) and futex(2) (a futex without FUTEX_PRIVATE_FLAG is keyed by
the page it lives in, so a process waiting on it wakes from another process).  Since the guest's process is the
emulator's own host process (``emu.user.forkexec``), a shared mapping must live in memory the host shares: its
bytes are a host file's, a memfd for anonymous memory (MAP_SHARED | MAP_ANONYMOUS, /dev/zero) and the mapped file
itself otherwise, and every access is a pread(2)/pwrite(2) of it.  So a page of it never enters the TLB as a
``bytearray`` (``cpu.memory``): accesses take the slow path, which asks :class:`SharedPages` each time, and what
another process wrote is seen at once, through the host's page cache.

Atomicity.  The emulator's instructions are not atomic on the host (a ``lock cmpxchg`` is a load then a store),
so processes sharing memory take turns at it: the first access to a shared mapping takes a POSIX record lock
(fcntl(2) F_SETLKW, owned per process, so parent and child are distinct owners) on a lock file made at the
process's first shared mapping and inherited across fork (one per family of processes, so no two locks can
deadlock), and the process keeps it until its next system call or the end of its run slice
(:data:`SHARED_SLICE` instructions, ``emu.user.process``), which lie between instructions; a system call's own
accesses take and drop it each time, so a call that blocks never holds it.

A page wholly past the end of the file is SIGBUS (BUS_ADRERR at the address) for an instruction and EFAULT for a
system call, as Linux's fault handler gives (``mm/filemap.c``, ``filemap_fault``).  Futexes in a shared mapping
(FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAKE, FUTEX_WAKE_BITSET without FUTEX_PRIVATE_FLAG) are the host's futex on
a host mapping of the same file page, whose key (inode, offset) is the same in every process.

Not modelled: atomicity against a process outside the emulated family (one that maps the file without the
emulator, or an emulated process that mapped it on its own), the bitset of
a shared wait (a shared FUTEX_WAKE_BITSET wakes as FUTEX_WAKE), the other futex operations on shared memory (they
act on this process's threads only), MAP_SHARED | MAP_GROWSDOWN.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import mmap
import os
import platform

from cpu.exceptions import GuestFault, PFError, Vector
from cpu.memory import PAGE_SHIFT, PAGE_SIZE
from emu.user.linux import LIBC, Errno

SHARED_SLICE = 100_000
"""Instructions a process runs at most between two chances to drop the lock of shared memory it holds."""
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(platform.machine(), 202)
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1


class BusError(GuestFault):
    """An access to a page of a file mapping wholly past the end of the file: SIGBUS, BUS_ADRERR."""

    def __init__(self, address: int, access_code: int) -> None:
        super().__init__(Vector.PF, access_code | PFError.U | PFError.P, address, detail="past the end of the file")


class SharedLock:
    """The lock of this process's family on the shared memory it uses: a POSIX record lock on a lock file made
    at the first MAP_SHARED mapping and inherited by the processes forked after it, which are those that can
    share a mapping with this one."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.held = False
        self.keep = True
        """Keep the lock after an access (guest instructions), or drop it at once (system calls)."""

    def prepare(self) -> None:
        """Make the lock file, at the first shared mapping (before any fork that should share it)."""
        if self.fd is None:
            fd = os.memfd_create("emu-shared-lock", os.MFD_CLOEXEC)
            os.ftruncate(fd, 1)
            self.fd = fd

    def take(self) -> None:
        if not self.held and self.fd is not None:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)
            self.held = True

    def release(self) -> None:
        if self.held:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)  # type: ignore[arg-type]
            self.held = False

    def done(self) -> None:
        """An access finished: drop the lock unless guest code is running."""
        if not self.keep:
            self.release()


class SharedPages:
    """The host file behind one MAP_SHARED mapping (and the pieces it is split into); a slow-path TLB entry
    (``cpu.memory.TlbEntry``): ``read``/``write`` take file offsets."""

    def __init__(self, host: int, lock: SharedLock, name: str = "", *, writable: bool = True,
                 anonymous: bool = False) -> None:
        self.fd = host
        self.anonymous = anonymous
        self.lock = lock
        self.name = name
        self.writable = writable
        lock.prepare()
        self.futex_pages: dict[int, tuple[mmap.mmap, int]] = {}

    @classmethod
    def anonymous(cls, size: int, lock: SharedLock) -> SharedPages:
        """Anonymous shared memory of ``size`` bytes (zeros), as shmem backs it in Linux."""
        fd = os.memfd_create("emu-shared", os.MFD_CLOEXEC)
        os.ftruncate(fd, size)
        return cls(fd, lock, anonymous=True)

    @classmethod
    def of_file(cls, host: int, lock: SharedLock, name: str, writable: bool) -> SharedPages:
        return cls(fcntl.fcntl(host, fcntl.F_DUPFD_CLOEXEC, 3), lock, name, writable=writable)

    def check(self, offset: int, address: int, access_code: int) -> None:
        """Raise :class:`BusError` when the page at file ``offset`` lies wholly past the end of the file."""
        if offset >= os.fstat(self.fd).st_size:
            raise BusError(address, access_code)

    def read(self, offset: int, length: int) -> bytes:
        self.lock.take()
        try:
            data = os.pread(self.fd, length, offset)
        finally:
            self.lock.done()
        return data + bytes(length - len(data))       # the file shrank meanwhile: zeros, not a host error

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self.lock.take()
        try:
            os.pwrite(self.fd, data, offset)
        finally:
            self.lock.done()

    # -- futexes -------------------------------------------------------------------------------------
    def _host_word(self, offset: int) -> int | None:
        """The host address of the futex word at file ``offset`` (a host mapping of its page), or None."""
        page = offset & ~(PAGE_SIZE - 1)
        if page not in self.futex_pages:
            if not self.writable or page >= os.fstat(self.fd).st_size:
                return None
            view = mmap.mmap(self.fd, PAGE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=page)
            self.futex_pages[page] = (view, ctypes.addressof(ctypes.c_char.from_buffer(view)))
        return self.futex_pages[page][1] + (offset - page)

    def futex_wait(self, offset: int, value: int, timeout_ns: int | None) -> int:
        """The host's FUTEX_WAIT on the word: 0 when woken, else the (Linux) errno: EAGAIN when the word is not
        ``value``, ETIMEDOUT, EINTR for a host signal.  The GIL is released meanwhile (ctypes)."""
        address = self._host_word(offset)
        if address is None:
            return Errno.EFAULT
        self.lock.release()
        spec = None
        if timeout_ns is not None:
            spec = (ctypes.c_long * 2)(timeout_ns // 1_000_000_000, timeout_ns % 1_000_000_000)
        result = LIBC.syscall(_SYS_FUTEX, ctypes.c_void_p(address), _FUTEX_WAIT, ctypes.c_uint32(value & 0xFFFF_FFFF),
                              spec, None, 0)
        if result == 0:
            return 0
        return {errno.EAGAIN: Errno.EAGAIN, errno.ETIMEDOUT: Errno.ETIMEDOUT}.get(ctypes.get_errno(), Errno.EINTR)

    def futex_wake(self, offset: int, count: int) -> int:
        """The host's FUTEX_WAKE on the word: how many host waiters (other processes) woke."""
        address = self._host_word(offset)
        if address is None or count <= 0:
            return 0
        woken = LIBC.syscall(_SYS_FUTEX, ctypes.c_void_p(address), _FUTEX_WAKE, ctypes.c_int(count), None, None, 0)
        return max(woken, 0)

    def __del__(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def page_offset(vpn: int, start: int, offset: int) -> int:
    """The file offset of virtual page ``vpn`` in a mapping at ``start`` of file ``offset``."""
    return offset + (vpn << PAGE_SHIFT) - start
