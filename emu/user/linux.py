"""The Linux x86-64 user ABI: numbers and binary layouts a system call exchanges.

Values follow the kernel's UAPI headers for x86-64 (``asm-generic/errno*.h``,
``asm/signal.h``, ``asm-generic/fcntl.h``, ``asm/stat.h``, ``linux/stat.h``,
``linux/utsname.h``, ``linux/sysinfo.h``, ``asm-generic/resource.h``) as
documented in the man pages (errno(3), signal(7), open(2), stat(2), statx(2),
uname(2), sysinfo(2), getrlimit(2), getrusage(2), times(2), termios(3)).
Layouts are little-endian ctypes structures with their offsets and a size
assertion, so what a handler writes into guest memory is exactly what the
kernel would.

The host is expected to be Linux too; host ``errno`` values and open flags
are still translated by name, so the guest always sees Linux numbers.
"""

from __future__ import annotations

import ctypes
import errno
import os
from enum import IntEnum

_U8, _U16, _U32, _U64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64
_I32, _I64 = ctypes.c_int32, ctypes.c_int64

MASK64 = (1 << 64) - 1
AT_FDCWD = -100


def s32(value: int) -> int:
    """A syscall argument's low 32 bits as a C ``int``."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value & 0x8000_0000 else value


def s64(value: int) -> int:
    """A syscall argument as a C ``long``."""
    return value - (1 << 64) if value & (1 << 63) else value


class Errno(IntEnum):
    """Linux errno values (asm-generic/errno-base.h, asm-generic/errno.h)."""

    EPERM = 1
    ENOENT = 2
    ESRCH = 3
    EINTR = 4
    EIO = 5
    ENXIO = 6
    E2BIG = 7
    ENOEXEC = 8
    EBADF = 9
    ECHILD = 10
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    EFAULT = 14
    ENOTBLK = 15
    EBUSY = 16
    EEXIST = 17
    EXDEV = 18
    ENODEV = 19
    ENOTDIR = 20
    EISDIR = 21
    EINVAL = 22
    ENFILE = 23
    EMFILE = 24
    ENOTTY = 25
    ETXTBSY = 26
    EFBIG = 27
    ENOSPC = 28
    ESPIPE = 29
    EROFS = 30
    EMLINK = 31
    EPIPE = 32
    EDOM = 33
    ERANGE = 34
    EDEADLK = 35
    ENAMETOOLONG = 36
    ENOLCK = 37
    ENOSYS = 38
    ENOTEMPTY = 39
    ELOOP = 40
    ENODATA = 61
    EOVERFLOW = 75
    EILSEQ = 84
    ENOTSOCK = 88
    EMSGSIZE = 90
    EOPNOTSUPP = 95
    EAFNOSUPPORT = 97
    EADDRINUSE = 98
    ECONNRESET = 104
    ENOBUFS = 105
    EISCONN = 106
    ENOTCONN = 107
    ETIMEDOUT = 110
    ECONNREFUSED = 111
    EDQUOT = 122


def linux_errno(host_errno: int | None) -> int:
    """The Linux number for a host errno, matched by name (EIO when Linux has no such name)."""
    name = errno.errorcode.get(host_errno or 0, "")
    if name == "ENOTSUP":
        name = "EOPNOTSUPP"
    member = Errno.__members__.get(name)
    return member.value if member is not None else Errno.EIO.value


class SyscallError(Exception):
    """A system call fails with a Linux errno; the dispatcher returns ``-errno``."""

    def __init__(self, code: Errno) -> None:
        super().__init__(code.name)
        self.errno = code


LIBC = ctypes.CDLL(None, use_errno=True)
"""The host's C library, for the host system calls Python's ``os`` module lacks (statfs, epoll with its
data word, timerfd)."""


def host_call(result: int) -> int:
    """The result of a call into :data:`LIBC`; -1 becomes the host's errno, failing the guest's call with it."""
    if result < 0:
        raise SyscallError(Errno(ctypes.get_errno()))
    return result


class ProcessExit(Exception):
    """The process ended: through exit(2) with ``status``, or killed by ``signal``."""

    def __init__(self, status: int = 0, signal: int | None = None) -> None:
        super().__init__(f"killed by signal {signal}" if signal else f"exit status {status}")
        self.status = status & 0xFF
        self.signal = signal

    @property
    def exit_code(self) -> int:
        """What a shell reports: the status, or 128 + the signal number."""
        return self.status if self.signal is None else 128 + self.signal


class Parked(Exception):
    """The running thread cannot go on with its system call yet; another thread runs meanwhile
    (``emu.user.threads``).  ``wait`` says what it waits for; the call is finished later, by a wake-up
    that sets its result, or by running it again."""

    def __init__(self, wait: object) -> None:
        super().__init__("parked")
        self.wait = wait


class Signal(IntEnum):
    """Linux x86-64 signal numbers (signal(7))."""

    SIGHUP = 1
    SIGINT = 2
    SIGQUIT = 3
    SIGILL = 4
    SIGTRAP = 5
    SIGABRT = 6
    SIGBUS = 7
    SIGFPE = 8
    SIGKILL = 9
    SIGUSR1 = 10
    SIGSEGV = 11
    SIGUSR2 = 12
    SIGPIPE = 13
    SIGALRM = 14
    SIGTERM = 15
    SIGSTKFLT = 16
    SIGCHLD = 17
    SIGCONT = 18
    SIGSTOP = 19
    SIGTSTP = 20
    SIGTTIN = 21
    SIGTTOU = 22
    SIGURG = 23
    SIGXCPU = 24
    SIGXFSZ = 25
    SIGVTALRM = 26
    SIGPROF = 27
    SIGWINCH = 28
    SIGIO = 29
    SIGPWR = 30
    SIGSYS = 31


def signal_name(sig: int) -> str:
    return Signal(sig).name if sig in Signal.__members__.values() else f"signal {sig}"


def errno_name(code: int) -> str | None:
    return Errno(code).name if code in Errno.__members__.values() else None


DEFAULT_IGNORED = frozenset({Signal.SIGCHLD, Signal.SIGCONT, Signal.SIGURG, Signal.SIGWINCH})
"""Signals whose default action is to do nothing (signal(7), "Ign")."""

# open(2) flags: (Linux x86-64 value, name in the host's os module).  O_CLOEXEC is kept per
# guest descriptor instead (emu never execs), and O_LARGEFILE is implied on 64-bit.
O_ACCMODE = 0o3
O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_TRUNC = 0o1000
O_NONBLOCK = 0o4000
O_DIRECTORY = 0o200000
O_CLOEXEC = 0o2000000
_OPEN_FLAGS = (
    (O_WRONLY, "O_WRONLY"), (0o2, "O_RDWR"), (O_CREAT, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"),
    (O_TRUNC, "O_TRUNC"), (0o2000, "O_APPEND"), (O_NONBLOCK, "O_NONBLOCK"), (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"), (O_DIRECTORY, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"), (0o4010000, "O_SYNC"), (0o10000000, "O_PATH"), (0o20200000, "O_TMPFILE"),
)


def host_open_flags(flags: int) -> int:
    """Linux open flags as the host's ``os.O_*`` bits (unknown bits dropped)."""
    out = 0
    for value, name in _OPEN_FLAGS:
        if flags & value == value:
            out |= getattr(os, name, 0)
    return out


def linux_open_flags(host_flags: int) -> int:
    """The host's file status flags (F_GETFL) as Linux bits."""
    out = 0
    for value, name in _OPEN_FLAGS:
        bits = getattr(os, name, 0)
        if bits and host_flags & bits == bits:
            out |= value
    return out


# -- layouts -----------------------------------------------------------------

class Timespec(ctypes.LittleEndianStructure):
    """struct timespec."""

    _fields_ = [("tv_sec", _I64),    # 0
                ("tv_nsec", _I64)]   # 8


class Timeval(ctypes.LittleEndianStructure):
    """struct timeval."""

    _fields_ = [("tv_sec", _I64),    # 0
                ("tv_usec", _I64)]   # 8


class Stat(ctypes.LittleEndianStructure):
    """struct stat as x86-64 Linux fills it (arch/x86/include/uapi/asm/stat.h)."""

    _fields_ = [
        ("st_dev", _U64),          # 0
        ("st_ino", _U64),          # 8
        ("st_nlink", _U64),        # 16
        ("st_mode", _U32),         # 24
        ("st_uid", _U32),          # 28
        ("st_gid", _U32),          # 32
        ("pad0", _U32),            # 36
        ("st_rdev", _U64),         # 40
        ("st_size", _I64),         # 48
        ("st_blksize", _I64),      # 56
        ("st_blocks", _I64),       # 64
        ("st_atime", _I64),        # 72
        ("st_atime_nsec", _I64),   # 80
        ("st_mtime", _I64),        # 88
        ("st_mtime_nsec", _I64),   # 96
        ("st_ctime", _I64),        # 104
        ("st_ctime_nsec", _I64),   # 112
        ("unused", _I64 * 3),      # 120
    ]


class StatxTimestamp(ctypes.LittleEndianStructure):
    """struct statx_timestamp (linux/stat.h)."""

    _fields_ = [("tv_sec", _I64),      # 0
                ("tv_nsec", _U32),     # 8
                ("reserved", _I32)]    # 12


class Statx(ctypes.LittleEndianStructure):
    """struct statx (linux/stat.h, statx(2))."""

    _fields_ = [
        ("stx_mask", _U32),              # 0
        ("stx_blksize", _U32),           # 4
        ("stx_attributes", _U64),        # 8
        ("stx_nlink", _U32),             # 16
        ("stx_uid", _U32),               # 20
        ("stx_gid", _U32),               # 24
        ("stx_mode", _U16),              # 28
        ("spare0", _U16),                # 30
        ("stx_ino", _U64),               # 32
        ("stx_size", _U64),              # 40
        ("stx_blocks", _U64),            # 48
        ("stx_attributes_mask", _U64),   # 56
        ("stx_atime", StatxTimestamp),   # 64
        ("stx_btime", StatxTimestamp),   # 80
        ("stx_ctime", StatxTimestamp),   # 96
        ("stx_mtime", StatxTimestamp),   # 112
        ("stx_rdev_major", _U32),        # 128
        ("stx_rdev_minor", _U32),        # 132
        ("stx_dev_major", _U32),         # 136
        ("stx_dev_minor", _U32),         # 140
        ("stx_mnt_id", _U64),            # 144
        ("stx_dio_mem_align", _U32),     # 152
        ("stx_dio_offset_align", _U32),  # 156
        ("spare3", _U64 * 12),           # 160
    ]


STATX_BASIC_STATS = 0x7FF
"""type, mode, nlink, uid, gid, atime, mtime, ctime, ino, size, blocks: what a stat(2) also gives."""


class Utsname(ctypes.LittleEndianStructure):
    """struct new_utsname (linux/utsname.h): six 65-byte strings."""

    _fields_ = [("sysname", ctypes.c_char * 65),      # 0
                ("nodename", ctypes.c_char * 65),     # 65
                ("release", ctypes.c_char * 65),      # 130
                ("version", ctypes.c_char * 65),      # 195
                ("machine", ctypes.c_char * 65),      # 260
                ("domainname", ctypes.c_char * 65)]   # 325


class Rlimit(ctypes.LittleEndianStructure):
    """struct rlimit64."""

    _fields_ = [("rlim_cur", _U64),   # 0
                ("rlim_max", _U64)]   # 8


class Rusage(ctypes.LittleEndianStructure):
    """struct rusage: two timevals and fourteen longs (getrusage(2))."""

    _fields_ = [("ru_utime", Timeval),     # 0
                ("ru_stime", Timeval),     # 16
                ("counters", _I64 * 14)]   # 32: ru_maxrss .. ru_nivcsw


class Tms(ctypes.LittleEndianStructure):
    """struct tms, in clock ticks (times(2))."""

    _fields_ = [("tms_utime", _I64),    # 0
                ("tms_stime", _I64),    # 8
                ("tms_cutime", _I64),   # 16
                ("tms_cstime", _I64)]   # 24


class Sysinfo(ctypes.LittleEndianStructure):
    """struct sysinfo (linux/sysinfo.h)."""

    _fields_ = [
        ("uptime", _I64),      # 0
        ("loads", _U64 * 3),   # 8
        ("totalram", _U64),    # 32
        ("freeram", _U64),     # 40
        ("sharedram", _U64),   # 48
        ("bufferram", _U64),   # 56
        ("totalswap", _U64),   # 64
        ("freeswap", _U64),    # 72
        ("procs", _U16),       # 80
        ("pad", _U16),         # 82
        ("totalhigh", _U64),   # 88 (after alignment padding)
        ("freehigh", _U64),    # 96
        ("mem_unit", _U32),    # 104
        ("tail", _U8 * 4),     # 108: pads to 112
    ]


class KernelSigaction(ctypes.LittleEndianStructure):
    """struct sigaction as rt_sigaction(2) takes it on x86-64 (not glibc's layout)."""

    _fields_ = [("sa_handler", _U64),    # 0: SIG_DFL = 0, SIG_IGN = 1, or a function
                ("sa_flags", _U64),      # 8
                ("sa_restorer", _U64),   # 16
                ("sa_mask", _U64)]       # 24


SIG_DFL, SIG_IGN = 0, 1


class StackT(ctypes.LittleEndianStructure):
    """stack_t (sigaltstack(2))."""

    _fields_ = [("ss_sp", _U64),      # 0
                ("ss_flags", _I32),   # 8
                ("pad", _I32),        # 12
                ("ss_size", _U64)]    # 16


SS_DISABLE = 2


for _layout, _size in ((Timespec, 16), (Timeval, 16), (Stat, 144), (StatxTimestamp, 16), (Statx, 256),
                       (Utsname, 390), (Rlimit, 16), (Rusage, 144), (Tms, 32), (Sysinfo, 112),
                       (KernelSigaction, 32), (StackT, 24)):
    assert ctypes.sizeof(_layout) == _size, _layout.__name__


def stat_from_host(st: os.stat_result) -> Stat:
    """The kernel's struct stat for a host stat result."""
    out = Stat(st_dev=st.st_dev, st_ino=st.st_ino, st_nlink=st.st_nlink, st_mode=st.st_mode,
               st_uid=st.st_uid, st_gid=st.st_gid, st_rdev=st.st_rdev, st_size=st.st_size,
               st_blksize=st.st_blksize, st_blocks=st.st_blocks)
    out.st_atime, out.st_atime_nsec = divmod(st.st_atime_ns, 1_000_000_000)
    out.st_mtime, out.st_mtime_nsec = divmod(st.st_mtime_ns, 1_000_000_000)
    out.st_ctime, out.st_ctime_nsec = divmod(st.st_ctime_ns, 1_000_000_000)
    return out


def statx_from_host(st: os.stat_result) -> Statx:
    """struct statx for a host stat result (no birth time: STATX_BTIME is left out of the mask)."""
    out = Statx(stx_mask=STATX_BASIC_STATS, stx_blksize=st.st_blksize, stx_nlink=st.st_nlink,
                stx_uid=st.st_uid, stx_gid=st.st_gid, stx_mode=st.st_mode, stx_ino=st.st_ino,
                stx_size=st.st_size, stx_blocks=st.st_blocks,
                stx_rdev_major=os.major(st.st_rdev), stx_rdev_minor=os.minor(st.st_rdev),
                stx_dev_major=os.major(st.st_dev), stx_dev_minor=os.minor(st.st_dev))
    for field, ns in (("stx_atime", st.st_atime_ns), ("stx_mtime", st.st_mtime_ns), ("stx_ctime", st.st_ctime_ns)):
        stamp = getattr(out, field)
        stamp.tv_sec, stamp.tv_nsec = divmod(ns, 1_000_000_000)
    return out
