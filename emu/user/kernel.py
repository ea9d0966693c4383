"""The Linux kernel as one user process sees it: per-process state, and the dispatch of a system call.

Follows the x86-64 system call convention (System V AMD64 psABI, A.2.1 and
syscall(2)): the number in rax, arguments in rdi, rsi, rdx, r10, r8, r9, the
result in rax, a failure as ``-errno`` (-4095..-1).  The CPU has already
clobbered rcx and r11 as SYSCALL does.

:class:`Kernel` holds what Linux keeps per process (descriptor table, working
directory, signal dispositions, resource limits, clocks) and is what every
handler receives first.  :meth:`Kernel.handle` looks the number up in the
table of ``sysent``, where each handler registered itself by name; it never
names a handler module.  Handlers live by topic in ``fileio`` (descriptors
and data), ``fs`` (paths and metadata), ``mm`` (the address space) and
``task`` (identity, time, signals, limits, exit); ``emu.user.syscalls``
imports them all, so a :class:`Kernel` taken from there has the whole table.
Paths are host paths, as in qemu-user, looked up in the sysroot first
(``emu.user.sysroot``); ``/proc/self/exe``, ``/proc/self/maps`` and
``/proc/self/auxv`` show the guest (``emu.user.procfs``).

A guest pointer into unmapped memory makes the call fail with EFAULT; a host
error becomes the Linux errno of the same name; a call without a handler
returns ENOSYS and is reported once.  A blocking call that a signal interrupts
(``emu.user.signals``) returns EINTR, or is restarted after the handler when
it allows that.  A call that would block while other threads can run parks the thread instead
(:class:`Parked`, ``emu.user.threads``).  A call first lets go of the lock of shared memory the guest's
instructions held (``emu.user.sharedmem``), and its own accesses to shared memory take it one at a time.
"""

from __future__ import annotations

import ctypes
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Protocol, TextIO, TypeVar

from cpu.exceptions import GuestFault
from cpu.state import CpuState
from emu.user.address_space import AddressSpace
from emu.user.fdtable import FdTable
from emu.user.linux import (
    AT_FDCWD,
    MASK64,
    Errno,
    Parked,
    ProcessExit,
    SyscallError,
    Timespec,
    Timeval,
    errno_name,
    linux_errno,
    s32,
)
from emu.user.sigstate import Interrupted, SignalState
from emu.user.sysent import HANDLERS, NAMES
from emu.user.sysroot import Sysroot
from emu.user.threads import Threads

PATH_MAX = 4096

Layout = TypeVar("Layout", bound=ctypes.Structure)


class Host(Protocol):
    """What the emulator process around the guest does for fork(2) and execve(2) (``emu.user.process.Process``;
    the system calls are in ``emu.user.forkexec``)."""

    def before_fork(self) -> None: ...
    def after_fork_child(self) -> None: ...
    def exec(self, program: bytes, argv: list[bytes], env: list[bytes]) -> None: ...


class Kernel:
    """The Linux kernel as one user process sees it."""

    def __init__(self, state: CpuState, memory: AddressSpace, *, exe: str, fds: FdTable | None = None,
                 clock: Callable[[], int] | None = None, epoch_ns: int | None = None,
                 random_seed: int | None = None, hostname: str | None = None,
                 log: TextIO | None = None, trace: TextIO | None = None, sysroot: Sysroot | None = None,
                 auxv: dict[int, int] | None = None, signals: SignalState | None = None) -> None:
        """``clock`` returns nanoseconds since the program started (default: host monotonic time);
        ``epoch_ns`` is the wall-clock time at the start (default: the host's).  ``random_seed``
        makes getrandom(2) deterministic.  ``log`` receives emu's own messages (default stderr);
        ``trace``, when given, one line per system call, as strace prints it.  ``sysroot`` maps
        absolute paths (``-L``); ``auxv`` is what ``/proc/self/auxv`` shows; ``signals`` the dispositions
        and mask the process starts with (``emu.user.signals``).
        """
        self.state = state
        self.mem = memory
        self.exe = os.fsencode(os.path.abspath(exe))
        self.sysroot = sysroot if sysroot is not None else Sysroot()
        self.auxv = dict(auxv or {})
        self.fds = fds if fds is not None else FdTable()
        self.cwd_fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if clock is None:
            start = time.monotonic_ns()
            clock = lambda: time.monotonic_ns() - start  # noqa: E731
        self.clock = clock
        self.epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
        self.slept_ns = 0
        """Time the program asked to sleep: sleeps return at once and move its clocks instead."""
        self.rng = random.Random(random_seed) if random_seed is not None else None
        self.hostname = os.uname().nodename if hostname is None else hostname
        self.log = log
        self.trace = trace
        self.pid = os.getpid()
        self.comm = os.path.basename(self.exe)[:15]
        """The thread name (prctl PR_SET_NAME), at most 15 bytes."""
        self.signals = signals if signals is not None else SignalState()
        self.host: Host | None = None
        """The emulator process around the guest, for fork and execve (set when it runs)."""
        self.rlimits = memory.rlimits
        """The resource limits set by the guest (the address space applies RLIMIT_AS and RLIMIT_STACK)."""
        self.tid = self.pid
        """The running thread's id (the pid for the main thread)."""
        self.clear_child_tid = 0
        self.robust_list = 0
        self.said: set[str] = set()
        self.threads = Threads(self)

    # -- dispatch -----------------------------------------------------------
    def handle(self) -> None:
        """Carry out the system call the guest just made; its result goes to rax.

        Raises :class:`ProcessExit` when the call ends the process.
        """
        lock = self.mem.shared_lock
        lock.release()              # between instructions: other processes may use shared memory now
        lock.keep = False           # and the call's own accesses to it take the lock one at a time
        try:
            self._handle()
        finally:
            lock.keep = True

    def _handle(self) -> None:
        st = self.state
        nr = st.rax
        entry = HANDLERS.get(nr)
        if entry is None:
            name, args = NAMES.get(nr, "unknown"), (st.rdi, st.rsi, st.rdx, st.r10, st.r8, st.r9)
            self.say_once(f"syscall {nr} ({name}) not implemented, returning -ENOSYS")
            result = -Errno.ENOSYS
        else:
            name, args = entry.name, (st.rdi, st.rsi, st.rdx, st.r10, st.r8, st.r9)[:entry.nargs]
            try:
                result = self._call(entry.handler, args)
            except ProcessExit:
                self._trace(name, args, "?")
                raise
            except Parked as parked:
                thread = self.threads.current
                thread.wait = parked.wait       # type: ignore[assignment]
                st.rax = nr                     # run again (a host wait), or the result a wake-up writes
                return
            except Interrupted:
                self.signals.restart = nr      # a signal came during a blocking wait: EINTR, or restart
                result = -Errno.EINTR
        self.threads.current.deadline = None
        self._trace(name, args, (result < 0 and errno_name(-result)) or hex(result))
        st.rax = result & MASK64

    def _trace(self, name: str, args: tuple[int, ...], result: str) -> None:
        if self.trace is not None:
            self.trace.write(f"{name}({', '.join(hex(a) for a in args)}) = {result}\n")

    def _call(self, handler: Callable[..., int], args: tuple[int, ...]) -> int:
        try:
            return handler(self, *args)
        except SyscallError as e:
            return -e.errno
        except GuestFault:
            return -Errno.EFAULT
        except OSError as e:
            return -linux_errno(e.errno)
        except (ValueError, OverflowError):
            return -Errno.EINVAL
        except MemoryError:
            return -Errno.ENOMEM

    def say(self, message: str) -> None:
        """One line from emu itself (not from the guest) on the log stream; nowhere when the program was
        started without a stderr (print would fall back to stdout, the program's own)."""
        stream = self.log if self.log is not None else sys.stderr
        if stream is not None:
            print(f"emu: {message}", file=stream)

    def say_once(self, message: str) -> None:
        if message not in self.said:
            self.said.add(message)
            self.say(message)

    def close(self) -> None:
        """Release the host descriptors this process holds."""
        self.fds.close_all()
        os.close(self.cwd_fd)

    # -- guest memory -------------------------------------------------------
    def read_struct(self, address: int, layout: type[Layout]) -> Layout:
        return layout.from_buffer_copy(self.mem.read(address, ctypes.sizeof(layout)))

    def read_timeout_ms(self, address: int, layout: type[Timespec] | type[Timeval]) -> int | None:
        """A relative timeout (a ``timespec`` or ``timeval`` at ``address``, none when 0) in whole milliseconds,
        rounded up; EINVAL for a negative one or a fraction out of range, as the kernel's checks give."""
        if address == 0:
            return None
        t = self.read_struct(address, layout)
        fraction = t.tv_nsec if isinstance(t, Timespec) else t.tv_usec * 1000
        if t.tv_sec < 0 or not 0 <= fraction < 1_000_000_000:
            raise SyscallError(Errno.EINVAL)
        return t.tv_sec * 1000 + (fraction + 999_999) // 1_000_000

    def write_struct(self, address: int, value: ctypes.Structure) -> None:
        self.mem.write(address, bytes(value))

    def write_u64(self, address: int, value: int) -> None:
        self.mem.write(address, (value & MASK64).to_bytes(8, "little"))

    def path(self, address: int) -> bytes:
        """The NUL-terminated path at ``address``, exactly as the guest wrote it."""
        path = self.mem.read_cstring(address, PATH_MAX)
        if len(path) >= PATH_MAX:
            raise SyscallError(Errno.ENAMETOOLONG)
        return path

    def dir_fd(self, dirfd: int) -> int:
        """The host directory descriptor a ``*at`` call's ``dirfd`` names."""
        return self.cwd_fd if s32(dirfd) == AT_FDCWD else self.fds.host(dirfd)

    # -- time ---------------------------------------------------------------
    def monotonic_ns(self) -> int:
        return self.clock() + self.slept_ns

    def realtime_ns(self) -> int:
        return self.epoch_ns + self.monotonic_ns()

