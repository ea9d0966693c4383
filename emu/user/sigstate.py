"""What the kernel keeps about signals for one process: dispositions, the blocked mask, pending signals, the
alternate stack (signal(7), sigaction(2), sigprocmask(2), sigaltstack(2)).

Kept apart from their delivery (``emu.user.signals``), so that the kernel that holds this state does not
import the handlers.  Pending signals are one instance each, as Linux keeps standard signals (real-time
signals are not queued).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from emu.user.linux import (
    DEFAULT_IGNORED,
    SIG_DFL,
    SIG_IGN,
    Errno,
    KernelSigaction,
    Parked,
    Signal,
    StackT,
    SyscallError,
)

T = TypeVar("T")

NSIG = 64
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
SYNCHRONOUS = frozenset({Signal.SIGSEGV, Signal.SIGBUS, Signal.SIGILL, Signal.SIGTRAP, Signal.SIGFPE})
"""Delivered before any other pending signal, as Linux's SYNCHRONOUS_MASK."""


def bit(sig: int) -> int:
    """The bit of ``sig`` in a sigset_t."""
    return 1 << (sig - 1)


NEVER_BLOCKED = bit(Signal.SIGKILL) | bit(Signal.SIGSTOP)
KEPT_FRAMES = 64


class Interrupted(Exception):
    """A blocking system call was interrupted by a signal that is to be delivered (EINTR or restart)."""


class SignalState:
    """Dispositions, mask, pending signals and the alternate stack of one process."""

    def __init__(self, ignored: int = 0, blocked: int = 0) -> None:
        self.actions: dict[int, KernelSigaction] = {
            sig: KernelSigaction(sa_handler=SIG_IGN) for sig in range(1, NSIG + 1) if ignored & bit(sig)}
        self.blocked = blocked & ~NEVER_BLOCKED
        self.pending: dict[int, bytes] = {}
        self.altstack: StackT | None = None
        self.saved_mask: int | None = None
        """The mask rt_sigsuspend replaced, restored when the handler returns (or at once without one)."""
        self.call_mask: int | None = None
        """The mask a ppoll, pselect6 or epoll_pwait replaced while it waits (``signals.with_mask``)."""
        self.restart_always = False
        """The interrupted call is restarted after a handler even without SA_RESTART (Linux's ERESTARTNOINTR,
        which FUTEX_LOCK_PI returns)."""
        self.restart: int | None = None
        """The number of the system call a signal just interrupted (to restart or fail with EINTR)."""
        self.upper_halves: dict[int, list[int]] = {}
        """Bits 255:128 of YMM0-15 at each live frame's address, restored by rt_sigreturn (the frame holds
        FXSAVE state only); at most :data:`KEPT_FRAMES`, the oldest dropped (handlers that siglongjmp out)."""
        self.wake: tuple[int, int] | None = None
        """The pipe the host signal handler writes to, so that a blocking wait ends (set by HostSignals)."""

    def drain_wake(self) -> None:
        """Empty the wake-up pipe (a wait that polled it has seen its bytes)."""
        if self.wake is None:
            return
        try:
            while os.read(self.wake[0], 256):
                pass
        except BlockingIOError:
            pass

    def during(self, mask: int, call: Callable[[], T]) -> T:
        """Run ``call`` with ``mask`` blocked, as the kernel's ``set_user_sigmask`` and
        ``restore_saved_sigmask_unless`` do: the old mask is back when the call returns, except after EINTR, when
        the handler runs under ``mask`` and its frame holds the old one (:attr:`saved_mask`, as after
        rt_sigsuspend).  A thread that parks keeps ``mask`` while it waits, and the old one stays in
        :attr:`call_mask` for when the call runs again."""
        if self.call_mask is None:                  # not a parked call run again
            self.call_mask = self.blocked
        old, self.blocked = self.call_mask, mask & ~NEVER_BLOCKED
        try:
            result = call()
        except Parked:
            raise
        except Interrupted:
            self.call_mask, self.saved_mask = None, old
            raise
        except SyscallError as e:
            self.call_mask = None
            if e.errno == Errno.EINTR:
                self.saved_mask = old
            else:
                self.blocked = old
            raise
        except BaseException:
            self.call_mask, self.blocked = None, old
            raise
        self.call_mask, self.blocked = None, old
        return result

    def for_thread(self) -> SignalState:
        """A new thread's state (clone(2)): the process's dispositions, the creator's mask, nothing pending,
        no alternate stack."""
        other = SignalState(blocked=self.blocked)
        other.actions = self.actions
        other.wake = self.wake
        return other

    def action(self, sig: int) -> KernelSigaction:
        return self.actions.get(sig, KernelSigaction())

    def ignored(self, sig: int) -> bool:
        handler = self.action(sig).sa_handler
        return handler == SIG_IGN or (handler == SIG_DFL and sig in DEFAULT_IGNORED)

    def post(self, sig: int, info: bytes) -> None:
        """Make ``sig`` pending, unless it is ignored (then it is discarded at once, as Linux does)."""
        if sig and not self.ignored(sig):
            self.pending.setdefault(sig, info)

    def deliverable(self) -> bool:
        return any(not self.blocked & bit(sig) for sig in self.pending)

    def next(self) -> tuple[int, bytes] | None:
        """Take the pending signal to deliver next: synchronous ones first, then by number."""
        ready = [sig for sig in self.pending if not self.blocked & bit(sig)]
        if not ready:
            return None
        sig = min(ready, key=lambda s: (s not in SYNCHRONOUS, s))
        return sig, self.pending.pop(sig)

    def on_altstack(self, sp: int) -> bool:
        stack = self.altstack
        return stack is not None and stack.ss_sp < sp <= stack.ss_sp + stack.ss_size

    def stack_t(self, sp: int) -> StackT:
        """The stack_t sigaltstack(2) and uc_stack report at stack pointer ``sp``."""
        if self.altstack is None:
            return StackT(ss_flags=SS_DISABLE)
        return StackT(ss_sp=self.altstack.ss_sp, ss_size=self.altstack.ss_size,
                      ss_flags=SS_ONSTACK if self.on_altstack(sp) else self.altstack.ss_flags & SS_AUTODISARM)


