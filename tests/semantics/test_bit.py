"""Bit test and bit scan (cpu/semantics/bit.py), run in emu and in unicorn and compared.

TZCNT and LZCNT are in ``test_bmi.py``, and as BSF and BSR on a CPU level without
BMI1 and LZCNT in ``tests/test_cpu_levels.py``.
"""

from __future__ import annotations

import random

import pytest

from cpu.flags import UNDEFINED
from tests.semantics.harness import DATA, Case, check, random_flags, values

SIZES = (16, 32, 64)
REG = {16: ("bx", "ax"), 32: ("ebx", "eax"), 64: ("rbx", "rax")}
PTR = {16: "word", 32: "dword", 64: "qword"}
BASE = DATA + 0x1000             # memory bit strings are addressed from the middle of the data page


# -- BT, BTS, BTR, BTC ---------------------------------------------------------------

def bit_offsets(size: int, rng: random.Random, n: int) -> list[int]:
    """Bit offsets for a register offset operand: in the operand, beyond it, negative, random."""
    low = -(min(1 << (size - 1), BASE - DATA) * 8) if size > 16 else -(1 << 15)
    high = min((1 << (size - 1)) - 1, (DATA + 0x2000 - BASE) * 8 - size)
    out = [0, 1, size - 1, size, -1, -size, -size - 1, 5 * size + 3, low, high]
    while len(out) < n:
        out.append(rng.randint(low, high) if rng.random() < 0.8 else rng.randint(-2 * size, 2 * size))
    return out[:n]


def bit_case(mnemonic: str, size: int, form: str, offset: int, value: int, rng: random.Random) -> Case:
    """``form``: "reg,reg", "reg,imm", "mem,reg" or "mem,imm"; ``offset`` is signed."""
    base_kind, offset_kind = form.split(",")
    data = rng.randbytes(0x2000)
    regs = {"rsi": BASE, "rax": rng.getrandbits(64)}
    if base_kind == "reg":
        base = REG[size][0]
        regs["rbx"] = (rng.getrandbits(64) & ~((1 << size) - 1)) | value
    else:
        base = f"{PTR[size]} ptr [rsi]"
        data = data[:BASE - DATA] + value.to_bytes(size // 8, "little") + data[BASE - DATA + size // 8:]
    if offset_kind == "reg":
        regs["rax"] = (regs["rax"] & ~((1 << size) - 1)) | (offset & ((1 << size) - 1))
        source = REG[size][1]
    else:
        source = str(((offset + 128) & 0xFF) - 128)        # imm8, written signed for keystone
    return Case(f"{mnemonic} {base}, {source}", regs, rflags=random_flags(rng), data=data,
                undefined=UNDEFINED[mnemonic])


BT_FORMS = [(m, size, form) for m in ("bt", "bts", "btr", "btc") for size in SIZES
            for form in ("reg,reg", "reg,imm", "mem,reg", "mem,imm")]


def _form_id(form: tuple) -> str:
    return "-".join(str(part) for part in form)


@pytest.mark.parametrize("form", BT_FORMS, ids=_form_id)
def test_bit_test_matches_unicorn(form, rng):
    mnemonic, size, operands = form
    if operands.endswith("imm"):
        offsets = [0, 1, size - 1, size, size + 1, 127, 128, 255] + [rng.randrange(256) for _ in range(2)]
    else:
        offsets = bit_offsets(size, rng, 10)
    for offset, value in zip(offsets, values(size, rng, len(offsets)), strict=True):
        check(bit_case(mnemonic, size, operands, offset, value, rng))


@pytest.mark.parametrize("mnemonic", ["bt", "bts"])
def test_bit_string_offset_outside_memory_faults_in_both(mnemonic, rng):
    """Offsets far outside the data page; they stay canonical, since unicorn (QEMU) does not
    check canonical form on data accesses.  16-bit offsets cannot leave the data page."""
    for size in (32, 64):
        reach = 1 << (min(size, 40) - 1)
        for offset in (reach - 1, -reach, reach // 3, -reach // 5):
            check(bit_case(mnemonic, size, "mem,reg", offset, 0, rng))


# -- BSF, BSR, POPCNT ---------------------------------------------------------------------------

def scan_values(size: int, rng: random.Random, n: int) -> list[int]:
    """Zero, single bits, boundaries and random values, with now and then a sparse one."""
    out = [0, 1, 1 << (size - 1), (1 << size) - 1, 1 << rng.randrange(size)]
    while len(out) < n:
        value = rng.getrandbits(size)
        out.append(value if rng.random() < 0.5 else value & rng.getrandbits(size) & rng.getrandbits(size))
    return out[:n]


def scan_case(mnemonic: str, size: int, source_kind: str, value: int, rng: random.Random) -> Case:
    """``mnemonic dst, src`` with dst = bx/ebx/rbx (random old contents) and src a register or memory."""
    regs = {"rsi": DATA, "rbx": rng.getrandbits(64)}
    data = bytearray(rng.randbytes(64))
    if source_kind == "reg":
        regs["rax"] = (rng.getrandbits(64) & ~((1 << size) - 1)) | value
        source = REG[size][1]
    else:
        data[16:16 + size // 8] = value.to_bytes(size // 8, "little")
        source = f"{PTR[size]} ptr [rsi + 16]"
    return Case(f"{mnemonic} {REG[size][0]}, {source}", regs, rflags=random_flags(rng), data=bytes(data),
                undefined=UNDEFINED[mnemonic])


SCAN_FORMS = [(m, size, kind) for m in ("bsf", "bsr", "popcnt") for size in SIZES
              for kind in ("reg", "mem")]


@pytest.mark.parametrize("form", SCAN_FORMS, ids=_form_id)
def test_bit_scan_matches_unicorn(form, rng):
    mnemonic, size, kind = form
    for value in scan_values(size, rng, 8):
        check(scan_case(mnemonic, size, kind, value, rng))


def test_bsf_of_zero_sets_zf_and_keeps_the_destination():
    check(Case("bsf rbx, rax", {"rax": 0, "rbx": 0x1234_5678_9ABC_DEF0}, undefined=UNDEFINED["bsf"]))
    check(Case("bsr bx, ax", {"rax": 0xFFFF_0000, "rbx": 0x1234_5678_9ABC_DEF0}, undefined=UNDEFINED["bsr"]))


def test_popcnt_clears_every_flag_but_zf():
    check(Case("popcnt rbx, rax", {"rax": 0}, rflags=0xAD7))
    check(Case("popcnt ebx, eax", {"rax": 0xFFFF_FFFF_0000_0003}, rflags=0xAD7))


@pytest.mark.fuzz
def test_bit_fuzz(rng):
    """Ten times the default run's cases, forms and values drawn at random."""
    for _ in range(10 * 740):
        if rng.random() < 0.6:
            mnemonic, size, operands = rng.choice(BT_FORMS)
            offset = rng.randrange(256) if operands.endswith("imm") else bit_offsets(size, rng, 11)[-1]
            check(bit_case(mnemonic, size, operands, offset, rng.getrandbits(size), rng))
        else:
            mnemonic, size, kind = rng.choice(SCAN_FORMS)
            check(scan_case(mnemonic, size, kind, scan_values(size, rng, 10)[-1], rng))
