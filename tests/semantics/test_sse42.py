"""SSE4.2 against unicorn: CRC32 and the string compares (``cpu/semantics/crc32.py``, ``pcmpstr.py``).

CRC32 runs in every operand size and form against unicorn.  The string
compares run against the host CPU (``host.check_host``) over every imm8
(bit 7 is ignored, so 0-127, plus a few with it set), with short alphabets so
that matches, ranges and substrings occur, and explicit lengths around both
ends (negative, zero, n, beyond n, 32-bit and REX.W or VEX.W 64-bit; capstone does not decode
the VEX.W = 1 form, ``cpu.decoder`` does).  unicorn (QEMU
5) is no oracle for them: it gets equal ordered and the masked polarities
wrong, takes |-2**31| as negative (and crashes), and truncates REX.W lengths.
"""

from __future__ import annotations

import random

import pytest

from tests.semantics.harness import Case, check
from tests.semantics.host import check_host, needs_host
from tests.semantics.operands import Setup
from tests.semantics.test_sse import CASES, setup

CRC_FORMS = ("crc32 eax, bl", "crc32 eax, bx", "crc32 eax, ebx", "crc32 rax, rbx", "crc32 rax, bl",
             "crc32 r9d, r10b", "crc32 r9, r10", "crc32 eax, ah", "crc32 eax, byte ptr [rsi + 0x21]",
             "crc32 eax, word ptr [rsi + 0x23]", "crc32 r11d, dword ptr [rsi + 0x25]",
             "crc32 rax, qword ptr [rsi + 0x27]", "crc32 rax, byte ptr [rsi + 0x30]")


@pytest.mark.parametrize("asm", CRC_FORMS)
def test_crc32_matches_unicorn(rng, asm):
    for _ in range(CASES):
        check(setup(rng).case(asm))


def test_crc32_of_the_check_string_is_the_castagnoli_check_value(rng):
    """CRC-32C("123456789") = 0xE3069283 (initial value and final XOR all ones)."""
    s = setup(rng)
    s.data[0x40:0x49] = b"123456789"
    check(s.case("mov eax, -1; crc32 rax, qword ptr [rsi + 0x40]; crc32 eax, byte ptr [rsi + 0x48]; not eax"))


ALPHABET = (0, 0x41, 0x42, 0x43, 0x61, 0x7F, 0x80, 0xFF)


def string(rng: random.Random, words: bool) -> int:
    """16 bytes or 8 words from a small alphabet (zeros included, so implicit lengths vary)."""
    if words:
        picks = [rng.choice(ALPHABET) * rng.choice((1, 0x101)) for _ in range(8)]
        return sum(w << (16 * i) for i, w in enumerate(picks))
    out = bytearray(rng.choice(ALPHABET[1:]) for _ in range(16))
    if rng.random() < 0.7:
        out[rng.randrange(16)] = 0
    return int.from_bytes(out, "little")


def length(rng: random.Random, rex_w: bool) -> int:
    """An explicit length: around 0 and n, either sign, the extremes; without REX.W the upper half is
    random (ignored), with it the value is sign-extended or large."""
    n = rng.choice((0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 100, -1, -3, -8, -16, -17, (1 << 31) - 1, -(1 << 31)))
    if rex_w:
        return rng.choice((n, 1 << 32 | n & 0xFFFF_FFFF, -(1 << 63), (1 << 63) - 1)) & ((1 << 64) - 1)
    return (n & 0xFFFF_FFFF) | rng.getrandbits(32) << 32


OPCODE = {"pcmpestrm": 0x60, "pcmpestri": 0x61, "pcmpistrm": 0x62, "pcmpistri": 0x63}


def pcmpstr_case(rng: random.Random, mnemonic: str, imm: int, form: str) -> Case:
    """``form``: "xmm", "m128" (unaligned), or "rex.w" (xmm1, xmm2 with REX.W: 64-bit lengths); the VEX
    forms "vex" and "vex-m128" run after YMM0's upper half is made nonzero and copy it
    to XMM3 after, so that the oracle sees VPCMPxSTRM clear it."""
    s: Setup = setup(rng)
    words = bool(imm & 1)
    a, b = string(rng, words), string(rng, words)
    if rng.random() < 0.3:                      # B holding A (or a piece of it): equal each/ordered match
        shift = 8 * rng.randrange(4)
        b = (a << shift | b & ((1 << shift) - 1)) & ((1 << 128) - 1)
    if mnemonic.startswith("pcmpe"):
        s.set("rax", length(rng, form.endswith(".w")))
        s.set("rdx", length(rng, form.endswith(".w")))
    if form == "rex.w":                         # keystone has no spelling for it: 66 REX.W 0F 3A op /r ib
        asm = f".byte 0x66, 0x48, 0x0f, 0x3a, {OPCODE[mnemonic]:#x}, 0xca, {imm:#x}"
    elif form == "vex.w":                       # nor for this: C4, R X B map 0F3A, W vvvv 1111 L 0 pp 66
        asm = f".byte 0xc4, 0xe3, 0xf9, {OPCODE[mnemonic]:#x}, 0xca, {imm:#x}"
    else:
        name = "v" + mnemonic if form.startswith("vex") else mnemonic
        asm = f"{name} xmm1, {'xmm2' if form in ('xmm', 'vex') else s.mem(0x41, 128, b)}, {imm}"
    if form.startswith("vex"):              # "vex.w" too
        asm = f"vinsertf128 ymm0, ymm0, xmm1, 1; {asm}; vextractf128 xmm3, ymm0, 1"
    return s.case(asm, xmm={0: rng.getrandbits(128), 1: a, 2: b})


@needs_host
@pytest.mark.parametrize("mnemonic", ["pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm"])
def test_string_compares_match_the_host_for_every_imm8(rng, mnemonic):
    forms = ("xmm", "m128", "rex.w") if mnemonic.startswith("pcmpe") else ("xmm", "m128")
    for imm in (*range(128), 0x80, 0xC5, 0xFF):
        for form in forms:
            check_host(pcmpstr_case(rng, mnemonic, imm, form))


@needs_host
@pytest.mark.parametrize("mnemonic", ["pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm"])
def test_vex_string_compares_match_the_host(rng, mnemonic):
    forms = ("vex", "vex-m128", "vex.w") if mnemonic.startswith("pcmpe") else ("vex", "vex-m128")
    for imm in (*range(0, 128, 3), 0x80, 0xC5, 0xFF):
        check_host(pcmpstr_case(rng, mnemonic, imm, forms[imm % len(forms)]))


@needs_host
@pytest.mark.fuzz
def test_fuzz_sse42(rng):
    for mnemonic in ("pcmpestri", "pcmpestrm", "pcmpistri", "pcmpistrm"):
        for _ in range(10):
            for imm in range(128):
                check_host(pcmpstr_case(rng, mnemonic, imm, rng.choice(("xmm", "m128"))))
    for asm in CRC_FORMS:
        for _ in range(10 * CASES):
            check(setup(rng).case(asm))
