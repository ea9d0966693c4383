"""Descriptors of files with no name: eventfd(2)/eventfd2, timerfd_create(2) with timerfd_settime and
timerfd_gettime, memfd_create(2).

Each is the host's own object behind the guest descriptor (``emu.user.fdtable``), so reading, writing,
polling, epoll, dup and fork behave as the host kernel makes them: an eventfd's counter and EFD_SEMAPHORE,
a memfd's size and seals, a timerfd's expiration count.

Time: a timerfd runs on the host's clock.  The guest's CLOCK_MONOTONIC is the host's since the program
started plus the time its sleeps skipped (``emu.user.task``: a sleep returns at once and moves the guest's
clocks), so an absolute expiry (TFD_TIMER_ABSTIME) is converted to a relative one when it is set, and a
skipped sleep does not make a timer expire sooner.  Not modelled: TFD_TIMER_CANCEL_ON_SET, the *_ALARM
clocks' wake-ups (they count like their base clocks), TFD_IOC_SET_TICKS.
"""

from __future__ import annotations

import ctypes
import os

from emu.user.kernel import Kernel
from emu.user.linux import LIBC, O_CLOEXEC, O_NONBLOCK, Errno, SyscallError, Timespec, host_call
from emu.user.sysent import syscall

EFD_SEMAPHORE, EFD_NONBLOCK, EFD_CLOEXEC = 1, O_NONBLOCK, O_CLOEXEC
TFD_NONBLOCK, TFD_CLOEXEC = O_NONBLOCK, O_CLOEXEC
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 0, 1, 7, 8, 9
MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB = 1, 2, 4
MFD_NAME_MAX = 249
"""memfd_create's longest name (NAME_MAX minus the "memfd:" prefix)."""


class _Itimerspec(ctypes.Structure):
    """struct itimerspec with the host's C types (the guest's is two x86-64 timespecs: the same on 64-bit)."""

    _fields_ = [("interval_sec", ctypes.c_long), ("interval_nsec", ctypes.c_long),
                ("value_sec", ctypes.c_long), ("value_nsec", ctypes.c_long)]


LIBC.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                                  ctypes.POINTER(_Itimerspec)]
LIBC.timerfd_gettime.argtypes = [ctypes.c_int, ctypes.POINTER(_Itimerspec)]


@syscall("eventfd")
def eventfd(k: Kernel, initval: int) -> int:
    return eventfd2(k, initval, 0)


@syscall("eventfd2")
def eventfd2(k: Kernel, initval: int, flags: int) -> int:
    if flags & ~(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC):
        raise SyscallError(Errno.EINVAL)
    host_flags = os.EFD_CLOEXEC | (os.EFD_NONBLOCK if flags & EFD_NONBLOCK else 0) \
        | (os.EFD_SEMAPHORE if flags & EFD_SEMAPHORE else 0)
    return k.fds.add(os.eventfd(initval & 0xFFFF_FFFF, host_flags), cloexec=bool(flags & EFD_CLOEXEC))


@syscall("memfd_create")
def memfd_create(k: Kernel, name: int, flags: int) -> int:
    if flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING):
        raise SyscallError(Errno.EINVAL)     # MFD_HUGETLB and the huge page sizes: no huge pages here
    text = k.mem.read_cstring(name, MFD_NAME_MAX + 1)
    if len(text) > MFD_NAME_MAX:
        raise SyscallError(Errno.EINVAL)
    sealing = os.MFD_ALLOW_SEALING if flags & MFD_ALLOW_SEALING else 0
    host = os.memfd_create(os.fsdecode(text), os.MFD_CLOEXEC | sealing)
    return k.fds.add(host, cloexec=bool(flags & MFD_CLOEXEC))


@syscall("timerfd_create")
def timerfd_create(k: Kernel, clockid: int, flags: int) -> int:
    bases = {CLOCK_REALTIME: CLOCK_REALTIME, CLOCK_MONOTONIC: CLOCK_MONOTONIC, CLOCK_BOOTTIME: CLOCK_BOOTTIME,
             CLOCK_REALTIME_ALARM: CLOCK_REALTIME, CLOCK_BOOTTIME_ALARM: CLOCK_BOOTTIME}
    if clockid not in bases or flags & ~(TFD_NONBLOCK | TFD_CLOEXEC):
        raise SyscallError(Errno.EINVAL)
    host_flags = os.O_CLOEXEC | (os.O_NONBLOCK if flags & TFD_NONBLOCK else 0)
    host = host_call(LIBC.timerfd_create(bases[clockid], host_flags))
    return k.fds.add(host, cloexec=bool(flags & TFD_CLOEXEC))


def _read_itimerspec(k: Kernel, address: int) -> _Itimerspec:
    interval, value = k.read_struct(address, Timespec), k.read_struct(address + 16, Timespec)
    for t in (interval, value):
        if t.tv_sec < 0 or not 0 <= t.tv_nsec < 1_000_000_000:
            raise SyscallError(Errno.EINVAL)
    return _Itimerspec(interval.tv_sec, interval.tv_nsec, value.tv_sec, value.tv_nsec)


def _write_itimerspec(k: Kernel, address: int, spec: _Itimerspec) -> None:
    k.write_struct(address, Timespec(spec.interval_sec, spec.interval_nsec))
    k.write_struct(address + 16, Timespec(spec.value_sec, spec.value_nsec))


def _timerfd(k: Kernel, fd: int) -> int:
    host = k.fds.host(fd)
    if not os.readlink(f"/proc/self/fd/{host}").endswith("[timerfd]"):
        raise SyscallError(Errno.EINVAL)
    return host


def _clock_of(host: int) -> int:
    """The clock a host timerfd counts (its /proc fdinfo says)."""
    with open(f"/proc/self/fdinfo/{host}") as info:
        for line in info:
            if line.startswith("clockid:"):
                return int(line.split()[1])
    return CLOCK_MONOTONIC


@syscall("timerfd_settime")
def timerfd_settime(k: Kernel, fd: int, flags: int, new: int, old: int) -> int:
    host = _timerfd(k, fd)
    if flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        raise SyscallError(Errno.EINVAL)
    spec = _read_itimerspec(k, new)
    if flags & TFD_TIMER_ABSTIME and (spec.value_sec or spec.value_nsec):
        now = k.realtime_ns() if _clock_of(host) == CLOCK_REALTIME else k.monotonic_ns()
        left = max(1, spec.value_sec * 1_000_000_000 + spec.value_nsec - now)
        spec.value_sec, spec.value_nsec = divmod(left, 1_000_000_000)
    previous = _Itimerspec()
    host_call(LIBC.timerfd_settime(host, 0, ctypes.byref(spec), ctypes.byref(previous)))
    if old:
        _write_itimerspec(k, old, previous)
    return 0


@syscall("timerfd_gettime")
def timerfd_gettime(k: Kernel, fd: int, curr: int) -> int:
    spec = _Itimerspec()
    host_call(LIBC.timerfd_gettime(_timerfd(k, fd), ctypes.byref(spec)))
    _write_itimerspec(k, curr, spec)
    return 0
