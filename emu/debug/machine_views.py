"""What the debugger shows of a full-system machine, in the words of QEMU's monitor.

Each function takes a :class:`emu.machine.pc.Machine` and returns lines of text
(the REPL's ``info tlb``, ``info mem``, ``pagewalk``, ``info devices`` and
``info clock``; ``info pic`` is the PIC's own ``info()``).  Nothing here
changes the machine: page tables are read with the MMU's dry walk or straight
from physical memory, so no accessed or dirty flag is set and no TLB entry is
made.

- ``info tlb``: the translations the MMU has cached (``cpu.mmu``), per
  privilege set (supervisor for CPL 0-2, user for CPL 3), one line per
  virtual page: ``vaddr: paddr`` and which of the read, write and fetch
  dictionaries hold it (``rwx``), then the flags of the paging entry that maps
  it *now*, as QEMU's ``info tlb`` prints them: X (execute-disable), G
  (global), P (a large page: PS), D (dirty), A (accessed), C (cache disable:
  PCD), T (write-through: PWT), U (user), W (writable), ``-`` for a clear
  bit.  A cached translation whose page tables changed since (no INVLPG yet)
  is marked ``stale``: that is what a TLB is.
- ``info mem``: the guest's page tables walked from CR3 (SDM Vol. 3A, 4.5),
  contiguous virtual ranges with the same effective rights merged, as QEMU's
  ``info mem``: ``start-end size urwx`` where u is user-accessible, r is
  always set, w writable, x executable (EFER.NXE = 0 or no XD bit on the
  way); rights combine over the levels as SDM 4.6 says.
- ``info clock``: virtual time (devices/clock.py), instructions retired, time
  skipped while halted, time spent on the ISA bus, and the next deadline.

Not shown: the paging-structure caches (the MMU does not keep any), PAT
memory types, 32-bit and PAE page tables (the MMU walks 4-level tables only).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from cpu.memory import FETCH, PAGE_SHIFT, READ, WRITE
from cpu.mmu import ADDRESS_MASK, CR0_PG, EFER_NXE, LEVELS, Pte
from devices.pit8254 import ns_at
from emu.machine.pc import Machine

_QEMU_FLAGS = ((Pte.XD, "X"), (Pte.G, "G"), (Pte.PS, "P"), (Pte.D, "D"), (Pte.A, "A"), (Pte.PCD, "C"),
               (Pte.PWT, "T"), (Pte.US, "U"), (Pte.RW, "W"))
"""The letters of QEMU's ``info tlb``, in its order."""

_U64 = struct.Struct("<Q")


def canonical(address: int) -> int:
    """Sign-extend bit 47, as a virtual address built from table indexes needs."""
    return address | 0xFFFF_0000_0000_0000 if address >> 47 & 1 else address


def flag_letters(entry: int) -> str:
    """A paging entry's flags as QEMU's ``info tlb`` shows them: ``XGPDACTUW``, ``-`` for each clear bit."""
    return "".join(letter if entry & bit else "-" for bit, letter in _QEMU_FLAGS)


# -- info tlb ---------------------------------------------------------------------------
def tlb_lines(machine: Machine) -> Iterator[str]:
    mmu = machine.mmu
    for user, tlb in enumerate(mmu.tlb_sets):
        pages = sorted(set(tlb[READ]) | set(tlb[WRITE]) | set(tlb[FETCH]))
        name = "User TLB (CPL 3)" if user else "Supervisor TLB (CPL 0-2)"
        in_use = " in use" if mmu.user == bool(user) else ""
        yield f"{name}{in_use}: {len(pages)} page{'s' if len(pages) != 1 else ''}"
        for vpn in pages:
            entry = tlb[READ].get(vpn) or tlb[WRITE].get(vpn) or tlb[FETCH].get(vpn)
            vaddr, paddr = vpn << PAGE_SHIFT, entry[1]
            access = "".join(letter if vpn in tlb[kind] else "-" for kind, letter in ((READ, "r"), (WRITE, "w"),
                                                                                       (FETCH, "x")))
            walk = mmu.walk(vaddr, READ, 3 if user else 0, dry=True)
            flags = flag_letters(walk.levels[-1].value) if walk.levels else "-" * len(_QEMU_FLAGS)
            stale = "" if walk.ok and walk.paddr == paddr else "  stale"
            yield f"{vaddr:016x}: {paddr:016x} {access} {flags}{stale}"


# -- info mem ----------------------------------------------------------------------------
def mapped_ranges(machine: Machine) -> list[tuple[int, int, str]]:
    """(start, end, rights) of every mapped virtual range, merged when contiguous with equal rights."""
    s = machine.state
    if not s.cr0 & CR0_PG:
        return []
    nxe = bool(s.efer & EFER_NXE)
    ranges: list[tuple[int, int, str]] = []

    def add(start: int, size: int, user: bool, writable: bool, executable: bool) -> None:
        rights = ("u" if user else "-") + "r" + ("w" if writable else "-") + ("x" if executable else "-")
        start = canonical(start)
        if ranges and ranges[-1][1] == start and ranges[-1][2] == rights:
            ranges[-1] = (ranges[-1][0], start + size, rights)
        else:
            ranges.append((start, start + size, rights))

    def walk(table: int, depth: int, base: int, user: bool, writable: bool, executable: bool) -> None:
        _, _, shift = LEVELS[depth]
        if not machine.phys.is_ram(table, 4096):          # a table outside RAM maps nothing we can read
            return
        data = machine.phys.read(table, 4096)
        for index in range(512):
            entry = _U64.unpack_from(data, 8 * index)[0]
            if not entry & Pte.P:
                continue
            u, w = user and bool(entry & Pte.US), writable and bool(entry & Pte.RW)
            x = executable and not (nxe and entry & Pte.XD)
            start = base | index << shift
            if depth == 3 or (depth in (1, 2) and entry & Pte.PS):
                add(start, 1 << shift, u, w, x)
            else:
                walk(entry & ADDRESS_MASK, depth + 1, start, u, w, x)

    walk(s.cr3 & ADDRESS_MASK, 0, 0, True, True, True)
    return ranges


def mem_lines(machine: Machine) -> Iterator[str]:
    ranges = mapped_ranges(machine)
    if not ranges and not machine.state.cr0 & CR0_PG:
        yield "Paging is off (CR0.PG = 0): virtual addresses are physical ones."
        return
    yield f"Page tables at CR3 {machine.state.cr3:#x}: {len(ranges)} ranges (u user, r read, w write, x execute)"
    for start, end, rights in ranges:
        yield f"{start:016x}-{end & 0xFFFF_FFFF_FFFF_FFFF:016x} {end - start:016x} {rights}  ({_size(end - start)})"


def _size(n: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}iB"
    return f"{n} bytes"


# -- info devices ------------------------------------------------------------------------
def device_lines(machine: Machine) -> Iterator[str]:
    for bus, title, width in ((machine.ports, "I/O ports", 4), (machine.mmio, "MMIO (physical memory)", 8)):
        yield f"{title}:"
        for base, length, name in bus.devices():
            device = bus.find(base)[1]
            yield f"  {base:0{width}x}-{base + length - 1:0{width}x}  {name}"
            info = getattr(device, "info", None)
            if info is not None:
                for line in info().splitlines():
                    yield f"      {line}"
    yield f"RAM: 0x0-{machine.phys.size - 1:#x} ({_size(machine.phys.size)})"


# -- info clock --------------------------------------------------------------------------
def clock_lines(machine: Machine) -> Iterator[str]:
    clock, s = machine.clock, machine.state
    now = clock.now()
    bus = s.tsc_offset - machine.halted_ns
    yield f"Virtual time: {now} ns ({now / 1e6:.6f} ms since power-on; the TSC reads the same)"
    yield f"Instructions retired: {s.icount} (1 ns each)"
    yield f"Time skipped while halted: {machine.halted_ns} ns"
    yield f"Time on the ISA bus: {bus} ns (port I/O, 1 us per access)"
    deadline = clock.next_deadline()
    if deadline is None:
        yield "Next deadline: none (no timer armed)"
        return
    pit = machine.pit
    rise = pit.channels[0].next_rise(pit.tick())
    what = "PIT channel 0 output rises: IRQ 0" if rise is not None and ns_at(rise) == deadline else "a timer"
    yield f"Next deadline: {deadline} ns (in {deadline - now} ns): {what}"
    if machine.halted:
        yield "The CPU is halted (HLT): it wakes at the next interrupt."
