"""The files of ``/proc/self`` that must show the guest, not the emulator: ``maps`` and ``auxv``.

Follows proc(5): ``/proc/self/maps`` has one line per mapping,
``start-end perms offset dev inode pathname`` in hex, with ``p`` (private) or
``s`` (MAP_SHARED, ``emu.user.sharedmem``); ``[heap]`` and ``[stack]`` name the program break's pages and
the stack, a file mapping its host path and file offset; the last line is the
execute-only ``[vsyscall]`` page (``emu.user.vsyscall``).  ``/proc/self/auxv`` is the auxiliary
vector as the process received it: (key, value) pairs of 64-bit words ending
with AT_NULL.  Each open gets a snapshot taken at open time, in an anonymous
host file (memfd), so reads, seeks and fstat work as on any file.

Not modelled: device and inode numbers of file mappings, the names of the
program's own segments (mapped by the loader, not from a descriptor), ``[vdso]``
(there is none).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cpu.memory import PAGE_SIZE
from emu.user.address_space import PROT_EXEC, PROT_READ, PROT_WRITE
from emu.user.vsyscall import VSYSCALL_PAGE

if TYPE_CHECKING:
    from emu.user.kernel import Kernel

MAPS, AUXV = b"/proc/self/maps", b"/proc/self/auxv"


def maps(k: Kernel) -> bytes:
    """The text of /proc/self/maps for the guest's address space: one line per mapping, adjacent
    anonymous mappings with the same protection and name printed as one (as Linux merges them)."""
    runs: list[list] = []          # [start, end, prot, offset, name, file or shared?, shared?]
    for vma in k.mem.vmas:
        last = runs[-1] if runs else None
        backed = vma.source is not None or vma.shared is not None
        if (last is not None and last[1] == vma.start and last[2] == vma.prot and last[4] == vma.name
                and not last[5] and not backed):
            last[1] = vma.end
        else:
            runs.append([vma.start, vma.end, vma.prot, vma.offset if backed else 0, vma.name, backed,
                         vma.shared is not None])
    runs.append([VSYSCALL_PAGE, VSYSCALL_PAGE + PAGE_SIZE, PROT_EXEC, 0, "[vsyscall]", False, False])
    lines = []
    for start, end, prot, offset, name, _, shared in runs:
        perms = "".join(c if prot & bit else "-" for c, bit in (("r", PROT_READ), ("w", PROT_WRITE),
                                                                  ("x", PROT_EXEC))) + ("s" if shared else "p")
        head = f"{start:08x}-{end:08x} {perms} {offset:08x} 00:00 0"
        lines.append(f"{head:<73}{name}".rstrip() + "\n")
    return "".join(lines).encode()


def auxv(k: Kernel) -> bytes:
    """The bytes of /proc/self/auxv."""
    words = [w for key, value in k.auxv.items() for w in (key, value)] + [0, 0]
    return b"".join(w.to_bytes(8, "little") for w in words)


FILES = {MAPS: maps, AUXV: auxv}


def open_file(k: Kernel, name: bytes) -> int:
    """A host descriptor, at offset 0, of a snapshot of the /proc/self file ``name``."""
    fd = os.memfd_create(os.fsdecode(name.rsplit(b"/", 1)[1]), os.MFD_CLOEXEC)
    os.write(fd, FILES[name](k))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
