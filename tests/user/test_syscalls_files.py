"""File and descriptor system calls, called as a guest calls them, against real host files."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

import pytest

from emu.user.fdtable import FdTable
from emu.user.linux import AT_FDCWD, Errno, ProcessExit, Stat, Statx
from emu.user.signals import deliver
from emu.user.syscalls import Kernel
from tests.user.guest import SCRATCH, call, make_kernel, put_string

PATH, BUF, STAT = SCRATCH, SCRATCH + 0x1000, SCRATCH + 0x2000
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_DIRECTORY, O_CLOEXEC = 0, 1, 2, 0o100, 0o1000, 0o200000, 0o2000000
AT_EMPTY_PATH = 0x1000


def open_file(k: Kernel, path: Path | str, flags: int = O_RDONLY, mode: int = 0) -> int:
    return call(k, "openat", AT_FDCWD, put_string(k, PATH, str(path)), flags, mode)


def test_openat_read_lseek_and_close_work_on_a_host_file(kernel: Kernel, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_bytes(b"hello, emu")
    fd = open_file(kernel, tmp_path / "data.txt")
    assert fd == 3
    assert call(kernel, "read", fd, BUF, 5) == 5
    assert kernel.mem.read(BUF, 5) == b"hello"
    assert call(kernel, "lseek", fd, 7, os.SEEK_SET) == 7
    assert call(kernel, "read", fd, BUF, 100) == 3
    assert kernel.mem.read(BUF, 3) == b"emu"
    assert call(kernel, "close", fd) == 0
    assert call(kernel, "read", fd, BUF, 1) == -Errno.EBADF


def test_fstat_writes_the_linux_struct_stat_layout(kernel: Kernel, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 1234)
    fd = open_file(kernel, tmp_path / "f")
    assert call(kernel, "fstat", fd, STAT) == 0
    raw = kernel.mem.read(STAT, ctypes.sizeof(Stat))
    host = os.stat(tmp_path / "f")
    assert struct.unpack_from("<Q", raw, 8)[0] == host.st_ino          # st_ino at 8
    assert struct.unpack_from("<I", raw, 24)[0] == host.st_mode        # st_mode at 24
    assert struct.unpack_from("<q", raw, 48)[0] == 1234                # st_size at 48
    assert struct.unpack_from("<q", raw, 88)[0] == int(host.st_mtime)  # st_mtime at 88


def test_stat_lstat_and_newfstatat_agree_with_the_host(kernel: Kernel, tmp_path: Path) -> None:
    (tmp_path / "target").write_bytes(b"abc")
    (tmp_path / "link").symlink_to("target")
    put_string(kernel, PATH, str(tmp_path / "link"))
    assert call(kernel, "stat", PATH, STAT) == 0
    assert kernel.read_struct(STAT, Stat).st_size == 3
    assert call(kernel, "lstat", PATH, STAT) == 0
    assert kernel.read_struct(STAT, Stat).st_size == len("target")
    fd = open_file(kernel, tmp_path / "target")
    assert call(kernel, "newfstatat", fd, put_string(kernel, PATH, ""), STAT, AT_EMPTY_PATH) == 0
    assert kernel.read_struct(STAT, Stat).st_size == 3


def test_statx_writes_the_linux_struct_statx_layout(kernel: Kernel, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"y" * 77)
    assert call(kernel, "statx", AT_FDCWD, put_string(kernel, PATH, str(tmp_path / "f")), 0, 0x7FF, STAT) == 0
    raw = kernel.mem.read(STAT, ctypes.sizeof(Statx))
    assert struct.unpack_from("<I", raw, 0)[0] == 0x7FF                # stx_mask: the basic stats
    assert struct.unpack_from("<Q", raw, 40)[0] == 77                  # stx_size at 40
    assert struct.unpack_from("<H", raw, 28)[0] == os.stat(tmp_path / "f").st_mode


def test_a_missing_file_fails_with_enoent(kernel: Kernel, tmp_path: Path) -> None:
    assert open_file(kernel, tmp_path / "absent") == -Errno.ENOENT


def test_write_creates_and_fills_a_file(kernel: Kernel, tmp_path: Path) -> None:
    fd = open_file(kernel, tmp_path / "out", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    kernel.mem.write(BUF, b"written by the guest")
    assert call(kernel, "write", fd, BUF, 20) == 20
    assert call(kernel, "close", fd) == 0
    assert (tmp_path / "out").read_bytes() == b"written by the guest"


def test_writev_gathers_the_iovecs(kernel: Kernel, tmp_path: Path) -> None:
    fd = open_file(kernel, tmp_path / "out", O_WRONLY | O_CREAT, 0o644)
    kernel.mem.write(BUF, b"one two")
    kernel.mem.write(STAT, struct.pack("<QQQQ", BUF, 3, BUF + 3, 4))
    assert call(kernel, "writev", fd, STAT, 2) == 7
    assert (tmp_path / "out").read_bytes() == b"one two"


def test_write_to_a_pipe_reaches_the_host_reader(tmp_path: Path) -> None:
    r, w = os.pipe()
    k = make_kernel(tmp_path)
    k.fds = FdTable(stdin=0, stdout=w, stderr=2)
    k.mem.write(BUF, b"to stdout\n")
    assert call(k, "write", 1, BUF, 10) == 10
    assert os.read(r, 100) == b"to stdout\n"
    k.close()
    os.close(r)
    os.close(w)


def test_a_guest_pipe_carries_bytes_from_its_write_end_to_its_read_end(kernel: Kernel) -> None:
    assert call(kernel, "pipe2", STAT, O_CLOEXEC) == 0
    rfd, wfd = struct.unpack("<ii", kernel.mem.read(STAT, 8))
    assert (rfd, wfd) == (3, 4)
    assert call(kernel, "fcntl", rfd, 1, 0) == 1           # F_GETFD: FD_CLOEXEC
    kernel.mem.write(BUF, b"ping")
    assert call(kernel, "write", wfd, BUF, 4) == 4
    assert call(kernel, "read", rfd, BUF + 100, 4) == 4
    assert kernel.mem.read(BUF + 100, 4) == b"ping"


def test_writing_to_a_pipe_without_reader_kills_with_sigpipe(kernel: Kernel) -> None:
    call(kernel, "pipe", STAT)
    rfd, wfd = struct.unpack("<ii", kernel.mem.read(STAT, 8))
    call(kernel, "close", rfd)
    assert call(kernel, "write", wfd, BUF, 1) == -Errno.EPIPE
    with pytest.raises(ProcessExit) as ended:
        deliver(kernel)
    assert ended.value.signal == 13 and ended.value.exit_code == 141


def test_dup2_redirects_a_descriptor_without_closing_the_emulators_stdout(kernel: Kernel, tmp_path: Path) -> None:
    fd = open_file(kernel, tmp_path / "log", O_WRONLY | O_CREAT, 0o644)
    assert call(kernel, "dup2", fd, 1) == 1
    kernel.mem.write(BUF, b"redirected")
    assert call(kernel, "write", 1, BUF, 10) == 10
    assert (tmp_path / "log").read_bytes() == b"redirected"
    os.fstat(1)                                              # still open in the emulator
    assert call(kernel, "dup", 1) == 4
    assert call(kernel, "dup3", 4, 4, 0) == -Errno.EINVAL


def test_fcntl_reports_the_open_flags_and_duplicates_above_a_floor(kernel: Kernel, tmp_path: Path) -> None:
    fd = open_file(kernel, tmp_path / "f", O_RDWR | O_CREAT, 0o600)
    assert call(kernel, "fcntl", fd, 3, 0) & 0o3 == O_RDWR   # F_GETFL
    assert call(kernel, "fcntl", fd, 0, 10) == 10           # F_DUPFD
    assert call(kernel, "fcntl", fd, 1030, 10) == 11        # F_DUPFD_CLOEXEC
    assert call(kernel, "fcntl", 11, 1, 0) == 1
    assert call(kernel, "fcntl", fd, 999, 0) == -Errno.EINVAL


def test_terminal_ioctls_on_a_regular_file_fail_with_enotty(kernel: Kernel, tmp_path: Path) -> None:
    fd = open_file(kernel, tmp_path / "f", O_RDWR | O_CREAT, 0o600)
    assert call(kernel, "ioctl", fd, 0x5401, STAT) == -Errno.ENOTTY     # TCGETS
    assert call(kernel, "ioctl", fd, 0x5413, STAT) == -Errno.ENOTTY     # TIOCGWINSZ


def test_getdents64_lists_a_directory_in_linux_dirent64_records(kernel: Kernel, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_bytes(b"")
    (tmp_path / "a_dir").mkdir()
    fd = open_file(kernel, tmp_path, O_RDONLY | O_DIRECTORY)
    n = call(kernel, "getdents64", fd, BUF, 4096)
    raw, entries, at = kernel.mem.read(BUF, n), {}, 0
    while at < n:
        _, _, reclen, kind = struct.unpack_from("<QqHB", raw, at)
        name = raw[at + 19: at + reclen].split(b"\0")[0]
        entries[name] = kind
        at += reclen
    assert entries == {b".": 4, b"..": 4, b"a_dir": 4, b"a_file": 8, b"prog": 8}    # DT_DIR, DT_REG
    assert call(kernel, "getdents64", fd, BUF, 4096) == 0
    assert call(kernel, "lseek", fd, 0, os.SEEK_SET) == 0
    assert call(kernel, "getdents64", fd, BUF, 4096) == n


def test_readlink_of_proc_self_exe_is_the_program(kernel: Kernel) -> None:
    n = call(kernel, "readlink", put_string(kernel, PATH, "/proc/self/exe"), BUF, 4096)
    assert kernel.mem.read(BUF, n) == kernel.exe


def test_chdir_moves_the_guests_directory_but_not_the_emulators(kernel: Kernel, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inside").write_bytes(b"found")
    before = os.getcwd()
    assert call(kernel, "chdir", put_string(kernel, PATH, str(tmp_path / "sub"))) == 0
    assert os.getcwd() == before
    n = call(kernel, "getcwd", BUF, 4096)
    assert kernel.mem.read(BUF, n) == str(tmp_path / "sub").encode() + b"\0"
    fd = open_file(kernel, "inside")
    assert call(kernel, "read", fd, BUF, 5) == 5 and kernel.mem.read(BUF, 5) == b"found"
    assert call(kernel, "getcwd", BUF, 3) == -Errno.ERANGE


def test_directories_and_names_are_created_renamed_and_removed(kernel: Kernel, tmp_path: Path) -> None:
    def path(name: str, at: int = PATH) -> int:
        return put_string(kernel, at, str(tmp_path / name))

    assert call(kernel, "mkdir", path("d"), 0o755) == 0 and (tmp_path / "d").is_dir()
    assert call(kernel, "mkdir", path("d"), 0o755) == -Errno.EEXIST
    (tmp_path / "f").write_bytes(b"")
    assert call(kernel, "rename", path("f"), path("g", PATH + 512)) == 0 and (tmp_path / "g").exists()
    assert call(kernel, "symlink", put_string(kernel, PATH, "g"), path("s", PATH + 512)) == 0
    assert os.readlink(tmp_path / "s") == "g"
    assert call(kernel, "link", path("g"), path("h", PATH + 512)) == 0 and os.stat(tmp_path / "h").st_nlink == 2
    assert call(kernel, "chmod", path("g"), 0o600) == 0 and os.stat(tmp_path / "g").st_mode & 0o777 == 0o600
    assert call(kernel, "unlink", path("h")) == 0 and not (tmp_path / "h").exists()
    assert call(kernel, "rmdir", path("g")) == -Errno.ENOTDIR
    assert call(kernel, "unlinkat", AT_FDCWD, path("d"), 0x200) == 0 and not (tmp_path / "d").exists()


def test_access_tells_a_missing_file_from_a_forbidden_mode(kernel: Kernel, tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    assert call(kernel, "access", put_string(kernel, PATH, str(tmp_path / "plain")), 4) == 0
    assert call(kernel, "access", put_string(kernel, PATH, str(tmp_path / "plain")), 1) == -Errno.EACCES
    assert call(kernel, "access", put_string(kernel, PATH, str(tmp_path / "none")), 0) == -Errno.ENOENT


def test_poll_reports_a_pipe_readable_once_written(kernel: Kernel) -> None:
    call(kernel, "pipe", STAT)
    rfd, wfd = struct.unpack("<ii", kernel.mem.read(STAT, 8))
    kernel.mem.write(BUF, struct.pack("<iHH", rfd, 1, 0))        # POLLIN
    assert call(kernel, "poll", BUF, 1, 0) == 0
    kernel.mem.write(STAT, b"!")
    call(kernel, "write", wfd, STAT, 1)
    assert call(kernel, "poll", BUF, 1, 0) == 1
    assert struct.unpack("<iHH", kernel.mem.read(BUF, 8))[2] == 1
