"""Delivery through the IDT, privilege changes, SYSCALL/SYSRET and the interrupt window (cpu/exceptions.py)."""

from __future__ import annotations

import struct
import threading

import pytest

from cpu.exceptions import TripleFault, Vector, accepts_interrupt, deliver
from cpu.flags import Flag, read_rflags
from cpu.interp import ExitKind
from tests.system.baremetal import (
    IST1_TOP,
    KERNEL_CODE,
    KERNEL_CS,
    LOG_SYSCALL,
    PORT_BASE,
    RSP0,
    SYSCALL_ENTRY,
    USER_CS,
    USER_DS,
    BareMetal,
    enter_user,
)

USER_CODE = 0x200000
HANDLER = 0x70000
"""Where a test puts a handler of its own."""
NOTES = 0x78000
"""Where such a handler writes what it saw (supervisor page)."""


@pytest.fixture(params=["off", "eager"])
def bm(request: pytest.FixtureRequest) -> BareMetal:
    """The bare machine in the Python tier, and with every block compiled to native code."""
    return BareMetal(jit=request.param)


def notes(bm: BareMetal, n: int) -> tuple[int, ...]:
    return struct.unpack_from(f"<{n}Q", bm.phys.ram, NOTES)


FRAME_RECORDER = f"""
    mov [{NOTES:#x}], rsp
    mov rax, [rsp + 8]
    mov [{NOTES + 8:#x}], rax
    mov rax, [rsp + 24]
    mov [{NOTES + 16:#x}], rax
    mov rax, [rsp + 32]
    mov [{NOTES + 24:#x}], rax
    mov ax, ss
    movzx eax, ax
    mov [{NOTES + 32:#x}], rax
    pushfq
    pop rax
    mov [{NOTES + 40:#x}], rax
    iretq
"""
"""A handler (no error code) noting: its RSP, the saved CS, RSP, SS, its own SS and its RFLAGS."""


def test_a_gate_with_an_ist_index_always_switches_to_that_stack(bm: BareMetal) -> None:
    bm.code(FRAME_RECORDER, HANDLER)
    bm.set_gate(0x40, HANDLER, ist=1)
    bm.code("mov rbx, rsp; int 0x40; hlt")
    bm.run()
    rsp, cs, saved_rsp, ss, _, _ = notes(bm, 6)
    assert rsp == IST1_TOP - 40 and (cs, ss) == (KERNEL_CS, bm.state.ss)
    assert saved_rsp == bm.state.rbx


def test_an_interrupt_from_ring_3_runs_on_rsp0_with_a_null_ss_and_returns(bm: BareMetal) -> None:
    bm.code(FRAME_RECORDER, HANDLER)
    bm.set_gate(0x80, HANDLER, dpl=3)
    bm.code(enter_user(USER_CODE, rsp=0x280008))
    bm.code("mov rbx, rsp; int 0x80; mov r8, rsp; mov ax, cs; mov r9, rax; mov eax, 60; syscall", USER_CODE)
    bm.run()
    rsp, cs, saved_rsp, ss, handler_ss, _ = notes(bm, 6)
    assert rsp == (RSP0 - 40) and (cs, ss, saved_rsp) == (USER_CS, USER_DS, 0x280008)
    assert handler_ss == 0, "SS is the null selector after a privilege change"
    assert (bm.state.r8, bm.state.r9 & 0xFFFF) == (0x280008, USER_CS), "IRETQ came back to ring 3"


def test_int_n_through_a_gate_of_lower_dpl_is_a_gp_naming_the_gate(bm: BareMetal) -> None:
    bm.code(enter_user(USER_CODE))
    bm.code("lea r13, [rip + resume]; int 0x81; resume: mov eax, 60; syscall", USER_CODE)
    bm.run()
    count, error, _, rip = bm.log(Vector.GP)
    assert (count, error, rip) == (1, (0x81 << 3) | 2, USER_CODE + 7)


def test_a_not_present_gate_is_np_with_the_ext_bit_for_an_exception(bm: BareMetal) -> None:
    bm.set_gate(Vector.UD, 0, present=False)
    bm.code("lea r13, [rip + resume]; ud2; resume: hlt")
    run = bm.run()
    assert run.delivered == [Vector.UD]
    count, error, _, _ = bm.log(Vector.NP)
    assert (count, error) == (1, (Vector.UD << 3) | 2 | 1)


def test_syscall_enters_ring_0_at_lstar_and_sysret_returns_to_ring_3(bm: BareMetal) -> None:
    bm.code(enter_user(USER_CODE))
    bm.code("""
        mov eax, 5
        syscall
        mov rbx, rax
        mov ax, cs
        mov r8, rax
        mov ax, ss
        mov r9, rax
        pushfq
        pop r10
        mov eax, 60
        syscall
    """, USER_CODE)
    bm.run()
    s = bm.state
    assert s.rbx == 6, "the kernel stub added one"
    assert (s.r8 & 0xFFFF, s.r9 & 0xFFFF) == (USER_CS, USER_DS)
    assert s.r10 & Flag.IF and s.r11 & Flag.IF, "R11 saved RFLAGS, SYSRET restored it"
    assert struct.unpack_from("<Q", bm.phys.ram, LOG_SYSCALL)[0] == 2
    assert (s.cpl, s.cs, s.ss) == (0, KERNEL_CS, KERNEL_CS + 8) and SYSCALL_ENTRY < s.rip < SYSCALL_ENTRY + 64
    assert not read_rflags(s) & Flag.IF, "SFMASK cleared IF on the way in"


def test_syscall_is_undefined_while_efer_sce_is_clear(bm: BareMetal) -> None:
    bm.state.efer &= ~1
    bm.code("lea r13, [rip + resume]; syscall; resume: hlt")
    run = bm.run()
    assert run.delivered == [Vector.UD] and bm.state.rcx == 0


def test_sysret_to_a_non_canonical_rip_faults_in_ring_0(bm: BareMetal) -> None:
    bm.code("lea r13, [rip + resume]; mov rcx, 0x800000000000; sysret; resume: hlt")
    run = bm.run()
    assert run.delivered == [Vector.GP] and bm.state.cpl == 0


@pytest.mark.parametrize("insn", [
    "hlt", "cli", "sti", "mov cr3, rax", "mov rax, cr0", "mov dr7, rax", "wrmsr", "rdmsr", "lgdt [rsp]", "lidt [rsp]",
    "ltr ax", "invlpg [rsp]", "wbinvd", "swapgs", "in al, dx", "out 0x80, al", "rep outsb", "sysret",
])
def test_privileged_instructions_at_cpl_3_are_a_general_protection_fault(bm: BareMetal, insn: str) -> None:
    bm.code(enter_user(USER_CODE))
    bm.code(f"lea r13, [rip + resume]; {insn}; resume: mov eax, 60; syscall", USER_CODE)
    bm.run()
    count, error, _, rip = bm.log(Vector.GP)
    assert (count, error, rip) == (1, 0, USER_CODE + 7), insn


def test_iopl_3_lets_ring_3_use_cli_and_ports(bm: BareMetal) -> None:
    bm.code(enter_user(USER_CODE, rflags=0x3202))
    bm.code(f"cli; mov dx, {PORT_BASE}; mov al, 9; out dx, al; mov eax, 60; syscall", USER_CODE)
    run = bm.run()
    assert run.delivered == [] and bm.device.writes == [(0, 1, 9)]


def test_an_external_interrupt_wakes_hlt_through_an_interrupt_gate_that_clears_if(bm: BareMetal) -> None:
    bm.code(FRAME_RECORDER, HANDLER)
    bm.set_gate(0x30, HANDLER)
    bm.code("sti; nop; hlt; mov r8, 1; hlt")
    assert bm.run().exit.kind is ExitKind.HALT
    assert accepts_interrupt(bm.state)
    deliver(bm.cpu, 0x30, external=True)
    bm.run()
    assert bm.state.r8 == 1
    assert not notes(bm, 6)[5] & Flag.IF, "the handler ran with IF clear"
    assert read_rflags(bm.state) & Flag.IF, "IRETQ restored IF"


def test_a_trap_gate_keeps_if(bm: BareMetal) -> None:
    bm.code(FRAME_RECORDER, HANDLER)
    bm.set_gate(0x31, HANDLER, kind=0xF)
    bm.code("sti; nop; int 0x31; hlt")
    bm.run()
    assert notes(bm, 6)[5] & Flag.IF


def test_int3_is_delivered_as_a_trap_past_the_instruction(bm: BareMetal) -> None:
    bm.code("int3; mov r8, 1; hlt")
    run = bm.run()
    count, _, _, rip = bm.log(Vector.BP)
    assert run.delivered == [Vector.BP] and (count, rip, bm.state.r8) == (1, KERNEL_CODE + 1, 1)


def test_a_page_fault_while_delivering_a_page_fault_is_a_double_fault_on_the_ist_stack(bm: BareMetal) -> None:
    bm.code(f"mov [{NOTES:#x}], rsp; hlt", HANDLER)
    bm.set_gate(Vector.DF, HANDLER, ist=1)
    bm.code("mov rsp, 0x7000000000; mov rax, [rsp]; hlt")    # unmapped stack, unmapped load
    run = bm.run()
    assert run.delivered == [Vector.PF]
    assert notes(bm, 1)[0] == IST1_TOP - 48, "five words and the error code (0) on the IST1 stack"
    assert struct.unpack_from("<Q", bm.phys.ram, IST1_TOP - 48)[0] == 0
    assert bm.state.cr2 == 0x7000000000 - 8, "CR2 names the first push, of SS"


def test_a_fault_while_delivering_a_double_fault_is_a_triple_fault(bm: BareMetal) -> None:
    bm.code("lidt [rip + empty]; int3; empty: .word 0; .quad 0")
    with pytest.raises(TripleFault):
        bm.run()


def test_sti_and_mov_ss_hold_interrupts_off_for_one_more_instruction(bm: BareMetal) -> None:
    bm.code("sti; nop; mov ax, ss; mov ss, ax; nop; hlt")
    first = bm.cpu.run()
    assert (first.kind, first.event) == (ExitKind.EVENT, "sti")
    assert read_rflags(bm.state) & Flag.IF and not accepts_interrupt(bm.state)
    bm.cpu.run(1)
    assert accepts_interrupt(bm.state)
    shadow = bm.cpu.run()
    assert shadow.event == "mov-ss" and not accepts_interrupt(bm.state)
    assert bm.cpu.run().kind is ExitKind.HALT and accepts_interrupt(bm.state)


def test_request_exit_stops_a_spinning_cpu_from_another_thread(bm: BareMetal) -> None:
    bm.code("spin: inc rax; jmp spin")
    timer = threading.Timer(0.2, bm.cpu.request_exit)
    timer.start()
    exit_ = bm.cpu.run()
    timer.join()
    assert (exit_.kind, exit_.event) == (ExitKind.EVENT, "request") and bm.state.rax > 0


def test_the_interrupt_window_opens_when_popf_sets_if(bm: BareMetal) -> None:
    bm.code("mov rax, 1; push 0x202; popfq; spin: inc rbx; jmp spin")
    bm.cpu.request_interrupt_window()
    exit_ = bm.cpu.run(10_000)
    assert (exit_.kind, exit_.event) == (ExitKind.EVENT, "window") and accepts_interrupt(bm.state)


def test_the_icount_is_current_at_block_boundaries_for_devices_to_read(bm: BareMetal) -> None:
    seen: list[int] = []
    bm.device.write = lambda offset, size, value: seen.append(bm.state.icount)
    bm.code(f"mov ecx, 10; again: dec ecx; jnz again; mov dx, {PORT_BASE}; out dx, al; hlt")
    bm.run()
    assert seen == [1 + 2 * 10] and bm.state.icount == 1 + 2 * 10 + 3


def test_iretq_cannot_return_to_a_more_privileged_level(bm: BareMetal) -> None:
    bm.code(enter_user(USER_CODE))
    bm.code(f"""
        lea r13, [rip + resume]
        push {USER_DS}
        push rsp
        pushfq
        push {KERNEL_CS}
        push 0
        iretq
    resume:
        mov eax, 60
        syscall
    """, USER_CODE)
    bm.run()
    count, error, _, _ = bm.log(Vector.GP)
    assert (count, error) == (1, KERNEL_CS)


def test_iretq_at_cpl_0_may_change_if_and_iopl(bm: BareMetal) -> None:
    bm.code(f"""
        mov rax, rsp
        push {0x18}
        push rax
        push 0x3202
        push {KERNEL_CS}
        lea rax, [rip + next]
        push rax
        iretq
    next:
        hlt
    """)
    bm.run()
    assert read_rflags(bm.state) & (Flag.IF | Flag.IOPL) == Flag.IF | Flag.IOPL
    assert (bm.state.cpl, bm.state.cs) == (0, KERNEL_CS)
