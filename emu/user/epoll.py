"""epoll(7) on the host's epoll: epoll_create, epoll_create1, epoll_ctl, epoll_wait, epoll_pwait.

Follows epoll_create(2), epoll_ctl(2) and epoll_wait(2).  An epoll instance is a host epoll
(``select.epoll``); the guest's descriptor is a duplicate of it.  The host reports ready host
descriptors, so each instance keeps the guest's 64-bit ``data`` for every host descriptor it watches;
``struct epoll_event`` is the x86-64 layout (packed: events, then data at offset 4), whatever the
host's.  A wait blocks as every blocking call does (``emu.user.signals.wait_until``, which parks the
thread while other threads run); a signal ends it with EINTR, never restarted, as epoll_wait(2) says.

Not modelled: epoll_pwait's signal mask (the wait runs with the thread's own), epoll_pwait2, an
epoll descriptor that was duplicated (dup, fcntl F_DUPFD) or inherited through execve (the copy is not
an epoll instance to epoll_ctl and epoll_wait: EINVAL), and freeing an instance before the process ends.
"""

from __future__ import annotations

import os
import select
import struct
from typing import TYPE_CHECKING

from emu.user.linux import Errno, SyscallError, s32
from emu.user.signals import wait_until
from emu.user.sigstate import Interrupted
from emu.user.sysent import syscall

if TYPE_CHECKING:
    from emu.user.kernel import Kernel

EVENT = struct.Struct("<IQ")
"""struct epoll_event on x86-64: __u32 events; __u64 data (packed)."""
EPOLL_CLOEXEC = 0o2000000
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EP_MAX_EVENTS = 0x7FFF_FFFF // EVENT.size


class Epoll:
    """One host epoll instance and the guest's data for each host descriptor it watches."""

    def __init__(self) -> None:
        self.poller = select.epoll()
        self.data: dict[int, int] = {}


INSTANCES: dict[int, Epoll] = {}
"""Epoll instances by the host descriptor behind the guest's (a fork's child shares them, as in Linux)."""


def _create(k: Kernel, cloexec: bool) -> int:
    instance = Epoll()
    host = os.dup(instance.poller.fileno())
    os.set_inheritable(host, False)
    fd = k.fds.add(host, cloexec=cloexec)
    INSTANCES[host] = instance
    return fd


@syscall("epoll_create")
def epoll_create(k: Kernel, size: int) -> int:
    if s32(size) <= 0:
        raise SyscallError(Errno.EINVAL)
    return _create(k, False)


@syscall("epoll_create1")
def epoll_create1(k: Kernel, flags: int) -> int:
    if flags & ~EPOLL_CLOEXEC:
        raise SyscallError(Errno.EINVAL)
    return _create(k, bool(flags & EPOLL_CLOEXEC))


def _instance(k: Kernel, epfd: int) -> Epoll:
    instance = INSTANCES.get(k.fds.host(epfd))
    if instance is None:
        raise SyscallError(Errno.EINVAL)
    return instance


@syscall("epoll_ctl")
def epoll_ctl(k: Kernel, epfd: int, op: int, fd: int, event: int) -> int:
    instance = _instance(k, epfd)
    host = k.fds.host(fd)
    if fd & 0xFFFF_FFFF == epfd & 0xFFFF_FFFF:
        raise SyscallError(Errno.EINVAL)
    if op in (EPOLL_CTL_ADD, EPOLL_CTL_MOD):
        events, data = EVENT.unpack(k.mem.read(event, EVENT.size))
        if op == EPOLL_CTL_ADD:
            instance.poller.register(host, events)      # EEXIST, EPERM (a regular file) from the host
        else:
            instance.poller.modify(host, events)        # ENOENT from the host
        instance.data[host] = data
    elif op == EPOLL_CTL_DEL:
        instance.poller.unregister(host)
        instance.data.pop(host, None)
    else:
        raise SyscallError(Errno.EINVAL)
    return 0


@syscall("epoll_wait")
def epoll_wait(k: Kernel, epfd: int, events: int, maxevents: int, timeout: int) -> int:
    instance = _instance(k, epfd)
    count = s32(maxevents)
    if not 0 < count <= EP_MAX_EVENTS:
        raise SyscallError(Errno.EINVAL)
    wait_ms = s32(timeout)

    def ready() -> list[tuple[int, int]] | None:
        return instance.poller.poll(0, count) or None

    if wait_ms == 0:
        got = ready() or []
    else:
        try:
            got = wait_until(k, ready, [(instance.poller.fileno(), select.POLLIN)],
                             None if wait_ms < 0 else wait_ms) or []
        except Interrupted:
            raise SyscallError(Errno.EINTR) from None
    k.mem.write(events, b"".join(EVENT.pack(mask, instance.data.get(host, 0)) for host, mask in got))
    return len(got)


@syscall("epoll_pwait")
def epoll_pwait(k: Kernel, epfd: int, events: int, maxevents: int, timeout: int, sigmask: int) -> int:
    """epoll_wait; the signal mask is not applied (see the module's docstring)."""
    return epoll_wait(k, epfd, events, maxevents, timeout)
