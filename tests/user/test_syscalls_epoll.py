"""epoll(7) (emu/user/epoll.py), called as a guest calls it: a pipe watched for input, the guest's data
returned with each event, and the errors epoll_ctl(2) and epoll_wait(2) list."""

from __future__ import annotations

import struct

from emu.user.linux import Errno
from emu.user.syscalls import Kernel
from tests.user.guest import SCRATCH, call

PIPE, EVENT, EVENTS = SCRATCH, SCRATCH + 0x100, SCRATCH + 0x200
EPOLLIN, EPOLLOUT = 0x1, 0x4
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3


def _pipe(k: Kernel) -> tuple[int, int]:
    assert call(k, "pipe2", PIPE, 0) == 0
    r, w = struct.unpack("<ii", k.mem.read(PIPE, 8))
    return r, w


def _ctl(k: Kernel, epfd: int, op: int, fd: int, events: int, data: int) -> int:
    k.mem.write(EVENT, struct.pack("<IQ", events, data))
    return call(k, "epoll_ctl", epfd, op, fd, EVENT)


def test_epoll_reports_a_readable_pipe_with_the_guests_data(kernel: Kernel) -> None:
    r, w = _pipe(kernel)
    epfd = call(kernel, "epoll_create1", 0o2000000)
    assert epfd > w
    assert _ctl(kernel, epfd, EPOLL_CTL_ADD, r, EPOLLIN, 0x1122_3344_5566_7788) == 0
    assert call(kernel, "epoll_wait", epfd, EVENTS, 8, 0) == 0
    assert call(kernel, "write", w, PIPE, 1) == 1
    assert call(kernel, "epoll_pwait", epfd, EVENTS, 8, 1000, 0) == 1
    assert struct.unpack("<IQ", kernel.mem.read(EVENTS, 12)) == (EPOLLIN, 0x1122_3344_5566_7788)
    assert _ctl(kernel, epfd, EPOLL_CTL_MOD, r, EPOLLIN, 5) == 0
    assert call(kernel, "epoll_wait", epfd, EVENTS, 8, 0) == 1
    assert struct.unpack("<IQ", kernel.mem.read(EVENTS, 12)) == (EPOLLIN, 5)
    assert _ctl(kernel, epfd, EPOLL_CTL_DEL, r, 0, 0) == 0
    assert call(kernel, "epoll_wait", epfd, EVENTS, 8, 0) == 0


def test_epoll_errors(kernel: Kernel) -> None:
    r, w = _pipe(kernel)
    epfd = call(kernel, "epoll_create", 1)
    assert call(kernel, "epoll_create", 0) == -Errno.EINVAL
    assert call(kernel, "epoll_create1", 1) == -Errno.EINVAL
    assert _ctl(kernel, epfd, EPOLL_CTL_ADD, w, EPOLLOUT, 0) == 0
    assert _ctl(kernel, epfd, EPOLL_CTL_ADD, w, EPOLLOUT, 0) == -Errno.EEXIST
    assert _ctl(kernel, epfd, EPOLL_CTL_MOD, r, EPOLLIN, 0) == -Errno.ENOENT
    assert _ctl(kernel, epfd, EPOLL_CTL_ADD, epfd, EPOLLIN, 0) == -Errno.EINVAL
    assert _ctl(kernel, epfd, 9, r, EPOLLIN, 0) == -Errno.EINVAL
    assert _ctl(kernel, r, EPOLL_CTL_ADD, w, EPOLLIN, 0) == -Errno.EINVAL      # r is not an epoll instance
    assert _ctl(kernel, epfd, EPOLL_CTL_ADD, 99, EPOLLIN, 0) == -Errno.EBADF
    assert call(kernel, "epoll_wait", epfd, EVENTS, 0, 0) == -Errno.EINVAL
    assert call(kernel, "epoll_wait", epfd, 0x10, 8, 0) == -Errno.EFAULT    # w is writable: one event to store
