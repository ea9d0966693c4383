"""Signals of one emulated process: dispositions, the blocked mask, pending signals, and their delivery
to the guest's handlers through a signal frame laid out as x86-64 Linux lays it out.

Follows signal(7), sigaction(2), sigprocmask(2), sigaltstack(2), sigreturn(2), sigsuspend(2),
sigtimedwait(2), kill(2), alarm(2), setitimer(2), and the kernel's arch/x86/kernel/signal.c
(``get_sigframe``, ``__setup_rt_frame``, ``restore_sigcontext``) with the UAPI layouts of
``asm/sigcontext.h``, ``asm/ucontext.h`` and ``asm-generic/siginfo.h``:

* the frame (``struct rt_sigframe``) goes 128 bytes (the red zone) below the interrupted rsp, or to the
  top of the alternate stack for an SA_ONSTACK handler; below it the FXSAVE image of the x87/SSE
  state (512 bytes, 64-byte aligned, no xstate magic words, no UC_FP_XSTATE in ``uc_flags``: the
  FXSAVE layout Linux uses on a CPU without XSAVE), then the frame itself, placed so that rsp + 8 is 16-byte aligned
  as at a function's entry: the restorer as return address, the ucontext (flags, link, the
  alternate stack, the sigcontext with the registers in Linux's order, err, trapno, oldmask, cr2 and
  the fpstate pointer, the saved mask), then the siginfo;
* the handler runs with rdi = the signal, rsi = &siginfo, rdx = &ucontext, rax = 0, DF and TF clear;
  its mask adds sa_mask and, unless SA_NODEFER, the signal itself; SA_RESETHAND resets it;
* rt_sigreturn reads everything back; a frame that cannot be read, or whose FPU image is invalid,
  kills the process with SIGSEGV, as Linux's ``force_sig(SIGSEGV)`` does;
* a system call that a handled signal interrupted returns EINTR, or is restarted when the handler has
  SA_RESTART (or when no handler ran at all), by moving rip back over the ``syscall``.

A fault in the guest (``synchronous``) goes to its handler when there is one and it is not blocked or
ignored; otherwise the process dies of it.  Asynchronous signals are taken between blocks: host signals
sent to the emulator (Ctrl-C, kill(1), SIGCHLD of a child, the ITIMER_REAL timer) are forwarded to the
guest by :class:`HostSignals`, which also stops the run loop so that delivery is precise.

Each thread has its own mask, pending signals and alternate stack (``Kernel.signals`` is the running
thread's); the dispositions are the process's.  kill(2) and host signals go to a thread that does not
block them, tgkill(2) to the thread it names (``emu.user.threads``); a blocking wait parks the thread
instead of blocking the host while other threads exist.

Not modelled: queued real-time signals (one instance of each pending signal is kept, like a standard
signal), the sender's pid and uid of a forwarded host signal (si_code SI_USER, si_pid 0), SIGSEGV, SIGBUS,
SIGFPE, SIGILL and SIGTRAP sent by other processes (the emulator keeps the host's handling of those),
ITIMER_VIRTUAL and ITIMER_PROF, and the 32-bit frames.  With XSAVE advertised, Linux writes an XSAVE
frame (UC_FP_XSTATE, the magic words, the AVX component); emu writes the FXSAVE layout and keeps the
upper halves of YMM0-15 itself across the handler (restored by rt_sigreturn of that frame), so the
interrupted code's AVX state survives a handler, but a handler cannot read or change it in the frame.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import struct
import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, TypeVar

from cpu.exceptions import GuestFault, PFError, Vector
from cpu.flags import read_rflags, write_rflags
from cpu.semantics.sse import FX_SIZE, fxrstor, fxsave
from emu.user.linux import (
    DEFAULT_IGNORED,
    MASK64,
    SIG_DFL,
    SIG_IGN,
    SS_DISABLE,
    Errno,
    KernelSigaction,
    Parked,
    ProcessExit,
    Signal,
    StackT,
    SyscallError,
    Timespec,
    Timeval,
    s32,
)
from emu.user.loader import MINSIGSTKSZ
from emu.user.sharedmem import BusError
from emu.user.sigstate import (
    KEPT_FRAMES,
    NEVER_BLOCKED,
    NSIG,
    SS_AUTODISARM,
    SS_ONSTACK,
    SYNCHRONOUS,
    Interrupted,
    bit,
)
from emu.user.sysent import syscall
from emu.user.threads import HostWait

if TYPE_CHECKING:
    from emu.user.kernel import Kernel

SIGSET_SIZE = 8
SA_NOCLDSTOP, SA_SIGINFO, SA_RESTORER, SA_ONSTACK = 0x1, 0x4, 0x0400_0000, 0x0800_0000
SA_RESTART, SA_NODEFER, SA_RESETHAND = 0x1000_0000, 0x4000_0000, 0x8000_0000
RED_ZONE = 128
UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 0x2, 0x4

# si_code values (asm-generic/siginfo.h)
SI_USER, SI_KERNEL, SI_TKILL = 0, 0x80, -6
SEGV_MAPERR, SEGV_ACCERR = 1, 2
BUS_ADRALN, BUS_ADRERR = 1, 2
FPE_INTDIV, FPE_FLTDIV, FPE_FLTOVF, FPE_FLTUND, FPE_FLTRES, FPE_FLTINV = 1, 3, 4, 5, 6, 7
ILL_ILLOPN = 2
TRAP_BRKPT = 1
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3

STOP_SIGNALS = frozenset({Signal.SIGSTOP, Signal.SIGTSTP, Signal.SIGTTIN, Signal.SIGTTOU})
"""Signals whose default action stops the process (signal(7), "Stop")."""
CORE_SIGNALS = frozenset({Signal.SIGQUIT, Signal.SIGILL, Signal.SIGTRAP, Signal.SIGABRT, Signal.SIGBUS,
                          Signal.SIGFPE, Signal.SIGSEGV, Signal.SIGXCPU, Signal.SIGXFSZ, Signal.SIGSYS})
"""Signals whose default action dumps core (signal(7), "Core")."""
HOST_KEPT = SYNCHRONOUS | {Signal.SIGKILL, Signal.SIGSTOP}
"""Host signals the emulator never forwards: its own faults, and the two that cannot be caught."""

FAULT_SIGNALS = {
    Vector.DE: (Signal.SIGFPE, FPE_INTDIV), Vector.DB: (Signal.SIGTRAP, TRAP_BRKPT),
    Vector.BP: (Signal.SIGTRAP, SI_KERNEL), Vector.UD: (Signal.SIGILL, ILL_ILLOPN),
    Vector.NP: (Signal.SIGBUS, BUS_ADRERR), Vector.SS: (Signal.SIGBUS, BUS_ADRERR),
    Vector.AC: (Signal.SIGBUS, BUS_ADRALN), Vector.MC: (Signal.SIGBUS, BUS_ADRERR),
    Vector.MF: (Signal.SIGFPE, FPE_FLTINV), Vector.XM: (Signal.SIGFPE, FPE_FLTINV),
}
"""The signal and si_code Linux's trap handlers send for each exception that is not SIGSEGV."""

_FLOAT_CODES = ((0x01, FPE_FLTINV), (0x04, FPE_FLTDIV), (0x08, FPE_FLTOVF), (0x12, FPE_FLTUND), (0x20, FPE_FLTRES))
"""Linux's fpu__exception_code (arch/x86/kernel/fpu/core.c): the first unmasked exception flag in this order
names the si_code of SIGFPE for #XM (MXCSR) and #MF (the x87 status word); denormal counts as underflow."""


def float_fault_code(flags: int, masks: int) -> int:
    """The si_code of SIGFPE for #XM or #MF: from the exception ``flags`` (MXCSR's or the x87 status word's low
    six bits) whose ``masks`` (MXCSR's bits 12:7, the x87 control word's low six) are clear; FPE_FLTINV if
    none is."""
    unmasked = flags & ~masks & 0x3F
    return next((code for bits, code in _FLOAT_CODES if unmasked & bits), FPE_FLTINV)


T = TypeVar("T")


# -- layouts --------------------------------------------------------------------------------
_GREGS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax",
          "rcx", "rsp", "rip")
"""The general registers of struct sigcontext, in Linux's order (asm/sigcontext.h), before eflags."""


class Sigcontext(ctypes.LittleEndianStructure):
    """struct sigcontext (x86-64)."""

    _fields_ = [*((name, ctypes.c_uint64) for name in _GREGS),   # 0..128: r8 .. rip
                ("eflags", ctypes.c_uint64),     # 136
                ("cs", ctypes.c_uint16),         # 144
                ("gs", ctypes.c_uint16),         # 146
                ("fs", ctypes.c_uint16),         # 148
                ("ss", ctypes.c_uint16),         # 150
                ("err", ctypes.c_uint64),        # 152
                ("trapno", ctypes.c_uint64),     # 160
                ("oldmask", ctypes.c_uint64),    # 168
                ("cr2", ctypes.c_uint64),        # 176
                ("fpstate", ctypes.c_uint64),    # 184
                ("reserved1", ctypes.c_uint64 * 8)]   # 192


class Ucontext(ctypes.LittleEndianStructure):
    """struct ucontext as the kernel writes it (asm/ucontext.h), with the kernel's 8-byte sigset."""

    _fields_ = [("uc_flags", ctypes.c_uint64),      # 0
                ("uc_link", ctypes.c_uint64),       # 8
                ("uc_stack", StackT),               # 16
                ("uc_mcontext", Sigcontext),        # 40
                ("uc_sigmask", ctypes.c_uint64)]    # 296


class RtSigframe(ctypes.LittleEndianStructure):
    """struct rt_sigframe (arch/x86/include/asm/sigframe.h): what rsp points at when a handler starts."""

    _fields_ = [("pretcode", ctypes.c_uint64),      # 0: the restorer, as the handler's return address
                ("uc", Ucontext),                    # 8
                ("info", ctypes.c_uint8 * 128)]      # 312: siginfo_t


for _layout, _size in ((Sigcontext, 256), (Ucontext, 304), (RtSigframe, 440)):
    assert ctypes.sizeof(_layout) == _size, _layout.__name__
_UC_OFFSET, _INFO_OFFSET = RtSigframe.uc.offset, RtSigframe.info.offset
FIX_EFLAGS = 0x4_0000 | 0x800 | 0x400 | 0x100 | 0x80 | 0x40 | 0x10 | 0x4 | 0x1 | 0x1_0000
"""The RFLAGS bits rt_sigreturn takes from the frame: AC, OF, DF, TF, SF, ZF, AF, PF, CF, RF."""


def siginfo(sig: int, code: int, *words: int) -> bytes:
    """A siginfo_t: signo, errno 0, code, then the union's fields (each a 32-bit int unless it is an
    address, which the caller passes as two halves)."""
    head = struct.pack("<iii4x", sig, 0, code) + b"".join(struct.pack("<i", w) for w in words)
    return head.ljust(128, b"\0")


def fault_info(sig: int, code: int, address: int) -> bytes:
    return (struct.pack("<iii4xQ", sig, 0, code, address & MASK64)).ljust(128, b"\0")


def wait_until(k: Kernel, ready: Callable[[], T | None], wanted: Sequence[tuple[int, int]] = (),
               timeout_ms: int | None = None) -> T | None:
    """Block the way a system call does: call ``ready`` until it gives a value, sleeping in between until
    one of the host descriptors (fd, poll events) in ``wanted`` is ready, a host signal arrives, or the
    timeout passes (then None).  Raises :class:`Interrupted` when a signal that will be delivered is pending.

    While other threads exist, the wait does not block the host: when nothing is ready the thread parks
    (:class:`Parked`) and the call runs again when the scheduler sees ``wanted`` ready (``emu.user.threads``)."""
    sigs = k.signals
    if k.threads.many:
        thread = k.threads.current
        if thread.deadline is None and timeout_ms is not None:
            thread.deadline = time.monotonic() + timeout_ms / 1000
        value = ready()
        if value is not None:
            return value
        if sigs.deliverable():
            raise Interrupted
        if thread.deadline is not None and thread.deadline <= time.monotonic():
            return None
        raise Parked(HostWait(list(wanted)))
    poller = select.poll()
    for fd, events in wanted:
        poller.register(fd, events)
    if sigs.wake is not None:
        poller.register(sigs.wake[0], select.POLLIN)
    deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
    while True:
        sigs.drain_wake()
        value = ready()
        if value is not None:
            return value
        if sigs.deliverable():
            raise Interrupted
        left = None if deadline is None else round((deadline - time.monotonic()) * 1000)
        if left is not None and left <= 0:
            return None
        poller.poll(left)


def ready_for(fd: int, events: int) -> Callable[[], bool | None]:
    """A ``ready`` for :func:`wait_until`: True once ``fd`` has one of ``events`` (or an error or hang-up)."""
    def check() -> bool | None:
        poller = select.poll()
        poller.register(fd, events)
        return True if poller.poll(0) else None
    return check


# -- delivery ---------------------------------------------------------------------------------
class _Cpu(SimpleNamespace):
    """What the FXSAVE/FXRSTOR helpers need of a CPU: its state and memory."""


def deliver(k: Kernel) -> None:
    """Deliver every pending unblocked signal: run its default action, or set up its handler's frame
    (each new frame on top of the last, as Linux does when several are pending).  Then settle a system
    call that was interrupted.  Raises :class:`ProcessExit` when a signal ends the process."""
    sigs = k.signals
    handled = False
    restart, sigs.restart = sigs.restart, None
    always, sigs.restart_always = sigs.restart_always, False
    while (taken := sigs.next()) is not None:
        sig, info = taken
        act = sigs.action(sig)
        if act.sa_handler == SIG_IGN:
            continue
        if act.sa_handler == SIG_DFL:
            default_action(k, sig)
            continue
        if restart is not None and not handled:
            _settle_restart(k, restart, bool(act.sa_flags & SA_RESTART) or always)
            handled = True
        setup_frame(k, sig, info, act)
    if restart is not None and not handled:
        _settle_restart(k, restart, True)
    if sigs.saved_mask is not None:
        sigs.blocked, sigs.saved_mask = sigs.saved_mask, None


def _settle_restart(k: Kernel, nr: int, restart: bool) -> None:
    """ERESTARTSYS: back over the 2-byte ``syscall`` with the number in rax, or EINTR stays in rax."""
    if restart:
        k.state.rax = nr
        k.state.rip -= 2


def default_action(k: Kernel, sig: int) -> None:
    """The default action of ``sig``: nothing, stop (the emulator stops itself), or the end of the process."""
    if sig in DEFAULT_IGNORED:
        return
    if sig in STOP_SIGNALS:
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    raise ProcessExit(signal=sig)


def setup_frame(k: Kernel, sig: int, info: bytes, act: KernelSigaction, *, trapno: int = 0, err: int = 0,
                cr2: int = 0) -> None:
    """Push the rt_sigframe and enter the handler (``__setup_rt_frame``); a frame that cannot be written
    kills the process with SIGSEGV."""
    st, sigs = k.state, k.signals
    sp = st.rsp - RED_ZONE
    if act.sa_flags & SA_ONSTACK and sigs.altstack is not None and not sigs.on_altstack(st.rsp):
        sp = sigs.altstack.ss_sp + sigs.altstack.ss_size
    uc_stack = sigs.stack_t(st.rsp)                     # as the interrupted code had it (save_altstack)
    fx = (sp - FX_SIZE) & ~63
    frame_at = ((fx - ctypes.sizeof(RtSigframe)) & ~15) - 8
    if sigs.on_altstack(sp) and not sigs.on_altstack(frame_at):
        raise ProcessExit(signal=Signal.SIGSEGV)        # the frame does not fit on the alternate stack
    frame = RtSigframe(pretcode=act.sa_restorer)
    frame.uc.uc_flags = UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
    frame.uc.uc_stack = uc_stack
    mc = frame.uc.uc_mcontext
    for name in _GREGS:
        setattr(mc, name, getattr(st, name))
    mc.eflags = read_rflags(st)
    mc.cs, mc.fs, mc.gs, mc.ss = st.cs, st.fs, st.gs, st.ss
    saved = sigs.blocked if sigs.saved_mask is None else sigs.saved_mask
    sigs.saved_mask = None
    mc.err, mc.trapno, mc.oldmask, mc.cr2, mc.fpstate = err, trapno, saved, cr2, fx
    frame.uc.uc_sigmask = saved
    frame.info[:] = info
    try:
        if not act.sa_flags & SA_RESTORER:
            raise GuestFault(Vector.GP, 0, detail="no SA_RESTORER")
        k.mem.write(fx, bytes(FX_SIZE))
        fxsave(_Cpu(state=st, mem=k.mem), fx)
        k.write_struct(frame_at, frame)
    except GuestFault:
        raise ProcessExit(signal=Signal.SIGSEGV) from None
    sigs.upper_halves[frame_at] = [st.ymm(i) >> 128 for i in range(16)]
    while len(sigs.upper_halves) > KEPT_FRAMES:
        del sigs.upper_halves[next(iter(sigs.upper_halves))]
    if sigs.altstack is not None and sigs.altstack.ss_flags & SS_AUTODISARM and sigs.on_altstack(sp):
        sigs.altstack = None
    st.rdi, st.rsi, st.rdx, st.rax = sig, frame_at + _INFO_OFFSET, frame_at + _UC_OFFSET, 0
    st.rsp, st.rip = frame_at, act.sa_handler
    write_rflags(st, read_rflags(st) & ~(0x400 | 0x100 | 0x1_0000))      # DF, TF, RF clear
    sigs.blocked |= act.sa_mask | (0 if act.sa_flags & SA_NODEFER else bit(sig))
    sigs.blocked &= ~NEVER_BLOCKED
    if act.sa_flags & SA_RESETHAND:
        sigs.actions[sig] = KernelSigaction()


def synchronous(k: Kernel, fault: GuestFault) -> tuple[int, str] | None:
    """A CPU exception in the guest: run its handler, or return (signal, "") when the process dies of it.

    Like Linux's ``force_sig_fault``: a blocked or ignored synchronous signal kills the process."""
    st = k.state
    if isinstance(fault, BusError):
        sig, code, address = Signal.SIGBUS, BUS_ADRERR, fault.address or 0
    elif fault.vector == Vector.PF:
        sig, code = Signal.SIGSEGV, SEGV_ACCERR if (fault.error_code or 0) & PFError.P else SEGV_MAPERR
        address = fault.address or 0
    elif fault.vector in FAULT_SIGNALS:
        (sig, code), address = FAULT_SIGNALS[fault.vector], st.rip
        if fault.vector == Vector.XM:
            code = float_fault_code(st.mxcsr, st.mxcsr >> 7)
        elif fault.vector == Vector.MF:
            code = float_fault_code(st.fsw, st.fcw)
    else:
        sig, code, address = Signal.SIGSEGV, SI_KERNEL, 0
    act = k.signals.action(sig)
    if act.sa_handler in (SIG_DFL, SIG_IGN) or k.signals.blocked & bit(sig):
        return sig, ""
    setup_frame(k, sig, fault_info(sig, code, address), act, trapno=int(fault.vector),
                err=fault.error_code or 0, cr2=address if fault.vector == Vector.PF else 0)
    return None


def sigreturn(k: Kernel) -> int:
    """rt_sigreturn: restore what the frame at rsp - 8 holds; a bad frame kills with SIGSEGV."""
    st, sigs = k.state, k.signals
    frame_at = st.rsp - 8
    try:
        frame = k.read_struct(frame_at, RtSigframe)
        mc = frame.uc.uc_mcontext
        if mc.fpstate:
            fxrstor(_Cpu(state=st, mem=k.mem), mc.fpstate)
    except GuestFault:
        raise ProcessExit(signal=Signal.SIGSEGV) from None
    upper = sigs.upper_halves.pop(frame_at, None)
    if upper is not None:
        for i, high in enumerate(upper):
            st.set_ymm(i, st.xmm(i) | high << 128)
    for name in _GREGS:
        setattr(st, name, getattr(mc, name))
    write_rflags(st, (read_rflags(st) & ~FIX_EFLAGS) | (mc.eflags & FIX_EFLAGS))
    sigs.blocked = frame.uc.uc_sigmask & ~NEVER_BLOCKED
    stack = frame.uc.uc_stack
    if not sigs.on_altstack(st.rsp) and not stack.ss_flags & SS_ONSTACK:
        if stack.ss_flags & SS_DISABLE:
            sigs.altstack = None
        elif stack.ss_size >= MINSIGSTKSZ:
            sigs.altstack = StackT(ss_sp=stack.ss_sp, ss_size=stack.ss_size, ss_flags=stack.ss_flags & SS_AUTODISARM)
    return st.rax


# -- host signals ----------------------------------------------------------------------------------
class HostSignals:
    """Forwards signals sent to the emulator's host process to the guest, and stops the run loop so that
    they are delivered at the next block boundary.  Installed for the run; :meth:`for_exec` puts the
    guest's ignored signals and mask on the host process before an execve."""

    def __init__(self, k: Kernel, stop: Callable[[], None]) -> None:
        self.k = k
        self.stop = stop
        self.installed: list[int] = []

    def install(self) -> None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.k.signals.wake = (r, w)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        for sig in range(1, signal.NSIG):
            if sig in HOST_KEPT or not 1 <= sig <= 31:
                continue
            try:
                signal.signal(sig, self._arrived)
            except (OSError, ValueError):
                continue
            self.installed.append(sig)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])

    def renew_after_fork(self) -> None:
        """A forked child must not share the parent's wake-up pipe."""
        old = self.k.signals.wake
        if old is not None:
            os.close(old[0])
            os.close(old[1])
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.k.signals.wake = (r, w)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def _arrived(self, sig: int, frame: object) -> None:
        if sig == Signal.SIGCHLD:
            info = _child_info()
        else:
            info = siginfo(sig, SI_USER, 0, 0)
        self.k.threads.post_process(sig, info)
        self.stop()

    def for_exec(self) -> None:
        """The host dispositions and mask the next program inherits: ignored signals stay ignored, the
        others go back to their defaults, the mask is the guest's (execve(2))."""
        signal.set_wakeup_fd(-1)
        sigs = self.k.signals
        for sig in self.installed:
            signal.signal(sig, signal.SIG_IGN if sigs.action(sig).sa_handler == SIG_IGN else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [s for s in range(1, 32) if sigs.blocked & bit(s)])


def _child_info() -> bytes:
    """SIGCHLD's siginfo for a child that changed state, read without reaping it."""
    try:
        child = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        child = None
    if child is None:
        return siginfo(Signal.SIGCHLD, SI_USER, 0, 0)
    return siginfo(Signal.SIGCHLD, child.si_code, child.si_pid, child.si_uid, child.si_status)


def inherited() -> tuple[int, int]:
    """The ignored signals and the mask this process started with, as the guest's (not SIGPIPE, which
    Python itself ignores)."""
    ignored = 0
    for sig in range(1, 32):
        if sig in (Signal.SIGPIPE, Signal.SIGKILL, Signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                ignored |= bit(sig)
        except ValueError:
            continue
    blocked = 0
    for sig in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        if 1 <= sig <= NSIG:
            blocked |= bit(sig)
    return ignored, blocked


# -- system calls ---------------------------------------------------------------------------------
def _check_sigset_size(size: int) -> None:
    if size != SIGSET_SIZE:
        raise SyscallError(Errno.EINVAL)


@syscall("rt_sigaction")
def rt_sigaction(k: Kernel, sig: int, act: int, oact: int, sigsetsize: int) -> int:
    _check_sigset_size(sigsetsize)
    sig = s32(sig)
    if not 1 <= sig <= NSIG or (act and sig in (Signal.SIGKILL, Signal.SIGSTOP)):
        raise SyscallError(Errno.EINVAL)
    new = k.read_struct(act, KernelSigaction) if act else None
    if oact:
        k.write_struct(oact, k.signals.action(sig))
    if new is not None:
        new.sa_mask &= ~NEVER_BLOCKED
        k.signals.actions[sig] = new
        if k.signals.ignored(sig):
            k.signals.pending.pop(sig, None)      # setting SIG_IGN discards a pending instance
    return 0


def _read_sigset(k: Kernel, address: int) -> int:
    return int.from_bytes(k.mem.read(address, SIGSET_SIZE), "little")


def with_mask(k: Kernel, mask: int, size: int, call: Callable[[], T]) -> T:
    """Run the waiting ``call`` of ppoll(2), pselect6 or epoll_pwait(2) with the signal mask at ``mask`` (none
    when 0): the sigset is checked and read as ``set_user_sigmask`` does, then :meth:`SignalState.during`."""
    if not mask:
        return call()
    _check_sigset_size(size)
    return k.signals.during(_read_sigset(k, mask), call)


@syscall("rt_sigprocmask")
def rt_sigprocmask(k: Kernel, how: int, nset: int, oset: int, sigsetsize: int) -> int:
    _check_sigset_size(sigsetsize)
    sigs = k.signals
    old = sigs.blocked
    if nset:
        bits = _read_sigset(k, nset)
        match how:
            case 0:     # SIG_BLOCK
                mask = old | bits
            case 1:     # SIG_UNBLOCK
                mask = old & ~bits
            case 2:     # SIG_SETMASK
                mask = bits
            case _:
                raise SyscallError(Errno.EINVAL)
        sigs.blocked = mask & ~NEVER_BLOCKED
    if oset:
        k.write_u64(oset, old)
    return 0


@syscall("rt_sigpending")
def rt_sigpending(k: Kernel, uset: int, sigsetsize: int) -> int:
    _check_sigset_size(sigsetsize)
    k.write_u64(uset, sum(bit(sig) for sig in k.signals.pending) & k.signals.blocked)
    return 0


@syscall("rt_sigreturn")
def rt_sigreturn(k: Kernel) -> int:
    return sigreturn(k)


@syscall("rt_sigsuspend")
def rt_sigsuspend(k: Kernel, mask: int, sigsetsize: int) -> int:
    """Wait with ``mask`` for a signal; the handler then runs with the mask that was there before."""
    _check_sigset_size(sigsetsize)
    try:
        k.signals.during(_read_sigset(k, mask), lambda: wait_until(k, lambda: None))
    except Interrupted:
        pass
    raise SyscallError(Errno.EINTR)


@syscall("pause")
def pause(k: Kernel) -> int:
    try:
        wait_until(k, lambda: None)
    except Interrupted:
        pass
    raise SyscallError(Errno.EINTR)


@syscall("rt_sigtimedwait")
def rt_sigtimedwait(k: Kernel, uthese: int, uinfo: int, uts: int, sigsetsize: int) -> int:
    """Take one of the signals in the set (normally blocked) from the pending ones, waiting up to the timeout;
    EAGAIN when it passes, EINTR when another signal is delivered meanwhile."""
    _check_sigset_size(sigsetsize)
    sigs = k.signals
    these = _read_sigset(k, uthese) & ~NEVER_BLOCKED
    timeout = k.read_timeout_ms(uts, Timespec)

    def take() -> int | None:
        return next((sig for sig in sorted(sigs.pending) if these & bit(sig)), None)

    try:
        sig = wait_until(k, take, timeout_ms=timeout)
    except Interrupted:
        raise SyscallError(Errno.EINTR) from None
    if sig is None:
        raise SyscallError(Errno.EAGAIN)
    info = sigs.pending.pop(sig)
    if uinfo:
        k.mem.write(uinfo, info)
    return sig


@syscall("sigaltstack")
def sigaltstack(k: Kernel, ss: int, old_ss: int) -> int:
    sigs = k.signals
    new = k.read_struct(ss, StackT) if ss else None
    if old_ss:
        k.write_struct(old_ss, sigs.stack_t(k.state.rsp))
    if new is not None:
        if sigs.on_altstack(k.state.rsp):
            raise SyscallError(Errno.EPERM)
        flags = new.ss_flags & ~SS_AUTODISARM
        if flags not in (0, SS_ONSTACK, SS_DISABLE):
            raise SyscallError(Errno.EINVAL)
        if flags == SS_DISABLE:
            sigs.altstack = None
        else:
            if new.ss_size < MINSIGSTKSZ:
                raise SyscallError(Errno.ENOMEM)
            sigs.altstack = StackT(ss_sp=new.ss_sp, ss_size=new.ss_size, ss_flags=new.ss_flags & SS_AUTODISARM)
    return 0


def _check_signal(sig: int) -> int:
    sig = s32(sig)
    if not 0 <= sig <= NSIG:
        raise SyscallError(Errno.EINVAL)
    return sig


@syscall("kill")
def kill(k: Kernel, pid: int, sig: int) -> int:
    """To the process itself: pending at once (delivered before the call returns to the guest).  Any other
    pid, group or -1 goes to the host's kill(2): other emulated processes forward what they receive."""
    sig, pid = _check_signal(sig), s32(pid)
    if pid == k.pid or k.threads.find(pid) is not None:
        if sig:
            k.threads.post_process(sig, siginfo(sig, SI_USER, k.pid, os.getuid()))
        return 0
    os.kill(pid, sig)
    return 0


@syscall("tgkill")
def tgkill(k: Kernel, tgid: int, tid: int, sig: int) -> int:
    """To one of this process's threads: pending on that thread.  A tid of another process (whose main
    thread's tid is its pid) goes to the host's kill(2)."""
    sig, tgid, tid = _check_signal(sig), s32(tgid), s32(tid)
    if tid <= 0 or tgid <= 0:
        raise SyscallError(Errno.EINVAL)
    if tgid == k.pid:
        thread = k.threads.find(tid)
        if thread is None:
            raise SyscallError(Errno.ESRCH)
        if sig:
            thread.signals.post(sig, siginfo(sig, SI_TKILL, k.pid, os.getuid()))
        return 0
    if tgid != tid:
        raise SyscallError(Errno.ESRCH)
    os.kill(tid, sig)
    return 0


@syscall("tkill")
def tkill(k: Kernel, tid: int, sig: int) -> int:
    return tgkill(k, k.pid if k.threads.find(s32(tid)) is not None else tid, tid, sig)


# -- the real-time timer ------------------------------------------------------------------------------
class Itimerval(ctypes.LittleEndianStructure):
    """struct itimerval (setitimer(2))."""

    _fields_ = [("it_interval", Timeval),   # 0
                ("it_value", Timeval)]      # 16


ITIMER_REAL = 0


def _seconds(t: Timeval) -> float:
    return t.tv_sec + t.tv_usec / 1e6


def _timeval(seconds: float) -> Timeval:
    whole = int(seconds)
    return Timeval(whole, round((seconds - whole) * 1e6))


@syscall("setitimer")
def setitimer(k: Kernel, which: int, new_value: int, old_value: int) -> int:
    """ITIMER_REAL only, on the host's own timer: its SIGALRM reaches the guest like any host signal."""
    if which != ITIMER_REAL:
        raise SyscallError(Errno.EINVAL)
    new = k.read_struct(new_value, Itimerval) if new_value else Itimerval()
    if not 0 <= new.it_value.tv_usec < 1_000_000 or not 0 <= new.it_interval.tv_usec < 1_000_000:
        raise SyscallError(Errno.EINVAL)
    value, interval = signal.setitimer(signal.ITIMER_REAL, _seconds(new.it_value), _seconds(new.it_interval))
    if old_value:
        k.write_struct(old_value, Itimerval(_timeval(interval), _timeval(value)))
    return 0


@syscall("getitimer")
def getitimer(k: Kernel, which: int, curr_value: int) -> int:
    if which != ITIMER_REAL:
        raise SyscallError(Errno.EINVAL)
    value, interval = signal.getitimer(signal.ITIMER_REAL)
    k.write_struct(curr_value, Itimerval(_timeval(interval), _timeval(value)))
    return 0


@syscall("alarm")
def alarm(k: Kernel, seconds: int) -> int:
    value, _ = signal.setitimer(signal.ITIMER_REAL, seconds & 0xFFFF_FFFF)
    return int(value + 0.5) if value else 0
