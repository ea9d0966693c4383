"""epoll(7): epoll_create(2), epoll_create1(2), epoll_ctl(2), epoll_wait(2), epoll_pwait(2), epoll_pwait2(2).

A guest epoll instance is a host one (like every guest descriptor, ``emu.user.fdtable``): the guest's
descriptors are registered by their host descriptors, with the guest's own events and its 64-bit ``data``,
which the host kernel hands back untouched; so level and edge triggering, EPOLLONESHOT, EPOLLEXCLUSIVE,
automatic removal when the last descriptor of a file closes, and an epoll inside an epoll are the host's.
Waiting sleeps in ``emu.user.signals.wait_until`` (on the epoll descriptor itself, readable when an event is
ready), so a signal interrupts it with EINTR as on Linux (epoll_wait is never restarted).

``struct epoll_event`` is packed on x86-64 (12 bytes: events, then data at offset 4), in the guest always;
the host's layout is its own architecture's.  epoll_pwait and epoll_pwait2 wait with their signal mask
(``emu.user.signals.with_mask``, as ppoll and pselect6 do).
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

from emu.user.fdtable import OpenFile
from emu.user.kernel import Kernel
from emu.user.linux import LIBC, O_CLOEXEC, Errno, SyscallError, Timespec, host_call, s32
from emu.user.signals import wait_until, with_mask
from emu.user.sigstate import Interrupted
from emu.user.sysent import syscall

EPOLL_CLOEXEC = O_CLOEXEC
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EP_MAX_EVENTS = 0x7FFFFFFF // 12
"""epoll_wait's maxevents above which Linux says EINVAL (INT_MAX / sizeof(struct epoll_event))."""
POLLIN = 0x1

_GUEST_EVENT = struct.Struct("<IQ")    # struct epoll_event on x86-64: events (0), data (4), packed


class _HostEvent(ctypes.Structure):
    """struct epoll_event as this host's C library has it (packed only on x86-64)."""

    _pack_ = 1 if platform.machine() in ("x86_64", "AMD64") else 0
    _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]


LIBC.epoll_ctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(_HostEvent)]
LIBC.epoll_wait.argtypes = [ctypes.c_int, ctypes.POINTER(_HostEvent), ctypes.c_int, ctypes.c_int]


def _epoll(k: Kernel, epfd: int) -> OpenFile:
    file = k.fds.get(epfd)
    if not os.readlink(f"/proc/self/fd/{file.host}").endswith("[eventpoll]"):
        raise SyscallError(Errno.EINVAL)
    return file


@syscall("epoll_create")
def epoll_create(k: Kernel, size: int) -> int:
    if s32(size) <= 0:
        raise SyscallError(Errno.EINVAL)
    return epoll_create1(k, 0)


@syscall("epoll_create1")
def epoll_create1(k: Kernel, flags: int) -> int:
    if flags & ~EPOLL_CLOEXEC:
        raise SyscallError(Errno.EINVAL)
    host = host_call(LIBC.epoll_create1(os.O_CLOEXEC))
    return k.fds.add(host, cloexec=bool(flags & EPOLL_CLOEXEC))


@syscall("epoll_ctl")
def epoll_ctl(k: Kernel, epfd: int, op: int, fd: int, event: int) -> int:
    ep = _epoll(k, epfd)
    target = k.fds.get(fd)
    if target is ep:
        raise SyscallError(Errno.EINVAL)
    host_event = _HostEvent()
    if op in (EPOLL_CTL_ADD, EPOLL_CTL_MOD):
        host_event.events, host_event.data = _GUEST_EVENT.unpack(k.mem.read(event, _GUEST_EVENT.size))
    elif op != EPOLL_CTL_DEL:
        raise SyscallError(Errno.EINVAL)
    return host_call(LIBC.epoll_ctl(ep.host, op, target.host, ctypes.byref(host_event)))


def _wait(k: Kernel, epfd: int, events: int, maxevents: int, timeout_ms: int | None) -> int:
    ep = _epoll(k, epfd)
    maxevents = s32(maxevents)
    if not 0 < maxevents <= EP_MAX_EVENTS:
        raise SyscallError(Errno.EINVAL)
    room = min(maxevents, 1024)
    ready = (_HostEvent * room)()

    def check() -> int | None:
        return host_call(LIBC.epoll_wait(ep.host, ready, room, 0)) or None

    if timeout_ms == 0:
        count = check() or 0
    else:
        try:
            count = wait_until(k, check, [(ep.host, POLLIN)], timeout_ms) or 0
        except Interrupted:
            raise SyscallError(Errno.EINTR) from None
    k.mem.write(events, b"".join(_GUEST_EVENT.pack(e.events, e.data) for e in ready[:count]))
    return count


@syscall("epoll_wait")
def epoll_wait(k: Kernel, epfd: int, events: int, maxevents: int, timeout: int) -> int:
    return _wait(k, epfd, events, maxevents, None if s32(timeout) < 0 else s32(timeout))


@syscall("epoll_pwait")
def epoll_pwait(k: Kernel, epfd: int, events: int, maxevents: int, timeout: int, sigmask: int,
                sigsetsize: int) -> int:
    timeout_ms = None if s32(timeout) < 0 else s32(timeout)
    return with_mask(k, sigmask, sigsetsize, lambda: _wait(k, epfd, events, maxevents, timeout_ms))


@syscall("epoll_pwait2")
def epoll_pwait2(k: Kernel, epfd: int, events: int, maxevents: int, timeout: int, sigmask: int,
                 sigsetsize: int) -> int:
    timeout_ms = k.read_timeout_ms(timeout, Timespec)
    return with_mask(k, sigmask, sigsetsize, lambda: _wait(k, epfd, events, maxevents, timeout_ms))
