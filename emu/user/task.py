"""System calls about the process itself: exit, identity, thread area, time, randomness,
signal bookkeeping, resource limits and usage.

Follows exit_group(2), getpid(2), getuid(2), getgroups(2), getpgrp(2), prctl(2), arch_prctl(2),
set_tid_address(2), set_robust_list(2), uname(2), clock_gettime(2),
gettimeofday(2), time(2), nanosleep(2), clock_nanosleep(2), getrandom(2),
getrlimit(2), sched_getaffinity(2), getrusage(2), sysinfo(2) and times(2).

Identity is the host's (the guest shares the emulator's pid and uids, process
group and session, and setpgid(2) and setsid(2) change the emulator's).  Time comes from the kernel's
clock (``Kernel.monotonic_ns``), which may be virtual; sleeping returns at
once and moves that clock forward instead (signals: ``emu.user.signals``).
Threads (``emu.user.threads``) share one CPU; sleeping and sched_yield(2) let the next one run,
exit(2) ends only the calling thread.
"""

from __future__ import annotations

import os
from enum import IntEnum

from emu.user.address_space import USER_TOP
from emu.user.kernel import Kernel
from emu.user.linux import (
    MASK64,
    Errno,
    Parked,
    ProcessExit,
    Rlimit,
    Rusage,
    SyscallError,
    Sysinfo,
    Timespec,
    Timeval,
    Tms,
    Utsname,
    s32,
)
from emu.user.loader import CLOCK_TICKS, STACK_SIZE
from emu.user.sysent import syscall

RELEASE = b"6.1.0-emu"
"""uname -r: a kernel new enough for glibc's and busybox's feature checks."""
VERSION = b"#1 SMP PREEMPT_DYNAMIC emu"
NSEC = 1_000_000_000


# -- exit, identity ----------------------------------------------------------------
@syscall("exit_group")
def exit_group(k: Kernel, status: int) -> int:
    raise ProcessExit(status=s32(status))


@syscall("exit")
def exit_(k: Kernel, status: int) -> int:
    """Ends the calling thread (``emu.user.threads``); the last thread's exit ends the process."""
    if not k.threads.many:
        raise ProcessExit(status=s32(status))
    k.threads.exit_current()
    raise Parked(None)


@syscall("getpid")
def getpid(k: Kernel) -> int:
    return k.pid


@syscall("gettid")
def gettid(k: Kernel) -> int:
    return k.tid


@syscall("getppid")
def getppid(k: Kernel) -> int:
    return os.getppid()


@syscall("getuid")
def getuid(k: Kernel) -> int:
    return os.getuid()


@syscall("geteuid")
def geteuid(k: Kernel) -> int:
    return os.geteuid()


@syscall("getgid")
def getgid(k: Kernel) -> int:
    return os.getgid()


@syscall("getegid")
def getegid(k: Kernel) -> int:
    return os.getegid()


@syscall("getpgrp")
def getpgrp(k: Kernel) -> int:
    return os.getpgrp()


def _self(k: Kernel, pid: int) -> None:
    if s32(pid) not in (0, k.pid):
        raise SyscallError(Errno.ESRCH)


@syscall("getpgid")
def getpgid(k: Kernel, pid: int) -> int:
    return os.getpgid(s32(pid))


@syscall("getsid")
def getsid(k: Kernel, pid: int) -> int:
    return os.getsid(s32(pid))


@syscall("setpgid")
def setpgid(k: Kernel, pid: int, pgid: int) -> int:
    """The guest's process is the emulator's, so its group is the host's: the host's setpgid(2) decides."""
    os.setpgid(s32(pid), s32(pgid))
    return 0


@syscall("setsid")
def setsid(k: Kernel) -> int:
    return os.setsid()


@syscall("getgroups")
def getgroups(k: Kernel, size: int, grouplist: int) -> int:
    groups = os.getgroups()
    if size:
        if s32(size) < len(groups):
            raise SyscallError(Errno.EINVAL)
        k.mem.write(grouplist, b"".join(g.to_bytes(4, "little") for g in groups))
    return len(groups)


class Prctl(IntEnum):
    PR_GET_DUMPABLE = 3
    PR_SET_DUMPABLE = 4
    PR_SET_NAME = 15
    PR_GET_NAME = 16


@syscall("prctl")
def prctl(k: Kernel, option: int, arg2: int) -> int:
    match option:
        case Prctl.PR_SET_NAME:
            k.comm = k.mem.read_cstring(arg2, 16)[:15]
        case Prctl.PR_GET_NAME:
            k.mem.write(arg2, k.comm + b"\0")
        case Prctl.PR_GET_DUMPABLE:
            return 1
        case Prctl.PR_SET_DUMPABLE:
            if arg2 not in (0, 1):
                raise SyscallError(Errno.EINVAL)
        case _:
            raise SyscallError(Errno.EINVAL)
    return 0


@syscall("set_tid_address")
def set_tid_address(k: Kernel, tidptr: int) -> int:
    k.clear_child_tid = tidptr
    return k.tid


@syscall("set_robust_list")
def set_robust_list(k: Kernel, head: int, length: int) -> int:
    if length != 24:     # sizeof(struct robust_list_head)
        raise SyscallError(Errno.EINVAL)
    k.robust_list = head
    return 0


@syscall("rseq")
def rseq(k: Kernel) -> int:
    """Restartable sequences are an optimisation; glibc runs without them when this fails."""
    raise SyscallError(Errno.ENOSYS)


class ArchPrctl(IntEnum):
    ARCH_SET_GS = 0x1001
    ARCH_SET_FS = 0x1002
    ARCH_GET_FS = 0x1003
    ARCH_GET_GS = 0x1004


@syscall("arch_prctl")
def arch_prctl(k: Kernel, code: int, addr: int) -> int:
    st = k.state
    match code:
        case ArchPrctl.ARCH_SET_FS | ArchPrctl.ARCH_SET_GS:
            if addr >= USER_TOP:
                raise SyscallError(Errno.EPERM)
            if code == ArchPrctl.ARCH_SET_FS:
                st.fs_base = addr
            else:
                st.gs_base = addr
        case ArchPrctl.ARCH_GET_FS:
            k.write_u64(addr, st.fs_base)
        case ArchPrctl.ARCH_GET_GS:
            k.write_u64(addr, st.gs_base)
        case _:
            raise SyscallError(Errno.EINVAL)
    return 0


@syscall("uname")
def uname(k: Kernel, buf: int) -> int:
    k.write_struct(buf, Utsname(sysname=b"Linux", nodename=k.hostname.encode()[:64], release=RELEASE,
                                version=VERSION, machine=b"x86_64", domainname=b"(none)"))
    return 0


# -- time ----------------------------------------------------------------------------
class Clock(IntEnum):
    """clockid_t values (linux/time.h)."""

    CLOCK_REALTIME = 0
    CLOCK_MONOTONIC = 1
    CLOCK_PROCESS_CPUTIME_ID = 2
    CLOCK_THREAD_CPUTIME_ID = 3
    CLOCK_MONOTONIC_RAW = 4
    CLOCK_REALTIME_COARSE = 5
    CLOCK_MONOTONIC_COARSE = 6
    CLOCK_BOOTTIME = 7
    CLOCK_REALTIME_ALARM = 8
    CLOCK_BOOTTIME_ALARM = 9
    CLOCK_TAI = 11


_WALL_CLOCKS = {Clock.CLOCK_REALTIME, Clock.CLOCK_REALTIME_COARSE, Clock.CLOCK_REALTIME_ALARM, Clock.CLOCK_TAI}
_CPU_CLOCKS = {Clock.CLOCK_PROCESS_CPUTIME_ID, Clock.CLOCK_THREAD_CPUTIME_ID}


def _clock_ns(k: Kernel, clock: int) -> int:
    if clock not in Clock.__members__.values():
        raise SyscallError(Errno.EINVAL)
    if clock in _WALL_CLOCKS:
        return k.realtime_ns()
    if clock in _CPU_CLOCKS:
        return k.clock()       # the process is always running: CPU time is elapsed time, less sleeps
    return k.monotonic_ns()


def _timespec(ns: int) -> Timespec:
    sec, nsec = divmod(ns, NSEC)
    return Timespec(sec, nsec)


def _read_duration(k: Kernel, address: int) -> int:
    t = k.read_struct(address, Timespec)
    if t.tv_sec < 0 or not 0 <= t.tv_nsec < NSEC:
        raise SyscallError(Errno.EINVAL)
    return t.tv_sec * NSEC + t.tv_nsec


@syscall("clock_gettime")
def clock_gettime(k: Kernel, clock: int, tp: int) -> int:
    k.write_struct(tp, _timespec(_clock_ns(k, s32(clock))))
    return 0


@syscall("clock_getres")
def clock_getres(k: Kernel, clock: int, res: int) -> int:
    _clock_ns(k, s32(clock))
    if res:
        k.write_struct(res, Timespec(0, 1))
    return 0


@syscall("gettimeofday")
def gettimeofday(k: Kernel, tv: int, tz: int) -> int:
    if tv:
        sec, nsec = divmod(k.realtime_ns(), NSEC)
        k.write_struct(tv, Timeval(sec, nsec // 1000))
    if tz:
        k.mem.write(tz, bytes(8))    # struct timezone: UTC, no DST
    return 0


@syscall("time")
def time_(k: Kernel, tloc: int) -> int:
    now = k.realtime_ns() // NSEC
    if tloc:
        k.write_u64(tloc, now)
    return now


@syscall("nanosleep")
def nanosleep(k: Kernel, req: int, rem: int) -> int:
    k.slept_ns += _read_duration(k, req)
    k.threads.yield_current()
    return 0


@syscall("clock_nanosleep")
def clock_nanosleep(k: Kernel, clock: int, flags: int, req: int, rem: int) -> int:
    duration = _read_duration(k, req)
    if flags & 1:       # TIMER_ABSTIME: sleep until the clock reads req
        duration = max(0, duration - _clock_ns(k, s32(clock)))
    else:
        _clock_ns(k, s32(clock))
    k.slept_ns += duration
    k.threads.yield_current()
    return 0


@syscall("getrandom")
def getrandom(k: Kernel, buf: int, length: int, flags: int) -> int:
    if flags & ~0x7:    # GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE
        raise SyscallError(Errno.EINVAL)
    n = min(length, (1 << 25) - 1)
    k.mem.write(buf, k.rng.randbytes(n) if k.rng is not None else os.urandom(n))
    return n


# -- limits and usage ------------------------------------------------------------------
RLIM_INFINITY = MASK64
RLIMIT_STACK, RLIMIT_CORE, RLIMIT_NOFILE, RLIM_NLIMITS = 3, 4, 7, 16
DEFAULT_RLIMITS = {RLIMIT_STACK: (STACK_SIZE, RLIM_INFINITY), RLIMIT_CORE: (0, RLIM_INFINITY),
                   RLIMIT_NOFILE: (1024, 4096)}


@syscall("prlimit64")
def prlimit64(k: Kernel, pid: int, resource: int, new_limit: int, old_limit: int) -> int:
    _self(k, pid)
    if resource >= RLIM_NLIMITS:
        raise SyscallError(Errno.EINVAL)
    new = k.read_struct(new_limit, Rlimit) if new_limit else None
    if new is not None and new.rlim_cur > new.rlim_max:
        raise SyscallError(Errno.EINVAL)
    if old_limit:
        cur, top = k.rlimits.get(resource, DEFAULT_RLIMITS.get(resource, (RLIM_INFINITY, RLIM_INFINITY)))
        k.write_struct(old_limit, Rlimit(cur, top))
    if new is not None:
        k.rlimits[resource] = (new.rlim_cur, new.rlim_max)
        if resource == RLIMIT_NOFILE:
            k.fds.limit = min(new.rlim_cur, 1 << 20)
    return 0


@syscall("getrlimit")
def getrlimit(k: Kernel, resource: int, rlim: int) -> int:
    return prlimit64(k, 0, resource, 0, rlim)


@syscall("setrlimit")
def setrlimit(k: Kernel, resource: int, rlim: int) -> int:
    return prlimit64(k, 0, resource, rlim, 0)


@syscall("sched_getaffinity")
def sched_getaffinity(k: Kernel, pid: int, length: int, mask: int) -> int:
    """One CPU, number 0; returns the size of the kernel's CPU mask (one long)."""
    _self(k, pid)
    if length < 8 or length & 7:
        raise SyscallError(Errno.EINVAL)
    k.write_u64(mask, 1)
    return 8


@syscall("sched_yield")
def sched_yield(k: Kernel) -> int:
    """The next runnable thread runs (``emu.user.threads``)."""
    k.threads.yield_current()
    return 0


@syscall("getrusage")
def getrusage(k: Kernel, who: int, usage: int) -> int:
    who = s32(who)
    if who not in (0, -1, 1):     # RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD
        raise SyscallError(Errno.EINVAL)
    out = Rusage()
    if who != -1:
        sec, nsec = divmod(k.clock(), NSEC)
        out.ru_utime = Timeval(sec, nsec // 1000)
    k.write_struct(usage, out)
    return 0


@syscall("times")
def times(k: Kernel, buf: int) -> int:
    if buf:
        k.write_struct(buf, Tms(tms_utime=k.clock() * CLOCK_TICKS // NSEC))
    return k.monotonic_ns() * CLOCK_TICKS // NSEC


@syscall("sysinfo")
def sysinfo(k: Kernel, info: int) -> int:
    """A fixed 1 GiB machine with half of it free, so output does not depend on the host."""
    k.write_struct(info, Sysinfo(uptime=k.monotonic_ns() // NSEC, totalram=1 << 30, freeram=1 << 29,
                                 procs=1, mem_unit=1))
    return 0
