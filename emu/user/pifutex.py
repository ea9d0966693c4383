"""Priority-inheritance futexes: FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI, FUTEX_UNLOCK_PI,
FUTEX_WAIT_REQUEUE_PI and FUTEX_CMP_REQUEUE_PI between the threads of one process.

Follows futex(2) ("Priority-inheritance futexes") and the kernel's ``kernel/futex/pi.c`` and ``requeue.c``
for the protocol of the futex word: 0 is free; the owner's TID, with FUTEX_WAITERS once a thread waits in the
kernel and FUTEX_OWNER_DIED after a robust owner died.  FUTEX_LOCK_PI takes a free word (keeping OWNER_DIED),
fails with EDEADLK when the caller owns it, with ESRCH when the TID in it names no thread
(``handle_exit_race``), else sets FUTEX_WAITERS and waits; FUTEX_UNLOCK_PI by anyone but the owner is EPERM,
and hands the lock to the first waiter, writing its TID with FUTEX_WAITERS (``wake_futex_pi``); a thread that
exits holding one hands it over the same way, OWNER_DIED kept (``exit_pi_state_list``).  FUTEX_LOCK_PI's
timeout is absolute on CLOCK_REALTIME; FUTEX_LOCK_PI2's on CLOCK_MONOTONIC, or CLOCK_REALTIME with
FUTEX_CLOCK_REALTIME, which FUTEX_LOCK_PI refuses (ENOSYS).  FUTEX_WAIT_REQUEUE_PI waits on a plain word to be
moved to a PI word; FUTEX_CMP_REQUEUE_PI (nr_wake must be 1) takes the PI word for the first waiter when it is
free (waking it owning it) and moves up to nr_requeue others onto it, returning how many it woke or moved.
FUTEX_WAKE on a word with a PI waiter is EINVAL (``futex_wake``), as is a requeue between different kinds of
waiter.  Threads run one at a time (``emu.user.threads``), so each operation is atomic as the kernel's
hash-bucket lock makes it.

A signal handled while FUTEX_LOCK_PI or LOCK_PI2 waits restarts it, with or without SA_RESTART
(ERESTARTNOINTR), so glibc, which takes any other return for the lock, never sees EINTR.

Not modelled: priority inheritance itself (one CPU, no priorities: the lock goes to the first waiter, first
come first served), PI futexes shared with another process (in MAP_SHARED memory they act on this process's
threads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emu.user.futex import BITSET_MATCH_ANY, PI_COMMANDS, FutexOp, deadline, store, word
from emu.user.linux import Errno, Parked, SyscallError, s32
from emu.user.sigstate import Interrupted
from emu.user.threads import FUTEX_OWNER_DIED, FUTEX_TID_MASK, FUTEX_WAITERS

if TYPE_CHECKING:
    from emu.user.kernel import Kernel


def _take(k: Kernel, uaddr: int, tid: int) -> bool:
    """Try to make ``tid`` the owner of the lock word (``futex_lock_pi_atomic``): True when it now owns it,
    False when another thread does (FUTEX_WAITERS is then set)."""
    value = word(k, uaddr)
    owner = value & FUTEX_TID_MASK
    if owner == tid:
        raise SyscallError(Errno.EDEADLK)
    if owner == 0:
        store(k, uaddr, tid | (value & FUTEX_OWNER_DIED) | (FUTEX_WAITERS if _pi_waiters(k, uaddr) else 0))
        return True
    if k.threads.find(owner) is None:
        raise SyscallError(Errno.ESRCH)
    store(k, uaddr, value | FUTEX_WAITERS)
    return False


def _pi_waiters(k: Kernel, uaddr: int) -> bool:
    return any(t.wait.pi for t in k.threads.waiters(uaddr))  # type: ignore[union-attr]


def _park_pi(k: Kernel, uaddr: int, end: int | None) -> int:
    if k.signals.deliverable():
        k.signals.restart_always = True     # ERESTARTNOINTR: taken up again after the handler, never EINTR
        raise Interrupted
    wait = k.threads.futex_wait(uaddr, BITSET_MATCH_ANY, end)
    wait.pi = True
    raise Parked(wait)


def lock_pi(k: Kernel, cmd: int, uaddr: int, timeout: int, realtime: bool) -> int:
    """FUTEX_LOCK_PI, FUTEX_LOCK_PI2 and FUTEX_TRYLOCK_PI."""
    if realtime and cmd == FutexOp.FUTEX_LOCK_PI:
        raise SyscallError(Errno.ENOSYS)
    end = deadline(k, timeout, True, realtime or cmd == FutexOp.FUTEX_LOCK_PI) \
        if cmd != FutexOp.FUTEX_TRYLOCK_PI else None
    if _take(k, uaddr, k.tid):
        return 0
    if cmd == FutexOp.FUTEX_TRYLOCK_PI:
        raise SyscallError(Errno.EAGAIN)
    if end is not None and end <= k.monotonic_ns():
        raise SyscallError(Errno.ETIMEDOUT)
    return _park_pi(k, uaddr, end)


def unlock_pi(k: Kernel, uaddr: int) -> int:
    """FUTEX_UNLOCK_PI: hand the lock to the first waiter, or free it."""
    if word(k, uaddr) & FUTEX_TID_MASK != k.tid:
        raise SyscallError(Errno.EPERM)
    if not k.threads.hand_over(uaddr):
        store(k, uaddr, 0)
    return 0


def wait_requeue_pi(k: Kernel, uaddr: int, val: int, timeout: int, uaddr2: int, realtime: bool) -> int:
    """FUTEX_WAIT_REQUEUE_PI: wait on the plain word ``uaddr`` until FUTEX_CMP_REQUEUE_PI moves the wait to the
    PI word ``uaddr2`` and the lock is this thread's (0)."""
    if uaddr == uaddr2:
        raise SyscallError(Errno.EINVAL)
    word(k, uaddr2)
    end = deadline(k, timeout, True, realtime)
    if word(k, uaddr) != val & 0xFFFF_FFFF:
        raise SyscallError(Errno.EAGAIN)
    if k.signals.deliverable():
        raise Interrupted
    if end is not None and end <= k.monotonic_ns():
        raise SyscallError(Errno.ETIMEDOUT)
    wait = k.threads.futex_wait(uaddr, BITSET_MATCH_ANY, end)
    wait.requeue_to = uaddr2
    raise Parked(wait)


def cmp_requeue_pi(k: Kernel, uaddr: int, nr_wake: int, nr_requeue: int, uaddr2: int, val3: int) -> int:
    """FUTEX_CMP_REQUEUE_PI: when ``uaddr`` still holds ``val3``, give the PI word ``uaddr2`` to the first waiter
    if it is free, and move up to ``nr_requeue`` other waiters onto it; how many were woken or moved."""
    if uaddr == uaddr2 or nr_wake != 1 or nr_requeue < 0:
        raise SyscallError(Errno.EINVAL)
    word(k, uaddr2)
    if word(k, uaddr) != val3 & 0xFFFF_FFFF:
        raise SyscallError(Errno.EAGAIN)
    waiters = k.threads.waiters(uaddr)
    if any(t.wait.requeue_to != uaddr2 for t in waiters):  # type: ignore[union-attr]
        raise SyscallError(Errno.EINVAL)      # a plain waiter, or one bound for another PI word
    if not waiters:
        return 0
    done = 0
    first = waiters[0]
    if _take(k, uaddr2, first.tid):
        store(k, uaddr2, word(k, uaddr2) | FUTEX_WAITERS)      # futex_proxy_trylock_atomic sets it
        first.wait = None
        first.regs.rax = 0
        waiters, done = waiters[1:], 1
    moved = waiters[:nr_requeue]
    for thread in moved:
        wait = thread.wait
        wait.address, wait.requeue_to, wait.pi = uaddr2, None, True  # type: ignore[union-attr]
    if moved:
        store(k, uaddr2, word(k, uaddr2) | FUTEX_WAITERS)
    return done + len(moved)


def _dispatch(k: Kernel, cmd: int, uaddr: int, val: int, timeout: int, uaddr2: int, val3: int, realtime: bool) -> int:
    match cmd:
        case FutexOp.FUTEX_LOCK_PI | FutexOp.FUTEX_LOCK_PI2 | FutexOp.FUTEX_TRYLOCK_PI:
            return lock_pi(k, cmd, uaddr, timeout, realtime)
        case FutexOp.FUTEX_UNLOCK_PI:
            return unlock_pi(k, uaddr)
        case FutexOp.FUTEX_WAIT_REQUEUE_PI:
            return wait_requeue_pi(k, uaddr, val, timeout, uaddr2, realtime)
    return cmp_requeue_pi(k, uaddr, s32(val), s32(timeout), uaddr2, val3)


for _cmd in (FutexOp.FUTEX_LOCK_PI, FutexOp.FUTEX_LOCK_PI2, FutexOp.FUTEX_TRYLOCK_PI, FutexOp.FUTEX_UNLOCK_PI,
             FutexOp.FUTEX_WAIT_REQUEUE_PI, FutexOp.FUTEX_CMP_REQUEUE_PI):
    PI_COMMANDS[_cmd] = _dispatch
