"""The guest's file descriptor table: guest fd number -> host file descriptor.

Like qemu-user, every guest descriptor is backed by a real host descriptor,
so reads, writes, pipes and terminals are the host's own.  Numbers follow
open(2)/dup(2): a new descriptor is the lowest free number.  Guest fds 0, 1
and 2 start as the emulator's own stdin, stdout and stderr (or the ones the
caller passes); those are *borrowed*: closing them in the guest forgets them
but leaves the emulator's descriptors open.

FD_CLOEXEC is remembered per guest descriptor; every host descriptor emu
opens is close-on-exec.  For an execve, :meth:`FdTable.for_exec` makes each
guest descriptor without FD_CLOEXEC the host descriptor of the same number, and
:meth:`FdTable.inherited` adopts them again in the emulator that starts.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field

from emu.user.linux import Errno, SyscallError

DirEntry = tuple[int, int, bytes]
"""(inode, DT_* type, name) of one directory entry, as getdents64 reports it."""


@dataclass
class OpenFile:
    """One guest descriptor."""

    host: int
    owned: bool = True
    """emu opened the host descriptor, so closing the guest one closes it."""
    cloexec: bool = False
    listing: list[DirEntry] | None = field(default=None, repr=False)
    """A directory's entries, read at the first getdents64 (reset by lseek to 0)."""
    position: int = 0
    """Index of the next entry of ``listing`` to report."""


class FdTable:
    """Guest descriptors of one process."""

    def __init__(self, stdin: int = 0, stdout: int = 1, stderr: int = 2, limit: int = 1024) -> None:
        self.limit = limit
        """RLIMIT_NOFILE: descriptors are numbered below it."""
        self.files: dict[int, OpenFile] = {
            fd: OpenFile(host, owned=False) for fd, host in enumerate((stdin, stdout, stderr))}

    @classmethod
    def inherited(cls) -> FdTable:
        """The descriptors this process was started with, as the guest's: 0-2 borrowed, the others owned.
        Descriptors with FD_CLOEXEC (the emulator's own) are not the guest's."""
        table = cls()
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            try:
                if fd > 2 and not fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                    os.set_inheritable(fd, False)
                    table.files[fd] = OpenFile(fd)
            except OSError:
                continue            # the directory listing's own descriptor, closed by now
        for fd in range(3):
            try:
                os.fstat(fd)
            except OSError:
                del table.files[fd]
        return table

    def for_exec(self) -> None:
        """Before an execve: every guest descriptor without FD_CLOEXEC becomes the inheritable host
        descriptor of its own number; host 0-2 that the guest does not have are closed."""
        keep = {fd: file.host for fd, file in self.files.items() if not file.cloexec}
        base = max([2, *keep, *keep.values()]) + 1
        copies = {fd: fcntl.fcntl(host, fcntl.F_DUPFD_CLOEXEC, base) for fd, host in keep.items()}
        for fd, copy in copies.items():
            os.dup2(copy, fd, inheritable=True)
        for fd in range(3):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def get(self, fd: int) -> OpenFile:
        """The open file behind guest ``fd`` (an unsigned int, as the kernel reads it)."""
        file = self.files.get(fd & 0xFFFF_FFFF)
        if file is None:
            raise SyscallError(Errno.EBADF)
        return file

    def host(self, fd: int) -> int:
        return self.get(fd).host

    def add(self, host: int, *, cloexec: bool = False, lowest: int = 0) -> int:
        """Give an owned host descriptor the lowest free guest number >= ``lowest``."""
        fd = lowest
        while fd in self.files:
            fd += 1
        if fd >= self.limit:
            os.close(host)
            raise SyscallError(Errno.EMFILE)
        self.files[fd] = OpenFile(host, cloexec=cloexec)
        return fd

    def install(self, fd: int, host: int, *, cloexec: bool = False) -> None:
        """Put an owned host descriptor at guest ``fd``, closing what was there (dup2)."""
        if not 0 <= fd < self.limit:
            os.close(host)
            raise SyscallError(Errno.EBADF)
        if fd in self.files:
            self.close(fd)
        self.files[fd] = OpenFile(host, cloexec=cloexec)

    def close(self, fd: int) -> None:
        file = self.files.pop(fd & 0xFFFF_FFFF, None)
        if file is None:
            raise SyscallError(Errno.EBADF)
        if file.owned:
            os.close(file.host)

    def close_all(self) -> None:
        for fd in list(self.files):
            self.close(fd)
