"""Stack instructions against unicorn: PUSH, POP, PUSHF(Q), POPF(Q), LEAVE, ENTER.

RSP points into the data page, so what is pushed is compared byte for
byte.  POPF loads random status flags and DF; TF is never set (it would
trap after the instruction).
"""

from __future__ import annotations

import pytest

from cpu.flags import ARITH, Flag
from tests.semantics import host
from tests.semantics.harness import DATA, check, random_flags, values
from tests.semantics.host import check_host, needs_host
from tests.semantics.operands import Setup

TOP = DATA + 0x1000


def _stack(rng, misalign=False):
    s = Setup(rng, data_bytes=0x1100)
    s.set("rsp", TOP - 8 * rng.randrange(1, 16) - (rng.randrange(1, 8) if misalign else 0))
    return s


def _at_rsp(s, offset, size, value):
    """Put ``value`` at [rsp + offset] (in the data page)."""
    return s.mem(s.regs["rsp"] - DATA + offset, size, value)


PUSH_FORMS = {
    "r64": "push {r64}",
    "r64 rex": "push r12",
    "r16": "push {r16}",
    "r16 rex": "push r9w",
    "imm8": "push -0x80",
    "imm8 positive": "push 0x7f",
    "imm32": "push 0x12345678",
    "imm32 negative": "push -0x12345678",
    "imm16": ".byte 0x66, 0x68, 0x34, 0x92",
    "imm8 16-bit": ".byte 0x66, 0x6a, 0x80",
    "m64": "push qword ptr [rsi + 0x20]",
    "m16": "push word ptr [rsi + 0x20]",
    "rsp": "push rsp",
    "sp": "push sp",
    "m64 rsp-relative": "push qword ptr [rsp + 8]",
}


@pytest.mark.parametrize("misalign", [False, True], ids=["aligned", "misaligned"])
@pytest.mark.parametrize("form", PUSH_FORMS)
def test_push(rng, form, misalign):
    for v in values(64, rng, 5):
        s = _stack(rng, misalign)
        s.set("rbx", v)
        s.set("r12", v ^ 0x5A5A)
        s.set("r9", v >> 3)
        s.mem(0x20, 64, v)
        _at_rsp(s, 8, 64, v >> 1)
        asm = PUSH_FORMS[form].format(r64="rbx", r16="bx")
        check(s.case(asm, random_flags(rng)))


POP_FORMS = {
    "r64": "pop rbx",
    "r64 rex": "pop r13",
    "r16": "pop bx",
    "r16 rex": "pop r10w",
    "m64": "pop qword ptr [rsi + 0x30]",
    "m16": "pop word ptr [rsi + 0x30]",
    "rsp": "pop rsp",
    "m64 via rsp": "pop qword ptr [rsp]",
    "m64 via rsp+8": "pop qword ptr [rsp + 8]",
    "two": "pop rax; pop rcx",
}


@pytest.mark.parametrize("misalign", [False, True], ids=["aligned", "misaligned"])
@pytest.mark.parametrize("form", POP_FORMS)
def test_pop(rng, form, misalign):
    for v in values(64, rng, 5):
        s = _stack(rng, misalign)
        _at_rsp(s, 0, 64, v)
        _at_rsp(s, 8, 64, rng.getrandbits(64))
        _at_rsp(s, 16, 64, rng.getrandbits(64))
        check(s.case(POP_FORMS[form], random_flags(rng)))


def test_push_pop_sequence(rng):
    for _ in range(10):
        s = _stack(rng)
        check(s.case("push rax; push rbx; push -1; pop rcx; pop rdx; push word ptr [rsi]; pop r8w; pop r9",
                     random_flags(rng)))


# -- PUSHF / POPF -------------------------------------------------------------------------------------------------

def _flag_image(rng):
    """A value for POPF: random status flags and DF, IF and bit 1 set, never TF."""
    return 0x202 | (rng.getrandbits(12) & (ARITH | Flag.DF))


FLAG_FORMS = {
    "pushfq": "pushfq",
    "popfq": "popfq",
    "pushf 16": ".byte 0x66, 0x9c",
    "popf 16": ".byte 0x66, 0x9d",
    "popfq then pushfq": "popfq; pushfq",
    "flags of a result": "add rax, rbx; pushfq; pop rcx",
    "popfq feeds a condition": "popfq; setl al; setbe bl; cmovo rcx, rdx",
    "pushfq after cld std": "std; pushfq; cld; pushfq",
}


@pytest.mark.parametrize("form", FLAG_FORMS)
def test_pushf_popf(rng, form):
    for _ in range(16):
        s = _stack(rng)
        _at_rsp(s, 0, 64, _flag_image(rng))
        check(s.case(FLAG_FORMS[form], _flag_image(rng)))


# -- LEAVE / ENTER ----------------------------------------------------------------------------------------------------

def test_leave(rng):
    for _ in range(10):
        s = _stack(rng)
        s.set("rbp", s.regs["rsp"] + 8 * rng.randrange(0, 6))
        s.mem(s.regs["rbp"] - DATA, 64, rng.getrandbits(64))
        check(s.case("leave", random_flags(rng)))


@pytest.mark.parametrize("level", [0, 1, 2, 3])
@pytest.mark.parametrize("alloc", [0, 8, 0x28, 0x100])
def test_enter(rng, alloc, level):
    for _ in range(3):
        s = _stack(rng)
        s.set("rbp", s.regs["rsp"] + 8 * rng.randrange(4, 10))     # outer frames' pointers live above
        check(s.case(f"enter {alloc}, {level}", random_flags(rng)))


def test_enter_leave_pair(rng):
    for _ in range(6):
        s = _stack(rng)
        s.set("rbp", s.regs["rsp"] + 0x40)
        check(s.case("enter 0x20, 0; mov qword ptr [rbp - 8], rax; leave; enter 0x10, 1; leave"))


ENTER_16 = ".byte 0x66, 0xc8, {low}, {high}, {level}"
"""ENTER imm16, imm8 with a 0x66 prefix (keystone does not take a 16-bit ENTER)."""


@pytest.mark.parametrize("level", [0, 1, 2, 3, 33])
def test_enter_with_a_16_bit_operand_size_pushes_words(rng, level):
    """Frame pointers in the data page: unicorn and the host agree."""
    for alloc in (0, 6, 0x1F0):
        s = _stack(rng)
        s.set("rbp", s.regs["rsp"] + 2 * rng.randrange(4, 20))
        case = s.case(ENTER_16.format(low=alloc & 0xFF, high=alloc >> 8, level=level), random_flags(rng))
        check(case)
        if host.available:
            check_host(case)


@needs_host
@pytest.mark.parametrize("level", [0, 1])
def test_enter_with_a_16_bit_operand_size_sets_bp_and_keeps_the_rest_of_rbp(rng, level):
    """unicorn puts the whole frame address in RBP; this CPU changes BP only."""
    for _ in range(4):
        s = _stack(rng)
        s.set("rbp", (rng.getrandbits(15) << 32) | rng.getrandbits(32))
        check_host(s.case(ENTER_16.format(low=8, high=0, level=level), random_flags(rng)))


@pytest.mark.parametrize("form", [".byte 0x66, 0xc9", ".byte 0x66, 0x48, 0xc9"], ids=["leave16", "rex.w wins"])
def test_leave_with_a_16_bit_operand_size_pops_bp(rng, form):
    for _ in range(6):
        s = _stack(rng)
        s.set("rbp", s.regs["rsp"] + 2 * rng.randrange(0, 12))
        s.mem(s.regs["rbp"] - DATA, 64, rng.getrandbits(64))
        case = s.case(form, random_flags(rng))
        check(case)
        if host.available:
            check_host(case)


def test_push_and_pop_of_fs_and_gs_with_a_16_bit_operand_size_move_two_bytes(rng):
    s = _stack(rng)
    check(s.case(".byte 0x66, 0x0f, 0xa0; .byte 0x66, 0x0f, 0xa8; push word ptr [rsp]; pop ax", random_flags(rng)))


FUZZ_CASES = 4_500


# -- fuzz ------------------------------------------------------------------------------------------------------------

@pytest.mark.fuzz
def test_fuzz_stack(rng):
    for _ in range(FUZZ_CASES):
        s = _stack(rng, misalign=rng.random() < 0.2)
        for r in ("rax", "rbx", "r12", "r9"):
            s.set(r, rng.getrandbits(64))
        s.set("rbp", s.regs["rsp"] + 8 * rng.randrange(4, 10))
        s.mem(0x20, 64, rng.getrandbits(64))
        for off in (0, 8, 16):
            _at_rsp(s, off, 64, _flag_image(rng) if off == 0 and rng.random() < 0.5 else rng.getrandbits(64))
        kind = rng.random()
        if kind < 0.35:
            asm = PUSH_FORMS[rng.choice(list(PUSH_FORMS))].format(r64="rax", r16="ax")
        elif kind < 0.7:
            asm = POP_FORMS[rng.choice(list(POP_FORMS))]
        elif kind < 0.85:
            asm = FLAG_FORMS[rng.choice(list(FLAG_FORMS))]
            _at_rsp(s, 0, 64, _flag_image(rng))
        elif kind < 0.93:
            asm = f"enter {rng.choice((0, 8, 0x30))}, {rng.randrange(0, 4)}; leave"
        else:
            enter = ENTER_16.format(low=rng.choice((0, 6, 0x30)), high=0, level=rng.randrange(0, 4))
            asm = f"{enter}; .byte 0x66, 0xc9"
        check(s.case(asm, _flag_image(rng)))
