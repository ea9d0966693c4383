"""RCPPS, RCPSS, RSQRTPS, RSQRTSS and their VEX forms (``cpu/semantics/reciprocal.py``) against the host CPU.

The SDM bounds the approximation, not its bits: a normal result must be within 1.5 * 2**-12 of the true
value, relatively, and the host's own approximation differs from emu's.  So each lane of the result is
checked against the true value with that bound, for the host's answer (which checks the bound itself)
as for emu's, and the two must agree exactly on everything else: the special cases (zeros, denormals,
infinities, NaNs, negative square roots), the lanes a scalar form keeps, the other registers, MXCSR
(no flag may be raised) and memory.  Cases run stepped, as a block and through the LLVM JIT.
"""

from __future__ import annotations

import math
import random
import re

import pytest

from cpu.semantics.sse_float import F32, value
from tests.semantics.harness import MODES, run_emu
from tests.semantics.host import needs_host, run_host
from tests.semantics.test_avx import DEFAULT_MXCSR, MEMORY, RESULTS, case, mxcsr

pytestmark = needs_host

M = f"[rsi + {MEMORY:#x}]"
BOUND = 1.5 * 2.0 ** -12
GRAY = (0x7EFF_E800, 0x7F00_0C01)
"""RCP sources (magnitudes) whose result the SDM lets be tiny (flushed to zero) or not: 1.11111111110100000000000B
* 2**125 to 1.00000000000110000000001B * 2**126."""
SPECIAL = (0, 0x8000_0000, 1, 0x8000_0001, 0x007F_FFFF, 0x0080_0000, 0x8080_0000, 0x7F80_0000, 0xFF80_0000,
           0x7FC0_0000, 0xFFC1_2345, 0x7F80_0001, 0xFFA0_0000, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x3F80_0000, 0xBF80_0000,
           0x4000_0000, 0x3F7F_FFFF, 0x7EFF_E7FF, 0x7F00_0C02, 0xFF00_0C02)


def lane(rng: random.Random) -> int:
    """A single-precision source: a special value or a number of any sign and exponent."""
    if rng.random() < 0.3:
        return rng.choice(SPECIAL)
    return rng.getrandbits(32)


def source(rng: random.Random) -> int:
    return sum(lane(rng) << (32 * i) for i in range(8))


def _close(mnemonic: str, src: int, ours: int, theirs: int) -> bool:
    """Do two answers for one lane agree: exactly, or both within the SDM's bound of the true result?"""
    if ours == theirs:
        return True
    if src & 0x7F80_0000 in (0, 0x7F80_0000) or ("sqrt" in mnemonic and src >> 31):
        return False                    # zeros, denormals, infinities, NaNs, negative roots: exact special cases
    x = value(src, F32)
    exact = 1 / math.sqrt(x) if "sqrt" in mnemonic else 1 / x
    results = [ours, theirs]
    if "sqrt" not in mnemonic and GRAY[0] <= src & 0x7FFF_FFFF <= GRAY[1]:
        results = [r for r in results if r != src & F32.sign]       # a flushed tiny result is allowed here
    return all(r & 0x7F80_0000 and abs(value(r, F32) - exact) <= BOUND * abs(exact) for r in results)


def check(rng: random.Random, asm: str, control: int = DEFAULT_MXCSR) -> None:
    """``asm`` writes ymm0/xmm0 from ymm1 (packed) or ymm1 and ymm2 (scalar) or m256; compare as the docstring says."""
    mnemonic = asm.split()[0]
    values = [source(rng) for _ in range(4)]
    memory = source(rng)
    c = case(rng, asm, values, control, memory)
    host = run_host(c)
    at = re.search(r"rsi \+ (0x[0-9a-f]+)", asm)
    src = int.from_bytes(c.data[int(at[1], 16):][:32], "little") if at else values[1 if asm.count(",") == 1 else 2]
    scalar = mnemonic.endswith("ss")
    result = slice(RESULTS, RESULTS + 32)
    theirs = int.from_bytes(host.data[result], "little")
    for mode, blocks, jit in MODES:
        ours_outcome = run_emu(c, blocks, jit)
        where = f"`{asm}` ({mode}) from ymm1={values[1]:#066x} ymm2={values[2]:#066x} m256={memory:#066x}"
        assert ours_outcome.faulted == host.faulted, where
        assert ours_outcome.regs == host.regs, where
        if host.faulted:
            continue
        assert ours_outcome.data[:RESULTS] == host.data[:RESULTS], where
        assert ours_outcome.data[RESULTS + 32:] == host.data[RESULTS + 32:], f"{where}: other results or MXCSR"
        assert {i: v for i, v in ours_outcome.xmm.items() if i} == {i: v for i, v in host.xmm.items() if i}, where
        ours = int.from_bytes(ours_outcome.data[result], "little")
        for i in range(1 if scalar else 8):
            s, o, t = (v >> (32 * i) & F32.mask for v in (src, ours, theirs))
            assert _close(mnemonic, s, o, t), f"{where}: lane {i} of {s:#010x}: emu {o:#010x}, host {t:#010x}"
        if scalar:
            assert ours >> 32 == theirs >> 32, f"{where}: the kept lanes"
        elif "xmm" in asm.split(",")[0]:
            assert ours >> 128 == theirs >> 128 == (0 if mnemonic.startswith("v") else values[0] >> 128), where


FORMS = (
    *(f"{m} xmm0, xmm1" for m in ("rcpps", "rsqrtps", "rcpss", "rsqrtss")),
    *(f"{m} xmm0, xmmword ptr [rsi + 0x100]" for m in ("rcpps", "rsqrtps")),
    *(f"{m} xmm0, dword ptr {M}" for m in ("rcpss", "rsqrtss")),
    *(f"{m} {r}0, {r}1" for m in ("vrcpps", "vrsqrtps") for r in ("xmm", "ymm")),
    *(f"{m} {r}0, {r}word ptr {M}" for m in ("vrcpps", "vrsqrtps") for r in ("xmm", "ymm")),
    *(f"{m} xmm0, xmm1, xmm2" for m in ("vrcpss", "vrsqrtss")),
    *(f"{m} xmm0, xmm1, dword ptr {M}" for m in ("vrcpss", "vrsqrtss")),
)


@pytest.mark.parametrize("asm", FORMS)
def test_approximate_reciprocals_are_within_the_sdm_bound_and_exact_where_the_sdm_says(rng, asm):
    for _ in range(3):
        check(rng, asm, mxcsr(rng))


def test_a_misaligned_legacy_packed_source_faults_and_the_vex_one_does_not(rng):
    for asm in ("rcpps xmm0, xmmword ptr [rsi + 0x101]", "vrcpps xmm0, xmmword ptr [rsi + 0x101]",
                "rsqrtss xmm0, dword ptr [rsi + 0x101]"):
        check(rng, asm)
    assert run_host(case(rng, "rcpps xmm0, xmmword ptr [rsi + 0x101]", [0] * 4)).faulted
