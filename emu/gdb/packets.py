"""The transport of the GDB Remote Serial Protocol: packets, acknowledgments and the interrupt byte.

Follows the GDB manual, appendix "Remote Serial Protocol", sections
"Overview" (``$packet-data#checksum``, the two-hex-digit checksum is the sum
of the data bytes modulo 256; ``+``/``-`` acknowledgments; binary data
escaped with ``}`` and the byte XOR 0x20; ``$``, ``#``, ``}`` and, in
replies, ``*`` must be escaped), "Interrupts" (a lone 0x03 byte) and "Packet
Acknowledgment" (``QStartNoAckMode`` turns acknowledgments off).

A reader thread owns the receiving side of the socket: it acknowledges good
packets, answers a bad checksum with ``-``, retransmits the last reply when
gdb sends ``-``, calls ``on_interrupt`` for 0x03 at once (while the target
runs in the stub's thread), and queues packets for :meth:`Link.receive`.
Garbage between packets and malformed packets are logged as one line each
and dropped; a client that disconnects, even mid-packet, makes ``receive``
return ``None``.  Not supported on input: run-length encoding (gdb never
sends it).
"""

from __future__ import annotations

import queue
import socket
import sys
import threading
from collections.abc import Callable
from typing import TextIO

INTERRUPT = 0x03
MAX_PACKET = 1 << 20
"""A packet longer than this (without its ``#``) is garbage: dropped, so a client cannot grow our memory."""

_HEX = frozenset(b"0123456789abcdefABCDEF")


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(payload: bytes) -> bytes:
    """``$payload#cs``: the bytes of one packet on the wire."""
    return b"$" + payload + b"#" + b"%02x" % checksum(payload)


def escape_binary(data: bytes) -> bytes:
    """Binary data for a reply: ``$ # } *`` become ``}`` and the byte XOR 0x20."""
    out = bytearray()
    for b in data:
        if b in b"$#}*":
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape_binary(data: bytes) -> bytes:
    """The bytes of an ``X`` packet's binary data; a trailing lone ``}`` is an error (ValueError)."""
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                raise ValueError("binary data ends in an escape byte")
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


class Link:
    """One gdb connection: receive packets, send replies."""

    def __init__(self, sock: socket.socket, on_interrupt: Callable[[], None], *, log: TextIO | None = None) -> None:
        self.sock = sock
        self.on_interrupt = on_interrupt
        self.log = log if log is not None else sys.stderr
        self.noack = False
        """No acknowledgments either way (after QStartNoAckMode)."""
        self.closed = False
        self.cut_off = False
        """The client disconnected in the middle of a packet."""
        self._packets: queue.Queue[bytes | None] = queue.Queue()
        self._send_lock = threading.Lock()
        self._last = b""
        self._reader = threading.Thread(target=self._read_loop, name="gdb-link", daemon=True)
        self._reader.start()

    def say(self, message: str) -> None:
        print(f"emu: gdb: {message}", file=self.log, flush=True)

    # -- the stub's side -------------------------------------------------------------
    def receive(self) -> bytes | None:
        """The next packet's data (escapes intact), or None once the client is gone."""
        if self.closed:
            return None
        packet = self._packets.get()
        if packet is None:
            self.closed = True
        return packet

    def send(self, payload: bytes) -> None:
        """Send one reply packet (never raises: a vanished client shows up as ``receive() is None``)."""
        self._last = frame(payload)
        self._write(self._last)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._reader.join(timeout=5)

    def _write(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    # -- the reader thread -------------------------------------------------------------
    def _read_loop(self) -> None:
        buf = bytearray()
        packet: bytearray | None = None      # data of the packet being received, after its '$'
        garbage = False
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self.cut_off = packet is not None
                self._packets.put(None)
                return
            buf += chunk
            i = 0
            while i < len(buf):
                b = buf[i]
                if packet is None:
                    i += 1
                    if b == ord("$"):
                        packet, garbage = bytearray(), False
                    elif b == INTERRUPT:
                        self.on_interrupt()
                    elif b == ord("-"):
                        if self._last:
                            self._write(self._last)
                    elif b != ord("+") and not garbage:
                        garbage = True
                        self.say(f"ignoring unexpected byte {b:#04x} between packets")
                    continue
                end = buf.find(b"#", i)
                if end < 0 or end + 2 >= len(buf):
                    if end < 0:
                        packet += buf[i:]
                        i = len(buf)
                    break                      # wait for the rest (or for the two checksum digits)
                packet += buf[i:end]
                digits = bytes(buf[end + 1:end + 3])
                i = end + 3
                self._complete(bytes(packet), digits)
                packet = None
            del buf[:i]
            if packet is not None and len(packet) + len(buf) > MAX_PACKET:
                self.say(f"dropping a packet longer than {MAX_PACKET} bytes")
                packet = None
                buf.clear()

    def _complete(self, data: bytes, digits: bytes) -> None:
        if b"$" in data:                       # the client gave up on a packet and started another
            self.say("discarding an unfinished packet")
            data = data[data.rindex(b"$") + 1:]
        if len(digits) != 2 or not set(digits) <= _HEX or int(digits, 16) != checksum(data):
            self.say(f"bad checksum on packet {data[:40]!r}: asking for it again")
            if not self.noack:
                self._write(b"-")
            return
        if not self.noack:
            self._write(b"+")
        self._packets.put(data)
