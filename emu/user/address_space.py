"""A user process's virtual address space: the page map behind ``cpu.memory``.

Linux semantics for ``mmap``/``munmap``/``mprotect``/``brk`` at page
granularity (see mmap(2)).  Each mapping is backed by its own host
``bytearray``; a page's entry in the TLB points into it.  Because user mode
has no page tables, the TLB dictionaries *are* the page map: a miss is a
SIGSEGV-worthy #PF, never a host access.

On x86 every mapped page is readable (PROT_WRITE and PROT_EXEC imply
PROT_READ), which is what the hardware does; PROT_EXEC is honoured for
instruction fetch.
"""

from __future__ import annotations

from cpu.exceptions import GuestFault, PFError, Vector
from cpu.memory import FETCH, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, READ, WRITE, Memory, TlbEntry

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4

USER_TOP = 0x0000_7FFF_FFFF_F000
"""Highest user address + 1 on x86-64 with 4-level paging (Documentation/arch/x86/x86_64/mm.rst)."""

MMAP_BASE = 0x0000_7F00_0000_0000
"""Where anonymous mappings without a hint start, growing down (like Linux's mmap_base)."""


def page_round_up(n: int) -> int:
    return (n + PAGE_MASK) & ~PAGE_MASK


class AddressSpace(Memory):
    """Page map of one process; also the CPU's memory."""

    def __init__(self) -> None:
        super().__init__()
        self.prot: dict[int, int] = {}
        self.pages: dict[int, TlbEntry] = {}
        self.mmap_next = MMAP_BASE
        self.brk_start = 0
        self.brk = 0

    def fill(self, vpn: int, access: int) -> TlbEntry:
        prot = self.prot.get(vpn, 0)
        present = vpn in self.pages
        allowed = bool(prot) and (
            (access == READ) or (access == WRITE and prot & PROT_WRITE) or (access == FETCH and prot & PROT_EXEC))
        if not allowed:
            code = PFError.U | (PFError.P if present else 0)
            code |= PFError.W if access == WRITE else PFError.I if access == FETCH else 0
            raise GuestFault(Vector.PF, code, vpn << PAGE_SHIFT)
        return self.pages[vpn]

    # -- mapping management ------------------------------------------------
    def is_free(self, start: int, length: int) -> bool:
        first, last = start >> PAGE_SHIFT, (start + length - 1) >> PAGE_SHIFT
        return all(v not in self.prot for v in range(first, last + 1))

    def is_mapped(self, start: int, length: int) -> bool:
        first, last = start >> PAGE_SHIFT, (start + length - 1) >> PAGE_SHIFT
        return all(v in self.pages for v in range(first, last + 1))

    def find_free(self, length: int) -> int | None:
        """A free range of ``length`` bytes below the last one handed out (top-down, like Linux)."""
        length = page_round_up(length)
        candidate = self.mmap_next - length
        while candidate > 0x10000:
            if self.is_free(candidate, length):
                self.mmap_next = candidate
                return candidate
            candidate -= PAGE_SIZE
        return None

    def map(self, start: int, length: int, prot: int, data: bytes = b"") -> None:
        """Map fresh zeroed pages at ``start`` (page aligned), replacing what was there."""
        length = page_round_up(length)
        buf = bytearray(length)
        buf[: len(data)] = data
        first = start >> PAGE_SHIFT
        for i in range(length >> PAGE_SHIFT):
            self._place(first + i, (buf, i << PAGE_SHIFT), prot)

    def move(self, start: int, length: int, new_start: int) -> None:
        """Move mapped pages to ``new_start`` with their contents and protection (mremap)."""
        first, new_first = start >> PAGE_SHIFT, new_start >> PAGE_SHIFT
        moved = [(self.pages[first + i], self.prot[first + i]) for i in range(page_round_up(length) >> PAGE_SHIFT)]
        self.unmap(start, length)
        for i, (entry, prot) in enumerate(moved):
            self._place(new_first + i, entry, prot)

    def zero(self, start: int, length: int) -> None:
        """Clear the mapped pages of a range, keeping them mapped (madvise MADV_DONTNEED)."""
        first = start >> PAGE_SHIFT
        for vpn in range(first, first + (page_round_up(length) >> PAGE_SHIFT)):
            if vpn in self.pages:
                self._forget_code(vpn)
                buf, offset = self.pages[vpn]
                buf[offset: offset + PAGE_SIZE] = bytes(PAGE_SIZE)

    def unmap(self, start: int, length: int) -> None:
        first = start >> PAGE_SHIFT
        for i in range(page_round_up(length) >> PAGE_SHIFT):
            self._drop(first + i)

    def protect(self, start: int, length: int, prot: int) -> bool:
        """Change protection; False when part of the range is unmapped (ENOMEM)."""
        if not self.is_mapped(start, length):
            return False
        first = start >> PAGE_SHIFT
        for i in range(page_round_up(length) >> PAGE_SHIFT):
            vpn = first + i
            self.prot[vpn] = prot
            for t in self.tlb:
                t.pop(vpn, None)
        return True

    def _place(self, vpn: int, entry: TlbEntry, prot: int) -> None:
        self._drop(vpn)
        self.pages[vpn] = entry
        self.prot[vpn] = prot

    def _forget_code(self, vpn: int) -> None:
        """The page's contents change behind the TLB: drop any code translated from it."""
        if vpn in self.code_pages:
            self.code_pages.discard(vpn)
            self.on_code_write(vpn)

    def _drop(self, vpn: int) -> None:
        self._forget_code(vpn)
        self.pages.pop(vpn, None)
        self.prot.pop(vpn, None)
        for t in self.tlb:
            t.pop(vpn, None)
