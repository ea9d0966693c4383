"""Socket messages with ancillary data: sendmsg(2), recvmsg(2), sendmmsg(2), recvmmsg(2) on AF_UNIX sockets.

Follows sendmsg(2), recvmsg(2), cmsg(3), unix(7) (SCM_RIGHTS, SCM_CREDENTIALS) and the kernel's
``net/socket.c`` (``____sys_sendmsg``, ``____sys_recvmsg``, ``__sys_sendmmsg``, ``do_recvmmsg``),
``net/core/scm.c`` (``__scm_send``, ``scm_detach_fds``, ``put_cmsg``) for the errors: more than
UIO_MAXIOV iovecs is EMSGSIZE, a negative ``msg_namelen`` EINVAL (a longer one than ``struct
sockaddr_storage`` is cut to it), a
``msg_controllen`` past INT_MAX ENOBUFS, a control message whose ``cmsg_len`` does not fit EINVAL, more
than SCM_MAX_FD descriptors in one SCM_RIGHTS EINVAL, a descriptor that is not open EBADF, an unknown
SOL_SOCKET control message EINVAL (other levels are skipped, as on a unix socket); a send to a closed peer is
EPIPE with SIGPIPE unless MSG_NOSIGNAL (``emu.user.sockets.send``).

The socket is the host socket behind the guest descriptor (``emu.user.sockets``), and so is every
passed descriptor: SCM_RIGHTS sends the host descriptors behind the guest's numbers, and each host
descriptor received becomes a new guest descriptor (FD_CLOEXEC with MSG_CMSG_CLOEXEC).  The host kernel
does the truncation of a short control buffer (MSG_CTRUNC, the descriptors that do not fit closed) and
of a short datagram (MSG_TRUNC).  SCM_CREDENTIALS goes to the host as it is: a guest's pid is its
emulator's (``emu.user.kernel``), so the kernel checks it as it would the guest's own.

Not modelled: MSG_TRUNC and MSG_ERRQUEUE as recvmsg flags (EINVAL rather than a wrong answer), MSG_OOB,
recvmmsg's pending error kept for the next call, other address families.
"""

from __future__ import annotations

import select
import socket as host_socket
import struct

from emu.user.kernel import Kernel
from emu.user.linux import Errno, SyscallError, s32
from emu.user.sockets import (
    MSG_DONTWAIT,
    MSG_NOSIGNAL,
    MSG_PEEK,
    MSG_WAITALL,
    SOCK_SEQPACKET,
    SOCK_STREAM,
    call,
    read_address,
    send,
    write_address,
)
from emu.user.sysent import syscall

UIO_MAXIOV = 1024
SCM_MAX_FD = 253
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
SOL_SOCKET = 1
SOCKADDR_STORAGE = 128
MSG_CTRUNC, MSG_EOR, MSG_WAITFORONE, MSG_CMSG_CLOEXEC = 0x8, 0x80, 0x10000, 0x4000_0000
MAX_DATA = 1 << 24
"""Bytes one message moves at most (a shorter count is a legal short send or receive)."""
MAX_CONTROL = 1 << 17
"""Bytes of control data one message takes at most: Linux's default optmem_max (ENOBUFS past it)."""
_MSGHDR = struct.Struct("<QI4xQQQQi4x")
"""struct msghdr: msg_name, msg_namelen, msg_iov, msg_iovlen, msg_control, msg_controllen, msg_flags."""
_MMSGHDR = _MSGHDR.size + 8
"""struct mmsghdr: a msghdr, then msg_len (unsigned int) and padding."""
_CMSGHDR = struct.Struct("<Qii")
"""struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type; the data follows, 8-byte aligned."""
_IOVEC = struct.Struct("<QQ")
_SEND_FLAGS = MSG_DONTWAIT | MSG_NOSIGNAL | MSG_EOR
_RECV_FLAGS = MSG_DONTWAIT | MSG_PEEK | MSG_WAITALL
_UNMODELLED = 0x1 | 0x20 | 0x2000
"""MSG_OOB, MSG_TRUNC and MSG_ERRQUEUE as recvmsg flags."""


def _align(n: int) -> int:
    return (n + 7) & ~7


def _header(k: Kernel, msg: int) -> tuple[int, int, int, int, int, int, int]:
    name, namelen, iov, iovlen, control, controllen, flags = _MSGHDR.unpack(k.mem.read(msg, _MSGHDR.size))
    if iovlen > UIO_MAXIOV:
        raise SyscallError(Errno.EMSGSIZE)
    if s32(namelen) < 0:
        raise SyscallError(Errno.EINVAL)
    namelen = min(namelen, SOCKADDR_STORAGE)
    if controllen > 0x7FFF_FFFF:
        raise SyscallError(Errno.ENOBUFS)
    return name, namelen, iov, iovlen, control, controllen, flags


def _iovecs(k: Kernel, iov: int, iovlen: int) -> list[tuple[int, int]]:
    vectors = list(_IOVEC.iter_unpack(k.mem.read(iov, _IOVEC.size * iovlen))) if iovlen else []
    total = 0
    for _, n in vectors:
        total += n
        if n > 0x7FFF_FFFF_FFFF_FFFF or total > 0x7FFF_FFFF_FFFF_FFFF:     # ssize_t overflow
            raise SyscallError(Errno.EINVAL)
    return vectors


def _destination(k: Kernel, fd: int, name: int, namelen: int) -> str | bytes | None:
    """Where a message goes: ``msg_name`` on a datagram socket; a stream socket refuses one (EISCONN when
    connected, else EOPNOTSUPP) and a seqpacket socket ignores it (``unix_stream_sendmsg``,
    ``unix_seqpacket_sendmsg``)."""
    if not (name and namelen):
        return None
    kind = call(k, fd, lambda s: s.type & 0xF, wait=False)
    if kind == SOCK_STREAM:
        try:
            call(k, fd, lambda s: s.getpeername(), wait=False)
        except SyscallError:
            raise SyscallError(Errno.EOPNOTSUPP) from None
        raise SyscallError(Errno.EISCONN)
    return None if kind == SOCK_SEQPACKET else read_address(k, name, namelen)


def _control_out(k: Kernel, control: int, controllen: int) -> list[tuple[int, int, bytes]]:
    """The guest's control messages as the host's: SCM_RIGHTS with host descriptors, SCM_CREDENTIALS as is."""
    if controllen > MAX_CONTROL:
        raise SyscallError(Errno.ENOBUFS)
    raw = k.mem.read(control, controllen) if controllen else b""
    out, at = [], 0
    while controllen - at >= _CMSGHDR.size:
        length, level, kind = _CMSGHDR.unpack_from(raw, at)
        if length < _CMSGHDR.size or length > controllen - at:
            raise SyscallError(Errno.EINVAL)
        data = raw[at + _CMSGHDR.size: at + length]
        at += _align(length)
        if level != SOL_SOCKET:
            continue
        if kind == SCM_RIGHTS:
            fds = [fd for (fd,) in struct.iter_unpack("<i", data[:len(data) // 4 * 4])]
            if len(fds) > SCM_MAX_FD:
                raise SyscallError(Errno.EINVAL)
            if fds:
                hosts = [k.fds.host(fd) for fd in fds]
                out.append((host_socket.SOL_SOCKET, host_socket.SCM_RIGHTS, struct.pack(f"{len(hosts)}i", *hosts)))
        elif kind == SCM_CREDENTIALS and len(data) == 12:
            out.append((host_socket.SOL_SOCKET, host_socket.SCM_CREDENTIALS, data))
        else:
            raise SyscallError(Errno.EINVAL)
    return out


def _sendmsg(k: Kernel, fd: int, msg: int, flags: int) -> int:
    name, namelen, iov, iovlen, control, controllen, _ = _header(k, msg)
    parts, total = [], 0
    for base, n in _iovecs(k, iov, iovlen):
        n = min(n, MAX_DATA - total)
        parts.append(k.mem.read(base, n))
        total += n
    address = _destination(k, fd, name, namelen)
    ancillary = _control_out(k, control, controllen)
    host_flags = flags & _SEND_FLAGS
    return send(k, fd, flags, lambda s: s.sendmsg(parts, ancillary, host_flags, *([address] if address else [])),
                0 if flags & MSG_DONTWAIT else select.POLLOUT)


def _control_in(k: Kernel, ancillary: list[tuple[int, int, bytes]], cloexec: bool) -> bytes:
    """The host's control messages as the guest's: each received host descriptor a new guest one."""
    out = bytearray()
    for level, kind, data in ancillary:
        if level == host_socket.SOL_SOCKET and kind == host_socket.SCM_RIGHTS:
            hosts = [fd for (fd,) in struct.iter_unpack("i", data[:len(data) // 4 * 4])]
            guests = []
            for i, host in enumerate(hosts):
                try:
                    guests.append(k.fds.add(host, cloexec=cloexec))
                except SyscallError:            # EMFILE: the rest are closed, as scm_detach_fds does
                    for rest in hosts[i + 1:]:
                        host_socket.close(rest)
                    break
            data = struct.pack(f"<{len(guests)}i", *guests)
            kind = SCM_RIGHTS
        elif level == host_socket.SOL_SOCKET and kind == host_socket.SCM_CREDENTIALS:
            kind = SCM_CREDENTIALS
        out += _CMSGHDR.pack(_CMSGHDR.size + len(data), SOL_SOCKET, kind) + data
        out += bytes(_align(len(out)) - len(out))
    return bytes(out)


def _recvmsg(k: Kernel, fd: int, msg: int, flags: int) -> int:
    if flags & _UNMODELLED:
        raise SyscallError(Errno.EINVAL)
    name, _, iov, iovlen, control, controllen, _ = _header(k, msg)
    vectors = _iovecs(k, iov, iovlen)
    size = min(sum(n for _, n in vectors), MAX_DATA)
    room = min(controllen, MAX_CONTROL)
    host_flags = (flags & _RECV_FLAGS) | host_socket.MSG_CMSG_CLOEXEC
    data, ancillary, msg_flags, peer = call(k, fd, lambda s: s.recvmsg(size, room, host_flags),
                                            0 if flags & MSG_DONTWAIT else select.POLLIN)
    guest_control = _control_in(k, ancillary, bool(flags & MSG_CMSG_CLOEXEC))
    used = min(len(guest_control), controllen)
    if control and used:
        k.mem.write(control, guest_control[:used])
    done = 0
    for base, n in vectors:
        if done >= len(data):
            break
        k.mem.write(base, data[done: done + n])
        done += n
    if name and peer:
        write_address(k, name, msg + 8, peer)
    elif name:
        k.mem.write(msg + 8, bytes(4))          # an unbound peer: no address (unix_copy_addr)
    k.mem.write(msg + 40, struct.pack("<Q", used))
    k.mem.write(msg + 48, struct.pack("<i", msg_flags & ~host_socket.MSG_CMSG_CLOEXEC))
    return len(data)


@syscall("sendmsg")
def sendmsg(k: Kernel, fd: int, msg: int, flags: int) -> int:
    return _sendmsg(k, fd, msg, flags)


@syscall("recvmsg")
def recvmsg(k: Kernel, fd: int, msg: int, flags: int) -> int:
    return _recvmsg(k, fd, msg, flags & ~MSG_WAITFORONE)


@syscall("sendmmsg")
def sendmmsg(k: Kernel, fd: int, msgvec: int, vlen: int, flags: int) -> int:
    """Send up to ``vlen`` messages (at most UIO_MAXIOV); after the first, an error ends the batch with the
    count sent, as ``__sys_sendmmsg`` does."""
    sent = 0
    for i in range(min(vlen & 0xFFFF_FFFF, UIO_MAXIOV)):
        entry = msgvec + i * _MMSGHDR
        try:
            n = _sendmsg(k, fd, entry, flags)
        except SyscallError:
            if sent:
                break
            raise
        k.mem.write(entry + _MSGHDR.size, struct.pack("<I", n))
        sent += 1
    return sent


@syscall("recvmmsg")
def recvmmsg(k: Kernel, fd: int, msgvec: int, vlen: int, flags: int, timeout: int) -> int:
    """Receive up to ``vlen`` messages; MSG_WAITFORONE makes the calls after the first non-blocking.  The
    timeout is checked after each message, as ``do_recvmmsg`` does (recvmmsg(2), BUGS)."""
    deadline = None
    if timeout:
        sec, nsec = struct.unpack("<qq", k.mem.read(timeout, 16))
        if sec < 0 or not 0 <= nsec < 1_000_000_000:
            raise SyscallError(Errno.EINVAL)
        deadline = k.monotonic_ns() + sec * 1_000_000_000 + nsec
    received = 0
    for i in range(min(vlen & 0xFFFF_FFFF, UIO_MAXIOV)):
        entry = msgvec + i * _MMSGHDR
        now_flags = flags | (MSG_DONTWAIT if received and flags & MSG_WAITFORONE else 0)
        try:
            n = _recvmsg(k, fd, entry, now_flags & ~MSG_WAITFORONE)
        except SyscallError:
            if received:
                break
            raise
        k.mem.write(entry + _MSGHDR.size, struct.pack("<I", n))
        received += 1
        if deadline is not None and k.monotonic_ns() >= deadline:
            break
    return received
