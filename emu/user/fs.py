"""System calls on paths: opening, metadata, directories, links, permissions.

Follows open(2), stat(2), statx(2), getdents64(2), readlink(2), access(2),
getcwd(2), chdir(2), mkdir(2), unlink(2), rename(2), symlink(2), link(2),
chmod(2), umask(2), utimensat(2), statfs(2) and getxattr(2).  Paths are host paths, as in qemu-user;
a relative one is resolved against the guest's own working directory, which
the kernel keeps as a host directory descriptor (``Kernel.cwd_fd``), so the
emulator's working directory never changes.  ``/proc/self/exe`` names the
program, not the emulator.  getdents64 lists a directory sorted by name (after
``.`` and ``..``), so listings do not depend on the host file system's order.

``/proc/self/maps`` and ``/proc/self/auxv`` are the guest's (``emu.user.procfs``).
Not modelled: the rest of ``/proc/self`` (it shows the emulator), ownership
changes, setting or listing extended attributes (getxattr(2) reads the host's),
RENAME_EXCHANGE and RENAME_WHITEOUT.
"""

from __future__ import annotations

import ctypes
import os
import stat
import struct
import time

from emu.user import procfs
from emu.user.fdtable import DirEntry
from emu.user.kernel import Kernel
from emu.user.linux import (
    AT_FDCWD,
    LIBC,
    O_CLOEXEC,
    O_CREAT,
    O_TRUNC,
    O_WRONLY,
    Errno,
    SyscallError,
    Timespec,
    host_open_flags,
    s32,
    stat_from_host,
    statx_from_host,
)
from emu.user.sysent import syscall

AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
RENAME_NOREPLACE = 1
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
PROC_SELF_EXE = b"/proc/self/exe"
_DIRENT64 = struct.Struct("<QqHB")   # linux_dirent64: d_ino, d_off, d_reclen, d_type; then d_name


def _host_path(k: Kernel, address: int) -> bytes:
    """The guest path at ``address`` as the host should see it: ``/proc/self/exe`` is the program, and an
    absolute path that exists under the sysroot is taken from there."""
    path = k.path(address)
    return k.exe if path == PROC_SELF_EXE else k.sysroot.map(path)


def _follow(flags: int) -> bool:
    return not flags & AT_SYMLINK_NOFOLLOW


# -- opening ------------------------------------------------------------------------
@syscall("openat")
def openat(k: Kernel, dirfd: int, path: int, flags: int, mode: int) -> int:
    name = k.path(path)
    if name in procfs.FILES:
        host = procfs.open_file(k, name)
    else:
        host = os.open(_host_path(k, path), host_open_flags(flags) | os.O_CLOEXEC, mode & 0o7777,
                       dir_fd=k.dir_fd(dirfd))
    return k.fds.add(host, cloexec=bool(flags & O_CLOEXEC))


@syscall("open")
def open_(k: Kernel, path: int, flags: int, mode: int) -> int:
    return openat(k, AT_FDCWD, path, flags, mode)


@syscall("creat")
def creat(k: Kernel, path: int, mode: int) -> int:
    return openat(k, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode)


# -- metadata -----------------------------------------------------------------------
def _stat(k: Kernel, dirfd: int, path: int, flags: int) -> os.stat_result:
    name = _host_path(k, path)
    if not name and flags & AT_EMPTY_PATH:
        return os.stat(k.dir_fd(dirfd))
    return os.stat(name, dir_fd=k.dir_fd(dirfd), follow_symlinks=_follow(flags))


@syscall("newfstatat")
def newfstatat(k: Kernel, dirfd: int, path: int, buf: int, flags: int) -> int:
    k.write_struct(buf, stat_from_host(_stat(k, dirfd, path, flags)))
    return 0


@syscall("stat")
def stat_(k: Kernel, path: int, buf: int) -> int:
    return newfstatat(k, AT_FDCWD, path, buf, 0)


@syscall("lstat")
def lstat(k: Kernel, path: int, buf: int) -> int:
    return newfstatat(k, AT_FDCWD, path, buf, AT_SYMLINK_NOFOLLOW)


@syscall("fstat")
def fstat(k: Kernel, fd: int, buf: int) -> int:
    k.write_struct(buf, stat_from_host(os.fstat(k.fds.host(fd))))
    return 0


@syscall("statx")
def statx(k: Kernel, dirfd: int, path: int, flags: int, mask: int, buf: int) -> int:
    k.write_struct(buf, statx_from_host(_stat(k, dirfd, path, flags)))
    return 0


@syscall("readlinkat")
def readlinkat(k: Kernel, dirfd: int, path: int, buf: int, bufsiz: int) -> int:
    if s32(bufsiz) <= 0:
        raise SyscallError(Errno.EINVAL)
    name = k.path(path)
    target = k.exe if name == PROC_SELF_EXE else os.readlink(name, dir_fd=k.dir_fd(dirfd))
    k.mem.write(buf, target[:bufsiz])
    return min(len(target), bufsiz)


@syscall("readlink")
def readlink(k: Kernel, path: int, buf: int, bufsiz: int) -> int:
    return readlinkat(k, AT_FDCWD, path, buf, bufsiz)


@syscall("faccessat2")
def faccessat2(k: Kernel, dirfd: int, path: int, mode: int, flags: int) -> int:
    if mode & ~0o7:
        raise SyscallError(Errno.EINVAL)
    name, where, follow = _host_path(k, path), k.dir_fd(dirfd), _follow(flags)
    if os.access(name, mode, dir_fd=where, effective_ids=bool(flags & AT_EACCESS), follow_symlinks=follow):
        return 0
    os.stat(name, dir_fd=where, follow_symlinks=follow)   # ENOENT, ENOTDIR, ... when it is not there
    raise SyscallError(Errno.EACCES)


@syscall("faccessat")
def faccessat(k: Kernel, dirfd: int, path: int, mode: int) -> int:
    return faccessat2(k, dirfd, path, mode, 0)


@syscall("access")
def access(k: Kernel, path: int, mode: int) -> int:
    return faccessat2(k, AT_FDCWD, path, mode, 0)


@syscall("utimensat")
def utimensat(k: Kernel, dirfd: int, path: int, times: int, flags: int) -> int:
    target: int | bytes = k.fds.host(dirfd) if path == 0 else _host_path(k, path)
    where = {} if path == 0 else {"dir_fd": k.dir_fd(dirfd), "follow_symlinks": _follow(flags)}
    if times == 0:
        os.utime(target, **where)
        return 0
    stamps = [k.read_struct(times + i * 16, Timespec) for i in range(2)]
    now = time.time_ns()
    current = os.stat(target, **where)
    ns = []
    for ts, old in zip(stamps, (current.st_atime_ns, current.st_mtime_ns), strict=True):
        if ts.tv_nsec == UTIME_NOW:
            ns.append(now)
        elif ts.tv_nsec == UTIME_OMIT:
            ns.append(old)
        elif 0 <= ts.tv_nsec < 1_000_000_000:
            ns.append(ts.tv_sec * 1_000_000_000 + ts.tv_nsec)
        else:
            raise SyscallError(Errno.EINVAL)
    os.utime(target, ns=(ns[0], ns[1]), **where)
    return 0


# -- directories --------------------------------------------------------------------
def _list_directory(host: int) -> list[DirEntry]:
    entries = [(os.stat(name, dir_fd=host).st_ino, stat.S_IFDIR >> 12, name) for name in (b".", b"..")]
    for name in sorted(os.listdir(host)):
        try:
            st = os.stat(name, dir_fd=host, follow_symlinks=False)
        except FileNotFoundError:
            continue          # removed while we were listing
        entries.append((st.st_ino, stat.S_IFMT(st.st_mode) >> 12, os.fsencode(name)))   # DT_* = S_IFMT >> 12
    return entries


@syscall("getdents64")
def getdents64(k: Kernel, fd: int, dirp: int, count: int) -> int:
    file = k.fds.get(fd)
    if file.listing is None:
        file.listing = _list_directory(file.host)
    out = bytearray()
    while file.position < len(file.listing):
        ino, kind, name = file.listing[file.position]
        reclen = (_DIRENT64.size + len(name) + 1 + 7) & ~7
        if len(out) + reclen > count:
            if not out:
                raise SyscallError(Errno.EINVAL)    # the buffer cannot hold even one entry
            break
        file.position += 1
        out += _DIRENT64.pack(ino, file.position, reclen, kind) + name
        out += bytes(reclen - _DIRENT64.size - len(name))
    k.mem.write(dirp, out)
    return len(out)


@syscall("getcwd")
def getcwd(k: Kernel, buf: int, size: int) -> int:
    cwd = os.readlink(b"/proc/self/fd/%d" % k.cwd_fd) + b"\0"
    if len(cwd) > size:
        raise SyscallError(Errno.ERANGE)
    k.mem.write(buf, cwd)
    return len(cwd)


def _change_directory(k: Kernel, path: bytes, dir_fd: int) -> int:
    new = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    os.close(k.cwd_fd)
    k.cwd_fd = new
    return 0


@syscall("chdir")
def chdir(k: Kernel, path: int) -> int:
    return _change_directory(k, _host_path(k, path), k.cwd_fd)


@syscall("fchdir")
def fchdir(k: Kernel, fd: int) -> int:
    return _change_directory(k, b".", k.fds.host(fd))


@syscall("mkdirat")
def mkdirat(k: Kernel, dirfd: int, path: int, mode: int) -> int:
    os.mkdir(_host_path(k, path), mode & 0o7777, dir_fd=k.dir_fd(dirfd))
    return 0


@syscall("mkdir")
def mkdir(k: Kernel, path: int, mode: int) -> int:
    return mkdirat(k, AT_FDCWD, path, mode)


@syscall("unlinkat")
def unlinkat(k: Kernel, dirfd: int, path: int, flags: int) -> int:
    if flags & ~AT_REMOVEDIR:
        raise SyscallError(Errno.EINVAL)
    remove = os.rmdir if flags & AT_REMOVEDIR else os.unlink
    remove(_host_path(k, path), dir_fd=k.dir_fd(dirfd))
    return 0


@syscall("unlink")
def unlink(k: Kernel, path: int) -> int:
    return unlinkat(k, AT_FDCWD, path, 0)


@syscall("rmdir")
def rmdir(k: Kernel, path: int) -> int:
    return unlinkat(k, AT_FDCWD, path, AT_REMOVEDIR)


# -- names and links ----------------------------------------------------------------
@syscall("renameat2")
def renameat2(k: Kernel, olddirfd: int, oldpath: int, newdirfd: int, newpath: int, flags: int) -> int:
    old, src = _host_path(k, oldpath), k.dir_fd(olddirfd)
    new, dst = _host_path(k, newpath), k.dir_fd(newdirfd)
    if flags & ~RENAME_NOREPLACE:
        raise SyscallError(Errno.EINVAL)
    if flags & RENAME_NOREPLACE:
        try:
            os.stat(new, dir_fd=dst, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            raise SyscallError(Errno.EEXIST)
    os.rename(old, new, src_dir_fd=src, dst_dir_fd=dst)
    return 0


@syscall("renameat")
def renameat(k: Kernel, olddirfd: int, oldpath: int, newdirfd: int, newpath: int) -> int:
    return renameat2(k, olddirfd, oldpath, newdirfd, newpath, 0)


@syscall("rename")
def rename(k: Kernel, oldpath: int, newpath: int) -> int:
    return renameat2(k, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


@syscall("symlinkat")
def symlinkat(k: Kernel, target: int, newdirfd: int, linkpath: int) -> int:
    os.symlink(k.path(target), _host_path(k, linkpath), dir_fd=k.dir_fd(newdirfd))
    return 0


@syscall("symlink")
def symlink(k: Kernel, target: int, linkpath: int) -> int:
    return symlinkat(k, target, AT_FDCWD, linkpath)


@syscall("linkat")
def linkat(k: Kernel, olddirfd: int, oldpath: int, newdirfd: int, newpath: int, flags: int) -> int:
    os.link(_host_path(k, oldpath), _host_path(k, newpath), src_dir_fd=k.dir_fd(olddirfd),
            dst_dir_fd=k.dir_fd(newdirfd), follow_symlinks=bool(flags & AT_SYMLINK_FOLLOW))
    return 0


@syscall("link")
def link(k: Kernel, oldpath: int, newpath: int) -> int:
    return linkat(k, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


# -- permissions ----------------------------------------------------------------------
@syscall("fchmodat")
def fchmodat(k: Kernel, dirfd: int, path: int, mode: int) -> int:
    os.chmod(_host_path(k, path), mode & 0o7777, dir_fd=k.dir_fd(dirfd))
    return 0


@syscall("chmod")
def chmod(k: Kernel, path: int, mode: int) -> int:
    return fchmodat(k, AT_FDCWD, path, mode)


@syscall("fchmod")
def fchmod(k: Kernel, fd: int, mode: int) -> int:
    os.fchmod(k.fds.host(fd), mode & 0o7777)
    return 0


@syscall("umask")
def umask(k: Kernel, mask: int) -> int:
    return os.umask(mask & 0o777)


# -- extended attributes --------------------------------------------------------------
def _getxattr(k: Kernel, target: bytes | int, name: int, value: int, size: int, follow: bool) -> int:
    data = os.getxattr(target, k.mem.read_cstring(name, 256), follow_symlinks=follow)
    if size:
        if len(data) > size:
            raise SyscallError(Errno.ERANGE)
        k.mem.write(value, data)
    return len(data)


@syscall("getxattr")
def getxattr(k: Kernel, path: int, name: int, value: int, size: int) -> int:
    return _getxattr(k, _host_path(k, path), name, value, size, True)


@syscall("lgetxattr")
def lgetxattr(k: Kernel, path: int, name: int, value: int, size: int) -> int:
    return _getxattr(k, _host_path(k, path), name, value, size, False)


@syscall("fgetxattr")
def fgetxattr(k: Kernel, fd: int, name: int, value: int, size: int) -> int:
    return _getxattr(k, k.fds.host(fd), name, value, size, True)


# -- file systems ---------------------------------------------------------------------
_STATFS_SIZE = 120
"""struct statfs on every 64-bit Linux (asm-generic/statfs.h): eleven longs, f_fsid, four spare longs."""


def _host_statfs(target: bytes | int) -> bytes:
    """The host kernel's struct statfs for a path or a descriptor (os.statvfs lacks f_type)."""
    buf = ctypes.create_string_buffer(_STATFS_SIZE)
    result = LIBC.fstatfs(target, buf) if isinstance(target, int) else LIBC.statfs(target, buf)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return buf.raw


@syscall("statfs")
def statfs(k: Kernel, path: int, buf: int) -> int:
    name = _host_path(k, path)
    if not name.startswith(b"/"):
        name = os.readlink(b"/proc/self/fd/%d" % k.cwd_fd) + b"/" + name
    k.mem.write(buf, _host_statfs(name))
    return 0


@syscall("fstatfs")
def fstatfs(k: Kernel, fd: int, buf: int) -> int:
    k.mem.write(buf, _host_statfs(k.fds.host(fd)))
    return 0
