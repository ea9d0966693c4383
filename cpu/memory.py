"""Guest memory as seen by the CPU: linear addresses through a software TLB.

Every guest load, store and instruction fetch goes through one of three
dictionaries mapping a 4 KiB virtual page number to ``(host buffer, offset of
the page in that buffer)``: one for reads, one for writes, one for fetches.
A hit is a bounds-safe slice of a host ``bytearray``; anything else (a miss, an
access that straddles two pages) takes the slow path, which asks
:meth:`Memory.fill` to translate the page or raise #PF/#GP.  User mode fills
from its page map (``emu.user.address_space``); system mode will fill from a
page walk (``cpu.mmu``).  So the interpreter and a JIT share one memory path,
and the guest can never name a host address outside a buffer it was given.

Pages that hold translated code are kept out of the write TLB; the first
write to one goes through the slow path, which tells the code cache
(``on_code_write``) so self-modifying code is retranslated.  Code is tracked
by :meth:`Memory.page_id`: the virtual page in a user address space (one
process, one mapping per page), the physical page under ``cpu.mmu``, where
several virtual pages may alias one physical page.

A subclass may keep more than one set of the three dictionaries (``cpu.mmu``
keeps one per privilege level, so a supervisor translation is never used at
CPL 3): :meth:`switch_privilege` selects the set, the fast accessors of each
set are closures built once, and ``on_rebind`` tells the interpreter to pick
up the current ones.

Follows the SDM Vol. 3A 4.10 (TLBs) in spirit; it does not model TLB capacity.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from collections.abc import Callable
from typing import Protocol

from cpu.exceptions import GuestFault, PFError, Vector, is_canonical

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE_SIZE - 1
MASK64 = (1 << 64) - 1

RAM_BUFFERS = (bytearray, mmap.mmap)
"""The types of a TLB entry's buffer that is guest RAM (a user-mode page, the PC's RAM); anything else in an
entry is an object with ``read``/``write`` methods reached through the slow path."""

READ, WRITE, FETCH = 0, 1, 2
"""Access kinds, also the index of the TLB that serves them."""

class TlbMirror(Protocol):
    """A copy of one TLB kept elsewhere (the JIT's native arrays): told of every change."""

    def set(self, vpn: int, entry: TlbEntry) -> None: ...
    def drop(self, vpn: int) -> None: ...
    def clear(self) -> None: ...


PRESENCE_BITS = 16
PRESENCE_SIZE = 1 << PRESENCE_BITS


class TlbPresence:
    """What the TLBs of one memory hold, as counts native code can read: ``pages[vpn % N]`` counts the entries
    of every TLB (each privilege, each access) for the virtual pages of that slot, ``large[(vpn >> 9) % N]``
    and ``large[N + (vpn >> 18) % N]`` the cached 2 MiB and 1 GiB pages of the regions of that slot.  A count
    may be too high (pages that share a slot), never too low, so all three zero for a page means INVLPG of
    it would change nothing, and native code does not call into Python for it (``cpu.backends.llvm``:
    Linux's MP-table scan executes ~70 k such INVLPGs in a boot, ~0.2 s of callbacks)."""

    def __init__(self) -> None:
        self.pages = (ctypes.c_uint32 * PRESENCE_SIZE)()
        self.large = (ctypes.c_uint32 * (2 * PRESENCE_SIZE))()

    def large_slot(self, first: int, pages: int) -> int:
        """The slot of the large page of ``pages`` 4 KiB pages from virtual page ``first``."""
        if pages == 1 << 9:
            return (first >> 9) & (PRESENCE_SIZE - 1)
        return PRESENCE_SIZE + ((first >> 18) & (PRESENCE_SIZE - 1))

    def clear_large(self) -> None:
        ctypes.memset(self.large, 0, ctypes.sizeof(self.large))


class TlbDict(dict):
    """One TLB: virtual page -> entry, and the one place its changes go through.

    Reads use the plain ``dict`` methods (``get``, ``in``: the hot path stays C);
    every change also reaches the attached :class:`TlbMirror`, so a native copy
    never holds an entry this dictionary dropped, and the counts of a
    :class:`TlbPresence` when the memory keeps one (system mode).
    """

    __slots__ = ("mirror", "presence")

    def __init__(self) -> None:
        super().__init__()
        self.mirror: TlbMirror | None = None
        self.presence: ctypes.Array[ctypes.c_uint32] | None = None
        """``TlbPresence.pages`` of the memory, or None."""

    def attach(self, mirror: TlbMirror) -> None:
        self.mirror = mirror
        mirror.clear()
        for vpn, entry in self.items():
            mirror.set(vpn, entry)

    def mirror_set(self, vpn: int, entry: TlbEntry) -> None:
        """Copy an entry to the mirror again (a direct-mapped mirror may have lost it to another page)."""
        if self.mirror is not None:
            self.mirror.set(vpn, entry)

    def __setitem__(self, vpn: int, entry: TlbEntry) -> None:
        if self.presence is not None and vpn not in self:
            self.presence[vpn & (PRESENCE_SIZE - 1)] += 1
        dict.__setitem__(self, vpn, entry)
        if self.mirror is not None:
            self.mirror.set(vpn, entry)

    def __delitem__(self, vpn: int) -> None:
        dict.__delitem__(self, vpn)
        if self.presence is not None:
            self.presence[vpn & (PRESENCE_SIZE - 1)] -= 1
        if self.mirror is not None:
            self.mirror.drop(vpn)

    def pop(self, vpn: int, *default: object) -> object:
        if self.mirror is not None:
            self.mirror.drop(vpn)
        if self.presence is not None and vpn in self:
            self.presence[vpn & (PRESENCE_SIZE - 1)] -= 1
        return dict.pop(self, vpn, *default)

    def clear(self) -> None:
        if self.presence is not None:
            presence = self.presence
            for vpn in self:
                presence[vpn & (PRESENCE_SIZE - 1)] -= 1
        dict.clear(self)
        if self.mirror is not None:
            self.mirror.clear()

    def update(self, other: dict[int, TlbEntry]) -> None:  # type: ignore[override]
        for vpn, entry in other.items():
            self[vpn] = entry


def new_tlb() -> Tlb:
    """The read, write and fetch TLBs of one privilege level."""
    return (TlbDict(), TlbDict(), TlbDict())


TlbEntry = tuple[bytearray | mmap.mmap, int]
"""(host buffer, offset of the page in it).  A slow-path-only entry may instead hold an object
with ``read(address, length)``/``write(address, data)`` (the MMIO bus behind physical memory);
such entries never enter the TLB dictionaries, so the fast path only ever sees bytearrays."""
Tlb = tuple[TlbDict, TlbDict, TlbDict]
"""The read, write and fetch dictionaries: virtual page -> entry."""
Accessors = tuple[dict[int, Callable[[int], int]], dict[int, Callable[[int, int], None]]]
"""The fast loads and stores by size in bits, closures over one Tlb."""

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class Memory:
    """Load/store interface over a software TLB; subclasses implement :meth:`fill`."""

    system = False
    """True when translations can change under a virtual address (page tables: ``cpu.mmu``)."""

    def __init__(self) -> None:
        self.tlb: Tlb = new_tlb()
        self.tlb_sets: list[Tlb] = [self.tlb]
        self.code_pages: set[int] = set()
        self.on_code_write: Callable[[int], None] = lambda page: None
        self.on_rebind: Callable[[], None] = lambda: None
        self.watch: Callable[[int, int, int], None] | None = None
        self.watched: set[int] = set()
        self.loads, self.stores = self._build_accessors(self.tlb)

    # -- translation, supplied by the address space or the MMU -------------
    def fill(self, vpn: int, access: int) -> TlbEntry:
        """Translate virtual page ``vpn`` for ``access`` or raise a GuestFault."""
        raise GuestFault(Vector.PF, self.pf_error(access, present=False), vpn << PAGE_SHIFT)

    def pf_error(self, access: int, present: bool) -> int:
        code = PFError.U
        if present:
            code |= PFError.P
        if access == WRITE:
            code |= PFError.W
        elif access == FETCH:
            code |= PFError.I
        return code

    def flush_tlb(self, keep_global: bool = False) -> None:
        """Forget every translation (``keep_global``: except global pages, where a subclass has them)."""
        for tlb in self.tlb_sets:
            for t in tlb:
                t.clear()

    def invlpg(self, address: int) -> None:
        """Forget the translations of the page holding ``address`` (INVLPG)."""
        vpn = (address & MASK64) >> PAGE_SHIFT
        for tlb in self.tlb_sets:
            for t in tlb:
                t.pop(vpn, None)

    def switch_privilege(self, cpl: int) -> None:
        """The CPU now runs at ``cpl``: a subclass with per-privilege TLBs selects one here."""

    def page_id(self, vpn: int, entry: TlbEntry) -> int:
        """What code tracking calls virtual page ``vpn`` (translated to ``entry``): here, the page itself."""
        return vpn

    def entry(self, address: int, access: int) -> TlbEntry:
        """The TLB entry for the page holding ``address``, filling it on a miss (slow path)."""
        vpn = address >> PAGE_SHIFT
        e = self.tlb[access].get(vpn)
        if e is None:
            if not is_canonical(address):
                raise GuestFault(Vector.GP, 0, detail=f"non-canonical address {address:#x}")
            try:
                e = self.fill(vpn, access)
            except GuestFault as fault:
                if fault.vector == Vector.PF:       # CR2 holds the faulting byte, not its page
                    fault.address = address
                    fault.args = (fault.describe(),)
                raise
            if access == WRITE:
                page = self.page_id(vpn, e)
                if page in self.code_pages:         # the first write to translated code: drop the translations
                    self.code_pages.discard(page)
                    self.on_code_write(page)
            if type(e[0]) in RAM_BUFFERS and vpn not in self.watched:
                self.tlb[access][vpn] = e
        return e

    def set_watch(self, pages: set[int], hook: Callable[[int, int, int], None] | None) -> None:
        """Send every access to ``pages`` through the slow path, which calls ``hook(address, length, access)``.

        This is how debugger watchpoints are exact: the hook sees the very load or store.
        """
        for vpn in self.watched | pages:
            for tlb in self.tlb_sets:
                for t in tlb:
                    t.pop(vpn, None)
        self.watched = set(pages)
        self.watch = hook if pages else None

    def mark_code(self, page: int) -> None:
        """Page ``page`` (a :meth:`page_id`) now holds translated code: route writes to it through the slow path."""
        self.code_pages.add(page)
        for tlb in self.tlb_sets:
            tlb[WRITE].pop(page, None)

    # -- bulk access (loaders, syscalls, string instructions, debugger) -----
    def read(self, address: int, length: int, access: int = READ) -> bytes:
        if self.watch is not None and access == READ:
            self.watch(address & MASK64, length, READ)
        address &= MASK64
        off = address & PAGE_MASK
        if 0 < length <= PAGE_SIZE - off:       # within one page: what the loop below does, without the loop
            buf, base = self.entry(address, access)
            return bytes(buf[base + off: base + off + length] if type(buf) in RAM_BUFFERS
                         else buf.read(base + off, length))  # type: ignore[union-attr, call-arg]
        out = bytearray()
        while length > 0:
            address &= MASK64
            off = address & PAGE_MASK
            n = min(length, PAGE_SIZE - off)
            buf, base = self.entry(address, access)
            out += (buf[base + off: base + off + n] if type(buf) in RAM_BUFFERS
                    else buf.read(base + off, n))  # type: ignore[union-attr, call-arg]  # a slow-path entry: see TlbEntry
            address += n
            length -= n
        return bytes(out)

    def write(self, address: int, data: bytes | bytearray | memoryview) -> None:
        if self.watch is not None:
            self.watch(address & MASK64, len(data), WRITE)
        view = memoryview(data)
        pos = 0
        # Translate every page first so a faulting write leaves memory untouched.
        pages = []
        a, left = address, len(view)
        while left > 0:
            a &= MASK64
            off = a & PAGE_MASK
            n = min(left, PAGE_SIZE - off)
            pages.append((self.entry(a, WRITE), off, n))
            a += n
            left -= n
        for (buf, base), off, n in pages:
            if type(buf) in RAM_BUFFERS:
                buf[base + off: base + off + n] = view[pos: pos + n]
            else:
                buf.write(base + off, view[pos: pos + n])  # type: ignore[union-attr, call-arg, arg-type]  # see TlbEntry
            pos += n

    def read_cstring(self, address: int, limit: int = 1 << 20) -> bytes:
        out = bytearray()
        while len(out) < limit:
            off = address & PAGE_MASK
            chunk = self.read(address, PAGE_SIZE - off)
            end = chunk.find(0)
            if end >= 0:
                out += chunk[:end]
                return bytes(out)
            out += chunk
            address += len(chunk)
        return bytes(out[:limit])

    def load(self, address: int, size: int) -> int:
        """Load ``size`` bits (8..256), little-endian, through the slow path."""
        return int.from_bytes(self.read(address, size // 8), "little")

    def store(self, address: int, size: int, value: int) -> None:
        self.write(address, (value & ((1 << size) - 1)).to_bytes(size // 8, "little"))

    # -- fast accessors used by generated code ------------------------------
    def _build_accessors(self, tlb: Tlb) -> Accessors:
        """Closures over one set of TLB dictionaries: the hot path of every guest access."""
        rget = tlb[READ].get
        wget = tlb[WRITE].get
        slow_load = self._slow_load
        slow_store = self._slow_store
        u16, u32, u64 = _U16.unpack_from, _U32.unpack_from, _U64.unpack_from
        p16, p32, p64 = _U16.pack_into, _U32.pack_into, _U64.pack_into

        def ld8(a: int) -> int:
            e = rget(a >> 12)
            if e is not None:
                return e[0][e[1] + (a & 0xFFF)]
            return slow_load(a, 8)

        def ld16(a: int) -> int:
            e = rget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFFE:
                return u16(e[0], e[1] + o)[0]
            return slow_load(a, 16)

        def ld32(a: int) -> int:
            e = rget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFFC:
                return u32(e[0], e[1] + o)[0]
            return slow_load(a, 32)

        def ld64(a: int) -> int:
            e = rget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFF8:
                return u64(e[0], e[1] + o)[0]
            return slow_load(a, 64)

        def ld128(a: int) -> int:
            e = rget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFF0:
                b = e[1] + o
                return u64(e[0], b)[0] | (u64(e[0], b + 8)[0] << 64)
            return slow_load(a, 128)

        def ld256(a: int) -> int:
            e = rget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFE0:
                return int.from_bytes(e[0][e[1] + o:e[1] + o + 32], "little")
            return slow_load(a, 256)

        def st8(a: int, v: int) -> None:
            e = wget(a >> 12)
            if e is not None:
                e[0][e[1] + (a & 0xFFF)] = v
            else:
                slow_store(a, 8, v)

        def st16(a: int, v: int) -> None:
            e = wget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFFE:
                p16(e[0], e[1] + o, v)
            else:
                slow_store(a, 16, v)

        def st32(a: int, v: int) -> None:
            e = wget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFFC:
                p32(e[0], e[1] + o, v)
            else:
                slow_store(a, 32, v)

        def st64(a: int, v: int) -> None:
            e = wget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFF8:
                p64(e[0], e[1] + o, v)
            else:
                slow_store(a, 64, v)

        def st128(a: int, v: int) -> None:
            e = wget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFF0:
                b = e[1] + o
                p64(e[0], b, v & MASK64)
                p64(e[0], b + 8, v >> 64)
            else:
                slow_store(a, 128, v)

        def st256(a: int, v: int) -> None:
            e = wget(a >> 12)
            o = a & 0xFFF
            if e is not None and o <= 0xFE0:
                e[0][e[1] + o:e[1] + o + 32] = v.to_bytes(32, "little")
            else:
                slow_store(a, 256, v)

        return ({8: ld8, 16: ld16, 32: ld32, 64: ld64, 128: ld128, 256: ld256},
                {8: st8, 16: st16, 32: st32, 64: st64, 128: st128, 256: st256})

    def _slow_load(self, address: int, size: int) -> int:
        return self.load(address & MASK64, size)

    def _slow_store(self, address: int, size: int, value: int) -> None:
        self.store(address & MASK64, size, value)
