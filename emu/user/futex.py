"""futex(2): the waits and wake-ups that guest threads build their locks on.

Follows futex(2) and the kernel's ``kernel/futex/`` (``futex_wait``, ``futex_wake``, ``futex_requeue``,
``futex_wake_op``): FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP,
FUTEX_WAIT_BITSET and FUTEX_WAKE_BITSET, with FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME; the
priority-inheritance commands are ``emu.user.pifutex``'s (registered in :data:`PI_COMMANDS`).  Threads run
one at a time on one host thread (``emu.user.threads``), so comparing the futex word and parking the thread
is atomic as the kernel's hash-bucket lock makes it.  A waiting thread parks; a wake-up sets its result (0),
its timeout ETIMEDOUT, a signal EINTR.  FUTEX_WAIT's timeout is relative; FUTEX_WAIT_BITSET's absolute, on
CLOCK_MONOTONIC or, with FUTEX_CLOCK_REALTIME, CLOCK_REALTIME.  FUTEX_WAKE or FUTEX_REQUEUE finding a PI
waiter is EINVAL, as in ``futex_wake``.

A futex in MAP_SHARED memory used without FUTEX_PRIVATE_FLAG (FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_WAKE,
FUTEX_WAKE_BITSET) is the host's futex on the same file page (``emu.user.sharedmem``), so another process
wakes it; with several threads the waiter polls every :data:`SHARED_POLL_NS` and parks in between.

Not modelled: the other operations across processes (on shared memory they act on this process's threads),
futex_waitv.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum
from typing import TYPE_CHECKING

from emu.user.linux import Errno, Parked, SyscallError, Timespec, s32
from emu.user.sharedmem import SharedPages
from emu.user.sigstate import Interrupted
from emu.user.sysent import syscall
from emu.user.threads import HostWait

if TYPE_CHECKING:
    from emu.user.kernel import Kernel


class FutexOp(IntEnum):
    """futex(2) commands (linux/futex.h), without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME."""

    FUTEX_WAIT = 0
    FUTEX_WAKE = 1
    FUTEX_REQUEUE = 3
    FUTEX_CMP_REQUEUE = 4
    FUTEX_WAKE_OP = 5
    FUTEX_LOCK_PI = 6
    FUTEX_UNLOCK_PI = 7
    FUTEX_TRYLOCK_PI = 8
    FUTEX_WAIT_BITSET = 9
    FUTEX_WAKE_BITSET = 10
    FUTEX_WAIT_REQUEUE_PI = 11
    FUTEX_CMP_REQUEUE_PI = 12
    FUTEX_LOCK_PI2 = 13


FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
_SHARED_COMMANDS = (FutexOp.FUTEX_WAIT, FutexOp.FUTEX_WAIT_BITSET, FutexOp.FUTEX_WAKE, FutexOp.FUTEX_WAKE_BITSET)
"""What a futex in MAP_SHARED memory does across processes (``emu.user.sharedmem``)."""
SHARED_POLL_NS = 2_000_000
"""How long a thread of a process with several waits on a shared futex at a time before the others run."""
SHARED_SLICE_NS = 50_000_000
"""How long a single thread waits on a shared futex at a time: a host signal that came just before the host
wait began (after the check for a deliverable signal) is seen within this."""
FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
BITSET_MATCH_ANY = 0xFFFF_FFFF
NSEC = 1_000_000_000
_WAKE_OPS = {0: lambda old, arg: arg, 1: lambda old, arg: old + arg, 2: lambda old, arg: old | arg,
             3: lambda old, arg: old & ~arg, 4: lambda old, arg: old ^ arg}
"""FUTEX_OP_SET, ADD, OR, ANDN, XOR: the new value of the second word from its old value and oparg."""
_WAKE_CMPS = {0: lambda a, b: a == b, 1: lambda a, b: a != b, 2: lambda a, b: a < b,
              3: lambda a, b: a <= b, 4: lambda a, b: a > b, 5: lambda a, b: a >= b}
"""FUTEX_OP_CMP_EQ, NE, LT, LE, GT, GE on the old value (signed 32-bit)."""


PiHandler = Callable[["Kernel", int, int, int, int, int, int, bool], int]
PI_COMMANDS: dict[int, PiHandler] = {}
"""The priority-inheritance commands, registered by ``emu.user.pifutex``: (kernel, cmd, uaddr, val, timeout,
uaddr2, val3, FUTEX_CLOCK_REALTIME) -> result."""


def word(k: Kernel, address: int) -> int:
    """The 32-bit futex word at ``address`` (EINVAL when not aligned, EFAULT when not mapped)."""
    if address & 3:
        raise SyscallError(Errno.EINVAL)
    return int.from_bytes(k.mem.read(address, 4), "little")


def store(k: Kernel, address: int, value: int) -> None:
    """Write the futex word at ``address``."""
    k.mem.write(address, (value & 0xFFFF_FFFF).to_bytes(4, "little"))


def deadline(k: Kernel, timeout: int, absolute: bool, realtime: bool) -> int | None:
    """The end of a wait on the process's monotonic clock (``Kernel.monotonic_ns``), or None for none."""
    if not timeout:
        return None
    t = k.read_struct(timeout, Timespec)
    if t.tv_sec < 0 or not 0 <= t.tv_nsec < NSEC:
        raise SyscallError(Errno.EINVAL)
    ns = t.tv_sec * NSEC + t.tv_nsec
    if not absolute:
        return k.monotonic_ns() + ns
    return ns - (k.realtime_ns() - k.monotonic_ns()) if realtime else ns


def _wait(k: Kernel, address: int, val: int, deadline: int | None, bitset: int) -> int:
    if bitset == 0:
        raise SyscallError(Errno.EINVAL)
    if word(k, address) != val & 0xFFFF_FFFF:
        raise SyscallError(Errno.EAGAIN)
    if k.signals.deliverable():
        raise Interrupted
    if deadline is not None and deadline <= k.monotonic_ns():
        raise SyscallError(Errno.ETIMEDOUT)
    raise Parked(k.threads.futex_wait(address, bitset, deadline))


def _shared(k: Kernel, op: int, address: int) -> tuple[SharedPages, int] | None:
    """The host file and offset of a futex in MAP_SHARED memory, used without FUTEX_PRIVATE_FLAG."""
    if op & FUTEX_PRIVATE_FLAG:
        return None
    vma = k.mem.vma_at(address)
    if vma is None or vma.shared is None:
        return None
    return vma.shared, vma.offset + address - vma.start


def _shared_wait(k: Kernel, where: tuple[SharedPages, int], val: int, deadline: int | None) -> int:
    """FUTEX_WAIT on shared memory: the host's futex, so that another process's FUTEX_WAKE ends it.  With one
    thread the host call blocks :data:`SHARED_SLICE_NS` at a time (a host signal ends it sooner); with others,
    it waits :data:`SHARED_POLL_NS` at a time and the thread parks in between, so they run (it then sees a
    changed word as a wake-up)."""
    pages, offset = where
    while True:
        if k.signals.deliverable():
            raise Interrupted
        now = k.monotonic_ns()
        if deadline is not None and deadline <= now:
            raise SyscallError(Errno.ETIMEDOUT)
        left = None if deadline is None else deadline - now
        step = SHARED_POLL_NS if k.threads.many else SHARED_SLICE_NS
        polling = left is None or left > step
        result = pages.futex_wait(offset, val, step if polling else left)
        if result == 0:
            return 0
        if result in (Errno.EAGAIN, Errno.EFAULT):
            raise SyscallError(Errno(result))
        if result == Errno.ETIMEDOUT and not polling:
            assert deadline is not None
            k.slept_ns += max(0, deadline - k.monotonic_ns())     # the guest's clock reaches the end of the wait
            raise SyscallError(Errno.ETIMEDOUT)
        if result == Errno.ETIMEDOUT and k.threads.many:
            k.threads.current.deadline = time.monotonic() + SHARED_POLL_NS / NSEC
            raise Parked(HostWait([]))


@syscall("futex")
def futex(k: Kernel, uaddr: int, op: int, val: int, timeout: int, uaddr2: int, val3: int) -> int:
    """The futex operations glibc, Go and Rust's standard library use; see the module's docstring."""
    cmd, realtime = op & FUTEX_CMD_MASK, bool(op & FUTEX_CLOCK_REALTIME)
    threads = k.threads
    shared = _shared(k, op, uaddr) if cmd in _SHARED_COMMANDS else None
    if shared is not None:
        word(k, uaddr)
        match cmd:
            case FutexOp.FUTEX_WAIT | FutexOp.FUTEX_WAIT_BITSET:
                if cmd == FutexOp.FUTEX_WAIT_BITSET and val3 & 0xFFFF_FFFF == 0:
                    raise SyscallError(Errno.EINVAL)
                return _shared_wait(k, shared, val, deadline(k, timeout, cmd == FutexOp.FUTEX_WAIT_BITSET, realtime))
            case _:
                if cmd == FutexOp.FUTEX_WAKE_BITSET and val3 & 0xFFFF_FFFF == 0:
                    raise SyscallError(Errno.EINVAL)
                woken = threads.wake(uaddr, s32(val))
                return woken + shared[0].futex_wake(shared[1], s32(val) - woken)
    match cmd:
        case FutexOp.FUTEX_WAIT:
            return _wait(k, uaddr, val, deadline(k, timeout, False, realtime), BITSET_MATCH_ANY)
        case FutexOp.FUTEX_WAIT_BITSET:
            return _wait(k, uaddr, val, deadline(k, timeout, True, realtime), val3 & 0xFFFF_FFFF)
        case FutexOp.FUTEX_WAKE:
            _plain_only(k, uaddr)
            return threads.wake(uaddr, s32(val))
        case FutexOp.FUTEX_WAKE_BITSET:
            _plain_only(k, uaddr)
            if val3 & 0xFFFF_FFFF == 0:
                raise SyscallError(Errno.EINVAL)
            return threads.wake(uaddr, s32(val), val3 & 0xFFFF_FFFF)
        case FutexOp.FUTEX_REQUEUE | FutexOp.FUTEX_CMP_REQUEUE:
            if cmd == FutexOp.FUTEX_CMP_REQUEUE and word(k, uaddr) != val3 & 0xFFFF_FFFF:
                raise SyscallError(Errno.EAGAIN)
            _plain_only(k, uaddr)
            word(k, uaddr2)
            if s32(val) < 0 or s32(timeout) < 0:
                raise SyscallError(Errno.EINVAL)
            woken = threads.wake(uaddr, s32(val))
            moved = threads.waiters(uaddr)[:s32(timeout)]     # val2 travels in the timeout argument
            for thread in moved:
                thread.wait.address = uaddr2                    # type: ignore[union-attr]
            return woken + len(moved)
        case FutexOp.FUTEX_WAKE_OP:
            return _wake_op(k, uaddr, s32(val), s32(timeout), uaddr2, val3)
    if cmd in PI_COMMANDS:
        return PI_COMMANDS[cmd](k, cmd, uaddr, val, timeout, uaddr2, val3, realtime)
    raise SyscallError(Errno.ENOSYS)


def _plain_only(k: Kernel, uaddr: int) -> None:
    """FUTEX_WAKE and FUTEX_REQUEUE act on plain waiters; finding a PI or requeue-PI waiter is EINVAL."""
    word(k, uaddr)
    if any(not t.wait.plain for t in k.threads.waiters(uaddr)):  # type: ignore[union-attr]
        raise SyscallError(Errno.EINVAL)


def _wake_op(k: Kernel, uaddr: int, count: int, count2: int, uaddr2: int, encoded: int) -> int:
    """Change the word at ``uaddr2`` by the encoded operation, wake ``uaddr``'s waiters, and those of
    ``uaddr2`` too when the old value passes the encoded comparison."""
    op, cmp = (encoded >> 28) & 7, (encoded >> 24) & 15
    oparg, cmparg = (encoded >> 12) & 0xFFF, encoded & 0xFFF
    if encoded & (8 << 28):       # FUTEX_OP_OPARG_SHIFT
        oparg = 1 << (oparg & 31)
    if op not in _WAKE_OPS or cmp not in _WAKE_CMPS:
        raise SyscallError(Errno.ENOSYS)
    word(k, uaddr)
    old = word(k, uaddr2)
    store(k, uaddr2, _WAKE_OPS[op](old, oparg))
    woken = k.threads.wake(uaddr, count)
    signed_arg = cmparg - 0x1000 if cmparg & 0x800 else cmparg
    if _WAKE_CMPS[cmp](s32(old), signed_arg):
        woken += k.threads.wake(uaddr2, count2)
    return woken
