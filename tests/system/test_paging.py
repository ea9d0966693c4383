"""4-level paging, the TLBs and code tracking by physical page (cpu/mmu.py), on bare metal."""

from __future__ import annotations

import pytest

from cpu.exceptions import PFError, Vector
from cpu.memory import FETCH, READ, WRITE
from cpu.mmu import Pte
from tests.system.baremetal import KERNEL_CODE, PRESENT_RW, USER_RW, BareMetal, PageTables, enter_user

DATA = 0x300000
"""A physical page the tests fill with a marker."""
HIGH = 0x0000_5555_0000_0000
"""A virtual address in a PML4 slot of its own, for test mappings."""


@pytest.fixture(params=["off", "eager"])
def bm(request: pytest.FixtureRequest) -> BareMetal:
    """The bare machine in the Python tier, and with every block compiled to native code."""
    return BareMetal(jit=request.param)


def test_a_4k_walk_reports_four_levels_and_the_physical_byte(bm: BareMetal) -> None:
    bm.tables.map(HIGH + 0x1000, DATA, USER_RW)
    walk = bm.mmu.walk(HIGH + 0x1123, READ, 3, dry=True)
    assert walk.ok and walk.paddr == DATA + 0x123 and walk.page_size == 4096
    assert [level.name for level in walk.levels] == ["PML4E", "PDPTE", "PDE", "PTE"]
    assert walk.levels[-1].address == bm.tables.entry_address(HIGH + 0x1000)
    assert "physical 0x300123" in walk.describe()


def test_a_2m_page_stops_at_the_pde_and_keeps_the_offset_within_2m(bm: BareMetal) -> None:
    bm.tables.map(HIGH, 0x200000, PRESENT_RW, size=2 << 20)
    bm.put64(DATA + 0x456, 0xFEEDFACE)
    walk = bm.mmu.walk(HIGH + 0x100456, READ, 0, dry=True)
    assert walk.paddr == DATA + 0x456 and walk.page_size == 2 << 20
    assert [level.name for level in walk.levels] == ["PML4E", "PDPTE", "PDE"] and "PS" in walk.levels[-1].flags
    bm.code(f"mov rbx, {HIGH + 0x100456:#x}; mov rax, [rbx]; hlt")
    bm.run()
    assert bm.state.rax == 0xFEEDFACE


def test_a_1g_page_maps_a_whole_gigabyte_from_the_pdpte(bm: BareMetal) -> None:
    kernel_half = 0xFFFF_8000_0000_0000
    bm.tables.map(kernel_half, 0, PRESENT_RW | Pte.G, size=1 << 30)
    bm.put64(DATA + 8, 0x1122334455667788)
    walk = bm.mmu.walk(kernel_half + DATA + 8, READ, 0, dry=True)
    assert walk.paddr == DATA + 8 and walk.page_size == 1 << 30 and walk.global_
    bm.code(f"mov rbx, {kernel_half + DATA + 8:#x}; mov rax, [rbx]; hlt")
    bm.run()
    assert bm.state.rax == 0x1122334455667788


WP = 1 << 16


@pytest.mark.parametrize(("leaf", "parent", "access", "cpl", "wp", "expected"), [
    (USER_RW, USER_RW, READ, 3, True, None),
    (PRESENT_RW, USER_RW, READ, 0, True, None),
    (USER_RW, USER_RW, READ, 0, True, None),                        # supervisor may read user pages: no SMAP
    (PRESENT_RW, USER_RW, READ, 3, True, PFError.P | PFError.U),    # supervisor page from CPL 3
    (USER_RW, PRESENT_RW, READ, 3, True, PFError.P | PFError.U),    # U/S = 0 higher up is enough
    (Pte.P | Pte.US, USER_RW, WRITE, 3, False, PFError.P | PFError.W | PFError.U),
    (Pte.P, USER_RW, WRITE, 0, True, PFError.P | PFError.W),        # CR0.WP = 1 protects supervisor writes
    (Pte.P, USER_RW, WRITE, 0, False, None),                        # CR0.WP = 0 does not
    (USER_RW, USER_RW | 0, FETCH, 3, True, None),
    (USER_RW | Pte.XD, USER_RW, FETCH, 3, True, PFError.P | PFError.U | PFError.I),
    (PRESENT_RW | Pte.XD, USER_RW, FETCH, 0, True, PFError.P | PFError.I),
    (PRESENT_RW | Pte.XD, USER_RW, READ, 0, True, None),            # XD only stops fetches
    (0, USER_RW, READ, 0, True, 0),                                 # not present
    (0, USER_RW, WRITE, 3, True, PFError.W | PFError.U),
    (USER_RW | (1 << 51), USER_RW, READ, 3, True, PFError.P | PFError.RSVD | PFError.U),  # above MAXPHYADDR
])
def test_access_rights_and_error_codes_follow_sdm_4_6_and_4_7(
        bm: BareMetal, leaf: int, parent: int, access: int, cpl: int, wp: bool, expected: int | None) -> None:
    bm.tables.map(HIGH, DATA, leaf, parent=parent)
    bm.state.cr0 = bm.state.cr0 | WP if wp else bm.state.cr0 & ~WP
    walk = bm.mmu.walk(HIGH + 8, access, cpl, dry=True)
    assert walk.error == expected, walk.describe()


def test_the_xd_bit_is_reserved_while_efer_nxe_is_clear(bm: BareMetal) -> None:
    bm.tables.map(HIGH, DATA, PRESENT_RW | Pte.XD)
    bm.state.efer &= ~(1 << 11)
    walk = bm.mmu.walk(HIGH, READ, 0, dry=True)
    assert walk.error == PFError.P | PFError.RSVD and "reserved" in walk.reason


def test_a_walk_sets_accessed_on_every_level_and_dirty_only_on_a_write(bm: BareMetal) -> None:
    bm.tables.map(HIGH, DATA, PRESENT_RW)
    entries = [bm.tables.entry_address(HIGH, level) for level in (4, 3, 2, 1)]
    bm.mmu.walk(HIGH, WRITE, 0, dry=True)
    assert not any(bm.get64(e) & Pte.A for e in entries)           # a dry walk leaves them alone
    bm.code(f"mov rbx, {HIGH:#x}; mov rax, [rbx]; hlt")
    bm.run()
    assert all(bm.get64(e) & Pte.A for e in entries)
    assert not bm.get64(entries[-1]) & Pte.D
    bm.state.rip = KERNEL_CODE
    bm.code(f"mov rbx, {HIGH:#x}; mov qword ptr [rbx], 1; hlt")
    bm.run()
    assert bm.get64(entries[-1]) & Pte.D
    assert not any(bm.get64(e) & Pte.D for e in entries[:-1])


def test_a_page_fault_puts_the_byte_in_cr2_and_the_error_code_on_the_handlers_stack(bm: BareMetal) -> None:
    bm.tables.map(HIGH, DATA, Pte.P)                                 # read-only, CR0.WP = 1
    length = bm.code(f"""
        mov rbx, {HIGH + 0x10:#x}
        mov rax, [rbx]
        lea r13, [rip + resume]
    fault:
        mov qword ptr [rbx + 5], rax
    resume:
        hlt
    """)
    run = bm.run()
    count, error, cr2, rip = bm.log(Vector.PF)
    assert run.delivered == [Vector.PF] and count == 1
    assert (error, cr2) == (PFError.P | PFError.W, HIGH + 0x15)
    assert rip == KERNEL_CODE + length - 5          # the store (4 bytes) before the HLT
    assert bm.state.cr2 == HIGH + 0x15


def test_a_fetch_from_an_execute_disable_page_faults_with_the_i_bit_at_the_target(bm: BareMetal) -> None:
    bm.tables.map(HIGH, DATA, PRESENT_RW | Pte.XD)
    bm.code(f"lea r13, [rip + resume]; mov rax, {HIGH + 0x20:#x}; call rax; resume: hlt")
    bm.run()
    count, error, cr2, rip = bm.log(Vector.PF)
    assert (count, error, cr2, rip) == (1, PFError.P | PFError.I, HIGH + 0x20, HIGH + 0x20)


def test_an_instruction_running_into_a_page_not_present_is_that_page_s_fault_not_an_invalid_opcode(
        bm: BareMetal) -> None:
    """`sub rsp, 0x28` (48 83 EC 28) whose last two bytes are on the next page: #PF there (CR2 at its first byte,
    the fetch's I bit), as Linux's demand paging of a program's text expects; then, mapped, it runs."""
    bm.tables.map(HIGH, DATA, PRESENT_RW)
    bm.load(DATA + 0xFFE, bytes.fromhex("4883"))
    bm.load(DATA + 0x1000, bytes.fromhex("ec28 4883c428 c3"))        # ... sub rsp, 0x28; add rsp, 0x28; ret
    bm.code(f"lea r13, [rip + resume]; mov rax, {HIGH + 0xFFE:#x}; call rax; resume: hlt")
    bm.run()
    count, error, cr2, rip = bm.log(Vector.PF)
    assert (count, error, cr2, rip) == (1, PFError.I, HIGH + 0x1000, HIGH + 0xFFE)
    assert bm.log(Vector.UD)[0] == 0
    bm.tables.map(HIGH + 0x1000, DATA + 0x1000, PRESENT_RW)
    bm.code(f"mov rax, {HIGH + 0xFFE:#x}; call rax; hlt")
    bm.run()
    assert bm.log(Vector.PF)[0] == 1 and bm.log(Vector.UD)[0] == 0


def test_user_access_to_a_supervisor_page_faults_with_the_u_bit(bm: BareMetal) -> None:
    bm.code(enter_user(0x200000))
    bm.code(f"lea r13, [rip + resume]; mov rax, [{DATA - 0x200000:#x}]; resume: mov eax, 60; syscall",
            address=0x200000)
    bm.run()
    count, error, cr2, _ = bm.log(Vector.PF)
    assert (count, error, cr2) == (1, PFError.P | PFError.U, DATA - 0x200000)


def test_a_stale_translation_is_used_until_invlpg_and_cr3_writes_keep_global_pages(bm: BareMetal) -> None:
    other = DATA + 0x1000
    bm.put64(DATA, 1)
    bm.put64(other, 2)
    bm.tables.map(HIGH, DATA, PRESENT_RW)
    bm.tables.map(HIGH + 0x1000, DATA, PRESENT_RW | Pte.G)
    pte, global_pte = bm.tables.entry_address(HIGH), bm.tables.entry_address(HIGH + 0x1000)
    bm.code(f"""
        mov rbx, {HIGH:#x}
        mov rdi, {HIGH + 0x1000:#x}
        mov r8, [rbx]
        mov r9, [rdi]
        mov qword ptr [{pte:#x}], {other | PRESENT_RW:#x}
        mov qword ptr [{global_pte:#x}], {other | PRESENT_RW | Pte.G:#x}
        mov r10, [rbx]
        invlpg [rbx]
        mov r11, [rbx]
        mov qword ptr [{pte:#x}], {DATA | PRESENT_RW:#x}
        mov rax, cr3
        mov cr3, rax
        mov r12, [rbx]
        mov r14, [rdi]
        mov rax, cr4
        btr rax, 7
        mov cr4, rax
        bts rax, 7
        mov cr4, rax
        mov r15, [rdi]
        hlt
    """)
    bm.run()
    s = bm.state
    assert (s.r8, s.r9) == (1, 1)
    assert s.r10 == 1, "the TLB still holds the old translation"
    assert s.r11 == 2, "INVLPG dropped it"
    assert s.r12 == 1, "a CR3 write drops non-global translations"
    assert s.r14 == 1, "but keeps global ones"
    assert s.r15 == 2, "toggling CR4.PGE drops global ones too"


def test_invlpg_inside_a_2m_page_drops_the_whole_large_page(bm: BareMetal) -> None:
    bm.tables.map(HIGH, 0, PRESENT_RW, size=2 << 20)
    for vaddr in (HIGH + DATA - 0x200000, HIGH + 0x1000):
        bm.mmu.entry(vaddr, READ)
    bm.mmu.invlpg(HIGH + 0x1000)
    assert not any(v >> 12 in bm.mmu.tlb[READ] for v in (HIGH + DATA - 0x200000, HIGH + 0x1000))


def test_invlpg_of_a_page_no_tlb_holds_drops_the_large_page_around_it_and_nothing_else(bm: BareMetal) -> None:
    """Native code skips the call for an INVLPG of a page that no TLB holds (cpu.memory.TlbPresence), but not
    when a cached 2 MiB page covers it: there the whole large page goes, as the SDM says."""
    low, high = 0x1F_8000, 0x3F_8000         # the same offset in RAM's two 2 MiB pages
    bm.put64(high, 1)
    bm.put64(low, 2)
    bm.put64(DATA + 0x1000, 3)
    bm.put64(DATA + 0x2000, 4)
    bm.tables.map(HIGH, 0x20_0000, PRESENT_RW, size=2 << 20)
    bm.tables.map(HIGH + (4 << 20), DATA + 0x1000, PRESENT_RW)
    pde, pte = bm.tables.entry_address(HIGH, level=2), bm.tables.entry_address(HIGH + (4 << 20))
    bm.code(f"""
        mov rbx, {HIGH + 0x1F_8000:#x}
        mov rdi, {HIGH + (4 << 20):#x}
        mov r8, [rbx]
        mov r12, [rdi]
        mov qword ptr [{pde:#x}], {0 | PRESENT_RW | Pte.PS:#x}
        mov qword ptr [{pte:#x}], {DATA + 0x2000 | PRESENT_RW:#x}
        mov rax, {HIGH + (8 << 20):#x}
        invlpg [rax]
        mov r9, [rbx]
        mov r13, [rdi]
        mov rax, {HIGH + 0x1000:#x}
        invlpg [rax]
        mov r10, [rbx]
        mov r14, [rdi]
        hlt
    """)
    bm.run()
    s = bm.state
    assert s.r8 == 1 and s.r12 == 3
    assert (s.r9, s.r13) == (1, 3), "an INVLPG of a page no TLB holds, in no large page, changes nothing"
    assert s.r10 == 2, "an INVLPG of an untouched page inside a cached 2 MiB page drops all of it"
    assert s.r14 == 3, "and no other page"


def test_code_written_through_a_second_mapping_of_its_physical_page_is_retranslated(bm: BareMetal) -> None:
    code, alias = HIGH, HIGH + 0x10000                # two virtual pages, one physical page
    bm.tables.map(code, DATA, PRESENT_RW)
    bm.tables.map(alias, DATA, PRESENT_RW)
    bm.code("mov eax, 1; ret", address=code, paddr=DATA)
    bm.code(f"""
        mov rbx, {code:#x}
        call rbx
        mov r8, rax
        mov rdi, {alias:#x}
        mov dword ptr [rdi + 1], 2
        call rbx
        hlt
    """)
    bm.run()
    assert (bm.state.r8, bm.state.rax) == (1, 2)


def test_a_device_writing_code_pages_by_dma_drops_their_translations(bm: BareMetal) -> None:
    bm.tables.map(HIGH, DATA, PRESENT_RW)
    bm.code("mov eax, 1; ret", address=HIGH, paddr=DATA)
    bm.code(f"mov rbx, {HIGH:#x}; call rbx; hlt")
    bm.run()
    assert bm.state.rax == 1
    bm.phys.write(DATA, bytes.fromhex("b8 07 00 00 00 c3"))          # mov eax, 7; ret: as virtio would write it
    bm.state.rip = KERNEL_CODE
    bm.run()
    assert bm.state.rax == 7


def test_two_address_spaces_run_their_own_code_at_one_virtual_address(bm: BareMetal) -> None:
    first, second = bm.tables, PageTables(bm)
    second.clone_kernel(first)
    for tables, paddr, value in ((first, DATA, 0xA), (second, DATA + 0x1000, 0xB)):
        tables.map(HIGH, paddr, PRESENT_RW)
        bm.code(f"mov eax, {value}; ret", address=HIGH, paddr=paddr)
    bm.code(f"""
        mov rbx, {HIGH:#x}
        call rbx
        mov r8, rax
        mov rax, {second.pml4:#x}
        mov cr3, rax
        call rbx
        mov r9, rax
        mov rax, {first.pml4:#x}
        mov cr3, rax
        call rbx
        mov r10, rax
        mov rax, {second.pml4:#x}
        mov cr3, rax
        call rbx
        mov r11, rax
        hlt
    """)
    bm.run()
    s = bm.state
    assert (s.r8, s.r9, s.r10, s.r11) == (0xA, 0xB, 0xA, 0xB)
    assert {phys for rip, phys in bm.cpu.variants if rip == HIGH} <= {DATA, DATA + 0x1000}


def test_switching_back_to_an_address_space_reuses_its_translation(bm: BareMetal) -> None:
    test_two_address_spaces_run_their_own_code_at_one_virtual_address(bm)
    translated = bm.cpu.translated
    bm.state.rip = KERNEL_CODE
    bm.run()
    assert bm.cpu.translated == translated


class Register32:
    def __init__(self) -> None:
        self.accesses: list[tuple[str, int, int]] = []

    def read(self, offset: int, size: int) -> int:
        self.accesses.append(("read", offset, size))
        return 0xCAFEF00D

    def write(self, offset: int, size: int, value: int) -> None:
        self.accesses.append(("write", offset, size))


def test_mmio_through_a_mapped_page_reaches_the_device_with_the_access_size(bm: BareMetal) -> None:
    device = Register32()
    bm.phys.mmio.map(0xD000_0000, 0x1000, device, "reg")
    bm.tables.map(HIGH, 0xD000_0000, PRESENT_RW | Pte.PCD)
    bm.code(f"mov rbx, {HIGH:#x}; mov eax, [rbx + 0x10]; mov dword ptr [rbx + 0x14], eax; hlt")
    bm.run()
    assert bm.state.rax == 0xCAFEF00D
    assert device.accesses == [("read", 0x10, 4), ("write", 0x14, 4)]


def test_a_page_mapped_beyond_ram_reads_all_ones_and_ignores_writes_in_every_tier(bm: BareMetal) -> None:
    """Guest page tables may name any physical address: outside RAM (and every device) the access is an
    unassigned one, never a host address; the native tier takes its slow path there too."""
    beyond = 3 << 30                                                  # 3 GiB: far past the 4 MiB of RAM
    bm.tables.map(HIGH, beyond, PRESENT_RW)
    bm.code(f"mov rbx, {HIGH + 0x18:#x}; mov qword ptr [rbx], 0x1234; mov rax, [rbx]; mov ecx, [rbx + 0xfe0]; hlt")
    run = bm.run()
    assert run.exit.kind.name == "HALT" and run.delivered == []
    assert (bm.state.rax, bm.state.rcx) == ((1 << 64) - 1, (1 << 32) - 1)
