"""Shifts and rotates (cpu/semantics/shift.py), run in emu and in unicorn and compared.

Each form (mnemonic, size, destination, count operand) is one parametrized
test that loops over boundary and random values with counts 0, 1, 2, size-1,
size, size+1, 31, 63, 255 and a random one.  Flags the SDM leaves undefined
for a given count are masked per case (:func:`undefined_flags`).
"""

from __future__ import annotations

import random

import pytest

from cpu.flags import ARITH, Flag
from tests.semantics.harness import DATA, Case, check, random_flags, values

SIZES = (8, 16, 32, 64)
SHIFTS = ("shl", "sal", "shr", "sar")
ROTATES = ("rol", "ror", "rcl", "rcr")
REG = {8: "bl", 16: "bx", 32: "ebx", 64: "rbx"}
SRC_REG = {16: "dx", 32: "edx", 64: "rdx"}
PTR = {8: "byte", 16: "word", 32: "dword", 64: "qword"}
OFFSET = 8                      # the memory destination is [rsi + 8], rsi = DATA


def counts(size: int, rng: random.Random) -> list[int]:
    """Interesting shift counts for ``size``, then a random one (before masking)."""
    return [0, 1, 2, size - 1, size, size + 1, 31, 63, 255, rng.randrange(256)]


def masked(size: int, count: int) -> int:
    return count & (0x3F if size == 64 else 0x1F)


def undefined_flags(mnemonic: str, size: int, count: int) -> int:
    """Flags the SDM leaves undefined after ``mnemonic`` with this count."""
    n = masked(size, count)
    if n == 0:
        return 0                                  # no flag changes at all
    undefined = int(Flag.OF) if n != 1 else 0
    if mnemonic in SHIFTS or mnemonic in ("shld", "shrd"):
        undefined |= int(Flag.AF)
    if mnemonic in ("shl", "sal", "shr") and n >= size:
        undefined |= int(Flag.CF)                 # only reachable for 8- and 16-bit operands
    if mnemonic in ("shld", "shrd") and n > size:
        undefined |= ARITH                        # 16-bit with counts 17..31
    return undefined


def destination(size: int, dest: str, value: int, rng: random.Random) -> tuple[str, dict[str, int], bytes]:
    """Operand text, registers and data memory that hold ``value`` in the ``dest`` form.

    Registers carry random bits around the operand, so that sub-register
    writes must keep them and 32-bit writes must clear bits 63..32.
    """
    data = bytearray(rng.randbytes(64))
    regs = {"rsi": DATA}
    if dest == "reg":
        regs["rbx"] = (rng.getrandbits(64) & ~((1 << size) - 1)) | value
        return REG[size], regs, bytes(data)
    if dest == "high":
        regs["rbx"] = (rng.getrandbits(64) & ~0xFF00) | (value << 8)
        return "bh", regs, bytes(data)
    data[OFFSET:OFFSET + size // 8] = value.to_bytes(size // 8, "little")
    regs["rbx"] = rng.getrandbits(64)
    return f"{PTR[size]} ptr [rsi + {OFFSET}]", regs, bytes(data)


def count_text(form: str, count: int) -> str:
    return {"one": "1", "imm": str(count if count < 128 else count - 256), "cl": "cl"}[form]


def shift_case(mnemonic: str, size: int, dest: str, form: str, count: int, value: int,
               rng: random.Random) -> Case:
    operand, regs, data = destination(size, dest, value, rng)
    regs["rcx"] = (rng.getrandbits(56) << 8) | count          # only CL counts
    asm = f"{mnemonic} {operand}, {count_text(form, count)}"
    if form == "one":
        count = 1
    return Case(asm, regs, rflags=random_flags(rng), data=data, undefined=undefined_flags(mnemonic, size, count))


def double_case(mnemonic: str, size: int, dest: str, form: str, count: int, value: int, fill: int,
                rng: random.Random) -> Case:
    operand, regs, data = destination(size, dest, value, rng)
    regs["rcx"] = (rng.getrandbits(56) << 8) | count
    regs["rdx"] = (rng.getrandbits(64) & ~((1 << size) - 1)) | fill
    asm = f"{mnemonic} {operand}, {SRC_REG[size]}, {count_text(form, count)}"
    return Case(asm, regs, rflags=random_flags(rng), data=data, undefined=undefined_flags(mnemonic, size, count))


def dests(size: int) -> tuple[str, ...]:
    return ("reg", "mem", "high") if size == 8 else ("reg", "mem")


SHIFT_FORMS = [(m, size, dest) for m in SHIFTS + ROTATES for size in SIZES for dest in dests(size)]
DOUBLE_FORMS = [(m, size, dest, form) for m in ("shld", "shrd") for size in (16, 32, 64)
                for dest in ("reg", "mem") for form in ("imm", "cl")]


def _form_id(form: tuple) -> str:
    return "-".join(str(part) for part in form)


@pytest.mark.parametrize("form", SHIFT_FORMS, ids=_form_id)
def test_shift_by_cl_matches_unicorn(form, rng):
    mnemonic, size, dest = form
    cs = counts(size, rng)
    for count, value in zip(cs, values(size, rng, len(cs)), strict=True):
        check(shift_case(mnemonic, size, dest, "cl", count, value, rng))


@pytest.mark.parametrize("form", [(m, size) for m in SHIFTS + ROTATES for size in SIZES], ids=_form_id)
def test_shift_by_imm8_matches_unicorn(form, rng):
    mnemonic, size = form
    cs = [0, 1, size - 1, size, size + 1, 255, rng.randrange(256)]
    for count, value in zip(cs, values(size, rng, len(cs)), strict=True):
        check(shift_case(mnemonic, size, "reg", "imm", count, value, rng))


@pytest.mark.parametrize("form", SHIFT_FORMS, ids=_form_id)
def test_shift_by_one_defines_of(form, rng):
    mnemonic, size, dest = form
    for value in rng.sample(values(size, rng, 8), 3):
        check(shift_case(mnemonic, size, dest, "one", 1, value, rng))


@pytest.mark.parametrize("form", DOUBLE_FORMS, ids=_form_id)
def test_double_shift_matches_unicorn(form, rng):
    mnemonic, size, dest, count_form = form
    cs = counts(size, rng)
    for count, value, fill in zip(cs, values(size, rng, len(cs)), reversed(values(size, rng, len(cs))),
                                  strict=True):
        check(double_case(mnemonic, size, dest, count_form, count, value, fill, rng))


def test_sal_encoding_slash6_behaves_as_shl(rng):
    """D0 /6, D1 /6, C1 /6 and D3 /6 are undocumented aliases of SHL; capstone calls them SAL."""
    encodings = {".byte 0xd0, 0xf3": (8, 1), ".byte 0xd1, 0xf3": (32, 1), ".byte 0x48, 0xc1, 0xf3, 0x05": (64, 5),
                 ".byte 0x66, 0xd3, 0xf3": (16, None)}
    for asm, (size, count) in encodings.items():
        for value in values(size, rng, 6):
            cl = rng.randrange(64)
            regs = {"rbx": value, "rcx": cl}
            undefined = undefined_flags("shl", size, cl if count is None else count)
            check(Case(asm, regs, rflags=random_flags(rng), undefined=undefined))


def test_shl_eax_by_zero_clears_the_upper_half_and_keeps_flags():
    check(Case("shl eax, 0", {"rax": 0xFFFF_FFFF_1234_5678}, rflags=0x202 | ARITH))
    check(Case("shl eax, cl", {"rax": 0xFFFF_FFFF_1234_5678, "rcx": 0x20}, rflags=0x202 | int(Flag.CF)))


def test_rcl_byte_by_nine_is_the_identity_and_keeps_cf():
    check(Case("rcl al, 9", {"rax": 0x81}, rflags=0x203, undefined=int(Flag.OF)))


@pytest.mark.fuzz
def test_shift_fuzz(rng):
    """Ten times the default run's cases, every form and count drawn at random."""
    for _ in range(10 * 1400):
        if rng.random() < 0.15:
            mnemonic, size, dest, form = rng.choice(DOUBLE_FORMS)
            value, fill = rng.getrandbits(size), rng.getrandbits(size)
            check(double_case(mnemonic, size, dest, form, rng.randrange(256), value, fill, rng))
            continue
        mnemonic, size, dest = rng.choice(SHIFT_FORMS)
        form = rng.choice(("one", "imm", "cl"))
        count = rng.choice((rng.randrange(256), rng.randrange(size + 2)))
        value = rng.choice((rng.getrandbits(size), rng.choice(values(size, rng, 5))))
        check(shift_case(mnemonic, size, dest, form, count, value, rng))
