"""The machine views (``info mem``, ``info tlb``) on a bare-metal machine whose page tables the test wrote,
and the ``serial`` command's escapes."""

from __future__ import annotations

from cpu.memory import PAGE_SIZE
from cpu.mmu import Pte
from emu.debug.machine_views import flag_letters, mapped_ranges, mem_lines, tlb_lines
from emu.debug.monitor import unescape
from tests.system.baremetal import KERNEL_CODE, PRESENT_RW, USER_BASE, USER_END, BareMetal

HIGH = 0xFFFF_8000_0000_0000
"""The first address of the upper half: its PML4 index (256) has bit 47 set, so the view sign-extends it."""


def test_info_mem_merges_contiguous_pages_with_equal_rights_and_names_the_rights() -> None:
    bm = BareMetal()
    bm.tables.map(HIGH, 0x300000, Pte.P | Pte.XD)                      # read-only, no execute, supervisor
    bm.tables.map(HIGH + PAGE_SIZE, 0x301000, PRESENT_RW | Pte.XD)    # writable next to it: a new range
    bm.tables.map(HIGH + (2 << 20), 0x200000, PRESENT_RW, size=2 << 20)
    assert mapped_ranges(bm) == [
        (0, USER_BASE, "-rwx"),
        (USER_BASE, USER_END, "urwx"),
        (HIGH, HIGH + PAGE_SIZE, "-r--"),
        (HIGH + PAGE_SIZE, HIGH + 2 * PAGE_SIZE, "-rw-"),
        (HIGH + (2 << 20), HIGH + (4 << 20), "-rwx"),
    ]
    lines = list(mem_lines(bm))
    assert lines[0].startswith(f"Page tables at CR3 {bm.state.cr3:#x}: 5 ranges")
    assert lines[3] == "ffff800000000000-ffff800000001000 0000000000001000 -r--  (4 KiB)"
    assert lines[5] == "ffff800000200000-ffff800000400000 0000000000200000 -rwx  (2 MiB)"


def test_info_mem_with_paging_off_says_so() -> None:
    bm = BareMetal()
    bm.state.cr0 &= ~(1 << 31)
    assert list(mem_lines(bm)) == ["Paging is off (CR0.PG = 0): virtual addresses are physical ones."]


def test_info_tlb_lists_cached_pages_per_privilege_and_marks_a_stale_one() -> None:
    bm = BareMetal()
    bm.mmu.read(KERNEL_CODE, 8)                                        # fills the supervisor read TLB
    bm.mmu.write(USER_BASE, b"x")                                      # and its write TLB
    lines = list(tlb_lines(bm))
    assert lines[0] == "Supervisor TLB (CPL 0-2) in use: 2 pages"
    assert lines[1] == f"{KERNEL_CODE:016x}: {KERNEL_CODE:016x} r-- ----A---W"   # read: accessed, not dirty
    assert lines[2] == f"{USER_BASE:016x}: {USER_BASE:016x} -w- ---DA--UW"
    assert lines[3] == "User TLB (CPL 3): 0 pages"
    bm.tables.map(USER_BASE, 0x300000)                                 # the tables change, no INVLPG yet
    assert list(tlb_lines(bm))[2].endswith("  stale")


def test_flag_letters_follow_qemus_order() -> None:
    assert flag_letters(Pte.XD | Pte.G | Pte.PS | Pte.D | Pte.A | Pte.PCD | Pte.PWT | Pte.US | Pte.RW) == "XGPDACTUW"
    assert flag_letters(Pte.P) == "---------"


def test_serial_text_understands_c_escapes() -> None:
    assert unescape(r"ls /\n") == b"ls /\n"
    assert unescape(r"\x03\t\\n\e") == b"\x03\t\\n\x1b"
    assert unescape("caf\u00e9") == "caf\u00e9".encode()
