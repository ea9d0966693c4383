"""Far pointers, LAR/LSL, SMSW/LMSW and INT1 at system level (cpu/semantics/segment.py, privileged.py,
cpu/exceptions.py), on the bare machine with Linux's GDT: what a kernel sees, where the user-mode host tests
(tests/semantics/test_segment.py) cannot go: CPL 0, a descriptor with a base, the error codes, CR0 and
INT1 through a DPL-0 gate."""

from __future__ import annotations

import pytest

from cpu.exceptions import Vector
from tests.system.baremetal import (
    DATA_WITH_BASE,
    KERNEL_CODE,
    KERNEL_CS,
    KERNEL_DS,
    SEGMENT_BASE,
    TSS_SELECTOR,
    USER32_CS,
    USER_CS,
    BareMetal,
    enter_user,
)

USER_CODE = 0x200000
POINTER = 0x280100
"""A far pointer in a user page (readable from both rings)."""


@pytest.fixture(params=["off", "eager"])
def bm(request: pytest.FixtureRequest) -> BareMetal:
    return BareMetal(jit=request.param)


def test_int1_from_ring_3_is_a_debug_trap_even_through_a_dpl_0_gate(bm: BareMetal) -> None:
    """INT3 through the same kind of gate would be #GP: INT1's #DB is delivered as a hardware exception."""
    bm.code(enter_user(USER_CODE))
    bm.code("lea r13, [rip + resume]; int1; resume: mov eax, 60; syscall", USER_CODE)
    run = bm.run()
    count, _, _, rip = bm.log(Vector.DB)
    assert run.delivered == [Vector.DB] and (count, rip) == (1, USER_CODE + 8)
    assert bm.log(Vector.GP)[0] == 0


def test_a_kernel_far_call_and_jmp_through_m16_64_reach_the_target_and_retfq_returns(bm: BareMetal) -> None:
    bm.code(f"""
        lea rax, [rip + target]; mov [{POINTER:#x}], rax; mov word ptr [{POINTER + 8:#x}], {KERNEL_CS}
        mov rbx, rsp
        .byte 0x48, 0xff, 0x1c, 0x25; .long {POINTER:#x}
        mov r9, rsp
        lea rax, [rip + there]; mov [{POINTER:#x}], rax
        .byte 0x48, 0xff, 0x2c, 0x25; .long {POINTER:#x}
        hlt
    target:
        mov r8, [rsp + 8]
        .byte 0x48, 0xcb
    there:
        mov r10, 1
        hlt""")
    bm.run()
    s = bm.state
    assert s.r8 == KERNEL_CS and s.r9 == s.rbx and s.r10 == 1 and s.cs == KERNEL_CS


@pytest.mark.parametrize("selector, vector, error", [
    (USER_CS, Vector.GP, USER_CS & ~3),          # DPL 3 != CPL 0, no gate: no privilege change
    (USER32_CS, Vector.GP, USER32_CS & ~3),
    (KERNEL_DS, Vector.GP, KERNEL_DS),           # not code
    (TSS_SELECTOR, Vector.GP, TSS_SELECTOR),     # task switches are not modelled (nor on x86-64)
    (0, Vector.GP, 0),
    (0x78, Vector.GP, 0x78),                     # past the GDT's limit
])
def test_a_far_call_to_what_is_not_a_kernel_code_segment_faults_with_its_selector(bm: BareMetal, selector: int,
                                                                                   vector: int, error: int) -> None:
    bm.code(f"""
        mov qword ptr [{POINTER:#x}], {KERNEL_CODE}; mov word ptr [{POINTER + 8:#x}], {selector}
        mov rbx, rsp; lea r13, [rip + resume]
        .byte 0x48, 0xff, 0x1c, 0x25; .long {POINTER:#x}
    resume:
        hlt""")
    bm.run()
    count, code, _, _ = bm.log(vector)
    assert (count, code) == (1, error) and bm.state.rsp == bm.state.rbx


def test_lfs_loads_the_descriptor_s_base_and_lss_the_kernel_stack_segment(bm: BareMetal) -> None:
    bm.code(f"""
        mov dword ptr [{POINTER:#x}], 0x1234; mov word ptr [{POINTER + 4:#x}], {DATA_WITH_BASE}
        lfs ecx, [{POINTER:#x}]
        mov word ptr [{POINTER + 4:#x}], {KERNEL_DS}
        lss edx, [{POINTER:#x}]
        mov ax, fs; mov bx, ss
        hlt""")
    bm.run()
    s = bm.state
    assert (s.rcx, s.rdx, s.fs_base, s.rax & 0xFFFF, s.rbx & 0xFFFF) == (0x1234, 0x1234, SEGMENT_BASE,
                                                                        DATA_WITH_BASE, KERNEL_DS)


def test_lar_and_lsl_at_cpl_0_see_the_kernel_s_segments_and_the_tss(bm: BareMetal) -> None:
    """At CPL 3 the host hides these (DPL 0); at CPL 0 LSL gives the TSS limit (103) and the flat limit."""
    bm.code(f"""
        mov eax, {TSS_SELECTOR}; lar ecx, eax; setz r8b; lsl edx, eax; setz r9b
        mov eax, {KERNEL_CS}; lar r10d, eax; lsl r11d, eax
        mov eax, 0x78; lar r12d, eax; setz r14b
        hlt""")
    bm.run()
    s = bm.state
    assert (s.r8 & 0xFF, s.rcx, s.r9 & 0xFF, s.rdx) == (1, 0x8900 | (s.rcx & 0xF0_0000), 1, 103)
    assert (s.r10, s.r11, s.r14 & 0xFF) == (0xAF9B00, 0xFFFF_FFFF, 0)


def test_smsw_reads_cr0_at_any_cpl_and_lmsw_sets_ts_but_cannot_clear_pe(bm: BareMetal) -> None:
    """LMSW loads MP, EM and TS (bits 3:1); its bit 0 may set PE but a 0 leaves it set.  At CPL 3 it is #GP(0)."""
    cr0 = bm.state.cr0
    assert cr0 & 2, "the machine starts with CR0.MP, which LMSW 8 clears"
    bm.code(f"""
        smsw rbx; smsw word ptr [{POINTER:#x}]
        mov eax, 0x8; lmsw ax; smsw r8
        mov eax, 0; lmsw ax; smsw r9
        {enter_user(USER_CODE)}""")
    bm.code("smsw esi; lea r13, [rip + resume]; lmsw ax; resume: mov eax, 60; syscall", USER_CODE)
    bm.run()
    s = bm.state
    assert s.rbx == cr0 and bm.phys.ram[POINTER:POINTER + 2] == (cr0 & 0xFFFF).to_bytes(2, "little")
    assert s.r8 == (cr0 & ~0xE) | 8 and s.r9 == cr0 & ~0xE and cr0 & 1
    assert s.rsi == s.r9 & 0xFFFF_FFFF and bm.log(Vector.GP)[:2] == (1, 0)
