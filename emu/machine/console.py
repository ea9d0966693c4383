"""The host side of the serial console: the terminal, or a script typed into it.

Interactive (``emu boot`` on a terminal): the terminal goes into raw mode so
every key reaches the guest's UART as typed; Ctrl-A X quits, Ctrl-A Ctrl-A
sends a Ctrl-A (as in QEMU's ``-serial mon:stdio``).  While the guest idles
the host waits in ``select`` on the terminal, so an idle guest costs no host
CPU; when nothing is typed, virtual time then keeps pace with real time.

Scripted (``emu boot --script``): once the guest's ``/init`` prints its marker
line (or an initramfs-tools initrd prompts in its ``(initramfs)`` emergency
shell, where it stops when it cannot mount the root filesystem), the script
is typed into the console as if a person did, and the run ends when the guest
powers off.  Nothing waits on the host, so a scripted run is deterministic.
A scripted run also ends when the guest kernel panics (Linux's closing
``---[ end Kernel panic - not syncing: REASON ]---`` line): a panicked kernel
never reads its console again, so the script could never finish; the run
stops with one line saying why and what to try.  (A kernel booted with
``panic=N`` reboots by itself first; emu stops then too.)
Interactive sessions keep running after a panic, as a PC would, for the
person to read the screen and quit.
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
INITRAMFS_PROMPT = b"(initramfs) "
"""The prompt of an initramfs-tools initrd's busybox shell (its scripts/functions ``panic``)."""
MARKERS = (INIT_MARKER, INITRAMFS_PROMPT)
_OVERLAP = max(map(len, MARKERS)) - 1
"""Bytes of earlier output a marker may begin in."""
PANIC_END = b"---[ end Kernel panic - not syncing: "
PANIC_HINTS = (
    ("Unable to mount root fs", "the kernel found no root filesystem: give it an initramfs (--initrd), or a root "
     "disk it has drivers for and where it is (--machine pc --disk ROOT.img --append root=/dev/vda)"),
    ("No working init found", "the initramfs or root filesystem has no init it could run (/init, /sbin/init)"),
    ("Attempted to kill init", "the initramfs's /init exited or crashed; its messages are above"),
    ("deadlocked on memory", "the guest ran out of memory (a distribution's initramfs unpacks to tens of MiB): "
     "give it more, e.g. --memory 512M"),
    ("Out of memory", "the guest ran out of memory: give it more, e.g. --memory 512M"),
)
"""Panic reasons a user meets first with a kernel or initramfs of their own, and what to do about each."""


def panic_reason(reason: str) -> str:
    """One line for a guest kernel's panic REASON: the reason and, when it is a known one, what to do."""
    for words, hint in PANIC_HINTS:
        if words in reason:
            return f"the guest kernel panicked ({reason}): {hint}"
    return f"the guest kernel panicked ({reason}); the kernel log above says why"
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
    """Watches the console for the guest's /init marker (or an initramfs-tools shell's prompt); then types
    ``script`` (if any) into it.  With a script,
    a kernel panic calls ``panicked`` with the one-line reason.

    ``marker`` records (instructions retired, host seconds) when the marker appeared.
    """

    def __init__(self, script: str | None, feed: Callable[[bytes], None], icount: Callable[[], int],
                 panicked: Callable[[str], None] | None = None) -> None:
        self.script = None if script is None else script if script.endswith("\n") else script + "\n"
        self.feed = feed
        self.icount = icount
        self.panicked = panicked if script is not None else None
        self.start = time.perf_counter()
        self.seen = b""
        self.line = bytearray()
        self.marker: tuple[int, float] | None = None

    def watch(self, data: bytes) -> None:
        """Called with every byte the guest writes to the console."""
        if self.panicked is not None:
            self._watch_panic(data)
        if self.marker is not None:
            return
        seen = self.seen + data        # a marker is looked for where it may end: in what came now
        if any(marker in seen for marker in MARKERS):
            self.marker = (self.icount(), time.perf_counter() - self.start)
            if self.script is not None:
                self.feed(self.script.encode())
        self.seen = seen[-_OVERLAP:]

    def _watch_panic(self, data: bytes) -> None:
        self.line += data
        if b"\n" not in data:          # a line is looked at once it ends (the guest writes a byte at a time)
            if len(self.line) > 4096:
                del self.line[:-4096]
            return
        *lines, rest = self.line.split(b"\n")
        self.line = bytearray(rest[-4096:])
        for line in lines:
            start = line.find(PANIC_END)
            if start >= 0 and self.panicked is not None:
                reason = line[start + len(PANIC_END):].decode(errors="replace").strip().removesuffix("]---")
                self.panicked(panic_reason(reason.strip()))
                self.panicked = None
