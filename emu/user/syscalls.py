"""Linux x86-64 system calls on the host: the :class:`Kernel` with every handler in its table.

Importing this module imports the handler modules, by topic: ``fileio``
(descriptors and data), ``fs`` (paths and metadata), ``mm`` (the address
space), ``task`` (identity, time, limits, exit), ``signals`` and
``forkexec`` (fork, clone, execve, wait), ``futex`` and ``pifutex``, ``epoll``, ``anonfiles``, ``sockets`` and
``sockmsg`` (AF_UNIX sockets and their messages).  Each registers
its functions by name in ``sysent``'s table, which :meth:`Kernel.handle`
(``emu.user.kernel``) reads.  So the imports run one way: this module on the
handlers, the handlers on the kernel and the table, the kernel on the table.
"""

from __future__ import annotations

from emu.user import (  # noqa: F401  (importing them registers their handlers)
    anonfiles,
    epoll,
    fileio,
    forkexec,
    fs,
    futex,
    mm,
    pifutex,
    signals,
    sockets,
    sockmsg,
    task,
    vsyscall,
)
from emu.user.kernel import Kernel

__all__ = ["Kernel"]
