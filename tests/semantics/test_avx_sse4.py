"""The VEX forms of the SSE4.1 blends, rounds, widenings, extracts, inserts, dot products, MPSADBW,
PHMINPOSUW, MOVNTDQA and of LDDQU (cpu/semantics/avx_sse4.py) against the host CPU: results in
ymm0..ymm3, memory and MXCSR, stepped, as blocks and through the JIT.  The VEX string compares are
in test_sse42.py."""

from __future__ import annotations

import pytest

from tests.semantics.host import needs_host
from tests.semantics.test_avx import M, checked, mxcsr

pytestmark = needs_host

BLENDS = (
    *(f"{m} {r}0, {r}1, {r}2, 0x{imm:x}" for m in ("vblendps", "vblendpd", "vpblendw") for r in ("xmm", "ymm")
      for imm in (0x5A, 0xC3)),
    f"vblendps ymm0, ymm1, ymmword ptr {M}, 0x96", f"vpblendw xmm0, xmm1, xmmword ptr {M}, 0x3c",
    *(f"{m} {r}0, {r}1, {r}2, {r}3" for m in ("vblendvps", "vblendvpd", "vpblendvb") for r in ("xmm", "ymm")),
    f"vblendvpd ymm0, ymm1, ymmword ptr {M}, ymm3", f"vpblendvb xmm0, xmm1, xmmword ptr {M}, xmm2",
)
BITS = {"b": 8, "w": 16, "d": 32, "q": 64}
PTR = {16: "word", 32: "dword", 64: "qword", 128: "xmmword"}
WIDENINGS = tuple(f"vpmov{k}x{s}{d} {r}0, {src}" for k in "sz" for s, d in ("bw", "bd", "bq", "wd", "wq", "dq")
                  for r, size in (("xmm", 128), ("ymm", 256))
                  for src in ("xmm1", f"{PTR[size * BITS[s] // BITS[d]]} ptr {M}"))
LANES = (
    "vpextrb eax, xmm1, 0x1d", "vpextrd eax, xmm1, 6", "vpextrq rax, xmm1, 3", "vextractps eax, xmm1, 2",
    f"vpextrb byte ptr {M}, xmm1, 7", f"vextractps dword ptr {M}, xmm1, 1",
    "vpinsrb xmm0, xmm1, eax, 0x1e", "vpinsrd xmm0, xmm1, eax, 5", "vpinsrq xmm0, xmm1, rax, 1",
    f"vpinsrd xmm0, xmm1, dword ptr {M}, 2", "vinsertps xmm0, xmm1, xmm2, 0x9d",
    f"vinsertps xmm0, xmm1, dword ptr {M}, 0xd6",
)


@pytest.mark.parametrize("asm", BLENDS + WIDENINGS + LANES)
def test_vex_sse4_integer_forms_match_the_host(rng, asm):
    checked(rng, asm)


@pytest.mark.parametrize("asm", [f"{m} {r}0, {r}1, 0x{imm:x}" for m, r in (("vroundps", "ymm"), ("vroundpd", "ymm"),
                                                                          ("vroundps", "xmm"))
                                 for imm in (0, 1, 2, 3, 4, 9, 0xC)]
                         + [f"vroundsd xmm0, xmm1, xmm2, {imm}" for imm in (0, 3, 4, 0xA)]
                         + [f"vroundss xmm0, xmm1, dword ptr {M}, 1", f"vroundpd ymm0, ymmword ptr {M}, 2"])
def test_vex_rounds_match_the_host_with_mxcsr(rng, asm):
    width = 32 if asm.split()[0][-1] == "s" else 64
    checked(rng, asm, mxcsr(rng), width)


@pytest.mark.parametrize("asm", [f"vdpps {r}0, {r}1, {src}, 0x{imm:x}" for r, src in (("ymm", "ymm2"), ("xmm", "xmm2"),
                                                                                       ("ymm", f"ymmword ptr {M}"))
                                 for imm in (0xFF, 0xF1, 0x3C, 0xA5)]
                         + [f"vdppd xmm0, xmm1, {src}, 0x{imm:x}" for src in ("xmm2", f"xmmword ptr {M}")
                            for imm in (0x33, 0x31, 0x12, 0xFF)])
def test_vex_dot_products_match_the_host_with_mxcsr(rng, asm):
    checked(rng, asm, mxcsr(rng), 32 if asm.startswith("vdpps") else 64)


@pytest.mark.parametrize("asm", [
    *(f"vmpsadbw {r}0, {r}1, {r}2, 0x{imm:x}" for r in ("xmm", "ymm") for imm in (0, 5, 0x2D, 0x3F, 0xC2)),
    f"vmpsadbw ymm0, ymm1, ymmword ptr {M}, 0x1b", f"vmpsadbw xmm0, xmm1, xmmword ptr {M}, 6",
    "vphminposuw xmm0, xmm1", f"vphminposuw xmm0, xmmword ptr {M}",
    f"vlddqu ymm0, ymmword ptr {M}", f"vlddqu xmm0, xmmword ptr {M}",
    "vmovntdqa ymm0, ymmword ptr [rsi + 0x100]", "vmovntdqa xmm0, xmmword ptr [rsi + 0x110]",
    "vmovntdqa ymm0, ymmword ptr [rsi + 0x110]", "vmovntdqa xmm0, xmmword ptr [rsi + 0x108]",
])
def test_vex_sums_of_differences_minimum_search_and_loads_match_the_host(rng, asm):
    """The last two: VMOVNTDQA's operand misaligned for its size, #GP on the host as in emu."""
    checked(rng, asm)
