"""Test helpers: ``emu run --gdb`` as a subprocess, and a tiny Remote Serial Protocol client to talk to it."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60
"""Seconds any one wait may take: a hung stub fails the test instead of hanging it."""


class Emu:
    """``python -m emu run --gdb 0 ARGV...`` (or another ``command``: ``boot``): started, and waited for until it
    listens."""

    def __init__(self, argv: list[str], *, address: str = "0", command: str = "run") -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "emu", command, "--gdb", address, *argv], cwd=ROOT,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.first_line = self._stderr_line()
        match = re.fullmatch(r"emu: waiting for gdb on ([0-9.]+):(\d+)\n", self.first_line)
        if match is None:
            self.proc.kill()
            raise AssertionError(f"emu did not start listening: {self.first_line!r} {self.proc.communicate()}")
        self.host, self.port = match[1], int(match[2])

    def _stderr_line(self) -> str:
        fd = self.proc.stderr.fileno()
        line = b""
        deadline = time.monotonic() + TIMEOUT
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 1) if ready else b""
            if not chunk:
                break
            line += chunk
        return line.decode()

    def finish(self) -> tuple[int, str, str]:
        """Wait for emu to exit: (status, stdout, the rest of stderr)."""
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"emu did not exit: {err.decode()}") from None
        return self.proc.returncode, out.decode(), err.decode()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def checksum(data: bytes) -> bytes:
    return b"%02x" % (sum(data) & 0xFF)


class Client:
    """A gdb stand-in: frames packets, checks and acknowledges replies."""

    def __init__(self, emu: Emu) -> None:
        self.sock = socket.create_connection((emu.host, emu.port), timeout=TIMEOUT)
        self.buf = b""
        self.ack = True

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, payload: bytes) -> None:
        self.send_raw(b"$" + payload + b"#" + checksum(payload))
        if self.ack:
            assert self.read_byte() == b"+"

    def read_byte(self) -> bytes:
        if not self.buf:
            self.buf = self.sock.recv(65536)
            if not self.buf:
                raise EOFError("the stub closed the connection")
        byte, self.buf = self.buf[:1], self.buf[1:]
        return byte

    def receive(self) -> bytes:
        """One reply packet's data; its checksum must be right."""
        byte = self.read_byte()
        assert byte == b"$", f"expected a packet, got {byte!r}"
        data = b""
        while (byte := self.read_byte()) != b"#":
            data += byte
        assert self.read_byte() + self.read_byte() == checksum(data), f"bad checksum on {data!r}"
        if self.ack:
            self.send_raw(b"+")
        return data

    def request(self, payload: bytes) -> bytes:
        self.send(payload)
        return self.receive()

    def close(self) -> None:
        self.sock.close()


def stop_registers(reply: bytes) -> dict[str, str]:
    """The ``name:value`` pairs of a ``T`` stop reply (after its signal number)."""
    return dict(pair.split(":", 1) for pair in reply[3:].decode().split(";") if pair)


def unescape(data: bytes) -> bytes:
    out, it = bytearray(), iter(data)
    for b in it:
        out.append(next(it) ^ 0x20 if b == 0x7D else b)
    return bytes(out)
