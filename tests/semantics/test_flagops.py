"""Flag instructions against unicorn: CLC STC CMC CLD STD LAHF SAHF.

Each runs from random flags alone, and after an arithmetic instruction in
the same block (the flags then come from a cc record, not from RFLAGS), and
followed by a consumer of the flag it changed.
"""

from __future__ import annotations

import pytest

from cpu.flags import Flag
from tests.semantics.harness import check, random_flags, values
from tests.semantics.operands import Setup

_AF = int(Flag.AF)
"""Undefined after AND."""
ALONE = ("clc", "stc", "cmc", "cld", "std", "lahf", "sahf")

AFTER_PRODUCER = {
    "add; cmc": "add rax, rbx; cmc",
    "sub; clc": "sub eax, ebx; clc",
    "cmp; stc": "cmp al, bl; stc",
    "inc; cmc": "inc rax; cmc",
    "and; stc": "and rax, rbx; stc",
    "sub; lahf": "sub rax, rbx; lahf",
    "inc; lahf": "inc ecx; lahf",
    "sahf; setcc": "sahf; setl cl; setbe dl; setp r8b; sets r9b",
    "sahf; adc": "sahf; adc rbx, rcx",
    "cmc; adc": "cmc; adc rbx, rcx",
    "stc; sbb": "stc; sbb rbx, rcx",
    "clc; jc": "clc; jc done; mov eax, 1; done: nop",
    "std; pushfq": "std; pushfq; pop rcx; cld",
    "lahf; sahf": "add rax, rbx; lahf; xor ah, 0xc5; sahf; setz cl",
    "sahf keeps OF": "add al, bl; sahf; seto cl",
    "cmp; cmc; cmova": "cmp rax, rbx; cmc; cmova rcx, rdx",
}


def _flags(rng, i):
    return (0x202, 0x202 | 0x8D5)[i] if i < 2 else random_flags(rng) | (0x400 if rng.random() < 0.5 else 0)


@pytest.mark.parametrize("mnemonic", ALONE)
def test_flag_instruction(rng, mnemonic):
    for i, ax in enumerate(values(16, rng, 16)):
        s = Setup(rng)
        s.reg("ax", ax)
        check(s.case(mnemonic, _flags(rng, i)))


@pytest.mark.parametrize("form", AFTER_PRODUCER)
def test_flag_instruction_in_a_block(rng, form):
    for i, (a, b) in enumerate(zip(values(64, rng, 12), values(64, rng, 12)[::-1], strict=True)):
        s = Setup(rng)
        s.set("rax", a)
        s.set("rbx", b)
        undefined = _AF if form.startswith("and") else 0
        check(s.case(AFTER_PRODUCER[form], _flags(rng, i), undefined))


FUZZ_CASES = 3_000


@pytest.mark.fuzz
def test_fuzz_flagops(rng):
    forms = list(ALONE) + list(AFTER_PRODUCER.values())
    for _ in range(FUZZ_CASES):
        s = Setup(rng)
        asm = rng.choice(forms)
        check(s.case(asm, random_flags(rng) | (0x400 if rng.random() < 0.5 else 0), _AF if "and" in asm else 0))
