"""The files of ``/proc/self`` that must show the guest, not the emulator: ``maps`` and ``auxv``.

Follows proc(5): ``/proc/self/maps`` has one line per run of pages with the
same protection, ``start-end perms offset dev inode pathname`` in hex, with
``p`` (private) for every mapping; ``[heap]`` and ``[stack]`` name the
program break's pages and the stack.  ``/proc/self/auxv`` is the auxiliary
vector as the process received it: (key, value) pairs of 64-bit words ending
with AT_NULL.  Each open gets a snapshot taken at open time, in an anonymous
host file (memfd), so reads, seeks and fstat work as on any file.

Not modelled: file names, offsets and inode numbers of file mappings (a
mapping keeps no record of its file: every line but the heap and stack has
an empty name), ``[vdso]`` (there is none).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from cpu.memory import PAGE_SHIFT, PAGE_SIZE
from emu.user.address_space import PROT_EXEC, PROT_READ, PROT_WRITE
from emu.user.loader import STACK_SIZE, STACK_TOP

if TYPE_CHECKING:
    from emu.user.kernel import Kernel

MAPS, AUXV = b"/proc/self/maps", b"/proc/self/auxv"


def maps(k: Kernel) -> bytes:
    """The text of /proc/self/maps for the guest's address space."""
    runs: list[list[int]] = []          # [first vpn, end vpn, prot]
    for vpn in sorted(k.mem.prot):
        prot = k.mem.prot[vpn]
        if runs and runs[-1][1] == vpn and runs[-1][2] == prot:
            runs[-1][1] = vpn + 1
        else:
            runs.append([vpn, vpn + 1, prot])
    heap = (k.mem.brk_start >> PAGE_SHIFT, (k.mem.brk + PAGE_SIZE - 1) >> PAGE_SHIFT)
    stack = ((STACK_TOP - STACK_SIZE) >> PAGE_SHIFT, STACK_TOP >> PAGE_SHIFT)
    lines = []
    for first, end, prot in runs:
        perms = "".join(c if prot & bit else "-" for c, bit in (("r", PROT_READ), ("w", PROT_WRITE),
                                                                  ("x", PROT_EXEC))) + "p"
        name = "[heap]" if heap[0] <= first < heap[1] else "[stack]" if stack[0] <= first < stack[1] else ""
        head = f"{first << PAGE_SHIFT:08x}-{end << PAGE_SHIFT:08x} {perms} 00000000 00:00 0"
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
