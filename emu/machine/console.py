"""The host side of the serial console: the terminal, or a script typed into it.

Interactive (``emu boot`` on a terminal): the terminal goes into raw mode so
every key reaches the guest's UART as typed; Ctrl-A X quits, Ctrl-A Ctrl-A
sends a Ctrl-A (as in QEMU's ``-serial mon:stdio``).  While the guest idles
the host waits in ``select`` on the terminal, so an idle guest costs no host
CPU; when nothing is typed, virtual time then keeps pace with real time.

Scripted (``emu boot --script``): once the guest's ``/init`` prints its marker
line, the script is typed into the console as if a person did, and the run
ends when the guest powers off.  Nothing waits on the host, so a scripted run
is deterministic.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable

INIT_MARKER = b"emu-guest: init reached"
CTRL_A = 0x01


class TerminalConsole:
    """Raw-mode terminal <-> UART, with the Ctrl-A escape."""

    def __init__(self, feed: Callable[[bytes], None], fd: int | None = None) -> None:
        self.feed = feed
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.saved = termios.tcgetattr(self.fd) if os.isatty(self.fd) else None
        self.escape = False
        self.quit = False
        self.eof = False

    def __enter__(self) -> TerminalConsole:
        if self.saved is not None:
            tty.setraw(self.fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)

    def poll(self, timeout: float = 0.0) -> None:
        """Move whatever the user typed into the guest, waiting at most ``timeout`` seconds for it."""
        if self.eof:
            if timeout:
                time.sleep(timeout)
            return
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return
        data = os.read(self.fd, 4096)
        if not data:
            self.eof = True
            return
        out = bytearray()
        for byte in data:
            if self.escape:
                self.escape = False
                if byte in (ord("x"), ord("X")):
                    self.quit = True
                    break
                out.append(byte)
            elif byte == CTRL_A:
                self.escape = True
            else:
                out.append(byte)
        if out:
            self.feed(bytes(out))

    def idle(self, ns: int) -> None:
        self.poll(min(ns / 1e9, 0.05))


class ScriptConsole:
    """Watches the console for the guest's /init marker; then types ``script`` (if any) into it.

    ``marker`` records (instructions retired, host seconds) when the marker appeared.
    """

    def __init__(self, script: str | None, feed: Callable[[bytes], None], icount: Callable[[], int]) -> None:
        self.script = None if script is None else script if script.endswith("\n") else script + "\n"
        self.feed = feed
        self.icount = icount
        self.start = time.perf_counter()
        self.seen = bytearray()
        self.marker: tuple[int, float] | None = None

    def watch(self, data: bytes) -> None:
        """Called with every byte the guest writes to the console."""
        if self.marker is not None:
            return
        self.seen += data
        if INIT_MARKER in self.seen:
            self.marker = (self.icount(), time.perf_counter() - self.start)
            if self.script is not None:
                self.feed(self.script.encode())
        elif len(self.seen) > 4096:
            del self.seen[:-len(INIT_MARKER)]
