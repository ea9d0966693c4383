"""System calls that make and replace processes: fork, vfork, clone, execve, wait4, waitid.

Follows fork(2), vfork(2), clone(2), execve(2), wait4(2) and waitid(2).  The guest's process is the
emulator's host process, so a fork is the host's: the emulator forks with its guest (``os.fork``) and
the child's guest sees 0 in rax, the parent the child's pid.  An execve of an x86-64 ELF replaces the
emulator with a fresh one that runs the new program with the same options (``Process.exec``): the host
descriptors are rearranged so that each guest descriptor without FD_CLOEXEC is the host descriptor of
the same number, ignored signals stay ignored and the mask stays, as execve(2) says.  Before that the
file is checked as Linux's ``bprm_execve`` would: ENOENT, EACCES (not a regular executable file),
``#!`` scripts resolved to their interpreter with at most one argument (ELOOP past 4 levels), ENOEXEC
for anything that is neither (an ELF of another architecture included), ENOENT for an ELF whose dynamic
linker is missing.  wait4 and waitid are the host's, waiting the way a blocking call does so that
signals interrupt them; with SIGCHLD ignored (or SA_NOCLDWAIT) wait4 reaps children as they end and
fails with ECHILD when none is left, as if the kernel had never kept them.

clone with CLONE_THREAD makes a thread (``emu.user.threads``: CLONE_SETTLS, CLONE_PARENT_SETTID,
CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID); a fork of a threaded process keeps only the calling thread.

clone3 reads struct clone_args and checks it as ``kernel/fork.c`` does (E2BIG for a size past a page or
unknown fields that are not zero, EINVAL for the combinations ``clone3_args_valid`` refuses), then makes the
thread or process clone does, on the stack ``stack + stack_size``; CLONE_PIDFD gives the parent a pidfd (the
host's, so poll and waitid(P_PIDFD) work), CLONE_CLEAR_SIGHAND resets the child's handlers.

Not modelled: CLONE_VM without CLONE_THREAD or CLONE_VFORK (a process sharing memory: ENOSYS);
clone3's set_tid (EPERM: the pid is the host's to give), CLONE_INTO_CGROUP and CLONE_PIDFD with CLONE_THREAD
(EINVAL), its exit_signal (a child always sends SIGCHLD, as the host's fork does); vfork and
clone(CLONE_VM | CLONE_VFORK), as posix_spawn uses it, are a fork: the parent does not wait for the child's
execve, and what the child writes to memory stays in the child; CLONE_PARENT, CLONE_NEWNS and the other
namespaces.
"""

from __future__ import annotations

import os
import resource
import stat
import struct
from typing import TYPE_CHECKING

from emu.user.elf import ElfError, parse_elf
from emu.user.fs import PROC_SELF_EXE
from emu.user.linux import SIG_DFL, SIG_IGN, Errno, Rusage, Signal, SyscallError, Timeval, s32
from emu.user.signals import wait_until
from emu.user.sysent import syscall

if TYPE_CHECKING:
    from emu.user.kernel import Kernel

CSIGNAL = 0xFF
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_VFORK, CLONE_PARENT, CLONE_THREAD = 0x4000, 0x8000, 0x1_0000
CLONE_SETTLS, CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID = 0x8_0000, 0x10_0000, 0x20_0000
CLONE_CHILD_SETTID = 0x100_0000
CLONE_PIDFD, CLONE_DETACHED, CLONE_NEWTIME = 0x1000, 0x40_0000, 0x80
CLONE_CLEAR_SIGHAND, CLONE_INTO_CGROUP = 1 << 32, 1 << 33
_CLONE_ARGS = struct.Struct("<11Q")
"""struct clone_args (CLONE_ARGS_SIZE_VER2): flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
tls, set_tid, set_tid_size, cgroup."""
CLONE_ARGS_SIZE_VER0 = 64
MAX_PID_NS_LEVEL = 32
PAGE_SIZE = 4096
P_PIDFD = 3
_SHARED = CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_PARENT
"""Sharing between parent and child that a fork of the emulator cannot give."""
WNOHANG = 1
SA_NOCLDWAIT = 0x2
_WAIT_OPTIONS = 0x1 | 0x2 | 0x4 | 0x8 | 0x0100_0000 | 0x2000_0000 | 0x4000_0000 | 0x8000_0000
"""WNOHANG, WUNTRACED/WSTOPPED, WEXITED, WCONTINUED, WNOWAIT, __WNOTHREAD, __WALL, __WCLONE."""
SCRIPT_DEPTH = 4
"""Nested #! interpreters Linux follows before ELOOP (fs/exec.c)."""
BINPRM_BUF_SIZE = 256
"""Bytes of the file's start Linux reads to recognise it, so the longest #! line."""


# -- fork ---------------------------------------------------------------------------------
def _fork(k: Kernel, flags: int, newsp: int, parent_tid: int, child_tid: int, tls: int) -> int:
    if k.host is None:
        raise SyscallError(Errno.ENOSYS)
    k.host.before_fork()
    pid = os.fork()
    if pid == 0:
        k.pid = k.tid = os.getpid()
        k.threads.after_fork()              # the child has only the thread that forked
        k.signals.pending.clear()           # pending signals are not inherited (fork(2))
        k.host.after_fork_child()
        st = k.state
        if newsp:
            st.rsp = newsp
        if flags & CLONE_SETTLS:
            st.fs_base = tls
        if flags & CLONE_CHILD_SETTID:
            k.mem.write(child_tid, struct.pack("<i", k.pid))
        if flags & CLONE_CHILD_CLEARTID:
            k.clear_child_tid = child_tid
        if flags & CLONE_PARENT_SETTID:
            k.mem.write(parent_tid, struct.pack("<i", k.pid))
        return 0
    if flags & CLONE_PARENT_SETTID:
        k.mem.write(parent_tid, struct.pack("<i", pid))
    return pid


@syscall("fork")
def fork(k: Kernel) -> int:
    return _fork(k, 0, 0, 0, 0, 0)


@syscall("vfork")
def vfork(k: Kernel) -> int:
    return _fork(k, 0, 0, 0, 0, 0)


@syscall("clone")
def clone(k: Kernel, flags: int, newsp: int, parent_tid: int, child_tid: int, tls: int) -> int:
    """A new thread, or a new process (the x86-64 argument order: flags, stack, parent_tid, child_tid, tls)."""
    if flags & CLONE_THREAD:
        return _thread(k, flags, newsp, parent_tid, child_tid, tls)
    if flags & CLONE_VM and not flags & CLONE_VFORK:
        k.say_once("clone with CLONE_VM but without CLONE_THREAD (a process sharing memory) is not supported; "
                   "clone returns ENOSYS")
        raise SyscallError(Errno.ENOSYS)
    if flags & _SHARED:
        raise SyscallError(Errno.EINVAL)
    return _fork(k, flags, newsp, parent_tid, child_tid, tls)


def _thread(k: Kernel, flags: int, newsp: int, parent_tid: int, child_tid: int, tls: int) -> int:
    """CLONE_THREAD: a thread of this process (``emu.user.threads``), which needs CLONE_SIGHAND and CLONE_VM."""
    if not flags & CLONE_SIGHAND or not flags & CLONE_VM or flags & CLONE_VFORK or flags & CSIGNAL:
        raise SyscallError(Errno.EINVAL)
    if tls >= 1 << 47 and flags & CLONE_SETTLS:
        raise SyscallError(Errno.EPERM)
    if flags & CLONE_PARENT_SETTID:
        k.mem.write(parent_tid, b"\0" * 4)          # fails with EFAULT before the thread exists
    thread = k.threads.spawn(newsp, tls if flags & CLONE_SETTLS else None)
    tid = struct.pack("<i", thread.tid)
    if flags & CLONE_PARENT_SETTID:
        k.mem.write(parent_tid, tid)
    if flags & CLONE_CHILD_SETTID:
        k.mem.write(child_tid, tid)
    if flags & CLONE_CHILD_CLEARTID:
        thread.clear_child_tid = child_tid
    return thread.tid


@syscall("clone3")
def clone3(k: Kernel, uargs: int, size: int) -> int:
    """clone(2)'s struct clone_args version: checked as ``copy_clone_args_from_user`` and ``clone3_args_valid``
    (kernel/fork.c) do, then the same thread or fork as clone, on the stack [stack, stack + stack_size)."""
    if size > PAGE_SIZE:
        raise SyscallError(Errno.E2BIG)
    if size < CLONE_ARGS_SIZE_VER0:
        raise SyscallError(Errno.EINVAL)
    raw = k.mem.read(uargs, size)
    if any(raw[_CLONE_ARGS.size:]):
        raise SyscallError(Errno.E2BIG)             # a newer struct's fields this kernel does not know
    (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
     cgroup) = _CLONE_ARGS.unpack(raw[:_CLONE_ARGS.size].ljust(_CLONE_ARGS.size, b"\0"))
    if (set_tid_size > MAX_PID_NS_LEVEL or bool(set_tid) != bool(set_tid_size) or exit_signal & ~CSIGNAL
            or (flags & CLONE_INTO_CGROUP and (cgroup > 0x7FFF_FFFF or size < _CLONE_ARGS.size))):
        raise SyscallError(Errno.EINVAL)
    if (flags & ~(0xFFFF_FFFF | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP)
            or flags & (CLONE_DETACHED | (CSIGNAL & ~CLONE_NEWTIME))
            or flags & (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND) == CLONE_SIGHAND | CLONE_CLEAR_SIGHAND
            or (flags & (CLONE_THREAD | CLONE_PARENT) and exit_signal)
            or bool(stack) != bool(stack_size)):
        raise SyscallError(Errno.EINVAL)
    if set_tid:
        raise SyscallError(Errno.EPERM)          # a chosen pid: the host's to give, not emu's
    if flags & CLONE_INTO_CGROUP or flags & CLONE_PIDFD and flags & CLONE_THREAD:
        raise SyscallError(Errno.EINVAL)         # cgroups are not modelled; a thread's pidfd is Linux 6.9's
    if flags & CLONE_PIDFD:
        k.mem.write(pidfd, bytes(4))              # EFAULT before the child exists
    sp = (stack + stack_size) & ((1 << 64) - 1) if stack else 0
    pid = clone(k, flags & 0xFFFF_FFFF & ~CLONE_PIDFD, sp, parent_tid, child_tid, tls)
    if pid == 0:
        if flags & CLONE_CLEAR_SIGHAND:            # handlers go back to the default; ignored signals stay so
            for sig in [s for s, act in k.signals.actions.items() if act.sa_handler not in (SIG_DFL, SIG_IGN)]:
                del k.signals.actions[sig]
    elif flags & CLONE_PIDFD:
        k.mem.write(pidfd, struct.pack("<i", k.fds.add(os.pidfd_open(pid), cloexec=True)))
    return pid


# -- execve ---------------------------------------------------------------------------------
ARG_MAX = 2 << 20
"""Bytes of argument and environment strings an execve takes at most (a quarter of the 8 MiB stack limit)."""
MAX_ARG_STRLEN = 1 << 17
"""The longest single argument or environment string (32 pages)."""


def _strings(k: Kernel, address: int) -> list[bytes]:
    """A NULL-terminated array of string pointers (argv, envp); NULL itself is an empty array."""
    out: list[bytes] = []
    total = 0
    while address:
        pointer = int.from_bytes(k.mem.read(address + 8 * len(out), 8), "little")
        if not pointer:
            return out
        text = k.mem.read_cstring(pointer, MAX_ARG_STRLEN)
        total += len(text) + 1 + 8
        if len(text) >= MAX_ARG_STRLEN or total > ARG_MAX:
            raise SyscallError(Errno.E2BIG)
        out.append(text)
    return out


def resolve(k: Kernel, name: bytes, argv: list[bytes], depth: int = 0) -> tuple[bytes, list[bytes]]:
    """The x86-64 ELF that runs for an execve of ``name``, and its argv after any #! rewriting."""
    if name == PROC_SELF_EXE:
        name = k.exe            # a program that re-executes itself (busybox runs its applets so)
    path = k.sysroot.map(name)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=k.cwd_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or not os.access(path, os.X_OK, dir_fd=k.cwd_fd):
            raise SyscallError(Errno.EACCES)
        head = os.pread(fd, BINPRM_BUF_SIZE, 0)
        if head.startswith(b"#!"):
            if depth >= SCRIPT_DEPTH:
                raise SyscallError(Errno.ELOOP)
            line = head[2:].split(b"\n", 1)[0].strip(b" \t")
            interpreter, _, argument = line.replace(b"\t", b" ").partition(b" ")
            if not interpreter:
                raise SyscallError(Errno.ENOEXEC)
            argument = argument.strip(b" ")
            return resolve(k, interpreter, [interpreter, *([argument] if argument else []), name, *argv[1:]],
                           depth + 1)
        if not head.startswith(b"\x7fELF"):
            raise SyscallError(Errno.ENOEXEC)
        size = os.fstat(fd).st_size
        try:
            image = parse_elf(os.fsdecode(name), os.pread(fd, size, 0))
        except ElfError:
            raise SyscallError(Errno.ENOEXEC) from None
        if image.interpreter is not None and not os.path.exists(k.sysroot.map(image.interpreter)):
            raise SyscallError(Errno.ENOENT)
    finally:
        os.close(fd)
    return name, argv


@syscall("execve")
def execve(k: Kernel, filename: int, argv: int, envp: int) -> int:
    name = k.path(filename)
    args, env = _strings(k, argv), _strings(k, envp)
    if k.host is None:
        raise SyscallError(Errno.ENOSYS)
    program, args = resolve(k, name, args)
    k.host.exec(program, args, env)
    raise SyscallError(Errno.ENOEXEC)       # only reached when the host could not exec the emulator


# -- waiting ------------------------------------------------------------------------------------
def _rusage(usage: resource.struct_rusage) -> Rusage:
    out = Rusage()
    for field, seconds in (("ru_utime", usage.ru_utime), ("ru_stime", usage.ru_stime)):
        whole = int(seconds)
        setattr(out, field, Timeval(whole, int((seconds - whole) * 1e6)))
    out.counters[0] = usage.ru_maxrss
    return out


def _reaping(k: Kernel) -> bool:
    """SIGCHLD ignored or SA_NOCLDWAIT: children leave no zombie to wait for (sigaction(2))."""
    act = k.signals.action(Signal.SIGCHLD)
    return act.sa_handler == SIG_IGN or bool(act.sa_flags & SA_NOCLDWAIT)


@syscall("wait4")
def wait4(k: Kernel, pid: int, wstatus: int, options: int, rusage: int) -> int:
    if options & ~_WAIT_OPTIONS:
        raise SyscallError(Errno.EINVAL)

    def attempt() -> tuple[int, int, resource.struct_rusage] | None:
        found = os.wait4(s32(pid), options | WNOHANG)
        while found[0] and _reaping(k):     # reaped as the kernel would have: wait on until none is left (ECHILD)
            found = os.wait4(s32(pid), options | WNOHANG)
        return found if found[0] or options & WNOHANG else None

    found = attempt() if options & WNOHANG else wait_until(k, attempt)
    assert found is not None
    child, status, usage = found
    if child and wstatus:
        k.mem.write(wstatus, struct.pack("<i", status))
    if child and rusage:
        k.write_struct(rusage, _rusage(usage))
    return child


@syscall("waitid")
def waitid(k: Kernel, idtype: int, ident: int, infop: int, options: int, rusage: int) -> int:
    if options & ~_WAIT_OPTIONS or not options & (0x2 | 0x4 | 0x8):
        raise SyscallError(Errno.EINVAL)

    if idtype == P_PIDFD:
        ident = k.fds.host(ident)        # a pidfd (clone3's CLONE_PIDFD) is a host descriptor too

    def attempt() -> os.waitid_result | bool | None:
        found = os.waitid(idtype, s32(ident), options | WNOHANG)
        return found if found is not None else (False if options & WNOHANG else None)

    found = attempt() if options & WNOHANG else wait_until(k, attempt)
    if infop:
        info = bytes(128)
        if isinstance(found, os.waitid_result):
            info = struct.pack("<iii4xiIi", found.si_signo, 0, found.si_code, found.si_pid, found.si_uid,
                               found.si_status).ljust(128, b"\0")
        k.mem.write(infop, info)
    if rusage:
        k.write_struct(rusage, Rusage())
    return 0
