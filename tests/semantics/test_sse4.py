"""SSE4.1 (and SSE4.2's PCMPGTQ) against unicorn (``cpu/semantics/sse4.py``, ``sse4_float.py``).

Every instruction in its register and memory forms and, for the immediate
forms, over immediates that reach every selector bit.  Lanes are biased to
boundaries (``test_sse.vector``); the rounding and dot-product instructions
run over special values under every MXCSR rounding mode (``test_sse_float``)
against unicorn, and against the host CPU (``host.check_host``) with DAZ, FTZ
and the MXCSR flags compared too.
"""

from __future__ import annotations

import random
import struct

import pytest

from cpu.flags import Flag
from cpu.semantics.xmm import MASK64
from tests.semantics.harness import check
from tests.semantics.host import check_host, needs_host
from tests.semantics.test_sse import CASES, second, setup, vector
from tests.semantics.test_sse_float import float_case, is_nan, mxcsr
from tests.semantics.test_sse_float import vector as float_vector
from tests.semantics.test_ssse3 import host_float_case

LANEWISE = ("pminsb", "pminsd", "pminuw", "pminud", "pmaxsb", "pmaxsd", "pmaxuw", "pmaxud", "pmulld", "pmuldq",
            "pcmpeqq", "pcmpgtq", "packusdw", "phminposuw", "ptest")
FORMS = [(m, f) for m in LANEWISE for f in ("xmm", "m128")] + [(m, "high xmm") for m in ("pmulld", "ptest")]
PTEST_FLAGS = Flag.CF | Flag.PF | Flag.AF | Flag.ZF | Flag.SF | Flag.OF


def lane_cases(mnemonic: str, form: str, rng: random.Random, count: int):
    for k in range(count):
        s = setup(rng)
        a = vector(rng)
        b = second(rng, a)
        if mnemonic == "ptest" and k % 3:       # make ZF and CF both likely
            b = a & b if k % 3 == 1 else b & ~a
        flags = 0x202 | 0x8D5 if k & 1 else 0x202
        if form == "xmm":
            yield s.case(f"{mnemonic} xmm0, xmm1", flags, xmm={0: a, 1: b})
        elif form == "high xmm":
            yield s.case(f"{mnemonic} xmm10, xmm15", flags, xmm={10: a, 15: b})
        else:
            yield s.case(f"{mnemonic} xmm2, {s.mem(0x40, 128, b)}", flags, xmm={2: a})


@pytest.mark.parametrize(("mnemonic", "form"), FORMS)
def test_lane_instructions_and_ptest_match_unicorn(rng, mnemonic, form):
    for case in lane_cases(mnemonic, form, rng, CASES):
        check(case)


def test_ptest_sets_zf_and_cf_and_clears_the_other_arithmetic_flags(rng):
    for a, b in ((0, 0), (0xF0, 0x0F), (0xFF, 0x0F), ((1 << 128) - 1, 1 << 127), (1, 2)):
        s = setup(rng)
        check(s.case("ptest xmm3, xmm4; pushfq; pop rax", 0x202 | PTEST_FLAGS, xmm={3: a, 4: b}))


@needs_host
@pytest.mark.parametrize(("mnemonic", "form"), FORMS)
def test_lane_instructions_and_ptest_match_the_host(rng, mnemonic, form):
    for case in lane_cases(mnemonic, form, rng, CASES // 2):
        check_host(case)


def imm_cases(mnemonic: str, form: str, rng: random.Random, count: int):
    for _ in range(count):
        s = setup(rng)
        a, b, imm = vector(rng), vector(rng), rng.getrandbits(8)
        src = "xmm1" if form == "xmm" else s.mem(0x20, 128, b)
        yield s.case(f"{mnemonic} xmm0, {src}, {imm}", xmm={0: a, 1: b})


IMM_FORMS = [(m, f) for m in ("pblendw", "blendps", "blendpd", "mpsadbw") for f in ("xmm", "m128")]


@pytest.mark.parametrize(("mnemonic", "form"), IMM_FORMS)
def test_blends_and_mpsadbw_match_unicorn(rng, mnemonic, form):
    for case in imm_cases(mnemonic, form, rng, 2 * CASES):
        check(case)


@needs_host
@pytest.mark.parametrize(("mnemonic", "form"), IMM_FORMS)
def test_blends_and_mpsadbw_match_the_host(rng, mnemonic, form):
    for case in imm_cases(mnemonic, form, rng, CASES // 2):
        check_host(case)


@pytest.mark.parametrize("mnemonic", ["pblendvb", "blendvps", "blendvpd"])
@pytest.mark.parametrize("form", ["xmm", "m128"])
def test_variable_blends_take_the_mask_from_xmm0(rng, mnemonic, form):
    for _ in range(CASES):
        s = setup(rng)
        a, b, mask = vector(rng), vector(rng), vector(rng)
        src = "xmm5" if form == "xmm" else s.mem(0x30, 128, b)
        check(s.case(f"{mnemonic} xmm3, {src}", xmm={0: mask, 3: a, 5: b}))
    check(setup(rng).case(f"{mnemonic} xmm0, xmm6", xmm={0: vector(rng), 6: vector(rng)}))


EXTENSIONS = [f"pmov{k}x{p}" for k in "sz" for p in ("bw", "bd", "bq", "wd", "wq", "dq")]
SOURCE_BITS = {"bw": 64, "bd": 32, "bq": 16, "wd": 64, "wq": 32, "dq": 64}


@pytest.mark.parametrize("mnemonic", EXTENSIONS)
@pytest.mark.parametrize("form", ["xmm", "mem"])
def test_sign_and_zero_extensions_match_unicorn(rng, mnemonic, form):
    for _ in range(CASES):
        s = setup(rng)
        b = vector(rng)
        src = "xmm1" if form == "xmm" else s.mem(0x13, SOURCE_BITS[mnemonic[-2:]], b)
        check(s.case(f"{mnemonic} xmm0, {src}", xmm={0: vector(rng), 1: b}))


EXTRACT_INSERT = (
    "pextrb eax, xmm1, {i}", "pextrb r10d, xmm12, {i}", "pextrb byte ptr [rsi + 0x11], xmm1, {i}",
    "pextrw word ptr [rsi + 0x12], xmm1, {i}", "pextrd ebx, xmm1, {i}", "pextrd dword ptr [rsi + 0x13], xmm1, {i}",
    "pextrq rbx, xmm1, {i}", "pextrq qword ptr [rsi + 0x14], xmm9, {i}",
    "extractps eax, xmm1, {i}", "extractps dword ptr [rsi + 0x15], xmm1, {i}",
    "pinsrb xmm1, eax, {i}", "pinsrb xmm1, byte ptr [rsi + 0x16], {i}", "pinsrd xmm1, ebx, {i}",
    "pinsrd xmm13, dword ptr [rsi + 0x17], {i}", "pinsrq xmm1, rbx, {i}", "pinsrq xmm1, qword ptr [rsi + 0x18], {i}",
    "insertps xmm1, xmm2, {i}", "insertps xmm1, dword ptr [rsi + 0x19], {i}",
)


@pytest.mark.parametrize("template", EXTRACT_INSERT)
def test_extracts_and_inserts_match_unicorn(rng, template):
    for index in (0, 1, 2, 3, 7, 8, 15, 16, 0x5A, 0xFF, *(rng.getrandbits(8) for _ in range(CASES))):
        s = setup(rng)
        check(s.case(template.format(i=index), xmm={1: vector(rng), 2: vector(rng), 9: vector(rng),
                                                     12: vector(rng), 13: vector(rng)}))


@pytest.mark.parametrize("asm", ["movntdqa xmm0, xmmword ptr [rsi + 0x40]", "movntdqa xmm14, xmmword ptr [rsi + 0x70]"])
def test_movntdqa_loads(rng, asm):
    for _ in range(CASES):
        check(setup(rng).case(asm, xmm={0: vector(rng), 14: vector(rng)}))


MISALIGNED = (
    "pshufb xmm0, {x}", "phaddw xmm0, {x}", "pabsd xmm0, {x}", "palignr xmm0, {x}, 3", "haddps xmm0, {x}",
    "addsubpd xmm0, {x}", "movshdup xmm0, {x}", "lddqu xmm0, {x}", "movddup xmm0, {q}",
    "pmulld xmm0, {x}", "ptest xmm0, {x}", "pblendvb xmm0, {x}", "blendps xmm0, {x}, 5", "pmovsxbw xmm0, {q}",
    "pmovzxbq xmm0, word ptr [rsi + 3]", "insertps xmm0, dword ptr [rsi + 3], 0x10", "movntdqa xmm0, {x}",
    "roundps xmm0, {x}, 1", "roundsd xmm0, {q}, 1", "dpps xmm0, {x}, 0xff", "mpsadbw xmm0, {x}, 1",
    "phminposuw xmm0, {x}", "pcmpgtq xmm0, {x}", "pcmpestri xmm0, {x}, 0", "pcmpistrm xmm0, {x}, 0x44",
    "aesenc xmm0, {x}", "aeskeygenassist xmm0, {x}, 1", "pclmulqdq xmm0, {x}, 0", "sha256rnds2 xmm1, {x}",
    "sha1rnds4 xmm0, {x}, 1",
)


@needs_host
@pytest.mark.parametrize("template", MISALIGNED)
def test_misaligned_memory_operands_fault_exactly_where_the_host_faults(rng, template):
    """A 128-bit legacy SSE operand must be 16-aligned (#GP(0)), except LDDQU and the string compares;
    narrower operands never need alignment.  unicorn never checks, so the host decides."""
    asm = template.format(x="xmmword ptr [rsi + 4]", q="qword ptr [rsi + 4]")
    check_host(setup(rng).case(asm, xmm={0: vector(rng), 1: vector(rng)}))


# -- rounding and dot products ------------------------------------------------------------------------
ROUNDS = {"roundps": (32, 128), "roundpd": (64, 128), "roundss": (32, 32), "roundsd": (64, 64)}


def round_cases(mnemonic: str, form: str, rng: random.Random, count: int):
    width, size = ROUNDS[mnemonic]
    for k in range(count):
        s = setup(rng)
        a, b = float_vector(rng, width), float_vector(rng, width)
        imm = k % 16 if k < 16 else rng.getrandbits(8)
        src = "xmm1" if form == "xmm" else s.mem(0x40, size, b)
        yield float_case(rng, f"{mnemonic} xmm0, {src}, {imm}", {0: a, 1: b}, mxcsr(rng), s)


@pytest.mark.parametrize("mnemonic", list(ROUNDS))
@pytest.mark.parametrize("form", ["xmm", "mem"])
def test_rounding_matches_unicorn_for_every_mode(rng, mnemonic, form):
    for case in round_cases(mnemonic, form, rng, 3 * CASES):
        check(case)


def dot_cases(mnemonic: str, form: str, rng: random.Random, count: int):
    """DPPD over special values; DPPS over moderate numbers with products from lanes 0 and 1 only.

    unicorn (QEMU 5) adds DPPS's products one after another, ((p0 + p1) + p2) + p3, where the SDM
    says (p0 + p1) + (p2 + p3); those differ in rounding, so the full DPPS is checked against the
    host CPU only.  Moderate nonzero lanes keep the SDM's extra + 0.0 exact."""
    width = 32 if mnemonic == "dpps" else 64
    for k in range(count):
        s = setup(rng)
        if width == 64:
            a, b, imm = _ordinary(rng), _ordinary(rng), rng.getrandbits(8) if k else 0x33
        else:
            a, b, imm = _moderate(rng), _moderate(rng), rng.randrange(1, 4) << 4 | rng.getrandbits(4)
        src = "xmm1" if form == "xmm" else s.mem(0x40, 128, b)
        yield float_case(rng, f"{mnemonic} xmm0, {src}, {imm}", {0: a, 1: b}, mxcsr(rng), s)


def _ordinary(rng: random.Random) -> int:
    """Two double lanes without NaNs (which NaN a sum of products returns is checked against the host)."""
    out = 0
    for i in range(2):
        lane = float_vector(rng, 64) & MASK64
        out |= (lane if not is_nan(lane, 64) else 0x3FF0_0000_0000_0000) << (64 * i)
    return out


def _moderate(rng: random.Random) -> int:
    """Four single lanes of magnitude 2**-21 to 2**20, either sign."""
    numbers = (rng.uniform(0.5, 1) * rng.choice((-1, 1)) * 2.0 ** rng.randint(-20, 20) for _ in range(4))
    return int.from_bytes(struct.pack("<4f", *numbers), "little")


@pytest.mark.parametrize("mnemonic", ["dpps", "dppd"])
@pytest.mark.parametrize("form", ["xmm", "m128"])
def test_dot_products_match_unicorn(rng, mnemonic, form):
    for case in dot_cases(mnemonic, form, rng, 2 * CASES):
        check(case)


@needs_host
@pytest.mark.parametrize("mnemonic", [*ROUNDS, "dpps", "dppd"])
@pytest.mark.parametrize("form", ["xmm", "mem"])
def test_rounding_and_dot_products_and_their_mxcsr_flags_match_the_host(rng, mnemonic, form):
    """Special values (NaN pairs, denormals, infinities) under any MXCSR incl. DAZ and FTZ; every
    imm8 of ROUNDxx's low nibble; DPPS's full summation order."""
    width, size = ROUNDS.get(mnemonic, (32 if mnemonic == "dpps" else 64, 128))
    for k in range(4 * CASES):
        s = setup(rng)
        a, b = float_vector(rng, width), float_vector(rng, width)
        imm = k % 16 if mnemonic.startswith("round") and k < 16 else rng.getrandbits(8)
        src = "xmm1" if form == "xmm" else s.mem(0x40, size, b)
        check_host(host_float_case(rng, f"{mnemonic} xmm0, {src}, {imm}", {0: a, 1: b}, s))


@pytest.mark.fuzz
def test_fuzz_sse4(rng):
    n = 10 * CASES
    for mnemonic, form in FORMS:
        for case in lane_cases(mnemonic, form, rng, n):
            check(case)
    for mnemonic, form in IMM_FORMS:
        for case in imm_cases(mnemonic, form, rng, n):
            check(case)
    for mnemonic in ROUNDS:
        for form in ("xmm", "mem"):
            for case in round_cases(mnemonic, form, rng, n):
                check(case)
    for mnemonic in ("dpps", "dppd"):
        for case in dot_cases(mnemonic, "xmm", rng, n):
            check(case)
