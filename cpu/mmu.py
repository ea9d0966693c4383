"""The MMU of system mode: 4-level paging over guest physical memory (Intel SDM Vol. 3A ch. 4).

:class:`Mmu` is the :class:`cpu.memory.Memory` of a whole machine.  A TLB
miss walks the paging structures in guest RAM (SDM 4.5: PML4E, PDPTE, PDE,
PTE; 1 GiB pages at the PDPTE, 2 MiB pages at the PDE), checks the access
rights of SDM 4.6, sets the accessed and dirty flags of SDM 4.8 in the
entries in RAM, and caches the 4 KiB piece of the page that was asked for.
A refused access is a #PF whose error code follows SDM 4.7 (P, W/R, U/S,
RSVD, I/D); ``Memory.entry`` puts the faulting byte's address in it, which
delivery copies into CR2.

:meth:`Mmu.walk` is the one page walker: the TLB fill uses it, and so do
debugger views (``pagewalk``, ``info tlb``, ``info mem``) with ``dry=True``,
which leaves the A/D flags alone.  A :class:`Walk` records every entry read,
its decoded flags, and where and why the walk stopped.

TLBs (SDM 4.10).  One set of the three dictionaries per privilege class:
supervisor (CPL 0-2) and user (CPL 3).  A translation is checked against the
privilege of the set it enters, so a supervisor-only page can never be
reached from CPL 3 through a stale entry, and a SYSCALL or an interrupt costs
no refill: :meth:`switch_privilege` just selects the other set (and the
interpreter rebinds its accessors).  Translations of global pages (G = 1 in
the last entry, CR4.PGE = 1) survive a CR3 write; everything else is
forgotten then.  INVLPG drops one page from both sets, the whole large page
when the address was mapped by one.

Code is tracked by *physical* page (:meth:`Mmu.page_id`): a page is kept out
of the write TLBs under every virtual address that maps it, so a write
through an alias (Linux's text_poke) or by a device's DMA (through
``PhysicalMemory.write``) retranslates the code.

RAM pages become TLB entries ``(phys.ram, physical address)``; anything else
becomes ``(phys, physical address)``, which the slow path sends to the MMIO
bus with the access's own size.

Not modelled: the paging-structure caches (every miss walks from CR3, which
is stricter than hardware), PCIDs, protection keys, SMEP/SMAP, 5-level
paging, 32-bit and PAE paging (long mode only; with CR0.PG = 0 linear
addresses map to themselves), memory types (PWT/PCD/PAT are recorded, never
acted on), and A flags on a walk that faults (set only on success).
"""

from __future__ import annotations

import struct
from enum import IntFlag

from cpu.exceptions import GuestFault, PFError, Vector
from cpu.memory import (
    FETCH,
    MASK64,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    RAM_BUFFERS,
    READ,
    WRITE,
    Memory,
    Tlb,
    TlbEntry,
    TlbPresence,
    new_tlb,
)
from cpu.physical import PhysicalMemory
from cpu.state import CpuState

MAXPHYADDR = 40
"""Physical address width, as CPUID 0x8000_0008 reports it (``cpu.cpuid``)."""
ADDRESS_MASK = ((1 << MAXPHYADDR) - 1) & ~PAGE_MASK
"""Bits M-1:12 of a paging entry: the next table's, or the page's, physical address."""
HIGH_RESERVED = ((1 << 52) - 1) & ~((1 << MAXPHYADDR) - 1)
"""Bits 51:M, reserved in every paging entry."""

CR0_WP = 1 << 16
CR0_PG = 1 << 31
CR4_PGE = 1 << 7
EFER_NXE = 1 << 11

_U64 = struct.Struct("<Q")


class Pte(IntFlag):
    """Paging-entry bits (SDM Vol. 3A, tables 4-15 to 4-20)."""

    P = 1 << 0      # present: the entry maps something
    RW = 1 << 1     # writes allowed (for CPL 3 always checked; for supervisor only with CR0.WP)
    US = 1 << 2     # user: CPL 3 may access it
    PWT = 1 << 3    # page-level write-through (memory type; not modelled)
    PCD = 1 << 4    # page-level cache disable (memory type; not modelled)
    A = 1 << 5      # accessed: set by the walker on every entry it uses
    D = 1 << 6      # dirty: set in the entry that maps the page on a write
    PS = 1 << 7     # page size: this PDPTE/PDE maps a 1 GiB/2 MiB page (PAT in a PTE)
    G = 1 << 8      # global: the translation survives CR3 writes when CR4.PGE = 1
    XD = 1 << 63    # execute disable (reserved unless EFER.NXE = 1)


LEVELS = ((4, "PML4E", 39), (3, "PDPTE", 30), (2, "PDE", 21), (1, "PTE", 12))
"""(level, entry name, shift of the linear-address bits that index the table)."""

LARGE_RESERVED = {3: ((1 << 30) - 1) & ~0x1FFF, 2: ((1 << 21) - 1) & ~0x1FFF}
"""Bits between PAT (bit 12) and the page address, reserved in a 1 GiB PDPTE and a 2 MiB PDE."""


class Level:
    """One paging-structure entry a walk read."""

    __slots__ = ("level", "name", "address", "value")

    def __init__(self, level: int, name: str, address: int, value: int) -> None:
        self.level = level
        self.name = name            # "PML4E", "PDPTE", "PDE", "PTE"
        self.address = address      # physical address of the entry
        self.value = value          # the entry as read, before any A/D update

    @property
    def flags(self) -> str:
        """The entry's set flags by name, e.g. ``"P RW US A PS"``."""
        return " ".join(f.name for f in Pte if self.value & f and f.name)

    def __repr__(self) -> str:
        return f"{self.name} @ {self.address:#x} = {self.value:#018x} [{self.flags}]"


_P, _RW, _US, _A, _D, _PS, _G, _XD = (int(bit) for bit in (Pte.P, Pte.RW, Pte.US, Pte.A, Pte.D, Pte.PS, Pte.G,
                                                             Pte.XD))
"""The bits as plain ints for the page walk: arithmetic with IntFlag members costs about 1 us each, a boot
makes some 20 k walks of a dozen such operations."""


class Walk:
    """What one page walk found: the entries, then a physical address or the #PF it raises."""

    __slots__ = ("vaddr", "access", "cpl", "levels", "paddr", "page_size", "error", "reason", "global_")

    def __init__(self, vaddr: int, access: int, cpl: int) -> None:
        self.vaddr = vaddr
        self.access = access        # READ, WRITE or FETCH
        self.cpl = cpl
        self.levels: list[Level] = []
        self.paddr = 0              # the physical address, when the access is allowed
        self.page_size = 0
        self.error: int | None = None   # the #PF error code, when the access is refused
        self.reason = ""
        self.global_ = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        """Several lines for people (the debugger's ``pagewalk``)."""
        kind = ("read", "write", "fetch")[self.access]
        lines = [f"{kind} of {self.vaddr:#x} at CPL {self.cpl}"]
        lines += [f"  {level!r}" for level in self.levels]
        if self.ok:
            lines.append(f"  -> physical {self.paddr:#x} ({self.page_size >> 10} KiB page"
                         f"{', global' if self.global_ else ''})")
        else:
            lines.append(f"  -> #PF error code {self.error:#x}: {self.reason}")
        return "\n".join(lines)


class Mmu(Memory):
    """Linear addresses of a whole machine, translated through the guest's page tables."""

    system = True

    def __init__(self, state: CpuState, phys: PhysicalMemory) -> None:
        super().__init__()
        self.state = state
        self.phys = phys
        self.ram = phys.ram
        self.user = False
        user_tlb: Tlb = new_tlb()
        self.tlb_sets.append(user_tlb)
        self._accessors = [(self.loads.copy(), self.stores.copy()), self._build_accessors(user_tlb)]
        self.global_vpns: set[int] = set()
        self.large_pages: dict[int, int] = {}
        """First virtual page of each large page a fill used -> its size in pages (for INVLPG)."""
        self.presence = TlbPresence()
        for tlb in self.tlb_sets:
            for t in tlb:
                t.presence = self.presence.pages
        self.writers: dict[int, set[int]] = {}
        """Physical page -> virtual pages that were filled for writing to it (to keep code pages read-only)."""
        self.entries: dict[int, TlbEntry] = {}
        """One entry per RAM page, whatever fill makes it: a block whose page was flushed from the TLB and
        filled again with the same physical page is still the block there (``Block.entry`` is compared by
        identity), so it is not checked again (32 k checks in a boot, most after CR3 writes)."""
        phys.on_write = self._physical_write

    # -- privilege ------------------------------------------------------------
    def switch_privilege(self, cpl: int) -> None:
        user = cpl == 3
        if user == self.user:
            return
        self.user = user
        self.tlb = self.tlb_sets[user]
        loads, stores = self._accessors[user]
        self.loads.update(loads)
        self.stores.update(stores)
        self.on_rebind()

    # -- the page walk ---------------------------------------------------------
    def walk(self, vaddr: int, access: int = READ, cpl: int = 0, *, dry: bool = False) -> Walk:
        """Translate ``vaddr`` for ``access`` at ``cpl`` as the SDM 4.5-4.8 say; ``dry`` leaves A/D alone."""
        s = self.state
        walk = Walk(vaddr, access, cpl)
        if not s.cr0 & CR0_PG:
            walk.paddr, walk.page_size = vaddr, PAGE_SIZE
            return walk
        nxe = s.efer & EFER_NXE
        reserved_all = HIGH_RESERVED | (0 if nxe else _XD)
        table = s.cr3 & ADDRESS_MASK
        writable = user = True
        no_exec = False
        for level, name, shift in LEVELS:
            address = table + 8 * ((vaddr >> shift) & 0x1FF)
            value = self._entry_at(address)
            walk.levels.append(Level(level, name, address, value))
            if not value & _P:
                return self._refuse(walk, False, f"{name} not present")
            large = level in (2, 3) and value & _PS
            reserved = reserved_all | (_PS if level == 4 else 0) | (LARGE_RESERVED[level] if large else 0)
            if value & reserved:
                return self._refuse(walk, True, f"reserved bits {value & reserved:#x} set in {name}", PFError.RSVD)
            writable = writable and bool(value & _RW)
            user = user and bool(value & _US)
            no_exec = no_exec or bool(nxe and value & _XD)
            if large or level == 1:
                break
            table = value & ADDRESS_MASK
        size = 1 << shift
        if cpl == 3 and not user:
            return self._refuse(walk, True, "supervisor page accessed at CPL 3")
        if access == WRITE and not writable and (cpl == 3 or s.cr0 & CR0_WP):
            return self._refuse(walk, True, "write to a read-only page" + ("" if cpl == 3 else " with CR0.WP = 1"))
        if access == FETCH and no_exec:
            return self._refuse(walk, True, "instruction fetch from an execute-disable page")
        if not dry:
            self._set_accessed(walk, access == WRITE)
        walk.paddr = (value & ADDRESS_MASK & ~(size - 1)) | (vaddr & (size - 1))
        walk.page_size = size
        walk.global_ = bool(value & _G)
        return walk

    def _refuse(self, walk: Walk, present: bool, reason: str, extra: int = 0) -> Walk:
        """Record the #PF error code of SDM 4.7 (I only with EFER.NXE = 1, as 4.7 says)."""
        code = extra | (PFError.P if present else 0)
        if walk.access == WRITE:
            code |= PFError.W
        elif walk.access == FETCH and self.state.efer & EFER_NXE:
            code |= PFError.I
        if walk.cpl == 3:
            code |= PFError.U
        walk.error, walk.reason = code, reason
        return walk

    def _entry_at(self, address: int) -> int:
        if address + 8 <= self.phys.size:
            return _U64.unpack_from(self.ram, address)[0]
        return self.phys.load(address, 64)

    def _set_accessed(self, walk: Walk, dirty: bool) -> None:
        """SDM 4.8: A in every entry used; D in the entry that maps the page, for a write."""
        last = walk.levels[-1]
        for level in walk.levels:
            new = level.value | _A | (_D if dirty and level is last else 0)
            if new != level.value:
                self.phys.store(level.address, 64, new)

    # -- the TLB ------------------------------------------------------------------
    def fill(self, vpn: int, access: int) -> TlbEntry:
        vaddr = vpn << PAGE_SHIFT
        walk = self.walk(vaddr, access, 3 if self.user else 0)
        if walk.error is not None:
            raise GuestFault(Vector.PF, walk.error, vaddr, walk.reason)
        page = walk.paddr & ~PAGE_MASK
        if walk.global_ and self.state.cr4 & CR4_PGE:
            self.global_vpns.add(vpn)
        else:
            self.global_vpns.discard(vpn)   # an INVLPG that found the page in no TLB may have left it here
        if walk.page_size > PAGE_SIZE:
            pages = walk.page_size >> PAGE_SHIFT
            first = vpn & ~(pages - 1)
            if self.large_pages.get(first) != pages:
                self.large_pages[first] = pages
                self.presence.large[self.presence.large_slot(first, pages)] += 1
        if access == WRITE:
            self.writers.setdefault(page >> PAGE_SHIFT, set()).add(vpn)
        if self.phys.is_ram(page, PAGE_SIZE):
            entry = self.entries.get(page)
            if entry is None:
                entry = self.entries[page] = (self.ram, page)
            return entry
        return self.phys, page  # type: ignore[return-value]  # MMIO: a slow-path-only entry (see TlbEntry)

    def page_id(self, vpn: int, entry: TlbEntry) -> int:
        """The physical page: code is tracked there, whatever virtual address wrote or ran it."""
        return entry[1] >> PAGE_SHIFT

    def mark_code(self, page: int) -> None:
        self.code_pages.add(page)
        for vpn in self.writers.pop(page, ()):
            for tlb in self.tlb_sets:
                tlb[WRITE].pop(vpn, None)

    def flush_tlb(self, keep_global: bool = False) -> None:
        """Forget translations: all of them (CR4/CR0/EFER paging changes), or all but global ones (CR3 writes)."""
        if not keep_global:
            self.global_vpns.clear()
            self.large_pages.clear()
            self.presence.clear_large()
        kept = self.global_vpns
        writers: dict[int, set[int]] = {}
        for tlb in self.tlb_sets:
            for access, t in enumerate(tlb):
                if not kept:
                    t.clear()
                    continue
                # Drop the others one by one rather than clear and re-insert the survivors: the kernel's
                # global pages are most of a TLB, and each insertion re-pins its page for the JIT's mirror.
                for vpn in [vpn for vpn in t if vpn not in kept]:
                    del t[vpn]
                if access == WRITE:
                    for vpn, entry in t.items():
                        writers.setdefault(entry[1] >> PAGE_SHIFT, set()).add(vpn)
        self.writers = writers

    def invlpg(self, address: int) -> None:
        """INVLPG: drop the page of ``address`` (the whole large page if one mapped it) from every TLB."""
        vpn = (address & MASK64) >> PAGE_SHIFT
        doomed = {vpn}
        for span in (1 << 9, 1 << 18):
            first = vpn & ~(span - 1)
            if self.large_pages.get(first) == span:
                del self.large_pages[first]
                self.presence.large[self.presence.large_slot(first, span)] -= 1
                doomed.update(v for tlb in self.tlb_sets for t in tlb for v in t if first <= v < first + span)
        for v in doomed:
            self.global_vpns.discard(v)
            for tlb in self.tlb_sets:
                for t in tlb:
                    if v in t:          # most TLBs lack the page: skip the mirror's bookkeeping then
                        del t[v]

    def _physical_write(self, address: int, length: int) -> None:
        """A device or loader wrote guest RAM directly: drop code translated from those pages."""
        for page in range(address >> PAGE_SHIFT, ((address + length - 1) >> PAGE_SHIFT) + 1):
            if page in self.code_pages:
                self.code_pages.discard(page)
                self.on_code_write(page)

    # -- MMIO through the slow path, with the access's own size ---------------------
    def _slow_load(self, address: int, size: int) -> int:
        address &= MASK64
        buf, base = self.entry(address, READ)
        offset = address & PAGE_MASK
        if type(buf) in RAM_BUFFERS or offset + size // 8 > PAGE_SIZE:
            return self.load(address, size)
        if self.watch is not None:
            self.watch(address, size // 8, READ)
        return self.phys.load(base + offset, size)

    def _slow_store(self, address: int, size: int, value: int) -> None:
        address &= MASK64
        buf, base = self.entry(address, WRITE)
        offset = address & PAGE_MASK
        if type(buf) in RAM_BUFFERS or offset + size // 8 > PAGE_SIZE:
            self.store(address, size, value)
            return
        if self.watch is not None:
            self.watch(address, size // 8, WRITE)
        self.phys.store(base + offset, size, value & ((1 << size) - 1))
