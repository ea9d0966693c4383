"""The host-CPU oracle (``host.py``) on instructions emu already has: it must agree with emu, and with unicorn.

These cases check the oracle itself as much as emu: every general register, RFLAGS (DF included),
FS-relative addressing, the XMM registers, the data page, and a fault with the registers at the
faulting instruction.
"""

from __future__ import annotations

import pytest

from tests.semantics.harness import DATA, Case, random_flags, run_unicorn, values
from tests.semantics.host import check_host, needs_host, run_host

pytestmark = needs_host


@pytest.mark.parametrize("asm", ["add rax, rbx", "adc ecx, edx", "sbb r9w, r10w", "imul r11, r12",
                                 "rol r13b, cl", "neg r15", "xadd rsi, rdi", "bswap rbp"])
def test_integer_instructions_agree(rng, asm):
    for a, b in zip(values(64, rng, 12), reversed(values(64, rng, 12)), strict=True):
        regs = {n: rng.getrandbits(64) for n in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp",
                                                  "r9", "r10", "r11", "r12", "r13", "r15")}
        regs.update(rax=a, rbx=b, rcx=b & 0x3F)
        check_host(Case(asm, regs, rflags=random_flags(rng), undefined=0x8D5 if "imul" in asm or "rol" in asm else 0))


def test_every_register_and_the_direction_flag_come_back():
    case = Case("std; stosb; lea rsp, [rsp - 8]", {"rdi": DATA + 16, "rax": 0x5A, "rsp": DATA + 0x1000,
                                                   **{f"r{i}": i * 0x1111 for i in range(8, 16)}})
    host = run_host(case)
    assert host.rflags & 0x400 and host.regs["rdi"] == DATA + 15 and host.data[16] == 0x5A
    assert host.regs["rsp"] == DATA + 0x1000 - 8 and host.regs["r15"] == 15 * 0x1111
    check_host(case)


def test_fs_relative_addressing_uses_the_case_fs_base():
    case = Case("mov qword ptr fs:[rcx + 8], rax; mov rbx, qword ptr fs:[rcx]", {"rax": 0x1122334455667788},
                data=bytes(0x800) + (0xDEADBEEF).to_bytes(8, "little"))
    host = run_host(case)
    assert host.regs["rbx"] == 0xDEADBEEF and host.data[0x808:0x810] == (0x1122334455667788).to_bytes(8, "little")
    check_host(case)


def test_xmm_registers_round_trip(rng):
    xmm = {i: rng.getrandbits(128) for i in range(16)}
    case = Case("paddq xmm0, xmm15; pxor xmm7, xmm8; movdqu xmmword ptr [rsi], xmm3", {"rsi": DATA + 32}, xmm=xmm)
    host = run_host(case)
    assert host.xmm[15] == xmm[15] and host.data[32:48] == xmm[3].to_bytes(16, "little")
    check_host(case)


def test_a_fault_reports_the_registers_at_the_faulting_instruction():
    case = Case("mov rax, 7; mov rbx, qword ptr [rcx]; mov rax, 9", {"rcx": 0x7000_0000})
    host = run_host(case)
    assert host.faulted and host.regs["rax"] == 7
    assert run_unicorn(case).faulted
    check_host(case)


@pytest.mark.parametrize("asm", ["ud2", "div rcx", "int3"])
def test_exceptions_fault_on_the_host_as_in_emu(asm):
    check_host(Case(asm, {"rax": 5, "rcx": 0}))


def test_the_oracle_sees_what_unicorn_cannot():
    """FXSAVE's x87 and MXCSR image after a float operation: compared byte for byte through the data page."""
    case = Case("addsd xmm0, xmm1; stmxcsr dword ptr [rsi]", {"rsi": DATA},
                xmm={0: 0x3FF0000000000001, 1: 0x3CA0000000000000})
    assert run_host(case).data[:4] == (0x1FA0).to_bytes(4, "little")   # PE: the sum was inexact
    check_host(case)
