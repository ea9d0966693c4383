"""The cap on guest processes: how many emulator processes one ``emu run`` may grow into.

Linux stops a fork bomb with RLIMIT_NPROC (fork(2): EAGAIN), which does not hold for root and counts
every process of the user.  A guest process is a whole emulator (a host process of 50-100 MB), so emu
caps its own process tree: ``emu run --max-processes N`` (default :data:`DEFAULT_MAX_PROCESSES`) lets at
most N emulator processes of one run live at once, and a fork past that fails with EAGAIN, as Linux's
does at RLIMIT_NPROC.

The count is a pipe of tokens, made by the first emulator of the run with N - 1 tokens in it (the
first process holds one itself).  A fork takes a token for the child (a non-blocking read: no token,
EAGAIN); a process gives its token back when it ends (exit, death by the guest's signal, a failed
execve).  An execve keeps the token: the pipe's descriptors go to the new emulator
(``--process-slots=R,W``, moved above every guest descriptor first).

Not modelled: a token is lost when an emulator process is killed from outside by SIGKILL, or when the
host's own fork fails after the token was taken (the cap then shrinks by one for the rest of the run);
the guest's own RLIMIT_NPROC.
"""

from __future__ import annotations

import atexit
import fcntl
import os

DEFAULT_MAX_PROCESSES = 64


class ProcessLimit:
    """This emulator process's place in the run's process cap."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd
        self.holding = True
        """Whether this process holds a token (until it gives it back); a forked child holds the one its parent
        took for it."""
        atexit.register(self.release)

    @classmethod
    def start(cls, limit: int) -> ProcessLimit:
        """The first emulator of a run: a fresh pipe with ``limit - 1`` tokens for the processes to come."""
        if limit < 1:
            raise ValueError("the process limit must be at least 1")
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, max(limit, 4096))
        os.write(write_fd, b"t" * (limit - 1))
        return cls(read_fd, write_fd)

    @classmethod
    def adopt(cls, slots: str) -> ProcessLimit:
        """An emulator started by an execve: the pipe named by ``--process-slots=R,W``, with the token the
        process already holds."""
        read_fd, write_fd = (int(fd) for fd in slots.split(","))
        for fd in (read_fd, write_fd):
            os.set_inheritable(fd, False)
        return cls(read_fd, write_fd)

    def take(self) -> bool:
        """A token for a child about to be forked; False when the cap is reached."""
        try:
            return os.read(self.read_fd, 1) == b"t"
        except BlockingIOError:
            return False

    def release(self) -> None:
        """This process ends: its token goes back (once)."""
        if self.holding:
            self.holding = False
            try:
                os.write(self.write_fd, b"t")
            except OSError:
                pass

    def for_exec(self, above: int) -> str:
        """Before an execve: move the descriptors above ``above`` (every guest descriptor), make them
        inheritable, and return the ``--process-slots`` value naming them."""
        for name in ("read_fd", "write_fd"):
            old = getattr(self, name)
            new = fcntl.fcntl(old, fcntl.F_DUPFD_CLOEXEC, above + 1)
            os.close(old)
            os.set_inheritable(new, True)
            setattr(self, name, new)
        return f"{self.read_fd},{self.write_fd}"
