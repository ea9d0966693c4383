"""Multiply and divide (cpu/semantics/muldiv.py), run in emu and in unicorn and compared.

Division cases mix dividends that fit with ones that overflow the quotient,
zero divisors and INT_MIN / -1: a #DE must happen in both engines or neither,
with no register changed.
"""

from __future__ import annotations

import random

import pytest

from cpu.flags import UNDEFINED
from tests.semantics.harness import DATA, Case, check, random_flags, run_emu, values

SIZES = (8, 16, 32, 64)
REG = {8: "bl", 16: "bx", 32: "ebx", 64: "rbx"}
DST = {16: "cx", 32: "ecx", 64: "rcx"}
PTR = {8: "byte", 16: "word", 32: "dword", 64: "qword"}
OFFSET = 24                      # memory operands are [rsi + 24], rsi = DATA


def _mask(size: int) -> int:
    return (1 << size) - 1


def _signed(value: int, size: int) -> int:
    return value - (1 << size) if value >> (size - 1) else value


def operand(size: int, kind: str, value: int, regs: dict[str, int], data: bytearray, rng: random.Random) -> str:
    """Place ``value`` in a register (random bits around it), in BH, or in memory; return its text."""
    if kind == "reg":
        regs["rbx"] = (rng.getrandbits(64) & ~_mask(size)) | value
        return REG[size]
    if kind == "high":
        regs["rbx"] = (rng.getrandbits(64) & ~0xFF00) | (value << 8)
        return "bh"
    data[OFFSET:OFFSET + size // 8] = value.to_bytes(size // 8, "little")
    return f"{PTR[size]} ptr [rsi + {OFFSET}]"


def kinds(size: int) -> tuple[str, ...]:
    return ("reg", "mem", "high") if size == 8 else ("reg", "mem")


def _form_id(form: tuple) -> str:
    return "-".join(str(part) for part in form)


# -- MUL, IMUL ------------------------------------------------------------------------

def wide_mul_case(mnemonic: str, size: int, kind: str, a: int, b: int, rng: random.Random) -> Case:
    """MUL/IMUL r/m: the accumulator holds ``a`` (random bits above it), the operand ``b``."""
    regs = {"rsi": DATA, "rax": (rng.getrandbits(64) & ~_mask(size)) | a, "rdx": rng.getrandbits(64)}
    data = bytearray(rng.randbytes(64))
    text = operand(size, kind, b, regs, data, rng)
    return Case(f"{mnemonic} {text}", regs, rflags=random_flags(rng), data=bytes(data),
                undefined=UNDEFINED[mnemonic])


def imul_case(size: int, kind: str, a: int, b: int, imm: int | None, rng: random.Random) -> Case:
    """IMUL r, r/m (imm None) or IMUL r, r/m, imm; the destination is CX/ECX/RCX."""
    regs = {"rsi": DATA, "rcx": (rng.getrandbits(64) & ~_mask(size)) | a}
    data = bytearray(rng.randbytes(64))
    text = operand(size, kind, b, regs, data, rng)
    asm = f"imul {DST[size]}, {text}" if imm is None else f"imul {DST[size]}, {text}, {imm}"
    return Case(asm, regs, rflags=random_flags(rng), data=bytes(data), undefined=UNDEFINED["imul"])


def immediates(size: int, width: int, rng: random.Random, n: int) -> list[int]:
    """Signed immediates of ``width`` bits (8, or 16/32 as the operand size allows)."""
    width = min(width, size, 32)
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    out = [0, 1, -1, low, high, 2, -2]
    while len(out) < n:
        out.append(rng.randint(low, high))
    return out[:n]


WIDE_FORMS = [(m, size, kind) for m in ("mul", "imul") for size in SIZES for kind in kinds(size)]
IMUL2_FORMS = [(size, kind) for size in (16, 32, 64) for kind in ("reg", "mem")]
IMUL3_FORMS = [(size, kind, width) for size in (16, 32, 64) for kind in ("reg", "mem") for width in (8, 32)]


@pytest.mark.parametrize("form", WIDE_FORMS, ids=_form_id)
def test_one_operand_multiply_matches_unicorn(form, rng):
    mnemonic, size, kind = form
    firsts, seconds = values(size, rng, 12), values(size, rng, 12)
    rng.shuffle(seconds)
    for a, b in zip(firsts, seconds, strict=True):
        check(wide_mul_case(mnemonic, size, kind, a, b, rng))


@pytest.mark.parametrize("form", IMUL2_FORMS, ids=_form_id)
def test_two_operand_imul_matches_unicorn(form, rng):
    size, kind = form
    firsts, seconds = values(size, rng, 12), values(size, rng, 12)
    rng.shuffle(seconds)
    for a, b in zip(firsts, seconds, strict=True):
        check(imul_case(size, kind, a, b, None, rng))


@pytest.mark.parametrize("form", IMUL3_FORMS, ids=_form_id)
def test_three_operand_imul_matches_unicorn(form, rng):
    size, kind, width = form
    for b, imm in zip(values(size, rng, 9), immediates(size, width, rng, 9), strict=True):
        check(imul_case(size, kind, rng.getrandbits(size), b, imm, rng))


def test_imul_r64_sets_cf_and_of_when_the_product_needs_128_bits():
    check(Case("imul rax, rbx", {"rax": 1 << 32, "rbx": 1 << 31}, undefined=UNDEFINED["imul"]))
    check(Case("imul rax, rbx", {"rax": 1 << 32, "rbx": 1 << 32}, undefined=UNDEFINED["imul"]))


# -- DIV, IDIV ------------------------------------------------------------------------

def dividends(mnemonic: str, size: int, rng: random.Random) -> list[tuple[int, int]]:
    """(dividend, divisor) pairs, each ``2 * size`` and ``size`` bits unsigned.

    Most quotients fit; some overflow, some divisors are 0, and for IDIV
    INT_MIN / -1 and the quotients at the very edges of the signed range.
    """
    wide = 2 * size
    top = 1 << (size - 1)
    pairs = [(0, 0), (5, 0), (1 << (wide - 1), 1), (_mask(wide), 1)]
    if mnemonic == "div":
        pairs += [(_mask(size), 1), (_mask(wide), _mask(size)), ((_mask(size) - 1) << size, _mask(size)),
                  (_mask(size) << size, _mask(size))]
    else:
        int_min = (-(top << size)) & _mask(wide)
        if size != 32:          # unicorn divides INT64_MIN by -1 on the host: SIGFPE (see below)
            pairs.append((int_min, _mask(size)))
        pairs += [((-top) & _mask(wide), _mask(size)),                            # INT_MIN / -1: #DE
                  (top - 1, 1), ((-top) & _mask(wide), 1), (top * 3, (-3) & _mask(size)),
                  ((-7) & _mask(wide), 2), (7, (-2) & _mask(size)), (top << 1, 2)]
    for divisor in values(size, rng, 11):
        if divisor == 0:
            continue
        if mnemonic == "div":
            quotient = rng.getrandbits(size + (1 if rng.random() < 0.15 else 0))
            dividend = quotient * divisor + rng.randrange(divisor)
        else:
            d = _signed(divisor, size)
            quotient = rng.randint(-top - (top if rng.random() < 0.15 else 0), top - 1)
            remainder = rng.randrange(abs(d)) * rng.choice((1, -1))
            product = quotient * d
            if product and (product < 0) != (remainder < 0):
                remainder = -remainder                # the remainder takes the dividend's sign
            dividend = product + remainder
        pairs.append((dividend & _mask(wide), divisor))
    return pairs


def divide_case(mnemonic: str, size: int, kind: str, dividend: int, divisor: int, rng: random.Random) -> Case:
    regs = {"rsi": DATA, "rax": rng.getrandbits(64), "rdx": rng.getrandbits(64)}
    if size == 8:
        regs["rax"] = (regs["rax"] & ~0xFFFF) | dividend
    else:
        regs["rax"] = (regs["rax"] & ~_mask(size)) | (dividend & _mask(size))
        regs["rdx"] = (regs["rdx"] & ~_mask(size)) | (dividend >> size)
    data = bytearray(rng.randbytes(64))
    text = operand(size, kind, divisor, regs, data, rng)
    return Case(f"{mnemonic} {text}", regs, rflags=random_flags(rng), data=bytes(data),
                undefined=UNDEFINED[mnemonic])


DIVIDE_FORMS = [(m, size, kind) for m in ("div", "idiv") for size in SIZES for kind in kinds(size)]


@pytest.mark.parametrize("form", DIVIDE_FORMS, ids=_form_id)
def test_divide_matches_unicorn_including_faults(form, rng):
    mnemonic, size, kind = form
    for dividend, divisor in dividends(mnemonic, size, rng):
        check(divide_case(mnemonic, size, kind, dividend, divisor, rng))


def test_idiv_truncates_toward_zero_and_the_remainder_takes_the_dividend_sign():
    check(Case("idiv rbx", {"rax": (-7) & ((1 << 64) - 1), "rdx": (1 << 64) - 1, "rbx": 2},
               undefined=UNDEFINED["idiv"]))
    check(Case("idiv ebx", {"rax": 7, "rdx": 0, "rbx": (-2) & 0xFFFF_FFFF}, undefined=UNDEFINED["idiv"]))


@pytest.mark.parametrize("mnemonic", ["mul", "imul", "div", "idiv"])
def test_ah_as_the_operand_of_its_own_accumulator(mnemonic, rng):
    """``div ah``: the divisor is part of the dividend; reads come before the writes."""
    for ax in values(16, rng, 12):
        check(Case(f"{mnemonic} ah", {"rax": (rng.getrandbits(64) & ~0xFFFF) | ax}, rflags=random_flags(rng),
                   undefined=UNDEFINED[mnemonic]))


def test_idiv_int_min_by_minus_one_raises_de():
    check(Case("idiv rbx", {"rax": 1 << 63, "rdx": (1 << 64) - 1, "rbx": (1 << 64) - 1}))
    check(Case("idiv bx", {"rax": 0, "rdx": 0x8000, "rbx": 0xFFFF}))


def test_idiv_r32_of_int64_min_by_minus_one_raises_de():
    """emu alone: unicorn 2.1 computes EDX:EAX / -1 with a host division and dies of SIGFPE."""
    regs = {"rax": 0x1111_1111_0000_0000, "rdx": 0x2222_2222_8000_0000, "rbx": 0xFFFF_FFFF}
    for blocks in (False, True):
        outcome = run_emu(Case("idiv ebx", regs), blocks)
        assert outcome.faulted
        assert {name: outcome.regs[name] for name in regs} == regs


@pytest.mark.fuzz
def test_muldiv_fuzz(rng):
    """Ten times the default run's cases, forms and values drawn at random."""
    for _ in range(10 * 800):
        pick = rng.random()
        if pick < 0.3:
            mnemonic, size, kind = rng.choice(WIDE_FORMS)
            check(wide_mul_case(mnemonic, size, kind, rng.getrandbits(size), rng.getrandbits(size), rng))
        elif pick < 0.5:
            size, kind, width = rng.choice(IMUL3_FORMS)
            imm = rng.choice((None, immediates(size, width, rng, 8)[-1]))
            check(imul_case(size, kind, rng.getrandbits(size), rng.getrandbits(size), imm, rng))
        else:
            mnemonic, size, kind = rng.choice(DIVIDE_FORMS)
            dividend, divisor = rng.choice(dividends(mnemonic, size, rng)[-6:])
            check(divide_case(mnemonic, size, kind, dividend, divisor, rng))
