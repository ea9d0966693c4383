"""AES-NI, PCLMULQDQ and the SHA extensions (``cpu/semantics/aes.py``, ``clmul.py``, ``sha.py``).

Every instruction in its register and memory forms over random states and
keys, against the host CPU (``host.check_host``), and AES and PCLMULQDQ
against unicorn too (unicorn 2 has no SHA extensions).  A whole AES-128
encryption of FIPS 197's appendix C.1 vector, key schedule included, runs
as one block.  The VEX.128 forms (``cpu/semantics/avx_crypto.py``) against the host, and their
VEX.256 forms (VAES, VPCLMULQDQ, not advertised) raise #UD.
"""

from __future__ import annotations

import random

import pytest

from tests.semantics.harness import CODE, Case, check, run_emu
from tests.semantics.host import check_host, needs_host
from tests.semantics.test_avx import checked
from tests.semantics.test_sse import CASES, setup, vector

AES = ("aesenc", "aesenclast", "aesdec", "aesdeclast", "aesimc")
SHA = ("sha1nexte", "sha1msg1", "sha1msg2", "sha256msg1", "sha256msg2", "sha256rnds2")


def crypto_cases(asm: str, form: str, rng: random.Random, count: int):
    """``asm`` is "mnemonic" or "mnemonic {imm}"; random imm8 values stand in for {imm}."""
    mnemonic, _, imm = asm.partition(" ")
    for _ in range(count):
        s = setup(rng)
        a, b = rng.getrandbits(128), vector(rng)
        src = "xmm1" if form == "xmm" else s.mem(0x40, 128, b)
        tail = f", {rng.getrandbits(8)}" if imm else ""
        yield s.case(f"{mnemonic} xmm2, {src}{tail}", xmm={0: rng.getrandbits(128), 1: b, 2: a})


UNICORN_FORMS = [(m, f) for m in (*AES, "aeskeygenassist {imm}", "pclmulqdq {imm}") for f in ("xmm", "m128")]
HOST_FORMS = UNICORN_FORMS + [(m, f) for m in (*SHA, "sha1rnds4 {imm}") for f in ("xmm", "m128")]


@pytest.mark.parametrize(("asm", "form"), UNICORN_FORMS)
def test_aes_and_pclmulqdq_match_unicorn(rng, asm, form):
    for case in crypto_cases(asm, form, rng, CASES):
        check(case)


@needs_host
@pytest.mark.parametrize(("asm", "form"), HOST_FORMS)
def test_aes_pclmulqdq_and_sha_match_the_host(rng, asm, form):
    for case in crypto_cases(asm, form, rng, 2 * CASES):
        check_host(case)


@needs_host
@pytest.mark.parametrize("imm", [0x00, 0x01, 0x10, 0x11, 0xEE, 0x02, 0x03])
def test_pclmulqdq_and_sha1rnds4_use_only_their_selector_bits(rng, imm):
    for asm in (f"pclmulqdq xmm2, xmm1, {imm}", f"sha1rnds4 xmm2, xmm1, {imm}"):
        check_host(setup(rng).case(asm, xmm={1: rng.getrandbits(128), 2: rng.getrandbits(128)}))


FIPS197_KEY = 0x0f0e0d0c0b0a09080706050403020100       # 00 01 02 .. 0f, byte 0 lowest
FIPS197_PLAIN = 0xffeeddccbbaa99887766554433221100     # 00 11 22 .. ff
FIPS197_CIPHER = int.from_bytes(bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a"), "little")


def aes128_program() -> str:
    """Expand the key in xmm1 with AESKEYGENASSIST, encrypt xmm0, then decrypt it into xmm4 with
    AESIMC'd keys; round keys are kept at [rsi + 16 * i]."""
    lines = ["movdqa xmmword ptr [rsi], xmm1"]
    for i, rcon in enumerate((1, 2, 4, 8, 16, 32, 64, 128, 0x1B, 0x36), 1):
        lines += [f"aeskeygenassist xmm2, xmm1, {rcon}", "pshufd xmm2, xmm2, 0xff",
                  "movdqa xmm3, xmm1", "pslldq xmm3, 4", "pxor xmm1, xmm3", "pslldq xmm3, 4", "pxor xmm1, xmm3",
                  "pslldq xmm3, 4", "pxor xmm1, xmm3", "pxor xmm1, xmm2", f"movdqa xmmword ptr [rsi + {16 * i}], xmm1"]
    lines.append("pxor xmm0, xmmword ptr [rsi]")
    lines += [f"aesenc xmm0, xmmword ptr [rsi + {16 * i}]" for i in range(1, 10)]
    lines += ["aesenclast xmm0, xmmword ptr [rsi + 160]", "movdqa xmm4, xmm0", "pxor xmm4, xmmword ptr [rsi + 160]"]
    for i in range(9, 0, -1):
        lines += [f"aesimc xmm5, xmmword ptr [rsi + {16 * i}]", "aesdec xmm4, xmm5"]
    lines.append("aesdeclast xmm4, xmmword ptr [rsi]")
    return "; ".join(lines)


def test_aes128_encrypts_and_decrypts_the_fips_197_example(rng):
    case = setup(rng).case(aes128_program(), xmm={0: FIPS197_PLAIN, 1: FIPS197_KEY})
    for blocks, jit in ((False, "off"), (True, "off"), (True, "eager")):
        out = run_emu(case, blocks, jit)
        assert (out.xmm[0], out.xmm[4]) == (FIPS197_CIPHER, FIPS197_PLAIN)
    check(case)


@pytest.mark.fuzz
@needs_host
def test_fuzz_crypto(rng):
    for asm, form in HOST_FORMS:
        for case in crypto_cases(asm, form, rng, 10 * CASES):
            check_host(case)


@needs_host
@pytest.mark.parametrize("asm", [
    *(f"v{m} xmm0, xmm1, {src}" for m in AES[:4] for src in ("xmm2", "xmmword ptr [rsi + 0x101]")),
    "vaesimc xmm0, xmm1", "vaesimc xmm0, xmmword ptr [rsi + 0x101]",
    "vaeskeygenassist xmm0, xmm1, 0x1b", "vaeskeygenassist xmm0, xmmword ptr [rsi + 0x101], 0x80",
    *(f"vpclmulqdq xmm0, xmm1, xmm2, 0x{imm:x}" for imm in (0, 1, 0x10, 0x11, 0xEE)),
    "vpclmulqdq xmm0, xmm1, xmmword ptr [rsi + 0x101], 0x10",
])
def test_vex_aes_and_pclmulqdq_match_the_host(rng, asm):
    """Random YMM sources (their upper halves too) and misaligned memory; the destination's upper half cleared."""
    checked(rng, asm)


@pytest.mark.parametrize("asm", [".byte 0xc4, 0xe2, 0x75, 0xdc, 0xc2", ".byte 0xc4, 0xe2, 0x75, 0xdf, 0xc2",
                                 ".byte 0xc4, 0xe3, 0x75, 0x44, 0xc2, 0x00"])
def test_the_256_bit_vaes_and_vpclmulqdq_forms_are_undefined(asm):
    """VAESENC, VAESDECLAST, VPCLMULQDQ ymm0, ymm1, ymm2 (keystone has no spelling for them) need VAES or
    VPCLMULQDQ, which this CPU does not advertise (the host may have them)."""
    for blocks in (False, True):
        state = run_emu(Case(asm, xmm={1: 5, 2: 7}), blocks)
        assert state.faulted and state.rip == CODE and state.xmm[0] == 0
