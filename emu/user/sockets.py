"""Sockets as a test harness uses them: AF_UNIX only — socket(2), socketpair(2), bind(2), listen(2),
connect(2), accept(2)/accept4, sendto(2)/recvfrom(2), shutdown(2), getsockname(2)/getpeername(2),
getsockopt(2)/setsockopt(2) (see unix(7)).

A guest socket is a host socket behind the guest descriptor (``emu.user.fdtable``): reads and writes go
through read(2)/write(2) as for any descriptor, and a path in a ``sockaddr_un`` is a host path (the sysroot of
``-L`` maps programs and libraries, not sockets); abstract addresses (a leading NUL) are the host's.
A call that would block waits in ``emu.user.signals.wait_until``, so a signal interrupts it (EINTR).  A send to
a closed peer is EPIPE and sends SIGPIPE unless MSG_NOSIGNAL (the emulator itself ignores SIGPIPE).

sendmsg(2)/recvmsg(2) and their ancillary data are in ``emu.user.sockmsg``, on the helpers here (:func:`call`,
:func:`send`, :func:`read_address`, :func:`write_address`).

Not modelled: other address families (socket(2) says EAFNOSUPPORT: emu gives its guests no network),
socket options beyond SO_TYPE, SO_ERROR, SO_DOMAIN, SO_ACCEPTCONN, SO_SNDBUF/SO_RCVBUF, SO_PASSCRED and
SO_REUSEADDR.
"""

from __future__ import annotations

import os
import select
import socket as host_socket
import struct
from collections.abc import Callable
from typing import TypeVar

from emu.user.kernel import Kernel
from emu.user.linux import O_CLOEXEC, O_NONBLOCK, Errno, Signal, SyscallError, s32
from emu.user.signals import SI_USER, ready_for, siginfo, wait_until
from emu.user.sigstate import Interrupted
from emu.user.sysent import syscall

AF_UNIX = 1
SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
SOCK_NONBLOCK, SOCK_CLOEXEC = O_NONBLOCK, O_CLOEXEC
SOL_SOCKET = 1
SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_SNDBUF, SO_RCVBUF, SO_PASSCRED, SO_ACCEPTCONN, SO_DOMAIN = \
    2, 3, 4, 7, 8, 16, 30, 39
SHUT_RDWR = 2
MSG_DONTWAIT, MSG_NOSIGNAL, MSG_PEEK, MSG_WAITALL = 0x40, 0x4000, 0x2, 0x100
T = TypeVar("T")
SUN_PATH = 108
"""Bytes of ``sun_path`` in struct sockaddr_un (family: 2 bytes at 0, path at 2)."""
_HOST_TYPES = {SOCK_STREAM: host_socket.SOCK_STREAM, SOCK_DGRAM: host_socket.SOCK_DGRAM,
               SOCK_SEQPACKET: host_socket.SOCK_SEQPACKET}
_INT_OPTIONS = (SO_REUSEADDR, SO_SNDBUF, SO_RCVBUF, SO_PASSCRED)


def _kind(kind: int) -> tuple[int, bool, bool]:
    """socket(2)'s type argument: the host type, SOCK_NONBLOCK, SOCK_CLOEXEC."""
    base = kind & 0xF
    if base not in _HOST_TYPES or kind & ~(0xF | SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SyscallError(Errno.EINVAL)
    return _HOST_TYPES[base], bool(kind & SOCK_NONBLOCK), bool(kind & SOCK_CLOEXEC)


def _adopt(k: Kernel, sock: host_socket.socket, nonblock: bool, cloexec: bool) -> int:
    sock.setblocking(not nonblock)
    return k.fds.add(sock.detach(), cloexec=cloexec)


def _socket(k: Kernel, fd: int) -> host_socket.socket:
    """The host socket behind guest ``fd`` (not owning its descriptor: ``detach`` before it goes)."""
    host = k.fds.host(fd)
    try:
        return host_socket.socket(fileno=host)
    except OSError:
        raise SyscallError(Errno.ENOTSOCK) from None


def call(k: Kernel, fd: int, action: Callable[[host_socket.socket], T], events: int = 0, *, wait: bool = True) -> T:
    """``action(sock)`` on guest ``fd``'s socket, as a blocking call: waiting (interruptibly) while it would
    block, if the socket blocks; host errors become the guest's errno."""
    sock = _socket(k, fd)
    try:
        while True:
            try:
                if wait and sock.getblocking() and events:
                    try:
                        wait_until(k, ready_for(sock.fileno(), events), [(sock.fileno(), events)])
                    except Interrupted:
                        raise SyscallError(Errno.EINTR) from None
                blocking = sock.getblocking()
                sock.setblocking(False)
                try:
                    return action(sock)
                finally:
                    sock.setblocking(blocking)
            except BlockingIOError:
                if not (wait and sock.getblocking() and events):
                    raise SyscallError(Errno.EAGAIN) from None
            except OSError as err:
                raise SyscallError(Errno(err.errno or Errno.EINVAL)) from None
    finally:
        sock.detach()


def send(k: Kernel, fd: int, flags: int, action: Callable[[host_socket.socket], T], events: int) -> T:
    """:func:`call` for a send: EPIPE also sends SIGPIPE unless MSG_NOSIGNAL (unix(7), send(2))."""
    try:
        return call(k, fd, action, events)
    except SyscallError as e:
        if e.errno == Errno.EPIPE and not flags & MSG_NOSIGNAL:
            k.signals.post(Signal.SIGPIPE, siginfo(Signal.SIGPIPE, SI_USER, k.pid, os.getuid()))
        raise


def read_address(k: Kernel, address: int, length: int) -> str | bytes:
    """A sockaddr_un from the guest, as Python's socket module takes it."""
    if not 2 < length <= 2 + SUN_PATH:
        raise SyscallError(Errno.EINVAL)
    raw = k.mem.read(address, length)
    if struct.unpack_from("<H", raw)[0] != AF_UNIX:
        raise SyscallError(Errno.EAFNOSUPPORT)
    path = raw[2:]
    if path[:1] == b"\0":
        return path                       # abstract: every byte counts
    return os.fsdecode(path.split(b"\0", 1)[0])


def write_address(k: Kernel, address: int, length_address: int, name: str | bytes) -> None:
    """Store a sockaddr_un (truncated to the guest's buffer) and its full length, as the kernel does."""
    if not address:
        return
    path = name if isinstance(name, bytes) else os.fsencode(name) + (b"\0" if name else b"")
    full = struct.pack("<H", AF_UNIX) + path
    room = s32(int.from_bytes(k.mem.read(length_address, 4), "little"))
    if room < 0:
        raise SyscallError(Errno.EINVAL)
    k.mem.write(address, full[:room])
    k.mem.write(length_address, len(full).to_bytes(4, "little"))


@syscall("socket")
def socket(k: Kernel, domain: int, kind: int, protocol: int) -> int:
    if domain != AF_UNIX:
        raise SyscallError(Errno.EAFNOSUPPORT)     # no network
    host_type, nonblock, cloexec = _kind(kind)
    if protocol:
        raise SyscallError(Errno.EPROTONOSUPPORT)
    return _adopt(k, host_socket.socket(host_socket.AF_UNIX, host_type), nonblock, cloexec)


@syscall("socketpair")
def socketpair(k: Kernel, domain: int, kind: int, protocol: int, sv: int) -> int:
    if domain != AF_UNIX:
        raise SyscallError(Errno.EAFNOSUPPORT if domain != 2 else Errno.EOPNOTSUPP)
    host_type, nonblock, cloexec = _kind(kind)
    if protocol:
        raise SyscallError(Errno.EPROTONOSUPPORT)
    k.mem.write(sv, bytes(8))              # EFAULT before anything is created
    a, b = host_socket.socketpair(host_socket.AF_UNIX, host_type)
    first = _adopt(k, a, nonblock, cloexec)
    try:
        second = _adopt(k, b, nonblock, cloexec)
    except SyscallError:
        k.fds.close(first)
        raise
    k.mem.write(sv, struct.pack("<ii", first, second))
    return 0


@syscall("bind")
def bind(k: Kernel, fd: int, addr: int, addrlen: int) -> int:
    name = read_address(k, addr, addrlen)
    call(k, fd, lambda s: s.bind(name), wait=False)
    return 0


@syscall("listen")
def listen(k: Kernel, fd: int, backlog: int) -> int:
    call(k, fd, lambda s: s.listen(max(0, s32(backlog))), wait=False)
    return 0


@syscall("connect")
def connect(k: Kernel, fd: int, addr: int, addrlen: int) -> int:
    name = read_address(k, addr, addrlen)
    call(k, fd, lambda s: s.connect(name), wait=False)
    return 0


@syscall("accept")
def accept(k: Kernel, fd: int, addr: int, addrlen: int) -> int:
    return accept4(k, fd, addr, addrlen, 0)


@syscall("accept4")
def accept4(k: Kernel, fd: int, addr: int, addrlen: int, flags: int) -> int:
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SyscallError(Errno.EINVAL)
    conn, peer = call(k, fd, lambda s: s.accept(), select.POLLIN)
    guest = _adopt(k, conn, bool(flags & SOCK_NONBLOCK), bool(flags & SOCK_CLOEXEC))
    write_address(k, addr, addrlen, peer)
    return guest


@syscall("sendto")
def sendto(k: Kernel, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    data = k.mem.read(buf, min(length, 1 << 24))
    host_flags = flags & (MSG_DONTWAIT | MSG_NOSIGNAL)
    name = read_address(k, addr, addrlen) if addr else None
    action = (lambda s: s.sendto(data, host_flags, name)) if name is not None else (lambda s: s.send(data, host_flags))
    return send(k, fd, flags, action, 0 if flags & MSG_DONTWAIT else select.POLLOUT)


@syscall("recvfrom")
def recvfrom(k: Kernel, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    host_flags = flags & (MSG_DONTWAIT | MSG_PEEK | MSG_WAITALL)
    data, peer = call(k, fd, lambda s: s.recvfrom(min(length, 1 << 24), host_flags),
                       0 if flags & MSG_DONTWAIT else select.POLLIN)
    k.mem.write(buf, data)
    write_address(k, addr, addrlen, peer or "")
    return len(data)


@syscall("shutdown")
def shutdown(k: Kernel, fd: int, how: int) -> int:
    if how > SHUT_RDWR:
        raise SyscallError(Errno.EINVAL)
    call(k, fd, lambda s: s.shutdown(how), wait=False)
    return 0


@syscall("getsockname")
def getsockname(k: Kernel, fd: int, addr: int, addrlen: int) -> int:
    write_address(k, addr, addrlen, call(k, fd, lambda s: s.getsockname(), wait=False))
    return 0


@syscall("getpeername")
def getpeername(k: Kernel, fd: int, addr: int, addrlen: int) -> int:
    write_address(k, addr, addrlen, call(k, fd, lambda s: s.getpeername(), wait=False))
    return 0


@syscall("getsockopt")
def getsockopt(k: Kernel, fd: int, level: int, name: int, value: int, length: int) -> int:
    if level != SOL_SOCKET:
        raise SyscallError(Errno.ENOPROTOOPT)
    sock_type = {v: k for k, v in _HOST_TYPES.items()}
    options = {SO_TYPE: lambda s: sock_type[s.type & 0xF], SO_DOMAIN: lambda s: AF_UNIX,
               SO_ERROR: lambda s: s.getsockopt(host_socket.SOL_SOCKET, host_socket.SO_ERROR),
               SO_ACCEPTCONN: lambda s: s.getsockopt(host_socket.SOL_SOCKET, host_socket.SO_ACCEPTCONN)}
    for option in _INT_OPTIONS:
        options[option] = lambda s, o=option: s.getsockopt(host_socket.SOL_SOCKET, o)
    if name not in options:
        raise SyscallError(Errno.ENOPROTOOPT)
    result = call(k, fd, options[name], wait=False)
    room = s32(int.from_bytes(k.mem.read(length, 4), "little"))
    if room < 0:
        raise SyscallError(Errno.EINVAL)
    k.mem.write(value, result.to_bytes(4, "little", signed=True)[:room])
    k.mem.write(length, min(room, 4).to_bytes(4, "little"))
    return 0


@syscall("setsockopt")
def setsockopt(k: Kernel, fd: int, level: int, name: int, value: int, length: int) -> int:
    if level != SOL_SOCKET or name not in _INT_OPTIONS:
        raise SyscallError(Errno.ENOPROTOOPT)
    if length < 4:
        raise SyscallError(Errno.EINVAL)
    option = int.from_bytes(k.mem.read(value, 4), "little", signed=True)
    call(k, fd, lambda s: s.setsockopt(host_socket.SOL_SOCKET, name, option), wait=False)
    return 0
