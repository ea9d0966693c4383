"""The threads of one emulated process, and the deterministic scheduler that runs them on one host thread.

Follows clone(2) (CLONE_THREAD, CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_SETTID,
CLONE_CHILD_CLEARTID), exit(2), set_tid_address(2), set_robust_list(2) and the kernel's
``kernel/futex/core.c`` (``exit_robust_list``, ``handle_futex_death``) for what a thread leaves behind.

Each guest thread has its own registers (a saved :class:`cpu.state.CpuState`, fs_base and the
SSE/AVX/x87 state included), tid, signal mask, pending signals, alternate stack, clear_child_tid
and robust list; the address space, descriptors and signal dispositions are the process's.  One
host thread runs them all: the running thread's registers are the interpreter's ``CpuState``, the
others' are saved here, and a switch copies them (the retired-instruction count stays the
process's).  A thread runs until it has retired :data:`QUANTUM` instructions, yields, or parks in
a system call that would block (:class:`emu.user.linux.Parked`); the next runnable thread in
creation order runs then.  When no thread can run, the scheduler waits on the host for what the
parked threads wait for (their descriptors, a host signal), or, when a thread waits with a timeout,
moves the process's clock to the earliest deadline, as a sleep does (``emu.user.task``).  With one
thread nothing here changes how the process runs.

Not modelled: more than one CPU (threads never run at the same time), scheduling priorities and
affinity, a process-wide pending set (a signal sent to the process is made pending on one thread
that does not block it); futexes shared with other processes are ``emu.user.futex``'s (the host's own futex).
"""

from __future__ import annotations

import ctypes
import select
import time
from dataclasses import dataclass, field
from typing import Protocol

from cpu.exceptions import GuestFault
from cpu.state import CpuState
from emu.user.linux import Errno
from emu.user.sigstate import SignalState, bit


class Memory(Protocol):
    def read(self, address: int, length: int) -> bytes: ...
    def write(self, address: int, data: bytes) -> None: ...


class Kernel(Protocol):
    """What the scheduler uses of ``emu.user.kernel.Kernel`` (which holds the :class:`Threads`): the live
    registers, memory, the running thread's per-thread fields, the clock, and the system call dispatch."""

    state: CpuState
    mem: Memory
    pid: int
    tid: int
    signals: SignalState
    clear_child_tid: int
    robust_list: int
    slept_ns: int

    def monotonic_ns(self) -> int: ...
    def handle(self) -> None: ...

QUANTUM = 100_000
"""Instructions a thread retires before the next runnable thread runs (about 10-50 ms in the Python
tier): a spinning thread cannot starve the others, and the switch points depend only on the count."""
TID_BASE = 1 << 29
"""Thread ids other than the main thread's (which is the pid) start here, above Linux's largest
pid_max (2^22), so that they never name a host process; they stay below FUTEX_TID_MASK (2^30)."""
FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x8000_0000, 0x4000_0000, 0x3FFF_FFFF
ROBUST_LIST_LIMIT = 2048
"""Entries of a robust list the kernel walks at most (a cyclic list must not hang the exit)."""
_SIZE = ctypes.sizeof(CpuState)


@dataclass
class HostWait:
    """A call that waits for the host: retried after ``wanted`` (fd, poll events) or a host signal is ready."""

    wanted: list[tuple[int, int]]


@dataclass
class FutexWait:
    """FUTEX_WAIT: woken by FUTEX_WAKE (0), its ``deadline`` on the process's clock (ETIMEDOUT), or a signal."""

    address: int
    bitset: int
    deadline: int | None
    ticket: int
    """When the wait began, for first-in first-out wake-ups."""
    pi: bool = False
    """FUTEX_LOCK_PI: waiting to own the lock word at ``address`` (only FUTEX_UNLOCK_PI or its owner's exit
    hand it over; FUTEX_WAKE finding it is EINVAL)."""
    requeue_to: int | None = None
    """FUTEX_WAIT_REQUEUE_PI: the PI lock word FUTEX_CMP_REQUEUE_PI moves the wait to."""

    @property
    def plain(self) -> bool:
        """A FUTEX_WAIT(_BITSET), which FUTEX_WAKE and FUTEX_REQUEUE act on."""
        return not self.pi and self.requeue_to is None


@dataclass(eq=False)
class Thread:
    """One guest thread: its registers while it does not run, and what the kernel keeps per thread."""

    tid: int
    signals: SignalState
    regs: CpuState = field(default_factory=CpuState)
    clear_child_tid: int = 0
    robust_list: int = 0
    wait: HostWait | FutexWait | None = None
    """Why the thread is parked; None when it can run."""
    retry: bool = False
    """Run its parked system call again before its code (what it waited for may be ready)."""
    deadline: float | None = None
    """The host-time end of the wait of a retried call, so that retries do not extend its timeout."""
    ran: int = 0
    """Instructions retired in its current quantum."""


class Threads:
    """The threads of a process and the run queue (creation order, round robin)."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.current = Thread(k.pid, k.signals)
        self.all: list[Thread] = [self.current]
        self.serial = 0
        self.tickets = 0

    @property
    def many(self) -> bool:
        return len(self.all) > 1

    def find(self, tid: int) -> Thread | None:
        return next((t for t in self.all if t.tid == tid), None)

    # -- creation and exit ---------------------------------------------------------------------
    def spawn(self, stack: int, tls: int | None) -> Thread:
        """A new thread that returns 0 from the clone the running thread is making, on ``stack``."""
        k = self.k
        tid = self._new_tid()
        thread = Thread(tid, k.signals.for_thread())
        ctypes.memmove(ctypes.addressof(thread.regs), ctypes.addressof(k.state), _SIZE)
        thread.regs.rax = 0
        if stack:
            thread.regs.rsp = stack
        if tls is not None:
            thread.regs.fs_base = tls
        self.all.append(thread)
        return thread

    def _new_tid(self) -> int:
        while True:
            self.serial += 1
            tid = TID_BASE + ((self.k.pid << 10) + self.serial) % TID_BASE
            if self.find(tid) is None:
                return tid

    def exit_current(self) -> None:
        """exit(2) of the running thread: its robust futexes are marked OWNER_DIED, the PI locks it holds go to
        their first waiters (``exit_pi_state_list``), its clear_child_tid word is zeroed and woken; then it is
        gone and another thread runs."""
        k, thread = self.k, self.current
        held = [address for address in {t.wait.address for t in self.all if isinstance(t.wait, FutexWait) and t.wait.pi}
                if self._word(address) & FUTEX_TID_MASK == k.tid]
        self.exit_robust_list()
        for address in held:
            self.hand_over(address, self._word(address) & FUTEX_OWNER_DIED)
        if k.clear_child_tid:
            try:
                k.mem.write(k.clear_child_tid, bytes(4))
                self.wake(k.clear_child_tid, 1)
            except GuestFault:       # an unmapped word is ignored, as when Linux's put_user fails
                pass
        self.all.remove(thread)

    def exit_robust_list(self) -> None:
        """Walk the running thread's robust list (``exit_robust_list``): every futex it holds gets
        FUTEX_OWNER_DIED, and one waiter is woken."""
        k = self.k
        head = k.robust_list
        if not head:
            return
        try:
            entry = self._u64(head)
            offset = int.from_bytes(k.mem.read(head + 8, 8), "little", signed=True)
            pending = self._u64(head + 16)
            for _ in range(ROBUST_LIST_LIMIT):
                if entry & ~1 == head:
                    break
                next_entry = self._u64(entry & ~1)
                if entry & ~1 != pending & ~1:
                    self._futex_death((entry & ~1) + offset)
                entry = next_entry
            if pending:
                self._futex_death((pending & ~1) + offset)
        except GuestFault:     # a list in unmapped memory ends the walk, as in Linux
            return

    def hand_over(self, address: int, flags: int = 0) -> bool:
        """Give the PI lock word at ``address`` to its first waiter, whose FUTEX_LOCK_PI returns 0 owning it: the
        word becomes its tid with FUTEX_WAITERS (and ``flags``), as ``wake_futex_pi`` and
        ``fixup_pi_state_owner`` write it.  False when no thread waits for it."""
        heirs = [t for t in self.waiters(address) if t.wait.pi]  # type: ignore[union-attr]
        if not heirs:
            return False
        heir = heirs[0]
        self.k.mem.write(address, (heir.tid | FUTEX_WAITERS | flags).to_bytes(4, "little"))
        heir.wait = None
        heir.regs.rax = 0
        return True

    def _word(self, address: int) -> int:
        try:
            return int.from_bytes(self.k.mem.read(address, 4), "little")
        except GuestFault:
            return 0

    def _u64(self, address: int) -> int:
        return int.from_bytes(self.k.mem.read(address, 8), "little")

    def _futex_death(self, address: int) -> None:
        k = self.k
        if address & 3:
            return
        word = int.from_bytes(k.mem.read(address, 4), "little")
        if word & FUTEX_TID_MASK != k.tid:
            return
        k.mem.write(address, ((word & FUTEX_WAITERS) | FUTEX_OWNER_DIED).to_bytes(4, "little"))
        if word & FUTEX_WAITERS:
            self.wake(address, 1)

    def after_fork(self) -> None:
        """In a forked child only the thread that forked is left, and its tid is the new pid."""
        self.current.tid = self.k.pid
        self.all = [self.current]

    # -- futex queues ------------------------------------------------------------------------
    def waiters(self, address: int, bitset: int = 0xFFFF_FFFF) -> list[Thread]:
        """Threads in FUTEX_WAIT on ``address`` whose bitset meets ``bitset``, in the order they started waiting."""
        found = [t for t in self.all if isinstance(t.wait, FutexWait) and t.wait.address == address
                 and t.wait.bitset & bitset]
        return sorted(found, key=lambda t: t.wait.ticket)  # type: ignore[union-attr]

    def futex_wait(self, address: int, bitset: int, deadline: int | None) -> FutexWait:
        """The wait the running thread parks in (the futex call raises Parked with it)."""
        self.tickets += 1
        return FutexWait(address, bitset, deadline, self.tickets)

    def wake(self, address: int, count: int, bitset: int = 0xFFFF_FFFF) -> int:
        """Wake up to ``count`` plain waiters of ``address`` (their futex call returns 0); how many woke."""
        woken = [t for t in self.waiters(address, bitset) if t.wait.plain][:max(count, 0)]  # type: ignore[union-attr]
        for thread in woken:
            thread.wait = None
            thread.regs.rax = 0
        return len(woken)

    # -- signals ---------------------------------------------------------------------------------
    def post_process(self, sig: int, info: bytes) -> None:
        """A signal sent to the process: pending on the running thread unless it blocks it, else on the
        first thread that does not (on the running one when all block it)."""
        target = next((t for t in [self.current, *self.all] if t in self.all and not t.signals.blocked & bit(sig)),
                      self.current)
        target.signals.post(sig, info)

    # -- running -----------------------------------------------------------------------------------
    def limit(self) -> int | None:
        """Instructions the running thread may retire before the next switch (None: one thread, no limit)."""
        return max(QUANTUM - self.current.ran, 1) if self.many else None

    def yield_current(self) -> None:
        """sched_yield(2): the running thread's quantum ends now."""
        self.current.ran = QUANTUM

    def account(self, retired: int) -> None:
        self.current.ran += retired

    def due(self) -> bool:
        """Whether another thread should run now: the running one parked, ended, or used its quantum."""
        t = self.current
        return t not in self.all or t.wait is not None or (self.many and t.ran >= QUANTUM)

    def settle(self) -> None:
        """Before guest code runs: switch when the running thread is due to give way, and finish a parked
        call that its thread runs again (which may park it anew).  Raises ProcessExit when that call ends
        the process."""
        while True:
            if self.due():
                self.schedule()
            if not self.current.retry:
                return
            self.current.retry = False
            self.k.handle()

    def schedule(self) -> None:
        """Switch to the next runnable thread after the running one (waiting on the host while none is)."""
        k, old = self.k, self.current
        if old in self.all:
            ctypes.memmove(ctypes.addressof(old.regs), ctypes.addressof(k.state), _SIZE)
            old.clear_child_tid, old.robust_list = k.clear_child_tid, k.robust_list
        idle = False
        while True:
            self._poll_host(None if idle else 0, idle)
            self.expire()
            self._interrupt_parked()
            nxt = self._next_runnable(old)
            if nxt is not None:
                break
            idle = self._advance_clock()
        nxt.ran = 0
        icount = k.state.icount
        ctypes.memmove(ctypes.addressof(k.state), ctypes.addressof(nxt.regs), _SIZE)
        k.state.icount = icount
        self.current = nxt
        k.signals, k.tid = nxt.signals, nxt.tid
        k.clear_child_tid, k.robust_list = nxt.clear_child_tid, nxt.robust_list

    def _next_runnable(self, old: Thread) -> Thread | None:
        order = self.all
        start = order.index(old) + 1 if old in order else 0
        for thread in order[start:] + order[:start]:
            if thread.wait is None:
                return thread
        return None

    def _interrupt_parked(self) -> None:
        """A parked thread with a signal to deliver runs its call again, which then fails with EINTR (or
        is restarted after the handler) as a single thread's blocking call does."""
        for thread in self.all:
            if thread.wait is not None and thread.signals.deliverable():
                thread.wait = None
                thread.retry = True

    def _poll_host(self, timeout: int | None, idle: bool) -> None:
        """Let the threads in a host wait retry when their descriptors are ready, a host signal came,
        or their timeout passed; ``idle``: no thread can run, so wait up to ``timeout`` ms (None: until
        something happens) and let them all retry."""
        k = self.k
        parked = [t for t in self.all if isinstance(t.wait, HostWait)]
        if not parked and not idle:
            return
        events: dict[int, int] = {}
        for thread in parked:
            for fd, mask in thread.wait.wanted:  # type: ignore[union-attr]
                events[fd] = events.get(fd, 0) | mask
        wake = k.signals.wake[0] if k.signals.wake is not None else None
        if wake is not None:
            events[wake] = select.POLLIN
        if idle:
            deadlines = [t.deadline for t in parked if t.deadline is not None]
            if deadlines:
                left = max(0, round((min(deadlines) - time.monotonic()) * 1000))
                timeout = left if timeout is None else min(timeout, left)
        poller = select.poll()
        for fd, mask in events.items():
            poller.register(fd, mask)
        ready = {fd for fd, _ in poller.poll(timeout)} if events else set()
        if wake is not None and wake in ready:
            k.signals.drain_wake()
        now = time.monotonic()
        for thread in parked:
            wait = thread.wait
            assert isinstance(wait, HostWait)
            if (idle or wake in ready or any(fd in ready for fd, _ in wait.wanted)
                    or (thread.deadline is not None and thread.deadline <= now)):
                thread.wait = None
                thread.retry = True

    def _advance_clock(self) -> bool:
        """No thread can run (and no descriptor was ready just now).  When one waits with a timeout on the
        process's clock, the clock moves to the earliest such deadline at once (as sleeps do); returns
        whether the scheduler must instead wait on the host."""
        deadlines = [t.wait.deadline for t in self.all if isinstance(t.wait, FutexWait) and t.wait.deadline is not None]
        if not deadlines:
            return True
        self.k.slept_ns += max(0, min(deadlines) - self.k.monotonic_ns())
        return False

    def expire(self) -> None:
        """Futex waits whose deadline has passed return ETIMEDOUT."""
        now = self.k.monotonic_ns()
        for thread in self.all:
            if isinstance(thread.wait, FutexWait) and thread.wait.deadline is not None and thread.wait.deadline <= now:
                thread.wait = None
                thread.regs.rax = -Errno.ETIMEDOUT & 0xFFFF_FFFF_FFFF_FFFF

