"""Logical instructions against unicorn: AND OR XOR NOT TEST, every operand form and size.

AF is undefined after AND, OR, XOR and TEST (``cpu.flags.UNDEFINED``) and
is masked; CF and OF must be cleared and SF, ZF, PF follow the result.
"""

from __future__ import annotations

import pytest

from cpu.decoder import parse_reg
from cpu.flags import UNDEFINED
from tests.semantics.harness import BOUNDARY, check, random_flags
from tests.semantics.operands import SIZES, Setup, name, pairs, signed_imm, some_pairs


def _imm(b, size):
    width = min(size, 32)
    return signed_imm(b & ((1 << width) - 1), width)


FORMS = {
    "r,r": lambda s, op, a, b, n: f"{op} {s.reg(name('rax', n), a)}, {s.reg(name('rbx', n), b)}",
    "rex r,r": lambda s, op, a, b, n: f"{op} {s.reg(name('r14', n), a)}, {s.reg(name('rdi', n), b)}",
    "r,m": lambda s, op, a, b, n: f"{op} {s.reg(name('rcx', n), a)}, {s.mem(0x10, n, b)}",
    "m,r": lambda s, op, a, b, n: f"{op} {s.mem(0x23, n, a)}, {s.reg(name('rdx', n), b)}",
    "r,imm8": lambda s, op, a, b, n: f"{op} {s.reg(name('rbp', n), a)}, {signed_imm(b & 0xFF, 8)}",
    "r,imm": lambda s, op, a, b, n: f"{op} {s.reg(name('r13', n), a)}, {_imm(b, n)}",
    "acc,imm": lambda s, op, a, b, n: f"{op} {s.reg(name('rax', n), a)}, {_imm(b, n)}",
    "m,imm": lambda s, op, a, b, n: f"{op} {s.mem(0x31, n, a)}, {_imm(b, n)}",
    "lock m,r": lambda s, op, a, b, n: f"lock {op} {s.mem(0x40, n, a)}, {s.reg(name('r8', n), b)}",
}
HIGH = {
    "ah,bh": lambda s, op, a, b, n: f"{op} {s.reg('ah', a)}, {s.reg('bh', b)}",
    "dh,al": lambda s, op, a, b, n: f"{op} {s.reg('dh', a)}, {s.reg('al', b)}",
    "ch,imm": lambda s, op, a, b, n: f"{op} {s.reg('ch', a)}, {b}",
}
# TEST has no sign-extended imm8 form and no LOCK form; it writes nothing.
TEST_FORMS = ("r,r", "rex r,r", "m,r", "r,imm", "acc,imm", "m,imm")


def _forms():
    for op in ("and", "or", "xor", "test"):
        for size in SIZES:
            for form in (TEST_FORMS if op == "test" else FORMS):
                yield op, size, form
        for form in HIGH:
            yield op, 8, form


def _run(rng, op, size, form, operand_pairs):
    build = {**FORMS, **HIGH}[form]
    for a, b in operand_pairs:
        s = Setup(rng)
        check(s.case(build(s, op, a, b, size), random_flags(rng), UNDEFINED[op]))


@pytest.mark.parametrize("op,size,form", list(_forms()), ids=str)
def test_logical_two_operand(rng, op, size, form):
    _run(rng, op, size, form, pairs(size, rng, 6) if form == "r,r" else some_pairs(size, rng, 12))


@pytest.mark.parametrize("op", ["xor", "and", "or", "test"])
@pytest.mark.parametrize("reg", ["al", "ah", "ax", "eax", "rax", "r8d", "r15b", "r11"])
def test_same_register_operands(rng, op, reg):
    """`xor eax, eax` is the zeroing idiom (and zero-extends); the others keep the value."""
    for value in BOUNDARY[64] + [rng.getrandbits(64) for _ in range(4)]:
        s = Setup(rng)
        s.set(parse_reg(reg)[0], value)
        check(s.case(f"{op} {reg}, {reg}", random_flags(rng), UNDEFINED[op]))


NOT_FORMS = ("r", "m", "lock m")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("form", NOT_FORMS)
def test_not(rng, size, form):
    for a in BOUNDARY[size] + [rng.getrandbits(size) for _ in range(6)]:
        _run_not(rng, size, form, a)


def test_not_high_byte(rng):
    for a in BOUNDARY[8] + [rng.getrandbits(8) for _ in range(6)]:
        s = Setup(rng)
        check(s.case(f"not {s.reg('bh', a)}", random_flags(rng)))


def _run_not(rng, size, form, a):
    s = Setup(rng)
    if form == "r":
        asm = f"not {s.reg(name('r12', size), a)}"
    else:
        asm = f"{'lock ' if form == 'lock m' else ''}not {s.mem(0x18, size, a)}"
    check(s.case(asm, random_flags(rng)))


FUZZ_CASES = 25_000


@pytest.mark.fuzz
def test_fuzz_logical(rng):
    forms = list(_forms())
    for _ in range(FUZZ_CASES):
        if rng.random() < 0.9:
            op, size, form = rng.choice(forms)
            _run(rng, op, size, form, [(rng.getrandbits(size), rng.getrandbits(size))])
        else:
            size = rng.choice(SIZES)
            _run_not(rng, size, rng.choice(NOT_FORMS), rng.getrandbits(size))
