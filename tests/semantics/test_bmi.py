"""BMI1, BMI2, LZCNT/TZCNT, ADX and MOVBE (cpu/semantics/bmi.py, bit.py, binary.py, datamov.py), run in emu
and compared with unicorn and with this host CPU, stepped, as blocks and through the JIT.

Operands: boundary values, random ones, sparse ones (random values ANDed together) and, for the
count and index operands of BEXTR, BZHI and the shifts, values around the operand size.  Every case
runs against both oracles (the host when it is an x86-64 with gcc), except where unicorn 2.1 is
wrong (:data:`UNICORN_WRONG`): there the host alone decides.
"""

from __future__ import annotations

import random

import pytest

from cpu.flags import UNDEFINED
from tests.semantics import host
from tests.semantics.harness import DATA, Case, check, random_flags, values
from tests.semantics.host import check_host, needs_host

UNICORN_WRONG = {
    "pdep": "a 32-bit PDEP keeps bits 63:32 of the destination",
    "blsi": "BLSI's CF is inverted",
    "bzhi": "BZHI's CF looks at more than bits 7:0 of the index",
    "bextr": "BEXTR drops or invents bits when start + length passes the operand's top bit",
    "adcx": "no ADX: #UD", "adox": "no ADX: #UD",
}


def check_all(case: Case) -> None:
    """``case`` against unicorn (unless it gets the instruction wrong) and against the host CPU."""
    mnemonic = case.asm.split()[0]
    if mnemonic not in UNICORN_WRONG:
        check(case)
    if host.available:
        check_host(case)
    elif mnemonic in UNICORN_WRONG:
        pytest.skip(f"unicorn is wrong here ({UNICORN_WRONG[mnemonic]}) and the host oracle is unavailable")

REG = {16: ("bx", "cx", "dx"), 32: ("ebx", "ecx", "edx"), 64: ("rbx", "rcx", "rdx")}
PTR = {16: "word", 32: "dword", 64: "qword"}


def operands(size: int, rng: random.Random, n: int) -> list[int]:
    """Boundary values, then random, sparse and single-bit ones."""
    out = values(size, rng, 6)
    while len(out) < n:
        pick = rng.random()
        value = rng.getrandbits(size)
        out.append(value & rng.getrandbits(size) & rng.getrandbits(size) if pick < 0.3
                   else 1 << rng.randrange(size) if pick < 0.4 else value)
    return out


def counts(size: int, rng: random.Random) -> list[int]:
    """Control values for the start/length and index operands: around 0 and the operand size, and random."""
    small = [0, 1, size - 1, size, size + 1, 255, 256 + 3, rng.randrange(size)]
    return small + [rng.randrange(size) | (rng.randrange(size + 8) << 8) for _ in range(4)] + \
        [rng.getrandbits(size) for _ in range(2)]


def three_operand(mnemonic: str, size: int, a: int, b: int, rng: random.Random, memory: bool = False) -> Case:
    """``mnemonic rax-sized, src1, src2`` with the sources in RBX/RCX (or the second in memory at [rsi])."""
    dst = {16: "ax", 32: "eax", 64: "rax"}[size]
    regs = {"rax": rng.getrandbits(64), "rbx": (rng.getrandbits(64) & ~((1 << size) - 1)) | a,
            "rcx": (rng.getrandbits(64) & ~((1 << size) - 1)) | b, "rdx": rng.getrandbits(64), "rsi": DATA + 64}
    data = bytes(64) + b.to_bytes(8, "little")
    return Case(f"{mnemonic} {dst}, {REG[size][0]}, {f'{PTR[size]} ptr [rsi]' if memory else REG[size][1]}",
                regs, rflags=random_flags(rng), data=data, undefined=UNDEFINED.get(mnemonic, 0))


# -- BMI1 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("mnemonic", ["andn", "pdep", "pext"])
def test_two_source_bit_operations_match_unicorn(mnemonic, size, rng):
    for a, b in zip(operands(size, rng, 12), reversed(operands(size, rng, 12)), strict=True):
        check_all(three_operand(mnemonic, size, a, b, rng, memory=rng.random() < 0.3))


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("mnemonic", ["bextr", "bzhi", "shlx", "shrx", "sarx"])
def test_count_operand_instructions_match_unicorn(mnemonic, size, rng):
    """The count/control operand is the third (VEX.vvvv) one; the source may be memory."""
    for value, count in zip(operands(size, rng, 14), counts(size, rng), strict=True):
        dst = "eax" if size == 32 else "rax"
        regs = {"rax": rng.getrandbits(64), "rbx": value, "rcx": count, "rsi": DATA + 64}
        source = f"{PTR[size]} ptr [rsi]" if rng.random() < 0.3 else REG[size][0]
        check_all(Case(f"{mnemonic} {dst}, {source}, {REG[size][1]}", regs, rflags=random_flags(rng),
                   data=bytes(64) + value.to_bytes(8, "little"), undefined=UNDEFINED.get(mnemonic, 0)))


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("mnemonic", ["blsi", "blsmsk", "blsr"])
def test_lowest_set_bit_instructions_match_unicorn(mnemonic, size, rng):
    for value in operands(size, rng, 12):
        dst = "eax" if size == 32 else "rax"
        check_all(Case(f"{mnemonic} {dst}, {REG[size][0]}", {"rax": rng.getrandbits(64), "rbx": value},
                   rflags=random_flags(rng), undefined=UNDEFINED[mnemonic]))


@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("mnemonic", ["tzcnt", "lzcnt"])
def test_tzcnt_and_lzcnt_count_and_set_cf_for_a_zero_source(mnemonic, size, rng):
    for value in [0, *operands(size, rng, 10)]:
        check_all(Case(f"{mnemonic} {REG[size][1]}, {REG[size][0]}",
                   {"rbx": (rng.getrandbits(64) & ~((1 << size) - 1)) | value, "rcx": rng.getrandbits(64)},
                   rflags=random_flags(rng), undefined=UNDEFINED[mnemonic]))


# -- BMI2 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64])
def test_mulx_multiplies_rdx_without_touching_flags(size, rng):
    dst = {32: ("eax", "r8d"), 64: ("rax", "r8")}[size]
    for a, b in zip(operands(size, rng, 10), reversed(operands(size, rng, 10)), strict=True):
        regs = {"rdx": rng.getrandbits(64) & ~((1 << size) - 1) | a, "rbx": b, "rsi": DATA + 64}
        source = f"{PTR[size]} ptr [rsi]" if rng.random() < 0.3 else REG[size][0]
        check_all(Case(f"mulx {dst[0]}, {dst[1]}, {source}", regs, rflags=random_flags(rng),
                   data=bytes(64) + b.to_bytes(8, "little")))


def test_mulx_with_one_destination_keeps_the_high_half():
    check_all(Case("mulx rax, rax, rbx", {"rdx": 0xFFFF_FFFF_FFFF_FFFF, "rbx": 3}))


@pytest.mark.parametrize("size", [32, 64])
def test_rorx_rotates_by_its_immediate(size, rng):
    dst = "eax" if size == 32 else "rax"
    for value in operands(size, rng, 8):
        for count in (0, 1, size - 1, size, rng.randrange(256)):
            check_all(Case(f"rorx {dst}, {REG[size][0]}, {count}", {"rbx": value}, rflags=random_flags(rng)))


# -- ADX, MOVBE ------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("mnemonic", ["adcx", "adox"])
def test_adcx_and_adox_carry_through_one_flag_only(mnemonic, size, rng):
    dst = "eax" if size == 32 else "rax"
    for a, b in zip(operands(size, rng, 12), reversed(operands(size, rng, 12)), strict=True):
        for flags in (0x202, 0x203, 0xA02, 0xA03, random_flags(rng)):
            check_all(Case(f"{mnemonic} {dst}, {REG[size][0]}", {"rax": a, "rbx": b}, rflags=flags))


def test_adcx_adox_chains_run_two_carries_in_parallel(rng):
    """The idiom ADX exists for: two interleaved carry chains, as in multi-precision multiplication."""
    regs = {r: rng.getrandbits(64) for r in ("rax", "rbx", "rcx", "rdx", "r8", "r9")}
    check_all(Case("adcx rax, rbx; adox rcx, rdx; adcx r8, rbx; adox r9, rdx; adcx rax, rcx",
               regs, rflags=0x202 | 0x801))


@pytest.mark.parametrize("size", [16, 32, 64])
def test_movbe_loads_and_stores_swapped_bytes(size, rng):
    reg = {16: "bx", 32: "ebx", 64: "rbx"}[size]
    data = rng.randbytes(64)
    regs = {"rsi": DATA + 8, "rbx": rng.getrandbits(64)}
    check_all(Case(f"movbe {reg}, {PTR[size]} ptr [rsi]", regs, data=data))
    check_all(Case(f"movbe {PTR[size]} ptr [rsi], {reg}", regs, data=data))


# -- the host CPU ----------------------------------------------------------------------------------

HOST_FORMS = ["andn rax, rbx, rcx", "bextr eax, ebx, ecx", "bextr rax, rbx, rcx", "blsi rax, rbx", "blsmsk eax, ebx",
              "blsr rax, rbx", "bzhi rax, rbx, rcx", "bzhi eax, ebx, ecx", "pdep rax, rbx, rcx", "pext eax, ebx, ecx",
              "pext rax, rbx, rcx", "mulx r8, r9, rbx", "rorx rax, rbx, 13", "sarx rax, rbx, rcx",
              "shlx eax, ebx, ecx", "shrx rax, rbx, rcx", "tzcnt rax, rbx", "tzcnt bx, cx", "lzcnt eax, ebx",
              "lzcnt rax, rbx", "adcx rax, rbx", "adox eax, ebx", "movbe rax, qword ptr [rsi]",
              "movbe word ptr [rsi], bx"]


@needs_host
@pytest.mark.parametrize("asm", HOST_FORMS)
def test_bit_manipulation_matches_the_host_cpu(asm, rng):
    mnemonic = asm.split()[0]
    for a, b in zip(operands(64, rng, 10), counts(64, rng)[:10], strict=True):
        regs = {"rax": rng.getrandbits(64), "rbx": a, "rcx": b if mnemonic in ("bextr", "bzhi") else
                rng.getrandbits(64), "rdx": rng.getrandbits(64), "rsi": DATA + 8}
        check_host(Case(asm, regs, rflags=random_flags(rng), data=rng.randbytes(64),
                        undefined=UNDEFINED.get(mnemonic, 0)))


FUZZ_FORMS = ["andn", "bextr", "blsi", "blsmsk", "blsr", "bzhi", "pdep", "pext", "shlx", "shrx", "sarx", "tzcnt",
              "lzcnt", "adcx", "adox", "mulx", "rorx"]


@pytest.mark.fuzz
def test_bmi_fuzz(rng):
    """Ten times the default run's cases: forms, sizes and operands drawn at random."""
    for _ in range(3000):
        mnemonic, size = rng.choice(FUZZ_FORMS), rng.choice((32, 64))
        dst = "eax" if size == 32 else "rax"
        a, b = operands(size, rng, 20)[-1], rng.choice(counts(size, rng) + operands(size, rng, 8))
        regs = {"rax": rng.getrandbits(64), "rbx": a, "rcx": b, "rdx": rng.getrandbits(64)}
        operand_text = {"blsi": "{s}", "blsmsk": "{s}", "blsr": "{s}", "tzcnt": "{s}", "lzcnt": "{s}", "adcx": "{s}",
                        "adox": "{s}", "rorx": f"{{s}}, {rng.randrange(256)}", "mulx": "{c}, {s}"}.get(mnemonic,
                                                                                                    "{s}, {c}")
        asm = f"{mnemonic} {dst}, " + operand_text.format(s=REG[size][0], c=REG[size][1])
        if mnemonic == "mulx":
            asm = f"mulx {dst}, {'r8d' if size == 32 else 'r8'}, {REG[size][0]}"
        check_all(Case(asm, regs, rflags=random_flags(rng), undefined=UNDEFINED.get(mnemonic, 0)))
