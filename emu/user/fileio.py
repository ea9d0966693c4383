"""System calls on file descriptors: data in and out, duplication, pipes, control, waiting.

Follows the man pages read(2), write(2), readv(2), pread(2), sendfile(2), lseek(2),
close(2), dup(2), pipe(2), fcntl(2), ioctl(2) with ioctl_tty(2), poll(2) and
select(2).  Every guest descriptor is a host one (``emu.user.fdtable``), so
these calls forward to the host and copy between host buffers and guest memory.

Terminal ioctls are forwarded only for descriptors that are host terminals;
others get ENOTTY, as a kernel would.  A write to a pipe with no reader
raises SIGPIPE in the guest (its default action ends the process).  Reads and
writes that would block wait in ``emu.user.signals.wait_until``, so that a
signal interrupts them as it would on Linux; poll and select end with EINTR.
Not modelled: signal masks in ppoll/pselect6, record locks beyond forwarding
them.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import termios
from enum import IntEnum

from emu.user.fdtable import OpenFile
from emu.user.kernel import Kernel
from emu.user.linux import (
    O_CLOEXEC,
    O_NONBLOCK,
    Errno,
    Signal,
    SyscallError,
    Timespec,
    Timeval,
    host_open_flags,
    linux_open_flags,
    s32,
    s64,
)
from emu.user.signals import SI_USER, ready_for, siginfo, wait_until, with_mask
from emu.user.sigstate import Interrupted
from emu.user.sysent import syscall

MAX_IO = 1 << 24
"""Bytes moved by one call at most; a shorter count is a legal short read or write."""
IOV_MAX = 1024
_IOVEC = struct.Struct("<QQ")          # struct iovec: iov_base, iov_len
_POLLFD = struct.Struct("<iHH")        # struct pollfd: fd, events, revents
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20


# -- data -----------------------------------------------------------------------
def _wait(k: Kernel, host: int, events: int) -> None:
    """Sleep until ``host`` is ready, as a blocking descriptor does; a signal interrupts the wait (EINTR or
    restart, ``emu.user.signals``) before any data moves.  Non-blocking descriptors do not wait."""
    if os.get_blocking(host):
        wait_until(k, ready_for(host, events | POLLERR | POLLHUP), [(host, events)])


def _write_host(k: Kernel, host: int, data: bytes, offset: int | None = None) -> int:
    try:
        if offset is None:
            _wait(k, host, POLLOUT)
        return os.write(host, data) if offset is None else os.pwrite(host, data, offset)
    except BrokenPipeError:
        k.signals.post(Signal.SIGPIPE, siginfo(Signal.SIGPIPE, SI_USER, k.pid, os.getuid()))
        raise SyscallError(Errno.EPIPE) from None


def _iovecs(k: Kernel, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    if iovcnt > IOV_MAX:
        raise SyscallError(Errno.EINVAL)
    return list(_IOVEC.iter_unpack(k.mem.read(iov, _IOVEC.size * iovcnt)))


@syscall("read")
def read(k: Kernel, fd: int, buf: int, count: int) -> int:
    host = k.fds.host(fd)
    _wait(k, host, POLLIN)
    data = os.read(host, min(count, MAX_IO))
    k.mem.write(buf, data)
    return len(data)


@syscall("write")
def write(k: Kernel, fd: int, buf: int, count: int) -> int:
    host = k.fds.host(fd)
    return _write_host(k, host, k.mem.read(buf, min(count, MAX_IO)))


@syscall("pread64")
def pread64(k: Kernel, fd: int, buf: int, count: int, offset: int) -> int:
    data = os.pread(k.fds.host(fd), min(count, MAX_IO), s64(offset))
    k.mem.write(buf, data)
    return len(data)


@syscall("pwrite64")
def pwrite64(k: Kernel, fd: int, buf: int, count: int, offset: int) -> int:
    host = k.fds.host(fd)
    return _write_host(k, host, k.mem.read(buf, min(count, MAX_IO)), s64(offset))


@syscall("readv")
def readv(k: Kernel, fd: int, iov: int, iovcnt: int) -> int:
    host = k.fds.host(fd)
    vectors = _iovecs(k, iov, iovcnt)
    _wait(k, host, POLLIN)
    data = os.read(host, min(sum(n for _, n in vectors), MAX_IO))
    done = 0
    for base, n in vectors:
        k.mem.write(base, data[done: done + n])
        done += n
        if done >= len(data):
            break
    return len(data)


@syscall("writev")
def writev(k: Kernel, fd: int, iov: int, iovcnt: int) -> int:
    host = k.fds.host(fd)
    parts, total = [], 0
    for base, n in _iovecs(k, iov, iovcnt):
        n = min(n, MAX_IO - total)
        parts.append(k.mem.read(base, n))
        total += n
    return _write_host(k, host, b"".join(parts))


@syscall("sendfile")
def sendfile(k: Kernel, out_fd: int, in_fd: int, offset: int, count: int) -> int:
    src, dst = k.fds.host(in_fd), k.fds.host(out_fd)
    n = min(count, MAX_IO)
    if offset:
        position = s64(int.from_bytes(k.mem.read(offset, 8), "little"))
        data = os.pread(src, n, position)
    else:
        data = os.read(src, n)
    done = _write_host(k, dst, data)
    if offset:
        k.write_u64(offset, position + done)
    elif done < len(data):
        os.lseek(src, done - len(data), os.SEEK_CUR)    # what was not written stays unread
    return done


@syscall("lseek")
def lseek(k: Kernel, fd: int, offset: int, whence: int) -> int:
    file = k.fds.get(fd)
    if file.listing is not None and whence == os.SEEK_SET:
        if s64(offset) < 0:
            raise SyscallError(Errno.EINVAL)
        file.position = offset       # a directory: the offset is getdents64's d_off cookie
        return offset
    return os.lseek(file.host, s64(offset), whence)


@syscall("fsync")
def fsync(k: Kernel, fd: int) -> int:
    os.fsync(k.fds.host(fd))
    return 0


@syscall("fdatasync")
def fdatasync(k: Kernel, fd: int) -> int:
    os.fdatasync(k.fds.host(fd))
    return 0


@syscall("fadvise64")
def fadvise64(k: Kernel, fd: int, offset: int, length: int, advice: int) -> int:
    """Advice only: checked, then ignored (posix_fadvise(2))."""
    k.fds.get(fd)
    if advice > 5:
        raise SyscallError(Errno.EINVAL)
    return 0


@syscall("ftruncate")
def ftruncate(k: Kernel, fd: int, length: int) -> int:
    os.ftruncate(k.fds.host(fd), s64(length))
    return 0


# -- descriptors ------------------------------------------------------------------
@syscall("close")
def close(k: Kernel, fd: int) -> int:
    k.fds.close(fd)
    return 0


CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 0x2, 0x4


@syscall("close_range")
def close_range(k: Kernel, first: int, last: int, flags: int) -> int:
    """close_range(2): close (or with CLOSE_RANGE_CLOEXEC mark close-on-exec) guest descriptors first..last.
    The table is the process's own already, so CLOSE_RANGE_UNSHARE changes nothing."""
    first, last = first & 0xFFFF_FFFF, last & 0xFFFF_FFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        raise SyscallError(Errno.EINVAL)
    for fd in [fd for fd in k.fds.files if first <= fd <= last]:
        if flags & CLOSE_RANGE_CLOEXEC:
            k.fds.files[fd].cloexec = True
        else:
            k.fds.close(fd)
    return 0


@syscall("dup")
def dup(k: Kernel, fd: int) -> int:
    return k.fds.add(os.dup(k.fds.host(fd)))


@syscall("dup2")
def dup2(k: Kernel, oldfd: int, newfd: int) -> int:
    host = k.fds.host(oldfd)
    if oldfd == newfd:
        return newfd
    k.fds.install(newfd & 0xFFFF_FFFF, os.dup(host))
    return newfd


@syscall("dup3")
def dup3(k: Kernel, oldfd: int, newfd: int, flags: int) -> int:
    host = k.fds.host(oldfd)
    if oldfd == newfd or flags & ~O_CLOEXEC:
        raise SyscallError(Errno.EINVAL)
    k.fds.install(newfd & 0xFFFF_FFFF, os.dup(host), cloexec=bool(flags & O_CLOEXEC))
    return newfd


@syscall("pipe")
def pipe(k: Kernel, pipefd: int) -> int:
    return pipe2(k, pipefd, 0)


@syscall("pipe2")
def pipe2(k: Kernel, pipefd: int, flags: int) -> int:
    if flags & ~(O_CLOEXEC | O_NONBLOCK):
        raise SyscallError(Errno.EINVAL)
    k.mem.write(pipefd, bytes(8))       # EFAULT before anything is created
    r, w = os.pipe2(os.O_CLOEXEC | host_open_flags(flags & O_NONBLOCK))
    cloexec = bool(flags & O_CLOEXEC)
    rfd = k.fds.add(r, cloexec=cloexec)
    try:
        wfd = k.fds.add(w, cloexec=cloexec)
    except SyscallError:
        k.fds.close(rfd)
        raise
    k.mem.write(pipefd, struct.pack("<ii", rfd, wfd))
    return 0


class Fcntl(IntEnum):
    """fcntl(2) commands (asm-generic/fcntl.h)."""

    F_DUPFD = 0
    F_GETFD = 1
    F_SETFD = 2
    F_GETFL = 3
    F_SETFL = 4
    F_GETLK = 5
    F_SETLK = 6
    F_SETLKW = 7
    F_DUPFD_CLOEXEC = 1030


FD_CLOEXEC = 1
_FLOCK_SIZE = 32    # struct flock: l_type, l_whence, (pad), l_start, l_len, l_pid, (pad)
_HOST_LOCK_CMD = {Fcntl.F_GETLK: fcntl.F_GETLK, Fcntl.F_SETLK: fcntl.F_SETLK, Fcntl.F_SETLKW: fcntl.F_SETLKW}


@syscall("fcntl")
def fcntl_(k: Kernel, fd: int, cmd: int, arg: int) -> int:
    file = k.fds.get(fd)
    match cmd:
        case Fcntl.F_DUPFD | Fcntl.F_DUPFD_CLOEXEC:
            if not 0 <= s32(arg) < k.fds.limit:
                raise SyscallError(Errno.EINVAL)
            return k.fds.add(os.dup(file.host), cloexec=cmd == Fcntl.F_DUPFD_CLOEXEC, lowest=s32(arg))
        case Fcntl.F_GETFD:
            return FD_CLOEXEC if file.cloexec else 0
        case Fcntl.F_SETFD:
            file.cloexec = bool(arg & FD_CLOEXEC)
            return 0
        case Fcntl.F_GETFL:
            return linux_open_flags(fcntl.fcntl(file.host, fcntl.F_GETFL))
        case Fcntl.F_SETFL:
            fcntl.fcntl(file.host, fcntl.F_SETFL, host_open_flags(arg))
            return 0
        case Fcntl.F_GETLK | Fcntl.F_SETLK | Fcntl.F_SETLKW:   # struct flock is the host's layout too
            result = fcntl.fcntl(file.host, _HOST_LOCK_CMD[Fcntl(cmd)], k.mem.read(arg, _FLOCK_SIZE))
            if cmd == Fcntl.F_GETLK:
                k.mem.write(arg, result)
            return 0
    raise SyscallError(Errno.EINVAL)


# -- ioctl --------------------------------------------------------------------------
class Ioctl(IntEnum):
    """ioctl(2) requests emu knows (asm-generic/ioctls.h, ioctl_tty(2))."""

    TCGETS = 0x5401
    TCSETS = 0x5402
    TCSETSW = 0x5403
    TCSETSF = 0x5404
    TIOCGPGRP = 0x540F
    TIOCGWINSZ = 0x5413
    TIOCSWINSZ = 0x5414
    FIONREAD = 0x541B
    FIONBIO = 0x5421
    FIONCLEX = 0x5450
    FIOCLEX = 0x5451


_TTY_IOCTLS = {
    # guest request: (host request, argument size, whether the kernel writes the argument)
    Ioctl.TCGETS: (termios.TCGETS, 36, True),      # struct termios: 4 flag words, c_line, c_cc[19]
    Ioctl.TCSETS: (termios.TCSETS, 36, False),
    Ioctl.TCSETSW: (termios.TCSETSW, 36, False),
    Ioctl.TCSETSF: (termios.TCSETSF, 36, False),
    Ioctl.TIOCGPGRP: (termios.TIOCGPGRP, 4, True),
    Ioctl.TIOCGWINSZ: (termios.TIOCGWINSZ, 8, True),   # struct winsize: rows, cols, xpixel, ypixel
    Ioctl.TIOCSWINSZ: (termios.TIOCSWINSZ, 8, False),
}


@syscall("ioctl")
def ioctl(k: Kernel, fd: int, request: int, arg: int) -> int:
    file = k.fds.get(fd)
    request &= 0xFFFF_FFFF
    if request in _TTY_IOCTLS:
        if not os.isatty(file.host):
            raise SyscallError(Errno.ENOTTY)
        host_request, size, out = _TTY_IOCTLS[Ioctl(request)]
        buf = bytearray(size) if out else bytearray(k.mem.read(arg, size))
        fcntl.ioctl(file.host, host_request, buf, True)
        if out:
            k.mem.write(arg, buf)
        return 0
    match request:
        case Ioctl.FIONBIO:
            os.set_blocking(file.host, not int.from_bytes(k.mem.read(arg, 4), "little"))
            return 0
        case Ioctl.FIONREAD:
            buf = bytearray(4)
            fcntl.ioctl(file.host, termios.FIONREAD, buf, True)
            k.mem.write(arg, buf)
            return 0
        case Ioctl.FIONCLEX | Ioctl.FIOCLEX:
            file.cloexec = request == Ioctl.FIOCLEX
            return 0
    raise SyscallError(Errno.ENOTTY)


# -- waiting for descriptors --------------------------------------------------------
def _poll_hosts(k: Kernel, wanted: list[tuple[OpenFile | None, int]], timeout_ms: int | None) -> list[int]:
    """revents for each (file, events) pair; a missing file gets POLLNVAL.  The wait ends early with EINTR
    when a signal is to be delivered (poll(2) is not restarted after a handler)."""
    poller = select.poll()
    for file, events in wanted:
        if file is not None:
            poller.register(file.host, events)
    if any(file is None for file, _ in wanted):
        timeout_ms = 0

    def check() -> dict[int, int] | None:
        return dict(poller.poll(0)) or None

    if timeout_ms == 0:
        ready = dict(poller.poll(0))
    else:
        try:
            ready = wait_until(k, check, [(file.host, events) for file, events in wanted if file is not None],
                               timeout_ms) or {}
        except Interrupted:
            raise SyscallError(Errno.EINTR) from None
    always = POLLERR | POLLHUP | POLLNVAL
    return [POLLNVAL if file is None else ready.get(file.host, 0) & (events | always) for file, events in wanted]


def _poll(k: Kernel, fds: int, nfds: int, timeout_ms: int | None) -> int:
    if nfds > k.fds.limit:
        raise SyscallError(Errno.EINVAL)
    entries = list(_POLLFD.iter_unpack(k.mem.read(fds, _POLLFD.size * nfds)))
    wanted = [(k.fds.files.get(fd), events) for fd, events, _ in entries if fd >= 0]
    revents = iter(_poll_hosts(k, wanted, timeout_ms))
    out = [(fd, events, next(revents) if fd >= 0 else 0) for fd, events, _ in entries]
    k.mem.write(fds, b"".join(_POLLFD.pack(*e) for e in out))
    return sum(1 for e in out if e[2])


@syscall("poll")
def poll(k: Kernel, fds: int, nfds: int, timeout: int) -> int:
    return _poll(k, fds, nfds, None if s32(timeout) < 0 else s32(timeout))


@syscall("ppoll")
def ppoll(k: Kernel, fds: int, nfds: int, tsp: int, sigmask: int, sigsetsize: int) -> int:
    timeout_ms = k.read_timeout_ms(tsp, Timespec)
    return with_mask(k, sigmask, sigsetsize, lambda: _poll(k, fds, nfds, timeout_ms))


def _select(k: Kernel, nfds: int, sets: tuple[int, int, int], timeout_ms: int | None) -> int:
    nfds = s32(nfds)
    if not 0 <= nfds <= k.fds.limit:
        raise SyscallError(Errno.EINVAL)
    size = (nfds + 63) // 64 * 8
    bits = [int.from_bytes(k.mem.read(a, size), "little") if a else 0 for a in sets]
    masks = (POLLIN, POLLOUT, POLLPRI)
    events: dict[int, int] = {}
    for fd in range(nfds):
        for kind, mask in enumerate(masks):
            if bits[kind] >> fd & 1:
                events[fd] = events.get(fd, 0) | mask
    wanted = [(k.fds.files.get(fd), ev) for fd, ev in events.items()]
    if any(file is None for file, _ in wanted):
        raise SyscallError(Errno.EBADF)
    revents = dict(zip(events, _poll_hosts(k, wanted, timeout_ms), strict=True))
    ready_if = (POLLIN | POLLHUP | POLLERR, POLLOUT | POLLERR, POLLPRI)
    count = 0
    for kind, address in enumerate(sets):
        out = 0
        for fd, rev in revents.items():
            if bits[kind] >> fd & 1 and rev & ready_if[kind]:
                out |= 1 << fd
                count += 1
        if address:
            k.mem.write(address, out.to_bytes(size, "little"))
    return count


@syscall("select")
def select_(k: Kernel, nfds: int, readfds: int, writefds: int, exceptfds: int, timeout: int) -> int:
    return _select(k, nfds, (readfds, writefds, exceptfds), k.read_timeout_ms(timeout, Timeval))


@syscall("pselect6")
def pselect6(k: Kernel, nfds: int, readfds: int, writefds: int, exceptfds: int, timeout: int, sig: int) -> int:
    """select with a timespec and, in the sixth argument, a pointer to {const sigset_t *ss; size_t ss_len}."""
    timeout_ms = k.read_timeout_ms(timeout, Timespec)
    mask, size = struct.unpack("<QQ", k.mem.read(sig, 16)) if sig else (0, 0)
    return with_mask(k, mask, size, lambda: _select(k, nfds, (readfds, writefds, exceptfds), timeout_ms))
