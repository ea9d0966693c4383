"""SSSE3 and SSE3 against unicorn (``cpu/semantics/ssse3.py``, ``sse3.py``).

Every instruction in its register and memory forms, over random 128-bit
vectors biased toward lane boundaries (``test_sse.vector``) and, for the
SSE3 floating-point arithmetic, over special values under every MXCSR
rounding mode (``test_sse_float``).  unicorn sets no MXCSR exception flags,
ignores FTZ and picks the wrong NaN of two; the host CPU (``host.check_host``)
checks those: :func:`host_float_case` stores MXCSR after the instruction.
"""

from __future__ import annotations

import random

import pytest

from tests.semantics.harness import Case, check
from tests.semantics.host import check_host, needs_host
from tests.semantics.operands import Setup
from tests.semantics.test_sse import CASES, second, setup, vector
from tests.semantics.test_sse_float import FTZ, float_case, is_nan, mxcsr, number, one_nan_per_lane
from tests.semantics.test_sse_float import lanes as float_lanes
from tests.semantics.test_sse_float import vector as float_vector

SSSE3 = ("pshufb", "phaddw", "phaddd", "phaddsw", "phsubw", "phsubd", "phsubsw", "pmaddubsw", "pmulhrsw",
         "psignb", "psignw", "psignd", "pabsb", "pabsw", "pabsd")
FORMS = [(m, f) for m in SSSE3 for f in ("xmm", "m128")] + [(m, "high xmm") for m in ("pshufb", "phaddsw", "pabsd")]


def ssse3_cases(mnemonic: str, form: str, rng: random.Random, count: int):
    for _ in range(count):
        s = setup(rng)
        a = vector(rng)
        b = second(rng, a)
        if form == "xmm":
            yield s.case(f"{mnemonic} xmm0, xmm1", xmm={0: a, 1: b})
        elif form == "high xmm":
            yield s.case(f"{mnemonic} xmm11, xmm13", xmm={11: a, 13: b})
        else:
            yield s.case(f"{mnemonic} xmm2, {s.mem(0x40, 128, b)}", xmm={2: a})


@pytest.mark.parametrize(("mnemonic", "form"), FORMS)
def test_ssse3_lane_instructions_match_unicorn(rng, mnemonic, form):
    for case in ssse3_cases(mnemonic, form, rng, CASES):
        check(case)


@needs_host
@pytest.mark.parametrize(("mnemonic", "form"), FORMS)
def test_ssse3_lane_instructions_match_the_host(rng, mnemonic, form):
    for case in ssse3_cases(mnemonic, form, rng, CASES // 2):
        check_host(case)


def palignr_cases(form: str, rng: random.Random):
    for count in (*range(0, 34, 3), 15, 16, 17, 31, 32, 33, 0x80, 0xFF):
        s = setup(rng)
        a, b = vector(rng), vector(rng)
        src = "xmm1" if form == "xmm" else s.mem(0x30, 128, b)
        yield s.case(f"palignr xmm0, {src}, {count}", xmm={0: a, 1: b})


@pytest.mark.parametrize("form", ["xmm", "m128"])
def test_palignr_matches_unicorn_for_every_kind_of_count(rng, form):
    for case in palignr_cases(form, rng):
        check(case)


# -- SSE3 ---------------------------------------------------------------------------------------------
SSE3_FLOAT = ("addsubps", "addsubpd", "haddps", "haddpd", "hsubps", "hsubpd")


def sse3_float_cases(mnemonic: str, form: str, rng: random.Random, count: int):
    width = 32 if mnemonic.endswith("ps") else 64
    for _ in range(count):
        s = setup(rng)
        a, b = float_vector(rng, width), float_vector(rng, width)
        if mnemonic.startswith("addsub"):
            b = one_nan_per_lane(a, b, width, rng)
        else:
            a, b = one_nan_per_pair(a, width, rng), one_nan_per_pair(b, width, rng)
        src = "xmm1" if form == "xmm" else s.mem(0x40, 128, b)
        yield float_case(rng, f"{mnemonic} xmm0, {src}", {0: a, 1: b}, mxcsr(rng), s)


def one_nan_per_pair(v: int, width: int, rng: random.Random) -> int:
    """``v`` with lane 2k+1 made a number where lanes 2k and 2k+1 are both NaNs: a horizontal op
    combines them, and unicorn gets two-NaN results wrong (see test_sse_float.one_nan_per_lane)."""
    out = float_lanes(v, width)
    for i in range(0, len(out), 2):
        while is_nan(out[i], width) and is_nan(out[i + 1], width):
            out[i + 1] = number(rng, width)
    return sum(x << (width * i) for i, x in enumerate(out))


SSE3_FLOAT_FORMS = [(m, f) for m in SSE3_FLOAT for f in ("xmm", "m128")]


@pytest.mark.parametrize(("mnemonic", "form"), SSE3_FLOAT_FORMS)
def test_sse3_float_arithmetic_matches_unicorn(rng, mnemonic, form):
    for case in sse3_float_cases(mnemonic, form, rng, CASES):
        check(case)


def host_float_case(rng: random.Random, asm: str, xmm: dict[int, int], s: Setup | None = None) -> Case:
    """``asm`` under a random MXCSR (any rounding, DAZ, FTZ, PE set or not), MXCSR stored after it."""
    s = s or setup(rng)
    control = mxcsr(rng) | (FTZ if rng.random() < 0.3 else 0)
    case = float_case(rng, f"{asm}; stmxcsr dword ptr [rsi + 0x1f4]", xmm, control, s)
    return case


@needs_host
@pytest.mark.parametrize(("mnemonic", "form"), SSE3_FLOAT_FORMS)
def test_sse3_float_arithmetic_and_mxcsr_flags_match_the_host(rng, mnemonic, form):
    width = 32 if mnemonic.endswith("ps") else 64
    for _ in range(4 * CASES):
        s = setup(rng)
        a, b = float_vector(rng, width), float_vector(rng, width)
        src = "xmm1" if form == "xmm" else s.mem(0x40, 128, b)
        check_host(host_float_case(rng, f"{mnemonic} xmm0, {src}", {0: a, 1: b}, s))


SSE3_MOVES = ("movddup xmm0, xmm1", "movddup xmm0, qword ptr [rsi + 0x48]", "movddup xmm12, qword ptr [rsi + 0x43]",
              "movshdup xmm0, xmm1", "movshdup xmm0, xmmword ptr [rsi + 0x40]", "movsldup xmm9, xmm9",
              "movsldup xmm0, xmmword ptr [rsi + 0x50]", "lddqu xmm0, xmmword ptr [rsi + 0x40]",
              "lddqu xmm7, xmmword ptr [rsi + 0x4b]")


@pytest.mark.parametrize("asm", SSE3_MOVES)
def test_sse3_moves_match_unicorn(rng, asm):
    for _ in range(CASES):
        check(setup(rng).case(asm, xmm={i: vector(rng) for i in range(16)}))


@pytest.mark.fuzz
def test_fuzz_ssse3_and_sse3(rng):
    n = 10 * CASES
    for mnemonic, form in FORMS:
        for case in ssse3_cases(mnemonic, form, rng, n):
            check(case)
    for mnemonic, form in SSE3_FLOAT_FORMS:
        for case in sse3_float_cases(mnemonic, form, rng, n):
            check(case)
