"""A user process's virtual address space: mappings (VMAs) and the pages behind ``cpu.memory``.

Follows Linux's memory model for one process (mmap(2), mprotect(2), proc(5) ``maps``,
Documentation/mm/overcommit-accounting.rst): the address space is a sorted list of mappings
(:class:`Vma`: a page-aligned range with one protection and one backing), and a mapping is only a
promise.  A page gets host memory, a 4 KiB ``bytearray`` of its own, on the first write (anonymous
memory) or the first touch (file memory, read from the file then).  A read of an anonymous page never
written is served by one shared page of zeros, which only ever enters the read and fetch TLBs, as
Linux maps its zero page.  So a 2^36-byte PROT_NONE reservation costs one list entry, and dropping a
page (munmap, MADV_DONTNEED) gives its host memory back.

The TLB dictionaries of ``cpu.memory`` cache what :meth:`AddressSpace.fill` decided; every change of a
mapping goes through :meth:`AddressSpace._invalidate`, which removes the range's TLB entries (and so
the JIT's native copies, through ``TlbDict``) and drops the code translated from its pages, so code
that was unmapped, made non-executable or replaced stops running.

Limits, as Linux applies them: RLIMIT_AS caps the total size of the mappings (ENOMEM), RLIMIT_DATA that of
the private writable ones that are not stacks (ENOMEM, ``may_expand_vm``), RLIMIT_STACK how far the stack
(or a MAP_GROWSDOWN mapping) grows down on a fault below it.  Writable private memory without MAP_NORESERVE is
committed when mapped, and the commitment is capped at ``max_memory`` (ENOMEM), as the kernel's
overcommit accounting does with ``vm.overcommit_memory=2``; the pages the guest actually holds are
capped at ``max_memory`` too, and going past that ends the process as Linux's OOM killer would
(:class:`MemoryExhausted`).

On x86 every mapped page is readable (PROT_WRITE and PROT_EXEC imply PROT_READ), which is what the
hardware does; PROT_EXEC is honoured for instruction fetch.

A MAP_SHARED mapping's pages are a host file's (``emu.user.sharedmem``): they are never in ``frames`` and
never in a TLB dictionary, so every access asks :meth:`AddressSpace.fill`, which hands the slow path the
:class:`SharedPages` and the file offset.  A page of a file mapping wholly past the end of the file is
SIGBUS (:class:`BusError`), as Linux's fault handler has it.  A store to shared memory drops the code
translated from executable shared pages, which it may reach through another mapping of the same file (a JIT
that writes its code through a writable alias); a store by another process does not.

Not modelled: merging of adjacent mappings (``maps`` prints runs merged instead), vm.max_map_count,
the stack guard gap below other mappings than the stack, SIGBUS for a file page that cannot be read
(an I/O error: it reads as zeros).
"""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections.abc import Collection
from dataclasses import dataclass, replace

from cpu.exceptions import GuestFault, PFError, Vector
from cpu.memory import FETCH, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, READ, WRITE, Memory, TlbEntry
from emu.user.linux import Errno, SyscallError
from emu.user.sharedmem import BusError, SharedLock, SharedPages, page_offset

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4

USER_TOP = 0x0000_7FFF_FFFF_F000
"""Highest user address + 1 on x86-64 with 4-level paging (Documentation/arch/x86/x86_64/mm.rst)."""

MMAP_BASE = 0x0000_7F00_0000_0000
"""Where mappings without a hint go: the highest free range below this (like Linux's mmap_base)."""
MMAP_MIN_ADDR = 0x10000
"""Lowest address mmap hands out (Linux's default vm.mmap_min_addr)."""

RLIMIT_DATA, RLIMIT_STACK, RLIMIT_AS = 2, 3, 9
RLIM_INFINITY = (1 << 64) - 1
DEFAULT_STACK_LIMIT = 8 << 20
"""RLIMIT_STACK's default soft limit: 8 MiB."""
STACK_GUARD_GAP = 256 << PAGE_SHIFT
"""stack_guard_gap: the stack does not grow to within 1 MiB of the mapping below it."""

DEFAULT_MAX_MEMORY = 8 << 30
"""The default cap on committed and held guest memory per process (``emu run --max-memory``)."""

ZERO_PAGE = bytearray(PAGE_SIZE)
"""The page every never-written anonymous page reads as; it is never in a write TLB."""


def page_round_up(n: int) -> int:
    return (n + PAGE_MASK) & ~PAGE_MASK


def default_max_memory() -> int:
    """:data:`DEFAULT_MAX_MEMORY`, or half the host's RAM when that is less."""
    try:
        ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return DEFAULT_MAX_MEMORY
    return min(DEFAULT_MAX_MEMORY, ram // 2)


class MemoryExhausted(Exception):
    """The guest holds more memory than ``max_memory``: the process ends (with SIGKILL, as by the OOM killer)."""


class FileSource:
    """The file behind a private file mapping: its bytes are read when a page is first touched, and again
    after MADV_DONTNEED.  Holds a host descriptor of its own (closed with the last mapping of it), or, when
    the process has no descriptor to spare, a copy of the bytes taken at mmap time."""

    def __init__(self, host: int, name: str = "") -> None:
        self.name = name
        self.snapshot: bytes | None = None
        self.offset = 0
        self.snapshot_size = 0
        """The file's size when the snapshot was taken."""
        try:
            self.fd: int | None = os.dup(host)
        except OSError:
            self.fd = None

    def take_snapshot(self, host: int, offset: int, length: int) -> None:
        """Without a descriptor of its own: copy the bytes a mapping of ``length`` at ``offset`` shows."""
        self.snapshot = os.pread(host, length, offset)
        self.offset = offset
        self.snapshot_size = os.fstat(host).st_size

    def size(self) -> int:
        """The file's size now (at mmap time for a snapshot)."""
        return os.fstat(self.fd).st_size if self.fd is not None else self.snapshot_size

    def page(self, offset: int) -> bytearray:
        """The 4 KiB at file ``offset`` (zeros past the end of the file, or where it cannot be read)."""
        if self.fd is not None:
            try:
                data = os.pread(self.fd, PAGE_SIZE, offset)
            except OSError:             # an I/O error: Linux sends SIGBUS, which is not modelled
                data = b""
        else:
            assert self.snapshot is not None
            data = self.snapshot[offset - self.offset: offset - self.offset + PAGE_SIZE]
        page = bytearray(PAGE_SIZE)
        page[:len(data)] = data
        return page

    def __del__(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


@dataclass(eq=False)
class Vma:
    """One mapping: [start, end) with one protection; file pages come from ``source`` at ``offset``."""

    start: int
    end: int
    prot: int
    source: FileSource | None = None
    offset: int = 0
    """The file offset of ``start`` (file mappings)."""
    noreserve: bool = False
    growsdown: bool = False
    name: str = ""
    shared: SharedPages | None = None
    """The host file of a MAP_SHARED mapping (``emu.user.sharedmem``); its pages are never in ``frames``."""

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def data(self) -> bool:
        """What RLIMIT_DATA counts: writable, private and not a stack (mm/internal.h ``is_data_mapping``)."""
        return bool(self.prot & PROT_WRITE) and self.shared is None and not self.growsdown

    @property
    def accountable(self) -> bool:
        """Counted in the commitment: writable memory without MAP_NORESERVE, private (mm/mmap.c) or shared
        anonymous memory (shmem's own accounting); a shared file mapping's pages are the file's."""
        return (bool(self.prot & PROT_WRITE) and not self.noreserve
                and (self.shared is None or self.shared.anonymous))

    def piece(self, start: int, end: int) -> Vma:
        return replace(self, start=start, end=end, offset=self.offset + (start - self.start))


def _within(keys: Collection[int], first: int, end: int) -> list[int]:
    """The members of ``keys`` (a set or a dictionary's keys) in [first, end), looping over whichever of the
    two is smaller."""
    if end - first <= len(keys):
        return [v for v in range(first, end) if v in keys]
    return [v for v in keys if first <= v < end]


class AddressSpace(Memory):
    """The mappings and pages of one process; also the CPU's memory."""

    def __init__(self, max_memory: int | None = None) -> None:
        super().__init__()
        self.vmas: list[Vma] = []
        self.starts: list[int] = []
        """``vma.start`` of each mapping, for bisection."""
        self.frames: dict[int, bytearray] = {}
        """Virtual page -> the host page that holds it (pages with host memory only)."""
        self.mmap_base = MMAP_BASE
        self.brk_start = 0
        self.brk = 0
        self.max_memory = default_max_memory() if max_memory is None else max_memory
        self.rlimits: dict[int, tuple[int, int]] = {}
        """The guest's resource limits (the kernel's, shared), for RLIMIT_AS and RLIMIT_STACK."""
        self.total = 0
        """Bytes mapped (what RLIMIT_AS limits)."""
        self.committed = 0
        """Bytes of accountable mappings (what ``max_memory`` limits at mmap time)."""
        self.data = 0
        """Bytes of data mappings (:attr:`Vma.data`: what RLIMIT_DATA limits, Linux's ``data_vm``)."""
        self.data_size = 0
        """The program's ``end_data - start_data`` (fs/binfmt_elf.c), which brk's RLIMIT_DATA check adds."""
        self.shared_lock = SharedLock()
        """The lock of the shared memory this process is using (``emu.user.sharedmem``)."""
        self.shares = False
        """A MAP_SHARED mapping was made (so guest code runs in slices of ``SHARED_SLICE``)."""
        self.shared_code = False
        """An executable MAP_SHARED mapping was made (so stores to shared memory drop code translated from it)."""

    def limit(self, resource: int, default: int = RLIM_INFINITY) -> int:
        return self.rlimits.get(resource, (default, RLIM_INFINITY))[0]

    # -- the TLB's source ----------------------------------------------------
    def fill(self, vpn: int, access: int) -> TlbEntry:
        vma = self.vma_at(vpn << PAGE_SHIFT) or self._grow_stack(vpn << PAGE_SHIFT)
        prot = vma.prot if vma is not None else 0
        allowed = bool(prot) and (
            (access == READ) or (access == WRITE and prot & PROT_WRITE) or (access == FETCH and prot & PROT_EXEC))
        if not allowed:
            code = PFError.U | (PFError.P if vma is not None else 0)
            code |= PFError.W if access == WRITE else PFError.I if access == FETCH else 0
            raise GuestFault(Vector.PF, code, vpn << PAGE_SHIFT)
        assert vma is not None
        if vma.shared is not None:
            offset = page_offset(vpn, vma.start, vma.offset)
            vma.shared.check(offset, vpn << PAGE_SHIFT, self.pf_error(access, present=True))
            if access == WRITE and self.shared_code:
                self._drop_shared_code()
            return (vma.shared, offset)     # type: ignore[return-value]  # a slow-path entry (cpu.memory.TlbEntry)
        frame = self.frames.get(vpn)
        if frame is None:
            if access != WRITE and vma.source is None:
                return (ZERO_PAGE, 0)
            if vma.source is not None and page_offset(vpn, vma.start, vma.offset) >= vma.source.size():
                raise BusError(vpn << PAGE_SHIFT, self.pf_error(access, present=True))
            frame = self._allocate(vma, vpn)
        return (frame, 0)

    def _allocate(self, vma: Vma, vpn: int) -> bytearray:
        """Give page ``vpn`` of ``vma`` host memory: zeros, or the file's bytes."""
        if len(self.frames) >= self.max_memory >> PAGE_SHIFT:
            raise MemoryExhausted(f"the guest needs more than {self.max_memory >> 20} MiB of memory "
                                  f"(emu run --max-memory)")
        if vma.source is not None:
            frame = vma.source.page(vma.offset + (vpn << PAGE_SHIFT) - vma.start)
        else:
            frame = bytearray(PAGE_SIZE)
        self.frames[vpn] = frame
        for t in (self.tlb[READ], self.tlb[FETCH]):     # they may hold the zero page
            t.pop(vpn, None)
        return frame

    def _drop_shared_code(self) -> None:
        """A store to shared memory: the code translated from executable shared pages goes, since the store
        may reach them through another mapping of the same file (a JIT's writable alias of its code)."""
        for vpn in [v for v in self.code_pages if (vma := self.vma_at(v << PAGE_SHIFT)) and vma.shared]:
            self.code_pages.discard(vpn)
            self.on_code_write(vpn)

    def _grow_stack(self, address: int) -> Vma | None:
        """A fault just below a grows-down mapping extends it, within RLIMIT_STACK and RLIMIT_AS and not
        within the guard gap of the mapping below (mm/mmap.c ``expand_downwards``)."""
        i = bisect_right(self.starts, address)
        if i >= len(self.vmas) or not self.vmas[i].growsdown:
            return None
        vma = self.vmas[i]
        start = address & ~PAGE_MASK
        below = self.vmas[i - 1].end if i > 0 else 0
        grow = vma.start - start
        if (vma.end - start > self.limit(RLIMIT_STACK, DEFAULT_STACK_LIMIT) or start < below + STACK_GUARD_GAP
                or not self._fits(grow, grow if vma.accountable else 0)):
            return None
        self.total += grow
        self.committed += grow if vma.accountable else 0
        vma.start = self.starts[i] = start
        return vma

    # -- queries ---------------------------------------------------------------
    def vma_at(self, address: int) -> Vma | None:
        i = bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.vmas[i].end:
            return self.vmas[i]
        return None

    def prot_at(self, address: int) -> int | None:
        """The protection of the page holding ``address``, None when it is not mapped."""
        vma = self.vma_at(address)
        return None if vma is None else vma.prot

    def is_free(self, start: int, length: int) -> bool:
        i = bisect_left(self.starts, start + length) - 1
        return i < 0 or self.vmas[i].end <= start

    def is_mapped(self, start: int, length: int) -> bool:
        """Whether every page of the range is mapped (by one mapping or adjacent ones)."""
        end, at = start + length, start
        i = bisect_right(self.starts, start) - 1
        while at < end:
            if i < 0 or i >= len(self.vmas) or self.vmas[i].start > at or self.vmas[i].end <= at:
                return False
            at = self.vmas[i].end
            i += 1
        return True

    def find_free(self, length: int) -> int | None:
        """The highest free range of ``length`` bytes below the mmap base (top-down, like Linux)."""
        length = page_round_up(length)
        top = self.mmap_base
        i = bisect_left(self.starts, top) - 1
        while True:
            low = max(self.vmas[i].end if i >= 0 else 0, MMAP_MIN_ADDR)
            if low < top and top - low >= length:
                return top - length
            if i < 0:
                return None
            top = min(top, self.vmas[i].start)
            i -= 1

    # -- changes -----------------------------------------------------------------
    def map(self, start: int, length: int, prot: int, data: bytes | bytearray = b"", *,
            source: FileSource | None = None, offset: int = 0, noreserve: bool = False, growsdown: bool = False,
            name: str = "", shared: SharedPages | None = None) -> None:
        """Map fresh pages at ``start`` (page aligned), replacing what was there: zeros (anonymous memory)
        or ``source`` from ``offset``; ``data`` is written over the start (the loader's segments).

        Raises ``SyscallError(ENOMEM)`` past RLIMIT_AS or the commitment limit, changing nothing.
        """
        length = page_round_up(length)
        vma = Vma(start, start + length, prot, source, offset, noreserve, growsdown, name, shared)
        old = self._overlap(start, start + length)
        if not self._fits(length - sum(v.size for v in old),
                          (length if vma.accountable else 0) - sum(v.size for v in old if v.accountable),
                          (length if vma.data else 0) - sum(v.size for v in old if v.data)):
            raise SyscallError(Errno.ENOMEM)
        self.unmap(start, length)
        self._insert(vma)
        self.shares = self.shares or shared is not None
        self.shared_code = self.shared_code or (shared is not None and bool(prot & PROT_EXEC))
        for at in range(0, len(data), PAGE_SIZE):
            chunk = data[at: at + PAGE_SIZE]
            if chunk.count(0) != len(chunk):
                frame = self._allocate(vma, (start + at) >> PAGE_SHIFT)
                frame[:len(chunk)] = chunk

    def unmap(self, start: int, length: int) -> None:
        end = start + page_round_up(length)
        for vma in self._carve(start, end):
            self._remove(vma)
        for vpn in _within(self.frames, start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            del self.frames[vpn]
        self._invalidate(start, end)

    def protect(self, start: int, length: int, prot: int) -> bool:
        """Change protection; False when part of the range is unmapped (ENOMEM).  Raises
        ``SyscallError(ENOMEM)`` when making memory writable would pass the commitment limit."""
        end = start + page_round_up(length)
        if not self.is_mapped(start, end - start):
            return False
        old = self._overlap(start, end)
        newly = sum(v.size for v in old if not v.accountable and replace(v, prot=prot).accountable)
        freed = sum(v.size for v in old if v.accountable and not replace(v, prot=prot).accountable)
        data = sum(v.size for v in old if not v.data and replace(v, prot=prot).data)
        if not self._fits(0, newly - freed, data):
            raise SyscallError(Errno.ENOMEM)
        self.shared_code = self.shared_code or bool(prot & PROT_EXEC and any(v.shared for v in old))
        changed = [v for v in self._carve(start, end) if v.prot != prot]
        for vma in changed:
            self.committed += (replace(vma, prot=prot).accountable - vma.accountable) * vma.size
            self.data += (replace(vma, prot=prot).data - vma.data) * vma.size
            vma.prot = prot
            self._invalidate(vma.start, vma.end)
        return True

    def shared_without_write(self, start: int, length: int) -> bool:
        """Whether part of the range is a shared mapping of a file not open for writing (mprotect: EACCES)."""
        return any(v.shared is not None and not v.shared.writable for v in self._overlap(start, start + length))

    def discard(self, start: int, length: int) -> bool:
        """MADV_DONTNEED: drop the pages' contents, so they read as zeros (anonymous memory) or as the
        file's bytes (file mappings) again; False when part of the range is unmapped (ENOMEM)."""
        end = start + page_round_up(length)
        for vpn in _within(self.frames, start >> PAGE_SHIFT, end >> PAGE_SHIFT):
            if self.vma_at(vpn << PAGE_SHIFT) is not None:
                del self.frames[vpn]
        self._invalidate(start, end)
        return self.is_mapped(start, end - start)

    def move(self, start: int, length: int, new_start: int) -> None:
        """Move the mappings of a range to ``new_start`` with their pages (mremap); the destination is
        replaced.  The caller has checked that the ranges do not overlap."""
        end = start + page_round_up(length)
        shift = new_start - start
        pieces = self._carve(start, end)
        for vma in pieces:
            self._remove(vma)
        frames = {vpn: self.frames.pop(vpn) for vpn in _within(self.frames, start >> PAGE_SHIFT, end >> PAGE_SHIFT)}
        self._invalidate(start, end)
        self.unmap(new_start, end - start)
        for vma in pieces:
            self._insert(replace(vma, start=vma.start + shift, end=vma.end + shift))
        self.frames.update({vpn + (shift >> PAGE_SHIFT): frame for vpn, frame in frames.items()})

    def grow(self, vma: Vma, new_end: int) -> None:
        """Extend ``vma`` in place up to ``new_end`` (mremap); the caller checked the range is free and
        the limits (:meth:`fits`)."""
        extra = new_end - vma.end
        self.total += extra
        self.committed += extra if vma.accountable else 0
        self.data += extra if vma.data else 0
        vma.end = new_end

    def fits(self, vma: Vma, extra: int) -> bool:
        """Whether ``vma`` may get ``extra`` more bytes within RLIMIT_AS, RLIMIT_DATA and the commitment limit."""
        return self._fits(extra, extra if vma.accountable else 0, extra if vma.data else 0)

    # -- the list of mappings --------------------------------------------------
    def _fits(self, more: int, commit: int, data: int = 0) -> bool:
        return (self.total + more <= self.limit(RLIMIT_AS) and self.committed + commit <= self.max_memory
                and (data <= 0 or self._data_fits(data)))

    def _data_fits(self, data: int) -> bool:
        """RLIMIT_DATA as ``may_expand_vm`` applies it: a soft limit of 0 lets the hard limit hold instead."""
        soft, hard = self.rlimits.get(RLIMIT_DATA, (RLIM_INFINITY, RLIM_INFINITY))
        return self.data + data <= soft or (soft == 0 and self.data + data <= hard)

    def _overlap(self, start: int, end: int) -> list[Vma]:
        """The parts of mappings inside [start, end) (copies: nothing changes)."""
        i = max(bisect_right(self.starts, start) - 1, 0)
        out = []
        while i < len(self.vmas) and self.vmas[i].start < end:
            v = self.vmas[i]
            if v.end > start:
                out.append(v.piece(max(v.start, start), min(v.end, end)))
            i += 1
        return out

    def _split(self, address: int) -> None:
        """Make ``address`` a boundary between mappings, when a mapping spans it."""
        i = bisect_right(self.starts, address) - 1
        if i >= 0 and self.vmas[i].start < address < self.vmas[i].end:
            vma = self.vmas[i]
            upper = vma.piece(address, vma.end)
            vma.end = address
            self.vmas.insert(i + 1, upper)
            self.starts.insert(i + 1, address)

    def _carve(self, start: int, end: int) -> list[Vma]:
        """The mappings inside [start, end), split at its ends."""
        self._split(start)
        self._split(end)
        i, j = bisect_left(self.starts, start), bisect_left(self.starts, end)
        return self.vmas[i:j]

    def _insert(self, vma: Vma) -> None:
        i = bisect_left(self.starts, vma.start)
        self.vmas.insert(i, vma)
        self.starts.insert(i, vma.start)
        self.total += vma.size
        self.committed += vma.size if vma.accountable else 0
        self.data += vma.size if vma.data else 0

    def _remove(self, vma: Vma) -> None:
        i = bisect_left(self.starts, vma.start)
        del self.vmas[i]
        del self.starts[i]
        self.total -= vma.size
        self.committed -= vma.size if vma.accountable else 0
        self.data -= vma.size if vma.data else 0

    def _invalidate(self, start: int, end: int) -> None:
        """The one place a change of mappings reaches the CPU: the TLB entries of [start, end) go (the JIT's
        native copies with them, through ``TlbDict``), and so do the translations of code in it."""
        first, last = start >> PAGE_SHIFT, end >> PAGE_SHIFT
        for vpn in _within(self.code_pages, first, last):
            self.code_pages.discard(vpn)
            self.on_code_write(vpn)
        for t in self.tlb:
            for vpn in _within(t, first, last):
                t.pop(vpn, None)
