"""Identity, time, randomness, signals, limits and exit, called as a guest calls them."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import pytest

from emu.user.linux import Errno, ProcessExit, Rlimit, Timespec, Utsname
from emu.user.signals import deliver
from emu.user.syscalls import Kernel
from tests.user.guest import SCRATCH, call, make_kernel

BUF = SCRATCH + 0x1000


def test_uname_says_linux_on_x86_64(kernel: Kernel) -> None:
    assert call(kernel, "uname", BUF) == 0
    names = kernel.read_struct(BUF, Utsname)
    assert (names.sysname, names.nodename, names.machine) == (b"Linux", b"emu", b"x86_64")
    assert names.release.startswith(b"6.")


def test_a_bad_pointer_fails_with_efault_instead_of_crashing_the_host(kernel: Kernel) -> None:
    assert call(kernel, "uname", 0x10) == -Errno.EFAULT
    assert call(kernel, "clock_gettime", 0, 0xDEAD_0000) == -Errno.EFAULT
    assert call(kernel, "write", 1, 1 << 63, 4) == -Errno.EFAULT


def test_an_unknown_syscall_returns_enosys_and_is_reported_once(kernel: Kernel) -> None:
    assert call(kernel, "io_uring_setup", 1, 0) == -Errno.ENOSYS
    assert call(kernel, "io_uring_setup", 1, 0) == -Errno.ENOSYS
    kernel.state.rax = 999
    kernel.handle()
    assert kernel.log.getvalue() == ("emu: syscall 425 (io_uring_setup) not implemented, returning -ENOSYS\n"
                                     "emu: syscall 999 (unknown) not implemented, returning -ENOSYS\n")


def test_rseq_fails_quietly_so_glibc_carries_on(kernel: Kernel) -> None:
    assert call(kernel, "rseq", SCRATCH, 32, 0, 0) == -Errno.ENOSYS
    assert kernel.log.getvalue() == ""


def test_arch_prctl_sets_and_reads_the_fs_and_gs_bases(kernel: Kernel) -> None:
    assert call(kernel, "arch_prctl", 0x1002, 0x7000_1234) == 0
    assert kernel.state.fs_base == 0x7000_1234
    assert call(kernel, "arch_prctl", 0x1001, 0x6000) == 0 and kernel.state.gs_base == 0x6000
    assert call(kernel, "arch_prctl", 0x1003, BUF) == 0
    assert kernel.mem.load(BUF, 64) == 0x7000_1234
    assert call(kernel, "arch_prctl", 0x1002, 1 << 63) == -Errno.EPERM
    assert call(kernel, "arch_prctl", 0x9999, 0) == -Errno.EINVAL


def test_clocks_read_the_kernels_clock_and_sleeping_advances_it(tmp_path: Path) -> None:
    now = [5_000_000_123]
    k = make_kernel(tmp_path)
    k.clock, k.epoch_ns = (lambda: now[0]), 1_700_000_000 * 10**9
    assert call(k, "clock_gettime", 1, BUF) == 0                       # CLOCK_MONOTONIC
    assert (k.read_struct(BUF, Timespec).tv_sec, k.read_struct(BUF, Timespec).tv_nsec) == (5, 123)
    assert call(k, "time", 0) == 1_700_000_005
    k.write_struct(BUF, Timespec(2, 0))
    assert call(k, "nanosleep", BUF, 0) == 0
    assert call(k, "clock_gettime", 0, BUF) == 0                       # CLOCK_REALTIME
    assert k.read_struct(BUF, Timespec).tv_sec == 1_700_000_007
    assert call(k, "clock_gettime", 99, BUF) == -Errno.EINVAL
    k.write_struct(BUF, Timespec(0, 10**9))
    assert call(k, "nanosleep", BUF, 0) == -Errno.EINVAL
    k.close()


def test_getrandom_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    def draw() -> bytes:
        k = make_kernel(tmp_path)
        assert call(k, "getrandom", BUF, 32, 0) == 32
        k.close()
        return k.mem.read(BUF, 32)

    assert draw() == draw()


def test_exit_group_ends_the_process_with_the_low_byte_of_the_status(kernel: Kernel) -> None:
    with pytest.raises(ProcessExit) as ended:
        call(kernel, "exit_group", 0x1_2345)
    assert ended.value.exit_code == 0x45 and ended.value.signal is None


def test_abort_by_tgkill_sigabrt_ends_the_process_with_134(kernel: Kernel) -> None:
    pid = call(kernel, "getpid")
    assert pid == os.getpid() == call(kernel, "gettid")
    assert call(kernel, "tgkill", pid, pid, 6) == 0
    with pytest.raises(ProcessExit) as ended:
        deliver(kernel)                     # before the guest runs again
    assert ended.value.signal == 6 and ended.value.exit_code == 134


def test_an_ignored_or_harmless_signal_sent_to_itself_does_nothing(kernel: Kernel) -> None:
    kernel.mem.write(BUF, struct.pack("<QQQQ", 1, 0, 0, 0))            # sa_handler = SIG_IGN
    assert call(kernel, "rt_sigaction", 10, BUF, 0, 8) == 0            # SIGUSR1
    assert call(kernel, "kill", kernel.pid, 10) == 0
    assert call(kernel, "kill", kernel.pid, 17) == 0                    # SIGCHLD: ignored by default
    assert kernel.signals.pending == {}
    deliver(kernel)
    assert call(kernel, "kill", 0x3FFF_FFFF, 9) == -Errno.ESRCH         # beyond pid_max: no such process


def test_rt_sigaction_returns_the_previous_action(kernel: Kernel) -> None:
    kernel.mem.write(BUF, struct.pack("<QQQQ", 0x401000, 0x0400_0000, 0x401100, 0))
    assert call(kernel, "rt_sigaction", 2, BUF, BUF + 64, 8) == 0
    assert kernel.mem.read(BUF + 64, 32) == bytes(32)
    assert call(kernel, "rt_sigaction", 2, 0, BUF + 64, 8) == 0
    assert kernel.mem.read(BUF + 64, 32) == kernel.mem.read(BUF, 32)
    assert call(kernel, "rt_sigaction", 9, BUF, 0, 8) == -Errno.EINVAL     # SIGKILL cannot be caught
    assert call(kernel, "rt_sigaction", 2, BUF, 0, 4) == -Errno.EINVAL     # wrong sigset size


def test_rt_sigprocmask_blocks_and_reports_the_mask(kernel: Kernel) -> None:
    kernel.write_u64(BUF, 1 << 1 | 1 << 8)                              # SIGINT, SIGKILL
    assert call(kernel, "rt_sigprocmask", 0, BUF, 0, 8) == 0
    assert call(kernel, "rt_sigprocmask", 2, 0, BUF + 8, 8) == 0
    assert kernel.mem.load(BUF + 8, 64) == 1 << 1                       # SIGKILL cannot be blocked


def test_the_stack_limit_is_8_mib(kernel: Kernel) -> None:
    assert call(kernel, "prlimit64", 0, 3, 0, BUF) == 0                  # RLIMIT_STACK
    assert kernel.read_struct(BUF, Rlimit).rlim_cur == 8 << 20
    kernel.write_struct(BUF, Rlimit(64, 128))
    assert call(kernel, "setrlimit", 7, BUF) == 0                        # RLIMIT_NOFILE
    assert call(kernel, "getrlimit", 7, BUF + 16) == 0
    assert kernel.read_struct(BUF + 16, Rlimit).rlim_cur == 64 and kernel.fds.limit == 64


def test_the_process_has_one_cpu(kernel: Kernel) -> None:
    assert call(kernel, "sched_getaffinity", 0, 128, BUF) == 8
    assert kernel.mem.load(BUF, 64) == 1


def test_sockets_are_unsupported(kernel: Kernel) -> None:
    assert call(kernel, "socket", 2, 1, 0) == -Errno.EAFNOSUPPORT


def test_a_trace_line_is_written_per_call_like_strace(kernel: Kernel) -> None:
    kernel.trace = io.StringIO()
    call(kernel, "getppid")
    call(kernel, "close", 77)
    assert kernel.trace.getvalue() == f"getppid() = {os.getppid():#x}\nclose(0x4d) = EBADF\n"
