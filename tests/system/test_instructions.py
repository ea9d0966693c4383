"""System instructions on bare metal: ports, MSRs, control registers, segments, descriptor tables
(cpu/semantics/privileged.py, cpu/msr.py)."""

from __future__ import annotations

import struct

import pytest

from cpu.cpuid import FEATURE_BITS, level
from cpu.exceptions import Vector
from cpu.flags import Flag, read_rflags
from cpu.msr import APIC_DEFAULT
from cpu.state import CpuState
from tests.system.baremetal import (
    GDT,
    KERNEL_CODE,
    KERNEL_CS,
    KERNEL_DS,
    PORT_BASE,
    SEGMENT_BASE,
    TSS,
    TSS_SELECTOR,
    BareMetal,
    enter_user,
)

BUFFER = 0x300000


@pytest.fixture(params=["off", "eager"])
def bm(request: pytest.FixtureRequest) -> BareMetal:
    """The bare machine in the Python tier, and with every block compiled to native code."""
    return BareMetal(jit=request.param)


def gp_count(bm: BareMetal) -> int:
    return bm.log(Vector.GP)[0]


def test_in_and_out_reach_the_device_with_their_port_and_size(bm: BareMetal) -> None:
    bm.code(f"""
        mov dx, {PORT_BASE + 1}
        in eax, dx
        mov rbx, rax
        in al, {PORT_BASE + 2}
        mov al, 0x5A
        out {PORT_BASE}, al
        mov ax, 0xBEEF
        out dx, ax
        mov eax, 0xCAFEF00D
        out dx, eax
        hlt
    """)
    bm.run()
    assert bm.state.rbx == 0x12345679 and bm.state.rax & 0xFF == 0x0D
    assert bm.device.writes == [(0, 1, 0x5A), (1, 2, 0xBEEF), (1, 4, 0xCAFEF00D)]


def test_rep_outs_and_rep_ins_move_strings_through_a_port(bm: BareMetal) -> None:
    bm.load(BUFFER, b"emu!")
    bm.code(f"""
        mov dx, {PORT_BASE}
        mov rsi, {BUFFER:#x}
        mov ecx, 4
        rep outsb
        mov rdi, {BUFFER + 0x100:#x}
        mov ecx, 2
        rep insw
        hlt
    """)
    bm.run()
    assert bm.device.writes == [(0, 1, b) for b in b"emu!"]
    assert bm.phys.read(BUFFER + 0x100, 4) == bytes.fromhex("7856 7856")
    assert (bm.state.rcx, bm.state.rsi, bm.state.rdi) == (0, BUFFER + 4, BUFFER + 0x104)


def msr_program(index: int, value: int) -> str:
    return f"""
        mov ecx, {index:#x}
        mov eax, {value & 0xFFFF_FFFF:#x}
        mov edx, {value >> 32:#x}
        wrmsr
        xor eax, eax
        xor edx, edx
        rdmsr
        shl rdx, 32
        or rax, rdx
        hlt
    """


@pytest.mark.parametrize(("index", "value"), [
    (0xC000_0081, 0x0023_0010_0000_0000),   # STAR
    (0xC000_0082, 0xFFFF_FFFF_8100_0000),   # LSTAR
    (0xC000_0084, 0x47700),                 # SFMASK
    (0xC000_0100, 0x7F00_1234_5000),        # FS_BASE
    (0xC000_0102, 0xFFFF_8880_0000_0000),   # KERNEL_GS_BASE
    (0xC000_0103, 3),                       # TSC_AUX
    (0x277, 0x0007_0406_0007_0406),         # PAT (Linux's value)
    (0x174, 0x10),                          # SYSENTER_CS
])
def test_known_msrs_read_back_what_was_written(bm: BareMetal, index: int, value: int) -> None:
    bm.code(msr_program(index, value))
    bm.run()
    assert bm.state.rax == value and gp_count(bm) == 0


@pytest.mark.parametrize(("index", "value"), [
    (0x48, 0),                              # IA32_SPEC_CTRL: not advertised
    (0xC000_0082, 0x8000_0000_0000),        # LSTAR must be canonical
    (0x277, 0x2),                           # PAT memory type 2 is reserved
    (0xC000_0080, 1 << 12),                 # EFER reserved bit
    (0xC000_0084, 1 << 32),                 # SFMASK upper half reserved
    (0x1B, APIC_DEFAULT | (1 << 11)),       # no APIC to enable
])
def test_unknown_msrs_and_reserved_values_are_a_gp_a_handler_can_catch(bm: BareMetal, index: int, value: int) -> None:
    bm.code(f"lea r13, [rip + resume]; mov ecx, {index:#x}; mov eax, {value & 0xFFFF_FFFF:#x};"
            f"mov edx, {value >> 32:#x}; wrmsr; resume: hlt")
    bm.run()
    assert gp_count(bm) == 1 and bm.log(Vector.GP)[1] == 0


def test_reading_fixed_msrs(bm: BareMetal) -> None:
    bm.code("mov ecx, 0x1b; rdmsr; mov r8, rax; mov ecx, 0xfe; rdmsr; mov r9, rax; mov ecx, 0xc0000080; rdmsr; hlt")
    bm.run()
    assert (bm.state.r8, bm.state.r9, bm.state.rax) == (APIC_DEFAULT, 0, 0xD01)
    assert not bm.state.r8 & (1 << 11), "the APIC is not enabled"


def test_the_msrs_linux_reads_on_an_intel_cpu_exist_as_on_hardware(bm: BareMetal) -> None:
    """early_init_intel's sequence: the microcode revision (WRMSR 0 to IA32_BIOS_SIGN_ID, CPUID 1, RDMSR: the
    revision in EDX), IA32_MISC_ENABLE's fast-strings bit, and the microcode loader's IA32_PLATFORM_ID."""
    bm.code("""
        xor eax, eax
        cpuid
        mov r8d, ebx
        mov r9d, edx
        mov r10d, ecx
        mov ecx, 0x8b
        xor eax, eax
        xor edx, edx
        wrmsr
        mov eax, 1
        cpuid
        mov ecx, 0x8b
        rdmsr
        mov r11d, edx
        mov ecx, 0x1a0
        rdmsr
        mov r12, rax
        and eax, -2
        wrmsr
        rdmsr
        mov r13, rax
        mov ecx, 0x17
        rdmsr
        mov r14, rax
        hlt
    """)
    bm.run()
    vendor = b"".join(getattr(bm.state, r).to_bytes(4, "little") for r in ("r8", "r9", "r10"))
    assert vendor == b"GenuineIntel"
    assert bm.state.r11 == 1, "the microcode revision"
    assert bm.state.r12 == 0x1801, "fast strings enabled, BTS and PEBS unavailable"
    assert bm.state.r13 == 0x1800, "fast strings can be turned off"
    assert bm.state.r14 == 0 and gp_count(bm) == 0


@pytest.mark.parametrize(("index", "value"), [
    (0x17, 0),                              # IA32_PLATFORM_ID is read-only
    (0x1A0, 0x1801 | (1 << 22)),            # IA32_MISC_ENABLE: limiting CPUID levels is not modelled
    (0x1A0, 0x0801),                        # IA32_MISC_ENABLE: PEBS-unavailable is read-only
    (0x3A, 0),                              # IA32_FEATURE_CONTROL: there is no VMX or SMX
    (0xCE, 0),                              # MSR_PLATFORM_INFO: Linux probes it with rdmsrl_safe
])
def test_intel_msrs_linux_probes_or_must_not_change_are_a_gp(bm: BareMetal, index: int, value: int) -> None:
    bm.code(f"lea r13, [rip + resume]; mov ecx, {index:#x}; mov eax, {value & 0xFFFF_FFFF:#x};"
            f"mov edx, {value >> 32:#x}; wrmsr; resume: hlt")
    bm.run()
    assert gp_count(bm) == 1 and bm.log(Vector.GP)[1] == 0


def test_writing_the_tsc_moves_the_virtual_clock_the_tsc_reads(bm: BareMetal) -> None:
    bm.code(f"{msr_program(0x10, 1_000_000).replace('hlt', '')} rdtsc; shl rdx, 32; or rax, rdx; hlt")
    bm.run()
    assert 1_000_000 <= bm.state.rax < 1_000_020


def test_rdtscp_returns_tsc_aux_and_cpuid_advertises_it_with_the_page_sizes(bm: BareMetal) -> None:
    bm.state.tsc_aux = 7
    bm.code("rdtscp; hlt")
    bm.run()
    assert bm.state.rcx == 7
    for feature in ("rdtscp", "pdpe1gb", "pse"):
        bit = FEATURE_BITS[feature]
        assert level().cpuid(bit.leaf, bit.subleaf)[bit.reg.value] >> bit.bit & 1, feature


def test_fs_and_gs_base_instructions_need_cr4_fsgsbase_which_the_kernel_may_set(bm: BareMetal) -> None:
    """#UD while CR4.FSGSBASE is clear; once MOV CR4 sets it, WRGSBASE and RDFSBASE work at CPL 0."""
    bm.state.fs_base = 0x1234
    bm.code("""
        lea r13, [rip + after]
        rdfsbase rax
    after:
        mov rbx, cr4
        or rbx, 0x10000
        mov cr4, rbx
        mov rcx, 0x5000
        wrgsbase rcx
        rdfsbase rdx
        hlt
    """)
    bm.run()
    assert bm.log(Vector.UD)[0] == 1 and bm.state.rax == 0
    assert bm.state.gs_base == 0x5000 and bm.state.rdx == 0x1234 and bm.state.cr4 & 0x10000


def test_fs_base_from_msr_applies_to_fs_relative_loads_and_swapgs_swaps_gs(bm: BareMetal) -> None:
    bm.put64(BUFFER + 8, 0x55)
    bm.code(f"""
        {msr_program(0xC000_0100, BUFFER).replace('hlt', '')}
        xor ebx, ebx
        mov r8, fs:[rbx + 8]
        {msr_program(0xC000_0102, BUFFER).replace('hlt', '')}
        swapgs
        mov r9, gs:[rbx + 8]
        hlt
    """)
    bm.run()
    assert (bm.state.r8, bm.state.r9, bm.state.gs_base, bm.state.kernel_gs_base) == (0x55, 0x55, BUFFER, 0)


def test_loading_fs_takes_the_descriptors_base_and_a_null_selector_zeroes_it(bm: BareMetal) -> None:
    bm.code("mov ax, 0x38; mov fs, ax; xor ebx, ebx; mov r8, fs:[rbx]; push fs; pop r9; push 0; pop fs; hlt")
    bm.tables.map(SEGMENT_BASE, BUFFER)
    bm.put64(BUFFER, 0x77)
    bm.run()
    assert (bm.state.r8, bm.state.r9, bm.state.fs, bm.state.fs_base) == (0x77, 0x38, 0, 0)
    assert bm.state.rsp == 0x60000, "PUSH FS and POP FS move whole 8-byte slots"


def test_a_selector_beyond_the_gdt_limit_or_to_a_code_segment_for_ss_faults(bm: BareMetal) -> None:
    bm.code(f"""
        lea r13, [rip + next]
        mov ax, 0x80
        mov ds, ax
    next:
        lea r13, [rip + done]
        mov ax, {KERNEL_CS}
        mov ss, ax
    done:
        hlt
    """)
    bm.run()
    assert gp_count(bm) == 2 and bm.log(Vector.GP)[1] == KERNEL_CS and bm.state.ss == KERNEL_DS


def test_ltr_loads_the_tss_base_and_marks_the_descriptor_busy(bm: BareMetal) -> None:
    bm.state.tr, bm.state.tss_base = 0, 0
    bm.code(f"mov ax, {TSS_SELECTOR}; ltr ax; str r8; lea r13, [rip + done]; ltr ax; done: hlt")
    bm.run()
    assert (bm.state.tr, bm.state.tss_base, bm.state.r8) == (TSS_SELECTOR, TSS, TSS_SELECTOR)
    assert bm.phys.ram[GDT + TSS_SELECTOR + 5] == 0x8B
    assert bm.log(Vector.GP)[:2] == (1, TSS_SELECTOR), "a busy TSS cannot be loaded again"


def test_lgdt_and_lidt_round_trip_through_sgdt_and_sidt(bm: BareMetal) -> None:
    bm.code(f"""
        lgdt [rip + table]
        sgdt [{BUFFER:#x}]
        sidt [{BUFFER + 16:#x}]
        hlt
    table:
        .word 0x4f
        .quad {GDT:#x}
    """)
    bm.run()
    assert struct.unpack_from("<HQ", bm.phys.ram, BUFFER) == (0x4F, GDT)
    assert struct.unpack_from("<HQ", bm.phys.ram, BUFFER + 16) == (bm.state.idtr_limit, bm.state.idtr_base)


def test_lretq_reloads_cs_as_linux_startup_does(bm: BareMetal) -> None:
    bm.state.cs = 0x8
    bm.code(f"push {KERNEL_CS}; lea rax, [rip + next]; push rax; retfq; next: mov r8, 1; hlt")
    bm.run()
    assert (bm.state.cs, bm.state.r8, bm.state.rsp) == (KERNEL_CS, 1, 0x60000)


def test_popf_changes_if_and_iopl_at_cpl_0_but_not_at_cpl_3(bm: BareMetal) -> None:
    bm.code("push 0x3202; popfq; pushfq; pop r8; mov eax, 60; hlt")
    bm.run()
    assert bm.state.r8 & (Flag.IF | Flag.IOPL) == Flag.IF | Flag.IOPL
    user = BareMetal()
    user.code(enter_user(0x200000, rflags=0x202))
    user.code("push 0x3002; popfq; pushfq; pop r8; mov eax, 60; syscall", 0x200000)
    user.run()
    assert user.state.r8 & (Flag.IF | Flag.IOPL) == Flag.IF


@pytest.mark.parametrize(("program", "why"), [
    ("mov rax, cr4; bts rax, 20; mov cr4, rax", "SMEP is not supported"),
    ("mov rax, cr0; btr rax, 31; mov cr0, rax", "paging cannot be turned off in 64-bit mode"),
    ("mov rax, cr4; btr rax, 5; mov cr4, rax", "PAE cannot be turned off in 64-bit mode"),
    ("mov rax, 1 << 45; mov cr3, rax", "CR3 above MAXPHYADDR"),
    ("mov eax, 16; mov cr8, rax", "CR8 has four bits"),
    ("mov ecx, 0xc0000080; rdmsr; btr eax, 8; wrmsr", "LME cannot change under paging"),
])
def test_invalid_control_register_values_are_a_gp(bm: BareMetal, program: str, why: str) -> None:
    bm.code(f"lea r13, [rip + done]; {program}; done: hlt")
    bm.run()
    assert gp_count(bm) == 1, why


def test_control_and_debug_registers_read_back(bm: BareMetal) -> None:
    bm.code("mov eax, 5; mov cr8, rax; mov r8, cr8; mov rax, 0x400; mov dr7, rax; mov r9, dr7; mov r10, cr0;"
            "clts; mov r11, cr0; hlt")
    bm.state.cr0 |= 1 << 3
    bm.run()
    s = bm.state
    assert (s.r8, s.r9, s.dr7) == (5, 0x400, 0x400)
    assert s.r10 & (1 << 3) and not s.r11 & (1 << 3)


def test_the_kernel_enables_avx_as_linux_does_cr4_osxsave_then_xsetbv(bm: BareMetal) -> None:
    """Linux's fpu__init_cpu_xstate: CR4.OSXSAVE, then XCR0 = x87 | SSE | AVX; VEX instructions then run, and
    XCR0 starts at its reset value, x87 only (SDM Vol. 3A, table 10-1)."""
    bm.code("mov rax, cr4; bts rax, 18; mov cr4, rax; xor ecx, ecx; xgetbv; mov r8, rax; "
            "mov eax, 7; xor edx, edx; xsetbv; xgetbv; mov r9, rax; vpcmpeqd ymm3, ymm3, ymm3; hlt")
    bm.run()
    assert (bm.state.r8, bm.state.r9, bm.state.xcr0, bm.state.ymm(3)) == (1, 7, 7, (1 << 256) - 1)
    assert CpuState().xcr0 == 1


def test_verw_sets_zf_for_a_writable_data_segment_as_linux_mds_clearing_uses_it(bm: BareMetal) -> None:
    bm.code(f"mov ax, {KERNEL_DS}; verw ax; setz r8b; mov ax, {KERNEL_CS}; verw ax; setz r9b; hlt")
    bm.run()
    assert (bm.state.r8 & 0xFF, bm.state.r9 & 0xFF) == (1, 0)


def test_cli_and_sti_change_if_at_cpl_0(bm: BareMetal) -> None:
    bm.code("sti; pushfq; pop r8; cli; pushfq; pop r9; hlt")
    run = bm.run()
    assert bm.state.r8 & Flag.IF and not bm.state.r9 & Flag.IF and run.events == ["sti"]
    assert not read_rflags(bm.state) & Flag.IF


def test_hlt_at_cpl_0_halts_with_rip_past_it(bm: BareMetal) -> None:
    bm.code("nop; hlt; nop")
    bm.run()
    assert bm.state.rip == KERNEL_CODE + 2


@pytest.mark.parametrize(("osxmmexcpt", "vector"), [(True, Vector.XM), (False, Vector.UD)])
def test_an_unmasked_simd_exception_is_xm_with_cr4_osxmmexcpt_else_ud(bm: BareMetal, osxmmexcpt: bool,
                                                                      vector: Vector) -> None:
    """SDM Vol. 3A, 6.15 "Interrupt 19": DIVPS by zero with MXCSR.ZM clear faults at the DIVPS, leaves its
    destination unchanged and sets MXCSR.ZE (not PE, although the other lanes round); #UD instead when the
    kernel did not set CR4.OSXMMEXCPT."""
    if not osxmmexcpt:
        bm.state.cr4 &= ~(1 << 10)
    bm.state.mxcsr = 0x1F80 & ~(1 << 9)
    bm.state.set_xmm(0, 0x3F800000_3F800000_3F800000_3F800000)       # 1.0 in each lane
    bm.state.set_xmm(1, 0x40400000_40400000_40400000_00000000)       # 0.0, then 3.0
    bm.code("""
        lea r13, [rip + after]
        divps xmm0, xmm1
    after:
        hlt
    """)
    bm.run()
    count, _, _, rip = bm.log(vector)
    assert (count, rip) == (1, KERNEL_CODE + 7)           # the DIVPS, after the 7-byte LEA
    assert bm.state.mxcsr == 0x1D84 and bm.state.xmm(0) == 0x3F800000_3F800000_3F800000_3F800000
