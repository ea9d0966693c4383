"""A bare-metal harness: the CPU at system level with no Linux, no firmware and one fake device.

A :class:`BareMetal` is 4 MiB of RAM holding everything a tiny kernel needs,
built by Python as a boot loader would: page tables, a GDT with Linux's
selectors and a 64-bit TSS, an IDT whose every vector records what it saw
and resumes where the test said, a SYSCALL entry, stacks.  Tests assemble
code with keystone, place it, and :meth:`BareMetal.run` plays the machine:
it runs the CPU and answers each exit as ``emu/machine/pc.py`` does, delivering
faults through the IDT and completing SYSCALL.

Physical (and, unless a test maps otherwise, virtual) layout:

=====================  ==============================================================
``0x001000-0x040000``  page-table pool (bump allocated)
``0x040000``           GDT; ``0x041000`` IDT; ``0x042000`` TSS
``0x043000``           LOG: 32 bytes per vector: count, error code, CR2, saved RIP
``0x050000``           RSP0 (top of the ring-0 stack used from ring 3)
``0x058000``           IST1 stack top
``0x060000``           the boot stack top (ring 0)
``0x060000-0x064000``  one 64-byte handler per vector; ``0x064000`` the SYSCALL entry
``0x100000``           kernel test code (supervisor, identity-mapped with 4 KiB pages)
``0x200000-0x400000``  user pages (U/S = 1), identity-mapped
=====================  ==============================================================

Every handler counts its vector, stores the error code (if the vector has
one), CR2 and the saved RIP, and, when R13 is not zero, resumes at R13 (the
test sets R13 to the label after an instruction that should fault).
The SYSCALL entry counts in LOG_SYSCALL, halts when RAX = 60 and otherwise
adds 1 to RAX and returns with SYSRET.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import cache

import keystone

from cpu.exceptions import ERROR_CODE, deliver, syscall_entry
from cpu.interp import Exit, ExitKind, Interpreter
from cpu.jit import Jit
from cpu.mmu import Mmu, Pte
from cpu.physical import PhysicalMemory
from cpu.state import CpuState
from devices.bus import Bus

RAM_SIZE = 4 << 20
PT_POOL, PT_POOL_END = 0x1000, 0x40000
GDT, IDT, TSS, LOG = 0x40000, 0x41000, 0x42000, 0x43000
LOG_SYSCALL = LOG + 256 * 32
RSP0, IST1_TOP, BOOT_STACK = 0x50000, 0x58000, 0x60000
HANDLERS, SYSCALL_ENTRY = 0x60000, 0x64000
KERNEL_CODE, USER_BASE, USER_END = 0x100000, 0x200000, 0x400000
USER_STACK = 0x280000

KERNEL_CS, KERNEL_DS, USER32_CS, USER_DS, USER_CS, DATA_WITH_BASE, TSS_SELECTOR = \
    0x10, 0x18, 0x23, 0x2B, 0x33, 0x38, 0x40
SEGMENT_BASE = 0x12345000
"""The base of the data descriptor at DATA_WITH_BASE (what MOV FS loads into fs_base)."""

GDT_ENTRIES = {
    KERNEL_CS: 0x00AF9B000000FFFF,      # 64-bit code, DPL 0
    KERNEL_DS: 0x00CF93000000FFFF,      # data, writable, DPL 0
    USER32_CS & ~3: 0x00CFFB000000FFFF,  # 32-bit code, DPL 3 (STAR's SYSRET base)
    USER_DS & ~3: 0x00CFF3000000FFFF,   # data, writable, DPL 3
    USER_CS & ~3: 0x00AFFB000000FFFF,   # 64-bit code, DPL 3
    DATA_WITH_BASE: 0x12CF93345000FFFF,  # data at SEGMENT_BASE, DPL 0
}

PORT_BASE = 0xE0
"""Where the fake device answers on the port bus."""

PRESENT_RW = Pte.P | Pte.RW
USER_RW = Pte.P | Pte.RW | Pte.US


@cache
def _keystone() -> keystone.Ks:
    return keystone.Ks(keystone.KS_ARCH_X86, keystone.KS_MODE_64)


def assemble(text: str, address: int) -> bytes:
    code, _ = _keystone().asm(text, address)
    return bytes(code or b"")


class FakeDevice:
    """Eight ports: reads return ``0x12345678 + offset`` cut to the size, writes are recorded."""

    def __init__(self) -> None:
        self.writes: list[tuple[int, int, int]] = []

    def read(self, offset: int, size: int) -> int:
        return (0x12345678 + offset) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        self.writes.append((offset, size, value))


class PageTables:
    """One address space's 4-level tables in guest RAM, built the way a kernel would."""

    def __init__(self, bm: BareMetal) -> None:
        self.bm = bm
        self.pml4 = bm.alloc_table()

    def map(self, vaddr: int, paddr: int, flags: int = PRESENT_RW, size: int = 4096, parent: int = USER_RW) -> None:
        """Map one page of ``size`` (4 KiB, 2 MiB or 1 GiB); tables above it get ``parent`` flags."""
        depth = {4096: 4, 2 << 20: 3, 1 << 30: 2}[size]
        table = self.pml4
        for level, shift in enumerate((39, 30, 21, 12)[:depth], start=1):
            slot = table + 8 * ((vaddr >> shift) & 0x1FF)
            if level == depth:
                self.bm.put64(slot, paddr | flags | (Pte.PS if size > 4096 else 0))
                return
            entry = self.bm.get64(slot)
            if not entry & Pte.P:
                entry = self.bm.alloc_table() | parent
            else:
                entry = (entry & ~0xFFF & ((1 << 52) - 1)) | parent
            self.bm.put64(slot, entry)
            table = entry & 0xFF_FFFF_F000

    def entry_address(self, vaddr: int, level: int = 1) -> int:
        """Physical address of the entry at ``level`` (4 = PML4E ... 1 = PTE) that maps ``vaddr``."""
        table = self.pml4
        for lvl, shift in zip((4, 3, 2, 1), (39, 30, 21, 12), strict=True):
            slot = table + 8 * ((vaddr >> shift) & 0x1FF)
            if lvl == level:
                return slot
            table = self.bm.get64(slot) & 0xFF_FFFF_F000
        raise ValueError(level)

    def clone_kernel(self, other: PageTables) -> None:
        """Share ``other``'s first PML4 slot (the identity-mapped low 512 GiB), as kernels share their half."""
        self.bm.put64(self.pml4, self.bm.get64(other.pml4))


@dataclass
class Run:
    """What :meth:`BareMetal.run` saw."""

    exit: Exit
    delivered: list[int] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


class BareMetal:
    def __init__(self, jit: str = "off") -> None:
        """``jit``: the tier the CPU runs in ("off", or "on"/"eager": ``cpu.jit``, strict)."""
        self.phys = PhysicalMemory(RAM_SIZE, Bus("mmio"))
        self.state = state = CpuState()
        self.mmu = Mmu(state, self.phys)
        self.cpu = Interpreter(state, self.mmu)
        if jit != "off":
            self.cpu.jit = Jit(self.cpu, jit, strict=True)
        self.device = FakeDevice()
        self.ports = Bus("ports")
        self.ports.map(PORT_BASE, 8, self.device, "fake")
        self.cpu.io = self.ports
        self._next_table = PT_POOL
        self.tables = PageTables(self)
        for page in range(0, USER_BASE, 4096):
            self.tables.map(page, page, PRESENT_RW, parent=USER_RW)
        for page in range(USER_BASE, USER_END, 4096):
            self.tables.map(page, page, USER_RW)
        for selector, value in GDT_ENTRIES.items():
            self.put64(GDT + selector, value)
        self._write_tss_descriptor()
        self.put64(TSS + 4, RSP0)           # RSP0
        self.put64(TSS + 36, IST1_TOP)      # IST1
        for vector in range(256):
            self._write_handler(vector)
            self.set_gate(vector, HANDLERS + 64 * vector)
        self.load(SYSCALL_ENTRY, assemble(SYSCALL_STUB, SYSCALL_ENTRY))
        self._enter_long_mode()

    # -- guest memory ---------------------------------------------------------------------------
    def get64(self, paddr: int) -> int:
        return struct.unpack_from("<Q", self.phys.ram, paddr)[0]

    def put64(self, paddr: int, value: int) -> None:
        struct.pack_into("<Q", self.phys.ram, paddr, value)

    def load(self, paddr: int, data: bytes) -> None:
        self.phys.write(paddr, data)

    def alloc_table(self) -> int:
        table = self._next_table
        if table >= PT_POOL_END:
            raise MemoryError("page-table pool exhausted")
        self._next_table += 4096
        self.phys.write(table, bytes(4096))
        return table

    def code(self, text: str, address: int = KERNEL_CODE, paddr: int | None = None) -> int:
        """Assemble ``text`` for ``address``, place it at ``paddr`` (default: the same), return its length."""
        data = assemble(text, address)
        self.load(address if paddr is None else paddr, data)
        return len(data)

    def log(self, vector: int) -> tuple[int, int, int, int]:
        """(count, error code, CR2, saved RIP) recorded by the handler of ``vector``."""
        return struct.unpack_from("<4Q", self.phys.ram, LOG + 32 * vector)

    # -- descriptor tables ----------------------------------------------------------------------
    def set_gate(self, vector: int, handler: int, *, ist: int = 0, dpl: int = 0, kind: int = 0xE,
                 present: bool = True, selector: int = KERNEL_CS) -> None:
        access = kind | (dpl << 5) | (0x80 if present else 0)
        gate = struct.pack("<HHBBHII", handler & 0xFFFF, selector, ist, access, (handler >> 16) & 0xFFFF,
                           handler >> 32, 0)
        self.phys.write(IDT + 16 * vector, gate)

    def _write_tss_descriptor(self) -> None:
        limit = 0x67
        low = (limit | ((TSS & 0xFFFF) << 16) | (((TSS >> 16) & 0xFF) << 32) | (0x89 << 40)
               | (((TSS >> 24) & 0xFF) << 56))
        self.put64(GDT + TSS_SELECTOR, low)
        self.put64(GDT + TSS_SELECTOR + 8, TSS >> 32)

    def _write_handler(self, vector: int) -> None:
        record = LOG + 32 * vector
        text = (f"pop qword ptr [{record + 8:#x}];" if vector in ERROR_CODE else "") + f"""
            inc qword ptr [{record:#x}]
            push rax
            mov rax, cr2
            mov [{record + 16:#x}], rax
            mov rax, [rsp + 8]
            mov [{record + 24:#x}], rax
            pop rax
            test r13, r13
            jz done
            mov [rsp], r13
        done:
            iretq
        """
        code = assemble(text, HANDLERS + 64 * vector)
        assert len(code) <= 64, (vector, len(code))
        self.load(HANDLERS + 64 * vector, code)

    def _enter_long_mode(self) -> None:
        s = self.state
        s.cr0 = 0x8001_0033           # PG | WP | NE | ET | MP | PE
        s.cr4 = 0x6A0                 # OSXMMEXCPT | OSFXSR | PGE | PAE
        s.cr3 = self.tables.pml4
        s.efer = 0xD01                # NXE | LMA | LME | SCE
        s.cs, s.ss, s.ds, s.es = KERNEL_CS, KERNEL_DS, KERNEL_DS, KERNEL_DS
        s.cpl = 0
        s.rflags = 0x2
        s.rsp = BOOT_STACK
        s.rip = KERNEL_CODE
        s.mxcsr, s.fcw = 0x1F80, 0x037F
        s.gdtr_base, s.gdtr_limit = GDT, 0x4F
        s.idtr_base, s.idtr_limit = IDT, 256 * 16 - 1
        s.tr, s.tss_base = TSS_SELECTOR, TSS
        s.star = (USER32_CS << 48) | (KERNEL_CS << 32)
        s.lstar = SYSCALL_ENTRY
        s.sfmask = 0x4700             # TF | DF | IF | NT, as Linux masks
        self.mmu.flush_tlb()

    # -- the machine's loop ---------------------------------------------------------------------
    def run(self, budget: int = 100_000) -> Run:
        """Run until HLT (or ``budget`` instructions), delivering faults and completing SYSCALLs."""
        seen = Run(Exit(ExitKind.LIMIT))
        start = self.state.icount
        while self.state.icount - start < budget:
            exit_ = self.cpu.run(budget - (self.state.icount - start))
            seen.exit = exit_
            match exit_.kind:
                case ExitKind.HALT:
                    return seen
                case ExitKind.FAULT:
                    seen.delivered.append(int(exit_.fault.vector))
                    deliver(self.cpu, exit_.fault.vector, exit_.fault.error_code, fault=exit_.fault)
                case ExitKind.SYSCALL:
                    syscall_entry(self.cpu)
                case ExitKind.EVENT:
                    seen.events.append(exit_.event)
                case ExitKind.LIMIT:
                    return seen
        return seen


SYSCALL_STUB = f"""
    inc qword ptr [{LOG_SYSCALL:#x}]
    cmp rax, 60
    je stop
    inc rax
    sysret
stop:
    hlt
"""


def enter_user(rip: int, rsp: int = USER_STACK, rflags: int = 0x202) -> str:
    """Kernel code that IRETQs to ring 3 at ``rip``."""
    return f"""
        push {USER_DS}
        mov rax, {rsp:#x}
        push rax
        push {rflags:#x}
        push {USER_CS}
        mov rax, {rip:#x}
        push rax
        iretq
    """
