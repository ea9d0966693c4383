"""The guest's root for absolute paths: ``emu run -L DIR`` or ``EMU_LD_PREFIX``, like QEMU's ``-L``.

An x86-64 program on a host of another architecture needs x86-64 libraries:
the dynamic linker its PT_INTERP names and the shared objects that linker
opens by absolute path.  As in qemu-user (``util/path.c``), an absolute path
that exists under the sysroot is used from there; any other path is the
host's.  The default sysroot, ``/``, changes nothing.

Not modelled: relative paths and ``..`` are never mapped (a program that
chdirs into the sysroot sees host paths), nor are symbolic links inside the
sysroot that point to absolute targets.
"""

from __future__ import annotations

import os


class Sysroot:
    """Maps guest absolute paths into a host directory when they exist there."""

    def __init__(self, prefix: str | bytes | None = None) -> None:
        root = os.fsencode(prefix or "/").rstrip(b"/")
        self.prefix = root
        """The directory without its trailing slash; empty for ``/``, which maps nothing."""

    def usable(self) -> bool:
        """Whether the directory can be searched (qemu silently uses host paths when it cannot)."""
        return not self.prefix or (os.path.isdir(self.prefix) and os.access(self.prefix, os.R_OK | os.X_OK))

    def map(self, path: bytes) -> bytes:
        """The host path for the guest path ``path``."""
        if self.prefix and path.startswith(b"/"):
            candidate = self.prefix + path
            if os.path.lexists(candidate):
                return candidate
        return path
